//! The pages of quality records: deviation, CAPA, change request.

use entity::action_item::{self, ActionSource};
use entity::link_token::PageRecord;
use entity::{capa, change_request, deviation, escalation, program, signature};
use mail::record_page::{Fact, Link, RecordPage, Row, Section};
use mail::words::{label, label_of};
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, QueryOrder};

use super::{Reading, criticality_tone, names};
use crate::auth::find_scoped;
use crate::error::ApiResult;

/// An empty page of `kind` for a record of `program`: the caller fills in the rest.
pub fn page_of(
    reading: &Reading<'_>,
    kind: String,
    title: String,
    p: &program::Model,
) -> RecordPage {
    RecordPage {
        kind,
        title,
        status: String::new(),
        status_reason: None,
        tone: "neutral",
        program: Some(Link {
            href: reading.link(PageRecord::Program, p.id),
            text: format!("{} ({})", p.name, p.product_name),
        }),
        alerts: Vec::new(),
        facts: Vec::new(),
        sections: Vec::new(),
        reader_note: String::new(),
        generated: String::new(),
    }
}

/// A signature as Part 11 shows it: printed name, meaning, date and time with zone; and
/// whether the record still reads as signed.
pub async fn signature_fact(
    reading: &Reading<'_>,
    what: &str,
    signature_id: Option<i64>,
) -> ApiResult<Option<Fact>> {
    let Some(id) = signature_id else {
        return Ok(None);
    };
    let Some(sig) = signature::Entity::find_by_id(id)
        .one(reading.reads())
        .await?
    else {
        return Ok(None);
    };
    let view =
        crate::signed_records::checked(reading.reads(), &reading.ctx, &sig, reading.now).await?;
    let state = match view.record_state {
        signature::RecordState::Matching => String::new(),
        signature::RecordState::NoLongerMatching => format!(
            " (no longer matches the record: {} changed since)",
            view.changed_fields.join(", ")
        ),
        signature::RecordState::NotCheckable => String::new(),
    };
    Ok(Some(Fact::new(
        what,
        format!(
            "{} \u{2014} {} \u{2014} {}{state}",
            sig.signer_name,
            label_of(&sig.meaning).to_lowercase(),
            reading.time(sig.signed_at)
        ),
    )))
}

/// Action items of a record (`source`, `source_id`) as rows: title, owner, due, state.
pub async fn action_rows(
    reading: &Reading<'_>,
    p: &program::Model,
    items: &[action_item::Model],
) -> ApiResult<Vec<Row>> {
    let owners = names(reading.reads(), items.iter().map(|a| a.owner_user_id)).await?;
    let today = p.today(reading.now);
    Ok(items
        .iter()
        .map(|a| {
            let overdue = action_item::is_overdue(a.status, a.due_date, a.snoozed_until, today);
            Row {
                text: a.title.clone(),
                href: Some(reading.link(PageRecord::ActionItem, a.id)),
                meta: Some(format!(
                    "{} · owner {} · due {}{}",
                    label_of(&a.status),
                    owners.get(&a.owner_user_id).map_or("?", String::as_str),
                    a.due_date.format("%a %-d %b %Y"),
                    if overdue {
                        format!(
                            ", {} overdue",
                            mail::words::count(action_item::days_overdue(a.due_date, today), "day")
                        )
                    } else {
                        String::new()
                    }
                )),
                tone: if overdue { "critical" } else { "" },
            }
        })
        .collect())
}

/// A CAPA in a list of a page: its number, title and state, linked.
pub fn capa_row(reading: &Reading<'_>, c: &capa::Model) -> Row {
    Row {
        text: format!("CAPA {}: {}", c.reference(), c.title),
        href: Some(reading.link(PageRecord::Capa, c.id)),
        meta: Some(label_of(&c.status)),
        tone: "",
    }
}

