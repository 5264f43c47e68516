//! Webhook deliveries: claims due deliveries (safe with several workers), POSTs the
//! signed event, records the attempt and what follows (delivered, retry later, failed),
//! and disables a subscription whose receiver is gone (410) or failing for too long,
//! emailing the organization's admins.
//!
//! At least once: a worker that dies after the receiver answered but before recording
//! it leaves a claim that expires, and the event is sent again with the same
//! `X-Cmo-Event-Id`. Receivers deduplicate on it.

use std::collections::HashMap;
use std::time::Instant;

use chrono::{DateTime, TimeDelta, Utc};
use entity::enums::Role;
use entity::outbox::Draft;
use entity::webhook::{self, DeliveryStatus, Response, RetryPolicy, Verdict, attempt, delivery};
use entity::{domain_event, user};
use sea_orm::sea_query::{Expr, ExprTrait};
use sea_orm::{
    ActiveEnum, ActiveValue::NotSet, ActiveValue::Set, ColumnTrait, DatabaseTransaction, DbBackend,
    EntityTrait, QueryFilter, Statement,
};

use super::{JobContext, JobError};
use crate::outbound::http::{HttpClient, HttpError};

#[derive(Debug, Clone)]
pub struct WebhookSettings {
    pub policy: RetryPolicy,
    /// Deliveries claimed per pass.
    pub batch: u64,
    /// POSTs in flight at once per worker.
    pub concurrency: usize,
}

impl Default for WebhookSettings {
    fn default() -> Self {
        Self {
            policy: RetryPolicy::default(),
            batch: 200,
            concurrency: 16,
        }
    }
}

#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct DeliveryReport {
    pub claimed: usize,
    pub delivered: usize,
    pub retried: usize,
    pub failed: usize,
    /// Subscriptions this pass disabled.
    pub disabled: usize,
}

/// How long a claim lasts beyond the HTTP deadline: a worker that dies mid-delivery
/// loses its claim after this.
fn claim_ttl(client: &HttpClient) -> TimeDelta {
    TimeDelta::from_std(client.timeout()).unwrap_or(TimeDelta::seconds(30)) + TimeDelta::seconds(60)
}

/// Claims up to `batch` due deliveries of active subscriptions for this worker.
pub async fn claim(
    ctx: &JobContext,
    now: DateTime<Utc>,
    batch: u64,
    ttl: TimeDelta,
) -> Result<Vec<delivery::Model>, JobError> {
    let backend = ctx.db.get_database_backend();
    let until = now + ttl;
    let due = "((d.status = 'pending' AND d.next_attempt_at <= {now}) \
               OR (d.status = 'delivering' AND d.claimed_until < {now}))";
    let sql = match backend {
        DbBackend::Postgres => format!(
            "UPDATE webhook_deliveries SET status = 'delivering', claimed_by = $1, claimed_until = $2 \
             WHERE id IN (SELECT d.id FROM webhook_deliveries d \
                 JOIN webhook_subscriptions s ON s.id = d.subscription_id AND s.active \
                 WHERE {} ORDER BY d.id LIMIT $4 FOR UPDATE OF d SKIP LOCKED) \
             RETURNING *",
            due.replace("{now}", "$3")
        ),
        _ => format!(
            "UPDATE webhook_deliveries SET status = 'delivering', claimed_by = ?1, claimed_until = ?2 \
             WHERE id IN (SELECT d.id FROM webhook_deliveries d \
                 JOIN webhook_subscriptions s ON s.id = d.subscription_id AND s.active \
                 WHERE {} ORDER BY d.id LIMIT ?4) \
             RETURNING *",
            due.replace("{now}", "?3")
        ),
    };
    let values: Vec<sea_orm::Value> = vec![
        ctx.worker_id.clone().into(),
        until.into(),
        now.into(),
        (batch as i64).into(),
    ];
    let mut rows = delivery::Entity::find()
        .from_raw_sql(Statement::from_sql_and_values(backend, sql, values))
        .all(&ctx.db)
        .await?;
    rows.sort_by_key(|d| d.id);
    Ok(rows)
}

