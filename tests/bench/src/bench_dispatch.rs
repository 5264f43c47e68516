//! Email delivery rate into a local SMTP sink (the in-repo test sink, TCP_NODELAY on its
//! side), one digest-sized multipart message (~9 KB) over and over:
//!
//! 1. the sink's ceiling: a plain SMTP blaster (raw commands over one socket with
//!    TCP_NODELAY, one message after the other, waiting for each reply; then 4 sockets);
//! 2. lettre's own pooled `AsyncSmtpTransport` (sockets without TCP_NODELAY);
//! 3. our `SmtpPool` alone (no database), 1 and 4 connections;
//! 4. the whole dispatcher: enqueue N outbox rows, then dispatcher passes (claim, send
//!    over the pool, record each outcome) until every row is sent, on SQLite and on
//!    PostgreSQL.
//!
//! When postfix's `smtp-sink` and `smtp-source` are installed (Debian package `postfix`),
//! it also measures `smtp-source` into `smtp-sink` (the reference the issue quotes) and
//! our pool and dispatcher into that same `smtp-sink`, and prints the ratios.
//!
//! Run: `cargo run --release -p e2e --bin bench_dispatch`. Loopback only; counts bounded.

use std::time::{Duration, Instant};

use e2e::smtp::SmtpSink;
use e2e::{Backend, spawn_app};
use entity::outbox::{self, Draft};
use lettre::message::{Mailbox, MultiPart};
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use mail::smtp::{SmtpConfig, SmtpPool};
use sea_orm::{ConnectionTrait, TransactionTrait};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use worker::outbound::mailer::Mailer;

const BLAST: usize = 5_000;
const LETTRE_STOCK: usize = 100;
const POOL_ONLY: usize = 5_000;
const OUTBOX: usize = 5_000;

fn sample_bodies() -> (String, String) {
    let mut text =
        String::from("Weekly status: ACM-101 clinical supply (ACM-101), week 2026-W49\n\n");
    let mut html = String::from("<!DOCTYPE html><html><body><h2>ACM-101 clinical supply</h2><ul>");
    for n in 0..40 {
        text.push_str(&format!(
            "  - Action {n}: send the cleaning validation protocol, owner qa, due 2026-11-{:02}, 3 day(s) overdue\n    http://127.0.0.1:8080/api/v1/action-items/{n}\n",
            n % 28 + 1
        ));
        html.push_str(&format!(
            "<li><a href=\"http://127.0.0.1:8080/api/v1/action-items/{n}\">Action {n}: send the cleaning validation protocol</a>, owner qa, <b>3 day(s) overdue</b></li>"
        ));
    }
    html.push_str("</ul></body></html>");
    (text, html)
}

fn sample_message() -> Message {
    let (text, html) = sample_bodies();
    Message::builder()
        .from("cmo <noreply@cmo.test>".parse().expect("from"))
        .to("pm@acme.test".parse().expect("to"))
        .subject("ACM-101 weekly status 2026-W49")
        .multipart(MultiPart::alternative_plain_html(text, html))
        .expect("message")
}

fn rate(n: usize, elapsed: Duration) -> f64 {
    n as f64 / elapsed.as_secs_f64()
}

/// Raw SMTP over one socket: EHLO once, then MAIL/RCPT/DATA/body per message.
async fn blast_one_connection(port: u16, count: usize, body: &[u8]) -> std::io::Result<()> {
    let stream = tokio::net::TcpStream::connect(("127.0.0.1", port)).await?;
    stream.set_nodelay(true)?;
    let (read, mut write) = stream.into_split();
    let mut replies = BufReader::new(read);
    let mut line = String::new();
    // Reads one (possibly multi-line) reply.
    async fn reply(
        replies: &mut BufReader<tokio::net::tcp::OwnedReadHalf>,
        line: &mut String,
    ) -> std::io::Result<()> {
        loop {
            line.clear();
            if replies.read_line(line).await? == 0 {
                return Err(std::io::Error::other("closed"));
            }
            if line.as_bytes().get(3) != Some(&b'-') {
                return Ok(());
            }
        }
    }
    reply(&mut replies, &mut line).await?;
    write.write_all(b"EHLO blaster.test\r\n").await?;
    reply(&mut replies, &mut line).await?;
    for _ in 0..count {
        write.write_all(b"MAIL FROM:<noreply@cmo.test>\r\n").await?;
        reply(&mut replies, &mut line).await?;
        write.write_all(b"RCPT TO:<pm@acme.test>\r\n").await?;
        reply(&mut replies, &mut line).await?;
        write.write_all(b"DATA\r\n").await?;
        reply(&mut replies, &mut line).await?;
        write.write_all(body).await?;
        write.write_all(b"\r\n.\r\n").await?;
        reply(&mut replies, &mut line).await?;
    }
    write.write_all(b"QUIT\r\n").await?;
    Ok(())
}

