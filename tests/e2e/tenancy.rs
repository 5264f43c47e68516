//! Another organization's records answer 404, whatever the endpoint.

use e2e::{TestApp, on_both_databases};
use serde_json::json;

use crate::{partner_org, user_with_token};

async fn another_orgs_records_answer_404(app: &TestApp) {
    let (cmo_id, cmo_admin_id, cmo_token) =
        partner_org(app, "Lonza Visp", "cmo", "pm@lonza.test").await;
    let (other_id, _, other_token) =
        partner_org(app, "Other Sponsor", "sponsor", "boss@other.test").await;
    let (sponsor_user, _) = user_with_token(app, "qa@acme.test", "quality", None).await;
    let cmo = app.client(&cmo_token);
    let other = app.client(&other_token);

    // The CMO sees itself and the sponsor that registered it, nothing else.
    cmo.get(&format!("/api/v1/organizations/{cmo_id}"))
        .await
        .expect(200);
    cmo.get(&format!("/api/v1/organizations/{}", app.org_id))
        .await
        .expect(200);
    cmo.get(&format!("/api/v1/organizations/{other_id}"))
        .await
        .expect_problem(404, "not_found");
    let visible = cmo.get("/api/v1/organizations").await.expect(200).body;
    assert_eq!(visible["total"], 2);
    other
        .get(&format!("/api/v1/organizations/{cmo_id}"))
        .await
        .expect_problem(404, "not_found");

    // Users, tokens, audit events of the sponsor are invisible to the CMO.
    cmo.get(&format!("/api/v1/users/{sponsor_user}"))
        .await
        .expect_problem(404, "not_found");
    cmo.patch(
        &format!("/api/v1/users/{sponsor_user}"),
        json!({"version": 1, "display_name": "pwned"}),
    )
    .await
    .expect_problem(404, "not_found");
    cmo.post(
        &format!("/api/v1/users/{sponsor_user}/deactivate"),
        json!({"reason": "x"}),
    )
    .await
    .expect_problem(404, "not_found");
    cmo.put(
        &format!("/api/v1/users/{sponsor_user}/password"),
        json!({"new_password": "a long enough password"}),
    )
    .await
    .expect_problem(404, "not_found");
    let sponsor_tokens = app.admin().get("/api/v1/tokens").await.expect(200).body;
    let sponsor_token_id = sponsor_tokens["items"][0]["id"].as_i64().unwrap();
    cmo.delete(&format!("/api/v1/tokens/{sponsor_token_id}"))
        .await
        .expect_problem(404, "not_found");
    cmo.post(
        "/api/v1/tokens",
        json!({"name": "steal", "user_id": sponsor_user}),
    )
    .await
    .expect_problem(404, "not_found");
    let sponsor_events = app
        .admin()
        .get("/api/v1/audit-events")
        .await
        .expect(200)
        .body;
    let sponsor_event_id = sponsor_events["items"][0]["id"].as_i64().unwrap();
    cmo.get(&format!("/api/v1/audit-events/{sponsor_event_id}"))
        .await
        .expect_problem(404, "not_found");
    cmo.post(
        "/api/v1/signatures",
        json!({"record_type": "audit_event", "record_id": sponsor_event_id.to_string(), "meaning": "reviewed", "password": "whatever"}),
    )
    .await
    .expect_problem(404, "not_found");

    // Lists are scoped: the CMO lists only its own users and audit events.
    let users = cmo.get("/api/v1/users").await.expect(200).body;
    assert_eq!(users["total"], 1);
    assert_eq!(users["items"][0]["id"], cmo_admin_id);
    let events = cmo.get("/api/v1/audit-events").await.expect(200).body;
    assert!(
        events["items"]
            .as_array()
            .unwrap()
            .iter()
            .all(|e| e["seq"].as_i64().unwrap() >= 1)
    );
    assert!(
        cmo.get("/api/v1/audit-events/verify")
            .await
            .expect(200)
            .body["intact"]
            == true
    );

    // And the sponsor cannot reach into the CMO's users either.
    app.admin()
        .get(&format!("/api/v1/users/{cmo_admin_id}"))
        .await
        .expect_problem(404, "not_found");

    // Only sponsor admins register organizations.
    cmo.post(
        "/api/v1/organizations",
        json!({"name": "Sub CMO", "kind": "cmo", "admin": {"email": "sub@cmo.test", "display_name": "Sub"}}),
    )
    .await
    .expect_problem(403, "forbidden");
}
on_both_databases!(another_orgs_records_answer_404);