/// One attempt's result, ready to record.
struct Attempted {
    delivery: delivery::Model,
    started_at: DateTime<Utc>,
    duration_ms: i32,
    result: Result<crate::outbound::http::Answer, HttpError>,
}

/// Outcomes recorded per transaction (as in the email dispatcher).
pub const RECORD_EVERY: usize = 64;

/// Claims and delivers until nothing is due (or `max_rounds` batches), recording the
/// outcomes in small transactions as they come in.
pub async fn delivery_pass(
    ctx: &JobContext,
    client: &HttpClient,
    now: DateTime<Utc>,
    settings: &WebhookSettings,
) -> Result<DeliveryReport, JobError> {
    let mut report = DeliveryReport::default();
    // PostgreSQL: the events committed since are given their cursors, which queues their
    // deliveries (the commit's NOTIFY woke this loop for it). Queued ones go out anyway.
    entity::domain_event::catch_up(&ctx.db).await;
    // Bounded: a steady stream of new events cannot keep one pass running forever.
    for _ in 0..50 {
        let claimed = deliver_batch(ctx, client, now, settings, &mut report).await?;
        if claimed < settings.batch as usize {
            break;
        }
    }
    Ok(report)
}

async fn deliver_batch(
    ctx: &JobContext,
    client: &HttpClient,
    now: DateTime<Utc>,
    settings: &WebhookSettings,
    report: &mut DeliveryReport,
) -> Result<usize, JobError> {
    use futures_util::StreamExt;
    let rows = claim(ctx, now, settings.batch, claim_ttl(client)).await?;
    let claimed = rows.len();
    report.claimed += claimed;
    if rows.is_empty() {
        return Ok(0);
    }
    let events: HashMap<i64, domain_event::Model> = domain_event::Entity::find()
        .filter(domain_event::Column::Id.is_in(rows.iter().map(|d| d.event_id)))
        .all(&ctx.db)
        .await?
        .into_iter()
        .map(|e| (e.id, e))
        .collect();
    let subs: HashMap<i64, webhook::Model> = webhook::Entity::find()
        .filter(webhook::Column::Id.is_in(rows.iter().map(|d| d.subscription_id)))
        .all(&ctx.db)
        .await?
        .into_iter()
        .map(|s| (s.id, s))
        .collect();
    let (done, mut to_record) = tokio::sync::mpsc::channel(2);
    let events = &events;
    let subs = &subs;
    let sending = async move {
        let mut chunks = futures_util::stream::iter(rows)
            .map(|d| async move {
                let started_at = ctx.now();
                let clock = Instant::now();
                let result = match (events.get(&d.event_id), subs.get(&d.subscription_id)) {
                    (Some(e), Some(s)) => post(client, s, e, &d).await,
                    _ => Err(HttpError::Protocol(
                        "event or subscription no longer exists".to_string(),
                    )),
                };
                Attempted {
                    delivery: d,
                    started_at,
                    duration_ms: i32::try_from(clock.elapsed().as_millis()).unwrap_or(i32::MAX),
                    result,
                }
            })
            .buffer_unordered(settings.concurrency.max(1))
            .ready_chunks(RECORD_EVERY);
        while let Some(chunk) = chunks.next().await {
            if done.send(chunk).await.is_err() {
                break;
            }
        }
    };
    let recording = async move {
        let mut local = DeliveryReport::default();
        while let Some(chunk) = to_record.recv().await {
            record(ctx, now, settings, chunk, subs, &mut local).await?;
        }
        Ok::<_, JobError>(local)
    };
    let ((), local) = tokio::join!(sending, recording);
    let local = local?;
    report.delivered += local.delivered;
    report.retried += local.retried;
    report.failed += local.failed;
    report.disabled += local.disabled;
    Ok(claimed)
}

