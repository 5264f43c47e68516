//! How a CMO reads on the wire: its profile with sites, latest inspections and contacts.

use std::collections::BTreeMap;

use chrono::{DateTime, NaiveDate, Utc};
use entity::cmo::{
    self, Agency, InspectionOutcome, QualificationEvent, QualificationStatus, Region, inspection,
    site,
};
use entity::selection::{self, Criterion, EvaluationEvent, EvaluationStatus, Ranked, score};
use entity::user;
use entity::{organization, relationship};
use sea_orm::{ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, QueryOrder};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::error::ApiResult;

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"name": "Petra Meier", "role": "Project manager", "email": "pm@lonza.test", "phone": "+41 27 555 01 01"}))]
pub struct Contact {
    #[schema(min_length = 1, max_length = 200)]
    pub name: String,
    #[schema(min_length = 1, max_length = 200)]
    pub role: String,
    #[schema(min_length = 3, max_length = 254)]
    pub email: Option<String>,
    #[schema(min_length = 5, max_length = 32)]
    pub phone: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({"id": 3, "name": "Visp Ibex", "country": "CH", "region": "other_europe",
    "latest_inspection": {"id": 8, "site_id": 3, "agency": "fda", "inspected_on": "2025-06-12", "outcome": "nai",
        "critical_findings": 0, "notes": null, "adverse": false}}))]
pub struct SiteView {
    pub id: i64,
    pub name: String,
    pub country: String,
    pub region: Region,
    pub latest_inspection: Option<InspectionView>,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
#[schema(example = json!({"id": 8, "site_id": 3, "agency": "fda", "inspected_on": "2025-06-12", "outcome": "vai",
    "critical_findings": 0, "notes": "2 observations on cleaning records", "adverse": false}))]
pub struct InspectionView {
    pub id: i64,
    pub site_id: i64,
    pub agency: Agency,
    pub inspected_on: NaiveDate,
    pub outcome: InspectionOutcome,
    pub critical_findings: i32,
    pub notes: Option<String>,
    /// OAI, a critical outcome or any critical finding.
    pub adverse: bool,
}

