//! The durable email outbox. Rows are written in the transaction of the change that
//! causes the email, through [`enqueue`]; the worker's dispatcher sends them.

use chrono::{DateTime, TimeDelta, Utc};
use sea_orm::entity::prelude::*;
use sea_orm::sea_query::OnConflict;
use sea_orm::{ActiveValue::NotSet, ActiveValue::Set, ConnectionTrait};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

#[derive(
    Debug, Clone, Copy, PartialEq, Eq, EnumIter, DeriveActiveEnum, Serialize, Deserialize, ToSchema,
)]
#[sea_orm(rs_type = "String", db_type = "String(StringLen::N(16))")]
#[serde(rename_all = "snake_case")]
pub enum OutboxStatus {
    #[sea_orm(string_value = "queued")]
    Queued,
    #[sea_orm(string_value = "sending")]
    Sending,
    #[sea_orm(string_value = "sent")]
    Sent,
    #[sea_orm(string_value = "failed")]
    Failed,
}

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "email_outbox")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    /// What makes this email unique (e.g. `reminder:{owner}:{date}`): enqueueing the
    /// same key twice stores one email.
    pub dedupe_key: String,
    /// Stays the same across resends, so a duplicate after a crash is recognizable.
    pub message_id: String,
    /// JSON array of addresses.
    pub to_addrs: String,
    pub cc_addrs: String,
    pub subject: String,
    pub text_body: String,
    pub html_body: String,
    /// `List-Unsubscribe` URL (digests), also offered as RFC 8058 one-click.
    pub list_unsubscribe: Option<String>,
    pub status: OutboxStatus,
    pub attempts: i32,
    pub next_attempt_at: DateTimeUtc,
    pub last_error: Option<String>,
    pub claimed_by: Option<String>,
    pub claimed_until: Option<DateTimeUtc>,
    pub sent_at: Option<DateTimeUtc>,
    pub created_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}

/// An email to send.
#[derive(Debug, Clone)]
pub struct Draft {
    pub dedupe_key: String,
    pub to: Vec<String>,
    pub cc: Vec<String>,
    pub subject: String,
    pub text_body: String,
    pub html_body: String,
    /// Signed unsubscribe link for subscription emails (digests); `None` for reminders
    /// and other emails a member cannot opt out of.
    pub list_unsubscribe: Option<String>,
}

/// A rendered email: what the `mail` crate produces and a [`Draft`] carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Email {
    pub subject: String,
    pub text_body: String,
    pub html_body: String,
}

impl Draft {
    /// An email to `to` that nobody can opt out of (no copies, no unsubscribe link).
    pub fn new(dedupe_key: String, to: Vec<String>, email: Email) -> Draft {
        Draft {
            dedupe_key,
            to,
            cc: Vec::new(),
            subject: email.subject,
            text_body: email.text_body,
            html_body: email.html_body,
            list_unsubscribe: None,
        }
    }
}

/// Queues `draft` unless its dedupe key is already queued or sent. Returns whether a row
/// was written. Call it inside the transaction of the change that causes the email.
pub async fn enqueue<C: ConnectionTrait>(
    conn: &C,
    draft: Draft,
    now: DateTime<Utc>,
    domain: &str,
) -> Result<bool, DbErr> {
    let message_id = format!("<{}@{domain}>", message_token(&draft.dedupe_key));
    let row = ActiveModel {
        id: NotSet,
        dedupe_key: Set(draft.dedupe_key),
        message_id: Set(message_id),
        to_addrs: Set(serde_json::to_string(&draft.to).unwrap_or_else(|_| "[]".to_string())),
        cc_addrs: Set(serde_json::to_string(&draft.cc).unwrap_or_else(|_| "[]".to_string())),
        subject: Set(clip(draft.subject, MAX_SUBJECT_CHARS)),
        text_body: Set(draft.text_body),
        html_body: Set(draft.html_body),
        list_unsubscribe: Set(draft.list_unsubscribe),
        status: Set(OutboxStatus::Queued),
        attempts: Set(0),
        next_attempt_at: Set(now),
        last_error: Set(None),
        claimed_by: Set(None),
        claimed_until: Set(None),
        sent_at: Set(None),
        created_at: Set(now),
    };
    let inserted = Entity::insert(row)
        .on_conflict(
            OnConflict::column(Column::DedupeKey)
                .do_nothing()
                .to_owned(),
        )
        .exec_without_returning(conn)
        .await?;
    Ok(inserted == 1)
}

