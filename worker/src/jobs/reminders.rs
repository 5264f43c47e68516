//! Overdue-action reminders (SPEC §5): one email per owner listing all their overdue
//! items, over every program and sponsor they work for, grouped by sponsor, oldest
//! first, with days overdue; items overdue past the threshold copy the leadership tier
//! of the item's program (each leader only the items of programs they lead). The
//! schedule (default weekdays 08:00) is read in each recipient's own time zone: owners
//! are grouped by zone, and each zone's occurrence is claimed once across workers. An
//! owner gets one email per local day (dedupe key), so at most one reminder per item per
//! day, whatever the number of workers, passes or restarts.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, NaiveDate, TimeDelta, Utc};
use entity::action_item::{self, ActionStatus};
use entity::outbox::Draft;
use entity::team_member::{self, GovernanceTier};
use entity::{link_secret, organization, program, schedule, user};
use mail::reminder::{self, ReminderLine};
use sea_orm::{ColumnTrait, EntityTrait, ExprTrait, QueryFilter, QuerySelect};

use super::{JobContext, JobError};
use crate::ticks::{self, Tick};

#[derive(Debug, Clone)]
pub struct ReminderSettings {
    /// 6-field cron, read in each recipient's own time zone (default weekdays 08:00).
    pub schedule: String,
    /// A tick missed while no worker ran still runs within this window.
    pub catch_up: TimeDelta,
    /// Days overdue after which leadership is copied (default 7).
    pub escalate_after_days: i64,
    /// Owners are told this many days before an item is due (default 2; 0: never).
    pub due_soon_days: i64,
}

impl Default for ReminderSettings {
    fn default() -> Self {
        Self {
            schedule: "0 0 8 * * Mon-Fri".to_string(),
            catch_up: TimeDelta::hours(6),
            escalate_after_days: 7,
            due_soon_days: 2,
        }
    }
}

#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct ReminderReport {
    /// Time-zone ticks this worker ran.
    pub ticks: usize,
    pub owners: usize,
    pub items: usize,
    pub queued: usize,
    /// Due-soon notices queued.
    pub due_soon: usize,
}

/// One line of a reminder.
#[derive(Clone)]
struct Line {
    item: action_item::Model,
    program_name: String,
    sponsor_name: String,
    days_overdue: i64,
}

fn job_name(zone: &str) -> String {
    format!("overdue_reminders:{zone}")
}

pub async fn overdue_reminders(
    ctx: &JobContext,
    now: DateTime<Utc>,
    settings: &ReminderSettings,
) -> Result<ReminderReport, JobError> {
    let cron = schedule::parse(&settings.schedule).map_err(JobError::Schedule)?;
    // Tomorrow's UTC date bounds "today" in every zone (UTC-12 to UTC+14).
    let bound = now.date_naive().succ_opt().unwrap_or(now.date_naive());
    // The zones of the people who have something to hear of (an open item overdue, or
    // due in `due_soon_days`, somewhere on Earth today), each scheduled on its own local
    // clock: the pass costs what is due, and zones where nobody has anything claim no
    // tick.
    let soon = |days: i64| bound + TimeDelta::days(settings.due_soon_days + days);
    let mut due_window = action_item::Column::DueDate.lt(bound);
    if settings.due_soon_days > 0 {
        due_window = due_window.or(action_item::Column::DueDate.between(soon(-2), soon(0)));
    }
    let zones: BTreeSet<String> = user::Entity::find()
        .select_only()
        .column(user::Column::TimeZone)
        .distinct()
        .filter(user::Column::Active.eq(true))
        .filter(
            user::Column::Id.in_subquery(
                sea_orm::sea_query::Query::select()
                    .column(action_item::Column::OwnerUserId)
                    .from(action_item::Entity)
                    .and_where(
                        action_item::Column::Status
                            .is_in([ActionStatus::Open, ActionStatus::InProgress]),
                    )
                    .cond_where(due_window)
                    .to_owned(),
            ),
        )
        .into_tuple::<String>()
        .all(&ctx.db)
        .await?
        .into_iter()
        .collect();
    let due: Vec<Tick> = zones
        .iter()
        .filter_map(|zone| {
            schedule::due_occurrence(&cron, schedule::zone(zone), now, settings.catch_up).map(
                |at| Tick {
                    job: job_name(zone),
                    scheduled_for: at,
                },
            )
        })
        .collect();
    let claimed = ticks::claim_due(ctx, due, now).await?;
    let mut report = ReminderReport {
        ticks: claimed.len(),
        ..ReminderReport::default()
    };
    if claimed.is_empty() {
        return Ok(report);
    }
    // One scan for every claimed zone, through the (status, due_date) index only: its
    // cost follows the number of overdue items, not the size of the table. (Filtering by
    // program in SQL would let the planner pick the program index and read every item
    // of a large program.)
    let mut candidates = action_item::Entity::find()
        .filter(action_item::Column::Status.is_in([ActionStatus::Open, ActionStatus::InProgress]))
        .filter(action_item::Column::DueDate.lt(bound))
        .all(&ctx.db)
        .await?;
    // Oldest first, sorted here: an ORDER BY over the IN list makes PostgreSQL plan a
    // (parallel) sort sized for its row estimate, which is far off for this skewed data.
    candidates.sort_by_key(|a| (a.due_date, a.id));
    let programs = programs_of(ctx, candidates.iter().map(|a| a.program_id)).await?;
    for tick in &claimed {
        let zone = tick.job.trim_start_matches("overdue_reminders:");
        remind_zone(
            ctx,
            now,
            settings,
            zone,
            &programs,
            &candidates,
            &mut report,
        )
        .await?;
        if settings.due_soon_days > 0 {
            report.due_soon += due_soon(ctx, now, settings, zone).await?;
        }
        ticks::finish(ctx, tick, now).await?;
    }
    Ok(report)
}

