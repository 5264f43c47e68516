//! Signed checkpoints of an organization's audit chain: external anchoring.
//!
//! The keyed chain stops someone without the key; a checkpoint also stops someone with
//! it (or with an old backup of the head): it states "organization O's chain had row N
//! with hash H at time T", signed with an Ed25519 key derived from the chain key. Its
//! copies leave the system (an email to the organization's quality users, a domain
//! event for their tools); a kept copy is checked against the chain later, and its
//! signature by anyone with the published public key, without any secret.

use chrono::{DateTime, SecondsFormat, Utc};
use sea_orm::entity::prelude::*;
use sea_orm::{ActiveValue::NotSet, ActiveValue::Set, ConnectionTrait, QueryOrder};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::audit::chain_key::checkpoint_signature_valid;
use crate::audit::{ChainKey, KeyRing};
use crate::{audit_chain_head, audit_event};

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "audit_checkpoints")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    pub org_id: i64,
    /// The chain's last row when the checkpoint was taken (0: an empty chain).
    pub seq: i64,
    /// That row's hash.
    pub head_hash: String,
    pub created_at: DateTimeUtc,
    /// The chain key whose derived signing key signed it.
    pub key_id: String,
    /// Ed25519 public key (hex) that checks `signature`.
    pub public_key: String,
    /// Ed25519 signature (hex) of [`statement`].
    pub signature: String,
    /// `daily` (the worker's schedule) or `manual` (an operator's, e.g. re-anchoring after
    /// a restore).
    pub kind: String,
    pub reason: Option<String>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}

/// What a checkpoint signs: one line per fact, so a person can read what they keep.
pub fn statement(
    org_id: i64,
    seq: i64,
    head_hash: &str,
    at: DateTime<Utc>,
    key_id: &str,
) -> String {
    format!(
        "cmo-orchestrator audit checkpoint v1\norganization: {org_id}\nseq: {seq}\n\
         head_hash: {head_hash}\nat: {}\nkey_id: {key_id}\n",
        at.to_rfc3339_opts(SecondsFormat::Micros, true)
    )
}

/// A checkpoint as a person keeps it (from the email or the API) and hands back to be
/// checked.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"org_id": 1, "seq": 42,
    "head_hash": "4e7a1c0b9f3d2e8a7b6c5d4e3f2a1b0c9d8e7f6a5b4c3d2e1f0a9b8c7d6e5f4a",
    "at": "2026-12-01T00:30:00.000000Z", "key_id": "3f9a0c1d2b4e5f60",
    "public_key": "8f2c9e4d1a0b3c5e7f6a8b9c0d1e2f3a4b5c6d7e8f9a0b1c2d3e4f5a6b7c8d9e",
    "signature": "5d1e0c9b8a7f6e5d4c3b2a1f0e9d8c7b6a5f4e3d2c1b0a9f8e7d6c5b4a3f2e1d0c9b8a7f6e5d4c3b2a1f0e9d8c7b6a5f4e3d2c1b0a9f8e7d6c5b4a3f2e1d0abc"}))]
pub struct KeptCheckpoint {
    pub org_id: i64,
    #[schema(minimum = 0)]
    pub seq: i64,
    #[schema(pattern = "^[0-9a-fA-F]{64}$")]
    pub head_hash: String,
    /// When it was taken (RFC 3339, microseconds, UTC), as signed.
    pub at: DateTime<Utc>,
    #[schema(pattern = "^[0-9a-fA-F]{16}$")]
    pub key_id: String,
    /// Ed25519 public key, 64 hex digits.
    #[schema(pattern = "^[0-9a-f]{64}$")]
    pub public_key: String,
    /// Ed25519 signature of the statement, 128 hex digits.
    #[schema(pattern = "^[0-9a-f]{128}$")]
    pub signature: String,
}

impl From<&Model> for KeptCheckpoint {
    fn from(c: &Model) -> Self {
        KeptCheckpoint {
            org_id: c.org_id,
            seq: c.seq,
            head_hash: c.head_hash.clone(),
            at: c.created_at,
            key_id: c.key_id.clone(),
            public_key: c.public_key.clone(),
            signature: c.signature.clone(),
        }
    }
}

impl KeptCheckpoint {
    /// The statement its signature covers.
    pub fn statement(&self) -> String {
        statement(
            self.org_id,
            self.seq,
            &self.head_hash,
            self.at,
            &self.key_id,
        )
    }

    /// Whether its signature is valid for its own public key (needs no secret).
    pub fn signature_valid(&self) -> bool {
        checkpoint_signature_valid(
            &self.public_key,
            self.statement().as_bytes(),
            &self.signature,
        )
    }
}

