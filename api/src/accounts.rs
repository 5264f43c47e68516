//! Accounts people run themselves: invitations, sign-in, password resets and the end of
//! sessions. The JSON endpoints and the browser pages both call these, so a rule (who
//! may accept, how sign-in is throttled, what a reset ends) is written once.
//!
//! The model: a person's password is only ever chosen by that person (on the page an
//! invitation or a reset link opens); nobody else sees a link's secret (it travels by
//! email only); an admin can invite, deactivate and force a reset, never set a password
//! or create a token for someone else.

use chrono::{DateTime, Utc};
use entity::audit_trail::{self, Actor, Entry};
use entity::{Role, api_token, invitation, organization, password_reset, sign_in_failure, user};
use sea_orm::{
    ActiveModelTrait, ActiveValue::NotSet, ActiveValue::Set, ColumnTrait, ConnectionTrait,
    EntityTrait, QueryFilter, QueryOrder, QuerySelect,
};
use serde_json::json;

use crate::error::{ApiError, ApiResult};
use crate::provisioning::{self, TokenSpec};
use crate::state::AppState;
use crate::views::identity::{InvitationView, TokenView, UserView};
use crate::views::snapshot;

/// Who is invited, as the inviting admin gives it.
pub struct NewInvitation {
    pub email: String,
    pub display_name: String,
    pub role: Role,
    pub time_zone: String,
    pub phone: Option<String>,
}

/// Where the invitee chooses their password.
pub fn invitation_url(base_url: &str, secret: &str) -> String {
    format!("{base_url}/invitations/accept?token={secret}")
}

/// Where a person chooses a new password.
pub fn reset_url(base_url: &str, secret: &str) -> String {
    format!("{base_url}/password-reset/choose?token={secret}")
}

/// Invites a person into `org` (the inviter's own organization, or a CMO the inviter's
/// sponsor registers) and queues the email that carries the link.
pub async fn invite<C: ConnectionTrait>(
    conn: &C,
    actor: &Actor,
    org: &organization::Model,
    inviter: Option<&str>,
    new: NewInvitation,
    base_url: &str,
) -> ApiResult<invitation::Model> {
    let email = user::normalize_email(&new.email);
    let taken = user::Entity::find()
        .filter(user::Column::OrgId.eq(org.id))
        .filter(user::Column::Email.eq(&email))
        .one(conn)
        .await?;
    if taken.is_some() {
        return Err(ApiError::conflict(
            "email_taken",
            "a user with this email exists in the organization",
        ));
    }
    let open = invitation::Entity::find()
        .filter(invitation::Column::OrgId.eq(org.id))
        .filter(invitation::Column::Email.eq(&email))
        .filter(invitation::Column::AcceptedAt.is_null())
        .filter(invitation::Column::RevokedAt.is_null())
        .filter(invitation::Column::ExpiresAt.gt(actor.at))
        .one(conn)
        .await?;
    if let Some(open) = open {
        return Err(ApiError::conflict(
            "already_invited",
            format!(
                "invitation {} to this email is pending; re-send it instead",
                open.id
            ),
        ));
    }
    let secret = crate::secrets::new_link_secret();
    let (created, _) = crate::write::insert_audited(
        conn,
        &Actor {
            org_id: org.id,
            ..actor.clone()
        },
        "invitation",
        invitation::ActiveModel {
            id: NotSet,
            org_id: Set(org.id),
            email: Set(email),
            display_name: Set(new.display_name.trim().to_string()),
            role: Set(new.role),
            time_zone: Set(new.time_zone),
            phone: Set(new.phone),
            invited_by_user_id: Set(actor.user_id),
            invited_by_org_id: Set(Some(actor.org_id)),
            secret_hash: Set(api_token::hash_secret(&secret)),
            sent_count: Set(1),
            created_at: Set(actor.at),
            sent_at: Set(actor.at),
            expires_at: Set(actor.at + invitation::LIFETIME),
            accepted_at: Set(None),
            accepted_user_id: Set(None),
            revoked_at: Set(None),
            version: Set(1),
        },
        async |i| Ok(InvitationView::new(i, actor.at)),
    )
    .await?;
    send_invitation(conn, &created, org, inviter, &secret, actor.at, base_url).await?;
    Ok(created)
}

