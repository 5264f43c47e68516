//! Deviations and nonconformances. The quality-events work fills in their workflow; the
//! program plan already needs to know whether critical ones are open.

use sea_orm::entity::prelude::*;
use sea_orm::{ConnectionTrait, PaginatorTrait, QueryFilter};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

#[derive(
    Debug, Clone, Copy, PartialEq, Eq, EnumIter, DeriveActiveEnum, Serialize, Deserialize, ToSchema,
)]
#[sea_orm(rs_type = "String", db_type = "String(StringLen::N(16))")]
#[serde(rename_all = "snake_case")]
pub enum Criticality {
    #[sea_orm(string_value = "critical")]
    Critical,
    #[sea_orm(string_value = "major")]
    Major,
    #[sea_orm(string_value = "minor")]
    Minor,
}

#[derive(
    Debug, Clone, Copy, PartialEq, Eq, EnumIter, DeriveActiveEnum, Serialize, Deserialize, ToSchema,
)]
#[sea_orm(rs_type = "String", db_type = "String(StringLen::N(16))")]
#[serde(rename_all = "snake_case")]
pub enum DeviationStatus {
    #[sea_orm(string_value = "reported")]
    Reported,
    #[sea_orm(string_value = "triaged")]
    Triaged,
    #[sea_orm(string_value = "investigating")]
    Investigating,
    #[sea_orm(string_value = "pending_capa")]
    PendingCapa,
    #[sea_orm(string_value = "closed")]
    Closed,
    #[sea_orm(string_value = "cancelled")]
    Cancelled,
}

impl DeviationStatus {
    pub fn is_open(self) -> bool {
        !matches!(self, DeviationStatus::Closed | DeviationStatus::Cancelled)
    }
}

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "deviations")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    pub program_id: i64,
    pub milestone_id: Option<i64>,
    pub title: String,
    pub criticality: Criticality,
    pub status: DeviationStatus,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
    pub version: i32,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}

/// Critical deviations of a program that are neither closed nor cancelled: a gate's `go`
/// waits for them.
pub async fn open_critical_count<C: ConnectionTrait>(
    conn: &C,
    program_id: i64,
) -> Result<u64, DbErr> {
    Entity::find()
        .filter(Column::ProgramId.eq(program_id))
        .filter(Column::Criticality.eq(Criticality::Critical))
        .filter(Column::Status.is_not_in([DeviationStatus::Closed, DeviationStatus::Cancelled]))
        .count(conn)
        .await
}
