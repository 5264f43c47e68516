//! What the worker tells Prometheus: each job's runs, failures, duration and last success
//! (an alert fires when a job stops succeeding), failed sends, and, read from the database
//! at each scrape, the work waiting (outbox, webhooks, escalation pages). Served with
//! `/healthz` on `CMO_WORKER_METRICS_BIND` when it is set.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use entity::ops::telemetry::{self, Exposition, label};
use http_body_util::Full;
use hyper::body::Bytes;
use hyper::{Request, Response, StatusCode};

use crate::jobs::JobContext;

/// Per job, labelled `worker_job` (Prometheus keeps `job` for the scrape job).
#[derive(Debug, Default, Clone)]
struct JobRuns {
    succeeded: u64,
    failed: u64,
    last_seconds: f64,
    last_success: Option<DateTime<Utc>>,
}

#[derive(Debug, Default)]
pub struct WorkerMetrics {
    jobs: Mutex<BTreeMap<&'static str, JobRuns>>,
    /// Emails whose sending failed (retried later or given up), webhooks not delivered.
    email_send_failures: AtomicU64,
    webhook_failures: AtomicU64,
}

impl WorkerMetrics {
    /// Runs `pass` as job `job`, recording its outcome and duration.
    pub async fn timed<T, E>(
        &self,
        job: &'static str,
        at: DateTime<Utc>,
        pass: impl Future<Output = Result<T, E>>,
    ) -> Result<T, E> {
        let started = Instant::now();
        let result = pass.await;
        self.record(job, result.is_ok(), started.elapsed(), at);
        result
    }

    pub fn record(&self, job: &'static str, ok: bool, took: Duration, at: DateTime<Utc>) {
        let mut jobs = self.jobs.lock().unwrap_or_else(|p| p.into_inner());
        let runs = jobs.entry(job).or_default();
        runs.last_seconds = took.as_secs_f64();
        if ok {
            runs.succeeded += 1;
            runs.last_success = Some(at);
        } else {
            runs.failed += 1;
        }
    }

    pub fn email_send_failed(&self, n: usize) {
        self.email_send_failures
            .fetch_add(n as u64, Ordering::Relaxed);
    }

    pub fn webhook_failed(&self, n: usize) {
        self.webhook_failures.fetch_add(n as u64, Ordering::Relaxed);
    }

    /// When the heartbeat job last succeeded: the worker's own liveness.
    pub fn last_heartbeat(&self) -> Option<DateTime<Utc>> {
        let jobs = self.jobs.lock().unwrap_or_else(|p| p.into_inner());
        jobs.get("heartbeat").and_then(|r| r.last_success)
    }

    fn render_jobs(&self, out: &mut Exposition) {
        let jobs = self.jobs.lock().unwrap_or_else(|p| p.into_inner()).clone();
        let each = |f: &dyn Fn(&JobRuns) -> Option<f64>| -> Vec<(String, f64)> {
            jobs.iter()
                .filter_map(|(job, runs)| f(runs).map(|v| (label("worker_job", job), v)))
                .collect()
        };
        out.family(
            "cmo_worker_job_runs_total",
            "Passes of each job that succeeded.",
            "counter",
            &each(&|r| Some(r.succeeded as f64)),
        )
        .family(
            "cmo_worker_job_failures_total",
            "Passes of each job that failed (the database away, say).",
            "counter",
            &each(&|r| Some(r.failed as f64)),
        )
        .family(
            "cmo_worker_job_last_duration_seconds",
            "How long each job's last pass took.",
            "gauge",
            &each(&|r| Some(r.last_seconds)),
        )
        .family(
            "cmo_worker_job_last_success_timestamp_seconds",
            "When each job last succeeded (domain clock, Unix seconds).",
            "gauge",
            &each(&|r| r.last_success.map(|t| t.timestamp() as f64)),
        )
        .counter(
            "cmo_email_send_failures_total",
            "Email sends that failed (retried later, or given up).",
            self.email_send_failures.load(Ordering::Relaxed) as f64,
        )
        .counter(
            "cmo_webhook_delivery_failures_total",
            "Webhook attempts that failed (retried later, or given up).",
            self.webhook_failures.load(Ordering::Relaxed) as f64,
        );
    }
}

/// The whole scrape: process, pool, jobs and the backlog read now.
pub async fn render(ctx: &JobContext, metrics: &WorkerMetrics, max_connections: u32) -> String {
    let mut out = Exposition::default();
    telemetry::process(&mut out, "cmo-worker", ctx.started_at);
    telemetry::pool(&mut out, &ctx.db, max_connections);
    metrics.render_jobs(&mut out);
    // A scrape answers promptly even while the database does not.
    let backlog = tokio::time::timeout(
        Duration::from_secs(2),
        telemetry::backlog(&ctx.db, ctx.now()),
    )
    .await;
    match backlog.unwrap_or_else(|_| Err(sea_orm::DbErr::Custom("no answer within 2 s".into()))) {
        Ok(backlog) => {
            backlog.render(&mut out);
            out.gauge(
                "cmo_backlog_up",
                "Whether the backlog could be read from the database.",
                1.0,
            );
        }
        Err(err) => {
            tracing::warn!(%err, "metrics: cannot read the backlog");
            out.gauge(
                "cmo_backlog_up",
                "Whether the backlog could be read from the database.",
                0.0,
            );
        }
    }
    out.into_text()
}

