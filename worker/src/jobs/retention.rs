//! Retention (documented in the README's security model): records kept only for a while
//! are purged, a bounded batch at a time so a large backlog never holds the write lock
//! long. Idempotency records go once their replay window (24 hours) has passed, with an
//! hour's margin; finished webhook deliveries (delivered or failed) and their attempt
//! logs after `webhook_log_days` (default 30). Nothing of the audit trail, the records
//! or their signatures is ever purged, nor the email outbox (its rows are what keeps an
//! email from going out twice).

use chrono::{DateTime, TimeDelta, Utc};
use entity::idempotency_key;
use entity::webhook::{self, DeliveryStatus};
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, QuerySelect};

use super::{JobContext, JobError};

/// Rows deleted per statement.
const BATCH: u64 = 1000;
/// Batches per table and pass: the rest waits for the next pass.
const BATCHES_PER_PASS: usize = 20;

#[derive(Debug, Clone, Copy)]
pub struct RetentionSettings {
    /// Finished webhook deliveries and their attempts are kept this long.
    pub webhook_log: TimeDelta,
}

impl Default for RetentionSettings {
    fn default() -> Self {
        Self {
            webhook_log: TimeDelta::days(30),
        }
    }
}

#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct RetentionReport {
    pub idempotency_records: u64,
    pub webhook_deliveries: u64,
    pub webhook_attempts: u64,
}

pub async fn purge(
    ctx: &JobContext,
    now: DateTime<Utc>,
    settings: &RetentionSettings,
) -> Result<RetentionReport, JobError> {
    let mut report = RetentionReport::default();
    let replay_window_ended = now - idempotency_key::RETENTION - TimeDelta::hours(1);
    for _ in 0..BATCHES_PER_PASS {
        let ids: Vec<i64> = idempotency_key::Entity::find()
            .select_only()
            .column(idempotency_key::Column::Id)
            .filter(idempotency_key::Column::CreatedAt.lt(replay_window_ended))
            .limit(BATCH)
            .into_tuple()
            .all(&ctx.db)
            .await?;
        if ids.is_empty() {
            break;
        }
        let txn = entity::db::begin_write(&ctx.db).await?;
        report.idempotency_records += idempotency_key::Entity::delete_many()
            .filter(idempotency_key::Column::Id.is_in(ids.iter().copied()))
            .exec(&txn)
            .await?
            .rows_affected;
        txn.commit().await?;
        if (ids.len() as u64) < BATCH {
            break;
        }
    }
    let kept_since = now - settings.webhook_log;
    for _ in 0..BATCHES_PER_PASS {
        let ids: Vec<i64> = webhook::delivery::Entity::find()
            .select_only()
            .column(webhook::delivery::Column::Id)
            .filter(
                webhook::delivery::Column::Status
                    .is_in([DeliveryStatus::Delivered, DeliveryStatus::Failed]),
            )
            .filter(webhook::delivery::Column::UpdatedAt.lt(kept_since))
            .limit(BATCH)
            .into_tuple()
            .all(&ctx.db)
            .await?;
        if ids.is_empty() {
            break;
        }
        let txn = entity::db::begin_write(&ctx.db).await?;
        report.webhook_attempts += webhook::attempt::Entity::delete_many()
            .filter(webhook::attempt::Column::DeliveryId.is_in(ids.iter().copied()))
            .exec(&txn)
            .await?
            .rows_affected;
        report.webhook_deliveries += webhook::delivery::Entity::delete_many()
            .filter(webhook::delivery::Column::Id.is_in(ids.iter().copied()))
            .exec(&txn)
            .await?
            .rows_affected;
        txn.commit().await?;
        if (ids.len() as u64) < BATCH {
            break;
        }
    }
    Ok(report)
}
