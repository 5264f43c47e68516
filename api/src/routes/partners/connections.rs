//! Connecting sponsors and CMOs (the partner network): a sponsor finds a CMO already on
//! the installation in the directory and invites it; the CMO's admin accepts or
//! declines; either side's admin may end a connection once no work is open between
//! them. Nothing here tells anyone which other sponsors work with a CMO: the
//! directory shows names and the caller's own connection only, and each side lists only
//! the relationships it is party to.

use std::collections::BTreeMap;

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, get, post, web};
use chrono::{DateTime, Utc};
use entity::cmo::QualificationStatus;
use entity::relationship::{self, ConnectionEvent, ConnectionStatus, Party};
use entity::workflow::connection::Step;
use entity::{OrgKind, Role, organization, user};
use sea_orm::{ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::auth::{AuthContext, find_scoped, scoped};
use crate::error::{ApiError, ApiResult};
use crate::extract::{ApiJson, Checks, Validate};
use crate::pagination::{Keyset, ListQuery, Paging};
use crate::routes::{Page, fetch_page};
use crate::state::AppState;
use crate::transition::{ApiStep, answer, run_step_answering};
use crate::views::{BlockedEvent, EventOptions};
use crate::write::insert_audited;
use crate::write_txn::WriteTxn;

/// A sponsor's relationship with a CMO, as either side reads it.
#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({"id": 5, "sponsor_org_id": 1, "sponsor_name": "Acme Pharma", "cmo_org_id": 2,
    "cmo_name": "Lonza Visp", "connection": "invited", "qualification_status": "prospect",
    "invitation_message": "We would like to run ACM-202's fill-finish with you.",
    "invited_at": "2026-12-01T09:00:00Z", "responded_at": null,
    "ended_at": null, "ended_by": null, "end_reason": null,
    "allowed_events": ["accept", "decline"], "blocked_events": [], "version": 1}))]
pub struct ConnectionView {
    pub id: i64,
    pub sponsor_org_id: i64,
    pub sponsor_name: String,
    pub cmo_org_id: i64,
    pub cmo_name: String,
    pub connection: ConnectionStatus,
    /// The sponsor's qualification of the CMO (read by the two of them only).
    pub qualification_status: QualificationStatus,
    pub invitation_message: Option<String>,
    pub invited_at: Option<DateTime<Utc>>,
    pub responded_at: Option<DateTime<Utc>>,
    /// When the connection ended, by whom (name and organization) and why (`ended` only).
    pub ended_at: Option<DateTime<Utc>>,
    #[schema(example = "Dana Admin (Acme Pharma)")]
    pub ended_by: Option<String>,
    pub end_reason: Option<String>,
    /// What you can do with it now: `invite` (again) and `withdraw` are the sponsor
    /// admins', `accept` and `decline` the CMO admins', `end` either side's admins'.
    pub allowed_events: Vec<ConnectionEvent>,
    /// Single-record answers only: events the state offers that you cannot take, and why.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub blocked_events: Option<Vec<BlockedEvent>>,
    pub version: i32,
}

