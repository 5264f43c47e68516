//! Plan templates and the program overview.

use actix_web::{HttpResponse, get, post, web};
use chrono::NaiveDate;
use entity::access::may_manage_program;
use entity::action_item::{self, ActionStatus};
use entity::audit_trail::{self, Entry};
use entity::milestone::{self, MilestoneStatus};
use entity::overview::{self, PlanSummary};
use entity::plan_template::{self, PlanTemplate};
use entity::program::{self, ProductionStatus};
use entity::{deviation, milestone_dependency, user};
use sea_orm::{
    ActiveModelTrait, ActiveValue::NotSet, ActiveValue::Set, ColumnTrait, EntityTrait,
    PaginatorTrait, QueryFilter, QueryOrder,
};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::auth::{AuthContext, find_scoped, find_scoped_locked};
use crate::error::{ApiError, ApiResult};
use crate::pagination::{Page, Paging};
use crate::records::{NewGateItem, insert_gate_item};
use crate::routes::{ApiJson, Checks, Validate};
use crate::state::AppState;
use crate::views::plan::{self as views, MilestoneView};
use crate::write_txn::WriteTxn;
use actix_web::http::StatusCode;

/// The plan templates that `POST /programs/{id}/plan` can instantiate.
#[utoipa::path(
    tag = "programs",
    params(Paging),
    responses(
        (status = 200, description = "One page of the available templates, each with its milestones, durations, dependencies and default gate checklists", body = Page<PlanTemplate>),
        (status = 422, description = "Invalid limit or offset", body = crate::error::Problem)
    )
)]
#[get("/plan-templates")]
pub async fn list_plan_templates(
    _ctx: AuthContext,
    paging: web::Query<Paging>,
) -> ApiResult<web::Json<Page<PlanTemplate>>> {
    Ok(web::Json(Page::of_all(plan_template::all(), &paging)?))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"template": "cdmo_standard", "start_date": "2027-01-04"}))]
pub struct InstantiatePlan {
    /// Key of a template from `GET /plan-templates`.
    #[schema(min_length = 1, max_length = 64)]
    pub template: String,
    /// The first milestones start on this date; the rest follow their dependencies.
    pub start_date: NaiveDate,
    /// Owner of every milestone (default: the caller). A user of the sponsor or the CMO.
    pub default_owner_user_id: Option<i64>,
}

