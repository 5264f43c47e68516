//! What each escalation event does (SPEC §6). People acknowledge ("I am on it": paging
//! stops) and resolve; the worker exhausts an escalation whose last tier went
//! unanswered and re-opens one acknowledged but not resolved within the policy's
//! timeout (the tier that acknowledged is paged again). Each change is an event on the
//! escalation's timeline, and everyone paged so far is told ([`Told`]).

use chrono::{DateTime, Utc};
use sea_orm::{ConnectionTrait, DatabaseTransaction, DbErr, EntityTrait};

use super::{Emitted, FollowUp, Refusal, Workflow};
use crate::audit_trail::Actor;
use crate::domain_event::{EscalationAcknowledged, EscalationResolved, Event};
use crate::enums::Role;
use crate::escalation::{self, EscalationStatus, NextAction};
use crate::escalation_policy;
use crate::program;

/// What happens to an escalation.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize, utoipa::ToSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum EscalationEvent {
    /// open | exhausted → acknowledged: someone is on it; paging stops.
    Acknowledge,
    /// any but resolved → resolved: the cause is dealt with.
    Resolve,
    /// open → exhausted (the worker): every tier and repeat was paged, nobody answered.
    Exhaust,
    /// acknowledged → open (the worker): not resolved within the acknowledgement timeout.
    Reopen,
}

/// What everyone paged so far is told (the `mail` crate words it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Told {
    Acknowledged {
        by: String,
        channel: String,
        note: Option<String>,
    },
    Resolved {
        by: String,
        reason: String,
    },
    /// Someone acted on the escalation's source (`deviation #12`).
    EndedBySource {
        source: String,
    },
    Exhausted,
    Reopened,
}

/// One escalation step. `at` is when it is taken (the worker's steps depend on time).
#[derive(Debug, Clone)]
pub struct Step {
    pub event: EscalationEvent,
    /// The person acting (`None`: the worker), with their name for the notice.
    pub by: Option<(i64, String)>,
    /// `api`, `email`, or `worker`.
    pub channel: String,
    /// The acknowledgement's note, or why it was resolved.
    pub note: Option<String>,
    /// Resolved because someone acted on this source (`deviation #12`).
    pub source: Option<String>,
    pub at: DateTime<Utc>,
}

impl Step {
    /// A person's acknowledgement or resolution.
    pub fn by_person(
        event: EscalationEvent,
        user_id: i64,
        name: &str,
        channel: &str,
        note: Option<String>,
        at: DateTime<Utc>,
    ) -> Self {
        Self {
            event,
            by: Some((user_id, name.to_string())),
            channel: channel.to_string(),
            note,
            source: None,
            at,
        }
    }

    /// Resolved because `actor` acted on the escalation's `source` (`deviation #12`).
    pub fn ended_by_source(actor: &Actor, source: String) -> Self {
        Self {
            event: EscalationEvent::Resolve,
            by: actor.user_id.map(|id| (id, String::new())),
            channel: "api".to_string(),
            note: Some(format!("{source} acted on")),
            source: Some(source),
            at: actor.at,
        }
    }

    /// The worker's own step.
    pub fn by_worker(event: EscalationEvent, at: DateTime<Utc>) -> Self {
        Self {
            event,
            by: None,
            channel: "worker".to_string(),
            note: None,
            source: None,
            at,
        }
    }
}

/// Why an escalation step is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EscalationRefusal {
    #[error("already acknowledged by someone else")]
    AcknowledgedByOther,
    #[error("the escalation is {}", crate::enums::wire_name(.0))]
    NotAllowed(EscalationStatus),
    /// The worker's step is not due (yet): nothing to do.
    #[error("not due")]
    NotDue,
}

impl Refusal for EscalationRefusal {}

/// The machine: where `event` takes an escalation in `from`. `due` says whether the
/// worker's time-driven step is due now.
pub fn transition(
    from: EscalationStatus,
    event: EscalationEvent,
    due: bool,
) -> Result<EscalationStatus, EscalationRefusal> {
    use EscalationEvent as E;
    use EscalationStatus as S;
    match (from, event) {
        (S::Open | S::Exhausted, E::Acknowledge) => Ok(S::Acknowledged),
        (S::Acknowledged, E::Acknowledge) => Err(EscalationRefusal::AcknowledgedByOther),
        (S::Open | S::Acknowledged | S::Exhausted, E::Resolve) => Ok(S::Resolved),
        (S::Open, E::Exhaust) | (S::Acknowledged, E::Reopen) if !due => {
            Err(EscalationRefusal::NotDue)
        }
        (S::Open, E::Exhaust) => Ok(S::Exhausted),
        (S::Acknowledged, E::Reopen) => Ok(S::Open),
        _ => Err(EscalationRefusal::NotAllowed(from)),
    }
}

