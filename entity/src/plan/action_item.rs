//! Action items: the unit of work everything else creates (gate failures, CAPA actions,
//! deviations, changes, meetings).

use chrono::NaiveDate;
use sea_orm::entity::prelude::*;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

#[derive(
    Debug, Clone, Copy, PartialEq, Eq, EnumIter, DeriveActiveEnum, Serialize, Deserialize, ToSchema,
)]
#[sea_orm(rs_type = "String", db_type = "String(StringLen::N(16))")]
#[serde(rename_all = "snake_case")]
pub enum ActionStatus {
    #[sea_orm(string_value = "open")]
    Open,
    #[sea_orm(string_value = "in_progress")]
    InProgress,
    #[sea_orm(string_value = "done")]
    Done,
    #[sea_orm(string_value = "cancelled")]
    Cancelled,
}

/// Where an action item comes from.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, EnumIter, DeriveActiveEnum, Serialize, Deserialize, ToSchema,
)]
#[sea_orm(rs_type = "String", db_type = "String(StringLen::N(16))")]
#[serde(rename_all = "snake_case")]
pub enum ActionSource {
    #[sea_orm(string_value = "gate_item")]
    GateItem,
    #[sea_orm(string_value = "capa")]
    Capa,
    #[sea_orm(string_value = "deviation")]
    Deviation,
    #[sea_orm(string_value = "change")]
    Change,
    #[sea_orm(string_value = "meeting")]
    Meeting,
    #[sea_orm(string_value = "other")]
    Other,
}

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "action_items")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    pub program_id: i64,
    pub title: String,
    pub description: Option<String>,
    pub owner_user_id: i64,
    pub due_date: Date,
    pub source: ActionSource,
    /// Id of the record in `source` (gate item, CAPA, …), when there is one.
    pub source_id: Option<i64>,
    pub status: ActionStatus,
    pub snoozed_until: Option<Date>,
    pub snooze_reason: Option<String>,
    pub completed_at: Option<DateTimeUtc>,
    /// What shows it was done, given at completion (see [`needs_evidence`]).
    pub completion_evidence: Option<String>,
    /// A link to the evidence (work order, report), given at completion.
    pub completion_evidence_url: Option<String>,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
    pub version: i32,
    /// The due date an `action_item.overdue` event was emitted for (a moved due date
    /// makes the item eligible again).
    pub overdue_event_for: Option<Date>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ActionEvent {
    /// open → in_progress
    Start,
    /// open | in_progress → done
    Complete,
    /// open | in_progress → cancelled, with a reason
    Cancel,
    /// done → open, with a reason (the work turned out not to be done)
    Reopen,
}

/// Cancelling or reopening says why (kept in the audit trail).
pub fn requires_reason(event: ActionEvent) -> bool {
    matches!(event, ActionEvent::Cancel | ActionEvent::Reopen)
}

/// Evidence (a note, a link) is given with `complete` only.
pub fn takes_evidence(event: ActionEvent) -> bool {
    event == ActionEvent::Complete
}

pub const ALL_EVENTS: [ActionEvent; 4] = [
    ActionEvent::Start,
    ActionEvent::Complete,
    ActionEvent::Cancel,
    ActionEvent::Reopen,
];

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ActionTransitionError {
    #[error("{event:?} is not possible from {from:?}")]
    NotAllowed {
        from: ActionStatus,
        event: ActionEvent,
    },
    #[error("a reason is required for this event")]
    ReasonRequired,
    #[error("an action of a CAPA, deviation or change is completed on evidence: a note or a link")]
    EvidenceRequired,
    /// Its owner's organization no longer works on the program (a CMO whose connection
    /// ended): reopened, it would remind someone who cannot see it.
    #[error(
        "its owner no longer works on this program (their organization's connection with the \
         sponsor ended): give it another owner first"
    )]
    OwnerOffProgram,
}

/// A GMP record's action (of a CAPA, a deviation, a change) is completed on evidence: a
/// note or a link saying what was done, which an inspector can follow. Other work may give
/// it too.
pub fn needs_evidence(source: ActionSource) -> bool {
    matches!(
        source,
        ActionSource::Capa | ActionSource::Deviation | ActionSource::Change
    )
}