/// The organization's records, one of each kind, by the path segment that names them,
/// and the admin token of another sponsor connected to the same CMO (the shared-CMO case).
pub(crate) async fn seed_every_kind(
    app: &TestApp,
) -> (std::collections::HashMap<&'static str, i64>, String) {
    use crate::programs::program_setup;
    let s = program_setup(app).await;
    let admin = app.admin();
    let p = s.program_id;
    let id = |v: &serde_json::Value| v["id"].as_i64().unwrap();
    let program = admin
        .get(&format!("/api/v1/programs/{p}"))
        .await
        .expect(200)
        .body;
    let lonza = program["cmo_org_id"].as_i64().unwrap();
    let hook = admin
        .post(
            "/api/v1/webhooks",
            json!({"url": "http://127.0.0.1:9/hook", "event_types": ["deviation.reported"]}),
        )
        .await
        .expect(201)
        .body;
    let webhook = hook["subscription"]["id"].as_i64().unwrap();
    let today = app.today_in("Europe/Zurich");
    let milestone = s
        .pm
        .post(
            &format!("/api/v1/programs/{p}/milestones"),
            json!({"name": "Batch records", "phase": "Readiness", "baseline_start": today, "baseline_end": today}),
        )
        .await
        .expect(201)
        .body;
    let gate_item =
        s.pm.post(
            &format!("/api/v1/milestones/{}/gate-items", id(&milestone)),
            json!({"check_type": "batch_record_readiness", "title": "MBR approved"}),
        )
        .await
        .expect(201)
        .body;
    let deviation = s
        .pm
        .post(
            &format!("/api/v1/programs/{p}/deviations"),
            json!({"title": "Secret ACM-101 excursion", "description": "d", "detected_at": app.now(),
                   "criticality": "critical", "category": "equipment", "batch_lot": "LOT-1"}),
        )
        .await
        .expect(201)
        .body;
    let escalations = admin
        .get(&format!("/api/v1/escalations?program_id={p}"))
        .await
        .expect(200)
        .body;
    let escalation = escalations["items"][0]["id"].as_i64().unwrap();
    let (_, qa_token) = user_with_token(app, "qa@acme.test", "quality", None).await;
    let qa = app.client(&qa_token);
    let capa = qa
        .post(
            &format!("/api/v1/programs/{p}/capas"),
            json!({"title": "Replace gaskets", "description": "CAPA",
            "source": "deviation", "deviation_ids": [id(&deviation)]}),
        )
        .await
        .expect(201)
        .body;
    let capa_action = qa
        .post(
            &format!("/api/v1/capas/{}/actions", id(&capa)),
            json!({"kind": "corrective", "title": "Replace gaskets", "owner_user_id": s.pm_id, "due_date": today + chrono::TimeDelta::days(10)}),
        )
        .await
        .expect(201)
        .body;
    let action_item = capa_action["action"]["id"].as_i64().unwrap();
    let extension = s
        .pm
        .post(
            &format!("/api/v1/action-items/{action_item}/extension-requests"),
            json!({"requested_due": today + chrono::TimeDelta::days(20), "reason": "supplier delay"}),
        )
        .await;
    let change = s
        .pm
        .post(
            &format!("/api/v1/programs/{p}/change-requests"),
            json!({"title": "Switch depth filter supplier", "description": "Supplier B", "justification": "A discontinues", "classification": "major"}),
        )
        .await
        .expect(201)
        .body;
    let site = s
        .cmo_admin
        .post(
            &format!("/api/v1/cmos/{lonza}/sites"),
            json!({"name": "Visp", "country": "CH", "region": "other_europe"}),
        )
        .await
        .expect(201)
        .body;
    let inspection = s
        .cmo_admin
        .post(
            &format!("/api/v1/cmos/{lonza}/inspections"),
            json!({"site_id": id(&site), "agency": "fda",
            "inspected_on": "2025-06-12", "outcome": "oai", "critical_findings": 1}),
        )
        .await
        .expect(201)
        .body;
    let evaluation = admin
        .post(
            "/api/v1/evaluations",
            json!({"title": "Fill-finish", "candidates": [lonza]}),
        )
        .await
        .expect(201)
        .body;
    let team_member = id(&admin
        .post(
            &format!("/api/v1/programs/{p}/team"),
            json!({"user_id": s.pm_id, "governance_tier": "core_team", "program_role": "Program lead"}),
        )
        .await
        .expect(201)
        .body);
    let tokens = admin.get("/api/v1/tokens").await.expect(200).body;
    let invitation = admin
        .post(
            "/api/v1/invitations",
            json!({"email": "invitee@acme.test", "display_name": "Invitee", "role": "viewer"}),
        )
        .await
        .expect(201)
        .body;
    let audit = admin.get("/api/v1/audit-events").await.expect(200).body;
    let (_, reviewer) = crate::user_with_token(
        app,
        "reviewer@acme.test",
        "quality",
        Some(crate::OWN_PASSWORD),
    )
    .await;
    let signature = app
        .client(&reviewer)
        .post(
            "/api/v1/signatures",
            json!({"record_type": "audit_event", "record_id": audit["items"][0]["id"].to_string(),
                   "meaning": "reviewed", "password": crate::OWN_PASSWORD}),
        )
        .await
        .expect(201)
        .body;
    let deliveries = admin
        .get(&format!("/api/v1/webhooks/{webhook}/deliveries"))
        .await
        .expect(200)
        .body;
    let connections = admin.get("/api/v1/cmo-connections").await.expect(200).body;
    let mut ids = std::collections::HashMap::from([
        (
            "cmo-connections",
            connections["items"][0]["id"].as_i64().unwrap(),
        ),
        ("action-items", action_item),
        ("audit-events", audit["items"][0]["id"].as_i64().unwrap()),
        ("capas", id(&capa)),
        ("change-requests", id(&change)),
        ("cmos", lonza),
        ("deviations", id(&deviation)),
        ("escalations", escalation),
        ("evaluations", id(&evaluation)),
        ("gate-items", id(&gate_item)),
        ("inspections", id(&inspection)),
        ("invitations", id(&invitation)),
        ("milestones", id(&milestone)),
        ("organizations", lonza),
        ("programs", p),
        ("signatures", id(&signature)),
        ("team-members", team_member),
        ("tokens", tokens["items"][0]["id"].as_i64().unwrap()),
        ("users", s.pm_id),
        ("webhooks", webhook),
        ("deliveries", deliveries["items"][0]["id"].as_i64().unwrap()),
    ]);
    if extension.status.as_u16() == 201 {
        ids.insert("extension-requests", id(&extension.body));
    }
    // Another sponsor connects to the same CMO (invited, accepted by the CMO's admin).
    let (_, _, shared) = partner_org(app, "Shared Sponsor", "sponsor", "boss@shared.test").await;
    let invited = app
        .client(&shared)
        .post("/api/v1/cmo-connections", json!({"cmo_org_id": lonza}))
        .await
        .expect(201)
        .body;
    s.cmo_admin
        .post(
            &format!("/api/v1/cmo-connections/{}/events", invited["id"]),
            json!({"event": "accept"}),
        )
        .await
        .expect(200);
    // A merge proposed into Lonza, of a copy another sponsor registered (nobody of it
    // joined): its parties are that sponsor, the copy and Lonza only.
    let (_, _, merging) = partner_org(app, "Merging Sponsor", "sponsor", "boss@merging.test").await;
    let merging = app.client(&merging);
    let copy = merging
        .post(
            "/api/v1/organizations",
            json!({"name": "Lonza Copy", "kind": "cmo",
                   "admin": {"email": "copy@lonza.test", "display_name": "Copy"}}),
        )
        .await
        .expect(201)
        .body["organization"]["id"]
        .as_i64()
        .unwrap();
    let merge = merging
        .post(
            "/api/v1/cmo-merges",
            json!({"absorbed_org_id": copy, "survivor_org_id": lonza, "reason": "duplicate"}),
        )
        .await
        .expect(201)
        .body;
    ids.insert("cmo-merges", id(&merge));
    (ids, shared)
}

