//! What each milestone event does (SPEC §3): starting stamps the actual start and needs
//! every dependency completed; submitting opens a new gate review round; completing needs
//! the round's signed `go` and stamps the actual end; a hold remembers where to resume.
//! A `no_go` is not a step of its own here: it is the signed gate decision
//! ([`super::gate`]).

use chrono::{DateTime, NaiveDate, Utc};
use sea_orm::{ColumnTrait, ConnectionTrait, DbErr, EntityTrait, QueryFilter, QueryOrder};

use super::{Emitted, Refusal, RefusalKind, Workflow};
use crate::domain_event::{Event, MilestoneTransitioned};
use crate::enums::Role;
use crate::gate;
use crate::milestone::{self, MilestoneStatus};
use crate::milestone_dependency;
use crate::milestone_rules::{self, ActualDateError, Guards, MilestoneEvent, TransitionError};
use crate::program;

/// One step of a milestone's workflow.
#[derive(Debug, Clone)]
pub struct Step {
    pub event: MilestoneEvent,
    pub reason: Option<String>,
    /// With `start` and `complete`: the day it actually happened, when that was before
    /// today (default: today in the program's zone). An earlier day needs a reason.
    pub on: Option<NaiveDate>,
    /// When the step is asked (the service's clock): what "today" is.
    pub asked_at: DateTime<Utc>,
}

/// Why a milestone step is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MilestoneRefusal {
    #[error(transparent)]
    Machine(#[from] TransitionError),
    /// A no-go is signed, with its checklist: `POST /milestones/{id}/gate-decisions`.
    #[error("a no-go is a signed gate decision: POST /api/v1/milestones/{{id}}/gate-decisions")]
    UseGateDecision,
    /// The day given with the step.
    #[error(transparent)]
    Day(#[from] ActualDateError),
}

impl Refusal for MilestoneRefusal {
    fn kind(&self) -> RefusalKind {
        match self {
            Self::Machine(TransitionError::ReasonRequired)
            | Self::Day(ActualDateError::ReasonRequired) => RefusalKind::MissingField("reason"),
            Self::Day(e) => RefusalKind::Invalid {
                field: e.field(),
                code: e.code(),
            },
            _ => RefusalKind::Illegal,
        }
    }
    fn conflict_code(&self) -> &'static str {
        match self {
            Self::UseGateDecision => "use_gate_decision",
            Self::Machine(_) | Self::Day(_) => "illegal_transition",
        }
    }
}

/// The guards' facts and, for the events that stamp an actual date (start, complete),
/// the program's time zone.
#[derive(Debug, Clone)]
pub struct Facts {
    pub guards: Guards,
    pub zone: Option<chrono_tz::Tz>,
}

/// Names of the milestone's dependencies that are not completed, in plan order.
pub async fn open_dependencies<C: ConnectionTrait>(
    conn: &C,
    m: &milestone::Model,
) -> Result<Vec<String>, DbErr> {
    let deps: Vec<i64> = milestone_dependency::Entity::find()
        .filter(milestone_dependency::Column::MilestoneId.eq(m.id))
        .all(conn)
        .await?
        .into_iter()
        .map(|d| d.depends_on_id)
        .collect();
    if deps.is_empty() {
        return Ok(Vec::new());
    }
    Ok(milestone::Entity::find()
        .filter(milestone::Column::Id.is_in(deps))
        .filter(milestone::Column::Status.ne(MilestoneStatus::Completed))
        .order_by_asc(milestone::Column::Position)
        .all(conn)
        .await?
        .into_iter()
        .map(|d| d.name)
        .collect())
}

/// Whether the current review round's decision is `go` (`None`: undecided).
pub async fn round_decided_go<C: ConnectionTrait>(
    conn: &C,
    m: &milestone::Model,
) -> Result<Option<bool>, DbErr> {
    Ok(gate::decision::Entity::find()
        .filter(gate::decision::Column::MilestoneId.eq(m.id))
        .filter(gate::decision::Column::GateRound.eq(m.gate_round))
        .one(conn)
        .await?
        .map(|d| d.decision == gate::Decision::Go))
}

/// The time zone of the milestone's program.
async fn program_zone<C: ConnectionTrait>(
    conn: &C,
    program_id: i64,
) -> Result<chrono_tz::Tz, DbErr> {
    let prog = program::Entity::find_by_id(program_id)
        .one(conn)
        .await?
        .ok_or_else(|| DbErr::RecordNotFound(format!("program {program_id}")))?;
    Ok(crate::schedule::zone(&prog.time_zone))
}

impl Step {
    /// Today in the program's zone, when the step was asked.
    fn today(&self, f: &Facts) -> NaiveDate {
        self.asked_at
            .with_timezone(&f.zone.unwrap_or(chrono_tz::UTC))
            .date_naive()
    }
}

impl Workflow for Step {
    type Entity = milestone::Entity;
    type Model = milestone::Model;
    type Status = MilestoneStatus;
    type Event = MilestoneEvent;
    type Guards = Facts;
    type Refusal = MilestoneRefusal;

    const RECORD: &'static str = "milestone";

