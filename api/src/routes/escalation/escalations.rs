//! 24/7 escalation over HTTP (SPEC §6): the program's policy (edit, check, dry run),
//! escalations (open by hand, list, read with their events and pages), and
//! acknowledgement by API or by the one-click link in the page email.

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, get, post, put, web};
use chrono::{DateTime, Datelike, TimeDelta, Utc};
use entity::audit_trail::{self, Actor, Entry};
use entity::deviation::Category;
use entity::domain_event::{EscalationAcknowledged, Event};
use entity::escalation::{self, EscalationStatus};
use entity::escalation_policy::{self, PolicyDoc, Recipient};
use entity::link_token::{self, Link};
use entity::{Role, link_secret, program, user};
use sea_orm::sea_query::{Expr, ExprTrait, OnConflict};
use sea_orm::{
    ActiveEnum, ActiveModelTrait, ActiveValue::NotSet, ActiveValue::Set, ColumnTrait,
    ConnectionTrait, EntityTrait, QueryFilter, QueryOrder,
};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::auth::{AuthContext, find_scoped, scoped};
use crate::error::{ApiError, ApiResult};
use crate::extract::{ApiJson, Checks, Validate};
use crate::pages::{self, html_response as html};
use crate::routes::{Page, expected_version, fetch_page, snapshot, wire_name};
use crate::state::AppState;

// ---------------------------------------------------------------------------- policy

#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({"program_id": 3, "tiers": [
    {"name": "Core team", "member_ids": [], "governance_tiers": ["core_team"], "match_expertise": true, "wait_minutes": 15},
    {"name": "Leadership", "member_ids": [], "governance_tiers": ["leadership"], "match_expertise": false, "wait_minutes": 30},
    {"name": "Steering committee", "member_ids": [], "governance_tiers": ["steering_committee"], "match_expertise": false, "wait_minutes": 30}],
    "repeat_last": 1, "ack_timeout_minutes": 60, "version": 1}))]
pub struct PolicyView {
    pub program_id: i64,
    pub tiers: Vec<escalation_policy::Tier>,
    pub repeat_last: i32,
    pub ack_timeout_minutes: i32,
    /// Send it back on PUT (409 when someone changed the policy meanwhile).
    pub version: i32,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"tiers": [
    {"name": "QA on call", "member_ids": [7], "match_expertise": true, "wait_minutes": 10},
    {"name": "Leadership", "governance_tiers": ["leadership"], "wait_minutes": 20}],
    "repeat_last": 2, "ack_timeout_minutes": 45, "version": 1}))]
pub struct UpdatePolicy {
    pub tiers: Vec<escalation_policy::Tier>,
    pub repeat_last: i32,
    pub ack_timeout_minutes: i32,
    /// The version you read (or `If-Match`).
    pub version: Option<i32>,
}

impl Validate for UpdatePolicy {
    fn validate(&self, c: &mut Checks) {
        let doc = PolicyDoc {
            tiers: self.tiers.clone(),
            repeat_last: self.repeat_last,
            ack_timeout_minutes: self.ack_timeout_minutes,
        };
        for (field, code, message) in escalation_policy::validate(&doc) {
            c.fail(&field, code, message);
        }
    }
}

async fn policy_view<C: ConnectionTrait>(conn: &C, program_id: i64) -> ApiResult<PolicyView> {
    let stored = escalation_policy::Entity::find()
        .filter(escalation_policy::Column::ProgramId.eq(program_id))
        .one(conn)
        .await?;
    let (doc, version) = match &stored {
        Some(m) => (m.doc(), m.version),
        // No row yet (programs created before policies existed): the default, version 0.
        None => (escalation_policy::default_policy(), 0),
    };
    Ok(PolicyView {
        program_id,
        tiers: doc.tiers,
        repeat_last: doc.repeat_last,
        ack_timeout_minutes: doc.ack_timeout_minutes,
        version,
    })
}

/// The program's escalation policy (the SPEC default until someone edits it).
#[utoipa::path(
    tag = "escalations",
    params(("id" = i64, Path, description = "Program id")),
    responses(
        (status = 200, description = "The policy", body = PolicyView),
        (status = 404, description = "No such program visible to the caller", body = crate::error::Problem, content_type = "application/problem+json")
    )
)]
#[get("/programs/{id}/escalation-policy")]
pub async fn get_policy(
    state: web::Data<AppState>,
    ctx: AuthContext,
    id: web::Path<i64>,
) -> ApiResult<web::Json<PolicyView>> {
    let prog = find_scoped::<program::Entity, _>(&state.db, &ctx, id.into_inner()).await?;
    Ok(web::Json(policy_view(&state.db, prog.id).await?))
}

