//! KPI scorecards (SPEC §7), per CMO and per program, from one pure function: on-time
//! milestone rate, deviations per batch by criticality, median days to triage and to
//! close, CAPA on-time closure, escalation acknowledgement time (median, p90), open
//! overdue actions. The quality numbers come from `quality_summary::summarize`, not a
//! second copy.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, NaiveDate, Utc};
use serde::Serialize;
use utoipa::ToSchema;

use crate::action_item::{self, ActionStatus};
use crate::milestone::{self, MilestoneStatus};
use crate::quality_summary::{self, median};
use crate::{capa, deviation, escalation};

/// The reporting window, inclusive dates (UTC).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    pub from: NaiveDate,
    pub to: NaiveDate,
}

impl Window {
    pub fn contains(&self, d: NaiveDate) -> bool {
        self.from <= d && d <= self.to
    }
}

#[derive(Debug, Clone, Default, Serialize, ToSchema, PartialEq)]
#[schema(example = json!({
    "milestones_due": 12, "milestones_on_time": 9, "on_time_milestone_rate": 0.75,
    "batches": 8, "deviations": 11, "deviations_per_batch": {"critical": 0.13, "major": 0.25, "minor": 1.0},
    "median_days_to_triage": 0.6, "median_days_to_close": 21.5, "capa_on_time_closure_rate": 0.8,
    "escalations": 3, "median_minutes_to_acknowledge": 7.5, "p90_minutes_to_acknowledge": 22.0,
    "open_overdue_actions": 4
}))]
pub struct Scorecard {
    /// Milestones whose baseline end falls in the window and that are completed or late.
    pub milestones_due: usize,
    /// Of those, completed on or before their baseline end.
    pub milestones_on_time: usize,
    /// `milestones_on_time / milestones_due`; `null` without any due.
    pub on_time_milestone_rate: Option<f64>,
    /// Distinct batch lots named by deviations detected in the window (the batches the
    /// registry knows of).
    pub batches: usize,
    /// Deviations detected in the window.
    pub deviations: usize,
    /// Deviations per batch, by criticality (`null` values without batches).
    pub deviations_per_batch: BTreeMap<String, Option<f64>>,
    pub median_days_to_triage: Option<f64>,
    pub median_days_to_close: Option<f64>,
    /// Share of CAPAs closed in the window by their effectiveness due date.
    pub capa_on_time_closure_rate: Option<f64>,
    /// Escalations opened in the window.
    pub escalations: usize,
    pub median_minutes_to_acknowledge: Option<f64>,
    pub p90_minutes_to_acknowledge: Option<f64>,
    /// Action items open and overdue now.
    pub open_overdue_actions: usize,
}

fn round2(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

fn percentile(mut values: Vec<f64>, p: f64) -> Option<f64> {
    if values.is_empty() {
        return None;
    }
    values.sort_by(f64::total_cmp);
    // Nearest rank.
    let rank = ((p * values.len() as f64).ceil() as usize).clamp(1, values.len());
    Some((values[rank - 1] * 10.0).round() / 10.0)
}

pub struct Inputs<'a> {
    pub milestones: &'a [milestone::Model],
    pub deviations: &'a [deviation::Model],
    pub capas: &'a [capa::Model],
    pub escalations: &'a [escalation::Model],
    pub action_items: &'a [action_item::Model],
}

