//! CMO selection: the bid tab ranks candidates; the decision is signed.

use e2e::{TestApp, on_both_databases};
use serde_json::json;

use crate::partners::QA_PASSWORD;
use crate::{partner_org, user_with_token};

async fn the_bid_tab_ranks_candidates_and_the_decision_is_signed(app: &TestApp) {
    // REQ: PART-BID-TAB
    let (a, _, a_token) = partner_org(app, "Alpha Bio", "cmo", "pm@alpha.test").await;
    let (b, _, _) = partner_org(app, "Beta Fill", "cmo", "pm@beta.test").await;
    let (_, pm_token) =
        user_with_token(app, "pm@acme.test", "program_manager", Some(QA_PASSWORD)).await;
    let (_, qa_token) = user_with_token(app, "qa@acme.test", "quality", None).await;
    let (pm, qa) = (app.client(&pm_token), app.client(&qa_token));

    let mut criteria = json!([{"key": "quality_systems", "name": "Quality systems", "weight": 60},
                              {"key": "cost", "name": "Cost", "weight": 30}]);
    pm.post(
        "/api/v1/evaluations",
        json!({"title": "Fill-finish", "criteria": criteria, "candidates": [a, b]}),
    )
    .await
    .expect_problem(422, "validation_failed");
    // Weights far out of range are refused by field (their sum once overflowed into a 500).
    let huge = json!([{"key": "a", "name": "A", "weight": i32::MAX},
                      {"key": "b", "name": "B", "weight": i32::MAX}]);
    let refused = pm
        .post(
            "/api/v1/evaluations",
            json!({"title": "Overflow", "criteria": huge, "candidates": [a]}),
        )
        .await
        .expect_problem(422, "validation_failed");
    assert!(
        refused.body.to_string().contains("criteria[0].weight"),
        "{}",
        refused.body
    );
    criteria[1]["weight"] = json!(40);
    pm.post(
        "/api/v1/evaluations",
        json!({"title": "Fill-finish", "criteria": criteria, "candidates": [a, 999_999]}),
    )
    .await
    .expect_problem(422, "validation_failed");
    let defaults = pm
        .post(
            "/api/v1/evaluations",
            json!({"title": "Defaults", "candidates": [a]}),
        )
        .await
        .expect(201)
        .body;
    assert_eq!(defaults["criteria"].as_array().unwrap().len(), 10);
    let e = pm
        .post(
            "/api/v1/evaluations",
            json!({"title": "Fill-finish", "criteria": criteria, "candidates": [b, a]}),
        )
        .await
        .expect(201)
        .body;
    let id = e["id"].as_i64().unwrap();
    assert_eq!(e["allowed_events"], json!(["decide"]));
    let scores = format!("/api/v1/evaluations/{id}/scores");
    for (client, cmo, criterion, score) in [
        (&pm, a, "quality_systems", 5),
        (&qa, a, "quality_systems", 3),
        (&pm, a, "cost", 3),
        (&pm, b, "quality_systems", 2),
        (&pm, b, "cost", 5),
    ] {
        client
            .post(&scores, json!({"cmo_org_id": cmo, "criterion": criterion, "score": score, "notes": "seen at audit"}))
            .await
            .expect(200);
    }
    // Giving a score again replaces your own.
    pm.post(
        &scores,
        json!({"cmo_org_id": b, "criterion": "cost", "score": 4}),
    )
    .await
    .expect(200);
    pm.post(
        &scores,
        json!({"cmo_org_id": b, "criterion": "cost", "score": 6}),
    )
    .await
    .expect_problem(422, "validation_failed");
    pm.post(
        &scores,
        json!({"cmo_org_id": b, "criterion": "speed", "score": 3}),
    )
    .await
    .expect_problem(422, "validation_failed");
    let view = pm
        .get(&format!("/api/v1/evaluations/{id}"))
        .await
        .expect(200)
        .body;
    // Alpha: 0.6 × 4 + 0.4 × 3 = 3.6; Beta: 0.6 × 2 + 0.4 × 4 = 2.8.
    assert_eq!(view["ranking"][0]["cmo_org_id"], a);
    assert_eq!(view["ranking"][0]["weighted_score"], 3.6);
    assert_eq!(view["ranking"][0]["breakdown"][0]["scorers"], 2);
    assert_eq!(view["ranking"][1]["weighted_score"], 2.8);
    assert_eq!(view["scores"].as_array().unwrap().len(), 5);

    let csv = pm
        .get(&format!("/api/v1/evaluations/{id}/bid-tab.csv"))
        .await
        .expect(200);
    assert!(csv.header("content-type").unwrap().starts_with("text/csv"));
    let lines: Vec<&str> = csv.text.lines().collect();
    assert_eq!(
        lines[0],
        "\"rank\",\"cmo\",\"weighted_score\",\"complete\",\"Quality systems (60%)\",\"Cost (40%)\""
    );
    assert_eq!(
        lines[1],
        "\"1\",\"Alpha Bio\",\"3.60\",\"yes\",\"4.00\",\"3.00\""
    );

    // CMOs never see the sponsor's bid tab.
    let alpha = app.client(&a_token);
    assert_eq!(
        alpha.get("/api/v1/evaluations").await.expect(200).body,
        json!({"items": [], "total": 0, "limit": 50, "offset": 0, "next_cursor": null})
    );
    alpha
        .get(&format!("/api/v1/evaluations/{id}"))
        .await
        .expect_problem(404, "not_found");
    alpha
        .get(&format!("/api/v1/evaluations/{id}/bid-tab.csv"))
        .await
        .expect_problem(404, "not_found");

    // The decision is signed; then scores are frozen.
    let decision = format!("/api/v1/evaluations/{id}/decision");
    qa.post(
        &decision,
        json!({"cmo_org_id": a, "reason": "best score", "password": "whatever it is"}),
    )
    .await
    .expect_problem(401, "invalid_password");
    pm.post(&decision, json!({"cmo_org_id": a, "reason": "best score"}))
        .await
        .expect(422);
    let decided = pm
        .post(
            &decision,
            json!({"cmo_org_id": a, "reason": "best weighted score", "password": QA_PASSWORD}),
        )
        .await
        .expect(200)
        .body;
    assert_eq!(decided["status"], "decided");
    assert_eq!(decided["allowed_events"], json!([]), "decided once");
    assert_eq!(decided["decision_cmo_org_id"], a);
    pm.post(
        &scores,
        json!({"cmo_org_id": b, "criterion": "cost", "score": 5}),
    )
    .await
    .expect_problem(409, "evaluation_decided");
    pm.post(
        &decision,
        json!({"cmo_org_id": b, "reason": "again", "password": QA_PASSWORD}),
    )
    .await
    .expect_problem(409, "evaluation_decided");
}
on_both_databases!(the_bid_tab_ranks_candidates_and_the_decision_is_signed);