async fn connection_views(
    conn: &impl ConnectionTrait,
    rows: &[relationship::Model],
) -> ApiResult<Vec<ConnectionView>> {
    let ids = rows.iter().flat_map(|r| [r.sponsor_org_id, r.cmo_org_id]);
    let names: BTreeMap<i64, String> = organization::Entity::find()
        .filter(organization::Column::Id.is_in(ids))
        .all(conn)
        .await?
        .into_iter()
        .map(|o| (o.id, o.name))
        .collect();
    let name = |id| names.get(&id).cloned().unwrap_or_default();
    let enders: BTreeMap<i64, user::Model> = user::Entity::find()
        .filter(user::Column::Id.is_in(rows.iter().filter_map(|r| r.ended_by_user_id)))
        .all(conn)
        .await?
        .into_iter()
        .map(|u| (u.id, u))
        .collect();
    Ok(rows
        .iter()
        .map(|r| ConnectionView {
            id: r.id,
            sponsor_org_id: r.sponsor_org_id,
            sponsor_name: name(r.sponsor_org_id),
            cmo_org_id: r.cmo_org_id,
            cmo_name: name(r.cmo_org_id),
            connection: r.connection,
            qualification_status: r.qualification_status,
            invitation_message: r.invitation_message.clone(),
            invited_at: r.invited_at,
            responded_at: r.responded_at,
            ended_at: r.ended_at,
            ended_by: r
                .ended_by_user_id
                .and_then(|id| enders.get(&id))
                .map(|u| format!("{} ({})", u.display_name, name(u.org_id))),
            end_reason: r.end_reason.clone(),
            allowed_events: relationship::allowed_events(r.connection),
            blocked_events: None,
            version: r.version,
        })
        .collect())
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ConnectionFilter {
    /// Only connections in this state, e.g. `invited` for the invitations to answer.
    pub connection: Option<ConnectionStatus>,
}

/// Your organization's connections: a sponsor's with its CMOs, a CMO's with the sponsors
/// that invited it or work with it (an invitation withdrawn before it was answered is
/// the sponsor's alone). Ordered by id.
#[utoipa::path(
    tag = "partners",
    params(ConnectionFilter, Paging),
    responses((status = 200, description = "One page of connections", body = Page<ConnectionView>))
)]
#[get("/cmo-connections")]
pub async fn list_connections(
    state: web::Data<AppState>,
    ctx: AuthContext,
    query: ListQuery<ConnectionFilter>,
) -> ApiResult<web::Json<Page<ConnectionView>>> {
    let filter = query.filter;
    let mut select = scoped::<relationship::Entity>(&ctx);
    if let Some(c) = filter.connection {
        select = select.filter(relationship::Column::Connection.eq(c));
    }
    let page = fetch_page(
        &state.reads,
        select,
        Keyset::asc([relationship::Column::Id]),
        &query.paging,
    )
    .await?;
    let rows = &page.items;
    let items = connection_views(&state.reads, rows).await?;
    Ok(web::Json(page.with_items(items)))
}

/// One connection, with what you can do with it now.
#[utoipa::path(
    tag = "partners",
    params(("id" = i64, Path, description = "Connection id")),
    responses(
        (status = 200, description = "The connection", body = ConnectionView),
        (status = 404, description = "No such connection of your organization", body = crate::error::Problem)
    )
)]
#[get("/cmo-connections/{id}")]
pub async fn get_connection(
    state: web::Data<AppState>,
    ctx: AuthContext,
    id: web::Path<i64>,
) -> ApiResult<web::Json<ConnectionView>> {
    let r = find_scoped::<relationship::Entity, _>(&state.reads, &ctx, id.into_inner()).await?;
    Ok(web::Json(
        answer::<Step>(&state.reads, &ctx, &r, state.clock.now()).await?,
    ))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"cmo_org_id": 2, "message": "We would like to run ACM-202's fill-finish with you."}))]
pub struct InviteCmo {
    /// The CMO's organization id, from `GET /cmo-directory`.
    pub cmo_org_id: i64,
    /// A note to the CMO's admins (1–2,000 characters).
    #[schema(min_length = 1, max_length = 2000)]
    pub message: Option<String>,
}

impl Validate for InviteCmo {
    fn validate(&self, c: &mut Checks) {
        c.optional_text("message", self.message.as_deref(), 1, 2_000);
    }
}