impl From<&inspection::Model> for InspectionView {
    fn from(i: &inspection::Model) -> Self {
        InspectionView {
            id: i.id,
            site_id: i.site_id,
            agency: i.agency,
            inspected_on: i.inspected_on,
            outcome: i.outcome,
            critical_findings: i.critical_findings,
            notes: i.notes.clone(),
            adverse: cmo::is_adverse(i.outcome, i.critical_findings),
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({"org_id": 2, "name": "Lonza Visp", "dosage_forms": ["sterile_injectable", "lyophilized"],
    "modalities": ["biologic", "mab"], "sterile_fill_finish": true, "high_potency": false, "cold_chain": true,
    "max_batch_liters": 20000, "contacts": [{"name": "Petra Meier", "role": "Project manager", "email": "pm@lonza.test", "phone": null}],
    "qualification_status": "qualified", "qualification_reason": null, "qualification_version": 3,
    "sponsor_notes": "Preferred for lyo; ask for Ibex capacity in Q3", "allowed_events": ["approve", "probation", "disqualify"],
    "sites": [{"id": 3, "name": "Visp Ibex", "country": "CH", "region": "other_europe", "latest_inspection": null}],
    "latest_inspection": null, "version": 3}))]
pub struct CmoView {
    pub org_id: i64,
    pub name: String,
    /// The CMO's facts (capabilities, contacts, sites, inspections) are kept by the CMO
    /// and read alike by every sponsor connected to it.
    pub dosage_forms: Vec<String>,
    pub modalities: Vec<String>,
    pub sterile_fill_finish: bool,
    pub high_potency: bool,
    pub cold_chain: bool,
    pub max_batch_liters: Option<i64>,
    pub contacts: Vec<Contact>,
    /// Your organization's qualification of this CMO (each sponsor qualifies on its own);
    /// `null` when the CMO reads its own profile (`GET /cmo-connections` lists each
    /// sponsor's).
    pub qualification_status: Option<QualificationStatus>,
    pub qualification_reason: Option<String>,
    /// The version of your relationship with the CMO: what
    /// `POST /cmos/{id}/qualification` and `PUT /cmos/{id}/sponsor-notes` check.
    pub qualification_version: Option<i32>,
    /// Your organization's own notes about the CMO: never shown to the CMO or to another
    /// sponsor.
    pub sponsor_notes: Option<String>,
    /// Qualification events possible from here.
    pub allowed_events: Vec<QualificationEvent>,
    /// Single-record answers (GET by id, a step's answer) only: the events the state
    /// offers that this caller cannot take now, each with why; `allowed_events` then
    /// holds what this caller can do now. Lists leave it out (their `allowed_events` are
    /// what the state allows).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub blocked_events: Option<Vec<crate::views::BlockedEvent>>,
    pub sites: Vec<SiteView>,
    /// The most recent inspection over all sites.
    pub latest_inspection: Option<InspectionView>,
    /// The version of the CMO's facts: what `PATCH /cmos/{id}` checks.
    pub version: i32,
}

pub fn tags(json: &str) -> Vec<String> {
    serde_json::from_str(json).unwrap_or_default()
}

/// CMO profiles as the api shows them to the reader whose relationships with them are
/// `relationships` (none for a CMO reading its own): one query per related table,
/// whatever their number.
pub async fn cmos<C: ConnectionTrait>(
    conn: &C,
    profiles: &[cmo::Model],
    relationships: &[relationship::Model],
) -> ApiResult<Vec<CmoView>> {
    let ids: Vec<i64> = profiles.iter().map(|p| p.org_id).collect();
    let names: BTreeMap<i64, String> = organization::Entity::find()
        .filter(organization::Column::Id.is_in(ids.clone()))
        .all(conn)
        .await?
        .into_iter()
        .map(|o| (o.id, o.name))
        .collect();
    let sites = site::Entity::find()
        .filter(site::Column::CmoOrgId.is_in(ids.clone()))
        .order_by_asc(site::Column::Id)
        .all(conn)
        .await?;
    let inspections = inspection::Entity::find()
        .filter(inspection::Column::CmoOrgId.is_in(ids))
        .order_by_desc(inspection::Column::InspectedOn)
        .order_by_desc(inspection::Column::Id)
        .all(conn)
        .await?;
    Ok(profiles
        .iter()
        .map(|p| {
            let rel = relationships.iter().find(|r| r.cmo_org_id == p.org_id);
            CmoView {
                org_id: p.org_id,
                name: names.get(&p.org_id).cloned().unwrap_or_default(),
                dosage_forms: tags(&p.dosage_forms),
                modalities: tags(&p.modalities),
                sterile_fill_finish: p.sterile_fill_finish,
                high_potency: p.high_potency,
                cold_chain: p.cold_chain,
                max_batch_liters: p.max_batch_liters,
                contacts: serde_json::from_str(&p.contacts).unwrap_or_default(),
                qualification_status: rel.map(|r| r.qualification_status),
                qualification_reason: rel.and_then(|r| r.qualification_reason.clone()),
                qualification_version: rel.map(|r| r.version),
                sponsor_notes: rel.and_then(|r| r.sponsor_notes.clone()),
                blocked_events: None,
                allowed_events: rel
                    .map(|r| cmo::allowed_events(r.qualification_status))
                    .unwrap_or_default(),
                sites: sites
                    .iter()
                    .filter(|s| s.cmo_org_id == p.org_id)
                    .map(|s| SiteView {
                        id: s.id,
                        name: s.name.clone(),
                        country: s.country.clone(),
                        region: s.region,
                        // Newest first: the first one of the site is its latest.
                        latest_inspection: inspections
                            .iter()
                            .find(|i| i.site_id == s.id)
                            .map(InspectionView::from),
                    })
                    .collect(),
                latest_inspection: inspections
                    .iter()
                    .find(|i| i.cmo_org_id == p.org_id)
                    .map(InspectionView::from),
                version: p.version,
            }
        })
        .collect())
}

#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({"cmo_org_id": 2, "criterion": "quality_systems", "score": 4, "notes": "mature CAPA process",
    "scorer_user_id": 5, "scorer": "Quinn QA", "scored_at": "2026-11-30T10:00:00Z"}))]
pub struct ScoreView {
    pub cmo_org_id: i64,
    pub criterion: String,
    pub score: i32,
    pub notes: Option<String>,
    pub scorer_user_id: i64,
    pub scorer: String,
    pub scored_at: DateTime<Utc>,
}

#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({"id": 1, "title": "Fill-finish partner for ACM-101", "program_id": null, "status": "open",
    "criteria": [{"key": "quality_systems", "name": "Quality systems", "weight": 100}],
    "candidates": [{"cmo_org_id": 2, "name": "Lonza Visp"}],
    "ranking": [{"cmo_org_id": 2, "rank": 1, "weighted_score": 4.0, "complete": true,
        "breakdown": [{"key": "quality_systems", "weight": 100, "mean_score": 4.0, "weighted": 4.0, "scorers": 1}]}],
    "scores": [], "decision_cmo_org_id": null, "decision_reason": null, "decided_at": null, "allowed_events": ["decide"], "version": 1}))]
pub struct EvaluationView {
    pub id: i64,
    pub title: String,
    pub program_id: Option<i64>,
    pub status: EvaluationStatus,
    pub criteria: Vec<Criterion>,
    pub candidates: Vec<CandidateView>,
    /// Best first, with the per-criterion breakdown.
    pub ranking: Vec<Ranked>,
    pub scores: Vec<ScoreView>,
    pub decision_cmo_org_id: Option<i64>,
    pub decision_reason: Option<String>,
    pub decided_at: Option<DateTime<Utc>>,
    /// `decide` while open; nothing once decided.
    pub allowed_events: Vec<EvaluationEvent>,
    /// Single-record answers (GET by id, a step's answer) only: the events the state
    /// offers that this caller cannot take now, each with why; `allowed_events` then
    /// holds what this caller can do now. Lists leave it out (their `allowed_events` are
    /// what the state allows).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub blocked_events: Option<Vec<crate::views::BlockedEvent>>,
    pub version: i32,
}

