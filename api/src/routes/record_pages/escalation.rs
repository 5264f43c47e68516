//! The page of an escalation: what it is about, who was paged when, who acknowledged,
//! re-opens, and the call tree as it stands.

use entity::link_token::PageRecord;
use entity::record_number::{RecordKind, reference_of};
use entity::{escalation, escalation_policy, program};
use mail::record_page::{Fact, RecordPage, Row, Section};
use mail::words::{duration, label, label_of};
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, QueryOrder};
use serde_json::Value;

use super::quality::page_of;
use super::{Reading, names};
use crate::auth::find_scoped;
use crate::error::ApiResult;

/// One entry of the escalation's log in words.
fn timeline_row(
    reading: &Reading<'_>,
    event: &escalation::event::Model,
    who: Option<&String>,
) -> Row {
    let detail: Value = serde_json::from_str(&event.detail).unwrap_or(Value::Null);
    let text_of = |k: &str| detail[k].as_str().unwrap_or_default().to_string();
    let tier = || {
        event
            .tier_index
            .map(|t| format!("tier {} ({})", t + 1, text_of("tier")))
            .unwrap_or_default()
    };
    let (text, tone) = match event.kind.as_str() {
        "opened" => (format!("Opened: {}", text_of("reason")), "critical"),
        "paged" => {
            let to: Vec<&str> = detail["recipients"]
                .as_array()
                .map(|a| a.iter().filter_map(Value::as_str).collect())
                .unwrap_or_default();
            (
                format!(
                    "{} {}: {}",
                    if detail["repeat"].as_bool() == Some(true) {
                        "Paged again"
                    } else {
                        "Paged"
                    },
                    tier(),
                    to.join(", ")
                ),
                "warning",
            )
        }
        "skipped" => (format!("Skipped {}: nobody to page", tier()), "neutral"),
        "acknowledged" => (
            format!(
                "Acknowledged by {}{}",
                who.map_or("someone", String::as_str),
                event
                    .channel
                    .as_ref()
                    .map(|c| format!(
                        " by {}",
                        if c == "email" {
                            "the email link"
                        } else {
                            "the API"
                        }
                    ))
                    .unwrap_or_default()
            ),
            "ok",
        ),
        "reopened" => (
            "Re-opened: acknowledged but not resolved in time".to_string(),
            "critical",
        ),
        "exhausted" => (
            "Every tier was paged and nobody acknowledged".to_string(),
            "critical",
        ),
        "resolved" => (
            format!(
                "Resolved{}",
                who.map(|w| format!(" by {w}")).unwrap_or_default()
            ),
            "ok",
        ),
        other => (label(other), ""),
    };
    Row {
        text,
        href: None,
        meta: Some(reading.time(event.at)),
        tone,
    }
}

pub async fn page(reading: &Reading<'_>, id: i64) -> ApiResult<RecordPage> {
    let e = find_scoped::<escalation::Entity, _>(reading.reads(), &reading.ctx, id).await?;
    let p = find_scoped::<program::Entity, _>(reading.reads(), &reading.ctx, e.program_id).await?;
    let severity = e
        .criticality
        .clone()
        .unwrap_or_else(|| "urgent".to_string());
    let mut page = page_of(
        reading,
        format!("{} escalation #{}", label(&severity), e.id),
        e.title.clone(),
        &p,
    );
    page.status = label_of(&e.status);
    page.tone = match e.status {
        escalation::EscalationStatus::Open | escalation::EscalationStatus::Exhausted => {
            if severity == "critical" {
                "critical"
            } else {
                "warning"
            }
        }
        escalation::EscalationStatus::Acknowledged => "warning",
        escalation::EscalationStatus::Resolved => "ok",
    };
    if matches!(
        e.status,
        escalation::EscalationStatus::Open | escalation::EscalationStatus::Exhausted
    ) {
        page.alerts
            .push("Nobody has acknowledged this escalation yet.".to_string());
    }
    page.facts.push(Fact::new("Why", e.reason.clone()));
    if let (Some("deviation"), Some(source)) = (Some(e.source_type.as_str()), e.source_id) {
        page.facts.push(Fact::linked(
            "Deviation",
            format!(
                "Deviation {}",
                reference_of(reading.reads(), RecordKind::Deviation, source).await?
            ),
            reading.link(PageRecord::Deviation, source),
        ));
    }
    if let Some(category) = &e.category {
        page.facts
            .push(Fact::new("Expertise paged", label(category)));
    }
    page.facts.push(Fact::new(
        "Opened",
        reading.site_time(&p.time_zone, e.opened_at),
    ));
    page.facts
        .push(Fact::new("Production", label_of(&p.production_status)));
    let events = escalation::event::Entity::find()
        .filter(escalation::event::Column::EscalationId.eq(e.id))
        .order_by_asc(escalation::event::Column::At)
        .order_by_asc(escalation::event::Column::Id)
        .all(reading.reads())
        .await?;
    let people = names(
        reading.reads(),
        events
            .iter()
            .filter_map(|ev| ev.actor_user_id)
            .chain(e.acknowledged_by_user_id),
    )
    .await?;
    if let (Some(at), Some(by)) = (e.acknowledged_at, e.acknowledged_by_user_id) {
        page.facts.push(Fact::new(
            "Acknowledged",
            format!(
                "{} by {}, {} after opening",
                reading.time(at),
                people.get(&by).map_or("?", String::as_str),
                duration(at - e.opened_at)
            ),
        ));
    }
    if e.reopen_count > 0 {
        page.facts.push(Fact::new(
            "Re-opened",
            mail::words::count(e.reopen_count.into(), "time"),
        ));
    }
    if let Some(at) = e.resolved_at {
        page.facts.push(Fact::new("Resolved", reading.time(at)));
    }
    page.sections.push(Section::new(
        "Timeline",
        "Nothing happened yet.",
        events
            .iter()
            .map(|ev| timeline_row(reading, ev, ev.actor_user_id.and_then(|u| people.get(&u))))
            .collect(),
    ));
    let team = escalation_policy::team(reading.reads(), e.program_id).await?;
    let tree = escalation::call_tree(&e, &team);
    page.sections.push(Section::new(
        "Call tree",
        "The policy pages nobody.",
        tree.iter()
            .enumerate()
            .map(|(i, t)| Row {
                text: format!("Tier {}: {}", i + 1, t.name),
                href: None,
                meta: Some(format!(
                    "{} · next tier after {}",
                    if t.recipients.is_empty() {
                        "nobody".to_string()
                    } else {
                        t.recipients
                            .iter()
                            .map(|r| {
                                format!(
                                    "{} ({}{})",
                                    r.name,
                                    label(&r.program_role),
                                    r.phone
                                        .as_ref()
                                        .map(|ph| format!(", {ph}"))
                                        .unwrap_or_default()
                                )
                            })
                            .collect::<Vec<_>>()
                            .join(", ")
                    },
                    duration(chrono::TimeDelta::minutes(t.wait_minutes.into()))
                )),
                tone: if e.current_tier == Some(i as i32) {
                    "warning"
                } else {
                    ""
                },
            })
            .collect(),
    ));
    Ok(page)
}
