use sea_orm_migration::{prelude::*, schema::*};

/// What shows an action item was done: a note and a link to the evidence (a work order, a
/// report in the document system), given when it is completed; required for the actions of
/// CAPA, deviations and change control.
///
/// Expand-only: nullable columns a previous release neither reads nor writes.
#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table(ActionItems::Table)
                    .add_column(text_null(ActionItems::CompletionEvidence))
                    .to_owned(),
            )
            .await?;
        manager
            .alter_table(
                Table::alter()
                    .table(ActionItems::Table)
                    .add_column(string_len_null(ActionItems::CompletionEvidenceUrl, 2048))
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for column in [
            ActionItems::CompletionEvidence,
            ActionItems::CompletionEvidenceUrl,
        ] {
            manager
                .alter_table(
                    Table::alter()
                        .table(ActionItems::Table)
                        .drop_column(column)
                        .to_owned(),
                )
                .await?;
        }
        Ok(())
    }
}

#[derive(DeriveIden)]
enum ActionItems {
    Table,
    CompletionEvidence,
    CompletionEvidenceUrl,
}
