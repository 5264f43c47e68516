//! Electronic signatures bound to records.

use actix_web::{HttpResponse, get, post, web};
use entity::{SignatureMeaning, SignedRecordType, audit_event, signature};
use sea_orm::{ColumnTrait, QueryFilter};
use serde::Deserialize;
use utoipa::{IntoParams, ToSchema};

use crate::auth::{AuthContext, find_scoped, scoped};
use crate::error::{ApiError, ApiResult};
use crate::pagination::{Keyset, ListQuery, Paging};
use crate::routes::{ApiJson, Checks, Page, Validate, fetch_page};
use crate::signed_records;
use crate::signing;
use crate::state::AppState;
use crate::write_txn::WriteTxn;
use actix_web::http::StatusCode;
use entity::signature::SignatureRecord;

pub use entity::signature::SignatureView;

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({
    "record_type": "audit_event", "record_id": "17", "meaning": "reviewed",
    "password": "correct horse battery staple", "reason": "monthly audit-trail review"
}))]
pub struct CreateSignature {
    pub record_type: SignedRecordType,
    #[schema(min_length = 1, max_length = 64)]
    pub record_id: String,
    pub meaning: SignatureMeaning,
    /// The signer's password, re-entered for this signature.
    #[schema(min_length = 1, max_length = 256)]
    pub password: String,
    #[schema(max_length = 500)]
    pub reason: Option<String>,
}

impl Validate for CreateSignature {
    fn validate(&self, c: &mut Checks) {
        c.text("record_id", &self.record_id, 1, 64);
        // Any characters may be part of a password; only its length is checked.
        c.signing_password("password", &self.password);
        c.optional_text("reason", self.reason.as_deref(), 1, 500);
    }
}

/// Sign a record. The password is checked again in this request; a wrong password is
/// refused with 401 and the failed attempt is recorded in the audit trail.
#[utoipa::path(
    tag = "signatures",
    request_body = CreateSignature,
    responses(
        (status = 201, description = "Signature recorded", body = SignatureView),
        (status = 401, description = "Wrong password (`invalid_password`; the attempt is audited)", body = crate::error::Problem),
        (status = 429, description = "Too many failed password attempts; see Retry-After", body = crate::error::Problem),
        (status = 403, description = "The caller's role may not sign this with this meaning", body = crate::error::Problem),
        (status = 404, description = "No such record in the caller's organization", body = crate::error::Problem),
        (status = 409, description = "No signing password yet, or only a temporary one set by an admin", body = crate::error::Problem)
    )
)]
#[post("/signatures")]
pub async fn create_signature(
    state: web::Data<AppState>,
    ctx: AuthContext,
    body: ApiJson<CreateSignature>,
) -> ApiResult<HttpResponse> {
    let body = body.into_inner();
    let (record_id, record_hash, signed_content) = match body.record_type {
        SignedRecordType::AuditEvent => {
            let id = parse_record_id(&body.record_id)?;
            let event = find_scoped::<audit_event::Entity, _>(&state.db, &ctx, id).await?;
            // An audit event's own chain hash already covers its whole content.
            let content = audit_event::signed_content(&event);
            (id.to_string(), event.hash, content)
        }
        SignedRecordType::GateDecision
        | SignedRecordType::DeviationClosure
        | SignedRecordType::ProductionRelease
        | SignedRecordType::Capa
        | SignedRecordType::ChangeRequest
        | SignedRecordType::CmoQualification
        | SignedRecordType::SelectionDecision => {
            return Err(ApiError::invalid(
                "record_type",
                "signed_elsewhere",
                "this record is signed by the endpoint that takes the decision",
            ));
        }
    };
    if !signature::may_sign(ctx.user.role, body.record_type, body.meaning) {
        return Err(ApiError::Forbidden(format!(
            "a {:?} user may not sign this record with meaning {:?}",
            ctx.user.role, body.meaning
        )));
    }
    let what = SignatureRecord {
        record_type: body.record_type,
        record_id,
        record_hash,
        signed_content: Some(signed_content),
        meaning: body.meaning,
        reason: body.reason,
    };
    signing::authenticate_signer(&state, &ctx, body.password, &what).await?;
    let txn = WriteTxn::begin(&state, &ctx).await?;
    let signature = entity::signature::record(&txn, &ctx.signer(), state.clock.now(), what).await?;
    txn.respond(StatusCode::CREATED, &SignatureView::from(&signature))
        .await
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct SignatureFilter {
    pub record_type: Option<SignedRecordType>,
    /// The signed record's id, e.g. `41` (one line).
    #[param(max_length = 64, example = "41")]
    pub record_id: Option<String>,
    pub signer_user_id: Option<i64>,
}

/// Signatures in the caller's organization, oldest first, each judged against its
/// record now (`record_state`, `changed_fields`).
#[utoipa::path(
    tag = "signatures",
    params(SignatureFilter, Paging),
    responses((status = 200, description = "One page of signatures", body = Page<SignatureView>))
)]
#[get("/signatures")]
pub async fn list_signatures(
    state: web::Data<AppState>,
    ctx: AuthContext,
    query: ListQuery<SignatureFilter>,
) -> ApiResult<web::Json<Page<SignatureView>>> {
    let filter = query.filter;
    let mut checks = Checks::default();
    checks.optional_text("record_id", filter.record_id.as_deref(), 1, 64);
    checks.finish()?;
    let mut select = scoped::<signature::Entity>(&ctx);
    if let Some(t) = filter.record_type {
        select = select.filter(signature::Column::RecordType.eq(t));
    }
    if let Some(id) = filter.record_id {
        select = select.filter(signature::Column::RecordId.eq(id));
    }
    if let Some(signer) = filter.signer_user_id {
        select = select.filter(signature::Column::SignerUserId.eq(signer));
    }
    let page = fetch_page(
        &state.reads,
        select,
        Keyset::asc([signature::Column::Id]),
        &query.paging,
    )
    .await?;
    let items = &page.items;
    let now = state.clock.now();
    let mut checked = Vec::with_capacity(items.len());
    for sig in items {
        checked.push(signed_records::checked(&state.reads, &ctx, sig, now).await?);
    }
    Ok(web::Json(page.with_items(checked)))
}

/// One signature: what was signed (`signed_fields`), its manifestation (printed name,
/// meaning, date and time with zone), and whether the record still reads as signed.
#[utoipa::path(
    tag = "signatures",
    params(("id" = i64, Path, description = "Signature id", example = 9)),
    responses(
        (status = 200, description = "The signature, judged against its record now", body = SignatureView),
        (status = 404, description = "No such signature in the caller's organization", body = crate::error::Problem)
    )
)]
#[get("/signatures/{id}")]
pub async fn get_signature(
    state: web::Data<AppState>,
    ctx: AuthContext,
    id: web::Path<i64>,
) -> ApiResult<web::Json<SignatureView>> {
    let sig = find_scoped::<signature::Entity, _>(&state.reads, &ctx, id.into_inner()).await?;
    Ok(web::Json(
        signed_records::checked(&state.reads, &ctx, &sig, state.clock.now()).await?,
    ))
}

/// Record ids are positive integers written without sign or leading zeros, so that one
/// record has one id string everywhere. Anything else names no record.
fn parse_record_id(raw: &str) -> ApiResult<i64> {
    let raw = raw.trim();
    let canonical = !raw.is_empty()
        && raw.len() <= 19
        && raw.bytes().all(|b| b.is_ascii_digit())
        && !(raw.len() > 1 && raw.starts_with('0'));
    if !canonical {
        return Err(ApiError::NotFound);
    }
    raw.parse().map_err(|_| ApiError::NotFound)
}
