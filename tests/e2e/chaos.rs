//! Faults under load. PostgreSQL restarted under API load (a private cluster, so other
//! tests keep theirs): the api answers 503 problem+json while the database is away,
//! recovers without a restart, and every write it acknowledged with a 2xx is in the
//! database afterwards. Two workers running side by side for a whole run send nothing
//! twice. (Killing the worker binary and an SMTP outage: `worker/tests/chaos.rs`.)

use std::collections::BTreeSet;
use std::time::Duration;

use e2e::{Backend, spawn_app_on};
use sea_orm::{ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, QuerySelect};
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
                        "/api/v1/invitations",
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
        // The load is under way once invitations are being created (a bounded wait on
        // that, not a fixed pause).
        let created = || async {
            sea_orm::PaginatorTrait::count(
                <entity::invitation::Entity as EntityTrait>::find(),
                &app.db,
            )
            .await
            .unwrap_or(0)
        };
        let at_start = created().await;
        for _ in 0..200 {
            if created().await >= at_start + 10 {
                break;
            }
            actix_web::rt::time::sleep(Duration::from_millis(20)).await;
        }
        assert!(created().await >= at_start + 10, "the load did not start");
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
                "/api/v1/invitations",
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
    let stored: BTreeSet<i64> = entity::invitation::Entity::find()
        .select_only()
        .column(entity::invitation::Column::Id)
        .into_tuple()
        .all(&app.db)
        .await
        .unwrap()
        .into_iter()
        .collect();
    let missing: Vec<_> = acknowledged.difference(&stored).collect();
    assert!(missing.is_empty(), "acknowledged but lost: {missing:?}");
    // And nothing half done: every stored invitation has its `create` audit event (a 503
    // never left one without its trail, or a trail entry without its invitation).
    let audited: BTreeSet<i64> = entity::audit_event::Entity::find()
        .filter(entity::audit_event::Column::EntityType.eq("invitation"))
        .filter(entity::audit_event::Column::Action.eq("create"))
        .all(&app.db)
        .await
        .unwrap()
        .into_iter()
        .filter_map(|a| a.entity_id.parse().ok())
        .collect();
    let unaudited: Vec<_> = stored.difference(&audited).collect();
    let orphaned: Vec<_> = audited.difference(&stored).collect();
    assert!(
        unaudited.is_empty() && orphaned.is_empty(),
        "invitations without their create event: {unaudited:?}; events without their invitation: {orphaned:?}"
    );
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

