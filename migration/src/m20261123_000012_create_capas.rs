use super::m20261123_000002_create_users::Users;
use super::m20261123_000008_create_programs::Programs;
use sea_orm_migration::{prelude::*, schema::*};

/// CAPAs, their links to deviations and action items, and due-date extension requests.
#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(Capas::Table)
                    .if_not_exists()
                    .col(big_pk_auto(Capas::Id))
                    .col(big_integer(Capas::ProgramId))
                    .col(string_len(Capas::Title, 200))
                    .col(text(Capas::Description))
                    .col(string_len(Capas::Source, 32))
                    .col(string_len_null(Capas::FindingReference, 100))
                    .col(string_len(Capas::Status, 24))
                    .col(date_null(Capas::EffectivenessDue))
                    .col(string_len_null(Capas::EffectivenessOutcome, 16))
                    .col(big_integer_null(Capas::PlanSignatureId))
                    .col(big_integer_null(Capas::ClosureSignatureId))
                    .col(text_null(Capas::CancelReason))
                    .col(timestamp_with_time_zone_null(Capas::ClosedAt))
                    .col(timestamp_with_time_zone(Capas::CreatedAt))
                    .col(timestamp_with_time_zone(Capas::UpdatedAt))
                    .col(integer(Capas::Version).default(1))
                    .foreign_key(
                        ForeignKey::create()
                            .from(Capas::Table, Capas::ProgramId)
                            .to(Programs::Table, Programs::Id),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("ix_capas_program")
                    .table(Capas::Table)
                    .col(Capas::ProgramId)
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(CapaDeviations::Table)
                    .if_not_exists()
                    .col(big_integer(CapaDeviations::CapaId))
                    .col(big_integer(CapaDeviations::DeviationId))
                    .primary_key(
                        Index::create()
                            .col(CapaDeviations::CapaId)
                            .col(CapaDeviations::DeviationId),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("ix_capa_deviations_deviation")
                    .table(CapaDeviations::Table)
                    .col(CapaDeviations::DeviationId)
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(CapaActions::Table)
                    .if_not_exists()
                    .col(big_integer(CapaActions::ActionItemId).primary_key())
                    .col(big_integer(CapaActions::CapaId))
                    .col(string_len(CapaActions::Kind, 16))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("ix_capa_actions_capa")
                    .table(CapaActions::Table)
                    .col(CapaActions::CapaId)
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(ExtensionRequests::Table)
                    .if_not_exists()
                    .col(big_pk_auto(ExtensionRequests::Id))
                    .col(big_integer(ExtensionRequests::ActionItemId))
                    .col(date(ExtensionRequests::CurrentDue))
                    .col(date(ExtensionRequests::RequestedDue))
                    .col(text(ExtensionRequests::Reason))
                    .col(string_len(ExtensionRequests::Status, 16))
                    .col(big_integer(ExtensionRequests::RequestedByUserId))
                    .col(big_integer_null(ExtensionRequests::DecidedByUserId))
                    .col(text_null(ExtensionRequests::DecisionReason))
                    .col(timestamp_with_time_zone_null(ExtensionRequests::DecidedAt))
                    .col(timestamp_with_time_zone(ExtensionRequests::CreatedAt))
                    .foreign_key(
                        ForeignKey::create()
                            .from(
                                ExtensionRequests::Table,
                                ExtensionRequests::RequestedByUserId,
                            )
                            .to(Users::Table, Users::Id),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("ix_extension_requests_action")
                    .table(ExtensionRequests::Table)
                    .col(ExtensionRequests::ActionItemId)
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for table in [
            ExtensionRequests::Table.into_iden(),
            CapaActions::Table.into_iden(),
            CapaDeviations::Table.into_iden(),
            Capas::Table.into_iden(),
        ] {
            manager
                .drop_table(Table::drop().table(table).to_owned())
                .await?;
        }
        Ok(())
    }
}

#[derive(DeriveIden)]
enum Capas {
    Table,
    Id,
    ProgramId,
    Title,
    Description,
    Source,
    FindingReference,
    Status,
    EffectivenessDue,
    EffectivenessOutcome,
    PlanSignatureId,
    ClosureSignatureId,
    CancelReason,
    ClosedAt,
    CreatedAt,
    UpdatedAt,
    Version,
}

#[derive(DeriveIden)]
enum CapaDeviations {
    Table,
    CapaId,
    DeviationId,
}

#[derive(DeriveIden)]
enum CapaActions {
    Table,
    ActionItemId,
    CapaId,
    Kind,
}

#[derive(DeriveIden)]
enum ExtensionRequests {
    Table,
    Id,
    ActionItemId,
    CurrentDue,
    RequestedDue,
    Reason,
    Status,
    RequestedByUserId,
    DecidedByUserId,
    DecisionReason,
    DecidedAt,
    CreatedAt,
}
