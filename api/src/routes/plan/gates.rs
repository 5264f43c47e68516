//! Go/no-go gates: the checklist on each milestone and the signed decision.

use actix_web::{HttpRequest, HttpResponse, get, patch, post, web};
use chrono::{DateTime, TimeDelta, Utc};
use entity::access::may_update_plan;
use entity::action_item::ActionSource;
use entity::audit_trail::{self, Entry};
use entity::domain_event::{Event, GateDecided};
use entity::gate::{self, CheckResult, CheckType, Decision, GateError, ItemState};
use entity::milestone::{self, MilestoneStatus};
use entity::{SignatureMeaning, SignedRecordType, deviation, program, signature};
use sea_orm::{
    ActiveModelTrait, ActiveValue::NotSet, ActiveValue::Set, ColumnTrait, ConnectionTrait,
    EntityTrait, QueryFilter, QueryOrder,
};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::auth::{AuthContext, find_scoped, find_scoped_locked};
use crate::error::{ApiError, ApiResult};
use crate::records::{NewAction, insert_action};
use crate::records::{NewGateItem, insert_gate_item};
use crate::routes::{ApiJson, Checks, Validate, compare_and_set, expected_version, snapshot};
use crate::signing;
use crate::state::AppState;
use crate::views::plan::GateItemView;
use entity::signature::SignatureRecord;

/// Days a no-go's follow-up actions get by default.
pub const NO_GO_ACTION_DAYS: i64 = 7;

/// Open deviations and CAPAs of a program, shown on the checks that are about them.
async fn linked_open_counts<C: ConnectionTrait>(
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

impl From<&gate::decision::Model> for GateDecisionView {
    fn from(m: &gate::decision::Model) -> Self {
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

async fn gate_view<C: ConnectionTrait>(conn: &C, m: &milestone::Model) -> ApiResult<GateView> {
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
    let open_critical = deviation::open_critical_count(conn, m.program_id).await?;
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
        open_critical,
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
        open_critical_deviations: open_critical,
    })
}

/// The gate of a milestone.
#[utoipa::path(
    tag = "gates",
    params(("id" = i64, Path, description = "Milestone id")),
    responses(
        (status = 200, description = "Checklist, decisions and blockers", body = GateView),
        (status = 404, description = "No such milestone visible to the caller", body = crate::error::Problem, content_type = "application/problem+json")
    )
)]
#[get("/milestones/{id}/gate")]
pub async fn get_gate(
    state: web::Data<AppState>,
    ctx: AuthContext,
    id: web::Path<i64>,
) -> ApiResult<web::Json<GateView>> {
    let m = find_scoped::<milestone::Entity, _>(&state.db, &ctx, id.into_inner()).await?;
    Ok(web::Json(gate_view(&state.db, &m).await?))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"check_type": "sops", "title": "Operations and maintenance SOPs effective", "mandatory": true}))]
pub struct CreateGateItem {
    pub check_type: CheckType,
    #[schema(min_length = 1, max_length = 200)]
    pub title: String,
    /// Default true.
    pub mandatory: Option<bool>,
    #[schema(minimum = 0, maximum = 10000)]
    pub position: Option<i32>,
}

impl Validate for CreateGateItem {
    fn validate(&self, c: &mut Checks) {
        c.text("title", &self.title, 1, 200);
        if self.position.is_some_and(|p| !(0..=10_000).contains(&p)) {
            c.fail("position", "out_of_range", "must be between 0 and 10000");
        }
    }
}