/// A program with its sponsor's name, as a reminder line names it.
struct ProgramLabel {
    program: program::Model,
    sponsor_name: String,
}

/// The programs `ids` name (each once), with their sponsors' names.
async fn programs_of(
    ctx: &JobContext,
    ids: impl Iterator<Item = i64>,
) -> Result<BTreeMap<i64, ProgramLabel>, JobError> {
    let ids: BTreeSet<i64> = ids.collect();
    let ids: Vec<i64> = ids.into_iter().collect();
    let mut found = Vec::new();
    for chunk in ids.chunks(500) {
        found.extend(
            program::Entity::find()
                .filter(program::Column::Id.is_in(chunk.iter().copied()))
                .all(&ctx.db)
                .await?,
        );
    }
    let sponsors: BTreeMap<i64, String> = organization::Entity::find()
        .filter(organization::Column::Id.is_in(found.iter().map(|p| p.sponsor_org_id)))
        .all(&ctx.db)
        .await?
        .into_iter()
        .map(|o| (o.id, o.name))
        .collect();
    Ok(found
        .into_iter()
        .map(|p| {
            let sponsor_name = sponsors.get(&p.sponsor_org_id).cloned().unwrap_or_default();
            (
                p.id,
                ProgramLabel {
                    program: p,
                    sponsor_name,
                },
            )
        })
        .collect())
}

