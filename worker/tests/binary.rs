//! The `cmo-worker` binary: migrates, beats, and stops cleanly on SIGTERM.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use sea_orm::{EntityTrait, PaginatorTrait};

const BIN: &str = env!("CARGO_BIN_EXE_cmo-worker");

#[tokio::test]
async fn the_worker_beats_and_stops_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}?mode=rwc", dir.path().join("cmo.db").display());
    let mut child = Command::new(BIN)
        .env("DATABASE_URL", &url)
        .env("CMO_HEARTBEAT_CRON", "* * * * * *")
        .env("CMO_WORKER_ID", "worker-under-test")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();

    let db = api::db::connect(&url, Some(1)).await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    let beats = loop {
        let row = entity::worker_heartbeat::Entity::find_by_id("worker-under-test".to_string())
            .one(&db)
            .await
            .ok()
            .flatten();
        if let Some(row) = row.filter(|r| r.beats >= 2) {
            break row.beats;
        }
        assert!(Instant::now() < deadline, "no second heartbeat within 20 s");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert!(beats >= 2);
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
