//! Overdue-action reminders, driven with a chosen `now`.

use chrono::{Datelike, TimeDelta, TimeZone, Utc, Weekday};
use e2e::smtp::SmtpSink;
use e2e::{TestApp, on_both_databases};
use entity::outbox;
use sea_orm::{EntityTrait, QueryOrder};
use serde_json::json;
use worker::jobs::reminders::{ReminderSettings, overdue_reminders};
use worker::outbound::mailer::Mailer;

use crate::programs::program_setup;
use crate::{live_in, user_with_token};

/// `h:m` on `day` in Zurich (where the program is and its owners live), as UTC.
fn zurich(day: chrono::NaiveDate, h: u32, m: u32) -> chrono::DateTime<Utc> {
    let tz: chrono_tz::Tz = "Europe/Zurich".parse().unwrap();
    tz.from_local_datetime(&day.and_hms_opt(h, m, 0).unwrap())
        .single()
        .unwrap()
        .with_timezone(&Utc)
}

/// In winter (CET, UTC+1) and in summer (CEST, UTC+2): the reminder hour is read in the
/// owner's zone (Zurich), so the same scenario holds on both sides of the switch.
async fn owners_get_one_reminder_a_day_with_leadership_copied_on_old_items(app: &TestApp) {
    // REQ: NOTIF-REMINDER-SCHEDULE, NOTIF-REMINDER-CONTENT, NOTIF-REMINDER-ONCE
    for monday in ["2026-11-30", "2027-03-29"] {
        let app = e2e::spawn_app(app.backend).await.expect("app");
        let day: chrono::NaiveDate = monday.parse().unwrap();
        app.clock.set(zurich(day, 7, 0) - TimeDelta::days(3));
        reminders_on(&app, day).await;
        app.stop().await;
    }
}

