use super::m20261123_000002_create_users::Users;
use super::m20261123_000008_create_programs::Programs;
use super::m20261123_000009_create_milestones::Milestones;
use sea_orm_migration::{prelude::*, schema::*};

/// Deviations and the escalations a critical or major one opens.
#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(Deviations::Table)
                    .if_not_exists()
                    .col(big_pk_auto(Deviations::Id))
                    .col(big_integer(Deviations::ProgramId))
                    .col(big_integer_null(Deviations::MilestoneId))
                    .col(string_len_null(Deviations::BatchLot, 64))
                    .col(string_len(Deviations::Title, 200))
                    .col(text(Deviations::Description))
                    .col(timestamp_with_time_zone(Deviations::DetectedAt))
                    .col(big_integer(Deviations::ReportedByUserId))
                    .col(string_len_null(Deviations::ProcessStep, 200))
                    .col(string_len(Deviations::Criticality, 16))
                    .col(string_len(Deviations::Category, 16))
                    .col(string_len(Deviations::Status, 16))
                    .col(timestamp_with_time_zone_null(Deviations::TriagedAt))
                    .col(text_null(Deviations::ShortTermFix))
                    .col(string_len_null(Deviations::RootCauseMethod, 16))
                    .col(string_len_null(Deviations::RootCauseCategory, 16))
                    .col(text_null(Deviations::RootCauseNarrative))
                    .col(big_integer_null(Deviations::ClosureSignatureId))
                    .col(timestamp_with_time_zone_null(Deviations::ClosedAt))
                    .col(text_null(Deviations::CancelReason))
                    .col(timestamp_with_time_zone(Deviations::CreatedAt))
                    .col(timestamp_with_time_zone(Deviations::UpdatedAt))
                    .col(integer(Deviations::Version).default(1))
                    .foreign_key(
                        ForeignKey::create()
                            .from(Deviations::Table, Deviations::ProgramId)
                            .to(Programs::Table, Programs::Id),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .from(Deviations::Table, Deviations::MilestoneId)
                            .to(Milestones::Table, Milestones::Id),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .from(Deviations::Table, Deviations::ReportedByUserId)
                            .to(Users::Table, Users::Id),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("ix_deviations_program_criticality")
                    .table(Deviations::Table)
                    .col(Deviations::ProgramId)
                    .col(Deviations::Criticality)
                    .col(Deviations::Status)
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(Escalations::Table)
                    .if_not_exists()
                    .col(big_pk_auto(Escalations::Id))
                    .col(big_integer(Escalations::ProgramId))
                    .col(string_len(Escalations::SourceType, 32))
                    .col(big_integer_null(Escalations::SourceId))
                    .col(text(Escalations::Reason))
                    .col(string_len(Escalations::Status, 16))
                    .col(timestamp_with_time_zone(Escalations::OpenedAt))
                    .col(timestamp_with_time_zone_null(Escalations::ResolvedAt))
                    .col(integer(Escalations::Version).default(1))
                    .foreign_key(
                        ForeignKey::create()
                            .from(Escalations::Table, Escalations::ProgramId)
                            .to(Programs::Table, Programs::Id),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("ix_escalations_source")
                    .table(Escalations::Table)
                    .col(Escalations::SourceType)
                    .col(Escalations::SourceId)
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(Escalations::Table).to_owned())
            .await?;
        manager
            .drop_table(Table::drop().table(Deviations::Table).to_owned())
            .await
    }
}

#[derive(DeriveIden)]
enum Deviations {
    Table,
    Id,
    ProgramId,
    MilestoneId,
    BatchLot,
    Title,
    Description,
    DetectedAt,
    ReportedByUserId,
    ProcessStep,
    Criticality,
    Category,
    Status,
    TriagedAt,
    ShortTermFix,
    RootCauseMethod,
    RootCauseCategory,
    RootCauseNarrative,
    ClosureSignatureId,
    ClosedAt,
    CancelReason,
    CreatedAt,
    UpdatedAt,
    Version,
}

#[derive(DeriveIden)]
enum Escalations {
    Table,
    Id,
    ProgramId,
    SourceType,
    SourceId,
    Reason,
    Status,
    OpenedAt,
    ResolvedAt,
    Version,
}