/// The request: the event as the feed shows it, signed with the subscription's secret
/// over `"{timestamp}.{body}"`.
async fn post(
    client: &HttpClient,
    sub: &webhook::Model,
    event: &domain_event::Model,
    d: &delivery::Model,
) -> Result<crate::outbound::http::Answer, HttpError> {
    let view = domain_event::EventView::try_from(event).map_err(|e| {
        HttpError::Protocol(format!("stored event {} unreadable: {e}", event.cursor))
    })?;
    let body = serde_json::to_vec(&view).map_err(|e| HttpError::Protocol(e.to_string()))?;
    // Wall-clock time, not the injected domain clock: receivers compare it with their
    // own clocks to refuse stale replays.
    let timestamp = Utc::now().timestamp();
    // The message id is the event's cursor: the same on every retry and redelivery.
    let webhook_id = event.cursor.to_string();
    let mut headers = vec![
        // Standard Webhooks: receivers verify with the published libraries.
        (
            "webhook-signature",
            webhook::standard_signature(&sub.secret, &webhook_id, timestamp, &body),
        ),
        ("webhook-id", webhook_id),
        ("webhook-timestamp", timestamp.to_string()),
        // Deprecated, sent for one more release (README: Webhooks).
        ("X-Cmo-Event-Id", event.cursor.to_string()),
        ("X-Cmo-Event-Type", event.event_type.clone()),
        ("X-Cmo-Delivery-Id", d.id.to_string()),
        ("X-Cmo-Timestamp", timestamp.to_string()),
        (
            "X-Cmo-Signature",
            webhook::signature(&sub.secret, timestamp, &body),
        ),
    ];
    // The trace of the request that caused the event continues at the receiver.
    if let Some(trace_id) = &event.trace_id {
        headers.push(("traceparent", entity::ops::trace::traceparent(trace_id)));
    }
    client.post_json(&sub.url, &headers, &body).await
}

