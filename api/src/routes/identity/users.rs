//! Users of the caller's organization (people join by invitation: `invitations.rs`).

use actix_web::{HttpRequest, HttpResponse, get, patch, post, put, web};
use entity::audit_trail::{self, Entry};
use entity::{Role, user};
use sea_orm::{ColumnTrait, QueryFilter};
use serde::Deserialize;
use utoipa::{IntoParams, ToSchema};

use crate::auth::{AuthContext, find_scoped, find_scoped_locked, scoped};
use crate::error::{ApiError, ApiResult};
use crate::pagination::{Keyset, ListQuery, Paging};
use crate::routes::{ApiJson, Checks, Page, Validate, fetch_page, snapshot};
use crate::state::AppState;
use crate::views::identity::UserView;
use crate::write::{Patched, optional_version, update_versioned, write_next_version};
use crate::write_txn::WriteTxn;
use actix_web::http::StatusCode;

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct UserFilter {
    pub role: Option<Role>,
    pub active: Option<bool>,
    /// Only service accounts (`true`) or only people (`false`).
    pub service_account: Option<bool>,
}

/// Users of the caller's organization, ordered by id.
#[utoipa::path(
    tag = "users",
    params(UserFilter, Paging),
    responses((status = 200, description = "One page of users", body = Page<UserView>))
)]
#[get("/users")]
pub async fn list_users(
    state: web::Data<AppState>,
    ctx: AuthContext,
    query: ListQuery<UserFilter>,
) -> ApiResult<web::Json<Page<UserView>>> {
    let filter = query.filter;
    let mut select = scoped::<user::Entity>(&ctx);
    if let Some(role) = filter.role {
        select = select.filter(user::Column::Role.eq(role));
    }
    if let Some(active) = filter.active {
        select = select.filter(user::Column::Active.eq(active));
    }
    if let Some(service) = filter.service_account {
        select = select.filter(user::Column::IsServiceAccount.eq(service));
    }
    let page = fetch_page(
        &state.reads,
        select,
        Keyset::asc([user::Column::Id]),
        &query.paging,
    )
    .await?;
    let items = &page.items;
    let items = items.iter().map(UserView::from).collect();
    Ok(web::Json(page.with_items(items)))
}

/// One user of the caller's organization.
#[utoipa::path(
    tag = "users",
    params(("id" = i64, Path, description = "User id")),
    responses(
        (status = 200, description = "The user", body = UserView),
        (status = 404, description = "No such user in the caller's organization", body = crate::error::Problem)
    )
)]
#[get("/users/{id}")]
pub async fn get_user(
    state: web::Data<AppState>,
    ctx: AuthContext,
    id: web::Path<i64>,
) -> ApiResult<HttpResponse> {
    let user = find_scoped::<user::Entity, _>(&state.reads, &ctx, id.into_inner()).await?;
    Ok(HttpResponse::Ok()
        .insert_header((
            actix_web::http::header::ETAG,
            format!("\"{}\"", user.version),
        ))
        .json(UserView::from(&user)))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"version": 1, "role": "program_manager", "reason": "took over the Visp program"}))]
pub struct UpdateUser {
    /// The version being updated (or send `If-Match`).
    pub version: Option<i32>,
    #[schema(min_length = 1, max_length = 200)]
    pub display_name: Option<String>,
    /// Admins only, and not for themselves.
    pub role: Option<Role>,
    pub time_zone: Option<String>,
    /// A new phone number; `null` removes it.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>, min_length = 5, max_length = 32)]
    pub phone: Option<Option<String>>,
    /// Why the change is made; kept in the audit trail.
    #[schema(max_length = 500)]
    pub reason: Option<String>,
}

impl Validate for UpdateUser {
    fn validate(&self, c: &mut Checks) {
        c.optional_text("display_name", self.display_name.as_deref(), 1, 200);
        if let Some(tz) = &self.time_zone {
            c.time_zone("time_zone", tz);
        }
        c.optional_text("reason", self.reason.as_deref(), 1, 500);
        if let Some(Some(phone)) = &self.phone {
            c.phone("phone", phone);
        }
        if self.display_name.is_none()
            && self.role.is_none()
            && self.time_zone.is_none()
            && self.phone.is_none()
        {
            c.fail(
                "body",
                "nothing_to_update",
                "give at least one of display_name, role, time_zone, phone",
            );
        }
    }
}

/// `Some(value)` for a field that is present, even as `null` (absent stays `None`).
fn present<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Option<String>>, D::Error> {
    Option::<String>::deserialize(d).map(Some)
}

