//! Webhook subscriptions: validation, the secret shown once, admins only, tenancy.

use e2e::{TestApp, on_both_databases};
use serde_json::json;

use crate::user_with_token;

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
    assert_eq!(list.body.as_array().unwrap().len(), 1);
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
        json!([])
    );
    admin.delete(&path).await.expect(204);
    assert_eq!(
        admin.get("/api/v1/webhooks").await.expect(200).body,
        json!([])
    );
}
on_both_databases!(subscriptions_are_validated_and_stay_in_their_organization);
