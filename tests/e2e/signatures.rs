//! E-signatures: the password is re-checked in the signing request.

use e2e::{TestApp, on_both_databases};
use serde_json::json;

use crate::user_with_token;

const PASSWORD: &str = "correct horse battery staple";

#[test]
fn the_readme_shows_the_signed_fields() {
    // REQ: SEC-SIGNED-FIELDS
    crate::readme_shows(
        "<!-- signed fields: generated from entity::workflow::SIGNED_STEPS -->\n",
        "<!-- end of the signed fields -->",
        &entity::workflow::signed_fields_markdown(),
    );
}

async fn first_audit_event_id(app: &TestApp) -> i64 {
    app.admin()
        .get("/api/v1/audit-events?limit=1")
        .await
        .expect(200)
        .body["items"][0]["id"]
        .as_i64()
        .unwrap()
}

async fn a_signature_needs_the_right_password(app: &TestApp) {
    // REQ: SEC-SIGN-PASSWORD, SEC-SIGN-BINDING
    let (qa_id, qa_token) = user_with_token(app, "qa@acme.test", "quality", Some(PASSWORD)).await;
    let qa = app.client(&qa_token);
    let event_id = first_audit_event_id(app).await;
    let event = qa
        .get(&format!("/api/v1/audit-events/{event_id}"))
        .await
        .expect(200)
        .body;

    let signed = qa
        .post(
            "/api/v1/signatures",
            json!({"record_type": "audit_event", "record_id": event_id.to_string(), "meaning": "reviewed",
                   "password": PASSWORD, "reason": "monthly audit-trail review"}),
        )
        .await
        .expect(201)
        .body;
    assert_eq!(signed["signer_user_id"], qa_id);
    assert_eq!(signed["signer_name"], "qa");
    assert_eq!(signed["meaning"], "reviewed");
    assert_eq!(
        signed["record_hash"], event["hash"],
        "bound to the record's content"
    );
    assert_eq!(crate::instant(&signed["signed_at"]), app.now());

    let wrong = qa
        .post(
            "/api/v1/signatures",
            json!({"record_type": "audit_event", "record_id": event_id.to_string(), "meaning": "reviewed",
                   "password": "not my password"}),
        )
        .await
        .expect_problem(401, "invalid_password");
    assert_eq!(wrong.body["detail"], "the signature password is wrong");

    let listed = qa
        .get(&format!(
            "/api/v1/signatures?record_type=audit_event&record_id={event_id}"
        ))
        .await
        .expect(200)
        .body;
    assert_eq!(
        listed["total"], 1,
        "the failed attempt created no signature"
    );

    let failures = app
        .admin()
        .get(&format!(
            "/api/v1/audit-events?action=sign_failed&actor_user_id={qa_id}"
        ))
        .await
        .expect(200)
        .body;
    assert_eq!(failures["total"], 1, "the failed attempt is audited");
    assert_eq!(failures["items"][0]["after"]["failure"], "wrong_password");
    let signs = app
        .admin()
        .get("/api/v1/audit-events?entity_type=signature&action=sign")
        .await
        .expect(200)
        .body;
    assert_eq!(signs["total"], 1);
    assert_eq!(
        app.admin().get("/api/v1/audit-events/verify").await.body["intact"],
        true
    );
}
on_both_databases!(a_signature_needs_the_right_password);

async fn only_accountable_roles_sign(app: &TestApp) {
    let event_id = first_audit_event_id(app).await;
    let (_, viewer) = user_with_token(app, "viewer@acme.test", "viewer", Some(PASSWORD)).await;
    let body = json!({"record_type": "audit_event", "record_id": event_id.to_string(), "meaning": "reviewed", "password": PASSWORD});
    app.client(&viewer)
        .post("/api/v1/signatures", body.clone())
        .await
        .expect_problem(403, "forbidden");

    // Quality may review an audit event but not "approve" it.
    let (_, qa) = user_with_token(app, "qa@acme.test", "quality", Some(PASSWORD)).await;
    let mut approve = body.clone();
    approve["meaning"] = json!("approved");
    app.client(&qa)
        .post("/api/v1/signatures", approve)
        .await
        .expect_problem(403, "forbidden");

    // Without a password there is nothing to re-check: after an admin forces a reset,
    // the person's own token still reads, but signs nothing until they choose anew.
    let (qa2_id, qa2) = user_with_token(app, "qa2@acme.test", "quality", None).await;
    app.admin()
        .post(&format!("/api/v1/users/{qa2_id}/password-reset"), json!({}))
        .await
        .expect(202);
    app.client(&qa2)
        .post("/api/v1/signatures", body.clone())
        .await
        .expect_problem(409, "no_signing_password");
    // Choosing one's own password from the emailed link, then signing, works.
    let reset = app
        .emailed_token("qa2@acme.test", "/password-reset/choose")
        .await;
    app.anonymous()
        .post(
            "/api/v1/password-resets/complete",
            json!({"token": reset, "new_password": PASSWORD}),
        )
        .await
        .expect(204);
    app.client(&qa2)
        .post("/api/v1/signatures", body.clone())
        .await
        .expect(201);
    // Changing it again needs the current one.
    app.client(&qa2)
        .put(
            &format!("/api/v1/users/{qa2_id}/password"),
            json!({"new_password": "another long password"}),
        )
        .await
        .expect_problem(401, "invalid_password");
    app.client(&qa2)
        .put(
            &format!("/api/v1/users/{qa2_id}/password"),
            json!({"current_password": PASSWORD, "new_password": "another long password"}),
        )
        .await
        .expect(204);

    // One record, one id: padded or signed spellings name no record.
    for spelling in ["0001", "+1", " 1x", "99999999999999999999999"] {
        let mut odd = body.clone();
        odd["record_id"] = json!(spelling);
        app.client(&qa)
            .post("/api/v1/signatures", odd)
            .await
            .expect_problem(404, "not_found");
    }

    // A record that does not exist cannot be signed.
    let mut missing = body;
    missing["record_id"] = json!("999999");
    app.client(&qa)
        .post("/api/v1/signatures", missing)
        .await
        .expect_problem(404, "not_found");
}
on_both_databases!(only_accountable_roles_sign);