/// Update a user's name, role or time zone (optimistic concurrency on `version`).
///
/// Users may change their own name and time zone; admins may change anyone's, and the role
/// of anyone but themselves.
#[utoipa::path(
    tag = "users",
    params(
        ("id" = i64, Path, description = "User id"),
        ("If-Match" = Option<String>, Header, pattern = r#"^(W/)?"?[0-9]{1,9}"?$"#, description = "Version being updated, e.g. \"3\" (alternative to `version` in the body)")
    ),
    request_body = UpdateUser,
    responses(
        (status = 200, description = "The updated user", body = UserView),
        (status = 403, description = "Not allowed to make this change", body = crate::error::Problem),
        (status = 404, description = "No such user in the caller's organization", body = crate::error::Problem),
        (status = 409, description = "Stale version", body = crate::error::Problem)
    )
)]
#[patch("/users/{id}")]
pub async fn update_user(
    req: HttpRequest,
    state: web::Data<AppState>,
    ctx: AuthContext,
    id: web::Path<i64>,
    body: ApiJson<UpdateUser>,
) -> ApiResult<HttpResponse> {
    let b = body.into_inner();
    update_versioned::<user::Entity, _>(
        &state,
        &ctx,
        &req,
        id.into_inner(),
        b.version,
        "user",
        async |_, current| {
            let is_self = current.id == ctx.user.id;
            if !is_self {
                ctx.require_admin()?;
            }
            if b.role.is_some_and(|role| role != current.role) {
                ctx.require_admin()?;
                ctx.require(!is_self, "admins cannot change their own role")?;
            }
            Ok(())
        },
        async |_, _, u| {
            if let Some(name) = b.display_name {
                u.display_name = name.trim().to_string();
            }
            if let Some(role) = b.role {
                u.role = role;
            }
            if let Some(phone) = b.phone {
                u.phone = phone.map(|p| p.trim().to_string());
            }
            if let Some(tz) = b.time_zone {
                u.time_zone = tz;
            }
            Ok(Patched::update(b.reason))
        },
        async |_, u| Ok(UserView::from(u)),
    )
    .await
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"reason": "left the company", "version": 2}))]
pub struct DeactivateUser {
    /// Why; kept in the audit trail.
    #[schema(min_length = 1, max_length = 500)]
    pub reason: String,
    /// The version being deactivated (optional; checked when given or sent as `If-Match`).
    pub version: Option<i32>,
}

impl Validate for DeactivateUser {
    fn validate(&self, c: &mut Checks) {
        c.text("reason", &self.reason, 1, 500);
    }
}

/// Deactivate a user (admins only, not themselves). Their tokens are revoked (with every
/// token created with them) and stop working at once; their records and signatures stay.
#[utoipa::path(
    tag = "users",
    params(
        ("id" = i64, Path, description = "User id"),
        ("If-Match" = Option<String>, Header, pattern = r#"^(W/)?"?[0-9]{1,9}"?$"#, description = "Version being deactivated (alternative to `version` in the body)")
    ),
    request_body = DeactivateUser,
    responses(
        (status = 200, description = "The deactivated user", body = UserView),
        (status = 403, description = "Caller is not an admin, or is deactivating themselves", body = crate::error::Problem),
        (status = 404, description = "No such user in the caller's organization", body = crate::error::Problem),
        (status = 409, description = "Stale version", body = crate::error::Problem)
    )
)]
#[post("/users/{id}/deactivate")]
pub async fn deactivate_user(
    req: HttpRequest,
    state: web::Data<AppState>,
    ctx: AuthContext,
    id: web::Path<i64>,
    body: ApiJson<DeactivateUser>,
) -> ApiResult<HttpResponse> {
    ctx.require_admin()?;
    let body = body.into_inner();
    let header_or_body = optional_version(&req, body.version)?;
    let txn = WriteTxn::begin(&state, &ctx).await?;
    let current = find_scoped::<user::Entity, _>(&txn, &ctx, id.into_inner()).await?;
    if current.id == ctx.user.id {
        return Err(ApiError::Forbidden(
            "admins cannot deactivate themselves".to_string(),
        ));
    }
    if header_or_body.is_some_and(|v| v != current.version) {
        return Err(ApiError::stale_version(current.version));
    }
    if !current.active {
        return txn.respond(StatusCode::OK, &UserView::from(&current)).await;
    }
    let now = state.clock.now();
    // Every credential ends with the person, and what was created with them.
    let updated = crate::accounts::deactivate_person(
        &txn,
        &ctx.actor(now),
        &current,
        &body.reason,
        "user_deactivated",
    )
    .await?;
    txn.respond(StatusCode::OK, &UserView::from(&updated)).await
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"current_password": "old signing password", "new_password": "correct horse battery staple"}))]
pub struct SetPassword {
    /// Required when users change their own password and one is set.
    #[schema(max_length = 256)]
    pub current_password: Option<String>,
    #[schema(min_length = 12, max_length = 256)]
    pub new_password: String,
}

