//! Deviations and nonconformances, with the floor rules: a critical or major deviation
//! holds the program's production and opens an escalation in the same transaction;
//! release of the hold is a signed quality decision.

use actix_web::{HttpRequest, HttpResponse, get, patch, post, web};
use chrono::{DateTime, TimeDelta, Utc};
use entity::audit_trail::{self, Entry};
use entity::deviation::{
    self, Category, Criticality, DeviationEvent, DeviationStatus, RootCauseMethod,
};
use entity::domain_event::{DeviationReported, Event};
use entity::milestone;
use entity::program::{self};
use entity::record_number::{self, RecordKind};
use sea_orm::{
    ActiveModelTrait, ActiveValue::NotSet, ActiveValue::Set, ColumnTrait, ConnectionTrait,
    EntityTrait, QueryFilter,
};
use serde::Deserialize;
use utoipa::{IntoParams, ToSchema};

use crate::auth::{AuthContext, find_scoped, find_scoped_locked, scoped};
use crate::error::{ApiError, ApiResult};
use crate::pagination::{Keyset, ListQuery, Paging};
use crate::routes::{ApiJson, Checks, Page, Validate, fetch_page, snapshot};
use crate::state::AppState;
use crate::transition::answer;
use crate::transition::{ApiStep, run_step};
use crate::views::quality::{DeviationView, deviation as view};
use crate::views::{EventOptions, Offers};
use crate::write::{Patched, update_versioned};
use crate::write_txn::WriteTxn;
use actix_web::http::StatusCode;
use entity::workflow::deviation as deviation_flow;

/// How far in the future `detected_at` may lie (clock skew), before it is refused.
const DETECTED_AT_SKEW: TimeDelta = TimeDelta::minutes(5);

impl crate::auth::TenantScoped for deviation::Entity {
    fn tenant_condition(ctx: &AuthContext) -> sea_orm::Condition {
        use sea_orm::sea_query::IntoCondition;
        deviation::Column::ProgramId
            .in_subquery(crate::auth::visible_programs(ctx))
            .into_condition()
    }
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
// A minor example: "Try it out" with a critical one would hold production and page a team.
#[schema(example = json!({
    "title": "Label reconciliation off by one",
    "description": "Batch record shows 1,201 labels issued, 1,200 applied, none returned.",
    "detected_at": "2027-04-02T06:40:00Z", "criticality": "minor", "category": "documentation",
    "batch_lot": "ACM101-DP-0007", "process_step": "Labelling", "milestone_id": 12
}))]
pub struct ReportDeviation {
    #[schema(min_length = 1, max_length = 200)]
    pub title: String,
    #[schema(min_length = 1, max_length = 10000)]
    pub description: String,
    /// When it was detected; not in the future.
    pub detected_at: DateTime<Utc>,
    /// As reported; triage confirms or changes it.
    pub criticality: Criticality,
    pub category: Category,
    #[schema(max_length = 64)]
    pub batch_lot: Option<String>,
    #[schema(max_length = 200)]
    pub process_step: Option<String>,
    /// A milestone of the same program.
    pub milestone_id: Option<i64>,
}

impl Validate for ReportDeviation {
    fn validate(&self, c: &mut Checks) {
        c.text("title", &self.title, 1, 200);
        c.text("description", &self.description, 1, 10_000);
        c.optional_text("batch_lot", self.batch_lot.as_deref(), 1, 64);
        c.optional_text("process_step", self.process_step.as_deref(), 1, 200);
    }
}

