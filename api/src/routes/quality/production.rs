//! Production on hold and its release (a signed quality decision, SPEC §4), and the
//! program's quality summary.

use actix_web::{HttpRequest, get, post, web};
use entity::deviation::{self};
use entity::program::{self};
use sea_orm::{ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter};
use serde::Deserialize;
use utoipa::ToSchema;

use crate::auth::{AuthContext, find_scoped};
use crate::error::ApiResult;
use crate::routes::{ApiJson, Checks, Validate};
use crate::state::AppState;
use crate::transition::{ApiStep, run_step};
use crate::views::EventOptions;
use crate::views::plan::ProgramView;
use actix_web::HttpResponse;
use entity::workflow::production as production_flow;

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"password": "quality assured passphrase", "reason": "root cause contained; bioburden back in limits for three batches"}))]
pub struct ReleaseProduction {
    /// The quality signer's password (e-signature).
    #[schema(min_length = 1, max_length = 256)]
    pub password: String,
    #[schema(min_length = 1, max_length = 500)]
    pub reason: String,
}

impl Validate for ReleaseProduction {
    fn validate(&self, c: &mut Checks) {
        c.signing_password("password", &self.password);
        c.text("reason", &self.reason, 1, 500);
    }
}

/// Release a program's production hold: a quality user of the sponsor signs it. Refused
/// while any critical deviation on the program is not yet under investigation.
#[utoipa::path(
    tag = "quality",
    params(("id" = i64, Path, description = "Program id")),
    request_body = ReleaseProduction,
    responses(
        (status = 200, description = "Production running again", body = ProgramView),
        (status = 401, description = "Wrong signature password (`invalid_password`; audited)", body = crate::error::Problem),
        (status = 403, description = "Only the sponsor's quality users release production", body = crate::error::Problem),
        (status = 404, description = "No such program visible to the caller", body = crate::error::Problem),
        (status = 409, description = "Not on hold, a critical deviation is not yet under investigation, or no own signing password", body = crate::error::Problem),
        (status = 429, description = "Too many failed password attempts; see Retry-After", body = crate::error::Problem)
    )
)]
#[post("/programs/{id}/production-release")]
pub async fn release_production(
    req: HttpRequest,
    state: web::Data<AppState>,
    ctx: AuthContext,
    id: web::Path<i64>,
    body: ApiJson<ReleaseProduction>,
) -> ApiResult<HttpResponse> {
    let b = body.into_inner();
    let step = production_flow::Release { reason: b.reason };
    run_step(
        &state,
        &ctx,
        &req,
        id.into_inner(),
        step,
        Some(b.password),
        None,
    )
    .await
}

impl ApiStep for production_flow::Release {
    type View = ProgramView;
    /// The program's answer carries no production events: a refused release names the
    /// deviations it waits for.
    const OFFERS_EVENTS: bool = false;
    fn offer(_: &mut ProgramView, _: EventOptions<entity::workflow::production::ProductionEvent>) {}
    /// Who may take steps on this record at all (403 before anything else).
    async fn may_step(
        _conn: &impl ConnectionTrait,
        ctx: &AuthContext,
        p: &Self::Model,
    ) -> ApiResult<()> {
        ctx.permit(entity::access::Action::ReleaseProduction, p.sides())
    }
    async fn view(
        _conn: &impl ConnectionTrait,
        _ctx: &AuthContext,
        p: &program::Model,
        _now: chrono::DateTime<chrono::Utc>,
    ) -> ApiResult<ProgramView> {
        Ok(ProgramView::from(p))
    }
}

/// Quality numbers of a program: open deviations by criticality, counts by state, median
/// days to triage and to close, CAPA status and on-time closure rate.
#[utoipa::path(
    tag = "quality",
    params(("id" = i64, Path, description = "Program id")),
    responses(
        (status = 200, description = "The summary", body = entity::quality_summary::QualitySummary),
        (status = 404, description = "No such program visible to the caller", body = crate::error::Problem)
    )
)]
#[get("/programs/{id}/quality-summary")]
pub async fn quality_summary(
    state: web::Data<AppState>,
    ctx: AuthContext,
    id: web::Path<i64>,
) -> ApiResult<web::Json<entity::quality_summary::QualitySummary>> {
    let prog = find_scoped::<program::Entity, _>(&state.reads, &ctx, id.into_inner()).await?;
    let deviations = deviation::Entity::find()
        .filter(deviation::Column::ProgramId.eq(prog.id))
        .all(&state.reads)
        .await?;
    let capas = entity::capa::Entity::find()
        .filter(entity::capa::Column::ProgramId.eq(prog.id))
        .all(&state.reads)
        .await?;
    let today = prog.today(state.clock.now());
    Ok(web::Json(entity::quality_summary::summarize(
        &deviations,
        &capas,
        today,
    )))
}
