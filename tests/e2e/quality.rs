//! Deviations, production hold and release, through HTTP.

use e2e::{TestApp, on_both_databases};
use entity::escalation;
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};
use serde_json::{Value, json};

use crate::programs::program_setup;
use crate::user_with_token;

const QA_PASSWORD: &str = "quality assured passphrase";

fn report(title: &str, criticality: &str, detected_at: impl serde::Serialize) -> Value {
    json!({"title": title, "description": "seen on the floor", "detected_at": detected_at,
           "criticality": criticality, "category": "equipment", "batch_lot": "LOT-7", "process_step": "Harvest"})
}

async fn transition(client: &e2e::Client, id: i64, body: Value) -> e2e::Reply {
    client
        .post(&format!("/api/v1/deviations/{id}/transitions"), body)
        .await
}

async fn escalations_of(app: &TestApp, deviation_id: i64) -> Vec<escalation::Model> {
    escalation::Entity::find()
        .filter(escalation::Column::SourceType.eq("deviation"))
        .filter(escalation::Column::SourceId.eq(deviation_id))
        .all(&app.db)
        .await
        .unwrap()
}

async fn a_critical_deviation_holds_production_until_quality_releases_it(app: &TestApp) {
    // REQ: QE-HOLD, QE-CLOSE-RULES, SEC-SIGN-BINDING
    let s = program_setup(app).await;
    let (qa_id, qa) = user_with_token(app, "qa@acme.test", "quality", Some(QA_PASSWORD)).await;
    let qa = app.client(&qa);
    let program_path = format!("/api/v1/programs/{}", s.program_id);
    let d = s
        .cmo_admin
        .post(
            &format!("{program_path}/deviations"),
            report("Bioburden excursion", "critical", app.now()),
        )
        .await
        .expect(201)
        .body;
    let id = d["id"].as_i64().unwrap();
    assert_eq!(d["status"], "reported");
    assert_eq!(d["reported_by_user_id"], s.cmo_admin_id);
    // Same transaction: production on hold, escalation open, both audited.
    let program = s.pm.get(&program_path).await.body;
    assert_eq!(program["production_status"], "on_hold");
    let escalations = escalations_of(app, id).await;
    assert_eq!(escalations.len(), 1);
    assert_eq!(escalations[0].status, escalation::EscalationStatus::Open);
    let holds = s
        .cmo_admin
        .get("/api/v1/audit-events?entity_type=program&action=hold_production")
        .await
        .body;
    assert_eq!(
        holds["total"], 1,
        "in the trail of the organization that reported it"
    );

    // Release is refused while the critical deviation is not yet investigated.
    let release = json!({"password": QA_PASSWORD, "reason": "contained"});
    qa.post(
        &format!("{program_path}/production-release"),
        release.clone(),
    )
    .await
    .expect_problem(409, "critical_deviation_not_investigated");
    // A program manager may not release; the CMO's quality neither.
    s.pm.post(
        &format!("{program_path}/production-release"),
        release.clone(),
    )
    .await
    .expect_problem(403, "forbidden");

    // Triage (ends the escalation), investigate.
    let triaged = transition(&qa, id, json!({"event": "triage"}))
        .await
        .expect(200)
        .body;
    assert_eq!(triaged["status"], "triaged");
    assert_eq!(crate::instant(&triaged["triaged_at"]), app.now());
    assert_eq!(
        escalations_of(app, id).await[0].status,
        escalation::EscalationStatus::Resolved
    );
    qa.post(
        &format!("{program_path}/production-release"),
        release.clone(),
    )
    .await
    .expect_problem(409, "critical_deviation_not_investigated");
    transition(&qa, id, json!({"event": "start_investigation"}))
        .await
        .expect(200);

    // Closing needs the root cause first, then a quality signature.
    let r = transition(&qa, id, json!({"event": "close", "password": QA_PASSWORD}))
        .await
        .expect_problem(409, "illegal_transition");
    assert!(r.body["detail"].as_str().unwrap().contains("root cause"));
    let path = format!("/api/v1/deviations/{id}");
    let current = qa.get(&path).await.body;
    qa.patch(
        &path,
        json!({"version": current["version"], "root_cause_method": "five_whys"}),
    )
    .await
    .expect_problem(422, "validation_failed");
    qa.patch(
        &path,
        json!({"version": current["version"], "root_cause_method": "five_whys", "root_cause_category": "equipment",
               "root_cause_narrative": "worn manway gasket", "reason": "investigation complete"}),
    )
    .await
    .expect(200);
    transition(&qa, id, json!({"event": "close"}))
        .await
        .expect_problem(422, "validation_failed");
    transition(
        &qa,
        id,
        json!({"event": "close", "password": "wrong password"}),
    )
    .await
    .expect_problem(401, "invalid_password");
    transition(
        &s.pm,
        id,
        json!({"event": "close", "password": QA_PASSWORD}),
    )
    .await
    .expect_problem(403, "forbidden");
    let closed = transition(&qa, id, json!({"event": "close", "password": QA_PASSWORD}))
        .await
        .expect(200)
        .body;
    assert_eq!(closed["status"], "closed");
    crate::assert_signature_binds(
        app,
        &closed["closure_signature_id"],
        "deviation_closure",
        &closed["id"],
        &crate::before_signature(&closed, "closure_signature_id"),
        qa_id,
        "approved",
    )
    .await;
    // Closed records are not edited.
    qa.patch(
        &path,
        json!({"version": closed["version"], "title": "x", "reason": "y"}),
    )
    .await
    .expect_problem(409, "deviation_closed");

    // Production comes back only with the signed release.
    assert_eq!(
        s.pm.get(&program_path).await.body["production_status"],
        "on_hold"
    );
    let released = qa
        .post(
            &format!("{program_path}/production-release"),
            release.clone(),
        )
        .await
        .expect(200)
        .body;
    assert_eq!(released["production_status"], "running");
    qa.post(&format!("{program_path}/production-release"), release)
        .await
        .expect_problem(409, "not_on_hold");
    let events: Vec<String> = qa
        .get(&format!(
            "/api/v1/audit-events?entity_type=deviation&entity_id={id}"
        ))
        .await
        .body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(
        events,
        [
            "triage",
            "start_investigation",
            "update",
            "sign_failed",
            "close"
        ],
        "QA's trail, with the failed signature attempt on the deviation it was for"
    );
    assert_eq!(
        app.admin().get("/api/v1/audit-events/verify").await.body["intact"],
        true
    );
}
on_both_databases!(a_critical_deviation_holds_production_until_quality_releases_it);

