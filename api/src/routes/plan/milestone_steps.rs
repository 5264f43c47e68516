//! A milestone's steps: re-baselining its dates (with a reason) and moving it through its
//! workflow (start, gate review, complete, hold, cancel).

use entity::domain_event::{Event, MilestoneTransitioned};

use actix_web::{HttpRequest, post, web};
use chrono::NaiveDate;
use entity::access::{may_manage_program, may_update_plan};
use entity::audit_trail::{self, Entry};
use entity::milestone::{self, MilestoneStatus};
use entity::milestone_rules::{self, Guards, MilestoneEvent, TransitionError};
use entity::program;
use sea_orm::{
    ActiveValue::Set, ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, QueryOrder,
};
use serde::Deserialize;
use utoipa::ToSchema;

use super::{check_dates, render_milestone as render};
use crate::auth::{AuthContext, find_scoped};
use crate::error::{ApiError, ApiResult};
use crate::routes::{ApiJson, Checks, Validate, compare_and_set, expected_version, snapshot};
use crate::state::AppState;
use crate::views::plan::{MilestoneView, dependencies_of};

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"version": 4, "baseline_start": "2027-03-15", "baseline_end": "2027-05-15", "reason": "steering committee approved the revised plan on 2027-02-20"}))]
pub struct Rebaseline {
    /// The version being re-baselined (or send `If-Match`).
    pub version: Option<i32>,
    pub baseline_start: NaiveDate,
    pub baseline_end: NaiveDate,
    /// Why; kept in the audit trail. Required.
    #[schema(min_length = 1, max_length = 500)]
    pub reason: String,
}

impl Validate for Rebaseline {
    fn validate(&self, c: &mut Checks) {
        c.date("baseline_start", self.baseline_start);
        c.date("baseline_end", self.baseline_end);
        check_dates(
            c,
            "baseline_start",
            self.baseline_start,
            "baseline_end",
            self.baseline_end,
        );
        c.text("reason", &self.reason, 1, 500);
    }
}

/// Move a milestone's baseline: an explicit, audited decision with a reason (sponsor
/// admins and program managers).
#[utoipa::path(
    tag = "milestones",
    params(
        ("id" = i64, Path, description = "Milestone id"),
        ("If-Match" = Option<String>, Header, pattern = r#"^(W/)?"?[0-9]{1,9}"?$"#, description = "Version being re-baselined (alternative to `version` in the body)")
    ),
    request_body = Rebaseline,
    responses(
        (status = 200, description = "The re-baselined milestone", body = MilestoneView),
        (status = 403, description = "Only the sponsor's admins and program managers re-baseline", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such milestone visible to the caller", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 409, description = "Stale version", body = crate::error::Problem, content_type = "application/problem+json")
    )
)]
#[post("/milestones/{id}/rebaseline")]
pub async fn rebaseline_milestone(
    req: HttpRequest,
    state: web::Data<AppState>,
    ctx: AuthContext,
    id: web::Path<i64>,
    body: ApiJson<Rebaseline>,
) -> ApiResult<web::Json<MilestoneView>> {
    let b = body.into_inner();
    let version = expected_version(&req, b.version)?;
    let txn = entity::db::begin_write(&state.db).await?;
    let current = find_scoped::<milestone::Entity, _>(&txn, &ctx, id.into_inner()).await?;
    let prog = find_scoped::<program::Entity, _>(&txn, &ctx, current.program_id).await?;
    if !may_manage_program(ctx.caller(), prog.sides()) {
        return Err(ApiError::Forbidden(
            "only the sponsor's admins and program managers re-baseline".to_string(),
        ));
    }
    if current.version != version {
        return Err(ApiError::stale_version(current.version));
    }
    let now = state.clock.now();
    let before = render(&txn, &ctx, &prog, &current, now).await?;
    let mut active: milestone::ActiveModel = current.clone().into();
    active.baseline_start = Set(b.baseline_start);
    active.baseline_end = Set(b.baseline_end);
    active.updated_at = Set(now);
    active.version = Set(current.version + 1);
    let updated =
        compare_and_set::<milestone::Entity, _>(&txn, active, current.id, current.version).await?;
    let after = render(&txn, &ctx, &prog, &updated, now).await?;
    audit_trail::append(
        &txn,
        &ctx.actor(now),
        Entry::new("milestone", updated.id, "rebaseline")
            .before(snapshot(&before))
            .after(snapshot(&after))
            .reason(Some(b.reason)),
    )
    .await?;
    txn.commit().await?;
    Ok(web::Json(after))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"event": "hold", "reason": "waiting for the CMO's suite qualification", "version": 3}))]
