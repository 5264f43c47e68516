//! A sponsor that works with both CMOs of a merge chooses which of its two relationships
//! (and qualifications) holds: the merge waits for it, nobody else learns of it, and
//! accepting keeps the chosen one with the CMO that stays and ends the other.

use e2e::{TestApp, on_both_databases};
use serde_json::{Value, json};

use crate::programs::{Setup, program_setup};
use crate::{OWN_PASSWORD, partner_org, user_with_token};

/// A proposed merge of Lonza's copy ("Lonza Visp (old)", qualified, running ACM-202) into
/// Lonza (on probation), both Acme's; Beta works with Lonza only.
pub struct SharedMerge {
    pub a: Setup,
    pub lonza: i64,
    pub copy: i64,
    pub acm202: i64,
    pub id: i64,
    /// The link in the email asking Acme's admins to choose.
    pub link: String,
    /// Acme's quality user, qa@acme.test (password `OWN_PASSWORD`).
    pub qa: e2e::Client,
    pub beta: e2e::Client,
}

pub async fn shared_merge(app: &TestApp) -> SharedMerge {
    let a = program_setup(app).await;
    let lonza = a.cmo_admin.get("/api/v1/me").await.expect(200).body["user"]["org_id"]
        .as_i64()
        .unwrap();
    let acme = app.admin();
    // Acme registered Lonza a second time, before the network, and runs ACM-202 there.
    let copy = acme
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
    app.qualify_cmo(copy).await;
    let acm202 =
        a.pm.post(
            "/api/v1/programs",
            json!({"name": "ACM-202 fill-finish", "product_name": "ACM-202", "cmo_org_id": copy,
                   "modality": "biologic", "stage": "clinical", "time_zone": "Europe/Zurich"}),
        )
        .await
        .expect(201)
        .body["id"]
            .as_i64()
            .unwrap();
    // Acme's qualification of the Lonza it knows best is the copy's: the other is on
    // probation.
    let (_, qa) = user_with_token(app, "qa@acme.test", "quality", None).await;
    let qa = app.client(&qa);
    qa.post(
        &format!("/api/v1/cmos/{lonza}/qualification"),
        json!({"event": "probation", "reason": "Audit finding on the Visp line"}),
    )
    .await
    .expect(200);
    // Beta works with Lonza only.
    let (_, _, beta) = partner_org(app, "Beta Biologics", "sponsor", "boss@beta.test").await;
    let beta = app.client(&beta);
    let invited = beta
        .post("/api/v1/cmo-connections", json!({"cmo_org_id": lonza}))
        .await
        .expect(201)
        .body;
    a.cmo_admin
        .post(
            &format!("/api/v1/cmo-connections/{}/events", invited["id"]),
            json!({"event": "accept"}),
        )
        .await
        .expect(200);

    // Acme proposes the merge (nobody of the copy has joined): it is proposed, and Acme's
    // admins are asked to choose, by a link to a page.
    let merge = acme
        .post(
            "/api/v1/cmo-merges",
            json!({"absorbed_org_id": copy, "survivor_org_id": lonza, "reason": "the same plant"}),
        )
        .await
        .expect(201)
        .body;
    let id = merge["id"].as_i64().unwrap();
    let link = crate::partner_pages::emailed(app, "admin@acme.test", "/cmo-merges/").await;
    assert_eq!(link, format!("{}/cmo-merges/{id}/choice", app.base_url));
    SharedMerge {
        a,
        lonza,
        copy,
        acm202,
        id,
        link,
        qa,
        beta,
    }
}

