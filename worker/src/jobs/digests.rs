//! Weekly status digests (SPEC §5): per program, on the digest schedule read in the
//! program's time zone (default Monday 07:00), one email per subscribed member, built
//! by `entity::digest` and `mail::digest` (the preview endpoint renders the same). Exactly one per
//! program, member and ISO week (dedupe key), however many workers run; "what changed"
//! starts where the previous digest's tick was.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, TimeDelta, Utc};
use entity::digest::{self, schedule as digest_schedule};
use entity::{job_run, link_secret, program, schedule};
use sea_orm::sea_query::Expr;
use sea_orm::{ColumnTrait, EntityTrait, JoinType, QueryFilter, QueryOrder, QuerySelect};

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

/// Programs scheduled or advanced per pass at most (a backlog takes a few passes).
const BATCH: u64 = 1_000;

/// Runs the digests that are due. Its cost follows the programs due, not the programs
/// that exist: each program's next occurrence is kept in `program_digest_schedules`
/// (indexed); a pass computes the ones not yet known, then reads those due.
pub async fn weekly_digests(
    ctx: &JobContext,
    now: DateTime<Utc>,
    settings: &DigestSettings,
) -> Result<DigestReport, JobError> {
    let cron = schedule::parse(&settings.schedule).map_err(JobError::Schedule)?;
    schedule_unknown(ctx, &cron, now, settings).await?;
    let due = digest_schedule::Entity::find()
        .filter(digest_schedule::Column::NextAt.lte(now))
        .order_by_asc(digest_schedule::Column::NextAt)
        .limit(BATCH)
        .all(&ctx.db)
        .await?;
    let mut report = DigestReport::default();
    if due.is_empty() {
        return Ok(report);
    }
    let programs: BTreeMap<i64, program::Model> = program::Entity::find()
        .filter(program::Column::Id.is_in(due.iter().map(|d| d.program_id)))
        .all(&ctx.db)
        .await?
        .into_iter()
        .map(|p| (p.id, p))
        .collect();
    let ticks: Vec<Tick> = due
        .iter()
        .filter_map(|d| {
            let at = d.next_at?;
            (now - at <= settings.catch_up).then(|| Tick {
                job: digest::job_name(d.program_id),
                scheduled_for: at,
            })
        })
        .collect();
    let finished_before = ticks::finished(ctx, &ticks).await?;
    let claimed = ticks::claim_due(ctx, ticks, now).await?;
    let key = if claimed.is_empty() {
        None
    } else {
        Some(link_secret::get_or_create(&ctx.db, now).await?)
    };
    for tick in &claimed {
        let (Some(prog), Some(key)) = (programs.get(&program_of(tick)), &key) else {
            continue;
        };
        report.programs += 1;
        report.queued += program_digest(ctx, now, key, prog, tick).await?;
        ticks::finish(ctx, tick, now).await?;
    }
    // Advance every due program whose occurrence is done: run here or by another worker
    // before, or missed past the catch-up window. One another worker is running stays.
    let ran: BTreeSet<(String, DateTime<Utc>)> = claimed
        .iter()
        .map(|t| (t.job.clone(), t.scheduled_for))
        .chain(finished_before)
        .collect();
    for d in &due {
        let Some(at) = d.next_at else { continue };
        let missed = now - at > settings.catch_up;
        if !missed && !ran.contains(&(digest::job_name(d.program_id), at)) {
            continue;
        }
        let tz = programs
            .get(&d.program_id)
            .map_or(chrono_tz::UTC, |p| schedule::zone(&p.time_zone));
        let next = digest_schedule::next_occurrence(&cron, tz, now, settings.catch_up, Some(at));
        set_next(ctx, d.program_id, Some(at), next, &settings.schedule).await?;
    }
    Ok(report)
}

fn program_of(tick: &Tick) -> i64 {
    tick.job
        .strip_prefix("digest:")
        .and_then(|id| id.parse().ok())
        .unwrap_or_default()
}

/// Computes the next occurrence of the programs that have none yet (new programs, a
/// changed time zone, a changed digest schedule).
async fn schedule_unknown(
    ctx: &JobContext,
    cron: &schedule::Cron,
    now: DateTime<Utc>,
    settings: &DigestSettings,
) -> Result<(), JobError> {
    let unknown: Vec<(i64, String)> = digest_schedule::Entity::find()
        .select_only()
        .column(digest_schedule::Column::ProgramId)
        .column(program::Column::TimeZone)
        .join(
            JoinType::InnerJoin,
            digest_schedule::Entity::belongs_to(program::Entity)
                .from(digest_schedule::Column::ProgramId)
                .to(program::Column::Id)
                .into(),
        )
        .filter(digest_schedule::Column::NextAt.is_null())
        .limit(BATCH)
        .into_tuple()
        .all(&ctx.db)
        .await?;
    for (program_id, zone) in unknown {
        let next = digest_schedule::next_occurrence(
            cron,
            schedule::zone(&zone),
            now,
            settings.catch_up,
            None,
        );
        set_next(ctx, program_id, None, next, &settings.schedule).await?;
    }
    Ok(())
}

/// Moves a program's next occurrence from `from` to `to`, unless another worker (or a
/// time-zone change) moved it meanwhile.
async fn set_next(
    ctx: &JobContext,
    program_id: i64,
    from: Option<DateTime<Utc>>,
    to: Option<DateTime<Utc>>,
    cron: &str,
) -> Result<(), JobError> {
    let current = match from {
        Some(at) => digest_schedule::Column::NextAt.eq(at),
        None => digest_schedule::Column::NextAt.is_null(),
    };
    digest_schedule::Entity::update_many()
        .col_expr(digest_schedule::Column::NextAt, Expr::value(to))
        .col_expr(digest_schedule::Column::Schedule, Expr::value(cron))
        .filter(digest_schedule::Column::ProgramId.eq(program_id))
        .filter(current)
        .exec(&ctx.db)
        .await?;
    Ok(())
}

/// Once per worker start: occurrences computed with another digest schedule than this
/// worker's are computed again (every worker of an installation runs the same one).
pub async fn forget_other_schedules(
    ctx: &JobContext,
    settings: &DigestSettings,
) -> Result<u64, JobError> {
    let reset = digest_schedule::Entity::update_many()
        .col_expr(
            digest_schedule::Column::NextAt,
            Expr::value(None::<DateTime<Utc>>),
        )
        .filter(digest_schedule::Column::Schedule.ne(settings.schedule.as_str()))
        .filter(digest_schedule::Column::NextAt.is_not_null())
        .exec(&ctx.db)
        .await?;
    Ok(reset.rows_affected)
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
