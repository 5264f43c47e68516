//! 24/7 escalation with the real SMTP sink: pages tier by tier through the worker's pass,
//! acknowledgement by link and by API, ack timeout, empty tiers, policy snapshots.

use chrono::{DateTime, TimeDelta, Utc};
use e2e::smtp::SmtpSink;
use e2e::{TestApp, on_both_databases};
use entity::escalation::{self, EscalationStatus};
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};
use serde_json::json;
use worker::jobs::escalations::{EscalationSettings, escalation_pass};
use worker::outbound::mailer::Mailer;

use crate::programs::program_setup;
use crate::user_with_token;

pub(crate) fn settings() -> EscalationSettings {
    EscalationSettings::default()
}

pub(crate) async fn deliver(app: &TestApp, sink: &SmtpSink, now: DateTime<Utc>) {
    let mailer = Mailer::new(Some(&sink.url()), std::env::temp_dir()).unwrap();
    let from = "cmo <noreply@cmo.test>".parse().unwrap();
    worker::jobs::outbox::dispatch(&app.job_context("sender"), &mailer, &from, now, 100)
        .await
        .unwrap();
}

/// The acknowledgement link in a page sent to `to`.
pub(crate) fn ack_link(sink: &SmtpSink, to: &str, tier: usize) -> String {
    let mail = sink
        .received()
        .into_iter()
        .find(|r| {
            r.to == [to]
                && r.parsed()
                    .subject()
                    .unwrap_or_default()
                    .contains(&format!("escalation tier {tier} "))
        })
        .unwrap_or_else(|| panic!("no tier-{tier} page to {to}"));
    let text = mail.parsed().body_text(0).unwrap().into_owned();
    let start = text
        .find("/api/v1/escalations/ack?token=")
        .expect("ack link");
    let end = text[start..]
        .find(char::is_whitespace)
        .map_or(text.len(), |e| start + e);
    text[start..end].to_string()
}

pub(crate) struct Team {
    pub(crate) s: crate::programs::Setup,
    pub(crate) qa_id: i64,
    pub(crate) qa: e2e::Client,
}

/// A core-team QA lead tagged `equipment`, a leadership member, no steering committee.
pub(crate) async fn team(app: &TestApp) -> Team {
    let s = program_setup(app).await;
    let path = format!("/api/v1/programs/{}/team", s.program_id);
    let (qa_id, qa_token) = user_with_token(app, "qa@acme.test", "quality", None).await;
    s.pm.post(
        &path,
        json!({"user_id": qa_id, "governance_tier": "core_team", "program_role": "QA lead", "expertise_tags": ["equipment"]}),
    )
    .await
    .expect(201);
    // The call tree shows the phone from the user's profile.
    app.admin()
        .patch(
            &format!("/api/v1/users/{qa_id}"),
            json!({"version": 1, "phone": "call me"}),
        )
        .await
        .expect_problem(422, "validation_failed");
    let qa_user = app
        .admin()
        .patch(
            &format!("/api/v1/users/{qa_id}"),
            json!({"version": 1, "phone": "+41 61 555 01 42"}),
        )
        .await
        .expect(200)
        .body;
    assert_eq!(qa_user["phone"], "+41 61 555 01 42");
    let (lead_id, _) = user_with_token(app, "lead@acme.test", "viewer", None).await;
    s.pm.post(
        &path,
        json!({"user_id": lead_id, "governance_tier": "leadership", "program_role": "VP Operations"}),
    )
    .await
    .expect(201);
    Team {
        qa: app.client(&qa_token),
        qa_id,
        s,
    }
}

