use chrono::TimeDelta;
use e2e::{Client, TestApp, on_both_databases};
use serde_json::json;

use crate::user_with_token;

async fn me_answers_for_a_valid_token(app: &TestApp) {
    let me = app.admin().get("/api/v1/me").await.expect(200).body;
    assert_eq!(me["user"]["email"], "admin@acme.test");
    assert_eq!(me["user"]["role"], "admin");
    assert_eq!(me["organization"]["name"], "Acme Bio");
    assert_eq!(me["organization"]["kind"], "sponsor");
    assert_eq!(me["token"]["name"], "bootstrap");
    assert!(
        me["user"].get("password_hash").is_none(),
        "no secrets in views"
    );
}
on_both_databases!(me_answers_for_a_valid_token);

async fn missing_or_malformed_credentials_are_401(app: &TestApp) {
    let r = app
        .anonymous()
        .get("/api/v1/me")
        .await
        .expect_problem(401, "unauthorized");
    assert_eq!(
        r.header("www-authenticate"),
        Some("Bearer realm=\"cmo-orchestrator\"")
    );
    let basic = app
        .anonymous()
        .send(
            app.anonymous()
                .request(awc::http::Method::GET, "/api/v1/me")
                .insert_header(("Authorization", "Basic YWRtaW46YWRtaW4=")),
            None,
        )
        .await;
    basic.expect_problem(401, "unauthorized");
    Client::new(&app.base_url, Some("cmo_not-a-real-token"))
        .get("/api/v1/users")
        .await
        .expect_problem(401, "unauthorized");
}
on_both_databases!(missing_or_malformed_credentials_are_401);

async fn an_expired_token_is_refused(app: &TestApp) {
    // REQ: SEC-TOKENS
    let expires = app.now() + TimeDelta::hours(1);
    let issued = app
        .admin()
        .post(
            "/api/v1/tokens",
            json!({"name": "short-lived", "expires_at": expires}),
        )
        .await
        .expect(201)
        .body;
    let short = app.client(issued["secret"].as_str().unwrap());
    short.get("/api/v1/me").await.expect(200);
    app.clock.advance(TimeDelta::hours(2));
    let r = short
        .get("/api/v1/me")
        .await
        .expect_problem(401, "unauthorized");
    assert_eq!(r.body["detail"], "the token has expired");
    // The other token is unaffected.
    app.admin().get("/api/v1/me").await.expect(200);
}
on_both_databases!(an_expired_token_is_refused);

async fn a_token_in_the_past_cannot_be_issued(app: &TestApp) {
    let past = app.now() + TimeDelta::minutes(-1);
    let r = app
        .admin()
        .post(
            "/api/v1/tokens",
            json!({"name": "stale", "expires_at": past}),
        )
        .await
        .expect_problem(422, "validation_failed");
    assert_eq!(r.body["errors"][0]["field"], "expires_at");
}
on_both_databases!(a_token_in_the_past_cannot_be_issued);

async fn a_revoked_token_stops_working_at_once(app: &TestApp) {
    // REQ: SEC-TOKENS
    let issued = app
        .admin()
        .post("/api/v1/tokens", json!({"name": "ci"}))
        .await
        .expect(201)
        .body;
    let id = issued["token"]["id"].as_i64().unwrap();
    let ci = app.client(issued["secret"].as_str().unwrap());
    ci.get("/api/v1/me").await.expect(200);
    app.admin()
        .delete(&format!("/api/v1/tokens/{id}"))
        .await
        .expect(204);
    let r = ci
        .get("/api/v1/me")
        .await
        .expect_problem(401, "unauthorized");
    assert_eq!(r.body["detail"], "the token has been revoked");
    // Revoking again is harmless; the list hides revoked tokens unless asked.
    app.admin()
        .delete(&format!("/api/v1/tokens/{id}"))
        .await
        .expect(204);
    let listed = app.admin().get("/api/v1/tokens").await.expect(200).body;
    assert!(
        listed["items"]
            .as_array()
            .unwrap()
            .iter()
            .all(|t| t["id"] != id)
    );
    let all = app
        .admin()
        .get("/api/v1/tokens?include_revoked=true")
        .await
        .expect(200)
        .body;
    assert!(
        all["items"]
            .as_array()
            .unwrap()
            .iter()
            .any(|t| t["id"] == id && t["revoked_at"].is_string())
    );
    assert!(
        all["items"]
            .as_array()
            .unwrap()
            .iter()
            .all(|t| t.get("secret").is_none())
    );
}
on_both_databases!(a_revoked_token_stops_working_at_once);

async fn a_deactivated_users_tokens_stop_working(app: &TestApp) {
    let (id, token) = user_with_token(app, "leaver@acme.test", "contributor", None).await;
    app.client(&token).get("/api/v1/me").await.expect(200);
    let user = app
        .admin()
        .post(
            &format!("/api/v1/users/{id}/deactivate"),
            json!({"reason": "left the company"}),
        )
        .await
        .expect(200)
        .body;
    assert_eq!(user["active"], false);
    assert_eq!(user["version"], 2);
    app.client(&token)
        .get("/api/v1/me")
        .await
        .expect_problem(401, "unauthorized");
    // Admins cannot lock themselves out.
    app.admin()
        .post(
            &format!("/api/v1/users/{}/deactivate", app.admin_id),
            json!({"reason": "oops"}),
        )
        .await
        .expect_problem(403, "forbidden");
}
on_both_databases!(a_deactivated_users_tokens_stop_working);

