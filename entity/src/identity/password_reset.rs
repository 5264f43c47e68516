//! A password reset link: asked for by the person (by email address) or forced by an
//! admin; single use, one hour. Using it ends the person's sessions and sign-in tokens.

use chrono::{DateTime, TimeDelta, Utc};
use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "password_resets")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    pub org_id: i64,
    pub user_id: i64,
    /// The admin who forced the reset; `None` when the person asked.
    pub requested_by_user_id: Option<i64>,
    /// SHA-256 of the link's secret (the secret itself is only in the email).
    pub secret_hash: String,
    pub created_at: DateTimeUtc,
    pub expires_at: DateTimeUtc,
    pub used_at: Option<DateTimeUtc>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {
    #[sea_orm(
        belongs_to = "super::user::Entity",
        from = "Column::UserId",
        to = "super::user::Column::Id"
    )]
    User,
}

impl Related<super::user::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::User.def()
    }
}

impl ActiveModelBehavior for ActiveModel {}

/// How long a reset link works.
pub const LIFETIME: TimeDelta = TimeDelta::hours(1);

/// A link works once, before it expires.
pub fn usable(r: &Model, now: DateTime<Utc>) -> bool {
    r.used_at.is_none() && now < r.expires_at
}
