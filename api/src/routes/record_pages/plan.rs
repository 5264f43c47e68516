//! The pages of plan records: a milestone with its gate, an action item.

use entity::action_item::{self, ActionSource};
use entity::gate::{self, CheckResult};
use entity::link_token::PageRecord;
use entity::record_number::{RecordKind, reference_of};
use entity::{milestone, program};
use mail::record_page::{Fact, RecordPage, Row, Section};
use mail::words::{count, label_of};
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, QueryOrder};

use super::quality::{page_of, signature_fact};
use super::{Reading, names};
use crate::auth::find_scoped;
use crate::error::ApiResult;

fn date(d: chrono::NaiveDate) -> String {
    d.format("%a %-d %b %Y").to_string()
}

/// The tone of a schedule health.
pub fn health_tone(health: Option<entity::milestone_rules::ScheduleHealth>) -> &'static str {
    use entity::milestone_rules::ScheduleHealth as H;
    match health {
        Some(H::Late) => "critical",
        Some(H::AtRisk) => "warning",
        Some(H::OnTrack) => "ok",
        None => "neutral",
    }
}

/// A gate's checklist readiness in words: "3 of 4 checks passed, 1 failed".
pub fn readiness(items: &[gate::item::Model]) -> String {
    mail::words::readiness(&gate::Readiness::of(items))
}

pub async fn milestone(reading: &Reading<'_>, id: i64) -> ApiResult<RecordPage> {
    let m = find_scoped::<milestone::Entity, _>(reading.reads(), &reading.ctx, id).await?;
    let p = find_scoped::<program::Entity, _>(reading.reads(), &reading.ctx, m.program_id).await?;
    let today = p.today(reading.now);
    let health = m.health(today);
    let mut page = page_of(
        reading,
        format!("Milestone · {}", m.phase),
        m.name.clone(),
        &p,
    );
    page.status = label_of(&m.status);
    page.tone = health_tone(health);
    if let Some(h) = health {
        page.status_reason = Some(format!("Schedule: {}", label_of(&h).to_lowercase()));
    }
    if let Some(owner) = m.owner_user_id {
        let people = names(reading.reads(), [owner]).await?;
        page.facts.push(Fact::new(
            "Owner",
            people.get(&owner).cloned().unwrap_or_default(),
        ));
    }
    page.facts.push(Fact::new(
        "Baseline",
        format!("{} to {}", date(m.baseline_start), date(m.baseline_end)),
    ));
    page.facts.push(Fact::new(
        "Forecast",
        format!("{} to {}", date(m.forecast_start), date(m.forecast_end)),
    ));
    let slip = (m.actual_end.unwrap_or(m.forecast_end) - m.baseline_end).num_days();
    if slip != 0 {
        page.facts.push(Fact::new(
            "Against baseline",
            if slip > 0 {
                format!("{} later", count(slip, "day"))
            } else {
                format!("{} earlier", count(-slip, "day"))
            },
        ));
    }
    if let Some(start) = m.actual_start {
        page.facts.push(Fact::new(
            "Actual",
            format!(
                "{} to {}",
                date(start),
                m.actual_end.map_or("(under way)".to_string(), date)
            ),
        ));
    }
    let items = entity::workflow::gate::checklist(reading.reads(), m.id).await?;
    let deciders = names(
        reading.reads(),
        items.iter().filter_map(|i| i.decided_by_user_id),
    )
    .await?;
    let mut checklist = Section::new(
        "Gate checklist",
        "This milestone's gate has no checklist.",
        items
            .iter()
            .map(|i| Row {
                text: format!(
                    "{}{}: {}",
                    i.title,
                    if i.mandatory { "" } else { " (optional)" },
                    label_of(&i.result)
                ),
                href: None,
                meta: Some(
                    [
                        Some(label_of(&i.check_type)),
                        i.evidence.clone(),
                        i.decided_by_user_id
                            .and_then(|u| deciders.get(&u).cloned())
                            .map(|n| format!("by {n}")),
                    ]
                    .into_iter()
                    .flatten()
                    .collect::<Vec<_>>()
                    .join(" · "),
                ),
                tone: match i.result {
                    CheckResult::Fail => "critical",
                    CheckResult::Pending => "warning",
                    _ => "ok",
                },
            })
            .collect(),
    );
    if !items.is_empty() {
        checklist.intro = Some(format!("Readiness: {}.", readiness(&items)));
    }
    page.sections.push(checklist);
    let decisions = gate::decision::Entity::find()
        .filter(gate::decision::Column::MilestoneId.eq(m.id))
        .order_by_asc(gate::decision::Column::Id)
        .all(reading.reads())
        .await?;
    let mut rows = Vec::new();
    for d in &decisions {
        let signed = signature_fact(reading, "", Some(d.signature_id)).await?;
        rows.push(Row {
            text: format!("Round {}: {}", d.gate_round, label_of(&d.decision)),
            href: None,
            meta: Some(
                [d.notes.clone(), signed.map(|f| f.value)]
                    .into_iter()
                    .flatten()
                    .collect::<Vec<_>>()
                    .join(" · "),
            ),
            tone: if d.decision == gate::Decision::Go {
                "ok"
            } else {
                "critical"
            },
        });
    }
    page.sections
        .push(Section::new("Gate decisions", "No decision yet.", rows));
    Ok(page)
}

