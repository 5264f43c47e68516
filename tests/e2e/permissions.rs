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

/// What one attempt needs: the program's parties and the sponsor's quality user, who
/// brings records to where the action is legal before each attempt.
struct Walk<'a> {
    app: &'a TestApp,
    s: crate::programs::Setup,
    sponsor_qa: e2e::Client,
    cmo_org_id: i64,
}

impl Walk<'_> {
    /// A program of its own for each attempt, so that no attempt sees another's records
    /// (a critical deviation left open blocks a release).
    async fn program(&self) -> i64 {
        self.s
            .pm
            .post(
                "/api/v1/programs",
                json!({"name": "Permission walk", "product_name": "ACM-101", "cmo_org_id": self.cmo_org_id,
                       "modality": "biologic", "stage": "clinical", "time_zone": "Europe/Zurich"}),
            )
            .await
            .expect(201)
            .body["id"]
            .as_i64()
            .unwrap()
    }

    async fn deviation(&self, program: i64, criticality: &str) -> i64 {
        self.s
            .pm
            .post(
                &format!("/api/v1/programs/{program}/deviations"),
                json!({"title": "Bioburden excursion", "description": "35 CFU/10 mL", "detected_at": self.app.now(),
                       "criticality": criticality, "category": "environment"}),
            )
            .await
            .expect(201)
            .body["id"]
            .as_i64()
            .unwrap()
    }

    async fn step(&self, path: &str, body: serde_json::Value) {
        self.sponsor_qa.post(path, body).await.expect(200);
    }

    async fn escalation(&self, program: i64) -> i64 {
        self.deviation(program, "critical").await;
        self.app
            .admin()
            .get(&format!("/api/v1/escalations?program_id={program}"))
            .await
            .expect(200)
            .body["items"][0]["id"]
            .as_i64()
            .unwrap()
    }

    async fn capa(&self, program: i64) -> i64 {
        let deviation = self.deviation(program, "minor").await;
        self.s
            .pm
            .post(
                &format!("/api/v1/programs/{program}/capas"),
                json!({"title": "Replace gaskets", "description": "Corrective and preventive", "source": "deviation",
                       "deviation_ids": [deviation]}),
            )
            .await
            .expect(201)
            .body["id"]
            .as_i64()
            .unwrap()
    }

    /// `who` tries `action` on a record brought to where the action is legal.
    async fn attempt(&self, action: Action, who: &e2e::Client) -> e2e::Reply {
        let p = self.program().await;
        let today = self.app.today_in("Europe/Zurich").to_string();
        let signed = |body: serde_json::Value| {
            let mut body = body;
            body["password"] = json!(OWN_PASSWORD);
            body
        };
        match action {
            Action::ManageProgram => {
                who.patch(
                    &format!("/api/v1/programs/{p}"),
                    json!({"version": 1, "stage": "commercial", "reason": "PPQ complete"}),
                )
                .await
            }
            Action::UpdatePlan => {
                who.post(
                    &format!("/api/v1/programs/{p}/milestones"),
                    json!({"name": "Engineering runs", "phase": "Readiness", "baseline_start": today, "baseline_end": today}),
                )
                .await
            }
            Action::DecideGate => {
                let m = self
                    .s
                    .pm
                    .post(
                        &format!("/api/v1/programs/{p}/milestones"),
                        json!({"name": "Batch records", "phase": "Readiness", "baseline_start": today, "baseline_end": today}),
                    )
                    .await
                    .expect(201)
                    .body["id"]
                    .as_i64()
                    .unwrap();
                self.s
                    .pm
                    .post(
                        &format!("/api/v1/milestones/{m}/gate-items"),
                        json!({"check_type": "batch_record_readiness", "title": "MBR approved"}),
                    )
                    .await
                    .expect(201);
                for event in ["start", "submit_for_gate"] {
                    self.s
                        .pm
                        .post(
                            &format!("/api/v1/milestones/{m}/transitions"),
                            json!({"event": event}),
                        )
                        .await
                        .expect(200);
                }
                let gate = self
                    .s
                    .pm
                    .get(&format!("/api/v1/milestones/{m}/gate"))
                    .await
                    .body;
                let item = &gate["items"][0];
                self.s
                    .pm
                    .patch(
                        &format!("/api/v1/gate-items/{}", item["id"]),
                        json!({"version": item["version"], "result": "pass"}),
                    )
                    .await
                    .expect(200);
                who.post(
                    &format!("/api/v1/milestones/{m}/gate-decisions"),
                    signed(json!({"decision": "go", "notes": "all checks passed"})),
                )
                .await
            }
            Action::ReportDeviation => {
                who.post(
                    &format!("/api/v1/programs/{p}/deviations"),
                    json!({"title": "Label smudge", "description": "minor", "detected_at": self.app.now(),
                           "criticality": "minor", "category": "documentation"}),
                )
                .await
            }
            Action::HandleDeviation => {
                let d = self.deviation(p, "minor").await;
                who.post(
                    &format!("/api/v1/deviations/{d}/transitions"),
                    json!({"event": "triage", "criticality": "major", "reason": "affects the batch"}),
                )
                .await
            }
            Action::DowngradeDeviation => {
                let d = self.deviation(p, "critical").await;
                who.post(
                    &format!("/api/v1/deviations/{d}/transitions"),
                    json!({"event": "triage", "criticality": "minor", "reason": "contained on the floor"}),
                )
                .await
            }
            Action::CancelDeviation => {
                let d = self.deviation(p, "minor").await;
                who.post(
                    &format!("/api/v1/deviations/{d}/transitions"),
                    json!({"event": "cancel", "reason": "reported in error"}),
                )
                .await
            }
            Action::CloseDeviation => {
                let d = self.deviation(p, "minor").await;
                let path = format!("/api/v1/deviations/{d}");
                self.step(&format!("{path}/transitions"), json!({"event": "triage"}))
                    .await;
                let current = self.sponsor_qa.get(&path).await.body;
                self.sponsor_qa
                    .patch(
                        &path,
                        json!({"version": current["version"], "short_term_fix": "labels reprinted", "reason": "fix applied"}),
                    )
                    .await
                    .expect(200);
                who.post(
                    &format!("{path}/transitions"),
                    signed(json!({"event": "close"})),
                )
                .await
            }
            Action::ReleaseProduction => {
                let d = self.deviation(p, "critical").await;
                for event in ["triage", "start_investigation"] {
                    self.step(
                        &format!("/api/v1/deviations/{d}/transitions"),
                        json!({"event": event}),
                    )
                    .await;
                }
                who.post(
                    &format!("/api/v1/programs/{p}/production-release"),
                    signed(json!({"reason": "contained, investigation under way"})),
                )
                .await
            }
            Action::HandleCapa => {
                let d = self.deviation(p, "minor").await;
                who.post(
                    &format!("/api/v1/programs/{p}/capas"),
                    json!({"title": "Replace gaskets", "description": "Corrective", "source": "deviation", "deviation_ids": [d]}),
                )
                .await
            }
            Action::CancelCapa => {
                let c = self.capa(p).await;
                who.post(
                    &format!("/api/v1/capas/{c}/transitions"),
                    json!({"event": "cancel", "reason": "duplicate"}),
                )
                .await
            }
            Action::SignCapa => {
                let c = self.capa(p).await;
                self.s
                    .pm
                    .post(
                        &format!("/api/v1/capas/{c}/actions"),
                        json!({"kind": "corrective", "title": "Replace gaskets", "owner_user_id": self.s.pm_id,
                               "due_date": today}),
                    )
                    .await
                    .expect(201);
                who.post(
                    &format!("/api/v1/capas/{c}/transitions"),
                    signed(json!({"event": "approve_plan"})),
                )
                .await
            }
            Action::HandleChange => {
                who.post(
                    &format!("/api/v1/programs/{p}/change-requests"),
                    json!({"title": "Switch filter supplier", "description": "Supplier B", "justification": "A discontinues",
                           "classification": "minor"}),
                )
                .await
            }
            Action::ApproveChange => {
                let c = self
                    .s
                    .pm
                    .post(
                        &format!("/api/v1/programs/{p}/change-requests"),
                        json!({"title": "Switch filter supplier", "description": "Supplier B", "justification": "A discontinues",
                               "classification": "minor"}),
                    )
                    .await
                    .expect(201)
                    .body["id"]
                    .as_i64()
                    .unwrap();
                let path = format!("/api/v1/change-requests/{c}");
                self.s
                    .pm
                    .patch(
                        &path,
                        json!({"version": 1, "impact_product_quality": "none", "impact_validation": "none",
                               "impact_regulatory": "annual report", "reason": "change board assessment"}),
                    )
                    .await
                    .expect(200);
                self.s
                    .pm
                    .post(&format!("{path}/transitions"), json!({"event": "submit"}))
                    .await
                    .expect(200);
                who.post(
                    &format!("{path}/transitions"),
                    signed(json!({"event": "approve", "reason": "impact acceptable"})),
                )
                .await
            }
            Action::OpenOrAcknowledgeEscalation => {
                let e = self.escalation(p).await;
                who.post(
                    &format!("/api/v1/escalations/{e}/ack"),
                    json!({"note": "on my way"}),
                )
                .await
            }
            Action::ResolveEscalation => {
                let e = self.escalation(p).await;
                who.post(
                    &format!("/api/v1/escalations/{e}/resolve"),
                    json!({"reason": "handled"}),
                )
                .await
            }
        }
    }
}

