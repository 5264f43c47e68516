//! What each action-item event does: completing stamps `completed_at`, anything else
//! clears it (a reopened item is not done).

use chrono::{DateTime, Utc};
use sea_orm::{ConnectionTrait, DbErr};

use super::{Refusal, RefusalKind, Workflow};
use crate::action_item::{self, ActionEvent, ActionStatus, ActionTransitionError};
use crate::enums::Role;

/// One step of an action item.
#[derive(Debug, Clone)]
pub struct Step {
    pub event: ActionEvent,
    pub reason: Option<String>,
}

/// How the caller reads each refusal of the machine.
impl Refusal for ActionTransitionError {
    fn kind(&self) -> RefusalKind {
        match self {
            Self::ReasonRequired => RefusalKind::MissingField("reason"),
            Self::NotAllowed { .. } => RefusalKind::Illegal,
        }
    }
}

impl Workflow for Step {
    type Entity = action_item::Entity;
    type Model = action_item::Model;
    type Status = ActionStatus;
    type Event = ActionEvent;
    type Guards = ();
    type Refusal = ActionTransitionError;

    const RECORD: &'static str = "action_item";

    fn id(m: &action_item::Model) -> i64 {
        m.id
    }
    fn status(m: &action_item::Model) -> ActionStatus {
        m.status
    }
    fn event(&self) -> ActionEvent {
        self.event
    }
    fn allowed_events(m: &action_item::Model) -> Vec<ActionEvent> {
        action_item::allowed_events(m.status)
    }
    fn probe(event: ActionEvent, _: &action_item::Model, _: Role) -> Self {
        Step {
            event,
            reason: Some(String::new()),
        }
    }
    fn reason(&self) -> Option<String> {
        self.reason.clone()
    }

    async fn guards<C: ConnectionTrait>(
        &self,
        _conn: &C,
        _m: &action_item::Model,
    ) -> Result<(), DbErr> {
        Ok(())
    }

    fn decide(
        &self,
        m: &action_item::Model,
        _: &(),
    ) -> Result<ActionStatus, ActionTransitionError> {
        action_item::transition(m.status, self.event, self.reason.is_some())
    }

    fn apply(
        &self,
        m: &mut action_item::Model,
        next: ActionStatus,
        _: &Self::Guards,
        now: DateTime<Utc>,
    ) {
        m.status = next;
        m.completed_at = (next == ActionStatus::Done).then_some(now);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::action_item::ActionSource;
    use chrono::NaiveDate;

    #[test]
    fn completing_stamps_and_reopening_clears_completed_at() {
        let at = DateTime::from_timestamp(1_795_000_000, 0).unwrap_or_default();
        let mut a = action_item::Model {
            id: 1,
            program_id: 1,
            title: "t".into(),
            description: None,
            owner_user_id: 1,
            due_date: NaiveDate::from_ymd_opt(2026, 12, 1).unwrap_or_default(),
            source: ActionSource::Other,
            source_id: None,
            status: ActionStatus::Open,
            snoozed_until: None,
            snooze_reason: None,
            completed_at: None,
            created_at: at,
            updated_at: at,
            version: 1,
            overdue_event_for: None,
        };
        let step = |event| Step {
            event,
            reason: Some("r".into()),
        };
        step(ActionEvent::Complete).apply(&mut a, ActionStatus::Done, &(), at);
        assert_eq!(a.completed_at, Some(at));
        step(ActionEvent::Reopen).apply(&mut a, ActionStatus::Open, &(), at);
        assert_eq!(a.completed_at, None);
    }
}
