//! The weekly status digest email, worded for one reader: what `entity::digest` gathered,
//! in the reader's zone, with links that open each record's page as them. The subject
//! says the week in one line (where the program stands and its worst fact); the first
//! block names what needs attention; the rest is the week in brief.

use chrono::{DateTime, TimeDelta, Utc};
use entity::deviation::Criticality;
use entity::digest::{DigestData, Hold};
use entity::escalation::EscalationStatus;
use entity::link_token::{Link, PageRecord};
use entity::outbox::Email;
use entity::overview::Standing;
use entity::{team_member, user};
use sea_orm::{ConnectionTrait, DbErr};
use serde::Serialize;

use crate::words::{self, count, duration, label_of};
use crate::{Reader, RenderError};

/// Overdue actions named in the attention block; the rest are counted.
const ACTIONS_IN_ATTENTION: usize = 5;

/// Why this digest was sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Occasion<'a> {
    /// The week's scheduled digest.
    Weekly,
    /// Sent now by a program manager (`by`), outside the schedule.
    AdHoc { by: &'a str },
}

/// One line of the attention block or of a list.
#[derive(Debug, Clone, Serialize)]
struct Line {
    /// "Critical deviation", "Escalation", "Late milestone", ….
    kind: String,
    text: String,
    url: Option<String>,
    detail: String,
    /// `critical`, `warning` or `info`: the colour of its mark.
    tone: &'static str,
}

