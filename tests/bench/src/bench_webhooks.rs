//! Webhook delivery: throughput to a local receiver, and event-to-delivery latency.
//!
//! 1. The receiver's ceiling: a plain blaster (our HTTP client with its kept-alive
//!    connections, 16 in flight, no database) POSTing the same signed body 5,000 times.
//! 2. Throughput: 5,000 events with a subscription each (written by the real
//!    `domain_event::emit`, so deliveries are queued by the real fan-out), delivered by
//!    one worker pass, then by two workers at once (own pools): deliveries/s and the
//!    ratio to the ceiling.
//! 3. Latency: two workers running their real loops (250 ms tick; LISTEN/NOTIFY on
//!    PostgreSQL); 200 `POST /deviations`, each followed by a random 0–250 ms pause;
//!    from sending the POST to the receiver holding the request: p50/p90/p99/max.
//!
//! Run: `cargo run --release -p e2e --bin bench_webhooks`. Loopback only; bounded.

use std::time::{Duration, Instant};

use e2e::hooks::HookReceiver;
use e2e::{Backend, TestApp, spawn_app};
use entity::domain_event::{self, DeviationReported, Event};
use sea_orm::TransactionTrait;
use serde_json::json;
use worker::jobs::JobContext;
use worker::jobs::webhooks::{WebhookSettings, delivery_pass};
use worker::outbound::http::HttpClient;
use worker::runner::{JobSettings, Schedules};

const EVENTS: usize = 5_000;
const LATENCY_SAMPLES: usize = 200;

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

async fn worker_ctx(app: &TestApp, name: &str) -> JobContext {
    JobContext {
        db: migration::startup::connect(&app.database_url, None)
            .await
            .expect("worker connection"),
        ..app.job_context(name)
    }
}

async fn program(app: &TestApp) -> i64 {
    let admin = app.admin();
    let cmo = admin
        .post("/api/v1/organizations", json!({"name": "CMO", "kind": "cmo", "admin": {"email": "a@cmo.test", "display_name": "A"}}))
        .await
        .expect(201)
        .body["organization"]["id"]
        .as_i64()
        .unwrap_or_default();
    app.qualify_cmo(cmo).await;
    admin
        .post(
            "/api/v1/programs",
            json!({"name": "P", "product_name": "P", "cmo_org_id": cmo, "modality": "biologic", "stage": "clinical", "time_zone": "UTC"}),
        )
        .await
        .expect(201)
        .body["id"]
        .as_i64()
        .unwrap_or_default()
}

async fn subscribe(app: &TestApp, url: &str) -> i64 {
    app.admin()
        .post(
            "/api/v1/webhooks",
            json!({"url": url, "event_types": ["deviation.reported"]}),
        )
        .await
        .expect(201)
        .body["subscription"]["id"]
        .as_i64()
        .unwrap_or_default()
}

/// Writes `n` events through the real emit (and fan-out), 500 per transaction.
async fn seed_events(app: &TestApp, program_id: i64, n: usize) {
    let now = app.now();
    for chunk in 0..n.div_ceil(500) {
        let txn = app.db.begin().await.expect("begin");
        for i in 0..500.min(n - chunk * 500) {
            let id = (chunk * 500 + i) as i64;
            domain_event::emit(
                &txn,
                program_id,
                Event::DeviationReported(DeviationReported {
                    deviation_id: id,
                    title: format!("Deviation {id}"),
                    criticality: entity::deviation::Criticality::Minor,
                    category: entity::deviation::Category::Documentation,
                    detected_at: now,
                }),
                now,
            )
            .await
            .expect("emit");
        }
        txn.commit().await.expect("commit");
    }
}

async fn ceiling(receiver: &HookReceiver) -> f64 {
    use futures_util::StreamExt;
    let client = HttpClient::new(Duration::from_secs(10))
        .expect("client")
        .with_policy(entity::webhook::AddressPolicy::LOOPBACK_ALLOWED);
    let body = br#"{"cursor":1,"type":"deviation.reported","program_id":1,"resource_type":"deviation","resource_id":"1","payload":{"deviation_id":1,"title":"Deviation 1","criticality":"minor","category":"documentation","detected_at":"2026-11-30T00:00:00Z"},"occurred_at":"2026-11-30T00:00:00Z"}"#;
    let url = receiver.url("/ceiling");
    let start = Instant::now();
    let ok = futures_util::stream::iter(0..EVENTS)
        .map(|i| {
            let client = client.clone();
            let url = url.clone();
            async move {
                let headers = [
                    ("X-Cmo-Event-Id", i.to_string()),
                    (
                        "X-Cmo-Signature",
                        entity::webhook::signature("whsec_x", 1, body),
                    ),
                ];
                client.post_json(&url, &headers, body).await.is_ok()
            }
        })
        .buffer_unordered(16)
        .filter(|ok| std::future::ready(*ok))
        .count()
        .await;
    assert_eq!(ok, EVENTS, "the blaster's POSTs must all succeed");
    EVENTS as f64 / start.elapsed().as_secs_f64()
}

