//! Domain events for other tools (issue: integrations): one row per meaningful change,
//! written in the transaction of the change, with a cursor given once it is visible and
//! larger than every cursor visible then, so a reader paging with `after=` never skips an
//! event that commits later. How an event gets its cursor without every writer waiting on
//! one row: [`sequence`].

use chrono::{DateTime, Utc};
use sea_orm::entity::prelude::*;
use sea_orm::sea_query::{Expr, ExprTrait};
use sea_orm::{ActiveValue::NotSet, ActiveValue::Set, ConnectionTrait};

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "domain_events")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    #[sea_orm(unique)]
    pub cursor: i64,
    pub event_type: String,
    pub program_id: Option<i64>,
    /// Who may read it: the program's sponsor and CMO.
    pub sponsor_org_id: i64,
    pub cmo_org_id: Option<i64>,
    pub resource_type: String,
    pub resource_id: String,
    /// JSON object.
    pub payload: String,
    pub occurred_at: DateTimeUtc,
    /// The W3C trace id of the request that caused the event, when one did.
    pub trace_id: Option<String>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}

pub mod head {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "domain_event_head")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub id: i32,
        pub last_cursor: i64,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

/// The event types (the `type` of [`Event`]).
pub const EVENT_TYPES: [&str; 21] = [
    "deviation.reported",
    "deviation.triaged",
    "deviation.closed",
    "deviation.transitioned",
    "production.held",
    "production.released",
    "escalation.opened",
    "escalation.acknowledged",
    "escalation.advanced",
    "escalation.resolved",
    "milestone.transitioned",
    "gate.decided",
    "capa.transitioned",
    "action_item.overdue",
    "action_item.assigned",
    "change_request.transitioned",
    "cmo.qualification_changed",
    "cmo.connection_changed",
    "cmo.merged",
    "evaluation.decided",
    "audit.checkpoint",
];

use crate::action_item::ActionSource;
use crate::capa::{CapaEvent, CapaStatus};
use crate::change_request::{ChangeClass, ChangeEvent, ChangeStatus};
use crate::cmo::{QualificationEvent, QualificationStatus};
use crate::deviation::{Category, Criticality, DeviationEvent, DeviationStatus};
use crate::escalation::EscalationStatus;
use crate::gate::Decision;
use crate::milestone::MilestoneStatus;
use crate::milestone_rules::MilestoneEvent;
use crate::program::ProductionStatus;
use crate::relationship::{ConnectionEvent, ConnectionStatus};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// `deviation.reported`: a deviation was reported (critical and major ones also hold
/// production and open an escalation: see those events).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[schema(example = json!({"deviation_id": 41, "title": "Bioburden excursion", "criticality": "critical",
    "category": "equipment", "detected_at": "2026-11-28T01:55:00Z"}))]
pub struct DeviationReported {
    pub deviation_id: i64,
    pub title: String,
    pub criticality: Criticality,
    pub category: Category,
    pub detected_at: DateTime<Utc>,
}

/// `deviation.triaged`, `deviation.closed`, `deviation.transitioned`: a deviation moved
/// in its workflow.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[schema(example = json!({"deviation_id": 41, "event": "triage", "from": "reported", "to": "triaged",
    "criticality": "critical", "capa_id": null}))]
pub struct DeviationChanged {
    pub deviation_id: i64,
    pub event: DeviationEvent,
    pub from: DeviationStatus,
    pub to: DeviationStatus,
    pub criticality: Criticality,
    /// The CAPA whose effective closure closed it (closure by CAPA only).
    #[serde(default)]
    pub capa_id: Option<i64>,
}

/// `production.held`, `production.released`: the program's production status changed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[schema(example = json!({"program_id": 3, "production_status": "on_hold",
    "reason": "critical deviation DEV-2026-0041 reported"}))]
pub struct ProductionChanged {
    pub program_id: i64,
    pub production_status: ProductionStatus,
    pub reason: String,
}

/// `escalation.opened`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[schema(example = json!({"escalation_id": 12, "title": "Critical deviation: Bioburden excursion",
    "criticality": "critical", "source_type": "deviation", "source_id": 41}))]
pub struct EscalationOpened {
    pub escalation_id: i64,
    pub title: String,
    pub criticality: Option<String>,
    /// `deviation` or `manual`.
    pub source_type: String,
    pub source_id: Option<i64>,
}

