//! Schema migrations for SQLite and PostgreSQL, one migration per file.

pub mod compat;
pub mod startup;

use sea_orm::{DatabaseConnection, DbBackend, Statement, TransactionTrait};
pub use sea_orm_migration::prelude::*;

mod m20261123_000001_create_organizations;
mod m20261123_000002_create_users;
mod m20261123_000003_create_api_tokens;
mod m20261123_000004_create_audit_trail;
mod m20261123_000005_create_signatures;
mod m20261123_000006_create_worker_heartbeats;
mod m20261123_000007_create_idempotency_keys;
mod m20261123_000008_create_programs;
mod m20261123_000009_create_milestones;
mod m20261123_000010_create_action_items_and_gates;
mod m20261123_000011_create_deviations_and_escalations;
mod m20261123_000012_create_capas;
mod m20261123_000013_create_change_requests;
mod m20261123_000014_create_email_outbox;
mod m20261130_000015_create_link_secrets;
mod m20261130_000016_escalation_paging;
mod m20261130_000017_create_cmo_registry;
mod m20261130_000018_create_quality_agreements;
mod m20261130_000019_create_evaluations;
mod m20261130_000020_create_domain_events;
mod m20261130_000021_create_webhook_subscriptions;
mod m20261130_000022_create_webhook_deliveries;
mod m20261130_000023_index_deviation_lists;
mod m20261201_000024_accounts_people_run;
mod m20261201_000025_signed_content;
mod m20261202_000026_notifications;
mod m20261202_000027_calendar_generation;
mod m20261202_000028_retention_indexes;
mod m20261203_000029_keyed_audit_chain;
mod m20261203_000030_audit_checkpoints;
mod m20261204_000031_trace_ids_on_domain_events;
mod m20261204_000032_audit_events_by_actor;
mod m20261205_000033_partner_network;
mod m20261206_000034_cmo_merges;
mod m20261207_000035_record_numbers;
mod m20261207_000036_action_evidence;
mod m20261208_000037_worker_wake_address;
mod m20261208_000038_program_digest_schedules;
mod m20261208_000039_deviations_newest_first;
mod m20261209_000040_sequenced_domain_events;
mod m20261210_000041_ended_connections;
mod m20261210_000042_merge_choices;
mod m20261212_000043_validation_organizations;

pub struct Migrator;

#[async_trait::async_trait]
impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![
            Box::new(m20261123_000001_create_organizations::Migration),
            Box::new(m20261123_000002_create_users::Migration),
            Box::new(m20261123_000003_create_api_tokens::Migration),
            Box::new(m20261123_000004_create_audit_trail::Migration),
            Box::new(m20261123_000005_create_signatures::Migration),
            Box::new(m20261123_000006_create_worker_heartbeats::Migration),
            Box::new(m20261123_000007_create_idempotency_keys::Migration),
            Box::new(m20261123_000008_create_programs::Migration),
            Box::new(m20261123_000009_create_milestones::Migration),
            Box::new(m20261123_000010_create_action_items_and_gates::Migration),
            Box::new(m20261123_000011_create_deviations_and_escalations::Migration),
            Box::new(m20261123_000012_create_capas::Migration),
            Box::new(m20261123_000013_create_change_requests::Migration),
            Box::new(m20261123_000014_create_email_outbox::Migration),
            Box::new(m20261130_000015_create_link_secrets::Migration),
            Box::new(m20261130_000016_escalation_paging::Migration),
            Box::new(m20261130_000017_create_cmo_registry::Migration),
            Box::new(m20261130_000018_create_quality_agreements::Migration),
            Box::new(m20261130_000019_create_evaluations::Migration),
            Box::new(m20261130_000020_create_domain_events::Migration),
            Box::new(m20261130_000021_create_webhook_subscriptions::Migration),
            Box::new(m20261130_000022_create_webhook_deliveries::Migration),
            Box::new(m20261130_000023_index_deviation_lists::Migration),
            Box::new(m20261201_000024_accounts_people_run::Migration),
            Box::new(m20261201_000025_signed_content::Migration),
            Box::new(m20261202_000026_notifications::Migration),
            Box::new(m20261202_000027_calendar_generation::Migration),
            Box::new(m20261202_000028_retention_indexes::Migration),
            Box::new(m20261203_000029_keyed_audit_chain::Migration),
            Box::new(m20261203_000030_audit_checkpoints::Migration),
            Box::new(m20261204_000031_trace_ids_on_domain_events::Migration),
            Box::new(m20261204_000032_audit_events_by_actor::Migration),
            Box::new(m20261205_000033_partner_network::Migration),
            Box::new(m20261206_000034_cmo_merges::Migration),
            Box::new(m20261207_000035_record_numbers::Migration),
            Box::new(m20261207_000036_action_evidence::Migration),
            Box::new(m20261208_000037_worker_wake_address::Migration),
            Box::new(m20261208_000038_program_digest_schedules::Migration),
            Box::new(m20261208_000039_deviations_newest_first::Migration),
            Box::new(m20261209_000040_sequenced_domain_events::Migration),
            Box::new(m20261210_000041_ended_connections::Migration),
            Box::new(m20261210_000042_merge_choices::Migration),
            Box::new(m20261212_000043_validation_organizations::Migration),
        ]
    }
}

