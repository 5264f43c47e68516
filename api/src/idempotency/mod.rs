//! `Idempotency-Key` on POST: a retried request with the same key (same caller, same
//! method, path and body) gets the first response again instead of being executed twice.
//!
//! Only successful (2xx) responses are remembered, for 24 hours: a request that failed
//! may be fixed and retried under the same key. The answer is remembered in the
//! transaction of the change itself ([`crate::write_txn::WriteTxn`]): a duplicate sent
//! while the first is served waits for it and replays its answer; a request killed
//! before its commit left nothing, so its retry runs at once. The same key with a
//! different request answers 422.

pub mod claim;

use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};

use actix_web::HttpMessage;
use actix_web::body::{BoxBody, MessageBody};
use actix_web::dev::{Payload, ServiceRequest, ServiceResponse};
use actix_web::http::header::{CONTENT_TYPE, HeaderName, HeaderValue};
use actix_web::http::{Method, StatusCode};
use actix_web::middleware::Next;
use actix_web::web::{self, Bytes, BytesMut};
use entity::idempotency_key::{self, Outcome};
use futures_util::StreamExt;
use sea_orm::sea_query::Expr;
use sea_orm::{
    ActiveModelTrait, ActiveValue::NotSet, ActiveValue::Set, ColumnTrait, ConnectionTrait,
    DatabaseTransaction, EntityTrait, QueryFilter,
};
use sha2::{Digest, Sha256};

pub use claim::Claim;
use claim::{ANSWERED, DUPLICATE, OPEN};

use crate::error::{ApiError, FieldError};
use crate::extract::MAX_JSON_BODY;
use crate::state::AppState;

pub const IDEMPOTENCY_KEY: HeaderName = HeaderName::from_static("idempotency-key");
pub const REPLAYED: HeaderName = HeaderName::from_static("idempotent-replayed");

/// Where `Idempotency-Key` is honoured: API writes, but not the credential endpoints
/// (their answers hold secrets, which must never be stored for a replay) and not the
/// pages for people (a form is not retried by a client).
pub fn applies_to(path: &str) -> bool {
    const CREDENTIALS: [&str; 4] = [
        "/api/v1/sign-in",
        "/api/v1/invitations/accept",
        "/api/v1/password-resets",
        "/api/v1/password-resets/complete",
    ];
    path.starts_with("/api/v1/") && !CREDENTIALS.contains(&path)
}

