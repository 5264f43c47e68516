//! The email outbox and its dispatcher, with a real SMTP server on 127.0.0.1.

use chrono::TimeDelta;
use e2e::smtp::SmtpSink;
use e2e::{TestApp, on_both_databases};
use entity::outbox::{self, Draft, OutboxStatus};
use lettre::message::Mailbox;
use sea_orm::EntityTrait;
use worker::jobs::outbox::{claim, dispatch};
use worker::outbound::mailer::Mailer;

fn from() -> Mailbox {
    "cmo-orchestrator <noreply@cmo.test>".parse().unwrap()
}

fn draft(key: &str) -> Draft {
    Draft {
        dedupe_key: key.to_string(),
        to: vec!["pm@acme.test".to_string()],
        cc: vec!["lead@acme.test".to_string()],
        subject: format!("Overdue actions ({key})"),
        text_body: "You have 2 overdue actions.".to_string(),
        html_body: "<p>You have <b>2</b> overdue actions.</p>".to_string(),
        list_unsubscribe: None,
    }
}

async fn a_queued_email_reaches_the_smtp_server_once(app: &TestApp) {
    // REQ: NOTIF-OUTBOX
    let now = app.now();
    assert!(
        outbox::enqueue(&app.db, draft("reminder:1:2027-01-04"), now, "cmo.test")
            .await
            .unwrap()
    );
    assert!(
        !outbox::enqueue(&app.db, draft("reminder:1:2027-01-04"), now, "cmo.test")
            .await
            .unwrap(),
        "deduplicated"
    );
    let sink = SmtpSink::start().await;
    let mailer = Mailer::new(Some(&sink.url()), std::env::temp_dir()).unwrap();
    let report = dispatch(&app.job_context("w1"), &mailer, &from(), now, 50)
        .await
        .unwrap();
    let first = outbox::Entity::find().one(&app.db).await.unwrap().unwrap();
    assert_eq!(report.sent, 1, "{:?}", first.last_error);
    let received = sink.wait_for(1).await;
    assert_eq!(received.len(), 1);
    let email = &received[0];
    assert_eq!(email.from, "noreply@cmo.test");
    let mut to = email.to.clone();
    to.sort();
    assert_eq!(to, ["lead@acme.test", "pm@acme.test"]);
    let row = outbox::Entity::find().one(&app.db).await.unwrap().unwrap();
    assert!(
        email
            .data
            .contains(&format!("Message-ID: {}", row.message_id)),
        "{}",
        email.data
    );
    assert!(
        email
            .data
            .contains("Subject: Overdue actions (reminder:1:2027-01-04)")
    );
    assert!(email.data.contains("multipart/alternative"));
    assert!(
        email.data.contains("Content-Type: text/plain")
            && email.data.contains("Content-Type: text/html")
    );
    assert_eq!(row.status, OutboxStatus::Sent);
    assert!(row.sent_at.is_some());
    // Nothing left to send.
    assert_eq!(
        dispatch(&app.job_context("w1"), &mailer, &from(), now, 50)
            .await
            .unwrap()
            .sent,
        0
    );
}
on_both_databases!(a_queued_email_reaches_the_smtp_server_once);

async fn the_file_transport_writes_readable_eml(app: &TestApp) {
    let dir = tempfile::tempdir().unwrap();
    outbox::enqueue(&app.db, draft("digest:7:2027-W02"), app.now(), "cmo.test")
        .await
        .unwrap();
    let mailer = Mailer::new(None, dir.path().to_path_buf()).unwrap();
    assert_eq!(
        dispatch(&app.job_context("w1"), &mailer, &from(), app.now(), 50)
            .await
            .unwrap()
            .sent,
        1
    );
    let files: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .filter_map(Result::ok)
        .collect();
    assert_eq!(files.len(), 1);
    let eml = std::fs::read_to_string(files[0].path()).unwrap();
    assert!(files[0].path().extension().is_some_and(|e| e == "eml"));
    assert!(eml.contains("Subject: Overdue actions (digest:7:2027-W02)"));
    assert!(eml.contains("You have 2 overdue actions."));
}
on_both_databases!(the_file_transport_writes_readable_eml);

