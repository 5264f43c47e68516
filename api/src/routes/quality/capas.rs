//! CAPA: linked to deviations or findings, actions as action items, a signed plan and a
//! signed closure after an effectiveness check; CAPA action due dates move only through
//! approved extension requests.

use std::collections::BTreeSet;

use actix_web::{HttpRequest, HttpResponse, get, patch, post, web};
use chrono::{DateTime, NaiveDate, Utc};
use entity::action_item::ActionSource;
use entity::audit_trail::{self, Entry};
use entity::capa::{self, ActionKind, CapaEvent, CapaSource, CapaStatus, EffectivenessOutcome};
use entity::deviation::{self};
use entity::program;
use sea_orm::{
    ActiveModelTrait, ActiveValue::Set, ColumnTrait, ConnectionTrait, EntityTrait, PaginatorTrait,
    QueryFilter,
};
use serde::Deserialize;
use utoipa::{IntoParams, ToSchema};

use crate::auth::{AuthContext, find_scoped, find_scoped_locked, scoped};
use crate::error::{ApiError, ApiResult};
use crate::local_dates::ProgramDates;
use crate::pagination::{Keyset, ListQuery, Paging};
use crate::records::{NewAction, check_owner, insert_action};
use crate::records::{NewCapa, insert_capa};
use crate::routes::{ApiJson, Checks, Page, Validate, fetch_page};
use crate::state::AppState;
use crate::transition::event_options;
use crate::transition::{ApiStep, run_step};
use crate::views::quality::{CapaActionView, CapaDetail, capa_detail as detail};
use crate::views::quality::{CapaView, capa as render};
use crate::views::{EventOptions, Offers};
use crate::write::{Patched, update_versioned};
use crate::write_txn::WriteTxn;
use actix_web::http::StatusCode;
use entity::workflow::capa as capa_flow;

impl crate::auth::TenantScoped for capa::Entity {
    fn tenant_condition(ctx: &AuthContext) -> sea_orm::Condition {
        use sea_orm::sea_query::IntoCondition;
        capa::Column::ProgramId
            .in_subquery(crate::auth::visible_programs(ctx))
            .into_condition()
    }
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({
    "title": "Replace and re-qualify harvest tank gaskets",
    "description": "Corrective: replace gaskets. Preventive: add gasket inspection to PM.",
    "source": "deviation", "deviation_ids": [41]
}))]
pub struct CreateCapa {
    #[schema(min_length = 1, max_length = 200)]
    pub title: String,
    #[schema(min_length = 1, max_length = 10000)]
    pub description: String,
    pub source: CapaSource,
    /// Deviations of the same program (at least one when `source` is `deviation`).
    #[schema(max_items = 50)]
    pub deviation_ids: Option<Vec<i64>>,
    /// Inspection or audit finding reference (for those sources).
    #[schema(max_length = 100)]
    pub finding_reference: Option<String>,
}

impl Validate for CreateCapa {
    fn validate(&self, c: &mut Checks) {
        c.text("title", &self.title, 1, 200);
        c.text("description", &self.description, 1, 10_000);
        c.optional_text(
            "finding_reference",
            self.finding_reference.as_deref(),
            1,
            100,
        );
        let linked = self.deviation_ids.as_ref().map_or(0, Vec::len);
        if self.source == CapaSource::Deviation && linked == 0 {
            c.fail(
                "deviation_ids",
                "required",
                "a CAPA from deviations names at least one",
            );
        }
        if linked > 50 {
            c.fail(
                "deviation_ids",
                "too_many",
                "at most 50 deviation ids, e.g. [41, 42]",
            );
        }
        if self.source != CapaSource::Deviation && self.finding_reference.is_none() {
            c.fail(
                "finding_reference",
                "required",
                "a CAPA from a finding names the finding",
            );
        }
    }
}

