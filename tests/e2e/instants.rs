//! The time-dependent behaviour run through the tricky instants (`e2e::tricky_instants`):
//! Monday mornings, both daylight-saving switches in Europe and the US, year end and late
//! evening UTC, with programs in zones whose date differs most from UTC's. Expectations
//! are written from the local clock of each zone (what a person there would say), not
//! from the functions under test.

use chrono::{Datelike, NaiveTime, TimeDelta, Timelike, Weekday};
use e2e::{FAR_ZONES, TestApp, on_both_databases, tricky_instants};
use serde_json::json;

use crate::programs::program_setup;
use crate::{live_in, user_with_token};

/// Zurich is the setup program's zone; one more program in each of these.
fn zones() -> Vec<&'static str> {
    let mut z = vec!["Europe/Zurich", "UTC", "America/New_York"];
    z.extend(FAR_ZONES);
    z
}

/// Another program of the setup's sponsor and CMO, in `zone`; its id.
async fn program_in(s: &crate::programs::Setup, zone: &str) -> i64 {
    let setup =
        s.pm.get(&format!("/api/v1/programs/{}", s.program_id))
            .await
            .expect(200)
            .body;
    s.pm.post(
        "/api/v1/programs",
        json!({"name": format!("Program in {zone}"), "product_name": "ACM-101",
               "cmo_org_id": setup["cmo_org_id"], "modality": "biologic", "stage": "clinical",
               "time_zone": zone}),
    )
    .await
    .expect(201)
    .body["id"]
        .as_i64()
        .expect("program id")
}

fn weekday(w: Weekday) -> bool {
    !matches!(w, Weekday::Sat | Weekday::Sun)
}

fn between(t: NaiveTime, from: (u32, u32), to: (u32, u32)) -> bool {
    let minutes = |h: u32, m: u32| h * 60 + m;
    let at = t.hour() * 60 + t.minute();
    let exact = t.second() == 0 && t.nanosecond() == 0;
    at >= minutes(from.0, from.1)
        && (at < minutes(to.0, to.1) || (exact && at == minutes(to.0, to.1)))
}

async fn reminders_follow_each_owners_clock_and_digests_each_programs(app: &TestApp) {
    // REQ: TIME-ZONES, ACT-OVERDUE-LOCAL, NOTIF-REMINDER-SCHEDULE, NOTIF-DIGEST, NOTIF-AGREEMENT-EXPIRY
    for (name, at) in tricky_instants() {
        let app = e2e::spawn_app(app.backend).await.expect("app");
        app.clock.set(at);
        at_instant(&app, name).await;
        app.stop().await;
    }
}
on_both_databases!(reminders_follow_each_owners_clock_and_digests_each_programs);

async fn at_instant(app: &TestApp, name: &str) {
    let at = app.now();
    let s = program_setup(app).await;
    live_in(app, s.pm_id, "Europe/Zurich").await;
    // (program, its zone, the owner of its items, who lives in that zone too)
    let mut programs = vec![(s.program_id, "Europe/Zurich", s.pm_id)];
    for (n, zone) in zones().into_iter().enumerate().skip(1) {
        let (owner, _) =
            user_with_token(app, &format!("owner{n}@acme.test"), "quality", None).await;
        live_in(app, owner, zone).await;
        programs.push((program_in(&s, zone).await, zone, owner));
    }
    // In every program: one item due yesterday and one due today, local dates.
    let mut late = Vec::new();
    for (program_id, zone, owner) in &programs {
        let today = app.today_in(zone);
        for (title, due) in [("late", today - TimeDelta::days(1)), ("today", today)] {
            let item = s
                .pm
                .post(
                    &format!("/api/v1/programs/{program_id}/action-items"),
                    json!({"title": format!("{title} in {zone}"), "owner_user_id": owner, "due_date": due}),
                )
                .await
                .expect(201)
                .body;
            let detail =
                s.pm.get(&format!("/api/v1/action-items/{}", item["id"]))
                    .await
                    .expect(200)
                    .body;
            assert_eq!(
                (detail["overdue"].as_bool(), detail["days_overdue"].as_i64()),
                if title == "late" {
                    (Some(true), Some(1))
                } else {
                    (Some(false), Some(0))
                },
                "{name}: {title} in {zone}"
            );
            if title == "late" {
                late.push(item["id"].as_i64().unwrap());
            }
        }
    }
    // The list says what each item's page says, in every zone at once.
    let listed =
        s.pm.get("/api/v1/action-items?overdue=true&limit=200")
            .await
            .expect(200)
            .body;
    let mut ids: Vec<i64> = listed["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| {
            assert_eq!(i["days_overdue"], 1, "{name}: {i}");
            i["id"].as_i64().unwrap()
        })
        .collect();
    ids.sort();
    late.sort();
    assert_eq!(
        ids, late,
        "{name}: ?overdue=true lists yesterday's items only"
    );
    let not_overdue =
        s.pm.get("/api/v1/action-items?overdue=false&limit=200")
            .await
            .expect(200)
            .body;
    assert_eq!(
        not_overdue["total"],
        programs.len(),
        "{name}: today's items"
    );

    // The worker at this instant, on the same clock.
    let ctx = app.job_context("w1");
    let reminders = worker::jobs::reminders::overdue_reminders(&ctx, at, &Default::default())
        .await
        .unwrap();
    let digests = worker::jobs::digests::weekly_digests(&ctx, at, &Default::default())
        .await
        .unwrap();
    let agreements =
        worker::jobs::agreement_expiry::expiry_reminders(&ctx, at, &Default::default())
            .await
            .unwrap();
    let overdue = worker::jobs::overdue_events::overdue_events(&ctx, at)
        .await
        .unwrap();
    // Reminders: weekdays from 08:00 on each owner's clock (every zone here has one),
    // caught up for 6 hours. Digests: Mondays from 07:00 on each program's clock, caught
    // up for 12 hours. Agreement check: daily from 06:00 UTC, 18 h.
    let local = |zone: &str| {
        let tz: chrono_tz::Tz = zone.parse().unwrap();
        at.with_timezone(&tz)
    };
    let reminder_zones: Vec<&str> = programs
        .iter()
        .map(|(_, z, _)| *z)
        .filter(|z| weekday(local(z).weekday()) && between(local(z).time(), (8, 0), (14, 0)))
        .collect();
    let digest_zones: Vec<&str> = programs
        .iter()
        .map(|(_, z, _)| *z)
        .filter(|z| local(z).weekday() == Weekday::Mon && between(local(z).time(), (7, 0), (19, 0)))
        .collect();
    assert_eq!(
        reminders.ticks,
        reminder_zones.len(),
        "{name}: reminders in {reminder_zones:?}"
    );
    assert_eq!(
        reminders.items,
        reminder_zones.len(),
        "{name}: one late item per zone"
    );
    assert_eq!(
        digests.programs,
        digest_zones.len(),
        "{name}: digests in {digest_zones:?}"
    );
    assert_eq!(agreements.ran, at.hour() >= 6, "{name}: agreement check");
    assert_eq!(
        overdue.emitted,
        late.len(),
        "{name}: action_item.overdue events"
    );
}

