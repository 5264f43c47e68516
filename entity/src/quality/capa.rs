//! CAPA (corrective and preventive action): model, links, state machine.

use sea_orm::entity::prelude::*;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

#[derive(
    Debug, Clone, Copy, PartialEq, Eq, EnumIter, DeriveActiveEnum, Serialize, Deserialize, ToSchema,
)]
#[sea_orm(rs_type = "String", db_type = "String(StringLen::N(24))")]
#[serde(rename_all = "snake_case")]
pub enum CapaStatus {
    #[sea_orm(string_value = "open")]
    Open,
    #[sea_orm(string_value = "plan_approved")]
    PlanApproved,
    #[sea_orm(string_value = "implementing")]
    Implementing,
    #[sea_orm(string_value = "effectiveness_check")]
    EffectivenessCheck,
    #[sea_orm(string_value = "closed")]
    Closed,
    #[sea_orm(string_value = "cancelled")]
    Cancelled,
}

#[derive(
    Debug, Clone, Copy, PartialEq, Eq, EnumIter, DeriveActiveEnum, Serialize, Deserialize, ToSchema,
)]
#[sea_orm(rs_type = "String", db_type = "String(StringLen::N(32))")]
#[serde(rename_all = "snake_case")]
pub enum CapaSource {
    #[sea_orm(string_value = "deviation")]
    Deviation,
    #[sea_orm(string_value = "inspection_finding")]
    InspectionFinding,
    #[sea_orm(string_value = "audit_finding")]
    AuditFinding,
}

#[derive(
    Debug, Clone, Copy, PartialEq, Eq, EnumIter, DeriveActiveEnum, Serialize, Deserialize, ToSchema,
)]
#[sea_orm(rs_type = "String", db_type = "String(StringLen::N(16))")]
#[serde(rename_all = "snake_case")]
pub enum EffectivenessOutcome {
    #[sea_orm(string_value = "effective")]
    Effective,
    #[sea_orm(string_value = "ineffective")]
    Ineffective,
    #[sea_orm(string_value = "inconclusive")]
    Inconclusive,
}

#[derive(
    Debug, Clone, Copy, PartialEq, Eq, EnumIter, DeriveActiveEnum, Serialize, Deserialize, ToSchema,
)]
#[sea_orm(rs_type = "String", db_type = "String(StringLen::N(16))")]
#[serde(rename_all = "snake_case")]
pub enum ActionKind {
    #[sea_orm(string_value = "corrective")]
    Corrective,
    #[sea_orm(string_value = "preventive")]
    Preventive,
}

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "capas")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    pub program_id: i64,
    pub title: String,
    pub description: String,
    pub source: CapaSource,
    /// Reference of the inspection or audit finding, when that is the source.
    pub finding_reference: Option<String>,
    pub status: CapaStatus,
    pub effectiveness_due: Option<Date>,
    pub effectiveness_outcome: Option<EffectivenessOutcome>,
    pub plan_signature_id: Option<i64>,
    pub closure_signature_id: Option<i64>,
    pub cancel_reason: Option<String>,
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
    /// What a person reads for this record: its number (`CAPA-2026-0003`), or `#id` until it has one.
    pub fn reference(&self) -> String {
        crate::record_number::reference(self.record_number.as_deref(), self.id)
    }
}

/// A deviation a CAPA addresses.
pub mod deviation_link {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "capa_deviations")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub capa_id: i64,
        #[sea_orm(primary_key, auto_increment = false)]
        pub deviation_id: i64,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

/// An action item that is one of a CAPA's actions.
pub mod action_link {
    use super::ActionKind;
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "capa_actions")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub action_item_id: i64,
        pub capa_id: i64,
        pub kind: ActionKind,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum CapaEvent {
    /// open → plan_approved (quality e-signature; needs at least one action).
    ApprovePlan,
    /// plan_approved → implementing
    StartImplementation,
    /// implementing → effectiveness_check (needs the check's due date; all actions finished).
    RequestEffectivenessCheck,
    /// effectiveness_check: record the outcome. effective stays (ready to close);
    /// inconclusive stays with a new due date; ineffective → implementing (reason).
    RecordEffectiveness,
    /// effectiveness_check → closed (quality e-signature; outcome must be effective).
    Close,
    /// any open state → cancelled, with a reason.
    Cancel,
}

pub const ALL_EVENTS: [CapaEvent; 6] = [
    CapaEvent::ApprovePlan,
    CapaEvent::StartImplementation,
    CapaEvent::RequestEffectivenessCheck,
    CapaEvent::RecordEffectiveness,
    CapaEvent::Close,
    CapaEvent::Cancel,
];

