//! Start-up shared by the three binaries (`cmo-api`, `cmo-worker`, `cmo-migrate`): the
//! flags each reads (with an environment variable and a default that runs with zero
//! set-up), the database connection with the settings each backend needs, and the one
//! tracing set-up. It lives here because every binary already depends on this crate
//! and it runs the migrations; the rules crate (`entity`) stays free of clap and logging.

use std::time::Duration;

use clap::{Args, ValueEnum};
use sea_orm::sqlx::sqlite::{SqliteJournalMode, SqliteSynchronous};
use sea_orm::{ConnectOptions, Database, DatabaseConnection, DbBackend, DbErr};
use tracing_subscriber::EnvFilter;

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

    /// The audit chain keys in hex (64 digits each), comma-separated, oldest first; the
    /// last keys new rows. Or use --audit-key-file. Required on PostgreSQL (the same on
    /// every api and worker replica); on a SQLite file the default is a key file beside
    /// the database (`<file>.audit-key`), generated on first start.
    #[arg(
        long,
        env = "CMO_AUDIT_KEY",
        hide_env_values = true,
        conflicts_with = "audit_key_file"
    )]
    pub audit_key: Option<String>,

    /// A file holding the audit chain keys (one per line in hex, oldest first), as
    /// `cmo-api audit-key generate` writes it.
    #[arg(long, env = "CMO_AUDIT_KEY_FILE")]
    pub audit_key_file: Option<std::path::PathBuf>,
}

impl DatabaseArgs {
    /// The database's file when it is SQLite on disk.
    pub fn sqlite_file(&self) -> Option<String> {
        sqlite_file_path(&self.database_url)
    }

    /// An in-memory SQLite database.
    pub fn in_memory(&self) -> bool {
        self.database_url.starts_with("sqlite:") && self.sqlite_file().is_none()
    }
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

#[derive(Debug, Clone, Args)]
pub struct TelemetryArgs {
    /// Log format.
    #[arg(long, env = "CMO_LOG_FORMAT", value_enum, default_value = "pretty")]
    pub log_format: LogFormat,

    /// Log filter in tracing's `EnvFilter` syntax, e.g. `info,sqlx=warn`.
    #[arg(long, env = "CMO_LOG", default_value = "info,sqlx=warn,sea_orm=warn")]
    pub log_filter: String,
}

/// Installs the global tracing subscriber. Safe to call more than once (later calls do nothing),
/// which keeps tests that start several apps in one process simple.
pub fn init_logging(args: &TelemetryArgs) {
    let filter = EnvFilter::try_new(&args.log_filter).unwrap_or_else(|err| {
        eprintln!(
            "invalid log filter {:?} ({err}); using \"info\"",
            args.log_filter
        );
        EnvFilter::new("info")
    });
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = match args.log_format {
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .try_init(),
        LogFormat::Pretty => builder.compact().try_init(),
    };
}

/// Connects and, unless told not to, applies pending migrations.
pub async fn connect_and_migrate(args: &DatabaseArgs) -> Result<DatabaseConnection, DbErr> {
    // Processes starting together on one SQLite file (api and worker) take turns on a
    // lock file from the first connection on: switching a new file to WAL needs an
    // exclusive lock that a concurrent connect would otherwise meet as "database is
    // locked". PostgreSQL serializes migrations inside `migrate_up`.
    let _guard = sqlite_migration_lock(&args.database_url).await?;
    let db = connect_with(
        &args.database_url,
        args.db_max_connections,
        Duration::from_millis(args.db_acquire_timeout_ms),
    )
    .await?;
    if args.no_migrate {
        let pending = crate::pending(&db).await?;
        if !pending.is_empty() {
            return Err(DbErr::Custom(format!(
                "{} migration(s) pending ({}) and --no-migrate is set; run cmo-migrate up",
                pending.len(),
                pending.join(", ")
            )));
        }
    } else {
        crate::migrate_up(&db).await?;
    }
    Ok(db)
}

/// Holds an exclusive lock on `<database file>.migrate-lock` while alive.
pub async fn sqlite_migration_lock(url: &str) -> Result<Option<std::fs::File>, DbErr> {
    let Some(path) = sqlite_file_path(url) else {
        return Ok(None);
    };
    let lock_path = format!("{path}.migrate-lock");
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&lock_path)
        .map_err(|e| DbErr::Custom(format!("cannot open {lock_path}: {e}")))?;
    // Waiting for the lock blocks a thread: keep that off the async executor.
    tokio::task::spawn_blocking(move || {
        file.lock()
            .map(|()| Some(file))
            .map_err(|e| DbErr::Custom(format!("cannot lock {lock_path}: {e}")))
    })
    .await
    .map_err(|e| DbErr::Custom(e.to_string()))?
}

