//! A throwaway PostgreSQL cluster for the tests: `initdb` + `pg_ctl` from the installed
//! binaries into a temp dir, listening on a free loopback port, one per test process,
//! with a fresh database per test. A watchdog process stops the cluster and removes its
//! directory when the test process exits, however it exits.
//!
//! Without PostgreSQL binaries the tests print a skip line; with `CMO_REQUIRE_POSTGRES=1`
//! (CI) that is a failure instead.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;

pub const REQUIRE_ENV: &str = "CMO_REQUIRE_POSTGRES";

pub struct Cluster {
    pub port: u16,
    pub dir: PathBuf,
    bin: PathBuf,
    data: PathBuf,
    options: String,
}

static CLUSTER: OnceLock<Result<Cluster, String>> = OnceLock::new();

fn required() -> bool {
    std::env::var(REQUIRE_ENV).is_ok_and(|v| v == "1" || v.eq_ignore_ascii_case("true"))
}

/// A cluster of its own (for tests that stop and restart PostgreSQL), or `None` when
/// PostgreSQL is not installed (a failure under `CMO_REQUIRE_POSTGRES=1`). Stopped and
/// deleted when the test process exits.
pub fn private_cluster() -> Option<Cluster> {
    private_cluster_with(200)
}

/// [`private_cluster`] with PostgreSQL's `max_connections` set (100 is its default: what
/// a deployment that did not tune it has).
pub fn private_cluster_with(max_connections: u32) -> Option<Cluster> {
    match start(max_connections) {
        Ok(cluster) => Some(cluster),
        Err(why) => {
            if required() {
                panic!("PostgreSQL is required ({REQUIRE_ENV}=1) but unavailable: {why}");
            }
            eprintln!("SKIP postgres: {why} (set {REQUIRE_ENV}=1 to make this a failure)");
            None
        }
    }
}

impl Cluster {
    /// `pg_ctl stop -m fast`: sessions are terminated, the server shuts down.
    pub fn stop(&self) -> Result<(), String> {
        let output = pg_command(&self.bin, "pg_ctl")
            .arg("-D")
            .arg(&self.data)
            .args(["-m", "fast", "-w", "-t", "30", "stop"])
            .stdin(Stdio::null())
            .output()
            .map_err(|e| format!("pg_ctl: {e}"))?;
        if output.status.success() {
            Ok(())
        } else {
            Err(String::from_utf8_lossy(&output.stderr).into_owned())
        }
    }

    /// Starts it again on the same port and data.
    pub fn restart(&self) -> Result<(), String> {
        run_pg_ctl_start(&self.bin, &self.data, &self.options, &self.dir)
    }

    pub fn url(&self, database: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{database}", self.port)
    }
}

/// The shared cluster, started on first use.
pub fn cluster() -> Option<&'static Cluster> {
    match CLUSTER.get_or_init(|| start(200)) {
        Ok(cluster) => Some(cluster),
        Err(why) => {
            if required() {
                panic!("PostgreSQL is required ({REQUIRE_ENV}=1) but unavailable: {why}");
            }
            eprintln!("SKIP postgres: {why} (set {REQUIRE_ENV}=1 to make this a failure)");
            None
        }
    }
}

/// A URL to a new, empty database in the shared cluster.
pub async fn fresh_database_url() -> Option<String> {
    let cluster = cluster()?;
    let name = format!("t_{}", uuid_like());
    let admin_url = format!("postgres://postgres@127.0.0.1:{}/postgres", cluster.port);
    let db = sea_orm::Database::connect(&admin_url)
        .await
        .expect("connect to test cluster");
    sea_orm::ConnectionTrait::execute_unprepared(&db, &format!("CREATE DATABASE {name}"))
        .await
        .expect("create test database");
    let _ = db.close().await;
    Some(format!(
        "postgres://postgres@127.0.0.1:{}/{name}",
        cluster.port
    ))
}

fn uuid_like() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    format!(
        "{}_{}_{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed),
        nanos
    )
}

fn bin_dir() -> Result<PathBuf, String> {
    if let Ok(dir) = std::env::var("CMO_PG_BIN") {
        return Ok(PathBuf::from(dir));
    }
    // Debian keeps the server binaries out of PATH, under /usr/lib/postgresql/<major>/bin.
    if let Ok(entries) = std::fs::read_dir("/usr/lib/postgresql") {
        let mut majors: Vec<PathBuf> = entries
            .filter_map(Result::ok)
            .map(|e| e.path().join("bin"))
            .filter(|p| p.join("initdb").exists() && p.join("pg_ctl").exists())
            .collect();
        majors.sort();
        if let Some(dir) = majors.pop() {
            return Ok(dir);
        }
    }
    if let Some(path) = std::env::var_os("PATH") {
        for dir in std::env::split_paths(&path) {
            if dir.join("initdb").exists() && dir.join("pg_ctl").exists() {
                return Ok(dir);
            }
        }
    }
    Err("no initdb/pg_ctl found (install the postgresql package)".to_string())
}

