//! The CMO registry (SPEC §7): a profile per CMO organization (capabilities, contacts,
//! qualification status), its sites and their regulatory inspections.
//!
//! Qualification state machine: `prospect → under_evaluation → qualified → approved`;
//! `qualified`/`approved → probation → qualified` (reinstate); any state →
//! `disqualified` (signed by quality, with a reason) → `under_evaluation` (re-evaluate).
//! Approval is signed by quality too. Only `qualified` and `approved` CMOs may be named on
//! a program.

use sea_orm::entity::prelude::*;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

#[derive(
    Debug, Clone, Copy, PartialEq, Eq, EnumIter, DeriveActiveEnum, Serialize, Deserialize, ToSchema,
)]
#[sea_orm(rs_type = "String", db_type = "String(StringLen::N(24))")]
#[serde(rename_all = "snake_case")]
pub enum QualificationStatus {
    #[sea_orm(string_value = "prospect")]
    Prospect,
    #[sea_orm(string_value = "under_evaluation")]
    UnderEvaluation,
    #[sea_orm(string_value = "qualified")]
    Qualified,
    #[sea_orm(string_value = "approved")]
    Approved,
    #[sea_orm(string_value = "probation")]
    Probation,
    #[sea_orm(string_value = "disqualified")]
    Disqualified,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum QualificationEvent {
    StartEvaluation,
    Qualify,
    /// Signed by quality.
    Approve,
    Probation,
    Reinstate,
    /// Signed by quality.
    Disqualify,
    Reevaluate,
}

pub const ALL_EVENTS: [QualificationEvent; 7] = [
    QualificationEvent::StartEvaluation,
    QualificationEvent::Qualify,
    QualificationEvent::Approve,
    QualificationEvent::Probation,
    QualificationEvent::Reinstate,
    QualificationEvent::Disqualify,
    QualificationEvent::Reevaluate,
];

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum QualificationError {
    #[error("{event:?} is not possible from {from:?}")]
    NotAllowed {
        from: QualificationStatus,
        event: QualificationEvent,
    },
    #[error("this event needs a reason")]
    ReasonRequired,
}

/// Events that put the status somewhere a sponsor must be able to defend later.
pub fn needs_reason(event: QualificationEvent) -> bool {
    matches!(
        event,
        QualificationEvent::Probation
            | QualificationEvent::Reinstate
            | QualificationEvent::Disqualify
            | QualificationEvent::Reevaluate
    )
}

/// Approval and disqualification are e-signed by quality.
pub fn needs_signature(event: QualificationEvent) -> bool {
    matches!(
        event,
        QualificationEvent::Approve | QualificationEvent::Disqualify
    )
}

/// What approving or disqualifying a CMO signs: who it is, what it can make and where,
/// and the decision (its contacts and later inspections are not part of it).
pub const QUALIFICATION_SIGNED_FIELDS: &[&str] = &[
    "org_id",
    "name",
    "dosage_forms",
    "modalities",
    "sterile_fill_finish",
    "high_potency",
    "cold_chain",
    "max_batch_liters",
    "sites",
    "qualification_status",
    "qualification_reason",
];

pub fn transition(
    from: QualificationStatus,
    event: QualificationEvent,
    has_reason: bool,
) -> Result<QualificationStatus, QualificationError> {
    use QualificationEvent as E;
    use QualificationStatus as S;
    let to = match (from, event) {
        (S::Prospect, E::StartEvaluation) => S::UnderEvaluation,
        (S::UnderEvaluation, E::Qualify) => S::Qualified,
        (S::Qualified, E::Approve) => S::Approved,
        (S::Qualified | S::Approved, E::Probation) => S::Probation,
        (S::Probation, E::Reinstate) => S::Qualified,
        (S::Disqualified, E::Reevaluate) => S::UnderEvaluation,
        (s, E::Disqualify) if s != S::Disqualified => S::Disqualified,
        _ => return Err(QualificationError::NotAllowed { from, event }),
    };
    if needs_reason(event) && !has_reason {
        return Err(QualificationError::ReasonRequired);
    }
    Ok(to)
}

pub fn allowed_events(from: QualificationStatus) -> Vec<QualificationEvent> {
    ALL_EVENTS
        .into_iter()
        .filter(|e| transition(from, *e, true).is_ok())
        .collect()
}

/// Whether a program may name this CMO (and why not).
pub fn may_be_named(status: QualificationStatus) -> Result<(), String> {
    match status {
        QualificationStatus::Qualified | QualificationStatus::Approved => Ok(()),
        QualificationStatus::Probation => Err(
            "the CMO is on probation: reinstate it before naming it on a new program".to_string(),
        ),
        QualificationStatus::Disqualified => Err("the CMO is disqualified".to_string()),
        other => Err(format!(
            "the CMO is not qualified yet (status {}): evaluate and qualify it first",
            match other {
                QualificationStatus::Prospect => "prospect",
                _ => "under_evaluation",
            }
        )),
    }
}

#[derive(
    Debug, Clone, Copy, PartialEq, Eq, EnumIter, DeriveActiveEnum, Serialize, Deserialize, ToSchema,
)]
#[sea_orm(rs_type = "String", db_type = "String(StringLen::N(24))")]
#[serde(rename_all = "snake_case")]
pub enum Region {
    #[sea_orm(string_value = "eu")]
    Eu,
    #[sea_orm(string_value = "north_america")]
    NorthAmerica,
    #[sea_orm(string_value = "latin_america")]
    LatinAmerica,
    #[sea_orm(string_value = "asia_pacific")]
    AsiaPacific,
    #[sea_orm(string_value = "middle_east_africa")]
    MiddleEastAfrica,
    #[sea_orm(string_value = "other_europe")]
    OtherEurope,
}

