//! Jobs are plain async functions of a context and a `now`, so tests call them directly
//! with a chosen time; the scheduler only wires and logs them.

pub mod agreements;
pub mod digests;
pub mod dispatch;
pub mod escalations;
pub mod heartbeat;
pub mod overdue;
pub mod reminders;
pub mod ticks;
pub mod webhooks;

use sea_orm::DatabaseConnection;

/// What every job can reach.
#[derive(Clone)]
pub struct JobContext {
    pub db: DatabaseConnection,
    /// Identifies this worker process in heartbeats and row claims.
    pub worker_id: String,
    pub hostname: String,
    pub started_at: chrono::DateTime<chrono::Utc>,
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