async fn record(
    ctx: &JobContext,
    now: DateTime<Utc>,
    settings: &WebhookSettings,
    chunk: Vec<Attempted>,
    subs: &HashMap<i64, webhook::Model>,
    report: &mut DeliveryReport,
) -> Result<(), JobError> {
    let txn = entity::db::begin_write(&ctx.db).await?;
    let mut log = Vec::with_capacity(chunk.len());
    // Per subscription: failures in this chunk, whether one succeeded, and a 410.
    let mut streaks: HashMap<i64, (i32, bool, bool)> = HashMap::new();
    let mut delivered: HashMap<i32, Vec<i64>> = HashMap::new();
    for a in chunk {
        let d = &a.delivery;
        let attempt_no = d.attempts + 1;
        let response = match &a.result {
            Ok(answer) => Response::Status {
                code: answer.status,
                retry_after: answer.retry_after,
            },
            Err(_) => Response::NoAnswer,
        };
        let verdict = settings
            .policy
            .verdict(&response, attempt_no, rand::random::<f64>());
        let (status, next, outcome) = match verdict {
            Verdict::Delivered => (DeliveryStatus::Delivered, now, "delivered"),
            Verdict::Retry(delay) => (DeliveryStatus::Pending, now + delay, "retry"),
            Verdict::Failed | Verdict::Gone => (DeliveryStatus::Failed, now, "failed"),
        };
        // Failures and retries: one statement each (their error and next attempt differ).
        let (code, error, excerpt) = match &a.result {
            Ok(answer) => (
                Some(i32::from(answer.status)),
                (!(200..300).contains(&answer.status)).then(|| format!("HTTP {}", answer.status)),
                Some(answer.excerpt.clone()),
            ),
            Err(e) => (None, Some(e.to_string()), None),
        };
        if verdict == Verdict::Delivered {
            // Successes are written together below: one statement per status code.
            delivered.entry(code.unwrap_or(200)).or_default().push(d.id);
            streaks.entry(d.subscription_id).or_default().1 = true;
            log.push(attempt_row(
                ctx, &a, attempt_no, code, None, excerpt, outcome,
            ));
            continue;
        }
        let updated = settle(ctx, status, code, now)
            .col_expr(delivery::Column::Attempts, Expr::value(attempt_no))
            .col_expr(delivery::Column::NextAttemptAt, Expr::value(next))
            .col_expr(delivery::Column::LastError, Expr::value(error.clone()))
            .filter(delivery::Column::Id.eq(d.id))
            .exec(&txn)
            .await?;
        if updated.rows_affected != 1 {
            continue;
        }
        let streak = streaks.entry(d.subscription_id).or_default();
        streak.0 += 1;
        match verdict {
            Verdict::Retry(_) => report.retried += 1,
            _ => report.failed += 1,
        }
        if verdict == Verdict::Gone {
            streak.2 = true;
        }
        log.push(attempt_row(
            ctx, &a, attempt_no, code, error, excerpt, outcome,
        ));
    }
    for (code, ids) in delivered {
        let done = settle(ctx, DeliveryStatus::Delivered, Some(code), now)
            .col_expr(
                delivery::Column::Attempts,
                Expr::col(delivery::Column::Attempts).add(1),
            )
            .col_expr(
                delivery::Column::LastError,
                Expr::value(Option::<String>::None),
            )
            .col_expr(delivery::Column::DeliveredAt, Expr::value(now))
            .filter(delivery::Column::Id.is_in(ids))
            .exec(&txn)
            .await?;
        report.delivered += done.rows_affected as usize;
    }
    if !log.is_empty() {
        attempt::Entity::insert_many(log).exec(&txn).await?;
    }
    for (sub_id, (failures, succeeded, gone)) in streaks {
        let Some(sub) = subs.get(&sub_id) else {
            continue;
        };
        if succeeded && failures == 0 {
            // Only write when there is a streak to reset.
            webhook::Entity::update_many()
                .col_expr(webhook::Column::ConsecutiveFailures, Expr::value(0))
                .filter(webhook::Column::Id.eq(sub_id))
                .filter(webhook::Column::ConsecutiveFailures.ne(0))
                .exec(&txn)
                .await?;
            continue;
        }
        let streak = if succeeded {
            // A success in the same chunk: the streak is what failed after it, at most.
            webhook::Entity::update_many()
                .col_expr(webhook::Column::ConsecutiveFailures, Expr::value(failures))
                .filter(webhook::Column::Id.eq(sub_id))
                .exec(&txn)
                .await?;
            failures
        } else {
            webhook::Entity::update_many()
                .col_expr(
                    webhook::Column::ConsecutiveFailures,
                    Expr::col(webhook::Column::ConsecutiveFailures).add(failures),
                )
                .filter(webhook::Column::Id.eq(sub_id))
                .exec(&txn)
                .await?;
            webhook::Entity::find_by_id(sub_id)
                .one(&txn)
                .await?
                .map_or(failures, |s| s.consecutive_failures)
        };
        let reason = if gone {
            Some("the receiver answered 410 Gone".to_string())
        } else if streak >= settings.policy.disable_after {
            Some(format!("{streak} failed delivery attempts in a row"))
        } else {
            None
        };
        if let Some(reason) = reason
            && disable(&txn, ctx, sub, &reason, now).await?
        {
            report.disabled += 1;
        }
    }
    txn.commit().await?;
    Ok(())
}

/// What every recorded outcome writes: the new status and answer, the claim released;
/// and only while the row is still ours (a claim that expired belongs to another worker
/// now; the attempt itself is logged either way).
fn settle(
    ctx: &JobContext,
    status: DeliveryStatus,
    code: Option<i32>,
    now: DateTime<Utc>,
) -> sea_orm::UpdateMany<delivery::Entity> {
    delivery::Entity::update_many()
        .col_expr(delivery::Column::Status, Expr::value(status.to_value()))
        .col_expr(
            delivery::Column::ClaimedBy,
            Expr::value(Option::<String>::None),
        )
        .col_expr(
            delivery::Column::ClaimedUntil,
            Expr::value(Option::<DateTime<Utc>>::None),
        )
        .col_expr(delivery::Column::LastStatusCode, Expr::value(code))
        .col_expr(delivery::Column::UpdatedAt, Expr::value(now))
        .filter(delivery::Column::ClaimedBy.eq(ctx.worker_id.as_str()))
        .filter(delivery::Column::Status.eq(DeliveryStatus::Delivering))
}

