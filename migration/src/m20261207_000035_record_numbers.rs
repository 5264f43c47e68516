use sea_orm_migration::{prelude::*, schema::*};

/// Human record numbers (DEV-2026-0001, CAPA-2026-0003, CC-2026-0002): one counter per
/// sponsor, kind and year, and the number on each deviation, CAPA and change request. The
/// numbers of records that exist already are given after the migration, in creation order,
/// by the same function that numbers what an older release creates during a rolling upgrade
/// (`entity::record_number::number_unnumbered`): a migration must not change when models do.
///
/// Expand-only: a new table and nullable columns a previous release neither reads nor writes.
#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(RecordNumberCounters::Table)
                    .if_not_exists()
                    .col(big_integer(RecordNumberCounters::SponsorOrgId))
                    .col(string_len(RecordNumberCounters::Kind, 8))
                    .col(integer(RecordNumberCounters::Year))
                    .col(integer(RecordNumberCounters::LastNumber))
                    .primary_key(
                        Index::create()
                            .col(RecordNumberCounters::SponsorOrgId)
                            .col(RecordNumberCounters::Kind)
                            .col(RecordNumberCounters::Year),
                    )
                    .to_owned(),
            )
            .await?;
        for (table, index) in [
            ("deviations", "ix_deviations_record_number"),
            ("capas", "ix_capas_record_number"),
            ("change_requests", "ix_change_requests_record_number"),
        ] {
            manager
                .alter_table(
                    Table::alter()
                        .table(Alias::new(table))
                        .add_column(string_len_null(RecordNumberCounters::RecordNumber, 24))
                        .to_owned(),
                )
                .await?;
            // Finds a record by the number people quote, and the ones still to number.
            manager
                .create_index(
                    Index::create()
                        .name(index)
                        .table(Alias::new(table))
                        .col(RecordNumberCounters::RecordNumber)
                        .to_owned(),
                )
                .await?;
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for (table, index) in [
            ("deviations", "ix_deviations_record_number"),
            ("capas", "ix_capas_record_number"),
            ("change_requests", "ix_change_requests_record_number"),
        ] {
            manager
                .drop_index(
                    Index::drop()
                        .name(index)
                        .table(Alias::new(table))
                        .to_owned(),
                )
                .await?;
            manager
                .alter_table(
                    Table::alter()
                        .table(Alias::new(table))
                        .drop_column(RecordNumberCounters::RecordNumber)
                        .to_owned(),
                )
                .await?;
        }
        manager
            .drop_table(Table::drop().table(RecordNumberCounters::Table).to_owned())
            .await
    }
}

#[derive(DeriveIden)]
enum RecordNumberCounters {
    Table,
    SponsorOrgId,
    Kind,
    Year,
    LastNumber,
    RecordNumber,
}
