//! Paging escalations (SPEC §6): the worker's fast tick finds open escalations whose next
//! page is due, pages the tier their own policy snapshot names (skipping at once a tier
//! that resolves to nobody), tells the previous tier it escalated, and marks an
//! escalation exhausted after the last tier and its repeats. Acknowledged escalations
//! left unresolved past the ack timeout re-open and re-page the tier that acknowledged.
//!
//! Exactly once per page, however many workers run: each page claims
//! `(escalation_id, seq)` (unique) in the same transaction as its emails and the
//! escalation's compare-and-set update; a worker killed mid-way rolls all of it back,
//! and the next tick pages again.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use entity::domain_event::{EscalationAdvanced, Event};
use entity::escalation::{self, EscalationStatus, EscalationView, NextAction};
use entity::escalation_policy::{self, Recipient};
use entity::link_token::{ACK_LINK_TTL, Link};
use entity::workflow::escalation::{self as escalation_flow, EscalationEvent};
use entity::workflow::{self, FollowUp, TransitionError};
use entity::{link_secret, program, user};
use mail::escalation as escalation_mail;
use sea_orm::sea_query::OnConflict;
use sea_orm::{
    ActiveValue::NotSet, ActiveValue::Set, ColumnTrait, Condition, DatabaseTransaction,
    EntityTrait, QueryFilter, QueryOrder, QuerySelect,
};

use super::{JobContext, JobError};

#[derive(Debug, Clone)]
pub struct EscalationSettings {
    /// Escalations handled per pass (the rest wait for the next tick).
    pub batch: u64,
}

impl Default for EscalationSettings {
    fn default() -> Self {
        Self { batch: 100 }
    }
}

#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct EscalationReport {
    /// Pages sent (one per tier paged), and emails queued for them.
    pub pages: usize,
    pub emails: usize,
    /// Tiers that resolved to nobody.
    pub skipped: usize,
    pub exhausted: usize,
    pub reopened: usize,
}

enum Outcome {
    /// Done for now.
    Done,
    /// Acted, and the next step is due at once (a skipped tier).
    Again,
}

pub async fn escalation_pass(
    ctx: &JobContext,
    now: DateTime<Utc>,
    settings: &EscalationSettings,
) -> Result<EscalationReport, JobError> {
    let mut report = EscalationReport::default();
    reopen_timed_out(ctx, now, &mut report).await?;
    let due: Vec<i64> = escalation::Entity::find()
        .select_only()
        .column(escalation::Column::Id)
        .filter(escalation::Column::Status.eq(EscalationStatus::Open))
        .filter(escalation::Column::NextPageAt.lte(now))
        .order_by_asc(escalation::Column::NextPageAt)
        .limit(settings.batch)
        .into_tuple()
        .all(&ctx.db)
        .await?;
    if due.is_empty() {
        return Ok(report);
    }
    let key = link_secret::get_or_create(&ctx.db, now).await?;
    for id in due {
        // Bounded: a policy has at most 10 tiers and 10 repeats.
        for _ in 0..(escalation_policy::MAX_TIERS + 12) {
            match step(ctx, id, now, &key, &mut report).await? {
                Outcome::Again => continue,
                Outcome::Done => break,
            }
        }
    }
    Ok(report)
}

async fn step(
    ctx: &JobContext,
    id: i64,
    now: DateTime<Utc>,
    key: &[u8],
    report: &mut EscalationReport,
) -> Result<Outcome, JobError> {
    let txn = entity::db::begin_write(&ctx.db).await?;
    let Some(e) = escalation::Entity::find_by_id(id).one(&txn).await? else {
        return Ok(Outcome::Done);
    };
    match escalation::next_action(&e, now) {
        NextAction::Wait => Ok(Outcome::Done),
        NextAction::Exhaust => {
            if worker_step(&txn, ctx, &e, EscalationEvent::Exhaust, now).await? {
                txn.commit().await?;
                report.exhausted += 1;
            }
            Ok(Outcome::Done)
        }
        NextAction::Page { step, tier } => page(ctx, txn, e, step, tier, now, key, report).await,
    }
}

