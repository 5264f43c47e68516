//! Webhook deliveries to a real HTTP receiver on 127.0.0.1: signature, retries, 410 and
//! failure streaks disabling with an email, the delivery log, redelivery, two workers.
//! Subscriptions and their bounds are in `webhook_subscriptions`.

use std::time::Duration;

use chrono::TimeDelta;
use e2e::hooks::{HookReceiver, HookReply};
use e2e::smtp::SmtpSink;
use e2e::{TestApp, on_both_databases};
use entity::webhook::RetryPolicy;
use serde_json::{Value, json};
use worker::jobs::webhooks::{DeliveryReport, WebhookSettings, delivery_pass};
use worker::outbound::http::HttpClient;

use crate::programs::program_setup;
use crate::user_with_token;

/// Retries after 1 s, 4 s, 16 s …; disabled after `disable_after` failures in a row.
pub(crate) fn settings(disable_after: i32) -> WebhookSettings {
    WebhookSettings {
        policy: RetryPolicy {
            max_attempts: 5,
            base: TimeDelta::seconds(1),
            cap: TimeDelta::minutes(10),
            disable_after,
        },
        batch: 50,
        concurrency: 8,
    }
}

fn http(timeout_ms: u64) -> HttpClient {
    HttpClient::new(Duration::from_millis(timeout_ms))
        .unwrap()
        .with_policy(entity::webhook::AddressPolicy::LOOPBACK_ALLOWED)
}

pub(crate) async fn pass(
    app: &TestApp,
    worker: &str,
    at: chrono::DateTime<chrono::Utc>,
) -> DeliveryReport {
    delivery_pass(&app.job_context(worker), &http(2000), at, &settings(20))
        .await
        .unwrap()
}

/// Subscribes `client`'s organization; returns (subscription id, secret).
pub(crate) async fn subscribe(client: &e2e::Client, url: &str, types: &[&str]) -> (i64, String) {
    let created = client
        .post(
            "/api/v1/webhooks",
            json!({"url": url, "event_types": types}),
        )
        .await
        .expect(201)
        .body;
    (
        created["subscription"]["id"].as_i64().unwrap(),
        created["secret"].as_str().unwrap().to_string(),
    )
}

pub(crate) async fn report_minor(
    pm: &e2e::Client,
    app: &TestApp,
    program_id: i64,
    title: &str,
) -> Value {
    pm.post(
        &format!("/api/v1/programs/{program_id}/deviations"),
        json!({"title": title, "description": "d", "detected_at": app.now(), "criticality": "minor",
               "category": "documentation", "batch_lot": "LOT-1"}),
    )
    .await
    .expect(201)
    .body
}

pub(crate) async fn deliveries(client: &e2e::Client, sub: i64) -> Vec<Value> {
    client
        .get(&format!("/api/v1/webhooks/{sub}/deliveries"))
        .await
        .expect(200)
        .body["items"]
        .as_array()
        .unwrap()
        .clone()
}

