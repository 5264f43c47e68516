//! How an escalation reads on the wire.

use chrono::{DateTime, Utc};
use entity::escalation::{self, EscalationStatus};
use serde::Serialize;
use utoipa::ToSchema;

#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({"id": 12, "program_id": 3, "source_type": "deviation", "source_id": 41,
    "title": "Bioburden excursion in harvest", "reason": "critical deviation #41: bioburden excursion in harvest",
    "criticality": "critical", "category": "equipment", "status": "open", "opened_at": "2026-11-28T02:00:00Z",
    "current_tier": 0, "next_page_at": "2026-11-28T02:15:00Z", "pages_sent": 1,
    "acknowledged_at": null, "acknowledged_by_user_id": null, "ack_channel": null,
    "resolved_at": null, "reopen_count": 0, "version": 2}))]
pub struct EscalationView {
    pub id: i64,
    pub program_id: i64,
    /// `deviation` or `manual`.
    pub source_type: String,
    pub source_id: Option<i64>,
    pub title: String,
    pub reason: String,
    pub criticality: Option<String>,
    pub category: Option<String>,
    pub status: EscalationStatus,
    pub opened_at: DateTime<Utc>,
    /// 0-based tier of the latest page.
    pub current_tier: Option<i32>,
    /// When the next tier is paged (open escalations).
    pub next_page_at: Option<DateTime<Utc>>,
    pub pages_sent: i32,
    pub acknowledged_at: Option<DateTime<Utc>>,
    pub acknowledged_by_user_id: Option<i64>,
    /// `api` or `email`.
    pub ack_channel: Option<String>,
    pub resolved_at: Option<DateTime<Utc>>,
    pub reopen_count: i32,
    pub version: i32,
}

impl From<&escalation::Model> for EscalationView {
    fn from(e: &escalation::Model) -> Self {
        EscalationView {
            id: e.id,
            program_id: e.program_id,
            source_type: e.source_type.clone(),
            source_id: e.source_id,
            title: e.title.clone(),
            reason: e.reason.clone(),
            criticality: e.criticality.clone(),
            category: e.category.clone(),
            status: e.status,
            opened_at: e.opened_at,
            current_tier: e.current_tier,
            next_page_at: e.next_page_at,
            pages_sent: e.page_seq,
            acknowledged_at: e.acknowledged_at,
            acknowledged_by_user_id: e.acknowledged_by_user_id,
            ack_channel: e.ack_channel.clone(),
            resolved_at: e.resolved_at,
            reopen_count: e.reopen_count,
            version: e.version,
        }
    }
}
