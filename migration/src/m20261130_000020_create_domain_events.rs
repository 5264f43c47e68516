use sea_orm_migration::{prelude::*, schema::*};

/// Domain events for other tools, with a commit-ordered cursor from a single head row.
#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(DomainEvents::Table)
                    .if_not_exists()
                    .col(big_pk_auto(DomainEvents::Id))
                    .col(big_integer_uniq(DomainEvents::Cursor))
                    .col(string_len(DomainEvents::EventType, 64))
                    .col(big_integer_null(DomainEvents::ProgramId))
                    .col(big_integer(DomainEvents::SponsorOrgId))
                    .col(big_integer_null(DomainEvents::CmoOrgId))
                    .col(string_len(DomainEvents::ResourceType, 32))
                    .col(string_len(DomainEvents::ResourceId, 64))
                    .col(text(DomainEvents::Payload))
                    .col(timestamp_with_time_zone(DomainEvents::OccurredAt))
                    .to_owned(),
            )
            .await?;
        for (name, col) in [
            ("ix_domain_events_sponsor", DomainEvents::SponsorOrgId),
            ("ix_domain_events_cmo", DomainEvents::CmoOrgId),
        ] {
            manager
                .create_index(
                    Index::create()
                        .name(name)
                        .table(DomainEvents::Table)
                        .col(col)
                        .col(DomainEvents::Cursor)
                        .to_owned(),
                )
                .await?;
        }
        manager
            .create_table(
                Table::create()
                    .table(DomainEventHead::Table)
                    .if_not_exists()
                    .col(integer(DomainEventHead::Id).primary_key())
                    .col(big_integer(DomainEventHead::LastCursor).default(0))
                    .to_owned(),
            )
            .await?;
        manager
            .get_connection()
            .execute_unprepared("INSERT INTO domain_event_head (id, last_cursor) VALUES (1, 0)")
            .await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(DomainEventHead::Table).to_owned())
            .await?;
        manager
            .drop_table(Table::drop().table(DomainEvents::Table).to_owned())
            .await
    }
}

#[derive(DeriveIden)]
enum DomainEvents {
    Table,
    Id,
    Cursor,
    EventType,
    ProgramId,
    SponsorOrgId,
    CmoOrgId,
    ResourceType,
    ResourceId,
    Payload,
    OccurredAt,
}

#[derive(DeriveIden)]
enum DomainEventHead {
    Table,
    Id,
    LastCursor,
}
