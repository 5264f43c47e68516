//! Electronic signatures (21 CFR Part 11 style): who signed what, when, meaning what,
//! bound to the record by the record's hash at signing time.

use crate::audit_trail::{self, Actor, Entry};
use crate::enums::{Role, SignatureMeaning, SignedRecordType};
use chrono::{DateTime, Utc};
use sea_orm::entity::prelude::*;
use sea_orm::{ActiveValue::NotSet, ActiveValue::Set, ConnectionTrait};
use serde::Serialize;
use utoipa::ToSchema;

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
    /// What was signed: the record's signed fields as they were (JSON object; `None` for
    /// signatures written before snapshots were kept).
    pub signed_content: Option<String>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}

/// Failed password checks (signatures, password changes) that lock a person's signing.
pub const LOCKOUT_THRESHOLD: usize = 5;
/// The failures must fall within this window of each other.
pub const LOCKOUT_WINDOW: chrono::TimeDelta = chrono::TimeDelta::minutes(15);
/// How long a lockout lasts, counted from the failure that caused it.
pub const LOCKOUT_DURATION: chrono::TimeDelta = chrono::TimeDelta::minutes(15);
/// How far back failures can matter: a window of them plus the lock they cause.
pub const LOCKOUT_LOOKBACK: chrono::TimeDelta = chrono::TimeDelta::minutes(15 + 15);

/// When the lockout caused by `failures` (ascending) ends: five failures within 15
/// minutes lock the person's signing and password changes for 15 minutes from the fifth.
/// Attempts while locked are refused without a password check, so they are not failures.
pub fn locked_until(failures: &[DateTimeUtc]) -> Option<DateTimeUtc> {
    failures
        .windows(LOCKOUT_THRESHOLD)
        .filter(|w| w[LOCKOUT_THRESHOLD - 1] - w[0] <= LOCKOUT_WINDOW)
        .map(|w| w[LOCKOUT_THRESHOLD - 1] + LOCKOUT_DURATION)
        .max()
}

/// The time left of a lockout at `now`, if locked: what `Retry-After` says.
pub fn lockout_left(failures: &[DateTimeUtc], now: DateTimeUtc) -> Option<chrono::TimeDelta> {
    locked_until(failures)
        .filter(|until| *until > now)
        .map(|until| until - now)
}

/// Who signs `record_type`, in words (what a refused signer is told).
pub fn who_signs(record_type: SignedRecordType) -> &'static str {
    match record_type {
        SignedRecordType::AuditEvent => "audit-trail reviews are signed by quality or an admin",
        SignedRecordType::GateDecision => {
            "a gate decision is signed by a program manager or a quality user"
        }
        SignedRecordType::DeviationClosure => "closing a deviation is signed by a quality user",
        SignedRecordType::ProductionRelease => "releasing production is signed by quality",
        SignedRecordType::Capa => "CAPA plan approval and closure are signed by quality",
        SignedRecordType::ChangeRequest => {
            "change decisions are signed by program managers or quality"
        }
        SignedRecordType::CmoQualification => {
            "approving and disqualifying a CMO are signed by quality"
        }
        SignedRecordType::SelectionDecision => {
            "the selection is signed by a sponsor program manager or quality user"
        }
    }
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

/// The person signing, as the request authenticated them (their password was re-checked
/// before any write).
#[derive(Debug, Clone)]
pub struct Signer {
    pub org_id: i64,
    pub user_id: i64,
    /// Printed on the signature (§11.50).
    pub name: String,
    /// The API token the signing request was made with.
    pub token_id: i64,
    pub request_id: Option<String>,
    pub chain_keys: crate::audit::ChainKeys,
}

impl Signer {
    pub fn actor(&self, at: DateTimeUtc) -> Actor {
        Actor {
            org_id: self.org_id,
            user_id: Some(self.user_id),
            request_id: self.request_id.clone(),
            at,
            chain_keys: self.chain_keys.clone(),
        }
    }
}

