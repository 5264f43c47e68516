//! Escalations: opened at once for every critical or major deviation (and by API for
//! anything urgent). Paging tiers and acknowledgement come with the escalation work;
//! here is the one function every opener calls.

use chrono::{DateTime, Utc};
use sea_orm::entity::prelude::*;
use sea_orm::{ActiveValue::NotSet, ActiveValue::Set, ConnectionTrait};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

#[derive(
    Debug, Clone, Copy, PartialEq, Eq, EnumIter, DeriveActiveEnum, Serialize, Deserialize, ToSchema,
)]
#[sea_orm(rs_type = "String", db_type = "String(StringLen::N(16))")]
#[serde(rename_all = "snake_case")]
pub enum EscalationStatus {
    #[sea_orm(string_value = "open")]
    Open,
    #[sea_orm(string_value = "acknowledged")]
    Acknowledged,
    #[sea_orm(string_value = "resolved")]
    Resolved,
}

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "escalations")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    pub program_id: i64,
    /// What caused it: `deviation`, or `manual`.
    pub source_type: String,
    pub source_id: Option<i64>,
    pub reason: String,
    pub status: EscalationStatus,
    pub opened_at: DateTimeUtc,
    pub resolved_at: Option<DateTimeUtc>,
    pub version: i32,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}

/// Opens an escalation, in the caller's transaction.
pub async fn open<C: ConnectionTrait>(
    conn: &C,
    program_id: i64,
    source_type: &str,
    source_id: Option<i64>,
    reason: &str,
    now: DateTime<Utc>,
) -> Result<Model, DbErr> {
    ActiveModel {
        id: NotSet,
        program_id: Set(program_id),
        source_type: Set(source_type.to_string()),
        source_id: Set(source_id),
        reason: Set(reason.to_string()),
        status: Set(EscalationStatus::Open),
        opened_at: Set(now),
        resolved_at: Set(None),
        version: Set(1),
    }
    .insert(conn)
    .await
}

/// Resolves the escalations a source caused (its cause was dealt with); returns the
/// ones this call resolved, for the caller to audit.
pub async fn resolve_for<C: ConnectionTrait>(
    conn: &C,
    source_type: &str,
    source_id: i64,
    now: DateTime<Utc>,
) -> Result<Vec<Model>, DbErr> {
    use sea_orm::sea_query::{Expr, ExprTrait};
    use sea_orm::{ActiveEnum, QueryFilter};
    let open = Entity::find()
        .filter(Column::SourceType.eq(source_type))
        .filter(Column::SourceId.eq(source_id))
        .filter(Column::Status.ne(EscalationStatus::Resolved))
        .all(conn)
        .await?;
    let mut resolved = Vec::with_capacity(open.len());
    for e in open {
        // Compare-and-set: an acknowledgement racing this one is not overwritten.
        let res = Entity::update_many()
            .col_expr(
                Column::Status,
                Expr::value(EscalationStatus::Resolved.to_value()),
            )
            .col_expr(Column::ResolvedAt, Expr::value(now))
            .col_expr(Column::Version, Expr::col(Column::Version).add(1))
            .filter(Column::Id.eq(e.id))
            .filter(Column::Version.eq(e.version))
            .exec(conn)
            .await?;
        if res.rows_affected == 1 {
            resolved.push(e);
        }
    }
    Ok(resolved)
}
