//! The domain event feed: what is emitted, who sees it, and paging without gaps or
//! repeats while writers commit concurrently.

use e2e::{TestApp, on_both_databases};
use serde_json::json;

use crate::programs::program_setup;

fn report(title: &str, criticality: &str, app: &TestApp) -> serde_json::Value {
    json!({"title": title, "description": "d", "detected_at": app.now(), "criticality": criticality,
           "category": "equipment", "batch_lot": "LOT-1"})
}

async fn changes_appear_in_the_feed_for_both_parties_only(app: &TestApp) {
    let s = program_setup(app).await;
    let devs = format!("/api/v1/programs/{}/deviations", s.program_id);
    let d =
        s.pm.post(&devs, report("Bioburden", "critical", app))
            .await
            .expect(201)
            .body;
    let page = s.pm.get("/api/v1/events").await.expect(200).body;
    let types: Vec<&str> = page["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["type"].as_str().unwrap())
        .collect();
    // The set-up qualified the CMO: the sponsor's own decisions come first.
    assert_eq!(
        types,
        [
            "cmo.qualification_changed",
            "cmo.qualification_changed",
            "deviation.reported",
            "production.held",
            "escalation.opened"
        ]
    );
    assert_eq!(page["items"][1]["payload"]["to"], "qualified");
    let program_events = &page["items"].as_array().unwrap()[2..];
    assert_eq!(program_events[0]["payload"]["deviation_id"], d["id"]);
    assert_eq!(program_events[0]["resource_type"], "deviation");
    let last = page["next_after"].as_i64().unwrap();
    // The CMO on the program sees the program's events, not the sponsor's decisions about
    // it; another CMO nothing.
    let cmo_page = s.cmo_admin.get("/api/v1/events").await.expect(200).body;
    assert_eq!(cmo_page["items"].as_array().unwrap(), program_events);
    let (_, _, other) = crate::partner_org(app, "Other CMO", "cmo", "x@other.test").await;
    assert_eq!(
        app.client(&other)
            .get("/api/v1/events")
            .await
            .expect(200)
            .body["items"],
        json!([])
    );
    // Filters, and nothing new after the last cursor.
    let only =
        s.pm.get("/api/v1/events?types=escalation.opened")
            .await
            .expect(200)
            .body;
    assert_eq!(only["items"].as_array().unwrap().len(), 1);
    let none =
        s.pm.get(&format!("/api/v1/events?after={last}"))
            .await
            .expect(200)
            .body;
    assert_eq!(
        (none["items"].clone(), none["next_after"].as_i64()),
        (json!([]), Some(last))
    );
    s.pm.get("/api/v1/events?types=deviation.exploded")
        .await
        .expect_problem(422, "validation_failed");
    s.pm.get("/api/v1/events?limit=0")
        .await
        .expect_problem(422, "validation_failed");
    // Triage: its event, and the escalation resolved by it.
    s.pm.post(
        &format!("/api/v1/deviations/{}/transitions", d["id"]),
        json!({"event": "triage"}),
    )
    .await
    .expect(200);
    let next =
        s.pm.get(&format!("/api/v1/events?after={last}"))
            .await
            .expect(200)
            .body;
    let types: Vec<&str> = next["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["type"].as_str().unwrap())
        .collect();
    assert_eq!(types, ["deviation.triaged", "escalation.resolved"]);
    assert_eq!(next["items"][0]["payload"]["from"], "reported");
    assert_eq!(next["items"][0]["payload"]["to"], "triaged");
}
on_both_databases!(changes_appear_in_the_feed_for_both_parties_only);

async fn paging_under_concurrent_writes_has_no_gap_and_no_repeat(app: &TestApp) {
    // REQ: HOOK-FEED-ORDER
    let s = program_setup(app).await;
    let devs = format!("/api/v1/programs/{}/deviations", s.program_id);
    let writers: Vec<_> = (0..4)
        .map(|w| {
            let pm = s.pm.clone();
            let devs = devs.clone();
            let body = report(&format!("W{w}"), "minor", app);
            actix_web::rt::spawn(async move {
                for _ in 0..10 {
                    pm.post(&devs, body.clone()).await.expect(201);
                }
            })
        })
        .collect();
    let mut seen: Vec<i64> = Vec::new();
    let mut after = 0;
    let mut writers_done = false;
    // Bounded: 40 events at most 1 per page plus idle polls.
    for _ in 0..2_000 {
        let page =
            // The CMO reads: it sees the program's events only, not the sponsor's
            // qualification of it from the set-up.
            s.cmo_admin.get(&format!("/api/v1/events?after={after}&limit=3"))
                .await
                .expect(200)
                .body;
        let items = page["items"].as_array().unwrap();
        seen.extend(items.iter().map(|e| e["cursor"].as_i64().unwrap()));
        after = page["next_after"].as_i64().unwrap();
        if items.is_empty() && writers_done {
            break;
        }
        if !writers_done && writers.iter().all(|w| w.is_finished()) {
            // One more full pass after the last commit.
            writers_done = true;
        }
    }
    for w in writers {
        w.await.unwrap();
    }
    assert_eq!(seen.len(), 40, "every event once");
    let expected: Vec<i64> = (seen[0]..seen[0] + 40).collect();
    assert_eq!(
        seen, expected,
        "consecutive cursors, in order, no gap, no repeat"
    );
}
on_both_databases!(paging_under_concurrent_writes_has_no_gap_and_no_repeat);

/// PostgreSQL: an event writer does not wait for another organization's open transaction
/// (before, every event writer held one head row until its commit), and a CMO reading two
/// sponsors' events by cursor still gets the one committed last after the one it has.
#[actix_web::test]
async fn postgres_event_writers_do_not_wait_for_each_other_and_the_feed_keeps_commit_order() {
    // REQ: HOOK-FEED-ORDER
    use entity::domain_event::{Audience, Event, emit_to};
    use sea_orm::TransactionTrait;
    let Some(app) = e2e::spawn_app(e2e::Backend::Postgres).await else {
        return;
    };
    let (cmo_id, _, cmo_token) =
        crate::partner_org(&app, "Lonza Visp", "cmo", "admin@lonza.test").await;
    let (second_sponsor, _, _) =
        crate::partner_org(&app, "Second Sponsor", "sponsor", "admin@second.test").await;
    let cmo = app.client(&cmo_token);
    let event = |title: &str| {
        Event::DeviationReported(entity::domain_event::DeviationReported {
            deviation_id: 1,
            title: title.to_string(),
            criticality: entity::deviation::Criticality::Minor,
            category: entity::deviation::Category::Documentation,
            detected_at: app.now(),
        })
    };
    let both = |sponsor_org_id| Audience {
        program_id: None,
        sponsor_org_id,
        cmo_org_id: Some(cmo_id),
    };
    let seen = |after: i64| {
        let cmo = cmo.clone();
        async move {
            let page = cmo
                .get(&format!(
                    "/api/v1/events?after={after}&types=deviation.reported"
                ))
                .await
                .expect(200)
                .body;
            page["items"]
                .as_array()
                .unwrap()
                .iter()
                .map(|e| {
                    (
                        e["payload"]["title"].as_str().unwrap().to_string(),
                        e["cursor"].as_i64().unwrap(),
                    )
                })
                .collect::<Vec<_>>()
        }
    };
    // The first sponsor's transaction writes its event and stays open.
    let first = app.db.begin().await.unwrap();
    emit_to(&first, both(app.org_id), event("first sponsor"), app.now())
        .await
        .unwrap();
    // The second sponsor's writer commits meanwhile: it does not wait for the first.
    let db = app.db.clone();
    let second = event("second sponsor");
    let at = app.now();
    let committed = tokio::time::timeout(std::time::Duration::from_secs(20), async move {
        let txn = db.begin().await.unwrap();
        emit_to(&txn, both(second_sponsor), second, at)
            .await
            .unwrap();
        txn.commit().await.unwrap();
    })
    .await;
    assert!(
        committed.is_ok(),
        "the second organization's event writer waited for the first one's commit"
    );
    let page = seen(0).await;
    assert_eq!(page.len(), 1, "only the committed event: {page:?}");
    assert_eq!(page[0].0, "second sponsor");
    let after = page[0].1;
    // A writer that rolls back leaves no event and no hole.
    let rolled_back = app.db.begin().await.unwrap();
    emit_to(
        &rolled_back,
        both(second_sponsor),
        event("rolled back"),
        app.now(),
    )
    .await
    .unwrap();
    rolled_back.rollback().await.unwrap();
    // Committed later, so after the cursor the CMO has already passed: not skipped, and
    // the next cursor.
    first.commit().await.unwrap();
    let next = seen(after).await;
    assert_eq!(next, [("first sponsor".to_string(), after + 1)]);
    assert_eq!(seen(0).await.len(), 2);
    app.stop().await;
}

async fn overdue_action_items_emit_one_event_per_due_date(app: &TestApp) {
    let s = program_setup(app).await;
    let items = format!("/api/v1/programs/{}/action-items", s.program_id);
    let zurich: chrono_tz::Tz = "Europe/Zurich".parse().unwrap();
    let today = app.now().with_timezone(&zurich).date_naive();
    let item =
        s.pm.post(
            &items,
            json!({"title": "Send the protocol", "owner_user_id": s.pm_id, "due_date": today}),
        )
        .await
        .expect(201)
        .body;
    let done =
        s.pm.post(
            &items,
            json!({"title": "Already done", "owner_user_id": s.pm_id, "due_date": today}),
        )
        .await
        .expect(201)
        .body;
    s.pm.post(
        &format!("/api/v1/action-items/{}/transitions", done["id"]),
        json!({"event": "complete"}),
    )
    .await
    .expect(200);
    let ctx = app.job_context("w1");
    let overdue = |at| {
        let ctx = ctx.clone();
        async move {
            worker::jobs::overdue_events::overdue_events(&ctx, at)
                .await
                .unwrap()
                .emitted
        }
    };
    let feed = || async {
        s.pm.get("/api/v1/events?types=action_item.overdue")
            .await
            .expect(200)
            .body["items"]
            .as_array()
            .unwrap()
            .clone()
    };
    // Due today: not overdue yet.
    assert_eq!(overdue(app.now()).await, 0);
    // Three days later (two workers): one event, for the open item only.
    let later = app.now() + chrono::TimeDelta::days(3);
    let (a, b) = tokio::join!(overdue(later), overdue(later));
    assert_eq!(a + b, 1);
    assert_eq!(overdue(later + chrono::TimeDelta::days(1)).await, 0);
    let events = feed().await;
    assert_eq!(events.len(), 1);
    let e = &events[0];
    assert_eq!(e["resource_type"], "action_item");
    assert_eq!(e["payload"]["action_item_id"], item["id"]);
    assert_eq!(e["payload"]["due_date"], json!(today));
    assert_eq!(
        e["payload"]["days_overdue"], 3,
        "three days in the program's zone"
    );
    assert_eq!(e["payload"]["owner_user_id"], s.pm_id);
    // A moved due date is a new deadline: overdue again once it passes.
    let new_due = today + chrono::TimeDelta::days(5);
    s.pm.patch(
        &format!("/api/v1/action-items/{}", item["id"]),
        json!({"version": item["version"], "due_date": new_due, "reason": "re-planned"}),
    )
    .await
    .expect(200);
    assert_eq!(overdue(later).await, 0);
    assert_eq!(overdue(app.now() + chrono::TimeDelta::days(7)).await, 1);
    let events = feed().await;
    assert_eq!(events.len(), 2);
    assert_eq!(events[1]["payload"]["due_date"], json!(new_due));
}
on_both_databases!(overdue_action_items_emit_one_event_per_due_date);
