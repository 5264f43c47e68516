//! Overdue-action reminders (SPEC §5): one email per owner listing all their overdue
//! items, oldest first, with days overdue; items overdue past the threshold copy the
//! leadership tier of the item's program. Sent once the owner's local time passes the
//! reminder hour on a weekday; at most one reminder per owner and day (dedupe key), so
//! at most one per item per day, whatever the number of workers or passes.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Datelike, NaiveDate, Timelike, Utc, Weekday};
use entity::action_item::{self, ActionStatus};
use entity::outbox::{self, Draft};
use entity::team_member::{self, GovernanceTier};
use entity::{program, user};
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, QueryOrder, TransactionTrait};

use super::{JobContext, JobError};

#[derive(Debug, Clone)]
pub struct ReminderSettings {
    /// Local hour from which the day's reminder goes out (default 8).
    pub hour: u32,
    /// Days overdue after which leadership is copied (default 7).
    pub escalate_after_days: i64,
    /// Base URL of the api, for links.
    pub public_base_url: String,
    /// Domain of Message-IDs.
    pub mail_domain: String,
}

impl Default for ReminderSettings {
    fn default() -> Self {
        Self {
            hour: 8,
            escalate_after_days: 7,
            public_base_url: "http://127.0.0.1:8080".to_string(),
            mail_domain: "localhost".to_string(),
        }
    }
}

#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct ReminderReport {
    pub owners: usize,
    pub items: usize,
    pub queued: usize,
}

fn tz_of(name: &str) -> chrono_tz::Tz {
    name.parse().unwrap_or(chrono_tz::UTC)
}

/// One line of a reminder.
struct Line {
    item: action_item::Model,
    program_name: String,
    days_overdue: i64,
}

pub async fn overdue_reminders(
    ctx: &JobContext,
    now: DateTime<Utc>,
    settings: &ReminderSettings,
) -> Result<ReminderReport, JobError> {
    // Index (status, due_date): the scan follows the number of overdue items. "Overdue"
    // is judged per program time zone below; tomorrow's UTC date bounds every zone.
    let bound = now.date_naive().succ_opt().unwrap_or(now.date_naive());
    let candidates = action_item::Entity::find()
        .filter(action_item::Column::Status.is_in([ActionStatus::Open, ActionStatus::InProgress]))
        .filter(action_item::Column::DueDate.lt(bound))
        .order_by_asc(action_item::Column::DueDate)
        .order_by_asc(action_item::Column::Id)
        .all(&ctx.db)
        .await?;
    if candidates.is_empty() {
        return Ok(ReminderReport::default());
    }
    let program_ids: BTreeSet<i64> = candidates.iter().map(|a| a.program_id).collect();
    let programs: BTreeMap<i64, program::Model> = program::Entity::find()
        .filter(program::Column::Id.is_in(program_ids.iter().copied()))
        .all(&ctx.db)
        .await?
        .into_iter()
        .map(|p| (p.id, p))
        .collect();
    let owner_ids: BTreeSet<i64> = candidates.iter().map(|a| a.owner_user_id).collect();
    let owners: BTreeMap<i64, user::Model> = user::Entity::find()
        .filter(user::Column::Id.is_in(owner_ids.iter().copied()))
        .filter(user::Column::Active.eq(true))
        .all(&ctx.db)
        .await?
        .into_iter()
        .map(|u| (u.id, u))
        .collect();

    let mut by_owner: BTreeMap<i64, Vec<Line>> = BTreeMap::new();
    for item in candidates {
        let Some(p) = programs.get(&item.program_id) else {
            continue;
        };
        let today = now.with_timezone(&tz_of(&p.time_zone)).date_naive();
        if !action_item::is_overdue(item.status, item.due_date, item.snoozed_until, today) {
            continue;
        }
        by_owner.entry(item.owner_user_id).or_default().push(Line {
            days_overdue: action_item::days_overdue(item.due_date, today),
            program_name: p.name.clone(),
            item,
        });
    }

    let mut report = ReminderReport::default();
    for (owner_id, lines) in by_owner {
        let Some(owner) = owners.get(&owner_id) else {
            continue;
        };
        let local = now.with_timezone(&tz_of(&owner.time_zone));
        if matches!(local.weekday(), Weekday::Sat | Weekday::Sun) || local.hour() < settings.hour {
            continue;
        }
        report.owners += 1;
        report.items += lines.len();
        let cc = leadership_copies(ctx, &lines, settings.escalate_after_days, &owner.email).await?;
        let draft = compose(owner, local.date_naive(), &lines, cc, settings);
        let txn = ctx.db.begin().await?;
        if outbox::enqueue(&txn, draft, now, &settings.mail_domain).await? {
            report.queued += 1;
        }
        txn.commit().await?;
    }
    Ok(report)
}