#[derive(
    Debug, Clone, Copy, PartialEq, Eq, EnumIter, DeriveActiveEnum, Serialize, Deserialize, ToSchema,
)]
#[sea_orm(rs_type = "String", db_type = "String(StringLen::N(8))")]
#[serde(rename_all = "snake_case")]
pub enum Agency {
    #[sea_orm(string_value = "fda")]
    Fda,
    #[sea_orm(string_value = "ema")]
    Ema,
    #[sea_orm(string_value = "mhra")]
    Mhra,
    #[sea_orm(string_value = "pmda")]
    Pmda,
    #[sea_orm(string_value = "other")]
    Other,
}

/// FDA classifications (NAI/VAI/OAI) or the severity of the worst finding.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, EnumIter, DeriveActiveEnum, Serialize, Deserialize, ToSchema,
)]
#[sea_orm(rs_type = "String", db_type = "String(StringLen::N(16))")]
#[serde(rename_all = "snake_case")]
pub enum InspectionOutcome {
    /// No action indicated.
    #[sea_orm(string_value = "nai")]
    Nai,
    /// Voluntary action indicated.
    #[sea_orm(string_value = "vai")]
    Vai,
    /// Official action indicated.
    #[sea_orm(string_value = "oai")]
    Oai,
    #[sea_orm(string_value = "no_findings")]
    NoFindings,
    #[sea_orm(string_value = "minor")]
    Minor,
    #[sea_orm(string_value = "major")]
    Major,
    #[sea_orm(string_value = "critical")]
    Critical,
}

/// Whether an inspection result is a red flag for selection and oversight.
pub fn is_adverse(outcome: InspectionOutcome, critical_findings: i32) -> bool {
    critical_findings > 0
        || matches!(
            outcome,
            InspectionOutcome::Oai | InspectionOutcome::Critical
        )
}

/// A CMO organization's profile (one per CMO org): its facts, kept by the CMO and read by
/// every sponsor connected to it. Each sponsor's qualification of it is on their
/// relationship (`relationship`).
#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "cmo_profiles")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub org_id: i64,
    /// The sponsor that registered the CMO. With `qualification_*` below: the previous
    /// release's columns, kept in step for that sponsor (rollback) and read by nothing
    /// in this one.
    pub sponsor_org_id: i64,
    /// JSON arrays of lower-case tags, e.g. `["sterile_injectable", "lyophilized"]`.
    pub dosage_forms: String,
    pub modalities: String,
    pub sterile_fill_finish: bool,
    pub high_potency: bool,
    pub cold_chain: bool,
    pub max_batch_liters: Option<i64>,
    /// JSON array of contacts `{name, role, email, phone}`.
    pub contacts: String,
    pub qualification_status: QualificationStatus,
    pub qualification_reason: Option<String>,
    pub qualification_signature_id: Option<i64>,
    pub qualification_changed_at: Option<DateTimeUtc>,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
    pub version: i32,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}

