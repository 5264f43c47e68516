//! Bad input gets a clear problem+json 4xx, never a 500.

use awc::http::Method;
use e2e::{TestApp, on_both_databases};
use serde_json::json;

async fn bad_input_gets_clear_problems(app: &TestApp) {
    // REQ: API-PROBLEM-JSON
    let admin = app.admin();

    let r = admin
        .send_raw(
            admin
                .request(Method::POST, "/api/v1/invitations")
                .content_type("application/json"),
            r#"{"email": "#,
        )
        .await
        .expect_problem(400, "malformed_json");
    assert!(
        r.body["detail"]
            .as_str()
            .unwrap()
            .contains("not valid JSON")
    );

    admin
        .send_raw(
            admin
                .request(Method::POST, "/api/v1/invitations")
                .content_type("application/json"),
            "",
        )
        .await
        .expect_problem(400, "malformed_json");

    let r = admin
        .post("/api/v1/invitations", json!({"email": "a@b.test", "display_name": "A", "role": "viewer", "is_superuser": true}))
        .await
        .expect_problem(422, "validation_failed");
    assert_eq!(r.body["errors"][0]["field"], "is_superuser");
    assert_eq!(r.body["errors"][0]["code"], "unknown_field");

    let r = admin
        .post(
            "/api/v1/invitations",
            json!({"email": "a@b.test", "display_name": "A", "role": "overlord"}),
        )
        .await
        .expect_problem(422, "validation_failed");
    assert_eq!(r.body["errors"][0]["field"], "role");

    let r = admin
        .post(
            "/api/v1/invitations",
            json!({"display_name": "A", "role": "viewer"}),
        )
        .await
        .expect_problem(422, "validation_failed");
    assert_eq!(r.body["errors"][0]["field"], "email");
    assert_eq!(r.body["errors"][0]["code"], "required");

    let r = admin
        .post(
            "/api/v1/invitations",
            json!({"email": "nope", "display_name": "x".repeat(201), "role": "viewer", "time_zone": "Mars/Base", "phone": "call me"}),
        )
        .await
        .expect_problem(422, "validation_failed");
    let fields: Vec<&str> = r.body["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["field"].as_str().unwrap())
        .collect();
    assert_eq!(
        fields,
        ["email", "display_name", "time_zone", "phone"],
        "all problems at once"
    );

    admin
        .send_raw(
            admin
                .request(Method::POST, "/api/v1/invitations")
                .content_type("text/plain"),
            "hello",
        )
        .await
        .expect_problem(415, "unsupported_media_type");

    let huge = format!(r#"{{"name": "{}"}}"#, "x".repeat(300 * 1024));
    admin
        .send_raw(
            admin
                .request(Method::POST, "/api/v1/tokens")
                .content_type("application/json"),
            huge,
        )
        .await
        .expect_problem(413, "payload_too_large");

    admin
        .get("/api/v1/users/not-a-number")
        .await
        .expect_problem(404, "not_found");
    admin
        .get("/api/v1/users/99999999")
        .await
        .expect_problem(404, "not_found");
    admin
        .get("/api/v1/no-such-thing")
        .await
        .expect_problem(404, "not_found");

    let r = admin
        .get("/api/v1/users?limit=0")
        .await
        .expect_problem(422, "validation_failed");
    assert_eq!(r.body["errors"][0]["field"], "limit");
    let r = admin
        .get("/api/v1/users?limit=abc")
        .await
        .expect_problem(422, "validation_failed");
    assert_eq!(r.body["errors"][0]["code"], "invalid_query");
    assert_eq!(r.body["errors"][0]["field"], "limit", "{}", r.text);
    // A bad filter value names its parameter and lists what it takes.
    let r = admin
        .get("/api/v1/users?role=overlord")
        .await
        .expect_problem(422, "validation_failed");
    assert_eq!(r.body["errors"][0]["field"], "role", "{}", r.text);
    assert!(
        r.body["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("expected one of")
    );
    let r = admin
        .get("/api/v1/cmos?modality=biologic&region=mars")
        .await
        .expect_problem(422, "validation_failed");
    assert_eq!(r.body["errors"][0]["field"], "region", "{}", r.text);

    // NUL characters and over-long filters are refused up front (PostgreSQL would choke).
    let r = admin
        .get("/api/v1/audit-events?entity_type=us%00er")
        .await
        .expect_problem(422, "validation_failed");
    assert_eq!(r.body["errors"][0]["field"], "entity_type");
    admin
        .get(&format!("/api/v1/signatures?record_id={}", "9".repeat(65)))
        .await
        .expect_problem(422, "validation_failed");
    admin
        .post(
            "/api/v1/invitations",
            json!({"email": "nul@acme.test", "display_name": "Nul\u{0}Byte", "role": "viewer"}),
        )
        .await
        .expect_problem(422, "validation_failed");

    let r = admin
        .delete("/api/v1/users")
        .await
        .expect_problem(405, "method_not_allowed");
    assert_eq!(r.header("allow"), Some("GET"));
    let r = admin
        .put("/api/v1/audit-events/verify", json!({}))
        .await
        .expect_problem(405, "method_not_allowed");
    assert_eq!(r.header("allow"), Some("GET"));
}
on_both_databases!(bad_input_gets_clear_problems);

async fn request_ids_travel_in_and_out(app: &TestApp) {
    // REQ: OPS-REQUEST-ID
    let admin = app.admin();
    let r = admin
        .send(
            admin
                .request(Method::GET, "/api/v1/me")
                .insert_header(("X-Request-Id", "trace-abc-123")),
            None,
        )
        .await
        .expect(200);
    assert_eq!(r.header("x-request-id"), Some("trace-abc-123"));
    let generated = admin.get("/api/v1/me").await;
    assert_eq!(generated.header("x-request-id").map(str::len), Some(36));
    // The id of the request that made a change is in its audit event.
    let traced = admin
        .send(
            admin
                .request(Method::POST, "/api/v1/tokens")
                .insert_header(("X-Request-Id", "trace-token-1")),
            Some(&json!({"name": "traced"})),
        )
        .await
        .expect(201);
    let id = traced.body["token"]["id"].as_i64().unwrap();
    let events = admin
        .get(&format!(
            "/api/v1/audit-events?entity_type=api_token&entity_id={id}"
        ))
        .await
        .body;
    assert_eq!(events["items"][0]["request_id"], "trace-token-1");
}
on_both_databases!(request_ids_travel_in_and_out);

/// Every 422 names the field and the form it expects, with an example, in JSON's words
/// (not Rust's: "expected i64").
async fn field_errors_say_how_to_fix_them(app: &TestApp) {
    // REQ: API-PROBLEM-JSON
    let admin = app.admin();
    let message_of = |body: &serde_json::Value, field: &str| -> String {
        body["errors"]
            .as_array()
            .expect("errors")
            .iter()
            .find(|e| e["field"] == field)
            .unwrap_or_else(|| panic!("no error for {field}: {body}"))["message"]
            .as_str()
            .expect("message")
            .to_string()
    };
    let program = |fields: serde_json::Value| {
        let mut body = json!({"name": "P", "product_name": "X", "cmo_org_id": 1,
            "modality": "biologic", "stage": "clinical", "time_zone": "Europe/Zurich"});
        for (k, v) in fields.as_object().expect("object") {
            body[k] = v.clone();
        }
        body
    };

    let r = admin
        .post(
            "/api/v1/programs",
            program(json!({"time_zone": "Mars/Olympus", "budget_minor": -5, "currency": "usd"})),
        )
        .await
        .expect_problem(422, "validation_failed");
    for field in ["time_zone", "budget_minor", "currency"] {
        assert!(
            message_of(&r.body, field).contains("e.g."),
            "{field}: {}",
            r.body
        );
    }
    assert!(message_of(&r.body, "time_zone").contains("Europe/Zurich"));

    let r = admin
        .post("/api/v1/programs", program(json!({"budget_minor": "12"})))
        .await
        .expect_problem(422, "validation_failed");
    let wrong_type = message_of(&r.body, "budget_minor");
    assert!(
        wrong_type.contains("expected an integer, e.g. 42") && !wrong_type.contains("i64"),
        "{wrong_type}"
    );

    let r = admin
        .post(
            "/api/v1/tokens",
            json!({"name": "ci", "expires_at": "2 March 2027"}),
        )
        .await
        .expect_problem(422, "validation_failed");
    assert!(
        r.body["errors"][0]["message"]
            .as_str()
            .expect("message")
            .contains("e.g. 2027-03-02")
    );

    for (path, field) in [
        ("/api/v1/events?limit=0", "limit"),
        ("/api/v1/events?after=-1", "after"),
        ("/api/v1/users?offset=99999999999", "offset"),
        ("/api/v1/cmos?limit=900", "limit"),
    ] {
        let r = admin
            .get(path)
            .await
            .expect_problem(422, "validation_failed");
        let message = message_of(&r.body, field);
        assert!(message.contains("e.g."), "{path}: {message}");
    }
}
on_both_databases!(field_errors_say_how_to_fix_them);
