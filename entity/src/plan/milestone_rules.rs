//! The milestone's pure rules: its state machine, the guards on it, derived schedule
//! health and the dependency graph check. No database, no HTTP.

use std::collections::{BTreeMap, BTreeSet};

use chrono::NaiveDate;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::milestone::MilestoneStatus;

mod actual_dates;
pub use actual_dates::{ActualDateError, actual_day, corrected_actual_dates, takes_actual_day};

/// What a caller asks a milestone to do (`POST /milestones/{id}/transitions`).
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, ToSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum MilestoneEvent {
    /// planned → in_progress; every dependency must be completed.
    Start,
    /// in_progress → gate_review: the work is done, the go/no-go gate is next.
    SubmitForGate,
    /// gate_review → completed; needs a `go` decision on the gate.
    Complete,
    /// gate_review → in_progress (rework), with a reason; a `no_go` gate decision does this.
    NoGo,
    /// planned | in_progress | gate_review → on_hold, with a reason.
    Hold,
    /// on_hold → the state it was held from.
    Resume,
    /// any open state → cancelled (terminal), with a reason.
    Cancel,
}

pub const ALL_EVENTS: [MilestoneEvent; 7] = [
    MilestoneEvent::Start,
    MilestoneEvent::SubmitForGate,
    MilestoneEvent::Complete,
    MilestoneEvent::NoGo,
    MilestoneEvent::Hold,
    MilestoneEvent::Resume,
    MilestoneEvent::Cancel,
];

/// Facts the guards look at, gathered by the caller.
#[derive(Debug, Clone, Default)]
pub struct Guards {
    /// Names of dependencies that are not completed yet.
    pub open_dependencies: Vec<String>,
    /// `Some(true)` when the gate's latest decision is `go`.
    pub gate_go: Option<bool>,
    /// The state an on-hold milestone returns to.
    pub held_from: Option<MilestoneStatus>,
    /// A reason was given with the event.
    pub has_reason: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TransitionError {
    #[error("{event:?} is not possible from {from:?}")]
    NotAllowed {
        from: MilestoneStatus,
        event: MilestoneEvent,
    },
    #[error("dependencies not completed: {}", .0.join(", "))]
    DependenciesOpen(Vec<String>),
    #[error("the gate has no go decision")]
    GateNotPassed,
    #[error("a reason is required for this event")]
    ReasonRequired,
}

/// The state machine: where `event` takes a milestone in `from`, if the guards allow.
pub fn transition(
    from: MilestoneStatus,
    event: MilestoneEvent,
    guards: &Guards,
) -> Result<MilestoneStatus, TransitionError> {
    use MilestoneEvent as E;
    use MilestoneStatus as S;
    let not_allowed = || TransitionError::NotAllowed { from, event };
    let next = match (from, event) {
        (S::Planned, E::Start) => {
            if !guards.open_dependencies.is_empty() {
                return Err(TransitionError::DependenciesOpen(
                    guards.open_dependencies.clone(),
                ));
            }
            S::InProgress
        }
        (S::InProgress, E::SubmitForGate) => S::GateReview,
        (S::GateReview, E::Complete) => {
            if guards.gate_go != Some(true) {
                return Err(TransitionError::GateNotPassed);
            }
            S::Completed
        }
        (S::GateReview, E::NoGo) => S::InProgress,
        (S::Planned | S::InProgress | S::GateReview, E::Hold) => S::OnHold,
        (S::OnHold, E::Resume) => guards.held_from.ok_or_else(not_allowed)?,
        (S::Planned | S::InProgress | S::GateReview | S::OnHold, E::Cancel) => S::Cancelled,
        _ => return Err(not_allowed()),
    };
    if requires_reason(event) && !guards.has_reason {
        return Err(TransitionError::ReasonRequired);
    }
    Ok(next)
}

pub fn requires_reason(event: MilestoneEvent) -> bool {
    matches!(
        event,
        MilestoneEvent::NoGo | MilestoneEvent::Hold | MilestoneEvent::Cancel
    )
}

/// Events the state machine accepts from `from` (guards aside, except a resumable hold).
pub fn allowed_events(
    from: MilestoneStatus,
    held_from: Option<MilestoneStatus>,
) -> Vec<MilestoneEvent> {
    let permissive = Guards {
        open_dependencies: Vec::new(),
        gate_go: Some(true),
        held_from,
        has_reason: true,
    };
    ALL_EVENTS
        .into_iter()
        .filter(|e| transition(from, *e, &permissive).is_ok())
        .collect()
}

/// Derived schedule health (SPEC §3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ScheduleHealth {
    OnTrack,
    AtRisk,
    Late,
}

