//! Accounts people run themselves: invitation by email, sign-in, their own tokens and
//! their lineage, password reset, throttling, and the migration from admin-held
//! credentials.

use chrono::TimeDelta;
use e2e::smtp::SmtpSink;
use e2e::{TestApp, on_both_databases};
use lettre::message::Mailbox;
use serde_json::{Value, json};
use worker::jobs::outbox::dispatch;
use worker::outbound::mailer::Mailer;

use crate::{OWN_PASSWORD, user_with_token};

fn from() -> Mailbox {
    "cmo-orchestrator <noreply@cmo.test>".parse().unwrap()
}

/// Sends what the outbox holds through a real SMTP server; the messages `to` received.
async fn deliver(app: &TestApp, sink: &SmtpSink, to: &str) -> Vec<String> {
    let mailer = Mailer::new(Some(&sink.url()), std::env::temp_dir()).unwrap();
    dispatch(&app.job_context("mail"), &mailer, &from(), app.now(), 50)
        .await
        .unwrap();
    sink.received()
        .into_iter()
        .filter(|m| m.to.iter().any(|t| t == to))
        .map(|m| {
            m.parsed()
                .body_text(0)
                .map(|b| b.to_string())
                .unwrap_or_default()
        })
        .collect()
}

/// The `?token=` of the first link to `path` in `text`.
fn token_in(text: &str, path: &str) -> String {
    let at = text
        .find(&format!("{path}?token="))
        .unwrap_or_else(|| panic!("no {path} link in {text}"));
    text[at..]
        .split("?token=")
        .nth(1)
        .unwrap()
        .chars()
        .take_while(char::is_ascii_hexdigit)
        .collect()
}

pub(crate) async fn sign_in(app: &TestApp, email: &str, password: &str) -> e2e::client::Reply {
    app.anonymous()
        .post(
            "/api/v1/sign-in",
            json!({"email": email, "password": password}),
        )
        .await
}

