//! What the weekly status digest of a program says (SPEC §5), for a leader who reads it
//! in ten seconds: first what needs attention (critical and major deviations of the week
//! with how long production was held, escalations with their time to acknowledge, late
//! milestones with their slip, gates ahead with readiness, overdue actions), then the
//! plan and quality in brief, then what changed per record. The numbers come from the
//! same functions as the program overview, so they agree. Both binaries read it (the api's
//! preview and ad hoc send, the worker's job); the `mail` crate words it per reader.

pub mod changes;
pub mod schedule;

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Datelike, NaiveDate, TimeDelta, Utc};
use sea_orm::{ColumnTrait, ConnectionTrait, DbErr, EntityTrait, QueryFilter, QueryOrder};
use serde::Serialize;

use crate::action_item::{self, ActionStatus};
use crate::deviation::{self, Criticality, DeviationStatus};
use crate::escalation::{self, EscalationStatus};
use crate::overview::{self, PlanSummary, Standing};
use crate::production_holds::{self, HoldPeriod};
use crate::quality_summary::{self, QualitySummary};
use crate::{gate, program, team_member, user};

pub use changes::{ChangeLine, RecordChanges};

/// At most this many lines per list in the email; the totals say how many there are.
pub const MAX_LISTED: usize = 25;
/// The job name of a program's digest ticks in `job_runs`.
pub fn job_name(program_id: i64) -> String {
    format!("digest:{program_id}")
}

/// A critical or major deviation detected in the digest's week.
#[derive(Debug, Clone, Serialize)]
pub struct WeekDeviation {
    pub id: i64,
    /// The number people quote (`DEV-2027-0041`), or `#id` until it has one.
    pub reference: String,
    pub title: String,
    pub criticality: Criticality,
    pub status: DeviationStatus,
    pub detected_at: DateTime<Utc>,
    /// The production hold while it was open (a critical deviation holds production).
    pub hold: Option<Hold>,
}

/// A period production was on hold; `released_at` is `None` while it lasts.
#[derive(Debug, Clone, Serialize)]
pub struct Hold {
    pub held_at: DateTime<Utc>,
    pub released_at: Option<DateTime<Utc>>,
    /// How long it lasted, or has lasted so far.
    pub minutes: i64,
    pub reason: String,
}

impl Hold {
    fn of(p: &HoldPeriod, now: DateTime<Utc>) -> Hold {
        Hold {
            held_at: p.held_at,
            released_at: p.released_at,
            minutes: p.length(now).num_minutes(),
            reason: p.reason.clone(),
        }
    }
}

/// An escalation opened in the week, or still open.
#[derive(Debug, Clone, Serialize)]
pub struct EscalationLine {
    pub id: i64,
    pub title: String,
    pub status: EscalationStatus,
    pub opened_at: DateTime<Utc>,
    pub acknowledged_at: Option<DateTime<Utc>>,
    pub acknowledged_by: Option<String>,
}

/// A gate ahead (in review, or forecast within 14 days) and its checklist.
#[derive(Debug, Clone, Serialize)]
pub struct GateLine {
    pub milestone_id: i64,
    pub name: String,
    pub forecast_end: NaiveDate,
    pub baseline_end: NaiveDate,
    pub readiness: gate::Readiness,
}

#[derive(Debug, Clone, Serialize)]
pub struct DeviationLine {
    pub id: i64,
    /// The number people quote (`DEV-2027-0041`), or `#id` until it has one.
    pub reference: String,
    pub title: String,
    pub criticality: Criticality,
    pub status: DeviationStatus,
    pub detected_at: DateTime<Utc>,
}

#[derive(Debug, Clone, Serialize)]
pub struct ActionLine {
    pub id: i64,
    pub title: String,
    pub owner: String,
    pub due_date: NaiveDate,
    pub days_overdue: i64,
}

#[derive(Debug, Clone, Serialize)]
pub struct ProgramInfo {
    pub id: i64,
    pub name: String,
    pub product_name: String,
    pub production_status: program::ProductionStatus,
    pub time_zone: String,
}

/// What needs attention this week, named: the digest's first screen.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Attention {
    pub deviations: Vec<WeekDeviation>,
    /// Hold periods that touched the week, oldest first.
    pub holds: Vec<Hold>,
    pub escalations: Vec<EscalationLine>,
    pub gates: Vec<GateLine>,
}

impl Attention {
    pub fn is_empty(&self) -> bool {
        self.deviations.is_empty()
            && self.holds.is_empty()
            && self.escalations.is_empty()
            && self.gates.is_empty()
    }
}