async fn the_quality_summary_counts_what_happened(app: &TestApp) {
    let s = program_setup(app).await;
    let (_, qa) = user_with_token(app, "qa@acme.test", "quality", Some(QA_PASSWORD)).await;
    let qa = app.client(&qa);
    let devs = format!("/api/v1/programs/{}/deviations", s.program_id);
    let earlier = app.now() - chrono::TimeDelta::days(2);
    let major =
        s.pm.post(&devs, report("Major", "major", earlier))
            .await
            .expect(201)
            .body;
    s.pm.post(&devs, report("Minor", "minor", app.now()))
        .await
        .expect(201);
    transition(
        &qa,
        major["id"].as_i64().unwrap(),
        json!({"event": "triage"}),
    )
    .await
    .expect(200);
    let summary =
        s.pm.get(&format!(
            "/api/v1/programs/{}/quality-summary",
            s.program_id
        ))
        .await
        .expect(200)
        .body;
    assert_eq!(summary["deviations_total"], 2);
    assert_eq!(
        summary["open_by_criticality"],
        json!({"critical": 0, "major": 1, "minor": 1})
    );
    assert_eq!(summary["by_status"]["triaged"], 1);
    assert_eq!(summary["by_status"]["reported"], 1);
    assert_eq!(summary["median_days_to_triage"], 2.0);
    assert!(summary["median_days_to_close"].is_null());
    assert_eq!(summary["capas_open"], 0);
}
on_both_databases!(the_quality_summary_counts_what_happened);

