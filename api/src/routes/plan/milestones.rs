//! Milestones of a program plan: dates, dependencies, derived health, state machine.

use std::collections::{BTreeMap, BTreeSet};

use actix_web::{HttpRequest, HttpResponse, get, patch, post, web};
use chrono::NaiveDate;
use entity::access::{may_manage_program, may_update_plan};
use entity::milestone::{self, MilestoneStatus};
use entity::milestone_dependency;
use entity::milestone_rules::{self};
use entity::program;
use sea_orm::{
    ActiveValue::NotSet, ActiveValue::Set, ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter,
    QueryOrder,
};
use serde::Deserialize;
use utoipa::{IntoParams, ToSchema};

use super::{check_dates, milestone_view, render_milestone as render};
use crate::auth::{AuthContext, find_scoped, find_scoped_locked};
use crate::error::{ApiError, ApiResult};
use crate::pagination::{Keyset, ListQuery, Page, Paging, fetch_page};
use crate::records::check_owner;
use crate::routes::{ApiJson, Checks, Validate};
use crate::state::AppState;
use crate::transition::answer;
use crate::views::plan::{MilestoneView, dependencies_of, milestone as view};
use crate::write::{Patched, insert_audited, update_versioned};
use crate::write_txn::WriteTxn;
use actix_web::http::StatusCode;
use entity::workflow::milestone as milestone_flow;

/// Most dependencies one milestone may have.
const MAX_DEPENDENCIES: usize = 50;

/// Checks that `depends_on` names other milestones of the same program and that the
/// plan stays acyclic once `milestone_id` depends on them; 422 naming the cycle if not.
async fn check_dependencies<C: ConnectionTrait>(
    conn: &C,
    program_id: i64,
    milestone_id: Option<i64>,
    depends_on: &BTreeSet<i64>,
) -> ApiResult<()> {
    if depends_on.len() > MAX_DEPENDENCIES {
        return Err(ApiError::invalid(
            "depends_on",
            "too_many",
            format!("at most {MAX_DEPENDENCIES} dependencies"),
        ));
    }
    if milestone_id.is_some_and(|id| depends_on.contains(&id)) {
        return Err(ApiError::invalid(
            "depends_on",
            "cycle",
            "a milestone cannot depend on itself",
        ));
    }
    let siblings = milestone::Entity::find()
        .filter(milestone::Column::ProgramId.eq(program_id))
        .all(conn)
        .await?;
    let names: BTreeMap<i64, String> = siblings.iter().map(|m| (m.id, m.name.clone())).collect();
    if let Some(unknown) = depends_on.iter().find(|id| !names.contains_key(id)) {
        return Err(ApiError::invalid(
            "depends_on",
            "unknown_milestone",
            format!("milestone {unknown} is not part of this program"),
        ));
    }
    let Some(milestone_id) = milestone_id else {
        // A new milestone has no dependents yet: it cannot close a cycle.
        return Ok(());
    };
    let ids: Vec<i64> = names.keys().copied().collect();
    let mut edges: BTreeMap<i64, BTreeSet<i64>> = dependencies_of(conn, &ids)
        .await?
        .into_iter()
        .map(|(k, v)| (k, v.into_iter().collect()))
        .collect();
    edges.insert(milestone_id, depends_on.clone());
    if let Some(cycle) = milestone_rules::find_cycle(&edges) {
        let path: Vec<String> = cycle
            .iter()
            .map(|id| names.get(id).cloned().unwrap_or_else(|| id.to_string()))
            .collect();
        return Err(ApiError::invalid(
            "depends_on",
            "cycle",
            format!("this would make a dependency cycle: {}", path.join(" → ")),
        ));
    }
    Ok(())
}

