//! The one transition engine seen from outside: the same version rule for every record
//! with a state machine, and domain events for every decision.

use awc::http::Method;
use e2e::{TestApp, on_both_databases};
use serde_json::{Value, json};

use crate::programs::program_setup;
use crate::{partner_org, user_with_token};

const QA_PASSWORD: &str = "quality signs this one";

/// Posts `body` to `path` with `If-Match: "version"`.
async fn with_if_match(client: &e2e::Client, path: &str, version: i64, body: Value) -> e2e::Reply {
    client
        .send(
            client
                .request(Method::POST, path)
                .insert_header(("If-Match", format!("\"{version}\""))),
            Some(&body),
        )
        .await
}

/// A stale `If-Match` is refused with the current version and changes nothing; the
/// current one is accepted.
async fn stale_then_current(client: &e2e::Client, record: &str, step: &str, body: Value) {
    // A CAPA reads with its actions, as `{"capa": …, "actions": …}`; a CMO's qualification
    // is versioned on the caller's relationship (`qualification_version`), apart from the
    // CMO's facts (`version`).
    let version_of = |v: &Value| {
        v["qualification_version"]
            .as_i64()
            .or(v["version"].as_i64())
            .or(v["capa"]["version"].as_i64())
    };
    let before = client.get(record).await.expect(200).body;
    let version = version_of(&before).unwrap();
    let refused = with_if_match(client, step, version + 1, body.clone())
        .await
        .expect_problem(409, "version_conflict");
    assert_eq!(refused.body["current_version"], version, "{step}");
    let unchanged = client.get(record).await.expect(200).body;
    assert_eq!(
        version_of(&unchanged),
        Some(version),
        "{step}: nothing changed"
    );
    let done = with_if_match(client, step, version, body)
        .await
        .expect(200)
        .body;
    assert_eq!(version_of(&done), Some(version + 1), "{step}");
}

/// A change request with its impact assessed, ready to submit.
async fn assessed_change(pm: &e2e::Client, program_id: i64, classification: &str) -> Value {
    let ch = pm
        .post(
            &format!("/api/v1/programs/{program_id}/change-requests"),
            json!({"title": "New label stock", "description": "d", "justification": "j",
                   "classification": classification}),
        )
        .await
        .expect(201)
        .body;
    pm.patch(
        &format!("/api/v1/change-requests/{}", ch["id"]),
        json!({"version": 1, "impact_product_quality": "none", "impact_validation": "none",
               "impact_regulatory": "none", "reason": "assessed"}),
    )
    .await
    .expect(200)
    .body
}

async fn every_state_machine_step_honours_if_match(app: &TestApp) {
    // REQ: API-VERSION-CAS
    let s = program_setup(app).await;
    let (_, qa) = user_with_token(app, "qa@acme.test", "quality", Some(QA_PASSWORD)).await;
    let qa = app.client(&qa);
    // Deviation.
    let d =
        s.pm.post(
            &format!("/api/v1/programs/{}/deviations", s.program_id),
            json!({"title": "Label mix-up", "description": "d", "detected_at": app.now(),
                   "criticality": "minor", "category": "documentation"}),
        )
        .await
        .expect(201)
        .body;
    let path = format!("/api/v1/deviations/{}", d["id"]);
    stale_then_current(
        &qa,
        &path,
        &format!("{path}/transitions"),
        json!({"event": "triage"}),
    )
    .await;
    // CAPA.
    let c = qa
        .post(
            &format!("/api/v1/programs/{}/capas", s.program_id),
            json!({"title": "Relabel", "description": "d", "source": "deviation", "deviation_ids": [d["id"]]}),
        )
        .await
        .expect(201)
        .body;
    let path = format!("/api/v1/capas/{}", c["id"]);
    stale_then_current(
        &qa,
        &path,
        &format!("{path}/transitions"),
        json!({"event": "cancel", "reason": "raised twice"}),
    )
    .await;
    // Change request.
    let ch = assessed_change(&s.pm, s.program_id, "minor").await;
    let path = format!("/api/v1/change-requests/{}", ch["id"]);
    stale_then_current(
        &s.pm,
        &path,
        &format!("{path}/transitions"),
        json!({"event": "submit"}),
    )
    .await;
    // CMO qualification.
    let (cmo, _, _) = partner_org(app, "Gamma Bio", "cmo", "pm@gamma.test").await;
    let path = format!("/api/v1/cmos/{cmo}");
    stale_then_current(
        &app.admin(),
        &path,
        &format!("{path}/qualification"),
        json!({"event": "start_evaluation"}),
    )
    .await;
    // Selection decision (signed: the version is checked after the password).
    let (_, signer) =
        user_with_token(app, "pm2@acme.test", "program_manager", Some(QA_PASSWORD)).await;
    let signer = app.client(&signer);
    let e = signer
        .post(
            "/api/v1/evaluations",
            json!({"title": "Labelling CMO", "candidates": [cmo]}),
        )
        .await
        .expect(201)
        .body;
    let path = format!("/api/v1/evaluations/{}", e["id"]);
    stale_then_current(
        &signer,
        &path,
        &format!("{path}/decision"),
        json!({"cmo_org_id": cmo, "reason": "only candidate", "password": QA_PASSWORD}),
    )
    .await;
}
on_both_databases!(every_state_machine_step_honours_if_match);

