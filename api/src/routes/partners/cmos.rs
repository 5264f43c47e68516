//! The CMO registry (SPEC §7): profiles with capabilities and contacts, sites,
//! regulatory inspections, and the qualification state machine (approval and
//! disqualification e-signed by quality). A sponsor sees the CMOs it registered; a CMO
//! sees only its own profile.

use std::collections::BTreeMap;

use actix_web::{HttpRequest, HttpResponse, get, patch, post, web};
use chrono::NaiveDate;
use entity::audit_trail::{self, Entry};
use entity::cmo::{
    self, Agency, InspectionOutcome, QualificationEvent, QualificationStatus, Region, inspection,
    site,
};
use entity::{Role, organization};
use sea_orm::{
    ActiveValue::NotSet, ActiveValue::Set, ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter,
    QueryOrder,
};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::auth::{AuthContext, find_scoped, scoped};
use crate::error::{ApiError, ApiResult};
use crate::extract::{ApiJson, Checks, Validate};
use crate::routes::{Page, snapshot, wire_name};
use crate::state::AppState;
use crate::transition::{ApiStep, run_step};
use crate::write::{Patched, insert_audited, update_versioned};
use entity::workflow::qualification as qualification_flow;

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"name": "Petra Meier", "role": "Project manager", "email": "pm@lonza.test", "phone": "+41 27 555 01 01"}))]
pub struct Contact {
    pub name: String,
    pub role: String,
    pub email: Option<String>,
    pub phone: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({"id": 3, "name": "Visp Ibex", "country": "CH", "region": "other_europe",
    "latest_inspection": {"id": 8, "site_id": 3, "agency": "fda", "inspected_on": "2025-06-12", "outcome": "nai",
        "critical_findings": 0, "notes": null, "adverse": false}}))]
pub struct SiteView {
    pub id: i64,
    pub name: String,
    pub country: String,
    pub region: Region,
    pub latest_inspection: Option<InspectionView>,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
#[schema(example = json!({"id": 8, "site_id": 3, "agency": "fda", "inspected_on": "2025-06-12", "outcome": "vai",
    "critical_findings": 0, "notes": "2 observations on cleaning records", "adverse": false}))]
pub struct InspectionView {
    pub id: i64,
    pub site_id: i64,
    pub agency: Agency,
    pub inspected_on: NaiveDate,
    pub outcome: InspectionOutcome,
    pub critical_findings: i32,
    pub notes: Option<String>,
    /// OAI, a critical outcome or any critical finding.
    pub adverse: bool,
}

