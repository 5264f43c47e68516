//! The weekly digest as the api serves it: a preview of what would be sent now, and the
//! signed unsubscribe link every digest carries (a confirmation page on GET, so a mail
//! scanner following links unsubscribes nobody; the change on POST, which is also the
//! RFC 8058 one-click unsubscribe mail clients send).

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, get, post, web};
use entity::access::may_manage_program;
use entity::audit_trail::{self, Actor, Entry};
use entity::digest;
use entity::link_token::{self, Link, TokenError};
use entity::{job_run, link_secret, program, team_member, user};
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::auth::{AuthContext, find_scoped};
use crate::error::{ApiError, ApiResult};
use crate::pages::{self, html_response as html};
use crate::routes::snapshot;
use crate::state::AppState;
use crate::views::plan::TeamMemberView;
use crate::write::write_next_version;

#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({
    "program_id": 3,
    "iso_week": "2026-W49",
    "since": "2026-11-23T06:00:00Z",
    "reader_user_id": 12,
    "subject": "ACM-101 clinical supply, week 2026-W49: Production on hold — critical deviation #41 Filter integrity test failed, production held 2 days 3 hours",
    "text_body": "ACM-101 clinical supply (ACM-101), week 2026-W49: PRODUCTION ON HOLD\n…\nNEEDS ATTENTION\n- Critical deviation: #41 Filter integrity test failed\n…",
    "html_body": "<!DOCTYPE html><html>…</html>",
    "recipients": ["ana.pm@sponsor.example", "li.qa@cmo.example"],
    "unsubscribe_url": "http://127.0.0.1:8080/api/v1/unsubscribe?token=756e73…"
}))]
pub struct DigestPreview {
    pub program_id: i64,
    /// ISO week of the program's local date.
    pub iso_week: String,
    /// "What changed" lists audit events after this time: the previous weekly digest's
    /// tick, or 7 days ago when none went out yet.
    pub since: chrono::DateTime<chrono::Utc>,
    /// Whose digest this is: times read in their zone. Its links are plain page
    /// addresses that open after sign-in (a preview never holds a personal grant).
    pub reader_user_id: i64,
    pub subject: String,
    /// The plain-text part.
    pub text_body: String,
    /// The HTML part.
    pub html_body: String,
    /// Who would receive it: subscribed members with an active account.
    pub recipients: Vec<String>,
    /// The caller's own unsubscribe link, when the caller is a subscribed member.
    pub unsubscribe_url: Option<String>,
}

#[derive(Debug, Deserialize, IntoParams)]
pub struct PreviewQuery {
    /// Preview the digest as this team member reads it (their time zone): the user id
    /// of a member of the program. Program managers and sponsor admins may name anyone
    /// on the team; others only themselves. Default: the caller.
    #[param(example = 12)]
    pub for_user_id: Option<i64>,
}

/// What changed since: the previous weekly digest's tick, or 7 days ago.
async fn digest_since(
    state: &AppState,
    prog: &program::Model,
) -> ApiResult<chrono::DateTime<chrono::Utc>> {
    let now = state.clock.now();
    Ok(
        job_run::last_finished_before(&state.db, &digest::job_name(prog.id), now)
            .await?
            .unwrap_or(now - digest::FIRST_DIGEST_LOOKBACK),
    )
}

