//! Pages where an admin answers what the partner network asks of their organization (an
//! invitation to connect, a proposal to merge a duplicate CMO): the email's link opens
//! the page, and, signed in, they accept or decline with one button. The step is the
//! same engine step `POST …/events` takes; the page shows why not when it cannot be taken
//! (another side's answer, already answered, a sponsor working with both).

use actix_web::http::{StatusCode, header};
use actix_web::{HttpRequest, HttpResponse, get, post, web};
use entity::relationship::{self, ConnectionEvent};
use entity::{cmo_merge, organization, user};
use mail::{FormPage, PageLink};
use sea_orm::{ConnectionTrait, EntityTrait, PrimaryKeyTrait};
use serde::Deserialize;
use utoipa::IntoParams;

use crate::auth::{AuthContext, TenantScoped, find_scoped, session_of};
use crate::csrf;
use crate::error::{ApiError, ApiResult};
use crate::routes::identity::account_pages::{hidden, message, page};
use crate::state::AppState;
use crate::transition::{ApiStep, event_options, take_step};

/// What a page answers with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Answer {
    Accept,
    Decline,
}

impl Answer {
    fn word(self) -> &'static str {
        match self {
            Answer::Accept => "accept",
            Answer::Decline => "decline",
        }
    }
    fn other(self) -> Answer {
        match self {
            Answer::Accept => Answer::Decline,
            Answer::Decline => Answer::Accept,
        }
    }
}

/// A record whose state machine an admin answers from a page.
trait Answered: ApiStep
where
    Self::Entity: TenantScoped,
{
    /// The first segment of the page's path, as in the API.
    const SEGMENT: &'static str;
    fn answered_by(answer: Answer) -> Self::Event;
    fn step(answer: Answer, by_user_id: i64) -> Self;
    /// Its title and what answering means, as the reader should weigh it.
    async fn describe(conn: &impl ConnectionTrait, m: &Self::Model) -> ApiResult<(String, String)>;
}

impl Answered for entity::workflow::connection::Step {
    const SEGMENT: &'static str = "cmo-connections";
    fn answered_by(answer: Answer) -> ConnectionEvent {
        match answer {
            Answer::Accept => ConnectionEvent::Accept,
            Answer::Decline => ConnectionEvent::Decline,
        }
    }
    fn step(answer: Answer, by_user_id: i64) -> Self {
        Self {
            event: Self::answered_by(answer),
            by_user_id,
            message: None,
        }
    }
    async fn describe(
        conn: &impl ConnectionTrait,
        m: &relationship::Model,
    ) -> ApiResult<(String, String)> {
        let (sponsor, cmo) = (
            name(conn, m.sponsor_org_id).await?,
            name(conn, m.cmo_org_id).await?,
        );
        if m.connection == relationship::ConnectionStatus::Ended {
            let by = match m.ended_by_user_id {
                Some(id) => match user::Entity::find_by_id(id).one(conn).await? {
                    Some(u) => format!("{} of {}", u.display_name, name(conn, u.org_id).await?),
                    None => "An admin".to_string(),
                },
                None => "An admin".to_string(),
            };
            return Ok((
                format!("{sponsor} and {cmo} no longer work together"),
                format!(
                    "{by} ended the connection. Their reason: “{}”. {sponsor} keeps its \
                     programs with {cmo} and their records; {cmo}'s people have left those \
                     programs and no longer see them. {sponsor} may invite {cmo} again.",
                    m.end_reason.as_deref().unwrap_or_default()
                ),
            ));
        }
        let mut intro = format!(
            "Once you accept, {sponsor} reads {cmo}'s profile (capabilities, sites, inspections, \
             contacts), can name {cmo} on its programs, and your people work on them with the \
             accounts they have. {sponsor} does not learn which other sponsors you work with, \
             nor they of it."
        );
        if let Some(note) = &m.invitation_message {
            intro = format!("Their message: “{note}”. {intro}");
        }
        Ok((format!("{sponsor} invites {cmo} to connect"), intro))
    }
}

