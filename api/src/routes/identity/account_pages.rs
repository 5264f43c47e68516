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
use crate::error::ApiError;
use crate::pages::html_response;
use crate::routes::identity::sign_in::client_addr;
use crate::routes::wire_name;
use crate::state::AppState;

fn field(name: &'static str, label: &'static str, kind: &'static str) -> Field {
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
fn certification() -> Field {
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

fn hidden(name: &'static str, value: &str) -> Field {
    Field {
        value: value.to_string(),
        ..field(name, "", "hidden")
    }
}

fn with_value(mut f: Field, value: &str) -> Field {
    f.value = value.to_string();
    f
}

fn page(status: StatusCode, form: &FormPage) -> HttpResponse {
    html_response(status, mail::form_page(form))
}

fn message(
    status: StatusCode,
    title: &str,
    text: &str,
    link: Option<(&str, &str)>,
) -> HttpResponse {
    let mut body = mail::page(title, text, None);
    if let Some((href, label)) = link {
        let escaped = |s: &str| {
            s.replace('&', "&amp;")
                .replace('<', "&lt;")
                .replace('"', "&quot;")
        };
        body = body.replace(
            "</body>",
            &format!(
                "<p><a href=\"{}\">{}</a></p></body>",
                escaped(href),
                escaped(label)
            ),
        );
    }
    html_response(status, body)
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
pub async fn sign_in_page(query: web::Query<NextQuery>) -> HttpResponse {
    let next = safe_next(query.next.as_deref());
    page(StatusCode::OK, &sign_in_form("", &next, None))
}

#[derive(Debug, Deserialize)]
pub struct SignInForm {
    pub email: Option<String>,
    pub password: Option<String>,
    pub next: Option<String>,
}

/// Sign in from the form: a session cookie (HttpOnly, SameSite=Lax, Secure over https;
/// ends after 30 minutes idle or 12 hours), then on to `next`.
#[utoipa::path(
    tag = "pages",
    security(()),
    request_body(content = String, content_type = "application/x-www-form-urlencoded", description = "`email`, `password`, optional `next`"),
    responses(
        (status = 303, description = "Signed in: the session cookie is set; on to `next`"),
        (status = 401, description = "The form again, saying the email or password is wrong", body = String, content_type = "text/html"),
        (status = 429, description = "Too many failed sign-ins: when to try again", body = String, content_type = "text/html")
    )
)]
#[post("/sign-in")]
pub async fn sign_in_submit(
    req: HttpRequest,
    state: web::Data<AppState>,
    form: web::Form<SignInForm>,
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
        client_addr: client_addr(&req),
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
            page(status, &sign_in_form(&email, &next, Some(text)))
        }
    }
}

/// An unexpected error on a page: a page, never JSON.
fn failure(err: ApiError) -> HttpResponse {
    tracing::warn!(%err, "account page failed");
    crate::pages::try_again("The service could not do this right now.")
}

/// Sign out: the session ends and its cookie is removed.
#[utoipa::path(
    tag = "pages",
    security(()),
    responses((status = 303, description = "Signed out; on to the sign-in page"))
)]
#[post("/sign-out")]
pub async fn sign_out(req: HttpRequest, state: web::Data<AppState>) -> HttpResponse {
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
        .all(&state.db)
        .await;
    let org = organization::Entity::find_by_id(ctx.user.org_id)
        .one(&state.db)
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
    };
    html_response(StatusCode::OK, mail::account_page(&account))
}

#[derive(Debug, Deserialize, IntoParams)]
pub struct LinkQuery {
    /// The link's secret, from the email.
    pub token: Option<String>,
}

fn accept_form(token: &str, name: &str, org: &str, error: Option<String>) -> FormPage {
    FormPage {
        title: format!("Join {org}"),
        intro: Some(
            "Choose your password: at least 12 characters. You sign in with it, and it is \
             your electronic signature on records: nobody else knows it, so never share it."
                .to_string(),
        ),
        error,
        action: "/invitations/accept".to_string(),
        fields: vec![
            hidden("token", token),
            with_value(
                field("display_name", "Your name as records show it", "text"),
                name,
            ),
            field("password", "Choose a password", "password"),
            field("password_confirm", "The same password again", "password"),
            certification(),
        ],
        button: "Create my account",
        links: Vec::new(),
    }
}

fn link_not_usable(err: ApiError) -> HttpResponse {
    match err {
        ApiError::LinkNotUsable(why) => message(
            StatusCode::GONE,
            "This link no longer works",
            &why,
            Some(("/sign-in", "Sign in")),
        ),
        other => failure(other),
    }
}

