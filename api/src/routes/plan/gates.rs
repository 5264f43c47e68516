//! Go/no-go gates: the checklist on each milestone and the signed decision.

use actix_web::{HttpRequest, HttpResponse, get, patch, post, web};
use entity::access::may_update_plan;
use entity::gate::{self, CheckResult, CheckType};
use entity::milestone::{self, MilestoneStatus};
use entity::program;
use sea_orm::{ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, QueryOrder};
use serde::Deserialize;
use utoipa::ToSchema;

use crate::auth::{AuthContext, find_scoped, find_scoped_locked};
use crate::error::{ApiError, ApiResult};
use crate::records::{NewGateItem, insert_gate_item};
use crate::routes::{ApiJson, Checks, Validate};
use crate::state::AppState;
use crate::views::plan::GateItemView;
use crate::views::plan::{GateView, gate_view};
use crate::write::{Patched, update_versioned};
use crate::write_txn::WriteTxn;
use actix_web::http::StatusCode;

/// The gate of a milestone.
#[utoipa::path(
    tag = "gates",
    params(("id" = i64, Path, description = "Milestone id")),
    responses(
        (status = 200, description = "Checklist, decisions and blockers", body = GateView),
        (status = 404, description = "No such milestone visible to the caller", body = crate::error::Problem)
    )
)]
#[get("/milestones/{id}/gate")]
pub async fn get_gate(
    state: web::Data<AppState>,
    ctx: AuthContext,
    id: web::Path<i64>,
) -> ApiResult<web::Json<GateView>> {
    let m = find_scoped::<milestone::Entity, _>(&state.reads, &ctx, id.into_inner()).await?;
    Ok(web::Json(gate_view(&state.reads, &m).await?))
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
            c.fail(
                "position",
                "out_of_range",
                "a whole number from 0 to 10000, e.g. 3",
            );
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
        (status = 403, description = "Not allowed to update this plan", body = crate::error::Problem),
        (status = 404, description = "No such milestone visible to the caller", body = crate::error::Problem),
        (status = 409, description = "The milestone is completed or cancelled", body = crate::error::Problem)
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
    let txn = WriteTxn::begin(&state, &ctx).await?;
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
    txn.respond(StatusCode::CREATED, &GateItemView::from(&item))
        .await
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
        (status = 403, description = "Not allowed to update this plan", body = crate::error::Problem),
        (status = 404, description = "No such gate item visible to the caller", body = crate::error::Problem),
        (status = 409, description = "Stale version, or the milestone is completed or cancelled", body = crate::error::Problem)
    )
)]
#[patch("/gate-items/{id}")]
pub async fn update_gate_item(
    req: HttpRequest,
    state: web::Data<AppState>,
    ctx: AuthContext,
    id: web::Path<i64>,
    body: ApiJson<UpdateGateItem>,
) -> ApiResult<HttpResponse> {
    let b = body.into_inner();
    let now = state.clock.now();
    let view = update_versioned::<gate::item::Entity, _>(
        &state,
        &ctx,
        &req,
        id.into_inner(),
        b.version,
        "gate_item",
        async |txn, current| {
            // Locked: a gate decision reads the checklist under the same lock.
            let m =
                find_scoped_locked::<milestone::Entity, _>(txn, &ctx, current.milestone_id).await?;
            let prog = find_scoped::<program::Entity, _>(txn, &ctx, m.program_id).await?;
            ctx.require(
                may_update_plan(ctx.caller(), prog.sides(), m.owner_user_id),
                "not allowed to update this plan",
            )?;
            // What a `go` requires is the sponsor's to define.
            ctx.require(
                (b.mandatory.is_none() && b.title.is_none())
                    || entity::access::may_manage_program(ctx.caller(), prog.sides()),
                "only the sponsor's admins and program managers change what a gate checks",
            )?;
            ensure_checklist_open(txn, &m).await
        },
        async |_, _, item| {
            if let Some(result) = b.result {
                item.result = result;
                let decided = result != CheckResult::Pending;
                item.decided_by_user_id = decided.then_some(ctx.user.id);
                item.decided_at = decided.then_some(now);
            }
            if let Some(v) = &b.evidence {
                item.evidence = Some(v.clone());
            }
            if let Some(v) = &b.title {
                item.title = v.trim().to_string();
            }
            if let Some(v) = b.mandatory {
                item.mandatory = v;
            }
            Ok(Patched::update(None))
        },
        async |_, item| Ok(GateItemView::from(item)),
    )
    .await?;
    Ok(view)
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
