//! Deviations and nonconformances: the model, its state machine and the floor rules.

use sea_orm::entity::prelude::*;
use sea_orm::{ConnectionTrait, PaginatorTrait, QueryFilter, QueryOrder};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

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
pub enum Criticality {
    #[sea_orm(string_value = "critical")]
    Critical,
    #[sea_orm(string_value = "major")]
    Major,
    #[sea_orm(string_value = "minor")]
    Minor,
}

impl Criticality {
    /// Whether `to` is a lower criticality than `self` (a downgrade: the sponsor's
    /// quality decision, `access::Action::DowngradeDeviation`).
    pub fn lowered_to(self, to: Criticality) -> bool {
        let rank = |c: Criticality| match c {
            Criticality::Critical => 3,
            Criticality::Major => 2,
            Criticality::Minor => 1,
        };
        rank(to) < rank(self)
    }

    /// Critical and major deviations stop production and page people (SPEC §4).
    pub fn holds_production(self) -> bool {
        matches!(self, Criticality::Critical | Criticality::Major)
    }
}

#[derive(
    Debug, Clone, Copy, PartialEq, Eq, EnumIter, DeriveActiveEnum, Serialize, Deserialize, ToSchema,
)]
#[sea_orm(rs_type = "String", db_type = "String(StringLen::N(16))")]
#[serde(rename_all = "snake_case")]
pub enum Category {
    #[sea_orm(string_value = "equipment")]
    Equipment,
    #[sea_orm(string_value = "material")]
    Material,
    #[sea_orm(string_value = "process")]
    Process,
    #[sea_orm(string_value = "documentation")]
    Documentation,
    #[sea_orm(string_value = "personnel")]
    Personnel,
    #[sea_orm(string_value = "environment")]
    Environment,
    #[sea_orm(string_value = "other")]
    Other,
}

#[derive(
    Debug, Clone, Copy, PartialEq, Eq, EnumIter, DeriveActiveEnum, Serialize, Deserialize, ToSchema,
)]
#[sea_orm(rs_type = "String", db_type = "String(StringLen::N(16))")]
#[serde(rename_all = "snake_case")]
pub enum RootCauseMethod {
    #[sea_orm(string_value = "five_whys")]
    FiveWhys,
    #[sea_orm(string_value = "fishbone")]
    Fishbone,
    #[sea_orm(string_value = "fault_tree")]
    FaultTree,
    #[sea_orm(string_value = "other")]
    Other,
}

#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    PartialOrd,
    Ord,
    EnumIter,
    DeriveActiveEnum,
    Serialize,
    Deserialize,
    ToSchema,
)]
#[sea_orm(rs_type = "String", db_type = "String(StringLen::N(16))")]
#[serde(rename_all = "snake_case")]
pub enum DeviationStatus {
    #[sea_orm(string_value = "reported")]
    Reported,
    #[sea_orm(string_value = "triaged")]
    Triaged,
    #[sea_orm(string_value = "investigating")]
    Investigating,
    #[sea_orm(string_value = "pending_capa")]
    PendingCapa,
    #[sea_orm(string_value = "closed")]
    Closed,
    #[sea_orm(string_value = "cancelled")]
    Cancelled,
}

impl DeviationStatus {
    pub fn is_open(self) -> bool {
        !matches!(self, DeviationStatus::Closed | DeviationStatus::Cancelled)
    }
}

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "deviations")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    pub program_id: i64,
    pub milestone_id: Option<i64>,
    pub batch_lot: Option<String>,
    pub title: String,
    pub description: String,
    pub detected_at: DateTimeUtc,
    pub reported_by_user_id: i64,
    pub process_step: Option<String>,
    pub criticality: Criticality,
    pub category: Category,
    pub status: DeviationStatus,
    pub triaged_at: Option<DateTimeUtc>,
    pub short_term_fix: Option<String>,
    pub root_cause_method: Option<RootCauseMethod>,
    pub root_cause_category: Option<Category>,
    pub root_cause_narrative: Option<String>,
    pub closure_signature_id: Option<i64>,
    pub closed_at: Option<DateTimeUtc>,
    pub cancel_reason: Option<String>,
    /// The number people quote (DEV-2026-0001): see [`crate::record_number`]. `None`
    /// only until the worker numbers a record an older release created.
    pub record_number: Option<String>,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
    pub version: i32,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}

