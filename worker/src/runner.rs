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
    /// The escalation fast tick (new escalations are also announced by PostgreSQL
    /// NOTIFY, so on PostgreSQL the first page does not wait for it).
    pub escalation_tick: std::time::Duration,
    /// How often due webhook deliveries (new ones and retries) are looked for; on
    /// PostgreSQL a new delivery also wakes the loop at once.
    pub webhook_tick: std::time::Duration,
}

impl Default for Schedules {
    fn default() -> Self {
        Self {
            heartbeat: "*/30 * * * * *".to_string(),
            dispatch: "*/2 * * * * *".to_string(),
            tick: "0 * * * * *".to_string(),
            escalation_tick: std::time::Duration::from_millis(250),
            webhook_tick: std::time::Duration::from_millis(250),
        }
    }
}

/// What the jobs need besides the database: where and as whom email goes out, each
/// job's settings, the HTTP client for webhooks.
pub struct JobSettings {
    pub mailer: crate::outbound::mailer::Mailer,
    pub from: lettre::message::Mailbox,
    /// Emails claimed per dispatcher pass.
    pub batch: u64,
    /// How long claimed emails stay with a worker that died mid-send.
    pub outbox_claim_ttl: chrono::TimeDelta,
    pub reminders: crate::jobs::reminders::ReminderSettings,
    pub digests: crate::jobs::digests::DigestSettings,
    pub escalations: crate::jobs::escalations::EscalationSettings,
    pub agreements: crate::jobs::agreement_expiry::AgreementSettings,
    pub checkpoints: crate::jobs::checkpoints::CheckpointSettings,
    pub webhooks: crate::jobs::webhooks::WebhookSettings,
    pub retention: crate::jobs::retention::RetentionSettings,
    pub http: crate::outbound::http::HttpClient,
    /// Each job's runs and failures, for `/metrics`.
    pub metrics: Arc<crate::metrics::WorkerMetrics>,
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
    #[error("wake socket: {0}")]
    WakeSocket(#[from] std::io::Error),
}

/// Runs a first heartbeat at once, then the schedule, until `shutdown` completes; then
/// stops the scheduler (letting a running job finish its current step).
pub async fn run(
    ctx: JobContext,
    schedules: Schedules,
    mail: JobSettings,
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
        ("quality agreement expiry", &mail.agreements.schedule),
        ("audit checkpoint", &mail.checkpoints.schedule),
    ] {
        entity::schedule::parse(cron).map_err(|detail| RunError::Schedule {
            job,
            cron: cron.clone(),
            detail,
        })?;
    }
    // SQLite has no NOTIFY: the api wakes this worker with a datagram to a loopback
    // socket whose address the heartbeat publishes.
    let wake_socket = if ctx.db.get_database_backend() == sea_orm::DbBackend::Sqlite {
        Some(tokio::net::UdpSocket::bind("127.0.0.1:0").await?)
    } else {
        None
    };
    let wake_addr: Option<Arc<str>> = match &wake_socket {
        Some(s) => Some(s.local_addr()?.to_string().into()),
        None => None,
    };
    let first = heartbeat::heartbeat(&ctx, ctx.now(), wake_addr.as_deref()).await?;
    tracing::info!(worker_id = %ctx.worker_id, beats = first.beats, "worker started");