impl Answered for entity::workflow::cmo_merge::Step {
    const SEGMENT: &'static str = "cmo-merges";
    fn answered_by(answer: Answer) -> cmo_merge::MergeEvent {
        match answer {
            Answer::Accept => cmo_merge::MergeEvent::Accept,
            Answer::Decline => cmo_merge::MergeEvent::Decline,
        }
    }
    fn step(answer: Answer, by_user_id: i64) -> Self {
        Self {
            event: Self::answered_by(answer),
            by_user_id,
            note: None,
        }
    }
    async fn describe(
        conn: &impl ConnectionTrait,
        m: &cmo_merge::Model,
    ) -> ApiResult<(String, String)> {
        let (absorbed, survivor) = (
            name(conn, m.absorbed_org_id).await?,
            name(conn, m.survivor_org_id).await?,
        );
        Ok((
            format!("Merge {absorbed} into {survivor}?"),
            format!(
                "Their reason: “{}”. Accepting moves {absorbed}'s people, programs, sponsor \
                 relationships (each with its qualification history), quality agreements, \
                 sites and inspections to {survivor}, at once and for good; {absorbed} remains \
                 only as a name in the history.",
                m.reason
            ),
        ))
    }
}

async fn name(conn: &impl ConnectionTrait, org_id: i64) -> ApiResult<String> {
    Ok(organization::Entity::find_by_id(org_id)
        .one(conn)
        .await?
        .map(|o| o.name)
        .unwrap_or_default())
}

#[derive(Debug, Deserialize, IntoParams)]
pub struct AnswerQuery {
    /// `accept` (default) or `decline`.
    #[param(inline)]
    pub event: Option<Answer>,
}

#[derive(Debug, Deserialize)]
pub struct AnswerForm {
    pub event: Answer,
    /// The version the page showed: an answer given meanwhile is not overwritten.
    pub version: i32,
    pub csrf: Option<String>,
}

impl csrf::Protected for AnswerForm {
    fn csrf(&self) -> Option<&str> {
        self.csrf.as_deref()
    }
}

pub(crate) fn through_sign_in(path: &str) -> HttpResponse {
    let next = path
        .replace('%', "%25")
        .replace('?', "%3F")
        .replace('=', "%3D")
        .replace('&', "%26");
    HttpResponse::SeeOther()
        .insert_header((header::LOCATION, format!("/sign-in?next={next}")))
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .finish()
}

pub(crate) fn failed(err: ApiError) -> HttpResponse {
    let (status, text) = match err {
        ApiError::NotFound => (
            StatusCode::NOT_FOUND,
            "There is no such page, or it is not yours to see.".to_string(),
        ),
        ApiError::Forbidden(why) => (
            StatusCode::FORBIDDEN,
            format!("Not yours to answer: {why}."),
        ),
        ApiError::Conflict { detail, .. } => (StatusCode::CONFLICT, detail),
        other => {
            tracing::warn!(err = %other, "answer page failed");
            return crate::pages::try_again("The service could not do this right now.");
        }
    };
    message(
        status,
        "Nothing to answer",
        &text,
        Some(("/account", "Your account")),
    )
}

pub(crate) fn record_id(raw: &str) -> Option<i64> {
    raw.parse::<i64>().ok().filter(|id| *id > 0)
}

/// The page: the question, and a button when this reader may give `answer` now.
async fn show<W>(state: &AppState, req: &HttpRequest, raw_id: &str, answer: Answer) -> HttpResponse
where
    W: Answered,
    W::Entity: TenantScoped,
    <<W::Entity as EntityTrait>::PrimaryKey as PrimaryKeyTrait>::ValueType: From<i64>,
{
    let Some(id) = record_id(raw_id) else {
        return failed(ApiError::NotFound);
    };
    let path = format!("/{}/{id}/answer", W::SEGMENT);
    let Some(ctx) = session_of(req, state).await else {
        return through_sign_in(&format!("{path}?event={}", answer.word()));
    };
    match question::<W>(state, &ctx, id, answer).await {
        Ok(Ok((title, intro, version))) => page(
            req,
            StatusCode::OK,
            &FormPage {
                title,
                intro: Some(intro),
                error: None,
                action: path.clone(),
                fields: vec![
                    hidden("event", answer.word()),
                    hidden("version", &version.to_string()),
                ],
                button: match answer {
                    Answer::Accept => "Accept",
                    Answer::Decline => "Decline",
                },
                links: vec![PageLink {
                    href: format!("{path}?event={}", answer.other().word()),
                    text: format!("{} instead", capitalized(answer.other().word())),
                }],
            },
        ),
        Ok(Err((title, why))) => message(
            StatusCode::OK,
            &title,
            &why,
            Some(("/account", "Your account")),
        ),
        Err(err) => failed(err),
    }
}

