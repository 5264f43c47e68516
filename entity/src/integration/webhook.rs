//! Webhook subscriptions: an organization's endpoint for domain events, and their
//! deliveries. The rules (acceptable URL, what a receiver's answer means, retry delays,
//! the signature) live here as pure functions with tests.

use chrono::{DateTime, TimeDelta, Utc};
use sea_orm::entity::prelude::*;
use sea_orm::{ActiveValue::NotSet, ActiveValue::Set, ConnectionTrait};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

pub use super::receiver_address::AddressPolicy;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "webhook_subscriptions")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    pub org_id: i64,
    pub url: String,
    /// JSON array of event types.
    pub event_types: String,
    /// HMAC key for `X-Cmo-Signature`; shown once at creation.
    pub secret: String,
    pub active: bool,
    pub consecutive_failures: i32,
    pub disabled_reason: Option<String>,
    pub disabled_at: Option<DateTimeUtc>,
    pub created_by_user_id: i64,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
    pub version: i32,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}

pub const MAX_URL_LEN: usize = 2000;

/// Checks a receiver URL: absolute `https://` (plain `http://` only to a loopback host
/// the policy allows, for development and tests), to no inner address (see
/// [`AddressPolicy`]), no credentials, no fragment, at most 2000 characters.
pub fn check_url(raw: &str, policy: AddressPolicy) -> Result<(), String> {
    if raw.len() > MAX_URL_LEN {
        return Err(format!("at most {MAX_URL_LEN} characters"));
    }
    let parsed = url::Url::parse(raw).map_err(|e| format!("not an absolute URL: {e}"))?;
    let host = parsed.host().ok_or("the URL has no host")?;
    policy.check_host(&host)?;
    let loopback = super::receiver_address::is_loopback(&host);
    match parsed.scheme() {
        "https" => {}
        "http" if loopback => {}
        "http" => return Err("https is required (plain http only to a loopback address)".into()),
        other => return Err(format!("{other}: only https (or http to loopback)")),
    }
    if !parsed.username().is_empty() || parsed.password().is_some() {
        return Err("no credentials in the URL: verify the X-Cmo-Signature instead".into());
    }
    if parsed.fragment().is_some() {
        return Err("no fragment (#…) in the URL".into());
    }
    Ok(())
}

/// PostgreSQL NOTIFY channel that wakes the workers' delivery loop when a delivery is
/// queued (SQLite workers rely on their fast tick).
pub const WAKE_CHANNEL: &str = "cmo_webhooks";

#[derive(
    Debug, Clone, Copy, PartialEq, Eq, EnumIter, DeriveActiveEnum, Serialize, Deserialize, ToSchema,
)]
#[sea_orm(rs_type = "String", db_type = "String(StringLen::N(16))")]
#[serde(rename_all = "snake_case")]
pub enum DeliveryStatus {
    /// Waiting for its (next) attempt.
    #[sea_orm(string_value = "pending")]
    Pending,
    /// Claimed by a worker, being sent.
    #[sea_orm(string_value = "delivering")]
    Delivering,
    /// The receiver answered 2xx.
    #[sea_orm(string_value = "delivered")]
    Delivered,
    /// Given up: a permanent refusal, 410, or retries exhausted.
    #[sea_orm(string_value = "failed")]
    Failed,
}

pub mod delivery {
    use sea_orm::entity::prelude::*;

