//! The committed OpenAPI document matches the code, and is what the server serves.

use std::path::PathBuf;

use e2e::{Backend, spawn_app};

fn committed_path() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../openapi/openapi.json")
}

#[test]
fn committed_openapi_matches_the_code() {
    // REQ: API-OPENAPI-MATCHES
    let generated = api::openapi::document_json();
    let committed = std::fs::read_to_string(committed_path()).unwrap_or_default();
    if generated != committed {
        if std::env::var_os("UPDATE_OPENAPI").is_some() {
            std::fs::write(committed_path(), &generated).expect("write openapi.json");
            return;
        }
        panic!(
            "openapi/openapi.json is out of date: run `cargo run -p api --bin cmo-api -- openapi > openapi/openapi.json` \
             (or UPDATE_OPENAPI=1 cargo test -p e2e committed_openapi)"
        );
    }
}

/// One list shape everywhere: no operation answers a bare JSON array; a list is a page
/// (`items`, `total`, `limit`, `offset`) or, for the event feed, `items` and `next_after`.
#[test]
fn no_list_answers_a_bare_array() {
    let doc: serde_json::Value = serde_json::from_str(&api::openapi::document_json()).unwrap();
    let mut bare = Vec::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            let Some(content) = op["responses"]["200"]["content"].as_object() else {
                continue;
            };
            for (media, body) in content {
                if body["schema"]["type"] == "array" {
                    bare.push(format!("{method} {path} ({media})"));
                }
            }
        }
    }
    assert!(bare.is_empty(), "bare arrays: {bare:?}");
    let page = &doc["components"]["schemas"]["Page_TeamMemberView"];
    for field in ["items", "limit", "offset"] {
        assert!(
            page["required"].as_array().unwrap().contains(&field.into()),
            "{field}"
        );
    }
    // Null when not counted, null on the last page.
    for field in ["total", "next_cursor"] {
        assert!(page["properties"].get(field).is_some(), "{field}");
    }
}

/// A filter struct read by `ListQuery` (not actix's `web::Query`) must say its fields are
/// query parameters, or utoipa documents them as path parameters the path does not have
/// (generated clients then drop the operation).
#[test]
fn every_path_parameter_is_in_its_path() {
    let doc: serde_json::Value = serde_json::from_str(&api::openapi::document_json()).unwrap();
    let mut stray = Vec::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            for p in op["parameters"].as_array().into_iter().flatten() {
                let name = p["name"].as_str().unwrap_or_default();
                if p["in"] == "path" && !path.contains(&format!("{{{name}}}")) {
                    stray.push(format!("{method} {path}: {name}"));
                }
            }
        }
    }
    assert!(
        stray.is_empty(),
        "path parameters not in the path: {stray:?}"
    );
}

#[test]
fn every_operation_has_an_example_or_schema_and_a_description() {
    let doc: serde_json::Value = serde_json::from_str(&api::openapi::document_json()).unwrap();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            assert!(
                op["summary"].is_string() || op["description"].is_string(),
                "{method} {path} undocumented"
            );
            assert!(
                op["operationId"].is_string(),
                "{method} {path} has no operationId"
            );
            for (status, response) in op["responses"].as_object().unwrap() {
                let described = response["description"].is_string() || response["$ref"].is_string();
                assert!(described, "{method} {path} {status} has no description");
            }
        }
    }
    for (name, schema) in doc["components"]["schemas"].as_object().unwrap() {
        if name.starts_with("Page_") {
            continue;
        }
        let has_example = schema.get("example").is_some()
            || schema.get("examples").is_some()
            || schema.get("enum").is_some();
        let composite = schema
            .get("properties")
            .and_then(|p| p.as_object())
            .is_some_and(|p| {
                p.values().all(|v| {
                    v.get("$ref").is_some() || v.get("allOf").is_some() || v.get("oneOf").is_some()
                })
            });
        assert!(has_example || composite, "schema {name} has no example");
    }
}

#[actix_web::test]
async fn the_server_serves_the_document_and_swagger_ui() {
    let app = spawn_app(Backend::Sqlite).await.unwrap();
    let served = app.anonymous().get("/openapi.json").await.expect(200).body;
    let generated: serde_json::Value =
        serde_json::from_str(&api::openapi::document_json()).unwrap();
    assert_eq!(served, generated);
    let docs = app.anonymous().get("/docs/").await.expect(200);
    assert!(docs.text.contains("swagger-ui"), "{}", docs.text);
    let redirect = app.anonymous().get("/docs").await;
    assert!(redirect.status.is_redirection(), "{}", redirect.status);
    assert_eq!(redirect.header("location"), Some("/docs/"));
    app.stop().await;
}