async fn a_minor_deviation_closes_after_a_short_term_fix(app: &TestApp) {
    let s = program_setup(app).await;
    let (_, qa) = user_with_token(app, "qa@acme.test", "quality", Some(QA_PASSWORD)).await;
    let qa = app.client(&qa);
    let d =
        s.pm.post(
            &format!("/api/v1/programs/{}/deviations", s.program_id),
            report("Label smudge", "minor", app.now()),
        )
        .await
        .expect(201)
        .body;
    let id = d["id"].as_i64().unwrap();
    assert_eq!(
        s.pm.get(&format!("/api/v1/programs/{}", s.program_id))
            .await
            .body["production_status"],
        "running"
    );
    assert!(
        escalations_of(app, id).await.is_empty(),
        "minor deviations do not page anyone"
    );
    transition(&qa, id, json!({"event": "triage"}))
        .await
        .expect(200);
    let r = transition(&qa, id, json!({"event": "close", "password": QA_PASSWORD}))
        .await
        .expect_problem(409, "illegal_transition");
    assert!(
        r.body["detail"]
            .as_str()
            .unwrap()
            .contains("short-term fix")
    );
    let path = format!("/api/v1/deviations/{id}");
    let current = qa.get(&path).await.body;
    qa.patch(&path, json!({"version": current["version"], "short_term_fix": "labels reprinted and checked", "reason": "fix applied"}))
        .await
        .expect(200);
    let closed = transition(&qa, id, json!({"event": "close", "password": QA_PASSWORD}))
        .await
        .expect(200)
        .body;
    assert_eq!(closed["status"], "closed");
}
on_both_databases!(a_minor_deviation_closes_after_a_short_term_fix);

async fn triage_can_raise_criticality_and_then_production_holds(app: &TestApp) {
    // REQ: QE-HOLD, QE-DEVIATION-MACHINE
    let s = program_setup(app).await;
    let (_, qa) = user_with_token(app, "qa@acme.test", "quality", Some(QA_PASSWORD)).await;
    let qa = app.client(&qa);
    let d =
        s.pm.post(
            &format!("/api/v1/programs/{}/deviations", s.program_id),
            report("Filter integrity", "minor", app.now()),
        )
        .await
        .expect(201)
        .body;
    let id = d["id"].as_i64().unwrap();
    transition(&qa, id, json!({"event": "triage", "criticality": "major"}))
        .await
        .expect_problem(422, "validation_failed");
    let raised = transition(
        &qa,
        id,
        json!({"event": "triage", "criticality": "major", "reason": "filter failed post-use test"}),
    )
    .await
    .expect(200)
    .body;
    assert_eq!(raised["criticality"], "major");
    assert_eq!(
        s.pm.get(&format!("/api/v1/programs/{}", s.program_id))
            .await
            .body["production_status"],
        "on_hold"
    );
    let triage = qa
        .get(&format!(
            "/api/v1/audit-events?entity_type=deviation&entity_id={id}&action=triage"
        ))
        .await
        .body;
    assert_eq!(triage["items"][0]["before"]["criticality"], "minor");
    assert_eq!(triage["items"][0]["after"]["criticality"], "major");
    assert_eq!(triage["items"][0]["reason"], "filter failed post-use test");
}
on_both_databases!(triage_can_raise_criticality_and_then_production_holds);

