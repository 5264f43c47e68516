use sea_orm_migration::{prelude::*, schema::*};

/// Responses remembered per `Idempotency-Key`, so a retried POST is answered, not redone.
#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(IdempotencyKeys::Table)
                    .if_not_exists()
                    .col(big_pk_auto(IdempotencyKeys::Id))
                    .col(big_integer(IdempotencyKeys::UserId))
                    .col(string_len(IdempotencyKeys::Key, 200))
                    .col(string_len(IdempotencyKeys::Method, 16))
                    .col(string_len(IdempotencyKeys::Path, 1000))
                    .col(string_len(IdempotencyKeys::RequestHash, 64))
                    // 0 while the first request is still being served.
                    .col(integer(IdempotencyKeys::Status))
                    .col(string_len_null(IdempotencyKeys::ContentType, 200))
                    .col(text_null(IdempotencyKeys::Body))
                    .col(timestamp_with_time_zone(IdempotencyKeys::CreatedAt))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("ux_idempotency_keys_user_key")
                    .table(IdempotencyKeys::Table)
                    .col(IdempotencyKeys::UserId)
                    .col(IdempotencyKeys::Key)
                    .unique()
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(IdempotencyKeys::Table).to_owned())
            .await
    }
}

#[derive(DeriveIden)]
enum IdempotencyKeys {
    Table,
    Id,
    UserId,
    Key,
    Method,
    Path,
    RequestHash,
    Status,
    ContentType,
    Body,
    CreatedAt,
}