pub mod site {
    use sea_orm::entity::prelude::*;

    use super::Region;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "cmo_sites")]
    pub struct Model {
        #[sea_orm(primary_key)]
        pub id: i64,
        pub cmo_org_id: i64,
        pub name: String,
        /// ISO 3166-1 alpha-2, upper case.
        pub country: String,
        pub region: Region,
        pub created_at: DateTimeUtc,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

pub mod inspection {
    use sea_orm::entity::prelude::*;

    use super::{Agency, InspectionOutcome};

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "inspections")]
    pub struct Model {
        #[sea_orm(primary_key)]
        pub id: i64,
        pub cmo_org_id: i64,
        pub site_id: i64,
        pub agency: Agency,
        pub inspected_on: Date,
        pub outcome: InspectionOutcome,
        pub critical_findings: i32,
        pub notes: Option<String>,
        pub recorded_by_user_id: i64,
        pub created_at: DateTimeUtc,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

pub mod quality_agreement {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "quality_agreements")]
    pub struct Model {
        #[sea_orm(primary_key)]
        pub id: i64,
        pub cmo_org_id: i64,
        pub sponsor_org_id: i64,
        /// The agreement's own version label, e.g. `v3`.
        pub version_label: String,
        pub effective_on: Date,
        pub expires_on: Date,
        pub responsibilities: String,
        pub document_ref: String,
        pub created_by_user_id: i64,
        pub created_at: DateTimeUtc,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

/// Days-before-expiry thresholds at which the sponsor's quality users are reminded.
pub const EXPIRY_THRESHOLDS: [i64; 3] = [7, 30, 90];

/// The reminder threshold an agreement with `days_left` has reached (the tightest one),
/// or `None` when it is further out or already expired. A job that ran late still sends
/// the threshold reached, once (the outbox dedupes per threshold).
pub fn expiry_threshold(days_left: i64) -> Option<i64> {
    if days_left < 0 {
        return None;
    }
    EXPIRY_THRESHOLDS.into_iter().find(|t| days_left <= *t)
}

/// Normalizes capability tags: trimmed, lower case, `[a-z0-9_-]`, 1–40 characters, no
/// duplicates, at most 30.
pub fn normalize_tags(tags: &[String]) -> Result<Vec<String>, String> {
    if tags.len() > 30 {
        return Err("at most 30 tags".to_string());
    }
    let mut out: Vec<String> = Vec::new();
    for t in tags {
        let t = t.trim().to_lowercase();
        if t.is_empty()
            || t.len() > 40
            || !t
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-')
        {
            return Err(format!("{t:?} is not a tag (1 to 40 of a-z, 0-9, _ and -)"));
        }
        if !out.contains(&t) {
            out.push(t);
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use QualificationEvent as E;
    use QualificationStatus as S;

    /// A position per event: adding an event breaks this match, and the test below then
    /// fails until the event is in `ALL_EVENTS` (which `allowed_events` reads).
    fn position(e: QualificationEvent) -> usize {
        match e {
            E::StartEvaluation => 0,
            E::Qualify => 1,
            E::Approve => 2,
            E::Probation => 3,
            E::Reinstate => 4,
            E::Disqualify => 5,
            E::Reevaluate => 6,
        }
    }

    /// Every (status, event) pair: 6 x 7 = 42, each with its outcome, so a change of the
    /// machine anywhere shows here.
    #[test]
    fn every_status_and_event_has_its_outcome() {
        use sea_orm::Iterable;
        let mut seen = [false; 7];
        for e in ALL_EVENTS {
            seen[position(e)] = true;
        }
        assert!(seen.iter().all(|s| *s), "ALL_EVENTS lists every event once");
        let expected = |from: S, event: E| -> Option<S> {
            Some(match (from, event) {
                (S::Prospect, E::StartEvaluation) => S::UnderEvaluation,
                (S::UnderEvaluation, E::Qualify) => S::Qualified,
                (S::Qualified, E::Approve) => S::Approved,
                (S::Qualified, E::Probation) | (S::Approved, E::Probation) => S::Probation,
                (S::Probation, E::Reinstate) => S::Qualified,
                (S::Disqualified, E::Reevaluate) => S::UnderEvaluation,
                (S::Prospect, E::Disqualify)
                | (S::UnderEvaluation, E::Disqualify)
                | (S::Qualified, E::Disqualify)
                | (S::Approved, E::Disqualify)
                | (S::Probation, E::Disqualify) => S::Disqualified,
                _ => return None,
            })
        };
        let mut pairs = 0;
        for from in S::iter() {
            for event in ALL_EVENTS {
                pairs += 1;
                match expected(from, event) {
                    Some(to) => {
                        assert_eq!(transition(from, event, true), Ok(to), "{from:?} {event:?}");
                        if needs_reason(event) {
                            assert_eq!(
                                transition(from, event, false),
                                Err(QualificationError::ReasonRequired),
                                "{from:?} {event:?} without a reason"
                            );
                        }
                    }
                    None => assert_eq!(
                        transition(from, event, true),
                        Err(QualificationError::NotAllowed { from, event }),
                        "{from:?} {event:?}"
                    ),
                }
                assert_eq!(
                    allowed_events(from).contains(&event),
                    expected(from, event).is_some()
                );
            }
        }
        assert_eq!(pairs, 42);
    }

    #[test]
    fn the_qualification_path_and_its_exits() {
        let table = [
            (S::Prospect, E::StartEvaluation, Ok(S::UnderEvaluation)),
            (S::UnderEvaluation, E::Qualify, Ok(S::Qualified)),
            (S::Qualified, E::Approve, Ok(S::Approved)),
            (S::Approved, E::Probation, Ok(S::Probation)),
            (S::Qualified, E::Probation, Ok(S::Probation)),
            (S::Probation, E::Reinstate, Ok(S::Qualified)),
            (S::Approved, E::Disqualify, Ok(S::Disqualified)),
            (S::Prospect, E::Disqualify, Ok(S::Disqualified)),
            (S::Disqualified, E::Reevaluate, Ok(S::UnderEvaluation)),
        ];
        for (from, event, expected) in table {
            assert_eq!(
                transition(from, event, true),
                expected,
                "{from:?} {event:?}"
            );
        }
        for (from, event) in [
            (S::Prospect, E::Qualify),
            (S::Prospect, E::Approve),
            (S::UnderEvaluation, E::Approve),
            (S::Approved, E::Approve),
            (S::Disqualified, E::Disqualify),
            (S::Probation, E::Approve),
        ] {
            assert!(
                matches!(
                    transition(from, event, true),
                    Err(QualificationError::NotAllowed { .. })
                ),
                "{from:?} {event:?}"
            );
        }
        assert_eq!(
            transition(S::Approved, E::Disqualify, false),
            Err(QualificationError::ReasonRequired)
        );
        assert_eq!(
            allowed_events(S::Prospect),
            [E::StartEvaluation, E::Disqualify]
        );
        assert!(needs_signature(E::Approve) && needs_signature(E::Disqualify));
        assert!(!needs_signature(E::Qualify));
    }

    #[test]
    fn only_qualified_and_approved_cmos_are_named_on_programs() {
        assert!(may_be_named(S::Qualified).is_ok());
        assert!(may_be_named(S::Approved).is_ok());
        for s in [
            S::Prospect,
            S::UnderEvaluation,
            S::Probation,
            S::Disqualified,
        ] {
            assert!(may_be_named(s).is_err(), "{s:?}");
        }
        assert!(
            may_be_named(S::Prospect)
                .unwrap_err()
                .contains("not qualified yet")
        );
    }

    #[test]
    fn expiry_reminders_at_90_30_and_7_days() {
        assert_eq!(expiry_threshold(120), None);
        assert_eq!(expiry_threshold(90), Some(90));
        assert_eq!(expiry_threshold(31), Some(90));
        assert_eq!(expiry_threshold(30), Some(30));
        assert_eq!(expiry_threshold(8), Some(30));
        assert_eq!(expiry_threshold(7), Some(7));
        assert_eq!(expiry_threshold(0), Some(7));
        assert_eq!(expiry_threshold(-1), None);
    }

    #[test]
    fn adverse_inspections_and_tags() {
        assert!(is_adverse(InspectionOutcome::Oai, 0));
        assert!(is_adverse(InspectionOutcome::Vai, 1));
        assert!(!is_adverse(InspectionOutcome::Nai, 0));
        assert_eq!(
            normalize_tags(&[" Sterile_Injectable ".into(), "sterile_injectable".into()]),
            Ok(vec!["sterile_injectable".to_string()])
        );
        assert!(normalize_tags(&["two words".into()]).is_err());
    }
}
