//! Action items: listed, filtered and snoozed; owners report progress but do not reshape
//! the plan.

use e2e::{TestApp, on_both_databases};
use serde_json::json;

use crate::plan::{QA_PASSWORD, decide, transition};
use crate::programs::program_setup;
use crate::user_with_token;

async fn action_items_are_listed_filtered_and_snoozed(app: &TestApp) {
    // REQ: ACT-LIFECYCLE, ACT-OVERDUE-LOCAL
    let s = program_setup(app).await;
    let today = app.today_in("Europe/Zurich");
    let items_path = format!("/api/v1/programs/{}/action-items", s.program_id);
    let create = |title: &'static str, due: chrono::NaiveDate, owner: i64| {
        let path = items_path.clone();
        let pm = s.pm.clone();
        async move {
            pm.post(&path, json!({"title": title, "owner_user_id": owner, "due_date": due, "source": "meeting"}))
                .await
        }
    };
    let late = create(
        "Send the cleaning validation protocol",
        today - chrono::TimeDelta::days(3),
        s.pm_id,
    )
    .await
    .expect(201)
    .body;
    assert_eq!(
        (late["overdue"].as_bool(), late["days_overdue"].as_i64()),
        (Some(true), Some(3))
    );
    let cmo_item = create(
        "Share the EM trend report",
        today + chrono::TimeDelta::days(5),
        s.cmo_admin_id,
    )
    .await
    .expect(201)
    .body;
    create("Ghost owner", today, 999_999)
        .await
        .expect_problem(422, "validation_failed");

    let overdue =
        s.pm.get("/api/v1/action-items?overdue=true")
            .await
            .expect(200)
            .body;
    assert_eq!(overdue["total"], 1);
    let mine = s
        .cmo_admin
        .get(&format!(
            "/api/v1/action-items?owner_user_id={}",
            s.cmo_admin_id
        ))
        .await
        .expect(200)
        .body;
    assert_eq!(mine["items"][0]["id"], cmo_item["id"]);
    let due_soon =
        s.pm.get(&format!(
            "/api/v1/action-items?due_after={today}&due_before={}",
            today + chrono::TimeDelta::days(7)
        ))
        .await
        .body;
    assert_eq!(due_soon["total"], 1);

    // Snoozing hides the overdue state through the snooze date.
    let id = late["id"].as_i64().unwrap();
    let snoozed =
        s.pm.post(
            &format!("/api/v1/action-items/{id}/snooze"),
            json!({"until": today + chrono::TimeDelta::days(2), "reason": "waiting for the CMO"}),
        )
        .await
        .expect(200)
        .body;
    assert_eq!(snoozed["overdue"], false);
    assert_eq!(
        s.pm.get("/api/v1/action-items?overdue=true").await.body["total"],
        0
    );
    app.clock.advance(chrono::TimeDelta::days(3));
    assert_eq!(
        s.pm.get("/api/v1/action-items?overdue=true").await.body["total"],
        1
    );

    // Reassign (manager only), transitions with their rules.
    let reassigned =
        s.pm.patch(
            &format!("/api/v1/action-items/{id}"),
            json!({"version": 2, "owner_user_id": s.cmo_admin_id, "reason": "CMO owns it"}),
        )
        .await
        .expect(200)
        .body;
    assert_eq!(reassigned["owner_user_id"], s.cmo_admin_id);
    let path = format!("/api/v1/action-items/{id}/transitions");
    s.cmo_admin
        .post(&path, json!({"event": "start"}))
        .await
        .expect(200);
    s.cmo_admin
        .post(&path, json!({"event": "start"}))
        .await
        .expect_problem(409, "illegal_transition");
    s.cmo_admin
        .post(&path, json!({"event": "cancel"}))
        .await
        .expect_problem(422, "validation_failed");
    let done = s
        .cmo_admin
        .post(&path, json!({"event": "complete"}))
        .await
        .expect(200)
        .body;
    assert_eq!(done["status"], "done");
    assert_eq!(crate::instant(&done["completed_at"]), app.now());
    s.pm.post(
        &format!("/api/v1/action-items/{id}/snooze"),
        json!({"until": today + chrono::TimeDelta::days(9), "reason": "x"}),
    )
    .await
    .expect_problem(409, "not_open");
    let reopened =
        s.pm.post(
            &path,
            json!({"event": "reopen", "reason": "protocol was the old revision"}),
        )
        .await
        .expect(200)
        .body;
    assert_eq!(reopened["status"], "open");
    // Other organizations see none of it.
    let (_, _, other) =
        crate::partner_org(app, "Other Sponsor", "sponsor", "boss@other.test").await;
    app.client(&other)
        .get(&format!("/api/v1/action-items/{id}"))
        .await
        .expect_problem(404, "not_found");
    assert_eq!(
        app.client(&other).get("/api/v1/action-items").await.body["total"],
        0
    );
}
on_both_databases!(action_items_are_listed_filtered_and_snoozed);

