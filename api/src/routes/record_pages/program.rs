//! A program's overview page: its status with the reason, milestones against baseline
//! as a timeline, gates ahead with checklist readiness, open deviations and CAPA, and
//! production with its holds.

use chrono::NaiveDate;
use entity::deviation::{self, Criticality, DeviationStatus};
use entity::link_token::PageRecord;
use entity::milestone::{self, MilestoneStatus};
use entity::overview::Standing;
use entity::{capa, organization, program};
use mail::record_page::{Bar, Fact, RecordPage, Row, Section, Timeline};
use mail::words::{count, duration, label_of};
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, QueryOrder};

use super::plan::{health_tone, readiness};
use super::{Reading, criticality_tone};
use crate::auth::find_scoped;
use crate::error::ApiResult;

const WIDTH: u32 = 720;
const LABEL_WIDTH: u32 = 210;
const ROW_HEIGHT: u32 = 20;

/// Milestones against baseline: one row each, baseline above, forecast (or actual)
/// below, coloured by schedule health; a line for today.
fn timeline(milestones: &[milestone::Model], today: NaiveDate) -> Option<Timeline> {
    let shown: Vec<&milestone::Model> = milestones
        .iter()
        .filter(|m| m.status != MilestoneStatus::Cancelled)
        .collect();
    let start = shown
        .iter()
        .map(|m| m.baseline_start.min(m.forecast_start))
        .min()?;
    let end = shown
        .iter()
        .map(|m| {
            m.baseline_end
                .max(m.forecast_end)
                .max(m.actual_end.unwrap_or(m.forecast_end))
        })
        .max()?;
    let days = (end - start).num_days().max(1) as f64;
    let area = f64::from(WIDTH - LABEL_WIDTH - 10);
    let x =
        |d: NaiveDate| LABEL_WIDTH + ((d - start).num_days() as f64 / days * area).round() as u32;
    let width = |from: NaiveDate, to: NaiveDate| (x(to) - x(from)).max(2);
    let bars = shown
        .iter()
        .enumerate()
        .map(|(i, m)| {
            let (from, to) = (
                m.actual_start.unwrap_or(m.forecast_start),
                m.actual_end.unwrap_or(m.forecast_end),
            );
            let name: String = m.name.chars().take(30).collect();
            Bar {
                label: name,
                y: i as u32 * ROW_HEIGHT + 4,
                baseline_x: x(m.baseline_start),
                baseline_width: width(m.baseline_start, m.baseline_end),
                baseline_text: format!("{} to {}", m.baseline_start, m.baseline_end),
                forecast_x: x(from),
                forecast_width: width(from, to.max(from)),
                forecast_text: format!(
                    "{} {from} to {to}",
                    if m.actual_end.is_some() {
                        "actual"
                    } else {
                        "forecast"
                    }
                ),
                tone: health_tone(m.health(today)),
            }
        })
        .collect::<Vec<_>>();
    Some(Timeline {
        width: WIDTH,
        height: bars.len() as u32 * ROW_HEIGHT + 8,
        label: format!(
            "{} against baseline, {start} to {end}",
            count(bars.len() as i64, "milestone")
        ),
        bars,
        today_x: (start..=end).contains(&today).then(|| x(today)),
    })
}