/// Report a deviation on a program. A critical or major one puts the program's
/// production on hold and opens an escalation, in the same transaction.
#[utoipa::path(
    tag = "quality",
    params(("id" = i64, Path, description = "Program id")),
    request_body = ReportDeviation,
    responses(
        (status = 201, description = "Deviation reported", body = DeviationView),
        (status = 403, description = "Viewers do not report deviations", body = crate::error::Problem),
        (status = 404, description = "No such program visible to the caller", body = crate::error::Problem)
    )
)]
#[post("/programs/{id}/deviations")]
pub async fn report_deviation(
    state: web::Data<AppState>,
    ctx: AuthContext,
    id: web::Path<i64>,
    body: ApiJson<ReportDeviation>,
) -> ApiResult<HttpResponse> {
    let b = body.into_inner();
    let now = state.clock.now();
    if b.detected_at < chrono::DateTime::<Utc>::from_timestamp(946_684_800, 0).unwrap_or(now) {
        return Err(ApiError::invalid(
            "detected_at",
            "out_of_range",
            "must be in 2000 or later, as RFC 3339 with its offset, e.g. 2027-03-02T01:55:00Z",
        ));
    }
    if b.detected_at > now + DETECTED_AT_SKEW {
        return Err(ApiError::invalid(
            "detected_at",
            "in_the_future",
            "a deviation cannot be detected in the future",
        ));
    }
    let txn = WriteTxn::begin(&state, &ctx).await?;
    // The program row lock orders this report against a concurrent production release.
    let prog = find_scoped_locked::<program::Entity, _>(&txn, &ctx, id.into_inner()).await?;
    ctx.permit(entity::access::Action::ReportDeviation, prog.sides())?;
    if let Some(m) = b.milestone_id {
        let found = milestone::Entity::find_by_id(m)
            .filter(milestone::Column::ProgramId.eq(prog.id))
            .one(&txn)
            .await?;
        if found.is_none() {
            return Err(ApiError::invalid(
                "milestone_id",
                "unknown_milestone",
                "not a milestone of this program",
            ));
        }
    }
    let number = record_number::assign(&txn, RecordKind::Deviation, &prog, now).await?;
    let created = deviation::ActiveModel {
        id: NotSet,
        record_number: Set(Some(number)),
        program_id: Set(prog.id),
        milestone_id: Set(b.milestone_id),
        batch_lot: Set(b.batch_lot),
        title: Set(b.title.trim().to_string()),
        description: Set(b.description),
        detected_at: Set(entity::clock::truncate_to_micros(b.detected_at)),
        reported_by_user_id: Set(ctx.user.id),
        process_step: Set(b.process_step),
        criticality: Set(b.criticality),
        category: Set(b.category),
        status: Set(DeviationStatus::Reported),
        triaged_at: Set(None),
        short_term_fix: Set(None),
        root_cause_method: Set(None),
        root_cause_category: Set(None),
        root_cause_narrative: Set(None),
        closure_signature_id: Set(None),
        closed_at: Set(None),
        cancel_reason: Set(None),
        created_at: Set(now),
        updated_at: Set(now),
        version: Set(1),
    }
    .insert(&txn)
    .await?;
    audit_trail::append(
        &txn,
        &ctx.actor(now),
        Entry::new("deviation", created.id, "report").after(snapshot(&view(&created, now))),
    )
    .await?;
    entity::domain_event::emit(
        &txn,
        created.program_id,
        Event::DeviationReported(DeviationReported {
            deviation_id: created.id,
            title: created.title.clone(),
            criticality: created.criticality,
            category: created.category,
            detected_at: created.detected_at,
        }),
        now,
    )
    .await?;
    deviation_flow::floor_rule(&txn, &ctx.actor(now), &created, true).await?;
    txn.respond(StatusCode::CREATED, &view(&created, now)).await
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct DeviationFilter {
    pub program_id: Option<i64>,
    /// The record number people quote, e.g. `DEV-2027-0041` (any letter case).
    #[param(
        example = "DEV-2027-0041",
        max_length = 24,
        pattern = "^[A-Za-z0-9-]*$"
    )]
    pub number: Option<String>,
    pub status: Option<DeviationStatus>,
    pub criticality: Option<Criticality>,
    pub category: Option<Category>,
    /// Only open (not closed or cancelled) deviations, or only finished ones.
    pub open: Option<bool>,
    /// Only deviations detected at least this many days ago.
    #[param(minimum = 0, maximum = 36500)]
    pub min_age_days: Option<i64>,
}

