//! When each program's next weekly digest is due, kept per program (indexed), so the
//! worker's pass reads the programs that are due, not every program. `next_at` is null
//! until the worker computes it: for a new program, after its time zone changed, and
//! after the installation's digest schedule changed (`schedule` is the cron it was
//! computed with).

use chrono::{DateTime, TimeDelta, Utc};
use chrono_tz::Tz;
use croner::Cron;
use sea_orm::entity::prelude::*;
use sea_orm::sea_query::Expr;
use sea_orm::{ActiveValue::Set, ConnectionTrait};

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "program_digest_schedules")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub program_id: i64,
    /// The digest occurrence to run next (UTC), or null: to be computed.
    pub next_at: Option<DateTimeUtc>,
    /// The cron `next_at` was computed with.
    pub schedule: String,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}

/// A new program's row: its first occurrence is computed by the next digest pass.
pub async fn create<C: ConnectionTrait>(conn: &C, program_id: i64) -> Result<(), DbErr> {
    ActiveModel {
        program_id: Set(program_id),
        next_at: Set(None),
        schedule: Set(String::new()),
    }
    .insert(conn)
    .await
    .map(|_| ())
}

/// The program's occurrences moved (its time zone changed): computed again.
pub async fn recompute<C: ConnectionTrait>(conn: &C, program_id: i64) -> Result<(), DbErr> {
    Entity::update_many()
        .col_expr(Column::NextAt, Expr::value(None::<DateTimeUtc>))
        .filter(Column::ProgramId.eq(program_id))
        .exec(conn)
        .await
        .map(|_| ())
}

/// The first occurrence of `cron` in `tz` strictly after `after`.
fn next_after(cron: &Cron, tz: Tz, after: DateTime<Utc>) -> Option<DateTime<Utc>> {
    cron.find_next_occurrence(&after.with_timezone(&tz), false)
        .ok()
        .map(|t| t.with_timezone(&Utc))
}

/// The occurrence a program waits for, seen at `now`: the latest one if it is at most
/// `catch_up` old and not yet done (`done_until`: the occurrence last run or skipped),
/// else the next one. The same rule as a pass over every program
/// (`crate::schedule::due_occurrence`), so moving to stored times changes no digest.
pub fn next_occurrence(
    cron: &Cron,
    tz: Tz,
    now: DateTime<Utc>,
    catch_up: TimeDelta,
    done_until: Option<DateTime<Utc>>,
) -> Option<DateTime<Utc>> {
    if let Some(due) = crate::schedule::due_occurrence(cron, tz, now, catch_up)
        && done_until.is_none_or(|done| due > done)
    {
        return Some(due);
    }
    next_after(cron, tz, now)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> DateTime<Utc> {
        s.parse().unwrap()
    }

    #[test]
    fn the_next_digest_is_the_one_just_due_else_the_coming_one_in_local_time() {
        let monday_7 = crate::schedule::parse("0 0 7 * * Mon").unwrap();
        let berlin: Tz = "Europe/Berlin".parse().unwrap();
        let window = TimeDelta::hours(12);
        // Monday 30 Nov 2026 08:00 Berlin: the 07:00 digest is due (within the window).
        let now = at("2026-11-30T07:00:00Z");
        assert_eq!(
            next_occurrence(&monday_7, berlin, now, window, None),
            Some(at("2026-11-30T06:00:00Z"))
        );
        // Once it ran, the next is a week later.
        assert_eq!(
            next_occurrence(
                &monday_7,
                berlin,
                now,
                window,
                Some(at("2026-11-30T06:00:00Z"))
            ),
            Some(at("2026-12-07T06:00:00Z"))
        );
        // Past the window the missed one is skipped.
        let tuesday = at("2026-12-01T09:00:00Z");
        assert_eq!(
            next_occurrence(&monday_7, berlin, tuesday, window, None),
            Some(at("2026-12-07T06:00:00Z"))
        );
        // Across the spring DST change the hour stays 07:00 local (05:00 UTC in summer).
        let march = at("2027-03-24T12:00:00Z");
        assert_eq!(
            next_occurrence(&monday_7, berlin, march, window, None),
            Some(at("2027-03-29T05:00:00Z"))
        );
    }
}