#[derive(Debug, Clone, Serialize)]
struct ChangeView {
    at: String,
    who: String,
    what: String,
    reason: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
struct RecordView {
    record: String,
    url: Option<String>,
    lines: Vec<ChangeView>,
    earlier: usize,
}

fn held_for(h: &Hold, reader: &Reader, now: DateTime<Utc>) -> String {
    let length = duration(TimeDelta::minutes(h.minutes));
    match h.released_at {
        None => format!(
            "production on hold since {} ({length} so far)",
            reader.time(h.held_at)
        ),
        Some(r) if r <= now => {
            format!("production was held {length} (released {})", reader.time(r))
        }
        Some(_) => format!("production held {length}"),
    }
}

fn attention(data: &DigestData, reader: &Reader) -> Vec<Line> {
    let now = data.generated_at;
    let site = data.program.time_zone.as_str();
    let a = &data.attention;
    let mut out = Vec::new();
    let mut holds_named = Vec::new();
    for d in &a.deviations {
        let mut detail = format!(
            "detected {}; {}",
            reader.time_at_site(site, d.detected_at),
            label_of(&d.status).to_lowercase()
        );
        if let Some(h) = &d.hold {
            detail.push_str(&format!("; {}", held_for(h, reader, now)));
            holds_named.push(h.held_at);
        }
        out.push(Line {
            kind: format!("{} deviation", label_of(&d.criticality)),
            text: format!("{} {}", d.reference, d.title),
            url: Some(reader.page(PageRecord::Deviation, d.id)),
            detail,
            tone: if d.criticality == Criticality::Critical {
                "critical"
            } else {
                "warning"
            },
        });
    }
    for h in a.holds.iter().filter(|h| !holds_named.contains(&h.held_at)) {
        out.push(Line {
            kind: "Production".to_string(),
            text: if h.released_at.is_none() {
                "On hold".to_string()
            } else {
                "Was on hold".to_string()
            },
            url: Some(reader.page(PageRecord::Program, data.program.id)),
            detail: format!("{}: {}", held_for(h, reader, now), h.reason),
            tone: "critical",
        });
    }
    for e in &a.escalations {
        let detail = match (e.acknowledged_at, &e.acknowledged_by) {
            (Some(at), by) => format!(
                "acknowledged by {} after {}; {}",
                by.as_deref().unwrap_or("someone"),
                duration(at - e.opened_at),
                label_of(&e.status).to_lowercase()
            ),
            (None, _) if e.status == EscalationStatus::Resolved => {
                "resolved without an acknowledgement".to_string()
            }
            (None, _) => format!(
                "not acknowledged after {}; {}",
                duration(now - e.opened_at),
                label_of(&e.status).to_lowercase()
            ),
        };
        out.push(Line {
            kind: "Escalation".to_string(),
            text: e.title.clone(),
            url: Some(reader.page(PageRecord::Escalation, e.id)),
            detail: format!("opened {}; {detail}", reader.time(e.opened_at)),
            tone: if e.acknowledged_at.is_none() && e.status != EscalationStatus::Resolved {
                "critical"
            } else {
                "warning"
            },
        });
    }
    for m in &data.plan.late_milestones {
        let slip = (m.forecast_end - m.baseline_end).num_days();
        out.push(Line {
            kind: "Late milestone".to_string(),
            text: m.name.clone(),
            url: Some(reader.page(PageRecord::Milestone, m.milestone_id)),
            detail: if slip > 0 {
                format!(
                    "forecast {}, {} after its baseline {}",
                    m.forecast_end,
                    count(slip, "day"),
                    m.baseline_end
                )
            } else {
                format!(
                    "due {} and not finished",
                    m.baseline_end.min(m.forecast_end)
                )
            },
            tone: "critical",
        });
    }
    for g in &a.gates {
        out.push(Line {
            kind: "Gate ahead".to_string(),
            text: g.name.clone(),
            url: Some(reader.page(PageRecord::Milestone, g.milestone_id)),
            detail: format!(
                "forecast {} (baseline {}); checklist: {}",
                g.forecast_end,
                g.baseline_end,
                words::readiness(&g.readiness)
            ),
            tone: if g.readiness.failed > 0 {
                "critical"
            } else if g.readiness.pending > 0 {
                "warning"
            } else {
                "info"
            },
        });
    }
    for action in data.overdue_actions.iter().take(ACTIONS_IN_ATTENTION) {
        out.push(Line {
            kind: "Overdue action".to_string(),
            text: action.title.clone(),
            url: Some(reader.page(PageRecord::ActionItem, action.id)),
            detail: format!(
                "{} overdue (due {}); owner {}",
                count(action.days_overdue, "day"),
                action.due_date,
                action.owner
            ),
            tone: "warning",
        });
    }
    out
}

/// The worst fact of the week, for the subject line.
fn worst_fact(data: &DigestData) -> String {
    let a = &data.attention;
    if let Some(d) = a.deviations.first() {
        let held = d
            .hold
            .as_ref()
            .map(|h| {
                format!(
                    ", production held {}",
                    duration(TimeDelta::minutes(h.minutes))
                )
            })
            .unwrap_or_default();
        return format!(
            "{} deviation {} {}{held}",
            label_of(&d.criticality).to_lowercase(),
            d.reference,
            d.title
        );
    }
    if let Some(e) = a
        .escalations
        .iter()
        .find(|e| e.acknowledged_at.is_none() && e.status != EscalationStatus::Resolved)
    {
        return format!("escalation not acknowledged: {}", e.title);
    }
    let late = data.plan.late_milestones.len() as i64;
    if late > 0 {
        return format!("{} late", count(late, "milestone"));
    }
    if data.overdue_actions_total > 0 {
        return count(data.overdue_actions_total as i64, "overdue action");
    }
    "nothing needs attention".to_string()
}

fn standing(s: Standing) -> (&'static str, &'static str) {
    match s {
        Standing::ProductionOnHold => ("Production on hold", "critical"),
        Standing::Late => ("Late", "critical"),
        Standing::AtRisk => ("At risk", "warning"),
        Standing::OnTrack => ("On track", "ok"),
    }
}

/// One reader's digest email. `unsubscribe_url` is the reader's own (none in a preview
/// shown to someone else).
pub fn render(
    data: &DigestData,
    reader: &Reader,
    occasion: Occasion<'_>,
    unsubscribe_url: Option<&str>,
) -> Result<Email, RenderError> {
    #[derive(Serialize)]
    struct Context<'a> {
        program_name: &'a str,
        product_name: &'a str,
        iso_week: &'a str,
        ad_hoc_by: Option<&'a str>,
        reader_name: &'a str,
        prepared: String,
        since: String,
        standing: &'static str,
        standing_tone: &'static str,
        worst_fact: String,
        attention: Vec<Line>,
        more_overdue: usize,
        milestones: String,
        quality: String,
        open_deviations: Vec<Line>,
        changes: Vec<RecordView>,
        changes_total: String,
        unlisted_records: bool,
        overview_url: String,
        unsubscribe_url: Option<&'a str>,
        preview: bool,
    }
    let plan = &data.plan;
    let health = |h: &str| plan.by_health.get(h).copied().unwrap_or(0);
    let q = &data.quality;
    let open = |c: &str| q.open_by_criticality.get(c).copied().unwrap_or(0);
    let (standing, standing_tone) = standing(data.standing);
    let listed_changes: usize = data.changes.iter().map(|r| r.total).sum();
    let context = Context {
        program_name: &data.program.name,
        product_name: &data.program.product_name,
        iso_week: &data.iso_week,
        ad_hoc_by: match occasion {
            Occasion::Weekly => None,
            Occasion::AdHoc { by } => Some(by),
        },
        reader_name: &reader.name,
        prepared: reader.time(data.generated_at),
        since: reader.time(data.since),
        standing,
        standing_tone,
        worst_fact: worst_fact(data),
        attention: attention(data, reader),
        more_overdue: data
            .overdue_actions_total
            .saturating_sub(ACTIONS_IN_ATTENTION),
        milestones: format!(
            "{}: {} on track, {} at risk, {} late; {} completed{}.",
            count(plan.milestones_total as i64, "milestone"),
            health("on_track"),
            health("at_risk"),
            health("late"),
            plan.by_status.get("completed").copied().unwrap_or(0),
            if plan.finished_late > 0 {
                format!(" ({} late)", plan.finished_late)
            } else {
                String::new()
            }
        ),
        quality: format!(
            "Open deviations: {} critical, {} major, {} minor. CAPA: {} open, {} with an overdue effectiveness check. Overdue actions: {}.",
            open("critical"),
            open("major"),
            open("minor"),
            q.capas_open,
            q.capas_effectiveness_overdue,
            data.overdue_actions_total
        ),
        open_deviations: data
            .open_deviations
            .iter()
            .map(|d| Line {
                kind: format!("{} deviation", label_of(&d.criticality)),
                text: format!("{} {}", d.reference, d.title),
                url: Some(reader.page(PageRecord::Deviation, d.id)),
                detail: format!(
                    "{}, detected {}",
                    label_of(&d.status),
                    reader.time(d.detected_at)
                ),
                tone: if d.criticality == Criticality::Critical {
                    "critical"
                } else {
                    "warning"
                },
            })
            .collect(),
        changes: data
            .changes
            .iter()
            .map(|r| RecordView {
                record: r.record.clone(),
                url: r.page.map(|(record, id)| reader.page(record, id)),
                earlier: r.total - r.lines.len(),
                lines: r
                    .lines
                    .iter()
                    .map(|l| ChangeView {
                        at: reader.time(l.at),
                        who: l
                            .who
                            .and_then(|id| data.people.get(&id).cloned())
                            .unwrap_or_else(|| "the system".to_string()),
                        what: l.what.clone(),
                        reason: l.reason.clone(),
                    })
                    .collect(),
            })
            .collect(),
        changes_total: count(data.changes_total as i64, "change"),
        unlisted_records: listed_changes < data.changes_total,
        overview_url: reader.page(PageRecord::Program, data.program.id),
        unsubscribe_url,
        preview: reader.is_preview(),
    };
    crate::render("digest", &context)
}