async fn deliveries_are_signed_and_carry_the_feed_event(app: &TestApp) {
    // REQ: HOOK-DELIVERY
    let s = program_setup(app).await;
    let receiver = HookReceiver::start().await;
    let admin = app.admin();
    let (sub, secret) = subscribe(
        &admin,
        &receiver.url("/hooks/cmo?src=test"),
        &["deviation.reported"],
    )
    .await;
    // The CMO's own subscription hears its program's events; another org hears nothing.
    let cmo_receiver = HookReceiver::start().await;
    let (cmo_sub, cmo_secret) = subscribe(
        &s.cmo_admin,
        &cmo_receiver.url("/cmo"),
        &["deviation.reported"],
    )
    .await;
    let (_, _, other) = crate::partner_org(app, "Other CMO", "cmo", "x@other.test").await;
    let other = app.client(&other);
    let other_receiver = HookReceiver::start().await;
    subscribe(&other, &other_receiver.url("/x"), &["deviation.reported"]).await;
    // Not subscribed to this type: nothing queued for it.
    let quiet = HookReceiver::start().await;
    subscribe(&admin, &quiet.url("/quiet"), &["gate.decided"]).await;

    let d = report_minor(&s.pm, app, s.program_id, "Label misprint").await;
    let report = pass(app, "w1", app.now()).await;
    assert_eq!((report.claimed, report.delivered), (2, 2));
    let hooks = receiver.wait_for(1).await;
    assert_eq!(hooks.len(), 1);
    let hook = &hooks[0];
    assert_eq!(hook.method, "POST");
    assert_eq!(hook.path, "/hooks/cmo?src=test");
    assert_eq!(hook.header("content-type"), Some("application/json"));
    assert!(hook.signature_valid(&secret), "signature must verify");
    assert!(!hook.signature_valid("whsec_wrong"));
    let ts: i64 = hook.header("x-cmo-timestamp").unwrap().parse().unwrap();
    assert!(
        (chrono::Utc::now().timestamp() - ts).abs() < 60,
        "timestamp is wall-clock"
    );
    // The body is the feed's event, and the event id is its cursor.
    let feed =
        s.pm.get("/api/v1/events?types=deviation.reported")
            .await
            .expect(200)
            .body;
    assert_eq!(hook.json(), feed["items"][0]);
    assert_eq!(hook.json()["payload"]["deviation_id"], d["id"]);
    assert_eq!(
        hook.header("x-cmo-event-id").unwrap(),
        feed["items"][0]["cursor"].to_string()
    );
    assert_eq!(hook.header("x-cmo-event-type"), Some("deviation.reported"));
    let cmo_hooks = cmo_receiver.wait_for(1).await;
    assert!(cmo_hooks[0].signature_valid(&cmo_secret));
    assert!(!cmo_hooks[0].signature_valid(&secret));
    assert_eq!(other_receiver.count(), 0);
    assert_eq!(quiet.count(), 0);
    // The log: one delivery, delivered on the first attempt.
    let log = deliveries(&admin, sub).await;
    assert_eq!(log.len(), 1);
    assert_eq!(log[0]["status"], "delivered");
    assert_eq!(log[0]["attempts"], 1);
    assert_eq!(log[0]["event_id"], feed["items"][0]["cursor"]);
    assert_eq!(log[0]["log"][0]["status_code"], 204);
    assert_eq!(log[0]["log"][0]["outcome"], "delivered");
    // Nothing is sent twice.
    assert_eq!(
        pass(app, "w1", app.now() + TimeDelta::hours(1))
            .await
            .claimed,
        0
    );
    assert_eq!(receiver.count(), 1);
    // Tenancy: the log of another org's subscription is not found.
    other
        .get(&format!("/api/v1/webhooks/{sub}/deliveries"))
        .await
        .expect_problem(404, "not_found");
    s.cmo_admin
        .get(&format!("/api/v1/webhooks/{sub}/deliveries"))
        .await
        .expect_problem(404, "not_found");
    assert_eq!(deliveries(&s.cmo_admin, cmo_sub).await.len(), 1);
}
on_both_databases!(deliveries_are_signed_and_carry_the_feed_event);

