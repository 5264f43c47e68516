use sea_orm_migration::{prelude::*, schema::*};

/// The key that signs links in emails (unsubscribe now, acknowledgement later), shared by
/// the api and the worker through the database so neither needs configuration; and the
/// `List-Unsubscribe` header an outbox email carries.
#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(LinkSecrets::Table)
                    .if_not_exists()
                    .col(integer(LinkSecrets::Id).primary_key())
                    .col(string_len(LinkSecrets::SecretHex, 128))
                    .col(timestamp_with_time_zone(LinkSecrets::CreatedAt))
                    .to_owned(),
            )
            .await?;
        manager
            .alter_table(
                Table::alter()
                    .table(EmailOutbox::Table)
                    .add_column(string_len_null(EmailOutbox::ListUnsubscribe, 1000))
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table(EmailOutbox::Table)
                    .drop_column(EmailOutbox::ListUnsubscribe)
                    .to_owned(),
            )
            .await?;
        manager
            .drop_table(Table::drop().table(LinkSecrets::Table).to_owned())
            .await
    }
}

#[derive(DeriveIden)]
enum LinkSecrets {
    Table,
    Id,
    SecretHex,
    CreatedAt,
}

#[derive(DeriveIden)]
enum EmailOutbox {
    Table,
    ListUnsubscribe,
}