pub async fn deviation(reading: &Reading<'_>, id: i64) -> ApiResult<RecordPage> {
    let d = find_scoped::<deviation::Entity, _>(reading.reads(), &reading.ctx, id).await?;
    let p = find_scoped::<program::Entity, _>(reading.reads(), &reading.ctx, d.program_id).await?;
    let criticality = entity::enums::wire_name(&d.criticality);
    let mut page = page_of(
        reading,
        format!("{} deviation {}", label(&criticality), d.reference()),
        d.title.clone(),
        &p,
    );
    page.status = label_of(&d.status);
    page.tone = if matches!(
        d.status,
        deviation::DeviationStatus::Closed | deviation::DeviationStatus::Cancelled
    ) {
        "ok"
    } else {
        criticality_tone(&criticality)
    };
    let open = !matches!(
        d.status,
        deviation::DeviationStatus::Closed | deviation::DeviationStatus::Cancelled
    );
    if open && p.production_status == program::ProductionStatus::OnHold {
        let since = entity::production_holds::of_program(reading.reads(), p.id)
            .await?
            .into_iter()
            .rev()
            .find(|h| h.released_at.is_none());
        page.alerts.push(match since {
            Some(h) => format!(
                "Production of {} is on hold since {} ({} so far): {}.",
                p.product_name,
                reading.time(h.held_at),
                mail::words::duration(h.length(reading.now)),
                h.reason
            ),
            None => format!("Production of {} is on hold.", p.product_name),
        });
    }
    let people = names(reading.reads(), [d.reported_by_user_id]).await?;
    page.facts
        .push(Fact::new("Criticality", label(&criticality)));
    page.facts
        .push(Fact::new("Category", label_of(&d.category)));
    page.facts.push(Fact::new(
        "Detected",
        reading.site_time(&p.time_zone, d.detected_at),
    ));
    page.facts.push(Fact::new(
        "Reported by",
        people
            .get(&d.reported_by_user_id)
            .cloned()
            .unwrap_or_default(),
    ));
    page.facts
        .push(Fact::new("Description", d.description.clone()));
    if let Some(lot) = &d.batch_lot {
        page.facts.push(Fact::new("Batch/lot", lot.clone()));
    }
    if let Some(step) = &d.process_step {
        page.facts.push(Fact::new("Process step", step.clone()));
    }
    page.facts
        .push(Fact::new("Production", label_of(&p.production_status)));
    if let Some(m) = d.milestone_id
        && let Some(ms) = entity::milestone::Entity::find_by_id(m)
            .one(reading.reads())
            .await?
    {
        page.facts.push(Fact::linked(
            "Milestone",
            ms.name,
            reading.link(PageRecord::Milestone, m),
        ));
    }
    if let Some(at) = d.triaged_at {
        page.facts.push(Fact::new("Triaged", reading.time(at)));
    }
    if let Some(fix) = &d.short_term_fix {
        page.facts.push(Fact::new("Short-term fix", fix.clone()));
    }
    if let Some(method) = d.root_cause_method {
        page.facts.push(Fact::new(
            "Root cause",
            format!(
                "{}{}{}",
                d.root_cause_category
                    .map(|c| format!("{}: ", label_of(&c)))
                    .unwrap_or_default(),
                d.root_cause_narrative.clone().unwrap_or_default(),
                format_args!(" (method: {})", label_of(&method))
            ),
        ));
    }
    if let Some(at) = d.closed_at {
        page.facts.push(Fact::new("Closed", reading.time(at)));
    }
    if let Some(f) = signature_fact(reading, "Closure signed", d.closure_signature_id).await? {
        page.facts.push(f);
    }
    if let Some(why) = &d.cancel_reason {
        page.facts.push(Fact::new("Cancelled because", why.clone()));
    }
    let links = capa::deviation_link::Entity::find()
        .filter(capa::deviation_link::Column::DeviationId.eq(d.id))
        .all(reading.reads())
        .await?;
    let capas = capa::Entity::find()
        .filter(capa::Column::Id.is_in(links.iter().map(|l| l.capa_id)))
        .order_by_asc(capa::Column::Id)
        .all(reading.reads())
        .await?;
    page.sections.push(Section::new(
        "CAPA",
        "No CAPA addresses this deviation yet.",
        capas.iter().map(|c| capa_row(reading, c)).collect(),
    ));
    let escalations = escalation::Entity::find()
        .filter(escalation::Column::SourceType.eq("deviation"))
        .filter(escalation::Column::SourceId.eq(d.id))
        .order_by_asc(escalation::Column::Id)
        .all(reading.reads())
        .await?;
    page.sections.push(Section::new(
        "Escalation",
        "Nobody was paged for this deviation.",
        escalations
            .iter()
            .map(|e| Row {
                text: format!("Escalation #{}: {}", e.id, label_of(&e.status)),
                href: Some(reading.link(PageRecord::Escalation, e.id)),
                meta: Some(format!("opened {}", reading.time(e.opened_at))),
                tone: if e.status == escalation::EscalationStatus::Open {
                    "critical"
                } else {
                    ""
                },
            })
            .collect(),
    ));
    let actions = action_item::Entity::find()
        .filter(action_item::Column::Source.eq(ActionSource::Deviation))
        .filter(action_item::Column::SourceId.eq(d.id))
        .order_by_asc(action_item::Column::DueDate)
        .all(reading.reads())
        .await?;
    page.sections.push(Section::new(
        "Actions",
        "No actions on this deviation.",
        action_rows(reading, &p, &actions).await?,
    ));
    Ok(page)
}