pub struct MilestoneTransition {
    pub event: MilestoneEvent,
    /// Required for `no_go`, `hold` and `cancel`; kept in the audit trail.
    #[schema(max_length = 500)]
    pub reason: Option<String>,
    /// The version the caller saw (optional; checked when given or sent as `If-Match`).
    pub version: Option<i32>,
}

impl Validate for MilestoneTransition {
    fn validate(&self, c: &mut Checks) {
        c.optional_text("reason", self.reason.as_deref(), 1, 500);
    }
}

/// Move a milestone through its state machine. An event not allowed from the current
/// state, or blocked by a guard (open dependencies, no go decision), answers 409 with the
/// current state and the allowed events.
#[utoipa::path(
    tag = "milestones",
    params(
        ("id" = i64, Path, description = "Milestone id"),
        ("If-Match" = Option<String>, Header, pattern = r#"^(W/)?"?[0-9]{1,9}"?$"#, description = "Version the caller saw (optional)")
    ),
    request_body = MilestoneTransition,
    responses(
        (status = 200, description = "The milestone in its new state", body = MilestoneView),
        (status = 403, description = "Not allowed to update this plan", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such milestone visible to the caller", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 409, description = "Illegal event, guard failed, or stale version; `current_state` and `allowed_events` say what is possible", body = crate::error::Problem, content_type = "application/problem+json")
    )
)]
#[post("/milestones/{id}/transitions")]
pub async fn transition_milestone(
    req: HttpRequest,
    state: web::Data<AppState>,
    ctx: AuthContext,
    id: web::Path<i64>,
    body: ApiJson<MilestoneTransition>,
) -> ApiResult<web::Json<MilestoneView>> {
    let b = body.into_inner();
    let seen_version = if b.version.is_some()
        || req
            .headers()
            .contains_key(actix_web::http::header::IF_MATCH)
    {
        Some(expected_version(&req, b.version)?)
    } else {
        None
    };
    let txn = entity::db::begin_write(&state.db).await?;
    let current = find_scoped::<milestone::Entity, _>(&txn, &ctx, id.into_inner()).await?;
    let prog = find_scoped::<program::Entity, _>(&txn, &ctx, current.program_id).await?;
    if !may_update_plan(ctx.caller(), prog.sides(), current.owner_user_id) {
        return Err(ApiError::Forbidden(
            "not allowed to update this plan".to_string(),
        ));
    }
    if seen_version.is_some_and(|v| v != current.version) {
        return Err(ApiError::stale_version(current.version));
    }
    if b.event == MilestoneEvent::NoGo {
        return Err(ApiError::conflict(
            "use_gate_decision",
            "a no-go is a signed gate decision: POST /api/v1/milestones/{id}/gate-decisions",
        ));
    }
    let guards = guards_for(&txn, &current, b.event, b.reason.is_some()).await?;
    let next =
        milestone_rules::transition(current.status, b.event, &guards).map_err(|err| match err {
            TransitionError::ReasonRequired => {
                ApiError::invalid("reason", "required", "this event needs a reason")
            }
            other => ApiError::Conflict {
                code: "illegal_transition",
                detail: other.to_string(),
                current_state: Some(crate::routes::wire_name(&current.status)),
                allowed_events: Some(
                    milestone_rules::allowed_events(current.status, current.held_from)
                        .into_iter()
                        .filter(|e| *e != MilestoneEvent::NoGo)
                        .map(event_name)
                        .collect(),
                ),
                current_version: Some(current.version),
            },
        })?;
    let now = state.clock.now();
    let today = prog.today(now);
    let before = render(&txn, &ctx, &prog, &current, now).await?;
    let mut active: milestone::ActiveModel = current.clone().into();
    active.status = Set(next);
    match b.event {
        MilestoneEvent::Start => active.actual_start = Set(Some(today)),
        MilestoneEvent::Complete => active.actual_end = Set(Some(today)),
        MilestoneEvent::Hold => active.held_from = Set(Some(current.status)),
        MilestoneEvent::SubmitForGate => active.gate_round = Set(current.gate_round + 1),
        MilestoneEvent::Resume => active.held_from = Set(None),
        _ => {}
    }
    active.updated_at = Set(now);
    active.version = Set(current.version + 1);
    // Compare-and-set: of many identical concurrent transitions exactly one wins.
    let updated =
        compare_and_set::<milestone::Entity, _>(&txn, active, current.id, current.version).await?;
    let after = render(&txn, &ctx, &prog, &updated, now).await?;
    audit_trail::append(
        &txn,
        &ctx.actor(now),
        Entry::new("milestone", updated.id, transition_action(b.event))
            .before(snapshot(&before))
            .after(snapshot(&after))
            .reason(b.reason),
    )
    .await?;
    entity::domain_event::emit(
        &txn,
        updated.program_id,
        Event::MilestoneTransitioned(MilestoneTransitioned {
            milestone_id: updated.id,
            name: updated.name.clone(),
            event: b.event,
            from: current.status,
            to: updated.status,
        }),
        now,
    )
    .await?;
    txn.commit().await?;
    Ok(web::Json(after))
}

