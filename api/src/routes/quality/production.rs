//! Production on hold and its release (a signed quality decision, SPEC §4), and the
//! program's quality summary.

use actix_web::{get, post, web};
use entity::audit_trail::{self, Entry};
use entity::deviation::{self};
use entity::domain_event::{Event, ProductionChanged};
use entity::program::{self, ProductionStatus};
use entity::{SignatureMeaning, SignedRecordType, signature};
use sea_orm::{ActiveValue::Set, ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter};
use serde::Deserialize;
use utoipa::ToSchema;

use crate::auth::{AuthContext, find_scoped, find_scoped_locked};
use crate::error::{ApiError, ApiResult};
use crate::routes::{ApiJson, Checks, Validate, compare_and_set, snapshot};
use crate::signing;
use crate::state::AppState;
use crate::views::plan::ProgramView;
use entity::signature::SignatureRecord;

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
        (status = 401, description = "Wrong signature password (`invalid_password`; audited)", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 403, description = "Only the sponsor's quality users release production", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such program visible to the caller", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 409, description = "Not on hold, a critical deviation is not yet under investigation, or no own signing password", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 429, description = "Too many failed password attempts; see Retry-After", body = crate::error::Problem, content_type = "application/problem+json")
    )
)]
#[post("/programs/{id}/production-release")]
pub async fn release_production(
    state: web::Data<AppState>,
    ctx: AuthContext,
    id: web::Path<i64>,
    body: ApiJson<ReleaseProduction>,
) -> ApiResult<web::Json<ProgramView>> {
    let b = body.into_inner();
    let program_id = id.into_inner();
    let prog = find_scoped::<program::Entity, _>(&state.db, &ctx, program_id).await?;
    if ctx.org_id() != prog.sides().sponsor_org_id
        || !signature::may_sign(
            ctx.user.role,
            SignedRecordType::ProductionRelease,
            SignatureMeaning::Approved,
        )
    {
        return Err(ApiError::Forbidden(
            "production is released by a quality user of the sponsor".to_string(),
        ));
    }
    check_release(&state.db, &prog).await?;
    let mut record = SignatureRecord {
        record_type: SignedRecordType::ProductionRelease,
        record_id: prog.id.to_string(),
        record_hash: String::new(),
        meaning: SignatureMeaning::Approved,
        reason: Some(b.reason.clone()),
    };
    signing::authenticate_signer(&state, &ctx, b.password, &record).await?;
    let now = state.clock.now();
    let txn = entity::db::begin_write(&state.db).await?;
    // Locked: a critical deviation reported meanwhile waits, then counts.
    let current = find_scoped_locked::<program::Entity, _>(&txn, &ctx, program_id).await?;
    check_release(&txn, &current).await?;
    let mut active: program::ActiveModel = current.clone().into();
    active.production_status = Set(ProductionStatus::Running);
    active.updated_at = Set(now);
    active.version = Set(current.version + 1);
    let released =
        compare_and_set::<program::Entity, _>(&txn, active, current.id, current.version).await?;
    record.record_hash = entity::audit::content_hash(&ProgramView::from(&released));
    entity::signature::record(&txn, &ctx.signer(), now, record).await?;
    audit_trail::append(
        &txn,
        &ctx.actor(now),
        Entry::new("program", released.id, "release_production")
            .before(snapshot(&ProgramView::from(&current)))
            .after(snapshot(&ProgramView::from(&released)))
            .reason(Some(b.reason.clone())),
    )
    .await?;
    entity::domain_event::emit(
        &txn,
        released.id,
        Event::ProductionReleased(ProductionChanged {
            program_id: released.id,
            production_status: released.production_status,
            reason: b.reason.clone(),
        }),
        now,
    )
    .await?;
    txn.commit().await?;
    Ok(web::Json(ProgramView::from(&released)))
}

async fn check_release<C: ConnectionTrait>(conn: &C, prog: &program::Model) -> ApiResult<()> {
    if prog.production_status != ProductionStatus::OnHold {
        return Err(ApiError::conflict(
            "not_on_hold",
            "production is not on hold",
        ));
    }
    let waiting = deviation::uninvestigated_critical_count(conn, prog.id).await?;
    if waiting > 0 {
        return Err(ApiError::conflict(
            "critical_deviation_not_investigated",
            format!("{waiting} critical deviation(s) are not yet under investigation"),
        ));
    }
    Ok(())
}

/// Quality numbers of a program: open deviations by criticality, counts by state, median
/// days to triage and to close, CAPA status and on-time closure rate.
#[utoipa::path(
    tag = "quality",
    params(("id" = i64, Path, description = "Program id")),
    responses(
        (status = 200, description = "The summary", body = entity::quality_summary::QualitySummary),
        (status = 404, description = "No such program visible to the caller", body = crate::error::Problem, content_type = "application/problem+json")
    )
)]
#[get("/programs/{id}/quality-summary")]
pub async fn quality_summary(
    state: web::Data<AppState>,
    ctx: AuthContext,
    id: web::Path<i64>,
) -> ApiResult<web::Json<entity::quality_summary::QualitySummary>> {
    let prog = find_scoped::<program::Entity, _>(&state.db, &ctx, id.into_inner()).await?;
    let deviations = deviation::Entity::find()
        .filter(deviation::Column::ProgramId.eq(prog.id))
        .all(&state.db)
        .await?;
    let capas = entity::capa::Entity::find()
        .filter(entity::capa::Column::ProgramId.eq(prog.id))
        .all(&state.db)
        .await?;
    let today = prog.today(state.clock.now());
    Ok(web::Json(entity::quality_summary::summarize(
        &deviations,
        &capas,
        today,
    )))
}