async fn only_admins_manage_users_and_others_tokens(app: &TestApp) {
    // REQ: TEN-ROLES, SEC-TOKENS
    let (viewer_id, viewer) = user_with_token(app, "viewer@acme.test", "viewer", None).await;
    let viewer = app.client(&viewer);
    viewer
        .post(
            "/api/v1/invitations",
            json!({"email": "x@acme.test", "display_name": "X", "role": "viewer"}),
        )
        .await
        .expect_problem(403, "forbidden");
    viewer
        .get(&format!("/api/v1/tokens?user_id={}", app.admin_id))
        .await
        .expect_problem(403, "forbidden");
    viewer
        .post(
            "/api/v1/tokens",
            json!({"name": "for admin", "user_id": app.admin_id}),
        )
        .await
        .expect_problem(403, "forbidden");
    // Admin tokens are invisible to a viewer: revoking one answers 404.
    let admin_tokens = app.admin().get("/api/v1/tokens").await.expect(200).body;
    let admin_token_id = admin_tokens["items"][0]["id"].as_i64().unwrap();
    viewer
        .delete(&format!("/api/v1/tokens/{admin_token_id}"))
        .await
        .expect_problem(404, "not_found");
    // A viewer may edit their own name but not their role.
    let me = viewer
        .get(&format!("/api/v1/users/{viewer_id}"))
        .await
        .expect(200);
    assert_eq!(me.header("etag"), Some("\"1\""));
    viewer
        .patch(
            &format!("/api/v1/users/{viewer_id}"),
            json!({"version": 1, "display_name": "Vic Viewer"}),
        )
        .await
        .expect(200);
    viewer
        .patch(
            &format!("/api/v1/users/{viewer_id}"),
            json!({"version": 2, "role": "admin"}),
        )
        .await
        .expect_problem(403, "forbidden");
}
on_both_databases!(only_admins_manage_users_and_others_tokens);

async fn duplicate_emails_conflict(app: &TestApp) {
    let body = json!({"email": "Dup@Acme.test", "display_name": "Dup", "role": "viewer"});
    let created = app
        .admin()
        .post("/api/v1/invitations", body.clone())
        .await
        .expect(201)
        .body;
    assert_eq!(created["email"], "dup@acme.test");
    let again = json!({"email": "dup@acme.TEST", "display_name": "Dup", "role": "viewer"});
    app.admin()
        .post("/api/v1/invitations", again)
        .await
        .expect_problem(409, "already_invited");
    // Once accepted, the email belongs to a user of the organization.
    app.accept_invitation("dup@acme.test", crate::OWN_PASSWORD)
        .await;
    app.admin()
        .post("/api/v1/invitations", body)
        .await
        .expect_problem(409, "email_taken");
}
on_both_databases!(duplicate_emails_conflict);

/// A registered CMO's first admin is invited like anyone: the sponsor that registered it
/// never holds a credential of the CMO, and so cannot act as its admin.
async fn a_partners_first_admin_is_invited_not_handed_a_token(app: &TestApp) {
    // REQ: SEC-OWN-CREDENTIALS
    let created = app
        .admin()
        .post(
            "/api/v1/organizations",
            json!({"name": "Lonza Visp", "kind": "cmo", "admin": {"email": "pm@lonza.test", "display_name": "Petra"}}),
        )
        .await
        .expect(201);
    assert!(
        created.body.get("admin_token").is_none(),
        "{}",
        created.body
    );
    let invitation = &created.body["admin_invitation"];
    assert_eq!(invitation["status"], "pending");
    assert_eq!(invitation["role"], "admin");
    let expires: chrono::DateTime<chrono::Utc> =
        invitation["expires_at"].as_str().unwrap().parse().unwrap();
    assert_eq!(expires, app.now() + TimeDelta::days(7));
    let link = app
        .emailed_token("pm@lonza.test", "/invitations/accept")
        .await;
    assert!(
        !created.text.contains(&link),
        "the link is in the email only"
    );
    // The sponsor sees neither the CMO's invitations nor its users.
    let cmo_org = created.body["organization"]["id"].as_i64().unwrap();
    let sponsor_view = app
        .admin()
        .get("/api/v1/invitations")
        .await
        .expect(200)
        .body;
    assert!(
        sponsor_view["items"]
            .as_array()
            .unwrap()
            .iter()
            .all(|i| i["org_id"] != cmo_org)
    );
    // The CMO's admin joins with a password of their own and runs their organization.
    let admin_id = app
        .accept_invitation("pm@lonza.test", crate::OWN_PASSWORD)
        .await;
    let cmo_admin = app.client(&app.own_token("pm@lonza.test", crate::OWN_PASSWORD).await);
    let me = cmo_admin.get("/api/v1/me").await.expect(200).body;
    assert_eq!(me["user"]["id"], admin_id);
    // The sponsor's admin cannot reach the CMO's users to force a reset or mint a token.
    app.admin()
        .post(
            &format!("/api/v1/users/{admin_id}/password-reset"),
            json!({}),
        )
        .await
        .expect_problem(404, "not_found");
    app.admin()
        .post("/api/v1/tokens", json!({"name": "x", "user_id": admin_id}))
        .await
        .expect_problem(404, "not_found");
    // Sponsors register CMOs; another sponsor is the installation operator's to create.
    app.admin()
        .post(
            "/api/v1/organizations",
            json!({"name": "Beta Pharma", "kind": "sponsor", "admin": {"email": "boss@beta.test", "display_name": "Boss"}}),
        )
        .await
        .expect_problem(422, "validation_failed");
    // The same email may exist in another organization: emails are unique per org.
    app.admin()
        .post(
            "/api/v1/invitations",
            json!({"email": "pm@lonza.test", "display_name": "Other Petra", "role": "viewer"}),
        )
        .await
        .expect(201);
}
on_both_databases!(a_partners_first_admin_is_invited_not_handed_a_token);
