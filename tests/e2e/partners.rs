//! The CMO registry through HTTP: capabilities and the candidate search, sites and
//! inspections, qualification with signed decisions, the program naming rule, tenancy.

use e2e::{TestApp, on_both_databases};
use sea_orm::{EntityTrait, QueryOrder};
use serde_json::json;

use crate::{partner_org, user_with_token};

pub(crate) const QA_PASSWORD: &str = "quality signs this one";

async fn the_registry_finds_candidates_and_qualification_gates_programs(app: &TestApp) {
    // REQ: PART-QUALIFICATION
    let admin = app.admin();
    let (visp, _, visp_token) = partner_org(app, "Lonza Visp", "cmo", "pm@lonza.test").await;
    let (oral, _, oral_token) = partner_org(app, "Oral Solids Co", "cmo", "pm@oral.test").await;
    // A CMO's facts are its own: its admins keep them, its sponsors read them.
    let visp_admin = app.client(&visp_token);
    let oral_admin = app.client(&oral_token);
    let (_, qa_token) = user_with_token(app, "qa@acme.test", "quality", Some(QA_PASSWORD)).await;
    let qa = app.client(&qa_token);

    // A new CMO is a prospect; a program cannot name it yet, and the answer says why.
    let profile = admin
        .get(&format!("/api/v1/cmos/{visp}"))
        .await
        .expect(200)
        .body;
    assert_eq!(profile["qualification_status"], "prospect");
    // What this admin can do now; the signed disqualification is quality's, and the
    // answer says so.
    assert_eq!(profile["allowed_events"], json!(["start_evaluation"]));
    assert_eq!(profile["blocked_events"][0]["event"], "disqualify");
    assert!(
        profile["blocked_events"][0]["reason"]
            .as_str()
            .unwrap()
            .contains("quality"),
        "{profile}"
    );
    let program = json!({"name": "P", "product_name": "P", "cmo_org_id": visp, "modality": "biologic",
        "stage": "clinical", "time_zone": "UTC"});
    let refused = admin
        .post("/api/v1/programs", program.clone())
        .await
        .expect_problem(409, "cmo_not_qualified")
        .body;
    assert!(
        refused["detail"]
            .as_str()
            .unwrap()
            .contains("not qualified yet")
    );

    // Capabilities, sites, and the candidate search. The sponsor reads them; the CMO keeps
    // them (its first admin has joined).
    admin
        .patch(
            &format!("/api/v1/cmos/{visp}"),
            json!({"version": 1, "cold_chain": true}),
        )
        .await
        .expect_problem(403, "forbidden");
    visp_admin
        .patch(
            &format!("/api/v1/cmos/{visp}"),
            json!({"version": 1, "dosage_forms": ["Sterile_Injectable", "lyophilized"], "modalities": ["biologic"],
                   "sterile_fill_finish": true, "cold_chain": true, "max_batch_liters": 20000,
                   "contacts": [{"name": "Petra Meier", "role": "Project manager", "email": "pm@lonza.test"}]}),
        )
        .await
        .expect(200);
    oral_admin
        .patch(
            &format!("/api/v1/cmos/{oral}"),
            json!({"version": 1, "dosage_forms": ["tablet"], "modalities": ["small_molecule"], "max_batch_liters": 500}),
        )
        .await
        .expect(200);
    oral_admin
        .patch(
            &format!("/api/v1/cmos/{oral}"),
            json!({"version": 1, "cold_chain": true}),
        )
        .await
        .expect_problem(409, "version_conflict");
    oral_admin
        .patch(
            &format!("/api/v1/cmos/{oral}"),
            json!({"version": 2, "dosage_forms": ["no spaces"]}),
        )
        .await
        .expect_problem(422, "validation_failed");
    let site = visp_admin
        .post(
            &format!("/api/v1/cmos/{visp}/sites"),
            json!({"name": "Visp Ibex", "country": "ch", "region": "other_europe"}),
        )
        .await
        .expect(201)
        .body;
    assert_eq!(site["country"], "CH");
    visp_admin
        .post(
            &format!("/api/v1/cmos/{visp}/sites"),
            json!({"name": "Porrino", "country": "ES", "region": "eu"}),
        )
        .await
        .expect(201);
    oral_admin
        .post(
            &format!("/api/v1/cmos/{oral}/sites"),
            json!({"name": "Ohio", "country": "US", "region": "north_america"}),
        )
        .await
        .expect(201);
    oral_admin
        .post(
            &format!("/api/v1/cmos/{oral}/sites"),
            json!({"name": "Nowhere", "country": "X1", "region": "eu"}),
        )
        .await
        .expect_problem(422, "validation_failed");
    let found = admin
        .get("/api/v1/cmos?dosage_form=sterile_injectable&modality=biologic&region=eu")
        .await
        .expect(200)
        .body;
    assert_eq!(found["total"], 1);
    assert_eq!(found["items"][0]["org_id"], visp);
    assert_eq!(
        found["items"][0]["dosage_forms"],
        json!(["sterile_injectable", "lyophilized"])
    );
    assert_eq!(
        admin
            .get("/api/v1/cmos?region=north_america")
            .await
            .expect(200)
            .body["total"],
        1
    );
    assert_eq!(
        admin
            .get("/api/v1/cmos?min_batch_liters=1000")
            .await
            .expect(200)
            .body["total"],
        1
    );
    assert_eq!(
        admin
            .get("/api/v1/cmos?cold_chain=true&region=north_america")
            .await
            .expect(200)
            .body["total"],
        0
    );

    // Inspections: the latest outcome shows on the profile and its site.
    let site_id = site["id"].as_i64().unwrap();
    let inspections = format!("/api/v1/cmos/{visp}/inspections");
    qa.post(&inspections, json!({"site_id": site_id, "agency": "ema", "inspected_on": "2023-03-01", "outcome": "no_findings"}))
        .await
        .expect_problem(403, "forbidden");
    visp_admin.post(&inspections, json!({"site_id": site_id, "agency": "ema", "inspected_on": "2023-03-01", "outcome": "no_findings"}))
        .await
        .expect(201);
    let latest = visp_admin
        .post(&inspections, json!({"site_id": site_id, "agency": "fda", "inspected_on": "2025-06-12", "outcome": "oai",
            "critical_findings": 1, "notes": "aseptic process simulation failures"}))
        .await
        .expect(201)
        .body;
    assert_eq!(latest["adverse"], true);
    visp_admin.post(&inspections, json!({"site_id": 999_999, "agency": "fda", "inspected_on": "2025-06-12", "outcome": "nai"}))
        .await
        .expect_problem(422, "validation_failed");
    let profile = admin
        .get(&format!("/api/v1/cmos/{visp}"))
        .await
        .expect(200)
        .body;
    assert_eq!(profile["latest_inspection"]["id"], latest["id"]);
    assert_eq!(profile["sites"][0]["latest_inspection"]["outcome"], "oai");
    let listed = admin.get(&inspections).await.expect(200).body;
    assert_eq!(listed["total"], 2, "{listed}");
    assert_eq!(listed["items"][0]["id"], latest["id"], "newest first");

    // Qualification: evaluation and qualification, then a program may name it.
    let q = format!("/api/v1/cmos/{visp}/qualification");
    admin
        .post(&q, json!({"event": "qualify"}))
        .await
        .expect_problem(409, "illegal_transition");
    admin
        .post(&q, json!({"event": "start_evaluation"}))
        .await
        .expect(200);
    admin
        .post(&q, json!({"event": "qualify", "version": 1}))
        .await
        .expect_problem(409, "version_conflict");
    admin
        .post(&q, json!({"event": "qualify"}))
        .await
        .expect(200);
    let program_id = admin
        .post("/api/v1/programs", program.clone())
        .await
        .expect(201)
        .body["id"]
        .as_i64()
        .unwrap();
    // The OAI inspection's critical finding opens a CAPA on that program; a clean
    // inspection does not.
    let capa = qa
        .post(
            &format!("/api/v1/inspections/{}/capa", latest["id"]),
            json!({"program_id": program_id, "title": "APS failures", "description": "repeat APS"}),
        )
        .await
        .expect(201)
        .body;
    assert_eq!(capa["source"], "inspection_finding");
    assert!(
        capa["finding_reference"]
            .as_str()
            .unwrap()
            .starts_with(&format!("inspection #{} (FDA 2025-06-12", latest["id"]))
    );
    let clean = qa.get(&inspections).await.expect(200).body["items"][1]["id"]
        .as_i64()
        .unwrap();
    qa.post(
        &format!("/api/v1/inspections/{clean}/capa"),
        json!({"program_id": program_id, "title": "x", "description": "y"}),
    )
    .await
    .expect_problem(409, "no_critical_finding");
    // Approval is signed by quality: not by an admin, not without the password.
    admin
        .post(
            &q,
            json!({"event": "approve", "password": "whatever it is"}),
        )
        .await
        .expect_problem(403, "forbidden");
    qa.post(&q, json!({"event": "approve"})).await.expect(422);
    qa.post(
        &q,
        json!({"event": "approve", "password": "not the password"}),
    )
    .await
    .expect_problem(401, "invalid_password");
    let approved = qa
        .post(
            &q,
            json!({"event": "approve", "password": QA_PASSWORD, "reason": "audit passed"}),
        )
        .await
        .expect(200)
        .body;
    assert_eq!(approved["qualification_status"], "approved");
    let signatures = qa
        .get("/api/v1/signatures?record_type=cmo_qualification")
        .await
        .expect(200)
        .body;
    assert_eq!(signatures["total"], 1, "{signatures}");
    // Probation needs a reason and stops new programs.
    qa.post(&q, json!({"event": "probation"}))
        .await
        .expect_problem(422, "validation_failed");
    qa.post(
        &q,
        json!({"event": "probation", "reason": "OAI inspection"}),
    )
    .await
    .expect(200);
    let on_probation = admin
        .post("/api/v1/programs", program.clone())
        .await
        .expect_problem(409, "cmo_not_qualified")
        .body;
    assert!(
        on_probation["detail"]
            .as_str()
            .unwrap()
            .contains("probation")
    );
    qa.post(
        &q,
        json!({"event": "disqualify", "reason": "repeat OAI", "password": QA_PASSWORD}),
    )
    .await
    .expect(200);

    // Tenancy: a CMO sees only itself and cannot decide its own qualification.
    let own = visp_admin.get("/api/v1/cmos").await.expect(200).body;
    assert_eq!(own["total"], 1);
    assert_eq!(own["items"][0]["org_id"], visp);
    visp_admin
        .get(&format!("/api/v1/cmos/{oral}"))
        .await
        .expect_problem(404, "not_found");
    visp_admin
        .get(&format!("/api/v1/cmos/{oral}/inspections"))
        .await
        .expect_problem(404, "not_found");
    visp_admin
        .post(&q, json!({"event": "reevaluate", "reason": "we fixed it"}))
        .await
        .expect_problem(403, "forbidden");
    let current = visp_admin
        .get(&format!("/api/v1/cmos/{visp}"))
        .await
        .expect(200)
        .body;
    visp_admin
        .patch(
            &format!("/api/v1/cmos/{visp}"),
            json!({"version": current["version"], "contacts": [{"name": "New PM", "role": "Project manager", "phone": "+41 27 555 0101"}]}),
        )
        .await
        .expect(200);
}
on_both_databases!(the_registry_finds_candidates_and_qualification_gates_programs);

