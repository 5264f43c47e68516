//! How quality records read on the wire when several areas show them.

use chrono::{DateTime, NaiveDate, Utc};
use entity::action_item;
use entity::capa::{self, ActionKind, CapaEvent, CapaSource, CapaStatus, EffectivenessOutcome};
use entity::change_request::{self, ChangeClass, ChangeEvent, ChangeStatus};
use entity::deviation::{
    self, Category, Criticality, DeviationEvent, DeviationStatus, RootCauseMethod,
};
use entity::extension_request::{self, ExtensionStatus};
use sea_orm::{ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, QueryOrder};
use serde::Serialize;
use utoipa::ToSchema;

use crate::error::ApiResult;
use crate::views::plan::ActionItemView;

#[derive(Debug, Clone, Serialize, ToSchema)]
#[schema(example = json!({
    "id": 5, "number": "CAPA-2027-0005", "program_id": 7, "title": "Replace and re-qualify harvest tank gaskets",
    "description": "Corrective: replace gaskets. Preventive: add gasket inspection to PM.",
    "source": "deviation", "finding_reference": null, "deviation_ids": [41], "status": "implementing",
    "effectiveness_due": null, "effectiveness_outcome": null, "plan_signature_id": 22, "closure_signature_id": null,
    "cancel_reason": null, "closed_at": null, "allowed_events": ["request_effectiveness_check", "cancel"],
    "created_at": "2027-04-03T09:00:00Z", "updated_at": "2027-04-05T09:00:00Z", "version": 3
}))]
pub struct CapaView {
    pub id: i64,
    /// The number people quote, per sponsor and year in the program's zone
    /// (`CAPA-2027-0004`); `id` stays the key. Null only for a record an older release
    /// created during a rolling upgrade, until the worker numbers it (within a minute).
    #[schema(example = "CAPA-2027-0005", pattern = r"^CAPA-[0-9]{4}-[0-9]{4,}$")]
    pub number: Option<String>,
    pub program_id: i64,
    pub title: String,
    pub description: String,
    pub source: CapaSource,
    pub finding_reference: Option<String>,
    pub deviation_ids: Vec<i64>,
    pub status: CapaStatus,
    pub effectiveness_due: Option<NaiveDate>,
    pub effectiveness_outcome: Option<EffectivenessOutcome>,
    pub plan_signature_id: Option<i64>,
    pub closure_signature_id: Option<i64>,
    pub cancel_reason: Option<String>,
    pub closed_at: Option<DateTime<Utc>>,
    pub allowed_events: Vec<CapaEvent>,
    /// Single-record answers (GET by id, a step's answer) only: the events the state
    /// offers that this caller cannot take now, each with why; `allowed_events` then
    /// holds what this caller can do now. Lists leave it out (their `allowed_events` are
    /// what the state allows).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub blocked_events: Option<Vec<crate::views::BlockedEvent>>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub version: i32,
}

pub fn capa_view(c: &capa::Model, deviation_ids: Vec<i64>) -> CapaView {
    CapaView {
        id: c.id,
        number: c.record_number.clone(),
        program_id: c.program_id,
        title: c.title.clone(),
        description: c.description.clone(),
        source: c.source,
        finding_reference: c.finding_reference.clone(),
        deviation_ids,
        status: c.status,
        effectiveness_due: c.effectiveness_due,
        effectiveness_outcome: c.effectiveness_outcome,
        plan_signature_id: c.plan_signature_id,
        closure_signature_id: c.closure_signature_id,
        cancel_reason: c.cancel_reason.clone(),
        closed_at: c.closed_at,
        blocked_events: None,
        allowed_events: capa::allowed_events(c.status),
        created_at: c.created_at,
        updated_at: c.updated_at,
        version: c.version,
    }
}

pub async fn linked_deviations<C: ConnectionTrait>(conn: &C, capa_id: i64) -> ApiResult<Vec<i64>> {
    Ok(capa::deviation_link::Entity::find()
        .filter(capa::deviation_link::Column::CapaId.eq(capa_id))
        .order_by_asc(capa::deviation_link::Column::DeviationId)
        .all(conn)
        .await?
        .into_iter()
        .map(|l| l.deviation_id)
        .collect())
}

/// A CAPA as the api shows it, with its linked deviations.
pub async fn capa<C: ConnectionTrait>(conn: &C, c: &capa::Model) -> ApiResult<CapaView> {
    Ok(capa_view(c, linked_deviations(conn, c.id).await?))
}

