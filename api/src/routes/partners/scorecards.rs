//! Scorecards of a CMO and of a program (SPEC §7): on-time delivery, deviations, CAPA.

use actix_web::{get, web};
use chrono::NaiveDate;
use entity::cmo::{self};
use sea_orm::{ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter};
use serde::Deserialize;
use utoipa::IntoParams;

use crate::auth::{AuthContext, find_scoped};
use crate::error::ApiResult;
use crate::extract::Checks;
use crate::state::AppState;
use crate::views::partners::ScorecardView;

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct ScorecardQuery {
    /// First day of the window (default: 90 days before `to`).
    #[param(example = "2026-01-01")]
    pub from: Option<NaiveDate>,
    /// Last day of the window, inclusive (default: today, UTC).
    #[param(example = "2026-12-31")]
    pub to: Option<NaiveDate>,
}

fn window(q: &ScorecardQuery, today: NaiveDate) -> ApiResult<entity::scorecard::Window> {
    let to = q.to.unwrap_or(today);
    // Checked: `to` is not range-checked yet, and NaiveDate::MIN - 90 days would panic.
    let from = q.from.unwrap_or_else(|| {
        to.checked_sub_signed(chrono::TimeDelta::days(90))
            .unwrap_or(to)
    });
    let mut c = Checks::default();
    c.date("from", from);
    c.date("to", to);
    if from > to {
        c.fail("from", "after_to", "from must not be after to");
    } else if (to - from).num_days() > 3660 {
        c.fail("from", "out_of_range", "the window is at most ten years");
    }
    c.finish()?;
    Ok(entity::scorecard::Window { from, to })
}

/// The KPIs of a set of programs over a window, computed by `entity::scorecard`.
async fn scorecard_of<C: ConnectionTrait>(
    conn: &C,
    program_ids: &[i64],
    w: entity::scorecard::Window,
    today: NaiveDate,
) -> ApiResult<entity::scorecard::Scorecard> {
    use entity::{action_item, capa, deviation, escalation, milestone};
    let start = w.from.and_hms_opt(0, 0, 0).unwrap_or_default().and_utc();
    let end = (w.to + chrono::TimeDelta::days(1))
        .and_hms_opt(0, 0, 0)
        .unwrap_or_default()
        .and_utc();
    let mut milestones = Vec::new();
    let mut deviations = Vec::new();
    let mut capas = Vec::new();
    let mut escalations = Vec::new();
    let mut actions = Vec::new();
    // Bounded IN lists; each query is indexed by program.
    for ids in program_ids.chunks(500) {
        let ids = ids.to_vec();
        milestones.extend(
            milestone::Entity::find()
                .filter(milestone::Column::ProgramId.is_in(ids.clone()))
                .filter(milestone::Column::BaselineEnd.between(w.from, w.to))
                .all(conn)
                .await?,
        );
        deviations.extend(
            deviation::Entity::find()
                .filter(deviation::Column::ProgramId.is_in(ids.clone()))
                .filter(deviation::Column::DetectedAt.gte(start))
                .filter(deviation::Column::DetectedAt.lt(end))
                .all(conn)
                .await?,
        );
        capas.extend(
            capa::Entity::find()
                .filter(capa::Column::ProgramId.is_in(ids.clone()))
                .all(conn)
                .await?,
        );
        escalations.extend(
            escalation::Entity::find()
                .filter(escalation::Column::ProgramId.is_in(ids.clone()))
                .filter(escalation::Column::OpenedAt.gte(start))
                .filter(escalation::Column::OpenedAt.lt(end))
                .all(conn)
                .await?,
        );
        actions.extend(
            action_item::Entity::find()
                .filter(action_item::Column::ProgramId.is_in(ids))
                .filter(action_item::Column::Status.is_in([
                    action_item::ActionStatus::Open,
                    action_item::ActionStatus::InProgress,
                ]))
                .filter(action_item::Column::DueDate.lt(today))
                .all(conn)
                .await?,
        );
    }
    Ok(entity::scorecard::compute(
        &entity::scorecard::Inputs {
            milestones: &milestones,
            deviations: &deviations,
            capas: &capas,
            escalations: &escalations,
            action_items: &actions,
        },
        w,
        today,
    ))
}

/// A CMO's KPI scorecard: for a sponsor, over its own programs with the CMO (another
/// sponsor's never count); for the CMO itself, over all of its programs. Others get 404.
#[utoipa::path(
    tag = "partners",
    params(("id" = i64, Path, description = "The CMO's organization id"), ScorecardQuery),
    responses(
        (status = 200, description = "The scorecard", body = ScorecardView),
        (status = 404, description = "No such CMO visible to the caller", body = crate::error::Problem)
    )
)]
#[get("/cmos/{id}/scorecard")]
pub async fn cmo_scorecard(
    state: web::Data<AppState>,
    ctx: AuthContext,
    id: web::Path<i64>,
    query: web::Query<ScorecardQuery>,
) -> ApiResult<web::Json<ScorecardView>> {
    let p = find_scoped::<cmo::Entity, _>(&state.reads, &ctx, id.into_inner()).await?;
    let today = state.clock.now().date_naive();
    let w = window(&query, today)?;
    // A sponsor's scorecard counts its own programs with the CMO; the CMO's own, all of
    // the programs it sees (not those of a sponsor whose connection ended).
    let mut programs =
        entity::program::Entity::find().filter(entity::program::Column::CmoOrgId.eq(p.org_id));
    if ctx.org_id() != p.org_id {
        programs = programs.filter(entity::program::Column::SponsorOrgId.eq(ctx.org_id()));
    } else {
        programs = programs.filter(entity::program::visible_to(ctx.org_id()));
    }
    let programs: Vec<i64> = programs
        .all(&state.reads)
        .await?
        .into_iter()
        .map(|p| p.id)
        .collect();
    let kpis = scorecard_of(&state.reads, &programs, w, today).await?;
    Ok(web::Json(ScorecardView {
        cmo_org_id: p.org_id,
        program_id: None,
        programs: programs.len(),
        from: w.from,
        to: w.to,
        kpis,
    }))
}

/// One program's KPI scorecard.
#[utoipa::path(
    tag = "partners",
    params(("id" = i64, Path, description = "Program id"), ScorecardQuery),
    responses(
        (status = 200, description = "The scorecard", body = ScorecardView),
        (status = 404, description = "No such program visible to the caller", body = crate::error::Problem)
    )
)]
#[get("/programs/{id}/scorecard")]
pub async fn program_scorecard(
    state: web::Data<AppState>,
    ctx: AuthContext,
    id: web::Path<i64>,
    query: web::Query<ScorecardQuery>,
) -> ApiResult<web::Json<ScorecardView>> {
    let prog =
        find_scoped::<entity::program::Entity, _>(&state.reads, &ctx, id.into_inner()).await?;
    let today = state.clock.now().date_naive();
    let w = window(&query, today)?;
    let kpis = scorecard_of(&state.reads, &[prog.id], w, today).await?;
    Ok(web::Json(ScorecardView {
        cmo_org_id: prog.cmo_org_id,
        program_id: Some(prog.id),
        programs: 1,
        from: w.from,
        to: w.to,
        kpis,
    }))
}