/// Replace the program's escalation policy (sponsor admins and program managers).
/// Running escalations keep the policy they opened with.
#[utoipa::path(
    tag = "escalations",
    params(("id" = i64, Path, description = "Program id")),
    request_body = UpdatePolicy,
    responses(
        (status = 200, description = "The new policy", body = PolicyView),
        (status = 403, description = "Only the sponsor's admins and program managers edit the policy", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such program visible to the caller", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 409, description = "Stale version", body = crate::error::Problem, content_type = "application/problem+json")
    )
)]
#[put("/programs/{id}/escalation-policy")]
pub async fn update_policy(
    req: HttpRequest,
    state: web::Data<AppState>,
    ctx: AuthContext,
    id: web::Path<i64>,
    body: ApiJson<UpdatePolicy>,
) -> ApiResult<web::Json<PolicyView>> {
    let b = body.into_inner();
    let version = expected_version(&req, b.version)?;
    let txn = entity::db::begin_write(&state.db).await?;
    let prog = find_scoped::<program::Entity, _>(&txn, &ctx, id.into_inner()).await?;
    if !entity::access::may_manage_program(ctx.caller(), prog.sides()) {
        return Err(ApiError::Forbidden(
            "only the sponsor's admins and program managers edit the escalation policy".to_string(),
        ));
    }
    let members: Vec<i64> = entity::team_member::Entity::find()
        .filter(entity::team_member::Column::ProgramId.eq(prog.id))
        .all(&txn)
        .await?
        .into_iter()
        .map(|m| m.id)
        .collect();
    let mut c = Checks::default();
    for (i, t) in b.tiers.iter().enumerate() {
        for m in &t.member_ids {
            if !members.contains(m) {
                c.fail(
                    &format!("tiers[{i}].member_ids"),
                    "unknown_member",
                    format!("{m} is not a member of this program's team"),
                );
            }
        }
    }
    c.finish()?;
    let current = policy_view(&txn, prog.id).await?;
    if current.version != version {
        return Err(ApiError::stale_version(current.version));
    }
    let now = state.clock.now();
    let tiers = serde_json::to_string(&b.tiers).map_err(ApiError::internal)?;
    let existing = escalation_policy::Entity::find()
        .filter(escalation_policy::Column::ProgramId.eq(prog.id))
        .one(&txn)
        .await?;
    match existing {
        None => {
            escalation_policy::ActiveModel {
                id: NotSet,
                program_id: Set(prog.id),
                tiers: Set(tiers),
                repeat_last: Set(b.repeat_last),
                ack_timeout_minutes: Set(b.ack_timeout_minutes),
                created_at: Set(now),
                updated_at: Set(now),
                version: Set(1),
            }
            .insert(&txn)
            .await?;
        }
        Some(m) => {
            let res = escalation_policy::Entity::update_many()
                .col_expr(escalation_policy::Column::Tiers, Expr::value(tiers))
                .col_expr(
                    escalation_policy::Column::RepeatLast,
                    Expr::value(b.repeat_last),
                )
                .col_expr(
                    escalation_policy::Column::AckTimeoutMinutes,
                    Expr::value(b.ack_timeout_minutes),
                )
                .col_expr(escalation_policy::Column::UpdatedAt, Expr::value(now))
                .col_expr(
                    escalation_policy::Column::Version,
                    Expr::col(escalation_policy::Column::Version).add(1),
                )
                .filter(escalation_policy::Column::Id.eq(m.id))
                .filter(escalation_policy::Column::Version.eq(m.version))
                .exec(&txn)
                .await?;
            if res.rows_affected != 1 {
                return Err(ApiError::stale_version(m.version + 1));
            }
        }
    }
    let updated = policy_view(&txn, prog.id).await?;
    audit_trail::append(
        &txn,
        &ctx.actor(now),
        Entry::new("escalation_policy", prog.id, "update")
            .before(snapshot(&current))
            .after(snapshot(&updated)),
    )
    .await?;
    txn.commit().await?;
    Ok(web::Json(updated))
}

#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({"code": "empty_tier", "tier": 2, "message": "tier 3 (Steering committee) resolves to nobody: it will be skipped at once"}))]
pub struct PolicyWarning {
    /// `empty_tier`, `tier_adds_nobody`, `member_without_email`, `unknown_member`,
    /// `call_tree_without_tags`.
    pub code: String,
    /// 0-based tier, when the warning is about one.
    pub tier: Option<usize>,
    pub message: String,
}

#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({"program_id": 3, "ok": false, "warnings": [
    {"code": "empty_tier", "tier": 2, "message": "tier 3 (Steering committee) resolves to nobody: it will be skipped at once"},
    {"code": "member_without_email", "tier": null, "message": "Sam Lee (QA) has no active account with an email: never paged"}]}))]
pub struct PolicyCheck {
    pub program_id: i64,
    /// No warnings.
    pub ok: bool,
    pub warnings: Vec<PolicyWarning>,
}

