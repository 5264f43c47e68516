//! Webhook subscriptions (per organization, admins): URL, event types, a secret shown
//! once, active flag. Deliveries (signed POSTs through a durable outbox) are not built
//! yet; subscriptions can be prepared and managed.

use actix_web::{HttpRequest, HttpResponse, delete, get, patch, post, web};
use chrono::{DateTime, Utc};
use entity::audit_trail::{self, Entry};
use entity::{domain_event, webhook};
use sea_orm::{ActiveModelTrait, ActiveValue::NotSet, ActiveValue::Set, ModelTrait, QueryOrder};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::{compare_and_set, expected_version, snapshot};
use crate::auth::{AuthContext, TenantScoped, find_scoped, scoped};
use crate::error::{ApiError, ApiResult};
use crate::extract::{ApiJson, Checks, Validate};
use crate::state::AppState;

impl TenantScoped for webhook::Entity {
    fn tenant_condition(ctx: &AuthContext) -> sea_orm::Condition {
        use sea_orm::ColumnTrait;
        sea_orm::Condition::all().add(webhook::Column::OrgId.eq(ctx.org_id()))
    }
}

#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({"id": 3, "url": "https://erp.example.com/hooks/cmo", "event_types": ["deviation.reported", "escalation.opened"],
    "active": true, "consecutive_failures": 0, "disabled_reason": null,
    "created_at": "2026-11-30T09:00:00Z", "updated_at": "2026-11-30T09:00:00Z", "version": 1}))]
pub struct WebhookView {
    pub id: i64,
    pub url: String,
    pub event_types: Vec<String>,
    pub active: bool,
    pub consecutive_failures: i32,
    pub disabled_reason: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub version: i32,
}

impl From<&webhook::Model> for WebhookView {
    fn from(w: &webhook::Model) -> Self {
        WebhookView {
            id: w.id,
            url: w.url.clone(),
            event_types: serde_json::from_str(&w.event_types).unwrap_or_default(),
            active: w.active,
            consecutive_failures: w.consecutive_failures,
            disabled_reason: w.disabled_reason.clone(),
            created_at: w.created_at,
            updated_at: w.updated_at,
            version: w.version,
        }
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
    pub url: String,
    pub event_types: Vec<String>,
}

impl Validate for CreateWebhook {
    fn validate(&self, c: &mut Checks) {
        if let Err(why) = webhook::check_url(&self.url) {
            c.fail("url", "invalid_url", why);
        }
        check_types(c, &self.event_types);
    }
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"version": 1, "active": false}))]
pub struct UpdateWebhook {
    pub version: Option<i32>,
    pub url: Option<String>,
    pub event_types: Option<Vec<String>>,
    /// Re-activating clears the failure count and the disabled reason.
    pub active: Option<bool>,
}

impl Validate for UpdateWebhook {
    fn validate(&self, c: &mut Checks) {
        if let Some(url) = &self.url
            && let Err(why) = webhook::check_url(url)
        {
            c.fail("url", "invalid_url", why);
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
        (status = 403, description = "Admins only", body = crate::error::Problem, content_type = "application/problem+json")
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
    let now = state.clock.now();
    let secret = format!("whsec_{}", hex::encode(rand::random::<[u8; 32]>()));
    let txn = crate::db::begin_write(&state.db).await?;
    let mut types = b.event_types;
    types.sort();
    types.dedup();
    let w = webhook::ActiveModel {
        id: NotSet,
        org_id: Set(ctx.org_id()),
        url: Set(b.url),
        event_types: Set(serde_json::to_string(&types).map_err(ApiError::internal)?),
        secret: Set(secret.clone()),
        active: Set(true),
        consecutive_failures: Set(0),
        disabled_reason: Set(None),
        created_by_user_id: Set(ctx.user.id),
        created_at: Set(now),
        updated_at: Set(now),
        version: Set(1),
    }
    .insert(&txn)
    .await?;
    audit_trail::append(
        &txn,
        &ctx.actor(now),
        Entry::new("webhook", w.id, "create").after(snapshot(&WebhookView::from(&w))),
    )
    .await?;
    txn.commit().await?;
    Ok(HttpResponse::Created().json(CreatedWebhook {
        subscription: WebhookView::from(&w),
        secret,
    }))
}

/// Your organization's webhook subscriptions.
#[utoipa::path(
    tag = "integrations",
    responses((status = 200, description = "Subscriptions", body = [WebhookView]))
)]
#[get("/webhooks")]
pub async fn list_webhooks(
    state: web::Data<AppState>,
    ctx: AuthContext,
) -> ApiResult<web::Json<Vec<WebhookView>>> {
    let list = scoped::<webhook::Entity>(&ctx)
        .order_by_asc(webhook::Column::Id)
        .all(&state.db)
        .await?;
    Ok(web::Json(list.iter().map(WebhookView::from).collect()))
}

