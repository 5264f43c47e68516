//! Signing in with one's own password (a short-lived bearer token for API clients) and
//! resetting a forgotten password by email. The browser pages do the same through
//! `crate::accounts`.

use actix_web::{HttpRequest, HttpResponse, post, web};
use entity::api_token::TokenKind;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::accounts::{self, SignInAttempt};
use crate::error::ApiResult;
use crate::routes::{ApiJson, Checks, Validate};
use crate::state::AppState;
use crate::views::identity::{TokenView, UserView};

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"email": "qa.lead@acme.test", "password": "correct horse battery staple"}))]
pub struct SignIn {
    #[schema(max_length = 254)]
    pub email: String,
    #[schema(min_length = 1, max_length = 256)]
    pub password: String,
    /// Only when the same email has accounts in several organizations.
    pub organization_id: Option<i64>,
}

impl Validate for SignIn {
    fn validate(&self, c: &mut Checks) {
        c.text("email", &self.email, 1, 254);
        c.signing_password("password", &self.password);
    }
}

/// A signed-in person's short-lived token (12 h) and who they are.
#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({
    "token": {"id": 9, "user_id": 3, "issued_by_user_id": 3, "name": "sign-in", "token_prefix": "cmo_7c1d9e2a",
              "kind": "sign_in", "parent_token_id": null, "read_only": false,
              "created_at": "2026-11-23T09:00:00Z", "expires_at": "2026-11-23T21:00:00Z",
              "revoked_at": null, "revoked_reason": null, "last_used_at": null},
    "secret": "cmo_7c1d9e2a4b6f8d0c2e4a6b8d0f2e4c6a8b0d2f4e6c8a0b2d4f6e8c0a2b4d6f8e0c",
    "user": {"id": 3, "org_id": 1, "email": "qa.lead@acme.test", "display_name": "Quinn Alvarez",
             "role": "quality", "time_zone": "America/New_York", "phone": null, "active": true,
             "has_password": true, "is_service_account": false, "signature_certified_at": "2026-11-23T09:00:00Z",
             "created_at": "2026-11-23T09:00:00Z", "updated_at": "2026-11-23T09:00:00Z", "version": 1}
}))]
pub struct SignedInView {
    pub token: TokenView,
    /// Send as `Authorization: Bearer <secret>`; shown only here. Tokens you create with
    /// it (`POST /tokens`) are your own, with their own expiry.
    pub secret: String,
    pub user: UserView,
}

/// Sign in with your email and your own password: a bearer token valid 12 hours.
/// Five failures for one account (or twenty from one address) within 15 minutes pause
/// sign-in for it (429 with `Retry-After`); signing records is not affected.
#[utoipa::path(
    tag = "tokens",
    security(()),
    request_body = SignIn,
    responses(
        (status = 201, description = "Signed in", body = SignedInView),
        (status = 401, description = "Wrong email or password (the same answer whether or not the account exists)", body = crate::error::Problem),
        (status = 422, description = "Invalid fields, or the email has accounts in several organizations (`ambiguous_account`: give `organization_id`)", body = crate::error::Problem),
        (status = 429, description = "Too many failed sign-ins; see Retry-After", body = crate::error::Problem)
    )
)]
#[post("/sign-in")]
pub async fn sign_in(
    req: HttpRequest,
    state: web::Data<AppState>,
    body: ApiJson<SignIn>,
) -> ApiResult<HttpResponse> {
    let b = body.into_inner();
    let signed = accounts::sign_in(
        &state,
        SignInAttempt {
            email: b.email,
            password: b.password,
            organization_id: b.organization_id,
            client_addr: state.trusted_proxies.client_addr(&req),
        },
        TokenKind::SignIn,
    )
    .await?;
    Ok(HttpResponse::Created().json(SignedInView {
        token: TokenView::from(&signed.token),
        secret: signed.secret,
        user: UserView::from(&signed.user),
    }))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"email": "qa.lead@acme.test"}))]
pub struct RequestPasswordReset {
    #[schema(max_length = 254, format = Email)]
    pub email: String,
}

impl Validate for RequestPasswordReset {
    fn validate(&self, c: &mut Checks) {
        c.email("email", &self.email);
    }
}

/// Forgot your password: a single-use link, valid one hour, goes to the email if an
/// active account has it (the answer is the same either way).
#[utoipa::path(
    tag = "users",
    security(()),
    request_body = RequestPasswordReset,
    responses((status = 202, description = "If an account has this email, a link is on its way"))
)]
#[post("/password-resets")]
pub async fn request_password_reset(
    state: web::Data<AppState>,
    body: ApiJson<RequestPasswordReset>,
) -> ApiResult<HttpResponse> {
    accounts::request_reset(&state, &body.into_inner().email).await?;
    Ok(HttpResponse::Accepted().finish())
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({
    "token": "5e2f0c9a7b1d4e3f8a6c2b0d9e7f5a3c1b8d6e4f2a0c9b7d5e3f1a8c6b4d2e0f",
    "new_password": "correct horse battery staple", "certify_signature": true
}))]
pub struct CompletePasswordReset {
    /// The `token` of the reset link.
    #[schema(min_length = 1, max_length = 128)]
    pub token: String,
    #[schema(min_length = 12, max_length = 256)]
    pub new_password: String,
    /// `true` certifies, once, that your electronic signature is the legally binding
    /// equivalent of your handwritten one (if you have not yet).
    pub certify_signature: Option<bool>,
}

impl Validate for CompletePasswordReset {
    fn validate(&self, c: &mut Checks) {
        c.text("token", &self.token, 1, 128);
        c.password("new_password", &self.new_password);
    }
}

/// Choose a new password with the token of a reset link. Ends your browser sessions and
/// sign-in tokens (your personal tokens stay).
#[utoipa::path(
    tag = "users",
    security(()),
    request_body = CompletePasswordReset,
    responses(
        (status = 204, description = "Password set"),
        (status = 410, description = "The link was used or has expired (`link_not_usable`)", body = crate::error::Problem)
    )
)]
#[post("/password-resets/complete")]
pub async fn complete_password_reset(
    state: web::Data<AppState>,
    body: ApiJson<CompletePasswordReset>,
) -> ApiResult<HttpResponse> {
    let b = body.into_inner();
    accounts::complete_reset(
        &state,
        &b.token,
        b.new_password,
        b.certify_signature.unwrap_or(false),
    )
    .await?;
    Ok(HttpResponse::NoContent().finish())
}