/// What is being signed, and how.
#[derive(Debug, Clone)]
pub struct SignatureRecord {
    pub record_type: SignedRecordType,
    /// Canonical id of the record (as it is written everywhere else).
    pub record_id: String,
    /// SHA-256 of the signed content (for an audit event: its chain hash).
    pub record_hash: String,
    /// The record's signed fields as they are when signing.
    pub signed_content: Option<serde_json::Value>,
    pub meaning: SignatureMeaning,
    pub reason: Option<String>,
}

impl SignatureRecord {
    /// A signature over `content` (the record's signed fields), bound by its hash.
    pub fn covering(
        record_type: SignedRecordType,
        record_id: String,
        content: serde_json::Value,
        meaning: SignatureMeaning,
        reason: Option<String>,
    ) -> Self {
        Self {
            record_type,
            record_id,
            record_hash: crate::audit::content_hash(&content),
            signed_content: Some(content),
            meaning,
            reason,
        }
    }
}

/// The signed fields of `record` (a record as people see it): what a signature covering
/// `fields` binds. A field the record lacks reads as null, so a renamed field cannot
/// silently drop out of what is signed (a test checks every listed field exists).
pub fn signed_fields(record: &serde_json::Value, fields: &[&str]) -> serde_json::Value {
    serde_json::Value::Object(
        fields
            .iter()
            .map(|f| {
                (
                    (*f).to_string(),
                    record.get(*f).cloned().unwrap_or(serde_json::Value::Null),
                )
            })
            .collect(),
    )
}

/// Whether a signed record still reads as it was signed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum RecordState {
    /// Every signed field still has the value it had when signed.
    Matching,
    /// A signed field changed after signing (see `changed_fields`).
    NoLongerMatching,
    /// Nothing to compare with: signed before snapshots of signed fields were kept, or
    /// the record cannot be read by the one asking.
    NotCheckable,
}

/// Compares what was signed with the record as it reads now: the state and the signed
/// fields that changed, in signed order. A field the record can no longer say (absent
/// from `current`, like a gate's checklist once a later round reworks it) is not compared.
pub fn compare(
    signed: &serde_json::Value,
    current: &serde_json::Value,
) -> (RecordState, Vec<String>) {
    let Some(fields) = signed.as_object() else {
        return (RecordState::NotCheckable, Vec::new());
    };
    let changed: Vec<String> = fields
        .iter()
        .filter(|(k, v)| current.get(k.as_str()).is_some_and(|n| n != *v))
        .map(|(k, _)| k.clone())
        .collect();
    if changed.is_empty() {
        (RecordState::Matching, changed)
    } else {
        (RecordState::NoLongerMatching, changed)
    }
}

#[derive(Debug, Clone, Serialize, ToSchema)]
#[schema(example = json!({
    "id": 9, "signer_user_id": 3, "signer_name": "Quinn Alvarez", "token_id": 5, "meaning": "reviewed",
    "record_type": "audit_event", "record_id": "17",
    "record_hash": "4e7a0c…", "reason": "monthly audit-trail review",
    "signed_at": "2026-11-23T09:00:00Z",
    "manifestation": "Quinn Alvarez — reviewed — 2026-11-23 09:00:00 UTC",
    "signed_fields": {"id": 17, "record_type": "deviation", "record_id": "41", "action": "close",
        "hash": "4e7a0c…"},
    "record_state": "matching", "changed_fields": []
}))]
pub struct SignatureView {
    pub id: i64,
    pub signer_user_id: i64,
    /// The signer's name when signing.
    pub signer_name: String,
    /// The API token the signing request was made with.
    pub token_id: i64,
    pub meaning: SignatureMeaning,
    pub record_type: SignedRecordType,
    pub record_id: String,
    /// SHA-256 of the record's content when signed.
    pub record_hash: String,
    pub reason: Option<String>,
    pub signed_at: DateTime<Utc>,
    /// The signature as a person reads it (21 CFR 11.50): printed name, date and time
    /// with its zone, and meaning.
    pub manifestation: String,
    /// What was signed: the record's signed fields as they were when signed (which
    /// fields, per record type and step, the README lists). Null for signatures written
    /// before these snapshots were kept.
    #[schema(value_type = Option<Object>)]
    pub signed_fields: Option<serde_json::Value>,
    /// Whether the record still reads as signed: `no_longer_matching` once one of the
    /// signed fields changed (only those count) or the record is gone.
    pub record_state: RecordState,
    /// The signed fields whose value changed since signing.
    pub changed_fields: Vec<String>,
}

