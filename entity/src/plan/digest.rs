//! What the weekly status digest of a program says (SPEC §5): milestone health, gates in
//! the next 14 days, open deviations, CAPA and overdue actions, production status and what
//! changed since the previous digest. The numbers come from the same functions as the
//! program overview and quality summary. Both binaries read it: the api's preview and the
//! worker's job; the `mail` crate renders it.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Datelike, NaiveDate, TimeDelta, Utc};
use sea_orm::{
    ColumnTrait, Condition, ConnectionTrait, DbErr, EntityTrait, QueryFilter, QueryOrder,
    QuerySelect,
};
use serde::Serialize;

use crate::action_item::{self, ActionStatus};
use crate::deviation::{self, DeviationStatus};
use crate::enums::wire_name;
use crate::overview::{self, PlanSummary};
use crate::quality_summary::{self, QualitySummary};
use crate::schedule::local_time as local;
use crate::{audit_event, capa, change_request, gate, milestone, program, team_member, user};

/// At most this many lines per list in the email; the totals say how many there are.
pub const MAX_LISTED: usize = 25;
/// The job name of a program's digest ticks in `job_runs`.
pub fn job_name(program_id: i64) -> String {
    format!("digest:{program_id}")
}

#[derive(Debug, Clone, Serialize)]
pub struct ProgramInfo {
    pub id: i64,
    pub name: String,
    pub product_name: String,
    pub production_status: String,
    pub time_zone: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct DeviationLine {
    pub id: i64,
    pub title: String,
    pub criticality: String,
    pub status: String,
    pub detected_local: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct ActionLine {
    pub id: i64,
    pub title: String,
    pub source: String,
    pub owner: String,
    pub due_date: NaiveDate,
    pub days_overdue: i64,
}

#[derive(Debug, Clone, Serialize)]
pub struct ChangeLine {
    pub when_local: String,
    pub who: String,
    pub what: String,
    pub reason: Option<String>,
}

/// Everything a digest shows, the same for every recipient.
#[derive(Debug, Clone, Serialize)]
pub struct DigestData {
    pub program: ProgramInfo,
    /// ISO week of the program's local date, e.g. `2026-W49`.
    pub iso_week: String,
    pub generated_local: String,
    pub since: DateTime<Utc>,
    pub since_local: String,
    pub plan: PlanSummary,
    pub quality: QualitySummary,
    /// Open critical and major deviations, most severe and oldest first.
    pub open_deviations: Vec<DeviationLine>,
    pub overdue_actions: Vec<ActionLine>,
    pub overdue_actions_total: usize,
    /// Newest first.
    pub changes: Vec<ChangeLine>,
    pub changes_total: usize,
}

pub fn iso_week(date: NaiveDate) -> String {
    let w = date.iso_week();
    format!("{}-W{:02}", w.year(), w.week())
}

/// Gathers a program's digest as of `now`, listing changes recorded after `since`.
pub async fn gather<C: ConnectionTrait>(
    conn: &C,
    prog: &program::Model,
    now: DateTime<Utc>,
    since: DateTime<Utc>,
) -> Result<DigestData, DbErr> {
    let tz = crate::schedule::zone(&prog.time_zone);
    let today = now.with_timezone(&tz).date_naive();
    let milestones = milestone::Entity::find()
        .filter(milestone::Column::ProgramId.eq(prog.id))
        .all(conn)
        .await?;
    let deviations = deviation::Entity::find()
        .filter(deviation::Column::ProgramId.eq(prog.id))
        .all(conn)
        .await?;
    let capas = capa::Entity::find()
        .filter(capa::Column::ProgramId.eq(prog.id))
        .all(conn)
        .await?;
    let plan = overview::summarize(&milestones, today);
    let quality = quality_summary::summarize(&deviations, &capas, today);

    let mut open_deviations: Vec<&deviation::Model> = deviations
        .iter()
        .filter(|d| {
            !matches!(
                d.status,
                DeviationStatus::Closed | DeviationStatus::Cancelled
            ) && d.criticality != deviation::Criticality::Minor
        })
        .collect();
    open_deviations.sort_by_key(|d| {
        (
            d.criticality != deviation::Criticality::Critical,
            d.detected_at,
            d.id,
        )
    });

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

    let events = changes_since(conn, prog, &milestones, &deviations, &capas, since, now).await?;
    let listed_events = &events[..events.len().min(MAX_LISTED)];

    let mut user_ids: BTreeSet<i64> = listed_actions.iter().map(|a| a.owner_user_id).collect();
    user_ids.extend(listed_events.iter().filter_map(|e| e.actor_user_id));
    let names: BTreeMap<i64, String> = user::Entity::find()
        .filter(user::Column::Id.is_in(user_ids))
        .all(conn)
        .await?
        .into_iter()
        .map(|u| (u.id, u.display_name))
        .collect();
    let name_of = |id: Option<i64>| match id {
        Some(id) => names
            .get(&id)
            .cloned()
            .unwrap_or_else(|| format!("user #{id}")),
        None => "system".to_string(),
    };

    Ok(DigestData {
        program: ProgramInfo {
            id: prog.id,
            name: prog.name.clone(),
            product_name: prog.product_name.clone(),
            production_status: wire_name(&prog.production_status),
            time_zone: prog.time_zone.clone(),
        },
        iso_week: iso_week(today),
        generated_local: local(tz, now),
        since,
        since_local: local(tz, since),
        plan,
        quality,
        open_deviations: open_deviations
            .iter()
            .take(MAX_LISTED)
            .map(|d| DeviationLine {
                id: d.id,
                title: d.title.clone(),
                criticality: wire_name(&d.criticality),
                status: wire_name(&d.status),
                detected_local: local(tz, d.detected_at),
            })
            .collect(),
        overdue_actions: listed_actions
            .iter()
            .map(|a| ActionLine {
                id: a.id,
                title: a.title.clone(),
                source: wire_name(&a.source),
                owner: name_of(Some(a.owner_user_id)),
                due_date: a.due_date,
                days_overdue: action_item::days_overdue(a.due_date, today),
            })
            .collect(),
        overdue_actions_total: overdue.len(),
        changes: listed_events
            .iter()
            .map(|e| ChangeLine {
                when_local: local(tz, e.occurred_at),
                who: name_of(e.actor_user_id),
                what: describe(e),
                reason: e.reason.clone(),
            })
            .collect(),
        changes_total: events.len(),
    })
}

/// Audit events about this program's records in `(since, now]`, newest first. Changes by
/// the sponsor and by the CMO sit in different organization chains; both are read here.
async fn changes_since<C: ConnectionTrait>(
    conn: &C,
    prog: &program::Model,
    milestones: &[milestone::Model],
    deviations: &[deviation::Model],
    capas: &[capa::Model],
    since: DateTime<Utc>,
    now: DateTime<Utc>,
) -> Result<Vec<audit_event::Model>, DbErr> {
    let milestone_ids: Vec<i64> = milestones.iter().map(|m| m.id).collect();
    let ids_of = |v: Vec<i64>| v.into_iter().map(|id| id.to_string()).collect::<Vec<_>>();
    let actions: Vec<i64> = action_item::Entity::find()
        .select_only()
        .column(action_item::Column::Id)
        .filter(action_item::Column::ProgramId.eq(prog.id))
        .into_tuple()
        .all(conn)
        .await?;
    let changes: Vec<i64> = change_request::Entity::find()
        .select_only()
        .column(change_request::Column::Id)
        .filter(change_request::Column::ProgramId.eq(prog.id))
        .into_tuple()
        .all(conn)
        .await?;
    let members: Vec<i64> = team_member::Entity::find()
        .select_only()
        .column(team_member::Column::Id)
        .filter(team_member::Column::ProgramId.eq(prog.id))
        .into_tuple()
        .all(conn)
        .await?;
    let gate_items: Vec<i64> = gate::item::Entity::find()
        .select_only()
        .column(gate::item::Column::Id)
        .filter(gate::item::Column::MilestoneId.is_in(milestone_ids.clone()))
        .into_tuple()
        .all(conn)
        .await?;
    let decisions: Vec<i64> = gate::decision::Entity::find()
        .select_only()
        .column(gate::decision::Column::Id)
        .filter(gate::decision::Column::MilestoneId.is_in(milestone_ids.clone()))
        .into_tuple()
        .all(conn)
        .await?;
    let by_type: [(&str, Vec<String>); 9] = [
        ("program", vec![prog.id.to_string()]),
        ("milestone", ids_of(milestone_ids)),
        (
            "deviation",
            ids_of(deviations.iter().map(|d| d.id).collect()),
        ),
        ("capa", ids_of(capas.iter().map(|c| c.id).collect())),
        ("change_request", ids_of(changes)),
        ("action_item", ids_of(actions)),
        ("team_member", ids_of(members)),
        ("gate_item", ids_of(gate_items)),
        ("gate_decision", ids_of(decisions)),
    ];
    let mut events = Vec::new();
    for (entity_type, ids) in by_type {
        // Bounded IN lists (SQLite caps bound parameters); the (entity_type, entity_id)
        // index answers each.
        for chunk in ids.chunks(500) {
            events.extend(
                audit_event::Entity::find()
                    .filter(
                        Condition::all()
                            .add(audit_event::Column::EntityType.eq(entity_type))
                            .add(audit_event::Column::EntityId.is_in(chunk.iter().cloned()))
                            .add(audit_event::Column::OccurredAt.gt(since))
                            .add(audit_event::Column::OccurredAt.lte(now)),
                    )
                    .all(conn)
                    .await?,
            );
        }
    }
    events.sort_by_key(|e| std::cmp::Reverse((e.occurred_at, e.id)));
    Ok(events)
}

/// "deviation #12 “Filter integrity failure”: transition → investigating".
fn describe(e: &audit_event::Model) -> String {
    let after: Option<serde_json::Value> = e
        .after
        .as_deref()
        .and_then(|a| serde_json::from_str(a).ok());
    let field = |name: &str| {
        after
            .as_ref()
            .and_then(|v| v.get(name))
            .and_then(|v| v.as_str())
            .map(str::to_string)
    };
    let mut s = format!("{} #{}", e.entity_type.replace('_', " "), e.entity_id);
    if let Some(title) = field("title").or_else(|| field("name")) {
        s.push_str(&format!(" \u{201c}{title}\u{201d}"));
    }
    s.push_str(&format!(": {}", e.action.replace('_', " ")));
    if let Some(status) = field("status") {
        s.push_str(&format!(" \u{2192} {status}"));
    }
    s
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

    #[test]
    fn describes_changes_with_title_and_new_status() {
        let e = audit_event::Model {
            id: 1,
            org_id: 1,
            seq: 1,
            actor_user_id: None,
            entity_type: "action_item".into(),
            entity_id: "9".into(),
            action: "transition".into(),
            before: None,
            after: Some(r#"{"title":"Send COA","status":"done"}"#.into()),
            reason: None,
            request_id: None,
            occurred_at: Utc::now(),
            prev_hash: String::new(),
            hash: String::new(),
        };
        assert_eq!(
            describe(&e),
            "action item #9 \u{201c}Send COA\u{201d}: transition \u{2192} done"
        );
    }
}
