//! Cost of one overdue-reminder pass as the action-item table grows while the number of
//! overdue items stays fixed: 1,000,000 items (10,000 overdue), then 2,000,000 (the same
//! 10,000 overdue). The pass scans by (status, due_date), so its time should follow the
//! overdue items, not the table.
//!
//! Run: `cargo run --release -p e2e --bin bench_reminders` (PostgreSQL too when installed).
//! Seeding takes a while; the figures printed are the reminder passes only.

use std::time::Instant;

use chrono::{Datelike, TimeDelta, TimeZone, Utc, Weekday};
use e2e::{Backend, spawn_app};
use entity::action_item::{self, ActionSource, ActionStatus};
use entity::{Role, user};
use sea_orm::{
    ActiveValue::NotSet, ActiveValue::Set, ConnectionTrait, EntityTrait, TransactionTrait,
};
use worker::jobs::reminders::{ReminderSettings, overdue_reminders};

const OWNERS: usize = 200;
const OVERDUE: usize = 10_000;
const BATCH: usize = 2_000;

async fn seed(
    app: &e2e::TestApp,
    program: i64,
    owners: &[i64],
    from: usize,
    to: usize,
    day: chrono::NaiveDate,
) {
    let now = app.now();
    let mut i = from;
    while i < to {
        let end = (i + BATCH).min(to);
        let rows: Vec<action_item::ActiveModel> = (i..end)
            .map(|n| {
                // The first OVERDUE items are overdue; the rest are due later or done.
                let (due, status) = if n < OVERDUE {
                    (
                        day - TimeDelta::days(1 + (n % 30) as i64),
                        ActionStatus::Open,
                    )
                } else if n % 2 == 0 {
                    (
                        day + TimeDelta::days(1 + (n % 300) as i64),
                        ActionStatus::Open,
                    )
                } else {
                    (
                        day - TimeDelta::days(1 + (n % 300) as i64),
                        ActionStatus::Done,
                    )
                };
                action_item::ActiveModel {
                    id: NotSet,
                    program_id: Set(program),
                    title: Set(format!("Action {n}")),
                    description: Set(None),
                    owner_user_id: Set(owners[n % owners.len()]),
                    due_date: Set(due),
                    source: Set(ActionSource::Other),
                    source_id: Set(None),
                    status: Set(status),
                    snoozed_until: Set(None),
                    snooze_reason: Set(None),
                    completed_at: Set(None),
                    completion_evidence: Set(None),
                    completion_evidence_url: Set(None),
                    created_at: Set(now),
                    updated_at: Set(now),
                    version: Set(1),
                    overdue_event_for: Set(None),
                }
            })
            .collect();
        let txn = app.db.begin().await.expect("begin");
        action_item::Entity::insert_many(rows)
            .exec(&txn)
            .await
            .expect("seed");
        txn.commit().await.expect("commit");
        i = end;
    }
}

async fn bench(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        println!("{backend:?}: skipped (not available)");
        return;
    };
    let (_, program) = app.program_with_new_cmo("P").await;
    let now = app.now();
    let users: Vec<user::ActiveModel> = (0..OWNERS)
        .map(|n| user::ActiveModel {
            id: NotSet,
            org_id: Set(app.org_id),
            email: Set(format!("owner{n}@acme.test")),
            display_name: Set(format!("Owner {n}")),
            role: Set(Role::Contributor),
            time_zone: Set("UTC".to_string()),
            phone: Set(None),
            password_hash: Set(None),
            is_service_account: Set(false),
            access_notice: Set(None),
            signature_certified_at: Set(None),
            calendar_generation: Set(0),
            active: Set(true),
            created_at: Set(now),
            updated_at: Set(now),
            version: Set(1),
        })
        .collect();
    user::Entity::insert_many(users)
        .exec(&app.db)
        .await
        .expect("owners");
    let owners: Vec<i64> = user::Entity::find()
        .all(&app.db)
        .await
        .unwrap_or_default()
        .into_iter()
        .filter(|u| u.email.starts_with("owner"))
        .map(|u| u.id)
        .collect();
    let mut day = now.date_naive() + TimeDelta::days(1);
    while day.weekday() != Weekday::Mon {
        day += TimeDelta::days(1);
    }
    let monday_9 = Utc.from_utc_datetime(&day.and_hms_opt(9, 0, 0).unwrap_or_default());
    let ctx = app.job_context("bench");
    let settings = ReminderSettings::default();
    let mut seeded = 0;
    let mut passes = Vec::new();
    for (round, total) in [1_000_000_usize, 2_000_000].into_iter().enumerate() {
        let started = Instant::now();
        seed(&app, program, &owners, seeded, total, day).await;
        seeded = total;
        if backend == Backend::Postgres {
            let _ = app.db.execute_unprepared("ANALYZE action_items").await;
        }
        let seeding = started.elapsed();
        // REQ: BENCH-HONEST
        // A warm-up pass (not counted), then five; each a fresh tick: the previous pass's
        // emails and claims are forgotten first. Every pass must find the seeded work.
        let mut samples = Vec::new();
        let mut last = None;
        for rep in 0..6 {
            let _ = app.db.execute_unprepared("DELETE FROM email_outbox").await;
            let _ = app.db.execute_unprepared("DELETE FROM job_runs").await;
            let at = monday_9 + TimeDelta::minutes((round * 10 + rep) as i64);
            let started = Instant::now();
            let report = overdue_reminders(&ctx, at, &settings).await.expect("pass");
            let pass = started.elapsed();
            assert_eq!(
                (report.items, report.owners, report.queued),
                (OVERDUE, OWNERS, OWNERS),
                "the pass found the seeded overdue items and queued one email per owner"
            );
            if rep > 0 {
                samples.push(pass);
            }
            last = Some(report);
        }
        samples.sort();
        let median = samples[samples.len() / 2];
        let (low, high) = (samples[0], samples[samples.len() - 1]);
        passes.push(median);
        let report = last.expect("five passes");
        println!(
            "{backend:?}: {total} action items ({} overdue, {} owners): reminder pass median {median:.2?} of 5 (min {low:.2?}, max {high:.2?}), queued {} emails (seeding took {seeding:.1?})",
            report.items, report.owners, report.queued
        );
        if backend == Backend::Postgres && std::env::var_os("BENCH_EXPLAIN").is_some() {
            let plan = app
                .db
                .query_all_raw(sea_orm::Statement::from_string(
                    sea_orm::DbBackend::Postgres,
                    format!(
                        "EXPLAIN ANALYZE SELECT * FROM action_items WHERE status IN ('open','in_progress') AND due_date < '{}'",
                        day + TimeDelta::days(1)
                    ),
                ))
                .await
                .unwrap_or_default();
            for row in plan {
                let line: String = row.try_get_by_index(0).unwrap_or_default();
                println!("    {line}");
            }
        }
    }
    app.stop().await;
    if let [one, two] = passes[..] {
        println!(
            "{backend:?}: reminder pass at 2M items / at 1M items = {:.2} (medians; 1.00 = independent of table size)",
            two.as_secs_f64() / one.as_secs_f64()
        );
    }
}

#[actix_web::main]
async fn main() {
    bench(Backend::Sqlite).await;
    bench(Backend::Postgres).await;
}