/// Event types in the feed of `client`.
async fn feed_types(client: &e2e::Client) -> Vec<String> {
    client
        .get("/api/v1/events?limit=500")
        .await
        .expect(200)
        .body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["type"].as_str().unwrap().to_string())
        .collect()
}

async fn change_control_qualification_and_selection_are_domain_events(app: &TestApp) {
    let s = program_setup(app).await;
    let (_, qa) = user_with_token(app, "qa@acme.test", "quality", Some(QA_PASSWORD)).await;
    let qa = app.client(&qa);
    // A sponsor webhook for the new types is accepted and gets a delivery queued.
    let hook = app
        .admin()
        .post(
            "/api/v1/webhooks",
            json!({"url": "http://127.0.0.1:9/hook", "event_types":
                ["change_request.transitioned", "cmo.qualification_changed", "evaluation.decided"]}),
        )
        .await
        .expect(201)
        .body;
    let ch = assessed_change(&s.pm, s.program_id, "major").await;
    let steps = format!("/api/v1/change-requests/{}/transitions", ch["id"]);
    s.pm.post(&steps, json!({"event": "submit"}))
        .await
        .expect(200);
    qa.post(
        &steps,
        json!({"event": "approve", "reason": "supplier qualified", "password": QA_PASSWORD}),
    )
    .await
    .expect(200);
    let (cmo, _, cmo_admin) = partner_org(app, "Gamma Bio", "cmo", "pm@gamma.test").await;
    app.qualify_cmo(cmo).await;
    let (_, signer) =
        user_with_token(app, "pm2@acme.test", "program_manager", Some(QA_PASSWORD)).await;
    let signer = app.client(&signer);
    let e = signer
        .post(
            "/api/v1/evaluations",
            json!({"title": "Labelling CMO", "candidates": [cmo]}),
        )
        .await
        .expect(201)
        .body;
    signer
        .post(
            &format!("/api/v1/evaluations/{}/decision", e["id"]),
            json!({"cmo_org_id": cmo, "reason": "only candidate", "password": QA_PASSWORD}),
        )
        .await
        .expect(200);

    let page = s.pm.get("/api/v1/events?types=change_request.transitioned,cmo.qualification_changed,evaluation.decided&limit=500")
        .await
        .expect(200)
        .body;
    let items = page["items"].as_array().unwrap();
    let change: Vec<&Value> = items
        .iter()
        .filter(|i| i["type"] == "change_request.transitioned")
        .collect();
    assert_eq!(change.len(), 2, "{page}");
    assert_eq!(change[1]["payload"]["event"], "approve");
    assert_eq!(change[1]["payload"]["to"], "approved");
    assert_eq!(change[1]["resource_type"], "change_request");
    assert_eq!(change[1]["program_id"], s.program_id);
    let decided = items
        .iter()
        .find(|i| i["type"] == "evaluation.decided")
        .unwrap_or_else(|| panic!("{page}"));
    assert_eq!(decided["payload"]["cmo_org_id"], cmo);
    assert_eq!(decided["payload"]["reason"], "only candidate");
    // Qualification: the set-up's CMO and this one, two steps each.
    let qualification: Vec<&Value> = items
        .iter()
        .filter(|i| i["type"] == "cmo.qualification_changed" && i["payload"]["cmo_org_id"] == cmo)
        .collect();
    assert_eq!(qualification.len(), 2);
    assert_eq!(qualification[1]["payload"]["to"], "qualified");

    // The program's CMO sees the change; no CMO sees the sponsor's decisions about CMOs.
    let cmo_types = feed_types(&s.cmo_admin).await;
    assert!(cmo_types.contains(&"change_request.transitioned".to_string()));
    assert!(!cmo_types.contains(&"evaluation.decided".to_string()));
    assert!(!cmo_types.contains(&"cmo.qualification_changed".to_string()));
    assert_eq!(
        feed_types(&app.client(&cmo_admin)).await,
        Vec::<String>::new()
    );

    // Each reached the sponsor's subscription.
    use sea_orm::{ColumnTrait, EntityTrait, PaginatorTrait, QueryFilter};
    let queued = entity::webhook::delivery::Entity::find()
        .filter(
            entity::webhook::delivery::Column::SubscriptionId
                .eq(hook["subscription"]["id"].as_i64().unwrap()),
        )
        .count(&app.db)
        .await
        .unwrap();
    // The set-up's qualification came before the subscription.
    assert_eq!(
        queued,
        items.len() as u64 - 2,
        "one delivery per later event"
    );
}
on_both_databases!(change_control_qualification_and_selection_are_domain_events);