/// Open a CAPA on a program (quality, program managers and admins).
#[utoipa::path(
    tag = "quality",
    params(("id" = i64, Path, description = "Program id")),
    request_body = CreateCapa,
    responses(
        (status = 201, description = "CAPA opened", body = CapaView),
        (status = 403, description = "Only quality, program managers and admins open CAPAs", body = crate::error::Problem),
        (status = 404, description = "No such program visible to the caller", body = crate::error::Problem)
    )
)]
#[post("/programs/{id}/capas")]
pub async fn create_capa(
    state: web::Data<AppState>,
    ctx: AuthContext,
    id: web::Path<i64>,
    body: ApiJson<CreateCapa>,
) -> ApiResult<HttpResponse> {
    let b = body.into_inner();
    let txn = WriteTxn::begin(&state, &ctx).await?;
    let prog = find_scoped::<program::Entity, _>(&txn, &ctx, id.into_inner()).await?;
    if !ctx.user.role.handles_quality_records() {
        return Err(ApiError::Forbidden(
            "only quality, program managers and admins open CAPAs".to_string(),
        ));
    }
    let ids: BTreeSet<i64> = b.deviation_ids.unwrap_or_default().into_iter().collect();
    if !ids.is_empty() {
        let found = deviation::Entity::find()
            .filter(deviation::Column::Id.is_in(ids.iter().copied()))
            .filter(deviation::Column::ProgramId.eq(prog.id))
            .count(&txn)
            .await?;
        if found != ids.len() as u64 {
            return Err(ApiError::invalid(
                "deviation_ids",
                "unknown_deviation",
                "every deviation must be of this program",
            ));
        }
    }
    let now = state.clock.now();
    let rendered = insert_capa(
        &txn,
        &ctx,
        now,
        NewCapa {
            program_id: prog.id,
            title: b.title,
            description: b.description,
            source: b.source,
            finding_reference: b.finding_reference,
            deviation_ids: ids,
            reason: None,
        },
    )
    .await?;
    txn.respond(StatusCode::CREATED, &rendered).await
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct CapaFilter {
    pub program_id: Option<i64>,
    /// The record number people quote, e.g. `CAPA-2027-0005` (any letter case).
    #[param(
        example = "CAPA-2027-0005",
        max_length = 24,
        pattern = "^[A-Za-z0-9-]*$"
    )]
    pub number: Option<String>,
    pub status: Option<CapaStatus>,
    /// Only CAPAs whose effectiveness check is overdue (still in check, due date passed).
    pub effectiveness_overdue: Option<bool>,
}

/// CAPAs on the caller's programs, newest first.
#[utoipa::path(
    tag = "quality",
    params(CapaFilter, Paging),
    responses((status = 200, description = "One page of CAPAs", body = Page<CapaView>))
)]
#[get("/capas")]
pub async fn list_capas(
    state: web::Data<AppState>,
    ctx: AuthContext,
    query: ListQuery<CapaFilter>,
) -> ApiResult<web::Json<Page<CapaView>>> {
    let f = query.filter;
    let mut select = scoped::<capa::Entity>(&ctx);
    if let Some(v) = f.program_id {
        select = select.filter(capa::Column::ProgramId.eq(v));
    }
    if let Some(n) = crate::records::record_number_filter(f.number.as_deref())? {
        select = select.filter(capa::Column::RecordNumber.eq(n));
    }
    if let Some(v) = f.status {
        select = select.filter(capa::Column::Status.eq(v));
    }
    if f.effectiveness_overdue == Some(true) {
        // Each CAPA's program date, as its detail view reads "overdue".
        let dates = ProgramDates::load(&state.reads, &ctx, state.clock.now()).await?;
        select = select
            .filter(capa::Column::Status.eq(CapaStatus::EffectivenessCheck))
            .filter(dates.before_today(capa::Column::ProgramId, capa::Column::EffectivenessDue));
    }
    let page = fetch_page(
        &state.reads,
        select,
        Keyset::desc([capa::Column::Id]),
        &query.paging,
    )
    .await?;
    let items = &page.items;
    let mut views = Vec::with_capacity(items.len());
    for c in items {
        views.push(render(&state.reads, c).await?);
    }
    Ok(web::Json(page.with_items(views)))
}

/// One CAPA, with its corrective and preventive actions.
#[utoipa::path(
    tag = "quality",
    params(("id" = i64, Path, description = "CAPA id")),
    responses(
        (status = 200, description = "The CAPA", body = CapaDetail),
        (status = 404, description = "No such CAPA visible to the caller", body = crate::error::Problem)
    )
)]
#[get("/capas/{id}")]
pub async fn get_capa(
    state: web::Data<AppState>,
    ctx: AuthContext,
    id: web::Path<i64>,
) -> ApiResult<web::Json<CapaDetail>> {
    let c = find_scoped::<capa::Entity, _>(&state.reads, &ctx, id.into_inner()).await?;
    let prog = find_scoped::<program::Entity, _>(&state.reads, &ctx, c.program_id).await?;
    let now = state.clock.now();
    let mut detail = detail(&state.reads, &c, prog.today(now)).await?;
    detail
        .capa
        .offer(event_options::<capa_flow::Step>(&state.reads, &ctx, &c).await?);
    Ok(web::Json(detail))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"kind": "preventive", "title": "Add gasket inspection to the PM plan", "owner_user_id": 9, "due_date": "2027-05-15"}))]
