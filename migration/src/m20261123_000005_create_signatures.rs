use super::m20261123_000001_create_organizations::Organizations;
use super::m20261123_000002_create_users::Users;
use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(Signatures::Table)
                    .if_not_exists()
                    .col(big_pk_auto(Signatures::Id))
                    .col(big_integer(Signatures::OrgId))
                    .col(big_integer(Signatures::SignerUserId))
                    .col(string_len(Signatures::SignerName, 200))
                    .col(big_integer(Signatures::TokenId))
                    .col(string_len(Signatures::Meaning, 16))
                    .col(string_len(Signatures::RecordType, 32))
                    .col(string_len(Signatures::RecordId, 64))
                    .col(string_len(Signatures::RecordHash, 64))
                    .col(text_null(Signatures::Reason))
                    .col(timestamp_with_time_zone(Signatures::SignedAt))
                    .foreign_key(
                        ForeignKey::create()
                            .from(Signatures::Table, Signatures::OrgId)
                            .to(Organizations::Table, Organizations::Id),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .from(Signatures::Table, Signatures::SignerUserId)
                            .to(Users::Table, Users::Id),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("ix_signatures_record")
                    .table(Signatures::Table)
                    .col(Signatures::OrgId)
                    .col(Signatures::RecordType)
                    .col(Signatures::RecordId)
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(Signatures::Table).to_owned())
            .await
    }
}

#[derive(DeriveIden)]
enum Signatures {
    Table,
    Id,
    OrgId,
    SignerUserId,
    SignerName,
    TokenId,
    Meaning,
    RecordType,
    RecordId,
    RecordHash,
    Reason,
    SignedAt,
}
