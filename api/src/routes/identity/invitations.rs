//! Invitations: an admin invites a person; the person accepts from the link in their
//! email, choosing their own password (the page at `/invitations/accept`, or this API).

use actix_web::{HttpResponse, delete, get, post, web};
use entity::{Role, invitation};
use sea_orm::{ColumnTrait, QueryFilter};
use serde::Deserialize;
use utoipa::{IntoParams, ToSchema};

use crate::accounts::{self, NewInvitation};
use crate::auth::{AuthContext, find_scoped_locked, scoped};
use crate::error::ApiResult;
use crate::pagination::{Keyset, ListQuery, Paging};
use crate::routes::{ApiJson, Checks, Page, Validate, fetch_page};
use crate::state::AppState;
use crate::views::identity::{InvitationView, UserView};
use crate::write_txn::WriteTxn;
use actix_web::http::StatusCode;

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({
    "email": "qa.lead@acme.test", "display_name": "Quinn Alvarez", "role": "quality",
    "time_zone": "America/New_York", "phone": "+1 617 555 0142"
}))]
pub struct CreateInvitation {
    #[schema(max_length = 254, format = Email)]
    pub email: String,
    #[schema(min_length = 1, max_length = 200)]
    pub display_name: String,
    pub role: Role,
    /// IANA time zone; default `UTC`.
    pub time_zone: Option<String>,
    /// Phone for the escalation call tree: 5 to 32 characters of digits, spaces and
    /// `+ - ( ) .`, at least 5 digits.
    #[schema(min_length = 5, max_length = 32)]
    pub phone: Option<String>,
}

impl Validate for CreateInvitation {
    fn validate(&self, c: &mut Checks) {
        c.email("email", &self.email);
        c.text("display_name", &self.display_name, 1, 200);
        if let Some(tz) = &self.time_zone {
            c.time_zone("time_zone", tz);
        }
        if let Some(phone) = &self.phone {
            c.phone("phone", phone);
        }
    }
}

/// Invite a person into your organization (admins only). They receive an email with a
/// single-use link, valid 7 days, to the page where they choose their password; the
/// link is in that email only.
#[utoipa::path(
    tag = "users",
    request_body = CreateInvitation,
    responses(
        (status = 201, description = "Invitation created and its email queued", body = InvitationView),
        (status = 403, description = "Caller is not an admin", body = crate::error::Problem),
        (status = 409, description = "A user with this email exists (`email_taken`), or an invitation is pending (`already_invited`: re-send it)", body = crate::error::Problem)
    )
)]
#[post("/invitations")]
pub async fn create_invitation(
    state: web::Data<AppState>,
    ctx: AuthContext,
    body: ApiJson<CreateInvitation>,
) -> ApiResult<HttpResponse> {
    ctx.require_admin()?;
    let b = body.into_inner();
    let now = state.clock.now();
    let txn = WriteTxn::begin(&state, &ctx).await?;
    let created = accounts::invite(
        &txn,
        &ctx.actor(now),
        &ctx.org,
        Some(&ctx.user.display_name),
        NewInvitation {
            email: b.email,
            display_name: b.display_name,
            role: b.role,
            time_zone: b.time_zone.unwrap_or_else(|| "UTC".to_string()),
            phone: b.phone.map(|p| p.trim().to_string()),
        },
        &state.public_base_url,
    )
    .await?;
    txn.respond(StatusCode::CREATED, &InvitationView::new(&created, now))
        .await
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct InvitationFilter {
    /// Only open invitations (not accepted, not revoked; expired ones included, so they
    /// can be re-sent). Default: all.
    pub open: Option<bool>,
}

/// Invitations of your organization, newest first (admins only).
#[utoipa::path(
    tag = "users",
    params(InvitationFilter, Paging),
    responses(
        (status = 200, description = "One page of invitations", body = Page<InvitationView>),
        (status = 403, description = "Caller is not an admin", body = crate::error::Problem)
    )
)]
#[get("/invitations")]
pub async fn list_invitations(
    state: web::Data<AppState>,
    ctx: AuthContext,
    query: ListQuery<InvitationFilter>,
) -> ApiResult<web::Json<Page<InvitationView>>> {
    ctx.require_admin()?;
    let filter = query.filter;
    let mut select = scoped::<invitation::Entity>(&ctx);
    if filter.open == Some(true) {
        select = select
            .filter(invitation::Column::AcceptedAt.is_null())
            .filter(invitation::Column::RevokedAt.is_null());
    }
    let page = fetch_page(
        &state.reads,
        select,
        Keyset::desc([invitation::Column::Id]),
        &query.paging,
    )
    .await?;
    let items = &page.items;
    let now = state.clock.now();
    let items = items.iter().map(|i| InvitationView::new(i, now)).collect();
    Ok(web::Json(page.with_items(items)))
}