/// `escalation.acknowledged`: someone took it; paging stopped.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[schema(example = json!({"escalation_id": 12, "by_user_id": 7, "channel": "link", "tier": 0}))]
pub struct EscalationAcknowledged {
    pub escalation_id: i64,
    pub by_user_id: i64,
    /// `api` or `link`.
    pub channel: String,
    /// 0-based tier paged last.
    pub tier: Option<i32>,
}

/// `escalation.advanced`: a later tier (or a repeat of the last) was paged.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[schema(example = json!({"escalation_id": 12, "tier": 1, "tier_name": "Program leads", "repeat": false,
    "recipients": 3}))]
pub struct EscalationAdvanced {
    pub escalation_id: i64,
    /// 0-based.
    pub tier: i32,
    pub tier_name: String,
    pub repeat: bool,
    /// How many people were paged.
    pub recipients: usize,
}

/// `escalation.resolved`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[schema(example = json!({"escalation_id": 12, "previous_status": "acknowledged"}))]
pub struct EscalationResolved {
    pub escalation_id: i64,
    pub previous_status: EscalationStatus,
}

/// `milestone.transitioned`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[schema(example = json!({"milestone_id": 8, "name": "Engineering run", "event": "complete",
    "from": "in_progress", "to": "completed"}))]
pub struct MilestoneTransitioned {
    pub milestone_id: i64,
    pub name: String,
    pub event: MilestoneEvent,
    pub from: MilestoneStatus,
    pub to: MilestoneStatus,
}

/// `gate.decided`: a signed go/no-go on a gate milestone.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[schema(example = json!({"milestone_id": 9, "name": "GMP readiness gate", "decision": "go",
    "decision_id": 4, "notes": "All checks passed"}))]
pub struct GateDecided {
    pub milestone_id: i64,
    pub name: String,
    pub decision: Decision,
    pub decision_id: i64,
    pub notes: Option<String>,
}

/// `capa.transitioned`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[schema(example = json!({"capa_id": 5, "event": "approve_plan", "from": "open", "to": "plan_approved"}))]
pub struct CapaTransitioned {
    pub capa_id: i64,
    pub event: CapaEvent,
    pub from: CapaStatus,
    pub to: CapaStatus,
}

/// `action_item.overdue`: an open item passed its due date in the program's time zone
/// (once per due date).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[schema(example = json!({"action_item_id": 77, "title": "Send the cleaning validation protocol",
    "owner_user_id": 7, "due_date": "2026-11-27", "days_overdue": 3, "source": "gate_item", "source_id": 31}))]
pub struct ActionItemOverdue {
    pub action_item_id: i64,
    pub title: String,
    pub owner_user_id: i64,
    pub due_date: chrono::NaiveDate,
    pub days_overdue: i64,
    pub source: ActionSource,
    pub source_id: Option<i64>,
}

/// `action_item.assigned`: an action item (also a CAPA action or a change task: see its
/// `source`) was given to an owner, when created or handed to someone else.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[schema(example = json!({"action_item_id": 78, "title": "Replace the filter housing gasket",
    "owner_user_id": 9, "assigned_by_user_id": 7, "due_date": "2026-12-11", "source": "capa", "source_id": 12}))]
pub struct ActionItemAssigned {
    pub action_item_id: i64,
    pub title: String,
    pub owner_user_id: i64,
    /// Who gave it (`null` when the system did).
    pub assigned_by_user_id: Option<i64>,
    pub due_date: chrono::NaiveDate,
    pub source: ActionSource,
    pub source_id: Option<i64>,
}

/// `change_request.transitioned`: a change moved in change control (approve and reject
/// are e-signed decisions).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[schema(example = json!({"change_request_id": 6, "title": "Second supplier for the filter",
    "classification": "major", "event": "approve", "from": "impact_assessment", "to": "approved"}))]
pub struct ChangeRequestTransitioned {
    pub change_request_id: i64,
    pub title: String,
    pub classification: ChangeClass,
    pub event: ChangeEvent,
    pub from: ChangeStatus,
    pub to: ChangeStatus,
}

/// `cmo.qualification_changed`: the sponsor's qualification of a CMO changed (approval
/// and disqualification are e-signed). Read by the sponsor only.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[schema(example = json!({"cmo_org_id": 2, "event": "approve", "from": "qualified", "to": "approved",
    "reason": null}))]
pub struct CmoQualificationChanged {
    pub cmo_org_id: i64,
    pub event: QualificationEvent,
    pub from: QualificationStatus,
    pub to: QualificationStatus,
    pub reason: Option<String>,
}

