//! Worker jobs against both databases (called directly with a chosen time).

use chrono::TimeDelta;
use e2e::{TestApp, on_both_databases};
use entity::worker_heartbeat;
use sea_orm::EntityTrait;
use worker::jobs::{JobContext, heartbeat::heartbeat};

async fn heartbeats_upsert_one_row_per_worker(app: &TestApp) {
    let started = app.now();
    let ctx = |id: &str| JobContext {
        hostname: "test-host".to_string(),
        ..app.job_context(id)
    };
    assert_eq!(heartbeat(&ctx("w1"), started, None).await.unwrap().beats, 1);
    assert_eq!(
        heartbeat(
            &ctx("w1"),
            started + TimeDelta::seconds(30),
            Some("127.0.0.1:4242")
        )
        .await
        .unwrap()
        .beats,
        2
    );
    assert_eq!(
        heartbeat(&ctx("w2"), started + TimeDelta::seconds(31), None)
            .await
            .unwrap()
            .beats,
        1
    );
    let w1 = worker_heartbeat::Entity::find_by_id("w1".to_string())
        .one(&app.db)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(w1.last_beat_at, started + TimeDelta::seconds(30));
    assert_eq!(w1.started_at, started);
    assert_eq!(w1.wake_addr.as_deref(), Some("127.0.0.1:4242"));
    assert_eq!(
        worker_heartbeat::Entity::find()
            .all(&app.db)
            .await
            .unwrap()
            .len(),
        2
    );
}
on_both_databases!(heartbeats_upsert_one_row_per_worker);