    fn id(m: &milestone::Model) -> i64 {
        m.id
    }
    fn status(m: &milestone::Model) -> MilestoneStatus {
        m.status
    }
    fn event(&self) -> MilestoneEvent {
        self.event
    }
    /// A no-go is offered by the gate, not here.
    fn allowed_events(m: &milestone::Model) -> Vec<MilestoneEvent> {
        milestone_rules::allowed_events(m.status, m.held_from)
            .into_iter()
            .filter(|e| *e != MilestoneEvent::NoGo)
            .collect()
    }
    fn probe(event: MilestoneEvent, _: &milestone::Model, _: Role) -> Self {
        Step {
            event,
            reason: Some(String::new()),
            on: None,
            asked_at: DateTime::UNIX_EPOCH,
        }
    }
    fn reason(&self) -> Option<String> {
        self.reason.clone()
    }

    async fn guards<C: ConnectionTrait>(
        &self,
        conn: &C,
        m: &milestone::Model,
    ) -> Result<Facts, DbErr> {
        let mut guards = Guards {
            held_from: m.held_from,
            has_reason: self.reason.is_some(),
            ..Guards::default()
        };
        match self.event {
            MilestoneEvent::Start => guards.open_dependencies = open_dependencies(conn, m).await?,
            MilestoneEvent::Complete => guards.gate_go = round_decided_go(conn, m).await?,
            _ => {}
        }
        let zone = match self.event {
            MilestoneEvent::Start | MilestoneEvent::Complete => {
                Some(program_zone(conn, m.program_id).await?)
            }
            _ => None,
        };
        Ok(Facts { guards, zone })
    }

    fn decide(&self, m: &milestone::Model, f: &Facts) -> Result<MilestoneStatus, MilestoneRefusal> {
        if self.event == MilestoneEvent::NoGo {
            return Err(MilestoneRefusal::UseGateDecision);
        }
        let next = milestone_rules::transition(m.status, self.event, &f.guards)?;
        if self.on.is_some() {
            milestone_rules::actual_day(
                self.event,
                self.on,
                m.actual_start,
                self.today(f),
                f.guards.has_reason,
            )?;
        }
        Ok(next)
    }

    fn apply(
        &self,
        m: &mut milestone::Model,
        next: MilestoneStatus,
        f: &Facts,
        now: DateTime<Utc>,
    ) {
        // Only start and complete use the date, and their guards read the zone.
        let zone = f.zone.unwrap_or(chrono_tz::UTC);
        let day = self
            .on
            .unwrap_or_else(|| now.with_timezone(&zone).date_naive());
        apply(m, self.event, next, day);
    }

    fn domain_event(&self, before: &milestone::Model, after: &milestone::Model) -> Option<Emitted> {
        Some(Emitted::Program {
            program_id: after.program_id,
            event: Event::MilestoneTransitioned(MilestoneTransitioned {
                milestone_id: after.id,
                name: after.name.clone(),
                event: self.event,
                from: before.status,
                to: after.status,
            }),
        })
    }
}

