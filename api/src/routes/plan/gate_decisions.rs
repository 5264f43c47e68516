//! The signed go/no-go on a gate (SPEC §3): the checklist and open critical deviations
//! decide whether a go is possible; a no-go sends the milestone back to work and turns
//! every failed item into an action item.

use actix_web::{HttpRequest, HttpResponse, post, web};
use entity::gate::Decision;
use entity::milestone;
use entity::program;
use entity::workflow::gate as gate_flow;
use sea_orm::ConnectionTrait;
use serde::Deserialize;
use utoipa::ToSchema;

use super::milestone_view;
use crate::auth::{AuthContext, find_scoped};
use crate::error::{ApiError, ApiResult};
use crate::routes::{ApiJson, Checks, Validate};
use crate::state::AppState;
use crate::transition::{ApiStep, run_step_answering};
use crate::views::EventOptions;
use crate::views::plan::GateDecisionOutcome;
use crate::views::plan::{GateDecisionView, MilestoneView, gate_view};
use actix_web::http::StatusCode;

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
        (status = 401, description = "Wrong password (`invalid_password`; the attempt is audited)", body = crate::error::Problem),
        (status = 403, description = "Only the sponsor's program managers and quality users decide gates", body = crate::error::Problem),
        (status = 404, description = "No such milestone visible to the caller", body = crate::error::Problem),
        (status = 409, description = "Not in gate review, items undecided or failed, open critical deviations, already decided, or no own signing password", body = crate::error::Problem),
        (status = 429, description = "Too many failed password attempts; see Retry-After", body = crate::error::Problem)
    )
)]
#[post("/milestones/{id}/gate-decisions")]
pub async fn decide_gate(
    req: HttpRequest,
    state: web::Data<AppState>,
    ctx: AuthContext,
    id: web::Path<i64>,
    body: ApiJson<DecideGate>,
) -> ApiResult<HttpResponse> {
    let b = body.into_inner();
    let step = gate_flow::Decide {
        decision: b.decision,
        notes: b.notes,
    };
    run_step_answering(
        &state,
        &ctx,
        &req,
        id.into_inner(),
        step,
        Some(b.password),
        None,
        async |txn, milestone, completed| {
            let m = find_scoped::<milestone::Entity, _>(txn, &ctx, milestone.id).await?;
            let decision = gate_flow::round_decision(txn, &m)
                .await?
                .ok_or(ApiError::NotFound)?;
            let gate = gate_view(txn, &m).await?;
            let outcome = GateDecisionOutcome {
                decision: GateDecisionView::from(&decision),
                gate,
                action_item_ids: completed.action_item_ids,
            };
            Ok((StatusCode::CREATED, outcome))
        },
    )
    .await
}

impl ApiStep for gate_flow::Decide {
    type View = MilestoneView;
    /// The milestone's own events are offered by its transitions; what blocks a go is
    /// the gate's answer (`go_blockers`).
    const OFFERS_EVENTS: bool = false;
    fn offer(_: &mut MilestoneView, _: EventOptions<entity::gate::Decision>) {}
    /// Who may take steps on this record at all (403 before anything else).
    async fn may_step(
        conn: &impl ConnectionTrait,
        ctx: &AuthContext,
        m: &Self::Model,
    ) -> ApiResult<()> {
        let prog = find_scoped::<program::Entity, _>(conn, ctx, m.program_id).await?;
        // Who decides is said before whether the gate can be decided (go and no-go are
        // signed by the same roles).
        ctx.permit(entity::access::Action::DecideGate, prog.sides())
    }
    /// The milestone, as its transitions show it.
    async fn view(
        conn: &impl ConnectionTrait,
        ctx: &AuthContext,
        m: &milestone::Model,
        now: chrono::DateTime<chrono::Utc>,
    ) -> ApiResult<MilestoneView> {
        milestone_view(conn, ctx, m, now).await
    }
}