pub(crate) async fn critical_deviation(app: &TestApp, t: &Team) -> (i64, escalation::Model) {
    let d = t
        .s
        .pm
        .post(
            &format!("/api/v1/programs/{}/deviations", t.s.program_id),
            json!({"title": "Filter integrity test failed", "description": "post-use test failed", "detected_at": app.now(),
                   "criticality": "critical", "category": "equipment", "batch_lot": "LOT-9"}),
        )
        .await
        .expect(201)
        .body;
    let list =
        t.s.pm
            .get(&format!(
                "/api/v1/escalations?program_id={}",
                t.s.program_id
            ))
            .await
            .expect(200)
            .body;
    assert_eq!(list["total"], 1);
    let id = list["items"][0]["id"].as_i64().unwrap();
    let e = escalation::Entity::find_by_id(id)
        .one(&app.db)
        .await
        .unwrap()
        .unwrap();
    (d["id"].as_i64().unwrap(), e)
}

async fn pages_climb_the_call_tree_until_someone_acknowledges_by_link(app: &TestApp) {
    // REQ: ESC-TIER-ONE-AT-ONCE, ESC-ADVANCE, ESC-ACK
    let t = team(app).await;
    let (deviation_id, e) = critical_deviation(app, &t).await;
    assert_eq!(e.status, EscalationStatus::Open);
    let t0 = app.now();

    // Two workers on the same tick: tier 1 is paged once.
    let (c1, c2) = (app.job_context("w1"), app.job_context("w2"));
    let (st1, st2) = (settings(), settings());
    let (a, b) = tokio::join!(
        escalation_pass(&c1, t0, &st1),
        escalation_pass(&c2, t0, &st2)
    );
    let (a, b) = (a.unwrap(), b.unwrap());
    assert_eq!(a.pages + b.pages, 1, "{a:?} {b:?}");
    // Tier 1 = core team (nobody but QA is core team) + call tree (QA is tagged equipment).
    assert_eq!(a.emails + b.emails, 1);
    let sink = SmtpSink::start().await;
    deliver(app, &sink, t0).await;
    let page = sink.wait_for(1).await;
    let page = page[0].parsed();
    let subject = page.subject().unwrap().to_string();
    assert!(
        subject.starts_with("[CRITICAL] ACM-101 clinical supply: Filter integrity test failed"),
        "{subject}"
    );
    assert!(subject.contains("escalation tier 1 (Core team)"));
    let text = page.body_text(0).unwrap();
    assert!(text.contains("Production:    ON HOLD"), "{text}");
    assert!(
        text.contains("Batch/lot:") || text.contains("What happened:"),
        "{text}"
    );
    assert!(
        text.contains("qa, QA lead, qa@acme.test"),
        "call tree contacts: {text}"
    );
    assert!(
        text.contains("Tier 2 - Leadership (wait 30 minutes)"),
        "{text}"
    );
    assert!(
        text.contains("(nobody: this tier is skipped)"),
        "steering committee is empty"
    );

    // Nothing more before the 15-minute wait; then tier 2, once, and tier 1 is told.
    let early = escalation_pass(
        &app.job_context("w1"),
        t0 + TimeDelta::minutes(14),
        &settings(),
    )
    .await
    .unwrap();
    assert_eq!(early.pages, 0);
    let t15 = t0 + TimeDelta::minutes(15);
    let second = escalation_pass(&app.job_context("w2"), t15, &settings())
        .await
        .unwrap();
    assert_eq!((second.pages, second.emails), (1, 1));
    deliver(app, &sink, t15).await;
    let received = sink.wait_for(3).await;
    assert!(received.iter().any(|r| r.to == ["lead@acme.test"]));
    assert!(
        received.iter().any(|r| r.to == ["qa@acme.test"]
            && r.parsed()
                .subject()
                .unwrap_or_default()
                .contains("Escalated to tier 2 (Leadership)")),
        "tier 1 hears it went up"
    );

    // Acknowledge through the lead's link: a page first (GET changes nothing) …
    let link = ack_link(&sink, "lead@acme.test", 2);
    let anon = app.anonymous();
    let confirm = anon.get(&link).await.expect(200);
    assert!(confirm.text.contains("<form method=\"post\""));
    assert!(
        confirm.text.contains("<textarea id=\"note\" name=\"note\""),
        "{}",
        confirm.text
    );
    assert_eq!(
        escalation::Entity::find_by_id(e.id)
            .one(&app.db)
            .await
            .unwrap()
            .unwrap()
            .status,
        EscalationStatus::Open
    );
    // … a forged token changes nothing …
    let forged = link.replace("token=", "token=00");
    let refused = anon
        .send_raw(anon.request(awc::http::Method::POST, &forged), "")
        .await;
    assert_eq!(refused.status, 400);
    // … the button acknowledges, with a note for everyone paged, once; the same link
    // again is idempotent.
    let done = anon
        .send_raw(
            anon.request(awc::http::Method::POST, &link)
                .insert_header(("Content-Type", "application/x-www-form-urlencoded")),
            "note=On+my+way%2C+on+site+in+20+minutes",
        )
        .await
        .expect(200);
    assert!(done.text.contains("Acknowledged"), "{}", done.text);
    assert!(
        done.text.contains("On my way, on site in 20 minutes"),
        "{}",
        done.text
    );
    // Opened again, the link says what happened, and offers no button any more.
    let reopened = anon.get(&link).await.expect(200);
    assert!(
        reopened.text.contains("Already acknowledged by you"),
        "{}",
        reopened.text
    );
    assert!(!reopened.text.contains("<form"), "{}", reopened.text);
    let again = anon
        .send_raw(anon.request(awc::http::Method::POST, &link), "")
        .await
        .expect(200);
    assert!(again.text.contains("Already acknowledged by you"));
    let acked = escalation::Entity::find_by_id(e.id)
        .one(&app.db)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(acked.status, EscalationStatus::Acknowledged);
    assert_eq!(acked.ack_channel.as_deref(), Some("email"));
    // QA's tier-1 link now changes nothing: someone else took it, as its page says.
    let qa_link = ack_link(&sink, "qa@acme.test", 1);
    let taken = anon.get(&qa_link).await.expect(200);
    assert!(taken.text.contains("Someone is on it"), "{}", taken.text);
    assert!(!taken.text.contains("<form"), "{}", taken.text);
    let late = anon
        .send_raw(anon.request(awc::http::Method::POST, &qa_link), "")
        .await;
    assert_eq!(late.status, 409);
    assert!(late.text.contains("already acknowledged by someone else"));
    // Everyone paged hears who took it, each in their own email.
    deliver(app, &sink, t15).await;
    let mut to: Vec<String> = sink
        .wait_for(5)
        .await
        .into_iter()
        .filter(|r| {
            r.parsed()
                .subject()
                .unwrap_or_default()
                .contains("Acknowledged by lead")
        })
        .flat_map(|r| r.to)
        .collect();
    to.sort();
    assert_eq!(to, ["lead@acme.test", "qa@acme.test"]);
    assert!(
        sink.wait_for(5).await.iter().any(|r| {
            r.parsed()
                .subject()
                .unwrap_or_default()
                .contains("Acknowledged by lead")
                && r.parsed()
                    .body_text(0)
                    .is_some_and(|t| t.contains("Note: On my way, on site in 20 minutes"))
        }),
        "the note reaches everyone paged"
    );
    // No more pages while acknowledged.
    let quiet = escalation_pass(
        &app.job_context("w1"),
        t15 + TimeDelta::minutes(40),
        &settings(),
    )
    .await
    .unwrap();
    assert_eq!(quiet.pages, 0);

    // Acknowledged but forgotten: after the 60-minute ack timeout it re-opens and
    // re-pages the tier that acknowledged (leadership), once.
    let timeout = escalation_pass(
        &app.job_context("w1"),
        t15 + TimeDelta::minutes(61),
        &settings(),
    )
    .await
    .unwrap();
    assert_eq!((timeout.reopened, timeout.pages), (1, 1));
    let reopened = escalation::Entity::find_by_id(e.id)
        .one(&app.db)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(reopened.status, EscalationStatus::Open);
    assert_eq!(reopened.current_tier, Some(1));
    assert!(
        entity::audit_event::Entity::find()
            .filter(entity::audit_event::Column::EntityType.eq("escalation"))
            .filter(entity::audit_event::Column::Action.eq("reopen"))
            .one(&app.db)
            .await
            .unwrap()
            .is_some(),
        "the re-open is audited"
    );
    // The used link does not acknowledge the re-opened escalation.
    let reused = anon
        .send_raw(anon.request(awc::http::Method::POST, &link), "")
        .await;
    assert_eq!(reused.status, 409);
    assert!(reused.text.contains("already used"));

    // Triage resolves it; the detail shows every page and event.
    t.qa.post(
        &format!("/api/v1/deviations/{deviation_id}/transitions"),
        json!({"event": "triage"}),
    )
    .await
    .expect(200);
    let detail =
        t.s.pm
            .get(&format!("/api/v1/escalations/{}", e.id))
            .await
            .expect(200)
            .body;
    assert_eq!(detail["escalation"]["status"], "resolved");
    let kinds: Vec<&str> = detail["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["kind"].as_str().unwrap())
        .collect();
    assert_eq!(
        kinds,
        [
            "opened",
            "paged",
            "paged",
            "acknowledged",
            "reopened",
            "paged",
            "resolved"
        ]
    );
    assert_eq!(detail["pages"].as_array().unwrap().len(), 3);
    assert_eq!(detail["pages"][0]["recipients"][0]["email"], "qa@acme.test");
    // Everyone paged hears it was resolved, each in their own email (its links open
    // the escalation's page as them).
    let resolved: Vec<String> = entity::outbox::Entity::find()
        .all(&app.db)
        .await
        .unwrap()
        .into_iter()
        .filter(|r| {
            r.dedupe_key
                .starts_with(&format!("escalation:{}:resolved:user:", e.id))
        })
        .map(|r| r.to_addrs)
        .collect();
    assert_eq!(resolved.len(), 2, "{resolved:?}");
    assert!(resolved.iter().any(|to| to == r#"["qa@acme.test"]"#));
    assert!(resolved.iter().any(|to| to == r#"["lead@acme.test"]"#));
    // The worker's pages and the api's notices of one escalation share one Message-ID
    // domain: the public base URL's host.
    let domains: std::collections::BTreeSet<String> = entity::outbox::Entity::find()
        .all(&app.db)
        .await
        .unwrap()
        .into_iter()
        .filter(|r| r.dedupe_key.starts_with(&format!("escalation:{}:", e.id)))
        .map(|r| r.message_id.rsplit('@').next().unwrap().to_string())
        .collect();
    assert_eq!(domains, ["127.0.0.1>".to_string()].into(), "{domains:?}");
    // An expired link (24 h) says so and changes nothing.
    app.clock.set(t0 + TimeDelta::hours(25));
    let expired = anon.get(&qa_link).await;
    assert_eq!(expired.status, 400);
    assert!(expired.text.contains("expired"), "{}", expired.text);
    let _ = t.qa_id;
}
on_both_databases!(pages_climb_the_call_tree_until_someone_acknowledges_by_link);

/// An acknowledgement link older than 24 hours changes nothing, also when the escalation
/// is still open (a button pressed on a day-old email must not silence today's pages).
async fn an_expired_ack_link_on_an_open_escalation_changes_nothing(app: &TestApp) {
    // REQ: ESC-ACK
    let t = team(app).await;
    let (_, e) = critical_deviation(app, &t).await;
    // Tier 1 is paged; the link in QA's page is the one pressed a day later.
    escalation_pass(&app.job_context("w1"), app.now(), &settings())
        .await
        .unwrap();
    let sink = SmtpSink::start().await;
    deliver(app, &sink, app.now()).await;
    sink.wait_for(1).await;
    let link = ack_link(&sink, "qa@acme.test", 1);
    app.clock
        .advance(TimeDelta::hours(24) + TimeDelta::minutes(1));
    let anon = app.anonymous();
    let refused = anon
        .send_raw(anon.request(awc::http::Method::POST, &link), "")
        .await;
    assert_eq!(refused.status, 400, "{}", refused.text);
    assert!(refused.text.contains("expired"), "{}", refused.text);
    assert!(
        refused
            .header("content-type")
            .unwrap_or_default()
            .starts_with("text/html"),
        "a page for people"
    );
    let row = escalation::Entity::find_by_id(e.id)
        .one(&app.db)
        .await
        .unwrap()
        .unwrap();
    assert_ne!(row.status, EscalationStatus::Acknowledged);
    assert!(row.acknowledged_at.is_none() && row.ack_channel.is_none());
}
on_both_databases!(an_expired_ack_link_on_an_open_escalation_changes_nothing);

/// With the mail server down for two hours, a page of an escalation still open keeps
/// being retried (at most two minutes apart) and goes out when the server is back; an
/// ordinary email queued at the same time is given up after the outbox's attempts.
async fn a_page_is_still_delivered_after_a_two_hour_smtp_outage(app: &TestApp) {
    // REQ: ESC-ADVANCE
    let t = team(app).await;
    let (_, e) = critical_deviation(app, &t).await;
    let start = app.now();
    escalation_pass(&app.job_context("w1"), start, &settings())
        .await
        .unwrap();
    entity::outbox::enqueue(
        &app.db,
        entity::outbox::Draft {
            dedupe_key: "digest:outage".to_string(),
            to: vec!["pm@acme.test".to_string()],
            cc: vec![],
            subject: "Weekly digest".to_string(),
            text_body: "text".to_string(),
            html_body: "<p>html</p>".to_string(),
            list_unsubscribe: None,
        },
        start,
        "cmo.test",
    )
    .await
    .unwrap();
    let (socket, port) = e2e::smtp::reserved_port();
    let down = Mailer::new(
        Some(&format!("smtp://127.0.0.1:{port}")),
        std::env::temp_dir(),
    )
    .unwrap();
    let from: lettre::message::Mailbox = "cmo <noreply@cmo.test>".parse().unwrap();
    let page_key = entity::paging::page_delivery::page_dedupe_key(e.id, 1, t.qa_id);
    let row = |key: String| async move {
        entity::outbox::Entity::find()
            .filter(entity::outbox::Column::DedupeKey.eq(key))
            .one(&app.db)
            .await
            .unwrap()
            .unwrap()
    };
    // Bounded: every attempt of the page, each at its due time, for two hours.
    let mut now = start;
    let mut attempts = 0;
    while now < start + TimeDelta::hours(2) && attempts < 200 {
        worker::jobs::outbox::dispatch(&app.job_context("sender"), &down, &from, now, 100)
            .await
            .unwrap();
        attempts += 1;
        let page = row(page_key.clone()).await;
        assert_eq!(page.status, entity::outbox::OutboxStatus::Queued);
        assert!(
            page.next_attempt_at - now <= TimeDelta::minutes(3),
            "retried often"
        );
        now = page.next_attempt_at.max(now + TimeDelta::seconds(1));
    }
    let page = row(page_key.clone()).await;
    assert!(
        page.attempts > entity::outbox::MAX_ATTEMPTS,
        "{} attempts",
        page.attempts
    );
    assert_eq!(
        row("digest:outage".to_string()).await.status,
        entity::outbox::OutboxStatus::Failed,
        "an ordinary email is given up"
    );
    // The server is back on the same port.
    let sink = SmtpSink::serve(socket.listen(16).unwrap());
    worker::jobs::outbox::dispatch(
        &app.job_context("sender"),
        &sink_mailer(&sink),
        &from,
        now,
        100,
    )
    .await
    .unwrap();
    let received = sink.wait_for(1).await;
    assert!(
        received.iter().any(|m| m.to == ["qa@acme.test"]),
        "the page arrives"
    );
}
on_both_databases!(a_page_is_still_delivered_after_a_two_hour_smtp_outage);

fn sink_mailer(sink: &SmtpSink) -> Mailer {
    Mailer::new(Some(&sink.url()), std::env::temp_dir()).unwrap()
}
