//! The validation pack's checks against a running installation: the installation check
//! (`cmo-api verify-install`) and the copies of records for an inspector.

use e2e::smtp::SmtpSink;
use e2e::{Client, TestApp, on_both_databases};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::quality::{QA_PASSWORD, transition};
use crate::{live_in, user_with_token};

/// A minor deviation reported by the CMO and closed with Quinn's signature (quality, in
/// Zurich), with characters beyond ASCII in its text.
pub struct ClosedDeviation {
    pub setup: crate::programs::Setup,
    pub qa: Client,
    pub id: i64,
    pub reference: String,
}

pub async fn closed_deviation(app: &TestApp) -> ClosedDeviation {
    let setup = crate::programs::program_setup(app).await;
    let (qa_id, qa) = user_with_token(app, "quinn@acme.test", "quality", Some(QA_PASSWORD)).await;
    live_in(app, qa_id, "Europe/Zurich").await;
    let qa = app.client(&qa);
    let d = setup
        .cmo_admin
        .post(
            &format!("/api/v1/programs/{}/deviations", setup.program_id),
            json!({"title": "Label smudge on vial tray 3 (Zürich line, ≥ 5 µg/mL)",
                   "description": "Smudged lot number on the secondary label",
                   "detected_at": app.now(), "criticality": "minor", "category": "equipment",
                   "batch_lot": "LOT-Ω7", "process_step": "Labelling"}),
        )
        .await
        .expect(201)
        .body;
    let id = d["id"].as_i64().unwrap();
    transition(&qa, id, json!({"event": "triage"}))
        .await
        .expect(200);
    let path = format!("/api/v1/deviations/{id}");
    let current = qa.get(&path).await.body;
    qa.patch(
        &path,
        json!({"version": current["version"], "short_term_fix": "labels reprinted and checked",
               "reason": "fix applied"}),
    )
    .await
    .expect(200);
    // A mistyped password: a security event of the sponsor, in no copy.
    transition(&qa, id, json!({"event": "close", "password": "mistyped"}))
        .await
        .expect_problem(401, "invalid_password");
    let closed = transition(&qa, id, json!({"event": "close", "password": QA_PASSWORD}))
        .await
        .expect(200)
        .body;
    assert_eq!(closed["status"], "closed");
    ClosedDeviation {
        setup,
        qa,
        id,
        reference: closed["number"].as_str().unwrap().to_string(),
    }
}