/// Deviations on the caller's programs, newest first.
#[utoipa::path(
    tag = "quality",
    params(DeviationFilter, Paging),
    responses((status = 200, description = "One page of deviations", body = Page<DeviationView>))
)]
#[get("/deviations")]
pub async fn list_deviations(
    state: web::Data<AppState>,
    ctx: AuthContext,
    query: ListQuery<DeviationFilter>,
) -> ApiResult<web::Json<Page<DeviationView>>> {
    let f = query.filter;
    let now = state.clock.now();
    let mut select = scoped::<deviation::Entity>(&ctx);
    if let Some(v) = f.program_id {
        select = select.filter(deviation::Column::ProgramId.eq(v));
    }
    if let Some(n) = crate::records::record_number_filter(f.number.as_deref())? {
        select = select.filter(deviation::Column::RecordNumber.eq(n));
    }
    if let Some(v) = f.status {
        select = select.filter(deviation::Column::Status.eq(v));
    }
    if let Some(v) = f.criticality {
        select = select.filter(deviation::Column::Criticality.eq(v));
    }
    if let Some(v) = f.category {
        select = select.filter(deviation::Column::Category.eq(v));
    }
    if let Some(open) = f.open {
        let finished = [DeviationStatus::Closed, DeviationStatus::Cancelled];
        select = select.filter(if open {
            deviation::Column::Status.is_not_in(finished)
        } else {
            deviation::Column::Status.is_in(finished)
        });
    }
    if let Some(days) = f.min_age_days {
        if !(0..=36_500).contains(&days) {
            return Err(ApiError::invalid(
                "min_age_days",
                "out_of_range",
                "a whole number of days from 0 to 36500, e.g. min_age_days=30",
            ));
        }
        select = select.filter(deviation::Column::DetectedAt.lte(now - TimeDelta::days(days)));
    }
    let newest_first = Keyset::desc([deviation::Column::DetectedAt, deviation::Column::Id]);
    let page = fetch_page(&state.reads, select, newest_first, &query.paging).await?;
    Ok(web::Json(page.map(|d| view(&d, now))))
}

/// One deviation.
#[utoipa::path(
    tag = "quality",
    params(("id" = i64, Path, description = "Deviation id")),
    responses(
        (status = 200, description = "The deviation", body = DeviationView),
        (status = 404, description = "No such deviation visible to the caller", body = crate::error::Problem)
    )
)]
#[get("/deviations/{id}")]
pub async fn get_deviation(
    state: web::Data<AppState>,
    ctx: AuthContext,
    id: web::Path<i64>,
) -> ApiResult<web::Json<DeviationView>> {
    let d = find_scoped::<deviation::Entity, _>(&state.reads, &ctx, id.into_inner()).await?;
    let now = state.clock.now();
    Ok(web::Json(
        answer::<deviation_flow::Step>(&state.reads, &ctx, &d, now).await?,
    ))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({
    "version": 3, "root_cause_method": "fishbone", "root_cause_category": "equipment",
    "root_cause_narrative": "Worn gasket on the harvest tank manway let condensate in.",
    "reason": "investigation findings recorded"
}))]
pub struct UpdateDeviation {
    /// The version being updated (or send `If-Match`).
    pub version: Option<i32>,
    #[schema(min_length = 1, max_length = 200)]
    pub title: Option<String>,
    #[schema(min_length = 1, max_length = 10000)]
    pub description: Option<String>,
    #[schema(max_length = 64)]
    pub batch_lot: Option<String>,
    #[schema(max_length = 200)]
    pub process_step: Option<String>,
    pub category: Option<Category>,
    #[schema(max_length = 5000)]
    pub short_term_fix: Option<String>,
    pub root_cause_method: Option<RootCauseMethod>,
    pub root_cause_category: Option<Category>,
    #[schema(max_length = 10000)]
    pub root_cause_narrative: Option<String>,
    /// Reason for change: required on every edit of a GMP record; kept in the audit trail.
    #[schema(min_length = 1, max_length = 500)]
    pub reason: String,
}