pub struct AddCapaAction {
    pub kind: ActionKind,
    #[schema(min_length = 1, max_length = 200)]
    pub title: String,
    pub owner_user_id: i64,
    pub due_date: NaiveDate,
}

impl Validate for AddCapaAction {
    fn validate(&self, c: &mut Checks) {
        c.date("due_date", self.due_date);
        c.text("title", &self.title, 1, 200);
    }
}

/// Add a corrective or preventive action to a CAPA that is not closed or cancelled.
#[utoipa::path(
    tag = "quality",
    params(("id" = i64, Path, description = "CAPA id")),
    request_body = AddCapaAction,
    responses(
        (status = 201, description = "Action added", body = CapaActionView),
        (status = 403, description = "Only quality, program managers and admins change CAPAs", body = crate::error::Problem),
        (status = 404, description = "No such CAPA visible to the caller", body = crate::error::Problem),
        (status = 409, description = "The CAPA is closed or cancelled", body = crate::error::Problem)
    )
)]
#[post("/capas/{id}/actions")]
pub async fn add_capa_action(
    state: web::Data<AppState>,
    ctx: AuthContext,
    id: web::Path<i64>,
    body: ApiJson<AddCapaAction>,
) -> ApiResult<HttpResponse> {
    let b = body.into_inner();
    let txn = WriteTxn::begin(&state, &ctx).await?;
    // Locked: plan approval counts the actions this adds.
    let c = find_scoped_locked::<capa::Entity, _>(&txn, &ctx, id.into_inner()).await?;
    let prog = find_scoped::<program::Entity, _>(&txn, &ctx, c.program_id).await?;
    if !ctx.user.role.handles_quality_records() {
        return Err(ApiError::Forbidden(
            "only quality, program managers and admins change CAPAs".to_string(),
        ));
    }
    if c.status != CapaStatus::Open {
        // Actions are part of the plan quality signs; a changed plan is a new CAPA.
        return Err(ApiError::conflict(
            "plan_approved",
            "actions are added before the plan is approved",
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
            source: ActionSource::Capa,
            source_id: Some(c.id),
        },
    )
    .await?;
    capa::action_link::ActiveModel {
        action_item_id: Set(item.id),
        capa_id: Set(c.id),
        kind: Set(b.kind),
    }
    .insert(&txn)
    .await?;
    audit_trail::append(
        &txn,
        &ctx.actor(now),
        Entry::new("capa", c.id, "add_action")
            .after(serde_json::json!({"action_item_id": item.id, "kind": b.kind})),
    )
    .await?;
    txn.respond(
        StatusCode::CREATED,
        &CapaActionView {
            kind: b.kind,
            action: crate::views::plan::action_item(&item, today),
        },
    )
    .await
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"event": "record_effectiveness", "outcome": "effective", "reason": "no recurrence over 10 batches"}))]
pub struct CapaTransition {
    pub event: CapaEvent,
    /// `request_effectiveness_check`, or `record_effectiveness` with `inconclusive`: the check's (new) due date.
    pub effectiveness_due: Option<NaiveDate>,
    /// `record_effectiveness` only.
    pub outcome: Option<EffectivenessOutcome>,
    /// Required for `cancel` and an `ineffective` outcome; kept in the audit trail.
    #[schema(max_length = 500)]
    pub reason: Option<String>,
    /// `approve_plan` and `close`: the quality signer's password (e-signature).
    #[schema(max_length = 256)]
    pub password: Option<String>,
    /// The version the caller saw (optional).
    pub version: Option<i32>,
}

impl Validate for CapaTransition {
    fn validate(&self, c: &mut Checks) {
        c.optional_date("effectiveness_due", self.effectiveness_due);
        c.optional_text("reason", self.reason.as_deref(), 1, 500);
        c.optional_signing_password("password", self.password.as_deref());
    }
}

