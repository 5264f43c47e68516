//! Who may do what on a program: the permission matrix (role × sponsor/CMO side ×
//! action), as pure rules. Handlers ask [`permits`]; the README's table is
//! [`matrix_markdown`], so the documented matrix is the enforced one.
//!
//! The quality logic (SPEC §4, 21 CFR 211.22: the sponsor's quality unit has the final
//! say over the product): a CMO's people report, triage, investigate and act on quality
//! events, but what lowers the sponsor's guard is the sponsor's alone. Downgrading a
//! deviation's criticality, cancelling a deviation or a CAPA, and resolving an
//! escalation (each of which can end an escalation or a production hold) are refused to
//! the CMO side; raising a criticality is open to both.

use crate::enums::{Role, SignatureMeaning, SignedRecordType};

/// The caller, as far as program permissions go.
#[derive(Debug, Clone, Copy)]
pub struct Caller {
    pub user_id: i64,
    pub org_id: i64,
    pub role: Role,
}

/// The program's two sides.
#[derive(Debug, Clone, Copy)]
pub struct ProgramSides {
    pub sponsor_org_id: i64,
    pub cmo_org_id: i64,
}

/// Which side of a program a person is on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    Sponsor,
    Cmo,
}

impl ProgramSides {
    /// The side `org_id` is on, if it is party to the program.
    pub fn side_of(&self, org_id: i64) -> Option<Side> {
        if org_id == self.sponsor_org_id {
            Some(Side::Sponsor)
        } else if org_id == self.cmo_org_id {
            Some(Side::Cmo)
        } else {
            None
        }
    }
}

/// What people do on a program, one row of the permission matrix each.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    ManageProgram,
    UpdatePlan,
    DecideGate,
    ReportDeviation,
    HandleDeviation,
    DowngradeDeviation,
    CancelDeviation,
    CloseDeviation,
    ReleaseProduction,
    HandleCapa,
    CancelCapa,
    SignCapa,
    HandleChange,
    ApproveChange,
    OpenOrAcknowledgeEscalation,
    ResolveEscalation,
}

/// Every action, in the matrix's order, with the row's wording.
pub const ACTIONS: [(Action, &str); 16] = [
    (
        Action::ManageProgram,
        "Create and edit programs, their team, re-baseline",
    ),
    (
        Action::UpdatePlan,
        "Add milestones, update forecasts and status (also a milestone's owner)",
    ),
    (Action::DecideGate, "Decide a gate (signed)"),
    (Action::ReportDeviation, "Report a deviation"),
    (
        Action::HandleDeviation,
        "Triage, investigate, edit a deviation; raise its criticality",
    ),
    (
        Action::DowngradeDeviation,
        "Lower a deviation's criticality",
    ),
    (Action::CancelDeviation, "Cancel a deviation"),
    (Action::CloseDeviation, "Close a deviation (signed)"),
    (Action::ReleaseProduction, "Release production (signed)"),
    (
        Action::HandleCapa,
        "Create and run a CAPA, its actions and effectiveness check",
    ),
    (Action::CancelCapa, "Cancel a CAPA"),
    (
        Action::SignCapa,
        "Approve a CAPA plan, close a CAPA (signed)",
    ),
    (Action::HandleChange, "Create and run a change request"),
    (
        Action::ApproveChange,
        "Approve or reject a change (signed; a major one: quality)",
    ),
    (
        Action::OpenOrAcknowledgeEscalation,
        "Open or acknowledge an escalation",
    ),
    (Action::ResolveEscalation, "Resolve an escalation"),
];

fn manages(role: Role) -> bool {
    matches!(role, Role::Admin | Role::ProgramManager)
}

