//! The weekly digest as the api serves it: a preview of what would be sent now, for any
//! member of the team, and sending one now (its unsubscribe link: `links::unsubscribe`).

use actix_web::{HttpResponse, get, post, web};
use entity::access::may_manage_program;
use entity::audit_trail::{self, Entry};
use entity::digest;
use entity::link_token::Link;
use entity::{job_run, link_secret, program, team_member, user};
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::auth::{AuthContext, find_scoped};
use crate::error::{ApiError, ApiResult};
use crate::state::AppState;
use crate::write_txn::WriteTxn;
use actix_web::http::StatusCode;

#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({
    "program_id": 3,
    "iso_week": "2026-W49",
    "since": "2026-11-23T06:00:00Z",
    "reader_user_id": 12,
    "subject": "ACM-101 clinical supply, week 2026-W49: Production on hold — critical deviation DEV-2026-0041 Filter integrity test failed, production held 2 days 3 hours",
    "text_body": "ACM-101 clinical supply (ACM-101), week 2026-W49: PRODUCTION ON HOLD\n…\nNEEDS ATTENTION\n- Critical deviation: DEV-2026-0041 Filter integrity test failed\n…",
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
    let prog = find_scoped::<program::Entity, _>(&state.reads, &ctx, id.into_inner()).await?;
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
                .one(&state.reads)
                .await?
                .is_some();
            if !on_team {
                return Err(ApiError::NotFound);
            }
            user::Entity::find_by_id(uid)
                .one(&state.reads)
                .await?
                .ok_or(ApiError::NotFound)?
        }
    };
    let since = digest_since(&state, &prog).await?;
    let data = digest::gather(&state.reads, &prog, now, since).await?;
    let subscribers = digest::subscribers(&state.reads, prog.id).await?;
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
    let txn = WriteTxn::begin(&state, &ctx).await?;
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
    txn.respond(
        StatusCode::ACCEPTED,
        &DigestSent {
            program_id: prog.id,
            queued,
            recipients: subscribers.into_iter().map(|(_, u)| u.email).collect(),
        },
    )
    .await
}
