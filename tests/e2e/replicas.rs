//! Replicas sized for a shared PostgreSQL: six `cmo-api` and six `cmo-worker` processes
//! on one cluster set to PostgreSQL's default 100 connections, under mixed load (writes
//! that queue on one organization's audit chain, lists, critical deviations paged by the
//! workers). With the old pools (10 per process, never shrinking) they needed up to 126.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::time::Duration;

use e2e::api_process::ApiProcess;
use e2e::smtp::SmtpSink;
use e2e::worker_process::WorkerProcess;
use e2e::{Backend, spawn_app_on};
use sea_orm::{ConnectionTrait, EntityTrait, Statement};
use serde_json::json;

use crate::escalations::team;

const APIS: usize = 6;
const WORKERS: usize = 6;
const CLIENTS_PER_API: usize = 12;
const ROUNDS: usize = 6;
/// PostgreSQL keeps 3 of its 100 for superusers: what the replicas may use at most.
const BUDGET: i64 = 97;

#[actix_web::test]
async fn six_api_and_six_worker_replicas_fit_in_100_postgres_connections() {
    // REQ: OPS-CONNECTION-BUDGET
    let Some(cluster) = e2e::pg::private_cluster_with(100) else {
        return;
    };
    let admin_db = sea_orm::Database::connect(cluster.url("postgres"))
        .await
        .unwrap();
    admin_db
        .execute_unprepared("CREATE DATABASE budget")
        .await
        .unwrap();
    let app = spawn_app_on(
        cluster.url("budget"),
        Backend::Postgres,
        tempfile::tempdir().unwrap(),
        10_000,
    )
    .await;
    let t = team(&app).await;
    let pm_token = t.s.pm.token().unwrap().to_string();
    let sink = SmtpSink::start().await;
    let apis: Vec<ApiProcess> = (0..APIS)
        .map(|_| ApiProcess::start(&app.database_url, app.now(), &[]))
        .collect();
    let workers: Vec<WorkerProcess> = (0..WORKERS)
        .map(|w| {
            WorkerProcess::start(
                &app.database_url,
                &sink.url(),
                &format!("replica-{w}"),
                app.now(),
                &[("CMO_ESCALATION_TICK_MS", "100")],
            )
        })
        .collect();

    // The peak of client connections, sampled on one connection of its own.
    let peak = Arc::new(AtomicI64::new(0));
    let sampling = Arc::new(AtomicBool::new(true));
    let sampler = {
        let (peak, sampling) = (peak.clone(), sampling.clone());
        async move {
            while sampling.load(Ordering::SeqCst) {
                let row = admin_db
                    .query_one_raw(Statement::from_string(
                        sea_orm::DbBackend::Postgres,
                        "SELECT count(*) AS n FROM pg_stat_activity WHERE backend_type = 'client backend'",
                    ))
                    .await
                    .unwrap()
                    .unwrap();
                let n: i64 = row.try_get("", "n").unwrap();
                peak.fetch_max(n, Ordering::SeqCst);
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            admin_db
        }
    };
    let program = t.s.program_id;
    let detected_at = app.now();
    let load = apis.iter().enumerate().flat_map(|(a, api)| {
        let pm_token = pm_token.clone();
        (0..CLIENTS_PER_API).map(move |c| {
            let client = api.client(&pm_token);
            async move {
                let mut failures = Vec::new();
                for r in 0..ROUNDS {
                    let answers = [
                        client
                            .post(
                                "/api/v1/tokens",
                                json!({"name": format!("replica {a} client {c} round {r}")}),
                            )
                            .await,
                        client.get("/api/v1/deviations?limit=50").await,
                        client.get(&format!("/api/v1/programs/{program}")).await,
                    ];
                    // One critical deviation per api, paged by whichever worker claims it.
                    let critical = (c == 0 && r == 0).then(|| {
                        json!({"title": format!("Bioreactor excursion seen via replica {a}"),
                               "description": "temperature above limit", "detected_at": detected_at,
                               "criticality": "critical", "category": "equipment"})
                    });
                    for answer in answers {
                        if !answer.status.is_success() {
                            failures.push(format!("{}: {}", answer.status, answer.text));
                        }
                    }
                    if let Some(body) = critical {
                        let reported = client
                            .post(&format!("/api/v1/programs/{program}/deviations"), body)
                            .await;
                        if !reported.status.is_success() {
                            failures.push(format!("{}: {}", reported.status, reported.text));
                        }
                    }
                }
                failures
            }
        })
    });
    let sampled = actix_web::rt::spawn(sampler);
    let failures: Vec<String> = futures_util::future::join_all(load)
        .await
        .into_iter()
        .flatten()
        .collect();
    assert!(
        failures.is_empty(),
        "{} of {} requests failed, e.g. {:?}",
        failures.len(),
        APIS * CLIENTS_PER_API * ROUNDS * 3 + APIS,
        failures.first()
    );
    // Bounded wait: every critical deviation's escalation paged its first tier.
    let paged = || async {
        let rows = entity::escalation::Entity::find()
            .all(&app.db)
            .await
            .unwrap();
        rows.len() == APIS && rows.iter().all(|e| e.page_seq >= 1)
    };
    for _ in 0..300 {
        if paged().await {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(paged().await, "every escalation paged within 30 s");
    sampling.store(false, Ordering::SeqCst);
    let _ = sampled.await;
    let peak = peak.load(Ordering::SeqCst);
    eprintln!("peak client connections: {peak} of {BUDGET}");
    assert!(
        peak <= BUDGET,
        "{peak} connections, more than the {BUDGET} allowed"
    );
    let ran = app.workers_that_ran().await;
    assert_eq!(ran.len(), WORKERS, "every worker worked: {ran:?}");
    for w in workers {
        let id = w.worker_id.clone();
        assert!(w.stop().await.success(), "{id} exits 0 on SIGTERM");
    }
    drop(apis);
    app.stop().await;
}