async fn reminders_on(app: &TestApp, day: chrono::NaiveDate) {
    assert_eq!(day.weekday(), Weekday::Mon);
    let s = program_setup(app).await;
    live_in(app, s.pm_id, "Europe/Zurich").await;
    let monday_9 = zurich(day, 9, 0);
    let (lead_id, _) = user_with_token(app, "lead@acme.test", "viewer", None).await;
    s.pm.post(
        &format!("/api/v1/programs/{}/team", s.program_id),
        json!({"user_id": lead_id, "governance_tier": "leadership", "program_role": "VP Operations"}),
    )
    .await
    .expect(201);
    let items = format!("/api/v1/programs/{}/action-items", s.program_id);
    let create = |title: &'static str, due: chrono::NaiveDate| {
        let pm = s.pm.clone();
        let items = items.clone();
        let owner = s.pm_id;
        async move {
            pm.post(
                &items,
                json!({"title": title, "owner_user_id": owner, "due_date": due}),
            )
            .await
            .expect(201)
            .body
        }
    };
    create(
        "Send the cleaning validation protocol",
        day - TimeDelta::days(10),
    )
    .await;
    create("Review the batch record", day - TimeDelta::days(2)).await;
    create("Not due yet", day + TimeDelta::days(3)).await;
    // Exactly 7 days overdue: listed with its days.
    create("Seven days late", day - TimeDelta::days(7)).await;
    let cancelled = create("Cancelled", day - TimeDelta::days(4)).await;
    s.pm.post(
        &format!("/api/v1/action-items/{}/transitions", cancelled["id"]),
        json!({"event": "cancel", "reason": "superseded"}),
    )
    .await
    .expect(200);
    let snoozed = create("Snoozed", day - TimeDelta::days(6)).await;
    s.pm.post(
        &format!("/api/v1/action-items/{}/snooze", snoozed["id"]),
        json!({"until": day, "reason": "waiting for the CMO"}),
    )
    .await
    .expect(200);
    let done = create("Already done", day - TimeDelta::days(5)).await;
    s.pm.post(
        &format!("/api/v1/action-items/{}/transitions", done["id"]),
        json!({"event": "complete"}),
    )
    .await
    .expect(200);

    // At 07:59 local time nothing goes out; on the tick just after 08:00, one email.
    let settings = ReminderSettings::default();
    assert_eq!(
        overdue_reminders(&app.job_context("w1"), zurich(day, 7, 59), &settings)
            .await
            .unwrap()
            .queued,
        0
    );
    let on_the_tick = zurich(day, 8, 0) + TimeDelta::milliseconds(250);
    let report = overdue_reminders(&app.job_context("w1"), on_the_tick, &settings)
        .await
        .unwrap();
    // The owner's reminder, and the leader's own copy of the long-overdue item.
    assert_eq!((report.owners, report.items, report.queued), (1, 3, 2));
    // A second worker, or a second pass the same day: no second email.
    assert_eq!(
        overdue_reminders(
            &app.job_context("w2"),
            monday_9 + TimeDelta::hours(1),
            &settings
        )
        .await
        .unwrap()
        .queued,
        0
    );

    let rows = outbox::Entity::find()
        .order_by_asc(outbox::Column::Id)
        .all(&app.db)
        .await
        .unwrap();
    assert_eq!(rows.len(), 2);
    let (row, copy) = (&rows[0], &rows[1]);
    assert_eq!(
        row.dedupe_key,
        format!("reminder:{}:Europe/Zurich:{day}", s.pm_id)
    );
    assert_eq!(row.to_addrs, json!(["pm@acme.test"]).to_string());
    assert_eq!(row.cc_addrs, "[]", "a copy is its own email");
    assert_eq!(copy.to_addrs, json!(["lead@acme.test"]).to_string());
    assert_eq!(
        copy.dedupe_key,
        format!("reminder-copy:{}:{lead_id}:Europe/Zurich:{day}", s.pm_id)
    );
    assert!(copy.subject.starts_with("Copy: 1 overdue action item of "));
    assert!(
        copy.text_body.contains("cleaning validation"),
        "10 days overdue copies leadership"
    );
    assert!(
        !copy.text_body.contains("Seven days late"),
        "7 days is not past the threshold"
    );
    assert_eq!(row.subject, format!("3 overdue action items — {day}"));
    let oldest = row.text_body.find("cleaning validation").unwrap();
    let seven = row.text_body.find("Seven days late").unwrap();
    let newer = row.text_body.find("Review the batch record").unwrap();
    assert!(oldest < seven && seven < newer, "oldest first");
    assert!(row.text_body.contains("10 days overdue") && row.text_body.contains("2 days overdue"));
    assert!(row.text_body.contains("7 days overdue"));
    for left_out in ["Already done", "Not due yet", "Cancelled", "Snoozed"] {
        assert!(!row.text_body.contains(left_out), "{left_out} is left out");
    }
    assert!(row.html_body.contains("<b>10 days overdue</b>"));

    // Delivered once through SMTP, as multipart with both parts.
    let sink = SmtpSink::start().await;
    let mailer = Mailer::new(Some(&sink.url()), std::env::temp_dir()).unwrap();
    let from = "cmo <noreply@cmo.test>".parse().unwrap();
    worker::jobs::outbox::dispatch(&app.job_context("w1"), &mailer, &from, monday_9, 10)
        .await
        .unwrap();
    let received = sink.wait_for(2).await;
    assert_eq!(received.len(), 2);
    assert!(received[0].data.contains("Content-Type: text/html"));
    let mut rcpts: Vec<String> = received.iter().flat_map(|r| r.to.clone()).collect();
    rcpts.sort();
    assert_eq!(rcpts, ["lead@acme.test", "pm@acme.test"]);

    // The next day's pass sends again: the snooze ended on Monday, so that item is back.
    let tuesday_9 = monday_9 + TimeDelta::days(1);
    let report = overdue_reminders(&app.job_context("w1"), tuesday_9, &settings)
        .await
        .unwrap();
    assert_eq!((report.items, report.queued), (4, 2));
}
on_both_databases!(owners_get_one_reminder_a_day_with_leadership_copied_on_old_items);

