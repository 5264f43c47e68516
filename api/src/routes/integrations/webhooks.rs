//! Webhook subscriptions (per organization, admins): URL, event types, a secret shown
//! once, active flag; their delivery log and redelivery. Deliveries are queued with the
//! event (`entity::webhook::fan_out`) and sent by the worker (`worker::jobs::webhooks`).

use actix_web::{HttpRequest, HttpResponse, delete, get, patch, post, web};
use entity::audit_trail::{self, Entry};
use entity::{domain_event, webhook};
use sea_orm::{
    ActiveValue::NotSet, ActiveValue::Set, ColumnTrait, ConnectionTrait, EntityTrait, ModelTrait,
    QueryFilter, QueryOrder, QuerySelect,
};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::auth::{AuthContext, TenantScoped, find_scoped, scoped};
use crate::error::{ApiError, ApiResult};
use crate::extract::{ApiJson, Checks, Validate};
use crate::pagination::{Keyset, ListQuery, Page, Paging, fetch_page};
use crate::routes::snapshot;
use crate::state::AppState;
use crate::views::integrations::{AttemptView, DeliveryView, WebhookView, delivery_view};
use crate::write::{Patched, insert_audited, update_versioned};
use crate::write_txn::WriteTxn;
use actix_web::http::StatusCode;

impl TenantScoped for webhook::Entity {
    fn tenant_condition(ctx: &AuthContext) -> sea_orm::Condition {
        use sea_orm::ColumnTrait;
        sea_orm::Condition::all().add(webhook::Column::OrgId.eq(ctx.org_id()))
    }
}

#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({"subscription": {"id": 3, "url": "https://erp.example.com/hooks/cmo", "event_types": ["deviation.reported"],
    "active": true, "consecutive_failures": 0, "disabled_reason": null,
    "created_at": "2026-11-30T09:00:00Z", "updated_at": "2026-11-30T09:00:00Z", "version": 1},
    "secret": "whsec_6f1c…"}))]
pub struct CreatedWebhook {
    pub subscription: WebhookView,
    /// The HMAC key for `X-Cmo-Signature`. Shown only here: store it now.
    pub secret: String,
}

fn check_types(c: &mut Checks, types: &[String]) {
    if types.is_empty() || types.len() > domain_event::EVENT_TYPES.len() {
        c.fail("event_types", "out_of_range", "at least one event type");
    }
    for t in types {
        if !domain_event::EVENT_TYPES.contains(&t.as_str()) {
            c.fail(
                "event_types",
                "unknown_type",
                format!("{t} is not an event type"),
            );
        }
    }
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"url": "https://erp.example.com/hooks/cmo", "event_types": ["deviation.reported", "escalation.opened"]}))]
pub struct CreateWebhook {
    /// `https://…` (plain `http://` only to a loopback address).
    #[schema(format = "uri", max_length = 2048)]
    pub url: String,
    /// At least one event type.
    #[schema(min_items = 1)]
    pub event_types: Vec<String>,
}

impl Validate for CreateWebhook {
    fn validate(&self, c: &mut Checks) {
        check_url_form(c, &self.url);
        check_types(c, &self.event_types);
    }
}

/// The URL's form and every inner address but loopback, with the other fields' errors;
/// loopback is the installation's call ([`check_receiver`]).
fn check_url_form(c: &mut Checks, url: &str) {
    if let Err(why) = webhook::check_url(url, webhook::AddressPolicy::LOOPBACK_ALLOWED) {
        c.fail("url", "invalid_url", why);
    }
}

/// The receiver URL under this installation's address policy: 422 `invalid_url` when it
/// is not an https URL to a public address (see `entity::receiver_address`).
fn check_receiver(state: &AppState, url: &str) -> ApiResult<()> {
    webhook::check_url(url, state.webhook_policy)
        .map_err(|why| ApiError::invalid("url", "invalid_url", why))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"version": 1, "active": false}))]
pub struct UpdateWebhook {
    pub version: Option<i32>,
    #[schema(format = "uri", max_length = 2048)]
    pub url: Option<String>,
    /// At least one event type.
    #[schema(min_items = 1)]
    pub event_types: Option<Vec<String>>,
    /// Re-activating clears the failure count and the disabled reason.
    pub active: Option<bool>,
}

impl Validate for UpdateWebhook {
    fn validate(&self, c: &mut Checks) {
        if let Some(url) = &self.url {
            check_url_form(c, url);
        }
        if let Some(t) = &self.event_types {
            check_types(c, t);
        }
    }
}

