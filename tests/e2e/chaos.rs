//! PostgreSQL restarted under API load (a private cluster, so other tests keep theirs):
//! the api answers 503 problem+json while the database is away, recovers without a
//! restart, and every write it acknowledged with a 2xx is in the database afterwards.

use std::collections::BTreeSet;
use std::time::Duration;

use e2e::{Backend, spawn_app_on};
use sea_orm::{ConnectionTrait, EntityTrait, QuerySelect};
use serde_json::json;

const CLIENTS: usize = 4;
const REQUESTS_PER_CLIENT: usize = 150;

#[actix_web::test]
async fn postgres_restart_under_load_loses_no_acknowledged_write() {
    let Some(cluster) = e2e::pg::private_cluster() else {
        return;
    };
    let cluster = std::sync::Arc::new(cluster);
    let admin_db = sea_orm::Database::connect(cluster.url("postgres"))
        .await
        .unwrap();
    admin_db
        .execute_unprepared("CREATE DATABASE chaos")
        .await
        .unwrap();
    let _ = admin_db.close().await;
    // Requests wait at most 1 s for a connection before their 503.
    let app = spawn_app_on(
        cluster.url("chaos"),
        Backend::Postgres,
        tempfile::tempdir().unwrap(),
        1_000,
    )
    .await;

    let load = (0..CLIENTS).map(|c| {
        let admin = app.admin();
        async move {
            let mut outcomes = Vec::with_capacity(REQUESTS_PER_CLIENT);
            for i in 0..REQUESTS_PER_CLIENT {
                let r = admin
                    .post(
                        "/api/v1/users",
                        json!({"email": format!("load{c}-{i}@acme.test"), "display_name": "Load", "role": "viewer"}),
                    )
                    .await;
                let problem = r.header("content-type").unwrap_or_default().to_string();
                outcomes.push((r.status.as_u16(), r.body["id"].as_i64(), problem, r.text));
                actix_web::rt::time::sleep(Duration::from_millis(15)).await;
            }
            outcomes
        }
    });
    let chaos = async {
        actix_web::rt::time::sleep(Duration::from_millis(700)).await;
        // pg_ctl blocks; the runtime keeps serving meanwhile.
        let c = cluster.clone();
        let stop = tokio::task::spawn_blocking(move || c.stop()).await;
        assert!(matches!(stop, Ok(Ok(()))), "pg_ctl stop: {stop:?}");
        // While it is down: readiness says so.
        let ready = app.anonymous().get("/readyz").await;
        assert_eq!(ready.status.as_u16(), 503, "{}", ready.text);
        actix_web::rt::time::sleep(Duration::from_millis(2_000)).await;
        let c = cluster.clone();
        tokio::task::spawn_blocking(move || c.restart())
            .await
            .unwrap()
            .unwrap();
    };
    let (outcomes, ()) = tokio::join!(futures_util::future::join_all(load), chaos);
    let outcomes: Vec<_> = outcomes.into_iter().flatten().collect();

    let mut acknowledged = BTreeSet::new();
    let mut unavailable = 0;
    for (status, id, content_type, text) in &outcomes {
        match status {
            201 => {
                acknowledged.insert(id.expect("a created user has an id"));
            }
            503 => {
                assert!(
                    content_type.starts_with("application/problem+json"),
                    "{text}"
                );
                unavailable += 1;
            }
            other => panic!("only 201 or 503 expected, got {other}: {text}"),
        }
    }
    assert!(unavailable > 0, "the outage was not seen");
    // Recovered without a restart: new writes succeed.
    let mut recovered = false;
    for _ in 0..100 {
        let r = app
            .admin()
            .post(
                "/api/v1/users",
                json!({"email": "after@acme.test", "display_name": "After", "role": "viewer"}),
            )
            .await;
        if r.status.as_u16() == 201 {
            acknowledged.insert(r.body["id"].as_i64().unwrap());
            recovered = true;
            break;
        }
        actix_web::rt::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(recovered, "the api did not recover within 10 s");
    // Every acknowledged write is there.
    let stored: BTreeSet<i64> = entity::user::Entity::find()
        .select_only()
        .column(entity::user::Column::Id)
        .into_tuple()
        .all(&app.db)
        .await
        .unwrap()
        .into_iter()
        .collect();
    let missing: Vec<_> = acknowledged.difference(&stored).collect();
    assert!(missing.is_empty(), "acknowledged but lost: {missing:?}");
    eprintln!(
        "{} requests: {} acknowledged, {unavailable} answered 503 during the outage, none lost",
        outcomes.len(),
        acknowledged.len()
    );
    // The audit chain survived the outage intact.
    let verify = app
        .admin()
        .get("/api/v1/audit-events/verify")
        .await
        .expect(200)
        .body;
    assert_eq!(verify["intact"], true, "{verify}");
    app.stop().await;
    let _ = cluster.stop();
}