/// Two workers, each ticking every minute a few hundred milliseconds apart (as real ones
/// do), through a whole morning: every occurrence of the reminder and agreement schedules
/// is claimed exactly once, and only one worker runs it.
async fn each_occurrence_is_claimed_once_by_one_of_two_workers(app: &TestApp) {
    // REQ: NOTIF-OCCURRENCE-CLAIM, NOTIF-REMINDER-ONCE
    let s = program_setup(app).await;
    live_in(app, s.pm_id, "Europe/Zurich").await;
    let day: chrono::NaiveDate = "2026-11-30".parse().unwrap();
    s.pm.post(
        &format!("/api/v1/programs/{}/action-items", s.program_id),
        json!({"title": "Send the protocol", "owner_user_id": s.pm_id, "due_date": day - TimeDelta::days(2)}),
    )
    .await
    .expect(201);
    let reminders = ReminderSettings::default();
    let agreements = worker::jobs::agreement_expiry::AgreementSettings::default();
    let (w1, w2) = (app.job_context("w1"), app.job_context("w2"));
    let mut ran = (0, 0);
    // 05:00 to 09:00 UTC (06:00-10:00 in Zurich) covers the 06:00 UTC agreement check
    // and the 08:00 Zurich reminder; the window of each is hours, so every tick after
    // the occurrence sees it due.
    let start = Utc.from_utc_datetime(&day.and_hms_opt(5, 0, 0).unwrap());
    for minute in 0..240 {
        let tick = start + TimeDelta::minutes(minute);
        for (n, (ctx, jitter)) in [(&w1, 250), (&w2, 731)].into_iter().enumerate() {
            let at = tick + TimeDelta::milliseconds(jitter) + TimeDelta::microseconds(minute);
            let r = overdue_reminders(ctx, at, &reminders).await.unwrap();
            let a = worker::jobs::agreement_expiry::expiry_reminders(ctx, at, &agreements)
                .await
                .unwrap();
            let runs = r.ticks + usize::from(a.ran);
            if n == 0 {
                ran.0 += runs;
            } else {
                ran.1 += runs;
            }
        }
    }
    let runs = entity::job_run::Entity::find().all(&app.db).await.unwrap();
    let mut keys: Vec<(String, String)> = runs
        .iter()
        .map(|r| (r.job.clone(), r.scheduled_for.to_rfc3339()))
        .collect();
    keys.sort();
    // Only the zones of people with something due claim a tick: the admins in UTC, with
    // nothing overdue, add none.
    assert_eq!(
        keys,
        [
            (
                "overdue_reminders:Europe/Zurich".to_string(),
                "2026-11-30T07:00:00+00:00".to_string()
            ),
            (
                "quality_agreement_expiry".to_string(),
                "2026-11-30T06:00:00+00:00".to_string()
            ),
        ],
        "one claim per occurrence, whole seconds"
    );
    assert_eq!(ran.0 + ran.1, 2, "each occurrence run once: {ran:?}");
    assert!(runs.iter().all(|r| r.finished_at.is_some()));
    assert_eq!(outbox::Entity::find().all(&app.db).await.unwrap().len(), 1);
}
on_both_databases!(each_occurrence_is_claimed_once_by_one_of_two_workers);

