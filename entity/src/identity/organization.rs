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
    /// The sponsor organization that registered this partner; `None` for a bootstrapped org
    /// (or a CMO that joined another sponsor's network first). Who else works with a CMO
    /// is in its relationships (`cmo_relationships`), never here.
    pub parent_org_id: Option<i64>,
    /// Set on a duplicate CMO merged into another organization: its people, programs and
    /// relationships live on there; its own audit trail stays under its id.
    pub merged_into_org_id: Option<i64>,
    /// Created by an operational qualification run (`cmo-api qualify`) to exercise the
    /// installation; its records are kept like any other.
    pub validation_run: bool,
    /// When it was deactivated (a finished qualification run): its people are deactivated
    /// and its tokens revoked, its records stay.
    pub deactivated_at: Option<DateTimeUtc>,
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

/// Organizations a member of `viewer` may see: its own, and those it has a relationship
/// with that reached both sides (a CMO it invited or works with; a sponsor that invited
/// it or works with it). Nothing says who else a CMO works with.
pub fn visible_to(viewer: &Model) -> sea_orm::Condition {
    let (cmos, sponsors) = crate::relationship::counterparts_of(viewer.id);
    sea_orm::Condition::any()
        .add(Column::Id.eq(viewer.id))
        .add(Column::Id.in_subquery(cmos))
        .add(Column::Id.in_subquery(sponsors))
}