/// Digests across year end: Monday 28 December 2026 is ISO week 53 of 2026, Monday
/// 4 January 2027 week 1 of 2027; a program in Auckland (UTC+13) is already on Monday
/// while it is still Sunday in UTC. One digest per member each Monday, none between.
async fn digests_cross_the_year_end_once_a_week(app: &TestApp) {
    // REQ: NOTIF-DIGEST, TIME-ZONES
    let s = program_setup(app).await;
    let auckland = program_in(&s, "Pacific/Auckland").await;
    for program in [s.program_id, auckland] {
        s.pm.post(
            &format!("/api/v1/programs/{program}/team"),
            json!({"user_id": s.pm_id, "governance_tier": "core_team", "program_role": "Program lead"}),
        )
        .await
        .expect(201);
    }
    let ctx = app.job_context("w1");
    let settings = worker::jobs::digests::DigestSettings::default();
    let pass = |at: &str| {
        let ctx = ctx.clone();
        let settings = settings.clone();
        let at = e2e::utc(at);
        async move {
            worker::jobs::digests::weekly_digests(&ctx, at, &settings)
                .await
                .unwrap()
                .programs
        }
    };
    // Sunday 27 Dec 18:05 UTC = Monday 07:05 in Auckland (NZDT, UTC+13): its digest only.
    assert_eq!(pass("2026-12-27T18:05:00Z").await, 1);
    // Monday 28 Dec 06:05 UTC = 07:05 in Zurich: Zurich's; Auckland's already went.
    assert_eq!(pass("2026-12-28T06:05:00Z").await, 1);
    assert_eq!(pass("2026-12-28T12:00:00Z").await, 0);
    // Thursday 31 Dec and Friday 1 Jan (still ISO week 53): nothing.
    assert_eq!(pass("2026-12-31T23:30:00Z").await, 0);
    assert_eq!(pass("2027-01-01T06:05:00Z").await, 0);
    // The next Mondays: week 1 of 2027 in each zone.
    assert_eq!(pass("2027-01-03T18:05:00Z").await, 1);
    assert_eq!(pass("2027-01-04T06:05:00Z").await, 1);
    let keys: Vec<String> = <entity::outbox::Entity as sea_orm::EntityTrait>::find()
        .all(&app.db)
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.dedupe_key)
        .filter(|k| k.starts_with("digest:"))
        .collect();
    assert_eq!(keys.len(), 4, "one digest per program and week: {keys:?}");
    assert_eq!(
        keys.iter().filter(|k| k.contains("2026-W53")).count(),
        2,
        "{keys:?}"
    );
    assert_eq!(
        keys.iter().filter(|k| k.contains("2027-W01")).count(),
        2,
        "{keys:?}"
    );
}
on_both_databases!(digests_cross_the_year_end_once_a_week);