#[derive(Debug, Clone, Serialize, ToSchema)]
#[schema(example = json!({
    "id": 41, "number": "DEV-2027-0041", "program_id": 7, "milestone_id": 12, "batch_lot": "ACM101-DS-0007",
    "title": "Bioburden excursion in the harvest tank", "description": "Pre-filtration bioburden 35 CFU/10 mL against a limit of 10.",
    "detected_at": "2027-04-02T06:40:00Z", "reported_by_user_id": 9, "process_step": "Harvest",
    "criticality": "critical", "category": "environment", "status": "investigating",
    "triaged_at": "2027-04-02T07:05:00Z", "short_term_fix": null,
    "root_cause_method": null, "root_cause_category": null, "root_cause_narrative": null,
    "closure_signature_id": null, "closed_at": null, "cancel_reason": null,
    "allowed_events": ["await_capa", "close"], "age_days": 3,
    "created_at": "2027-04-02T06:45:00Z", "updated_at": "2027-04-02T09:00:00Z", "version": 3
}))]
pub struct DeviationView {
    pub id: i64,
    /// The number people quote, per sponsor and year in the program's zone
    /// (`DEV-2027-0004`); `id` stays the key. Null only for a record an older release
    /// created during a rolling upgrade, until the worker numbers it (within a minute).
    #[schema(example = "DEV-2027-0041", pattern = r"^DEV-[0-9]{4}-[0-9]{4,}$")]
    pub number: Option<String>,
    pub program_id: i64,
    pub milestone_id: Option<i64>,
    pub batch_lot: Option<String>,
    pub title: String,
    pub description: String,
    pub detected_at: DateTime<Utc>,
    pub reported_by_user_id: i64,
    pub process_step: Option<String>,
    pub criticality: Criticality,
    pub category: Category,
    pub status: DeviationStatus,
    pub triaged_at: Option<DateTime<Utc>>,
    pub short_term_fix: Option<String>,
    pub root_cause_method: Option<RootCauseMethod>,
    pub root_cause_category: Option<Category>,
    pub root_cause_narrative: Option<String>,
    pub closure_signature_id: Option<i64>,
    pub closed_at: Option<DateTime<Utc>>,
    pub cancel_reason: Option<String>,
    /// Events the state machine accepts now (guards such as root cause are checked on send).
    pub allowed_events: Vec<DeviationEvent>,
    /// Single-record answers (GET by id, a step's answer) only: the events the state
    /// offers that this caller cannot take now, each with why; `allowed_events` then
    /// holds what this caller can do now. Lists leave it out (their `allowed_events` are
    /// what the state allows).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub blocked_events: Option<Vec<crate::views::BlockedEvent>>,
    /// Whole days since detection (until closed).
    pub age_days: i64,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub version: i32,
}

pub fn deviation(d: &deviation::Model, now: DateTime<Utc>) -> DeviationView {
    let until = d.closed_at.unwrap_or(now);
    DeviationView {
        id: d.id,
        number: d.record_number.clone(),
        program_id: d.program_id,
        milestone_id: d.milestone_id,
        batch_lot: d.batch_lot.clone(),
        title: d.title.clone(),
        description: d.description.clone(),
        detected_at: d.detected_at,
        reported_by_user_id: d.reported_by_user_id,
        process_step: d.process_step.clone(),
        criticality: d.criticality,
        category: d.category,
        status: d.status,
        triaged_at: d.triaged_at,
        short_term_fix: d.short_term_fix.clone(),
        root_cause_method: d.root_cause_method,
        root_cause_category: d.root_cause_category,
        root_cause_narrative: d.root_cause_narrative.clone(),
        closure_signature_id: d.closure_signature_id,
        closed_at: d.closed_at,
        cancel_reason: d.cancel_reason.clone(),
        blocked_events: None,
        allowed_events: deviation::allowed_events(d.status, d.criticality),
        age_days: (until - d.detected_at).num_days().max(0),
        created_at: d.created_at,
        updated_at: d.updated_at,
        version: d.version,
    }
}

#[derive(Debug, Clone, Serialize, ToSchema)]
#[schema(example = json!({
    "id": 3, "number": "CC-2027-0003", "program_id": 7, "title": "Switch depth filter supplier", "description": "Replace the filter with supplier B's equivalent.",
    "justification": "Supplier A discontinues the product", "classification": "major",
    "impact_product_quality": "Extractables study needed", "impact_validation": "Filter validation repeat",
    "impact_regulatory": "Prior-approval supplement not required; annual report",
    "status": "impact_assessment", "decision_signature_id": null, "decision_reason": null,
    "requested_by_user_id": 5, "closed_at": null, "allowed_events": ["approve", "reject"],
    "created_at": "2027-05-02T09:00:00Z", "updated_at": "2027-05-03T09:00:00Z", "version": 2
}))]
pub struct ChangeView {
    pub id: i64,
    /// The number people quote, per sponsor and year in the program's zone
    /// (`CC-2027-0004`); `id` stays the key. Null only for a record an older release
    /// created during a rolling upgrade, until the worker numbers it (within a minute).
    #[schema(example = "CC-2027-0003", pattern = r"^CC-[0-9]{4}-[0-9]{4,}$")]
    pub number: Option<String>,
    pub program_id: i64,
    pub title: String,
    pub description: String,
    pub justification: String,
    pub classification: ChangeClass,
    pub impact_product_quality: Option<String>,
    pub impact_validation: Option<String>,
    pub impact_regulatory: Option<String>,
    pub status: ChangeStatus,
    pub decision_signature_id: Option<i64>,
    pub decision_reason: Option<String>,
    pub requested_by_user_id: i64,
    pub closed_at: Option<DateTime<Utc>>,
    pub allowed_events: Vec<ChangeEvent>,
    /// Single-record answers (GET by id, a step's answer) only: the events the state
    /// offers that this caller cannot take now, each with why; `allowed_events` then
    /// holds what this caller can do now. Lists leave it out (their `allowed_events` are
    /// what the state allows).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub blocked_events: Option<Vec<crate::views::BlockedEvent>>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub version: i32,
}

