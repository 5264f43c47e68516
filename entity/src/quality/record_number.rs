//! Human record numbers: DEV-2026-0001, CAPA-2026-0003, CC-2026-0002. People quote them in
//! meetings, emails and the batch record; ids stay the API's keys. One sequence per
//! sponsor, kind and year, the year being the record's creation in its program's zone, so
//! a deviation logged at 00:30 on 1 January in Zurich is the first of the new year there.

use chrono::{DateTime, Datelike, Utc};
use sea_orm::sea_query::{Alias, Expr, ExprTrait, OnConflict, Order, Query};
use sea_orm::{
    ConnectionTrait, DatabaseConnection, DbErr, EntityTrait, FromQueryResult, StatementBuilder,
    TransactionTrait,
};

use crate::program;

/// The kinds of record that carry a number, with their prefix.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecordKind {
    Deviation,
    Capa,
    Change,
}

impl RecordKind {
    pub const ALL: [RecordKind; 3] = [RecordKind::Deviation, RecordKind::Capa, RecordKind::Change];

    pub fn prefix(self) -> &'static str {
        match self {
            RecordKind::Deviation => "DEV",
            RecordKind::Capa => "CAPA",
            RecordKind::Change => "CC",
        }
    }

    /// The record an action item came from, when that kind carries a number.
    pub fn of_action_source(source: crate::action_item::ActionSource) -> Option<RecordKind> {
        use crate::action_item::ActionSource;
        match source {
            ActionSource::Deviation => Some(RecordKind::Deviation),
            ActionSource::Capa => Some(RecordKind::Capa),
            ActionSource::Change => Some(RecordKind::Change),
            _ => None,
        }
    }

    /// The word for the record in a sentence ("an action of deviation DEV-2026-0001").
    pub fn noun(self) -> &'static str {
        match self {
            RecordKind::Deviation => "deviation",
            RecordKind::Capa => "CAPA",
            RecordKind::Change => "change request",
        }
    }

    /// The page people open for a record of this kind.
    pub fn page(self) -> crate::link_token::PageRecord {
        use crate::link_token::PageRecord;
        match self {
            RecordKind::Deviation => PageRecord::Deviation,
            RecordKind::Capa => PageRecord::Capa,
            RecordKind::Change => PageRecord::ChangeRequest,
        }
    }

    fn table(self) -> &'static str {
        match self {
            RecordKind::Deviation => "deviations",
            RecordKind::Capa => "capas",
            RecordKind::Change => "change_requests",
        }
    }
}

/// `DEV-2026-0001`: at least four digits, more when a year holds more records.
pub fn format(kind: RecordKind, year: i32, n: i64) -> String {
    format!("{}-{year}-{n:04}", kind.prefix())
}

/// What a person reads for a record: its number, or `#id` while it has none yet (created
/// by an older release during a rolling upgrade, until the worker numbers it).
pub fn reference(number: Option<&str>, id: i64) -> String {
    number.map_or_else(|| format!("#{id}"), str::to_string)
}

/// What a person reads for the record `id` of `kind` when only its id is at hand (an action
/// item's source): one query for its number.
pub async fn reference_of<C: ConnectionTrait>(
    conn: &C,
    kind: RecordKind,
    id: i64,
) -> Result<String, DbErr> {
    let select = Query::select()
        .column(Alias::new("record_number"))
        .from(Alias::new(kind.table()))
        .and_where(Expr::col(Alias::new("id")).eq(id))
        .to_owned();
    let number = match conn.query_one(&select).await? {
        Some(row) => row.try_get::<Option<String>>("", "record_number")?,
        None => None,
    };
    Ok(reference(number.as_deref(), id))
}

/// The year a record created at `at` counts in: the calendar year in the program's zone.
pub fn year_in(time_zone: &str, at: DateTime<Utc>) -> i32 {
    at.with_timezone(&crate::schedule::zone(time_zone)).year()
}