/// Leadership-tier members (who want reminders) of the programs of items overdue past
/// the threshold.
async fn leadership_copies(
    ctx: &JobContext,
    lines: &[Line],
    after_days: i64,
    owner_email: &str,
) -> Result<Vec<String>, JobError> {
    let programs: BTreeSet<i64> = lines
        .iter()
        .filter(|l| l.days_overdue > after_days)
        .map(|l| l.item.program_id)
        .collect();
    if programs.is_empty() {
        return Ok(Vec::new());
    }
    let members = team_member::Entity::find()
        .filter(team_member::Column::ProgramId.is_in(programs))
        .filter(team_member::Column::GovernanceTier.eq(GovernanceTier::Leadership))
        .filter(team_member::Column::WantsReminders.eq(true))
        .all(&ctx.db)
        .await?;
    let users = user::Entity::find()
        .filter(user::Column::Id.is_in(members.iter().map(|m| m.user_id)))
        .filter(user::Column::Active.eq(true))
        .all(&ctx.db)
        .await?;
    let mut emails: Vec<String> = users
        .into_iter()
        .map(|u| u.email)
        .filter(|e| e != owner_email)
        .collect();
    emails.sort();
    emails.dedup();
    Ok(emails)
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

fn compose(
    owner: &user::Model,
    local_date: NaiveDate,
    lines: &[Line],
    cc: Vec<String>,
    s: &ReminderSettings,
) -> Draft {
    let base = s.public_base_url.trim_end_matches('/');
    let n = lines.len();
    let subject = format!(
        "{n} overdue action item{} — {local_date}",
        if n == 1 { "" } else { "s" }
    );
    let mut text = format!(
        "Hello {},\n\nThese action items assigned to you are overdue (oldest first):\n\n",
        owner.display_name
    );
    let mut html = format!(
        "<p>Hello {},</p><p>These action items assigned to you are overdue (oldest first):</p><ul>",
        escape(&owner.display_name)
    );
    for l in lines {
        let link = format!("{base}/api/v1/action-items/{}", l.item.id);
        text.push_str(&format!(
            "- {} ({}), due {}, {} day{} overdue\n  {link}\n",
            l.item.title,
            l.program_name,
            l.item.due_date,
            l.days_overdue,
            if l.days_overdue == 1 { "" } else { "s" }
        ));
        html.push_str(&format!(
            "<li><a href=\"{}\">{}</a> ({}), due {}, <b>{} day{} overdue</b></li>",
            escape(&link),
            escape(&l.item.title),
            escape(&l.program_name),
            l.item.due_date,
            l.days_overdue,
            if l.days_overdue == 1 { "" } else { "s" }
        ));
    }
    text.push_str("\nUpdate them, or snooze them with a reason, to stop these reminders.\n");
    html.push_str(
        "</ul><p>Update them, or snooze them with a reason, to stop these reminders.</p>",
    );
    Draft {
        dedupe_key: format!("reminder:{}:{local_date}", owner.id),
        to: vec![owner.email.clone()],
        cc,
        subject,
        text_body: text,
        html_body: html,
        list_unsubscribe: None,
    }
}
