use sea_orm_migration::prelude::*;

/// PostgreSQL: a domain event is written with a placeholder cursor (negative, from its own
/// sequence) and given its cursor in commit order after it commits (entity's
/// `domain_event::sequence`), instead of every event writer holding the head row until
/// its commit. Expand-only: the previous release sets the cursor itself (the default is
/// not used) under the same head row lock the sequencer takes, and pages with `after`
/// (0 or more), so it never reads a placeholder. SQLite keeps taking cursors in the
/// writing transaction (one writer at a time): nothing to change there.
#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        if manager.get_database_backend() != sea_orm::DbBackend::Postgres {
            return Ok(());
        }
        let db = manager.get_connection();
        db.execute_unprepared("CREATE SEQUENCE IF NOT EXISTS domain_event_unsequenced")
            .await?;
        db.execute_unprepared(
            "ALTER TABLE domain_events ALTER COLUMN cursor \
             SET DEFAULT -nextval('domain_event_unsequenced')",
        )
        .await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        if manager.get_database_backend() != sea_orm::DbBackend::Postgres {
            return Ok(());
        }
        let db = manager.get_connection();
        db.execute_unprepared("ALTER TABLE domain_events ALTER COLUMN cursor DROP DEFAULT")
            .await?;
        db.execute_unprepared("DROP SEQUENCE IF EXISTS domain_event_unsequenced")
            .await?;
        Ok(())
    }
}
