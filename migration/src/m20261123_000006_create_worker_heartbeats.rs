use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(WorkerHeartbeats::Table)
                    .if_not_exists()
                    .col(string_len(WorkerHeartbeats::WorkerId, 64).primary_key())
                    .col(string_len(WorkerHeartbeats::Hostname, 255))
                    .col(timestamp_with_time_zone(WorkerHeartbeats::StartedAt))
                    .col(timestamp_with_time_zone(WorkerHeartbeats::LastBeatAt))
                    .col(big_integer(WorkerHeartbeats::Beats).default(0))
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(WorkerHeartbeats::Table).to_owned())
            .await
    }
}

#[derive(DeriveIden)]
enum WorkerHeartbeats {
    Table,
    WorkerId,
    Hostname,
    StartedAt,
    LastBeatAt,
    Beats,
}
