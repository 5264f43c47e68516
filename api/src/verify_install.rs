//! `cmo-api verify-install`: the installation qualification an operator records. It says
//! which build runs (version, the binary's SHA-256), whether the database is reachable and
//! migrated to exactly this release, how the installation is configured (secrets masked),
//! whether the audit chain keys load and whether the SMTP relay takes a connection. It
//! reads only: nothing is migrated, created or sent.

use std::collections::BTreeMap;
use std::path::Path;

use entity::audit::KeyRing;
use entity::audit::key_store;
use migration::startup::DatabaseArgs;
use serde::Serialize;
use sha2::{Digest, Sha256};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    Pass,
    /// Works, but not as a GxP installation should run (e.g. email to files).
    Warn,
    Fail,
}

#[derive(Debug, Serialize)]
pub struct Check {
    pub name: &'static str,
    pub status: Status,
    pub detail: String,
}

#[derive(Debug, Serialize)]
pub struct Binary {
    pub path: String,
    pub sha256: String,
}

#[derive(Debug, Serialize)]
pub struct Migrations {
    /// Migrations this release has.
    pub known: usize,
    /// Applied in the database (this release's and any newer release's).
    pub applied: usize,
    pub pending: Vec<String>,
    /// Applied by a newer release (expand-only ones are run on).
    pub newer: Vec<String>,
}

#[derive(Debug, Serialize)]
pub struct Report {
    pub product: &'static str,
    pub version: &'static str,
    pub checked_at: String,
    pub binary: Binary,
    pub database_backend: String,
    pub database_url: String,
    pub migrations: Option<Migrations>,
    /// Every `CMO_*` variable and `DATABASE_URL` set in the environment; secrets masked.
    pub configuration: BTreeMap<String, String>,
    pub checks: Vec<Check>,
    /// `fail` when any check failed.
    pub result: Status,
}

/// What the check is told besides the database settings.
pub struct Options {
    /// The worker's relay (`CMO_SMTP_URL`), or none: email is written to files.
    pub smtp_url: Option<String>,
    pub outbox_dir: std::path::PathBuf,
    pub json: bool,
}

/// Runs every check and prints the report; an error (exit code 1) when one failed.
pub fn run(
    database: &DatabaseArgs,
    clock: &dyn entity::clock::Clock,
    options: &Options,
) -> Result<(), String> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    let env: Vec<(String, String)> = std::env::vars().collect();
    let report = runtime.block_on(check(database, options, &env, clock.now()));
    if options.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&report).map_err(|e| e.to_string())?
        );
    } else {
        print!("{}", text(&report));
    }
    match report.result {
        Status::Fail => Err("the installation check failed".to_string()),
        _ => Ok(()),
    }
}

pub async fn check(
    database: &DatabaseArgs,
    options: &Options,
    env: &[(String, String)],
    now: chrono::DateTime<chrono::Utc>,
) -> Report {
    let mut checks = Vec::new();
    let binary = binary();
    checks.push(Check {
        name: "binary",
        status: if binary.sha256.is_empty() {
            Status::Fail
        } else {
            Status::Pass
        },
        detail: format!("{} sha256 {}", binary.path, binary.sha256),
    });
    let backend = if database.database_url.starts_with("sqlite:") {
        "sqlite"
    } else {
        "postgres"
    };
    let migrations = check_database(database, &mut checks).await;
    checks.push(audit_keys(database));
    checks.push(relay(options).await);
    let result = if checks.iter().any(|c| c.status == Status::Fail) {
        Status::Fail
    } else {
        Status::Pass
    };
    Report {
        product: "cmo-orchestrator",
        version: env!("CARGO_PKG_VERSION"),
        checked_at: now.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        binary,
        database_backend: backend.to_string(),
        database_url: mask_url(&database.database_url),
        migrations,
        configuration: configuration(env),
        checks,
        result,
    }
}

/// This process's executable and its SHA-256.
pub fn binary() -> Binary {
    let path = std::env::current_exe().unwrap_or_default();
    let sha256 = std::fs::read(&path)
        .map(|bytes| hex::encode(Sha256::digest(&bytes)))
        .unwrap_or_default();
    Binary {
        path: path.display().to_string(),
        sha256,
    }
}

