//! Daily signed checkpoints of the audit chains (external anchoring): for every
//! organization whose chain moved since its last checkpoint, verify the chain and, when
//! it holds, take a checkpoint (its domain event carries it to the organization's tools,
//! and the notification job to its quality users). A chain that does not verify is not
//! anchored: its quality users and admins are told at once instead, once a day.

use chrono::{DateTime, TimeDelta, Utc};
use entity::audit::checkpoint;
use entity::outbox::Draft;
use entity::{Role, organization, user};
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};

use super::{JobContext, JobError};
use crate::ticks;

#[derive(Debug, Clone)]
pub struct CheckpointSettings {
    /// 6-field cron in UTC (default daily 00:30).
    pub schedule: String,
    pub catch_up: TimeDelta,
}

impl Default for CheckpointSettings {
    fn default() -> Self {
        Self {
            schedule: "0 30 0 * * *".to_string(),
            catch_up: TimeDelta::hours(18),
        }
    }
}

#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct CheckpointReport {
    pub ran: bool,
    /// Checkpoints taken.
    pub taken: usize,
    /// Organizations whose chain did not verify (not anchored; people told).
    pub not_intact: usize,
}

const JOB: &str = "audit_checkpoints";

/// At the schedule's occurrence (claimed by one worker), [`run`].
pub async fn daily_checkpoints(
    ctx: &JobContext,
    now: DateTime<Utc>,
    settings: &CheckpointSettings,
) -> Result<CheckpointReport, JobError> {
    let Some(tick) =
        ticks::claim_utc_occurrence(ctx, JOB, &settings.schedule, settings.catch_up, now).await?
    else {
        return Ok(CheckpointReport::default());
    };
    let mut report = run(ctx, now).await?;
    report.ran = true;
    ticks::finish(ctx, &tick, now).await?;
    Ok(report)
}

/// One pass over the organizations whose chain moved since their last checkpoint.
pub async fn run(ctx: &JobContext, now: DateTime<Utc>) -> Result<CheckpointReport, JobError> {
    let mut report = CheckpointReport::default();
    for org_id in checkpoint::moved_since_last(&ctx.db).await? {
        // Verified in its own snapshot first: a checkpoint of a broken chain would anchor
        // the tampering.
        let verification = entity::audit_trail::verify(&ctx.db, &ctx.chain_keys, org_id).await?;
        let txn = entity::db::begin_write(&ctx.db).await?;
        if verification.intact() {
            // Appends may have moved the chain since: the checkpoint names the head it
            // read under the write lock, whose rows were verified or written after.
            checkpoint::take(&txn, &ctx.chain_keys, org_id, now, "daily", None).await?;
            report.taken += 1;
        } else {
            report.not_intact += 1;
            tell_chain_not_intact(ctx, &txn, org_id, &verification, now).await?;
        }
        txn.commit().await?;
    }
    Ok(report)
}

/// Emails the organization's quality users and admins (once a day per organization)
/// that its chain did not verify.
async fn tell_chain_not_intact(
    ctx: &JobContext,
    txn: &sea_orm::DatabaseTransaction,
    org_id: i64,
    verification: &entity::audit_trail::Verification,
    now: DateTime<Utc>,
) -> Result<(), JobError> {
    let org_name = organization::Entity::find_by_id(org_id)
        .one(txn)
        .await?
        .map(|o| o.name)
        .unwrap_or_default();
    let people = user::Entity::find()
        .filter(user::Column::OrgId.eq(org_id))
        .filter(user::Column::Role.is_in([Role::Quality, Role::Admin]))
        .filter(user::Column::Active.eq(true))
        .all(txn)
        .await?;
    let mut what = match &verification.broken {
        Some(b) => format!(
            "The chain breaks at row {} ({}).",
            b.seq,
            b.kind.as_str().replace('_', " ")
        ),
        None => "Part of the chain could not be checked.".to_string(),
    };
    for caveat in verification.caveats() {
        what.push(' ');
        what.push_str(&caveat);
        what.push('.');
    }
    let subject = format!("Audit trail of {org_name} does not verify: no checkpoint was taken");
    for person in people {
        let email = mail::notice(
            &subject,
            &subject,
            &[
                what.clone(),
                "Someone may have changed the database behind the system's back, or a replica \
                 runs with another audit key. Until this is explained, records of the period \
                 cannot be shown to be unaltered: involve your quality unit and the operator."
                    .to_string(),
                "Check it with GET /api/v1/audit-events/verify (or cmo-api verify-audit) and \
                 compare the last checkpoint you kept with POST \
                 /api/v1/audit-checkpoints/verify."
                    .to_string(),
            ],
            None,
        )
        .map_err(|e| JobError::Template(e.to_string()))?;
        mail::enqueue(
            txn,
            Draft::new(
                format!(
                    "audit-not-intact:{org_id}:{}:{}",
                    now.date_naive(),
                    person.id
                ),
                vec![person.email.clone()],
                email,
            ),
            now,
            &ctx.public_base_url,
        )
        .await?;
    }
    Ok(())
}
