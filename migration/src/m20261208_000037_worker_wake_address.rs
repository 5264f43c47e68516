use sea_orm_migration::{prelude::*, schema::*};

/// Where a worker listens for wakes on SQLite (a loopback UDP address): the api sends a
/// datagram there when it commits a page or a webhook delivery, so the worker acts at
/// once instead of at its next tick. PostgreSQL wakes through LISTEN/NOTIFY instead.
///
/// Expand-only: a nullable column a previous release neither reads nor writes.
#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table(WorkerHeartbeats::Table)
                    .add_column(string_len_null(WorkerHeartbeats::WakeAddr, 64))
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table(WorkerHeartbeats::Table)
                    .drop_column(WorkerHeartbeats::WakeAddr)
                    .to_owned(),
            )
            .await
    }
}

#[derive(DeriveIden)]
enum WorkerHeartbeats {
    Table,
    WakeAddr,
}
