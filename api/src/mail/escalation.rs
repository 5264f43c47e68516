//! Escalation emails (SPEC §6): the page (personal acknowledgement link, call tree) and
//! the notices to everyone already paged (escalated, acknowledged, re-opened, resolved).
//! The worker queues pages; the api queues notices in the transaction of the change.

use std::collections::BTreeMap;

use chrono::{DateTime, TimeDelta, Utc};
use entity::escalation::{self, EscalationStatus};
use entity::escalation_policy::{self, Candidate, Recipient};
use entity::link_token::{self, Claims};
use entity::outbox::{self, Draft};
use entity::{program, team_member, user};
use sea_orm::{ColumnTrait, ConnectionTrait, DbErr, EntityTrait, QueryFilter, QueryOrder};
use serde::Serialize;

use super::RenderError;
use crate::routes::wire_name;

/// Purpose of acknowledgement tokens.
pub const ACK_PURPOSE: &str = "ack-escalation";
/// How long an acknowledgement link works.
pub const ACK_LINK_TTL: TimeDelta = TimeDelta::hours(24);

/// The program's team as the call tree sees it (active users with their email).
pub async fn team<C: ConnectionTrait>(conn: &C, program_id: i64) -> Result<Vec<Candidate>, DbErr> {
    let members = team_member::Entity::find()
        .filter(team_member::Column::ProgramId.eq(program_id))
        .order_by_asc(team_member::Column::Id)
        .all(conn)
        .await?;
    let users: BTreeMap<i64, user::Model> = user::Entity::find()
        .filter(user::Column::Id.is_in(members.iter().map(|m| m.user_id)))
        .all(conn)
        .await?
        .into_iter()
        .map(|u| (u.id, u))
        .collect();
    Ok(members
        .into_iter()
        .filter_map(|m| {
            let u = users.get(&m.user_id)?;
            Some(Candidate {
                member_id: m.id,
                user_id: u.id,
                name: u.display_name.clone(),
                email: if u.active {
                    u.email.clone()
                } else {
                    String::new()
                },
                program_role: m.program_role.clone(),
                phone: u.phone.clone(),
                governance_tier: m.governance_tier,
                expertise_tags: serde_json::from_str(&m.expertise_tags).unwrap_or_default(),
            })
        })
        .collect())
}

/// `purpose|escalation:{id}:user:{uid}:page:{seq}|expiry`.
pub fn ack_url(
    key: &[u8],
    base_url: &str,
    escalation_id: i64,
    user_id: i64,
    page_seq: i32,
    expires_at: DateTime<Utc>,
) -> String {
    let token = link_token::sign(
        key,
        &Claims {
            purpose: ACK_PURPOSE.to_string(),
            subject: format!("escalation:{escalation_id}:user:{user_id}:page:{page_seq}"),
            expires_at: Some(expires_at),
        },
    );
    format!(
        "{}/api/v1/escalations/ack?token={token}",
        base_url.trim_end_matches('/')
    )
}

