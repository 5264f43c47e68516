//! The numbers a program's overview and its weekly digest share, from one function.

use std::collections::BTreeMap;

use chrono::{NaiveDate, TimeDelta};
use serde::Serialize;
use utoipa::ToSchema;

use crate::milestone::{self, MilestoneStatus};
use crate::milestone_rules::ScheduleHealth;

/// How far ahead "upcoming gates" look.
pub const GATE_HORIZON_DAYS: i64 = 14;

#[derive(Debug, Clone, Serialize, ToSchema, PartialEq, Eq)]
#[schema(example = json!({"milestone_id": 12, "name": "Engineering runs", "status": "gate_review",
    "baseline_end": "2027-04-15", "forecast_end": "2027-04-29", "schedule_health": "at_risk"}))]
pub struct MilestoneBrief {
    pub milestone_id: i64,
    pub name: String,
    pub status: MilestoneStatus,
    pub baseline_end: NaiveDate,
    pub forecast_end: NaiveDate,
    pub schedule_health: Option<ScheduleHealth>,
}

#[derive(Debug, Clone, Default, Serialize, ToSchema, PartialEq, Eq)]
#[schema(example = json!({"milestones_total": 12,
    "by_status": {"planned": 8, "in_progress": 2, "gate_review": 1, "completed": 1, "on_hold": 0, "cancelled": 0},
    "by_health": {"on_track": 9, "at_risk": 2, "late": 1}, "finished_late": 0,
    "upcoming_gates": [{"milestone_id": 12, "name": "Engineering runs", "status": "gate_review",
        "baseline_end": "2027-04-15", "forecast_end": "2027-04-29", "schedule_health": "at_risk"}],
    "late_milestones": []}))]
pub struct PlanSummary {
    pub milestones_total: usize,
    /// Count per status (`planned`, `in_progress`, …); absent statuses are 0.
    pub by_status: BTreeMap<String, usize>,
    /// Count per schedule health of open milestones (so `late` is the number of
    /// `late_milestones`, in the overview, its page and the digest alike).
    pub by_health: BTreeMap<String, usize>,
    /// Completed milestones that finished after their baseline end.
    pub finished_late: usize,
    /// Milestones in gate review, or open with a forecast end within 14 days; soonest first.
    pub upcoming_gates: Vec<MilestoneBrief>,
    /// Open milestones that are late; most overdue first.
    pub late_milestones: Vec<MilestoneBrief>,
}

/// Where a program stands, worst first: the one word its page and its digest lead with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Standing {
    ProductionOnHold,
    Late,
    AtRisk,
    OnTrack,
}

impl Standing {
    pub fn of(production_on_hold: bool, plan: &PlanSummary) -> Standing {
        let at_risk = plan.by_health.get("at_risk").copied().unwrap_or(0);
        if production_on_hold {
            Standing::ProductionOnHold
        } else if !plan.late_milestones.is_empty() {
            Standing::Late
        } else if at_risk > 0 {
            Standing::AtRisk
        } else {
            Standing::OnTrack
        }
    }
}

fn name<T: Serialize>(v: &T) -> String {
    serde_json::to_value(v)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_default()
}

pub fn summarize(milestones: &[milestone::Model], today: NaiveDate) -> PlanSummary {
    let mut s = PlanSummary {
        milestones_total: milestones.len(),
        ..PlanSummary::default()
    };
    for status in [
        MilestoneStatus::Planned,
        MilestoneStatus::InProgress,
        MilestoneStatus::GateReview,
        MilestoneStatus::Completed,
        MilestoneStatus::OnHold,
        MilestoneStatus::Cancelled,
    ] {
        s.by_status.insert(name(&status), 0);
    }
    for health in [
        ScheduleHealth::OnTrack,
        ScheduleHealth::AtRisk,
        ScheduleHealth::Late,
    ] {
        s.by_health.insert(name(&health), 0);
    }
    let horizon = today + TimeDelta::days(GATE_HORIZON_DAYS);
    for m in milestones {
        *s.by_status.entry(name(&m.status)).or_default() += 1;
        let health = m.health(today);
        let open = !matches!(
            m.status,
            MilestoneStatus::Completed | MilestoneStatus::Cancelled
        );
        match health {
            Some(h) if open => *s.by_health.entry(name(&h)).or_default() += 1,
            Some(ScheduleHealth::Late) => s.finished_late += 1,
            _ => {}
        }
        let brief = || MilestoneBrief {
            milestone_id: m.id,
            name: m.name.clone(),
            status: m.status,
            baseline_end: m.baseline_end,
            forecast_end: m.forecast_end,
            schedule_health: health,
        };
        if m.status == MilestoneStatus::GateReview
            || (open && m.forecast_end <= horizon && m.forecast_end >= today)
        {
            s.upcoming_gates.push(brief());
        }
        if open && health == Some(ScheduleHealth::Late) {
            s.late_milestones.push(brief());
        }
    }
    s.upcoming_gates
        .sort_by_key(|b| (b.forecast_end, b.milestone_id));
    s.late_milestones
        .sort_by_key(|b| (b.baseline_end.min(b.forecast_end), b.milestone_id));
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{TimeZone, Utc};

    fn m(
        id: i64,
        status: MilestoneStatus,
        baseline_end: NaiveDate,
        forecast_end: NaiveDate,
    ) -> milestone::Model {
        let t = Utc.with_ymd_and_hms(2027, 1, 1, 0, 0, 0).unwrap();
        milestone::Model {
            id,
            program_id: 1,
            name: format!("M{id}"),
            phase: "P".into(),
            owner_user_id: None,
            status,
            held_from: None,
            baseline_start: baseline_end - TimeDelta::days(10),
            baseline_end,
            forecast_start: baseline_end - TimeDelta::days(10),
            forecast_end,
            actual_start: None,
            actual_end: None,
            position: id as i32,
            gate_round: 0,
            created_at: t,
            updated_at: t,
            version: 1,
        }
    }

    fn d(month: u32, day: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(2027, month, day).unwrap()
    }

    #[test]
    fn counts_upcoming_gates_and_late_work() {
        let today = d(3, 1);
        let plan = vec![
            m(1, MilestoneStatus::InProgress, d(2, 20), d(2, 20)), // late
            m(2, MilestoneStatus::GateReview, d(3, 30), d(3, 30)), // in review: upcoming
            m(3, MilestoneStatus::InProgress, d(3, 10), d(3, 12)), // due within 14 days, slipping
            m(4, MilestoneStatus::Planned, d(6, 1), d(6, 1)),      // far away
            m(5, MilestoneStatus::Cancelled, d(1, 1), d(1, 1)),    // no health
            m(6, MilestoneStatus::Completed, d(1, 1), d(1, 5)),    // finished late
        ];
        let s = summarize(&plan, today);
        assert_eq!(s.milestones_total, 6);
        assert_eq!(s.by_status["in_progress"], 2);
        assert_eq!(s.by_status["on_hold"], 0);
        assert_eq!(s.by_health["late"], 1, "open ones only");
        assert_eq!(s.by_health["late"], s.late_milestones.len());
        assert_eq!(s.by_health["at_risk"], 1, "M3 slips");
        assert_eq!(s.by_health["on_track"], 2);
        assert_eq!(s.finished_late, 1);
        let upcoming: Vec<i64> = s.upcoming_gates.iter().map(|b| b.milestone_id).collect();
        assert_eq!(upcoming, vec![3, 2]);
        assert_eq!(
            s.late_milestones
                .iter()
                .map(|b| b.milestone_id)
                .collect::<Vec<_>>(),
            vec![1]
        );
    }
}
