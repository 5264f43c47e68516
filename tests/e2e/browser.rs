//! The pages people meet, in a real browser (headless Chromium): the invitation link
//! from the email, choosing a password, signing in with the form, the account page, and
//! signing out.

use e2e::{TestApp, browser, on_both_databases};
use serde_json::json;

async fn a_person_accepts_an_invitation_and_signs_in_with_the_browser(app: &TestApp) {
    // REQ: SEC-OWN-CREDENTIALS
    let Some(browser) = browser::start().await else {
        return;
    };
    app.admin()
        .post(
            "/api/v1/invitations",
            json!({"email": "quinn@acme.test", "display_name": "Quinn Alvarez", "role": "quality", "time_zone": "America/New_York"}),
        )
        .await
        .expect(201);
    let link = app
        .emailed_link("quinn@acme.test", "/invitations/accept")
        .await;

    // The link from the email opens the form; a mismatch is explained on the page.
    browser.goto(&link).await;
    let page = browser.wait_for("Join Acme Bio").await;
    assert!(page.contains("Quinn Alvarez"), "the name is filled in");
    browser.screenshot("invitation").await;
    browser
        .fill("#password", "correct horse battery staple")
        .await;
    browser
        .fill("#password_confirm", "correct horse battery stapler")
        .await;
    // Without the certification ticked the browser does not even send the form.
    browser.click("button[type=submit]").await;
    assert!(browser.url().await.contains("/invitations/accept?token="));
    browser.click("#certify_signature").await;
    browser.click("button[type=submit]").await;
    browser.wait_for("The two passwords differ").await;
    browser
        .fill("#password", "correct horse battery staple")
        .await;
    browser
        .fill("#password_confirm", "correct horse battery staple")
        .await;
    browser.click("#certify_signature").await;
    browser.click("button[type=submit]").await;
    browser.wait_for("Your account is ready").await;
    // The box ticked, the person certified their electronic signature, once.
    let certified = app
        .admin()
        .get("/api/v1/users?role=quality")
        .await
        .expect(200)
        .body;
    assert!(certified["items"][0]["signature_certified_at"].is_string());

    // Sign in with the form: the session cookie opens the account page.
    browser.goto(&format!("{}/sign-in", app.base_url)).await;
    browser.wait_for("Forgot your password").await;
    browser.fill("#email", "quinn@acme.test").await;
    browser.fill("#password", "not my password at all").await;
    browser.click("button[type=submit]").await;
    browser.wait_for("wrong email or password").await;
    browser
        .fill("#password", "correct horse battery staple")
        .await;
    browser.click("button[type=submit]").await;
    let account = browser.wait_for("Signed in as Quinn Alvarez").await;
    assert_eq!(browser.url().await, format!("{}/account", app.base_url));
    assert!(account.contains("America/New_York"));
    assert!(browser.screenshot("account").await > 1000);
    let cookies = browser.cookies().await;
    let session = cookies
        .iter()
        .find(|c| c["name"] == "cmo_session")
        .expect("the session cookie");
    assert_eq!(session["httpOnly"], true);
    assert_eq!(session["sameSite"], "Lax");
    assert_eq!(session["secure"], false, "served over http here");

    // Sign out: the session ends; the account page sends the browser to sign in.
    browser.click("form[action='/sign-out'] button").await;
    browser.wait_for("Forgot your password").await;
    assert!(browser.url().await.ends_with("/sign-in"));
    browser.goto(&format!("{}/account", app.base_url)).await;
    browser.wait_for("Forgot your password").await;
    assert!(browser.url().await.contains("/sign-in?next=/account"));
    browser.close().await;
}
on_both_databases!(a_person_accepts_an_invitation_and_signs_in_with_the_browser);

