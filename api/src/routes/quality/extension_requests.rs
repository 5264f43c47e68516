//! Extension requests for CAPA action due dates: requested by the owner, decided by quality
//! (SPEC §4); an approved one moves the due date.

use actix_web::{HttpResponse, get, post, web};
use chrono::NaiveDate;
use entity::Role;
use entity::action_item::{self, ActionSource, ActionStatus};
use entity::audit_trail::{self, Entry};
use entity::extension_request::{self, ExtensionStatus};
use sea_orm::{
    ActiveModelTrait, ActiveValue::NotSet, ActiveValue::Set, ColumnTrait, EntityTrait,
    PaginatorTrait, QueryFilter,
};
use serde::Deserialize;
use utoipa::{IntoParams, ToSchema};

use crate::auth::{AuthContext, find_scoped, find_scoped_locked};
use crate::error::{ApiError, ApiResult};
use crate::pagination::{Keyset, ListQuery, Paging};
use crate::routes::{ApiJson, Checks, Page, Validate, fetch_page, snapshot};
use crate::state::AppState;
use crate::views::quality::ExtensionRequestView;
use crate::write::write_next_version;
use crate::write_txn::WriteTxn;
use actix_web::http::StatusCode;

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"requested_due": "2027-05-04", "reason": "gasket supplier delayed"}))]
pub struct RequestExtension {
    pub requested_due: NaiveDate,
    #[schema(min_length = 1, max_length = 500)]
    pub reason: String,
}

impl Validate for RequestExtension {
    fn validate(&self, c: &mut Checks) {
        c.date("requested_due", self.requested_due);
        c.text("reason", &self.reason, 1, 500);
    }
}

/// Ask to move a CAPA action's due date (its owner, or quality, program managers, admins).
#[utoipa::path(
    tag = "quality",
    params(("id" = i64, Path, description = "Action item id")),
    request_body = RequestExtension,
    responses(
        (status = 201, description = "Extension requested", body = ExtensionRequestView),
        (status = 403, description = "Not allowed to change this item", body = crate::error::Problem),
        (status = 404, description = "No such action item visible to the caller", body = crate::error::Problem),
        (status = 409, description = "Not a CAPA action, not open, or a request is already pending", body = crate::error::Problem)
    )
)]
#[post("/action-items/{id}/extension-requests")]
pub async fn request_extension(
    state: web::Data<AppState>,
    ctx: AuthContext,
    id: web::Path<i64>,
    body: ApiJson<RequestExtension>,
) -> ApiResult<HttpResponse> {
    let b = body.into_inner();
    let txn = WriteTxn::begin(&state, &ctx).await?;
    // Locked: two requests at once cannot both find none pending.
    let item = find_scoped_locked::<action_item::Entity, _>(&txn, &ctx, id.into_inner()).await?;
    if item.owner_user_id != ctx.user.id && !ctx.user.role.handles_quality_records() {
        return Err(ApiError::Forbidden(
            "only the owner, quality, program managers and admins ask".to_string(),
        ));
    }
    if item.source != ActionSource::Capa {
        return Err(ApiError::conflict(
            "not_a_capa_action",
            "only CAPA actions need extension requests; edit the due date",
        ));
    }
    if !matches!(item.status, ActionStatus::Open | ActionStatus::InProgress) {
        return Err(ApiError::conflict("not_open", "the action is finished"));
    }
    if b.requested_due <= item.due_date {
        return Err(ApiError::invalid(
            "requested_due",
            "not_later",
            "an extension moves the due date later",
        ));
    }
    let pending = extension_request::Entity::find()
        .filter(extension_request::Column::ActionItemId.eq(item.id))
        .filter(extension_request::Column::Status.eq(ExtensionStatus::Pending))
        .count(&txn)
        .await?;
    if pending > 0 {
        return Err(ApiError::conflict(
            "extension_pending",
            "a request for this action is already pending",
        ));
    }
    let now = state.clock.now();
    let created = extension_request::ActiveModel {
        id: NotSet,
        action_item_id: Set(item.id),
        current_due: Set(item.due_date),
        requested_due: Set(b.requested_due),
        reason: Set(b.reason.clone()),
        status: Set(ExtensionStatus::Pending),
        requested_by_user_id: Set(ctx.user.id),
        decided_by_user_id: Set(None),
        decision_reason: Set(None),
        decided_at: Set(None),
        created_at: Set(now),
    }
    .insert(&txn)
    .await?;
    audit_trail::append(
        &txn,
        &ctx.actor(now),
        Entry::new("extension_request", created.id, "request")
            .after(snapshot(&ExtensionRequestView::from(&created)))
            .reason(Some(b.reason)),
    )
    .await?;
    txn.respond(StatusCode::CREATED, &ExtensionRequestView::from(&created))
        .await
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"approve": true, "reason": "supplier delay documented"}))]
pub struct DecideExtension {
    pub approve: bool,
    #[schema(min_length = 1, max_length = 500)]
    pub reason: String,
}

impl Validate for DecideExtension {
    fn validate(&self, c: &mut Checks) {
        c.text("reason", &self.reason, 1, 500);
    }
}