async fn replace_dependencies<C: ConnectionTrait>(
    conn: &C,
    milestone_id: i64,
    depends_on: &BTreeSet<i64>,
) -> ApiResult<()> {
    milestone_dependency::Entity::delete_many()
        .filter(milestone_dependency::Column::MilestoneId.eq(milestone_id))
        .exec(conn)
        .await?;
    if !depends_on.is_empty() {
        milestone_dependency::Entity::insert_many(depends_on.iter().map(|d| {
            milestone_dependency::ActiveModel {
                milestone_id: Set(milestone_id),
                depends_on_id: Set(*d),
            }
        }))
        .exec(conn)
        .await?;
    }
    Ok(())
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({
    "name": "Engineering runs", "phase": "Manufacturing readiness", "owner_user_id": 5,
    "baseline_start": "2027-03-01", "baseline_end": "2027-04-15", "depends_on": [10, 11]
}))]
pub struct CreateMilestone {
    #[schema(min_length = 1, max_length = 200)]
    pub name: String,
    #[schema(min_length = 1, max_length = 100)]
    pub phase: String,
    pub owner_user_id: Option<i64>,
    pub baseline_start: NaiveDate,
    pub baseline_end: NaiveDate,
    /// Default: the baseline.
    pub forecast_start: Option<NaiveDate>,
    /// Default: the baseline.
    pub forecast_end: Option<NaiveDate>,
    /// Milestones of the same program that must complete first.
    #[schema(max_items = 50)]
    pub depends_on: Option<Vec<i64>>,
    /// Order in the plan (default: last).
    #[schema(minimum = 0, maximum = 100000)]
    pub position: Option<i32>,
}

impl Validate for CreateMilestone {
    fn validate(&self, c: &mut Checks) {
        c.date("baseline_start", self.baseline_start);
        c.date("baseline_end", self.baseline_end);
        c.optional_date("forecast_start", self.forecast_start);
        c.optional_date("forecast_end", self.forecast_end);
        c.text("name", &self.name, 1, 200);
        c.text("phase", &self.phase, 1, 100);
        check_dates(
            c,
            "baseline_start",
            self.baseline_start,
            "baseline_end",
            self.baseline_end,
        );
        let fs = self.forecast_start.unwrap_or(self.baseline_start);
        let fe = self.forecast_end.unwrap_or(self.baseline_end);
        check_dates(c, "forecast_start", fs, "forecast_end", fe);
        if self.position.is_some_and(|p| !(0..=100_000).contains(&p)) {
            c.fail(
                "position",
                "out_of_range",
                "a whole number from 0 to 100000, e.g. 3",
            );
        }
    }
}