async fn org_name(state: &AppState, org_id: i64) -> String {
    organization::Entity::find_by_id(org_id)
        .one(&state.db)
        .await
        .ok()
        .flatten()
        .map(|o| o.name)
        .unwrap_or_default()
}

/// The page an invitation link opens: choose your password.
#[utoipa::path(
    tag = "pages",
    security(()),
    params(LinkQuery),
    responses(
        (status = 200, description = "The form to choose a password", body = String, content_type = "text/html"),
        (status = 410, description = "The link was used, revoked or has expired", body = String, content_type = "text/html")
    )
)]
#[get("/invitations/accept")]
pub async fn accept_page(state: web::Data<AppState>, query: web::Query<LinkQuery>) -> HttpResponse {
    let token = query.token.clone().unwrap_or_default();
    match accounts::pending_invitation(&state, &token).await {
        Ok(i) => {
            let org = org_name(&state, i.org_id).await;
            page(
                StatusCode::OK,
                &accept_form(&token, &i.display_name, &org, None),
            )
        }
        Err(err) => link_not_usable(err),
    }
}

#[derive(Debug, Deserialize)]
pub struct ChoosePasswordForm {
    pub token: Option<String>,
    pub display_name: Option<String>,
    pub password: Option<String>,
    pub password_confirm: Option<String>,
    /// Present when the certification box is ticked.
    pub certify_signature: Option<String>,
}

/// What is wrong with a chosen password, if anything.
fn password_problem(password: &str, confirm: &str) -> Option<String> {
    let mut c = crate::extract::Checks::default();
    c.password("password", password);
    match c.finish() {
        Err(ApiError::Validation(errors)) => errors
            .first()
            .map(|e| format!("The password {}.", e.message)),
        _ if password != confirm => Some("The two passwords differ.".to_string()),
        _ => None,
    }
}

/// Create the account from the invitation form.
#[utoipa::path(
    tag = "pages",
    security(()),
    request_body(content = String, content_type = "application/x-www-form-urlencoded", description = "`token`, `display_name`, `password`, `password_confirm`, `certify_signature`"),
    responses(
        (status = 200, description = "Account created: a link to sign in", body = String, content_type = "text/html"),
        (status = 410, description = "The link was used, revoked or has expired", body = String, content_type = "text/html"),
        (status = 422, description = "The form again, saying what to fix", body = String, content_type = "text/html")
    )
)]
#[post("/invitations/accept")]
pub async fn accept_submit(
    state: web::Data<AppState>,
    form: web::Form<ChoosePasswordForm>,
) -> HttpResponse {
    let form = form.into_inner();
    let token = form.token.unwrap_or_default();
    let name = form.display_name.unwrap_or_default();
    let password = form.password.unwrap_or_default();
    let certify = form.certify_signature.is_some();
    if let Some(problem) = password_problem(&password, &form.password_confirm.unwrap_or_default()) {
        return match accounts::pending_invitation(&state, &token).await {
            Ok(i) => {
                let org = org_name(&state, i.org_id).await;
                page(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    &accept_form(&token, &name, &org, Some(problem)),
                )
            }
            Err(err) => link_not_usable(err),
        };
    }
    let name: String = name.trim().chars().take(200).collect();
    match accounts::accept_invitation(&state, &token, password, Some(name), certify).await {
        Ok(person) => message(
            StatusCode::OK,
            "Your account is ready",
            &format!(
                "Welcome, {}. Sign in with {} and the password you just chose.",
                person.display_name, person.email
            ),
            Some(("/sign-in", "Sign in")),
        ),
        Err(err) => link_not_usable(err),
    }
}

fn request_reset_form(error: Option<String>) -> FormPage {
    FormPage {
        title: "Choose a new password".to_string(),
        intro: Some(
            "Give the email of your account: a link to choose a password, valid one hour, \
             goes to it."
                .to_string(),
        ),
        error,
        action: "/password-reset".to_string(),
        fields: vec![field("email", "Email", "email")],
        button: "Send me a link",
        links: vec![PageLink {
            href: "/sign-in".to_string(),
            text: "Back to sign-in".to_string(),
        }],
    }
}

/// Forgot your password: ask for a link by email.
#[utoipa::path(
    tag = "pages",
    security(()),
    responses((status = 200, description = "The form", body = String, content_type = "text/html"))
)]
#[get("/password-reset")]
pub async fn request_reset_page() -> HttpResponse {
    page(StatusCode::OK, &request_reset_form(None))
}