/// The milestone's dates, as far as health is concerned.
#[derive(Debug, Clone, Copy)]
pub struct Schedule {
    pub status: MilestoneStatus,
    pub baseline_start: NaiveDate,
    pub baseline_end: NaiveDate,
    pub forecast_start: NaiveDate,
    pub forecast_end: NaiveDate,
    pub actual_end: Option<NaiveDate>,
}

impl crate::milestone::Model {
    /// Its [`schedule_health`] on `today` (the date in the program's time zone).
    pub fn health(&self, today: NaiveDate) -> Option<ScheduleHealth> {
        schedule_health(
            &Schedule {
                status: self.status,
                baseline_start: self.baseline_start,
                baseline_end: self.baseline_end,
                forecast_start: self.forecast_start,
                forecast_end: self.forecast_end,
                actual_end: self.actual_end,
            },
            today,
        )
    }
}

/// Health on `today` (the date in the program's time zone):
/// - completed: `late` if it finished after its baseline end, else `on_track`;
/// - cancelled: no health;
/// - open: `late` once today is past its baseline or forecast end; `at_risk` when the
///   forecast end slips past the baseline end, or a planned milestone should have
///   started by its forecast; else `on_track`.
pub fn schedule_health(s: &Schedule, today: NaiveDate) -> Option<ScheduleHealth> {
    match s.status {
        MilestoneStatus::Cancelled => None,
        MilestoneStatus::Completed => {
            let finished = s.actual_end.unwrap_or(s.forecast_end);
            Some(if finished > s.baseline_end {
                ScheduleHealth::Late
            } else {
                ScheduleHealth::OnTrack
            })
        }
        _ => {
            if today > s.baseline_end || today > s.forecast_end {
                Some(ScheduleHealth::Late)
            } else if s.forecast_end > s.baseline_end
                || (s.status == MilestoneStatus::Planned && today > s.forecast_start)
            {
                Some(ScheduleHealth::AtRisk)
            } else {
                Some(ScheduleHealth::OnTrack)
            }
        }
    }
}

