//! Escalations over HTTP (SPEC §6): open by hand, list, read with their events and
//! pages, acknowledge and resolve through the API.

use actix_web::{HttpRequest, HttpResponse, get, post, web};
use chrono::{DateTime, Utc};
use entity::audit_trail::{self, Entry};
use entity::deviation::Category;
use entity::escalation::{self, EscalationStatus};
use entity::{Role, program};
use sea_orm::{ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::acknowledge;
use crate::auth::{AuthContext, find_scoped, scoped};
use crate::error::{ApiError, ApiResult};
use crate::extract::{ApiJson, Checks, Validate};
use crate::pagination::{Keyset, ListQuery, Paging};
use crate::routes::{Page, fetch_page, snapshot, wire_name};
use crate::state::AppState;
use crate::transition::event_options;
use crate::transition::{ApiStep, run_step};
use crate::views::escalation::{EscalationDetail, detail};
use crate::views::{EventOptions, Offers};
use crate::write_txn::WriteTxn;
use actix_web::http::StatusCode;
use entity::escalation::EscalationView;
use entity::workflow::escalation::{self as escalation_flow, EscalationEvent};

#[derive(Debug, Clone, Copy, Deserialize, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Urgency {
    Critical,
    Major,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"program_id": 3, "title": "Cold-chain shipper lost in transit",
    "reason": "GMP lot 24-017 shipper untracked for 6 h", "urgency": "critical", "category": "material"}))]
pub struct OpenEscalation {
    pub program_id: i64,
    #[schema(min_length = 1, max_length = 200)]
    pub title: String,
    #[schema(min_length = 1, max_length = 2000)]
    pub reason: String,
    pub urgency: Urgency,
    /// Pages the call tree of members tagged with this category.
    pub category: Option<Category>,
}

impl Validate for OpenEscalation {
    fn validate(&self, c: &mut Checks) {
        c.text("title", &self.title, 1, 200);
        c.text("reason", &self.reason, 1, 2_000);
    }
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"reason": "Shipper found; temperature log within range"}))]
pub struct ResolveEscalation {
    #[schema(min_length = 1, max_length = 2000)]
    pub reason: String,
}

impl Validate for ResolveEscalation {
    fn validate(&self, c: &mut Checks) {
        c.text("reason", &self.reason, 1, 2_000);
    }
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"note": "On my way to the site"}))]
pub struct AcknowledgeEscalation {
    /// Optional note for the others ("on my way to the site").
    #[schema(min_length = 1, max_length = 500)]
    pub note: Option<String>,
}

impl Validate for AcknowledgeEscalation {
    fn validate(&self, c: &mut Checks) {
        c.optional_text("note", self.note.as_deref(), 1, 500);
    }
}

fn may_act(ctx: &AuthContext) -> ApiResult<()> {
    if ctx.user.role == Role::Viewer {
        return Err(ApiError::Forbidden(
            "viewers do not open, acknowledge or resolve escalations".to_string(),
        ));
    }
    Ok(())
}

/// Open an escalation by hand for anything urgent; tier 1 is paged at once.
#[utoipa::path(
    tag = "escalations",
    request_body = OpenEscalation,
    responses(
        (status = 201, description = "Opened; the worker pages tier 1 at once", body = EscalationView),
        (status = 403, description = "Viewers do not open escalations", body = crate::error::Problem),
        (status = 422, description = "Invalid fields, or no such program visible to the caller", body = crate::error::Problem)
    )
)]
#[post("/escalations")]
pub async fn open_escalation(
    state: web::Data<AppState>,
    ctx: AuthContext,
    body: ApiJson<OpenEscalation>,
) -> ApiResult<HttpResponse> {
    let b = body.into_inner();
    may_act(&ctx)?;
    let txn = WriteTxn::begin(&state, &ctx).await?;
    let prog = find_scoped::<program::Entity, _>(&txn, &ctx, b.program_id)
        .await
        .map_err(|_| ApiError::invalid("program_id", "unknown_program", "no such program"))?;
    let now = state.clock.now();
    let urgency = wire_name(&b.urgency);
    let category = b.category.map(|c| wire_name(&c));
    let e = escalation::open(
        &txn,
        escalation::Opening {
            program_id: prog.id,
            source_type: "manual",
            source_id: None,
            reason: b.reason.trim(),
            title: b.title.trim(),
            criticality: Some(&urgency),
            category: category.as_deref(),
            opened_by_user_id: Some(ctx.user.id),
        },
        now,
    )
    .await?;
    audit_trail::append(
        &txn,
        &ctx.actor(now),
        Entry::new("escalation", e.id, "open").after(snapshot(&EscalationView::from(&e))),
    )
    .await?;
    txn.respond(StatusCode::CREATED, &EscalationView::from(&e))
        .await
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ListEscalations {
    pub program_id: Option<i64>,
    pub status: Option<EscalationStatus>,
}

/// Escalations of the programs you can see, newest first.
#[utoipa::path(
    tag = "escalations",
    params(ListEscalations, Paging),
    responses((status = 200, description = "One page", body = Page<EscalationView>))
)]
#[get("/escalations")]
pub async fn list_escalations(
    state: web::Data<AppState>,
    ctx: AuthContext,
    query: ListQuery<ListEscalations>,
) -> ApiResult<web::Json<Page<EscalationView>>> {
    let q = query.filter;
    let mut select = scoped::<escalation::Entity>(&ctx);
    if let Some(p) = q.program_id {
        select = select.filter(escalation::Column::ProgramId.eq(p));
    }
    if let Some(s) = q.status {
        select = select.filter(escalation::Column::Status.eq(s));
    }
    let page = fetch_page(
        &state.reads,
        select,
        Keyset::desc([escalation::Column::OpenedAt, escalation::Column::Id]),
        &query.paging,
    )
    .await?;
    let items = &page.items;
    let items = items.iter().map(EscalationView::from).collect();
    Ok(web::Json(page.with_items(items)))
}

