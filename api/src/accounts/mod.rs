//! Accounts people run themselves: invitations, sign-in, password resets and the end of
//! sessions. The JSON endpoints and the browser pages both call these, so a rule (who
//! may accept, how sign-in is throttled, what a reset ends) is written once.
//!
//! The model: a person's password is only ever chosen by that person (on the page an
//! invitation or a reset link opens); nobody else sees a link's secret (it travels by
//! email only); an admin can invite, deactivate and force a reset, never set a password
//! or create a token for someone else.

mod invitations;
mod resets;
mod sessions;

pub use invitations::*;
pub use resets::*;
pub use sessions::*;

use entity::audit_trail::{self, Actor, Entry};
use entity::user;
use sea_orm::ConnectionTrait;
use serde_json::json;

use crate::error::ApiResult;

pub(crate) async fn audit_certification<C: ConnectionTrait>(
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