/// Subscribe an endpoint to domain events (admins of the organization).
#[utoipa::path(
    tag = "integrations",
    request_body = CreateWebhook,
    responses(
        (status = 201, description = "Created; the secret is shown only in this answer", body = CreatedWebhook),
        (status = 403, description = "Admins only", body = crate::error::Problem),
        (status = 422, description = "Not an https URL to a public address (loopback only when the installation allows it), or unknown event types", body = crate::error::Problem)
    )
)]
#[post("/webhooks")]
pub async fn create_webhook(
    state: web::Data<AppState>,
    ctx: AuthContext,
    body: ApiJson<CreateWebhook>,
) -> ApiResult<HttpResponse> {
    ctx.require_admin()?;
    let b = body.into_inner();
    check_receiver(&state, &b.url)?;
    let now = state.clock.now();
    let secret = webhook::new_secret();
    let txn = WriteTxn::begin(&state, &ctx).await?;
    let mut types = b.event_types;
    types.sort();
    types.dedup();
    let (w, _) = insert_audited(
        &txn,
        &ctx.actor(now),
        "webhook",
        webhook::ActiveModel {
            id: NotSet,
            org_id: Set(ctx.org_id()),
            url: Set(b.url),
            event_types: Set(serde_json::to_string(&types).map_err(ApiError::internal)?),
            secret: Set(secret.clone()),
            active: Set(true),
            consecutive_failures: Set(0),
            disabled_reason: Set(None),
            disabled_at: Set(None),
            created_by_user_id: Set(ctx.user.id),
            created_at: Set(now),
            updated_at: Set(now),
            version: Set(1),
        },
        async |w| Ok(WebhookView::from(w)),
    )
    .await?;
    txn.respond(
        StatusCode::CREATED,
        &CreatedWebhook {
            subscription: WebhookView::from(&w),
            secret,
        },
    )
    .await
}

/// Your organization's webhook subscriptions (admins: URLs name the receivers).
#[utoipa::path(
    tag = "integrations",
    params(Paging),
    responses(
        (status = 200, description = "One page of subscriptions, by id", body = Page<WebhookView>),
        (status = 403, description = "Admins only", body = crate::error::Problem),
        (status = 422, description = "Invalid limit or offset", body = crate::error::Problem)
    )
)]
#[get("/webhooks")]
pub async fn list_webhooks(
    state: web::Data<AppState>,
    ctx: AuthContext,
    paging: web::Query<Paging>,
) -> ApiResult<web::Json<Page<WebhookView>>> {
    ctx.require_admin()?;
    let select = scoped::<webhook::Entity>(&ctx);
    let page = fetch_page(
        &state.reads,
        select,
        Keyset::asc([webhook::Column::Id]),
        &paging,
    )
    .await?;
    let list = &page.items;
    let items = list.iter().map(WebhookView::from).collect();
    Ok(web::Json(page.with_items(items)))
}

/// Change a subscription's URL, event types or active flag (admins).
#[utoipa::path(
    tag = "integrations",
    params(("id" = i64, Path, description = "Subscription id")),
    request_body = UpdateWebhook,
    responses(
        (status = 200, description = "Updated", body = WebhookView),
        (status = 403, description = "Admins only", body = crate::error::Problem),
        (status = 404, description = "No such subscription in your organization", body = crate::error::Problem),
        (status = 409, description = "Stale version", body = crate::error::Problem)
    )
)]
#[patch("/webhooks/{id}")]
pub async fn update_webhook(
    req: HttpRequest,
    state: web::Data<AppState>,
    ctx: AuthContext,
    id: web::Path<i64>,
    body: ApiJson<UpdateWebhook>,
) -> ApiResult<HttpResponse> {
    ctx.require_admin()?;
    let b = body.into_inner();
    if let Some(url) = &b.url {
        check_receiver(&state, url)?;
    }
    update_versioned::<webhook::Entity, _>(
        &state,
        &ctx,
        &req,
        id.into_inner(),
        b.version,
        "webhook",
        async |_, _| Ok(()),
        async |_, _, w| {
            if let Some(url) = b.url {
                w.url = url;
            }
            if let Some(mut t) = b.event_types {
                t.sort();
                t.dedup();
                w.event_types = serde_json::to_string(&t).map_err(ApiError::internal)?;
            }
            if let Some(on) = b.active {
                w.active = on;
                if on {
                    w.consecutive_failures = 0;
                    w.disabled_reason = None;
                    w.disabled_at = None;
                }
            }
            Ok(Patched::update(None))
        },
        async |_, w| Ok(WebhookView::from(w)),
    )
    .await
}

