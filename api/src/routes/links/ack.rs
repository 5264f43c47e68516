//! The one-click acknowledgement link of a page email: a page for people (GET shows what
//! will happen, POST acknowledges), never JSON.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, get, post, web};
use chrono::{DateTime, Utc};
use entity::escalation::{self, EscalationStatus};
use entity::link_token::{self, Link};
use entity::{link_secret, user};
use sea_orm::sea_query::OnConflict;
use sea_orm::{ActiveValue::NotSet, ActiveValue::Set, ColumnTrait, EntityTrait, QueryFilter};
use serde::Deserialize;
use utoipa::IntoParams;

use crate::error::{ApiError, ApiResult};
use crate::pages::{self, html_response as html};
use crate::routes::escalation::{Acked, acknowledge};
use crate::routes::wire_name;
use crate::state::AppState;
#[derive(Debug, Deserialize, IntoParams)]
pub struct AckLinkQuery {
    /// The signed, personal, single-use token from the page email.
    pub token: Option<String>,
}

/// What the acknowledgement page's form sends.
#[derive(Debug, Default, Deserialize)]
pub struct AckForm {
    /// A note for everyone paged ("on my way, 20 minutes"), up to 500 characters.
    pub note: Option<String>,
}

/// Where the escalation stands for the person holding the link, when there is nothing
/// left for them to do (no button then): acknowledged by them or by someone else, or over.
async fn settled(
    state: &AppState,
    e: &escalation::Model,
    u: &user::Model,
) -> Option<(String, String)> {
    let when = |at: Option<DateTime<Utc>>| {
        at.map(|t| format!("{} UTC", t.format("%Y-%m-%d %H:%M")))
            .unwrap_or_default()
    };
    match e.status {
        EscalationStatus::Acknowledged if e.acknowledged_by_user_id == Some(u.id) => Some((
            "Already acknowledged by you".to_string(),
            format!(
                "You acknowledged this escalation at {}. Everyone paged was told you are handling it.",
                when(e.acknowledged_at)
            ),
        )),
        EscalationStatus::Acknowledged => {
            let by = match e.acknowledged_by_user_id {
                Some(id) => user::Entity::find_by_id(id)
                    .one(&state.db)
                    .await
                    .ok()
                    .flatten()
                    .map(|u| u.display_name),
                None => None,
            };
            Some((
                "Someone is on it".to_string(),
                format!(
                    "{} acknowledged this escalation at {}; no further tiers are paged. Nothing for you to do here.",
                    by.unwrap_or_else(|| "A colleague".to_string()),
                    when(e.acknowledged_at)
                ),
            ))
        }
        EscalationStatus::Resolved => Some((
            "Resolved".to_string(),
            format!(
                "This escalation was resolved at {}. Nothing for you to do here.",
                when(e.resolved_at)
            ),
        )),
        EscalationStatus::Open | EscalationStatus::Exhausted => None,
    }
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
        (status = 200, description = "Confirmation page with a note field and an Acknowledge button (POST to the same link); when the escalation is already acknowledged or resolved, a page saying so by whom and when, without a button", body = String, content_type = "text/html"),
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
    // A link already used, or an escalation someone took or closed: say so, no button.
    if let Some((title, message)) = settled(&state, &e, &u).await {
        return html(StatusCode::OK, pages::page(&title, &message, None));
    }
    let action = format!(
        "{}/api/v1/escalations/ack?token={}",
        state.public_base_url.trim_end_matches('/'),
        query.token.as_deref().unwrap_or_default()
    );
    html(
        StatusCode::OK,
        mail::form_page(&mail::FormPage {
            title: format!("Acknowledge: {}", e.title),
            intro: Some(format!(
                "{}, acknowledging tells everyone paged that you are handling it and stops paging the next tiers. Status now: {}.",
                u.display_name,
                wire_name(&e.status)
            )),
            error: None,
            action,
            fields: vec![mail::Field {
                name: "note",
                label: "A note for everyone paged (optional)",
                kind: "textarea",
                value: String::new(),
                autocomplete: "off",
                required: false,
                minlength: None,
            }],
            button: "Acknowledge",
            links: Vec::new(),
        }),
    )
}

/// Acknowledge through the link (the page's button). Single use; the same person again
/// sees their acknowledgement (200); a used link after a re-open, or a link of someone
/// else after an acknowledgement, changes nothing (409 page).
#[utoipa::path(
    tag = "escalations",
    security(()),
    params(AckLinkQuery),
    request_body(content = String, content_type = "application/x-www-form-urlencoded", description = "`note` (optional, up to 500 characters): told to everyone paged with the acknowledgement"),
    responses(
        (status = 200, description = "Acknowledged (now, or before by you)", body = String, content_type = "text/html"),
        (status = 400, description = "Forged, altered or expired link: nothing changes", body = String, content_type = "text/html"),
        (status = 404, description = "The escalation or the account no longer exists", body = String, content_type = "text/html"),
        (status = 409, description = "Already used, acknowledged by someone else, or resolved: nothing changes", body = String, content_type = "text/html"),
        (status = 503, description = "The database is busy: try again", body = String, content_type = "text/html")
    )
)]
#[post("/escalations/ack")]
pub async fn ack_link(
    state: web::Data<AppState>,
    query: web::Query<AckLinkQuery>,
    form: Option<web::Form<AckForm>>,
) -> HttpResponse {
    let (e, u) = match link_target(&state, query.token.as_deref()).await {
        Ok(t) => t,
        Err(page) => return page,
    };
    // A note past 500 characters is cut (the form says so), never refused: the
    // acknowledgement is what matters at 2 a.m.
    let note = form
        .and_then(|f| f.into_inner().note)
        .map(|n| n.trim().chars().take(500).collect::<String>())
        .filter(|n| !n.is_empty());
    let hash = token_hash(query.token.as_deref().unwrap_or_default());
    match ack_through_link(&state, e.id, &u, &hash, note.as_deref()).await {
        Ok(LinkOutcome::Acknowledged) => html(
            StatusCode::OK,
            pages::page(
                "Acknowledged",
                &format!(
                    "Thank you, {}. Everyone paged has been told you are handling \u{201c}{}\u{201d}{}; no further tiers will be paged.",
                    u.display_name,
                    e.title,
                    note.as_deref()
                        .map(|n| format!(", with your note \u{201c}{n}\u{201d}"))
                        .unwrap_or_default()
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
    note: Option<&str>,
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
        note,
        None,
        &state.chain_keys,
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
