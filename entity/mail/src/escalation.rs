//! Escalation emails (SPEC §6): the page (personal acknowledgement link, call tree) and
//! the notices to everyone already paged (escalated, acknowledged, re-opened, resolved).
//! The worker queues pages; the api queues notices in the transaction of the change.

use chrono::{DateTime, Utc};
use entity::escalation::{self, EscalationStatus, TierView};
use entity::escalation_policy::Recipient;
use entity::link_token::PageRecord;
use entity::outbox::{Draft, Email};
use entity::workflow::escalation::Told;
use entity::{deviation, link_secret, program, user};
use sea_orm::{ColumnTrait, ConnectionTrait, DbErr, EntityTrait, QueryFilter};
use serde::Serialize;

use crate::{Reader, RenderError, words};

fn severity(e: &escalation::Model) -> String {
    e.criticality
        .clone()
        .unwrap_or_else(|| "urgent".to_string())
}

/// What raised the escalation, as the page email describes it (a deviation today).
#[derive(Debug, Clone)]
pub struct Source {
    pub record: PageRecord,
    pub id: i64,
    /// "Critical deviation #41".
    pub label: String,
    pub description: String,
    pub batch_lot: Option<String>,
    pub process_step: Option<String>,
    pub detected_at: DateTime<Utc>,
    pub reporter: String,
}

/// The record an escalation came from, when it has a page.
pub async fn source_of<C: ConnectionTrait>(
    conn: &C,
    e: &escalation::Model,
) -> Result<Option<Source>, DbErr> {
    let (Some(id), "deviation") = (e.source_id, e.source_type.as_str()) else {
        return Ok(None);
    };
    let Some(d) = deviation::Entity::find_by_id(id).one(conn).await? else {
        return Ok(None);
    };
    let reporter = user::Entity::find_by_id(d.reported_by_user_id)
        .one(conn)
        .await?
        .map(|u| u.display_name)
        .unwrap_or_default();
    Ok(Some(Source {
        record: PageRecord::Deviation,
        id,
        label: format!(
            "{} deviation {}",
            words::label_of(&d.criticality),
            d.reference()
        ),
        description: d.description,
        batch_lot: d.batch_lot,
        process_step: d.process_step,
        detected_at: d.detected_at,
        reporter,
    }))
}

/// One page of the call tree: which tier, and the reader's acknowledgement link.
pub struct Paging<'a> {
    pub tier: usize,
    pub repeat: bool,
    pub tiers: &'a [TierView],
    pub ack_url: &'a str,
    pub ack_expires_at: DateTime<Utc>,
}

/// One recipient's page.
pub fn render_page(
    e: &escalation::Model,
    prog: &program::Model,
    source: Option<&Source>,
    paging: &Paging<'_>,
    reader: &Reader,
) -> Result<Email, RenderError> {
    #[derive(Serialize)]
    struct SourceView<'a> {
        label: &'a str,
        url: String,
        description: &'a str,
        batch_lot: Option<&'a str>,
        process_step: Option<&'a str>,
        detected: String,
        reporter: &'a str,
    }
    #[derive(Serialize)]
    struct Context<'a> {
        severity: String,
        tier_number: usize,
        tier_count: usize,
        tier_name: &'a str,
        repeat: bool,
        next_tier_name: Option<&'a str>,
        wait: String,
        program_name: &'a str,
        title: &'a str,
        reason: &'a str,
        category: Option<String>,
        opened: String,
        production: String,
        on_hold: bool,
        source: Option<SourceView<'a>>,
        ack_url: &'a str,
        ack_expires: String,
        tiers: Vec<TierLine<'a>>,
        escalation_url: String,
    }
    #[derive(Serialize)]
    struct TierLine<'a> {
        #[serde(flatten)]
        tier: &'a TierView,
        wait: String,
    }
    let tier = paging.tier;
    let this = paging.tiers.get(tier);
    let context = Context {
        severity: severity(e),
        tier_number: tier + 1,
        tier_count: paging.tiers.len(),
        tier_name: this.map_or("", |t| t.name.as_str()),
        repeat: paging.repeat,
        next_tier_name: paging.tiers.get(tier + 1).map(|t| t.name.as_str()),
        wait: words::count(this.map_or(0, |t| t.wait_minutes).into(), "minute"),
        program_name: &prog.name,
        title: &e.title,
        reason: &e.reason,
        category: e.category.as_deref().map(words::label),
        opened: reader.time_at_site(&prog.time_zone, e.opened_at),
        production: words::label_of(&prog.production_status),
        on_hold: prog.production_status == program::ProductionStatus::OnHold,
        source: source.map(|s| SourceView {
            label: &s.label,
            url: reader.page(s.record, s.id),
            description: &s.description,
            batch_lot: s.batch_lot.as_deref(),
            process_step: s.process_step.as_deref(),
            detected: reader.time_at_site(&prog.time_zone, s.detected_at),
            reporter: &s.reporter,
        }),
        ack_url: paging.ack_url,
        ack_expires: reader.time(paging.ack_expires_at),
        tiers: paging
            .tiers
            .iter()
            .map(|t| TierLine {
                tier: t,
                wait: words::count(t.wait_minutes.into(), "minute"),
            })
            .collect(),
        escalation_url: reader.page(PageRecord::Escalation, e.id),
    };
    crate::render("escalation_page", &context)
}

