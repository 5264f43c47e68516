//! Users of the caller's organization.

use actix_web::{HttpRequest, HttpResponse, get, patch, post, put, web};
use entity::audit_trail::{self, Entry};
use entity::{Role, user};
use sea_orm::{ColumnTrait, QueryFilter, QueryOrder};
use serde::Deserialize;
use utoipa::{IntoParams, ToSchema};

use crate::auth::{AuthContext, find_scoped, scoped};
use crate::error::{ApiError, ApiResult};
use crate::provisioning::{self, NewUser};
use crate::routes::{ApiJson, Checks, Page, Validate, fetch_page, snapshot};
use crate::state::AppState;
use crate::views::identity::UserView;
use crate::write::{Patched, optional_version, update_versioned, write_next_version};

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({
    "email": "qa.lead@acme.test", "display_name": "Quinn Alvarez", "role": "quality",
    "time_zone": "America/New_York", "phone": "+1 617 555 0142", "password": "correct horse battery staple"
}))]
pub struct CreateUser {
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
    /// Initial password (at least 12 characters). Set by an admin, it is temporary: the
    /// user must replace it with their own before signing.
    #[schema(min_length = 12, max_length = 256)]
    pub password: Option<String>,
}

impl Validate for CreateUser {
    fn validate(&self, c: &mut Checks) {
        c.email("email", &self.email);
        c.text("display_name", &self.display_name, 1, 200);
        if let Some(tz) = &self.time_zone {
            c.time_zone("time_zone", tz);
        }
        if let Some(phone) = &self.phone {
            check_phone(c, phone);
        }
        if let Some(p) = &self.password {
            c.password("password", p);
        }
    }
}

