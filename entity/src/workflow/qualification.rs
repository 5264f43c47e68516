//! A sponsor's qualification of a CMO (SPEC §7): each change keeps its reason and time;
//! approval and disqualification are e-signed by quality.

use std::borrow::Cow;

use chrono::{DateTime, Utc};
use sea_orm::{ConnectionTrait, DatabaseTransaction, DbErr};

use super::{Emitted, Signing, Workflow};
use crate::cmo::{self, QualificationError, QualificationEvent, QualificationStatus};
use crate::domain_event::{CmoQualificationChanged, Event};
use crate::enums::{Role, SignatureMeaning, SignedRecordType};
use crate::signature;

/// One qualification step.
#[derive(Debug, Clone)]
pub struct Step {
    pub event: QualificationEvent,
    pub reason: Option<String>,
}

impl Workflow for Step {
    type Entity = cmo::Entity;
    type Model = cmo::Model;
    type Status = QualificationStatus;
    type Event = QualificationEvent;
    type Guards = ();
    type Refusal = QualificationError;

    const RECORD: &'static str = "cmo_profile";

    fn id(m: &cmo::Model) -> i64 {
        m.org_id
    }
    fn status(m: &cmo::Model) -> QualificationStatus {
        m.qualification_status
    }
    fn event(&self) -> QualificationEvent {
        self.event
    }
    fn allowed_events(m: &cmo::Model) -> Vec<QualificationEvent> {
        cmo::allowed_events(m.qualification_status)
    }
    fn probe(event: QualificationEvent, _: &cmo::Model, _: Role) -> Self {
        Step {
            event,
            reason: Some(String::new()),
        }
    }
    fn reason(&self) -> Option<String> {
        self.reason.clone()
    }
    fn audit_action(&self) -> Cow<'static, str> {
        Cow::Borrowed("qualification")
    }

    async fn guards<C: ConnectionTrait>(&self, _conn: &C, _m: &cmo::Model) -> Result<(), DbErr> {
        Ok(())
    }

    fn decide(&self, m: &cmo::Model, _: &()) -> Result<QualificationStatus, QualificationError> {
        cmo::transition(m.qualification_status, self.event, self.reason.is_some())
    }

    fn apply(
        &self,
        m: &mut cmo::Model,
        next: QualificationStatus,
        _: &Self::Guards,
        now: DateTime<Utc>,
    ) {
        m.qualification_status = next;
        m.qualification_reason = self.reason.clone();
        m.qualification_changed_at = Some(now);
    }

    fn signing(&self) -> Option<Signing> {
        cmo::needs_signature(self.event).then_some(Signing {
            record_type: SignedRecordType::CmoQualification,
            meaning: if self.event == QualificationEvent::Approve {
                SignatureMeaning::Approved
            } else {
                SignatureMeaning::Rejected
            },
            covers: cmo::QUALIFICATION_SIGNED_FIELDS,
        })
    }
    async fn sign(
        &self,
        _txn: &DatabaseTransaction,
        m: &mut cmo::Model,
        signature: &signature::Model,
    ) -> Result<(), DbErr> {
        m.qualification_signature_id = Some(signature.id);
        Ok(())
    }

    fn domain_event(&self, before: &cmo::Model, after: &cmo::Model) -> Option<Emitted> {
        // The sponsor's decision about a CMO: its own users and webhooks only.
        Some(Emitted::Organizations {
            program_id: None,
            sponsor_org_id: after.sponsor_org_id,
            cmo_org_id: None,
            event: Event::CmoQualificationChanged(CmoQualificationChanged {
                cmo_org_id: after.org_id,
                event: self.event,
                from: before.qualification_status,
                to: after.qualification_status,
                reason: self.reason.clone(),
            }),
        })
    }
}

/// How the caller reads each refusal of the machine.
impl super::Refusal for QualificationError {
    fn kind(&self) -> super::RefusalKind {
        use super::RefusalKind;
        match self {
            Self::ReasonRequired => RefusalKind::MissingField("reason"),
            _ => RefusalKind::Illegal,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn approval_signs_approved_and_disqualification_signs_rejected() {
        let step = |event| Step {
            event,
            reason: Some("r".into()),
        };
        assert_eq!(
            step(QualificationEvent::Approve)
                .signing()
                .map(|s| s.meaning),
            Some(SignatureMeaning::Approved)
        );
        assert_eq!(
            step(QualificationEvent::Disqualify)
                .signing()
                .map(|s| s.meaning),
            Some(SignatureMeaning::Rejected)
        );
        assert_eq!(step(QualificationEvent::Qualify).signing(), None);
    }
}
