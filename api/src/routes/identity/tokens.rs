//! API tokens: issue, list, revoke.

use actix_web::{HttpResponse, delete, get, post, web};
use chrono::{DateTime, Utc};
use entity::api_token;
use entity::user;
use sea_orm::{ColumnTrait, QueryFilter};
use serde::Deserialize;
use utoipa::{IntoParams, ToSchema};

use crate::auth::{AuthContext, find_scoped, scoped};
use crate::error::{ApiError, ApiResult};
use crate::pagination::{Keyset, ListQuery, Paging};
use crate::provisioning::{self, TokenSpec};
use crate::routes::{ApiJson, Checks, Page, Validate, fetch_page};
use crate::state::AppState;
use crate::views::identity::{IssuedToken, TokenView};
use crate::write_txn::WriteTxn;
use actix_web::http::StatusCode;

impl IssuedToken {
    pub fn new(token: &api_token::Model, secret: String) -> Self {
        Self {
            token: TokenView::from(token),
            secret,
        }
    }
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"name": "LIMS dashboard", "expires_at": "2027-11-23T00:00:00Z", "read_only": true}))]
pub struct IssueToken {
    #[schema(min_length = 1, max_length = 100)]
    pub name: String,
    /// When the token stops working; must be in the future. Default: never, or the
    /// expiry of the personal token this request is made with.
    pub expires_at: Option<DateTime<Utc>>,
    /// Only reads (GET): every write answers 403. Default false; always true when the
    /// token this request is made with is read-only.
    pub read_only: Option<bool>,
    /// For a service account of your organization (admins only). Nobody creates a token
    /// for another person.
    pub user_id: Option<i64>,
}

impl Validate for IssueToken {
    fn validate(&self, c: &mut Checks) {
        c.text("name", &self.name, 1, 100);
    }
}

/// Create an API token for yourself (or, admins, for a service account).
///
/// Made with a token from `POST /sign-in` (you just gave your password), the new token is
/// yours with its own expiry. Made with a personal token, it is that token's child: it
/// never outlives it and is revoked with it.
#[utoipa::path(
    tag = "tokens",
    request_body = IssueToken,
    responses(
        (status = 201, description = "Token issued; the secret is in this response only", body = IssuedToken),
        (status = 403, description = "A token for another person (nobody may), or for a service account by a non-admin", body = crate::error::Problem),
        (status = 404, description = "No such user in the caller's organization", body = crate::error::Problem),
        (status = 409, description = "The service account is deactivated (`user_inactive`)", body = crate::error::Problem)
    )
)]
#[post("/tokens")]
pub async fn issue_token(
    state: web::Data<AppState>,
    ctx: AuthContext,
    body: ApiJson<IssueToken>,
) -> ApiResult<HttpResponse> {
    let body = body.into_inner();
    let now = state.clock.now();
    if body.expires_at.is_some_and(|at| at <= now) {
        return Err(ApiError::invalid(
            "expires_at",
            "in_the_past",
            "must be in the future: an RFC 3339 time with its offset, e.g. 2027-06-30T17:00:00Z",
        ));
    }
    let read_only = body.read_only.unwrap_or(false) || ctx.token.read_only;
    let txn = WriteTxn::begin(&state, &ctx).await?;
    let (owner, parent_token_id, expires_at) = match body.user_id {
        Some(id) if id != ctx.user.id => {
            let owner = find_scoped::<user::Entity, _>(&txn, &ctx, id).await?;
            ctx.require(
                owner.is_service_account,
                "nobody creates a token for another person: they create their own after signing in",
            )?;
            ctx.require_admin()?;
            if !owner.active {
                return Err(ApiError::conflict(
                    "user_inactive",
                    "the service account is deactivated",
                ));
            }
            // An admin's grant to an integration lives no longer than the grant it was made with.
            let (parent, expiry) = api_token::child_expiry(&ctx.token, body.expires_at);
            (owner, parent, expiry)
        }
        _ => {
            let (parent, expiry) = api_token::child_expiry(&ctx.token, body.expires_at);
            (ctx.user.clone(), parent, expiry)
        }
    };
    let (token, secret) = provisioning::issue_token(
        &txn,
        &ctx.actor(now),
        &owner,
        TokenSpec {
            name: &body.name,
            expires_at,
            kind: api_token::TokenKind::Personal,
            parent_token_id,
            read_only,
        },
    )
    .await?;
    txn.respond(StatusCode::CREATED, &IssuedToken::new(&token, secret))
        .await
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct TokenFilter {
    /// Tokens of this user (admins only for users other than the caller). Default: the caller.
    pub user_id: Option<i64>,
    /// Include revoked tokens (default false).
    pub include_revoked: Option<bool>,
}

/// List tokens (never their secrets), newest first.
#[utoipa::path(
    tag = "tokens",
    params(TokenFilter, Paging),
    responses(
        (status = 200, description = "One page of tokens", body = Page<TokenView>),
        (status = 403, description = "Only admins list the tokens of others", body = crate::error::Problem)
    )
)]
#[get("/tokens")]
pub async fn list_tokens(
    state: web::Data<AppState>,
    ctx: AuthContext,
    query: ListQuery<TokenFilter>,
) -> ApiResult<web::Json<Page<TokenView>>> {
    let filter = query.filter;
    let user_id = filter.user_id.unwrap_or(ctx.user.id);
    if user_id != ctx.user.id {
        ctx.require_admin()?;
    }
    let mut select =
        scoped::<api_token::Entity>(&ctx).filter(api_token::Column::UserId.eq(user_id));
    if !filter.include_revoked.unwrap_or(false) {
        select = select.filter(api_token::Column::RevokedAt.is_null());
    }
    let page = fetch_page(
        &state.reads,
        select,
        Keyset::desc([api_token::Column::Id]),
        &query.paging,
    )
    .await?;
    let items = &page.items;
    let items = items.iter().map(TokenView::from).collect();
    Ok(web::Json(page.with_items(items)))
}

/// Revoke a token: your own, or (admins) any of your organization. Every token created
/// with it (and theirs) is revoked too. Revoking twice is fine.
#[utoipa::path(
    tag = "tokens",
    params(("id" = i64, Path, description = "Token id")),
    responses(
        (status = 204, description = "Token revoked"),
        (status = 404, description = "No such token visible to the caller", body = crate::error::Problem)
    )
)]
#[delete("/tokens/{id}")]
pub async fn revoke_token(
    state: web::Data<AppState>,
    ctx: AuthContext,
    id: web::Path<i64>,
) -> ApiResult<HttpResponse> {
    let txn = WriteTxn::begin(&state, &ctx).await?;
    let token = find_scoped::<api_token::Entity, _>(&txn, &ctx, id.into_inner()).await?;
    // Other users' tokens are invisible to non-admins.
    if token.user_id != ctx.user.id && !ctx.user.role.is_admin() {
        return Err(ApiError::NotFound);
    }
    let now = state.clock.now();
    // Revoking twice is fine; what was created with the token goes with it.
    crate::accounts::revoke_tokens(&txn, &ctx.actor(now), vec![token.id], "revoked").await?;
    txn.respond_empty(StatusCode::NO_CONTENT).await
}