/// Add a user to the caller's organization (admins only).
#[utoipa::path(
    tag = "users",
    request_body = CreateUser,
    responses(
        (status = 201, description = "User created", body = UserView),
        (status = 403, description = "Caller is not an admin", body = crate::error::Problem),
        (status = 409, description = "A user with this email exists", body = crate::error::Problem)
    )
)]
#[post("/users")]
pub async fn create_user(
    state: web::Data<AppState>,
    ctx: AuthContext,
    body: ApiJson<CreateUser>,
) -> ApiResult<HttpResponse> {
    ctx.require_admin()?;
    let body = body.into_inner();
    let password_hash = match body.password {
        Some(p) => Some(crate::secrets::hash_password(p).await?),
        None => None,
    };
    let password_is_temporary = password_hash.is_some();
    let txn = entity::db::begin_write(&state.db).await?;
    let user = provisioning::create_user(
        &txn,
        &ctx.actor(state.clock.now()),
        NewUser {
            email: body.email,
            display_name: body.display_name,
            role: body.role,
            time_zone: body.time_zone.unwrap_or_else(|| "UTC".to_string()),
            phone: body.phone.map(|p| p.trim().to_string()),
            password_hash,
            password_is_temporary,
        },
    )
    .await?;
    txn.commit().await?;
    Ok(HttpResponse::Created().json(UserView::from(&user)))
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct UserFilter {
    pub role: Option<Role>,
    pub active: Option<bool>,
    /// Page size, 1–200 (default 50).
    pub limit: Option<u64>,
    /// Items to skip (default 0).
    pub offset: Option<u64>,
}

/// Users of the caller's organization, ordered by id.
#[utoipa::path(
    tag = "users",
    params(UserFilter),
    responses((status = 200, description = "One page of users", body = Page<UserView>))
)]
#[get("/users")]
pub async fn list_users(
    state: web::Data<AppState>,
    ctx: AuthContext,
    filter: web::Query<UserFilter>,
) -> ApiResult<web::Json<Page<UserView>>> {
    let filter = filter.into_inner();
    let mut select = scoped::<user::Entity>(&ctx).order_by_asc(user::Column::Id);
    if let Some(role) = filter.role {
        select = select.filter(user::Column::Role.eq(role));
    }
    if let Some(active) = filter.active {
        select = select.filter(user::Column::Active.eq(active));
    }
    let (items, total, limit, offset) =
        fetch_page(&state.db, select, filter.limit, filter.offset).await?;
    Ok(web::Json(Page {
        items: items.iter().map(UserView::from).collect(),
        total,
        limit,
        offset,
    }))
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
    let user = find_scoped::<user::Entity, _>(&state.db, &ctx, id.into_inner()).await?;
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
            check_phone(c, phone);
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

fn check_phone(c: &mut Checks, phone: &str) {
    let p = phone.trim();
    let allowed = p
        .chars()
        .all(|ch| ch.is_ascii_digit() || " +-().".contains(ch));
    let digits = p.chars().filter(char::is_ascii_digit).count();
    if !(5..=32).contains(&p.len()) || !allowed || digits < 5 {
        c.fail(
            "phone",
            "invalid_format",
            "5 to 32 characters of digits, spaces and + - ( ) ., with at least 5 digits",
        );
    }
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
) -> ApiResult<web::Json<UserView>> {
    let b = body.into_inner();
    let view = update_versioned::<user::Entity, _>(
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
    .await?;
    Ok(web::Json(view))
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

/// Deactivate a user (admins only, not themselves). Their tokens stop working at once;
/// their records and signatures stay.
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
) -> ApiResult<web::Json<UserView>> {
    ctx.require_admin()?;
    let body = body.into_inner();
    let header_or_body = optional_version(&req, body.version)?;
    let txn = entity::db::begin_write(&state.db).await?;
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
        txn.commit().await?;
        return Ok(web::Json(UserView::from(&current)));
    }
    let now = state.clock.now();
    let before = snapshot(&UserView::from(&current));
    let updated =
        write_next_version::<user::Entity>(&txn, current.id, &current, now, |u| u.active = false)
            .await?;
    audit_trail::append(
        &txn,
        &ctx.actor(now),
        Entry::new("user", updated.id, "deactivate")
            .before(before)
            .after(snapshot(&UserView::from(&updated)))
            .reason(Some(body.reason)),
    )
    .await?;
    txn.commit().await?;
    Ok(web::Json(UserView::from(&updated)))
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

/// Set a user's signing password. Users set their own (giving the current one if set);
/// admins may reset the password of others in their organization.
#[utoipa::path(
    tag = "users",
    params(("id" = i64, Path, description = "User id")),
    request_body = SetPassword,
    responses(
        (status = 204, description = "Password set"),
        (status = 401, description = "Missing or wrong current password (`invalid_password`; the attempt is audited)", body = crate::error::Problem),
        (status = 429, description = "Too many failed password attempts; see Retry-After", body = crate::error::Problem),
        (status = 403, description = "Not allowed to set this user's password", body = crate::error::Problem),
        (status = 404, description = "No such user in the caller's organization", body = crate::error::Problem)
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
    let is_self = target.id == ctx.user.id;
    if !is_self {
        ctx.require_admin()?;
    }
    if is_self && let Some(stored) = target.password_hash.clone() {
        let given = body.current_password.clone().unwrap_or_default();
        // Guessing the signing password here leaves the same trace, and meets the same
        // lockout, as at signing.
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
    }
    let hash = crate::secrets::hash_password(body.new_password).await?;
    let now = state.clock.now();
    let txn = entity::db::begin_write(&state.db).await?;
    let current = find_scoped::<user::Entity, _>(&txn, &ctx, target.id).await?;
    let updated = write_next_version::<user::Entity>(&txn, current.id, &current, now, |u| {
        u.password_hash = Some(hash);
        // A password someone else chose is only good for being replaced.
        u.password_is_temporary = !is_self;
    })
    .await?;
    let action = if is_self {
        "set_password"
    } else {
        "reset_password"
    };
    // The audit trail records that the password changed, never the password or its hash.
    audit_trail::append(
        &txn,
        &ctx.actor(now),
        Entry::new("user", updated.id, action).after(snapshot(&UserView::from(&updated))),
    )
    .await?;
    txn.commit().await?;
    Ok(HttpResponse::NoContent().finish())
}
