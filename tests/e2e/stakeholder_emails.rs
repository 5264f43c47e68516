//! A week of a program with a critical deviation, through the worker's jobs and the real
//! SMTP sink: every link in every email (escalation page and notice, triage and
//! production notices, assignment, due soon, overdue reminder, digest) opens a page
//! made for people for its recipient, showing the record, and nothing of it for another
//! organization; a reader in Los Angeles reads Los Angeles times.

use std::collections::BTreeMap;

use chrono::TimeDelta;
use e2e::smtp::{Received, SmtpSink};
use e2e::{TestApp, on_both_databases, utc};
use sea_orm::EntityTrait;
use serde_json::json;
use worker::jobs::digests::{DigestSettings, weekly_digests};
use worker::jobs::escalations::escalation_pass;
use worker::jobs::notifications::notify_events;
use worker::jobs::reminders::{ReminderSettings, overdue_reminders};

use crate::OWN_PASSWORD;
use crate::escalations::{deliver, settings};
use crate::record_pages::{OneOfEach, one_of_each};

/// The week: what was sent, to whom, and the program's records with their titles.
pub struct Week {
    pub fixture: OneOfEach,
    pub sink: SmtpSink,
    /// Each email received: recipient, subject, text part, HTML part.
    pub emails: Vec<Email>,
}

#[derive(Debug, Clone)]
pub struct Email {
    pub to: String,
    pub subject: String,
    pub text: String,
    pub html: String,
}

impl Email {
    fn of(r: &Received) -> Email {
        let m = r.parsed();
        Email {
            to: r.to.join(","),
            subject: m.subject().unwrap_or_default().to_string(),
            text: m.body_text(0).map(|t| t.to_string()).unwrap_or_default(),
            html: m.body_html(0).map(|t| t.to_string()).unwrap_or_default(),
        }
    }

    /// Every link into the product in the text part.
    pub fn links(&self, base_url: &str) -> Vec<String> {
        let mut out = Vec::new();
        let mut rest = self.text.as_str();
        while let Some(at) = rest.find(base_url) {
            let tail = &rest[at..];
            let end = tail.find(char::is_whitespace).unwrap_or(tail.len());
            out.push(tail[..end].trim_end_matches(['.', ',', ')']).to_string());
            rest = &tail[end..];
        }
        out
    }
}

/// Monday 30 November 2026, 08:00:30 in Zurich (the program's zone): the weekly digest
/// (Monday 07:00) is due; Lea's reminder (weekdays 08:00 in Los Angeles) follows.
pub async fn a_week_of_emails(app: &TestApp) -> Week {
    app.clock.set(utc("2026-11-30T07:00:30Z"));
    let f = one_of_each(app).await;
    let (p, pm) = (f.setup.program_id, &f.setup.pm);
    let team = format!("/api/v1/programs/{p}/team");
    // Lea (quality, Los Angeles) knows environmental monitoring; the PM leads.
    pm.post(
        &team,
        json!({"user_id": f.lea, "governance_tier": "core_team", "program_role": "QA lead",
               "expertise_tags": ["environment"]}),
    )
    .await
    .expect(201);
    pm.post(
        &team,
        json!({"user_id": f.setup.pm_id, "governance_tier": "core_team", "program_role": "Program manager"}),
    )
    .await
    .expect(201);
    let today = app.today_in("Europe/Zurich");
    let items = format!("/api/v1/programs/{p}/action-items");
    pm.post(
        &items,
        json!({"title": "Review the environmental monitoring trend", "owner_user_id": f.lea,
               "due_date": today + TimeDelta::days(2)}),
    )
    .await
    .expect(201);
    pm.post(
        &items,
        json!({"title": "Sign the gasket deviation report", "owner_user_id": f.lea,
               "due_date": today - TimeDelta::days(3)}),
    )
    .await
    .expect(201);
    let ctx = app.job_context("w1");
    let now = app.now();
    let sink = SmtpSink::start().await;
    escalation_pass(&ctx, now, &settings()).await.unwrap();
    deliver(app, &sink, now).await;
    // Lea acknowledges her page by its button: everyone paged hears it.
    let page = sink
        .received()
        .into_iter()
        .map(|r| Email::of(&r))
        .find(|e| e.to == "lea@acme.test" && e.subject.contains("escalation tier 1"))
        .unwrap_or_else(|| {
            let sent: Vec<(String, String)> = sink
                .received()
                .iter()
                .map(|r| (r.to.join(","), Email::of(r).subject))
                .collect();
            panic!("Lea was not paged: {sent:#?}")
        });
    let ack = page
        .links(&app.base_url)
        .into_iter()
        .find(|l| l.contains("/api/v1/escalations/ack?token="))
        .expect("acknowledge button");
    let anon = app.anonymous();
    let ack = ack.trim_start_matches(&app.base_url);
    anon.send_raw(anon.request(awc::http::Method::POST, ack), "")
        .await
        .expect(200);
    // The PM triages the deviation (which ends the escalation); then the day's jobs.
    pm.post(
        &format!("/api/v1/deviations/{}/transitions", f.deviation["id"]),
        json!({"event": "triage"}),
    )
    .await
    .expect(200);
    notify_events(&ctx, now, 500).await.unwrap();
    weekly_digests(&ctx, now, &DigestSettings::default())
        .await
        .unwrap();
    // Reminders follow each owner's own clock: Lea's weekday 08:00 comes in Los Angeles,
    // nine hours after Zurich's.
    let lea_morning = utc("2026-11-30T16:00:30Z");
    app.clock.set(lea_morning);
    overdue_reminders(&ctx, lea_morning, &ReminderSettings::default())
        .await
        .unwrap();
    deliver(app, &sink, lea_morning).await;
    let emails = sink.received().iter().map(Email::of).collect();
    Week {
        fixture: f,
        sink,
        emails,
    }
}

