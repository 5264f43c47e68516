//! Scheduled work per time zone or per program: which occurrences are due now (computed
//! with chrono-tz per occurrence, see `entity::schedule`), and claiming each exactly once
//! across workers through `job_runs`.

use std::collections::BTreeSet;

use chrono::{DateTime, Utc};
use entity::job_run;
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, QuerySelect};

use crate::jobs::{JobContext, JobError};

/// One occurrence of a schedule for one program or time zone.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Tick {
    pub job: String,
    pub scheduled_for: DateTime<Utc>,
}

/// Claims the ticks no worker has finished or is running; returns those this worker now
/// owns. Finished ticks are filtered with one query first, so a pass over many programs
/// inside the catch-up window costs one read, not one insert attempt per program.
pub async fn claim_due(
    ctx: &JobContext,
    candidates: Vec<Tick>,
    now: DateTime<Utc>,
) -> Result<Vec<Tick>, JobError> {
    let finished = finished(ctx, &candidates).await?;
    let mut claimed = Vec::new();
    for tick in candidates {
        if finished.contains(&(tick.job.clone(), tick.scheduled_for)) {
            continue;
        }
        if job_run::claim(&ctx.db, &tick.job, tick.scheduled_for, &ctx.worker_id, now).await? {
            claimed.push(tick);
        }
    }
    if !claimed.is_empty() {
        entity::ops::fault::point("tick_claimed");
    }
    Ok(claimed)
}

/// Which of `ticks` some worker has finished (one query per 500).
pub async fn finished(
    ctx: &JobContext,
    ticks: &[Tick],
) -> Result<BTreeSet<(String, DateTime<Utc>)>, JobError> {
    let mut finished = BTreeSet::new();
    let Some(earliest) = ticks.iter().map(|t| t.scheduled_for).min() else {
        return Ok(finished);
    };
    for chunk in ticks.chunks(500) {
        let rows: Vec<(String, DateTime<Utc>)> = job_run::Entity::find()
            .select_only()
            .column(job_run::Column::Job)
            .column(job_run::Column::ScheduledFor)
            .filter(job_run::Column::Job.is_in(chunk.iter().map(|t| t.job.clone())))
            .filter(job_run::Column::ScheduledFor.gte(earliest))
            .filter(job_run::Column::FinishedAt.is_not_null())
            .into_tuple()
            .all(&ctx.db)
            .await?;
        finished.extend(rows);
    }
    Ok(finished)
}

/// Marks a claimed tick done.
/// The occurrence of a daily (or any UTC) `schedule` that is due at `now` (within
/// `catch_up`), claimed by this worker: `None` when none is due, or another worker has
/// it or finished it. The caller runs the job and then [`finish`]es the tick.
pub async fn claim_utc_occurrence(
    ctx: &JobContext,
    job: &str,
    schedule: &str,
    catch_up: chrono::TimeDelta,
    now: DateTime<Utc>,
) -> Result<Option<Tick>, JobError> {
    let cron = entity::schedule::parse(schedule).map_err(JobError::Schedule)?;
    let Some(at) = entity::schedule::due_occurrence(&cron, chrono_tz::UTC, now, catch_up) else {
        return Ok(None);
    };
    let claimed = claim_due(
        ctx,
        vec![Tick {
            job: job.to_string(),
            scheduled_for: at,
        }],
        now,
    )
    .await?;
    Ok(claimed.into_iter().next())
}

pub async fn finish(ctx: &JobContext, tick: &Tick, now: DateTime<Utc>) -> Result<(), JobError> {
    job_run::finish(&ctx.db, &tick.job, tick.scheduled_for, &ctx.worker_id, now).await?;
    Ok(())
}
