//! Jobs are plain async functions of a context and a `now`, so tests call them directly
//! with a chosen time; the scheduler only wires and logs them.

pub mod access_notices;
pub mod agreement_expiry;
pub mod checkpoints;
pub mod digests;
pub mod escalations;
pub mod heartbeat;
pub mod notifications;
pub mod outbox;
pub mod overdue_events;
pub mod reminders;
pub mod retention;
pub mod webhooks;

use std::sync::Arc;

use entity::clock::Clock;
use sea_orm::DatabaseConnection;

/// What every job can reach.
#[derive(Clone)]
pub struct JobContext {
    pub db: DatabaseConnection,
    /// The one clock of domain time (the api's kind): the runner's loops take `now` from
    /// it, never from the wall clock, so a test drives a whole worker at its instant.
    pub clock: Arc<dyn Clock>,
    /// Identifies this worker process in heartbeats and row claims.
    pub worker_id: String,
    pub hostname: String,
    pub started_at: chrono::DateTime<chrono::Utc>,
    /// The api's public base URL: every link in an email, and the Message-ID domain.
    pub public_base_url: String,
    /// The audit chain keys (kept outside the database), for what the worker audits.
    pub chain_keys: entity::audit::ChainKeys,
}

impl JobContext {
    /// Domain time now, from the injected clock.
    pub fn now(&self) -> chrono::DateTime<chrono::Utc> {
        self.clock.now()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum JobError {
    #[error(transparent)]
    Db(#[from] sea_orm::DbErr),
    #[error("schedule: {0}")]
    Schedule(String),
    #[error("template: {0}")]
    Template(String),
}

#[cfg(test)]
mod tests {
    /// A deferred transaction that reads and then writes fails at once on SQLite when
    /// another process wrote in between (the agreement-expiry job did); every job takes
    /// the write lock up front with `entity::db::begin_write`.
    #[test]
    fn jobs_never_open_a_deferred_transaction() {
        for (file, source) in [
            ("access_notices.rs", include_str!("access_notices.rs")),
            ("agreement_expiry.rs", include_str!("agreement_expiry.rs")),
            ("digests.rs", include_str!("digests.rs")),
            ("escalations.rs", include_str!("escalations.rs")),
            ("heartbeat.rs", include_str!("heartbeat.rs")),
            ("notifications.rs", include_str!("notifications.rs")),
            ("outbox.rs", include_str!("outbox.rs")),
            ("overdue_events.rs", include_str!("overdue_events.rs")),
            ("reminders.rs", include_str!("reminders.rs")),
            ("retention.rs", include_str!("retention.rs")),
            ("../ticks.rs", include_str!("../ticks.rs")),
            ("webhooks.rs", include_str!("webhooks.rs")),
        ] {
            let deferred = [".begin()", ".begin_with_config("];
            for pattern in deferred {
                assert!(!source.contains(pattern), "{file} uses {pattern}");
            }
        }
    }
}
