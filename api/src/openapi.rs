//! The OpenAPI document: collected from the registered handlers (so a handler cannot be
//! served undocumented), then completed with the bearer scheme and the standard error
//! responses every operation can give.

use actix_web::App;
use actix_web::dev::{ServiceFactory, ServiceRequest};
use utoipa::OpenApi;
use utoipa::openapi::path::Operation;
use utoipa::openapi::response::{Response, ResponseBuilder};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityRequirement, SecurityScheme};
use utoipa::openapi::{ContentBuilder, Ref, RefOr};
use utoipa_actix_web::{AppExt, scope};

use crate::error::{FieldError, Problem};
use crate::routes;

#[derive(OpenApi)]
#[openapi(
    info(
        title = "cmo-orchestrator",
        description = "The back office a pharma sponsor uses to run its contract manufacturers: \
program plans with go/no-go gates, quality events (deviations, CAPA, change control) and the \
communication around them.\n\nPeople join by invitation and choose their own password; API clients sign in \
(`POST /api/v1/sign-in`) and create their own tokens. Authenticate with `Authorization: Bearer <token>`. Errors are \
RFC 9457 `application/problem+json` with a stable `code`. Another organization's records answer 404.",
        license(name = "Apache-2.0")
    ),
    components(schemas(Problem, FieldError)),
    tags(
        (name = "organizations", description = "Sponsor and CMO organizations"),
        (name = "users", description = "People, roles and signing passwords"),
        (name = "tokens", description = "API tokens"),
        (name = "programs", description = "Programs, their teams and plans"),
        (name = "milestones", description = "Milestones, dependencies and their state machine"),
        (name = "gates", description = "Go/no-go gates: checklists and signed decisions"),
        (name = "quality", description = "Deviations, production hold and release"),
        (name = "action items", description = "Action items: owners, due dates, overdue, snooze"),
        (name = "audit", description = "The hash-chained audit trail"),
        (name = "signatures", description = "Electronic signatures (21 CFR Part 11 style)"),
        (name = "integrations", description = "For other tools: the domain event feed (`GET /events`), webhooks and the calendar feed. \
A webhook delivery is a `POST` of one event (the `EventView` schema, exactly as in the feed) with `Content-Type: application/json` and the headers \
of the Standard Webhooks specification (verify with its published libraries): `webhook-id` (the event's cursor: the same on every retry, deduplicate on it), \
`webhook-timestamp` (Unix seconds) and `webhook-signature: v1,<base64 HMAC-SHA256 of \"{webhook-id}.{webhook-timestamp}.{raw body}\" keyed with the base64-decoded secret after whsec_>`; \
also `X-Cmo-Event-Type` and `X-Cmo-Delivery-Id`, and, deprecated until the next release, `X-Cmo-Event-Id`, `X-Cmo-Timestamp` and \
`X-Cmo-Signature: sha256=<hex HMAC-SHA256 of \"{X-Cmo-Timestamp}.{raw body}\" keyed with the whole secret>`. \
Answer 2xx within the timeout (10 s) to acknowledge. 5xx, 408, 429 (`Retry-After` honoured up to 1 h) and no answer are retried \
after 30 s, 2 min, 8 min, … up to 6 h apart (10 attempts); other 4xx and redirects fail the delivery; 410 Gone disables the subscription, \
as do 20 failed attempts in a row (the organization's admins are emailed). Deliveries are at least once and not ordered: order by the cursor."),
        (name = "partners", description = "The CMO registry: capabilities, sites, inspections, qualification"),
        (name = "escalations", description = "24/7 escalation: policies (call tree), paging, acknowledgement by API or one-click link"),
        (name = "notifications", description = "Email links: the digest unsubscribe page (no API token: the link is signed)"),
        (name = "pages", description = "Pages for people in a browser (HTML forms, no token): sign in and out, accept an invitation, choose a password, your account"),
        (name = "operations", description = "Health, readiness and metrics")
    )
)]
struct ApiDoc;

/// Registers every documented route on `app` and returns it with the finished document.
pub fn register<T>(app: App<T>) -> (App<T>, utoipa::openapi::OpenApi)
where
    T: ServiceFactory<ServiceRequest, Config = (), Error = actix_web::Error, InitError = ()>,
{
    let (app, mut doc) = app
        .into_utoipa_app()
        .openapi(ApiDoc::openapi())
        .service(scope::scope("/api/v1").configure(routes::configure_api))
        .configure(routes::configure_pages)
        .configure(routes::configure_ops)
        .split_for_parts();
    complete(&mut doc);
    crate::schema_rules::state(&mut doc);
    (app, doc)
}

/// The document alone (for `cmo-api openapi` and the drift test).
pub fn document() -> utoipa::openapi::OpenApi {
    register(App::new()).1
}

pub fn document_json() -> String {
    let mut json = document().to_pretty_json().unwrap_or_default();
    json.push('\n');
    json
}

