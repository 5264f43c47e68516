//! Go/no-go gates: checklist items, decisions, and the rules a decision must meet.

use chrono::{DateTime, Utc};
use sea_orm::entity::prelude::*;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

#[derive(
    Debug, Clone, Copy, PartialEq, Eq, EnumIter, DeriveActiveEnum, Serialize, Deserialize, ToSchema,
)]
#[sea_orm(rs_type = "String", db_type = "String(StringLen::N(48))")]
#[serde(rename_all = "snake_case")]
pub enum CheckType {
    #[sea_orm(string_value = "facility_suitability_assessment")]
    FacilitySuitabilityAssessment,
    #[sea_orm(string_value = "batch_record_readiness")]
    BatchRecordReadiness,
    #[sea_orm(string_value = "sops")]
    Sops,
    #[sea_orm(string_value = "batch_record_review")]
    BatchRecordReview,
    #[sea_orm(string_value = "nonconformance_capa_investigation_support")]
    NonconformanceCapaInvestigationSupport,
    #[sea_orm(string_value = "change_management")]
    ChangeManagement,
    #[sea_orm(string_value = "product_related_deviations")]
    ProductRelatedDeviations,
    #[sea_orm(string_value = "system_reliability")]
    SystemReliability,
    #[sea_orm(string_value = "manufacturing_training_verification")]
    ManufacturingTrainingVerification,
    #[sea_orm(string_value = "system_troubleshooting")]
    SystemTroubleshooting,
    #[sea_orm(string_value = "other")]
    Other,
}

#[derive(
    Debug, Clone, Copy, PartialEq, Eq, EnumIter, DeriveActiveEnum, Serialize, Deserialize, ToSchema,
)]
#[sea_orm(rs_type = "String", db_type = "String(StringLen::N(16))")]
#[serde(rename_all = "snake_case")]
pub enum CheckResult {
    #[sea_orm(string_value = "pending")]
    Pending,
    #[sea_orm(string_value = "pass")]
    Pass,
    #[sea_orm(string_value = "fail")]
    Fail,
    #[sea_orm(string_value = "n_a")]
    NA,
}

/// How far a gate's checklist is: the counts its pages and the digest show.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Readiness {
    pub checks: usize,
    /// Passed or not applicable.
    pub passed: usize,
    pub failed: usize,
    pub pending: usize,
}

impl Readiness {
    pub fn of<'a>(items: impl IntoIterator<Item = &'a item::Model>) -> Self {
        let mut r = Readiness::default();
        for i in items {
            r.checks += 1;
            match i.result {
                CheckResult::Pass | CheckResult::NA => r.passed += 1,
                CheckResult::Fail => r.failed += 1,
                CheckResult::Pending => r.pending += 1,
            }
        }
        r
    }
}

#[derive(
    Debug, Clone, Copy, PartialEq, Eq, EnumIter, DeriveActiveEnum, Serialize, Deserialize, ToSchema,
)]
#[sea_orm(rs_type = "String", db_type = "String(StringLen::N(8))")]
#[serde(rename_all = "snake_case")]
pub enum Decision {
    #[sea_orm(string_value = "go")]
    Go,
    #[sea_orm(string_value = "no_go")]
    NoGo,
}

/// Why a gate decision is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GateError {
    #[error("the milestone is not in gate review")]
    NotInReview,
    #[error("mandatory checklist items are not decided: {}", .0.join(", "))]
    UndecidedItems(Vec<String>),
    #[error("mandatory checklist items failed: {}", .0.join(", "))]
    FailedMandatory(Vec<String>),
    #[error("critical deviations on the program are still open: {}", .0.join(", "))]
    OpenCriticalDeviations(Vec<String>),
}

/// One checklist item as the rules see it.
#[derive(Debug, Clone)]
pub struct ItemState<'a> {
    pub title: &'a str,
    pub mandatory: bool,
    pub result: CheckResult,
}

