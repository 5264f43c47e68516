//! The permission matrix: the README's table is the one `entity::access` enforces, and
//! the quality decisions it reserves to the sponsor are refused to the CMO side through
//! the API, for every role.

use e2e::{TestApp, on_both_databases};
use entity::Role;
use entity::access::{Action, COLUMNS, Side, permits};
use serde_json::json;

use crate::OWN_PASSWORD;

const BEGIN: &str = "<!-- permission matrix: generated from entity::access -->\n";
const END: &str = "<!-- end of the permission matrix -->";

#[test]
fn the_readme_shows_the_enforced_matrix() {
    // REQ: SEC-PERMISSION-MATRIX
    crate::readme_shows(BEGIN, END, &entity::access::matrix_markdown());
}

fn wire(role: Role) -> &'static str {
    match role {
        Role::Admin => "admin",
        Role::ProgramManager => "program_manager",
        Role::Quality => "quality",
        Role::Contributor => "contributor",
        Role::Viewer => "viewer",
    }
}

/// Every role on each side tries the sponsor-reserved quality decisions on records of
/// the sponsor's program: lowering a deviation's criticality, cancelling a deviation and
/// a CAPA, resolving an escalation. The API answers as the matrix says (403, or the step
/// goes through).
async fn the_sponsors_quality_decisions_are_refused_to_the_cmo(app: &TestApp) {
    // REQ: SEC-PERMISSION-MATRIX
    let s = crate::programs::program_setup(app).await;
    // One person per column: the sponsor's people invited by Acme's admin, the CMO's by
    // the CMO's admin.
    let mut people = Vec::new();
    for (side, role) in COLUMNS {
        let email = format!(
            "{}-{}@{}",
            wire(role),
            if side == Side::Sponsor { "s" } else { "c" },
            if side == Side::Sponsor {
                "acme.test"
            } else {
                "cmo.test"
            }
        );
        let inviter = if side == Side::Sponsor {
            app.admin()
        } else {
            s.cmo_admin.clone()
        };
        inviter
            .post(
                "/api/v1/invitations",
                json!({"email": email, "display_name": email, "role": wire(role)}),
            )
            .await
            .expect(201);
        app.accept_invitation(&email, OWN_PASSWORD).await;
        people.push((
            side,
            role,
            app.client(&app.own_token(&email, OWN_PASSWORD).await),
        ));
    }
    let mut checked = 0;
    for (side, role, client) in &people {
        // A fresh critical deviation (with its escalation) and a CAPA for each attempt.
        let deviation = s
            .pm
            .post(
                &format!("/api/v1/programs/{}/deviations", s.program_id),
                json!({"title": "Bioburden excursion", "description": "35 CFU/10 mL",
                       "detected_at": app.now(), "criticality": "critical", "category": "environment"}),
            )
            .await
            .expect(201)
            .body;
        let dev_id = deviation["id"].as_i64().unwrap();
        let attempts = [
            (
                Action::DowngradeDeviation,
                format!("/api/v1/deviations/{dev_id}/transitions"),
                json!({"event": "triage", "criticality": "minor", "reason": "contained on the floor"}),
            ),
            (
                Action::CancelDeviation,
                format!("/api/v1/deviations/{dev_id}/transitions"),
                json!({"event": "cancel", "reason": "reported in error"}),
            ),
        ];
        for (action, path, body) in attempts {
            let r = client.post(&path, body).await;
            let allowed = permits(*role, *side, action);
            assert_eq!(
                r.status == 403,
                !allowed,
                "{side:?} {role:?} {action:?}: {} {}",
                r.status,
                r.text
            );
            if allowed {
                assert!(
                    r.status.is_success(),
                    "{side:?} {role:?} {action:?}: {}",
                    r.text
                );
                break; // the deviation moved on; the next attempt needs a fresh one
            }
            checked += 1;
        }
        let escalation = app
            .admin()
            .get(&format!("/api/v1/escalations?program_id={}", s.program_id))
            .await
            .expect(200)
            .body["items"]
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["status"] != "resolved")
            .map(|e| e["id"].as_i64().unwrap());
        if let Some(esc) = escalation {
            let r = client
                .post(
                    &format!("/api/v1/escalations/{esc}/resolve"),
                    json!({"reason": "handled"}),
                )
                .await;
            let allowed = permits(*role, *side, Action::ResolveEscalation);
            assert_eq!(
                r.status == 403,
                !allowed,
                "{side:?} {role:?} resolve: {}",
                r.text
            );
            checked += 1;
        }
        let capa = s
            .pm
            .post(
                &format!("/api/v1/programs/{}/capas", s.program_id),
                json!({"title": "Replace gaskets", "description": "…", "source": "deviation", "deviation_ids": [dev_id]}),
            )
            .await;
        if capa.status == 201 {
            let capa_id = capa.body["id"].as_i64().unwrap();
            let r = client
                .post(
                    &format!("/api/v1/capas/{capa_id}/transitions"),
                    json!({"event": "cancel", "reason": "duplicate"}),
                )
                .await;
            let allowed = permits(*role, *side, Action::CancelCapa);
            assert_eq!(
                r.status == 403,
                !allowed,
                "{side:?} {role:?} cancel CAPA: {}",
                r.text
            );
            checked += 1;
        }
    }
    assert!(checked >= 25, "only {checked} attempts checked");
}
on_both_databases!(the_sponsors_quality_decisions_are_refused_to_the_cmo);