/// Reachability and migrations; the database is neither created nor migrated here.
async fn check_database(database: &DatabaseArgs, checks: &mut Vec<Check>) -> Option<Migrations> {
    if let Some(file) = database.sqlite_file()
        && !Path::new(&file).exists()
    {
        checks.push(Check {
            name: "database",
            status: Status::Fail,
            detail: format!("no database file at {file} (start cmo-api once to create it)"),
        });
        return None;
    }
    let db =
        match migration::startup::connect_pooled(&database.database_url, &database.pool(1)).await {
            Ok(db) => db,
            Err(e) => {
                checks.push(Check {
                    name: "database",
                    status: Status::Fail,
                    detail: format!("cannot connect: {e}"),
                });
                return None;
            }
        };
    match migration::startup::ping(&db).await {
        Ok(()) => checks.push(Check {
            name: "database",
            status: Status::Pass,
            detail: format!("{} answers", migration::startup::backend_name(&db)),
        }),
        Err(e) => {
            checks.push(Check {
                name: "database",
                status: Status::Fail,
                detail: format!("connected but a query failed: {e}"),
            });
            return None;
        }
    }
    let known = <migration::Migrator as migration::MigratorTrait>::migrations().len();
    let standing = migration::compat::standing(&db).await;
    let pending = migration::pending(&db).await;
    let (standing, pending) = match (standing, pending) {
        (Ok(s), Ok(p)) => (s, p),
        (Err(e), _) | (_, Err(e)) => {
            checks.push(Check {
                name: "migrations",
                status: Status::Fail,
                detail: format!("cannot read the applied migrations: {e}"),
            });
            return None;
        }
    };
    use migration::compat::Standing;
    let newer = match &standing {
        Standing::Known => Vec::new(),
        Standing::AheadCompatible(n) | Standing::AheadIncompatible(n) => n.clone(),
    };
    let migrations = Migrations {
        known,
        applied: known - pending.len() + newer.len(),
        pending,
        newer,
    };
    let (status, detail) = match standing {
        Standing::AheadIncompatible(n) => (
            Status::Fail,
            format!(
                "the database has {} migration(s) of a newer release this one cannot run on: {}",
                n.len(),
                n.join(", ")
            ),
        ),
        _ if !migrations.pending.is_empty() => (
            Status::Fail,
            format!(
                "{} of {} migrations pending: {}",
                migrations.pending.len(),
                known,
                migrations.pending.join(", ")
            ),
        ),
        Standing::AheadCompatible(n) => (
            Status::Warn,
            format!(
                "all {known} applied; also {} expand-only migration(s) of a newer release",
                n.len()
            ),
        ),
        Standing::Known => (Status::Pass, format!("all {known} applied, none pending")),
    };
    checks.push(Check {
        name: "migrations",
        status,
        detail,
    });
    Some(migrations)
}

/// The audit chain keys load from where this installation keeps them (ids only shown).
fn audit_keys(database: &DatabaseArgs) -> Check {
    let source = crate::operator::key_source(database);
    let loaded: Result<(KeyRing, String), String> = match (&source.keys, source.key_file()) {
        (Some(list), _) => KeyRing::parse_list(list).map(|r| (r, "CMO_AUDIT_KEY".to_string())),
        (None, Some(file)) => {
            key_store::read_key_file(&file).map(|r| (r, format!("the key file {}", file.display())))
        }
        (None, None) if source.in_memory => {
            return Check {
                name: "audit_keys",
                status: Status::Warn,
                detail: "in-memory database: a key for the life of the process".to_string(),
            };
        }
        (None, None) => {
            Err("no audit chain key configured (CMO_AUDIT_KEY or CMO_AUDIT_KEY_FILE)".to_string())
        }
    };
    match loaded {
        Ok((ring, from)) => Check {
            name: "audit_keys",
            status: Status::Pass,
            detail: format!(
                "{} key(s) from {from}, signing with {}",
                ring.keys().len(),
                ring.current().id()
            ),
        },
        Err(e) => Check {
            name: "audit_keys",
            status: Status::Fail,
            detail: e,
        },
    }
}

async fn relay(options: &Options) -> Check {
    let Some(url) = options.smtp_url.as_deref().filter(|u| !u.trim().is_empty()) else {
        return Check {
            name: "smtp",
            status: Status::Warn,
            detail: format!(
                "no CMO_SMTP_URL: the worker writes email as .eml files to {} instead of sending it",
                options.outbox_dir.display()
            ),
        };
    };
    let shown = mask_url(url);
    let config = match mail::smtp::SmtpConfig::from_url(url) {
        Ok(mut config) => {
            config.timeout = std::time::Duration::from_secs(10);
            config
        }
        Err(e) => {
            return Check {
                name: "smtp",
                status: Status::Fail,
                detail: format!("CMO_SMTP_URL {shown}: {e}"),
            };
        }
    };
    match mail::smtp::check_relay(&config).await {
        Ok(()) => Check {
            name: "smtp",
            status: Status::Pass,
            detail: format!(
                "{shown} accepted a connection (greeting, TLS and login as configured)"
            ),
        },
        Err(e) => Check {
            name: "smtp",
            status: Status::Fail,
            detail: format!("{shown}: {}", e.message),
        },
    }
}

/// A variable whose value is a secret by its name (a key file's path is not).
fn secret_name(name: &str) -> bool {
    !name.ends_with("_FILE")
        && ["KEY", "TOKEN", "SECRET", "PASSWORD"]
            .iter()
            .any(|word| name.contains(word))
}

