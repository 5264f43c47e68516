//! Database connection with the settings each backend needs.

use std::time::Duration;

use sea_orm::sqlx::sqlite::{SqliteJournalMode, SqliteSynchronous};
use sea_orm::{ConnectOptions, Database, DatabaseConnection, DbBackend, DbErr};

use crate::config::DatabaseArgs;

/// Connects and, unless told not to, applies pending migrations.
pub async fn connect_and_migrate(args: &DatabaseArgs) -> Result<DatabaseConnection, DbErr> {
    let db = connect(&args.database_url, args.db_max_connections).await?;
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

pub async fn connect(url: &str, max_connections: Option<u32>) -> Result<DatabaseConnection, DbErr> {
    let is_sqlite = url.starts_with("sqlite:");
    let mut options = ConnectOptions::new(url.to_string());
    options
        .max_connections(max_connections.unwrap_or(if is_sqlite { 1 } else { 10 }))
        .min_connections(if is_sqlite { 1 } else { 0 })
        .connect_timeout(Duration::from_secs(5))
        .acquire_timeout(Duration::from_secs(10))
        .sqlx_logging(false)
        // SQLite: WAL lets readers run beside the writer; busy_timeout waits for another
        // process's write instead of failing; foreign keys are off by default there.
        .map_sqlx_sqlite_opts(|opts| {
            opts.create_if_missing(true)
                .journal_mode(SqliteJournalMode::Wal)
                .synchronous(SqliteSynchronous::Normal)
                .busy_timeout(Duration::from_secs(10))
                .foreign_keys(true)
        });
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
