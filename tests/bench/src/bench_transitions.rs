//! Throughput of `POST /deviations/{id}/transitions` under 32 concurrent clients, over
//! loopback HTTP against the real api, on SQLite and (when installed) PostgreSQL.
//!
//! Run: `cargo run --release -p e2e --bin bench_transitions`. Each client drives its own
//! deviations through `triage` then `start_investigation`; the loop is bounded (a fixed
//! number of deviations per client). Prints transitions per second and latency.

use std::time::{Duration, Instant};

use e2e::{Backend, Client, spawn_app};
use entity::deviation::{self, Category, Criticality, DeviationStatus};
use sea_orm::{ActiveValue::NotSet, ActiveValue::Set, EntityTrait};
use serde_json::json;

const CLIENTS: usize = 32;
const DEVIATIONS_PER_CLIENT: usize = 25;

async fn run_client(client: Client, ids: Vec<i64>) -> (usize, usize, Vec<Duration>) {
    let mut ok = 0;
    let mut failed = 0;
    let mut latencies = Vec::with_capacity(ids.len() * 2);
    for id in ids {
        for event in ["triage", "start_investigation"] {
            let started = Instant::now();
            let reply = client
                .post(
                    &format!("/api/v1/deviations/{id}/transitions"),
                    json!({"event": event}),
                )
                .await;
            // Only successful transitions count towards the latencies (a fast refusal
            // would flatter them).
            if reply.status == 200 {
                latencies.push(started.elapsed());
                ok += 1;
            } else {
                failed += 1;
            }
        }
    }
    (ok, failed, latencies)
}

async fn bench(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        println!("{backend:?}: skipped (not available)");
        return;
    };
    let admin = app.admin();
    let cmo = admin
        .post(
            "/api/v1/organizations",
            json!({"name": "Bench CMO", "kind": "cmo", "admin": {"email": "pm@bench.test", "display_name": "PM"}}),
        )
        .await
        .expect(201)
        .body["organization"]["id"]
        .as_i64()
        .unwrap_or_default();
    app.qualify_cmo(cmo).await;
    let program = admin
        .post(
            "/api/v1/programs",
            json!({"name": "Bench", "product_name": "B", "cmo_org_id": cmo, "modality": "biologic", "stage": "clinical", "time_zone": "UTC"}),
        )
        .await
        .expect(201)
        .body["id"]
        .as_i64()
        .unwrap_or_default();
    let now = app.now();
    let total = CLIENTS * DEVIATIONS_PER_CLIENT;
    let rows: Vec<deviation::ActiveModel> = (0..total)
        .map(|i| deviation::ActiveModel {
            id: NotSet,
            record_number: NotSet,
            program_id: Set(program),
            milestone_id: Set(None),
            batch_lot: Set(None),
            title: Set(format!("Bench deviation {i}")),
            description: Set("bench".to_string()),
            detected_at: Set(now),
            reported_by_user_id: Set(app.admin_id),
            process_step: Set(None),
            criticality: Set(Criticality::Minor),
            category: Set(Category::Process),
            status: Set(DeviationStatus::Reported),
            triaged_at: Set(None),
            short_term_fix: Set(None),
            root_cause_method: Set(None),
            root_cause_category: Set(None),
            root_cause_narrative: Set(None),
            closure_signature_id: Set(None),
            closed_at: Set(None),
            cancel_reason: Set(None),
            created_at: Set(now),
            updated_at: Set(now),
            version: Set(1),
        })
        .collect();
    for chunk in rows.chunks(200) {
        if let Err(err) = deviation::Entity::insert_many(chunk.to_vec())
            .exec(&app.db)
            .await
        {
            println!("{backend:?}: seeding failed: {err}");
            return;
        }
    }
    let ids: Vec<i64> = deviation::Entity::find()
        .all(&app.db)
        .await
        .unwrap_or_default()
        .into_iter()
        .map(|d| d.id)
        .collect();
    let started = Instant::now();
    let tasks: Vec<_> = ids
        .chunks(DEVIATIONS_PER_CLIENT)
        .map(|chunk| run_client(app.admin(), chunk.to_vec()))
        .collect();
    let results = futures_util::future::join_all(tasks).await;
    let elapsed = started.elapsed();
    let ok: usize = results.iter().map(|r| r.0).sum();
    let failed: usize = results.iter().map(|r| r.1).sum();
    let mut latencies: Vec<Duration> = results.into_iter().flat_map(|r| r.2).collect();
    // REQ: BENCH-HONEST
    // The work timed was done: every deviation went through both transitions.
    assert_eq!(
        (ok, failed),
        (ids.len() * 2, 0),
        "every transition succeeded"
    );
    latencies.sort();
    let pct = |p: f64| latencies[((latencies.len() as f64 - 1.0) * p).round() as usize];
    println!(
        "{backend:?}: {CLIENTS} clients, {} transitions ({ok} ok, {failed} failed) in {elapsed:.2?}: {:.0} transitions/s; latency median {:.2?} p95 {:.2?} p99 {:.2?}",
        ok + failed,
        ok as f64 / elapsed.as_secs_f64(),
        pct(0.5),
        pct(0.95),
        pct(0.99)
    );
    app.stop().await;
}

#[actix_web::main]
async fn main() {
    println!(
        "bench_transitions: in-process api on 127.0.0.1 (1 HTTP worker, default pool), awc clients, {CLIENTS} concurrent"
    );
    bench(Backend::Sqlite).await;
    bench(Backend::Postgres).await;
}
