//! The `cmo-api` binary itself: bootstrap, openapi, and serving with a graceful stop.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_cmo-api");

fn sqlite_url(dir: &tempfile::TempDir) -> String {
    format!("sqlite://{}?mode=rwc", dir.path().join("cmo.db").display())
}

/// `cmo-api bootstrap --json` of "Acme Bio" on the SQLite file in `dir`.
fn bootstrap(dir: &tempfile::TempDir) -> std::process::Output {
    Command::new(BIN)
        .args([
            "bootstrap",
            "--org",
            "Acme Bio",
            "--email",
            "admin@acme.test",
            "--json",
        ])
        .env("DATABASE_URL", sqlite_url(dir))
        .output()
        .unwrap_or_else(|e| panic!("cmo-api bootstrap: {e}"))
}

#[test]
fn bootstrap_prints_a_token_once_and_refuses_a_second_time() {
    let dir = tempfile::tempdir().unwrap();
    let first = bootstrap(&dir);
    assert!(
        first.status.success(),
        "{}",
        String::from_utf8_lossy(&first.stderr)
    );
    let out: serde_json::Value = serde_json::from_slice(&first.stdout).unwrap();
    assert!(out["token"].as_str().unwrap().starts_with("cmo_"));
    assert_eq!(out["organization_id"], 1);

    let second = Command::new(BIN)
        .args([
            "bootstrap",
            "--org",
            "Evil Corp",
            "--email",
            "evil@evil.test",
        ])
        .env("DATABASE_URL", sqlite_url(&dir))
        .output()
        .unwrap();
    assert!(!second.status.success());
    assert!(String::from_utf8_lossy(&second.stderr).contains("already holds 1 organization"));
}

#[test]
fn bootstrap_rejects_bad_input_before_touching_the_database() {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(BIN)
        .args([
            "bootstrap",
            "--org",
            "Acme",
            "--email",
            "not-an-email",
            "--time-zone",
            "Nowhere/Land",
        ])
        .env("DATABASE_URL", sqlite_url(&dir))
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("--email") && err.contains("--time-zone"),
        "{err}"
    );
}

#[test]
fn openapi_prints_the_committed_document() {
    let out = Command::new(BIN).arg("openapi").output().unwrap();
    assert!(out.status.success());
    let committed = std::fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../openapi/openapi.json"
    ))
    .unwrap();
    assert_eq!(out.stdout, committed, "regenerate openapi/openapi.json");
}

fn http_get(port: u16, path: &str) -> Option<String> {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut response = String::new();
    stream.read_to_string(&mut response).ok()?;
    Some(response)
}

/// The port from the server's "cmo-api listening" log line (JSON, on stdout or stderr),
/// and the log lines that follow it (until the process ends).
fn listening_port(child: &mut std::process::Child) -> (u16, std::sync::mpsc::Receiver<String>) {
    let (tx, rx) = std::sync::mpsc::channel::<String>();
    let out = child
        .stdout
        .take()
        .map(|s| Box::new(s) as Box<dyn std::io::Read + Send>);
    let err = child
        .stderr
        .take()
        .map(|s| Box::new(s) as Box<dyn std::io::Read + Send>);
    for stream in [out, err].into_iter().flatten() {
        let tx = tx.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stream).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
    }
    drop(tx);
    let deadline = Instant::now() + Duration::from_secs(20);
    while let Ok(line) = rx.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
        if !line.contains("cmo-api listening") {
            continue;
        }
        let v: serde_json::Value =
            serde_json::from_str(&line).unwrap_or_else(|e| panic!("a JSON log line: {e}: {line}"));
        let address = v["address"]
            .as_str()
            .or(v["fields"]["address"].as_str())
            .unwrap_or_else(|| panic!("address field in {line}"));
        let port = address
            .rsplit(':')
            .next()
            .and_then(|p| p.parse().ok())
            .unwrap_or_else(|| panic!("a port in {address}"));
        return (port, rx);
    }
    panic!("no \"cmo-api listening\" line within 20 s");
}

/// `cmo-api` serving a SQLite file in `dir` on a port of its own (port 0: no free-port
/// race), with JSON logs and `env` added; its port and log lines once it listens.
fn serve(
    dir: &tempfile::TempDir,
    env: &[(&str, &str)],
) -> (std::process::Child, u16, std::sync::mpsc::Receiver<String>) {
    let mut cmd = Command::new(BIN);
    cmd.env("DATABASE_URL", sqlite_url(dir))
        .env("CMO_BIND", "127.0.0.1:0")
        .env("CMO_LOG_FORMAT", "json")
        .env("CMO_HTTP_WORKERS", "1")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().unwrap_or_else(|e| panic!("start cmo-api: {e}"));
    let (port, log_lines) = listening_port(&mut child);
    (child, port, log_lines)
}

