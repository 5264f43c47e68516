//! Read-only pages of records for people (program, milestone with its gate, action
//! item, deviation, CAPA, change request, escalation): what every email links to,
//! server-rendered HTML, readable on a phone and printable.
//!
//! A link in an email is personal: it carries a grant for that record and that
//! recipient (7 days). It opens the page without a session, or with the same person's
//! session; with anyone else's session it answers 404. Without a valid grant the
//! reader's own session decides (404 when the record is not theirs to see); without a
//! session, an expired or missing grant sends the reader through sign-in to the same
//! page. Links onward from a page opened by grant carry grants for the same person that
//! end no later.

mod escalation;
mod plan;
mod program;
mod quality;

use actix_web::http::{StatusCode, header};
use actix_web::{HttpRequest, HttpResponse, get, web};
use chrono::{DateTime, Utc};
use entity::link_token::{self, Link, PageRecord, TokenError};
use entity::{link_secret, organization, user};
use mail::RecordPage;
use mail::words;
use sea_orm::{ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter};
use serde::Deserialize;
use std::collections::HashMap;
use utoipa::IntoParams;

use crate::auth::{AuthContext, reading_by_link, session_of};
use crate::error::{ApiError, ApiResult};
use crate::pages::{html_response, page, try_again};
use crate::state::AppState;

#[derive(Debug, Deserialize, IntoParams)]
pub struct PageQuery {
    /// The personal grant from the email's link (optional with a session).
    pub token: Option<String>,
}

/// Who reads a page, and how links onward are written for them.
pub struct Reading<'a> {
    pub state: &'a AppState,
    pub ctx: AuthContext,
    pub now: DateTime<Utc>,
    /// Under a personal link: the key and the link's end, for links onward.
    grant: Option<(Vec<u8>, Option<DateTime<Utc>>)>,
}

impl Reading<'_> {
    /// A page only reads: SQLite's read-only pool (the same pool as writes elsewhere).
    pub fn reads(&self) -> &sea_orm::DatabaseConnection {
        &self.state.reads
    }

    /// The page of another record, as this reader may open it.
    pub fn link(&self, record: PageRecord, id: i64) -> String {
        match &self.grant {
            Some((key, until)) => Link::View {
                record,
                id,
                user_id: self.ctx.user.id,
            }
            .url(key, "", *until),
            None => record.path(id),
        }
    }

    /// A time in the reader's zone.
    pub fn time(&self, at: DateTime<Utc>) -> String {
        words::zoned(&self.ctx.user.time_zone, at)
    }

    /// A time in the reader's zone, with the site's (the program's zone) beside it when
    /// it differs: when something happened on the floor.
    pub fn site_time(&self, site_tz: &str, at: DateTime<Utc>) -> String {
        words::zoned_with_site(&self.ctx.user.time_zone, site_tz, at)
    }

    /// The footer: whose page this is and in which zone its times are.
    pub fn finish(&self, mut page: RecordPage) -> RecordPage {
        page.reader_note = format!(
            "Shown to {} ({}). Times are in {}.",
            self.ctx.user.display_name, self.ctx.org.name, self.ctx.user.time_zone
        );
        page.generated = self.time(self.now);
        page
    }
}

/// Display names of users, for "reported by", "owner", …
pub async fn names<C: ConnectionTrait>(
    conn: &C,
    ids: impl IntoIterator<Item = i64>,
) -> ApiResult<HashMap<i64, String>> {
    let ids: Vec<i64> = ids.into_iter().collect();
    if ids.is_empty() {
        return Ok(HashMap::new());
    }
    Ok(user::Entity::find()
        .filter(user::Column::Id.is_in(ids))
        .all(conn)
        .await?
        .into_iter()
        .map(|u| (u.id, u.display_name))
        .collect())
}

fn not_found() -> HttpResponse {
    html_response(
        StatusCode::NOT_FOUND,
        page(
            "Not found",
            "There is no such page, or it is not yours to see. If someone sent you this link, ask them to share the record with you.",
            None,
        ),
    )
}

fn through_sign_in(path: &str) -> HttpResponse {
    HttpResponse::SeeOther()
        .insert_header((header::LOCATION, format!("/sign-in?next={path}")))
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .insert_header(("Referrer-Policy", "no-referrer"))
        .finish()
}