const BEARER: &str = "bearer";

struct Standard {
    name: &'static str,
    status: &'static str,
    description: &'static str,
    example: fn() -> serde_json::Value,
}

const STANDARD_RESPONSES: &[Standard] = &[
    Standard {
        name: "BadRequest",
        status: "400",
        description: "Malformed JSON or an unreadable body",
        example: || {
            example(
                400,
                "Bad Request",
                "malformed_json",
                "the request body is not valid JSON: EOF while parsing an object at line 1 column 9",
            )
        },
    },
    Standard {
        name: "Unauthorized",
        status: "401",
        description: "Missing, invalid, expired or revoked token",
        example: || example(401, "Unauthorized", "unauthorized", "the token has expired"),
    },
    Standard {
        name: "NotFound",
        status: "404",
        description: "No such resource visible to the caller (other organizations' records included)",
        example: || example(404, "Not Found", "not_found", "no such resource"),
    },
    Standard {
        name: "Conflict",
        status: "409",
        description: "Conflict with the current state, e.g. a request with the same Idempotency-Key still in progress",
        example: || {
            example(
                409,
                "Conflict",
                "idempotency_in_progress",
                "a request with this Idempotency-Key is still being processed; retry shortly",
            )
        },
    },
    Standard {
        name: "PayloadTooLarge",
        status: "413",
        description: "The body exceeds 256 KiB",
        example: || {
            example(
                413,
                "Payload Too Large",
                "payload_too_large",
                "request body larger than 262144 bytes",
            )
        },
    },
    Standard {
        name: "UnsupportedMediaType",
        status: "415",
        description: "The body is not application/json",
        example: || {
            example(
                415,
                "Unsupported Media Type",
                "unsupported_media_type",
                "unsupported media type: expected application/json, got text/plain",
            )
        },
    },
    Standard {
        name: "ValidationFailed",
        status: "422",
        description: "Invalid fields or query parameters, listed in `errors`",
        example: || {
            let mut v = example(
                422,
                "Unprocessable Content",
                "validation_failed",
                "the request has 1 invalid field",
            );
            v["errors"] = serde_json::json!([{"field": "name", "code": "required", "message": "must not be empty"}]);
            v
        },
    },
    Standard {
        name: "InternalError",
        status: "500",
        description: "Unexpected failure; quote the request id",
        example: || {
            example(
                500,
                "Internal Server Error",
                "internal_error",
                "an unexpected error occurred; quote the request id when reporting it",
            )
        },
    },
    Standard {
        name: "DatabaseUnavailable",
        status: "503",
        description: "Not served now; retry later (`Retry-After`): the database is unreachable or busy (`database_unavailable`, `database_busy`), or one of the request's statements or the request itself ran past its time limit and was stopped, what it had not committed rolled back (`statement_timeout`, `request_timeout`)",
        example: || {
            example(
                503,
                "Service Unavailable",
                "database_unavailable",
                "the database is unreachable; retry later",
            )
        },
    },
];

fn example(status: u16, title: &str, code: &str, detail: &str) -> serde_json::Value {
    serde_json::json!({
        "type": format!("urn:cmo-orchestrator:problem:{code}"),
        "title": title,
        "status": status,
        "code": code,
        "detail": detail,
        "request_id": "5f0c2a8e-7d1b-4f7e-9a55-3c1d0e6b2a90"
    })
}

fn complete(doc: &mut utoipa::openapi::OpenApi) {
    let components = doc.components.get_or_insert_with(Default::default);
    components.add_security_scheme(
        BEARER,
        SecurityScheme::Http(
            HttpBuilder::new()
                .scheme(HttpAuthScheme::Bearer)
                .description(Some(
                    "An API token from `cmo-api bootstrap` or `POST /api/v1/tokens`",
                ))
                .build(),
        ),
    );
    for s in STANDARD_RESPONSES {
        let response: Response = ResponseBuilder::new()
            .description(s.description)
            .content(
                crate::error::PROBLEM_JSON,
                ContentBuilder::new()
                    .schema(Some(Ref::from_schema_name("Problem")))
                    .example(Some((s.example)()))
                    .build(),
            )
            .build();
        components
            .responses
            .insert(s.name.to_string(), RefOr::T(response));
    }
    doc.security = Some(vec![SecurityRequirement::new(BEARER, Vec::<String>::new())]);

    for (path, item) in doc.paths.paths.iter_mut() {
        if let Some(post) = item.post.as_mut()
            && crate::idempotency::applies_to(path)
        {
            add_idempotency_key(post);
        }
        let has_path_params = path.contains('{');
        for op in operations_mut(item) {
            answer_errors_as_problems(op);
            add_standard_responses(op, has_path_params);
        }
    }
}

