//! Escalations (SPEC §6): opened at once for every critical or major deviation (and by
//! API for anything urgent), paged tier by tier until someone acknowledges.
//!
//! State machine: `open → acknowledged → resolved`, `open → resolved`, `open →
//! exhausted` (after the last tier and its repeats), `acknowledged → open` when the ack
//! timeout passes without resolution (re-pages the tier that acknowledged). `exhausted`
//! can still be acknowledged or resolved. Every page and change is an escalation event.

use chrono::{DateTime, TimeDelta, Utc};
use sea_orm::entity::prelude::*;
use sea_orm::{ActiveValue::NotSet, ActiveValue::Set, ConnectionTrait};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::escalation_policy::{self, PolicyDoc};

#[derive(
    Debug, Clone, Copy, PartialEq, Eq, EnumIter, DeriveActiveEnum, Serialize, Deserialize, ToSchema,
)]
#[sea_orm(rs_type = "String", db_type = "String(StringLen::N(16))")]
#[serde(rename_all = "snake_case")]
pub enum EscalationStatus {
    #[sea_orm(string_value = "open")]
    Open,
    #[sea_orm(string_value = "acknowledged")]
    Acknowledged,
    #[sea_orm(string_value = "resolved")]
    Resolved,
    /// Every tier (and repeat) was paged and nobody acknowledged.
    #[sea_orm(string_value = "exhausted")]
    Exhausted,
}

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "escalations")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    pub program_id: i64,
    /// What caused it: `deviation`, or `manual`.
    pub source_type: String,
    pub source_id: Option<i64>,
    pub reason: String,
    pub status: EscalationStatus,
    pub opened_at: DateTimeUtc,
    pub resolved_at: Option<DateTimeUtc>,
    pub version: i32,
    pub title: String,
    /// `critical`, `major`, … (deviations), or the urgency given by API.
    pub criticality: Option<String>,
    /// Deviation category: the call tree pages members with this expertise tag.
    pub category: Option<String>,
    /// The policy as it was when the escalation opened (JSON [`PolicyDoc`]).
    pub policy_snapshot: Option<String>,
    /// Plan position of the next page.
    pub step: i32,
    /// Pages sent so far (each page's unique number).
    pub page_seq: i32,
    /// Tier of the latest page.
    pub current_tier: Option<i32>,
    /// When the worker acts next: page or exhaust (open), re-open after the ack timeout
    /// (acknowledged); `None` when nothing is pending.
    pub next_page_at: Option<DateTimeUtc>,
    pub acknowledged_at: Option<DateTimeUtc>,
    pub acknowledged_by_user_id: Option<i64>,
    /// `api` or `email`.
    pub ack_channel: Option<String>,
    pub reopen_count: i32,
    pub opened_by_user_id: Option<i64>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}

impl Model {
    pub fn policy(&self) -> PolicyDoc {
        self.policy_snapshot
            .as_deref()
            .and_then(|s| serde_json::from_str(s).ok())
            .unwrap_or_else(escalation_policy::default_policy)
    }
}

