//! Chaos on the real `cmo-worker` binary, on SQLite and PostgreSQL: killed with SIGKILL
//! while 2,000 emails are in flight, and started while the SMTP server is down. Nothing
//! may be lost; duplicates stay within the in-flight bound and keep their Message-ID.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is the failure report

use std::collections::HashMap;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use e2e::smtp::SmtpSink;
use entity::outbox::{self, Draft, OutboxStatus};
use sea_orm::{
    ColumnTrait, DatabaseConnection, EntityTrait, PaginatorTrait, QueryFilter, TransactionTrait,
};

const BIN: &str = env!("CARGO_BIN_EXE_cmo-worker");
/// Emails a worker claims per pass: what a SIGKILL can leave claimed but unrecorded.
const IN_FLIGHT_BOUND: usize = 100;

struct Db {
    url: String,
    conn: DatabaseConnection,
    _dir: tempfile::TempDir,
}

async fn database(postgres: bool) -> Option<Db> {
    let dir = tempfile::tempdir().unwrap();
    let url = if postgres {
        e2e::pg::fresh_database_url().await?
    } else {
        format!("sqlite://{}?mode=rwc", dir.path().join("cmo.db").display())
    };
    let args = migration::startup::DatabaseArgs {
        db_max_connections: Some(if postgres { 4 } else { 1 }),
        ..migration::startup::DatabaseArgs::for_url(url.clone())
    };
    let conn = migration::startup::connect_and_migrate(&args, 4)
        .await
        .unwrap();
    Some(Db {
        url,
        conn,
        _dir: dir,
    })
}

/// Where these tests' time starts (the workers run on a test clock from here), never the
/// machine's clock.
fn start() -> chrono::DateTime<chrono::Utc> {
    chrono::DateTime::parse_from_rfc3339("2026-11-18T10:00:00Z")
        .unwrap_or_default()
        .with_timezone(&chrono::Utc)
}

async fn enqueue(db: &DatabaseConnection, n: usize) {
    let now = start();
    for chunk in 0..n.div_ceil(500) {
        let txn = db.begin().await.unwrap();
        for i in chunk * 500..(chunk * 500 + 500).min(n) {
            outbox::enqueue(
                &txn,
                Draft {
                    dedupe_key: format!("chaos:{i}"),
                    to: vec![format!("member{}@acme.test", i % 50)],
                    cc: vec![],
                    subject: format!("Reminder {i}"),
                    text_body: format!("Item {i} is overdue."),
                    html_body: format!("<p>Item {i} is overdue.</p>"),
                    list_unsubscribe: None,
                },
                now,
                "cmo.test",
            )
            .await
            .unwrap();
        }
        txn.commit().await.unwrap();
    }
}

fn start_worker(db: &Db, smtp_url: &str, id: &str) -> Child {
    start_worker_at(db, smtp_url, id, Some(start()))
}

