//! The deviation list as the table grows: one sponsor's organization-wide list (no
//! program filter, the slowest) and its program list, at 1,000 deviations, then beside
//! 100,000 of another sponsor's, then at 100,000 of its own. Each figure is the median
//! of sequential keep-alive requests through HTTP: the first page, the first page with
//! `count=true`, and row 800 asked by cursor and by offset; at 100,000 also row 50,000
//! by cursor and by offset. The lists should cost the same at every size, except the
//! count and the deep offset, which read what they skip or count.
//!
//! Run: `bench/run`, or `cargo run --release -p bench --bin bench_lists` (PostgreSQL too
//! when installed). Loopback only; every loop is bounded.

use std::time::{Duration, Instant};

use chrono::TimeDelta;
use e2e::{Backend, Client, spawn_app};
use entity::deviation::{self, Category, Criticality, DeviationStatus};
use entity::{organization, program};
use sea_orm::{
    ActiveModelTrait, ActiveValue::NotSet, ActiveValue::Set, ConnectionTrait, EntityTrait,
    TransactionTrait,
};

// 24 columns a row: under SQLite's 32,766 bound parameters per statement.
const BATCH: usize = 1_000;
const REQUESTS: usize = 100;
const PAGE: usize = 50;

async fn seed(app: &e2e::TestApp, program: i64, reporter: i64, count: usize, salt: usize) {
    let now = app.now();
    let mut i = 0;
    while i < count {
        let end = (i + BATCH).min(count);
        let rows: Vec<deviation::ActiveModel> = (i..end)
            .map(|n| {
                // Spread over two years, some at the same instant (ties go by id).
                let at = now - TimeDelta::minutes(((n * 7 + salt) % 1_051_200) as i64);
                deviation::ActiveModel {
                    id: NotSet,
                    program_id: Set(program),
                    milestone_id: Set(None),
                    batch_lot: Set(None),
                    title: Set(format!("Deviation {n}")),
                    description: Set("Seeded for the list bench".into()),
                    detected_at: Set(at),
                    reported_by_user_id: Set(reporter),
                    process_step: Set(None),
                    criticality: Set(if n % 50 == 0 {
                        Criticality::Major
                    } else {
                        Criticality::Minor
                    }),
                    category: Set(Category::Documentation),
                    status: Set(if n % 3 == 0 {
                        DeviationStatus::Closed
                    } else {
                        DeviationStatus::Reported
                    }),
                    triaged_at: Set(None),
                    short_term_fix: Set(None),
                    root_cause_method: Set(None),
                    root_cause_category: Set(None),
                    root_cause_narrative: Set(None),
                    closure_signature_id: Set(None),
                    closed_at: Set(None),
                    cancel_reason: Set(None),
                    record_number: Set(None),
                    created_at: Set(now),
                    updated_at: Set(now),
                    version: Set(1),
                }
            })
            .collect();
        let txn = app.db.begin().await.expect("begin");
        deviation::Entity::insert_many(rows)
            .exec(&txn)
            .await
            .expect("seed");
        txn.commit().await.expect("commit");
        i = end;
    }
    if app.backend == Backend::Postgres {
        // What autovacuum does after a bulk load.
        let _ = app.db.execute_unprepared("ANALYZE deviations").await;
    }
}

/// Median of `REQUESTS` sequential requests to `url`, each answering a full page.
async fn median(client: &Client, url: &str) -> Duration {
    let mut lat = Vec::with_capacity(REQUESTS);
    for _ in 0..REQUESTS {
        let t = Instant::now();
        let page = client.get(url).await.expect(200).body;
        lat.push(t.elapsed());
        assert_eq!(page["items"].as_array().map(Vec::len), Some(PAGE), "{url}");
    }
    lat.sort();
    lat[lat.len() / 2]
}

/// The cursor of the page that starts at row `depth`, found by walking (bounded).
async fn cursor_at(client: &Client, list: &str, depth: usize) -> String {
    let mut cursor = None::<String>;
    for _ in 0..depth / 200 {
        let url = match &cursor {
            None => format!("{list}limit=200"),
            Some(c) => format!("{list}limit=200&cursor={c}"),
        };
        let page = client.get(&url).await.expect(200).body;
        cursor = page["next_cursor"].as_str().map(String::from);
    }
    cursor.expect("the list is deeper than that")
}