/// Delete a subscription (admins).
#[utoipa::path(
    tag = "integrations",
    params(("id" = i64, Path, description = "Subscription id")),
    responses(
        (status = 204, description = "Deleted"),
        (status = 403, description = "Admins only", body = crate::error::Problem),
        (status = 404, description = "No such subscription in your organization", body = crate::error::Problem)
    )
)]
#[delete("/webhooks/{id}")]
pub async fn delete_webhook(
    state: web::Data<AppState>,
    ctx: AuthContext,
    id: web::Path<i64>,
) -> ApiResult<HttpResponse> {
    ctx.require_admin()?;
    let txn = WriteTxn::begin(&state, &ctx).await?;
    let w = find_scoped::<webhook::Entity, _>(&txn, &ctx, id.into_inner()).await?;
    let now = state.clock.now();
    audit_trail::append(
        &txn,
        &ctx.actor(now),
        Entry::new("webhook", w.id, "delete").before(snapshot(&WebhookView::from(&w))),
    )
    .await?;
    // Its deliveries and their log go with it.
    let deliveries: Vec<i64> = webhook::delivery::Entity::find()
        .select_only()
        .column(webhook::delivery::Column::Id)
        .filter(webhook::delivery::Column::SubscriptionId.eq(w.id))
        .into_tuple()
        .all(&txn)
        .await?;
    for ids in deliveries.chunks(500) {
        webhook::attempt::Entity::delete_many()
            .filter(webhook::attempt::Column::DeliveryId.is_in(ids.iter().copied()))
            .exec(&txn)
            .await?;
    }
    webhook::delivery::Entity::delete_many()
        .filter(webhook::delivery::Column::SubscriptionId.eq(w.id))
        .exec(&txn)
        .await?;
    w.delete(&txn).await?;
    txn.respond_empty(StatusCode::NO_CONTENT).await
}

async fn with_logs<C: ConnectionTrait>(
    conn: &C,
    deliveries: &[webhook::delivery::Model],
) -> ApiResult<Vec<DeliveryView>> {
    let ids: Vec<i64> = deliveries.iter().map(|d| d.id).collect();
    let mut logs: std::collections::HashMap<i64, Vec<AttemptView>> = Default::default();
    for a in webhook::attempt::Entity::find()
        .filter(webhook::attempt::Column::DeliveryId.is_in(ids))
        .order_by_asc(webhook::attempt::Column::Id)
        .all(conn)
        .await?
    {
        logs.entry(a.delivery_id).or_default().push(AttemptView {
            attempt: a.attempt,
            started_at: a.started_at,
            duration_ms: a.duration_ms,
            status_code: a.status_code,
            error: a.error,
            response_excerpt: a.response_excerpt,
            outcome: a.outcome,
        });
    }
    Ok(deliveries
        .iter()
        .map(|d| delivery_view(d, logs.remove(&d.id).unwrap_or_default()))
        .collect())
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct DeliveryFilter {
    pub status: Option<webhook::DeliveryStatus>,
    /// Deliveries older than this delivery id (paging backwards from the newest).
    #[param(example = 88)]
    pub before: Option<i64>,
}

/// A subscription's deliveries, newest first, each with its attempt log (admins: the log
/// holds the first bytes of each receiver's answer).
#[utoipa::path(
    tag = "integrations",
    params(("id" = i64, Path, description = "Subscription id"), DeliveryFilter, Paging),
    responses(
        (status = 200, description = "One page of deliveries, newest first; `total` counts those matching the filter", body = Page<DeliveryView>),
        (status = 403, description = "Admins only", body = crate::error::Problem),
        (status = 404, description = "No such subscription in your organization", body = crate::error::Problem),
        (status = 422, description = "Invalid filter", body = crate::error::Problem)
    )
)]
#[get("/webhooks/{id}/deliveries")]
pub async fn list_deliveries(
    state: web::Data<AppState>,
    ctx: AuthContext,
    id: web::Path<i64>,
    query: ListQuery<DeliveryFilter>,
) -> ApiResult<web::Json<Page<DeliveryView>>> {
    ctx.require_admin()?;
    let q = query.filter;
    let w = find_scoped::<webhook::Entity, _>(&state.reads, &ctx, id.into_inner()).await?;
    // The deliveries of every event committed before this read are queued (PostgreSQL
    // queues them when it sequences the events, after their commit).
    entity::domain_event::catch_up(&state.db).await;
    let mut select = webhook::delivery::Entity::find()
        .filter(webhook::delivery::Column::SubscriptionId.eq(w.id));
    if let Some(status) = q.status {
        select = select.filter(webhook::delivery::Column::Status.eq(status));
    }
    if let Some(before) = q.before {
        select = select.filter(webhook::delivery::Column::Id.lt(before));
    }
    let page = fetch_page(
        &state.reads,
        select,
        Keyset::desc([webhook::delivery::Column::Id]),
        &query.paging,
    )
    .await?;
    let rows = &page.items;
    let items = with_logs(&state.reads, rows).await?;
    Ok(web::Json(page.with_items(items)))
}

