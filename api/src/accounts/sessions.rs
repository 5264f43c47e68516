//! Signing in (throttled, a sign-in token or a browser session) and ending sessions and
//! tokens.

use chrono::{DateTime, Utc};
use entity::audit_trail::{self, Actor, Entry};
use entity::{api_token, sign_in_failure, user};
use sea_orm::{
    ActiveModelTrait, ActiveValue::NotSet, ActiveValue::Set, ColumnTrait, ConnectionTrait,
    EntityTrait, QueryFilter, QueryOrder, QuerySelect,
};
use serde_json::json;

use crate::error::{ApiError, ApiResult};
use crate::provisioning::{self, TokenSpec};
use crate::state::AppState;
use crate::views::identity::TokenView;
use crate::views::snapshot;

/// A person signing in: what they typed and where from.
pub struct SignInAttempt {
    pub email: String,
    pub password: String,
    /// Needed only when the same email has accounts in several organizations.
    pub organization_id: Option<i64>,
    pub client_addr: String,
}

pub struct SignedIn {
    pub user: user::Model,
    pub token: api_token::Model,
    pub secret: String,
}

fn wrong_credentials() -> ApiError {
    ApiError::Unauthorized(
        "wrong email or password (a new account's password is chosen from its invitation \
         email; a forgotten one is reset at /password-reset)"
            .to_string(),
    )
}

/// Signs a person in with their own password and issues a `sign_in` token (API clients)
/// or a `browser` session (the sign-in page).
///
/// Throttled per account and per client address: each attempt first reserves a failure
/// row, then counts the reservations before it; an attempt past the limit is refused
/// without checking the password, even when many arrive at once. A success takes its
/// reservation back. Independent of the signing lockout.
pub async fn sign_in(
    state: &AppState,
    attempt: SignInAttempt,
    kind: api_token::TokenKind,
) -> ApiResult<SignedIn> {
    let email = user::normalize_email(&attempt.email);
    let client: String = attempt.client_addr.chars().take(64).collect();
    let now = state.clock.now();
    let reservation = sign_in_failure::ActiveModel {
        id: NotSet,
        email: Set(email.chars().take(254).collect()),
        client_addr: Set(client.clone()),
        occurred_at: Set(now),
    }
    .insert(&state.db)
    .await?;
    let since = now - sign_in_failure::WINDOW;
    // Failures older than the window no longer count: each attempt clears its account's
    // and its address's (through their indexes), so the table holds one window at most.
    sign_in_failure::Entity::delete_many()
        .filter(sign_in_failure::Column::OccurredAt.lt(since))
        .filter(
            sea_orm::Condition::any()
                .add(sign_in_failure::Column::Email.eq(reservation.email.clone()))
                .add(sign_in_failure::Column::ClientAddr.eq(client.clone())),
        )
        .exec(&state.db)
        .await?;
    for (column, value, limit) in [
        (
            sign_in_failure::Column::Email,
            reservation.email.clone(),
            sign_in_failure::PER_ACCOUNT,
        ),
        (
            sign_in_failure::Column::ClientAddr,
            client.clone(),
            sign_in_failure::PER_CLIENT,
        ),
    ] {
        let earlier: Vec<DateTime<Utc>> = sign_in_failure::Entity::find()
            .select_only()
            .column(sign_in_failure::Column::OccurredAt)
            .filter(column.eq(value))
            .filter(sign_in_failure::Column::OccurredAt.gte(since))
            .filter(sign_in_failure::Column::Id.lt(reservation.id))
            .order_by_asc(sign_in_failure::Column::Id)
            .into_tuple()
            .all(&state.db)
            .await?;
        if let Some(left) = sign_in_failure::throttled_for(&earlier, limit, now) {
            // A refused attempt is not a guess: it does not extend the pause.
            sign_in_failure::Entity::delete_by_id(reservation.id)
                .exec(&state.db)
                .await?;
            return Err(ApiError::TooManyAttempts {
                retry_after_secs: left.num_seconds().max(1).unsigned_abs(),
            });
        }
    }

    let mut select = user::Entity::find()
        .filter(user::Column::Email.eq(&email))
        .filter(user::Column::Active.eq(true))
        .filter(user::Column::IsServiceAccount.eq(false));
    if let Some(org) = attempt.organization_id {
        select = select.filter(user::Column::OrgId.eq(org));
    }
    let candidates = select
        .order_by_asc(user::Column::Id)
        .limit(10)
        .all(&state.db)
        .await?;
    let mut matched = Vec::new();
    if candidates.is_empty() {
        // The same cost as a real check: timing does not tell which emails have accounts.
        state
            .passwords
            .verify(
                crate::secrets::NO_ORGANIZATION,
                attempt.password.clone(),
                None,
            )
            .await?;
    }
    for candidate in &candidates {
        if state
            .passwords
            .verify(
                candidate.org_id,
                attempt.password.clone(),
                candidate.password_hash.clone(),
            )
            .await?
        {
            matched.push(candidate.clone());
        }
    }
    let person = match matched.as_slice() {
        [one] => one.clone(),
        [] => {
            let txn = entity::db::begin_write(&state.db).await?;
            for candidate in &candidates {
                audit_trail::append(
                    &txn,
                    &Actor {
                        org_id: candidate.org_id,
                        user_id: None,
                        request_id: crate::request_id::current(),
                        at: now,
                        chain_keys: state.chain_keys.clone(),
                    },
                    Entry::new("user", candidate.id, "sign_in_failed")
                        .after(json!({"client_addr": client, "failure": "wrong_password"})),
                )
                .await?;
            }
            txn.commit().await?;
            return Err(wrong_credentials());
        }
        _ => {
            return Err(ApiError::invalid(
                "organization_id",
                "ambiguous_account",
                "this email has accounts in several organizations; give organization_id",
            ));
        }
    };
    sign_in_failure::Entity::delete_by_id(reservation.id)
        .exec(&state.db)
        .await?;
    let txn = entity::db::begin_write(&state.db).await?;
    let actor = Actor {
        org_id: person.org_id,
        user_id: Some(person.id),
        request_id: crate::request_id::current(),
        at: now,
        chain_keys: state.chain_keys.clone(),
    };
    let (name, expires_at) = match kind {
        api_token::TokenKind::Browser => ("browser session", now + api_token::BROWSER_ABSOLUTE),
        _ => ("sign-in", now + api_token::SIGN_IN_LIFETIME),
    };
    let (token, secret) = provisioning::issue_token(
        &txn,
        &actor,
        &person,
        TokenSpec {
            name,
            expires_at: Some(expires_at),
            kind,
            parent_token_id: None,
            read_only: false,
        },
    )
    .await?;
    audit_trail::append(
        &txn,
        &actor,
        Entry::new("user", person.id, "sign_in").after(json!({
            "client_addr": client,
            "token_id": token.id,
            "kind": kind,
        })),
    )
    .await?;
    txn.commit().await?;
    Ok(SignedIn {
        user: person,
        token,
        secret,
    })
}

