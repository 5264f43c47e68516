//! Writes of different organizations in parallel, on PostgreSQL:
//! 1. 8 keep-alive clients moving action items through start/complete/reopen (audited,
//!    each emitting a domain event), first all in one sponsor organization, then one
//!    client in each of 8 sponsors. Writes of one organization queue on its audit chain;
//!    writes of different organizations should not queue on each other. On 2 cores both
//!    runs are bound by the processor, so their ratio moves little either way.
//! 2. Event writers whose transactions go on 5 ms after their event (a signature check,
//!    follow-ups, a slow disk): one writer alone, then 8 writers of 8 organizations at
//!    once. Writers that queue on one row (every event writer held the domain events'
//!    head row until its commit before issue 22, item 5) get no more events/s from 8 than
//!    from one; writers that do not, about 8 times as many.
//!
//! Run: `bench/run`, or `cargo run --release -p bench --bin bench_orgs` (needs
//! PostgreSQL installed). Loopback only; every loop is bounded.

use std::time::{Duration, Instant};

use e2e::{Backend, Client, spawn_app};
use futures_util::future::join_all;
use serde_json::json;

const ORGS: usize = 8;
const PER_CLIENT: usize = 150;
const PASSWORD: &str = "a long bench passphrase";

fn cycle_step(i: usize) -> serde_json::Value {
    match i % 3 {
        0 => json!({"event": "start"}),
        1 => json!({"event": "complete"}),
        _ => json!({"event": "reopen", "reason": "bench"}),
    }
}

/// A sponsor with its own CMO and program; returns its admin's client and admin id.
async fn sponsor(app: &e2e::TestApp, n: usize) -> (Client, i64, i64) {
    let email = format!("admin@sponsor{n}.test");
    api::bootstrap::create_sponsor(
        &app.db,
        &app.chain_keys,
        api::bootstrap::SponsorRequest {
            org_name: format!("Sponsor {n}"),
            admin_email: email.clone(),
            admin_name: format!("Admin {n}"),
            time_zone: "UTC".into(),
            now: app.now(),
            public_base_url: app.base_url.clone(),
        },
    )
    .await
    .expect("sponsor");
    let admin_id = app.accept_invitation(&email, PASSWORD).await;
    let client = app.client(&app.own_token(&email, PASSWORD).await);
    let cmo = client
        .post("/api/v1/organizations", json!({"name": format!("CMO of sponsor {n}"), "kind": "cmo", "admin": {"email": format!("a@cmo{n}.test"), "display_name": "A"}}))
        .await
        .expect(201)
        .body["organization"]["id"]
        .as_i64()
        .unwrap_or_default();
    for event in ["start_evaluation", "qualify"] {
        client
            .post(
                &format!("/api/v1/cmos/{cmo}/qualification"),
                json!({"event": event}),
            )
            .await
            .expect(200);
    }
    let program = client
        .post(
            "/api/v1/programs",
            json!({"name": "P", "product_name": "P", "cmo_org_id": cmo, "modality": "biologic", "stage": "clinical", "time_zone": "UTC"}),
        )
        .await
        .expect(201)
        .body["id"]
        .as_i64()
        .unwrap_or_default();
    (client, admin_id, program)
}

async fn item(app: &e2e::TestApp, client: &Client, owner: i64, program: i64) -> i64 {
    let due = (app.now() + chrono::TimeDelta::days(30)).date_naive();
    client
        .post(
            &format!("/api/v1/programs/{program}/action-items"),
            json!({"title": "Action", "owner_user_id": owner, "due_date": due}),
        )
        .await
        .expect(201)
        .body["id"]
        .as_i64()
        .unwrap_or_default()
}

/// Transitions/s of 8 clients, each cycling its own item.
async fn drive(work: &[(Client, i64)]) -> f64 {
    let started = Instant::now();
    join_all(work.iter().map(|(client, item)| async move {
        let path = format!("/api/v1/action-items/{item}/transitions");
        for i in 0..PER_CLIENT {
            client.post(&path, cycle_step(i)).await.expect(200);
        }
    }))
    .await;
    (work.len() * PER_CLIENT) as f64 / started.elapsed().as_secs_f64()
}

