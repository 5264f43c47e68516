//! A sponsor's qualification of a CMO (SPEC §7): each change keeps its reason and time;
//! approval and disqualification are e-signed by quality. Kept on the sponsor's
//! relationship with the CMO: another sponsor's qualification of the same CMO is its own.

use std::borrow::Cow;

use chrono::{DateTime, Utc};
use sea_orm::sea_query::Expr;
use sea_orm::{ColumnTrait, ConnectionTrait, DatabaseTransaction, DbErr, EntityTrait, QueryFilter};

use super::{Emitted, FollowUp, Signing, Workflow};
use crate::audit_trail::Actor;
use crate::cmo::{self, QualificationError, QualificationEvent, QualificationStatus};
use crate::domain_event::{CmoQualificationChanged, Event};
use crate::enums::{Role, SignatureMeaning, SignedRecordType};
use crate::relationship;
use crate::signature;

/// One qualification step.
#[derive(Debug, Clone)]
pub struct Step {
    pub event: QualificationEvent,
    pub reason: Option<String>,
}

impl Workflow for Step {
    type Entity = relationship::Entity;
    type Model = relationship::Model;
    type Status = QualificationStatus;
    type Event = QualificationEvent;
    type Guards = ();
    type Refusal = QualificationError;

    /// Named as before relationships existed: the CMO's profile, in the sponsor's trail.
    const RECORD: &'static str = "cmo_profile";

    fn id(m: &relationship::Model) -> i64 {
        m.id
    }
    fn audit_id(m: &relationship::Model) -> i64 {
        m.cmo_org_id
    }
    fn status(m: &relationship::Model) -> QualificationStatus {
        m.qualification_status
    }
    fn event(&self) -> QualificationEvent {
        self.event
    }
    fn allowed_events(m: &relationship::Model) -> Vec<QualificationEvent> {
        cmo::allowed_events(m.qualification_status)
    }
    fn probe(event: QualificationEvent, _: &relationship::Model, _: Role) -> Self {
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

    async fn guards<C: ConnectionTrait>(
        &self,
        _conn: &C,
        _m: &relationship::Model,
    ) -> Result<(), DbErr> {
        Ok(())
    }

    fn decide(
        &self,
        m: &relationship::Model,
        _: &(),
    ) -> Result<QualificationStatus, QualificationError> {
        cmo::transition(m.qualification_status, self.event, self.reason.is_some())
    }

    fn apply(
        &self,
        m: &mut relationship::Model,
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
        m: &mut relationship::Model,
        signature: &signature::Model,
    ) -> Result<(), DbErr> {
        m.qualification_signature_id = Some(signature.id);
        Ok(())
    }

    fn domain_event(
        &self,
        before: &relationship::Model,
        after: &relationship::Model,
    ) -> Option<Emitted> {
        // The sponsor's decision about a CMO: its own users and webhooks only.
        Some(Emitted::Organizations {
            program_id: None,
            sponsor_org_id: after.sponsor_org_id,
            cmo_org_id: None,
            event: Event::CmoQualificationChanged(CmoQualificationChanged {
                cmo_org_id: after.cmo_org_id,
                event: self.event,
                from: before.qualification_status,
                to: after.qualification_status,
                reason: self.reason.clone(),
            }),
        })
    }

    /// The previous release reads qualification from the CMO's profile, where the
    /// registering sponsor's stood: kept in step so a rollback finds it true. Goes with
    /// those columns, in the release after this one.
    async fn follow_ups(
        &self,
        conn: &DatabaseTransaction,
        _actor: &Actor,
        _before: &relationship::Model,
        after: &relationship::Model,
    ) -> Result<Vec<FollowUp>, DbErr> {
        cmo::Entity::update_many()
            .col_expr(
                cmo::Column::QualificationStatus,
                Expr::value(after.qualification_status),
            )
            .col_expr(
                cmo::Column::QualificationReason,
                Expr::value(after.qualification_reason.clone()),
            )
            .col_expr(
                cmo::Column::QualificationSignatureId,
                Expr::value(after.qualification_signature_id),
            )
            .col_expr(
                cmo::Column::QualificationChangedAt,
                Expr::value(after.qualification_changed_at),
            )
            .filter(cmo::Column::OrgId.eq(after.cmo_org_id))
            .filter(cmo::Column::SponsorOrgId.eq(after.sponsor_org_id))
            .exec(conn)
            .await?;
        Ok(Vec::new())
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