/// Runs `cmo-api verify-install` on the app's database with `env`; exit code and stdout.
async fn verify_install(app: &TestApp, args: &[&str], env: &[(&str, &str)]) -> (i32, String) {
    let mut cmd = tokio::process::Command::new(e2e::worker_process::binary("cmo-api"));
    cmd.arg("verify-install")
        .args(args)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("DATABASE_URL", &app.database_url)
        .env("CMO_LOG", "warn");
    if app.database_url.starts_with("postgres") {
        cmd.env("CMO_AUDIT_KEY", e2e::TEST_AUDIT_KEY);
    }
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().await.expect("run cmo-api verify-install");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

async fn the_installation_check_reports_build_database_configuration_and_relay(app: &TestApp) {
    // REQ: VAL-VERIFY-INSTALL
    let sink = SmtpSink::start_with_auth("relay-user", "relay-s3cret").await;
    let smtp_url = format!(
        "smtp://relay-user:relay-s3cret@127.0.0.1:{}",
        sink.url().rsplit(':').next().unwrap()
    );
    let env = [
        ("CMO_SMTP_URL", smtp_url.as_str()),
        ("CMO_METRICS_TOKEN", "metrics-t0ken"),
        ("CMO_PUBLIC_BASE_URL", "https://cmo.example.test"),
    ];
    let (code, stdout) = verify_install(app, &["--json"], &env).await;
    assert_eq!(code, 0, "{stdout}");
    let report: Value = serde_json::from_str(&stdout).expect("the report is JSON");
    assert_eq!(report["result"], "pass", "{report:#}");
    assert_eq!(report["product"], "cmo-orchestrator");
    assert!(!report["version"].as_str().unwrap().is_empty());
    // The checksum is the binary's own, so a record of it identifies the build.
    let bytes = std::fs::read(e2e::worker_process::binary("cmo-api")).unwrap();
    assert_eq!(
        report["binary"]["sha256"],
        hex::encode(Sha256::digest(&bytes)),
        "{report:#}"
    );
    let migrations = &report["migrations"];
    assert_eq!(migrations["pending"], serde_json::json!([]));
    assert_eq!(migrations["known"], migrations["applied"]);
    assert!(migrations["known"].as_u64().unwrap() > 40, "{migrations}");
    let checks: Vec<(&str, &str)> = report["checks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| (c["name"].as_str().unwrap(), c["status"].as_str().unwrap()))
        .collect();
    assert_eq!(
        checks,
        [
            ("binary", "pass"),
            ("database", "pass"),
            ("migrations", "pass"),
            ("audit_keys", "pass"),
            ("smtp", "pass"),
        ],
        "{report:#}"
    );
    // Secrets are masked wherever the configuration is shown.
    let config = &report["configuration"];
    assert_eq!(config["CMO_METRICS_TOKEN"], "*** (set)");
    assert_eq!(config["CMO_PUBLIC_BASE_URL"], "https://cmo.example.test");
    assert!(
        config["CMO_SMTP_URL"]
            .as_str()
            .unwrap()
            .starts_with("smtp://relay-user:***@127.0.0.1:"),
        "{config}"
    );
    for secret in ["metrics-t0ken", "relay-s3cret", e2e::TEST_AUDIT_KEY] {
        assert!(!stdout.contains(secret), "{secret} in the report");
    }
    // The relay was asked, not used: nothing was sent.
    assert_eq!(sink.count(), 0);

    // The same as text for the installation record; a relay refusing the login fails it.
    let wrong = smtp_url.replace("relay-s3cret", "wrong");
    let env = [("CMO_SMTP_URL", wrong.as_str())];
    let (code, text) = verify_install(app, &[], &env).await;
    assert_eq!(code, 1, "{text}");
    assert!(text.contains("PASS  migrations"), "{text}");
    assert!(text.contains("FAIL  smtp"), "{text}");
    assert!(text.contains("result: FAIL"), "{text}");
    assert!(!text.contains("wrong@"), "{text}");

    // Without a relay the worker writes files: said, as a warning, not a failure.
    let (code, text) = verify_install(app, &[], &[]).await;
    assert_eq!(code, 0, "{text}");
    assert!(text.contains("WARN  smtp"), "{text}");
}
on_both_databases!(the_installation_check_reports_build_database_configuration_and_relay);

/// Splits CSV text into records of fields (quoted fields may hold commas and newlines).
fn csv_records(text: &str) -> Vec<Vec<String>> {
    let mut records = Vec::new();
    let (mut record, mut field, mut quoted) = (Vec::new(), String::new(), false);
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match (c, quoted) {
            ('"', true) if chars.peek() == Some(&'"') => {
                chars.next();
                field.push('"');
            }
            ('"', _) => quoted = !quoted,
            (',', false) => record.push(std::mem::take(&mut field)),
            ('\r', false) => {}
            ('\n', false) => {
                record.push(std::mem::take(&mut field));
                records.push(std::mem::take(&mut record));
            }
            (c, _) => field.push(c),
        }
    }
    records
}

async fn a_closed_deviation_copies_as_pdf_and_csv_with_signature_and_trail(app: &TestApp) {
    // REQ: VAL-RECORD-COPY
    let c = closed_deviation(app).await;
    let path = format!("/api/v1/deviations/{}/copy", c.id);

    let pdf = c.qa.get(&path).await.expect(200);
    assert_eq!(pdf.header("content-type"), Some("application/pdf"));
    assert!(pdf.bytes.starts_with(b"%PDF-"), "a PDF file");
    let disposition = pdf.header("content-disposition").unwrap();
    assert!(
        disposition.starts_with(&format!(
            "attachment; filename=\"deviation-{}-",
            c.reference
        )) && disposition.ends_with(".pdf\""),
        "{disposition}"
    );

    // The CMO, whose people reported it, reads the same copy; a stranger does not.
    c.setup.cmo_admin.get(&path).await.expect(200);
    let (_, _, stranger) =
        crate::partner_org(app, "Other Sponsor", "sponsor", "admin@other.test").await;
    app.client(&stranger)
        .get(&path)
        .await
        .expect_problem(404, "not_found");
    c.qa.get(&format!("{path}?format=docx"))
        .await
        .expect_problem(422, "validation_failed");

    let csv = c.qa.get(&format!("{path}?format=csv")).await.expect(200);
    assert_eq!(csv.header("content-type"), Some("text/csv; charset=utf-8"));
    let records = csv_records(&csv.text);
    assert_eq!(
        records[0],
        [
            "section",
            "side",
            "seq",
            "time_utc",
            "time_local",
            "who",
            "what",
            "reason",
            "value",
            "before",
            "after",
            "hash"
        ]
    );
    assert!(records.iter().all(|r| r.len() == 12), "{records:?}");
    let field = |name: &str| {
        records
            .iter()
            .find(|r| r[0] == "field" && r[6] == name)
            .map(|r| r[8].clone())
            .unwrap_or_else(|| panic!("no field {name} in {records:?}"))
    };
    assert_eq!(field("number"), c.reference);
    assert_eq!(field("status"), "closed");
    assert_eq!(
        field("title"),
        "Label smudge on vial tray 3 (Zürich line, ≥ 5 µg/mL)"
    );
    assert_eq!(field("batch_lot"), "LOT-Ω7");
    assert!(
        !records.iter().any(|r| r[6] == "allowed_events"),
        "the reader's affordances stay out"
    );

    // The signature as 11.50 shows it: printed name, meaning, time with its zone.
    let signatures: Vec<&Vec<String>> = records.iter().filter(|r| r[0] == "signature").collect();
    assert_eq!(signatures.len(), 1, "{records:?}");
    let s = signatures[0];
    assert_eq!(s[5], "quinn");
    assert_eq!(s[6], "Approved (deviation closure)");
    assert_eq!(s[8], "matches the record");
    assert!(
        s[4].contains("(UTC+0") && s[4].contains("Europe/Zurich"),
        "{s:?}"
    );
    assert_eq!(
        s[3],
        app.now()
            .to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
    );

    // The whole trail of both organizations: the CMO reported, the sponsor's quality did
    // the rest; the signature's own entry is there too.
    let trail: Vec<(&str, &str, &str)> = records
        .iter()
        .filter(|r| r[0] == "audit")
        .map(|r| (r[1].as_str(), r[5].as_str(), r[6].as_str()))
        .collect();
    let id = c.id;
    assert_eq!(
        trail,
        [
            (
                "cmo",
                "Partner Admin",
                format!("report deviation {id}").as_str()
            ),
            (
                "sponsor",
                "quinn",
                format!("triage deviation {id}").as_str()
            ),
            (
                "sponsor",
                "quinn",
                format!("update deviation {id}").as_str()
            ),
            (
                "sponsor",
                "quinn",
                format!("sign signature {}", s[2]).as_str()
            ),
            ("sponsor", "quinn", format!("close deviation {id}").as_str()),
        ]
    );
    let update = records
        .iter()
        .find(|r| r[0] == "audit" && r[6] == format!("update deviation {id}"))
        .unwrap();
    assert_eq!(update[7], "fix applied");
    assert!(
        update[8].contains("short_term_fix: (none) → labels reprinted and checked"),
        "{update:?}"
    );
    let chains: Vec<&String> = records
        .iter()
        .filter(|r| r[0] == "chain")
        .map(|r| &r[8])
        .collect();
    assert_eq!(chains.len(), 2);
    assert!(
        chains.iter().all(|c| c.starts_with("intact, ")),
        "{chains:?}"
    );
}
on_both_databases!(a_closed_deviation_copies_as_pdf_and_csv_with_signature_and_trail);

async fn capa_and_change_request_copy_with_their_trail(app: &TestApp) {
    // REQ: VAL-RECORD-COPY
    let o = crate::record_pages::one_of_each(app).await;
    let change_id = o
        .pages
        .iter()
        .find(|(kind, _, _)| *kind == entity::link_token::PageRecord::ChangeRequest)
        .map(|(_, id, _)| *id)
        .unwrap();
    for (path, entity, title) in [
        (
            format!("/api/v1/capas/{}/copy", o.capa_id),
            format!("capa {}", o.capa_id),
            "Replace the harvest tank gaskets",
        ),
        (
            format!("/api/v1/change-requests/{change_id}/copy"),
            format!("change_request {change_id}"),
            "Switch the depth filter supplier",
        ),
    ] {
        let pdf = o.setup.pm.get(&path).await.expect(200);
        assert!(pdf.bytes.starts_with(b"%PDF-"), "{path}");
        let csv = o
            .setup
            .pm
            .get(&format!("{path}?format=csv"))
            .await
            .expect(200);
        let records = csv_records(&csv.text);
        assert!(
            records
                .iter()
                .any(|r| r[0] == "field" && r[6] == "title" && r[8] == title),
            "{path}: {records:?}"
        );
        assert!(
            records
                .iter()
                .any(|r| r[0] == "audit" && r[6].ends_with(&entity)),
            "{path}: no entry of {entity} in {records:?}"
        );
        assert_eq!(records.iter().filter(|r| r[0] == "chain").count(), 2);
    }
}
on_both_databases!(capa_and_change_request_copy_with_their_trail);

/// The operational qualification as a customer runs it: `cmo-api qualify` against the
/// running api, on its database.
async fn the_operational_qualification_passes_and_deactivates_its_organizations(app: &TestApp) {
    // REQ: VAL-OQ
    use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = tokio::process::Command::new(e2e::worker_process::binary("cmo-api"));
    cmd.args(["qualify", "--base-url", &app.base_url, "--report-dir"])
        .arg(dir.path())
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("DATABASE_URL", &app.database_url)
        .env("CMO_LOG", "warn")
        .env("CMO_ALLOW_TEST_CLOCK", "1")
        .env("CMO_TEST_CLOCK_START", app.now().to_rfc3339());
    if app.database_url.starts_with("postgres") {
        cmd.env("CMO_AUDIT_KEY", e2e::TEST_AUDIT_KEY);
    }
    let out = cmd.output().await.expect("run cmo-api qualify");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("Result: **PASS**"), "{stdout}");

    // A dated report, as Markdown and JSON, naming each requirement's result.
    let mut files: Vec<String> = std::fs::read_dir(dir.path())
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    files.sort();
    let stamp = app.now().format("oq-report-%Y%m%dT").to_string();
    assert_eq!(files.len(), 2, "{files:?}");
    assert!(files.iter().all(|f| f.starts_with(&stamp)), "{files:?}");
    let json = files.iter().find(|f| f.ends_with(".json")).unwrap();
    let report: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.path().join(json)).unwrap()).unwrap();
    assert_eq!(report["result"], "pass", "{report:#}");
    let checks = report["checks"].as_array().unwrap();
    assert_eq!(checks.len(), api::oq::checks::PLAN.len() + 1);
    assert!(checks.iter().all(|c| c["result"] == "pass"), "{report:#}");
    for requirement in [
        "QE-CLOSE-RULES",
        "AUDIT-CHAIN",
        "TEN-404",
        "VAL-RECORD-COPY",
    ] {
        assert!(
            checks.iter().any(|c| c["requirement"] == requirement),
            "{requirement}"
        );
    }

    // Its organizations are marked and deactivated, their people too; what they recorded
    // stays (GxP records are never deleted).
    let orgs = entity::organization::Entity::find()
        .filter(entity::organization::Column::ValidationRun.eq(true))
        .all(&app.db)
        .await
        .unwrap();
    assert_eq!(orgs.len(), 2);
    assert!(orgs.iter().all(|o| o.deactivated_at.is_some()));
    let ids: Vec<i64> = orgs.iter().map(|o| o.id).collect();
    let people = entity::user::Entity::find()
        .filter(entity::user::Column::OrgId.is_in(ids.clone()))
        .all(&app.db)
        .await
        .unwrap();
    assert_eq!(people.len(), 3);
    assert!(people.iter().all(|u| !u.active));
    let deviations = entity::deviation::Entity::find()
        .filter(entity::deviation::Column::ReportedByUserId.is_in(people.iter().map(|u| u.id)))
        .all(&app.db)
        .await
        .unwrap();
    assert_eq!(deviations.len(), 1);
    assert_eq!(
        deviations[0].status,
        entity::deviation::DeviationStatus::Closed
    );
    // The installation's own organization is untouched and its chain still verifies.
    let verified = app
        .admin()
        .get("/api/v1/audit-events/verify")
        .await
        .expect(200)
        .body;
    assert_eq!(verified["intact"], true, "{verified}");
    let mine = app.admin().get("/api/v1/programs").await.expect(200).body;
    assert_eq!(
        mine["items"],
        json!([]),
        "the run's program is not the sponsor's"
    );
}
on_both_databases!(the_operational_qualification_passes_and_deactivates_its_organizations);