struct Row {
    state: String,
    first: Duration,
    program: Duration,
    counted: Duration,
    cursor: Duration,
    offset: Duration,
}

async fn measure(client: &Client, state: &str, program: i64) -> Row {
    let all = "/api/v1/deviations?";
    let cursor = cursor_at(client, all, 800).await;
    Row {
        state: state.to_string(),
        first: median(client, &format!("{all}limit={PAGE}")).await,
        program: median(client, &format!("{all}program_id={program}&limit={PAGE}")).await,
        counted: median(client, &format!("{all}limit={PAGE}&count=true")).await,
        cursor: median(client, &format!("{all}limit={PAGE}&cursor={cursor}")).await,
        offset: median(client, &format!("{all}limit={PAGE}&offset=800")).await,
    }
}

async fn bench(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        println!("{backend:?}: skipped (not available)");
        return;
    };
    let (_, ours) = app.program_with_new_cmo("P").await;
    let me = app.admin().get("/api/v1/me").await.expect(200).body;
    let reporter = me["user"]["id"].as_i64().unwrap_or_default();
    // Another sponsor with its own program at the same CMO: a copy of ours under a new
    // organization (only its rows matter here, not its people).
    let sponsor = organization::Entity::find_by_id(app.org_id)
        .one(&app.db)
        .await
        .expect("org")
        .expect("our org");
    let mut other: organization::ActiveModel = sponsor.into();
    other.id = NotSet;
    other.name = Set("Another sponsor".into());
    let other = other.insert(&app.db).await.expect("another sponsor");
    let ours_model = program::Entity::find_by_id(ours)
        .one(&app.db)
        .await
        .expect("program")
        .expect("our program");
    let mut theirs: program::ActiveModel = ours_model.into();
    theirs.id = NotSet;
    theirs.sponsor_org_id = Set(other.id);
    theirs.name = Set("Their program".into());
    let theirs = theirs.insert(&app.db).await.expect("their program");

    let client = app.admin();
    let mut rows = Vec::new();
    seed(&app, ours, reporter, 1_000, 0).await;
    rows.push(measure(&client, "ours 1,000", ours).await);
    seed(&app, theirs.id, reporter, 100_000, 3).await;
    rows.push(
        measure(
            &client,
            "ours 1,000 beside 100,000 of another sponsor",
            ours,
        )
        .await,
    );
    seed(&app, ours, reporter, 99_000, 5).await;
    rows.push(measure(&client, "ours 100,000", ours).await);
    let all = "/api/v1/deviations?";
    let deep_cursor = cursor_at(&client, all, 50_000).await;
    let deep_by_cursor = median(&client, &format!("{all}limit={PAGE}&cursor={deep_cursor}")).await;
    let deep_by_offset = median(&client, &format!("{all}limit={PAGE}&offset=50000")).await;
    app.stop().await;

    println!(
        "| {backend:?} deviations (p50 of {REQUESTS}) | first page | program's first page | first page + count | row 800 by cursor | row 800 by offset |"
    );
    println!("|---|---|---|---|---|---|");
    for r in &rows {
        println!(
            "| {} | {:.2?} | {:.2?} | {:.2?} | {:.2?} | {:.2?} |",
            r.state, r.first, r.program, r.counted, r.cursor, r.offset
        );
    }
    let ratio = |a: Duration, b: Duration| a.as_secs_f64() / b.as_secs_f64();
    println!(
        "{backend:?}: list at 100,000 / at 1,000 (first page) = {:.2}; beside another sponsor's 100,000 / alone = {:.2}; program list = {:.2}; by cursor = {:.2}",
        ratio(rows[2].first, rows[0].first),
        ratio(rows[1].first, rows[0].first),
        ratio(rows[2].program, rows[0].program),
        ratio(rows[2].cursor, rows[0].cursor),
    );
    println!(
        "{backend:?}: row 50,000 of 100,000: by cursor {deep_by_cursor:.2?}, by offset {deep_by_offset:.2?}"
    );
}

#[actix_web::main]
async fn main() {
    bench(Backend::Sqlite).await;
    bench(Backend::Postgres).await;
}