pub async fn idempotency(
    mut req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<BoxBody>, actix_web::Error> {
    if req.method() != Method::POST
        || !req.headers().contains_key(&IDEMPOTENCY_KEY)
        || !applies_to(req.path())
    {
        return next
            .call(req)
            .await
            .map(ServiceResponse::map_into_boxed_body);
    }
    let key = req
        .headers()
        .get(&IDEMPOTENCY_KEY)
        .and_then(|v| v.to_str().ok())
        .filter(|k| idempotency_key::is_valid_key(k))
        .map(str::to_string);
    let Some(key) = key else {
        let err = ApiError::Validation(vec![FieldError::new(
            "Idempotency-Key",
            "invalid_format",
            "must be 8 to 200 printable ASCII characters, e.g. a UUID: 1b4e28ba-2fa1-11d2-883f-0016d3cca427",
        )]);
        return Ok(req.error_response(err));
    };
    let Some(state) = req.app_data::<web::Data<AppState>>().cloned() else {
        return next
            .call(req)
            .await
            .map(ServiceResponse::map_into_boxed_body);
    };
    // Without a valid token the handler answers 401 anyway; nothing to remember.
    let Some(user_id) = crate::auth::user_id_of(req.request(), &state).await else {
        return next
            .call(req)
            .await
            .map(ServiceResponse::map_into_boxed_body);
    };

    let body = match read_body(&mut req).await {
        Ok(body) => body,
        Err(err) => return Ok(req.error_response(err)),
    };
    let request_hash = fingerprint(&body);
    req.set_payload(Payload::from(body));
    let claim = Arc::new(Claim {
        user_id,
        key,
        method: req.method().to_string(),
        path: req.path().to_string(),
        request_hash,
        at: state.clock.now(),
        state: AtomicU8::new(OPEN),
    });

    match look_up(&state, &claim).await {
        Ok(None) => {}
        Ok(Some(record)) => return Ok(replay(req, record)),
        Err(err) => return Ok(req.error_response(err)),
    }
    req.extensions_mut().insert(Arc::clone(&claim));
    let res = next.call(req).await?;
    match claim.state.load(Ordering::SeqCst) {
        // Remembered in the transaction of the change.
        ANSWERED => Ok(res.map_into_boxed_body()),
        // Another request with this key committed first: its answer is this one's.
        DUPLICATE => settle(&state, &claim, res).await,
        // No write transaction answered: a POST that only reads, or one that failed. A
        // failure may be this retry meeting the state its first request left (a stale
        // version, a step already taken) when that one committed after our look-up:
        // then the first one's answer is this one's too.
        _ if !res.status().is_success() => settle(&state, &claim, res).await,
        _ => remember_after(&state, &claim, res).await,
    }
}

/// The answer of a request whose key another request holds or held: the finished
/// record's answer when there is one now, the look-up's own refusal (another request
/// under the key: 422), or the request's own answer.
async fn settle(
    state: &AppState,
    claim: &Claim,
    res: ServiceResponse<impl MessageBody + 'static>,
) -> Result<ServiceResponse<BoxBody>, actix_web::Error> {
    let (http_req, response) = res.into_parts();
    let req = ServiceRequest::from_request(http_req);
    match look_up(state, claim).await {
        Ok(Some(record)) => Ok(replay(req, record)),
        Ok(None) => Ok(ServiceResponse::new(
            req.into_parts().0,
            response.map_into_boxed_body(),
        )),
        Err(err) => Ok(req.error_response(err)),
    }
}

/// The record of this key, when it settles the request: a finished answer to replay.
/// 422 for another request under the key, 409 for a claim still in flight (written by
/// a binary from before answers were kept in the change's transaction). Expired records
/// are forgotten.
async fn look_up(
    state: &AppState,
    claim: &Claim,
) -> Result<Option<idempotency_key::Model>, ApiError> {
    let existing = idempotency_key::Entity::find()
        .filter(idempotency_key::Column::UserId.eq(claim.user_id))
        .filter(idempotency_key::Column::Key.eq(claim.key.as_str()))
        .one(&state.db)
        .await?;
    let Some(record) = existing else {
        return Ok(None);
    };
    match idempotency_key::classify(
        &record,
        &claim.method,
        &claim.path,
        &claim.request_hash,
        claim.at,
    ) {
        Outcome::Replay => Ok(Some(record)),
        Outcome::InProgress => Err(in_progress()),
        Outcome::Mismatch => Err(ApiError::Validation(vec![FieldError::new(
            "Idempotency-Key",
            "key_reused",
            "this key was used for a different request; use a new key",
        )])),
        Outcome::Expired => {
            idempotency_key::Entity::delete_by_id(record.id)
                .exec(&state.db)
                .await?;
            Ok(None)
        }
    }
}

fn replay(req: ServiceRequest, record: idempotency_key::Model) -> ServiceResponse<BoxBody> {
    let mut response = actix_web::HttpResponse::build(
        StatusCode::from_u16(u16::try_from(record.status).unwrap_or(200)).unwrap_or(StatusCode::OK),
    );
    if let Some(ct) = record.content_type.as_deref() {
        response.insert_header((CONTENT_TYPE, ct));
    }
    response.insert_header((REPLAYED, HeaderValue::from_static("true")));
    let response = response.body(record.body.unwrap_or_default());
    ServiceResponse::new(req.into_parts().0, response)
}

fn row(claim: &Claim) -> idempotency_key::ActiveModel {
    idempotency_key::ActiveModel {
        id: NotSet,
        user_id: Set(claim.user_id),
        key: Set(claim.key.clone()),
        method: Set(claim.method.clone()),
        path: Set(claim.path.clone()),
        request_hash: Set(claim.request_hash.clone()),
        status: Set(0),
        content_type: Set(None),
        body: Set(None),
        created_at: Set(claim.at),
    }
}

fn is_unique_violation(err: &sea_orm::DbErr) -> bool {
    matches!(
        err.sql_err(),
        Some(sea_orm::SqlErr::UniqueConstraintViolation(_))
    )
}

/// Writes the key's record as the first row of the change's transaction. A request with
/// the same key in flight makes this wait (PostgreSQL) or come after it (SQLite's one
/// writer); when that one committed, this one is a duplicate and answers as it did.
pub(crate) async fn hold(txn: &DatabaseTransaction, claim: &Claim) -> Result<(), ApiError> {
    let postgres = txn.get_database_backend() == sea_orm::DbBackend::Postgres;
    // A duplicate waits for the first request's key at most this long, holding a pooled
    // connection meanwhile: past it, it answers 409 "still processing" and frees it.
    if postgres {
        txn.execute_unprepared("SET LOCAL lock_timeout = '2s'")
            .await?;
    }
    let inserted = row(claim).insert(txn).await;
    if postgres && inserted.is_ok() {
        txn.execute_unprepared("SET LOCAL lock_timeout TO DEFAULT")
            .await?;
    }
    match inserted {
        Ok(_) => Ok(()),
        Err(err) if is_unique_violation(&err) || is_lock_wait_over(&err) => {
            claim.state.store(DUPLICATE, Ordering::SeqCst);
            Err(in_progress())
        }
        Err(err) => Err(err.into()),
    }
}

/// PostgreSQL gave up waiting for a lock (SQLSTATE 55P03, past `lock_timeout`).
fn is_lock_wait_over(err: &sea_orm::DbErr) -> bool {
    use sea_orm::{DbErr, RuntimeErr};
    let (DbErr::Exec(RuntimeErr::SqlxError(e)) | DbErr::Query(RuntimeErr::SqlxError(e))) = err
    else {
        return false;
    };
    e.as_database_error()
        .and_then(|d| d.code())
        .is_some_and(|code| code == "55P03")
}

/// Stores a 2xx answer on the key's record, in the change's transaction.
pub(crate) async fn answer(
    txn: &DatabaseTransaction,
    claim: &Claim,
    status: StatusCode,
    content_type: Option<&str>,
    body: Option<&[u8]>,
) -> Result<(), ApiError> {
    if !status.is_success() {
        return Ok(());
    }
    idempotency_key::Entity::update_many()
        .col_expr(
            idempotency_key::Column::Status,
            Expr::value(i32::from(status.as_u16())),
        )
        .col_expr(
            idempotency_key::Column::ContentType,
            Expr::value(content_type.map(str::to_string)),
        )
        .col_expr(
            idempotency_key::Column::Body,
            Expr::value(body.map(redact_secrets)),
        )
        .filter(idempotency_key::Column::UserId.eq(claim.user_id))
        .filter(idempotency_key::Column::Key.eq(claim.key.as_str()))
        .exec(txn)
        .await?;
    Ok(())
}

fn in_progress() -> ApiError {
    ApiError::conflict(
        "idempotency_in_progress",
        "a request with this Idempotency-Key is still being processed; retry shortly",
    )
}

/// A 2xx answer that no write transaction remembered (a POST that changes nothing):
/// remembered now, so a retry gets the same answer. Failing to remember it must not fail
/// the request.
async fn remember_after(
    state: &AppState,
    claim: &Claim,
    res: ServiceResponse<impl MessageBody + 'static>,
) -> Result<ServiceResponse<BoxBody>, actix_web::Error> {
    let status = res.status();
    if !status.is_success() {
        return Ok(res.map_into_boxed_body());
    }
    let (http_req, response) = res.into_parts();
    let (response, body) = response.into_parts();
    let bytes = actix_web::body::to_bytes(body)
        .await
        .map_err(|_| ApiError::internal("unreadable response body"))?;
    let content_type = response
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let mut record = row(claim);
    record.status = Set(i32::from(status.as_u16()));
    record.content_type = Set(content_type);
    record.body = Set(Some(redact_secrets(&bytes)));
    if let Err(err) = record.insert(&state.db).await
        && !is_unique_violation(&err)
    {
        tracing::warn!(%err, "could not remember an idempotent response");
    }
    let response = response.set_body(BoxBody::new(bytes));
    Ok(ServiceResponse::new(http_req, response))
}

/// Fields that carry a secret: never part of a stored fingerprint or response.
const SECRET_FIELDS: [&str; 4] = ["password", "current_password", "new_password", "secret"];

/// SHA-256 of the request with its password fields removed: a stored fingerprint must
/// not become an offline oracle for signing passwords (argon2 protects those).
fn fingerprint(body: &[u8]) -> String {
    match serde_json::from_slice::<serde_json::Value>(body) {
        Ok(mut value) => {
            strip(&mut value, None);
            hex::encode(Sha256::digest(
                entity::audit::canonical_json(&value).as_bytes(),
            ))
        }
        Err(_) => hex::encode(Sha256::digest(body)),
    }
}

/// The response as remembered: token secrets are shown once, so a replay shows a
/// placeholder in their place (the token exists; the caller revokes it if the secret
/// was lost with the first response).
fn redact_secrets(body: &[u8]) -> String {
    match serde_json::from_slice::<serde_json::Value>(body) {
        Ok(mut value) => {
            strip(&mut value, Some("[shown only in the first response]"));
            value.to_string()
        }
        Err(_) => String::from_utf8_lossy(body).into_owned(),
    }
}

fn strip(value: &mut serde_json::Value, replacement: Option<&str>) {
    match value {
        serde_json::Value::Object(map) => {
            for field in SECRET_FIELDS {
                if map.contains_key(field) {
                    match replacement {
                        Some(r) => {
                            map.insert(field.to_string(), serde_json::Value::String(r.to_string()));
                        }
                        None => {
                            map.remove(field);
                        }
                    }
                }
            }
            for v in map.values_mut() {
                strip(v, replacement);
            }
        }
        serde_json::Value::Array(items) => items.iter_mut().for_each(|v| strip(v, replacement)),
        _ => {}
    }
}

async fn read_body(req: &mut ServiceRequest) -> Result<Bytes, ApiError> {
    let mut payload = req.take_payload();
    let mut body = BytesMut::new();
    while let Some(chunk) = payload.next().await {
        let chunk = chunk.map_err(|e| ApiError::bad_request("unreadable_body", e.to_string()))?;
        if body.len() + chunk.len() > MAX_JSON_BODY {
            return Err(ApiError::PayloadTooLarge {
                limit: MAX_JSON_BODY,
            });
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body.freeze())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_do_not_reach_the_fingerprint() {
        let a = fingerprint(br#"{"decision":"go","password":"one"}"#);
        let b = fingerprint(br#"{"password":"two","decision":"go"}"#);
        assert_eq!(a, b);
        assert_ne!(a, fingerprint(br#"{"decision":"no_go","password":"one"}"#));
    }

    #[test]
    fn token_secrets_are_not_remembered() {
        let stored = redact_secrets(br#"{"token":{"id":1},"secret":"cmo_abc"}"#);
        assert!(!stored.contains("cmo_abc"));
        let nested = redact_secrets(br#"{"admin_token":{"secret":"cmo_def"}}"#);
        assert!(!nested.contains("cmo_def"));
    }
}
