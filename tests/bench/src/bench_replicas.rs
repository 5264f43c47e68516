//! Several replicas on one PostgreSQL: the same bounded load (16 keep-alive clients, each
//! listing deviations, moving its own action item through start/complete/reopen, and
//! reporting a critical deviation now and then) against one `cmo-api` + one `cmo-worker`
//! process, then against two of each (clients spread over the apis). Prints requests/s of
//! each run and their ratio, and checks that every critical deviation was paged exactly
//! once and every `deviation.reported` webhook delivered exactly once (by webhook-id),
//! however many workers ran.
//!
//! Run: `bench/run`, or `cargo run --release -p bench --bin bench_replicas` (needs
//! PostgreSQL installed). Loopback only; every loop is bounded.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use e2e::api_process::ApiProcess;
use e2e::hooks::HookReceiver;
use e2e::smtp::SmtpSink;
use e2e::worker_process::WorkerProcess;
use e2e::{Backend, spawn_app_on};
use futures_util::future::join_all;
use sea_orm::ConnectionTrait;
use serde_json::json;

const CLIENTS: usize = 16;
const ROUNDS: usize = 60;
/// Every this many rounds a client reports a critical deviation.
const CRITICAL_EVERY: usize = 20;

fn cycle_step(i: usize) -> serde_json::Value {
    match i % 3 {
        0 => json!({"event": "start"}),
        1 => json!({"event": "complete"}),
        _ => json!({"event": "reopen", "reason": "bench"}),
    }
}

/// Pages received (subject in the raw header); other emails (the production-hold
/// notice) go to the same sink.
fn pages(sink: &SmtpSink) -> usize {
    sink.received()
        .iter()
        .filter(|r| r.data.contains("\r\nSubject: [CRITICAL]"))
        .count()
}

struct Run {
    replicas: usize,
    rps: f64,
    deviations: usize,
    pages: usize,
    deliveries: usize,
    distinct_deliveries: usize,
}

