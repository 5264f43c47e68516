//! A policy's edge cases in a running escalation: empty tiers, edits after it opened.

use chrono::TimeDelta;
use e2e::{TestApp, on_both_databases};
use entity::escalation::{self};
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};
use serde_json::{Value, json};
use worker::jobs::escalations::escalation_pass;

use crate::escalations::{settings, team};

async fn empty_tiers_are_skipped_and_a_running_escalation_keeps_its_policy(app: &TestApp) {
    // REQ: ESC-ADVANCE
    let t = team(app).await;
    let policy_path = format!("/api/v1/programs/{}/escalation-policy", t.s.program_id);
    let policy = t.s.pm.get(&policy_path).await.expect(200).body;
    assert_eq!(policy["version"], 1);
    assert_eq!(policy["tiers"][0]["name"], "Core team");
    // The check warns about the empty steering committee.
    let check =
        t.s.pm
            .get(&format!("{policy_path}/check"))
            .await
            .expect(200)
            .body;
    assert_eq!(check["ok"], false);
    assert!(
        check["warnings"]
            .as_array()
            .unwrap()
            .iter()
            .any(|w| w["code"] == "empty_tier" && w["tier"] == 2),
        "{check}"
    );
    // A dry run at 02:00 pages now, then after 15 and 30 minutes; the empty tier is
    // skipped at once.
    let dry =
        t.s.pm
            .get(&format!(
                "{policy_path}/dry-run?category=equipment&at=2026-11-28T02:00:00Z"
            ))
            .await
            .expect(200)
            .body;
    let at = |i: usize| dry["pages"][i]["page_at"].as_str().unwrap().to_string();
    assert_eq!(at(0), "2026-11-28T02:00:00Z");
    assert_eq!(at(1), "2026-11-28T02:15:00Z");
    assert_eq!(at(2), "2026-11-28T02:45:00Z");
    assert_eq!(dry["pages"][2]["recipients"], json!([]));
    assert_eq!(dry["exhausted_at"], "2026-11-28T02:45:00Z");

    // Manual escalation without a category: tier 1 is core team only (QA).
    let opened = t
        .s
        .pm
        .post(
            "/api/v1/escalations",
            json!({"program_id": t.s.program_id, "title": "Shipper lost", "reason": "GMP lot untracked for 6 h", "urgency": "major"}),
        )
        .await
        .expect(201)
        .body;
    let id = opened["id"].as_i64().unwrap();
    let t0 = app.now();
    escalation_pass(&app.job_context("w1"), t0, &settings())
        .await
        .unwrap();

    // The policy changes mid-escalation: the running one keeps its snapshot.
    let mut tiers: Vec<Value> = policy["tiers"].as_array().unwrap().clone();
    tiers[1]["wait_minutes"] = json!(1);
    tiers[0]["wait_minutes"] = json!(1);
    t.s.pm
        .put(
            &policy_path,
            json!({"tiers": tiers, "repeat_last": 0, "ack_timeout_minutes": 10, "version": 1}),
        )
        .await
        .expect(200);
    let nothing = escalation_pass(
        &app.job_context("w1"),
        t0 + TimeDelta::minutes(2),
        &settings(),
    )
    .await
    .unwrap();
    assert_eq!(nothing.pages, 0, "still the 15-minute wait it opened with");
    // Tier 2 at 15 min; at 45 min tier 3 is empty (skipped at once) and the last tier's
    // repeat pages tier 3 again: empty as well, so the escalation is exhausted.
    let second = escalation_pass(
        &app.job_context("w1"),
        t0 + TimeDelta::minutes(15),
        &settings(),
    )
    .await
    .unwrap();
    assert_eq!(second.pages, 1);
    let end = escalation_pass(
        &app.job_context("w1"),
        t0 + TimeDelta::minutes(45),
        &settings(),
    )
    .await
    .unwrap();
    assert_eq!(
        (end.pages, end.skipped, end.exhausted),
        (0, 2, 1),
        "{end:?}"
    );
    let detail =
        t.s.pm
            .get(&format!("/api/v1/escalations/{id}"))
            .await
            .expect(200)
            .body;
    assert_eq!(detail["escalation"]["status"], "exhausted");
    let audited: Vec<String> = entity::audit_event::Entity::find()
        .filter(entity::audit_event::Column::EntityType.eq("escalation"))
        .filter(entity::audit_event::Column::EntityId.eq(id.to_string()))
        .all(&app.db)
        .await
        .unwrap()
        .into_iter()
        .map(|a| a.action)
        .collect();
    assert!(audited.contains(&"exhaust".to_string()), "{audited:?}");
    assert_eq!(detail["policy"]["tiers"][0]["wait_minutes"], 15);
    // Exhausted can still be acknowledged (by API) and resolved. An ack is audited with
    // its channel; a second one by the same person changes nothing.
    let first =
        t.qa.post(
            &format!("/api/v1/escalations/{id}/ack"),
            json!({"note": "on it"}),
        )
        .await
        .expect(200)
        .body;
    let row = escalation::Entity::find_by_id(id)
        .one(&app.db)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(row.ack_channel.as_deref(), Some("api"));
    assert_eq!(row.acknowledged_at, Some(app.now()));
    let ack_audit = entity::audit_event::Entity::find()
        .filter(entity::audit_event::Column::EntityType.eq("escalation"))
        .filter(entity::audit_event::Column::EntityId.eq(id.to_string()))
        .filter(entity::audit_event::Column::Action.eq("acknowledge"))
        .all(&app.db)
        .await
        .unwrap();
    assert_eq!(ack_audit.len(), 1, "the ack is audited once");
    assert_eq!(ack_audit[0].actor_user_id, Some(t.qa_id));
    assert!(
        ack_audit[0]
            .after
            .as_deref()
            .unwrap_or_default()
            .contains("\"api\""),
        "{:?}",
        ack_audit[0].after
    );
    app.clock.advance(TimeDelta::minutes(1));
    let again =
        t.qa.post(&format!("/api/v1/escalations/{id}/ack"), json!({}))
            .await
            .expect(200)
            .body;
    assert_eq!(
        again["acknowledged_at"], first["acknowledged_at"],
        "idempotent"
    );
    t.s.pm
        .post(&format!("/api/v1/escalations/{id}/ack"), json!({}))
        .await
        .expect_problem(409, "illegal_transition");
    t.qa.post(
        &format!("/api/v1/escalations/{id}/resolve"),
        json!({"reason": "shipper found"}),
    )
    .await
    .expect(200);
    t.qa.post(
        &format!("/api/v1/escalations/{id}/resolve"),
        json!({"reason": "again"}),
    )
    .await
    .expect_problem(409, "illegal_transition");

    // Validation and tenancy.
    let mut bad = tiers.clone();
    bad[0]["wait_minutes"] = json!(0);
    bad[1]["member_ids"] = json!([999_999]);
    let problem =
        t.s.pm
            .put(
                &policy_path,
                json!({"tiers": bad, "repeat_last": 0, "ack_timeout_minutes": 10, "version": 2}),
            )
            .await
            .expect_problem(422, "validation_failed")
            .body;
    assert_eq!(problem["errors"][0]["field"], "tiers[0].wait_minutes");
    t.s.pm
        .put(
            &policy_path,
            json!({"tiers": tiers, "repeat_last": 0, "ack_timeout_minutes": 10, "version": 1}),
        )
        .await
        .expect_problem(409, "version_conflict");
    t.qa.put(
        &policy_path,
        json!({"tiers": tiers, "repeat_last": 0, "ack_timeout_minutes": 10, "version": 2}),
    )
    .await
    .expect_problem(403, "forbidden");
    let (_, _, stranger) = crate::partner_org(app, "Other CMO", "cmo", "x@other.test").await;
    let stranger = app.client(&stranger);
    stranger
        .get(&format!("/api/v1/escalations/{id}"))
        .await
        .expect_problem(404, "not_found");
    stranger
        .get(&policy_path)
        .await
        .expect_problem(404, "not_found");
    stranger
        .post(&format!("/api/v1/escalations/{id}/ack"), json!({}))
        .await
        .expect_problem(404, "not_found");
    assert_eq!(
        stranger.get("/api/v1/escalations").await.expect(200).body["total"],
        0
    );
}
on_both_databases!(empty_tiers_are_skipped_and_a_running_escalation_keeps_its_policy);