/// Invite a CMO already on the installation to connect (sponsor admins). Its admins are
/// emailed and accept or decline (`POST /cmo-connections/{id}/events`). Once connected,
/// you read the CMO's facts, qualify it, record agreements and name it on programs. An
/// invitation declined or withdrawn before, or a connection that ended, is sent again
/// (200).
#[utoipa::path(
    tag = "partners",
    request_body = InviteCmo,
    responses(
        (status = 201, description = "Invited", body = ConnectionView),
        (status = 200, description = "Invited again after a decline, a withdrawal or an end", body = ConnectionView),
        (status = 403, description = "Not an admin of a sponsor organization", body = crate::error::Problem),
        (status = 409, description = "Already invited or connected (`already_connected`)", body = crate::error::Problem),
        (status = 422, description = "`cmo_org_id` is not a CMO on the installation (`unknown_cmo`)", body = crate::error::Problem)
    )
)]
#[post("/cmo-connections")]
pub async fn invite_cmo(
    req: HttpRequest,
    state: web::Data<AppState>,
    ctx: AuthContext,
    body: ApiJson<InviteCmo>,
) -> ApiResult<HttpResponse> {
    let b = body.into_inner();
    if ctx.org.kind != OrgKind::Sponsor || ctx.user.role != Role::Admin {
        return Err(ApiError::Forbidden(
            "a sponsor's admins invite CMOs to connect".to_string(),
        ));
    }
    let message = b
        .message
        .as_deref()
        .map(str::trim)
        .filter(|m| !m.is_empty())
        .map(str::to_string);
    let cmo = organization::Entity::find_by_id(b.cmo_org_id)
        .filter(organization::Column::Kind.eq(OrgKind::Cmo))
        .filter(organization::Column::MergedIntoOrgId.is_null())
        .one(&state.db)
        .await?
        .ok_or_else(|| {
            ApiError::invalid(
                "cmo_org_id",
                "unknown_cmo",
                "not a CMO on this installation (find one with GET /api/v1/cmo-directory?name=…)",
            )
        })?;
    if let Some(existing) = relationship::between(&state.db, ctx.org_id(), cmo.id).await? {
        if matches!(
            existing.connection,
            ConnectionStatus::Invited | ConnectionStatus::Connected
        ) {
            return Err(ApiError::conflict(
                "already_connected",
                format!(
                    "your organization's connection with {} is {} already (connection {})",
                    cmo.name,
                    crate::routes::wire_name(&existing.connection),
                    existing.id
                ),
            ));
        }
        let step = Step {
            event: ConnectionEvent::Invite,
            by_user_id: ctx.user.id,
            message,
        };
        return step_and_tell(&state, &ctx, &req, existing.id, step, None).await;
    }
    let now = state.clock.now();
    let txn = WriteTxn::begin(&state, &ctx).await?;
    let (row, _) = insert_audited(
        &txn,
        &ctx.actor(now),
        "cmo_relationship",
        relationship::new_row(
            ctx.org_id(),
            cmo.id,
            ConnectionStatus::Invited,
            Some(ctx.user.id),
            message.clone(),
            now,
        ),
        async |r| {
            connection_views(&txn, std::slice::from_ref(r))
                .await?
                .pop()
                .ok_or(ApiError::NotFound)
        },
    )
    .await?;
    entity::workflow::emit(
        &*txn,
        entity::workflow::Emitted::Organizations {
            program_id: None,
            sponsor_org_id: row.sponsor_org_id,
            cmo_org_id: Some(row.cmo_org_id),
            event: entity::domain_event::Event::CmoConnectionChanged(
                entity::domain_event::CmoConnectionChanged {
                    connection_id: row.id,
                    sponsor_org_id: row.sponsor_org_id,
                    cmo_org_id: row.cmo_org_id,
                    event: ConnectionEvent::Invite,
                    from: None,
                    to: row.connection,
                },
            ),
        },
        now,
    )
    .await?;
    let view = answer::<Step>(&txn, &ctx, &row, now).await?;
    tell_cmo_admins(&txn, &state, &ctx, &view, now).await?;
    txn.respond(StatusCode::CREATED, &view).await
}