#[allow(clippy::too_many_arguments)]
async fn run(
    app: &e2e::TestApp,
    replicas: usize,
    token: &str,
    program: i64,
    items: &[i64],
    sink: &SmtpSink,
    hooks: &HookReceiver,
) -> Run {
    let (pages_before, hooks_before) = (pages(sink), hooks.count());
    let apis: Vec<ApiProcess> = (0..replicas)
        .map(|_| ApiProcess::start(&app.database_url, app.now(), &[]))
        .collect();
    let workers: Vec<WorkerProcess> = (0..replicas)
        .map(|w| {
            WorkerProcess::start(
                &app.database_url,
                &sink.url(),
                &format!("replica-{replicas}-{w}"),
                app.now(),
                &[("CMO_PUBLIC_BASE_URL", app.base_url.as_str())],
            )
        })
        .collect();
    let detected_at = app.now();
    let started = Instant::now();
    let load = (0..CLIENTS).map(|c| {
        let client = apis[c % replicas].client(token);
        let path = format!("/api/v1/action-items/{}/transitions", items[c]);
        async move {
            let (mut requests, mut reported) = (0, 0);
            for r in 0..ROUNDS {
                client
                    .get(&format!("/api/v1/deviations?program_id={program}&limit=50"))
                    .await
                    .expect(200);
                client.post(&path, cycle_step(r)).await.expect(200);
                requests += 2;
                if r % CRITICAL_EVERY == 0 {
                    client
                        .post(
                            &format!("/api/v1/programs/{program}/deviations"),
                            json!({"title": format!("Excursion {c}/{r}"), "description": "bench",
                                   "detected_at": detected_at, "criticality": "critical", "category": "equipment"}),
                        )
                        .await
                        .expect(201);
                    requests += 1;
                    reported += 1;
                }
            }
            // Back to open for the next run: finish the cycle.
            for r in ROUNDS..ROUNDS.div_ceil(3) * 3 {
                client.post(&path, cycle_step(r)).await.expect(200);
            }
            (requests, reported)
        }
    });
    let done: Vec<(usize, usize)> = join_all(load).await;
    let wall = started.elapsed();
    let requests: usize = done.iter().map(|d| d.0).sum();
    let deviations: usize = done.iter().map(|d| d.1).sum();
    // Every page and delivery arrives (bounded wait), then a moment for any duplicate.
    for _ in 0..600 {
        if pages(sink) - pages_before >= deviations && hooks.count() - hooks_before >= deviations {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    let received = hooks.received();
    let fresh = &received[hooks_before..];
    let distinct: BTreeSet<String> = fresh
        .iter()
        .filter_map(|h| h.header("webhook-id").map(String::from))
        .collect();
    for w in workers {
        let id = w.worker_id.clone();
        assert!(w.stop().await.success(), "{id} exits 0 on SIGTERM");
    }
    drop(apis);
    Run {
        replicas,
        rps: requests as f64 / wall.as_secs_f64(),
        deviations,
        pages: pages(sink) - pages_before,
        deliveries: fresh.len(),
        distinct_deliveries: distinct.len(),
    }
}

#[actix_web::main]
async fn main() {
    let Some(cluster) = e2e::pg::private_cluster() else {
        println!("PostgreSQL: skipped (not installed)");
        return;
    };
    let admin_db = sea_orm::Database::connect(cluster.url("postgres"))
        .await
        .expect("cluster");
    admin_db
        .execute_unprepared("CREATE DATABASE replicas")
        .await
        .expect("database");
    let app = spawn_app_on(
        cluster.url("replicas"),
        Backend::Postgres,
        tempfile::tempdir().expect("temp dir"),
        10_000,
    )
    .await;
    let sink = SmtpSink::start().await;
    let hooks = HookReceiver::start().await;
    let admin = app.admin();
    let (_, program) = app.program_with_new_cmo("P").await;
    admin
        .post(
            &format!("/api/v1/programs/{program}/team"),
            json!({"user_id": app.admin_id, "governance_tier": "core_team", "program_role": "QA on call"}),
        )
        .await
        .expect(201);
    admin
        .post(
            "/api/v1/webhooks",
            json!({"url": hooks.url("/hook"), "event_types": ["deviation.reported"]}),
        )
        .await
        .expect(201);
    let due = (app.now() + chrono::TimeDelta::days(30)).date_naive();
    let mut items = Vec::new();
    for n in 0..CLIENTS {
        let item = admin
            .post(
                &format!("/api/v1/programs/{program}/action-items"),
                json!({"title": format!("Action {n}"), "owner_user_id": app.admin_id, "due_date": due}),
            )
            .await
            .expect(201)
            .body;
        items.push(item["id"].as_i64().unwrap_or_default());
    }
    let token = app.admin_token.clone();
    let mut runs = Vec::new();
    for replicas in [1, 2] {
        runs.push(run(&app, replicas, &token, program, &items, &sink, &hooks).await);
    }
    app.stop().await;
    for r in &runs {
        println!(
            "PostgreSQL, {n} api + {n} worker processes: {:.0} req/s ({CLIENTS} clients, list + transition + a critical deviation every {CRITICAL_EVERY} rounds); {} critical deviations: {} pages, {} webhook deliveries ({} distinct webhook-ids)",
            r.rps,
            r.deviations,
            r.pages,
            r.deliveries,
            r.distinct_deliveries,
            n = r.replicas,
        );
        assert_eq!(r.pages, r.deviations, "one page per critical deviation");
        assert_eq!(
            (r.deliveries, r.distinct_deliveries),
            (r.deviations, r.deviations),
            "one delivery per event"
        );
    }
    println!(
        "PostgreSQL: 2 replicas / 1 replica throughput = {:.2} (2 cores: the api, workers, PostgreSQL and the clients share them)",
        runs[1].rps / runs[0].rps
    );
}
