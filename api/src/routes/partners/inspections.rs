//! Regulatory inspections of a CMO's sites, and CAPA raised from their findings.

use actix_web::{HttpResponse, get, post, web};
use chrono::NaiveDate;
use entity::cmo::{self, Agency, InspectionOutcome, inspection, site};
use sea_orm::{ActiveValue::NotSet, ActiveValue::Set, ColumnTrait, EntityTrait, QueryFilter};
use serde::Deserialize;
use utoipa::ToSchema;

use super::require_fact_keeper;
use crate::auth::{AuthContext, find_scoped};
use crate::error::{ApiError, ApiResult};
use crate::extract::{ApiJson, Checks, Validate};
use crate::pagination::{Keyset, Page, Paging, fetch_page};
use crate::routes::wire_name;
use crate::state::AppState;
use crate::views::partners::InspectionView;
use crate::write::insert_audited;
use crate::write_txn::WriteTxn;
use actix_web::http::StatusCode;

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"site_id": 3, "agency": "fda", "inspected_on": "2025-06-12", "outcome": "vai",
    "critical_findings": 0, "notes": "2 observations on cleaning records"}))]
pub struct RecordInspection {
    pub site_id: i64,
    pub agency: Agency,
    pub inspected_on: NaiveDate,
    pub outcome: InspectionOutcome,
    /// 0 to 1000.
    #[serde(default)]
    #[schema(minimum = 0, maximum = 1000)]
    pub critical_findings: i32,
    #[schema(min_length = 1, max_length = 5000)]
    pub notes: Option<String>,
}

impl Validate for RecordInspection {
    fn validate(&self, c: &mut Checks) {
        c.date("inspected_on", self.inspected_on);
        if !(0..=1000).contains(&self.critical_findings) {
            c.fail(
                "critical_findings",
                "out_of_range",
                "a whole number from 0 to 1000, e.g. 2",
            );
        }
        c.optional_text("notes", self.notes.as_deref(), 1, 5_000);
    }
}

/// Record a regulatory inspection of one of the CMO's sites: the CMO's own admins and
/// quality (the registering sponsor until the CMO's first person has joined). Every
/// sponsor connected to the CMO reads it.
#[utoipa::path(
    tag = "partners",
    params(("id" = i64, Path, description = "The CMO's organization id")),
    request_body = RecordInspection,
    responses(
        (status = 201, description = "Recorded", body = InspectionView),
        (status = 403, description = "Not the CMO's own admins or quality (nor the registering sponsor's quality, program managers or admins before the CMO's first person joined)", body = crate::error::Problem),
        (status = 404, description = "No such CMO visible to the caller", body = crate::error::Problem)
    )
)]
#[post("/cmos/{id}/inspections")]
pub async fn record_inspection(
    state: web::Data<AppState>,
    ctx: AuthContext,
    id: web::Path<i64>,
    body: ApiJson<RecordInspection>,
) -> ApiResult<HttpResponse> {
    let b = body.into_inner();
    let txn = WriteTxn::begin(&state, &ctx).await?;
    let p = find_scoped::<cmo::Entity, _>(&txn, &ctx, id.into_inner()).await?;
    require_fact_keeper(&txn, &ctx, &p, true, "a CMO's inspections are recorded").await?;
    let found = site::Entity::find_by_id(b.site_id)
        .filter(site::Column::CmoOrgId.eq(p.org_id))
        .one(&txn)
        .await?;
    if found.is_none() {
        return Err(ApiError::invalid(
            "site_id",
            "unknown_site",
            "not a site of this CMO",
        ));
    }
    let now = state.clock.now();
    let (_, view) = insert_audited(
        &txn,
        &ctx.actor(now),
        "inspection",
        inspection::ActiveModel {
            id: NotSet,
            cmo_org_id: Set(p.org_id),
            site_id: Set(b.site_id),
            agency: Set(b.agency),
            inspected_on: Set(b.inspected_on),
            outcome: Set(b.outcome),
            critical_findings: Set(b.critical_findings),
            notes: Set(b.notes.map(|n| n.trim().to_string())),
            recorded_by_user_id: Set(ctx.user.id),
            created_at: Set(now),
        },
        async |i| Ok(InspectionView::from(i)),
    )
    .await?;
    txn.respond(StatusCode::CREATED, &view).await
}