/// One page sent (claimed exactly once per `(escalation_id, seq)`).
pub mod page {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "escalation_pages")]
    pub struct Model {
        #[sea_orm(primary_key)]
        pub id: i64,
        pub escalation_id: i64,
        pub seq: i32,
        pub tier_index: i32,
        /// JSON array of `escalation_policy::Recipient`.
        pub recipients: String,
        pub paged_at: DateTimeUtc,
        pub worker_id: String,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

/// The escalation's log: opened, paged, skipped, escalated, acknowledged, re-opened,
/// exhausted, resolved.
pub mod event {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "escalation_events")]
    pub struct Model {
        #[sea_orm(primary_key)]
        pub id: i64,
        pub escalation_id: i64,
        pub kind: String,
        pub tier_index: Option<i32>,
        /// JSON: who was notified, why.
        pub detail: String,
        pub actor_user_id: Option<i64>,
        pub channel: Option<String>,
        pub at: DateTimeUtc,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

/// Acknowledgement links already used (single use).
pub mod ack_link_use {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "ack_link_uses")]
    pub struct Model {
        #[sea_orm(primary_key)]
        pub id: i64,
        #[sea_orm(unique)]
        pub token_hash: String,
        pub escalation_id: i64,
        pub user_id: i64,
        pub used_at: DateTimeUtc,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

/// Appends an event, in the caller's transaction.
pub async fn record_event<C: ConnectionTrait>(
    conn: &C,
    escalation_id: i64,
    kind: &str,
    tier_index: Option<i32>,
    detail: serde_json::Value,
    actor: Option<(i64, &str)>,
    at: DateTime<Utc>,
) -> Result<(), DbErr> {
    event::ActiveModel {
        id: NotSet,
        escalation_id: Set(escalation_id),
        kind: Set(kind.to_string()),
        tier_index: Set(tier_index),
        detail: Set(detail.to_string()),
        actor_user_id: Set(actor.map(|a| a.0)),
        channel: Set(actor.map(|a| a.1.to_string())),
        at: Set(at),
    }
    .insert(conn)
    .await?;
    Ok(())
}

/// The PostgreSQL channel a new escalation is announced on.
pub const WAKE_CHANNEL: &str = "cmo_escalations";

/// What opens an escalation.
#[derive(Debug, Clone)]
pub struct Opening<'a> {
    pub program_id: i64,
    pub source_type: &'a str,
    pub source_id: Option<i64>,
    pub reason: &'a str,
    pub title: &'a str,
    pub criticality: Option<&'a str>,
    pub category: Option<&'a str>,
    pub opened_by_user_id: Option<i64>,
}

/// Opens an escalation in the caller's transaction, with a snapshot of the program's
/// policy, due for its first page at once.
pub async fn open<C: ConnectionTrait>(
    conn: &C,
    opening: Opening<'_>,
    now: DateTime<Utc>,
) -> Result<Model, DbErr> {
    let policy = escalation_policy::for_program(conn, opening.program_id).await?;
    let e = ActiveModel {
        id: NotSet,
        program_id: Set(opening.program_id),
        source_type: Set(opening.source_type.to_string()),
        source_id: Set(opening.source_id),
        reason: Set(opening.reason.to_string()),
        status: Set(EscalationStatus::Open),
        opened_at: Set(now),
        resolved_at: Set(None),
        version: Set(1),
        title: Set(opening.title.chars().take(300).collect()),
        criticality: Set(opening.criticality.map(str::to_string)),
        category: Set(opening.category.map(str::to_string)),
        policy_snapshot: Set(Some(serde_json::to_string(&policy).unwrap_or_default())),
        step: Set(0),
        page_seq: Set(0),
        current_tier: Set(None),
        next_page_at: Set(Some(now)),
        acknowledged_at: Set(None),
        acknowledged_by_user_id: Set(None),
        ack_channel: Set(None),
        reopen_count: Set(0),
        opened_by_user_id: Set(opening.opened_by_user_id),
    }
    .insert(conn)
    .await?;
    record_event(
        conn,
        e.id,
        "opened",
        None,
        serde_json::json!({"reason": e.reason, "source_type": e.source_type, "source_id": e.source_id}),
        opening.opened_by_user_id.map(|u| (u, "api")),
        now,
    )
    .await?;
    crate::domain_event::emit(
        conn,
        e.program_id,
        crate::domain_event::Event::EscalationOpened(crate::domain_event::EscalationOpened {
            escalation_id: e.id,
            title: e.title.clone(),
            criticality: e.criticality.clone(),
            source_type: e.source_type.clone(),
            source_id: e.source_id,
        }),
        now,
    )
    .await?;
    crate::wake::at_commit(conn, WAKE_CHANNEL).await?;
    Ok(e)
}

/// What the worker does next with an open escalation whose time has come.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NextAction {
    /// Page `tier` (plan position `step`).
    Page { step: i32, tier: usize },
    /// Every tier and repeat was paged and the last wait passed.
    Exhaust,
    /// Nothing (not open, or not yet due).
    Wait,
}