impl Validate for UpdateDeviation {
    fn validate(&self, c: &mut Checks) {
        c.optional_text("title", self.title.as_deref(), 1, 200);
        c.optional_text("description", self.description.as_deref(), 1, 10_000);
        c.optional_text("batch_lot", self.batch_lot.as_deref(), 1, 64);
        c.optional_text("process_step", self.process_step.as_deref(), 1, 200);
        c.optional_text("short_term_fix", self.short_term_fix.as_deref(), 1, 5000);
        c.optional_text(
            "root_cause_narrative",
            self.root_cause_narrative.as_deref(),
            1,
            10_000,
        );
        c.text("reason", &self.reason, 1, 500);
    }
}

/// Edit an open deviation (reason for change required). Criticality changes only at
/// triage; status only by transitions.
#[utoipa::path(
    tag = "quality",
    params(
        ("id" = i64, Path, description = "Deviation id"),
        ("If-Match" = Option<String>, Header, pattern = r#"^(W/)?"?[0-9]{1,9}"?$"#, description = "Version being updated (alternative to `version` in the body)")
    ),
    request_body = UpdateDeviation,
    responses(
        (status = 200, description = "The updated deviation", body = DeviationView),
        (status = 403, description = "Only quality, program managers and admins edit deviations", body = crate::error::Problem),
        (status = 404, description = "No such deviation visible to the caller", body = crate::error::Problem),
        (status = 409, description = "Stale version, or the deviation is closed or cancelled", body = crate::error::Problem)
    )
)]
#[patch("/deviations/{id}")]
pub async fn update_deviation(
    req: HttpRequest,
    state: web::Data<AppState>,
    ctx: AuthContext,
    id: web::Path<i64>,
    body: ApiJson<UpdateDeviation>,
) -> ApiResult<HttpResponse> {
    let b = body.into_inner();
    let now = state.clock.now();
    update_versioned::<deviation::Entity, _>(
        &state,
        &ctx,
        &req,
        id.into_inner(),
        b.version,
        "deviation",
        async |_, current| {
            ctx.require(
                ctx.user.role.handles_quality_records(),
                "only quality, program managers and admins edit deviations",
            )?;
            if !current.status.is_open() {
                return Err(ApiError::conflict(
                    "deviation_closed",
                    "a closed or cancelled deviation is not edited",
                ));
            }
            Ok(())
        },
        async |_, _, d| {
            if let Some(v) = b.title {
                d.title = v.trim().to_string();
            }
            if let Some(v) = b.description {
                d.description = v;
            }
            if let Some(v) = b.batch_lot {
                d.batch_lot = Some(v);
            }
            if let Some(v) = b.process_step {
                d.process_step = Some(v);
            }
            if let Some(v) = b.category {
                d.category = v;
            }
            if let Some(v) = b.short_term_fix {
                d.short_term_fix = Some(v);
            }
            if let Some(v) = b.root_cause_method {
                d.root_cause_method = Some(v);
            }
            if let Some(v) = b.root_cause_category {
                d.root_cause_category = Some(v);
            }
            if let Some(v) = b.root_cause_narrative {
                d.root_cause_narrative = Some(v);
            }
            Ok(Patched::update(Some(b.reason)))
        },
        async |_, d| Ok(view(d, now)),
    )
    .await
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"event": "triage", "criticality": "major", "reason": "no product impact; contained to one tank"}))]
pub struct DeviationTransition {
    pub event: DeviationEvent,
    /// `triage` only: the confirmed criticality (a change needs a reason).
    pub criticality: Option<Criticality>,
    /// Why: required for `cancel` and for a criticality change; kept in the audit trail.
    #[schema(max_length = 500)]
    pub reason: Option<String>,
    /// `close` only: the quality signer's password (e-signature).
    #[schema(max_length = 256)]
    pub password: Option<String>,
    /// The version the caller saw (optional).
    pub version: Option<i32>,
}