    let mut scheduler = JobScheduler::new().await?;
    let ctx = Arc::new(ctx);
    let job_ctx = ctx.clone();
    let beat_metrics = mail.metrics.clone();
    let beat_wake_addr = wake_addr.clone();
    beat_metrics.record("heartbeat", true, std::time::Duration::ZERO, ctx.now());
    scheduler
        .add(Job::new_async(
            schedules.heartbeat.as_str(),
            move |_id, _lock| {
                let ctx = job_ctx.clone();
                let metrics = beat_metrics.clone();
                let wake_addr = beat_wake_addr.clone();
                Box::pin(async move {
                    let now = ctx.now();
                    let beat = heartbeat::heartbeat(&ctx, now, wake_addr.as_deref());
                    match metrics.timed("heartbeat", now, beat).await {
                        Ok(report) => tracing::debug!(beats = report.beats, "heartbeat"),
                        Err(err) => tracing::warn!(%err, "heartbeat failed"),
                    }
                })
            },
        )?)
        .await?;
    let mail = Arc::new(mail);
    match crate::jobs::digests::forget_other_schedules(&ctx, &mail.digests).await {
        Ok(0) => {}
        Ok(n) => tracing::info!(
            programs = n,
            "digest schedule changed; next digests computed again"
        ),
        Err(err) => tracing::warn!(%err, "cannot check the stored digest occurrences"),
    }
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
    let loop_jobs = mail.clone();
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
                    // Notifications of the events since the last pass join the outbox
                    // first, so they leave in this same pass.
                    let now = ctx.now();
                    let notified = mail.metrics.timed(
                        "notifications",
                        now,
                        crate::jobs::notifications::notify_events(&ctx, now, 500),
                    );
                    match notified.await {
                        Ok(r) if r.queued > 0 => {
                            tracing::info!(events = r.events, queued = r.queued, "notifications")
                        }
                        Ok(_) => {}
                        Err(err) => tracing::warn!(%err, "notifications failed"),
                    }
                    // Until the backlog is drained (bounded), not one batch per tick.
                    let count_failures = |n| mail.metrics.email_send_failed(n);
                    let drained = crate::jobs::outbox::drain(
                        &ctx,
                        &mail.mailer,
                        &mail.from,
                        mail.batch,
                        mail.outbox_claim_ttl,
                        1000,
                        &count_failures,
                    );
                    match mail.metrics.timed("outbox", now, drained).await {
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
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let wake = Arc::new(tokio::sync::Notify::new());
    let wake_webhooks = Arc::new(tokio::sync::Notify::new());
    let mut background = Vec::new();
    if ctx.db.get_database_backend() == sea_orm::DbBackend::Postgres {
        background.push(tokio::spawn(crate::wakes::listen(
            ctx.clone(),
            entity::escalation::WAKE_CHANNEL,
            wake.clone(),
            stopped.clone(),
        )));
        background.push(tokio::spawn(crate::wakes::listen(
            ctx.clone(),
            entity::webhook::WAKE_CHANNEL,
            wake_webhooks.clone(),
            stopped.clone(),
        )));
    }
    if let Some(socket) = wake_socket {
        background.push(tokio::spawn(crate::wakes::take_wakes(
            socket,
            wake.clone(),
            wake_webhooks.clone(),
            stopped.clone(),
        )));
    }
    background.push(tokio::spawn(webhook_loop(
        ctx.clone(),
        loop_jobs.clone(),
        schedules.webhook_tick,
        wake_webhooks,
        stopped.clone(),
    )));
    background.push(tokio::spawn(escalation_loop(
        ctx.clone(),
        loop_jobs,
        schedules.escalation_tick,
        wake,
        stopped,
    )));
    scheduler.start().await?;
    shutdown.await;
    tracing::info!("shutting down the scheduler");
    let _ = stop.send(true);
    for task in background {
        let _ = task.await;
    }
    scheduler.shutdown().await?;
    Ok(())
}

/// The escalation fast tick: page what is due, then send it at once (not at the next
/// dispatcher tick), so a first page reaches the SMTP server well within a second.
async fn escalation_loop(
    ctx: Arc<JobContext>,
    mail: Arc<JobSettings>,
    every: std::time::Duration,
    wake: Arc<tokio::sync::Notify>,
    stopped: tokio::sync::watch::Receiver<bool>,
) {
    fast_loop(every, wake, stopped, || {
        let (ctx, mail) = (ctx.clone(), mail.clone());
        async move {
            let now = ctx.now();
            let pass = crate::jobs::escalations::escalation_pass(&ctx, now, &mail.escalations);
            match mail.metrics.timed("escalations", now, pass).await {
                Ok(r) if r.pages + r.skipped + r.exhausted + r.reopened > 0 => {
                    tracing::info!(
                        pages = r.pages,
                        emails = r.emails,
                        skipped = r.skipped,
                        exhausted = r.exhausted,
                        reopened = r.reopened,
                        "escalations"
                    );
                    match crate::jobs::outbox::dispatch_with(
                        &ctx,
                        &mail.mailer,
                        &mail.from,
                        now,
                        mail.batch,
                        mail.outbox_claim_ttl,
                        &|n| mail.metrics.email_send_failed(n),
                    )
                    .await
                    {
                        Ok(_) => {}
                        // Queued: the dispatcher sends them at its next tick.
                        Err(err) => tracing::warn!(%err, "sending escalation pages failed"),
                    }
                    true
                }
                Ok(_) => true,
                Err(err) => {
                    tracing::warn!(%err, "escalation pass failed; retrying shortly");
                    false
                }
            }
        }
    })
    .await;
}

/// How soon a failed fast-loop pass is tried again.
const RETRY_FAILED_PASS: std::time::Duration = std::time::Duration::from_secs(1);

/// Runs `pass` every `every` (at least 50 ms apart), and at once when woken, until
/// `stopped` turns true. A pass that fails (returns `false`: the database restarting,
/// say) is tried again after a second, not at the next tick: the tick may be long, and
/// the wake-up that brought the work is already spent.
async fn fast_loop<Fut>(
    every: std::time::Duration,
    wake: Arc<tokio::sync::Notify>,
    mut stopped: tokio::sync::watch::Receiver<bool>,
    mut pass: impl FnMut() -> Fut,
) where
    Fut: Future<Output = bool>,
{
    let mut interval = tokio::time::interval(every.max(std::time::Duration::from_millis(50)));
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = interval.tick() => {}
            _ = wake.notified() => {}
            _ = stopped.changed() => break,
        }
        if *stopped.borrow() {
            break;
        }
        while !pass().await {
            tokio::select! {
                _ = tokio::time::sleep(RETRY_FAILED_PASS) => {}
                _ = stopped.changed() => return,
            }
            if *stopped.borrow() {
                return;
            }
        }
    }
}