async fn failed_attempts_are_retried_with_the_same_event_id(app: &TestApp) {
    // REQ: HOOK-DELIVERY
    let s = program_setup(app).await;
    let receiver = HookReceiver::start().await;
    receiver
        .then(HookReply::status(500).body("database is down"))
        .then(HookReply::status(429).header("Retry-After", "120"))
        .then(HookReply::status(204).delay(Duration::from_millis(1500)));
    let admin = app.admin();
    let (sub, secret) = subscribe(&admin, &receiver.url("/h"), &["deviation.reported"]).await;
    report_minor(&s.pm, app, s.program_id, "Torn label").await;
    let t0 = app.now();
    let run = |at, timeout_ms| {
        let ctx = app.job_context("w1");
        let settings = settings(20);
        async move {
            delivery_pass(&ctx, &http(timeout_ms), at, &settings)
                .await
                .unwrap()
        }
    };
    // 500: retried after the 1 s backoff (plus up to 20 % jitter), not before.
    assert_eq!(run(t0, 2000).await.retried, 1);
    assert_eq!(
        run(t0 + TimeDelta::milliseconds(900), 2000).await.claimed,
        0
    );
    // 429 with Retry-After: 120 s, not the 4 s backoff.
    assert_eq!(run(t0 + TimeDelta::seconds(2), 2000).await.retried, 1);
    assert_eq!(run(t0 + TimeDelta::seconds(60), 2000).await.claimed, 0);
    // A receiver slower than the deadline: no answer, retried.
    let r = run(t0 + TimeDelta::seconds(200), 300).await;
    assert_eq!((r.claimed, r.retried), (1, 1));
    let r = run(t0 + TimeDelta::seconds(400), 2000).await;
    assert_eq!(r.delivered, 1);
    let hooks = receiver.wait_for(4).await;
    assert_eq!(hooks.len(), 4);
    let ids: Vec<&str> = hooks
        .iter()
        .map(|h| h.header("x-cmo-event-id").unwrap())
        .collect();
    assert!(
        ids.iter().all(|id| *id == ids[0]),
        "same event id on every attempt: {ids:?}"
    );
    assert!(hooks.iter().all(|h| h.signature_valid(&secret)));
    assert!(hooks.iter().all(|h| h.body == hooks[0].body));
    let log = &deliveries(&admin, sub).await[0];
    assert_eq!(log["status"], "delivered");
    assert_eq!(log["attempts"], 4);
    let codes: Vec<Value> = log["log"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["status_code"].clone())
        .collect();
    assert_eq!(codes, [json!(500), json!(429), Value::Null, json!(204)]);
    let outcomes: Vec<&str> = log["log"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["outcome"].as_str().unwrap())
        .collect();
    assert_eq!(outcomes, ["retry", "retry", "retry", "delivered"]);
    assert_eq!(log["log"][0]["response_excerpt"], "database is down");
    assert!(
        log["log"][2]["error"]
            .as_str()
            .unwrap()
            .contains("no answer within 300 ms")
    );

    // A 4xx other than 408/429/410 is final: no retry. Redelivery sends it again.
    receiver.then(HookReply::status(400).body("unknown field"));
    report_minor(&s.pm, app, s.program_id, "Smudged print").await;
    let t1 = app.now();
    assert_eq!(run(t1, 2000).await.failed, 1);
    assert_eq!(run(t1 + TimeDelta::days(1), 2000).await.claimed, 0);
    let failed = deliveries(&admin, sub).await[0].clone();
    assert_eq!(failed["status"], "failed");
    assert_eq!(failed["last_status_code"], 400);
    let path = format!(
        "/api/v1/webhooks/{sub}/deliveries/{}/redeliver",
        failed["id"]
    );
    let (_, viewer) = user_with_token(app, "v@acme.test", "viewer", None).await;
    app.client(&viewer)
        .post(&path, json!({}))
        .await
        .expect_problem(403, "forbidden");
    s.cmo_admin
        .post(&path, json!({}))
        .await
        .expect_problem(404, "not_found");
    let again = admin.post(&path, json!({})).await.expect(202).body;
    assert_eq!(again["status"], "pending");
    assert_eq!(
        again["log"].as_array().unwrap().len(),
        1,
        "the log keeps the earlier attempt"
    );
    admin
        .post(&path, json!({}))
        .await
        .expect_problem(409, "delivery_in_progress");
    assert_eq!(run(app.now(), 2000).await.delivered, 1);
    let hooks = receiver.wait_for(6).await;
    assert_eq!(
        hooks[4].header("x-cmo-event-id"),
        hooks[5].header("x-cmo-event-id")
    );
    let redelivered = deliveries(&admin, sub).await[0].clone();
    assert_eq!(redelivered["status"], "delivered");
    assert_eq!(redelivered["log"].as_array().unwrap().len(), 2);
}
on_both_databases!(failed_attempts_are_retried_with_the_same_event_id);

