//! Health, readiness, metrics, and the panic envelope.

use std::net::TcpListener;

use actix_web::middleware::from_fn;
use actix_web::{App, HttpResponse, HttpServer, web};
use e2e::{Client, TestApp, on_both_databases};

async fn health_readiness_and_metrics(app: &TestApp) {
    // REQ: OPS-PROBES
    let anon = app.anonymous();
    assert_eq!(anon.get("/healthz").await.expect(200).body["status"], "ok");
    let ready = anon.get("/readyz").await.expect(200).body;
    assert_eq!(ready["status"], "ready");
    assert_eq!(
        ready["database"],
        match app.backend {
            e2e::Backend::Sqlite => "sqlite",
            e2e::Backend::Postgres => "postgres",
        }
    );
    app.admin().get("/api/v1/users/12345").await.expect(404);
    app.admin().get("/api/v1/me").await.expect(200);
    let metrics = anon.get("/metrics").await.expect(200);
    assert!(
        metrics
            .header("content-type")
            .unwrap()
            .starts_with("text/plain")
    );
    let text = metrics.text;
    assert!(
        text.contains(
            r#"cmo_http_requests_total{method="GET",route="/api/v1/users/{id}",status="404"} 1"#
        ),
        "{text}"
    );
    assert!(
        text.contains(r#"cmo_http_requests_total{method="GET",route="/api/v1/me",status="200"} 1"#),
        "{text}"
    );
    assert!(text.contains("cmo_http_request_duration_seconds_bucket{method=\"GET\",route=\"/readyz\",status=\"200\",le=\"+Inf\"} 1"));
    // The process, its pool and the backlog the workers work through, from every replica.
    assert!(
        text.contains("cmo_build_info{binary=\"cmo-api\",version=\""),
        "{text}"
    );
    for family in [
        "cmo_process_start_time_seconds ",
        "cmo_db_pool_connections ",
        "cmo_db_pool_max_connections ",
        "cmo_outbox_waiting ",
        "cmo_escalations_unacknowledged ",
        "cmo_escalation_page_lag_seconds ",
        "cmo_webhook_deliveries_waiting ",
        "cmo_backlog_up 1",
    ] {
        assert!(text.contains(family), "{family}: {text}");
    }
    // SQLite: the reads' own pool beside the one writer.
    let readers = text.contains("cmo_db_readers_max_connections 4");
    assert_eq!(readers, app.backend == e2e::Backend::Sqlite, "{text}");

    // With the database gone, readiness and data endpoints answer 503, liveness stays up.
    app.db.close_by_ref().await.unwrap();
    app.reads.close_by_ref().await.unwrap();
    let ready = anon
        .get("/readyz")
        .await
        .expect_problem(503, "database_unavailable");
    let data = app
        .admin()
        .get("/api/v1/me")
        .await
        .expect_problem(503, "database_unavailable");
    // The README's promise: a 503 says when to retry.
    for r in [&ready, &data] {
        let after: u64 = r
            .header("retry-after")
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("a Retry-After in seconds: {:?}", r.header("retry-after")));
        assert!((1..=60).contains(&after), "Retry-After {after}");
    }
    anon.get("/healthz").await.expect(200);
}
on_both_databases!(health_readiness_and_metrics);

async fn boom() -> HttpResponse {
    panic!("handler bug");
}

#[actix_web::test]
async fn a_panicking_handler_answers_500_with_a_request_id() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let server = HttpServer::new(|| {
        App::new()
            .route("/boom", web::get().to(boom))
            .route("/fine", web::get().to(HttpResponse::Ok))
            .wrap(from_fn(api::middleware::envelope))
    })
    .workers(1)
    .listen(listener)
    .unwrap()
    .run();
    let handle = server.handle();
    actix_web::rt::spawn(server);
    let client = Client::new(&base, None);
    let r = client
        .get("/boom")
        .await
        .expect_problem(500, "internal_error");
    assert!(
        !r.text.contains("handler bug"),
        "the cause stays in the log"
    );
    // The worker survives and keeps serving.
    client.get("/fine").await.expect(200);
    client.get("/boom").await.expect(500);
    handle.stop(false).await;
}

