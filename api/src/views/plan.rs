//! How the project plan reads on the wire: programs, team members, action items.

use chrono::{DateTime, NaiveDate, Utc};
use entity::action_item::{self, ActionEvent, ActionSource, ActionStatus};
use entity::deviation;
use entity::gate::{self, CheckType, Decision, ItemState};
pub use entity::gate::{GateDecisionView, GateItemView};
use entity::milestone::{self, MilestoneStatus};
use entity::milestone_dependency;
use entity::milestone_rules::{self, MilestoneEvent, Schedule, ScheduleHealth};
use entity::program::{self, Modality, ProductionStatus, ProgramStage};
use entity::team_member::{self, GovernanceTier};

use crate::error::ApiResult;
use sea_orm::{ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, QueryOrder};
use serde::Serialize;
use std::collections::BTreeMap;
use utoipa::ToSchema;

#[derive(Debug, Clone, Serialize, ToSchema)]
#[schema(example = json!({
    "id": 31, "program_id": 7, "title": "Close batch record gaps found at the engineering-run gate",
    "description": null, "owner_user_id": 5, "due_date": "2027-04-22", "source": "gate_item", "source_id": 88,
    "status": "open", "snoozed_until": null, "snooze_reason": null, "overdue": false, "days_overdue": 0,
    "allowed_events": ["start", "complete", "cancel"], "completed_at": null,
    "completion_evidence": null, "completion_evidence_url": null,
    "created_at": "2026-11-23T09:00:00Z", "updated_at": "2026-11-23T09:00:00Z", "version": 1
}))]
pub struct ActionItemView {
    pub id: i64,
    pub program_id: i64,
    pub title: String,
    pub description: Option<String>,
    pub owner_user_id: i64,
    pub due_date: NaiveDate,
    pub source: ActionSource,
    pub source_id: Option<i64>,
    pub status: ActionStatus,
    pub snoozed_until: Option<NaiveDate>,
    pub snooze_reason: Option<String>,
    /// Open or in progress, past due, and not snoozed through today (program time zone).
    pub overdue: bool,
    pub days_overdue: i64,
    pub allowed_events: Vec<ActionEvent>,
    /// Single-record answers (GET by id, a step's answer) only: the events the state
    /// offers that this caller cannot take now, each with why; `allowed_events` then
    /// holds what this caller can do now. Lists leave it out (their `allowed_events` are
    /// what the state allows).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub blocked_events: Option<Vec<crate::views::BlockedEvent>>,
    pub completed_at: Option<DateTime<Utc>>,
    /// What shows it was done, given with `complete`.
    pub completion_evidence: Option<String>,
    /// A link to the evidence, given with `complete`.
    pub completion_evidence_url: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub version: i32,
}

pub fn action_item(a: &action_item::Model, today: NaiveDate) -> ActionItemView {
    let overdue = action_item::is_overdue(a.status, a.due_date, a.snoozed_until, today);
    ActionItemView {
        id: a.id,
        program_id: a.program_id,
        title: a.title.clone(),
        description: a.description.clone(),
        owner_user_id: a.owner_user_id,
        due_date: a.due_date,
        source: a.source,
        source_id: a.source_id,
        status: a.status,
        snoozed_until: a.snoozed_until,
        snooze_reason: a.snooze_reason.clone(),
        overdue,
        days_overdue: if overdue {
            action_item::days_overdue(a.due_date, today)
        } else {
            0
        },
        blocked_events: None,
        allowed_events: action_item::allowed_events(a.status),
        completed_at: a.completed_at,
        completion_evidence: a.completion_evidence.clone(),
        completion_evidence_url: a.completion_evidence_url.clone(),
        created_at: a.created_at,
        updated_at: a.updated_at,
        version: a.version,
    }
}

#[derive(Debug, Clone, Serialize, ToSchema)]
#[schema(example = json!({
    "id": 7, "sponsor_org_id": 1, "cmo_org_id": 2, "name": "ACM-101 clinical supply",
    "product_name": "ACM-101", "modality": "biologic", "stage": "clinical",
    "scope": "Tech transfer and GMP clinical manufacturing of drug substance",
    "budget_minor": 420000000, "currency": "USD", "time_zone": "Europe/Zurich",
    "production_status": "running",
    "created_at": "2026-11-23T09:00:00Z", "updated_at": "2026-11-23T09:00:00Z", "version": 1
}))]
pub struct ProgramView {
    pub id: i64,
    pub sponsor_org_id: i64,
    pub cmo_org_id: i64,
    pub name: String,
    pub product_name: String,
    pub modality: Modality,
    pub stage: ProgramStage,
    pub scope: Option<String>,
    /// Budget in minor units of `currency` (cents).
    pub budget_minor: Option<i64>,
    /// ISO 4217 code.
    pub currency: Option<String>,
    /// IANA time zone of the program.
    pub time_zone: String,
    /// Changed only by quality rules (deviation holds, signed release).
    pub production_status: ProductionStatus,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub version: i32,
}