/// A notice to one person already paged.
pub fn render_notice(
    e: &escalation::Model,
    prog: &program::Model,
    status: EscalationStatus,
    headline: &str,
    message: &str,
    reader: &Reader,
) -> Result<Email, RenderError> {
    #[derive(Serialize)]
    struct Context<'a> {
        severity: String,
        headline: &'a str,
        program_name: &'a str,
        title: &'a str,
        status: String,
        message: &'a str,
        escalation_url: String,
        reader_name: &'a str,
    }
    let context = Context {
        severity: severity(e),
        headline,
        program_name: &prog.name,
        title: &e.title,
        status: words::label_of(&status),
        message,
        escalation_url: reader.page(PageRecord::Escalation, e.id),
        reader_name: &reader.name,
    };
    crate::render("escalation_notice", &context)
}

/// Queues a rendered escalation email (in the caller's transaction).
pub async fn enqueue<C: ConnectionTrait>(
    conn: &C,
    dedupe_key: String,
    to: Vec<String>,
    email: Email,
    now: DateTime<Utc>,
    base_url: &str,
) -> Result<bool, DbErr> {
    crate::enqueue(conn, Draft::new(dedupe_key, to, email), now, base_url).await
}

/// Tells everyone paged so far what happened to the escalation (`told`, from its
/// machine), in the caller's transaction. `acting` names who acted on its source.
pub async fn tell_paged<C: ConnectionTrait>(
    conn: &C,
    e: &escalation::Model,
    told: &Told,
    acting: &str,
    base_url: &str,
    now: DateTime<Utc>,
) -> Result<bool, DbErr> {
    let (status, key, headline, message) = match told {
        Told::Acknowledged { by, channel, note } => (
            EscalationStatus::Acknowledged,
            format!("acknowledged:{}", e.reopen_count),
            format!("Acknowledged by {by}"),
            format!(
                "{by} acknowledged this escalation via {channel}{}. Paging has stopped.{}",
                e.current_tier
                    .map(|t| format!(" (tier {} was paged)", t + 1))
                    .unwrap_or_default(),
                note.as_ref().map(|n| format!(" Note: {n}")).unwrap_or_default()
            ),
        ),
        Told::Resolved { by, reason } => (
            EscalationStatus::Resolved,
            "resolved".to_string(),
            "Resolved".to_string(),
            format!("{by} resolved this escalation: {reason}"),
        ),
        Told::EndedBySource { source } => (
            EscalationStatus::Resolved,
            "resolved".to_string(),
            "Resolved".to_string(),
            format!(
                "{acting} acted on {source}, which ends this escalation. No further pages will be sent."
            ),
        ),
        Told::Exhausted => (
            EscalationStatus::Exhausted,
            "exhausted".to_string(),
            "Nobody acknowledged: every tier was paged".to_string(),
            "Every tier of the call tree was paged and nobody acknowledged. The escalation stays visible as exhausted; anyone paged can still acknowledge it.".to_string(),
        ),
        Told::Reopened => (
            EscalationStatus::Open,
            format!("reopened:{}", e.reopen_count),
            "Re-opened: acknowledged but not resolved in time".to_string(),
            "The escalation was acknowledged but not resolved within the policy's acknowledgement timeout, so it is open again and the tier that acknowledged it is paged again.".to_string(),
        ),
    };
    notify_paged(conn, e, status, &key, &headline, &message, base_url, now).await
}

/// Queues one notice to each person paged so far, with their own links (in the
/// caller's transaction). `key` makes it unique (`acknowledged`, `resolved`,
/// `reopened:2`, …).
#[allow(clippy::too_many_arguments)]
async fn notify_paged<C: ConnectionTrait>(
    conn: &C,
    e: &escalation::Model,
    status: EscalationStatus,
    key: &str,
    headline: &str,
    message: &str,
    base_url: &str,
    now: DateTime<Utc>,
) -> Result<bool, DbErr> {
    let recipients = escalation::paged_recipients(conn, e.id).await?;
    notify(
        conn,
        e,
        &recipients,
        status,
        key,
        (headline, message),
        base_url,
        now,
    )
    .await
}

/// Queues one notice to each of `recipients`, with their own links: the dedupe key is
/// `escalation:{id}:{key}:user:{user_id}`.
#[allow(clippy::too_many_arguments)]
pub async fn notify<C: ConnectionTrait>(
    conn: &C,
    e: &escalation::Model,
    recipients: &[Recipient],
    status: EscalationStatus,
    key: &str,
    (headline, message): (&str, &str),
    base_url: &str,
    now: DateTime<Utc>,
) -> Result<bool, DbErr> {
    if recipients.is_empty() {
        return Ok(false);
    }
    let Some(prog) = program::Entity::find_by_id(e.program_id).one(conn).await? else {
        return Ok(false);
    };
    let users = user::Entity::find()
        .filter(user::Column::Id.is_in(recipients.iter().map(|r| r.user_id)))
        .all(conn)
        .await?;
    let link_key = link_secret::get_or_create(conn, now).await?;
    let mut queued = false;
    for u in users.iter().filter(|u| u.active) {
        let reader = Reader::personal(u, &link_key, base_url, now);
        let email = render_notice(e, &prog, status, headline, message, &reader)
            .map_err(|err| DbErr::Custom(err.to_string()))?;
        queued |= enqueue(
            conn,
            format!("escalation:{}:{key}:user:{}", e.id, u.id),
            vec![u.email.clone()],
            email,
            now,
            base_url,
        )
        .await?;
    }
    Ok(queued)
}
