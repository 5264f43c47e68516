//! Programs, teams and milestones through HTTP.

use chrono::TimeDelta;
use e2e::{TestApp, on_both_databases};
use serde_json::{Value, json};

use crate::{partner_org, user_with_token};

#[allow(dead_code)]
pub struct Setup {
    pub program_id: i64,
    pub pm: e2e::Client,
    pub pm_id: i64,
    pub cmo_admin: e2e::Client,
    pub cmo_admin_id: i64,
}

/// A sponsor PM, a CMO and a program between them.
pub async fn program_setup(app: &TestApp) -> Setup {
    let (cmo_id, cmo_admin_id, cmo_token) =
        partner_org(app, "Lonza Visp", "cmo", "pm@lonza.test").await;
    app.qualify_cmo(cmo_id).await;
    let (pm_id, pm_token) = user_with_token(app, "pm@acme.test", "program_manager", None).await;
    let pm = app.client(&pm_token);
    let program = pm
        .post(
            "/api/v1/programs",
            json!({"name": "ACM-101 clinical supply", "product_name": "ACM-101", "cmo_org_id": cmo_id,
                   "modality": "biologic", "stage": "clinical", "budget_minor": 420000000, "currency": "USD",
                   "time_zone": "Europe/Zurich"}),
        )
        .await
        .expect(201)
        .body;
    assert_eq!(program["production_status"], "running");
    // The CMO admin swaps the 7-day hand-over token for one of their own.
    let own = app
        .client(&cmo_token)
        .post("/api/v1/tokens", json!({"name": "Lonza PM laptop"}))
        .await
        .expect(201)
        .body;
    Setup {
        program_id: program["id"].as_i64().unwrap(),
        pm,
        pm_id,
        cmo_admin: app.client(own["secret"].as_str().unwrap()),
        cmo_admin_id,
    }
}