impl Validate for SetPassword {
    fn validate(&self, c: &mut Checks) {
        c.password("new_password", &self.new_password);
        if self
            .current_password
            .as_ref()
            .is_some_and(|p| p.len() > 256)
        {
            c.fail(
                "current_password",
                "too_long",
                "must be at most 256 characters",
            );
        }
    }
}

/// Change your own password, giving the current one (a wrong one is audited and counts
/// towards the signing lockout). Nobody sets another person's password: an admin forces
/// a reset (`POST /users/{id}/password-reset`) and the person chooses from the email.
#[utoipa::path(
    tag = "users",
    params(("id" = i64, Path, description = "Your own user id")),
    request_body = SetPassword,
    responses(
        (status = 204, description = "Password changed"),
        (status = 401, description = "Missing or wrong current password (`invalid_password`; the attempt is audited)", body = crate::error::Problem),
        (status = 403, description = "Not your own account", body = crate::error::Problem),
        (status = 404, description = "No such user in the caller's organization", body = crate::error::Problem),
        (status = 409, description = "No password set yet (`no_password`: use your invitation or a reset link)", body = crate::error::Problem),
        (status = 429, description = "Too many failed password attempts; see Retry-After", body = crate::error::Problem)
    )
)]
#[put("/users/{id}/password")]
pub async fn set_password(
    state: web::Data<AppState>,
    ctx: AuthContext,
    id: web::Path<i64>,
    body: ApiJson<SetPassword>,
) -> ApiResult<HttpResponse> {
    let body = body.into_inner();
    let target = find_scoped::<user::Entity, _>(&state.db, &ctx, id.into_inner()).await?;
    ctx.require(
        target.id == ctx.user.id,
        "nobody sets another person's password; force a reset instead (POST /users/{id}/password-reset)",
    )?;
    let Some(stored) = target.password_hash.clone() else {
        return Err(ApiError::conflict(
            "no_password",
            "you have no password yet: choose one from your invitation or a reset link (POST /password-resets)",
        ));
    };
    let given = body.current_password.clone().unwrap_or_default();
    // Guessing the password here leaves the same trace, and meets the same lockout, as
    // at signing.
    let failure = Entry::new("user", target.id, crate::signing::FAILED_PASSWORD_CHANGE)
        .after(serde_json::json!({"failure": "wrong_current_password"}));
    crate::signing::check_password(&state, &ctx, given, stored, failure)
        .await
        .map_err(|err| match err {
            ApiError::InvalidPassword(_) => {
                ApiError::InvalidPassword("the current password is wrong".to_string())
            }
            other => other,
        })?;
    let hash = state
        .passwords
        .hash(ctx.org_id(), body.new_password)
        .await?;
    let now = state.clock.now();
    let txn = WriteTxn::begin(&state, &ctx).await?;
    let current = find_scoped::<user::Entity, _>(&txn, &ctx, target.id).await?;
    let updated = write_next_version::<user::Entity>(&txn, current.id, &current, now, |u| {
        u.password_hash = Some(hash);
        u.access_notice = None;
    })
    .await?;
    // The audit trail records that the password changed, never the password or its hash.
    audit_trail::append(
        &txn,
        &ctx.actor(now),
        Entry::new("user", updated.id, "set_password").after(snapshot(&UserView::from(&updated))),
    )
    .await?;
    txn.respond_empty(StatusCode::NO_CONTENT).await
}

