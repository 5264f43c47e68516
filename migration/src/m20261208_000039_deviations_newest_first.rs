use sea_orm_migration::prelude::*;

/// The organization-wide deviation list (no program filter), newest first, walks this
/// index and stops at its page instead of sorting every deviation of the organization's
/// programs (bench_lists, PostgreSQL: 61 ms at 100,000 deviations, growing linearly).
/// PostgreSQL builds it with `CREATE INDEX CONCURRENTLY` after this migration commits
/// (crate::CONCURRENT_INDEXES), so reporting goes on meanwhile; SQLite builds it here.
/// Expand-only.
#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        if manager.get_database_backend() == sea_orm::DbBackend::Postgres {
            return Ok(());
        }
        manager
            .create_index(
                Index::create()
                    .if_not_exists()
                    .name("ix_deviations_detected")
                    .table(Deviations::Table)
                    .col(Deviations::DetectedAt)
                    .col(Deviations::Id)
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_index(
                Index::drop()
                    .if_exists()
                    .name("ix_deviations_detected")
                    .table(Deviations::Table)
                    .to_owned(),
            )
            .await
    }
}

#[derive(DeriveIden)]
enum Deviations {
    Table,
    DetectedAt,
    Id,
}