    /// One event for one subscription; retried until delivered or failed.
    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "webhook_deliveries")]
    pub struct Model {
        #[sea_orm(primary_key)]
        pub id: i64,
        pub subscription_id: i64,
        pub org_id: i64,
        /// `domain_events.id`.
        pub event_id: i64,
        /// The event's cursor: `X-Cmo-Event-Id`, the same on every attempt.
        pub event_cursor: i64,
        pub event_type: String,
        pub status: super::DeliveryStatus,
        pub attempts: i32,
        pub next_attempt_at: DateTimeUtc,
        pub claimed_by: Option<String>,
        pub claimed_until: Option<DateTimeUtc>,
        pub last_status_code: Option<i32>,
        pub last_error: Option<String>,
        pub delivered_at: Option<DateTimeUtc>,
        pub created_at: DateTimeUtc,
        pub updated_at: DateTimeUtc,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

pub mod attempt {
    use sea_orm::entity::prelude::*;

    /// One HTTP attempt of a delivery (the delivery log).
    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "webhook_attempts")]
    pub struct Model {
        #[sea_orm(primary_key)]
        pub id: i64,
        pub delivery_id: i64,
        /// 1-based.
        pub attempt: i32,
        pub worker_id: String,
        pub started_at: DateTimeUtc,
        pub duration_ms: i32,
        pub status_code: Option<i32>,
        pub error: Option<String>,
        /// The first bytes of the receiver's answer.
        pub response_excerpt: Option<String>,
        /// `delivered`, `retry`, `failed`.
        pub outcome: String,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

/// The event types a subscription listens to (stored as a JSON array).
pub fn listens_to(sub: &Model, event_type: &str) -> bool {
    serde_json::from_str::<Vec<String>>(&sub.event_types)
        .is_ok_and(|types| types.iter().any(|t| t == event_type))
}

/// Queues a delivery of the event for every active subscription of `org_ids` that
/// listens to its type, in the caller's transaction (the one giving the event its
/// cursor). Returns how many were queued.
pub async fn fan_out<C: ConnectionTrait>(
    conn: &C,
    org_ids: &[i64],
    event_id: i64,
    event_cursor: i64,
    event_type: &str,
    now: DateTime<Utc>,
) -> Result<usize, DbErr> {
    fan_out_events(
        conn,
        &[EventToDeliver {
            org_ids: org_ids.to_vec(),
            event_id,
            event_cursor,
            event_type: event_type.to_string(),
            at: now,
        }],
    )
    .await
}

/// An event whose deliveries are to be queued: who reads it, its id, cursor and type,
/// and when it happened (its deliveries are due from then, in domain time).
#[derive(Debug, Clone)]
pub struct EventToDeliver {
    pub org_ids: Vec<i64>,
    pub event_id: i64,
    pub event_cursor: i64,
    pub event_type: String,
    pub at: DateTime<Utc>,
}

/// [`fan_out`] for several events at once: one read of the subscriptions, one insert.
pub async fn fan_out_events<C: ConnectionTrait>(
    conn: &C,
    events: &[EventToDeliver],
) -> Result<usize, DbErr> {
    let mut orgs: Vec<i64> = events
        .iter()
        .flat_map(|e| e.org_ids.iter().copied())
        .collect();
    orgs.sort_unstable();
    orgs.dedup();
    if orgs.is_empty() {
        return Ok(0);
    }
    let subs = Entity::find()
        .filter(Column::OrgId.is_in(orgs))
        .filter(Column::Active.eq(true))
        .all(conn)
        .await?;
    let rows: Vec<delivery::ActiveModel> = events
        .iter()
        .flat_map(|e| {
            subs.iter()
                // A subscription gets the events from its creation on, also when an
                // event is sequenced (PostgreSQL) after the subscription was made.
                .filter(|s| {
                    e.org_ids.contains(&s.org_id)
                        && s.created_at <= e.at
                        && listens_to(s, &e.event_type)
                })
                .map(|s| delivery::ActiveModel {
                    id: NotSet,
                    subscription_id: Set(s.id),
                    org_id: Set(s.org_id),
                    event_id: Set(e.event_id),
                    event_cursor: Set(e.event_cursor),
                    event_type: Set(e.event_type.clone()),
                    status: Set(DeliveryStatus::Pending),
                    attempts: Set(0),
                    next_attempt_at: Set(e.at),
                    claimed_by: Set(None),
                    claimed_until: Set(None),
                    last_status_code: Set(None),
                    last_error: Set(None),
                    delivered_at: Set(None),
                    created_at: Set(e.at),
                    updated_at: Set(e.at),
                })
        })
        .collect();
    let queued = rows.len();
    // Bounded statements: PostgreSQL takes at most 65,535 bind parameters (16 a row).
    for chunk in rows.chunks(2_000) {
        delivery::Entity::insert_many(chunk.to_vec())
            .exec(conn)
            .await?;
    }
    if queued > 0 {
        crate::wake::at_commit(conn, WAKE_CHANNEL).await?;
    }
    Ok(queued)
}

/// A new subscription's secret in the Standard Webhooks form: `whsec_` and the base64 of 32
/// random bytes, the key the reference libraries take as is.
pub fn new_secret() -> String {
    use base64::Engine;
    format!(
        "whsec_{}",
        base64::engine::general_purpose::STANDARD.encode(rand::random::<[u8; 32]>())
    )
}

/// `webhook-signature` of the Standard Webhooks specification
/// (<https://www.standardwebhooks.com/>): `v1,` and the base64 HMAC-SHA256 of
/// `"{webhook-id}.{webhook-timestamp}.{body}"`, keyed with the base64-decoded part of the
/// secret after `whsec_`. Secrets issued before this form (`whsec_` and 64 hex digits) decode
/// too (hex digits are base64 characters), so they work unchanged with the published
/// verifiers.
pub fn standard_signature(secret: &str, webhook_id: &str, timestamp: i64, body: &[u8]) -> String {
    use base64::Engine;
    use hmac::{Hmac, KeyInit, Mac};
    let encoded = secret.strip_prefix("whsec_").unwrap_or(secret);
    // Every secret this installation issued decodes; raw bytes would be what a verifier
    // given a non-base64 secret fails on anyway.
    let key = base64::engine::general_purpose::STANDARD
        .decode(encoded)
        .unwrap_or_else(|_| encoded.as_bytes().to_vec());
    let mut mac = match <Hmac<sha2::Sha256> as KeyInit>::new_from_slice(&key) {
        Ok(m) => m,
        // HMAC takes keys of any length; this arm cannot be reached.
        Err(_) => return String::new(),
    };
    mac.update(webhook_id.as_bytes());
    mac.update(b".");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    format!(
        "v1,{}",
        base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
    )
}

/// `X-Cmo-Signature` (deprecated for `webhook-signature`, sent for one more release):
/// `sha256=` and the hex HMAC-SHA256, keyed with the subscription's whole secret string,
/// of `"{timestamp}.{body}"` (`timestamp` = `X-Cmo-Timestamp`, Unix seconds).
pub fn signature(secret: &str, timestamp: i64, body: &[u8]) -> String {
    use hmac::{Hmac, KeyInit, Mac};
    let mut mac = match <Hmac<sha2::Sha256> as KeyInit>::new_from_slice(secret.as_bytes()) {
        Ok(m) => m,
        // HMAC takes keys of any length; this arm cannot be reached.
        Err(_) => return String::new(),
    };
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

/// What came back from one attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Response {
    /// An HTTP status, with `Retry-After` in seconds when the receiver sent one.
    Status { code: u16, retry_after: Option<u64> },
    /// No HTTP answer: connection refused, TLS failure, timeout.
    NoAnswer,
}

/// What to do with a delivery after an attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Delivered,
    /// Try again after this delay.
    Retry(TimeDelta),
    /// Give up on this delivery.
    Failed,
    /// 410 Gone: give up and disable the subscription (the receiver says it is gone).
    Gone,
}

