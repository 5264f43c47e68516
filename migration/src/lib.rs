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
        let txn = db.begin().await?;
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