pub fn transition(
    from: ActionStatus,
    event: ActionEvent,
    has_reason: bool,
) -> Result<ActionStatus, ActionTransitionError> {
    use ActionEvent as E;
    use ActionStatus as S;
    let next = match (from, event) {
        (S::Open, E::Start) => S::InProgress,
        (S::Open | S::InProgress, E::Complete) => S::Done,
        (S::Open | S::InProgress, E::Cancel) => S::Cancelled,
        (S::Done, E::Reopen) => S::Open,
        _ => return Err(ActionTransitionError::NotAllowed { from, event }),
    };
    if requires_reason(event) && !has_reason {
        return Err(ActionTransitionError::ReasonRequired);
    }
    Ok(next)
}

pub fn allowed_events(from: ActionStatus) -> Vec<ActionEvent> {
    ALL_EVENTS
        .into_iter()
        .filter(|e| transition(from, *e, true).is_ok())
        .collect()
}

/// Overdue: still open or in progress, past its due date, and not snoozed through today.
pub fn is_overdue(
    status: ActionStatus,
    due: NaiveDate,
    snoozed_until: Option<NaiveDate>,
    today: NaiveDate,
) -> bool {
    matches!(status, ActionStatus::Open | ActionStatus::InProgress)
        && due < today
        && snoozed_until.is_none_or(|until| until < today)
}

/// Days past due (0 when not overdue).
pub fn days_overdue(due: NaiveDate, today: NaiveDate) -> i64 {
    (today - due).num_days().max(0)
}

/// An action item to create (from a CAPA, a change, a no-go gate).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewAction {
    pub program_id: i64,
    pub title: String,
    pub description: Option<String>,
    pub owner_user_id: i64,
    pub due_date: NaiveDate,
    pub source: ActionSource,
    pub source_id: Option<i64>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use ActionEvent as E;
    use ActionStatus as S;

    #[test]
    fn the_transition_table_is_exactly_the_specified_one() {
        let table = [
            (S::Open, E::Start, Some(S::InProgress)),
            (S::Open, E::Complete, Some(S::Done)),
            (S::Open, E::Cancel, Some(S::Cancelled)),
            (S::Open, E::Reopen, None),
            (S::InProgress, E::Start, None),
            (S::InProgress, E::Complete, Some(S::Done)),
            (S::InProgress, E::Cancel, Some(S::Cancelled)),
            (S::InProgress, E::Reopen, None),
            (S::Done, E::Start, None),
            (S::Done, E::Complete, None),
            (S::Done, E::Cancel, None),
            (S::Done, E::Reopen, Some(S::Open)),
            (S::Cancelled, E::Start, None),
            (S::Cancelled, E::Complete, None),
            (S::Cancelled, E::Cancel, None),
            (S::Cancelled, E::Reopen, None),
        ];
        for (from, event, expected) in table {
            match expected {
                Some(next) => assert_eq!(
                    transition(from, event, true),
                    Ok(next),
                    "{from:?} + {event:?}"
                ),
                None => assert_eq!(
                    transition(from, event, true),
                    Err(ActionTransitionError::NotAllowed { from, event }),
                    "{from:?} + {event:?}"
                ),
            }
        }
    }

    #[test]
    fn cancel_and_reopen_need_a_reason() {
        assert_eq!(
            transition(S::Open, E::Cancel, false),
            Err(ActionTransitionError::ReasonRequired)
        );
        assert_eq!(
            transition(S::Done, E::Reopen, false),
            Err(ActionTransitionError::ReasonRequired)
        );
        assert_eq!(transition(S::Open, E::Complete, false), Ok(S::Done));
    }

    fn d(day: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(2027, 1, day).unwrap()
    }

    #[test]
    fn overdue_starts_the_day_after_the_due_date() {
        assert!(!is_overdue(S::Open, d(10), None, d(10)));
        assert!(is_overdue(S::Open, d(10), None, d(11)));
        assert!(is_overdue(S::InProgress, d(10), None, d(11)));
        assert!(!is_overdue(S::Done, d(10), None, d(20)));
        assert!(!is_overdue(S::Cancelled, d(10), None, d(20)));
    }

    #[test]
    fn a_snooze_hides_overdue_through_its_last_day() {
        assert!(!is_overdue(S::Open, d(10), Some(d(15)), d(15)));
        assert!(is_overdue(S::Open, d(10), Some(d(15)), d(16)));
        assert_eq!(days_overdue(d(10), d(16)), 6);
        assert_eq!(days_overdue(d(10), d(5)), 0);
    }
}
