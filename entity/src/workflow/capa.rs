//! What each CAPA event does (SPEC §4): the effectiveness check's due date follows the
//! outcome; plan approval and closure are e-signed by quality; a CAPA closed effective
//! closes the deviations waiting for it.

use chrono::{DateTime, NaiveDate, Utc};
use sea_orm::{
    ColumnTrait, ConnectionTrait, DatabaseTransaction, DbErr, EntityTrait, PaginatorTrait,
    QueryFilter,
};

use super::{Emitted, FollowUp, Signing, Workflow};
use crate::action_item::{self, ActionStatus};
use crate::audit_trail::Actor;
use crate::capa::{self, CapaEvent, CapaStatus, CapaTransitionError, EffectivenessOutcome, Guards};
use crate::deviation::{self, DeviationStatus};
use crate::domain_event::{CapaTransitioned, Event};
use crate::enums::{Role, SignatureMeaning, SignedRecordType};
use crate::signature;

/// One step of a CAPA's workflow.
#[derive(Debug, Clone)]
pub struct Step {
    pub event: CapaEvent,
    /// `request_effectiveness_check`, and `record_effectiveness` when inconclusive.
    pub effectiveness_due: Option<NaiveDate>,
    /// `record_effectiveness`.
    pub outcome: Option<EffectivenessOutcome>,
    pub reason: Option<String>,
}

impl Step {
    /// The guards' facts from the CAPA's action counts.
    pub fn guards_from(&self, c: &capa::Model, action_count: u64, open_actions: u64) -> Guards {
        Guards {
            action_count,
            open_action_count: open_actions,
            has_effectiveness_due: self.effectiveness_due.is_some(),
            outcome: if self.event == CapaEvent::RecordEffectiveness {
                self.outcome
            } else {
                c.effectiveness_outcome
            },
            has_reason: self.reason.is_some(),
        }
    }
}

impl Step {
    /// The plan approval and the closure are kept in different columns.
    fn signature_column(&self, c: &mut capa::Model, signature_id: i64) {
        if self.event == CapaEvent::ApprovePlan {
            c.plan_signature_id = Some(signature_id);
        } else {
            c.closure_signature_id = Some(signature_id);
        }
    }
}

impl Workflow for Step {
    type Entity = capa::Entity;
    type Model = capa::Model;
    type Status = CapaStatus;
    type Event = CapaEvent;
    type Guards = Guards;
    type Refusal = CapaTransitionError;

    const RECORD: &'static str = "capa";

    fn id(m: &capa::Model) -> i64 {
        m.id
    }
    fn status(m: &capa::Model) -> CapaStatus {
        m.status
    }
    fn event(&self) -> CapaEvent {
        self.event
    }
    fn allowed_events(m: &capa::Model) -> Vec<CapaEvent> {
        capa::allowed_events(m.status)
    }
    fn probe(event: CapaEvent, c: &capa::Model, _: Role) -> Self {
        Step {
            event,
            effectiveness_due: c.effectiveness_due.or(Some(NaiveDate::MAX)),
            outcome: Some(EffectivenessOutcome::Effective),
            reason: Some(String::new()),
        }
    }
    fn reason(&self) -> Option<String> {
        self.reason.clone()
    }

    async fn guards<C: ConnectionTrait>(&self, conn: &C, c: &capa::Model) -> Result<Guards, DbErr> {
        let action_ids: Vec<i64> = capa::action_link::Entity::find()
            .filter(capa::action_link::Column::CapaId.eq(c.id))
            .all(conn)
            .await?
            .into_iter()
            .map(|l| l.action_item_id)
            .collect();
        let open_actions = if action_ids.is_empty() {
            0
        } else {
            action_item::Entity::find()
                .filter(action_item::Column::Id.is_in(action_ids.clone()))
                .filter(
                    action_item::Column::Status
                        .is_in([ActionStatus::Open, ActionStatus::InProgress]),
                )
                .count(conn)
                .await?
        };
        Ok(self.guards_from(c, action_ids.len() as u64, open_actions))
    }

    fn decide(&self, c: &capa::Model, g: &Guards) -> Result<CapaStatus, CapaTransitionError> {
        capa::transition(c.status, self.event, g)
    }

    fn apply(&self, c: &mut capa::Model, next: CapaStatus, _: &Self::Guards, now: DateTime<Utc>) {
        c.status = next;
        match self.event {
            CapaEvent::RequestEffectivenessCheck => c.effectiveness_due = self.effectiveness_due,
            CapaEvent::RecordEffectiveness => {
                c.effectiveness_outcome = self.outcome;
                match self.outcome {
                    Some(EffectivenessOutcome::Inconclusive) => {
                        c.effectiveness_due = self.effectiveness_due
                    }
                    Some(EffectivenessOutcome::Ineffective) => c.effectiveness_due = None,
                    _ => {}
                }
            }
            CapaEvent::Close => c.closed_at = Some(now),
            CapaEvent::Cancel => {
                c.cancel_reason = self.reason.clone();
                c.closed_at = Some(now);
            }
            CapaEvent::ApprovePlan | CapaEvent::StartImplementation => {}
        }
    }

