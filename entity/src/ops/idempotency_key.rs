//! A remembered response to a POST made with an `Idempotency-Key`.

use chrono::{DateTime, TimeDelta, Utc};
use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "idempotency_keys")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    /// Keys are the caller's: two users may use the same key for different requests.
    pub user_id: i64,
    pub key: String,
    pub method: String,
    pub path: String,
    /// SHA-256 of the request body: the same key with another body is a client error.
    pub request_hash: String,
    /// HTTP status of the remembered response; 0 while the first request is in flight.
    pub status: i32,
    pub content_type: Option<String>,
    pub body: Option<String>,
    pub created_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}

/// How long a key is remembered.
pub const RETENTION: TimeDelta = TimeDelta::hours(24);
/// An in-flight claim older than this is taken to belong to a crashed request.
pub const STALE_CLAIM: TimeDelta = TimeDelta::minutes(5);
pub const MIN_KEY_LEN: usize = 8;
pub const MAX_KEY_LEN: usize = 200;

/// What to do with a request that carries a key already on record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Same request, finished: answer with the remembered response.
    Replay,
    /// Same request, still being served by someone else.
    InProgress,
    /// The key was used for a different request.
    Mismatch,
    /// The record is expired (or a crashed claim): forget it and serve afresh.
    Expired,
}

pub fn classify(
    record: &Model,
    method: &str,
    path: &str,
    request_hash: &str,
    now: DateTime<Utc>,
) -> Outcome {
    let age = now - record.created_at;
    if age > RETENTION || (record.status == 0 && age > STALE_CLAIM) {
        return Outcome::Expired;
    }
    if record.method != method || record.path != path || record.request_hash != request_hash {
        return Outcome::Mismatch;
    }
    if record.status == 0 {
        Outcome::InProgress
    } else {
        Outcome::Replay
    }
}

/// Keys are opaque, printable and bounded; long enough to be unique per operation.
pub fn is_valid_key(key: &str) -> bool {
    (MIN_KEY_LEN..=MAX_KEY_LEN).contains(&key.len()) && key.bytes().all(|b| b.is_ascii_graphic())
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn record(status: i32, created_at: DateTime<Utc>) -> Model {
        Model {
            id: 1,
            user_id: 1,
            key: "k".into(),
            method: "POST".into(),
            path: "/api/v1/users".into(),
            request_hash: "h".into(),
            status,
            content_type: None,
            body: None,
            created_at,
        }
    }

    #[test]
    fn the_same_finished_request_is_replayed() {
        let t = Utc.with_ymd_and_hms(2026, 11, 23, 9, 0, 0).unwrap();
        assert_eq!(
            classify(&record(201, t), "POST", "/api/v1/users", "h", t),
            Outcome::Replay
        );
    }

    #[test]
    fn another_body_or_path_under_the_same_key_is_a_mismatch() {
        let t = Utc.with_ymd_and_hms(2026, 11, 23, 9, 0, 0).unwrap();
        assert_eq!(
            classify(&record(201, t), "POST", "/api/v1/users", "other", t),
            Outcome::Mismatch
        );
        assert_eq!(
            classify(&record(201, t), "POST", "/api/v1/tokens", "h", t),
            Outcome::Mismatch
        );
    }

    #[test]
    fn a_running_request_is_in_progress_until_its_claim_goes_stale() {
        let t = Utc.with_ymd_and_hms(2026, 11, 23, 9, 0, 0).unwrap();
        let r = record(0, t);
        assert_eq!(
            classify(&r, "POST", "/api/v1/users", "h", t + TimeDelta::minutes(1)),
            Outcome::InProgress
        );
        assert_eq!(
            classify(&r, "POST", "/api/v1/users", "h", t + TimeDelta::minutes(6)),
            Outcome::Expired
        );
    }

    #[test]
    fn records_expire_after_a_day() {
        let t = Utc.with_ymd_and_hms(2026, 11, 23, 9, 0, 0).unwrap();
        assert_eq!(
            classify(
                &record(201, t),
                "POST",
                "/api/v1/users",
                "h",
                t + TimeDelta::hours(25)
            ),
            Outcome::Expired
        );
    }

    #[test]
    fn keys_are_printable_and_bounded() {
        assert!(is_valid_key("3f1c-retry-1"));
        assert!(!is_valid_key(""));
        assert!(!is_valid_key("short"));
        assert!(!is_valid_key("has space"));
        assert!(!is_valid_key(&"k".repeat(201)));
    }
}
