//! What each action-item event does: completing stamps `completed_at` and keeps the
//! evidence given, anything else clears both (a reopened item is not done).

use chrono::{DateTime, Utc};
use sea_orm::{ConnectionTrait, DbErr, EntityTrait};

use super::{Refusal, RefusalKind, Workflow};
use crate::action_item::{self, ActionEvent, ActionStatus, ActionTransitionError};
use crate::enums::Role;
use crate::{program, user};

/// One step of an action item.
#[derive(Debug, Clone)]
pub struct Step {
    pub event: ActionEvent,
    pub reason: Option<String>,
    /// `complete`: what shows it was done (a note), and a link to it.
    pub evidence: Option<String>,
    pub evidence_url: Option<String>,
}

impl Step {
    pub fn new(event: ActionEvent, reason: Option<String>) -> Self {
        Step {
            event,
            reason,
            evidence: None,
            evidence_url: None,
        }
    }

    fn has_evidence(&self) -> bool {
        self.evidence.is_some() || self.evidence_url.is_some()
    }
}

/// How the caller reads each refusal of the machine.
impl Refusal for ActionTransitionError {
    fn kind(&self) -> RefusalKind {
        match self {
            Self::ReasonRequired => RefusalKind::MissingField("reason"),
            Self::EvidenceRequired => RefusalKind::MissingField("evidence"),
            Self::NotAllowed { .. } | Self::OwnerOffProgram => RefusalKind::Illegal,
        }
    }
    fn conflict_code(&self) -> &'static str {
        match self {
            Self::OwnerOffProgram => "owner_off_program",
            _ => "illegal_transition",
        }
    }
}

impl Workflow for Step {
    type Entity = action_item::Entity;
    type Model = action_item::Model;
    type Status = ActionStatus;
    type Event = ActionEvent;
    /// With `reopen`: whether the owner's organization still works on the program.
    type Guards = bool;
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
            evidence: Some(String::new()),
            evidence_url: None,
        }
    }
    fn reason(&self) -> Option<String> {
        self.reason.clone()
    }

    async fn guards<C: ConnectionTrait>(
        &self,
        conn: &C,
        m: &action_item::Model,
    ) -> Result<bool, DbErr> {
        if self.event != ActionEvent::Reopen {
            return Ok(true);
        }
        let (Some(prog), Some(owner)) = (
            program::Entity::find_by_id(m.program_id).one(conn).await?,
            user::Entity::find_by_id(m.owner_user_id).one(conn).await?,
        ) else {
            return Ok(true);
        };
        Ok(prog.staffing_orgs(conn).await?.contains(&owner.org_id))
    }

    fn decide(
        &self,
        m: &action_item::Model,
        owner_on_program: &bool,
    ) -> Result<ActionStatus, ActionTransitionError> {
        let next = action_item::transition(m.status, self.event, self.reason.is_some())?;
        if !owner_on_program {
            return Err(ActionTransitionError::OwnerOffProgram);
        }
        if self.event == ActionEvent::Complete
            && action_item::needs_evidence(m.source)
            && !self.has_evidence()
        {
            return Err(ActionTransitionError::EvidenceRequired);
        }
        Ok(next)
    }

    fn apply(
        &self,
        m: &mut action_item::Model,
        next: ActionStatus,
        _: &Self::Guards,
        now: DateTime<Utc>,
    ) {
        m.status = next;
        let done = next == ActionStatus::Done;
        m.completed_at = done.then_some(now);
        m.completion_evidence = self.evidence.clone().filter(|_| done);
        m.completion_evidence_url = self.evidence_url.clone().filter(|_| done);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::action_item::ActionSource;
    use chrono::NaiveDate;

    fn at() -> DateTime<Utc> {
        DateTime::from_timestamp(1_795_000_000, 0).unwrap_or_default()
    }

    /// An action item of `source` in `status`, not completed.
    fn item(source: ActionSource, status: ActionStatus) -> action_item::Model {
        action_item::Model {
            id: 1,
            program_id: 1,
            title: "t".into(),
            description: None,
            owner_user_id: 1,
            due_date: NaiveDate::from_ymd_opt(2026, 12, 1).unwrap_or_default(),
            source,
            source_id: Some(1),
            status,
            snoozed_until: None,
            snooze_reason: None,
            completed_at: None,
            completion_evidence: None,
            completion_evidence_url: None,
            created_at: at(),
            updated_at: at(),
            version: 1,
            overdue_event_for: None,
        }
    }

    #[test]
    fn completing_stamps_and_reopening_clears_completed_at() {
        let at = at();
        let mut a = item(ActionSource::Other, ActionStatus::Open);
        let step = |event| Step {
            evidence: Some("WO-5512 closed".into()),
            ..Step::new(event, Some("r".into()))
        };
        step(ActionEvent::Complete).apply(&mut a, ActionStatus::Done, &true, at);
        assert_eq!(a.completed_at, Some(at));
        assert_eq!(a.completion_evidence.as_deref(), Some("WO-5512 closed"));
        step(ActionEvent::Reopen).apply(&mut a, ActionStatus::Open, &true, at);
        assert_eq!((a.completed_at, a.completion_evidence), (None, None));
    }

    #[test]
    fn gmp_actions_are_completed_on_evidence_other_work_need_not_be() {
        let item = |source| item(source, ActionStatus::InProgress);
        let bare = Step::new(ActionEvent::Complete, None);
        let linked = Step {
            evidence_url: Some("https://dms.example/WO-5512".into()),
            ..Step::new(ActionEvent::Complete, None)
        };
        for source in [
            ActionSource::Capa,
            ActionSource::Deviation,
            ActionSource::Change,
        ] {
            assert_eq!(
                bare.decide(&item(source), &true),
                Err(ActionTransitionError::EvidenceRequired)
            );
            assert_eq!(linked.decide(&item(source), &true), Ok(ActionStatus::Done));
        }
        for source in [
            ActionSource::GateItem,
            ActionSource::Meeting,
            ActionSource::Other,
        ] {
            assert_eq!(bare.decide(&item(source), &true), Ok(ActionStatus::Done));
        }
    }

    #[test]
    fn an_item_whose_owner_left_the_program_is_not_reopened() {
        let done = item(ActionSource::Other, ActionStatus::Done);
        let reopen = Step::new(ActionEvent::Reopen, Some("missed a batch".into()));
        assert_eq!(reopen.decide(&done, &true), Ok(ActionStatus::Open));
        assert_eq!(
            reopen.decide(&done, &false),
            Err(ActionTransitionError::OwnerOffProgram)
        );
        assert_eq!(
            ActionTransitionError::OwnerOffProgram.conflict_code(),
            "owner_off_program"
        );
    }
}
