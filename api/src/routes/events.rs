//! The event feed for polling tools: `GET /events?after=<cursor>`, in cursor order, no
//! gaps or repeats across pages while writes happen (see `entity::domain_event`).

use actix_web::{get, web};
use chrono::{DateTime, Utc};
use entity::domain_event;
use sea_orm::{ColumnTrait, Condition, EntityTrait, QueryFilter, QueryOrder, QuerySelect};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::auth::AuthContext;
use crate::error::{ApiError, ApiResult};
use crate::extract::Checks;
use crate::state::AppState;

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct EventQuery {
    /// Return events after this cursor (0 or absent: from the start).
    #[param(example = 1041)]
    pub after: Option<i64>,
    /// Comma-separated event types, e.g. `deviation.reported,escalation.opened`.
    #[param(example = "deviation.reported,escalation.opened")]
    pub types: Option<String>,
    /// 1 to 500 (default 100).
    pub limit: Option<u64>,
}

#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({"cursor": 1042, "type": "deviation.reported", "program_id": 3,
    "resource_type": "deviation", "resource_id": "41",
    "payload": {"deviation_id": 41, "title": "Bioburden excursion", "criticality": "critical", "category": "equipment",
        "detected_at": "2026-11-28T01:55:00Z"},
    "occurred_at": "2026-11-28T02:00:00Z"}))]
pub struct EventView {
    /// Increases in commit order; pass the last one you saw as `after`. Webhooks send it
    /// as `X-Cmo-Event-Id`.
    pub cursor: i64,
    pub program_id: Option<i64>,
    pub resource_type: String,
    pub resource_id: String,
    /// `type` (one of the event types) and its `payload` (one schema per type).
    #[serde(flatten)]
    pub event: domain_event::Event,
    pub occurred_at: DateTime<Utc>,
}

/// The same shape in the feed and in webhook bodies. Rows are written from the typed
/// [`domain_event::Event`], so reading one back fails only if it was tampered with.
impl TryFrom<&domain_event::Model> for EventView {
    type Error = serde_json::Error;

    fn try_from(r: &domain_event::Model) -> Result<Self, Self::Error> {
        Ok(EventView {
            cursor: r.cursor,
            program_id: r.program_id,
            resource_type: r.resource_type.clone(),
            resource_id: r.resource_id.clone(),
            event: domain_event::Event::from_stored(&r.event_type, &r.payload)?,
            occurred_at: r.occurred_at,
        })
    }
}

#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({"items": [], "next_after": 1042}))]
pub struct EventPage {
    pub items: Vec<EventView>,
    /// Pass as `after` for the next page (unchanged when there was nothing new).
    pub next_after: i64,
}

/// Events about the programs you are party to, oldest first after `after`.
#[utoipa::path(
    tag = "integrations",
    params(EventQuery),
    responses((status = 200, description = "One page of events", body = EventPage))
)]
#[get("/events")]
pub async fn list_events(
    state: web::Data<AppState>,
    ctx: AuthContext,
    query: web::Query<EventQuery>,
) -> ApiResult<web::Json<EventPage>> {
    let q = query.into_inner();
    let after = q.after.unwrap_or(0);
    let limit = q.limit.unwrap_or(100);
    let mut c = Checks::default();
    if after < 0 {
        c.fail("after", "out_of_range", "a cursor is 0 or more");
    }
    if !(1..=500).contains(&limit) {
        c.fail("limit", "out_of_range", "1 to 500");
    }
    let types: Vec<String> = q
        .types
        .as_deref()
        .map(|t| {
            t.split(',')
                .map(|s| s.trim().to_string())
                .filter(|s| !s.is_empty())
                .collect()
        })
        .unwrap_or_default();
    for t in &types {
        if !domain_event::EVENT_TYPES.contains(&t.as_str()) {
            c.fail("types", "unknown_type", format!("{t} is not an event type"));
        }
    }
    c.finish()?;
    let mut select = domain_event::Entity::find()
        .filter(
            Condition::any()
                .add(domain_event::Column::SponsorOrgId.eq(ctx.org_id()))
                .add(domain_event::Column::CmoOrgId.eq(ctx.org_id())),
        )
        .filter(domain_event::Column::Cursor.gt(after));
    if !types.is_empty() {
        select = select.filter(domain_event::Column::EventType.is_in(types));
    }
    let rows = select
        .order_by_asc(domain_event::Column::Cursor)
        .limit(limit)
        .all(&state.db)
        .await?;
    let next_after = rows.last().map_or(after, |r| r.cursor);
    Ok(web::Json(EventPage {
        items: rows
            .iter()
            .map(EventView::try_from)
            .collect::<Result<_, _>>()
            .map_err(ApiError::internal)?,
        next_after,
    }))
}
