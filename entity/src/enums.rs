//! Status and kind enums stored as short strings (no database enum types, so adding a
//! variant never needs `ALTER TYPE`).

use sea_orm::entity::prelude::*;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// The wire name of an enum value (`in_progress`), as clients see it in JSON. Every
/// stored `string_value` is the same word today, but only the serde name is the contract.
pub fn wire_name<T: Serialize>(value: &T) -> String {
    serde_json::to_value(value)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_default()
}

/// Whether an organization is the sponsor running the programs or a contract manufacturer.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    EnumIter,
    DeriveActiveEnum,
    Serialize,
    Deserialize,
    ToSchema,
)]
#[sea_orm(rs_type = "String", db_type = "String(StringLen::N(16))")]
#[serde(rename_all = "snake_case")]
pub enum OrgKind {
    #[sea_orm(string_value = "sponsor")]
    Sponsor,
    #[sea_orm(string_value = "cmo")]
    Cmo,
}

/// A user's role inside their own organization (SPEC §2).
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    EnumIter,
    DeriveActiveEnum,
    Serialize,
    Deserialize,
    ToSchema,
)]
#[sea_orm(rs_type = "String", db_type = "String(StringLen::N(32))")]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Manages users, tokens and partner organizations of their own org.
    #[sea_orm(string_value = "admin")]
    Admin,
    #[sea_orm(string_value = "program_manager")]
    ProgramManager,
    /// QA: signs quality decisions.
    #[sea_orm(string_value = "quality")]
    Quality,
    /// Updates the items assigned to them.
    #[sea_orm(string_value = "contributor")]
    Contributor,
    #[sea_orm(string_value = "viewer")]
    Viewer,
}

impl Role {
    /// Administration of users, tokens of other users and partner organizations.
    pub fn is_admin(self) -> bool {
        self == Role::Admin
    }

    /// Runs quality workflows (deviations, CAPA, change control): quality, program
    /// managers and admins. Signing within them is narrower (see `signature::may_sign`).
    pub fn handles_quality_records(self) -> bool {
        matches!(self, Role::Quality | Role::ProgramManager | Role::Admin)
    }
}

/// What a signer states by signing (21 CFR Part 11 §11.50: the meaning of the signature).
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    EnumIter,
    DeriveActiveEnum,
    Serialize,
    Deserialize,
    ToSchema,
)]
#[sea_orm(rs_type = "String", db_type = "String(StringLen::N(16))")]
#[serde(rename_all = "snake_case")]
pub enum SignatureMeaning {
    #[sea_orm(string_value = "approved")]
    Approved,
    #[sea_orm(string_value = "reviewed")]
    Reviewed,
    #[sea_orm(string_value = "verified")]
    Verified,
    #[sea_orm(string_value = "rejected")]
    Rejected,
}

/// The kinds of record a signature can be bound to. Later features (gate decisions,
/// deviation closure, CAPA approval) add their own variants and sign inside their own
/// endpoints; the ones listed here may also be signed directly.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    EnumIter,
    DeriveActiveEnum,
    Serialize,
    Deserialize,
    ToSchema,
)]
#[sea_orm(rs_type = "String", db_type = "String(StringLen::N(32))")]
#[serde(rename_all = "snake_case")]
pub enum SignedRecordType {
    /// An entry of the audit trail, signed as part of a periodic audit-trail review.
    #[sea_orm(string_value = "audit_event")]
    AuditEvent,
    /// A go/no-go decision on a milestone's gate (signed inside the decision endpoint).
    #[sea_orm(string_value = "gate_decision")]
    GateDecision,
    /// Closure of a deviation (signed inside the transition).
    #[sea_orm(string_value = "deviation_closure")]
    DeviationClosure,
    /// Release of a program's production hold.
    #[sea_orm(string_value = "production_release")]
    ProductionRelease,
    /// CAPA plan approval and closure (signed inside the CAPA transition).
    #[sea_orm(string_value = "capa")]
    Capa,
    /// Approval or rejection of a change request.
    #[sea_orm(string_value = "change_request")]
    ChangeRequest,
    /// Approval or disqualification of a CMO (qualification).
    #[sea_orm(string_value = "cmo_qualification")]
    CmoQualification,
    /// The decision of a CMO selection (bid tab).
    #[sea_orm(string_value = "selection_decision")]
    SelectionDecision,
}
