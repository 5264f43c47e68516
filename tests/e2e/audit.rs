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

/// How someone who can write the database, but does not hold the chain key, recomputes
/// the chain after an edit.
#[derive(Clone, Copy)]
pub(crate) enum Forgery {
    /// Plain SHA-256 rows (what verified as intact before the chain was keyed).
    Plain,
    /// Keyed rows under a key of the forger's own, naming it.
    OwnKey,
    /// Keyed rows under the forger's key, naming the installation's key id.
    StolenKeyId,
    /// An insider holding the key itself: keyed rows and a resealed head. Only a
    /// checkpoint kept outside the system shows this one.
    Insider,
}

/// Edits row `edit_seq`'s reason, recomputes every hash of the organization's chain from
/// row 1 as `how` says, and moves the chain head to the new end (its seal cannot be
/// recomputed, so it is left or, for `Plain`, removed as if never keyed).
pub(crate) async fn rechain(app: &TestApp, edit_seq: i64, how: Forgery) {
    use entity::audit::{
        CanonicalEvent, ChainKey, GENESIS_HASH, chain_hash, head_seal, keyed_chain_hash,
    };
    use entity::{audit_chain_head, audit_event};
    use sea_orm::{
        ActiveModelTrait, ActiveValue::Set, ColumnTrait, EntityTrait, QueryFilter, QueryOrder,
    };
    let forger = match how {
        Forgery::Insider => app.chain_keys.current().clone(),
        _ => ChainKey::from_hex(&"f0".repeat(32)).unwrap(),
    };
    let rows = audit_event::Entity::find()
        .filter(audit_event::Column::OrgId.eq(app.org_id))
        .order_by_asc(audit_event::Column::Seq)
        .all(&app.db)
        .await
        .unwrap();
    let mut prev = GENESIS_HASH.to_string();
    for row in rows {
        let mut e = row.clone();
        if e.seq == edit_seq {
            e.reason = Some("nothing to see".to_string());
        }
        e.prev_hash = prev.clone();
        match how {
            Forgery::Plain => {
                e.hash_format = entity::audit::FORMAT_PLAIN;
                e.key_id = None;
                e.hash = chain_hash(&prev, &CanonicalEvent::from(&e));
            }
            Forgery::OwnKey | Forgery::StolenKeyId | Forgery::Insider => {
                e.hash_format = entity::audit::FORMAT_KEYED;
                if matches!(how, Forgery::OwnKey) {
                    e.key_id = Some(forger.id().to_string());
                }
                e.hash = keyed_chain_hash(&forger, &prev, &CanonicalEvent::from(&e));
            }
        }
        prev = e.hash.clone();
        let mut active: audit_event::ActiveModel = row.into();
        active.reason = Set(e.reason);
        active.prev_hash = Set(e.prev_hash);
        active.hash = Set(e.hash);
        active.hash_format = Set(e.hash_format);
        active.key_id = Set(e.key_id);
        active.update(&app.db).await.unwrap();
    }
    let head = audit_chain_head::Entity::find_by_id(app.org_id)
        .one(&app.db)
        .await
        .unwrap()
        .unwrap();
    let seq = head.last_seq;
    let mut active: audit_chain_head::ActiveModel = head.into();
    active.last_hash = Set(prev.clone());
    if matches!(how, Forgery::Plain) {
        active.seal = Set(None);
        active.seal_key_id = Set(None);
    }
    if matches!(how, Forgery::Insider) {
        active.seal = Set(Some(head_seal(&forger, app.org_id, seq, &prev)));
    }
    active.update(&app.db).await.unwrap();
}

/// The chain is keyed with a secret outside the database: an edit whose hashes are all
/// recomputed (plain, under another key, or under another key with the right key id)
/// no longer verifies, and the verifier says what it could not check.
async fn a_chain_rewritten_without_the_key_is_detected(app: &TestApp) {
    // REQ: AUDIT-KEYED-CHAIN
    for n in 0..3 {
        user_with_token(app, &format!("k{n}@acme.test"), "viewer", None).await;
    }
    let admin = app.admin();
    let verify = || async {
        admin
            .get("/api/v1/audit-events/verify")
            .await
            .expect(200)
            .body
    };
    let honest = verify().await;
    assert_eq!(honest["status"], "intact", "{honest}");
    assert_eq!(
        honest["keyed_rows"], honest["checked"],
        "every row is keyed"
    );
    assert_eq!(honest["unkeyed_rows"], 0);
    assert_eq!(honest["current_key_id"], app.chain_keys.current().id());
    assert_eq!(honest["caveats"], json!([]));

    rechain(app, 3, Forgery::StolenKeyId).await;
    let report = verify().await;
    assert_eq!(report["status"], "broken", "{report}");
    assert_eq!(report["first_broken_link"]["seq"], 1, "{report}");
    assert_eq!(report["first_broken_link"]["kind"], "hash_mismatch");

    // Under a key of one's own, the rows cannot be checked (and the verifier says so),
    // but the chain no longer ends where the sealed head says.
    rechain(app, 3, Forgery::OwnKey).await;
    let report = verify().await;
    assert_eq!(report["status"], "broken", "{report}");
    assert_eq!(report["first_broken_link"]["kind"], "head_seal_mismatch");
    assert_eq!(report["unchecked_rows"], report["head_seq"], "{report}");
    let forger = entity::audit::ChainKey::from_hex(&"f0".repeat(32)).unwrap();
    assert_eq!(report["unknown_key_ids"], json!([forger.id()]));
    assert!(
        report["caveats"][0]
            .as_str()
            .unwrap()
            .contains("could not be checked"),
        "{report}"
    );

    // As plain rows throughout, with the head's seal removed: what verified as intact
    // before the chain was keyed.
    rechain(app, 3, Forgery::Plain).await;
    let report = verify().await;
    assert_eq!(report["status"], "broken", "{report}");
    assert_eq!(report["first_broken_link"]["kind"], "head_seal_mismatch");
    assert_eq!(report["unkeyed_rows"], report["head_seq"], "{report}");
}
on_both_databases!(a_chain_rewritten_without_the_key_is_detected);

