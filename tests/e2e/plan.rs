//! A program from template to its last gate, through HTTP.

use awc::http::Method;
use e2e::{TestApp, on_both_databases};
use serde_json::{Value, json};

use crate::programs::program_setup;
use crate::user_with_token;

pub(crate) const QA_PASSWORD: &str = "quality assured passphrase";

async fn pass_every_item(client: &e2e::Client, milestone_id: i64) {
    let gate = client
        .get(&format!("/api/v1/milestones/{milestone_id}/gate"))
        .await
        .expect(200)
        .body;
    for item in gate["items"].as_array().unwrap() {
        if item["result"] == "pass" {
            continue;
        }
        client
            .patch(
                &format!("/api/v1/gate-items/{}", item["id"]),
                json!({"version": item["version"], "result": "pass", "evidence": "reviewed in the weekly meeting"}),
            )
            .await
            .expect(200);
    }
}

pub(crate) async fn transition(client: &e2e::Client, id: i64, event: &str) -> e2e::Reply {
    client
        .post(
            &format!("/api/v1/milestones/{id}/transitions"),
            json!({"event": event}),
        )
        .await
}

pub(crate) async fn decide(client: &e2e::Client, id: i64, decision: &str) -> e2e::Reply {
    client
        .post(
            &format!("/api/v1/milestones/{id}/gate-decisions"),
            json!({"decision": decision, "password": QA_PASSWORD, "notes": format!("{decision} at the gate")}),
        )
        .await
}