/// The file behind a SQLite URL (`sqlite://cmo.db?mode=rwc` → `cmo.db`); `None` for
/// in-memory databases and other backends.
pub fn sqlite_file_path(url: &str) -> Option<String> {
    let rest = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))?;
    let path = rest.split('?').next().unwrap_or("");
    if path.is_empty() || path == ":memory:" || rest.contains("mode=memory") {
        return None;
    }
    Some(path.to_string())
}

pub async fn connect(url: &str, max_connections: Option<u32>) -> Result<DatabaseConnection, DbErr> {
    connect_with(url, max_connections, Duration::from_secs(10)).await
}

/// [`connect`] with a chosen wait for a pooled connection.
pub async fn connect_with(
    url: &str,
    max_connections: Option<u32>,
    acquire_timeout: Duration,
) -> Result<DatabaseConnection, DbErr> {
    let is_sqlite = url.starts_with("sqlite:");
    let mut options = ConnectOptions::new(url.to_string());
    options
        .max_connections(max_connections.unwrap_or(if is_sqlite { 1 } else { 10 }))
        .min_connections(if is_sqlite { 1 } else { 0 })
        .connect_timeout(Duration::from_secs(5))
        .acquire_timeout(acquire_timeout)
        .sqlx_logging(false)
        // SQLite: WAL lets readers run beside the writer; busy_timeout waits for another
        // process's write instead of failing; foreign keys are off by default there.
        .map_sqlx_sqlite_opts(|opts| {
            opts.create_if_missing(true)
                .journal_mode(SqliteJournalMode::Wal)
                .synchronous(SqliteSynchronous::Normal)
                .busy_timeout(Duration::from_secs(10))
                .foreign_keys(true)
        })
        // PostgreSQL: short OLTP queries only. JIT compilation, triggered by the
        // planner's row estimates on large tables, cost the overdue-reminder scan 30+ ms
        // of compiling for a 10 ms query.
        .map_sqlx_postgres_opts(|opts| opts.options([("jit", "off")]));
    let db = Database::connect(options).await?;
    tracing::info!(backend = ?db.get_database_backend(), "connected to database");
    Ok(db)
}

/// A cheap round trip, for readiness checks.
pub async fn ping(db: &DatabaseConnection) -> Result<(), DbErr> {
    db.ping().await
}

pub fn backend_name(db: &DatabaseConnection) -> &'static str {
    match db.get_database_backend() {
        DbBackend::Postgres => "postgres",
        DbBackend::Sqlite => "sqlite",
        _ => "other",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sqlite_urls_name_their_file() {
        assert_eq!(
            sqlite_file_path("sqlite://cmo.db?mode=rwc").as_deref(),
            Some("cmo.db")
        );
        assert_eq!(
            sqlite_file_path("sqlite:///var/lib/cmo/cmo.db").as_deref(),
            Some("/var/lib/cmo/cmo.db")
        );
        assert_eq!(sqlite_file_path("sqlite::memory:"), None);
        assert_eq!(sqlite_file_path("postgres://u@h/db"), None);
    }

    #[tokio::test]
    async fn two_processes_worth_of_migrations_on_one_file_do_not_collide() {
        let dir = tempfile::tempdir().unwrap();
        let args = DatabaseArgs {
            database_url: format!("sqlite://{}?mode=rwc", dir.path().join("race.db").display()),
            db_max_connections: None,
            no_migrate: false,
            db_acquire_timeout_ms: 10_000,
            audit_key: None,
            audit_key_file: None,
        };
        let (a, b) = tokio::join!(connect_and_migrate(&args), connect_and_migrate(&args));
        a.unwrap();
        b.unwrap();
        let db = connect(&args.database_url, None).await.unwrap();
        assert!(crate::pending(&db).await.unwrap().is_empty());
    }
}