fn capitalized(word: &str) -> String {
    let mut c = word.chars();
    c.next()
        .map(|f| f.to_uppercase().chain(c).collect())
        .unwrap_or_default()
}

/// The question with the record's version when the reader may give `answer` now; its
/// title and why not otherwise.
#[allow(clippy::type_complexity)]
async fn question<W>(
    state: &AppState,
    ctx: &AuthContext,
    id: i64,
    answer: Answer,
) -> ApiResult<Result<(String, String, i32), (String, String)>>
where
    W: Answered,
    W::Entity: TenantScoped,
    <<W::Entity as EntityTrait>::PrimaryKey as PrimaryKeyTrait>::ValueType: From<i64>,
{
    let m = find_scoped::<W::Entity, _>(&state.db, ctx, id).await?;
    let (title, intro) = W::describe(&state.db, &m).await?;
    let options = event_options::<W>(&state.db, ctx, &m).await?;
    let event = W::answered_by(answer);
    if options.allowed.contains(&event) {
        return Ok(Ok((title, intro, entity::workflow::Versioned::version(&m))));
    }
    let wire = entity::enums::wire_name(&event);
    let why = match options.blocked.into_iter().find(|b| b.event == wire) {
        Some(blocked) => format!("You cannot {} it now: {}.", answer.word(), blocked.reason),
        None => format!(
            "This is {} already: there is nothing to {}.",
            entity::enums::wire_name(&W::status(&m)),
            answer.word()
        ),
    };
    Ok(Err((title, format!("{intro} {why}"))))
}

/// The answer, through the engine; then what happened, in words.
async fn submit<W>(
    state: &AppState,
    req: &HttpRequest,
    raw_id: &str,
    form: AnswerForm,
) -> HttpResponse
where
    W: Answered,
    W::Entity: TenantScoped,
    <<W::Entity as EntityTrait>::PrimaryKey as PrimaryKeyTrait>::ValueType: From<i64>,
{
    let Some(id) = record_id(raw_id) else {
        return failed(ApiError::NotFound);
    };
    let Some(ctx) = session_of(req, state).await else {
        return through_sign_in(&format!(
            "/{}/{id}/answer?event={}",
            W::SEGMENT,
            form.event.word()
        ));
    };
    let step = W::step(form.event, ctx.user.id);
    let done = async {
        let (txn, _, _) = take_step(state, &ctx, id, step, None, Some(form.version)).await?;
        txn.respond_empty(StatusCode::OK).await?;
        let m = find_scoped::<W::Entity, _>(&state.db, &ctx, id).await?;
        W::describe(&state.db, &m).await
    };
    match done.await {
        Ok((title, _)) => message(
            StatusCode::OK,
            &title,
            match form.event {
                Answer::Accept => "Accepted. Everyone concerned sees it now.",
                Answer::Decline => "Declined. Nothing changes; they may ask again.",
            },
            Some(("/account", "Your account")),
        ),
        Err(err) => failed(err),
    }
}

