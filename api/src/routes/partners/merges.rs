//! Merging a CMO registered twice into the one that stays (`entity::cmo_merge`): the
//! duplicate's admin proposes (or, while nobody of it has joined, an admin of the sponsor
//! that registered it), the surviving CMO's admin accepts or declines. Accepting moves
//! the duplicate's people, programs, sponsor relationships and facts in one transaction.

use std::collections::BTreeMap;

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, get, post, web};
use chrono::{DateTime, Utc};
use entity::cmo_merge::{self, MergeEvent, MergeStatus, Moved, Side};
use entity::workflow::cmo_merge::Step;
use entity::{OrgKind, Role, organization};
use sea_orm::{ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::{AdminsEmail, email_admins, has_joined};
use crate::auth::{AuthContext, TenantScoped, find_scoped, scoped};
use crate::error::{ApiError, ApiResult};
use crate::extract::{ApiJson, Checks, Validate};
use crate::pagination::{Keyset, ListQuery, Paging};
use crate::routes::{Page, fetch_page};
use crate::state::AppState;
use crate::transition::{ApiStep, answer, run_step};
use crate::views::{BlockedEvent, EventOptions};
use crate::write::insert_audited_because;
use crate::write_txn::WriteTxn;

/// Each side of a merge reads it: the duplicate, the CMO that stays, and the sponsor that
/// proposed it for a duplicate it registered.
impl TenantScoped for cmo_merge::Entity {
    fn tenant_condition(ctx: &AuthContext) -> sea_orm::Condition {
        cmo_merge::party_to(ctx.org_id())
    }
}

/// A proposal to merge a duplicate CMO into the one that stays.
#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({"id": 4, "absorbed_org_id": 7, "absorbed_name": "Lonza Visp (Acme)",
    "survivor_org_id": 2, "survivor_name": "Lonza Visp", "status": "merged",
    "reason": "Acme registered us before we joined; one profile for all our sponsors",
    "proposed_by_user_id": 9, "proposed_at": "2026-12-01T09:00:00Z",
    "responded_by_user_id": 5, "responded_at": "2026-12-01T10:30:00Z", "response": null,
    "moved": {"people": 3, "duplicate_accounts_deactivated": 1, "relationships": 1, "programs": 2,
        "quality_agreements": 1, "sites": 1, "inspections": 2, "webhooks": 0, "feed_events": 37,
        "invitations_revoked": 0},
    "allowed_events": [], "version": 2}))]
pub struct MergeView {
    pub id: i64,
    /// The duplicate, merged away: its audit trail stays under this id
    /// (`GET /audit-events?org_id=`).
    pub absorbed_org_id: i64,
    pub absorbed_name: String,
    /// The CMO that stays.
    pub survivor_org_id: i64,
    pub survivor_name: String,
    /// `proposed`, then `merged`, `declined` or `withdrawn`.
    pub status: MergeStatus,
    pub reason: String,
    pub proposed_by_user_id: i64,
    pub proposed_at: DateTime<Utc>,
    pub responded_by_user_id: Option<i64>,
    pub responded_at: Option<DateTime<Utc>>,
    /// The answer's note.
    pub response: Option<String>,
    /// What moved, once merged.
    pub moved: Option<Moved>,
    /// What you can do with it now: `accept` and `decline` are the surviving CMO's
    /// admins', `withdraw` the proposing side's.
    pub allowed_events: Vec<MergeEvent>,
    /// Single-record answers only: events the state offers that you cannot take, and why
    /// (e.g. a sponsor working with both).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub blocked_events: Option<Vec<BlockedEvent>>,
    pub version: i32,
}

async fn merge_views(
    conn: &impl ConnectionTrait,
    rows: &[cmo_merge::Model],
) -> ApiResult<Vec<MergeView>> {
    let ids = rows
        .iter()
        .flat_map(|r| [r.absorbed_org_id, r.survivor_org_id]);
    let names: BTreeMap<i64, String> = organization::Entity::find()
        .filter(organization::Column::Id.is_in(ids))
        .all(conn)
        .await?
        .into_iter()
        .map(|o| (o.id, o.name))
        .collect();
    let name = |id| names.get(&id).cloned().unwrap_or_default();
    Ok(rows
        .iter()
        .map(|r| MergeView {
            id: r.id,
            absorbed_org_id: r.absorbed_org_id,
            absorbed_name: name(r.absorbed_org_id),
            survivor_org_id: r.survivor_org_id,
            survivor_name: name(r.survivor_org_id),
            status: r.status,
            reason: r.reason.clone(),
            proposed_by_user_id: r.proposed_by_user_id,
            proposed_at: r.proposed_at,
            responded_by_user_id: r.responded_by_user_id,
            responded_at: r.responded_at,
            response: r.response.clone(),
            moved: r.moved(),
            allowed_events: cmo_merge::allowed_events(r.status),
            blocked_events: None,
            version: r.version,
        })
        .collect())
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"absorbed_org_id": 7, "survivor_org_id": 2,
    "reason": "Acme registered us before we joined; one profile for all our sponsors"}))]
