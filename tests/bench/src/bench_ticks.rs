//! The worker's scheduled passes as the installation grows while the work due stays the
//! same: 100 programs, then 10,000 programs of 1,000 sponsors, each with an acknowledged
//! escalation waiting for its ack timeout; in both, 10 digests and 10 ack timeouts are
//! due. Prints the median of five passes of each, their ratio (10,000 / 100; 1.00 =
//! independent of size), and what the passes before this release read on every tick
//! (every program with its schedule computed; every acknowledged escalation).
//!
//! Run: `bench/run`, or `cargo run --release -p bench --bin bench_ticks` (PostgreSQL too
//! when installed). Loopback only; every loop is bounded.

use std::time::{Duration, Instant};

use chrono::{DateTime, TimeDelta, Utc};
use e2e::{Backend, spawn_app};
use entity::digest::schedule as digest_schedule;
use entity::escalation::{self, EscalationStatus};
use entity::{organization, program, schedule};
use sea_orm::sea_query::Expr;
use sea_orm::{
    ActiveModelTrait, ActiveValue::NotSet, ActiveValue::Set, ColumnTrait, ConnectionTrait,
    EntityTrait, QueryFilter,
};
use serde_json::json;
use worker::jobs::digests::{DigestSettings, weekly_digests};
use worker::jobs::escalations::{EscalationSettings, escalation_pass};

const DUE: usize = 10;
const PER_SPONSOR: usize = 10;
const BATCH: usize = 500;
const REPS: usize = 5;

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

struct Seeded {
    programs: Vec<i64>,
    escalations: Vec<i64>,
}

/// Grows the installation to `total` programs (copies of `model` under sponsors of ten
/// programs each), each with a digest occurrence next week and an acknowledged
/// escalation (a copy of `esc`) whose ack timeout is an hour away.
async fn grow(
    app: &e2e::TestApp,
    seeded: &mut Seeded,
    total: usize,
    model: &program::Model,
    esc: &escalation::Model,
    next_week: DateTime<Utc>,
    now: DateTime<Utc>,
) {
    let sponsor = organization::Entity::find_by_id(app.org_id)
        .one(&app.db)
        .await
        .expect("org")
        .expect("our org");
    while seeded.programs.len() < total {
        let n = seeded.programs.len();
        let mut org: organization::ActiveModel = sponsor.clone().into();
        org.id = NotSet;
        org.name = Set(format!("Sponsor {n}"));
        let org = org.insert(&app.db).await.expect("sponsor");
        let rows: Vec<program::ActiveModel> = (0..PER_SPONSOR.min(total - n))
            .map(|i| {
                let mut p: program::ActiveModel = model.clone().into();
                p.id = NotSet;
                p.sponsor_org_id = Set(org.id);
                p.name = Set(format!("Program {}", n + i));
                p
            })
            .collect();
        program::Entity::insert_many(rows)
            .exec(&app.db)
            .await
            .expect("programs");
        let ids: Vec<i64> = program::Entity::find()
            .filter(program::Column::SponsorOrgId.eq(org.id))
            .all(&app.db)
            .await
            .expect("ids")
            .into_iter()
            .map(|p| p.id)
            .collect();
        digest_schedule::Entity::insert_many(ids.iter().map(|id| digest_schedule::ActiveModel {
            program_id: Set(*id),
            next_at: Set(Some(next_week)),
            schedule: Set(DigestSettings::default().schedule),
        }))
        .exec(&app.db)
        .await
        .expect("schedules");
        let escalations: Vec<escalation::ActiveModel> = ids
            .iter()
            .map(|id| {
                let mut e: escalation::ActiveModel = esc.clone().into();
                e.id = NotSet;
                e.program_id = Set(*id);
                e.status = Set(EscalationStatus::Acknowledged);
                e.acknowledged_at = Set(Some(now));
                e.next_page_at = Set(Some(now + TimeDelta::hours(1)));
                e
            })
            .collect();
        for chunk in escalations.chunks(BATCH) {
            escalation::Entity::insert_many(chunk.to_vec())
                .exec(&app.db)
                .await
                .expect("escalations");
        }
        let found: Vec<i64> = escalation::Entity::find()
            .filter(escalation::Column::ProgramId.is_in(ids.clone()))
            .all(&app.db)
            .await
            .expect("escalation ids")
            .into_iter()
            .map(|e| e.id)
            .collect();
        seeded.programs.extend(ids);
        seeded.escalations.extend(found);
    }
}