async fn blaster(connections: usize, body: &[u8]) -> f64 {
    let sink = SmtpSink::start().await;
    let started = Instant::now();
    let per = BLAST / connections;
    let mut tasks = Vec::new();
    for _ in 0..connections {
        let body = body.to_vec();
        let port = sink.port;
        tasks.push(tokio::spawn(async move {
            blast_one_connection(port, per, &body).await
        }));
    }
    for t in tasks {
        t.await.expect("join").expect("blast");
    }
    let elapsed = started.elapsed();
    sink.stop();
    rate(per * connections, elapsed)
}

async fn lettre_stock(message: &Message) -> f64 {
    let sink = SmtpSink::start().await;
    let transport = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous("127.0.0.1")
        .port(sink.port)
        .build();
    let started = Instant::now();
    for _ in 0..LETTRE_STOCK {
        transport.send(message.clone()).await.expect("lettre send");
    }
    let elapsed = started.elapsed();
    sink.stop();
    rate(LETTRE_STOCK, elapsed)
}

/// A postfix `smtp-sink` on a free loopback port, killed on drop.
struct PostfixSink {
    child: std::process::Child,
    port: u16,
}

impl PostfixSink {
    fn start() -> Option<PostfixSink> {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .ok()?
            .local_addr()
            .ok()?
            .port();
        let mut cmd = std::process::Command::new("smtp-sink");
        // smtp-sink refuses to run as root without a user to switch to.
        cmd.args(["-u", "nobody", &format!("127.0.0.1:{port}"), "256"])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null());
        let child = cmd.spawn().ok()?;
        // Bounded wait for the port to open.
        for _ in 0..100 {
            if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                return Some(PostfixSink { child, port });
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }
}

