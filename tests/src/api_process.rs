//! The real `cmo-api` binary as a child process on a test's database and at a test's
//! instant, so that a test can kill it in the middle of a request (a crash point,
//! `CMO_TEST_ABORT_AT`) and start it again.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::worker_process::binary;

/// A running `cmo-api`; killed (SIGKILL) when dropped.
pub struct ApiProcess {
    child: Child,
    pub base_url: String,
    /// Its log lines (JSON), read on a thread of their own.
    log: std::sync::mpsc::Receiver<String>,
}

impl ApiProcess {
    /// Starts `cmo-api` on `database_url` (already migrated) on a port of its own, its
    /// clock reading `clock_start` now; returns once it listens. `env` adds variables.
    pub fn start(
        database_url: &str,
        clock_start: chrono::DateTime<chrono::Utc>,
        env: &[(&str, &str)],
    ) -> ApiProcess {
        Self::start_binary(&binary("cmo-api"), database_url, clock_start, env)
    }

    /// [`ApiProcess::start`] of another build of `cmo-api` (the previous release).
    pub fn start_binary(
        bin: &std::path::Path,
        database_url: &str,
        clock_start: chrono::DateTime<chrono::Utc>,
        env: &[(&str, &str)],
    ) -> ApiProcess {
        let mut cmd = Command::new(bin);
        cmd.env("DATABASE_URL", database_url)
            .env("CMO_BIND", "127.0.0.1:0")
            .env("CMO_HTTP_WORKERS", "1")
            .env("CMO_LOG_FORMAT", "json")
            .env("CMO_LOG", "info")
            .env("CMO_ALLOW_TEST_CLOCK", "1")
            .env("CMO_TEST_CLOCK_START", clock_start.to_rfc3339())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        if database_url.starts_with("postgres") {
            cmd.env("CMO_AUDIT_KEY", crate::TEST_AUDIT_KEY);
        }
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().expect("start cmo-api");
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
        let deadline = Instant::now() + Duration::from_secs(30);
        let mut seen = Vec::new();
        while let Ok(line) = rx.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
            if line.contains("cmo-api listening") {
                let v: serde_json::Value = serde_json::from_str(&line)
                    .unwrap_or_else(|e| panic!("a JSON log line: {e}: {line}"));
                let address = v["address"]
                    .as_str()
                    .or(v["fields"]["address"].as_str())
                    .unwrap_or_else(|| panic!("address field in {line}"))
                    .to_string();
                return ApiProcess {
                    child,
                    base_url: format!("http://{address}"),
                    log: rx,
                };
            }
            seen.push(line);
        }
        let _ = child.kill();
        let _ = child.wait();
        panic!(
            "cmo-api did not listen within 30 s; its log:\n{}",
            seen.join("\n")
        );
    }

    /// A client of this process, with `token`.
    pub fn client(&self, token: &str) -> crate::Client {
        crate::Client::new(&self.base_url, Some(token))
    }

    /// The log lines written since the last call, waiting up to `wait` for the first.
    pub fn log_lines(&self, wait: Duration) -> Vec<String> {
        let mut lines: Vec<String> = self.log.recv_timeout(wait).into_iter().collect();
        lines.extend(self.log.try_iter());
        lines
    }

    /// Waits (bounded, 10 s) for the process to end on its own (a crash point); its
    /// status, and what it logged.
    pub async fn ended(&mut self) -> (Option<std::process::ExitStatus>, String) {
        let mut status = None;
        for _ in 0..200 {
            if let Ok(Some(s)) = self.child.try_wait() {
                status = Some(s);
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let log: Vec<String> = self.log.try_iter().collect();
        (status, log.join("\n"))
    }
}

impl Drop for ApiProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