/// Approve or reject an extension request (quality users). Approval moves the due date.
#[utoipa::path(
    tag = "quality",
    params(("id" = i64, Path, description = "Extension request id")),
    request_body = DecideExtension,
    responses(
        (status = 200, description = "The decided request", body = ExtensionRequestView),
        (status = 403, description = "Only quality users decide extensions", body = crate::error::Problem),
        (status = 404, description = "No such request visible to the caller", body = crate::error::Problem),
        (status = 409, description = "Already decided", body = crate::error::Problem)
    )
)]
#[post("/extension-requests/{id}/decision")]
pub async fn decide_extension(
    state: web::Data<AppState>,
    ctx: AuthContext,
    id: web::Path<i64>,
    body: ApiJson<DecideExtension>,
) -> ApiResult<HttpResponse> {
    let b = body.into_inner();
    let txn = WriteTxn::begin(&state, &ctx).await?;
    let req = extension_request::Entity::find_by_id(id.into_inner())
        .one(&txn)
        .await?
        .ok_or(ApiError::NotFound)?;
    // Tenancy through the action item.
    let item = find_scoped::<action_item::Entity, _>(&txn, &ctx, req.action_item_id).await?;
    if ctx.user.role != Role::Quality {
        return Err(ApiError::Forbidden(
            "extension requests are decided by quality".to_string(),
        ));
    }
    if req.requested_by_user_id == ctx.user.id {
        return Err(ApiError::Forbidden(
            "a request is decided by someone other than its requester".to_string(),
        ));
    }
    if req.status != ExtensionStatus::Pending {
        return Err(ApiError::conflict(
            "already_decided",
            "this request is already decided",
        ));
    }
    if b.approve && !matches!(item.status, ActionStatus::Open | ActionStatus::InProgress) {
        return Err(ApiError::conflict(
            "not_open",
            "the action is finished; its due date no longer moves",
        ));
    }
    let now = state.clock.now();
    // Only a still-pending request is decided: of two concurrent decisions one wins.
    let written = extension_request::Entity::update_many()
        .col_expr(
            extension_request::Column::Status,
            sea_orm::sea_query::Expr::value(sea_orm::ActiveEnum::to_value(&if b.approve {
                ExtensionStatus::Approved
            } else {
                ExtensionStatus::Rejected
            })),
        )
        .col_expr(
            extension_request::Column::DecidedByUserId,
            sea_orm::sea_query::Expr::value(ctx.user.id),
        )
        .col_expr(
            extension_request::Column::DecisionReason,
            sea_orm::sea_query::Expr::value(b.reason.clone()),
        )
        .col_expr(
            extension_request::Column::DecidedAt,
            sea_orm::sea_query::Expr::value(now),
        )
        .filter(extension_request::Column::Id.eq(req.id))
        .filter(extension_request::Column::Status.eq(ExtensionStatus::Pending))
        .exec(&txn)
        .await?;
    if written.rows_affected == 0 {
        return Err(ApiError::conflict(
            "already_decided",
            "this request is already decided",
        ));
    }
    let decided = extension_request::Entity::find_by_id(req.id)
        .one(&txn)
        .await?
        .ok_or(ApiError::NotFound)?;
    audit_trail::append(
        &txn,
        &ctx.actor(now),
        Entry::new(
            "extension_request",
            decided.id,
            if b.approve { "approve" } else { "reject" },
        )
        .before(snapshot(&ExtensionRequestView::from(&req)))
        .after(snapshot(&ExtensionRequestView::from(&decided)))
        .reason(Some(b.reason.clone())),
    )
    .await?;
    if b.approve {
        let updated = write_next_version::<action_item::Entity>(&txn, item.id, &item, now, |a| {
            a.due_date = decided.requested_due
        })
        .await?;
        audit_trail::append(
            &txn,
            &ctx.actor(now),
            Entry::new("action_item", updated.id, "extend_due_date")
                .before(serde_json::json!({"due_date": item.due_date, "version": item.version}))
                .after(
                    serde_json::json!({"due_date": updated.due_date, "version": updated.version}),
                )
                .reason(Some(b.reason)),
        )
        .await?;
    }
    txn.respond(StatusCode::OK, &ExtensionRequestView::from(&decided))
        .await
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ExtensionFilter {
    pub status: Option<ExtensionStatus>,
    pub program_id: Option<i64>,
}

/// Extension requests on the caller's programs, oldest first (e.g. `?status=pending` for
/// quality's queue).
#[utoipa::path(
    tag = "quality",
    params(ExtensionFilter, Paging),
    responses((status = 200, description = "One page of extension requests", body = Page<ExtensionRequestView>))
)]
#[get("/extension-requests")]
pub async fn list_extension_requests(
    state: web::Data<AppState>,
    ctx: AuthContext,
    query: ListQuery<ExtensionFilter>,
) -> ApiResult<web::Json<Page<ExtensionRequestView>>> {
    use sea_orm::sea_query::{IntoCondition, Query};
    let f = query.filter;
    // Tenancy through the action items of visible programs.
    let mut items = Query::select()
        .column(action_item::Column::Id)
        .from(action_item::Entity)
        .cond_where(action_item::Column::ProgramId.in_subquery(crate::auth::visible_programs(&ctx)))
        .to_owned();
    if let Some(p) = f.program_id {
        items.and_where(action_item::Column::ProgramId.eq(p));
    }
    let mut select = extension_request::Entity::find().filter(
        extension_request::Column::ActionItemId
            .in_subquery(items)
            .into_condition(),
    );
    if let Some(s) = f.status {
        select = select.filter(extension_request::Column::Status.eq(s));
    }
    let page = fetch_page(
        &state.reads,
        select,
        Keyset::asc([extension_request::Column::Id]),
        &query.paging,
    )
    .await?;
    let rows = &page.items;
    let items = rows.iter().map(ExtensionRequestView::from).collect();
    Ok(web::Json(page.with_items(items)))
}
