//! Change control: request → impact assessment → signed approval or rejection →
//! implementation (tasks as action items) → closed.

use actix_web::{HttpRequest, HttpResponse, get, patch, post, web};
use chrono::NaiveDate;
use entity::action_item::ActionSource;
use entity::change_request::{self, ChangeClass, ChangeEvent, ChangeStatus};
use entity::program;
use entity::record_number::{self, RecordKind};
use sea_orm::{ActiveValue::NotSet, ActiveValue::Set, ColumnTrait, ConnectionTrait, QueryFilter};
use serde::Deserialize;
use utoipa::{IntoParams, ToSchema};

use crate::auth::{AuthContext, find_scoped, find_scoped_locked, scoped};
use crate::error::{ApiError, ApiResult};
use crate::pagination::{Keyset, ListQuery, Paging};
use crate::records::{NewAction, check_owner, insert_action};
use crate::routes::{ApiJson, Checks, Page, Validate, fetch_page};
use crate::state::AppState;
use crate::transition::answer;
use crate::transition::{ApiStep, run_step};
use crate::views::plan::ActionItemView;
use crate::views::quality::{ChangeView, change_request as view};
use crate::views::{EventOptions, Offers};
use crate::write::{Patched, insert_audited, update_versioned};
use crate::write_txn::WriteTxn;
use actix_web::http::StatusCode;
use entity::workflow::change as change_flow;

impl crate::auth::TenantScoped for change_request::Entity {
    fn tenant_condition(ctx: &AuthContext) -> sea_orm::Condition {
        use sea_orm::sea_query::IntoCondition;
        change_request::Column::ProgramId
            .in_subquery(crate::auth::visible_programs(ctx))
            .into_condition()
    }
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({
    "title": "Switch depth filter supplier", "description": "Replace the filter with supplier B's equivalent.",
    "justification": "Supplier A discontinues the product", "classification": "major"
}))]
pub struct CreateChange {
    #[schema(min_length = 1, max_length = 200)]
    pub title: String,
    #[schema(min_length = 1, max_length = 10000)]
    pub description: String,
    #[schema(min_length = 1, max_length = 5000)]
    pub justification: String,
    pub classification: ChangeClass,
}

impl Validate for CreateChange {
    fn validate(&self, c: &mut Checks) {
        c.text("title", &self.title, 1, 200);
        c.text("description", &self.description, 1, 10_000);
        c.text("justification", &self.justification, 1, 5000);
    }
}