impl From<&inspection::Model> for InspectionView {
    fn from(i: &inspection::Model) -> Self {
        InspectionView {
            id: i.id,
            site_id: i.site_id,
            agency: i.agency,
            inspected_on: i.inspected_on,
            outcome: i.outcome,
            critical_findings: i.critical_findings,
            notes: i.notes.clone(),
            adverse: cmo::is_adverse(i.outcome, i.critical_findings),
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({"org_id": 2, "name": "Lonza Visp", "dosage_forms": ["sterile_injectable", "lyophilized"],
    "modalities": ["biologic", "mab"], "sterile_fill_finish": true, "high_potency": false, "cold_chain": true,
    "max_batch_liters": 20000, "contacts": [{"name": "Petra Meier", "role": "Project manager", "email": "pm@lonza.test", "phone": null}],
    "qualification_status": "qualified", "qualification_reason": null, "allowed_events": ["approve", "probation", "disqualify"],
    "sites": [{"id": 3, "name": "Visp Ibex", "country": "CH", "region": "other_europe", "latest_inspection": null}],
    "latest_inspection": null, "version": 3}))]
pub struct CmoView {
    pub org_id: i64,
    pub name: String,
    pub dosage_forms: Vec<String>,
    pub modalities: Vec<String>,
    pub sterile_fill_finish: bool,
    pub high_potency: bool,
    pub cold_chain: bool,
    pub max_batch_liters: Option<i64>,
    pub contacts: Vec<Contact>,
    pub qualification_status: QualificationStatus,
    pub qualification_reason: Option<String>,
    /// Qualification events possible from here.
    pub allowed_events: Vec<QualificationEvent>,
    pub sites: Vec<SiteView>,
    /// The most recent inspection over all sites.
    pub latest_inspection: Option<InspectionView>,
    pub version: i32,
}

fn tags(json: &str) -> Vec<String> {
    serde_json::from_str(json).unwrap_or_default()
}

async fn render<C: ConnectionTrait>(conn: &C, profiles: &[cmo::Model]) -> ApiResult<Vec<CmoView>> {
    let ids: Vec<i64> = profiles.iter().map(|p| p.org_id).collect();
    let names: BTreeMap<i64, String> = organization::Entity::find()
        .filter(organization::Column::Id.is_in(ids.clone()))
        .all(conn)
        .await?
        .into_iter()
        .map(|o| (o.id, o.name))
        .collect();
    let sites = site::Entity::find()
        .filter(site::Column::CmoOrgId.is_in(ids.clone()))
        .order_by_asc(site::Column::Id)
        .all(conn)
        .await?;
    let inspections = inspection::Entity::find()
        .filter(inspection::Column::CmoOrgId.is_in(ids))
        .order_by_desc(inspection::Column::InspectedOn)
        .order_by_desc(inspection::Column::Id)
        .all(conn)
        .await?;
    Ok(profiles
        .iter()
        .map(|p| CmoView {
            org_id: p.org_id,
            name: names.get(&p.org_id).cloned().unwrap_or_default(),
            dosage_forms: tags(&p.dosage_forms),
            modalities: tags(&p.modalities),
            sterile_fill_finish: p.sterile_fill_finish,
            high_potency: p.high_potency,
            cold_chain: p.cold_chain,
            max_batch_liters: p.max_batch_liters,
            contacts: serde_json::from_str(&p.contacts).unwrap_or_default(),
            qualification_status: p.qualification_status,
            qualification_reason: p.qualification_reason.clone(),
            allowed_events: cmo::allowed_events(p.qualification_status),
            sites: sites
                .iter()
                .filter(|s| s.cmo_org_id == p.org_id)
                .map(|s| SiteView {
                    id: s.id,
                    name: s.name.clone(),
                    country: s.country.clone(),
                    region: s.region,
                    // Newest first: the first one of the site is its latest.
                    latest_inspection: inspections
                        .iter()
                        .find(|i| i.site_id == s.id)
                        .map(InspectionView::from),
                })
                .collect(),
            latest_inspection: inspections
                .iter()
                .find(|i| i.cmo_org_id == p.org_id)
                .map(InspectionView::from),
            version: p.version,
        })
        .collect())
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct CmoFilters {
    /// Has this dosage form tag, e.g. `sterile_injectable`.
    pub dosage_form: Option<String>,
    /// Has this modality tag, e.g. `biologic`.
    pub modality: Option<String>,
    /// Has a site in this region.
    pub region: Option<Region>,
    pub sterile_fill_finish: Option<bool>,
    pub high_potency: Option<bool>,
    pub cold_chain: Option<bool>,
    /// At least this batch size.
    pub min_batch_liters: Option<i64>,
    pub status: Option<QualificationStatus>,
    pub limit: Option<u64>,
    pub offset: Option<u64>,
}

/// Find candidate CMOs by capability and region, e.g. sterile injectables, biologics,
/// EU: `?dosage_form=sterile_injectable&modality=biologic&region=eu`.
#[utoipa::path(
    tag = "partners",
    params(CmoFilters),
    responses((status = 200, description = "One page of matching CMOs", body = Page<CmoView>))
)]
#[get("/cmos")]
pub async fn list_cmos(
    state: web::Data<AppState>,
    ctx: AuthContext,
    query: web::Query<CmoFilters>,
) -> ApiResult<web::Json<Page<CmoView>>> {
    let q = query.into_inner();
    let limit = q.limit.unwrap_or(crate::routes::DEFAULT_PAGE_SIZE);
    let offset = q.offset.unwrap_or(0);
    let mut c = Checks::default();
    if !(1..=crate::routes::MAX_PAGE_SIZE).contains(&limit) {
        c.fail("limit", "out_of_range", "1 to 200");
    }
    if offset > crate::routes::MAX_OFFSET {
        c.fail("offset", "out_of_range", "at most 1000000");
    }
    c.finish()?;
    let mut select = scoped::<cmo::Entity>(&ctx);
    if let Some(s) = q.status {
        select = select.filter(cmo::Column::QualificationStatus.eq(s));
    }
    for (flag, column) in [
        (q.sterile_fill_finish, cmo::Column::SterileFillFinish),
        (q.high_potency, cmo::Column::HighPotency),
        (q.cold_chain, cmo::Column::ColdChain),
    ] {
        if let Some(v) = flag {
            select = select.filter(column.eq(v));
        }
    }
    if let Some(min) = q.min_batch_liters {
        select = select.filter(cmo::Column::MaxBatchLiters.gte(min));
    }
    let profiles = select
        .order_by_asc(cmo::Column::OrgId)
        .all(&state.db)
        .await?;
    // Tag and region filters on the (small) registry in memory.
    let wanted = |v: &Option<String>| v.as_ref().map(|t| t.trim().to_lowercase());
    let (form, modality) = (wanted(&q.dosage_form), wanted(&q.modality));
    let views: Vec<CmoView> = render(&state.db, &profiles)
        .await?
        .into_iter()
        .filter(|v| form.as_ref().is_none_or(|f| v.dosage_forms.contains(f)))
        .filter(|v| modality.as_ref().is_none_or(|m| v.modalities.contains(m)))
        .filter(|v| {
            q.region
                .is_none_or(|r| v.sites.iter().any(|s| s.region == r))
        })
        .collect();
    let total = views.len() as u64;
    Ok(web::Json(Page {
        items: views
            .into_iter()
            .skip(offset as usize)
            .take(limit as usize)
            .collect(),
        total,
        limit,
        offset,
    }))
}

