//! Escalation emails (SPEC §6): the page (personal acknowledgement link, call tree) and
//! the notices to everyone already paged (escalated, acknowledged, re-opened, resolved).
//! The worker queues pages; the api queues notices in the transaction of the change.

use chrono::{DateTime, Utc};
use entity::enums::wire_name;
use entity::escalation::{self, EscalationStatus, TierView};
use entity::outbox::{Draft, Email};
use entity::program;
use entity::workflow::escalation::Told;
use sea_orm::{ConnectionTrait, DbErr, EntityTrait};
use serde::Serialize;

use crate::RenderError;

fn local(tz: &str, at: DateTime<Utc>) -> String {
    crate::local_time(entity::schedule::zone(tz), at)
}

fn severity(e: &escalation::Model) -> String {
    e.criticality
        .clone()
        .unwrap_or_else(|| "urgent".to_string())
}

/// One recipient's page.
#[allow(clippy::too_many_arguments)]
pub fn render_page(
    e: &escalation::Model,
    prog: &program::Model,
    tier: usize,
    repeat: bool,
    tiers: &[TierView],
    ack_url: &str,
    ack_expires_at: DateTime<Utc>,
    base_url: &str,
) -> Result<Email, RenderError> {
    #[derive(Serialize)]
    struct Context<'a> {
        severity: String,
        tier_number: usize,
        tier_count: usize,
        tier_name: &'a str,
        repeat: bool,
        next_tier_name: Option<&'a str>,
        wait_minutes: i32,
        program_name: &'a str,
        title: &'a str,
        reason: &'a str,
        category: Option<&'a str>,
        opened_local: String,
        time_zone: &'a str,
        production_status: String,
        ack_url: &'a str,
        ack_expires_local: String,
        tiers: &'a [TierView],
        escalation_id: i64,
        base_url: &'a str,
    }
    let this = tiers.get(tier);
    let context = Context {
        severity: severity(e),
        tier_number: tier + 1,
        tier_count: tiers.len(),
        tier_name: this.map_or("", |t| t.name.as_str()),
        repeat,
        next_tier_name: tiers.get(tier + 1).map(|t| t.name.as_str()),
        wait_minutes: this.map_or(0, |t| t.wait_minutes),
        program_name: &prog.name,
        title: &e.title,
        reason: &e.reason,
        category: e.category.as_deref(),
        opened_local: local(&prog.time_zone, e.opened_at),
        time_zone: &prog.time_zone,
        production_status: wire_name(&prog.production_status),
        ack_url,
        ack_expires_local: local(&prog.time_zone, ack_expires_at),
        tiers,
        escalation_id: e.id,
        base_url: base_url.trim_end_matches('/'),
    };
    crate::render("escalation_page", &context)
}

/// A notice to people already paged.
pub fn render_notice(
    e: &escalation::Model,
    prog: &program::Model,
    status: EscalationStatus,
    headline: &str,
    message: &str,
    base_url: &str,
) -> Result<Email, RenderError> {
    #[derive(Serialize)]
    struct Context<'a> {
        severity: String,
        headline: &'a str,
        program_name: &'a str,
        title: &'a str,
        status: String,
        message: &'a str,
        escalation_id: i64,
        base_url: &'a str,
    }
    let context = Context {
        severity: severity(e),
        headline,
        program_name: &prog.name,
        title: &e.title,
        status: wire_name(&status),
        message,
        escalation_id: e.id,
        base_url: base_url.trim_end_matches('/'),
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

/// Queues one notice to everyone paged so far (in the caller's transaction). `key`
/// makes it unique (`acknowledged`, `resolved`, `reopened:2`, …).
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
    if recipients.is_empty() {
        return Ok(false);
    }
    let Some(prog) = program::Entity::find_by_id(e.program_id).one(conn).await? else {
        return Ok(false);
    };
    let email = render_notice(e, &prog, status, headline, message, base_url)
        .map_err(|err| DbErr::Custom(err.to_string()))?;
    enqueue(
        conn,
        format!("escalation:{}:{key}", e.id),
        recipients.into_iter().map(|r| r.email).collect(),
        email,
        now,
        base_url,
    )
    .await
}
