//! Electronic signatures (21 CFR Part 11 style): who signed what, when, meaning what,
//! bound to the record by the record's hash at signing time.

use crate::enums::{Role, SignatureMeaning, SignedRecordType};
use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "signatures")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    pub org_id: i64,
    pub signer_user_id: i64,
    /// The signer's name as it was when signing (§11.50 requires the printed name).
    pub signer_name: String,
    /// The API token the signing request was made with.
    pub token_id: i64,
    pub meaning: SignatureMeaning,
    pub record_type: SignedRecordType,
    pub record_id: String,
    /// SHA-256 of the signed record's content, so a later change to the record shows.
    pub record_hash: String,
    pub reason: Option<String>,
    pub signed_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}

/// Failed password checks (signatures, password changes) tolerated within the window.
pub const LOCKOUT_THRESHOLD: u64 = 5;
/// How far back failed attempts count, and how long a lockout lasts at most.
pub const LOCKOUT_WINDOW: chrono::TimeDelta = chrono::TimeDelta::minutes(15);

/// Locked out after `LOCKOUT_THRESHOLD` failures within the window.
pub fn is_locked_out(recent_failures: u64) -> bool {
    recent_failures >= LOCKOUT_THRESHOLD
}

/// May a user with `role` sign `record_type` with `meaning`? Signatures are for people
/// accountable for decisions: quality and program managers; admins review the audit trail.
pub fn may_sign(role: Role, record_type: SignedRecordType, meaning: SignatureMeaning) -> bool {
    match record_type {
        SignedRecordType::AuditEvent => {
            matches!(
                meaning,
                SignatureMeaning::Reviewed | SignatureMeaning::Verified
            ) && matches!(role, Role::Quality | Role::Admin)
        }
        // SPEC §3: a gate decision is signed by a program manager or a quality user.
        SignedRecordType::GateDecision => {
            matches!(
                meaning,
                SignatureMeaning::Approved | SignatureMeaning::Rejected
            ) && matches!(role, Role::ProgramManager | Role::Quality)
        }
        // SPEC §4: closing a deviation and releasing production are quality decisions.
        SignedRecordType::DeviationClosure => {
            matches!(
                meaning,
                SignatureMeaning::Approved | SignatureMeaning::Verified
            ) && role == Role::Quality
        }
        SignedRecordType::ProductionRelease | SignedRecordType::Capa => {
            meaning == SignatureMeaning::Approved && role == Role::Quality
        }
        // Change approvals: program managers and quality (a major change needs quality,
        // which the change-control rules check).
        SignedRecordType::ChangeRequest => {
            matches!(
                meaning,
                SignatureMeaning::Approved | SignatureMeaning::Rejected
            ) && matches!(role, Role::ProgramManager | Role::Quality)
        }
        // SPEC §7: approving and disqualifying a CMO are quality decisions.
        // The selection decision: a sponsor program manager or quality.
        SignedRecordType::SelectionDecision => {
            meaning == SignatureMeaning::Approved
                && matches!(role, Role::ProgramManager | Role::Quality)
        }
        SignedRecordType::CmoQualification => {
            matches!(
                meaning,
                SignatureMeaning::Approved | SignatureMeaning::Rejected
            ) && role == Role::Quality
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_quality_and_admin_review_the_audit_trail() {
        let rt = SignedRecordType::AuditEvent;
        assert!(may_sign(Role::Quality, rt, SignatureMeaning::Reviewed));
        assert!(may_sign(Role::Admin, rt, SignatureMeaning::Verified));
        assert!(!may_sign(
            Role::ProgramManager,
            rt,
            SignatureMeaning::Reviewed
        ));
        assert!(!may_sign(Role::Contributor, rt, SignatureMeaning::Reviewed));
        assert!(!may_sign(Role::Viewer, rt, SignatureMeaning::Reviewed));
    }

    #[test]
    fn the_fifth_failure_locks_out() {
        assert!(!is_locked_out(0));
        assert!(!is_locked_out(LOCKOUT_THRESHOLD - 1));
        assert!(is_locked_out(LOCKOUT_THRESHOLD));
    }

    #[test]
    fn gate_decisions_are_signed_by_program_managers_and_quality() {
        let rt = SignedRecordType::GateDecision;
        assert!(may_sign(
            Role::ProgramManager,
            rt,
            SignatureMeaning::Approved
        ));
        assert!(may_sign(Role::Quality, rt, SignatureMeaning::Rejected));
        assert!(!may_sign(Role::Admin, rt, SignatureMeaning::Approved));
        assert!(!may_sign(Role::Quality, rt, SignatureMeaning::Reviewed));
    }

    #[test]
    fn an_audit_event_is_reviewed_not_approved() {
        let rt = SignedRecordType::AuditEvent;
        assert!(!may_sign(Role::Quality, rt, SignatureMeaning::Approved));
        assert!(!may_sign(Role::Quality, rt, SignatureMeaning::Rejected));
    }
}
