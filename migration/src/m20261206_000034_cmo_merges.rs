use sea_orm_migration::{prelude::*, schema::*};

/// Merging a CMO registered twice (once per sponsor, before the partner network) into one
/// organization: the duplicate's admin proposes, the surviving CMO's admin accepts, and
/// the duplicate's people, programs, relationships and facts move over in that step. The
/// proposal and its answer are kept here; the duplicate's organization row stays (its
/// audit trail is chained under its id) with `merged_into_org_id` set.
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
                    .table(CmoMerges::Table)
                    .if_not_exists()
                    .col(big_pk_auto(CmoMerges::Id))
                    .col(big_integer(CmoMerges::AbsorbedOrgId))
                    .col(big_integer(CmoMerges::SurvivorOrgId))
                    .col(string_len(CmoMerges::Status, 16))
                    .col(text(CmoMerges::Reason))
                    .col(big_integer(CmoMerges::ProposedByUserId))
                    .col(big_integer(CmoMerges::ProposedByOrgId))
                    .col(timestamp_with_time_zone(CmoMerges::ProposedAt))
                    .col(big_integer_null(CmoMerges::RespondedByUserId))
                    .col(timestamp_with_time_zone_null(CmoMerges::RespondedAt))
                    .col(text_null(CmoMerges::Response))
                    .col(text_null(CmoMerges::Moved))
                    .col(timestamp_with_time_zone(CmoMerges::CreatedAt))
                    .col(timestamp_with_time_zone(CmoMerges::UpdatedAt))
                    .col(integer(CmoMerges::Version).default(1))
                    .to_owned(),
            )
            .await?;
        for (name, col) in [
            ("ix_cmo_merges_absorbed", CmoMerges::AbsorbedOrgId),
            ("ix_cmo_merges_survivor", CmoMerges::SurvivorOrgId),
        ] {
            manager
                .create_index(
                    Index::create()
                        .name(name)
                        .table(CmoMerges::Table)
                        .col(col)
                        .to_owned(),
                )
                .await?;
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(CmoMerges::Table).to_owned())
            .await
    }
}

#[derive(DeriveIden)]
enum CmoMerges {
    Table,
    Id,
    AbsorbedOrgId,
    SurvivorOrgId,
    Status,
    Reason,
    ProposedByUserId,
    ProposedByOrgId,
    ProposedAt,
    RespondedByUserId,
    RespondedAt,
    Response,
    Moved,
    CreatedAt,
    UpdatedAt,
    Version,
}