/// One CMO: capabilities, contacts, qualification, sites with their latest inspection.
#[utoipa::path(
    tag = "partners",
    params(("id" = i64, Path, description = "The CMO's organization id")),
    responses(
        (status = 200, description = "The profile", body = CmoView),
        (status = 404, description = "No such CMO visible to the caller", body = crate::error::Problem, content_type = "application/problem+json")
    )
)]
#[get("/cmos/{id}")]
pub async fn get_cmo(
    state: web::Data<AppState>,
    ctx: AuthContext,
    id: web::Path<i64>,
) -> ApiResult<web::Json<CmoView>> {
    let p = find_scoped::<cmo::Entity, _>(&state.db, &ctx, id.into_inner()).await?;
    let mut views = render(&state.db, std::slice::from_ref(&p)).await?;
    views.pop().map(web::Json).ok_or(ApiError::NotFound)
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"version": 1, "dosage_forms": ["sterile_injectable", "lyophilized"], "modalities": ["biologic"],
    "sterile_fill_finish": true, "cold_chain": true, "max_batch_liters": 20000,
    "contacts": [{"name": "Petra Meier", "role": "Project manager", "email": "pm@lonza.test"}]}))]
pub struct UpdateCmo {
    /// The version you read (or `If-Match`).
    pub version: Option<i32>,
    pub dosage_forms: Option<Vec<String>>,
    pub modalities: Option<Vec<String>>,
    pub sterile_fill_finish: Option<bool>,
    pub high_potency: Option<bool>,
    pub cold_chain: Option<bool>,
    /// 1 to 10,000,000 liters.
    pub max_batch_liters: Option<i64>,
    pub contacts: Option<Vec<Contact>>,
}

impl Validate for UpdateCmo {
    fn validate(&self, c: &mut Checks) {
        for (field, v) in [
            ("dosage_forms", &self.dosage_forms),
            ("modalities", &self.modalities),
        ] {
            if let Some(tags) = v
                && let Err(why) = cmo::normalize_tags(tags)
            {
                c.fail(field, "invalid_tag", why);
            }
        }
        if let Some(l) = self.max_batch_liters
            && !(1..=10_000_000).contains(&l)
        {
            c.fail("max_batch_liters", "out_of_range", "1 to 10,000,000");
        }
        if let Some(contacts) = &self.contacts {
            if contacts.len() > 20 {
                c.fail("contacts", "out_of_range", "at most 20 contacts");
            }
            for (i, k) in contacts.iter().enumerate() {
                c.text(&format!("contacts[{i}].name"), &k.name, 1, 200);
                c.text(&format!("contacts[{i}].role"), &k.role, 1, 200);
                if let Some(e) = &k.email {
                    c.email(&format!("contacts[{i}].email"), e);
                }
                c.optional_text(&format!("contacts[{i}].phone"), k.phone.as_deref(), 5, 32);
            }
        }
    }
}

/// The sponsor's admins, program managers and quality manage the registry; a CMO's own
/// admin may keep its capabilities and contacts current.
fn may_edit_profile(ctx: &AuthContext, p: &cmo::Model) -> bool {
    (ctx.org_id() == p.sponsor_org_id && ctx.user.role.handles_quality_records())
        || (ctx.org_id() == p.org_id && ctx.user.role == Role::Admin)
}

/// Registry decisions belong to the CMO's sponsor: its quality, program managers and
/// admins. `what` starts the refusal, e.g. "inspections are recorded".
fn require_sponsor_side(ctx: &AuthContext, p: &cmo::Model, what: &str) -> ApiResult<()> {
    if ctx.org_id() != p.sponsor_org_id || !ctx.user.role.handles_quality_records() {
        return Err(ApiError::Forbidden(format!(
            "{what} by the sponsor's quality, program managers and admins"
        )));
    }
    Ok(())
}

