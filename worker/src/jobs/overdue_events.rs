//! `action_item.overdue` domain events: once an open action item is past its due date
//! in its program's time zone (and not snoozed through today), one event is emitted for
//! that due date. Moving the due date makes the item eligible again. Safe with several
//! workers: the mark on the item is a compare-and-set in the event's transaction.

use entity::domain_event::{ActionItemOverdue, Event};
use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use entity::action_item::{self, ActionStatus};
use entity::{program, schedule};
use sea_orm::sea_query::{Expr, ExprTrait};
use sea_orm::{ColumnTrait, Condition, EntityTrait, QueryFilter};

use super::{JobContext, JobError};

#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct OverdueReport {
    pub emitted: usize,
}

/// Events per transaction.
const CHUNK: usize = 200;

pub async fn overdue_events(
    ctx: &JobContext,
    now: DateTime<Utc>,
) -> Result<OverdueReport, JobError> {
    // Tomorrow's UTC date bounds "today" in every zone; the (status, due_date) index
    // keeps the scan to items already past due somewhere.
    let bound = now.date_naive().succ_opt().unwrap_or(now.date_naive());
    let candidates = action_item::Entity::find()
        .filter(action_item::Column::Status.is_in([ActionStatus::Open, ActionStatus::InProgress]))
        .filter(action_item::Column::DueDate.lt(bound))
        .filter(
            Condition::any()
                .add(action_item::Column::OverdueEventFor.is_null())
                .add(
                    Expr::col(action_item::Column::OverdueEventFor)
                        .ne(Expr::col(action_item::Column::DueDate)),
                ),
        )
        .all(&ctx.db)
        .await?;
    let mut report = OverdueReport::default();
    if candidates.is_empty() {
        return Ok(report);
    }
    let zones: BTreeMap<i64, chrono_tz::Tz> = program::Entity::find()
        .filter(program::Column::Id.is_in(candidates.iter().map(|a| a.program_id)))
        .all(&ctx.db)
        .await?
        .into_iter()
        .map(|p| (p.id, schedule::zone(&p.time_zone)))
        .collect();
    let overdue: Vec<(action_item::Model, i64)> = candidates
        .into_iter()
        .filter_map(|a| {
            let today = now.with_timezone(zones.get(&a.program_id)?).date_naive();
            action_item::is_overdue(a.status, a.due_date, a.snoozed_until, today).then(|| {
                let days = action_item::days_overdue(a.due_date, today);
                (a, days)
            })
        })
        .collect();
    for chunk in overdue.chunks(CHUNK) {
        let txn = entity::db::begin_write(&ctx.db).await?;
        for (a, days) in chunk {
            let marked = action_item::Entity::update_many()
                .col_expr(
                    action_item::Column::OverdueEventFor,
                    Expr::value(a.due_date),
                )
                .filter(action_item::Column::Id.eq(a.id))
                .filter(action_item::Column::DueDate.eq(a.due_date))
                .filter(
                    Condition::any()
                        .add(action_item::Column::OverdueEventFor.is_null())
                        .add(action_item::Column::OverdueEventFor.ne(a.due_date)),
                )
                .exec(&txn)
                .await?;
            if marked.rows_affected != 1 {
                continue;
            }
            entity::domain_event::emit(
                &txn,
                a.program_id,
                Event::ActionItemOverdue(ActionItemOverdue {
                    action_item_id: a.id,
                    title: a.title.clone(),
                    owner_user_id: a.owner_user_id,
                    due_date: a.due_date,
                    days_overdue: *days,
                    source: a.source,
                    source_id: a.source_id,
                }),
                now,
            )
            .await?;
            report.emitted += 1;
        }
        txn.commit().await?;
    }
    Ok(report)
}
