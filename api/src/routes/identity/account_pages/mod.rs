//! Pages for people in a browser: sign in and out, accept an invitation, reset a
//! password, see one's account. Plain server-rendered forms (no JavaScript); the rules
//! are `crate::accounts`, the same the JSON endpoints use.

use actix_web::cookie::{Cookie, SameSite, time::Duration as CookieDuration};
use actix_web::http::{StatusCode, header};
use actix_web::{HttpRequest, HttpResponse, get, post, web};
use entity::api_token::{self, TokenKind};
use entity::organization;
use mail::{AccountPage, AccountToken, Field, FormPage, PageLink};
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, QueryOrder};
use serde::Deserialize;
use utoipa::IntoParams;

use crate::accounts::{self, SignInAttempt};
use crate::auth::{SESSION_COOKIE, session_of};
use crate::csrf;
use crate::error::ApiError;
use crate::pages::html_response;
use crate::routes::wire_name;
use crate::state::AppState;

mod links;
pub use links::*;

pub(crate) fn field(name: &'static str, label: &'static str, kind: &'static str) -> Field {
    let autocomplete = match (name, kind) {
        ("email", _) => "username",
        ("password", _) if label.contains("Your password") => "current-password",
        (_, "password") => "new-password",
        (_, "text") => "name",
        _ => "off",
    };
    Field {
        name,
        label,
        kind,
        value: String::new(),
        autocomplete,
        required: kind != "hidden",
        minlength: (kind == "password" && autocomplete == "new-password")
            .then_some(entity::user::MIN_PASSWORD_LEN),
    }
}

/// The box a person ticks, once, when they set their signing password.
pub(super) fn certification() -> Field {
    Field {
        kind: "checkbox",
        required: true,
        ..field(
            "certify_signature",
            entity::signature::CERTIFICATION,
            "checkbox",
        )
    }
}

pub(crate) fn hidden(name: &'static str, value: &str) -> Field {
    Field {
        value: value.to_string(),
        ..field(name, "", "hidden")
    }
}

pub(super) fn with_value(mut f: Field, value: &str) -> Field {
    f.value = value.to_string();
    f
}

/// A form page, with this browser's form token in a hidden field (and its cookie set
/// when new): see `crate::csrf`.
pub(crate) fn page(req: &HttpRequest, status: StatusCode, form: &FormPage) -> HttpResponse {
    let token = csrf::CsrfToken::of(req);
    let mut form = form.clone();
    form.fields.push(hidden(csrf::FIELD, &token.value));
    let mut response = html_response(status, mail::form_page(&form));
    token.set_on(&mut response, served_over_https(req));
    response
}

fn served_over_https(req: &HttpRequest) -> bool {
    req.app_data::<web::Data<AppState>>()
        .is_some_and(|s| s.public_base_url.starts_with("https://"))
}

pub(crate) fn message(
    status: StatusCode,
    title: &str,
    text: &str,
    link: Option<(&str, &str)>,
) -> HttpResponse {
    html_response(status, mail::page_with_link(title, text, None, link))
}

/// Only a path on this site: an absolute or protocol-relative `next` would send a
/// person who just signed in to someone else's site.
fn safe_next(next: Option<&str>) -> String {
    match next {
        Some(n) if n.starts_with('/') && !n.starts_with("//") && !n.contains('\\') => n.to_string(),
        _ => "/account".to_string(),
    }
}

fn sign_in_form(email: &str, next: &str, error: Option<String>) -> FormPage {
    FormPage {
        title: "Sign in".to_string(),
        intro: None,
        error,
        action: "/sign-in".to_string(),
        fields: vec![
            with_value(field("email", "Email", "email"), email),
            field("password", "Your password", "password"),
            hidden("next", next),
        ],
        button: "Sign in",
        links: vec![PageLink {
            href: "/password-reset".to_string(),
            text: "Forgot your password, or never chose one?".to_string(),
        }],
    }
}

