//! The `cmo-worker` binary: migrates, beats, and stops cleanly on SIGTERM.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use sea_orm::{EntityTrait, PaginatorTrait};

const BIN: &str = env!("CARGO_BIN_EXE_cmo-worker");

/// Runs at a test's instant (`--test-clock-start`): its heartbeats carry that time, not
/// the machine's.
#[tokio::test]
async fn the_worker_beats_and_stops_on_sigterm() {
    // REQ: TIME-TEST-CLOCK
    let instant = chrono::DateTime::parse_from_rfc3339("2027-03-29T07:30:00Z")
        .unwrap()
        .with_timezone(&chrono::Utc);
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}?mode=rwc", dir.path().join("cmo.db").display());
    let outbox_dir = dir.path().join("outbox");
    // An email waiting in the outbox before the worker starts.
    let args = migration::startup::DatabaseArgs::for_url(url.clone());
    let db = migration::startup::connect_and_migrate(&args, 1)
        .await
        .unwrap();
    entity::outbox::enqueue(
        &db,
        entity::outbox::Draft {
            dedupe_key: "binary-test".to_string(),
            to: vec!["pm@acme.test".to_string()],
            cc: vec![],
            subject: "Hello from the outbox".to_string(),
            text_body: "plain".to_string(),
            html_body: "<p>html</p>".to_string(),
            list_unsubscribe: None,
        },
        instant,
        "cmo.test",
    )
    .await
    .unwrap();
    db.close().await.unwrap();
    let mut child = Command::new(BIN)
        .env("DATABASE_URL", &url)
        .env("CMO_OUTBOX_DIR", &outbox_dir)
        .env("CMO_DISPATCH_CRON", "* * * * * *")
        .env("CMO_HEARTBEAT_CRON", "* * * * * *")
        .env("CMO_WORKER_ID", "worker-under-test")
        .env("CMO_ALLOW_TEST_CLOCK", "1")
        .env("CMO_TEST_CLOCK_START", instant.to_rfc3339())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();

    let db = migration::startup::connect(&url, Some(1)).await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    let beat = loop {
        let row = entity::worker_heartbeat::Entity::find_by_id("worker-under-test".to_string())
            .one(&db)
            .await
            .ok()
            .flatten();
        if let Some(row) = row.filter(|r| r.beats >= 2) {
            break row;
        }
        assert!(Instant::now() < deadline, "no second heartbeat within 20 s");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    // The worker's clock started at the test's instant and moved on in real time.
    let since = |t: chrono::DateTime<chrono::Utc>| (t - instant).num_seconds();
    assert!((0..20).contains(&since(beat.started_at)), "{beat:?}");
    assert!(beat.last_beat_at > beat.started_at, "{beat:?}");
    assert!((0..30).contains(&since(beat.last_beat_at)), "{beat:?}");
    // The dispatcher wrote the queued email as an .eml file (no SMTP URL configured).
    let deadline = Instant::now() + Duration::from_secs(20);
    let eml = loop {
        let found = std::fs::read_dir(&outbox_dir).ok().and_then(|mut d| {
            d.find_map(|e| {
                e.ok()
                    .filter(|e| e.path().extension().is_some_and(|x| x == "eml"))
            })
        });
        if let Some(e) = found {
            break std::fs::read_to_string(e.path()).unwrap();
        }
        assert!(Instant::now() < deadline, "no .eml within 20 s");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert!(eml.contains("Subject: Hello from the outbox"));
    assert_eq!(
        entity::worker_heartbeat::Entity::find()
            .count(&db)
            .await
            .unwrap(),
        1
    );

    assert!(
        Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status()
            .unwrap()
            .success()
    );
    let deadline = Instant::now() + Duration::from_secs(20);
    let exit = loop {
        if let Some(exit) = child.try_wait().unwrap() {
            break exit;
        }
        assert!(Instant::now() < deadline, "did not stop after SIGTERM");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(exit.success(), "{exit:?}");
}

/// The test clock is for tests only: without the test-only variable the flag is refused.
#[test]
fn a_test_clock_is_refused_outside_tests() {
    // REQ: TIME-TEST-CLOCK
    let out = Command::new(BIN)
        .args(["--test-clock-start", "2027-03-29T07:30:00Z"])
        .env_remove("CMO_ALLOW_TEST_CLOCK")
        .env("DATABASE_URL", "sqlite::memory:")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("for tests only") && stderr.contains("CMO_ALLOW_TEST_CLOCK"),
        "{stderr}"
    );
}
