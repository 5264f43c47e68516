//! A sponsor or CMO organization: the unit of tenancy.

use crate::enums::OrgKind;
use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "organizations")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    pub name: String,
    pub kind: OrgKind,
    /// The sponsor organization that registered this partner; `None` for a bootstrapped org.
    pub parent_org_id: Option<i64>,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
    pub version: i32,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {
    #[sea_orm(has_many = "super::user::Entity")]
    User,
}

impl Related<super::user::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::User.def()
    }
}

impl ActiveModelBehavior for ActiveModel {}

/// Organizations a member of `viewer_org` may see: its own, the partners it registered,
/// and the sponsor that registered it.
pub fn visible_to(viewer: &Model) -> sea_orm::Condition {
    let mut condition = sea_orm::Condition::any()
        .add(Column::Id.eq(viewer.id))
        .add(Column::ParentOrgId.eq(viewer.id));
    if let Some(parent) = viewer.parent_org_id {
        condition = condition.add(Column::Id.eq(parent));
    }
    condition
}