/// Events/s of one writer per program at once, each transaction held `HELD` after its
/// event, until every event has its cursor.
async fn held_writers(app: &e2e::TestApp, programs: &[i64]) -> f64 {
    use entity::domain_event::{DeviationReported, Event, emit};
    use sea_orm::TransactionTrait;
    const HELD: Duration = Duration::from_millis(5);
    const PER_WRITER: usize = 40;
    let started = Instant::now();
    join_all(programs.iter().map(|&program| async move {
        for i in 0..PER_WRITER {
            let txn = app.db.begin().await.expect("begin");
            let event = Event::DeviationReported(DeviationReported {
                deviation_id: i as i64,
                title: format!("Held {i}"),
                criticality: entity::deviation::Criticality::Minor,
                category: entity::deviation::Category::Documentation,
                detected_at: app.now(),
            });
            emit(&txn, program, event, app.now()).await.expect("emit");
            tokio::time::sleep(HELD).await;
            txn.commit().await.expect("commit");
        }
    }))
    .await;
    // Timed to the last cursor: what the writers left for the sequencer counts too.
    entity::domain_event::sequence_pending(&app.db, entity::domain_event::Wait::ForTurn)
        .await
        .expect("sequence");
    (programs.len() * PER_WRITER) as f64 / started.elapsed().as_secs_f64()
}

/// The events of `programs` that have their cursors.
async fn sequenced_events(app: &e2e::TestApp, programs: &[i64]) -> u64 {
    use sea_orm::{ColumnTrait, EntityTrait, PaginatorTrait, QueryFilter};
    entity::domain_event::Entity::find()
        .filter(entity::domain_event::Column::ProgramId.is_in(programs.iter().copied()))
        .filter(entity::domain_event::Column::EventType.eq("deviation.reported"))
        .filter(entity::domain_event::Column::Cursor.gt(0))
        .count(&app.db)
        .await
        .expect("count")
}

#[actix_web::main]
async fn main() {
    let Some(app) = spawn_app(Backend::Postgres).await else {
        println!("PostgreSQL: skipped (not installed)");
        return;
    };
    let mut sponsors = Vec::new();
    for n in 0..ORGS {
        sponsors.push(sponsor(&app, n).await);
    }
    // One organization: 8 items of sponsor 0.
    let (first, first_admin, first_program) = &sponsors[0];
    let mut one = Vec::new();
    for _ in 0..ORGS {
        one.push((
            first.clone(),
            item(&app, first, *first_admin, *first_program).await,
        ));
    }
    // Eight organizations: one item each.
    let mut many = Vec::new();
    for (client, admin, program) in &sponsors {
        many.push((client.clone(), item(&app, client, *admin, *program).await));
    }
    let one_org = drive(&one).await;
    let eight_orgs = drive(&many).await;
    let programs: Vec<i64> = sponsors.iter().map(|(_, _, p)| *p).collect();
    let one_writer = held_writers(&app, &programs[..1]).await;
    let eight_writers = held_writers(&app, &programs).await;
    let sequenced = sequenced_events(&app, &programs).await;
    assert_eq!(
        sequenced,
        40 + 40 * ORGS as u64,
        "every event has its cursor"
    );
    app.stop().await;
    println!(
        "PostgreSQL: audited transitions, 8 clients: one organization {one_org:.0}/s, 8 organizations {eight_orgs:.0}/s; 8 organizations / one = {:.2}",
        eight_orgs / one_org
    );
    println!(
        "PostgreSQL: event writers holding their transaction 5 ms: one writer {one_writer:.0} events/s, 8 organizations' writers at once {eight_writers:.0}/s; 8 / one = {:.2} (one queue: 1.00)",
        eight_writers / one_writer
    );
}
