//! Escalation first-page latency: from sending `POST /deviations` (critical) to
//! the SMTP sink accepting the tier-1 page, over 200 deviations, with two workers
//! running their real loops (fast tick, LISTEN/NOTIFY on PostgreSQL), each on its own
//! database connection pool. Prints p50/p90/p99/max, on SQLite and on PostgreSQL.
//!
//! Run: `cargo run --release -p e2e --bin bench_escalation`. Loopback only; bounded.

use std::time::{Duration, Instant};

use e2e::smtp::SmtpSink;
use e2e::{Backend, spawn_app};
use serde_json::json;
use worker::jobs::JobContext;
use worker::runner::{JobSettings, Schedules};

const DEVIATIONS: usize = 200;

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
    // Two workers, each with its own pool, as two processes would have.
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let mut workers = Vec::new();
    for n in 0..2 {
        let db = api::db::connect(&app.database_url, None)
            .await
            .expect("worker connection");
        let ctx = JobContext {
            db,
            ..app.job_context(&format!("bench-{n}"))
        };
        // Only pages reach the sink (the bench counts emails): quiet schedules.
        let mail = JobSettings {
            batch: 100,
            escalations: worker::jobs::escalations::EscalationSettings {
                public_base_url: app.base_url.clone(),
                mail_domain: "cmo.test".to_string(),
                ..Default::default()
            },
            ..e2e::quiet_job_settings(&sink.url())
        };
        let mut stopped = stopped.clone();
        workers.push(tokio::spawn(async move {
            let shutdown = async move {
                let _ = stopped.changed().await;
            };
            worker::runner::run(ctx, Schedules::default(), mail, shutdown).await
        }));
    }

    let admin = app.admin();
    let cmo = admin
        .post("/api/v1/organizations", json!({"name": "CMO", "kind": "cmo", "admin": {"email": "a@cmo.test", "display_name": "A"}}))
        .await
        .expect(201)
        .body["organization"]["id"]
        .as_i64()
        .unwrap_or_default();
    app.qualify_cmo(cmo).await;
    let program = admin
        .post(
            "/api/v1/programs",
            json!({"name": "P", "product_name": "P", "cmo_org_id": cmo, "modality": "biologic", "stage": "clinical", "time_zone": "UTC"}),
        )
        .await
        .expect(201)
        .body["id"]
        .as_i64()
        .unwrap_or_default();
    admin
        .post(
            &format!("/api/v1/programs/{program}/team"),
            json!({"user_id": app.admin_id, "governance_tier": "core_team", "program_role": "QA on call"}),
        )
        .await
        .expect(201);

    let mut latencies = Vec::with_capacity(DEVIATIONS);
    for n in 0..DEVIATIONS {
        let before = sink.count();
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
            if sink.count() > before {
                got = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        assert!(got, "no page for deviation {n} within 10 s");
        latencies.push(created.elapsed());
    }
    let _ = stop.send(true);
    for w in workers {
        let _ = w.await;
    }
    let pages = sink.count();
    assert_eq!(latencies.len(), DEVIATIONS, "a page for every deviation");
    latencies.sort();
    println!(
        "{backend:?}: {DEVIATIONS} critical deviations, 2 workers: POST sent -> SMTP receipt p50 {:.1?}, p90 {:.1?}, p99 {:.1?}, max {:.1?} ({pages} pages received, duplicates: {})",
        percentile(&latencies, 0.5),
        percentile(&latencies, 0.9),
        percentile(&latencies, 0.99),
        latencies.last().copied().unwrap_or_default(),
        pages.saturating_sub(DEVIATIONS),
    );
    app.stop().await;
}

#[actix_web::main]
async fn main() {
    bench(Backend::Sqlite).await;
    bench(Backend::Postgres).await;
}
