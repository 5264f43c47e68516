//! The signed go/no-go on a gate (SPEC §3): the checklist and open critical deviations
//! decide whether a go is possible; a no-go sends the milestone back to work and turns
//! every failed item into an action item.

use actix_web::{HttpResponse, post, web};
use chrono::TimeDelta;
use entity::action_item::ActionSource;
use entity::audit_trail::{self, Entry};
use entity::domain_event::{Event, GateDecided};
use entity::gate::{self, CheckResult, Decision, GateError, ItemState};
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
use crate::routes::{ApiJson, Checks, Validate, compare_and_set, snapshot};
use crate::signing;
use crate::state::AppState;
use crate::views::plan::GateItemView;
use crate::views::plan::{GateDecisionView, GateView, gate_view};
use entity::signature::SignatureRecord;

/// Days a no-go's follow-up actions get by default.
pub const NO_GO_ACTION_DAYS: i64 = 7;

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

fn truncate(s: &str, max: usize) -> String {
    s.chars().take(max).collect()
}
