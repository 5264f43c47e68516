//! The project plan: programs, team, milestones, gates, action items, plan templates and the weekly digest preview.

pub mod actions;
pub mod audit_trail;
pub mod digest;
pub mod gate_decisions;
pub mod gates;
pub mod milestone_steps;
pub mod milestones;
pub mod programs;
pub mod team;
pub mod templates;

use chrono::{DateTime, NaiveDate, Utc};
use entity::access::may_update_plan;
use entity::{milestone, program};
use sea_orm::ConnectionTrait;

use crate::auth::{AuthContext, find_scoped};
use crate::error::ApiResult;
use crate::extract::Checks;
use crate::views::plan::{MilestoneView, dependencies_of, milestone as view};

pub(crate) async fn render_milestone<C: ConnectionTrait>(
    conn: &C,
    ctx: &AuthContext,
    prog: &program::Model,
    m: &milestone::Model,
    now: DateTime<Utc>,
) -> ApiResult<MilestoneView> {
    let deps = dependencies_of(conn, &[m.id])
        .await?
        .remove(&m.id)
        .unwrap_or_default();
    let may = may_update_plan(ctx.caller(), prog.sides(), m.owner_user_id);
    Ok(view(m, deps, prog.today(now), may))
}

/// A milestone as the caller sees it, reading its program.
pub(crate) async fn milestone_view<C: ConnectionTrait>(
    conn: &C,
    ctx: &AuthContext,
    m: &milestone::Model,
    now: DateTime<Utc>,
) -> ApiResult<MilestoneView> {
    let prog = find_scoped::<program::Entity, _>(conn, ctx, m.program_id).await?;
    render_milestone(conn, ctx, &prog, m, now).await
}

pub(crate) fn check_dates(
    c: &mut Checks,
    start_field: &str,
    start: NaiveDate,
    end_field: &str,
    end: NaiveDate,
) {
    if end < start {
        c.fail(
            end_field,
            "before_start",
            format!("must not be before {start_field}"),
        );
    }
    let span = end - start;
    if span.num_days() > 3660 {
        c.fail(
            end_field,
            "out_of_range",
            "a milestone spans at most ten years",
        );
    }
}