async fn a_program_runs_from_template_to_its_commercial_batch_gate(app: &TestApp) {
    // REQ: PLAN-TEMPLATE, PLAN-GATE-DECISION, PLAN-NO-GO-ACTIONS, SEC-SIGN-BINDING
    let s = program_setup(app).await;
    let (qa_id, qa_token) =
        user_with_token(app, "qa@acme.test", "quality", Some(QA_PASSWORD)).await;
    let qa = app.client(&qa_token);
    let templates = s.pm.get("/api/v1/plan-templates").await.expect(200).body;
    assert_eq!(templates["items"][0]["key"], "cdmo_standard");
    assert_eq!(
        templates["total"],
        templates["items"].as_array().unwrap().len()
    );

    // Instantiate the standard plan, safely retried with an Idempotency-Key.
    let plan_path = format!("/api/v1/programs/{}/plan", s.program_id);
    let body = json!({"template": "cdmo_standard", "start_date": app.today_in("Europe/Zurich")});
    let send = |key: Option<&'static str>| {
        let mut req = s.pm.request(Method::POST, &plan_path);
        if let Some(key) = key {
            req = req.insert_header(("Idempotency-Key", key));
        }
        s.pm.send(req, Some(&body))
    };
    let plan = send(Some("plan-acm-101-v1")).await.expect(201).body;
    let replay = send(Some("plan-acm-101-v1")).await.expect(201);
    assert_eq!(replay.header("idempotent-replayed"), Some("true"));
    assert_eq!(replay.body, plan);
    send(None).await.expect_problem(409, "plan_exists");
    let milestones = plan["milestones"].as_array().unwrap().clone();
    assert_eq!(milestones.len(), 12);
    assert_eq!(plan["gate_items_created"], 25);
    let by_name = |name: &str| {
        milestones.iter().find(|m| m["name"] == name).unwrap()["id"]
            .as_i64()
            .unwrap()
    };
    let engineering_runs = by_name("Engineering runs");
    let commercial = by_name("GMP commercial batch");

    // A critical deviation on the program holds production and blocks every `go`.
    let deviation = s
        .cmo_admin
        .post(
            &format!("/api/v1/programs/{}/deviations", s.program_id),
            json!({"title": "Bioburden excursion", "description": "35 CFU/10 mL against a limit of 10",
                   "detected_at": app.now(), "criticality": "critical", "category": "environment"}),
        )
        .await
        .expect(201)
        .body;
    let deviation_id = deviation["id"].as_i64().unwrap();
    let deviation_number = deviation["number"].as_str().unwrap().to_string();
    assert!(deviation_number.starts_with("DEV-20"), "{deviation}");
    let held =
        s.pm.get(&format!("/api/v1/programs/{}", s.program_id))
            .await
            .body;
    assert_eq!(held["production_status"], "on_hold");

    // Work through the plan in dependency order: whatever can start, starts.
    let mut done: Vec<i64> = Vec::new();
    let mut no_go_seen = false;
    let mut deviation_seen = false;
    for _round in 0..20 {
        let current =
            s.pm.get(&format!("/api/v1/programs/{}/milestones", s.program_id))
                .await
                .expect(200)
                .body;
        let ready: Vec<Value> = current["items"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|m| {
                m["status"] == "planned"
                    && m["depends_on"]
                        .as_array()
                        .unwrap()
                        .iter()
                        .all(|d| done.contains(&d.as_i64().unwrap()))
            })
            .cloned()
            .collect();
        if ready.is_empty() {
            break;
        }
        for m in ready {
            let id = m["id"].as_i64().unwrap();
            transition(&s.cmo_admin, id, "start").await.expect(200);
            if id == engineering_runs && !no_go_seen {
                // One mandatory item fails: no-go, rework, action item for the owner.
                let gate =
                    s.pm.get(&format!("/api/v1/milestones/{id}/gate"))
                        .await
                        .body;
                let failing = &gate["items"][0];
                s.cmo_admin
                    .patch(
                        &format!("/api/v1/gate-items/{}", failing["id"]),
                        json!({"version": failing["version"], "result": "fail", "evidence": "two unexplained pressure alarms"}),
                    )
                    .await
                    .expect(200);
                pass_every_item(&s.cmo_admin, id).await;
                let gate =
                    s.pm.get(&format!("/api/v1/milestones/{id}/gate"))
                        .await
                        .body;
                let failing = gate["items"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .find(|i| i["id"] == failing["id"])
                    .unwrap()
                    .clone();
                s.cmo_admin
                    .patch(
                        &format!("/api/v1/gate-items/{}", failing["id"]),
                        json!({"version": failing["version"], "result": "fail"}),
                    )
                    .await
                    .expect(200);
                transition(&s.cmo_admin, id, "submit_for_gate")
                    .await
                    .expect(200);
                decide(&qa, id, "go")
                    .await
                    .expect_problem(409, "gate_items_failed");
                let outcome = decide(&qa, id, "no_go").await.expect(201).body;
                assert_eq!(outcome["gate"]["milestone_status"], "in_progress");
                let action_id = outcome["action_item_ids"][0].as_i64().unwrap();
                let action =
                    s.pm.get(&format!("/api/v1/action-items/{action_id}"))
                        .await
                        .expect(200)
                        .body;
                assert_eq!(action["owner_user_id"], s.pm_id);
                assert_eq!(action["source"], "gate_item");
                let due: chrono::NaiveDate = action["due_date"].as_str().unwrap().parse().unwrap();
                assert_eq!(
                    due,
                    app.today_in("Europe/Zurich") + chrono::TimeDelta::days(7)
                );
                s.pm.post(
                    &format!("/api/v1/action-items/{action_id}/transitions"),
                    json!({"event": "complete"}),
                )
                .await
                .expect(200);
                no_go_seen = true;
            }
            pass_every_item(&s.cmo_admin, id).await;
            transition(&s.cmo_admin, id, "submit_for_gate")
                .await
                .expect(200);
            // Completion waits for the signed go.
            transition(&s.pm, id, "complete")
                .await
                .expect_problem(409, "illegal_transition");
            if !deviation_seen {
                let r = decide(&qa, id, "go")
                    .await
                    .expect_problem(409, "open_critical_deviations");
                // The refusal names the deviation in the way: its number and title.
                assert!(
                    r.body["detail"]
                        .as_str()
                        .unwrap()
                        .contains(&format!("{deviation_number} Bioburden excursion")),
                    "{}",
                    r.body
                );
                // The gate says so before anyone tries.
                let gate = qa
                    .get(&format!("/api/v1/milestones/{id}/gate"))
                    .await
                    .expect(200)
                    .body;
                assert!(
                    gate["go_blockers"]
                        .to_string()
                        .contains(&format!("{deviation_number} Bioburden excursion")),
                    "{gate}"
                );
                // QA works the deviation to closure; then the go passes.
                let dpath = format!("/api/v1/deviations/{deviation_id}");
                qa.post(&format!("{dpath}/transitions"), json!({"event": "triage"}))
                    .await
                    .expect(200);
                qa.post(
                    &format!("{dpath}/transitions"),
                    json!({"event": "start_investigation"}),
                )
                .await
                .expect(200);
                let d = qa.get(&dpath).await.body;
                qa.patch(
                    &dpath,
                    json!({"version": d["version"], "root_cause_method": "fishbone", "root_cause_category": "equipment",
                           "root_cause_narrative": "worn manway gasket", "reason": "investigation complete"}),
                )
                .await
                .expect(200);
                qa.post(
                    &format!("{dpath}/transitions"),
                    json!({"event": "close", "password": QA_PASSWORD}),
                )
                .await
                .expect(200);
                deviation_seen = true;
            }
            let outcome = decide(&qa, id, "go").await.expect(201).body;
            assert_eq!(outcome["decision"]["decision"], "go");
            // Signed: the decision and the checklist it was decided on (each item's
            // check, result and evidence; not the live count of open deviations and
            // CAPA that the gate page adds, nor who ticked it).
            let d = &outcome["decision"];
            let checklist: Vec<Value> = outcome["gate"]["items"]
                .as_array()
                .unwrap()
                .iter()
                .map(|i| {
                    json!({"id": i["id"], "check_type": i["check_type"], "title": i["title"],
                        "mandatory": i["mandatory"], "result": i["result"], "evidence": i["evidence"]})
                })
                .collect();
            crate::assert_signature_binds(
                app,
                &d["signature_id"],
                "gate_decision",
                &d["id"],
                &json!({"id": d["id"], "milestone_id": d["milestone_id"], "gate_round": d["gate_round"],
                    "decision": d["decision"], "notes": d["notes"], "decided_by_user_id": d["decided_by_user_id"],
                    "decided_at": d["decided_at"], "checklist": checklist}),
                qa_id,
                "approved",
            )
            .await;
            decide(&qa, id, "go")
                .await
                .expect_problem(409, "already_decided");
            let completed = transition(&s.pm, id, "complete").await.expect(200).body;
            assert_eq!(completed["status"], "completed");
            done.push(id);
        }
    }
    assert!(no_go_seen && deviation_seen);
    assert_eq!(done.len(), 12, "every milestone went through its gate");
    assert_eq!(
        *done.last().unwrap(),
        commercial,
        "the commercial batch gate is the last"
    );

    // Each decision is e-signed, and bound to what was decided.
    let signatures = qa
        .get("/api/v1/signatures?record_type=gate_decision&limit=200")
        .await
        .expect(200)
        .body;
    assert_eq!(signatures["total"], 13, "12 go decisions and one no-go");
    let closures = qa
        .get("/api/v1/signatures?record_type=deviation_closure")
        .await
        .body;
    assert_eq!(closures["total"], 1);
    let overview =
        s.pm.get(&format!("/api/v1/programs/{}/overview", s.program_id))
            .await
            .expect(200)
            .body;
    assert_eq!(overview["plan"]["by_status"]["completed"], 12);
    assert_eq!(overview["open_critical_deviations"], 0);
    assert_eq!(overview["open_action_items"], 0);
    assert_eq!(
        overview["production_status"], "on_hold",
        "closing the deviation does not release production"
    );
    let released = qa
        .post(
            &format!("/api/v1/programs/{}/production-release", s.program_id),
            json!({"password": QA_PASSWORD, "reason": "root cause fixed, monitoring back in limits"}),
        )
        .await
        .expect(200)
        .body;
    assert_eq!(released["production_status"], "running");
    assert_eq!(
        app.admin().get("/api/v1/audit-events/verify").await.body["intact"],
        true
    );
}
on_both_databases!(a_program_runs_from_template_to_its_commercial_batch_gate);

