//! Notifications from domain events (SPEC §5): a deviation triaged goes to the SMEs
//! whose expertise matches its category; a minor deviation closed, to the core team and
//! its reporter; an action item assigned (also a CAPA action or a change task), to its
//! owner; production held or released and a gate decided, to the whole team. Each
//! through the outbox, one email per person with a link to the record's page.
//!
//! The job reads the events after its cursor (`event_cursors`, row `notifications`),
//! locked for the pass, so two workers never take the same events; the cursor increases
//! in commit order, so none is skipped; each email's dedupe key holds the event's
//! cursor, so a pass repeated after a crash queues nothing twice.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use entity::deviation::{self, Criticality};
use entity::domain_event::{self, Event};
use entity::link_token::PageRecord;
use entity::notification::{NotificationKind, event_cursor};
use entity::team_member::{self, GovernanceTier};
use entity::{action_item, link_secret, program, user};
use mail::Reader;
use mail::notification::{Notice, Recipient};
use mail::words::{count, label_of};
use sea_orm::{
    ActiveValue::Set, ColumnTrait, ConnectionTrait, DatabaseTransaction, EntityTrait, QueryFilter,
    QueryOrder, QuerySelect,
};

use super::{JobContext, JobError};

/// The consumer's row in `event_cursors`.
pub const CONSUMER: &str = "notifications";

#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct NotificationReport {
    pub events: usize,
    pub queued: usize,
}

/// One pass: up to `batch` events after the cursor.
pub async fn notify_events(
    ctx: &JobContext,
    now: DateTime<Utc>,
    batch: u64,
) -> Result<NotificationReport, JobError> {
    // PostgreSQL: the events committed before this pass are given their cursors, so it
    // notifies of them now rather than at the next pass.
    entity::domain_event::catch_up(&ctx.db).await;
    let txn = entity::db::begin_write(&ctx.db).await?;
    let Some(cursor) = event_cursor::Entity::find_by_id(CONSUMER.to_string())
        .lock_exclusive()
        .one(&txn)
        .await?
    else {
        return Ok(NotificationReport::default());
    };
    let rows = domain_event::Entity::find()
        .filter(domain_event::Column::Cursor.gt(cursor.last_cursor))
        .order_by_asc(domain_event::Column::Cursor)
        .limit(batch)
        .all(&txn)
        .await?;
    let Some(last) = rows.last().map(|r| r.cursor) else {
        return Ok(NotificationReport::default());
    };
    let key = link_secret::get_or_create(&txn, now).await?;
    let mut report = NotificationReport::default();
    for row in &rows {
        report.events += 1;
        let Ok(event) = Event::from_stored(&row.event_type, &row.payload) else {
            continue;
        };
        if let Event::AuditCheckpoint(taken) = &event {
            report.queued += checkpoint_taken(ctx, &txn, taken, row.cursor, now).await?;
            continue;
        }
        let Some(program_id) = row.program_id else {
            continue;
        };
        let Some(prog) = program::Entity::find_by_id(program_id).one(&txn).await? else {
            continue;
        };
        let occasion = Occasion {
            txn: &txn,
            prog: &prog,
            dedupe: format!("notify:{}", row.cursor),
            key: &key,
            base_url: &ctx.public_base_url,
            now,
            at: row.occurred_at,
        };
        report.queued += occasion.notify(&event).await?;
    }
    event_cursor::Entity::update(event_cursor::ActiveModel {
        consumer: Set(CONSUMER.to_string()),
        last_cursor: Set(last),
    })
    .exec(&txn)
    .await?;
    txn.commit().await?;
    Ok(report)
}

/// One event of one program, being turned into emails.
struct Occasion<'a> {
    txn: &'a DatabaseTransaction,
    prog: &'a program::Model,
    dedupe: String,
    key: &'a [u8],
    base_url: &'a str,
    now: DateTime<Utc>,
    /// When the event happened.
    at: DateTime<Utc>,
}

