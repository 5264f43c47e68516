//! Change control: a change request, its impact assessment, signed approval, and the
//! implementation tasks (action items) it needs.

use sea_orm::entity::prelude::*;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::enums::Role;

#[derive(
    Debug, Clone, Copy, PartialEq, Eq, EnumIter, DeriveActiveEnum, Serialize, Deserialize, ToSchema,
)]
#[sea_orm(rs_type = "String", db_type = "String(StringLen::N(24))")]
#[serde(rename_all = "snake_case")]
pub enum ChangeStatus {
    #[sea_orm(string_value = "draft")]
    Draft,
    #[sea_orm(string_value = "impact_assessment")]
    ImpactAssessment,
    #[sea_orm(string_value = "approved")]
    Approved,
    #[sea_orm(string_value = "rejected")]
    Rejected,
    #[sea_orm(string_value = "implementing")]
    Implementing,
    #[sea_orm(string_value = "closed")]
    Closed,
}

#[derive(
    Debug, Clone, Copy, PartialEq, Eq, EnumIter, DeriveActiveEnum, Serialize, Deserialize, ToSchema,
)]
#[sea_orm(rs_type = "String", db_type = "String(StringLen::N(8))")]
#[serde(rename_all = "snake_case")]
pub enum ChangeClass {
    #[sea_orm(string_value = "minor")]
    Minor,
    #[sea_orm(string_value = "major")]
    Major,
}

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "change_requests")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    pub program_id: i64,
    pub title: String,
    pub description: String,
    /// Why the change is needed.
    pub justification: String,
    pub classification: ChangeClass,
    pub impact_product_quality: Option<String>,
    pub impact_validation: Option<String>,
    pub impact_regulatory: Option<String>,
    pub status: ChangeStatus,
    pub decision_signature_id: Option<i64>,
    pub decision_reason: Option<String>,
    pub requested_by_user_id: i64,
    pub closed_at: Option<DateTimeUtc>,
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
    /// What a person reads for this record: its number (`CC-2026-0002`), or `#id` until it has one.
    pub fn reference(&self) -> String {
        crate::record_number::reference(self.record_number.as_deref(), self.id)
    }
}

