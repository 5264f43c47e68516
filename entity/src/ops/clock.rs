//! Time behind a trait so tests can drive it.

use chrono::{DateTime, DurationRound, TimeDelta, Utc};
use std::sync::{Arc, Mutex};

pub trait Clock: Send + Sync + 'static {
    fn now(&self) -> DateTime<Utc>;
}

/// The wall clock, truncated to microseconds: PostgreSQL keeps microseconds, so a value
/// read back equals the value written (the audit hash depends on that).
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        truncate_to_micros(Utc::now())
    }
}

/// A clock that only moves when told to.
#[derive(Debug, Clone)]
pub struct ManualClock(Arc<Mutex<DateTime<Utc>>>);

impl ManualClock {
    pub fn new(start: DateTime<Utc>) -> Self {
        Self(Arc::new(Mutex::new(truncate_to_micros(start))))
    }

    pub fn advance(&self, by: TimeDelta) {
        let mut now = self
            .0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        *now += by;
    }

    pub fn set(&self, to: DateTime<Utc>) {
        let mut now = self
            .0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        *now = truncate_to_micros(to);
    }
}

impl Clock for ManualClock {
    fn now(&self) -> DateTime<Utc> {
        *self
            .0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// The wall clock moved by a fixed offset: a real process (`cmo-api`, `cmo-worker`) run by
/// a test at the test's chosen instant, still advancing in real time. Only built through
/// [`test_clock`], which refuses unless the test-only variable is set.
#[derive(Debug, Clone, Copy)]
pub struct OffsetClock {
    offset: TimeDelta,
}

impl OffsetClock {
    /// A clock that reads `start` now and advances with the wall clock.
    pub fn starting_at(start: DateTime<Utc>) -> Self {
        Self {
            offset: start - Utc::now(),
        }
    }
}

impl Clock for OffsetClock {
    fn now(&self) -> DateTime<Utc> {
        truncate_to_micros(Utc::now() + self.offset)
    }
}

/// The environment variable that must be `1` before a process accepts a test clock.
pub const ALLOW_TEST_CLOCK_VAR: &str = "CMO_ALLOW_TEST_CLOCK";

/// The process clock: the wall clock, or (tests only) one that starts at `start`.
/// A start without `CMO_ALLOW_TEST_CLOCK=1` is refused: a production process must never
/// run on a shifted clock because of a stray flag.
pub fn test_clock(start: Option<DateTime<Utc>>, allowed: bool) -> Result<Arc<dyn Clock>, String> {
    match start {
        None => Ok(Arc::new(SystemClock)),
        Some(_) if !allowed => Err(format!(
            "--test-clock-start is for tests only: set {ALLOW_TEST_CLOCK_VAR}=1 to use it"
        )),
        Some(start) => Ok(Arc::new(OffsetClock::starting_at(start))),
    }
}

/// The clock of a binary: [`test_clock`] with this process's permission.
pub fn process_clock(start: Option<DateTime<Utc>>) -> Result<Arc<dyn Clock>, String> {
    test_clock(start, test_clock_allowed())
}

/// Whether the test-only variable allows a test clock in this process.
pub fn test_clock_allowed() -> bool {
    std::env::var(ALLOW_TEST_CLOCK_VAR).is_ok_and(|v| v == "1")
}

pub fn truncate_to_micros(t: DateTime<Utc>) -> DateTime<Utc> {
    t.duration_trunc(TimeDelta::microseconds(1)).unwrap_or(t)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn manual_clock_moves_only_when_told() {
        let start = Utc.with_ymd_and_hms(2026, 11, 23, 8, 0, 0).unwrap();
        let clock = ManualClock::new(start);
        assert_eq!(clock.now(), start);
        clock.advance(TimeDelta::minutes(15));
        assert_eq!(clock.now(), start + TimeDelta::minutes(15));
    }

    #[test]
    fn a_test_clock_is_refused_unless_allowed_and_then_starts_where_told() {
        let start = Utc.with_ymd_and_hms(2027, 3, 29, 7, 30, 0).unwrap();
        assert!(test_clock(Some(start), false).is_err());
        assert!(test_clock(None, false).is_ok());
        let clock = test_clock(Some(start), true).unwrap();
        let read = clock.now();
        assert!(
            read >= start && read - start < TimeDelta::seconds(5),
            "{read}"
        );
    }

    #[test]
    fn system_clock_has_no_sub_microsecond_part() {
        let now = SystemClock.now();
        assert_eq!(now.timestamp_subsec_nanos() % 1_000, 0);
    }
}