impl Validate for DeviationTransition {
    fn validate(&self, c: &mut Checks) {
        c.optional_text("reason", self.reason.as_deref(), 1, 500);
        c.optional_signing_password("password", self.password.as_deref());
        if self.criticality.is_some() && !entity::deviation::takes_criticality(self.event) {
            c.fail(
                "criticality",
                "not_allowed",
                "criticality changes only at triage",
            );
        }
    }
}

/// Move a deviation through `reported → triaged → investigating → pending_capa | closed`,
/// `cancelled`. Triage confirms or changes criticality (raising it to major or critical
/// holds production). Closing needs a root cause (unless minor) and a quality
/// e-signature (`password`). Illegal events answer 409 with `current_state` and
/// `allowed_events`.
#[utoipa::path(
    tag = "quality",
    params(
        ("id" = i64, Path, description = "Deviation id"),
        ("If-Match" = Option<String>, Header, pattern = r#"^(W/)?"?[0-9]{1,9}"?$"#, description = "Version the caller saw (optional; alternative to `version` in the body)")
    ),
    request_body = DeviationTransition,
    responses(
        (status = 200, description = "The deviation in its new state", body = DeviationView),
        (status = 401, description = "Wrong signature password (`invalid_password`; audited)", body = crate::error::Problem),
        (status = 403, description = "Not allowed to handle deviations, or only quality signs closure", body = crate::error::Problem),
        (status = 404, description = "No such deviation visible to the caller", body = crate::error::Problem),
        (status = 409, description = "Illegal event, failed guard (root cause, CAPA), stale version, or no own signing password", body = crate::error::Problem),
        (status = 429, description = "Too many failed password attempts; see Retry-After", body = crate::error::Problem)
    )
)]
#[post("/deviations/{id}/transitions")]
pub async fn transition_deviation(
    req: HttpRequest,
    state: web::Data<AppState>,
    ctx: AuthContext,
    id: web::Path<i64>,
    body: ApiJson<DeviationTransition>,
) -> ApiResult<HttpResponse> {
    let b = body.into_inner();
    let step = deviation_flow::Step::new(b.event, b.criticality, b.reason);
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

impl ApiStep for deviation_flow::Step {
    type View = DeviationView;
    fn offer(view: &mut Self::View, options: EventOptions<Self::Event>) {
        view.offer(options);
    }
    /// Who may take steps on this record at all (403 before anything else).
    async fn may_step(
        conn: &impl ConnectionTrait,
        ctx: &AuthContext,
        d: &Self::Model,
    ) -> ApiResult<()> {
        let program = find_scoped::<entity::program::Entity, _>(conn, ctx, d.program_id).await?;
        ctx.permit(entity::access::Action::HandleDeviation, program.sides())
    }
    /// Lowering the criticality and cancelling are the sponsor's quality decisions.
    async fn may_take(
        conn: &impl ConnectionTrait,
        ctx: &AuthContext,
        d: &Self::Model,
        step: &Self,
    ) -> ApiResult<()> {
        use entity::access::Action;
        let action = match step.event {
            DeviationEvent::Cancel => Action::CancelDeviation,
            DeviationEvent::Triage
                if step
                    .criticality
                    .is_some_and(|c| d.criticality.lowered_to(c)) =>
            {
                Action::DowngradeDeviation
            }
            _ => return Ok(()),
        };
        let program = find_scoped::<entity::program::Entity, _>(conn, ctx, d.program_id).await?;
        ctx.permit(action, program.sides())
    }
    async fn view(
        _conn: &impl ConnectionTrait,
        _ctx: &AuthContext,
        d: &deviation::Model,
        now: DateTime<Utc>,
    ) -> ApiResult<DeviationView> {
        Ok(view(d, now))
    }
}
