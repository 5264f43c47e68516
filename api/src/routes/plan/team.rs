//! A program's team: who is on it, at which governance tier, with which expertise.

use actix_web::{HttpRequest, HttpResponse, delete, get, patch, post, web};
use entity::access::may_manage_program;
use entity::audit_trail::{self, Entry};
use entity::notification::{self, NotificationKind};
use entity::team_member::{self, GovernanceTier};
use entity::{program, user};
use sea_orm::{
    ActiveModelTrait, ActiveValue::NotSet, ActiveValue::Set, ColumnTrait, EntityTrait, QueryFilter,
};
use serde::Deserialize;
use utoipa::ToSchema;

use crate::auth::{AuthContext, find_scoped};
use crate::error::{ApiError, ApiResult};
use crate::pagination::{Keyset, Page, Paging, fetch_page};
use crate::routes::{ApiJson, Checks, Validate, snapshot};
use crate::state::AppState;
use crate::views::plan::{self as views, TeamMemberView};
use crate::write::{Patched, update_versioned};
use crate::write_txn::WriteTxn;
use actix_web::http::StatusCode;

fn check_tags(c: &mut Checks, tags: Option<&Vec<String>>) {
    if let Some(tags) = tags {
        if tags.len() > 20 {
            c.fail(
                "expertise_tags",
                "too_many",
                "at most 20 tags, e.g. [\"microbiology\", \"equipment\"]",
            );
        } else if let Err(why) = team_member::normalize_tags(tags) {
            c.fail("expertise_tags", "invalid_tag", why);
        }
    }
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({
    "user_id": 5, "governance_tier": "core_team", "program_role": "QA lead",
    "expertise_tags": ["quality", "microbiology"], "wants_digest": true, "wants_reminders": true,
    "muted_notifications": []
}))]
pub struct AddTeamMember {
    /// A user of the sponsor or of the program's CMO.
    pub user_id: i64,
    pub governance_tier: GovernanceTier,
    #[schema(min_length = 1, max_length = 100)]
    pub program_role: String,
    pub expertise_tags: Option<Vec<String>>,
    /// Default true.
    pub wants_digest: Option<bool>,
    /// Default true.
    pub wants_reminders: Option<bool>,
    /// Notification kinds to switch off; default none.
    pub muted_notifications: Option<Vec<NotificationKind>>,
}

impl Validate for AddTeamMember {
    fn validate(&self, c: &mut Checks) {
        c.text("program_role", &self.program_role, 1, 100);
        check_tags(c, self.expertise_tags.as_ref());
    }
}

