//! Scorecard response time: one CMO with 50 programs, 5,000 milestones, 20,000
//! deviations and 2,000 escalations, `GET /api/v1/cmos/{id}/scorecard` over a window
//! covering all of it, 30 sequential requests over loopback HTTP; SQLite and PostgreSQL.
//!
//! Run: `cargo run --release -p e2e --bin bench_scorecard`.

use std::time::{Duration, Instant};

use chrono::{NaiveDate, TimeDelta};
use e2e::{Backend, spawn_app};
use entity::deviation::{Category, Criticality, DeviationStatus};
use entity::escalation::EscalationStatus;
use entity::milestone::MilestoneStatus;
use entity::{deviation, escalation, milestone};
use sea_orm::{ActiveValue::NotSet, ActiveValue::Set, EntityTrait, TransactionTrait};
use serde_json::json;

const PROGRAMS: usize = 50;
const MILESTONES: usize = 5_000;
const DEVIATIONS: usize = 20_000;
const ESCALATIONS: usize = 2_000;

async fn bench(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        println!("{backend:?}: skipped (not available)");
        return;
    };
    let admin = app.admin();
    let cmo = admin
        .post("/api/v1/organizations", json!({"name": "CMO", "kind": "cmo", "admin": {"email": "a@cmo.test", "display_name": "A"}}))
        .await
        .expect(201)
        .body["organization"]["id"]
        .as_i64()
        .unwrap_or_default();
    app.qualify_cmo(cmo).await;
    let mut programs = Vec::new();
    for n in 0..PROGRAMS {
        programs.push(
            admin
                .post(
                    "/api/v1/programs",
                    json!({"name": format!("P{n}"), "product_name": "P", "cmo_org_id": cmo, "modality": "biologic", "stage": "clinical", "time_zone": "UTC"}),
                )
                .await
                .expect(201)
                .body["id"]
                .as_i64()
                .unwrap_or_default(),
        );
    }
    let now = app.now();
    let base = NaiveDate::from_ymd_opt(2026, 1, 1).unwrap_or_default();
    let started = Instant::now();
    let txn = app.db.begin().await.expect("begin");
    let ms: Vec<milestone::ActiveModel> = (0..MILESTONES)
        .map(|n| {
            let end = base + TimeDelta::days((n % 300) as i64);
            milestone::ActiveModel {
                id: NotSet,
                program_id: Set(programs[n % PROGRAMS]),
                name: Set(format!("M{n}")),
                phase: Set("P".into()),
                owner_user_id: Set(None),
                status: Set(if n % 3 == 0 {
                    MilestoneStatus::InProgress
                } else {
                    MilestoneStatus::Completed
                }),
                held_from: Set(None),
                baseline_start: Set(end - TimeDelta::days(10)),
                baseline_end: Set(end),
                forecast_start: Set(end - TimeDelta::days(10)),
                forecast_end: Set(end),
                actual_start: Set(None),
                actual_end: Set((n % 3 != 0).then(|| end + TimeDelta::days((n % 5) as i64 - 2))),
                position: Set(n as i32),
                gate_round: Set(0),
                created_at: Set(now),
                updated_at: Set(now),
                version: Set(1),
            }
        })
        .collect();
    for chunk in ms.chunks(1000) {
        milestone::Entity::insert_many(chunk.to_vec())
            .exec(&txn)
            .await
            .expect("milestones");
    }
    let devs: Vec<deviation::ActiveModel> = (0..DEVIATIONS)
        .map(|n| {
            let at = now - TimeDelta::hours((n % 7000) as i64);
            deviation::ActiveModel {
                id: NotSet,
                record_number: NotSet,
                program_id: Set(programs[n % PROGRAMS]),
                milestone_id: Set(None),
                batch_lot: Set(Some(format!("LOT-{}", n % 900))),
                title: Set(format!("D{n}")),
                description: Set("d".into()),
                detected_at: Set(at),
                reported_by_user_id: Set(app.admin_id),
                process_step: Set(None),
                criticality: Set([
                    Criticality::Minor,
                    Criticality::Major,
                    Criticality::Critical,
                ][n % 3]),
                category: Set(Category::Equipment),
                status: Set(if n % 2 == 0 {
                    DeviationStatus::Closed
                } else {
                    DeviationStatus::Triaged
                }),
                triaged_at: Set(Some(at + TimeDelta::hours((n % 48) as i64))),
                short_term_fix: Set(None),
                root_cause_method: Set(None),
                root_cause_category: Set(None),
                root_cause_narrative: Set(None),
                closure_signature_id: Set(None),
                closed_at: Set((n % 2 == 0).then(|| at + TimeDelta::days((n % 40) as i64))),
                cancel_reason: Set(None),
                created_at: Set(at),
                updated_at: Set(at),
                version: Set(1),
            }
        })
        .collect();
    for chunk in devs.chunks(1000) {
        deviation::Entity::insert_many(chunk.to_vec())
            .exec(&txn)
            .await
            .expect("deviations");
    }
    let escs: Vec<escalation::ActiveModel> = (0..ESCALATIONS)
        .map(|n| {
            let at = now - TimeDelta::hours((n % 7000) as i64);
            escalation::ActiveModel {
                id: NotSet,
                program_id: Set(programs[n % PROGRAMS]),
                source_type: Set("manual".into()),
                source_id: Set(None),
                reason: Set("r".into()),
                status: Set(EscalationStatus::Resolved),
                opened_at: Set(at),
                resolved_at: Set(Some(at + TimeDelta::hours(2))),
                version: Set(1),
                title: Set("t".into()),
                criticality: Set(Some("critical".into())),
                category: Set(None),
                policy_snapshot: Set(None),
                step: Set(1),
                page_seq: Set(1),
                current_tier: Set(Some(0)),
                next_page_at: Set(None),
                acknowledged_at: Set(Some(at + TimeDelta::minutes((n % 60) as i64))),
                acknowledged_by_user_id: Set(Some(app.admin_id)),
                ack_channel: Set(Some("email".into())),
                reopen_count: Set(0),
                opened_by_user_id: Set(None),
            }
        })
        .collect();
    for chunk in escs.chunks(1000) {
        escalation::Entity::insert_many(chunk.to_vec())
            .exec(&txn)
            .await
            .expect("escalations");
    }
    txn.commit().await.expect("commit");
    if backend == Backend::Postgres {
        use sea_orm::ConnectionTrait;
        let _ = app.db.execute_unprepared("ANALYZE").await;
    }
    let seeding = started.elapsed();
    let path = format!(
        "/api/v1/cmos/{cmo}/scorecard?from={}&to={}",
        base,
        now.date_naive()
    );
    let first = admin.get(&path).await.expect(200).body;
    let mut times: Vec<Duration> = Vec::new();
    for _ in 0..30 {
        let t = Instant::now();
        admin.get(&path).await.expect(200);
        times.push(t.elapsed());
    }
    times.sort();
    println!(
        "{backend:?}: scorecard of a CMO with {PROGRAMS} programs, {MILESTONES} milestones, {DEVIATIONS} deviations, {ESCALATIONS} escalations: median {:.1?}, p95 {:.1?}, max {:.1?} (deviations counted {}, seeding {seeding:.1?})",
        times[times.len() / 2],
        times[(times.len() * 95) / 100],
        times[times.len() - 1],
        first["kpis"]["deviations"]
    );
    app.stop().await;
}

#[actix_web::main]
async fn main() {
    bench(Backend::Sqlite).await;
    bench(Backend::Postgres).await;
}
