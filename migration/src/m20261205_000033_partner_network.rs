use sea_orm_migration::{prelude::*, schema::*};

/// One CMO, many sponsors. A CMO's facts (capabilities, sites, inspections, contacts) stay
/// on its profile, kept by the CMO; what a sponsor keeps about it (connection,
/// qualification, its own notes) moves to a relationship per sponsor and CMO. Each
/// existing profile becomes a connected relationship with the sponsor that registered it,
/// its qualification as it was.
///
/// Organization names become unique per kind (a sponsor and a CMO of one group may share
/// one); an organization merged into another remembers which.
///
/// Expand-only: the profile keeps its `sponsor_org_id` and qualification columns, which
/// this release keeps in step for the registering sponsor so the previous release still
/// reads a true qualification after a rollback.
#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(CmoRelationships::Table)
                    .if_not_exists()
                    .col(big_pk_auto(CmoRelationships::Id))
                    .col(big_integer(CmoRelationships::SponsorOrgId))
                    .col(big_integer(CmoRelationships::CmoOrgId))
                    .col(string_len(CmoRelationships::Connection, 16))
                    .col(string_len(CmoRelationships::QualificationStatus, 24))
                    .col(text_null(CmoRelationships::QualificationReason))
                    .col(big_integer_null(CmoRelationships::QualificationSignatureId))
                    .col(timestamp_with_time_zone_null(
                        CmoRelationships::QualificationChangedAt,
                    ))
                    .col(text_null(CmoRelationships::SponsorNotes))
                    .col(big_integer_null(CmoRelationships::InvitedByUserId))
                    .col(timestamp_with_time_zone_null(CmoRelationships::InvitedAt))
                    .col(text_null(CmoRelationships::InvitationMessage))
                    .col(big_integer_null(CmoRelationships::RespondedByUserId))
                    .col(timestamp_with_time_zone_null(CmoRelationships::RespondedAt))
                    .col(big_integer_null(CmoRelationships::MergedFromOrgId))
                    .col(timestamp_with_time_zone(CmoRelationships::CreatedAt))
                    .col(timestamp_with_time_zone(CmoRelationships::UpdatedAt))
                    .col(integer(CmoRelationships::Version).default(1))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("ux_cmo_relationships_pair")
                    .table(CmoRelationships::Table)
                    .col(CmoRelationships::SponsorOrgId)
                    .col(CmoRelationships::CmoOrgId)
                    .unique()
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("ix_cmo_relationships_cmo")
                    .table(CmoRelationships::Table)
                    .col(CmoRelationships::CmoOrgId)
                    .to_owned(),
            )
            .await?;
        let backfill = "INSERT INTO cmo_relationships (sponsor_org_id, cmo_org_id, connection, \
             qualification_status, qualification_reason, qualification_signature_id, \
             qualification_changed_at, created_at, updated_at, version) \
             SELECT sponsor_org_id, org_id, 'connected', qualification_status, \
             qualification_reason, qualification_signature_id, qualification_changed_at, \
             created_at, updated_at, version FROM cmo_profiles";
        manager
            .get_connection()
            .execute_unprepared(backfill)
            .await?;

        manager
            .alter_table(
                Table::alter()
                    .table(Organizations::Table)
                    .add_column(
                        ColumnDef::new(Organizations::MergedIntoOrgId)
                            .big_integer()
                            .null(),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .drop_index(
                Index::drop()
                    .name("ux_organizations_name")
                    .table(Organizations::Table)
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("ux_organizations_kind_name")
                    .table(Organizations::Table)
                    .col(Organizations::Kind)
                    .col(Organizations::Name)
                    .unique()
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_index(
                Index::drop()
                    .name("ux_organizations_kind_name")
                    .table(Organizations::Table)
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("ux_organizations_name")
                    .table(Organizations::Table)
                    .col(Organizations::Name)
                    .unique()
                    .to_owned(),
            )
            .await?;
        manager
            .alter_table(
                Table::alter()
                    .table(Organizations::Table)
                    .drop_column(Organizations::MergedIntoOrgId)
                    .to_owned(),
            )
            .await?;
        manager
            .drop_table(Table::drop().table(CmoRelationships::Table).to_owned())
            .await
    }
}

#[derive(DeriveIden)]
enum CmoRelationships {
    Table,
    Id,
    SponsorOrgId,
    CmoOrgId,
    Connection,
    QualificationStatus,
    QualificationReason,
    QualificationSignatureId,
    QualificationChangedAt,
    SponsorNotes,
    InvitedByUserId,
    InvitedAt,
    InvitationMessage,
    RespondedByUserId,
    RespondedAt,
    MergedFromOrgId,
    CreatedAt,
    UpdatedAt,
    Version,
}

#[derive(DeriveIden)]
enum Organizations {
    Table,
    Kind,
    Name,
    MergedIntoOrgId,
}