/// Fills `{…}` path parameters from the segment before each.
pub(crate) fn fill(
    path: &str,
    ids: &std::collections::HashMap<&'static str, i64>,
) -> Option<String> {
    let mut out = Vec::new();
    let mut previous = "";
    for segment in path.split('/') {
        if segment.starts_with('{') {
            out.push(ids.get(previous)?.to_string());
        } else {
            out.push(segment.to_string());
        }
        previous = segment;
    }
    Some(out.join("/"))
}

/// The request body's example from the committed OpenAPI document (so validation
/// passes and the tenancy check is what answers).
fn example_body(doc: &serde_json::Value, op: &serde_json::Value) -> serde_json::Value {
    let schema = &op["requestBody"]["content"]["application/json"]["schema"];
    if let Some(r) = schema["$ref"].as_str() {
        let name = r.rsplit('/').next().unwrap_or_default();
        return doc["components"]["schemas"][name]["example"].clone();
    }
    if schema.is_null() {
        return json!({});
    }
    schema["example"].clone()
}

/// Every operation with a path parameter, for every role of a foreign sponsor and of a
/// CMO not on the program, against a real record of the organization: 404 or 403, never
/// a 2xx, never the record's data. Generated from the committed OpenAPI document.
async fn every_endpoint_hides_foreign_records_from_every_role(app: &TestApp) {
    // REQ: TEN-404, PART-NETWORK
    let (ids, shared_sponsor_admin) = seed_every_kind(app).await;
    let doc: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../openapi/openapi.json"
        ))
        .unwrap(),
    )
    .unwrap();
    let (_, _, other_sponsor_admin) =
        partner_org(app, "Other Sponsor", "sponsor", "boss@other.test").await;
    let (_, _, other_cmo_admin) = partner_org(app, "Other CMO", "cmo", "boss@othercmo.test").await;
    let mut actors = vec![
        (
            "foreign sponsor admin".to_string(),
            app.client(&other_sponsor_admin),
        ),
        (
            "shared.test admin".to_string(),
            app.client(&shared_sponsor_admin),
        ),
        (
            "foreign CMO admin".to_string(),
            app.client(&other_cmo_admin),
        ),
    ];
    for (org_admin, domain) in [
        (&other_sponsor_admin, "other.test"),
        (&other_cmo_admin, "othercmo.test"),
        (&shared_sponsor_admin, "shared.test"),
    ] {
        let admin = app.client(org_admin);
        for role in ["program_manager", "quality", "contributor", "viewer"] {
            let email = format!("{role}@{domain}");
            admin
                .post(
                    "/api/v1/invitations",
                    json!({"email": email, "display_name": role, "role": role}),
                )
                .await
                .expect(201);
            app.accept_invitation(&email, crate::OWN_PASSWORD).await;
            let token = app.own_token(&email, crate::OWN_PASSWORD).await;
            actors.push((format!("{domain} {role}"), app.client(&token)));
        }
    }
    let missing: std::collections::HashMap<&'static str, i64> =
        ids.keys().map(|k| (*k, 2_000_000_000)).collect();
    let (mut hidden, mut same_as_missing, mut shared_reads) = (0, 0, 0);
    let mut skipped = Vec::new();
    for (path, ops) in doc["paths"].as_object().unwrap() {
        if !path.contains('{') {
            continue;
        }
        let Some(url) = fill(path, &ids) else {
            skipped.push(path.clone());
            continue;
        };
        let missing_url = fill(path, &missing).unwrap();
        for (method, op) in ops.as_object().unwrap() {
            let body = example_body(&doc, op);
            for (who, client) in &actors {
                let send = |url: String| {
                    let body = body.clone();
                    async move {
                        match method.as_str() {
                            "get" => client.get(&url).await,
                            "post" => client.post(&url, body).await,
                            "patch" => client.patch(&url, body).await,
                            "put" => client.put(&url, body).await,
                            "delete" => client.delete(&url).await,
                            other => panic!("method {other}"),
                        }
                    }
                };
                let r = send(url.clone()).await;
                let status = r.status.as_u16();
                let m = method.to_uppercase();
                // A sponsor connected to the same CMO reads the CMO's own facts and keeps
                // its own side of it (its qualification, notes, agreements): those
                // answers may succeed, and must show nothing of the organization's.
                let shared_cmo = who.starts_with("shared.test")
                    && (path.starts_with("/api/v1/cmos/{id}")
                        || path.starts_with("/api/v1/inspections/{id}")
                        || path == "/api/v1/organizations/{id}");
                assert!(
                    shared_cmo || !(200..300).contains(&status),
                    "{who}: {m} {url} answered {status}: {}",
                    r.text
                );
                assert!(
                    !r.text.contains("Secret ACM-101")
                        && !r.text.contains("pm@acme.test")
                        && !r.text.contains("Acme Bio"),
                    "{who}: {m} {url} leaked data: {}",
                    r.text
                );
                if shared_cmo {
                    // The CMO is visible to it: a refusal need not look like a missing
                    // record, only show nothing of the organization's.
                    if (200..300).contains(&status) {
                        shared_reads += 1;
                    }
                    continue;
                }
                if status == 404 {
                    hidden += 1;
                } else {
                    // Anything else (a 403 for the caller's role, a 422 for the body,
                    // checked before the record is looked up) must be what a record that
                    // does not exist gets: no 403-vs-404 or other existence oracle.
                    if status == 403 {
                        hidden += 1;
                    }
                    let absent = send(missing_url.clone()).await;
                    assert_eq!(
                        (status, &r.body["code"], &r.body["errors"]),
                        (
                            absent.status.as_u16(),
                            &absent.body["code"],
                            &absent.body["errors"]
                        ),
                        "{who}: {m} {url} differs from a missing record: {} vs {}",
                        r.text,
                        absent.text
                    );
                    same_as_missing += 1;
                }
            }
        }
    }
    assert!(skipped.is_empty(), "no record to test for {skipped:?}");
    assert!(
        shared_reads > 0,
        "the connected sponsor reads the shared CMO"
    );
    assert!(hidden > 400, "only {hidden} requests answered 404/403");
    eprintln!(
        "{} roles: {hidden} answered 404/403, {same_as_missing} answered as for a missing record",
        actors.len()
    );
    // The records are really there: the owner still reads them.
    let admin = app.admin();
    for kind in [
        "programs",
        "deviations",
        "capas",
        "milestones",
        "escalations",
        "webhooks",
    ] {
        let path = if kind == "webhooks" {
            format!("/api/v1/webhooks/{}/deliveries", ids[kind])
        } else {
            format!("/api/v1/{kind}/{}", ids[kind])
        };
        admin.get(&path).await.expect(200);
    }
}
on_both_databases!(every_endpoint_hides_foreign_records_from_every_role);
