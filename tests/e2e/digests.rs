//! Weekly status digests: scheduled per program time zone, once per week across workers,
//! delivered through the real SMTP sink with `List-Unsubscribe`, previewed and
//! unsubscribed through the api.

use chrono::{DateTime, TimeDelta, Utc};
use e2e::smtp::SmtpSink;
use e2e::{TestApp, on_both_databases};
use entity::{audit_event, outbox, schedule, team_member};
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};
use serde_json::json;
use worker::jobs::digests::{DigestSettings, weekly_digests};
use worker::outbound::mailer::Mailer;

use crate::programs::program_setup;
use crate::user_with_token;

fn settings() -> DigestSettings {
    DigestSettings::default()
}

/// The next Monday 07:00 Europe/Zurich (the programs' zone) after `after`.
fn next_digest_tick(after: DateTime<Utc>) -> DateTime<Utc> {
    let cron = schedule::parse("0 0 7 * * Mon").unwrap();
    schedule::next_occurrence(&cron, schedule::zone("Europe/Zurich"), after).unwrap()
}

fn path_of(url: &str) -> String {
    let start = url.find("/api/v1/").expect("api path in link");
    url[start..].to_string()
}

async fn digests_go_out_once_a_week_with_changes_and_a_working_unsubscribe(app: &TestApp) {
    // REQ: NOTIF-DIGEST
    let s = program_setup(app).await;
    let team = format!("/api/v1/programs/{}/team", s.program_id);
    let (qa_id, _) = user_with_token(app, "qa@acme.test", "quality", None).await;
    s.pm.post(
        &team,
        json!({"user_id": qa_id, "governance_tier": "core_team", "program_role": "QA lead"}),
    )
    .await
    .expect(201);
    s.pm.post(
        &team,
        json!({"user_id": s.pm_id, "governance_tier": "core_team", "program_role": "Program manager"}),
    )
    .await
    .expect(201);
    let (muted_id, _) = user_with_token(app, "muted@acme.test", "viewer", None).await;
    s.pm.post(
        &team,
        json!({"user_id": muted_id, "governance_tier": "leadership", "program_role": "VP", "wants_digest": false}),
    )
    .await
    .expect(201);

    // First week: the digest goes to the two subscribers, once, with two workers firing
    // the same tick at the same moment.
    let tick1 = next_digest_tick(app.now());
    let (c1, c2) = (app.job_context("w1"), app.job_context("w2"));
    let (st1, st2) = (settings(), settings());
    let (a, b) = tokio::join!(
        weekly_digests(&c1, tick1 + TimeDelta::minutes(1), &st1),
        weekly_digests(&c2, tick1 + TimeDelta::minutes(1), &st2)
    );
    let (a, b) = (a.unwrap(), b.unwrap());
    assert_eq!(
        (a.programs + b.programs, a.queued + b.queued),
        (1, 2),
        "one worker ran the tick: {a:?} {b:?}"
    );
    let again = weekly_digests(
        &app.job_context("w2"),
        tick1 + TimeDelta::minutes(2),
        &settings(),
    )
    .await
    .unwrap();
    assert_eq!((again.programs, again.queued), (0, 0), "tick already run");

    // During the week: a critical deviation (production goes on hold), an overdue action.
    app.clock.set(tick1 + TimeDelta::hours(2));
    s.pm.post(
        &format!("/api/v1/programs/{}/deviations", s.program_id),
        json!({"title": "Bioburden <excursion>", "description": "seen on the floor", "detected_at": app.now(),
               "criticality": "critical", "category": "equipment", "batch_lot": "LOT-7"}),
    )
    .await
    .expect(201);
    let due = (app.now() - TimeDelta::days(3)).date_naive();
    s.pm.post(
        &format!("/api/v1/programs/{}/action-items", s.program_id),
        json!({"title": "Send the deviation report", "owner_user_id": qa_id, "due_date": due}),
    )
    .await
    .expect(201);

    // The preview shows what would go out now, rendered for the caller.
    let preview =
        s.pm.get(&format!("/api/v1/programs/{}/digest/preview", s.program_id))
            .await
            .expect(200)
            .body;
    assert_eq!(
        preview["since"]
            .as_str()
            .unwrap()
            .parse::<DateTime<Utc>>()
            .unwrap(),
        tick1,
        "changes since the previous digest"
    );
    assert_eq!(
        preview["recipients"],
        json!(["qa@acme.test", "pm@acme.test"])
    );
    let text = preview["text_body"].as_str().unwrap();
    assert!(text.contains(": PRODUCTION ON HOLD"), "{text}");
    let attention = text.find("NEEDS ATTENTION").unwrap();
    let critical = text.find("Critical deviation: DEV-2026-").unwrap();
    assert!(attention < critical, "{text}");
    assert!(text.contains("Bioburden <excursion>"));
    assert!(text.contains("production on hold since"), "{text}");
    assert!(text.contains("Overdue action: Send the deviation report"));
    assert!(
        text.contains("3 days overdue") && text.contains("owner qa"),
        "{text}"
    );
    assert!(text.contains("pm: Reported"), "{text}");
    assert!(!text.contains("/api/v1/"), "no JSON links: {text}");
    assert!(
        preview["html_body"]
            .as_str()
            .unwrap()
            .contains("Bioburden &lt;excursion&gt;")
    );
    assert!(
        preview["unsubscribe_url"]
            .as_str()
            .unwrap()
            .contains("/api/v1/unsubscribe?token=")
    );
    // Another organization's program is not found.
    let (_, _, stranger_token) = crate::partner_org(app, "Other CMO", "cmo", "x@other.test").await;
    app.client(&stranger_token)
        .get(&format!("/api/v1/programs/{}/digest/preview", s.program_id))
        .await
        .expect_problem(404, "not_found");

    // Second week, with a second worker: two emails, delivered through SMTP.
    let tick2 = next_digest_tick(tick1);
    let second = weekly_digests(
        &app.job_context("w2"),
        tick2 + TimeDelta::seconds(30),
        &settings(),
    )
    .await
    .unwrap();
    assert_eq!((second.programs, second.queued), (1, 2));
    let rows = outbox::Entity::find()
        .filter(outbox::Column::DedupeKey.starts_with(format!("digest:{}:", s.program_id)))
        .all(&app.db)
        .await
        .unwrap();
    assert_eq!(rows.len(), 4, "two weeks, two subscribers");

    let sink = SmtpSink::start().await;
    let mailer = Mailer::new(Some(&sink.url()), std::env::temp_dir()).unwrap();
    let from = "cmo <noreply@cmo.test>".parse().unwrap();
    worker::jobs::outbox::dispatch(
        &app.job_context("w1"),
        &mailer,
        &from,
        tick2 + TimeDelta::minutes(1),
        50,
    )
    .await
    .unwrap();
    let received = sink.wait_for(4).await;
    assert_eq!(received.len(), 4);
    let week2 = schedule::zone("Europe/Zurich");
    let week2 = entity::digest::iso_week(tick2.with_timezone(&week2).date_naive());
    let qa_mail = received
        .iter()
        .map(|r| (r, r.parsed()))
        .find(|(r, m)| r.to == ["qa@acme.test"] && m.subject().unwrap_or_default().contains(&week2))
        .expect("week-2 digest to QA");
    let (raw, msg) = qa_mail;
    assert!(
        msg.subject().unwrap().contains("Production on hold"),
        "{:?}",
        msg.subject()
    );
    assert_eq!(msg.text_body_count(), 1);
    assert_eq!(msg.html_body_count(), 1);
    let text = msg.body_text(0).unwrap();
    assert!(
        text.contains("Prepared") && text.contains("for qa."),
        "greets the recipient"
    );
    assert!(text.contains("Bioburden <excursion>"));
    let html = msg.body_html(0).unwrap();
    assert!(html.contains("Bioburden &lt;excursion&gt;"));
    let list_unsubscribe = msg
        .header_raw("List-Unsubscribe")
        .unwrap()
        .trim()
        .to_string();
    assert!(list_unsubscribe.starts_with('<') && list_unsubscribe.ends_with('>'));
    assert_eq!(
        msg.header_raw("List-Unsubscribe-Post").map(str::trim),
        Some("List-Unsubscribe=One-Click")
    );
    assert!(raw.data.contains("Message-ID: <cmo."));

    // The link: GET shows a confirmation page and changes nothing.
    let link = path_of(list_unsubscribe.trim_matches(['<', '>']));
    let anon = app.anonymous();
    let page = anon.get(&link).await.expect(200);
    assert!(
        page.header("content-type")
            .unwrap()
            .starts_with("text/html")
    );
    assert!(page.text.contains("<form method=\"post\""));
    let qa_member = team_member::Entity::find()
        .filter(team_member::Column::UserId.eq(qa_id))
        .one(&app.db)
        .await
        .unwrap()
        .unwrap();
    assert!(qa_member.wants_digest);
    // An altered token changes nothing and says why.
    // (Flip the last hex digit of the signature; always a different token.)
    let last = if link.ends_with('0') { '1' } else { '0' };
    let forged = format!("{}{last}", &link[..link.len() - 1]);
    let refused = anon
        .send_raw(
            anon.request(awc::http::Method::POST, &forged),
            "List-Unsubscribe=One-Click",
        )
        .await
        .expect(400);
    assert!(refused.text.contains("not valid"));
    // One-click POST (what mail clients send), twice: idempotent.
    for _ in 0..2 {
        let done = anon
            .send_raw(
                anon.request(awc::http::Method::POST, &link)
                    .insert_header(("Content-Type", "application/x-www-form-urlencoded")),
                "List-Unsubscribe=One-Click",
            )
            .await
            .expect(200);
        assert!(done.text.contains("Unsubscribed"));
    }
    let qa_member = team_member::Entity::find_by_id(qa_member.id)
        .one(&app.db)
        .await
        .unwrap()
        .unwrap();
    assert!(!qa_member.wants_digest);
    let audited = audit_event::Entity::find()
        .filter(audit_event::Column::EntityType.eq("team_member"))
        .filter(audit_event::Column::Action.eq("unsubscribe_digest"))
        .all(&app.db)
        .await
        .unwrap();
    assert_eq!(audited.len(), 1, "audited once, as the member");
    assert_eq!(audited[0].actor_user_id, Some(qa_id));

    // Week three goes to the PM only.
    let tick3 = next_digest_tick(tick2);
    let third = weekly_digests(&app.job_context("w1"), tick3, &settings())
        .await
        .unwrap();
    assert_eq!((third.programs, third.queued), (1, 1));
}
on_both_databases!(digests_go_out_once_a_week_with_changes_and_a_working_unsubscribe);