#[test]
fn serve_migrates_a_fresh_sqlite_file_and_stops_on_sigterm() {
    // REQ: ARCH-AUTO-MIGRATE, ARCH-TWO-COMMANDS
    let dir = tempfile::tempdir().unwrap();
    let (mut child, port, log_lines) = serve(&dir, &[("CMO_METRICS_TOKEN", "scrape-secret")]);
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut ready = None;
    while Instant::now() < deadline {
        if let Some(r) = http_get(port, "/readyz") {
            ready = Some(r);
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let ready = ready.expect("server came up");
    assert!(ready.starts_with("HTTP/1.1 200"), "{ready}");
    assert!(ready.contains(r#""database":"sqlite""#));
    assert!(
        dir.path().join("cmo.db").exists(),
        "the database file is created"
    );
    // Metrics answer only the scraper that carries the token.
    let open = http_get(port, "/metrics").expect("an answer");
    assert!(open.starts_with("HTTP/1.1 401"), "{open}");
    let mut scrape = TcpStream::connect(("127.0.0.1", port)).unwrap();
    scrape
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    write!(
        scrape,
        "GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer scrape-secret\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut scraped = String::new();
    scrape.read_to_string(&mut scraped).unwrap();
    assert!(scraped.starts_with("HTTP/1.1 200"), "{scraped}");
    assert!(scraped.contains("cmo_http_requests_total"), "{scraped}");

    // A token, so that the in-flight request below must be read to its end to be answered.
    let boot = bootstrap(&dir);
    assert!(boot.status.success(), "{boot:?}");
    let token = serde_json::from_slice::<serde_json::Value>(&boot.stdout).unwrap()["token"]
        .as_str()
        .unwrap()
        .to_string();
    // A request in flight when SIGTERM arrives: its head and half its body are sent...
    let mut in_flight = TcpStream::connect(("127.0.0.1", port)).unwrap();
    in_flight
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let body = r#"{"name": "sent across the shutdown"}"#;
    write!(
        in_flight,
        "POST /api/v1/tokens HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {token}\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{}",
        body.len(),
        &body[..10]
    )
    .unwrap();
    in_flight.flush().unwrap();
    // Let a worker take the connection and parse the head first: a connection still in
    // the accept queue at SIGTERM is not in flight (on a loaded machine the signal
    // could otherwise overtake it).
    std::thread::sleep(Duration::from_millis(300));
    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    // ... the server says it is shutting down (bounded wait on its log) ...
    let mut seen = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(10);
    while let Ok(line) = log_lines.recv_timeout(deadline.saturating_duration_since(Instant::now()))
    {
        let shutting_down = line.to_ascii_lowercase().contains("shutdown");
        seen.push(line);
        if shutting_down {
            break;
        }
    }
    assert!(
        seen.iter()
            .any(|l| l.to_ascii_lowercase().contains("shutdown")),
        "no shutdown log line: {seen:?}"
    );
    // ... and the rest of the body arrives after it: the request is still served (the
    // token is issued) before the process exits.
    in_flight.write_all(&body.as_bytes()[10..]).unwrap();
    let mut answer = String::new();
    let _ = in_flight.read_to_string(&mut answer);
    assert!(
        answer.starts_with("HTTP/1.1 201"),
        "the in-flight request was served: {answer:?}"
    );
    assert!(answer.contains("sent across the shutdown"), "{answer}");
    let deadline = Instant::now() + Duration::from_secs(20);
    let exit = loop {
        if let Some(exit) = child.try_wait().unwrap() {
            break exit;
        }
        assert!(Instant::now() < deadline, "did not stop after SIGTERM");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(exit.success(), "graceful stop exits 0: {exit:?}");
    let mut logs = seen;
    logs.extend(log_lines.iter());
    assert!(
        logs.iter().any(|l| l.contains("cmo-api stopped")),
        "{logs:?}"
    );
    let request_log = logs
        .iter()
        .find(|l| l.contains("request served"))
        .expect("request logged");
    let parsed: serde_json::Value = serde_json::from_str(request_log).expect("JSON log lines");
    assert!(
        parsed["request_id"].is_string() || parsed["span"]["request_id"].is_string(),
        "{parsed}"
    );
}

/// With a shutdown delay, SIGTERM first fails readiness (503 `shutting_down`) while
/// requests are still served, so a load balancer takes the replica out before its
/// listener closes; then the process stops cleanly.
#[test]
fn sigterm_fails_readiness_first_and_serves_through_the_shutdown_delay() {
    // REQ: OPS-PROBES
    let dir = tempfile::tempdir().unwrap();
    let (mut child, port, log_lines) = serve(&dir, &[("CMO_SHUTDOWN_DELAY_SECS", "2")]);
    let deadline = Instant::now() + Duration::from_secs(20);
    while http_get(port, "/readyz").is_none_or(|r| !r.starts_with("HTTP/1.1 200")) {
        assert!(Instant::now() < deadline, "never ready");
        std::thread::sleep(Duration::from_millis(50));
    }
    let signalled = Instant::now();
    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    // Bounded wait for the signal to be handled: readiness turns 503.
    let mut draining = None;
    while Instant::now() < signalled + Duration::from_secs(2) {
        let ready = http_get(port, "/readyz").expect("still listening while draining");
        if ready.starts_with("HTTP/1.1 503") {
            draining = Some(ready);
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let draining = draining.expect("readiness fails within the delay");
    assert!(draining.contains("shutting_down"), "{draining}");
    assert!(draining.contains("application/problem+json"), "{draining}");
    let health = http_get(port, "/healthz").expect("still serving while draining");
    assert!(health.starts_with("HTTP/1.1 200"), "{health}");
    let deadline = Instant::now() + Duration::from_secs(20);
    let exit = loop {
        if let Some(exit) = child.try_wait().unwrap() {
            break exit;
        }
        assert!(Instant::now() < deadline, "did not stop after the delay");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(exit.success(), "graceful stop exits 0: {exit:?}");
    assert!(
        signalled.elapsed() >= Duration::from_secs(2),
        "the listener stayed open for the 2 s delay ({:?})",
        signalled.elapsed()
    );
    let logs: Vec<String> = log_lines.iter().collect();
    assert!(
        logs.iter().any(|l| l.contains("drains this replica")),
        "{logs:?}"
    );
}

/// Started against a PostgreSQL that refuses connections, the api exits at once and says
/// so (not "pool timed out"), without the password of the URL.
#[test]
fn an_unreachable_database_is_named_at_start_up() {
    let started = Instant::now();
    let out = Command::new(BIN)
        .env(
            "DATABASE_URL",
            "postgres://cmo:pw-never-shown@127.0.0.1:1/cmo",
        )
        .env(
            "CMO_AUDIT_KEY",
            "7e57a0d17c4a1b2e3f405162738495a6b7c8d9eaf00112233445566778899aab",
        )
        .env("CMO_BIND", "127.0.0.1:0")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("cannot connect to PostgreSQL at postgres://cmo@127.0.0.1:1/cmo"),
        "{err}"
    );
    assert!(err.to_lowercase().contains("refused"), "{err}");
    assert!(!err.contains("pw-never-shown"), "{err}");
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "{:?}",
        started.elapsed()
    );
}

/// An online backup of the SQLite file restores to a database whose audit chains verify
/// once its key file is restored beside it (without it, the restored database is refused
/// rather than re-keyed); `verify-audit` fails on a copy that was edited afterwards.
#[test]
fn a_backup_restores_with_its_audit_chain_intact() {
    // REQ: OPS-BACKUP
    let dir = tempfile::tempdir().unwrap();
    assert!(bootstrap(&dir).status.success());
    let copy = dir.path().join("backup.db");
    let backup = Command::new(BIN)
        .args(["backup", copy.to_str().unwrap()])
        .env("DATABASE_URL", sqlite_url(&dir))
        .output()
        .unwrap();
    assert!(backup.status.success(), "{backup:?}");
    assert!(
        String::from_utf8_lossy(&backup.stdout).contains("cmo.db.audit-key is not in the backup"),
        "the backup says the key file must be kept apart: {backup:?}"
    );
    let again = Command::new(BIN)
        .args(["backup", copy.to_str().unwrap()])
        .env("DATABASE_URL", sqlite_url(&dir))
        .output()
        .unwrap();
    assert!(!again.status.success(), "never over an existing file");
    // Restored: the copy is the database.
    let restored = format!("sqlite://{}?mode=rw", copy.display());
    let verify = |url: &str| {
        Command::new(BIN)
            .arg("verify-audit")
            .env("DATABASE_URL", url)
            .output()
            .unwrap()
    };
    let keyless = verify(&restored);
    assert!(!keyless.status.success(), "{keyless:?}");
    assert!(
        String::from_utf8_lossy(&keyless.stderr).contains("key file"),
        "{keyless:?}"
    );
    assert!(
        !dir.path().join("backup.db.audit-key").exists(),
        "no new key is generated for a keyed database"
    );
    std::fs::copy(
        dir.path().join("cmo.db.audit-key"),
        dir.path().join("backup.db.audit-key"),
    )
    .unwrap();
    let ok = verify(&restored);
    assert!(ok.status.success(), "{ok:?}");
    let report: serde_json::Value = serde_json::from_slice(&ok.stdout).unwrap();
    assert_eq!(report[0]["intact"], true, "{report}");
    assert!(report[0]["checked"].as_u64().unwrap() >= 1, "{report}");
    // An edit to the copy shows.
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(async {
            use sea_orm::ConnectionTrait;
            let db = sea_orm::Database::connect(&restored).await.unwrap();
            db.execute_unprepared("UPDATE audit_events SET reason = 'edited' WHERE seq = 1")
                .await
                .unwrap();
            db.close().await.unwrap();
        });
    let broken = verify(&restored);
    assert!(!broken.status.success(), "{broken:?}");
    assert!(String::from_utf8_lossy(&broken.stderr).contains("audit chain not intact"));
}

/// After a restore from an older backup, a checkpoint kept from after the backup shows
/// what was lost (the chain is shorter than it), and `audit-checkpoint` re-anchors the
/// restored chains. Rotating the key keeps old rows verifiable and keys new ones.
#[test]
fn a_restore_is_shown_by_a_kept_checkpoint_and_re_anchored() {
    // REQ: AUDIT-CHECKPOINT, AUDIT-KEYED-CHAIN
    let dir = tempfile::tempdir().unwrap();
    assert!(bootstrap(&dir).status.success());
    let run = |url: &str, args: &[&str]| {
        Command::new(BIN)
            .args(args)
            .env("DATABASE_URL", url)
            .output()
            .unwrap()
    };
    let original = sqlite_url(&dir);
    let copy = dir.path().join("backup.db");
    assert!(
        run(&original, &["backup", copy.to_str().unwrap()])
            .status
            .success()
    );
    // After the backup: a new sponsor, and the night's checkpoint.
    let created = run(
        &original,
        &[
            "create-sponsor",
            "--org",
            "Beta Pharma",
            "--email",
            "admin@beta.test",
        ],
    );
    assert!(created.status.success(), "{created:?}");
    let taken = run(&original, &["audit-checkpoint", "--reason", "nightly"]);
    assert!(taken.status.success(), "{taken:?}");
    let taken: serde_json::Value = serde_json::from_slice(&taken.stdout).unwrap();
    let beta = taken
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["organization"] == "Beta Pharma")
        .expect("Beta's checkpoint")["checkpoint"]
        .clone();
    let kept = dir.path().join("kept.json");
    std::fs::write(&kept, beta.to_string()).unwrap();
    let on_original = run(
        &original,
        &["verify-audit", "--checkpoint", kept.to_str().unwrap()],
    );
    assert!(on_original.status.success(), "{on_original:?}");

    // Restored (with its key file): the kept checkpoint says what the restore lost.
    std::fs::copy(
        dir.path().join("cmo.db.audit-key"),
        dir.path().join("backup.db.audit-key"),
    )
    .unwrap();
    let restored = format!("sqlite://{}?mode=rw", copy.display());
    let shown = run(
        &restored,
        &["verify-audit", "--checkpoint", kept.to_str().unwrap()],
    );
    assert!(!shown.status.success(), "{shown:?}");
    assert!(
        String::from_utf8_lossy(&shown.stderr).contains("restored from a backup older"),
        "{shown:?}"
    );
    let anchored = run(
        &restored,
        &[
            "audit-checkpoint",
            "--reason",
            "restored from the backup of this morning",
        ],
    );
    assert!(anchored.status.success(), "{anchored:?}");

    // Rotation: a second key in the file; old rows verify, new rows use the new key.
    let before = run(&original, &["audit-key", "show"]);
    let before: serde_json::Value = serde_json::from_slice(&before.stdout).unwrap();
    assert_eq!(before.as_array().unwrap().len(), 1);
    let rotated = run(&original, &["audit-key", "rotate"]);
    assert!(rotated.status.success(), "{rotated:?}");
    let after = run(&original, &["audit-key", "show"]);
    let after: serde_json::Value = serde_json::from_slice(&after.stdout).unwrap();
    assert_eq!(after.as_array().unwrap().len(), 2);
    assert_eq!(after[1]["current"], true);
    assert_ne!(after[1]["key_id"], before[0]["key_id"]);
    assert!(
        run(
            &original,
            &[
                "create-sponsor",
                "--org",
                "Gamma Bio",
                "--email",
                "admin@gamma.test"
            ]
        )
        .status
        .success()
    );
    let verified = run(&original, &["verify-audit"]);
    assert!(verified.status.success(), "{verified:?}");
    let key_ids = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(async {
            use sea_orm::{ConnectionTrait, Statement};
            let db = sea_orm::Database::connect(&original).await.unwrap();
            let rows = db
                .query_all_raw(Statement::from_string(
                    sea_orm::DbBackend::Sqlite,
                    "SELECT DISTINCT key_id FROM audit_events",
                ))
                .await
                .unwrap();
            rows.len()
        });
    assert_eq!(key_ids, 2, "rows of both keys");
}