async fn a_sponsor_working_with_both_chooses_which_qualification_holds(app: &TestApp) {
    // REQ: PART-MERGE, EMAIL-LINKS-PAGES, TEN-404
    let SharedMerge {
        a,
        lonza,
        copy,
        acm202,
        id,
        link,
        qa,
        beta,
    } = shared_merge(app).await;
    let acme = app.admin();
    // Lonza cannot accept before Acme has chosen; the refusal names Acme to Lonza.
    let events = format!("/api/v1/cmo-merges/{id}/events");
    let waiting = a
        .cmo_admin
        .post(&events, json!({"event": "accept"}))
        .await
        .expect_problem(409, "merge_conflict")
        .body;
    assert!(
        waiting["detail"].as_str().unwrap().contains("Acme Bio"),
        "{waiting}"
    );
    // Beta, which works with Lonza only, learns nothing of the merge.
    let choice = format!("/api/v1/cmo-merges/{id}/sponsor-choice");
    beta.get(&choice).await.expect_problem(404, "not_found");
    beta.put(&choice, json!({"keep": "survivor", "reason": "x"}))
        .await
        .expect_problem(404, "not_found");
    beta.get(&format!("/api/v1/cmo-merges/{id}"))
        .await
        .expect_problem(404, "not_found");

    let open = qa.get(&choice).await.expect(200).body;
    assert_eq!(open["keep"], Value::Null, "{open}");
    assert_eq!(open["your_qualification_of_absorbed"], "qualified");
    assert_eq!(open["your_qualification_of_survivor"], "probation");
    a.pm.put(&choice, json!({"keep": "absorbed", "reason": "x"}))
        .await
        .expect_problem(403, "forbidden");
    qa.put(&choice, json!({"keep": "both", "reason": "x"}))
        .await
        .expect_problem(422, "validation_failed");
    qa.put(&choice, json!({"keep": "absorbed", "reason": "  "}))
        .await
        .expect_problem(422, "validation_failed");

    // Quinn chooses on the page: keep the copy's relationship (its qualification).
    let session = app.browser_session("qa@acme.test", OWN_PASSWORD).await;
    let path = link.trim_start_matches(&app.base_url).to_string();
    let shown = app
        .page(&format!("{path}?keep=absorbed"), Some(&session))
        .await
        .expect(200);
    for words in [
        "Lonza Visp (old) is to be merged into Lonza Visp",
        "your qualification of Lonza Visp (old) is qualified; of Lonza Visp, probation",
        "Keep the relationship with the duplicate",
    ] {
        assert!(shown.text.contains(words), "{words}: {}", shown.text);
    }
    assert!(!shown.text.contains("Beta"), "{}", shown.text);
    // The form (in a real browser: `browser::`).
    let token = app.form_token("/sign-in").await;
    app.post_form(
        &path,
        &token,
        "keep=absorbed&reason=Approved+there+after+the+2026+audit",
        Some(&session),
    )
    .await
    .expect(200);
    let chosen = qa.get(&choice).await.expect(200).body;
    assert_eq!(chosen["keep"], "absorbed", "{chosen}");
    assert_eq!(chosen["reason"], "Approved there after the 2026 audit");
    assert_eq!(chosen["version"], 1);
    qa.put(
        &choice,
        json!({"keep": "survivor", "reason": "x", "version": 7}),
    )
    .await
    .expect_problem(409, "version_conflict");

    // Lonza accepts: Acme's relationship with Lonza is now the copy's, the other ended
    // with the reason; ACM-202 is Lonza's.
    a.cmo_admin
        .post(&events, json!({"event": "accept"}))
        .await
        .expect(200);
    let connections = acme.get("/api/v1/cmo-connections").await.expect(200).body;
    let of = |cmo: i64| {
        connections["items"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["cmo_org_id"] == cmo)
            .cloned()
            .unwrap_or_else(|| panic!("no connection with {cmo}: {connections}"))
    };
    let held = of(lonza);
    assert_eq!(held["connection"], "connected", "{held}");
    assert_eq!(held["qualification_status"], "qualified", "{held}");
    let ended = of(copy);
    assert_eq!(ended["connection"], "ended", "{ended}");
    assert_eq!(ended["qualification_status"], "probation", "{ended}");
    let why = ended["end_reason"].as_str().unwrap();
    assert!(
        why.contains("the relationship with Lonza Visp (old) holds")
            && why.contains("Approved there after the 2026 audit"),
        "{why}"
    );
    let moved = a
        .cmo_admin
        .get(&format!("/api/v1/programs/{acm202}"))
        .await
        .expect(200)
        .body;
    assert_eq!(moved["cmo_org_id"], lonza);
    // The relationship the merge ended is in Acme's audit trail with Acme's reason.
    let trail = acme
        .get(&format!(
            "/api/v1/audit-events?entity_type=cmo_relationship&entity_id={}",
            ended["id"]
        ))
        .await
        .expect(200)
        .body;
    assert!(
        trail["items"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["action"] == "connection_end"
                && e["reason"] == "Approved there after the 2026 audit"),
        "{trail}"
    );
    // Answered: the choice stays readable to Acme and no longer changes.
    qa.put(&choice, json!({"keep": "survivor", "reason": "late"}))
        .await
        .expect_problem(409, "merge_answered");
    qa.get(&choice).await.expect(200);
}
on_both_databases!(a_sponsor_working_with_both_chooses_which_qualification_holds);