#[derive(Debug, Deserialize, IntoParams)]
pub struct NextQuery {
    /// Where to go after signing in (a path on this site; default `/account`).
    pub next: Option<String>,
}

/// The sign-in page.
#[utoipa::path(
    tag = "pages",
    security(()),
    params(NextQuery),
    responses((status = 200, description = "Sign-in form", body = String, content_type = "text/html"))
)]
#[get("/sign-in")]
pub async fn sign_in_page(req: HttpRequest, query: web::Query<NextQuery>) -> HttpResponse {
    let next = safe_next(query.next.as_deref());
    page(&req, StatusCode::OK, &sign_in_form("", &next, None))
}

#[derive(Debug, Deserialize)]
pub struct SignInForm {
    pub email: Option<String>,
    pub password: Option<String>,
    pub next: Option<String>,
    pub csrf: Option<String>,
}

/// Sign in from the form: a session cookie (HttpOnly, SameSite=Lax, Secure over https;
/// ends after 30 minutes idle or 12 hours), then on to `next`.
#[utoipa::path(
    tag = "pages",
    security(()),
    request_body(content = String, content_type = "application/x-www-form-urlencoded", description = "`email`, `password`, optional `next`, and `csrf`: the form token of the page (its `cmo_csrf` cookie must match)"),
    responses(
        (status = 303, description = "Signed in: the session cookie is set; on to `next`"),
        (status = 403, description = "The form token is missing or does not match: a page says to send the form from the page again", body = String, content_type = "text/html"),
        (status = 401, description = "The form again, saying the email or password is wrong", body = String, content_type = "text/html"),
        (status = 429, description = "Too many failed sign-ins: when to try again", body = String, content_type = "text/html")
    )
)]
#[post("/sign-in")]
pub async fn sign_in_submit(
    req: HttpRequest,
    state: web::Data<AppState>,
    form: csrf::CheckedForm<SignInForm>,
) -> HttpResponse {
    let form = form.into_inner();
    let email = form.email.unwrap_or_default();
    let next = safe_next(form.next.as_deref());
    let attempt = SignInAttempt {
        email: email.chars().take(254).collect(),
        password: form
            .password
            .unwrap_or_default()
            .chars()
            .take(256)
            .collect(),
        organization_id: None,
        client_addr: state.trusted_proxies.client_addr(&req),
    };
    match accounts::sign_in(&state, attempt, TokenKind::Browser).await {
        Ok(signed) => {
            let cookie = Cookie::build(SESSION_COOKIE, signed.secret)
                .path("/")
                .http_only(true)
                .same_site(SameSite::Lax)
                .secure(state.public_base_url.starts_with("https://"))
                .max_age(CookieDuration::seconds(
                    api_token::BROWSER_ABSOLUTE.num_seconds(),
                ))
                .finish();
            HttpResponse::SeeOther()
                .cookie(cookie)
                .insert_header((header::LOCATION, next))
                .insert_header(("Cache-Control", "no-store"))
                .finish()
        }
        Err(err) => {
            let status = match &err {
                ApiError::TooManyAttempts { .. } => StatusCode::TOO_MANY_REQUESTS,
                ApiError::Validation(_) | ApiError::Unauthorized(_) => StatusCode::UNAUTHORIZED,
                _ => return failure(err),
            };
            let text = match &err {
                ApiError::Validation(_) => {
                    "This email has accounts in several organizations; sign in through the API \
                     with organization_id."
                        .to_string()
                }
                other => other.to_string(),
            };
            page(&req, status, &sign_in_form(&email, &next, Some(text)))
        }
    }
}

/// An unexpected error on a page: a page, never JSON.
pub(super) fn failure(err: ApiError) -> HttpResponse {
    tracing::warn!(%err, "account page failed");
    crate::pages::try_again("The service could not do this right now.")
}

/// A form whose only field is its token.
#[derive(Debug, Deserialize)]
pub struct CsrfForm {
    pub csrf: Option<String>,
}

impl csrf::Protected for CsrfForm {
    fn csrf(&self) -> Option<&str> {
        self.csrf.as_deref()
    }
}