/// Everything a digest shows, the same for every recipient (times in UTC: each reader
/// reads them in their own zone).
#[derive(Debug, Clone, Serialize)]
pub struct DigestData {
    pub program: ProgramInfo,
    pub standing: Standing,
    /// ISO week of the program's local date, e.g. `2026-W49`.
    pub iso_week: String,
    pub generated_at: DateTime<Utc>,
    pub since: DateTime<Utc>,
    pub plan: PlanSummary,
    pub quality: QualitySummary,
    pub attention: Attention,
    /// Open critical and major deviations, most severe and oldest first.
    pub open_deviations: Vec<DeviationLine>,
    pub overdue_actions: Vec<ActionLine>,
    pub overdue_actions_total: usize,
    /// Per record, the most recently changed first.
    pub changes: Vec<RecordChanges>,
    /// Changes in all (audit entries), however many are listed.
    pub changes_total: usize,
    /// Who made the listed changes, by user id.
    pub people: BTreeMap<i64, String>,
}

pub fn iso_week(date: NaiveDate) -> String {
    let w = date.iso_week();
    format!("{}-W{:02}", w.year(), w.week())
}

fn is_open(d: &deviation::Model) -> bool {
    !matches!(
        d.status,
        DeviationStatus::Closed | DeviationStatus::Cancelled
    )
}

/// Gathers a program's digest as of `now`, for the week after `since`.
pub async fn gather<C: ConnectionTrait>(
    conn: &C,
    prog: &program::Model,
    now: DateTime<Utc>,
    since: DateTime<Utc>,
) -> Result<DigestData, DbErr> {
    let today = prog.today(now);
    let (milestones, deviations, capas) = changes::program_records(conn, prog.id).await?;
    let plan = overview::summarize(&milestones, today);
    let quality = quality_summary::summarize(&deviations, &capas, today);
    let on_hold = prog.production_status == program::ProductionStatus::OnHold;

    let holds = production_holds::of_program(conn, prog.id).await?;
    let serious = |d: &&deviation::Model| d.criticality != Criticality::Minor;
    let mut week_deviations: Vec<WeekDeviation> = deviations
        .iter()
        .filter(serious)
        .filter(|d| d.detected_at > since || d.created_at > since)
        .map(|d| WeekDeviation {
            id: d.id,
            reference: d.reference(),
            title: d.title.clone(),
            criticality: d.criticality,
            status: d.status,
            detected_at: d.detected_at,
            hold: d
                .criticality
                .holds_production()
                .then(|| {
                    let open_until = d.closed_at.unwrap_or(now);
                    holds.iter().find(|h| h.overlaps(d.created_at, open_until))
                })
                .flatten()
                .map(|h| Hold::of(h, now)),
        })
        .collect();
    week_deviations.sort_by_key(|d| (d.criticality != Criticality::Critical, d.detected_at));

    let mut open_deviations: Vec<&deviation::Model> = deviations
        .iter()
        .filter(serious)
        .filter(|d| is_open(d))
        .collect();
    open_deviations.sort_by_key(|d| (d.criticality != Criticality::Critical, d.detected_at, d.id));

    let escalations = escalation::Entity::find()
        .filter(escalation::Column::ProgramId.eq(prog.id))
        .order_by_asc(escalation::Column::OpenedAt)
        .all(conn)
        .await?
        .into_iter()
        .filter(|e| e.opened_at > since || e.status != EscalationStatus::Resolved)
        .filter(|e| e.opened_at <= now)
        .collect::<Vec<_>>();

    let gate_ids: Vec<i64> = plan.upcoming_gates.iter().map(|g| g.milestone_id).collect();
    let items = gate::item::Entity::find()
        .filter(gate::item::Column::MilestoneId.is_in(gate_ids))
        .all(conn)
        .await?;

    let overdue: Vec<action_item::Model> = action_item::Entity::find()
        .filter(action_item::Column::ProgramId.eq(prog.id))
        .filter(action_item::Column::Status.is_in([ActionStatus::Open, ActionStatus::InProgress]))
        .filter(action_item::Column::DueDate.lt(today))
        .order_by_asc(action_item::Column::DueDate)
        .order_by_asc(action_item::Column::Id)
        .all(conn)
        .await?
        .into_iter()
        .filter(|a| action_item::is_overdue(a.status, a.due_date, a.snoozed_until, today))
        .collect();
    let listed_actions = &overdue[..overdue.len().min(MAX_LISTED)];

    let (mut changes, changes_total) =
        changes::since(conn, prog, (&milestones, &deviations, &capas), since, now).await?;
    changes.truncate(MAX_LISTED);

    let mut user_ids: BTreeSet<i64> = listed_actions.iter().map(|a| a.owner_user_id).collect();
    user_ids.extend(
        changes
            .iter()
            .flat_map(|r| r.lines.iter().filter_map(|l| l.who)),
    );
    user_ids.extend(escalations.iter().filter_map(|e| e.acknowledged_by_user_id));
    let people: BTreeMap<i64, String> = user::Entity::find()
        .filter(user::Column::Id.is_in(user_ids))
        .all(conn)
        .await?
        .into_iter()
        .map(|u| (u.id, u.display_name))
        .collect();
    let name_of = |id: i64| {
        people
            .get(&id)
            .cloned()
            .unwrap_or_else(|| format!("user #{id}"))
    };

    Ok(DigestData {
        program: ProgramInfo {
            id: prog.id,
            name: prog.name.clone(),
            product_name: prog.product_name.clone(),
            production_status: prog.production_status,
            time_zone: prog.time_zone.clone(),
        },
        standing: Standing::of(on_hold, &plan),
        iso_week: iso_week(today),
        generated_at: now,
        since,
        attention: Attention {
            deviations: week_deviations,
            holds: holds
                .iter()
                .filter(|h| h.overlaps(since, now))
                .map(|h| Hold::of(h, now))
                .collect(),
            escalations: escalations
                .iter()
                .map(|e| EscalationLine {
                    id: e.id,
                    title: e.title.clone(),
                    status: e.status,
                    opened_at: e.opened_at,
                    acknowledged_at: e.acknowledged_at,
                    acknowledged_by: e.acknowledged_by_user_id.map(name_of),
                })
                .collect(),
            gates: plan
                .upcoming_gates
                .iter()
                .map(|g| GateLine {
                    milestone_id: g.milestone_id,
                    name: g.name.clone(),
                    forecast_end: g.forecast_end,
                    baseline_end: g.baseline_end,
                    readiness: gate::Readiness::of(
                        items.iter().filter(|i| i.milestone_id == g.milestone_id),
                    ),
                })
                .collect(),
        },
        plan,
        quality,
        open_deviations: open_deviations
            .iter()
            .take(MAX_LISTED)
            .map(|d| DeviationLine {
                id: d.id,
                reference: d.reference(),
                title: d.title.clone(),
                criticality: d.criticality,
                status: d.status,
                detected_at: d.detected_at,
            })
            .collect(),
        overdue_actions: listed_actions
            .iter()
            .map(|a| ActionLine {
                id: a.id,
                title: a.title.clone(),
                owner: name_of(a.owner_user_id),
                due_date: a.due_date,
                days_overdue: action_item::days_overdue(a.due_date, today),
            })
            .collect(),
        overdue_actions_total: overdue.len(),
        changes,
        changes_total,
        people,
    })
}

