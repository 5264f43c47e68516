//! CMO selection (SPEC §7): a bid tab with weighted criteria, candidate CMOs scored 1–5
//! per criterion with notes and scorer, the weighted ranking with its breakdown, a CSV
//! export, and the decision recorded with an e-signature. The sponsor's own: CMOs never
//! see an evaluation.

use std::collections::BTreeMap;

use actix_web::{HttpRequest, HttpResponse, get, post, web};
use entity::audit_trail::{self, Entry};
use entity::selection::{self, Criterion, EvaluationStatus, score};
use entity::{OrgKind, SignatureMeaning, SignedRecordType, cmo, signature};
use sea_orm::sea_query::OnConflict;
use sea_orm::{
    ActiveValue::NotSet, ActiveValue::Set, ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter,
};
use serde::Deserialize;
use utoipa::ToSchema;

use crate::auth::{AuthContext, TenantScoped, find_scoped, scoped};
use crate::error::{ApiError, ApiResult};
use crate::extract::{ApiJson, Checks, Validate};
use crate::pagination::{Keyset, Page, Paging, fetch_page};
use crate::state::AppState;
use crate::transition::answer;
use crate::transition::{ApiStep, run_step};
use crate::views::partners::{EvaluationView, candidates_of, criteria_of, evaluation as render};
use crate::views::{EventOptions, Offers};
use crate::write::insert_audited;
use crate::write_txn::WriteTxn;
use actix_web::http::StatusCode;
use entity::workflow::selection as selection_flow;

impl TenantScoped for selection::Entity {
    fn tenant_condition(ctx: &AuthContext) -> sea_orm::Condition {
        sea_orm::Condition::all().add(selection::Column::SponsorOrgId.eq(ctx.org_id()))
    }
}

fn sponsor_manager(ctx: &AuthContext) -> ApiResult<()> {
    if ctx.org.kind != OrgKind::Sponsor || !ctx.user.role.handles_quality_records() {
        return Err(ApiError::Forbidden(
            "selections are run by the sponsor's program managers, quality and admins".to_string(),
        ));
    }
    Ok(())
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"title": "Fill-finish partner for ACM-101", "candidates": [2, 3]}))]
pub struct CreateEvaluation {
    /// 1 to 200 characters, not only spaces.
    #[schema(min_length = 1, max_length = 200, pattern = r"\S")]
    pub title: String,
    pub program_id: Option<i64>,
    /// Default: the SPEC's ten criteria (regulatory track record 15, quality systems 15,
    /// technical fit 15, capacity 10, tech transfer 10, supply chain 10, communication 5,
    /// financial stability 5, cost 10, timeline 5). Weights must sum to 100.
    pub criteria: Option<Vec<Criterion>>,
    /// CMO organization ids registered by your organization (1 to 20).
    #[schema(min_items = 1, max_items = 20)]
    pub candidates: Vec<i64>,
}

impl Validate for CreateEvaluation {
    fn validate(&self, c: &mut Checks) {
        c.text("title", &self.title, 1, 200);
        if let Some(criteria) = &self.criteria {
            for (field, message) in selection::validate_criteria(criteria) {
                c.fail(&field, "invalid", message);
            }
        }
        if self.candidates.is_empty() || self.candidates.len() > 20 {
            c.fail(
                "candidates",
                "out_of_range",
                "1 to 20 candidate CMO organization ids, e.g. [2, 5]",
            );
        }
    }
}