pub async fn page(reading: &Reading<'_>, id: i64) -> ApiResult<RecordPage> {
    let p = find_scoped::<program::Entity, _>(reading.reads(), &reading.ctx, id).await?;
    let today = p.today(reading.now);
    let milestones = milestone::Entity::find()
        .filter(milestone::Column::ProgramId.eq(p.id))
        .order_by_asc(milestone::Column::Position)
        .order_by_asc(milestone::Column::Id)
        .all(reading.reads())
        .await?;
    let summary = entity::overview::summarize(&milestones, today);
    let holds = entity::production_holds::of_program(reading.reads(), p.id).await?;
    let current_hold = holds.iter().rev().find(|h| h.released_at.is_none());
    let orgs = organization::Entity::find()
        .filter(organization::Column::Id.is_in([p.sponsor_org_id, p.cmo_org_id]))
        .all(reading.reads())
        .await?;
    let org_name = |id: i64| {
        orgs.iter()
            .find(|o| o.id == id)
            .map_or(String::new(), |o| o.name.clone())
    };
    let mut page = super::quality::page_of(
        reading,
        format!(
            "Program · {} · {}",
            label_of(&p.stage),
            label_of(&p.modality)
        ),
        p.name.clone(),
        &p,
    );
    page.program = None;
    let late = &summary.late_milestones;
    let at_risk = summary.by_health.get("at_risk").copied().unwrap_or(0);
    let standing = Standing::of(
        p.production_status == program::ProductionStatus::OnHold,
        &summary,
    );
    (page.status, page.tone, page.status_reason) = match (standing, current_hold) {
        (Standing::ProductionOnHold, Some(h)) => (
            "Production on hold".to_string(),
            "critical",
            Some(format!(
                "since {} ({}): {}",
                reading.time(h.held_at),
                duration(h.length(reading.now)),
                h.reason
            )),
        ),
        (Standing::ProductionOnHold, None) => ("Production on hold".to_string(), "critical", None),
        (Standing::Late, _) => (
            "Late".to_string(),
            "critical",
            Some(format!(
                "{} late: {}",
                count(late.len() as i64, "milestone"),
                late.iter()
                    .map(|m| m.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            )),
        ),
        (Standing::AtRisk, _) => (
            "At risk".to_string(),
            "warning",
            Some(format!("{} at risk", count(at_risk as i64, "milestone"))),
        ),
        (Standing::OnTrack, _) => ("On track".to_string(), "ok", None),
    };
    page.facts
        .push(Fact::new("Product", p.product_name.clone()));
    page.facts
        .push(Fact::new("Sponsor", org_name(p.sponsor_org_id)));
    page.facts
        .push(Fact::new("Manufacturer (CMO)", org_name(p.cmo_org_id)));
    page.facts.push(Fact::new(
        "Production",
        match current_hold {
            Some(h) => format!("On hold since {}", reading.time(h.held_at)),
            None => label_of(&p.production_status),
        },
    ));
    page.facts
        .push(Fact::new("Site time zone", p.time_zone.clone()));
    if let Some(scope) = &p.scope {
        page.facts.push(Fact::new("Scope", scope.clone()));
    }

    let mut plan = Section::new(
        "Milestones against baseline",
        "No milestones planned yet.",
        Vec::new(),
    );
    plan.intro = Some(format!(
        "{}: {} on track, {} at risk, {} late; {} completed.",
        count(summary.milestones_total as i64, "milestone"),
        summary.by_health.get("on_track").copied().unwrap_or(0),
        at_risk,
        summary.by_health.get("late").copied().unwrap_or(0),
        summary.by_status.get("completed").copied().unwrap_or(0),
    ));
    plan.timeline = timeline(&milestones, today);
    page.sections.push(plan);

    page.sections.push(Section::new(
        "Late milestones",
        "None.",
        late.iter()
            .map(|m| Row {
                text: m.name.clone(),
                href: Some(reading.link(PageRecord::Milestone, m.milestone_id)),
                meta: Some(format!(
                    "{} · baseline end {} · forecast {} ({} later)",
                    label_of(&m.status),
                    m.baseline_end,
                    m.forecast_end,
                    count((m.forecast_end - m.baseline_end).num_days().max(0), "day")
                )),
                tone: "critical",
            })
            .collect(),
    ));

    let mut gates = Vec::new();
    for g in &summary.upcoming_gates {
        let items = entity::workflow::gate::checklist(reading.reads(), g.milestone_id).await?;
        gates.push(Row {
            text: g.name.clone(),
            href: Some(reading.link(PageRecord::Milestone, g.milestone_id)),
            meta: Some(format!(
                "{} · forecast {} · {}",
                label_of(&g.status),
                g.forecast_end,
                if items.is_empty() {
                    "no checklist".to_string()
                } else {
                    readiness(&items)
                }
            )),
            tone: health_tone(g.schedule_health),
        });
    }
    page.sections.push(Section::new(
        &format!(
            "Gates in the next {} days",
            entity::overview::GATE_HORIZON_DAYS
        ),
        "No gate ahead.",
        gates,
    ));

    let mut open = deviation::Entity::find()
        .filter(deviation::Column::ProgramId.eq(p.id))
        .filter(
            deviation::Column::Status
                .is_not_in([DeviationStatus::Closed, DeviationStatus::Cancelled]),
        )
        .order_by_asc(deviation::Column::DetectedAt)
        .all(reading.reads())
        .await?;
    let rank = |c: Criticality| match c {
        Criticality::Critical => 0,
        Criticality::Major => 1,
        Criticality::Minor => 2,
    };
    open.sort_by_key(|d| (rank(d.criticality), d.detected_at));
    page.sections.push(Section::new(
        "Open deviations",
        "None.",
        open.iter()
            .map(|d| Row {
                text: format!(
                    "{} {}: {}",
                    label_of(&d.criticality),
                    d.reference(),
                    d.title
                ),
                href: Some(reading.link(PageRecord::Deviation, d.id)),
                meta: Some(format!(
                    "{} · detected {}",
                    label_of(&d.status),
                    reading.site_time(&p.time_zone, d.detected_at)
                )),
                tone: criticality_tone(&entity::enums::wire_name(&d.criticality)),
            })
            .collect(),
    ));
    let capas = capa::Entity::find()
        .filter(capa::Column::ProgramId.eq(p.id))
        .filter(
            capa::Column::Status.is_not_in([capa::CapaStatus::Closed, capa::CapaStatus::Cancelled]),
        )
        .order_by_asc(capa::Column::Id)
        .all(reading.reads())
        .await?;
    page.sections.push(Section::new(
        "Open CAPA",
        "None.",
        capas
            .iter()
            .map(|c| super::quality::capa_row(reading, c))
            .collect(),
    ));
    page.sections.push(Section::new(
        "Production holds",
        "Production was never held.",
        holds
            .iter()
            .rev()
            .take(5)
            .map(|h| Row {
                text: format!(
                    "{} for {}{}",
                    reading.time(h.held_at),
                    duration(h.length(reading.now)),
                    if h.released_at.is_none() {
                        " so far"
                    } else {
                        ""
                    }
                ),
                href: None,
                meta: Some(format!(
                    "{}{}",
                    h.reason,
                    h.release_reason
                        .as_ref()
                        .map(|r| format!(" · released: {r}"))
                        .unwrap_or_default()
                )),
                tone: if h.released_at.is_none() {
                    "critical"
                } else {
                    ""
                },
            })
            .collect(),
    ));
    Ok(page)
}