/// Checks the policy against today's team: empty tiers, tiers that add nobody new,
/// members who cannot be paged, named members no longer on the team.
#[utoipa::path(
    tag = "escalations",
    params(("id" = i64, Path, description = "Program id")),
    responses(
        (status = 200, description = "Warnings, if any", body = PolicyCheck),
        (status = 404, description = "No such program visible to the caller", body = crate::error::Problem, content_type = "application/problem+json")
    )
)]
#[get("/programs/{id}/escalation-policy/check")]
pub async fn check_policy(
    state: web::Data<AppState>,
    ctx: AuthContext,
    id: web::Path<i64>,
) -> ApiResult<web::Json<PolicyCheck>> {
    let prog = find_scoped::<program::Entity, _>(&state.db, &ctx, id.into_inner()).await?;
    let policy = escalation_policy::for_program(&state.db, prog.id).await?;
    let team = escalation_policy::team(&state.db, prog.id).await?;
    let mut warnings = Vec::new();
    for c in team.iter().filter(|c| c.email.is_empty()) {
        warnings.push(PolicyWarning {
            code: "member_without_email".into(),
            tier: None,
            message: format!(
                "{} ({}) has no active account with an email: never paged",
                c.name, c.program_role
            ),
        });
    }
    let mut seen: Vec<String> = Vec::new();
    for (i, t) in policy.tiers.iter().enumerate() {
        for m in &t.member_ids {
            if !team.iter().any(|c| c.member_id == *m) {
                warnings.push(PolicyWarning {
                    code: "unknown_member".into(),
                    tier: Some(i),
                    message: format!(
                        "tier {} names member {m}, who is no longer on the team",
                        i + 1
                    ),
                });
            }
        }
        // The call tree alone: who could it page for any category?
        let any_category: Vec<Recipient> = team
            .iter()
            .flat_map(|c| c.expertise_tags.clone())
            .flat_map(|tag| escalation_policy::resolve(t, Some(&tag), &team))
            .collect();
        let without = escalation_policy::resolve(t, None, &team);
        if without.is_empty() && any_category.is_empty() {
            warnings.push(PolicyWarning {
                code: "empty_tier".into(),
                tier: Some(i),
                message: format!(
                    "tier {} ({}) resolves to nobody: it will be skipped at once",
                    i + 1,
                    t.name
                ),
            });
            continue;
        }
        if without.is_empty() && t.match_expertise {
            warnings.push(PolicyWarning {
                code: "call_tree_without_tags".into(),
                tier: Some(i),
                message: format!(
                    "tier {} ({}) pages only members tagged with the deviation's category: escalations of other categories skip it",
                    i + 1,
                    t.name
                ),
            });
        }
        let fresh: Vec<&Recipient> = without
            .iter()
            .chain(any_category.iter())
            .filter(|r| !seen.contains(&r.email))
            .collect();
        if fresh.is_empty() {
            warnings.push(PolicyWarning {
                code: "tier_adds_nobody".into(),
                tier: Some(i),
                message: format!(
                    "tier {} ({}) pages only people already paged by earlier tiers",
                    i + 1,
                    t.name
                ),
            });
        }
        seen.extend(without.into_iter().chain(any_category).map(|r| r.email));
    }
    Ok(web::Json(PolicyCheck {
        program_id: prog.id,
        ok: warnings.is_empty(),
        warnings,
    }))
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct DryRunQuery {
    /// The deviation category (drives the call tree); none: only named members and tiers.
    pub category: Option<Category>,
    /// When the escalation would open (default: now).
    #[param(example = "2026-11-28T02:00:00Z")]
    pub at: Option<DateTime<Utc>>,
}

#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({"tier": 1, "name": "Leadership", "page_at": "2026-11-28T02:15:00Z", "repeat": false,
    "recipients": [{"member_id": 5, "user_id": 11, "name": "Lee Chen", "email": "lee@acme.test", "program_role": "VP Operations"}]}))]
pub struct DryRunPage {
    /// 0-based tier.
    pub tier: usize,
    pub name: String,
    /// When this tier would be paged if nobody acknowledges.
    pub page_at: DateTime<Utc>,
    /// Whom it would page; empty means the tier is skipped at once.
    pub recipients: Vec<Recipient>,
    pub repeat: bool,
}

#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({"program_id": 3, "category": "equipment", "at": "2026-11-28T02:00:00Z",
    "pages": [{"tier": 0, "name": "Core team", "page_at": "2026-11-28T02:00:00Z", "repeat": false,
        "recipients": [{"member_id": 4, "user_id": 9, "name": "Ana Ruiz", "email": "ana@acme.test", "program_role": "Program manager"}]}],
    "exhausted_at": "2026-11-28T03:45:00Z"}))]
pub struct DryRun {
    pub program_id: i64,
    pub category: Option<Category>,
    pub at: DateTime<Utc>,
    pub pages: Vec<DryRunPage>,
    /// When the escalation would be marked exhausted if nobody ever acknowledges.
    pub exhausted_at: DateTime<Utc>,
}

/// Who would be paged, and when, for an escalation of this category opening at `at`
/// with the current policy and team. Escalations page at any hour: no quiet hours.
#[utoipa::path(
    tag = "escalations",
    params(("id" = i64, Path, description = "Program id"), DryRunQuery),
    responses(
        (status = 200, description = "The paging plan", body = DryRun),
        (status = 422, description = "Unknown category, or `at` outside 2000–2200", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such program visible to the caller", body = crate::error::Problem, content_type = "application/problem+json")
    )
)]
#[get("/programs/{id}/escalation-policy/dry-run")]
pub async fn dry_run(
    state: web::Data<AppState>,
    ctx: AuthContext,
    id: web::Path<i64>,
    query: web::Query<DryRunQuery>,
) -> ApiResult<web::Json<DryRun>> {
    let prog = find_scoped::<program::Entity, _>(&state.db, &ctx, id.into_inner()).await?;
    let policy = escalation_policy::for_program(&state.db, prog.id).await?;
    let team = escalation_policy::team(&state.db, prog.id).await?;
    let at = query.at.unwrap_or_else(|| state.clock.now());
    if at.year() < 2000 || at.year() > 2200 {
        return Err(ApiError::invalid(
            "at",
            "out_of_range",
            "must be between the years 2000 and 2200",
        ));
    }
    let category = query.category.map(|c| wire_name(&c));
    let mut pages = Vec::new();
    let mut t = at;
    let mut step = 0;
    while let Some(tier) = escalation_policy::tier_for_step(&policy, step) {
        let recipients =
            escalation_policy::resolve(&policy.tiers[tier], category.as_deref(), &team);
        let skipped = recipients.is_empty();
        pages.push(DryRunPage {
            tier,
            name: policy.tiers[tier].name.clone(),
            page_at: t,
            recipients,
            repeat: step >= policy.tiers.len() as i32,
        });
        if !skipped {
            t += TimeDelta::minutes(i64::from(Ord::max(policy.tiers[tier].wait_minutes, 1)));
        }
        step += 1;
    }
    Ok(web::Json(DryRun {
        program_id: prog.id,
        category: query.category,
        at,
        pages,
        exhausted_at: t,
    }))
}