/// Draft a change request on a program (quality, program managers, admins).
#[utoipa::path(
    tag = "quality",
    params(("id" = i64, Path, description = "Program id")),
    request_body = CreateChange,
    responses(
        (status = 201, description = "Change request drafted", body = ChangeView),
        (status = 403, description = "Only quality, program managers and admins request changes", body = crate::error::Problem),
        (status = 404, description = "No such program visible to the caller", body = crate::error::Problem)
    )
)]
#[post("/programs/{id}/change-requests")]
pub async fn create_change(
    state: web::Data<AppState>,
    ctx: AuthContext,
    id: web::Path<i64>,
    body: ApiJson<CreateChange>,
) -> ApiResult<HttpResponse> {
    let b = body.into_inner();
    let txn = WriteTxn::begin(&state, &ctx).await?;
    let prog = find_scoped::<program::Entity, _>(&txn, &ctx, id.into_inner()).await?;
    if !ctx.user.role.handles_quality_records() {
        return Err(ApiError::Forbidden(
            "only quality, program managers and admins request changes".to_string(),
        ));
    }
    let now = state.clock.now();
    let (created, _) = insert_audited(
        &txn,
        &ctx.actor(now),
        "change_request",
        change_request::ActiveModel {
            id: NotSet,
            record_number: Set(Some(
                record_number::assign(&txn, RecordKind::Change, &prog, now).await?,
            )),
            program_id: Set(prog.id),
            title: Set(b.title.trim().to_string()),
            description: Set(b.description),
            justification: Set(b.justification),
            classification: Set(b.classification),
            impact_product_quality: Set(None),
            impact_validation: Set(None),
            impact_regulatory: Set(None),
            status: Set(ChangeStatus::Draft),
            decision_signature_id: Set(None),
            decision_reason: Set(None),
            requested_by_user_id: Set(ctx.user.id),
            closed_at: Set(None),
            created_at: Set(now),
            updated_at: Set(now),
            version: Set(1),
        },
        async |created| Ok(view(created)),
    )
    .await?;
    txn.respond(StatusCode::CREATED, &view(&created)).await
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ChangeFilter {
    pub program_id: Option<i64>,
    /// The record number people quote, e.g. `CC-2027-0003` (any letter case).
    #[param(example = "CC-2027-0003", max_length = 24, pattern = "^[A-Za-z0-9-]*$")]
    pub number: Option<String>,
    pub status: Option<ChangeStatus>,
    pub classification: Option<ChangeClass>,
}

/// Change requests on the caller's programs, newest first.
#[utoipa::path(
    tag = "quality",
    params(ChangeFilter, Paging),
    responses((status = 200, description = "One page of change requests", body = Page<ChangeView>))
)]
#[get("/change-requests")]
pub async fn list_changes(
    state: web::Data<AppState>,
    ctx: AuthContext,
    query: ListQuery<ChangeFilter>,
) -> ApiResult<web::Json<Page<ChangeView>>> {
    let f = query.filter;
    let mut select = scoped::<change_request::Entity>(&ctx);
    if let Some(v) = f.program_id {
        select = select.filter(change_request::Column::ProgramId.eq(v));
    }
    if let Some(n) = crate::records::record_number_filter(f.number.as_deref())? {
        select = select.filter(change_request::Column::RecordNumber.eq(n));
    }
    if let Some(v) = f.status {
        select = select.filter(change_request::Column::Status.eq(v));
    }
    if let Some(v) = f.classification {
        select = select.filter(change_request::Column::Classification.eq(v));
    }
    let page = fetch_page(
        &state.reads,
        select,
        Keyset::desc([change_request::Column::Id]),
        &query.paging,
    )
    .await?;
    let items = &page.items;
    let items = items.iter().map(view).collect();
    Ok(web::Json(page.with_items(items)))
}

/// One change request.
#[utoipa::path(
    tag = "quality",
    params(("id" = i64, Path, description = "Change request id")),
    responses(
        (status = 200, description = "The change request", body = ChangeView),
        (status = 404, description = "No such change request visible to the caller", body = crate::error::Problem)
    )
)]
#[get("/change-requests/{id}")]
pub async fn get_change(
    state: web::Data<AppState>,
    ctx: AuthContext,
    id: web::Path<i64>,
) -> ApiResult<web::Json<ChangeView>> {
    let c = find_scoped::<change_request::Entity, _>(&state.reads, &ctx, id.into_inner()).await?;
    let now = state.clock.now();
    Ok(web::Json(
        answer::<change_flow::Step>(&state.reads, &ctx, &c, now).await?,
    ))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({
    "version": 1, "impact_product_quality": "Extractables study needed", "impact_validation": "Filter validation repeat",
    "impact_regulatory": "Annual report", "reason": "impact assessment by the change board"
}))]
pub struct UpdateChange {
    pub version: Option<i32>,
    #[schema(min_length = 1, max_length = 200)]
    pub title: Option<String>,
    #[schema(min_length = 1, max_length = 10000)]
    pub description: Option<String>,
    /// Only before approval.
    pub classification: Option<ChangeClass>,
    #[schema(max_length = 5000)]
    pub impact_product_quality: Option<String>,
    #[schema(max_length = 5000)]
    pub impact_validation: Option<String>,
    #[schema(max_length = 5000)]
    pub impact_regulatory: Option<String>,
    /// Reason for change: required on every edit; kept in the audit trail.
    #[schema(min_length = 1, max_length = 500)]
    pub reason: String,
}

impl Validate for UpdateChange {
    fn validate(&self, c: &mut Checks) {
        c.optional_text("title", self.title.as_deref(), 1, 200);
        c.optional_text("description", self.description.as_deref(), 1, 10_000);
        c.optional_text(
            "impact_product_quality",
            self.impact_product_quality.as_deref(),
            1,
            5000,
        );
        c.optional_text(
            "impact_validation",
            self.impact_validation.as_deref(),
            1,
            5000,
        );
        c.optional_text(
            "impact_regulatory",
            self.impact_regulatory.as_deref(),
            1,
            5000,
        );
        c.text("reason", &self.reason, 1, 500);
    }
}

