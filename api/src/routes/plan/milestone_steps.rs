//! A milestone's steps: re-baselining its dates (with a reason) and moving it through its
//! workflow (start, gate review, complete, hold, cancel).

use actix_web::{HttpRequest, post, web};
use chrono::NaiveDate;
use entity::access::{may_manage_program, may_update_plan};
use entity::milestone;
use entity::milestone_rules::MilestoneEvent;
use entity::program;
use entity::workflow::milestone as milestone_flow;
use sea_orm::ConnectionTrait;
use serde::Deserialize;
use utoipa::ToSchema;

use super::{check_dates, milestone_view};
use crate::auth::{AuthContext, find_scoped};
use crate::error::ApiResult;
use crate::routes::{ApiJson, Checks, Validate};
use crate::state::AppState;
use crate::transition::{ApiStep, run_step};
use crate::views::plan::MilestoneView;
use crate::views::{EventOptions, Offers};
use crate::write::{Patched, update_versioned};
use actix_web::HttpResponse;

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
        (status = 403, description = "Only the sponsor's admins and program managers re-baseline", body = crate::error::Problem),
        (status = 404, description = "No such milestone visible to the caller", body = crate::error::Problem),
        (status = 409, description = "Stale version", body = crate::error::Problem)
    )
)]
#[post("/milestones/{id}/rebaseline")]
pub async fn rebaseline_milestone(
    req: HttpRequest,
    state: web::Data<AppState>,
    ctx: AuthContext,
    id: web::Path<i64>,
    body: ApiJson<Rebaseline>,
) -> ApiResult<HttpResponse> {
    let b = body.into_inner();
    let now = state.clock.now();
    let view = update_versioned::<milestone::Entity, _>(
        &state,
        &ctx,
        &req,
        id.into_inner(),
        b.version,
        "milestone",
        async |txn, current| {
            let prog = find_scoped::<program::Entity, _>(txn, &ctx, current.program_id).await?;
            ctx.require(
                may_manage_program(ctx.caller(), prog.sides()),
                "only the sponsor's admins and program managers re-baseline",
            )
        },
        async |_, _, m| {
            m.baseline_start = b.baseline_start;
            m.baseline_end = b.baseline_end;
            Ok(Patched {
                action: "rebaseline",
                reason: Some(b.reason.clone()),
            })
        },
        async |txn, m| milestone_view(txn, &ctx, m, now).await,
    )
    .await?;
    Ok(view)
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"event": "start", "on": "2027-03-02", "reason": "the engineering run began on 2 March; entered on the 9th", "version": 3}))]
pub struct MilestoneTransition {
    pub event: MilestoneEvent,
    /// Required for `no_go`, `hold` and `cancel`, and with an `on` before today; kept in
    /// the audit trail.
    #[schema(max_length = 500)]
    pub reason: Option<String>,
    /// With `start` and `complete` only: the day it actually happened (`YYYY-MM-DD`, e.g.
    /// `2027-03-02`), when that was before today; default today in the program's time
    /// zone. Never after today, a completion never before the start; an earlier day needs
    /// a `reason`.
    pub on: Option<NaiveDate>,
    /// The version the caller saw (optional; checked when given or sent as `If-Match`).
    pub version: Option<i32>,
}

impl Validate for MilestoneTransition {
    fn validate(&self, c: &mut Checks) {
        c.optional_text("reason", self.reason.as_deref(), 1, 500);
        if let Some(on) = self.on {
            c.date("on", on);
        }
    }
}

/// Move a milestone through its state machine. An event not allowed from the current
/// state, or blocked by a guard (open dependencies, no go decision), answers 409 with the
/// current state and the allowed events. `start` and `complete` record today as the
/// actual date, or `on`, an earlier day, with a reason (work entered after the fact).
#[utoipa::path(
    tag = "milestones",
    params(
        ("id" = i64, Path, description = "Milestone id"),
        ("If-Match" = Option<String>, Header, pattern = r#"^(W/)?"?[0-9]{1,9}"?$"#, description = "Version the caller saw (optional)")
    ),
    request_body = MilestoneTransition,
    responses(
        (status = 200, description = "The milestone in its new state", body = MilestoneView),
        (status = 403, description = "Not allowed to update this plan", body = crate::error::Problem),
        (status = 404, description = "No such milestone visible to the caller", body = crate::error::Problem),
        (status = 409, description = "Illegal event, guard failed, or stale version; `current_state` and `allowed_events` say what is possible", body = crate::error::Problem),
        (status = 422, description = "`reason` missing (for `no_go`, `hold`, `cancel`, or an `on` before today); `on` after today (`in_future`), before the start (`before_start`) or with another event (`not_applicable`)", body = crate::error::Problem)
    )
)]
#[post("/milestones/{id}/transitions")]
pub async fn transition_milestone(
    req: HttpRequest,
    state: web::Data<AppState>,
    ctx: AuthContext,
    id: web::Path<i64>,
    body: ApiJson<MilestoneTransition>,
) -> ApiResult<HttpResponse> {
    let b = body.into_inner();
    let step = milestone_flow::Step {
        event: b.event,
        reason: b.reason,
        on: b.on,
        asked_at: state.clock.now(),
    };
    run_step(&state, &ctx, &req, id.into_inner(), step, None, b.version).await
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"version": 6, "actual_start": "2027-03-02", "reason": "the batch record shows the run began on 2 March, not the 4th"}))]
pub struct CorrectActualDates {
    /// The version being corrected (or send `If-Match`).
    pub version: Option<i32>,
    /// The day work actually started (`YYYY-MM-DD`), on a milestone that has started.
    pub actual_start: Option<NaiveDate>,
    /// The day it was actually completed (`YYYY-MM-DD`), on a completed milestone.
    pub actual_end: Option<NaiveDate>,
    /// Why; kept in the audit trail with the dates before and after. Required.
    #[schema(min_length = 1, max_length = 500)]
    pub reason: String,
}