async fn every_link_in_every_email_opens_a_page_for_its_reader(app: &TestApp) {
    // REQ: EMAIL-LINKS-PAGES
    let week = a_week_of_emails(app).await;
    let f = &week.fixture;
    let titles: BTreeMap<String, &str> = f
        .pages
        .iter()
        .map(|(record, id, title)| (record.path(*id), *title))
        .collect();
    let (_, _, _) = crate::partner_org(app, "Other Sponsor", "sponsor", "boss@other.test").await;
    let stranger = app.browser_session("boss@other.test", OWN_PASSWORD).await;

    let to_lea: Vec<&Email> = week
        .emails
        .iter()
        .filter(|e| e.to == "lea@acme.test")
        .collect();
    let kinds = |needle: &str| to_lea.iter().filter(|e| e.subject.contains(needle)).count();
    assert_eq!(kinds("escalation tier 1"), 1, "the page");
    assert_eq!(kinds("Acknowledged by"), 1, "the notice");
    assert_eq!(kinds("triaged"), 1, "the SME's triage notice");
    assert_eq!(kinds("Production of ACM-101 on hold"), 1, "production held");
    assert_eq!(kinds("Assigned to you"), 2, "two assignments");
    assert_eq!(kinds("Due in 2 days"), 1, "due soon");
    assert_eq!(kinds("overdue action item"), 1, "the reminder");
    assert_eq!(kinds(", week 2026-W49"), 1, "the digest");

    let mut opened = 0;
    for email in &week.emails {
        let links = email.links(&app.base_url);
        assert!(!links.is_empty(), "{}: no link", email.subject);
        for link in links {
            let path = link.trim_start_matches(&app.base_url).to_string();
            let bare = path.split('?').next().unwrap_or_default().to_string();
            let r = app.page(&path, None).await;
            assert_eq!(r.status, 200, "{} → {path}: {}", email.subject, r.text);
            assert!(
                r.header("content-type")
                    .unwrap_or_default()
                    .starts_with("text/html"),
                "{} → {path}",
                email.subject
            );
            if bare.starts_with("/api/v1/") {
                // Only the acknowledgement and unsubscribe buttons live there.
                assert!(
                    bare == "/api/v1/escalations/ack" || bare == "/api/v1/unsubscribe",
                    "{} links JSON: {path}",
                    email.subject
                );
                continue;
            }
            let text = r.html_text();
            let title = match titles.get(&bare) {
                Some(t) if !t.is_empty() => t.to_string(),
                _ => {
                    // An action item not in the fixture: its title is in the email.
                    let id: i64 = bare.rsplit('/').next().unwrap().parse().unwrap();
                    app.admin()
                        .get(&format!("/api/v1/action-items/{id}"))
                        .await
                        .expect(200)
                        .body["title"]
                        .as_str()
                        .unwrap()
                        .to_string()
                }
            };
            assert!(text.contains(&title), "{} → {path}: {text}", email.subject);
            // Another organization's person sees nothing of it, with the link or without.
            let other = app.page(&path, Some(&stranger)).await;
            assert_eq!(other.status, 404, "{path}");
            assert!(!other.text.contains(&title), "{path}");
            assert_eq!(app.page(&bare, Some(&stranger)).await.status, 404);
            opened += 1;
        }
    }
    assert!(opened >= 20, "{opened} page links opened");

    // Lea reads Los Angeles times; the floor's time beside them where it matters.
    let triage = to_lea
        .iter()
        .find(|e| e.subject.contains("triaged"))
        .unwrap();
    assert!(
        triage.text.contains("PST (") && triage.text.contains("CET at the site)"),
        "{}",
        triage.text
    );
    let digest = to_lea
        .iter()
        .find(|e| e.subject.contains(", week "))
        .unwrap();
    assert!(
        digest.text.contains("Prepared Sun 29 Nov 2026 23:00 PST"),
        "{}",
        digest.text
    );
    for e in &to_lea {
        assert!(!e.text.contains(" UTC"), "{}: {}", e.subject, e.text);
    }
}
on_both_databases!(every_link_in_every_email_opens_a_page_for_its_reader);

