use sea_orm_migration::{prelude::*, schema::*};

/// Quality agreements between the sponsor and a CMO (versions, effective and expiry
/// dates, responsibilities, document reference).
#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(QualityAgreements::Table)
                    .if_not_exists()
                    .col(big_pk_auto(QualityAgreements::Id))
                    .col(big_integer(QualityAgreements::CmoOrgId))
                    .col(big_integer(QualityAgreements::SponsorOrgId))
                    .col(string_len(QualityAgreements::VersionLabel, 32))
                    .col(date(QualityAgreements::EffectiveOn))
                    .col(date(QualityAgreements::ExpiresOn))
                    .col(text(QualityAgreements::Responsibilities))
                    .col(string_len(QualityAgreements::DocumentRef, 300))
                    .col(big_integer(QualityAgreements::CreatedByUserId))
                    .col(timestamp_with_time_zone(QualityAgreements::CreatedAt))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("ix_quality_agreements_expiry")
                    .table(QualityAgreements::Table)
                    .col(QualityAgreements::ExpiresOn)
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("ix_quality_agreements_cmo")
                    .table(QualityAgreements::Table)
                    .col(QualityAgreements::CmoOrgId)
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(QualityAgreements::Table).to_owned())
            .await
    }
}

#[derive(DeriveIden)]
enum QualityAgreements {
    Table,
    Id,
    CmoOrgId,
    SponsorOrgId,
    VersionLabel,
    EffectiveOn,
    ExpiresOn,
    Responsibilities,
    DocumentRef,
    CreatedByUserId,
    CreatedAt,
}