#[allow(clippy::too_many_arguments)]
async fn page(
    ctx: &JobContext,
    txn: DatabaseTransaction,
    e: escalation::Model,
    step: i32,
    tier: usize,
    now: DateTime<Utc>,
    key: &[u8],
    report: &mut EscalationReport,
) -> Result<Outcome, JobError> {
    let policy = e.policy();
    let Some(prog) = program::Entity::find_by_id(e.program_id).one(&txn).await? else {
        return Ok(Outcome::Done);
    };
    let team = escalation_policy::team(&txn, e.program_id).await?;
    let tree = escalation::call_tree(&e, &team);
    // Only addresses mail can go to count as paged; the others are recorded on the
    // escalation (an address stored before addresses were checked strictly).
    let (recipients, unmailable): (Vec<Recipient>, Vec<Recipient>) = tree
        .get(tier)
        .map(|t| t.recipients.clone())
        .unwrap_or_default()
        .into_iter()
        .partition(|r| entity::user::is_plausible_email(&r.email));
    let earlier = escalation::paged_recipients(&txn, e.id).await?;
    let seq = e.page_seq + 1;
    // The claim: a second worker on the same page inserts nothing and backs off.
    let claimed = escalation::page::Entity::insert(escalation::page::ActiveModel {
        id: NotSet,
        escalation_id: Set(e.id),
        seq: Set(seq),
        tier_index: Set(tier as i32),
        recipients: Set(serde_json::to_string(&recipients).unwrap_or_else(|_| "[]".into())),
        paged_at: Set(now),
        worker_id: Set(ctx.worker_id.clone()),
    })
    .on_conflict(
        OnConflict::columns([
            escalation::page::Column::EscalationId,
            escalation::page::Column::Seq,
        ])
        .do_nothing()
        .to_owned(),
    )
    .exec_without_returning(&txn)
    .await?;
    if claimed != 1 {
        return Ok(Outcome::Done);
    }
    let tier_name = policy.tiers.get(tier).map_or("", |t| t.name.as_str());
    if !unmailable.is_empty() {
        escalation::record_event(
            &txn,
            e.id,
            "unmailable",
            Some(tier as i32),
            serde_json::json!({
                "tier": tier_name,
                "why": "these addresses cannot be mailed: correct them on the users",
                "recipients": unmailable
                    .iter()
                    .map(|r| serde_json::json!({"user_id": r.user_id, "name": r.name, "email": r.email}))
                    .collect::<Vec<_>>(),
            }),
            None,
            now,
        )
        .await?;
    }
    if recipients.is_empty() {
        // Nobody to page: skip at once, never wait on an empty tier.
        if !advance(&txn, &e, now, |m| {
            m.step = step + 1;
            m.page_seq = seq;
            m.next_page_at = Some(now);
        })
        .await?
        {
            return Ok(Outcome::Done);
        }
        escalation::record_event(
            &txn,
            e.id,
            "skipped",
            Some(tier as i32),
            serde_json::json!({"tier": tier_name, "why": if unmailable.is_empty() {
                "the tier resolves to nobody"
            } else {
                "nobody on the tier can be mailed"
            }}),
            None,
            now,
        )
        .await?;
        txn.commit().await?;
        report.skipped += 1;
        return Ok(Outcome::Again);
    }
    let repeat = step >= policy.tiers.len() as i32;
    let expires = now + ACK_LINK_TTL;
    let source = escalation_mail::source_of(&txn, &e).await?;
    let people: BTreeMap<i64, user::Model> = user::Entity::find()
        .filter(user::Column::Id.is_in(recipients.iter().map(|r| r.user_id)))
        .all(&txn)
        .await?
        .into_iter()
        .map(|u| (u.id, u))
        .collect();
    let mut queued = 0;
    for r in &recipients {
        let Some(person) = people.get(&r.user_id) else {
            continue;
        };
        let ack = Link::Ack {
            escalation_id: e.id,
            user_id: r.user_id,
            page_seq: seq,
        }
        .url(key, &ctx.public_base_url, Some(expires));
        let reader = mail::Reader::personal(person, key, &ctx.public_base_url, now);
        let paging = escalation_mail::Paging {
            tier,
            repeat,
            tiers: &tree,
            ack_url: &ack,
            ack_expires_at: expires,
        };
        let email = escalation_mail::render_page(&e, &prog, source.as_ref(), &paging, &reader)
            .map_err(|err| JobError::Template(err.to_string()))?;
        if escalation_mail::enqueue(
            &txn,
            entity::paging::page_delivery::page_dedupe_key(e.id, seq, r.user_id),
            vec![r.email.clone()],
            email,
            now,
            &ctx.public_base_url,
        )
        .await?
        {
            queued += 1;
        }
    }
    // Tell the earlier tiers it went up (not on a repeat of the same tier).
    if let Some(previous) = e.current_tier
        && previous as usize != tier
        && !earlier.is_empty()
    {
        let names: Vec<&str> = recipients.iter().map(|r| r.name.as_str()).collect();
        escalation_mail::notify(
            &txn,
            &e,
            &earlier,
            EscalationStatus::Open,
            &format!("escalated:{seq}"),
            (
                &format!("Escalated to tier {} ({tier_name})", tier + 1),
                &format!(
                    "Nobody acknowledged within the tier's wait, so tier {} ({tier_name}) was paged: {}. You can still acknowledge with the link in your page.",
                    tier + 1,
                    names.join(", ")
                ),
            ),
            &ctx.public_base_url,
            now,
        )
        .await?;
    }
    let next = now + escalation::wait_after(&policy, tier);
    if !advance(&txn, &e, now, |m| {
        m.step = step + 1;
        m.page_seq = seq;
        m.current_tier = Some(tier as i32);
        m.next_page_at = Some(next);
    })
    .await?
    {
        // Acknowledged or resolved meanwhile: drop the page (rolled back).
        return Ok(Outcome::Done);
    }
    escalation::record_event(
        &txn,
        e.id,
        "paged",
        Some(tier as i32),
        serde_json::json!({
            "tier": tier_name, "page": seq, "repeat": repeat,
            "recipients": recipients.iter().map(|r| &r.email).collect::<Vec<_>>(),
            "next_page_at": next,
        }),
        None,
        now,
    )
    .await?;
    if tier > 0 || repeat {
        entity::domain_event::emit(
            &txn,
            e.program_id,
            Event::EscalationAdvanced(EscalationAdvanced {
                escalation_id: e.id,
                tier: i32::try_from(tier).unwrap_or(i32::MAX),
                tier_name: tier_name.to_string(),
                repeat,
                recipients: recipients.len(),
            }),
            now,
        )
        .await?;
    }
    txn.commit().await?;
    report.pages += 1;
    report.emails += queued;
    Ok(Outcome::Done)
}

