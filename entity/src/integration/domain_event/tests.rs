//! Every event type round-trips through its stored form.

use super::*;

/// Every variant from its schema example: round-trips through the stored form and
/// its type is a known one; every known type has a variant.
#[test]
fn every_event_type_has_exactly_one_variant_that_round_trips() {
    let examples: Vec<(&str, serde_json::Value)> = vec![
        (
            "deviation.reported",
            serde_json::json!({"deviation_id": 1, "title": "t", "criticality": "critical", "category": "equipment", "detected_at": "2026-11-28T01:55:00Z"}),
        ),
        (
            "deviation.triaged",
            serde_json::json!({"deviation_id": 1, "event": "triage", "from": "reported", "to": "triaged", "criticality": "major"}),
        ),
        (
            "deviation.closed",
            serde_json::json!({"deviation_id": 1, "event": "close", "from": "pending_capa", "to": "closed", "criticality": "major", "capa_id": 5}),
        ),
        (
            "deviation.transitioned",
            serde_json::json!({"deviation_id": 1, "event": "start_investigation", "from": "triaged", "to": "investigating", "criticality": "major"}),
        ),
        (
            "production.held",
            serde_json::json!({"program_id": 3, "production_status": "on_hold", "reason": "r"}),
        ),
        (
            "production.released",
            serde_json::json!({"program_id": 3, "production_status": "running", "reason": "r"}),
        ),
        (
            "escalation.opened",
            serde_json::json!({"escalation_id": 2, "title": "t", "criticality": "critical", "source_type": "deviation", "source_id": 1}),
        ),
        (
            "escalation.acknowledged",
            serde_json::json!({"escalation_id": 2, "by_user_id": 7, "channel": "api", "tier": 0}),
        ),
        (
            "escalation.advanced",
            serde_json::json!({"escalation_id": 2, "tier": 1, "tier_name": "Leads", "repeat": false, "recipients": 2}),
        ),
        (
            "escalation.resolved",
            serde_json::json!({"escalation_id": 2, "previous_status": "open"}),
        ),
        (
            "milestone.transitioned",
            serde_json::json!({"milestone_id": 8, "name": "n", "event": "start", "from": "planned", "to": "in_progress"}),
        ),
        (
            "gate.decided",
            serde_json::json!({"milestone_id": 9, "name": "n", "decision": "go", "decision_id": 4, "notes": null}),
        ),
        (
            "capa.transitioned",
            serde_json::json!({"capa_id": 5, "event": "approve_plan", "from": "open", "to": "plan_approved"}),
        ),
        (
            "action_item.overdue",
            serde_json::json!({"action_item_id": 77, "title": "t", "owner_user_id": 7, "due_date": "2026-11-27", "days_overdue": 3, "source": "other", "source_id": null}),
        ),
        (
            "action_item.assigned",
            serde_json::json!({"action_item_id": 78, "title": "t", "owner_user_id": 9, "assigned_by_user_id": 7, "due_date": "2026-12-11", "source": "capa", "source_id": 12}),
        ),
        (
            "change_request.transitioned",
            serde_json::json!({"change_request_id": 6, "title": "t", "classification": "major", "event": "approve", "from": "impact_assessment", "to": "approved"}),
        ),
        (
            "cmo.qualification_changed",
            serde_json::json!({"cmo_org_id": 2, "event": "approve", "from": "qualified", "to": "approved", "reason": null}),
        ),
        (
            "cmo.connection_changed",
            serde_json::json!({"connection_id": 5, "sponsor_org_id": 3, "cmo_org_id": 2, "event": "accept", "from": "invited", "to": "connected"}),
        ),
        (
            "cmo.merged",
            serde_json::json!({"merge_id": 4, "absorbed_org_id": 7, "absorbed_name": "a", "survivor_org_id": 2, "survivor_name": "s"}),
        ),
        (
            "evaluation.decided",
            serde_json::json!({"evaluation_id": 3, "title": "t", "program_id": null, "cmo_org_id": 2, "reason": "r"}),
        ),
        (
            "audit.checkpoint",
            serde_json::json!({"checkpoint_id": 1, "org_id": 1, "seq": 4, "head_hash": "ab", "at": "2026-12-01T00:30:00Z",
                "key_id": "k", "public_key": "p", "signature": "s", "kind": "daily", "reason": null}),
        ),
    ];
    let types: Vec<&str> = examples.iter().map(|(t, _)| *t).collect();
    assert_eq!(types, EVENT_TYPES);
    for (t, payload) in examples {
        let event =
            Event::from_stored(t, &payload.to_string()).unwrap_or_else(|e| panic!("{t}: {e}"));
        let (stored_type, stored) = event.to_stored().unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(stored_type, t);
        assert_eq!(Event::from_stored(t, &stored).ok(), Some(event));
    }
    assert!(Event::from_stored("deviation.exploded", "{}").is_err());
    assert!(Event::from_stored("deviation.reported", "{\"deviation_id\": 1}").is_err());
}