async fn owners_report_progress_but_do_not_reshape_the_plan(app: &TestApp) {
    let s = program_setup(app).await;
    let (owner_id, owner) = user_with_token(app, "owner@acme.test", "contributor", None).await;
    let owner = app.client(&owner);
    let today = app.today_in("Europe/Zurich").to_string();
    let ms = format!("/api/v1/programs/{}/milestones", s.program_id);
    let first =
        s.pm.post(
            &ms,
            json!({"name": "A", "phase": "P", "baseline_start": today, "baseline_end": today}),
        )
        .await
        .expect(201)
        .body;
    let second =
        s.pm.post(
            &ms,
            json!({"name": "B", "phase": "P", "owner_user_id": owner_id, "baseline_start": today,
                   "baseline_end": today, "depends_on": [first["id"]]}),
        )
        .await
        .expect(201)
        .body;
    let path = format!("/api/v1/milestones/{}", second["id"]);
    // The owner may move the forecast, not drop the dependency to start early.
    owner
        .patch(&path, json!({"version": 1, "depends_on": []}))
        .await
        .expect_problem(403, "forbidden");
    s.cmo_admin
        .patch(&path, json!({"version": 1, "depends_on": []}))
        .await
        .expect_problem(403, "forbidden");
    owner
        .patch(
            &path,
            json!({"version": 1, "forecast_end": (app.today_in("Europe/Zurich") + chrono::TimeDelta::days(30)).to_string(), "reason": "slipping"}),
        )
        .await
        .expect(200);
    owner
        .patch(&path, json!({"version": 2, "forecast_end": "10000-01-01"}))
        .await
        .expect_problem(422, "validation_failed");

    // Only the sponsor decides what a gate checks; a decided round is frozen.
    let item =
        s.pm.post(
            &format!("/api/v1/milestones/{}/gate-items", first["id"]),
            json!({"check_type": "sops", "title": "SOPs"}),
        )
        .await
        .expect(201)
        .body;
    let item_path = format!("/api/v1/gate-items/{}", item["id"]);
    s.cmo_admin
        .patch(&item_path, json!({"version": 1, "mandatory": false}))
        .await
        .expect_problem(403, "forbidden");
    s.cmo_admin
        .patch(&item_path, json!({"version": 1, "result": "pass"}))
        .await
        .expect(200);
    let first_id = first["id"].as_i64().unwrap();
    transition(&s.pm, first_id, "start").await.expect(200);
    transition(&s.pm, first_id, "submit_for_gate")
        .await
        .expect(200);
    let (_, qa) = user_with_token(app, "qa@acme.test", "quality", Some(QA_PASSWORD)).await;
    decide(&app.client(&qa), first_id, "go").await.expect(201);
    s.pm.patch(&item_path, json!({"version": 2, "result": "fail"}))
        .await
        .expect_problem(409, "gate_decided");
    s.pm.post(
        &format!("/api/v1/milestones/{first_id}/gate-items"),
        json!({"check_type": "other", "title": "late"}),
    )
    .await
    .expect_problem(409, "gate_decided");

    // Action items: owners cannot move their own due dates or fake a gate-item source.
    let actions = format!("/api/v1/programs/{}/action-items", s.program_id);
    s.pm.post(&actions, json!({"title": "x", "owner_user_id": owner_id, "due_date": today, "source": "gate_item", "source_id": 1}))
        .await
        .expect_problem(422, "validation_failed");
    let a =
        s.pm.post(
            &actions,
            json!({"title": "Send protocol", "owner_user_id": owner_id, "due_date": today}),
        )
        .await
        .expect(201)
        .body;
    let a_path = format!("/api/v1/action-items/{}", a["id"]);
    owner
        .patch(
            &a_path,
            json!({"version": 1, "due_date": "2099-01-01", "reason": "busy"}),
        )
        .await
        .expect_problem(403, "forbidden");
    s.pm.patch(&a_path, json!({"version": 1, "due_date": "2099-01-01"}))
        .await
        .expect_problem(422, "validation_failed");
    s.pm.patch(
        &a_path,
        json!({"version": 1, "due_date": "2099-01-01", "reason": "re-planned"}),
    )
    .await
    .expect(200);
    owner
        .post(
            &format!("{a_path}/transitions"),
            json!({"event": "start", "version": 1}),
        )
        .await
        .expect_problem(409, "version_conflict");
}
on_both_databases!(owners_report_progress_but_do_not_reshape_the_plan);