/// May `decision` be taken now? Every mandatory item must be decided; a `go` also needs
/// no failed mandatory item and no open critical deviation on the program (named in the
/// refusal, e.g. `DEV-2026-0041 Bioburden excursion`).
pub fn check_decision(
    decision: Decision,
    in_review: bool,
    items: &[ItemState<'_>],
    open_critical_deviations: &[String],
) -> Result<(), GateError> {
    if !in_review {
        return Err(GateError::NotInReview);
    }
    let undecided: Vec<String> = items
        .iter()
        .filter(|i| i.mandatory && i.result == CheckResult::Pending)
        .map(|i| i.title.to_string())
        .collect();
    if !undecided.is_empty() {
        return Err(GateError::UndecidedItems(undecided));
    }
    if decision == Decision::Go {
        let failed: Vec<String> = items
            .iter()
            .filter(|i| i.mandatory && i.result == CheckResult::Fail)
            .map(|i| i.title.to_string())
            .collect();
        if !failed.is_empty() {
            return Err(GateError::FailedMandatory(failed));
        }
        if !open_critical_deviations.is_empty() {
            return Err(GateError::OpenCriticalDeviations(
                open_critical_deviations.to_vec(),
            ));
        }
    }
    Ok(())
}

pub mod item {
    use super::{CheckResult, CheckType};
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "gate_items")]
    pub struct Model {
        #[sea_orm(primary_key)]
        pub id: i64,
        pub milestone_id: i64,
        pub check_type: CheckType,
        pub title: String,
        pub mandatory: bool,
        pub result: CheckResult,
        pub evidence: Option<String>,
        pub decided_by_user_id: Option<i64>,
        pub decided_at: Option<DateTimeUtc>,
        pub position: i32,
        pub created_at: DateTimeUtc,
        pub updated_at: DateTimeUtc,
        pub version: i32,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

pub mod decision {
    use super::Decision;
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "gate_decisions")]
    pub struct Model {
        #[sea_orm(primary_key)]
        pub id: i64,
        pub milestone_id: i64,
        /// The milestone's review round this decision closes.
        pub gate_round: i32,
        pub decision: Decision,
        pub notes: Option<String>,
        pub signature_id: i64,
        pub decided_by_user_id: i64,
        pub decided_at: DateTimeUtc,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

#[derive(Debug, Clone, Serialize, ToSchema)]
#[schema(example = json!({
    "id": 88, "milestone_id": 12, "check_type": "batch_record_readiness",
    "title": "Master batch record approved by both QA units", "mandatory": true,
    "result": "pass", "evidence": "MBR-0042 rev 3, signed 2027-04-10",
    "decided_by_user_id": 5, "decided_at": "2027-04-10T14:00:00Z", "position": 1, "version": 2,
    "linked_open_count": null
}))]
pub struct GateItemView {
    pub id: i64,
    pub milestone_id: i64,
    pub check_type: CheckType,
    pub title: String,
    pub mandatory: bool,
    pub result: CheckResult,
    /// Note or link to the evidence.
    pub evidence: Option<String>,
    pub decided_by_user_id: Option<i64>,
    pub decided_at: Option<DateTime<Utc>>,
    pub position: i32,
    pub version: i32,
    /// For deviation- and CAPA-related checks: how many are open on the program now.
    pub linked_open_count: Option<u64>,
}

impl From<&item::Model> for GateItemView {
    fn from(m: &item::Model) -> Self {
        Self {
            id: m.id,
            milestone_id: m.milestone_id,
            check_type: m.check_type,
            title: m.title.clone(),
            mandatory: m.mandatory,
            result: m.result,
            evidence: m.evidence.clone(),
            decided_by_user_id: m.decided_by_user_id,
            decided_at: m.decided_at,
            position: m.position,
            version: m.version,
            linked_open_count: None,
        }
    }
}

#[derive(Debug, Clone, Serialize, ToSchema)]
#[schema(example = json!({
    "id": 4, "milestone_id": 12, "gate_round": 1, "decision": "go", "notes": "all mandatory checks passed",
    "signature_id": 19, "decided_by_user_id": 5, "decided_at": "2027-04-12T09:30:00Z"
}))]
pub struct GateDecisionView {
    pub id: i64,
    pub milestone_id: i64,
    /// The review round (submission for gate review) this decision closed.
    pub gate_round: i32,
    pub decision: Decision,
    pub notes: Option<String>,
    pub signature_id: i64,
    pub decided_by_user_id: i64,
    pub decided_at: DateTime<Utc>,
}