/// Force a password reset (admins only; not for themselves): the person's password
/// stops working at once, their browser sessions and sign-in tokens end, and a reset
/// link valid one hour goes to their email. The admin never learns or sets a password.
#[utoipa::path(
    tag = "users",
    params(("id" = i64, Path, description = "User id")),
    responses(
        (status = 202, description = "Password cleared and the reset email queued", body = UserView),
        (status = 403, description = "Caller is not an admin, or targets themselves or a service account", body = crate::error::Problem),
        (status = 404, description = "No such user in the caller's organization", body = crate::error::Problem),
        (status = 409, description = "The user is deactivated (`user_inactive`)", body = crate::error::Problem)
    )
)]
#[post("/users/{id}/password-reset")]
pub async fn force_password_reset(
    state: web::Data<AppState>,
    ctx: AuthContext,
    id: web::Path<i64>,
) -> ApiResult<HttpResponse> {
    ctx.require_admin()?;
    let now = state.clock.now();
    let txn = WriteTxn::begin(&state, &ctx).await?;
    let current = find_scoped_locked::<user::Entity, _>(&txn, &ctx, id.into_inner()).await?;
    ctx.require(
        current.id != ctx.user.id,
        "change your own password with PUT /users/{id}/password",
    )?;
    ctx.require(
        !current.is_service_account,
        "a service account has no password",
    )?;
    if !current.active {
        return Err(ApiError::conflict(
            "user_inactive",
            "the user is deactivated",
        ));
    }
    let actor = ctx.actor(now);
    let before = snapshot(&UserView::from(&current));
    let updated = write_next_version::<user::Entity>(&txn, current.id, &current, now, |u| {
        u.password_hash = None;
    })
    .await?;
    audit_trail::append(
        &txn,
        &actor,
        Entry::new("user", updated.id, "force_password_reset")
            .before(before)
            .after(snapshot(&UserView::from(&updated))),
    )
    .await?;
    crate::accounts::end_sessions(&txn, &actor, updated.id, "password_reset").await?;
    crate::accounts::send_reset(
        &txn,
        &actor,
        &updated,
        crate::accounts::ResetKind::Forced,
        &state.public_base_url,
    )
    .await?;
    txn.respond(StatusCode::ACCEPTED, &UserView::from(&updated))
        .await
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"password": "correct horse battery staple", "statement_accepted": true}))]
pub struct CertifySignature {
    /// Your password (a wrong one is audited and counts towards the signing lockout).
    #[schema(min_length = 1, max_length = 256)]
    pub password: String,
    /// Must be `true`: you accept the statement "I certify that my electronic signature in
    /// cmo-orchestrator is the legally binding equivalent of my handwritten signature."
    pub statement_accepted: bool,
}

impl Validate for CertifySignature {
    fn validate(&self, c: &mut Checks) {
        c.signing_password("password", &self.password);
        if !self.statement_accepted {
            c.fail(
                "statement_accepted",
                "must_accept",
                "your signature needs the certification: send true",
            );
        }
    }
}

/// Certify, once, that your electronic signature is the legally binding equivalent of
/// your handwritten one (21 CFR 11.100): needed before your first signature. Accepting
/// an invitation or choosing a password with `certify_signature: true` does the same.
#[utoipa::path(
    tag = "users",
    params(("id" = i64, Path, description = "Your own user id")),
    request_body = CertifySignature,
    responses(
        (status = 200, description = "Certified (now, or already before)", body = UserView),
        (status = 401, description = "Wrong password (`invalid_password`; audited)", body = crate::error::Problem),
        (status = 403, description = "Not your own account", body = crate::error::Problem),
        (status = 404, description = "No such user in the caller's organization", body = crate::error::Problem),
        (status = 409, description = "No password yet (`no_password`)", body = crate::error::Problem),
        (status = 429, description = "Too many failed password attempts; see Retry-After", body = crate::error::Problem)
    )
)]
#[post("/users/{id}/signature-certification")]
pub async fn certify_signature(
    state: web::Data<AppState>,
    ctx: AuthContext,
    id: web::Path<i64>,
    body: ApiJson<CertifySignature>,
) -> ApiResult<HttpResponse> {
    let body = body.into_inner();
    let target = find_scoped::<user::Entity, _>(&state.db, &ctx, id.into_inner()).await?;
    ctx.require(
        target.id == ctx.user.id,
        "a person certifies their own signature",
    )?;
    let Some(stored) = target.password_hash.clone() else {
        return Err(ApiError::conflict(
            "no_password",
            "you have no password yet: choose one from your invitation or a reset link",
        ));
    };
    let failure = Entry::new("user", target.id, crate::signing::FAILED_PASSWORD_CHANGE)
        .after(serde_json::json!({"failure": "wrong_password_at_certification"}));
    crate::signing::check_password(&state, &ctx, body.password, stored, failure).await?;
    let txn = WriteTxn::begin(&state, &ctx).await?;
    let current = find_scoped_locked::<user::Entity, _>(&txn, &ctx, target.id).await?;
    let certified = crate::accounts::certify(&txn, &ctx.actor(state.clock.now()), current).await?;
    txn.respond(StatusCode::OK, &UserView::from(&certified))
        .await
}
