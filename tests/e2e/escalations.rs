//! 24/7 escalation with the real SMTP sink: pages tier by tier through the worker's pass,
//! acknowledgement by link and by API, ack timeout, empty tiers, policy snapshots.

use chrono::{DateTime, TimeDelta, Utc};
use e2e::smtp::SmtpSink;
use e2e::{TestApp, on_both_databases};
use entity::escalation::{self, EscalationStatus};
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};
use serde_json::{Value, json};
use worker::jobs::escalations::{EscalationSettings, escalation_pass};
use worker::mailer::Mailer;

use crate::programs::program_setup;
use crate::user_with_token;

fn settings(app: &TestApp) -> EscalationSettings {
    EscalationSettings {
        public_base_url: app.base_url.clone(),
        ..EscalationSettings::default()
    }
}

async fn deliver(app: &TestApp, sink: &SmtpSink, now: DateTime<Utc>) {
    let mailer = Mailer::new(Some(&sink.url()), std::env::temp_dir()).unwrap();
    let from = "cmo <noreply@cmo.test>".parse().unwrap();
    worker::jobs::dispatch::dispatch(&app.job_context("sender"), &mailer, &from, now, 100)
        .await
        .unwrap();
}

/// The acknowledgement link in a page sent to `to`.
fn ack_link(sink: &SmtpSink, to: &str, tier: usize) -> String {
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

struct Team {
    s: crate::programs::Setup,
    qa_id: i64,
    qa: e2e::Client,
}

/// A core-team QA lead tagged `equipment`, a leadership member, no steering committee.
async fn team(app: &TestApp) -> Team {
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

async fn critical_deviation(app: &TestApp, t: &Team) -> (i64, escalation::Model) {
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
    let (st1, st2) = (settings(app), settings(app));
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
    assert!(text.contains("Production:  ON_HOLD"), "{text}");
    assert!(
        text.contains("qa, QA lead, qa@acme.test"),
        "call tree contacts: {text}"
    );
    assert!(text.contains("Tier 2 - Leadership (wait 30 min)"));
    assert!(
        text.contains("(nobody: this tier is skipped)"),
        "steering committee is empty"
    );

    // Nothing more before the 15-minute wait; then tier 2, once, and tier 1 is told.
    let early = escalation_pass(
        &app.job_context("w1"),
        t0 + TimeDelta::minutes(14),
        &settings(app),
    )
    .await
    .unwrap();
    assert_eq!(early.pages, 0);
    let t15 = t0 + TimeDelta::minutes(15);
    let second = escalation_pass(&app.job_context("w2"), t15, &settings(app))
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
    // … the button acknowledges, once; the same link again is idempotent.
    let done = anon
        .send_raw(anon.request(awc::http::Method::POST, &link), "")
        .await
        .expect(200);
    assert!(done.text.contains("Acknowledged"), "{}", done.text);
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
    // QA's tier-1 link now changes nothing: someone else took it.
    let qa_link = ack_link(&sink, "qa@acme.test", 1);
    let late = anon
        .send_raw(anon.request(awc::http::Method::POST, &qa_link), "")
        .await;
    assert_eq!(late.status, 409);
    assert!(late.text.contains("already acknowledged by someone else"));
    // Everyone paged hears who took it.
    deliver(app, &sink, t15).await;
    let notice = sink
        .wait_for(4)
        .await
        .into_iter()
        .find(|r| {
            r.parsed()
                .subject()
                .unwrap_or_default()
                .contains("Acknowledged by lead")
        })
        .expect("acknowledgement notice");
    let mut to = notice.to.clone();
    to.sort();
    assert_eq!(to, ["lead@acme.test", "qa@acme.test"]);
    // No more pages while acknowledged.
    let quiet = escalation_pass(
        &app.job_context("w1"),
        t15 + TimeDelta::minutes(40),
        &settings(app),
    )
    .await
    .unwrap();
    assert_eq!(quiet.pages, 0);

    // Acknowledged but forgotten: after the 60-minute ack timeout it re-opens and
    // re-pages the tier that acknowledged (leadership), once.
    let timeout = escalation_pass(
        &app.job_context("w1"),
        t15 + TimeDelta::minutes(61),
        &settings(app),
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
    // Everyone paged hears it was resolved.
    let resolved = entity::outbox::Entity::find()
        .all(&app.db)
        .await
        .unwrap()
        .into_iter()
        .find(|r| r.dedupe_key == format!("escalation:{}:resolved", e.id))
        .expect("resolution notice");
    assert!(
        resolved.to_addrs.contains("qa@acme.test") && resolved.to_addrs.contains("lead@acme.test")
    );
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

async fn empty_tiers_are_skipped_and_a_running_escalation_keeps_its_policy(app: &TestApp) {
    // REQ: ESC-ADVANCE
    let t = team(app).await;
    let policy_path = format!("/api/v1/programs/{}/escalation-policy", t.s.program_id);
    let policy = t.s.pm.get(&policy_path).await.expect(200).body;
    assert_eq!(policy["version"], 1);
    assert_eq!(policy["tiers"][0]["name"], "Core team");
    // The check warns about the empty steering committee.
    let check =
        t.s.pm
            .get(&format!("{policy_path}/check"))
            .await
            .expect(200)
            .body;
    assert_eq!(check["ok"], false);
    assert!(
        check["warnings"]
            .as_array()
            .unwrap()
            .iter()
            .any(|w| w["code"] == "empty_tier" && w["tier"] == 2),
        "{check}"
    );
    // A dry run at 02:00 pages now, then after 15 and 30 minutes; the empty tier is
    // skipped at once.
    let dry =
        t.s.pm
            .get(&format!(
                "{policy_path}/dry-run?category=equipment&at=2026-11-28T02:00:00Z"
            ))
            .await
            .expect(200)
            .body;
    let at = |i: usize| dry["pages"][i]["page_at"].as_str().unwrap().to_string();
    assert_eq!(at(0), "2026-11-28T02:00:00Z");
    assert_eq!(at(1), "2026-11-28T02:15:00Z");
    assert_eq!(at(2), "2026-11-28T02:45:00Z");
    assert_eq!(dry["pages"][2]["recipients"], json!([]));
    assert_eq!(dry["exhausted_at"], "2026-11-28T02:45:00Z");

    // Manual escalation without a category: tier 1 is core team only (QA).
    let opened = t
        .s
        .pm
        .post(
            "/api/v1/escalations",
            json!({"program_id": t.s.program_id, "title": "Shipper lost", "reason": "GMP lot untracked for 6 h", "urgency": "major"}),
        )
        .await
        .expect(201)
        .body;
    let id = opened["id"].as_i64().unwrap();
    let t0 = app.now();
    escalation_pass(&app.job_context("w1"), t0, &settings(app))
        .await
        .unwrap();

    // The policy changes mid-escalation: the running one keeps its snapshot.
    let mut tiers: Vec<Value> = policy["tiers"].as_array().unwrap().clone();
    tiers[1]["wait_minutes"] = json!(1);
    tiers[0]["wait_minutes"] = json!(1);
    t.s.pm
        .put(
            &policy_path,
            json!({"tiers": tiers, "repeat_last": 0, "ack_timeout_minutes": 10, "version": 1}),
        )
        .await
        .expect(200);
    let nothing = escalation_pass(
        &app.job_context("w1"),
        t0 + TimeDelta::minutes(2),
        &settings(app),
    )
    .await
    .unwrap();
    assert_eq!(nothing.pages, 0, "still the 15-minute wait it opened with");
    // Tier 2 at 15 min; at 45 min tier 3 is empty (skipped at once) and the last tier's
    // repeat pages tier 3 again: empty as well, so the escalation is exhausted.
    let second = escalation_pass(
        &app.job_context("w1"),
        t0 + TimeDelta::minutes(15),
        &settings(app),
    )
    .await
    .unwrap();
    assert_eq!(second.pages, 1);
    let end = escalation_pass(
        &app.job_context("w1"),
        t0 + TimeDelta::minutes(45),
        &settings(app),
    )
    .await
    .unwrap();
    assert_eq!(
        (end.pages, end.skipped, end.exhausted),
        (0, 2, 1),
        "{end:?}"
    );
    let detail =
        t.s.pm
            .get(&format!("/api/v1/escalations/{id}"))
            .await
            .expect(200)
            .body;
    assert_eq!(detail["escalation"]["status"], "exhausted");
    let audited: Vec<String> = entity::audit_event::Entity::find()
        .filter(entity::audit_event::Column::EntityType.eq("escalation"))
        .filter(entity::audit_event::Column::EntityId.eq(id.to_string()))
        .all(&app.db)
        .await
        .unwrap()
        .into_iter()
        .map(|a| a.action)
        .collect();
    assert!(audited.contains(&"exhaust".to_string()), "{audited:?}");
    assert_eq!(detail["policy"]["tiers"][0]["wait_minutes"], 15);
    // Exhausted can still be acknowledged (by API) and resolved. An ack is audited with
    // its channel; a second one by the same person changes nothing.
    let first =
        t.qa.post(
            &format!("/api/v1/escalations/{id}/ack"),
            json!({"note": "on it"}),
        )
        .await
        .expect(200)
        .body;
    let row = escalation::Entity::find_by_id(id)
        .one(&app.db)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(row.ack_channel.as_deref(), Some("api"));
    assert_eq!(row.acknowledged_at, Some(app.now()));
    let ack_audit = entity::audit_event::Entity::find()
        .filter(entity::audit_event::Column::EntityType.eq("escalation"))
        .filter(entity::audit_event::Column::EntityId.eq(id.to_string()))
        .filter(entity::audit_event::Column::Action.eq("acknowledge"))
        .all(&app.db)
        .await
        .unwrap();
    assert_eq!(ack_audit.len(), 1, "the ack is audited once");
    assert_eq!(ack_audit[0].actor_user_id, Some(t.qa_id));
    assert!(
        ack_audit[0]
            .after
            .as_deref()
            .unwrap_or_default()
            .contains("\"api\""),
        "{:?}",
        ack_audit[0].after
    );
    app.clock.advance(TimeDelta::minutes(1));
    let again =
        t.qa.post(&format!("/api/v1/escalations/{id}/ack"), json!({}))
            .await
            .expect(200)
            .body;
    assert_eq!(
        again["acknowledged_at"], first["acknowledged_at"],
        "idempotent"
    );
    t.s.pm
        .post(&format!("/api/v1/escalations/{id}/ack"), json!({}))
        .await
        .expect_problem(409, "illegal_transition");
    t.qa.post(
        &format!("/api/v1/escalations/{id}/resolve"),
        json!({"reason": "shipper found"}),
    )
    .await
    .expect(200);
    t.qa.post(
        &format!("/api/v1/escalations/{id}/resolve"),
        json!({"reason": "again"}),
    )
    .await
    .expect_problem(409, "illegal_transition");

    // Validation and tenancy.
    let mut bad = tiers.clone();
    bad[0]["wait_minutes"] = json!(0);
    bad[1]["member_ids"] = json!([999_999]);
    let problem =
        t.s.pm
            .put(
                &policy_path,
                json!({"tiers": bad, "repeat_last": 0, "ack_timeout_minutes": 10, "version": 2}),
            )
            .await
            .expect_problem(422, "validation_failed")
            .body;
    assert_eq!(problem["errors"][0]["field"], "tiers[0].wait_minutes");
    t.s.pm
        .put(
            &policy_path,
            json!({"tiers": tiers, "repeat_last": 0, "ack_timeout_minutes": 10, "version": 1}),
        )
        .await
        .expect_problem(409, "version_conflict");
    t.qa.put(
        &policy_path,
        json!({"tiers": tiers, "repeat_last": 0, "ack_timeout_minutes": 10, "version": 2}),
    )
    .await
    .expect_problem(403, "forbidden");
    let (_, _, stranger) = crate::partner_org(app, "Other CMO", "cmo", "x@other.test").await;
    let stranger = app.client(&stranger);
    stranger
        .get(&format!("/api/v1/escalations/{id}"))
        .await
        .expect_problem(404, "not_found");
    stranger
        .get(&policy_path)
        .await
        .expect_problem(404, "not_found");
    stranger
        .post(&format!("/api/v1/escalations/{id}/ack"), json!({}))
        .await
        .expect_problem(404, "not_found");
    assert_eq!(
        stranger.get("/api/v1/escalations").await.expect(200).body["total"],
        0
    );
}
on_both_databases!(empty_tiers_are_skipped_and_a_running_escalation_keeps_its_policy);

/// Real `cmo-worker` processes: the first pages tier 1 for a burst of critical deviations
/// and is SIGKILLed while it still has pages to send; two fresh workers, started when
/// the 15-minute wait is over, finish tier 1 and page tier 2: every escalation reaches
/// tier 2, no email is sent under two Message-IDs, and each of the three workers ran.
async fn a_killed_worker_leaves_nothing_half_done(app: &TestApp) {
    // REQ: ESC-KILLED-WORKER, ESC-ADVANCE, ESC-TIER-ONE-AT-ONCE
    use e2e::worker_process::WorkerProcess;
    const BURST: usize = 20;
    let t = team(app).await;
    let sink = SmtpSink::start().await;
    let fast = [("CMO_ESCALATION_TICK_MS", "50")];
    for n in 0..BURST {
        t.s.pm
            .post(
                &format!("/api/v1/programs/{}/deviations", t.s.program_id),
                json!({"title": format!("Filter integrity test failed #{n}"), "description": "post-use test failed",
                       "detected_at": app.now(), "criticality": "critical", "category": "equipment"}),
            )
            .await
            .expect(201);
    }
    // The first worker pages the burst; the SMTP server takes 100 ms per email, so when
    // three have arrived the rest are still being sent: killed there.
    sink.slow_down(std::time::Duration::from_millis(100));
    let mut first = WorkerProcess::start(&app.database_url, &sink.url(), "first", app.now(), &fast);
    sink.wait_for(3).await;
    first.kill();
    let unsent = entity::outbox::Entity::find()
        .filter(entity::outbox::Column::Status.ne(entity::outbox::OutboxStatus::Sent))
        .all(&app.db)
        .await
        .unwrap()
        .len();
    assert!(unsent > 0, "killed mid-work: {unsent} emails not yet sent");
    sink.slow_down(std::time::Duration::ZERO);
    let later = app.now() + TimeDelta::minutes(16);
    let second = WorkerProcess::start(&app.database_url, &sink.url(), "second", later, &fast);
    let third = WorkerProcess::start(&app.database_url, &sink.url(), "third", later, &fast);
    // Bounded wait for the condition: every escalation paged twice and every email sent.
    let done = || async {
        let rows = escalation::Entity::find().all(&app.db).await.unwrap();
        let unsent = entity::outbox::Entity::find()
            .filter(entity::outbox::Column::Status.ne(entity::outbox::OutboxStatus::Sent))
            .all(&app.db)
            .await
            .unwrap();
        rows.len() == BURST && rows.iter().all(|e| e.page_seq == 2) && unsent.is_empty()
    };
    for _ in 0..600 {
        if done().await {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert!(
        done().await,
        "all escalations at tier 2 and all email sent within 30 s"
    );
    for w in [second, third] {
        let id = w.worker_id.clone();
        assert!(w.stop().await.success(), "{id} exits 0 on SIGTERM");
    }
    let received = sink.received();
    let mut by_id: std::collections::BTreeMap<String, Vec<String>> = Default::default();
    for m in &received {
        let id = m.parsed().message_id().unwrap_or_default().to_string();
        by_id.entry(id).or_default().push(m.to.join(","));
    }
    // Per escalation: tier 1 to QA, tier 2 to the lead, the "escalated" notice to QA.
    assert_eq!(by_id.len(), 3 * BURST, "distinct emails (Message-IDs)");
    assert!(
        by_id.values().all(|to| to.iter().all(|t| t == &to[0])),
        "a repeated Message-ID is the same email"
    );
    let to_lead = by_id
        .values()
        .filter(|to| to[0] == "lead@acme.test")
        .count();
    assert_eq!(to_lead, BURST, "tier 2 paged once per escalation");
    // Duplicates only for what was in flight at the kill (same Message-ID).
    assert!(
        received.len() - by_id.len() <= 50,
        "{} duplicates",
        received.len() - by_id.len()
    );
    assert_eq!(
        app.workers_that_ran().await,
        ["first", "second", "third"],
        "each worker ran"
    );
}
on_both_databases!(a_killed_worker_leaves_nothing_half_done);

/// PostgreSQL: a new escalation wakes a real worker through LISTEN/NOTIFY, not its tick
/// (set to a minute here), and still does after the database server restarted.
#[actix_web::test]
async fn notify_wakes_the_worker_at_once_also_after_a_postgres_restart() {
    // REQ: ESC-NOTIFY-WAKE
    use e2e::worker_process::WorkerProcess;
    let Some(cluster) = e2e::pg::private_cluster() else {
        return;
    };
    let admin_db = sea_orm::Database::connect(cluster.url("postgres"))
        .await
        .unwrap();
    sea_orm::ConnectionTrait::execute_unprepared(&admin_db, "CREATE DATABASE wake")
        .await
        .unwrap();
    let _ = admin_db.close().await;
    let app = e2e::spawn_app_on(
        cluster.url("wake"),
        e2e::Backend::Postgres,
        tempfile::tempdir().unwrap(),
        10_000,
    )
    .await;
    let t = team(&app).await;
    let sink = SmtpSink::start().await;
    let minute_tick = [("CMO_ESCALATION_TICK_MS", "60000")];
    let worker = WorkerProcess::start(
        &app.database_url,
        &sink.url(),
        "listener",
        app.now(),
        &minute_tick,
    );
    // The loop's first tick runs at start; wait until it has passed (the heartbeat row is
    // written just before the loops start), so that only NOTIFY can wake it next.
    let beat = || async {
        entity::worker_heartbeat::Entity::find()
            .all(&app.db)
            .await
            .map(|rows| rows.iter().any(|b| b.beats >= 2))
            .unwrap_or(false)
    };
    for _ in 0..200 {
        if beat().await {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert!(beat().await, "the worker runs");
    let page_within = |n: usize, what: &'static str| {
        let sink = &sink;
        async move {
            let started = std::time::Instant::now();
            while sink.count() < n && started.elapsed() < std::time::Duration::from_secs(10) {
                tokio::time::sleep(std::time::Duration::from_millis(20)).await;
            }
            let took = started.elapsed();
            assert!(sink.count() >= n, "{what}: no page within 10 s");
            assert!(
                took < std::time::Duration::from_secs(10),
                "{what}: paged after {took:?}, well before the one-minute tick"
            );
        }
    };
    let report = |n: usize| {
        let pm = t.s.pm.clone();
        let program_id = t.s.program_id;
        let now = app.now();
        async move {
            pm.post(
                &format!("/api/v1/programs/{program_id}/deviations"),
                json!({"title": format!("Filter integrity test failed #{n}"), "description": "d",
                       "detected_at": now, "criticality": "critical", "category": "equipment"}),
            )
            .await
            .expect(201);
        }
    };
    report(1).await;
    page_within(1, "first escalation").await;
    // The server restarts; the worker's LISTEN connection is cut and comes back.
    cluster.stop().unwrap();
    cluster.restart().unwrap();
    let mut posted = false;
    for _ in 0..100 {
        let r = t
            .s
            .pm
            .post(
                &format!("/api/v1/programs/{}/deviations", t.s.program_id),
                json!({"title": "Filter integrity test failed #2", "description": "d",
                       "detected_at": app.now(), "criticality": "critical", "category": "equipment"}),
            )
            .await;
        if r.status.as_u16() == 201 {
            posted = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(posted, "the api recovers after the restart");
    page_within(2, "after the restart").await;
    assert!(worker.stop().await.success());
    app.stop().await;
}

/// An acknowledgement link older than 24 hours changes nothing, also when the escalation
/// is still open (a button pressed on a day-old email must not silence today's pages).
async fn an_expired_ack_link_on_an_open_escalation_changes_nothing(app: &TestApp) {
    // REQ: ESC-ACK
    let t = team(app).await;
    let (_, e) = critical_deviation(app, &t).await;
    // Tier 1 is paged; the link in QA's page is the one pressed a day later.
    escalation_pass(&app.job_context("w1"), app.now(), &settings(app))
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
