//! Authentication (bearer tokens) and the tenancy guard.
//!
//! Every authenticated handler takes an [`AuthContext`]. Data access goes through
//! [`scoped`] / [`find_scoped`], which add the caller's tenancy condition to the query, so
//! another organization's record is simply not found (404) rather than forbidden.

use std::future::Future;
use std::pin::Pin;

use actix_web::dev::Payload;
use actix_web::http::header;
use actix_web::{FromRequest, HttpRequest, web};
use chrono::{DateTime, Utc};
use entity::audit_trail::Actor;
use entity::{
    api_token, audit_event, milestone, organization, program, signature, team_member, user,
};
use sea_orm::sea_query::IntoCondition;
use sea_orm::{
    ColumnTrait, Condition, ConnectionTrait, EntityTrait, PrimaryKeyTrait, QueryFilter, Select,
};

use crate::error::{ApiError, ApiResult};
use crate::request_id;
use crate::state::AppState;

/// The authenticated caller: user, organization and the token used.
#[derive(Debug, Clone)]
pub struct AuthContext {
    pub user: user::Model,
    pub org: organization::Model,
    pub token: api_token::Model,
    pub request_id: Option<String>,
    /// Base URL for links in emails this request queues.
    pub public_base_url: std::sync::Arc<str>,
    /// The audit chain keys this request's changes are recorded with.
    pub chain_keys: entity::audit::ChainKeys,
    /// The request's `Idempotency-Key`, which its write transaction records
    /// ([`crate::write_txn::WriteTxn`]).
    pub idempotency: Option<std::sync::Arc<crate::idempotency::claim::Claim>>,
}

impl AuthContext {
    pub fn org_id(&self) -> i64 {
        self.org.id
    }

    /// Audit context for a change made now by this caller.
    pub fn actor(&self, at: chrono::DateTime<chrono::Utc>) -> Actor {
        Actor {
            org_id: self.org.id,
            user_id: Some(self.user.id),
            request_id: self.request_id.clone(),
            at,
            chain_keys: self.chain_keys.clone(),
        }
    }

    /// The caller as a signer (after their password was re-checked).
    pub fn signer(&self) -> entity::signature::Signer {
        entity::signature::Signer {
            org_id: self.org.id,
            user_id: self.user.id,
            name: self.user.display_name.clone(),
            token_id: self.token.id,
            request_id: self.request_id.clone(),
            chain_keys: self.chain_keys.clone(),
        }
    }

    pub fn caller(&self) -> entity::access::Caller {
        entity::access::Caller {
            user_id: self.user.id,
            org_id: self.org.id,
            role: self.user.role,
        }
    }

    /// 403 with `why` unless `allowed`.
    pub fn require(&self, allowed: bool, why: &str) -> ApiResult<()> {
        if allowed {
            Ok(())
        } else {
            Err(ApiError::Forbidden(why.to_string()))
        }
    }

    /// The permission matrix (`entity::access`) for this caller on a program: 403 with
    /// the rule when refused, 404 when the caller is on neither side.
    pub fn permit(
        &self,
        action: entity::access::Action,
        sides: entity::access::ProgramSides,
    ) -> ApiResult<()> {
        match sides.side_of(self.org_id()) {
            None => Err(ApiError::NotFound),
            Some(side) if entity::access::permits(self.user.role, side, action) => Ok(()),
            Some(_) => Err(ApiError::Forbidden(
                entity::access::refusal(action).to_string(),
            )),
        }
    }

    pub fn require_admin(&self) -> ApiResult<()> {
        if self.user.role.is_admin() {
            Ok(())
        } else {
            Err(ApiError::Forbidden(
                "this action needs the admin role".to_string(),
            ))
        }
    }
}

use crate::token_use::LAST_USED_GRANULARITY;

/// Records a token's use off the request's path: a read must not wait for this write
/// (on SQLite the one writer may be busy for seconds), and a failure costs only the
/// timestamp.
fn record_use(state: &AppState, token: i64, now: DateTime<Utc>) {
    if !state.token_use.start(token, now) {
        return;
    }
    let db = state.db.clone();
    actix_web::rt::spawn(async move {
        let update = api_token::Entity::update_many()
            .col_expr(
                api_token::Column::LastUsedAt,
                sea_orm::sea_query::Expr::value(Some(now)),
            )
            .filter(api_token::Column::Id.eq(token))
            .exec(&db)
            .await;
        if let Err(err) = update {
            tracing::warn!(%err, token, "could not record token use");
        }
    });
}