impl Occasion<'_> {
    async fn notify(&self, event: &Event) -> Result<usize, JobError> {
        match event {
            Event::DeviationTriaged(p) => self.triaged(p.deviation_id).await,
            Event::DeviationClosed(p) if p.criticality == Criticality::Minor => {
                self.minor_closed(p.deviation_id).await
            }
            Event::ProductionHeld(p) | Event::ProductionReleased(p) => {
                let held = matches!(event, Event::ProductionHeld(_));
                self.production(held, &p.reason).await
            }
            Event::GateDecided(p) => {
                self.gate(
                    p.milestone_id,
                    &p.name,
                    &label_of(&p.decision),
                    p.notes.as_deref(),
                )
                .await
            }
            Event::ActionItemAssigned(p) if p.assigned_by_user_id != Some(p.owner_user_id) => {
                self.assigned(p.action_item_id, p.assigned_by_user_id).await
            }
            _ => Ok(0),
        }
    }

    async fn send(&self, notice: &Notice<'_>, to: &[Recipient]) -> Result<usize, JobError> {
        Ok(mail::notification::queue(
            self.txn,
            notice,
            to,
            &self.dedupe,
            (self.key, self.base_url),
            self.now,
        )
        .await?)
    }

    /// The program's team, each with their account.
    async fn team(&self) -> Result<Vec<Recipient>, JobError> {
        let members = team_member::Entity::find()
            .filter(team_member::Column::ProgramId.eq(self.prog.id))
            .order_by_asc(team_member::Column::Id)
            .all(self.txn)
            .await?;
        let users = users(self.txn, members.iter().map(|m| m.user_id)).await?;
        Ok(members
            .into_iter()
            .filter_map(|m| users.get(&m.user_id).cloned().map(|u| (Some(m), u)))
            .collect())
    }

    /// `user_id` with their membership of this program, when they have one. Someone off
    /// the team is told only while their organization works on the program: an event
    /// written just before a CMO's connection ended reaches none of its people after.
    async fn person(&self, user_id: i64) -> Result<Option<Recipient>, JobError> {
        let team = self.team().await?;
        if let Some(found) = team.into_iter().find(|(_, u)| u.id == user_id) {
            return Ok(Some(found));
        }
        let staffing = self.prog.staffing_orgs(self.txn).await?;
        Ok(user::Entity::find_by_id(user_id)
            .one(self.txn)
            .await?
            .filter(|u| staffing.contains(&u.org_id))
            .map(|u| (None, u)))
    }

    async fn triaged(&self, deviation_id: i64) -> Result<usize, JobError> {
        let Some(d) = deviation::Entity::find_by_id(deviation_id)
            .one(self.txn)
            .await?
        else {
            return Ok(0);
        };
        let category = entity::enums::wire_name(&d.category);
        let smes: Vec<Recipient> = self
            .team()
            .await?
            .into_iter()
            .filter(|(m, _)| {
                m.as_ref().is_some_and(|m| {
                    serde_json::from_str::<Vec<String>>(&m.expertise_tags)
                        .unwrap_or_default()
                        .contains(&category)
                })
            })
            .collect();
        let site = self.prog.time_zone.clone();
        let paragraphs = |r: &Reader| {
            let mut out = vec![
                format!(
                    "{} deviation in {}, detected {}{}. It is now {}.",
                    label_of(&d.criticality),
                    label_of(&d.category).to_lowercase(),
                    r.time_at_site(&site, d.detected_at),
                    d.batch_lot
                        .as_ref()
                        .map(|b| format!(", batch/lot {b}"))
                        .unwrap_or_default(),
                    label_of(&d.status).to_lowercase()
                ),
                d.description.clone(),
            ];
            if let Some(fix) = &d.short_term_fix {
                out.push(format!("Short-term fix: {fix}"));
            }
            out.push(format!(
                "You receive this because your expertise on the team includes {}.",
                label_of(&d.category).to_lowercase()
            ));
            out
        };
        let notice = Notice {
            kind: NotificationKind::Triage,
            program_name: &self.prog.name,
            subject: format!(
                "Deviation {} triaged ({}): {}",
                d.reference(),
                label_of(&d.criticality).to_lowercase(),
                d.title
            ),
            headline: format!(
                "Deviation {} needs your expertise: {}",
                d.reference(),
                d.title
            ),
            paragraphs: &paragraphs,
            page: (PageRecord::Deviation, d.id),
            link_text: "Open the deviation",
        };
        self.send(&notice, &smes).await
    }

    async fn minor_closed(&self, deviation_id: i64) -> Result<usize, JobError> {
        let Some(d) = deviation::Entity::find_by_id(deviation_id)
            .one(self.txn)
            .await?
        else {
            return Ok(0);
        };
        let mut to: Vec<Recipient> = self
            .team()
            .await?
            .into_iter()
            .filter(|(m, _)| {
                m.as_ref()
                    .is_some_and(|m| m.governance_tier == GovernanceTier::CoreTeam)
            })
            .collect();
        if !to.iter().any(|(_, u)| u.id == d.reported_by_user_id)
            && let Some(reporter) = self.person(d.reported_by_user_id).await?
        {
            to.push(reporter);
        }
        let at = self.at;
        let paragraphs = |r: &Reader| {
            let mut out = vec![format!(
                "The minor deviation reported {} was closed {}.",
                r.time(d.detected_at),
                r.time(at)
            )];
            if let Some(cause) = &d.root_cause_narrative {
                out.push(format!("Root cause: {cause}"));
            }
            out
        };
        let notice = Notice {
            kind: NotificationKind::MinorClosure,
            program_name: &self.prog.name,
            subject: format!("Minor deviation {} closed: {}", d.reference(), d.title),
            headline: format!("Closed: {}", d.title),
            paragraphs: &paragraphs,
            page: (PageRecord::Deviation, d.id),
            link_text: "Open the deviation",
        };
        self.send(&notice, &to).await
    }

    async fn production(&self, held: bool, reason: &str) -> Result<usize, JobError> {
        let team = self.team().await?;
        let (product, at) = (self.prog.product_name.clone(), self.at);
        let site = self.prog.time_zone.clone();
        let paragraphs = |r: &Reader| {
            vec![
                format!(
                    "Production of {product} was {} {}.",
                    if held { "put on hold" } else { "released" },
                    r.time_at_site(&site, at)
                ),
                format!("Why: {reason}"),
            ]
        };
        let notice = Notice {
            kind: NotificationKind::Production,
            program_name: &self.prog.name,
            subject: format!(
                "Production of {} {}: {}",
                self.prog.product_name,
                if held { "on hold" } else { "released" },
                self.prog.name
            ),
            headline: if held {
                format!("Production of {} is on hold", self.prog.product_name)
            } else {
                format!("Production of {} is released", self.prog.product_name)
            },
            paragraphs: &paragraphs,
            page: (PageRecord::Program, self.prog.id),
            link_text: "Open the program",
        };
        self.send(&notice, &team).await
    }

    async fn gate(
        &self,
        milestone_id: i64,
        name: &str,
        decision: &str,
        notes: Option<&str>,
    ) -> Result<usize, JobError> {
        let team = self.team().await?;
        let at = self.at;
        let paragraphs = |r: &Reader| {
            let mut out = vec![format!(
                "The gate of milestone {name} was decided {}: {decision}.",
                r.time(at)
            )];
            if let Some(n) = notes {
                out.push(format!("Notes: {n}"));
            }
            out
        };
        let notice = Notice {
            kind: NotificationKind::GateDecision,
            program_name: &self.prog.name,
            subject: format!("Gate {name}: {decision} ({})", self.prog.name),
            headline: format!("Gate decision on {name}: {decision}"),
            paragraphs: &paragraphs,
            page: (PageRecord::Milestone, milestone_id),
            link_text: "Open the milestone",
        };
        self.send(&notice, &team).await
    }

    async fn assigned(&self, item_id: i64, by: Option<i64>) -> Result<usize, JobError> {
        let Some(item) = action_item::Entity::find_by_id(item_id)
            .one(self.txn)
            .await?
        else {
            return Ok(0);
        };
        let Some(owner) = self.person(item.owner_user_id).await? else {
            return Ok(0);
        };
        let by_name = match by {
            Some(id) => user::Entity::find_by_id(id)
                .one(self.txn)
                .await?
                .map(|u| u.display_name),
            None => None,
        };
        use entity::record_number::{RecordKind, reference_of};
        let what = match (RecordKind::of_action_source(item.source), item.source_id) {
            (Some(kind), Some(id)) => {
                let reference = reference_of(self.txn, kind, id).await?;
                match kind {
                    RecordKind::Change => format!("a task of change request {reference}"),
                    _ => format!("an action of {} {reference}", kind.noun()),
                }
            }
            _ if item.source == action_item::ActionSource::GateItem => {
                "an action from a gate".to_string()
            }
            _ => "an action item".to_string(),
        };
        let today = self.prog.today(self.now);
        let left = (item.due_date - today).num_days();
        let paragraphs = |_: &Reader| {
            let mut out = vec![format!(
                "{} gave you {what} of {}: due {}{}.",
                by_name.as_deref().unwrap_or("The system"),
                self.prog.name,
                item.due_date,
                match left {
                    0 => " (today)".to_string(),
                    d if d > 0 => format!(" (in {})", count(d, "day")),
                    d => format!(" ({} overdue)", count(-d, "day")),
                }
            )];
            if let Some(desc) = &item.description {
                out.push(desc.clone());
            }
            out
        };
        let notice = Notice {
            kind: NotificationKind::Assignment,
            program_name: &self.prog.name,
            subject: format!("Assigned to you: {} (due {})", item.title, item.due_date),
            headline: format!("Assigned to you: {}", item.title),
            paragraphs: &paragraphs,
            page: (PageRecord::ActionItem, item.id),
            link_text: "Open the action item",
        };
        self.send(&notice, &[owner]).await
    }
}

