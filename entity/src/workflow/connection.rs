//! Connecting a sponsor with a CMO already on the installation (the partner network):
//! the sponsor invites, the CMO's admin accepts or declines, the sponsor may withdraw an
//! invitation not yet answered and invite again. Audited in the trail of whoever took
//! the step.

use std::borrow::Cow;

use chrono::{DateTime, Utc};
use sea_orm::{ConnectionTrait, DbErr};

use super::{Emitted, Workflow};
use crate::domain_event::{CmoConnectionChanged, Event};
use crate::enums::Role;
use crate::relationship::{self, ConnectionError, ConnectionEvent, ConnectionStatus};

/// One connection step, by `by_user_id`.
#[derive(Debug, Clone)]
pub struct Step {
    pub event: ConnectionEvent,
    pub by_user_id: i64,
    /// An invitation's message to the CMO.
    pub message: Option<String>,
}

impl Workflow for Step {
    type Entity = relationship::Entity;
    type Model = relationship::Model;
    type Status = ConnectionStatus;
    type Event = ConnectionEvent;
    type Guards = ();
    type Refusal = ConnectionError;

    const RECORD: &'static str = "cmo_relationship";

    fn id(m: &relationship::Model) -> i64 {
        m.id
    }
    fn status(m: &relationship::Model) -> ConnectionStatus {
        m.connection
    }
    fn event(&self) -> ConnectionEvent {
        self.event
    }
    fn allowed_events(m: &relationship::Model) -> Vec<ConnectionEvent> {
        relationship::allowed_events(m.connection)
    }
    fn probe(event: ConnectionEvent, _: &relationship::Model, _: Role) -> Self {
        Step {
            event,
            by_user_id: 0,
            message: None,
        }
    }
    fn reason(&self) -> Option<String> {
        self.message.clone()
    }
    fn audit_action(&self) -> Cow<'static, str> {
        Cow::Owned(format!(
            "connection_{}",
            crate::enums::wire_name(&self.event)
        ))
    }

    async fn guards<C: ConnectionTrait>(
        &self,
        _conn: &C,
        _m: &relationship::Model,
    ) -> Result<(), DbErr> {
        Ok(())
    }

    /// `cmo.connection_changed`, to the two parties only.
    fn domain_event(
        &self,
        before: &relationship::Model,
        after: &relationship::Model,
    ) -> Option<Emitted> {
        Some(Emitted::Organizations {
            program_id: None,
            sponsor_org_id: after.sponsor_org_id,
            cmo_org_id: Some(after.cmo_org_id),
            event: Event::CmoConnectionChanged(CmoConnectionChanged {
                connection_id: after.id,
                sponsor_org_id: after.sponsor_org_id,
                cmo_org_id: after.cmo_org_id,
                event: self.event,
                from: Some(before.connection),
                to: after.connection,
            }),
        })
    }

    fn decide(&self, m: &relationship::Model, _: &()) -> Result<ConnectionStatus, ConnectionError> {
        relationship::transition(m.connection, self.event)
    }

    fn apply(
        &self,
        m: &mut relationship::Model,
        next: ConnectionStatus,
        _: &(),
        now: DateTime<Utc>,
    ) {
        m.connection = next;
        match relationship::party_of(self.event) {
            relationship::Party::Sponsor if self.event == ConnectionEvent::Invite => {
                m.invited_by_user_id = Some(self.by_user_id);
                m.invited_at = Some(now);
                m.invitation_message = self.message.clone();
                m.responded_by_user_id = None;
                m.responded_at = None;
            }
            relationship::Party::Sponsor => {}
            relationship::Party::Cmo => {
                m.responded_by_user_id = Some(self.by_user_id);
                m.responded_at = Some(now);
            }
        }
    }
}

impl super::Refusal for ConnectionError {
    fn kind(&self) -> super::RefusalKind {
        match self {
            Self::WrongParty(_) => super::RefusalKind::Forbidden,
            Self::NotAllowed { .. } => super::RefusalKind::Illegal,
        }
    }
}