async fn deviation_rules_refuse_bad_requests(app: &TestApp) {
    // REQ: QE-DEVIATION-MACHINE
    let s = program_setup(app).await;
    let (_, qa) = user_with_token(app, "qa@acme.test", "quality", Some(QA_PASSWORD)).await;
    let qa = app.client(&qa);
    let devs = format!("/api/v1/programs/{}/deviations", s.program_id);
    let future = app.now() + chrono::TimeDelta::hours(2);
    let r =
        s.pm.post(&devs, report("Later", "minor", future))
            .await
            .expect_problem(422, "validation_failed");
    assert_eq!(r.body["errors"][0]["field"], "detected_at");
    let (_, viewer) = user_with_token(app, "viewer@acme.test", "viewer", None).await;
    app.client(&viewer)
        .post(&devs, report("x", "minor", app.now()))
        .await
        .expect_problem(403, "forbidden");
    let mut bad = report("x", "minor", app.now());
    bad["milestone_id"] = json!(999_999);
    s.pm.post(&devs, bad)
        .await
        .expect_problem(422, "validation_failed");

    let d =
        s.pm.post(&devs, report("Gowning breach", "minor", app.now()))
            .await
            .expect(201)
            .body;
    let id = d["id"].as_i64().unwrap();
    let r = transition(&qa, id, json!({"event": "start_investigation"}))
        .await
        .expect_problem(409, "illegal_transition");
    assert_eq!(r.body["current_state"], "reported");
    assert_eq!(r.body["allowed_events"], json!(["triage", "cancel"]));
    transition(
        &qa,
        id,
        json!({"event": "start_investigation", "criticality": "major"}),
    )
    .await
    .expect_problem(422, "validation_failed");
    transition(&qa, id, json!({"event": "cancel"}))
        .await
        .expect_problem(422, "validation_failed");
    transition(&qa, id, json!({"event": "triage"}))
        .await
        .expect(200);
    transition(&qa, id, json!({"event": "start_investigation"}))
        .await
        .expect(200);
    // Not once the investigation began.
    transition(&qa, id, json!({"event": "cancel", "reason": "duplicate"}))
        .await
        .expect_problem(409, "illegal_transition");
    // pending_capa waits for its CAPA.
    transition(&qa, id, json!({"event": "await_capa"}))
        .await
        .expect(200);
    transition(&qa, id, json!({"event": "close", "password": QA_PASSWORD}))
        .await
        .expect_problem(409, "illegal_transition");

    // Lists filter; other organizations see nothing.
    let open = qa
        .get(&format!(
            "/api/v1/deviations?program_id={}&open=true&criticality=minor",
            s.program_id
        ))
        .await
        .expect(200)
        .body;
    assert_eq!(open["total"], 1);
    assert_eq!(
        qa.get("/api/v1/deviations?status=pending_capa").await.body["total"],
        1
    );
    assert_eq!(
        qa.get("/api/v1/deviations?min_age_days=1").await.body["total"],
        0
    );
    let (_, _, other) =
        crate::partner_org(app, "Other Sponsor", "sponsor", "boss@other.test").await;
    let other = app.client(&other);
    other
        .get(&format!("/api/v1/deviations/{id}"))
        .await
        .expect_problem(404, "not_found");
    transition(&other, id, json!({"event": "triage"}))
        .await
        .expect_problem(404, "not_found");
    assert_eq!(other.get("/api/v1/deviations").await.body["total"], 0);
}
on_both_databases!(deviation_rules_refuse_bad_requests);

async fn of_a_hundred_identical_transitions_exactly_one_succeeds(app: &TestApp) {
    let s = program_setup(app).await;
    let (_, qa) = user_with_token(app, "qa@acme.test", "quality", Some(QA_PASSWORD)).await;
    let qa = app.client(&qa);
    let d =
        s.pm.post(
            &format!("/api/v1/programs/{}/deviations", s.program_id),
            report("Raced", "minor", app.now()),
        )
        .await
        .expect(201)
        .body;
    let id = d["id"].as_i64().unwrap();
    let attempts: Vec<_> = (0..100)
        .map(|_| transition(&qa, id, json!({"event": "triage"})))
        .collect();
    let replies = futures_util::future::join_all(attempts).await;
    let ok = replies.iter().filter(|r| r.status == 200).count();
    let conflicts = replies.iter().filter(|r| r.status == 409).count();
    assert_eq!((ok, conflicts), (1, 99));
    let triages = qa
        .get(&format!(
            "/api/v1/audit-events?entity_type=deviation&entity_id={id}&action=triage"
        ))
        .await
        .body;
    assert_eq!(triages["total"], 1);
}
on_both_databases!(of_a_hundred_identical_transitions_exactly_one_succeeds);

