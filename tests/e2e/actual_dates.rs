//! Work that happened before it was entered: a milestone's start and completion recorded
//! for their real days (an earlier day with a reason), corrected later with a reason and
//! audited; schedule health reads the dates as recorded.

use chrono::TimeDelta;
use e2e::{TestApp, on_both_databases};
use serde_json::json;

use crate::plan::{QA_PASSWORD, decide};
use crate::programs::program_setup;
use crate::user_with_token;

async fn actual_dates_are_recorded_for_their_day_and_corrected_with_a_reason(app: &TestApp) {
    // REQ: PLAN-ACTUAL-DATES
    let s = program_setup(app).await;
    let today = app.today_in("Europe/Zurich");
    let ago = |days: i64| today - TimeDelta::days(days);
    let m =
        s.pm.post(
            &format!("/api/v1/programs/{}/milestones", s.program_id),
            json!({"name": "Engineering runs", "phase": "Tech transfer",
                   "baseline_start": ago(20), "baseline_end": ago(10)}),
        )
        .await
        .expect(201)
        .body;
    let id = m["id"].as_i64().unwrap();
    let steps = format!("/api/v1/milestones/{id}/transitions");
    let fields = |r: &e2e::Reply| -> Vec<(String, String)> {
        r.body["errors"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| {
                (
                    e["field"].as_str().unwrap().to_string(),
                    e["code"].as_str().unwrap().to_string(),
                )
            })
            .collect()
    };

    // Started 12 days ago, entered today: the earlier day needs a reason, never tomorrow.
    let no_reason =
        s.pm.post(&steps, json!({"event": "start", "on": ago(12)}))
            .await
            .expect(422);
    assert_eq!(fields(&no_reason), [("reason".into(), "required".into())]);
    let tomorrow =
        s.pm.post(
            &steps,
            json!({"event": "start", "on": today + TimeDelta::days(1), "reason": "x"}),
        )
        .await
        .expect(422);
    assert_eq!(fields(&tomorrow), [("on".into(), "in_future".into())]);
    let garbled =
        s.pm.post(&steps, json!({"event": "start", "on": "12/03/2027"}))
            .await
            .expect(422);
    // A date in another form says which form it expects.
    assert_eq!(garbled.body["errors"][0]["field"], "on");
    assert!(
        garbled.body["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("YYYY-MM-DD (e.g. 2027-03-02)"),
        "{}",
        garbled.text
    );
    let started =
        s.pm.post(
            &steps,
            json!({"event": "start", "on": ago(12), "reason": "the run began on the 12th; entered late"}),
        )
        .await
        .expect(200)
        .body;
    assert_eq!(started["actual_start"], json!(ago(12)));
    // A day goes with start and complete only.
    let held =
        s.pm.post(
            &steps,
            json!({"event": "hold", "on": ago(1), "reason": "suite down"}),
        )
        .await
        .expect(422);
    assert_eq!(fields(&held), [("on".into(), "not_applicable".into())]);

    // Completed 9 days ago (a day after the baseline end), never before it started.
    s.pm.post(&steps, json!({"event": "submit_for_gate"}))
        .await
        .expect(200);
    let (_, qa) = user_with_token(app, "qa@acme.test", "quality", Some(QA_PASSWORD)).await;
    decide(&app.client(&qa), id, "go").await.expect(201);
    let early =
        s.pm.post(
            &steps,
            json!({"event": "complete", "on": ago(13), "reason": "x"}),
        )
        .await
        .expect(422);
    assert_eq!(
        fields(&early),
        [("actual_end".into(), "before_start".into())]
    );
    let done =
        s.pm.post(
            &steps,
            json!({"event": "complete", "on": ago(9), "reason": "report signed on the 9th"}),
        )
        .await
        .expect(200)
        .body;
    assert_eq!(done["actual_end"], json!(ago(9)));
    assert_eq!(done["schedule_health"], "late");

    // The batch record shows it finished on the 11th: corrected, with a reason, audited.
    let fix = format!("/api/v1/milestones/{id}/actual-dates");
    let version = done["version"].clone();
    for (body, field, code) in [
        (
            json!({"version": version, "reason": "x"}),
            "actual_start",
            "required",
        ),
        (
            json!({"version": version, "actual_end": today + TimeDelta::days(1), "reason": "x"}),
            "actual_end",
            "in_future",
        ),
        (
            json!({"version": version, "actual_start": ago(8), "reason": "x"}),
            "actual_end",
            "before_start",
        ),
        (
            json!({"version": version, "actual_end": ago(11), "reason": ""}),
            "reason",
            "required",
        ),
    ] {
        let refused = s.pm.post(&fix, body.clone()).await.expect(422);
        assert!(
            fields(&refused).contains(&(field.to_string(), code.to_string())),
            "{body}: {}",
            refused.text
        );
    }
    s.cmo_admin
        .post(
            &fix,
            json!({"version": version, "actual_end": ago(11), "reason": "x"}),
        )
        .await
        .expect_problem(403, "forbidden");
    let corrected =
        s.pm.post(
            &fix,
            json!({"version": version, "actual_end": ago(11), "reason": "batch record BR-17 shows the 11th"}),
        )
        .await
        .expect(200)
        .body;
    assert_eq!(corrected["actual_end"], json!(ago(11)));
    assert_eq!(corrected["actual_start"], json!(ago(12)));
    assert_eq!(corrected["schedule_health"], "on_track");
    s.pm.post(
        &fix,
        json!({"version": version, "actual_end": ago(10), "reason": "again"}),
    )
    .await
    .expect_problem(409, "version_conflict");
    let trail = app
        .admin()
        .get(&format!(
            "/api/v1/audit-events?entity_type=milestone&entity_id={id}&action=correct_actual_dates"
        ))
        .await
        .expect(200)
        .body;
    assert_eq!(trail["total"], 1, "{trail}");
    let entry = &trail["items"][0];
    assert_eq!(entry["before"]["actual_end"], json!(ago(9)));
    assert_eq!(entry["after"]["actual_end"], json!(ago(11)));
    assert_eq!(entry["reason"], "batch record BR-17 shows the 11th");
    // The late start's reason is in the trail of its step.
    let start_entry = app
        .admin()
        .get(&format!(
            "/api/v1/audit-events?entity_type=milestone&entity_id={id}&action=start"
        ))
        .await
        .expect(200)
        .body;
    assert_eq!(
        start_entry["items"][0]["reason"],
        "the run began on the 12th; entered late"
    );

    // A planned milestone has no actual start to correct.
    let planned = s
        .pm
        .post(
            &format!("/api/v1/programs/{}/milestones", s.program_id),
            json!({"name": "PPQ", "phase": "Validation", "baseline_start": today, "baseline_end": today}),
        )
        .await
        .expect(201)
        .body;
    let refused =
        s.pm.post(
            &format!("/api/v1/milestones/{}/actual-dates", planned["id"]),
            json!({"version": planned["version"], "actual_start": ago(1), "reason": "x"}),
        )
        .await
        .expect(422);
    assert_eq!(
        fields(&refused),
        [("actual_start".into(), "not_recorded".into())]
    );
}
on_both_databases!(actual_dates_are_recorded_for_their_day_and_corrected_with_a_reason);
