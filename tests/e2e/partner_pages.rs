//! The links the partner network emails to a CMO's admins open pages for people: a
//! proposal to merge a duplicate, declined from its page (the invitation to connect is
//! accepted in a real browser: `browser::`). Nobody else can answer through them.

use e2e::{TestApp, on_both_databases};
use entity::outbox;
use sea_orm::{EntityTrait, QueryOrder};
use serde_json::json;

use crate::programs::program_setup;
use crate::{OWN_PASSWORD, partner_org};

/// The link to `path_start…` in the newest email to `to`.
pub async fn emailed(app: &TestApp, to: &str, path_start: &str) -> String {
    let address = json!([to]).to_string();
    let needle = format!("{}{path_start}", app.base_url);
    for email in outbox::Entity::find()
        .order_by_desc(outbox::Column::Id)
        .all(&app.db)
        .await
        .unwrap()
    {
        if email.to_addrs != address {
            continue;
        }
        if let Some(at) = email.text_body.find(&needle) {
            let rest = &email.text_body[at..];
            let end = rest.find(char::is_whitespace).unwrap_or(rest.len());
            assert!(
                !email.text_body.contains(&format!("{}/api/", app.base_url)),
                "no link into the API: {}",
                email.text_body
            );
            return rest[..end].to_string();
        }
    }
    panic!("no email to {to} links to {path_start}");
}

async fn a_merge_proposal_is_declined_from_its_page(app: &TestApp) {
    // REQ: PART-MERGE, EMAIL-LINKS-PAGES
    let a = program_setup(app).await;
    let lonza = a.cmo_admin.get("/api/v1/me").await.expect(200).body["user"]["org_id"]
        .as_i64()
        .unwrap();
    let (_, _, beta) = partner_org(app, "Beta Biologics", "sponsor", "boss@beta.test").await;
    let beta = app.client(&beta);
    let copy = beta
        .post(
            "/api/v1/organizations",
            json!({"name": "Lonza Visp (Beta)", "kind": "cmo",
                   "admin": {"email": "later@lonza.test", "display_name": "Later"}}),
        )
        .await
        .expect(201)
        .body["organization"]["id"]
        .as_i64()
        .unwrap();
    let merge = beta
        .post(
            "/api/v1/cmo-merges",
            json!({"absorbed_org_id": copy, "survivor_org_id": lonza, "reason": "the same plant"}),
        )
        .await
        .expect(201)
        .body;
    let link = emailed(app, "pm@lonza.test", "/cmo-merges/").await;
    let path = link.trim_start_matches(&app.base_url).to_string();
    assert_eq!(path, format!("/cmo-merges/{}/answer", merge["id"]));
    // Without a session: through sign-in, then back (the `?event=` kept).
    let anonymous = app
        .page(&format!("{path}?event=decline"), None)
        .await
        .expect(303);
    assert_eq!(
        anonymous.header("location").unwrap(),
        format!("/sign-in?next={}%3Fevent%3Ddecline", path)
    );
    let session = app.browser_session("pm@lonza.test", OWN_PASSWORD).await;
    let shown = app
        .page(&format!("{path}?event=decline"), Some(&session))
        .await
        .expect(200);
    assert!(
        shown
            .text
            .contains("Merge Lonza Visp (Beta) into Lonza Visp?")
    );
    assert!(shown.text.contains("the same plant"));
    assert!(shown.text.contains("Accept instead"));
    let token = app.form_token("/sign-in").await;
    // A form from elsewhere (no form token) is refused; a stale version is explained.
    let client = app.anonymous();
    client
        .send_raw(
            client
                .request(awc::http::Method::POST, &path)
                .content_type("application/x-www-form-urlencoded")
                .insert_header(("Cookie", format!("cmo_session={session}"))),
            "event=decline&version=1".to_string(),
        )
        .await
        .expect(403);
    let stale = app
        .post_form(&path, &token, "event=decline&version=7", Some(&session))
        .await
        .expect(409);
    assert!(stale.text.contains("version"), "{}", stale.text);
    app.post_form(&path, &token, "event=decline&version=1", Some(&session))
        .await
        .expect(200);
    let declined = a
        .cmo_admin
        .get(&format!("/api/v1/cmo-merges/{}", merge["id"]))
        .await
        .expect(200)
        .body;
    assert_eq!(declined["status"], "declined");
    assert_eq!(declined["responded_by_user_id"], a.cmo_admin_id);
}
on_both_databases!(a_merge_proposal_is_declined_from_its_page);
