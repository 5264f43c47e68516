//! Escalation first-page latency: from sending `POST /deviations` (critical) to
//! the SMTP sink accepting the tier-1 page, over 200 deviations, with two real
//! `cmo-worker` processes (fast tick, LISTEN/NOTIFY on PostgreSQL). Prints
//! p50/p90/p99/max, on SQLite and on PostgreSQL.
//!
//! Run: `cargo run --release -p e2e --bin bench_escalation`. Loopback only; bounded.

use std::time::{Duration, Instant};

use e2e::smtp::SmtpSink;
use e2e::{Backend, spawn_app};
use serde_json::json;

const DEVIATIONS: usize = 200;

/// Pages received: the production-hold notice of the first critical deviation goes to
/// the same sink and is not a page.
fn pages(sink: &SmtpSink) -> usize {
    sink.received()
        .iter()
        // The raw header, not a MIME parse: this runs every millisecond while waiting.
        .filter(|r| r.data.contains("\r\nSubject: [CRITICAL]"))
        .count()
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

async fn bench(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        println!("{backend:?}: skipped (not available)");
        return;
    };
    let sink = SmtpSink::start().await;
    // Two real `cmo-worker` processes (apart from this process, which runs the api, the
    // SMTP sink and the client), at the api's instant, with quiet reminder and digest
    // schedules so that only pages reach the sink.
    let workers: Vec<e2e::worker_process::WorkerProcess> = (0..2)
        .map(|n| {
            e2e::worker_process::WorkerProcess::start(
                &app.database_url,
                &sink.url(),
                &format!("bench-{n}"),
                app.now(),
                &[
                    ("CMO_PUBLIC_BASE_URL", app.base_url.as_str()),
                    ("CMO_HEARTBEAT_CRON", "*/30 * * * * *"),
                ],
            )
        })
        .collect();

    let admin = app.admin();
    let (_, program) = app.program_with_new_cmo("P").await;
    admin
        .post(
            &format!("/api/v1/programs/{program}/team"),
            json!({"user_id": app.admin_id, "governance_tier": "core_team", "program_role": "QA on call"}),
        )
        .await
        .expect(201);

    let mut latencies = Vec::with_capacity(DEVIATIONS);
    for n in 0..DEVIATIONS {
        let before = pages(&sink);
        // Timed from before the POST: with NOTIFY the page can beat the 201.
        let created = Instant::now();
        admin
            .post(
                &format!("/api/v1/programs/{program}/deviations"),
                json!({"title": format!("Deviation {n}"), "description": "bench", "detected_at": app.now(),
                       "criticality": "critical", "category": "equipment"}),
            )
            .await
            .expect(201);
        // Bounded wait for the page (10 s).
        let mut got = false;
        for _ in 0..10_000 {
            if pages(&sink) > before {
                got = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        assert!(got, "no page for deviation {n} within 10 s");
        latencies.push(created.elapsed());
        // A random pause before the next one: otherwise every POST follows a page, i.e.
        // a worker's tick, and waits a whole tick period (the samples would lock to the
        // tick's phase instead of sampling it).
        tokio::time::sleep(Duration::from_millis(rand::random_range(0..250))).await;
    }
    for w in workers {
        let id = w.worker_id.clone();
        assert!(w.stop().await.success(), "{id} exits 0 on SIGTERM");
    }
    let (paged, emails) = (pages(&sink), sink.count());
    assert_eq!(latencies.len(), DEVIATIONS, "a page for every deviation");
    latencies.sort();
    println!(
        "{backend:?}: {DEVIATIONS} critical deviations, 2 workers: POST sent -> SMTP receipt p50 {:.1?}, p90 {:.1?}, p99 {:.1?}, max {:.1?} ({paged} pages received, duplicates: {}; {} other emails)",
        percentile(&latencies, 0.5),
        percentile(&latencies, 0.9),
        percentile(&latencies, 0.99),
        latencies.last().copied().unwrap_or_default(),
        paged.saturating_sub(DEVIATIONS),
        emails - paged,
    );
    app.stop().await;
}

#[actix_web::main]
async fn main() {
    bench(Backend::Sqlite).await;
    bench(Backend::Postgres).await;
}