/// Update capabilities and contacts.
#[utoipa::path(
    tag = "partners",
    params(("id" = i64, Path, description = "The CMO's organization id")),
    request_body = UpdateCmo,
    responses(
        (status = 200, description = "The updated profile", body = CmoView),
        (status = 403, description = "Not allowed to edit this profile", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such CMO visible to the caller", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 409, description = "Stale version", body = crate::error::Problem, content_type = "application/problem+json")
    )
)]
#[patch("/cmos/{id}")]
pub async fn update_cmo(
    req: HttpRequest,
    state: web::Data<AppState>,
    ctx: AuthContext,
    id: web::Path<i64>,
    body: ApiJson<UpdateCmo>,
) -> ApiResult<web::Json<CmoView>> {
    let b = body.into_inner();
    let view = update_versioned::<cmo::Entity, _>(
        &state,
        &ctx,
        &req,
        id.into_inner(),
        b.version,
        "cmo_profile",
        async |_, current| {
            ctx.require(
                may_edit_profile(&ctx, current),
                "the sponsor's admins, program managers and quality, or the CMO's own admins, edit a profile",
            )
        },
        |_, p| {
            let json = |v: &Vec<String>| serde_json::to_string(v).unwrap_or_else(|_| "[]".into());
            if let Some(t) = &b.dosage_forms {
                p.dosage_forms = json(&cmo::normalize_tags(t).unwrap_or_default());
            }
            if let Some(t) = &b.modalities {
                p.modalities = json(&cmo::normalize_tags(t).unwrap_or_default());
            }
            if let Some(v) = b.sterile_fill_finish {
                p.sterile_fill_finish = v;
            }
            if let Some(v) = b.high_potency {
                p.high_potency = v;
            }
            if let Some(v) = b.cold_chain {
                p.cold_chain = v;
            }
            if let Some(v) = b.max_batch_liters {
                p.max_batch_liters = Some(v);
            }
            if let Some(c) = &b.contacts {
                p.contacts = serde_json::to_string(c).unwrap_or_else(|_| "[]".into());
            }
            Ok(Patched::update(None))
        },
        async |txn, p| {
            render(txn, std::slice::from_ref(p))
                .await?
                .pop()
                .ok_or(ApiError::NotFound)
        },
    )
    .await?;
    Ok(web::Json(view))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"name": "Visp Ibex", "country": "CH", "region": "other_europe"}))]
pub struct CreateSite {
    pub name: String,
    /// ISO 3166-1 alpha-2 country code.
    pub country: String,
    pub region: Region,
}

impl Validate for CreateSite {
    fn validate(&self, c: &mut Checks) {
        c.text("name", &self.name, 1, 200);
        let cc = self.country.trim();
        if cc.len() != 2 || !cc.chars().all(|ch| ch.is_ascii_alphabetic()) {
            c.fail(
                "country",
                "invalid_format",
                "an ISO 3166-1 alpha-2 code, e.g. CH",
            );
        }
    }
}

/// Add a manufacturing site to a CMO.
#[utoipa::path(
    tag = "partners",
    params(("id" = i64, Path, description = "The CMO's organization id")),
    request_body = CreateSite,
    responses(
        (status = 201, description = "The site", body = SiteView),
        (status = 403, description = "Not allowed to edit this profile", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such CMO visible to the caller", body = crate::error::Problem, content_type = "application/problem+json")
    )
)]
#[post("/cmos/{id}/sites")]
pub async fn create_site(
    state: web::Data<AppState>,
    ctx: AuthContext,
    id: web::Path<i64>,
    body: ApiJson<CreateSite>,
) -> ApiResult<HttpResponse> {
    let b = body.into_inner();
    let txn = entity::db::begin_write(&state.db).await?;
    let p = find_scoped::<cmo::Entity, _>(&txn, &ctx, id.into_inner()).await?;
    if !may_edit_profile(&ctx, &p) {
        return Err(ApiError::Forbidden(
            "the sponsor's managers or the CMO's own admins add sites".to_string(),
        ));
    }
    let now = state.clock.now();
    let (_, view) = insert_audited(
        &txn,
        &ctx.actor(now),
        "cmo_site",
        site::ActiveModel {
            id: NotSet,
            cmo_org_id: Set(p.org_id),
            name: Set(b.name.trim().to_string()),
            country: Set(b.country.trim().to_uppercase()),
            region: Set(b.region),
            created_at: Set(now),
        },
        async |s| {
            Ok(SiteView {
                id: s.id,
                name: s.name.clone(),
                country: s.country.clone(),
                region: s.region,
                latest_inspection: None,
            })
        },
    )
    .await?;
    txn.commit().await?;
    Ok(HttpResponse::Created().json(view))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"event": "approve", "reason": "audit 2026-10 passed; quality agreement signed",
    "password": "correct horse battery staple", "version": 3}))]
pub struct QualificationTransition {
    pub event: QualificationEvent,
    /// Required for probation, reinstate, disqualify and re-evaluate.
    pub reason: Option<String>,
    /// Your signing password: approval and disqualification are e-signed by quality.
    pub password: Option<String>,
    /// The version you read.
    pub version: Option<i32>,
}

impl Validate for QualificationTransition {
    fn validate(&self, c: &mut Checks) {
        c.optional_text("reason", self.reason.as_deref(), 1, 2_000);
        c.optional_signing_password("password", self.password.as_deref());
    }
}

