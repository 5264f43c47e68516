//! Quality agreement expiry reminders (SPEC §7): daily, the sponsor's quality users are
//! emailed when the agreement in force with a CMO is 90, 30 and 7 days from expiry; one
//! email per agreement and threshold (outbox dedupe), however many workers or late runs.
//! An agreement is one sponsor's: only that sponsor's later agreement with the CMO
//! supersedes it, and none is recalled once the sponsor's connection with the CMO ended.

use std::collections::BTreeMap;

use chrono::{DateTime, TimeDelta, Utc};
use entity::cmo::{self, quality_agreement};
use entity::outbox::Draft;
use entity::{Role, organization, relationship, user};
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};

use super::{JobContext, JobError};
use crate::ticks;

#[derive(Debug, Clone)]
pub struct AgreementSettings {
    /// 6-field cron in UTC (default daily 06:00).
    pub schedule: String,
    pub catch_up: TimeDelta,
}

impl Default for AgreementSettings {
    fn default() -> Self {
        Self {
            schedule: "0 0 6 * * *".to_string(),
            catch_up: TimeDelta::hours(18),
        }
    }
}

#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct AgreementReport {
    pub ran: bool,
    pub reminded: usize,
    pub queued: usize,
}

const JOB: &str = "quality_agreement_expiry";

pub async fn expiry_reminders(
    ctx: &JobContext,
    now: DateTime<Utc>,
    settings: &AgreementSettings,
) -> Result<AgreementReport, JobError> {
    let Some(tick) =
        ticks::claim_utc_occurrence(ctx, JOB, &settings.schedule, settings.catch_up, now).await?
    else {
        return Ok(AgreementReport::default());
    };
    let mut report = run(ctx, now).await?;
    report.ran = true;
    ticks::finish(ctx, &tick, now).await?;
    Ok(report)
}

/// The reminder pass itself (the tick decides when).
pub async fn run(ctx: &JobContext, now: DateTime<Utc>) -> Result<AgreementReport, JobError> {
    let today = now.date_naive();
    let horizon = today + TimeDelta::days(cmo::EXPIRY_THRESHOLDS[2]);
    let expiring = quality_agreement::Entity::find()
        .filter(quality_agreement::Column::ExpiresOn.between(today, horizon))
        .all(&ctx.db)
        .await?;
    let mut report = AgreementReport::default();
    if expiring.is_empty() {
        return Ok(report);
    }
    // Only the agreement in force (the latest effective) matters: a renewal supersedes.
    let cmo_ids: Vec<i64> = expiring.iter().map(|a| a.cmo_org_id).collect();
    let all = quality_agreement::Entity::find()
        .filter(quality_agreement::Column::CmoOrgId.is_in(cmo_ids.clone()))
        .all(&ctx.db)
        .await?;
    let names: BTreeMap<i64, String> = organization::Entity::find()
        .filter(organization::Column::Id.is_in(cmo_ids))
        .all(&ctx.db)
        .await?
        .into_iter()
        .map(|o| (o.id, o.name))
        .collect();
    let connected: std::collections::BTreeSet<(i64, i64)> = relationship::Entity::find()
        .filter(relationship::Column::CmoOrgId.is_in(expiring.iter().map(|a| a.cmo_org_id)))
        .filter(relationship::Column::Connection.eq(relationship::ConnectionStatus::Connected))
        .all(&ctx.db)
        .await?
        .into_iter()
        .map(|r| (r.sponsor_org_id, r.cmo_org_id))
        .collect();
    let txn = entity::db::begin_write(&ctx.db).await?;
    for a in &expiring {
        if !connected.contains(&(a.sponsor_org_id, a.cmo_org_id)) {
            continue;
        }
        let superseded = all.iter().any(|b| {
            b.cmo_org_id == a.cmo_org_id
                && b.sponsor_org_id == a.sponsor_org_id
                && b.id != a.id
                && b.expires_on > a.expires_on
        });
        let days_left = (a.expires_on - today).num_days();
        let Some(threshold) = cmo::expiry_threshold(days_left) else {
            continue;
        };
        if superseded || a.effective_on > today {
            continue;
        }
        let quality: Vec<String> = user::Entity::find()
            .filter(user::Column::OrgId.eq(a.sponsor_org_id))
            .filter(user::Column::Role.eq(Role::Quality))
            .filter(user::Column::Active.eq(true))
            .all(&txn)
            .await?
            .into_iter()
            .map(|u| u.email)
            .collect();
        if quality.is_empty() {
            continue;
        }
        report.reminded += 1;
        let cmo_name = names.get(&a.cmo_org_id).cloned().unwrap_or_default();
        let headline = format!(
            "Quality agreement with {cmo_name} expires in {days_left} day{}",
            if days_left == 1 { "" } else { "s" }
        );
        let email = mail::notice(
            &headline,
            &headline,
            &[
                format!(
                    "Agreement {} ({}) with {cmo_name} expires on {}.",
                    a.version_label, a.document_ref, a.expires_on
                ),
                "Renew it before it lapses: GMP work at the CMO needs an agreement in force. Record the renewal to stop these reminders.".to_string(),
                // No link: the agreements have no page for people yet, and a link must
                // never open JSON in a browser.
                format!(
                    "Your API client records it: POST /api/v1/cmos/{}/quality-agreements.",
                    a.cmo_org_id
                ),
            ],
            None,
        )
        .map_err(|e| JobError::Template(e.to_string()))?;
        if mail::enqueue(
            &txn,
            Draft::new(format!("qa-expiry:{}:{threshold}", a.id), quality, email),
            now,
            &ctx.public_base_url,
        )
        .await?
        {
            report.queued += 1;
        }
    }
    txn.commit().await?;
    Ok(report)
}