/// The reminder follows its reader's clock, not the program's: of two owners with items
/// of one Zurich program, the one in Zurich hears at 08:00 Zurich time, the one in New
/// York at 08:00 New York time (six hours later), each counting days overdue from their
/// own date.
async fn each_owner_is_reminded_at_eight_on_their_own_clock(app: &TestApp) {
    // REQ: NOTIF-REMINDER-SCHEDULE, TIME-ZONES
    let s = program_setup(app).await;
    live_in(app, s.pm_id, "Europe/Zurich").await;
    let (qa_id, _) = user_with_token(app, "qa@acme.test", "quality", None).await;
    live_in(app, qa_id, "America/New_York").await;
    let day: chrono::NaiveDate = "2026-12-01".parse().unwrap();
    for (owner, title) in [
        (s.pm_id, "Send the protocol"),
        (qa_id, "Review the batch record"),
    ] {
        s.pm.post(
            &format!("/api/v1/programs/{}/action-items", s.program_id),
            json!({"title": title, "owner_user_id": owner, "due_date": day - TimeDelta::days(1)}),
        )
        .await
        .expect(201);
    }
    let settings = ReminderSettings::default();
    let ctx = app.job_context("w1");
    let new_york = |h: u32, m: u32| {
        let tz: chrono_tz::Tz = "America/New_York".parse().unwrap();
        tz.from_local_datetime(&day.and_hms_opt(h, m, 0).unwrap())
            .single()
            .unwrap()
            .with_timezone(&Utc)
    };
    let queued_to = |from: usize| async move {
        outbox::Entity::find()
            .order_by_asc(outbox::Column::Id)
            .all(&app.db)
            .await
            .unwrap()
            .into_iter()
            .skip(from)
            .map(|r| (r.to_addrs, r.dedupe_key, r.text_body))
            .collect::<Vec<_>>()
    };
    let zurich_eight = zurich(day, 8, 0) + TimeDelta::milliseconds(250);
    assert_eq!(
        overdue_reminders(&ctx, zurich_eight, &settings)
            .await
            .unwrap()
            .queued,
        1
    );
    let first = queued_to(0).await;
    assert_eq!(first.len(), 1);
    assert_eq!(first[0].0, json!(["pm@acme.test"]).to_string());
    assert!(first[0].2.contains("Send the protocol") && first[0].2.contains("1 day overdue"));
    assert!(
        !first[0].2.contains("Review the batch record"),
        "not the colleague's"
    );
    // 07:59 in New York: still nothing for QA.
    assert_eq!(
        overdue_reminders(&ctx, new_york(7, 59), &settings)
            .await
            .unwrap()
            .queued,
        0
    );
    assert_eq!(
        overdue_reminders(
            &ctx,
            new_york(8, 0) + TimeDelta::milliseconds(250),
            &settings
        )
        .await
        .unwrap()
        .queued,
        1
    );
    let second = queued_to(1).await;
    assert_eq!(second.len(), 1);
    assert_eq!(second[0].0, json!(["qa@acme.test"]).to_string());
    assert_eq!(
        second[0].1,
        format!("reminder:{qa_id}:America/New_York:{day}")
    );
    assert!(
        second[0].2.contains("Review the batch record") && second[0].2.contains("1 day overdue")
    );
}
on_both_databases!(each_owner_is_reminded_at_eight_on_their_own_clock);

/// `CMO_CATCH_UP_MINUTES=0` ("never catch up") still sends on the tick right after 08:00:
/// the worker widens a zero window to its tick's period.
async fn catch_up_zero_sends_on_the_tick_after_the_occurrence(app: &TestApp) {
    // REQ: NOTIF-CATCH-UP
    let s = program_setup(app).await;
    live_in(app, s.pm_id, "Europe/Zurich").await;
    let day: chrono::NaiveDate = "2026-12-01".parse().unwrap();
    s.pm.post(
        &format!("/api/v1/programs/{}/action-items", s.program_id),
        json!({"title": "Send the protocol", "owner_user_id": s.pm_id, "due_date": day - TimeDelta::days(2)}),
    )
    .await
    .expect(201);
    let tick = entity::schedule::parse("0 * * * * *").unwrap();
    let settings = ReminderSettings {
        catch_up: entity::schedule::effective_catch_up(TimeDelta::zero(), &tick),
        ..ReminderSettings::default()
    };
    let ctx = app.job_context("w1");
    let eight = zurich(day, 8, 0);
    assert_eq!(
        overdue_reminders(&ctx, eight - TimeDelta::milliseconds(750), &settings)
            .await
            .unwrap()
            .queued,
        0
    );
    let on_tick = eight + TimeDelta::milliseconds(250);
    assert_eq!(
        overdue_reminders(&ctx, on_tick, &settings)
            .await
            .unwrap()
            .queued,
        1
    );
    // The next day, a worker whose first tick comes at 08:05 does not catch 08:00 up.
    let next_day = zurich(day.succ_opt().unwrap(), 8, 5);
    assert_eq!(
        overdue_reminders(&app.job_context("late"), next_day, &settings)
            .await
            .unwrap()
            .ticks,
        0
    );
}
on_both_databases!(catch_up_zero_sends_on_the_tick_after_the_occurrence);

