//! The e-signature primitive (21 CFR Part 11 style). A signature is made in two steps so
//! that later features can sign inside their own transaction:
//!
//! 1. [`authenticate_signer`] re-checks the signer's own password. A wrong password is
//!    recorded in the audit trail in a transaction of its own (it must survive the
//!    refused request) and answered 401; after repeated failures the signer is locked
//!    out for a while without the password even being checked.
//! 2. `entity::signature::record` writes the signature and its audit event, in the
//!    caller's transaction.

use chrono::{DateTime, Utc};
use entity::audit_trail::{self, Entry};
use entity::signature::SignatureRecord;
use entity::{SignedRecordType, audit_event, user};
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, QueryOrder, QuerySelect};
use serde_json::json;

use crate::auth::AuthContext;
use crate::error::{ApiError, ApiResult};
use crate::state::AppState;

/// Audit actions that count towards a lockout.
pub const FAILED_SIGNATURE: &str = "sign_failed";
pub const FAILED_PASSWORD_CHANGE: &str = "password_change_failed";

pub async fn authenticate_signer(
    state: &AppState,
    ctx: &AuthContext,
    password: String,
    what: &SignatureRecord,
) -> ApiResult<()> {
    if ctx.user.is_service_account {
        return Err(ApiError::Forbidden(
            "a service account never signs: a signature is a person's act".to_string(),
        ));
    }
    let Some(stored) = ctx.user.password_hash.clone() else {
        return Err(ApiError::conflict(
            "no_signing_password",
            "you have no password: choose one from your invitation or a reset link (POST /api/v1/password-resets)",
        ));
    };
    if ctx.user.signature_certified_at.is_none() {
        return Err(ApiError::conflict(
            "signature_not_certified",
            format!(
                "certify once that your electronic signature is the legally binding equivalent of your handwritten one: POST /api/v1/users/{}/signature-certification",
                ctx.user.id
            ),
        ));
    }
    let failure = Entry::new(
        record_entity(what.record_type),
        &what.record_id,
        FAILED_SIGNATURE,
    )
    .after(json!({
        "record_type": what.record_type,
        "record_id": what.record_id,
        "meaning": what.meaning,
        "failure": "wrong_password",
    }));
    if let Err(err) = check_password(state, ctx, password, stored, failure).await {
        if matches!(err, ApiError::InvalidPassword(_)) {
            tracing::warn!(user_id = ctx.user.id, record_id = %what.record_id, "signature refused: wrong password");
            return Err(ApiError::InvalidPassword(
                "the signature password is wrong".to_string(),
            ));
        }
        return Err(err);
    }
    Ok(())
}

/// The audit entity a signature attempt is about (the record, not a signature row).
fn record_entity(t: SignedRecordType) -> &'static str {
    match t {
        SignedRecordType::AuditEvent => "audit_event",
        SignedRecordType::GateDecision => "gate_decision",
        SignedRecordType::DeviationClosure => "deviation",
        SignedRecordType::ProductionRelease => "program",
        SignedRecordType::Capa => "capa",
        SignedRecordType::ChangeRequest => "change_request",
        SignedRecordType::CmoQualification => "cmo_profile",
        SignedRecordType::SelectionDecision => "evaluation",
    }
}

/// The password a signed step needs: 422 naming the field when it was not sent.
pub fn required_password(password: Option<String>) -> ApiResult<String> {
    password.ok_or_else(|| {
        ApiError::invalid(
            "password",
            "required",
            "this step needs the signer's password",
        )
    })
}

