//! The outbox dispatcher: claims due emails (safe with several workers), sends them,
//! records the outcome. A crash mid-send leaves a claim that expires, and the email is
//! sent again with the same Message-ID.

use chrono::{DateTime, Utc};
use entity::outbox::{self, OutboxStatus, SendOutcome};
use lettre::message::Mailbox;
use sea_orm::sea_query::{Expr, ExprTrait};
use sea_orm::{ActiveEnum, ColumnTrait, DbBackend, EntityTrait, QueryFilter, Statement};

use super::{JobContext, JobError};
use crate::outbound::mailer::Mailer;

#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct DispatchReport {
    pub sent: usize,
    pub retried: usize,
    pub failed: usize,
}

/// Claims up to `batch` due emails for this worker.
pub async fn claim(
    ctx: &JobContext,
    now: DateTime<Utc>,
    batch: u64,
    claim_ttl: chrono::TimeDelta,
) -> Result<Vec<outbox::Model>, JobError> {
    let backend = ctx.db.get_database_backend();
    let until = now + claim_ttl;
    // Due: queued and its time has come, or claimed by a worker whose claim expired.
    let (sql, lock) = match backend {
        DbBackend::Postgres => (
            "UPDATE email_outbox SET status = 'sending', claimed_by = $1, claimed_until = $2 \
             WHERE id IN (SELECT id FROM email_outbox \
                 WHERE (status = 'queued' AND next_attempt_at <= $3) OR (status = 'sending' AND claimed_until < $3) \
                    OR (status = 'sending' AND claimed_by = $1 AND claimed_until < $5) \
                 ORDER BY id LIMIT $4 FOR UPDATE SKIP LOCKED) \
             RETURNING *",
            true,
        ),
        _ => (
            "UPDATE email_outbox SET status = 'sending', claimed_by = ?, claimed_until = ? \
             WHERE id IN (SELECT id FROM email_outbox \
                 WHERE (status = 'queued' AND next_attempt_at <= ?) OR (status = 'sending' AND claimed_until < ?) \
                    OR (status = 'sending' AND claimed_by = ? AND claimed_until < ?) \
                 ORDER BY id LIMIT ?) \
             RETURNING *",
            false,
        ),
    };
    // Claims this worker id made before this process started (a restart under the same
    // id) are its own to take back at once, not after they expire.
    let before_start = ctx.started_at + claim_ttl;
    let values: Vec<sea_orm::Value> = if lock {
        vec![
            ctx.worker_id.clone().into(),
            until.into(),
            now.into(),
            (batch as i64).into(),
            before_start.into(),
        ]
    } else {
        vec![
            ctx.worker_id.clone().into(),
            until.into(),
            now.into(),
            now.into(),
            ctx.worker_id.clone().into(),
            before_start.into(),
            (batch as i64).into(),
        ]
    };
    let rows = outbox::Entity::find()
        .from_raw_sql(Statement::from_sql_and_values(backend, sql, values))
        .all(&ctx.db)
        .await?;
    Ok(rows)
}

/// Outcomes recorded per transaction: one commit per this many sends, not one per
/// email. A crash loses at most these outcomes; their rows' claims expire and they are
/// sent again with the same Message-ID (the in-flight bound of SPEC §5).
pub const RECORD_EVERY: usize = 64;

/// One dispatcher pass: claim, send (as many at once as the mailer allows), record the
/// outcomes in small batches as they come in.
pub async fn dispatch(
    ctx: &JobContext,
    mailer: &Mailer,
    from: &Mailbox,
    now: DateTime<Utc>,
    batch: u64,
) -> Result<DispatchReport, JobError> {
    dispatch_with(ctx, mailer, from, now, batch, outbox::CLAIM_TTL, &|_| {}).await
}

/// Told the number of failed sends (retried or given up) of each chunk of outcomes
/// before that chunk is recorded, so a failure counter never lags the outbox rows.
pub type OnFailures<'a> = &'a (dyn Fn(usize) + Sync);

/// [`dispatch`] with a chosen claim lifetime (how long a worker that died mid-send
/// holds its claimed emails before another worker sends them) and a failure observer.
pub async fn dispatch_with(
    ctx: &JobContext,
    mailer: &Mailer,
    from: &Mailbox,
    now: DateTime<Utc>,
    batch: u64,
    claim_ttl: chrono::TimeDelta,
    on_failures: OnFailures<'_>,
) -> Result<DispatchReport, JobError> {
    use futures_util::StreamExt;
    let rows = claim(ctx, now, batch, claim_ttl).await?;
    // Sending and recording overlap: while one chunk of outcomes commits, the next
    // messages are already on the wire.
    let (done, mut to_record) = tokio::sync::mpsc::channel(2);
    let sending = async move {
        let mut chunks = futures_util::stream::iter(rows)
            .map(|row| async move {
                let result = mailer.send(from, &row).await;
                (row, result)
            })
            .buffer_unordered(mailer.parallelism())
            .ready_chunks(RECORD_EVERY);
        while let Some(chunk) = chunks.next().await {
            if done.send(chunk).await.is_err() {
                // Recording failed: stop; unrecorded claims expire and are retried.
                break;
            }
        }
    };
    // `move`: when recording fails, its receiver is dropped, which stops the sender.
    let recording = async move {
        let mut report = DispatchReport::default();
        while let Some(chunk) = to_record.recv().await {
            // Counted before the outcomes commit: a failed send is a fact even if the
            // commit fails (the email is then sent again), and a scrape that sees the
            // outbox drained sees the failures too.
            let failed = chunk.iter().filter(|(_, sent)| sent.is_err()).count();
            if failed > 0 {
                on_failures(failed);
            }
            record(ctx, now, chunk, &mut report).await?;
        }
        Ok::<_, JobError>(report)
    };
    let ((), report) = tokio::join!(sending, recording);
    report
}

