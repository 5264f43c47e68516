use sea_orm_migration::{prelude::*, schema::*};

/// CMO selection: evaluations (weighted criteria, candidates, signed decision) and the
/// scores each scorer gives (one per scorer, candidate and criterion).
#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(Evaluations::Table)
                    .if_not_exists()
                    .col(big_pk_auto(Evaluations::Id))
                    .col(big_integer(Evaluations::SponsorOrgId))
                    .col(string_len(Evaluations::Title, 200))
                    .col(big_integer_null(Evaluations::ProgramId))
                    .col(text(Evaluations::Criteria))
                    .col(text(Evaluations::Candidates))
                    .col(string_len(Evaluations::Status, 16))
                    .col(big_integer_null(Evaluations::DecisionCmoOrgId))
                    .col(text_null(Evaluations::DecisionReason))
                    .col(big_integer_null(Evaluations::DecisionSignatureId))
                    .col(timestamp_with_time_zone_null(Evaluations::DecidedAt))
                    .col(timestamp_with_time_zone(Evaluations::CreatedAt))
                    .col(timestamp_with_time_zone(Evaluations::UpdatedAt))
                    .col(integer(Evaluations::Version).default(1))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("ix_evaluations_sponsor")
                    .table(Evaluations::Table)
                    .col(Evaluations::SponsorOrgId)
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(EvaluationScores::Table)
                    .if_not_exists()
                    .col(big_pk_auto(EvaluationScores::Id))
                    .col(big_integer(EvaluationScores::EvaluationId))
                    .col(big_integer(EvaluationScores::CmoOrgId))
                    .col(string_len(EvaluationScores::Criterion, 40))
                    .col(big_integer(EvaluationScores::ScorerUserId))
                    .col(integer(EvaluationScores::Score))
                    .col(text_null(EvaluationScores::Notes))
                    .col(timestamp_with_time_zone(EvaluationScores::ScoredAt))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("ux_evaluation_scores_one_per_scorer")
                    .table(EvaluationScores::Table)
                    .col(EvaluationScores::EvaluationId)
                    .col(EvaluationScores::CmoOrgId)
                    .col(EvaluationScores::Criterion)
                    .col(EvaluationScores::ScorerUserId)
                    .unique()
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(EvaluationScores::Table).to_owned())
            .await?;
        manager
            .drop_table(Table::drop().table(Evaluations::Table).to_owned())
            .await
    }
}

#[derive(DeriveIden)]
enum Evaluations {
    Table,
    Id,
    SponsorOrgId,
    Title,
    ProgramId,
    Criteria,
    Candidates,
    Status,
    DecisionCmoOrgId,
    DecisionReason,
    DecisionSignatureId,
    DecidedAt,
    CreatedAt,
    UpdatedAt,
    Version,
}

#[derive(DeriveIden)]
enum EvaluationScores {
    Table,
    Id,
    EvaluationId,
    CmoOrgId,
    Criterion,
    ScorerUserId,
    Score,
    Notes,
    ScoredAt,
}