/// The whole way in, over a real SMTP server: invited, the person opens the emailed
/// link, chooses a password, signs in, creates their own token and signs a record.
async fn a_person_joins_signs_in_and_signs_with_their_own_password(app: &TestApp) {
    // REQ: SEC-OWN-CREDENTIALS
    let sink = SmtpSink::start().await;
    let invited = app
        .admin()
        .post(
            "/api/v1/invitations",
            json!({"email": "Quinn@Acme.test", "display_name": "Quinn Alvarez", "role": "quality", "time_zone": "America/New_York"}),
        )
        .await
        .expect(201)
        .body;
    assert_eq!(invited["status"], "pending");
    assert_eq!(invited["email"], "quinn@acme.test");
    let emails = deliver(app, &sink, "quinn@acme.test").await;
    assert_eq!(emails.len(), 1);
    assert!(emails[0].contains("Acme Bio"), "{}", emails[0]);
    let token = token_in(&emails[0], "/invitations/accept");

    // The link opens a page for people, not JSON.
    let page = app
        .anonymous()
        .get(&format!("/invitations/accept?token={token}"))
        .await
        .expect(200);
    assert!(
        page.header("content-type")
            .unwrap()
            .starts_with("text/html")
    );
    assert!(page.text.contains("Join Acme Bio") && page.text.contains("Quinn Alvarez"));
    // A password too short is refused by name; the link still works after.
    app.anonymous()
        .post(
            "/api/v1/invitations/accept",
            json!({"token": token, "password": "short"}),
        )
        .await
        .expect_problem(422, "validation_failed");
    let user = app
        .anonymous()
        .post(
            "/api/v1/invitations/accept",
            json!({"token": token, "password": OWN_PASSWORD}),
        )
        .await
        .expect(201)
        .body;
    let user_id = user["id"].as_i64().unwrap();
    assert_eq!(user["has_password"], true);
    assert_eq!(user["role"], "quality");
    // Single use.
    app.anonymous()
        .post(
            "/api/v1/invitations/accept",
            json!({"token": token, "password": OWN_PASSWORD}),
        )
        .await
        .expect_problem(410, "link_not_usable");
    app.anonymous()
        .get(&format!("/invitations/accept?token={token}"))
        .await
        .expect(410);
    // Accepting is the invitee's own act in the audit trail.
    let trail = app
        .admin()
        .get(&format!(
            "/api/v1/audit-events?entity_type=user&entity_id={user_id}&action=create"
        ))
        .await
        .expect(200)
        .body;
    assert_eq!(trail["items"][0]["actor_user_id"], user_id);

    // Sign in, create one's own token, sign with one's own password.
    sign_in(app, "quinn@acme.test", "wrong password here")
        .await
        .expect_problem(401, "unauthorized");
    let signed_in = sign_in(app, "QUINN@acme.test", OWN_PASSWORD)
        .await
        .expect(201)
        .body;
    assert_eq!(signed_in["token"]["kind"], "sign_in");
    let expires: chrono::DateTime<chrono::Utc> = signed_in["token"]["expires_at"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(expires, app.now() + TimeDelta::hours(12));
    let session = app.client(signed_in["secret"].as_str().unwrap());
    let own = session
        .post("/api/v1/tokens", json!({"name": "my laptop"}))
        .await
        .expect(201)
        .body;
    assert_eq!(
        own["token"]["parent_token_id"],
        Value::Null,
        "the person's own"
    );
    assert_eq!(own["token"]["expires_at"], Value::Null);
    let qa = app.client(own["secret"].as_str().unwrap());
    let event_id = app.admin().get("/api/v1/audit-events?limit=1").await.body["items"][0]["id"]
        .as_i64()
        .unwrap();
    let sign = json!({"record_type": "audit_event", "record_id": event_id.to_string(), "meaning": "reviewed", "password": OWN_PASSWORD});
    // Not yet certified (she accepted without the box): signing says how, once.
    qa.post("/api/v1/signatures", sign.clone())
        .await
        .expect_problem(409, "signature_not_certified");
    qa.post(
        &format!("/api/v1/users/{user_id}/signature-certification"),
        json!({"password": OWN_PASSWORD, "statement_accepted": true}),
    )
    .await
    .expect(200);
    let signature = qa.post("/api/v1/signatures", sign).await.expect(201).body;
    assert_eq!(signature["signer_user_id"], user_id);
    // As a person reads it: printed name, meaning, date and time with the zone.
    assert_eq!(
        signature["manifestation"],
        format!(
            "Quinn Alvarez \u{2014} reviewed \u{2014} {} UTC",
            app.now().format("%Y-%m-%d %H:%M:%S")
        )
    );
    let certification = app
        .admin()
        .get(&format!(
            "/api/v1/audit-events?entity_type=user&entity_id={user_id}&action=certify_signature"
        ))
        .await
        .expect(200)
        .body;
    assert!(
        certification["items"][0]["after"]["statement"]
            .as_str()
            .unwrap()
            .contains("legally binding equivalent of my handwritten signature")
    );
    // The sign-in token expires; the person's own token does not.
    app.clock.advance(TimeDelta::hours(12));
    session
        .get("/api/v1/me")
        .await
        .expect_problem(401, "unauthorized");
    qa.get("/api/v1/me").await.expect(200);

    // A password is any characters (a password manager's tab, a leading space): what
    // can be chosen can be signed in and signed with.
    let odd = " tab\there, then ünïcode ";
    qa.put(
        &format!("/api/v1/users/{user_id}/password"),
        json!({"current_password": OWN_PASSWORD, "new_password": odd}),
    )
    .await
    .expect(204);
    sign_in(app, "quinn@acme.test", odd).await.expect(201);
    qa.post(
        &format!("/api/v1/users/{user_id}/signature-certification"),
        json!({"password": odd, "statement_accepted": true}),
    )
    .await
    .expect(200);
}
on_both_databases!(a_person_joins_signs_in_and_signs_with_their_own_password);

/// Invitations are listed, re-sent (the old link stops working) and revoked.
async fn invitations_are_listed_resent_and_revoked(app: &TestApp) {
    let admin = app.admin();
    let id = admin
        .post(
            "/api/v1/invitations",
            json!({"email": "late@acme.test", "display_name": "Late", "role": "viewer"}),
        )
        .await
        .expect(201)
        .body["id"]
        .as_i64()
        .unwrap();
    let first = app
        .emailed_token("late@acme.test", "/invitations/accept")
        .await;
    // A week later the link has expired; the invitation says so and can be re-sent.
    app.clock.advance(TimeDelta::days(7));
    let listed = admin
        .get("/api/v1/invitations?open=true")
        .await
        .expect(200)
        .body;
    assert_eq!(listed["items"][0]["status"], "expired");
    app.anonymous()
        .post(
            "/api/v1/invitations/accept",
            json!({"token": first, "password": OWN_PASSWORD}),
        )
        .await
        .expect_problem(410, "link_not_usable");
    let resent = admin
        .post(&format!("/api/v1/invitations/{id}/resend"), json!({}))
        .await
        .expect(200)
        .body;
    assert_eq!(resent["status"], "pending");
    assert_eq!(resent["sent_count"], 2);
    let second = app
        .emailed_token("late@acme.test", "/invitations/accept")
        .await;
    assert_ne!(first, second);
    // Revoked, the new link stops working too.
    admin
        .delete(&format!("/api/v1/invitations/{id}"))
        .await
        .expect(200);
    app.anonymous()
        .post(
            "/api/v1/invitations/accept",
            json!({"token": second, "password": OWN_PASSWORD}),
        )
        .await
        .expect_problem(410, "link_not_usable");
    admin
        .post(&format!("/api/v1/invitations/{id}/resend"), json!({}))
        .await
        .expect_problem(409, "invitation_closed");
    // Only admins invite.
    let (_, pm) = user_with_token(app, "pm@acme.test", "program_manager", None).await;
    app.client(&pm)
        .post(
            "/api/v1/invitations",
            json!({"email": "x@acme.test", "display_name": "X", "role": "admin"}),
        )
        .await
        .expect_problem(403, "forbidden");
    app.client(&pm)
        .get("/api/v1/invitations")
        .await
        .expect_problem(403, "forbidden");
}
on_both_databases!(invitations_are_listed_resent_and_revoked);

/// A forgotten password is reset by email; the reset ends the person's sessions.
async fn a_forgotten_password_is_reset_by_email(app: &TestApp) {
    let (_, own) = user_with_token(app, "pm@acme.test", "program_manager", None).await;
    let session = sign_in(app, "pm@acme.test", OWN_PASSWORD)
        .await
        .expect(201)
        .body;
    let session = app.client(session["secret"].as_str().unwrap());
    // The answer is the same for an unknown address: nothing tells who has an account.
    for email in ["pm@acme.test", "nobody@acme.test"] {
        app.anonymous()
            .post("/api/v1/password-resets", json!({"email": email}))
            .await
            .expect(202);
    }
    let reset = app
        .emailed_token("pm@acme.test", "/password-reset/choose")
        .await;
    let page = app
        .anonymous()
        .get(&format!("/password-reset/choose?token={reset}"))
        .await
        .expect(200);
    assert!(page.text.contains("Choose your password"));
    // The link works for one hour.
    app.clock.advance(TimeDelta::minutes(61));
    app.anonymous()
        .post(
            "/api/v1/password-resets/complete",
            json!({"token": reset, "new_password": "a brand new password"}),
        )
        .await
        .expect_problem(410, "link_not_usable");
    app.anonymous()
        .post("/api/v1/password-resets", json!({"email": "pm@acme.test"}))
        .await
        .expect(202);
    let reset = app
        .emailed_token("pm@acme.test", "/password-reset/choose")
        .await;
    app.anonymous()
        .post(
            "/api/v1/password-resets/complete",
            json!({"token": reset, "new_password": "a brand new password"}),
        )
        .await
        .expect(204);
    // Sessions end; the person's own tokens stay; only the new password signs in.
    session
        .get("/api/v1/me")
        .await
        .expect_problem(401, "unauthorized");
    app.client(&own).get("/api/v1/me").await.expect(200);
    sign_in(app, "pm@acme.test", OWN_PASSWORD)
        .await
        .expect_problem(401, "unauthorized");
    sign_in(app, "pm@acme.test", "a brand new password")
        .await
        .expect(201);
}
on_both_databases!(a_forgotten_password_is_reset_by_email);

/// The browser sign-in page sets a session cookie (HttpOnly, SameSite) that opens the
/// account page and is refused as an API bearer token; signing out ends it.
async fn the_sign_in_page_starts_a_browser_session(app: &TestApp) {
    user_with_token(app, "pm@acme.test", "program_manager", None).await;
    let page = app.anonymous().get("/sign-in").await.expect(200);
    assert!(page.text.contains("<form method=\"post\"") && page.text.contains("name=\"password\""));
    let form = |password: &str| {
        format!(
            "email=pm%40acme.test&password={}&next=%2Faccount",
            password.replace(' ', "+")
        )
    };
    let client = app.anonymous();
    // A form not sent from this site's page (no form token, or another browser's) is
    // refused before anything is checked: no login CSRF.
    let forged = client
        .send_raw(
            client
                .request(awc::http::Method::POST, "/sign-in")
                .content_type("application/x-www-form-urlencoded"),
            form(OWN_PASSWORD),
        )
        .await
        .expect(403);
    assert!(forged.html_text().contains("This form has expired"));
    assert!(forged.header("set-cookie").is_none());
    let token = app.form_token("/sign-in").await;
    let other_browser = app.form_token("/sign-in").await;
    assert_ne!(token, other_browser);
    let mixed = client
        .send_raw(
            client
                .request(awc::http::Method::POST, "/sign-in")
                .content_type("application/x-www-form-urlencoded")
                .insert_header(("Cookie", format!("cmo_csrf={token}"))),
            format!("{}&csrf={other_browser}", form(OWN_PASSWORD)),
        )
        .await
        .expect(403);
    assert!(mixed.header("set-cookie").is_none());
    let wrong = app
        .post_form("/sign-in", &token, &form("not my password"), None)
        .await
        .expect(401);
    assert!(wrong.text.contains("wrong email or password"));
    let signed = app
        .post_form("/sign-in", &token, &form(OWN_PASSWORD), None)
        .await
        .expect(303);
    assert_eq!(signed.header("location"), Some("/account"));
    let cookie = signed.header("set-cookie").unwrap().to_string();
    assert!(
        cookie.contains("HttpOnly") && cookie.contains("SameSite=Lax"),
        "{cookie}"
    );
    assert!(!cookie.contains("Secure"), "served over http here");
    let session = cookie
        .split(';')
        .next()
        .unwrap()
        .trim_start_matches("cmo_session=")
        .to_string();
    let account = client
        .send(
            client
                .request(awc::http::Method::GET, "/account")
                .insert_header(("Cookie", format!("cmo_session={session}"))),
            None,
        )
        .await
        .expect(200);
    assert!(account.text.contains("Signed in as pm"), "{}", account.text);
    // A session cookie is not an API token.
    app.client(&session)
        .get("/api/v1/me")
        .await
        .expect_problem(401, "unauthorized");
    // Idle for 30 minutes, the session ends.
    app.clock.advance(TimeDelta::minutes(31));
    let expired = client
        .send(
            client
                .request(awc::http::Method::GET, "/account")
                .insert_header(("Cookie", format!("cmo_session={session}"))),
            None,
        )
        .await
        .expect(303);
    assert_eq!(expired.header("location"), Some("/sign-in?next=/account"));
    // An open redirect is refused: `next` stays on this site.
    let elsewhere = app
        .post_form(
            "/sign-in",
            &token,
            &format!(
                "email=pm%40acme.test&password={}&next=%2F%2Fevil.test",
                OWN_PASSWORD.replace(' ', "+")
            ),
            None,
        )
        .await
        .expect(303);
    assert_eq!(elsewhere.header("location"), Some("/account"));
}
on_both_databases!(the_sign_in_page_starts_a_browser_session);
