//! Weekly status digests (SPEC §5): per program, on the digest schedule read in the
//! program's time zone (default Monday 07:00), one email per subscribed member, built
//! by `entity::digest` and `mail::digest` (the preview endpoint renders the same). Exactly one per
//! program, member and ISO week (dedupe key), however many workers run; "what changed"
//! starts where the previous digest's tick was.

use chrono::{DateTime, TimeDelta, Utc};
use entity::digest;
use entity::{job_run, link_secret, program, schedule};
use sea_orm::EntityTrait;

use super::{JobContext, JobError};
use crate::ticks::{self, Tick};

#[derive(Debug, Clone)]
pub struct DigestSettings {
    /// 6-field cron, read in each program's time zone (default Monday 07:00).
    pub schedule: String,
    /// A tick missed while no worker ran still runs within this window.
    pub catch_up: TimeDelta,
}

impl Default for DigestSettings {
    fn default() -> Self {
        Self {
            schedule: "0 0 7 * * Mon".to_string(),
            catch_up: TimeDelta::hours(12),
        }
    }
}

#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct DigestReport {
    /// Programs whose digest this worker ran.
    pub programs: usize,
    pub queued: usize,
}

pub async fn weekly_digests(
    ctx: &JobContext,
    now: DateTime<Utc>,
    settings: &DigestSettings,
) -> Result<DigestReport, JobError> {
    let cron = schedule::parse(&settings.schedule).map_err(JobError::Schedule)?;
    let programs = program::Entity::find().all(&ctx.db).await?;
    let due: Vec<Tick> = programs
        .iter()
        .filter_map(|p| {
            schedule::due_occurrence(&cron, schedule::zone(&p.time_zone), now, settings.catch_up)
                .map(|at| Tick {
                    job: digest::job_name(p.id),
                    scheduled_for: at,
                })
        })
        .collect();
    let claimed = ticks::claim_due(ctx, due, now).await?;
    let mut report = DigestReport::default();
    if claimed.is_empty() {
        return Ok(report);
    }
    let key = link_secret::get_or_create(&ctx.db, now).await?;
    for tick in claimed {
        let Some(prog) = programs.iter().find(|p| digest::job_name(p.id) == tick.job) else {
            continue;
        };
        report.programs += 1;
        report.queued += program_digest(ctx, now, &key, prog, &tick).await?;
        ticks::finish(ctx, &tick, now).await?;
    }
    Ok(report)
}

async fn program_digest(
    ctx: &JobContext,
    now: DateTime<Utc>,
    key: &[u8],
    prog: &program::Model,
    tick: &Tick,
) -> Result<usize, JobError> {
    let since = job_run::last_finished_before(&ctx.db, &tick.job, tick.scheduled_for)
        .await?
        .unwrap_or(tick.scheduled_for - digest::FIRST_DIGEST_LOOKBACK);
    let data = digest::gather(&ctx.db, prog, now, since).await?;
    // The week of the tick, not of `now`: a caught-up tick stays in its own week.
    let week = digest::iso_week(
        tick.scheduled_for
            .with_timezone(&schedule::zone(&prog.time_zone))
            .date_naive(),
    );
    let subscribers = digest::subscribers(&ctx.db, prog.id).await?;
    let txn = entity::db::begin_write(&ctx.db).await?;
    let queued = mail::digest::queue(
        &txn,
        &data,
        &subscribers,
        mail::digest::Occasion::Weekly,
        &format!("digest:{}:{week}", prog.id),
        key,
        &ctx.public_base_url,
        now,
    )
    .await?;
    txn.commit().await?;
    Ok(queued)
}