/// Move a CAPA through `open → plan_approved → implementing → effectiveness_check →
/// closed` (`ineffective` sends it back to implementing; `cancelled`). Plan approval and
/// closure are signed by quality. Closing an effective CAPA closes its deviations waiting
/// in `pending_capa` (those with a root cause, or minor), in the same transaction.
#[utoipa::path(
    tag = "quality",
    params(
        ("id" = i64, Path, description = "CAPA id"),
        ("If-Match" = Option<String>, Header, pattern = r#"^(W/)?"?[0-9]{1,9}"?$"#, description = "Version the caller saw (optional; alternative to `version` in the body)")
    ),
    request_body = CapaTransition,
    responses(
        (status = 200, description = "The CAPA in its new state", body = CapaView),
        (status = 401, description = "Wrong signature password (`invalid_password`; audited)", body = crate::error::Problem),
        (status = 403, description = "Not allowed; plan approval and closure are quality's", body = crate::error::Problem),
        (status = 404, description = "No such CAPA visible to the caller", body = crate::error::Problem),
        (status = 409, description = "Illegal event, failed guard, stale version, or no own signing password", body = crate::error::Problem),
        (status = 429, description = "Too many failed password attempts; see Retry-After", body = crate::error::Problem)
    )
)]
#[post("/capas/{id}/transitions")]
pub async fn transition_capa(
    req: HttpRequest,
    state: web::Data<AppState>,
    ctx: AuthContext,
    id: web::Path<i64>,
    body: ApiJson<CapaTransition>,
) -> ApiResult<HttpResponse> {
    let b = body.into_inner();
    let step = capa_flow::Step {
        event: b.event,
        effectiveness_due: b.effectiveness_due,
        outcome: b.outcome,
        reason: b.reason,
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

impl ApiStep for capa_flow::Step {
    type View = CapaView;
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
            "only quality, program managers and admins handle CAPAs",
        )
    }
    /// Cancelling a CAPA is the sponsor's quality decision.
    async fn may_take(
        conn: &impl ConnectionTrait,
        ctx: &AuthContext,
        c: &Self::Model,
        step: &Self,
    ) -> ApiResult<()> {
        if step.event != CapaEvent::Cancel {
            return Ok(());
        }
        let program = find_scoped::<entity::program::Entity, _>(conn, ctx, c.program_id).await?;
        ctx.permit(entity::access::Action::CancelCapa, program.sides())
    }
    async fn view(
        conn: &impl ConnectionTrait,
        _ctx: &AuthContext,
        c: &capa::Model,
        _now: DateTime<Utc>,
    ) -> ApiResult<CapaView> {
        render(conn, c).await
    }
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"version": 2, "description": "Corrective: replace gaskets on both tanks.", "reason": "scope extended to tank B"}))]
pub struct UpdateCapa {
    pub version: Option<i32>,
    #[schema(min_length = 1, max_length = 200)]
    pub title: Option<String>,
    #[schema(min_length = 1, max_length = 10000)]
    pub description: Option<String>,
    /// Reason for change: required on every edit of a GMP record.
    #[schema(min_length = 1, max_length = 500)]
    pub reason: String,
}

impl Validate for UpdateCapa {
    fn validate(&self, c: &mut Checks) {
        c.optional_text("title", self.title.as_deref(), 1, 200);
        c.optional_text("description", self.description.as_deref(), 1, 10_000);
        c.text("reason", &self.reason, 1, 500);
    }
}

/// Edit a CAPA's title or description (reason for change required).
#[utoipa::path(
    tag = "quality",
    params(
        ("id" = i64, Path, description = "CAPA id"),
        ("If-Match" = Option<String>, Header, pattern = r#"^(W/)?"?[0-9]{1,9}"?$"#, description = "Version being updated (alternative to `version` in the body)")
    ),
    request_body = UpdateCapa,
    responses(
        (status = 200, description = "The updated CAPA", body = CapaView),
        (status = 403, description = "Only quality, program managers and admins change CAPAs", body = crate::error::Problem),
        (status = 404, description = "No such CAPA visible to the caller", body = crate::error::Problem),
        (status = 409, description = "Stale version, or closed or cancelled", body = crate::error::Problem)
    )
)]
#[patch("/capas/{id}")]
pub async fn update_capa(
    req: HttpRequest,
    state: web::Data<AppState>,
    ctx: AuthContext,
    id: web::Path<i64>,
    body: ApiJson<UpdateCapa>,
) -> ApiResult<HttpResponse> {
    let b = body.into_inner();
    update_versioned::<capa::Entity, _>(
        &state,
        &ctx,
        &req,
        id.into_inner(),
        b.version,
        "capa",
        async |_, current| {
            ctx.require(
                ctx.user.role.handles_quality_records(),
                "only quality, program managers and admins change CAPAs",
            )?;
            if matches!(current.status, CapaStatus::Closed | CapaStatus::Cancelled) {
                return Err(ApiError::conflict(
                    "capa_closed",
                    "the CAPA is closed or cancelled",
                ));
            }
            Ok(())
        },
        async |_, _, c| {
            if let Some(v) = b.title {
                c.title = v.trim().to_string();
            }
            if let Some(v) = b.description {
                c.description = v;
            }
            Ok(Patched::update(Some(b.reason)))
        },
        async |txn, c| render(txn, c).await,
    )
    .await
}