/// A CMO's inspections, newest first.
#[utoipa::path(
    tag = "partners",
    params(("id" = i64, Path, description = "The CMO's organization id"), Paging),
    responses(
        (status = 200, description = "One page of inspections, newest first", body = Page<InspectionView>),
        (status = 404, description = "No such CMO visible to the caller", body = crate::error::Problem),
        (status = 422, description = "Invalid limit or offset", body = crate::error::Problem)
    )
)]
#[get("/cmos/{id}/inspections")]
pub async fn list_inspections(
    state: web::Data<AppState>,
    ctx: AuthContext,
    id: web::Path<i64>,
    paging: web::Query<Paging>,
) -> ApiResult<web::Json<Page<InspectionView>>> {
    let p = find_scoped::<cmo::Entity, _>(&state.reads, &ctx, id.into_inner()).await?;
    let select = inspection::Entity::find().filter(inspection::Column::CmoOrgId.eq(p.org_id));
    let page = fetch_page(
        &state.reads,
        select,
        Keyset::desc([inspection::Column::InspectedOn, inspection::Column::Id]),
        &paging,
    )
    .await?;
    let list = &page.items;
    let items = list.iter().map(InspectionView::from).collect();
    Ok(web::Json(page.with_items(items)))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"program_id": 7, "title": "Aseptic process simulation failures (FDA 483 item 1)",
    "description": "Repeat APS with revised interventions; retrain operators"}))]
pub struct CapaFromInspection {
    /// The program (with this CMO) the CAPA belongs to.
    pub program_id: i64,
    #[schema(min_length = 1, max_length = 200)]
    pub title: String,
    #[schema(min_length = 1, max_length = 10000)]
    pub description: String,
}

impl Validate for CapaFromInspection {
    fn validate(&self, c: &mut Checks) {
        c.text("title", &self.title, 1, 200);
        c.text("description", &self.description, 1, 10_000);
    }
}

/// Open a CAPA for an adverse inspection (a critical finding, OAI or critical outcome)
/// on a program with this CMO; the CAPA names the inspection as its finding.
#[utoipa::path(
    tag = "partners",
    params(("id" = i64, Path, description = "Inspection id")),
    request_body = CapaFromInspection,
    responses(
        (status = 201, description = "The CAPA", body = crate::views::quality::CapaView),
        (status = 403, description = "Not quality, a program manager or an admin", body = crate::error::Problem),
        (status = 404, description = "No such inspection visible to the caller", body = crate::error::Problem),
        (status = 409, description = "The inspection had no critical finding", body = crate::error::Problem),
        (status = 422, description = "The program is not one with this CMO", body = crate::error::Problem)
    )
)]
#[post("/inspections/{id}/capa")]
pub async fn capa_from_inspection(
    state: web::Data<AppState>,
    ctx: AuthContext,
    id: web::Path<i64>,
    body: ApiJson<CapaFromInspection>,
) -> ApiResult<HttpResponse> {
    use entity::capa::CapaSource;
    let b = body.into_inner();
    let txn = WriteTxn::begin(&state, &ctx).await?;
    let i = inspection::Entity::find_by_id(id.into_inner())
        .one(&txn)
        .await?
        .ok_or(ApiError::NotFound)?;
    // Visible only through its CMO's profile.
    let p = find_scoped::<cmo::Entity, _>(&txn, &ctx, i.cmo_org_id).await?;
    if !ctx.user.role.handles_quality_records() {
        return Err(ApiError::Forbidden(
            "CAPAs from inspections are opened by quality, program managers and admins".to_string(),
        ));
    }
    if !cmo::is_adverse(i.outcome, i.critical_findings) {
        return Err(ApiError::conflict(
            "no_critical_finding",
            "only an inspection with a critical finding (or an OAI/critical outcome) opens a CAPA here",
        ));
    }
    let prog = find_scoped::<entity::program::Entity, _>(&txn, &ctx, b.program_id)
        .await
        .ok()
        .filter(|prog| prog.cmo_org_id == p.org_id)
        .ok_or_else(|| {
            ApiError::invalid(
                "program_id",
                "unknown_program",
                "not a program with this CMO",
            )
        })?;
    let now = state.clock.now();
    let rendered = crate::records::insert_capa(
        &txn,
        &ctx,
        now,
        crate::records::NewCapa {
            program_id: prog.id,
            title: b.title,
            description: b.description,
            source: CapaSource::InspectionFinding,
            finding_reference: Some(format!(
                "inspection #{} ({} {}, {} critical finding(s))",
                i.id,
                wire_name(&i.agency).to_uppercase(),
                i.inspected_on,
                i.critical_findings
            )),
            deviation_ids: Default::default(),
            reason: Some(format!("critical finding of inspection #{}", i.id)),
        },
    )
    .await?;
    txn.respond(StatusCode::CREATED, &rendered).await
}