async fn bench(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        println!("{backend:?}: skipped (not available)");
        return;
    };
    let (_, p) = app.program_with_new_cmo("P").await;
    app.admin()
        .post(
            &format!("/api/v1/programs/{p}/deviations"),
            json!({"title": "Seal failure", "description": "d", "detected_at": app.now(),
                   "criticality": "critical", "category": "equipment"}),
        )
        .await
        .expect(201);
    let model = program::Entity::find_by_id(p)
        .one(&app.db)
        .await
        .expect("program")
        .expect("the program");
    let esc = escalation::Entity::find()
        .one(&app.db)
        .await
        .expect("escalation")
        .expect("the escalation");
    let cron = schedule::parse(&DigestSettings::default().schedule).expect("cron");
    let monday = schedule::next_occurrence(&cron, chrono_tz::UTC, app.now()).expect("monday");
    let at = monday + TimeDelta::minutes(5);
    let next_week = monday + TimeDelta::weeks(1);
    // Out of the way: the seeded copies are what the passes see.
    escalation::Entity::update_many()
        .col_expr(escalation::Column::Status, Expr::value("resolved"))
        .col_expr(
            escalation::Column::NextPageAt,
            Expr::value(None::<DateTime<Utc>>),
        )
        .exec(&app.db)
        .await
        .expect("resolve");
    digest_schedule::Entity::update_many()
        .col_expr(
            digest_schedule::Column::NextAt,
            Expr::value(Some(next_week)),
        )
        .exec(&app.db)
        .await
        .expect("next week");
    // The escalations that come due are the real program's (a re-opening is audited in
    // its sponsor's chain); the seeded sponsors' never are.
    let due_escalations: Vec<i64> = {
        let copies: Vec<escalation::ActiveModel> = (0..DUE)
            .map(|_| {
                let mut e: escalation::ActiveModel = esc.clone().into();
                e.id = NotSet;
                e.status = Set(EscalationStatus::Acknowledged);
                e.next_page_at = Set(Some(next_week));
                e
            })
            .collect();
        escalation::Entity::insert_many(copies)
            .exec(&app.db)
            .await
            .expect("due escalations");
        escalation::Entity::find()
            .filter(escalation::Column::Status.eq(EscalationStatus::Acknowledged))
            .all(&app.db)
            .await
            .expect("due escalation ids")
            .into_iter()
            .map(|e| e.id)
            .collect()
    };
    assert_eq!(due_escalations.len(), DUE);
    let ctx = app.job_context("bench");
    let mut seeded = Seeded {
        programs: Vec::new(),
        escalations: Vec::new(),
    };
    let mut rows = Vec::new();
    for total in [100, 10_000] {
        let started = Instant::now();
        grow(
            &app,
            &mut seeded,
            total,
            &model,
            &esc,
            next_week,
            at - TimeDelta::minutes(1),
        )
        .await;
        let seeding = started.elapsed();
        if backend == Backend::Postgres {
            let _ = app.db.execute_unprepared("ANALYZE").await;
        }
        let due_programs = &seeded.programs[..DUE];
        let (mut digests, mut escalations) = (Vec::new(), Vec::new());
        for rep in 0..=REPS {
            // The same work due each time: ten digests, ten ack timeouts.
            let _ = app.db.execute_unprepared("DELETE FROM job_runs").await;
            let _ = app.db.execute_unprepared("DELETE FROM email_outbox").await;
            digest_schedule::Entity::update_many()
                .col_expr(digest_schedule::Column::NextAt, Expr::value(Some(monday)))
                .filter(digest_schedule::Column::ProgramId.is_in(due_programs.to_vec()))
                .exec(&app.db)
                .await
                .expect("digests due");
            escalation::Entity::update_many()
                .col_expr(escalation::Column::Status, Expr::value("acknowledged"))
                .col_expr(
                    escalation::Column::AcknowledgedAt,
                    Expr::value(Some(at - TimeDelta::hours(2))),
                )
                .col_expr(
                    escalation::Column::NextPageAt,
                    Expr::value(Some(at - TimeDelta::minutes(1))),
                )
                .filter(escalation::Column::Id.is_in(due_escalations.clone()))
                .exec(&app.db)
                .await
                .expect("ack timeouts due");
            let now = at + TimeDelta::seconds(rep as i64);
            let t = Instant::now();
            let d = weekly_digests(&ctx, now, &DigestSettings::default())
                .await
                .expect("digest pass");
            let digest_pass = t.elapsed();
            let t = Instant::now();
            let e = escalation_pass(&ctx, now, &EscalationSettings::default())
                .await
                .expect("escalation pass");
            let escalation_pass_took = t.elapsed();
            assert_eq!(d.programs, DUE, "the due digests ran");
            assert_eq!(e.reopened, DUE, "the due ack timeouts re-opened");
            if rep > 0 {
                digests.push(digest_pass);
                escalations.push(escalation_pass_took);
            }
        }
        // An idle tick (nothing due), what the 250 ms escalation loop mostly runs.
        let mut idle = Vec::new();
        for rep in 0..REPS {
            let now = at + TimeDelta::seconds(10 + rep as i64);
            let t = Instant::now();
            let e = escalation_pass(&ctx, now, &EscalationSettings::default())
                .await
                .expect("idle escalation pass");
            let d = weekly_digests(&ctx, now, &DigestSettings::default())
                .await
                .expect("idle digest pass");
            idle.push(t.elapsed());
            assert_eq!((e.reopened, d.programs), (0, 0), "nothing due");
        }
        let idle = median(idle);
        // What a pass read before this release, on every tick.
        let t = Instant::now();
        let all = program::Entity::find()
            .all(&app.db)
            .await
            .expect("programs");
        let due_then = all
            .iter()
            .filter(|p| {
                schedule::due_occurrence(
                    &cron,
                    schedule::zone(&p.time_zone),
                    at,
                    TimeDelta::hours(12),
                )
                .is_some()
            })
            .count();
        let old_digest_read = t.elapsed();
        let t = Instant::now();
        let acknowledged = escalation::Entity::find()
            .filter(escalation::Column::Status.eq(EscalationStatus::Acknowledged))
            .all(&app.db)
            .await
            .expect("acknowledged");
        let old_escalation_read = t.elapsed();
        println!(
            "{backend:?}: {total} programs: digest pass {:.2?}, escalation pass {:.2?} (median of {REPS}; {DUE} due each); idle tick (both passes, nothing due) {idle:.2?}; before: every program read and scheduled {old_digest_read:.2?} ({due_then} in the window), every acknowledged escalation read {old_escalation_read:.2?} ({}); seeding {seeding:.1?}",
            median(digests.clone()),
            median(escalations.clone()),
            acknowledged.len()
        );
        rows.push((median(digests), median(escalations)));
    }
    app.stop().await;
    let ratio = |a: Duration, b: Duration| a.as_secs_f64() / b.as_secs_f64();
    println!(
        "{backend:?}: tick at 10,000 programs / at 100 (same work due): digest pass {:.2}, escalation pass {:.2}",
        ratio(rows[1].0, rows[0].0),
        ratio(rows[1].1, rows[0].1)
    );
}

#[actix_web::main]
async fn main() {
    bench(Backend::Sqlite).await;
    bench(Backend::Postgres).await;
}
