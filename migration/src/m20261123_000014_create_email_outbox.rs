use sea_orm_migration::{prelude::*, schema::*};

/// The durable email outbox and the once-per-tick job claims.
#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(EmailOutbox::Table)
                    .if_not_exists()
                    .col(big_pk_auto(EmailOutbox::Id))
                    .col(string_len_uniq(EmailOutbox::DedupeKey, 200))
                    .col(string_len(EmailOutbox::MessageId, 200))
                    .col(text(EmailOutbox::ToAddrs))
                    .col(text(EmailOutbox::CcAddrs))
                    .col(string_len(EmailOutbox::Subject, 300))
                    .col(text(EmailOutbox::TextBody))
                    .col(text(EmailOutbox::HtmlBody))
                    .col(string_len(EmailOutbox::Status, 16))
                    .col(integer(EmailOutbox::Attempts).default(0))
                    .col(timestamp_with_time_zone(EmailOutbox::NextAttemptAt))
                    .col(text_null(EmailOutbox::LastError))
                    .col(string_len_null(EmailOutbox::ClaimedBy, 64))
                    .col(timestamp_with_time_zone_null(EmailOutbox::ClaimedUntil))
                    .col(timestamp_with_time_zone_null(EmailOutbox::SentAt))
                    .col(timestamp_with_time_zone(EmailOutbox::CreatedAt))
                    .to_owned(),
            )
            .await?;
        // The dispatcher's scan: due rows by status and time.
        manager
            .create_index(
                Index::create()
                    .name("ix_email_outbox_due")
                    .table(EmailOutbox::Table)
                    .col(EmailOutbox::Status)
                    .col(EmailOutbox::NextAttemptAt)
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(JobRuns::Table)
                    .if_not_exists()
                    .col(big_pk_auto(JobRuns::Id))
                    .col(string_len(JobRuns::Job, 64))
                    .col(timestamp_with_time_zone(JobRuns::ScheduledFor))
                    .col(string_len(JobRuns::ClaimedBy, 64))
                    .col(timestamp_with_time_zone(JobRuns::ClaimedAt))
                    .col(timestamp_with_time_zone_null(JobRuns::FinishedAt))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("ux_job_runs_job_tick")
                    .table(JobRuns::Table)
                    .col(JobRuns::Job)
                    .col(JobRuns::ScheduledFor)
                    .unique()
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(JobRuns::Table).to_owned())
            .await?;
        manager
            .drop_table(Table::drop().table(EmailOutbox::Table).to_owned())
            .await
    }
}

#[derive(DeriveIden)]
enum EmailOutbox {
    Table,
    Id,
    DedupeKey,
    MessageId,
    ToAddrs,
    CcAddrs,
    Subject,
    TextBody,
    HtmlBody,
    Status,
    Attempts,
    NextAttemptAt,
    LastError,
    ClaimedBy,
    ClaimedUntil,
    SentAt,
    CreatedAt,
}

#[derive(DeriveIden)]
enum JobRuns {
    Table,
    Id,
    Job,
    ScheduledFor,
    ClaimedBy,
    ClaimedAt,
    FinishedAt,
}
