//! Escalations paged by real `cmo-worker` processes: a SIGKILL mid-pass, and the
//! PostgreSQL NOTIFY that wakes them.

use chrono::TimeDelta;
use e2e::smtp::SmtpSink;
use e2e::{TestApp, on_both_databases};
use entity::escalation::{self};
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};
use serde_json::json;

use crate::escalations::team;

/// Real `cmo-worker` processes: the first pages tier 1 for a burst of critical deviations
/// and is SIGKILLed while it still has pages to send; two fresh workers, started when
/// the 15-minute wait is over, finish tier 1 and page tier 2: every escalation reaches
/// tier 2, no email is sent under two Message-IDs, and each of the three workers ran.
async fn a_killed_worker_leaves_nothing_half_done(app: &TestApp) {
    // REQ: ESC-KILLED-WORKER, ESC-ADVANCE, ESC-TIER-ONE-AT-ONCE
    use e2e::worker_process::WorkerProcess;
    const BURST: usize = 20;
    let t = team(app).await;
    let sink = SmtpSink::start().await;
    let fast = [("CMO_ESCALATION_TICK_MS", "50")];
    for n in 0..BURST {
        t.s.pm
            .post(
                &format!("/api/v1/programs/{}/deviations", t.s.program_id),
                json!({"title": format!("Filter integrity test failed #{n}"), "description": "post-use test failed",
                       "detected_at": app.now(), "criticality": "critical", "category": "equipment"}),
            )
            .await
            .expect(201);
    }
    // The first worker pages the burst; the SMTP server takes 100 ms per email, so when
    // three have arrived the rest are still being sent: killed there.
    sink.slow_down(std::time::Duration::from_millis(100));
    let mut first = WorkerProcess::start(&app.database_url, &sink.url(), "first", app.now(), &fast);
    sink.wait_for(3).await;
    first.kill();
    let unsent = entity::outbox::Entity::find()
        .filter(entity::outbox::Column::Status.ne(entity::outbox::OutboxStatus::Sent))
        .all(&app.db)
        .await
        .unwrap()
        .len();
    assert!(unsent > 0, "killed mid-work: {unsent} emails not yet sent");
    sink.slow_down(std::time::Duration::ZERO);
    let later = app.now() + TimeDelta::minutes(16);
    let second = WorkerProcess::start(&app.database_url, &sink.url(), "second", later, &fast);
    let third = WorkerProcess::start(&app.database_url, &sink.url(), "third", later, &fast);
    // Bounded wait for the condition: every escalation paged twice and every email sent.
    let done = || async {
        let rows = escalation::Entity::find().all(&app.db).await.unwrap();
        let unsent = entity::outbox::Entity::find()
            .filter(entity::outbox::Column::Status.ne(entity::outbox::OutboxStatus::Sent))
            .all(&app.db)
            .await
            .unwrap();
        rows.len() == BURST && rows.iter().all(|e| e.page_seq == 2) && unsent.is_empty()
    };
    for _ in 0..600 {
        if done().await {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert!(
        done().await,
        "all escalations at tier 2 and all email sent within 30 s"
    );
    for w in [second, third] {
        let id = w.worker_id.clone();
        assert!(w.stop().await.success(), "{id} exits 0 on SIGTERM");
    }
    // The production hold's notice to each team member may leave too, depending on which
    // worker's pass read its event first; never twice. The paging is what is counted here.
    let (production, received): (Vec<_>, Vec<_>) = sink.received().into_iter().partition(|m| {
        m.parsed()
            .subject()
            .unwrap_or_default()
            .starts_with("Production of")
    });
    let mut told: Vec<String> = production.iter().map(|m| m.to.join(",")).collect();
    told.sort();
    told.dedup();
    assert_eq!(
        told.len(),
        production.len(),
        "one production notice per person at most"
    );
    let mut by_id: std::collections::BTreeMap<String, Vec<String>> = Default::default();
    for m in &received {
        let id = m.parsed().message_id().unwrap_or_default().to_string();
        by_id.entry(id).or_default().push(m.to.join(","));
    }
    // Per escalation: tier 1 to QA, tier 2 to the lead, the "escalated" notice to QA.
    let subjects: std::collections::BTreeMap<String, usize> =
        received.iter().fold(Default::default(), |mut m, r| {
            let subject = r.parsed().subject().unwrap_or_default().to_string();
            let key = format!(
                "{} -> {}",
                subject.split(" #").next().unwrap_or(""),
                r.to.join(",")
            );
            *m.entry(key).or_default() += 1;
            m
        });
    assert_eq!(
        by_id.len(),
        3 * BURST,
        "distinct emails (Message-IDs); received by subject and recipient: {subjects:#?}"
    );
    assert!(
        by_id.values().all(|to| to.iter().all(|t| t == &to[0])),
        "a repeated Message-ID is the same email"
    );
    let to_lead = by_id
        .values()
        .filter(|to| to[0] == "lead@acme.test")
        .count();
    assert_eq!(to_lead, BURST, "tier 2 paged once per escalation");
    // Duplicates only for what was in flight at the kill (same Message-ID).
    assert!(
        received.len() - by_id.len() <= 50,
        "{} duplicates",
        received.len() - by_id.len()
    );
    assert_eq!(
        app.workers_that_ran().await,
        ["first", "second", "third"],
        "each worker ran"
    );
}
on_both_databases!(a_killed_worker_leaves_nothing_half_done);

/// Pages received (a critical deviation's), not the production-hold notices that the
/// dispatcher sends on its own two-second tick.
fn pages_sent(sink: &SmtpSink) -> usize {
    sink.received()
        .iter()
        .filter(|r| {
            r.parsed()
                .subject()
                .is_some_and(|s| s.starts_with("[CRITICAL]"))
        })
        .count()
}

/// PostgreSQL: a new escalation wakes a real worker through LISTEN/NOTIFY, not its tick
/// (set to a minute here), and still does after the database server restarted.
#[actix_web::test]
async fn notify_wakes_the_worker_at_once_also_after_a_postgres_restart() {
    // REQ: ESC-NOTIFY-WAKE
    use e2e::worker_process::WorkerProcess;
    let Some(cluster) = e2e::pg::private_cluster() else {
        return;
    };
    let admin_db = sea_orm::Database::connect(cluster.url("postgres"))
        .await
        .unwrap();
    sea_orm::ConnectionTrait::execute_unprepared(&admin_db, "CREATE DATABASE wake")
        .await
        .unwrap();
    let _ = admin_db.close().await;
    let app = e2e::spawn_app_on(
        cluster.url("wake"),
        e2e::Backend::Postgres,
        tempfile::tempdir().unwrap(),
        10_000,
    )
    .await;
    let t = team(&app).await;
    let sink = SmtpSink::start().await;
    let minute_tick = [("CMO_ESCALATION_TICK_MS", "60000")];
    let worker = WorkerProcess::start(
        &app.database_url,
        &sink.url(),
        "listener",
        app.now(),
        &minute_tick,
    );
    // The loop's first tick runs at start; wait until it has passed (the heartbeat row is
    // written just before the loops start), so that only NOTIFY can wake it next.
    let beat = || async {
        entity::worker_heartbeat::Entity::find()
            .all(&app.db)
            .await
            .map(|rows| rows.iter().any(|b| b.beats >= 2))
            .unwrap_or(false)
    };
    for _ in 0..200 {
        if beat().await {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert!(beat().await, "the worker runs");
    let page_within = |n: usize, what: &'static str| {
        let sink = &sink;
        async move {
            let started = std::time::Instant::now();
            while pages_sent(sink) < n && started.elapsed() < std::time::Duration::from_secs(10) {
                tokio::time::sleep(std::time::Duration::from_millis(20)).await;
            }
            let took = started.elapsed();
            assert!(pages_sent(sink) >= n, "{what}: no page within 10 s");
            assert!(
                took < std::time::Duration::from_secs(10),
                "{what}: paged after {took:?}, well before the one-minute tick"
            );
        }
    };
    let report = |n: usize| {
        let pm = t.s.pm.clone();
        let program_id = t.s.program_id;
        let now = app.now();
        async move {
            pm.post(
                &format!("/api/v1/programs/{program_id}/deviations"),
                json!({"title": format!("Filter integrity test failed #{n}"), "description": "d",
                       "detected_at": now, "criticality": "critical", "category": "equipment"}),
            )
            .await
            .expect(201);
        }
    };
    report(1).await;
    page_within(1, "first escalation").await;
    // The server restarts; the worker's LISTEN connection is cut and comes back.
    cluster.stop().unwrap();
    cluster.restart().unwrap();
    let mut posted = false;
    for _ in 0..100 {
        let r = t
            .s
            .pm
            .post(
                &format!("/api/v1/programs/{}/deviations", t.s.program_id),
                json!({"title": "Filter integrity test failed #2", "description": "d",
                       "detected_at": app.now(), "criticality": "critical", "category": "equipment"}),
            )
            .await;
        if r.status.as_u16() == 201 {
            posted = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(posted, "the api recovers after the restart");
    page_within(2, "after the restart").await;
    assert!(worker.stop().await.success());
    app.stop().await;
}

/// SQLite: a new escalation wakes a real worker process at once through a datagram to
/// its loopback wake socket (published with its heartbeat), not at its tick (a minute
/// here); a second one does too.
#[actix_web::test]
async fn a_datagram_wakes_the_worker_at_once_on_sqlite() {
    // REQ: ESC-NOTIFY-WAKE
    use e2e::worker_process::WorkerProcess;
    let app = e2e::spawn_app(e2e::Backend::Sqlite)
        .await
        .expect("sqlite app");
    let t = team(&app).await;
    let sink = SmtpSink::start().await;
    let worker = WorkerProcess::start(
        &app.database_url,
        &sink.url(),
        "datagrams",
        app.now(),
        &[("CMO_ESCALATION_TICK_MS", "60000")],
    );
    // The wake address is published by the first heartbeat, before the loops start; the
    // loop's first pass runs at start. Past both, only a wake pages within the minute.
    let published = || async {
        entity::worker_heartbeat::Entity::find()
            .all(&app.db)
            .await
            .map(|rows| rows.iter().any(|b| b.wake_addr.is_some()))
            .unwrap_or(false)
    };
    for _ in 0..200 {
        if published().await {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert!(published().await, "the worker publishes its wake address");
    tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
    for n in 1..=2 {
        let started = std::time::Instant::now();
        t.s.pm
            .post(
                &format!("/api/v1/programs/{}/deviations", t.s.program_id),
                json!({"title": format!("Filter integrity test failed #{n}"), "description": "d",
                       "detected_at": app.now(), "criticality": "critical", "category": "equipment"}),
            )
            .await
            .expect(201);
        while pages_sent(&sink) < n && started.elapsed() < std::time::Duration::from_secs(10) {
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        assert!(
            pages_sent(&sink) >= n,
            "escalation {n}: no page within 10 s (the tick is a minute)"
        );
    }
    assert!(worker.stop().await.success());
    app.stop().await;
}