/// Add a checklist item to a milestone's gate.
#[utoipa::path(
    tag = "gates",
    params(("id" = i64, Path, description = "Milestone id")),
    request_body = CreateGateItem,
    responses(
        (status = 201, description = "Checklist item added", body = GateItemView),
        (status = 403, description = "Not allowed to update this plan", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such milestone visible to the caller", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 409, description = "The milestone is completed or cancelled", body = crate::error::Problem, content_type = "application/problem+json")
    )
)]
#[post("/milestones/{id}/gate-items")]
pub async fn create_gate_item(
    state: web::Data<AppState>,
    ctx: AuthContext,
    id: web::Path<i64>,
    body: ApiJson<CreateGateItem>,
) -> ApiResult<HttpResponse> {
    let b = body.into_inner();
    let txn = entity::db::begin_write(&state.db).await?;
    // Locking the milestone serializes checklist changes with gate decisions.
    let m = find_scoped_locked::<milestone::Entity, _>(&txn, &ctx, id.into_inner()).await?;
    let prog = find_scoped::<program::Entity, _>(&txn, &ctx, m.program_id).await?;
    if !may_update_plan(ctx.caller(), prog.sides(), None) {
        return Err(ApiError::Forbidden(
            "not allowed to update this plan".to_string(),
        ));
    }
    ensure_checklist_open(&txn, &m).await?;
    let position = match b.position {
        Some(p) => p,
        None => gate::item::Entity::find()
            .filter(gate::item::Column::MilestoneId.eq(m.id))
            .order_by_desc(gate::item::Column::Position)
            .one(&txn)
            .await?
            .map_or(0, |i| i.position.saturating_add(1)),
    };
    let item = insert_gate_item(
        &txn,
        &ctx,
        state.clock.now(),
        NewGateItem {
            milestone_id: m.id,
            check_type: b.check_type,
            title: &b.title,
            mandatory: b.mandatory.unwrap_or(true),
            position,
        },
    )
    .await?;
    txn.commit().await?;
    Ok(HttpResponse::Created().json(GateItemView::from(&item)))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"version": 1, "result": "pass", "evidence": "MBR-0042 rev 3, signed 2027-04-10"}))]
pub struct UpdateGateItem {
    /// The version being updated (or send `If-Match`).
    pub version: Option<i32>,
    pub result: Option<CheckResult>,
    #[schema(max_length = 2000)]
    pub evidence: Option<String>,
    #[schema(min_length = 1, max_length = 200)]
    pub title: Option<String>,
    pub mandatory: Option<bool>,
}

impl Validate for UpdateGateItem {
    fn validate(&self, c: &mut Checks) {
        c.optional_text("evidence", self.evidence.as_deref(), 1, 2000);
        c.optional_text("title", self.title.as_deref(), 1, 200);
    }
}