impl csrf::Protected for SignInForm {
    fn csrf(&self) -> Option<&str> {
        self.csrf.as_deref()
    }
}

/// Sign out: the session ends and its cookie is removed.
#[utoipa::path(
    tag = "pages",
    security(()),
    request_body(content = String, content_type = "application/x-www-form-urlencoded", description = "`csrf`: the form token of the account page"),
    responses(
        (status = 303, description = "Signed out; on to the sign-in page"),
        (status = 403, description = "The form token is missing or does not match", body = String, content_type = "text/html")
    )
)]
#[post("/sign-out")]
pub async fn sign_out(
    req: HttpRequest,
    state: web::Data<AppState>,
    _form: csrf::CheckedForm<CsrfForm>,
) -> HttpResponse {
    if let Some(ctx) = session_of(&req, &state).await {
        let now = state.clock.now();
        let ended = async {
            let txn = entity::db::begin_write(&state.db).await?;
            accounts::revoke_tokens(&txn, &ctx.actor(now), vec![ctx.token.id], "signed_out")
                .await?;
            txn.commit().await?;
            Ok::<_, ApiError>(())
        };
        if let Err(err) = ended.await {
            return failure(err);
        }
    }
    let mut gone = Cookie::build(SESSION_COOKIE, "").path("/").finish();
    gone.make_removal();
    HttpResponse::SeeOther()
        .cookie(gone)
        .insert_header((header::LOCATION, "/sign-in"))
        .finish()
}

/// The signed-in person's account: who they are and their API tokens.
#[utoipa::path(
    tag = "pages",
    security(()),
    responses(
        (status = 200, description = "The account page", body = String, content_type = "text/html"),
        (status = 303, description = "Not signed in: on to the sign-in page")
    )
)]
#[get("/account")]
pub async fn account(req: HttpRequest, state: web::Data<AppState>) -> HttpResponse {
    let Some(ctx) = session_of(&req, &state).await else {
        return HttpResponse::SeeOther()
            .insert_header((header::LOCATION, "/sign-in?next=/account"))
            .finish();
    };
    let tokens = api_token::Entity::find()
        .filter(api_token::Column::UserId.eq(ctx.user.id))
        .filter(api_token::Column::Kind.eq(TokenKind::Personal))
        .filter(api_token::Column::RevokedAt.is_null())
        .order_by_desc(api_token::Column::Id)
        .all(&state.reads)
        .await;
    let org = organization::Entity::find_by_id(ctx.user.org_id)
        .one(&state.reads)
        .await;
    let (Ok(tokens), Ok(org)) = (tokens, org) else {
        return crate::pages::try_again("Your account cannot be shown right now.");
    };
    let zone: chrono_tz::Tz = ctx.user.time_zone.parse().unwrap_or(chrono_tz::UTC);
    let local = |t: chrono::DateTime<chrono::Utc>| {
        t.with_timezone(&zone)
            .format("%Y-%m-%d %H:%M %Z")
            .to_string()
    };
    let now = state.clock.now();
    let form_token = csrf::CsrfToken::of(&req);
    let account = AccountPage {
        name: ctx.user.display_name.clone(),
        email: ctx.user.email.clone(),
        role: wire_name(&ctx.user.role).replace('_', " "),
        organization: org.map(|o| o.name).unwrap_or_default(),
        time_zone: ctx.user.time_zone.clone(),
        tokens: tokens
            .iter()
            .filter(|t| api_token::check_usable(t, now).is_ok())
            .map(|t| AccountToken {
                name: t.name.clone(),
                prefix: t.token_prefix.clone(),
                created: local(t.created_at),
                expires: t.expires_at.map_or("never".to_string(), local),
                scope: if t.read_only {
                    "read only"
                } else {
                    "read and write"
                },
            })
            .collect(),
        csrf: form_token.value.clone(),
    };
    let mut response = html_response(StatusCode::OK, mail::account_page(&account));
    form_token.set_on(&mut response, served_over_https(&req));
    response
}