#[derive(Debug, Deserialize)]
pub struct RequestResetForm {
    pub email: Option<String>,
}

/// Send the link (the answer is the same whether or not an account has the email).
#[utoipa::path(
    tag = "pages",
    security(()),
    request_body(content = String, content_type = "application/x-www-form-urlencoded", description = "`email`"),
    responses(
        (status = 200, description = "Check your email", body = String, content_type = "text/html"),
        (status = 422, description = "The form again: not an email address", body = String, content_type = "text/html")
    )
)]
#[post("/password-reset")]
pub async fn request_reset_submit(
    state: web::Data<AppState>,
    form: web::Form<RequestResetForm>,
) -> HttpResponse {
    let email = form.into_inner().email.unwrap_or_default();
    let normalized = entity::user::normalize_email(&email);
    if !entity::user::is_plausible_email(&normalized) {
        return page(
            StatusCode::UNPROCESSABLE_ENTITY,
            &request_reset_form(Some("That is not an email address.".to_string())),
        );
    }
    match accounts::request_reset(&state, &normalized).await {
        Ok(()) => message(
            StatusCode::OK,
            "Check your email",
            &format!(
                "If an account has the email {normalized}, a link to choose a password is on \
                 its way. It works once, for one hour."
            ),
            None,
        ),
        Err(err) => failure(err),
    }
}

fn choose_form(token: &str, person: &entity::user::Model, error: Option<String>) -> FormPage {
    let name = &person.display_name;
    let mut fields = vec![
        hidden("token", token),
        field("password", "New password", "password"),
        field("password_confirm", "The same password again", "password"),
    ];
    if person.signature_certified_at.is_none() {
        fields.push(certification());
    }
    FormPage {
        title: format!("Choose your password, {name}"),
        intro: Some(
            "At least 12 characters. You sign in with it, and it is your electronic \
             signature on records. Choosing it signs you out everywhere else."
                .to_string(),
        ),
        error,
        action: "/password-reset/choose".to_string(),
        fields,
        button: "Save my password",
        links: Vec::new(),
    }
}

/// The page a password link opens.
#[utoipa::path(
    tag = "pages",
    security(()),
    params(LinkQuery),
    responses(
        (status = 200, description = "The form to choose a password", body = String, content_type = "text/html"),
        (status = 410, description = "The link was used or has expired", body = String, content_type = "text/html")
    )
)]
#[get("/password-reset/choose")]
pub async fn choose_page(state: web::Data<AppState>, query: web::Query<LinkQuery>) -> HttpResponse {
    let token = query.token.clone().unwrap_or_default();
    match accounts::pending_reset(&state, &token).await {
        Ok((_, person)) => page(StatusCode::OK, &choose_form(&token, &person, None)),
        Err(err) => link_not_usable(err),
    }
}

/// Save the password chosen from a password link.
#[utoipa::path(
    tag = "pages",
    security(()),
    request_body(content = String, content_type = "application/x-www-form-urlencoded", description = "`token`, `password`, `password_confirm`, `certify_signature` (until certified once)"),
    responses(
        (status = 200, description = "Password saved: a link to sign in", body = String, content_type = "text/html"),
        (status = 410, description = "The link was used or has expired", body = String, content_type = "text/html"),
        (status = 422, description = "The form again, saying what to fix", body = String, content_type = "text/html")
    )
)]
#[post("/password-reset/choose")]
pub async fn choose_submit(
    state: web::Data<AppState>,
    form: web::Form<ChoosePasswordForm>,
) -> HttpResponse {
    let form = form.into_inner();
    let token = form.token.unwrap_or_default();
    let password = form.password.unwrap_or_default();
    let certify = form.certify_signature.is_some();
    if let Some(problem) = password_problem(&password, &form.password_confirm.unwrap_or_default()) {
        return match accounts::pending_reset(&state, &token).await {
            Ok((_, person)) => page(
                StatusCode::UNPROCESSABLE_ENTITY,
                &choose_form(&token, &person, Some(problem)),
            ),
            Err(err) => link_not_usable(err),
        };
    }
    match accounts::complete_reset(&state, &token, password, certify).await {
        Ok(person) => message(
            StatusCode::OK,
            "Your password is saved",
            &format!("Sign in with {} and your new password.", person.email),
            Some(("/sign-in", "Sign in")),
        ),
        Err(err) => link_not_usable(err),
    }
}
