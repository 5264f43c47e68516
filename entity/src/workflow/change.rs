//! What each change-control event does (SPEC §4): the decision (approve or reject, with
//! its reason) is e-signed; closing or rejecting stamps the end. Implementation tasks are
//! counted under the change's row lock, so a task added concurrently cannot slip past a
//! closure.

use chrono::{DateTime, Utc};
use sea_orm::{
    ColumnTrait, ConnectionTrait, DatabaseTransaction, DbErr, EntityTrait, PaginatorTrait,
    QueryFilter,
};

use super::{Emitted, Signing, Workflow};
use crate::action_item::{self, ActionSource, ActionStatus};
use crate::change_request::{self, ChangeEvent, ChangeStatus, ChangeTransitionError, Guards};
use crate::domain_event::{ChangeRequestTransitioned, Event};
use crate::enums::{Role, SignatureMeaning, SignedRecordType};
use crate::signature;

/// One step of a change request's workflow.
#[derive(Debug, Clone)]
pub struct Step {
    pub event: ChangeEvent,
    pub reason: Option<String>,
    /// The role of whoever decides (a major change is approved by quality).
    pub decider_role: Role,
}

impl Workflow for Step {
    type Entity = change_request::Entity;
    type Model = change_request::Model;
    type Status = ChangeStatus;
    type Event = ChangeEvent;
    type Guards = Guards;
    type Refusal = ChangeTransitionError;

    const RECORD: &'static str = "change_request";

    fn id(m: &change_request::Model) -> i64 {
        m.id
    }
    fn status(m: &change_request::Model) -> ChangeStatus {
        m.status
    }
    fn event(&self) -> ChangeEvent {
        self.event
    }
    fn allowed_events(m: &change_request::Model) -> Vec<ChangeEvent> {
        change_request::allowed_events(m.status)
    }
    fn probe(event: ChangeEvent, _: &change_request::Model, role: Role) -> Self {
        Step {
            event,
            reason: Some(String::new()),
            decider_role: role,
        }
    }
    fn reason(&self) -> Option<String> {
        self.reason.clone()
    }

    async fn guards<C: ConnectionTrait>(
        &self,
        conn: &C,
        c: &change_request::Model,
    ) -> Result<Guards, DbErr> {
        let open_tasks = action_item::Entity::find()
            .filter(action_item::Column::ProgramId.eq(c.program_id))
            .filter(action_item::Column::Source.eq(ActionSource::Change))
            .filter(action_item::Column::SourceId.eq(c.id))
            .filter(
                action_item::Column::Status.is_in([ActionStatus::Open, ActionStatus::InProgress]),
            )
            .count(conn)
            .await?;
        Ok(Guards {
            impacts_assessed: c.impacts_assessed(),
            classification: c.classification,
            decider_role: self.decider_role,
            open_tasks,
            has_reason: self.reason.is_some(),
        })
    }

    fn decide(
        &self,
        c: &change_request::Model,
        g: &Guards,
    ) -> Result<ChangeStatus, ChangeTransitionError> {
        change_request::transition(c.status, self.event, g)
    }

    fn apply(
        &self,
        c: &mut change_request::Model,
        next: ChangeStatus,
        _: &Self::Guards,
        now: DateTime<Utc>,
    ) {
        c.status = next;
        if matches!(self.event, ChangeEvent::Approve | ChangeEvent::Reject) {
            c.decision_reason = self.reason.clone();
        }
        if matches!(next, ChangeStatus::Closed | ChangeStatus::Rejected) {
            c.closed_at = Some(now);
        }
    }

    fn signing(&self) -> Option<Signing> {
        change_request::needs_signature(self.event).then_some(Signing {
            record_type: SignedRecordType::ChangeRequest,
            meaning: if self.event == ChangeEvent::Reject {
                SignatureMeaning::Rejected
            } else {
                SignatureMeaning::Approved
            },
            covers: change_request::DECISION_SIGNED_FIELDS,
        })
    }
    async fn sign(
        &self,
        _txn: &DatabaseTransaction,
        c: &mut change_request::Model,
        signature: &signature::Model,
    ) -> Result<(), DbErr> {
        c.decision_signature_id = Some(signature.id);
        Ok(())
    }

    fn domain_event(
        &self,
        before: &change_request::Model,
        after: &change_request::Model,
    ) -> Option<Emitted> {
        Some(Emitted::Program {
            program_id: after.program_id,
            event: Event::ChangeRequestTransitioned(ChangeRequestTransitioned {
                change_request_id: after.id,
                title: after.title.clone(),
                classification: after.classification,
                event: self.event,
                from: before.status,
                to: after.status,
            }),
        })
    }
}

/// How the caller reads each refusal of the machine.
impl super::Refusal for ChangeTransitionError {
    fn kind(&self) -> super::RefusalKind {
        use super::RefusalKind;
        match self {
            Self::ReasonRequired => RefusalKind::MissingField("reason"),
            Self::MajorNeedsQuality => RefusalKind::Forbidden,
            _ => RefusalKind::Illegal,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_decision_is_signed_with_its_meaning_and_ends_a_rejected_change() {
        let step = |event| Step {
            event,
            reason: Some("r".into()),
            decider_role: Role::Quality,
        };
        assert_eq!(
            step(ChangeEvent::Reject).signing().map(|s| s.meaning),
            Some(SignatureMeaning::Rejected)
        );
        assert_eq!(
            step(ChangeEvent::Approve).signing().map(|s| s.meaning),
            Some(SignatureMeaning::Approved)
        );
        assert_eq!(step(ChangeEvent::Submit).signing(), None);
    }
}
