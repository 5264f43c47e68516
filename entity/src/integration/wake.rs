//! Waking the workers when work is committed: PostgreSQL delivers a `NOTIFY` at commit
//! (and not at all on rollback), so it is sent inside the transaction that writes the
//! work. SQLite has no such channel; its workers rely on their fast tick.

use sea_orm::{ConnectionTrait, DbBackend, DbErr};

/// Queues a `NOTIFY channel` in the caller's transaction (PostgreSQL only).
pub async fn at_commit<C: ConnectionTrait>(conn: &C, channel: &str) -> Result<(), DbErr> {
    if conn.get_database_backend() == DbBackend::Postgres {
        conn.execute_unprepared(&format!("NOTIFY {channel}"))
            .await?;
    }
    Ok(())
}
