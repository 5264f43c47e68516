use super::m20261123_000001_create_organizations::Organizations;
use sea_orm_migration::{prelude::*, schema::*};

/// The audit trail: events plus the per-organization chain head that serializes appends.
#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(AuditEvents::Table)
                    .if_not_exists()
                    .col(big_pk_auto(AuditEvents::Id))
                    .col(big_integer(AuditEvents::OrgId))
                    .col(big_integer(AuditEvents::Seq))
                    .col(big_integer_null(AuditEvents::ActorUserId))
                    .col(string_len(AuditEvents::EntityType, 64))
                    .col(string_len(AuditEvents::EntityId, 128))
                    .col(string_len(AuditEvents::Action, 64))
                    // Canonical JSON kept as text: hashed and returned byte for byte, whatever the
                    // database would do to a json column's numbers.
                    .col(text_null(AuditEvents::Before))
                    .col(text_null(AuditEvents::After))
                    .col(text_null(AuditEvents::Reason))
                    .col(string_len_null(AuditEvents::RequestId, 128))
                    .col(timestamp_with_time_zone(AuditEvents::OccurredAt))
                    .col(string_len(AuditEvents::PrevHash, 64))
                    .col(string_len(AuditEvents::Hash, 64))
                    .foreign_key(
                        ForeignKey::create()
                            .from(AuditEvents::Table, AuditEvents::OrgId)
                            .to(Organizations::Table, Organizations::Id),
                    )
                    .to_owned(),
            )
            .await?;
        // A forked chain cannot be written even if the head lock were bypassed.
        manager
            .create_index(
                Index::create()
                    .name("ux_audit_events_org_seq")
                    .table(AuditEvents::Table)
                    .col(AuditEvents::OrgId)
                    .col(AuditEvents::Seq)
                    .unique()
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("ix_audit_events_entity")
                    .table(AuditEvents::Table)
                    .col(AuditEvents::OrgId)
                    .col(AuditEvents::EntityType)
                    .col(AuditEvents::EntityId)
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(AuditChainHeads::Table)
                    .if_not_exists()
                    .col(big_integer(AuditChainHeads::OrgId).primary_key())
                    .col(big_integer(AuditChainHeads::LastSeq))
                    .col(string_len(AuditChainHeads::LastHash, 64))
                    .foreign_key(
                        ForeignKey::create()
                            .from(AuditChainHeads::Table, AuditChainHeads::OrgId)
                            .to(Organizations::Table, Organizations::Id),
                    )
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(AuditChainHeads::Table).to_owned())
            .await?;
        manager
            .drop_table(Table::drop().table(AuditEvents::Table).to_owned())
            .await
    }
}

#[derive(DeriveIden)]
enum AuditEvents {
    Table,
    Id,
    OrgId,
    Seq,
    ActorUserId,
    EntityType,
    EntityId,
    Action,
    Before,
    After,
    Reason,
    RequestId,
    OccurredAt,
    PrevHash,
    Hash,
}

#[derive(DeriveIden)]
enum AuditChainHeads {
    Table,
    OrgId,
    LastSeq,
    LastHash,
}
