//! The validation pack's checks against a running installation: the installation check
//! (`cmo-api verify-install`).

use e2e::smtp::SmtpSink;
use e2e::{TestApp, on_both_databases};
use serde_json::Value;
use sha2::{Digest, Sha256};

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
