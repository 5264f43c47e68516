//! The two write shapes every resource shares: a versioned update (PATCH) and an audited
//! create. Handlers keep only what is theirs: who may, which fields, how it reads.

use actix_web::http::StatusCode;
use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse};
use entity::audit_trail::{self, Actor, Entry};
use entity::workflow::{self, Versioned};
use sea_orm::{
    ActiveModelBehavior, ActiveModelTrait, ConnectionTrait, DatabaseTransaction, EntityTrait,
    IntoActiveModel, Iterable, ModelTrait, PrimaryKeyToColumn, PrimaryKeyTrait,
};
use serde::Serialize;

use crate::auth::{AuthContext, TenantScoped, find_scoped};
use crate::error::{ApiError, ApiResult};
use crate::state::AppState;
use crate::views::snapshot;
use crate::write_txn::WriteTxn;

/// The version a client says it saw, when it says one: `If-Match` or the body's
/// `version` (checked when given; if both are given they must agree).
pub fn optional_version(req: &HttpRequest, body_version: Option<i32>) -> ApiResult<Option<i32>> {
    if body_version.is_none() && !req.headers().contains_key(header::IF_MATCH) {
        return Ok(None);
    }
    expected_version(req, body_version).map(Some)
}

/// The version a client based its update on: `If-Match` (`"3"` or `W/"3"`) or the body's
/// `version`. One of them is required; if both are given they must agree.
pub fn expected_version(req: &HttpRequest, body_version: Option<i32>) -> ApiResult<i32> {
    let header_version = match req.headers().get(header::IF_MATCH) {
        None => None,
        Some(value) => {
            let raw = value.to_str().unwrap_or("").trim();
            let raw = raw.strip_prefix("W/").unwrap_or(raw).trim_matches('"');
            Some(raw.parse::<i32>().map_err(|_| {
                ApiError::invalid(
                    "If-Match",
                    "invalid_version",
                    "If-Match must be the resource version, e.g. \"3\"",
                )
            })?)
        }
    };
    match (header_version, body_version) {
        (Some(h), Some(b)) if h != b => Err(ApiError::invalid(
            "version",
            "version_mismatch",
            "If-Match and the body's version disagree",
        )),
        (Some(v), _) | (None, Some(v)) => Ok(v),
        (None, None) => Err(ApiError::invalid(
            "version",
            "required",
            "send the version you are updating, in the body or as If-Match",
        )),
    }
}

/// What a PATCH changed, for the audit trail.
pub struct Patched {
    /// The audit action (`update` unless the change has a name of its own).
    pub action: &'static str,
    pub reason: Option<String>,
}

impl Patched {
    pub fn update(reason: Option<String>) -> Patched {
        Patched {
            action: "update",
            reason,
        }
    }
}

/// Updates record `id` of `E` in the caller's scope: the version the client saw
/// (`If-Match` or the body's `version`, one required) must still be current; `authorize`
/// sees the record first; `patch` changes the fields (and may write related rows, after
/// the record's before-view is taken); the write is a compare-and-set (of
/// two concurrent updates exactly one wins) with its audit row (before/after as `view`
/// shows them) in one transaction.
#[allow(clippy::too_many_arguments)]
pub async fn update_versioned<E, V>(
    state: &AppState,
    ctx: &AuthContext,
    req: &HttpRequest,
    id: i64,
    body_version: Option<i32>,
    audit_type: &'static str,
    authorize: impl AsyncFnOnce(&DatabaseTransaction, &E::Model) -> ApiResult<()>,
    patch: impl AsyncFnOnce(&DatabaseTransaction, &E::Model, &mut E::Model) -> ApiResult<Patched>,
    view: impl AsyncFn(&DatabaseTransaction, &E::Model) -> ApiResult<V>,
) -> ApiResult<HttpResponse>
where
    E: EntityTrait + TenantScoped,
    E::Model: Versioned + Clone + Send + Sync + IntoActiveModel<E::ActiveModel>,
    E::ActiveModel: ActiveModelTrait<Entity = E> + Send,
    <E::PrimaryKey as PrimaryKeyTrait>::ValueType: From<i64>,
    V: Serialize,
{
    let version = expected_version(req, body_version)?;
    let txn = WriteTxn::begin(state, ctx).await?;
    let current = find_scoped::<E, _>(&txn, ctx, id).await?;
    authorize(&txn, &current).await?;
    if current.version() != version {
        return Err(ApiError::stale_version(current.version()));
    }
    let now = state.clock.now();
    // As it was, before the patch writes anything (a view may read related rows).
    let before = view(&txn, &current).await?;
    let mut updated = current.clone();
    let patched = patch(&txn, &current, &mut updated).await?;
    let updated = write_next_version::<E>(&txn, id, &current, now, |next| *next = updated).await?;
    let after = view(&txn, &updated).await?;
    audit_trail::append(
        &txn,
        &ctx.actor(now),
        Entry::new(audit_type, id, patched.action)
            .before(snapshot(&before))
            .after(snapshot(&after))
            .reason(patched.reason),
    )
    .await?;
    txn.respond(StatusCode::OK, &after).await
}

