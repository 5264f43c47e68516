//! A sponsor's choice in the merge of two CMOs it works with both
//! (`entity::merge_choice`): through the API (`…/sponsor-choice`) or from the page its
//! admins are emailed (`/cmo-merges/{id}/choice`). Only that sponsor reads its choice; a
//! sponsor that does not work with both learns nothing of the merge (404).

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, get, post, put, web};
use chrono::{DateTime, Utc};
use entity::audit_trail::{self, Entry};
use entity::cmo::QualificationStatus;
use entity::cmo_merge::{self, MergeStatus};
use entity::merge_choice::{self, Keep};
use entity::{OrgKind, Role, organization, relationship, user};
use sea_orm::sea_query::{Expr, ExprTrait};
use sea_orm::{ActiveValue::NotSet, ActiveValue::Set, ColumnTrait, ConnectionTrait};
use sea_orm::{EntityTrait, QueryFilter};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::answer_pages::{failed, record_id, through_sign_in};
use crate::auth::{AuthContext, session_of};
use crate::csrf;
use crate::error::{ApiError, ApiResult};
use crate::extract::{ApiJson, Checks, Validate};
use crate::routes::identity::account_pages::{hidden, message, page};
use crate::state::AppState;
use crate::write::insert_audited_because;
use crate::write_txn::WriteTxn;

/// Your organization's choice in a merge of two CMOs it works with both.
#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({"merge_id": 4, "merge_status": "proposed",
    "absorbed_org_id": 7, "absorbed_name": "Lonza Visp (Acme)", "survivor_org_id": 2,
    "survivor_name": "Lonza Visp", "your_qualification_of_absorbed": "approved",
    "your_qualification_of_survivor": "qualified", "keep": "absorbed",
    "reason": "Our approval of the Visp site was with the Acme-registered profile",
    "decided_by": "Quinn QA (Acme Pharma)", "decided_at": "2026-12-02T09:00:00Z", "version": 1}))]
pub struct SponsorChoiceView {
    pub merge_id: i64,
    pub merge_status: MergeStatus,
    /// The duplicate, merged away.
    pub absorbed_org_id: i64,
    pub absorbed_name: String,
    /// The CMO that stays.
    pub survivor_org_id: i64,
    pub survivor_name: String,
    /// Your qualification of each, as it stands.
    pub your_qualification_of_absorbed: Option<QualificationStatus>,
    pub your_qualification_of_survivor: Option<QualificationStatus>,
    /// Which relationship holds after the merge (`null` until you choose); the other one
    /// ends and stays, with its history, under the duplicate's id.
    pub keep: Option<Keep>,
    pub reason: Option<String>,
    #[schema(example = "Quinn QA (Acme Pharma)")]
    pub decided_by: Option<String>,
    pub decided_at: Option<DateTime<Utc>>,
    /// The choice's version (`null` until you choose): pass it to change your choice.
    pub version: Option<i32>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"keep": "absorbed",
    "reason": "Our approval of the Visp site was with the Acme-registered profile"}))]
pub struct SponsorChoice {
    pub keep: Keep,
    /// Why (1–2,000 characters): kept with the choice, in your audit trail and on the
    /// relationship that ends.
    #[schema(min_length = 1, max_length = 2000)]
    pub reason: String,
    /// The choice's version you read, when changing it.
    pub version: Option<i32>,
}

impl Validate for SponsorChoice {
    fn validate(&self, c: &mut Checks) {
        c.text("reason", &self.reason, 1, 2_000);
    }
}

