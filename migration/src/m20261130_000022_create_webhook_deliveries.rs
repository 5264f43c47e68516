use sea_orm_migration::{prelude::*, schema::*};

/// Webhook deliveries (one per subscription and event, retried until delivered or
/// failed), their attempt log, when a subscription was disabled, and which due date an
/// action item's `action_item.overdue` event was emitted for.
#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(WebhookDeliveries::Table)
                    .if_not_exists()
                    .col(big_pk_auto(WebhookDeliveries::Id))
                    .col(big_integer(WebhookDeliveries::SubscriptionId))
                    .col(big_integer(WebhookDeliveries::OrgId))
                    .col(big_integer(WebhookDeliveries::EventId))
                    .col(big_integer(WebhookDeliveries::EventCursor))
                    .col(string_len(WebhookDeliveries::EventType, 64))
                    .col(string_len(WebhookDeliveries::Status, 16))
                    .col(integer(WebhookDeliveries::Attempts).default(0))
                    .col(timestamp_with_time_zone(WebhookDeliveries::NextAttemptAt))
                    .col(string_len_null(WebhookDeliveries::ClaimedBy, 64))
                    .col(timestamp_with_time_zone_null(
                        WebhookDeliveries::ClaimedUntil,
                    ))
                    .col(integer_null(WebhookDeliveries::LastStatusCode))
                    .col(text_null(WebhookDeliveries::LastError))
                    .col(timestamp_with_time_zone_null(
                        WebhookDeliveries::DeliveredAt,
                    ))
                    .col(timestamp_with_time_zone(WebhookDeliveries::CreatedAt))
                    .col(timestamp_with_time_zone(WebhookDeliveries::UpdatedAt))
                    .to_owned(),
            )
            .await?;
        let indexes = [
            (
                "ux_webhook_deliveries_subscription_event",
                vec![
                    WebhookDeliveries::SubscriptionId,
                    WebhookDeliveries::EventId,
                ],
                true,
            ),
            (
                "ix_webhook_deliveries_due",
                vec![WebhookDeliveries::Status, WebhookDeliveries::NextAttemptAt],
                false,
            ),
            (
                "ix_webhook_deliveries_subscription",
                vec![WebhookDeliveries::SubscriptionId, WebhookDeliveries::Id],
                false,
            ),
        ];
        for (name, cols, unique) in indexes {
            let mut index = Index::create();
            index.name(name).table(WebhookDeliveries::Table);
            for c in cols {
                index.col(c);
            }
            if unique {
                index.unique();
            }
            manager.create_index(index.to_owned()).await?;
        }
        manager
            .create_table(
                Table::create()
                    .table(WebhookAttempts::Table)
                    .if_not_exists()
                    .col(big_pk_auto(WebhookAttempts::Id))
                    .col(big_integer(WebhookAttempts::DeliveryId))
                    .col(integer(WebhookAttempts::Attempt))
                    .col(string_len(WebhookAttempts::WorkerId, 64))
                    .col(timestamp_with_time_zone(WebhookAttempts::StartedAt))
                    .col(integer(WebhookAttempts::DurationMs))
                    .col(integer_null(WebhookAttempts::StatusCode))
                    .col(text_null(WebhookAttempts::Error))
                    .col(text_null(WebhookAttempts::ResponseExcerpt))
                    .col(string_len(WebhookAttempts::Outcome, 16))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("ix_webhook_attempts_delivery")
                    .table(WebhookAttempts::Table)
                    .col(WebhookAttempts::DeliveryId)
                    .col(WebhookAttempts::Id)
                    .to_owned(),
            )
            .await?;
        manager
            .alter_table(
                Table::alter()
                    .table(WebhookSubscriptions::Table)
                    .add_column(timestamp_with_time_zone_null(
                        WebhookSubscriptions::DisabledAt,
                    ))
                    .to_owned(),
            )
            .await?;
        manager
            .alter_table(
                Table::alter()
                    .table(ActionItems::Table)
                    .add_column(date_null(ActionItems::OverdueEventFor))
                    .to_owned(),
            )
            .await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table(ActionItems::Table)
                    .drop_column(ActionItems::OverdueEventFor)
                    .to_owned(),
            )
            .await?;
        manager
            .alter_table(
                Table::alter()
                    .table(WebhookSubscriptions::Table)
                    .drop_column(WebhookSubscriptions::DisabledAt)
                    .to_owned(),
            )
            .await?;
        manager
            .drop_table(Table::drop().table(WebhookAttempts::Table).to_owned())
            .await?;
        manager
            .drop_table(Table::drop().table(WebhookDeliveries::Table).to_owned())
            .await
    }
}

#[derive(DeriveIden)]
enum WebhookDeliveries {
    Table,
    Id,
    SubscriptionId,
    OrgId,
    EventId,
    EventCursor,
    EventType,
    Status,
    Attempts,
    NextAttemptAt,
    ClaimedBy,
    ClaimedUntil,
    LastStatusCode,
    LastError,
    DeliveredAt,
    CreatedAt,
    UpdatedAt,
}

#[derive(DeriveIden)]
enum WebhookAttempts {
    Table,
    Id,
    DeliveryId,
    Attempt,
    WorkerId,
    StartedAt,
    DurationMs,
    StatusCode,
    Error,
    ResponseExcerpt,
    Outcome,
}

#[derive(DeriveIden)]
enum WebhookSubscriptions {
    Table,
    DisabledAt,
}

#[derive(DeriveIden)]
enum ActionItems {
    Table,
    OverdueEventFor,
}