/// Takes the next number of the sponsor's sequence for `kind` in `year`, inside the caller's
/// transaction: the counter row is locked until it commits (PostgreSQL) or the write
/// transaction holds the database (SQLite), so two records never share a number, and a
/// rolled-back record gives its number back.
pub async fn next<C: ConnectionTrait>(
    conn: &C,
    sponsor_org_id: i64,
    kind: RecordKind,
    year: i32,
) -> Result<String, DbErr> {
    let counters = Alias::new("record_number_counters");
    let last = Alias::new("last_number");
    let insert = Query::insert()
        .into_table(counters.clone())
        .columns([
            Alias::new("sponsor_org_id"),
            Alias::new("kind"),
            Alias::new("year"),
            last.clone(),
        ])
        .values_panic([
            sponsor_org_id.into(),
            kind.prefix().into(),
            year.into(),
            1i32.into(),
        ])
        .on_conflict(
            OnConflict::columns([
                Alias::new("sponsor_org_id"),
                Alias::new("kind"),
                Alias::new("year"),
            ])
            .value(last.clone(), Expr::col((counters, last.clone())).add(1))
            .to_owned(),
        )
        .returning_col(last)
        .to_owned();
    let row = conn
        .query_one(&insert)
        .await?
        .ok_or_else(|| DbErr::Custom("the record number counter returned no row".into()))?;
    let n: i32 = row.try_get("", "last_number")?;
    Ok(format(kind, year, i64::from(n)))
}

/// The number for a record of `program` created at `at`.
pub async fn assign<C: ConnectionTrait>(
    conn: &C,
    kind: RecordKind,
    program: &program::Model,
    at: DateTime<Utc>,
) -> Result<String, DbErr> {
    next(
        conn,
        program.sponsor_org_id,
        kind,
        year_in(&program.time_zone, at),
    )
    .await
}

#[derive(Debug, FromQueryResult)]
struct Unnumbered {
    id: i64,
    program_id: i64,
    created_at: DateTime<Utc>,
}

/// Numbers every record that has no number yet, oldest first: the records that existed
/// before numbers did (once, after the upgrade) and any an older release creates during a
/// rolling upgrade. Each record in its own transaction, set only while still unnumbered, so
/// an api starting and a worker passing at once neither number one record twice nor leave
/// a gap. Returns how many were numbered.
pub async fn number_unnumbered(db: &DatabaseConnection) -> Result<u64, DbErr> {
    let mut numbered = 0;
    for kind in RecordKind::ALL {
        loop {
            let table = Alias::new(kind.table());
            let select = Query::select()
                .columns([
                    Alias::new("id"),
                    Alias::new("program_id"),
                    Alias::new("created_at"),
                ])
                .from(table.clone())
                .and_where(Expr::col(Alias::new("record_number")).is_null())
                .order_by(Alias::new("id"), Order::Asc)
                .limit(200)
                .to_owned();
            let batch = Unnumbered::find_by_statement(StatementBuilder::build(
                &select,
                &db.get_database_backend(),
            ))
            .all(db)
            .await?;
            if batch.is_empty() {
                break;
            }
            let mut progressed = false;
            for record in batch {
                let txn = db.begin().await?;
                let Some(prog) = program::Entity::find_by_id(record.program_id)
                    .one(&txn)
                    .await?
                else {
                    continue;
                };
                let number = assign(&txn, kind, &prog, record.created_at).await?;
                let update = Query::update()
                    .table(table.clone())
                    .value(Alias::new("record_number"), number)
                    .and_where(Expr::col(Alias::new("id")).eq(record.id))
                    .and_where(Expr::col(Alias::new("record_number")).is_null())
                    .to_owned();
                let done = txn.execute(&update).await?;
                if done.rows_affected() == 1 {
                    txn.commit().await?;
                    numbered += 1;
                    progressed = true;
                } else {
                    // Numbered meanwhile by another process: its counter step rolls back.
                    txn.rollback().await?;
                }
            }
            if !progressed {
                break;
            }
        }
    }
    Ok(numbered)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_read_as_people_quote_them() {
        assert_eq!(format(RecordKind::Deviation, 2026, 1), "DEV-2026-0001");
        assert_eq!(format(RecordKind::Capa, 2026, 3), "CAPA-2026-0003");
        assert_eq!(format(RecordKind::Change, 2027, 12345), "CC-2027-12345");
        assert_eq!(reference(Some("DEV-2026-0041"), 41), "DEV-2026-0041");
        assert_eq!(reference(None, 41), "#41");
    }

    #[test]
    fn the_year_is_the_program_s_local_year() {
        let new_years_eve = "2026-12-31T23:30:00Z".parse().unwrap();
        assert_eq!(year_in("Europe/Zurich", new_years_eve), 2027);
        assert_eq!(year_in("America/New_York", new_years_eve), 2026);
        assert_eq!(year_in("UTC", new_years_eve), 2026);
    }
}
