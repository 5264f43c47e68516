//! Tokens and sign-in under pressure: a child token dies with its parent, parallel
//! guesses are checked at most five times, throttling counts the client behind a trusted
//! proxy, and a service account acts for an integration but never signs.

use chrono::TimeDelta;
use e2e::{TestApp, on_both_databases};
use futures_util::future::join_all;
use sea_orm::{ColumnTrait, EntityTrait, PaginatorTrait, QueryFilter};
use serde_json::json;

use crate::accounts::sign_in;
use crate::{OWN_PASSWORD, user_with_token};

/// A token made with a personal token is its child: capped at its expiry, revoked with
/// it; read-only is inherited. Deactivating a person ends all of theirs.
async fn a_child_token_dies_with_its_parent(app: &TestApp) {
    // REQ: SEC-TOKEN-LINEAGE
    let (pm_id, _) = user_with_token(app, "pm@acme.test", "program_manager", None).await;
    let session = sign_in(app, "pm@acme.test", OWN_PASSWORD)
        .await
        .expect(201)
        .body;
    let session = app.client(session["secret"].as_str().unwrap());
    let in_a_month = app.now() + TimeDelta::days(30);
    let parent = session
        .post(
            "/api/v1/tokens",
            json!({"name": "parent", "expires_at": in_a_month}),
        )
        .await
        .expect(201)
        .body;
    let parent_id = parent["token"]["id"].clone();
    let parent = app.client(parent["secret"].as_str().unwrap());
    let child = parent
        .post(
            "/api/v1/tokens",
            json!({"name": "child", "expires_at": app.now() + TimeDelta::days(365)}),
        )
        .await
        .expect(201)
        .body;
    assert_eq!(child["token"]["parent_token_id"], parent_id);
    let capped: chrono::DateTime<chrono::Utc> = child["token"]["expires_at"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(capped, in_a_month, "never outlives its parent");
    let child = app.client(child["secret"].as_str().unwrap());
    let grandchild = child
        .post(
            "/api/v1/tokens",
            json!({"name": "grandchild", "read_only": true}),
        )
        .await
        .expect(201)
        .body;
    let grandchild = app.client(grandchild["secret"].as_str().unwrap());
    // Read-only: reads work, writes do not, and its children are read-only too.
    grandchild.get("/api/v1/me").await.expect(200);
    let great = grandchild.get("/api/v1/tokens").await.expect(200);
    assert!(great.body["items"].as_array().unwrap().len() >= 3);
    grandchild
        .post("/api/v1/tokens", json!({"name": "writer"}))
        .await
        .expect_problem(403, "forbidden");

    // Revoking the parent ends the child and the grandchild.
    session
        .delete(&format!("/api/v1/tokens/{parent_id}"))
        .await
        .expect(204);
    for t in [&parent, &child, &grandchild] {
        t.get("/api/v1/me")
            .await
            .expect_problem(401, "unauthorized");
    }
    let revoked = session
        .get("/api/v1/tokens?include_revoked=true")
        .await
        .expect(200)
        .body;
    let reasons: Vec<&str> = revoked["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|t| t["revoked_reason"].as_str())
        .collect();
    assert_eq!(
        reasons.iter().filter(|r| **r == "parent_revoked").count(),
        2
    );

    // Deactivation ends everything the person holds.
    let own = session
        .post("/api/v1/tokens", json!({"name": "another"}))
        .await
        .expect(201)
        .body;
    app.admin()
        .post(
            &format!("/api/v1/users/{pm_id}/deactivate"),
            json!({"reason": "left"}),
        )
        .await
        .expect(200);
    let live = entity::api_token::Entity::find()
        .filter(entity::api_token::Column::UserId.eq(pm_id))
        .filter(entity::api_token::Column::RevokedAt.is_null())
        .count(&app.db)
        .await
        .unwrap();
    assert_eq!(live, 0);
    app.client(own["secret"].as_str().unwrap())
        .get("/api/v1/me")
        .await
        .expect_problem(401, "unauthorized");
}
on_both_databases!(a_child_token_dies_with_its_parent);

/// Twenty guesses at once: at most five are checked, the rest answer 429, for signing
/// and for sign-in alike; and a sign-in lockout does not stop the person signing.
async fn parallel_guesses_are_checked_at_most_five_times(app: &TestApp) {
    // REQ: SEC-SIGN-LOCKOUT, SEC-SIGN-IN-THROTTLE
    let (qa_id, qa) = user_with_token(app, "qa@acme.test", "quality", None).await;
    let qa = app.client(&qa);
    let event_id = app.admin().get("/api/v1/audit-events?limit=1").await.body["items"][0]["id"]
        .as_i64()
        .unwrap();
    let body = |password: &str| json!({"record_type": "audit_event", "record_id": event_id.to_string(), "meaning": "reviewed", "password": password});

    // Sign-in first: twenty wrong passwords at once.
    let guesses = (0..20).map(|i| async move {
        let reply = sign_in(app, "qa@acme.test", &format!("guess number {i}")).await;
        (reply.status.as_u16(), reply.text)
    });
    let replies = join_all(guesses).await;
    let statuses: Vec<u16> = replies.iter().map(|(s, _)| *s).collect();
    let checked = statuses.iter().filter(|s| **s == 401).count();
    assert!(checked <= 5, "{statuses:?}");
    // Anything else is shown whole (seen once under a full parallel run: the status
    // alone did not say why).
    let odd: Vec<&(u16, String)> = replies
        .iter()
        .filter(|(s, _)| *s != 401 && *s != 429)
        .collect();
    assert!(odd.is_empty(), "{statuses:?}; other answers: {odd:?}");
    let right = sign_in(app, "qa@acme.test", OWN_PASSWORD).await;
    assert_eq!(
        right.status.as_u16(),
        429,
        "paused even for the right password"
    );
    assert!(right.header("retry-after").is_some());
    // Failing to sign in as someone does not lock their signing.
    qa.post("/api/v1/signatures", body(OWN_PASSWORD))
        .await
        .expect(201);

    // Signing: twenty wrong passwords at once.
    let guesses = (0..20).map(|i| {
        let qa = qa.clone();
        async move {
            qa.post("/api/v1/signatures", body(&format!("guess number {i}")))
                .await
                .status
                .as_u16()
        }
    });
    let statuses = join_all(guesses).await;
    let failures = entity::audit_event::Entity::find()
        .filter(entity::audit_event::Column::ActorUserId.eq(qa_id))
        .filter(entity::audit_event::Column::Action.eq("sign_failed"))
        .count(&app.db)
        .await
        .unwrap();
    assert!(failures <= 5, "{failures} checked: {statuses:?}");
    assert_eq!(
        statuses.iter().filter(|s| **s == 429).count() as u64 + failures,
        20,
        "{statuses:?}"
    );
    // The organization's admins and quality users are told, once each (in their own
    // email: the time reads in their zone).
    let mut alerted: Vec<String> = entity::outbox::Entity::find()
        .all(&app.db)
        .await
        .unwrap()
        .into_iter()
        .filter(|e| e.subject.starts_with("Signing locked for qa"))
        .map(|e| e.to_addrs)
        .collect();
    alerted.sort();
    assert_eq!(
        alerted,
        [r#"["admin@acme.test"]"#, r#"["qa@acme.test"]"#],
        "one alert each"
    );
    // The sign-in pause ends after 15 minutes.
    app.clock.advance(TimeDelta::minutes(15));
    sign_in(app, "qa@acme.test", OWN_PASSWORD).await.expect(201);
}
on_both_databases!(parallel_guesses_are_checked_at_most_five_times);

/// Behind a trusted proxy the client is the one `X-Forwarded-For` names: twenty failed
/// sign-ins from one client address pause sign-in from that address, not from the
/// proxy's other clients; the audit trail records the client's address.
async fn sign_in_throttling_counts_the_client_behind_the_proxy(app: &TestApp) {
    // REQ: SEC-SIGN-IN-THROTTLE
    user_with_token(app, "qa@acme.test", "quality", None).await;
    let from = |client: &'static str, email: String, password: &'static str| async move {
        let c = app.anonymous();
        let req = c
            .request(awc::http::Method::POST, "/api/v1/sign-in")
            .insert_header(("X-Forwarded-For", client));
        c.send(req, Some(&json!({"email": email, "password": password})))
            .await
    };
    // One failure for the person, the rest for unknown accounts, so that only the
    // address limit applies.
    from("203.0.113.7", "qa@acme.test".into(), "guess")
        .await
        .expect_problem(401, "unauthorized");
    for i in 1..entity::sign_in_failure::PER_CLIENT {
        from("203.0.113.7", format!("nobody{i}@acme.test"), "guess")
            .await
            .expect_problem(401, "unauthorized");
    }
    let paused = from("203.0.113.7", "qa@acme.test".into(), OWN_PASSWORD).await;
    assert_eq!(paused.status.as_u16(), 429, "{}", paused.text);
    // The same person from another client behind the same proxy.
    from("198.51.100.20", "qa@acme.test".into(), OWN_PASSWORD)
        .await
        .expect(201);
    let failures = app
        .admin()
        .get("/api/v1/audit-events?action=sign_in_failed&limit=1")
        .await
        .expect(200)
        .body;
    assert_eq!(
        failures["items"][0]["after"]["client_addr"], "203.0.113.7",
        "{failures}"
    );
}
on_both_databases!(sign_in_throttling_counts_the_client_behind_the_proxy);

/// An integration acts through a service account: tokens an admin creates for it, never
/// a sign-in or a signature, and the audit trail names it as a service account.
async fn a_service_account_acts_for_an_integration_and_never_signs(app: &TestApp) {
    let admin = app.admin();
    admin
        .post(
            "/api/v1/service-accounts",
            json!({"display_name": "LIMS", "role": "admin"}),
        )
        .await
        .expect_problem(422, "validation_failed");
    let lims = admin
        .post(
            "/api/v1/service-accounts",
            json!({"display_name": "LIMS (LabWare) integration", "role": "program_manager"}),
        )
        .await
        .expect(201)
        .body;
    assert_eq!(lims["is_service_account"], true);
    assert_eq!(lims["has_password"], false);
    let lims_id = lims["id"].as_i64().unwrap();
    // Only admins create its tokens; a person's token for it is refused.
    let (_, pm) = user_with_token(app, "pm@acme.test", "program_manager", None).await;
    app.client(&pm)
        .post(
            "/api/v1/tokens",
            json!({"name": "lims", "user_id": lims_id}),
        )
        .await
        .expect_problem(403, "forbidden");
    let token = admin
        .post(
            "/api/v1/tokens",
            json!({"name": "LIMS prod", "user_id": lims_id, "expires_at": app.now() + TimeDelta::days(90)}),
        )
        .await
        .expect(201)
        .body;
    assert_eq!(token["token"]["user_id"], lims_id);
    let lims_client = app.client(token["secret"].as_str().unwrap());
    // It acts, and the audit trail says an integration did.
    lims_client
        .patch(
            &format!("/api/v1/users/{lims_id}"),
            json!({"version": 1, "display_name": "LIMS (LabWare 8) integration", "reason": "upgrade"}),
        )
        .await
        .expect(200);
    let trail = admin
        .get(&format!(
            "/api/v1/audit-events?entity_type=user&entity_id={lims_id}&action=update"
        ))
        .await
        .expect(200)
        .body;
    assert_eq!(trail["items"][0]["actor_kind"], "service_account");
    let created = admin
        .get(&format!(
            "/api/v1/audit-events?entity_type=user&entity_id={lims_id}&action=create"
        ))
        .await
        .expect(200)
        .body;
    assert_eq!(created["items"][0]["actor_kind"], "person");
    // Never a signature, never a sign-in, never a password reset.
    let event_id = created["items"][0]["id"].as_i64().unwrap();
    lims_client
        .post(
            "/api/v1/signatures",
            json!({"record_type": "audit_event", "record_id": event_id.to_string(), "meaning": "reviewed", "password": "anything at all"}),
        )
        .await
        .expect_problem(403, "forbidden");
    let email = lims["email"].as_str().unwrap();
    sign_in(app, email, "anything at all")
        .await
        .expect_problem(401, "unauthorized");
    admin
        .post(
            &format!("/api/v1/users/{lims_id}/password-reset"),
            json!({}),
        )
        .await
        .expect_problem(403, "forbidden");
    let listed = admin
        .get("/api/v1/users?service_account=true")
        .await
        .expect(200)
        .body;
    assert_eq!(listed["total"], 1);
}
on_both_databases!(a_service_account_acts_for_an_integration_and_never_signs);
