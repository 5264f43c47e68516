//! One CMO, many sponsors: two sponsors connected to one CMO, a CMO project manager who
//! works on both with one token, and neither sponsor seeing anything of the other.

use chrono::{TimeDelta, TimeZone, Utc};
use e2e::{TestApp, on_both_databases};
use entity::outbox;
use sea_orm::{EntityTrait, QueryOrder};
use serde_json::{Value, json};
use worker::jobs::reminders::{ReminderSettings, overdue_reminders};

use crate::programs::program_setup;
use crate::{OWN_PASSWORD, partner_org, user_with_token};

/// What sponsor A keeps about Lonza and must never reach sponsor B.
const A_NOTES: &str = "Acme-only: Lonza is our fallback for lyo";
const A_AGREEMENT: &str = "QA-AGR-ACME-LONZA-007";

fn assert_nothing_of_a(what: &str, body: &Value) {
    let text = body.to_string();
    for marker in [
        "Acme Bio",
        A_NOTES,
        A_AGREEMENT,
        "ACM-101",
        "pm@acme.test",
        "audit passed",
    ] {
        assert!(
            !text.contains(marker),
            "{what} shows {marker:?} to B: {text}"
        );
    }
}

async fn two_sponsors_share_one_cmo_and_see_nothing_of_each_other(app: &TestApp) {
    // REQ: PART-NETWORK
    let a = program_setup(app).await;
    let admin_a = app.admin();
    let a_program = admin_a
        .get(&format!("/api/v1/programs/{}", a.program_id))
        .await
        .expect(200)
        .body;
    let lonza = a_program["cmo_org_id"].as_i64().unwrap();
    // Sponsor A's side: its notes, an agreement, a reason on its qualification.
    let (_, qa_a) = user_with_token(app, "qa@acme.test", "quality", None).await;
    let qa_a = app.client(&qa_a);
    let cmo_a = admin_a
        .get(&format!("/api/v1/cmos/{lonza}"))
        .await
        .expect(200)
        .body;
    qa_a.put(
        &format!("/api/v1/cmos/{lonza}/sponsor-notes"),
        json!({"sponsor_notes": A_NOTES, "version": cmo_a["qualification_version"]}),
    )
    .await
    .expect(200);
    qa_a.post(
        &format!("/api/v1/cmos/{lonza}/qualification"),
        json!({"event": "probation", "reason": "audit passed with a major finding"}),
    )
    .await
    .expect(200);
    qa_a.post(
        &format!("/api/v1/cmos/{lonza}/qualification"),
        json!({"event": "reinstate", "reason": "audit passed: CAPA effective"}),
    )
    .await
    .expect(200);
    qa_a.post(
        &format!("/api/v1/cmos/{lonza}/quality-agreements"),
        json!({"version_label": "v7", "effective_on": "2026-01-01", "expires_on": "2028-01-01",
               "responsibilities": "Acme releases", "document_ref": A_AGREEMENT}),
    )
    .await
    .expect(201);
    // The CMO keeps its own facts, once.
    a.cmo_admin
        .post(
            &format!("/api/v1/cmos/{lonza}/sites"),
            json!({"name": "Visp Ibex", "country": "CH", "region": "other_europe"}),
        )
        .await
        .expect(201);

    // Sponsor B arrives. Registering a copy of Lonza is refused; the directory finds it
    // without saying who works with it.
    let (_, _, beta_admin) = partner_org(app, "Beta Biologics", "sponsor", "boss@beta.test").await;
    let admin_b = app.client(&beta_admin);
    let copy = admin_b
        .post(
            "/api/v1/organizations",
            json!({"name": "Lonza Visp", "kind": "cmo", "admin": {"email": "x@lonza.test", "display_name": "X"}}),
        )
        .await
        .expect_problem(409, "cmo_exists")
        .body;
    assert_nothing_of_a("the refused registration", &copy);
    let found = admin_b
        .get("/api/v1/cmo-directory?name=LONZA")
        .await
        .expect(200)
        .body;
    assert_eq!(found["items"][0]["org_id"], lonza, "{found}");
    assert_eq!(found["items"][0]["your_connection"], Value::Null);
    assert_nothing_of_a("the directory", &found);
    admin_b
        .get("/api/v1/cmo-directory?name=lo")
        .await
        .expect_problem(422, "validation_failed");
    // Not connected yet: Lonza's profile is not B's to read.
    admin_b
        .get(&format!("/api/v1/cmos/{lonza}"))
        .await
        .expect_problem(404, "not_found");
    let invited = admin_b
        .post(
            "/api/v1/cmo-connections",
            json!({"cmo_org_id": lonza, "message": "BX-2 fill-finish?"}),
        )
        .await
        .expect(201)
        .body;
    assert_eq!(invited["connection"], "invited");
    assert_eq!(invited["allowed_events"], json!(["withdraw"]));
    admin_b
        .post("/api/v1/cmo-connections", json!({"cmo_org_id": lonza}))
        .await
        .expect_problem(409, "already_connected");
    let email = outbox::Entity::find()
        .order_by_desc(outbox::Column::Id)
        .one(&app.db)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(email.to_addrs, json!(["pm@lonza.test"]).to_string());
    assert!(email.subject.contains("Beta Biologics invites Lonza Visp"));
    assert!(email.text_body.contains("BX-2 fill-finish?"));
    assert!(!email.text_body.contains("Acme"), "{}", email.text_body);

    // Lonza's admin answers; B cannot answer for it, nor A see B's invitation.
    let connection = invited["id"].as_i64().unwrap();
    let events = format!("/api/v1/cmo-connections/{connection}/events");
    admin_b
        .post(&events, json!({"event": "accept"}))
        .await
        .expect_problem(403, "forbidden");
    admin_a
        .get(&format!("/api/v1/cmo-connections/{connection}"))
        .await
        .expect_problem(404, "not_found");
    // B withdraws and invites again: the CMO's admins hear of it again, the same
    // connection goes back to invited.
    let lonza_address = json!(["pm@lonza.test"]).to_string();
    let emails_to_lonza = || async {
        outbox::Entity::find()
            .all(&app.db)
            .await
            .unwrap()
            .into_iter()
            .filter(|e| e.to_addrs == lonza_address)
            .count()
    };
    let before = emails_to_lonza().await;
    admin_b
        .post(&events, json!({"event": "withdraw"}))
        .await
        .expect(200);
    let again = admin_b
        .post(
            "/api/v1/cmo-connections",
            json!({"cmo_org_id": lonza, "message": "BX-2, again"}),
        )
        .await
        .expect(200)
        .body;
    assert_eq!(
        (again["id"].as_i64(), &again["connection"]),
        (Some(connection), &json!("invited"))
    );
    assert_eq!(
        emails_to_lonza().await,
        before + 1,
        "the invitation sent again is emailed"
    );
    let waiting = a
        .cmo_admin
        .get("/api/v1/cmo-connections?connection=invited")
        .await
        .expect(200)
        .body;
    assert_eq!(waiting["total"], 1);
    assert_eq!(waiting["items"][0]["sponsor_name"], "Beta Biologics");
    let accepted = a
        .cmo_admin
        .post(&events, json!({"event": "accept"}))
        .await
        .expect(200)
        .body;
    assert_eq!(accepted["connection"], "connected");
    // Each step is a `cmo.connection_changed` event for B and the CMO, never for A.
    let steps = |feed: &Value| -> Vec<(String, String)> {
        feed["items"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|e| e["payload"]["connection_id"] == connection)
            .map(|e| {
                (
                    e["payload"]["event"].as_str().unwrap().to_string(),
                    e["payload"]["to"].as_str().unwrap().to_string(),
                )
            })
            .collect()
    };
    let expected: Vec<(String, String)> = [
        ("invite", "invited"),
        ("withdraw", "withdrawn"),
        ("invite", "invited"),
        ("accept", "connected"),
    ]
    .iter()
    .map(|(e, t)| (e.to_string(), t.to_string()))
    .collect();
    let changed = "/api/v1/events?types=cmo.connection_changed";
    assert_eq!(
        steps(&admin_b.get(changed).await.expect(200).body),
        expected
    );
    assert_eq!(
        steps(&a.cmo_admin.get(changed).await.expect(200).body),
        expected
    );
    assert!(steps(&admin_a.get(changed).await.expect(200).body).is_empty());
    // The CMO sees both of its sponsors; each sponsor sees only itself and the CMO.
    let lonza_sees = a
        .cmo_admin
        .get("/api/v1/organizations")
        .await
        .expect(200)
        .body;
    assert_eq!(lonza_sees["total"], 3, "{lonza_sees}");
    let b_sees = admin_b.get("/api/v1/organizations").await.expect(200).body;
    assert_eq!(b_sees["total"], 2);
    assert_nothing_of_a("B's organizations", &b_sees);
    let lonza_org = admin_b
        .get(&format!("/api/v1/organizations/{lonza}"))
        .await
        .expect(200)
        .body;
    assert_eq!(lonza_org["parent_org_id"], Value::Null, "who registered it");

    // B reads the CMO's facts, its own (empty) side, and nothing of A's.
    let cmo_b = admin_b
        .get(&format!("/api/v1/cmos/{lonza}"))
        .await
        .expect(200)
        .body;
    assert_eq!(cmo_b["sites"][0]["name"], "Visp Ibex");
    assert_eq!(cmo_b["qualification_status"], "prospect");
    assert_eq!(cmo_b["sponsor_notes"], Value::Null);
    assert_nothing_of_a("B's profile of Lonza", &cmo_b);
    for path in ["quality-agreements", "scorecard", "inspections"] {
        let body = admin_b
            .get(&format!("/api/v1/cmos/{lonza}/{path}"))
            .await
            .expect(200)
            .body;
        assert_nothing_of_a(path, &body);
    }
    let listed = admin_b.get("/api/v1/cmos").await.expect(200).body;
    assert_eq!(listed["total"], 1);
    assert_nothing_of_a("B's CMO list", &listed);
    // A still reads its own side as it left it.
    let cmo_a = admin_a
        .get(&format!("/api/v1/cmos/{lonza}"))
        .await
        .expect(200)
        .body;
    assert_eq!(cmo_a["qualification_status"], "qualified");
    assert_eq!(cmo_a["sponsor_notes"], A_NOTES);

    // B qualifies Lonza on its own and starts a program with it.
    for event in ["start_evaluation", "qualify"] {
        admin_b
            .post(
                &format!("/api/v1/cmos/{lonza}/qualification"),
                json!({"event": event}),
            )
            .await
            .expect(200);
    }
    let b_program = admin_b
        .post(
            "/api/v1/programs",
            json!({"name": "BX-2 fill-finish", "product_name": "BX-2", "cmo_org_id": lonza,
                   "modality": "biologic", "stage": "clinical", "time_zone": "Europe/Zurich"}),
        )
        .await
        .expect(201)
        .body;
    let b_program_id = b_program["id"].as_i64().unwrap();
    let b_programs = admin_b.get("/api/v1/programs").await.expect(200).body;
    assert_eq!(b_programs["total"], 1);
    assert_nothing_of_a("B's programs", &b_programs);
    let b_events = admin_b.get("/api/v1/events").await.expect(200).body;
    assert_nothing_of_a("B's event feed", &b_events);

    // One account for Lonza's project manager, on both sponsors' programs.
    a.cmo_admin
        .post(
            "/api/v1/invitations",
            json!({"email": "pm2@lonza.test", "display_name": "Luca Lonza", "role": "program_manager",
                   "time_zone": "Europe/Zurich"}),
        )
        .await
        .expect(201);
    let luca_id = app.accept_invitation("pm2@lonza.test", OWN_PASSWORD).await;
    let luca = app.client(&app.own_token("pm2@lonza.test", OWN_PASSWORD).await);
    let mine = luca.get("/api/v1/programs").await.expect(200).body;
    assert_eq!(mine["total"], 2, "{mine}");
    let today = app.today_in("Europe/Zurich");
    for (program, title) in [
        (a.program_id, "Acme: send the APS report"),
        (b_program_id, "Beta: book the fill slot"),
    ] {
        luca.post(
            &format!("/api/v1/programs/{program}/deviations"),
            json!({"title": format!("{title} deviation"), "description": "d", "detected_at": app.now(),
                   "criticality": "minor", "category": "documentation"}),
        )
        .await
        .expect(201);
        luca.post(
            &format!("/api/v1/programs/{program}/action-items"),
            json!({"title": title, "owner_user_id": luca_id, "due_date": today - TimeDelta::days(3)}),
        )
        .await
        .expect(201);
    }
    let deviations = luca.get("/api/v1/deviations").await.expect(200).body;
    assert_eq!(deviations["total"], 2);
    // One commit-ordered stream over both sponsors' programs.
    let feed = luca.get("/api/v1/events").await.expect(200).body;
    let cursors: Vec<i64> = feed["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["cursor"].as_i64().unwrap())
        .collect();
    assert!(cursors.windows(2).all(|w| w[0] < w[1]), "{cursors:?}");
    let programs: std::collections::BTreeSet<i64> = feed["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e["program_id"].as_i64())
        .collect();
    assert_eq!(
        programs,
        [a.program_id, b_program_id].into_iter().collect(),
        "{feed}"
    );
    // B's people see B's deviation only.
    let b_deviations = admin_b.get("/api/v1/deviations").await.expect(200).body;
    assert_eq!(b_deviations["total"], 1);
    assert_nothing_of_a("B's deviations", &b_deviations);

    // The reminder: one email, a group per sponsor, nothing else of either.
    let zurich: chrono_tz::Tz = "Europe/Zurich".parse().unwrap();
    let mut day = today;
    while chrono::Datelike::weekday(&day).num_days_from_monday() > 4 {
        day = day.succ_opt().unwrap();
    }
    let at = zurich
        .from_local_datetime(&day.and_hms_opt(8, 0, 1).unwrap())
        .single()
        .unwrap()
        .with_timezone(&Utc);
    let at = if at <= app.now() {
        // Today's 08:00 passed: the next working day's.
        let mut next = day.succ_opt().unwrap();
        while chrono::Datelike::weekday(&next).num_days_from_monday() > 4 {
            next = next.succ_opt().unwrap();
        }
        zurich
            .from_local_datetime(&next.and_hms_opt(8, 0, 1).unwrap())
            .single()
            .unwrap()
            .with_timezone(&Utc)
    } else {
        at
    };
    overdue_reminders(&app.job_context("w1"), at, &ReminderSettings::default())
        .await
        .unwrap();
    let luca_address = json!(["pm2@lonza.test"]).to_string();
    let to_luca: Vec<outbox::Model> = outbox::Entity::find()
        .all(&app.db)
        .await
        .unwrap()
        .into_iter()
        .filter(|e| e.to_addrs == luca_address)
        .filter(|e| e.dedupe_key.starts_with("reminder:"))
        .collect();
    assert_eq!(to_luca.len(), 1, "one reminder for both sponsors");
    let body = &to_luca[0].text_body;
    let acme = body.find("For Acme Bio:").expect(body);
    let beta_at = body.find("For Beta Biologics:").expect(body);
    let (acme_group, beta_group) = if acme < beta_at {
        (&body[acme..beta_at], &body[beta_at..])
    } else {
        (&body[acme..], &body[beta_at..acme])
    };
    assert!(acme_group.contains("Acme: send the APS report") && !acme_group.contains("Beta:"));
    assert!(beta_group.contains("Beta: book the fill slot") && !beta_group.contains("Acme:"));
}
on_both_databases!(two_sponsors_share_one_cmo_and_see_nothing_of_each_other);