/// The operations of one path, each method the api serves.
pub fn operations_mut(
    item: &mut utoipa::openapi::PathItem,
) -> impl Iterator<Item = &mut Operation> {
    [
        item.get.as_mut(),
        item.put.as_mut(),
        item.post.as_mut(),
        item.delete.as_mut(),
        item.patch.as_mut(),
    ]
    .into_iter()
    .flatten()
}

/// Every error answer is problem+json: a path attribute says `body = Problem` and the
/// media type is set here once, not in each of some 200 response lines.
fn answer_errors_as_problems(op: &mut Operation) {
    for (status, response) in op.responses.responses.iter_mut() {
        let RefOr::T(response) = response else {
            continue;
        };
        if !(status.starts_with('4') || status.starts_with('5')) {
            continue;
        }
        if let Some(content) = response.content.shift_remove("application/json") {
            response
                .content
                .insert(crate::error::PROBLEM_JSON.to_string(), content);
        }
    }
}

/// API POSTs accept `Idempotency-Key` (see `crate::idempotency::applies_to`).
fn add_idempotency_key(op: &mut Operation) {
    use utoipa::openapi::path::{ParameterBuilder, ParameterIn};
    use utoipa::openapi::schema::{ObjectBuilder, Type};
    let parameter = ParameterBuilder::new()
        .name("Idempotency-Key")
        .parameter_in(ParameterIn::Header)
        .required(utoipa::openapi::Required::False)
        .description(Some(
            "Makes the POST safe to retry: a repeat with the same key, path and body within 24 h \
             returns the first (2xx) response with `Idempotent-Replayed: true` instead of acting \
             again. The same key with a different request answers 422. Use a fresh random \
             value per operation, e.g. a UUID.",
        ))
        .schema(Some(
            ObjectBuilder::new()
                .schema_type(Type::String)
                .min_length(Some(8))
                .max_length(Some(200))
                .pattern(Some("^[!-~]+$")),
        ))
        .build();
    op.parameters
        .get_or_insert_with(Vec::new)
        .push(RefOr::T(parameter));
}

fn add_standard_responses(op: &mut Operation, has_path_params: bool) {
    // `security(())` on an operation (health checks) means: no token needed.
    let public = op
        .security
        .as_ref()
        .is_some_and(|reqs| reqs.iter().all(|r| *r == SecurityRequirement::default()));
    let has_body = op.request_body.is_some();
    let has_query = op.parameters.as_ref().is_some_and(|ps| {
        ps.iter().any(|p| match p {
            RefOr::T(p) => p.parameter_in == utoipa::openapi::path::ParameterIn::Query,
            RefOr::Ref(_) => false,
        })
    });
    // Every operation reads the database but these (a public page with only a form,
    // the process's own health and metrics).
    let touches_db = !matches!(
        op.operation_id.as_deref(),
        Some("healthz" | "metrics" | "sign_in_page" | "request_reset_page")
    );
    let mut wanted: Vec<&str> = vec!["500"];
    if !public {
        wanted.push("401");
    }
    if has_body {
        wanted.extend(["400", "413", "415", "422"]);
    }
    let takes_idempotency_key = op.parameters.as_ref().is_some_and(|ps| {
        ps.iter()
            .any(|p| matches!(p, RefOr::T(p) if p.name == "Idempotency-Key"))
    });
    if takes_idempotency_key {
        wanted.extend(["409", "422"]);
    }
    if has_query && !wanted.contains(&"422") {
        wanted.push("422");
    }
    if has_path_params {
        wanted.push("404");
    }
    if touches_db {
        wanted.push("503");
    }
    for s in STANDARD_RESPONSES
        .iter()
        .filter(|s| wanted.contains(&s.status))
    {
        op.responses
            .responses
            .entry(s.status.to_string())
            .or_insert_with(|| RefOr::Ref(Ref::from_response_name(s.name)));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_api_operation_documents_auth_failure_and_internal_error() {
        let doc = document();
        for (path, item) in &doc.paths.paths {
            if !path.starts_with("/api/v1") {
                continue;
            }
            for op in [&item.get, &item.post, &item.put, &item.patch, &item.delete]
                .into_iter()
                .flatten()
            {
                // Signed email links (unsubscribe) need no token.
                let public = op
                    .security
                    .as_ref()
                    .is_some_and(|reqs| reqs.iter().all(|r| *r == SecurityRequirement::default()));
                for status in ["401", "500", "503"] {
                    if public && status == "401" {
                        continue;
                    }
                    assert!(
                        op.responses.responses.contains_key(status),
                        "{path} {:?} lacks {status}",
                        op.operation_id
                    );
                }
            }
        }
    }

    #[test]
    fn health_checks_need_no_token() {
        let doc = document();
        let healthz = doc
            .paths
            .paths
            .get("/healthz")
            .and_then(|i| i.get.as_ref())
            .unwrap();
        assert!(!healthz.responses.responses.contains_key("401"));
    }
}
