//! `cmo-api bootstrap`: the first sponsor organization, its admin, a token, and the
//! one-time link where the admin chooses their own password.

use entity::audit_trail::Actor;
use entity::{OrgKind, Role, api_token, organization, user};
use sea_orm::{ConnectionTrait, DatabaseConnection, EntityTrait, PaginatorTrait};

use crate::accounts::{self, ResetKind};
use crate::error::ApiError;
use crate::provisioning::{self, NewUser};

pub struct BootstrapRequest {
    pub org_name: String,
    pub admin_email: String,
    pub admin_name: String,
    pub time_zone: String,
    pub now: chrono::DateTime<chrono::Utc>,
    /// Where the admin's password link points.
    pub public_base_url: String,
}

pub struct Bootstrapped {
    pub organization: organization::Model,
    pub admin: user::Model,
    pub token: api_token::Model,
    pub secret: String,
    /// The one-time link where the admin chooses their password (printed, not emailed:
    /// mail may not be set up yet when an installation starts).
    pub password_link: String,
}

#[derive(Debug, thiserror::Error)]
pub enum BootstrapError {
    #[error(
        "the database already holds {0} organization(s); bootstrap only initializes an empty database"
    )]
    AlreadyInitialized(u64),
    #[error("invalid input: {0}")]
    Invalid(String),
    #[error(transparent)]
    Api(#[from] ApiError),
    #[error(transparent)]
    Db(#[from] sea_orm::DbErr),
}

/// What is wrong with the command's arguments, if anything.
fn check(
    org_name: &str,
    admin_email: &str,
    admin_name: &str,
    time_zone: &str,
) -> Vec<&'static str> {
    let mut problems = Vec::new();
    if org_name.trim().is_empty() || org_name.chars().count() > 200 {
        problems.push("--org must be 1 to 200 characters");
    }
    if !user::is_plausible_email(&user::normalize_email(admin_email)) {
        problems.push("--email is not a plausible email address");
    }
    if admin_name.trim().is_empty() || admin_name.chars().count() > 200 {
        problems.push("--name must be 1 to 200 characters");
    }
    if time_zone.parse::<chrono_tz::Tz>().is_err() {
        problems.push("--time-zone must be an IANA time zone name");
    }
    problems
}

pub async fn bootstrap(
    db: &DatabaseConnection,
    chain_keys: &entity::audit::ChainKeys,
    req: BootstrapRequest,
) -> Result<Bootstrapped, BootstrapError> {
    let problems = check(
        &req.org_name,
        &req.admin_email,
        &req.admin_name,
        &req.time_zone,
    );
    if !problems.is_empty() {
        return Err(BootstrapError::Invalid(problems.join("; ")));
    }

    let txn = entity::db::begin_write(db).await?;
    if txn.get_database_backend() == sea_orm::DbBackend::Postgres {
        // Two bootstraps at once must not both find the database empty.
        txn.execute_unprepared("SELECT pg_advisory_xact_lock(7265631)")
            .await?;
    }
    let existing = organization::Entity::find().count(&txn).await?;
    if existing > 0 {
        return Err(BootstrapError::AlreadyInitialized(existing));
    }
    let org = provisioning::create_organization(
        &txn,
        &req.org_name,
        OrgKind::Sponsor,
        None,
        None,
        chain_keys,
        req.now,
    )
    .await?;
    let system = Actor {
        org_id: org.id,
        user_id: None,
        request_id: None,
        at: req.now,
        chain_keys: chain_keys.clone(),
    };
    let admin = provisioning::create_user(
        &txn,
        &system,
        NewUser {
            email: req.admin_email,
            display_name: req.admin_name,
            role: Role::Admin,
            time_zone: req.time_zone,
            phone: None,
            password_hash: None,
            is_service_account: false,
        },
    )
    .await?;
    let (token, secret) = provisioning::issue_token(
        &txn,
        &system,
        &admin,
        provisioning::TokenSpec::personal("bootstrap", None),
    )
    .await?;
    let base_url = req.public_base_url.trim_end_matches('/');
    let (_, password_secret) =
        accounts::create_reset(&txn, &system, &admin, ResetKind::FirstPassword).await?;
    txn.commit().await?;
    Ok(Bootstrapped {
        organization: org,
        admin,
        token,
        secret,
        password_link: accounts::reset_url(base_url, &password_secret),
    })
}

/// `cmo-api create-sponsor`: the installation operator adds a sponsor organization to a
/// running installation. Its first admin is invited by email (the worker sends it); the
/// operator never sees the link, so never holds a credential of the new sponsor.
pub struct SponsorRequest {
    pub org_name: String,
    pub admin_email: String,
    pub admin_name: String,
    pub time_zone: String,
    pub now: chrono::DateTime<chrono::Utc>,
    pub public_base_url: String,
}

pub async fn create_sponsor(
    db: &DatabaseConnection,
    chain_keys: &entity::audit::ChainKeys,
    req: SponsorRequest,
) -> Result<(organization::Model, entity::invitation::Model), BootstrapError> {
    let problems = check(
        &req.org_name,
        &req.admin_email,
        &req.admin_name,
        &req.time_zone,
    );
    if !problems.is_empty() {
        return Err(BootstrapError::Invalid(problems.join("; ")));
    }
    let txn = entity::db::begin_write(db).await?;
    let org = provisioning::create_organization(
        &txn,
        &req.org_name,
        OrgKind::Sponsor,
        None,
        None,
        chain_keys,
        req.now,
    )
    .await?;
    let operator = Actor {
        org_id: org.id,
        user_id: None,
        request_id: None,
        at: req.now,
        chain_keys: chain_keys.clone(),
    };
    let invitation = accounts::invite(
        &txn,
        &operator,
        &org,
        None,
        accounts::NewInvitation {
            email: req.admin_email,
            display_name: req.admin_name,
            role: Role::Admin,
            time_zone: req.time_zone,
            phone: None,
        },
        req.public_base_url.trim_end_matches('/'),
    )
    .await?;
    txn.commit().await?;
    Ok((org, invitation))
}
