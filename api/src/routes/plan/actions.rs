//! Action items: create, assign, list, update, transition, snooze.

use actix_web::{HttpRequest, HttpResponse, get, patch, post, web};
use chrono::NaiveDate;
use entity::access::may_update_plan;
use entity::action_item::{self, ActionEvent, ActionSource, ActionStatus};
use entity::audit_trail::{self, Entry};
use entity::program;
use sea_orm::sea_query::IntoCondition;
use sea_orm::{ColumnTrait, Condition, EntityTrait, QueryFilter};
use serde::Deserialize;
use utoipa::{IntoParams, ToSchema};

use crate::auth::{AuthContext, find_scoped, scoped};
use crate::error::{ApiError, ApiResult};
use crate::local_dates::ProgramDates;
use crate::pagination::{Keyset, ListQuery, Paging};
use crate::records::check_owner;
use crate::records::{NewAction, insert_action};
use crate::routes::{ApiJson, Checks, Page, Validate, fetch_page, snapshot};
use crate::state::AppState;
use crate::transition::answer;
use crate::transition::{ApiStep, run_step};
use crate::views::plan::{ActionItemView, action_item as view};
use crate::views::{EventOptions, Offers};
use crate::write::{Patched, optional_version, update_versioned, write_next_version};
use crate::write_txn::WriteTxn;
use actix_web::http::StatusCode;
use entity::workflow::action as action_flow;

/// Owners act on their own items; program managers and admins of either side on all.
fn may_act_on(ctx: &AuthContext, prog: &program::Model, item: &action_item::Model) -> bool {
    may_update_plan(ctx.caller(), prog.sides(), Some(item.owner_user_id))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({
    "title": "Send the updated cleaning validation protocol", "owner_user_id": 5,
    "due_date": "2027-02-15", "source": "meeting"
}))]
pub struct CreateActionItem {
    #[schema(min_length = 1, max_length = 200)]
    pub title: String,
    #[schema(max_length = 5000)]
    pub description: Option<String>,
    /// A user of the sponsor or of the program's CMO.
    pub owner_user_id: i64,
    pub due_date: NaiveDate,
    /// Default `other`.
    pub source: Option<ActionSource>,
    pub source_id: Option<i64>,
}

impl Validate for CreateActionItem {
    fn validate(&self, c: &mut Checks) {
        c.date("due_date", self.due_date);
        if matches!(
            self.source,
            Some(ActionSource::GateItem | ActionSource::Capa | ActionSource::Change)
        ) {
            c.fail(
                "source",
                "not_allowed",
                "gate, CAPA and change actions are created by their gate, CAPA or change",
            );
        }
        if self.source_id.is_some() && self.source != Some(ActionSource::Deviation) {
            c.fail(
                "source_id",
                "not_allowed",
                "only a deviation source names a record",
            );
        }
        c.text("title", &self.title, 1, 200);
        c.optional_text("description", self.description.as_deref(), 1, 5000);
    }
}

