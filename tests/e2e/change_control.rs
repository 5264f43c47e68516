//! Change control end to end: impact assessment, the signed decision, implementation
//! tasks, and closure racing a new task.

use e2e::{TestApp, on_both_databases};
use serde_json::{Value, json};

use crate::programs::program_setup;
use crate::quality::QA_PASSWORD;
use crate::user_with_token;

async fn a_major_change_needs_quality_approval_and_finished_tasks(app: &TestApp) {
    // REQ: QE-CHANGE-MACHINE, SEC-SIGN-BINDING
    let s = program_setup(app).await;
    let (qa_id, qa) = user_with_token(app, "qa@acme.test", "quality", Some(QA_PASSWORD)).await;
    let qa = app.client(&qa);
    let (_, pm_signer) =
        user_with_token(app, "pm2@acme.test", "program_manager", Some(QA_PASSWORD)).await;
    let pm_signer = app.client(&pm_signer);
    let change = s
        .pm
        .post(
            &format!("/api/v1/programs/{}/change-requests", s.program_id),
            json!({"title": "Switch depth filter supplier", "description": "Supplier B", "justification": "A discontinues", "classification": "major"}),
        )
        .await
        .expect(201)
        .body;
    let id = change["id"].as_i64().unwrap();
    let path = format!("/api/v1/change-requests/{id}");
    let step = |client: e2e::Client, body: Value| {
        let path = format!("{path}/transitions");
        async move { client.post(&path, body).await }
    };
    // Impact first.
    let r = step(s.pm.clone(), json!({"event": "submit"}))
        .await
        .expect_problem(409, "illegal_transition");
    assert!(r.body["detail"].as_str().unwrap().contains("impact"));
    s.pm.patch(
        &path,
        json!({"version": 1, "impact_product_quality": "extractables study", "impact_validation": "repeat filter validation",
               "impact_regulatory": "annual report", "reason": "change board assessment"}),
    )
    .await
    .expect(200);
    step(s.pm.clone(), json!({"event": "submit"}))
        .await
        .expect(200);
    // Who must approve depends on the classification: it is fixed once submitted.
    s.pm.patch(
        &path,
        json!({"version": 3, "classification": "minor", "reason": "easier"}),
    )
    .await
    .expect_problem(409, "classification_fixed");
    // A major change: a program manager's signature is not enough.
    step(
        pm_signer.clone(),
        json!({"event": "approve", "password": QA_PASSWORD}),
    )
    .await
    .expect_problem(403, "forbidden");
    step(qa.clone(), json!({"event": "approve"}))
        .await
        .expect_problem(422, "validation_failed");
    let approved = step(
        qa.clone(),
        json!({"event": "approve", "password": QA_PASSWORD, "reason": "impact acceptable"}),
    )
    .await
    .expect(200)
    .body;
    crate::assert_signature_binds(
        app,
        &approved["decision_signature_id"],
        "change_request",
        &approved["id"],
        &crate::before_signature(&approved, "decision_signature_id"),
        qa_id,
        "approved",
    )
    .await;
    let task = s
        .pm
        .post(&format!("{path}/tasks"), json!({"title": "Update filtration SOP", "owner_user_id": s.pm_id, "due_date": app.today_in("Europe/Zurich")}))
        .await
        .expect(201)
        .body;
    assert_eq!(task["source"], "change");
    step(s.pm.clone(), json!({"event": "start_implementation"}))
        .await
        .expect(200);
    step(s.pm.clone(), json!({"event": "close"}))
        .await
        .expect_problem(409, "illegal_transition");
    s.pm.post(
        &format!("/api/v1/action-items/{}/transitions", task["id"]),
        json!({"event": "complete", "evidence": "Supplier B filter qualified, report QR-88"}),
    )
    .await
    .expect(200);
    let closed = step(s.pm.clone(), json!({"event": "close"}))
        .await
        .expect(200)
        .body;
    assert_eq!(closed["status"], "closed");
    s.pm.patch(
        &path,
        json!({"version": closed["version"], "title": "late edit", "reason": "x"}),
    )
    .await
    .expect_problem(409, "change_decided");
    let signed = qa
        .get("/api/v1/signatures?record_type=change_request")
        .await
        .body;
    assert_eq!(signed["total"], 1);
}
on_both_databases!(a_major_change_needs_quality_approval_and_finished_tasks);

/// A task added while the change is being closed: never a closed change with an open
/// task (the two take turns on the change's row). Repeated, with both requests released
/// together; meaningful on PostgreSQL, where they really run at once.
async fn closing_a_change_and_adding_a_task_at_once_never_leave_an_open_task(app: &TestApp) {
    // REQ: QE-CHANGE-MACHINE
    let s = program_setup(app).await;
    let (_, qa) = user_with_token(app, "qa@acme.test", "quality", Some(QA_PASSWORD)).await;
    let qa = app.client(&qa);
    for round in 0..8 {
        let id = s
            .pm
            .post(
                &format!("/api/v1/programs/{}/change-requests", s.program_id),
                json!({"title": format!("Change {round}"), "description": "d", "justification": "j", "classification": "minor"}),
            )
            .await
            .expect(201)
            .body["id"]
            .as_i64()
            .unwrap();
        s.pm.patch(
            &format!("/api/v1/change-requests/{id}"),
            json!({"version": 1, "impact_product_quality": "none", "impact_validation": "none",
                   "impact_regulatory": "none", "reason": "change board assessment"}),
        )
        .await
        .expect(200);
        let steps = format!("/api/v1/change-requests/{id}/transitions");
        s.pm.post(&steps, json!({"event": "submit"}))
            .await
            .expect(200);
        qa.post(&steps, json!({"event": "approve", "password": QA_PASSWORD}))
            .await
            .expect(200);
        s.pm.post(&steps, json!({"event": "start_implementation"}))
            .await
            .expect(200);
        let barrier = std::sync::Arc::new(tokio::sync::Barrier::new(2));
        let (close, task) = tokio::join!(
            {
                let (pm, steps, b) = (s.pm.clone(), steps.clone(), barrier.clone());
                async move {
                    b.wait().await;
                    pm.post(&steps, json!({"event": "close"})).await
                }
            },
            {
                let (pm, b) = (s.pm.clone(), barrier.clone());
                let body = json!({"title": "Late task", "owner_user_id": s.pm_id, "due_date": app.today_in("Europe/Zurich")});
                let path = format!("/api/v1/change-requests/{id}/tasks");
                async move {
                    b.wait().await;
                    pm.post(&path, body).await
                }
            }
        );
        let (close, task) = (close.status.as_u16(), task.status.as_u16());
        assert!(
            matches!((close, task), (200, 409) | (409, 201)),
            "round {round}: close {close}, task {task}"
        );
        let detail =
            s.pm.get(&format!("/api/v1/change-requests/{id}"))
                .await
                .expect(200)
                .body;
        let open =
            s.pm.get(&format!(
                "/api/v1/action-items?program_id={}&source=change&status=open&limit=200",
                s.program_id
            ))
            .await
            .expect(200)
            .body;
        let open_here = open["items"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|i| i["source_id"] == id)
            .count();
        assert!(
            detail["status"] != "closed" || open_here == 0,
            "round {round}: closed with {open_here} open task(s)"
        );
    }
}
on_both_databases!(closing_a_change_and_adding_a_task_at_once_never_leave_an_open_task);
