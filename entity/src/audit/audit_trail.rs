//! Appending to and reading an organization's audit chain. Every mutation in the api and
//! the worker goes through [`append`], inside the transaction of the change it records.

use chrono::{DateTime, Utc};
use sea_orm::{
    ActiveModelTrait, ActiveValue::Set, ColumnTrait, ConnectionTrait, DbErr, EntityTrait,
    QueryFilter, QueryOrder, QuerySelect,
};
use serde_json::Value;

use crate::audit::{
    BrokenLink, CanonicalEvent, ChainKeys, ChainVerifier, Coverage, FORMAT_KEYED, GENESIS_HASH,
    HeadView, KeyRing, canonical_json, head_seal, keyed_chain_hash,
};
use crate::{audit_chain_head, audit_event};

/// Who did it, where and when: the context every audit entry shares.
#[derive(Debug, Clone)]
pub struct Actor {
    pub org_id: i64,
    /// `None` when the system acts on its own (bootstrap, scheduled jobs).
    pub user_id: Option<i64>,
    pub request_id: Option<String>,
    pub at: DateTime<Utc>,
    /// The installation's audit chain keys: the current one keys this entry.
    pub chain_keys: ChainKeys,
}

/// What happened to which record.
#[derive(Debug, Clone)]
pub struct Entry {
    pub entity_type: &'static str,
    pub entity_id: String,
    pub action: std::borrow::Cow<'static, str>,
    pub before: Option<Value>,
    pub after: Option<Value>,
    pub reason: Option<String>,
}

impl Entry {
    pub fn new(
        entity_type: &'static str,
        entity_id: impl ToString,
        action: impl Into<std::borrow::Cow<'static, str>>,
    ) -> Self {
        Self {
            entity_type,
            entity_id: entity_id.to_string(),
            action: action.into(),
            before: None,
            after: None,
            reason: None,
        }
    }

    pub fn before(mut self, value: Value) -> Self {
        self.before = Some(value);
        self
    }

    pub fn after(mut self, value: Value) -> Self {
        self.after = Some(value);
        self
    }

    pub fn reason(mut self, reason: Option<String>) -> Self {
        self.reason = reason;
        self
    }
}

/// Starts the chain of a new organization. Call in the transaction that creates it.
pub async fn start_chain<C: ConnectionTrait>(
    conn: &C,
    keys: &KeyRing,
    org_id: i64,
) -> Result<(), DbErr> {
    let key = keys.current();
    audit_chain_head::ActiveModel {
        org_id: Set(org_id),
        last_seq: Set(0),
        last_hash: Set(GENESIS_HASH.to_string()),
        seal: Set(Some(head_seal(key, org_id, 0, GENESIS_HASH))),
        seal_key_id: Set(Some(key.id().to_string())),
    }
    .insert(conn)
    .await?;
    Ok(())
}

/// Seals every chain head that has no seal yet (chains of an installation that ran
/// before its chain was keyed): from here on a chain rewritten without the key no longer
/// matches its head. Compare-and-set on the head's position, so an append running
/// meanwhile is never overwritten. Returns how many heads were sealed.
pub async fn seal_unsealed_heads<C: ConnectionTrait>(
    conn: &C,
    keys: &KeyRing,
) -> Result<u64, DbErr> {
    use sea_orm::sea_query::Expr;
    let key = keys.current();
    let heads = audit_chain_head::Entity::find()
        .filter(audit_chain_head::Column::Seal.is_null())
        .all(conn)
        .await?;
    let mut sealed = 0;
    for head in heads {
        let done = audit_chain_head::Entity::update_many()
            .col_expr(
                audit_chain_head::Column::Seal,
                Expr::value(head_seal(key, head.org_id, head.last_seq, &head.last_hash)),
            )
            .col_expr(audit_chain_head::Column::SealKeyId, Expr::value(key.id()))
            .filter(audit_chain_head::Column::OrgId.eq(head.org_id))
            .filter(audit_chain_head::Column::LastSeq.eq(head.last_seq))
            .filter(audit_chain_head::Column::LastHash.eq(head.last_hash.as_str()))
            .filter(audit_chain_head::Column::Seal.is_null())
            .exec(conn)
            .await?;
        sealed += done.rows_affected;
    }
    Ok(sealed)
}