async fn gone_or_failing_receivers_are_disabled_and_admins_emailed(app: &TestApp) {
    // REQ: HOOK-DELIVERY
    let s = program_setup(app).await;
    let admin = app.admin();
    let admin_email = admin.get("/api/v1/me").await.expect(200).body["user"]["email"]
        .as_str()
        .unwrap()
        .to_string();
    // 410 Gone: failed and disabled at once.
    let gone = HookReceiver::start().await;
    gone.always(HookReply::status(410));
    let (gone_sub, _) = subscribe(&admin, &gone.url("/old"), &["deviation.reported"]).await;
    // 503 every time: disabled after three failed attempts in a row.
    let failing = HookReceiver::start().await;
    failing.always(HookReply::status(503));
    let (failing_sub, _) = subscribe(&admin, &failing.url("/down"), &["deviation.reported"]).await;
    for n in 0..3 {
        report_minor(&s.pm, app, s.program_id, &format!("Label {n}")).await;
    }
    let now = app.now();
    let r = delivery_pass(&app.job_context("w1"), &http(2000), now, &settings(3))
        .await
        .unwrap();
    assert_eq!(r.disabled, 2);
    assert_eq!(gone.count(), 3);
    assert_eq!(failing.count(), 3);
    let subs = admin.get("/api/v1/webhooks").await.expect(200).body;
    let find = |id: i64| {
        subs["items"]
            .as_array()
            .unwrap()
            .iter()
            .find(|w| w["id"] == id)
            .unwrap()
            .clone()
    };
    let g = find(gone_sub);
    assert_eq!(g["active"], false);
    assert!(g["disabled_reason"].as_str().unwrap().contains("410"));
    assert!(g["disabled_at"].is_string());
    let f = find(failing_sub);
    assert_eq!(f["active"], false);
    assert_eq!(f["consecutive_failures"], 3);
    assert!(
        f["disabled_reason"]
            .as_str()
            .unwrap()
            .contains("3 failed delivery attempts")
    );
    // The worker's change is in the sponsor's audit trail.
    let trail = admin
        .get(&format!(
            "/api/v1/audit-events?entity_type=webhook&entity_id={gone_sub}&action=disable"
        ))
        .await
        .expect(200)
        .body;
    assert!(trail.to_string().contains("\"disable\""), "{trail}");
    // The admins hear about it by email.
    let sink = SmtpSink::start().await;
    let mailer =
        worker::outbound::mailer::Mailer::new(Some(&sink.url()), std::env::temp_dir()).unwrap();
    worker::jobs::outbox::dispatch(
        &app.job_context("w1"),
        &mailer,
        &"cmo <noreply@cmo.test>".parse().unwrap(),
        now,
        50,
    )
    .await
    .unwrap();
    let mails = sink.wait_for(2).await;
    let disabled: Vec<_> = mails
        .iter()
        .filter(|m| {
            m.parsed()
                .subject()
                .unwrap_or_default()
                .starts_with("Webhook disabled")
        })
        .collect();
    assert_eq!(disabled.len(), 2);
    assert!(disabled.iter().all(|m| m.to == [admin_email.clone()]));
    let text = disabled[0].parsed().body_text(0).unwrap().to_string();
    assert!(text.contains("re-activate"), "{text}");
    // Disabled: new events are not queued, pending retries wait.
    report_minor(&s.pm, app, s.program_id, "While disabled").await;
    assert_eq!(deliveries(&admin, failing_sub).await.len(), 3);
    let later = now + TimeDelta::hours(1);
    assert_eq!(
        delivery_pass(&app.job_context("w1"), &http(2000), later, &settings(3))
            .await
            .unwrap()
            .claimed,
        0
    );
    // Re-activated (receiver fixed): the pending retries go out.
    failing.always(HookReply::status(200));
    admin
        .patch(
            &format!("/api/v1/webhooks/{failing_sub}"),
            json!({"version": f["version"], "active": true}),
        )
        .await
        .expect(200);
    let r = delivery_pass(&app.job_context("w1"), &http(2000), later, &settings(3))
        .await
        .unwrap();
    assert_eq!(r.delivered, 3);
    let f = admin.get("/api/v1/webhooks").await.expect(200).body;
    assert!(
        f["items"]
            .as_array()
            .unwrap()
            .iter()
            .any(|w| w["id"] == failing_sub
                && w["consecutive_failures"] == 0
                && w["disabled_reason"].is_null())
    );
}
on_both_databases!(gone_or_failing_receivers_are_disabled_and_admins_emailed);