/// Nobody can sign in a colleague's name: an admin sets no password and mints no token
/// for another person; a forced reset reaches the person alone, by email.
async fn an_admin_cannot_act_as_a_colleague(app: &TestApp) {
    // REQ: SEC-OWN-CREDENTIALS
    let event_id = first_audit_event_id(app).await;
    let body = json!({"record_type": "audit_event", "record_id": event_id.to_string(), "meaning": "reviewed", "password": PASSWORD});
    let (qa_id, qa) = user_with_token(app, "qa@acme.test", "quality", Some(PASSWORD)).await;
    app.admin()
        .put(
            &format!("/api/v1/users/{qa_id}/password"),
            json!({"new_password": "the admin's choice of password"}),
        )
        .await
        .expect_problem(403, "forbidden");
    app.admin()
        .post("/api/v1/tokens", json!({"name": "as qa", "user_id": qa_id}))
        .await
        .expect_problem(403, "forbidden");
    // The invitation answer never carries the link: only the invitee's email does.
    let invited = app
        .admin()
        .post(
            "/api/v1/invitations",
            json!({"email": "qa3@acme.test", "display_name": "Q3", "role": "quality"}),
        )
        .await
        .expect(201);
    let link_token = app
        .emailed_token("qa3@acme.test", "/invitations/accept")
        .await;
    assert!(!invited.text.contains(&link_token));
    // A forced reset: the old password stops working; the admin learns nothing.
    let forced = app
        .admin()
        .post(&format!("/api/v1/users/{qa_id}/password-reset"), json!({}))
        .await
        .expect(202);
    assert_eq!(forced.body["has_password"], false);
    let reset = app
        .emailed_token("qa@acme.test", "/password-reset/choose")
        .await;
    assert!(!forced.text.contains(&reset));
    app.client(&qa)
        .post("/api/v1/signatures", body.clone())
        .await
        .expect_problem(409, "no_signing_password");
    app.anonymous()
        .post(
            "/api/v1/password-resets/complete",
            json!({"token": reset, "new_password": "my own new password"}),
        )
        .await
        .expect(204);
    // The link works once.
    app.anonymous()
        .post(
            "/api/v1/password-resets/complete",
            json!({"token": reset, "new_password": "my own new password"}),
        )
        .await
        .expect_problem(410, "link_not_usable");
    let mut own = body;
    own["password"] = json!("my own new password");
    let signed = app
        .client(&qa)
        .post("/api/v1/signatures", own)
        .await
        .expect(201)
        .body;
    let tokens = app.client(&qa).get("/api/v1/tokens").await.expect(200).body;
    let personal: Vec<&serde_json::Value> = tokens["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|t| t["kind"] == "personal")
        .collect();
    assert_eq!(
        signed["token_id"], personal[0]["id"],
        "the signing token is recorded"
    );
    assert_eq!(
        personal[0]["issued_by_user_id"], qa_id,
        "the person's own token"
    );
}
on_both_databases!(an_admin_cannot_act_as_a_colleague);

/// Five failures within 15 minutes lock signing and password changes for 15 minutes from
/// the fifth; `Retry-After` is the time left.
async fn repeated_wrong_passwords_lock_the_signer_out(app: &TestApp) {
    // REQ: SEC-SIGN-LOCKOUT
    let event_id = first_audit_event_id(app).await;
    let (qa_id, qa) = user_with_token(app, "qa@acme.test", "quality", Some(PASSWORD)).await;
    let qa = app.client(&qa);
    let attempt = |password: &str| json!({"record_type": "audit_event", "record_id": event_id.to_string(), "meaning": "reviewed", "password": password});
    // Three failures at signing, minutes apart...
    for _ in 0..3 {
        qa.post("/api/v1/signatures", attempt("guess"))
            .await
            .expect_problem(401, "invalid_password");
        app.clock.advance(chrono::TimeDelta::minutes(3));
    }
    // ...and guessing through the password change counts too: the fifth comes at 14:00
    // after the first (minute 0, 3, 6, 9 and 14).
    let change = json!({"current_password": "guess", "new_password": "whatever whatever"});
    qa.put(&format!("/api/v1/users/{qa_id}/password"), change.clone())
        .await
        .expect_problem(401, "invalid_password");
    app.clock.advance(chrono::TimeDelta::minutes(5));
    qa.put(&format!("/api/v1/users/{qa_id}/password"), change.clone())
        .await
        .expect_problem(401, "invalid_password");
    // Now even the right password is refused, without being checked, for 15 minutes.
    let locked = qa
        .post("/api/v1/signatures", attempt(PASSWORD))
        .await
        .expect_problem(429, "too_many_attempts");
    assert_eq!(locked.header("retry-after"), Some("900"));
    // The password change is locked too, with the time left.
    app.clock
        .advance(chrono::TimeDelta::minutes(10) + chrono::TimeDelta::seconds(20));
    let locked = qa
        .put(
            &format!("/api/v1/users/{qa_id}/password"),
            json!({"current_password": PASSWORD, "new_password": "whatever whatever"}),
        )
        .await
        .expect_problem(429, "too_many_attempts");
    assert_eq!(locked.header("retry-after"), Some("280"));
    let failures = app
        .admin()
        .get(&format!(
            "/api/v1/audit-events?actor_user_id={qa_id}&action=password_change_failed"
        ))
        .await
        .body;
    assert_eq!(
        failures["total"], 2,
        "refused attempts while locked are not failures"
    );
    // One second before the end: still locked; at the end: the signer may sign.
    app.clock.advance(chrono::TimeDelta::seconds(279));
    let last = qa
        .post("/api/v1/signatures", attempt(PASSWORD))
        .await
        .expect_problem(429, "too_many_attempts");
    assert_eq!(last.header("retry-after"), Some("1"));
    app.clock.advance(chrono::TimeDelta::seconds(1));
    qa.post("/api/v1/signatures", attempt(PASSWORD))
        .await
        .expect(201);
}
on_both_databases!(repeated_wrong_passwords_lock_the_signer_out);

/// Failures spread over more than 15 minutes never lock.
async fn failures_outside_the_window_do_not_lock(app: &TestApp) {
    // REQ: SEC-SIGN-LOCKOUT
    let event_id = first_audit_event_id(app).await;
    let (_, qa) = user_with_token(app, "qa@acme.test", "quality", Some(PASSWORD)).await;
    let qa = app.client(&qa);
    let attempt = |password: &str| json!({"record_type": "audit_event", "record_id": event_id.to_string(), "meaning": "reviewed", "password": password});
    for _ in 0..6 {
        qa.post("/api/v1/signatures", attempt("guess"))
            .await
            .expect_problem(401, "invalid_password");
        app.clock.advance(chrono::TimeDelta::minutes(4));
    }
    qa.post("/api/v1/signatures", attempt(PASSWORD))
        .await
        .expect(201);
}
on_both_databases!(failures_outside_the_window_do_not_lock);

/// Twenty wrong passwords sent at once: the password is checked at most five times
/// (the check and the failure's record take turns per person), the rest are refused.
async fn parallel_guesses_meet_the_lockout(app: &TestApp) {
    // REQ: SEC-SIGN-LOCKOUT
    let event_id = first_audit_event_id(app).await;
    let (qa_id, qa) = user_with_token(app, "qa@acme.test", "quality", Some(PASSWORD)).await;
    let qa = app.client(&qa);
    let body = json!({"record_type": "audit_event", "record_id": event_id.to_string(), "meaning": "reviewed", "password": "guess"});
    let answers = futures_util::future::join_all(
        (0..20).map(|_| qa.post("/api/v1/signatures", body.clone())),
    )
    .await;
    let mut statuses: Vec<u16> = answers.iter().map(|a| a.status.as_u16()).collect();
    statuses.sort();
    let checked = statuses.iter().filter(|s| **s == 401).count();
    let refused = statuses.iter().filter(|s| **s == 429).count();
    assert_eq!((checked, refused), (5, 15), "{statuses:?}");
    let failures = app
        .admin()
        .get(&format!(
            "/api/v1/audit-events?actor_user_id={qa_id}&action=sign_failed"
        ))
        .await
        .body;
    assert_eq!(failures["total"], 5);
}
on_both_databases!(parallel_guesses_meet_the_lockout);
