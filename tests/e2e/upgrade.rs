//! Rolling upgrade and rollback: the previous release (the baseline `ops/upgrade-baseline`
//! names, built into `<target>/baseline/` by `scripts/baseline.sh`) starts on the schema
//! this release migrated, serves reads and writes beside it, and its worker works; this
//! release then reads what the old one wrote. Skipped when the baseline is not built, a
//! failure under `CMO_REQUIRE_BASELINE=1` (CI).

use std::path::PathBuf;

use e2e::api_process::ApiProcess;
use e2e::smtp::SmtpSink;
use e2e::worker_process::WorkerProcess;
use e2e::{TestApp, on_both_databases};
use serde_json::json;

/// `<target>/baseline/`, holding the previous release's `cmo-api` and `cmo-worker`.
fn baseline() -> Option<PathBuf> {
    let dir = std::env::var_os("CMO_BASELINE_DIR")
        .map(PathBuf::from)
        .or_else(|| {
            let exe = std::env::current_exe().ok()?;
            // <target>/debug/deps/e2e-…
            Some(exe.ancestors().nth(3)?.join("baseline"))
        })?;
    if dir.join("cmo-api").exists() && dir.join("cmo-worker").exists() {
        return Some(dir);
    }
    if std::env::var("CMO_REQUIRE_BASELINE").is_ok_and(|v| v == "1") {
        panic!(
            "the upgrade baseline is required (CMO_REQUIRE_BASELINE=1) but {} holds no build: run scripts/baseline.sh",
            dir.display()
        );
    }
    eprintln!("SKIP upgrade: no baseline build in {}", dir.display());
    None
}

async fn the_previous_release_runs_on_this_release_s_schema(app: &TestApp) {
    // REQ: OPS-ROLLING-UPGRADE
    let Some(dir) = baseline() else {
        return;
    };
    let release = std::fs::read_to_string(dir.join("RELEASE")).unwrap_or_default();
    // This release migrated the database (the test app); the previous one starts on it.
    let old_api = ApiProcess::start_binary(&dir.join("cmo-api"), &app.database_url, app.now(), &[]);
    let admin = old_api.client(&app.admin_token);
    old_api.client("").get("/readyz").await.expect(200);
    admin.get("/api/v1/me").await.expect(200);
    let written = admin
        .post(
            "/api/v1/tokens",
            json!({"name": "written by the previous release"}),
        )
        .await
        .expect(201);
    // Domain events from both releases share one feed with consecutive cursors: the
    // previous release takes its cursor under the head row, this one (on PostgreSQL) is
    // sequenced after its commit under the same lock.
    let (_, program) = app.program_with_new_cmo("Upgrade").await;
    let deviations = format!("/api/v1/programs/{program}/deviations");
    let report = |title: &str| {
        json!({"title": title, "description": "d", "detected_at": app.now(), "criticality": "minor",
               "category": "documentation"})
    };
    admin
        .post(&deviations, report("by the previous release"))
        .await
        .expect(201);
    app.admin()
        .post(&deviations, report("by this release"))
        .await
        .expect(201);
    let feed = "/api/v1/events?types=deviation.reported";
    for (reader, page) in [
        ("this release", app.admin().get(feed).await.expect(200).body),
        ("the previous one", admin.get(feed).await.expect(200).body),
    ] {
        let steps: Vec<(&str, i64)> = page["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| {
                (
                    e["payload"]["title"].as_str().unwrap(),
                    e["cursor"].as_i64().unwrap(),
                )
            })
            .collect();
        assert_eq!(steps.len(), 2, "{reader}: {page}");
        assert_eq!(
            (steps[0].0, steps[1].0),
            ("by the previous release", "by this release"),
            "{reader}"
        );
        assert_eq!(steps[1].1, steps[0].1 + 1, "{reader}: consecutive cursors");
    }
    let sink = SmtpSink::start().await;
    let old_worker = WorkerProcess::start_binary(
        &dir.join("cmo-worker"),
        &app.database_url,
        &sink.url(),
        "previous-release",
        app.now(),
        &[],
    );
    // Bounded wait for its first heartbeat: it ran its jobs on this schema.
    let mut ran = Vec::new();
    for _ in 0..200 {
        ran = app.workers_that_ran().await;
        if ran.iter().any(|w| w == "previous-release") {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert!(
        ran.iter().any(|w| w == "previous-release"),
        "the previous release's worker ({release}) ran: {}",
        old_worker.log()
    );
    assert!(old_worker.stop().await.success(), "it stops cleanly");
    // This release reads what the previous one wrote, and its audit trail verifies.
    let tokens = app.admin().get("/api/v1/tokens").await.expect(200).body;
    assert!(
        tokens
            .to_string()
            .contains("written by the previous release"),
        "{tokens}"
    );
    assert_eq!(
        written.body["token"]["name"],
        "written by the previous release"
    );
    let verified = entity::audit_trail::verify(&app.db, &app.chain_keys, app.org_id)
        .await
        .unwrap();
    assert!(
        verified.broken.is_none() && verified.checked() > 0,
        "the audit chain is intact after both releases wrote to it: {verified:?}"
    );
}
on_both_databases!(the_previous_release_runs_on_this_release_s_schema);

/// PostgreSQL builds the audit trail's by-person index with `CREATE INDEX CONCURRENTLY`
/// after its migration (writes go on meanwhile); a build cut short leaves an INVALID
/// index, which the next start drops and builds again.
#[actix_web::test]
async fn postgres_builds_indexes_concurrently_and_redoes_a_cut_short_build() {
    // REQ: OPS-ROLLING-UPGRADE
    use sea_orm::ConnectionTrait;
    let Some(app) = e2e::spawn_app(e2e::Backend::Postgres).await else {
        return;
    };
    let valid_index = |name: &'static str| {
        let db = app.db.clone();
        async move {
            db.query_one_raw(sea_orm::Statement::from_string(
                sea_orm::DbBackend::Postgres,
                format!(
                    "SELECT i.indisvalid AS valid FROM pg_class c JOIN pg_index i ON i.indexrelid = c.oid \
                     WHERE c.relname = '{name}'"
                ),
            ))
            .await
            .unwrap()
            .map(|row| row.try_get::<bool>("", "valid").unwrap())
        }
    };
    let valid = || valid_index("ix_audit_events_actor");
    // Built in the background of the start-up, every one of them: a bounded wait.
    for _ in 0..200 {
        let mut all = true;
        for index in migration::CONCURRENT_INDEXES {
            all &= valid_index(index.name).await == Some(true);
        }
        if all {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    for index in migration::CONCURRENT_INDEXES {
        assert_eq!(
            valid_index(index.name).await,
            Some(true),
            "{} built at start-up",
            index.name
        );
    }
    // As a build killed half-way leaves it (the test cluster's superuser may say so).
    app.db
        .execute_unprepared(
            "UPDATE pg_index SET indisvalid = false WHERE indexrelid = 'ix_audit_events_actor'::regclass",
        )
        .await
        .unwrap();
    assert_eq!(valid().await, Some(false));
    let built = migration::build_concurrent_indexes(&app.db).await.unwrap();
    assert_eq!(built, ["ix_audit_events_actor"]);
    assert_eq!(valid().await, Some(true), "dropped and built again");
    assert!(
        migration::build_concurrent_indexes(&app.db)
            .await
            .unwrap()
            .is_empty(),
        "nothing to do once it is there"
    );
    app.stop().await;
}
