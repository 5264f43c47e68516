//! Programs: one product's work at one CMO, owned by the sponsor.

use actix_web::{HttpRequest, HttpResponse, get, patch, post, web};
use entity::OrgKind;
use entity::access::{ProgramSides, may_manage_program};
use entity::program::{self, Modality, ProductionStatus, ProgramStage};
use sea_orm::ActiveModelTrait;
use sea_orm::{ActiveValue::NotSet, ActiveValue::Set, ColumnTrait, QueryFilter};
use serde::Deserialize;
use utoipa::{IntoParams, ToSchema};

use crate::auth::{AuthContext, find_scoped, scoped};
use crate::error::{ApiError, ApiResult};
use crate::pagination::{Keyset, ListQuery, Paging};
use crate::routes::{ApiJson, Checks, Page, Validate, fetch_page};
use crate::state::AppState;
use crate::views::plan::ProgramView;
use crate::write::{Patched, insert_audited, update_versioned};
use crate::write_txn::WriteTxn;
use actix_web::http::StatusCode;

fn check_currency(c: &mut Checks, field: &str, currency: Option<&str>, budget: Option<i64>) {
    if let Some(cur) = currency
        && (cur.len() != 3 || !cur.bytes().all(|b| b.is_ascii_uppercase()))
    {
        c.fail(
            field,
            "invalid_format",
            "an ISO 4217 code in capitals, e.g. USD or EUR",
        );
    }
    if budget.is_some_and(|b| b < 0) {
        c.fail(
            "budget_minor",
            "out_of_range",
            "0 or more, in the currency's minor units, e.g. 420000000 for USD 4,200,000.00",
        );
    }
    if budget.is_some() && currency.is_none() {
        c.fail(field, "required", "a budget needs its currency");
    }
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({
    "name": "ACM-101 clinical supply", "product_name": "ACM-101", "cmo_org_id": 2,
    "modality": "biologic", "stage": "clinical",
    "scope": "Tech transfer and GMP clinical manufacturing of drug substance",
    "budget_minor": 420000000, "currency": "USD", "time_zone": "Europe/Zurich"
}))]
pub struct CreateProgram {
    #[schema(min_length = 1, max_length = 200)]
    pub name: String,
    #[schema(min_length = 1, max_length = 200)]
    pub product_name: String,
    /// A CMO organization registered by the caller's sponsor organization.
    pub cmo_org_id: i64,
    pub modality: Modality,
    pub stage: ProgramStage,
    #[schema(max_length = 5000)]
    pub scope: Option<String>,
    #[schema(minimum = 0)]
    pub budget_minor: Option<i64>,
    #[schema(pattern = "^[A-Z]{3}$", example = "USD")]
    pub currency: Option<String>,
    /// IANA time zone, e.g. `Europe/Zurich`.
    pub time_zone: String,
}

impl Validate for CreateProgram {
    fn validate(&self, c: &mut Checks) {
        c.text("name", &self.name, 1, 200);
        c.text("product_name", &self.product_name, 1, 200);
        c.optional_text("scope", self.scope.as_deref(), 1, 5000);
        c.time_zone("time_zone", &self.time_zone);
        check_currency(c, "currency", self.currency.as_deref(), self.budget_minor);
    }
}

