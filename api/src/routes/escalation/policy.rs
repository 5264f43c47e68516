//! A program's escalation policy over HTTP (SPEC §6): read, edit, check and dry-run the
//! call tree.

use actix_web::{HttpRequest, get, put, web};
use chrono::{DateTime, Datelike, TimeDelta, Utc};
use entity::audit_trail::{self, Entry};
use entity::deviation::Category;
use entity::escalation_policy::{self, PolicyDoc, Recipient};
use entity::program;
use sea_orm::sea_query::{Expr, ExprTrait};
use sea_orm::{
    ActiveModelTrait, ActiveValue::NotSet, ActiveValue::Set, ColumnTrait, EntityTrait, QueryFilter,
};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::auth::{AuthContext, find_scoped};
use crate::error::{ApiError, ApiResult};
use crate::extract::{ApiJson, Checks, Validate};
use crate::routes::{expected_version, snapshot, wire_name};
use crate::state::AppState;
use crate::views::escalation::{PolicyView, policy_view};
use crate::write_txn::WriteTxn;
use actix_web::HttpResponse;
use actix_web::http::StatusCode;

// ---------------------------------------------------------------------------- policy

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"tiers": [
    {"name": "QA on call", "member_ids": [7], "match_expertise": true, "wait_minutes": 10},
    {"name": "Leadership", "governance_tiers": ["leadership"], "wait_minutes": 20}],
    "repeat_last": 2, "ack_timeout_minutes": 45, "version": 1}))]
pub struct UpdatePolicy {
    pub tiers: Vec<escalation_policy::Tier>,
    /// How many more times the last tier is paged after its first page.
    #[schema(minimum = 0, maximum = 10)]
    pub repeat_last: i32,
    /// Minutes an acknowledged escalation may stay unresolved before it re-opens.
    #[schema(minimum = 1, maximum = 10080)]
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

/// The program's escalation policy (the SPEC default until someone edits it).
#[utoipa::path(
    tag = "escalations",
    params(("id" = i64, Path, description = "Program id")),
    responses(
        (status = 200, description = "The policy", body = PolicyView),
        (status = 404, description = "No such program visible to the caller", body = crate::error::Problem)
    )
)]
#[get("/programs/{id}/escalation-policy")]
pub async fn get_policy(
    state: web::Data<AppState>,
    ctx: AuthContext,
    id: web::Path<i64>,
) -> ApiResult<web::Json<PolicyView>> {
    let prog = find_scoped::<program::Entity, _>(&state.reads, &ctx, id.into_inner()).await?;
    Ok(web::Json(policy_view(&state.reads, prog.id).await?))
}

/// Replace the program's escalation policy (sponsor admins and program managers).
/// Running escalations keep the policy they opened with.
#[utoipa::path(
    tag = "escalations",
    params(("id" = i64, Path, description = "Program id")),
    request_body = UpdatePolicy,
    responses(
        (status = 200, description = "The new policy", body = PolicyView),
        (status = 403, description = "Only the sponsor's admins and program managers edit the policy", body = crate::error::Problem),
        (status = 404, description = "No such program visible to the caller", body = crate::error::Problem),
        (status = 409, description = "Stale version", body = crate::error::Problem)
    )
)]
#[put("/programs/{id}/escalation-policy")]
pub async fn update_policy(
    req: HttpRequest,
    state: web::Data<AppState>,
    ctx: AuthContext,
    id: web::Path<i64>,
    body: ApiJson<UpdatePolicy>,
) -> ApiResult<HttpResponse> {
    let b = body.into_inner();
    let version = expected_version(&req, b.version)?;
    let txn = WriteTxn::begin(&state, &ctx).await?;
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
    txn.respond(StatusCode::OK, &updated).await
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
        (status = 404, description = "No such program visible to the caller", body = crate::error::Problem)
    )
)]
#[get("/programs/{id}/escalation-policy/check")]
pub async fn check_policy(
    state: web::Data<AppState>,
    ctx: AuthContext,
    id: web::Path<i64>,
) -> ApiResult<web::Json<PolicyCheck>> {
    let prog = find_scoped::<program::Entity, _>(&state.reads, &ctx, id.into_inner()).await?;
    let policy = escalation_policy::for_program(&state.reads, prog.id).await?;
    let team = escalation_policy::team(&state.reads, prog.id).await?;
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
        (status = 422, description = "Unknown category, or `at` outside 2000–2200", body = crate::error::Problem),
        (status = 404, description = "No such program visible to the caller", body = crate::error::Problem)
    )
)]
#[get("/programs/{id}/escalation-policy/dry-run")]
pub async fn dry_run(
    state: web::Data<AppState>,
    ctx: AuthContext,
    id: web::Path<i64>,
    query: web::Query<DryRunQuery>,
) -> ApiResult<web::Json<DryRun>> {
    let prog = find_scoped::<program::Entity, _>(&state.reads, &ctx, id.into_inner()).await?;
    let policy = escalation_policy::for_program(&state.reads, prog.id).await?;
    let team = escalation_policy::team(&state.reads, prog.id).await?;
    let at = query.at.unwrap_or_else(|| state.clock.now());
    if at.year() < 2000 || at.year() > 2200 {
        return Err(ApiError::invalid(
            "at",
            "out_of_range",
            "a time in the years 2000 to 2200, as RFC 3339 with its offset, e.g. at=2027-03-02T02:00:00Z",
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