/// Add a milestone to a program's plan (program managers and admins of either side).
#[utoipa::path(
    tag = "milestones",
    params(("id" = i64, Path, description = "Program id")),
    request_body = CreateMilestone,
    responses(
        (status = 201, description = "Milestone created", body = MilestoneView),
        (status = 403, description = "Not allowed to update this plan", body = crate::error::Problem),
        (status = 404, description = "No such program visible to the caller", body = crate::error::Problem)
    )
)]
#[post("/programs/{id}/milestones")]
pub async fn create_milestone(
    state: web::Data<AppState>,
    ctx: AuthContext,
    id: web::Path<i64>,
    body: ApiJson<CreateMilestone>,
) -> ApiResult<HttpResponse> {
    let b = body.into_inner();
    let txn = WriteTxn::begin(&state, &ctx).await?;
    // The program row lock serializes plan changes, so dependency checks cannot race.
    let prog = find_scoped_locked::<program::Entity, _>(&txn, &ctx, id.into_inner()).await?;
    if !may_update_plan(ctx.caller(), prog.sides(), None) {
        return Err(ApiError::Forbidden(
            "program managers and admins of the sponsor or CMO update the plan".to_string(),
        ));
    }
    if let Some(owner) = b.owner_user_id {
        check_owner(&txn, &prog, owner).await?;
    }
    let depends_on: BTreeSet<i64> = b.depends_on.unwrap_or_default().into_iter().collect();
    check_dependencies(&txn, prog.id, None, &depends_on).await?;
    let position = match b.position {
        Some(p) => p,
        None => {
            let last = milestone::Entity::find()
                .filter(milestone::Column::ProgramId.eq(prog.id))
                .order_by_desc(milestone::Column::Position)
                .one(&txn)
                .await?;
            last.map_or(0, |m| m.position.saturating_add(1))
        }
    };
    let now = state.clock.now();
    let (_, rendered) = insert_audited(
        &txn,
        &ctx.actor(now),
        "milestone",
        milestone::ActiveModel {
            id: NotSet,
            program_id: Set(prog.id),
            name: Set(b.name.trim().to_string()),
            phase: Set(b.phase.trim().to_string()),
            owner_user_id: Set(b.owner_user_id),
            status: Set(MilestoneStatus::Planned),
            held_from: Set(None),
            baseline_start: Set(b.baseline_start),
            baseline_end: Set(b.baseline_end),
            forecast_start: Set(b.forecast_start.unwrap_or(b.baseline_start)),
            forecast_end: Set(b.forecast_end.unwrap_or(b.baseline_end)),
            actual_start: Set(None),
            actual_end: Set(None),
            position: Set(position),
            gate_round: Set(0),
            created_at: Set(now),
            updated_at: Set(now),
            version: Set(1),
        },
        async |created| {
            replace_dependencies(&txn, created.id, &depends_on).await?;
            render(&txn, &ctx, &prog, created, now).await
        },
    )
    .await?;
    txn.respond(StatusCode::CREATED, &rendered).await
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct MilestoneFilter {
    pub status: Option<MilestoneStatus>,
    pub owner_user_id: Option<i64>,
}

/// The program's plan, in plan order.
#[utoipa::path(
    tag = "milestones",
    params(("id" = i64, Path, description = "Program id"), MilestoneFilter, Paging),
    responses(
        (status = 200, description = "One page of the plan", body = Page<MilestoneView>),
        (status = 404, description = "No such program visible to the caller", body = crate::error::Problem),
        (status = 422, description = "Invalid filter", body = crate::error::Problem)
    )
)]
#[get("/programs/{id}/milestones")]
pub async fn list_milestones(
    state: web::Data<AppState>,
    ctx: AuthContext,
    id: web::Path<i64>,
    query: ListQuery<MilestoneFilter>,
) -> ApiResult<web::Json<Page<MilestoneView>>> {
    let prog = find_scoped::<program::Entity, _>(&state.reads, &ctx, id.into_inner()).await?;
    let f = query.filter;
    let mut select = milestone::Entity::find().filter(milestone::Column::ProgramId.eq(prog.id));
    if let Some(s) = f.status {
        select = select.filter(milestone::Column::Status.eq(s));
    }
    if let Some(o) = f.owner_user_id {
        select = select.filter(milestone::Column::OwnerUserId.eq(o));
    }
    let page = fetch_page(
        &state.reads,
        select,
        Keyset::asc([milestone::Column::Position, milestone::Column::Id]),
        &query.paging,
    )
    .await?;
    let items = &page.items;
    let ids: Vec<i64> = items.iter().map(|m| m.id).collect();
    let mut deps = dependencies_of(&state.reads, &ids).await?;
    let today = prog.today(state.clock.now());
    let items = items
        .iter()
        .map(|m| {
            let may = may_update_plan(ctx.caller(), prog.sides(), m.owner_user_id);
            view(m, deps.remove(&m.id).unwrap_or_default(), today, may)
        })
        .collect();
    Ok(web::Json(page.with_items(items)))
}

/// One milestone.
#[utoipa::path(
    tag = "milestones",
    params(("id" = i64, Path, description = "Milestone id")),
    responses(
        (status = 200, description = "The milestone", body = MilestoneView),
        (status = 404, description = "No such milestone visible to the caller", body = crate::error::Problem)
    )
)]
#[get("/milestones/{id}")]
pub async fn get_milestone(
    state: web::Data<AppState>,
    ctx: AuthContext,
    id: web::Path<i64>,
) -> ApiResult<HttpResponse> {
    let m = find_scoped::<milestone::Entity, _>(&state.reads, &ctx, id.into_inner()).await?;
    let now = state.clock.now();
    let rendered = answer::<milestone_flow::Step>(&state.reads, &ctx, &m, now).await?;
    Ok(HttpResponse::Ok()
        .insert_header((actix_web::http::header::ETAG, format!("\"{}\"", m.version)))
        .json(rendered))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"version": 3, "forecast_end": "2027-04-29", "reason": "bioreactor delivery slipped two weeks"}))]
pub struct UpdateMilestone {
    /// The version being updated (or send `If-Match`).
    pub version: Option<i32>,
    #[schema(min_length = 1, max_length = 200)]
    pub name: Option<String>,
    #[schema(min_length = 1, max_length = 100)]
    pub phase: Option<String>,
    pub owner_user_id: Option<i64>,
    pub forecast_start: Option<NaiveDate>,
    pub forecast_end: Option<NaiveDate>,
    /// Replaces the dependency set; a cycle is refused with 422 naming it.
    #[schema(max_items = 50)]
    pub depends_on: Option<Vec<i64>>,
    #[schema(minimum = 0, maximum = 100000)]
    pub position: Option<i32>,
    /// Why; kept in the audit trail.
    #[schema(max_length = 500)]
    pub reason: Option<String>,
}