/// Every record page, opened by its personal link in a phone-sized headless Chromium:
/// the rendered text (not the source) names the record and reads times in the reader's
/// zone, and the stylesheet loads under the strict Content-Security-Policy.
async fn every_record_page_renders_in_a_browser(app: &TestApp) {
    // REQ: PAGES-PERSONAL-LINKS
    let Some(browser) = browser::start().await else {
        return;
    };
    let f = crate::record_pages::one_of_each(app).await;
    for &(record, id, title) in &f.pages {
        let link = app
            .page_link(record, id, f.lea, chrono::TimeDelta::days(7))
            .await;
        browser.goto(&format!("{}{link}", app.base_url)).await;
        browser.wait_for("Times are in").await;
        let text = browser.text().await;
        assert!(text.contains(title), "{record:?}: {text}");
        assert!(text.contains("America/Los_Angeles"), "{record:?}: {text}");
        // Styled: the stylesheet was allowed and applied (a plain page has no border).
        assert_eq!(
            browser
                .css_value("header.page", "border-bottom-style")
                .await,
            "solid",
            "{record:?}: the stylesheet did not load"
        );
        browser
            .screenshot(&format!("page-{}", record.segment()))
            .await;
    }
    let deviation =
        browser_text_of(&browser, app, &f, entity::link_token::PageRecord::Deviation).await;
    assert!(deviation.contains("PST"), "{deviation}");
    assert!(
        deviation.contains("Production of ACM-101 is on hold since"),
        "{deviation}"
    );
    browser.close().await;
}
on_both_databases!(every_record_page_renders_in_a_browser);

async fn browser_text_of(
    browser: &browser::Browser,
    app: &TestApp,
    f: &crate::record_pages::OneOfEach,
    record: entity::link_token::PageRecord,
) -> String {
    let &(_, id, _) = f.pages.iter().find(|(r, _, _)| *r == record).unwrap();
    let link = app
        .page_link(record, id, f.lea, chrono::TimeDelta::days(7))
        .await;
    browser.goto(&format!("{}{link}", app.base_url)).await;
    browser.wait_for("Times are in").await;
    browser.text().await
}