/// `cmo.connection_changed`: a sponsor invited a CMO (again), the CMO's admin accepted or
/// declined, or the sponsor withdrew. Read by that sponsor and that CMO only: no other
/// sponsor learns of it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[schema(example = json!({"connection_id": 5, "sponsor_org_id": 3, "cmo_org_id": 2, "event": "accept",
    "from": "invited", "to": "connected"}))]
pub struct CmoConnectionChanged {
    pub connection_id: i64,
    pub sponsor_org_id: i64,
    pub cmo_org_id: i64,
    pub event: ConnectionEvent,
    /// `null` for a first invitation.
    pub from: Option<ConnectionStatus>,
    pub to: ConnectionStatus,
}

/// `cmo.merged`: a CMO registered twice was merged into the one that stays. Everything of
/// the absorbed organization (programs, relationships, agreements, sites, people) now
/// names `survivor_org_id`: an integration keyed by CMO id re-keys
/// `absorbed_org_id`. Read by each sponsor that worked with the absorbed organization
/// (only its own copy) and by the surviving CMO.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[schema(example = json!({"merge_id": 4, "absorbed_org_id": 7, "absorbed_name": "Lonza Visp (Acme)",
    "survivor_org_id": 2, "survivor_name": "Lonza Visp"}))]
pub struct CmoMerged {
    pub merge_id: i64,
    pub absorbed_org_id: i64,
    pub absorbed_name: String,
    pub survivor_org_id: i64,
    pub survivor_name: String,
}

/// `evaluation.decided`: a CMO selection was decided (e-signed). Read by the sponsor only:
/// candidates do not learn of each other.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[schema(example = json!({"evaluation_id": 3, "title": "Fill-finish CMO for Mab-1", "program_id": 3,
    "cmo_org_id": 2, "reason": "Best technical fit and capacity in Q3"}))]
pub struct EvaluationDecided {
    pub evaluation_id: i64,
    pub title: String,
    pub program_id: Option<i64>,
    /// The CMO selected.
    pub cmo_org_id: i64,
    pub reason: String,
}

/// `audit.checkpoint`: a signed checkpoint of the organization's audit chain was taken
/// (daily when the chain moved, or by the operator). Keep it: it proves later that the
/// chain up to `seq` was not rewritten. Read by the organization alone.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[schema(example = json!({"checkpoint_id": 12, "org_id": 1, "seq": 42,
    "head_hash": "4e7a1c0b9f3d2e8a7b6c5d4e3f2a1b0c9d8e7f6a5b4c3d2e1f0a9b8c7d6e5f4a",
    "at": "2026-12-01T00:30:00.000000Z", "key_id": "3f9a0c1d2b4e5f60",
    "public_key": "8f2c…", "signature": "5d1e…", "kind": "daily", "reason": null}))]
pub struct AuditCheckpointTaken {
    pub checkpoint_id: i64,
    pub org_id: i64,
    pub seq: i64,
    pub head_hash: String,
    pub at: DateTime<Utc>,
    pub key_id: String,
    pub public_key: String,
    pub signature: String,
    /// `daily` or `manual`.
    pub kind: String,
    pub reason: Option<String>,
}

/// An event's type with its payload: one variant (and one schema) per event type.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(tag = "type", content = "payload")]
#[schema(example = json!({"type": "deviation.reported", "payload": {"deviation_id": 41, "title": "Bioburden excursion",
    "criticality": "critical", "category": "equipment", "detected_at": "2026-11-28T01:55:00Z"}}))]