/// Two workers running their real loops side by side for a whole run (schedules every
/// few seconds, so each occurrence is seen by both many times): one reminder per owner,
/// one digest per member, one page per paged person, one webhook delivery per event.
async fn two_workers_for_a_whole_run_send_nothing_twice(app: &e2e::TestApp) {
    // REQ: TIME-ONE-CLOCK, NOTIF-REMINDER-ONCE, NOTIF-MESSAGE-ID-ONCE
    use e2e::hooks::HookReceiver;
    use e2e::smtp::SmtpSink;
    let s = crate::programs::program_setup(app).await;
    let p = s.program_id;
    s.pm.post(
        &format!("/api/v1/programs/{p}/team"),
        json!({"user_id": s.pm_id, "governance_tier": "core_team", "program_role": "Program lead"}),
    )
    .await
    .expect(201);
    let zurich: chrono_tz::Tz = "Europe/Zurich".parse().unwrap();
    let today = app.now().with_timezone(&zurich).date_naive();
    for (title, days) in [("Send the protocol", 3), ("Review the batch record", 1)] {
        s.pm.post(
            &format!("/api/v1/programs/{p}/action-items"),
            json!({"title": title, "owner_user_id": s.pm_id, "due_date": today - chrono::TimeDelta::days(days)}),
        )
        .await
        .expect(201);
    }
    let receiver = HookReceiver::start().await;
    app.admin()
        .post(
            "/api/v1/webhooks",
            json!({"url": receiver.url("/h"), "event_types": ["deviation.reported", "escalation.opened"]}),
        )
        .await
        .expect(201);
    s.pm.post(
        &format!("/api/v1/programs/{p}/deviations"),
        json!({"title": "Bioburden excursion", "description": "d", "detected_at": app.now(),
               "criticality": "critical", "category": "equipment", "batch_lot": "LOT-1"}),
    )
    .await
    .expect(201);

    let sink = SmtpSink::start().await;
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let mut workers = Vec::new();
    for n in 0..2 {
        let db = migration::startup::connect(&app.database_url, None)
            .await
            .unwrap();
        let ctx = worker::jobs::JobContext {
            db,
            ..app.job_context(&format!("whole-run-{n}"))
        };
        let every_3s = "*/3 * * * * *".to_string();
        let jobs = worker::runner::JobSettings {
            reminders: worker::jobs::reminders::ReminderSettings {
                schedule: every_3s.clone(),
                ..Default::default()
            },
            digests: worker::jobs::digests::DigestSettings {
                schedule: every_3s.clone(),
                ..Default::default()
            },
            ..e2e::quiet_job_settings(&sink.url())
        };
        let schedules = worker::runner::Schedules {
            tick: "* * * * * *".to_string(),
            dispatch: "* * * * * *".to_string(),
            escalation_tick: Duration::from_millis(100),
            webhook_tick: Duration::from_millis(100),
            ..Default::default()
        };
        let mut stopped = stopped.clone();
        workers.push(tokio::spawn(async move {
            let shutdown = async move {
                let _ = stopped.changed().await;
            };
            worker::runner::run(ctx, schedules, jobs, shutdown).await
        }));
    }
    // Reminder, digest and page arrive; then both workers keep running through several
    // more occurrences of every schedule.
    let kinds = |sink: &SmtpSink| {
        let mut reminders = 0;
        let mut digests = 0;
        let mut pages = 0;
        for m in sink.received() {
            let subject = m.parsed().subject().unwrap_or_default().to_string();
            if subject.contains("overdue action item") {
                reminders += 1;
            } else if subject.contains(", week 20") {
                digests += 1;
            } else if subject.contains("escalation tier 1") {
                pages += 1;
            }
        }
        (reminders, digests, pages)
    };
    for _ in 0..300 {
        let (r, d, p) = kinds(&sink);
        if r > 0 && d > 0 && p > 0 && receiver.count() >= 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // A simulated minute on the shared clock (a second every 100 ms): about twenty
    // occurrences of every 3-second schedule, each seen by both workers, all inside one
    // local day and ISO week (the clock starts on a Wednesday at 10:00 UTC).
    for _ in 0..60 {
        app.clock.advance(chrono::TimeDelta::seconds(1));
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let _ = stop.send(true);
    for w in workers {
        w.await
            .expect("worker task")
            .expect("each worker ran to the end without an error");
    }
    // Both workers ran: each left its heartbeat.
    assert_eq!(
        app.workers_that_ran().await,
        ["whole-run-0", "whole-run-1"],
        "both workers ran"
    );
    let (reminders, digests, pages) = kinds(&sink);
    // One owner with two overdue items: one reminder. One member: one digest, one page.
    assert_eq!(
        (reminders, digests, pages),
        (1, 1, 1),
        "reminders, digests, pages"
    );
    let mut ids: Vec<String> = sink
        .received()
        .iter()
        .map(|m| m.parsed().message_id().unwrap_or_default().to_string())
        .collect();
    let total = ids.len();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), total, "no Message-ID twice");
    let hooks = receiver.received();
    let mut events: Vec<&str> = hooks
        .iter()
        .map(|h| h.header("x-cmo-event-id").unwrap())
        .collect();
    events.sort();
    events.dedup();
    assert_eq!(
        (hooks.len(), events.len()),
        (2, 2),
        "one delivery per event"
    );
}
e2e::on_both_databases!(two_workers_for_a_whole_run_send_nothing_twice);
