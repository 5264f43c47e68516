//! An invitation to join an organization: the invitee receives a single-use, expiring
//! link by email and chooses their own password on the page it opens. The account is
//! created when they accept, by them: nobody else ever knows their password.

use chrono::{DateTime, TimeDelta, Utc};
use sea_orm::entity::prelude::*;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::enums::Role;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "invitations")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    /// The organization the invitee joins.
    pub org_id: i64,
    /// Lower-cased.
    pub email: String,
    pub display_name: String,
    pub role: Role,
    pub time_zone: String,
    pub phone: Option<String>,
    /// The admin who invited; `None` for the bootstrap command.
    pub invited_by_user_id: Option<i64>,
    /// The inviter's organization (a sponsor registering a CMO invites into the CMO).
    pub invited_by_org_id: Option<i64>,
    /// SHA-256 of the link's secret (the secret itself is only in the email).
    pub secret_hash: String,
    pub sent_count: i32,
    pub created_at: DateTimeUtc,
    /// When the current link was sent (a re-send replaces the link).
    pub sent_at: DateTimeUtc,
    pub expires_at: DateTimeUtc,
    pub accepted_at: Option<DateTimeUtc>,
    pub accepted_user_id: Option<i64>,
    pub revoked_at: Option<DateTimeUtc>,
    pub version: i32,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}

/// How long an invitation link works.
pub const LIFETIME: TimeDelta = TimeDelta::days(7);

/// Where an invitation stands at a given instant.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum InvitationStatus {
    /// Sent, not yet accepted; the link works.
    Pending,
    Accepted,
    Revoked,
    /// The link's time ran out; an admin may re-send it.
    Expired,
}

pub fn status(i: &Model, now: DateTime<Utc>) -> InvitationStatus {
    if i.accepted_at.is_some() {
        InvitationStatus::Accepted
    } else if i.revoked_at.is_some() {
        InvitationStatus::Revoked
    } else if i.expires_at <= now {
        InvitationStatus::Expired
    } else {
        InvitationStatus::Pending
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn invitation(at: DateTime<Utc>) -> Model {
        Model {
            id: 1,
            org_id: 1,
            email: "qa@acme.test".into(),
            display_name: "Quinn".into(),
            role: Role::Quality,
            time_zone: "UTC".into(),
            phone: None,
            invited_by_user_id: Some(1),
            invited_by_org_id: Some(1),
            secret_hash: "x".into(),
            sent_count: 1,
            created_at: at,
            sent_at: at,
            expires_at: at + LIFETIME,
            accepted_at: None,
            accepted_user_id: None,
            revoked_at: None,
            version: 1,
        }
    }

    #[test]
    fn an_invitation_is_pending_until_accepted_revoked_or_expired() {
        let at = Utc.with_ymd_and_hms(2026, 12, 1, 9, 0, 0).unwrap();
        let i = invitation(at);
        assert_eq!(status(&i, at), InvitationStatus::Pending);
        assert_eq!(status(&i, at + LIFETIME), InvitationStatus::Expired);
        let revoked = Model {
            revoked_at: Some(at),
            ..i.clone()
        };
        assert_eq!(status(&revoked, at), InvitationStatus::Revoked);
        let accepted = Model {
            accepted_at: Some(at),
            ..i
        };
        assert_eq!(status(&accepted, at + LIFETIME), InvitationStatus::Accepted);
    }
}