impl FromRequest for AuthContext {
    type Error = ApiError;
    type Future = Pin<Box<dyn Future<Output = Result<Self, ApiError>>>>;

    fn from_request(req: &HttpRequest, _payload: &mut Payload) -> Self::Future {
        let state = req.app_data::<web::Data<AppState>>().cloned();
        let secret = bearer_secret(req);
        let idempotency = actix_web::HttpMessage::extensions(req)
            .get::<std::sync::Arc<crate::idempotency::claim::Claim>>()
            .cloned();
        let reads_only = matches!(
            *req.method(),
            actix_web::http::Method::GET | actix_web::http::Method::HEAD
        );
        Box::pin(async move {
            let state = state.ok_or_else(|| ApiError::internal("application state missing"))?;
            let secret = secret?;
            let mut ctx = authenticate(&state, &secret, Credential::Bearer).await?;
            ctx.idempotency = idempotency;
            let span = tracing::Span::current();
            span.record("user_id", ctx.user.id);
            span.record("org_id", ctx.org.id);
            if ctx.token.read_only && !reads_only {
                return Err(ApiError::Forbidden(
                    "this token is read-only: it may only read (GET)".to_string(),
                ));
            }
            Ok(ctx)
        })
    }
}

fn bearer_secret(req: &HttpRequest) -> ApiResult<String> {
    let value = req
        .headers()
        .get(header::AUTHORIZATION)
        .ok_or_else(|| {
            ApiError::Unauthorized("missing Authorization: Bearer <token> header".to_string())
        })?
        .to_str()
        .map_err(|_| ApiError::Unauthorized("malformed Authorization header".to_string()))?;
    let (scheme, token) = value
        .split_once(' ')
        .ok_or_else(|| ApiError::Unauthorized("malformed Authorization header".to_string()))?;
    if !scheme.eq_ignore_ascii_case("bearer") || token.trim().is_empty() {
        return Err(ApiError::Unauthorized(
            "the Authorization header must use the Bearer scheme".to_string(),
        ));
    }
    Ok(token.trim().to_string())
}

/// The user a request's bearer token belongs to, if the token is valid.
pub async fn user_id_of(req: &HttpRequest, state: &AppState) -> Option<i64> {
    let secret = bearer_secret(req).ok()?;
    authenticate(state, &secret, Credential::Bearer)
        .await
        .ok()
        .map(|ctx| ctx.user.id)
}

/// How a secret was presented: as an API bearer token, or as the browser session cookie.
/// Each only works where it belongs: a session cookie is never a bearer token (a page's
/// script-free forms cannot be replayed against the API), and a bearer token never
/// signs a browser in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Credential {
    Bearer,
    SessionCookie,
}

/// The browser session cookie's name.
pub const SESSION_COOKIE: &str = "cmo_session";

/// The person signed in to this browser, if the session cookie holds a live session.
pub async fn session_of(req: &HttpRequest, state: &AppState) -> Option<AuthContext> {
    let cookie = req.cookie(SESSION_COOKIE)?;
    authenticate(state, cookie.value(), Credential::SessionCookie)
        .await
        .ok()
}

