//! A private iCalendar feed per user (RFC 5545): the milestones (gate dates) of the
//! programs they are on, and the due dates of their action items, as all-day events.
//! Calendar clients cannot send tokens, so the URL carries a signed token; `GET
//! /me/calendar` hands it out.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, get, post, web};
use chrono::{DateTime, NaiveDate, Utc};
use entity::action_item::{self, ActionStatus};
use entity::audit_trail::{self, Entry};
use entity::link_token::{self, Claims};
use entity::milestone::{self, MilestoneStatus};
use entity::{link_secret, program, team_member, user};
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::auth::AuthContext;
use crate::error::{ApiError, ApiResult};
use crate::state::AppState;
use crate::write::write_next_version;
use crate::write_txn::WriteTxn;

const PURPOSE: &str = "calendar";

#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({"url": "http://127.0.0.1:8080/api/v1/calendar.ics?token=63616c656e646172…"}))]
pub struct CalendarLink {
    /// Subscribe to this URL in a calendar client. Keep it private: it shows your
    /// programs' dates to whoever has it.
    pub url: String,
}

/// The feed URL of `person` at their current generation. Generation 0 keeps the form of
/// URLs handed out before rotation existed, so those go on working until rotated.
fn feed_url(key: &[u8], base_url: &str, person: &user::Model) -> String {
    let subject = match person.calendar_generation {
        0 => format!("user:{}", person.id),
        g => format!("user:{}:gen:{g}", person.id),
    };
    let token = link_token::sign(
        key,
        &Claims {
            purpose: PURPOSE.to_string(),
            subject,
            expires_at: None,
        },
    );
    format!(
        "{}/api/v1/calendar.ics?token={token}",
        base_url.trim_end_matches('/')
    )
}

/// The person and generation a feed token names.
fn feed_subject(subject: &str) -> Option<(i64, i32)> {
    let rest = subject.strip_prefix("user:")?;
    match rest.split_once(":gen:") {
        None => Some((rest.parse().ok()?, 0)),
        Some((id, g)) => Some((id.parse().ok()?, g.parse().ok().filter(|g| *g > 0)?)),
    }
}

/// Your private calendar feed URL.
#[utoipa::path(
    tag = "integrations",
    responses((status = 200, description = "The feed URL", body = CalendarLink))
)]
#[get("/me/calendar")]
pub async fn calendar_link(
    state: web::Data<AppState>,
    ctx: AuthContext,
) -> ApiResult<web::Json<CalendarLink>> {
    let key = link_secret::get_or_create(&state.db, state.clock.now()).await?;
    Ok(web::Json(CalendarLink {
        url: feed_url(&key, &state.public_base_url, &ctx.user),
    }))
}

/// Revoke your calendar feed URL and get a new one: the old URL answers 404 from now on
/// (when it was shared, or a device with it was lost). Deactivating a person ends their
/// feed too. Audited.
#[utoipa::path(
    tag = "integrations",
    responses(
        (status = 200, description = "The new feed URL; the previous one no longer opens", body = CalendarLink),
        (status = 403, description = "A read-only token cannot rotate", body = crate::error::Problem)
    )
)]
#[post("/me/calendar/rotate")]
pub async fn rotate_calendar_link(
    state: web::Data<AppState>,
    ctx: AuthContext,
) -> ApiResult<HttpResponse> {
    let now = state.clock.now();
    // Before the transaction: SQLite's one connection is the transaction's until it ends.
    let key = link_secret::get_or_create(&state.db, now).await?;
    let txn = WriteTxn::begin(&state, &ctx).await?;
    let current = user::Entity::find_by_id(ctx.user.id)
        .one(&txn)
        .await?
        .ok_or(ApiError::NotFound)?;
    let updated = write_next_version::<user::Entity>(&txn, current.id, &current, now, |u| {
        u.calendar_generation += 1
    })
    .await?;
    audit_trail::append(
        &txn,
        &ctx.actor(now),
        Entry::new("user", updated.id, "rotate_calendar_link")
            .before(serde_json::json!({"calendar_generation": current.calendar_generation}))
            .after(serde_json::json!({"calendar_generation": updated.calendar_generation})),
    )
    .await?;
    let link = CalendarLink {
        url: feed_url(&key, &state.public_base_url, &updated),
    };
    txn.respond(StatusCode::OK, &link).await
}

#[derive(Debug, Deserialize, IntoParams)]
pub struct CalendarQuery {
    /// The signed token from `GET /me/calendar`.
    pub token: Option<String>,
}

/// RFC 5545 text escaping.
fn escape(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace(';', "\\;")
        .replace(',', "\\,")
        .replace("\r\n", "\\n")
        .replace('\n', "\\n")
        .replace('\r', "")
}

/// Folds a content line at 75 octets (continuation lines start with a space), never
/// inside a UTF-8 character.
fn fold(line: &str) -> String {
    let mut out = String::new();
    let mut len = 0;
    for ch in line.chars() {
        let w = ch.len_utf8();
        if len + w > 75 {
            out.push_str("\r\n ");
            len = 1;
        }
        out.push(ch);
        len += w;
    }
    out.push_str("\r\n");
    out
}

