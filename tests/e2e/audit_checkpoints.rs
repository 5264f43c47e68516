//! Signed checkpoints of the audit chain: taken daily when the chain moved, sent to the
//! organization's quality users and tools, checkable by anyone with the published public
//! key, and catching what the key alone cannot: an insider who holds the key and
//! rewrites or truncates the chain.

use e2e::{TestApp, on_both_databases};
use sea_orm::{ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter};
use serde_json::{Value, json};

use crate::audit::{Forgery, rechain};
use crate::user_with_token;

/// Checks `kept`'s signature with the openssl command line and the published PEM key:
/// what a recipient does without this product or any secret.
fn openssl_verifies(statement: &str, signature_hex: &str, pem: &str) -> bool {
    let dir = tempfile::tempdir().unwrap();
    let (msg, sig, key) = (
        dir.path().join("statement.txt"),
        dir.path().join("signature.bin"),
        dir.path().join("key.pem"),
    );
    std::fs::write(&msg, statement).unwrap();
    std::fs::write(&sig, hex::decode(signature_hex).unwrap()).unwrap();
    std::fs::write(&key, pem).unwrap();
    let out = std::process::Command::new("openssl")
        .args(["pkeyutl", "-verify", "-pubin", "-rawin", "-inkey"])
        .arg(&key)
        .arg("-in")
        .arg(&msg)
        .arg("-sigfile")
        .arg(&sig)
        .output()
        .expect("openssl (the CI installs it)");
    out.status.success()
}

async fn a_daily_checkpoint_anchors_the_chain_against_an_insider_with_the_key(app: &TestApp) {
    // REQ: AUDIT-CHECKPOINT
    let (quality_id, _) = user_with_token(app, "qa@acme.test", "quality", None).await;
    user_with_token(app, "viewer@acme.test", "viewer", None).await;
    let ctx = app.job_context("checkpointer");
    let first = worker::jobs::checkpoints::run(&ctx, app.now())
        .await
        .unwrap();
    assert!(first.taken >= 1 && first.not_intact == 0, "{first:?}");
    let again = worker::jobs::checkpoints::run(&ctx, app.now())
        .await
        .unwrap();
    assert_eq!(again.taken, 0, "nothing moved, nothing taken: {again:?}");

    let admin = app.admin();
    let list = admin
        .get("/api/v1/audit-checkpoints")
        .await
        .expect(200)
        .body;
    assert_eq!(list["total"], 1, "{list}");
    let view = &list["items"][0];
    let kept = view["checkpoint"].clone();
    let head = admin
        .get("/api/v1/audit-events/verify")
        .await
        .expect(200)
        .body["head_seq"]
        .clone();
    assert_eq!(kept["seq"], head);
    assert_eq!(view["kind"], "daily");

    // The public key is published (no sign-in) and checks the signature outside the product.
    let keys = app
        .anonymous()
        .get("/api/v1/audit-checkpoint-keys")
        .await
        .expect(200)
        .body;
    assert_eq!(keys["total"], 1, "{keys}");
    let keys = &keys["items"];
    assert_eq!(keys[0]["public_key"], kept["public_key"]);
    assert_eq!(keys[0]["current"], true);
    let statement = view["statement"].as_str().unwrap();
    let pem = keys[0]["public_key_pem"].as_str().unwrap();
    assert!(openssl_verifies(
        statement,
        kept["signature"].as_str().unwrap(),
        pem
    ));
    assert!(!openssl_verifies(
        &statement.replace("seq: ", "seq: 1"),
        kept["signature"].as_str().unwrap(),
        pem
    ));

    // It left the system: a domain event for the organization's tools, and an email to
    // each quality user with the checkpoint to keep.
    let events = admin
        .get("/api/v1/events?types=audit.checkpoint")
        .await
        .expect(200)
        .body;
    assert_eq!(
        events["items"][0]["payload"]["signature"], kept["signature"],
        "{events}"
    );
    worker::jobs::notifications::notify_events(&ctx, app.now(), 500)
        .await
        .unwrap();
    let emails = entity::outbox::Entity::find()
        .filter(entity::outbox::Column::DedupeKey.like("notify:%"))
        .all(&app.db)
        .await
        .unwrap();
    let to_quality: Vec<_> = emails
        .iter()
        .filter(|e| e.to_addrs.contains("qa@acme.test"))
        .collect();
    assert_eq!(to_quality.len(), 1, "one email to the quality user");
    assert!(
        to_quality[0]
            .subject
            .starts_with("Audit checkpoint of Acme Bio")
    );
    assert!(
        to_quality[0]
            .text_body
            .contains(kept["signature"].as_str().unwrap())
    );
    assert!(
        emails
            .iter()
            .all(|e| !e.to_addrs.contains("viewer@acme.test")),
        "only quality users"
    );
    let _ = quality_id;

    let check = |body: Value| async move {
        app.admin()
            .post("/api/v1/audit-checkpoints/verify", body)
            .await
            .expect(200)
            .body
    };
    let verdict = check(kept.clone()).await;
    assert_eq!(verdict["signature_valid"], true, "{verdict}");
    assert_eq!(verdict["signed_by_this_installation"], true);
    assert_eq!(verdict["chain"], "matches");

    // An edited checkpoint does not hold; a malformed one is refused.
    let mut edited = kept.clone();
    edited["seq"] = json!(1);
    let verdict = check(edited).await;
    assert_eq!(verdict["signature_valid"], false, "{verdict}");
    let mut malformed = kept.clone();
    malformed["signature"] = json!("zz");
    app.admin()
        .post("/api/v1/audit-checkpoints/verify", malformed)
        .await
        .expect(422);

    // More changes, then an insider with the key rewrites row 2 and reseals: the chain
    // verifies, the kept checkpoint does not.
    user_with_token(app, "later@acme.test", "viewer", None).await;
    rechain(app, 2, Forgery::Insider).await;
    let chain = admin
        .get("/api/v1/audit-events/verify")
        .await
        .expect(200)
        .body;
    assert_eq!(
        chain["status"], "intact",
        "the key alone cannot tell: {chain}"
    );
    let verdict = check(kept.clone()).await;
    assert_eq!(verdict["chain"], "rewritten", "{verdict}");
    assert!(verdict["detail"].as_str().unwrap().contains("rewritten"));
}
on_both_databases!(a_daily_checkpoint_anchors_the_chain_against_an_insider_with_the_key);

