//! How values read in emails and pages: enum values as words ("On hold", not
//! `on_hold`), counts with the right plural ("1 minute"), times in a named zone.

use chrono::{DateTime, TimeDelta, Utc};

/// A wire value (`awaiting_capa`) as words: "Awaiting CAPA".
pub fn label(wire: &str) -> String {
    let words: Vec<String> = wire
        .split(['_', '-'])
        .filter(|w| !w.is_empty())
        .enumerate()
        .map(|(i, w)| match w {
            "capa" | "cmo" | "sme" | "ppq" | "gmp" | "qa" | "api" | "mbr" | "coa" => {
                w.to_ascii_uppercase()
            }
            "go" if i == 0 => "Go".to_string(),
            _ if i == 0 => {
                let mut c = w.chars();
                c.next()
                    .map(|f| f.to_uppercase().collect::<String>() + c.as_str())
                    .unwrap_or_default()
            }
            _ => w.to_string(),
        })
        .collect();
    words.join(" ")
}

/// [`label`] of a serializable enum value.
pub fn label_of<T: serde::Serialize>(value: &T) -> String {
    label(&entity::enums::wire_name(value))
}

/// `n` and the noun, singular for one: "1 minute", "3 minutes", "0 deviations".
pub fn count(n: i64, singular: &str) -> String {
    if n == 1 {
        format!("1 {singular}")
    } else if let Some(stem) = singular.strip_suffix('y')
        && !stem.ends_with(['a', 'e', 'o', 'u'])
    {
        format!("{n} {stem}ies")
    } else {
        format!("{n} {singular}s")
    }
}

/// A duration in the two largest units that matter: "2 days 3 hours", "45 minutes",
/// "less than a minute".
pub fn duration(d: TimeDelta) -> String {
    let minutes = d.num_minutes().max(0);
    let (days, hours, mins) = (minutes / 1440, minutes / 60 % 24, minutes % 60);
    match (days, hours, mins) {
        (0, 0, 0) => "less than a minute".to_string(),
        (0, 0, m) => count(m, "minute"),
        (0, h, 0) => count(h, "hour"),
        (0, h, m) => format!("{} {}", count(h, "hour"), count(m, "minute")),
        (d, 0, _) => count(d, "day"),
        (d, h, _) => format!("{} {}", count(d, "day"), count(h, "hour")),
    }
}

/// A gate checklist's readiness: "3 of 4 checks passed or not applicable, 1 failed".
pub fn readiness(r: &entity::gate::Readiness) -> String {
    let mut out = format!(
        "{} of {} passed or not applicable",
        r.passed,
        count(r.checks as i64, "check")
    );
    if r.failed > 0 {
        out.push_str(&format!(", {} failed", r.failed));
    }
    if r.pending > 0 {
        out.push_str(&format!(", {} not decided", r.pending));
    }
    out
}

/// A time in zone `tz` (an IANA name) with the zone's abbreviation:
/// "Tue 1 Dec 2026 06:40 PST".
pub fn zoned(tz: &str, at: DateTime<Utc>) -> String {
    at.with_timezone(&entity::schedule::zone(tz))
        .format("%a %-d %b %Y %H:%M %Z")
        .to_string()
}

/// A time for a reader in `reader_tz`, with the site's local time beside it when the
/// site (`site_tz`) is elsewhere: "Mon 30 Nov 2026 21:40 PST (06:40 CET at the site)".
pub fn zoned_with_site(reader_tz: &str, site_tz: &str, at: DateTime<Utc>) -> String {
    let reader = zoned(reader_tz, at);
    let reader_zone = entity::schedule::zone(reader_tz);
    let site_zone = entity::schedule::zone(site_tz);
    let same_offset = at.with_timezone(&reader_zone).offset().to_string()
        == at.with_timezone(&site_zone).offset().to_string();
    if reader_tz == site_tz || same_offset {
        reader
    } else {
        let site = at.with_timezone(&site_zone);
        let day = if site.date_naive() == at.with_timezone(&reader_zone).date_naive() {
            site.format("%H:%M %Z").to_string()
        } else {
            site.format("%a %-d %b %H:%M %Z").to_string()
        };
        format!("{reader} ({day} at the site)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn wire_values_read_as_words() {
        assert_eq!(label("on_hold"), "On hold");
        assert_eq!(label("awaiting_capa"), "Awaiting CAPA");
        assert_eq!(label("gate_review"), "Gate review");
        assert_eq!(label("no_go"), "No go");
        assert_eq!(label("capa"), "CAPA");
    }

    #[test]
    fn counts_agree_with_their_noun() {
        assert_eq!(count(1, "minute"), "1 minute");
        assert_eq!(count(2, "minute"), "2 minutes");
        assert_eq!(count(0, "deviation"), "0 deviations");
        assert_eq!(count(3, "day"), "3 days");
        assert_eq!(count(2, "activity"), "2 activities");
    }

    #[test]
    fn durations_keep_the_two_largest_units() {
        assert_eq!(duration(TimeDelta::seconds(20)), "less than a minute");
        assert_eq!(duration(TimeDelta::minutes(1)), "1 minute");
        assert_eq!(duration(TimeDelta::minutes(125)), "2 hours 5 minutes");
        assert_eq!(duration(TimeDelta::hours(49)), "2 days 1 hour");
        assert_eq!(duration(TimeDelta::days(3)), "3 days");
    }

    #[test]
    fn times_read_in_the_readers_zone_with_the_site_beside() {
        let at = Utc.with_ymd_and_hms(2026, 12, 1, 5, 40, 0).unwrap();
        assert_eq!(
            zoned("America/Los_Angeles", at),
            "Mon 30 Nov 2026 21:40 PST"
        );
        assert_eq!(
            zoned_with_site("America/Los_Angeles", "Europe/Zurich", at),
            "Mon 30 Nov 2026 21:40 PST (Tue 1 Dec 06:40 CET at the site)"
        );
        assert_eq!(
            zoned_with_site("Europe/Berlin", "Europe/Zurich", at),
            "Tue 1 Dec 2026 06:40 CET"
        );
    }
}
