//! How quality records read on the wire when several areas show them.

use chrono::{DateTime, NaiveDate, Utc};
use entity::capa::{self, CapaEvent, CapaSource, CapaStatus, EffectivenessOutcome};
use sea_orm::{ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, QueryOrder};
use serde::Serialize;
use utoipa::ToSchema;

use crate::error::ApiResult;

#[derive(Debug, Clone, Serialize, ToSchema)]
#[schema(example = json!({
    "id": 5, "program_id": 7, "title": "Replace and re-qualify harvest tank gaskets",
    "description": "Corrective: replace gaskets. Preventive: add gasket inspection to PM.",
    "source": "deviation", "finding_reference": null, "deviation_ids": [41], "status": "implementing",
    "effectiveness_due": null, "effectiveness_outcome": null, "plan_signature_id": 22, "closure_signature_id": null,
    "cancel_reason": null, "closed_at": null, "allowed_events": ["request_effectiveness_check", "cancel"],
    "created_at": "2027-04-03T09:00:00Z", "updated_at": "2027-04-05T09:00:00Z", "version": 3
}))]
pub struct CapaView {
    pub id: i64,
    pub program_id: i64,
    pub title: String,
    pub description: String,
    pub source: CapaSource,
    pub finding_reference: Option<String>,
    pub deviation_ids: Vec<i64>,
    pub status: CapaStatus,
    pub effectiveness_due: Option<NaiveDate>,
    pub effectiveness_outcome: Option<EffectivenessOutcome>,
    pub plan_signature_id: Option<i64>,
    pub closure_signature_id: Option<i64>,
    pub cancel_reason: Option<String>,
    pub closed_at: Option<DateTime<Utc>>,
    pub allowed_events: Vec<CapaEvent>,
    /// Single-record answers (GET by id, a step's answer) only: the events the state
    /// offers that this caller cannot take now, each with why; `allowed_events` then
    /// holds what this caller can do now. Lists leave it out (their `allowed_events` are
    /// what the state allows).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub blocked_events: Option<Vec<crate::views::BlockedEvent>>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub version: i32,
}

pub fn capa_view(c: &capa::Model, deviation_ids: Vec<i64>) -> CapaView {
    CapaView {
        id: c.id,
        program_id: c.program_id,
        title: c.title.clone(),
        description: c.description.clone(),
        source: c.source,
        finding_reference: c.finding_reference.clone(),
        deviation_ids,
        status: c.status,
        effectiveness_due: c.effectiveness_due,
        effectiveness_outcome: c.effectiveness_outcome,
        plan_signature_id: c.plan_signature_id,
        closure_signature_id: c.closure_signature_id,
        cancel_reason: c.cancel_reason.clone(),
        closed_at: c.closed_at,
        blocked_events: None,
        allowed_events: capa::allowed_events(c.status),
        created_at: c.created_at,
        updated_at: c.updated_at,
        version: c.version,
    }
}

pub async fn linked_deviations<C: ConnectionTrait>(conn: &C, capa_id: i64) -> ApiResult<Vec<i64>> {
    Ok(capa::deviation_link::Entity::find()
        .filter(capa::deviation_link::Column::CapaId.eq(capa_id))
        .order_by_asc(capa::deviation_link::Column::DeviationId)
        .all(conn)
        .await?
        .into_iter()
        .map(|l| l.deviation_id)
        .collect())
}

/// A CAPA as the api shows it, with its linked deviations.
pub async fn capa<C: ConnectionTrait>(conn: &C, c: &capa::Model) -> ApiResult<CapaView> {
    Ok(capa_view(c, linked_deviations(conn, c.id).await?))
}
