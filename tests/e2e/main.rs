//! End-to-end tests: the real api over HTTP on loopback, against SQLite and PostgreSQL.
//! One binary, so the PostgreSQL cluster is started once for all of them.

mod audit;
mod auth;
mod calendar;
mod chaos;
mod concurrency;
mod digests;
mod escalations;
mod events;
mod idempotency;
mod instants;
mod openapi;
mod operations;
mod outbox;
mod partners;
mod plan;
mod problems;
mod programs;
mod quality;
mod reminders;
mod requirements;
mod signatures;
mod tenancy;
mod webhooks;
mod worker;

use e2e::TestApp;
use serde_json::{Value, json};

/// Password an admin gives a new user; the user replaces it with their own.
pub const TEMPORARY_PASSWORD: &str = "temporary password from the admin";

/// Creates a user in the admin's org and a token for them; returns (user id, token).
/// With `password`, the user ends up with that password as their own (not temporary).
pub async fn user_with_token(
    app: &TestApp,
    email: &str,
    role: &str,
    password: Option<&str>,
) -> (i64, String) {
    let admin = app.admin();
    let mut body =
        json!({"email": email, "display_name": email.split('@').next().unwrap(), "role": role});
    if password.is_some() {
        body["password"] = Value::String(TEMPORARY_PASSWORD.to_string());
    }
    let user = admin.post("/api/v1/users", body).await.expect(201).body;
    let id = user["id"].as_i64().unwrap();
    let token = admin
        .post("/api/v1/tokens", json!({"name": "test", "user_id": id}))
        .await
        .expect(201)
        .body["secret"]
        .as_str()
        .unwrap()
        .to_string();
    if let Some(own) = password {
        app.client(&token)
            .put(
                &format!("/api/v1/users/{id}/password"),
                json!({"current_password": TEMPORARY_PASSWORD, "new_password": own}),
            )
            .await
            .expect(204);
    }
    (id, token)
}

/// Registers a partner organization; returns (org id, its admin's id, its admin's token).
pub async fn partner_org(
    app: &TestApp,
    name: &str,
    kind: &str,
    admin_email: &str,
) -> (i64, i64, String) {
    let created = app
        .admin()
        .post(
            "/api/v1/organizations",
            json!({"name": name, "kind": kind, "admin": {"email": admin_email, "display_name": "Partner Admin"}}),
        )
        .await
        .expect(201)
        .body;
    (
        created["organization"]["id"].as_i64().unwrap(),
        created["admin"]["id"].as_i64().unwrap(),
        created["admin_token"]["secret"]
            .as_str()
            .unwrap()
            .to_string(),
    )
}