fn sign(key: &ChainKey, org_id: i64, seq: i64, head_hash: &str, at: DateTime<Utc>) -> String {
    key.sign_checkpoint(statement(org_id, seq, head_hash, at, key.id()).as_bytes())
}

/// Takes a checkpoint of `org_id`'s chain as it stands in the caller's transaction.
/// The caller verified the chain first: a checkpoint of a broken chain would anchor the
/// tampering.
pub async fn take<C: ConnectionTrait>(
    conn: &C,
    keys: &KeyRing,
    org_id: i64,
    at: DateTime<Utc>,
    kind: &str,
    reason: Option<String>,
) -> Result<Model, DbErr> {
    let head = audit_chain_head::Entity::find_by_id(org_id)
        .one(conn)
        .await?
        .ok_or_else(|| DbErr::RecordNotFound(format!("audit chain of organization {org_id}")))?;
    let key = keys.current();
    let at = crate::clock::truncate_to_micros(at);
    let taken = ActiveModel {
        id: NotSet,
        org_id: Set(org_id),
        seq: Set(head.last_seq),
        head_hash: Set(head.last_hash.clone()),
        created_at: Set(at),
        key_id: Set(key.id().to_string()),
        public_key: Set(key.checkpoint_public_key()),
        signature: Set(sign(key, org_id, head.last_seq, &head.last_hash, at)),
        kind: Set(kind.to_string()),
        reason: Set(reason),
    }
    .insert(conn)
    .await?;
    // Copies leave the system: the organization's tools (feed, webhooks) and, through
    // the worker's notifications, its quality users' inboxes.
    crate::domain_event::emit_to(
        conn,
        crate::domain_event::Audience {
            program_id: None,
            // The organization itself reads it (not a program's parties).
            sponsor_org_id: org_id,
            cmo_org_id: None,
        },
        crate::domain_event::Event::AuditCheckpoint(crate::domain_event::AuditCheckpointTaken {
            checkpoint_id: taken.id,
            org_id,
            seq: taken.seq,
            head_hash: taken.head_hash.clone(),
            at: taken.created_at,
            key_id: taken.key_id.clone(),
            public_key: taken.public_key.clone(),
            signature: taken.signature.clone(),
            kind: taken.kind.clone(),
            reason: taken.reason.clone(),
        }),
        at,
    )
    .await?;
    Ok(taken)
}

/// The newest checkpoint of `org_id`, if any.
pub async fn latest<C: ConnectionTrait>(conn: &C, org_id: i64) -> Result<Option<Model>, DbErr> {
    Entity::find()
        .filter(Column::OrgId.eq(org_id))
        .order_by_desc(Column::Id)
        .one(conn)
        .await
}

/// Organizations whose chain moved since their last checkpoint (or never had one).
pub async fn moved_since_last<C: ConnectionTrait>(conn: &C) -> Result<Vec<i64>, DbErr> {
    let heads = audit_chain_head::Entity::find()
        .filter(audit_chain_head::Column::LastSeq.gt(0))
        .all(conn)
        .await?;
    let mut moved = Vec::new();
    for head in heads {
        let last = latest(conn, head.org_id).await?;
        if last.is_none_or(|c| c.seq != head.last_seq || c.head_hash != head.last_hash) {
            moved.push(head.org_id);
        }
    }
    Ok(moved)
}

/// How a kept checkpoint compares with the chain as it is now.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ChainAgreement {
    /// The chain still holds the row the checkpoint names, with the same hash: nothing up
    /// to it was rewritten or removed.
    Matches,
    /// The row exists with another hash: the chain up to it was rewritten.
    Rewritten,
    /// The chain is shorter than the checkpoint: rows after its end were removed (or the
    /// database was restored from a backup older than the checkpoint).
    Shorter,
    /// The checkpoint names another organization than the caller's.
    OtherOrganization,
}

/// The verdict on a kept checkpoint.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
#[schema(example = json!({"signature_valid": true, "signed_by_this_installation": true,
    "chain": "matches", "chain_head_seq": 57,
    "detail": "the chain still holds row 42 with the checkpoint's hash: nothing up to it was rewritten or removed"}))]
pub struct CheckpointVerdict {
    /// The signature is valid for the checkpoint's public key.
    pub signature_valid: bool,
    /// That public key is one of this installation's (derived from a chain key it holds).
    pub signed_by_this_installation: bool,
    pub chain: ChainAgreement,
    /// Where the chain ends now.
    pub chain_head_seq: i64,
    /// The verdict in plain words.
    pub detail: String,
}

