//! Liveness, readiness and metrics: unauthenticated, for load balancers and Prometheus.

use actix_web::ResponseError;
use actix_web::{HttpResponse, get, web};
use serde::Serialize;
use utoipa::ToSchema;

use crate::error::{ApiError, ApiResult};
use crate::state::AppState;

#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({"status": "ok"}))]
pub struct Health {
    pub status: String,
}

#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({"status": "ready", "database": "sqlite"}))]
pub struct Readiness {
    pub status: String,
    /// `sqlite` or `postgres`.
    pub database: String,
}

/// The process is up (does not touch the database).
#[utoipa::path(
    tag = "operations",
    security(()),
    responses((status = 200, description = "The process is up", body = Health))
)]
#[get("/healthz")]
pub async fn healthz() -> web::Json<Health> {
    web::Json(Health {
        status: "ok".to_string(),
    })
}

/// The database answers: ready to serve traffic. Answers 503 at once when the database
/// does not answer within `CMO_READY_TIMEOUT_MS` (default 1 s), not after the pool's
/// longer wait for a connection; and 503 `shutting_down` from SIGTERM on, while the
/// replica still serves for `CMO_SHUTDOWN_DELAY_SECS` so the load balancer drains it.
#[utoipa::path(
    tag = "operations",
    security(()),
    responses(
        (status = 200, description = "The database answers", body = Readiness),
        (status = 503, description = "The database is unreachable (`database_unavailable`), or the replica is shutting down (`shutting_down`)", body = crate::error::Problem)
    )
)]
#[get("/readyz")]
pub async fn readyz(state: web::Data<AppState>) -> ApiResult<web::Json<Readiness>> {
    if state.draining.load(std::sync::atomic::Ordering::SeqCst) {
        return Err(ApiError::Unavailable {
            code: "shutting_down",
            detail: "this replica is shutting down; send new requests to another".to_string(),
        });
    }
    match tokio::time::timeout(state.ready_timeout, migration::startup::ping(&state.db)).await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => return Err(ApiError::ServiceUnavailable(e.to_string())),
        Err(_) => {
            return Err(ApiError::ServiceUnavailable(format!(
                "no answer within {} ms",
                state.ready_timeout.as_millis()
            )));
        }
    }
    Ok(web::Json(Readiness {
        status: "ready".to_string(),
        database: migration::startup::backend_name(&state.db).to_string(),
    }))
}

/// Prometheus metrics: request counts and latency histograms by route and status. When
/// the installation sets `CMO_METRICS_TOKEN`, the scraper sends it as a bearer token
/// (the counts show activity, e.g. failed signature attempts, to whoever reads them).
#[utoipa::path(
    tag = "operations",
    security(()),
    responses(
        (
            status = 200,
            description = "Prometheus text exposition format",
            body = String,
            content_type = "text/plain; version=0.0.4",
            example = "# TYPE cmo_http_requests_total counter\ncmo_http_requests_total{method=\"GET\",route=\"/healthz\",status=\"200\"} 1\n"
        ),
        (status = 401, description = "`CMO_METRICS_TOKEN` is set and the request does not carry it", body = crate::error::Problem)
    )
)]
#[get("/metrics")]
pub async fn metrics(req: actix_web::HttpRequest, state: web::Data<AppState>) -> HttpResponse {
    if let Some(expected) = state.metrics_token.as_deref() {
        let given = req
            .headers()
            .get(actix_web::http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .unwrap_or_default();
        // Constant time: the comparison must not tell how much of a guess was right.
        let same = given.len() == expected.len()
            && given
                .bytes()
                .zip(expected.bytes())
                .fold(0_u8, |acc, (a, b)| acc | (a ^ b))
                == 0;
        if !same {
            return ApiError::Unauthorized(
                "metrics need the scraper's token (CMO_METRICS_TOKEN)".to_string(),
            )
            .error_response();
        }
    }
    let mut out = entity::ops::telemetry::Exposition::default();
    entity::ops::telemetry::process(&mut out, "cmo-api", state.started_at);
    entity::ops::telemetry::pool(&mut out, &state.db, state.db_max_connections);
    if state.db_read_connections > 0 {
        entity::ops::telemetry::readers(&mut out, &state.reads, state.db_read_connections);
    }
    // The backlog the worker works through, seen from every replica (answers within the
    // readiness timeout, or the family says it could not be read).
    let backlog = tokio::time::timeout(
        state.ready_timeout,
        entity::ops::telemetry::backlog(&state.db, state.clock.now()),
    )
    .await;
    let up = match backlog {
        Ok(Ok(backlog)) => {
            backlog.render(&mut out);
            1.0
        }
        _ => 0.0,
    };
    out.gauge(
        "cmo_backlog_up",
        "Whether the backlog could be read from the database.",
        up,
    );
    HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4")
        .body(state.metrics.render() + &out.into_text())
}
