//! How escalations, their timelines and their policies read on the wire.

use chrono::{DateTime, Utc};
use entity::escalation::{self, EscalationView};
use entity::escalation_policy::{self, PolicyDoc, Recipient};
use sea_orm::{ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, QueryOrder};
use serde::Serialize;
use utoipa::ToSchema;

use crate::error::ApiResult;

#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({"kind": "paged", "tier": 0, "detail": {"tier": "Core team", "page": 1, "repeat": false,
    "recipients": ["qa@acme.test"], "next_page_at": "2026-11-28T02:15:00Z"}, "actor_user_id": null, "channel": null, "at": "2026-11-28T02:00:00Z"}))]
pub struct EscalationEventView {
    /// `opened`, `paged`, `skipped`, `acknowledged`, `reopened`, `exhausted`, `resolved`.
    pub kind: String,
    pub tier: Option<i32>,
    /// Who was notified and why (free-form JSON).
    #[schema(value_type = Object)]
    pub detail: serde_json::Value,
    pub actor_user_id: Option<i64>,
    pub channel: Option<String>,
    pub at: DateTime<Utc>,
}

#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({"seq": 1, "tier": 0, "paged_at": "2026-11-28T02:00:00Z",
    "recipients": [{"member_id": 4, "user_id": 9, "name": "Quinn QA", "email": "qa@acme.test", "program_role": "QA lead"}]}))]
pub struct EscalationPageView {
    pub seq: i32,
    pub tier: i32,
    pub recipients: Vec<Recipient>,
    pub paged_at: DateTime<Utc>,
}

#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({"escalation": {"id": 12, "program_id": 3, "source_type": "deviation", "source_id": 41,
    "title": "Bioburden excursion in harvest", "reason": "critical deviation DEV-2026-0041: Bioburden excursion in harvest",
    "criticality": "critical", "category": "equipment", "status": "acknowledged", "opened_at": "2026-11-28T02:00:00Z",
    "current_tier": 0, "next_page_at": "2026-11-28T03:04:00Z", "pages_sent": 1, "acknowledged_at": "2026-11-28T02:04:00Z",
    "acknowledged_by_user_id": 9, "ack_channel": "email", "resolved_at": null, "reopen_count": 0, "version": 3},
  "policy": {"tiers": [{"name": "Core team", "member_ids": [], "governance_tiers": ["core_team"], "match_expertise": true, "wait_minutes": 15}],
    "repeat_last": 1, "ack_timeout_minutes": 60},
  "pages": [{"seq": 1, "tier": 0, "paged_at": "2026-11-28T02:00:00Z",
    "recipients": [{"member_id": 4, "user_id": 9, "name": "Quinn QA", "email": "qa@acme.test", "program_role": "QA lead"}]}],
  "events": [{"kind": "opened", "tier": null, "detail": {"reason": "critical deviation DEV-2026-0041: Bioburden excursion in harvest"}, "actor_user_id": 2, "channel": "api", "at": "2026-11-28T02:00:00Z"}]}))]
pub struct EscalationDetail {
    pub escalation: EscalationView,
    /// The policy this escalation follows (as it was when it opened).
    pub policy: PolicyDoc,
    pub pages: Vec<EscalationPageView>,
    pub events: Vec<EscalationEventView>,
}

pub async fn detail<C: ConnectionTrait>(
    conn: &C,
    e: &escalation::Model,
) -> ApiResult<EscalationDetail> {
    let pages = escalation::page::Entity::find()
        .filter(escalation::page::Column::EscalationId.eq(e.id))
        .order_by_asc(escalation::page::Column::Seq)
        .all(conn)
        .await?
        .into_iter()
        .map(|p| EscalationPageView {
            seq: p.seq,
            tier: p.tier_index,
            recipients: serde_json::from_str(&p.recipients).unwrap_or_default(),
            paged_at: p.paged_at,
        })
        .collect();
    let events = escalation::event::Entity::find()
        .filter(escalation::event::Column::EscalationId.eq(e.id))
        .order_by_asc(escalation::event::Column::Id)
        .all(conn)
        .await?
        .into_iter()
        .map(|ev| EscalationEventView {
            kind: ev.kind,
            tier: ev.tier_index,
            detail: serde_json::from_str(&ev.detail).unwrap_or_default(),
            actor_user_id: ev.actor_user_id,
            channel: ev.channel,
            at: ev.at,
        })
        .collect();
    Ok(EscalationDetail {
        escalation: EscalationView::from(e),
        policy: e.policy(),
        pages,
        events,
    })
}

#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({"program_id": 3, "tiers": [
    {"name": "Core team", "member_ids": [], "governance_tiers": ["core_team"], "match_expertise": true, "wait_minutes": 15},
    {"name": "Leadership", "member_ids": [], "governance_tiers": ["leadership"], "match_expertise": false, "wait_minutes": 30},
    {"name": "Steering committee", "member_ids": [], "governance_tiers": ["steering_committee"], "match_expertise": false, "wait_minutes": 30}],
    "repeat_last": 1, "ack_timeout_minutes": 60, "version": 1}))]
pub struct PolicyView {
    pub program_id: i64,
    pub tiers: Vec<escalation_policy::Tier>,
    pub repeat_last: i32,
    pub ack_timeout_minutes: i32,
    /// Send it back on PUT (409 when someone changed the policy meanwhile).
    pub version: i32,
}

pub async fn policy_view<C: ConnectionTrait>(conn: &C, program_id: i64) -> ApiResult<PolicyView> {
    let stored = escalation_policy::Entity::find()
        .filter(escalation_policy::Column::ProgramId.eq(program_id))
        .one(conn)
        .await?;
    let (doc, version) = match &stored {
        Some(m) => (m.doc(), m.version),
        // No row yet (programs created before policies existed): the default, version 0.
        None => (escalation_policy::default_policy(), 0),
    };
    Ok(PolicyView {
        program_id,
        tiers: doc.tiers,
        repeat_last: doc.repeat_last,
        ack_timeout_minutes: doc.ack_timeout_minutes,
        version,
    })
}