pub fn compute(i: &Inputs<'_>, window: Window, today: NaiveDate) -> Scorecard {
    let mut s = Scorecard::default();
    for m in i.milestones {
        if !window.contains(m.baseline_end) || m.status == MilestoneStatus::Cancelled {
            continue;
        }
        let done = m.status == MilestoneStatus::Completed;
        // Open ones count once their baseline end has passed.
        if !done && m.baseline_end >= today {
            continue;
        }
        s.milestones_due += 1;
        if done && m.actual_end.is_some_and(|a| a <= m.baseline_end) {
            s.milestones_on_time += 1;
        }
    }
    if s.milestones_due > 0 {
        s.on_time_milestone_rate = Some(round2(
            s.milestones_on_time as f64 / s.milestones_due as f64,
        ));
    }

    let in_window = |t: DateTime<Utc>| window.contains(t.date_naive());
    let deviations: Vec<deviation::Model> = i
        .deviations
        .iter()
        .filter(|d| in_window(d.detected_at))
        .cloned()
        .collect();
    s.deviations = deviations.len();
    let lots: BTreeSet<&str> = deviations
        .iter()
        .filter_map(|d| d.batch_lot.as_deref())
        .collect();
    s.batches = lots.len();
    for c in ["critical", "major", "minor"] {
        let n = deviations
            .iter()
            .filter(|d| quality_name(&d.criticality) == c)
            .count();
        s.deviations_per_batch.insert(
            c.to_string(),
            (s.batches > 0).then(|| round2(n as f64 / s.batches as f64)),
        );
    }
    let capas: Vec<capa::Model> = i
        .capas
        .iter()
        .filter(|c| c.closed_at.is_none_or(&in_window))
        .cloned()
        .collect();
    let quality = quality_summary::summarize(&deviations, &capas, today);
    s.median_days_to_triage = quality.median_days_to_triage;
    s.median_days_to_close = quality.median_days_to_close;
    s.capa_on_time_closure_rate = quality.capa_on_time_closure_rate;

    let opened: Vec<&escalation::Model> = i
        .escalations
        .iter()
        .filter(|e| in_window(e.opened_at))
        .collect();
    s.escalations = opened.len();
    let ack_minutes: Vec<f64> = opened
        .iter()
        .filter_map(|e| {
            e.acknowledged_at
                .map(|a| (a - e.opened_at).num_seconds().max(0) as f64 / 60.0)
        })
        .collect();
    s.median_minutes_to_acknowledge = median(ack_minutes.clone());
    s.p90_minutes_to_acknowledge = percentile(ack_minutes, 0.9);

    s.open_overdue_actions = i
        .action_items
        .iter()
        .filter(|a| matches!(a.status, ActionStatus::Open | ActionStatus::InProgress))
        .filter(|a| action_item::is_overdue(a.status, a.due_date, a.snoozed_until, today))
        .count();
    s
}

