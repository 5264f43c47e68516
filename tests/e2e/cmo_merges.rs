//! Duplicates from before the partner network: Beta registered its own copy of Lonza
//! ("Lonza Visp (Beta)") with its own people, program, agreement and site. The copy's
//! admin proposes merging it into Lonza Visp, Lonza's admin accepts, and everything moves:
//! Beta's relationship with its qualification, its program, its agreement, the copy's
//! people (one of whom had an account on both: that one keeps Lonza's, and its work
//! follows), and the copy's audit trail stays readable by Lonza under its own id.

use e2e::{TestApp, on_both_databases};
use entity::outbox;
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, QueryOrder};
use serde_json::{Value, json};

use crate::programs::program_setup;
use crate::{OWN_PASSWORD, partner_org};

async fn a_duplicate_cmo_is_merged_into_the_one_that_stays(app: &TestApp) {
    // REQ: PART-MERGE
    let a = program_setup(app).await;
    let admin_a = app.admin();
    let lonza = admin_a
        .get(&format!("/api/v1/programs/{}", a.program_id))
        .await
        .expect(200)
        .body["cmo_org_id"]
        .as_i64()
        .unwrap();

    // Beta registered its own copy of Lonza before the network, with its own people.
    let (_, _, beta_admin) = partner_org(app, "Beta Biologics", "sponsor", "boss@beta.test").await;
    let admin_b = app.client(&beta_admin);
    let copy = admin_b
        .post(
            "/api/v1/organizations",
            json!({"name": "Lonza Visp (Beta)", "kind": "cmo",
                   "admin": {"email": "qc@lonza.test", "display_name": "Quentin Copy"}}),
        )
        .await
        .expect(201)
        .body["organization"]["id"]
        .as_i64()
        .unwrap();
    app.accept_invitation("qc@lonza.test", OWN_PASSWORD).await;
    let quentin = app.client(&app.own_token("qc@lonza.test", OWN_PASSWORD).await);
    // Lonza's admin (pm@lonza.test) has a second account in the copy, same email.
    quentin
        .post(
            "/api/v1/invitations",
            json!({"email": "pm@lonza.test", "display_name": "Petra (Beta copy)", "role": "program_manager"}),
        )
        .await
        .expect(201);
    let petra_copy = app.accept_invitation("pm@lonza.test", OWN_PASSWORD).await;
    for event in ["start_evaluation", "qualify"] {
        admin_b
            .post(
                &format!("/api/v1/cmos/{copy}/qualification"),
                json!({"event": event}),
            )
            .await
            .expect(200);
    }
    let bx2 = admin_b
        .post(
            "/api/v1/programs",
            json!({"name": "BX-2 fill-finish", "product_name": "BX-2", "cmo_org_id": copy,
                   "modality": "biologic", "stage": "clinical", "time_zone": "Europe/Zurich"}),
        )
        .await
        .expect(201)
        .body["id"]
        .as_i64()
        .unwrap();
    admin_b
        .post(
            &format!("/api/v1/programs/{bx2}/team"),
            json!({"user_id": petra_copy, "governance_tier": "core_team", "program_role": "CMO PM"}),
        )
        .await
        .expect(201);
    let item = admin_b
        .post(
            &format!("/api/v1/programs/{bx2}/action-items"),
            json!({"title": "Book the fill slot", "owner_user_id": petra_copy,
                   "due_date": app.today_in("Europe/Zurich")}),
        )
        .await
        .expect(201)
        .body["id"]
        .as_i64()
        .unwrap();
    admin_b
        .post(
            &format!("/api/v1/cmos/{copy}/quality-agreements"),
            json!({"version_label": "v1", "effective_on": "2026-01-01", "expires_on": "2028-01-01",
                   "responsibilities": "Beta releases", "document_ref": "QA-AGR-BETA-001"}),
        )
        .await
        .expect(201);
    quentin
        .post(
            &format!("/api/v1/cmos/{copy}/sites"),
            json!({"name": "Visp Bau 2", "country": "CH", "region": "other_europe"}),
        )
        .await
        .expect(201);

    // Quentin finds Lonza (CMO admins may search the directory) and proposes.
    let found = quentin
        .get("/api/v1/cmo-directory?name=lonza%20visp")
        .await
        .expect(200)
        .body;
    assert_eq!(found["total"], 2, "{found}");
    let propose = json!({"absorbed_org_id": copy, "survivor_org_id": lonza,
                         "reason": "One profile for all our sponsors"});
    // Beta may not propose for a copy whose people have joined; Acme names nothing of it.
    admin_b
        .post("/api/v1/cmo-merges", propose.clone())
        .await
        .expect_problem(403, "forbidden");
    admin_a
        .post("/api/v1/cmo-merges", propose.clone())
        .await
        .expect_problem(404, "not_found");
    quentin
        .post(
            "/api/v1/cmo-merges",
            json!({"absorbed_org_id": copy, "survivor_org_id": copy, "reason": "x"}),
        )
        .await
        .expect_problem(422, "validation_failed");
    // A sponsor with a live relationship with both chooses which holds before the merge
    // can be accepted (merge_choices::): Acme invites the copy too, and is asked. Once
    // Acme withdraws, its withdrawn invitation gives way. The proposer is not told.
    let acme_invite = admin_a
        .post("/api/v1/cmo-connections", json!({"cmo_org_id": copy}))
        .await
        .expect(201)
        .body["id"]
        .as_i64()
        .unwrap();
    let merge = quentin
        .post("/api/v1/cmo-merges", propose.clone())
        .await
        .expect(201)
        .body;
    assert_eq!(merge["status"], "proposed");
    assert_eq!(merge["allowed_events"], json!(["withdraw"]), "{merge}");
    assert!(!merge.to_string().contains("Acme"), "{merge}");
    let asked = crate::partner_pages::emailed(app, "admin@acme.test", "/cmo-merges/").await;
    assert!(
        asked.ends_with(&format!("/cmo-merges/{}/choice", merge["id"])),
        "{asked}"
    );
    quentin
        .post("/api/v1/cmo-merges", propose.clone())
        .await
        .expect_problem(409, "merge_pending");
    admin_a
        .post(
            &format!("/api/v1/cmo-connections/{acme_invite}/events"),
            json!({"event": "withdraw"}),
        )
        .await
        .expect(200);
    let id = merge["id"].as_i64().unwrap();
    let path = format!("/api/v1/cmo-merges/{id}");
    let email = outbox::Entity::find()
        .filter(outbox::Column::ToAddrs.eq(json!(["pm@lonza.test"]).to_string()))
        .order_by_desc(outbox::Column::Id)
        .one(&app.db)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(email.to_addrs, json!(["pm@lonza.test"]).to_string());
    assert_eq!(email.subject, "Merge Lonza Visp (Beta) into Lonza Visp?");
    assert!(
        email
            .text_body
            .contains(&format!("/api/v1/cmo-merges/{id}/events"))
    );
    // Neither sponsor is party to it; the proposer cannot accept for Lonza.
    for other in [&admin_a, &admin_b] {
        other.get(&path).await.expect_problem(404, "not_found");
    }
    quentin
        .post(&format!("{path}/events"), json!({"event": "accept"}))
        .await
        .expect_problem(403, "forbidden");
    let waiting = a.cmo_admin.get(&path).await.expect(200).body;
    assert_eq!(waiting["allowed_events"], json!(["accept", "decline"]));

    let merged = a
        .cmo_admin
        .post(
            &format!("{path}/events"),
            json!({"event": "accept", "version": 1, "note": "Welcome, Beta"}),
        )
        .await
        .expect(200)
        .body;
    assert_eq!(merged["status"], "merged");
    assert_eq!(
        merged["moved"],
        json!({"people": 1, "duplicate_accounts_deactivated": 1, "relationships": 1,
               "programs": 1, "quality_agreements": 1, "sites": 1, "inspections": 0,
               "webhooks": 0, "feed_events": merged["moved"]["feed_events"],
               "invitations_revoked": 0}),
        "{merged}"
    );
    assert!(merged["moved"]["feed_events"].as_u64().unwrap() > 0);

    // Quentin keeps his account and token, now Lonza's; he works on both sponsors' programs.
    let me = quentin.get("/api/v1/me").await.expect(200).body;
    assert_eq!(me["user"]["org_id"], lonza, "{me}");
    assert_eq!(me["organization"]["name"], "Lonza Visp");
    let programs = quentin.get("/api/v1/programs").await.expect(200).body;
    assert_eq!(programs["total"], 2, "{programs}");
    // Beta's side moved whole: its program, its qualification, its agreement.
    let program = admin_b
        .get(&format!("/api/v1/programs/{bx2}"))
        .await
        .expect(200)
        .body;
    assert_eq!(program["cmo_org_id"], lonza);
    let cmo = admin_b
        .get(&format!("/api/v1/cmos/{lonza}"))
        .await
        .expect(200)
        .body;
    assert_eq!(cmo["qualification_status"], "qualified");
    let sites: Vec<&str> = cmo["sites"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].as_str().unwrap())
        .collect();
    assert!(sites.contains(&"Visp Bau 2"), "{cmo}");
    let agreements = admin_b
        .get(&format!("/api/v1/cmos/{lonza}/quality-agreements"))
        .await
        .expect(200)
        .body;
    assert!(agreements.to_string().contains("QA-AGR-BETA-001"));
    let connections = admin_b
        .get("/api/v1/cmo-connections")
        .await
        .expect(200)
        .body;
    assert_eq!(connections["total"], 1);
    assert_eq!(connections["items"][0]["cmo_org_id"], lonza);
    assert_eq!(connections["items"][0]["connection"], "connected");
    // Beta still sees nothing of Acme; Acme nothing of Beta.
    let beta_programs = admin_b.get("/api/v1/programs").await.expect(200).body;
    assert_eq!(beta_programs["total"], 1);
    assert!(!beta_programs.to_string().contains("ACM-101"));
    admin_a
        .get(&format!("/api/v1/programs/{bx2}"))
        .await
        .expect_problem(404, "not_found");
    // Each sponsor concerned (and Lonza) reads `cmo.merged`; Acme does not.
    let merged_events = |feed: &Value| {
        feed["items"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|e| e["type"] == "cmo.merged")
            .cloned()
            .collect::<Vec<_>>()
    };
    let beta_feed = admin_b
        .get("/api/v1/events?types=cmo.merged")
        .await
        .expect(200)
        .body;
    let seen = merged_events(&beta_feed);
    assert_eq!(seen.len(), 1, "{beta_feed}");
    assert_eq!(
        seen[0]["payload"],
        json!({"merge_id": id, "absorbed_org_id": copy, "absorbed_name": "Lonza Visp (Beta)",
               "survivor_org_id": lonza, "survivor_name": "Lonza Visp"})
    );
    let acme_feed = admin_a
        .get("/api/v1/events?types=cmo.merged")
        .await
        .expect(200)
        .body;
    assert!(merged_events(&acme_feed).is_empty());
    let lonza_feed = a
        .cmo_admin
        .get("/api/v1/events?types=cmo.merged")
        .await
        .expect(200)
        .body;
    assert_eq!(merged_events(&lonza_feed).len(), 1);

    // Petra's copy account is off; its open work is her Lonza account's now.
    let item = a
        .cmo_admin
        .get(&format!("/api/v1/action-items/{item}"))
        .await
        .expect(200)
        .body;
    assert_eq!(item["owner_user_id"], a.cmo_admin_id, "{item}");
    let team = admin_b
        .get(&format!("/api/v1/programs/{bx2}/team"))
        .await
        .expect(200)
        .body;
    assert!(
        team.to_string()
            .contains(&format!("\"user_id\":{}", a.cmo_admin_id)),
        "{team}"
    );
    let signed_in = app
        .anonymous()
        .post(
            "/api/v1/sign-in",
            json!({"email": "pm@lonza.test", "password": OWN_PASSWORD}),
        )
        .await
        .expect(201)
        .body;
    assert_eq!(signed_in["user"]["org_id"], lonza, "one account left");

    // The copy's trail stays under its id, readable (and verifiable) by Lonza only.
    let trail = a
        .cmo_admin
        .get(&format!(
            "/api/v1/audit-events?org_id={copy}&action=merged_into"
        ))
        .await
        .expect(200)
        .body;
    assert_eq!(trail["total"], 1, "{trail}");
    assert_eq!(trail["items"][0]["after"]["merged_into_org_id"], lonza);
    let chain = a
        .cmo_admin
        .get(&format!("/api/v1/audit-events/verify?org_id={copy}"))
        .await
        .expect(200)
        .body;
    assert_eq!(chain["intact"], true, "{chain}");
    admin_b
        .get(&format!("/api/v1/audit-events?org_id={copy}"))
        .await
        .expect_problem(404, "not_found");
    // The copy is gone from the directory, and cannot be merged again.
    let found = admin_b
        .get("/api/v1/cmo-directory?name=lonza%20visp")
        .await
        .expect(200)
        .body;
    assert_eq!(found["total"], 1, "{found}");
    a.cmo_admin
        .post(&format!("{path}/events"), json!({"event": "decline"}))
        .await
        .expect_problem(409, "illegal_transition");
}
on_both_databases!(a_duplicate_cmo_is_merged_into_the_one_that_stays);