/// Send a pending or expired invitation again, with a new link (the old one stops
/// working) valid 7 days from now (admins only).
#[utoipa::path(
    tag = "users",
    params(("id" = i64, Path, description = "Invitation id")),
    responses(
        (status = 200, description = "The invitation, re-sent", body = InvitationView),
        (status = 403, description = "Caller is not an admin", body = crate::error::Problem),
        (status = 404, description = "No such invitation in your organization", body = crate::error::Problem),
        (status = 409, description = "Accepted or revoked (`invitation_closed`)", body = crate::error::Problem)
    )
)]
#[post("/invitations/{id}/resend")]
pub async fn resend_invitation(
    state: web::Data<AppState>,
    ctx: AuthContext,
    id: web::Path<i64>,
) -> ApiResult<HttpResponse> {
    ctx.require_admin()?;
    let now = state.clock.now();
    let txn = WriteTxn::begin(&state, &ctx).await?;
    let current = find_scoped_locked::<invitation::Entity, _>(&txn, &ctx, id.into_inner()).await?;
    let updated = accounts::resend_invitation(
        &txn,
        &ctx.actor(now),
        current,
        Some(&ctx.user.display_name),
        &state.public_base_url,
    )
    .await?;
    txn.respond(StatusCode::OK, &InvitationView::new(&updated, now))
        .await
}

/// Revoke an invitation: its link stops working (admins only; revoking twice is fine).
#[utoipa::path(
    tag = "users",
    params(("id" = i64, Path, description = "Invitation id")),
    responses(
        (status = 200, description = "The revoked invitation", body = InvitationView),
        (status = 403, description = "Caller is not an admin", body = crate::error::Problem),
        (status = 404, description = "No such invitation in your organization", body = crate::error::Problem),
        (status = 409, description = "Already accepted (`invitation_closed`: deactivate the user instead)", body = crate::error::Problem)
    )
)]
#[delete("/invitations/{id}")]
pub async fn revoke_invitation(
    state: web::Data<AppState>,
    ctx: AuthContext,
    id: web::Path<i64>,
) -> ApiResult<HttpResponse> {
    ctx.require_admin()?;
    let now = state.clock.now();
    let txn = WriteTxn::begin(&state, &ctx).await?;
    let current = find_scoped_locked::<invitation::Entity, _>(&txn, &ctx, id.into_inner()).await?;
    let updated = accounts::revoke_invitation(&txn, &ctx.actor(now), current).await?;
    txn.respond(StatusCode::OK, &InvitationView::new(&updated, now))
        .await
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({
    "token": "5e2f0c9a7b1d4e3f8a6c2b0d9e7f5a3c1b8d6e4f2a0c9b7d5e3f1a8c6b4d2e0f",
    "password": "correct horse battery staple", "display_name": "Quinn Alvarez",
    "certify_signature": true
}))]
pub struct AcceptInvitation {
    /// The `token` of the invitation link.
    #[schema(min_length = 1, max_length = 128)]
    pub token: String,
    /// The password you choose: at least 12 characters. It signs you in and signs records.
    #[schema(min_length = 12, max_length = 256)]
    pub password: String,
    /// Your name as records and signatures show it, if not as invited.
    #[schema(min_length = 1, max_length = 200)]
    pub display_name: Option<String>,
    /// `true` certifies, once, that your electronic signature is the legally binding
    /// equivalent of your handwritten one (needed before your first signature; see
    /// `POST /users/{id}/signature-certification`).
    pub certify_signature: Option<bool>,
}

impl Validate for AcceptInvitation {
    fn validate(&self, c: &mut Checks) {
        c.text("token", &self.token, 1, 128);
        c.password("password", &self.password);
        c.optional_text("display_name", self.display_name.as_deref(), 1, 200);
    }
}

/// Accept an invitation with the link's token, choosing your password (no bearer token:
/// the link is the credential). Creates your account; then sign in.
#[utoipa::path(
    tag = "users",
    security(()),
    request_body = AcceptInvitation,
    responses(
        (status = 201, description = "Your account", body = UserView),
        (status = 409, description = "A user with this email exists in the organization", body = crate::error::Problem),
        (status = 410, description = "The link was used, revoked or has expired (`link_not_usable`)", body = crate::error::Problem)
    )
)]
#[post("/invitations/accept")]
pub async fn accept_invitation(
    state: web::Data<AppState>,
    body: ApiJson<AcceptInvitation>,
) -> ApiResult<HttpResponse> {
    let b = body.into_inner();
    let person = accounts::accept_invitation(
        &state,
        &b.token,
        b.password,
        b.display_name,
        b.certify_signature.unwrap_or(false),
    )
    .await?;
    Ok(HttpResponse::Created().json(UserView::from(&person)))
}