impl Validate for UpdateMilestone {
    fn validate(&self, c: &mut Checks) {
        c.optional_date("forecast_start", self.forecast_start);
        c.optional_date("forecast_end", self.forecast_end);
        c.optional_text("name", self.name.as_deref(), 1, 200);
        c.optional_text("phase", self.phase.as_deref(), 1, 100);
        c.optional_text("reason", self.reason.as_deref(), 1, 500);
        if self.position.is_some_and(|p| !(0..=100_000).contains(&p)) {
            c.fail(
                "position",
                "out_of_range",
                "a whole number from 0 to 100000, e.g. 3",
            );
        }
    }
}

/// Update a milestone's name, owner, forecast, dependencies or position. The baseline
/// changes only by re-baselining; the status only by transitions.
#[utoipa::path(
    tag = "milestones",
    params(
        ("id" = i64, Path, description = "Milestone id"),
        ("If-Match" = Option<String>, Header, pattern = r#"^(W/)?"?[0-9]{1,9}"?$"#, description = "Version being updated (alternative to `version` in the body)")
    ),
    request_body = UpdateMilestone,
    responses(
        (status = 200, description = "The updated milestone", body = MilestoneView),
        (status = 403, description = "Not allowed to update this plan", body = crate::error::Problem),
        (status = 404, description = "No such milestone visible to the caller", body = crate::error::Problem),
        (status = 409, description = "Stale version", body = crate::error::Problem)
    )
)]
#[patch("/milestones/{id}")]
pub async fn update_milestone(
    req: HttpRequest,
    state: web::Data<AppState>,
    ctx: AuthContext,
    id: web::Path<i64>,
    body: ApiJson<UpdateMilestone>,
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
            // Locked: dependency changes of one program are checked for cycles one at a
            // time.
            let prog =
                find_scoped_locked::<program::Entity, _>(txn, &ctx, current.program_id).await?;
            ctx.require(
                may_update_plan(ctx.caller(), prog.sides(), current.owner_user_id),
                "not allowed to update this plan",
            )?;
            // Owners report forecasts; the plan's structure (dependencies, owner) is the
            // sponsor's, and name and order are managers' on either side.
            let structural = b.depends_on.is_some() || b.owner_user_id.is_some();
            ctx.require(
                !structural || may_manage_program(ctx.caller(), prog.sides()),
                "dependencies and owners are changed by the sponsor's admins and program managers",
            )?;
            let naming = b.name.is_some() || b.phase.is_some() || b.position.is_some();
            ctx.require(
                !naming || may_update_plan(ctx.caller(), prog.sides(), None),
                "names and order are changed by program managers and admins",
            )
        },
        async |txn, current, m| {
            m.forecast_start = b.forecast_start.unwrap_or(current.forecast_start);
            m.forecast_end = b.forecast_end.unwrap_or(current.forecast_end);
            let mut checks = Checks::default();
            check_dates(
                &mut checks,
                "forecast_start",
                m.forecast_start,
                "forecast_end",
                m.forecast_end,
            );
            checks.finish()?;
            if let Some(owner) = b.owner_user_id {
                let prog = find_scoped::<program::Entity, _>(txn, &ctx, current.program_id).await?;
                check_owner(txn, &prog, owner).await?;
                m.owner_user_id = Some(owner);
            }
            if let Some(deps) = &b.depends_on {
                let deps: BTreeSet<i64> = deps.iter().copied().collect();
                check_dependencies(txn, current.program_id, Some(current.id), &deps).await?;
                replace_dependencies(txn, current.id, &deps).await?;
            }
            if let Some(v) = &b.name {
                m.name = v.trim().to_string();
            }
            if let Some(v) = &b.phase {
                m.phase = v.trim().to_string();
            }
            if let Some(v) = b.position {
                m.position = v;
            }
            Ok(Patched::update(b.reason.clone()))
        },
        async |txn, m| milestone_view(txn, &ctx, m, now).await,
    )
    .await?;
    Ok(view)
}