// ------------------------------------------------------------------------ escalations

#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({"id": 12, "program_id": 3, "source_type": "deviation", "source_id": 41,
    "title": "Bioburden excursion in harvest", "reason": "critical deviation #41: bioburden excursion in harvest",
    "criticality": "critical", "category": "equipment", "status": "open", "opened_at": "2026-11-28T02:00:00Z",
    "current_tier": 0, "next_page_at": "2026-11-28T02:15:00Z", "pages_sent": 1,
    "acknowledged_at": null, "acknowledged_by_user_id": null, "ack_channel": null,
    "resolved_at": null, "reopen_count": 0, "version": 2}))]
pub struct EscalationView {
    pub id: i64,
    pub program_id: i64,
    /// `deviation` or `manual`.
    pub source_type: String,
    pub source_id: Option<i64>,
    pub title: String,
    pub reason: String,
    pub criticality: Option<String>,
    pub category: Option<String>,
    pub status: EscalationStatus,
    pub opened_at: DateTime<Utc>,
    /// 0-based tier of the latest page.
    pub current_tier: Option<i32>,
    /// When the next tier is paged (open escalations).
    pub next_page_at: Option<DateTime<Utc>>,
    pub pages_sent: i32,
    pub acknowledged_at: Option<DateTime<Utc>>,
    pub acknowledged_by_user_id: Option<i64>,
    /// `api` or `email`.
    pub ack_channel: Option<String>,
    pub resolved_at: Option<DateTime<Utc>>,
    pub reopen_count: i32,
    pub version: i32,
}

impl From<&escalation::Model> for EscalationView {
    fn from(e: &escalation::Model) -> Self {
        EscalationView {
            id: e.id,
            program_id: e.program_id,
            source_type: e.source_type.clone(),
            source_id: e.source_id,
            title: e.title.clone(),
            reason: e.reason.clone(),
            criticality: e.criticality.clone(),
            category: e.category.clone(),
            status: e.status,
            opened_at: e.opened_at,
            current_tier: e.current_tier,
            next_page_at: e.next_page_at,
            pages_sent: e.page_seq,
            acknowledged_at: e.acknowledged_at,
            acknowledged_by_user_id: e.acknowledged_by_user_id,
            ack_channel: e.ack_channel.clone(),
            resolved_at: e.resolved_at,
            reopen_count: e.reopen_count,
            version: e.version,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({"kind": "paged", "tier": 0, "detail": {"tier": "Core team", "page": 1, "repeat": false,
    "recipients": ["qa@acme.test"], "next_page_at": "2026-11-28T02:15:00Z"}, "actor_user_id": null, "channel": null, "at": "2026-11-28T02:00:00Z"}))]
pub struct EscalationEventView {
    /// `opened`, `paged`, `skipped`, `acknowledged`, `reopened`, `exhausted`, `resolved`.
    pub kind: String,
    pub tier: Option<i32>,
    /// Who was notified and why (free-form JSON).
    #[schema(value_type = Object)]
    pub detail: serde_json::Value,
    pub actor_user_id: Option<i64>,
    pub channel: Option<String>,
    pub at: DateTime<Utc>,
}

#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({"seq": 1, "tier": 0, "paged_at": "2026-11-28T02:00:00Z",
    "recipients": [{"member_id": 4, "user_id": 9, "name": "Quinn QA", "email": "qa@acme.test", "program_role": "QA lead"}]}))]
pub struct EscalationPageView {
    pub seq: i32,
    pub tier: i32,
    pub recipients: Vec<Recipient>,
    pub paged_at: DateTime<Utc>,
}

#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({"escalation": {"id": 12, "program_id": 3, "source_type": "deviation", "source_id": 41,
    "title": "Bioburden excursion in harvest", "reason": "critical deviation #41: bioburden excursion in harvest",
    "criticality": "critical", "category": "equipment", "status": "acknowledged", "opened_at": "2026-11-28T02:00:00Z",
    "current_tier": 0, "next_page_at": null, "pages_sent": 1, "acknowledged_at": "2026-11-28T02:04:00Z",
    "acknowledged_by_user_id": 9, "ack_channel": "email", "resolved_at": null, "reopen_count": 0, "version": 3},
  "policy": {"tiers": [{"name": "Core team", "member_ids": [], "governance_tiers": ["core_team"], "match_expertise": true, "wait_minutes": 15}],
    "repeat_last": 1, "ack_timeout_minutes": 60},
  "pages": [{"seq": 1, "tier": 0, "paged_at": "2026-11-28T02:00:00Z",
    "recipients": [{"member_id": 4, "user_id": 9, "name": "Quinn QA", "email": "qa@acme.test", "program_role": "QA lead"}]}],
  "events": [{"kind": "opened", "tier": null, "detail": {"reason": "critical deviation #41"}, "actor_user_id": 2, "channel": "api", "at": "2026-11-28T02:00:00Z"}]}))]
pub struct EscalationDetail {
    pub escalation: EscalationView,
    /// The policy this escalation follows (as it was when it opened).
    pub policy: PolicyDoc,
    pub pages: Vec<EscalationPageView>,
    pub events: Vec<EscalationEventView>,
}

#[derive(Debug, Clone, Copy, Deserialize, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Urgency {
    Critical,
    Major,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"program_id": 3, "title": "Cold-chain shipper lost in transit",
    "reason": "GMP lot 24-017 shipper untracked for 6 h", "urgency": "critical", "category": "material"}))]
pub struct OpenEscalation {
    pub program_id: i64,
    pub title: String,
    pub reason: String,
    pub urgency: Urgency,
    /// Pages the call tree of members tagged with this category.
    pub category: Option<Category>,
}