pub async fn authenticate(
    state: &AppState,
    secret: &str,
    credential: Credential,
) -> ApiResult<AuthContext> {
    let invalid = || ApiError::Unauthorized("invalid token".to_string());
    if secret.len() > 200 {
        return Err(invalid());
    }
    let now = state.clock.now();
    // Token, user and organization in one round trip: every authenticated request
    // pays for this.
    let (token, user, org) = api_token::Entity::find()
        .filter(api_token::Column::TokenHash.eq(api_token::hash_secret(secret)))
        .find_also_related(user::Entity)
        .find_also(user::Entity, organization::Entity)
        .one(&state.reads)
        .await?
        .ok_or_else(invalid)?;
    let user = user.ok_or_else(invalid)?;
    let is_session = token.kind == api_token::TokenKind::Browser;
    if is_session != (credential == Credential::SessionCookie) {
        return Err(invalid());
    }
    api_token::check_usable(&token, now).map_err(|why| ApiError::Unauthorized(why.to_string()))?;
    if !user.active {
        return Err(ApiError::Unauthorized(
            "the user is deactivated".to_string(),
        ));
    }
    let org = org.ok_or_else(invalid)?;
    // A deactivated organization (a finished qualification run) keeps its records but
    // nobody acts in it any more.
    if org.deactivated_at.is_some() {
        return Err(ApiError::Unauthorized(
            "the organization is deactivated".to_string(),
        ));
    }
    let mut token = token;
    if token
        .last_used_at
        .is_none_or(|t| now - t >= LAST_USED_GRANULARITY)
    {
        record_use(state, token.id, now);
        token.last_used_at = Some(now);
    }
    Ok(AuthContext {
        user,
        org,
        token,
        request_id: request_id::current(),
        public_base_url: state.public_base_url.clone(),
        chain_keys: state.chain_keys.clone(),
        idempotency: None,
    })
}

/// The person a personal page link was sent to, reading that page: the same scope as
/// their own requests, through a credential that exists only for this request and can
/// only read (it is no token: never stored, never accepted by the API).
pub fn reading_by_link(
    state: &AppState,
    user: user::Model,
    org: organization::Model,
    expires_at: Option<chrono::DateTime<chrono::Utc>>,
) -> AuthContext {
    let now = state.clock.now();
    AuthContext {
        token: api_token::Model {
            id: 0,
            org_id: org.id,
            user_id: user.id,
            issued_by_user_id: None,
            name: "personal page link".to_string(),
            token_prefix: String::new(),
            token_hash: String::new(),
            created_at: now,
            expires_at,
            revoked_at: None,
            last_used_at: Some(now),
            kind: api_token::TokenKind::Browser,
            parent_token_id: None,
            read_only: true,
            revoked_reason: None,
        },
        user,
        org,
        request_id: request_id::current(),
        public_base_url: state.public_base_url.clone(),
        chain_keys: state.chain_keys.clone(),
        idempotency: None,
    }
}

/// An entity whose rows belong to tenants. `tenant_condition` says which rows the caller
/// may see; it is the only place tenancy is decided for that entity.
pub trait TenantScoped: EntityTrait {
    fn tenant_condition(ctx: &AuthContext) -> Condition;
}

impl TenantScoped for organization::Entity {
    fn tenant_condition(ctx: &AuthContext) -> Condition {
        organization::visible_to(&ctx.org)
    }
}

impl TenantScoped for user::Entity {
    fn tenant_condition(ctx: &AuthContext) -> Condition {
        user::Column::OrgId.eq(ctx.org_id()).into_condition()
    }
}

impl TenantScoped for api_token::Entity {
    fn tenant_condition(ctx: &AuthContext) -> Condition {
        api_token::Column::OrgId.eq(ctx.org_id()).into_condition()
    }
}

impl TenantScoped for entity::invitation::Entity {
    fn tenant_condition(ctx: &AuthContext) -> Condition {
        entity::invitation::Column::OrgId
            .eq(ctx.org_id())
            .into_condition()
    }
}

/// An organization's own trail, and the trails of the duplicates merged into it (each
/// stays chained under its own id).
impl TenantScoped for audit_event::Entity {
    fn tenant_condition(ctx: &AuthContext) -> Condition {
        Condition::any()
            .add(audit_event::Column::OrgId.eq(ctx.org_id()))
            .add(audit_event::Column::OrgId.in_subquery(merged_into(ctx.org_id())))
    }
}

/// Ids of the organizations merged into `org_id`.
pub fn merged_into(org_id: i64) -> sea_orm::sea_query::SelectStatement {
    sea_orm::sea_query::Query::select()
        .column(organization::Column::Id)
        .from(organization::Entity)
        .and_where(organization::Column::MergedIntoOrgId.eq(org_id))
        .to_owned()
}

impl TenantScoped for entity::audit::checkpoint::Entity {
    fn tenant_condition(ctx: &AuthContext) -> Condition {
        entity::audit::checkpoint::Column::OrgId
            .eq(ctx.org_id())
            .into_condition()
    }
}