impl Model {
    /// What a person reads for this record: its number (`DEV-2026-0001`), or `#id` until it has one.
    pub fn reference(&self) -> String {
        crate::record_number::reference(self.record_number.as_deref(), self.id)
    }
}

/// Critical deviations of a program that are neither closed nor cancelled: a gate's `go`
/// waits for them.
pub async fn open_critical_count<C: ConnectionTrait>(
    conn: &C,
    program_id: i64,
) -> Result<u64, DbErr> {
    Entity::find()
        .filter(Column::ProgramId.eq(program_id))
        .filter(Column::Criticality.eq(Criticality::Critical))
        .filter(Column::Status.is_not_in([DeviationStatus::Closed, DeviationStatus::Cancelled]))
        .count(conn)
        .await
}

/// The open critical deviations of a program, as a refused `go` names them
/// (`DEV-2027-0041 Bioburden excursion`), oldest first.
pub async fn open_critical_titles<C: ConnectionTrait>(
    conn: &C,
    program_id: i64,
) -> Result<Vec<String>, DbErr> {
    Ok(Entity::find()
        .filter(Column::ProgramId.eq(program_id))
        .filter(Column::Criticality.eq(Criticality::Critical))
        .filter(Column::Status.is_not_in([DeviationStatus::Closed, DeviationStatus::Cancelled]))
        .order_by_asc(Column::Id)
        .all(conn)
        .await?
        .into_iter()
        .map(|d| format!("{} {}", d.reference(), d.title))
        .collect())
}

/// Critical deviations not yet under investigation: production stays on hold while any
/// exists (SPEC §4, release of the hold).
pub async fn uninvestigated_critical_count<C: ConnectionTrait>(
    conn: &C,
    program_id: i64,
) -> Result<u64, DbErr> {
    Entity::find()
        .filter(Column::ProgramId.eq(program_id))
        .filter(Column::Criticality.eq(Criticality::Critical))
        .filter(Column::Status.is_in([DeviationStatus::Reported, DeviationStatus::Triaged]))
        .count(conn)
        .await
}

/// What a caller asks a deviation to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum DeviationEvent {
    /// reported → triaged; confirms or changes criticality (a change needs a reason).
    Triage,
    /// triaged → investigating
    StartInvestigation,
    /// investigating → pending_capa: the fix needs a CAPA.
    AwaitCapa,
    /// investigating → closed (root cause unless minor, quality signature);
    /// triaged → closed for a minor deviation with a short-term fix;
    /// pending_capa → closed once its CAPA closed effective.
    Close,
    /// reported | triaged → cancelled, with a reason (not once investigation began).
    Cancel,
}

/// Cancelling says why, whatever the state (a criticality change at triage does too,
/// which depends on the deviation, see [`transition`]).
pub fn requires_reason(event: DeviationEvent) -> bool {
    event == DeviationEvent::Cancel
}

/// Criticality is confirmed or changed at triage only.
pub fn takes_criticality(event: DeviationEvent) -> bool {
    event == DeviationEvent::Triage
}

pub const ALL_EVENTS: [DeviationEvent; 5] = [
    DeviationEvent::Triage,
    DeviationEvent::StartInvestigation,
    DeviationEvent::AwaitCapa,
    DeviationEvent::Close,
    DeviationEvent::Cancel,
];

