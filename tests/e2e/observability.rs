//! Logs an operator can follow: one JSON line per request with its request id, W3C trace
//! id (the caller's `traceparent` honoured), user and organization, written once; and the
//! trace carried on to the webhooks the request's domain events cause.

use std::time::Duration;

use e2e::api_process::ApiProcess;
use e2e::hooks::HookReceiver;
use e2e::{TestApp, on_both_databases};
use serde_json::json;

use crate::programs::program_setup;
use crate::webhooks::{pass, subscribe};

const TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";

async fn a_request_s_trace_reaches_its_log_line_and_its_webhooks(app: &TestApp) {
    // REQ: OPS-TRACE-CONTEXT
    let s = program_setup(app).await;
    let receiver = HookReceiver::start().await;
    subscribe(
        &app.admin(),
        &receiver.url("/trace"),
        &["deviation.reported"],
    )
    .await;
    let api = ApiProcess::start(&app.database_url, app.now(), &[]);
    let pm = api.client(s.pm.token().unwrap());
    let _ = api.log_lines(Duration::from_millis(100));
    let reported = pm
        .send(
            pm.request(
                awc::http::Method::POST,
                &format!("/api/v1/programs/{}/deviations", s.program_id),
            )
            .insert_header((
                "traceparent",
                format!("00-{TRACE}-00f067aa0ba902b7-01").as_str(),
            )),
            Some(
                &json!({"title": "Label mix-up", "description": "d", "detected_at": app.now(),
                         "criticality": "minor", "category": "documentation"}),
            ),
        )
        .await
        .expect(201);
    let request_id = reported.header("x-request-id").unwrap().to_string();

    // The request's log line: its ids and who asked, each once.
    let mut served = None;
    for _ in 0..50 {
        served = api
            .log_lines(Duration::from_millis(100))
            .into_iter()
            .find(|l| l.contains("request served") && l.contains(&request_id));
        if served.is_some() {
            break;
        }
    }
    let served = served.expect("a log line for the request");
    let line: serde_json::Value = serde_json::from_str(&served).unwrap();
    let span = &line["span"];
    assert_eq!(span["trace_id"], TRACE, "{served}");
    assert_eq!(span["request_id"], request_id.as_str(), "{served}");
    assert_eq!(span["user_id"], s.pm_id, "{served}");
    assert!(span["org_id"].is_i64(), "{served}");
    assert!(
        line.get("spans").is_none(),
        "the request's fields once: {served}"
    );
    assert_eq!(served.matches(TRACE).count(), 1, "{served}");

    // Without a traceparent the request gets a trace of its own.
    let listed = pm.get("/api/v1/deviations").await.expect(200);
    let own = listed.header("x-request-id").unwrap().to_string();
    let mut line = None;
    for _ in 0..50 {
        line = api
            .log_lines(Duration::from_millis(100))
            .into_iter()
            .find(|l| l.contains("request served") && l.contains(&own));
        if line.is_some() {
            break;
        }
    }
    let line: serde_json::Value = serde_json::from_str(&line.expect("logged")).unwrap();
    let fresh = line["span"]["trace_id"].as_str().unwrap();
    assert!(fresh.len() == 32 && fresh != TRACE, "{fresh}");

    // The webhook of the deviation's event continues the trace (a new span of it).
    // The api process's clock started at the app's instant and has run on since.
    let report = pass(app, "trace", app.now() + chrono::TimeDelta::minutes(1)).await;
    assert_eq!(report.delivered, 1, "{report:?}");
    let hooks = receiver.wait_for(1).await;
    let traceparent = hooks[0]
        .header("traceparent")
        .expect("a traceparent header");
    assert!(
        traceparent.starts_with(&format!("00-{TRACE}-")) && traceparent.ends_with("-01"),
        "{traceparent}"
    );
    assert_eq!(
        entity::ops::trace::trace_id_of(traceparent).as_deref(),
        Some(TRACE)
    );
}
on_both_databases!(a_request_s_trace_reaches_its_log_line_and_its_webhooks);
