//! Which tokens this process has recorded as used lately, so that a burst of requests
//! with one token writes its `last_used_at` once per granularity, not once per request.

use chrono::{DateTime, TimeDelta, Utc};

/// Token activity is recorded at most this often, to keep reads from turning into writes.
pub(crate) const LAST_USED_GRANULARITY: TimeDelta = TimeDelta::seconds(60);

/// When this process last set off recording each token's use: one update per token and
/// granularity, however many requests arrive meanwhile.
#[derive(Debug, Default)]
pub struct TokenUse(std::sync::Mutex<std::collections::HashMap<i64, DateTime<Utc>>>);

impl TokenUse {
    /// Whether to record `token`'s use at `now` (and, if so, noted as recorded).
    pub(crate) fn start(&self, token: i64, now: DateTime<Utc>) -> bool {
        let Ok(mut recorded) = self.0.lock() else {
            return false;
        };
        if recorded
            .get(&token)
            .is_some_and(|&at| now - at < LAST_USED_GRANULARITY)
        {
            return false;
        }
        // Bounded: tokens not used within the granularity are forgotten.
        if recorded.len() >= 10_000 {
            recorded.retain(|_, at| now - *at < LAST_USED_GRANULARITY);
        }
        recorded.insert(token, now);
        true
    }
}
