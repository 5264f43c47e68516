//! Failed sign-ins, for throttling per account and per client address. Kept apart from
//! the signing lockout (audit events `sign_failed`): failing to sign in as a quality
//! user must not stop that user from signing a night release.

use chrono::{DateTime, TimeDelta, Utc};
use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "sign_in_failures")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    /// As typed (lower-cased), whether or not an account has it.
    pub email: String,
    pub client_addr: String,
    pub occurred_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}

/// Failures counted over this window…
pub const WINDOW: TimeDelta = TimeDelta::minutes(15);
/// …allowed per account before its sign-in pauses until the oldest leaves the window…
pub const PER_ACCOUNT: usize = 5;
/// …and per client address (a guesser trying many accounts).
pub const PER_CLIENT: usize = 20;

/// How long sign-in stays throttled, given the failure instants in the window (oldest
/// first) and the limit; `None` when another attempt may be checked now.
pub fn throttled_for(
    failures: &[DateTime<Utc>],
    limit: usize,
    now: DateTime<Utc>,
) -> Option<TimeDelta> {
    if failures.len() < limit {
        return None;
    }
    // The attempt that frees a slot: the oldest of the last `limit` failures.
    let oldest = failures[failures.len() - limit];
    let free_at = oldest + WINDOW;
    (free_at > now).then(|| free_at - now)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn the_limit_th_failure_throttles_until_the_oldest_leaves_the_window() {
        let t0 = Utc.with_ymd_and_hms(2026, 12, 1, 9, 0, 0).unwrap();
        let fails: Vec<_> = (0..5).map(|i| t0 + TimeDelta::minutes(i)).collect();
        assert_eq!(
            throttled_for(&fails[..4], 5, t0 + TimeDelta::minutes(5)),
            None
        );
        assert_eq!(
            throttled_for(&fails, 5, t0 + TimeDelta::minutes(5)),
            Some(TimeDelta::minutes(10))
        );
        assert_eq!(throttled_for(&fails, 5, t0 + WINDOW), None);
    }
}