impl Validate for InstantiatePlan {
    fn validate(&self, c: &mut Checks) {
        c.text("template", &self.template, 1, 64);
        let lower = NaiveDate::from_ymd_opt(2000, 1, 1).unwrap_or(NaiveDate::MIN);
        let upper = NaiveDate::from_ymd_opt(2100, 1, 1).unwrap_or(NaiveDate::MAX);
        if self.start_date < lower || self.start_date > upper {
            c.fail(
                "start_date",
                "out_of_range",
                "a date from 2000-01-01 to 2100-01-01, as YYYY-MM-DD, e.g. 2027-01-04",
            );
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({"template": "cdmo_standard", "milestones": [], "gate_items_created": 24}))]
pub struct InstantiatedPlan {
    pub template: String,
    /// The created milestones, in plan order.
    pub milestones: Vec<MilestoneView>,
    pub gate_items_created: usize,
}

/// Instantiate a plan template on a program that has no milestones yet (sponsor admins
/// and program managers): milestones with dates, dependencies, owners and default gate
/// checklists, in one transaction. Send an `Idempotency-Key` to make retries safe; without
/// one, a second call finds the plan and answers 409.
#[utoipa::path(
    tag = "programs",
    params(("id" = i64, Path, description = "Program id")),
    request_body = InstantiatePlan,
    responses(
        (status = 201, description = "The plan", body = InstantiatedPlan),
        (status = 403, description = "Only the sponsor's admins and program managers create the plan", body = crate::error::Problem),
        (status = 404, description = "No such program visible to the caller", body = crate::error::Problem),
        (status = 409, description = "The program already has a plan", body = crate::error::Problem)
    )
)]
#[post("/programs/{id}/plan")]
pub async fn instantiate_plan(
    state: web::Data<AppState>,
    ctx: AuthContext,
    id: web::Path<i64>,
    body: ApiJson<InstantiatePlan>,
) -> ApiResult<HttpResponse> {
    let b = body.into_inner();
    let template = plan_template::find(b.template.trim()).ok_or_else(|| {
        ApiError::invalid(
            "template",
            "unknown_template",
            "no such template; see GET /api/v1/plan-templates",
        )
    })?;
    let dated = plan_template::schedule(&template, b.start_date).map_err(ApiError::internal)?;
    let txn = WriteTxn::begin(&state, &ctx).await?;
    // Locked: two plans started at once cannot both find the program empty.
    let prog = find_scoped_locked::<program::Entity, _>(&txn, &ctx, id.into_inner()).await?;
    if !may_manage_program(ctx.caller(), prog.sides()) {
        return Err(ApiError::Forbidden(
            "only the sponsor's admins and program managers create the plan".to_string(),
        ));
    }
    let existing = milestone::Entity::find()
        .filter(milestone::Column::ProgramId.eq(prog.id))
        .count(&txn)
        .await?;
    if existing > 0 {
        return Err(ApiError::conflict(
            "plan_exists",
            format!("the program already has {existing} milestone(s)"),
        ));
    }
    let owner = b.default_owner_user_id.unwrap_or(ctx.user.id);
    let owner_ok = user::Entity::find_by_id(owner)
        .filter(user::Column::OrgId.is_in(prog.staffing_orgs(&txn).await?))
        .filter(user::Column::Active.eq(true))
        .one(&txn)
        .await?
        .is_some();
    if !owner_ok {
        return Err(ApiError::invalid(
            "default_owner_user_id",
            "not_on_program",
            "not an active user of the sponsor or of the program's CMO (while the two are connected)",
        ));
    }
    let now = state.clock.now();
    let mut ids: Vec<i64> = Vec::with_capacity(template.milestones.len());
    let mut gate_items_created = 0;
    for (position, (tm, dates)) in template.milestones.iter().zip(dated.iter()).enumerate() {
        let created = milestone::ActiveModel {
            id: NotSet,
            program_id: Set(prog.id),
            name: Set(tm.name.clone()),
            phase: Set(tm.phase.clone()),
            owner_user_id: Set(Some(owner)),
            status: Set(MilestoneStatus::Planned),
            held_from: Set(None),
            baseline_start: Set(dates.start),
            baseline_end: Set(dates.end),
            forecast_start: Set(dates.start),
            forecast_end: Set(dates.end),
            actual_start: Set(None),
            actual_end: Set(None),
            position: Set(i32::try_from(position).unwrap_or(i32::MAX)),
            gate_round: Set(0),
            created_at: Set(now),
            updated_at: Set(now),
            version: Set(1),
        }
        .insert(&txn)
        .await?;
        ids.push(created.id);
        for (i, item) in tm.gate_items.iter().enumerate() {
            insert_gate_item(
                &txn,
                &ctx,
                now,
                NewGateItem {
                    milestone_id: created.id,
                    check_type: item.check_type,
                    title: &item.title,
                    mandatory: item.mandatory,
                    position: i32::try_from(i).unwrap_or(i32::MAX),
                },
            )
            .await?;
            gate_items_created += 1;
        }
    }
    let key_to_id: std::collections::BTreeMap<&str, i64> = template
        .milestones
        .iter()
        .map(|m| m.key.as_str())
        .zip(ids.iter().copied())
        .collect();
    let edges: Vec<milestone_dependency::ActiveModel> = template
        .milestones
        .iter()
        .zip(ids.iter())
        .flat_map(|(tm, id)| {
            tm.depends_on
                .iter()
                .filter_map(|dep| key_to_id.get(dep.as_str()))
                .map(|dep_id| milestone_dependency::ActiveModel {
                    milestone_id: Set(*id),
                    depends_on_id: Set(*dep_id),
                })
        })
        .collect();
    if !edges.is_empty() {
        milestone_dependency::Entity::insert_many(edges)
            .exec(&txn)
            .await?;
    }
    let created = milestone::Entity::find()
        .filter(milestone::Column::ProgramId.eq(prog.id))
        .order_by_asc(milestone::Column::Position)
        .all(&txn)
        .await?;
    let mut deps = views::dependencies_of(&txn, &ids).await?;
    let today = prog.today(now);
    let views: Vec<MilestoneView> = created
        .iter()
        .map(|m| {
            let may = entity::access::may_update_plan(ctx.caller(), prog.sides(), m.owner_user_id);
            views::milestone(m, deps.remove(&m.id).unwrap_or_default(), today, may)
        })
        .collect();
    // Each milestone is a record of its own in the trail, as if created one by one.
    for v in &views {
        audit_trail::append(
            &txn,
            &ctx.actor(now),
            Entry::new("milestone", v.id, "create").after(crate::routes::snapshot(v)),
        )
        .await?;
    }
    audit_trail::append(
        &txn,
        &ctx.actor(now),
        Entry::new("program", prog.id, "instantiate_plan").after(serde_json::json!({
            "template": template.key,
            "start_date": b.start_date,
            "milestone_ids": ids,
            "gate_items_created": gate_items_created,
        })),
    )
    .await?;
    txn.respond(
        StatusCode::CREATED,
        &InstantiatedPlan {
            template: template.key,
            milestones: views,
            gate_items_created,
        },
    )
    .await
}