/// Where and how the worker serves its metrics.
#[derive(Debug, Clone)]
pub struct MetricsServer {
    pub bind: String,
    /// When set, `/metrics` answers only a scraper that sends it as a bearer token.
    pub token: Option<String>,
    /// `/healthz` fails when the heartbeat has not succeeded for this long.
    pub stale_after: Duration,
    pub max_connections: u32,
}

/// Binds and serves until the process ends; the bound address is logged ("cmo-worker
/// metrics listening") and returned.
pub async fn serve(
    settings: MetricsServer,
    ctx: Arc<JobContext>,
    metrics: Arc<WorkerMetrics>,
) -> std::io::Result<SocketAddr> {
    let listener = tokio::net::TcpListener::bind(&settings.bind).await?;
    let address = listener.local_addr()?;
    tracing::info!(%address, "cmo-worker metrics listening");
    let settings = Arc::new(settings);
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                // Out of file descriptors, say: no busy loop while it lasts.
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            };
            let (ctx, metrics, settings) = (ctx.clone(), metrics.clone(), settings.clone());
            tokio::spawn(async move {
                let service = hyper::service::service_fn(move |req| {
                    let (ctx, metrics, settings) = (ctx.clone(), metrics.clone(), settings.clone());
                    async move {
                        Ok::<_, std::convert::Infallible>(
                            answer(&req, &ctx, &metrics, &settings).await,
                        )
                    }
                });
                let io = hyper_util::rt::TokioIo::new(stream);
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(io, service)
                    .await;
            });
        }
    });
    Ok(address)
}

async fn answer(
    req: &Request<hyper::body::Incoming>,
    ctx: &JobContext,
    metrics: &WorkerMetrics,
    settings: &MetricsServer,
) -> Response<Full<Bytes>> {
    match req.uri().path() {
        "/metrics" => {
            if let Some(expected) = settings.token.as_deref() {
                let given = req
                    .headers()
                    .get(hyper::header::AUTHORIZATION)
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.strip_prefix("Bearer "))
                    .unwrap_or_default();
                if !constant_time_eq(given, expected) {
                    return text(
                        StatusCode::UNAUTHORIZED,
                        "metrics need the scraper's token (CMO_METRICS_TOKEN)\n",
                    );
                }
            }
            let body = render(ctx, metrics, settings.max_connections).await;
            let mut response = text(StatusCode::OK, &body);
            response.headers_mut().insert(
                hyper::header::CONTENT_TYPE,
                hyper::header::HeaderValue::from_static("text/plain; version=0.0.4"),
            );
            response
        }
        "/healthz" => {
            let now = ctx.now();
            let fresh = metrics
                .last_heartbeat()
                .is_some_and(|t| (now - t).to_std().unwrap_or_default() <= settings.stale_after);
            let body = serde_json::json!({
                "status": if fresh { "ok" } else { "stale" },
                "worker_id": ctx.worker_id,
                "last_heartbeat": metrics.last_heartbeat(),
            })
            .to_string();
            let status = if fresh {
                StatusCode::OK
            } else {
                StatusCode::SERVICE_UNAVAILABLE
            };
            let mut response = text(status, &body);
            response.headers_mut().insert(
                hyper::header::CONTENT_TYPE,
                hyper::header::HeaderValue::from_static("application/json"),
            );
            response
        }
        _ => text(StatusCode::NOT_FOUND, "not found: /metrics or /healthz\n"),
    }
}

fn text(status: StatusCode, body: &str) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(body.to_string())));
    *response.status_mut() = status;
    response
}

/// The comparison must not tell how much of a guess was right.
fn constant_time_eq(given: &str, expected: &str) -> bool {
    given.len() == expected.len()
        && given
            .bytes()
            .zip(expected.bytes())
            .fold(0_u8, |acc, (a, b)| acc | (a ^ b))
            == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_job_s_runs_failures_and_last_success_are_kept() {
        let m = WorkerMetrics::default();
        let at = chrono::DateTime::from_timestamp(1_800_000_000, 0).unwrap();
        let _ = m.timed("digests", at, async { Ok::<_, ()>(()) }).await;
        let _ = m.timed("digests", at, async { Err::<(), _>(()) }).await;
        let mut out = Exposition::default();
        m.render_jobs(&mut out);
        let text = out.into_text();
        assert!(
            text.contains("cmo_worker_job_runs_total{worker_job=\"digests\"} 1"),
            "{text}"
        );
        assert!(
            text.contains("cmo_worker_job_failures_total{worker_job=\"digests\"} 1"),
            "{text}"
        );
        assert!(
            text.contains(
                "cmo_worker_job_last_success_timestamp_seconds{worker_job=\"digests\"} 1800000000"
            ),
            "{text}"
        );
        assert_eq!(m.last_heartbeat(), None);
    }
}
