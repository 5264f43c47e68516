//! A program: one product's work at one CMO, owned by the sponsor.

use sea_orm::entity::prelude::*;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

#[derive(
    Debug, Clone, Copy, PartialEq, Eq, EnumIter, DeriveActiveEnum, Serialize, Deserialize, ToSchema,
)]
#[sea_orm(rs_type = "String", db_type = "String(StringLen::N(32))")]
#[serde(rename_all = "snake_case")]
pub enum Modality {
    #[sea_orm(string_value = "small_molecule")]
    SmallMolecule,
    #[sea_orm(string_value = "biologic")]
    Biologic,
    #[sea_orm(string_value = "cell_gene_therapy")]
    CellGeneTherapy,
    #[sea_orm(string_value = "mrna")]
    Mrna,
    #[sea_orm(string_value = "other")]
    Other,
}

#[derive(
    Debug, Clone, Copy, PartialEq, Eq, EnumIter, DeriveActiveEnum, Serialize, Deserialize, ToSchema,
)]
#[sea_orm(rs_type = "String", db_type = "String(StringLen::N(32))")]
#[serde(rename_all = "snake_case")]
pub enum ProgramStage {
    #[sea_orm(string_value = "preclinical")]
    Preclinical,
    #[sea_orm(string_value = "clinical")]
    Clinical,
    #[sea_orm(string_value = "commercial")]
    Commercial,
}

/// Whether the CMO may manufacture for this program. Only the quality rules change it:
/// a critical or major deviation holds production; a signed quality decision releases it.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, EnumIter, DeriveActiveEnum, Serialize, Deserialize, ToSchema,
)]
#[sea_orm(rs_type = "String", db_type = "String(StringLen::N(16))")]
#[serde(rename_all = "snake_case")]
pub enum ProductionStatus {
    #[sea_orm(string_value = "running")]
    Running,
    #[sea_orm(string_value = "on_hold")]
    OnHold,
}

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "programs")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    pub sponsor_org_id: i64,
    pub cmo_org_id: i64,
    pub name: String,
    pub product_name: String,
    pub modality: Modality,
    pub stage: ProgramStage,
    pub scope: Option<String>,
    /// In minor units of `currency` (cents), to stay exact.
    pub budget_minor: Option<i64>,
    pub currency: Option<String>,
    /// IANA time zone: "today" for schedule health and email times.
    pub time_zone: String,
    pub production_status: ProductionStatus,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
    pub version: i32,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}

impl Model {
    /// The program's two sides, for access rules.
    pub fn sides(&self) -> crate::access::ProgramSides {
        crate::access::ProgramSides {
            sponsor_org_id: self.sponsor_org_id,
            cmo_org_id: self.cmo_org_id,
        }
    }

    /// Organizations whose people may be named on the program (owners, team members):
    /// the sponsor, and the CMO while the two are connected.
    pub async fn staffing_orgs(&self, conn: &impl ConnectionTrait) -> Result<Vec<i64>, DbErr> {
        let connected = crate::relationship::between(conn, self.sponsor_org_id, self.cmo_org_id)
            .await?
            .is_some_and(|r| r.is_connected());
        Ok(if connected {
            vec![self.sponsor_org_id, self.cmo_org_id]
        } else {
            vec![self.sponsor_org_id]
        })
    }

    /// The program's local date at `now` (its time zone; UTC if the zone is unknown).
    pub fn today(&self, now: chrono::DateTime<chrono::Utc>) -> chrono::NaiveDate {
        now.with_timezone(&crate::schedule::zone(&self.time_zone))
            .date_naive()
    }
}

/// Programs a member of `org_id` may see: those its org sponsors, and those it
/// manufactures for a sponsor it is connected to (a connection that ended leaves the
/// programs with their sponsor only).
pub fn visible_to(org_id: i64) -> sea_orm::Condition {
    sea_orm::Condition::any()
        .add(Column::SponsorOrgId.eq(org_id))
        .add(
            sea_orm::Condition::all()
                .add(Column::CmoOrgId.eq(org_id))
                .add(
                    Column::SponsorOrgId
                        .in_subquery(crate::relationship::connected_sponsors_of(org_id)),
                ),
        )
}