/// Writes `current` with `change` as its next version (`updated_at` = `now`), if the
/// stored row still has `current`'s version: the engine's compare-and-set, so of two
/// concurrent writers exactly one wins, across processes. 409 with the current version
/// when another writer came first.
pub async fn write_next_version<E>(
    conn: &impl ConnectionTrait,
    id: i64,
    current: &E::Model,
    now: chrono::DateTime<chrono::Utc>,
    change: impl FnOnce(&mut E::Model),
) -> ApiResult<E::Model>
where
    E: EntityTrait,
    E::Model: Versioned + Clone + IntoActiveModel<E::ActiveModel>,
    <E::PrimaryKey as PrimaryKeyTrait>::ValueType: From<i64>,
{
    match workflow::write_next::<E>(conn, id, current, now, change).await? {
        Some(written) => Ok(written),
        None => {
            // Another process wrote first (PostgreSQL reads without a lock here).
            let stored = E::find_by_id(id)
                .one(conn)
                .await?
                .ok_or(ApiError::NotFound)?;
            Err(ApiError::stale_version(stored.version()))
        }
    }
}

/// Inserts `row` and its `create` audit row (after: the record as `view` shows it), in
/// the caller's transaction. `view` may first write the rows that belong to the record
/// (a milestone's dependencies), so its audit row shows them. Returns the record and its
/// view.
pub async fn insert_audited<A, V>(
    conn: &impl ConnectionTrait,
    actor: &Actor,
    audit_type: &'static str,
    row: A,
    view: impl AsyncFnOnce(&<A::Entity as EntityTrait>::Model) -> ApiResult<V>,
) -> ApiResult<(<A::Entity as EntityTrait>::Model, V)>
where
    A: ActiveModelTrait + ActiveModelBehavior + Send,
    <A::Entity as EntityTrait>::Model: IntoActiveModel<A>,
    V: Serialize,
{
    insert_audited_because(conn, actor, audit_type, None, row, view).await
}

/// [`insert_audited`], with the reason the audit row gives.
pub async fn insert_audited_because<A, V>(
    conn: &impl ConnectionTrait,
    actor: &Actor,
    audit_type: &'static str,
    reason: Option<String>,
    row: A,
    view: impl AsyncFnOnce(&<A::Entity as EntityTrait>::Model) -> ApiResult<V>,
) -> ApiResult<(<A::Entity as EntityTrait>::Model, V)>
where
    A: ActiveModelTrait + ActiveModelBehavior + Send,
    <A::Entity as EntityTrait>::Model: IntoActiveModel<A>,
    V: Serialize,
{
    let created = row.insert(conn).await?;
    let id = record_id::<A::Entity>(&created)?;
    let shown = view(&created).await?;
    audit_trail::append(
        conn,
        actor,
        Entry::new(audit_type, id, "create")
            .after(snapshot(&shown))
            .reason(reason),
    )
    .await?;
    Ok((created, shown))
}

/// The primary key of `m` as the audit trail writes it.
fn record_id<E: EntityTrait>(m: &E::Model) -> ApiResult<String> {
    let pk = E::PrimaryKey::iter()
        .next()
        .ok_or_else(|| ApiError::internal("entity without primary key"))?;
    match m.get(pk.into_column()) {
        sea_orm::Value::BigInt(Some(v)) => Ok(v.to_string()),
        sea_orm::Value::Int(Some(v)) => Ok(v.to_string()),
        other => Err(ApiError::internal(format!(
            "unexpected primary key {other:?}"
        ))),
    }
}