/// Queues one digest per subscriber in the caller's transaction, each rendered for its
/// reader with their own links and unsubscribe link; `dedupe` names the digest
/// (`digest:{program}:{week}` weekly, a per-send key ad hoc) and the member id is added.
/// Returns how many were queued (an already queued digest is not queued again).
#[allow(clippy::too_many_arguments)]
pub async fn queue<C: ConnectionTrait>(
    conn: &C,
    data: &DigestData,
    subscribers: &[(team_member::Model, user::Model)],
    occasion: Occasion<'_>,
    dedupe: &str,
    key: &[u8],
    base_url: &str,
    now: DateTime<Utc>,
) -> Result<usize, DbErr> {
    let mut queued = 0;
    for (member, person) in subscribers {
        let unsubscribe = Link::Unsubscribe {
            member_id: member.id,
        }
        .url(key, base_url, None);
        let reader = Reader::personal(person, key, base_url, now);
        let email = render(data, &reader, occasion, Some(&unsubscribe))
            .map_err(|e| DbErr::Custom(e.to_string()))?;
        let key = format!("{dedupe}:{}", member.id);
        if crate::enqueue_to(
            conn,
            &reader,
            email,
            Some(unsubscribe),
            key,
            (now, base_url),
        )
        .await?
        {
            queued += 1;
        }
    }
    Ok(queued)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::reader::tests::user;
    use chrono::{TimeZone, Utc};
    use entity::deviation::DeviationStatus;
    use entity::digest::{
        ActionLine, Attention, ChangeLine, DeviationLine, ProgramInfo, RecordChanges, WeekDeviation,
    };
    use entity::overview::{MilestoneBrief, PlanSummary};
    use entity::program::ProductionStatus;
    use entity::quality_summary::QualitySummary;

    fn sample() -> DigestData {
        let at = |d, h| Utc.with_ymd_and_hms(2026, 11, d, h, 0, 0).unwrap();
        let mut quality = QualitySummary::default();
        quality.open_by_criticality.insert("critical".into(), 1);
        quality.open_by_criticality.insert("major".into(), 0);
        quality.open_by_criticality.insert("minor".into(), 2);
        let mut plan = PlanSummary {
            milestones_total: 3,
            ..PlanSummary::default()
        };
        for h in ["on_track", "at_risk", "late"] {
            plan.by_health.insert(h.into(), 1);
        }
        let d = |m, dd| chrono::NaiveDate::from_ymd_opt(2026, m, dd).unwrap();
        plan.late_milestones.push(MilestoneBrief {
            milestone_id: 5,
            name: "Engineering runs".into(),
            status: entity::milestone::MilestoneStatus::InProgress,
            baseline_end: d(11, 20),
            forecast_end: d(12, 4),
            schedule_health: None,
        });
        DigestData {
            program: ProgramInfo {
                id: 7,
                name: "Mab <b>X</b> & Co".into(),
                product_name: "mAb-1".into(),
                production_status: ProductionStatus::OnHold,
                time_zone: "Europe/Zurich".into(),
            },
            standing: Standing::ProductionOnHold,
            iso_week: "2026-W49".into(),
            generated_at: at(30, 6),
            since: at(23, 6),
            plan,
            quality,
            attention: Attention {
                deviations: vec![WeekDeviation {
                    id: 3,
                    reference: "DEV-2026-0003".into(),
                    title: "Filter <integrity> failure".into(),
                    criticality: Criticality::Critical,
                    status: DeviationStatus::Investigating,
                    detected_at: at(27, 13),
                    hold: Some(Hold {
                        held_at: at(27, 14),
                        released_at: None,
                        minutes: 3 * 24 * 60 - 8 * 60,
                        reason: "critical deviation #3".into(),
                    }),
                }],
                ..Attention::default()
            },
            open_deviations: vec![DeviationLine {
                id: 3,
                reference: "DEV-2026-0003".into(),
                title: "Filter <integrity> failure".into(),
                criticality: Criticality::Critical,
                status: DeviationStatus::Investigating,
                detected_at: at(27, 13),
            }],
            overdue_actions: vec![ActionLine {
                id: 4,
                title: "Send COA".into(),
                owner: "Ana".into(),
                due_date: d(11, 29),
                days_overdue: 1,
            }],
            overdue_actions_total: 1,
            changes: vec![RecordChanges {
                record: "Deviation #3 \u{201c}Filter\u{201d}".into(),
                page: Some((PageRecord::Deviation, 3)),
                lines: vec![ChangeLine {
                    at: at(27, 13),
                    who: Some(1),
                    what: "Reported".into(),
                    reason: None,
                }],
                total: 3,
                latest: at(27, 13),
            }],
            changes_total: 3,
            people: [(1, "Ana".to_string())].into(),
        }
    }

    #[test]
    fn the_subject_and_first_block_name_the_weeks_worst_fact() {
        let data = sample();
        let reader = Reader::preview(&user(1, "America/Los_Angeles"), "http://h/");
        let r = render(
            &data,
            &reader,
            Occasion::Weekly,
            Some("http://h/u?token=a.b"),
        )
        .unwrap();
        assert_eq!(
            r.subject,
            "Mab <b>X</b> & Co, week 2026-W49: Production on hold \u{2014} critical deviation DEV-2026-0003 Filter <integrity> failure, production held 2 days 16 hours"
        );
        let text = &r.text_body;
        let attention = text.find("NEEDS ATTENTION").unwrap();
        let deviation = text
            .find("Critical deviation: DEV-2026-0003 Filter <integrity> failure")
            .unwrap();
        let brief = text.find("THE WEEK IN BRIEF").unwrap();
        assert!(attention < deviation && deviation < brief, "{text}");
        assert!(
            text.contains(
                "production on hold since Fri 27 Nov 2026 06:00 PST (2 days 16 hours so far)"
            ),
            "reader's zone: {text}"
        );
        assert!(text.contains("detected Fri 27 Nov 2026 05:00 PST (14:00 CET at the site)"));
        assert!(text.contains("Late milestone: Engineering runs"));
        assert!(text.contains("14 days after its baseline 2026-11-20"));
        assert!(text.contains("1 day overdue (due 2026-11-29); owner Ana"));
        assert!(text.contains("3 milestones: 1 on track, 1 at risk, 1 late"));
        assert!(text.contains("Reported"));
        assert!(text.contains("and 2 earlier changes"));
        assert!(text.contains("http://h/deviations/3"));
        assert!(!text.contains("/api/v1/"), "never a JSON link: {text}");
        assert!(!text.contains("on_hold") && !text.contains("investigating)"));
        assert!(
            r.html_body
                .contains("Mab &lt;b&gt;X&lt;&#x2f;b&gt; &amp; Co")
        );
        assert!(!r.html_body.contains("<b>X</b>"));
        assert!(text.contains("Unsubscribe: http://h/u?token=a.b"));
        let ad_hoc = render(&data, &reader, Occasion::AdHoc { by: "Ana" }, None).unwrap();
        assert!(
            ad_hoc.subject.starts_with("[Sent now by Ana] "),
            "{}",
            ad_hoc.subject
        );
        assert!(!ad_hoc.text_body.contains("Unsubscribe"));
    }
}