impl Validate for OpenEscalation {
    fn validate(&self, c: &mut Checks) {
        c.text("title", &self.title, 1, 200);
        c.text("reason", &self.reason, 1, 2_000);
    }
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"reason": "Shipper found; temperature log within range"}))]
pub struct ResolveEscalation {
    pub reason: String,
}

impl Validate for ResolveEscalation {
    fn validate(&self, c: &mut Checks) {
        c.text("reason", &self.reason, 1, 2_000);
    }
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"note": "On my way to the site"}))]
pub struct AcknowledgeEscalation {
    /// Optional note for the others ("on my way to the site").
    pub note: Option<String>,
}

impl Validate for AcknowledgeEscalation {
    fn validate(&self, c: &mut Checks) {
        c.optional_text("note", self.note.as_deref(), 1, 500);
    }
}

fn may_act(ctx: &AuthContext) -> ApiResult<()> {
    if ctx.user.role == Role::Viewer {
        return Err(ApiError::Forbidden(
            "viewers do not open, acknowledge or resolve escalations".to_string(),
        ));
    }
    Ok(())
}

/// Open an escalation by hand for anything urgent; tier 1 is paged at once.
#[utoipa::path(
    tag = "escalations",
    request_body = OpenEscalation,
    responses(
        (status = 201, description = "Opened; the worker pages tier 1 at once", body = EscalationView),
        (status = 403, description = "Viewers do not open escalations", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 422, description = "Invalid fields, or no such program visible to the caller", body = crate::error::Problem, content_type = "application/problem+json")
    )
)]
#[post("/escalations")]
pub async fn open_escalation(
    state: web::Data<AppState>,
    ctx: AuthContext,
    body: ApiJson<OpenEscalation>,
) -> ApiResult<HttpResponse> {
    let b = body.into_inner();
    may_act(&ctx)?;
    let txn = entity::db::begin_write(&state.db).await?;
    let prog = find_scoped::<program::Entity, _>(&txn, &ctx, b.program_id)
        .await
        .map_err(|_| ApiError::invalid("program_id", "unknown_program", "no such program"))?;
    let now = state.clock.now();
    let urgency = wire_name(&b.urgency);
    let category = b.category.map(|c| wire_name(&c));
    let e = escalation::open(
        &txn,
        escalation::Opening {
            program_id: prog.id,
            source_type: "manual",
            source_id: None,
            reason: b.reason.trim(),
            title: b.title.trim(),
            criticality: Some(&urgency),
            category: category.as_deref(),
            opened_by_user_id: Some(ctx.user.id),
        },
        now,
    )
    .await?;
    audit_trail::append(
        &txn,
        &ctx.actor(now),
        Entry::new("escalation", e.id, "open").after(snapshot(&EscalationView::from(&e))),
    )
    .await?;
    txn.commit().await?;
    Ok(HttpResponse::Created().json(EscalationView::from(&e)))
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct ListEscalations {
    pub program_id: Option<i64>,
    pub status: Option<EscalationStatus>,
    pub limit: Option<u64>,
    pub offset: Option<u64>,
}

/// Escalations of the programs you can see, newest first.
#[utoipa::path(
    tag = "escalations",
    params(ListEscalations),
    responses((status = 200, description = "One page", body = Page<EscalationView>))
)]
#[get("/escalations")]
pub async fn list_escalations(
    state: web::Data<AppState>,
    ctx: AuthContext,
    query: web::Query<ListEscalations>,
) -> ApiResult<web::Json<Page<EscalationView>>> {
    let q = query.into_inner();
    let mut select = scoped::<escalation::Entity>(&ctx);
    if let Some(p) = q.program_id {
        select = select.filter(escalation::Column::ProgramId.eq(p));
    }
    if let Some(s) = q.status {
        select = select.filter(escalation::Column::Status.eq(s));
    }
    let select = select
        .order_by_desc(escalation::Column::OpenedAt)
        .order_by_desc(escalation::Column::Id);
    let (items, total, limit, offset) = fetch_page(&state.db, select, q.limit, q.offset).await?;
    Ok(web::Json(Page {
        items: items.iter().map(EscalationView::from).collect(),
        total,
        limit,
        offset,
    }))
}

async fn detail<C: ConnectionTrait>(
    conn: &C,
    e: &escalation::Model,
) -> ApiResult<EscalationDetail> {
    let pages = escalation::page::Entity::find()
        .filter(escalation::page::Column::EscalationId.eq(e.id))
        .order_by_asc(escalation::page::Column::Seq)
        .all(conn)
        .await?
        .into_iter()
        .map(|p| EscalationPageView {
            seq: p.seq,
            tier: p.tier_index,
            recipients: serde_json::from_str(&p.recipients).unwrap_or_default(),
            paged_at: p.paged_at,
        })
        .collect();
    let events = escalation::event::Entity::find()
        .filter(escalation::event::Column::EscalationId.eq(e.id))
        .order_by_asc(escalation::event::Column::Id)
        .all(conn)
        .await?
        .into_iter()
        .map(|ev| EscalationEventView {
            kind: ev.kind,
            tier: ev.tier_index,
            detail: serde_json::from_str(&ev.detail).unwrap_or_default(),
            actor_user_id: ev.actor_user_id,
            channel: ev.channel,
            at: ev.at,
        })
        .collect();
    Ok(EscalationDetail {
        escalation: EscalationView::from(e),
        policy: e.policy(),
        pages,
        events,
    })
}