/// Tunables of the retry policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Attempts before a delivery is given up.
    pub max_attempts: i32,
    /// Delay after the first failed attempt; each later one is 4× the previous.
    pub base: TimeDelta,
    /// Longest delay between attempts.
    pub cap: TimeDelta,
    /// Consecutive failed attempts (across deliveries) that disable a subscription.
    pub disable_after: i32,
}

impl Default for RetryPolicy {
    /// 30 s, 2 min, 8 min, 32 min, ~2 h, then every 6 h: ten attempts over ~1.5 days.
    fn default() -> Self {
        Self {
            max_attempts: 10,
            base: TimeDelta::seconds(30),
            cap: TimeDelta::hours(6),
            disable_after: 20,
        }
    }
}

/// The longest `Retry-After` honoured (a receiver cannot park deliveries for days).
pub const MAX_RETRY_AFTER: TimeDelta = TimeDelta::hours(1);

impl RetryPolicy {
    /// Delay after failed attempt number `attempt` (1-based), with up to +20 % jitter
    /// (`jitter` in 0..=1) so retries to a recovering receiver spread out.
    pub fn backoff(&self, attempt: i32, jitter: f64) -> TimeDelta {
        let exp = attempt.clamp(1, 16) - 1;
        let base_ms = self.base.num_milliseconds().max(1);
        let ms = base_ms
            .saturating_mul(4_i64.saturating_pow(exp as u32))
            .min(self.cap.num_milliseconds().max(base_ms));
        TimeDelta::milliseconds(ms + (ms as f64 * 0.2 * jitter.clamp(0.0, 1.0)) as i64)
    }