async fn a_missed_digest_is_caught_up_only_inside_the_window(app: &TestApp) {
    // REQ: NOTIF-CATCH-UP
    let s = program_setup(app).await;
    s.pm.post(
        &format!("/api/v1/programs/{}/team", s.program_id),
        json!({"user_id": s.pm_id, "governance_tier": "core_team", "program_role": "PM"}),
    )
    .await
    .expect(201);
    let tick = next_digest_tick(app.now());
    let window = DigestSettings {
        catch_up: TimeDelta::hours(12),
        ..settings()
    };
    // No worker ran at 07:00; one starting 11 hours later sends it, once.
    let caught_up = weekly_digests(&app.job_context("w1"), tick + TimeDelta::hours(11), &window)
        .await
        .unwrap();
    assert_eq!((caught_up.programs, caught_up.queued), (1, 1));
    let again = weekly_digests(
        &app.job_context("w2"),
        tick + TimeDelta::hours(11) + TimeDelta::minutes(1),
        &window,
    )
    .await
    .unwrap();
    assert_eq!(again.programs, 0, "once");
    // The week after, no worker runs until 13 hours past 07:00: that digest is stale.
    let week2 = next_digest_tick(tick);
    let late = weekly_digests(
        &app.job_context("w1"),
        week2 + TimeDelta::hours(13),
        &window,
    )
    .await
    .unwrap();
    assert_eq!(late.programs, 0);
    // Before the next tick, nothing is due.
    let week3 = next_digest_tick(week2);
    let early = weekly_digests(
        &app.job_context("w2"),
        week3 - TimeDelta::minutes(1),
        &window,
    )
    .await
    .unwrap();
    assert_eq!(early.programs, 0);
    // A worker that claimed the tick and died is taken over after the claim goes stale;
    // the deduplicated outbox keeps it to one email.
    let next = week3;
    entity::job_run::claim(
        &app.db,
        &format!("digest:{}", s.program_id),
        next,
        "dead",
        next,
    )
    .await
    .unwrap();
    let blocked = weekly_digests(
        &app.job_context("w2"),
        next + TimeDelta::minutes(1),
        &window,
    )
    .await
    .unwrap();
    assert_eq!(blocked.programs, 0, "claimed by a live-looking worker");
    let taken = weekly_digests(
        &app.job_context("w2"),
        next + TimeDelta::minutes(6),
        &window,
    )
    .await
    .unwrap();
    assert_eq!((taken.programs, taken.queued), (1, 1));
}
on_both_databases!(a_missed_digest_is_caught_up_only_inside_the_window);