/// Ends a person's sessions and sign-in tokens (not the personal tokens they created:
/// those are theirs until they or an admin revoke them).
pub async fn end_sessions<C: ConnectionTrait>(
    conn: &C,
    actor: &Actor,
    user_id: i64,
    reason: &str,
) -> ApiResult<()> {
    let sessions: Vec<i64> = api_token::Entity::find()
        .select_only()
        .column(api_token::Column::Id)
        .filter(api_token::Column::UserId.eq(user_id))
        .filter(api_token::Column::RevokedAt.is_null())
        .filter(
            api_token::Column::Kind
                .is_in([api_token::TokenKind::SignIn, api_token::TokenKind::Browser]),
        )
        .into_tuple()
        .all(conn)
        .await?;
    revoke_tokens(conn, actor, sessions, reason).await
}

/// Revokes tokens and their descendants, one audit row per token revoked.
pub async fn revoke_tokens<C: ConnectionTrait>(
    conn: &C,
    actor: &Actor,
    ids: Vec<i64>,
    reason: &str,
) -> ApiResult<()> {
    if ids.is_empty() {
        return Ok(());
    }
    for token in api_token::revoke_with_descendants(conn, ids, reason, actor.at).await? {
        let before = api_token::Model {
            revoked_at: None,
            revoked_reason: None,
            ..token.clone()
        };
        audit_trail::append(
            conn,
            &Actor {
                org_id: token.org_id,
                ..actor.clone()
            },
            Entry::new("api_token", token.id, "revoke")
                .before(snapshot(&TokenView::from(&before)))
                .after(snapshot(&TokenView::from(&token))),
        )
        .await?;
    }
    Ok(())
}

/// Deactivates a person: the account no longer signs in or acts, and every credential
/// ends with it (their tokens and what was created with them), each step audited with
/// `reason`. Used by an admin's `POST /users/{id}/deactivate` and by the end of a
/// qualification run.
pub async fn deactivate_person<C: ConnectionTrait>(
    conn: &C,
    actor: &Actor,
    current: &user::Model,
    reason: &str,
    revoke_reason: &str,
) -> ApiResult<user::Model> {
    use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, QuerySelect};
    let before = snapshot(&crate::views::identity::UserView::from(current));
    let updated = crate::write::write_next_version::<user::Entity>(
        conn,
        current.id,
        current,
        actor.at,
        |u| u.active = false,
    )
    .await?;
    audit_trail::append(
        conn,
        actor,
        Entry::new("user", updated.id, "deactivate")
            .before(before)
            .after(snapshot(&crate::views::identity::UserView::from(&updated)))
            .reason(Some(reason.to_string())),
    )
    .await?;
    let tokens: Vec<i64> = api_token::Entity::find()
        .select_only()
        .column(api_token::Column::Id)
        .filter(api_token::Column::UserId.eq(updated.id))
        .filter(api_token::Column::RevokedAt.is_null())
        .into_tuple()
        .all(conn)
        .await?;
    revoke_tokens(conn, actor, tokens, revoke_reason).await?;
    Ok(updated)
}
