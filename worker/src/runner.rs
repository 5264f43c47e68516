//! Wires jobs into tokio-cron-scheduler and runs until told to stop.
//!
//! The scheduler is only this process's clock: every instance fires every job, so jobs
//! that must run once per tick decide that in the database, not here.

use std::future::Future;
use std::sync::Arc;

use chrono::DurationRound;
use tokio_cron_scheduler::{Job, JobScheduler, JobSchedulerError};

use crate::jobs::{JobContext, heartbeat};

#[derive(Debug, Clone)]
pub struct Schedules {
    /// 6-field cron (with seconds), in UTC.
    pub heartbeat: String,
    /// How often the outbox dispatcher looks for due emails.
    pub dispatch: String,
    /// How often reminders are considered (each owner gets them once a day, after the
    /// reminder hour in their time zone).
    pub reminders: String,
}

impl Default for Schedules {
    fn default() -> Self {
        Self {
            heartbeat: "*/30 * * * * *".to_string(),
            dispatch: "*/2 * * * * *".to_string(),
            reminders: "0 */15 * * * *".to_string(),
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
        ("reminders", &schedules.reminders),
    ] {
        validate_cron(job, cron)?;
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
    let reminder_ctx = ctx.clone();
    let reminder_mail = mail.clone();
    scheduler
        .add(Job::new_async(
            schedules.reminders.as_str(),
            move |_id, _lock| {
                let ctx = reminder_ctx.clone();
                let mail = reminder_mail.clone();
                Box::pin(async move {
                    let now = entity::clock::truncate_to_micros(chrono::Utc::now());
                    // Every worker fires; the first to claim this minute's tick runs it.
                    let tick = now
                        .duration_trunc(chrono::TimeDelta::minutes(1))
                        .unwrap_or(now);
                    match entity::job_run::claim(
                        &ctx.db,
                        "overdue_reminders",
                        tick,
                        &ctx.worker_id,
                        now,
                    )
                    .await
                    {
                        Ok(true) => match crate::jobs::reminders::overdue_reminders(
                            &ctx,
                            now,
                            &mail.reminders,
                        )
                        .await
                        {
                            Ok(r) => tracing::info!(
                                owners = r.owners,
                                items = r.items,
                                queued = r.queued,
                                "overdue reminders"
                            ),
                            Err(err) => tracing::warn!(%err, "overdue reminders failed"),
                        },
                        Ok(false) => {
                            tracing::debug!("reminder tick already claimed by another worker")
                        }
                        Err(err) => tracing::warn!(%err, "cannot claim the reminder tick"),
                    }
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