/// Add a member to the program's team (sponsor admins and program managers).
#[utoipa::path(
    tag = "programs",
    params(("id" = i64, Path, description = "Program id")),
    request_body = AddTeamMember,
    responses(
        (status = 201, description = "Member added", body = TeamMemberView),
        (status = 403, description = "Only the sponsor's admins and program managers edit the team", body = crate::error::Problem),
        (status = 404, description = "No such program visible to the caller", body = crate::error::Problem),
        (status = 409, description = "The user is already on the team", body = crate::error::Problem),
        (status = 422, description = "Invalid fields, or the user is not of the sponsor or the CMO", body = crate::error::Problem)
    )
)]
#[post("/programs/{id}/team")]
pub async fn add_team_member(
    state: web::Data<AppState>,
    ctx: AuthContext,
    id: web::Path<i64>,
    body: ApiJson<AddTeamMember>,
) -> ApiResult<HttpResponse> {
    let b = body.into_inner();
    let txn = WriteTxn::begin(&state, &ctx).await?;
    let prog = find_scoped::<program::Entity, _>(&txn, &ctx, id.into_inner()).await?;
    if !may_manage_program(ctx.caller(), prog.sides()) {
        return Err(ApiError::Forbidden(
            "only the sponsor's admins and program managers edit the team".to_string(),
        ));
    }
    let member_user = user::Entity::find_by_id(b.user_id)
        .filter(user::Column::OrgId.is_in(prog.staffing_orgs(&txn).await?))
        .filter(user::Column::Active.eq(true))
        .one(&txn)
        .await?
        .ok_or_else(|| {
            ApiError::invalid(
                "user_id",
                "not_on_program",
                "not an active user of the sponsor or of the program's CMO (while the two are connected)",
            )
        })?;
    let tags = team_member::normalize_tags(&b.expertise_tags.unwrap_or_default())
        .map_err(|why| ApiError::invalid("expertise_tags", "invalid_tag", why))?;
    let now = state.clock.now();
    let member = team_member::ActiveModel {
        id: NotSet,
        program_id: Set(prog.id),
        user_id: Set(member_user.id),
        governance_tier: Set(b.governance_tier),
        program_role: Set(b.program_role.trim().to_string()),
        expertise_tags: Set(serde_json::to_string(&tags).unwrap_or_else(|_| "[]".to_string())),
        wants_digest: Set(b.wants_digest.unwrap_or(true)),
        wants_reminders: Set(b.wants_reminders.unwrap_or(true)),
        muted_notifications: Set(notification::store_muted(
            b.muted_notifications.unwrap_or_default(),
        )),
        created_at: Set(now),
        updated_at: Set(now),
        version: Set(1),
    }
    .insert(&txn)
    .await?;
    let view = views::team_member(&txn, &member).await?;
    audit_trail::append(
        &txn,
        &ctx.actor(now),
        Entry::new("team_member", member.id, "add").after(snapshot(&view)),
    )
    .await?;
    txn.respond(StatusCode::CREATED, &view).await
}

/// The program's team, by governance tier then id, each member with their name, email and
/// organization.
#[utoipa::path(
    tag = "programs",
    params(("id" = i64, Path, description = "Program id"), Paging),
    responses(
        (status = 200, description = "One page of the team", body = Page<TeamMemberView>),
        (status = 422, description = "Invalid limit or offset", body = crate::error::Problem),
        (status = 404, description = "No such program visible to the caller", body = crate::error::Problem)
    )
)]
#[get("/programs/{id}/team")]
pub async fn list_team(
    state: web::Data<AppState>,
    ctx: AuthContext,
    id: web::Path<i64>,
    paging: web::Query<Paging>,
) -> ApiResult<web::Json<Page<TeamMemberView>>> {
    let prog = find_scoped::<program::Entity, _>(&state.reads, &ctx, id.into_inner()).await?;
    let select = team_member::Entity::find().filter(team_member::Column::ProgramId.eq(prog.id));
    let page = fetch_page(
        &state.reads,
        select,
        Keyset::asc([team_member::Column::GovernanceTier, team_member::Column::Id]),
        &paging,
    )
    .await?;
    let members = &page.items;
    let items = views::team_members(&state.reads, members).await?;
    Ok(web::Json(page.with_items(items)))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"version": 1, "governance_tier": "leadership", "wants_digest": false, "muted_notifications": ["minor_closure", "production"]}))]
pub struct UpdateTeamMember {
    /// The version being updated (or send `If-Match`).
    pub version: Option<i32>,
    pub governance_tier: Option<GovernanceTier>,
    #[schema(min_length = 1, max_length = 100)]
    pub program_role: Option<String>,
    pub expertise_tags: Option<Vec<String>>,
    pub wants_digest: Option<bool>,
    pub wants_reminders: Option<bool>,
    /// The notification kinds switched off (replaces the list; `[]` switches all on).
    pub muted_notifications: Option<Vec<NotificationKind>>,
}

impl Validate for UpdateTeamMember {
    fn validate(&self, c: &mut Checks) {
        c.optional_text("program_role", self.program_role.as_deref(), 1, 100);
        check_tags(c, self.expertise_tags.as_ref());
    }
}