/// Edit a change request before its decision (reason for change required).
#[utoipa::path(
    tag = "quality",
    params(
        ("id" = i64, Path, description = "Change request id"),
        ("If-Match" = Option<String>, Header, pattern = r#"^(W/)?"?[0-9]{1,9}"?$"#, description = "Version being updated (alternative to `version` in the body)")
    ),
    request_body = UpdateChange,
    responses(
        (status = 200, description = "The updated change request", body = ChangeView),
        (status = 403, description = "Only quality, program managers and admins edit changes", body = crate::error::Problem),
        (status = 404, description = "No such change request visible to the caller", body = crate::error::Problem),
        (status = 409, description = "Stale version, or already decided", body = crate::error::Problem)
    )
)]
#[patch("/change-requests/{id}")]
pub async fn update_change(
    req: HttpRequest,
    state: web::Data<AppState>,
    ctx: AuthContext,
    id: web::Path<i64>,
    body: ApiJson<UpdateChange>,
) -> ApiResult<HttpResponse> {
    let b = body.into_inner();
    update_versioned::<change_request::Entity, _>(
        &state,
        &ctx,
        &req,
        id.into_inner(),
        b.version,
        "change_request",
        async |_, current| {
            ctx.require(
                ctx.user.role.handles_quality_records(),
                "only quality, program managers and admins edit changes",
            )?;
            if !matches!(
                current.status,
                ChangeStatus::Draft | ChangeStatus::ImpactAssessment
            ) {
                return Err(ApiError::conflict(
                    "change_decided",
                    "a decided change is not edited",
                ));
            }
            Ok(())
        },
        async |_, current, c| {
            if let Some(v) = b.classification
                && v != current.classification
            {
                // Who must approve depends on it: fixed once the change is submitted.
                if current.status != ChangeStatus::Draft {
                    return Err(ApiError::conflict(
                        "classification_fixed",
                        "the classification is fixed once the change is submitted",
                    ));
                }
                c.classification = v;
            }
            if let Some(v) = b.title {
                c.title = v.trim().to_string();
            }
            if let Some(v) = b.description {
                c.description = v;
            }
            if let Some(v) = b.impact_product_quality {
                c.impact_product_quality = Some(v);
            }
            if let Some(v) = b.impact_validation {
                c.impact_validation = Some(v);
            }
            if let Some(v) = b.impact_regulatory {
                c.impact_regulatory = Some(v);
            }
            Ok(Patched::update(Some(b.reason)))
        },
        async |_, c| Ok(view(c)),
    )
    .await
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"title": "Update the filtration SOP", "owner_user_id": 9, "due_date": "2027-06-01"}))]
pub struct AddChangeTask {
    #[schema(min_length = 1, max_length = 200)]
    pub title: String,
    pub owner_user_id: i64,
    pub due_date: NaiveDate,
}

impl Validate for AddChangeTask {
    fn validate(&self, c: &mut Checks) {
        c.text("title", &self.title, 1, 200);
        c.date("due_date", self.due_date);
    }
}