pub struct ProposeMerge {
    /// The duplicate: your own organization (as its admin), or a CMO your sponsor
    /// organization registered and nobody of which has joined yet.
    pub absorbed_org_id: i64,
    /// The CMO that stays (find it with `GET /cmo-directory?name=`).
    pub survivor_org_id: i64,
    /// Why (1–2,000 characters): kept in both organizations' audit trails.
    #[schema(min_length = 1, max_length = 2000)]
    pub reason: String,
}

impl Validate for ProposeMerge {
    fn validate(&self, c: &mut Checks) {
        c.text("reason", &self.reason, 1, 2_000);
        if self.absorbed_org_id == self.survivor_org_id {
            c.fail(
                "survivor_org_id",
                "same_organization",
                "the CMO that stays is another organization than the duplicate",
            );
        }
    }
}

/// Propose merging a duplicate CMO into the one that stays. The duplicate's admins
/// propose; while nobody of the duplicate has joined, the admins of the sponsor that
/// registered it may. The surviving CMO's admins are emailed and answer with
/// `POST /cmo-merges/{id}/events`. A sponsor invited by or connected to both organizations
/// cannot hold two qualifications of one CMO: its admins are emailed to choose which holds
/// (`PUT /cmo-merges/{id}/sponsor-choice`, or the emailed page), and the merge cannot be
/// accepted before every such sponsor has chosen. Nothing tells the proposer, or any
/// other sponsor, who they are.
#[utoipa::path(
    tag = "partners",
    request_body = ProposeMerge,
    responses(
        (status = 201, description = "Proposed", body = MergeView),
        (status = 403, description = "Not an admin of the duplicate (or of the sponsor that registered it, before anyone of it joined)", body = crate::error::Problem),
        (status = 404, description = "The duplicate is not an organization you may act for", body = crate::error::Problem),
        (status = 409, description = "A proposal for the duplicate is waiting (`merge_pending`), or one of the two was merged already (`already_merged`)", body = crate::error::Problem),
        (status = 422, description = "`survivor_org_id` is not another CMO on the installation (`unknown_cmo`, `same_organization`), or `reason` is missing", body = crate::error::Problem)
    )
)]
#[post("/cmo-merges")]
pub async fn propose_merge(
    state: web::Data<AppState>,
    ctx: AuthContext,
    body: ApiJson<ProposeMerge>,
) -> ApiResult<HttpResponse> {
    let b = body.into_inner();
    if ctx.user.role != Role::Admin {
        return Err(ApiError::Forbidden(
            "merges are proposed by an admin of the duplicate CMO".to_string(),
        ));
    }
    let cmo = |id: i64| {
        organization::Entity::find_by_id(id)
            .filter(organization::Column::Kind.eq(OrgKind::Cmo))
            .one(&state.db)
    };
    // The duplicate: the caller's own, or one their sponsor registered (anything else is
    // not theirs to name: 404, as for any record of another organization).
    let absorbed = cmo(b.absorbed_org_id)
        .await?
        .filter(|o| o.id == ctx.org_id() || o.parent_org_id == Some(ctx.org_id()))
        .ok_or(ApiError::NotFound)?;
    if absorbed.id != ctx.org_id() && has_joined(&state.db, absorbed.id).await? {
        return Err(ApiError::Forbidden(format!(
            "{}'s own admins propose its merge now that its people have joined",
            absorbed.name
        )));
    }
    let survivor = cmo(b.survivor_org_id).await?.ok_or_else(|| {
        ApiError::invalid(
            "survivor_org_id",
            "unknown_cmo",
            "not a CMO on this installation (find it with GET /api/v1/cmo-directory?name=…)",
        )
    })?;
    for o in [&absorbed, &survivor] {
        if o.merged_into_org_id.is_some() {
            return Err(ApiError::conflict(
                "already_merged",
                format!("{} was merged into another organization already", o.name),
            ));
        }
    }
    let txn = WriteTxn::begin(&state, &ctx).await?;
    let waiting = cmo_merge::Entity::find()
        .filter(cmo_merge::Column::AbsorbedOrgId.eq(absorbed.id))
        .filter(cmo_merge::Column::Status.eq(MergeStatus::Proposed))
        .one(&txn)
        .await?;
    if let Some(w) = waiting {
        return Err(ApiError::conflict(
            "merge_pending",
            format!(
                "merge {} of {} is waiting for an answer; withdraw it first",
                w.id, absorbed.name
            ),
        ));
    }
    let shared = cmo_merge::shared_sponsors(&txn, absorbed.id, survivor.id).await?;
    let now = state.clock.now();
    let reason = b.reason.trim().to_string();
    let (row, _) = insert_audited_because(
        &txn,
        &ctx.actor(now),
        "cmo_merge",
        Some(reason.clone()),
        cmo_merge::proposal(
            absorbed.id,
            survivor.id,
            reason.clone(),
            (ctx.user.id, ctx.org_id()),
            now,
        ),
        async |r| {
            merge_views(&txn, std::slice::from_ref(r))
                .await?
                .pop()
                .ok_or(ApiError::NotFound)
        },
    )
    .await?;
    let paragraphs = [
        format!(
            "{} of {} proposes merging {} into {}: its people, programs, sponsor \
             relationships (each with its qualification history), quality agreements, sites \
             and inspections would move to {}, and {} would remain only as a name in the \
             history.",
            ctx.user.display_name,
            ctx.org.name,
            absorbed.name,
            survivor.name,
            survivor.name,
            absorbed.name
        ),
        format!("Their reason: {reason}"),
        format!(
            "Accept or decline on the page below (sign in as an admin of {}). From an API \
             client: POST /api/v1/cmo-merges/{}/events with {{\"event\": \"accept\"}} or \
             {{\"event\": \"decline\"}}.",
            survivor.name, row.id
        ),
    ];
    email_admins(
        &txn,
        &state.public_base_url,
        AdminsEmail {
            org_id: survivor.id,
            subject: &format!("Merge {} into {}?", absorbed.name, survivor.name),
            headline: &format!("{} asks to merge into {}", absorbed.name, survivor.name),
            paragraphs: &paragraphs,
            link: format!("{}/cmo-merges/{}/answer", state.public_base_url, row.id),
            key: format!("cmo_merge_proposed:{}", row.id),
        },
        now,
    )
    .await?;
    // Each sponsor working with both chooses which of its qualifications holds. The
    // email names neither the proposer nor any other sponsor.
    for sponsor in shared.keys() {
        let paragraphs = [
            format!(
                "{} is to be merged into {}: they are one manufacturer, registered twice. \
                 Your organization works with both, so once they are one, one of your two \
                 relationships holds (connection, qualification and its signed history, \
                 notes, agreements) and the other ends, kept as history. Your programs with \
                 either move to {}.",
                absorbed.name, survivor.name, survivor.name
            ),
            format!(
                "Choose which holds on the page below (an admin or quality user of your \
                 organization, with a reason). {}'s admins cannot accept the merge before \
                 you have chosen.",
                survivor.name
            ),
        ];
        email_admins(
            &txn,
            &state.public_base_url,
            AdminsEmail {
                org_id: *sponsor,
                subject: &format!(
                    "{} and {} are to be merged: which qualification holds?",
                    absorbed.name, survivor.name
                ),
                headline: &format!("{} is to be merged into {}", absorbed.name, survivor.name),
                paragraphs: &paragraphs,
                link: format!("{}/cmo-merges/{}/choice", state.public_base_url, row.id),
                key: format!("cmo_merge_choice:{}:{sponsor}", row.id),
            },
            now,
        )
        .await?;
    }
    let view = answer::<Step>(&txn, &ctx, &row, now).await?;
    txn.respond(StatusCode::CREATED, &view).await
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct MergeFilter {
    /// Only merges in this state, e.g. `proposed` for those waiting for an answer.
    pub status: Option<MergeStatus>,
}

/// The merges your organization is party to (as the duplicate, the CMO that stays, or the
/// sponsor that proposed one), by id.
#[utoipa::path(
    tag = "partners",
    params(MergeFilter, Paging),
    responses((status = 200, description = "One page of merges", body = Page<MergeView>))
)]
#[get("/cmo-merges")]
pub async fn list_merges(
    state: web::Data<AppState>,
    ctx: AuthContext,
    query: ListQuery<MergeFilter>,
) -> ApiResult<web::Json<Page<MergeView>>> {
    let filter = query.filter;
    let mut select = scoped::<cmo_merge::Entity>(&ctx);
    if let Some(s) = filter.status {
        select = select.filter(cmo_merge::Column::Status.eq(s));
    }
    let page = fetch_page(
        &state.reads,
        select,
        Keyset::asc([cmo_merge::Column::Id]),
        &query.paging,
    )
    .await?;
    let rows = &page.items;
    let items = merge_views(&state.reads, rows).await?;
    Ok(web::Json(page.with_items(items)))
}