/// Arbitrary constant naming the PostgreSQL advisory lock that serializes migrations.
const MIGRATION_LOCK_KEY: i64 = 0x00c0_0ee0_0001;

/// Applies pending migrations, each in a transaction of its own with its compatibility
/// mark ([`compat`]), and logs each. Safe when several api and worker instances start at
/// once: on PostgreSQL each step takes an advisory lock inside its transaction (DDL is
/// transactional there) and re-reads what is pending; SQLite serializes writers (and the
/// binaries hold a lock file around start-up).
pub async fn migrate_up(db: &DatabaseConnection) -> Result<(), DbErr> {
    let backend = db.get_database_backend();
    loop {
        // SQLite: the write lock up front (`BEGIN IMMEDIATE`), so a running process's
        // write between reading what is pending and migrating waits instead of failing.
        let txn = db
            .begin_with_options(sea_orm::TransactionOptions {
                sqlite_transaction_mode: Some(sea_orm::SqliteTransactionMode::Immediate),
                ..Default::default()
            })
            .await?;
        if backend == DbBackend::Postgres {
            // A migration may rewrite a large table: no per-statement limit for it.
            txn.execute_unprepared("SET LOCAL statement_timeout = 0")
                .await?;
            txn.execute_raw(Statement::from_string(
                DbBackend::Postgres,
                format!("SELECT pg_advisory_xact_lock({MIGRATION_LOCK_KEY})"),
            ))
            .await?;
        }
        let pending = Migrator::get_pending_migrations(&txn).await?;
        let Some(next) = pending.first().map(|m| m.name().to_string()) else {
            return txn.commit().await;
        };
        let started = std::time::Instant::now();
        tracing::info!(migration = %next, pending = pending.len(), "applying migration");
        Migrator::up(&txn, Some(1)).await?;
        compat::record(&txn, &next).await?;
        txn.commit().await?;
        tracing::info!(
            migration = %next,
            took_ms = started.elapsed().as_millis() as u64,
            "migration applied"
        );
    }
}

/// Names of migrations not applied yet (read-only: creates nothing).
pub async fn pending(db: &DatabaseConnection) -> Result<Vec<String>, DbErr> {
    Ok(Migrator::get_pending_migrations_read_only(db)
        .await?
        .into_iter()
        .map(|m| m.name().to_string())
        .collect())
}

/// An index PostgreSQL builds with `CREATE INDEX CONCURRENTLY` (writes to the table go on
/// meanwhile), outside any transaction, once the migration that introduces it is applied.
/// That migration builds it itself on SQLite.
#[derive(Debug, Clone, Copy)]
pub struct ConcurrentIndex {
    pub migration: &'static str,
    pub name: &'static str,
    /// What follows `CREATE INDEX CONCURRENTLY IF NOT EXISTS <name>`.
    pub definition: &'static str,
}