/// The CMO that stays may say no, and the proposer may take a proposal back: nothing
/// moves either way.
async fn a_merge_declined_or_withdrawn_moves_nothing(app: &TestApp) {
    // REQ: PART-MERGE
    let a = program_setup(app).await;
    let lonza = a.cmo_admin.get("/api/v1/me").await.expect(200).body["user"]["org_id"]
        .as_i64()
        .unwrap();
    // A copy Acme registered itself, nobody of which has joined: Acme's admin proposes.
    let copy = app
        .admin()
        .post(
            "/api/v1/organizations",
            json!({"name": "Lonza Visp (old)", "kind": "cmo",
                   "admin": {"email": "nobody@lonza.test", "display_name": "Nobody"}}),
        )
        .await
        .expect(201)
        .body["organization"]["id"]
        .as_i64()
        .unwrap();
    // Acme is connected to both (it registered both): its two qualifications would become
    // one, so Lonza cannot accept before Acme chooses which holds; Acme ending its
    // connection with the copy gives way instead.
    let acme_copy =
        json!({"absorbed_org_id": copy, "survivor_org_id": lonza, "reason": "duplicate"});
    let acme_merge = app
        .admin()
        .post("/api/v1/cmo-merges", acme_copy)
        .await
        .expect(201)
        .body;
    let acme_merge_events = format!("/api/v1/cmo-merges/{}/events", acme_merge["id"]);
    a.cmo_admin
        .post(&acme_merge_events, json!({"event": "accept"}))
        .await
        .expect_problem(409, "merge_conflict");
    let with_copy = app
        .admin()
        .get("/api/v1/cmo-connections?connection=connected")
        .await
        .expect(200)
        .body["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["cmo_org_id"] == copy)
        .unwrap()["id"]
        .clone();
    app.admin()
        .post(
            &format!("/api/v1/cmo-connections/{with_copy}/events"),
            json!({"event": "end", "message": "A duplicate of Lonza Visp"}),
        )
        .await
        .expect(200);
    let open = a
        .cmo_admin
        .get(&format!("/api/v1/cmo-merges/{}", acme_merge["id"]))
        .await
        .expect(200)
        .body;
    assert_eq!(
        open["allowed_events"],
        json!(["accept", "decline"]),
        "{open}"
    );
    app.admin()
        .post(&acme_merge_events, json!({"event": "withdraw"}))
        .await
        .expect(200);
    let (_, _, beta_admin) = partner_org(app, "Beta Biologics", "sponsor", "boss@beta.test").await;
    let admin_b = app.client(&beta_admin);
    let beta_copy = admin_b
        .post(
            "/api/v1/organizations",
            json!({"name": "Lonza Visp (Beta)", "kind": "cmo",
                   "admin": {"email": "later@lonza.test", "display_name": "Later"}}),
        )
        .await
        .expect(201)
        .body["organization"]["id"]
        .as_i64()
        .unwrap();
    let propose =
        json!({"absorbed_org_id": beta_copy, "survivor_org_id": lonza, "reason": "duplicate"});
    let declined = admin_b
        .post("/api/v1/cmo-merges", propose.clone())
        .await
        .expect(201)
        .body;
    let events = format!("/api/v1/cmo-merges/{}/events", declined["id"]);
    let answer = a
        .cmo_admin
        .post(&events, json!({"event": "decline", "note": "not us"}))
        .await
        .expect(200)
        .body;
    assert_eq!(
        (&answer["status"], &answer["moved"]),
        (&json!("declined"), &Value::Null)
    );
    assert_eq!(answer["response"], "not us");
    let again = admin_b
        .post("/api/v1/cmo-merges", propose)
        .await
        .expect(201)
        .body;
    let events = format!("/api/v1/cmo-merges/{}/events", again["id"]);
    a.cmo_admin
        .post(&events, json!({"event": "withdraw"}))
        .await
        .expect_problem(403, "forbidden");
    let withdrawn = admin_b
        .post(&events, json!({"event": "withdraw"}))
        .await
        .expect(200)
        .body;
    assert_eq!(withdrawn["status"], "withdrawn");
    // Beta still works with its copy, as before.
    let listed = admin_b
        .get("/api/v1/cmo-connections")
        .await
        .expect(200)
        .body;
    assert_eq!(listed["items"][0]["cmo_org_id"], beta_copy);
    let merges = admin_b.get("/api/v1/cmo-merges").await.expect(200).body;
    assert_eq!(merges["total"], 2);
    let lonza_merges = a
        .cmo_admin
        .get("/api/v1/cmo-merges?status=withdrawn")
        .await
        .expect(200)
        .body;
    // Beta's, and Acme's once it had ended its connection with its copy.
    assert_eq!(lonza_merges["total"], 2);
}
on_both_databases!(a_merge_declined_or_withdrawn_moves_nothing);
