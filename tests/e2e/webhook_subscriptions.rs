//! Webhook subscriptions kept in bounds: validation, the secret shown once, admins only,
//! tenancy; receivers inside the product's network refused at subscription and at
//! delivery; old delivery logs purged.

use std::time::Duration;

use chrono::TimeDelta;
use e2e::hooks::{HookReceiver, HookReply};
use e2e::{TestApp, on_both_databases};
use serde_json::json;
use worker::jobs::webhooks::delivery_pass;
use worker::outbound::http::HttpClient;

use crate::programs::program_setup;
use crate::user_with_token;
use crate::webhooks::{deliveries, pass, report_minor, settings, subscribe};

async fn subscriptions_are_validated_and_stay_in_their_organization(app: &TestApp) {
    let admin = app.admin();
    let bad = admin
        .post(
            "/api/v1/webhooks",
            json!({"url": "http://erp.example.com/hook", "event_types": ["deviation.exploded"]}),
        )
        .await
        .expect_problem(422, "validation_failed")
        .body;
    let fields: Vec<&str> = bad["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["field"].as_str().unwrap())
        .collect();
    assert_eq!(fields, ["url", "event_types"]);
    let created = admin
        .post(
            "/api/v1/webhooks",
            json!({"url": "http://127.0.0.1:9/hook", "event_types": ["escalation.opened", "deviation.reported", "escalation.opened"]}),
        )
        .await
        .expect(201)
        .body;
    let secret = created["secret"].as_str().unwrap();
    assert!(secret.starts_with("whsec_") && secret.len() > 40);
    assert_eq!(
        created["subscription"]["event_types"],
        json!(["deviation.reported", "escalation.opened"])
    );
    let id = created["subscription"]["id"].as_i64().unwrap();
    // The secret is never shown again.
    let list = admin.get("/api/v1/webhooks").await.expect(200);
    assert!(!list.text.contains(secret));
    assert_eq!(list.body["items"].as_array().unwrap().len(), 1);
    assert_eq!(list.body["total"], 1);
    let path = format!("/api/v1/webhooks/{id}");
    admin
        .patch(&path, json!({"version": 1, "active": false}))
        .await
        .expect(200);
    admin
        .patch(&path, json!({"version": 1, "active": true}))
        .await
        .expect_problem(409, "version_conflict");
    admin
        .patch(&path, json!({"version": 2, "url": "https://x.test/#frag"}))
        .await
        .expect_problem(422, "validation_failed");
    // Not admins, not other organizations.
    let (_, viewer) = user_with_token(app, "v@acme.test", "viewer", None).await;
    app.client(&viewer)
        .post(
            "/api/v1/webhooks",
            json!({"url": "https://x.test/h", "event_types": ["gate.decided"]}),
        )
        .await
        .expect_problem(403, "forbidden");
    let (_, _, other) = crate::partner_org(app, "Other CMO", "cmo", "x@other.test").await;
    let other = app.client(&other);
    other
        .patch(&path, json!({"version": 2, "active": true}))
        .await
        .expect_problem(404, "not_found");
    other.delete(&path).await.expect_problem(404, "not_found");
    assert_eq!(
        other.get("/api/v1/webhooks").await.expect(200).body,
        json!({"items": [], "total": 0, "limit": 50, "offset": 0, "next_cursor": null})
    );
    admin.delete(&path).await.expect(204);
    assert_eq!(
        admin.get("/api/v1/webhooks").await.expect(200).body,
        json!({"items": [], "total": 0, "limit": 50, "offset": 0, "next_cursor": null})
    );
}
on_both_databases!(subscriptions_are_validated_and_stay_in_their_organization);

/// Webhooks never reach into the network the product runs in: inner addresses are
/// refused when subscribed, in every spelling; at delivery every resolved address is
/// checked and a refused one gets no request at all; subscriptions and their delivery
/// logs (which hold the receivers' answers) are for admins only.
async fn webhooks_never_reach_inner_addresses(app: &TestApp) {
    // REQ: HOOK-SSRF
    let admin = app.admin();
    for url in [
        "https://169.254.169.254/latest/meta-data/",
        "https://10.0.0.8/hook",
        "https://172.16.0.1/hook",
        "https://192.168.0.10/hook",
        "https://100.64.1.1/hook",
        "https://0.0.0.0/hook",
        "https://[fd00::1]/hook",
        "https://[fe80::1]/hook",
        "https://[::ffff:169.254.169.254]/hook",
        "https://[::ffff:10.0.0.1]/hook",
        "http://erp.example.com/hook",
    ] {
        let refused = admin
            .post(
                "/api/v1/webhooks",
                json!({"url": url, "event_types": ["deviation.reported"]}),
            )
            .await
            .expect_problem(422, "validation_failed");
        assert_eq!(refused.body["errors"][0]["field"], "url", "{url}");
    }
    // A receiver on loopback (this installation allows it, for the tests) ...
    let s = program_setup(app).await;
    let receiver = HookReceiver::start().await;
    let (sub, _) = subscribe(&admin, &receiver.url("/hook"), &["deviation.reported"]).await;
    // ... can also be changed into an inner address: refused the same way.
    admin
        .patch(
            &format!("/api/v1/webhooks/{sub}"),
            json!({"version": 1, "url": "https://169.254.169.254/"}),
        )
        .await
        .expect_problem(422, "validation_failed");
    // A worker under the default policy (loopback not allowed) sends it nothing.
    report_minor(&s.pm, app, s.program_id, "Label misprint").await;
    let strict = HttpClient::new(Duration::from_millis(2000)).unwrap();
    let report = delivery_pass(&app.job_context("w1"), &strict, app.now(), &settings(20))
        .await
        .unwrap();
    assert_eq!((report.claimed, report.delivered), (1, 0), "{report:?}");
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(receiver.count(), 0, "the refused receiver got a request");
    let log = &deliveries(&admin, sub).await[0]["log"][0];
    assert!(
        log["error"]
            .as_str()
            .unwrap_or_default()
            .contains("127.0.0.1 is a loopback address")
            || log["error"]
                .as_str()
                .unwrap_or_default()
                .contains("a loopback address"),
        "{log}"
    );
    assert!(log["status_code"].is_null() && log["response_excerpt"].is_null());
    // The delivery log and the subscriptions are admins' only.
    let (_, viewer) = user_with_token(app, "v@acme.test", "viewer", None).await;
    let viewer = app.client(&viewer);
    viewer
        .get("/api/v1/webhooks")
        .await
        .expect_problem(403, "forbidden");
    viewer
        .get(&format!("/api/v1/webhooks/{sub}/deliveries"))
        .await
        .expect_problem(403, "forbidden");
}
on_both_databases!(webhooks_never_reach_inner_addresses);

/// Retention: finished deliveries and their attempt logs go after 30 days, idempotency
/// records after their replay window; pending deliveries and recent records stay.
async fn old_delivery_logs_and_idempotency_records_are_purged(app: &TestApp) {
    // REQ: OPS-RETENTION
    use sea_orm::{EntityTrait, PaginatorTrait};
    use worker::jobs::retention::{RetentionSettings, purge};
    let s = program_setup(app).await;
    let receiver = HookReceiver::start().await;
    let admin = app.admin();
    subscribe(&admin, &receiver.url("/hook"), &["deviation.reported"]).await;
    report_minor(&s.pm, app, s.program_id, "Label misprint").await;
    assert_eq!(pass(app, "w1", app.now()).await.delivered, 1);
    let count = async || {
        (
            entity::webhook::delivery::Entity::find()
                .count(&app.db)
                .await
                .unwrap(),
            entity::webhook::attempt::Entity::find()
                .count(&app.db)
                .await
                .unwrap(),
            entity::idempotency_key::Entity::find()
                .count(&app.db)
                .await
                .unwrap(),
        )
    };
    // An idempotent request leaves a record.
    admin
        .send(
            admin
                .request(awc::http::Method::POST, "/api/v1/tokens")
                .insert_header(("Idempotency-Key", "retention-test-1")),
            Some(&json!({"name": "kept a day"})),
        )
        .await
        .expect(201);
    // A pending delivery (its receiver fails) is never purged.
    receiver.then(HookReply::status(500));
    report_minor(&s.pm, app, s.program_id, "Smudge").await;
    pass(app, "w1", app.now()).await;
    let before = count().await;
    assert_eq!(before, (2, 2, 1), "{before:?}");
    let ctx = app.job_context("w1");
    let settings = RetentionSettings::default();
    let soon = purge(&ctx, app.now() + TimeDelta::hours(2), &settings)
        .await
        .unwrap();
    assert_eq!(soon, Default::default(), "nothing is old yet");
    let later = purge(&ctx, app.now() + TimeDelta::days(31), &settings)
        .await
        .unwrap();
    assert_eq!(
        (
            later.webhook_deliveries,
            later.webhook_attempts,
            later.idempotency_records
        ),
        (1, 1, 1),
        "{later:?}"
    );
    assert_eq!(
        count().await,
        (1, 1, 0),
        "the pending delivery and its log stay"
    );
}
on_both_databases!(old_delivery_logs_and_idempotency_records_are_purged);