async fn two_workers_deliver_each_event_once(app: &TestApp) {
    let s = program_setup(app).await;
    let receiver = HookReceiver::start().await;
    let admin = app.admin();
    let (sub, _) = subscribe(&admin, &receiver.url("/h"), &["deviation.reported"]).await;
    let n = 40;
    for i in 0..n {
        report_minor(&s.pm, app, s.program_id, &format!("Deviation {i}")).await;
    }
    // A worker that claimed some and died: its claims expire and are taken over.
    let dead = worker::jobs::webhooks::claim(
        &app.job_context("dead"),
        app.now(),
        5,
        TimeDelta::seconds(70),
    )
    .await
    .unwrap();
    assert_eq!(dead.len(), 5);
    let at = app.now() + TimeDelta::seconds(71);
    let mut small = settings(20);
    small.batch = 7;
    let (c1, c2) = (app.job_context("w1"), app.job_context("w2"));
    let (h1, h2) = (http(2000), http(2000));
    let (a, b) = tokio::join!(
        delivery_pass(&c1, &h1, at, &small),
        delivery_pass(&c2, &h2, at, &small)
    );
    let (a, b) = (a.unwrap(), b.unwrap());
    assert_eq!(a.delivered + b.delivered, n);
    let hooks = receiver.wait_for(n).await;
    let mut ids: Vec<String> = hooks
        .iter()
        .map(|h| h.header("x-cmo-event-id").unwrap().to_string())
        .collect();
    ids.sort();
    ids.dedup();
    assert_eq!((hooks.len(), ids.len()), (n, n), "each event exactly once");
    let log = admin
        .get(&format!("/api/v1/webhooks/{sub}/deliveries?limit=200"))
        .await
        .expect(200)
        .body;
    assert_eq!(log["total"], n as u64, "{log}");
    assert!(
        log["items"]
            .as_array()
            .unwrap()
            .iter()
            .all(|d| d["status"] == "delivered" && d["attempts"] == 1)
    );
    let page = admin
        .get(&format!(
            "/api/v1/webhooks/{sub}/deliveries?limit=10&status=delivered"
        ))
        .await
        .expect(200)
        .body;
    let last = page["items"][9]["id"].as_i64().unwrap();
    let next = admin
        .get(&format!(
            "/api/v1/webhooks/{sub}/deliveries?limit=10&before={last}"
        ))
        .await
        .expect(200)
        .body;
    assert!(next["items"][0]["id"].as_i64().unwrap() < last);
    // Or by offset: the second page of ten starts where `before` did.
    let second = admin
        .get(&format!(
            "/api/v1/webhooks/{sub}/deliveries?limit=10&offset=10&status=delivered&count=true"
        ))
        .await
        .expect(200)
        .body;
    assert_eq!(second["items"][0]["id"], next["items"][0]["id"]);
    assert_eq!(second["total"], n as u64);
    admin
        .get(&format!("/api/v1/webhooks/{sub}/deliveries?limit=0"))
        .await
        .expect_problem(422, "validation_failed");
}
on_both_databases!(two_workers_deliver_each_event_once);
