//! CMO selection (SPEC §7): an evaluation with weighted criteria, candidates scored 1–5
//! per criterion, and the weighted ranking with its per-criterion breakdown. Pure rules;
//! the rows live in `evaluation`, `candidate` and `score`.

use sea_orm::entity::prelude::*;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"key": "regulatory_track_record", "name": "Regulatory track record", "weight": 15}))]
pub struct Criterion {
    /// Stable identifier, `[a-z0-9_]`.
    #[schema(pattern = "^[a-z0-9_]{1,40}$", example = "quality_systems")]
    pub key: String,
    #[schema(min_length = 1, max_length = 100)]
    pub name: String,
    /// Percent; all weights sum to 100.
    pub weight: i32,
}

/// SPEC §7 defaults (editable per evaluation); weights sum to 100.
pub fn default_criteria() -> Vec<Criterion> {
    [
        ("regulatory_track_record", "Regulatory track record", 15),
        ("quality_systems", "Quality systems", 15),
        ("technical_fit", "Technical fit", 15),
        ("capacity_scalability", "Capacity and scalability", 10),
        ("tech_transfer", "Tech transfer", 10),
        ("supply_chain_resilience", "Supply-chain resilience", 10),
        ("communication", "Communication", 5),
        ("financial_stability", "Financial stability", 5),
        ("cost", "Cost", 10),
        ("timeline", "Timeline", 5),
    ]
    .into_iter()
    .map(|(key, name, weight)| Criterion {
        key: key.to_string(),
        name: name.to_string(),
        weight,
    })
    .collect()
}

/// Field errors of a criteria list.
pub fn validate_criteria(criteria: &[Criterion]) -> Vec<(String, String)> {
    let mut errors = Vec::new();
    if criteria.is_empty() || criteria.len() > 20 {
        errors.push((
            "criteria".to_string(),
            "1 to 20 criteria (each a key, a name and a weight; weights sum to 100)".to_string(),
        ));
    }
    for (i, c) in criteria.iter().enumerate() {
        if c.key.is_empty()
            || c.key.len() > 40
            || !c
                .key
                .chars()
                .all(|ch| ch.is_ascii_lowercase() || ch.is_ascii_digit() || ch == '_')
        {
            errors.push((
                format!("criteria[{i}].key"),
                "1 to 40 of a-z, 0-9 and _, e.g. quality_systems".to_string(),
            ));
        }
        if criteria[..i].iter().any(|o| o.key == c.key) {
            errors.push((
                format!("criteria[{i}].key"),
                "keys must be unique".to_string(),
            ));
        }
        // Shown in pages and emails: one line.
        if c.name.trim().is_empty()
            || c.name.chars().count() > 100
            || c.name.chars().any(char::is_control)
        {
            errors.push((
                format!("criteria[{i}].name"),
                "1 to 100 characters on one line, e.g. Quality systems".to_string(),
            ));
        }
        if !(1..=100).contains(&c.weight) {
            errors.push((
                format!("criteria[{i}].weight"),
                "a whole percent from 1 to 100, e.g. 15".to_string(),
            ));
        }
    }
    // i64: weights out of range are reported above, but their sum must not overflow.
    let sum: i64 = criteria.iter().map(|c| i64::from(c.weight)).sum();
    if !criteria.is_empty() && sum != 100 {
        errors.push((
            "criteria".to_string(),
            format!("weights must sum to 100 (they sum to {sum})"),
        ));
    }
    errors
}

/// One score given by one scorer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GivenScore {
    pub cmo_org_id: i64,
    pub criterion: String,
    pub score: i32,
}

#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
#[schema(example = json!({"key": "quality_systems", "weight": 15, "mean_score": 4.5, "weighted": 0.68, "scorers": 2}))]
pub struct CriterionResult {
    pub key: String,
    pub weight: i32,
    /// Mean of the scorers' 1–5 scores; `null` when nobody scored it yet.
    pub mean_score: Option<f64>,
    /// `weight / 100 × mean_score`.
    pub weighted: Option<f64>,
    pub scorers: usize,
}

