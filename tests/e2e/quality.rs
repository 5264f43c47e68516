//! Deviations, production hold and release, through HTTP.

use e2e::{TestApp, on_both_databases};
use entity::escalation;
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};
use serde_json::{Value, json};

use crate::programs::program_setup;
use crate::user_with_token;

pub(crate) const QA_PASSWORD: &str = "quality assured passphrase";

pub(crate) fn report(title: &str, criticality: &str, detected_at: impl serde::Serialize) -> Value {
    json!({"title": title, "description": "seen on the floor", "detected_at": detected_at,
           "criticality": criticality, "category": "equipment", "batch_lot": "LOT-7", "process_step": "Harvest"})
}

pub(crate) async fn transition(client: &e2e::Client, id: i64, body: Value) -> e2e::Reply {
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
