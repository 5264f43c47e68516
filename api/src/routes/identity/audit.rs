//! Reading and verifying the organization's audit trail.

use actix_web::{get, web};
use entity::{audit_event, audit_trail};
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::auth::{AuthContext, find_scoped, scoped};
use crate::error::ApiResult;
use crate::pagination::{Keyset, ListQuery, Paging};
use crate::routes::{Checks, Page, fetch_page};
use crate::state::AppState;
use crate::views::identity::{AuditEventView, BrokenLinkView};

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct AuditFilter {
    /// Whose trail: your organization's (default), or a duplicate CMO's merged into it
    /// (its trail stays chained under its own id).
    pub org_id: Option<i64>,
    /// e.g. `user`, `api_token`, `organization`, `signature` (one line).
    #[param(max_length = 64, example = "deviation")]
    pub entity_type: Option<String>,
    /// Id of the entity (with `entity_type`).
    #[param(max_length = 128, example = "41")]
    pub entity_id: Option<String>,
    pub actor_user_id: Option<i64>,
    /// e.g. `create`, `update`, `close` (one line).
    #[param(max_length = 64, example = "create")]
    pub action: Option<String>,
}

/// The organization's audit events in chain order, filtered (`org_id`: the trail of a
/// duplicate CMO merged into yours).
#[utoipa::path(
    tag = "audit",
    params(AuditFilter, Paging),
    responses(
        (status = 200, description = "One page of audit events", body = Page<AuditEventView>),
        (status = 404, description = "`org_id` is neither yours nor merged into yours", body = crate::error::Problem)
    )
)]
#[get("/audit-events")]
pub async fn list_audit_events(
    state: web::Data<AppState>,
    ctx: AuthContext,
    query: ListQuery<AuditFilter>,
) -> ApiResult<web::Json<Page<AuditEventView>>> {
    let filter = query.filter;
    let mut checks = Checks::default();
    checks.optional_text("entity_type", filter.entity_type.as_deref(), 1, 64);
    checks.optional_text("entity_id", filter.entity_id.as_deref(), 1, 128);
    checks.optional_text("action", filter.action.as_deref(), 1, 64);
    checks.finish()?;
    let org_id = trail_of(&state, &ctx, filter.org_id).await?;
    let mut select =
        scoped::<audit_event::Entity>(&ctx).filter(audit_event::Column::OrgId.eq(org_id));
    if let Some(t) = filter.entity_type {
        select = select.filter(audit_event::Column::EntityType.eq(t));
    }
    if let Some(id) = filter.entity_id {
        select = select.filter(audit_event::Column::EntityId.eq(id));
    }
    if let Some(actor) = filter.actor_user_id {
        select = select.filter(audit_event::Column::ActorUserId.eq(actor));
    }
    if let Some(action) = filter.action {
        select = select.filter(audit_event::Column::Action.eq(action));
    }
    let page = fetch_page(
        &state.reads,
        select,
        Keyset::asc([audit_event::Column::Seq, audit_event::Column::Id]),
        &query.paging,
    )
    .await?;
    let items = &page.items;
    let items = {
        let services = service_accounts(&state.reads, items).await?;
        items
            .iter()
            .map(|e| AuditEventView::new(e, &services))
            .collect()
    };
    Ok(web::Json(page.with_items(items)))
}

/// One audit event.
#[utoipa::path(
    tag = "audit",
    params(("id" = i64, Path, description = "Audit event id")),
    responses(
        (status = 200, description = "The audit event", body = AuditEventView),
        (status = 404, description = "No such event in the caller's organization", body = crate::error::Problem)
    )
)]
#[get("/audit-events/{id}")]
pub async fn get_audit_event(
    state: web::Data<AppState>,
    ctx: AuthContext,
    id: web::Path<i64>,
) -> ApiResult<web::Json<AuditEventView>> {
    let event = find_scoped::<audit_event::Entity, _>(&state.reads, &ctx, id.into_inner()).await?;
    let services = service_accounts(&state.reads, std::slice::from_ref(&event)).await?;
    Ok(web::Json(AuditEventView::new(&event, &services)))
}

#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({"intact": true, "status": "intact", "checked": 42, "head_seq": 42,
    "keyed_rows": 30, "unkeyed_rows": 12, "unchecked_rows": 0, "unknown_key_ids": [],
    "current_key_id": "3f9a0c1d2b4e5f60",
    "caveats": ["12 row(s) were written before the chain was keyed: they are consistent, but someone able to write the database could have rewritten them; a checkpoint kept outside the system covers them"],
    "first_broken_link": null}))]
