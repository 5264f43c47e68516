//! Records that this worker is alive. Operators (and later `/readyz`) read
//! `worker_heartbeats` to see which workers run and when each last beat.

use chrono::{DateTime, Utc};
use entity::worker_heartbeat;
use sea_orm::sea_query::{Expr, ExprTrait};
use sea_orm::{ActiveModelTrait, ActiveValue::Set, ColumnTrait, EntityTrait, QueryFilter};

use super::{JobContext, JobError};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeartbeatReport {
    /// Beats recorded by this worker so far, this one included.
    pub beats: i64,
}

/// `wake_addr`: where this worker takes wakes (SQLite), kept with its heartbeat so the
/// api finds it.
pub async fn heartbeat(
    ctx: &JobContext,
    now: DateTime<Utc>,
    wake_addr: Option<&str>,
) -> Result<HeartbeatReport, JobError> {
    // Hostname and start time are rewritten too: a restarted worker reusing its id
    // reports its new process, not the old one.
    let updated = worker_heartbeat::Entity::update_many()
        .col_expr(worker_heartbeat::Column::LastBeatAt, Expr::value(now))
        .col_expr(
            worker_heartbeat::Column::Hostname,
            Expr::value(ctx.hostname.clone()),
        )
        .col_expr(
            worker_heartbeat::Column::StartedAt,
            Expr::value(ctx.started_at),
        )
        .col_expr(
            worker_heartbeat::Column::Beats,
            Expr::col(worker_heartbeat::Column::Beats).add(1),
        )
        .col_expr(
            worker_heartbeat::Column::WakeAddr,
            Expr::value(wake_addr.map(String::from)),
        )
        .filter(worker_heartbeat::Column::WorkerId.eq(ctx.worker_id.as_str()))
        .exec(&ctx.db)
        .await?;
    if updated.rows_affected == 0 {
        worker_heartbeat::ActiveModel {
            worker_id: Set(ctx.worker_id.clone()),
            hostname: Set(ctx.hostname.clone()),
            started_at: Set(ctx.started_at),
            last_beat_at: Set(now),
            beats: Set(1),
            wake_addr: Set(wake_addr.map(String::from)),
        }
        .insert(&ctx.db)
        .await?;
    }
    let row = worker_heartbeat::Entity::find_by_id(ctx.worker_id.clone())
        .one(&ctx.db)
        .await?;
    Ok(HeartbeatReport {
        beats: row.map_or(0, |r| r.beats),
    })
}