async fn the_digest_names_the_critical_deviation_and_the_hold_first(app: &TestApp) {
    // REQ: NOTIF-DIGEST
    let week = a_week_of_emails(app).await;
    let f = &week.fixture;
    let digest = week
        .emails
        .iter()
        .find(|e| e.to == "pm@acme.test" && e.subject.contains(", week 2026-W49"))
        .expect("the PM's digest");
    assert!(
        digest.subject.contains("Production on hold")
            && digest.subject.contains(
                "critical deviation DEV-2026-0001 Bioburden excursion in the harvest tank, production held"
            ),
        "{}",
        digest.subject
    );
    let text = &digest.text;
    let first_screen = &text[..text.find("THE WEEK IN BRIEF").unwrap()];
    assert!(
        first_screen
            .contains("Critical deviation: DEV-2026-0001 Bioburden excursion in the harvest tank"),
        "{text}"
    );
    assert!(first_screen.contains("production on hold since"), "{text}");
    assert!(
        first_screen.contains("Escalation: Bioburden excursion"),
        "{text}"
    );
    assert!(
        first_screen.contains("acknowledged by Lea Quality after")
            || first_screen.contains("not acknowledged after")
    );
    assert!(first_screen.contains("Overdue action: Sign the gasket deviation report"));
    assert!(first_screen.contains("owner Lea Quality"));
    for raw in [
        "create →",
        "→ open",
        "effectiveness_check",
        "on_hold",
        "… and",
    ] {
        assert!(!text.contains(raw), "raw words {raw:?}: {text}");
    }
    // Its counts are the overview's.
    let overview = f
        .setup
        .pm
        .get(&format!("/api/v1/programs/{}/overview", f.setup.program_id))
        .await
        .expect(200)
        .body;
    let plan = &overview["plan"];
    let counts = format!(
        "{} milestone{}: {} on track, {} at risk, {} late",
        plan["milestones_total"],
        if plan["milestones_total"] == 1 {
            ""
        } else {
            "s"
        },
        plan["by_health"]["on_track"],
        plan["by_health"]["at_risk"],
        plan["by_health"]["late"]
    );
    assert!(text.contains(&counts), "{counts} in {text}");
    assert!(text.contains(&format!(
        "Open deviations: {} critical",
        overview["open_critical_deviations"]
    )));
    assert!(text.contains(&format!(
        "Overdue actions: {}.",
        overview["overdue_action_items"]
    )));

    // Sent now by the PM: marked, each member's own, and the week's still goes out.
    let sent = f
        .setup
        .pm
        .post(
            &format!("/api/v1/programs/{}/digest/send", f.setup.program_id),
            json!({}),
        )
        .await
        .expect(202)
        .body;
    assert_eq!(sent["queued"], 2);
    deliver(app, &week.sink, app.now()).await;
    let now_sent: Vec<Received> = week
        .sink
        .received()
        .into_iter()
        .filter(|r| {
            r.parsed()
                .subject()
                .is_some_and(|s| s.starts_with("[Sent now by pm]"))
        })
        .collect();
    assert_eq!(now_sent.len(), 2);
    // A viewer cannot; a preview for Lea reads her zone and holds no grant.
    f.setup
        .cmo_admin
        .post(
            &format!("/api/v1/programs/{}/digest/send", f.setup.program_id),
            json!({}),
        )
        .await
        .expect_problem(403, "forbidden");
    let preview = f
        .setup
        .pm
        .get(&format!(
            "/api/v1/programs/{}/digest/preview?for_user_id={}",
            f.setup.program_id, f.lea
        ))
        .await
        .expect(200)
        .body;
    let text = preview["text_body"].as_str().unwrap();
    assert!(text.contains("PST"), "{text}");
    assert!(
        !text.contains("token="),
        "a preview holds no live link: {text}"
    );
    // Another member's preview is the managers' call; someone off the team has none.
    let preview_of = |user: i64| {
        format!(
            "/api/v1/programs/{}/digest/preview?for_user_id={user}",
            f.setup.program_id
        )
    };
    f.setup
        .cmo_admin
        .get(&preview_of(f.lea))
        .await
        .expect_problem(403, "forbidden");
    f.setup
        .pm
        .get(&preview_of(f.setup.cmo_admin_id))
        .await
        .expect_problem(404, "not_found");
}
on_both_databases!(the_digest_names_the_critical_deviation_and_the_hold_first);

