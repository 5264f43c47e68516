//! What each e-signed step signs: the record type, the meaning and the fields of the
//! record its signature covers (a later change to one of them, and only to them, shows
//! the signature as no longer matching). The README's table is generated from here.

use crate::enums::{SignatureMeaning, SignedRecordType};

/// How a step is e-signed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Signing {
    pub record_type: SignedRecordType,
    pub meaning: SignatureMeaning,
    /// The fields of the record (as people see it) that the signature covers: only a
    /// later change to one of them shows the signature as no longer matching.
    pub covers: &'static [&'static str],
}

/// Every signed step and the fields of its record (as the record's endpoint shows it)
/// that its signature covers: the README's table.
pub const SIGNED_STEPS: &[(SignedRecordType, &str, &[&str])] = &[
    (
        SignedRecordType::GateDecision,
        "a gate decision (go or no-go)",
        crate::gate::SIGNED_FIELDS,
    ),
    (
        SignedRecordType::DeviationClosure,
        "closing a deviation",
        crate::deviation::CLOSURE_SIGNED_FIELDS,
    ),
    (
        SignedRecordType::ProductionRelease,
        "releasing production",
        super::production::RELEASE_SIGNED_FIELDS,
    ),
    (
        SignedRecordType::Capa,
        "approving a CAPA plan",
        crate::capa::PLAN_SIGNED_FIELDS,
    ),
    (
        SignedRecordType::Capa,
        "closing a CAPA",
        crate::capa::CLOSURE_SIGNED_FIELDS,
    ),
    (
        SignedRecordType::ChangeRequest,
        "approving or rejecting a change",
        crate::change_request::DECISION_SIGNED_FIELDS,
    ),
    (
        SignedRecordType::CmoQualification,
        "approving or disqualifying a CMO",
        crate::cmo::QUALIFICATION_SIGNED_FIELDS,
    ),
    (
        SignedRecordType::SelectionDecision,
        "choosing a CMO in a selection",
        crate::selection::DECISION_SIGNED_FIELDS,
    ),
    (
        SignedRecordType::AuditEvent,
        "reviewing an audit-trail entry",
        crate::audit_event::REVIEW_SIGNED_FIELDS,
    ),
];

/// [`SIGNED_STEPS`] as a Markdown table.
pub fn signed_fields_markdown() -> String {
    let mut out = String::from("| record type | signed step | signed fields |\n|---|---|---|\n");
    for (record_type, step, fields) in SIGNED_STEPS {
        let fields: Vec<String> = fields.iter().map(|f| format!("`{f}`")).collect();
        out.push_str(&format!(
            "| `{}` | {step} | {} |\n",
            crate::enums::wire_name(record_type),
            fields.join(", ")
        ));
    }
    out
}
