//! `Idempotency-Key` on POST: a retried request with the same key (same caller, same
//! method, path and body) gets the first response again instead of being executed twice.
//!
//! Only successful (2xx) responses are remembered, for 24 hours: a request that failed
//! may be fixed and retried under the same key. While the first request is still being
//! served, a duplicate answers 409; the same key with a different request answers 422.

use actix_web::HttpMessage;
use actix_web::body::{BoxBody, MessageBody};
use actix_web::dev::{Payload, ServiceRequest, ServiceResponse};
use actix_web::http::header::{CONTENT_TYPE, HeaderName, HeaderValue};
use actix_web::http::{Method, StatusCode};
use actix_web::middleware::Next;
use actix_web::web::{self, Bytes, BytesMut};
use entity::idempotency_key::{self, Outcome};
use futures_util::StreamExt;
use sea_orm::{
    ActiveModelTrait, ActiveValue::NotSet, ActiveValue::Set, ColumnTrait, EntityTrait, QueryFilter,
};
use sha2::{Digest, Sha256};

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
            "must be 8 to 200 printable ASCII characters",
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
    let method = req.method().to_string();
    let path = req.path().to_string();
    let now = state.clock.now();

    match claim(&state, user_id, &key, &method, &path, &request_hash, now).await {
        Ok(Claim::Fresh(claim_id)) => {
            let res = next.call(req).await?;
            finish(&state, claim_id, res).await
        }
        Ok(Claim::Replay(record)) => {
            let mut response = actix_web::HttpResponse::build(
                StatusCode::from_u16(u16::try_from(record.status).unwrap_or(200))
                    .unwrap_or(StatusCode::OK),
            );
            if let Some(ct) = record.content_type.as_deref() {
                response.insert_header((CONTENT_TYPE, ct));
            }
            response.insert_header((REPLAYED, HeaderValue::from_static("true")));
            let response = response.body(record.body.unwrap_or_default());
            Ok(ServiceResponse::new(req.into_parts().0, response))
        }
        Err(err) => Ok(req.error_response(err)),
    }
}

enum Claim {
    Fresh(i64),
    Replay(idempotency_key::Model),
}

async fn claim(
    state: &AppState,
    user_id: i64,
    key: &str,
    method: &str,
    path: &str,
    request_hash: &str,
    now: chrono::DateTime<chrono::Utc>,
) -> Result<Claim, ApiError> {
    let existing = idempotency_key::Entity::find()
        .filter(idempotency_key::Column::UserId.eq(user_id))
        .filter(idempotency_key::Column::Key.eq(key))
        .one(&state.db)
        .await?;
    if let Some(record) = existing {
        match idempotency_key::classify(&record, method, path, request_hash, now) {
            Outcome::Replay => return Ok(Claim::Replay(record)),
            Outcome::InProgress => return Err(in_progress()),
            Outcome::Mismatch => {
                return Err(ApiError::Validation(vec![FieldError::new(
                    "Idempotency-Key",
                    "key_reused",
                    "this key was used for a different request; use a new key",
                )]));
            }
            Outcome::Expired => {
                idempotency_key::Entity::delete_by_id(record.id)
                    .exec(&state.db)
                    .await?;
            }
        }
    }
    let inserted = idempotency_key::ActiveModel {
        id: NotSet,
        user_id: Set(user_id),
        key: Set(key.to_string()),
        method: Set(method.to_string()),
        path: Set(path.to_string()),
        request_hash: Set(request_hash.to_string()),
        status: Set(0),
        content_type: Set(None),
        body: Set(None),
        created_at: Set(now),
    }
    .insert(&state.db)
    .await;
    match inserted {
        Ok(row) => Ok(Claim::Fresh(row.id)),
        // Someone claimed the key between our look-up and insert.
        Err(err)
            if matches!(
                err.sql_err(),
                Some(sea_orm::SqlErr::UniqueConstraintViolation(_))
            ) =>
        {
            Err(in_progress())
        }
        Err(err) => Err(err.into()),
    }
}

fn in_progress() -> ApiError {
    ApiError::conflict(
        "idempotency_in_progress",
        "a request with this Idempotency-Key is still being processed; retry shortly",
    )
}

/// Remembers a 2xx response; forgets the claim otherwise so the request can be retried.
async fn finish(
    state: &AppState,
    claim_id: i64,
    res: ServiceResponse<impl MessageBody + 'static>,
) -> Result<ServiceResponse<BoxBody>, actix_web::Error> {
    let status = res.status();
    if !status.is_success() {
        if let Err(err) = idempotency_key::Entity::delete_by_id(claim_id)
            .exec(&state.db)
            .await
        {
            tracing::warn!(%err, "could not release an idempotency claim");
        }
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
    let record = idempotency_key::ActiveModel {
        id: Set(claim_id),
        status: Set(i32::from(status.as_u16())),
        content_type: Set(content_type),
        body: Set(Some(redact_secrets(&bytes))),
        ..Default::default()
    };
    // The change itself is committed: failing to remember it must not fail the request
    // (a retry would then be executed again, as without a key).
    if let Err(err) = record.update(&state.db).await {
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
