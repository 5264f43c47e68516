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

mod sqlite;
use sqlite::stable_query_plans;
pub use sqlite::{connect_readers, sqlite_file_path, sqlite_migration_lock};

pub const DEFAULT_DATABASE_URL: &str = "sqlite://cmo.db?mode=rwc";

#[derive(Debug, Clone, Args)]
pub struct DatabaseArgs {
    /// Database URL: `sqlite://FILE?mode=rwc` (created if missing) or `postgres://USER:PASS@HOST/DB`.
    #[arg(long, env = "DATABASE_URL", default_value = DEFAULT_DATABASE_URL)]
    pub database_url: String,

    /// Maximum pooled connections per process. Default: 1 on SQLite (one writer is
    /// fastest there); on PostgreSQL 8 for cmo-api and 5 for cmo-worker (which also holds
    /// one LISTEN connection), so that 6 api and 6 worker replicas stay inside
    /// PostgreSQL's default 100 connections (see the README's sizing).
    #[arg(long, env = "CMO_DB_MAX_CONNECTIONS", value_parser = clap::value_parser!(u32).range(1..=1000))]
    pub db_max_connections: Option<u32>,

    /// SQLite only: read-only connections beside the one writer, which serve the api's
    /// reads (WAL lets them run while a write is under way, so no read queues behind a
    /// write or behind another read). 0: reads share the writer. PostgreSQL's one pool
    /// serves reads and writes alike.
    #[arg(long, env = "CMO_DB_READ_CONNECTIONS", default_value_t = 4, value_parser = clap::value_parser!(u32).range(0..=64))]
    pub db_read_connections: u32,

    /// Seconds an unused pooled connection is kept before it is closed (the pool shrinks
    /// back after a peak). PostgreSQL only; SQLite keeps its one connection.
    #[arg(long, env = "CMO_DB_IDLE_TIMEOUT_SECS", default_value_t = 300, value_parser = clap::value_parser!(u64).range(1..=86_400))]
    pub db_idle_timeout_secs: u64,

    /// Seconds after which a pooled connection is replaced, whatever its use (spreads
    /// connections again after a database fail-over or a PgBouncer restart).
    #[arg(long, env = "CMO_DB_MAX_LIFETIME_SECS", default_value_t = 1_800, value_parser = clap::value_parser!(u64).range(10..=604_800))]
    pub db_max_lifetime_secs: u64,

    /// Milliseconds one SQL statement may run before PostgreSQL cancels it (its request
    /// answers 503 `statement_timeout`, its transaction rolls back); 0 for no limit. Below
    /// the api's request timeout (30 s), so that the database stops the statement before
    /// the api gives up the request (which cannot cancel a statement under way).
    /// Migrations run without it. SQLite has no statement timeout (its writers wait up
    /// to 10 s for each other).
    #[arg(long, env = "CMO_DB_STATEMENT_TIMEOUT_MS", default_value_t = 20_000, value_parser = clap::value_parser!(u64).range(0..=3_600_000))]
    pub db_statement_timeout_ms: u64,

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
    /// The settings a process has for `url` when nothing else is set (the flags'
    /// defaults; for tests and tools that build them in code).
    pub fn for_url(url: impl Into<String>) -> Self {
        Self {
            database_url: url.into(),
            db_max_connections: None,
            db_read_connections: 4,
            db_idle_timeout_secs: 300,
            db_max_lifetime_secs: 1_800,
            db_statement_timeout_ms: 20_000,
            no_migrate: false,
            db_acquire_timeout_ms: 10_000,
            audit_key: None,
            audit_key_file: None,
        }
    }

    /// The pool these settings give a process whose PostgreSQL pool defaults to
    /// `postgres_default` connections.
    pub fn pool(&self, postgres_default: u32) -> PoolSettings {
        let is_sqlite = self.database_url.starts_with("sqlite:");
        PoolSettings {
            max_connections: self.db_max_connections.unwrap_or(if is_sqlite {
                1
            } else {
                postgres_default
            }),
            acquire_timeout: Duration::from_millis(self.db_acquire_timeout_ms),
            idle_timeout: Duration::from_secs(self.db_idle_timeout_secs),
            max_lifetime: Duration::from_secs(self.db_max_lifetime_secs),
            statement_timeout: (self.db_statement_timeout_ms > 0)
                .then(|| Duration::from_millis(self.db_statement_timeout_ms)),
        }
    }

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
            // The request's fields once per line (the span list would repeat them).
            .with_span_list(false)
            .try_init(),
        LogFormat::Pretty => builder.compact().try_init(),
    };
}

/// How a process pools its database connections.
#[derive(Debug, Clone)]
pub struct PoolSettings {
    pub max_connections: u32,
    /// How long a request waits for a pooled connection.
    pub acquire_timeout: Duration,
    pub idle_timeout: Duration,
    pub max_lifetime: Duration,
    /// PostgreSQL's `statement_timeout` for every pooled connection.
    pub statement_timeout: Option<Duration>,
}