async fn a_capa_closes_effective_and_takes_its_deviation_with_it(app: &TestApp) {
    // REQ: QE-CAPA-MACHINE, QE-CAPA-EXTENSION, SEC-SIGN-BINDING
    let s = program_setup(app).await;
    let (qa_id, qa) = user_with_token(app, "qa@acme.test", "quality", Some(QA_PASSWORD)).await;
    let qa = app.client(&qa);
    let d =
        s.pm.post(
            &format!("/api/v1/programs/{}/deviations", s.program_id),
            report("Gasket failure", "major", app.now()),
        )
        .await
        .expect(201)
        .body;
    let dev_id = d["id"].as_i64().unwrap();
    transition(&qa, dev_id, json!({"event": "triage"}))
        .await
        .expect(200);
    transition(&qa, dev_id, json!({"event": "start_investigation"}))
        .await
        .expect(200);
    let dpath = format!("/api/v1/deviations/{dev_id}");
    let current = qa.get(&dpath).await.body;
    qa.patch(
        &dpath,
        json!({"version": current["version"], "root_cause_method": "fault_tree", "root_cause_category": "equipment",
               "root_cause_narrative": "gasket past service life", "reason": "investigation complete"}),
    )
    .await
    .expect(200);
    transition(&qa, dev_id, json!({"event": "await_capa"}))
        .await
        .expect(200);

    let capas = format!("/api/v1/programs/{}/capas", s.program_id);
    qa.post(
        &capas,
        json!({"title": "x", "description": "y", "source": "deviation"}),
    )
    .await
    .expect_problem(422, "validation_failed");
    let capa = qa
        .post(&capas, json!({"title": "Replace gaskets", "description": "Corrective and preventive", "source": "deviation", "deviation_ids": [dev_id]}))
        .await
        .expect(201)
        .body;
    let id = capa["id"].as_i64().unwrap();
    assert_eq!(capa["deviation_ids"], json!([dev_id]));
    let cpath = format!("/api/v1/capas/{id}");
    let step = |body: Value| {
        let qa = qa.clone();
        let path = format!("{cpath}/transitions");
        async move { qa.post(&path, body).await }
    };
    // A plan needs actions; approval is signed by quality.
    step(json!({"event": "approve_plan", "password": QA_PASSWORD}))
        .await
        .expect_problem(409, "illegal_transition");
    let today = app.today_in("Europe/Zurich");
    let action = qa
        .post(
            &format!("{cpath}/actions"),
            json!({"kind": "corrective", "title": "Replace gaskets", "owner_user_id": s.pm_id, "due_date": today + chrono::TimeDelta::days(10)}),
        )
        .await
        .expect(201)
        .body;
    let action_id = action["action"]["id"].as_i64().unwrap();
    assert_eq!(action["action"]["source"], "capa");
    step(json!({"event": "approve_plan"}))
        .await
        .expect_problem(422, "validation_failed");
    s.pm.post(
        &format!("{cpath}/transitions"),
        json!({"event": "approve_plan", "password": QA_PASSWORD}),
    )
    .await
    .expect_problem(403, "forbidden");
    let approved = step(json!({"event": "approve_plan", "password": QA_PASSWORD}))
        .await
        .expect(200)
        .body;
    crate::assert_signature_binds(
        app,
        &approved["plan_signature_id"],
        "capa",
        &approved["id"],
        &crate::before_signature(&approved, "plan_signature_id"),
        qa_id,
        "approved",
    )
    .await;
    // The signed plan is the plan: no actions slip in afterwards.
    qa.post(
        &format!("{cpath}/actions"),
        json!({"kind": "preventive", "title": "late", "owner_user_id": s.pm_id, "due_date": today}),
    )
    .await
    .expect_problem(409, "plan_approved");
    step(json!({"event": "start_implementation"}))
        .await
        .expect(200);

    // The action's due date moves only through an approved extension request.
    let a_path = format!("/api/v1/action-items/{action_id}");
    s.pm.patch(
        &a_path,
        json!({"version": 1, "due_date": today + chrono::TimeDelta::days(20), "reason": "late"}),
    )
    .await
    .expect_problem(409, "use_extension_request");
    let ext = s
        .pm
        .post(&format!("{a_path}/extension-requests"), json!({"requested_due": today + chrono::TimeDelta::days(20), "reason": "supplier delay"}))
        .await
        .expect(201)
        .body;
    let pending = qa
        .get("/api/v1/extension-requests?status=pending")
        .await
        .expect(200)
        .body;
    assert_eq!(pending["total"], 1);
    assert_eq!(pending["items"][0]["id"], ext["id"]);
    let (_, _, stranger) =
        crate::partner_org(app, "Stranger Sponsor", "sponsor", "x@stranger.test").await;
    assert_eq!(
        app.client(&stranger)
            .get("/api/v1/extension-requests")
            .await
            .body["total"],
        0
    );
    s.pm.post(
        &format!("/api/v1/extension-requests/{}/decision", ext["id"]),
        json!({"approve": true, "reason": "ok"}),
    )
    .await
    .expect_problem(403, "forbidden");
    let decided = qa
        .post(
            &format!("/api/v1/extension-requests/{}/decision", ext["id"]),
            json!({"approve": true, "reason": "delay documented"}),
        )
        .await
        .expect(200)
        .body;
    assert_eq!(
        (
            decided["status"].as_str(),
            decided["decided_by_user_id"].as_i64()
        ),
        (Some("approved"), Some(qa_id))
    );
    let moved = s.pm.get(&a_path).await.body;
    assert_eq!(
        moved["due_date"],
        (today + chrono::TimeDelta::days(20)).to_string()
    );

    // The check waits for the actions, needs a due date; ineffective goes back.
    let due = today + chrono::TimeDelta::days(60);
    step(json!({"event": "request_effectiveness_check", "effectiveness_due": due}))
        .await
        .expect_problem(409, "illegal_transition");
    s.pm.post(
        &format!("{a_path}/transitions"),
        json!({"event": "complete"}),
    )
    .await
    .expect(200);
    step(json!({"event": "request_effectiveness_check"}))
        .await
        .expect_problem(422, "validation_failed");
    step(json!({"event": "request_effectiveness_check", "effectiveness_due": due}))
        .await
        .expect(200);
    step(json!({"event": "record_effectiveness", "outcome": "ineffective"}))
        .await
        .expect_problem(422, "validation_failed");
    let back = step(json!({"event": "record_effectiveness", "outcome": "ineffective", "reason": "recurred on batch 9"})).await.expect(200).body;
    assert_eq!(back["status"], "implementing");
    step(json!({"event": "request_effectiveness_check", "effectiveness_due": due}))
        .await
        .expect(200);
    let later = due + chrono::TimeDelta::days(30);
    let inconclusive = step(json!({"event": "record_effectiveness", "outcome": "inconclusive", "effectiveness_due": later}))
        .await
        .expect(200)
        .body;
    assert_eq!(inconclusive["effectiveness_due"], later.to_string());
    step(json!({"event": "close", "password": QA_PASSWORD}))
        .await
        .expect_problem(409, "illegal_transition");
    step(json!({"event": "record_effectiveness", "outcome": "effective"}))
        .await
        .expect(200);
    let closed = step(json!({"event": "close", "password": QA_PASSWORD}))
        .await
        .expect(200)
        .body;
    assert_eq!(closed["status"], "closed");
    crate::assert_signature_binds(
        app,
        &closed["closure_signature_id"],
        "capa",
        &closed["id"],
        &crate::before_signature(&closed, "closure_signature_id"),
        qa_id,
        "approved",
    )
    .await;

    // Its deviation closed with it, in the same transaction, under a signature of its own.
    let d = qa.get(&dpath).await.body;
    assert_eq!(d["status"], "closed");
    let closure = qa
        .get(&format!(
            "/api/v1/signatures?record_type=deviation_closure&record_id={dev_id}"
        ))
        .await
        .body;
    assert_eq!(closure["total"], 1);
    assert_eq!(closure["items"][0]["id"], d["closure_signature_id"]);
    // Triage ended the escalation the major deviation opened; that is audited too.
    let resolved =
        s.pm.get("/api/v1/audit-events?entity_type=escalation")
            .await
            .body;
    let actions: Vec<&str> = resolved["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    assert_eq!(
        actions,
        ["open", "resolve"],
        "opened when reported, resolved at triage"
    );
    let qa_side = qa
        .get("/api/v1/audit-events?entity_type=escalation&action=resolve")
        .await
        .body;
    assert_eq!(qa_side["total"], 1);
    let detail = qa.get(&cpath).await.expect(200).body;
    assert_eq!(detail["actions"][0]["kind"], "corrective");
    assert_eq!(qa.get("/api/v1/capas?status=closed").await.body["total"], 1);
    // The major deviation held production since it was reported; quality releases it.
    let program_path = format!("/api/v1/programs/{}", s.program_id);
    assert_eq!(
        s.pm.get(&program_path).await.body["production_status"],
        "on_hold"
    );
    let released = qa
        .post(
            &format!("{program_path}/production-release"),
            json!({"password": QA_PASSWORD, "reason": "CAPA effective"}),
        )
        .await
        .expect(200)
        .body;
    assert_eq!(released["production_status"], "running");
    let (_, _, other) =
        crate::partner_org(app, "Other Sponsor", "sponsor", "boss@other.test").await;
    app.client(&other)
        .get(&cpath)
        .await
        .expect_problem(404, "not_found");
}
on_both_databases!(a_capa_closes_effective_and_takes_its_deviation_with_it);

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
        json!({"event": "complete"}),
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