async fn two_dispatchers_send_every_email_exactly_once(app: &TestApp) {
    // REQ: NOTIF-OUTBOX, NOTIF-MESSAGE-ID-ONCE
    let dir = tempfile::tempdir().unwrap();
    for n in 0..40 {
        outbox::enqueue(&app.db, draft(&format!("bulk:{n}")), app.now(), "cmo.test")
            .await
            .unwrap();
    }
    let mailer = Mailer::new(None, dir.path().to_path_buf()).unwrap();
    let (a, b) = (app.job_context("worker-a"), app.job_context("worker-b"));
    let sender = from();
    let mut sent = 0;
    for _ in 0..10 {
        let (ra, rb) = tokio::join!(
            dispatch(&a, &mailer, &sender, app.now(), 7),
            dispatch(&b, &mailer, &sender, app.now(), 7)
        );
        sent += ra.unwrap().sent + rb.unwrap().sent;
    }
    assert_eq!(sent, 40);
    assert_eq!(
        std::fs::read_dir(dir.path()).unwrap().count(),
        40,
        "no email written twice"
    );
}
on_both_databases!(two_dispatchers_send_every_email_exactly_once);

async fn an_unreachable_server_means_a_later_retry(app: &TestApp) {
    // REQ: NOTIF-OUTBOX
    outbox::enqueue(&app.db, draft("retry:1"), app.now(), "cmo.test")
        .await
        .unwrap();
    // A port of this test's that refuses connections until the server comes up on it.
    let (socket, port) = e2e::smtp::reserved_port();
    let mailer = Mailer::new(
        Some(&format!("smtp://127.0.0.1:{port}")),
        std::env::temp_dir(),
    )
    .unwrap();
    let now = app.now();
    let report = dispatch(&app.job_context("w1"), &mailer, &from(), now, 50)
        .await
        .unwrap();
    assert_eq!((report.sent, report.retried), (0, 1));
    let row = outbox::Entity::find().one(&app.db).await.unwrap().unwrap();
    assert_eq!((row.status, row.attempts), (OutboxStatus::Queued, 1));
    assert!(row.next_attempt_at > now && row.last_error.is_some());
    // Not due yet: nothing happens.
    assert_eq!(
        dispatch(&app.job_context("w1"), &mailer, &from(), now, 50)
            .await
            .unwrap(),
        Default::default()
    );
    // The server comes up; the retry time comes; it is delivered.
    let sink = SmtpSink::serve(socket.listen(128).unwrap());
    let later = now + TimeDelta::minutes(2);
    assert_eq!(
        dispatch(&app.job_context("w1"), &mailer, &from(), later, 50)
            .await
            .unwrap()
            .sent,
        1
    );
    assert_eq!(sink.wait_for(1).await.len(), 1);
}
on_both_databases!(an_unreachable_server_means_a_later_retry);

async fn a_claim_left_by_a_crashed_worker_is_taken_again(app: &TestApp) {
    // REQ: NOTIF-MESSAGE-ID-ONCE
    let dir = tempfile::tempdir().unwrap();
    outbox::enqueue(&app.db, draft("crash:1"), app.now(), "cmo.test")
        .await
        .unwrap();
    let now = app.now();
    // Worker A claims, then dies before sending.
    let claimed = claim(&app.job_context("worker-a"), now, 10, outbox::CLAIM_TTL)
        .await
        .unwrap();
    assert_eq!(claimed.len(), 1);
    let mailer = Mailer::new(None, dir.path().to_path_buf()).unwrap();
    // While A's claim holds, B leaves it alone; once it expires, B sends it.
    assert_eq!(
        dispatch(
            &app.job_context("worker-b"),
            &mailer,
            &from(),
            now + TimeDelta::seconds(10),
            10
        )
        .await
        .unwrap()
        .sent,
        0
    );
    let after = now + outbox::CLAIM_TTL + TimeDelta::seconds(1);
    assert_eq!(
        dispatch(&app.job_context("worker-b"), &mailer, &from(), after, 10)
            .await
            .unwrap()
            .sent,
        1
    );
    let eml = std::fs::read_dir(dir.path())
        .unwrap()
        .filter_map(Result::ok)
        .next()
        .unwrap();
    let text = std::fs::read_to_string(eml.path()).unwrap();
    assert!(
        text.contains(&claimed[0].message_id),
        "the same Message-ID as A would have sent"
    );
}
on_both_databases!(a_claim_left_by_a_crashed_worker_is_taken_again);