fn attempt_row(
    ctx: &JobContext,
    a: &Attempted,
    attempt_no: i32,
    code: Option<i32>,
    error: Option<String>,
    excerpt: Option<String>,
    outcome: &str,
) -> attempt::ActiveModel {
    attempt::ActiveModel {
        id: NotSet,
        delivery_id: Set(a.delivery.id),
        attempt: Set(attempt_no),
        worker_id: Set(ctx.worker_id.clone()),
        started_at: Set(a.started_at),
        duration_ms: Set(a.duration_ms),
        status_code: Set(code),
        error: Set(error.map(|e| clip(&e, 500))),
        response_excerpt: Set(excerpt),
        outcome: Set(outcome.to_string()),
    }
}

fn clip(s: &str, max: usize) -> String {
    s.chars().take(max).collect()
}

/// Disables the subscription (if still active), audits it in the organization's trail
/// and emails the organization's admins. Returns whether this call disabled it.
async fn disable(
    txn: &DatabaseTransaction,
    ctx: &JobContext,
    sub: &webhook::Model,
    reason: &str,
    now: DateTime<Utc>,
) -> Result<bool, JobError> {
    let base_url = ctx.public_base_url.as_str();
    let Some(current) = webhook::Entity::find_by_id(sub.id).one(txn).await? else {
        return Ok(false);
    };
    let changed = webhook::Entity::update_many()
        .col_expr(webhook::Column::Active, Expr::value(false))
        .col_expr(webhook::Column::DisabledReason, Expr::value(reason))
        .col_expr(webhook::Column::DisabledAt, Expr::value(now))
        .col_expr(webhook::Column::UpdatedAt, Expr::value(now))
        .col_expr(
            webhook::Column::Version,
            Expr::col(webhook::Column::Version).add(1),
        )
        .filter(webhook::Column::Id.eq(sub.id))
        .filter(webhook::Column::Active.eq(true))
        .exec(txn)
        .await?;
    if changed.rows_affected != 1 {
        return Ok(false);
    }
    entity::audit_trail::append(
        txn,
        &entity::audit_trail::Actor {
            org_id: current.org_id,
            user_id: None,
            request_id: None,
            at: now,
            chain_keys: ctx.chain_keys.clone(),
        },
        entity::audit_trail::Entry::new("webhook", current.id, "disable")
            .before(serde_json::json!({"active": true, "version": current.version}))
            .after(serde_json::json!({"active": false, "version": current.version + 1}))
            .reason(Some(reason.to_string())),
    )
    .await?;
    let admins: Vec<String> = user::Entity::find()
        .filter(user::Column::OrgId.eq(current.org_id))
        .filter(user::Column::Role.eq(Role::Admin))
        .filter(user::Column::Active.eq(true))
        .all(txn)
        .await?
        .into_iter()
        .map(|u| u.email)
        .collect();
    if admins.is_empty() {
        return Ok(true);
    }
    let headline = format!("Webhook disabled: {}", current.url);
    let email = mail::notice(
        &headline,
        &headline,
        &[
            format!("Deliveries to {} stopped: {reason}.", current.url),
            "Events are no longer queued for this subscription; the event feed (GET /api/v1/events) still has them. \
             Fix the receiver, then re-activate the subscription (PATCH active=true): deliveries still pending resume, \
             and failed ones can be sent again with POST …/deliveries/{id}/redeliver."
                .to_string(),
        // No link: the delivery log is JSON for API clients, never a page to open.
        format!(
            "Its delivery log: GET /api/v1/webhooks/{}/deliveries.",
            current.id
        ),
        ],
        None,
    )
    .map_err(|e| JobError::Template(e.to_string()))?;
    mail::enqueue(
        txn,
        Draft::new(
            format!("webhook-disabled:{}:{}", current.id, current.version + 1),
            admins,
            email,
        ),
        now,
        base_url,
    )
    .await?;
    Ok(true)
}