pub struct ChainVerification {
    /// `true` when every event and the chain head were checked and hold: each row
    /// re-hashes (under the chain key) to its stored hash and links to its predecessor,
    /// and the head's seal matches where the chain ends.
    pub intact: bool,
    /// `intact`; `broken` (see `first_broken_link`); or `incomplete`: nothing broken
    /// among what could be checked, but some rows are keyed with a key this installation
    /// does not hold (`unknown_key_ids`).
    pub status: String,
    /// Events whose hash was recomputed and matched, before stopping at a broken link.
    pub checked: u64,
    /// Sequence number of the newest event recorded in the chain head.
    pub head_seq: i64,
    /// Of `checked`, rows keyed with a key this installation holds.
    pub keyed_rows: u64,
    /// Of `checked`, rows written before the chain was keyed (plain SHA-256): consistent,
    /// but not proof against someone able to write the database.
    pub unkeyed_rows: u64,
    /// Rows (or the head) keyed with a key this installation does not hold.
    pub unchecked_rows: u64,
    pub unknown_key_ids: Vec<String>,
    /// The key new rows are keyed with.
    pub current_key_id: String,
    /// What this result does not prove, in plain words.
    pub caveats: Vec<String>,
    pub first_broken_link: Option<BrokenLinkView>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ChainQuery {
    /// Whose chain: your organization's (default), or a duplicate CMO's merged into it.
    pub org_id: Option<i64>,
}

/// Recompute the organization's hash chain and report the first broken link.
#[utoipa::path(
    tag = "audit",
    params(ChainQuery),
    responses(
        (status = 200, description = "Result of the verification (also when broken)", body = ChainVerification),
        (status = 404, description = "`org_id` is neither yours nor merged into yours", body = crate::error::Problem)
    )
)]
#[get("/audit-events/verify")]
pub async fn verify_audit_chain(
    state: web::Data<AppState>,
    ctx: AuthContext,
    query: web::Query<ChainQuery>,
) -> ApiResult<web::Json<ChainVerification>> {
    let org_id = trail_of(&state, &ctx, query.org_id).await?;
    let result = audit_trail::verify(&state.reads, &state.chain_keys, org_id).await?;
    Ok(web::Json(ChainVerification::new(result, &state.chain_keys)))
}

impl ChainVerification {
    /// In one line: "intact, 120 entries checked, head 120" (and where it breaks). The
    /// caveats are said apart.
    pub fn summary(&self) -> String {
        format!(
            "{}, {} entries checked, head {}{}",
            self.status,
            self.checked,
            self.head_seq,
            self.first_broken_link
                .as_ref()
                .map(|b| format!(", first broken link at seq {} ({})", b.seq, b.kind))
                .unwrap_or_default()
        )
    }

    pub fn new(result: audit_trail::Verification, keys: &entity::audit::KeyRing) -> Self {
        ChainVerification {
            intact: result.intact(),
            status: result.status().to_string(),
            checked: result.checked(),
            head_seq: result.head_seq,
            keyed_rows: result.coverage.keyed,
            unkeyed_rows: result.coverage.plain,
            unchecked_rows: result.coverage.unchecked,
            unknown_key_ids: result.coverage.unknown_key_ids.iter().cloned().collect(),
            current_key_id: keys.current().id().to_string(),
            caveats: result.caveats(),
            first_broken_link: result.broken.map(|b| BrokenLinkView {
                seq: b.seq,
                event_id: b.event_id,
                kind: b.kind.as_str().to_string(),
            }),
        }
    }
}

/// Which of these events' actors are service accounts (one query per page).
pub(crate) async fn service_accounts<C: sea_orm::ConnectionTrait>(
    conn: &C,
    events: &[entity::audit_event::Model],
) -> ApiResult<Vec<i64>> {
    use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, QuerySelect};
    let actors: Vec<i64> = events.iter().filter_map(|e| e.actor_user_id).collect();
    if actors.is_empty() {
        return Ok(Vec::new());
    }
    Ok(entity::user::Entity::find()
        .select_only()
        .column(entity::user::Column::Id)
        .filter(entity::user::Column::Id.is_in(actors))
        .filter(entity::user::Column::IsServiceAccount.eq(true))
        .into_tuple()
        .all(conn)
        .await?)
}

/// The organization whose trail is asked for: the caller's own, or one merged into it
/// (anything else: 404).
async fn trail_of(state: &AppState, ctx: &AuthContext, asked: Option<i64>) -> ApiResult<i64> {
    match asked {
        None => Ok(ctx.org_id()),
        Some(id) if id == ctx.org_id() => Ok(id),
        Some(id) => entity::organization::Entity::find_by_id(id)
            .filter(entity::organization::Column::MergedIntoOrgId.eq(ctx.org_id()))
            .one(&state.db)
            .await?
            .map(|o| o.id)
            .ok_or(crate::error::ApiError::NotFound),
    }
}