/// Where a CMO's admin answers an invitation to connect (the link in the invitation
/// email): signed in, one button accepts (or declines).
#[utoipa::path(
    tag = "pages",
    security(()),
    params(("id" = i64, Path, description = "Connection id", example = 5), AnswerQuery),
    responses(
        (status = 200, description = "The invitation with the answer's button, or why there is nothing to answer", body = String, content_type = "text/html"),
        (status = 303, description = "Not signed in: through sign-in, then back here"),
        (status = 404, description = "No such invitation of the reader's organization", body = String, content_type = "text/html")
    )
)]
#[get("/cmo-connections/{id}/answer")]
pub async fn connection_answer_page(
    state: web::Data<AppState>,
    req: HttpRequest,
    id: web::Path<String>,
    query: web::Query<AnswerQuery>,
) -> HttpResponse {
    let answer = query.event.unwrap_or(Answer::Accept);
    show::<entity::workflow::connection::Step>(&state, &req, &id, answer).await
}

/// The answer to an invitation, from its page (form: `event`, `version`, `csrf`).
#[utoipa::path(
    tag = "pages",
    security(()),
    params(("id" = i64, Path, description = "Connection id", example = 5)),
    request_body(content = String, content_type = "application/x-www-form-urlencoded", description = "`event` (`accept` or `decline`), `version` (the one the page showed) and `csrf` (the page's form token)"),
    responses(
        (status = 200, description = "Answered", body = String, content_type = "text/html"),
        (status = 303, description = "Not signed in: through sign-in to the page"),
        (status = 403, description = "The form token is missing or does not match, or the reader's side does not answer it", body = String, content_type = "text/html"),
        (status = 404, description = "No such invitation of the reader's organization", body = String, content_type = "text/html"),
        (status = 409, description = "Answered meanwhile, or no longer possible", body = String, content_type = "text/html")
    )
)]
#[post("/cmo-connections/{id}/answer")]
pub async fn connection_answer_submit(
    state: web::Data<AppState>,
    req: HttpRequest,
    id: web::Path<String>,
    form: csrf::CheckedForm<AnswerForm>,
) -> HttpResponse {
    submit::<entity::workflow::connection::Step>(&state, &req, &id, form.into_inner()).await
}

/// Where the admin of the CMO that stays answers a proposal to merge a duplicate into it
/// (the link in the proposal's email).
#[utoipa::path(
    tag = "pages",
    security(()),
    params(("id" = i64, Path, description = "Merge id", example = 4), AnswerQuery),
    responses(
        (status = 200, description = "The proposal with the answer's button, or why there is nothing to answer", body = String, content_type = "text/html"),
        (status = 303, description = "Not signed in: through sign-in, then back here"),
        (status = 404, description = "No such merge of the reader's organization", body = String, content_type = "text/html")
    )
)]
#[get("/cmo-merges/{id}/answer")]
pub async fn merge_answer_page(
    state: web::Data<AppState>,
    req: HttpRequest,
    id: web::Path<String>,
    query: web::Query<AnswerQuery>,
) -> HttpResponse {
    let answer = query.event.unwrap_or(Answer::Accept);
    show::<entity::workflow::cmo_merge::Step>(&state, &req, &id, answer).await
}

/// The answer to a merge proposal, from its page (form: `event`, `version`, `csrf`).
#[utoipa::path(
    tag = "pages",
    security(()),
    params(("id" = i64, Path, description = "Merge id", example = 4)),
    request_body(content = String, content_type = "application/x-www-form-urlencoded", description = "`event` (`accept` or `decline`), `version` (the one the page showed) and `csrf` (the page's form token)"),
    responses(
        (status = 200, description = "Answered (accepting merges at once)", body = String, content_type = "text/html"),
        (status = 303, description = "Not signed in: through sign-in to the page"),
        (status = 403, description = "The form token is missing or does not match, or the reader's side does not answer it", body = String, content_type = "text/html"),
        (status = 404, description = "No such merge of the reader's organization", body = String, content_type = "text/html"),
        (status = 409, description = "Answered meanwhile, a sponsor works with both, or no longer possible", body = String, content_type = "text/html")
    )
)]
#[post("/cmo-merges/{id}/answer")]
pub async fn merge_answer_submit(
    state: web::Data<AppState>,
    req: HttpRequest,
    id: web::Path<String>,
    form: csrf::CheckedForm<AnswerForm>,
) -> HttpResponse {
    submit::<entity::workflow::cmo_merge::Step>(&state, &req, &id, form.into_inner()).await
}