/// Emails each active admin of the CMO about the invitation, in the transaction that
/// sent it; its link opens the page where they answer.
async fn tell_cmo_admins(
    conn: &impl ConnectionTrait,
    state: &AppState,
    ctx: &AuthContext,
    invitation: &ConnectionView,
    now: DateTime<Utc>,
) -> ApiResult<()> {
    let (cmo_name, message) = (
        &invitation.cmo_name,
        invitation.invitation_message.as_deref(),
    );
    let mut paragraphs = vec![format!(
        "{} of {} invites {} to connect on {}: once you accept, {} can name {} on its \
         programs, and your people work on them with the accounts they have.",
        ctx.user.display_name,
        ctx.org.name,
        cmo_name,
        state.public_base_url,
        ctx.org.name,
        cmo_name
    )];
    if let Some(m) = message {
        paragraphs.push(format!("Their message: {m}"));
    }
    paragraphs.push(format!(
        "{} will read your organization's profile (capabilities, sites, inspections, \
         contacts); it does not learn which other sponsors you work with, nor they of it.",
        ctx.org.name
    ));
    paragraphs.push(format!(
        "Accept or decline on the page below (sign in as an admin of {cmo_name}). From an API \
         client: POST /api/v1/cmo-connections/{}/events with {{\"event\": \"accept\"}} or \
         {{\"event\": \"decline\"}}; GET /api/v1/cmo-connections?connection=invited lists \
         what is waiting.",
        invitation.id
    ));
    super::email_admins(
        conn,
        &state.public_base_url,
        super::AdminsEmail {
            org_id: invitation.cmo_org_id,
            subject: &format!("{} invites {} to connect", ctx.org.name, cmo_name),
            headline: &format!("{} would like to work with {}", ctx.org.name, cmo_name),
            paragraphs: &paragraphs,
            link: format!(
                "{}/cmo-connections/{}/answer",
                state.public_base_url, invitation.id
            ),
            key: format!(
                "cmo_connection_invite:{}:{}",
                invitation.id, invitation.version
            ),
        },
        now,
    )
    .await
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"event": "accept", "version": 1}), examples(
    json!({"event": "accept", "version": 1}),
    json!({"event": "end", "message": "Fill-finish moved to our own plant; all batches released.", "version": 2})
))]
pub struct ConnectionTransition {
    pub event: ConnectionEvent,
    /// With `invite`: a note to the CMO's admins. With `end` (required): why the
    /// connection ends, kept on it and in the audit trail and emailed to the other side.
    #[schema(min_length = 1, max_length = 2000)]
    pub message: Option<String>,
    /// The version you read.
    pub version: Option<i32>,
}

impl Validate for ConnectionTransition {
    fn validate(&self, c: &mut Checks) {
        c.optional_text("message", self.message.as_deref(), 1, 2_000);
    }
}

/// Answer or take back an invitation, or end a connection: `accept` and `decline` (the
/// CMO's admins), `withdraw` (the sponsor's admins, before it is answered), `invite`
/// (again, after a decline, a withdrawal or an end), `end` (either side's admins, with a
/// `message` saying why).
///
/// `end` is refused (409 `open_work`) while work is open between the two on the sponsor's
/// programs with the CMO: deviations, CAPA and change controls not closed, escalations
/// not resolved, action items the CMO's people own not done or cancelled; the refusal
/// names them. Once ended, the sponsor keeps its programs, the CMO's profile, its
/// qualification of the CMO (which it may still change), its agreements and notes; the
/// CMO's people leave those programs' teams and no longer see them, nor their events from
/// then on; the sponsor names neither the CMO on a new program nor its people on the old
/// ones until it invites it again and the CMO accepts. The other side's admins are
/// emailed.
#[utoipa::path(
    tag = "partners",
    params(
        ("id" = i64, Path, description = "Connection id"),
        ("If-Match" = Option<String>, Header, pattern = r#"^(W/)?"?[0-9]{1,9}"?$"#, description = "Version the caller saw (optional; alternative to `version` in the body)")
    ),
    request_body = ConnectionTransition,
    responses(
        (status = 200, description = "The connection in its new state", body = ConnectionView),
        (status = 403, description = "Not an admin of the side that takes this event", body = crate::error::Problem),
        (status = 404, description = "No such connection of your organization", body = crate::error::Problem),
        (status = 409, description = "Illegal event (`current_state`, `allowed_events`), stale version, or work still open between the two (`open_work`, naming it)", body = crate::error::Problem),
        (status = 422, description = "`end` without a `message` (`required`)", body = crate::error::Problem)
    )
)]
#[post("/cmo-connections/{id}/events")]
pub async fn transition_connection(
    req: HttpRequest,
    state: web::Data<AppState>,
    ctx: AuthContext,
    id: web::Path<i64>,
    body: ApiJson<ConnectionTransition>,
) -> ApiResult<HttpResponse> {
    let b = body.into_inner();
    let step = Step {
        event: b.event,
        by_user_id: ctx.user.id,
        message: b.message.map(|m| m.trim().to_string()),
    };
    step_and_tell(&state, &ctx, &req, id.into_inner(), step, b.version).await
}

