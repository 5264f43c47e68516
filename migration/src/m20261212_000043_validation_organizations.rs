use sea_orm_migration::{prelude::*, schema::*};

/// An organization the operational qualification (`cmo-api qualify`) creates for its run
/// is marked as such, and deactivated when the run ends: its records stay (GxP records
/// are never deleted), nobody signs in to it again.
///
/// Expand-only: a column with a default and a nullable one, which a previous release
/// neither reads nor writes.
#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let mut validation_run = boolean(Organizations::ValidationRun);
        validation_run.default(false);
        for mut column in [
            validation_run,
            timestamp_with_time_zone_null(Organizations::DeactivatedAt),
        ] {
            manager
                .alter_table(
                    Table::alter()
                        .table(Organizations::Table)
                        .add_column(&mut column)
                        .to_owned(),
                )
                .await?;
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for column in [Organizations::ValidationRun, Organizations::DeactivatedAt] {
            manager
                .alter_table(
                    Table::alter()
                        .table(Organizations::Table)
                        .drop_column(column)
                        .to_owned(),
                )
                .await?;
        }
        Ok(())
    }
}

#[derive(DeriveIden)]
enum Organizations {
    Table,
    ValidationRun,
    DeactivatedAt,
}
