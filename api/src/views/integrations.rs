//! How webhook subscriptions and their deliveries read on the wire.

use chrono::{DateTime, Utc};
use entity::webhook;
use serde::Serialize;
use utoipa::ToSchema;

#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({"id": 3, "url": "https://erp.example.com/hooks/cmo", "event_types": ["deviation.reported", "escalation.opened"],
    "active": true, "consecutive_failures": 0, "disabled_reason": null, "disabled_at": null,
    "created_at": "2026-11-30T09:00:00Z", "updated_at": "2026-11-30T09:00:00Z", "version": 1}))]
pub struct WebhookView {
    pub id: i64,
    pub url: String,
    pub event_types: Vec<String>,
    /// Inactive subscriptions get no new deliveries and their pending ones wait.
    pub active: bool,
    /// Failed attempts in a row (any success resets it); at the worker's limit
    /// (`CMO_WEBHOOK_DISABLE_AFTER`, default 20) the subscription is disabled.
    pub consecutive_failures: i32,
    /// Why the worker disabled it (410 Gone, or too many failures in a row).
    pub disabled_reason: Option<String>,
    pub disabled_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub version: i32,
}

impl From<&webhook::Model> for WebhookView {
    fn from(w: &webhook::Model) -> Self {
        WebhookView {
            id: w.id,
            url: w.url.clone(),
            event_types: serde_json::from_str(&w.event_types).unwrap_or_default(),
            active: w.active,
            consecutive_failures: w.consecutive_failures,
            disabled_reason: w.disabled_reason.clone(),
            disabled_at: w.disabled_at,
            created_at: w.created_at,
            updated_at: w.updated_at,
            version: w.version,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({"attempt": 1, "started_at": "2026-11-30T09:00:01Z", "duration_ms": 84,
    "status_code": 503, "error": null, "response_excerpt": "upstream busy", "outcome": "retry"}))]
pub struct AttemptView {
    /// 1-based within the current series (a redelivery starts a new series).
    pub attempt: i32,
    pub started_at: DateTime<Utc>,
    pub duration_ms: i32,
    /// The receiver's HTTP status; absent when there was no answer.
    pub status_code: Option<i32>,
    /// Why there was no (acceptable) answer: timeout, connection refused, TLS, ….
    pub error: Option<String>,
    /// The first bytes of the receiver's answer.
    pub response_excerpt: Option<String>,
    /// `delivered`, `retry` (another attempt is scheduled) or `failed`.
    pub outcome: String,
}

#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({"id": 88, "event_id": 1042, "event_type": "deviation.reported", "status": "delivered",
    "attempts": 2, "next_attempt_at": null, "last_status_code": 200, "last_error": null,
    "delivered_at": "2026-11-30T09:00:32Z", "created_at": "2026-11-30T09:00:00Z",
    "log": [{"attempt": 1, "started_at": "2026-11-30T09:00:01Z", "duration_ms": 84, "status_code": 503,
             "error": null, "response_excerpt": "upstream busy", "outcome": "retry"},
            {"attempt": 2, "started_at": "2026-11-30T09:00:32Z", "duration_ms": 12, "status_code": 200,
             "error": null, "response_excerpt": "", "outcome": "delivered"}]}))]
pub struct DeliveryView {
    pub id: i64,
    /// The event's cursor, sent as `X-Cmo-Event-Id` (the same on every attempt).
    pub event_id: i64,
    pub event_type: String,
    pub status: webhook::DeliveryStatus,
    pub attempts: i32,
    /// When the next attempt is due (pending deliveries).
    pub next_attempt_at: Option<DateTime<Utc>>,
    pub last_status_code: Option<i32>,
    pub last_error: Option<String>,
    pub delivered_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    /// Every attempt, oldest first.
    pub log: Vec<AttemptView>,
}

pub fn delivery_view(d: &webhook::delivery::Model, log: Vec<AttemptView>) -> DeliveryView {
    DeliveryView {
        id: d.id,
        event_id: d.event_cursor,
        event_type: d.event_type.clone(),
        status: d.status,
        attempts: d.attempts,
        next_attempt_at: (d.status == webhook::DeliveryStatus::Pending)
            .then_some(d.next_attempt_at),
        last_status_code: d.last_status_code,
        last_error: d.last_error.clone(),
        delivered_at: d.delivered_at,
        created_at: d.created_at,
        log,
    }
}
