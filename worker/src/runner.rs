//! Wires jobs into tokio-cron-scheduler and runs until told to stop.
//!
//! The scheduler is only this process's clock: every instance fires every job, so jobs
//! that must run once per tick decide that in the database, not here.

use std::future::Future;
use std::sync::Arc;

use tokio_cron_scheduler::{Job, JobScheduler, JobSchedulerError};

use crate::jobs::{JobContext, heartbeat};

#[derive(Debug, Clone)]
pub struct Schedules {
    /// 6-field cron (with seconds), in UTC.
    pub heartbeat: String,
    /// How often the outbox dispatcher looks for due emails.
    pub dispatch: String,
    /// Local clock of per-program schedules: how often due reminder and digest
    /// occurrences (computed in each program's time zone) are looked for.
    pub tick: String,
}

impl Default for Schedules {
    fn default() -> Self {
        Self {
            heartbeat: "*/30 * * * * *".to_string(),
            dispatch: "*/2 * * * * *".to_string(),
            tick: "0 * * * * *".to_string(),
        }
    }
}

/// Where and as whom email goes out.
pub struct MailSettings {
    pub mailer: crate::mailer::Mailer,
    pub from: lettre::message::Mailbox,
    /// Emails claimed per dispatcher pass.
    pub batch: u64,
    pub reminders: crate::jobs::reminders::ReminderSettings,
    pub digests: crate::jobs::digests::DigestSettings,
}

#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error(
        "invalid {job} schedule {cron:?}: {detail} (6 fields with seconds, e.g. \"0 */15 * * * *\")"
    )]
    Schedule {
        job: &'static str,
        cron: String,
        detail: String,
    },
    #[error("scheduler: {0}")]
    Scheduler(#[from] JobSchedulerError),
    #[error("job: {0}")]
    Job(#[from] crate::jobs::JobError),
}

/// Runs a first heartbeat at once, then the schedule, until `shutdown` completes; then
/// stops the scheduler (letting a running job finish its current step).
pub async fn run(
    ctx: JobContext,
    schedules: Schedules,
    mail: MailSettings,
    shutdown: impl Future<Output = ()>,
) -> Result<(), RunError> {
    for (job, cron) in [
        ("heartbeat", &schedules.heartbeat),
        ("dispatch", &schedules.dispatch),
        ("schedule tick", &schedules.tick),
    ] {
        validate_cron(job, cron)?;
    }
    for (job, cron) in [
        ("reminder", &mail.reminders.schedule),
        ("digest", &mail.digests.schedule),
    ] {
        entity::schedule::parse(cron).map_err(|detail| RunError::Schedule {
            job,
            cron: cron.clone(),
            detail,
        })?;
    }
    let first =
        heartbeat::heartbeat(&ctx, entity::clock::truncate_to_micros(chrono::Utc::now())).await?;
    tracing::info!(worker_id = %ctx.worker_id, beats = first.beats, "worker started");

    let mut scheduler = JobScheduler::new().await?;
    let ctx = Arc::new(ctx);
    let job_ctx = ctx.clone();
    scheduler
        .add(Job::new_async(
            schedules.heartbeat.as_str(),
            move |_id, _lock| {
                let ctx = job_ctx.clone();
                Box::pin(async move {
                    let now = entity::clock::truncate_to_micros(chrono::Utc::now());
                    match heartbeat::heartbeat(&ctx, now).await {
                        Ok(report) => tracing::debug!(beats = report.beats, "heartbeat"),
                        Err(err) => tracing::warn!(%err, "heartbeat failed"),
                    }
                })
            },
        )?)
        .await?;
    let mail = Arc::new(mail);
    // A first pass at once: an occurrence missed while no worker ran is caught up now.
    scheduled_pass(&ctx, &mail).await;
    let tick_ctx = ctx.clone();
    let tick_mail = mail.clone();
    // One pass at a time per worker; other workers skip ticks this one claimed.
    let tick_busy = Arc::new(tokio::sync::Mutex::new(()));
    scheduler
        .add(Job::new_async(
            schedules.tick.as_str(),
            move |_id, _lock| {
                let ctx = tick_ctx.clone();
                let mail = tick_mail.clone();
                let busy = tick_busy.clone();
                Box::pin(async move {
                    let Ok(_guard) = busy.try_lock() else { return };
                    scheduled_pass(&ctx, &mail).await;
                })
            },
        )?)
        .await?;
    let dispatch_ctx = ctx.clone();
    // One pass at a time per worker: a slow SMTP server must not pile up passes.
    let busy = Arc::new(tokio::sync::Mutex::new(()));
    scheduler
        .add(Job::new_async(
            schedules.dispatch.as_str(),
            move |_id, _lock| {
                let ctx = dispatch_ctx.clone();
                let mail = mail.clone();
                let busy = busy.clone();
                Box::pin(async move {
                    let Ok(_guard) = busy.try_lock() else { return };
                    let now = entity::clock::truncate_to_micros(chrono::Utc::now());
                    match crate::jobs::dispatch::dispatch(
                        &ctx,
                        &mail.mailer,
                        &mail.from,
                        now,
                        mail.batch,
                    )
                    .await
                    {
                        Ok(r) if r.sent + r.retried + r.failed > 0 => {
                            tracing::info!(
                                sent = r.sent,
                                retried = r.retried,
                                failed = r.failed,
                                "outbox dispatched"
                            )
                        }
                        Ok(_) => {}
                        Err(err) => tracing::warn!(%err, "outbox dispatch failed"),
                    }
                })
            },
        )?)
        .await?;
    scheduler.start().await?;
    shutdown.await;
    tracing::info!("shutting down the scheduler");
    scheduler.shutdown().await?;
    Ok(())
}

/// Reminders and digests whose occurrence (in their program's time zone) is due.
async fn scheduled_pass(ctx: &JobContext, mail: &MailSettings) {
    let now = entity::clock::truncate_to_micros(chrono::Utc::now());
    match crate::jobs::reminders::overdue_reminders(ctx, now, &mail.reminders).await {
        Ok(r) if r.ticks > 0 => tracing::info!(
            zones = r.ticks,
            owners = r.owners,
            items = r.items,
            queued = r.queued,
            "overdue reminders"
        ),
        Ok(_) => {}
        Err(err) => tracing::warn!(%err, "overdue reminders failed"),
    }
    match crate::jobs::digests::weekly_digests(ctx, now, &mail.digests).await {
        Ok(r) if r.programs > 0 => {
            tracing::info!(programs = r.programs, queued = r.queued, "weekly digests")
        }
        Ok(_) => {}
        Err(err) => tracing::warn!(%err, "weekly digests failed"),
    }
}

/// Checks a cron expression up front, so a typo stops the worker with a clear message.
fn validate_cron(job: &'static str, cron: &str) -> Result<(), RunError> {
    Job::new_async(cron, |_id, _lock| Box::pin(async {}))
        .map(|_| ())
        .map_err(|e| RunError::Schedule {
            job,
            cron: cron.to_string(),
            detail: format!("{e:?}"),
        })
}
