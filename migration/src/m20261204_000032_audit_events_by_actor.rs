use sea_orm_migration::prelude::*;

/// The audit trail of one person (`GET /audit?actor_user_id=`, an auditor's review by
/// person) reads an index instead of the organization's whole trail. The audit trail is
/// the largest table and is written by every change: on PostgreSQL the index is built
/// with `CREATE INDEX CONCURRENTLY` after this migration commits (crate::CONCURRENT_INDEXES),
/// so writes go on meanwhile; SQLite builds it here. Expand-only.
#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        if manager.get_database_backend() == sea_orm::DbBackend::Postgres {
            return Ok(());
        }
        manager
            .create_index(
                Index::create()
                    .if_not_exists()
                    .name("ix_audit_events_actor")
                    .table(AuditEvents::Table)
                    .col(AuditEvents::OrgId)
                    .col(AuditEvents::ActorUserId)
                    .col(AuditEvents::Seq)
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_index(
                Index::drop()
                    .if_exists()
                    .name("ix_audit_events_actor")
                    .table(AuditEvents::Table)
                    .to_owned(),
            )
            .await
    }
}

#[derive(DeriveIden)]
enum AuditEvents {
    Table,
    OrgId,
    ActorUserId,
    Seq,
}