/// One escalation with its policy snapshot, every page (who, which tier, when) and event.
#[utoipa::path(
    tag = "escalations",
    params(("id" = i64, Path, description = "Escalation id")),
    responses(
        (status = 200, description = "The escalation", body = EscalationDetail),
        (status = 404, description = "No such escalation visible to the caller", body = crate::error::Problem, content_type = "application/problem+json")
    )
)]
#[get("/escalations/{id}")]
pub async fn get_escalation(
    state: web::Data<AppState>,
    ctx: AuthContext,
    id: web::Path<i64>,
) -> ApiResult<web::Json<EscalationDetail>> {
    let e = find_scoped::<escalation::Entity, _>(&state.db, &ctx, id.into_inner()).await?;
    Ok(web::Json(detail(&state.db, &e).await?))
}

/// What an acknowledgement did.
enum Acked {
    Now,
    /// The same person acknowledged it before (idempotent).
    Already(DateTime<Utc>),
}

#[allow(clippy::too_many_arguments)]
/// The acknowledgement both channels share: compare-and-set, event, audit, and a notice
/// to everyone paged so far saying who took it.
async fn acknowledge<C: ConnectionTrait>(
    conn: &C,
    e: &escalation::Model,
    acker: &user::Model,
    channel: &str,
    note: Option<&str>,
    request_id: Option<String>,
    base_url: &str,
    now: DateTime<Utc>,
) -> ApiResult<Acked> {
    if e.status == EscalationStatus::Acknowledged && e.acknowledged_by_user_id == Some(acker.id) {
        return Ok(Acked::Already(e.acknowledged_at.unwrap_or(now)));
    }
    if !escalation::can_acknowledge(e.status) {
        return Err(ApiError::Conflict {
            code: "illegal_transition",
            detail: match e.status {
                EscalationStatus::Acknowledged => {
                    "already acknowledged by someone else".to_string()
                }
                _ => format!("the escalation is {}", wire_name(&e.status)),
            },
            current_state: Some(wire_name(&e.status)),
            allowed_events: Some(vec![]),
            current_version: Some(e.version),
        });
    }
    let res = escalation::Entity::update_many()
        .col_expr(
            escalation::Column::Status,
            Expr::value(EscalationStatus::Acknowledged.to_value()),
        )
        .col_expr(escalation::Column::AcknowledgedAt, Expr::value(Some(now)))
        .col_expr(
            escalation::Column::AcknowledgedByUserId,
            Expr::value(Some(acker.id)),
        )
        .col_expr(
            escalation::Column::AckChannel,
            Expr::value(Some(channel.to_string())),
        )
        .col_expr(
            escalation::Column::NextPageAt,
            Expr::value(Option::<DateTime<Utc>>::None),
        )
        .col_expr(
            escalation::Column::Version,
            Expr::col(escalation::Column::Version).add(1),
        )
        .filter(escalation::Column::Id.eq(e.id))
        .filter(escalation::Column::Version.eq(e.version))
        .exec(conn)
        .await?;
    if res.rows_affected != 1 {
        return Err(ApiError::stale_version(e.version + 1));
    }
    let updated = escalation::Entity::find_by_id(e.id)
        .one(conn)
        .await?
        .ok_or(ApiError::NotFound)?;
    escalation::record_event(
        conn,
        e.id,
        "acknowledged",
        e.current_tier,
        serde_json::json!({"by": acker.display_name, "note": note}),
        Some((acker.id, channel)),
        now,
    )
    .await?;
    audit_trail::append(
        conn,
        &Actor {
            org_id: acker.org_id,
            user_id: Some(acker.id),
            request_id,
            at: now,
        },
        Entry::new("escalation", e.id, "acknowledge")
            .before(snapshot(&EscalationView::from(e)))
            .after(snapshot(&EscalationView::from(&updated)))
            .reason(Some(format!("acknowledged via {channel}"))),
    )
    .await?;
    entity::domain_event::emit(
        conn,
        e.program_id,
        Event::EscalationAcknowledged(EscalationAcknowledged {
            escalation_id: e.id,
            by_user_id: acker.id,
            channel: channel.to_string(),
            tier: e.current_tier,
        }),
        now,
    )
    .await?;
    let message = format!(
        "{} acknowledged this escalation via {channel}{}. Paging has stopped.{}",
        acker.display_name,
        e.current_tier
            .map(|t| format!(" (tier {} was paged)", t + 1))
            .unwrap_or_default(),
        note.map(|n| format!(" Note: {n}")).unwrap_or_default()
    );
    mail::escalation::notify_paged(
        conn,
        &updated,
        EscalationStatus::Acknowledged,
        &format!("acknowledged:{}", e.reopen_count),
        &format!("Acknowledged by {}", acker.display_name),
        &message,
        base_url,
        now,
    )
    .await?;
    Ok(Acked::Now)
}

/// Acknowledge: "I am on it". Stops paging and tells everyone already paged who took it.
/// The same person again is a no-op (200).
#[utoipa::path(
    tag = "escalations",
    params(("id" = i64, Path, description = "Escalation id")),
    request_body = AcknowledgeEscalation,
    responses(
        (status = 200, description = "Acknowledged (now or before, by you)", body = EscalationView),
        (status = 403, description = "Viewers do not acknowledge", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such escalation visible to the caller", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 409, description = "Acknowledged by someone else, or resolved", body = crate::error::Problem, content_type = "application/problem+json")
    )
)]
#[post("/escalations/{id}/ack")]
pub async fn ack_escalation(
    state: web::Data<AppState>,
    ctx: AuthContext,
    id: web::Path<i64>,
    body: ApiJson<AcknowledgeEscalation>,
) -> ApiResult<web::Json<EscalationView>> {
    let b = body.into_inner();
    may_act(&ctx)?;
    let txn = entity::db::begin_write(&state.db).await?;
    let e = find_scoped::<escalation::Entity, _>(&txn, &ctx, id.into_inner()).await?;
    let now = state.clock.now();
    acknowledge(
        &txn,
        &e,
        &ctx.user,
        "api",
        b.note.as_deref(),
        ctx.request_id.clone(),
        &ctx.public_base_url,
        now,
    )
    .await?;
    let current = escalation::Entity::find_by_id(e.id)
        .one(&txn)
        .await?
        .ok_or(ApiError::NotFound)?;
    txn.commit().await?;
    Ok(web::Json(EscalationView::from(&current)))
}