impl SignatureView {
    /// This signature judged against its record as it reads now (`None`: the record
    /// cannot be read).
    pub fn checked_against(mut self, current: Option<&serde_json::Value>) -> Self {
        (self.record_state, self.changed_fields) = match (&self.signed_fields, current) {
            (Some(signed), Some(current)) => compare(signed, current),
            _ => (RecordState::NotCheckable, Vec::new()),
        };
        self
    }
}

/// What each person certifies once before their first signature (21 CFR 11.100(c)).
pub const CERTIFICATION: &str = "I certify that my electronic signature in cmo-orchestrator \
    is the legally binding equivalent of my handwritten signature.";

/// A signature as a person reads it: "Quinn Alvarez — approved — 2026-12-01 14:05:09 UTC".
pub fn manifestation(name: &str, meaning: SignatureMeaning, at: DateTime<Utc>) -> String {
    format!(
        "{name} \u{2014} {} \u{2014} {}",
        crate::enums::wire_name(&meaning),
        at.format("%Y-%m-%d %H:%M:%S UTC")
    )
}

impl From<&Model> for SignatureView {
    fn from(m: &Model) -> Self {
        Self {
            id: m.id,
            signer_user_id: m.signer_user_id,
            signer_name: m.signer_name.clone(),
            token_id: m.token_id,
            meaning: m.meaning,
            record_type: m.record_type,
            record_id: m.record_id.clone(),
            record_hash: m.record_hash.clone(),
            reason: m.reason.clone(),
            signed_at: m.signed_at,
            manifestation: manifestation(&m.signer_name, m.meaning, m.signed_at),
            signed_fields: m
                .signed_content
                .as_deref()
                .and_then(|c| serde_json::from_str(c).ok()),
            // As written: unchecked until compared with the record.
            record_state: if m.signed_content.is_some() {
                RecordState::Matching
            } else {
                RecordState::NotCheckable
            },
            changed_fields: Vec::new(),
        }
    }
}

/// Writes the signature and its audit event, in the caller's transaction. The signer's
/// password must have been checked first (the api does that, with the lockout rule).
pub async fn record<C: ConnectionTrait>(
    conn: &C,
    signer: &Signer,
    at: DateTime<Utc>,
    what: SignatureRecord,
) -> Result<Model, DbErr> {
    let sig = ActiveModel {
        id: NotSet,
        org_id: Set(signer.org_id),
        signer_user_id: Set(signer.user_id),
        signer_name: Set(signer.name.clone()),
        token_id: Set(signer.token_id),
        meaning: Set(what.meaning),
        record_type: Set(what.record_type),
        record_id: Set(what.record_id),
        record_hash: Set(what.record_hash),
        reason: Set(what.reason.clone()),
        signed_at: Set(at),
        signed_content: Set(what.signed_content.map(|c| c.to_string())),
    }
    .insert(conn)
    .await?;
    audit_trail::append(
        conn,
        &signer.actor(at),
        Entry::new("signature", sig.id, "sign")
            .after(serde_json::to_value(SignatureView::from(&sig)).unwrap_or_default())
            .reason(what.reason),
    )
    .await?;
    Ok(sig)
}