async fn users<C: ConnectionTrait>(
    conn: &C,
    ids: impl Iterator<Item = i64>,
) -> Result<BTreeMap<i64, user::Model>, JobError> {
    Ok(user::Entity::find()
        .filter(user::Column::Id.is_in(ids.collect::<Vec<_>>()))
        .all(conn)
        .await?
        .into_iter()
        .map(|u| (u.id, u))
        .collect())
}

/// A checkpoint of an organization's audit chain, to keep: to its quality users (its
/// admins when it has none), each in their own email. Not a kind one can switch off: the
/// anchoring works only if copies leave the system.
async fn checkpoint_taken(
    ctx: &JobContext,
    txn: &DatabaseTransaction,
    taken: &domain_event::AuditCheckpointTaken,
    cursor: i64,
    now: DateTime<Utc>,
) -> Result<usize, JobError> {
    use entity::Role;
    let people = |role: Role| {
        user::Entity::find()
            .filter(user::Column::OrgId.eq(taken.org_id))
            .filter(user::Column::Role.eq(role))
            .filter(user::Column::Active.eq(true))
            .order_by_asc(user::Column::Id)
            .all(txn)
    };
    let mut to = people(Role::Quality).await?;
    if to.is_empty() {
        to = people(Role::Admin).await?;
    }
    let org = entity::organization::Entity::find_by_id(taken.org_id)
        .one(txn)
        .await?
        .map(|o| o.name)
        .unwrap_or_default();
    let kept = entity::audit::checkpoint::KeptCheckpoint {
        org_id: taken.org_id,
        seq: taken.seq,
        head_hash: taken.head_hash.clone(),
        at: taken.at,
        key_id: taken.key_id.clone(),
        public_key: taken.public_key.clone(),
        signature: taken.signature.clone(),
    };
    let json = serde_json::to_string(&kept).unwrap_or_default();
    let subject = format!("Audit checkpoint of {org}: row {}", taken.seq);
    let mut queued = 0;
    for person in to {
        let mut paragraphs = vec![format!(
            "The audit trail of {org} was verified and checkpointed at {}: row {} ends it, \
             with hash {}. Keep this email outside the system: it proves later that no \
             record up to this point was changed or removed, even by someone with access \
             to the database.",
            mail::words::zoned(&person.time_zone, taken.at),
            taken.seq,
            taken.head_hash
        )];
        if let Some(reason) = &taken.reason {
            paragraphs.push(format!("Taken by the operator: {reason}"));
        }
        paragraphs.extend([
            format!("The checkpoint to keep: {json}"),
            "To check it later, POST that JSON to /api/v1/audit-checkpoints/verify, or give it \
             to cmo-api verify-audit --checkpoint FILE. Its Ed25519 signature covers the \
             statement below and checks with the public key in it, without any secret."
                .to_string(),
            kept.statement(),
        ]);
        let email = mail::notice(&subject, &subject, &paragraphs, None)
            .map_err(|e| JobError::Template(e.to_string()))?;
        if mail::enqueue(
            txn,
            entity::outbox::Draft::new(
                format!("notify:{cursor}:{}", person.id),
                vec![person.email.clone()],
                email,
            ),
            now,
            &ctx.public_base_url,
        )
        .await?
        {
            queued += 1;
        }
    }
    Ok(queued)
}
