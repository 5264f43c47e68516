//! One row per running worker instance, refreshed by its heartbeat job.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "worker_heartbeats")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub worker_id: String,
    pub hostname: String,
    pub started_at: DateTimeUtc,
    pub last_beat_at: DateTimeUtc,
    pub beats: i64,
    /// SQLite: the loopback UDP address where this worker takes wakes (`wake`).
    pub wake_addr: Option<String>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