/// Move a CMO through qualification: `start_evaluation`, `qualify`, `approve` (signed),
/// `probation`, `reinstate`, `disqualify` (signed), `reevaluate`. Sponsor-side decisions.
#[utoipa::path(
    tag = "partners",
    params(
        ("id" = i64, Path, description = "The CMO's organization id"),
        ("If-Match" = Option<String>, Header, pattern = r#"^(W/)?"?[0-9]{1,9}"?$"#, description = "Version the caller saw (optional; alternative to `version` in the body)")
    ),
    request_body = QualificationTransition,
    responses(
        (status = 200, description = "The profile in its new state", body = CmoView),
        (status = 401, description = "Wrong signature password (`invalid_password`; audited)", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 403, description = "Not the sponsor's quality/program manager/admin, or not quality for a signed decision", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such CMO visible to the caller", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 409, description = "Illegal event (`current_state`, `allowed_events`), stale version, or no own signing password", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 429, description = "Too many failed password attempts; see Retry-After", body = crate::error::Problem, content_type = "application/problem+json")
    )
)]
#[post("/cmos/{id}/qualification")]
pub async fn transition_qualification(
    req: HttpRequest,
    state: web::Data<AppState>,
    ctx: AuthContext,
    id: web::Path<i64>,
    body: ApiJson<QualificationTransition>,
) -> ApiResult<web::Json<CmoView>> {
    let b = body.into_inner();
    let step = qualification_flow::Step {
        event: b.event,
        reason: b.reason,
    };
    let view = run_step(
        &state,
        &ctx,
        &req,
        id.into_inner(),
        step,
        b.password,
        b.version,
        |p| require_sponsor_side(&ctx, p, "qualification is decided"),
    )
    .await?;
    Ok(web::Json(view))
}

impl ApiStep for qualification_flow::Step {
    type View = CmoView;
    async fn view(
        conn: &impl ConnectionTrait,
        p: &cmo::Model,
        _now: chrono::DateTime<chrono::Utc>,
    ) -> ApiResult<CmoView> {
        render(conn, std::slice::from_ref(p))
            .await?
            .pop()
            .ok_or(ApiError::NotFound)
    }
}

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
    pub critical_findings: i32,
    pub notes: Option<String>,
}

impl Validate for RecordInspection {
    fn validate(&self, c: &mut Checks) {
        c.date("inspected_on", self.inspected_on);
        if !(0..=1000).contains(&self.critical_findings) {
            c.fail("critical_findings", "out_of_range", "0 to 1000");
        }
        c.optional_text("notes", self.notes.as_deref(), 1, 5_000);
    }
}

/// Record a regulatory inspection of one of the CMO's sites (sponsor quality, program
/// managers and admins).
#[utoipa::path(
    tag = "partners",
    params(("id" = i64, Path, description = "The CMO's organization id")),
    request_body = RecordInspection,
    responses(
        (status = 201, description = "Recorded", body = InspectionView),
        (status = 403, description = "Not the sponsor's quality, program managers or admins", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such CMO visible to the caller", body = crate::error::Problem, content_type = "application/problem+json")
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
    let txn = entity::db::begin_write(&state.db).await?;
    let p = find_scoped::<cmo::Entity, _>(&txn, &ctx, id.into_inner()).await?;
    require_sponsor_side(&ctx, &p, "inspections are recorded")?;
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
    txn.commit().await?;
    Ok(HttpResponse::Created().json(view))
}

/// A CMO's inspections, newest first.
#[utoipa::path(
    tag = "partners",
    params(("id" = i64, Path, description = "The CMO's organization id")),
    responses(
        (status = 200, description = "Inspections, newest first", body = [InspectionView]),
        (status = 404, description = "No such CMO visible to the caller", body = crate::error::Problem, content_type = "application/problem+json")
    )
)]
#[get("/cmos/{id}/inspections")]
pub async fn list_inspections(
    state: web::Data<AppState>,
    ctx: AuthContext,
    id: web::Path<i64>,
) -> ApiResult<web::Json<Vec<InspectionView>>> {
    let p = find_scoped::<cmo::Entity, _>(&state.db, &ctx, id.into_inner()).await?;
    let list = inspection::Entity::find()
        .filter(inspection::Column::CmoOrgId.eq(p.org_id))
        .order_by_desc(inspection::Column::InspectedOn)
        .order_by_desc(inspection::Column::Id)
        .all(&state.db)
        .await?;
    Ok(web::Json(list.iter().map(InspectionView::from).collect()))
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct ScorecardQuery {
    /// First day of the window (default: 90 days before `to`).
    #[param(example = "2026-01-01")]
    pub from: Option<NaiveDate>,
    /// Last day of the window, inclusive (default: today, UTC).
    #[param(example = "2026-12-31")]
    pub to: Option<NaiveDate>,
}

#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({"cmo_org_id": 2, "program_id": null, "programs": 3, "from": "2026-09-01", "to": "2026-11-30",
    "kpis": {"milestones_due": 12, "milestones_on_time": 9, "on_time_milestone_rate": 0.75,
    "batches": 8, "deviations": 11, "deviations_per_batch": {"critical": 0.13, "major": 0.25, "minor": 1.0},
    "median_days_to_triage": 0.6, "median_days_to_close": 21.5, "capa_on_time_closure_rate": 0.8,
    "escalations": 3, "median_minutes_to_acknowledge": 7.5, "p90_minutes_to_acknowledge": 22.0,
    "open_overdue_actions": 4}}))]
