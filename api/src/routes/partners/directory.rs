//! The CMO directory: a sponsor finds a CMO already on the installation to invite it
//! rather than register a copy, a CMO's admin finds the organization to merge a duplicate
//! into. It shows names and the caller's own connection only: never whether or with whom
//! a CMO works.

use std::collections::BTreeMap;

use actix_web::{get, web};
use entity::relationship::{self, ConnectionStatus};
use entity::{OrgKind, Role, organization};
use sea_orm::sea_query::{Expr, ExprTrait, Func, LikeExpr};
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, QueryOrder, QuerySelect};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::auth::AuthContext;
use crate::error::{ApiError, ApiResult};
use crate::extract::Checks;
use crate::routes::Page;
use crate::state::AppState;

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct DirectoryQuery {
    /// Part of the CMO's name, at least 3 characters besides white space around it, one
    /// line, any case, e.g. `lonza`.
    #[param(
        min_length = 3,
        max_length = 200,
        pattern = r"^[^\S\u0000-\u001F\u007F-\u009F]*[^\s\u0000-\u001F\u007F-\u009F][^\u0000-\u001F\u007F-\u009F]+[^\s\u0000-\u001F\u007F-\u009F][^\S\u0000-\u001F\u007F-\u009F]*$",
        example = "lonza"
    )]
    pub name: String,
}

/// A CMO on the installation, as the directory shows it to a sponsor.
#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({"org_id": 2, "name": "Lonza Visp", "your_connection": null, "your_connection_id": null}))]
pub struct DirectoryEntry {
    pub org_id: i64,
    pub name: String,
    /// Your organization's connection with it, if any (nobody else's is ever shown).
    pub your_connection: Option<ConnectionStatus>,
    pub your_connection_id: Option<i64>,
}

/// Find a CMO already on the installation by name, to invite it rather than register a
/// copy (sponsor users), or to merge a duplicate into it (CMO admins). At most 20
/// matches, by name. Shows names and your own connection only: never whether or with
/// whom a CMO works.
#[utoipa::path(
    tag = "partners",
    params(DirectoryQuery),
    responses(
        (status = 200, description = "Matching CMOs", body = Page<DirectoryEntry>),
        (status = 403, description = "Neither a sponsor organization's user nor a CMO's admin", body = crate::error::Problem),
        (status = 422, description = "`name` shorter than 3 characters (white space around it aside), or not one line", body = crate::error::Problem)
    )
)]
#[get("/cmo-directory")]
pub async fn cmo_directory(
    state: web::Data<AppState>,
    ctx: AuthContext,
    query: web::Query<DirectoryQuery>,
) -> ApiResult<web::Json<Page<DirectoryEntry>>> {
    // Sponsors look for partners; a CMO's admins look for the organization to merge a
    // duplicate into.
    if ctx.org.kind != OrgKind::Sponsor && ctx.user.role != Role::Admin {
        return Err(ApiError::Forbidden(
            "the CMO directory is for sponsors looking for a partner (and CMO admins merging \
             a duplicate)"
                .to_string(),
        ));
    }
    let wanted = query.name.trim().to_lowercase();
    let mut c = Checks::default();
    c.text("name", &query.name, 3, 200);
    c.finish()?;
    // LIKE with the pattern's own wildcards escaped; lower() on both sides, so the match
    // ignores case alike on SQLite and PostgreSQL.
    let escaped = wanted
        .replace('\\', "\\\\")
        .replace('%', "\\%")
        .replace('_', "\\_");
    let pattern = format!("%{escaped}%");
    let found = organization::Entity::find()
        .filter(organization::Column::Kind.eq(OrgKind::Cmo))
        .filter(organization::Column::MergedIntoOrgId.is_null())
        // A deactivated CMO (a finished qualification run) is nobody's partner.
        .filter(organization::Column::DeactivatedAt.is_null())
        .filter(
            Expr::expr(Func::lower(Expr::col(organization::Column::Name)))
                .like(LikeExpr::new(pattern).escape('\\')),
        )
        .order_by_asc(organization::Column::Name)
        .order_by_asc(organization::Column::Id)
        .limit(20)
        .all(&state.reads)
        .await?;
    let own: BTreeMap<i64, relationship::Model> = relationship::Entity::find()
        .filter(relationship::Column::SponsorOrgId.eq(ctx.org_id()))
        .filter(relationship::Column::CmoOrgId.is_in(found.iter().map(|o| o.id)))
        .all(&state.reads)
        .await?
        .into_iter()
        .map(|r| (r.cmo_org_id, r))
        .collect();
    let items: Vec<DirectoryEntry> = found
        .into_iter()
        .map(|o| DirectoryEntry {
            your_connection: own.get(&o.id).map(|r| r.connection),
            your_connection_id: own.get(&o.id).map(|r| r.id),
            org_id: o.id,
            name: o.name,
        })
        .collect();
    Ok(web::Json(Page::whole(items, 20)))
}