fn quality_name(c: &deviation::Criticality) -> String {
    serde_json::to_value(c)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_use_the_nearest_rank() {
        let v: Vec<f64> = (1..=10).map(f64::from).collect();
        assert_eq!(percentile(v.clone(), 0.9), Some(9.0));
        assert_eq!(percentile(v, 0.5), Some(5.0));
        assert_eq!(percentile(vec![], 0.9), None);
        assert_eq!(percentile(vec![3.0], 0.9), Some(3.0));
    }

    use chrono::{TimeDelta, TimeZone};

    fn day(m: u32, dd: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(2026, m, dd).unwrap()
    }

    fn at(m: u32, dd: u32, h: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, m, dd, h, 0, 0).unwrap()
    }

    fn milestone(
        id: i64,
        status: MilestoneStatus,
        baseline_end: NaiveDate,
        actual_end: Option<NaiveDate>,
    ) -> milestone::Model {
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
            forecast_end: baseline_end,
            actual_start: None,
            actual_end,
            position: id as i32,
            gate_round: 0,
            created_at: at(1, 1, 0),
            updated_at: at(1, 1, 0),
            version: 1,
        }
    }

    fn deviation(
        id: i64,
        criticality: deviation::Criticality,
        lot: &str,
        detected: DateTime<Utc>,
        triaged_hours: Option<i64>,
    ) -> deviation::Model {
        deviation::Model {
            id,
            record_number: None,
            program_id: 1,
            milestone_id: None,
            batch_lot: Some(lot.into()),
            title: "t".into(),
            description: "d".into(),
            detected_at: detected,
            reported_by_user_id: 1,
            process_step: None,
            criticality,
            category: deviation::Category::Equipment,
            status: deviation::DeviationStatus::Triaged,
            triaged_at: triaged_hours.map(|h| detected + TimeDelta::hours(h)),
            short_term_fix: None,
            root_cause_method: None,
            root_cause_category: None,
            root_cause_narrative: None,
            closure_signature_id: None,
            closed_at: None,
            cancel_reason: None,
            created_at: detected,
            updated_at: detected,
            version: 1,
        }
    }

    fn escalation(id: i64, opened: DateTime<Utc>, ack_minutes: Option<i64>) -> escalation::Model {
        escalation::Model {
            id,
            program_id: 1,
            source_type: "manual".into(),
            source_id: None,
            reason: "r".into(),
            status: escalation::EscalationStatus::Open,
            opened_at: opened,
            resolved_at: None,
            version: 1,
            title: "t".into(),
            criticality: None,
            category: None,
            policy_snapshot: None,
            step: 0,
            page_seq: 0,
            current_tier: None,
            next_page_at: None,
            acknowledged_at: ack_minutes.map(|m| opened + TimeDelta::minutes(m)),
            acknowledged_by_user_id: None,
            ack_channel: None,
            reopen_count: 0,
            opened_by_user_id: None,
        }
    }

    #[test]
    fn kpis_from_the_records_in_the_window() {
        use MilestoneStatus::{Completed, InProgress, Planned};
        use deviation::Criticality::{Critical, Major, Minor};
        let window = Window {
            from: day(1, 1),
            to: day(3, 31),
        };
        let today = day(4, 15);
        let milestones = [
            milestone(1, Completed, day(2, 1), Some(day(1, 30))), // on time
            milestone(2, Completed, day(2, 10), Some(day(2, 20))), // late
            milestone(3, InProgress, day(3, 1), None),            // overdue, counts as late
            milestone(4, Planned, day(5, 1), None),               // outside the window
            milestone(5, MilestoneStatus::Cancelled, day(2, 1), None),
        ];
        let deviations = [
            deviation(1, Critical, "LOT-1", at(1, 10, 8), Some(12)),
            deviation(2, Minor, "LOT-1", at(2, 10, 8), Some(24)),
            deviation(3, Major, "LOT-2", at(3, 10, 8), None),
            deviation(4, Minor, "LOT-9", at(4, 10, 8), Some(1)), // after the window
        ];
        let escalations = [
            escalation(1, at(1, 10, 8), Some(5)),
            escalation(2, at(2, 10, 8), Some(15)),
            escalation(3, at(3, 10, 8), Some(40)),
            escalation(4, at(3, 11, 8), None),
        ];
        let s = compute(
            &Inputs {
                milestones: &milestones,
                deviations: &deviations,
                capas: &[],
                escalations: &escalations,
                action_items: &[],
            },
            window,
            today,
        );
        assert_eq!((s.milestones_due, s.milestones_on_time), (3, 1));
        assert_eq!(s.on_time_milestone_rate, Some(0.33));
        assert_eq!((s.deviations, s.batches), (3, 2));
        assert_eq!(s.deviations_per_batch["critical"], Some(0.5));
        assert_eq!(s.deviations_per_batch["minor"], Some(0.5));
        assert_eq!(
            s.median_days_to_triage,
            Some(0.8),
            "median of 0.5 and 1.0 days"
        );
        assert_eq!(s.escalations, 4);
        assert_eq!(s.median_minutes_to_acknowledge, Some(15.0));
        assert_eq!(s.p90_minutes_to_acknowledge, Some(40.0));
        assert_eq!(s.open_overdue_actions, 0);
        assert_eq!(s.capa_on_time_closure_rate, None);
    }

    #[test]
    fn windows_include_both_ends() {
        let d = |m, dd| NaiveDate::from_ymd_opt(2026, m, dd).unwrap();
        let w = Window {
            from: d(1, 1),
            to: d(3, 31),
        };
        assert!(w.contains(d(1, 1)) && w.contains(d(3, 31)));
        assert!(!w.contains(d(4, 1)));
    }
}
