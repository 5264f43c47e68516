use sea_orm_migration::{prelude::*, schema::*};

/// Signed checkpoints of each organization's audit chain (external anchoring): where the
/// chain ended, signed with a public-key signature whose copies leave the system.
#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(AuditCheckpoints::Table)
                    .col(big_pk_auto(AuditCheckpoints::Id))
                    .col(big_integer(AuditCheckpoints::OrgId))
                    .col(big_integer(AuditCheckpoints::Seq))
                    .col(string_len(AuditCheckpoints::HeadHash, 64))
                    .col(timestamp_with_time_zone(AuditCheckpoints::CreatedAt))
                    .col(string_len(AuditCheckpoints::KeyId, 32))
                    .col(string_len(AuditCheckpoints::PublicKey, 64))
                    .col(string_len(AuditCheckpoints::Signature, 128))
                    .col(string_len(AuditCheckpoints::Kind, 16))
                    .col(text_null(AuditCheckpoints::Reason))
                    .foreign_key(
                        ForeignKey::create()
                            .from(AuditCheckpoints::Table, AuditCheckpoints::OrgId)
                            .to(Organizations::Table, Organizations::Id),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("ix_audit_checkpoints_org")
                    .table(AuditCheckpoints::Table)
                    .col(AuditCheckpoints::OrgId)
                    .col(AuditCheckpoints::Id)
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(AuditCheckpoints::Table).to_owned())
            .await
    }
}

#[derive(DeriveIden)]
enum AuditCheckpoints {
    Table,
    Id,
    OrgId,
    Seq,
    HeadHash,
    CreatedAt,
    KeyId,
    PublicKey,
    Signature,
    Kind,
    Reason,
}

#[derive(DeriveIden)]
enum Organizations {
    Table,
    Id,
}