async fn send_invitation<C: ConnectionTrait>(
    conn: &C,
    i: &invitation::Model,
    org: &organization::Model,
    inviter: Option<&str>,
    secret: &str,
    now: DateTime<Utc>,
    base_url: &str,
) -> ApiResult<()> {
    let by = inviter.map_or(String::new(), |name| format!("{name} invited you. "));
    let email = mail::notice(
        &format!("You are invited to {} on cmo-orchestrator", org.name),
        &format!("Join {}", org.name),
        &[
            format!(
                "{by}You will join {} as {} ({}).",
                org.name,
                i.display_name,
                role_name(i.role)
            ),
            format!(
                "Open the link to choose your password. It works once, until {} (UTC). \
                 Nobody else knows it: do not forward this email.",
                i.expires_at.format("%Y-%m-%d %H:%M")
            ),
        ],
        Some(&invitation_url(base_url, secret)),
    )
    .map_err(ApiError::internal)?;
    mail::enqueue(
        conn,
        entity::outbox::Draft::new(
            format!("invitation:{}:{}", i.id, i.sent_count),
            vec![i.email.clone()],
            email,
        ),
        now,
        base_url,
    )
    .await?;
    Ok(())
}

fn role_name(role: Role) -> &'static str {
    match role {
        Role::Admin => "admin",
        Role::ProgramManager => "program manager",
        Role::Quality => "quality",
        Role::Contributor => "contributor",
        Role::Viewer => "viewer",
    }
}

/// A new link for a pending or expired invitation; the old link stops working.
pub async fn resend_invitation<C: ConnectionTrait>(
    conn: &C,
    actor: &Actor,
    current: invitation::Model,
    inviter: Option<&str>,
    base_url: &str,
) -> ApiResult<invitation::Model> {
    use invitation::InvitationStatus::{Accepted, Revoked};
    if matches!(invitation::status(&current, actor.at), Accepted | Revoked) {
        return Err(ApiError::conflict(
            "invitation_closed",
            "the invitation was accepted or revoked; invite again instead",
        ));
    }
    let org = organization::Entity::find_by_id(current.org_id)
        .one(conn)
        .await?
        .ok_or(ApiError::NotFound)?;
    let secret = crate::secrets::new_link_secret();
    let before = snapshot(&InvitationView::new(&current, actor.at));
    let updated = crate::write::write_next_version::<invitation::Entity>(
        conn,
        current.id,
        &current,
        actor.at,
        |i| {
            i.secret_hash = api_token::hash_secret(&secret);
            i.sent_count += 1;
            i.sent_at = actor.at;
            i.expires_at = actor.at + invitation::LIFETIME;
        },
    )
    .await?;
    audit_trail::append(
        conn,
        actor,
        Entry::new("invitation", updated.id, "resend")
            .before(before)
            .after(snapshot(&InvitationView::new(&updated, actor.at))),
    )
    .await?;
    send_invitation(conn, &updated, &org, inviter, &secret, actor.at, base_url).await?;
    Ok(updated)
}

/// Revokes a pending invitation (revoking twice is fine).
pub async fn revoke_invitation<C: ConnectionTrait>(
    conn: &C,
    actor: &Actor,
    current: invitation::Model,
) -> ApiResult<invitation::Model> {
    if current.accepted_at.is_some() {
        return Err(ApiError::conflict(
            "invitation_closed",
            "the invitation was accepted; deactivate the user instead",
        ));
    }
    if current.revoked_at.is_some() {
        return Ok(current);
    }
    let before = snapshot(&InvitationView::new(&current, actor.at));
    let updated = crate::write::write_next_version::<invitation::Entity>(
        conn,
        current.id,
        &current,
        actor.at,
        |i| i.revoked_at = Some(actor.at),
    )
    .await?;
    audit_trail::append(
        conn,
        actor,
        Entry::new("invitation", updated.id, "revoke")
            .before(before)
            .after(snapshot(&InvitationView::new(&updated, actor.at))),
    )
    .await?;
    Ok(updated)
}