pub const CONCURRENT_INDEXES: &[ConcurrentIndex] = &[
    ConcurrentIndex {
        migration: "m20261204_000032_audit_events_by_actor",
        name: "ix_audit_events_actor",
        definition: "ON audit_events (org_id, actor_user_id, seq)",
    },
    ConcurrentIndex {
        migration: "m20261208_000039_deviations_newest_first",
        name: "ix_deviations_detected",
        definition: "ON deviations (detected_at, id)",
    },
];

/// Another advisory lock key: one replica builds the concurrent indexes at a time.
const INDEX_LOCK_KEY: i64 = 0x00c0_0ee0_0002;

/// Builds the concurrent indexes of the applied migrations that are missing, and rebuilds
/// one a cut-short build left INVALID (PostgreSQL keeps those, unused, until dropped).
/// Idempotent; a replica finding another one building skips. Returns the indexes built.
pub async fn build_concurrent_indexes(db: &DatabaseConnection) -> Result<Vec<String>, DbErr> {
    use sea_orm::sqlx::{self, Connection, Row};
    if db.get_database_backend() != DbBackend::Postgres {
        return Ok(Vec::new());
    }
    let err = |e: sqlx::Error| DbErr::Custom(format!("concurrent index build: {e}"));
    // A connection of its own (its session holds the lock and the unlimited statement
    // time), closed afterwards rather than returned to the pool.
    let mut conn = db
        .get_postgres_connection_pool()
        .acquire()
        .await
        .map_err(err)?
        .detach();
    let locked: bool = sqlx::query("SELECT pg_try_advisory_lock($1)")
        .bind(INDEX_LOCK_KEY)
        .fetch_one(&mut conn)
        .await
        .map_err(err)?
        .try_get(0)
        .map_err(err)?;
    let mut built = Vec::new();
    if locked {
        sqlx::query("SET statement_timeout = 0")
            .execute(&mut conn)
            .await
            .map_err(err)?;
        for index in CONCURRENT_INDEXES {
            let applied: Option<String> =
                sqlx::query_scalar("SELECT version FROM seaql_migrations WHERE version = $1")
                    .bind(index.migration)
                    .fetch_optional(&mut conn)
                    .await
                    .map_err(err)?;
            if applied.is_none() {
                continue;
            }
            let valid: Option<bool> = sqlx::query_scalar(
                "SELECT i.indisvalid FROM pg_class c JOIN pg_index i ON i.indexrelid = c.oid                  WHERE c.relname = $1 AND c.relnamespace = current_schema()::regnamespace",
            )
            .bind(index.name)
            .fetch_optional(&mut conn)
            .await
            .map_err(err)?;
            match valid {
                Some(true) => continue,
                Some(false) => {
                    tracing::warn!(
                        index = index.name,
                        "dropping an index a cut-short build left invalid"
                    );
                    // Names and definitions are this crate's constants, never input.
                    sqlx::query(sqlx::AssertSqlSafe(format!(
                        "DROP INDEX CONCURRENTLY IF EXISTS {}",
                        index.name
                    )))
                    .execute(&mut conn)
                    .await
                    .map_err(err)?;
                }
                None => {}
            }
            let started = std::time::Instant::now();
            tracing::info!(index = index.name, "building index concurrently");
            sqlx::query(sqlx::AssertSqlSafe(format!(
                "CREATE INDEX CONCURRENTLY IF NOT EXISTS {} {}",
                index.name, index.definition
            )))
            .execute(&mut conn)
            .await
            .map_err(err)?;
            tracing::info!(
                index = index.name,
                took_ms = started.elapsed().as_millis() as u64,
                "index built"
            );
            built.push(index.name.to_string());
        }
    }
    let _ = conn.close().await;
    Ok(built)
}