/// The key id of the newest keyed row or sealed head of the installation, if any: a
/// process that does not hold that key would write rows no other replica can check.
pub async fn newest_key_id<C: ConnectionTrait>(conn: &C) -> Result<Option<String>, DbErr> {
    let row: Option<Option<String>> = audit_event::Entity::find()
        .select_only()
        .column(audit_event::Column::KeyId)
        .filter(audit_event::Column::HashFormat.eq(FORMAT_KEYED))
        .order_by_desc(audit_event::Column::Id)
        .limit(1)
        .into_tuple()
        .one(conn)
        .await?;
    if let Some(Some(id)) = row {
        return Ok(Some(id));
    }
    let head: Option<Option<String>> = audit_chain_head::Entity::find()
        .select_only()
        .column(audit_chain_head::Column::SealKeyId)
        .filter(audit_chain_head::Column::SealKeyId.is_not_null())
        .limit(1)
        .into_tuple()
        .one(conn)
        .await?;
    Ok(head.flatten())
}

/// Appends one event to the actor's organization chain.
///
/// Locks the chain head (`SELECT … FOR UPDATE` on PostgreSQL; SQLite has one writer at a
/// time anyway), so concurrent appends from any number of processes queue up instead of
/// forking the chain; the unique `(org_id, seq)` index backs this up.
pub async fn append<C: ConnectionTrait>(
    conn: &C,
    actor: &Actor,
    entry: Entry,
) -> Result<audit_event::Model, DbErr> {
    let head = audit_chain_head::Entity::find_by_id(actor.org_id)
        .lock_exclusive()
        .one(conn)
        .await?
        .ok_or_else(|| {
            DbErr::RecordNotFound(format!("audit chain of organization {}", actor.org_id))
        })?;
    let seq = head.last_seq + 1;
    let key = actor.chain_keys.current();
    let mut event = audit_event::Model {
        id: 0,
        org_id: actor.org_id,
        seq,
        actor_user_id: actor.user_id,
        entity_type: entry.entity_type.to_string(),
        entity_id: entry.entity_id,
        action: entry.action.to_string(),
        before: entry.before.as_ref().map(canonical_json),
        after: entry.after.as_ref().map(canonical_json),
        reason: entry.reason,
        request_id: actor.request_id.clone(),
        occurred_at: crate::clock::truncate_to_micros(actor.at),
        prev_hash: head.last_hash.clone(),
        hash: String::new(),
        hash_format: FORMAT_KEYED,
        key_id: Some(key.id().to_string()),
    };
    event.hash = keyed_chain_hash(key, &event.prev_hash, &CanonicalEvent::from(&event));
    let hash = event.hash.clone();
    let inserted = audit_event::ActiveModel {
        id: sea_orm::ActiveValue::NotSet,
        org_id: Set(event.org_id),
        seq: Set(event.seq),
        actor_user_id: Set(event.actor_user_id),
        entity_type: Set(event.entity_type),
        entity_id: Set(event.entity_id),
        action: Set(event.action),
        before: Set(event.before),
        after: Set(event.after),
        reason: Set(event.reason),
        request_id: Set(event.request_id),
        occurred_at: Set(event.occurred_at),
        prev_hash: Set(event.prev_hash),
        hash: Set(event.hash),
        hash_format: Set(event.hash_format),
        key_id: Set(event.key_id),
    }
    .insert(conn)
    .await?;
    audit_chain_head::ActiveModel {
        org_id: Set(actor.org_id),
        last_seq: Set(seq),
        seal: Set(Some(head_seal(key, actor.org_id, seq, &hash))),
        seal_key_id: Set(Some(key.id().to_string())),
        last_hash: Set(hash),
    }
    .update(conn)
    .await?;
    Ok(inserted)
}