/// Record a checklist item's result and evidence.
#[utoipa::path(
    tag = "gates",
    params(
        ("id" = i64, Path, description = "Gate item id"),
        ("If-Match" = Option<String>, Header, pattern = r#"^(W/)?"?[0-9]{1,9}"?$"#, description = "Version being updated (alternative to `version` in the body)")
    ),
    request_body = UpdateGateItem,
    responses(
        (status = 200, description = "The updated item", body = GateItemView),
        (status = 403, description = "Not allowed to update this plan", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such gate item visible to the caller", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 409, description = "Stale version, or the milestone is completed or cancelled", body = crate::error::Problem, content_type = "application/problem+json")
    )
)]
#[patch("/gate-items/{id}")]
pub async fn update_gate_item(
    req: HttpRequest,
    state: web::Data<AppState>,
    ctx: AuthContext,
    id: web::Path<i64>,
    body: ApiJson<UpdateGateItem>,
) -> ApiResult<web::Json<GateItemView>> {
    let b = body.into_inner();
    let version = expected_version(&req, b.version)?;
    let txn = entity::db::begin_write(&state.db).await?;
    let current = gate::item::Entity::find_by_id(id.into_inner())
        .one(&txn)
        .await?
        .ok_or(ApiError::NotFound)?;
    // Tenancy through the milestone: another program's item is simply not found.
    let m = find_scoped_locked::<milestone::Entity, _>(&txn, &ctx, current.milestone_id).await?;
    let prog = find_scoped::<program::Entity, _>(&txn, &ctx, m.program_id).await?;
    if !may_update_plan(ctx.caller(), prog.sides(), m.owner_user_id) {
        return Err(ApiError::Forbidden(
            "not allowed to update this plan".to_string(),
        ));
    }
    // What a `go` requires is the sponsor's to define.
    if (b.mandatory.is_some() || b.title.is_some())
        && !entity::access::may_manage_program(ctx.caller(), prog.sides())
    {
        return Err(ApiError::Forbidden(
            "only the sponsor's admins and program managers change what a gate checks".to_string(),
        ));
    }
    ensure_checklist_open(&txn, &m).await?;
    if current.version != version {
        return Err(ApiError::stale_version(current.version));
    }
    let now = state.clock.now();
    let mut active: gate::item::ActiveModel = current.clone().into();
    if let Some(result) = b.result {
        active.result = Set(result);
        if result == CheckResult::Pending {
            active.decided_by_user_id = Set(None);
            active.decided_at = Set(None);
        } else {
            active.decided_by_user_id = Set(Some(ctx.user.id));
            active.decided_at = Set(Some(now));
        }
    }
    if let Some(v) = b.evidence {
        active.evidence = Set(Some(v));
    }
    if let Some(v) = b.title {
        active.title = Set(v.trim().to_string());
    }
    if let Some(v) = b.mandatory {
        active.mandatory = Set(v);
    }
    active.updated_at = Set(now);
    active.version = Set(current.version + 1);
    let updated =
        compare_and_set::<gate::item::Entity, _>(&txn, active, current.id, current.version).await?;
    audit_trail::append(
        &txn,
        &ctx.actor(now),
        Entry::new("gate_item", updated.id, "update")
            .before(snapshot(&GateItemView::from(&current)))
            .after(snapshot(&GateItemView::from(&updated))),
    )
    .await?;
    txn.commit().await?;
    Ok(web::Json(GateItemView::from(&updated)))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"decision": "go", "password": "correct horse battery staple", "notes": "all mandatory checks passed"}))]
pub struct DecideGate {
    pub decision: Decision,
    /// The signer's password, re-entered for this e-signature.
    #[schema(min_length = 1, max_length = 256)]
    pub password: String,
    #[schema(max_length = 2000)]
    pub notes: Option<String>,
}