/// What `event` does to the milestone besides its status, on the program's `today`.
pub fn apply(
    m: &mut milestone::Model,
    event: MilestoneEvent,
    next: MilestoneStatus,
    today: NaiveDate,
) {
    let from = m.status;
    m.status = next;
    match event {
        MilestoneEvent::Start => m.actual_start = Some(today),
        MilestoneEvent::Complete => m.actual_end = Some(today),
        MilestoneEvent::Hold => m.held_from = Some(from),
        MilestoneEvent::SubmitForGate => m.gate_round += 1,
        MilestoneEvent::Resume => m.held_from = None,
        MilestoneEvent::NoGo | MilestoneEvent::Cancel => {}
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub(crate) fn milestone_in(status: MilestoneStatus) -> milestone::Model {
        let day = NaiveDate::from_ymd_opt(2027, 3, 1).unwrap_or_default();
        let at = DateTime::from_timestamp(1_795_100_000, 0).unwrap_or_default();
        milestone::Model {
            id: 12,
            program_id: 3,
            name: "Engineering runs".into(),
            phase: "Tech transfer".into(),
            owner_user_id: Some(5),
            status,
            held_from: None,
            baseline_start: day,
            baseline_end: day,
            forecast_start: day,
            forecast_end: day,
            actual_start: None,
            actual_end: None,
            position: 0,
            gate_round: 1,
            created_at: at,
            updated_at: at,
            version: 4,
        }
    }

    fn facts(gate_go: Option<bool>, has_reason: bool) -> Facts {
        Facts {
            guards: Guards {
                gate_go,
                has_reason,
                ..Guards::default()
            },
            zone: Some(chrono_tz::Europe::Zurich),
        }
    }

    fn step(event: MilestoneEvent, reason: Option<&str>) -> Step {
        Step {
            event,
            reason: reason.map(str::to_string),
            on: None,
            asked_at: DateTime::from_timestamp(1_804_000_000, 0).unwrap_or_default(),
        }
    }

    #[test]
    fn a_late_start_is_recorded_for_its_day_with_a_reason() {
        let m = milestone_in(MilestoneStatus::Planned);
        let asked = step(MilestoneEvent::Start, None).asked_at;
        let today = asked.with_timezone(&chrono_tz::Europe::Zurich).date_naive();
        let earlier = today - chrono::TimeDelta::days(5);
        let late = Step {
            on: Some(earlier),
            ..step(MilestoneEvent::Start, Some("entered after the fact"))
        };
        let f = facts(None, true);
        let next = late.decide(&m, &f).unwrap();
        let mut after = m.clone();
        late.apply(&mut after, next, &f, asked);
        assert_eq!(after.actual_start, Some(earlier));
        let without_reason = Step {
            on: Some(earlier),
            ..step(MilestoneEvent::Start, None)
        };
        let refusal = without_reason.decide(&m, &facts(None, false)).unwrap_err();
        assert_eq!(refusal.kind(), RefusalKind::MissingField("reason"));
        let tomorrow = Step {
            on: Some(today + chrono::TimeDelta::days(1)),
            ..step(MilestoneEvent::Start, Some("x"))
        };
        assert_eq!(
            tomorrow.decide(&m, &f).unwrap_err().kind(),
            RefusalKind::Invalid {
                field: "on",
                code: "in_future"
            }
        );
    }

    #[test]
    fn a_no_go_is_refused_here_and_never_offered() {
        let m = milestone_in(MilestoneStatus::GateReview);
        let refusal = step(MilestoneEvent::NoGo, Some("gaps"))
            .decide(&m, &facts(None, true))
            .unwrap_err();
        assert_eq!(refusal.conflict_code(), "use_gate_decision");
        assert_eq!(
            Step::allowed_events(&m),
            vec![
                MilestoneEvent::Complete,
                MilestoneEvent::Hold,
                MilestoneEvent::Cancel
            ]
        );
    }

    #[test]
    fn completing_needs_the_rounds_go_and_holding_needs_a_reason() {
        let m = milestone_in(MilestoneStatus::GateReview);
        let complete = step(MilestoneEvent::Complete, None);
        assert_eq!(
            complete.decide(&m, &facts(None, false)),
            Err(MilestoneRefusal::Machine(TransitionError::GateNotPassed))
        );
        assert_eq!(
            complete.decide(&m, &facts(Some(true), false)),
            Ok(MilestoneStatus::Completed)
        );
        let refusal = step(MilestoneEvent::Hold, None)
            .decide(&m, &facts(None, false))
            .unwrap_err();
        assert_eq!(refusal.kind(), RefusalKind::MissingField("reason"));
    }

    #[test]
    fn events_stamp_the_programs_local_date_and_the_gate_round() {
        // 23:30 UTC is already the next day in Zurich.
        let now = DateTime::parse_from_rfc3339("2027-03-01T23:30:00Z")
            .map(|t| t.to_utc())
            .unwrap_or_default();
        let mut m = milestone_in(MilestoneStatus::Planned);
        step(MilestoneEvent::Start, None).apply(
            &mut m,
            MilestoneStatus::InProgress,
            &facts(None, false),
            now,
        );
        assert_eq!(m.actual_start, NaiveDate::from_ymd_opt(2027, 3, 2));
        step(MilestoneEvent::SubmitForGate, None).apply(
            &mut m,
            MilestoneStatus::GateReview,
            &facts(None, false),
            now,
        );
        assert_eq!((m.status, m.gate_round), (MilestoneStatus::GateReview, 2));
        step(MilestoneEvent::Hold, Some("suite requalification")).apply(
            &mut m,
            MilestoneStatus::OnHold,
            &facts(None, true),
            now,
        );
        assert_eq!(m.held_from, Some(MilestoneStatus::GateReview));
        step(MilestoneEvent::Resume, None).apply(
            &mut m,
            MilestoneStatus::GateReview,
            &facts(None, false),
            now,
        );
        assert_eq!(m.held_from, None);
        step(MilestoneEvent::Complete, None).apply(
            &mut m,
            MilestoneStatus::Completed,
            &facts(Some(true), false),
            now,
        );
        assert_eq!(m.actual_end, NaiveDate::from_ymd_opt(2027, 3, 2));
    }

    #[test]
    fn a_guard_blocks_an_offered_event_and_a_missing_reason_does_not() {
        use crate::enums::Role;
        use crate::workflow::blocked_by;
        let m = milestone_in(MilestoneStatus::GateReview);
        let verdict = |event, f: &Facts| {
            let probe = Step::probe(event, &m, Role::ProgramManager);
            blocked_by(probe.decide(&m, f))
        };
        assert_eq!(
            verdict(MilestoneEvent::Complete, &facts(None, true)),
            Some("the gate has no go decision".to_string())
        );
        assert_eq!(
            verdict(MilestoneEvent::Complete, &facts(Some(true), true)),
            None
        );
        // The probe carries a reason; without one the refusal names the field, which is
        // the client's to give, not a block.
        assert_eq!(
            blocked_by(step(MilestoneEvent::Hold, None).decide(&m, &facts(None, false))),
            None
        );
    }
}