#[cfg(test)]
mod tests {
    #[test]
    fn only_a_change_to_a_signed_field_breaks_the_match() {
        use serde_json::json;
        let record = json!({"id": 4, "title": "Gaskets", "status": "closed", "version": 3});
        let signed = super::signed_fields(&record, &["id", "title", "status"]);
        assert_eq!(
            signed,
            json!({"id": 4, "title": "Gaskets", "status": "closed"})
        );
        // Bookkeeping moves on: still matching.
        let later = json!({"id": 4, "title": "Gaskets", "status": "closed", "version": 9});
        assert_eq!(
            super::compare(&signed, &later),
            (super::RecordState::Matching, vec![])
        );
        let edited = json!({"id": 4, "title": "Seals", "status": "closed", "version": 4});
        assert_eq!(
            super::compare(&signed, &edited),
            (
                super::RecordState::NoLongerMatching,
                vec!["title".to_string()]
            )
        );
        // A field the record no longer says is not compared.
        let reworked = json!({"id": 4, "status": "closed"});
        assert_eq!(
            super::compare(&signed, &reworked).0,
            super::RecordState::Matching
        );
        // A listed field the record lacks is signed as null, never dropped.
        assert_eq!(
            super::signed_fields(&record, &["id", "batch"]),
            json!({"id": 4, "batch": null})
        );
    }

    #[test]
    fn a_signature_reads_with_name_meaning_and_zoned_time() {
        use chrono::TimeZone;
        let at = chrono::Utc.with_ymd_and_hms(2026, 12, 1, 14, 5, 9).unwrap();
        assert_eq!(
            super::manifestation(
                "Quinn Alvarez",
                crate::enums::SignatureMeaning::Approved,
                at
            ),
            "Quinn Alvarez \u{2014} approved \u{2014} 2026-12-01 14:05:09 UTC"
        );
    }

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

    fn at(minute: i64, second: i64) -> DateTimeUtc {
        use chrono::TimeZone;
        chrono::Utc
            .with_ymd_and_hms(2026, 11, 18, 10, 0, 0)
            .unwrap()
            + chrono::TimeDelta::minutes(minute)
            + chrono::TimeDelta::seconds(second)
    }

    #[test]
    fn the_fifth_failure_within_fifteen_minutes_locks_for_fifteen_minutes_from_it() {
        let four = [at(0, 0), at(1, 0), at(2, 0), at(3, 0)];
        assert_eq!(locked_until(&four), None);
        let five = [at(0, 0), at(1, 0), at(2, 0), at(3, 0), at(14, 0)];
        assert_eq!(locked_until(&five), Some(at(29, 0)));
        // Retry-After is the time left, not a constant.
        assert_eq!(
            lockout_left(&five, at(14, 0)),
            Some(chrono::TimeDelta::minutes(15))
        );
        assert_eq!(
            lockout_left(&five, at(28, 30)),
            Some(chrono::TimeDelta::seconds(30))
        );
        assert_eq!(lockout_left(&five, at(29, 0)), None);
        // Spread over more than 15 minutes: no lock.
        let spread = [at(0, 0), at(4, 0), at(8, 0), at(12, 0), at(15, 1)];
        assert_eq!(locked_until(&spread), None);
        // Exactly 15 minutes from first to fifth still counts.
        let edge = [at(0, 0), at(4, 0), at(8, 0), at(12, 0), at(15, 0)];
        assert_eq!(locked_until(&edge), Some(at(30, 0)));
        // A later burst locks again from its own fifth failure.
        let again = [
            at(0, 0),
            at(0, 1),
            at(0, 2),
            at(0, 3),
            at(0, 4),
            at(16, 0),
            at(16, 1),
            at(16, 2),
            at(16, 3),
            at(16, 4),
        ];
        assert_eq!(locked_until(&again), Some(at(31, 4)));
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