/// The merge and the caller's choice in it, when the caller's organization is a sponsor
/// working with both CMOs (or chose already); 404 otherwise.
async fn load(
    conn: &impl ConnectionTrait,
    ctx: &AuthContext,
    merge_id: i64,
) -> ApiResult<(cmo_merge::Model, Option<merge_choice::Model>)> {
    if ctx.org.kind != OrgKind::Sponsor {
        return Err(ApiError::NotFound);
    }
    let merge = cmo_merge::Entity::find_by_id(merge_id)
        .one(conn)
        .await?
        .ok_or(ApiError::NotFound)?;
    let choice = merge_choice::Entity::find()
        .filter(merge_choice::Column::MergeId.eq(merge.id))
        .filter(merge_choice::Column::SponsorOrgId.eq(ctx.org_id()))
        .one(conn)
        .await?;
    let shared = merge.status == MergeStatus::Proposed
        && cmo_merge::shared_sponsors(conn, merge.absorbed_org_id, merge.survivor_org_id)
            .await?
            .contains_key(&ctx.org_id());
    if choice.is_none() && !shared {
        return Err(ApiError::NotFound);
    }
    Ok((merge, choice))
}

async fn view(
    conn: &impl ConnectionTrait,
    ctx: &AuthContext,
    merge: &cmo_merge::Model,
    choice: Option<&merge_choice::Model>,
) -> ApiResult<SponsorChoiceView> {
    let name = |id: i64| async move {
        Ok::<_, ApiError>(
            organization::Entity::find_by_id(id)
                .one(conn)
                .await?
                .map(|o| o.name)
                .unwrap_or_default(),
        )
    };
    let qualification = |cmo: i64| async move {
        Ok::<_, ApiError>(
            relationship::between(conn, ctx.org_id(), cmo)
                .await?
                .map(|r| r.qualification_status),
        )
    };
    let decided_by = match choice {
        Some(c) => user::Entity::find_by_id(c.decided_by_user_id)
            .one(conn)
            .await?
            .map(|u| format!("{} ({})", u.display_name, ctx.org.name)),
        None => None,
    };
    Ok(SponsorChoiceView {
        merge_id: merge.id,
        merge_status: merge.status,
        absorbed_org_id: merge.absorbed_org_id,
        absorbed_name: name(merge.absorbed_org_id).await?,
        survivor_org_id: merge.survivor_org_id,
        survivor_name: name(merge.survivor_org_id).await?,
        your_qualification_of_absorbed: qualification(merge.absorbed_org_id).await?,
        your_qualification_of_survivor: qualification(merge.survivor_org_id).await?,
        keep: choice.map(|c| c.keep),
        reason: choice.map(|c| c.reason.clone()),
        decided_by,
        decided_at: choice.map(|c| c.decided_at),
        version: choice.map(|c| c.version),
    })
}

