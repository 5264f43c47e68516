//! The signed "stop these emails" link every digest and notification carries: for the
//! digest, or for one kind of notification, of one team membership. A confirmation page
//! on GET (a mail scanner following links switches nothing off); the change on POST,
//! which is also the RFC 8058 one-click unsubscribe mail clients send.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, get, post, web};
use entity::audit_trail::{self, Actor, Entry};
use entity::link_token::{self, Link, TokenError};
use entity::notification::{self, NotificationKind};
use entity::{link_secret, program, team_member, user};
use sea_orm::EntityTrait;
use serde::Deserialize;
use utoipa::IntoParams;

use crate::error::{ApiError, ApiResult};
use crate::pages::{self, html_response as html};
use crate::routes::snapshot;
use crate::state::AppState;
use crate::views::plan as views;
use crate::write::write_next_version;

#[derive(Debug, Deserialize, IntoParams)]
pub struct UnsubscribeQuery {
    /// The signed token from the email's unsubscribe link.
    #[param(
        example = "756e7375627363726962652d6469676573747c6d656d6265723a347c30.9f2c41d0aa6b7e3c1d4e5f60718293a4b5c6d7e8f90a1b2c3d4e5f60718293a4"
    )]
    pub token: Option<String>,
}

/// What a link switches off.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stream {
    Digest,
    Kind(NotificationKind),
}

impl Stream {
    fn what(self) -> String {
        match self {
            Stream::Digest => "the weekly status digest".to_string(),
            Stream::Kind(k) => k.describe().to_string(),
        }
    }

    fn is_on(self, m: &team_member::Model) -> bool {
        match self {
            Stream::Digest => m.wants_digest,
            Stream::Kind(k) => notification::wants(m, k),
        }
    }

    fn switch_off(self, m: &mut team_member::Model) {
        match self {
            Stream::Digest => m.wants_digest = false,
            Stream::Kind(k) => {
                let mut muted = notification::muted(m);
                muted.push(k);
                m.muted_notifications = notification::store_muted(muted);
            }
        }
    }

    fn audit_action(self) -> &'static str {
        match self {
            Stream::Digest => "unsubscribe_digest",
            Stream::Kind(_) => "mute_notification",
        }
    }
}

fn refused(err: &TokenError) -> HttpResponse {
    html(
        StatusCode::BAD_REQUEST,
        pages::page(
            "This unsubscribe link is not valid",
            &format!(
                "{err}. Nothing was changed. Use the link of a recent email, or change your preferences in your team membership."
            ),
            None,
        ),
    )
}

/// The membership and stream a token names, or the page explaining why there is none.
async fn member_for(
    state: &AppState,
    token: Option<&str>,
) -> Result<(team_member::Model, Stream), HttpResponse> {
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
    let (member_id, stream) = match link {
        Link::Unsubscribe { member_id } => (member_id, Stream::Digest),
        Link::Mute { member_id, kind } => (member_id, Stream::Kind(kind)),
        _ => return Err(refused(&TokenError::Malformed)),
    };
    match team_member::Entity::find_by_id(member_id)
        .one(&state.db)
        .await
    {
        Ok(Some(m)) => Ok((m, stream)),
        Ok(None) => Err(html(
            StatusCode::NOT_FOUND,
            pages::page(
                "Already off the team",
                "This membership no longer exists, so nothing more will be sent for it.",
                None,
            ),
        )),
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

/// The unsubscribe link of a digest or notification email: a page asking to confirm
/// (following a link changes nothing).
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
    let (member, stream) = match member_for(&state, query.token.as_deref()).await {
        Ok(found) => found,
        Err(page) => return page,
    };
    let name = program_name(&state, member.program_id).await;
    if !stream.is_on(&member) {
        return html(
            StatusCode::OK,
            pages::page(
                "Already unsubscribed",
                &format!("You no longer receive {} of {name}.", stream.what()),
                None,
            ),
        );
    }
    let action = format!(
        "{}/api/v1/unsubscribe?token={}",
        state.public_base_url.trim_end_matches('/'),
        query.token.as_deref().unwrap_or_default()
    );
    let (title, rest) = match stream {
        Stream::Digest => (
            "Unsubscribe from the weekly digest?".to_string(),
            "Overdue-action reminders and escalations are not affected.",
        ),
        Stream::Kind(_) => (
            "Stop these emails?".to_string(),
            "Other emails, the weekly digest and escalation pages are not affected.",
        ),
    };
    html(
        StatusCode::OK,
        pages::page(
            &title,
            &format!(
                "You will stop receiving {} of {name}. {rest}",
                stream.what()
            ),
            Some((&action, "Unsubscribe")),
        ),
    )
}

/// Switches off what the link names for its membership (the page's button, and RFC 8058
/// one-click `List-Unsubscribe-Post`). Idempotent; audited as the member's own change.
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
    let (member, stream) = match member_for(&state, query.token.as_deref()).await {
        Ok(found) => found,
        Err(page) => return page,
    };
    let name = program_name(&state, member.program_id).await;
    match apply(&state, member.id, stream).await {
        Ok(()) => html(
            StatusCode::OK,
            pages::page(
                "Unsubscribed",
                &format!(
                    "You will no longer receive {} of {name}. A program manager, or you through the API, can turn it back on in your team membership.",
                    stream.what()
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

async fn apply(state: &AppState, member_id: i64, stream: Stream) -> ApiResult<()> {
    let txn = entity::db::begin_write(&state.db).await?;
    let Some(current) = team_member::Entity::find_by_id(member_id).one(&txn).await? else {
        return Ok(());
    };
    if !stream.is_on(&current) {
        return Ok(());
    }
    let member_user = user::Entity::find_by_id(current.user_id)
        .one(&txn)
        .await?
        .ok_or(ApiError::NotFound)?;
    let now = state.clock.now();
    let updated = write_next_version::<team_member::Entity>(&txn, current.id, &current, now, |m| {
        stream.switch_off(m)
    })
    .await?;
    audit_trail::append(
        &txn,
        &Actor {
            org_id: member_user.org_id,
            user_id: Some(member_user.id),
            request_id: None,
            at: now,
            chain_keys: state.chain_keys.clone(),
        },
        Entry::new("team_member", updated.id, stream.audit_action())
            .before(snapshot(&views::team_member(&txn, &current).await?))
            .after(snapshot(&views::team_member(&txn, &updated).await?))
            .reason(Some(format!(
                "unsubscribe link in an email: {}",
                stream.what()
            ))),
    )
    .await?;
    txn.commit().await?;
    Ok(())
}
