use super::m20261123_000001_create_organizations::Organizations;
use super::m20261123_000002_create_users::Users;
use sea_orm_migration::{prelude::*, schema::*};

/// Programs and their teams.
#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(Programs::Table)
                    .if_not_exists()
                    .col(big_pk_auto(Programs::Id))
                    .col(big_integer(Programs::SponsorOrgId))
                    .col(big_integer(Programs::CmoOrgId))
                    .col(string_len(Programs::Name, 200))
                    .col(string_len(Programs::ProductName, 200))
                    .col(string_len(Programs::Modality, 32))
                    .col(string_len(Programs::Stage, 32))
                    .col(text_null(Programs::Scope))
                    .col(big_integer_null(Programs::BudgetMinor))
                    .col(string_len_null(Programs::Currency, 3))
                    .col(string_len(Programs::TimeZone, 64))
                    .col(string_len(Programs::ProductionStatus, 16).default("running"))
                    .col(timestamp_with_time_zone(Programs::CreatedAt))
                    .col(timestamp_with_time_zone(Programs::UpdatedAt))
                    .col(integer(Programs::Version).default(1))
                    .foreign_key(
                        ForeignKey::create()
                            .from(Programs::Table, Programs::SponsorOrgId)
                            .to(Organizations::Table, Organizations::Id),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .from(Programs::Table, Programs::CmoOrgId)
                            .to(Organizations::Table, Organizations::Id),
                    )
                    .to_owned(),
            )
            .await?;
        for (name, col) in [
            ("ix_programs_sponsor", Programs::SponsorOrgId),
            ("ix_programs_cmo", Programs::CmoOrgId),
        ] {
            manager
                .create_index(
                    Index::create()
                        .name(name)
                        .table(Programs::Table)
                        .col(col)
                        .to_owned(),
                )
                .await?;
        }
        manager
            .create_table(
                Table::create()
                    .table(TeamMembers::Table)
                    .if_not_exists()
                    .col(big_pk_auto(TeamMembers::Id))
                    .col(big_integer(TeamMembers::ProgramId))
                    .col(big_integer(TeamMembers::UserId))
                    .col(string_len(TeamMembers::GovernanceTier, 32))
                    .col(string_len(TeamMembers::ProgramRole, 100))
                    .col(text(TeamMembers::ExpertiseTags))
                    .col(boolean(TeamMembers::WantsDigest).default(true))
                    .col(boolean(TeamMembers::WantsReminders).default(true))
                    .col(timestamp_with_time_zone(TeamMembers::CreatedAt))
                    .col(timestamp_with_time_zone(TeamMembers::UpdatedAt))
                    .col(integer(TeamMembers::Version).default(1))
                    .foreign_key(
                        ForeignKey::create()
                            .from(TeamMembers::Table, TeamMembers::ProgramId)
                            .to(Programs::Table, Programs::Id),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .from(TeamMembers::Table, TeamMembers::UserId)
                            .to(Users::Table, Users::Id),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("ux_team_members_program_user")
                    .table(TeamMembers::Table)
                    .col(TeamMembers::ProgramId)
                    .col(TeamMembers::UserId)
                    .unique()
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(TeamMembers::Table).to_owned())
            .await?;
        manager
            .drop_table(Table::drop().table(Programs::Table).to_owned())
            .await
    }
}

#[derive(DeriveIden, Clone, Copy)]
pub enum Programs {
    Table,
    Id,
    SponsorOrgId,
    CmoOrgId,
    Name,
    ProductName,
    Modality,
    Stage,
    Scope,
    BudgetMinor,
    Currency,
    TimeZone,
    ProductionStatus,
    CreatedAt,
    UpdatedAt,
    Version,
}

#[derive(DeriveIden)]
enum TeamMembers {
    Table,
    Id,
    ProgramId,
    UserId,
    GovernanceTier,
    ProgramRole,
    ExpertiseTags,
    WantsDigest,
    WantsReminders,
    CreatedAt,
    UpdatedAt,
    Version,
}
