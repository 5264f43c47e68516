//! A sponsor's qualification of a CMO (SPEC §7), through the one transition engine. Kept
//! on the sponsor's relationship with the CMO: each sponsor qualifies on its own.

use actix_web::{HttpRequest, post, web};
use entity::cmo::{self, QualificationEvent};
use entity::relationship;
use sea_orm::ConnectionTrait;
use serde::Deserialize;
use utoipa::ToSchema;

use super::{own_relationship, require_sponsor_side};
use crate::auth::{AuthContext, find_scoped};
use crate::error::{ApiError, ApiResult};
use crate::extract::{ApiJson, Checks, Validate};
use crate::state::AppState;
use crate::transition::{ApiStep, run_step};
use crate::views::partners::{CmoView, cmos as render};
use crate::views::{EventOptions, Offers};
use actix_web::HttpResponse;
use entity::workflow::qualification as qualification_flow;

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"event": "approve", "reason": "audit 2026-10 passed; quality agreement signed",
    "password": "correct horse battery staple", "version": 3}))]
pub struct QualificationTransition {
    pub event: QualificationEvent,
    /// Required for probation, reinstate, disqualify and re-evaluate.
    #[schema(min_length = 1, max_length = 2000)]
    pub reason: Option<String>,
    /// Your signing password: approval and disqualification are e-signed by quality.
    #[schema(min_length = 1, max_length = 256)]
    pub password: Option<String>,
    /// The `qualification_version` you read.
    pub version: Option<i32>,
}

impl Validate for QualificationTransition {
    fn validate(&self, c: &mut Checks) {
        c.optional_text("reason", self.reason.as_deref(), 1, 2_000);
        c.optional_signing_password("password", self.password.as_deref());
    }
}

/// Move a CMO through qualification: `start_evaluation`, `qualify`, `approve` (signed),
/// `probation`, `reinstate`, `disqualify` (signed), `reevaluate`. Decisions of the
/// connected sponsor, about its own relationship: another sponsor connected to the same
/// CMO neither sees nor changes them.
#[utoipa::path(
    tag = "partners",
    params(
        ("id" = i64, Path, description = "The CMO's organization id"),
        ("If-Match" = Option<String>, Header, pattern = r#"^(W/)?"?[0-9]{1,9}"?$"#, description = "Version the caller saw (optional; alternative to `version` in the body)")
    ),
    request_body = QualificationTransition,
    responses(
        (status = 200, description = "The profile in its new state", body = CmoView),
        (status = 401, description = "Wrong signature password (`invalid_password`; audited)", body = crate::error::Problem),
        (status = 403, description = "Not the sponsor's quality/program manager/admin, or not quality for a signed decision", body = crate::error::Problem),
        (status = 404, description = "No such CMO visible to the caller", body = crate::error::Problem),
        (status = 409, description = "Illegal event (`current_state`, `allowed_events`), stale version, or no own signing password", body = crate::error::Problem),
        (status = 429, description = "Too many failed password attempts; see Retry-After", body = crate::error::Problem)
    )
)]
#[post("/cmos/{id}/qualification")]
pub async fn transition_qualification(
    req: HttpRequest,
    state: web::Data<AppState>,
    ctx: AuthContext,
    id: web::Path<i64>,
    body: ApiJson<QualificationTransition>,
) -> ApiResult<HttpResponse> {
    let b = body.into_inner();
    let p = find_scoped::<cmo::Entity, _>(&state.db, &ctx, id.into_inner()).await?;
    let rel = own_relationship(&state.db, &ctx, p.org_id).await?;
    require_sponsor_side(&ctx, rel.as_ref(), "qualification is decided")?;
    let rel_id = rel.map(|r| r.id).ok_or(ApiError::NotFound)?;
    let step = qualification_flow::Step {
        event: b.event,
        reason: b.reason,
    };
    run_step(&state, &ctx, &req, rel_id, step, b.password, b.version).await
}

impl ApiStep for qualification_flow::Step {
    type View = CmoView;
    fn offer(view: &mut Self::View, options: EventOptions<Self::Event>) {
        view.offer(options);
    }
    /// Who may take steps on this record at all (403 before anything else).
    async fn may_step(
        _conn: &impl ConnectionTrait,
        ctx: &AuthContext,
        p: &Self::Model,
    ) -> ApiResult<()> {
        require_sponsor_side(ctx, Some(p), "qualification is decided")
    }
    async fn view(
        conn: &impl ConnectionTrait,
        ctx: &AuthContext,
        r: &relationship::Model,
        _now: chrono::DateTime<chrono::Utc>,
    ) -> ApiResult<CmoView> {
        let profile = find_scoped::<cmo::Entity, _>(conn, ctx, r.cmo_org_id).await?;
        render(
            conn,
            std::slice::from_ref(&profile),
            std::slice::from_ref(r),
        )
        .await?
        .pop()
        .ok_or(ApiError::NotFound)
    }
}
