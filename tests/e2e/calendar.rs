//! The private iCalendar feed, parsed with a real iCalendar parser.

use e2e::{TestApp, on_both_databases};
use serde_json::json;

use crate::programs::program_setup;

async fn the_calendar_lists_gates_and_due_dates_and_parses(app: &TestApp) {
    // REQ: TIME-ZONES
    let s = program_setup(app).await;
    s.pm.post(
        &format!("/api/v1/programs/{}/team", s.program_id),
        json!({"user_id": s.pm_id, "governance_tier": "core_team", "program_role": "PM"}),
    )
    .await
    .expect(201);
    s.pm.post(
        &format!("/api/v1/programs/{}/plan", s.program_id),
        json!({"template": "cdmo_standard", "start_date": "2027-01-04"}),
    )
    .await
    .expect(201);
    // A milestone done last week: marked done, on the day it ended.
    let today = app.today_in("Europe/Zurich");
    let done =
        s.pm.post(
            &format!("/api/v1/programs/{}/milestones", s.program_id),
            json!({"name": "Feasibility batch", "phase": "Tech transfer",
                   "baseline_start": today - chrono::TimeDelta::days(20),
                   "baseline_end": today - chrono::TimeDelta::days(10)}),
        )
        .await
        .expect(201)
        .body["id"]
            .as_i64()
            .unwrap();
    let steps = format!("/api/v1/milestones/{done}/transitions");
    s.pm.post(&steps, json!({"event": "start", "on": today - chrono::TimeDelta::days(18), "reason": "entered late"}))
        .await
        .expect(200);
    s.pm.post(&steps, json!({"event": "submit_for_gate"}))
        .await
        .expect(200);
    let (_, qa) = crate::user_with_token(
        app,
        "qa@acme.test",
        "quality",
        Some(crate::plan::QA_PASSWORD),
    )
    .await;
    crate::plan::decide(&app.client(&qa), done, "go")
        .await
        .expect(201);
    s.pm.post(&steps, json!({"event": "complete", "on": today - chrono::TimeDelta::days(7), "reason": "entered late"}))
        .await
        .expect(200);
    let due = (app.now() + chrono::TimeDelta::days(10)).date_naive();
    s.pm.post(
        &format!("/api/v1/programs/{}/action-items", s.program_id),
        json!({"title": "Send specs, COA; and the \\ MBR", "owner_user_id": s.pm_id, "due_date": due}),
    )
    .await
    .expect(201);
    let url = s.pm.get("/api/v1/me/calendar").await.expect(200).body["url"]
        .as_str()
        .unwrap()
        .to_string();
    let path = &url[url.find("/api/v1/").unwrap()..];
    let anon = app.anonymous();
    let feed = anon.get(path).await.expect(200);
    assert!(
        feed.header("content-type")
            .unwrap()
            .starts_with("text/calendar")
    );
    assert!(feed.text.lines().all(|l| l.len() <= 75), "folded");

    let parsed: Vec<_> = ical::IcalParser::new(std::io::BufReader::new(feed.text.as_bytes()))
        .collect::<Result<Vec<_>, _>>()
        .expect("a valid iCalendar stream");
    assert_eq!(parsed.len(), 1);
    let events = &parsed[0].events;
    assert_eq!(
        events.len(),
        14,
        "12 milestones of the standard plan, the done one and one action item"
    );
    let prop = |e: &ical::parser::ical::component::IcalEvent, name: &str| {
        e.properties
            .iter()
            .find(|p| p.name == name)
            .and_then(|p| p.value.clone())
            .unwrap_or_default()
    };
    let action = events
        .iter()
        .find(|e| prop(e, "UID").starts_with("action-"))
        .expect("the action item");
    assert_eq!(
        prop(action, "SUMMARY"),
        "Due: Send specs\\, COA\\; and the \\\\ MBR"
    );
    assert_eq!(prop(action, "DTSTART"), due.format("%Y%m%d").to_string());
    assert!(events.iter().all(|e| !prop(e, "DTSTAMP").is_empty()));
    let gate = events
        .iter()
        .find(|e| prop(e, "UID").starts_with("milestone-"))
        .unwrap();
    assert!(prop(gate, "SUMMARY").starts_with("Gate: "));
    let finished = events
        .iter()
        .find(|e| prop(e, "UID").starts_with(&format!("milestone-{done}@")))
        .expect("the done milestone");
    assert!(
        prop(finished, "SUMMARY").starts_with("\u{2713} Done: Feasibility batch"),
        "{}",
        prop(finished, "SUMMARY")
    );
    assert_eq!(
        prop(finished, "DTSTART"),
        (today - chrono::TimeDelta::days(7))
            .format("%Y%m%d")
            .to_string(),
        "on the day it ended"
    );
    // Every gate sits on its milestone's forecast end: the date a calendar user needs.
    let milestones =
        s.pm.get(&format!("/api/v1/programs/{}/milestones", s.program_id))
            .await
            .expect(200)
            .body;
    let milestones = milestones["items"].as_array().unwrap().clone();
    let mut gates = 0;
    for e in events
        .iter()
        .filter(|e| prop(e, "UID").starts_with("milestone-"))
    {
        let id: i64 = prop(e, "UID")
            .trim_start_matches("milestone-")
            .split(|c: char| !c.is_ascii_digit())
            .next()
            .and_then(|d| d.parse().ok())
            .unwrap_or_else(|| panic!("UID {}", prop(e, "UID")));
        if id == done {
            continue;
        }
        let m = milestones
            .iter()
            .find(|m| m["id"] == id)
            .unwrap_or_else(|| panic!("milestone {id}"));
        let forecast_end = m["forecast_end"].as_str().unwrap().replace('-', "");
        assert_eq!(prop(e, "DTSTART"), forecast_end, "gate of milestone {id}");
        gates += 1;
    }
    assert_eq!(gates, 12, "one gate per milestone of the plan");
    // Stable UIDs: the same feed again has the same UIDs.
    let again = anon.get(path).await.expect(200);
    assert_eq!(again.text.matches("UID:").count(), 14);
    for e in events {
        assert!(again.text.contains(&format!("UID:{}", prop(e, "UID"))));
    }
    // An altered token answers 404.
    anon.get(&path.replace("token=", "token=00"))
        .await
        .expect_problem(404, "not_found");
    anon.get("/api/v1/calendar.ics")
        .await
        .expect_problem(404, "not_found");
}
on_both_databases!(the_calendar_lists_gates_and_due_dates_and_parses);

