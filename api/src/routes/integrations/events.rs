//! The event feed for polling tools: `GET /events?after=<cursor>`, in cursor order, no
//! gaps or repeats across pages while writes happen (see `entity::domain_event`).

use actix_web::{get, web};
use entity::domain_event::{self, EventView};
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
    #[param(example = 1041, minimum = 0)]
    pub after: Option<i64>,
    /// Comma-separated event types, e.g. `deviation.reported,escalation.opened`.
    #[param(example = "deviation.reported,escalation.opened")]
    pub types: Option<String>,
    /// 1 to 500 (default 100).
    #[param(minimum = 1, maximum = 500, example = 100)]
    pub limit: Option<u64>,
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
        c.fail(
            "after",
            "out_of_range",
            "a cursor is 0 or more: the last cursor you read, e.g. after=1042",
        );
    }
    if !(1..=500).contains(&limit) {
        c.fail(
            "limit",
            "out_of_range",
            "a whole number from 1 to 500, e.g. limit=100",
        );
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
    // PostgreSQL gives events their cursors after their commit: this read shows every
    // event committed before it (a write is in the next read).
    domain_event::catch_up(&state.db).await;
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
        .all(&state.reads)
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