async fn scorecards_count_what_happened_and_stay_with_their_parties(app: &TestApp) {
    // REQ: PART-SCORECARD
    let s = crate::programs::program_setup(app).await;
    let cmo_id = app
        .admin()
        .get(&format!("/api/v1/programs/{}", s.program_id))
        .await
        .expect(200)
        .body["cmo_org_id"]
        .as_i64()
        .unwrap();
    let devs = format!("/api/v1/programs/{}/deviations", s.program_id);
    for (title, criticality, lot) in [
        ("A", "critical", "LOT-1"),
        ("B", "minor", "LOT-1"),
        ("C", "minor", "LOT-2"),
    ] {
        s.pm.post(
            &devs,
            json!({"title": title, "description": "d", "detected_at": app.now(), "criticality": criticality,
                   "category": "equipment", "batch_lot": lot}),
        )
        .await
        .expect(201);
    }
    // The critical one opened an escalation; acknowledge it ten minutes later.
    let escalation = s.pm.get("/api/v1/escalations").await.expect(200).body["items"][0]["id"]
        .as_i64()
        .unwrap();
    app.clock.advance(chrono::TimeDelta::minutes(10));
    s.pm.post(&format!("/api/v1/escalations/{escalation}/ack"), json!({}))
        .await
        .expect(200);

    let card =
        s.pm.get(&format!("/api/v1/cmos/{cmo_id}/scorecard"))
            .await
            .expect(200)
            .body;
    assert_eq!(card["programs"], 1);
    let k = &card["kpis"];
    assert_eq!(
        (k["deviations"].as_u64(), k["batches"].as_u64()),
        (Some(3), Some(2))
    );
    assert_eq!(k["deviations_per_batch"]["minor"], 1.0);
    assert_eq!(k["deviations_per_batch"]["critical"], 0.5);
    assert_eq!(k["escalations"], 1);
    assert_eq!(k["median_minutes_to_acknowledge"], 10.0);
    let program_card =
        s.pm.get(&format!(
            "/api/v1/programs/{}/scorecard?from={}",
            s.program_id,
            (app.now() - chrono::TimeDelta::days(30)).date_naive()
        ))
        .await
        .expect(200)
        .body;
    assert_eq!(program_card["kpis"], card["kpis"]);
    // The CMO reads its own; another CMO of the same sponsor does not; bad windows are 422.
    s.cmo_admin
        .get(&format!("/api/v1/cmos/{cmo_id}/scorecard"))
        .await
        .expect(200);
    let (_, _, other) = crate::partner_org(app, "Other CMO", "cmo", "x@other.test").await;
    app.client(&other)
        .get(&format!("/api/v1/cmos/{cmo_id}/scorecard"))
        .await
        .expect_problem(404, "not_found");
    s.pm.get(&format!(
        "/api/v1/cmos/{cmo_id}/scorecard?from=2026-12-01&to=2026-01-01"
    ))
    .await
    .expect_problem(422, "validation_failed");
}
on_both_databases!(scorecards_count_what_happened_and_stay_with_their_parties);

