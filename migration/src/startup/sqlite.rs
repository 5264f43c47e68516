//! SQLite's side of start-up: the file behind a URL, the lock that serializes migrating
//! processes, the read-only pool beside the one writer, and the per-connection setting
//! that keeps query plans (and prepared statements) stable.

use std::os::raw::c_int;
use std::time::Duration;

use sea_orm::sqlx::{self, SqliteConnection, sqlite::LockedSqliteHandle};
use sea_orm::{ConnectOptions, Database, DatabaseConnection, DbErr};

use super::DatabaseArgs;

/// SQLite's readers: a pool of read-only connections to the same file, beside the one
/// writer [`connect_and_migrate`] returns. `None` where there is nothing to gain: on
/// PostgreSQL (one pool serves both), on an in-memory database (another connection would
/// open another database) and with `--db-read-connections 0`. Connect after migrating:
/// a reader cannot switch a new file to WAL.
pub async fn connect_readers(args: &DatabaseArgs) -> Result<Option<DatabaseConnection>, DbErr> {
    if args.sqlite_file().is_none() || args.db_read_connections == 0 {
        return Ok(None);
    }
    let mut options = ConnectOptions::new(args.database_url.clone());
    options
        .max_connections(args.db_read_connections)
        .min_connections(1)
        .connect_timeout(Duration::from_secs(5))
        .acquire_timeout(Duration::from_millis(args.db_acquire_timeout_ms))
        .sqlx_logging(false)
        // Read-only: a write sent here by mistake fails loudly instead of racing the
        // writer. busy_timeout covers the moments a checkpoint needs the file.
        .map_sqlx_sqlite_opts(|opts| {
            opts.read_only(true)
                .create_if_missing(false)
                .busy_timeout(Duration::from_secs(10))
                .foreign_keys(true)
        })
        .map_sqlx_sqlite_pool_opts(|pool| {
            pool.after_connect(|conn, _| Box::pin(stable_query_plans(conn)))
        });
    let readers = Database::connect(options).await?;
    tracing::info!(
        connections = args.db_read_connections,
        "connected SQLite readers"
    );
    Ok(Some(readers))
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

/// Turns on SQLite's query planner stability guarantee for a new connection. Without it
/// a statement whose `LIMIT ?` or `OFFSET ?` is a bound parameter (every page and every
/// `.one()` sea-query builds) is compiled again each time a value is bound, as SQLite may
/// plan by the value: measured on the 50-row deviation list, two of the three statements
/// of each request were re-prepared, 12.6 % of the api's CPU (perf, release build). sqlx
/// has no setting for it, hence the one C call (`sqlite3_db_config`) on its handle.
pub(super) async fn stable_query_plans(conn: &mut SqliteConnection) -> Result<(), sqlx::Error> {
    let mut handle = conn.lock_handle().await?;
    let (rc, now_on) = query_plan_stability(&mut handle, 1);
    if rc != libsqlite3_sys::SQLITE_OK || now_on != 1 {
        tracing::warn!(rc, "SQLite refused its query planner stability guarantee");
    }
    Ok(())
}

/// `SQLITE_DBCONFIG_ENABLE_QPSG` on a locked connection: `set` 1 turns the guarantee on,
/// -1 only asks. Returns SQLite's result code and the setting now in force.
fn query_plan_stability(handle: &mut LockedSqliteHandle<'_>, set: c_int) -> (c_int, c_int) {
    let mut now_on: c_int = -1;
    // SAFETY: the connection is live and locked for this call by `handle`; this option
    // takes an int and an int* that receives the setting now in force.
    let rc = unsafe {
        libsqlite3_sys::sqlite3_db_config(
            handle.as_raw_handle().as_ptr(),
            libsqlite3_sys::SQLITE_DBCONFIG_ENABLE_QPSG,
            set,
            &mut now_on as *mut c_int,
        )
    };
    (rc, now_on)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::startup::{API_POSTGRES_POOL, connect_and_migrate};

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

    /// Every SQLite connection, the writer's and the readers', plans without looking at
    /// bound values, so a page's `LIMIT ?` does not recompile its statement each time.
    #[tokio::test]
    async fn sqlite_connections_keep_their_query_plans() {
        let dir = tempfile::tempdir().unwrap();
        let args = DatabaseArgs::for_url(format!(
            "sqlite://{}?mode=rwc",
            dir.path().join("plans.db").display()
        ));
        let writer = connect_and_migrate(&args, API_POSTGRES_POOL).await.unwrap();
        let readers = connect_readers(&args).await.unwrap().unwrap();
        for db in [&writer, &readers] {
            let mut conn = db.get_sqlite_connection_pool().acquire().await.unwrap();
            let mut handle = conn.lock_handle().await.unwrap();
            assert_eq!(
                query_plan_stability(&mut handle, -1),
                (libsqlite3_sys::SQLITE_OK, 1)
            );
        }
    }
}