/// One merge, with what you can do with it now.
#[utoipa::path(
    tag = "partners",
    params(("id" = i64, Path, description = "Merge id")),
    responses(
        (status = 200, description = "The merge", body = MergeView),
        (status = 404, description = "No such merge of your organization", body = crate::error::Problem)
    )
)]
#[get("/cmo-merges/{id}")]
pub async fn get_merge(
    state: web::Data<AppState>,
    ctx: AuthContext,
    id: web::Path<i64>,
) -> ApiResult<web::Json<MergeView>> {
    let m = find_scoped::<cmo_merge::Entity, _>(&state.reads, &ctx, id.into_inner()).await?;
    Ok(web::Json(
        answer::<Step>(&state.reads, &ctx, &m, state.clock.now()).await?,
    ))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"event": "accept", "version": 1}))]
pub struct MergeTransition {
    pub event: MergeEvent,
    /// A note with the answer (1–2,000 characters), kept in the audit trail.
    #[schema(min_length = 1, max_length = 2000)]
    pub note: Option<String>,
    /// The version you read.
    pub version: Option<i32>,
}

impl Validate for MergeTransition {
    fn validate(&self, c: &mut Checks) {
        c.optional_text("note", self.note.as_deref(), 1, 2_000);
    }
}

/// Answer or take back a merge proposal: `accept` (the merge happens, in this request)
/// and `decline` by the surviving CMO's admins; `withdraw` by the proposing side's admins.
#[utoipa::path(
    tag = "partners",
    params(
        ("id" = i64, Path, description = "Merge id"),
        ("If-Match" = Option<String>, Header, pattern = r#"^(W/)?"?[0-9]{1,9}"?$"#, description = "Version the caller saw (optional; alternative to `version` in the body)")
    ),
    request_body = MergeTransition,
    responses(
        (status = 200, description = "The merge in its new state (`moved` says what moved)", body = MergeView),
        (status = 403, description = "Not an admin of the side that takes this event", body = crate::error::Problem),
        (status = 404, description = "No such merge of your organization", body = crate::error::Problem),
        (status = 409, description = "Illegal event (`current_state`, `allowed_events`), stale version, a sponsor working with both has not chosen which qualification holds (`merge_conflict`, naming it), or one of the two was merged meanwhile (`already_merged`)", body = crate::error::Problem)
    )
)]
#[post("/cmo-merges/{id}/events")]
pub async fn transition_merge(
    req: HttpRequest,
    state: web::Data<AppState>,
    ctx: AuthContext,
    id: web::Path<i64>,
    body: ApiJson<MergeTransition>,
) -> ApiResult<HttpResponse> {
    let b = body.into_inner();
    let step = Step {
        event: b.event,
        by_user_id: ctx.user.id,
        note: b.note.map(|m| m.trim().to_string()),
    };
    run_step(&state, &ctx, &req, id.into_inner(), step, None, b.version).await
}