async fn quality_agreements_are_reminded_at_90_30_and_7_days(app: &TestApp) {
    // REQ: NOTIF-AGREEMENT-EXPIRY
    let (cmo, _, lonza_admin) = partner_org(app, "Lonza Visp", "cmo", "pm@lonza.test").await;
    // A second CMO whose agreement runs alike but is renewed before its last week.
    let (renewed_cmo, _, _) =
        partner_org(app, "Rentschler Laupheim", "cmo", "pm@rentschler.test").await;
    user_with_token(app, "qa@acme.test", "quality", None).await;
    let today = app.now().date_naive();
    let admin = app.admin();
    let path = format!("/api/v1/cmos/{cmo}/quality-agreements");
    admin
        .post(
            &path,
            json!({"version_label": "v1", "effective_on": today, "expires_on": today,
            "responsibilities": "r", "document_ref": "QA-1"}),
        )
        .await
        .expect_problem(422, "validation_failed");
    let first = admin
        .post(&path, json!({"version_label": "v1", "effective_on": today - chrono::TimeDelta::days(300),
            "expires_on": today + chrono::TimeDelta::days(95), "responsibilities": "CMO: batch record review",
            "document_ref": "QA-AGR-001"}))
        .await
        .expect(201)
        .body;
    assert_eq!(first["current"], true);
    assert_eq!(first["days_to_expiry"], 95);
    let renewed_path = format!("/api/v1/cmos/{renewed_cmo}/quality-agreements");
    admin
        .post(&renewed_path, json!({"version_label": "v1", "effective_on": today - chrono::TimeDelta::days(300),
            "expires_on": today + chrono::TimeDelta::days(95), "responsibilities": "CMO: release testing",
            "document_ref": "QA-AGR-R1"}))
        .await
        .expect(201);

    let ctx = app.job_context("w1");
    let day = |n: i64| app.now() + chrono::TimeDelta::days(n);
    let run = |n: i64| {
        let ctx = ctx.clone();
        async move {
            worker::jobs::agreement_expiry::run(&ctx, day(n))
                .await
                .unwrap()
                .queued
        }
    };
    assert_eq!(run(0).await, 0, "95 days out");
    assert_eq!(run(5).await, 2, "90 days, both agreements");
    assert_eq!(run(5).await, 0, "once per threshold");
    assert_eq!(run(40).await, 0, "55 days: still the 90-day threshold");
    assert_eq!(run(65).await, 2, "30 days, both");
    // Beta, connected to Lonza too, records its own agreement with it, running far
    // longer: it is Beta's and supersedes nothing of Acme's.
    let (_, _, beta) = partner_org(app, "Beta Biologics", "sponsor", "boss@beta.test").await;
    let beta = app.client(&beta);
    let invited = beta
        .post("/api/v1/cmo-connections", json!({"cmo_org_id": cmo}))
        .await
        .expect(201)
        .body;
    app.client(&lonza_admin)
        .post(
            &format!("/api/v1/cmo-connections/{}/events", invited["id"]),
            json!({"event": "accept"}),
        )
        .await
        .expect(200);
    beta.post(
        &path,
        json!({"version_label": "B1", "effective_on": today - chrono::TimeDelta::days(10),
            "expires_on": today + chrono::TimeDelta::days(800), "responsibilities": "Beta releases",
            "document_ref": "QA-BETA-1"}),
    )
    .await
    .expect(201);
    // Rentschler's is renewed: the old agreement is superseded and no longer reminded;
    // Lonza's gets its last reminder a week before expiry.
    admin
        .post(&renewed_path, json!({"version_label": "v2", "effective_on": today + chrono::TimeDelta::days(80),
            "expires_on": today + chrono::TimeDelta::days(800), "responsibilities": "CMO: release testing",
            "document_ref": "QA-AGR-R2"}))
        .await
        .expect(201);
    assert_eq!(
        run(88).await,
        1,
        "7 days: Lonza only (Rentschler's was renewed)"
    );
    assert_eq!(run(89).await, 0, "once");
    // In the order written (PostgreSQL returns an unordered read in any order).
    let rows = entity::outbox::Entity::find()
        .order_by_asc(entity::outbox::Column::Id)
        .all(&app.db)
        .await
        .unwrap();
    let reminders: Vec<_> = rows
        .iter()
        .filter(|r| r.dedupe_key.starts_with("qa-expiry:"))
        .collect();
    assert_eq!(reminders.len(), 5);
    let last = reminders.last().unwrap();
    assert!(
        last.subject.contains("Lonza Visp expires in 7 days"),
        "{}",
        last.subject
    );
    assert_eq!(last.to_addrs, json!(["qa@acme.test"]).to_string());
    assert_eq!(reminders[0].to_addrs, json!(["qa@acme.test"]).to_string());
    assert!(
        reminders[0]
            .subject
            .contains("Lonza Visp expires in 90 days")
    );
    // The daily tick runs once across workers.
    let s = worker::jobs::agreement_expiry::AgreementSettings {
        schedule: "0 0 6 * * *".into(),
        ..Default::default()
    };
    let six = app
        .now()
        .date_naive()
        .and_hms_opt(6, 0, 30)
        .unwrap()
        .and_utc()
        + chrono::TimeDelta::days(1);
    let a = worker::jobs::agreement_expiry::expiry_reminders(&ctx, six, &s)
        .await
        .unwrap();
    let other = app.job_context("w2");
    let b = worker::jobs::agreement_expiry::expiry_reminders(&other, six, &s)
        .await
        .unwrap();
    assert!(a.ran && !b.ran);
    // The lists mark the agreement in force.
    let list = admin.get(&renewed_path).await.expect(200).body;
    assert_eq!(list["total"], 2, "{list}");
    assert_eq!(
        list["items"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|a| a["current"] == true)
            .count(),
        1,
        "{list}"
    );
}
on_both_databases!(quality_agreements_are_reminded_at_90_30_and_7_days);