/// `(escalation_id, user_id)` of a verified acknowledgement token.
pub fn ack_subject(claims: &Claims) -> Option<(i64, i64)> {
    let mut parts = claims.subject.split(':');
    match (
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
    ) {
        (Some("escalation"), Some(e), Some("user"), Some(u), Some("page")) => {
            Some((e.parse().ok()?, u.parse().ok()?))
        }
        _ => None,
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct TierView {
    pub name: String,
    pub wait_minutes: i32,
    pub recipients: Vec<Recipient>,
}

/// Who each tier of the escalation's own policy resolves to now.
pub fn call_tree(e: &escalation::Model, team: &[Candidate]) -> Vec<TierView> {
    e.policy()
        .tiers
        .iter()
        .map(|t| TierView {
            name: t.name.clone(),
            wait_minutes: t.wait_minutes,
            recipients: escalation_policy::resolve(t, e.category.as_deref(), team),
        })
        .collect()
}

fn local(tz: &str, at: DateTime<Utc>) -> String {
    super::local_time(entity::schedule::zone(tz), at)
}

fn severity(e: &escalation::Model) -> String {
    e.criticality
        .clone()
        .unwrap_or_else(|| "urgent".to_string())
}

pub struct RenderedEmail {
    pub subject: String,
    pub text_body: String,
    pub html_body: String,
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
) -> Result<RenderedEmail, RenderError> {
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
    Ok(RenderedEmail {
        subject: format!(
            "[{}] {}: {} \u{2014} escalation tier {} ({})",
            context.severity.to_uppercase(),
            prog.name,
            e.title,
            tier + 1,
            context.tier_name
        ),
        text_body: super::render("escalation_page.txt", &context)?,
        html_body: super::render("escalation_page.html", &context)?,
    })
}

/// A notice to people already paged.
pub fn render_notice(
    e: &escalation::Model,
    prog: &program::Model,
    status: EscalationStatus,
    headline: &str,
    message: &str,
    base_url: &str,
) -> Result<RenderedEmail, RenderError> {
    #[derive(Serialize)]
    struct Context<'a> {
        headline: &'a str,
        program_name: &'a str,
        title: &'a str,
        status: String,
        message: &'a str,
        escalation_id: i64,
        base_url: &'a str,
    }
    let context = Context {
        headline,
        program_name: &prog.name,
        title: &e.title,
        status: wire_name(&status),
        message,
        escalation_id: e.id,
        base_url: base_url.trim_end_matches('/'),
    };
    Ok(RenderedEmail {
        subject: format!(
            "[{}] {}: {} \u{2014} {headline}",
            severity(e).to_uppercase(),
            prog.name,
            e.title
        ),
        text_body: super::render("escalation_notice.txt", &context)?,
        html_body: super::render("escalation_notice.html", &context)?,
    })
}

/// The domain of Message-IDs of emails the api queues.
pub fn message_domain(base_url: &str) -> String {
    url_host(base_url).unwrap_or_else(|| "localhost".to_string())
}

fn url_host(base_url: &str) -> Option<String> {
    let rest = base_url.split("://").nth(1)?;
    let host = rest.split(['/', ':']).next()?;
    (!host.is_empty()).then(|| host.to_string())
}

/// Queues a rendered escalation email (in the caller's transaction).
pub async fn enqueue<C: ConnectionTrait>(
    conn: &C,
    dedupe_key: String,
    to: Vec<String>,
    email: RenderedEmail,
    now: DateTime<Utc>,
    domain: &str,
) -> Result<bool, DbErr> {
    outbox::enqueue(
        conn,
        Draft {
            dedupe_key,
            to,
            cc: Vec::new(),
            subject: email.subject,
            text_body: email.text_body,
            html_body: email.html_body,
            list_unsubscribe: None,
        },
        now,
        domain,
    )
    .await
}

/// Queues one notice to everyone paged so far (in the caller's transaction). `key`
/// makes it unique (`acknowledged`, `resolved`, `reopened:2`, …).
#[allow(clippy::too_many_arguments)]
pub async fn notify_paged<C: ConnectionTrait>(
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
        &message_domain(base_url),
    )
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ack_subjects_round_trip_and_junk_is_refused() {
        let claims = |subject: &str| Claims {
            purpose: ACK_PURPOSE.into(),
            subject: subject.into(),
            expires_at: None,
        };
        assert_eq!(
            ack_subject(&claims("escalation:4:user:9:page:2")),
            Some((4, 9))
        );
        assert_eq!(ack_subject(&claims("escalation:x:user:9:page:2")), None);
        assert_eq!(ack_subject(&claims("member:4")), None);
    }

    #[test]
    fn message_domains_come_from_the_base_url() {
        assert_eq!(
            message_domain("https://cmo.example.com/x"),
            "cmo.example.com"
        );
        assert_eq!(message_domain("http://127.0.0.1:8080"), "127.0.0.1");
        assert_eq!(message_domain("nonsense"), "localhost");
    }
}
