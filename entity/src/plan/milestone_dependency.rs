//! "Milestone A may not start before milestone B is completed."

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "milestone_dependencies")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub milestone_id: i64,
    #[sea_orm(primary_key, auto_increment = false)]
    pub depends_on_id: i64,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