async fn a_refused_recipient_fails_for_good_with_the_reply(app: &TestApp) {
    let mut d = draft("refused:1");
    d.to = vec!["nobody@refused.test".to_string()];
    d.cc = vec![];
    outbox::enqueue(&app.db, d, app.now(), "cmo.test")
        .await
        .unwrap();
    let sink = SmtpSink::start().await;
    let mailer = Mailer::new(Some(&sink.url()), std::env::temp_dir()).unwrap();
    let report = dispatch(&app.job_context("w1"), &mailer, &from(), app.now(), 50)
        .await
        .unwrap();
    assert_eq!((report.sent, report.failed), (0, 1));
    let row = outbox::Entity::find().one(&app.db).await.unwrap().unwrap();
    assert_eq!(row.status, OutboxStatus::Failed);
    assert!(
        row.last_error
            .unwrap_or_default()
            .contains("mailbox unavailable")
    );
    assert!(sink.received().is_empty());
}
on_both_databases!(a_refused_recipient_fails_for_good_with_the_reply);

async fn smtp_auth_credentials_from_the_url_are_used_and_a_refused_login_is_retried(app: &TestApp) {
    let now = app.now();
    let sink = SmtpSink::start_with_auth("relay-user", "s3cr:t/pw").await;
    for key in ["auth:1", "auth:2", "auth:3"] {
        outbox::enqueue(&app.db, draft(key), now, "cmo.test")
            .await
            .unwrap();
    }
    // Credentials are percent-encoded in the URL, as lettre reads them.
    let good = Mailer::new(
        Some(&format!(
            "smtp://relay-user:s3cr%3At%2Fpw@127.0.0.1:{}",
            sink.port
        )),
        std::env::temp_dir(),
    )
    .unwrap();
    let report = dispatch(&app.job_context("w1"), &good, &from(), now, 50)
        .await
        .unwrap();
    assert_eq!(report.sent, 3);
    let received = sink.wait_for(3).await;
    assert!(
        received
            .iter()
            .all(|r| r.auth_user.as_deref() == Some("relay-user"))
    );

    outbox::enqueue(&app.db, draft("auth:4"), now, "cmo.test")
        .await
        .unwrap();
    let bad = Mailer::new(
        Some(&format!("smtp://relay-user:wrong@127.0.0.1:{}", sink.port)),
        std::env::temp_dir(),
    )
    .unwrap();
    let report = dispatch(&app.job_context("w1"), &bad, &from(), now, 50)
        .await
        .unwrap();
    assert_eq!(
        (report.failed, report.retried),
        (0, 1),
        "a refused login is the relay's or our configuration's problem, not the message's: retried"
    );
    let row = outbox::Entity::find()
        .all(&app.db)
        .await
        .unwrap()
        .into_iter()
        .find(|r| r.dedupe_key == "auth:4")
        .unwrap();
    assert_eq!(row.status, OutboxStatus::Queued);
    assert!(
        row.last_error
            .as_deref()
            .unwrap_or_default()
            .contains("535"),
        "{:?}",
        row.last_error
    );
    assert_eq!(sink.received().len(), 3);
    // Once the password is fixed, the queued email goes out.
    let report = dispatch(
        &app.job_context("w1"),
        &good,
        &from(),
        row.next_attempt_at,
        50,
    )
    .await
    .unwrap();
    assert_eq!(report.sent, 1);
    assert_eq!(sink.wait_for(4).await.len(), 4);
}
on_both_databases!(smtp_auth_credentials_from_the_url_are_used_and_a_refused_login_is_retried);

