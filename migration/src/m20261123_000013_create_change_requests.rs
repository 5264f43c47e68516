use super::m20261123_000002_create_users::Users;
use super::m20261123_000008_create_programs::Programs;
use sea_orm_migration::{prelude::*, schema::*};

/// Change control.
#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(ChangeRequests::Table)
                    .if_not_exists()
                    .col(big_pk_auto(ChangeRequests::Id))
                    .col(big_integer(ChangeRequests::ProgramId))
                    .col(string_len(ChangeRequests::Title, 200))
                    .col(text(ChangeRequests::Description))
                    .col(text(ChangeRequests::Justification))
                    .col(string_len(ChangeRequests::Classification, 8))
                    .col(text_null(ChangeRequests::ImpactProductQuality))
                    .col(text_null(ChangeRequests::ImpactValidation))
                    .col(text_null(ChangeRequests::ImpactRegulatory))
                    .col(string_len(ChangeRequests::Status, 24))
                    .col(big_integer_null(ChangeRequests::DecisionSignatureId))
                    .col(text_null(ChangeRequests::DecisionReason))
                    .col(big_integer(ChangeRequests::RequestedByUserId))
                    .col(timestamp_with_time_zone_null(ChangeRequests::ClosedAt))
                    .col(timestamp_with_time_zone(ChangeRequests::CreatedAt))
                    .col(timestamp_with_time_zone(ChangeRequests::UpdatedAt))
                    .col(integer(ChangeRequests::Version).default(1))
                    .foreign_key(
                        ForeignKey::create()
                            .from(ChangeRequests::Table, ChangeRequests::ProgramId)
                            .to(Programs::Table, Programs::Id),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .from(ChangeRequests::Table, ChangeRequests::RequestedByUserId)
                            .to(Users::Table, Users::Id),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("ix_change_requests_program")
                    .table(ChangeRequests::Table)
                    .col(ChangeRequests::ProgramId)
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(ChangeRequests::Table).to_owned())
            .await
    }
}

#[derive(DeriveIden)]
enum ChangeRequests {
    Table,
    Id,
    ProgramId,
    Title,
    Description,
    Justification,
    Classification,
    ImpactProductQuality,
    ImpactValidation,
    ImpactRegulatory,
    Status,
    DecisionSignatureId,
    DecisionReason,
    RequestedByUserId,
    ClosedAt,
    CreatedAt,
    UpdatedAt,
    Version,
}