impl PoolSettings {
    /// What `connect` uses: the defaults of a command-line tool (one api's pool size).
    pub fn defaults(url: &str, max_connections: Option<u32>) -> Self {
        let is_sqlite = url.starts_with("sqlite:");
        Self {
            max_connections: max_connections.unwrap_or(if is_sqlite { 1 } else { 8 }),
            acquire_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(300),
            max_lifetime: Duration::from_secs(1_800),
            statement_timeout: None,
        }
    }
}

/// The PostgreSQL pool size of `cmo-api` when `CMO_DB_MAX_CONNECTIONS` is not set.
pub const API_POSTGRES_POOL: u32 = 8;
/// The PostgreSQL pool size of `cmo-worker` (plus its one LISTEN connection).
pub const WORKER_POSTGRES_POOL: u32 = 5;

/// Connects and, unless told not to, applies pending migrations. `postgres_pool` is the
/// process's PostgreSQL pool size when the settings do not choose one.
pub async fn connect_and_migrate(
    args: &DatabaseArgs,
    postgres_pool: u32,
) -> Result<DatabaseConnection, DbErr> {
    // Processes starting together on one SQLite file (api and worker) take turns on a
    // lock file from the first connection on: switching a new file to WAL needs an
    // exclusive lock that a concurrent connect would otherwise meet as "database is
    // locked". PostgreSQL serializes migrations inside `migrate_up`.
    let _guard = sqlite_migration_lock(&args.database_url).await?;
    let db = connect_pooled(&args.database_url, &args.pool(postgres_pool)).await?;
    match crate::compat::standing(&db).await? {
        crate::compat::Standing::Known => {}
        crate::compat::Standing::AheadCompatible(newer) => {
            // A newer release migrated the database (rolling upgrade, or a rollback to
            // this one): its migrations only added to the schema, so this runs on it.
            tracing::info!(
                newer = %newer.join(", "),
                "the database is ahead of this release by expand-only migrations; running on it"
            );
            return Ok(db);
        }
        crate::compat::Standing::AheadIncompatible(blocking) => {
            return Err(DbErr::Custom(format!(
                "the database has migration(s) {} from a newer release that this release \
                 cannot run with; run that release (or newer)",
                blocking.join(", ")
            )));
        }
    }
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
        // In the background: the process serves while a large table is indexed.
        let indexing = db.clone();
        tokio::spawn(async move {
            if let Err(err) = crate::build_concurrent_indexes(&indexing).await {
                tracing::warn!(%err, "building indexes concurrently failed; the next start tries again");
            }
        });
    }
    Ok(db)
}

pub async fn connect(url: &str, max_connections: Option<u32>) -> Result<DatabaseConnection, DbErr> {
    connect_pooled(url, &PoolSettings::defaults(url, max_connections)).await
}

/// [`connect`] with a chosen wait for a pooled connection.
pub async fn connect_with(
    url: &str,
    max_connections: Option<u32>,
    acquire_timeout: Duration,
) -> Result<DatabaseConnection, DbErr> {
    let settings = PoolSettings {
        acquire_timeout,
        ..PoolSettings::defaults(url, max_connections)
    };
    connect_pooled(url, &settings).await
}

/// Connects a pool with `settings`. When PostgreSQL cannot be reached the error says
/// why (refused, unknown host, authentication), not only that the pool timed out.
pub async fn connect_pooled(
    url: &str,
    settings: &PoolSettings,
) -> Result<DatabaseConnection, DbErr> {
    let is_sqlite = url.starts_with("sqlite:");
    if !is_sqlite {
        reach_postgres(url, settings.acquire_timeout).await?;
    }
    let mut pg_options = vec![("jit".to_string(), "off".to_string())];
    if let Some(limit) = settings.statement_timeout {
        pg_options.push((
            "statement_timeout".to_string(),
            limit.as_millis().to_string(),
        ));
    }
    let mut options = ConnectOptions::new(url.to_string());
    options
        .max_connections(settings.max_connections)
        .min_connections(if is_sqlite { 1 } else { 0 })
        .connect_timeout(Duration::from_secs(5))
        .acquire_timeout(settings.acquire_timeout)
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
        .map_sqlx_sqlite_pool_opts(|pool| {
            pool.after_connect(|conn, _| Box::pin(stable_query_plans(conn)))
        })
        // PostgreSQL: short OLTP queries only. JIT compilation, triggered by the
        // planner's row estimates on large tables, cost the overdue-reminder scan 30+ ms
        // of compiling for a 10 ms query. A statement past its limit is cancelled.
        .map_sqlx_postgres_opts(move |opts| opts.options(pg_options.clone()));
    if !is_sqlite {
        // The pool shrinks back after a peak and renews its connections.
        options
            .idle_timeout(settings.idle_timeout)
            .max_lifetime(settings.max_lifetime);
    }
    let db = Database::connect(options).await?;
    tracing::info!(
        backend = ?db.get_database_backend(),
        max_connections = settings.max_connections,
        "connected to database"
    );
    Ok(db)
}