pub async fn capa(reading: &Reading<'_>, id: i64) -> ApiResult<RecordPage> {
    let c = find_scoped::<capa::Entity, _>(reading.reads(), &reading.ctx, id).await?;
    let p = find_scoped::<program::Entity, _>(reading.reads(), &reading.ctx, c.program_id).await?;
    let mut page = page_of(
        reading,
        format!("CAPA {}", c.reference()),
        c.title.clone(),
        &p,
    );
    page.status = label_of(&c.status);
    page.tone = match c.status {
        capa::CapaStatus::Closed => "ok",
        capa::CapaStatus::Cancelled => "neutral",
        _ => "warning",
    };
    page.facts.push(Fact::new("Plan", c.description.clone()));
    page.facts.push(Fact::new("Source", label_of(&c.source)));
    if let Some(r) = &c.finding_reference {
        page.facts.push(Fact::new("Finding", r.clone()));
    }
    if let Some(due) = c.effectiveness_due {
        page.facts.push(Fact::new(
            "Effectiveness check due",
            due.format("%a %-d %b %Y").to_string(),
        ));
    }
    if let Some(outcome) = c.effectiveness_outcome {
        page.facts
            .push(Fact::new("Effectiveness", label_of(&outcome)));
    }
    if let Some(f) = signature_fact(reading, "Plan approved", c.plan_signature_id).await? {
        page.facts.push(f);
    }
    if let Some(f) = signature_fact(reading, "Closure signed", c.closure_signature_id).await? {
        page.facts.push(f);
    }
    if let Some(why) = &c.cancel_reason {
        page.facts.push(Fact::new("Cancelled because", why.clone()));
    }
    let links = capa::deviation_link::Entity::find()
        .filter(capa::deviation_link::Column::CapaId.eq(c.id))
        .all(reading.reads())
        .await?;
    let deviations = deviation::Entity::find()
        .filter(deviation::Column::Id.is_in(links.iter().map(|l| l.deviation_id)))
        .order_by_asc(deviation::Column::Id)
        .all(reading.reads())
        .await?;
    page.sections.push(Section::new(
        "Deviations it answers",
        "None: this CAPA comes from another finding.",
        deviations
            .iter()
            .map(|d| Row {
                text: format!("Deviation {}: {}", d.reference(), d.title),
                href: Some(reading.link(PageRecord::Deviation, d.id)),
                meta: Some(format!(
                    "{} · {}",
                    label_of(&d.criticality),
                    label_of(&d.status)
                )),
                tone: criticality_tone(&entity::enums::wire_name(&d.criticality)),
            })
            .collect(),
    ));
    let kinds = capa::action_link::Entity::find()
        .filter(capa::action_link::Column::CapaId.eq(c.id))
        .all(reading.reads())
        .await?;
    let actions = action_item::Entity::find()
        .filter(action_item::Column::Id.is_in(kinds.iter().map(|k| k.action_item_id)))
        .order_by_asc(action_item::Column::DueDate)
        .all(reading.reads())
        .await?;
    let mut rows = action_rows(reading, &p, &actions).await?;
    for (row, a) in rows.iter_mut().zip(&actions) {
        if let Some(k) = kinds.iter().find(|k| k.action_item_id == a.id) {
            row.text = format!("{}: {}", label_of(&k.kind), row.text);
        }
    }
    page.sections
        .push(Section::new("Actions", "No actions planned yet.", rows));
    Ok(page)
}

pub async fn change_request(reading: &Reading<'_>, id: i64) -> ApiResult<RecordPage> {
    let c = find_scoped::<change_request::Entity, _>(reading.reads(), &reading.ctx, id).await?;
    let p = find_scoped::<program::Entity, _>(reading.reads(), &reading.ctx, c.program_id).await?;
    let mut page = page_of(
        reading,
        format!(
            "{} change request {}",
            label_of(&c.classification),
            c.reference()
        ),
        c.title.clone(),
        &p,
    );
    page.status = label_of(&c.status);
    page.tone = match c.status {
        change_request::ChangeStatus::Rejected => "neutral",
        change_request::ChangeStatus::Closed => "ok",
        _ => "warning",
    };
    let people = names(reading.reads(), [c.requested_by_user_id]).await?;
    page.facts.push(Fact::new("Change", c.description.clone()));
    page.facts.push(Fact::new("Why", c.justification.clone()));
    page.facts.push(Fact::new(
        "Requested by",
        people
            .get(&c.requested_by_user_id)
            .cloned()
            .unwrap_or_default(),
    ));
    for (what, impact) in [
        ("Impact on product quality", &c.impact_product_quality),
        ("Impact on validation", &c.impact_validation),
        ("Regulatory impact", &c.impact_regulatory),
    ] {
        page.facts.push(Fact::new(
            what,
            impact
                .clone()
                .unwrap_or_else(|| "not assessed yet".to_string()),
        ));
    }
    if let Some(f) = signature_fact(reading, "Decision signed", c.decision_signature_id).await? {
        page.facts.push(f);
    }
    if let Some(r) = &c.decision_reason {
        page.facts.push(Fact::new("Decision reason", r.clone()));
    }
    let tasks = action_item::Entity::find()
        .filter(action_item::Column::Source.eq(ActionSource::Change))
        .filter(action_item::Column::SourceId.eq(c.id))
        .order_by_asc(action_item::Column::DueDate)
        .all(reading.reads())
        .await?;
    page.sections.push(Section::new(
        "Implementation tasks",
        "No tasks yet.",
        action_rows(reading, &p, &tasks).await?,
    ));
    Ok(page)
}