/// What a link page shows before the person acts: the invitation behind a link, if the
/// link still works.
pub async fn pending_invitation(state: &AppState, secret: &str) -> ApiResult<invitation::Model> {
    let found = invitation::Entity::find()
        .filter(invitation::Column::SecretHash.eq(api_token::hash_secret(secret)))
        .one(&state.db)
        .await?;
    match found {
        Some(i)
            if invitation::status(&i, state.clock.now())
                == invitation::InvitationStatus::Pending =>
        {
            Ok(i)
        }
        _ => Err(ApiError::LinkNotUsable(
            "this invitation link was used, revoked or has expired; ask your admin to re-send it"
                .to_string(),
        )),
    }
}

/// Accepts an invitation: the invitee's account, with the password they chose, created
/// and audited as their own act.
pub async fn accept_invitation(
    state: &AppState,
    secret: &str,
    password: String,
    display_name: Option<String>,
    certify_signature: bool,
) -> ApiResult<user::Model> {
    let pending = pending_invitation(state, secret).await?;
    let hash = state.passwords.hash(pending.org_id, password).await?;
    let txn = entity::db::begin_write(&state.db).await?;
    let now = state.clock.now();
    // Re-read under the write lock: two tabs accepting at once create one account.
    let current = invitation::Entity::find_by_id(pending.id)
        .lock_exclusive()
        .one(&txn)
        .await?
        .filter(|i| {
            i.secret_hash == pending.secret_hash
                && invitation::status(i, now) == invitation::InvitationStatus::Pending
        })
        .ok_or_else(|| ApiError::LinkNotUsable("this invitation link was just used".to_string()))?;
    let system = Actor {
        org_id: current.org_id,
        user_id: None,
        request_id: crate::request_id::current(),
        at: now,
    };
    let person = user::ActiveModel {
        id: NotSet,
        org_id: Set(current.org_id),
        email: Set(current.email.clone()),
        display_name: Set(display_name
            .map(|n| n.trim().to_string())
            .filter(|n| !n.is_empty())
            .unwrap_or_else(|| current.display_name.clone())),
        role: Set(current.role),
        time_zone: Set(current.time_zone.clone()),
        phone: Set(current.phone.clone()),
        password_hash: Set(Some(hash)),
        active: Set(true),
        is_service_account: Set(false),
        access_notice: Set(None),
        signature_certified_at: Set(certify_signature.then_some(now)),
        created_at: Set(now),
        updated_at: Set(now),
        version: Set(1),
    }
    .insert(&txn)
    .await?;
    let invitee = Actor {
        user_id: Some(person.id),
        ..system
    };
    let before = snapshot(&InvitationView::new(&current, now));
    let accepted = crate::write::write_next_version::<invitation::Entity>(
        &txn,
        current.id,
        &current,
        now,
        |i| {
            i.accepted_at = Some(now);
            i.accepted_user_id = Some(person.id);
        },
    )
    .await?;
    audit_trail::append(
        &txn,
        &invitee,
        Entry::new("user", person.id, "create")
            .after(snapshot(&UserView::from(&person)))
            .reason(Some(format!("accepted invitation {}", current.id))),
    )
    .await?;
    audit_trail::append(
        &txn,
        &invitee,
        Entry::new("invitation", current.id, "accept")
            .before(before)
            .after(snapshot(&InvitationView::new(&accepted, now))),
    )
    .await?;
    if certify_signature {
        audit_certification(&txn, &invitee, person.id).await?;
    }
    txn.commit().await?;
    Ok(person)
}

async fn audit_certification<C: ConnectionTrait>(
    conn: &C,
    actor: &Actor,
    user_id: i64,
) -> ApiResult<()> {
    audit_trail::append(
        conn,
        actor,
        Entry::new("user", user_id, "certify_signature").after(json!({
            "statement": entity::signature::CERTIFICATION,
            "certified_at": actor.at,
        })),
    )
    .await?;
    Ok(())
}

/// Records, once, the person's certification that their electronic signature is the
/// legally binding equivalent of their handwritten one (audited with its wording).
pub async fn certify<C: ConnectionTrait>(
    conn: &C,
    actor: &Actor,
    person: user::Model,
) -> ApiResult<user::Model> {
    if person.signature_certified_at.is_some() {
        return Ok(person);
    }
    let certified =
        crate::write::write_next_version::<user::Entity>(conn, person.id, &person, actor.at, |u| {
            u.signature_certified_at = Some(actor.at)
        })
        .await?;
    audit_certification(conn, actor, person.id).await?;
    Ok(certified)
}

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
