//! The operational checks: each exercises the served API over HTTP as the run's people
//! (never the database behind it) and names the requirement it proves. A check that
//! needs what an earlier one made is reported "not run" when that one failed.

use std::time::Duration;

use serde_json::{Value, json};

use super::scratch::Scratch;

/// One check's result.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Outcome {
    pub requirement: &'static str,
    pub check: &'static str,
    /// `pass`, `fail` or `not_run`.
    pub result: &'static str,
    pub detail: String,
}

/// Every check of a run, in order: the report lists each, run or not.
pub const PLAN: &[(&str, &str)] = &[
    ("OPS-PROBES", "liveness and readiness probes answer 200"),
    (
        "API-OPENAPI-MATCHES",
        "the served OpenAPI document is this binary's",
    ),
    (
        "SEC-TOKENS",
        "a request without a token is refused (401 problem+json)",
    ),
    (
        "API-PROBLEM-JSON",
        "a request with missing fields answers 422 problem+json naming them",
    ),
    (
        "SEC-SIGN-PASSWORD",
        "a quality user certifies their electronic signature with their password",
    ),
    (
        "PART-QUALIFICATION",
        "the sponsor qualifies the CMO it registered",
    ),
    (
        "PLAN-TEMPLATE",
        "a program with the qualified CMO is created with the standard plan",
    ),
    (
        "QE-DEVIATION-MACHINE",
        "the CMO reports a deviation and sponsor quality triages it",
    ),
    (
        "QE-CLOSE-RULES",
        "closing is refused without a short-term fix, with a wrong password, and done with a signature",
    ),
    (
        "SEC-SIGN-BINDING",
        "the signature records signer, meaning, time and the signed record's hash, and still matches",
    ),
    ("TEN-404", "the CMO gets 404 for a sponsor-only record"),
    (
        "AUDIT-EVERY-CHANGE",
        "every change of the deviation is in the sponsor's audit trail",
    ),
    (
        "AUDIT-CHAIN",
        "both organizations' audit chains verify intact",
    ),
    (
        "VAL-RECORD-COPY",
        "the closed deviation copies as PDF and as CSV with its signature",
    ),
];

/// What a request answered.
struct Answer {
    status: u16,
    content_type: String,
    bytes: Vec<u8>,
    body: Value,
}

pub struct Http {
    base: String,
    client: awc::Client,
}

impl Http {
    pub fn new(base: &str) -> Self {
        Self {
            base: base.trim_end_matches('/').to_string(),
            client: awc::Client::builder()
                .timeout(Duration::from_secs(30))
                .finish(),
        }
    }

