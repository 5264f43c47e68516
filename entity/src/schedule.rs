//! Fire times of per-program schedules. tokio-cron-scheduler is only the worker's local
//! tick; what is due is computed here, per occurrence, in the program's time zone with
//! chrono-tz, so "Monday 07:00 Europe/Berlin" stays 07:00 local across DST changes
//! (a `_tz` job of the scheduler freezes the UTC offset and drifts by an hour).

use chrono::{DateTime, TimeDelta, Utc};
use chrono_tz::Tz;
use croner::Cron;
use croner::parser::{CronParser, Seconds};

/// Parses a 6-field cron expression (with seconds), e.g. `0 0 7 * * Mon`.
pub fn parse(expr: &str) -> Result<Cron, String> {
    CronParser::builder()
        .seconds(Seconds::Required)
        .build()
        .parse(expr)
        .map_err(|e| e.to_string())
}

/// The time zone named `name`, or UTC for an unknown name (names are validated on input).
pub fn zone(name: &str) -> Tz {
    name.parse().unwrap_or(chrono_tz::UTC)
}

/// The latest occurrence of `cron` in `tz` at or before `now`, if it is at most
/// `catch_up` old: a tick missed while no worker ran is still run within that window,
/// an older one is skipped (a digest three days late helps nobody).
pub fn due_occurrence(
    cron: &Cron,
    tz: Tz,
    now: DateTime<Utc>,
    catch_up: TimeDelta,
) -> Option<DateTime<Utc>> {
    let local = now.with_timezone(&tz);
    let previous = cron.find_previous_occurrence(&local, true).ok()?;
    let previous = previous.with_timezone(&Utc);
    (now - previous <= catch_up).then_some(previous)
}

/// The first occurrence strictly after `after`.
pub fn next_occurrence(cron: &Cron, tz: Tz, after: DateTime<Utc>) -> Option<DateTime<Utc>> {
    cron.find_next_occurrence(&after.with_timezone(&tz), false)
        .ok()
        .map(|t| t.with_timezone(&Utc))
}

/// The occurrence before `occurrence` (the previous week's digest, say).
pub fn previous_occurrence(
    cron: &Cron,
    tz: Tz,
    occurrence: DateTime<Utc>,
) -> Option<DateTime<Utc>> {
    cron.find_previous_occurrence(&occurrence.with_timezone(&tz), false)
        .ok()
        .map(|t| t.with_timezone(&Utc))
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn utc(y: i32, mo: u32, d: u32, h: u32, mi: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(y, mo, d, h, mi, 0).unwrap()
    }

    #[test]
    fn seconds_are_required_and_errors_are_readable() {
        assert!(parse("0 0 7 * * Mon").is_ok());
        assert!(parse("0 7 * * Mon").is_err());
        assert!(parse("0 0 25 * * *").is_err());
    }

    #[test]
    fn monday_seven_local_follows_daylight_saving_time() {
        let cron = parse("0 0 7 * * Mon").unwrap();
        let berlin = zone("Europe/Berlin");
        let day = TimeDelta::days(1);
        // Winter (UTC+1): 06:00 UTC. Summer (UTC+2, from 29 March 2026): 05:00 UTC.
        assert_eq!(
            due_occurrence(&cron, berlin, utc(2026, 3, 23, 6, 30), day),
            Some(utc(2026, 3, 23, 6, 0))
        );
        assert_eq!(
            due_occurrence(&cron, berlin, utc(2026, 3, 30, 5, 30), day),
            Some(utc(2026, 3, 30, 5, 0))
        );
        // Before this week's fire time, last week's occurrence is outside the window.
        assert_eq!(
            due_occurrence(&cron, berlin, utc(2026, 3, 30, 4, 59), day),
            None
        );
        assert_eq!(
            previous_occurrence(&cron, berlin, utc(2026, 3, 30, 5, 0)),
            Some(utc(2026, 3, 23, 6, 0))
        );
        assert_eq!(
            next_occurrence(&cron, berlin, utc(2026, 3, 23, 6, 0)),
            Some(utc(2026, 3, 30, 5, 0))
        );
    }

    #[test]
    fn a_missed_tick_is_caught_up_only_inside_the_window() {
        let cron = parse("0 0 8 * * Mon-Fri").unwrap();
        let ny = zone("America/New_York");
        // Monday 30 November 2026, 08:00 EST = 13:00 UTC.
        let window = TimeDelta::hours(6);
        assert_eq!(
            due_occurrence(&cron, ny, utc(2026, 11, 30, 18, 59), window),
            Some(utc(2026, 11, 30, 13, 0))
        );
        assert_eq!(
            due_occurrence(&cron, ny, utc(2026, 11, 30, 19, 1), window),
            None
        );
        // Saturday: Friday's tick is long past.
        assert_eq!(
            due_occurrence(&cron, ny, utc(2026, 12, 5, 14, 0), window),
            None
        );
    }
}