/// A pass reads the programs whose digest is due (each program's next occurrence is
/// kept); when a program moves to another time zone its next digest moves with it, and a
/// changed digest schedule is taken up at the worker's start.
async fn the_next_digest_follows_a_time_zone_change_and_a_new_schedule(app: &TestApp) {
    // REQ: NOTIF-CATCH-UP
    let s = program_setup(app).await;
    let program = format!("/api/v1/programs/{}", s.program_id);
    s.pm.post(
        &format!("{program}/team"),
        json!({"user_id": s.pm_id, "governance_tier": "core_team", "program_role": "PM"}),
    )
    .await
    .expect(201);
    let zurich_tick = next_digest_tick(app.now());
    let cron = schedule::parse("0 0 7 * * Mon").unwrap();
    let new_york_tick =
        schedule::next_occurrence(&cron, schedule::zone("America/New_York"), zurich_tick).unwrap();
    assert_eq!(new_york_tick - zurich_tick, TimeDelta::hours(6));
    let w = app.job_context("w1");
    // A pass before the tick computes the Zurich occurrence and sends nothing.
    let before = weekly_digests(&w, zurich_tick - TimeDelta::hours(1), &settings())
        .await
        .unwrap();
    assert_eq!(before.programs, 0);
    let stored = entity::digest::schedule::Entity::find_by_id(s.program_id)
        .one(&app.db)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(stored.next_at, Some(zurich_tick));
    // The program moves to New York: Zurich's Monday morning sends nothing, New York's does.
    let version = s.pm.get(&program).await.expect(200).body["version"].clone();
    s.pm.patch(
        &program,
        json!({"version": version, "time_zone": "America/New_York", "reason": "Program lead moved to the US site"}),
    )
    .await
    .expect(200);
    let zurich = weekly_digests(&w, zurich_tick + TimeDelta::minutes(1), &settings())
        .await
        .unwrap();
    assert_eq!(zurich.programs, 0);
    let new_york = weekly_digests(&w, new_york_tick + TimeDelta::minutes(1), &settings())
        .await
        .unwrap();
    assert_eq!((new_york.programs, new_york.queued), (1, 1));
    // A worker started with a daily schedule recomputes what the weekly one left.
    let daily = DigestSettings {
        schedule: "0 0 7 * * *".to_string(),
        ..settings()
    };
    assert_eq!(
        worker::jobs::digests::forget_other_schedules(&w, &daily)
            .await
            .unwrap(),
        1
    );
    let tuesday = new_york_tick + TimeDelta::days(1) + TimeDelta::minutes(1);
    let next_day = weekly_digests(&w, tuesday, &daily).await.unwrap();
    assert_eq!(next_day.programs, 1, "the daily digest of Tuesday");
}
on_both_databases!(the_next_digest_follows_a_time_zone_change_and_a_new_schedule);
