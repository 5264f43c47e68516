use sea_orm_migration::prelude::*;

/// The audit chain is keyed: each row names its hash format (1: plain SHA-256, every row
/// written so far; 2: HMAC-SHA256 under a key kept outside the database) and its key id,
/// and each chain head carries a seal under the key (set at the first keyed start).
#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        // One column per statement: SQLite adds one column per ALTER TABLE.
        let columns = [
            (
                AuditEvents::Table.into_iden(),
                ColumnDef::new(AuditEvents::HashFormat)
                    .small_integer()
                    .not_null()
                    .default(1)
                    .to_owned(),
            ),
            (
                AuditEvents::Table.into_iden(),
                ColumnDef::new(AuditEvents::KeyId)
                    .string_len(32)
                    .null()
                    .to_owned(),
            ),
            (
                AuditChainHeads::Table.into_iden(),
                ColumnDef::new(AuditChainHeads::Seal)
                    .string_len(64)
                    .null()
                    .to_owned(),
            ),
            (
                AuditChainHeads::Table.into_iden(),
                ColumnDef::new(AuditChainHeads::SealKeyId)
                    .string_len(32)
                    .null()
                    .to_owned(),
            ),
        ];
        for (table, mut column) in columns {
            manager
                .alter_table(
                    Table::alter()
                        .table(table)
                        .add_column(&mut column)
                        .to_owned(),
                )
                .await?;
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for (table, column) in [
            (
                AuditEvents::Table.into_iden(),
                AuditEvents::HashFormat.into_iden(),
            ),
            (
                AuditEvents::Table.into_iden(),
                AuditEvents::KeyId.into_iden(),
            ),
            (
                AuditChainHeads::Table.into_iden(),
                AuditChainHeads::Seal.into_iden(),
            ),
            (
                AuditChainHeads::Table.into_iden(),
                AuditChainHeads::SealKeyId.into_iden(),
            ),
        ] {
            manager
                .alter_table(Table::alter().table(table).drop_column(column).to_owned())
                .await?;
        }
        Ok(())
    }
}

#[derive(DeriveIden)]
enum AuditEvents {
    Table,
    HashFormat,
    KeyId,
}

#[derive(DeriveIden)]
enum AuditChainHeads {
    Table,
    Seal,
    SealKeyId,
}