/// A replica that does not hold the key the chain was last written with refuses to start
/// (it would write rows no other replica can check); on PostgreSQL a replica without any
/// key refuses too, since replicas cannot share a generated file.
async fn a_replica_with_another_key_refuses_to_start(app: &TestApp) {
    // REQ: AUDIT-KEYED-CHAIN
    use e2e::worker_process::WorkerProcess;
    let other = entity::audit::KeyRing::generate();
    let mut stranger = WorkerProcess::start(
        &app.database_url,
        "smtp://127.0.0.1:9",
        "stranger",
        app.now(),
        &[("CMO_AUDIT_KEY", &other.current().to_hex())],
    );
    let status = stranger.exit_status().await.expect("ends on its own");
    assert!(!status.success());
    let log = stranger.log();
    assert!(
        log.contains(&format!(
            "last written with key {}, which this process does not hold",
            app.chain_keys.current().id()
        )),
        "{log}"
    );
    if app.backend == e2e::Backend::Postgres {
        let mut keyless = WorkerProcess::start(
            &app.database_url,
            "smtp://127.0.0.1:9",
            "keyless",
            app.now(),
            &[("CMO_AUDIT_KEY", "")],
        );
        assert!(!keyless.exit_status().await.expect("ends").success());
        assert!(
            keyless
                .log()
                .contains("PostgreSQL needs the audit chain key"),
            "{}",
            keyless.log()
        );
    }
    // The rows are still all keyed with the installation's key.
    let report = app
        .admin()
        .get("/api/v1/audit-events/verify")
        .await
        .expect(200)
        .body;
    assert_eq!(report["status"], "intact", "{report}");
}
on_both_databases!(a_replica_with_another_key_refuses_to_start);

/// An installation whose rows were written before the chain was keyed (plain hashes, an
/// unsealed head): the first keyed start seals the head, the old rows keep verifying and
/// are reported as unkeyed, and every row from then on is keyed.
async fn rows_written_before_keying_stay_verifiable(app: &TestApp) {
    // REQ: AUDIT-KEYED-CHAIN
    rechain(app, 0, Forgery::Plain).await; // no edit: the chain as the old version wrote it
    let admin = app.admin();
    let before = admin
        .get("/api/v1/audit-events/verify")
        .await
        .expect(200)
        .body;
    assert_eq!(
        before["first_broken_link"]["kind"], "head_seal_mismatch",
        "unsealed"
    );
    // A process starts with the key (as after the upgrade): it seals the heads.
    let source = entity::audit::key_store::KeySource {
        keys: Some(
            app.chain_keys
                .keys()
                .iter()
                .map(|k| k.to_hex())
                .collect::<Vec<_>>()
                .join(","),
        ),
        ..Default::default()
    };
    let opened = entity::audit::key_store::open(&source, &app.db)
        .await
        .unwrap();
    assert!(opened.sealed_heads >= 1, "{opened:?}");
    assert!(opened.notices().iter().any(|n| n.contains("sealed")));
    let after = admin
        .get("/api/v1/audit-events/verify")
        .await
        .expect(200)
        .body;
    assert_eq!(after["status"], "intact", "{after}");
    let plain = after["unkeyed_rows"].as_i64().unwrap();
    assert_eq!(plain, after["head_seq"].as_i64().unwrap());
    assert!(
        after["caveats"][0]
            .as_str()
            .unwrap()
            .contains("written before the chain was keyed"),
        "{after}"
    );
    user_with_token(app, "new@acme.test", "viewer", None).await;
    let later = admin
        .get("/api/v1/audit-events/verify")
        .await
        .expect(200)
        .body;
    assert_eq!(later["status"], "intact", "{later}");
    assert_eq!(later["unkeyed_rows"], plain);
    assert!(later["keyed_rows"].as_i64().unwrap() >= 1, "{later}");
}
on_both_databases!(rows_written_before_keying_stay_verifiable);