/// Add an implementation task (an action item) to an approved or implementing change.
#[utoipa::path(
    tag = "quality",
    params(("id" = i64, Path, description = "Change request id")),
    request_body = AddChangeTask,
    responses(
        (status = 201, description = "Task added", body = ActionItemView),
        (status = 403, description = "Only quality, program managers and admins plan changes", body = crate::error::Problem),
        (status = 404, description = "No such change request visible to the caller", body = crate::error::Problem),
        (status = 409, description = "The change is not approved or implementing", body = crate::error::Problem)
    )
)]
#[post("/change-requests/{id}/tasks")]
pub async fn add_change_task(
    state: web::Data<AppState>,
    ctx: AuthContext,
    id: web::Path<i64>,
    body: ApiJson<AddChangeTask>,
) -> ApiResult<HttpResponse> {
    let b = body.into_inner();
    let txn = WriteTxn::begin(&state, &ctx).await?;
    // Locked, as the transitions lock it before counting open tasks: a task added while
    // the change is being closed waits, then sees it closed (no closed change with an
    // open task).
    let c = find_scoped_locked::<change_request::Entity, _>(&txn, &ctx, id.into_inner()).await?;
    let prog = find_scoped::<program::Entity, _>(&txn, &ctx, c.program_id).await?;
    if !ctx.user.role.handles_quality_records() {
        return Err(ApiError::Forbidden(
            "only quality, program managers and admins plan changes".to_string(),
        ));
    }
    if !matches!(
        c.status,
        ChangeStatus::Approved | ChangeStatus::Implementing
    ) {
        return Err(ApiError::conflict(
            "change_not_approved",
            "tasks are added to approved changes",
        ));
    }
    check_owner(&txn, &prog, b.owner_user_id).await?;
    let now = state.clock.now();
    let today = prog.today(now);
    let item = insert_action(
        &txn,
        &ctx,
        now,
        today,
        NewAction {
            program_id: prog.id,
            title: b.title.trim().to_string(),
            description: None,
            owner_user_id: b.owner_user_id,
            due_date: b.due_date,
            source: ActionSource::Change,
            source_id: Some(c.id),
        },
    )
    .await?;
    txn.respond(
        StatusCode::CREATED,
        &crate::views::plan::action_item(&item, today),
    )
    .await
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"event": "approve", "password": "quality assured passphrase", "reason": "impact acceptable"}))]
pub struct ChangeTransition {
    pub event: ChangeEvent,
    /// Required for `reject`; kept in the audit trail.
    #[schema(max_length = 500)]
    pub reason: Option<String>,
    /// `approve` and `reject`: the signer's password (e-signature).
    #[schema(max_length = 256)]
    pub password: Option<String>,
    pub version: Option<i32>,
}

impl Validate for ChangeTransition {
    fn validate(&self, c: &mut Checks) {
        c.optional_text("reason", self.reason.as_deref(), 1, 500);
        c.optional_signing_password("password", self.password.as_deref());
    }
}

/// Move a change request: `submit` (impact assessed) → `approve` | `reject` (e-signed; a
/// major change by quality) → `start_implementation` → `close` (tasks finished).
#[utoipa::path(
    tag = "quality",
    params(
        ("id" = i64, Path, description = "Change request id"),
        ("If-Match" = Option<String>, Header, pattern = r#"^(W/)?"?[0-9]{1,9}"?$"#, description = "Version the caller saw (optional; alternative to `version` in the body)")
    ),
    request_body = ChangeTransition,
    responses(
        (status = 200, description = "The change in its new state", body = ChangeView),
        (status = 401, description = "Wrong signature password (`invalid_password`; audited)", body = crate::error::Problem),
        (status = 403, description = "Not allowed to handle changes or to sign this decision", body = crate::error::Problem),
        (status = 404, description = "No such change request visible to the caller", body = crate::error::Problem),
        (status = 409, description = "Illegal event, failed guard, stale version, or no own signing password", body = crate::error::Problem),
        (status = 429, description = "Too many failed password attempts; see Retry-After", body = crate::error::Problem)
    )
)]
#[post("/change-requests/{id}/transitions")]
pub async fn transition_change(
    req: HttpRequest,
    state: web::Data<AppState>,
    ctx: AuthContext,
    id: web::Path<i64>,
    body: ApiJson<ChangeTransition>,
) -> ApiResult<HttpResponse> {
    let b = body.into_inner();
    let step = change_flow::Step {
        event: b.event,
        reason: b.reason,
        decider_role: ctx.user.role,
    };
    run_step(
        &state,
        &ctx,
        &req,
        id.into_inner(),
        step,
        b.password,
        b.version,
    )
    .await
}

impl ApiStep for change_flow::Step {
    type View = ChangeView;
    fn offer(view: &mut Self::View, options: EventOptions<Self::Event>) {
        view.offer(options);
    }
    /// Who may take steps on this record at all (403 before anything else).
    async fn may_step(
        _conn: &impl ConnectionTrait,
        ctx: &AuthContext,
        _record: &Self::Model,
    ) -> ApiResult<()> {
        ctx.require(
            ctx.user.role.handles_quality_records(),
            "only quality, program managers and admins handle changes",
        )
    }
    async fn view(
        _conn: &impl ConnectionTrait,
        _ctx: &AuthContext,
        c: &change_request::Model,
        _now: chrono::DateTime<chrono::Utc>,
    ) -> ApiResult<ChangeView> {
        Ok(view(c))
    }
}
