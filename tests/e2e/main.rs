//! End-to-end tests: the real api over HTTP on loopback, against SQLite and PostgreSQL.
//! One binary, so the PostgreSQL cluster is started once for all of them.

mod account_migration;
mod account_tokens;
mod accounts;
mod action_items;
mod actual_dates;
mod audit;
mod audit_checkpoints;
mod auth;
mod browser;
mod calendar;
mod capa;
mod change_control;
mod chaos;
mod cmo_merges;
mod concurrency;
mod connection_ends;
mod digests;
mod escalation_policies;
mod escalation_workers;
mod escalations;
mod events;
mod hardening;
mod idempotency;
mod instants;
mod merge_choices;
mod observability;
mod openapi;
mod operations;
mod outbox;
mod paging;
mod partner_network;
pub mod partner_pages;
mod partners;
mod permissions;
mod plan;
mod problems;
mod programs;
pub mod quality;
pub mod record_numbers;
pub mod record_pages;
mod reminders;
mod replicas;
mod requirements;
mod selection;
mod signatures;
pub mod stakeholder_emails;
mod standard_webhooks;
mod tenancy;
mod upgrade;
pub mod validation;
mod webhook_subscriptions;
mod webhook_workers;
pub mod webhooks;
mod worker;
mod worker_metrics;
mod workflow;

use e2e::TestApp;
use serde_json::{Value, json};

/// The password a test person chooses when none is given.
pub const OWN_PASSWORD: &str = "a password of my own choosing";

/// What joining looks like: the admin invites, the person accepts from the email with
/// their own `password` (default [`OWN_PASSWORD`]), signs in and creates their own token.
/// Returns (user id, token).
pub async fn user_with_token(
    app: &TestApp,
    email: &str,
    role: &str,
    password: Option<&str>,
) -> (i64, String) {
    let password = password.unwrap_or(OWN_PASSWORD);
    app.admin()
        .post(
            "/api/v1/invitations",
            json!({"email": email, "display_name": email.split('@').next().unwrap(), "role": role}),
        )
        .await
        .expect(201);
    let id = app.accept_invitation(email, password).await;
    (id, app.own_token(email, password).await)
}

/// The admin of the test sponsor moves a person of it to `zone` (as `PATCH /users/{id}`
/// does for someone who moved): their reminders and pages then read that clock.
pub async fn live_in(app: &TestApp, user_id: i64, zone: &str) {
    let admin = app.admin();
    let path = format!("/api/v1/users/{user_id}");
    let version = admin.get(&path).await.expect(200).body["version"].clone();
    admin
        .patch(
            &path,
            json!({"version": version, "time_zone": zone, "reason": "works from there"}),
        )
        .await
        .expect(200);
}

/// Another organization: a CMO the test sponsor registers, or a sponsor the installation
/// operator creates (`cmo-api create-sponsor`). Its first admin accepts the emailed
/// invitation and creates their own token. Returns (org id, its admin's id, their token).
pub async fn partner_org(
    app: &TestApp,
    name: &str,
    kind: &str,
    admin_email: &str,
) -> (i64, i64, String) {
    let org_id = if kind == "sponsor" {
        let (org, _) = api::bootstrap::create_sponsor(
            &app.db,
            &app.chain_keys,
            api::bootstrap::SponsorRequest {
                org_name: name.to_string(),
                admin_email: admin_email.to_string(),
                admin_name: "Partner Admin".to_string(),
                time_zone: "UTC".to_string(),
                now: app.now(),
                public_base_url: app.base_url.clone(),
            },
        )
        .await
        .expect("create sponsor");
        org.id
    } else {
        app.admin()
            .post(
                "/api/v1/organizations",
                json!({"name": name, "kind": kind, "admin": {"email": admin_email, "display_name": "Partner Admin"}}),
            )
            .await
            .expect(201)
            .body["organization"]["id"]
            .as_i64()
            .unwrap()
    };
    let admin_id = app.accept_invitation(admin_email, OWN_PASSWORD).await;
    (
        org_id,
        admin_id,
        app.own_token(admin_email, OWN_PASSWORD).await,
    )
}