/// The digest that would be sent for this program now, as one member reads it (program
/// managers check it before Monday, or before sending one now; tests read it).
#[utoipa::path(
    tag = "programs",
    params(("id" = i64, Path, description = "Program id"), PreviewQuery),
    responses(
        (status = 200, description = "The digest as it would be sent now, worded for the reader", body = DigestPreview),
        (status = 403, description = "Previewing another member's digest needs a program manager or sponsor admin", body = crate::error::Problem),
        (status = 404, description = "No such program visible to the caller, or the user named is not on its team", body = crate::error::Problem)
    )
)]
#[get("/programs/{id}/digest/preview")]
pub async fn preview_digest(
    state: web::Data<AppState>,
    ctx: AuthContext,
    id: web::Path<i64>,
    query: web::Query<PreviewQuery>,
) -> ApiResult<web::Json<DigestPreview>> {
    let prog = find_scoped::<program::Entity, _>(&state.db, &ctx, id.into_inner()).await?;
    let now = state.clock.now();
    let reader = match query.for_user_id {
        None => ctx.user.clone(),
        Some(uid) if uid == ctx.user.id => ctx.user.clone(),
        Some(uid) => {
            ctx.require(
                may_manage_program(ctx.caller(), prog.sides()),
                "program managers and sponsor admins preview another member's digest; others their own",
            )?;
            let on_team = team_member::Entity::find()
                .filter(team_member::Column::ProgramId.eq(prog.id))
                .filter(team_member::Column::UserId.eq(uid))
                .one(&state.db)
                .await?
                .is_some();
            if !on_team {
                return Err(ApiError::NotFound);
            }
            user::Entity::find_by_id(uid)
                .one(&state.db)
                .await?
                .ok_or(ApiError::NotFound)?
        }
    };
    let since = digest_since(&state, &prog).await?;
    let data = digest::gather(&state.db, &prog, now, since).await?;
    let subscribers = digest::subscribers(&state.db, prog.id).await?;
    let own = subscribers.iter().find(|(_, u)| u.id == ctx.user.id);
    let unsubscribe_url = match own {
        Some((member, _)) => {
            let key = link_secret::get_or_create(&state.db, now).await?;
            Some(
                Link::Unsubscribe {
                    member_id: member.id,
                }
                .url(&key, &state.public_base_url, None),
            )
        }
        None => None,
    };
    let rendered = mail::digest::render(
        &data,
        &mail::Reader::preview(&reader, &state.public_base_url),
        mail::digest::Occasion::Weekly,
        None,
    )
    .map_err(ApiError::internal)?;
    Ok(web::Json(DigestPreview {
        program_id: prog.id,
        iso_week: data.iso_week,
        since,
        reader_user_id: reader.id,
        subject: rendered.subject,
        text_body: rendered.text_body,
        html_body: rendered.html_body,
        recipients: subscribers.into_iter().map(|(_, u)| u.email).collect(),
        unsubscribe_url,
    }))
}

#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({"program_id": 3, "queued": 2, "recipients": ["ana.pm@sponsor.example", "li.qa@cmo.example"]}))]
pub struct DigestSent {
    pub program_id: i64,
    /// Emails queued (one per subscribed member).
    pub queued: usize,
    pub recipients: Vec<String>,
}

/// Send the digest to the team now, outside the weekly schedule: its subject says it was
/// sent now and by whom, each member's copy has their own links; the week's scheduled
/// digest still goes out and still lists the changes since the previous weekly one.
/// Program managers and sponsor admins; audited.
#[utoipa::path(
    tag = "programs",
    params(("id" = i64, Path, description = "Program id")),
    responses(
        (status = 202, description = "Queued for every subscribed member", body = DigestSent),
        (status = 403, description = "Only program managers and sponsor admins send the digest", body = crate::error::Problem),
        (status = 404, description = "No such program visible to the caller", body = crate::error::Problem)
    )
)]
#[post("/programs/{id}/digest/send")]
pub async fn send_digest(
    state: web::Data<AppState>,
    ctx: AuthContext,
    id: web::Path<i64>,
) -> ApiResult<HttpResponse> {
    let prog = find_scoped::<program::Entity, _>(&state.db, &ctx, id.into_inner()).await?;
    ctx.require(
        may_manage_program(ctx.caller(), prog.sides()),
        "program managers and sponsor admins send the digest",
    )?;
    let now = state.clock.now();
    let since = digest_since(&state, &prog).await?;
    let data = digest::gather(&state.db, &prog, now, since).await?;
    let subscribers = digest::subscribers(&state.db, prog.id).await?;
    let key = link_secret::get_or_create(&state.db, now).await?;
    let txn = entity::db::begin_write(&state.db).await?;
    let queued = mail::digest::queue(
        &txn,
        &data,
        &subscribers,
        mail::digest::Occasion::AdHoc {
            by: &ctx.user.display_name,
        },
        &format!(
            "digest-now:{}:{}",
            prog.id,
            now.timestamp_nanos_opt().unwrap_or_default()
        ),
        &key,
        &state.public_base_url,
        now,
    )
    .await?;
    audit_trail::append(
        &txn,
        &ctx.actor(now),
        Entry::new("program", prog.id, "send_digest").after(serde_json::json!({
            "iso_week": data.iso_week,
            "recipients": queued,
        })),
    )
    .await?;
    txn.commit().await?;
    Ok(HttpResponse::Accepted().json(DigestSent {
        program_id: prog.id,
        queued,
        recipients: subscribers.into_iter().map(|(_, u)| u.email).collect(),
    }))
}