pub fn change_request(c: &change_request::Model) -> ChangeView {
    ChangeView {
        id: c.id,
        number: c.record_number.clone(),
        program_id: c.program_id,
        title: c.title.clone(),
        description: c.description.clone(),
        justification: c.justification.clone(),
        classification: c.classification,
        impact_product_quality: c.impact_product_quality.clone(),
        impact_validation: c.impact_validation.clone(),
        impact_regulatory: c.impact_regulatory.clone(),
        status: c.status,
        decision_signature_id: c.decision_signature_id,
        decision_reason: c.decision_reason.clone(),
        requested_by_user_id: c.requested_by_user_id,
        closed_at: c.closed_at,
        blocked_events: None,
        allowed_events: change_request::allowed_events(c.status),
        created_at: c.created_at,
        updated_at: c.updated_at,
        version: c.version,
    }
}

/// One CAPA with its actions.
#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({"capa": {
    "id": 5, "number": "CAPA-2027-0005", "program_id": 7, "title": "Replace and re-qualify harvest tank gaskets", "description": "…",
    "source": "deviation", "finding_reference": null, "deviation_ids": [41], "status": "open",
    "effectiveness_due": null, "effectiveness_outcome": null, "plan_signature_id": null, "closure_signature_id": null,
    "cancel_reason": null, "closed_at": null, "allowed_events": ["approve_plan", "cancel"],
    "created_at": "2027-04-03T09:00:00Z", "updated_at": "2027-04-03T09:00:00Z", "version": 1}, "actions": []}))]
pub struct CapaDetail {
    pub capa: CapaView,
    pub actions: Vec<CapaActionView>,
}

#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({"kind": "corrective", "action": {
    "id": 31, "program_id": 7, "title": "Replace gaskets", "description": null, "owner_user_id": 9,
    "due_date": "2027-04-20", "source": "capa", "source_id": 5, "status": "open", "snoozed_until": null,
    "snooze_reason": null, "overdue": false, "days_overdue": 0, "allowed_events": ["start", "complete", "cancel"],
    "completed_at": null, "created_at": "2027-04-03T09:00:00Z", "updated_at": "2027-04-03T09:00:00Z", "version": 1}}))]
pub struct CapaActionView {
    pub kind: ActionKind,
    pub action: ActionItemView,
}

pub async fn capa_detail<C: ConnectionTrait>(
    conn: &C,
    c: &capa::Model,
    today: NaiveDate,
) -> ApiResult<CapaDetail> {
    let links = capa::action_link::Entity::find()
        .filter(capa::action_link::Column::CapaId.eq(c.id))
        .order_by_asc(capa::action_link::Column::ActionItemId)
        .all(conn)
        .await?;
    let items = action_item::Entity::find()
        .filter(action_item::Column::Id.is_in(links.iter().map(|l| l.action_item_id)))
        .all(conn)
        .await?;
    let actions = links
        .iter()
        .filter_map(|l| {
            items
                .iter()
                .find(|a| a.id == l.action_item_id)
                .map(|a| CapaActionView {
                    kind: l.kind,
                    action: crate::views::plan::action_item(a, today),
                })
        })
        .collect();
    Ok(CapaDetail {
        capa: capa(conn, c).await?,
        actions,
    })
}

#[derive(Debug, Clone, Serialize, ToSchema)]
#[schema(example = json!({
    "id": 3, "action_item_id": 31, "current_due": "2027-04-20", "requested_due": "2027-05-04",
    "reason": "gasket supplier delayed", "status": "approved", "requested_by_user_id": 9,
    "decided_by_user_id": 4, "decision_reason": "supplier delay documented", "decided_at": "2027-04-18T10:00:00Z",
    "created_at": "2027-04-17T10:00:00Z"
}))]
pub struct ExtensionRequestView {
    pub id: i64,
    pub action_item_id: i64,
    pub current_due: NaiveDate,
    pub requested_due: NaiveDate,
    pub reason: String,
    pub status: ExtensionStatus,
    pub requested_by_user_id: i64,
    pub decided_by_user_id: Option<i64>,
    pub decision_reason: Option<String>,
    pub decided_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
}

impl From<&extension_request::Model> for ExtensionRequestView {
    fn from(m: &extension_request::Model) -> Self {
        Self {
            id: m.id,
            action_item_id: m.action_item_id,
            current_due: m.current_due,
            requested_due: m.requested_due,
            reason: m.reason.clone(),
            status: m.status,
            requested_by_user_id: m.requested_by_user_id,
            decided_by_user_id: m.decided_by_user_id,
            decision_reason: m.decision_reason.clone(),
            decided_at: m.decided_at,
            created_at: m.created_at,
        }
    }
}