fn all_day_event(
    uid: &str,
    stamp: DateTime<Utc>,
    day: NaiveDate,
    summary: &str,
    description: &str,
) -> String {
    use chrono::Datelike;
    // An iCalendar DATE has four year digits: a date past 9998 (stored before dates were
    // bounded) has no end day to write, so it is left out rather than written invalid.
    let Some(next) = day.succ_opt().filter(|n| (1..=9999).contains(&n.year())) else {
        return String::new();
    };
    [
        "BEGIN:VEVENT".to_string(),
        format!("UID:{uid}"),
        format!("DTSTAMP:{}", stamp.format("%Y%m%dT%H%M%SZ")),
        format!("DTSTART;VALUE=DATE:{}", day.format("%Y%m%d")),
        format!("DTEND;VALUE=DATE:{}", next.format("%Y%m%d")),
        format!("SUMMARY:{}", escape(summary)),
        format!("DESCRIPTION:{}", escape(description)),
        "TRANSP:TRANSPARENT".to_string(),
        "END:VEVENT".to_string(),
    ]
    .iter()
    .map(|l| fold(l))
    .collect()
}

/// The calendar (text/calendar). Invalid or foreign tokens get 404 (no hint that the
/// URL format is right).
#[utoipa::path(
    tag = "integrations",
    security(()),
    params(CalendarQuery),
    responses(
        (status = 200, description = "The iCalendar feed", body = String, content_type = "text/calendar",
            example = json!("BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//cmo-orchestrator//calendar//EN\r\n…END:VCALENDAR\r\n")),
        (status = 404, description = "Unknown, altered or revoked link", body = crate::error::Problem),
        (status = 503, description = "The database is busy: try again", body = crate::error::Problem)
    )
)]
#[get("/calendar.ics")]
pub async fn calendar_feed(
    state: web::Data<AppState>,
    query: web::Query<CalendarQuery>,
) -> ApiResult<HttpResponse> {
    let now = state.clock.now();
    let key = link_secret::get_or_create(&state.db, now).await?;
    let (user_id, generation) = query
        .token
        .as_deref()
        .and_then(|t| link_token::verify(&key, t, PURPOSE, now).ok())
        .and_then(|c| feed_subject(&c.subject))
        .ok_or(ApiError::NotFound)?;
    let u = user::Entity::find_by_id(user_id)
        .one(&state.reads)
        .await?
        .filter(|u| u.active && u.calendar_generation == generation)
        .ok_or(ApiError::NotFound)?;
    let memberships = team_member::Entity::find()
        .filter(team_member::Column::UserId.eq(u.id))
        .all(&state.reads)
        .await?;
    let program_ids: Vec<i64> = memberships.iter().map(|m| m.program_id).collect();
    let programs: std::collections::BTreeMap<i64, String> = program::Entity::find()
        .filter(program::Column::Id.is_in(program_ids.clone()))
        .all(&state.reads)
        .await?
        .into_iter()
        .map(|p| (p.id, p.name))
        .collect();
    let milestones = milestone::Entity::find()
        .filter(milestone::Column::ProgramId.is_in(program_ids))
        .filter(milestone::Column::Status.ne(MilestoneStatus::Cancelled))
        .all(&state.reads)
        .await?;
    let actions = action_item::Entity::find()
        .filter(action_item::Column::OwnerUserId.eq(u.id))
        .filter(action_item::Column::Status.is_in([ActionStatus::Open, ActionStatus::InProgress]))
        .all(&state.reads)
        .await?;
    let host = mail::message_domain(&state.public_base_url);
    let base = state.public_base_url.trim_end_matches('/');
    let mut body = String::new();
    for l in [
        "BEGIN:VCALENDAR",
        "VERSION:2.0",
        "PRODID:-//cmo-orchestrator//calendar//EN",
        "CALSCALE:GREGORIAN",
        "METHOD:PUBLISH",
        "X-WR-CALNAME:cmo-orchestrator",
    ] {
        body.push_str(&fold(l));
    }
    for m in &milestones {
        let program = programs.get(&m.program_id).cloned().unwrap_or_default();
        let day = m.actual_end.unwrap_or(m.forecast_end);
        // What is behind and what is ahead read apart at a glance in a calendar.
        let (summary, state) = match (m.status, m.actual_end) {
            (MilestoneStatus::Completed, Some(done)) => (
                format!("\u{2713} Done: {} ({program})", m.name),
                format!("completed {done}"),
            ),
            (MilestoneStatus::GateReview, _) => (
                format!("Gate review: {} ({program})", m.name),
                "waiting for its gate decision".to_string(),
            ),
            _ => (
                format!("Gate: {} ({program})", m.name),
                format!("forecast end {}", m.forecast_end),
            ),
        };
        body.push_str(&all_day_event(
            &format!("milestone-{}@{host}", m.id),
            m.updated_at,
            day,
            &summary,
            &format!(
                "Milestone {} of {program}: {state}; baseline end {}. {base}/milestones/{}",
                m.name, m.baseline_end, m.id
            ),
        ));
    }
    for a in &actions {
        body.push_str(&all_day_event(
            &format!("action-{}@{host}", a.id),
            a.updated_at,
            a.due_date,
            &format!("Due: {}", a.title),
            &format!(
                "Action item due {}. {base}/action-items/{}",
                a.due_date, a.id
            ),
        ));
    }
    body.push_str(&fold("END:VCALENDAR"));
    Ok(HttpResponse::build(StatusCode::OK)
        .content_type("text/calendar; charset=utf-8")
        .insert_header(("Cache-Control", "private, max-age=300"))
        .body(body))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_is_escaped_and_long_lines_fold_on_characters() {
        assert_eq!(escape("a,b;c\\d\ne"), "a\\,b\\;c\\\\d\\ne");
        let long = format!("SUMMARY:{}", "é".repeat(60));
        let folded = fold(&long);
        assert!(folded.lines().all(|l| l.len() <= 75));
        assert_eq!(folded.replace("\r\n ", "").trim_end(), long);
    }
}