/// Checks the caller's own password under the lockout rule: five failures within 15
/// minutes lock signing and password changes for 15 minutes from the fifth (429 with the
/// time left as `Retry-After`). A wrong password is audited as `failure` and answered 401.
///
/// The check, the argon2 verification and the failure's audit row happen in one write
/// transaction holding the user's row lock (SQLite: the write lock), so parallel guesses
/// take turns and at most five are ever checked. That keeps the database lock for one
/// argon2 run (tens of milliseconds) per attempt; signatures come at human rate.
pub async fn check_password(
    state: &AppState,
    ctx: &AuthContext,
    password: String,
    stored: String,
    failure: Entry,
) -> ApiResult<()> {
    let txn = entity::db::begin_write(&state.db).await?;
    user::Entity::find_by_id(ctx.user.id)
        .lock_exclusive()
        .one(&txn)
        .await?;
    let now = state.clock.now();
    let failures: Vec<DateTime<Utc>> = audit_event::Entity::find()
        .select_only()
        .column(audit_event::Column::OccurredAt)
        .filter(audit_event::Column::OrgId.eq(ctx.org_id()))
        .filter(audit_event::Column::ActorUserId.eq(ctx.user.id))
        .filter(audit_event::Column::Action.is_in([FAILED_SIGNATURE, FAILED_PASSWORD_CHANGE]))
        .filter(audit_event::Column::OccurredAt.gte(now - entity::signature::LOCKOUT_LOOKBACK))
        .order_by_asc(audit_event::Column::OccurredAt)
        .into_tuple()
        .all(&txn)
        .await?;
    if let Some(left) = entity::signature::lockout_left(&failures, now) {
        // Whole seconds, rounded up: retrying after Retry-After is never still locked.
        let micros = left
            .num_microseconds()
            .unwrap_or(i64::MAX)
            .max(1)
            .unsigned_abs();
        return Err(ApiError::TooManyAttempts {
            retry_after_secs: micros.div_ceil(1_000_000),
        });
    }
    if state
        .passwords
        .verify(ctx.org_id(), password, Some(stored))
        .await?
    {
        return Ok(());
    }
    audit_trail::append(&txn, &ctx.actor(now), failure).await?;
    let mut with_this = failures;
    with_this.push(now);
    if entity::signature::lockout_left(&with_this, now).is_some() {
        alert_lockout(&txn, state, ctx, now).await?;
    }
    txn.commit().await?;
    Err(ApiError::InvalidPassword(
        "the password is wrong".to_string(),
    ))
}

/// Repeated failed signing attempts are a security event: the organization's admins and
/// quality users are emailed when they lock a person's signing (21 CFR 11.300(d)).
async fn alert_lockout<C: sea_orm::ConnectionTrait>(
    conn: &C,
    state: &AppState,
    ctx: &AuthContext,
    now: DateTime<Utc>,
) -> ApiResult<()> {
    let watchers = user::Entity::find()
        .filter(user::Column::OrgId.eq(ctx.org_id()))
        .filter(user::Column::Active.eq(true))
        .filter(user::Column::IsServiceAccount.eq(false))
        .filter(user::Column::Role.is_in([entity::Role::Admin, entity::Role::Quality]))
        .all(conn)
        .await?;
    let until = now + entity::signature::LOCKOUT_DURATION;
    // One email per watcher: the time reads in each one's zone.
    for watcher in watchers {
        let email = mail::notice(
            &format!(
                "Signing locked for {} after repeated wrong passwords",
                ctx.user.display_name
            ),
            "Repeated failed signature attempts",
            &[
                format!(
                    "{} ({}) gave a wrong password {} times within {} while signing or \
                     changing their password. Their signing is locked until {}.",
                    ctx.user.display_name,
                    ctx.user.email,
                    entity::signature::LOCKOUT_THRESHOLD,
                    mail::words::count(entity::signature::LOCKOUT_WINDOW.num_minutes(), "minute"),
                    mail::words::zoned(&watcher.time_zone, until)
                ),
                "If it was not them, someone holds one of their tokens: revoke it, or deactivate \
                 the account, and review the audit trail (action sign_failed)."
                    .to_string(),
            ],
            None,
        )
        .map_err(ApiError::internal)?;
        mail::enqueue(
            conn,
            entity::outbox::Draft::new(
                format!(
                    "signing_lockout:{}:{}:{}",
                    ctx.user.id,
                    now.timestamp(),
                    watcher.id
                ),
                vec![watcher.email],
                email,
            ),
            now,
            &state.public_base_url,
        )
        .await?;
    }
    Ok(())
}