    async fn send(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> Result<Answer, String> {
        let method = awc::http::Method::from_bytes(method.as_bytes()).map_err(|e| e.to_string())?;
        let mut request = self.client.request(method, format!("{}{path}", self.base));
        if let Some(token) = token {
            request = request.insert_header(("Authorization", format!("Bearer {token}")));
        }
        let sent = match body {
            Some(body) => request.send_json(&body).await,
            None => request.send().await,
        };
        let mut response = sent.map_err(|e| format!("{path}: {e}"))?;
        let content_type = response
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string();
        let bytes = response
            .body()
            .limit(64 * 1024 * 1024)
            .await
            .map_err(|e| format!("{path}: {e}"))?
            .to_vec();
        Ok(Answer {
            status: response.status().as_u16(),
            content_type,
            body: serde_json::from_slice(&bytes).unwrap_or(Value::Null),
            bytes,
        })
    }
}

/// `Err` with what was expected and what came, for the report.
fn expect(answer: &Answer, status: u16, what: &str) -> Result<(), String> {
    if answer.status == status {
        return Ok(());
    }
    let detail = answer.body.get("detail").and_then(Value::as_str);
    let fields = answer.body.get("errors").filter(|e| !e.is_null());
    Err(format!(
        "{what}: expected {status}, got {}{}{}",
        answer.status,
        detail.map(|d| format!(" ({d})")).unwrap_or_default(),
        fields.map(|f| format!(" {f}")).unwrap_or_default()
    ))
}

fn ensure(condition: bool, message: impl FnOnce() -> String) -> Result<(), String> {
    if condition { Ok(()) } else { Err(message()) }
}

/// Runs the checks in [`PLAN`] order; stops at the first failure, leaving the rest
/// `not_run`.
pub async fn run(http: &Http, s: &Scratch, now: chrono::DateTime<chrono::Utc>) -> Vec<Outcome> {
    let mut results: Vec<Outcome> = Vec::new();
    let mut state = Flow {
        now,
        program_id: 0,
        deviation_id: 0,
        signature_id: 0,
    };
    for (index, &(requirement, check)) in PLAN.iter().enumerate() {
        let failed_before = results.iter().any(|r| r.result != "pass");
        let (result, detail) = if failed_before {
            ("not_run", "an earlier check failed".to_string())
        } else {
            match step(index, http, s, &mut state).await {
                Ok(detail) => ("pass", detail),
                Err(detail) => ("fail", detail),
            }
        };
        results.push(Outcome {
            requirement,
            check,
            result,
            detail,
        });
    }
    results
}

/// What the steps hand on to later ones.
struct Flow {
    /// The run's clock at its start.
    now: chrono::DateTime<chrono::Utc>,
    program_id: i64,
    deviation_id: i64,
    signature_id: i64,
}

async fn step(index: usize, http: &Http, s: &Scratch, f: &mut Flow) -> Result<String, String> {
    let admin = Some(s.admin.token.as_str());
    let quality = Some(s.quality.token.as_str());
    let cmo = Some(s.cmo_admin.token.as_str());
    match index {
        0 => {
            for path in ["/healthz", "/readyz"] {
                expect(&http.send("GET", path, None, None).await?, 200, path)?;
            }
            Ok("/healthz and /readyz answered 200".into())
        }
        1 => {
            let served = http.send("GET", "/openapi.json", None, None).await?;
            expect(&served, 200, "/openapi.json")?;
            let own: Value = serde_json::from_str(&crate::openapi::document_json())
                .map_err(|e| e.to_string())?;
            ensure(served.body == own, || {
                "the served document differs from this binary's: the api runs another release"
                    .into()
            })?;
            Ok(format!(
                "version {}, {} paths",
                own["info"]["version"].as_str().unwrap_or("?"),
                own["paths"].as_object().map_or(0, |p| p.len())
            ))
        }
        2 => {
            let a = http.send("GET", "/api/v1/programs", None, None).await?;
            expect(&a, 401, "no token")?;
            ensure(
                a.content_type.starts_with("application/problem+json"),
                || format!("content type {}", a.content_type),
            )?;
            Ok(format!("401 {}", a.body["code"].as_str().unwrap_or("")))
        }
        3 => {
            let a = http
                .send("POST", "/api/v1/programs", admin, Some(json!({})))
                .await?;
            expect(&a, 422, "empty program")?;
            ensure(a.body["code"] == "validation_failed", || a.body.to_string())?;
            Ok(format!("422: {}", a.body["detail"].as_str().unwrap_or("")))
        }
        4 => {
            let path = format!(
                "/api/v1/users/{}/signature-certification",
                s.quality.user.id
            );
            let a = http
                .send(
                    "POST",
                    &path,
                    quality,
                    // The run's own scratch person, certifying for the run's signatures.
                    Some(json!({"password": s.quality.password, "statement_accepted": true})),
                )
                .await?;
            expect(&a, 200, "certification")?;
            ensure(a.body["signature_certified_at"].is_string(), || {
                a.body.to_string()
            })?;
            Ok("certified".into())
        }
        5 => {
            let path = format!("/api/v1/cmos/{}/qualification", s.cmo.id);
            for event in ["start_evaluation", "qualify"] {
                let a = http
                    .send("POST", &path, admin, Some(json!({"event": event})))
                    .await?;
                expect(&a, 200, event)?;
            }
            Ok(format!("CMO {} qualified", s.cmo.id))
        }
        6 => {
            let a = http
                .send(
                    "POST",
                    "/api/v1/programs",
                    admin,
                    Some(json!({"name": "OQ program", "product_name": "OQ-1",
                        "cmo_org_id": s.cmo.id, "modality": "biologic", "stage": "clinical",
                        "time_zone": "UTC"})),
                )
                .await?;
            expect(&a, 201, "program")?;
            f.program_id = a.body["id"].as_i64().unwrap_or_default();
            let start = f.now.date_naive() + chrono::TimeDelta::days(30);
            let plan = http
                .send(
                    "POST",
                    &format!("/api/v1/programs/{}/plan", f.program_id),
                    admin,
                    Some(json!({"template": "cdmo_standard", "start_date": start})),
                )
                .await?;
            expect(&plan, 201, "standard plan")?;
            let milestones = plan.body["milestones"].as_array().map_or(0, Vec::len);
            ensure(milestones > 0, || plan.body.to_string())?;
            Ok(format!(
                "program {} with {milestones} milestones",
                f.program_id
            ))
        }
        7 => {
            let a = http
                .send(
                    "POST",
                    &format!("/api/v1/programs/{}/deviations", f.program_id),
                    cmo,
                    Some(json!({"title": "OQ label smudge", "description": "operational qualification",
                        "detected_at": f.now - chrono::TimeDelta::hours(1), "criticality": "minor",
                        "category": "equipment", "batch_lot": "OQ-1"})),
                )
                .await?;
            expect(&a, 201, "report")?;
            f.deviation_id = a.body["id"].as_i64().unwrap_or_default();
            let t = transition(http, quality, f.deviation_id, json!({"event": "triage"})).await?;
            expect(&t, 200, "triage")?;
            ensure(t.body["status"] == "triaged", || t.body.to_string())?;
            Ok(format!(
                "{} reported by the CMO, triaged",
                a.body["number"].as_str().unwrap_or("?")
            ))
        }
        8 => {
            let id = f.deviation_id;
            let close = |password: &str| json!({"event": "close", "password": password});
            let early = transition(http, quality, id, close(&s.quality.password)).await?;
            expect(&early, 409, "close before a short-term fix")?;
            let path = format!("/api/v1/deviations/{id}");
            let current = http.send("GET", &path, quality, None).await?;
            let fix = http
                .send(
                    "PATCH",
                    &path,
                    quality,
                    Some(json!({"version": current.body["version"],
                        "short_term_fix": "labels reprinted", "reason": "operational qualification"})),
                )
                .await?;
            expect(&fix, 200, "short-term fix")?;
            let wrong = transition(http, quality, id, close("not the password")).await?;
            expect(&wrong, 401, "close with a wrong password")?;
            let closed = transition(http, quality, id, close(&s.quality.password)).await?;
            expect(&closed, 200, "close")?;
            ensure(closed.body["status"] == "closed", || {
                closed.body.to_string()
            })?;
            f.signature_id = closed.body["closure_signature_id"]
                .as_i64()
                .unwrap_or_default();
            Ok(format!("closed with signature {}", f.signature_id))
        }
        9 => {
            let a = http
                .send(
                    "GET",
                    &format!("/api/v1/signatures/{}", f.signature_id),
                    quality,
                    None,
                )
                .await?;
            expect(&a, 200, "signature")?;
            let b = &a.body;
            ensure(
                b["signer_user_id"] == s.quality.user.id
                    && b["meaning"].is_string()
                    && b["signed_at"].is_string()
                    && b["record_hash"].as_str().is_some_and(|h| h.len() == 64)
                    && b["record_state"] == "matching",
                || b.to_string(),
            )?;
            Ok(b["manifestation"].as_str().unwrap_or_default().to_string())
        }
        10 => {
            let path = format!("/api/v1/users/{}", s.quality.user.id);
            expect(
                &http.send("GET", &path, cmo, None).await?,
                404,
                "CMO reads a sponsor user",
            )?;
            Ok("404".into())
        }
        11 => {
            let path = format!(
                "/api/v1/audit-events?entity_type=deviation&entity_id={}",
                f.deviation_id
            );
            let a = http.send("GET", &path, admin, None).await?;
            expect(&a, 200, "audit events")?;
            let actions: Vec<&str> = a.body["items"]
                .as_array()
                .map(|items| items.iter().filter_map(|e| e["action"].as_str()).collect())
                .unwrap_or_default();
            for action in ["triage", "update", "close"] {
                ensure(actions.contains(&action), || {
                    format!("no {action} entry among {actions:?}")
                })?;
            }
            Ok(format!("entries: {}", actions.join(", ")))
        }
        12 => {
            let mut seen = Vec::new();
            for (who, token) in [("sponsor", admin), ("CMO", cmo)] {
                let a = http
                    .send("GET", "/api/v1/audit-events/verify", token, None)
                    .await?;
                expect(&a, 200, "verify")?;
                ensure(a.body["intact"] == true, || format!("{who}: {}", a.body))?;
                seen.push(format!("{who}: intact, {} checked", a.body["checked"]));
            }
            Ok(seen.join("; "))
        }
        13 => {
            let path = format!("/api/v1/deviations/{}/copy", f.deviation_id);
            let pdf = http.send("GET", &path, quality, None).await?;
            expect(&pdf, 200, "PDF copy")?;
            ensure(
                pdf.content_type == "application/pdf" && pdf.bytes.starts_with(b"%PDF-"),
                || format!("not a PDF: {}", pdf.content_type),
            )?;
            let csv = http
                .send("GET", &format!("{path}?format=csv"), quality, None)
                .await?;
            expect(&csv, 200, "CSV copy")?;
            let text = String::from_utf8_lossy(&csv.bytes);
            ensure(text.lines().any(|l| l.starts_with("\"signature\"")), || {
                "no signature row in the CSV".into()
            })?;
            Ok(format!(
                "PDF {} bytes, CSV {} lines",
                pdf.bytes.len(),
                text.lines().count()
            ))
        }
        _ => Err("no such check".into()),
    }
}

async fn transition(
    http: &Http,
    token: Option<&str>,
    id: i64,
    body: Value,
) -> Result<Answer, String> {
    http.send(
        "POST",
        &format!("/api/v1/deviations/{id}/transitions"),
        token,
        Some(body),
    )
    .await
}

/// After the run: the run's people can no longer act (their tokens are revoked).
pub async fn deactivated(http: &Http, s: &Scratch) -> Outcome {
    let result = http
        .send("GET", "/api/v1/programs", Some(&s.admin.token), None)
        .await;
    let (result, detail) = match result {
        Ok(a) if a.status == 401 => ("pass", "the run's token answers 401".to_string()),
        Ok(a) => ("fail", format!("the run's token answers {}", a.status)),
        Err(e) => ("fail", e),
    };
    Outcome {
        requirement: "SEC-TOKEN-LINEAGE",
        check: DEACTIVATION,
        result,
        detail,
    }
}

/// The last check: the run's organizations end deactivated.
pub const DEACTIVATION: &str = "deactivating the run's organizations revokes its people's tokens";