/// A worker whose clock reads `at` now (tests only), e.g. past every retry's due time.
fn start_worker_at(
    db: &Db,
    smtp_url: &str,
    id: &str,
    at: Option<chrono::DateTime<chrono::Utc>>,
) -> Child {
    let mut cmd = Command::new(BIN);
    if let Some(at) = at {
        cmd.env("CMO_ALLOW_TEST_CLOCK", "1")
            .env("CMO_TEST_CLOCK_START", at.to_rfc3339());
    }
    if db.url.starts_with("postgres") {
        cmd.env("CMO_AUDIT_KEY", e2e::TEST_AUDIT_KEY);
    }
    cmd.env("DATABASE_URL", &db.url)
        .env("CMO_SMTP_URL", smtp_url)
        .env("CMO_DISPATCH_CRON", "* * * * * *")
        .env("CMO_OUTBOX_CLAIM_SECS", "5")
        .env("CMO_WORKER_ID", id)
        .env("CMO_MAIL_FROM", "cmo <noreply@cmo.test>")
        .env("CMO_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap()
}

/// Message-ID → how many times the sink received it.
fn by_message_id(sink: &SmtpSink) -> HashMap<String, usize> {
    let mut seen = HashMap::new();
    for m in sink.received() {
        let id = m.parsed().message_id().unwrap_or_default().to_string();
        *seen.entry(id).or_insert(0) += 1;
    }
    seen
}

/// Waits (bounded) until the sink holds `n` distinct messages.
async fn wait_distinct(sink: &SmtpSink, n: usize, within: Duration) -> HashMap<String, usize> {
    let deadline = Instant::now() + within;
    loop {
        let seen = by_message_id(sink);
        if seen.len() >= n || Instant::now() > deadline {
            return seen;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn killed_mid_dispatch(postgres: bool) {
    let Some(db) = database(postgres).await else {
        return;
    };
    const EMAILS: usize = 2_000;
    enqueue(&db.conn, EMAILS).await;
    let sink = SmtpSink::start().await;
    // 4 ms per message over the pool's connections: about two seconds of sending, so the
    // kill lands mid-flight.
    sink.slow_down(Duration::from_millis(4));
    let mut first = start_worker(&db, &sink.url(), "chaos-1");
    let deadline = Instant::now() + Duration::from_secs(60);
    // Mid-batch (batches are 100): some emails are claimed and not yet recorded.
    while sink.count() < 350 {
        assert!(
            Instant::now() < deadline,
            "the worker sent nothing within 60 s"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    first.kill().unwrap(); // SIGKILL
    first.wait().unwrap();
    let at_kill = sink.count();
    assert!(
        at_kill < EMAILS,
        "killed too late to be mid-flight ({at_kill})"
    );
    let claimed = outbox::Entity::find()
        .filter(outbox::Column::Status.eq(OutboxStatus::Sending))
        .count(&db.conn)
        .await
        .unwrap();
    assert!(claimed > 0, "killed between passes, not mid-flight");
    // Restarted: the dead worker's claims expire (5 s) and everything goes out.
    let mut second = start_worker(&db, &sink.url(), "chaos-2");
    let seen = wait_distinct(&sink, EMAILS, Duration::from_secs(90)).await;
    let _ = second.kill();
    let _ = second.wait();
    assert_eq!(
        seen.len(),
        EMAILS,
        "every email delivered (left claimed at kill: {claimed})"
    );
    let total: usize = seen.values().sum();
    let duplicates = total - EMAILS;
    assert!(
        duplicates <= IN_FLIGHT_BOUND,
        "{duplicates} duplicates, more than the in-flight bound {IN_FLIGHT_BOUND}"
    );
    // Duplicates are recognizable: the same Message-ID as the first copy (counted above),
    // and every row ends sent.
    let sent = outbox::Entity::find()
        .filter(outbox::Column::Status.eq(OutboxStatus::Sent))
        .count(&db.conn)
        .await
        .unwrap();
    assert_eq!(sent as usize, EMAILS);
    eprintln!(
        "killed at {at_kill} received, {claimed} claimed and unrecorded; after restart {EMAILS} distinct, {duplicates} duplicates"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_worker_loses_no_email_sqlite() {
    killed_mid_dispatch(false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_worker_loses_no_email_postgres() {
    killed_mid_dispatch(true).await;
}

async fn smtp_down_then_back(postgres: bool) {
    let Some(db) = database(postgres).await else {
        return;
    };
    const EMAILS: usize = 200;
    enqueue(&db.conn, EMAILS).await;
    // A port of this test's that refuses connections (bound, not listening) until the
    // server comes up on it: never released, so nothing else can take it meanwhile.
    let (socket, port) = e2e::smtp::reserved_port();
    let mut worker = start_worker(&db, &format!("smtp://127.0.0.1:{port}"), "chaos-down");
    // Attempts fail (connection refused) and are rescheduled, not given up.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let tried = outbox::Entity::find()
            .filter(outbox::Column::Attempts.gte(1))
            .filter(outbox::Column::Status.eq(OutboxStatus::Queued))
            .count(&db.conn)
            .await
            .unwrap();
        if tried as usize == EMAILS {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "attempts not recorded within 30 s"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let failed = outbox::Entity::find()
        .filter(outbox::Column::Status.eq(OutboxStatus::Failed))
        .count(&db.conn)
        .await
        .unwrap();
    assert_eq!(failed, 0, "an unreachable server fails nothing for good");
    // The server comes up on that port. The worker is replaced by one whose clock is two
    // minutes on (past the 30-36 s retry delay), so the test does not wait it out: the
    // backlog goes out at once.
    let _ = worker.kill();
    let _ = worker.wait();
    let sink = SmtpSink::serve(socket.listen(1024).unwrap());
    let mut worker = start_worker_at(
        &db,
        &sink.url(),
        "chaos-back",
        Some(start() + chrono::TimeDelta::minutes(2)),
    );
    let seen = wait_distinct(&sink, EMAILS, Duration::from_secs(90)).await;
    let _ = worker.kill();
    let _ = worker.wait();
    assert_eq!(seen.len(), EMAILS);
    assert_eq!(seen.values().sum::<usize>(), EMAILS, "no duplicates");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_smtp_outage_delays_but_loses_nothing_sqlite() {
    smtp_down_then_back(false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_smtp_outage_delays_but_loses_nothing_postgres() {
    smtp_down_then_back(true).await;
}
