//! Records that several areas create: action items (from CAPA, change control and a
//! no-go gate), CAPA (also from an inspection finding), gate items (also from a plan
//! template). Each create writes its audit row.

use chrono::{DateTime, NaiveDate, Utc};
pub use entity::action_item::NewAction;
use entity::action_item::{self, ActionStatus};
use entity::capa::{self, CapaStatus};
use entity::domain_event::{ActionItemAssigned, Event};
use entity::gate::{self, CheckResult, CheckType};
use entity::record_number::{self, RecordKind};

use crate::views::plan::GateItemView;
use entity::{program, user};
use sea_orm::ActiveValue::{NotSet, Set};
use sea_orm::{ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter};

use crate::auth::AuthContext;
use crate::error::{ApiError, ApiResult};
use crate::views::quality::CapaView;
use crate::write::{insert_audited, insert_audited_because};
use std::collections::BTreeSet;

pub async fn insert_action<C: ConnectionTrait>(
    conn: &C,
    ctx: &AuthContext,
    now: DateTime<Utc>,
    today: NaiveDate,
    new: NewAction,
) -> ApiResult<action_item::Model> {
    let (created, _) = insert_audited(
        conn,
        &ctx.actor(now),
        "action_item",
        action_item::ActiveModel {
            id: NotSet,
            program_id: Set(new.program_id),
            title: Set(new.title),
            description: Set(new.description),
            owner_user_id: Set(new.owner_user_id),
            due_date: Set(new.due_date),
            source: Set(new.source),
            source_id: Set(new.source_id),
            status: Set(ActionStatus::Open),
            snoozed_until: Set(None),
            snooze_reason: Set(None),
            completed_at: Set(None),
            completion_evidence: Set(None),
            completion_evidence_url: Set(None),
            created_at: Set(now),
            updated_at: Set(now),
            version: Set(1),
            overdue_event_for: Set(None),
        },
        async |created| Ok(crate::views::plan::action_item(created, today)),
    )
    .await?;
    announce_assignment(conn, &created, Some(ctx.user.id), now).await?;
    Ok(created)
}

/// The `action_item.assigned` event of an item given to its owner (on creation, or
/// handed to someone else), in the caller's transaction: webhooks hear it and the
/// worker emails the owner.
pub async fn announce_assignment<C: ConnectionTrait>(
    conn: &C,
    item: &action_item::Model,
    by: Option<i64>,
    now: DateTime<Utc>,
) -> ApiResult<()> {
    entity::domain_event::emit(
        conn,
        item.program_id,
        Event::ActionItemAssigned(ActionItemAssigned {
            action_item_id: item.id,
            title: item.title.clone(),
            owner_user_id: item.owner_user_id,
            assigned_by_user_id: by,
            due_date: item.due_date,
            source: item.source,
            source_id: item.source_id,
        }),
        now,
    )
    .await?;
    Ok(())
}

/// A CAPA to open.
pub struct NewCapa {
    pub program_id: i64,
    pub title: String,
    pub description: String,
    pub source: capa::CapaSource,
    pub finding_reference: Option<String>,
    /// Deviations of the program it addresses (checked by the caller).
    pub deviation_ids: BTreeSet<i64>,
    /// Why, when the audit row should say (a CAPA from an inspection finding).
    pub reason: Option<String>,
}

