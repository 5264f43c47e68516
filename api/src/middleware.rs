//! The request envelope every request passes through: request id in and out, one tracing
//! span, metrics, and a panic in a handler turned into a 500 problem (never a dropped
//! connection).

use std::panic::AssertUnwindSafe;
use std::time::Instant;

use actix_web::body::{BoxBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{HeaderName, HeaderValue};
use actix_web::http::{Method, StatusCode};
use actix_web::middleware::Next;
use actix_web::{HttpResponse, ResponseError, web};
use futures_util::FutureExt;
use tracing::Instrument;

use crate::error::{problem, problem_response};
use crate::request_id;
use crate::state::AppState;

pub const REQUEST_ID_HEADER: HeaderName = HeaderName::from_static("x-request-id");

/// A request that takes longer than `CMO_REQUEST_TIMEOUT_SECS` is stopped and answered 503
/// `request_timeout`: its future is dropped, so a transaction it had not committed rolls
/// back. A statement already sent runs on until it ends or PostgreSQL's statement timeout
/// (set below this one) cancels it; its connection returns to the pool then.
pub async fn deadline(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<BoxBody>, actix_web::Error> {
    let Some(limit) = req
        .app_data::<web::Data<AppState>>()
        .map(|s| s.request_timeout)
    else {
        return next
            .call(req)
            .await
            .map(ServiceResponse::map_into_boxed_body);
    };
    // The request is not cloned to answer (the router needs it unshared): the answer is
    // rendered here, in the request's scope (its id in the body), and handed to the
    // dispatcher as an error carrying it.
    match tokio::time::timeout(limit, next.call(req)).await {
        Ok(res) => res.map(ServiceResponse::map_into_boxed_body),
        Err(_) => {
            let err = crate::error::ApiError::Unavailable {
                code: "request_timeout",
                detail: format!(
                    "the request did not finish within {} s and was stopped; what it had \
                     not committed was rolled back (retry with the same Idempotency-Key)",
                    limit.as_secs()
                ),
            };
            let response = err.error_response();
            Err(actix_web::error::InternalError::from_response(err, response).into())
        }
    }
}

pub async fn envelope(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<BoxBody>, actix_web::Error> {
    let id = request_id::accept_or_generate(
        req.headers()
            .get(&REQUEST_ID_HEADER)
            .and_then(|v| v.to_str().ok()),
    );
    // Extension methods are folded, so a client cannot grow the metrics without bound.
    let method = match req.method().as_str() {
        m @ ("GET" | "HEAD" | "POST" | "PUT" | "PATCH" | "DELETE" | "OPTIONS") => m.to_string(),
        _ => "OTHER".to_string(),
    };
    // The W3C trace this request belongs to (a caller's `traceparent`), or a new one: in
    // every log line of the request and in the domain events it emits, whose webhooks
    // carry it on.
    let trace_id = req
        .headers()
        .get("traceparent")
        .and_then(|v| v.to_str().ok())
        .and_then(entity::ops::trace::trace_id_of)
        .unwrap_or_else(entity::ops::trace::new_trace_id);
    // Who asks is recorded once the token is checked (`AuthContext`).
    let span = tracing::info_span!(
        "request",
        request_id = %id,
        trace_id = %trace_id,
        method = %method,
        path = %req.path(),
        user_id = tracing::field::Empty,
        org_id = tracing::field::Empty,
    );
    let metrics = req
        .app_data::<web::Data<AppState>>()
        .map(|s| s.metrics.clone());
    let started = Instant::now();

    // The request cannot be cloned before routing (the router needs it unshared), so a
    // failure that loses it is answered through an error the dispatcher renders.
    let inner = AssertUnwindSafe(next.call(req)).catch_unwind();
    let outcome = request_id::scope(id.clone(), entity::ops::trace::scope(trace_id, inner))
        .instrument(span.clone())
        .await;
    let elapsed = started.elapsed();
    let mut res = match outcome {
        Ok(Ok(res)) => res.map_into_boxed_body(),
        Ok(Err(err)) => {
            if let Some(metrics) = &metrics {
                metrics.observe(
                    &method,
                    "unknown",
                    err.as_response_error().status_code().as_u16(),
                    elapsed,
                );
            }
            return Err(EnvelopeError::Inner { id, err }.into());
        }
        Err(panic) => {
            let what = panic
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "unknown panic".to_string());
            span.in_scope(|| tracing::error!(panic = %what, "handler panicked"));
            if let Some(metrics) = &metrics {
                metrics.observe(&method, "unknown", 500, elapsed);
            }
            return Err(EnvelopeError::Panic { id }.into());
        }
    };

    let status = res.status().as_u16();
    let route = res
        .request()
        .match_pattern()
        .unwrap_or_else(|| "unmatched".to_string());
    if let Some(metrics) = metrics {
        metrics.observe(&method, &route, status, elapsed);
    }
    if let Ok(value) = HeaderValue::from_str(&id) {
        res.headers_mut().insert(REQUEST_ID_HEADER, value);
    }
    span.in_scope(|| {
        tracing::info!(status, route = %route, latency_ms = elapsed.as_secs_f64() * 1000.0, "request served");
    });
    Ok(res)
}

/// Failures rendered by the HTTP dispatcher after the request itself is gone.
#[derive(Debug, thiserror::Error)]
enum EnvelopeError {
    #[error("handler panicked")]
    Panic { id: String },
    #[error("{err}")]
    Inner { id: String, err: actix_web::Error },
}

impl ResponseError for EnvelopeError {
    fn status_code(&self) -> StatusCode {
        match self {
            EnvelopeError::Panic { .. } => StatusCode::INTERNAL_SERVER_ERROR,
            EnvelopeError::Inner { err, .. } => err.as_response_error().status_code(),
        }
    }

    fn error_response(&self) -> HttpResponse {
        let (id, mut response) = match self {
            EnvelopeError::Panic { id } => {
                let mut body = problem(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "internal_error",
                    "an unexpected error occurred; quote the request id when reporting it",
                );
                body.request_id = Some(id.clone());
                (id, problem_response(&body))
            }
            EnvelopeError::Inner { id, err } => (id, err.error_response()),
        };
        if let Ok(value) = HeaderValue::from_str(id) {
            response.headers_mut().insert(REQUEST_ID_HEADER, value);
        }
        response
    }
}

/// Collects the wakes a write request asks for (`entity::wake::at_commit`) and acts on
/// them once the handler has answered, i.e. after its transaction committed: on
/// PostgreSQL it gives the events the request wrote their cursors (unless a sequencer is
/// at work, which then does), so the feed and the webhooks have them at once; on SQLite
/// it sends the wakes to the workers' sockets (PostgreSQL's `NOTIFY` did that at commit).
pub async fn wake_workers(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<BoxBody>, actix_web::Error> {
    let state = match *req.method() {
        Method::GET | Method::HEAD | Method::OPTIONS => None,
        _ => req.app_data::<web::Data<AppState>>().cloned(),
    };
    let Some(state) = state else {
        return next
            .call(req)
            .await
            .map(ServiceResponse::map_into_boxed_body);
    };
    let (res, channels) = entity::wake::collect(next.call(req)).await;
    if channels.contains(&entity::domain_event::SEQUENCE_CHANNEL) {
        entity::domain_event::after_write(&state.db).await;
    }
    if let Some(wakes) = &state.worker_wakes
        && !channels.is_empty()
    {
        wakes.wake(&channels).await;
    }
    res.map(ServiceResponse::map_into_boxed_body)
}