/// A calendar URL can be revoked: rotating gives a new one and the old one answers 404;
/// a deactivated person's feed is gone too.
async fn a_calendar_url_can_be_rotated_and_dies_with_its_person(app: &TestApp) {
    // REQ: SEC-CALENDAR-REVOCABLE
    let s = program_setup(app).await;
    let path_of = |url: &str| url.trim_start_matches(&app.base_url).to_string();
    let first = path_of(
        s.pm.get("/api/v1/me/calendar").await.expect(200).body["url"]
            .as_str()
            .unwrap(),
    );
    app.anonymous().get(&first).await.expect(200);
    let rotated = path_of(
        s.pm.post("/api/v1/me/calendar/rotate", json!({}))
            .await
            .expect(200)
            .body["url"]
            .as_str()
            .unwrap(),
    );
    assert_ne!(first, rotated);
    app.anonymous()
        .get(&first)
        .await
        .expect_problem(404, "not_found");
    app.anonymous().get(&rotated).await.expect(200);
    assert_eq!(
        path_of(
            s.pm.get("/api/v1/me/calendar").await.expect(200).body["url"]
                .as_str()
                .unwrap()
        ),
        rotated,
        "the current URL is the rotated one"
    );
    // Deactivated: the feed is gone.
    app.admin()
        .post(
            &format!("/api/v1/users/{}/deactivate", s.pm_id),
            json!({"reason": "left the company"}),
        )
        .await
        .expect(200);
    app.anonymous()
        .get(&rotated)
        .await
        .expect_problem(404, "not_found");
}
on_both_databases!(a_calendar_url_can_be_rotated_and_dies_with_its_person);
