//! `cmo-worker`: the scheduled-jobs process.

use std::process::ExitCode;

use clap::Parser;
use migration::startup::{ClockArgs, DatabaseArgs, TelemetryArgs};
use worker::jobs::JobContext;
use worker::runner::{JobSettings, Schedules, run};

#[derive(Parser)]
#[command(
    name = "cmo-worker",
    version,
    about = "cmo-orchestrator scheduled jobs"
)]
struct Cli {
    #[command(flatten)]
    database: DatabaseArgs,
    #[command(flatten)]
    telemetry: TelemetryArgs,
    #[command(flatten)]
    clock: ClockArgs,
    /// Cron schedule (6 fields, with seconds, UTC) of the heartbeat job.
    #[arg(long, env = "CMO_HEARTBEAT_CRON", default_value = "*/30 * * * * *")]
    heartbeat_cron: String,
    /// Identifier of this worker (default: hostname and process id).
    #[arg(long, env = "CMO_WORKER_ID")]
    worker_id: Option<String>,
    /// Cron schedule (6 fields, UTC) of the outbox dispatcher.
    #[arg(long, env = "CMO_DISPATCH_CRON", default_value = "*/2 * * * * *")]
    dispatch_cron: String,
    /// SMTP server, e.g. `smtp://user:pass@mail.example.com:587?tls=required` or
    /// `smtps://mail.example.com`. Without it, emails are written as `.eml` files.
    #[arg(long, env = "CMO_SMTP_URL")]
    smtp_url: Option<String>,
    /// Folder for `.eml` files when no SMTP URL is set.
    #[arg(long, env = "CMO_OUTBOX_DIR", default_value = "outbox")]
    outbox_dir: std::path::PathBuf,
    /// Sender of every email.
    #[arg(
        long,
        env = "CMO_MAIL_FROM",
        default_value = "cmo-orchestrator <noreply@localhost>"
    )]
    mail_from: String,
    /// Local clock of the per-program schedules (6 fields, UTC): how often this worker
    /// checks whether a reminder or digest occurrence is due.
    #[arg(long, env = "CMO_SCHEDULE_TICK_CRON", default_value = "0 * * * * *")]
    schedule_tick_cron: String,
    /// When overdue reminders go out, read in each recipient's own time zone (6 fields).
    #[arg(
        long,
        env = "CMO_REMINDER_SCHEDULE",
        default_value = "0 0 8 * * Mon-Fri"
    )]
    reminder_schedule: String,
    /// When weekly digests go out, read in each program's time zone (6 fields).
    #[arg(long, env = "CMO_DIGEST_SCHEDULE", default_value = "0 0 7 * * Mon")]
    digest_schedule: String,
    /// A reminder or digest occurrence missed while no worker ran still goes out this
    /// many minutes later (0 = never catch up).
    #[arg(long, env = "CMO_CATCH_UP_MINUTES", default_value_t = 360, value_parser = clap::value_parser!(u32).range(0..=10080))]
    catch_up_minutes: u32,
    /// How often (milliseconds) the worker looks for escalation pages that are due. On
    /// PostgreSQL a new escalation also wakes it at once (LISTEN/NOTIFY).
    #[arg(long, env = "CMO_ESCALATION_TICK_MS", default_value_t = 250, value_parser = clap::value_parser!(u64).range(50..=60_000))]
    escalation_tick_ms: u64,
    /// When quality-agreement expiry reminders are checked (6 fields, UTC; daily).
    #[arg(long, env = "CMO_AGREEMENT_SCHEDULE", default_value = "0 0 6 * * *")]
    agreement_schedule: String,
    /// When each organization's audit chain is verified and, when it moved, a signed
    /// checkpoint taken and sent to its quality users (6 fields, UTC; daily).
    #[arg(long, env = "CMO_CHECKPOINT_SCHEDULE", default_value = "0 30 0 * * *")]
    checkpoint_schedule: String,
    /// Days overdue after which the leadership tier is copied.
    #[arg(long, env = "CMO_REMINDER_ESCALATE_DAYS", default_value_t = 7)]
    reminder_escalate_days: i64,
    /// Days before an action item's due date its owner is told it is due soon (0: never).
    #[arg(long, env = "CMO_DUE_SOON_DAYS", default_value_t = 2, value_parser = clap::value_parser!(i64).range(0..=60))]
    due_soon_days: i64,
    /// Deliver webhooks to loopback receivers (127.0.0.0/8, ::1, localhost): tests and a
    /// receiver on the same host. Inner addresses are refused whatever this says.
    #[arg(long, env = "CMO_WEBHOOK_ALLOW_LOOPBACK", default_value_t = false)]
    webhook_allow_loopback: bool,
    /// Days finished webhook deliveries and their attempt logs are kept.
    #[arg(long, env = "CMO_WEBHOOK_LOG_DAYS", default_value_t = 30, value_parser = clap::value_parser!(i64).range(1..=3650))]
    webhook_log_days: i64,
    /// How often (milliseconds) the worker looks for webhook deliveries that are due. On
    /// PostgreSQL a new event also wakes it at once (LISTEN/NOTIFY).
    #[arg(long, env = "CMO_WEBHOOK_TICK_MS", default_value_t = 250, value_parser = clap::value_parser!(u64).range(50..=60_000))]
    webhook_tick_ms: u64,
    /// Deadline (milliseconds) of one webhook POST: connect, TLS, send, answer.
    #[arg(long, env = "CMO_WEBHOOK_TIMEOUT_MS", default_value_t = 10_000, value_parser = clap::value_parser!(u64).range(100..=60_000))]
    webhook_timeout_ms: u64,
    /// Attempts before a webhook delivery is given up (retries on 5xx, 408, 429 and
    /// no answer, after 30 s, 2 min, 8 min, … up to 6 h between attempts).
    #[arg(long, env = "CMO_WEBHOOK_MAX_ATTEMPTS", default_value_t = 10, value_parser = clap::value_parser!(i32).range(1..=30))]
    webhook_max_attempts: i32,
    /// Delay (milliseconds) after a webhook's first failed attempt; each next one is 4×.
    #[arg(long, env = "CMO_WEBHOOK_RETRY_BASE_MS", default_value_t = 30_000, value_parser = clap::value_parser!(i64).range(10..=3_600_000))]
    webhook_retry_base_ms: i64,
    /// Failed attempts in a row after which a subscription is disabled (its org's
    /// admins are emailed). A 410 Gone disables at once.
    #[arg(long, env = "CMO_WEBHOOK_DISABLE_AFTER", default_value_t = 20, value_parser = clap::value_parser!(i32).range(1..=1000))]
    webhook_disable_after: i32,
    /// Webhook POSTs in flight at once per worker.
    #[arg(long, env = "CMO_WEBHOOK_CONCURRENCY", default_value_t = 16, value_parser = clap::value_parser!(u64).range(1..=256))]
    webhook_concurrency: u64,
    /// Seconds a claimed email stays with a worker that died mid-send before another
    /// worker sends it (with the same Message-ID).
    #[arg(long, env = "CMO_OUTBOX_CLAIM_SECS", default_value_t = 60, value_parser = clap::value_parser!(i64).range(5..=3600))]
    outbox_claim_secs: i64,
    /// Address of the worker's `/metrics` and `/healthz` (e.g. `0.0.0.0:9464`; port 0
    /// picks one, logged). Unset: not served.
    #[arg(long, env = "CMO_WORKER_METRICS_BIND")]
    metrics_bind: Option<String>,
    /// When set, `/metrics` answers only a scraper that sends it as a bearer token (the
    /// same setting as the api's).
    #[arg(long, env = "CMO_METRICS_TOKEN", hide_env_values = true)]
    metrics_token: Option<String>,
    /// `/healthz` answers 503 when the heartbeat job has not succeeded for this many
    /// seconds (the scheduler is stuck or the database away).
    #[arg(long, env = "CMO_WORKER_HEALTH_STALE_SECS", default_value_t = 120, value_parser = clap::value_parser!(u64).range(1..=86_400))]
    health_stale_secs: u64,
    /// Public base URL of the api, for links in emails.
    #[arg(
        long,
        env = "CMO_PUBLIC_BASE_URL",
        default_value = "http://127.0.0.1:8080"
    )]
    public_base_url: String,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    migration::startup::init_logging(&cli.telemetry);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(err) => {
            eprintln!("cmo-worker: cannot start the runtime: {err}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(start(cli)) {
        Ok(()) => {
            tracing::info!("cmo-worker stopped");
            ExitCode::SUCCESS
        }
        Err(message) => {
            tracing::error!("{message}");
            eprintln!("cmo-worker: {message}");
            ExitCode::FAILURE
        }
    }
}

