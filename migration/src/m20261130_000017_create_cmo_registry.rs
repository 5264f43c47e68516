use sea_orm_migration::{prelude::*, schema::*};

/// The CMO registry: a profile per CMO organization (capabilities, contacts,
/// qualification), its sites and their regulatory inspections. Existing CMO
/// organizations get a `prospect` profile.
#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(CmoProfiles::Table)
                    .if_not_exists()
                    .col(big_integer(CmoProfiles::OrgId).primary_key())
                    .col(big_integer(CmoProfiles::SponsorOrgId))
                    .col(text(CmoProfiles::DosageForms))
                    .col(text(CmoProfiles::Modalities))
                    .col(boolean(CmoProfiles::SterileFillFinish).default(false))
                    .col(boolean(CmoProfiles::HighPotency).default(false))
                    .col(boolean(CmoProfiles::ColdChain).default(false))
                    .col(big_integer_null(CmoProfiles::MaxBatchLiters))
                    .col(text(CmoProfiles::Contacts))
                    .col(string_len(CmoProfiles::QualificationStatus, 24))
                    .col(text_null(CmoProfiles::QualificationReason))
                    .col(big_integer_null(CmoProfiles::QualificationSignatureId))
                    .col(timestamp_with_time_zone_null(
                        CmoProfiles::QualificationChangedAt,
                    ))
                    .col(timestamp_with_time_zone(CmoProfiles::CreatedAt))
                    .col(timestamp_with_time_zone(CmoProfiles::UpdatedAt))
                    .col(integer(CmoProfiles::Version).default(1))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("ix_cmo_profiles_sponsor")
                    .table(CmoProfiles::Table)
                    .col(CmoProfiles::SponsorOrgId)
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(CmoSites::Table)
                    .if_not_exists()
                    .col(big_pk_auto(CmoSites::Id))
                    .col(big_integer(CmoSites::CmoOrgId))
                    .col(string_len(CmoSites::Name, 200))
                    .col(string_len(CmoSites::Country, 2))
                    .col(string_len(CmoSites::Region, 24))
                    .col(timestamp_with_time_zone(CmoSites::CreatedAt))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("ix_cmo_sites_cmo")
                    .table(CmoSites::Table)
                    .col(CmoSites::CmoOrgId)
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(Inspections::Table)
                    .if_not_exists()
                    .col(big_pk_auto(Inspections::Id))
                    .col(big_integer(Inspections::CmoOrgId))
                    .col(big_integer(Inspections::SiteId))
                    .col(string_len(Inspections::Agency, 8))
                    .col(date(Inspections::InspectedOn))
                    .col(string_len(Inspections::Outcome, 16))
                    .col(integer(Inspections::CriticalFindings).default(0))
                    .col(text_null(Inspections::Notes))
                    .col(big_integer(Inspections::RecordedByUserId))
                    .col(timestamp_with_time_zone(Inspections::CreatedAt))
                    .foreign_key(
                        ForeignKey::create()
                            .from(Inspections::Table, Inspections::SiteId)
                            .to(CmoSites::Table, CmoSites::Id),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("ix_inspections_cmo_date")
                    .table(Inspections::Table)
                    .col(Inspections::CmoOrgId)
                    .col(Inspections::InspectedOn)
                    .to_owned(),
            )
            .await?;
        // Scorecards read a CMO's escalations by program and time.
        manager
            .create_index(
                Index::create()
                    .name("ix_escalations_program_opened")
                    .table(Escalations::Table)
                    .col(Escalations::ProgramId)
                    .col(Escalations::OpenedAt)
                    .to_owned(),
            )
            .await?;
        // CMOs registered before the registry existed start as prospects.
        let backfill = "INSERT INTO cmo_profiles (org_id, sponsor_org_id, dosage_forms, modalities, \
             sterile_fill_finish, high_potency, cold_chain, contacts, qualification_status, \
             created_at, updated_at, version) \
             SELECT id, parent_org_id, '[]', '[]', FALSE, FALSE, FALSE, '[]', 'prospect', \
             created_at, updated_at, 1 FROM organizations \
             WHERE kind = 'cmo' AND parent_org_id IS NOT NULL";
        manager
            .get_connection()
            .execute_unprepared(backfill)
            .await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for table in [
            Inspections::Table.into_iden(),
            CmoSites::Table.into_iden(),
            CmoProfiles::Table.into_iden(),
        ] {
            manager
                .drop_table(Table::drop().table(table).to_owned())
                .await?;
        }
        Ok(())
    }
}

#[derive(DeriveIden)]
enum CmoProfiles {
    Table,
    OrgId,
    SponsorOrgId,
    DosageForms,
    Modalities,
    SterileFillFinish,
    HighPotency,
    ColdChain,
    MaxBatchLiters,
    Contacts,
    QualificationStatus,
    QualificationReason,
    QualificationSignatureId,
    QualificationChangedAt,
    CreatedAt,
    UpdatedAt,
    Version,
}

#[derive(DeriveIden)]
enum Escalations {
    Table,
    ProgramId,
    OpenedAt,
}

#[derive(DeriveIden)]
enum CmoSites {
    Table,
    Id,
    CmoOrgId,
    Name,
    Country,
    Region,
    CreatedAt,
}

#[derive(DeriveIden)]
enum Inspections {
    Table,
    Id,
    CmoOrgId,
    SiteId,
    Agency,
    InspectedOn,
    Outcome,
    CriticalFindings,
    Notes,
    RecordedByUserId,
    CreatedAt,
}
