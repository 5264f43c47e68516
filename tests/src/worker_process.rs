//! The real `cmo-worker` binary as a child process, on a test's database and at a test's
//! instant (`--test-clock-start`), so a test can SIGKILL it mid-work.

use std::process::{Child, Command, Stdio};

/// A running `cmo-worker`; killed (SIGKILL) when dropped.
pub struct WorkerProcess {
    child: Child,
    pub worker_id: String,
    /// Its standard error, kept so that a failed stop can say why.
    log: tempfile::NamedTempFile,
}

/// A binary of the same build as the running binary (`cmo-worker`, `cmo-api`):
/// `target/<profile>/` holds it, beside a bench binary and one level above a test binary
/// (`deps/`). Built by `cargo test --workspace` and by `bench/run`.
pub fn binary(name: &str) -> std::path::PathBuf {
    let exe = std::env::current_exe().expect("test binary path");
    let candidates: Vec<std::path::PathBuf> = exe
        .ancestors()
        .skip(1)
        .take(2)
        .map(|dir| dir.join(name))
        .collect();
    candidates
        .iter()
        .find(|bin| bin.exists())
        .cloned()
        .unwrap_or_else(|| {
            panic!(
                "{name} is missing ({candidates:?}): run the tests with `cargo test --workspace`"
            )
        })
}

impl WorkerProcess {
    /// Starts a worker on `database_url` whose clock reads `clock_start` now, sending to
    /// the SMTP server `smtp_url`; reminder, digest and agreement schedules never come due
    /// (only what the test creates is sent). `env` adds or overrides variables.
    pub fn start(
        database_url: &str,
        smtp_url: &str,
        worker_id: &str,
        clock_start: chrono::DateTime<chrono::Utc>,
        env: &[(&str, &str)],
    ) -> WorkerProcess {
        let bin = binary("cmo-worker");
        Self::start_binary(&bin, database_url, smtp_url, worker_id, clock_start, env)
    }

    /// [`WorkerProcess::start`] of another build of `cmo-worker` (the previous release).
    pub fn start_binary(
        bin: &std::path::Path,
        database_url: &str,
        smtp_url: &str,
        worker_id: &str,
        clock_start: chrono::DateTime<chrono::Utc>,
        env: &[(&str, &str)],
    ) -> WorkerProcess {
        let never = "0 0 0 29 2 *";
        let mut cmd = Command::new(bin);
        cmd.env("DATABASE_URL", database_url)
            .env("CMO_SMTP_URL", smtp_url)
            .env("CMO_WORKER_ID", worker_id)
            .env("CMO_ALLOW_TEST_CLOCK", "1")
            .env("CMO_TEST_CLOCK_START", clock_start.to_rfc3339())
            .env("CMO_REMINDER_SCHEDULE", never)
            .env("CMO_DIGEST_SCHEDULE", never)
            .env("CMO_AGREEMENT_SCHEDULE", never)
            .env("CMO_CHECKPOINT_SCHEDULE", never)
            .env("CMO_CATCH_UP_MINUTES", "0")
            .env("CMO_HEARTBEAT_CRON", "* * * * * *")
            .env("CMO_DISPATCH_CRON", "* * * * * *")
            .env("CMO_LOG", "warn")
            // The tests' webhook receivers listen on loopback.
            .env("CMO_WEBHOOK_ALLOW_LOOPBACK", "true")
            .stdout(Stdio::null());
        let log = tempfile::NamedTempFile::new().expect("worker log file");
        cmd.stderr(log.reopen().expect("worker log file"));
        // On PostgreSQL the key is configuration, the same as the test app's; on SQLite
        // the worker finds the key file beside the database, as in production.
        if database_url.starts_with("postgres") {
            cmd.env("CMO_AUDIT_KEY", crate::TEST_AUDIT_KEY);
        }
        for (k, v) in env {
            cmd.env(k, v);
        }
        WorkerProcess {
            child: cmd.spawn().expect("start cmo-worker"),
            worker_id: worker_id.to_string(),
            log,
        }
    }

    /// Waits (bounded, 10 s) for the process to end on its own; its status.
    pub async fn exit_status(&mut self) -> Option<std::process::ExitStatus> {
        for _ in 0..200 {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Some(status);
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        None
    }

    /// SIGKILL: no shutdown, no cleanup, whatever it was doing.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Whether the process has installed its own SIGTERM handler yet (Linux: the
    /// `SigCgt` mask in `/proc/<pid>/status`, bit 15 for SIGTERM).
    pub fn catches_sigterm(&self) -> bool {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))
            .unwrap_or_default();
        status
            .lines()
            .find_map(|line| line.strip_prefix("SigCgt:"))
            .and_then(|mask| u64::from_str_radix(mask.trim(), 16).ok())
            .is_some_and(|mask| mask & (1 << (15 - 1)) != 0)
    }

    /// What the worker wrote to standard error so far (its warnings and errors).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.log.path()).unwrap_or_default()
    }

    /// SIGTERM, then its exit status (bounded wait); a worker that exits with an error
    /// prints its log, so that a failing test says why.
    pub async fn stop(mut self) -> std::process::ExitStatus {
        let pid = self.child.id().to_string();
        let _ = Command::new("kill").args(["-TERM", &pid]).status();
        for _ in 0..400 {
            if let Ok(Some(status)) = self.child.try_wait() {
                if !status.success() {
                    eprintln!(
                        "cmo-worker {} ended with {status}; its log:\n{}",
                        self.worker_id,
                        self.log()
                    );
                }
                return status;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        panic!(
            "cmo-worker {} did not stop within 20 s of SIGTERM",
            self.worker_id
        );
    }
}

impl Drop for WorkerProcess {
    fn drop(&mut self) {
        // TEST_LOG=1 (as for the api's logs) shows the worker's warnings too.
        if std::env::var_os("TEST_LOG").is_some() {
            eprintln!("cmo-worker {} log:\n{}", self.worker_id, self.log());
        }
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}