async fn notifications_can_be_switched_off_kind_by_kind(app: &TestApp) {
    // REQ: NOTIF-PREFERENCES
    let week = a_week_of_emails(app).await;
    let f = &week.fixture;
    let assigned = week
        .emails
        .iter()
        .find(|e| e.to == "lea@acme.test" && e.subject.contains("Assigned to you"))
        .unwrap();
    let stop = assigned
        .links(&app.base_url)
        .into_iter()
        .find(|l| l.contains("/api/v1/unsubscribe?token="))
        .expect("a switch-off link");
    let path = stop.trim_start_matches(&app.base_url).to_string();
    let page = app.page(&path, None).await.expect(200);
    assert!(
        page.html_text().contains("notices of work assigned to you"),
        "{}",
        page.html_text()
    );
    let anon = app.anonymous();
    anon.send_raw(
        anon.request(awc::http::Method::POST, &path)
            .insert_header(("Content-Type", "application/x-www-form-urlencoded")),
        "List-Unsubscribe=One-Click",
    )
    .await
    .expect(200);
    let team = f
        .setup
        .pm
        .get(&format!("/api/v1/programs/{}/team", f.setup.program_id))
        .await
        .expect(200)
        .body;
    let members = team["items"].as_array().unwrap().clone();
    let lea = members.iter().find(|m| m["user_id"] == f.lea).unwrap();
    assert_eq!(lea["muted_notifications"], json!(["assignment"]));
    // The next item given to Lea is not announced to her; the PM's still is.
    let items = format!("/api/v1/programs/{}/action-items", f.setup.program_id);
    let due = app.today_in("Europe/Zurich") + TimeDelta::days(10);
    f.setup
        .pm
        .post(
            &items,
            json!({"title": "Trend the settle plates", "owner_user_id": f.lea, "due_date": due}),
        )
        .await
        .expect(201);
    let report = notify_events(&app.job_context("w1"), app.now(), 500)
        .await
        .unwrap();
    assert_eq!((report.events, report.queued), (1, 0), "{report:?}");
    // Switched on again through the API by Lea herself.
    let lea_client = app.client(&app.own_token("lea@acme.test", OWN_PASSWORD).await);
    lea_client
        .patch(
            &format!("/api/v1/team-members/{}", lea["id"]),
            json!({"version": lea["version"], "muted_notifications": []}),
        )
        .await
        .expect(200);
    f.setup
        .pm
        .post(
            &items,
            json!({"title": "Trend the contact plates", "owner_user_id": f.lea, "due_date": due}),
        )
        .await
        .expect(201);
    let report = notify_events(&app.job_context("w1"), app.now(), 500)
        .await
        .unwrap();
    assert_eq!(report.queued, 1, "{report:?}");
}
on_both_databases!(notifications_can_be_switched_off_kind_by_kind);