pub async fn action_item(reading: &Reading<'_>, id: i64) -> ApiResult<RecordPage> {
    let a = find_scoped::<action_item::Entity, _>(reading.reads(), &reading.ctx, id).await?;
    let p = find_scoped::<program::Entity, _>(reading.reads(), &reading.ctx, a.program_id).await?;
    let today = p.today(reading.now);
    let overdue = action_item::is_overdue(a.status, a.due_date, a.snoozed_until, today);
    let mut page = page_of(reading, "Action item".to_string(), a.title.clone(), &p);
    page.status = label_of(&a.status);
    page.tone = if overdue {
        "critical"
    } else if matches!(a.status, action_item::ActionStatus::Done) {
        "ok"
    } else {
        "neutral"
    };
    if overdue {
        page.status_reason = Some(format!(
            "{} overdue",
            count(action_item::days_overdue(a.due_date, today), "day")
        ));
    }
    let people = names(reading.reads(), [a.owner_user_id]).await?;
    page.facts.push(Fact::new(
        "Owner",
        people.get(&a.owner_user_id).cloned().unwrap_or_default(),
    ));
    page.facts.push(Fact::new("Due", date(a.due_date)));
    if let Some(d) = &a.description {
        page.facts.push(Fact::new("Details", d.clone()));
    }
    let numbered = RecordKind::of_action_source(a.source).zip(a.source_id);
    let source = match (a.source, a.source_id) {
        (_, Some(id)) if let Some((kind, _)) = numbered => {
            let reference = reference_of(reading.reads(), kind, id).await?;
            let noun = kind.noun();
            let noun = noun[..1].to_uppercase() + &noun[1..];
            Some((kind.page(), id, format!("{noun} {reference}")))
        }
        (ActionSource::GateItem, Some(item)) => gate::item::Entity::find_by_id(item)
            .one(reading.reads())
            .await?
            .map(|i| {
                (
                    PageRecord::Milestone,
                    i.milestone_id,
                    format!("Gate item: {}", i.title),
                )
            }),
        _ => None,
    };
    page.facts.push(match source {
        Some((record, id, text)) => Fact::linked("From", text, reading.link(record, id)),
        None => Fact::new("From", label_of(&a.source)),
    });
    if let Some(until) = a.snoozed_until {
        page.facts.push(Fact::new(
            "Snoozed until",
            format!(
                "{}{}",
                date(until),
                a.snooze_reason
                    .as_ref()
                    .map(|r| format!(": {r}"))
                    .unwrap_or_default()
            ),
        ));
    }
    if let Some(at) = a.completed_at {
        page.facts.push(Fact::new("Completed", reading.time(at)));
    }
    if let Some(note) = &a.completion_evidence {
        page.facts.push(Fact::new("Evidence", note.clone()));
    }
    if let Some(url) = &a.completion_evidence_url {
        page.facts
            .push(Fact::linked("Evidence link", url.clone(), url.clone()));
    }
    Ok(page)
}