/// Members who receive the digest: subscribed, with an active user.
pub async fn subscribers<C: ConnectionTrait>(
    conn: &C,
    program_id: i64,
) -> Result<Vec<(team_member::Model, user::Model)>, DbErr> {
    let members = team_member::Entity::find()
        .filter(team_member::Column::ProgramId.eq(program_id))
        .filter(team_member::Column::WantsDigest.eq(true))
        .order_by_asc(team_member::Column::Id)
        .all(conn)
        .await?;
    let users: BTreeMap<i64, user::Model> = user::Entity::find()
        .filter(user::Column::Id.is_in(members.iter().map(|m| m.user_id)))
        .filter(user::Column::Active.eq(true))
        .all(conn)
        .await?
        .into_iter()
        .map(|u| (u.id, u))
        .collect();
    Ok(members
        .into_iter()
        .filter_map(|m| users.get(&m.user_id).cloned().map(|u| (m, u)))
        .collect())
}

/// How far back "what changed" looks when no digest went out before.
pub const FIRST_DIGEST_LOOKBACK: TimeDelta = TimeDelta::days(7);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn iso_weeks_cross_years() {
        let d = |y, m, dd| NaiveDate::from_ymd_opt(y, m, dd).unwrap();
        assert_eq!(iso_week(d(2026, 11, 30)), "2026-W49");
        assert_eq!(iso_week(d(2027, 1, 1)), "2026-W53");
        assert_eq!(iso_week(d(2025, 12, 29)), "2026-W01");
    }
}