/// Passes of [`dispatch_with`] until a pass claims less than a full batch (at most
/// `max_rounds`): a backlog drains at the sending rate, not one batch per tick.
pub async fn drain(
    ctx: &JobContext,
    mailer: &Mailer,
    from: &Mailbox,
    batch: u64,
    claim_ttl: chrono::TimeDelta,
    max_rounds: usize,
    on_failures: OnFailures<'_>,
) -> Result<DispatchReport, JobError> {
    let mut total = DispatchReport::default();
    for _ in 0..max_rounds.max(1) {
        let now = ctx.now();
        let r = dispatch_with(ctx, mailer, from, now, batch, claim_ttl, on_failures).await?;
        total.sent += r.sent;
        total.retried += r.retried;
        total.failed += r.failed;
        if ((r.sent + r.retried + r.failed) as u64) < batch {
            break;
        }
    }
    Ok(total)
}

/// Writes a chunk of outcomes in one transaction: one statement for all sent rows, one
/// per failed row (each has its own error and next attempt).
async fn record(
    ctx: &JobContext,
    now: DateTime<Utc>,
    chunk: Vec<(
        outbox::Model,
        Result<(), crate::outbound::mailer::SendError>,
    )>,
    report: &mut DispatchReport,
) -> Result<(), JobError> {
    let txn = entity::db::begin_write(&ctx.db).await?;
    let mut sent = Vec::new();
    for (row, result) in chunk {
        let attempts = row.attempts + 1;
        let err = match result {
            Ok(()) => {
                sent.push(row.id);
                continue;
            }
            Err(err) => err,
        };
        // A page of an open escalation is never given up for a passing outage.
        let page_needed = !err.permanent
            && entity::paging::page_delivery::page_still_needed(&txn, &row.dedupe_key).await?;
        let jitter: f64 = rand::random();
        let (status, next) = match outbox::after_failure(err.permanent, attempts) {
            _ if page_needed => (
                OutboxStatus::Queued,
                now + outbox::backoff(attempts - 1, jitter)
                    .min(entity::paging::page_delivery::PAGE_RETRY_CAP),
            ),
            SendOutcome::Permanent => (OutboxStatus::Failed, now),
            _ => (
                OutboxStatus::Queued,
                now + outbox::backoff(attempts - 1, jitter),
            ),
        };
        if status == OutboxStatus::Failed {
            tracing::warn!(email = row.id, to = %row.to_addrs, attempts, error = %err.message,
                "email not sent, given up");
        } else {
            tracing::warn!(email = row.id, to = %row.to_addrs, attempts, error = %err.message,
                retry_at = %next, "email not sent, will retry");
        }
        match status {
            OutboxStatus::Failed => report.failed += 1,
            _ => report.retried += 1,
        }
        let released = release(outbox::Entity::update_many(), status)
            .col_expr(outbox::Column::Attempts, Expr::value(attempts))
            .col_expr(outbox::Column::NextAttemptAt, Expr::value(next))
            .col_expr(
                outbox::Column::LastError,
                Expr::value(Some(err.message.clone())),
            )
            .filter(outbox::Column::Id.eq(row.id))
            .filter(outbox::Column::ClaimedBy.eq(ctx.worker_id.as_str()))
            .exec(&txn)
            .await?;
        // A page refused for good is shown on its escalation, and a tier none of whose
        // pages could be delivered does not count as paged.
        if status == OutboxStatus::Failed && released.rows_affected == 1 {
            entity::paging::page_delivery::page_refused(
                &txn,
                &row.dedupe_key,
                &row.to_addrs,
                &err.message,
                now,
            )
            .await?;
        }
    }
    if !sent.is_empty() {
        report.sent += sent.len();
        release(outbox::Entity::update_many(), OutboxStatus::Sent)
            .col_expr(
                outbox::Column::Attempts,
                Expr::col(outbox::Column::Attempts).add(1),
            )
            .col_expr(outbox::Column::SentAt, Expr::value(now))
            .col_expr(
                outbox::Column::LastError,
                Expr::value(Option::<String>::None),
            )
            .filter(outbox::Column::Id.is_in(sent))
            // Only rows still claimed by us: a re-claimed row belongs to someone else.
            .filter(outbox::Column::ClaimedBy.eq(ctx.worker_id.as_str()))
            .exec(&txn)
            .await?;
    }
    txn.commit().await?;
    Ok(())
}

/// The claim-clearing part every outcome shares.
fn release(
    update: sea_orm::UpdateMany<outbox::Entity>,
    status: OutboxStatus,
) -> sea_orm::UpdateMany<outbox::Entity> {
    update
        .col_expr(outbox::Column::Status, Expr::value(status.to_value()))
        .col_expr(
            outbox::Column::ClaimedBy,
            Expr::value(Option::<String>::None),
        )
        .col_expr(
            outbox::Column::ClaimedUntil,
            Expr::value(Option::<DateTime<Utc>>::None),
        )
}
