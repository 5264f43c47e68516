//! Signed records as they read now, for judging whether a signature still matches what
//! was signed (21 CFR 11.70): each signed record type read in the caller's scope and
//! shown as its own endpoint shows it, so that a signature's snapshot of signed fields
//! compares field by field with the record.

use chrono::{DateTime, Utc};
use entity::workflow::{
    capa as capa_flow, change as change_flow, deviation as deviation_flow, gate as gate_flow,
    production as production_flow, qualification as qualification_flow,
    selection as selection_flow,
};
use entity::{SignedRecordType, audit_event, gate, milestone, signature};
use sea_orm::{ConnectionTrait, EntityTrait, PrimaryKeyTrait};
use serde_json::Value;

use crate::auth::{AuthContext, TenantScoped, find_scoped};
use crate::error::{ApiError, ApiResult};
use crate::transition::ApiStep;
use crate::views::snapshot;

/// `sig` judged against its record as the caller can read it now.
pub async fn checked(
    conn: &impl ConnectionTrait,
    ctx: &AuthContext,
    sig: &signature::Model,
    now: DateTime<Utc>,
) -> ApiResult<signature::SignatureView> {
    let view = signature::SignatureView::from(sig);
    if view.signed_fields.is_none() {
        return Ok(view);
    }
    let current = current_record(conn, ctx, sig.record_type, &sig.record_id, now).await?;
    Ok(view.checked_against(current.as_ref()))
}

/// The record a signature names, as it reads now; `None` when the caller cannot read it.
async fn current_record(
    conn: &impl ConnectionTrait,
    ctx: &AuthContext,
    record_type: SignedRecordType,
    record_id: &str,
    now: DateTime<Utc>,
) -> ApiResult<Option<Value>> {
    let Ok(id) = record_id.parse::<i64>() else {
        return Ok(None);
    };
    match record_type {
        SignedRecordType::AuditEvent => Ok(visible(
            find_scoped::<audit_event::Entity, _>(conn, ctx, id).await,
        )?
        .map(|e| audit_event::signed_content(&e))),
        SignedRecordType::DeviationClosure => {
            as_shown::<deviation_flow::Step>(conn, ctx, id, now).await
        }
        SignedRecordType::Capa => as_shown::<capa_flow::Step>(conn, ctx, id, now).await,
        SignedRecordType::ChangeRequest => as_shown::<change_flow::Step>(conn, ctx, id, now).await,
        SignedRecordType::ProductionRelease => {
            as_shown::<production_flow::Release>(conn, ctx, id, now).await
        }
        SignedRecordType::CmoQualification => {
            as_shown::<qualification_flow::Step>(conn, ctx, id, now).await
        }
        SignedRecordType::SelectionDecision => {
            as_shown::<selection_flow::Decide>(conn, ctx, id, now).await
        }
        SignedRecordType::GateDecision => gate_decision(conn, ctx, id).await,
    }
}

/// A record with a state machine, as its own endpoint shows it.
async fn as_shown<W: ApiStep>(
    conn: &impl ConnectionTrait,
    ctx: &AuthContext,
    id: i64,
    now: DateTime<Utc>,
) -> ApiResult<Option<Value>>
where
    W::Entity: TenantScoped,
    <<W::Entity as EntityTrait>::PrimaryKey as PrimaryKeyTrait>::ValueType: From<i64>,
{
    match visible(find_scoped::<W::Entity, _>(conn, ctx, id).await)? {
        Some(m) => Ok(Some(snapshot(&W::view(conn, ctx, &m, now).await?))),
        None => Ok(None),
    }
}

/// A gate decision and, while its round is the milestone's current one, the checklist.
async fn gate_decision(
    conn: &impl ConnectionTrait,
    ctx: &AuthContext,
    id: i64,
) -> ApiResult<Option<Value>> {
    let Some(decision) = gate::decision::Entity::find_by_id(id).one(conn).await? else {
        return Ok(None);
    };
    // The decision is the caller's when its milestone is.
    let Some(m) =
        visible(find_scoped::<milestone::Entity, _>(conn, ctx, decision.milestone_id).await)?
    else {
        return Ok(None);
    };
    let items = if m.gate_round == decision.gate_round {
        Some(gate_flow::checklist(conn, m.id).await?)
    } else {
        None
    };
    Ok(Some(gate::signed_content(&decision, items.as_deref())))
}

/// A scoped read where "not found" is an answer, not an error.
fn visible<T>(found: ApiResult<T>) -> ApiResult<Option<T>> {
    match found {
        Ok(t) => Ok(Some(t)),
        Err(ApiError::NotFound) => Ok(None),
        Err(e) => Err(e),
    }
}
