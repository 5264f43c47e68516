//! How organizations, people and their API tokens read on the wire.

use chrono::{DateTime, Utc};
use entity::{OrgKind, Role, api_token, audit_event, organization, user};
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
    /// The sponsor that registered this partner organization.
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

#[derive(Debug, Clone, Serialize, ToSchema)]
#[schema(example = json!({
    "id": 4, "user_id": 3, "issued_by_user_id": 1, "name": "LIMS integration", "token_prefix": "cmo_3f9a2c1b",
    "created_at": "2026-11-23T09:00:00Z", "expires_at": "2027-11-23T00:00:00Z",
    "revoked_at": null, "last_used_at": null
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
        }
    }
}

/// A newly issued token with its secret. The secret is shown only in this response.
#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({
    "token": {"id": 4, "user_id": 3, "issued_by_user_id": 1, "name": "LIMS integration", "token_prefix": "cmo_3f9a2c1b",
              "created_at": "2026-11-23T09:00:00Z", "expires_at": null, "revoked_at": null, "last_used_at": null},
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
    "password_is_temporary": false,
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
    /// Whether a signing password is set (needed for e-signatures).
    pub has_password: bool,
    /// The password was set by an admin and must be replaced by the user before signing.
    pub password_is_temporary: bool,
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
            password_is_temporary: m.password_is_temporary,
            created_at: m.created_at,
            updated_at: m.updated_at,
            version: m.version,
        }
    }
}

#[derive(Debug, Clone, Serialize, ToSchema)]
#[schema(example = json!({
    "id": 17, "seq": 5, "actor_user_id": 1, "entity_type": "user", "entity_id": "3",
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

impl From<&audit_event::Model> for AuditEventView {
    fn from(m: &audit_event::Model) -> Self {
        Self {
            id: m.id,
            seq: m.seq,
            actor_user_id: m.actor_user_id,
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
    /// head itself was deleted).
    pub kind: String,
}

/// Snapshots are stored as canonical JSON text; one that does not parse (tampered with)
/// is shown as the raw string rather than failing the whole listing.
fn parse_snapshot(text: &str) -> serde_json::Value {
    serde_json::from_str(text).unwrap_or_else(|_| serde_json::Value::String(text.to_string()))
}