#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({
    "program_id": 7, "production_status": "running", "today": "2027-04-12",
    "plan": {"milestones_total": 12,
             "by_status": {"planned": 8, "in_progress": 2, "gate_review": 1, "completed": 1, "on_hold": 0, "cancelled": 0},
             "by_health": {"on_track": 9, "at_risk": 2, "late": 1},
             "upcoming_gates": [], "late_milestones": []},
    "open_action_items": 6, "overdue_action_items": 2, "open_critical_deviations": 0
}))]
pub struct ProgramOverview {
    pub program_id: i64,
    pub production_status: ProductionStatus,
    /// Today in the program's time zone: the date health is judged on.
    pub today: NaiveDate,
    pub plan: PlanSummary,
    pub open_action_items: u64,
    pub overdue_action_items: u64,
    pub open_critical_deviations: u64,
}

/// The program at a glance: milestone counts by state and health, upcoming gates, late
/// work, production status. The weekly digest uses the same numbers.
#[utoipa::path(
    tag = "programs",
    params(("id" = i64, Path, description = "Program id")),
    responses(
        (status = 200, description = "The overview", body = ProgramOverview),
        (status = 404, description = "No such program visible to the caller", body = crate::error::Problem)
    )
)]
#[get("/programs/{id}/overview")]
pub async fn program_overview(
    state: web::Data<AppState>,
    ctx: AuthContext,
    id: web::Path<i64>,
) -> ApiResult<web::Json<ProgramOverview>> {
    let prog = find_scoped::<program::Entity, _>(&state.reads, &ctx, id.into_inner()).await?;
    let today = prog.today(state.clock.now());
    let plan = milestone::Entity::find()
        .filter(milestone::Column::ProgramId.eq(prog.id))
        .all(&state.reads)
        .await?;
    let open = action_item::Entity::find()
        .filter(action_item::Column::ProgramId.eq(prog.id))
        .filter(action_item::Column::Status.is_in([ActionStatus::Open, ActionStatus::InProgress]));
    let open_action_items = open.clone().count(&state.reads).await?;
    let overdue_action_items = open
        .filter(action_item::Column::DueDate.lt(today))
        .filter(
            sea_orm::Condition::any()
                .add(action_item::Column::SnoozedUntil.is_null())
                .add(action_item::Column::SnoozedUntil.lt(today)),
        )
        .count(&state.reads)
        .await?;
    Ok(web::Json(ProgramOverview {
        program_id: prog.id,
        production_status: prog.production_status,
        today,
        plan: overview::summarize(&plan, today),
        open_action_items,
        overdue_action_items,
        open_critical_deviations: deviation::open_critical_count(&state.reads, prog.id).await?,
    }))
}
