//! How organizations, people and their API tokens read on the wire.

use chrono::{DateTime, Utc};
use entity::{OrgKind, Role, api_token, audit_event, invitation, organization, user};
use serde::Serialize;
use utoipa::ToSchema;

#[derive(Debug, Clone, Serialize, ToSchema)]
#[schema(example = json!({
    "id": 2, "name": "Lonza Visp", "kind": "cmo", "parent_org_id": 1,
    "created_at": "2026-11-23T09:00:00Z", "updated_at": "2026-11-23T09:00:00Z", "version": 1
}))]
pub struct OrganizationView {
    pub id: i64,
    pub name: String,
    pub kind: OrgKind,
    /// The sponsor that registered this partner organization: shown to that sponsor and
    /// to the organization itself, `null` to everyone else (another sponsor connected to
    /// the same CMO never learns who else works with it).
    pub parent_org_id: Option<i64>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub version: i32,
}

impl From<&organization::Model> for OrganizationView {
    fn from(m: &organization::Model) -> Self {
        Self {
            id: m.id,
            name: m.name.clone(),
            kind: m.kind,
            parent_org_id: m.parent_org_id,
            created_at: m.created_at,
            updated_at: m.updated_at,
            version: m.version,
        }
    }
}

impl OrganizationView {
    /// The organization as a member of `viewer_org_id` reads it.
    pub fn seen_by(m: &organization::Model, viewer_org_id: i64) -> Self {
        let mut view = Self::from(m);
        if viewer_org_id != m.id && m.parent_org_id != Some(viewer_org_id) {
            view.parent_org_id = None;
        }
        view
    }
}

#[derive(Debug, Clone, Serialize, ToSchema)]
#[schema(example = json!({
    "id": 4, "user_id": 3, "issued_by_user_id": 3, "name": "LIMS integration", "token_prefix": "cmo_3f9a2c1b",
    "kind": "personal", "parent_token_id": null, "read_only": true,
    "created_at": "2026-11-23T09:00:00Z", "expires_at": "2027-11-23T00:00:00Z",
    "revoked_at": null, "revoked_reason": null, "last_used_at": null
}))]
pub struct TokenView {
    pub id: i64,
    pub user_id: i64,
    /// Who issued the token (`null`: the bootstrap command).
    pub issued_by_user_id: Option<i64>,
    pub name: String,
    /// First characters of the secret, to tell tokens apart.
    pub token_prefix: String,
    pub created_at: DateTime<Utc>,
    pub expires_at: Option<DateTime<Utc>>,
    pub revoked_at: Option<DateTime<Utc>>,
    /// Last use, recorded to the minute.
    pub last_used_at: Option<DateTime<Utc>>,
    /// `personal` (created through the API), `sign_in` (from `POST /sign-in`, 12 h) or
    /// `browser` (a sign-in page session).
    pub kind: api_token::TokenKind,
    /// The personal token this one was created with: it dies with it and never outlives it.
    pub parent_token_id: Option<i64>,
    /// Reads only: every write with it answers 403.
    pub read_only: bool,
    /// Why it was revoked when not revoked by hand (`parent_revoked`, `user_deactivated`,
    /// `password_reset`, `minted_for_someone_else`, `descends_from_hand_over`).
    pub revoked_reason: Option<String>,
}

impl From<&api_token::Model> for TokenView {
    fn from(m: &api_token::Model) -> Self {
        Self {
            id: m.id,
            user_id: m.user_id,
            issued_by_user_id: m.issued_by_user_id,
            name: m.name.clone(),
            token_prefix: m.token_prefix.clone(),
            created_at: m.created_at,
            expires_at: m.expires_at,
            revoked_at: m.revoked_at,
            last_used_at: m.last_used_at,
            kind: m.kind,
            parent_token_id: m.parent_token_id,
            read_only: m.read_only,
            revoked_reason: m.revoked_reason.clone(),
        }
    }
}

