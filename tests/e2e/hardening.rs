//! Holes a security review found, each closed: addresses the mailer would misroute,
//! line breaks in one-line fields, dates no calendar can hold, single-use links in
//! another spelling.

use e2e::smtp::SmtpSink;
use e2e::{TestApp, on_both_databases};
use sea_orm::EntityTrait;
use serde_json::json;
use worker::jobs::escalations::escalation_pass;

use crate::escalations::{ack_link, critical_deviation, deliver, settings, team};
use crate::programs::program_setup;

async fn addresses_the_mailer_would_misroute_are_refused(app: &TestApp) {
    // REQ: SEC-BARE-ADDRESSES
    for email in [
        "a,b@x.test",
        "victim.test<redirect@evil.test>",
        "\"quoted\"@x.test",
        "a@x.test;b@y.test",
    ] {
        let refused = app
            .admin()
            .post(
                "/api/v1/invitations",
                json!({"email": email, "display_name": "Mallory", "role": "viewer"}),
            )
            .await
            .expect_problem(422, "validation_failed");
        assert_eq!(refused.body["errors"][0]["field"], "email", "{email}");
    }
    app.admin()
        .post(
            "/api/v1/invitations",
            json!({"email": "first.o'brien+cmo@sub.acme-bio.test", "display_name": "Fiona", "role": "viewer"}),
        )
        .await
        .expect(201);
}
on_both_databases!(addresses_the_mailer_would_misroute_are_refused);

async fn one_line_fields_refuse_line_breaks_and_dates_stay_representable(app: &TestApp) {
    // REQ: SEC-ONE-LINE-FIELDS
    let s = program_setup(app).await;
    let deviations = format!("/api/v1/programs/{}/deviations", s.program_id);
    let refused = s
        .pm
        .post(
            &deviations,
            json!({"title": "Filter\r\nBcc: x@evil.test", "description": "d", "detected_at": app.now(),
                   "criticality": "minor", "category": "documentation"}),
        )
        .await
        .expect_problem(422, "validation_failed");
    assert_eq!(refused.body["errors"][0]["field"], "title");
    assert_eq!(refused.body["errors"][0]["code"], "invalid_characters");
    // A description keeps its lines.
    s.pm.post(
        &deviations,
        json!({"title": "Filter", "description": "first line\nsecond line", "detected_at": app.now(),
               "criticality": "minor", "category": "documentation"}),
    )
    .await
    .expect(201);
    // REQ: SEC-DATE-RANGE
    let items = format!("/api/v1/programs/{}/action-items", s.program_id);
    let far =
        s.pm.post(
            &items,
            json!({"title": "Someday", "owner_user_id": s.pm_id, "due_date": "9999-12-31"}),
        )
        .await
        .expect_problem(422, "validation_failed");
    assert_eq!(far.body["errors"][0]["field"], "due_date");
    assert_eq!(far.body["errors"][0]["code"], "out_of_range");
    s.pm.post(
        &items,
        json!({"title": "Far but fine", "owner_user_id": s.pm_id, "due_date": "2199-12-31"}),
    )
    .await
    .expect(201);
    // The calendar stays valid: every line folded, every date eight digits.
    let url = s.pm.get("/api/v1/me/calendar").await.expect(200).body["url"]
        .as_str()
        .unwrap()
        .to_string();
    let path = url.trim_start_matches(&app.base_url);
    let feed = app.anonymous().get(path).await.expect(200).text;
    assert!(feed.contains("DTSTART;VALUE=DATE:21991231"), "{feed}");
    assert!(feed.contains("DTEND;VALUE=DATE:22000101"), "{feed}");
}
on_both_databases!(one_line_fields_refuse_line_breaks_and_dates_stay_representable);