/// Records (or changes) the caller's choice in its write transaction; the caller commits.
async fn choose(
    state: &AppState,
    ctx: &AuthContext,
    merge_id: i64,
    keep: Keep,
    reason: &str,
    version: Option<i32>,
) -> ApiResult<(WriteTxn, SponsorChoiceView)> {
    if !matches!(ctx.user.role, Role::Admin | Role::Quality) {
        return Err(ApiError::Forbidden(
            "which qualification holds is chosen by the sponsor's admins and quality".to_string(),
        ));
    }
    let txn = WriteTxn::begin(state, ctx).await?;
    let (merge, current) = load(&*txn, ctx, merge_id).await?;
    if merge.status != MergeStatus::Proposed {
        return Err(ApiError::conflict(
            "merge_answered",
            format!(
                "the merge is {} already: the choice can no longer change",
                crate::routes::wire_name(&merge.status)
            ),
        ));
    }
    let now = state.clock.now();
    let reason = reason.trim().to_string();
    let chosen = match current {
        Some(c) => {
            if version.is_some_and(|v| v != c.version) {
                return Err(ApiError::stale_version(c.version));
            }
            let written = merge_choice::Entity::update_many()
                .col_expr(merge_choice::Column::Keep, Expr::value(keep))
                .col_expr(merge_choice::Column::Reason, Expr::value(reason.clone()))
                .col_expr(
                    merge_choice::Column::DecidedByUserId,
                    Expr::value(ctx.user.id),
                )
                .col_expr(merge_choice::Column::DecidedAt, Expr::value(now))
                .col_expr(
                    merge_choice::Column::Version,
                    Expr::col(merge_choice::Column::Version).add(1),
                )
                .filter(merge_choice::Column::Id.eq(c.id))
                .filter(merge_choice::Column::Version.eq(c.version))
                .exec(&*txn)
                .await?;
            if written.rows_affected != 1 {
                return Err(ApiError::stale_version(c.version));
            }
            let after = merge_choice::Entity::find_by_id(c.id)
                .one(&*txn)
                .await?
                .ok_or(ApiError::NotFound)?;
            audit_trail::append(
                &*txn,
                &ctx.actor(now),
                Entry::new("cmo_merge_choice", c.id, "change")
                    .before(serde_json::json!({"keep": c.keep, "reason": c.reason}))
                    .after(serde_json::json!({"keep": after.keep, "reason": after.reason}))
                    .reason(Some(reason.clone())),
            )
            .await?;
            after
        }
        None => {
            let (row, _) = insert_audited_because(
                &*txn,
                &ctx.actor(now),
                "cmo_merge_choice",
                Some(reason.clone()),
                merge_choice::ActiveModel {
                    id: NotSet,
                    merge_id: Set(merge.id),
                    sponsor_org_id: Set(ctx.org_id()),
                    keep: Set(keep),
                    reason: Set(reason.clone()),
                    decided_by_user_id: Set(ctx.user.id),
                    decided_at: Set(now),
                    version: Set(1),
                },
                async |r| Ok(serde_json::json!({"merge_id": r.merge_id, "keep": r.keep})),
            )
            .await?;
            row
        }
    };
    let shown = view(&*txn, ctx, &merge, Some(&chosen)).await?;
    Ok((txn, shown))
}

/// Your organization's choice in a merge of two CMOs it works with both (sponsors).
#[utoipa::path(
    tag = "partners",
    params(("id" = i64, Path, description = "Merge id", example = 4)),
    responses(
        (status = 200, description = "The merge as it concerns you, with your choice (`keep` null until made)", body = SponsorChoiceView),
        (status = 404, description = "No such merge of two CMOs your organization works with both", body = crate::error::Problem)
    )
)]
#[get("/cmo-merges/{id}/sponsor-choice")]
pub async fn get_sponsor_choice(
    state: web::Data<AppState>,
    ctx: AuthContext,
    id: web::Path<i64>,
) -> ApiResult<web::Json<SponsorChoiceView>> {
    let (merge, choice) = load(&state.reads, &ctx, id.into_inner()).await?;
    Ok(web::Json(
        view(&state.reads, &ctx, &merge, choice.as_ref()).await?,
    ))
}

/// Choose which of your two relationships holds when two CMOs your organization works
/// with both are merged (admins and quality of that sponsor). Your connection,
/// qualification and its signed history, notes and agreements with the one you keep go on
/// with the CMO that stays; the other relationship ends, with your reason, and stays
/// under the duplicate's id as history. Your programs with either move to the CMO that
/// stays. The merge cannot be accepted before every such sponsor has chosen; you may
/// change your choice (pass its `version`) until it is answered. Nobody else reads it.
#[utoipa::path(
    tag = "partners",
    params(("id" = i64, Path, description = "Merge id", example = 4)),
    request_body = SponsorChoice,
    responses(
        (status = 200, description = "Your choice", body = SponsorChoiceView),
        (status = 403, description = "Not an admin or quality user of the sponsor", body = crate::error::Problem),
        (status = 404, description = "No such merge of two CMOs your organization works with both", body = crate::error::Problem),
        (status = 409, description = "The merge was answered already (`merge_answered`), or your choice changed meanwhile (stale `version`)", body = crate::error::Problem),
        (status = 422, description = "`keep` is not `survivor` or `absorbed`, or `reason` is empty or too long", body = crate::error::Problem)
    )
)]
#[put("/cmo-merges/{id}/sponsor-choice")]
pub async fn put_sponsor_choice(
    state: web::Data<AppState>,
    ctx: AuthContext,
    id: web::Path<i64>,
    body: ApiJson<SponsorChoice>,
) -> ApiResult<HttpResponse> {
    let b = body.into_inner();
    let (txn, shown) = choose(&state, &ctx, id.into_inner(), b.keep, &b.reason, b.version).await?;
    txn.respond(StatusCode::OK, &shown).await
}

