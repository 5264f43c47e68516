//! Cursors in commit order without one row that every event writer waits on
//! (PostgreSQL).
//!
//! A transaction writing an event does not take its cursor: the row gets a placeholder
//! (negative, the column's default: `-nextval('domain_event_unsequenced')`) that no reader
//! pages to (`after` is 0 or more). Once committed, the sequencer gives the waiting rows
//! their cursors in one short transaction holding the head row: it sees only committed
//! rows, and the next sequencer starts only after it commits, so every cursor is given
//! after every smaller one is visible. A reader paging with `after=` therefore never
//! skips an event that commits later, and event writers of different organizations no
//! longer wait for each other's commits (before, each held the head row from its event to
//! its commit). Webhook deliveries, which carry the cursor, are queued by the sequencer.
//!
//! Who sequences: the api after each write request that wrote events (one batch, and only
//! if no sequencer is at work: it leaves them to that one); the feed and a subscription's
//! deliveries before they read, so a write is in the next read; the worker's webhook loop,
//! woken by the event's `NOTIFY` at commit, and its notification pass; the api and the
//! worker once more when they stop, so events are not left waiting for a release that
//! does not sequence (a rollback). The previous release's writers take their cursors
//! under the same head row lock, so both can run side by side. Reading before sequencing
//! is never wrong, only less fresh: a reader whose sequencing fails (or waits past
//! [`LOCK_WAIT`]) logs it and reads ([`catch_up`]).
//!
//! The order is "visible first, numbered first": an event's cursor is given after its
//! commit and is larger than every cursor visible then. Two events that commit close
//! together may be numbered in the order written rather than the order committed; no
//! reader can tell, since neither was visible before both were numbered.
//!
//! SQLite has one writer at a time anyway: an event takes its cursor in its own
//! transaction there (see `emit_to`), and nothing waits to be sequenced.

use sea_orm::{
    ColumnTrait, ConnectionTrait, DatabaseConnection, DbBackend, DbErr, EntityTrait, QueryFilter,
    QuerySelect, Statement, TransactionTrait,
    sea_query::{Expr, LockBehavior, LockType},
};

use super::{Column, Entity, head};
use crate::webhook::{EventToDeliver, fan_out_events};

/// Events given their cursors per sequencer transaction.
const BATCH: i64 = 1_000;

/// How long a sequencer waits for a lock (the head row behind a previous release's
/// writer, an event row a CMO merge is moving) before it gives up for this time.
pub const LOCK_WAIT: &str = "5s";

/// What a sequencer does when another one is at work.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wait {
    /// Waits for it, then sequences what is left: a reader that must show every event
    /// committed before it started.
    ForTurn,
    /// Leaves the work to it: a writer that has just committed (the one at work, the
    /// worker woken by the commit's `NOTIFY`, or the next reader sequences the event).
    IfIdle,
}

/// Gives the committed events still waiting their cursors (in the order they were
/// written) and queues their webhook deliveries. Returns how many it sequenced. Nothing to
/// do on SQLite.
pub async fn sequence_pending(db: &DatabaseConnection, wait: Wait) -> Result<usize, DbErr> {
    if db.get_database_backend() != DbBackend::Postgres {
        return Ok(0);
    }
    let mut sequenced = 0;
    // Bounded: a steady stream of new events cannot keep one caller here forever, and a
    // request that has committed does not take a backlog on (the worker does).
    let batches = match wait {
        Wait::ForTurn => 100,
        Wait::IfIdle => 1,
    };
    for _ in 0..batches {
        // Without a lock first: the cursor index's negative range, empty almost always.
        let waiting = Entity::find()
            .select_only()
            .column(Column::Id)
            .filter(Column::Cursor.lt(0))
            .limit(1)
            .into_tuple::<i64>()
            .one(db)
            .await?;
        if waiting.is_none() {
            break;
        }
        let txn = db.begin().await?;
        txn.execute_unprepared(&format!("SET LOCAL lock_timeout = '{LOCK_WAIT}'"))
            .await?;
        let mut head_row = head::Entity::find_by_id(1);
        head_row = match wait {
            Wait::ForTurn => head_row.lock(LockType::Update),
            Wait::IfIdle => head_row.lock_with_behavior(LockType::Update, LockBehavior::SkipLocked),
        };
        let Some(head_now) = head_row.one(&txn).await? else {
            // IfIdle and another sequencer (or a previous release's writer) holds it.
            txn.rollback().await?;
            break;
        };
        // A statement of its own, after the lock: under READ COMMITTED it reads a snapshot
        // taken once the previous sequencer has committed, so it never renumbers the
        // events that one numbered (one statement locking the head and numbering would
        // read the rows as they were before its wait).
        let n = sequence_batch(&txn, head_now.last_cursor).await?;
        txn.commit().await?;
        sequenced += n;
        if (n as i64) < BATCH {
            break;
        }
    }
    Ok(sequenced)
}

/// Sequences what has committed, waiting its turn ([`Wait::ForTurn`]): before a read, and
/// when a process stops. A failure only makes a read less fresh (the next sequencer takes
/// the events), so it is logged and the caller goes on.
pub async fn catch_up(db: &DatabaseConnection) {
    if let Err(err) = sequence_pending(db, Wait::ForTurn).await {
        tracing::warn!(%err, "committed events not sequenced now; the next sequencer will");
    }
}

/// Sequences after a write has committed, unless a sequencer is at work
/// ([`Wait::IfIdle`]). A failure is logged: the write stands, and the worker (woken by the
/// commit) or the next reader sequences its events.
pub async fn after_write(db: &DatabaseConnection) {
    if let Err(err) = sequence_pending(db, Wait::IfIdle).await {
        tracing::warn!(%err, "the write's events not sequenced now; the next sequencer will");
    }
}

/// One batch in the caller's transaction, which holds the head row at `last_cursor`.
async fn sequence_batch<C: ConnectionTrait>(txn: &C, last_cursor: i64) -> Result<usize, DbErr> {
    // One statement: numbered in the order written (ids grow within a transaction too).
    let rows = txn
        .query_all_raw(Statement::from_sql_and_values(
            DbBackend::Postgres,
            "UPDATE domain_events AS e SET cursor = $1 + waiting.n \
             FROM (SELECT id, row_number() OVER (ORDER BY id) AS n FROM domain_events \
                   WHERE cursor < 0 ORDER BY id LIMIT $2) AS waiting \
             WHERE e.id = waiting.id \
             RETURNING e.id, e.cursor, e.event_type, e.sponsor_org_id, e.cmo_org_id, e.occurred_at",
            [last_cursor.into(), BATCH.into()],
        ))
        .await?;
    if rows.is_empty() {
        return Ok(0);
    }
    let mut events = Vec::with_capacity(rows.len());
    let mut last = last_cursor;
    for row in &rows {
        let cursor: i64 = row.try_get("", "cursor")?;
        last = last.max(cursor);
        let mut org_ids = vec![row.try_get::<i64>("", "sponsor_org_id")?];
        org_ids.extend(row.try_get::<Option<i64>>("", "cmo_org_id")?);
        events.push(EventToDeliver {
            org_ids,
            event_id: row.try_get("", "id")?,
            event_cursor: cursor,
            event_type: row.try_get("", "event_type")?,
            at: row.try_get("", "occurred_at")?,
        });
    }
    head::Entity::update_many()
        .col_expr(head::Column::LastCursor, Expr::value(last))
        .filter(head::Column::Id.eq(1))
        .exec(txn)
        .await?;
    fan_out_events(txn, &events).await?;
    Ok(rows.len())
}
