//! 24/7 escalation: policies and the escalations they page. Acknowledging is shared by
//! the API and the email link.

use chrono::{DateTime, Utc};
use entity::audit_trail::{self, Actor, Entry};
use entity::domain_event::{EscalationAcknowledged, Event};
use entity::escalation::{self, EscalationStatus};
use entity::user;
use sea_orm::sea_query::{Expr, ExprTrait};
use sea_orm::{ActiveEnum, ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter};

use crate::error::{ApiError, ApiResult};
use crate::routes::{snapshot, wire_name};
use crate::views::escalation::EscalationView;

pub mod escalations;
pub mod policy;

/// What an acknowledgement did.
pub(crate) enum Acked {
    Now,
    /// The same person acknowledged it before (idempotent).
    Already(DateTime<Utc>),
}

#[allow(clippy::too_many_arguments)]
/// The acknowledgement both channels share: compare-and-set, event, audit, and a notice
/// to everyone paged so far saying who took it.
pub(crate) async fn acknowledge<C: ConnectionTrait>(
    conn: &C,
    e: &escalation::Model,
    acker: &user::Model,
    channel: &str,
    note: Option<&str>,
    request_id: Option<String>,
    base_url: &str,
    now: DateTime<Utc>,
) -> ApiResult<Acked> {
    if e.status == EscalationStatus::Acknowledged && e.acknowledged_by_user_id == Some(acker.id) {
        return Ok(Acked::Already(e.acknowledged_at.unwrap_or(now)));
    }
    if !escalation::can_acknowledge(e.status) {
        return Err(ApiError::Conflict {
            code: "illegal_transition",
            detail: match e.status {
                EscalationStatus::Acknowledged => {
                    "already acknowledged by someone else".to_string()
                }
                _ => format!("the escalation is {}", wire_name(&e.status)),
            },
            current_state: Some(wire_name(&e.status)),
            allowed_events: Some(vec![]),
            current_version: Some(e.version),
        });
    }
    let res = escalation::Entity::update_many()
        .col_expr(
            escalation::Column::Status,
            Expr::value(EscalationStatus::Acknowledged.to_value()),
        )
        .col_expr(escalation::Column::AcknowledgedAt, Expr::value(Some(now)))
        .col_expr(
            escalation::Column::AcknowledgedByUserId,
            Expr::value(Some(acker.id)),
        )
        .col_expr(
            escalation::Column::AckChannel,
            Expr::value(Some(channel.to_string())),
        )
        .col_expr(
            escalation::Column::NextPageAt,
            Expr::value(Option::<DateTime<Utc>>::None),
        )
        .col_expr(
            escalation::Column::Version,
            Expr::col(escalation::Column::Version).add(1),
        )
        .filter(escalation::Column::Id.eq(e.id))
        .filter(escalation::Column::Version.eq(e.version))
        .exec(conn)
        .await?;
    if res.rows_affected != 1 {
        return Err(ApiError::stale_version(e.version + 1));
    }
    let updated = escalation::Entity::find_by_id(e.id)
        .one(conn)
        .await?
        .ok_or(ApiError::NotFound)?;
    escalation::record_event(
        conn,
        e.id,
        "acknowledged",
        e.current_tier,
        serde_json::json!({"by": acker.display_name, "note": note}),
        Some((acker.id, channel)),
        now,
    )
    .await?;
    audit_trail::append(
        conn,
        &Actor {
            org_id: acker.org_id,
            user_id: Some(acker.id),
            request_id,
            at: now,
        },
        Entry::new("escalation", e.id, "acknowledge")
            .before(snapshot(&EscalationView::from(e)))
            .after(snapshot(&EscalationView::from(&updated)))
            .reason(Some(format!("acknowledged via {channel}"))),
    )
    .await?;
    entity::domain_event::emit(
        conn,
        e.program_id,
        Event::EscalationAcknowledged(EscalationAcknowledged {
            escalation_id: e.id,
            by_user_id: acker.id,
            channel: channel.to_string(),
            tier: e.current_tier,
        }),
        now,
    )
    .await?;
    let message = format!(
        "{} acknowledged this escalation via {channel}{}. Paging has stopped.{}",
        acker.display_name,
        e.current_tier
            .map(|t| format!(" (tier {} was paged)", t + 1))
            .unwrap_or_default(),
        note.map(|n| format!(" Note: {n}")).unwrap_or_default()
    );
    mail::escalation::notify_paged(
        conn,
        &updated,
        EscalationStatus::Acknowledged,
        &format!("acknowledged:{}", e.reopen_count),
        &format!("Acknowledged by {}", acker.display_name),
        &message,
        base_url,
        now,
    )
    .await?;
    Ok(Acked::Now)
}
