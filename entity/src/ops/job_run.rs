//! Once-per-tick claims: every worker fires every scheduled job, and the first to
//! insert `(job, scheduled_for)` runs it; the others skip that tick. A run whose worker
//! died before [`finish`] is taken over once its claim is [`STALE_AFTER`] old: the jobs
//! only enqueue deduplicated emails, so running a tick's work twice sends nothing twice.

use chrono::{DateTime, Utc};
use sea_orm::QueryOrder;
use sea_orm::entity::prelude::*;
use sea_orm::sea_query::{Expr, OnConflict};
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

/// How long an unfinished run stays its worker's before another worker takes it over.
pub const STALE_AFTER: chrono::TimeDelta = chrono::TimeDelta::minutes(5);

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
    if inserted == 1 {
        return Ok(true);
    }
    let taken_over = Entity::update_many()
        .col_expr(Column::ClaimedBy, Expr::value(worker_id))
        .col_expr(Column::ClaimedAt, Expr::value(now))
        .filter(Column::Job.eq(job))
        .filter(Column::ScheduledFor.eq(crate::clock::truncate_to_micros(scheduled_for)))
        .filter(Column::FinishedAt.is_null())
        .filter(Column::ClaimedAt.lt(now - STALE_AFTER))
        .exec(conn)
        .await?;
    Ok(taken_over.rows_affected == 1)
}

/// Marks this worker's run of the tick done.
pub async fn finish<C: ConnectionTrait>(
    conn: &C,
    job: &str,
    scheduled_for: DateTime<Utc>,
    worker_id: &str,
    now: DateTime<Utc>,
) -> Result<(), DbErr> {
    Entity::update_many()
        .col_expr(Column::FinishedAt, Expr::value(now))
        .filter(Column::Job.eq(job))
        .filter(Column::ScheduledFor.eq(crate::clock::truncate_to_micros(scheduled_for)))
        .filter(Column::ClaimedBy.eq(worker_id))
        .exec(conn)
        .await?;
    Ok(())
}

/// The latest finished tick of `job` before `before` (when the previous digest went out).
pub async fn last_finished_before<C: ConnectionTrait>(
    conn: &C,
    job: &str,
    before: DateTime<Utc>,
) -> Result<Option<DateTime<Utc>>, DbErr> {
    Ok(Entity::find()
        .filter(Column::Job.eq(job))
        .filter(Column::FinishedAt.is_not_null())
        .filter(Column::ScheduledFor.lt(before))
        .order_by_desc(Column::ScheduledFor)
        .one(conn)
        .await?
        .map(|r| r.scheduled_for))
}
