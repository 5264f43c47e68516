//! Configuration shared by `cmo-api` and `cmo-worker`: flags, each with an environment
//! variable and a default that runs with zero set-up.

use clap::{Args, ValueEnum};

pub const DEFAULT_DATABASE_URL: &str = "sqlite://cmo.db?mode=rwc";

#[derive(Debug, Clone, Args)]
pub struct DatabaseArgs {
    /// Database URL: `sqlite://FILE?mode=rwc` (created if missing) or `postgres://USER:PASS@HOST/DB`.
    #[arg(long, env = "DATABASE_URL", default_value = DEFAULT_DATABASE_URL)]
    pub database_url: String,

    /// Maximum pooled connections. Default: 1 on SQLite (one writer is fastest there), 10 on PostgreSQL.
    #[arg(long, env = "CMO_DB_MAX_CONNECTIONS")]
    pub db_max_connections: Option<u32>,

    /// Do not apply pending migrations at start-up (fail instead if any are pending).
    #[arg(long, env = "CMO_NO_MIGRATE", default_value_t = false)]
    pub no_migrate: bool,

    /// How long (milliseconds) a request waits for a database connection before it
    /// answers 503 (pool exhausted, or the database unreachable).
    #[arg(long, env = "CMO_DB_ACQUIRE_TIMEOUT_MS", default_value_t = 10_000, value_parser = clap::value_parser!(u64).range(100..=120_000))]
    pub db_acquire_timeout_ms: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Pretty,
    Json,
}

/// The process clock. Only tests move it: a real binary run at the test's instant.
#[derive(Debug, Clone, Args)]
pub struct ClockArgs {
    /// Tests only: start the clock of domain time at this RFC 3339 instant (it then
    /// advances in real time). Refused unless `CMO_ALLOW_TEST_CLOCK=1`. Times other
    /// parties check against their own clocks (webhook timestamps) stay on the wall clock.
    #[arg(long, env = "CMO_TEST_CLOCK_START", hide = true)]
    pub test_clock_start: Option<chrono::DateTime<chrono::Utc>>,
}

impl ClockArgs {
    pub fn clock(&self) -> Result<std::sync::Arc<dyn entity::clock::Clock>, String> {
        entity::clock::test_clock(self.test_clock_start, entity::clock::test_clock_allowed())
    }
}

#[derive(Debug, Clone, Args)]
pub struct TelemetryArgs {
    /// Log format.
    #[arg(long, env = "CMO_LOG_FORMAT", value_enum, default_value = "pretty")]
    pub log_format: LogFormat,

    /// Log filter in tracing's `EnvFilter` syntax, e.g. `info,sqlx=warn`.
    #[arg(long, env = "CMO_LOG", default_value = "info,sqlx=warn,sea_orm=warn")]
    pub log_filter: String,
}

#[derive(Debug, Clone, Args)]
pub struct ServeArgs {
    /// Address and port the HTTP server listens on.
    #[arg(long, env = "CMO_BIND", default_value = "127.0.0.1:8080")]
    pub bind: String,

    /// Public base URL of the api, used for links in emails.
    #[arg(
        long,
        env = "CMO_PUBLIC_BASE_URL",
        default_value = "http://127.0.0.1:8080"
    )]
    pub public_base_url: String,

    /// HTTP worker threads (default: one per CPU core).
    #[arg(long, env = "CMO_HTTP_WORKERS")]
    pub http_workers: Option<usize>,

    /// Seconds to let in-flight requests finish after SIGTERM.
    #[arg(long, env = "CMO_SHUTDOWN_TIMEOUT_SECS", default_value_t = 30)]
    pub shutdown_timeout_secs: u64,
}
