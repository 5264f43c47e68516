//! The audit trail: every mutation recorded with before/after, the chain verifiable, and
//! tampering detected.

use e2e::{TestApp, on_both_databases};
use sea_orm::ConnectionTrait;
use serde_json::json;

use crate::user_with_token;

async fn every_mutation_is_audited_with_before_and_after(app: &TestApp) {
    // REQ: AUDIT-EVERY-CHANGE
    let admin = app.admin();
    let (id, _) = user_with_token(app, "pm@acme.test", "program_manager", None).await;
    admin
        .patch(
            &format!("/api/v1/users/{id}"),
            json!({"version": 1, "time_zone": "Asia/Tokyo", "reason": "moved to Japan"}),
        )
        .await
        .expect(200);
    admin
        .post(&format!("/api/v1/users/{id}/password-reset"), json!({}))
        .await
        .expect(202);
    admin
        .post(
            &format!("/api/v1/users/{id}/deactivate"),
            json!({"reason": "left"}),
        )
        .await
        .expect(200);

    let events = admin
        .get(&format!(
            "/api/v1/audit-events?entity_type=user&entity_id={id}"
        ))
        .await
        .expect(200)
        .body;
    let actions: Vec<&str> = events["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    assert_eq!(
        actions,
        [
            "create",
            "certify_signature",
            "sign_in",
            "update",
            "force_password_reset",
            "password_reset_requested",
            "deactivate"
        ]
    );
    let update = &events["items"][3];
    assert_eq!(update["before"]["time_zone"], "UTC");
    assert_eq!(update["after"]["time_zone"], "Asia/Tokyo");
    assert_eq!(update["reason"], "moved to Japan");
    assert_eq!(update["actor_user_id"], app.admin_id);
    assert!(update["request_id"].is_string());
    let all_text = events.to_string();
    assert!(
        !all_text.contains("argon2"),
        "password hashes never reach the audit trail"
    );

    let tokens = admin
        .get("/api/v1/audit-events?entity_type=api_token&action=issue")
        .await
        .expect(200)
        .body;
    assert!(
        tokens["total"].as_u64().unwrap() >= 2,
        "bootstrap and test tokens are audited"
    );
    let orgs = admin
        .get("/api/v1/audit-events?entity_type=organization")
        .await
        .expect(200)
        .body;
    assert_eq!(orgs["items"][0]["action"], "create");

    let report = admin
        .get("/api/v1/audit-events/verify")
        .await
        .expect(200)
        .body;
    assert_eq!(report["intact"], true, "{report}");
    assert_eq!(report["checked"], report["head_seq"]);
    assert!(report["first_broken_link"].is_null());
}
on_both_databases!(every_mutation_is_audited_with_before_and_after);

async fn tampering_with_a_row_is_detected(app: &TestApp) {
    // REQ: AUDIT-CHAIN
    let admin = app.admin();
    for n in 0..3 {
        user_with_token(app, &format!("u{n}@acme.test"), "viewer", None).await;
    }
    assert_eq!(
        admin
            .get("/api/v1/audit-events/verify")
            .await
            .expect(200)
            .body["intact"],
        true
    );
    let head = admin.get("/api/v1/audit-events/verify").await.body["head_seq"]
        .as_i64()
        .unwrap();

    // Someone with database access rewrites history...
    app.db
        .execute_unprepared(&format!(
            "UPDATE audit_events SET reason = 'nothing to see' WHERE org_id = {} AND seq = 3",
            app.org_id
        ))
        .await
        .unwrap();
    let report = admin
        .get("/api/v1/audit-events/verify")
        .await
        .expect(200)
        .body;
    assert_eq!(report["intact"], false);
    assert_eq!(report["first_broken_link"]["seq"], 3);
    assert_eq!(report["first_broken_link"]["kind"], "hash_mismatch");
    assert_eq!(report["checked"], 2);

    // ...or deletes the newest events.
    // (Putting the original value back makes the chain whole again.)
    app.db
        .execute_unprepared(&format!(
            "UPDATE audit_events SET reason = NULL WHERE org_id = {} AND seq = 3",
            app.org_id
        ))
        .await
        .unwrap();
    assert_eq!(
        admin.get("/api/v1/audit-events/verify").await.body["intact"],
        true
    );
    app.db
        .execute_unprepared(&format!(
            "DELETE FROM audit_events WHERE org_id = {} AND seq = {head}",
            app.org_id
        ))
        .await
        .unwrap();
    let report = admin
        .get("/api/v1/audit-events/verify")
        .await
        .expect(200)
        .body;
    assert_eq!(report["intact"], false);
    assert_eq!(report["first_broken_link"]["kind"], "truncated_tail");
}
on_both_databases!(tampering_with_a_row_is_detected);
