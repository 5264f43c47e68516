//! Plan templates: data (JSON files shipped with the code) turned into dated milestones.

use std::collections::BTreeMap;

use chrono::{NaiveDate, TimeDelta};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::gate::CheckType;

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"check_type": "sops", "title": "Operations and maintenance SOPs effective", "mandatory": true}))]
pub struct TemplateGateItem {
    pub check_type: CheckType,
    pub title: String,
    pub mandatory: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"key": "sops", "name": "SOPs for operations and maintenance", "phase": "Facility readiness",
    "duration_days": 30, "depends_on": ["facility_startup"],
    "gate_items": [{"check_type": "sops", "title": "Operations and maintenance SOPs effective", "mandatory": true}]}))]
pub struct TemplateMilestone {
    /// Stable key, used by `depends_on`.
    pub key: String,
    pub name: String,
    pub phase: String,
    pub duration_days: u32,
    pub depends_on: Vec<String>,
    pub gate_items: Vec<TemplateGateItem>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"key": "cdmo_standard", "name": "Standard CDMO plan",
    "description": "The typical plan for bringing a product into a CDMO", "milestones": []}))]
pub struct PlanTemplate {
    pub key: String,
    pub name: String,
    pub description: String,
    pub milestones: Vec<TemplateMilestone>,
}

const SOURCES: &[&str] = &[include_str!("../../plan_templates/cdmo_standard.json")];

/// Every shipped template. A template that does not parse or is not a DAG is a bug
/// caught by the unit tests, so it is skipped here rather than failing requests.
pub fn all() -> Vec<PlanTemplate> {
    SOURCES
        .iter()
        .filter_map(|s| serde_json::from_str::<PlanTemplate>(s).ok())
        .filter(|t| schedule(t, NaiveDate::MIN).is_ok())
        .collect()
}

pub fn find(key: &str) -> Option<PlanTemplate> {
    all().into_iter().find(|t| t.key == key)
}

/// A template milestone with its dates.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DatedMilestone {
    pub index: usize,
    pub start: NaiveDate,
    pub end: NaiveDate,
}

/// Dates every milestone: it starts on `start_date` or the day after its last dependency
/// ends, whichever is later, and lasts `duration_days` (at least one day). Returns them
/// in the template's order; fails on unknown keys or cycles.
pub fn schedule(t: &PlanTemplate, start_date: NaiveDate) -> Result<Vec<DatedMilestone>, String> {
    let index: BTreeMap<&str, usize> = t
        .milestones
        .iter()
        .enumerate()
        .map(|(i, m)| (m.key.as_str(), i))
        .collect();
    if index.len() != t.milestones.len() {
        return Err("duplicate milestone keys".to_string());
    }
    let mut dated: Vec<Option<DatedMilestone>> = vec![None; t.milestones.len()];
    // Repeated passes: each dates every milestone whose dependencies are dated.
    for _ in 0..=t.milestones.len() {
        let mut progressed = false;
        for (i, m) in t.milestones.iter().enumerate() {
            if dated[i].is_some() {
                continue;
            }
            let mut start = start_date;
            let mut ready = true;
            for dep in &m.depends_on {
                let &d = index
                    .get(dep.as_str())
                    .ok_or_else(|| format!("{} depends on unknown {dep}", m.key))?;
                match &dated[d] {
                    Some(dm) => start = start.max(dm.end.succ_opt().unwrap_or(dm.end)),
                    None => ready = false,
                }
            }
            if ready {
                let days = i64::from(m.duration_days.max(1)) - 1;
                let end = start
                    .checked_add_signed(TimeDelta::days(days))
                    .unwrap_or(start);
                dated[i] = Some(DatedMilestone {
                    index: i,
                    start,
                    end,
                });
                progressed = true;
            }
        }
        if !progressed {
            break;
        }
    }
    dated
        .into_iter()
        .collect::<Option<Vec<_>>>()
        .ok_or_else(|| "the template's dependencies form a cycle".to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn standard() -> PlanTemplate {
        serde_json::from_str(SOURCES[0]).expect("cdmo_standard.json parses")
    }

    #[test]
    fn the_standard_template_covers_the_typical_cdmo_plan() {
        let t = standard();
        let names: Vec<&str> = t.milestones.iter().map(|m| m.name.as_str()).collect();
        assert_eq!(names.len(), 12);
        for expected in [
            "Tech transfer",
            "Engineering runs",
            "PPQ runs",
            "GMP commercial batch",
            "Stability studies",
        ] {
            assert!(names.contains(&expected), "{expected} missing");
        }
        assert!(
            t.milestones.iter().all(|m| !m.gate_items.is_empty()),
            "every milestone has a gate checklist"
        );
        assert_eq!(
            all().len(),
            1,
            "every shipped template parses and is acyclic"
        );
    }

    #[test]
    fn dates_follow_dependencies() {
        let t = standard();
        let start = NaiveDate::from_ymd_opt(2027, 1, 4).unwrap();
        let dated = schedule(&t, start).unwrap();
        let by_key: BTreeMap<&str, &DatedMilestone> = t
            .milestones
            .iter()
            .map(|m| m.key.as_str())
            .zip(dated.iter())
            .collect();
        let tt = by_key["tech_transfer"];
        assert_eq!((tt.start, tt.end), (start, start + TimeDelta::days(59)));
        // Operational readiness waits for the later of SOPs (45 + 30 days) and tech transfer (60).
        let or = by_key["operational_readiness"];
        assert_eq!(or.start, start + TimeDelta::days(75));
        for (i, m) in t.milestones.iter().enumerate() {
            for dep in &m.depends_on {
                assert!(
                    dated[i].start > by_key[dep.as_str()].end,
                    "{} starts after {dep}",
                    m.key
                );
            }
        }
    }

    #[test]
    fn cycles_and_unknown_keys_are_rejected() {
        let mut t = standard();
        t.milestones[0].depends_on = vec!["gmp_commercial_batch".into()];
        assert!(schedule(&t, NaiveDate::MIN).is_err());
        let mut t = standard();
        t.milestones[0].depends_on = vec!["nope".into()];
        assert!(
            schedule(&t, NaiveDate::MIN)
                .unwrap_err()
                .contains("unknown")
        );
    }
}