/// Compares `kept` with `org_id`'s chain (the caller's organization).
pub async fn check_kept<C: ConnectionTrait>(
    conn: &C,
    keys: &KeyRing,
    org_id: i64,
    kept: &KeptCheckpoint,
) -> Result<CheckpointVerdict, DbErr> {
    let signature_valid = kept.signature_valid();
    let signed_by_this_installation = keys
        .get(&kept.key_id)
        .is_some_and(|k| k.checkpoint_public_key() == kept.public_key.to_ascii_lowercase());
    let head_seq = audit_chain_head::Entity::find_by_id(org_id)
        .one(conn)
        .await?
        .map_or(0, |h| h.last_seq);
    let (chain, detail) = if kept.org_id != org_id {
        (
            ChainAgreement::OtherOrganization,
            format!(
                "the checkpoint is of organization {}, not yours",
                kept.org_id
            ),
        )
    } else if kept.seq > head_seq {
        (
            ChainAgreement::Shorter,
            format!(
                "the chain ends at row {head_seq}, before the checkpoint's row {}: rows after \
                 {head_seq} were removed, or the database was restored from a backup older \
                 than the checkpoint",
                kept.seq
            ),
        )
    } else {
        let stored = if kept.seq == 0 {
            Some(super::GENESIS_HASH.to_string())
        } else {
            audit_event::Entity::find()
                .filter(audit_event::Column::OrgId.eq(org_id))
                .filter(audit_event::Column::Seq.eq(kept.seq))
                .one(conn)
                .await?
                .map(|e| e.hash)
        };
        if stored.as_deref() == Some(kept.head_hash.to_ascii_lowercase().as_str()) {
            (
                ChainAgreement::Matches,
                format!(
                    "the chain still holds row {} with the checkpoint's hash: nothing up to it \
                     was rewritten or removed",
                    kept.seq
                ),
            )
        } else {
            (
                ChainAgreement::Rewritten,
                format!(
                    "row {} has another hash than the checkpoint says: the chain up to it was \
                     rewritten",
                    kept.seq
                ),
            )
        }
    };
    let detail = if signature_valid {
        detail
    } else {
        format!(
            "the signature is not valid for this statement (altered, or not a checkpoint); {detail}"
        )
    };
    Ok(CheckpointVerdict {
        signature_valid,
        signed_by_this_installation,
        chain,
        chain_head_seq: head_seq,
        detail,
    })
}

/// The checkpoint as a block of text for an email: the statement, then the JSON to keep.
pub fn email_block(c: &Model) -> String {
    let kept = KeptCheckpoint::from(c);
    let json = serde_json::to_string_pretty(&kept).unwrap_or_default();
    format!("{}\n{json}", kept.statement())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kept(key: &ChainKey) -> KeptCheckpoint {
        let at = DateTime::from_timestamp(1_796_000_000, 123_000).unwrap_or_default();
        KeptCheckpoint {
            org_id: 3,
            seq: 42,
            head_hash: "ab".repeat(32),
            at,
            key_id: key.id().to_string(),
            public_key: key.checkpoint_public_key(),
            signature: sign(key, 3, 42, &"ab".repeat(32), at),
        }
    }

    #[test]
    fn a_kept_checkpoint_checks_with_its_public_key_and_any_edit_breaks_it() {
        let key = ChainKey::generate();
        let good = kept(&key);
        assert!(good.signature_valid());
        for edit in [
            |k: &mut KeptCheckpoint| k.seq = 41,
            |k: &mut KeptCheckpoint| k.org_id = 4,
            |k: &mut KeptCheckpoint| k.head_hash = "cd".repeat(32),
            |k: &mut KeptCheckpoint| k.at += chrono::TimeDelta::seconds(1),
            |k: &mut KeptCheckpoint| k.public_key = ChainKey::generate().checkpoint_public_key(),
        ] {
            let mut bad = good.clone();
            edit(&mut bad);
            assert!(!bad.signature_valid(), "{bad:?}");
        }
    }

    #[test]
    fn the_statement_reads_as_what_it_says() {
        let key = ChainKey::from_hex(&"11".repeat(32)).unwrap_or_else(|_| ChainKey::generate());
        let text = kept(&key).statement();
        assert!(
            text.starts_with("cmo-orchestrator audit checkpoint v1\norganization: 3\nseq: 42\n")
        );
        assert!(text.contains(&format!("key_id: {}\n", key.id())));
    }
}