async fn a_used_ack_link_works_in_no_other_spelling(app: &TestApp) {
    // REQ: ESC-ACK
    let t = team(app).await;
    critical_deviation(app, &t).await;
    escalation_pass(&app.job_context("w1"), app.now(), &settings())
        .await
        .unwrap();
    let sink = SmtpSink::start().await;
    deliver(app, &sink, app.now()).await;
    sink.wait_for(1).await;
    let link = ack_link(&sink, "qa@acme.test", 1);
    let anon = app.anonymous();
    anon.send_raw(anon.request(awc::http::Method::POST, &link), "")
        .await
        .expect(200);
    let (path, token) = link.split_once("token=").unwrap();
    let (payload, mac) = token.split_once('.').unwrap();
    for respelled in [
        token.to_uppercase(),
        format!("{}.{mac}", payload.to_uppercase()),
        format!("{payload}.{}", mac.to_uppercase()),
    ] {
        let again = anon
            .send_raw(
                anon.request(awc::http::Method::POST, &format!("{path}token={respelled}")),
                "",
            )
            .await;
        assert_eq!(again.status, 400, "{respelled}: {}", again.text);
    }
}
on_both_databases!(a_used_ack_link_works_in_no_other_spelling);

/// An inspector of a sponsor's program sees who changed what on both sides, signatures
/// included, security events not, and takes it away as one file with both chains'
/// verification.
async fn a_programs_audit_trail_spans_sponsor_and_cmo(app: &TestApp) {
    // REQ: AUDIT-PROGRAM-TRAIL
    let s = program_setup(app).await;
    let p = s.program_id;
    // The CMO reports; the sponsor's PM adds an action item.
    s.cmo_admin
        .post(
            &format!("/api/v1/programs/{p}/deviations"),
            json!({"title": "Torn label roll", "description": "d", "detected_at": app.now(),
                   "criticality": "minor", "category": "documentation"}),
        )
        .await
        .expect(201);
    s.pm.post(
        &format!("/api/v1/programs/{p}/action-items"),
        json!({"title": "Order new rolls", "owner_user_id": s.pm_id, "due_date": app.today_in("Europe/Zurich")}),
    )
    .await
    .expect(201);
    // A failed signature attempt is the signer's organization's security event only.
    let m = s
        .pm
        .post(
            &format!("/api/v1/programs/{p}/milestones"),
            json!({"name": "Labels", "phase": "Readiness", "baseline_start": app.today_in("Europe/Zurich"),
                   "baseline_end": app.today_in("Europe/Zurich")}),
        )
        .await
        .expect(201)
        .body;
    let id = m["id"].as_i64().unwrap();
    crate::plan::transition(&s.pm, id, "start")
        .await
        .expect(200);
    crate::plan::transition(&s.pm, id, "submit_for_gate")
        .await
        .expect(200);
    s.pm.post(
        &format!("/api/v1/milestones/{id}/gate-decisions"),
        json!({"decision": "go", "password": "not my password at all"}),
    )
    .await
    .expect_problem(401, "invalid_password");
    s.pm.post(
        &format!("/api/v1/milestones/{id}/gate-decisions"),
        json!({"decision": "go", "password": crate::OWN_PASSWORD}),
    )
    .await
    .expect(201);

    let path = format!("/api/v1/programs/{p}/audit-trail");
    for (who, client) in [("sponsor", &s.pm), ("cmo", &s.cmo_admin)] {
        let trail = client.get(&path).await.expect(200);
        assert!(
            trail
                .header("content-disposition")
                .is_some_and(|d| d.starts_with("attachment;")),
            "{who}"
        );
        let body = trail.body;
        let entries = body["entries"].as_array().unwrap();
        let has = |side: &str, entity: &str, action: &str| {
            entries
                .iter()
                .any(|e| e["side"] == side && e["entity_type"] == entity && e["action"] == action)
        };
        assert!(has("cmo", "deviation", "report"), "{who}: {body}");
        assert!(has("sponsor", "action_item", "create"), "{who}: {body}");
        assert!(has("sponsor", "gate_decision", "decide"), "{who}: {body}");
        assert!(has("sponsor", "signature", "sign"), "{who}: the signature");
        assert!(
            !entries.iter().any(|e| e["action"] == "sign_failed"),
            "{who}: security events stay with their organization"
        );
        assert_eq!(body["sponsor_chain"]["intact"], true);
        assert_eq!(body["cmo_chain"]["intact"], true);
    }
    let csv = s
        .cmo_admin
        .get(&format!("{path}?format=csv"))
        .await
        .expect(200);
    assert!(csv.header("content-type").unwrap().starts_with("text/csv"));
    assert!(csv.text.contains("# sponsor chain: intact"), "{}", csv.text);
    assert!(csv.text.contains("# cmo chain: intact"));
    assert!(csv.text.contains("\"cmo\",") && csv.text.contains("\"report\""));
    let (_, _, other) =
        crate::partner_org(app, "Other Sponsor", "sponsor", "boss@other.test").await;
    app.client(&other)
        .get(&path)
        .await
        .expect_problem(404, "not_found");
}
on_both_databases!(a_programs_audit_trail_spans_sponsor_and_cmo);

