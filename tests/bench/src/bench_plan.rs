//! Benchmark of the program-plan endpoints, against the real api over loopback HTTP:
//! - `POST /programs/{id}/plan` for the standard template (12 milestones, 25 gate items);
//! - `GET /programs/{id}/overview` for a program with 500 milestones.
//!
//! Run: `cargo run --release -p e2e --bin bench_plan` (PostgreSQL too when installed).
//! Prints figures; asserts nothing about them.

use std::time::{Duration, Instant};

use chrono::{NaiveDate, TimeDelta};
use e2e::{Backend, TestApp, spawn_app};
use entity::milestone::{self, MilestoneStatus};
use sea_orm::{ActiveValue::NotSet, ActiveValue::Set, EntityTrait};
use serde_json::json;

const PLAN_RUNS: usize = 30;
const OVERVIEW_RUNS: usize = 100;
const BIG_PLAN: usize = 500;

fn summary(label: &str, mut samples: Vec<Duration>) {
    samples.sort();
    let pct = |p: f64| samples[((samples.len() as f64 - 1.0) * p).round() as usize];
    let mean = samples.iter().sum::<Duration>() / samples.len() as u32;
    println!(
        "{label:<58} n={:<4} median={:>8.2?} p95={:>8.2?} max={:>8.2?} mean={:>8.2?}",
        samples.len(),
        pct(0.5),
        pct(0.95),
        samples[samples.len() - 1],
        mean
    );
}

async fn new_program(app: &TestApp, cmo_id: i64, n: usize) -> i64 {
    app.admin()
        .post(
            "/api/v1/programs",
            json!({"name": format!("Bench {n}"), "product_name": "BENCH", "cmo_org_id": cmo_id,
                   "modality": "biologic", "stage": "clinical", "time_zone": "Europe/Zurich"}),
        )
        .await
        .expect(201)
        .body["id"]
        .as_i64()
        .unwrap_or_default()
}

async fn bench(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        println!("{backend:?}: skipped (not available)");
        return;
    };
    let cmo = app
        .admin()
        .post(
            "/api/v1/organizations",
            json!({"name": "Bench CMO", "kind": "cmo", "admin": {"email": "pm@bench-cmo.test", "display_name": "PM"}}),
        )
        .await
        .expect(201)
        .body["organization"]["id"]
        .as_i64()
        .unwrap_or_default();
    app.qualify_cmo(cmo).await;

    // One client (keep-alive) for every sample: a sample times the request, not a TCP
    // connect.
    let admin = app.admin();
    let mut plan_samples = Vec::with_capacity(PLAN_RUNS);
    for n in 0..PLAN_RUNS {
        let program = new_program(&app, cmo, n).await;
        let started = Instant::now();
        admin
            .post(
                &format!("/api/v1/programs/{program}/plan"),
                json!({"template": "cdmo_standard", "start_date": "2027-01-04"}),
            )
            .await
            .expect(201);
        plan_samples.push(started.elapsed());
    }
    summary(
        &format!("{backend:?}: POST /programs/{{id}}/plan (cdmo_standard)"),
        plan_samples,
    );

    // A program with 500 milestones in mixed states, inserted directly.
    let big = new_program(&app, cmo, 9999).await;
    let start = NaiveDate::from_ymd_opt(2027, 1, 4).unwrap_or_default();
    let now = app.now();
    let states = [
        MilestoneStatus::Planned,
        MilestoneStatus::InProgress,
        MilestoneStatus::GateReview,
        MilestoneStatus::Completed,
        MilestoneStatus::OnHold,
    ];
    let rows: Vec<milestone::ActiveModel> = (0..BIG_PLAN)
        .map(|i| {
            let s = start + TimeDelta::days(i as i64);
            milestone::ActiveModel {
                id: NotSet,
                program_id: Set(big),
                name: Set(format!("Milestone {i}")),
                phase: Set("Bench".to_string()),
                owner_user_id: Set(Some(app.admin_id)),
                status: Set(states[i % states.len()]),
                held_from: Set(None),
                baseline_start: Set(s),
                baseline_end: Set(s + TimeDelta::days(30)),
                forecast_start: Set(s),
                forecast_end: Set(s + TimeDelta::days(30 + (i % 7) as i64)),
                actual_start: Set(None),
                actual_end: Set(None),
                position: Set(i as i32),
                gate_round: Set(0),
                created_at: Set(now),
                updated_at: Set(now),
                version: Set(1),
            }
        })
        .collect();
    for chunk in rows.chunks(100) {
        if let Err(err) = milestone::Entity::insert_many(chunk.to_vec())
            .exec(&app.db)
            .await
        {
            println!("{backend:?}: insert failed: {err}");
            return;
        }
    }
    let path = format!("/api/v1/programs/{big}/overview");
    let check = app.admin().get(&path).await.expect(200).body;
    assert_eq!(check["plan"]["milestones_total"], BIG_PLAN);
    // A warm-up read (not counted), then the samples on the same client.
    let admin = app.admin();
    admin.get(&path).await.expect(200);
    let mut overview_samples = Vec::with_capacity(OVERVIEW_RUNS);
    for _ in 0..OVERVIEW_RUNS {
        let started = Instant::now();
        admin.get(&path).await.expect(200);
        overview_samples.push(started.elapsed());
    }
    summary(
        &format!("{backend:?}: GET /programs/{{id}}/overview ({BIG_PLAN} milestones)"),
        overview_samples,
    );
    // The list is paged like every list: the largest page of the big plan.
    let list_path = format!("/api/v1/programs/{big}/milestones?limit=200");
    let mut list_samples = Vec::with_capacity(OVERVIEW_RUNS / 4);
    for _ in 0..OVERVIEW_RUNS / 4 {
        let started = Instant::now();
        app.admin().get(&list_path).await.expect(200);
        list_samples.push(started.elapsed());
    }
    summary(
        &format!(
            "{backend:?}: GET /programs/{{id}}/milestones?limit=200 (of {BIG_PLAN} milestones)"
        ),
        list_samples,
    );
    app.stop().await;
}

#[actix_web::main]
async fn main() {
    println!("bench_plan: api in-process on 127.0.0.1, 1 HTTP worker, sequential requests");
    bench(Backend::Sqlite).await;
    bench(Backend::Postgres).await;
}