/// Start a program with a CMO (sponsor admins and program managers).
#[utoipa::path(
    tag = "programs",
    request_body = CreateProgram,
    responses(
        (status = 201, description = "Program created", body = ProgramView),
        (status = 403, description = "Only the sponsor's admins and program managers create programs", body = crate::error::Problem),
        (status = 409, description = "The CMO is not qualified or approved (`cmo_not_qualified`; the detail says why)", body = crate::error::Problem),
        (status = 422, description = "Invalid fields, or `cmo_org_id` is not a CMO you are connected to", body = crate::error::Problem)
    )
)]
#[post("/programs")]
pub async fn create_program(
    state: web::Data<AppState>,
    ctx: AuthContext,
    body: ApiJson<CreateProgram>,
) -> ApiResult<HttpResponse> {
    let body = body.into_inner();
    let as_sponsor = ProgramSides {
        sponsor_org_id: ctx.org_id(),
        cmo_org_id: body.cmo_org_id,
    };
    if ctx.org.kind != OrgKind::Sponsor || !may_manage_program(ctx.caller(), as_sponsor) {
        return Err(ApiError::Forbidden(
            "programs are created by the sponsor's admins and program managers".to_string(),
        ));
    }
    let rel = entity::relationship::between(&state.db, ctx.org_id(), body.cmo_org_id)
        .await?
        .filter(|r| r.is_connected());
    let Some(rel) = rel else {
        return Err(ApiError::invalid(
            "cmo_org_id",
            "unknown_cmo",
            "not a CMO your organization is connected to",
        ));
    };
    // SPEC §7: only a CMO this sponsor qualified or approved may be named on a program.
    let status = rel.qualification_status;
    if let Err(why) = entity::cmo::may_be_named(status) {
        return Err(ApiError::Conflict {
            code: "cmo_not_qualified",
            detail: why,
            current_state: Some(crate::routes::wire_name(&status)),
            allowed_events: None,
            current_version: None,
        });
    }
    let now = state.clock.now();
    let txn = WriteTxn::begin(&state, &ctx).await?;
    let (created, _) = insert_audited(
        &txn,
        &ctx.actor(now),
        "program",
        program::ActiveModel {
            id: NotSet,
            sponsor_org_id: Set(ctx.org_id()),
            cmo_org_id: Set(body.cmo_org_id),
            name: Set(body.name.trim().to_string()),
            product_name: Set(body.product_name.trim().to_string()),
            modality: Set(body.modality),
            stage: Set(body.stage),
            scope: Set(body.scope),
            budget_minor: Set(body.budget_minor),
            currency: Set(body.currency),
            time_zone: Set(body.time_zone),
            production_status: Set(ProductionStatus::Running),
            created_at: Set(now),
            updated_at: Set(now),
            version: Set(1),
        },
        async |created| Ok(ProgramView::from(created)),
    )
    .await?;
    entity::digest::schedule::create(&txn, created.id).await?;
    // Every program starts with the SPEC's default escalation policy (editable).
    let policy = entity::escalation_policy::default_policy();
    entity::escalation_policy::ActiveModel {
        id: sea_orm::ActiveValue::NotSet,
        program_id: Set(created.id),
        tiers: Set(serde_json::to_string(&policy.tiers).map_err(ApiError::internal)?),
        repeat_last: Set(policy.repeat_last),
        ack_timeout_minutes: Set(policy.ack_timeout_minutes),
        created_at: Set(now),
        updated_at: Set(now),
        version: Set(1),
    }
    .insert(&txn)
    .await?;
    txn.respond(StatusCode::CREATED, &ProgramView::from(&created))
        .await
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ProgramFilter {
    pub stage: Option<ProgramStage>,
    pub modality: Option<Modality>,
    pub production_status: Option<ProductionStatus>,
    pub cmo_org_id: Option<i64>,
}

/// Programs the caller's organization sponsors or manufactures, ordered by id.
#[utoipa::path(
    tag = "programs",
    params(ProgramFilter, Paging),
    responses((status = 200, description = "One page of programs", body = Page<ProgramView>))
)]
#[get("/programs")]
pub async fn list_programs(
    state: web::Data<AppState>,
    ctx: AuthContext,
    query: ListQuery<ProgramFilter>,
) -> ApiResult<web::Json<Page<ProgramView>>> {
    let f = query.filter;
    let mut select = scoped::<program::Entity>(&ctx);
    if let Some(v) = f.stage {
        select = select.filter(program::Column::Stage.eq(v));
    }
    if let Some(v) = f.modality {
        select = select.filter(program::Column::Modality.eq(v));
    }
    if let Some(v) = f.production_status {
        select = select.filter(program::Column::ProductionStatus.eq(v));
    }
    if let Some(v) = f.cmo_org_id {
        select = select.filter(program::Column::CmoOrgId.eq(v));
    }
    let page = fetch_page(
        &state.reads,
        select,
        Keyset::asc([program::Column::Id]),
        &query.paging,
    )
    .await?;
    let items = &page.items;
    let items = items.iter().map(ProgramView::from).collect();
    Ok(web::Json(page.with_items(items)))
}

/// One program.
#[utoipa::path(
    tag = "programs",
    params(("id" = i64, Path, description = "Program id")),
    responses(
        (status = 200, description = "The program", body = ProgramView),
        (status = 404, description = "No such program visible to the caller", body = crate::error::Problem)
    )
)]
#[get("/programs/{id}")]
pub async fn get_program(
    state: web::Data<AppState>,
    ctx: AuthContext,
    id: web::Path<i64>,
) -> ApiResult<HttpResponse> {
    let p = find_scoped::<program::Entity, _>(&state.reads, &ctx, id.into_inner()).await?;
    Ok(HttpResponse::Ok()
        .insert_header((actix_web::http::header::ETAG, format!("\"{}\"", p.version)))
        .json(ProgramView::from(&p)))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"version": 1, "stage": "commercial", "reason": "PPQ complete; moving to commercial supply"}))]