impl From<&program::Model> for ProgramView {
    fn from(m: &program::Model) -> Self {
        Self {
            id: m.id,
            sponsor_org_id: m.sponsor_org_id,
            cmo_org_id: m.cmo_org_id,
            name: m.name.clone(),
            product_name: m.product_name.clone(),
            modality: m.modality,
            stage: m.stage,
            scope: m.scope.clone(),
            budget_minor: m.budget_minor,
            currency: m.currency.clone(),
            time_zone: m.time_zone.clone(),
            production_status: m.production_status,
            created_at: m.created_at,
            updated_at: m.updated_at,
            version: m.version,
        }
    }
}

#[derive(Debug, Clone, Serialize, ToSchema)]
#[schema(example = json!({
    "id": 3, "program_id": 7, "user_id": 5,
    "person": {"display_name": "Lea Muller", "email": "lea@lonza.example", "org_id": 2,
        "org_name": "Lonza Visp", "org_kind": "cmo", "active": true},
    "governance_tier": "core_team",
    "program_role": "QA lead", "expertise_tags": ["quality", "microbiology"],
    "wants_digest": true, "wants_reminders": true, "muted_notifications": ["minor_closure"],
    "created_at": "2026-11-23T09:00:00Z", "updated_at": "2026-11-23T09:00:00Z", "version": 1
}))]
pub struct TeamMemberView {
    pub id: i64,
    pub program_id: i64,
    pub user_id: i64,
    /// Who the member is, so a client shows a name without looking the user up.
    pub person: TeamPerson,
    pub governance_tier: GovernanceTier,
    pub program_role: String,
    /// Lower-case tags; the escalation call tree matches them to deviation categories.
    pub expertise_tags: Vec<String>,
    /// Receives the weekly status digest.
    pub wants_digest: bool,
    /// Receives overdue-action reminders.
    pub wants_reminders: bool,
    /// Notification kinds the member switched off (each email of a kind has a link that
    /// switches it off); the rest arrive. Escalation pages cannot be switched off.
    pub muted_notifications: Vec<entity::notification::NotificationKind>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub version: i32,
}

/// The person behind a team membership: name, email and organization (sponsor or CMO).
#[derive(Debug, Clone, Serialize, ToSchema)]
#[schema(example = json!({"display_name": "Lea Muller", "email": "lea@lonza.example", "org_id": 2,
    "org_name": "Lonza Visp", "org_kind": "cmo", "active": true}))]
pub struct TeamPerson {
    pub display_name: String,
    pub email: String,
    pub org_id: i64,
    pub org_name: String,
    pub org_kind: entity::enums::OrgKind,
    /// False once the account is deactivated: the member then receives nothing.
    pub active: bool,
}

/// Team members as the API shows them, each with its person (two queries for any number).
pub async fn team_members<C: ConnectionTrait>(
    conn: &C,
    members: &[team_member::Model],
) -> ApiResult<Vec<TeamMemberView>> {
    use entity::{organization, user};
    let user_ids: Vec<i64> = members.iter().map(|m| m.user_id).collect();
    let users: BTreeMap<i64, user::Model> = user::Entity::find()
        .filter(user::Column::Id.is_in(user_ids))
        .all(conn)
        .await?
        .into_iter()
        .map(|u| (u.id, u))
        .collect();
    let org_ids: Vec<i64> = users.values().map(|u| u.org_id).collect();
    let orgs: BTreeMap<i64, organization::Model> = organization::Entity::find()
        .filter(organization::Column::Id.is_in(org_ids))
        .all(conn)
        .await?
        .into_iter()
        .map(|o| (o.id, o))
        .collect();
    let mut out = Vec::with_capacity(members.len());
    for m in members {
        // A membership's user and organization are foreign keys: both exist.
        let u = users.get(&m.user_id).ok_or_else(|| {
            crate::error::ApiError::Internal(format!("team member {} without its user", m.id))
        })?;
        let o = orgs.get(&u.org_id).ok_or_else(|| {
            crate::error::ApiError::Internal(format!("user {} without its organization", u.id))
        })?;
        out.push(TeamMemberView {
            id: m.id,
            program_id: m.program_id,
            user_id: m.user_id,
            person: TeamPerson {
                display_name: u.display_name.clone(),
                email: u.email.clone(),
                org_id: o.id,
                org_name: o.name.clone(),
                org_kind: o.kind,
                active: u.active,
            },
            governance_tier: m.governance_tier,
            program_role: m.program_role.clone(),
            expertise_tags: serde_json::from_str(&m.expertise_tags).unwrap_or_default(),
            wants_digest: m.wants_digest,
            wants_reminders: m.wants_reminders,
            muted_notifications: entity::notification::muted(m),
            created_at: m.created_at,
            updated_at: m.updated_at,
            version: m.version,
        });
    }
    Ok(out)
}

