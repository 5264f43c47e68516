//! The CMO registry (SPEC §7): profiles with capabilities and contacts, sites,
//! regulatory inspections (the CMO's facts, kept by the CMO), and each sponsor's side:
//! its qualification of the CMO and its own notes. A sponsor sees the CMOs it is
//! connected to, with its own qualification; a CMO sees only its own profile.

use actix_web::{HttpRequest, HttpResponse, get, patch, post, put, web};
use entity::cmo::{self, QualificationStatus, Region, site};
use entity::relationship;
use sea_orm::{
    ActiveValue::NotSet, ActiveValue::Set, ColumnTrait, EntityTrait, QueryFilter, QueryOrder,
};
use serde::Deserialize;
use utoipa::{IntoParams, ToSchema};

use super::{own_relationship, require_fact_keeper, require_sponsor_side};
use crate::auth::{AuthContext, find_scoped, scoped};
use crate::error::{ApiError, ApiResult};
use crate::extract::{ApiJson, Checks, Validate};
use crate::pagination::{ListQuery, Paging};
use crate::routes::Page;
use crate::state::AppState;
use crate::transition::answer;
use crate::views::partners::{CmoView, Contact, SiteView, cmos as render};
use crate::write::{Patched, insert_audited, update_versioned};
use crate::write_txn::WriteTxn;
use actix_web::http::StatusCode;

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
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
}

/// Find candidate CMOs by capability and region, e.g. sterile injectables, biologics,
/// EU: `?dosage_form=sterile_injectable&modality=biologic&region=eu`.
#[utoipa::path(
    tag = "partners",
    params(CmoFilters, Paging),
    responses((status = 200, description = "One page of matching CMOs", body = Page<CmoView>))
)]
#[get("/cmos")]
pub async fn list_cmos(
    state: web::Data<AppState>,
    ctx: AuthContext,
    query: ListQuery<CmoFilters>,
) -> ApiResult<web::Json<Page<CmoView>>> {
    let q = query.filter;
    let mut select = scoped::<cmo::Entity>(&ctx);
    let relationships = relationship::Entity::find()
        .filter(relationship::Column::SponsorOrgId.eq(ctx.org_id()))
        .all(&state.reads)
        .await?;
    if let Some(s) = q.status {
        // Your own qualification of each: another sponsor's is not yours to filter by.
        select = select.filter(
            cmo::Column::OrgId.is_in(
                relationships
                    .iter()
                    .filter(|r| r.qualification_status == s)
                    .map(|r| r.cmo_org_id),
            ),
        );
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
        .all(&state.reads)
        .await?;
    // Tag and region filters on the (small) registry in memory.
    let wanted = |v: &Option<String>| v.as_ref().map(|t| t.trim().to_lowercase());
    let (form, modality) = (wanted(&q.dosage_form), wanted(&q.modality));
    let views: Vec<CmoView> = render(&state.reads, &profiles, &relationships)
        .await?
        .into_iter()
        .filter(|v| form.as_ref().is_none_or(|f| v.dosage_forms.contains(f)))
        .filter(|v| modality.as_ref().is_none_or(|m| v.modalities.contains(m)))
        .filter(|v| {
            q.region
                .is_none_or(|r| v.sites.iter().any(|s| s.region == r))
        })
        .collect();
    Ok(web::Json(Page::of_all(views, &query.paging)?))
}

/// One CMO: capabilities, contacts, qualification, sites with their latest inspection.
#[utoipa::path(
    tag = "partners",
    params(("id" = i64, Path, description = "The CMO's organization id")),
    responses(
        (status = 200, description = "The profile", body = CmoView),
        (status = 404, description = "No such CMO visible to the caller", body = crate::error::Problem)
    )
)]
#[get("/cmos/{id}")]
pub async fn get_cmo(
    state: web::Data<AppState>,
    ctx: AuthContext,
    id: web::Path<i64>,
) -> ApiResult<web::Json<CmoView>> {
    let p = find_scoped::<cmo::Entity, _>(&state.reads, &ctx, id.into_inner()).await?;
    let now = state.clock.now();
    match own_relationship(&state.reads, &ctx, p.org_id).await? {
        Some(rel) => Ok(web::Json(
            answer::<entity::workflow::qualification::Step>(&state.reads, &ctx, &rel, now).await?,
        )),
        None => Ok(web::Json(
            render(&state.reads, std::slice::from_ref(&p), &[])
                .await?
                .pop()
                .ok_or(ApiError::NotFound)?,
        )),
    }
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
    #[schema(minimum = 1, maximum = 10_000_000)]
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
            c.fail(
                "max_batch_liters",
                "out_of_range",
                "whole liters from 1 to 10000000, e.g. 2000",
            );
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

/// Update the CMO's capabilities and contacts: the CMO's own admins (the sponsor that
/// registered it until the CMO's first person has joined). Every sponsor connected to
/// the CMO reads them.
#[utoipa::path(
    tag = "partners",
    params(("id" = i64, Path, description = "The CMO's organization id")),
    request_body = UpdateCmo,
    responses(
        (status = 200, description = "The updated profile", body = CmoView),
        (status = 403, description = "Not allowed to edit this profile", body = crate::error::Problem),
        (status = 404, description = "No such CMO visible to the caller", body = crate::error::Problem),
        (status = 409, description = "Stale version", body = crate::error::Problem)
    )
)]
#[patch("/cmos/{id}")]
pub async fn update_cmo(
    req: HttpRequest,
    state: web::Data<AppState>,
    ctx: AuthContext,
    id: web::Path<i64>,
    body: ApiJson<UpdateCmo>,
) -> ApiResult<HttpResponse> {
    let b = body.into_inner();
    update_versioned::<cmo::Entity, _>(
        &state,
        &ctx,
        &req,
        id.into_inner(),
        b.version,
        "cmo_profile",
        async |txn, current| {
            require_fact_keeper(
                txn,
                &ctx,
                current,
                false,
                "a CMO's capabilities and contacts are kept",
            )
            .await
        },
        async |_, _, p| {
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
            let rel = own_relationship(txn, &ctx, p.org_id).await?;
            render(txn, std::slice::from_ref(p), rel.as_slice())
                .await?
                .pop()
                .ok_or(ApiError::NotFound)
        },
    )
    .await
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"name": "Visp Ibex", "country": "CH", "region": "other_europe"}))]
pub struct CreateSite {
    #[schema(min_length = 1, max_length = 200)]
    pub name: String,
    /// ISO 3166-1 alpha-2 country code.
    #[schema(pattern = "^[A-Z]{2}$", example = "CH")]
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

/// Add a manufacturing site to a CMO (the CMO's own admins; the registering sponsor until
/// the CMO's first person has joined).
#[utoipa::path(
    tag = "partners",
    params(("id" = i64, Path, description = "The CMO's organization id")),
    request_body = CreateSite,
    responses(
        (status = 201, description = "The site", body = SiteView),
        (status = 403, description = "Not allowed to edit this profile", body = crate::error::Problem),
        (status = 404, description = "No such CMO visible to the caller", body = crate::error::Problem)
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
    let txn = WriteTxn::begin(&state, &ctx).await?;
    let p = find_scoped::<cmo::Entity, _>(&txn, &ctx, id.into_inner()).await?;
    require_fact_keeper(&txn, &ctx, &p, false, "a CMO's sites are kept").await?;
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
    txn.respond(StatusCode::CREATED, &view).await
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"sponsor_notes": "Preferred for lyo; ask for Ibex capacity in Q3", "version": 3}))]
pub struct SponsorNotes {
    /// Your organization's own notes about the CMO (at most 10,000 characters); `null`
    /// clears them.
    #[schema(min_length = 1, max_length = 10000)]
    pub sponsor_notes: Option<String>,
    /// The `qualification_version` you read (or `If-Match`).
    pub version: Option<i32>,
}