/// One escalation with its policy snapshot, every page (who, which tier, when) and event.
#[utoipa::path(
    tag = "escalations",
    params(("id" = i64, Path, description = "Escalation id")),
    responses(
        (status = 200, description = "The escalation", body = EscalationDetail),
        (status = 404, description = "No such escalation visible to the caller", body = crate::error::Problem)
    )
)]
#[get("/escalations/{id}")]
pub async fn get_escalation(
    state: web::Data<AppState>,
    ctx: AuthContext,
    id: web::Path<i64>,
) -> ApiResult<web::Json<EscalationDetail>> {
    let e = find_scoped::<escalation::Entity, _>(&state.reads, &ctx, id.into_inner()).await?;
    let mut detail = detail(&state.reads, &e).await?;
    detail
        .escalation
        .offer(event_options::<escalation_flow::Step>(&state.reads, &ctx, &e).await?);
    Ok(web::Json(detail))
}

/// Acknowledge: "I am on it". Stops paging and tells everyone already paged who took it.
/// The same person again is a no-op (200).
#[utoipa::path(
    tag = "escalations",
    params(("id" = i64, Path, description = "Escalation id")),
    request_body = AcknowledgeEscalation,
    responses(
        (status = 200, description = "Acknowledged (now or before, by you)", body = EscalationView),
        (status = 403, description = "Viewers do not acknowledge", body = crate::error::Problem),
        (status = 404, description = "No such escalation visible to the caller", body = crate::error::Problem),
        (status = 409, description = "Acknowledged by someone else, or resolved", body = crate::error::Problem)
    )
)]
#[post("/escalations/{id}/ack")]
pub async fn ack_escalation(
    state: web::Data<AppState>,
    ctx: AuthContext,
    id: web::Path<i64>,
    body: ApiJson<AcknowledgeEscalation>,
) -> ApiResult<HttpResponse> {
    let b = body.into_inner();
    may_act(&ctx)?;
    let txn = WriteTxn::begin(&state, &ctx).await?;
    let e = find_scoped::<escalation::Entity, _>(&txn, &ctx, id.into_inner()).await?;
    let now = state.clock.now();
    acknowledge(
        &txn,
        &e,
        &ctx.user,
        "api",
        b.note.as_deref(),
        ctx.request_id.clone(),
        &state.chain_keys,
        &ctx.public_base_url,
        now,
    )
    .await?;
    let current = escalation::Entity::find_by_id(e.id)
        .one(&txn)
        .await?
        .ok_or(ApiError::NotFound)?;
    let mut answer = EscalationView::from(&current);
    answer.offer(event_options::<escalation_flow::Step>(&txn, &ctx, &current).await?);
    txn.respond(StatusCode::OK, &answer).await
}

/// Resolve: the cause is dealt with. Stops paging and tells everyone paged.
#[utoipa::path(
    tag = "escalations",
    params(("id" = i64, Path, description = "Escalation id")),
    request_body = ResolveEscalation,
    responses(
        (status = 200, description = "Resolved", body = EscalationView),
        (status = 403, description = "Viewers and the CMO side do not resolve (the sponsor does)", body = crate::error::Problem),
        (status = 404, description = "No such escalation visible to the caller", body = crate::error::Problem),
        (status = 409, description = "Already resolved", body = crate::error::Problem)
    )
)]
#[post("/escalations/{id}/resolve")]
pub async fn resolve_escalation(
    req: HttpRequest,
    state: web::Data<AppState>,
    ctx: AuthContext,
    id: web::Path<i64>,
    body: ApiJson<ResolveEscalation>,
) -> ApiResult<HttpResponse> {
    let b = body.into_inner();
    let step = escalation_flow::Step::by_person(
        EscalationEvent::Resolve,
        ctx.user.id,
        &ctx.user.display_name,
        "api",
        Some(b.reason.trim().to_string()),
        state.clock.now(),
    );
    run_step(&state, &ctx, &req, id.into_inner(), step, None, None).await
}

impl ApiStep for escalation_flow::Step {
    type View = EscalationView;
    fn offer(view: &mut Self::View, options: EventOptions<Self::Event>) {
        view.offer(options);
    }
    /// Who may take steps on this record at all (403 before anything else).
    async fn may_step(
        _conn: &impl ConnectionTrait,
        ctx: &AuthContext,
        _record: &Self::Model,
    ) -> ApiResult<()> {
        may_act(ctx)
    }
    /// An escalation is resolved by the sponsor (the CMO acknowledges and acts).
    async fn may_take(
        conn: &impl ConnectionTrait,
        ctx: &AuthContext,
        e: &Self::Model,
        step: &Self,
    ) -> ApiResult<()> {
        if step.event != EscalationEvent::Resolve {
            return Ok(());
        }
        let program = find_scoped::<entity::program::Entity, _>(conn, ctx, e.program_id).await?;
        ctx.permit(entity::access::Action::ResolveEscalation, program.sides())
    }
    async fn view(
        _conn: &impl ConnectionTrait,
        _ctx: &AuthContext,
        e: &escalation::Model,
        _now: DateTime<Utc>,
    ) -> ApiResult<EscalationView> {
        Ok(EscalationView::from(e))
    }
}

// ------------------------------------------------------------------ the email link