/// A newly issued token with its secret. The secret is shown only in this response.
#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({
    "token": {"id": 4, "user_id": 3, "issued_by_user_id": 3, "name": "LIMS integration", "token_prefix": "cmo_3f9a2c1b",
              "kind": "personal", "parent_token_id": null, "read_only": false,
              "created_at": "2026-11-23T09:00:00Z", "expires_at": null, "revoked_at": null,
              "revoked_reason": null, "last_used_at": null},
    "secret": "cmo_3f9a2c1b8d7e6f5a4b3c2d1e0f9a8b7c6d5e4f3a2b1c0d9e8f7a6b5c4d3e2f1a0b"
}))]
pub struct IssuedToken {
    pub token: TokenView,
    /// Send as `Authorization: Bearer <secret>`. Not retrievable later.
    pub secret: String,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
#[schema(example = json!({
    "id": 3, "org_id": 1, "email": "qa.lead@acme.test", "display_name": "Quinn Alvarez",
    "role": "quality", "time_zone": "America/New_York", "phone": "+1 617 555 0142", "active": true, "has_password": true,
    "is_service_account": false, "signature_certified_at": "2026-11-23T09:00:00Z",
    "created_at": "2026-11-23T09:00:00Z", "updated_at": "2026-11-23T09:00:00Z", "version": 1
}))]
pub struct UserView {
    pub id: i64,
    pub org_id: i64,
    pub email: String,
    pub display_name: String,
    pub role: Role,
    /// IANA time zone used for this user's emails.
    pub time_zone: String,
    /// Shown in escalation call trees.
    pub phone: Option<String>,
    pub active: bool,
    /// Whether the person has set their password (needed to sign in and to sign).
    pub has_password: bool,
    /// An integration's account: holds tokens, never signs in or signs.
    pub is_service_account: bool,
    /// When the person certified their electronic signature (needed before signing).
    pub signature_certified_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub version: i32,
}

impl From<&user::Model> for UserView {
    fn from(m: &user::Model) -> Self {
        Self {
            id: m.id,
            org_id: m.org_id,
            email: m.email.clone(),
            display_name: m.display_name.clone(),
            role: m.role,
            time_zone: m.time_zone.clone(),
            phone: m.phone.clone(),
            active: m.active,
            has_password: m.password_hash.is_some(),
            is_service_account: m.is_service_account,
            signature_certified_at: m.signature_certified_at,
            created_at: m.created_at,
            updated_at: m.updated_at,
            version: m.version,
        }
    }
}

#[derive(Debug, Clone, Serialize, ToSchema)]
#[schema(example = json!({
    "id": 17, "seq": 5, "actor_user_id": 1, "actor_kind": "person", "entity_type": "user", "entity_id": "3",
    "action": "deactivate",
    "before": {"id": 3, "active": true, "version": 1},
    "after": {"id": 3, "active": false, "version": 2},
    "reason": "left the company", "request_id": "5f0c2a8e-7d1b-4f7e-9a55-3c1d0e6b2a90",
    "occurred_at": "2026-11-23T09:00:00.123456Z",
    "prev_hash": "9b1c…", "hash": "4e7a…"
}))]
pub struct AuditEventView {
    pub id: i64,
    /// Position in the organization's chain, from 1 without gaps.
    pub seq: i64,
    /// `null` for acts of the system (bootstrap, scheduled jobs).
    pub actor_user_id: Option<i64>,
    /// `person`, `service_account` (an integration acting with its token) or `system`.
    pub actor_kind: ActorKind,
    pub entity_type: String,
    pub entity_id: String,
    pub action: String,
    /// The record before the change (absent on creation).
    pub before: Option<serde_json::Value>,
    /// The record after the change.
    pub after: Option<serde_json::Value>,
    pub reason: Option<String>,
    pub request_id: Option<String>,
    pub occurred_at: DateTime<Utc>,
    /// Hash of the previous event (64 zeros for the first).
    pub prev_hash: String,
    /// SHA-256 over `prev_hash` and this event's canonical JSON.
    pub hash: String,
}

/// Who acted, as the audit trail shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ActorKind {
    Person,
    ServiceAccount,
    System,
}

