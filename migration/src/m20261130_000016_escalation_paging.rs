use sea_orm_migration::{prelude::*, schema::*};

/// 24/7 escalation: per-program policies, the paging state of each escalation (its own
/// snapshot of the policy), one claimed row per page sent, the event log, and the
/// single-use record of acknowledgement links.
#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(EscalationPolicies::Table)
                    .if_not_exists()
                    .col(big_pk_auto(EscalationPolicies::Id))
                    .col(big_integer_uniq(EscalationPolicies::ProgramId))
                    .col(text(EscalationPolicies::Tiers))
                    .col(integer(EscalationPolicies::RepeatLast))
                    .col(integer(EscalationPolicies::AckTimeoutMinutes))
                    .col(timestamp_with_time_zone(EscalationPolicies::CreatedAt))
                    .col(timestamp_with_time_zone(EscalationPolicies::UpdatedAt))
                    .col(integer(EscalationPolicies::Version).default(1))
                    .to_owned(),
            )
            .await?;
        // SQLite adds one column per ALTER TABLE.
        let columns = [
            string_len(Escalations::Title, 300).default("").to_owned(),
            string_len_null(Escalations::Criticality, 16),
            string_len_null(Escalations::Category, 32),
            text_null(Escalations::PolicySnapshot),
            integer(Escalations::Step).default(0).to_owned(),
            integer(Escalations::PageSeq).default(0).to_owned(),
            integer_null(Escalations::CurrentTier),
            timestamp_with_time_zone_null(Escalations::NextPageAt),
            timestamp_with_time_zone_null(Escalations::AcknowledgedAt),
            big_integer_null(Escalations::AcknowledgedByUserId),
            string_len_null(Escalations::AckChannel, 16),
            integer(Escalations::ReopenCount).default(0).to_owned(),
            big_integer_null(Escalations::OpenedByUserId),
        ];
        for mut column in columns {
            manager
                .alter_table(
                    Table::alter()
                        .table(Escalations::Table)
                        .add_column(&mut column)
                        .to_owned(),
                )
                .await?;
        }
        // The call tree shows a phone number per person.
        manager
            .alter_table(
                Table::alter()
                    .table(Users::Table)
                    .add_column(string_len_null(Users::Phone, 32))
                    .to_owned(),
            )
            .await?;
        // The worker's fast tick: open escalations whose next page is due.
        manager
            .create_index(
                Index::create()
                    .name("ix_escalations_due")
                    .table(Escalations::Table)
                    .col(Escalations::Status)
                    .col(Escalations::NextPageAt)
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(EscalationPages::Table)
                    .if_not_exists()
                    .col(big_pk_auto(EscalationPages::Id))
                    .col(big_integer(EscalationPages::EscalationId))
                    .col(integer(EscalationPages::Seq))
                    .col(integer(EscalationPages::TierIndex))
                    .col(text(EscalationPages::Recipients))
                    .col(timestamp_with_time_zone(EscalationPages::PagedAt))
                    .col(string_len(EscalationPages::WorkerId, 64))
                    .to_owned(),
            )
            .await?;
        // Exactly one page per (escalation, page number), whatever the workers.
        manager
            .create_index(
                Index::create()
                    .name("ux_escalation_pages_seq")
                    .table(EscalationPages::Table)
                    .col(EscalationPages::EscalationId)
                    .col(EscalationPages::Seq)
                    .unique()
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(EscalationEvents::Table)
                    .if_not_exists()
                    .col(big_pk_auto(EscalationEvents::Id))
                    .col(big_integer(EscalationEvents::EscalationId))
                    .col(string_len(EscalationEvents::Kind, 32))
                    .col(integer_null(EscalationEvents::TierIndex))
                    .col(text(EscalationEvents::Detail))
                    .col(big_integer_null(EscalationEvents::ActorUserId))
                    .col(string_len_null(EscalationEvents::Channel, 16))
                    .col(timestamp_with_time_zone(EscalationEvents::At))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("ix_escalation_events_escalation")
                    .table(EscalationEvents::Table)
                    .col(EscalationEvents::EscalationId)
                    .col(EscalationEvents::Id)
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(AckLinkUses::Table)
                    .if_not_exists()
                    .col(big_pk_auto(AckLinkUses::Id))
                    .col(string_len_uniq(AckLinkUses::TokenHash, 64))
                    .col(big_integer(AckLinkUses::EscalationId))
                    .col(big_integer(AckLinkUses::UserId))
                    .col(timestamp_with_time_zone(AckLinkUses::UsedAt))
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for table in [
            AckLinkUses::Table.into_iden(),
            EscalationEvents::Table.into_iden(),
            EscalationPages::Table.into_iden(),
            EscalationPolicies::Table.into_iden(),
        ] {
            manager
                .drop_table(Table::drop().table(table).to_owned())
                .await?;
        }
        Ok(())
    }
}

#[derive(DeriveIden)]
enum EscalationPolicies {
    Table,
    Id,
    ProgramId,
    Tiers,
    RepeatLast,
    AckTimeoutMinutes,
    CreatedAt,
    UpdatedAt,
    Version,
}

#[derive(DeriveIden)]
enum Escalations {
    Table,
    Title,
    Criticality,
    Category,
    PolicySnapshot,
    Step,
    PageSeq,
    CurrentTier,
    NextPageAt,
    AcknowledgedAt,
    AcknowledgedByUserId,
    AckChannel,
    ReopenCount,
    OpenedByUserId,
    Status,
}

#[derive(DeriveIden)]
enum Users {
    Table,
    Phone,
}

#[derive(DeriveIden)]
enum EscalationPages {
    Table,
    Id,
    EscalationId,
    Seq,
    TierIndex,
    Recipients,
    PagedAt,
    WorkerId,
}

#[derive(DeriveIden)]
enum EscalationEvents {
    Table,
    Id,
    EscalationId,
    Kind,
    TierIndex,
    Detail,
    ActorUserId,
    Channel,
    At,
}

#[derive(DeriveIden)]
enum AckLinkUses {
    Table,
    Id,
    TokenHash,
    EscalationId,
    UserId,
    UsedAt,
}
