//! The HTTP side of the one transition engine (`entity::workflow`): a step of any record
//! with a state machine is read in the caller's scope, checked cheaply, e-signed when
//! its machine says so (the signer rule, the password with its lockout), run by the
//! engine in one write transaction, its follow-ups completed, and its refusal answered
//! as problem+json the same way for every record type.

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse};
use entity::workflow::{
    self, FollowUp, Refusal, RefusalKind, TransitionError, Versioned, Workflow,
    deviation as deviation_flow,
};
use entity::{deviation, signature};
use sea_orm::{ConnectionTrait, DatabaseTransaction, EntityTrait, PrimaryKeyTrait};
use serde::Serialize;

use crate::auth::{AuthContext, TenantScoped, find_scoped};
use crate::error::{ApiError, ApiResult};
use crate::records::insert_action;
use crate::signing;
use crate::state::AppState;
use crate::views::{BlockedEvent, EventOptions, snapshot};
use crate::write::optional_version;
use crate::write_txn::WriteTxn;

/// A step as the api shows its record.
pub trait ApiStep: Workflow {
    type View: Serialize;
    /// Whether this caller may take steps on the record at all (role, sponsor or CMO
    /// side): a 403 before anything else is said about the step.
    fn may_step(
        conn: &impl ConnectionTrait,
        ctx: &AuthContext,
        m: &Self::Model,
    ) -> impl Future<Output = ApiResult<()>>;
    /// Whether this caller's side may take this particular step (the permission matrix,
    /// `entity::access`: e.g. only the sponsor lowers a deviation's criticality).
    fn may_take(
        _conn: &impl ConnectionTrait,
        _ctx: &AuthContext,
        _m: &Self::Model,
        _step: &Self,
    ) -> impl Future<Output = ApiResult<()>> {
        async { Ok(()) }
    }
    /// Whether the view carries `allowed_events`/`blocked_events`; when not, [`answer`]
    /// does not compute them.
    const OFFERS_EVENTS: bool = true;
    /// Puts what this caller can do now into a single-record answer (`allowed_events`,
    /// `blocked_events`).
    fn offer(view: &mut Self::View, options: EventOptions<Self::Event>);
    /// The record as people see it (the response, the signed content, the audit
    /// snapshots).
    fn view(
        conn: &impl ConnectionTrait,
        ctx: &AuthContext,
        m: &Self::Model,
        now: chrono::DateTime<chrono::Utc>,
    ) -> impl Future<Output = ApiResult<Self::View>>;
}

impl<R: Refusal> From<TransitionError<R>> for ApiError {
    fn from(e: TransitionError<R>) -> Self {
        match e {
            TransitionError::NotFound => ApiError::NotFound,
            TransitionError::Stale { current } => ApiError::stale_version(current),
            TransitionError::SignerRequired => ApiError::internal("a signed step without a signer"),
            TransitionError::Db(e) => e.into(),
            TransitionError::View(e) => match e.downcast::<ApiError>() {
                Ok(api) => *api,
                Err(other) => ApiError::internal(other.to_string()),
            },
            TransitionError::Refused {
                refusal,
                current_state,
                allowed_events,
                version,
            } => match refusal.kind() {
                RefusalKind::MissingField(field) => {
                    ApiError::invalid(field, "required", refusal.to_string())
                }
                RefusalKind::Invalid { field, code } => {
                    ApiError::invalid(field, code, refusal.to_string())
                }
                RefusalKind::Forbidden => ApiError::Forbidden(refusal.to_string()),
                RefusalKind::Illegal => ApiError::Conflict {
                    code: refusal.conflict_code(),
                    detail: refusal.to_string(),
                    current_state: Some(current_state),
                    allowed_events: Some(allowed_events),
                    current_version: Some(version),
                },
            },
        }
    }
}

/// Runs `step` on record `id` for the caller and answers 200 with the record's view.
/// [`ApiStep::may_step`] sees the record first (403 before anything else is said about
/// it); `password` is needed when the step is signed; the version comes from `If-Match`
/// or the body and is checked when given.
#[allow(clippy::too_many_arguments)]
pub async fn run_step<W>(
    state: &AppState,
    ctx: &AuthContext,
    req: &HttpRequest,
    id: i64,
    step: W,
    password: Option<String>,
    body_version: Option<i32>,
) -> ApiResult<HttpResponse>
where
    W: ApiStep,
    W::Entity: TenantScoped,
    <<W::Entity as EntityTrait>::PrimaryKey as PrimaryKeyTrait>::ValueType: From<i64>,
{
    run_step_answering(
        state,
        ctx,
        req,
        id,
        step,
        password,
        body_version,
        async |_, view, _| Ok((StatusCode::OK, view)),
    )
    .await
}