/// The permission matrix: may a person with `role` on `side` of a program do `action`?
pub fn permits(role: Role, side: Side, action: Action) -> bool {
    use crate::signature::may_sign;
    let sponsor = side == Side::Sponsor;
    let approves = |t| may_sign(role, t, SignatureMeaning::Approved);
    match action {
        // The sponsor owns the plan.
        Action::ManageProgram => sponsor && manages(role),
        // CMO project managers report status too.
        Action::UpdatePlan => manages(role),
        Action::DecideGate => sponsor && approves(SignedRecordType::GateDecision),
        Action::ReportDeviation | Action::OpenOrAcknowledgeEscalation => role != Role::Viewer,
        Action::HandleDeviation | Action::HandleCapa | Action::HandleChange => {
            role.handles_quality_records()
        }
        // What lowers the sponsor's guard is the sponsor's (see the module's note).
        Action::DowngradeDeviation | Action::CancelDeviation | Action::CancelCapa => {
            sponsor && role.handles_quality_records()
        }
        Action::ResolveEscalation => sponsor && role != Role::Viewer,
        Action::CloseDeviation => approves(SignedRecordType::DeviationClosure),
        Action::ReleaseProduction => sponsor && approves(SignedRecordType::ProductionRelease),
        Action::SignCapa => approves(SignedRecordType::Capa),
        Action::ApproveChange => approves(SignedRecordType::ChangeRequest),
    }
}

/// Why `action` is refused, for a 403 and a `blocked_events` reason.
pub fn refusal(action: Action) -> &'static str {
    match action {
        Action::ManageProgram => "the sponsor's admins and program managers manage the program",
        Action::UpdatePlan => "program managers, admins and a milestone's owner update the plan",
        Action::DecideGate => {
            "gate decisions are signed by the sponsor's program managers and quality users"
        }
        Action::ReportDeviation | Action::OpenOrAcknowledgeEscalation => {
            "viewers do not report deviations or open and acknowledge escalations"
        }
        Action::HandleDeviation => "only quality, program managers and admins handle deviations",
        Action::HandleCapa => "only quality, program managers and admins handle CAPAs",
        Action::HandleChange => "only quality, program managers and admins handle change requests",
        Action::DowngradeDeviation => {
            "lowering a deviation's criticality is the sponsor's quality decision"
        }
        Action::CancelDeviation => "cancelling a deviation is the sponsor's quality decision",
        Action::CancelCapa => "cancelling a CAPA is the sponsor's quality decision",
        Action::ResolveEscalation => "an escalation is resolved by the sponsor",
        Action::CloseDeviation => "closing a deviation is signed by a quality user",
        Action::ReleaseProduction => "production is released by a quality user of the sponsor",
        Action::SignCapa => "a CAPA is signed by a quality user",
        Action::ApproveChange => "a change is approved by a program manager or a quality user",
    }
}

/// The columns of the matrix: each side's roles.
pub const COLUMNS: [(Side, Role); 10] = [
    (Side::Sponsor, Role::Admin),
    (Side::Sponsor, Role::ProgramManager),
    (Side::Sponsor, Role::Quality),
    (Side::Sponsor, Role::Contributor),
    (Side::Sponsor, Role::Viewer),
    (Side::Cmo, Role::Admin),
    (Side::Cmo, Role::ProgramManager),
    (Side::Cmo, Role::Quality),
    (Side::Cmo, Role::Contributor),
    (Side::Cmo, Role::Viewer),
];

/// The matrix as the README shows it (a test keeps the README's copy identical).
pub fn matrix_markdown() -> String {
    let role = |r: Role| match r {
        Role::Admin => "admin",
        Role::ProgramManager => "PM",
        Role::Quality => "QA",
        Role::Contributor => "contrib.",
        Role::Viewer => "viewer",
    };
    let mut out = String::from("| action |");
    for (side, r) in COLUMNS {
        let side = if side == Side::Sponsor {
            "sponsor"
        } else {
            "CMO"
        };
        out.push_str(&format!(" {side} {} |", role(r)));
    }
    out.push_str("\n|---|");
    out.push_str(&"---|".repeat(COLUMNS.len()));
    out.push('\n');
    for (action, wording) in ACTIONS {
        out.push_str(&format!("| {wording} |"));
        for (side, r) in COLUMNS {
            out.push_str(if permits(r, side, action) {
                " ✓ |"
            } else {
                " |"
            });
        }
        out.push('\n');
    }
    out
}

