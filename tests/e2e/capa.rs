//! CAPA end to end: the plan, its actions, the effectiveness check, closure that takes
//! the deviations waiting for it along.

use e2e::{TestApp, on_both_databases};
use serde_json::{Value, json};

use crate::programs::program_setup;
use crate::quality::{QA_PASSWORD, report, transition};
use crate::user_with_token;

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

    // REQ: SEC-SIGNED-FIELDS
    // The plan's progress is not what its approval signed: still matching. Editing the
    // plan is, and the approval then reads as no longer matching, naming the field.
    let plan_signature = format!("/api/v1/signatures/{}", approved["plan_signature_id"]);
    let sig = qa.get(&plan_signature).await.expect(200).body;
    assert_eq!(sig["record_state"], "matching", "{sig}");
    assert!(sig["signed_fields"].get("status").is_none(), "{sig}");
    let current = qa.get(&cpath).await.expect(200).body;
    qa.patch(
        &cpath,
        json!({"version": current["capa"]["version"], "description": "Corrective and preventive, both tanks",
               "reason": "scope extended to tank B"}),
    )
    .await
    .expect(200);
    let sig = qa.get(&plan_signature).await.expect(200).body;
    assert_eq!(sig["record_state"], "no_longer_matching", "{sig}");
    assert_eq!(sig["changed_fields"], json!(["description"]));
    assert_eq!(
        sig["signed_fields"]["description"], "Corrective and preventive",
        "what was signed stays readable"
    );
    let listed = qa
        .get(&format!(
            "/api/v1/signatures?record_type=capa&record_id={id}"
        ))
        .await
        .expect(200)
        .body;
    assert_eq!(listed["items"][0]["record_state"], "no_longer_matching");
    // Another organization's signature is not there.
    let (_, _, stranger) =
        crate::partner_org(app, "Signature Stranger", "sponsor", "x@sigstranger.test").await;
    app.client(&stranger)
        .get(&plan_signature)
        .await
        .expect_problem(404, "not_found");

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
    // A CAPA action is completed on evidence, a note or a link, which the item keeps.
    let refused =
        s.pm.post(
            &format!("{a_path}/transitions"),
            json!({"event": "complete"}),
        )
        .await
        .expect_problem(422, "validation_failed");
    assert!(
        refused.body.to_string().contains("\"evidence\""),
        "{}",
        refused.body
    );
    s.pm.post(
        &format!("{a_path}/transitions"),
        json!({"event": "complete", "evidence_url": "ftp://files/wo"}),
    )
    .await
    .expect_problem(422, "validation_failed");
    let done =
        s.pm.post(
            &format!("{a_path}/transitions"),
            json!({"event": "complete", "evidence": "Gaskets replaced",
                   "evidence_url": "https://dms.example.com/wo/WO-5512"}),
        )
        .await
        .expect(200)
        .body;
    assert_eq!(
        (
            &done["completion_evidence"],
            &done["completion_evidence_url"]
        ),
        (
            &json!("Gaskets replaced"),
            &json!("https://dms.example.com/wo/WO-5512")
        )
    );
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
