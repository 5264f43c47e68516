//! `cmo-api qualify`: the operational qualification (OQ) a customer runs against their
//! own installation. It creates a scratch sponsor and CMO marked as a validation run,
//! exercises the served API over HTTP as their people (probes, OpenAPI, tokens, errors,
//! qualification, a program with its plan, a deviation through triage to a signed
//! closure, tenancy, the audit trail and its chains, the record copy), deactivates both
//! organizations (their records stay) and writes a dated report naming each
//! requirement's result, as Markdown and JSON.

pub mod checks;
pub mod scratch;

use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use entity::clock::Clock;
use migration::startup::DatabaseArgs;
use serde::Serialize;

use checks::Outcome;

/// What the run writes.
#[derive(Debug, Serialize)]
pub struct Report {
    pub product: &'static str,
    pub version: &'static str,
    pub binary_sha256: String,
    pub base_url: String,
    pub database: String,
    pub started_at: DateTime<Utc>,
    pub finished_at: DateTime<Utc>,
    /// The scratch organizations: (id, name); deactivated at the end of the run.
    pub organizations: Vec<(i64, String)>,
    pub passed: usize,
    pub total: usize,
    /// `pass` when every check passed.
    pub result: &'static str,
    pub checks: Vec<Outcome>,
}

pub struct Options {
    /// The api's own address, e.g. `http://127.0.0.1:8080` (plain HTTP, from the host).
    pub base_url: String,
    pub report_dir: PathBuf,
}

/// Runs the qualification; `Err` (exit code 1) when a check failed.
pub fn run(database: &DatabaseArgs, clock: &dyn Clock, options: &Options) -> Result<(), String> {
    if !options.base_url.starts_with("http://") {
        return Err(
            "--base-url must be the api's own plain-HTTP address (http://host:port), as seen \
             from this host"
                .to_string(),
        );
    }
    std::fs::create_dir_all(&options.report_dir)
        .map_err(|e| format!("cannot create {}: {e}", options.report_dir.display()))?;
    let report = actix_web::rt::System::new().block_on(qualify(database, clock, options))?;
    let stem = format!("oq-report-{}", report.started_at.format("%Y%m%dT%H%M%SZ"));
    let markdown = options.report_dir.join(format!("{stem}.md"));
    let json = options.report_dir.join(format!("{stem}.json"));
    write(&markdown, &text(&report))?;
    write(
        &json,
        &serde_json::to_string_pretty(&report).map_err(|e| e.to_string())?,
    )?;
    print!("{}", text(&report));
    println!("\nreport: {} and {}", markdown.display(), json.display());
    if report.result == "pass" {
        Ok(())
    } else {
        Err(format!(
            "operational qualification failed: {} of {} checks passed",
            report.passed, report.total
        ))
    }
}

fn write(path: &Path, content: &str) -> Result<(), String> {
    std::fs::write(path, content).map_err(|e| format!("cannot write {}: {e}", path.display()))
}

async fn qualify(
    database: &DatabaseArgs,
    clock: &dyn Clock,
    options: &Options,
) -> Result<Report, String> {
    let (db, chain_keys) = crate::operator::open(database).await?;
    let started_at = clock.now();
    let scratch = scratch::create(&db, &chain_keys, started_at)
        .await
        .map_err(|e| format!("cannot create the run's organizations: {e}"))?;
    let http = checks::Http::new(&options.base_url);
    let mut outcomes = checks::run(&http, &scratch, started_at).await;
    // Deactivated whatever the checks found: a run leaves no one able to act. A failure
    // here is a failed check in the report, which is written all the same.
    match scratch::deactivate(
        &db,
        &chain_keys,
        [scratch.sponsor.id, scratch.cmo.id],
        clock.now(),
    )
    .await
    {
        Ok(()) => outcomes.push(checks::deactivated(&http, &scratch).await),
        Err(e) => outcomes.push(checks::Outcome {
            requirement: "SEC-TOKEN-LINEAGE",
            check: checks::DEACTIVATION,
            result: "fail",
            detail: format!(
                "cannot deactivate the run's organizations ({e}): deactivate organizations {} and {} by hand",
                scratch.sponsor.id, scratch.cmo.id
            ),
        }),
    }
    let passed = outcomes.iter().filter(|o| o.result == "pass").count();
    Ok(Report {
        product: "cmo-orchestrator",
        version: env!("CARGO_PKG_VERSION"),
        binary_sha256: crate::verify_install::binary().sha256,
        base_url: options.base_url.clone(),
        database: format!(
            "{} {}",
            migration::startup::backend_name(&db),
            crate::verify_install::mask_url(&database.database_url)
        ),
        started_at,
        finished_at: clock.now(),
        organizations: vec![
            (scratch.sponsor.id, scratch.sponsor.name.clone()),
            (scratch.cmo.id, scratch.cmo.name.clone()),
        ],
        passed,
        total: outcomes.len(),
        result: if passed == outcomes.len() {
            "pass"
        } else {
            "fail"
        },
        checks: outcomes,
    })
}

/// The report as Markdown: what ran where, then one row per check.
pub fn text(r: &Report) -> String {
    let mut out = format!(
        "# Operational qualification report\n\n\
         - Product: {} {}\n- Binary SHA-256: {}\n- Installation: {} on {}\n\
         - Run: {} to {} (UTC)\n- Scratch organizations (validation run, deactivated at the end, records kept): {}\n\
         - Result: **{}**, {} of {} checks passed\n\n\
         | # | requirement | check | result | detail |\n|---|---|---|---|---|\n",
        r.product,
        r.version,
        r.binary_sha256,
        r.base_url,
        r.database,
        r.started_at
            .to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        r.finished_at
            .to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        r.organizations
            .iter()
            .map(|(id, name)| format!("{name} (id {id})"))
            .collect::<Vec<_>>()
            .join(", "),
        r.result.to_uppercase(),
        r.passed,
        r.total
    );
    for (i, c) in r.checks.iter().enumerate() {
        out.push_str(&format!(
            "| {} | {} | {} | {} | {} |\n",
            i + 1,
            c.requirement,
            c.check,
            c.result.to_uppercase(),
            c.detail.replace('|', "\\|").replace('\n', " ")
        ));
    }
    out
}