pub struct ScorecardView {
    pub cmo_org_id: i64,
    /// Set for a program's scorecard.
    pub program_id: Option<i64>,
    /// Programs counted.
    pub programs: usize,
    pub from: NaiveDate,
    pub to: NaiveDate,
    pub kpis: entity::scorecard::Scorecard,
}

fn window(q: &ScorecardQuery, today: NaiveDate) -> ApiResult<entity::scorecard::Window> {
    let to = q.to.unwrap_or(today);
    let from = q.from.unwrap_or(to - chrono::TimeDelta::days(90));
    let mut c = Checks::default();
    c.date("from", from);
    c.date("to", to);
    if from > to {
        c.fail("from", "after_to", "from must not be after to");
    } else if (to - from).num_days() > 3660 {
        c.fail("from", "out_of_range", "the window is at most ten years");
    }
    c.finish()?;
    Ok(entity::scorecard::Window { from, to })
}

/// The KPIs of a set of programs over a window, computed by `entity::scorecard`.
async fn scorecard_of<C: ConnectionTrait>(
    conn: &C,
    program_ids: &[i64],
    w: entity::scorecard::Window,
    today: NaiveDate,
) -> ApiResult<entity::scorecard::Scorecard> {
    use entity::{action_item, capa, deviation, escalation, milestone};
    let start = w.from.and_hms_opt(0, 0, 0).unwrap_or_default().and_utc();
    let end = (w.to + chrono::TimeDelta::days(1))
        .and_hms_opt(0, 0, 0)
        .unwrap_or_default()
        .and_utc();
    let mut milestones = Vec::new();
    let mut deviations = Vec::new();
    let mut capas = Vec::new();
    let mut escalations = Vec::new();
    let mut actions = Vec::new();
    // Bounded IN lists; each query is indexed by program.
    for ids in program_ids.chunks(500) {
        let ids = ids.to_vec();
        milestones.extend(
            milestone::Entity::find()
                .filter(milestone::Column::ProgramId.is_in(ids.clone()))
                .filter(milestone::Column::BaselineEnd.between(w.from, w.to))
                .all(conn)
                .await?,
        );
        deviations.extend(
            deviation::Entity::find()
                .filter(deviation::Column::ProgramId.is_in(ids.clone()))
                .filter(deviation::Column::DetectedAt.gte(start))
                .filter(deviation::Column::DetectedAt.lt(end))
                .all(conn)
                .await?,
        );
        capas.extend(
            capa::Entity::find()
                .filter(capa::Column::ProgramId.is_in(ids.clone()))
                .all(conn)
                .await?,
        );
        escalations.extend(
            escalation::Entity::find()
                .filter(escalation::Column::ProgramId.is_in(ids.clone()))
                .filter(escalation::Column::OpenedAt.gte(start))
                .filter(escalation::Column::OpenedAt.lt(end))
                .all(conn)
                .await?,
        );
        actions.extend(
            action_item::Entity::find()
                .filter(action_item::Column::ProgramId.is_in(ids))
                .filter(action_item::Column::Status.is_in([
                    action_item::ActionStatus::Open,
                    action_item::ActionStatus::InProgress,
                ]))
                .filter(action_item::Column::DueDate.lt(today))
                .all(conn)
                .await?,
        );
    }
    Ok(entity::scorecard::compute(
        &entity::scorecard::Inputs {
            milestones: &milestones,
            deviations: &deviations,
            capas: &capas,
            escalations: &escalations,
            action_items: &actions,
        },
        w,
        today,
    ))
}

/// A CMO's KPI scorecard over its programs with the sponsor (the sponsor and the CMO
/// itself may read it; other CMOs get 404).
#[utoipa::path(
    tag = "partners",
    params(("id" = i64, Path, description = "The CMO's organization id"), ScorecardQuery),
    responses(
        (status = 200, description = "The scorecard", body = ScorecardView),
        (status = 404, description = "No such CMO visible to the caller", body = crate::error::Problem, content_type = "application/problem+json")
    )
)]
#[get("/cmos/{id}/scorecard")]
pub async fn cmo_scorecard(
    state: web::Data<AppState>,
    ctx: AuthContext,
    id: web::Path<i64>,
    query: web::Query<ScorecardQuery>,
) -> ApiResult<web::Json<ScorecardView>> {
    let p = find_scoped::<cmo::Entity, _>(&state.db, &ctx, id.into_inner()).await?;
    let today = state.clock.now().date_naive();
    let w = window(&query, today)?;
    let programs: Vec<i64> = entity::program::Entity::find()
        .filter(entity::program::Column::CmoOrgId.eq(p.org_id))
        .filter(entity::program::Column::SponsorOrgId.eq(p.sponsor_org_id))
        .all(&state.db)
        .await?
        .into_iter()
        .map(|p| p.id)
        .collect();
    let kpis = scorecard_of(&state.db, &programs, w, today).await?;
    Ok(web::Json(ScorecardView {
        cmo_org_id: p.org_id,
        program_id: None,
        programs: programs.len(),
        from: w.from,
        to: w.to,
        kpis,
    }))
}