#[derive(Debug, Clone, Copy, Default)]
pub struct Guards {
    pub action_count: u64,
    pub open_action_count: u64,
    pub has_effectiveness_due: bool,
    pub outcome: Option<EffectivenessOutcome>,
    pub has_reason: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CapaTransitionError {
    #[error("{event:?} is not possible from {from:?}")]
    NotAllowed { from: CapaStatus, event: CapaEvent },
    #[error("a CAPA plan needs at least one action")]
    NoActions,
    #[error("{0} action(s) are not finished")]
    OpenActions(u64),
    #[error("the effectiveness check needs a due date")]
    DueDateRequired,
    #[error("the effectiveness check needs an outcome")]
    OutcomeRequired,
    #[error("only an effective CAPA closes")]
    NotEffective,
    #[error("a reason is required for this event")]
    ReasonRequired,
}

pub fn transition(
    from: CapaStatus,
    event: CapaEvent,
    g: &Guards,
) -> Result<CapaStatus, CapaTransitionError> {
    use CapaEvent as E;
    use CapaStatus as S;
    match (from, event) {
        (S::Open, E::ApprovePlan) => {
            if g.action_count == 0 {
                return Err(CapaTransitionError::NoActions);
            }
            Ok(S::PlanApproved)
        }
        (S::PlanApproved, E::StartImplementation) => Ok(S::Implementing),
        (S::Implementing, E::RequestEffectivenessCheck) => {
            if g.open_action_count > 0 {
                return Err(CapaTransitionError::OpenActions(g.open_action_count));
            }
            if !g.has_effectiveness_due {
                return Err(CapaTransitionError::DueDateRequired);
            }
            Ok(S::EffectivenessCheck)
        }
        (S::EffectivenessCheck, E::RecordEffectiveness) => match g.outcome {
            None => Err(CapaTransitionError::OutcomeRequired),
            Some(EffectivenessOutcome::Effective) => Ok(S::EffectivenessCheck),
            Some(EffectivenessOutcome::Inconclusive) => {
                if !g.has_effectiveness_due {
                    return Err(CapaTransitionError::DueDateRequired);
                }
                Ok(S::EffectivenessCheck)
            }
            Some(EffectivenessOutcome::Ineffective) => {
                if !g.has_reason {
                    return Err(CapaTransitionError::ReasonRequired);
                }
                Ok(S::Implementing)
            }
        },
        (S::EffectivenessCheck, E::Close) => {
            if g.outcome != Some(EffectivenessOutcome::Effective) {
                return Err(CapaTransitionError::NotEffective);
            }
            if g.open_action_count > 0 {
                return Err(CapaTransitionError::OpenActions(g.open_action_count));
            }
            Ok(S::Closed)
        }
        (S::Open | S::PlanApproved | S::Implementing | S::EffectivenessCheck, E::Cancel) => {
            if !g.has_reason {
                return Err(CapaTransitionError::ReasonRequired);
            }
            Ok(S::Cancelled)
        }
        _ => Err(CapaTransitionError::NotAllowed { from, event }),
    }
}

pub fn allowed_events(from: CapaStatus) -> Vec<CapaEvent> {
    let permissive = Guards {
        action_count: 1,
        open_action_count: 0,
        has_effectiveness_due: true,
        outcome: Some(EffectivenessOutcome::Effective),
        has_reason: true,
    };
    ALL_EVENTS
        .into_iter()
        .filter(|e| transition(from, *e, &permissive).is_ok())
        .collect()
}

/// Events that need a quality e-signature.
pub fn needs_signature(event: CapaEvent) -> bool {
    matches!(event, CapaEvent::ApprovePlan | CapaEvent::Close)
}

/// What closing a CAPA signs: the plan and its verified effectiveness.
pub const CLOSURE_SIGNED_FIELDS: &[&str] = &[
    // The plan: what approving it signs.
    "id",
    "program_id",
    "title",
    "description",
    "source",
    "finding_reference",
    "deviation_ids",
    // Its outcome.
    "effectiveness_outcome",
    "status",
    "closed_at",
];

/// What approving a CAPA plan signs: the plan and what it answers. Its later progress
/// (status, effectiveness) is not part of the plan, so it leaves the approval matching.
pub const PLAN_SIGNED_FIELDS: &[&str] = CLOSURE_SIGNED_FIELDS.split_at(7).0;

/// The fields the signature of `event` covers (empty for an unsigned event).
pub fn signed_fields(event: CapaEvent) -> &'static [&'static str] {
    match event {
        CapaEvent::ApprovePlan => PLAN_SIGNED_FIELDS,
        CapaEvent::Close => CLOSURE_SIGNED_FIELDS,
        _ => &[],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn approving_the_plan_signs_the_plan_and_closing_signs_its_outcome_too() {
        assert_eq!(PLAN_SIGNED_FIELDS.last(), Some(&"deviation_ids"));
        assert!(!PLAN_SIGNED_FIELDS.contains(&"status"));
        assert_eq!(signed_fields(CapaEvent::Close), CLOSURE_SIGNED_FIELDS);
        assert!(signed_fields(CapaEvent::StartImplementation).is_empty());
    }
    use CapaEvent as E;
    use CapaStatus as S;

    fn ok() -> Guards {
        Guards {
            action_count: 2,
            open_action_count: 0,
            has_effectiveness_due: true,
            outcome: Some(EffectivenessOutcome::Effective),
            has_reason: true,
        }
    }

    #[test]
    fn the_transition_table_is_exactly_the_specified_one() {
        let expected = [
            (S::Open, E::ApprovePlan, S::PlanApproved),
            (S::Open, E::Cancel, S::Cancelled),
            (S::PlanApproved, E::StartImplementation, S::Implementing),
            (S::PlanApproved, E::Cancel, S::Cancelled),
            (
                S::Implementing,
                E::RequestEffectivenessCheck,
                S::EffectivenessCheck,
            ),
            (S::Implementing, E::Cancel, S::Cancelled),
            (
                S::EffectivenessCheck,
                E::RecordEffectiveness,
                S::EffectivenessCheck,
            ),
            (S::EffectivenessCheck, E::Close, S::Closed),
            (S::EffectivenessCheck, E::Cancel, S::Cancelled),
        ];
        for from in [
            S::Open,
            S::PlanApproved,
            S::Implementing,
            S::EffectivenessCheck,
            S::Closed,
            S::Cancelled,
        ] {
            for event in ALL_EVENTS {
                let got = transition(from, event, &ok());
                match expected.iter().find(|(f, e, _)| *f == from && *e == event) {
                    Some((_, _, next)) => assert_eq!(got, Ok(*next), "{from:?} + {event:?}"),
                    None => assert_eq!(
                        got,
                        Err(CapaTransitionError::NotAllowed { from, event }),
                        "{from:?} + {event:?}"
                    ),
                }
            }
        }
    }

    #[test]
    fn guards_hold() {
        assert_eq!(
            transition(
                S::Open,
                E::ApprovePlan,
                &Guards {
                    action_count: 0,
                    ..ok()
                }
            ),
            Err(CapaTransitionError::NoActions)
        );
        assert_eq!(
            transition(
                S::Implementing,
                E::RequestEffectivenessCheck,
                &Guards {
                    open_action_count: 2,
                    ..ok()
                }
            ),
            Err(CapaTransitionError::OpenActions(2))
        );
        assert_eq!(
            transition(
                S::Implementing,
                E::RequestEffectivenessCheck,
                &Guards {
                    has_effectiveness_due: false,
                    ..ok()
                }
            ),
            Err(CapaTransitionError::DueDateRequired)
        );
        let ineffective = Guards {
            outcome: Some(EffectivenessOutcome::Ineffective),
            ..ok()
        };
        assert_eq!(
            transition(S::EffectivenessCheck, E::RecordEffectiveness, &ineffective),
            Ok(S::Implementing)
        );
        assert_eq!(
            transition(
                S::EffectivenessCheck,
                E::RecordEffectiveness,
                &Guards {
                    has_reason: false,
                    ..ineffective
                }
            ),
            Err(CapaTransitionError::ReasonRequired)
        );
        assert_eq!(
            transition(S::EffectivenessCheck, E::Close, &ineffective),
            Err(CapaTransitionError::NotEffective)
        );
        let inconclusive = Guards {
            outcome: Some(EffectivenessOutcome::Inconclusive),
            ..ok()
        };
        assert_eq!(
            transition(S::EffectivenessCheck, E::Close, &inconclusive),
            Err(CapaTransitionError::NotEffective)
        );
        assert_eq!(
            transition(
                S::Open,
                E::Cancel,
                &Guards {
                    has_reason: false,
                    ..ok()
                }
            ),
            Err(CapaTransitionError::ReasonRequired)
        );
    }
}
