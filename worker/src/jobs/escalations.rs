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

use chrono::{DateTime, Utc};
use entity::domain_event::{EscalationAdvanced, Event};
use entity::escalation::{self, EscalationStatus, NextAction};
use entity::escalation_policy::{self, Recipient};
use entity::link_token::{ACK_LINK_TTL, Link};
use entity::{link_secret, program};
use mail::escalation as escalation_mail;
use sea_orm::sea_query::{Expr, ExprTrait, OnConflict};
use sea_orm::{
    ActiveEnum, ActiveValue::NotSet, ActiveValue::Set, ColumnTrait, DatabaseTransaction,
    EntityTrait, QueryFilter, QueryOrder, QuerySelect,
};

use super::{JobContext, JobError};

#[derive(Debug, Clone)]
pub struct EscalationSettings {
    pub public_base_url: String,
    /// Escalations handled per pass (the rest wait for the next tick).
    pub batch: u64,
}

impl Default for EscalationSettings {
    fn default() -> Self {
        Self {
            public_base_url: "http://127.0.0.1:8080".to_string(),
            batch: 100,
        }
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
    reopen_timed_out(ctx, now, settings, &mut report).await?;
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
            match step(ctx, id, now, settings, &key, &mut report).await? {
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
    settings: &EscalationSettings,
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
            if !compare_and_set(&txn, &e, |u| {
                u.col_expr(
                    escalation::Column::Status,
                    Expr::value(EscalationStatus::Exhausted.to_value()),
                )
                .col_expr(
                    escalation::Column::NextPageAt,
                    Expr::value(Option::<DateTime<Utc>>::None),
                )
            })
            .await?
            {
                return Ok(Outcome::Done);
            }
            audit_system_transition(&txn, &e, "exhaust", EscalationStatus::Exhausted, now).await?;
            escalation::record_event(
                &txn,
                e.id,
                "exhausted",
                e.current_tier,
                serde_json::json!({"pages": e.page_seq}),
                None,
                now,
            )
            .await?;
            escalation_mail::notify_paged(
                &txn,
                &e,
                EscalationStatus::Exhausted,
                "exhausted",
                "Nobody acknowledged: every tier was paged",
                "Every tier of the call tree was paged and nobody acknowledged. The escalation stays visible as exhausted; anyone paged can still acknowledge it.",
                &settings.public_base_url,
                now,
            )
            .await?;
            txn.commit().await?;
            report.exhausted += 1;
            Ok(Outcome::Done)
        }
        NextAction::Page { step, tier } => {
            page(ctx, txn, e, step, tier, now, settings, key, report).await
        }
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
    settings: &EscalationSettings,
    key: &[u8],
    report: &mut EscalationReport,
) -> Result<Outcome, JobError> {
    let policy = e.policy();
    let Some(prog) = program::Entity::find_by_id(e.program_id).one(&txn).await? else {
        return Ok(Outcome::Done);
    };
    let team = escalation_policy::team(&txn, e.program_id).await?;
    let tree = escalation::call_tree(&e, &team);
    let recipients: Vec<Recipient> = tree
        .get(tier)
        .map(|t| t.recipients.clone())
        .unwrap_or_default();
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
    if recipients.is_empty() {
        // Nobody to page: skip at once, never wait on an empty tier.
        if !compare_and_set(&txn, &e, |u| {
            u.col_expr(escalation::Column::Step, Expr::value(step + 1))
                .col_expr(escalation::Column::PageSeq, Expr::value(seq))
                .col_expr(escalation::Column::NextPageAt, Expr::value(Some(now)))
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
            serde_json::json!({"tier": tier_name, "why": "the tier resolves to nobody"}),
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
    let mut queued = 0;
    for r in &recipients {
        let ack = Link::Ack {
            escalation_id: e.id,
            user_id: r.user_id,
            page_seq: seq,
        }
        .url(key, &settings.public_base_url, Some(expires));
        let email = escalation_mail::render_page(
            &e,
            &prog,
            tier,
            repeat,
            &tree,
            &ack,
            expires,
            &settings.public_base_url,
        )
        .map_err(|err| JobError::Template(err.to_string()))?;
        if escalation_mail::enqueue(
            &txn,
            format!("escalation:{}:page:{seq}:user:{}", e.id, r.user_id),
            vec![r.email.clone()],
            email,
            now,
            &settings.public_base_url,
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
        let email = escalation_mail::render_notice(
            &e,
            &prog,
            EscalationStatus::Open,
            &format!("Escalated to tier {} ({tier_name})", tier + 1),
            &format!(
                "Nobody acknowledged within the tier's wait, so tier {} ({tier_name}) was paged: {}. You can still acknowledge with the link in your page.",
                tier + 1,
                names.join(", ")
            ),
            &settings.public_base_url,
        )
        .map_err(|err| JobError::Template(err.to_string()))?;
        escalation_mail::enqueue(
            &txn,
            format!("escalation:{}:escalated:{seq}", e.id),
            earlier.iter().map(|r| r.email.clone()).collect(),
            email,
            now,
            &settings.public_base_url,
        )
        .await?;
    }
    let next = now + escalation::wait_after(&policy, tier);
    if !compare_and_set(&txn, &e, |u| {
        u.col_expr(escalation::Column::Step, Expr::value(step + 1))
            .col_expr(escalation::Column::PageSeq, Expr::value(seq))
            .col_expr(
                escalation::Column::CurrentTier,
                Expr::value(Some(tier as i32)),
            )
            .col_expr(escalation::Column::NextPageAt, Expr::value(Some(next)))
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

/// Puts a transition the worker made on its own (no user acted) into the audit trail of
/// the program's sponsor, like every other escalation state change.
async fn audit_system_transition(
    txn: &DatabaseTransaction,
    e: &escalation::Model,
    action: &'static str,
    to: EscalationStatus,
    now: DateTime<Utc>,
) -> Result<(), JobError> {
    let Some(prog) = program::Entity::find_by_id(e.program_id).one(txn).await? else {
        return Ok(());
    };
    entity::audit_trail::append(
        txn,
        &entity::audit_trail::Actor {
            org_id: prog.sponsor_org_id,
            user_id: None,
            request_id: None,
            at: now,
        },
        entity::audit_trail::Entry::new("escalation", e.id, action)
            .before(serde_json::json!({"status": e.status, "version": e.version}))
            .after(serde_json::json!({"status": to, "version": e.version + 1}))
            .reason(Some(match to {
                EscalationStatus::Exhausted => {
                    "every tier was paged without acknowledgement".to_string()
                }
                _ => "acknowledged but not resolved within the acknowledgement timeout".to_string(),
            })),
    )
    .await?;
    Ok(())
}

/// Applies `set` to the escalation if it is still at the version read.
async fn compare_and_set(
    txn: &DatabaseTransaction,
    e: &escalation::Model,
    set: impl FnOnce(sea_orm::UpdateMany<escalation::Entity>) -> sea_orm::UpdateMany<escalation::Entity>,
) -> Result<bool, JobError> {
    let update = set(escalation::Entity::update_many()).col_expr(
        escalation::Column::Version,
        Expr::col(escalation::Column::Version).add(1),
    );
    let res = update
        .filter(escalation::Column::Id.eq(e.id))
        .filter(escalation::Column::Version.eq(e.version))
        .exec(txn)
        .await?;
    Ok(res.rows_affected == 1)
}

/// Acknowledged but not resolved within the policy's ack timeout: re-open and re-page
/// the tier that acknowledged.
async fn reopen_timed_out(
    ctx: &JobContext,
    now: DateTime<Utc>,
    settings: &EscalationSettings,
    report: &mut EscalationReport,
) -> Result<(), JobError> {
    let acknowledged = escalation::Entity::find()
        .filter(escalation::Column::Status.eq(EscalationStatus::Acknowledged))
        .all(&ctx.db)
        .await?;
    for e in acknowledged
        .into_iter()
        .filter(|e| escalation::ack_timed_out(e, now))
    {
        let txn = entity::db::begin_write(&ctx.db).await?;
        let tier = usize::try_from(e.current_tier.unwrap_or(0)).unwrap_or(0);
        let reopened = e.reopen_count + 1;
        if !compare_and_set(&txn, &e, |u| {
            u.col_expr(
                escalation::Column::Status,
                Expr::value(EscalationStatus::Open.to_value()),
            )
            .col_expr(
                escalation::Column::Step,
                Expr::value(escalation_policy::first_step_of(tier)),
            )
            .col_expr(escalation::Column::NextPageAt, Expr::value(Some(now)))
            .col_expr(escalation::Column::ReopenCount, Expr::value(reopened))
        })
        .await?
        {
            continue;
        }
        audit_system_transition(&txn, &e, "reopen", EscalationStatus::Open, now).await?;
        escalation::record_event(
            &txn,
            e.id,
            "reopened",
            Some(tier as i32),
            serde_json::json!({"why": "acknowledged but not resolved within the ack timeout",
                "acknowledged_by_user_id": e.acknowledged_by_user_id, "acknowledged_at": e.acknowledged_at}),
            None,
            now,
        )
        .await?;
        escalation_mail::notify_paged(
            &txn,
            &e,
            EscalationStatus::Open,
            &format!("reopened:{reopened}"),
            "Re-opened: acknowledged but not resolved in time",
            "The escalation was acknowledged but not resolved within the policy's acknowledgement timeout, so it is open again and the tier that acknowledged it is paged again.",
            &settings.public_base_url,
            now,
        )
        .await?;
        txn.commit().await?;
        report.reopened += 1;
    }
    Ok(())
}
