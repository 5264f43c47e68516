//! Overdue-action reminders, driven with a chosen `now`.

use chrono::{Datelike, TimeDelta, TimeZone, Utc, Weekday};
use e2e::smtp::SmtpSink;
use e2e::{TestApp, on_both_databases};
use entity::outbox;
use sea_orm::EntityTrait;
use serde_json::json;
use worker::jobs::JobContext;
use worker::jobs::reminders::{ReminderSettings, overdue_reminders};
use worker::mailer::Mailer;

use crate::programs::program_setup;
use crate::user_with_token;

fn ctx(app: &TestApp, id: &str) -> JobContext {
    JobContext {
        db: app.db.clone(),
        worker_id: id.to_string(),
        hostname: "test".to_string(),
        started_at: app.now(),
    }
}

async fn owners_get_one_reminder_a_day_with_leadership_copied_on_old_items(app: &TestApp) {
    let s = program_setup(app).await;
    // Next Monday, 09:00 UTC: a weekday past the reminder hour for a UTC user.
    let mut day = app.now().date_naive() + TimeDelta::days(1);
    while day.weekday() != Weekday::Mon {
        day += TimeDelta::days(1);
    }
    let monday_9 = Utc.from_utc_datetime(&day.and_hms_opt(9, 0, 0).unwrap());
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
    let done = create("Already done", day - TimeDelta::days(5)).await;
    s.pm.post(
        &format!("/api/v1/action-items/{}/transitions", done["id"]),
        json!({"event": "complete"}),
    )
    .await
    .expect(200);

    // Before 08:00 local time nothing goes out; at 09:00 one email.
    let early = monday_9 - TimeDelta::hours(3);
    let settings = ReminderSettings::default();
    assert_eq!(
        overdue_reminders(&ctx(app, "w1"), early, &settings)
            .await
            .unwrap()
            .queued,
        0
    );
    let report = overdue_reminders(&ctx(app, "w1"), monday_9, &settings)
        .await
        .unwrap();
    assert_eq!((report.owners, report.items, report.queued), (1, 2, 1));
    // A second worker, or a second pass the same day: no second email.
    assert_eq!(
        overdue_reminders(&ctx(app, "w2"), monday_9 + TimeDelta::hours(1), &settings)
            .await
            .unwrap()
            .queued,
        0
    );

    let rows = outbox::Entity::find().all(&app.db).await.unwrap();
    assert_eq!(rows.len(), 1);
    let row = &rows[0];
    assert_eq!(
        row.dedupe_key,
        format!("reminder:{}:Europe/Zurich:{day}", s.pm_id)
    );
    assert_eq!(row.to_addrs, json!(["pm@acme.test"]).to_string());
    assert_eq!(
        row.cc_addrs,
        json!(["lead@acme.test"]).to_string(),
        "10 days overdue copies leadership"
    );
    assert_eq!(row.subject, format!("2 overdue action items — {day}"));
    let oldest = row.text_body.find("cleaning validation").unwrap();
    let newer = row.text_body.find("Review the batch record").unwrap();
    assert!(oldest < newer, "oldest first");
    assert!(row.text_body.contains("10 days overdue") && row.text_body.contains("2 days overdue"));
    assert!(!row.text_body.contains("Already done") && !row.text_body.contains("Not due yet"));
    assert!(row.html_body.contains("<b>10 days overdue</b>"));

    // Delivered once through SMTP, as multipart with both parts.
    let sink = SmtpSink::start().await;
    let mailer = Mailer::new(Some(&sink.url()), std::env::temp_dir()).unwrap();
    let from = "cmo <noreply@cmo.test>".parse().unwrap();
    worker::jobs::dispatch::dispatch(&ctx(app, "w1"), &mailer, &from, monday_9, 10)
        .await
        .unwrap();
    let received = sink.wait_for(1).await;
    assert_eq!(received.len(), 1);
    assert!(received[0].data.contains("Content-Type: text/html"));
    let mut rcpts = received[0].to.clone();
    rcpts.sort();
    assert_eq!(rcpts, ["lead@acme.test", "pm@acme.test"]);

    // The next day's pass sends again; snoozed items drop out.
    let tuesday_9 = monday_9 + TimeDelta::days(1);
    let report = overdue_reminders(&ctx(app, "w1"), tuesday_9, &settings)
        .await
        .unwrap();
    assert_eq!(report.queued, 1);
}
on_both_databases!(owners_get_one_reminder_a_day_with_leadership_copied_on_old_items);