/// [`run_step`] with its own answer, built in the step's transaction from the record's
/// view and what the follow-ups created (committed with the change, so a retry with the
/// same `Idempotency-Key` gets it again).
#[allow(clippy::too_many_arguments)]
pub async fn run_step_answering<W, T>(
    state: &AppState,
    ctx: &AuthContext,
    req: &HttpRequest,
    id: i64,
    step: W,
    password: Option<String>,
    body_version: Option<i32>,
    answer_with: impl AsyncFnOnce(
        &DatabaseTransaction,
        W::View,
        Completed,
    ) -> ApiResult<(StatusCode, T)>,
) -> ApiResult<HttpResponse>
where
    W: ApiStep,
    W::Entity: TenantScoped,
    <<W::Entity as EntityTrait>::PrimaryKey as PrimaryKeyTrait>::ValueType: From<i64>,
    T: Serialize,
{
    let version = optional_version(req, body_version)?;
    let (txn, view, completed) = take_step(state, ctx, id, step, password, version).await?;
    let (status, body) = answer_with(&txn, view, completed).await?;
    txn.respond(status, &body).await
}

/// The engine's order for a step a person takes (through the API or a page): who may,
/// the version, the machine before any password, the signer, then the step with its
/// follow-ups. Returns the open transaction with the record as this caller now sees it;
/// the caller commits it with its answer.
pub async fn take_step<W>(
    state: &AppState,
    ctx: &AuthContext,
    id: i64,
    step: W,
    password: Option<String>,
    version: Option<i32>,
) -> ApiResult<(WriteTxn, W::View, Completed)>
where
    W: ApiStep,
    W::Entity: TenantScoped,
    <<W::Entity as EntityTrait>::PrimaryKey as PrimaryKeyTrait>::ValueType: From<i64>,
{
    let seen = find_scoped::<W::Entity, _>(&state.db, ctx, id).await?;
    W::may_step(&state.db, ctx, &seen).await?;
    W::may_take(&state.db, ctx, &seen, &step).await?;
    // The engine's order: the version precondition first, then the machine.
    if version.is_some_and(|v| v != seen.version()) {
        return Err(ApiError::stale_version(seen.version()));
    }
    // Refuse an impossible step before asking for a password.
    workflow::precheck(&state.db, &seen, &step).await?;
    let signer = match step.signing() {
        None => None,
        Some(signing) => {
            if !signature::may_sign(ctx.user.role, signing.record_type, signing.meaning) {
                return Err(ApiError::Forbidden(
                    signature::who_signs(signing.record_type).to_string(),
                ));
            }
            let password = signing::required_password(password)?;
            let what = signature::SignatureRecord {
                record_type: signing.record_type,
                record_id: W::signed_record_id(&seen),
                record_hash: String::new(),
                signed_content: None,
                meaning: signing.meaning,
                reason: step.reason(),
            };
            signing::authenticate_signer(state, ctx, password, &what).await?;
            Some(ctx.signer())
        }
    };
    let now = state.clock.now();
    let txn = WriteTxn::begin(state, ctx).await?;
    let done = workflow::transition(
        &txn,
        &ctx.actor(now),
        W::Entity::tenant_condition(ctx),
        id,
        &step,
        version,
        signer.as_ref(),
        async |m| view_value::<W>(&txn, ctx, m, now).await,
    )
    .await?;
    let completed = complete(&txn, ctx, signer.as_ref(), done.follow_ups, now).await?;
    let view = answer::<W>(&txn, ctx, &done.after, now).await?;
    Ok((txn, view, completed))
}

/// The events `m`'s state offers, judged for this caller now: who may take steps at all
/// ([`ApiStep::may_step`]), who signs, and the guards.
pub async fn event_options<W: ApiStep>(
    conn: &impl ConnectionTrait,
    ctx: &AuthContext,
    m: &W::Model,
) -> ApiResult<EventOptions<W::Event>> {
    let not_yours = match W::may_step(conn, ctx, m).await {
        Ok(()) => None,
        Err(ApiError::Forbidden(why)) => Some(why),
        Err(other) => return Err(other),
    };
    let mut options = EventOptions {
        allowed: Vec::new(),
        blocked: Vec::new(),
    };
    for offered in workflow::offered::<W>(conn, m, ctx.user.role).await? {
        let not_signer = offered
            .signing
            .filter(|s| !signature::may_sign(ctx.user.role, s.record_type, s.meaning))
            .map(|s| signature::who_signs(s.record_type).to_string());
        let probe = W::probe(offered.event, m, ctx.user.role);
        let not_your_side = match W::may_take(conn, ctx, m, &probe).await {
            Ok(()) => None,
            Err(ApiError::Forbidden(why)) => Some(why),
            Err(other) => return Err(other),
        };
        match not_yours
            .clone()
            .or(not_your_side)
            .or(not_signer)
            .or(offered.blocked)
        {
            None => options.allowed.push(offered.event),
            Some(reason) => options.blocked.push(BlockedEvent {
                event: entity::enums::wire_name(&offered.event),
                reason,
            }),
        }
    }
    Ok(options)
}