pub enum Event {
    #[serde(rename = "deviation.reported")]
    DeviationReported(DeviationReported),
    #[serde(rename = "deviation.triaged")]
    DeviationTriaged(DeviationChanged),
    #[serde(rename = "deviation.closed")]
    DeviationClosed(DeviationChanged),
    #[serde(rename = "deviation.transitioned")]
    DeviationTransitioned(DeviationChanged),
    #[serde(rename = "production.held")]
    ProductionHeld(ProductionChanged),
    #[serde(rename = "production.released")]
    ProductionReleased(ProductionChanged),
    #[serde(rename = "escalation.opened")]
    EscalationOpened(EscalationOpened),
    #[serde(rename = "escalation.acknowledged")]
    EscalationAcknowledged(EscalationAcknowledged),
    #[serde(rename = "escalation.advanced")]
    EscalationAdvanced(EscalationAdvanced),
    #[serde(rename = "escalation.resolved")]
    EscalationResolved(EscalationResolved),
    #[serde(rename = "milestone.transitioned")]
    MilestoneTransitioned(MilestoneTransitioned),
    #[serde(rename = "gate.decided")]
    GateDecided(GateDecided),
    #[serde(rename = "capa.transitioned")]
    CapaTransitioned(CapaTransitioned),
    #[serde(rename = "action_item.overdue")]
    ActionItemOverdue(ActionItemOverdue),
    #[serde(rename = "action_item.assigned")]
    ActionItemAssigned(ActionItemAssigned),
    #[serde(rename = "change_request.transitioned")]
    ChangeRequestTransitioned(ChangeRequestTransitioned),
    #[serde(rename = "cmo.qualification_changed")]
    CmoQualificationChanged(CmoQualificationChanged),
    #[serde(rename = "cmo.connection_changed")]
    CmoConnectionChanged(CmoConnectionChanged),
    #[serde(rename = "cmo.merged")]
    CmoMerged(CmoMerged),
    #[serde(rename = "evaluation.decided")]
    EvaluationDecided(EvaluationDecided),
    #[serde(rename = "audit.checkpoint")]
    AuditCheckpoint(AuditCheckpointTaken),
}

impl Event {
    /// The resource the event is about: `(resource_type, id)`.
    pub fn resource(&self) -> (&'static str, i64) {
        use Event as E;
        match self {
            E::DeviationReported(p) => ("deviation", p.deviation_id),
            E::DeviationTriaged(p) | E::DeviationClosed(p) | E::DeviationTransitioned(p) => {
                ("deviation", p.deviation_id)
            }
            E::ProductionHeld(p) | E::ProductionReleased(p) => ("program", p.program_id),
            E::EscalationOpened(p) => ("escalation", p.escalation_id),
            E::EscalationAcknowledged(p) => ("escalation", p.escalation_id),
            E::EscalationAdvanced(p) => ("escalation", p.escalation_id),
            E::EscalationResolved(p) => ("escalation", p.escalation_id),
            E::MilestoneTransitioned(p) => ("milestone", p.milestone_id),
            E::GateDecided(p) => ("milestone", p.milestone_id),
            E::CapaTransitioned(p) => ("capa", p.capa_id),
            E::ActionItemOverdue(p) => ("action_item", p.action_item_id),
            E::ActionItemAssigned(p) => ("action_item", p.action_item_id),
            E::ChangeRequestTransitioned(p) => ("change_request", p.change_request_id),
            E::CmoQualificationChanged(p) => ("cmo", p.cmo_org_id),
            E::CmoConnectionChanged(p) => ("cmo_connection", p.connection_id),
            E::CmoMerged(p) => ("cmo", p.survivor_org_id),
            E::EvaluationDecided(p) => ("evaluation", p.evaluation_id),
            E::AuditCheckpoint(p) => ("audit_checkpoint", p.checkpoint_id),
        }
    }

    /// Splits into the stored `(type, payload JSON)`.
    pub fn to_stored(&self) -> Result<(String, String), DbErr> {
        let mut v = serde_json::to_value(self).map_err(|e| DbErr::Custom(e.to_string()))?;
        let t = v
            .get("type")
            .and_then(|t| t.as_str())
            .map(str::to_string)
            .ok_or_else(|| DbErr::Custom("event without a type".to_string()))?;
        let payload = v
            .get_mut("payload")
            .map(serde_json::Value::take)
            .unwrap_or_default();
        Ok((t, payload.to_string()))
    }

    /// Reads a stored row back.
    pub fn from_stored(event_type: &str, payload: &str) -> Result<Event, serde_json::Error> {
        let payload: serde_json::Value = serde_json::from_str(payload)?;
        serde_json::from_value(serde_json::json!({"type": event_type, "payload": payload}))
    }
}

mod sequence;
pub use sequence::{LOCK_WAIT, Wait, after_write, catch_up, sequence_pending};

/// The channel whose `NOTIFY` (at the commit of an event's transaction) wakes a worker to
/// sequence it: the webhook dispatcher's, which sequences before it delivers.
pub const SEQUENCE_CHANNEL: &str = crate::webhook::WAKE_CHANNEL;

/// Who may read an event: the program's parties, or named organizations.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Audience {
    pub program_id: Option<i64>,
    pub sponsor_org_id: i64,
    pub cmo_org_id: Option<i64>,
}

