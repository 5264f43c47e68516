//! Expand/contract: which migrations the previous release may run on.
//!
//! A rolling upgrade runs the new release beside the old one on one database, and a
//! rollback starts the old one again on the schema the new one left. Both work when every
//! migration of the new release only *expands* the schema (adds a table, a nullable column,
//! an index): the old binaries never look at what they do not know. A migration that
//! *contracts* (drops or renames what a previous release reads, or adds a constraint it
//! would break) goes out in a later release than the one that stopped using it, and is
//! marked so here.
//!
//! Each applied migration is recorded in `cmo_schema_compat` with that mark, in the same
//! transaction as the migration: in the database, where an older binary (which does not
//! have the migration's file) can read it. A binary that finds migrations it does not
//! know starts when all of them are expand-only, and refuses with their names otherwise.

use std::collections::BTreeSet;

use sea_orm::{ConnectionTrait, DbBackend, DbErr, Statement};
use sea_orm_migration::MigratorTrait;

use crate::Migrator;

/// Whether binaries from before a migration may keep running on the schema it leaves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compat {
    /// Adds only: the previous release runs on it (rolling upgrade, rollback).
    ExpandOnly,
    /// Removes or changes what the previous release uses: it must be stopped first.
    Contracting,
}

/// The last migration of the first release that reads `cmo_schema_compat` (v0.2.0):
/// every later migration says what it is, below.
pub const FIRST_MARKED_AFTER: &str = "m20261203_000030_audit_checkpoints";

/// The mark of each migration after [`FIRST_MARKED_AFTER`]. A unit test holds every
/// newer migration to having one.
pub const MARKS: &[(&str, Compat)] = &[
    (
        "m20261204_000031_trace_ids_on_domain_events",
        Compat::ExpandOnly,
    ),
    ("m20261204_000032_audit_events_by_actor", Compat::ExpandOnly),
    ("m20261205_000033_partner_network", Compat::ExpandOnly),
    ("m20261206_000034_cmo_merges", Compat::ExpandOnly),
    ("m20261207_000035_record_numbers", Compat::ExpandOnly),
    ("m20261207_000036_action_evidence", Compat::ExpandOnly),
    ("m20261208_000037_worker_wake_address", Compat::ExpandOnly),
    (
        "m20261208_000038_program_digest_schedules",
        Compat::ExpandOnly,
    ),
    (
        "m20261208_000039_deviations_newest_first",
        Compat::ExpandOnly,
    ),
    (
        "m20261209_000040_sequenced_domain_events",
        Compat::ExpandOnly,
    ),
    ("m20261210_000041_ended_connections", Compat::ExpandOnly),
    ("m20261210_000042_merge_choices", Compat::ExpandOnly),
    (
        "m20261212_000043_validation_organizations",
        Compat::ExpandOnly,
    ),
];

/// The mark of `migration`: listed ones as listed; those up to the first marked release
/// are older than every binary that reads marks, so they never come up.
pub fn mark(migration: &str) -> Compat {
    MARKS
        .iter()
        .find(|(name, _)| *name == migration)
        .map_or(Compat::ExpandOnly, |(_, c)| *c)
}

const CREATE_TABLE: &str = "CREATE TABLE IF NOT EXISTS cmo_schema_compat (
    migration VARCHAR(200) NOT NULL PRIMARY KEY,
    expand_only BOOLEAN NOT NULL,
    applied_by VARCHAR(64) NOT NULL
)";

pub async fn install(db: &impl ConnectionTrait) -> Result<(), DbErr> {
    db.execute_unprepared(CREATE_TABLE).await.map(|_| ())
}

/// Records `migration` with its mark, as applied by this release (call it inside the
/// migration's transaction).
pub async fn record(db: &impl ConnectionTrait, migration: &str) -> Result<(), DbErr> {
    install(db).await?;
    let backend = db.get_database_backend();
    let sql = match backend {
        DbBackend::Postgres => {
            "INSERT INTO cmo_schema_compat (migration, expand_only, applied_by) VALUES ($1, $2, $3) \
             ON CONFLICT (migration) DO NOTHING"
        }
        _ => {
            "INSERT OR IGNORE INTO cmo_schema_compat (migration, expand_only, applied_by) VALUES (?, ?, ?)"
        }
    };
    db.execute_raw(Statement::from_sql_and_values(
        backend,
        sql,
        [
            migration.into(),
            (mark(migration) == Compat::ExpandOnly).into(),
            env!("CARGO_PKG_VERSION").into(),
        ],
    ))
    .await
    .map(|_| ())
}

/// What this binary makes of the database's migrations.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Standing {
    /// Every applied migration is known (pending ones may follow).
    Known,
    /// The database is ahead by these expand-only migrations: run on it, migrate nothing.
    AheadCompatible(Vec<String>),
    /// Ahead by migrations this binary cannot run with (or that no release marked).
    AheadIncompatible(Vec<String>),
}

/// Compares the applied migrations with the ones this binary has.
pub async fn standing(db: &impl ConnectionTrait) -> Result<Standing, DbErr> {
    let backend = db.get_database_backend();
    let exists_sql = match backend {
        DbBackend::Postgres => {
            "SELECT count(*) AS n FROM information_schema.tables WHERE table_name = 'seaql_migrations' AND table_schema = current_schema()"
        }
        _ => {
            "SELECT count(*) AS n FROM sqlite_master WHERE type = 'table' AND name = 'seaql_migrations'"
        }
    };
    let row = db
        .query_one_raw(Statement::from_string(backend, exists_sql))
        .await?;
    let installed: i64 = row.map(|r| r.try_get("", "n")).transpose()?.unwrap_or(0);
    if installed == 0 {
        return Ok(Standing::Known);
    }
    let applied: BTreeSet<String> = db
        .query_all_raw(Statement::from_string(
            backend,
            "SELECT version FROM seaql_migrations",
        ))
        .await?
        .into_iter()
        .map(|r| r.try_get::<String>("", "version"))
        .collect::<Result<_, _>>()?;
    let known: BTreeSet<String> = Migrator::migrations()
        .iter()
        .map(|m| m.name().to_string())
        .collect();
    let unknown: Vec<String> = applied.difference(&known).cloned().collect();
    if unknown.is_empty() {
        return Ok(Standing::Known);
    }
    install(db).await?;
    let marks: BTreeSet<String> = db
        .query_all_raw(Statement::from_string(
            backend,
            "SELECT migration FROM cmo_schema_compat WHERE expand_only",
        ))
        .await?
        .into_iter()
        .map(|r| r.try_get::<String>("", "migration"))
        .collect::<Result<_, _>>()?;
    let blocking: Vec<String> = unknown
        .iter()
        .filter(|m| !marks.contains(*m))
        .cloned()
        .collect();
    Ok(if blocking.is_empty() {
        Standing::AheadCompatible(unknown)
    } else {
        Standing::AheadIncompatible(blocking)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_migration_after_the_first_marked_release_says_what_it_is() {
        let names: Vec<String> = Migrator::migrations()
            .iter()
            .map(|m| m.name().to_string())
            .collect();
        let first = names
            .iter()
            .position(|n| n == FIRST_MARKED_AFTER)
            .expect("the first marked release's last migration is still listed");
        for name in &names[first + 1..] {
            assert!(
                MARKS.iter().any(|(marked, _)| marked == name),
                "{name} must say in compat::MARKS whether the previous release may run on it"
            );
        }
        for (marked, _) in MARKS {
            assert!(
                names.iter().any(|n| n == marked),
                "{marked} is not a migration"
            );
        }
    }
}