/// A record on a single-record answer (its GET, a step's answer): its view with what
/// this caller can do now.
pub async fn answer<W: ApiStep>(
    conn: &impl ConnectionTrait,
    ctx: &AuthContext,
    m: &W::Model,
    now: chrono::DateTime<chrono::Utc>,
) -> ApiResult<W::View> {
    let mut view = W::view(conn, ctx, m, now).await?;
    if W::OFFERS_EVENTS {
        W::offer(&mut view, event_options::<W>(conn, ctx, m).await?);
    }
    Ok(view)
}

async fn view_value<W: ApiStep>(
    conn: &impl ConnectionTrait,
    ctx: &AuthContext,
    m: &W::Model,
    now: chrono::DateTime<chrono::Utc>,
) -> ApiResult<serde_json::Value> {
    W::view(conn, ctx, m, now).await.map(|v| snapshot(&v))
}

/// What a step's follow-ups created.
#[derive(Debug, Default)]
pub struct Completed {
    pub action_item_ids: Vec<i64>,
}

/// Completes what a step caused beyond its record, in its transaction: tells the people
/// paged that an escalation ended, closes the deviations a CAPA's effective closure
/// releases (signed by the CAPA's signer, each bound to its own record), creates the
/// action items it spawned.
pub async fn complete(
    txn: &DatabaseTransaction,
    ctx: &AuthContext,
    signer: Option<&signature::Signer>,
    follow_ups: Vec<FollowUp>,
    now: chrono::DateTime<chrono::Utc>,
) -> ApiResult<Completed> {
    let mut completed = Completed::default();
    let mut queue = follow_ups;
    while let Some(follow_up) = queue.pop() {
        match follow_up {
            FollowUp::TellPaged { escalation, told } => {
                mail::escalation::tell_paged(
                    txn,
                    &escalation,
                    &told,
                    &ctx.user.display_name,
                    &ctx.public_base_url,
                    now,
                )
                .await?;
            }
            FollowUp::CloseWaitingDeviation {
                deviation_id,
                capa_id,
            } => {
                let capa = entity::record_number::reference_of(
                    txn,
                    entity::record_number::RecordKind::Capa,
                    capa_id,
                )
                .await?;
                let step = deviation_flow::Step {
                    by_capa: Some(capa_id),
                    ..deviation_flow::Step::new(
                        deviation::DeviationEvent::Close,
                        None,
                        Some(format!("CAPA {capa} closed effective")),
                    )
                };
                let done = workflow::transition(
                    txn,
                    &ctx.actor(now),
                    deviation::Entity::tenant_condition(ctx),
                    deviation_id,
                    &step,
                    None,
                    signer,
                    async |m| view_value::<deviation_flow::Step>(txn, ctx, m, now).await,
                )
                .await?;
                queue.extend(done.follow_ups);
            }
            FollowUp::CreateActionItems(actions) => {
                for new in actions {
                    let today = entity::program::Entity::find_by_id(new.program_id)
                        .one(txn)
                        .await?
                        .map_or(now.date_naive(), |p| p.today(now));
                    let created = insert_action(txn, ctx, now, today, new).await?;
                    completed.action_item_ids.push(created.id);
                }
            }
        }
    }
    Ok(completed)
}

/// Completes an escalation step's follow-ups (it has no others): tells the people paged.
/// Needs no signed-in caller (the acknowledgement link has none).
pub async fn tell_paged(
    txn: &DatabaseTransaction,
    follow_ups: Vec<FollowUp>,
    acting: &str,
    base_url: &str,
    now: chrono::DateTime<chrono::Utc>,
) -> ApiResult<()> {
    for follow_up in follow_ups {
        match follow_up {
            FollowUp::TellPaged { escalation, told } => {
                mail::escalation::tell_paged(txn, &escalation, &told, acting, base_url, now)
                    .await?;
            }
            other => {
                return Err(ApiError::internal(format!(
                    "an escalation step with an unexpected follow-up: {other:?}"
                )));
            }
        }
    }
    Ok(())
}
