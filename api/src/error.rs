//! One error type for every handler, rendered as RFC 9457 `application/problem+json`.
//! 5xx bodies are opaque; their cause is logged with the request id.

use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderValue};
use actix_web::{HttpResponse, ResponseError};
use sea_orm::{DbErr, RuntimeErr, SqlErr};
use serde::Serialize;
use utoipa::ToSchema;

use crate::request_id;

pub const PROBLEM_JSON: &str = "application/problem+json";

/// One invalid field of a request body or query string.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
#[schema(example = json!({"field": "email", "code": "invalid_format", "message": "not a plausible email address"}))]
pub struct FieldError {
    /// JSON path of the offending field (`items[2].due_date`), or `body` for the whole body.
    pub field: String,
    /// Stable machine-readable reason.
    pub code: String,
    pub message: String,
}

impl FieldError {
    pub fn new(
        field: impl Into<String>,
        code: impl Into<String>,
        message: impl Into<String>,
    ) -> Self {
        Self {
            field: field.into(),
            code: code.into(),
            message: message.into(),
        }
    }
}

/// RFC 9457 problem details. `code` is stable across releases; `detail` is for people.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[schema(example = json!({
    "type": "urn:cmo-orchestrator:problem:validation_failed",
    "title": "Unprocessable Content",
    "status": 422,
    "code": "validation_failed",
    "detail": "the request has 1 invalid field",
    "request_id": "5f0c2a8e-7d1b-4f7e-9a55-3c1d0e6b2a90",
    "errors": [{"field": "email", "code": "invalid_format", "message": "not a plausible email address"}]
}))]
pub struct Problem {
    /// URI naming the problem type: `urn:cmo-orchestrator:problem:{code}`.
    #[serde(rename = "type")]
    pub problem_type: String,
    pub title: String,
    pub status: u16,
    pub code: String,
    pub detail: String,
    /// The request id, also in the `X-Request-Id` response header.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
    /// Per-field errors (422 only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub errors: Option<Vec<FieldError>>,
    /// Current state of the resource (409 on an illegal state transition).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub current_state: Option<String>,
    /// Events allowed from the current state (409 on an illegal state transition).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub allowed_events: Option<Vec<String>>,
    /// Current version of the resource (409 on a stale version).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub current_version: Option<i32>,
}

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{detail}")]
    BadRequest { code: &'static str, detail: String },
    #[error("{0}")]
    Unauthorized(String),
    /// A re-entered password (signature, password change) is wrong; the token is fine.
    #[error("{0}")]
    InvalidPassword(String),
    #[error("{0}")]
    Forbidden(String),
    #[error("not found")]
    NotFound,
    /// A one-time link (invitation, password reset) that was used, revoked or expired.
    #[error("{0}")]
    LinkNotUsable(String),
    #[error("{detail}")]
    Conflict {
        code: &'static str,
        detail: String,
        current_state: Option<String>,
        allowed_events: Option<Vec<String>>,
        current_version: Option<i32>,
    },
    #[error("request body larger than {limit} bytes")]
    PayloadTooLarge { limit: usize },
    #[error("unsupported media type: {0}")]
    UnsupportedMediaType(String),
    #[error("the request has invalid fields")]
    Validation(Vec<FieldError>),
    #[error("too many failed password attempts; retry in {retry_after_secs} seconds")]
    TooManyAttempts { retry_after_secs: u64 },
    #[error("the database is unavailable")]
    ServiceUnavailable(String),
    /// A lock or serialization conflict that a retry resolves.
    #[error("the database is busy; retry shortly")]
    DatabaseBusy(String),
    /// The api cannot serve this now (a request or statement past its time limit, a
    /// replica shutting down); a retry, possibly elsewhere, can succeed.
    #[error("{detail}")]
    Unavailable { code: &'static str, detail: String },
    #[error("internal error: {0}")]
    Internal(String),
}

impl ApiError {
    pub fn bad_request(code: &'static str, detail: impl Into<String>) -> Self {
        ApiError::BadRequest {
            code,
            detail: detail.into(),
        }
    }

    pub fn invalid(field: &str, code: &str, message: impl Into<String>) -> Self {
        ApiError::Validation(vec![FieldError::new(field, code, message)])
    }

    pub fn conflict(code: &'static str, detail: impl Into<String>) -> Self {
        ApiError::Conflict {
            code,
            detail: detail.into(),
            current_state: None,
            allowed_events: None,
            current_version: None,
        }
    }

    pub fn stale_version(current_version: i32) -> Self {
        ApiError::Conflict {
            code: "version_conflict",
            detail: format!(
                "the resource was changed by someone else; its current version is {current_version}"
            ),
            current_state: None,
            allowed_events: None,
            current_version: Some(current_version),
        }
    }

    pub fn internal(cause: impl std::fmt::Display) -> Self {
        ApiError::Internal(cause.to_string())
    }

    fn code(&self) -> &'static str {
        match self {
            ApiError::BadRequest { code, .. } => code,
            ApiError::Unauthorized(_) => "unauthorized",
            ApiError::InvalidPassword(_) => "invalid_password",
            ApiError::TooManyAttempts { .. } => "too_many_attempts",
            ApiError::Forbidden(_) => "forbidden",
            ApiError::NotFound => "not_found",
            ApiError::LinkNotUsable(_) => "link_not_usable",
            ApiError::Conflict { code, .. } => code,
            ApiError::PayloadTooLarge { .. } => "payload_too_large",
            ApiError::UnsupportedMediaType(_) => "unsupported_media_type",
            ApiError::Validation(_) => "validation_failed",
            ApiError::ServiceUnavailable(_) => "database_unavailable",
            ApiError::DatabaseBusy(_) => "database_busy",
            ApiError::Unavailable { code, .. } => code,
            ApiError::Internal(_) => "internal_error",
        }
    }

    fn public_detail(&self) -> String {
        match self {
            ApiError::NotFound => "no such resource".to_string(),
            ApiError::Validation(errors) if errors.len() == 1 => {
                "the request has 1 invalid field".to_string()
            }
            ApiError::Validation(errors) => {
                format!("the request has {} invalid fields", errors.len())
            }
            ApiError::ServiceUnavailable(_) => {
                "the database is unreachable; retry later".to_string()
            }
            ApiError::Internal(_) => {
                "an unexpected error occurred; quote the request id when reporting it".to_string()
            }
            other => other.to_string(),
        }
    }

    pub fn problem(&self) -> Problem {
        let status = self.status_code();
        let code = self.code();
        let mut problem = problem(status, code, self.public_detail());
        match self {
            ApiError::Validation(errors) => problem.errors = Some(errors.clone()),
            ApiError::Conflict {
                current_state,
                allowed_events,
                current_version,
                ..
            } => {
                problem.current_state.clone_from(current_state);
                problem.allowed_events.clone_from(allowed_events);
                problem.current_version = *current_version;
            }
            _ => {}
        }
        problem
    }
}

