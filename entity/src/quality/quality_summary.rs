//! A program's quality numbers, from one function (the overview and the digest use it).

use std::collections::BTreeMap;

use chrono::NaiveDate;
use serde::Serialize;
use utoipa::ToSchema;

use crate::capa::{self, CapaStatus};
use crate::deviation::{self, Criticality, DeviationStatus};

#[derive(Debug, Clone, Default, Serialize, ToSchema, PartialEq)]
#[schema(example = json!({
    "deviations_total": 14,
    "open_by_criticality": {"critical": 0, "major": 1, "minor": 2},
    "by_status": {"reported": 1, "triaged": 1, "investigating": 1, "pending_capa": 0, "closed": 10, "cancelled": 1},
    "median_days_to_triage": 0.4, "median_days_to_close": 12.5,
    "capas_open": 2, "capas_effectiveness_overdue": 0, "capa_on_time_closure_rate": 0.75
}))]
pub struct QualitySummary {
    pub deviations_total: usize,
    /// Open (not closed or cancelled) deviations per criticality.
    pub open_by_criticality: BTreeMap<String, usize>,
    pub by_status: BTreeMap<String, usize>,
    /// Median days from detection to triage, over triaged deviations.
    pub median_days_to_triage: Option<f64>,
    /// Median days from detection to closure, over closed deviations.
    pub median_days_to_close: Option<f64>,
    pub capas_open: usize,
    /// CAPAs in effectiveness check past its due date.
    pub capas_effectiveness_overdue: usize,
    /// Share of closed CAPAs closed by their effectiveness due date (`null` when none closed).
    pub capa_on_time_closure_rate: Option<f64>,
}

fn name<T: Serialize>(v: &T) -> String {
    serde_json::to_value(v)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_default()
}

pub(crate) fn median(mut values: Vec<f64>) -> Option<f64> {
    if values.is_empty() {
        return None;
    }
    values.sort_by(f64::total_cmp);
    let mid = values.len() / 2;
    let m = if values.len().is_multiple_of(2) {
        (values[mid - 1] + values[mid]) / 2.0
    } else {
        values[mid]
    };
    Some((m * 10.0).round() / 10.0)
}

pub fn summarize(
    deviations: &[deviation::Model],
    capas: &[capa::Model],
    today: NaiveDate,
) -> QualitySummary {
    let mut s = QualitySummary {
        deviations_total: deviations.len(),
        ..QualitySummary::default()
    };
    for c in [
        Criticality::Critical,
        Criticality::Major,
        Criticality::Minor,
    ] {
        s.open_by_criticality.insert(name(&c), 0);
    }
    for st in [
        DeviationStatus::Reported,
        DeviationStatus::Triaged,
        DeviationStatus::Investigating,
        DeviationStatus::PendingCapa,
        DeviationStatus::Closed,
        DeviationStatus::Cancelled,
    ] {
        s.by_status.insert(name(&st), 0);
    }
    let days = |from: chrono::DateTime<chrono::Utc>, to: chrono::DateTime<chrono::Utc>| {
        ((to - from).num_seconds().max(0) as f64) / 86_400.0
    };
    let mut to_triage = Vec::new();
    let mut to_close = Vec::new();
    for d in deviations {
        *s.by_status.entry(name(&d.status)).or_default() += 1;
        if d.status.is_open() {
            *s.open_by_criticality
                .entry(name(&d.criticality))
                .or_default() += 1;
        }
        if let Some(t) = d.triaged_at {
            to_triage.push(days(d.detected_at, t));
        }
        if d.status == DeviationStatus::Closed
            && let Some(c) = d.closed_at
        {
            to_close.push(days(d.detected_at, c));
        }
    }
    s.median_days_to_triage = median(to_triage);
    s.median_days_to_close = median(to_close);
    let mut closed = 0_usize;
    let mut on_time = 0_usize;
    for c in capas {
        match c.status {
            CapaStatus::Closed => {
                closed += 1;
                let closed_on = c.closed_at.map(|t| t.date_naive());
                if match (closed_on, c.effectiveness_due) {
                    (Some(on), Some(due)) => on <= due,
                    _ => true,
                } {
                    on_time += 1;
                }
            }
            CapaStatus::Cancelled => {}
            status => {
                s.capas_open += 1;
                if status == CapaStatus::EffectivenessCheck
                    && c.effectiveness_due.is_some_and(|due| due < today)
                {
                    s.capas_effectiveness_overdue += 1;
                }
            }
        }
    }
    if closed > 0 {
        s.capa_on_time_closure_rate =
            Some(((on_time as f64 / closed as f64) * 100.0).round() / 100.0);
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn medians_are_of_the_middle_values() {
        assert_eq!(median(vec![]), None);
        assert_eq!(median(vec![3.0, 1.0, 2.0]), Some(2.0));
        assert_eq!(median(vec![4.0, 1.0, 2.0, 3.0]), Some(2.5));
    }
}
