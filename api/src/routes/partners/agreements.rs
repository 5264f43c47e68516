//! Quality agreements with a CMO, with their expiry.

use actix_web::{HttpResponse, get, post, web};
use chrono::NaiveDate;
use entity::cmo::{self};
use sea_orm::{ActiveValue::NotSet, ActiveValue::Set, ColumnTrait, EntityTrait, QueryFilter};
use serde::Deserialize;
use utoipa::ToSchema;

use super::{own_relationship, require_sponsor_side};
use crate::auth::{AuthContext, find_scoped};
use crate::error::{ApiError, ApiResult};
use crate::extract::{ApiJson, Checks, Validate};
use crate::pagination::{Keyset, Page, Paging, fetch_page};
use crate::state::AppState;
use crate::views::partners::{QualityAgreementView, agreement_views};
use crate::write::insert_audited;
use crate::write_txn::WriteTxn;
use actix_web::http::StatusCode;

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"version_label": "v3", "effective_on": "2026-01-01", "expires_on": "2027-12-31",
    "responsibilities": "Sponsor: release; CMO: batch record review, deviations within 1 business day",
    "document_ref": "QA-AGR-LONZA-003"}))]
pub struct CreateQualityAgreement {
    #[schema(min_length = 1, max_length = 32)]
    pub version_label: String,
    pub effective_on: NaiveDate,
    pub expires_on: NaiveDate,
    #[schema(min_length = 1, max_length = 10000)]
    pub responsibilities: String,
    /// Where the signed document lives (DMS number, URL).
    #[schema(min_length = 1, max_length = 300)]
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

/// Record a quality agreement (the connected sponsor's quality, program managers and
/// admins). Its expiry is reminded to the sponsor's quality users 90, 30 and 7 days
/// ahead. No other sponsor of the CMO reads it.
#[utoipa::path(
    tag = "partners",
    params(("id" = i64, Path, description = "The CMO's organization id")),
    request_body = CreateQualityAgreement,
    responses(
        (status = 201, description = "Recorded", body = QualityAgreementView),
        (status = 403, description = "Not the sponsor's quality, program managers or admins", body = crate::error::Problem),
        (status = 404, description = "No such CMO visible to the caller", body = crate::error::Problem)
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
    let txn = WriteTxn::begin(&state, &ctx).await?;
    let p = find_scoped::<cmo::Entity, _>(&txn, &ctx, id.into_inner()).await?;
    let rel = own_relationship(&txn, &ctx, p.org_id).await?;
    require_sponsor_side(&ctx, rel.as_ref(), "quality agreements are recorded")?;
    let now = state.clock.now();
    let (_, view) = insert_audited(
        &txn,
        &ctx.actor(now),
        "quality_agreement",
        cmo::quality_agreement::ActiveModel {
            id: NotSet,
            cmo_org_id: Set(p.org_id),
            sponsor_org_id: Set(ctx.org_id()),
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
    txn.respond(StatusCode::CREATED, &view).await
}

/// Quality agreements with a CMO, newest first, with the one in force marked `current`:
/// a sponsor reads its own; the CMO reads those it is party to, with every sponsor.
#[utoipa::path(
    tag = "partners",
    params(("id" = i64, Path, description = "The CMO's organization id"), Paging),
    responses(
        (status = 200, description = "One page of agreements, newest first", body = Page<QualityAgreementView>),
        (status = 404, description = "No such CMO visible to the caller", body = crate::error::Problem),
        (status = 422, description = "Invalid limit or offset", body = crate::error::Problem)
    )
)]
#[get("/cmos/{id}/quality-agreements")]
pub async fn list_quality_agreements(
    state: web::Data<AppState>,
    ctx: AuthContext,
    id: web::Path<i64>,
    paging: web::Query<Paging>,
) -> ApiResult<web::Json<Page<QualityAgreementView>>> {
    let p = find_scoped::<cmo::Entity, _>(&state.reads, &ctx, id.into_inner()).await?;
    let mut select = cmo::quality_agreement::Entity::find()
        .filter(cmo::quality_agreement::Column::CmoOrgId.eq(p.org_id));
    if ctx.org_id() != p.org_id {
        select = select.filter(cmo::quality_agreement::Column::SponsorOrgId.eq(ctx.org_id()));
    }
    let page = fetch_page(
        &state.reads,
        select,
        Keyset::desc([
            cmo::quality_agreement::Column::EffectiveOn,
            cmo::quality_agreement::Column::Id,
        ]),
        &paging,
    )
    .await?;
    let list = &page.items;
    let items = agreement_views(list, state.clock.now().date_naive());
    Ok(web::Json(page.with_items(items)))
}