#[derive(Debug, Deserialize, IntoParams)]
pub struct UnsubscribeQuery {
    /// The signed token from the digest's unsubscribe link.
    #[param(
        example = "756e7375627363726962652d6469676573747c6d656d6265723a347c30.9f2c41d0aa6b7e3c1d4e5f60718293a4b5c6d7e8f90a1b2c3d4e5f60718293a4"
    )]
    pub token: Option<String>,
}

fn refused(err: &TokenError) -> HttpResponse {
    html(
        StatusCode::BAD_REQUEST,
        pages::page(
            "This unsubscribe link is not valid",
            &format!(
                "{err}. Nothing was changed. Use the link of a recent digest, or change your digest preference in your team membership."
            ),
            None,
        ),
    )
}

/// The membership a token names, or the page explaining why there is none.
async fn member_for(
    state: &AppState,
    token: Option<&str>,
) -> Result<team_member::Model, HttpResponse> {
    let now = state.clock.now();
    let token = token.ok_or_else(|| refused(&TokenError::Malformed))?;
    let key = link_secret::get_or_create(&state.db, now)
        .await
        .map_err(|err| {
            tracing::error!(%err, "cannot read the link key");
            pages::try_again("The service cannot check this link right now.")
        })?;
    let link =
        Link::verify(&key, token, link_token::UNSUBSCRIBE_PURPOSE, now).map_err(|e| refused(&e))?;
    let gone = || {
        html(
            StatusCode::NOT_FOUND,
            pages::page(
                "Already off the team",
                "This membership no longer exists, so no digest will be sent for it.",
                None,
            ),
        )
    };
    let Link::Unsubscribe { member_id } = link else {
        return Err(refused(&TokenError::Malformed));
    };
    match team_member::Entity::find_by_id(member_id)
        .one(&state.db)
        .await
    {
        Ok(Some(m)) => Ok(m),
        Ok(None) => Err(gone()),
        Err(err) => {
            tracing::error!(%err, "cannot read the membership");
            Err(pages::try_again(
                "The service cannot check this link right now.",
            ))
        }
    }
}

async fn program_name(state: &AppState, program_id: i64) -> String {
    program::Entity::find_by_id(program_id)
        .one(&state.db)
        .await
        .ok()
        .flatten()
        .map(|p| p.name)
        .unwrap_or_else(|| format!("program #{program_id}"))
}