impl Validate for DecideGate {
    fn validate(&self, c: &mut Checks) {
        c.signing_password("password", &self.password);
        c.optional_text("notes", self.notes.as_deref(), 1, 2000);
    }
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

/// Decide the gate of a milestone in gate review: `go` or `no_go`, e-signed by a program
/// manager or quality user of the sponsor. Every mandatory item must be decided; `go` also
/// needs no failed mandatory item and no open critical deviation on the program. A
/// `no_go` sends the milestone back to `in_progress` and turns failed items into action
/// items for the milestone's owner, due in 7 days.
#[utoipa::path(
    tag = "gates",
    params(("id" = i64, Path, description = "Milestone id")),
    request_body = DecideGate,
    responses(
        (status = 201, description = "Decision recorded and signed", body = GateDecisionOutcome),
        (status = 401, description = "Wrong password (`invalid_password`; the attempt is audited)", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 403, description = "Only the sponsor's program managers and quality users decide gates", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such milestone visible to the caller", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 409, description = "Not in gate review, items undecided or failed, open critical deviations, already decided, or no own signing password", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 429, description = "Too many failed password attempts; see Retry-After", body = crate::error::Problem, content_type = "application/problem+json")
    )
)]
#[post("/milestones/{id}/gate-decisions")]
pub async fn decide_gate(
    state: web::Data<AppState>,
    ctx: AuthContext,
    id: web::Path<i64>,
    body: ApiJson<DecideGate>,
) -> ApiResult<HttpResponse> {
    let b = body.into_inner();
    let milestone_id = id.into_inner();
    let m = find_scoped::<milestone::Entity, _>(&state.db, &ctx, milestone_id).await?;
    let prog = find_scoped::<program::Entity, _>(&state.db, &ctx, m.program_id).await?;
    let meaning = match b.decision {
        Decision::Go => SignatureMeaning::Approved,
        Decision::NoGo => SignatureMeaning::Rejected,
    };
    if ctx.org_id() != prog.sponsor_org_id
        || !signature::may_sign(ctx.user.role, SignedRecordType::GateDecision, meaning)
    {
        return Err(ApiError::Forbidden(
            "gate decisions are signed by the sponsor's program managers and quality users"
                .to_string(),
        ));
    }
    // Check the rules before asking for the password, so a refused decision costs nothing.
    check_rules(&state.db, &m, b.decision).await?;
    let mut what = SignatureRecord {
        record_type: SignedRecordType::GateDecision,
        // Named after the milestone until the decision row exists (failed attempts log this).
        record_id: format!("milestone-{}", m.id),
        record_hash: String::new(),
        meaning,
        reason: b.notes.clone(),
    };
    signing::authenticate_signer(&state, &ctx, b.password, &what).await?;

    let now = state.clock.now();
    let today = prog.today(now);
    let txn = entity::db::begin_write(&state.db).await?;
    // Re-read and lock inside the write transaction: the state may have moved since, and
    // checklist edits wait for this decision; the program lock orders it against a new
    // critical deviation.
    find_scoped_locked::<program::Entity, _>(&txn, &ctx, prog.id).await?;
    let m = find_scoped_locked::<milestone::Entity, _>(&txn, &ctx, milestone_id).await?;
    let items = check_rules(&txn, &m, b.decision).await?;
    let decision = gate::decision::ActiveModel {
        id: NotSet,
        milestone_id: Set(m.id),
        gate_round: Set(m.gate_round),
        decision: Set(b.decision),
        notes: Set(b.notes.clone()),
        signature_id: Set(0),
        decided_by_user_id: Set(ctx.user.id),
        decided_at: Set(now),
    }
    .insert(&txn)
    .await?;
    what.record_id = decision.id.to_string();
    what.record_hash = entity::audit::content_hash(&serde_json::json!({
        "decision": GateDecisionView::from(&decision),
        "items": items.iter().map(GateItemView::from).collect::<Vec<_>>(),
    }));
    let sig = entity::signature::record(&txn, &ctx.signer(), now, what).await?;
    let mut active: gate::decision::ActiveModel = decision.clone().into();
    active.signature_id = Set(sig.id);
    let decision = active.update(&txn).await?;
    audit_trail::append(
        &txn,
        &ctx.actor(now),
        Entry::new("gate_decision", decision.id, "decide")
            .after(snapshot(&GateDecisionView::from(&decision)))
            .reason(b.notes.clone()),
    )
    .await?;
    entity::domain_event::emit(
        &txn,
        prog.id,
        Event::GateDecided(GateDecided {
            milestone_id: m.id,
            name: m.name.clone(),
            decision: b.decision,
            decision_id: decision.id,
            notes: b.notes.clone(),
        }),
        now,
    )
    .await?;

    let mut action_item_ids = Vec::new();
    if b.decision == Decision::NoGo {
        // Back to rework, and every failed item becomes an action item.
        let mut back: milestone::ActiveModel = m.clone().into();
        back.status = Set(MilestoneStatus::InProgress);
        back.updated_at = Set(now);
        back.version = Set(m.version + 1);
        let reworked = compare_and_set::<milestone::Entity, _>(&txn, back, m.id, m.version).await?;
        audit_trail::append(
            &txn,
            &ctx.actor(now),
            Entry::new("milestone", m.id, "no_go")
                .before(serde_json::json!({"status": m.status, "version": m.version}))
                .after(serde_json::json!({"status": reworked.status, "version": reworked.version}))
                .reason(Some(
                    b.notes
                        .clone()
                        .unwrap_or_else(|| "gate decision: no-go".to_string()),
                )),
        )
        .await?;
        let owner = m.owner_user_id.unwrap_or(ctx.user.id);
        for item in items.iter().filter(|i| i.result == CheckResult::Fail) {
            let created = insert_action(
                &txn,
                &ctx,
                now,
                today,
                NewAction {
                    program_id: m.program_id,
                    title: truncate(&format!("Resolve gate item: {}", item.title), 200),
                    description: item.evidence.clone(),
                    owner_user_id: owner,
                    due_date: today + TimeDelta::days(NO_GO_ACTION_DAYS),
                    source: ActionSource::GateItem,
                    source_id: Some(item.id),
                },
            )
            .await?;
            action_item_ids.push(created.id);
        }
    }
    let m = milestone::Entity::find_by_id(m.id)
        .one(&txn)
        .await?
        .ok_or(ApiError::NotFound)?;
    let gate = gate_view(&txn, &m).await?;
    txn.commit().await?;
    Ok(HttpResponse::Created().json(GateDecisionOutcome {
        decision: GateDecisionView::from(&decision),
        gate,
        action_item_ids,
    }))
}