/// Create an action item on a program (program managers and admins of either side).
#[utoipa::path(
    tag = "action items",
    params(("id" = i64, Path, description = "Program id")),
    request_body = CreateActionItem,
    responses(
        (status = 201, description = "Action item created", body = ActionItemView),
        (status = 403, description = "Not allowed to create action items on this program", body = crate::error::Problem),
        (status = 404, description = "No such program visible to the caller", body = crate::error::Problem)
    )
)]
#[post("/programs/{id}/action-items")]
pub async fn create_action_item(
    state: web::Data<AppState>,
    ctx: AuthContext,
    id: web::Path<i64>,
    body: ApiJson<CreateActionItem>,
) -> ApiResult<HttpResponse> {
    let b = body.into_inner();
    let txn = WriteTxn::begin(&state, &ctx).await?;
    let prog = find_scoped::<program::Entity, _>(&txn, &ctx, id.into_inner()).await?;
    if !may_update_plan(ctx.caller(), prog.sides(), None) {
        return Err(ApiError::Forbidden(
            "program managers and admins create action items".to_string(),
        ));
    }
    check_owner(&txn, &prog, b.owner_user_id).await?;
    if let Some(source_id) = b.source_id {
        let found = entity::deviation::Entity::find_by_id(source_id)
            .filter(entity::deviation::Column::ProgramId.eq(prog.id))
            .one(&txn)
            .await?;
        if found.is_none() {
            return Err(ApiError::invalid(
                "source_id",
                "unknown_deviation",
                "not a deviation of this program",
            ));
        }
    }
    let now = state.clock.now();
    let today = prog.today(now);
    let created = insert_action(
        &txn,
        &ctx,
        now,
        today,
        NewAction {
            program_id: prog.id,
            title: b.title.trim().to_string(),
            description: b.description,
            owner_user_id: b.owner_user_id,
            due_date: b.due_date,
            source: b.source.unwrap_or(ActionSource::Other),
            source_id: b.source_id,
        },
    )
    .await?;
    txn.respond(StatusCode::CREATED, &view(&created, today))
        .await
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ActionFilter {
    pub program_id: Option<i64>,
    pub owner_user_id: Option<i64>,
    pub status: Option<ActionStatus>,
    pub source: Option<ActionSource>,
    /// Only items overdue today (in each item's program's time zone, as on the item),
    /// or only items that are not.
    pub overdue: Option<bool>,
    /// Due on or before this date.
    pub due_before: Option<NaiveDate>,
    /// Due on or after this date.
    pub due_after: Option<NaiveDate>,
}

/// Action items on the caller's programs, by due date then id.
#[utoipa::path(
    tag = "action items",
    params(ActionFilter, Paging),
    responses((status = 200, description = "One page of action items", body = Page<ActionItemView>))
)]
#[get("/action-items")]
pub async fn list_action_items(
    state: web::Data<AppState>,
    ctx: AuthContext,
    query: ListQuery<ActionFilter>,
) -> ApiResult<web::Json<Page<ActionItemView>>> {
    let f = query.filter;
    let dates = ProgramDates::load(&state.reads, &ctx, state.clock.now()).await?;
    let mut select = scoped::<action_item::Entity>(&ctx);
    if let Some(v) = f.program_id {
        select = select.filter(action_item::Column::ProgramId.eq(v));
    }
    if let Some(v) = f.owner_user_id {
        select = select.filter(action_item::Column::OwnerUserId.eq(v));
    }
    if let Some(v) = f.status {
        select = select.filter(action_item::Column::Status.eq(v));
    }
    if let Some(v) = f.source {
        select = select.filter(action_item::Column::Source.eq(v));
    }
    if let Some(v) = f.due_before {
        select = select.filter(action_item::Column::DueDate.lte(v));
    }
    if let Some(v) = f.due_after {
        select = select.filter(action_item::Column::DueDate.gte(v));
    }
    if let Some(overdue) = f.overdue {
        let program = action_item::Column::ProgramId;
        let is_overdue = Condition::all()
            .add(action_item::Column::Status.is_in([ActionStatus::Open, ActionStatus::InProgress]))
            .add(dates.before_today(program, action_item::Column::DueDate))
            .add(dates.null_or_before_today(program, action_item::Column::SnoozedUntil));
        select = select.filter(if overdue {
            is_overdue
        } else {
            is_overdue.not()
        });
    }
    let page = fetch_page(
        &state.reads,
        select,
        Keyset::asc([action_item::Column::DueDate, action_item::Column::Id]),
        &query.paging,
    )
    .await?;
    let items = &page.items;
    let items = items
        .iter()
        .map(|a| view(a, dates.today(a.program_id)))
        .collect();
    Ok(web::Json(page.with_items(items)))
}

/// One action item.
#[utoipa::path(
    tag = "action items",
    params(("id" = i64, Path, description = "Action item id")),
    responses(
        (status = 200, description = "The action item", body = ActionItemView),
        (status = 404, description = "No such action item visible to the caller", body = crate::error::Problem)
    )
)]
#[get("/action-items/{id}")]
pub async fn get_action_item(
    state: web::Data<AppState>,
    ctx: AuthContext,
    id: web::Path<i64>,
) -> ApiResult<web::Json<ActionItemView>> {
    let a = find_scoped::<action_item::Entity, _>(&state.reads, &ctx, id.into_inner()).await?;
    let now = state.clock.now();
    Ok(web::Json(
        answer::<action_flow::Step>(&state.reads, &ctx, &a, now).await?,
    ))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"version": 1, "owner_user_id": 9, "reason": "Petra is on leave; Marco takes over"}))]