/// A SIGTERM that reaches a worker still starting (here: waiting for the migration lock
/// another process holds, as during a rolling restart) stops it cleanly once it can:
/// exit 0, not killed by the signal's default action.
#[actix_web::test]
async fn a_worker_told_to_stop_while_starting_stops_cleanly() {
    // REQ: OPS-GRACEFUL-STOP
    use e2e::worker_process::WorkerProcess;
    let Some(app) = e2e::spawn_app(e2e::Backend::Sqlite).await else {
        return;
    };
    let held = migration::startup::sqlite_migration_lock(&app.database_url)
        .await
        .unwrap()
        .expect("a SQLite file has a migration lock");
    let worker = WorkerProcess::start(
        &app.database_url,
        "smtp://127.0.0.1:9",
        "starting",
        app.now(),
        &[],
    );
    let mut waited = 0;
    while !worker.catches_sigterm() {
        assert!(
            waited < 200,
            "the worker installs its SIGTERM handler within 10 s"
        );
        waited += 1;
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    // Still held: the worker cannot have got past connecting.
    let pid = worker.pid().to_string();
    std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap();
    drop(held);
    assert!(
        worker.stop().await.success(),
        "exit 0 after a SIGTERM during start-up"
    );
    app.stop().await;
}

/// With PostgreSQL stopped, `/readyz` answers 503 well inside the pool's 10 s wait for a
/// connection (each of several probes in a row), so a load balancer takes the replica
/// out at once; back up, it answers 200 again. (How fast is the bench's business; this
/// holds it to a functional bound: half the pool timeout.)
#[actix_web::test]
async fn readiness_fails_fast_while_postgres_is_down() {
    // REQ: OPS-PROBES
    let Some(cluster) = e2e::pg::private_cluster() else {
        return;
    };
    let admin_db = sea_orm::Database::connect(cluster.url("postgres"))
        .await
        .unwrap();
    sea_orm::ConnectionTrait::execute_unprepared(&admin_db, "CREATE DATABASE ready")
        .await
        .unwrap();
    let _ = admin_db.close().await;
    let app = e2e::spawn_app_on(
        cluster.url("ready"),
        e2e::Backend::Postgres,
        tempfile::tempdir().unwrap(),
        10_000,
    )
    .await;
    let anon = app.anonymous();
    anon.get("/readyz").await.expect(200);
    let cluster = std::sync::Arc::new(cluster);
    let c = cluster.clone();
    let stopped = tokio::task::spawn_blocking(move || c.stop()).await;
    assert!(matches!(stopped, Ok(Ok(()))), "pg_ctl stop: {stopped:?}");
    for probe in 0..3 {
        let started = std::time::Instant::now();
        anon.get("/readyz")
            .await
            .expect_problem(503, "database_unavailable");
        assert!(
            started.elapsed() < std::time::Duration::from_secs(5),
            "probe {probe} answered after {:?}, not well inside the 10 s pool timeout",
            started.elapsed()
        );
    }
    let c = cluster.clone();
    tokio::task::spawn_blocking(move || c.restart())
        .await
        .unwrap()
        .unwrap();
    // Bounded wait for the pool to reconnect.
    let mut ready = false;
    for _ in 0..100 {
        if anon.get("/readyz").await.status.as_u16() == 200 {
            ready = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(ready, "ready again after the restart");
    app.stop().await;
}

/// An idle client connection stays open past the 5 s actix default (the default is 75 s,
/// longer than a load balancer's 60 s idle timeout): a second request on the same
/// connection after 6 s idle is answered, not met by a closed socket.
#[actix_web::test]
async fn an_idle_connection_outlives_a_load_balancers_idle_timeout() {
    // REQ: OPS-PROBES
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let Some(app) = e2e::spawn_app(e2e::Backend::Sqlite).await else {
        return;
    };
    let address = app.base_url.trim_start_matches("http://").to_string();
    let mut conn = tokio::net::TcpStream::connect(&address).await.unwrap();
    let request = format!("GET /healthz HTTP/1.1\r\nHost: {address}\r\n\r\n");
    async fn answer(conn: &mut tokio::net::TcpStream) -> String {
        let mut buf = vec![0_u8; 4096];
        let n = tokio::time::timeout(std::time::Duration::from_secs(5), conn.read(&mut buf))
            .await
            .expect("an answer within 5 s")
            .unwrap_or(0);
        String::from_utf8_lossy(&buf[..n]).into_owned()
    }
    conn.write_all(request.as_bytes()).await.unwrap();
    assert!(answer(&mut conn).await.starts_with("HTTP/1.1 200"));
    tokio::time::sleep(std::time::Duration::from_secs(6)).await;
    let _ = conn.write_all(request.as_bytes()).await;
    let second = answer(&mut conn).await;
    assert!(
        second.starts_with("HTTP/1.1 200"),
        "the connection was closed while idle: {second:?}"
    );
    app.stop().await;
}

/// PostgreSQL cancels a statement past `CMO_DB_STATEMENT_TIMEOUT_MS`: a request stuck
/// behind a lock another session holds answers 503 `statement_timeout` in time, keeps
/// nothing, and the same request succeeds once the lock is gone.
#[actix_web::test]
async fn a_postgres_statement_past_its_limit_answers_503_and_keeps_nothing() {
    // REQ: OPS-PROBES
    use e2e::api_process::ApiProcess;
    use sea_orm::{ColumnTrait, EntityTrait, PaginatorTrait, QueryFilter, TransactionTrait};
    let Some(app) = e2e::spawn_app(e2e::Backend::Postgres).await else {
        return;
    };
    let api = ApiProcess::start(
        &app.database_url,
        app.now(),
        &[("CMO_DB_STATEMENT_TIMEOUT_MS", "500")],
    );
    let client = api.client(&app.admin_token);
    let stored = async || {
        entity::api_token::Entity::find()
            .filter(entity::api_token::Column::Name.eq("behind a lock"))
            .count(&app.db)
            .await
            .unwrap()
    };
    // Another session holds the organization's audit chain head, which every audited
    // change of the organization takes.
    let blocker = app.db.begin().await.unwrap();
    sea_orm::ConnectionTrait::execute_unprepared(
        &blocker,
        &format!(
            "SELECT 1 FROM audit_chain_heads WHERE org_id = {} FOR UPDATE",
            app.org_id
        ),
    )
    .await
    .unwrap();
    let started = std::time::Instant::now();
    client
        .post(
            "/api/v1/tokens",
            serde_json::json!({"name": "behind a lock"}),
        )
        .await
        .expect_problem(503, "statement_timeout");
    assert!(
        started.elapsed() < std::time::Duration::from_secs(5),
        "answered after {:?}",
        started.elapsed()
    );
    blocker.rollback().await.unwrap();
    assert_eq!(
        stored().await,
        0,
        "nothing of the cancelled request was kept"
    );
    client
        .post(
            "/api/v1/tokens",
            serde_json::json!({"name": "behind a lock"}),
        )
        .await
        .expect(201);
    assert_eq!(stored().await, 1);
    app.stop().await;
}

/// A request past `CMO_REQUEST_TIMEOUT_SECS` (here stuck behind another process's SQLite
/// write, which would hold it for the 10 s busy timeout) is stopped and answered 503
/// `request_timeout` as problem+json; what it started is rolled back and a retry with the
/// same key, once the writer is gone, runs it once.
#[actix_web::test]
async fn a_request_past_its_time_limit_is_stopped_and_rolled_back() {
    // REQ: OPS-PROBES
    use e2e::api_process::ApiProcess;
    use sea_orm::{ColumnTrait, EntityTrait, PaginatorTrait, QueryFilter};
    let Some(app) = e2e::spawn_app(e2e::Backend::Sqlite).await else {
        return;
    };
    let api = ApiProcess::start(
        &app.database_url,
        app.now(),
        &[("CMO_REQUEST_TIMEOUT_SECS", "1")],
    );
    let client = api.client(&app.admin_token);
    let stored = async || {
        entity::api_token::Entity::find()
            .filter(entity::api_token::Column::Name.eq("past its limit"))
            .count(&app.db)
            .await
            .unwrap()
    };
    let post = async || {
        client
            .send(
                client
                    .request(awc::http::Method::POST, "/api/v1/tokens")
                    .insert_header(("Idempotency-Key", "past-its-limit")),
                Some(&serde_json::json!({"name": "past its limit"})),
            )
            .await
    };
    let writer = entity::db::begin_write(&app.db).await.unwrap();
    let started = std::time::Instant::now();
    let stopped = post().await;
    let took = started.elapsed();
    assert_eq!(stopped.header("retry-after"), Some("1"));
    stopped.expect_problem(503, "request_timeout");
    assert!(
        took < std::time::Duration::from_secs(5),
        "stopped after {took:?}, not at the 1 s limit"
    );
    drop(writer);
    // Bounded: the retry may meet the stopped request's connection still waiting out
    // SQLite's lock; it is served as soon as that connection is free.
    let retry = post().await.expect(201);
    assert!(retry.header("idempotent-replayed").is_none());
    assert_eq!(
        stored().await,
        1,
        "the stopped request kept nothing; the retry ran once"
    );
    app.stop().await;
}