/// Decides who reads `record` `id` (see the module's rules).
async fn reader<'a>(
    state: &'a AppState,
    req: &HttpRequest,
    record: PageRecord,
    id: i64,
    token: Option<&str>,
) -> Result<Reading<'a>, HttpResponse> {
    let now = state.clock.now();
    let session = session_of(req, state).await;
    let by_session = |ctx: AuthContext| Reading {
        state,
        ctx,
        now,
        grant: None,
    };
    if let Some(token) = token.filter(|t| !t.is_empty()) {
        let key = link_secret::get_or_create(&state.db, now)
            .await
            .map_err(|_| try_again("The service cannot check this link right now."))?;
        match Link::verify_until(&key, token, link_token::VIEW_PURPOSE, now) {
            Ok((
                Link::View {
                    record: r,
                    id: i,
                    user_id,
                },
                until,
            )) if r == record && i == id => {
                if session.as_ref().is_some_and(|s| s.user.id != user_id) {
                    return Err(not_found());
                }
                let found = user::Entity::find_by_id(user_id)
                    .find_also_related(organization::Entity)
                    .one(&state.db)
                    .await
                    .map_err(|_| try_again("The service cannot open this page right now."))?;
                let Some((person, Some(org))) = found.filter(|(u, _)| u.active) else {
                    return Err(not_found());
                };
                return Ok(Reading {
                    state,
                    ctx: reading_by_link(state, person, org, until),
                    now,
                    grant: Some((key, until)),
                });
            }
            // A valid grant for another page is not a grant for this one.
            Ok(_) => return Err(not_found()),
            // Expired, altered or malformed: as if there were none.
            Err(TokenError::Expired(_) | TokenError::BadSignature)
            | Err(TokenError::Malformed | TokenError::WrongPurpose) => {}
        }
    }
    match session {
        Some(ctx) => Ok(by_session(ctx)),
        None => Err(through_sign_in(&record.path(id))),
    }
}

/// The page of `record` `id`, or why not.
async fn show(
    state: &AppState,
    req: &HttpRequest,
    record: PageRecord,
    id: i64,
    token: Option<&str>,
) -> HttpResponse {
    let reading = match reader(state, req, record, id, token).await {
        Ok(r) => r,
        Err(answer) => return answer,
    };
    let built = match record {
        PageRecord::Program => program::page(&reading, id).await,
        PageRecord::Milestone => plan::milestone(&reading, id).await,
        PageRecord::ActionItem => plan::action_item(&reading, id).await,
        PageRecord::Deviation => quality::deviation(&reading, id).await,
        PageRecord::Capa => quality::capa(&reading, id).await,
        PageRecord::ChangeRequest => quality::change_request(&reading, id).await,
        PageRecord::Escalation => escalation::page(&reading, id).await,
    };
    match built {
        Ok(p) => html_response(StatusCode::OK, mail::record_page(&reading.finish(p))),
        Err(ApiError::NotFound) => not_found(),
        Err(err) => {
            tracing::error!(%err, ?record, id, "record page failed");
            try_again("The page cannot be shown right now.")
        }
    }
}

/// One documented route per record's page; each is [`show`].
macro_rules! page_routes {
    ($($handler:ident, $path:literal, $record:expr, $what:literal, $doc:literal;)*) => {$(
        #[doc = $doc]
        #[utoipa::path(
            tag = "pages",
            security(()),
            params(("id" = i64, Path, description = "Record id", example = 41), PageQuery),
            responses(
                (status = 200, description = concat!("The page of ", $what), body = String, content_type = "text/html"),
                (status = 303, description = "No session and no valid personal link: to sign-in, then back here"),
                (status = 404, description = "No such record, or not the reader's (another person's link, another organization)", body = String, content_type = "text/html")
            )
        )]
        #[get($path)]
        pub async fn $handler(
            state: web::Data<AppState>,
            req: HttpRequest,
            id: web::Path<String>,
            query: web::Query<PageQuery>,
        ) -> HttpResponse {
            // Not a record id: this page answers for people, not with a JSON problem.
            match id.parse::<i64>() {
                Ok(id) if id > 0 => show(&state, &req, $record, id, query.token.as_deref()).await,
                _ => not_found(),
            }
        }
    )*};
}

page_routes! {
    program_page, "/programs/{id}", PageRecord::Program, "a program: its overview", "The overview page of a program for people (HTML): status with the reason, milestones against baseline, gates ahead, open deviations and CAPA, production holds.";
    milestone_page, "/milestones/{id}", PageRecord::Milestone, "a milestone and its gate", "The page of a milestone and its gate for people (HTML): dates against baseline, the checklist with its readiness, signed decisions.";
    action_item_page, "/action-items/{id}", PageRecord::ActionItem, "an action item", "The page of an action item for people (HTML): owner, due date, where it comes from.";
    deviation_page, "/deviations/{id}", PageRecord::Deviation, "a deviation", "The page of a deviation for people (HTML): what happened, when (reader's and site's time), production, CAPA, escalation, closure signature.";
    capa_page, "/capas/{id}", PageRecord::Capa, "a CAPA", "The page of a CAPA for people (HTML): the plan, its actions, the deviations it answers, its signatures.";
    change_request_page, "/change-requests/{id}", PageRecord::ChangeRequest, "a change request", "The page of a change request for people (HTML): the change, its assessed impact, the signed decision, its tasks.";
    escalation_page, "/escalations/{id}", PageRecord::Escalation, "an escalation: its timeline of pages, acknowledgements and re-opens", "The page of an escalation for people (HTML): who was paged when, acknowledgements, re-opens, the call tree.";
}

/// Registers every record page.
pub fn configure(cfg: &mut utoipa_actix_web::service_config::ServiceConfig) {
    cfg.service(program_page)
        .service(milestone_page)
        .service(action_item_page)
        .service(deviation_page)
        .service(capa_page)
        .service(change_request_page)
        .service(escalation_page);
}

/// The tone of a criticality: critical red, major amber, else muted.
pub fn criticality_tone(criticality: &str) -> &'static str {
    match criticality {
        "critical" => "critical",
        "major" => "warning",
        _ => "neutral",
    }
}