async fn guards_for<C: ConnectionTrait>(
    conn: &C,
    m: &milestone::Model,
    event: MilestoneEvent,
    has_reason: bool,
) -> ApiResult<Guards> {
    let mut guards = Guards {
        held_from: m.held_from,
        has_reason,
        ..Guards::default()
    };
    if event == MilestoneEvent::Start {
        let deps = dependencies_of(conn, &[m.id])
            .await?
            .remove(&m.id)
            .unwrap_or_default();
        if !deps.is_empty() {
            let open = milestone::Entity::find()
                .filter(milestone::Column::Id.is_in(deps))
                .filter(milestone::Column::Status.ne(MilestoneStatus::Completed))
                .order_by_asc(milestone::Column::Position)
                .all(conn)
                .await?;
            guards.open_dependencies = open.into_iter().map(|d| d.name).collect();
        }
    }
    if event == MilestoneEvent::Complete {
        // Only a decision of the current review round counts.
        let decision = entity::gate::decision::Entity::find()
            .filter(entity::gate::decision::Column::MilestoneId.eq(m.id))
            .filter(entity::gate::decision::Column::GateRound.eq(m.gate_round))
            .one(conn)
            .await?;
        guards.gate_go = decision.map(|d| d.decision == entity::gate::Decision::Go);
    }
    Ok(guards)
}

fn transition_action(event: MilestoneEvent) -> &'static str {
    match event {
        MilestoneEvent::Start => "start",
        MilestoneEvent::SubmitForGate => "submit_for_gate",
        MilestoneEvent::Complete => "complete",
        MilestoneEvent::NoGo => "no_go",
        MilestoneEvent::Hold => "hold",
        MilestoneEvent::Resume => "resume",
        MilestoneEvent::Cancel => "cancel",
    }
}

fn event_name(e: MilestoneEvent) -> String {
    transition_action(e).to_string()
}
