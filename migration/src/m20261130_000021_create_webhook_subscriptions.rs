use sea_orm_migration::{prelude::*, schema::*};

/// Webhook subscriptions per organization (their deliveries: migration 22).
#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(WebhookSubscriptions::Table)
                    .if_not_exists()
                    .col(big_pk_auto(WebhookSubscriptions::Id))
                    .col(big_integer(WebhookSubscriptions::OrgId))
                    .col(string_len(WebhookSubscriptions::Url, 2000))
                    .col(text(WebhookSubscriptions::EventTypes))
                    .col(string_len(WebhookSubscriptions::Secret, 128))
                    .col(boolean(WebhookSubscriptions::Active).default(true))
                    .col(integer(WebhookSubscriptions::ConsecutiveFailures).default(0))
                    .col(text_null(WebhookSubscriptions::DisabledReason))
                    .col(big_integer(WebhookSubscriptions::CreatedByUserId))
                    .col(timestamp_with_time_zone(WebhookSubscriptions::CreatedAt))
                    .col(timestamp_with_time_zone(WebhookSubscriptions::UpdatedAt))
                    .col(integer(WebhookSubscriptions::Version).default(1))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("ix_webhook_subscriptions_org")
                    .table(WebhookSubscriptions::Table)
                    .col(WebhookSubscriptions::OrgId)
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(WebhookSubscriptions::Table).to_owned())
            .await
    }
}

#[derive(DeriveIden)]
enum WebhookSubscriptions {
    Table,
    Id,
    OrgId,
    Url,
    EventTypes,
    Secret,
    Active,
    ConsecutiveFailures,
    DisabledReason,
    CreatedByUserId,
    CreatedAt,
    UpdatedAt,
    Version,
}
