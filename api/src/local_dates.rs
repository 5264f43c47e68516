//! "Today" where each program is. A list across programs in several zones must compare
//! due dates with each program's own date, as the detail view does: around midnight UTC
//! the UTC date and a program's date differ (Auckland is already tomorrow, Honolulu
//! still yesterday).

use std::collections::BTreeMap;

use chrono::{DateTime, NaiveDate, Utc};
use entity::program;
use sea_orm::{ColumnTrait, Condition, DatabaseConnection, QuerySelect};

use crate::auth::{AuthContext, scoped};
use crate::error::ApiResult;

/// Today's date in each of the caller's programs.
pub struct ProgramDates {
    by_program: BTreeMap<i64, NaiveDate>,
    fallback: NaiveDate,
}

impl ProgramDates {
    pub async fn load(
        db: &DatabaseConnection,
        ctx: &AuthContext,
        now: DateTime<Utc>,
    ) -> ApiResult<Self> {
        let zones: Vec<(i64, String)> = scoped::<program::Entity>(ctx)
            .select_only()
            .column(program::Column::Id)
            .column(program::Column::TimeZone)
            .into_tuple()
            .all(db)
            .await?;
        let by_program = zones
            .into_iter()
            .map(|(id, zone)| (id, entity::schedule::zone(&zone)))
            .map(|(id, tz)| (id, now.with_timezone(&tz).date_naive()))
            .collect();
        Ok(Self {
            by_program,
            fallback: now.date_naive(),
        })
    }

    /// Today in `program_id`'s zone.
    pub fn today(&self, program_id: i64) -> NaiveDate {
        self.by_program
            .get(&program_id)
            .copied()
            .unwrap_or(self.fallback)
    }

    /// `date_column < today` of the row's program: one branch per distinct date (at
    /// most three at any instant, whatever the number of programs).
    pub fn before_today(
        &self,
        program_column: impl ColumnTrait,
        date_column: impl ColumnTrait,
    ) -> Condition {
        let mut by_date: BTreeMap<NaiveDate, Vec<i64>> = BTreeMap::new();
        for (id, today) in &self.by_program {
            by_date.entry(*today).or_default().push(*id);
        }
        by_date
            .into_iter()
            .fold(Condition::any(), |any, (today, ids)| {
                any.add(
                    Condition::all()
                        .add(program_column.is_in(ids))
                        .add(date_column.lt(today)),
                )
            })
    }

    /// `date_column IS NULL OR date_column < today` of the row's program.
    pub fn null_or_before_today(
        &self,
        program_column: impl ColumnTrait,
        date_column: impl ColumnTrait,
    ) -> Condition {
        Condition::any()
            .add(date_column.is_null())
            .add(self.before_today(program_column, date_column))
    }
}