async fn gate_decisions_need_the_right_people_and_state(app: &TestApp) {
    // REQ: PLAN-GATE-DECISION, SEC-SIGN-PASSWORD
    let s = program_setup(app).await;
    let today = app.today_in("Europe/Zurich").to_string();
    let m = s
        .pm
        .post(
            &format!("/api/v1/programs/{}/milestones", s.program_id),
            json!({"name": "Batch records", "phase": "Readiness", "baseline_start": today, "baseline_end": today}),
        )
        .await
        .expect(201)
        .body;
    let id = m["id"].as_i64().unwrap();
    let item =
        s.pm.post(
            &format!("/api/v1/milestones/{id}/gate-items"),
            json!({"check_type": "batch_record_readiness", "title": "MBR approved"}),
        )
        .await
        .expect(201)
        .body;
    // Deviation-related checks show how many deviations are open on the program.
    s.pm.post(
        &format!("/api/v1/milestones/{id}/gate-items"),
        json!({"check_type": "product_related_deviations", "title": "Deviations assessed", "mandatory": false}),
    )
    .await
    .expect(201);
    s.pm.post(
        &format!("/api/v1/programs/{}/deviations", s.program_id),
        json!({"title": "Label smudge", "description": "minor", "detected_at": app.now(), "criticality": "minor", "category": "documentation"}),
    )
    .await
    .expect(201);
    let gate =
        s.pm.get(&format!("/api/v1/milestones/{id}/gate"))
            .await
            .expect(200)
            .body;
    assert!(gate["items"][0]["linked_open_count"].is_null());
    assert_eq!(gate["items"][1]["linked_open_count"], 1);
    let (_, qa_token) = user_with_token(app, "qa@acme.test", "quality", Some(QA_PASSWORD)).await;
    let qa = app.client(&qa_token);
    // Not in review yet.
    decide(&qa, id, "go")
        .await
        .expect_problem(409, "not_in_gate_review");
    transition(&s.pm, id, "start").await.expect(200);
    transition(&s.pm, id, "submit_for_gate").await.expect(200);
    // The mandatory item is undecided.
    let r = decide(&qa, id, "no_go")
        .await
        .expect_problem(409, "gate_items_undecided");
    assert!(r.body["detail"].as_str().unwrap().contains("MBR approved"));
    s.pm.patch(
        &format!("/api/v1/gate-items/{}", item["id"]),
        json!({"version": 1, "result": "pass"}),
    )
    .await
    .expect(200);
    // The CMO does not decide the sponsor's gate; a viewer does not sign.
    s.cmo_admin
        .post(
            &format!("/api/v1/milestones/{id}/gate-decisions"),
            json!({"decision": "go", "password": "whatever it is"}),
        )
        .await
        .expect_problem(403, "forbidden");
    // A wrong password is refused and audited.
    qa.post(
        &format!("/api/v1/milestones/{id}/gate-decisions"),
        json!({"decision": "go", "password": "not it at all"}),
    )
    .await
    .expect_problem(401, "invalid_password");
    let gate = qa
        .get(&format!("/api/v1/milestones/{id}/gate"))
        .await
        .expect(200)
        .body;
    assert_eq!(gate["decisions"], json!([]));
    assert_eq!(gate["go_blockers"], json!([]));
    decide(&qa, id, "go").await.expect(201);
    // Another program's milestone gate is invisible.
    let (_, _, other) =
        crate::partner_org(app, "Other Sponsor", "sponsor", "boss@other.test").await;
    app.client(&other)
        .get(&format!("/api/v1/milestones/{id}/gate"))
        .await
        .expect_problem(404, "not_found");
    app.client(&other)
        .patch(
            &format!("/api/v1/gate-items/{}", item["id"]),
            json!({"version": 2, "result": "fail"}),
        )
        .await
        .expect_problem(404, "not_found");
}
on_both_databases!(gate_decisions_need_the_right_people_and_state);