/// A chain cut back to before a kept checkpoint (rows deleted and the head rewound by
/// someone with the key, or a restore of an older backup) is shown by that checkpoint.
async fn a_kept_checkpoint_shows_a_chain_cut_back_before_it(app: &TestApp) {
    // REQ: AUDIT-CHECKPOINT
    let ctx = app.job_context("checkpointer");
    let keep_seq = app.admin().get("/api/v1/audit-events/verify").await.body["head_seq"]
        .as_i64()
        .unwrap();
    user_with_token(app, "one@acme.test", "viewer", None).await;
    worker::jobs::checkpoints::run(&ctx, app.now())
        .await
        .unwrap();
    let kept =
        app.admin().get("/api/v1/audit-checkpoints").await.body["items"][0]["checkpoint"].clone();
    // Cut back to `keep_seq`, the head rewound and resealed with the key.
    app.db
        .execute_unprepared(&format!(
            "DELETE FROM audit_events WHERE org_id = {} AND seq > {keep_seq}",
            app.org_id
        ))
        .await
        .unwrap();
    let last = entity::audit_event::Entity::find()
        .filter(entity::audit_event::Column::OrgId.eq(app.org_id))
        .filter(entity::audit_event::Column::Seq.eq(keep_seq))
        .one(&app.db)
        .await
        .unwrap()
        .unwrap();
    let key = app.chain_keys.current();
    let seal = entity::audit::head_seal(key, app.org_id, keep_seq, &last.hash);
    app.db
        .execute_unprepared(&format!(
            "UPDATE audit_chain_heads SET last_seq = {keep_seq}, last_hash = '{}', seal = '{seal}' \
             WHERE org_id = {}",
            last.hash, app.org_id
        ))
        .await
        .unwrap();
    let chain = app.admin().get("/api/v1/audit-events/verify").await.body;
    assert_eq!(chain["status"], "intact", "{chain}");
    let verdict = app
        .admin()
        .post("/api/v1/audit-checkpoints/verify", kept)
        .await
        .expect(200)
        .body;
    assert_eq!(verdict["chain"], "shorter", "{verdict}");
    assert_eq!(verdict["chain_head_seq"], keep_seq);
}
on_both_databases!(a_kept_checkpoint_shows_a_chain_cut_back_before_it);

/// A chain that does not verify is not anchored: no checkpoint, and its quality users
/// and admins are told (once a day).
async fn a_broken_chain_is_not_anchored_and_people_are_told(app: &TestApp) {
    // REQ: AUDIT-CHECKPOINT
    user_with_token(app, "qa@acme.test", "quality", None).await;
    app.db
        .execute_unprepared(&format!(
            "UPDATE audit_events SET reason = 'edited' WHERE org_id = {} AND seq = 2",
            app.org_id
        ))
        .await
        .unwrap();
    let ctx = app.job_context("checkpointer");
    let report = worker::jobs::checkpoints::run(&ctx, app.now())
        .await
        .unwrap();
    assert_eq!(report.not_intact, 1, "{report:?}");
    let list = app
        .admin()
        .get("/api/v1/audit-checkpoints")
        .await
        .expect(200)
        .body;
    assert_eq!(list["total"], 0, "{list}");
    let told = entity::outbox::Entity::find()
        .filter(entity::outbox::Column::DedupeKey.like("audit-not-intact:%"))
        .all(&app.db)
        .await
        .unwrap();
    let mut to: Vec<&str> = told.iter().map(|e| e.to_addrs.as_str()).collect();
    to.sort();
    assert_eq!(to.len(), 2, "the quality user and the admin: {to:?}");
    assert!(
        told[0].text_body.contains("breaks at row 2"),
        "{}",
        told[0].text_body
    );
    worker::jobs::checkpoints::run(&ctx, app.now())
        .await
        .unwrap();
    let again = entity::outbox::Entity::find()
        .filter(entity::outbox::Column::DedupeKey.like("audit-not-intact:%"))
        .all(&app.db)
        .await
        .unwrap();
    assert_eq!(again.len(), 2, "told once a day");
}
on_both_databases!(a_broken_chain_is_not_anchored_and_people_are_told);