async fn start(cli: Cli) -> Result<(), String> {
    let shutdown = shutdown_signal();
    let clock = entity::clock::process_clock(cli.clock.test_clock_start)?;
    let db = migration::startup::connect_and_migrate(
        &cli.database,
        migration::startup::WORKER_POSTGRES_POOL,
    )
    .await
    .map_err(|e| e.to_string())?;
    let keys = entity::audit::key_store::KeySource {
        keys: cli
            .database
            .audit_key
            .clone()
            .filter(|k| !k.trim().is_empty()),
        file: cli.database.audit_key_file.clone(),
        sqlite_file: cli.database.sqlite_file(),
        in_memory: cli.database.in_memory(),
    };
    let opened = entity::audit::key_store::open(&keys, &db).await?;
    for notice in opened.notices() {
        tracing::warn!("{notice}");
    }
    match entity::user::unmailable(&db).await {
        Ok(bad) => {
            for (id, email) in bad {
                tracing::warn!(
                    user_id = id,
                    email = %email.escape_debug(),
                    "this account's email is not a bare address, so mail to it is refused: correct it"
                );
            }
        }
        Err(err) => tracing::warn!(%err, "cannot check the stored email addresses"),
    }
    let hostname = hostname::get()
        .map(|h| h.to_string_lossy().into_owned())
        .unwrap_or_else(|_| "unknown-host".to_string());
    let worker_id = match cli.worker_id {
        Some(id) if id.is_empty() || id.len() > 64 || id.chars().any(char::is_control) => {
            return Err("--worker-id must be 1 to 64 printable characters".to_string());
        }
        Some(id) => id,
        // Hostnames may be up to 253 characters; keep the id within its 64.
        None => {
            let pid = std::process::id().to_string();
            let host: String = hostname.chars().take(63 - pid.len()).collect();
            format!("{host}-{pid}")
        }
    };
    let hostname: String = hostname.chars().take(255).collect();
    let ctx = JobContext {
        db: db.clone(),
        started_at: clock.now(),
        clock,
        worker_id,
        hostname,
        public_base_url: cli.public_base_url.clone(),
        chain_keys: opened.keys,
    };
    let schedules = Schedules {
        heartbeat: cli.heartbeat_cron,
        dispatch: cli.dispatch_cron,
        tick: cli.schedule_tick_cron,
        escalation_tick: std::time::Duration::from_millis(cli.escalation_tick_ms),
        webhook_tick: std::time::Duration::from_millis(cli.webhook_tick_ms),
    };
    // 0 ("never catch up") still sends on the tick right after an occurrence.
    let tick_cron = entity::schedule::parse(&schedules.tick)
        .map_err(|e| format!("invalid schedule tick {:?}: {e}", schedules.tick))?;
    let catch_up = entity::schedule::effective_catch_up(
        chrono::TimeDelta::minutes(i64::from(cli.catch_up_minutes)),
        &tick_cron,
    );
    let from: lettre::message::Mailbox = cli.mail_from.parse().map_err(|e| {
        format!(
            "--mail-from {:?} is not an email address: {e}",
            cli.mail_from
        )
    })?;
    let reminders = worker::jobs::reminders::ReminderSettings {
        schedule: cli.reminder_schedule,
        catch_up,
        escalate_after_days: cli.reminder_escalate_days,
        due_soon_days: cli.due_soon_days,
    };
    let agreements = worker::jobs::agreement_expiry::AgreementSettings {
        schedule: cli.agreement_schedule,
        ..Default::default()
    };
    let checkpoints = worker::jobs::checkpoints::CheckpointSettings {
        schedule: cli.checkpoint_schedule,
        ..Default::default()
    };
    let escalations = worker::jobs::escalations::EscalationSettings::default();
    let digests = worker::jobs::digests::DigestSettings {
        schedule: cli.digest_schedule,
        catch_up,
    };
    let webhooks = worker::jobs::webhooks::WebhookSettings {
        policy: entity::webhook::RetryPolicy {
            max_attempts: cli.webhook_max_attempts,
            base: chrono::TimeDelta::milliseconds(cli.webhook_retry_base_ms),
            disable_after: cli.webhook_disable_after,
            ..Default::default()
        },
        concurrency: cli.webhook_concurrency as usize,
        ..Default::default()
    };
    let http = worker::outbound::http::HttpClient::new(std::time::Duration::from_millis(
        cli.webhook_timeout_ms,
    ))?
    .with_policy(entity::webhook::AddressPolicy {
        allow_loopback: cli.webhook_allow_loopback,
    });
    let mailer = worker::outbound::mailer::Mailer::new(cli.smtp_url.as_deref(), cli.outbox_dir)
        .map_err(|e| e.to_string())?;
    let metrics = std::sync::Arc::new(worker::metrics::WorkerMetrics::default());
    if let Some(bind) = cli.metrics_bind.filter(|b| !b.is_empty()) {
        let server = worker::metrics::MetricsServer {
            bind: bind.clone(),
            token: cli.metrics_token.filter(|t| !t.is_empty()),
            stale_after: std::time::Duration::from_secs(cli.health_stale_secs),
            max_connections: cli
                .database
                .pool(migration::startup::WORKER_POSTGRES_POOL)
                .max_connections,
        };
        worker::metrics::serve(server, std::sync::Arc::new(ctx.clone()), metrics.clone())
            .await
            .map_err(|e| format!("cannot serve metrics on {bind}: {e}"))?;
    }
    let mail = JobSettings {
        mailer,
        from,
        batch: 100,
        outbox_claim_ttl: chrono::TimeDelta::seconds(cli.outbox_claim_secs),
        reminders,
        digests,
        escalations,
        agreements,
        checkpoints,
        webhooks,
        retention: worker::jobs::retention::RetentionSettings {
            webhook_log: chrono::TimeDelta::days(cli.webhook_log_days),
        },
        http,
        metrics,
    };
    run(ctx, schedules, mail, shutdown)
        .await
        .map_err(|e| e.to_string())?;
    // As the api: nothing committed is left waiting for its cursor at a rollback.
    entity::domain_event::catch_up(&db).await;
    let _ = db.close().await;
    Ok(())
}

/// Resolves on SIGTERM or Ctrl-C. The handler is installed when this is called, not when
/// the future is first polled: a SIGTERM that arrives while the worker still connects,
/// migrates or runs its first pass is kept, and the worker then stops cleanly (exit 0)
/// instead of being killed by the signal's default action.
fn shutdown_signal() -> impl Future<Output = ()> {
    #[cfg(unix)]
    let term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate());
    let interrupt = tokio::signal::ctrl_c();
    async move {
        #[cfg(unix)]
        if let Ok(mut term) = term {
            tokio::select! {
                _ = term.recv() => {}
                _ = interrupt => {}
            }
            return;
        }
        let _ = interrupt.await;
    }
}