#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({"cmo_org_id": 2, "name": "Lonza Visp"}))]
pub struct CandidateView {
    pub cmo_org_id: i64,
    pub name: String,
}

pub fn criteria_of(e: &selection::Model) -> Vec<Criterion> {
    serde_json::from_str(&e.criteria).unwrap_or_default()
}

pub fn candidates_of(e: &selection::Model) -> Vec<i64> {
    serde_json::from_str(&e.candidates).unwrap_or_default()
}

pub async fn evaluation<C: ConnectionTrait>(
    conn: &C,
    e: &selection::Model,
) -> ApiResult<EvaluationView> {
    let criteria = criteria_of(e);
    let candidates = candidates_of(e);
    let scores = score::Entity::find()
        .filter(score::Column::EvaluationId.eq(e.id))
        .order_by_asc(score::Column::Id)
        .all(conn)
        .await?;
    let names: BTreeMap<i64, String> = organization::Entity::find()
        .filter(organization::Column::Id.is_in(candidates.clone()))
        .all(conn)
        .await?
        .into_iter()
        .map(|o| (o.id, o.name))
        .collect();
    let scorers: BTreeMap<i64, String> = user::Entity::find()
        .filter(user::Column::Id.is_in(scores.iter().map(|s| s.scorer_user_id)))
        .all(conn)
        .await?
        .into_iter()
        .map(|u| (u.id, u.display_name))
        .collect();
    Ok(EvaluationView {
        id: e.id,
        title: e.title.clone(),
        program_id: e.program_id,
        status: e.status,
        ranking: selection::rank(&criteria, &candidates, &selection::given(&scores)),
        criteria,
        candidates: candidates
            .iter()
            .map(|c| CandidateView {
                cmo_org_id: *c,
                name: names.get(c).cloned().unwrap_or_default(),
            })
            .collect(),
        scores: scores
            .iter()
            .map(|s| ScoreView {
                cmo_org_id: s.cmo_org_id,
                criterion: s.criterion.clone(),
                score: s.score,
                notes: s.notes.clone(),
                scorer_user_id: s.scorer_user_id,
                scorer: scorers.get(&s.scorer_user_id).cloned().unwrap_or_default(),
                scored_at: s.scored_at,
            })
            .collect(),
        decision_cmo_org_id: e.decision_cmo_org_id,
        decision_reason: e.decision_reason.clone(),
        decided_at: e.decided_at,
        blocked_events: None,
        allowed_events: selection::allowed_events(e.status),
        version: e.version,
    })
}

#[derive(Debug, Clone, Serialize, ToSchema)]
#[schema(example = json!({"id": 4, "cmo_org_id": 2, "version_label": "v3", "effective_on": "2026-01-01",
    "expires_on": "2027-12-31", "responsibilities": "Sponsor: release; CMO: batch record review, deviations within 1 business day",
    "document_ref": "QA-AGR-LONZA-003", "current": true, "days_to_expiry": 396}))]
pub struct QualityAgreementView {
    pub id: i64,
    pub cmo_org_id: i64,
    pub version_label: String,
    pub effective_on: NaiveDate,
    pub expires_on: NaiveDate,
    pub responsibilities: String,
    pub document_ref: String,
    /// In force today and the latest to take effect.
    pub current: bool,
    /// Negative once expired.
    pub days_to_expiry: i64,
}

pub fn agreement_views(
    list: &[cmo::quality_agreement::Model],
    today: NaiveDate,
) -> Vec<QualityAgreementView> {
    let current = list
        .iter()
        .filter(|a| a.effective_on <= today && today <= a.expires_on)
        .max_by_key(|a| (a.effective_on, a.id))
        .map(|a| a.id);
    list.iter()
        .map(|a| QualityAgreementView {
            id: a.id,
            cmo_org_id: a.cmo_org_id,
            version_label: a.version_label.clone(),
            effective_on: a.effective_on,
            expires_on: a.expires_on,
            responsibilities: a.responsibilities.clone(),
            document_ref: a.document_ref.clone(),
            current: Some(a.id) == current,
            days_to_expiry: (a.expires_on - today).num_days(),
        })
        .collect()
}

#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({"cmo_org_id": 2, "program_id": null, "programs": 3, "from": "2026-09-01", "to": "2026-11-30",
    "kpis": {"milestones_due": 12, "milestones_on_time": 9, "on_time_milestone_rate": 0.75,
    "batches": 8, "deviations": 11, "deviations_per_batch": {"critical": 0.13, "major": 0.25, "minor": 1.0},
    "median_days_to_triage": 0.6, "median_days_to_close": 21.5, "capa_on_time_closure_rate": 0.8,
    "escalations": 3, "median_minutes_to_acknowledge": 7.5, "p90_minutes_to_acknowledge": 22.0,
    "open_overdue_actions": 4}}))]
pub struct ScorecardView {
    pub cmo_org_id: i64,
    /// Set for a program's scorecard.
    pub program_id: Option<i64>,
    /// Programs counted.
    pub programs: usize,
    pub from: NaiveDate,
    pub to: NaiveDate,
    pub kpis: entity::scorecard::Scorecard,
}
