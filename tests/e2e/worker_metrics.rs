//! The worker's own `/metrics` and `/healthz` (`CMO_WORKER_METRICS_BIND`): the real
//! binary, its outbox depth rising under a burst at a slow SMTP server and falling to zero
//! as it is sent, a refused send counted, each job's runs and last success, the scraper's
//! token.

use std::time::Duration;

use e2e::worker_process::WorkerProcess;
use e2e::{Client, TestApp, on_both_databases};
use serde_json::json;

/// The value of the sample `name` (exactly, labels included) in a scrape.
fn sample(text: &str, name: &str) -> Option<f64> {
    text.lines()
        .find_map(|line| line.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
}

/// The address the worker logged for its metrics.
async fn metrics_address(worker: &WorkerProcess) -> String {
    for _ in 0..200 {
        if let Some(line) = worker
            .log()
            .lines()
            .find(|l| l.contains("cmo-worker metrics listening"))
        {
            let at = line.find("address").expect("address field");
            let rest = &line[at..];
            let start = rest.find("127.0.0.1").expect("loopback address");
            let address: String = rest[start..]
                .chars()
                .take_while(|c| c.is_ascii_digit() || *c == '.' || *c == ':')
                .collect();
            return address;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("no metrics address logged: {}", worker.log());
}

async fn worker_metrics_show_the_outbox_rise_and_fall(app: &TestApp) {
    // REQ: OPS-WORKER-METRICS
    // A slow SMTP server (400 ms a message), so that a burst waits visibly.
    let sink = e2e::smtp::SmtpSink::start().await;
    sink.slow_down(Duration::from_millis(400));
    let worker = WorkerProcess::start(
        &app.database_url,
        &sink.url(),
        "metrics",
        app.now(),
        &[
            ("CMO_WORKER_METRICS_BIND", "127.0.0.1:0"),
            ("CMO_METRICS_TOKEN", "scrape-me"),
            ("CMO_LOG", "info"),
        ],
    );
    let base = format!("http://{}", metrics_address(&worker).await);
    let scraper = Client::new(&base, Some("scrape-me"));
    Client::new(&base, Some("wrong"))
        .get("/metrics")
        .await
        .expect(401);
    // Healthy once its first heartbeat is written (503 "stale" until then).
    let anonymous = Client::new(&base, None);
    let mut health = anonymous.get("/healthz").await;
    for _ in 0..200 {
        if health.status.as_u16() == 200 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
        health = anonymous.get("/healthz").await;
    }
    let health = health.expect(200);
    assert_eq!(health.body["status"], "ok");
    assert_eq!(health.body["worker_id"], "metrics");
    let before = scraper.get("/metrics").await.expect(200).text;
    assert_eq!(sample(&before, "cmo_outbox_waiting"), Some(0.0), "{before}");
    assert_eq!(sample(&before, "cmo_backlog_up"), Some(1.0), "{before}");
    assert!(
        before.contains("cmo_build_info{binary=\"cmo-worker\""),
        "{before}"
    );
    assert!(
        sample(&before, "cmo_db_pool_max_connections").is_some(),
        "{before}"
    );

    // A burst of invitations, one of them to an address the server refuses (550).
    for n in 0..8 {
        let domain = if n == 0 { "refused.test" } else { "acme.test" };
        app.admin()
            .post(
                "/api/v1/invitations",
                json!({"email": format!("metrics{n}@{domain}"), "display_name": "Metrics", "role": "viewer"}),
            )
            .await
            .expect(201);
    }
    let mut peak = 0.0_f64;
    let mut last = String::new();
    for _ in 0..400 {
        last = scraper.get("/metrics").await.expect(200).text;
        let waiting = sample(&last, "cmo_outbox_waiting").unwrap_or(-1.0);
        peak = peak.max(waiting);
        if peak >= 3.0 && waiting == 0.0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        peak >= 3.0,
        "the burst was seen waiting (peak {peak}): {last}"
    );
    assert_eq!(
        sample(&last, "cmo_outbox_waiting"),
        Some(0.0),
        "drained: {last}"
    );
    assert_eq!(
        sample(&last, "cmo_outbox_oldest_age_seconds"),
        Some(0.0),
        "{last}"
    );
    assert!(sink.count() >= 7, "the invitations arrived");
    assert!(
        sample(&last, "cmo_email_send_failures_total").unwrap_or(0.0) >= 1.0,
        "the refused one is counted: {last}"
    );
    assert!(
        sample(&last, "cmo_worker_job_runs_total{worker_job=\"outbox\"}").unwrap_or(0.0) >= 1.0,
        "{last}"
    );
    assert!(
        sample(
            &last,
            "cmo_worker_job_last_success_timestamp_seconds{worker_job=\"heartbeat\"}"
        )
        .is_some(),
        "{last}"
    );
    // The alert rules and the dashboard in the repository use only families the
    // binaries expose (between them), so they cannot drift from the code.
    let api = app.anonymous().get("/metrics").await.expect(200).text;
    let exposed = format!("{api}\n{last}");
    for file in [
        "ops/prometheus/alerts.yml",
        "ops/grafana/cmo-orchestrator.json",
    ] {
        let text = std::fs::read_to_string(format!("{}/../{file}", env!("CARGO_MANIFEST_DIR")))
            .unwrap_or_else(|e| panic!("{file}: {e}"));
        let mut names: Vec<&str> = text
            .match_indices("cmo_")
            .map(|(at, _)| {
                let end = text[at..]
                    .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                    .map_or(text.len(), |e| at + e);
                &text[at..end]
            })
            .collect();
        names.sort_unstable();
        names.dedup();
        assert!(names.len() > 5, "{file} names metrics");
        for name in names {
            assert!(
                exposed.lines().any(|l| l.starts_with(name)),
                "{file} uses {name}, which neither binary exposes"
            );
        }
    }
    assert!(worker.stop().await.success());
}
on_both_databases!(worker_metrics_show_the_outbox_rise_and_fall);