/// Open a selection (bid tab) among registered CMOs.
#[utoipa::path(
    tag = "partners",
    request_body = CreateEvaluation,
    responses(
        (status = 201, description = "The evaluation", body = EvaluationView),
        (status = 403, description = "Not the sponsor's program managers, quality or admins", body = crate::error::Problem),
        (status = 422, description = "Invalid fields (weights not summing to 100, unknown candidates)", body = crate::error::Problem)
    )
)]
#[post("/evaluations")]
pub async fn create_evaluation(
    state: web::Data<AppState>,
    ctx: AuthContext,
    body: ApiJson<CreateEvaluation>,
) -> ApiResult<HttpResponse> {
    let b = body.into_inner();
    sponsor_manager(&ctx)?;
    let txn = WriteTxn::begin(&state, &ctx).await?;
    let mut candidates: Vec<i64> = Vec::new();
    for c in &b.candidates {
        if !candidates.contains(c) {
            candidates.push(*c);
        }
    }
    let known = cmo::Entity::find()
        .filter(
            cmo::Column::OrgId.in_subquery(entity::relationship::connected_cmos_of(ctx.org_id())),
        )
        .filter(cmo::Column::OrgId.is_in(candidates.clone()))
        .all(&txn)
        .await?;
    if known.len() != candidates.len() {
        return Err(ApiError::invalid(
            "candidates",
            "unknown_cmo",
            "every candidate must be a CMO your organization is connected to",
        ));
    }
    if let Some(p) = b.program_id {
        find_scoped::<entity::program::Entity, _>(&txn, &ctx, p)
            .await
            .map_err(|_| ApiError::invalid("program_id", "unknown_program", "no such program"))?;
    }
    let now = state.clock.now();
    let (_, view) = insert_audited(
        &txn,
        &ctx.actor(now),
        "evaluation",
        selection::ActiveModel {
            id: NotSet,
            sponsor_org_id: Set(ctx.org_id()),
            title: Set(b.title.trim().to_string()),
            program_id: Set(b.program_id),
            criteria: Set(serde_json::to_string(
                &b.criteria.unwrap_or_else(selection::default_criteria),
            )
            .map_err(ApiError::internal)?),
            candidates: Set(serde_json::to_string(&candidates).map_err(ApiError::internal)?),
            status: Set(EvaluationStatus::Open),
            decision_cmo_org_id: Set(None),
            decision_reason: Set(None),
            decision_signature_id: Set(None),
            decided_at: Set(None),
            created_at: Set(now),
            updated_at: Set(now),
            version: Set(1),
        },
        async |e| Ok(render(&txn, e).await?),
    )
    .await?;
    txn.respond(StatusCode::CREATED, &view).await
}

/// The sponsor's evaluations, newest first.
#[utoipa::path(
    tag = "partners",
    params(Paging),
    responses(
        (status = 200, description = "One page of evaluations, newest first", body = Page<EvaluationView>),
        (status = 422, description = "Invalid limit or offset", body = crate::error::Problem)
    )
)]
#[get("/evaluations")]
pub async fn list_evaluations(
    state: web::Data<AppState>,
    ctx: AuthContext,
    paging: web::Query<Paging>,
) -> ApiResult<web::Json<Page<EvaluationView>>> {
    let select = scoped::<selection::Entity>(&ctx);
    let newest_first = Keyset::desc([selection::Column::Id]);
    let page = fetch_page(&state.reads, select, newest_first, &paging).await?;
    let mut items = Vec::with_capacity(page.items.len());
    for e in &page.items {
        items.push(render(&state.reads, e).await?);
    }
    Ok(web::Json(page.with_items(items)))
}

/// One evaluation with its scores and the weighted ranking.
#[utoipa::path(
    tag = "partners",
    params(("id" = i64, Path, description = "Evaluation id")),
    responses(
        (status = 200, description = "The evaluation", body = EvaluationView),
        (status = 404, description = "No such evaluation visible to the caller", body = crate::error::Problem)
    )
)]
#[get("/evaluations/{id}")]
pub async fn get_evaluation(
    state: web::Data<AppState>,
    ctx: AuthContext,
    id: web::Path<i64>,
) -> ApiResult<web::Json<EvaluationView>> {
    let e = find_scoped::<selection::Entity, _>(&state.reads, &ctx, id.into_inner()).await?;
    let now = state.clock.now();
    Ok(web::Json(
        answer::<selection_flow::Decide>(&state.reads, &ctx, &e, now).await?,
    ))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"cmo_org_id": 2, "criterion": "quality_systems", "score": 4, "notes": "mature CAPA process"}))]
pub struct GiveScore {
    pub cmo_org_id: i64,
    #[schema(pattern = "^[a-z0-9_]{1,40}$")]
    pub criterion: String,
    /// 1 (poor) to 5 (excellent).
    #[schema(minimum = 1, maximum = 5, example = 4)]
    pub score: i32,
    #[schema(min_length = 1, max_length = 2000)]
    pub notes: Option<String>,
}

impl Validate for GiveScore {
    fn validate(&self, c: &mut Checks) {
        if !(1..=5).contains(&self.score) {
            c.fail(
                "score",
                "out_of_range",
                "a whole number from 1 (poor) to 5 (excellent), e.g. 4",
            );
        }
        c.optional_text("notes", self.notes.as_deref(), 1, 2_000);
    }
}