async fn a_record_says_what_this_caller_can_do_now_and_why_not_the_rest(app: &TestApp) {
    // REQ: API-ALLOWED-FOR-CALLER
    let s = program_setup(app).await;
    let (_, qa_token) = user_with_token(app, "qa@acme.test", "quality", Some(QA_PASSWORD)).await;
    let qa = app.client(&qa_token);
    let (_, viewer_token) = user_with_token(app, "viewer@acme.test", "viewer", None).await;
    let viewer = app.client(&viewer_token);
    let d = qa
        .post(
            &format!("/api/v1/programs/{}/deviations", s.program_id),
            json!({"title": "Filter integrity failure", "description": "post-use test failed",
                   "detected_at": app.now(), "criticality": "major", "category": "equipment"}),
        )
        .await
        .expect(201)
        .body;
    let path = format!("/api/v1/deviations/{}", d["id"]);
    for event in ["triage", "start_investigation"] {
        qa.post(&format!("{path}/transitions"), json!({"event": event}))
            .await
            .expect(200);
    }
    // Quality may close, but not before the root cause is recorded: the guard says so.
    let seen = qa.get(&path).await.expect(200).body;
    assert_eq!(seen["allowed_events"], json!(["await_capa"]), "{seen}");
    assert_eq!(seen["blocked_events"][0]["event"], "close");
    assert!(
        seen["blocked_events"][0]["reason"]
            .as_str()
            .unwrap()
            .contains("root cause"),
        "{seen}"
    );
    // A program manager handles deviations but does not sign a closure.
    let pm_seen = s.pm.get(&path).await.expect(200).body;
    assert_eq!(pm_seen["allowed_events"], json!(["await_capa"]));
    assert_eq!(
        pm_seen["blocked_events"][0]["reason"],
        json!("closing a deviation is signed by a quality user"),
        "{pm_seen}"
    );
    // A viewer can do nothing, and every event says why.
    let viewer_seen = viewer.get(&path).await.expect(200).body;
    assert_eq!(viewer_seen["allowed_events"], json!([]));
    let reasons: Vec<&str> = viewer_seen["blocked_events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["reason"].as_str().unwrap())
        .collect();
    assert_eq!(reasons.len(), 2, "{viewer_seen}");
    assert!(
        reasons.iter().all(|r| r.contains("only quality")),
        "{reasons:?}"
    );
    // Lists say what the state allows, for everyone alike.
    let list = viewer
        .get(&format!("/api/v1/deviations?program_id={}", s.program_id))
        .await
        .expect(200)
        .body;
    assert_eq!(
        list["items"][0]["allowed_events"],
        json!(["await_capa", "close"])
    );
    assert!(list["items"][0].get("blocked_events").is_none());
}
on_both_databases!(a_record_says_what_this_caller_can_do_now_and_why_not_the_rest);