async fn programs_belong_to_sponsor_and_cmo_only(app: &TestApp) {
    // REQ: TEN-404
    let s = program_setup(app).await;
    let path = format!("/api/v1/programs/{}", s.program_id);
    // The CMO sees the program that names it.
    let listed = s.cmo_admin.get("/api/v1/programs").await.expect(200).body;
    assert_eq!(listed["total"], 1);
    s.cmo_admin.get(&path).await.expect(200);
    // Another sponsor does not.
    let (_, _, other) = partner_org(app, "Other Sponsor", "sponsor", "boss@other.test").await;
    app.client(&other)
        .get(&path)
        .await
        .expect_problem(404, "not_found");
    assert_eq!(
        app.client(&other).get("/api/v1/programs").await.body["total"],
        0
    );

    // Only the sponsor's managers create and edit programs.
    let (_, viewer) = user_with_token(app, "viewer@acme.test", "viewer", None).await;
    app.client(&viewer)
        .post(
            "/api/v1/programs",
            json!({"name": "X", "product_name": "X", "cmo_org_id": 2, "modality": "other", "stage": "preclinical", "time_zone": "UTC"}),
        )
        .await
        .expect_problem(403, "forbidden");
    s.cmo_admin
        .patch(
            &path,
            json!({"version": 1, "stage": "commercial", "reason": "x"}),
        )
        .await
        .expect_problem(403, "forbidden");
    // A CMO the sponsor did not register cannot be named.
    let (other_cmo, _, _) = {
        let created = app
            .client(&other)
            .post(
                "/api/v1/organizations",
                json!({"name": "Stranger CMO", "kind": "cmo", "admin": {"email": "a@stranger.test", "display_name": "S"}}),
            )
            .await
            .expect(201)
            .body;
        (created["organization"]["id"].as_i64().unwrap(), 0, 0)
    };
    let r = s
        .pm
        .post(
            "/api/v1/programs",
            json!({"name": "X", "product_name": "X", "cmo_org_id": other_cmo, "modality": "other", "stage": "preclinical", "time_zone": "UTC"}),
        )
        .await
        .expect_problem(422, "validation_failed");
    assert_eq!(r.body["errors"][0]["field"], "cmo_org_id");
    // Bad time zone and currency are named.
    let r = s
        .pm
        .post(
            "/api/v1/programs",
            json!({"name": "X", "product_name": "X", "cmo_org_id": 2, "modality": "other", "stage": "preclinical",
                   "time_zone": "Mars/Olympus", "budget_minor": 5, "currency": "usd"}),
        )
        .await
        .expect_problem(422, "validation_failed");
    let fields: Vec<&str> = r.body["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["field"].as_str().unwrap())
        .collect();
    assert_eq!(fields, ["time_zone", "currency"]);

    // Updates: versioned, reasoned, audited; production status is not theirs to set.
    let updated =
        s.pm.patch(
            &path,
            json!({"version": 1, "stage": "commercial", "reason": "PPQ complete"}),
        )
        .await
        .expect(200)
        .body;
    assert_eq!(
        (updated["stage"].as_str(), updated["version"].as_i64()),
        (Some("commercial"), Some(2))
    );
    s.pm.patch(
        &path,
        json!({"version": 1, "name": "again", "reason": "stale"}),
    )
    .await
    .expect_problem(409, "version_conflict");
    s.pm.patch(
        &path,
        json!({"version": 2, "production_status": "on_hold", "reason": "sneaky"}),
    )
    .await
    .expect_problem(422, "validation_failed");
    let events = app
        .admin()
        .get(&format!(
            "/api/v1/audit-events?entity_type=program&entity_id={}",
            s.program_id
        ))
        .await
        .body;
    assert_eq!(events["total"], 2);
    assert_eq!(events["items"][1]["reason"], "PPQ complete");
}
on_both_databases!(programs_belong_to_sponsor_and_cmo_only);

async fn the_team_holds_people_of_both_sides(app: &TestApp) {
    let s = program_setup(app).await;
    let team = format!("/api/v1/programs/{}/team", s.program_id);
    let (qa_id, qa_token) = user_with_token(app, "qa@acme.test", "quality", None).await;
    let member =
        s.pm.post(
            &team,
            json!({"user_id": qa_id, "governance_tier": "core_team", "program_role": "QA lead",
                            "expertise_tags": ["Quality", "microbiology", "quality"]}),
        )
        .await
        .expect(201)
        .body;
    assert_eq!(member["expertise_tags"], json!(["quality", "microbiology"]));
    assert_eq!(member["person"]["email"], "qa@acme.test", "{member}");
    s.pm.post(&team, json!({"user_id": s.cmo_admin_id, "governance_tier": "leadership", "program_role": "CMO site head"}))
        .await
        .expect(201);
    s.pm.post(
        &team,
        json!({"user_id": qa_id, "governance_tier": "leadership", "program_role": "again"}),
    )
    .await
    .expect_problem(409, "already_exists");
    // Another sponsor is invisible: the operator created it, not Acme.
    let (other_sponsor, _, _) =
        partner_org(app, "Other Sponsor", "sponsor", "boss@other.test").await;
    app.admin()
        .get(&format!("/api/v1/organizations/{other_sponsor}"))
        .await
        .expect_problem(404, "not_found");
    s.pm.post(
        &team,
        json!({"user_id": 999999, "governance_tier": "core_team", "program_role": "ghost"}),
    )
    .await
    .expect_problem(422, "validation_failed");
    s.pm.post(&team, json!({"user_id": qa_id, "governance_tier": "core_team", "program_role": "x", "expertise_tags": ["no spaces please"]}))
        .await
        .expect_problem(422, "validation_failed");

    // One list shape everywhere, and each member says who they are: a client shows names
    // and organizations without looking anyone up.
    let listed = s.cmo_admin.get(&team).await.expect(200).body;
    assert_eq!(
        (listed["total"].as_u64(), listed["limit"].as_u64()),
        (Some(2), Some(50))
    );
    let people: Vec<(String, String, String)> = listed["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            let p = &m["person"];
            (
                p["email"].as_str().unwrap().to_string(),
                p["org_name"].as_str().unwrap().to_string(),
                p["org_kind"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(
        people,
        [
            ("qa@acme.test".into(), "Acme Bio".into(), "sponsor".into()),
            ("pm@lonza.test".into(), "Lonza Visp".into(), "cmo".into()),
        ],
        "{listed}"
    );
    let second = s
        .cmo_admin
        .get(&format!("{team}?limit=1&offset=1"))
        .await
        .expect(200)
        .body;
    assert_eq!(second["items"].as_array().unwrap().len(), 1);
    assert_eq!(second["items"][0]["person"]["org_kind"], "cmo");
    s.pm.get(&format!("{team}?limit=0"))
        .await
        .expect_problem(422, "validation_failed");

    // Members set their own notification preferences, not their tier.
    let member_path = format!("/api/v1/team-members/{}", member["id"]);
    let qa = app.client(&qa_token);
    qa.patch(&member_path, json!({"version": 1, "wants_digest": false}))
        .await
        .expect(200);
    qa.patch(
        &member_path,
        json!({"version": 2, "governance_tier": "steering_committee"}),
    )
    .await
    .expect_problem(403, "forbidden");
    s.pm.delete(&member_path).await.expect(204);
    assert_eq!(s.pm.get(&team).await.body["total"], 1);
}
on_both_databases!(the_team_holds_people_of_both_sides);

async fn create_milestone(
    s: &Setup,
    name: &str,
    depends_on: &[i64],
    start: &str,
    end: &str,
) -> Value {
    s.pm.post(
        &format!("/api/v1/programs/{}/milestones", s.program_id),
        json!({"name": name, "phase": "Tech transfer", "owner_user_id": s.pm_id,
               "baseline_start": start, "baseline_end": end, "depends_on": depends_on}),
    )
    .await
    .expect(201)
    .body
}

async fn transition(client: &e2e::Client, id: i64, body: Value) -> e2e::Reply {
    client
        .post(&format!("/api/v1/milestones/{id}/transitions"), body)
        .await
}

async fn milestones_follow_their_state_machine_and_dependencies(app: &TestApp) {
    // REQ: PLAN-MILESTONE-MACHINE, API-TRANSITION-409
    let s = program_setup(app).await;
    let today = app.today_in("Europe/Zurich");
    let d = |days: i64| (today + TimeDelta::days(days)).to_string();
    let a = create_milestone(&s, "Tech transfer", &[], &d(0), &d(30)).await;
    let a_id = a["id"].as_i64().unwrap();
    assert_eq!(a["status"], "planned");
    assert_eq!(a["allowed_events"], json!(["start", "hold", "cancel"]));
    assert_eq!(a["schedule_health"], "on_track");
    let b = create_milestone(&s, "Engineering runs", &[a_id], &d(31), &d(60)).await;
    let b_id = b["id"].as_i64().unwrap();
    let c = create_milestone(&s, "GMP clinical manufacturing", &[b_id], &d(61), &d(120)).await;
    let c_id = c["id"].as_i64().unwrap();
    assert_eq!(c["depends_on"], json!([b_id]));

    // B cannot start before A completes: 409 with the state and what is allowed.
    let r = transition(&s.pm, b_id, json!({"event": "start"}))
        .await
        .expect_problem(409, "illegal_transition");
    assert!(
        r.body["detail"].as_str().unwrap().contains("Tech transfer"),
        "{}",
        r.text
    );
    assert_eq!(r.body["current_state"], "planned");
    assert_eq!(r.body["allowed_events"], json!(["start", "hold", "cancel"]));

    // A cycle is refused, naming it.
    let r =
        s.pm.patch(
            &format!("/api/v1/milestones/{a_id}"),
            json!({"version": 1, "depends_on": [c_id]}),
        )
        .await
        .expect_problem(422, "validation_failed");
    assert_eq!(r.body["errors"][0]["code"], "cycle");
    let message = r.body["errors"][0]["message"].as_str().unwrap();
    assert!(
        message.contains("Tech transfer") && message.contains("GMP clinical manufacturing"),
        "{message}"
    );

    // The CMO's PM runs A: start, then the gate review.
    let started = transition(&s.cmo_admin, a_id, json!({"event": "start"}))
        .await
        .expect(200)
        .body;
    assert_eq!(started["status"], "in_progress");
    assert_eq!(started["actual_start"], today.to_string());
    let in_review = transition(&s.cmo_admin, a_id, json!({"event": "submit_for_gate"}))
        .await
        .expect(200)
        .body;
    assert_eq!(in_review["status"], "gate_review");
    // Completion needs a go decision on the gate.
    transition(&s.pm, a_id, json!({"event": "complete"}))
        .await
        .expect_problem(409, "illegal_transition");
    // A no-go is a signed gate decision, not a plain transition.
    let r = transition(
        &s.pm,
        a_id,
        json!({"event": "no_go", "reason": "batch record gaps"}),
    )
    .await
    .expect_problem(409, "use_gate_decision");
    assert!(
        r.body["detail"]
            .as_str()
            .unwrap()
            .contains("gate-decisions")
    );
    // Completing waits for the gate's go, and the answer says so.
    assert_eq!(in_review["allowed_events"], json!(["hold", "cancel"]));
    assert_eq!(
        in_review["blocked_events"],
        json!([{"event": "complete", "reason": "the gate has no go decision"}])
    );

    // Hold and resume return to where it was; illegal events answer 409.
    let held = transition(
        &s.pm,
        a_id,
        json!({"event": "hold", "reason": "suite requalification"}),
    )
    .await
    .expect(200)
    .body;
    assert_eq!(
        (held["status"].as_str(), held["held_from"].as_str()),
        (Some("on_hold"), Some("gate_review"))
    );
    assert_eq!(held["allowed_events"], json!(["resume", "cancel"]));
    transition(&s.pm, a_id, json!({"event": "start"}))
        .await
        .expect_problem(409, "illegal_transition");
    let resumed = transition(&s.pm, a_id, json!({"event": "resume"}))
        .await
        .expect(200)
        .body;
    assert_eq!(resumed["status"], "gate_review");
    let cancelled = transition(
        &s.pm,
        c_id,
        json!({"event": "cancel", "reason": "descoped"}),
    )
    .await
    .expect(200)
    .body;
    assert_eq!(cancelled["status"], "cancelled");
    assert_eq!(cancelled["allowed_events"], json!([]));
    assert!(cancelled["schedule_health"].is_null());
    let r = transition(&s.pm, c_id, json!({"event": "resume"}))
        .await
        .expect_problem(409, "illegal_transition");
    assert_eq!(r.body["current_state"], "cancelled");

    // Stale version on a transition.
    transition(
        &s.pm,
        a_id,
        json!({"event": "submit_for_gate", "version": 1}),
    )
    .await
    .expect_problem(409, "version_conflict");

    // Every transition is audited with before and after.
    let events = app
        .client(s.pm_token())
        .get(&format!(
            "/api/v1/audit-events?entity_type=milestone&entity_id={a_id}"
        ))
        .await
        .body;
    let actions: Vec<&str> = events["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    assert_eq!(
        actions,
        ["create", "hold", "resume"],
        "the sponsor's trail holds the sponsor's acts"
    );
    let cmo_events = s
        .cmo_admin
        .get(&format!(
            "/api/v1/audit-events?entity_type=milestone&entity_id={a_id}"
        ))
        .await
        .body;
    let cmo_actions: Vec<&str> = cmo_events["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    assert_eq!(
        cmo_actions,
        ["start", "submit_for_gate"],
        "and the CMO's trail the CMO's"
    );
}
on_both_databases!(milestones_follow_their_state_machine_and_dependencies);

impl Setup {
    fn pm_token(&self) -> &str {
        self.pm.token().unwrap_or_default()
    }
}

async fn schedule_health_follows_forecast_and_today(app: &TestApp) {
    // REQ: PLAN-SCHEDULE-HEALTH
    let s = program_setup(app).await;
    let today = app.today_in("Europe/Zurich");
    let d = |days: i64| (today + TimeDelta::days(days)).to_string();
    let m = create_milestone(&s, "Stability studies", &[], &d(-1), &d(10)).await;
    let id = m["id"].as_i64().unwrap();
    let path = format!("/api/v1/milestones/{id}");
    // Planned, and its forecast start has passed: at risk.
    assert_eq!(m["schedule_health"], "at_risk");
    transition(&s.pm, id, json!({"event": "start"}))
        .await
        .expect(200);
    assert_eq!(s.pm.get(&path).await.body["schedule_health"], "on_track");
    let slipped =
        s.pm.patch(
            &path,
            json!({"version": 2, "forecast_end": d(20), "reason": "column delivery late"}),
        )
        .await
        .expect(200)
        .body;
    assert_eq!(slipped["schedule_health"], "at_risk");
    app.clock.advance(TimeDelta::days(12));
    assert_eq!(s.pm.get(&path).await.body["schedule_health"], "late");

    // Re-baselining: the sponsor's call, with a reason.
    let body = json!({"version": 3, "baseline_start": d(-1), "baseline_end": d(25), "reason": "steering committee approved"});
    s.cmo_admin
        .post(&format!("{path}/rebaseline"), body.clone())
        .await
        .expect_problem(403, "forbidden");
    let rebased =
        s.pm.post(&format!("{path}/rebaseline"), body)
            .await
            .expect(200)
            .body;
    assert_eq!(rebased["baseline_end"], d(25));
    // The new baseline covers the forecast again.
    assert_eq!(rebased["schedule_health"], "on_track");
}
on_both_databases!(schedule_health_follows_forecast_and_today);

async fn of_many_identical_transitions_exactly_one_wins(app: &TestApp) {
    let s = program_setup(app).await;
    let today = app.today_in("Europe/Zurich").to_string();
    let m = create_milestone(&s, "Batch records", &[], &today, &today).await;
    let id = m["id"].as_i64().unwrap();
    let attempts: Vec<_> = (0..20)
        .map(|_| transition(&s.pm, id, json!({"event": "start"})))
        .collect();
    let replies = futures_util::future::join_all(attempts).await;
    let wins = replies.iter().filter(|r| r.status == 200).count();
    let conflicts = replies.iter().filter(|r| r.status == 409).count();
    assert_eq!((wins, conflicts), (1, 19));
    let starts =
        s.pm.get(&format!(
            "/api/v1/audit-events?entity_type=milestone&entity_id={id}&action=start"
        ))
        .await
        .body;
    assert_eq!(starts["total"], 1);
}
on_both_databases!(of_many_identical_transitions_exactly_one_wins);

async fn milestones_of_other_programs_are_invisible(app: &TestApp) {
    let s = program_setup(app).await;
    let today = app.today_in("Europe/Zurich").to_string();
    let m = create_milestone(&s, "PPQ runs", &[], &today, &today).await;
    let id = m["id"].as_i64().unwrap();
    let (_, _, other) = partner_org(app, "Other Sponsor", "sponsor", "boss@other.test").await;
    let other = app.client(&other);
    other
        .get(&format!("/api/v1/milestones/{id}"))
        .await
        .expect_problem(404, "not_found");
    transition(&other, id, json!({"event": "start"}))
        .await
        .expect_problem(404, "not_found");
    other
        .get(&format!("/api/v1/programs/{}/milestones", s.program_id))
        .await
        .expect_problem(404, "not_found");
    // A CMO of the same sponsor that is not on this program sees nothing of it either.
    let (_, _, other_cmo) = partner_org(app, "Samsung Biologics", "cmo", "pm@samsung.test").await;
    let other_cmo = app.client(&other_cmo);
    other_cmo
        .get(&format!("/api/v1/programs/{}", s.program_id))
        .await
        .expect_problem(404, "not_found");
    other_cmo
        .get(&format!("/api/v1/milestones/{id}"))
        .await
        .expect_problem(404, "not_found");
    other_cmo
        .get(&format!("/api/v1/milestones/{id}/gate"))
        .await
        .expect_problem(404, "not_found");
    assert_eq!(other_cmo.get("/api/v1/programs").await.body["total"], 0);
    assert_eq!(other_cmo.get("/api/v1/action-items").await.body["total"], 0);

    // A viewer on the sponsor side sees the plan but gets no events to send.
    let (_, viewer) = user_with_token(app, "viewer@acme.test", "viewer", None).await;
    let seen = app
        .client(&viewer)
        .get(&format!("/api/v1/milestones/{id}"))
        .await
        .expect(200)
        .body;
    assert_eq!(seen["allowed_events"], json!([]));
    transition(&app.client(&viewer), id, json!({"event": "start"}))
        .await
        .expect_problem(403, "forbidden");
    // Dependencies must be milestones of the same program.
    s.pm.post(
        &format!("/api/v1/programs/{}/milestones", s.program_id),
        json!({"name": "X", "phase": "Y", "baseline_start": today, "baseline_end": today, "depends_on": [999999]}),
    )
    .await
    .expect_problem(422, "validation_failed");
    s.pm.post(
        &format!("/api/v1/programs/{}/milestones", s.program_id),
        json!({"name": "X", "phase": "Y", "baseline_start": "2027-05-02", "baseline_end": "2027-05-01"}),
    )
    .await
    .expect_problem(422, "validation_failed");
}
on_both_databases!(milestones_of_other_programs_are_invisible);
