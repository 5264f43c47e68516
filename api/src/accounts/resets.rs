//! Password links: asked for, forced by an admin, or the bootstrapped admin's first;
//! choosing the password ends the person's sessions.

use entity::audit_trail::{self, Actor, Entry};
use entity::{api_token, invitation, password_reset, user};
use sea_orm::{
    ActiveModelTrait, ActiveValue::NotSet, ActiveValue::Set, ColumnTrait, ConnectionTrait,
    EntityTrait, QueryFilter, QuerySelect,
};
use serde_json::json;

use super::{certify, end_sessions};
use crate::error::{ApiError, ApiResult};
use crate::state::AppState;
use crate::views::identity::UserView;
use crate::views::snapshot;

/// Where a person chooses a new password.
pub fn reset_url(base_url: &str, secret: &str) -> String {
    format!("{base_url}/password-reset/choose?token={secret}")
}

/// Why a password link goes out; decides its wording and lifetime.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResetKind {
    /// The person asked ("forgot my password"): one hour.
    Asked,
    /// An admin forced it: the old password no longer works. One hour.
    Forced,
    /// The bootstrapped first admin chooses a first password: as long as an invitation.
    FirstPassword,
}

/// A password link for `person`, audited; returns it with its secret. Only the
/// bootstrap command shows the secret (to the admin it creates, who runs it); everyone
/// else gets it by email only ([`send_reset`]).
pub async fn create_reset<C: ConnectionTrait>(
    conn: &C,
    actor: &Actor,
    person: &user::Model,
    kind: ResetKind,
) -> ApiResult<(password_reset::Model, String)> {
    let lifetime = match kind {
        ResetKind::Asked | ResetKind::Forced => password_reset::LIFETIME,
        ResetKind::FirstPassword => invitation::LIFETIME,
    };
    let secret = crate::secrets::new_link_secret();
    let reset = password_reset::ActiveModel {
        id: NotSet,
        org_id: Set(person.org_id),
        user_id: Set(person.id),
        requested_by_user_id: Set(actor.user_id.filter(|id| *id != person.id)),
        secret_hash: Set(api_token::hash_secret(&secret)),
        created_at: Set(actor.at),
        expires_at: Set(actor.at + lifetime),
        used_at: Set(None),
    }
    .insert(conn)
    .await?;
    audit_trail::append(
        conn,
        &Actor {
            org_id: person.org_id,
            ..actor.clone()
        },
        Entry::new("user", person.id, "password_reset_requested").after(json!({
            "reset_id": reset.id,
            "forced": kind == ResetKind::Forced,
            "expires_at": reset.expires_at,
        })),
    )
    .await?;
    Ok((reset, secret))
}

/// Queues a password link for `person` by email (asked by them, or forced by an admin).
pub async fn send_reset<C: ConnectionTrait>(
    conn: &C,
    actor: &Actor,
    person: &user::Model,
    kind: ResetKind,
    base_url: &str,
) -> ApiResult<()> {
    let (reset, secret) = create_reset(conn, actor, person, kind).await?;
    let email = mail::notice(
        "Choose your cmo-orchestrator password",
        "Choose your password",
        &[
            match kind {
                ResetKind::Forced => "An admin of your organization asked you to choose a new \
                    password. Your previous password no longer works."
                    .to_string(),
                ResetKind::Asked => "Someone (hopefully you) asked to reset your password. If \
                    it was not you, ignore this email: nothing changes."
                    .to_string(),
                ResetKind::FirstPassword => "Your organization was set up with you as its \
                    admin. Choose the password you sign in and sign records with."
                    .to_string(),
            },
            format!(
                "The link works once, until {} (UTC). Choosing a new password signs you out \
                 everywhere.",
                reset.expires_at.format("%Y-%m-%d %H:%M")
            ),
        ],
        Some(&reset_url(base_url, &secret)),
    )
    .map_err(ApiError::internal)?;
    mail::enqueue(
        conn,
        entity::outbox::Draft::new(
            format!("password_reset:{}", reset.id),
            vec![person.email.clone()],
            email,
        ),
        actor.at,
        base_url,
    )
    .await?;
    Ok(())
}