pub struct UpdateActionItem {
    /// The version being updated (or send `If-Match`).
    pub version: Option<i32>,
    #[schema(min_length = 1, max_length = 200)]
    pub title: Option<String>,
    #[schema(max_length = 5000)]
    pub description: Option<String>,
    /// Reassign (program managers and admins only).
    pub owner_user_id: Option<i64>,
    pub due_date: Option<NaiveDate>,
    #[schema(max_length = 500)]
    pub reason: Option<String>,
}

impl Validate for UpdateActionItem {
    fn validate(&self, c: &mut Checks) {
        c.optional_date("due_date", self.due_date);
        if self.due_date.is_some() && self.reason.is_none() {
            c.fail("reason", "required", "moving a due date needs a reason");
        }
        c.optional_text("title", self.title.as_deref(), 1, 200);
        c.optional_text("description", self.description.as_deref(), 1, 5000);
        c.optional_text("reason", self.reason.as_deref(), 1, 500);
    }
}

/// Update or reassign an action item.
#[utoipa::path(
    tag = "action items",
    params(
        ("id" = i64, Path, description = "Action item id"),
        ("If-Match" = Option<String>, Header, pattern = r#"^(W/)?"?[0-9]{1,9}"?$"#, description = "Version being updated (alternative to `version` in the body)")
    ),
    request_body = UpdateActionItem,
    responses(
        (status = 200, description = "The updated action item", body = ActionItemView),
        (status = 403, description = "Not allowed to change this item", body = crate::error::Problem),
        (status = 404, description = "No such action item visible to the caller", body = crate::error::Problem),
        (status = 409, description = "Stale version", body = crate::error::Problem)
    )
)]
#[patch("/action-items/{id}")]
pub async fn update_action_item(
    req: HttpRequest,
    state: web::Data<AppState>,
    ctx: AuthContext,
    id: web::Path<i64>,
    body: ApiJson<UpdateActionItem>,
) -> ApiResult<HttpResponse> {
    let b = body.into_inner();
    // The item's program, read while authorizing: its managers and its local date.
    let program = std::cell::RefCell::new(None);
    let view = update_versioned::<action_item::Entity, _>(
        &state,
        &ctx,
        &req,
        id.into_inner(),
        b.version,
        "action_item",
        async |txn, current| {
            let prog = find_scoped::<program::Entity, _>(txn, &ctx, current.program_id).await?;
            ctx.require(
                may_act_on(&ctx, &prog, current),
                "not allowed to change this action item",
            )?;
            if let Some(owner) = b.owner_user_id
                && owner != current.owner_user_id
            {
                ctx.require(
                    may_update_plan(ctx.caller(), prog.sides(), None),
                    "program managers and admins reassign action items",
                )?;
                check_owner(txn, &prog, owner).await?;
            }
            program.replace(Some(prog));
            Ok(())
        },
        async |txn, current, a| {
            let manager = program
                .borrow()
                .as_ref()
                .is_some_and(|p| may_update_plan(ctx.caller(), p.sides(), None));
            if b.due_date.is_some_and(|due| due != current.due_date) {
                // Owners defer with a snooze (and its reason); moving the date is the
                // managers' call, and a CAPA action's only through an extension request.
                ctx.require(manager, "program managers and admins move due dates")?;
                if current.source == ActionSource::Capa {
                    return Err(ApiError::conflict(
                        "use_extension_request",
                        "a CAPA action's due date moves only through an approved extension request",
                    ));
                }
            }
            if let Some(v) = b.title {
                a.title = v.trim().to_string();
            }
            if let Some(v) = b.description {
                a.description = Some(v);
            }
            if let Some(v) = b.owner_user_id {
                a.owner_user_id = v;
            }
            if let Some(v) = b.due_date {
                a.due_date = v;
            }
            let reassigned = a.owner_user_id != current.owner_user_id;
            if reassigned {
                crate::records::announce_assignment(txn, a, Some(ctx.user.id), state.clock.now())
                    .await?;
            }
            Ok(Patched {
                action: if reassigned { "assign" } else { "update" },
                reason: b.reason,
            })
        },
        async |_, a| {
            let today = program
                .borrow()
                .as_ref()
                .map(|p| p.today(state.clock.now()))
                .unwrap_or_else(|| state.clock.now().date_naive());
            Ok(view(a, today))
        },
    )
    .await?;
    Ok(view)
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"event": "complete", "evidence": "Gaskets replaced, work order closed",
    "evidence_url": "https://dms.example.com/wo/WO-5512", "version": 2}))]