/// The webhook loop: deliver what is due (new events at once on PostgreSQL, retries
/// when their time comes).
async fn webhook_loop(
    ctx: Arc<JobContext>,
    jobs: Arc<JobSettings>,
    every: std::time::Duration,
    wake: Arc<tokio::sync::Notify>,
    stopped: tokio::sync::watch::Receiver<bool>,
) {
    fast_loop(every, wake, stopped, || {
        let (ctx, jobs) = (ctx.clone(), jobs.clone());
        async move {
            let now = ctx.now();
            let pass = crate::jobs::webhooks::delivery_pass(&ctx, &jobs.http, now, &jobs.webhooks);
            match jobs.metrics.timed("webhooks", now, pass).await {
                Ok(r) => {
                    jobs.metrics.webhook_failed(r.retried + r.failed);
                    if r.claimed > 0 {
                        tracing::info!(
                            delivered = r.delivered,
                            retried = r.retried,
                            failed = r.failed,
                            disabled = r.disabled,
                            "webhook deliveries"
                        );
                    }
                    true
                }
                Err(err) => {
                    tracing::warn!(%err, "webhook delivery pass failed; retrying shortly");
                    false
                }
            }
        }
    })
    .await;
}

/// Reminders and digests whose occurrence (in their program's time zone) is due, and
/// `action_item.overdue` events for items that became overdue.
async fn scheduled_pass(ctx: &JobContext, mail: &JobSettings) {
    let now = ctx.now();
    match mail
        .metrics
        .timed(
            "reminders",
            now,
            crate::jobs::reminders::overdue_reminders(ctx, now, &mail.reminders),
        )
        .await
    {
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
    match mail
        .metrics
        .timed(
            "overdue_events",
            now,
            crate::jobs::overdue_events::overdue_events(ctx, now),
        )
        .await
    {
        Ok(r) if r.emitted > 0 => tracing::info!(events = r.emitted, "action items overdue"),
        Ok(_) => {}
        Err(err) => tracing::warn!(%err, "action_item.overdue events failed"),
    }
    match mail
        .metrics
        .timed(
            "digests",
            now,
            crate::jobs::digests::weekly_digests(ctx, now, &mail.digests),
        )
        .await
    {
        Ok(r) if r.programs > 0 => {
            tracing::info!(programs = r.programs, queued = r.queued, "weekly digests")
        }
        Ok(_) => {}
        Err(err) => tracing::warn!(%err, "weekly digests failed"),
    }
    match mail
        .metrics
        .timed(
            "retention",
            now,
            crate::jobs::retention::purge(ctx, now, &mail.retention),
        )
        .await
    {
        Ok(r) if r != crate::jobs::retention::RetentionReport::default() => tracing::info!(
            idempotency_records = r.idempotency_records,
            webhook_deliveries = r.webhook_deliveries,
            webhook_attempts = r.webhook_attempts,
            "retention: purged"
        ),
        Ok(_) => {}
        Err(err) => tracing::warn!(%err, "retention purge failed"),
    }
    match mail
        .metrics
        .timed(
            "record_numbers",
            now,
            entity::record_number::number_unnumbered(&ctx.db),
        )
        .await
    {
        Ok(0) => {}
        Ok(n) => tracing::info!(records = n, "numbered records an older release created"),
        Err(err) => tracing::warn!(%err, "numbering records failed"),
    }
    match mail
        .metrics
        .timed(
            "access_notices",
            now,
            crate::jobs::access_notices::access_notices(ctx, now),
        )
        .await
    {
        Ok(r) if r.told > 0 => tracing::info!(told = r.told, "access change notices"),
        Ok(_) => {}
        Err(err) => tracing::warn!(%err, "access change notices failed"),
    }
    match mail
        .metrics
        .timed(
            "agreement_expiry",
            now,
            crate::jobs::agreement_expiry::expiry_reminders(ctx, now, &mail.agreements),
        )
        .await
    {
        Ok(r) if r.ran => tracing::info!(
            reminded = r.reminded,
            queued = r.queued,
            "quality agreement expiry reminders"
        ),
        Ok(_) => {}
        Err(err) => tracing::warn!(%err, "quality agreement expiry reminders failed"),
    }
    match mail
        .metrics
        .timed(
            "checkpoints",
            now,
            crate::jobs::checkpoints::daily_checkpoints(ctx, now, &mail.checkpoints),
        )
        .await
    {
        Ok(r) if r.not_intact > 0 => tracing::error!(
            taken = r.taken,
            not_intact = r.not_intact,
            "audit checkpoints: some chains do not verify (not anchored; quality users told)"
        ),
        Ok(r) if r.ran => tracing::info!(taken = r.taken, "audit checkpoints"),
        Ok(_) => {}
        Err(err) => tracing::warn!(%err, "audit checkpoints failed"),
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
