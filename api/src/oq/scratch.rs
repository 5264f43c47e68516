//! The organizations a qualification run works in: a sponsor and the CMO it registers,
//! both marked `validation_run`, with the people the checks act as. At the end they are
//! deactivated (people deactivated, tokens and invitations revoked, the organization
//! stamped), each step in their audit trails; their records stay, as every GxP record
//! does.

use chrono::{DateTime, TimeDelta, Utc};
use entity::audit_trail::{self, Actor, Entry};
use entity::{OrgKind, Role, invitation, organization, user};
use sea_orm::{
    ActiveModelTrait, ActiveValue::Set, ColumnTrait, DatabaseConnection, EntityTrait,
    IntoActiveModel, QueryFilter,
};

use crate::error::ApiResult;
use crate::provisioning::{self, NewUser, TokenSpec};

/// A person the checks act as: their account, API token and (for signing) password.
pub struct Person {
    pub user: user::Model,
    pub token: String,
    pub password: String,
}

pub struct Scratch {
    pub sponsor: organization::Model,
    pub cmo: organization::Model,
    pub admin: Person,
    pub quality: Person,
    pub cmo_admin: Person,
}

/// 24 characters of 32 (120 bits): the run's people sign with it and nobody else knows it.
fn random_password() -> String {
    const ALPHABET: &[u8; 32] = b"abcdefghijkmnpqrstuvwxyz23456789";
    let mut bytes = [0u8; 24];
    rand::fill(&mut bytes);
    bytes
        .iter()
        .map(|b| char::from(ALPHABET[usize::from(b % 32)]))
        .collect()
}

async fn person(
    conn: &impl sea_orm::ConnectionTrait,
    actor: &Actor,
    email: String,
    name: &str,
    role: Role,
    passwords: &crate::secrets::Passwords,
) -> ApiResult<Person> {
    let password = random_password();
    let user = provisioning::create_user(
        conn,
        actor,
        NewUser {
            email,
            display_name: name.to_string(),
            role,
            time_zone: "UTC".to_string(),
            phone: None,
            password_hash: Some(passwords.hash(actor.org_id, password.clone()).await?),
            is_service_account: false,
        },
    )
    .await?;
    // A run lasts minutes; its tokens end within the day whatever happens to the run.
    let (_, token) = provisioning::issue_token(
        conn,
        actor,
        &user,
        TokenSpec::personal(
            "operational qualification",
            Some(actor.at + TimeDelta::days(1)),
        ),
    )
    .await?;
    Ok(Person {
        user,
        token,
        password,
    })
}

async fn mark_validation(
    conn: &impl sea_orm::ConnectionTrait,
    actor: &Actor,
    org: organization::Model,
) -> ApiResult<organization::Model> {
    let mut active = org.into_active_model();
    active.validation_run = Set(true);
    let marked = active.update(conn).await?;
    audit_trail::append(
        conn,
        actor,
        Entry::new("organization", marked.id, "mark_validation_run")
            .after(serde_json::json!({"validation_run": true}))
            .reason(Some(
                "created by an operational qualification run".to_string(),
            )),
    )
    .await?;
    Ok(marked)
}

/// Creates the run's sponsor and CMO (one transaction), named with the run's start.
pub async fn create(
    db: &DatabaseConnection,
    chain_keys: &entity::audit::ChainKeys,
    now: DateTime<Utc>,
) -> ApiResult<Scratch> {
    let passwords = crate::secrets::Passwords::default();
    let stamp = now.format("%Y%m%dT%H%M%SZ").to_string();
    let domain = format!("oq-{}.validation.invalid", stamp.to_lowercase());
    let txn = entity::db::begin_write(db).await?;
    let sponsor = provisioning::create_organization(
        &txn,
        &format!("Validation run {stamp}"),
        OrgKind::Sponsor,
        None,
        None,
        chain_keys,
        now,
    )
    .await?;
    let system = |org_id| Actor {
        org_id,
        user_id: None,
        request_id: None,
        at: now,
        chain_keys: chain_keys.clone(),
    };
    let sponsor = mark_validation(&txn, &system(sponsor.id), sponsor).await?;
    let admin = person(
        &txn,
        &system(sponsor.id),
        format!("admin@{domain}"),
        "OQ Admin",
        Role::Admin,
        &passwords,
    )
    .await?;
    let quality = person(
        &txn,
        &system(sponsor.id),
        format!("quality@{domain}"),
        "OQ Quality",
        Role::Quality,
        &passwords,
    )
    .await?;
    let registered_by = Actor {
        user_id: Some(admin.user.id),
        ..system(sponsor.id)
    };
    let cmo = provisioning::create_organization(
        &txn,
        &format!("Validation run {stamp} CMO"),
        OrgKind::Cmo,
        Some(sponsor.id),
        Some(&registered_by),
        chain_keys,
        now,
    )
    .await?;
    let cmo = mark_validation(&txn, &system(cmo.id), cmo).await?;
    let cmo_admin = person(
        &txn,
        &system(cmo.id),
        format!("cmo-admin@{domain}"),
        "OQ CMO Admin",
        Role::Admin,
        &passwords,
    )
    .await?;
    txn.commit().await?;
    Ok(Scratch {
        sponsor,
        cmo,
        admin,
        quality,
        cmo_admin,
    })
}

/// Deactivates the run's organizations: every person deactivated and every token
/// revoked, open invitations revoked, the organization stamped `deactivated_at` (which
/// sign-in and every token check refuse from then on); nothing is deleted.
pub async fn deactivate(
    db: &DatabaseConnection,
    chain_keys: &entity::audit::ChainKeys,
    org_ids: [i64; 2],
    now: DateTime<Utc>,
) -> ApiResult<()> {
    let txn = entity::db::begin_write(db).await?;
    let reason = "operational qualification run finished";
    for org_id in org_ids {
        let actor = Actor {
            org_id,
            user_id: None,
            request_id: None,
            at: now,
            chain_keys: chain_keys.clone(),
        };
        let people = user::Entity::find()
            .filter(user::Column::OrgId.eq(org_id))
            .filter(user::Column::Active.eq(true))
            .all(&txn)
            .await?;
        for person in &people {
            crate::accounts::deactivate_person(
                &txn,
                &actor,
                person,
                reason,
                "validation_run_finished",
            )
            .await?;
        }
        let open_invitations = invitation::Entity::find()
            .filter(invitation::Column::OrgId.eq(org_id))
            .filter(invitation::Column::AcceptedAt.is_null())
            .filter(invitation::Column::RevokedAt.is_null())
            .all(&txn)
            .await?;
        for open in open_invitations {
            let id = open.id;
            let mut active = open.into_active_model();
            active.revoked_at = Set(Some(now));
            active.update(&txn).await?;
            audit_trail::append(
                &txn,
                &actor,
                Entry::new("invitation", id, "revoke").reason(Some(reason.to_string())),
            )
            .await?;
        }
        if let Some(org) = organization::Entity::find_by_id(org_id).one(&txn).await? {
            let mut active = org.into_active_model();
            active.deactivated_at = Set(Some(now));
            active.updated_at = Set(now);
            active.update(&txn).await?;
            audit_trail::append(
                &txn,
                &actor,
                Entry::new("organization", org_id, "deactivate")
                    .after(serde_json::json!({"deactivated_at": now}))
                    .reason(Some(reason.to_string())),
            )
            .await?;
        }
    }
    txn.commit().await?;
    Ok(())
}