/// A query parameter holding a secret (`?password=` is how libpq and sqlx also take one).
fn secret_parameter(name: &str) -> bool {
    let name = name.to_ascii_lowercase();
    ["password", "secret", "token"]
        .iter()
        .any(|word| name.contains(word))
}

/// A URL with its password, and any secret query parameter, replaced by `***`. A value
/// that does not read as a URL is not shown at all: it may hold a secret in a form this
/// cannot tell.
pub fn mask_url(value: &str) -> String {
    let Ok(mut url) = url::Url::parse(value) else {
        return "*** (not shown: not readable as a URL)".to_string();
    };
    let secret_query = url.query_pairs().any(|(name, _)| secret_parameter(&name));
    if url.password().is_none() && !secret_query {
        // Nothing to hide: shown exactly as configured.
        return value.to_string();
    }
    if url.password().is_some() {
        let _ = url.set_password(Some("***"));
    }
    if secret_query {
        let pairs: Vec<(String, String)> = url
            .query_pairs()
            .map(|(name, value)| {
                let shown = if secret_parameter(&name) {
                    "***".to_string()
                } else {
                    value.into_owned()
                };
                (name.into_owned(), shown)
            })
            .collect();
        url.query_pairs_mut().clear().extend_pairs(pairs);
    }
    url.to_string()
}

fn configuration(env: &[(String, String)]) -> BTreeMap<String, String> {
    env.iter()
        .filter(|(name, _)| name.starts_with("CMO_") || name == "DATABASE_URL")
        .map(|(name, value)| {
            let shown = if secret_name(name) {
                "*** (set)".to_string()
            } else if value.contains("://") {
                mask_url(value)
            } else {
                value.clone()
            };
            (name.clone(), shown)
        })
        .collect()
}

pub fn text(report: &Report) -> String {
    let mut out = format!(
        "{} {} installation check, {}\n\nbinary    {}\nsha256    {}\ndatabase  {} {}\n",
        report.product,
        report.version,
        report.checked_at,
        report.binary.path,
        report.binary.sha256,
        report.database_backend,
        report.database_url
    );
    if let Some(m) = &report.migrations {
        out.push_str(&format!(
            "migrations {} applied of {} known, {} pending\n",
            m.applied,
            m.known,
            m.pending.len()
        ));
    }
    out.push_str("\nconfiguration (secrets masked):\n");
    if report.configuration.is_empty() {
        out.push_str("  (defaults only)\n");
    }
    for (name, value) in &report.configuration {
        out.push_str(&format!("  {name}={value}\n"));
    }
    out.push_str("\nchecks:\n");
    for check in &report.checks {
        let status = match check.status {
            Status::Pass => "PASS",
            Status::Warn => "WARN",
            Status::Fail => "FAIL",
        };
        out.push_str(&format!(
            "  {status}  {:<11} {}\n",
            check.name, check.detail
        ));
    }
    out.push_str(&format!(
        "\nresult: {}\n",
        if report.result == Status::Fail {
            "FAIL"
        } else {
            "PASS"
        }
    ));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_masked_and_the_rest_shown() {
        let env = [
            ("CMO_AUDIT_KEY", "00ff"),
            ("CMO_AUDIT_KEY_FILE", "/etc/cmo/audit-key"),
            ("CMO_METRICS_TOKEN", "t0k"),
            (
                "CMO_SMTP_URL",
                "smtp://ana:s3cret@mail.x.test:587?tls=required",
            ),
            ("DATABASE_URL", "postgres://cmo:pw@db/cmo"),
            (
                "CMO_DB_READ_URL",
                "postgres://cmo@db/cmo?sslmode=require&password=qpw",
            ),
            ("CMO_OTHER_URL", "postgres://cmo:upw@[db/cmo"),
            ("CMO_BIND", "0.0.0.0:8080"),
            ("HOME", "/root"),
        ]
        .map(|(k, v)| (k.to_string(), v.to_string()));
        let shown = configuration(&env);
        assert_eq!(shown["CMO_AUDIT_KEY"], "*** (set)");
        assert_eq!(shown["CMO_METRICS_TOKEN"], "*** (set)");
        assert_eq!(shown["CMO_AUDIT_KEY_FILE"], "/etc/cmo/audit-key");
        assert_eq!(
            shown["CMO_SMTP_URL"],
            "smtp://ana:***@mail.x.test:587?tls=required"
        );
        assert_eq!(shown["DATABASE_URL"], "postgres://cmo:***@db/cmo");
        assert_eq!(
            shown["CMO_DB_READ_URL"],
            "postgres://cmo@db/cmo?sslmode=require&password=***"
        );
        assert!(shown["CMO_OTHER_URL"].starts_with("*** (not shown"));
        assert_eq!(shown["CMO_BIND"], "0.0.0.0:8080");
        assert!(!shown.contains_key("HOME"));
        let all = format!("{shown:?}");
        for secret in ["00ff", "t0k", "s3cret", ":pw@", "qpw", "upw"] {
            assert!(!all.contains(secret), "{secret} shown in {all}");
        }
    }
}
