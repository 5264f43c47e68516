use sea_orm_migration::{prelude::*, schema::*};

/// A sponsor connected to (or inviting) both CMOs of a proposed merge chooses which of
/// its two relationships (and so which qualification) holds once they are one: one row
/// per merge and sponsor, changeable until the merge is answered.
///
/// Expand-only: a new table; a previous release never reads it.
#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(CmoMergeChoices::Table)
                    .if_not_exists()
                    .col(big_pk_auto(CmoMergeChoices::Id))
                    .col(big_integer(CmoMergeChoices::MergeId))
                    .col(big_integer(CmoMergeChoices::SponsorOrgId))
                    .col(string_len(CmoMergeChoices::Keep, 16))
                    .col(text(CmoMergeChoices::Reason))
                    .col(big_integer(CmoMergeChoices::DecidedByUserId))
                    .col(timestamp_with_time_zone(CmoMergeChoices::DecidedAt))
                    .col(integer(CmoMergeChoices::Version).default(1))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("ux_cmo_merge_choices_merge_sponsor")
                    .table(CmoMergeChoices::Table)
                    .col(CmoMergeChoices::MergeId)
                    .col(CmoMergeChoices::SponsorOrgId)
                    .unique()
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(CmoMergeChoices::Table).to_owned())
            .await
    }
}

#[derive(DeriveIden)]
enum CmoMergeChoices {
    Table,
    Id,
    MergeId,
    SponsorOrgId,
    Keep,
    Reason,
    DecidedByUserId,
    DecidedAt,
    Version,
}
