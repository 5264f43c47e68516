//! Record pages for people: a personal link opens its page without a session, shows
//! times in the reader's zone, answers 404 to anyone else, and after expiry goes
//! through sign-in to the same page.

use chrono::TimeDelta;
use e2e::{TestApp, on_both_databases};
use entity::link_token::PageRecord;
use serde_json::json;

use crate::OWN_PASSWORD;
use crate::programs::program_setup;

/// A program with one record of each kind that has a page, and a reader in Los Angeles
/// on the sponsor's side.
pub struct OneOfEach {
    pub setup: crate::programs::Setup,
    /// The reader: Lea, quality, in America/Los_Angeles.
    pub lea: i64,
    /// Each page: the record, its id, its title.
    pub pages: Vec<(PageRecord, i64, &'static str)>,
    pub deviation: serde_json::Value,
    pub capa_id: i64,
    pub milestone_id: i64,
}

pub async fn one_of_each(app: &TestApp) -> OneOfEach {
    let s = program_setup(app).await;
    let p = s.program_id;
    app.admin()
        .post(
            "/api/v1/invitations",
            json!({"email": "lea@acme.test", "display_name": "Lea Quality", "role": "quality",
                   "time_zone": "America/Los_Angeles"}),
        )
        .await
        .expect(201);
    let lea = app.accept_invitation("lea@acme.test", OWN_PASSWORD).await;
    let today = app.today_in("Europe/Zurich");
    let milestone = s
        .pm
        .post(
            &format!("/api/v1/programs/{p}/milestones"),
            json!({"name": "Engineering runs", "phase": "Readiness", "baseline_start": today, "baseline_end": today + TimeDelta::days(5)}),
        )
        .await
        .expect(201)
        .body;
    s.pm.post(
        &format!("/api/v1/milestones/{}/gate-items", milestone["id"]),
        json!({"check_type": "batch_record_readiness", "title": "MBR approved"}),
    )
    .await
    .expect(201);
    let deviation = s
        .cmo_admin
        .post(
            &format!("/api/v1/programs/{p}/deviations"),
            json!({"title": "Bioburden excursion in the harvest tank", "description": "35 CFU/10 mL against a limit of 10",
                   "detected_at": app.now(), "criticality": "critical", "category": "environment", "batch_lot": "ACM101-DS-0007"}),
        )
        .await
        .expect(201)
        .body;
    let capa = s
        .pm
        .post(
            &format!("/api/v1/programs/{p}/capas"),
            json!({"title": "Replace the harvest tank gaskets", "description": "Corrective and preventive", "source": "deviation",
                   "deviation_ids": [deviation["id"]]}),
        )
        .await
        .expect(201)
        .body;
    let change = s
        .pm
        .post(
            &format!("/api/v1/programs/{p}/change-requests"),
            json!({"title": "Switch the depth filter supplier", "description": "Supplier B", "justification": "A discontinues",
                   "classification": "minor"}),
        )
        .await
        .expect(201)
        .body;
    let action = s
        .pm
        .post(
            &format!("/api/v1/programs/{p}/action-items"),
            json!({"title": "Send the certificate of analysis", "owner_user_id": s.pm_id, "due_date": today}),
        )
        .await
        .expect(201)
        .body;
    let escalation = app
        .admin()
        .get(&format!("/api/v1/escalations?program_id={p}"))
        .await
        .expect(200)
        .body["items"][0]
        .clone();
    let id = |v: &serde_json::Value| v["id"].as_i64().unwrap();
    let pages = vec![
        (PageRecord::Program, p, "ACM-101 clinical supply"),
        (PageRecord::Milestone, id(&milestone), "Engineering runs"),
        (
            PageRecord::ActionItem,
            id(&action),
            "Send the certificate of analysis",
        ),
        (
            PageRecord::Deviation,
            id(&deviation),
            "Bioburden excursion in the harvest tank",
        ),
        (
            PageRecord::Capa,
            id(&capa),
            "Replace the harvest tank gaskets",
        ),
        (
            PageRecord::ChangeRequest,
            id(&change),
            "Switch the depth filter supplier",
        ),
        (
            PageRecord::Escalation,
            id(&escalation),
            "Bioburden excursion in the harvest tank",
        ),
    ];
    OneOfEach {
        lea,
        pages,
        capa_id: id(&capa),
        milestone_id: id(&milestone),
        deviation,
        setup: s,
    }
}

/// Every page opens by its personal link for its reader and for nobody else.
async fn every_page_opens_for_its_reader_and_nobody_else(app: &TestApp) {
    // REQ: PAGES-PERSONAL-LINKS
    let f = one_of_each(app).await;
    let (lea, p) = (f.lea, f.setup.program_id);
    let lea_session = app.browser_session("lea@acme.test", OWN_PASSWORD).await;
    let pm_session = app.browser_session("pm@acme.test", OWN_PASSWORD).await;
    let (_, _, stranger_token) =
        crate::partner_org(app, "Other Sponsor", "sponsor", "boss@other.test").await;
    let _ = stranger_token;
    let stranger_session = app.browser_session("boss@other.test", OWN_PASSWORD).await;
    for &(record, record_id, title) in &f.pages {
        let link = app
            .page_link(record, record_id, lea, TimeDelta::days(7))
            .await;
        let path = record.path(record_id);
        // The link alone opens the page, made for people.
        let r = app.page(&link, None).await.expect(200);
        assert!(
            r.header("content-type").unwrap().starts_with("text/html"),
            "{path}"
        );
        let text = r.html_text();
        assert!(text.contains(title), "{path}: {text}");
        assert!(text.contains("Times are in America/Los_Angeles"), "{path}");
        let csp = r.header("content-security-policy").unwrap_or_default();
        assert!(
            csp.contains("default-src 'none'") && csp.contains("frame-ancestors 'none'"),
            "{path}: {csp}"
        );
        assert_eq!(r.header("referrer-policy"), Some("no-referrer"), "{path}");
        assert!(!r.text.contains("<script"), "{path}");
        // With the same person's session too; with another person's, not at all.
        app.page(&link, Some(&lea_session)).await.expect(200);
        let other = app.page(&link, Some(&pm_session)).await.expect(404);
        assert!(!other.text.contains(title), "{path}");
        // Another organization sees nothing of it, link or not.
        let stranger = app.page(&path, Some(&stranger_session)).await.expect(404);
        assert!(!stranger.text.contains(title), "{path}");
        app.page(&link, Some(&stranger_session)).await.expect(404);
        // A grant for one page is not one for another.
        let elsewhere = if record == PageRecord::Program {
            PageRecord::Milestone.path(f.milestone_id)
        } else {
            PageRecord::Program.path(p)
        };
        let token = link.split("?token=").nth(1).unwrap();
        app.page(&format!("{elsewhere}?token={token}"), None)
            .await
            .expect(404);
        // An altered grant is none: through sign-in.
        let altered = app
            .page(&format!("{path}?token={}x", token), None)
            .await
            .expect(303);
        assert_eq!(
            altered.header("location"),
            Some(format!("/sign-in?next={path}").as_str())
        );
        // Without a link, one's own session opens it.
        app.page(&path, Some(&pm_session)).await.expect(200);
    }

    // Times read in the reader's zone, the site's beside them where the floor's time
    // matters.
    let link = app
        .page_link(
            PageRecord::Deviation,
            f.deviation["id"].as_i64().unwrap(),
            lea,
            TimeDelta::days(7),
        )
        .await;
    let page = app.page(&link, None).await.expect(200).html_text();
    let detected = crate::instant(&f.deviation["detected_at"]);
    let la = detected
        .with_timezone(&chrono_tz::America::Los_Angeles)
        .format("%H:%M %Z")
        .to_string();
    assert!(page.contains(&la), "{la}: {page}");
    assert!(page.contains("at the site"), "{page}");
    assert!(
        page.contains("Production of ACM-101 is on hold since"),
        "{page}"
    );
    assert!(page.contains("ACM101-DS-0007"));
    // Links onward carry grants for the same reader.
    assert!(
        page.contains(&format!("href=\"/capas/{}?token=", f.capa_id)),
        "{page}"
    );

    // After a week the link goes through sign-in to the same page.
    app.clock
        .advance(TimeDelta::days(7) + TimeDelta::minutes(1));
    let expired = app.page(&link, None).await.expect(303);
    let to = format!("/sign-in?next=/deviations/{}", f.deviation["id"]);
    assert_eq!(expired.header("location"), Some(to.as_str()));
    app.page(
        &link,
        Some(&app.browser_session("lea@acme.test", OWN_PASSWORD).await),
    )
    .await
    .expect(200);
    // No link, no session: sign in first.
    let bare = app
        .page(&PageRecord::Program.path(p), None)
        .await
        .expect(303);
    assert_eq!(
        bare.header("location"),
        Some(format!("/sign-in?next=/programs/{p}").as_str())
    );
    // The stylesheet the pages use is served.
    let css = app.page("/assets/page.css", None).await.expect(200);
    assert!(css.header("content-type").unwrap().starts_with("text/css"));
}
on_both_databases!(every_page_opens_for_its_reader_and_nobody_else);