/// Subjects longer than this are cut (with an ellipsis): the column holds 300.
pub const MAX_SUBJECT_CHARS: usize = 250;

fn clip(s: String, max: usize) -> String {
    if s.chars().count() <= max {
        return s;
    }
    let mut cut: String = s.chars().take(max - 1).collect();
    cut.push('\u{2026}');
    cut
}

/// A stable, opaque local part for the Message-ID, derived from the dedupe key.
fn message_token(dedupe_key: &str) -> String {
    use sha2::{Digest, Sha256};
    let digest = Sha256::digest(dedupe_key.as_bytes());
    format!("cmo.{}", hex::encode(&digest[..16]))
}

/// How long a claim lasts: a worker that dies mid-send loses its claim after this.
pub const CLAIM_TTL: TimeDelta = TimeDelta::seconds(60);
/// Attempts before a temporarily failing email is given up.
pub const MAX_ATTEMPTS: i32 = 8;

/// Delay before attempt `attempts + 1`: exponential from 30 s, capped at 1 h, with up to
/// 20 % jitter (`jitter` in 0..=1) so retries from many rows spread out.
pub fn backoff(attempts: i32, jitter: f64) -> TimeDelta {
    let base = 30_i64.saturating_mul(1_i64 << attempts.clamp(0, 10));
    let capped = base.min(3600);
    let extra = (capped as f64 * 0.2 * jitter.clamp(0.0, 1.0)) as i64;
    TimeDelta::seconds(capped + extra)
}

/// What to do after a send error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SendOutcome {
    Sent,
    /// Try again later (4xx reply, connection trouble).
    Retry,
    /// Give up (5xx reply: the server refused this message for good).
    Permanent,
}

/// After a failure on attempt number `attempts` (1-based), retry or give up.
pub fn after_failure(permanent: bool, attempts: i32) -> SendOutcome {
    if permanent || attempts >= MAX_ATTEMPTS {
        SendOutcome::Permanent
    } else {
        SendOutcome::Retry
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_exponentially_and_is_capped() {
        assert_eq!(backoff(0, 0.0), TimeDelta::seconds(30));
        assert_eq!(backoff(1, 0.0), TimeDelta::seconds(60));
        assert_eq!(backoff(3, 0.0), TimeDelta::seconds(240));
        assert_eq!(backoff(20, 0.0), TimeDelta::seconds(3600));
        assert_eq!(backoff(0, 1.0), TimeDelta::seconds(36));
    }

    #[test]
    fn permanent_errors_and_exhausted_attempts_give_up() {
        assert_eq!(after_failure(true, 1), SendOutcome::Permanent);
        assert_eq!(after_failure(false, 1), SendOutcome::Retry);
        assert_eq!(after_failure(false, MAX_ATTEMPTS), SendOutcome::Permanent);
    }

    #[test]
    fn long_subjects_are_cut_on_a_character_boundary() {
        assert_eq!(clip("short".into(), 10), "short");
        let long = "é".repeat(300);
        let cut = clip(long, MAX_SUBJECT_CHARS);
        assert_eq!(cut.chars().count(), MAX_SUBJECT_CHARS);
        assert!(cut.ends_with('\u{2026}'));
    }

    #[test]
    fn message_ids_are_stable_per_dedupe_key() {
        assert_eq!(message_token("a"), message_token("a"));
        assert_ne!(message_token("a"), message_token("b"));
    }
}