impl Model {
    /// Impact on product quality, validation and regulatory filing is recorded.
    pub fn impacts_assessed(&self) -> bool {
        self.impact_product_quality.is_some()
            && self.impact_validation.is_some()
            && self.impact_regulatory.is_some()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ChangeEvent {
    /// draft → impact_assessment; the three impact assessments must be written.
    Submit,
    /// impact_assessment → approved (signed; a major change by quality).
    Approve,
    /// impact_assessment → rejected (signed, with a reason).
    Reject,
    /// approved → implementing
    StartImplementation,
    /// implementing → closed; every implementation task finished.
    Close,
}

pub const ALL_EVENTS: [ChangeEvent; 5] = [
    ChangeEvent::Submit,
    ChangeEvent::Approve,
    ChangeEvent::Reject,
    ChangeEvent::StartImplementation,
    ChangeEvent::Close,
];

#[derive(Debug, Clone, Copy)]
pub struct Guards {
    pub impacts_assessed: bool,
    pub classification: ChangeClass,
    pub decider_role: Role,
    pub open_tasks: u64,
    pub has_reason: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChangeTransitionError {
    #[error("{event:?} is not possible from {from:?}")]
    NotAllowed {
        from: ChangeStatus,
        event: ChangeEvent,
    },
    #[error("assess the impact on product quality, validation and regulatory filing first")]
    ImpactNotAssessed,
    #[error("a major change is approved by quality")]
    MajorNeedsQuality,
    #[error("{0} implementation task(s) are not finished")]
    OpenTasks(u64),
    #[error("a reason is required for this event")]
    ReasonRequired,
}

pub fn transition(
    from: ChangeStatus,
    event: ChangeEvent,
    g: &Guards,
) -> Result<ChangeStatus, ChangeTransitionError> {
    use ChangeEvent as E;
    use ChangeStatus as S;
    match (from, event) {
        (S::Draft, E::Submit) => {
            if !g.impacts_assessed {
                return Err(ChangeTransitionError::ImpactNotAssessed);
            }
            Ok(S::ImpactAssessment)
        }
        (S::ImpactAssessment, E::Approve) => {
            if g.classification == ChangeClass::Major && g.decider_role != Role::Quality {
                return Err(ChangeTransitionError::MajorNeedsQuality);
            }
            Ok(S::Approved)
        }
        (S::ImpactAssessment, E::Reject) => {
            if !g.has_reason {
                return Err(ChangeTransitionError::ReasonRequired);
            }
            Ok(S::Rejected)
        }
        (S::Approved, E::StartImplementation) => Ok(S::Implementing),
        (S::Implementing, E::Close) => {
            if g.open_tasks > 0 {
                return Err(ChangeTransitionError::OpenTasks(g.open_tasks));
            }
            Ok(S::Closed)
        }
        _ => Err(ChangeTransitionError::NotAllowed { from, event }),
    }
}

pub fn allowed_events(from: ChangeStatus) -> Vec<ChangeEvent> {
    let permissive = Guards {
        impacts_assessed: true,
        classification: ChangeClass::Minor,
        decider_role: Role::Quality,
        open_tasks: 0,
        has_reason: true,
    };
    ALL_EVENTS
        .into_iter()
        .filter(|e| transition(from, *e, &permissive).is_ok())
        .collect()
}

pub fn needs_signature(event: ChangeEvent) -> bool {
    matches!(event, ChangeEvent::Approve | ChangeEvent::Reject)
}

/// What a change decision signs: the change as proposed, its assessed impact and the
/// decision's reason (the implementation that follows an approval is not part of it).
pub const DECISION_SIGNED_FIELDS: &[&str] = &[
    "id",
    "program_id",
    "title",
    "description",
    "justification",
    "classification",
    "impact_product_quality",
    "impact_validation",
    "impact_regulatory",
    "decision_reason",
];

#[cfg(test)]
mod tests {
    use super::*;
    use ChangeEvent as E;
    use ChangeStatus as S;

    fn ok() -> Guards {
        Guards {
            impacts_assessed: true,
            classification: ChangeClass::Minor,
            decider_role: Role::ProgramManager,
            open_tasks: 0,
            has_reason: true,
        }
    }

    #[test]
    fn the_transition_table_is_exactly_the_specified_one() {
        let expected = [
            (S::Draft, E::Submit, S::ImpactAssessment),
            (S::ImpactAssessment, E::Approve, S::Approved),
            (S::ImpactAssessment, E::Reject, S::Rejected),
            (S::Approved, E::StartImplementation, S::Implementing),
            (S::Implementing, E::Close, S::Closed),
        ];
        for from in [
            S::Draft,
            S::ImpactAssessment,
            S::Approved,
            S::Rejected,
            S::Implementing,
            S::Closed,
        ] {
            for event in ALL_EVENTS {
                let got = transition(from, event, &ok());
                match expected.iter().find(|(f, e, _)| *f == from && *e == event) {
                    Some((_, _, next)) => assert_eq!(got, Ok(*next), "{from:?} + {event:?}"),
                    None => assert_eq!(got, Err(ChangeTransitionError::NotAllowed { from, event })),
                }
            }
        }
    }

    #[test]
    fn guards_hold() {
        assert_eq!(
            transition(
                S::Draft,
                E::Submit,
                &Guards {
                    impacts_assessed: false,
                    ..ok()
                }
            ),
            Err(ChangeTransitionError::ImpactNotAssessed)
        );
        let major = Guards {
            classification: ChangeClass::Major,
            ..ok()
        };
        assert_eq!(
            transition(S::ImpactAssessment, E::Approve, &major),
            Err(ChangeTransitionError::MajorNeedsQuality)
        );
        assert_eq!(
            transition(
                S::ImpactAssessment,
                E::Approve,
                &Guards {
                    decider_role: Role::Quality,
                    ..major
                }
            ),
            Ok(S::Approved)
        );
        assert_eq!(
            transition(
                S::Implementing,
                E::Close,
                &Guards {
                    open_tasks: 1,
                    ..ok()
                }
            ),
            Err(ChangeTransitionError::OpenTasks(1))
        );
        assert_eq!(
            transition(
                S::ImpactAssessment,
                E::Reject,
                &Guards {
                    has_reason: false,
                    ..ok()
                }
            ),
            Err(ChangeTransitionError::ReasonRequired)
        );
    }
}