/// Every email of a week renders in a real browser as its reader's mail client would
/// show the HTML part: the words, not the markup, and what matters on the first screen.
async fn every_email_renders_in_a_browser(app: &TestApp) {
    // REQ: EMAIL-LINKS-PAGES
    let Some(browser) = browser::start().await else {
        return;
    };
    let week = crate::stakeholder_emails::a_week_of_emails(app).await;
    let dir = std::env::temp_dir().join(format!("cmo-emails-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let mut shot = std::collections::BTreeSet::new();
    for (i, email) in week.emails.iter().enumerate() {
        assert!(!email.html.is_empty(), "{}: no HTML part", email.subject);
        let file = dir.join(format!("{i}.html"));
        std::fs::write(&file, &email.html).unwrap();
        browser.goto(&format!("file://{}", file.display())).await;
        let text = browser.text().await;
        assert!(text.contains("ACM-101"), "{}: {text}", email.subject);
        // Neither template nor escaping leftovers, nor raw state names.
        for leftover in [
            "{{",
            "{%",
            "&lt;",
            "&amp;",
            "on_hold",
            "in_progress",
            "core_team",
        ] {
            assert!(
                !text.contains(leftover),
                "{}: {leftover} in {text}",
                email.subject
            );
        }
        let kind = if email.subject.contains(", week ") {
            let attention = text.find("Needs attention").expect("attention block");
            let critical = text
                .find("Critical deviation")
                .expect("names the critical deviation");
            let brief = text.find("The week in brief").unwrap();
            assert!(attention < critical && critical < brief, "{text}");
            assert!(text.contains("production on hold since"), "{text}");
            "digest"
        } else if email.subject.contains("escalation tier") {
            assert!(
                text.contains("Acknowledge") && text.contains("Call tree"),
                "{text}"
            );
            assert!(
                text.contains("Batch/lot") && text.contains("ACM101-DS-0007"),
                "{text}"
            );
            "escalation-page"
        } else {
            "other"
        };
        if email.to == "lea@acme.test" && kind != "other" && shot.insert(kind) {
            browser.screenshot(&format!("email-{kind}")).await;
        }
    }
    assert_eq!(shot.len(), 2, "a digest and a page were rendered: {shot:?}");
    let _ = std::fs::remove_dir_all(&dir);
    browser.close().await;
}
on_both_databases!(every_email_renders_in_a_browser);

/// The link in a CMO admin's invitation email opens the invitation as a page: through
/// sign-in, back to it, one button accepts.
async fn a_cmo_admin_accepts_an_invitation_from_the_emailed_link(app: &TestApp) {
    // REQ: PART-NETWORK, EMAIL-LINKS-PAGES
    let Some(browser) = browser::start().await else {
        return;
    };
    let a = crate::programs::program_setup(app).await;
    let lonza = a.cmo_admin.get("/api/v1/me").await.expect(200).body["user"]["org_id"]
        .as_i64()
        .unwrap();
    let (_, _, beta) = crate::partner_org(app, "Beta Biologics", "sponsor", "boss@beta.test").await;
    let beta = app.client(&beta);
    let invited = beta
        .post(
            "/api/v1/cmo-connections",
            json!({"cmo_org_id": lonza, "message": "BX-2 fill-finish?"}),
        )
        .await
        .expect(201)
        .body;
    let link = crate::partner_pages::emailed(app, "pm@lonza.test", "/cmo-connections/").await;
    assert_eq!(
        link,
        format!("{}/cmo-connections/{}/answer", app.base_url, invited["id"])
    );

    // Not signed in: through sign-in, then back to the invitation.
    browser.goto(&link).await;
    browser.wait_for("Forgot your password").await;
    browser.fill("#email", "pm@lonza.test").await;
    browser.fill("#password", crate::OWN_PASSWORD).await;
    browser.click("button[type=submit]").await;
    let page = browser
        .wait_for("Beta Biologics invites Lonza Visp to connect")
        .await;
    assert!(page.contains("BX-2 fill-finish?"), "{page}");
    assert!(page.contains("Decline instead"));
    assert!(
        !page.contains("Acme"),
        "nothing of the other sponsor: {page}"
    );
    browser.screenshot("connection-invitation").await;
    browser.click("button[type=submit]").await;
    browser.wait_for("Accepted.").await;
    let connection = beta
        .get(&format!("/api/v1/cmo-connections/{}", invited["id"]))
        .await
        .expect(200)
        .body;
    assert_eq!(connection["connection"], "connected");
    // Opened again: nothing left to answer, said in words.
    browser.goto(&link).await;
    browser
        .wait_for("This is connected already: there is nothing to accept.")
        .await;
    // Beta ends the connection: the link of the email that says so opens a page too.
    beta.post(
        &format!("/api/v1/cmo-connections/{}/events", invited["id"]),
        json!({"event": "end", "message": "BX-2 moved to our own plant"}),
    )
    .await
    .expect(200);
    let told = crate::partner_pages::emailed(app, "pm@lonza.test", "/cmo-connections/").await;
    browser.goto(&told).await;
    let page = browser
        .wait_for("Beta Biologics and Lonza Visp no longer work together")
        .await;
    assert!(page.contains("BX-2 moved to our own plant"), "{page}");
    assert!(
        page.contains("Partner Admin of Beta Biologics ended the connection"),
        "who ended it: {page}"
    );
    browser.screenshot("connection-ended").await;

    // The sponsor's admin cannot answer for Lonza; another organization sees no page.
    let beta_session = app
        .browser_session("boss@beta.test", crate::OWN_PASSWORD)
        .await;
    let path = link.trim_start_matches(&app.base_url);
    let theirs = app.page(path, Some(&beta_session)).await.expect(200);
    assert!(theirs.text.contains("nothing to accept"), "{}", theirs.text);
    crate::partner_org(app, "Other Sponsor", "sponsor", "boss@other.test").await;
    let stranger = app
        .browser_session("boss@other.test", crate::OWN_PASSWORD)
        .await;
    let hidden = app.page(path, Some(&stranger)).await.expect(404);
    assert!(!hidden.text.contains("Beta"), "{}", hidden.text);
}
on_both_databases!(a_cmo_admin_accepts_an_invitation_from_the_emailed_link);

/// A sponsor working with both CMOs of a merge chooses which qualification holds from the
/// emailed link: through sign-in, the reason typed, one button.
async fn a_sponsor_chooses_in_a_merge_from_the_emailed_link(app: &TestApp) {
    // REQ: PART-MERGE, EMAIL-LINKS-PAGES
    let Some(browser) = browser::start().await else {
        return;
    };
    let m = crate::merge_choices::shared_merge(app).await;
    browser.goto(&format!("{}?keep=absorbed", m.link)).await;
    browser.wait_for("Forgot your password").await;
    browser.fill("#email", "qa@acme.test").await;
    browser.fill("#password", crate::OWN_PASSWORD).await;
    browser.click("button[type=submit]").await;
    let page = browser
        .wait_for("Keep the relationship with the duplicate")
        .await;
    assert!(
        page.contains(
            "your qualification of Lonza Visp (old) is qualified; of Lonza Visp, probation"
        ),
        "{page}"
    );
    assert!(
        !page.contains("Beta"),
        "nothing of the other sponsor: {page}"
    );
    browser.screenshot("merge-choice").await;
    browser
        .fill("#reason", "Approved there after the 2026 audit")
        .await;
    browser.click("button[type=submit]").await;
    browser
        .wait_for("Chosen: your relationship with Lonza Visp (old) holds")
        .await;
    let chosen =
        m.qa.get(&format!("/api/v1/cmo-merges/{}/sponsor-choice", m.id))
            .await
            .expect(200)
            .body;
    assert_eq!(chosen["keep"], "absorbed", "{chosen}");
    assert_eq!(chosen["reason"], "Approved there after the 2026 audit");
    browser.close().await;
}
on_both_databases!(a_sponsor_chooses_in_a_merge_from_the_emailed_link);

/// The PDF copy of a closed deviation, rendered to images by poppler and read back by
/// OCR: what a person holding it sees, signature manifestation and trail included.
async fn a_closed_deviations_pdf_copy_reads_with_signature_and_trail(app: &TestApp) {
    // REQ: VAL-RECORD-COPY
    let c = crate::validation::closed_deviation(app).await;
    let pdf =
        c.qa.get(&format!("/api/v1/deviations/{}/copy", c.id))
            .await
            .expect(200);
    let Some(pages) = e2e::pdf::read_pages(&pdf.bytes) else {
        return;
    };
    let seen = pages.join("\n");
    for words in [
        format!("Deviation {}", c.reference),
        "Label smudge on vial tray 3".to_string(),
        "Electronic signatures (1)".to_string(),
        "Printed name of the signer".to_string(),
        "Meaning of the signature".to_string(),
        "Date and time of signing".to_string(),
        "Audit trail".to_string(),
        "labels reprinted and checked".to_string(),
        "Audit chain verification".to_string(),
        "intact".to_string(),
        "Europe/Zurich".to_string(),
    ] {
        assert!(
            seen.contains(&words),
            "{words:?} not read in the PDF:\n{seen}"
        );
    }
    assert!(seen.contains("page 1 of"), "{seen}");
    // The characters beyond ASCII are real text in the file (the embedded font maps
    // them back), not only shapes an OCR guesses at.
    let text = std::process::Command::new("/usr/bin/pdftotext")
        .args(["-", "-"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .and_then(|mut child| {
            use std::io::Write;
            child.stdin.take().unwrap().write_all(&pdf.bytes)?;
            child.wait_with_output()
        })
        .expect("pdftotext");
    let text = String::from_utf8_lossy(&text.stdout);
    assert!(
        text.contains("Zürich line, ≥ 5 µg/mL") && text.contains("LOT-Ω7"),
        "{text}"
    );
}
on_both_databases!(a_closed_deviations_pdf_copy_reads_with_signature_and_trail);