pub fn next_action(e: &Model, now: DateTime<Utc>) -> NextAction {
    if e.status != EscalationStatus::Open || e.next_page_at.is_none_or(|at| at > now) {
        return NextAction::Wait;
    }
    match escalation_policy::tier_for_step(&e.policy(), e.step) {
        Some(tier) => NextAction::Page { step: e.step, tier },
        None => NextAction::Exhaust,
    }
}

/// When the page after one to `tier` is due: the tier's wait (validated ≥ 1 minute).
pub fn wait_after(doc: &PolicyDoc, tier: usize) -> TimeDelta {
    TimeDelta::minutes(doc.tiers.get(tier).map_or(15, |t| t.wait_minutes.max(1)) as i64)
}

/// Whether an acknowledged escalation has waited past the ack timeout unresolved.
pub fn ack_timed_out(e: &Model, now: DateTime<Utc>) -> bool {
    e.status == EscalationStatus::Acknowledged
        && e.acknowledged_at.is_some_and(|at| {
            now >= at + TimeDelta::minutes(e.policy().ack_timeout_minutes.max(1) as i64)
        })
}

/// Everyone paged so far, deduplicated by email (for "who took it" and "resolved").
pub async fn paged_recipients<C: ConnectionTrait>(
    conn: &C,
    escalation_id: i64,
) -> Result<Vec<escalation_policy::Recipient>, DbErr> {
    use sea_orm::QueryOrder;
    let pages = page::Entity::find()
        .filter(page::Column::EscalationId.eq(escalation_id))
        .order_by_asc(page::Column::Seq)
        .all(conn)
        .await?;
    let mut out: Vec<escalation_policy::Recipient> = Vec::new();
    for p in pages {
        let list: Vec<escalation_policy::Recipient> =
            serde_json::from_str(&p.recipients).unwrap_or_default();
        for r in list {
            if !out.iter().any(|o| o.email == r.email) {
                out.push(r);
            }
        }
    }
    Ok(out)
}

/// One tier of a call tree, resolved to people.
#[derive(Debug, Clone, Serialize)]
pub struct TierView {
    pub name: String,
    pub wait_minutes: i32,
    pub recipients: Vec<escalation_policy::Recipient>,
}

/// Who each tier of the escalation's own policy resolves to now.
pub fn call_tree(e: &Model, team: &[escalation_policy::Candidate]) -> Vec<TierView> {
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

// How an escalation reads on the wire (and in its audit entries).
#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({"id": 12, "program_id": 3, "source_type": "deviation", "source_id": 41,
    "title": "Bioburden excursion in harvest", "reason": "critical deviation DEV-2026-0041: Bioburden excursion in harvest",
    "criticality": "critical", "category": "equipment", "status": "open", "opened_at": "2026-11-28T02:00:00Z",
    "current_tier": 0, "next_page_at": "2026-11-28T02:15:00Z", "pages_sent": 1,
    "acknowledged_at": null, "acknowledged_by_user_id": null, "ack_channel": null,
    "resolved_at": null, "reopen_count": 0, "allowed_events": ["acknowledge", "resolve"], "version": 2}))]
pub struct EscalationView {
    pub id: i64,
    pub program_id: i64,
    /// `deviation` or `manual`.
    pub source_type: String,
    pub source_id: Option<i64>,
    pub title: String,
    pub reason: String,
    pub criticality: Option<String>,
    pub category: Option<String>,
    pub status: EscalationStatus,
    pub opened_at: DateTime<Utc>,
    /// 0-based tier of the latest page.
    pub current_tier: Option<i32>,
    /// Open: when the next tier is paged. Acknowledged: when the acknowledging tier is
    /// paged again unless the escalation is resolved first (the policy's ack timeout).
    pub next_page_at: Option<DateTime<Utc>>,
    pub pages_sent: i32,
    pub acknowledged_at: Option<DateTime<Utc>>,
    pub acknowledged_by_user_id: Option<i64>,
    /// `api` or `email`.
    pub ack_channel: Option<String>,
    pub resolved_at: Option<DateTime<Utc>>,
    pub reopen_count: i32,
    /// What people can do from its state (`acknowledge`, `resolve`).
    pub allowed_events: Vec<crate::workflow::escalation::EscalationEvent>,
    /// Single-record answers (GET by id, a step's answer) only: the events the state
    /// offers that this caller cannot take now, each with why; `allowed_events` then
    /// holds what this caller can do now. Lists leave it out.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub blocked_events: Option<Vec<crate::workflow::BlockedEvent>>,
    pub version: i32,
}

