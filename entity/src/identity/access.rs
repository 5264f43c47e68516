//! Who may do what on a program: pure rules over the caller's role and organization.

use crate::enums::Role;

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

fn manages(role: Role) -> bool {
    matches!(role, Role::Admin | Role::ProgramManager)
}

/// Creating programs, editing them and their team, re-baselining: the sponsor's admins
/// and program managers. The sponsor owns the plan.
pub fn may_manage_program(caller: Caller, program: ProgramSides) -> bool {
    caller.org_id == program.sponsor_org_id && manages(caller.role)
}

/// Adding milestones, updating forecasts and status: program managers and admins on
/// either side (CMO project managers report status too), and a milestone's owner.
pub fn may_update_plan(caller: Caller, program: ProgramSides, owner_user_id: Option<i64>) -> bool {
    let on_program = caller.org_id == program.sponsor_org_id || caller.org_id == program.cmo_org_id;
    on_program
        && (manages(caller.role)
            || owner_user_id == Some(caller.user_id) && caller.role != Role::Viewer)
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
