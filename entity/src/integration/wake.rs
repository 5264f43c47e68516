//! Waking the workers when work is committed. PostgreSQL delivers a `NOTIFY` at commit
//! (and not at all on rollback), so it is sent inside the transaction that writes the
//! work. SQLite has no such channel: the api sends the channels to the workers' loopback
//! wake sockets once its transaction has committed. On both, the channels a piece of work
//! asks for are collected while it runs (`collect`), so the api knows what its request
//! committed (on PostgreSQL: events to sequence). Elsewhere (the worker's own writes) the
//! workers rely on their fast tick.

use std::cell::RefCell;
use std::future::Future;

use sea_orm::{ConnectionTrait, DbBackend, DbErr};

tokio::task_local! {
    /// The wake channels asked for by the work running in this task's `collect` scope.
    static ASKED: RefCell<Vec<&'static str>>;
}

/// Queues a wake of `channel`'s workers for when the caller's transaction commits:
/// PostgreSQL `NOTIFY`; on both a note in the enclosing `collect` scope, if any.
pub async fn at_commit<C: ConnectionTrait>(conn: &C, channel: &'static str) -> Result<(), DbErr> {
    if conn.get_database_backend() == DbBackend::Postgres {
        conn.execute_unprepared(&format!("NOTIFY {channel}"))
            .await?;
    }
    let _ = ASKED.try_with(|asked| {
        let mut asked = asked.borrow_mut();
        if !asked.contains(&channel) {
            asked.push(channel);
        }
    });
    Ok(())
}

/// Runs `work` and returns, beside its output, the channels it asked to wake.
/// A transaction that rolled back may have asked too: a wake finding nothing is harmless.
pub async fn collect<F: Future>(work: F) -> (F::Output, Vec<&'static str>) {
    ASKED
        .scope(RefCell::new(Vec::new()), async move {
            let out = work.await;
            let asked = ASKED.with(|asked| std::mem::take(&mut *asked.borrow_mut()));
            (out, asked)
        })
        .await
}

#[cfg(test)]
mod tests {
    use super::*;
    use sea_orm::{Database, DatabaseConnection};

    async fn sqlite() -> DatabaseConnection {
        Database::connect("sqlite::memory:").await.expect("sqlite")
    }

    #[tokio::test]
    async fn sqlite_work_reports_the_channels_it_asked_for_once_each() {
        let db = sqlite().await;
        let ((), asked) = collect(async {
            at_commit(&db, "cmo_escalations").await.unwrap();
            at_commit(&db, "cmo_webhooks").await.unwrap();
            at_commit(&db, "cmo_escalations").await.unwrap();
        })
        .await;
        assert_eq!(asked, ["cmo_escalations", "cmo_webhooks"]);
        // Outside a scope nothing is collected, and nothing fails.
        at_commit(&db, "cmo_webhooks").await.unwrap();
        let ((), none) = collect(async {}).await;
        assert!(none.is_empty());
    }
}
