use sea_orm_migration::prelude::*;

/// Notifications people can switch off kind by kind: a team member's muted kinds (a JSON
/// array, empty by default: every kind is on), and the position up to which the worker
/// has turned domain events into notification emails (one row per consumer, locked
/// while a worker reads after it, so two workers never both take the same events).
#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table(TeamMembers::Table)
                    .add_column(
                        ColumnDef::new(TeamMembers::MutedNotifications)
                            .text()
                            .not_null()
                            .default("[]"),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(EventCursors::Table)
                    .col(
                        ColumnDef::new(EventCursors::Consumer)
                            .string_len(64)
                            .not_null()
                            .primary_key(),
                    )
                    .col(
                        ColumnDef::new(EventCursors::LastCursor)
                            .big_integer()
                            .not_null(),
                    )
                    .to_owned(),
            )
            .await?;
        // Start at the current head: events written before this version are not news.
        let db = manager.get_connection();
        db.execute_unprepared(
            "INSERT INTO event_cursors (consumer, last_cursor) \
             SELECT 'notifications', COALESCE(MAX(last_cursor), 0) FROM domain_event_head",
        )
        .await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(EventCursors::Table).to_owned())
            .await?;
        manager
            .alter_table(
                Table::alter()
                    .table(TeamMembers::Table)
                    .drop_column(TeamMembers::MutedNotifications)
                    .to_owned(),
            )
            .await
    }
}

#[derive(DeriveIden)]
enum TeamMembers {
    Table,
    MutedNotifications,
}

#[derive(DeriveIden)]
enum EventCursors {
    Table,
    Consumer,
    LastCursor,
}
