//! Deciding a CMO selection: once, for one of its candidates, e-signed (SPEC §7).

use chrono::{DateTime, Utc};
use sea_orm::{ConnectionTrait, DatabaseTransaction, DbErr};

use super::{Emitted, Signing, Workflow};
use crate::domain_event::{EvaluationDecided, Event};
use crate::enums::{Role, SignatureMeaning, SignedRecordType};
use crate::selection::{self, EvaluationEvent, EvaluationStatus, SelectionError};
use crate::signature;

/// The decision: which candidate, and why.
#[derive(Debug, Clone)]
pub struct Decide {
    pub cmo_org_id: i64,
    pub reason: String,
}

impl Workflow for Decide {
    type Entity = selection::Entity;
    type Model = selection::Model;
    type Status = EvaluationStatus;
    type Event = EvaluationEvent;
    type Guards = ();
    type Refusal = SelectionError;

    const RECORD: &'static str = "evaluation";

    fn id(m: &selection::Model) -> i64 {
        m.id
    }
    fn status(m: &selection::Model) -> EvaluationStatus {
        m.status
    }
    fn event(&self) -> EvaluationEvent {
        EvaluationEvent::Decide
    }
    fn allowed_events(m: &selection::Model) -> Vec<EvaluationEvent> {
        selection::allowed_events(m.status)
    }
    fn probe(_: EvaluationEvent, m: &selection::Model, _: Role) -> Self {
        Decide {
            cmo_org_id: m.candidate_ids().first().copied().unwrap_or_default(),
            reason: String::new(),
        }
    }
    fn reason(&self) -> Option<String> {
        Some(self.reason.trim().to_string())
    }

    async fn guards<C: ConnectionTrait>(
        &self,
        _conn: &C,
        _m: &selection::Model,
    ) -> Result<(), DbErr> {
        Ok(())
    }

    fn decide(&self, m: &selection::Model, _: &()) -> Result<EvaluationStatus, SelectionError> {
        selection::transition(
            m.status,
            EvaluationEvent::Decide,
            m.candidate_ids().contains(&self.cmo_org_id),
        )
    }

    fn apply(
        &self,
        m: &mut selection::Model,
        next: EvaluationStatus,
        _: &Self::Guards,
        now: DateTime<Utc>,
    ) {
        m.status = next;
        m.decision_cmo_org_id = Some(self.cmo_org_id);
        m.decision_reason = Some(self.reason.trim().to_string());
        m.decided_at = Some(now);
    }

    fn signing(&self) -> Option<Signing> {
        Some(Signing {
            record_type: SignedRecordType::SelectionDecision,
            meaning: SignatureMeaning::Approved,
            covers: crate::selection::DECISION_SIGNED_FIELDS,
        })
    }
    async fn sign(
        &self,
        _txn: &DatabaseTransaction,
        m: &mut selection::Model,
        signature: &signature::Model,
    ) -> Result<(), DbErr> {
        m.decision_signature_id = Some(signature.id);
        Ok(())
    }

    fn domain_event(
        &self,
        _before: &selection::Model,
        after: &selection::Model,
    ) -> Option<Emitted> {
        Some(Emitted::Organizations {
            program_id: after.program_id,
            sponsor_org_id: after.sponsor_org_id,
            cmo_org_id: None,
            event: Event::EvaluationDecided(EvaluationDecided {
                evaluation_id: after.id,
                title: after.title.clone(),
                program_id: after.program_id,
                cmo_org_id: self.cmo_org_id,
                reason: self.reason.trim().to_string(),
            }),
        })
    }
}

/// How the caller reads each refusal of the machine.
impl super::Refusal for SelectionError {
    fn kind(&self) -> super::RefusalKind {
        match self {
            Self::AlreadyDecided => super::RefusalKind::Illegal,
            Self::NotACandidate => super::RefusalKind::Invalid {
                field: "cmo_org_id",
                code: "unknown_candidate",
            },
        }
    }
    fn conflict_code(&self) -> &'static str {
        "evaluation_decided"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_evaluation_is_decided_once_for_a_candidate() {
        use EvaluationStatus as S;
        assert_eq!(
            selection::transition(S::Open, EvaluationEvent::Decide, true),
            Ok(S::Decided)
        );
        assert_eq!(
            selection::transition(S::Open, EvaluationEvent::Decide, false),
            Err(SelectionError::NotACandidate)
        );
        assert_eq!(
            selection::transition(S::Decided, EvaluationEvent::Decide, true),
            Err(SelectionError::AlreadyDecided)
        );
        assert!(selection::allowed_events(S::Decided).is_empty());
    }
}