/// A recipient whose stored address cannot be mailed (written before addresses were
/// checked) is never paged and never counts as paged: the escalation says so, and a tier
/// of only such people is skipped at once instead of waited on.
async fn an_unmailable_recipient_is_shown_and_never_counts_as_paged(app: &TestApp) {
    // REQ: SEC-BARE-ADDRESSES
    let t = team(app).await;
    store_email_behind_the_api(app, t.qa_id, "qa,other@acme.test").await;
    let (_, e) = critical_deviation(app, &t).await;
    let report = escalation_pass(&app.job_context("w1"), app.now(), &settings())
        .await
        .unwrap();
    assert_eq!(report.skipped, 1, "{report:?}");
    let rows = entity::outbox::Entity::find().all(&app.db).await.unwrap();
    assert!(
        rows.iter().all(|r| !r.to_addrs.contains("qa,other")),
        "never mailed"
    );
    assert!(
        rows.iter()
            .any(|r| r.to_addrs.contains("lead@acme.test")
                && r.subject.contains("escalation tier 2")),
        "the next tier is paged at once"
    );
    let detail =
        t.s.pm
            .get(&format!("/api/v1/escalations/{}", e.id))
            .await
            .expect(200)
            .body;
    let kinds: Vec<&str> = detail["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["kind"].as_str().unwrap())
        .collect();
    assert!(kinds.contains(&"unmailable"), "{detail}");
    assert!(kinds.contains(&"skipped"), "{detail}");
}
on_both_databases!(an_unmailable_recipient_is_shown_and_never_counts_as_paged);

/// A page the mail server refuses for good after it was queued (a mailbox that does not
/// exist) is shown on the escalation with the server's reply, and since nobody on the
/// tier was reached, the next tier is paged at once instead of after the tier's wait.
async fn a_page_refused_by_the_mail_server_is_shown_and_the_next_tier_paged(app: &TestApp) {
    // REQ: SEC-BARE-ADDRESSES
    let t = team(app).await;
    // A bare, plausible address whose mailbox the server refuses.
    store_email_behind_the_api(app, t.qa_id, "qa@refused.test").await;
    let sink = SmtpSink::start().await;
    let (_, e) = critical_deviation(app, &t).await;
    let ctx = app.job_context("w1");
    let first = escalation_pass(&ctx, app.now(), &settings()).await.unwrap();
    assert_eq!(first.pages, 1, "tier 1 paged (queued): {first:?}");
    deliver(app, &sink, app.now()).await;
    assert!(sink.received().is_empty(), "refused for good");
    // Same instant: no waiting for the tier's 15 minutes.
    let second = escalation_pass(&ctx, app.now(), &settings()).await.unwrap();
    assert_eq!(second.pages, 1, "the next tier at once: {second:?}");
    deliver(app, &sink, app.now()).await;
    let received = sink.wait_for(1).await;
    assert!(
        received
            .iter()
            .any(|m| m.to.iter().any(|to| to == "lead@acme.test")),
        "the lead is paged"
    );
    let detail =
        t.s.pm
            .get(&format!("/api/v1/escalations/{}", e.id))
            .await
            .expect(200)
            .body;
    let undeliverable = detail["events"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["kind"] == "undeliverable")
        .unwrap_or_else(|| panic!("{detail}"))
        .clone();
    let text = undeliverable.to_string();
    assert!(text.contains("qa@refused.test"), "{text}");
    assert!(
        text.contains("mailbox unavailable"),
        "the server's reply: {text}"
    );
}
on_both_databases!(a_page_refused_by_the_mail_server_is_shown_and_the_next_tier_paged);

/// Writes a person's stored email directly (as an older version, or an address the mail
/// server later refuses, would have it), past the API's checks.
async fn store_email_behind_the_api(app: &TestApp, user_id: i64, email: &str) {
    use sea_orm::ConnectionTrait;
    app.db
        .execute_unprepared(&format!(
            "UPDATE users SET email = '{email}' WHERE id = {user_id}"
        ))
        .await
        .unwrap();
}
