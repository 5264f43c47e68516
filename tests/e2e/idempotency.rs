//! Idempotency-Key: a retried POST is answered, not executed twice.

use awc::http::Method;
use e2e::{TestApp, on_both_databases};
use serde_json::{Value, json};

async fn post_with_key(app: &TestApp, path: &str, key: &str, body: &Value) -> e2e::Reply {
    let admin = app.admin();
    admin
        .send(
            admin
                .request(Method::POST, path)
                .insert_header(("Idempotency-Key", key)),
            Some(body),
        )
        .await
}

async fn a_retried_post_is_answered_not_repeated(app: &TestApp) {
    // REQ: API-IDEMPOTENCY
    let body = json!({"email": "retry@acme.test", "display_name": "Retry", "role": "viewer"});
    let first = post_with_key(app, "/api/v1/invitations", "create-retry-user-1", &body)
        .await
        .expect(201);
    assert!(first.header("idempotent-replayed").is_none());
    let again = post_with_key(app, "/api/v1/invitations", "create-retry-user-1", &body)
        .await
        .expect(201);
    assert_eq!(again.header("idempotent-replayed"), Some("true"));
    assert_eq!(again.body, first.body, "the first response, byte for byte");
    let created = app
        .admin()
        .get("/api/v1/audit-events?entity_type=invitation&action=create")
        .await
        .body;
    assert_eq!(created["total"], 1, "one invitation, not two");

    // Same key, different request: refused.
    let other = json!({"email": "other@acme.test", "display_name": "Other", "role": "viewer"});
    let r = post_with_key(app, "/api/v1/invitations", "create-retry-user-1", &other)
        .await
        .expect_problem(422, "validation_failed");
    assert_eq!(r.body["errors"][0]["code"], "key_reused");

    // A failed request is not remembered: fixed, it may be retried under its key.
    let bad = json!({"email": "not-an-email", "display_name": "Fix Me", "role": "viewer"});
    post_with_key(app, "/api/v1/invitations", "fix-and-retry", &bad)
        .await
        .expect(422);
    let fixed = json!({"email": "fixed@acme.test", "display_name": "Fix Me", "role": "viewer"});
    post_with_key(app, "/api/v1/invitations", "fix-and-retry", &fixed)
        .await
        .expect(201);

    // Keys belong to their user: another user's identical key is a different key.
    let (_, other_admin) = crate::user_with_token(app, "admin2@acme.test", "admin", None).await;
    let other_admin = app.client(&other_admin);
    let token_body = json!({"name": "shared key"});
    let mine = post_with_key(app, "/api/v1/tokens", "shared-key", &token_body)
        .await
        .expect(201);
    let theirs = other_admin
        .send(
            other_admin
                .request(Method::POST, "/api/v1/tokens")
                .insert_header(("Idempotency-Key", "shared-key")),
            Some(&token_body),
        )
        .await
        .expect(201);
    assert_ne!(mine.body["secret"], theirs.body["secret"]);

    post_with_key(app, "/api/v1/tokens", "has spaces", &token_body)
        .await
        .expect_problem(422, "validation_failed");

    // After a day the key is forgotten.
    app.clock.advance(chrono::TimeDelta::hours(25));
    let later = post_with_key(app, "/api/v1/tokens", "shared-key", &token_body)
        .await
        .expect(201);
    assert!(later.header("idempotent-replayed").is_none());
    assert_ne!(later.body["secret"], mine.body["secret"]);
}
on_both_databases!(a_retried_post_is_answered_not_repeated);

async fn concurrent_duplicates_execute_once(app: &TestApp) {
    // REQ: API-IDEMPOTENCY
    let body = json!({"name": "raced"});
    let attempts: Vec<_> = (0..5)
        .map(|_| post_with_key(app, "/api/v1/tokens", "race-key", &body))
        .collect();
    let replies = futures_util::future::join_all(attempts).await;
    let statuses: Vec<u16> = replies.iter().map(|r| r.status.as_u16()).collect();
    assert!(
        statuses.iter().all(|s| *s == 201 || *s == 409),
        "{statuses:?}"
    );
    let issued = app
        .admin()
        .get("/api/v1/audit-events?entity_type=api_token&action=issue")
        .await
        .body;
    assert_eq!(
        issued["total"], 2,
        "the bootstrap token and one raced token: {statuses:?}"
    );
}
on_both_databases!(concurrent_duplicates_execute_once);

async fn a_replayed_token_does_not_repeat_its_secret(app: &TestApp) {
    let body = json!({"name": "retry-safe token"});
    let first = post_with_key(app, "/api/v1/tokens", "token-key-0001", &body)
        .await
        .expect(201);
    let secret = first.body["secret"].as_str().unwrap().to_string();
    assert!(secret.starts_with("cmo_"));
    let replay = post_with_key(app, "/api/v1/tokens", "token-key-0001", &body)
        .await
        .expect(201);
    assert_eq!(replay.header("idempotent-replayed"), Some("true"));
    assert_eq!(
        replay.body["token"]["id"], first.body["token"]["id"],
        "the same token, not a second one"
    );
    assert_ne!(
        replay.body["secret"].as_str(),
        Some(secret.as_str()),
        "secrets are shown once"
    );
    assert!(!replay.text.contains(&secret));
}
on_both_databases!(a_replayed_token_does_not_repeat_its_secret);