/// One program's KPI scorecard.
#[utoipa::path(
    tag = "partners",
    params(("id" = i64, Path, description = "Program id"), ScorecardQuery),
    responses(
        (status = 200, description = "The scorecard", body = ScorecardView),
        (status = 404, description = "No such program visible to the caller", body = crate::error::Problem, content_type = "application/problem+json")
    )
)]
#[get("/programs/{id}/scorecard")]
pub async fn program_scorecard(
    state: web::Data<AppState>,
    ctx: AuthContext,
    id: web::Path<i64>,
    query: web::Query<ScorecardQuery>,
) -> ApiResult<web::Json<ScorecardView>> {
    let prog = find_scoped::<entity::program::Entity, _>(&state.db, &ctx, id.into_inner()).await?;
    let today = state.clock.now().date_naive();
    let w = window(&query, today)?;
    let kpis = scorecard_of(&state.db, &[prog.id], w, today).await?;
    Ok(web::Json(ScorecardView {
        cmo_org_id: prog.cmo_org_id,
        program_id: Some(prog.id),
        programs: 1,
        from: w.from,
        to: w.to,
        kpis,
    }))
}

#[derive(Debug, Clone, Serialize, ToSchema)]
#[schema(example = json!({"id": 4, "cmo_org_id": 2, "version_label": "v3", "effective_on": "2026-01-01",
    "expires_on": "2027-12-31", "responsibilities": "Sponsor: release; CMO: batch record review, deviations within 1 business day",
    "document_ref": "QA-AGR-LONZA-003", "current": true, "days_to_expiry": 396}))]
pub struct QualityAgreementView {
    pub id: i64,
    pub cmo_org_id: i64,
    pub version_label: String,
    pub effective_on: NaiveDate,
    pub expires_on: NaiveDate,
    pub responsibilities: String,
    pub document_ref: String,
    /// In force today and the latest to take effect.
    pub current: bool,
    /// Negative once expired.
    pub days_to_expiry: i64,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"version_label": "v3", "effective_on": "2026-01-01", "expires_on": "2027-12-31",
    "responsibilities": "Sponsor: release; CMO: batch record review, deviations within 1 business day",
    "document_ref": "QA-AGR-LONZA-003"}))]
pub struct CreateQualityAgreement {
    pub version_label: String,
    pub effective_on: NaiveDate,
    pub expires_on: NaiveDate,
    pub responsibilities: String,
    /// Where the signed document lives (DMS number, URL).
    pub document_ref: String,
}

impl Validate for CreateQualityAgreement {
    fn validate(&self, c: &mut Checks) {
        c.text("version_label", &self.version_label, 1, 32);
        c.date("effective_on", self.effective_on);
        c.date("expires_on", self.expires_on);
        if self.expires_on <= self.effective_on {
            c.fail(
                "expires_on",
                "before_effective",
                "must be after effective_on",
            );
        }
        c.text("responsibilities", &self.responsibilities, 1, 10_000);
        c.text("document_ref", &self.document_ref, 1, 300);
    }
}

fn agreement_views(
    list: &[cmo::quality_agreement::Model],
    today: NaiveDate,
) -> Vec<QualityAgreementView> {
    let current = list
        .iter()
        .filter(|a| a.effective_on <= today && today <= a.expires_on)
        .max_by_key(|a| (a.effective_on, a.id))
        .map(|a| a.id);
    list.iter()
        .map(|a| QualityAgreementView {
            id: a.id,
            cmo_org_id: a.cmo_org_id,
            version_label: a.version_label.clone(),
            effective_on: a.effective_on,
            expires_on: a.expires_on,
            responsibilities: a.responsibilities.clone(),
            document_ref: a.document_ref.clone(),
            current: Some(a.id) == current,
            days_to_expiry: (a.expires_on - today).num_days(),
        })
        .collect()
}

