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
