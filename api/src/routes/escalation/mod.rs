//! 24/7 escalation: policies and the escalations they page. Acknowledging is shared by
//! the API and the email link.

use chrono::{DateTime, Utc};
use entity::audit_trail::Actor;
use entity::escalation::{self, EscalationStatus, EscalationView};
use entity::user;
use entity::workflow::escalation::{self as escalation_flow, EscalationEvent};
use entity::workflow::{self};
use sea_orm::{Condition, DatabaseTransaction};

use crate::error::ApiResult;
use crate::transition::tell_paged;

pub mod escalations;
pub mod policy;

/// What an acknowledgement did.
pub(crate) enum Acked {
    Now,
    /// The same person acknowledged it before (idempotent).
    Already(DateTime<Utc>),
}

/// The acknowledgement both channels share: the escalation's machine, then a notice to
/// everyone paged so far saying who took it. The same person again is a no-op.
#[allow(clippy::too_many_arguments)]
pub(crate) async fn acknowledge(
    txn: &DatabaseTransaction,
    e: &escalation::Model,
    acker: &user::Model,
    channel: &str,
    note: Option<&str>,
    request_id: Option<String>,
    chain_keys: &entity::audit::ChainKeys,
    base_url: &str,
    now: DateTime<Utc>,
) -> ApiResult<Acked> {
    if e.status == EscalationStatus::Acknowledged && e.acknowledged_by_user_id == Some(acker.id) {
        return Ok(Acked::Already(e.acknowledged_at.unwrap_or(now)));
    }
    let actor = Actor {
        org_id: acker.org_id,
        user_id: Some(acker.id),
        request_id,
        at: now,
        chain_keys: chain_keys.clone(),
    };
    let step = escalation_flow::Step::by_person(
        EscalationEvent::Acknowledge,
        acker.id,
        &acker.display_name,
        channel,
        note.map(str::to_string),
        now,
    );
    let done = workflow::transition(
        txn,
        &actor,
        Condition::all(),
        e.id,
        &step,
        None,
        None,
        async |m| entity::audit::record_snapshot(&EscalationView::from(m)),
    )
    .await?;
    tell_paged(txn, done.follow_ups, &acker.display_name, base_url, now).await?;
    Ok(Acked::Now)
}
