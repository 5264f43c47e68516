//! A record copy as CSV: one table a spreadsheet opens, a `section` column telling the
//! copy's header, the record's fields, its signatures, its audit entries (with the full
//! before and after) and the chains' verification apart. Times in UTC and in the
//! reader's zone, named.

use super::RecordCopy;
use crate::csv::row;

const COLUMNS: [&str; 12] = [
    "section",
    "side",
    "seq",
    "time_utc",
    "time_local",
    "who",
    "what",
    "reason",
    "value",
    "before",
    "after",
    "hash",
];

#[derive(Default)]
struct Line<'a> {
    section: &'a str,
    side: &'a str,
    seq: String,
    time_utc: String,
    time_local: String,
    who: &'a str,
    what: &'a str,
    reason: &'a str,
    value: String,
    before: &'a str,
    after: &'a str,
    hash: &'a str,
}

impl Line<'_> {
    fn csv(&self) -> String {
        row([
            self.section,
            self.side,
            &self.seq,
            &self.time_utc,
            &self.time_local,
            self.who,
            self.what,
            self.reason,
            &self.value,
            self.before,
            self.after,
            self.hash,
        ])
    }
}

pub fn render(copy: &RecordCopy) -> String {
    let mut out = row(COLUMNS);
    let header = |what: &'static str, value: String| Line {
        section: "copy",
        what,
        value,
        ..Line::default()
    };
    for line in [
        header("record", copy.heading.clone()),
        header("title", copy.title.clone()),
        header("program", copy.program.clone()),
        Line {
            time_utc: copy.generated_at.utc_text(),
            time_local: copy.generated_at.local.clone(),
            ..header("generated", copy.generated_for.clone())
        },
        header("time_zone", copy.zone.clone()),
    ] {
        out.push_str(&line.csv());
    }
    for (label, value) in &copy.fields {
        out.push_str(
            &Line {
                section: "field",
                what: label,
                value: value.clone(),
                ..Line::default()
            }
            .csv(),
        );
    }
    for s in &copy.signatures {
        out.push_str(
            &Line {
                section: "signature",
                seq: s.id.to_string(),
                time_utc: s.signed_at.utc_text(),
                time_local: s.signed_at.local.clone(),
                who: &s.printed_name,
                what: &s.meaning,
                reason: s.reason.as_deref().unwrap_or_default(),
                value: s.record_state.clone(),
                ..Line::default()
            }
            .csv(),
        );
    }
    for e in &copy.trail {
        let what = format!("{} {}", e.action, e.entity);
        out.push_str(
            &Line {
                section: "audit",
                side: e.side,
                seq: e.seq.to_string(),
                time_utc: e.at.utc_text(),
                time_local: e.at.local.clone(),
                who: &e.actor,
                what: &what,
                reason: e.reason.as_deref().unwrap_or_default(),
                value: e.changes.join("\n"),
                before: e.before.as_deref().unwrap_or_default(),
                after: e.after.as_deref().unwrap_or_default(),
                hash: &e.hash,
            }
            .csv(),
        );
    }
    for (side, result) in &copy.chains {
        out.push_str(
            &Line {
                section: "chain",
                side,
                what: "verification",
                value: result.clone(),
                ..Line::default()
            }
            .csv(),
        );
    }
    out
}
