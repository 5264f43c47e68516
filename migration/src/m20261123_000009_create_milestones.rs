use super::m20261123_000002_create_users::Users;
use super::m20261123_000008_create_programs::Programs;
use sea_orm_migration::{prelude::*, schema::*};

/// Milestones and the dependencies between them.
#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(Milestones::Table)
                    .if_not_exists()
                    .col(big_pk_auto(Milestones::Id))
                    .col(big_integer(Milestones::ProgramId))
                    .col(string_len(Milestones::Name, 200))
                    .col(string_len(Milestones::Phase, 100))
                    .col(big_integer_null(Milestones::OwnerUserId))
                    .col(string_len(Milestones::Status, 16))
                    .col(string_len_null(Milestones::HeldFrom, 16))
                    .col(date(Milestones::BaselineStart))
                    .col(date(Milestones::BaselineEnd))
                    .col(date(Milestones::ForecastStart))
                    .col(date(Milestones::ForecastEnd))
                    .col(date_null(Milestones::ActualStart))
                    .col(date_null(Milestones::ActualEnd))
                    .col(integer(Milestones::Position))
                    .col(integer(Milestones::GateRound).default(0))
                    .col(timestamp_with_time_zone(Milestones::CreatedAt))
                    .col(timestamp_with_time_zone(Milestones::UpdatedAt))
                    .col(integer(Milestones::Version).default(1))
                    .foreign_key(
                        ForeignKey::create()
                            .from(Milestones::Table, Milestones::ProgramId)
                            .to(Programs::Table, Programs::Id),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .from(Milestones::Table, Milestones::OwnerUserId)
                            .to(Users::Table, Users::Id),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("ix_milestones_program")
                    .table(Milestones::Table)
                    .col(Milestones::ProgramId)
                    .col(Milestones::Position)
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(MilestoneDependencies::Table)
                    .if_not_exists()
                    .col(big_integer(MilestoneDependencies::MilestoneId))
                    .col(big_integer(MilestoneDependencies::DependsOnId))
                    .primary_key(
                        Index::create()
                            .col(MilestoneDependencies::MilestoneId)
                            .col(MilestoneDependencies::DependsOnId),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .from(
                                MilestoneDependencies::Table,
                                MilestoneDependencies::MilestoneId,
                            )
                            .to(Milestones::Table, Milestones::Id),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .from(
                                MilestoneDependencies::Table,
                                MilestoneDependencies::DependsOnId,
                            )
                            .to(Milestones::Table, Milestones::Id),
                    )
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(MilestoneDependencies::Table).to_owned())
            .await?;
        manager
            .drop_table(Table::drop().table(Milestones::Table).to_owned())
            .await
    }
}

#[derive(DeriveIden)]
pub enum Milestones {
    Table,
    Id,
    ProgramId,
    Name,
    Phase,
    OwnerUserId,
    Status,
    HeldFrom,
    BaselineStart,
    BaselineEnd,
    ForecastStart,
    ForecastEnd,
    ActualStart,
    ActualEnd,
    Position,
    GateRound,
    CreatedAt,
    UpdatedAt,
    Version,
}

#[derive(DeriveIden)]
enum MilestoneDependencies {
    Table,
    MilestoneId,
    DependsOnId,
}
