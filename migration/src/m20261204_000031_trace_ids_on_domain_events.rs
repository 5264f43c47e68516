use sea_orm_migration::prelude::*;

/// A domain event keeps the W3C trace id of the request that caused it, so the webhooks
/// it is delivered by continue that trace (`traceparent`). Expand-only: a nullable column
/// the previous release neither reads nor writes.
#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table(DomainEvents::Table)
                    .add_column(ColumnDef::new(DomainEvents::TraceId).string_len(32).null())
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table(DomainEvents::Table)
                    .drop_column(DomainEvents::TraceId)
                    .to_owned(),
            )
            .await
    }
}

#[derive(DeriveIden)]
enum DomainEvents {
    Table,
    TraceId,
}
