//! Ending a connection between a sponsor and a CMO: refused while work is open between
//! them (and the refusal names it), then ended by either side's admin with a reason. The
//! sponsor keeps its programs; the CMO's people leave them and see nothing of them any
//! more; the other side's admins are emailed a link to a page; the sponsor may invite the
//! CMO again.

use e2e::{TestApp, on_both_databases};
use entity::{audit_event, outbox};
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, QueryOrder};
use serde_json::{Value, json};

use crate::OWN_PASSWORD;
use crate::programs::program_setup;

async fn newest_email_to(app: &TestApp, to: &str) -> outbox::Model {
    let address = json!([to]).to_string();
    outbox::Entity::find()
        .filter(outbox::Column::ToAddrs.eq(address))
        .order_by_desc(outbox::Column::Id)
        .one(&app.db)
        .await
        .unwrap()
        .unwrap_or_else(|| panic!("no email to {to}"))
}

async fn a_connection_ends_once_no_work_is_open_and_the_programs_stay_with_the_sponsor(
    app: &TestApp,
) {
    // REQ: PART-CONNECTION-END, TEN-404, EMAIL-LINKS-PAGES
    let s = program_setup(app).await;
    let program = format!("/api/v1/programs/{}", s.program_id);
    let me = s.cmo_admin.get("/api/v1/me").await.expect(200).body;
    let lonza = me["user"]["org_id"].as_i64().unwrap();
    let sponsor_admin = app.admin();
    // Petra of Lonza is on the program's team and owns an open action item.
    s.cmo_admin
        .post(
            "/api/v1/invitations",
            json!({"email": "petra@lonza.test", "display_name": "Petra Lonza", "role": "program_manager"}),
        )
        .await
        .expect(201);
    let petra_id = app
        .accept_invitation("petra@lonza.test", OWN_PASSWORD)
        .await;
    let petra = app.client(&app.own_token("petra@lonza.test", OWN_PASSWORD).await);
    sponsor_admin
        .post(
            &format!("{program}/team"),
            json!({"user_id": petra_id, "governance_tier": "core_team", "program_role": "CMO PM"}),
        )
        .await
        .expect(201);
    let item =
        s.pm.post(
            &format!("{program}/action-items"),
            json!({"title": "Book the fill slot", "owner_user_id": petra_id,
                   "due_date": app.today_in("Europe/Zurich")}),
        )
        .await
        .expect(201)
        .body;
    let connection = sponsor_admin
        .get("/api/v1/cmo-connections?connection=connected")
        .await
        .expect(200)
        .body["items"][0]
        .clone();
    assert_eq!(connection["cmo_org_id"], lonza, "{connection}");
    let id = connection["id"].as_i64().unwrap();
    let path = format!("/api/v1/cmo-connections/{id}");
    let events = format!("{path}/events");

    // Offered, but blocked by the open work, which the refusal names.
    let seen = s.cmo_admin.get(&path).await.expect(200).body;
    assert_eq!(seen["allowed_events"], json!([]), "{seen}");
    let blocked = seen["blocked_events"][0].clone();
    assert_eq!(blocked["event"], "end", "{seen}");
    let named = format!(
        "action item #{} Book the fill slot (ACM-101 clinical supply)",
        item["id"]
    );
    assert!(
        blocked["reason"].as_str().unwrap().contains(&named),
        "{seen}"
    );
    s.cmo_admin
        .post(&events, json!({"event": "end"}))
        .await
        .expect_problem(422, "validation_failed");
    let refused = s
        .cmo_admin
        .post(&events, json!({"event": "end", "message": "Capacity gone"}))
        .await
        .expect_problem(409, "open_work")
        .body;
    assert!(
        refused["detail"].as_str().unwrap().contains(&named),
        "{refused}"
    );
    // Connections are their admins' business.
    s.pm.post(&events, json!({"event": "end", "message": "x"}))
        .await
        .expect_problem(403, "forbidden");

    // Petra finished another item; the open one is cancelled; Lonza's admin ends the
    // connection.
    let finished =
        s.pm.post(
            &format!("{program}/action-items"),
            json!({"title": "Send the fill slot plan", "owner_user_id": petra_id,
                   "due_date": app.today_in("Europe/Zurich")}),
        )
        .await
        .expect(201)
        .body;
    petra
        .post(
            &format!("/api/v1/action-items/{}/transitions", finished["id"]),
            json!({"event": "complete"}),
        )
        .await
        .expect(200);
    s.pm.post(
        &format!("/api/v1/action-items/{}/transitions", item["id"]),
        json!({"event": "cancel", "reason": "Fill-finish moves in-house", "version": item["version"]}),
    )
    .await
    .expect(200);
    let cmo_feed_before = s.cmo_admin.get("/api/v1/events").await.expect(200).body["next_after"]
        .as_i64()
        .unwrap();
    let ended = s
        .cmo_admin
        .post(
            &events,
            json!({"event": "end", "message": "  Our Visp fill line closes in 2027.  "}),
        )
        .await
        .expect(200)
        .body;
    assert_eq!(ended["connection"], "ended", "{ended}");
    assert_eq!(ended["end_reason"], "Our Visp fill line closes in 2027.");
    assert_eq!(ended["ended_by"], "Partner Admin (Lonza Visp)");
    assert_eq!(
        ended["allowed_events"],
        json!([]),
        "the sponsor invites again"
    );
    let sponsors_side = sponsor_admin.get(&path).await.expect(200).body;
    assert_eq!(sponsors_side["allowed_events"], json!(["invite"]));
    assert_eq!(sponsors_side["qualification_status"], "qualified");

    // Acme's admins hear of it, with a link to a page (never the API).
    let told = newest_email_to(app, "admin@acme.test").await;
    assert!(
        told.subject
            .contains("Lonza Visp ended the connection with Acme"),
        "{}",
        told.subject
    );
    assert!(
        told.text_body
            .contains("Our Visp fill line closes in 2027.")
    );
    assert!(
        told.text_body
            .contains(&format!("{}/cmo-connections/{id}/answer", app.base_url)),
        "{}",
        told.text_body
    );
    assert!(!told.text_body.contains("/api/"), "{}", told.text_body);

    // The program stays with Acme; Lonza's people no longer see it.
    s.pm.get(&program).await.expect(200);
    for cmo_person in [&s.cmo_admin, &petra] {
        cmo_person
            .get(&program)
            .await
            .expect_problem(404, "not_found");
        let listed = cmo_person.get("/api/v1/programs").await.expect(200).body;
        assert_eq!(listed["total"], 0, "{listed}");
        cmo_person
            .get(&format!("{program}/milestones"))
            .await
            .expect_problem(404, "not_found");
    }
    let team = s.pm.get(&format!("{program}/team")).await.expect(200).body;
    assert!(
        !team.to_string().contains("lonza.test"),
        "Lonza's people left the team: {team}"
    );
    let removal = audit_event::Entity::find()
        .filter(audit_event::Column::EntityType.eq("team_member"))
        .filter(audit_event::Column::Action.eq("remove"))
        .one(&app.db)
        .await
        .unwrap()
        .expect("the removal is audited");
    assert_ne!(removal.org_id, lonza, "in the sponsor's trail");
    assert!(
        removal
            .reason
            .unwrap()
            .contains("connection with the CMO ended")
    );
    // What happens on the program from now on is Acme's alone.
    s.pm.post(
        &format!("{program}/action-items"),
        json!({"title": "In-house fill trial", "owner_user_id": s.pm_id,
               "due_date": app.today_in("Europe/Zurich")}),
    )
    .await
    .expect(201);
    let cmo_feed = s
        .cmo_admin
        .get(&format!("/api/v1/events?after={cmo_feed_before}"))
        .await
        .expect(200)
        .body;
    let types: Vec<&Value> = cmo_feed["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| &e["type"])
        .collect();
    assert_eq!(types, vec![&json!("cmo.connection_changed")], "{cmo_feed}");
    assert_eq!(cmo_feed["items"][0]["payload"]["event"], "end");
    let sponsor_feed =
        s.pm.get("/api/v1/events?types=action_item.assigned")
            .await
            .expect(200)
            .body;
    assert!(
        sponsor_feed.to_string().contains("In-house fill trial"),
        "{sponsor_feed}"
    );
    // No new program with Lonza, nor Lonza's people on Acme's, until it is connected
    // again; Acme keeps its own side (qualification, agreements, notes).
    s.pm.post(
        "/api/v1/programs",
        json!({"name": "ACM-102", "product_name": "ACM-102", "cmo_org_id": lonza,
               "modality": "biologic", "stage": "clinical", "time_zone": "Europe/Zurich"}),
    )
    .await
    .expect_problem(422, "validation_failed");
    sponsor_admin
        .post(
            &format!("{program}/team"),
            json!({"user_id": petra_id, "governance_tier": "core_team", "program_role": "CMO PM"}),
        )
        .await
        .expect_problem(422, "validation_failed");
    s.pm.post(
        &format!("{program}/action-items"),
        json!({"title": "Send the batch records", "owner_user_id": petra_id,
               "due_date": app.today_in("Europe/Zurich")}),
    )
    .await
    .expect_problem(422, "validation_failed");
    // Petra's finished item is not reopened to remind someone who cannot see it.
    s.pm.post(
        &format!("/api/v1/action-items/{}/transitions", finished["id"]),
        json!({"event": "reopen", "reason": "The plan needs a second slot"}),
    )
    .await
    .expect_problem(409, "owner_off_program");
    let profile = sponsor_admin
        .get(&format!("/api/v1/cmos/{lonza}"))
        .await
        .expect(200)
        .body;
    assert_eq!(profile["qualification_status"], "qualified", "{profile}");
    sponsor_admin
        .get(&format!("/api/v1/cmos/{lonza}/quality-agreements"))
        .await
        .expect(200);
    // Lonza's own scorecard no longer counts Acme's program.
    let scorecard = s
        .cmo_admin
        .get(&format!("/api/v1/cmos/{lonza}/scorecard"))
        .await
        .expect(200)
        .body;
    assert_eq!(scorecard["programs"], 0, "{scorecard}");

    // Invited again and accepted: Lonza sees the program (and its history) again; the
    // team is the sponsor's to fill again.
    let again = sponsor_admin
        .post(
            "/api/v1/cmo-connections",
            json!({"cmo_org_id": lonza, "message": "Your new line is qualified"}),
        )
        .await
        .expect(200)
        .body;
    assert_eq!(
        (again["id"].as_i64(), &again["connection"]),
        (Some(id), &json!("invited"))
    );
    assert_eq!(again["end_reason"], Value::Null);
    let version = again["version"].clone();
    s.cmo_admin
        .post(&events, json!({"event": "accept", "version": version}))
        .await
        .expect(200);
    s.cmo_admin.get(&program).await.expect(200);
    assert_eq!(
        petra.get("/api/v1/programs").await.expect(200).body["total"],
        1
    );

    // The sponsor's admin ends it this time: Lonza's admin is told and the link opens a
    // page that says so.
    sponsor_admin
        .post(
            &events,
            json!({"event": "end", "message": "Program ACM-101 is complete."}),
        )
        .await
        .expect(200);
    let link = crate::partner_pages::emailed(app, "pm@lonza.test", "/cmo-connections/").await;
    let session = app.browser_session("pm@lonza.test", OWN_PASSWORD).await;
    let shown = app
        .page(link.trim_start_matches(&app.base_url), Some(&session))
        .await
        .expect(200);
    assert!(
        shown
            .text
            .contains("Acme Bio and Lonza Visp no longer work together"),
        "{}",
        shown.text
    );
    assert!(
        shown.text.contains("Program ACM-101 is complete."),
        "{}",
        shown.text
    );
    assert!(shown.text.contains("nothing to accept"), "{}", shown.text);
}
on_both_databases!(a_connection_ends_once_no_work_is_open_and_the_programs_stay_with_the_sponsor);