/// The actor of a worker's step: the system, in the audit trail of the program's sponsor.
pub async fn worker_actor<C: ConnectionTrait>(
    conn: &C,
    e: &escalation::Model,
    at: DateTime<Utc>,
    chain_keys: &crate::audit::ChainKeys,
) -> Result<Actor, DbErr> {
    let prog = program::Entity::find_by_id(e.program_id)
        .one(conn)
        .await?
        .ok_or_else(|| DbErr::RecordNotFound(format!("program {}", e.program_id)))?;
    Ok(Actor {
        org_id: prog.sponsor_org_id,
        user_id: None,
        request_id: None,
        at,
        chain_keys: chain_keys.clone(),
    })
}

impl Workflow for Step {
    type Entity = escalation::Entity;
    type Model = escalation::Model;
    type Status = EscalationStatus;
    type Event = EscalationEvent;
    type Guards = bool;
    type Refusal = EscalationRefusal;

    const RECORD: &'static str = "escalation";

    fn id(e: &escalation::Model) -> i64 {
        e.id
    }
    fn status(e: &escalation::Model) -> EscalationStatus {
        e.status
    }
    fn event(&self) -> EscalationEvent {
        self.event
    }
    /// What people can do (the worker's steps are not offered).
    fn allowed_events(e: &escalation::Model) -> Vec<EscalationEvent> {
        [EscalationEvent::Acknowledge, EscalationEvent::Resolve]
            .into_iter()
            .filter(|ev| transition(e.status, *ev, false).is_ok())
            .collect()
    }
    fn probe(event: EscalationEvent, e: &escalation::Model, _: Role) -> Self {
        Step::by_person(event, 0, "", "api", Some(String::new()), e.opened_at)
    }
    fn reason(&self) -> Option<String> {
        Some(match self.event {
            EscalationEvent::Acknowledge => format!("acknowledged via {}", self.channel),
            EscalationEvent::Resolve => self.note.clone().unwrap_or_default(),
            EscalationEvent::Exhaust => "every tier was paged without acknowledgement".into(),
            EscalationEvent::Reopen => {
                "acknowledged but not resolved within the acknowledgement timeout".into()
            }
        })
    }

    /// Whether the worker's step is due at `at`.
    async fn guards<C: ConnectionTrait>(
        &self,
        _conn: &C,
        e: &escalation::Model,
    ) -> Result<bool, DbErr> {
        Ok(match self.event {
            EscalationEvent::Exhaust => escalation::next_action(e, self.at) == NextAction::Exhaust,
            EscalationEvent::Reopen => escalation::ack_timed_out(e, self.at),
            EscalationEvent::Acknowledge | EscalationEvent::Resolve => true,
        })
    }

    fn decide(
        &self,
        e: &escalation::Model,
        due: &bool,
    ) -> Result<EscalationStatus, EscalationRefusal> {
        transition(e.status, self.event, *due)
    }

    fn apply(
        &self,
        e: &mut escalation::Model,
        next: EscalationStatus,
        _: &bool,
        now: DateTime<Utc>,
    ) {
        e.status = next;
        e.next_page_at = None;
        match self.event {
            EscalationEvent::Acknowledge => {
                // The worker's next look: the tier is paged again if nobody resolves it
                // within the policy's ack timeout (indexed, so a tick reads only these).
                e.next_page_at = Some(
                    now + chrono::TimeDelta::minutes(e.policy().ack_timeout_minutes.max(1) as i64),
                );
                e.acknowledged_at = Some(now);
                e.acknowledged_by_user_id = self.by.as_ref().map(|(id, _)| *id);
                e.ack_channel = Some(self.channel.clone());
            }
            EscalationEvent::Resolve => e.resolved_at = Some(now),
            EscalationEvent::Exhaust => {}
            EscalationEvent::Reopen => {
                // Page the tier that acknowledged again, at once.
                let tier = usize::try_from(e.current_tier.unwrap_or(0)).unwrap_or(0);
                e.step = escalation_policy::first_step_of(tier);
                e.next_page_at = Some(now);
                e.reopen_count += 1;
            }
        }
    }

    fn domain_event(
        &self,
        before: &escalation::Model,
        after: &escalation::Model,
    ) -> Option<Emitted> {
        let event = match self.event {
            EscalationEvent::Acknowledge => Event::EscalationAcknowledged(EscalationAcknowledged {
                escalation_id: after.id,
                by_user_id: after.acknowledged_by_user_id.unwrap_or_default(),
                channel: self.channel.clone(),
                tier: after.current_tier,
            }),
            EscalationEvent::Resolve => Event::EscalationResolved(EscalationResolved {
                escalation_id: after.id,
                previous_status: before.status,
            }),
            EscalationEvent::Exhaust | EscalationEvent::Reopen => return None,
        };
        Some(Emitted::Program {
            program_id: after.program_id,
            event,
        })
    }

