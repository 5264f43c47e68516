//! Optimistic concurrency and concurrent writers.

use awc::http::Method;
use e2e::{TestApp, on_both_databases};
use serde_json::json;

use crate::user_with_token;

async fn a_stale_version_is_a_conflict(app: &TestApp) {
    // REQ: API-VERSION-CAS
    let admin = app.admin();
    let (id, _) = user_with_token(app, "pm@acme.test", "program_manager", None).await;
    let path = format!("/api/v1/users/{id}");
    admin
        .patch(&path, json!({"version": 1, "display_name": "Pat"}))
        .await
        .expect(200);
    let r = admin
        .patch(&path, json!({"version": 1, "display_name": "Pat again"}))
        .await
        .expect_problem(409, "version_conflict");
    assert_eq!(r.body["current_version"], 2);
    // If-Match works instead of a body version...
    let ok = admin
        .send(
            admin
                .request(Method::PATCH, &path)
                .insert_header(("If-Match", "\"2\"")),
            Some(&json!({"role": "quality"})),
        )
        .await
        .expect(200);
    assert_eq!(ok.body["version"], 3);
    assert_eq!(ok.body["role"], "quality");
    // ...a version is required...
    let r = admin
        .patch(&path, json!({"display_name": "No version"}))
        .await
        .expect_problem(422, "validation_failed");
    assert_eq!(r.body["errors"][0]["field"], "version");
    // ...and the two must agree when both are sent.
    admin
        .send(
            admin
                .request(Method::PATCH, &path)
                .insert_header(("If-Match", "3")),
            Some(&json!({"version": 2, "display_name": "x"})),
        )
        .await
        .expect_problem(422, "validation_failed");
}
on_both_databases!(a_stale_version_is_a_conflict);

async fn of_two_concurrent_updates_exactly_one_wins(app: &TestApp) {
    let (id, _) = user_with_token(app, "pm@acme.test", "program_manager", None).await;
    let path = format!("/api/v1/users/{id}");
    let admin = app.admin();
    let attempts: Vec<_> = (0..6)
        .map(|n| {
            let admin = admin.clone();
            let path = path.clone();
            async move {
                admin
                    .patch(
                        &path,
                        json!({"version": 1, "display_name": format!("Writer {n}")}),
                    )
                    .await
            }
        })
        .collect();
    let replies = futures_util::future::join_all(attempts).await;
    let wins = replies.iter().filter(|r| r.status == 200).count();
    let conflicts = replies.iter().filter(|r| r.status == 409).count();
    assert_eq!(
        (wins, conflicts),
        (1, 5),
        "{:?}",
        replies.iter().map(|r| r.status).collect::<Vec<_>>()
    );
    let user = admin.get(&path).await.expect(200).body;
    assert_eq!(user["version"], 2);
    let updates = admin
        .get(&format!(
            "/api/v1/audit-events?entity_type=user&entity_id={id}&action=update"
        ))
        .await
        .body;
    assert_eq!(updates["total"], 1, "only the winner is audited");
}
on_both_databases!(of_two_concurrent_updates_exactly_one_wins);

async fn concurrent_writers_keep_the_audit_chain_intact(app: &TestApp) {
    // REQ: AUDIT-CHAIN
    let admin = app.admin();
    let creations: Vec<_> = (0..20)
        .map(|n| {
            let admin = admin.clone();
            async move {
                admin
                    .post("/api/v1/invitations", json!({"email": format!("u{n}@acme.test"), "display_name": format!("U{n}"), "role": "viewer"}))
                    .await
            }
        })
        .collect();
    let replies = futures_util::future::join_all(creations).await;
    assert!(
        replies.iter().all(|r| r.status == 201),
        "{:?}",
        replies.iter().map(|r| &r.text).collect::<Vec<_>>()
    );
    let report = admin
        .get("/api/v1/audit-events/verify")
        .await
        .expect(200)
        .body;
    assert_eq!(report["intact"], true, "{report}");
    let events = admin.get("/api/v1/audit-events?limit=200").await.body;
    let seqs: Vec<i64> = events["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["seq"].as_i64().unwrap())
        .collect();
    assert_eq!(
        seqs,
        (1..=seqs.len() as i64).collect::<Vec<_>>(),
        "no gaps, no forks"
    );
}
on_both_databases!(concurrent_writers_keep_the_audit_chain_intact);

/// A read never waits for a write: while the api's write
/// waits for a lock another connection holds (SQLite: the database's one write lock;
/// PostgreSQL: the tokens table), lists, records and token look-ups still answer.
async fn reads_do_not_wait_behind_a_write(app: &TestApp) {
    // REQ: PERF-READS-BESIDE-WRITES
    use sea_orm::{ConnectionTrait, TransactionTrait};
    let holder = migration::startup::connect(&app.database_url, None)
        .await
        .expect("another connection");
    let txn = holder.begin().await.expect("begin");
    match app.backend {
        e2e::Backend::Sqlite => {
            // A write statement takes the database's write lock, matching rows or not.
            txn.execute_unprepared("UPDATE api_tokens SET name = name WHERE id = -1")
                .await
                .expect("take the write lock");
        }
        e2e::Backend::Postgres => {
            txn.execute_unprepared("LOCK TABLE api_tokens IN EXCLUSIVE MODE")
                .await
                .expect("lock the tokens table against writes");
        }
    }
    let writer = app.admin();
    let write = actix_web::rt::spawn(async move {
        writer
            .post("/api/v1/tokens", json!({"name": "waits for the lock"}))
            .await
            .expect(201)
    });
    // Let the write reach the lock (if it has not yet, the reads below prove less, never
    // fail wrongly).
    actix_web::rt::time::sleep(std::time::Duration::from_millis(300)).await;
    let admin = app.admin();
    admin.get("/api/v1/deviations").await.expect(200);
    admin.get("/api/v1/me").await.expect(200);
    admin.get("/api/v1/programs").await.expect(200);
    assert!(
        !write.is_finished(),
        "the write went through while the lock was held: the scenario proved nothing"
    );
    txn.rollback().await.expect("release the lock");
    write.await.expect("the write");
    let _ = holder.close().await;
}
on_both_databases!(reads_do_not_wait_behind_a_write);