impl From<&decision::Model> for GateDecisionView {
    fn from(m: &decision::Model) -> Self {
        Self {
            id: m.id,
            milestone_id: m.milestone_id,
            gate_round: m.gate_round,
            decision: m.decision,
            notes: m.notes.clone(),
            signature_id: m.signature_id,
            decided_by_user_id: m.decided_by_user_id,
            decided_at: m.decided_at,
        }
    }
}

/// What a gate decision's signature covers: the decision and the checklist it was taken
/// on (each item's check, result and evidence).
pub const SIGNED_FIELDS: &[&str] = &[
    "id",
    "milestone_id",
    "gate_round",
    "decision",
    "notes",
    "decided_by_user_id",
    "decided_at",
    "checklist",
];

/// A gate decision's signed fields. `items` is the milestone's checklist while the
/// decision's round is the current one; `None` once a later round reworks it (the
/// signature keeps the checklist as decided, and it is no longer compared).
pub fn signed_content(
    decision: &decision::Model,
    items: Option<&[item::Model]>,
) -> serde_json::Value {
    let mut content = serde_json::json!({
        "id": decision.id,
        "milestone_id": decision.milestone_id,
        "gate_round": decision.gate_round,
        "decision": decision.decision,
        "notes": decision.notes,
        "decided_by_user_id": decision.decided_by_user_id,
        "decided_at": decision.decided_at,
    });
    if let Some(items) = items {
        content["checklist"] = items
            .iter()
            .map(|i| {
                serde_json::json!({
                    "id": i.id,
                    "check_type": i.check_type,
                    "title": i.title,
                    "mandatory": i.mandatory,
                    "result": i.result,
                    "evidence": i.evidence,
                })
            })
            .collect();
    }
    content
}

/// Days a no-go's follow-up actions get.
pub const NO_GO_ACTION_DAYS: i64 = 7;

/// A no-go turns every failed checklist item into an action item for the milestone's
/// owner (or, without one, the decider), due in [`NO_GO_ACTION_DAYS`].
pub fn no_go_actions(
    program_id: i64,
    owner_user_id: i64,
    today: chrono::NaiveDate,
    items: &[item::Model],
) -> Vec<crate::action_item::NewAction> {
    items
        .iter()
        .filter(|i| i.result == CheckResult::Fail)
        .map(|i| crate::action_item::NewAction {
            program_id,
            title: format!("Resolve gate item: {}", i.title)
                .chars()
                .take(200)
                .collect(),
            description: i.evidence.clone(),
            owner_user_id,
            due_date: today + chrono::TimeDelta::days(NO_GO_ACTION_DAYS),
            source: crate::action_item::ActionSource::GateItem,
            source_id: Some(i.id),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn item(title: &str, mandatory: bool, result: CheckResult) -> ItemState<'_> {
        ItemState {
            title,
            mandatory,
            result,
        }
    }

    #[test]
    fn every_mandatory_item_must_be_decided() {
        let items = [
            item("SOPs", true, CheckResult::Pending),
            item("Extra", false, CheckResult::Pending),
        ];
        assert_eq!(
            check_decision(Decision::NoGo, true, &items, &[]),
            Err(GateError::UndecidedItems(vec!["SOPs".into()]))
        );
    }

    #[test]
    fn go_needs_no_failed_mandatory_item_and_no_open_critical_deviation() {
        let items = [
            item("SOPs", true, CheckResult::Fail),
            item("Extra", false, CheckResult::Fail),
        ];
        assert_eq!(
            check_decision(Decision::Go, true, &items, &[]),
            Err(GateError::FailedMandatory(vec!["SOPs".into()]))
        );
        assert_eq!(check_decision(Decision::NoGo, true, &items, &[]), Ok(()));
        let passed = [
            item("SOPs", true, CheckResult::Pass),
            item("Other", true, CheckResult::NA),
        ];
        let open = vec!["DEV-2026-0041 Bioburden excursion".to_string()];
        assert_eq!(
            check_decision(Decision::Go, true, &passed, &open),
            Err(GateError::OpenCriticalDeviations(open.clone()))
        );
        assert_eq!(check_decision(Decision::NoGo, true, &passed, &open), Ok(()));
        assert_eq!(check_decision(Decision::Go, true, &passed, &[]), Ok(()));
    }

    #[test]
    fn decisions_are_taken_in_gate_review_only() {
        assert_eq!(
            check_decision(Decision::Go, false, &[], &[]),
            Err(GateError::NotInReview)
        );
    }
}
