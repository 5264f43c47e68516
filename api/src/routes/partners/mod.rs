//! The partner network: CMO profiles and sites, connections between sponsors and CMOs,
//! qualification, inspections, quality agreements, scorecards and selection.

pub mod agreements;
pub mod answer_pages;
pub mod cmos;
pub mod connections;
pub mod directory;
pub mod evaluations;
pub mod inspections;
pub mod merge_choices;
pub mod merges;
pub mod qualification;
pub mod scorecards;

use entity::{OrgKind, Role, cmo, relationship, user};
use sea_orm::{ColumnTrait, ConnectionTrait, EntityTrait, PaginatorTrait, QueryFilter};

use crate::auth::AuthContext;
use crate::error::{ApiError, ApiResult};

/// A CMO's facts are the CMO's: its own admins keep them (its quality users record
/// inspections too). The sponsor that registered it holds the pen until the CMO's first
/// person has joined, so the registry can be filled before they arrive. `what` names the
/// change for the refusal.
pub(crate) async fn require_fact_keeper(
    conn: &impl ConnectionTrait,
    ctx: &AuthContext,
    p: &cmo::Model,
    inspections: bool,
    what: &str,
) -> ApiResult<()> {
    let role = ctx.user.role;
    let own = ctx.org_id() == p.org_id
        && (role == Role::Admin || inspections && role.handles_quality_records());
    let before_the_cmo_joined = ctx.org_id() == p.sponsor_org_id
        && role.handles_quality_records()
        && !has_joined(conn, p.org_id).await?;
    if own || before_the_cmo_joined {
        return Ok(());
    }
    Err(ApiError::Forbidden(format!(
        "{what} by the CMO's own admins{}: every sponsor connected to it reads them",
        if inspections { " and quality" } else { "" }
    )))
}

/// The caller's organization's relationship with CMO `cmo_org_id`, when the caller is
/// on a sponsor's side of one.
pub(crate) async fn own_relationship(
    conn: &impl ConnectionTrait,
    ctx: &AuthContext,
    cmo_org_id: i64,
) -> ApiResult<Option<relationship::Model>> {
    if ctx.org.kind != OrgKind::Sponsor {
        return Ok(None);
    }
    Ok(relationship::between(conn, ctx.org_id(), cmo_org_id).await?)
}

/// Relationship decisions (qualification, agreements, notes) belong to the sponsor
/// connected to the CMO (or once connected: an ended connection leaves its side the
/// sponsor's own): its quality, program managers and admins. `what` starts the refusal,
/// e.g. "inspections are recorded".
pub(crate) fn require_sponsor_side(
    ctx: &AuthContext,
    rel: Option<&relationship::Model>,
    what: &str,
) -> ApiResult<()> {
    let connected = rel.is_some_and(|r| {
        r.sponsor_org_id == ctx.org_id()
            && matches!(
                r.connection,
                relationship::ConnectionStatus::Connected | relationship::ConnectionStatus::Ended
            )
    });
    if !connected || !ctx.user.role.handles_quality_records() {
        return Err(ApiError::Forbidden(format!(
            "{what} by the connected sponsor's quality, program managers and admins"
        )));
    }
    Ok(())
}

/// Whether anyone of organization `org_id` has joined (an active account with a password
/// of its own): until then, the sponsor that registered a CMO acts for it.
pub(crate) async fn has_joined(conn: &impl ConnectionTrait, org_id: i64) -> ApiResult<bool> {
    Ok(user::Entity::find()
        .filter(user::Column::OrgId.eq(org_id))
        .filter(user::Column::Active.eq(true))
        .filter(user::Column::PasswordHash.is_not_null())
        .count(conn)
        .await?
        > 0)
}

/// An email to every active admin (people, not service accounts) of `org_id`, queued in
/// the caller's transaction; `key` names it once per admin (a retry queues nothing new).
pub(crate) struct AdminsEmail<'a> {
    pub org_id: i64,
    pub subject: &'a str,
    pub headline: &'a str,
    pub paragraphs: &'a [String],
    /// The page where they answer (every link opens a page for people).
    pub link: String,
    pub key: String,
}

pub(crate) async fn email_admins(
    conn: &impl ConnectionTrait,
    public_base_url: &str,
    email: AdminsEmail<'_>,
    now: chrono::DateTime<chrono::Utc>,
) -> ApiResult<()> {
    let admins = user::Entity::find()
        .filter(user::Column::OrgId.eq(email.org_id))
        .filter(user::Column::Active.eq(true))
        .filter(user::Column::IsServiceAccount.eq(false))
        .filter(user::Column::Role.eq(Role::Admin))
        .all(conn)
        .await?;
    for admin in admins {
        let rendered = mail::notice(
            email.subject,
            email.headline,
            email.paragraphs,
            Some(&email.link),
        )
        .map_err(ApiError::internal)?;
        mail::enqueue(
            conn,
            entity::outbox::Draft::new(
                format!("{}:{}", email.key, admin.id),
                vec![admin.email],
                rendered,
            ),
            now,
            public_base_url,
        )
        .await?;
    }
    Ok(())
}