/// A bare problem for `status`, stamped with the current request id.
pub fn problem(status: StatusCode, code: &str, detail: impl Into<String>) -> Problem {
    Problem {
        problem_type: format!("urn:cmo-orchestrator:problem:{code}"),
        title: status.canonical_reason().unwrap_or("Error").to_string(),
        status: status.as_u16(),
        code: code.to_string(),
        detail: detail.into(),
        request_id: request_id::current(),
        errors: None,
        current_state: None,
        allowed_events: None,
        current_version: None,
    }
}

pub fn problem_response(problem: &Problem) -> HttpResponse {
    let status = StatusCode::from_u16(problem.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut response = HttpResponse::build(status);
    response.insert_header((header::CONTENT_TYPE, HeaderValue::from_static(PROBLEM_JSON)));
    if status == StatusCode::UNAUTHORIZED {
        response.insert_header((
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static("Bearer realm=\"cmo-orchestrator\""),
        ));
    }
    response.body(serde_json::to_string(problem).unwrap_or_default())
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        match self {
            ApiError::BadRequest { .. } => StatusCode::BAD_REQUEST,
            ApiError::Unauthorized(_) | ApiError::InvalidPassword(_) => StatusCode::UNAUTHORIZED,
            ApiError::TooManyAttempts { .. } => StatusCode::TOO_MANY_REQUESTS,
            ApiError::Forbidden(_) => StatusCode::FORBIDDEN,
            ApiError::NotFound => StatusCode::NOT_FOUND,
            ApiError::LinkNotUsable(_) => StatusCode::GONE,
            ApiError::Conflict { .. } => StatusCode::CONFLICT,
            ApiError::PayloadTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ApiError::Validation(_) => StatusCode::UNPROCESSABLE_ENTITY,
            ApiError::ServiceUnavailable(_)
            | ApiError::DatabaseBusy(_)
            | ApiError::Unavailable { .. } => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn error_response(&self) -> HttpResponse {
        match self {
            ApiError::Internal(cause) => tracing::error!(%cause, "request failed"),
            ApiError::ServiceUnavailable(cause) => tracing::warn!(%cause, "database unavailable"),
            ApiError::DatabaseBusy(cause) => tracing::warn!(%cause, "database busy"),
            ApiError::Unavailable { code, detail } => tracing::warn!(code, detail, "unavailable"),
            _ => {}
        }
        let mut response = problem_response(&self.problem());
        let retry_after = match self {
            ApiError::TooManyAttempts { retry_after_secs } => Some(*retry_after_secs),
            ApiError::DatabaseBusy(_)
            | ApiError::ServiceUnavailable(_)
            | ApiError::Unavailable { .. } => Some(1),
            _ => None,
        };
        if let Some(secs) = retry_after {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        response
    }
}

impl From<DbErr> for ApiError {
    fn from(err: DbErr) -> Self {
        if let Some(SqlErr::UniqueConstraintViolation(detail)) = err.sql_err() {
            // A clash in the audit chain is our bug (or a lost race), never the client's.
            if detail.contains("audit_") {
                return ApiError::DatabaseBusy(err.to_string());
            }
            return ApiError::conflict("already_exists", unique_violation_detail(&detail));
        }
        if is_busy(&err) {
            return ApiError::DatabaseBusy(err.to_string());
        }
        if is_cancelled(&err) {
            return ApiError::Unavailable {
                code: "statement_timeout",
                detail: "a database statement took longer than the configured limit and was \
                         cancelled; nothing of this request was kept; retry later"
                    .to_string(),
            };
        }
        if let Some(problem) = rejected_input(&err) {
            return problem;
        }
        match &err {
            DbErr::ConnectionAcquire(_) | DbErr::Conn(_) => {
                ApiError::ServiceUnavailable(err.to_string())
            }
            DbErr::Exec(RuntimeErr::SqlxError(e)) | DbErr::Query(RuntimeErr::SqlxError(e))
                if is_connection_error(e) =>
            {
                ApiError::ServiceUnavailable(err.to_string())
            }
            _ => ApiError::Internal(err.to_string()),
        }
    }
}

/// Safety net: input the database refuses as data (PostgreSQL class 22, e.g. a NUL
/// character or a value too long for its column) is the client's error, not a 500.
fn rejected_input(err: &DbErr) -> Option<ApiError> {
    let (DbErr::Exec(RuntimeErr::SqlxError(e)) | DbErr::Query(RuntimeErr::SqlxError(e))) = err
    else {
        return None;
    };
    let code = e.as_database_error()?.code()?;
    if !code.starts_with("22") {
        return None;
    }
    tracing::info!(%err, "database rejected input");
    Some(ApiError::Validation(vec![FieldError::new(
        "body",
        "invalid_input",
        "a value is not acceptable (too long, out of range or containing a NUL character)",
    )]))
}

/// SQLite busy/locked, PostgreSQL serialization failure or deadlock: worth a retry.
fn is_busy(err: &DbErr) -> bool {
    let (DbErr::Exec(RuntimeErr::SqlxError(e)) | DbErr::Query(RuntimeErr::SqlxError(e))) = err
    else {
        return false;
    };
    let Some(code) = e.as_database_error().and_then(|d| d.code()) else {
        return false;
    };
    matches!(
        code.as_ref(),
        "5" | "6" | "517" | "261" | "40001" | "40P01" | "55P03"
    )
}

/// PostgreSQL cancelled the statement (SQLSTATE 57014): past `statement_timeout`.
fn is_cancelled(err: &DbErr) -> bool {
    let (DbErr::Exec(RuntimeErr::SqlxError(e)) | DbErr::Query(RuntimeErr::SqlxError(e))) = err
    else {
        return false;
    };
    e.as_database_error()
        .and_then(|d| d.code())
        .is_some_and(|code| code == "57014")
}

fn is_connection_error(err: &sea_orm::sqlx::Error) -> bool {
    use sea_orm::sqlx::Error;
    if matches!(
        err,
        Error::Io(_)
            | Error::PoolTimedOut
            | Error::PoolClosed
            | Error::WorkerCrashed
            | Error::Tls(_)
    ) {
        return true;
    }
    // PostgreSQL shutting down or starting up (57P01 admin shutdown, 57P02 crash
    // shutdown, 57P03 cannot connect now) and connection exceptions (class 08): the
    // database is away, not the request wrong.
    err.as_database_error()
        .and_then(|d| d.code())
        .is_some_and(|code| code.starts_with("57P") || code.starts_with("08"))
}

/// Names the conflicting field without echoing the database's message verbatim.
fn unique_violation_detail(db_detail: &str) -> String {
    let lower = db_detail.to_lowercase();
    if lower.contains("email") {
        "a user with this email already exists in this organization".to_string()
    } else if lower.contains("name") {
        "a resource with this name already exists".to_string()
    } else {
        "the resource already exists".to_string()
    }
}

pub type ApiResult<T> = Result<T, ApiError>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_problem_names_its_type_after_its_code() {
        let p = ApiError::NotFound.problem();
        assert_eq!(p.status, 404);
        assert_eq!(p.code, "not_found");
        assert_eq!(p.problem_type, "urn:cmo-orchestrator:problem:not_found");
    }

    #[test]
    fn internal_errors_do_not_leak_their_cause() {
        let p = ApiError::internal("password column missing").problem();
        assert_eq!(p.status, 500);
        assert!(!p.detail.contains("password"));
    }

    #[test]
    fn validation_errors_carry_their_fields() {
        let p = ApiError::invalid("email", "invalid_format", "bad").problem();
        assert_eq!(p.status, 422);
        assert_eq!(p.errors.unwrap()[0].field, "email");
    }

    #[test]
    fn a_stale_version_reports_the_current_one() {
        let p = ApiError::stale_version(4).problem();
        assert_eq!((p.status, p.current_version), (409, Some(4)));
    }
}