/// Creating programs, editing them and their team, re-baselining: the sponsor's admins
/// and program managers. The sponsor owns the plan.
pub fn may_manage_program(caller: Caller, program: ProgramSides) -> bool {
    program
        .side_of(caller.org_id)
        .is_some_and(|side| permits(caller.role, side, Action::ManageProgram))
}

/// Adding milestones, updating forecasts and status: program managers and admins on
/// either side (CMO project managers report status too), and a milestone's owner.
pub fn may_update_plan(caller: Caller, program: ProgramSides, owner_user_id: Option<i64>) -> bool {
    program.side_of(caller.org_id).is_some_and(|side| {
        permits(caller.role, side, Action::UpdatePlan)
            || owner_user_id == Some(caller.user_id) && caller.role != Role::Viewer
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const SIDES: ProgramSides = ProgramSides {
        sponsor_org_id: 1,
        cmo_org_id: 2,
    };

    fn caller(org_id: i64, role: Role) -> Caller {
        Caller {
            user_id: 10,
            org_id,
            role,
        }
    }

    #[test]
    fn what_lowers_the_sponsors_guard_is_the_sponsors() {
        for action in [
            Action::DowngradeDeviation,
            Action::CancelDeviation,
            Action::CancelCapa,
            Action::ResolveEscalation,
        ] {
            for role in [Role::Admin, Role::ProgramManager, Role::Quality] {
                assert!(permits(role, Side::Sponsor, action), "{action:?} {role:?}");
                assert!(!permits(role, Side::Cmo, action), "{action:?} {role:?}");
            }
        }
        // Raising a criticality and handling the record stay open to the CMO's quality.
        assert!(permits(Role::Quality, Side::Cmo, Action::HandleDeviation));
        assert!(permits(Role::Quality, Side::Cmo, Action::CloseDeviation));
        assert!(!permits(
            Role::Quality,
            Side::Cmo,
            Action::ReleaseProduction
        ));
    }

    #[test]
    fn the_matrix_has_a_row_per_action_and_a_column_per_role_and_side() {
        let table = matrix_markdown();
        assert_eq!(table.lines().count(), 2 + ACTIONS.len());
        assert!(
            table
                .lines()
                .all(|l| l.matches('|').count() == 2 + COLUMNS.len())
        );
    }

    #[test]
    fn only_the_sponsors_managers_manage_the_program() {
        assert!(may_manage_program(caller(1, Role::Admin), SIDES));
        assert!(may_manage_program(caller(1, Role::ProgramManager), SIDES));
        assert!(!may_manage_program(caller(1, Role::Quality), SIDES));
        assert!(!may_manage_program(caller(2, Role::ProgramManager), SIDES));
        assert!(!may_manage_program(caller(3, Role::Admin), SIDES));
    }

    #[test]
    fn managers_on_both_sides_and_owners_update_the_plan() {
        assert!(may_update_plan(
            caller(2, Role::ProgramManager),
            SIDES,
            None
        ));
        assert!(may_update_plan(caller(1, Role::Admin), SIDES, None));
        assert!(!may_update_plan(
            caller(1, Role::Contributor),
            SIDES,
            Some(99)
        ));
        assert!(may_update_plan(
            caller(1, Role::Contributor),
            SIDES,
            Some(10)
        ));
        assert!(!may_update_plan(caller(2, Role::Viewer), SIDES, Some(10)));
        assert!(!may_update_plan(
            caller(3, Role::ProgramManager),
            SIDES,
            None
        ));
    }
}