/// Facts the guards look at.
#[derive(Debug, Clone, Copy)]
pub struct Guards {
    pub criticality: Criticality,
    pub has_root_cause: bool,
    pub has_short_term_fix: bool,
    /// A linked CAPA is closed with an effective check.
    pub capa_effective: bool,
    pub has_reason: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DeviationTransitionError {
    #[error("{event:?} is not possible from {from:?}")]
    NotAllowed {
        from: DeviationStatus,
        event: DeviationEvent,
    },
    #[error("closing a {0:?} deviation needs a root cause (method, category, narrative)")]
    RootCauseRequired(Criticality),
    #[error("only a minor deviation closes straight after triage, and only with a short-term fix")]
    ShortTermFixOnlyForMinor,
    #[error("the deviation waits for its CAPA to close effective")]
    CapaNotEffective,
    #[error("a reason is required for this event")]
    ReasonRequired,
    #[error("a criticality change needs a reason")]
    CriticalityChangeNeedsReason,
}

impl Model {
    /// Method, category and narrative are all recorded.
    pub fn has_root_cause(&self) -> bool {
        self.root_cause_method.is_some()
            && self.root_cause_category.is_some()
            && self.root_cause_narrative.is_some()
    }
}

pub fn transition(
    from: DeviationStatus,
    event: DeviationEvent,
    g: &Guards,
) -> Result<DeviationStatus, DeviationTransitionError> {
    use DeviationEvent as E;
    use DeviationStatus as S;
    let next = match (from, event) {
        (S::Reported, E::Triage) => S::Triaged,
        (S::Triaged, E::StartInvestigation) => S::Investigating,
        (S::Investigating, E::AwaitCapa) => S::PendingCapa,
        (S::Investigating, E::Close) => {
            if g.criticality != Criticality::Minor && !g.has_root_cause {
                return Err(DeviationTransitionError::RootCauseRequired(g.criticality));
            }
            S::Closed
        }
        (S::Triaged, E::Close) => {
            if g.criticality != Criticality::Minor || !g.has_short_term_fix {
                return Err(DeviationTransitionError::ShortTermFixOnlyForMinor);
            }
            S::Closed
        }
        (S::PendingCapa, E::Close) => {
            if !g.capa_effective {
                return Err(DeviationTransitionError::CapaNotEffective);
            }
            if g.criticality != Criticality::Minor && !g.has_root_cause {
                return Err(DeviationTransitionError::RootCauseRequired(g.criticality));
            }
            S::Closed
        }
        (S::Reported | S::Triaged, E::Cancel) => {
            if requires_reason(event) && !g.has_reason {
                return Err(DeviationTransitionError::ReasonRequired);
            }
            S::Cancelled
        }
        _ => return Err(DeviationTransitionError::NotAllowed { from, event }),
    };
    Ok(next)
}

/// Events the state machine accepts from `from` for a deviation of `criticality` (a
/// major or critical one never closes straight from triage), other guards aside.
pub fn allowed_events(from: DeviationStatus, criticality: Criticality) -> Vec<DeviationEvent> {
    let permissive = Guards {
        criticality,
        has_root_cause: true,
        has_short_term_fix: true,
        capa_effective: true,
        has_reason: true,
    };
    ALL_EVENTS
        .into_iter()
        .filter(|e| transition(from, *e, &permissive).is_ok())
        .collect()
}

/// Events that need a quality e-signature.
pub fn needs_signature(event: DeviationEvent) -> bool {
    event == DeviationEvent::Close
}

/// What a closure signature covers: the event, its assessment, its investigation and
/// its closure (quality signs that the deviation was handled; bookkeeping such as
/// `version` or `updated_at` and the computed `age_days` are not signed).
pub const CLOSURE_SIGNED_FIELDS: &[&str] = &[
    "id",
    "program_id",
    "milestone_id",
    "batch_lot",
    "title",
    "description",
    "detected_at",
    "process_step",
    "criticality",
    "category",
    "short_term_fix",
    "root_cause_method",
    "root_cause_category",
    "root_cause_narrative",
    "status",
    "closed_at",
];

#[cfg(test)]
mod tests {
    use super::*;
    use DeviationEvent as E;
    use DeviationStatus as S;

    const STATES: [DeviationStatus; 6] = [
        S::Reported,
        S::Triaged,
        S::Investigating,
        S::PendingCapa,
        S::Closed,
        S::Cancelled,
    ];