fn is_root() -> bool {
    // The effective uid from /proc, without unsafe libc calls.
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .and_then(|l| l.split_whitespace().nth(1).map(|uid| uid == "0"))
        })
        .unwrap_or(false)
}

/// Runs a PostgreSQL binary, as the `postgres` user when we are root (initdb refuses root).
fn pg_command(bin: &Path, tool: &str) -> Command {
    if is_root() {
        let mut cmd = Command::new("runuser");
        cmd.args(["-u", "postgres", "--"]).arg(bin.join(tool));
        cmd
    } else {
        Command::new(bin.join(tool))
    }
}

fn free_port() -> Result<u16, String> {
    let listener = TcpListener::bind("127.0.0.1:0").map_err(|e| e.to_string())?;
    listener
        .local_addr()
        .map(|a| a.port())
        .map_err(|e| e.to_string())
}

fn start(max_connections: u32) -> Result<Cluster, String> {
    let bin = bin_dir()?;
    let dir = std::env::temp_dir().join(format!("cmo-pg-{}", uuid_like()));
    std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
    if is_root() {
        let status = Command::new("chown")
            .args(["-R", "postgres:postgres"])
            .arg(&dir)
            .status()
            .map_err(|e| format!("chown: {e}"))?;
        if !status.success() {
            return Err("cannot hand the temp dir to the postgres user".to_string());
        }
    }
    let data = dir.join("data");
    let output = pg_command(&bin, "initdb")
        .arg("-D")
        .arg(&data)
        .args([
            "-U",
            "postgres",
            "--auth=trust",
            "-E",
            "UTF8",
            "--no-sync",
            "--locale=C",
        ])
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("initdb: {e}"))?;
    if !output.status.success() {
        return Err(format!(
            "initdb failed: {}",
            String::from_utf8_lossy(&output.stderr)
        ));
    }
    // PostgreSQL cannot bind port 0 and report it, so a free port is chosen and may be
    // taken by someone else before the server binds it: then another is tried.
    let mut attempt = 0;
    let (port, options) = loop {
        attempt += 1;
        let port = free_port()?;
        let options = format!(
            "-c listen_addresses=127.0.0.1 -p {port} -c unix_socket_directories={} -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections={max_connections}",
            dir.display()
        );
        match run_pg_ctl_start(&bin, &data, &options, &dir) {
            Ok(()) => break (port, options),
            Err(err) if attempt < 5 => eprintln!("PostgreSQL on port {port}: {err}; retrying"),
            Err(err) => return Err(err),
        }
    };
    spawn_watchdog(&bin, &dir, &data)?;
    eprintln!(
        "test PostgreSQL cluster on 127.0.0.1:{port} in {}",
        dir.display()
    );
    Ok(Cluster {
        port,
        dir,
        bin,
        data,
        options,
    })
}

fn run_pg_ctl_start(bin: &Path, data: &Path, options: &str, dir: &Path) -> Result<(), String> {
    let output = pg_command(bin, "pg_ctl")
        .arg("-D")
        .arg(data)
        .args(["-o", options, "-l"])
        .arg(dir.join("server.log"))
        .args(["-w", "-t", "30", "start"])
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("pg_ctl: {e}"))?;
    if !output.status.success() {
        let log = std::fs::read_to_string(dir.join("server.log")).unwrap_or_default();
        return Err(format!(
            "pg_ctl start failed: {} {log}",
            String::from_utf8_lossy(&output.stderr)
        ));
    }
    Ok(())
}

/// A shell loop that outlives nothing but this process: when it is gone, stop the
/// cluster and delete its files.
fn spawn_watchdog(bin: &Path, dir: &Path, data: &Path) -> Result<(), String> {
    let runas = if is_root() {
        "runuser -u postgres -- "
    } else {
        ""
    };
    let script = format!(
        "while kill -0 {pid} 2>/dev/null; do sleep 0.5; done; {runas}'{pg_ctl}' -D '{data}' -m immediate stop >/dev/null 2>&1; rm -rf '{dir}'",
        pid = std::process::id(),
        pg_ctl = bin.join("pg_ctl").display(),
        data = data.display(),
        dir = dir.display(),
    );
    Command::new("sh")
        .arg("-c")
        .arg(script)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map(|_| ())
        .map_err(|e| format!("watchdog: {e}"))
}
