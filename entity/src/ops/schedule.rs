//! Fire times of per-program schedules. tokio-cron-scheduler is only the worker's local
//! tick; what is due is computed here, per occurrence, in the program's time zone with
//! chrono-tz, so "Monday 07:00 Europe/Berlin" stays 07:00 local across DST changes
//! (a `_tz` job of the scheduler freezes the UTC offset and drifts by an hour).

use chrono::{DateTime, SubsecRound, TimeDelta, Utc};
use chrono_tz::Tz;
pub use croner::Cron;
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

/// A time as people read it in emails and pages: in the given zone, e.g.
/// `Mon 30 Nov 2026 07:00`.
pub fn local_time(tz: Tz, at: DateTime<Utc>) -> String {
    at.with_timezone(&tz)
        .format("%a %d %b %Y %H:%M")
        .to_string()
}

/// The latest occurrence of `cron` in `tz` at or before `now`, if it is at most
/// `catch_up` old: a tick missed while no worker ran is still run within that window,
/// an older one is skipped (a digest three days late helps nobody).
///
/// The occurrence is whole seconds: croner carries the sub-second part of `now` into
/// its answer, and an occurrence is a claim key that every worker must compute alike.
pub fn due_occurrence(
    cron: &Cron,
    tz: Tz,
    now: DateTime<Utc>,
    catch_up: TimeDelta,
) -> Option<DateTime<Utc>> {
    let local = now.with_timezone(&tz);
    let previous = cron.find_previous_occurrence(&local, true).ok()?;
    let previous = previous.with_timezone(&Utc).trunc_subsecs(0);
    (now - previous <= catch_up).then_some(previous)
}

/// The catch-up window a worker actually uses: the configured one, but never shorter
/// than the local tick's longest gap. The tick fires just after an occurrence (never on
/// its exact instant), so a window of 0 ("never catch up") would otherwise never send.
pub fn effective_catch_up(configured: TimeDelta, tick: &Cron) -> TimeDelta {
    configured.max(longest_gap(tick))
}

/// The longest time between consecutive occurrences of `cron` over a week (UTC), so an
/// irregular tick ("0 0,5,30 * * * *") gets its widest gap.
fn longest_gap(cron: &Cron) -> TimeDelta {
    let Some(mut at) = DateTime::from_timestamp(0, 0) else {
        return TimeDelta::zero();
    };
    let end = at + TimeDelta::weeks(1);
    let mut widest = TimeDelta::zero();
    // Bounded: a second-level tick has 604,800 occurrences a week; stop early once the
    // gap pattern is clear.
    for _ in 0..10_000 {
        let Ok(next) = cron.find_next_occurrence(&at, false) else {
            break;
        };
        widest = widest.max(next - at);
        if next > end {
            break;
        }
        at = next;
    }
    widest
}

/// The first occurrence strictly after `after`.
pub fn next_occurrence(cron: &Cron, tz: Tz, after: DateTime<Utc>) -> Option<DateTime<Utc>> {
    cron.find_next_occurrence(&after.with_timezone(&tz), false)
        .ok()
        .map(|t| t.with_timezone(&Utc).trunc_subsecs(0))
}

/// The occurrence before `occurrence` (the previous week's digest, say).
pub fn previous_occurrence(
    cron: &Cron,
    tz: Tz,
    occurrence: DateTime<Utc>,
) -> Option<DateTime<Utc>> {
    cron.find_previous_occurrence(&occurrence.with_timezone(&tz), false)
        .ok()
        .map(|t| t.with_timezone(&Utc).trunc_subsecs(0))
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
    fn an_occurrence_is_whole_seconds_whatever_the_tick_moment() {
        let cron = parse("0 0 8 * * Mon-Fri").unwrap();
        let ny = zone("America/New_York");
        let tick = utc(2026, 11, 30, 13, 0) + TimeDelta::milliseconds(250);
        assert_eq!(
            due_occurrence(&cron, ny, tick, TimeDelta::minutes(1)),
            Some(utc(2026, 11, 30, 13, 0))
        );
        let later = tick + TimeDelta::microseconds(31_337);
        assert_eq!(
            due_occurrence(&cron, ny, later, TimeDelta::minutes(1)),
            due_occurrence(&cron, ny, tick, TimeDelta::minutes(1))
        );
    }

    #[test]
    fn catch_up_zero_still_sends_on_the_tick_after_the_occurrence() {
        let cron = parse("0 0 8 * * Mon-Fri").unwrap();
        let minute_tick = parse("0 * * * * *").unwrap();
        let window = effective_catch_up(TimeDelta::zero(), &minute_tick);
        assert_eq!(window, TimeDelta::minutes(1));
        let ny = zone("America/New_York");
        // The tick runs 250 ms after 08:00:00 local: sent.
        let tick = utc(2026, 11, 30, 13, 0) + TimeDelta::milliseconds(250);
        assert_eq!(
            due_occurrence(&cron, ny, tick, window),
            Some(utc(2026, 11, 30, 13, 0))
        );
        // The next ticks are past the window: a missed occurrence is not caught up.
        assert_eq!(
            due_occurrence(&cron, ny, tick + TimeDelta::minutes(1), window),
            None
        );
        // A configured window wider than the tick is kept; irregular ticks get their
        // widest gap.
        assert_eq!(
            effective_catch_up(TimeDelta::hours(6), &minute_tick),
            TimeDelta::hours(6)
        );
        let irregular = parse("0 0,5 * * * *").unwrap();
        assert_eq!(
            effective_catch_up(TimeDelta::zero(), &irregular),
            TimeDelta::minutes(55)
        );
    }

    #[test]
    fn custom_times_in_the_daylight_saving_gap_and_overlap_fire_once() {
        // 02:30 local does not exist on 28 March 2027 in Zurich (02:00 -> 03:00) and
        // happens twice on 31 October 2027 (03:00 -> 02:00).
        let cron = parse("0 30 2 * * *").unwrap();
        let zurich = zone("Europe/Zurich");
        let window = TimeDelta::hours(1);
        let spring: Vec<_> = (0..24 * 60)
            .filter_map(|m| {
                due_occurrence(
                    &cron,
                    zurich,
                    utc(2027, 3, 27, 22, 0) + TimeDelta::minutes(m),
                    window,
                )
            })
            .collect::<std::collections::BTreeSet<_>>()
            .into_iter()
            .collect();
        assert!(spring.len() <= 1, "spring-forward day: {spring:?}");
        let autumn: std::collections::BTreeSet<_> = (0..24 * 60)
            .filter_map(|m| {
                due_occurrence(
                    &cron,
                    zurich,
                    utc(2027, 10, 30, 22, 0) + TimeDelta::minutes(m),
                    window,
                )
            })
            .collect();
        assert_eq!(autumn.len(), 1, "fall-back day: {autumn:?}");
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