/// The whole matrix through the API: every person of every column (role × side) tries
/// every action on a record brought to where the action is legal. A permitted action goes
/// through (2xx); any other is refused with 403, before any password is checked.
async fn every_cell_of_the_matrix_is_what_the_api_does(app: &TestApp) {
    // REQ: SEC-PERMISSION-MATRIX
    let s = crate::programs::program_setup(app).await;
    let cmo_org_id =
        s.pm.get(&format!("/api/v1/programs/{}", s.program_id))
            .await
            .body["cmo_org_id"]
            .as_i64()
            .unwrap();
    // One person per column: the sponsor's people invited by Acme's admin, the CMO's by
    // the CMO's admin. Everyone has certified their signature.
    let mut people = Vec::new();
    for (side, role) in COLUMNS {
        let email = format!(
            "walk-{}@{}",
            wire(role),
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
    let sponsor_qa = people
        .iter()
        .find(|(side, role, _)| *side == Side::Sponsor && *role == Role::Quality)
        .map(|(_, _, c)| c.clone())
        .unwrap();
    let walk = Walk {
        app,
        s,
        sponsor_qa,
        cmo_org_id,
    };
    let mut cells = 0;
    for (action, wording) in entity::access::ACTIONS {
        for (side, role, who) in &people {
            let r = walk.attempt(action, who).await;
            let cell = format!("{wording} / {side:?} {role:?}");
            if permits(*role, *side, action) {
                assert!(
                    r.status.is_success(),
                    "{cell}: allowed, but {} {}",
                    r.status,
                    r.text
                );
            } else {
                assert_eq!(r.status, 403, "{cell}: refused, but {}", r.text);
                assert_eq!(r.body["code"], "forbidden", "{cell}");
            }
            cells += 1;
        }
    }
    assert_eq!(cells, entity::access::ACTIONS.len() * COLUMNS.len());
}
on_both_databases!(every_cell_of_the_matrix_is_what_the_api_does);