impl Drop for PostfixSink {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `smtp-source -s sessions -m count -l size` into `port`: messages per second.
fn smtp_source(port: u16, sessions: usize, size: usize) -> Option<f64> {
    let started = Instant::now();
    let status = std::process::Command::new("smtp-source")
        .args([
            "-s",
            &sessions.to_string(),
            "-m",
            &BLAST.to_string(),
            "-l",
            &size.to_string(),
            &format!("127.0.0.1:{port}"),
        ])
        .status()
        .ok()?;
    status.success().then(|| rate(BLAST, started.elapsed()))
}

async fn pool_into(url: &str, message: &Message, connections: usize) -> f64 {
    let mut config = SmtpConfig::from_url(url).expect("url");
    config.max_connections = connections;
    let pool = std::sync::Arc::new(SmtpPool::new(config));
    let envelope = message.envelope().clone();
    let bytes = std::sync::Arc::new(message.formatted());
    let started = Instant::now();
    let per = POOL_ONLY / connections;
    let mut tasks = Vec::new();
    for _ in 0..connections {
        let pool = pool.clone();
        let envelope = envelope.clone();
        let bytes = bytes.clone();
        tasks.push(tokio::spawn(async move {
            for _ in 0..per {
                pool.send(&envelope, &bytes).await.map_err(|e| e.message)?;
            }
            Ok::<(), String>(())
        }));
    }
    for t in tasks {
        t.await.expect("join").expect("pool send");
    }
    rate(per * connections, started.elapsed())
}

async fn pool_only(message: &Message, connections: usize) -> f64 {
    let sink = SmtpSink::start().await;
    let r = pool_into(&sink.url(), message, connections).await;
    sink.stop();
    r
}

/// The whole dispatcher into `postfix_sink` (a URL), or into our sink, counting receipts.
async fn outbox_dispatch(backend: Backend, postfix_sink: Option<&str>) -> Option<(f64, Duration)> {
    let app = spawn_app(backend).await?;
    let (text, html) = sample_bodies();
    let now = app.now();
    let started = Instant::now();
    for chunk in 0..OUTBOX / 500 {
        let txn = app.db.begin().await.expect("begin");
        for n in 0..500 {
            let draft = Draft {
                dedupe_key: format!("bench:{chunk}:{n}"),
                to: vec!["pm@acme.test".to_string()],
                cc: Vec::new(),
                subject: "ACM-101 weekly status 2026-W49".to_string(),
                text_body: text.clone(),
                html_body: html.clone(),
                list_unsubscribe: Some("http://127.0.0.1:8080/api/v1/unsubscribe?token=x".into()),
            };
            outbox::enqueue(&txn, draft, now, "cmo.test")
                .await
                .expect("enqueue");
        }
        txn.commit().await.expect("commit");
    }
    let enqueue = started.elapsed();
    if backend == Backend::Postgres {
        let _ = app.db.execute_unprepared("ANALYZE email_outbox").await;
    }
    let sink = SmtpSink::start().await;
    let url = postfix_sink
        .map(str::to_string)
        .unwrap_or_else(|| sink.url());
    let mailer = Mailer::new(Some(&url), std::env::temp_dir()).expect("mailer");
    let from: Mailbox = "cmo <noreply@cmo.test>".parse().expect("from");
    let ctx = app.job_context("bench");
    let started = Instant::now();
    let mut sent = 0;
    // Bounded: each pass sends up to 500; a few spare passes at most.
    for _ in 0..(OUTBOX / 500 + 5) {
        let report = worker::jobs::outbox::dispatch(&ctx, &mailer, &from, now, 500)
            .await
            .expect("dispatch");
        sent += report.sent;
        if report.sent + report.retried + report.failed == 0 {
            break;
        }
    }
    let elapsed = started.elapsed();
    assert_eq!(sent, OUTBOX, "every email sent");
    if postfix_sink.is_none() {
        assert_eq!(sink.received().len(), OUTBOX, "every email received once");
    }
    sink.stop();
    app.stop().await;
    Some((rate(OUTBOX, elapsed), enqueue))
}

#[actix_web::main]
async fn main() {
    let message = sample_message();
    let body = String::from_utf8_lossy(&message.formatted()).into_owned();
    println!(
        "message: {} bytes (multipart text + HTML)",
        message.formatted().len()
    );
    let ceiling_1 = blaster(1, body.as_bytes()).await;
    let ceiling_4 = blaster(4, body.as_bytes()).await;
    println!("sink ceiling, plain SMTP blaster, 1 connection:   {ceiling_1:>8.0} msg/s");
    println!("sink ceiling, plain SMTP blaster, 4 connections:  {ceiling_4:>8.0} msg/s");
    let stock = lettre_stock(&message).await;
    println!(
        "lettre AsyncSmtpTransport (pooled, no NODELAY):    {stock:>8.0} msg/s  ({:.3} of the 1-connection ceiling)",
        stock / ceiling_1
    );
    let pool_1 = pool_only(&message, 1).await;
    println!(
        "SmtpPool, TCP_NODELAY, 1 connection:               {pool_1:>8.0} msg/s  ({:.2} of the 1-connection ceiling)",
        pool_1 / ceiling_1
    );
    let pool_4 = pool_only(&message, 4).await;
    println!(
        "SmtpPool, TCP_NODELAY, 4 connections:              {pool_4:>8.0} msg/s  ({:.2} of the 4-connection ceiling)",
        pool_4 / ceiling_4
    );
    for backend in [Backend::Sqlite, Backend::Postgres] {
        match outbox_dispatch(backend, None).await {
            Some((r, enqueue)) => println!(
                "outbox dispatcher, {backend:?}, {OUTBOX} emails:  {r:>8.0} msg/s  ({:.2} of the 4-connection ceiling; enqueueing took {enqueue:.2?})",
                r / ceiling_4
            ),
            None => println!("outbox dispatcher, {backend:?}: skipped (not available)"),
        }
    }
    match PostfixSink::start() {
        None => println!(
            "postfix smtp-sink/smtp-source: not installed (apt-get install postfix), skipped"
        ),
        Some(postfix) => {
            let size = message.formatted().len();
            let url = format!("smtp://127.0.0.1:{}", postfix.port);
            let source_1 = smtp_source(postfix.port, 1, size).unwrap_or(f64::NAN);
            let source_4 = smtp_source(postfix.port, 4, size).unwrap_or(f64::NAN);
            println!("postfix smtp-source -s 1 into smtp-sink:            {source_1:>8.0} msg/s");
            println!("postfix smtp-source -s 4 into smtp-sink:            {source_4:>8.0} msg/s");
            let pool_1 = pool_into(&url, &message, 1).await;
            let pool_4 = pool_into(&url, &message, 4).await;
            println!(
                "SmtpPool, 1 connection, into smtp-sink:            {pool_1:>8.0} msg/s  ({:.2} x smtp-source -s 1)",
                pool_1 / source_1
            );
            println!(
                "SmtpPool, 4 connections, into smtp-sink:           {pool_4:>8.0} msg/s  ({:.2} x smtp-source -s 4)",
                pool_4 / source_4
            );
            for backend in [Backend::Sqlite, Backend::Postgres] {
                if let Some((r, _)) = outbox_dispatch(backend, Some(&url)).await {
                    println!(
                        "outbox dispatcher, {backend:?}, into smtp-sink:    {r:>8.0} msg/s  ({:.2} x smtp-source -s 4)",
                        r / source_4
                    );
                }
            }
        }
    }
}