impl ApiStep for Step {
    type View = MergeView;
    fn offer(view: &mut Self::View, options: EventOptions<Self::Event>) {
        view.allowed_events = options.allowed;
        view.blocked_events = Some(options.blocked);
    }
    /// Merges are admins' business, on each side.
    async fn may_step(
        _conn: &impl ConnectionTrait,
        ctx: &AuthContext,
        _m: &cmo_merge::Model,
    ) -> ApiResult<()> {
        if ctx.user.role != Role::Admin {
            return Err(ApiError::Forbidden(
                "merges are answered and withdrawn by admins".to_string(),
            ));
        }
        Ok(())
    }
    /// The CMO that stays answers; the proposing side (the duplicate, or the sponsor that
    /// proposed for it) withdraws.
    async fn may_take(
        _conn: &impl ConnectionTrait,
        ctx: &AuthContext,
        m: &cmo_merge::Model,
        step: &Self,
    ) -> ApiResult<()> {
        let allowed = match cmo_merge::side_of(step.event) {
            Side::Survivor => ctx.org_id() == m.survivor_org_id,
            Side::Proposer => [m.absorbed_org_id, m.proposed_by_org_id].contains(&ctx.org_id()),
        };
        if !allowed {
            return Err(ApiError::Forbidden(
                match cmo_merge::side_of(step.event) {
                    Side::Survivor => "the admins of the CMO that stays accept or decline",
                    Side::Proposer => "the proposing side's admins withdraw a proposal",
                }
                .to_string(),
            ));
        }
        Ok(())
    }
    async fn view(
        conn: &impl ConnectionTrait,
        _ctx: &AuthContext,
        m: &cmo_merge::Model,
        _now: DateTime<Utc>,
    ) -> ApiResult<MergeView> {
        // Read again: an accepted merge's follow-up wrote what moved after the step.
        let current = cmo_merge::Entity::find_by_id(m.id)
            .one(conn)
            .await?
            .filter(|c| c.version == m.version)
            .unwrap_or_else(|| m.clone());
        merge_views(conn, std::slice::from_ref(&current))
            .await?
            .pop()
            .ok_or(ApiError::NotFound)
    }
}