/// One team member as the API shows it.
pub async fn team_member<C: ConnectionTrait>(
    conn: &C,
    member: &team_member::Model,
) -> ApiResult<TeamMemberView> {
    Ok(team_members(conn, std::slice::from_ref(member))
        .await?
        .remove(0))
}

#[derive(Debug, Clone, Serialize, ToSchema)]
#[schema(example = json!({
    "id": 12, "program_id": 7, "name": "Engineering runs", "phase": "Manufacturing readiness",
    "owner_user_id": 5, "status": "in_progress",
    "baseline_start": "2027-03-01", "baseline_end": "2027-04-15",
    "forecast_start": "2027-03-01", "forecast_end": "2027-04-29",
    "actual_start": "2027-03-02", "actual_end": null,
    "position": 6, "depends_on": [10, 11], "schedule_health": "at_risk",
    "allowed_events": ["submit_for_gate", "hold", "cancel"],
    "created_at": "2026-11-23T09:00:00Z", "updated_at": "2026-11-23T09:00:00Z", "version": 3
}))]
pub struct MilestoneView {
    pub id: i64,
    pub program_id: i64,
    pub name: String,
    pub phase: String,
    pub owner_user_id: Option<i64>,
    pub status: MilestoneStatus,
    /// Where an on-hold milestone resumes.
    pub held_from: Option<MilestoneStatus>,
    pub baseline_start: NaiveDate,
    pub baseline_end: NaiveDate,
    pub forecast_start: NaiveDate,
    pub forecast_end: NaiveDate,
    pub actual_start: Option<NaiveDate>,
    pub actual_end: Option<NaiveDate>,
    pub position: i32,
    /// Milestones that must be completed before this one starts.
    pub depends_on: Vec<i64>,
    /// Derived from baseline, forecast and today in the program's time zone; `null` when cancelled.
    pub schedule_health: Option<ScheduleHealth>,
    /// Events the caller may send now (empty when the caller may not update the plan).
    pub allowed_events: Vec<MilestoneEvent>,
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

pub fn milestone(
    m: &milestone::Model,
    depends_on: Vec<i64>,
    today: NaiveDate,
    may_update: bool,
) -> MilestoneView {
    let schedule = Schedule {
        status: m.status,
        baseline_start: m.baseline_start,
        baseline_end: m.baseline_end,
        forecast_start: m.forecast_start,
        forecast_end: m.forecast_end,
        actual_end: m.actual_end,
    };
    MilestoneView {
        id: m.id,
        program_id: m.program_id,
        name: m.name.clone(),
        phase: m.phase.clone(),
        owner_user_id: m.owner_user_id,
        status: m.status,
        held_from: m.held_from,
        baseline_start: m.baseline_start,
        baseline_end: m.baseline_end,
        forecast_start: m.forecast_start,
        forecast_end: m.forecast_end,
        actual_start: m.actual_start,
        actual_end: m.actual_end,
        position: m.position,
        depends_on,
        schedule_health: milestone_rules::schedule_health(&schedule, today),
        blocked_events: None,
        allowed_events: if may_update {
            // `no_go` is taken through the signed gate decision, not sent here.
            milestone_rules::allowed_events(m.status, m.held_from)
                .into_iter()
                .filter(|e| *e != MilestoneEvent::NoGo)
                .collect()
        } else {
            Vec::new()
        },
        created_at: m.created_at,
        updated_at: m.updated_at,
        version: m.version,
    }
}

pub async fn dependencies_of<C: ConnectionTrait>(
    conn: &C,
    ids: &[i64],
) -> ApiResult<BTreeMap<i64, Vec<i64>>> {
    let mut map: BTreeMap<i64, Vec<i64>> = ids.iter().map(|id| (*id, Vec::new())).collect();
    if ids.is_empty() {
        return Ok(map);
    }
    let rows = milestone_dependency::Entity::find()
        .filter(milestone_dependency::Column::MilestoneId.is_in(ids.to_vec()))
        .order_by_asc(milestone_dependency::Column::DependsOnId)
        .all(conn)
        .await?;
    for row in rows {
        map.entry(row.milestone_id)
            .or_default()
            .push(row.depends_on_id);
    }
    Ok(map)
}

/// Open deviations and CAPAs of a program, shown on the checks that are about them.
pub async fn linked_open_counts<C: ConnectionTrait>(
    conn: &C,
    program_id: i64,
) -> ApiResult<(u64, u64)> {
    use sea_orm::PaginatorTrait;
    let deviations = deviation::Entity::find()
        .filter(deviation::Column::ProgramId.eq(program_id))
        .filter(deviation::Column::Status.is_not_in([
            deviation::DeviationStatus::Closed,
            deviation::DeviationStatus::Cancelled,
        ]))
        .count(conn)
        .await?;
    let capas = entity::capa::Entity::find()
        .filter(entity::capa::Column::ProgramId.eq(program_id))
        .filter(entity::capa::Column::Status.is_not_in([
            entity::capa::CapaStatus::Closed,
            entity::capa::CapaStatus::Cancelled,
        ]))
        .count(conn)
        .await?;
    Ok((deviations, capas))
}

/// The gate of one milestone: checklist, decision history, and what blocks a `go`.
#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({
    "milestone_id": 12, "milestone_status": "gate_review", "gate_round": 1,
    "items": [{"id": 88, "milestone_id": 12, "check_type": "batch_record_readiness",
               "title": "Master batch record approved by both QA units", "mandatory": true, "result": "pending",
               "evidence": null, "decided_by_user_id": null, "decided_at": null, "position": 0, "version": 1}],
    "decisions": [],
    "go_blockers": ["mandatory checklist items are not decided: Master batch record approved by both QA units"],
    "open_critical_deviations": 0
}))]
pub struct GateView {
    pub milestone_id: i64,
    pub milestone_status: MilestoneStatus,
    pub gate_round: i32,
    pub items: Vec<GateItemView>,
    /// Oldest first.
    pub decisions: Vec<GateDecisionView>,
    /// Why a `go` would be refused right now (empty when it would not).
    pub go_blockers: Vec<String>,
    /// Open critical deviations on the program.
    pub open_critical_deviations: u64,
}