/// A claim in flight on record (as a binary from before answers were kept in the change's
/// transaction wrote it, during a rolling upgrade) answers 409; a claim older than five
/// minutes belongs to a crashed request and the retry is served. A replay just inside 24 hours
/// still gets the first answer.
async fn a_retry_during_the_first_request_answers_409_and_replays_last_24_hours(app: &TestApp) {
    // REQ: API-IDEMPOTENCY
    use sea_orm::ActiveModelTrait;
    use sha2::Digest;
    let body = json!({"name": "in flight"});
    let fingerprint = hex::encode(sha2::Sha256::digest(
        entity::audit::canonical_json(&body).as_bytes(),
    ));
    entity::idempotency_key::ActiveModel {
        id: sea_orm::ActiveValue::NotSet,
        user_id: sea_orm::ActiveValue::Set(app.admin_id),
        key: sea_orm::ActiveValue::Set("in-flight-key".to_string()),
        method: sea_orm::ActiveValue::Set("POST".to_string()),
        path: sea_orm::ActiveValue::Set("/api/v1/tokens".to_string()),
        request_hash: sea_orm::ActiveValue::Set(fingerprint),
        status: sea_orm::ActiveValue::Set(0),
        content_type: sea_orm::ActiveValue::Set(None),
        body: sea_orm::ActiveValue::Set(None),
        created_at: sea_orm::ActiveValue::Set(app.now()),
    }
    .insert(&app.db)
    .await
    .unwrap();
    post_with_key(app, "/api/v1/tokens", "in-flight-key", &body)
        .await
        .expect_problem(409, "idempotency_in_progress");
    app.clock.advance(chrono::TimeDelta::minutes(4));
    post_with_key(app, "/api/v1/tokens", "in-flight-key", &body)
        .await
        .expect_problem(409, "idempotency_in_progress");
    // Past five minutes the claim is a crashed request's: served afresh, once.
    app.clock.advance(chrono::TimeDelta::minutes(2));
    let served = post_with_key(app, "/api/v1/tokens", "in-flight-key", &body)
        .await
        .expect(201);
    assert!(served.header("idempotent-replayed").is_none());
    // 23 h 59 min later the same request is still answered from the record.
    app.clock
        .advance(chrono::TimeDelta::hours(23) + chrono::TimeDelta::minutes(59));
    let replayed = post_with_key(app, "/api/v1/tokens", "in-flight-key", &body)
        .await
        .expect(201);
    assert_eq!(replayed.header("idempotent-replayed"), Some("true"));
    assert_eq!(replayed.body["token"]["id"], served.body["token"]["id"]);
}
on_both_databases!(a_retry_during_the_first_request_answers_409_and_replays_last_24_hours);

/// The real `cmo-api` killed in the middle of a POST made with a key, as a crash would:
/// once after the change is written but before its commit, once after the commit but
/// before the answer leaves. Started again, the retry with the same key is served at
/// once (no "still processing" wait) and the change exists once: run by the retry in
/// the first case, replayed from the record committed with it in the second.
async fn a_request_killed_mid_change_is_retried_at_once_and_runs_once(app: &TestApp) {
    // REQ: API-IDEMPOTENCY
    use e2e::api_process::ApiProcess;
    use entity::api_token;
    use sea_orm::{ColumnTrait, EntityTrait, PaginatorTrait, QueryFilter};
    for (point, replayed) in [
        ("request_before_commit", None),
        ("request_after_commit", Some("true")),
    ] {
        let name = format!("killed at {point}");
        let body = json!({ "name": name });
        let key = format!("key-{point}");
        let stored = async || {
            api_token::Entity::find()
                .filter(api_token::Column::Name.eq(name.as_str()))
                .count(&app.db)
                .await
                .unwrap()
        };
        let mut dying = ApiProcess::start(
            &app.database_url,
            app.now(),
            &[("CMO_TEST_ABORT_AT", point)],
        );
        let client = dying.client(&app.admin_token);
        let sent = client
            .request(Method::POST, "/api/v1/tokens")
            .insert_header(("Idempotency-Key", key.as_str()))
            .send_json(&body)
            .await;
        assert!(sent.is_err(), "{point}: no answer from a process that died");
        let (status, log) = dying.ended().await;
        assert!(
            status.is_some_and(|s| !s.success()),
            "{point}: the api aborted ({status:?}); log:\n{log}"
        );
        assert!(log.contains("test crash point"), "{point}: {log}");
        drop(dying);
        let committed = u64::from(replayed.is_some());
        assert_eq!(stored().await, committed, "{point}: committed or not");

        let api = ApiProcess::start(&app.database_url, app.now(), &[]);
        let client = api.client(&app.admin_token);
        let retry = client
            .send(
                client
                    .request(Method::POST, "/api/v1/tokens")
                    .insert_header(("Idempotency-Key", key.as_str())),
                Some(&body),
            )
            .await
            .expect(201);
        assert_eq!(retry.header("idempotent-replayed"), replayed, "{point}");
        assert_eq!(stored().await, 1, "{point}: the change ran once");
        let again = client
            .send(
                client
                    .request(Method::POST, "/api/v1/tokens")
                    .insert_header(("Idempotency-Key", key.as_str())),
                Some(&body),
            )
            .await
            .expect(201);
        assert_eq!(again.header("idempotent-replayed"), Some("true"));
        assert_eq!(again.body["token"]["id"], retry.body["token"]["id"]);
        assert_eq!(stored().await, 1, "{point}: still once");
    }
}
on_both_databases!(a_request_killed_mid_change_is_retried_at_once_and_runs_once);
