//! The outbox dispatcher: claims due emails (safe with several workers), sends them,
//! records the outcome. A crash mid-send leaves a claim that expires, and the email is
//! sent again with the same Message-ID.

use chrono::{DateTime, Utc};
use entity::outbox::{self, OutboxStatus, SendOutcome};
use lettre::message::Mailbox;
use sea_orm::sea_query::Expr;
use sea_orm::{ActiveEnum, ColumnTrait, DbBackend, EntityTrait, QueryFilter, Statement};

use super::{JobContext, JobError};
use crate::mailer::Mailer;

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
) -> Result<Vec<outbox::Model>, JobError> {
    let backend = ctx.db.get_database_backend();
    let until = now + outbox::CLAIM_TTL;
    // Due: queued and its time has come, or claimed by a worker whose claim expired.
    let (sql, lock) = match backend {
        DbBackend::Postgres => (
            "UPDATE email_outbox SET status = 'sending', claimed_by = $1, claimed_until = $2 \
             WHERE id IN (SELECT id FROM email_outbox \
                 WHERE (status = 'queued' AND next_attempt_at <= $3) OR (status = 'sending' AND claimed_until < $3) \
                 ORDER BY id LIMIT $4 FOR UPDATE SKIP LOCKED) \
             RETURNING *",
            true,
        ),
        _ => (
            "UPDATE email_outbox SET status = 'sending', claimed_by = ?, claimed_until = ? \
             WHERE id IN (SELECT id FROM email_outbox \
                 WHERE (status = 'queued' AND next_attempt_at <= ?) OR (status = 'sending' AND claimed_until < ?) \
                 ORDER BY id LIMIT ?) \
             RETURNING *",
            false,
        ),
    };
    let values: Vec<sea_orm::Value> = if lock {
        vec![
            ctx.worker_id.clone().into(),
            until.into(),
            now.into(),
            (batch as i64).into(),
        ]
    } else {
        vec![
            ctx.worker_id.clone().into(),
            until.into(),
            now.into(),
            now.into(),
            (batch as i64).into(),
        ]
    };
    let rows = outbox::Entity::find()
        .from_raw_sql(Statement::from_sql_and_values(backend, sql, values))
        .all(&ctx.db)
        .await?;
    Ok(rows)
}

/// One dispatcher pass: claim, send (as many at once as the mailer allows), record each
/// outcome as soon as it is known.
pub async fn dispatch(
    ctx: &JobContext,
    mailer: &Mailer,
    from: &Mailbox,
    now: DateTime<Utc>,
    batch: u64,
) -> Result<DispatchReport, JobError> {
    use futures_util::StreamExt;
    let rows = claim(ctx, now, batch).await?;
    let outcomes: Vec<Result<OutboxStatus, JobError>> = futures_util::stream::iter(rows)
        .map(|row| send_one(ctx, mailer, from, now, row))
        .buffer_unordered(mailer.parallelism())
        .collect()
        .await;
    let mut report = DispatchReport::default();
    for outcome in outcomes {
        match outcome? {
            OutboxStatus::Sent => report.sent += 1,
            OutboxStatus::Failed => report.failed += 1,
            _ => report.retried += 1,
        }
    }
    Ok(report)
}

async fn send_one(
    ctx: &JobContext,
    mailer: &Mailer,
    from: &Mailbox,
    now: DateTime<Utc>,
    row: outbox::Model,
) -> Result<OutboxStatus, JobError> {
    let attempts = row.attempts + 1;
    let result = mailer.send(from, &row).await;
    let (status, next, error) = match result {
        Ok(()) => (OutboxStatus::Sent, now, None),
        Err(err) => match outbox::after_failure(err.permanent, attempts) {
            SendOutcome::Permanent => (OutboxStatus::Failed, now, Some(err.message)),
            _ => {
                let jitter: f64 = rand::random();
                (
                    OutboxStatus::Queued,
                    now + outbox::backoff(attempts - 1, jitter),
                    Some(err.message),
                )
            }
        },
    };
    let mut update = outbox::Entity::update_many()
        .col_expr(outbox::Column::Status, Expr::value(status.to_value()))
        .col_expr(outbox::Column::Attempts, Expr::value(attempts))
        .col_expr(outbox::Column::NextAttemptAt, Expr::value(next))
        .col_expr(outbox::Column::LastError, Expr::value(error))
        .col_expr(
            outbox::Column::ClaimedBy,
            Expr::value(Option::<String>::None),
        )
        .col_expr(
            outbox::Column::ClaimedUntil,
            Expr::value(Option::<DateTime<Utc>>::None),
        );
    if status == OutboxStatus::Sent {
        update = update.col_expr(outbox::Column::SentAt, Expr::value(now));
    }
    // Only while the claim is still ours: a re-claimed row belongs to someone else.
    update
        .filter(outbox::Column::Id.eq(row.id))
        .filter(outbox::Column::ClaimedBy.eq(ctx.worker_id.as_str()))
        .exec(&ctx.db)
        .await?;
    Ok(status)
}