/// Runs the worker's own step (exhaust, re-open) through the escalation's machine, as the
/// system in the audit trail of the program's sponsor, and tells everyone paged so far.
/// `false` when it is no longer due (acknowledged or resolved meanwhile).
async fn worker_step(
    txn: &DatabaseTransaction,
    ctx: &JobContext,
    e: &escalation::Model,
    event: EscalationEvent,
    now: DateTime<Utc>,
) -> Result<bool, JobError> {
    let base_url = ctx.public_base_url.as_str();
    let actor = escalation_flow::worker_actor(txn, e, now, &ctx.chain_keys).await?;
    let step = escalation_flow::Step::by_worker(event, now);
    let done = match workflow::transition(
        txn,
        &actor,
        Condition::all(),
        e.id,
        &step,
        None,
        None,
        async |m| entity::audit::record_snapshot(&EscalationView::from(m)),
    )
    .await
    {
        Ok(done) => done,
        Err(TransitionError::Db(err)) => return Err(err.into()),
        Err(_) => return Ok(false),
    };
    for follow_up in done.follow_ups {
        if let FollowUp::TellPaged { escalation, told } = follow_up {
            escalation_mail::tell_paged(txn, &escalation, &told, "", base_url, now).await?;
        }
    }
    Ok(true)
}

/// Writes the paging schedule's next position if the escalation is still at the version
/// read (the engine's compare-and-set); `false` when someone acted meanwhile.
async fn advance(
    txn: &DatabaseTransaction,
    e: &escalation::Model,
    now: DateTime<Utc>,
    change: impl FnOnce(&mut escalation::Model),
) -> Result<bool, JobError> {
    Ok(
        workflow::write_next::<escalation::Entity>(txn, e.id, e, now, change)
            .await?
            .is_some(),
    )
}

/// Acknowledged but not resolved within the policy's ack timeout: re-open and re-page
/// the tier that acknowledged.
async fn reopen_timed_out(
    ctx: &JobContext,
    now: DateTime<Utc>,
    report: &mut EscalationReport,
) -> Result<(), JobError> {
    // Through the (status, next_page_at) index: an acknowledged escalation's
    // next_page_at is its ack deadline, so the tick reads only those past it. (None:
    // acknowledged by a release before deadlines were kept; `ack_timed_out` decides.)
    let acknowledged = escalation::Entity::find()
        .filter(escalation::Column::Status.eq(EscalationStatus::Acknowledged))
        .filter(
            sea_orm::Condition::any()
                .add(escalation::Column::NextPageAt.lte(now))
                .add(escalation::Column::NextPageAt.is_null()),
        )
        .all(&ctx.db)
        .await?;
    for e in acknowledged
        .into_iter()
        .filter(|e| escalation::ack_timed_out(e, now))
    {
        let txn = entity::db::begin_write(&ctx.db).await?;
        if !worker_step(&txn, ctx, &e, EscalationEvent::Reopen, now).await? {
            continue;
        }
        txn.commit().await?;
        report.reopened += 1;
    }
    Ok(())
}