#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
#[schema(example = json!({"cmo_org_id": 2, "rank": 1, "weighted_score": 4.15, "complete": true,
    "breakdown": [{"key": "regulatory_track_record", "weight": 15, "mean_score": 5.0, "weighted": 0.75, "scorers": 2}]}))]
pub struct Ranked {
    pub cmo_org_id: i64,
    pub rank: usize,
    /// Sum of the weighted criterion scores (1–5 scale when complete).
    pub weighted_score: f64,
    /// Every criterion has at least one score.
    pub complete: bool,
    pub breakdown: Vec<CriterionResult>,
}

fn round2(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

/// The weighted ranking: best first; ties keep candidate order. Unscored criteria add
/// nothing (and mark the candidate incomplete), so a partial bid tab never looks better
/// than it is.
pub fn rank(criteria: &[Criterion], candidates: &[i64], scores: &[GivenScore]) -> Vec<Ranked> {
    let mut out: Vec<Ranked> = candidates
        .iter()
        .map(|&cmo| {
            let breakdown: Vec<CriterionResult> = criteria
                .iter()
                .map(|c| {
                    let given: Vec<i32> = scores
                        .iter()
                        .filter(|s| s.cmo_org_id == cmo && s.criterion == c.key)
                        .map(|s| s.score)
                        .collect();
                    let mean = (!given.is_empty())
                        .then(|| given.iter().sum::<i32>() as f64 / given.len() as f64);
                    CriterionResult {
                        key: c.key.clone(),
                        weight: c.weight,
                        mean_score: mean.map(round2),
                        weighted: mean.map(|m| round2(m * c.weight as f64 / 100.0)),
                        scorers: given.len(),
                    }
                })
                .collect();
            let total: f64 = breakdown
                .iter()
                .filter_map(|b| b.mean_score.map(|m| m * b.weight as f64 / 100.0))
                .sum();
            Ranked {
                cmo_org_id: cmo,
                rank: 0,
                weighted_score: round2(total),
                complete: breakdown.iter().all(|b| b.mean_score.is_some()),
                breakdown,
            }
        })
        .collect();
    out.sort_by(|a, b| b.weighted_score.total_cmp(&a.weighted_score));
    for (i, r) in out.iter_mut().enumerate() {
        r.rank = i + 1;
    }
    out
}

#[derive(
    Debug, Clone, Copy, PartialEq, Eq, EnumIter, DeriveActiveEnum, Serialize, Deserialize, ToSchema,
)]
#[sea_orm(rs_type = "String", db_type = "String(StringLen::N(16))")]
#[serde(rename_all = "snake_case")]
pub enum EvaluationStatus {
    #[sea_orm(string_value = "open")]
    Open,
    #[sea_orm(string_value = "decided")]
    Decided,
}

/// The one step of a selection: deciding it, e-signed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum EvaluationEvent {
    Decide,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SelectionError {
    #[error("already decided")]
    AlreadyDecided,
    #[error("not a candidate of this evaluation")]
    NotACandidate,
}

/// The selection's machine: an open evaluation is decided once, for one of its
/// candidates.
/// What the selection decision signs: the criteria, the candidates, every score and
/// the choice with its reason (the ranking follows from the scores).
pub const DECISION_SIGNED_FIELDS: &[&str] = &[
    "id",
    "title",
    "program_id",
    "criteria",
    "candidates",
    "scores",
    "decision_cmo_org_id",
    "decision_reason",
    "decided_at",
];

pub fn transition(
    from: EvaluationStatus,
    _event: EvaluationEvent,
    is_candidate: bool,
) -> Result<EvaluationStatus, SelectionError> {
    match from {
        EvaluationStatus::Decided => Err(SelectionError::AlreadyDecided),
        EvaluationStatus::Open if !is_candidate => Err(SelectionError::NotACandidate),
        EvaluationStatus::Open => Ok(EvaluationStatus::Decided),
    }
}