impl Validate for SponsorNotes {
    fn validate(&self, c: &mut Checks) {
        c.optional_text("sponsor_notes", self.sponsor_notes.as_deref(), 1, 10_000);
    }
}

/// Keep your organization's own notes about a CMO (the connected sponsor's quality,
/// program managers and admins). Never shown to the CMO or to another sponsor.
#[utoipa::path(
    tag = "partners",
    params(("id" = i64, Path, description = "The CMO's organization id")),
    request_body = SponsorNotes,
    responses(
        (status = 200, description = "The profile with your notes", body = CmoView),
        (status = 403, description = "Not the connected sponsor's quality, program managers or admins", body = crate::error::Problem),
        (status = 404, description = "No such CMO visible to the caller", body = crate::error::Problem),
        (status = 409, description = "Stale version", body = crate::error::Problem),
        (status = 422, description = "Notes too long, or no version given (`version` or `If-Match`)", body = crate::error::Problem)
    )
)]
#[put("/cmos/{id}/sponsor-notes")]
pub async fn put_sponsor_notes(
    req: HttpRequest,
    state: web::Data<AppState>,
    ctx: AuthContext,
    id: web::Path<i64>,
    body: ApiJson<SponsorNotes>,
) -> ApiResult<HttpResponse> {
    let b = body.into_inner();
    let p = find_scoped::<cmo::Entity, _>(&state.db, &ctx, id.into_inner()).await?;
    let rel = own_relationship(&state.db, &ctx, p.org_id).await?;
    require_sponsor_side(&ctx, rel.as_ref(), "sponsor notes are kept")?;
    let rel_id = rel.map(|r| r.id).ok_or(ApiError::NotFound)?;
    update_versioned::<relationship::Entity, _>(
        &state,
        &ctx,
        &req,
        rel_id,
        b.version,
        "cmo_relationship",
        async |_, _| Ok(()),
        async |_, _, r| {
            r.sponsor_notes = b
                .sponsor_notes
                .as_deref()
                .map(str::trim)
                .filter(|n| !n.is_empty())
                .map(str::to_string);
            Ok(Patched::update(None))
        },
        async |txn, r| {
            let profile = find_scoped::<cmo::Entity, _>(txn, &ctx, r.cmo_org_id).await?;
            render(txn, std::slice::from_ref(&profile), std::slice::from_ref(r))
                .await?
                .pop()
                .ok_or(ApiError::NotFound)
        },
    )
    .await
}