async fn bench(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        println!("{backend:?}: skipped (not available)");
        return;
    };
    let receiver = HookReceiver::start().await;
    let blaster = ceiling(&receiver).await;
    let program_id = program(&app).await;
    let client = HttpClient::new(Duration::from_secs(10))
        .expect("client")
        .with_policy(entity::webhook::AddressPolicy::LOOPBACK_ALLOWED);
    let settings = WebhookSettings::default();

    // Throughput, one worker.
    let sub = subscribe(&app, &receiver.url("/one")).await;
    seed_events(&app, program_id, EVENTS).await;
    let w1 = worker_ctx(&app, "w1").await;
    let start = Instant::now();
    let r = delivery_pass(&w1, &client, app.now(), &settings)
        .await
        .expect("pass");
    let one = r.delivered as f64 / start.elapsed().as_secs_f64();
    assert_eq!(r.delivered, EVENTS);
    // Two workers at once (the first subscription off, a second one on).
    app.admin()
        .patch(
            &format!("/api/v1/webhooks/{sub}"),
            json!({"version": 1, "active": false}),
        )
        .await
        .expect(200);
    subscribe(&app, &receiver.url("/two")).await;
    seed_events(&app, program_id, EVENTS).await;
    let w2 = worker_ctx(&app, "w2").await;
    let before = receiver.count();
    let start = Instant::now();
    let now = app.now();
    let (a, b) = tokio::join!(
        delivery_pass(&w1, &client, now, &settings),
        delivery_pass(&w2, &client, now, &settings)
    );
    let two_delivered = a.expect("pass").delivered + b.expect("pass").delivered;
    let two = two_delivered as f64 / start.elapsed().as_secs_f64();
    assert_eq!(two_delivered, EVENTS);
    assert_eq!(receiver.count() - before, EVENTS, "each event once");
    println!(
        "{backend:?}: receiver ceiling (plain blaster, 16 in flight) {blaster:.0}/s; \
         1 worker {one:.0} deliveries/s ({:.2}x of ceiling); 2 workers {two:.0}/s ({:.2}x)",
        one / blaster,
        two / blaster
    );

    // Latency with the real worker loops.
    let latency_receiver = HookReceiver::start().await;
    subscribe(&app, &latency_receiver.url("/latency")).await;
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let mut workers = Vec::new();
    for n in 0..2 {
        let ctx = worker_ctx(&app, &format!("loop-{n}")).await;
        // Quiet reminder, digest and agreement schedules: only deliveries run, whatever
        // the day and hour (the clock is the app's fixed one anyway).
        let jobs = JobSettings {
            mailer: worker::outbound::mailer::Mailer::new(
                None,
                std::env::temp_dir().join("bench-webhooks-eml"),
            )
            .expect("mailer"),
            batch: 100,
            webhooks: WebhookSettings::default(),
            retention: Default::default(),
            http: HttpClient::new(Duration::from_secs(10))
                .expect("client")
                .with_policy(entity::webhook::AddressPolicy::LOOPBACK_ALLOWED),
            ..e2e::quiet_job_settings("smtp://127.0.0.1:9")
        };
        let mut stopped = stopped.clone();
        workers.push(tokio::spawn(async move {
            let shutdown = async move {
                let _ = stopped.changed().await;
            };
            worker::runner::run(ctx, Schedules::default(), jobs, shutdown).await
        }));
    }
    // Both workers are running their loops (each wrote its first heartbeat) before the
    // first sample: a bounded wait on that, not a fixed pause.
    for _ in 0..500 {
        let beats = <entity::worker_heartbeat::Entity as sea_orm::EntityTrait>::find()
            .all(&app.db)
            .await
            .map(|rows| {
                rows.iter()
                    .filter(|b| b.worker_id.starts_with("loop-"))
                    .count()
            })
            .unwrap_or(0);
        if beats == 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let pm = app.admin();
    let mut latencies = Vec::with_capacity(LATENCY_SAMPLES);
    for n in 0..LATENCY_SAMPLES {
        let before = latency_receiver.count();
        // Timed from before the POST: with NOTIFY the delivery can beat the 201.
        let created = Instant::now();
        pm.post(
            &format!("/api/v1/programs/{program_id}/deviations"),
            json!({"title": format!("Deviation {n}"), "description": "bench", "detected_at": app.now(),
                   "criticality": "minor", "category": "documentation"}),
        )
        .await
        .expect(201);
        let mut got = false;
        for _ in 0..10_000 {
            if latency_receiver.count() > before {
                got = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        assert!(got, "no delivery for deviation {n} within 10 s");
        latencies.push(created.elapsed());
        tokio::time::sleep(Duration::from_millis(rand::random_range(0..250))).await;
    }
    let _ = stop.send(true);
    for w in workers {
        let _ = w.await;
    }
    let received = latency_receiver.count();
    latencies.sort();
    println!(
        "{backend:?}: {LATENCY_SAMPLES} events, 2 worker loops: POST sent -> receiver p50 {:.1?}, p90 {:.1?}, p99 {:.1?}, max {:.1?} ({received} received, duplicates: {})",
        percentile(&latencies, 0.5),
        percentile(&latencies, 0.9),
        percentile(&latencies, 0.99),
        latencies.last().copied().unwrap_or_default(),
        received.saturating_sub(LATENCY_SAMPLES),
    );
    app.stop().await;
}

#[actix_web::main]
async fn main() {
    bench(Backend::Sqlite).await;
    bench(Backend::Postgres).await;
}
