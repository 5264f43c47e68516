//! Deliveries signed per the Standard Webhooks specification verify with its published
//! reference library for Python (`standardwebhooks` from PyPI), for a secret issued now and
//! for one issued before (whsec_ and hex), exactly as a receiver would call it.

use std::io::Write;
use std::process::{Command, Stdio};

use e2e::hooks::{Hook, HookReceiver};
use e2e::{TestApp, on_both_databases};
use sea_orm::{ActiveModelTrait, ActiveValue::Set, EntityTrait, IntoActiveModel};

use crate::programs::program_setup;
use crate::webhooks::{pass, report_minor, subscribe};

/// Whether the reference library is installed; CI (`CMO_REQUIRE_STANDARD_WEBHOOKS=1`)
/// installs it and requires it, elsewhere the test says it skipped.
fn reference_library() -> bool {
    let found = Command::new("python3")
        .args(["-c", "import standardwebhooks"])
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !found && std::env::var("CMO_REQUIRE_STANDARD_WEBHOOKS").is_ok_and(|v| v == "1") {
        panic!(
            "the Standard Webhooks reference library is required (CMO_REQUIRE_STANDARD_WEBHOOKS=1): \
             python3 -m pip install standardwebhooks"
        );
    }
    if !found {
        eprintln!(
            "SKIP: python3 -m pip install standardwebhooks to verify with the reference library"
        );
    }
    found
}

/// What the reference library says of `hook` with `secret`: `Ok(payload)` or its error.
fn verify(secret: &str, hook: &Hook) -> Result<String, String> {
    let headers: serde_json::Map<String, serde_json::Value> = hook
        .headers
        .iter()
        .map(|(k, v)| (k.clone(), serde_json::Value::String(v.clone())))
        .collect();
    let script = r#"
import json, sys
from standardwebhooks import Webhook
headers = json.loads(sys.argv[2])
payload = Webhook(sys.argv[1]).verify(sys.stdin.buffer.read(), headers)
print(json.dumps(payload, sort_keys=True))
"#;
    let mut child = Command::new("python3")
        .args([
            "-c",
            script,
            secret,
            &serde_json::Value::Object(headers).to_string(),
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("python3");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(&hook.body)
        .expect("write the body");
    let out = child.wait_with_output().expect("python3 ran");
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).to_string())
    }
}

async fn deliveries_verify_with_the_standard_webhooks_reference_library(app: &TestApp) {
    // REQ: HOOK-STANDARD-WEBHOOKS
    if !reference_library() {
        return;
    }
    let s = program_setup(app).await;
    let admin = app.admin();
    let receiver = HookReceiver::start().await;
    let (_, secret) = subscribe(&admin, &receiver.url("/new"), &["deviation.reported"]).await;
    // Issued in the specification's form: whsec_ and base64 of 32 bytes.
    assert!(
        secret.starts_with("whsec_") && secret.len() == 50,
        "{secret}"
    );
    // A subscription from before, with a secret of the old form.
    let old_receiver = HookReceiver::start().await;
    let (old_sub, _) = subscribe(&admin, &old_receiver.url("/old"), &["deviation.reported"]).await;
    let old_secret = format!("whsec_{}", "5e".repeat(32));
    let mut row = entity::webhook::Entity::find_by_id(old_sub)
        .one(&app.db)
        .await
        .unwrap()
        .unwrap()
        .into_active_model();
    row.secret = Set(old_secret.clone());
    row.update(&app.db).await.unwrap();

    let d = report_minor(&s.pm, app, s.program_id, "Label misprint").await;
    pass(app, "w1", app.now()).await;
    let hook = &receiver.wait_for(1).await[0];
    let feed =
        s.pm.get("/api/v1/events?types=deviation.reported")
            .await
            .expect(200)
            .body;
    let event = &feed["items"][0];
    // The headers of the specification, the message id being the event's cursor.
    assert_eq!(
        hook.header("webhook-id"),
        Some(event["cursor"].to_string().as_str())
    );
    assert!(hook.header("webhook-signature").unwrap().starts_with("v1,"));
    let verified = verify(&secret, hook).expect("the reference library verifies the delivery");
    let payload: serde_json::Value = serde_json::from_str(&verified).unwrap();
    assert_eq!(payload["payload"]["deviation_id"], d["id"]);
    assert_eq!(&payload, event);
    // A wrong secret, or a body changed on the way, is refused.
    assert!(verify("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", hook).is_err());
    let mut tampered = hook.clone();
    tampered.body = hook
        .body
        .replace_first(b"Label misprint", b"Label misprinT");
    assert!(verify(&secret, &tampered).is_err());
    // The old secret works as is with the library.
    let old_hook = &old_receiver.wait_for(1).await[0];
    verify(&old_secret, old_hook).expect("a secret of the old form verifies unchanged");
    // The deprecated headers still come for one release.
    assert!(hook.signature_valid(&secret));
}
on_both_databases!(deliveries_verify_with_the_standard_webhooks_reference_library);

trait ReplaceFirst {
    fn replace_first(&self, from: &[u8], to: &[u8]) -> Vec<u8>;
}

impl ReplaceFirst for Vec<u8> {
    fn replace_first(&self, from: &[u8], to: &[u8]) -> Vec<u8> {
        let at = self
            .windows(from.len())
            .position(|w| w == from)
            .expect("the text to change is in the body");
        [&self[..at], to, &self[at + from.len()..]].concat()
    }
}