    fn permissive(criticality: Criticality) -> Guards {
        Guards {
            criticality,
            has_root_cause: true,
            has_short_term_fix: true,
            capa_effective: true,
            has_reason: true,
        }
    }

    #[test]
    fn the_transition_table_is_exactly_the_specified_one() {
        let expected = [
            (S::Reported, E::Triage, S::Triaged),
            (S::Reported, E::Cancel, S::Cancelled),
            (S::Triaged, E::StartInvestigation, S::Investigating),
            (S::Triaged, E::Close, S::Closed),
            (S::Triaged, E::Cancel, S::Cancelled),
            (S::Investigating, E::AwaitCapa, S::PendingCapa),
            (S::Investigating, E::Close, S::Closed),
            (S::PendingCapa, E::Close, S::Closed),
        ];
        for from in STATES {
            for event in ALL_EVENTS {
                let got = transition(from, event, &permissive(Criticality::Minor));
                match expected.iter().find(|(f, e, _)| *f == from && *e == event) {
                    Some((_, _, next)) => assert_eq!(got, Ok(*next), "{from:?} + {event:?}"),
                    None => assert_eq!(
                        got,
                        Err(DeviationTransitionError::NotAllowed { from, event }),
                        "{from:?} + {event:?}"
                    ),
                }
            }
        }
    }

    #[test]
    fn closing_major_or_critical_needs_a_root_cause() {
        for c in [Criticality::Critical, Criticality::Major] {
            let g = Guards {
                has_root_cause: false,
                ..permissive(c)
            };
            assert_eq!(
                transition(S::Investigating, E::Close, &g),
                Err(DeviationTransitionError::RootCauseRequired(c))
            );
        }
        let minor = Guards {
            has_root_cause: false,
            ..permissive(Criticality::Minor)
        };
        assert_eq!(
            transition(S::Investigating, E::Close, &minor),
            Ok(S::Closed)
        );
    }

    #[test]
    fn only_a_minor_deviation_with_a_short_term_fix_closes_after_triage() {
        let major = permissive(Criticality::Major);
        assert_eq!(
            transition(S::Triaged, E::Close, &major),
            Err(DeviationTransitionError::ShortTermFixOnlyForMinor)
        );
        let no_fix = Guards {
            has_short_term_fix: false,
            ..permissive(Criticality::Minor)
        };
        assert_eq!(
            transition(S::Triaged, E::Close, &no_fix),
            Err(DeviationTransitionError::ShortTermFixOnlyForMinor)
        );
    }

    #[test]
    fn pending_capa_closes_only_once_the_capa_is_effective() {
        let g = Guards {
            capa_effective: false,
            ..permissive(Criticality::Critical)
        };
        assert_eq!(
            transition(S::PendingCapa, E::Close, &g),
            Err(DeviationTransitionError::CapaNotEffective)
        );
    }

    #[test]
    fn cancelling_needs_a_reason_and_is_impossible_once_investigating() {
        let g = Guards {
            has_reason: false,
            ..permissive(Criticality::Minor)
        };
        assert_eq!(
            transition(S::Reported, E::Cancel, &g),
            Err(DeviationTransitionError::ReasonRequired)
        );
        assert!(matches!(
            transition(S::Investigating, E::Cancel, &permissive(Criticality::Minor)),
            Err(DeviationTransitionError::NotAllowed { .. })
        ));
    }

    #[test]
    fn critical_and_major_hold_production() {
        assert!(Criticality::Critical.holds_production());
        assert!(Criticality::Major.holds_production());
        assert!(!Criticality::Minor.holds_production());
        assert_eq!(
            allowed_events(S::Reported, Criticality::Minor),
            vec![E::Triage, E::Cancel]
        );
        assert_eq!(
            allowed_events(S::Triaged, Criticality::Major),
            vec![E::StartInvestigation, E::Cancel]
        );
        assert_eq!(
            allowed_events(S::Triaged, Criticality::Minor),
            vec![E::StartInvestigation, E::Close, E::Cancel]
        );
        assert!(allowed_events(S::Closed, Criticality::Minor).is_empty());
    }
}