async fn pooled_connections_deliver_a_batch_concurrently_and_survive_a_server_restart(
    app: &TestApp,
) {
    let now = app.now();
    for n in 0..40 {
        outbox::enqueue(&app.db, draft(&format!("batch:{n}")), now, "cmo.test")
            .await
            .unwrap();
    }
    let sink = SmtpSink::start().await;
    let mailer = Mailer::new(Some(&sink.url()), std::env::temp_dir()).unwrap();
    let report = dispatch(&app.job_context("w1"), &mailer, &from(), now, 20)
        .await
        .unwrap();
    assert_eq!(report.sent, 20);
    let report = dispatch(&app.job_context("w1"), &mailer, &from(), now, 20)
        .await
        .unwrap();
    assert_eq!(report.sent, 20, "the pooled connections are reused");
    assert_eq!(sink.wait_for(40).await.len(), 40);
    // The server restarts: the pool's idle connections are dead. The next send notices
    // and goes through a fresh connection, without a retry round.
    sink.restart();
    for n in 40..45 {
        outbox::enqueue(&app.db, draft(&format!("batch:{n}")), now, "cmo.test")
            .await
            .unwrap();
    }
    let report = dispatch(&app.job_context("w1"), &mailer, &from(), now, 20)
        .await
        .unwrap();
    assert_eq!((report.sent, report.retried), (5, 0));
    let received = sink.wait_for(45).await;
    assert_eq!(received.len(), 45);
    let mut ids: Vec<String> = received
        .iter()
        .map(|r| r.parsed().message_id().unwrap_or_default().to_string())
        .collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 45, "distinct messages, none twice");
}
on_both_databases!(pooled_connections_deliver_a_batch_concurrently_and_survive_a_server_restart);

/// Job tests can read what a dispatch sent without an SMTP server: the memory mailer keeps
/// each message as it would go on the wire, and the row is marked sent like any other.
async fn the_memory_mailer_keeps_what_the_dispatcher_sent(app: &TestApp) {
    let now = app.now();
    outbox::enqueue(&app.db, draft("memory:1"), now, "cmo.test")
        .await
        .unwrap();
    let (mailer, sent) = Mailer::memory();
    let report = dispatch(&app.job_context("w1"), &mailer, &from(), now, 50)
        .await
        .unwrap();
    assert_eq!(report.sent, 1);
    let row = outbox::Entity::find().one(&app.db).await.unwrap().unwrap();
    assert_eq!(row.status, OutboxStatus::Sent);
    let messages = sent.messages();
    assert_eq!(messages.len(), 1);
    let m = &messages[0];
    assert!(
        m.contains(&format!("Message-ID: {}", row.message_id)),
        "{m}"
    );
    assert!(m.contains("Subject: Overdue actions (memory:1)"), "{m}");
    assert!(m.contains("multipart/alternative"), "{m}");
    // Sent once: a second pass finds nothing due.
    let again = dispatch(&app.job_context("w1"), &mailer, &from(), now, 50)
        .await
        .unwrap();
    assert_eq!((again.sent, sent.messages().len()), (0, 1));
}
on_both_databases!(the_memory_mailer_keeps_what_the_dispatcher_sent);

/// A worker restarted under the same id (a pod keeping its name) takes back the claims
/// its previous process left at once, instead of waiting for them to expire; its own
/// claims of this process are not touched.
async fn a_worker_restarted_under_its_id_takes_back_its_claims_at_once(app: &TestApp) {
    // REQ: NOTIF-MESSAGE-ID-ONCE
    let dir = tempfile::tempdir().unwrap();
    outbox::enqueue(&app.db, draft("restart:1"), app.now(), "cmo.test")
        .await
        .unwrap();
    let now = app.now();
    let claimed = claim(&app.job_context("worker-a"), now, 10, outbox::CLAIM_TTL)
        .await
        .unwrap();
    assert_eq!(claimed.len(), 1, "claimed, then the process dies");
    let mailer = Mailer::new(None, dir.path().to_path_buf()).unwrap();
    // The same process again, 10 s later: its claim is in flight, not taken twice.
    assert_eq!(
        dispatch(&app.job_context("worker-a"), &mailer, &from(), now, 10)
            .await
            .unwrap()
            .sent,
        0
    );
    // A new process under the same id, started 10 s later: sends it at once.
    let restarted = worker::jobs::JobContext {
        started_at: now + TimeDelta::seconds(10),
        ..app.job_context("worker-a")
    };
    let later = now + TimeDelta::seconds(10);
    assert_eq!(
        dispatch(&restarted, &mailer, &from(), later, 10)
            .await
            .unwrap()
            .sent,
        1
    );
}
on_both_databases!(a_worker_restarted_under_its_id_takes_back_its_claims_at_once);