/// Checks that signature `signature_id` on `record_type`/`record_id` is bound to what
/// was signed: its `signed_fields` are fields of `signed` (the record as it was at
/// signing, before the signature's id was written into it) with their values then, none
/// of them bookkeeping, its `record_hash` is their content hash, and it still matches;
/// by `signer`, with `meaning`, at the api's current time.
pub async fn assert_signature_binds(
    app: &TestApp,
    signature_id: &Value,
    record_type: &str,
    record_id: &Value,
    signed: &Value,
    signer: i64,
    meaning: &str,
) {
    let record_id = match record_id {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    let list = app
        .admin()
        .get(&format!(
            "/api/v1/signatures?record_type={record_type}&record_id={record_id}&limit=200"
        ))
        .await
        .expect(200)
        .body;
    let sig = list["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| &s["id"] == signature_id)
        .unwrap_or_else(|| panic!("signature {signature_id} on {record_type} {record_id}: {list}"))
        .clone();
    let fields = sig["signed_fields"]
        .as_object()
        .unwrap_or_else(|| panic!("what was signed is kept: {sig}"));
    assert!(fields.len() >= 3, "{sig}");
    for (field, value) in fields {
        assert!(
            !["version", "updated_at", "allowed_events", "blocked_events"]
                .contains(&field.as_str()),
            "{record_type}: bookkeeping is not signed: {field}"
        );
        assert_eq!(
            signed.get(field),
            Some(value),
            "{record_type} {record_id}: signed field {field} is the record's as signed"
        );
    }
    assert_eq!(
        sig["record_hash"].as_str().unwrap(),
        entity::audit::content_hash(&sig["signed_fields"]),
        "{record_type} {record_id}: the signature is bound to what was signed"
    );
    assert_eq!(sig["record_state"], "matching", "{sig}");
    assert_eq!(sig["changed_fields"], json!([]), "{sig}");
    assert_eq!(sig["signer_user_id"], signer, "{sig}");
    assert_eq!(sig["meaning"], meaning, "{sig}");
    let signed_at = chrono::DateTime::parse_from_rfc3339(sig["signed_at"].as_str().unwrap())
        .unwrap()
        .with_timezone(&chrono::Utc);
    assert_eq!(signed_at, app.now(), "{sig}");
}

/// `record` with `field` set back to null: the record as it was when it was signed.
pub fn before_signature(record: &Value, field: &str) -> Value {
    let mut r = record.clone();
    r[field] = Value::Null;
    // What the caller can do next is not part of the signed record.
    if let Some(fields) = r.as_object_mut() {
        fields.remove("allowed_events");
        fields.remove("blocked_events");
    }
    r
}

/// An RFC 3339 timestamp of an answer, as an instant (panics when it is not one).
pub fn instant(v: &Value) -> chrono::DateTime<chrono::Utc> {
    let text = v.as_str().unwrap_or_else(|| panic!("not a timestamp: {v}"));
    chrono::DateTime::parse_from_rfc3339(text)
        .unwrap_or_else(|e| panic!("{text}: {e}"))
        .with_timezone(&chrono::Utc)
}

/// Checks that the README's section between `begin` and `end` is `generated` (a table
/// the code enforces); `UPDATE_README=1` rewrites it instead.
pub fn readme_shows(begin: &str, end: &str, generated: &str) {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../README.md");
    let readme = std::fs::read_to_string(path).expect("README.md");
    let start = readme
        .find(begin)
        .unwrap_or_else(|| panic!("README marker {begin}"))
        + begin.len();
    let stop = readme[start..]
        .find(end)
        .unwrap_or_else(|| panic!("README marker {end}"))
        + start;
    if readme[start..stop] != *generated && std::env::var_os("UPDATE_README").is_some() {
        let updated = format!("{}{generated}{}", &readme[..start], &readme[stop..]);
        std::fs::write(path, updated).expect("write README.md");
        return;
    }
    assert_eq!(
        readme[start..stop],
        *generated,
        "README is out of date (UPDATE_README=1 cargo test -p e2e the_readme_shows)"
    );
}