/// A gate decided reaches the team; a closed minor deviation its core team and reporter.
async fn gate_decisions_and_minor_closures_reach_who_needs_them(app: &TestApp) {
    // REQ: NOTIF-PREFERENCES
    use crate::quality::transition as deviation_step;
    let s = crate::programs::program_setup(app).await;
    let (qa_id, qa) = crate::user_with_token(
        app,
        "qa@acme.test",
        "quality",
        Some(crate::quality::QA_PASSWORD),
    )
    .await;
    let qa = app.client(&qa);
    let team = format!("/api/v1/programs/{}/team", s.program_id);
    for (user, tier) in [(s.pm_id, "core_team"), (qa_id, "leadership")] {
        s.pm.post(
            &team,
            json!({"user_id": user, "governance_tier": tier, "program_role": "member"}),
        )
        .await
        .expect(201);
    }
    let today = app.today_in("Europe/Zurich");
    let m = s
        .pm
        .post(
            &format!("/api/v1/programs/{}/milestones", s.program_id),
            json!({"name": "Batch records", "phase": "Readiness", "baseline_start": today, "baseline_end": today}),
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
    crate::plan::decide(&qa, id, "go").await.expect(201);
    // A minor deviation the CMO reported, closed by QA.
    let d = s
        .cmo_admin
        .post(
            &format!("/api/v1/programs/{}/deviations", s.program_id),
            json!({"title": "Label smudge on a carton", "description": "legible", "detected_at": app.now(),
                   "criticality": "minor", "category": "documentation"}),
        )
        .await
        .expect(201)
        .body;
    let did = d["id"].as_i64().unwrap();
    let dnumber = d["number"].as_str().unwrap().to_string();
    for step in ["triage", "start_investigation"] {
        deviation_step(&qa, did, json!({"event": step}))
            .await
            .expect(200);
    }
    let path = format!("/api/v1/deviations/{did}");
    let current = qa.get(&path).await.body;
    qa.patch(
        &path,
        json!({"version": current["version"], "root_cause_method": "five_whys", "root_cause_category": "documentation",
               "root_cause_narrative": "printer ribbon worn", "reason": "investigation complete"}),
    )
    .await
    .expect(200);
    deviation_step(
        &qa,
        did,
        json!({"event": "close", "password": crate::quality::QA_PASSWORD}),
    )
    .await
    .expect(200);
    notify_events(&app.job_context("w1"), app.now(), 500)
        .await
        .unwrap();
    let queued: Vec<(String, String)> = entity::outbox::Entity::find()
        .all(&app.db)
        .await
        .unwrap()
        .into_iter()
        .filter(|r| r.dedupe_key.starts_with("notify:"))
        .map(|r| (r.to_addrs, r.subject))
        .collect();
    let to = |subject: &str| {
        let mut who: Vec<String> = queued
            .iter()
            .filter(|(_, s)| s.starts_with(subject))
            .map(|(to, _)| to.clone())
            .collect();
        who.sort();
        who
    };
    assert_eq!(
        to("Gate Batch records: Go"),
        [r#"["pm@acme.test"]"#, r#"["qa@acme.test"]"#],
        "{queued:?}"
    );
    // Core team (the PM) and the reporter (the CMO's admin); not leadership.
    assert_eq!(
        to(&format!("Minor deviation {dnumber} closed")),
        [r#"["pm@acme.test"]"#, r#"["pm@lonza.test"]"#],
        "{queued:?}"
    );
}
on_both_databases!(gate_decisions_and_minor_closures_reach_who_needs_them);