pub struct ActionTransition {
    pub event: ActionEvent,
    /// Required for `cancel` and `reopen`.
    #[schema(min_length = 1, max_length = 500)]
    pub reason: Option<String>,
    /// `complete`: what shows the work was done. An action of a CAPA, a deviation or a
    /// change is completed on evidence: this note, `evidence_url`, or both (422 otherwise).
    #[schema(min_length = 1, max_length = 2000)]
    pub evidence: Option<String>,
    /// `complete`: a link to the evidence (work order, report), an absolute http(s) URL.
    #[schema(
        format = "uri",
        max_length = 2048,
        example = "https://dms.example.com/wo/WO-5512"
    )]
    pub evidence_url: Option<String>,
    /// The version the caller saw (optional).
    pub version: Option<i32>,
}

impl Validate for ActionTransition {
    fn validate(&self, c: &mut Checks) {
        c.optional_text("reason", self.reason.as_deref(), 1, 500);
        c.optional_text("evidence", self.evidence.as_deref(), 1, 2000);
        c.optional_link("evidence_url", self.evidence_url.as_deref());
        if (self.evidence.is_some() || self.evidence_url.is_some())
            && !entity::action_item::takes_evidence(self.event)
        {
            c.fail(
                "evidence",
                "not_applicable",
                "evidence is given with the complete event only",
            );
        }
    }
}

/// Move an action item through `open → in_progress → done`, `cancelled`, or reopen it. An
/// item whose owner's organization no longer works on the program (a CMO whose
/// connection ended) is not reopened before it has another owner (`owner_off_program`).
#[utoipa::path(
    tag = "action items",
    params(("id" = i64, Path, description = "Action item id")),
    request_body = ActionTransition,
    responses(
        (status = 200, description = "The action item in its new state", body = ActionItemView),
        (status = 403, description = "Not allowed to change this item", body = crate::error::Problem),
        (status = 404, description = "No such action item visible to the caller", body = crate::error::Problem),
        (status = 409, description = "Illegal event or stale version (`current_state` and `allowed_events` say what is possible), or a reopen of an item whose owner left the program (`owner_off_program`)", body = crate::error::Problem)
    )
)]
#[post("/action-items/{id}/transitions")]
pub async fn transition_action_item(
    req: HttpRequest,
    state: web::Data<AppState>,
    ctx: AuthContext,
    id: web::Path<i64>,
    body: ApiJson<ActionTransition>,
) -> ApiResult<HttpResponse> {
    let b = body.into_inner();
    let step = action_flow::Step {
        evidence: b.evidence.map(|e| e.trim().to_string()),
        evidence_url: b.evidence_url,
        ..action_flow::Step::new(b.event, b.reason)
    };
    run_step(&state, &ctx, &req, id.into_inner(), step, None, b.version).await
}