/// A real `cmo-worker` crashes right after claiming Monday's reminder tick (a test crash
/// point: the process aborts with the claim written and nothing sent). Two fresh workers,
/// once the claim is stale (5 minutes), take the tick over: each owner gets exactly one
/// reminder, and every worker ran.
async fn a_tick_claimed_by_a_crashed_worker_is_taken_over_once(app: &TestApp) {
    // REQ: ESC-KILLED-WORKER, NOTIF-REMINDER-ONCE, NOTIF-OCCURRENCE-CLAIM
    use e2e::worker_process::WorkerProcess;
    let s = program_setup(app).await;
    let day: chrono::NaiveDate = "2026-11-30".parse().unwrap();
    let (other_id, _) = user_with_token(app, "qa@acme.test", "quality", None).await;
    for owner in [s.pm_id, other_id] {
        live_in(app, owner, "Europe/Zurich").await;
    }
    for (owner, title) in [
        (s.pm_id, "Send the protocol"),
        (other_id, "Review the batch record"),
    ] {
        s.pm.post(
            &format!("/api/v1/programs/{}/action-items", s.program_id),
            json!({"title": title, "owner_user_id": owner, "due_date": day - TimeDelta::days(3)}),
        )
        .await
        .expect(201);
    }
    let sink = SmtpSink::start().await;
    let reminders_on = [
        ("CMO_REMINDER_SCHEDULE", "0 0 8 * * Mon-Fri"),
        ("CMO_CATCH_UP_MINUTES", "360"),
    ];
    let at = zurich(day, 8, 0) + TimeDelta::seconds(30);
    let crash = [
        reminders_on[0],
        reminders_on[1],
        ("CMO_TEST_ABORT_AT", "tick_claimed"),
    ];
    let mut first = WorkerProcess::start(&app.database_url, &sink.url(), "first", at, &crash);
    let mut claim = None;
    for _ in 0..200 {
        claim = entity::job_run::Entity::find()
            .all(&app.db)
            .await
            .unwrap()
            .into_iter()
            .find(|r| r.job.starts_with("overdue_reminders:"));
        if claim.is_some() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let claim = claim.expect("the first worker claimed the tick");
    assert_eq!(claim.claimed_by, "first");
    // It died there (SIGABRT), with the claim written and nothing else.
    let died = first
        .exit_status()
        .await
        .expect("the first worker crashed at the claim");
    assert!(!died.success(), "{died:?}");
    first.kill();
    assert!(claim.finished_at.is_none());
    let reminders_queued = outbox::Entity::find()
        .all(&app.db)
        .await
        .unwrap()
        .into_iter()
        .filter(|r| r.dedupe_key.starts_with("reminder"))
        .count();
    assert_eq!(reminders_queued, 0, "no reminder queued");
    // Six minutes later (the claim is stale after five; the catch-up window is six hours).
    let later = at + TimeDelta::minutes(6);
    let workers = ["second", "third"]
        .map(|id| WorkerProcess::start(&app.database_url, &sink.url(), id, later, &reminders_on));
    // Two reminders, and the notice that told QA the item was assigned to them.
    let received = sink.wait_for(3).await;
    let mut to: Vec<String> = received
        .iter()
        .filter(|m| {
            m.parsed()
                .subject()
                .is_some_and(|s| s.contains("overdue action item"))
        })
        .map(|m| m.to.join(","))
        .collect();
    to.sort();
    assert_eq!(
        to,
        ["pm@acme.test", "qa@acme.test"],
        "one reminder per owner"
    );
    let runs = entity::job_run::Entity::find().all(&app.db).await.unwrap();
    let run = runs
        .iter()
        .find(|r| r.job.starts_with("overdue_reminders:"))
        .unwrap();
    assert!(
        run.finished_at.is_some() && run.claimed_by != "first",
        "{run:?}"
    );
    assert_eq!(runs.len(), 1, "one claim for the occurrence: {runs:?}");
    for w in workers {
        let id = w.worker_id.clone();
        assert!(w.stop().await.success(), "{id}");
    }
    assert_eq!(
        sink.count(),
        3,
        "nothing twice: two reminders, one assignment notice"
    );
    assert_eq!(
        app.workers_that_ran().await,
        ["first", "second", "third"],
        "each worker ran"
    );
}
on_both_databases!(a_tick_claimed_by_a_crashed_worker_is_taken_over_once);