/// Events possible from `from`.
pub fn allowed_events(from: EvaluationStatus) -> Vec<EvaluationEvent> {
    match from {
        EvaluationStatus::Open => vec![EvaluationEvent::Decide],
        EvaluationStatus::Decided => Vec::new(),
    }
}

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "evaluations")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    pub sponsor_org_id: i64,
    pub title: String,
    pub program_id: Option<i64>,
    /// JSON array of [`Criterion`].
    pub criteria: String,
    /// JSON array of candidate CMO org ids, in the order added.
    pub candidates: String,
    pub status: EvaluationStatus,
    pub decision_cmo_org_id: Option<i64>,
    pub decision_reason: Option<String>,
    pub decision_signature_id: Option<i64>,
    pub decided_at: Option<DateTimeUtc>,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
    pub version: i32,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}

impl Model {
    /// Candidate CMO organization ids, in the order added.
    pub fn candidate_ids(&self) -> Vec<i64> {
        serde_json::from_str(&self.candidates).unwrap_or_default()
    }
}

pub mod score {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "evaluation_scores")]
    pub struct Model {
        #[sea_orm(primary_key)]
        pub id: i64,
        pub evaluation_id: i64,
        pub cmo_org_id: i64,
        pub criterion: String,
        pub scorer_user_id: i64,
        pub score: i32,
        pub notes: Option<String>,
        pub scored_at: DateTimeUtc,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

/// Scores per criterion, as given.
pub fn given(scores: &[score::Model]) -> Vec<GivenScore> {
    scores
        .iter()
        .map(|s| GivenScore {
            cmo_org_id: s.cmo_org_id,
            criterion: s.criterion.clone(),
            score: s.score,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_weights_sum_to_100() {
        assert!(validate_criteria(&default_criteria()).is_empty());
        let mut c = default_criteria();
        c[0].weight = 20;
        assert_eq!(
            validate_criteria(&c),
            [(
                "criteria".to_string(),
                "weights must sum to 100 (they sum to 105)".to_string()
            )]
        );
        c[0].weight = 15;
        c[1].key = c[0].key.clone();
        assert_eq!(validate_criteria(&c)[0].0, "criteria[1].key");
        c[1].key = "other".into();
        c[0].weight = i32::MAX;
        c[1].weight = i32::MAX;
        let errors = validate_criteria(&c);
        assert_eq!(errors[0].0, "criteria[0].weight");
        assert!(
            errors
                .iter()
                .any(|(f, m)| f == "criteria" && m.contains("4294967"))
        );
        c[0].weight = 15;
        c[1].weight = 15;
        c[1].key = c[0].key.clone();
        assert_eq!(validate_criteria(&c)[0].0, "criteria[1].key");
    }

    #[test]
    fn the_weighted_ranking_and_its_breakdown() {
        let criteria = vec![
            Criterion {
                key: "quality".into(),
                name: "Quality".into(),
                weight: 60,
            },
            Criterion {
                key: "cost".into(),
                name: "Cost".into(),
                weight: 40,
            },
        ];
        let s = |cmo, c: &str, score| GivenScore {
            cmo_org_id: cmo,
            criterion: c.into(),
            score,
        };
        let scores = [
            s(1, "quality", 3),
            s(1, "cost", 5), // 1.8 + 2.0 = 3.8
            s(2, "quality", 5),
            s(2, "quality", 4),
            s(2, "cost", 2),    // 2.7 + 0.8 = 3.5
            s(3, "quality", 5), // 3.0, incomplete
        ];
        let r = rank(&criteria, &[1, 2, 3], &scores);
        let order: Vec<(i64, f64, bool)> = r
            .iter()
            .map(|x| (x.cmo_org_id, x.weighted_score, x.complete))
            .collect();
        assert_eq!(order, [(1, 3.8, true), (2, 3.5, true), (3, 3.0, false)]);
        assert_eq!(r[1].breakdown[0].mean_score, Some(4.5));
        assert_eq!(r[1].breakdown[0].scorers, 2);
        assert_eq!(r[2].breakdown[1].mean_score, None);
        assert_eq!(r[0].rank, 1);
    }
}