impl Validate for CorrectActualDates {
    fn validate(&self, c: &mut Checks) {
        if let Some(d) = self.actual_start {
            c.date("actual_start", d);
        }
        if let Some(d) = self.actual_end {
            c.date("actual_end", d);
        }
        if self.actual_start.is_none() && self.actual_end.is_none() {
            c.fail(
                "actual_start",
                "required",
                "give actual_start, actual_end or both, e.g. \"actual_start\": \"2027-03-02\"",
            );
        }
        c.text("reason", &self.reason, 1, 500);
    }
}

/// Correct a milestone's recorded actual dates (a start or completion entered for the
/// wrong day): only dates it has, never after today in the program's time zone, the end
/// never before the start. Audited with the dates before and after and the reason (sponsor
/// admins and program managers). Schedule health and KPIs read the corrected dates.
#[utoipa::path(
    tag = "milestones",
    params(
        ("id" = i64, Path, description = "Milestone id"),
        ("If-Match" = Option<String>, Header, pattern = r#"^(W/)?"?[0-9]{1,9}"?$"#, description = "Version being corrected (alternative to `version` in the body)")
    ),
    request_body = CorrectActualDates,
    responses(
        (status = 200, description = "The milestone with its corrected dates", body = MilestoneView),
        (status = 403, description = "Only the sponsor's admins and program managers correct actual dates", body = crate::error::Problem),
        (status = 404, description = "No such milestone visible to the caller", body = crate::error::Problem),
        (status = 409, description = "Stale version", body = crate::error::Problem),
        (status = 422, description = "No date given, a date the milestone does not have yet (`not_recorded`), after today (`in_future`), an end before the start (`before_start`), or no reason", body = crate::error::Problem)
    )
)]
#[post("/milestones/{id}/actual-dates")]
pub async fn correct_actual_dates(
    req: HttpRequest,
    state: web::Data<AppState>,
    ctx: AuthContext,
    id: web::Path<i64>,
    body: ApiJson<CorrectActualDates>,
) -> ApiResult<HttpResponse> {
    let b = body.into_inner();
    let now = state.clock.now();
    update_versioned::<milestone::Entity, _>(
        &state,
        &ctx,
        &req,
        id.into_inner(),
        b.version,
        "milestone",
        async |txn, current| {
            let prog = find_scoped::<program::Entity, _>(txn, &ctx, current.program_id).await?;
            ctx.require(
                may_manage_program(ctx.caller(), prog.sides()),
                "only the sponsor's admins and program managers correct actual dates",
            )
        },
        async |txn, current, m| {
            let prog = find_scoped::<program::Entity, _>(txn, &ctx, current.program_id).await?;
            let today = now
                .with_timezone(&entity::schedule::zone(&prog.time_zone))
                .date_naive();
            let (start, end) = entity::milestone_rules::corrected_actual_dates(
                current.status,
                (current.actual_start, current.actual_end),
                (b.actual_start, b.actual_end),
                today,
            )
            .map_err(|e| crate::error::ApiError::invalid(e.field(), e.code(), e.to_string()))?;
            m.actual_start = start;
            m.actual_end = end;
            Ok(Patched {
                action: "correct_actual_dates",
                reason: Some(b.reason.clone()),
            })
        },
        async |txn, m| milestone_view(txn, &ctx, m, now).await,
    )
    .await
}

impl ApiStep for milestone_flow::Step {
    type View = MilestoneView;
    fn offer(view: &mut Self::View, options: EventOptions<Self::Event>) {
        view.offer(options);
    }
    /// Who may take steps on this record at all (403 before anything else).
    async fn may_step(
        conn: &impl ConnectionTrait,
        ctx: &AuthContext,
        m: &Self::Model,
    ) -> ApiResult<()> {
        let prog = find_scoped::<program::Entity, _>(conn, ctx, m.program_id).await?;
        ctx.require(
            may_update_plan(ctx.caller(), prog.sides(), m.owner_user_id),
            "not allowed to update this plan",
        )
    }
    /// As the caller sees it (whether they may update it), on the program's local date.
    async fn view(
        conn: &impl ConnectionTrait,
        ctx: &AuthContext,
        m: &milestone::Model,
        now: chrono::DateTime<chrono::Utc>,
    ) -> ApiResult<MilestoneView> {
        milestone_view(conn, ctx, m, now).await
    }
}