/// The unsubscribe link of a digest email: a page asking to confirm (following a link
/// changes nothing).
#[utoipa::path(
    tag = "notifications",
    security(()),
    params(UnsubscribeQuery),
    responses(
        (status = 200, description = "Confirmation page with a button that POSTs to the same link", body = String, content_type = "text/html",
            example = json!("<!DOCTYPE html><html>…<form method=\"post\" …><button type=\"submit\">Unsubscribe</button></form>…</html>")),
        (status = 400, description = "Missing, altered or foreign token: an HTML page says so; nothing changes", body = String, content_type = "text/html"),
        (status = 404, description = "The membership no longer exists", body = String, content_type = "text/html"),
        (status = 503, description = "The database is busy: try again", body = String, content_type = "text/html")
    )
)]
#[get("/unsubscribe")]
pub async fn unsubscribe_page(
    state: web::Data<AppState>,
    query: web::Query<UnsubscribeQuery>,
) -> HttpResponse {
    let member = match member_for(&state, query.token.as_deref()).await {
        Ok(m) => m,
        Err(page) => return page,
    };
    let name = program_name(&state, member.program_id).await;
    if !member.wants_digest {
        return html(
            StatusCode::OK,
            pages::page(
                "Already unsubscribed",
                &format!("You no longer receive the weekly digest of {name}."),
                None,
            ),
        );
    }
    let action = format!(
        "{}/api/v1/unsubscribe?token={}",
        state.public_base_url.trim_end_matches('/'),
        query.token.as_deref().unwrap_or_default()
    );
    html(
        StatusCode::OK,
        pages::page(
            "Unsubscribe from the weekly digest?",
            &format!(
                "You will stop receiving the weekly status digest of {name}. Overdue-action reminders and escalations are not affected."
            ),
            Some((&action, "Unsubscribe")),
        ),
    )
}

/// Unsubscribes the link's membership from the weekly digest (the page's button, and
/// RFC 8058 one-click `List-Unsubscribe-Post`). Idempotent; audited as the member's own
/// change.
#[utoipa::path(
    tag = "notifications",
    security(()),
    params(UnsubscribeQuery),
    request_body(content = String, description = "Ignored (mail clients send `List-Unsubscribe=One-Click`)", content_type = "application/x-www-form-urlencoded"),
    responses(
        (status = 200, description = "Unsubscribed (or already was): an HTML page says so", body = String, content_type = "text/html",
            example = json!("<!DOCTYPE html><html>…<h2>Unsubscribed</h2>…</html>")),
        (status = 400, description = "Missing, altered or foreign token: nothing changes", body = String, content_type = "text/html"),
        (status = 404, description = "The membership no longer exists", body = String, content_type = "text/html"),
        (status = 503, description = "The database is busy: nothing changed, try again", body = String, content_type = "text/html")
    )
)]
#[post("/unsubscribe")]
pub async fn unsubscribe(
    state: web::Data<AppState>,
    query: web::Query<UnsubscribeQuery>,
) -> HttpResponse {
    let member = match member_for(&state, query.token.as_deref()).await {
        Ok(m) => m,
        Err(page) => return page,
    };
    let name = program_name(&state, member.program_id).await;
    match apply_unsubscribe(&state, member.id).await {
        Ok(()) => html(
            StatusCode::OK,
            pages::page(
                "Unsubscribed",
                &format!(
                    "You will no longer receive the weekly digest of {name}. A program manager, or you through the API, can turn it back on in your team membership."
                ),
                None,
            ),
        ),
        Err(err) => {
            tracing::warn!(%err, "unsubscribe failed");
            pages::try_again("The change could not be saved.")
        }
    }
}

async fn apply_unsubscribe(state: &AppState, member_id: i64) -> ApiResult<()> {
    let txn = entity::db::begin_write(&state.db).await?;
    let Some(current) = team_member::Entity::find_by_id(member_id).one(&txn).await? else {
        return Ok(());
    };
    if !current.wants_digest {
        return Ok(());
    }
    let member_user = user::Entity::find_by_id(current.user_id)
        .one(&txn)
        .await?
        .ok_or(ApiError::NotFound)?;
    let now = state.clock.now();
    let updated = write_next_version::<team_member::Entity>(&txn, current.id, &current, now, |m| {
        m.wants_digest = false
    })
    .await?;
    audit_trail::append(
        &txn,
        &Actor {
            org_id: member_user.org_id,
            user_id: Some(member_user.id),
            request_id: None,
            at: now,
        },
        Entry::new("team_member", updated.id, "unsubscribe_digest")
            .before(snapshot(&TeamMemberView::from(&current)))
            .after(snapshot(&TeamMemberView::from(&updated)))
            .reason(Some("unsubscribe link in the weekly digest".to_string())),
    )
    .await?;
    txn.commit().await?;
    Ok(())
}