/// Opens a CAPA with its deviation links and its audit row (the one place CAPA rows are
/// created). Returns it as people see it.
pub async fn insert_capa<C: ConnectionTrait>(
    conn: &C,
    ctx: &AuthContext,
    now: DateTime<Utc>,
    new: NewCapa,
) -> ApiResult<CapaView> {
    let NewCapa {
        program_id,
        title,
        description,
        source,
        finding_reference,
        deviation_ids,
        reason,
    } = new;
    let program = entity::program::Entity::find_by_id(program_id)
        .one(conn)
        .await?
        .ok_or(crate::error::ApiError::NotFound)?;
    let number = record_number::assign(conn, RecordKind::Capa, &program, now).await?;
    let (_, view) = insert_audited_because(
        conn,
        &ctx.actor(now),
        "capa",
        reason,
        capa::ActiveModel {
            id: NotSet,
            record_number: Set(Some(number)),
            program_id: Set(program_id),
            title: Set(title.trim().to_string()),
            description: Set(description),
            source: Set(source),
            finding_reference: Set(finding_reference),
            status: Set(CapaStatus::Open),
            effectiveness_due: Set(None),
            effectiveness_outcome: Set(None),
            plan_signature_id: Set(None),
            closure_signature_id: Set(None),
            cancel_reason: Set(None),
            closed_at: Set(None),
            created_at: Set(now),
            updated_at: Set(now),
            version: Set(1),
        },
        async |created| {
            if !deviation_ids.is_empty() {
                capa::deviation_link::Entity::insert_many(deviation_ids.iter().map(|d| {
                    capa::deviation_link::ActiveModel {
                        capa_id: Set(created.id),
                        deviation_id: Set(*d),
                    }
                }))
                .exec(conn)
                .await?;
            }
            crate::views::quality::capa(conn, created).await
        },
    )
    .await?;
    Ok(view)
}

/// A checklist item to add.
pub struct NewGateItem<'a> {
    pub milestone_id: i64,
    pub check_type: CheckType,
    pub title: &'a str,
    pub mandatory: bool,
    pub position: i32,
}

pub async fn insert_gate_item<C: ConnectionTrait>(
    conn: &C,
    ctx: &AuthContext,
    now: DateTime<Utc>,
    new: NewGateItem<'_>,
) -> ApiResult<gate::item::Model> {
    let NewGateItem {
        milestone_id,
        check_type,
        title,
        mandatory,
        position,
    } = new;
    let (item, _) = insert_audited(
        conn,
        &ctx.actor(now),
        "gate_item",
        gate::item::ActiveModel {
            id: NotSet,
            milestone_id: Set(milestone_id),
            check_type: Set(check_type),
            title: Set(title.trim().to_string()),
            mandatory: Set(mandatory),
            result: Set(CheckResult::Pending),
            evidence: Set(None),
            decided_by_user_id: Set(None),
            decided_at: Set(None),
            position: Set(position),
            created_at: Set(now),
            updated_at: Set(now),
            version: Set(1),
        },
        async |item| Ok(GateItemView::from(item)),
    )
    .await?;
    Ok(item)
}

/// An owner (of a milestone or an action item) must be an active person of the program's
/// sponsor or CMO.
pub async fn check_owner<C: ConnectionTrait>(
    conn: &C,
    prog: &program::Model,
    owner: i64,
) -> ApiResult<()> {
    let found = user::Entity::find_by_id(owner)
        .filter(user::Column::OrgId.is_in(prog.staffing_orgs(conn).await?))
        .filter(user::Column::Active.eq(true))
        .one(conn)
        .await?;
    if found.is_none() {
        return Err(ApiError::invalid(
            "owner_user_id",
            "not_on_program",
            "not an active user of the sponsor or of the program's CMO (while the two are connected)",
        ));
    }
    Ok(())
}

/// A list's `number=` filter as stored (upper case, trimmed), or 422 when it cannot be one
/// (more than 24 characters, or other than letters, digits and hyphens: as the schema says).
pub fn record_number_filter(number: Option<&str>) -> ApiResult<Option<String>> {
    match number.map(str::trim) {
        None => Ok(None),
        Some(n) if n.chars().count() > 24 => Err(crate::error::ApiError::invalid(
            "number",
            "too_long",
            "a record number has at most 24 characters, e.g. DEV-2026-0001",
        )),
        Some(n) if !n.chars().all(|c| c.is_ascii_alphanumeric() || c == '-') => {
            Err(crate::error::ApiError::invalid(
                "number",
                "invalid_format",
                "letters, digits and hyphens, e.g. DEV-2026-0001",
            ))
        }
        Some(n) => Ok(Some(n.to_uppercase())),
    }
}
