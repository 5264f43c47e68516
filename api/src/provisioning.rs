//! Creating organizations, users and tokens, each with its audit events. Shared by the
//! HTTP handlers and the `bootstrap` command so both follow the same rules.

use chrono::{DateTime, Utc};
use entity::audit_trail::{self, Actor, Entry};
use entity::{OrgKind, Role, api_token, organization, user};
use sea_orm::{ActiveModelTrait, ActiveValue::NotSet, ActiveValue::Set, ConnectionTrait};

use crate::error::ApiResult;
use crate::views::identity::{OrganizationView, TokenView, UserView};
use crate::views::snapshot;

pub struct NewUser {
    pub email: String,
    pub display_name: String,
    pub role: Role,
    pub time_zone: String,
    pub phone: Option<String>,
    /// The person's own choice (accepting an invitation); never an admin's.
    pub password_hash: Option<String>,
    pub is_service_account: bool,
}

pub async fn create_organization<C: ConnectionTrait>(
    conn: &C,
    name: &str,
    kind: OrgKind,
    parent_org_id: Option<i64>,
    registered_by: Option<&Actor>,
    chain_keys: &entity::audit::ChainKeys,
    now: DateTime<Utc>,
) -> ApiResult<organization::Model> {
    let org = organization::ActiveModel {
        id: NotSet,
        name: Set(name.trim().to_string()),
        kind: Set(kind),
        parent_org_id: Set(parent_org_id),
        merged_into_org_id: Set(None),
        validation_run: Set(false),
        deactivated_at: Set(None),
        created_at: Set(now),
        updated_at: Set(now),
        version: Set(1),
    }
    .insert(conn)
    .await?;
    audit_trail::start_chain(conn, chain_keys, org.id).await?;
    // A CMO enters the registry as a prospect of the sponsor that registered it.
    if let (OrgKind::Cmo, Some(sponsor)) = (kind, parent_org_id) {
        entity::cmo::ActiveModel {
            org_id: Set(org.id),
            sponsor_org_id: Set(sponsor),
            dosage_forms: Set("[]".to_string()),
            modalities: Set("[]".to_string()),
            sterile_fill_finish: Set(false),
            high_potency: Set(false),
            cold_chain: Set(false),
            max_batch_liters: Set(None),
            contacts: Set("[]".to_string()),
            qualification_status: Set(entity::cmo::QualificationStatus::Prospect),
            qualification_reason: Set(None),
            qualification_signature_id: Set(None),
            qualification_changed_at: Set(None),
            created_at: Set(now),
            updated_at: Set(now),
            version: Set(1),
        }
        .insert(conn)
        .await?;
        // Registering a CMO connects the sponsor with it at once (no invitation to
        // answer: the sponsor brought it).
        entity::relationship::new_row(
            sponsor,
            org.id,
            entity::relationship::ConnectionStatus::Connected,
            registered_by.and_then(|a| a.user_id),
            None,
            now,
        )
        .insert(conn)
        .await?;
    }
    let view = snapshot(&OrganizationView::from(&org));
    let own_actor = Actor {
        org_id: org.id,
        user_id: registered_by.and_then(|a| a.user_id),
        request_id: registered_by.and_then(|a| a.request_id.clone()),
        at: now,
        chain_keys: chain_keys.clone(),
    };
    audit_trail::append(
        conn,
        &own_actor,
        Entry::new("organization", org.id, "create").after(view.clone()),
    )
    .await?;
    // The registering sponsor's trail records the registration too.
    if let Some(actor) = registered_by {
        audit_trail::append(
            conn,
            actor,
            Entry::new("organization", org.id, "register_partner").after(view),
        )
        .await?;
    }
    Ok(org)
}

pub async fn create_user<C: ConnectionTrait>(
    conn: &C,
    actor: &Actor,
    new: NewUser,
) -> ApiResult<user::Model> {
    let (user, _) = crate::write::insert_audited(
        conn,
        actor,
        "user",
        user::ActiveModel {
            id: NotSet,
            org_id: Set(actor.org_id),
            email: Set(user::normalize_email(&new.email)),
            display_name: Set(new.display_name.trim().to_string()),
            role: Set(new.role),
            time_zone: Set(new.time_zone),
            phone: Set(new.phone),
            password_hash: Set(new.password_hash),
            active: Set(true),
            is_service_account: Set(new.is_service_account),
            access_notice: Set(None),
            signature_certified_at: Set(None),
            calendar_generation: Set(0),
            created_at: Set(actor.at),
            updated_at: Set(actor.at),
            version: Set(1),
        },
        async |created| Ok(UserView::from(created)),
    )
    .await?;
    Ok(user)
}

/// What a new token is: its name, expiry, kind, lineage and scope.
pub struct TokenSpec<'a> {
    pub name: &'a str,
    pub expires_at: Option<DateTime<Utc>>,
    pub kind: api_token::TokenKind,
    /// The personal token it was created with (see `api_token::child_expiry`).
    pub parent_token_id: Option<i64>,
    pub read_only: bool,
}

impl<'a> TokenSpec<'a> {
    /// A personal token with no parent and full scope.
    pub fn personal(name: &'a str, expires_at: Option<DateTime<Utc>>) -> Self {
        Self {
            name,
            expires_at,
            kind: api_token::TokenKind::Personal,
            parent_token_id: None,
            read_only: false,
        }
    }
}

/// Issues a token for `owner`; returns the row and the secret (shown once, never stored).
pub async fn issue_token<C: ConnectionTrait>(
    conn: &C,
    actor: &Actor,
    owner: &user::Model,
    spec: TokenSpec<'_>,
) -> ApiResult<(api_token::Model, String)> {
    let secret = crate::secrets::new_token_secret();
    let token = api_token::ActiveModel {
        id: NotSet,
        org_id: Set(owner.org_id),
        user_id: Set(owner.id),
        issued_by_user_id: Set(actor.user_id),
        name: Set(spec.name.trim().to_string()),
        token_prefix: Set(api_token::display_prefix(&secret)),
        token_hash: Set(api_token::hash_secret(&secret)),
        created_at: Set(actor.at),
        expires_at: Set(spec.expires_at),
        revoked_at: Set(None),
        last_used_at: Set(None),
        kind: Set(spec.kind),
        parent_token_id: Set(spec.parent_token_id),
        read_only: Set(spec.read_only),
        revoked_reason: Set(None),
    }
    .insert(conn)
    .await?;
    audit_trail::append(
        conn,
        actor,
        Entry::new("api_token", token.id, "issue").after(snapshot(&TokenView::from(&token))),
    )
    .await?;
    Ok((token, secret))
}
