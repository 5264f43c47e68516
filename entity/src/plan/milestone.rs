//! A milestone of a program plan, with its go/no-go gate.

use sea_orm::entity::prelude::*;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    PartialOrd,
    Ord,
    EnumIter,
    DeriveActiveEnum,
    Serialize,
    Deserialize,
    ToSchema,
)]
#[sea_orm(rs_type = "String", db_type = "String(StringLen::N(16))")]
#[serde(rename_all = "snake_case")]
pub enum MilestoneStatus {
    #[sea_orm(string_value = "planned")]
    Planned,
    #[sea_orm(string_value = "in_progress")]
    InProgress,
    #[sea_orm(string_value = "gate_review")]
    GateReview,
    #[sea_orm(string_value = "completed")]
    Completed,
    #[sea_orm(string_value = "on_hold")]
    OnHold,
    #[sea_orm(string_value = "cancelled")]
    Cancelled,
}

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "milestones")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    pub program_id: i64,
    pub name: String,
    pub phase: String,
    pub owner_user_id: Option<i64>,
    pub status: MilestoneStatus,
    /// The state a held milestone resumes to.
    pub held_from: Option<MilestoneStatus>,
    pub baseline_start: Date,
    pub baseline_end: Date,
    pub forecast_start: Date,
    pub forecast_end: Date,
    pub actual_start: Option<Date>,
    pub actual_end: Option<Date>,
    /// Order within the plan.
    pub position: i32,
    /// Counts submissions for gate review; a gate decision belongs to one round.
    pub gate_round: i32,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
    pub version: i32,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
