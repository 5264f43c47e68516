//! Invitations: created by an admin (or the operator), sent by email, accepted by the
//! invitee choosing their own password.

use chrono::{DateTime, Utc};
use entity::audit_trail::{self, Actor, Entry};
use entity::{Role, api_token, invitation, organization, user};
use sea_orm::{
    ActiveModelTrait, ActiveValue::NotSet, ActiveValue::Set, ColumnTrait, ConnectionTrait,
    EntityTrait, QueryFilter, QuerySelect,
};

use super::audit_certification;
use crate::error::{ApiError, ApiResult};
use crate::state::AppState;
use crate::views::identity::{InvitationView, UserView};
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
        chain_keys: state.chain_keys.clone(),
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
        calendar_generation: Set(0),
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