pub async fn gate_view<C: ConnectionTrait>(conn: &C, m: &milestone::Model) -> ApiResult<GateView> {
    let items = gate::item::Entity::find()
        .filter(gate::item::Column::MilestoneId.eq(m.id))
        .order_by_asc(gate::item::Column::Position)
        .order_by_asc(gate::item::Column::Id)
        .all(conn)
        .await?;
    let decisions = gate::decision::Entity::find()
        .filter(gate::decision::Column::MilestoneId.eq(m.id))
        .order_by_asc(gate::decision::Column::Id)
        .all(conn)
        .await?;
    let open_critical = deviation::open_critical_titles(conn, m.program_id).await?;
    let (open_deviations, open_capas) = linked_open_counts(conn, m.program_id).await?;
    let states: Vec<ItemState<'_>> = items
        .iter()
        .map(|i| ItemState {
            title: &i.title,
            mandatory: i.mandatory,
            result: i.result,
        })
        .collect();
    let go_blockers = match gate::check_decision(
        Decision::Go,
        m.status == MilestoneStatus::GateReview,
        &states,
        &open_critical,
    ) {
        Ok(()) => Vec::new(),
        Err(err) => vec![err.to_string()],
    };
    Ok(GateView {
        milestone_id: m.id,
        milestone_status: m.status,
        gate_round: m.gate_round,
        items: items
            .iter()
            .map(|i| {
                let mut v = GateItemView::from(i);
                v.linked_open_count = match i.check_type {
                    CheckType::ProductRelatedDeviations => Some(open_deviations),
                    CheckType::NonconformanceCapaInvestigationSupport => {
                        Some(open_deviations + open_capas)
                    }
                    _ => None,
                };
                v
            })
            .collect(),
        decisions: decisions.iter().map(GateDecisionView::from).collect(),
        go_blockers,
        open_critical_deviations: open_critical.len() as u64,
    })
}

/// The signed outcome of a decision.
#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({
    "decision": {"id": 4, "milestone_id": 12, "gate_round": 1, "decision": "no_go", "notes": "batch record gaps",
                 "signature_id": 19, "decided_by_user_id": 5, "decided_at": "2027-04-12T09:30:00Z"},
    "gate": {"milestone_id": 12, "milestone_status": "in_progress", "gate_round": 1, "items": [], "decisions": [],
             "go_blockers": ["the milestone is not in gate review"], "open_critical_deviations": 0},
    "action_item_ids": [31]
}))]
pub struct GateDecisionOutcome {
    pub decision: GateDecisionView,
    /// The gate after the decision.
    pub gate: GateView,
    /// Action items created from failed checklist items (no-go).
    pub action_item_ids: Vec<i64>,
}