/// Result of re-computing an organization's chain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verification {
    pub head_seq: i64,
    /// What could be recomputed, and what could not (keys this installation lacks).
    pub coverage: Coverage,
    pub broken: Option<BrokenLink>,
}

impl Verification {
    /// Rows whose hash was recomputed and matched.
    pub fn checked(&self) -> u64 {
        self.coverage.checked
    }

    /// Every row and the head were checked, and nothing is broken.
    pub fn intact(&self) -> bool {
        self.broken.is_none() && self.coverage.unchecked == 0
    }

    /// `intact`, `broken`, or `incomplete` (nothing broken among what could be checked,
    /// but some rows are keyed with a key this installation does not hold).
    pub fn status(&self) -> &'static str {
        if self.broken.is_some() {
            "broken"
        } else if self.coverage.unchecked > 0 {
            "incomplete"
        } else {
            "intact"
        }
    }

    /// What the result does not prove, in plain words.
    pub fn caveats(&self) -> Vec<String> {
        let mut notes = Vec::new();
        if self.coverage.unchecked > 0 {
            notes.push(format!(
                "{} row(s) could not be checked: they are keyed with key(s) {} which this \
                 installation does not hold (every replica needs the same key file, with \
                 every earlier key kept)",
                self.coverage.unchecked,
                self.coverage
                    .unknown_key_ids
                    .iter()
                    .cloned()
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
        }
        if self.coverage.plain > 0 {
            notes.push(format!(
                "{} row(s) were written before the chain was keyed: they are consistent, but \
                 someone able to write the database could have rewritten them; a checkpoint \
                 kept outside the system covers them",
                self.coverage.plain
            ));
        }
        notes
    }
}

/// Re-computes the whole chain of `org_id`, reading it in pages so memory stays flat.
/// Reads the head and the events in one snapshot, so appends running meanwhile do not
/// show up as a broken chain.
pub async fn verify(
    db: &sea_orm::DatabaseConnection,
    keys: &KeyRing,
    org_id: i64,
) -> Result<Verification, DbErr> {
    use sea_orm::{AccessMode, IsolationLevel, TransactionTrait};
    let snapshot = match db.get_database_backend() {
        sea_orm::DbBackend::Postgres => {
            db.begin_with_config(
                Some(IsolationLevel::RepeatableRead),
                Some(AccessMode::ReadOnly),
            )
            .await?
        }
        // A SQLite read transaction is a snapshot already.
        _ => db.begin().await?,
    };
    let result = verify_in(&snapshot, keys, org_id).await;
    snapshot.commit().await?;
    result
}

async fn verify_in<C: ConnectionTrait>(
    conn: &C,
    keys: &KeyRing,
    org_id: i64,
) -> Result<Verification, DbErr> {
    const PAGE: u64 = 500;
    let head = audit_chain_head::Entity::find_by_id(org_id)
        .one(conn)
        .await?;
    let head_seq = head.as_ref().map_or(0, |h| h.last_seq);
    let mut verifier = ChainVerifier::new(keys);
    let mut after_seq = 0_i64;
    loop {
        let page = audit_event::Entity::find()
            .filter(audit_event::Column::OrgId.eq(org_id))
            .filter(audit_event::Column::Seq.gt(after_seq))
            .order_by_asc(audit_event::Column::Seq)
            .limit(PAGE)
            .all(conn)
            .await?;
        let Some(last) = page.last() else { break };
        after_seq = last.seq;
        for event in &page {
            if let Err(broken) = verifier.push(event) {
                return Ok(Verification {
                    head_seq,
                    coverage: verifier.coverage().clone(),
                    broken: Some(broken),
                });
            }
        }
        if (page.len() as u64) < PAGE {
            break;
        }
    }
    let (coverage, result) = verifier.finish(head.as_ref().map(HeadView::from));
    Ok(Verification {
        head_seq,
        coverage,
        broken: result.err(),
    })
}
