//! What happens to a page email after it was queued. A tier counts as paged only for
//! emails that can reach someone: an email the mail server later refuses for good is
//! recorded on the escalation (who, which page, the server's reply), and when no email
//! of the current page reached anyone, the next page is due at once instead of after the
//! tier's wait.

use chrono::{DateTime, TimeDelta, Utc};
use sea_orm::entity::prelude::*;
use sea_orm::sea_query::Expr;
use sea_orm::{ConnectionTrait, PaginatorTrait};

use crate::escalation::{self, EscalationStatus};
use crate::outbox::{self, OutboxStatus};

/// The outbox dedupe key of one page email: the escalation, its page, the recipient.
pub fn page_dedupe_key(escalation_id: i64, page_seq: i32, user_id: i64) -> String {
    format!("escalation:{escalation_id}:page:{page_seq}:user:{user_id}")
}

/// `(escalation, page, user)` of a page email's dedupe key; `None` for any other email.
pub fn parse_page_dedupe_key(key: &str) -> Option<(i64, i32, i64)> {
    let rest = key.strip_prefix("escalation:")?;
    let (id, rest) = rest.split_once(":page:")?;
    let (seq, user) = rest.split_once(":user:")?;
    Some((id.parse().ok()?, seq.parse().ok()?, user.parse().ok()?))
}

/// Longest wait between two attempts of a page email while its escalation is open: a
/// page goes out within this of the mail server coming back.
pub const PAGE_RETRY_CAP: TimeDelta = TimeDelta::minutes(2);

/// Whether the email `dedupe_key` is a page of an escalation still open (nobody has
/// acknowledged it): such an email is retried for as long as that holds, every
/// [`PAGE_RETRY_CAP`] at most, instead of being given up after the outbox's attempt
/// limit (about an hour of outage).
pub async fn page_still_needed<C: ConnectionTrait>(
    conn: &C,
    dedupe_key: &str,
) -> Result<bool, DbErr> {
    let Some((id, _, _)) = parse_page_dedupe_key(dedupe_key) else {
        return Ok(false);
    };
    Ok(escalation::Entity::find_by_id(id)
        .one(conn)
        .await?
        .is_some_and(|e| e.status == EscalationStatus::Open))
}

/// What [`page_refused`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Refusal {
    /// The email was a page: the refusal is on the escalation now.
    pub recorded: bool,
    /// No email of the current page reached anyone: the next page is due now.
    pub next_page_now: bool,
}

/// Records that the mail server refused the email `dedupe_key` (to `to`) for good with
/// `reply`, in the caller's transaction, after the email was marked failed.
pub async fn page_refused<C: ConnectionTrait>(
    conn: &C,
    dedupe_key: &str,
    to: &str,
    reply: &str,
    now: DateTime<Utc>,
) -> Result<Refusal, DbErr> {
    let Some((id, seq, user_id)) = parse_page_dedupe_key(dedupe_key) else {
        return Ok(Refusal::default());
    };
    let Some(e) = escalation::Entity::find_by_id(id).one(conn).await? else {
        return Ok(Refusal::default());
    };
    let tier = escalation::page::Entity::find()
        .filter(escalation::page::Column::EscalationId.eq(id))
        .filter(escalation::page::Column::Seq.eq(seq))
        .one(conn)
        .await?
        .map(|p| p.tier_index);
    escalation::record_event(
        conn,
        id,
        "undeliverable",
        tier,
        serde_json::json!({
            "page": seq,
            "user_id": user_id,
            "email": to,
            "why": "the mail server refused this page for good: correct the address",
            "reply": reply.chars().take(300).collect::<String>(),
        }),
        None,
        now,
    )
    .await?;
    let still_going = outbox::Entity::find()
        .filter(outbox::Column::DedupeKey.starts_with(format!("escalation:{id}:page:{seq}:user:")))
        .filter(outbox::Column::Status.ne(OutboxStatus::Failed))
        .count(conn)
        .await?;
    if still_going > 0 || e.status != EscalationStatus::Open || e.page_seq != seq {
        return Ok(Refusal {
            recorded: true,
            next_page_now: false,
        });
    }
    // Compare-and-set: only while this is still the open escalation's current page.
    let moved = escalation::Entity::update_many()
        .col_expr(escalation::Column::NextPageAt, Expr::value(Some(now)))
        .filter(escalation::Column::Id.eq(id))
        .filter(escalation::Column::PageSeq.eq(seq))
        .filter(escalation::Column::Status.eq(EscalationStatus::Open))
        .exec(conn)
        .await?;
    let next_page_now = moved.rows_affected == 1;
    if next_page_now {
        escalation::record_event(
            conn,
            id,
            "skipped",
            tier,
            serde_json::json!({
                "page": seq,
                "why": "no email of this page could be delivered: the next tier is paged now",
            }),
            None,
            now,
        )
        .await?;
    }
    Ok(Refusal {
        recorded: true,
        next_page_now,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_page_key_round_trips_and_other_keys_are_not_pages() {
        let key = page_dedupe_key(41, 3, 7);
        assert_eq!(parse_page_dedupe_key(&key), Some((41, 3, 7)));
        for other in [
            "escalated:3",
            "notify:12:7",
            "escalation:41:notice:3:user:7",
            "escalation:x:page:3:user:7",
            "escalation:41:page:3:user:",
        ] {
            assert_eq!(parse_page_dedupe_key(other), None, "{other}");
        }
    }
}