/// Score a candidate on a criterion (your own score; scoring again replaces it).
#[utoipa::path(
    tag = "partners",
    params(("id" = i64, Path, description = "Evaluation id")),
    request_body = GiveScore,
    responses(
        (status = 200, description = "The evaluation with the new ranking", body = EvaluationView),
        (status = 403, description = "Not the sponsor's program managers, quality or admins", body = crate::error::Problem),
        (status = 404, description = "No such evaluation visible to the caller", body = crate::error::Problem),
        (status = 409, description = "The evaluation is decided", body = crate::error::Problem),
        (status = 422, description = "Unknown candidate or criterion, or a score outside 1–5", body = crate::error::Problem)
    )
)]
#[post("/evaluations/{id}/scores")]
pub async fn give_score(
    state: web::Data<AppState>,
    ctx: AuthContext,
    id: web::Path<i64>,
    body: ApiJson<GiveScore>,
) -> ApiResult<HttpResponse> {
    let b = body.into_inner();
    sponsor_manager(&ctx)?;
    let txn = WriteTxn::begin(&state, &ctx).await?;
    let e = find_scoped::<selection::Entity, _>(&txn, &ctx, id.into_inner()).await?;
    if e.status != EvaluationStatus::Open {
        return Err(ApiError::conflict(
            "evaluation_decided",
            "the evaluation is decided; scores are frozen",
        ));
    }
    let mut c = Checks::default();
    if !candidates_of(&e).contains(&b.cmo_org_id) {
        c.fail(
            "cmo_org_id",
            "unknown_candidate",
            "not a candidate of this evaluation",
        );
    }
    if !criteria_of(&e).iter().any(|k| k.key == b.criterion) {
        c.fail(
            "criterion",
            "unknown_criterion",
            "not a criterion of this evaluation",
        );
    }
    c.finish()?;
    let now = state.clock.now();
    score::Entity::insert(score::ActiveModel {
        id: NotSet,
        evaluation_id: Set(e.id),
        cmo_org_id: Set(b.cmo_org_id),
        criterion: Set(b.criterion.clone()),
        scorer_user_id: Set(ctx.user.id),
        score: Set(b.score),
        notes: Set(b.notes.clone()),
        scored_at: Set(now),
    })
    .on_conflict(
        OnConflict::columns([
            score::Column::EvaluationId,
            score::Column::CmoOrgId,
            score::Column::Criterion,
            score::Column::ScorerUserId,
        ])
        .update_columns([
            score::Column::Score,
            score::Column::Notes,
            score::Column::ScoredAt,
        ])
        .to_owned(),
    )
    .exec_without_returning(&txn)
    .await?;
    audit_trail::append(
        &txn,
        &ctx.actor(now),
        Entry::new("evaluation", e.id, "score").after(serde_json::json!({
            "cmo_org_id": b.cmo_org_id, "criterion": b.criterion, "score": b.score, "notes": b.notes,
        })),
    )
    .await?;
    let view = render(&txn, &e).await?;
    txn.respond(StatusCode::OK, &view).await
}

impl ApiStep for selection_flow::Decide {
    type View = EvaluationView;
    fn offer(view: &mut Self::View, options: EventOptions<Self::Event>) {
        view.offer(options);
    }
    /// Who may take steps on this record at all (403 before anything else).
    async fn may_step(
        _conn: &impl ConnectionTrait,
        ctx: &AuthContext,
        _record: &Self::Model,
    ) -> ApiResult<()> {
        ctx.require(
            ctx.org.kind == OrgKind::Sponsor
                && signature::may_sign(
                    ctx.user.role,
                    SignedRecordType::SelectionDecision,
                    SignatureMeaning::Approved,
                ),
            signature::who_signs(SignedRecordType::SelectionDecision),
        )
    }
    async fn view(
        conn: &impl ConnectionTrait,
        _ctx: &AuthContext,
        e: &selection::Model,
        _now: chrono::DateTime<chrono::Utc>,
    ) -> ApiResult<EvaluationView> {
        render(conn, e).await
    }
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"cmo_org_id": 2, "reason": "best weighted score; capacity reserved for 2027",
    "password": "correct horse battery staple", "version": 5}))]
pub struct DecideEvaluation {
    pub cmo_org_id: i64,
    #[schema(min_length = 1, max_length = 2000)]
    pub reason: String,
    /// Your signing password (program managers and quality sign the selection).
    #[schema(min_length = 1, max_length = 256)]
    pub password: Option<String>,
    pub version: Option<i32>,
}