impl TenantScoped for signature::Entity {
    fn tenant_condition(ctx: &AuthContext) -> Condition {
        signature::Column::OrgId.eq(ctx.org_id()).into_condition()
    }
}

impl TenantScoped for program::Entity {
    fn tenant_condition(ctx: &AuthContext) -> Condition {
        program::visible_to(ctx.org_id())
    }
}

/// Ids of the programs the caller may see, for scoping a program's children.
pub fn visible_programs(ctx: &AuthContext) -> sea_orm::sea_query::SelectStatement {
    sea_orm::sea_query::Query::select()
        .column(program::Column::Id)
        .from(program::Entity)
        .cond_where(program::visible_to(ctx.org_id()))
        .to_owned()
}

impl TenantScoped for milestone::Entity {
    fn tenant_condition(ctx: &AuthContext) -> Condition {
        milestone::Column::ProgramId
            .in_subquery(visible_programs(ctx))
            .into_condition()
    }
}

/// Through the milestone: another program's checklist item is simply not found.
impl TenantScoped for entity::gate::item::Entity {
    fn tenant_condition(ctx: &AuthContext) -> Condition {
        entity::gate::item::Column::MilestoneId
            .in_subquery(
                sea_orm::sea_query::Query::select()
                    .column(milestone::Column::Id)
                    .from(milestone::Entity)
                    .cond_where(milestone::Entity::tenant_condition(ctx))
                    .to_owned(),
            )
            .into_condition()
    }
}

/// A sponsor reads the profiles of the CMOs it is (or was) connected to, with its own
/// side of each relationship; a CMO its own only.
impl TenantScoped for entity::cmo::Entity {
    fn tenant_condition(ctx: &AuthContext) -> Condition {
        Condition::any()
            .add(entity::cmo::Column::OrgId.eq(ctx.org_id()))
            .add(
                entity::cmo::Column::OrgId
                    .in_subquery(entity::relationship::known_cmos_of(ctx.org_id())),
            )
    }
}

/// A relationship is read by its sponsor, and by its CMO once it reached it.
impl TenantScoped for entity::relationship::Entity {
    fn tenant_condition(ctx: &AuthContext) -> Condition {
        entity::relationship::party_to(ctx.org_id())
    }
}

impl TenantScoped for entity::escalation::Entity {
    fn tenant_condition(ctx: &AuthContext) -> Condition {
        entity::escalation::Column::ProgramId
            .in_subquery(visible_programs(ctx))
            .into_condition()
    }
}

impl TenantScoped for team_member::Entity {
    fn tenant_condition(ctx: &AuthContext) -> Condition {
        team_member::Column::ProgramId
            .in_subquery(visible_programs(ctx))
            .into_condition()
    }
}

/// `SELECT` of the rows of `E` the caller may see.
pub fn scoped<E: TenantScoped>(ctx: &AuthContext) -> Select<E> {
    E::find().filter(E::tenant_condition(ctx))
}

/// Like [`find_scoped`], and locks the row for the rest of the transaction (`FOR UPDATE`
/// on PostgreSQL; SQLite's `BEGIN IMMEDIATE` already serializes writers). Checks that
/// read several rows before writing take this lock first, so they cannot interleave.
pub async fn find_scoped_locked<E, C>(conn: &C, ctx: &AuthContext, id: i64) -> ApiResult<E::Model>
where
    E: TenantScoped,
    C: ConnectionTrait,
    <E::PrimaryKey as PrimaryKeyTrait>::ValueType: From<i64>,
{
    use sea_orm::QuerySelect;
    E::find_by_id(id)
        .filter(E::tenant_condition(ctx))
        .lock_exclusive()
        .one(conn)
        .await?
        .ok_or(ApiError::NotFound)
}

/// One row by id, or 404 when it does not exist *or* belongs to another tenant.
pub async fn find_scoped<E, C>(conn: &C, ctx: &AuthContext, id: i64) -> ApiResult<E::Model>
where
    E: TenantScoped,
    C: ConnectionTrait,
    <E::PrimaryKey as PrimaryKeyTrait>::ValueType: From<i64>,
{
    E::find_by_id(id)
        .filter(E::tenant_condition(ctx))
        .one(conn)
        .await?
        .ok_or(ApiError::NotFound)
}
