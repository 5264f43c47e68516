//! The e-signature primitive (21 CFR Part 11 style). A signature is made in two steps so
//! that later features can sign inside their own transaction:
//!
//! 1. [`authenticate_signer`] re-checks the signer's password. A wrong password is
//!    recorded in the audit trail in a transaction of its own (it must survive the
//!    refused request) and answered 401.
//! 2. [`record`] writes the signature and its audit event, in the caller's transaction.

use entity::audit_trail::{self, Entry};
use entity::{SignatureMeaning, SignedRecordType, signature};
use sea_orm::{
    ActiveModelTrait, ActiveValue::NotSet, ActiveValue::Set, ConnectionTrait, TransactionTrait,
};
use serde_json::json;

use crate::auth::AuthContext;
use crate::error::{ApiError, ApiResult};
use crate::routes::signatures::SignatureView;
use crate::routes::snapshot;
use crate::state::AppState;

/// What is being signed, and how.
#[derive(Debug, Clone)]
pub struct SignatureRecord {
    pub record_type: SignedRecordType,
    pub record_id: String,
    /// SHA-256 of the record's content at signing time.
    pub record_hash: String,
    pub meaning: SignatureMeaning,
    pub reason: Option<String>,
}

pub async fn authenticate_signer(
    state: &AppState,
    ctx: &AuthContext,
    password: String,
    what: &SignatureRecord,
) -> ApiResult<()> {
    let Some(stored) = ctx.user.password_hash.clone() else {
        return Err(ApiError::conflict(
            "no_signing_password",
            "set a signing password (PUT /api/v1/users/{id}/password) before signing",
        ));
    };
    if crate::secrets::verify_password(password, stored).await? {
        return Ok(());
    }
    let txn = state.db.begin().await?;
    audit_trail::append(
        &txn,
        &ctx.actor(state.clock.now()),
        Entry::new(
            "signature",
            format!("{}:{}", record_type_name(what.record_type), what.record_id),
            "sign_failed",
        )
        .after(json!({
            "record_type": what.record_type,
            "record_id": what.record_id,
            "meaning": what.meaning,
            "failure": "wrong_password",
        })),
    )
    .await?;
    txn.commit().await?;
    tracing::warn!(user_id = ctx.user.id, record_id = %what.record_id, "signature refused: wrong password");
    Err(ApiError::Unauthorized(
        "the signature password is wrong".to_string(),
    ))
}

pub async fn record<C: ConnectionTrait>(
    conn: &C,
    ctx: &AuthContext,
    at: chrono::DateTime<chrono::Utc>,
    what: SignatureRecord,
) -> ApiResult<signature::Model> {
    let sig = signature::ActiveModel {
        id: NotSet,
        org_id: Set(ctx.org_id()),
        signer_user_id: Set(ctx.user.id),
        signer_name: Set(ctx.user.display_name.clone()),
        meaning: Set(what.meaning),
        record_type: Set(what.record_type),
        record_id: Set(what.record_id),
        record_hash: Set(what.record_hash),
        reason: Set(what.reason.clone()),
        signed_at: Set(at),
    }
    .insert(conn)
    .await?;
    audit_trail::append(
        conn,
        &ctx.actor(at),
        Entry::new("signature", sig.id, "sign")
            .after(snapshot(&SignatureView::from(&sig)))
            .reason(what.reason),
    )
    .await?;
    Ok(sig)
}

fn record_type_name(t: SignedRecordType) -> String {
    serde_json::to_value(t)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_default()
}