/// Appends an event about a program's resource, in the caller's transaction (its webhook
/// deliveries go to subscriptions of the program's sponsor and, while the two are
/// connected, its CMO). Returns its id.
pub async fn emit<C: ConnectionTrait>(
    conn: &C,
    program_id: i64,
    event: Event,
    at: DateTime<Utc>,
) -> Result<i64, DbErr> {
    let Some(prog) = crate::program::Entity::find_by_id(program_id)
        .one(conn)
        .await?
    else {
        return Err(DbErr::RecordNotFound(format!("program {program_id}")));
    };
    // A connection that ended leaves the program with its sponsor: the CMO reads none of
    // what happens on it afterwards.
    let connected = crate::relationship::between(conn, prog.sponsor_org_id, prog.cmo_org_id)
        .await?
        .is_some_and(|r| r.is_connected());
    emit_to(
        conn,
        Audience {
            program_id: Some(prog.id),
            sponsor_org_id: prog.sponsor_org_id,
            cmo_org_id: connected.then_some(prog.cmo_org_id),
        },
        event,
        at,
    )
    .await
}

/// Appends an event that `audience` reads, in the caller's transaction. Returns the
/// event's id (its cursor may not be given yet: see [`sequence`]).
pub async fn emit_to<C: ConnectionTrait>(
    conn: &C,
    audience: Audience,
    event: Event,
    at: DateTime<Utc>,
) -> Result<i64, DbErr> {
    let (event_type, payload) = event.to_stored()?;
    let (resource_type, resource_id) = event.resource();
    let sequenced_later = conn.get_database_backend() == sea_orm::DbBackend::Postgres;
    let cursor = if sequenced_later {
        // The column's default: a placeholder until the sequencer gives the cursor.
        NotSet
    } else {
        // SQLite: one writer at a time; the head row gives the next cursor in this
        // transaction (written first, so the write lock is taken before the read), and
        // deliveries are queued with it below.
        head::Entity::update_many()
            .col_expr(
                head::Column::LastCursor,
                Expr::col(head::Column::LastCursor).add(1),
            )
            .filter(head::Column::Id.eq(1))
            .exec(conn)
            .await?;
        let current = head::Entity::find_by_id(1)
            .one(conn)
            .await?
            .ok_or_else(|| DbErr::RecordNotFound("domain event head".to_string()))?;
        Set(current.last_cursor)
    };
    let row = ActiveModel {
        id: NotSet,
        cursor,
        event_type: Set(event_type.clone()),
        program_id: Set(audience.program_id),
        sponsor_org_id: Set(audience.sponsor_org_id),
        cmo_org_id: Set(audience.cmo_org_id),
        resource_type: Set(resource_type.to_string()),
        resource_id: Set(resource_id.to_string()),
        payload: Set(payload),
        occurred_at: Set(at),
        trace_id: Set(crate::ops::trace::current()),
    }
    .insert(conn)
    .await?;
    if sequenced_later {
        crate::wake::at_commit(conn, SEQUENCE_CHANNEL).await?;
    } else {
        // Webhook deliveries are queued with the event: committed together or not at all.
        let mut orgs = vec![audience.sponsor_org_id];
        orgs.extend(audience.cmo_org_id);
        crate::webhook::fan_out(conn, &orgs, row.id, row.cursor, &event_type, at).await?;
    }
    Ok(row.id)
}

// A domain event on the wire: the same shape in the feed (`GET /events`) and in webhook
// bodies, which are defined to be identical. Its schema (one per event type, with a
// discriminator) is written in `event_schema`.
#[derive(Debug, Serialize)]
pub struct EventView {
    /// Increases as events become visible; pass the last one you saw as `after`. Webhooks
    /// send it as `webhook-id` (and `X-Cmo-Event-Id`).
    pub cursor: i64,
    pub program_id: Option<i64>,
    pub resource_type: String,
    pub resource_id: String,
    /// `type` (one of the event types) and its `payload` (one schema per type).
    #[serde(flatten)]
    pub event: Event,
    pub occurred_at: DateTime<Utc>,
}

/// The same shape in the feed and in webhook bodies. Rows are written from the typed
/// [`Event`], so reading one back fails only if it was tampered with.
impl TryFrom<&Model> for EventView {
    type Error = serde_json::Error;

    fn try_from(r: &Model) -> Result<Self, Self::Error> {
        Ok(EventView {
            cursor: r.cursor,
            program_id: r.program_id,
            resource_type: r.resource_type.clone(),
            resource_id: r.resource_id.clone(),
            event: Event::from_stored(&r.event_type, &r.payload)?,
            occurred_at: r.occurred_at,
        })
    }
}

#[cfg(test)]
mod tests;