impl From<&Model> for EscalationView {
    fn from(e: &Model) -> Self {
        EscalationView {
            id: e.id,
            program_id: e.program_id,
            source_type: e.source_type.clone(),
            source_id: e.source_id,
            title: e.title.clone(),
            reason: e.reason.clone(),
            criticality: e.criticality.clone(),
            category: e.category.clone(),
            status: e.status,
            opened_at: e.opened_at,
            current_tier: e.current_tier,
            next_page_at: e.next_page_at,
            pages_sent: e.page_seq,
            acknowledged_at: e.acknowledged_at,
            acknowledged_by_user_id: e.acknowledged_by_user_id,
            ack_channel: e.ack_channel.clone(),
            resolved_at: e.resolved_at,
            reopen_count: e.reopen_count,
            allowed_events:
                <crate::workflow::escalation::Step as crate::workflow::Workflow>::allowed_events(e),
            blocked_events: None,
            version: e.version,
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub(crate) fn escalation(status: EscalationStatus, step: i32, due_in_minutes: i64) -> Model {
        let now = DateTime::from_timestamp(1_800_000_000, 0).unwrap();
        Model {
            id: 1,
            program_id: 1,
            source_type: "deviation".into(),
            source_id: Some(1),
            reason: "r".into(),
            status,
            opened_at: now,
            resolved_at: None,
            version: 1,
            title: "t".into(),
            criticality: Some("critical".into()),
            category: Some("equipment".into()),
            policy_snapshot: Some(
                serde_json::to_string(&escalation_policy::default_policy()).unwrap(),
            ),
            step,
            page_seq: step,
            current_tier: None,
            next_page_at: Some(now + TimeDelta::minutes(due_in_minutes)),
            acknowledged_at: Some(now),
            acknowledged_by_user_id: None,
            ack_channel: None,
            reopen_count: 0,
            opened_by_user_id: None,
        }
    }

    #[test]
    fn open_escalations_page_tier_by_tier_then_exhaust() {
        let now = DateTime::from_timestamp(1_800_000_000, 0).unwrap();
        let e = escalation(EscalationStatus::Open, 0, 0);
        assert_eq!(next_action(&e, now), NextAction::Page { step: 0, tier: 0 });
        assert_eq!(
            next_action(&escalation(EscalationStatus::Open, 3, 0), now),
            NextAction::Page { step: 3, tier: 2 },
            "the last tier repeats once by default"
        );
        assert_eq!(
            next_action(&escalation(EscalationStatus::Open, 4, 0), now),
            NextAction::Exhaust
        );
        assert_eq!(
            next_action(&escalation(EscalationStatus::Open, 1, 5), now),
            NextAction::Wait,
            "not due yet"
        );
        for status in [
            EscalationStatus::Acknowledged,
            EscalationStatus::Resolved,
            EscalationStatus::Exhausted,
        ] {
            assert_eq!(
                next_action(&escalation(status, 0, 0), now),
                NextAction::Wait
            );
        }
    }

    #[test]
    fn acknowledged_escalations_time_out_after_the_policy_timeout() {
        let now = DateTime::from_timestamp(1_800_000_000, 0).unwrap();
        let e = escalation(EscalationStatus::Acknowledged, 1, 0);
        assert!(!ack_timed_out(&e, now + TimeDelta::minutes(59)));
        assert!(ack_timed_out(&e, now + TimeDelta::minutes(60)));
        assert!(!ack_timed_out(
            &escalation(EscalationStatus::Resolved, 1, 0),
            now + TimeDelta::days(1)
        ));
    }
}
