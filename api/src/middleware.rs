//! The request envelope every request passes through: request id in and out, one tracing
//! span, metrics, and a panic in a handler turned into a 500 problem (never a dropped
//! connection).

use std::panic::AssertUnwindSafe;
use std::time::Instant;

use actix_web::body::{BoxBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::StatusCode;
use actix_web::http::header::{HeaderName, HeaderValue};
use actix_web::middleware::Next;
use actix_web::web;
use futures_util::FutureExt;
use tracing::Instrument;

use crate::error::{problem, problem_response};
use crate::request_id;
use crate::state::AppState;

pub const REQUEST_ID_HEADER: HeaderName = HeaderName::from_static("x-request-id");

pub async fn envelope(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<BoxBody>, actix_web::Error> {
    let id = request_id::accept_or_generate(
        req.headers().get(&REQUEST_ID_HEADER).and_then(|v| v.to_str().ok()),
    );
    let method = req.method().to_string();
    let span = tracing::info_span!("request", request_id = %id, method = %method, path = %req.path());
    let metrics = req.app_data::<web::Data<AppState>>().map(|s| s.metrics.clone());
    let http_req = req.request().clone();
    let started = Instant::now();

    let inner = async move {
        match AssertUnwindSafe(next.call(req)).catch_unwind().await {
            Ok(Ok(res)) => res.map_into_boxed_body(),
            Ok(Err(err)) => ServiceResponse::new(http_req.clone(), err.error_response()),
            Err(panic) => {
                let what = panic
                    .downcast_ref::<&str>()
                    .map(|s| s.to_string())
                    .or_else(|| panic.downcast_ref::<String>().cloned())
                    .unwrap_or_else(|| "unknown panic".to_string());
                tracing::error!(panic = %what, "handler panicked");
                let body = problem(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "internal_error",
                    "an unexpected error occurred; quote the request id when reporting it",
                );
                ServiceResponse::new(http_req.clone(), problem_response(&body))
            }
        }
    };
    let mut res = request_id::scope(id.clone(), inner).instrument(span.clone()).await;

    let elapsed = started.elapsed();
    let status = res.status().as_u16();
    let route = res.request().match_pattern().unwrap_or_else(|| "unmatched".to_string());
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