/// Resolve: the cause is dealt with. Stops paging and tells everyone paged.
#[utoipa::path(
    tag = "escalations",
    params(("id" = i64, Path, description = "Escalation id")),
    request_body = ResolveEscalation,
    responses(
        (status = 200, description = "Resolved", body = EscalationView),
        (status = 403, description = "Viewers do not resolve", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such escalation visible to the caller", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 409, description = "Already resolved", body = crate::error::Problem, content_type = "application/problem+json")
    )
)]
#[post("/escalations/{id}/resolve")]
pub async fn resolve_escalation(
    state: web::Data<AppState>,
    ctx: AuthContext,
    id: web::Path<i64>,
    body: ApiJson<ResolveEscalation>,
) -> ApiResult<web::Json<EscalationView>> {
    let b = body.into_inner();
    may_act(&ctx)?;
    let txn = entity::db::begin_write(&state.db).await?;
    let e = find_scoped::<escalation::Entity, _>(&txn, &ctx, id.into_inner()).await?;
    if !escalation::can_resolve(e.status) {
        return Err(ApiError::Conflict {
            code: "illegal_transition",
            detail: "the escalation is already resolved".to_string(),
            current_state: Some(wire_name(&e.status)),
            allowed_events: Some(vec![]),
            current_version: Some(e.version),
        });
    }
    let now = state.clock.now();
    if !escalation::resolve(&txn, &e, Some(ctx.user.id), "api", now).await? {
        return Err(ApiError::stale_version(e.version + 1));
    }
    let updated = escalation::Entity::find_by_id(e.id)
        .one(&txn)
        .await?
        .ok_or(ApiError::NotFound)?;
    audit_trail::append(
        &txn,
        &ctx.actor(now),
        Entry::new("escalation", e.id, "resolve")
            .before(snapshot(&EscalationView::from(&e)))
            .after(snapshot(&EscalationView::from(&updated)))
            .reason(Some(b.reason.trim().to_string())),
    )
    .await?;
    mail::escalation::notify_paged(
        &txn,
        &updated,
        EscalationStatus::Resolved,
        "resolved",
        "Resolved",
        &format!(
            "{} resolved this escalation: {}",
            ctx.user.display_name,
            b.reason.trim()
        ),
        &ctx.public_base_url,
        now,
    )
    .await?;
    txn.commit().await?;
    Ok(web::Json(EscalationView::from(&updated)))
}

// ------------------------------------------------------------------ the email link

#[derive(Debug, Deserialize, IntoParams)]
pub struct AckLinkQuery {
    /// The signed, personal, single-use token from the page email.
    pub token: Option<String>,
}

fn token_hash(token: &str) -> String {
    use sha2::{Digest, Sha256};
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// Verifies the link; the escalation and the person it was sent to, or the error page.
async fn link_target(
    state: &AppState,
    token: Option<&str>,
) -> Result<(escalation::Model, user::Model), HttpResponse> {
    let now = state.clock.now();
    let refused = |why: String| {
        html(
            StatusCode::BAD_REQUEST,
            pages::page(
                "This acknowledgement link is not valid",
                &format!(
                    "{why}. Nothing was changed. Acknowledge through the API, or use the link of your latest page."
                ),
                None,
            ),
        )
    };
    let token = token.ok_or_else(|| refused("The link has no token".to_string()))?;
    let key = link_secret::get_or_create(&state.db, now)
        .await
        .map_err(|_| pages::try_again("The service cannot check this link right now."))?;
    let link = Link::verify(&key, token, link_token::ACK_PURPOSE, now).map_err(|e| {
        let mut why = e.to_string();
        if let Some(first) = why.get_mut(0..1) {
            first.make_ascii_uppercase();
        }
        refused(why)
    })?;
    let Link::Ack {
        escalation_id,
        user_id,
        ..
    } = link
    else {
        return Err(refused("The link is malformed".to_string()));
    };
    let e = escalation::Entity::find_by_id(escalation_id)
        .one(&state.db)
        .await
        .ok()
        .flatten();
    let u = user::Entity::find_by_id(user_id)
        .one(&state.db)
        .await
        .ok()
        .flatten()
        .filter(|u| u.active);
    match (e, u) {
        (Some(e), Some(u)) => Ok((e, u)),
        _ => Err(html(
            StatusCode::NOT_FOUND,
            pages::page(
                "Not found",
                "The escalation or your account no longer exists. Nothing was changed.",
                None,
            ),
        )),
    }
}

/// The acknowledgement link of a page email: a confirmation page (following a link
/// changes nothing, so mail scanners cannot acknowledge for you).
#[utoipa::path(
    tag = "escalations",
    security(()),
    params(AckLinkQuery),
    responses(
        (status = 200, description = "Confirmation page with an Acknowledge button (POST to the same link)", body = String, content_type = "text/html"),
        (status = 400, description = "Forged, altered or expired link: nothing changes", body = String, content_type = "text/html"),
        (status = 404, description = "The escalation or the account no longer exists", body = String, content_type = "text/html"),
        (status = 503, description = "The database is busy: try again", body = String, content_type = "text/html")
    )
)]
#[get("/escalations/ack")]
pub async fn ack_link_page(
    state: web::Data<AppState>,
    query: web::Query<AckLinkQuery>,
) -> HttpResponse {
    let (e, u) = match link_target(&state, query.token.as_deref()).await {
        Ok(t) => t,
        Err(page) => return page,
    };
    let action = format!(
        "{}/api/v1/escalations/ack?token={}",
        state.public_base_url.trim_end_matches('/'),
        query.token.as_deref().unwrap_or_default()
    );
    html(
        StatusCode::OK,
        pages::page(
            &format!("Acknowledge: {}", e.title),
            &format!(
                "{}, acknowledging tells everyone paged that you are handling it and stops paging the next tiers. Status now: {}.",
                u.display_name,
                wire_name(&e.status)
            ),
            Some((&action, "Acknowledge")),
        ),
    )
}