impl AuditEventView {
    /// `service_accounts`: which of the page's actors are service accounts.
    pub fn new(m: &audit_event::Model, service_accounts: &[i64]) -> Self {
        Self {
            id: m.id,
            seq: m.seq,
            actor_user_id: m.actor_user_id,
            actor_kind: match m.actor_user_id {
                None => ActorKind::System,
                Some(id) if service_accounts.contains(&id) => ActorKind::ServiceAccount,
                Some(_) => ActorKind::Person,
            },
            entity_type: m.entity_type.clone(),
            entity_id: m.entity_id.clone(),
            action: m.action.clone(),
            before: m.before.as_deref().map(parse_snapshot),
            after: m.after.as_deref().map(parse_snapshot),
            reason: m.reason.clone(),
            request_id: m.request_id.clone(),
            occurred_at: m.occurred_at,
            prev_hash: m.prev_hash.clone(),
            hash: m.hash.clone(),
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({"seq": 5, "event_id": 17, "kind": "hash_mismatch"}))]
pub struct BrokenLinkView {
    /// Sequence number where the chain breaks.
    pub seq: i64,
    /// The offending event, when it exists.
    pub event_id: Option<i64>,
    /// `hash_mismatch` (a row was edited), `prev_hash_mismatch` (a row was replaced),
    /// `sequence_gap` (a row was deleted), `truncated_tail` (the newest rows were deleted),
    /// `beyond_head` (rows were added past the recorded head), `missing_head` (the chain
    /// head itself was deleted), `unkeyed_after_keyed` (a row without the chain key follows
    /// a keyed one), `unknown_hash_format`, `head_seal_mismatch` (the chain no longer ends
    /// where its sealed head says: rewritten by someone without the key).
    pub kind: String,
}

/// Snapshots are stored as canonical JSON text; one that does not parse (tampered with)
/// is shown as the raw string rather than failing the whole listing.
fn parse_snapshot(text: &str) -> serde_json::Value {
    serde_json::from_str(text).unwrap_or_else(|_| serde_json::Value::String(text.to_string()))
}

/// An invitation as admins see it (never its link: the link is in the invitee's email
/// only, so nobody else can choose their password).
#[derive(Debug, Clone, Serialize, ToSchema)]
#[schema(example = json!({
    "id": 7, "org_id": 1, "email": "qa.lead@acme.test", "display_name": "Quinn Alvarez",
    "role": "quality", "time_zone": "America/New_York", "phone": null,
    "invited_by_user_id": 1, "status": "pending", "sent_count": 1,
    "created_at": "2026-11-23T09:00:00Z", "sent_at": "2026-11-23T09:00:00Z",
    "expires_at": "2026-11-30T09:00:00Z", "accepted_at": null, "accepted_user_id": null,
    "revoked_at": null, "version": 1
}))]
pub struct InvitationView {
    pub id: i64,
    /// The organization the invitee joins.
    pub org_id: i64,
    pub email: String,
    pub display_name: String,
    pub role: Role,
    pub time_zone: String,
    pub phone: Option<String>,
    /// `null`: the bootstrap command.
    pub invited_by_user_id: Option<i64>,
    pub status: invitation::InvitationStatus,
    /// How many links were sent (a re-send replaces the link).
    pub sent_count: i32,
    pub created_at: DateTime<Utc>,
    pub sent_at: DateTime<Utc>,
    /// When the current link stops working (7 days after it was sent).
    pub expires_at: DateTime<Utc>,
    pub accepted_at: Option<DateTime<Utc>>,
    /// The account the invitee created.
    pub accepted_user_id: Option<i64>,
    pub revoked_at: Option<DateTime<Utc>>,
    pub version: i32,
}

impl InvitationView {
    pub fn new(m: &invitation::Model, now: DateTime<Utc>) -> Self {
        Self {
            id: m.id,
            org_id: m.org_id,
            email: m.email.clone(),
            display_name: m.display_name.clone(),
            role: m.role,
            time_zone: m.time_zone.clone(),
            phone: m.phone.clone(),
            invited_by_user_id: m.invited_by_user_id,
            status: invitation::status(m, now),
            sent_count: m.sent_count,
            created_at: m.created_at,
            sent_at: m.sent_at,
            expires_at: m.expires_at,
            accepted_at: m.accepted_at,
            accepted_user_id: m.accepted_user_id,
            revoked_at: m.revoked_at,
            version: m.version,
        }
    }
}