/// "I forgot my password": a link for every active account of that email. Answers the
/// same whether or not one exists; at most one email per account every five minutes.
pub async fn request_reset(state: &AppState, email: &str) -> ApiResult<()> {
    let email = user::normalize_email(email);
    let now = state.clock.now();
    let txn = entity::db::begin_write(&state.db).await?;
    let people = user::Entity::find()
        .filter(user::Column::Email.eq(&email))
        .filter(user::Column::Active.eq(true))
        .filter(user::Column::IsServiceAccount.eq(false))
        .limit(10)
        .all(&txn)
        .await?;
    for person in people {
        let recent = password_reset::Entity::find()
            .filter(password_reset::Column::UserId.eq(person.id))
            .filter(password_reset::Column::CreatedAt.gt(now - chrono::TimeDelta::minutes(5)))
            .one(&txn)
            .await?;
        if recent.is_some() {
            continue;
        }
        let actor = Actor {
            org_id: person.org_id,
            user_id: None,
            request_id: crate::request_id::current(),
            at: now,
            chain_keys: state.chain_keys.clone(),
        };
        send_reset(
            &txn,
            &actor,
            &person,
            ResetKind::Asked,
            &state.public_base_url,
        )
        .await?;
    }
    txn.commit().await?;
    Ok(())
}

/// The person behind a reset link, if the link still works.
pub async fn pending_reset(
    state: &AppState,
    secret: &str,
) -> ApiResult<(password_reset::Model, user::Model)> {
    let now = state.clock.now();
    let found = password_reset::Entity::find()
        .filter(password_reset::Column::SecretHash.eq(api_token::hash_secret(secret)))
        .find_also_related(user::Entity)
        .one(&state.db)
        .await?;
    match found {
        Some((reset, Some(person))) if password_reset::usable(&reset, now) && person.active => {
            Ok((reset, person))
        }
        _ => Err(ApiError::LinkNotUsable(
            "this password link was used or has expired; ask for a new one at /password-reset"
                .to_string(),
        )),
    }
}

/// Sets the password a person chose from their reset link; ends their sessions and
/// sign-in tokens.
pub async fn complete_reset(
    state: &AppState,
    secret: &str,
    password: String,
    certify_signature: bool,
) -> ApiResult<user::Model> {
    let (reset, person) = pending_reset(state, secret).await?;
    let hash = state.passwords.hash(person.org_id, password).await?;
    let now = state.clock.now();
    let txn = entity::db::begin_write(&state.db).await?;
    let used = password_reset::Entity::update_many()
        .col_expr(
            password_reset::Column::UsedAt,
            sea_orm::sea_query::Expr::value(now),
        )
        .filter(password_reset::Column::Id.eq(reset.id))
        .filter(password_reset::Column::UsedAt.is_null())
        .exec(&txn)
        .await?;
    if used.rows_affected != 1 {
        return Err(ApiError::LinkNotUsable(
            "this password link was just used".to_string(),
        ));
    }
    let current = user::Entity::find_by_id(person.id)
        .one(&txn)
        .await?
        .ok_or(ApiError::NotFound)?;
    let actor = Actor {
        org_id: person.org_id,
        user_id: Some(person.id),
        request_id: crate::request_id::current(),
        at: now,
        chain_keys: state.chain_keys.clone(),
    };
    let updated =
        crate::write::write_next_version::<user::Entity>(&txn, current.id, &current, now, |u| {
            u.password_hash = Some(hash);
            u.access_notice = None;
        })
        .await?;
    end_sessions(&txn, &actor, person.id, "password_reset").await?;
    // The audit trail records that the password changed, never the password or its hash.
    audit_trail::append(
        &txn,
        &actor,
        Entry::new("user", person.id, "set_password")
            .after(snapshot(&UserView::from(&updated)))
            .reason(Some(format!("password reset link {}", reset.id))),
    )
    .await?;
    let updated = if certify_signature {
        certify(&txn, &actor, updated).await?
    } else {
        updated
    };
    txn.commit().await?;
    Ok(updated)
}
