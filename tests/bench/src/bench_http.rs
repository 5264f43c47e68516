//! The API under load, as shipped: starts the release `cmo-api` and `cmo-worker`
//! binaries on loopback against a fresh database (SQLite, then PostgreSQL in a
//! throwaway cluster), seeds a program, and prints a table:
//!
//! - `GET /healthz` (an actix-web "hello" of the same binary: the ceiling),
//!   `GET /api/v1/deviations` (a list) and `POST /api/v1/action-items/{id}/transitions`
//!   (audited state-machine writes): requests/s and p50/p99 at 1, 8, 32 and 128
//!   concurrent keep-alive clients, with the ratio to the ceiling;
//! - the database's own durable write ceiling (a one-row insert + update transaction
//!   loop at the same concurrency) beside the transition endpoint (ratio);
//! - peak RSS (VmHWM) of the api and worker processes.
//!
//! Run: `bench/run` (builds first) or `cargo run --release -p e2e --bin bench_http`
//! after `cargo build --release --bin cmo-api --bin cmo-worker`. Loopback only; every
//! loop is bounded by a request count.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use e2e::Client;
use e2e::smtp::SmtpSink;
use futures_util::future::join_all;
use sea_orm::{ConnectionTrait, DatabaseConnection, TransactionTrait};
use serde_json::json;

const LEVELS: [usize; 4] = [1, 8, 32, 128];

fn bin(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("current exe");
    let path = exe.parent().expect("bin dir").join(name);
    assert!(
        path.exists(),
        "{} missing: cargo build --release --bin cmo-api --bin cmo-worker",
        path.display()
    );
    path
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

struct Stats {
    rps: f64,
    p50: Duration,
    p99: Duration,
}

fn stats(mut lat: Vec<Duration>, wall: Duration) -> Stats {
    lat.sort();
    let at = |p: f64| lat[((lat.len() as f64 - 1.0) * p).round() as usize];
    Stats {
        rps: lat.len() as f64 / wall.as_secs_f64(),
        p50: at(0.5),
        p99: at(0.99),
    }
}

/// `total` requests spread over `clients` concurrent keep-alive clients.
async fn drive<F, Fut>(clients: usize, total: usize, make: F) -> Stats
where
    F: Fn(usize, usize) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let per = total.div_ceil(clients);
    let start = Instant::now();
    let runs = (0..clients).map(|c| {
        let make = &make;
        async move {
            let mut lat = Vec::with_capacity(per);
            for i in 0..per {
                let t = Instant::now();
                make(c, i).await;
                lat.push(t.elapsed());
            }
            lat
        }
    });
    let lat: Vec<Duration> = join_all(runs).await.into_iter().flatten().collect();
    stats(lat, start.elapsed())
}

/// Stops the api and worker if the bench panics half-way.
struct KillOnDrop(Vec<u32>);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        for pid in &self.0 {
            let _ = Command::new("kill")
                .arg(pid.to_string())
                .stderr(Stdio::null())
                .status();
        }
    }
}

fn peak_rss_mib(child: &Child) -> f64 {
    std::fs::read_to_string(format!("/proc/{}/status", child.id()))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<f64>().ok())
        })
        .map_or(0.0, |kb| kb / 1024.0)
}

/// One-row insert + update per transaction: what the database itself sustains.
async fn write_ceiling(db: &DatabaseConnection, clients: usize, total: usize) -> f64 {
    db.execute_unprepared(
        "CREATE TABLE IF NOT EXISTS bench_ceiling (id BIGINT PRIMARY KEY, n BIGINT NOT NULL)",
    )
    .await
    .expect("scratch table");
    let s = drive(clients, total, |c, i| async move {
        let id = (c * 1_000_000 + i) as i64;
        let txn = db.begin().await.expect("begin");
        txn.execute_unprepared(&format!(
            "INSERT INTO bench_ceiling (id, n) VALUES ({id}, 0)"
        ))
        .await
        .expect("insert");
        txn.execute_unprepared(&format!(
            "UPDATE bench_ceiling SET n = n + 1 WHERE id = {id}"
        ))
        .await
        .expect("update");
        txn.commit().await.expect("commit");
    })
    .await;
    db.execute_unprepared("DROP TABLE bench_ceiling")
        .await
        .expect("drop");
    s.rps
}

/// The `i`th step of an action item's cycle: start → complete → reopen → start …
fn cycle_step(i: usize) -> serde_json::Value {
    match i % 3 {
        0 => json!({"event": "start"}),
        1 => json!({"event": "complete"}),
        _ => json!({"event": "reopen", "reason": "bench"}),
    }
}