/// Change a subscription's URL, event types or active flag (admins).
#[utoipa::path(
    tag = "integrations",
    params(("id" = i64, Path, description = "Subscription id")),
    request_body = UpdateWebhook,
    responses(
        (status = 200, description = "Updated", body = WebhookView),
        (status = 403, description = "Admins only", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such subscription in your organization", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 409, description = "Stale version", body = crate::error::Problem, content_type = "application/problem+json")
    )
)]
#[patch("/webhooks/{id}")]
pub async fn update_webhook(
    req: HttpRequest,
    state: web::Data<AppState>,
    ctx: AuthContext,
    id: web::Path<i64>,
    body: ApiJson<UpdateWebhook>,
) -> ApiResult<web::Json<WebhookView>> {
    ctx.require_admin()?;
    let b = body.into_inner();
    let version = expected_version(&req, b.version)?;
    let txn = crate::db::begin_write(&state.db).await?;
    let current = find_scoped::<webhook::Entity, _>(&txn, &ctx, id.into_inner()).await?;
    if current.version != version {
        return Err(ApiError::stale_version(current.version));
    }
    let now = state.clock.now();
    let mut active: webhook::ActiveModel = current.clone().into();
    if let Some(url) = b.url {
        active.url = Set(url);
    }
    if let Some(mut t) = b.event_types {
        t.sort();
        t.dedup();
        active.event_types = Set(serde_json::to_string(&t).map_err(ApiError::internal)?);
    }
    if let Some(on) = b.active {
        active.active = Set(on);
        if on {
            active.consecutive_failures = Set(0);
            active.disabled_reason = Set(None);
        }
    }
    active.updated_at = Set(now);
    active.version = Set(current.version + 1);
    let updated =
        compare_and_set::<webhook::Entity, _>(&txn, active, current.id, current.version).await?;
    audit_trail::append(
        &txn,
        &ctx.actor(now),
        Entry::new("webhook", updated.id, "update")
            .before(snapshot(&WebhookView::from(&current)))
            .after(snapshot(&WebhookView::from(&updated))),
    )
    .await?;
    txn.commit().await?;
    Ok(web::Json(WebhookView::from(&updated)))
}

/// Delete a subscription (admins).
#[utoipa::path(
    tag = "integrations",
    params(("id" = i64, Path, description = "Subscription id")),
    responses(
        (status = 204, description = "Deleted"),
        (status = 403, description = "Admins only", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such subscription in your organization", body = crate::error::Problem, content_type = "application/problem+json")
    )
)]
#[delete("/webhooks/{id}")]
pub async fn delete_webhook(
    state: web::Data<AppState>,
    ctx: AuthContext,
    id: web::Path<i64>,
) -> ApiResult<HttpResponse> {
    ctx.require_admin()?;
    let txn = crate::db::begin_write(&state.db).await?;
    let w = find_scoped::<webhook::Entity, _>(&txn, &ctx, id.into_inner()).await?;
    let now = state.clock.now();
    audit_trail::append(
        &txn,
        &ctx.actor(now),
        Entry::new("webhook", w.id, "delete").before(snapshot(&WebhookView::from(&w))),
    )
    .await?;
    w.delete(&txn).await?;
    txn.commit().await?;
    Ok(HttpResponse::NoContent().finish())
}