/// Finds a dependency cycle in `edges` (milestone → the milestones it depends on), if
/// any; returns it as a path that starts and ends on the same milestone.
pub fn find_cycle(edges: &BTreeMap<i64, BTreeSet<i64>>) -> Option<Vec<i64>> {
    #[derive(Clone, Copy, PartialEq)]
    enum Mark {
        Visiting,
        Done,
    }
    let mut marks: BTreeMap<i64, Mark> = BTreeMap::new();
    for &root in edges.keys() {
        if marks.contains_key(&root) {
            continue;
        }
        // Iterative depth-first search; `path` is the current chain from `root`.
        let mut path: Vec<i64> = vec![root];
        let mut stack: Vec<std::vec::IntoIter<i64>> = vec![
            edges
                .get(&root)
                .map(|d| d.iter().copied().collect::<Vec<_>>())
                .unwrap_or_default()
                .into_iter(),
        ];
        marks.insert(root, Mark::Visiting);
        while let Some(children) = stack.last_mut() {
            match children.next() {
                Some(next) => match marks.get(&next) {
                    Some(Mark::Visiting) => {
                        let start = path.iter().position(|&n| n == next).unwrap_or(0);
                        let mut cycle = path[start..].to_vec();
                        cycle.push(next);
                        return Some(cycle);
                    }
                    Some(Mark::Done) => {}
                    None => {
                        marks.insert(next, Mark::Visiting);
                        path.push(next);
                        stack.push(
                            edges
                                .get(&next)
                                .map(|d| d.iter().copied().collect::<Vec<_>>())
                                .unwrap_or_default()
                                .into_iter(),
                        );
                    }
                },
                None => {
                    stack.pop();
                    if let Some(done) = path.pop() {
                        marks.insert(done, Mark::Done);
                    }
                }
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use MilestoneEvent as E;
    use MilestoneStatus as S;

    const ALL_STATES: [MilestoneStatus; 6] = [
        S::Planned,
        S::InProgress,
        S::GateReview,
        S::Completed,
        S::OnHold,
        S::Cancelled,
    ];

    fn ok_guards() -> Guards {
        Guards {
            open_dependencies: vec![],
            gate_go: Some(true),
            held_from: Some(S::InProgress),
            has_reason: true,
        }
    }

    /// Every (state, event) pair, with permissive guards: the whole table.
    #[test]
    fn the_transition_table_is_exactly_the_specified_one() {
        let expected: BTreeMap<(u8, E), S> = [
            ((0, E::Start), S::InProgress),
            ((0, E::Hold), S::OnHold),
            ((0, E::Cancel), S::Cancelled),
            ((1, E::SubmitForGate), S::GateReview),
            ((1, E::Hold), S::OnHold),
            ((1, E::Cancel), S::Cancelled),
            ((2, E::Complete), S::Completed),
            ((2, E::NoGo), S::InProgress),
            ((2, E::Hold), S::OnHold),
            ((2, E::Cancel), S::Cancelled),
            ((4, E::Resume), S::InProgress),
            ((4, E::Cancel), S::Cancelled),
        ]
        .into_iter()
        .collect();
        for (i, state) in ALL_STATES.iter().enumerate() {
            for event in ALL_EVENTS {
                let got = transition(*state, event, &ok_guards());
                match expected.get(&(i as u8, event)) {
                    Some(next) => assert_eq!(got, Ok(*next), "{state:?} + {event:?}"),
                    None => assert_eq!(
                        got,
                        Err(TransitionError::NotAllowed {
                            from: *state,
                            event
                        }),
                        "{state:?} + {event:?} must be refused"
                    ),
                }
            }
        }
    }

    #[test]
    fn a_milestone_cannot_start_before_its_dependencies_complete() {
        let guards = Guards {
            open_dependencies: vec!["Tech transfer".into()],
            ..ok_guards()
        };
        assert_eq!(
            transition(S::Planned, E::Start, &guards),
            Err(TransitionError::DependenciesOpen(vec![
                "Tech transfer".into()
            ]))
        );
    }

    #[test]
    fn completion_needs_a_go_decision() {
        for gate in [None, Some(false)] {
            let guards = Guards {
                gate_go: gate,
                ..ok_guards()
            };
            assert_eq!(
                transition(S::GateReview, E::Complete, &guards),
                Err(TransitionError::GateNotPassed)
            );
        }
    }

    #[test]
    fn hold_no_go_and_cancel_need_a_reason() {
        let guards = Guards {
            has_reason: false,
            ..ok_guards()
        };
        assert_eq!(
            transition(S::InProgress, E::Hold, &guards),
            Err(TransitionError::ReasonRequired)
        );
        assert_eq!(
            transition(S::GateReview, E::NoGo, &guards),
            Err(TransitionError::ReasonRequired)
        );
        assert_eq!(
            transition(S::Planned, E::Cancel, &guards),
            Err(TransitionError::ReasonRequired)
        );
        assert_eq!(transition(S::Planned, E::Start, &guards), Ok(S::InProgress));
    }

    #[test]
    fn resume_returns_to_where_the_hold_began() {
        let guards = Guards {
            held_from: Some(S::GateReview),
            ..ok_guards()
        };
        assert_eq!(transition(S::OnHold, E::Resume, &guards), Ok(S::GateReview));
    }

    #[test]
    fn allowed_events_follow_the_table() {
        assert_eq!(
            allowed_events(S::Planned, None),
            vec![E::Start, E::Hold, E::Cancel]
        );
        assert_eq!(
            allowed_events(S::GateReview, None),
            vec![E::Complete, E::NoGo, E::Hold, E::Cancel]
        );
        assert_eq!(
            allowed_events(S::OnHold, Some(S::Planned)),
            vec![E::Resume, E::Cancel]
        );
        assert!(allowed_events(S::Completed, None).is_empty());
        assert!(allowed_events(S::Cancelled, None).is_empty());
    }

    fn d(m: u32, day: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(2027, m, day).unwrap()
    }

    fn schedule(status: MilestoneStatus) -> Schedule {
        Schedule {
            status,
            baseline_start: d(3, 1),
            baseline_end: d(3, 31),
            forecast_start: d(3, 1),
            forecast_end: d(3, 31),
            actual_end: None,
        }
    }

    #[test]
    fn an_open_milestone_on_plan_is_on_track_through_its_last_day() {
        let s = schedule(S::InProgress);
        assert_eq!(schedule_health(&s, d(3, 15)), Some(ScheduleHealth::OnTrack));
        assert_eq!(schedule_health(&s, d(3, 31)), Some(ScheduleHealth::OnTrack));
        assert_eq!(schedule_health(&s, d(4, 1)), Some(ScheduleHealth::Late));
    }

    #[test]
    fn a_slipping_forecast_is_at_risk_until_the_baseline_passes() {
        let s = Schedule {
            forecast_end: d(4, 10),
            ..schedule(S::InProgress)
        };
        assert_eq!(schedule_health(&s, d(3, 20)), Some(ScheduleHealth::AtRisk));
        assert_eq!(schedule_health(&s, d(4, 1)), Some(ScheduleHealth::Late));
    }

    #[test]
    fn a_planned_milestone_not_started_by_its_forecast_start_is_at_risk() {
        let s = schedule(S::Planned);
        assert_eq!(schedule_health(&s, d(3, 1)), Some(ScheduleHealth::OnTrack));
        assert_eq!(schedule_health(&s, d(3, 2)), Some(ScheduleHealth::AtRisk));
    }

    #[test]
    fn an_early_forecast_does_not_excuse_passing_it() {
        let s = Schedule {
            forecast_end: d(3, 20),
            ..schedule(S::InProgress)
        };
        assert_eq!(schedule_health(&s, d(3, 21)), Some(ScheduleHealth::Late));
    }

    #[test]
    fn completed_milestones_are_judged_by_their_actual_end() {
        let on_time = Schedule {
            actual_end: Some(d(3, 31)),
            ..schedule(S::Completed)
        };
        let late = Schedule {
            actual_end: Some(d(4, 1)),
            ..schedule(S::Completed)
        };
        assert_eq!(
            schedule_health(&on_time, d(9, 1)),
            Some(ScheduleHealth::OnTrack)
        );
        assert_eq!(schedule_health(&late, d(9, 1)), Some(ScheduleHealth::Late));
        assert_eq!(schedule_health(&schedule(S::Cancelled), d(9, 1)), None);
    }

    #[test]
    fn cycles_are_found_and_named() {
        let mut edges: BTreeMap<i64, BTreeSet<i64>> = BTreeMap::new();
        edges.insert(1, [2].into());
        edges.insert(2, [3].into());
        edges.insert(3, [].into());
        assert_eq!(find_cycle(&edges), None);
        edges.insert(3, [1].into());
        assert_eq!(find_cycle(&edges), Some(vec![1, 2, 3, 1]));
        let mut self_loop: BTreeMap<i64, BTreeSet<i64>> = BTreeMap::new();
        self_loop.insert(7, [7].into());
        assert_eq!(find_cycle(&self_loop), Some(vec![7, 7]));
    }

    #[test]
    fn a_diamond_is_not_a_cycle() {
        let mut edges: BTreeMap<i64, BTreeSet<i64>> = BTreeMap::new();
        edges.insert(4, [2, 3].into());
        edges.insert(2, [1].into());
        edges.insert(3, [1].into());
        edges.insert(1, [].into());
        assert_eq!(find_cycle(&edges), None);
    }
}
