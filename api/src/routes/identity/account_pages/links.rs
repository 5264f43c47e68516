//! The pages one reaches from an emailed link: accepting an invitation and choosing a
//! password from a reset link (and asking for one).

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, get, post, web};
use mail::{FormPage, PageLink};
use serde::Deserialize;
use utoipa::IntoParams;

use super::{certification, failure, field, hidden, message, page, with_value};
use entity::organization;
use sea_orm::EntityTrait;

use crate::accounts;
use crate::csrf;
use crate::error::ApiError;
use crate::state::AppState;

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
pub async fn accept_page(
    req: HttpRequest,
    state: web::Data<AppState>,
    query: web::Query<LinkQuery>,
) -> HttpResponse {
    let token = query.token.clone().unwrap_or_default();
    match accounts::pending_invitation(&state, &token).await {
        Ok(i) => {
            let org = org_name(&state, i.org_id).await;
            page(
                &req,
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
    pub csrf: Option<String>,
}

impl csrf::Protected for ChoosePasswordForm {
    fn csrf(&self) -> Option<&str> {
        self.csrf.as_deref()
    }
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
    request_body(content = String, content_type = "application/x-www-form-urlencoded", description = "`token`, `display_name`, `password`, `password_confirm`, `certify_signature`, `csrf` (the page's form token)"),
    responses(
        (status = 200, description = "Account created: a link to sign in", body = String, content_type = "text/html"),
        (status = 410, description = "The link was used, revoked or has expired", body = String, content_type = "text/html"),
        (status = 403, description = "The form token is missing or does not match: send the form from its page again", body = String, content_type = "text/html"),
        (status = 422, description = "The form again, saying what to fix", body = String, content_type = "text/html")
    )
)]
#[post("/invitations/accept")]
pub async fn accept_submit(
    req: HttpRequest,
    state: web::Data<AppState>,
    form: csrf::CheckedForm<ChoosePasswordForm>,
) -> HttpResponse {
    let form = form.into_inner();
    let token = form.token.unwrap_or_default();
    let name = form.display_name.unwrap_or_default();
    let password = form.password.unwrap_or_default();
    let certify = form.certify_signature.is_some();
    let problem = name
        .chars()
        .any(char::is_control)
        .then(|| "Your name must be one line: no line breaks or tabs.".to_string());
    if let Some(problem) = problem.or_else(|| {
        password_problem(
            &password,
            &form.password_confirm.clone().unwrap_or_default(),
        )
    }) {
        return match accounts::pending_invitation(&state, &token).await {
            Ok(i) => {
                let org = org_name(&state, i.org_id).await;
                page(
                    &req,
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
pub async fn request_reset_page(req: HttpRequest) -> HttpResponse {
    page(&req, StatusCode::OK, &request_reset_form(None))
}

#[derive(Debug, Deserialize)]
pub struct RequestResetForm {
    pub email: Option<String>,
    pub csrf: Option<String>,
}

impl csrf::Protected for RequestResetForm {
    fn csrf(&self) -> Option<&str> {
        self.csrf.as_deref()
    }
}

/// Send the link (the answer is the same whether or not an account has the email).
#[utoipa::path(
    tag = "pages",
    security(()),
    request_body(content = String, content_type = "application/x-www-form-urlencoded", description = "`email`, `csrf` (the page's form token)"),
    responses(
        (status = 200, description = "Check your email", body = String, content_type = "text/html"),
        (status = 403, description = "The form token is missing or does not match: send the form from its page again", body = String, content_type = "text/html"),
        (status = 422, description = "The form again: not an email address", body = String, content_type = "text/html")
    )
)]
#[post("/password-reset")]
pub async fn request_reset_submit(
    req: HttpRequest,
    state: web::Data<AppState>,
    form: csrf::CheckedForm<RequestResetForm>,
) -> HttpResponse {
    let form = form.into_inner();
    let email = form.email.unwrap_or_default();
    let normalized = entity::user::normalize_email(&email);
    if !entity::user::is_plausible_email(&normalized) {
        return page(
            &req,
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
pub async fn choose_page(
    req: HttpRequest,
    state: web::Data<AppState>,
    query: web::Query<LinkQuery>,
) -> HttpResponse {
    let token = query.token.clone().unwrap_or_default();
    match accounts::pending_reset(&state, &token).await {
        Ok((_, person)) => page(&req, StatusCode::OK, &choose_form(&token, &person, None)),
        Err(err) => link_not_usable(err),
    }
}

/// Save the password chosen from a password link.
#[utoipa::path(
    tag = "pages",
    security(()),
    request_body(content = String, content_type = "application/x-www-form-urlencoded", description = "`token`, `password`, `password_confirm`, `certify_signature` (until certified once), `csrf` (the page's form token)"),
    responses(
        (status = 200, description = "Password saved: a link to sign in", body = String, content_type = "text/html"),
        (status = 410, description = "The link was used or has expired", body = String, content_type = "text/html"),
        (status = 403, description = "The form token is missing or does not match: send the form from its page again", body = String, content_type = "text/html"),
        (status = 422, description = "The form again, saying what to fix", body = String, content_type = "text/html")
    )
)]
#[post("/password-reset/choose")]
pub async fn choose_submit(
    req: HttpRequest,
    state: web::Data<AppState>,
    form: csrf::CheckedForm<ChoosePasswordForm>,
) -> HttpResponse {
    let form = form.into_inner();
    let token = form.token.unwrap_or_default();
    let password = form.password.unwrap_or_default();
    let certify = form.certify_signature.is_some();
    if let Some(problem) = password_problem(&password, &form.password_confirm.unwrap_or_default()) {
        return match accounts::pending_reset(&state, &token).await {
            Ok((_, person)) => page(
                &req,
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
