use super::m20261123_000002_create_users::Users;
use super::m20261123_000008_create_programs::Programs;
use super::m20261123_000009_create_milestones::Milestones;
use sea_orm_migration::{prelude::*, schema::*};

/// Action items, gate checklists and decisions.
#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(ActionItems::Table)
                    .if_not_exists()
                    .col(big_pk_auto(ActionItems::Id))
                    .col(big_integer(ActionItems::ProgramId))
                    .col(string_len(ActionItems::Title, 200))
                    .col(text_null(ActionItems::Description))
                    .col(big_integer(ActionItems::OwnerUserId))
                    .col(date(ActionItems::DueDate))
                    .col(string_len(ActionItems::Source, 16))
                    .col(big_integer_null(ActionItems::SourceId))
                    .col(string_len(ActionItems::Status, 16))
                    .col(date_null(ActionItems::SnoozedUntil))
                    .col(text_null(ActionItems::SnoozeReason))
                    .col(timestamp_with_time_zone_null(ActionItems::CompletedAt))
                    .col(timestamp_with_time_zone(ActionItems::CreatedAt))
                    .col(timestamp_with_time_zone(ActionItems::UpdatedAt))
                    .col(integer(ActionItems::Version).default(1))
                    .foreign_key(
                        ForeignKey::create()
                            .from(ActionItems::Table, ActionItems::ProgramId)
                            .to(Programs::Table, Programs::Id),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .from(ActionItems::Table, ActionItems::OwnerUserId)
                            .to(Users::Table, Users::Id),
                    )
                    .to_owned(),
            )
            .await?;
        // Reminders scan open items by due date; lists filter by owner.
        manager
            .create_index(
                Index::create()
                    .name("ix_action_items_status_due")
                    .table(ActionItems::Table)
                    .col(ActionItems::Status)
                    .col(ActionItems::DueDate)
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("ix_action_items_owner")
                    .table(ActionItems::Table)
                    .col(ActionItems::OwnerUserId)
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("ix_action_items_program")
                    .table(ActionItems::Table)
                    .col(ActionItems::ProgramId)
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(GateItems::Table)
                    .if_not_exists()
                    .col(big_pk_auto(GateItems::Id))
                    .col(big_integer(GateItems::MilestoneId))
                    .col(string_len(GateItems::CheckType, 48))
                    .col(string_len(GateItems::Title, 200))
                    .col(boolean(GateItems::Mandatory))
                    .col(string_len(GateItems::Result, 16))
                    .col(text_null(GateItems::Evidence))
                    .col(big_integer_null(GateItems::DecidedByUserId))
                    .col(timestamp_with_time_zone_null(GateItems::DecidedAt))
                    .col(integer(GateItems::Position))
                    .col(timestamp_with_time_zone(GateItems::CreatedAt))
                    .col(timestamp_with_time_zone(GateItems::UpdatedAt))
                    .col(integer(GateItems::Version).default(1))
                    .foreign_key(
                        ForeignKey::create()
                            .from(GateItems::Table, GateItems::MilestoneId)
                            .to(Milestones::Table, Milestones::Id),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("ix_gate_items_milestone")
                    .table(GateItems::Table)
                    .col(GateItems::MilestoneId)
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(GateDecisions::Table)
                    .if_not_exists()
                    .col(big_pk_auto(GateDecisions::Id))
                    .col(big_integer(GateDecisions::MilestoneId))
                    .col(integer(GateDecisions::GateRound))
                    .col(string_len(GateDecisions::Decision, 8))
                    .col(text_null(GateDecisions::Notes))
                    .col(big_integer(GateDecisions::SignatureId))
                    .col(big_integer(GateDecisions::DecidedByUserId))
                    .col(timestamp_with_time_zone(GateDecisions::DecidedAt))
                    .foreign_key(
                        ForeignKey::create()
                            .from(GateDecisions::Table, GateDecisions::MilestoneId)
                            .to(Milestones::Table, Milestones::Id),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                // One decision per review round.
                Index::create()
                    .name("ux_gate_decisions_milestone_round")
                    .table(GateDecisions::Table)
                    .col(GateDecisions::MilestoneId)
                    .col(GateDecisions::GateRound)
                    .unique()
                    .to_owned(),
            )
            .await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for table in [
            GateDecisions::Table.into_iden(),
            GateItems::Table.into_iden(),
            ActionItems::Table.into_iden(),
        ] {
            manager
                .drop_table(Table::drop().table(table).to_owned())
                .await?;
        }
        Ok(())
    }
}

#[derive(DeriveIden)]
enum ActionItems {
    Table,
    Id,
    ProgramId,
    Title,
    Description,
    OwnerUserId,
    DueDate,
    Source,
    SourceId,
    Status,
    SnoozedUntil,
    SnoozeReason,
    CompletedAt,
    CreatedAt,
    UpdatedAt,
    Version,
}

#[derive(DeriveIden)]
enum GateItems {
    Table,
    Id,
    MilestoneId,
    CheckType,
    Title,
    Mandatory,
    Result,
    Evidence,
    DecidedByUserId,
    DecidedAt,
    Position,
    CreatedAt,
    UpdatedAt,
    Version,
}

#[derive(DeriveIden)]
enum GateDecisions {
    Table,
    Id,
    MilestoneId,
    GateRound,
    Decision,
    Notes,
    SignatureId,
    DecidedByUserId,
    DecidedAt,
}
