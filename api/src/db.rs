//! Database connection with the settings each backend needs.

use std::time::Duration;

use sea_orm::sqlx::sqlite::{SqliteJournalMode, SqliteSynchronous};
use sea_orm::{
    ConnectOptions, Database, DatabaseConnection, DatabaseTransaction, DbBackend, DbErr,
    SqliteTransactionMode, TransactionOptions, TransactionTrait,
};

use crate::config::DatabaseArgs;

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
        let pending = migration::pending(&db).await?;
        if !pending.is_empty() {
            return Err(DbErr::Custom(format!(
                "{} migration(s) pending ({}) and --no-migrate is set; run cmo-migrate up",
                pending.len(),
                pending.join(", ")
            )));
        }
    } else {
        migration::migrate_up(&db).await?;
    }
    Ok(db)
}

/// Holds an exclusive lock on `<database file>.migrate-lock` while alive.
async fn sqlite_migration_lock(url: &str) -> Result<Option<std::fs::File>, DbErr> {
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

/// Begins a transaction that will write. On SQLite it takes the write lock up front
/// (`BEGIN IMMEDIATE`): a deferred transaction that reads first and writes later fails
/// at once if another process wrote in between, where this one waits its turn.
pub async fn begin_write(db: &DatabaseConnection) -> Result<DatabaseTransaction, DbErr> {
    db.begin_with_options(TransactionOptions {
        sqlite_transaction_mode: Some(SqliteTransactionMode::Immediate),
        ..Default::default()
    })
    .await
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
        };
        let (a, b) = tokio::join!(connect_and_migrate(&args), connect_and_migrate(&args));
        a.unwrap();
        b.unwrap();
        let db = connect(&args.database_url, None).await.unwrap();
        assert!(migration::pending(&db).await.unwrap().is_empty());
    }
}
