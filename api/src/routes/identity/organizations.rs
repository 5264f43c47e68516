//! Organizations: the sponsor and the CMOs it works with.

use actix_web::{HttpResponse, get, post, web};
use entity::{OrgKind, Role, organization};
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::accounts::{self, NewInvitation};
use crate::auth::{AuthContext, find_scoped, scoped};
use crate::error::{ApiError, ApiResult};
use crate::pagination::{Keyset, ListQuery, Paging};
use crate::provisioning;
use crate::routes::{ApiJson, Checks, Page, Validate, fetch_page};
use crate::state::AppState;
use crate::views::identity::{InvitationView, OrganizationView};
use crate::write_txn::WriteTxn;
use actix_web::http::StatusCode;

/// The first administrator of a new organization.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"email": "pm@lonza.test", "display_name": "Petra Meier", "time_zone": "Europe/Zurich"}))]
pub struct NewAdmin {
    #[schema(max_length = 254, format = Email)]
    pub email: String,
    #[schema(min_length = 1, max_length = 200)]
    pub display_name: String,
    /// IANA time zone; default `UTC`.
    pub time_zone: Option<String>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({
    "name": "Lonza Visp", "kind": "cmo",
    "admin": {"email": "pm@lonza.test", "display_name": "Petra Meier", "time_zone": "Europe/Zurich"}
}))]
pub struct CreateOrganization {
    #[schema(min_length = 1, max_length = 200)]
    pub name: String,
    pub kind: OrgKind,
    pub admin: NewAdmin,
}

impl Validate for CreateOrganization {
    fn validate(&self, c: &mut Checks) {
        c.text("name", &self.name, 1, 200);
        c.email("admin.email", &self.admin.email);
        c.text("admin.display_name", &self.admin.display_name, 1, 200);
        if let Some(tz) = &self.admin.time_zone {
            c.time_zone("admin.time_zone", tz);
        }
    }
}

/// The new organization and the invitation of its first admin.
#[derive(Debug, Serialize, ToSchema)]
pub struct CreatedOrganization {
    pub organization: OrganizationView,
    /// The first admin's invitation: they choose their password from the emailed link.
    pub admin_invitation: InvitationView,
}

/// Register a CMO and invite its first admin.
///
/// Only admins of a sponsor organization register CMOs (`kind` must be `cmo`: sponsor
/// organizations are created by the installation operator, `cmo-api create-sponsor`). The first admin is
/// invited by email like anyone else: the registering sponsor never holds a credential
/// of the new organization.
#[utoipa::path(
    tag = "organizations",
    request_body = CreateOrganization,
    responses(
        (status = 201, description = "Organization created and its first admin invited", body = CreatedOrganization),
        (status = 403, description = "Caller is not an admin of a sponsor organization", body = crate::error::Problem),
        (status = 409, description = "A CMO of that name is on the installation (`cmo_exists`): connect to it instead", body = crate::error::Problem),
        (status = 422, description = "Invalid fields; `kind` other than `cmo` (`sponsor_by_operator`)", body = crate::error::Problem)
    )
)]
#[post("/organizations")]
pub async fn create_organization(
    state: web::Data<AppState>,
    ctx: AuthContext,
    body: ApiJson<CreateOrganization>,
) -> ApiResult<HttpResponse> {
    ctx.require_admin()?;
    if ctx.org.kind != OrgKind::Sponsor {
        return Err(ApiError::Forbidden(
            "only a sponsor organization registers other organizations".to_string(),
        ));
    }
    let body = body.into_inner();
    if body.kind != OrgKind::Cmo {
        return Err(ApiError::invalid(
            "kind",
            "sponsor_by_operator",
            "sponsors register CMOs; a sponsor organization is created by the installation operator (cmo-api create-sponsor)",
        ));
    }
    let now = state.clock.now();
    let caller = ctx.actor(now);
    let txn = WriteTxn::begin(&state, &ctx).await?;
    // CMO names are unique among CMOs: a second sponsor of the same CMO connects to it
    // rather than registering a copy. Saying that one exists tells what the directory
    // tells (never who works with it).
    let taken = organization::Entity::find()
        .filter(organization::Column::Kind.eq(OrgKind::Cmo))
        .filter(organization::Column::Name.eq(body.name.trim()))
        .one(&txn)
        .await?;
    if let Some(existing) = taken {
        return Err(ApiError::conflict(
            "cmo_exists",
            format!(
                "a CMO named {:?} is on this installation already (organization {}): invite it with POST /api/v1/cmo-connections instead of registering a copy",
                existing.name, existing.id
            ),
        ));
    }
    let org = provisioning::create_organization(
        &txn,
        &body.name,
        body.kind,
        Some(ctx.org_id()),
        Some(&caller),
        &state.chain_keys,
        now,
    )
    .await?;
    let invitation = accounts::invite(
        &txn,
        &caller,
        &org,
        Some(&format!("{} ({})", ctx.user.display_name, ctx.org.name)),
        NewInvitation {
            email: body.admin.email,
            display_name: body.admin.display_name,
            role: Role::Admin,
            time_zone: body.admin.time_zone.unwrap_or_else(|| "UTC".to_string()),
            phone: None,
        },
        &state.public_base_url,
    )
    .await?;
    txn.respond(
        StatusCode::CREATED,
        &CreatedOrganization {
            organization: OrganizationView::from(&org),
            admin_invitation: InvitationView::new(&invitation, now),
        },
    )
    .await
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct OrganizationFilter {
    /// Only organizations of this kind.
    pub kind: Option<OrgKind>,
}

/// Organizations visible to the caller: their own and those it has a relationship with
/// (a sponsor: the CMOs it invited or works with; a CMO: the sponsors that invited it or
/// work with it). Ordered by id.
#[utoipa::path(
    tag = "organizations",
    params(OrganizationFilter, Paging),
    responses((status = 200, description = "One page of organizations", body = Page<OrganizationView>))
)]
#[get("/organizations")]
pub async fn list_organizations(
    state: web::Data<AppState>,
    ctx: AuthContext,
    query: ListQuery<OrganizationFilter>,
) -> ApiResult<web::Json<Page<OrganizationView>>> {
    let filter = query.filter;
    let mut select = scoped::<organization::Entity>(&ctx);
    if let Some(kind) = filter.kind {
        select = select.filter(organization::Column::Kind.eq(kind));
    }
    let page = fetch_page(
        &state.reads,
        select,
        Keyset::asc([organization::Column::Id]),
        &query.paging,
    )
    .await?;
    let items = &page.items;
    let items = items
        .iter()
        .map(|o| OrganizationView::seen_by(o, ctx.org_id()))
        .collect();
    Ok(web::Json(page.with_items(items)))
}

/// One organization, if visible to the caller.
#[utoipa::path(
    tag = "organizations",
    params(("id" = i64, Path, description = "Organization id")),
    responses(
        (status = 200, description = "The organization", body = OrganizationView),
        (status = 404, description = "No such organization visible to the caller", body = crate::error::Problem)
    )
)]
#[get("/organizations/{id}")]
pub async fn get_organization(
    state: web::Data<AppState>,
    ctx: AuthContext,
    id: web::Path<i64>,
) -> ApiResult<web::Json<OrganizationView>> {
    let org = find_scoped::<organization::Entity, _>(&state.reads, &ctx, id.into_inner()).await?;
    Ok(web::Json(OrganizationView::seen_by(&org, ctx.org_id())))
}