/// Send a delivery again (admins): a delivered or failed delivery goes back to pending
/// with a fresh series of attempts, the same event id and body. The subscription must be
/// active.
#[utoipa::path(
    tag = "integrations",
    params(("id" = i64, Path, description = "Subscription id"),
           ("delivery_id" = i64, Path, description = "Delivery id")),
    responses(
        (status = 202, description = "Queued again", body = DeliveryView),
        (status = 403, description = "Admins only", body = crate::error::Problem),
        (status = 404, description = "No such subscription or delivery in your organization", body = crate::error::Problem),
        (status = 409, description = "Subscription inactive, or the delivery is still pending", body = crate::error::Problem)
    )
)]
#[post("/webhooks/{id}/deliveries/{delivery_id}/redeliver")]
pub async fn redeliver(
    state: web::Data<AppState>,
    ctx: AuthContext,
    path: web::Path<(i64, i64)>,
) -> ApiResult<HttpResponse> {
    ctx.require_admin()?;
    let (id, delivery_id) = path.into_inner();
    let txn = WriteTxn::begin(&state, &ctx).await?;
    let w = find_scoped::<webhook::Entity, _>(&txn, &ctx, id).await?;
    let d = webhook::delivery::Entity::find_by_id(delivery_id)
        .filter(webhook::delivery::Column::SubscriptionId.eq(w.id))
        .one(&txn)
        .await?
        .ok_or(ApiError::NotFound)?;
    if !w.active {
        return Err(ApiError::conflict(
            "subscription_inactive",
            "the subscription is inactive: activate it first (PATCH active=true)",
        ));
    }
    if matches!(
        d.status,
        webhook::DeliveryStatus::Pending | webhook::DeliveryStatus::Delivering
    ) {
        return Err(ApiError::conflict(
            "delivery_in_progress",
            "the delivery is still pending; it will be attempted at next_attempt_at",
        ));
    }
    let now = state.clock.now();
    let updated = webhook::delivery::Entity::update_many()
        .col_expr(
            webhook::delivery::Column::Status,
            sea_orm::sea_query::Expr::value(sea_orm::ActiveEnum::to_value(
                &webhook::DeliveryStatus::Pending,
            )),
        )
        .col_expr(
            webhook::delivery::Column::Attempts,
            sea_orm::sea_query::Expr::value(0),
        )
        .col_expr(
            webhook::delivery::Column::NextAttemptAt,
            sea_orm::sea_query::Expr::value(now),
        )
        .col_expr(
            webhook::delivery::Column::UpdatedAt,
            sea_orm::sea_query::Expr::value(now),
        )
        .filter(webhook::delivery::Column::Id.eq(d.id))
        .filter(webhook::delivery::Column::Status.eq(d.status))
        .exec(&txn)
        .await?;
    if updated.rows_affected != 1 {
        return Err(ApiError::conflict(
            "delivery_in_progress",
            "the delivery changed meanwhile; read it again",
        ));
    }
    audit_trail::append(
        &txn,
        &ctx.actor(now),
        Entry::new("webhook", w.id, "redeliver").after(serde_json::json!({
            "delivery_id": d.id, "event_id": d.event_cursor, "previous_status": d.status})),
    )
    .await?;
    entity::wake::at_commit(&txn, webhook::WAKE_CHANNEL).await?;
    let fresh = webhook::delivery::Entity::find_by_id(d.id)
        .one(&txn)
        .await?
        .ok_or(ApiError::NotFound)?;
    let view = with_logs(&txn, &[fresh]).await?;
    txn.respond(StatusCode::ACCEPTED, &view.into_iter().next())
        .await
}
