use sea_orm_migration::{prelude::*, schema::*};

/// Each program's next weekly digest occurrence, kept (and indexed) so the worker's pass
/// reads the programs that are due instead of computing every program's schedule on
/// every pass. Existing programs get a row to be computed by the next pass.
///
/// Expand-only: a new table a previous release does not know.
#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(ProgramDigestSchedules::Table)
                    .if_not_exists()
                    .col(big_integer(ProgramDigestSchedules::ProgramId).primary_key())
                    .col(timestamp_with_time_zone_null(
                        ProgramDigestSchedules::NextAt,
                    ))
                    .col(string_len(ProgramDigestSchedules::Schedule, 200).default(""))
                    .foreign_key(
                        ForeignKey::create()
                            .from(
                                ProgramDigestSchedules::Table,
                                ProgramDigestSchedules::ProgramId,
                            )
                            .to(Programs::Table, Programs::Id),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("ix_program_digest_schedules_next")
                    .table(ProgramDigestSchedules::Table)
                    .col(ProgramDigestSchedules::NextAt)
                    .to_owned(),
            )
            .await?;
        manager
            .get_connection()
            .execute_unprepared(
                "INSERT INTO program_digest_schedules (program_id, schedule) \
                 SELECT id, '' FROM programs",
            )
            .await
            .map(|_| ())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(
                Table::drop()
                    .table(ProgramDigestSchedules::Table)
                    .to_owned(),
            )
            .await
    }
}

#[derive(DeriveIden)]
enum ProgramDigestSchedules {
    Table,
    ProgramId,
    NextAt,
    Schedule,
}

#[derive(DeriveIden)]
enum Programs {
    Table,
    Id,
}