async fn check_rules<C: ConnectionTrait>(
    conn: &C,
    m: &milestone::Model,
    decision: Decision,
) -> ApiResult<Vec<gate::item::Model>> {
    let items = gate::item::Entity::find()
        .filter(gate::item::Column::MilestoneId.eq(m.id))
        .order_by_asc(gate::item::Column::Position)
        .all(conn)
        .await?;
    let already = gate::decision::Entity::find()
        .filter(gate::decision::Column::MilestoneId.eq(m.id))
        .filter(gate::decision::Column::GateRound.eq(m.gate_round))
        .one(conn)
        .await?;
    if m.status == MilestoneStatus::GateReview && already.is_some() {
        return Err(ApiError::conflict(
            "already_decided",
            "this review round is already decided",
        ));
    }
    let open_critical = deviation::open_critical_count(conn, m.program_id).await?;
    let states: Vec<ItemState<'_>> = items
        .iter()
        .map(|i| ItemState {
            title: &i.title,
            mandatory: i.mandatory,
            result: i.result,
        })
        .collect();
    gate::check_decision(
        decision,
        m.status == MilestoneStatus::GateReview,
        &states,
        open_critical,
    )
    .map_err(|err| {
        let code = match err {
            GateError::NotInReview => "not_in_gate_review",
            GateError::UndecidedItems(_) => "gate_items_undecided",
            GateError::FailedMandatory(_) => "gate_items_failed",
            GateError::OpenCriticalDeviations(_) => "open_critical_deviations",
        };
        ApiError::conflict(code, err.to_string())
    })?;
    Ok(items)
}

/// The checklist is frozen once the milestone is closed or its review round is decided.
async fn ensure_checklist_open<C: ConnectionTrait>(
    conn: &C,
    m: &milestone::Model,
) -> ApiResult<()> {
    if matches!(
        m.status,
        MilestoneStatus::Completed | MilestoneStatus::Cancelled
    ) {
        return Err(ApiError::conflict(
            "milestone_closed",
            "the milestone is completed or cancelled",
        ));
    }
    let decided = gate::decision::Entity::find()
        .filter(gate::decision::Column::MilestoneId.eq(m.id))
        .filter(gate::decision::Column::GateRound.eq(m.gate_round))
        .one(conn)
        .await?;
    if m.status == MilestoneStatus::GateReview && decided.is_some() {
        return Err(ApiError::conflict(
            "gate_decided",
            "this review round is decided; the checklist changes in the next round",
        ));
    }
    Ok(())
}

fn truncate(s: &str, max: usize) -> String {
    s.chars().take(max).collect()
}
