//! Domain events for other tools (issue: integrations): one row per meaningful change,
//! written in the transaction of the change, with a cursor that increases in commit
//! order. The cursor comes from a single head row locked for the rest of the writing
//! transaction, so a transaction cannot take cursor N+1 before the one holding N has
//! committed: a reader paging with `after=` never skips an event that commits later.

use chrono::{DateTime, Utc};
use sea_orm::entity::prelude::*;
use sea_orm::sea_query::{Expr, ExprTrait};
use sea_orm::{ActiveValue::NotSet, ActiveValue::Set, ConnectionTrait, QuerySelect};

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "domain_events")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    #[sea_orm(unique)]
    pub cursor: i64,
    pub event_type: String,
    pub program_id: Option<i64>,
    /// Who may read it: the program's sponsor and CMO.
    pub sponsor_org_id: i64,
    pub cmo_org_id: Option<i64>,
    pub resource_type: String,
    pub resource_id: String,
    /// JSON object.
    pub payload: String,
    pub occurred_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}

pub mod head {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "domain_event_head")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub id: i32,
        pub last_cursor: i64,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

/// The event types, with what their payload carries.
pub const EVENT_TYPES: [&str; 14] = [
    "deviation.reported",
    "deviation.triaged",
    "deviation.closed",
    "deviation.transitioned",
    "production.held",
    "production.released",
    "escalation.opened",
    "escalation.acknowledged",
    "escalation.advanced",
    "escalation.resolved",
    "milestone.transitioned",
    "gate.decided",
    "capa.transitioned",
    "action_item.overdue",
];

/// Appends an event about a program's resource, in the caller's transaction, and queues
/// its webhook deliveries (to subscriptions of the program's sponsor and CMO).
pub async fn emit<C: ConnectionTrait>(
    conn: &C,
    program_id: i64,
    event_type: &str,
    resource_type: &str,
    resource_id: impl ToString,
    payload: serde_json::Value,
    at: DateTime<Utc>,
) -> Result<i64, DbErr> {
    let Some(prog) = crate::program::Entity::find_by_id(program_id)
        .one(conn)
        .await?
    else {
        return Err(DbErr::RecordNotFound(format!("program {program_id}")));
    };
    // Lock the head for the rest of this transaction (SQLite: the write lock already
    // serializes writers).
    let current = head::Entity::find_by_id(1)
        .lock_exclusive()
        .one(conn)
        .await?
        .ok_or_else(|| DbErr::RecordNotFound("domain event head".to_string()))?;
    let cursor = current.last_cursor + 1;
    head::Entity::update_many()
        .col_expr(
            head::Column::LastCursor,
            Expr::col(head::Column::LastCursor).add(1),
        )
        .filter(head::Column::Id.eq(1))
        .exec(conn)
        .await?;
    let event = ActiveModel {
        id: NotSet,
        cursor: Set(cursor),
        event_type: Set(event_type.to_string()),
        program_id: Set(Some(prog.id)),
        sponsor_org_id: Set(prog.sponsor_org_id),
        cmo_org_id: Set(Some(prog.cmo_org_id)),
        resource_type: Set(resource_type.to_string()),
        resource_id: Set(resource_id.to_string()),
        payload: Set(payload.to_string()),
        occurred_at: Set(at),
    }
    .insert(conn)
    .await?;
    // Webhook deliveries are queued with the event: committed together or not at all.
    crate::webhook::fan_out(
        conn,
        &[prog.sponsor_org_id, prog.cmo_org_id],
        event.id,
        cursor,
        event_type,
        at,
    )
    .await?;
    Ok(cursor)
}