pub struct UpdateProgram {
    /// The version being updated (or send `If-Match`).
    pub version: Option<i32>,
    #[schema(min_length = 1, max_length = 200)]
    pub name: Option<String>,
    #[schema(min_length = 1, max_length = 200)]
    pub product_name: Option<String>,
    pub modality: Option<Modality>,
    pub stage: Option<ProgramStage>,
    #[schema(max_length = 5000)]
    pub scope: Option<String>,
    #[schema(minimum = 0)]
    pub budget_minor: Option<i64>,
    #[schema(pattern = "^[A-Z]{3}$", example = "USD")]
    pub currency: Option<String>,
    pub time_zone: Option<String>,
    /// Why; kept in the audit trail. Required.
    #[schema(min_length = 1, max_length = 500)]
    pub reason: String,
}

impl Validate for UpdateProgram {
    fn validate(&self, c: &mut Checks) {
        c.optional_text("name", self.name.as_deref(), 1, 200);
        c.optional_text("product_name", self.product_name.as_deref(), 1, 200);
        c.optional_text("scope", self.scope.as_deref(), 1, 5000);
        if let Some(tz) = &self.time_zone {
            c.time_zone("time_zone", tz);
        }
        if let Some(cur) = self.currency.as_deref()
            && (cur.len() != 3 || !cur.bytes().all(|b| b.is_ascii_uppercase()))
        {
            c.fail(
                "currency",
                "invalid_format",
                "an ISO 4217 code in capitals, e.g. USD or EUR",
            );
        }
        if self.budget_minor.is_some_and(|b| b < 0) {
            c.fail(
                "budget_minor",
                "out_of_range",
                "0 or more, in the currency's minor units, e.g. 420000000 for USD 4,200,000.00",
            );
        }
        c.text("reason", &self.reason, 1, 500);
    }
}

/// Update a program (sponsor admins and program managers; optimistic concurrency).
/// Production status is not editable here: only the quality rules change it.
#[utoipa::path(
    tag = "programs",
    params(
        ("id" = i64, Path, description = "Program id"),
        ("If-Match" = Option<String>, Header, pattern = r#"^(W/)?"?[0-9]{1,9}"?$"#, description = "Version being updated (alternative to `version` in the body)")
    ),
    request_body = UpdateProgram,
    responses(
        (status = 200, description = "The updated program", body = ProgramView),
        (status = 403, description = "Not a sponsor admin or program manager", body = crate::error::Problem),
        (status = 404, description = "No such program visible to the caller", body = crate::error::Problem),
        (status = 409, description = "Stale version", body = crate::error::Problem)
    )
)]
#[patch("/programs/{id}")]
pub async fn update_program(
    req: HttpRequest,
    state: web::Data<AppState>,
    ctx: AuthContext,
    id: web::Path<i64>,
    body: ApiJson<UpdateProgram>,
) -> ApiResult<HttpResponse> {
    let b = body.into_inner();
    update_versioned::<program::Entity, _>(
        &state,
        &ctx,
        &req,
        id.into_inner(),
        b.version,
        "program",
        async |_, current| {
            ctx.require(
                may_manage_program(ctx.caller(), current.sides()),
                "only the sponsor's admins and program managers edit programs",
            )
        },
        async |txn, current, p| {
            if b.budget_minor.or(current.budget_minor).is_some()
                && b.currency.is_none()
                && current.currency.is_none()
            {
                return Err(ApiError::invalid(
                    "currency",
                    "required",
                    "a budget needs its currency",
                ));
            }
            if let Some(v) = b.name {
                p.name = v.trim().to_string();
            }
            if let Some(v) = b.product_name {
                p.product_name = v.trim().to_string();
            }
            if let Some(v) = b.modality {
                p.modality = v;
            }
            if let Some(v) = b.stage {
                p.stage = v;
            }
            if let Some(v) = b.scope {
                p.scope = Some(v);
            }
            if let Some(v) = b.budget_minor {
                p.budget_minor = Some(v);
            }
            if let Some(v) = b.currency {
                p.currency = Some(v);
            }
            if let Some(v) = b.time_zone {
                if v != current.time_zone {
                    // Its digest moves to the new zone's Monday morning.
                    entity::digest::schedule::recompute(txn, current.id).await?;
                }
                p.time_zone = v;
            }
            Ok(Patched::update(Some(b.reason)))
        },
        async |_, p| Ok(ProgramView::from(p)),
    )
    .await
}