    /// The timeline event, and the notice to everyone paged so far.
    async fn follow_ups(
        &self,
        txn: &DatabaseTransaction,
        actor: &Actor,
        before: &escalation::Model,
        after: &escalation::Model,
    ) -> Result<Vec<FollowUp>, DbErr> {
        let name = self.by.as_ref().map(|(_, n)| n.clone()).unwrap_or_default();
        let by = self.by.as_ref().map(|(id, _)| (*id, self.channel.as_str()));
        let (kind, detail, told) = match self.event {
            EscalationEvent::Acknowledge => (
                "acknowledged",
                serde_json::json!({"by": name, "note": self.note}),
                Told::Acknowledged {
                    by: name.clone(),
                    channel: self.channel.clone(),
                    note: self.note.clone(),
                },
            ),
            EscalationEvent::Resolve => (
                "resolved",
                serde_json::json!({"previous_status": before.status}),
                match &self.source {
                    Some(source) => Told::EndedBySource {
                        source: source.clone(),
                    },
                    None => Told::Resolved {
                        by: name.clone(),
                        reason: self.note.clone().unwrap_or_default(),
                    },
                },
            ),
            EscalationEvent::Exhaust => (
                "exhausted",
                serde_json::json!({"pages": before.page_seq}),
                Told::Exhausted,
            ),
            EscalationEvent::Reopen => (
                "reopened",
                serde_json::json!({"why": "acknowledged but not resolved within the ack timeout",
                    "acknowledged_by_user_id": before.acknowledged_by_user_id,
                    "acknowledged_at": before.acknowledged_at}),
                Told::Reopened,
            ),
        };
        let tier = if self.event == EscalationEvent::Reopen {
            after.current_tier.or(Some(0))
        } else {
            before.current_tier
        };
        escalation::record_event(txn, after.id, kind, tier, detail, by, actor.at).await?;
        Ok(vec![FollowUp::TellPaged {
            escalation: Box::new(after.clone()),
            told,
        }])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use EscalationEvent as E;
    use EscalationStatus as S;

    #[test]
    fn people_acknowledge_and_resolve_and_the_worker_exhausts_and_reopens_when_due() {
        assert_eq!(
            transition(S::Open, E::Acknowledge, false),
            Ok(S::Acknowledged)
        );
        assert_eq!(
            transition(S::Exhausted, E::Acknowledge, false),
            Ok(S::Acknowledged)
        );
        assert_eq!(
            transition(S::Acknowledged, E::Acknowledge, false),
            Err(EscalationRefusal::AcknowledgedByOther)
        );
        for from in [S::Open, S::Acknowledged, S::Exhausted] {
            assert_eq!(transition(from, E::Resolve, false), Ok(S::Resolved));
        }
        assert_eq!(
            transition(S::Resolved, E::Resolve, false),
            Err(EscalationRefusal::NotAllowed(S::Resolved))
        );
        assert_eq!(
            transition(S::Open, E::Exhaust, false),
            Err(EscalationRefusal::NotDue)
        );
        assert_eq!(transition(S::Open, E::Exhaust, true), Ok(S::Exhausted));
        assert_eq!(transition(S::Acknowledged, E::Reopen, true), Ok(S::Open));
        assert_eq!(
            transition(S::Resolved, E::Reopen, true),
            Err(EscalationRefusal::NotAllowed(S::Resolved))
        );
    }

    #[test]
    fn refusals_read_as_people_expect() {
        assert_eq!(
            EscalationRefusal::AcknowledgedByOther.to_string(),
            "already acknowledged by someone else"
        );
        assert_eq!(
            EscalationRefusal::NotAllowed(S::Resolved).to_string(),
            "the escalation is resolved"
        );
    }

    #[test]
    fn acknowledging_waits_for_the_ack_timeout_and_reopening_pages_the_acknowledging_tier_at_once()
    {
        let now = DateTime::from_timestamp(1_800_000_600, 0).unwrap_or_default();
        let mut e = crate::escalation::tests::escalation(S::Open, 2, 0);
        e.current_tier = Some(1);
        let ack = Step::by_person(E::Acknowledge, 9, "Quinn QA", "email", None, now);
        ack.apply(&mut e, S::Acknowledged, &true, now);
        assert_eq!(
            (
                e.acknowledged_by_user_id,
                e.ack_channel.as_deref(),
                e.next_page_at
            ),
            (
                Some(9),
                Some("email"),
                Some(now + chrono::TimeDelta::minutes(60))
            ),
            "the default policy re-pages an acknowledged escalation after 60 minutes"
        );
        assert_eq!(ack.reason().as_deref(), Some("acknowledged via email"));
        Step::by_worker(E::Reopen, now).apply(&mut e, S::Open, &true, now);
        assert_eq!(
            (e.status, e.step, e.next_page_at, e.reopen_count),
            (S::Open, escalation_policy::first_step_of(1), Some(now), 1)
        );
        assert_eq!(
            Step::allowed_events(&e),
            vec![E::Acknowledge, E::Resolve],
            "the worker's steps are never offered"
        );
    }
}