fn qualification_words(q: Option<QualificationStatus>) -> String {
    q.map_or_else(
        || "none".to_string(),
        |q| crate::routes::wire_name(&q).replace('_', " "),
    )
}

#[derive(Debug, Deserialize, IntoParams)]
pub struct ChoiceQuery {
    /// `survivor` (default) or `absorbed`: the relationship the page offers to keep.
    #[param(inline)]
    pub keep: Option<Keep>,
}

#[derive(Debug, Deserialize)]
pub struct ChoiceForm {
    pub keep: Keep,
    pub reason: String,
    pub csrf: Option<String>,
}

impl csrf::Protected for ChoiceForm {
    fn csrf(&self) -> Option<&str> {
        self.csrf.as_deref()
    }
}

/// Where a sponsor's admin or quality user chooses which qualification holds in a merge
/// of two CMOs it works with both (the link in the email about the proposal).
#[utoipa::path(
    tag = "pages",
    security(()),
    params(("id" = i64, Path, description = "Merge id", example = 4), ChoiceQuery),
    responses(
        (status = 200, description = "The question with both qualifications and a button keeping one, or what was chosen once the merge is answered", body = String, content_type = "text/html"),
        (status = 303, description = "Not signed in: through sign-in, then back here"),
        (status = 404, description = "No such merge of two CMOs the reader's organization works with both", body = String, content_type = "text/html")
    )
)]
#[get("/cmo-merges/{id}/choice")]
pub async fn choice_page(
    state: web::Data<AppState>,
    req: HttpRequest,
    id: web::Path<String>,
    query: web::Query<ChoiceQuery>,
) -> HttpResponse {
    let Some(id) = record_id(&id) else {
        return failed(ApiError::NotFound);
    };
    let keep = query.keep.unwrap_or(Keep::Survivor);
    let path = format!("/cmo-merges/{id}/choice");
    let Some(ctx) = session_of(&req, &state).await else {
        return through_sign_in(&format!("{path}?keep={}", crate::routes::wire_name(&keep)));
    };
    let shown = async {
        let (merge, choice) = load(&state.reads, &ctx, id).await?;
        view(&state.reads, &ctx, &merge, choice.as_ref()).await
    };
    let v = match shown.await {
        Ok(v) => v,
        Err(err) => return failed(err),
    };
    let title = format!(
        "{} is to be merged into {}",
        v.absorbed_name, v.survivor_name
    );
    let situation = format!(
        "Your organization works with both: your qualification of {} is {}; of {}, {}. Once \
         they are one organization, one of your two relationships holds (connection, \
         qualification and its signed history, notes, agreements); the other ends and \
         stays as history. Your programs with either move to {}.",
        v.absorbed_name,
        qualification_words(v.your_qualification_of_absorbed),
        v.survivor_name,
        qualification_words(v.your_qualification_of_survivor),
        v.survivor_name
    );
    let chosen = v.keep.map(|k| {
        format!(
            " Chosen so far, by {}: keep the relationship with {} (“{}”).",
            v.decided_by.clone().unwrap_or_default(),
            match k {
                Keep::Survivor => &v.survivor_name,
                Keep::Absorbed => &v.absorbed_name,
            },
            v.reason.clone().unwrap_or_default()
        )
    });
    if v.merge_status != MergeStatus::Proposed {
        return message(
            StatusCode::OK,
            &title,
            &format!(
                "The merge is {}.{}",
                crate::routes::wire_name(&v.merge_status),
                chosen.unwrap_or_default()
            ),
            Some(("/account", "Your account")),
        );
    }
    let (kept, other, other_keep) = match keep {
        Keep::Survivor => (&v.survivor_name, &v.absorbed_name, Keep::Absorbed),
        Keep::Absorbed => (&v.absorbed_name, &v.survivor_name, Keep::Survivor),
    };
    page(
        &req,
        StatusCode::OK,
        &mail::FormPage {
            title,
            intro: Some(format!("{situation}{}", chosen.unwrap_or_default())),
            error: None,
            action: path.clone(),
            fields: vec![
                hidden("keep", &crate::routes::wire_name(&keep)),
                mail::Field {
                    name: "reason",
                    label: "Why (kept in your audit trail and on the relationship that ends)",
                    kind: "textarea",
                    value: String::new(),
                    autocomplete: "off",
                    required: true,
                    minlength: None,
                },
            ],
            button: if keep == Keep::Survivor {
                "Keep the relationship with the CMO that stays"
            } else {
                "Keep the relationship with the duplicate"
            },
            links: vec![mail::PageLink {
                href: format!("{path}?keep={}", crate::routes::wire_name(&other_keep)),
                text: format!("Keep the relationship with {other} instead of {kept}"),
            }],
        },
    )
}