/// One direct connection, to learn why PostgreSQL cannot be reached: the pool only says
/// that it timed out.
async fn reach_postgres(url: &str, wait: Duration) -> Result<(), DbErr> {
    use sea_orm::sqlx::Connection;
    let attempt = tokio::time::timeout(
        wait.max(Duration::from_secs(1)),
        sea_orm::sqlx::postgres::PgConnection::connect(url),
    )
    .await;
    let target = redacted(url);
    match attempt {
        Ok(Ok(conn)) => {
            let _ = conn.close().await;
            Ok(())
        }
        Ok(Err(err)) => Err(DbErr::Custom(format!(
            "cannot connect to PostgreSQL at {target}: {err}"
        ))),
        Err(_) => Err(DbErr::Custom(format!(
            "cannot connect to PostgreSQL at {target}: no answer within {} ms",
            wait.max(Duration::from_secs(1)).as_millis()
        ))),
    }
}

/// A database URL without its password, for messages.
fn redacted(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_string();
    };
    let rest = rest.split('?').next().unwrap_or(rest);
    match rest.rsplit_once('@') {
        Some((credentials, host)) => {
            let user = credentials.split(':').next().unwrap_or("");
            format!("{scheme}://{user}@{host}")
        }
        None => format!("{scheme}://{rest}"),
    }
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

    /// A newer release's migrations, as an older binary meets them: expand-only ones are
    /// run on (and nothing is migrated), an unmarked or contracting one is refused by name.
    #[tokio::test]
    async fn a_database_ahead_by_expand_only_migrations_is_run_on() {
        use sea_orm::ConnectionTrait;
        let dir = tempfile::tempdir().unwrap();
        let args = DatabaseArgs::for_url(format!(
            "sqlite://{}?mode=rwc",
            dir.path().join("ahead.db").display()
        ));
        let db = connect_and_migrate(&args, API_POSTGRES_POOL).await.unwrap();
        let marked: i64 = db
            .query_one_raw(sea_orm::Statement::from_string(
                sea_orm::DbBackend::Sqlite,
                "SELECT count(*) AS n FROM cmo_schema_compat",
            ))
            .await
            .unwrap()
            .unwrap()
            .try_get("", "n")
            .unwrap();
        assert_eq!(
            marked as usize,
            <crate::Migrator as sea_orm_migration::MigratorTrait>::migrations().len(),
            "each applied migration is recorded with its mark"
        );
        for sql in [
            "INSERT INTO seaql_migrations (version, applied_at) VALUES ('m20991231_000098_future_column', 0)",
            "INSERT INTO cmo_schema_compat (migration, expand_only, applied_by) VALUES ('m20991231_000098_future_column', 1, '9.9.9')",
        ] {
            db.execute_unprepared(sql).await.unwrap();
        }
        drop(db);
        connect_and_migrate(&args, API_POSTGRES_POOL)
            .await
            .expect("runs on a schema ahead by an expand-only migration");
        let db = connect(&args.database_url, None).await.unwrap();
        db.execute_unprepared(
            "INSERT INTO seaql_migrations (version, applied_at) VALUES ('m20991231_000099_future_drop', 0)",
        )
        .await
        .unwrap();
        drop(db);
        let err = connect_and_migrate(&args, API_POSTGRES_POOL)
            .await
            .unwrap_err()
            .to_string();
        assert!(err.contains("m20991231_000099_future_drop"), "{err}");
        assert!(!err.contains("m20991231_000098_future_column"), "{err}");
        assert!(err.contains("cannot run with"), "{err}");
    }

    #[test]
    fn messages_never_show_the_database_password() {
        assert_eq!(
            redacted("postgres://cmo:s3cret@db.internal:5432/cmo?sslmode=require"),
            "postgres://cmo@db.internal:5432/cmo"
        );
        assert_eq!(redacted("postgres://db/cmo"), "postgres://db/cmo");
    }

    #[tokio::test]
    async fn an_unreachable_postgres_says_why() {
        // Port 1 on loopback: nothing listens there.
        let err = connect_pooled(
            "postgres://cmo:pw@127.0.0.1:1/cmo",
            &PoolSettings::defaults("postgres://", None),
        )
        .await
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("cannot connect to PostgreSQL at postgres://cmo@127.0.0.1:1/cmo"),
            "{err}"
        );
        assert!(err.to_lowercase().contains("refused"), "{err}");
        assert!(!err.contains("pw"), "{err}");
    }

    #[tokio::test]
    async fn two_processes_worth_of_migrations_on_one_file_do_not_collide() {
        let dir = tempfile::tempdir().unwrap();
        let args = DatabaseArgs::for_url(format!(
            "sqlite://{}?mode=rwc",
            dir.path().join("race.db").display()
        ));
        let (a, b) = tokio::join!(
            connect_and_migrate(&args, API_POSTGRES_POOL),
            connect_and_migrate(&args, WORKER_POSTGRES_POOL)
        );
        a.unwrap();
        b.unwrap();
        let db = connect(&args.database_url, None).await.unwrap();
        assert!(crate::pending(&db).await.unwrap().is_empty());
    }
}