/// Record a quality agreement (sponsor quality, program managers and admins). Its
/// expiry is reminded to the sponsor's quality users 90, 30 and 7 days ahead.
#[utoipa::path(
    tag = "partners",
    params(("id" = i64, Path, description = "The CMO's organization id")),
    request_body = CreateQualityAgreement,
    responses(
        (status = 201, description = "Recorded", body = QualityAgreementView),
        (status = 403, description = "Not the sponsor's quality, program managers or admins", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such CMO visible to the caller", body = crate::error::Problem, content_type = "application/problem+json")
    )
)]
#[post("/cmos/{id}/quality-agreements")]
pub async fn create_quality_agreement(
    state: web::Data<AppState>,
    ctx: AuthContext,
    id: web::Path<i64>,
    body: ApiJson<CreateQualityAgreement>,
) -> ApiResult<HttpResponse> {
    let b = body.into_inner();
    let txn = entity::db::begin_write(&state.db).await?;
    let p = find_scoped::<cmo::Entity, _>(&txn, &ctx, id.into_inner()).await?;
    require_sponsor_side(&ctx, &p, "quality agreements are recorded")?;
    let now = state.clock.now();
    let (_, view) = insert_audited(
        &txn,
        &ctx.actor(now),
        "quality_agreement",
        cmo::quality_agreement::ActiveModel {
            id: NotSet,
            cmo_org_id: Set(p.org_id),
            sponsor_org_id: Set(p.sponsor_org_id),
            version_label: Set(b.version_label.trim().to_string()),
            effective_on: Set(b.effective_on),
            expires_on: Set(b.expires_on),
            responsibilities: Set(b.responsibilities.trim().to_string()),
            document_ref: Set(b.document_ref.trim().to_string()),
            created_by_user_id: Set(ctx.user.id),
            created_at: Set(now),
        },
        async |a| {
            agreement_views(std::slice::from_ref(a), now.date_naive())
                .pop()
                .ok_or(ApiError::NotFound)
        },
    )
    .await?;
    txn.commit().await?;
    Ok(HttpResponse::Created().json(view))
}

/// A CMO's quality agreements, newest first, with the one in force marked `current`.
#[utoipa::path(
    tag = "partners",
    params(("id" = i64, Path, description = "The CMO's organization id")),
    responses(
        (status = 200, description = "Agreements", body = [QualityAgreementView]),
        (status = 404, description = "No such CMO visible to the caller", body = crate::error::Problem, content_type = "application/problem+json")
    )
)]
#[get("/cmos/{id}/quality-agreements")]
pub async fn list_quality_agreements(
    state: web::Data<AppState>,
    ctx: AuthContext,
    id: web::Path<i64>,
) -> ApiResult<web::Json<Vec<QualityAgreementView>>> {
    let p = find_scoped::<cmo::Entity, _>(&state.db, &ctx, id.into_inner()).await?;
    let list = cmo::quality_agreement::Entity::find()
        .filter(cmo::quality_agreement::Column::CmoOrgId.eq(p.org_id))
        .order_by_desc(cmo::quality_agreement::Column::EffectiveOn)
        .order_by_desc(cmo::quality_agreement::Column::Id)
        .all(&state.db)
        .await?;
    Ok(web::Json(agreement_views(
        &list,
        state.clock.now().date_naive(),
    )))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"program_id": 7, "title": "Aseptic process simulation failures (FDA 483 item 1)",
    "description": "Repeat APS with revised interventions; retrain operators"}))]
pub struct CapaFromInspection {
    /// The program (with this CMO) the CAPA belongs to.
    pub program_id: i64,
    pub title: String,
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
        (status = 403, description = "Not the sponsor's quality, program managers or admins", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such inspection visible to the caller", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 409, description = "The inspection had no critical finding", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 422, description = "The program is not one with this CMO", body = crate::error::Problem, content_type = "application/problem+json")
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
    let txn = entity::db::begin_write(&state.db).await?;
    let i = inspection::Entity::find_by_id(id.into_inner())
        .one(&txn)
        .await?
        .ok_or(ApiError::NotFound)?;
    // Visible only through its CMO's profile.
    let p = find_scoped::<cmo::Entity, _>(&txn, &ctx, i.cmo_org_id).await?;
    require_sponsor_side(&ctx, &p, "CAPAs from inspections are opened")?;
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
    let created = crate::records::insert_capa(
        &txn,
        prog.id,
        b.title.trim(),
        b.description,
        CapaSource::InspectionFinding,
        Some(format!(
            "inspection #{} ({} {}, {} critical finding(s))",
            i.id,
            wire_name(&i.agency).to_uppercase(),
            i.inspected_on,
            i.critical_findings
        )),
        now,
    )
    .await?;
    let rendered = crate::views::quality::capa(&txn, &created).await?;
    audit_trail::append(
        &txn,
        &ctx.actor(now),
        Entry::new("capa", created.id, "create")
            .after(snapshot(&rendered))
            .reason(Some(format!("critical finding of inspection #{}", i.id))),
    )
    .await?;
    txn.commit().await?;
    Ok(HttpResponse::Created().json(rendered))
}