/// Reminders for the owners who live in one time zone, over all their programs.
async fn remind_zone(
    ctx: &JobContext,
    now: DateTime<Utc>,
    settings: &ReminderSettings,
    zone: &str,
    programs: &BTreeMap<i64, ProgramLabel>,
    candidates: &[action_item::Model],
    report: &mut ReminderReport,
) -> Result<(), JobError> {
    let today = now.with_timezone(&schedule::zone(zone)).date_naive();
    let overdue: Vec<&action_item::Model> = candidates
        .iter()
        .filter(|a| programs.contains_key(&a.program_id))
        .filter(|a| action_item::is_overdue(a.status, a.due_date, a.snoozed_until, today))
        .collect();
    if overdue.is_empty() {
        return Ok(());
    }
    let owner_ids: BTreeSet<i64> = overdue.iter().map(|a| a.owner_user_id).collect();
    let owners: BTreeMap<i64, user::Model> = user::Entity::find()
        .filter(user::Column::Id.is_in(owner_ids.iter().copied()))
        .filter(user::Column::Active.eq(true))
        .filter(user::Column::TimeZone.eq(zone))
        .all(&ctx.db)
        .await?
        .into_iter()
        .map(|u| (u.id, u))
        .collect();
    let in_zone: Vec<&action_item::Model> = overdue
        .into_iter()
        .filter(|a| owners.contains_key(&a.owner_user_id))
        .collect();
    if in_zone.is_empty() {
        return Ok(());
    }

    let mut by_owner: BTreeMap<i64, Vec<Line>> = BTreeMap::new();
    for item in &in_zone {
        let Some(p) = programs.get(&item.program_id) else {
            continue;
        };
        by_owner.entry(item.owner_user_id).or_default().push(Line {
            days_overdue: action_item::days_overdue(item.due_date, today),
            program_name: p.program.name.clone(),
            sponsor_name: p.sponsor_name.clone(),
            item: (*item).clone(),
        });
    }

    let leadership = leadership_by_program(ctx, in_zone.iter().map(|a| a.program_id)).await?;
    let key = link_secret::get_or_create(&ctx.db, now).await?;
    // One transaction for the zone's emails: a crash before the commit leaves the tick
    // unfinished, and the worker that takes it over queues them (deduplicated) again.
    let txn = entity::db::begin_write(&ctx.db).await?;
    for (owner_id, lines) in by_owner {
        let Some(owner) = owners.get(&owner_id) else {
            continue;
        };
        report.owners += 1;
        report.items += lines.len();
        // Each leader copied gets their own email: its links open pages as them.
        let long_overdue: Vec<&Line> = lines
            .iter()
            .filter(|l| l.days_overdue > settings.escalate_after_days)
            .collect();
        let mut leaders: Vec<&user::Model> = long_overdue
            .iter()
            .flat_map(|l| leadership.get(&l.item.program_id).into_iter().flatten())
            .filter(|leader| leader.id != owner.id)
            .collect();
        leaders.sort_by_key(|u| u.id);
        leaders.dedup_by_key(|u| u.id);
        let reminder = Reminder {
            zone,
            local_date: today,
            settings,
        };
        let reader = mail::Reader::personal(owner, &key, &ctx.public_base_url, now);
        let to = reminder::Addressee::Owner {
            leadership_copied: !leaders.is_empty(),
        };
        let draft = reminder.compose(&reader, to, &lines, format!("reminder:{}", owner.id))?;
        if mail::enqueue(&txn, draft, now, &ctx.public_base_url).await? {
            report.queued += 1;
        }
        for leader in leaders {
            // Only the items of programs this leader leads: an owner working for two
            // sponsors must not copy one sponsor's leader on the other's items.
            let theirs: Vec<Line> = long_overdue
                .iter()
                .filter(|l| {
                    leadership
                        .get(&l.item.program_id)
                        .is_some_and(|ls| ls.iter().any(|u| u.id == leader.id))
                })
                .map(|l| (*l).clone())
                .collect();
            let reader = mail::Reader::personal(leader, &key, &ctx.public_base_url, now);
            let to = reminder::Addressee::LeadershipCopy {
                owner_name: &owner.display_name,
            };
            let dedupe = format!("reminder-copy:{}:{}", owner.id, leader.id);
            let draft = reminder.compose(&reader, to, &theirs, dedupe)?;
            if mail::enqueue(&txn, draft, now, &ctx.public_base_url).await? {
                report.queued += 1;
            }
        }
    }
    txn.commit().await?;
    Ok(())
}