    /// Retry on 5xx, 408, 429 and no answer; give up on other 1xx/3xx/4xx (redirects
    /// are not followed: the URL is the contract); 410 also disables the subscription.
    /// After `max_attempts`, every failure is final.
    pub fn verdict(&self, response: &Response, attempt: i32, jitter: f64) -> Verdict {
        let retryable = match response {
            Response::Status { code, .. } if (200..300).contains(code) => {
                return Verdict::Delivered;
            }
            Response::Status { code: 410, .. } => return Verdict::Gone,
            Response::Status { code, .. } => *code >= 500 || *code == 408 || *code == 429,
            Response::NoAnswer => true,
        };
        if !retryable || attempt >= self.max_attempts {
            return Verdict::Failed;
        }
        let mut delay = self.backoff(attempt, jitter);
        if let Response::Status {
            retry_after: Some(secs),
            ..
        } = response
        {
            let asked = TimeDelta::seconds(i64::try_from(*secs).unwrap_or(i64::MAX / 2_000));
            delay = delay.max(asked.min(MAX_RETRY_AFTER));
        }
        Verdict::Retry(delay)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(code: u16) -> Response {
        Response::Status {
            code,
            retry_after: None,
        }
    }

    #[test]
    fn answers_map_to_deliver_retry_fail_or_gone() {
        let p = RetryPolicy::default();
        assert_eq!(p.verdict(&status(200), 1, 0.0), Verdict::Delivered);
        assert_eq!(p.verdict(&status(204), 1, 0.0), Verdict::Delivered);
        assert_eq!(
            p.verdict(&status(500), 1, 0.0),
            Verdict::Retry(TimeDelta::seconds(30))
        );
        assert_eq!(
            p.verdict(&status(503), 2, 0.0),
            Verdict::Retry(TimeDelta::seconds(120))
        );
        assert_eq!(
            p.verdict(&Response::NoAnswer, 3, 0.0),
            Verdict::Retry(TimeDelta::seconds(480))
        );
        assert!(matches!(p.verdict(&status(429), 1, 0.0), Verdict::Retry(_)));
        assert!(matches!(p.verdict(&status(408), 1, 0.0), Verdict::Retry(_)));
        assert_eq!(p.verdict(&status(400), 1, 0.0), Verdict::Failed);
        assert_eq!(p.verdict(&status(404), 1, 0.0), Verdict::Failed);
        assert_eq!(p.verdict(&status(301), 1, 0.0), Verdict::Failed);
        assert_eq!(p.verdict(&status(410), 1, 0.0), Verdict::Gone);
        // The last attempt's failure is final.
        assert_eq!(p.verdict(&status(500), 10, 0.0), Verdict::Failed);
    }

    #[test]
    fn standard_signatures_match_the_specification_and_old_secrets_still_verify() {
        // The specification's own example (the reference libraries' test vector).
        assert_eq!(
            standard_signature(
                "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
                "msg_p5jXN8AQM9LWM0D4loKWxJek",
                1614265330,
                br#"{"test": 2432232314}"#
            ),
            "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
        );
        // A secret of the previous form (whsec_ and 64 hex digits), as the Python reference
        // library signs with it.
        let old = format!("whsec_{}", "ab".repeat(32));
        assert_eq!(
            standard_signature(&old, "1042", 1700000000, b"{}"),
            "v1,SrYsZ5kiLWUdf2s2IBqglz6FmS9IClwHCDN3ZTvw+Ao="
        );
        let new = new_secret();
        assert!(new.starts_with("whsec_") && new.len() == 6 + 44, "{new}");
    }

    #[test]
    fn retry_after_is_honoured_up_to_an_hour() {
        let p = RetryPolicy::default();
        let asked = |secs| Response::Status {
            code: 429,
            retry_after: Some(secs),
        };
        assert_eq!(
            p.verdict(&asked(600), 1, 0.0),
            Verdict::Retry(TimeDelta::seconds(600))
        );
        assert_eq!(
            p.verdict(&asked(86_400), 1, 0.0),
            Verdict::Retry(TimeDelta::hours(1))
        );
        // Never sooner than the backoff.
        assert_eq!(
            p.verdict(&asked(1), 1, 0.0),
            Verdict::Retry(TimeDelta::seconds(30))
        );
    }

    #[test]
    fn backoff_grows_four_fold_to_the_cap_with_bounded_jitter() {
        let p = RetryPolicy::default();
        assert_eq!(p.backoff(1, 0.0), TimeDelta::seconds(30));
        assert_eq!(p.backoff(4, 0.0), TimeDelta::seconds(1920));
        assert_eq!(p.backoff(9, 0.0), TimeDelta::hours(6));
        assert_eq!(p.backoff(1, 1.0), TimeDelta::seconds(36));
        let total: i64 = (1..10).map(|a| p.backoff(a, 0.0).num_seconds()).sum();
        assert!(total > 24 * 3600 && total < 48 * 3600, "{total}");
    }

    #[test]
    fn signature_is_hmac_sha256_of_timestamp_dot_body() {
        // printf '1700000000.{}' | openssl dgst -sha256 -hmac k
        assert_eq!(
            signature("k", 1_700_000_000, b"{}"),
            "sha256=c6ef4734033cee2367414a0939385eca0397754aa7a59716da7463a9298b5146"
        );
        assert_ne!(
            signature("k", 1_700_000_001, b"{}"),
            signature("k", 1_700_000_000, b"{}")
        );
        assert_ne!(
            signature("k2", 1_700_000_000, b"{}"),
            signature("k", 1_700_000_000, b"{}")
        );
    }

    #[test]
    fn receivers_must_be_https_except_on_loopback() {
        let check = |raw: &str| check_url(raw, AddressPolicy::LOOPBACK_ALLOWED);
        assert!(check("https://erp.example.com/hooks/cmo").is_ok());
        assert!(check("http://127.0.0.1:9000/hook").is_ok());
        assert!(check("http://[::1]:9000/hook").is_ok());
        assert!(check("http://localhost/hook").is_ok());
        assert!(check("http://erp.example.com/hook").is_err());
        assert!(check("ftp://erp.example.com/hook").is_err());
        assert!(check("https://user:pw@erp.example.com/").is_err());
        assert!(check("https://erp.example.com/#x").is_err());
        assert!(check("/relative").is_err());
        assert!(check(&format!("https://e.com/{}", "a".repeat(2000))).is_err());
        assert!(check("https://10.1.2.3/").is_err(), "never inner addresses");
        // Without the setting, loopback is refused in every spelling.
        let strict = |raw: &str| check_url(raw, AddressPolicy::default());
        for raw in [
            "http://127.0.0.1:9000/hook",
            "http://2130706433/",
            "http://127.1/",
            "https://localhost/",
        ] {
            assert!(strict(raw).is_err(), "{raw}");
        }
        assert!(strict("https://erp.example.com/hooks/cmo").is_ok());
    }
}
