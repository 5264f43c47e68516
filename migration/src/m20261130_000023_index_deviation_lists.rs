use sea_orm_migration::prelude::*;

/// The deviation list of a program, newest first, read from an index instead of sorting
/// the program's deviations on every request (bench_http: the list endpoint was the
/// worst ratio to the hello ceiling; SQLite planned "USE TEMP B-TREE FOR ORDER BY").
#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_index(
                Index::create()
                    .name("ix_deviations_program_detected")
                    .table(Deviations::Table)
                    .col(Deviations::ProgramId)
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
                    .name("ix_deviations_program_detected")
                    .table(Deviations::Table)
                    .to_owned(),
            )
            .await
    }
}

#[derive(DeriveIden)]
enum Deviations {
    Table,
    Id,
    ProgramId,
    DetectedAt,
}