    fn signing(&self) -> Option<Signing> {
        capa::needs_signature(self.event).then_some(Signing {
            record_type: SignedRecordType::Capa,
            meaning: SignatureMeaning::Approved,
            covers: capa::signed_fields(self.event),
        })
    }
    async fn sign(
        &self,
        _txn: &DatabaseTransaction,
        c: &mut capa::Model,
        signature: &signature::Model,
    ) -> Result<(), DbErr> {
        self.signature_column(c, signature.id);
        Ok(())
    }

    fn domain_event(&self, before: &capa::Model, after: &capa::Model) -> Option<Emitted> {
        Some(Emitted::Program {
            program_id: after.program_id,
            event: Event::CapaTransitioned(CapaTransitioned {
                capa_id: after.id,
                event: self.event,
                from: before.status,
                to: after.status,
            }),
        })
    }

    async fn follow_ups(
        &self,
        conn: &sea_orm::DatabaseTransaction,
        _actor: &Actor,
        _before: &capa::Model,
        after: &capa::Model,
    ) -> Result<Vec<FollowUp>, DbErr> {
        if self.event != CapaEvent::Close {
            return Ok(Vec::new());
        }
        // SPEC §4: closed effective, it closes the deviations waiting in pending_capa
        // (each still under its own closure rules).
        let ids: Vec<i64> = capa::deviation_link::Entity::find()
            .filter(capa::deviation_link::Column::CapaId.eq(after.id))
            .all(conn)
            .await?
            .into_iter()
            .map(|l| l.deviation_id)
            .collect();
        let waiting = deviation::Entity::find()
            .filter(deviation::Column::Id.is_in(ids))
            .filter(deviation::Column::Status.eq(DeviationStatus::PendingCapa))
            .all(conn)
            .await?;
        Ok(waiting
            .into_iter()
            .filter(|d| {
                super::deviation::Step::new(
                    deviation::DeviationEvent::Close,
                    None,
                    Some(String::new()),
                )
                .decide_with(d, true)
                .is_ok()
            })
            .map(|d| FollowUp::CloseWaitingDeviation {
                deviation_id: d.id,
                capa_id: after.id,
            })
            .collect())
    }
}

/// How the caller reads each refusal of the machine.
impl super::Refusal for CapaTransitionError {
    fn kind(&self) -> super::RefusalKind {
        use super::RefusalKind;
        match self {
            Self::ReasonRequired => RefusalKind::MissingField("reason"),
            Self::DueDateRequired => RefusalKind::MissingField("effectiveness_due"),
            Self::OutcomeRequired => RefusalKind::MissingField("outcome"),
            _ => RefusalKind::Illegal,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::capa::CapaSource;

    fn capa_in(status: CapaStatus) -> capa::Model {
        let at = DateTime::from_timestamp(1_795_000_000, 0).unwrap_or_default();
        capa::Model {
            id: 5,
            record_number: Some("CAPA-2026-0005".into()),
            program_id: 1,
            title: "t".into(),
            description: "d".into(),
            source: CapaSource::Deviation,
            finding_reference: None,
            status,
            effectiveness_due: None,
            effectiveness_outcome: None,
            plan_signature_id: None,
            closure_signature_id: None,
            cancel_reason: None,
            closed_at: None,
            created_at: at,
            updated_at: at,
            version: 1,
        }
    }

    #[test]
    fn the_effectiveness_due_date_follows_the_outcome() {
        let now = DateTime::from_timestamp(1_795_100_000, 0).unwrap_or_default();
        let due = NaiveDate::from_ymd_opt(2027, 3, 1);
        let step = |outcome| Step {
            event: CapaEvent::RecordEffectiveness,
            effectiveness_due: due,
            outcome: Some(outcome),
            reason: Some("r".into()),
        };
        let mut c = capa_in(CapaStatus::EffectivenessCheck);
        c.effectiveness_due = NaiveDate::from_ymd_opt(2027, 1, 1);
        let mut inconclusive = c.clone();
        step(EffectivenessOutcome::Inconclusive).apply(
            &mut inconclusive,
            CapaStatus::EffectivenessCheck,
            &Guards::default(),
            now,
        );
        assert_eq!(inconclusive.effectiveness_due, due);
        let mut ineffective = c.clone();
        step(EffectivenessOutcome::Ineffective).apply(
            &mut ineffective,
            CapaStatus::Implementing,
            &Guards::default(),
            now,
        );
        assert_eq!(ineffective.effectiveness_due, None);
        let mut effective = c.clone();
        step(EffectivenessOutcome::Effective).apply(
            &mut effective,
            CapaStatus::EffectivenessCheck,
            &Guards::default(),
            now,
        );
        assert_eq!(effective.effectiveness_due, c.effectiveness_due);
        assert_eq!(
            effective.effectiveness_outcome,
            Some(EffectivenessOutcome::Effective)
        );
    }

    #[test]
    fn plan_approval_and_closure_sign_different_columns() {
        let step = |event| Step {
            event,
            effectiveness_due: None,
            outcome: None,
            reason: None,
        };
        let mut c = capa_in(CapaStatus::Open);
        step(CapaEvent::ApprovePlan).signature_column(&mut c, 7);
        step(CapaEvent::Close).signature_column(&mut c, 8);
        assert_eq!(
            (c.plan_signature_id, c.closure_signature_id),
            (Some(7), Some(8))
        );
        assert!(step(CapaEvent::StartImplementation).signing().is_none());
    }
}