impl Validate for DecideEvaluation {
    fn validate(&self, c: &mut Checks) {
        c.text("reason", &self.reason, 1, 2_000);
        c.optional_signing_password("password", self.password.as_deref());
    }
}

/// Record the selection, e-signed by a sponsor program manager or quality user.
#[utoipa::path(
    tag = "partners",
    params(
        ("id" = i64, Path, description = "Evaluation id"),
        ("If-Match" = Option<String>, Header, pattern = r#"^(W/)?"?[0-9]{1,9}"?$"#, description = "Version the caller saw (optional; alternative to `version` in the body)")
    ),
    request_body = DecideEvaluation,
    responses(
        (status = 200, description = "Decided", body = EvaluationView),
        (status = 401, description = "Wrong signature password (`invalid_password`; audited)", body = crate::error::Problem),
        (status = 403, description = "Not a sponsor program manager or quality user", body = crate::error::Problem),
        (status = 404, description = "No such evaluation visible to the caller", body = crate::error::Problem),
        (status = 409, description = "Already decided, stale version, or no own signing password", body = crate::error::Problem),
        (status = 422, description = "Not a candidate", body = crate::error::Problem),
        (status = 429, description = "Too many failed password attempts; see Retry-After", body = crate::error::Problem)
    )
)]
#[post("/evaluations/{id}/decision")]
pub async fn decide_evaluation(
    req: HttpRequest,
    state: web::Data<AppState>,
    ctx: AuthContext,
    id: web::Path<i64>,
    body: ApiJson<DecideEvaluation>,
) -> ApiResult<HttpResponse> {
    let b = body.into_inner();
    let step = selection_flow::Decide {
        cmo_org_id: b.cmo_org_id,
        reason: b.reason,
    };
    run_step(
        &state,
        &ctx,
        &req,
        id.into_inner(),
        step,
        b.password,
        b.version,
    )
    .await
}

/// The bid tab as CSV: one row per candidate (rank, weighted score, complete) with the
/// mean score of each criterion, in ranking order.
#[utoipa::path(
    tag = "partners",
    params(("id" = i64, Path, description = "Evaluation id")),
    responses(
        (status = 200, description = "CSV (RFC 4180)", body = String, content_type = "text/csv",
            example = json!("\"rank\",\"cmo\",\"weighted_score\",\"complete\",\"Quality systems (100%)\"\r\n\"1\",\"Lonza Visp\",\"4.00\",\"yes\",\"4.00\"\r\n")),
        (status = 404, description = "No such evaluation visible to the caller", body = crate::error::Problem)
    )
)]
#[get("/evaluations/{id}/bid-tab.csv")]
pub async fn bid_tab_csv(
    state: web::Data<AppState>,
    ctx: AuthContext,
    id: web::Path<i64>,
) -> ApiResult<HttpResponse> {
    let e = find_scoped::<selection::Entity, _>(&state.reads, &ctx, id.into_inner()).await?;
    let view = render(&state.reads, &e).await?;
    let names: BTreeMap<i64, &str> = view
        .candidates
        .iter()
        .map(|c| (c.cmo_org_id, c.name.as_str()))
        .collect();
    let mut header = vec![
        crate::csv::field("rank"),
        crate::csv::field("cmo"),
        crate::csv::field("weighted_score"),
        crate::csv::field("complete"),
    ];
    header.extend(
        view.criteria
            .iter()
            .map(|c| crate::csv::field(&format!("{} ({}%)", c.name, c.weight))),
    );
    let mut out = header.join(",") + "\r\n";
    for r in &view.ranking {
        let mut row = vec![
            crate::csv::field(&r.rank.to_string()),
            crate::csv::field(names.get(&r.cmo_org_id).copied().unwrap_or_default()),
            crate::csv::field(&format!("{:.2}", r.weighted_score)),
            crate::csv::field(if r.complete { "yes" } else { "no" }),
        ];
        row.extend(r.breakdown.iter().map(|b| {
            crate::csv::field(&b.mean_score.map(|m| format!("{m:.2}")).unwrap_or_default())
        }));
        out += &(row.join(",") + "\r\n");
    }
    Ok(HttpResponse::Ok()
        .content_type("text/csv; charset=utf-8")
        .insert_header((
            "Content-Disposition",
            format!("attachment; filename=\"bid-tab-{}.csv\"", e.id),
        ))
        .body(out))
}
