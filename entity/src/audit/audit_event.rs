//! One entry of an organization's append-only, hash-chained audit trail.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "audit_events")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    pub org_id: i64,
    /// Position in the organization's chain, from 1 without gaps.
    pub seq: i64,
    /// `None` for acts of the system itself (bootstrap, worker jobs).
    pub actor_user_id: Option<i64>,
    pub entity_type: String,
    pub entity_id: String,
    pub action: String,
    /// Canonical JSON of the record before the change.
    pub before: Option<String>,
    /// Canonical JSON of the record after the change.
    pub after: Option<String>,
    pub reason: Option<String>,
    pub request_id: Option<String>,
    pub occurred_at: DateTimeUtc,
    pub prev_hash: String,
    pub hash: String,
    /// 1: plain SHA-256, written before the chain was keyed; 2: keyed (HMAC-SHA256).
    pub hash_format: i16,
    /// The id of the chain key of a keyed row.
    pub key_id: Option<String>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}

/// What reviewing an entry signs: the entry, bound by its chain hash (which covers its
/// whole content, before and after included).
pub const REVIEW_SIGNED_FIELDS: &[&str] = &[
    "id",
    "seq",
    "entity_type",
    "entity_id",
    "action",
    "occurred_at",
    "hash",
];

/// An entry's [`REVIEW_SIGNED_FIELDS`].
pub fn signed_content(e: &Model) -> serde_json::Value {
    serde_json::json!({
        "id": e.id,
        "seq": e.seq,
        "entity_type": e.entity_type,
        "entity_id": e.entity_id,
        "action": e.action,
        "occurred_at": e.occurred_at,
        "hash": e.hash,
    })
}