/// Acknowledge through the link (the page's button). Single use; the same person again
/// sees their acknowledgement (200); a used link after a re-open, or a link of someone
/// else after an acknowledgement, changes nothing (409 page).
#[utoipa::path(
    tag = "escalations",
    security(()),
    params(AckLinkQuery),
    responses(
        (status = 200, description = "Acknowledged (now, or before by you)", body = String, content_type = "text/html"),
        (status = 400, description = "Forged, altered or expired link: nothing changes", body = String, content_type = "text/html"),
        (status = 404, description = "The escalation or the account no longer exists", body = String, content_type = "text/html"),
        (status = 409, description = "Already used, acknowledged by someone else, or resolved: nothing changes", body = String, content_type = "text/html"),
        (status = 503, description = "The database is busy: try again", body = String, content_type = "text/html")
    )
)]
#[post("/escalations/ack")]
pub async fn ack_link(state: web::Data<AppState>, query: web::Query<AckLinkQuery>) -> HttpResponse {
    let (e, u) = match link_target(&state, query.token.as_deref()).await {
        Ok(t) => t,
        Err(page) => return page,
    };
    let hash = token_hash(query.token.as_deref().unwrap_or_default());
    match ack_through_link(&state, e.id, &u, &hash).await {
        Ok(LinkOutcome::Acknowledged) => html(
            StatusCode::OK,
            pages::page(
                "Acknowledged",
                &format!(
                    "Thank you, {}. Everyone paged has been told you are handling \u{201c}{}\u{201d}; no further tiers will be paged.",
                    u.display_name, e.title
                ),
                None,
            ),
        ),
        Ok(LinkOutcome::AlreadyYours(at)) => html(
            StatusCode::OK,
            pages::page(
                "Already acknowledged by you",
                &format!(
                    "You acknowledged this escalation at {} UTC. Nothing else changed.",
                    at.format("%Y-%m-%d %H:%M")
                ),
                None,
            ),
        ),
        Ok(LinkOutcome::Refused(why)) => html(
            StatusCode::CONFLICT,
            pages::page("Nothing changed", &why, None),
        ),
        Err(err) => {
            tracing::warn!(%err, "acknowledgement through a link failed");
            pages::try_again("The acknowledgement could not be saved.")
        }
    }
}

enum LinkOutcome {
    Acknowledged,
    AlreadyYours(DateTime<Utc>),
    Refused(String),
}

async fn ack_through_link(
    state: &AppState,
    escalation_id: i64,
    u: &user::Model,
    hash: &str,
) -> ApiResult<LinkOutcome> {
    let now = state.clock.now();
    let txn = entity::db::begin_write(&state.db).await?;
    let e = escalation::Entity::find_by_id(escalation_id)
        .one(&txn)
        .await?
        .ok_or(ApiError::NotFound)?;
    let used = escalation::ack_link_use::Entity::find()
        .filter(escalation::ack_link_use::Column::TokenHash.eq(hash))
        .one(&txn)
        .await?;
    if used.is_some() {
        return Ok(
            if e.status == EscalationStatus::Acknowledged && e.acknowledged_by_user_id == Some(u.id)
            {
                LinkOutcome::AlreadyYours(e.acknowledged_at.unwrap_or(now))
            } else {
                LinkOutcome::Refused(
                    "This link was already used. Use the link of your latest page, or the API."
                        .to_string(),
                )
            },
        );
    }
    let outcome = match acknowledge(
        &txn,
        &e,
        u,
        "email",
        None,
        None,
        &state.public_base_url,
        now,
    )
    .await
    {
        Ok(Acked::Now) => LinkOutcome::Acknowledged,
        Ok(Acked::Already(at)) => LinkOutcome::AlreadyYours(at),
        Err(ApiError::Conflict { detail, .. }) => {
            return Ok(LinkOutcome::Refused(format!("Not acknowledged: {detail}.")));
        }
        Err(err) => return Err(err),
    };
    escalation::ack_link_use::Entity::insert(escalation::ack_link_use::ActiveModel {
        id: NotSet,
        token_hash: Set(hash.to_string()),
        escalation_id: Set(e.id),
        user_id: Set(u.id),
        used_at: Set(now),
    })
    .on_conflict(
        OnConflict::column(escalation::ack_link_use::Column::TokenHash)
            .do_nothing()
            .to_owned(),
    )
    .exec_without_returning(&txn)
    .await?;
    txn.commit().await?;
    Ok(outcome)
}