/// Runs a connection step; an invitation sent again reaches the CMO's admins like the
/// first one, queued in the step's transaction.
async fn step_and_tell(
    state: &AppState,
    ctx: &AuthContext,
    req: &HttpRequest,
    id: i64,
    step: Step,
    version: Option<i32>,
) -> ApiResult<HttpResponse> {
    let event = step.event;
    run_step_answering(
        state,
        ctx,
        req,
        id,
        step,
        None,
        version,
        async |txn, view, _| {
            match event {
                ConnectionEvent::Invite => {
                    tell_cmo_admins(txn, state, ctx, &view, state.clock.now()).await?
                }
                ConnectionEvent::End => tell_end(txn, state, ctx, &view, state.clock.now()).await?,
                _ => {}
            }
            Ok((StatusCode::OK, view))
        },
    )
    .await
}

/// Emails the other side's admins that `ctx`'s organization ended the connection, with
/// its reason and what it means for each side; the link opens the connection's page.
async fn tell_end(
    conn: &impl ConnectionTrait,
    state: &AppState,
    ctx: &AuthContext,
    ended: &ConnectionView,
    now: DateTime<Utc>,
) -> ApiResult<()> {
    let (sponsor, cmo) = (&ended.sponsor_name, &ended.cmo_name);
    let other = if ctx.org_id() == ended.sponsor_org_id {
        ended.cmo_org_id
    } else {
        ended.sponsor_org_id
    };
    let paragraphs = vec![
        format!(
            "{} of {} ended the connection between {sponsor} and {cmo}. Their reason: {}",
            ctx.user.display_name,
            ctx.org.name,
            ended.end_reason.as_deref().unwrap_or_default()
        ),
        format!(
            "{sponsor} keeps its programs with {cmo} and their records; {cmo}'s people have \
             left those programs and no longer see them. {sponsor} may invite {cmo} again."
        ),
    ];
    super::email_admins(
        conn,
        &state.public_base_url,
        super::AdminsEmail {
            org_id: other,
            subject: &format!(
                "{} ended the connection with {}",
                ctx.org.name,
                if other == ended.cmo_org_id {
                    cmo
                } else {
                    sponsor
                }
            ),
            headline: &format!("{sponsor} and {cmo} no longer work together"),
            paragraphs: &paragraphs,
            link: format!(
                "{}/cmo-connections/{}/answer",
                state.public_base_url, ended.id
            ),
            key: format!("cmo_connection_end:{}:{}", ended.id, ended.version),
        },
        now,
    )
    .await
}

impl ApiStep for Step {
    type View = ConnectionView;
    fn offer(view: &mut Self::View, options: EventOptions<Self::Event>) {
        view.allowed_events = options.allowed;
        view.blocked_events = Some(options.blocked);
    }
    /// Connections are their admins' business, on both sides.
    async fn may_step(
        _conn: &impl ConnectionTrait,
        ctx: &AuthContext,
        _r: &relationship::Model,
    ) -> ApiResult<()> {
        if ctx.user.role != Role::Admin {
            return Err(ApiError::Forbidden(
                "connections are answered and withdrawn by admins".to_string(),
            ));
        }
        Ok(())
    }
    /// The CMO answers; the sponsor invites and withdraws.
    async fn may_take(
        _conn: &impl ConnectionTrait,
        ctx: &AuthContext,
        r: &relationship::Model,
        step: &Self,
    ) -> ApiResult<()> {
        let (parties, refusal) = match relationship::party_of(step.event) {
            Party::Sponsor => (
                [r.sponsor_org_id, r.sponsor_org_id],
                "the sponsor's admins invite and withdraw",
            ),
            Party::Cmo => (
                [r.cmo_org_id, r.cmo_org_id],
                "the CMO's admins accept or decline an invitation",
            ),
            Party::Either => (
                [r.sponsor_org_id, r.cmo_org_id],
                "the two sides' admins end a connection",
            ),
        };
        if !parties.contains(&ctx.org_id()) {
            return Err(ApiError::Forbidden(refusal.to_string()));
        }
        Ok(())
    }
    async fn view(
        conn: &impl ConnectionTrait,
        _ctx: &AuthContext,
        r: &relationship::Model,
        _now: DateTime<Utc>,
    ) -> ApiResult<ConnectionView> {
        connection_views(conn, std::slice::from_ref(r))
            .await?
            .pop()
            .ok_or(ApiError::NotFound)
    }
}