/// Change a member's tier, role, tags or notification preferences. Sponsor admins and
/// program managers change anything; members change their own notification preferences.
#[utoipa::path(
    tag = "programs",
    params(
        ("id" = i64, Path, description = "Team member id"),
        ("If-Match" = Option<String>, Header, pattern = r#"^(W/)?"?[0-9]{1,9}"?$"#, description = "Version being updated (alternative to `version` in the body)")
    ),
    request_body = UpdateTeamMember,
    responses(
        (status = 200, description = "The updated member", body = TeamMemberView),
        (status = 403, description = "Not allowed to make this change", body = crate::error::Problem),
        (status = 404, description = "No such team member visible to the caller", body = crate::error::Problem),
        (status = 409, description = "Stale version", body = crate::error::Problem)
    )
)]
#[patch("/team-members/{id}")]
pub async fn update_team_member(
    req: HttpRequest,
    state: web::Data<AppState>,
    ctx: AuthContext,
    id: web::Path<i64>,
    body: ApiJson<UpdateTeamMember>,
) -> ApiResult<HttpResponse> {
    let b = body.into_inner();
    let own_preferences_only =
        b.governance_tier.is_none() && b.program_role.is_none() && b.expertise_tags.is_none();
    let view = update_versioned::<team_member::Entity, _>(
        &state,
        &ctx,
        &req,
        id.into_inner(),
        b.version,
        "team_member",
        async |txn, current| {
            let prog = find_scoped::<program::Entity, _>(txn, &ctx, current.program_id).await?;
            ctx.require(
                may_manage_program(ctx.caller(), prog.sides())
                    || (current.user_id == ctx.user.id && own_preferences_only),
                "sponsor admins and program managers edit the team; members only their own preferences",
            )
        },
        async |_, _, m| {
            if let Some(v) = b.governance_tier {
                m.governance_tier = v;
            }
            if let Some(v) = b.program_role {
                m.program_role = v.trim().to_string();
            }
            if let Some(tags) = b.expertise_tags {
                let tags = team_member::normalize_tags(&tags)
                    .map_err(|why| ApiError::invalid("expertise_tags", "invalid_tag", why))?;
                m.expertise_tags = serde_json::to_string(&tags).unwrap_or_else(|_| "[]".to_string());
            }
            if let Some(v) = b.wants_digest {
                m.wants_digest = v;
            }
            if let Some(v) = b.wants_reminders {
                m.wants_reminders = v;
            }
            if let Some(kinds) = b.muted_notifications {
                m.muted_notifications = notification::store_muted(kinds);
            }
            Ok(Patched::update(None))
        },
        async |txn, m| views::team_member(txn, m).await,
    )
    .await?;
    Ok(view)
}

/// Remove a member from the team (sponsor admins and program managers).
#[utoipa::path(
    tag = "programs",
    params(("id" = i64, Path, description = "Team member id")),
    responses(
        (status = 204, description = "Removed"),
        (status = 403, description = "Only the sponsor's admins and program managers edit the team", body = crate::error::Problem),
        (status = 404, description = "No such team member visible to the caller", body = crate::error::Problem)
    )
)]
#[delete("/team-members/{id}")]
pub async fn remove_team_member(
    state: web::Data<AppState>,
    ctx: AuthContext,
    id: web::Path<i64>,
) -> ApiResult<HttpResponse> {
    let txn = WriteTxn::begin(&state, &ctx).await?;
    let current = find_scoped::<team_member::Entity, _>(&txn, &ctx, id.into_inner()).await?;
    let prog = find_scoped::<program::Entity, _>(&txn, &ctx, current.program_id).await?;
    if !may_manage_program(ctx.caller(), prog.sides()) {
        return Err(ApiError::Forbidden(
            "only the sponsor's admins and program managers edit the team".to_string(),
        ));
    }
    team_member::Entity::delete_by_id(current.id)
        .exec(&txn)
        .await?;
    audit_trail::append(
        &txn,
        &ctx.actor(state.clock.now()),
        Entry::new("team_member", current.id, "remove")
            .before(snapshot(&views::team_member(&txn, &current).await?)),
    )
    .await?;
    txn.respond_empty(StatusCode::NO_CONTENT).await
}
