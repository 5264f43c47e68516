//! Tells people how their access changed when the accounts model changed under them
//! (issue 16's migration): tokens an admin minted for them or that descend from a CMO
//! hand-over token were revoked; a password an admin set was erased. The migration
//! marks each person (`users.access_notice`); this pass emails them how to get their
//! own access and clears the mark, in one transaction (the outbox dedupes a retry).

use chrono::{DateTime, Utc};
use entity::outbox::Draft;
use entity::user;
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, QuerySelect};

use super::{JobContext, JobError};

#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct NoticeReport {
    pub told: usize,
}

/// People marked per pass at most (the rest wait for the next pass).
const BATCH: u64 = 100;

pub async fn access_notices(
    ctx: &JobContext,
    now: DateTime<Utc>,
) -> Result<NoticeReport, JobError> {
    let marked = user::Entity::find()
        .filter(user::Column::AccessNotice.is_not_null())
        .limit(BATCH)
        .all(&ctx.db)
        .await?;
    let mut report = NoticeReport::default();
    for person in marked {
        let Some(notice) = person.access_notice.clone() else {
            continue;
        };
        let email = render(&notice, &ctx.public_base_url)?;
        let txn = entity::db::begin_write(&ctx.db).await?;
        // Only the pass that clears the mark sends: a second worker finds it gone.
        let cleared = user::Entity::update_many()
            .col_expr(
                user::Column::AccessNotice,
                sea_orm::sea_query::Expr::value(Option::<String>::None),
            )
            .filter(user::Column::Id.eq(person.id))
            .filter(user::Column::AccessNotice.eq(notice.clone()))
            .exec(&txn)
            .await?;
        if cleared.rows_affected == 1 && person.active {
            mail::enqueue(
                &txn,
                Draft::new(
                    format!("access_notice:{}:{notice}", person.id),
                    vec![person.email.clone()],
                    email,
                ),
                now,
                &ctx.public_base_url,
            )
            .await?;
            report.told += 1;
        }
        txn.commit().await?;
    }
    Ok(report)
}

fn render(notice: &str, base_url: &str) -> Result<entity::outbox::Email, JobError> {
    let reset = format!("{base_url}/password-reset");
    let password = "The password an administrator set for you no longer works: a password is \
        yours alone, and an administrator never knows it."
        .to_string();
    let tokens = "Your API tokens were revoked: they were created for you by someone else (an \
        administrator, or through the hand-over token of your organization's registration), \
        so someone else may hold them."
        .to_string();
    let how = format!(
        "Get your own access: choose your password at {reset}, sign in ({base_url}/sign-in, or \
         POST /api/v1/sign-in for API clients), then create your tokens with POST /api/v1/tokens."
    );
    let (subject, paragraphs) = match notice {
        "password_expired" => (
            "Choose your own cmo-orchestrator password",
            vec![password, how],
        ),
        "password_expired_tokens_revoked" => (
            "Choose your own cmo-orchestrator password and tokens",
            vec![password, tokens, how],
        ),
        _ => (
            "Your cmo-orchestrator API tokens were revoked: get your own",
            vec![tokens, how],
        ),
    };
    mail::notice(subject, subject, &paragraphs, Some(&reset))
        .map_err(|e| JobError::Template(e.to_string()))
}
