//! Appending to and reading an organization's audit chain. Every mutation in the api and
//! the worker goes through [`append`], inside the transaction of the change it records.

use chrono::{DateTime, Utc};
use sea_orm::{
    ActiveModelTrait, ActiveValue::Set, ColumnTrait, ConnectionTrait, DbErr, EntityTrait,
    QueryFilter, QueryOrder, QuerySelect,
};
use serde_json::Value;

use crate::audit::{
    BrokenLink, CanonicalEvent, ChainVerifier, GENESIS_HASH, canonical_json, chain_hash,
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
pub async fn start_chain<C: ConnectionTrait>(conn: &C, org_id: i64) -> Result<(), DbErr> {
    audit_chain_head::ActiveModel {
        org_id: Set(org_id),
        last_seq: Set(0),
        last_hash: Set(GENESIS_HASH.to_string()),
    }
    .insert(conn)
    .await?;
    Ok(())
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
    };
    event.hash = chain_hash(&event.prev_hash, &CanonicalEvent::from(&event));
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
    }
    .insert(conn)
    .await?;
    audit_chain_head::ActiveModel {
        org_id: Set(actor.org_id),
        last_seq: Set(seq),
        last_hash: Set(hash),
    }
    .update(conn)
    .await?;
    Ok(inserted)
}

/// Result of re-computing an organization's chain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verification {
    pub checked: u64,
    pub head_seq: i64,
    pub broken: Option<BrokenLink>,
}

/// Re-computes the whole chain of `org_id`, reading it in pages so memory stays flat.
/// Reads the head and the events in one snapshot, so appends running meanwhile do not
/// show up as a broken chain.
pub async fn verify(db: &sea_orm::DatabaseConnection, org_id: i64) -> Result<Verification, DbErr> {
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
    let result = verify_in(&snapshot, org_id).await;
    snapshot.commit().await?;
    result
}

async fn verify_in<C: ConnectionTrait>(conn: &C, org_id: i64) -> Result<Verification, DbErr> {
    const PAGE: u64 = 500;
    let head = audit_chain_head::Entity::find_by_id(org_id)
        .one(conn)
        .await?;
    let mut verifier = ChainVerifier::default();
    let mut after_seq = 0_i64;
    let mut checked = 0_u64;
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
                    checked,
                    head_seq: head.as_ref().map_or(0, |h| h.last_seq),
                    broken: Some(broken),
                });
            }
            checked += 1;
        }
        if (page.len() as u64) < PAGE {
            break;
        }
    }
    let head_seq = head.as_ref().map_or(0, |h| h.last_seq);
    let result = verifier.finish(head.as_ref().map(|h| (h.last_seq, h.last_hash.as_str())));
    Ok(Verification {
        checked,
        head_seq,
        broken: result.err(),
    })
}