/// `env`: extra settings of the api (e.g. `CMO_DB_READ_CONNECTIONS=0`).
async fn bench(label: &str, url: String, env: &[(&str, &str)]) {
    let dir = tempfile::tempdir().expect("temp dir");
    let boot = Command::new(bin("cmo-api"))
        .args([
            "bootstrap",
            "--org",
            "Acme Bio",
            "--email",
            "admin@acme.test",
            "--json",
        ])
        .env("DATABASE_URL", &url)
        .env("CMO_AUDIT_KEY", e2e::TEST_AUDIT_KEY)
        .env("CMO_LOG", "warn")
        .output()
        .expect("bootstrap");
    assert!(
        boot.status.success(),
        "{}",
        String::from_utf8_lossy(&boot.stderr)
    );
    let token = serde_json::from_slice::<serde_json::Value>(&boot.stdout).expect("json")["token"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    let sink = SmtpSink::start().await;
    let mut api = Command::new(bin("cmo-api"))
        .env("DATABASE_URL", &url)
        // One audit key for the three processes (required on PostgreSQL).
        .env("CMO_AUDIT_KEY", e2e::TEST_AUDIT_KEY)
        .env("CMO_BIND", format!("127.0.0.1:{port}"))
        .env("CMO_LOG", "warn")
        .env("CMO_PUBLIC_BASE_URL", &base)
        .envs(env.iter().copied())
        .stdout(Stdio::null())
        .spawn()
        .expect("api");
    let mut worker = Command::new(bin("cmo-worker"))
        .env("DATABASE_URL", &url)
        .env("CMO_AUDIT_KEY", e2e::TEST_AUDIT_KEY)
        .env("CMO_SMTP_URL", sink.url())
        .env("CMO_LOG", "warn")
        .env("CMO_OUTBOX_DIR", dir.path())
        .stdout(Stdio::null())
        .spawn()
        .expect("worker");
    // Up when it accepts connections (bounded wait: 20 s).
    for _ in 0..400 {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let _guard = KillOnDrop(vec![api.id(), worker.id()]);
    Client::new(&base, None).get("/readyz").await.expect(200);
    let admin = Client::new(&base, Some(&token));
    let me = admin.get("/api/v1/me").await.expect(200).body;
    let admin_id = me["user"]["id"].as_i64().unwrap_or_default();

    // Seed: a CMO, a program with the standard plan, 300 deviations, 128 action items.
    let cmo = admin
        .post("/api/v1/organizations", json!({"name": "CMO", "kind": "cmo", "admin": {"email": "a@cmo.test", "display_name": "A"}}))
        .await
        .expect(201)
        .body["organization"]["id"]
        .as_i64()
        .unwrap_or_default();
    for event in ["start_evaluation", "qualify"] {
        admin
            .post(
                &format!("/api/v1/cmos/{cmo}/qualification"),
                json!({"event": event}),
            )
            .await
            .expect(200);
    }
    let program = admin
        .post(
            "/api/v1/programs",
            json!({"name": "ACM-101", "product_name": "ACM-101", "cmo_org_id": cmo,
            "modality": "biologic", "stage": "clinical", "time_zone": "Europe/Zurich"}),
        )
        .await
        .expect(201)
        .body["id"]
        .as_i64()
        .unwrap_or_default();
    admin
        .post(
            &format!("/api/v1/programs/{program}/plan"),
            json!({"template": "cdmo_standard", "start_date": "2026-12-01"}),
        )
        .await
        .expect(201);
    // The worker has work during the run too: critical deviations page the core team.
    admin
        .post(
            &format!("/api/v1/programs/{program}/team"),
            json!({"user_id": admin_id,
            "governance_tier": "core_team", "program_role": "QA on call"}),
        )
        .await
        .expect(201);
    let now = chrono::Utc::now();
    join_all((0..300).map(|n| {
        let admin = admin.clone();
        async move {
            admin
                .post(&format!("/api/v1/programs/{program}/deviations"), json!({"title": format!("Deviation {n}"),
                    "description": "seeded", "detected_at": now,
                    "criticality": if n % 15 == 0 { "critical" } else { "minor" }, "category": "documentation"}))
                .await
                .expect(201);
        }
    }))
    .await;
    let due = (now + chrono::TimeDelta::days(30)).date_naive();
    let mut items = Vec::new();
    for n in 0..128 {
        let item = admin
            .post(
                &format!("/api/v1/programs/{program}/action-items"),
                json!({"title": format!("Action {n}"),
                "owner_user_id": admin_id, "due_date": due}),
            )
            .await
            .expect(201)
            .body;
        items.push(item["id"].as_i64().unwrap_or_default());
    }
    let list = format!("/api/v1/deviations?program_id={program}&limit=50");
    let clients: Vec<Client> = (0..128).map(|_| Client::new(&base, Some(&token))).collect();

    println!("\n{label}: api and worker binaries on 127.0.0.1, keep-alive clients");
    println!(
        "| {:<26} | {:>7} | {:>9} | {:>9} | {:>9} | {:>12} |",
        "endpoint", "clients", "req/s", "p50", "p99", "÷ hello"
    );
    println!("|{}|", "-".repeat(88));
    let mut transition_at_32 = 0.0;
    // The targets in one line: single-client p50, and ÷ hello with p99 at 8.
    let mut targets = Vec::new();
    // Warm-up (not reported): every client connects and every endpoint runs once, so the
    // first level does not pay for connection set-up and cold caches.
    for cl in &clients {
        cl.get("/healthz").await.expect(200);
        cl.get(&list).await.expect(200);
    }
    for &c in &LEVELS {
        let hello = drive(c, 2_000.max(40 * c), |k, _| {
            let cl = &clients[k];
            async move {
                cl.get("/healthz").await.expect(200);
            }
        })
        .await;
        let listed = drive(c, 1_000.max(10 * c), |k, _| {
            let cl = &clients[k];
            let list = &list;
            async move {
                cl.get(list).await.expect(200);
            }
        })
        .await;
        // Each client cycles its own item: start → complete → reopen → start …
        let moved = drive(c, 600.max(6 * c), |k, i| {
            let cl = &clients[k];
            let path = format!("/api/v1/action-items/{}/transitions", items[k]);
            async move {
                cl.post(&path, cycle_step(i)).await.expect(200);
            }
        })
        .await;
        if c == 32 {
            transition_at_32 = moved.rps;
        }
        if c == 1 {
            targets.push(format!(
                "1 client p50: hello {:.2?}, list {:.2?}, transition {:.2?}",
                hello.p50, listed.p50, moved.p50
            ));
        }
        if c == 8 {
            targets.push(format!(
                "8 clients: list {:.3} of hello (p99 {:.1?}), transition {:.3} of hello (p99 {:.1?})",
                listed.rps / hello.rps,
                listed.p99,
                moved.rps / hello.rps,
                moved.p99
            ));
        }
        for (name, s) in [
            ("GET /healthz (hello)", &hello),
            ("GET /deviations (list)", &listed),
            ("POST …/transitions", &moved),
        ] {
            println!(
                "| {:<26} | {:>7} | {:>9.0} | {:>9.1?} | {:>9.1?} | {:>12.3} |",
                name,
                c,
                s.rps,
                s.p50,
                s.p99,
                s.rps / hello.rps
            );
        }
        // Items left mid-cycle restart from "start": finish the cycle so every client's
        // item is open again.
        for (k, cl) in clients.iter().enumerate().take(c) {
            let per = 600usize.max(6 * c).div_ceil(c);
            let path = format!("/api/v1/action-items/{}/transitions", items[k]);
            for i in per..per.div_ceil(3) * 3 {
                cl.post(&path, cycle_step(i)).await.expect(200);
            }
        }
    }
    // Reads while others write: 8 clients list while 8 others move their items. On
    // SQLite the reads run on read-only connections beside the writer (unless
    // CMO_DB_READ_CONNECTIONS=0): no read waits for a write.
    let (listed, moved) = tokio::join!(
        drive(8, 800, |k, _| {
            let cl = &clients[k];
            let list = &list;
            async move {
                cl.get(list).await.expect(200);
            }
        }),
        drive(8, 600, |k, i| {
            let cl = &clients[8 + k];
            let path = format!("/api/v1/action-items/{}/transitions", items[8 + k]);
            async move {
                cl.post(&path, cycle_step(i)).await.expect(200);
            }
        })
    );
    for (name, s) in [
        ("list while 8 write", &listed),
        ("transitions while 8 list", &moved),
    ] {
        println!(
            "| {:<26} | {:>7} | {:>9.0} | {:>9.1?} | {:>9.1?} | {:>12} |",
            name, 8, s.rps, s.p50, s.p99, ""
        );
    }
    let db = migration::startup::connect(&url, None)
        .await
        .expect("bench connection");
    let ceiling = write_ceiling(&db, 32, 2_000).await;
    let _ = db.close().await;
    println!(
        "| {:<26} | {:>7} | {:>9.0} | {:>9} | {:>9} | {:>12} |",
        "DB insert+update txn", 32, ceiling, "", "", ""
    );
    println!("{label}: {}", targets.join("; "));
    println!(
        "{label}: transition endpoint at 32 clients: {transition_at_32:.0}/s = {:.3} of the database's own write ceiling ({ceiling:.0} txn/s)",
        transition_at_32 / ceiling
    );
    println!(
        "{label}: peak RSS: api {:.1} MiB, worker {:.1} MiB (emails sent meanwhile: {})",
        peak_rss_mib(&api),
        peak_rss_mib(&worker),
        sink.count()
    );
    let _ = api.kill();
    let _ = worker.kill();
    let _ = api.wait();
    let _ = worker.wait();
}

#[actix_web::main]
async fn main() {
    let dir = tempfile::tempdir().expect("temp dir");
    let sqlite = |name: &str| format!("sqlite://{}?mode=rwc", dir.path().join(name).display());
    // The same binary with its reads on the one writer connection, as before the read
    // pool: the rows to compare with the default's.
    bench(
        "SQLite, reads on the writer",
        sqlite("bench-one.db"),
        &[("CMO_DB_READ_CONNECTIONS", "0")],
    )
    .await;
    bench("SQLite", sqlite("bench.db"), &[]).await;
    match e2e::pg::fresh_database_url().await {
        Some(url) => bench("PostgreSQL", url, &[]).await,
        None => println!("PostgreSQL: skipped (not installed)"),
    }
}