/// The choice, from its page (form: `keep`, `reason`, `csrf`).
#[utoipa::path(
    tag = "pages",
    security(()),
    params(("id" = i64, Path, description = "Merge id", example = 4)),
    request_body(content = String, content_type = "application/x-www-form-urlencoded", description = "`keep` (`survivor` or `absorbed`), `reason` (1–2,000 characters) and `csrf` (the page's form token)"),
    responses(
        (status = 200, description = "Chosen", body = String, content_type = "text/html"),
        (status = 303, description = "Not signed in: through sign-in to the page"),
        (status = 403, description = "The form token is missing or does not match, or the reader is not an admin or quality user", body = String, content_type = "text/html"),
        (status = 404, description = "No such merge of two CMOs the reader's organization works with both", body = String, content_type = "text/html"),
        (status = 409, description = "The merge was answered meanwhile", body = String, content_type = "text/html"),
        (status = 422, description = "No reason given", body = String, content_type = "text/html")
    )
)]
#[post("/cmo-merges/{id}/choice")]
pub async fn choice_submit(
    state: web::Data<AppState>,
    req: HttpRequest,
    id: web::Path<String>,
    form: csrf::CheckedForm<ChoiceForm>,
) -> HttpResponse {
    let form = form.into_inner();
    let Some(id) = record_id(&id) else {
        return failed(ApiError::NotFound);
    };
    let Some(ctx) = session_of(&req, &state).await else {
        return through_sign_in(&format!(
            "/cmo-merges/{id}/choice?keep={}",
            crate::routes::wire_name(&form.keep)
        ));
    };
    let mut c = Checks::default();
    c.text("reason", &form.reason, 1, 2_000);
    if c.finish().is_err() {
        return message(
            StatusCode::UNPROCESSABLE_ENTITY,
            "A reason is needed",
            "Say why this relationship should hold (one to 2,000 characters), then choose again.",
            Some((
                &format!(
                    "/cmo-merges/{id}/choice?keep={}",
                    crate::routes::wire_name(&form.keep)
                ),
                "Back to the choice",
            )),
        );
    }
    let done = async {
        let (txn, shown) = choose(&state, &ctx, id, form.keep, &form.reason, None).await?;
        txn.respond_empty(StatusCode::OK).await?;
        Ok::<_, ApiError>(shown)
    };
    match done.await {
        Ok(v) => message(
            StatusCode::OK,
            &format!(
                "{} is to be merged into {}",
                v.absorbed_name, v.survivor_name
            ),
            &format!(
                "Chosen: your relationship with {} holds once they are merged. You may change \
                 this until {}'s admins answer the merge.",
                match form.keep {
                    Keep::Survivor => &v.survivor_name,
                    Keep::Absorbed => &v.absorbed_name,
                },
                v.survivor_name
            ),
            Some(("/account", "Your account")),
        ),
        Err(err) => failed(err),
    }
}
