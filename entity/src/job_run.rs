//! Once-per-tick claims: every worker fires every scheduled job, and the first to
//! insert `(job, scheduled_for)` runs it; the others skip that tick.

use chrono::{DateTime, Utc};
use sea_orm::entity::prelude::*;
use sea_orm::sea_query::OnConflict;
use sea_orm::{ActiveValue::NotSet, ActiveValue::Set, ConnectionTrait};

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "job_runs")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    pub job: String,
    pub scheduled_for: DateTimeUtc,
    pub claimed_by: String,
    pub claimed_at: DateTimeUtc,
    pub finished_at: Option<DateTimeUtc>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}

/// Claims the tick; `true` when this worker is the one to run it.
pub async fn claim<C: ConnectionTrait>(
    conn: &C,
    job: &str,
    scheduled_for: DateTime<Utc>,
    worker_id: &str,
    now: DateTime<Utc>,
) -> Result<bool, DbErr> {
    let inserted = Entity::insert(ActiveModel {
        id: NotSet,
        job: Set(job.to_string()),
        scheduled_for: Set(crate::clock::truncate_to_micros(scheduled_for)),
        claimed_by: Set(worker_id.to_string()),
        claimed_at: Set(now),
        finished_at: Set(None),
    })
    .on_conflict(
        OnConflict::columns([Column::Job, Column::ScheduledFor])
            .do_nothing()
            .to_owned(),
    )
    .exec_without_returning(conn)
    .await?;
    Ok(inserted == 1)
}