/// Tells the owners who live in `zone` of open items due in `due_soon_days` days (their
/// local date), one email per item, unless they switched these off.
async fn due_soon(
    ctx: &JobContext,
    now: DateTime<Utc>,
    settings: &ReminderSettings,
    zone: &str,
) -> Result<usize, JobError> {
    let today = now.with_timezone(&schedule::zone(zone)).date_naive();
    let due = today + TimeDelta::days(settings.due_soon_days);
    let items: Vec<action_item::Model> = action_item::Entity::find()
        .filter(action_item::Column::DueDate.eq(due))
        .filter(action_item::Column::Status.is_in([ActionStatus::Open, ActionStatus::InProgress]))
        .filter(
            action_item::Column::OwnerUserId.in_subquery(
                sea_orm::sea_query::Query::select()
                    .column(user::Column::Id)
                    .from(user::Entity)
                    .and_where(user::Column::TimeZone.eq(zone))
                    .and_where(user::Column::Active.eq(true))
                    .to_owned(),
            ),
        )
        .all(&ctx.db)
        .await?;
    let programs = programs_of(ctx, items.iter().map(|a| a.program_id)).await?;
    if items.is_empty() {
        return Ok(0);
    }
    let owners: BTreeMap<i64, user::Model> = user::Entity::find()
        .filter(user::Column::Id.is_in(items.iter().map(|a| a.owner_user_id)))
        .all(&ctx.db)
        .await?
        .into_iter()
        .map(|u| (u.id, u))
        .collect();
    let memberships = team_member::Entity::find()
        .filter(team_member::Column::UserId.is_in(owners.keys().copied()))
        .all(&ctx.db)
        .await?;
    let key = link_secret::get_or_create(&ctx.db, now).await?;
    let txn = entity::db::begin_write(&ctx.db).await?;
    let mut queued = 0;
    for item in &items {
        let (Some(owner), Some(prog)) = (
            owners.get(&item.owner_user_id),
            programs.get(&item.program_id).map(|p| &p.program),
        ) else {
            continue;
        };
        let member = memberships
            .iter()
            .find(|m| m.user_id == owner.id && m.program_id == item.program_id)
            .cloned();
        let days = mail::words::count(settings.due_soon_days, "day");
        let paragraphs = |_: &mail::Reader| {
            vec![format!(
                "{} of {} is due on {} (in {days}).",
                item.title, prog.name, item.due_date
            )]
        };
        let notice = mail::notification::Notice {
            kind: entity::notification::NotificationKind::DueSoon,
            program_name: &prog.name,
            subject: format!("Due in {days}: {}", item.title),
            headline: format!("Due in {days}: {}", item.title),
            paragraphs: &paragraphs,
            page: (entity::link_token::PageRecord::ActionItem, item.id),
            link_text: "Open the action item",
        };
        queued += mail::notification::queue(
            &txn,
            &notice,
            &[(member, owner.clone())],
            &format!("due-soon:{}:{}", item.id, item.due_date),
            (&key, &ctx.public_base_url),
            now,
        )
        .await?;
    }
    txn.commit().await?;
    Ok(queued)
}

/// Each program's leadership-tier members who want reminders (active users).
async fn leadership_by_program(
    ctx: &JobContext,
    program_ids: impl Iterator<Item = i64>,
) -> Result<BTreeMap<i64, Vec<user::Model>>, JobError> {
    let ids: Vec<i64> = program_ids.collect();
    let mut members = Vec::new();
    for chunk in ids.chunks(500) {
        members.extend(
            team_member::Entity::find()
                .filter(team_member::Column::ProgramId.is_in(chunk.iter().copied()))
                .filter(team_member::Column::GovernanceTier.eq(GovernanceTier::Leadership))
                .filter(team_member::Column::WantsReminders.eq(true))
                .all(&ctx.db)
                .await?,
        );
    }
    let users: BTreeMap<i64, user::Model> = user::Entity::find()
        .filter(user::Column::Id.is_in(members.iter().map(|m| m.user_id)))
        .filter(user::Column::Active.eq(true))
        .all(&ctx.db)
        .await?
        .into_iter()
        .map(|u| (u.id, u))
        .collect();
    let mut by_program: BTreeMap<i64, Vec<user::Model>> = BTreeMap::new();
    for m in members {
        if let Some(u) = users.get(&m.user_id) {
            by_program.entry(m.program_id).or_default().push(u.clone());
        }
    }
    Ok(by_program)
}

/// One zone's reminder run: what every email of it shares.
struct Reminder<'a> {
    zone: &'a str,
    local_date: NaiveDate,
    settings: &'a ReminderSettings,
}

impl Reminder<'_> {
    /// One email to one reader; `dedupe` names the reader's reminder of the day.
    fn compose(
        &self,
        reader: &mail::Reader,
        to: reminder::Addressee<'_>,
        lines: &[Line],
        dedupe: String,
    ) -> Result<Draft, JobError> {
        let rendered: Vec<ReminderLine> = lines
            .iter()
            .map(|l| ReminderLine {
                id: l.item.id,
                title: l.item.title.clone(),
                program: l.program_name.clone(),
                sponsor: l.sponsor_name.clone(),
                due_date: l.item.due_date,
                days_overdue: l.days_overdue,
            })
            .collect();
        let email = reminder::render(
            reader,
            to,
            self.local_date,
            &rendered,
            self.settings.escalate_after_days,
        )
        .map_err(|e| JobError::Template(e.to_string()))?;
        Ok(Draft::new(
            format!("{dedupe}:{}:{}", self.zone, self.local_date),
            vec![reader.email.clone()],
            email,
        ))
    }
}