impl ApiStep for action_flow::Step {
    type View = ActionItemView;
    fn offer(view: &mut Self::View, options: EventOptions<Self::Event>) {
        view.offer(options);
    }
    /// Who may take steps on this record at all (403 before anything else).
    async fn may_step(
        conn: &impl sea_orm::ConnectionTrait,
        ctx: &AuthContext,
        item: &Self::Model,
    ) -> ApiResult<()> {
        let prog = find_scoped::<program::Entity, _>(conn, ctx, item.program_id).await?;
        ctx.require(
            may_act_on(ctx, &prog, item),
            "not allowed to change this action item",
        )
    }
    /// As of the program's local date.
    async fn view(
        conn: &impl sea_orm::ConnectionTrait,
        _ctx: &AuthContext,
        a: &action_item::Model,
        now: chrono::DateTime<chrono::Utc>,
    ) -> ApiResult<ActionItemView> {
        let today = program::Entity::find_by_id(a.program_id)
            .one(conn)
            .await?
            .map_or(now.date_naive(), |p| p.today(now));
        Ok(view(a, today))
    }
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"until": "2027-02-01", "reason": "waiting for the CMO's validation report"}))]
pub struct SnoozeActionItem {
    /// No reminders and not overdue through this date.
    pub until: NaiveDate,
    /// The version the caller saw (optional; or send `If-Match`).
    pub version: Option<i32>,
    #[schema(min_length = 1, max_length = 500)]
    pub reason: String,
}

impl Validate for SnoozeActionItem {
    fn validate(&self, c: &mut Checks) {
        c.date("until", self.until);
        c.text("reason", &self.reason, 1, 500);
    }
}

/// Snooze an open action item until a date, with a reason.
#[utoipa::path(
    tag = "action items",
    params(("id" = i64, Path, description = "Action item id")),
    request_body = SnoozeActionItem,
    responses(
        (status = 200, description = "The snoozed action item", body = ActionItemView),
        (status = 403, description = "Not allowed to change this item", body = crate::error::Problem),
        (status = 404, description = "No such action item visible to the caller", body = crate::error::Problem),
        (status = 409, description = "The item is done or cancelled", body = crate::error::Problem)
    )
)]
#[post("/action-items/{id}/snooze")]
pub async fn snooze_action_item(
    req: HttpRequest,
    state: web::Data<AppState>,
    ctx: AuthContext,
    id: web::Path<i64>,
    body: ApiJson<SnoozeActionItem>,
) -> ApiResult<HttpResponse> {
    let b = body.into_inner();
    let txn = WriteTxn::begin(&state, &ctx).await?;
    let current = find_scoped::<action_item::Entity, _>(&txn, &ctx, id.into_inner()).await?;
    let prog = find_scoped::<program::Entity, _>(&txn, &ctx, current.program_id).await?;
    if !may_act_on(&ctx, &prog, &current) {
        return Err(ApiError::Forbidden(
            "not allowed to change this action item".to_string(),
        ));
    }
    if !matches!(
        current.status,
        ActionStatus::Open | ActionStatus::InProgress
    ) {
        return Err(ApiError::conflict(
            "not_open",
            "only open or in-progress items can be snoozed",
        ));
    }
    if optional_version(&req, b.version)?.is_some_and(|seen| seen != current.version) {
        return Err(ApiError::stale_version(current.version));
    }
    let now = state.clock.now();
    let today = prog.today(now);
    if b.until < today {
        return Err(ApiError::invalid(
            "until",
            "in_the_past",
            "must be today or later in the program's time zone, as YYYY-MM-DD, e.g. 2027-03-02",
        ));
    }
    let updated = write_next_version::<action_item::Entity>(&txn, current.id, &current, now, |a| {
        a.snoozed_until = Some(b.until);
        a.snooze_reason = Some(b.reason.clone());
    })
    .await?;
    audit_trail::append(
        &txn,
        &ctx.actor(now),
        Entry::new("action_item", updated.id, "snooze")
            .before(snapshot(&view(&current, today)))
            .after(snapshot(&view(&updated, today)))
            .reason(Some(b.reason)),
    )
    .await?;
    txn.respond(StatusCode::OK, &view(&updated, today)).await
}

impl crate::auth::TenantScoped for action_item::Entity {
    fn tenant_condition(ctx: &AuthContext) -> Condition {
        action_item::Column::ProgramId
            .in_subquery(crate::auth::visible_programs(ctx))
            .into_condition()
    }
}
