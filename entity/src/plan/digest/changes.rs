//! "What changed" in a digest: the audit events about a program's records since the
//! previous digest, grouped per record and said in plain words ("Triaged: now
//! Investigating"), never as raw state names (`create → open`).

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use sea_orm::{
    ColumnTrait, Condition, ConnectionTrait, DbErr, EntityTrait, QueryFilter, QuerySelect,
};
use serde::Serialize;
use serde_json::Value;

use crate::link_token::PageRecord;
use crate::{action_item, team_member};
use crate::{audit_event, capa, change_request, deviation, gate, milestone, program, signature};

/// Audit actions that stay with their own organization's security review.
const SECURITY_ACTIONS: &[&str] = &["sign_failed", "sign_in_failed", "password_reset_requested"];

/// At most this many lines are shown per record; the count says how many there were.
pub const MAX_LINES_PER_RECORD: usize = 6;

/// One change, in words.
#[derive(Debug, Clone, Serialize)]
pub struct ChangeLine {
    pub at: DateTime<Utc>,
    pub who: Option<i64>,
    /// "Triaged: now Investigating".
    pub what: String,
    pub reason: Option<String>,
}

/// The changes of one record (a gate's checklist and decisions count as its milestone).
#[derive(Debug, Clone, Serialize)]
pub struct RecordChanges {
    /// "Deviation DEV-2026-0041 “Filter integrity failure”".
    pub record: String,
    /// The record's page, when it has one.
    #[serde(skip)]
    pub page: Option<(PageRecord, i64)>,
    /// Oldest first; at most [`MAX_LINES_PER_RECORD`].
    pub lines: Vec<ChangeLine>,
    pub total: usize,
    pub latest: DateTime<Utc>,
}

/// Which record an audit entry is about, for grouping.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum Subject {
    Page(PageRecord, i64),
    Team,
}

/// The program's records whose audit entries count, by audit type.
struct Records {
    milestones: BTreeMap<i64, String>,
    deviations: BTreeMap<i64, String>,
    capas: BTreeMap<i64, String>,
    changes: BTreeMap<i64, String>,
    actions: BTreeMap<i64, String>,
    /// The numbers people quote, by page record and id (deviations, CAPA, changes).
    numbers: BTreeMap<(PageRecord, i64), String>,
    members: Vec<i64>,
    /// Gate checklist item and decision → its milestone.
    gate_items: BTreeMap<i64, i64>,
    decisions: BTreeMap<i64, i64>,
}

impl Records {
    async fn of<C: ConnectionTrait>(
        conn: &C,
        prog: &program::Model,
        milestones: &[milestone::Model],
        deviations: &[deviation::Model],
        capas: &[capa::Model],
    ) -> Result<Records, DbErr> {
        let milestone_ids: Vec<i64> = milestones.iter().map(|m| m.id).collect();
        let titled = |rows: Vec<(i64, String)>| rows.into_iter().collect::<BTreeMap<_, _>>();
        let changes: Vec<(i64, String, Option<String>)> = change_request::Entity::find()
            .select_only()
            .column(change_request::Column::Id)
            .column(change_request::Column::Title)
            .column(change_request::Column::RecordNumber)
            .filter(change_request::Column::ProgramId.eq(prog.id))
            .into_tuple()
            .all(conn)
            .await?;
        let numbers = deviations
            .iter()
            .filter_map(|d| Some(((PageRecord::Deviation, d.id), d.record_number.clone()?)))
            .chain(
                capas
                    .iter()
                    .filter_map(|c| Some(((PageRecord::Capa, c.id), c.record_number.clone()?))),
            )
            .chain(
                changes
                    .iter()
                    .filter_map(|(id, _, n)| Some(((PageRecord::ChangeRequest, *id), n.clone()?))),
            )
            .collect();
        Ok(Records {
            milestones: milestones.iter().map(|m| (m.id, m.name.clone())).collect(),
            deviations: deviations.iter().map(|d| (d.id, d.title.clone())).collect(),
            capas: capas.iter().map(|c| (c.id, c.title.clone())).collect(),
            changes: changes.into_iter().map(|(id, t, _)| (id, t)).collect(),
            numbers,
            actions: titled(
                action_item::Entity::find()
                    .select_only()
                    .column(action_item::Column::Id)
                    .column(action_item::Column::Title)
                    .filter(action_item::Column::ProgramId.eq(prog.id))
                    .into_tuple()
                    .all(conn)
                    .await?,
            ),
            members: team_member::Entity::find()
                .select_only()
                .column(team_member::Column::Id)
                .filter(team_member::Column::ProgramId.eq(prog.id))
                .into_tuple()
                .all(conn)
                .await?,
            gate_items: gate::item::Entity::find()
                .select_only()
                .column(gate::item::Column::Id)
                .column(gate::item::Column::MilestoneId)
                .filter(gate::item::Column::MilestoneId.is_in(milestone_ids.clone()))
                .into_tuple::<(i64, i64)>()
                .all(conn)
                .await?
                .into_iter()
                .collect(),
            decisions: gate::decision::Entity::find()
                .select_only()
                .column(gate::decision::Column::Id)
                .column(gate::decision::Column::MilestoneId)
                .filter(gate::decision::Column::MilestoneId.is_in(milestone_ids))
                .into_tuple::<(i64, i64)>()
                .all(conn)
                .await?
                .into_iter()
                .collect(),
        })
    }

    /// Ids of the signatures made on these records (gate decisions, deviation
    /// closures, production releases, CAPA plans and closures, change decisions).
    async fn signatures<C: ConnectionTrait>(
        &self,
        conn: &C,
        program_id: i64,
    ) -> Result<Vec<String>, DbErr> {
        use crate::enums::SignedRecordType as T;
        fn ids<V>(m: &BTreeMap<i64, V>) -> Vec<String> {
            m.keys().map(i64::to_string).collect()
        }
        let signed: [(T, Vec<String>); 5] = [
            (T::GateDecision, ids(&self.decisions)),
            (T::DeviationClosure, ids(&self.deviations)),
            (T::ProductionRelease, vec![program_id.to_string()]),
            (T::Capa, ids(&self.capas)),
            (T::ChangeRequest, ids(&self.changes)),
        ];
        let mut out = Vec::new();
        for (record_type, record_ids) in signed {
            for chunk in record_ids.chunks(500) {
                let found: Vec<i64> = signature::Entity::find()
                    .select_only()
                    .column(signature::Column::Id)
                    .filter(signature::Column::RecordType.eq(record_type))
                    .filter(signature::Column::RecordId.is_in(chunk.iter().cloned()))
                    .into_tuple()
                    .all(conn)
                    .await?;
                out.extend(found.into_iter().map(|id| id.to_string()));
            }
        }
        Ok(out)
    }

    fn subject(&self, entity_type: &str, id: i64, program_id: i64) -> Option<Subject> {
        Some(match entity_type {
            "program" if id == program_id => Subject::Page(PageRecord::Program, id),
            "milestone" => Subject::Page(PageRecord::Milestone, id),
            "deviation" => Subject::Page(PageRecord::Deviation, id),
            "capa" => Subject::Page(PageRecord::Capa, id),
            "change_request" => Subject::Page(PageRecord::ChangeRequest, id),
            "action_item" => Subject::Page(PageRecord::ActionItem, id),
            "gate_item" => Subject::Page(PageRecord::Milestone, *self.gate_items.get(&id)?),
            "gate_decision" => Subject::Page(PageRecord::Milestone, *self.decisions.get(&id)?),
            "team_member" => Subject::Team,
            _ => return None,
        })
    }

    fn name(&self, subject: &Subject, prog: &program::Model) -> String {
        let titled = |kind: &str, id: i64, title: Option<&String>| {
            let reference = match subject {
                Subject::Page(record, _) => self.numbers.get(&(*record, id)).cloned(),
                Subject::Team => None,
            }
            .unwrap_or_else(|| format!("#{id}"));
            match title {
                Some(t) => format!("{kind} {reference} \u{201c}{t}\u{201d}"),
                None => format!("{kind} {reference}"),
            }
        };
        match subject {
            Subject::Team => "The team".to_string(),
            Subject::Page(record, id) => match record {
                PageRecord::Program => format!("The program \u{201c}{}\u{201d}", prog.name),
                PageRecord::Milestone => titled("Milestone", *id, self.milestones.get(id)),
                PageRecord::Deviation => titled("Deviation", *id, self.deviations.get(id)),
                PageRecord::Capa => titled("CAPA", *id, self.capas.get(id)),
                PageRecord::ChangeRequest => titled("Change request", *id, self.changes.get(id)),
                PageRecord::ActionItem => titled("Action item", *id, self.actions.get(id)),
                PageRecord::Escalation => format!("Escalation #{id}"),
            },
        }
    }

    fn by_type(&self, program_id: i64) -> [(&'static str, Vec<String>); 9] {
        fn ids<V>(m: &BTreeMap<i64, V>) -> Vec<String> {
            m.keys().map(i64::to_string).collect()
        }
        [
            ("program", vec![program_id.to_string()]),
            ("milestone", ids(&self.milestones)),
            ("deviation", ids(&self.deviations)),
            ("capa", ids(&self.capas)),
            ("change_request", ids(&self.changes)),
            ("action_item", ids(&self.actions)),
            (
                "team_member",
                self.members.iter().map(i64::to_string).collect(),
            ),
            ("gate_item", ids(&self.gate_items)),
            ("gate_decision", ids(&self.decisions)),
        ]
    }
}

/// The program's changes in `(since, now]`, grouped per record, the most recently
/// changed record first, and the number of changes in all.
pub async fn since<C: ConnectionTrait>(
    conn: &C,
    prog: &program::Model,
    (milestones, deviations, capas): (&[milestone::Model], &[deviation::Model], &[capa::Model]),
    since: DateTime<Utc>,
    now: DateTime<Utc>,
) -> Result<(Vec<RecordChanges>, usize), DbErr> {
    let records = Records::of(conn, prog, milestones, deviations, capas).await?;
    let events = events_of(conn, &records.by_type(prog.id), Some(since), now).await?;
    let total = events.len();
    Ok((group(&records, prog, events), total))
}

/// Every audit entry about the program's records up to `now`, from the sponsor's and
/// the CMO's chains, and the entries of the signatures made on them; failed signature
/// attempts and other security events stay out (they belong to their organization's
/// review). Oldest first.
pub async fn program_trail<C: ConnectionTrait>(
    conn: &C,
    prog: &program::Model,
    now: DateTime<Utc>,
) -> Result<Vec<audit_event::Model>, DbErr> {
    let (milestones, deviations, capas) = program_records(conn, prog.id).await?;
    let records = Records::of(conn, prog, &milestones, &deviations, &capas).await?;
    let mut by_type = records.by_type(prog.id).to_vec();
    by_type.push(("signature", records.signatures(conn, prog.id).await?));
    let mut events = events_of(conn, &by_type, None, now).await?;
    // In the order written across both chains, as a record copy's trail.
    events.sort_by_key(|e| (e.occurred_at, e.id));
    Ok(events)
}

/// The audit entries about the listed records (by audit type and id) up to `now`, from
/// every chain that holds them (the sponsor's and the CMO's), security events left out as
/// in the program's trail; in the order they were written. A record copy's trail.
pub async fn record_trail<C: ConnectionTrait>(
    conn: &C,
    by_type: &[(&'static str, Vec<String>)],
    now: DateTime<Utc>,
) -> Result<Vec<audit_event::Model>, DbErr> {
    let mut events = events_of(conn, by_type, None, now).await?;
    events.sort_by_key(|e| (e.occurred_at, e.id));
    Ok(events)
}

/// A program's milestones, deviations and CAPA: what its digest counts and its trail
/// covers.
pub async fn program_records<C: ConnectionTrait>(
    conn: &C,
    program_id: i64,
) -> Result<
    (
        Vec<milestone::Model>,
        Vec<deviation::Model>,
        Vec<capa::Model>,
    ),
    DbErr,
> {
    Ok((
        milestone::Entity::find()
            .filter(milestone::Column::ProgramId.eq(program_id))
            .all(conn)
            .await?,
        deviation::Entity::find()
            .filter(deviation::Column::ProgramId.eq(program_id))
            .all(conn)
            .await?,
        capa::Entity::find()
            .filter(capa::Column::ProgramId.eq(program_id))
            .all(conn)
            .await?,
    ))
}

/// The audit entries of the listed records in `(since, now]`, security events left out.
async fn events_of<C: ConnectionTrait>(
    conn: &C,
    by_type: &[(&'static str, Vec<String>)],
    since: Option<DateTime<Utc>>,
    now: DateTime<Utc>,
) -> Result<Vec<audit_event::Model>, DbErr> {
    let mut events = Vec::new();
    // Changes by the sponsor and by the CMO sit in different organization chains; both
    // are read here.
    for (entity_type, ids) in by_type {
        // Bounded IN lists (SQLite caps bound parameters); the (entity_type, entity_id)
        // index answers each.
        for chunk in ids.chunks(500) {
            let mut window = Condition::all()
                .add(audit_event::Column::EntityType.eq(*entity_type))
                .add(audit_event::Column::EntityId.is_in(chunk.iter().cloned()))
                .add(audit_event::Column::OccurredAt.lte(now));
            if let Some(since) = since {
                window = window.add(audit_event::Column::OccurredAt.gt(since));
            }
            events.extend(audit_event::Entity::find().filter(window).all(conn).await?);
        }
    }
    // Failed signature attempts are security events of the signer's organization, not
    // news of the program: the other side never reads them.
    events.retain(|e| !SECURITY_ACTIONS.contains(&e.action.as_str()));
    Ok(events)
}

fn group(
    records: &Records,
    prog: &program::Model,
    mut events: Vec<audit_event::Model>,
) -> Vec<RecordChanges> {
    events.sort_by_key(|e| (e.occurred_at, e.id));
    let mut grouped: BTreeMap<Subject, Vec<audit_event::Model>> = BTreeMap::new();
    for e in events {
        let Ok(id) = e.entity_id.parse::<i64>() else {
            continue;
        };
        if let Some(subject) = records.subject(&e.entity_type, id, prog.id) {
            grouped.entry(subject).or_default().push(e);
        }
    }
    let mut out: Vec<RecordChanges> = grouped
        .into_iter()
        .map(|(subject, events)| {
            let latest = events.last().map(|e| e.occurred_at).unwrap_or_default();
            RecordChanges {
                record: records.name(&subject, prog),
                page: match subject {
                    Subject::Page(record, id) => Some((record, id)),
                    Subject::Team => Some((PageRecord::Program, prog.id)),
                },
                total: events.len(),
                lines: events
                    .iter()
                    .rev()
                    .take(MAX_LINES_PER_RECORD)
                    .rev()
                    .map(|e| ChangeLine {
                        at: e.occurred_at,
                        who: e.actor_user_id,
                        what: describe(e),
                        reason: e.reason.clone(),
                    })
                    .collect(),
                latest,
            }
        })
        .collect();
    out.sort_by_key(|r| std::cmp::Reverse(r.latest));
    out
}

/// A wire word (`effectiveness_check`) as words: "effectiveness check".
fn words(wire: &str) -> String {
    let w = wire.replace(['_', '-'], " ");
    w.replace("capa", "CAPA").replace("n a", "not applicable")
}

fn capitalized(s: &str) -> String {
    let mut c = s.chars();
    c.next()
        .map(|f| f.to_uppercase().collect::<String>() + c.as_str())
        .unwrap_or_default()
}

/// Fields whose change nobody reads as news.
const BOOKKEEPING: &[&str] = &[
    "version",
    "updated_at",
    "created_at",
    "id",
    "signature_id",
    "closure_signature_id",
    "decision_signature_id",
    "position",
];

/// One audit entry in plain words: what was done, the state it left the record in, or
/// which fields it changed. "Triage: now investigating", "Updated due date and owner".
pub(crate) fn describe(e: &audit_event::Model) -> String {
    let parse = |s: &Option<String>| -> Option<Value> {
        s.as_deref().and_then(|v| serde_json::from_str(v).ok())
    };
    let (before, after) = (parse(&e.before), parse(&e.after));
    let field = |v: &Option<Value>, name: &str| {
        v.as_ref()
            .and_then(|v| v.get(name))
            .and_then(Value::as_str)
            .map(str::to_string)
    };
    let status_before = field(&before, "status").or_else(|| field(&before, "result"));
    let status_after = field(&after, "status").or_else(|| field(&after, "result"));
    let verb = match e.action.as_str() {
        "create" => "Created".to_string(),
        "report" => "Reported".to_string(),
        "add" => "Added".to_string(),
        "remove" => "Removed".to_string(),
        "update" | "patch" => "Updated".to_string(),
        "transition" => String::new(),
        other => capitalized(&words(other)),
    };
    let item = if e.entity_type == "gate_item" {
        field(&after, "title").map(|t| format!(" gate check \u{201c}{t}\u{201d}"))
    } else if e.entity_type == "team_member" {
        Some(format!(" member #{}", e.entity_id))
    } else {
        None
    }
    .unwrap_or_default();
    let creates = matches!(e.action.as_str(), "create" | "report" | "add");
    match (status_before, status_after) {
        (b, Some(a)) if b.as_deref() != Some(a.as_str()) && !creates => {
            let now = format!("now {}", words(&a));
            if verb.is_empty() {
                capitalized(&format!("{}{item}", now))
            } else {
                format!("{verb}{item}: {now}")
            }
        }
        _ => {
            let changed = changed_fields(before.as_ref(), after.as_ref());
            let verb = if verb.is_empty() {
                "Updated".to_string()
            } else {
                verb
            };
            if changed.is_empty() || creates {
                format!("{verb}{item}")
            } else {
                format!("{verb}{item}: {}", list(&changed))
            }
        }
    }
}

fn changed_fields(before: Option<&Value>, after: Option<&Value>) -> Vec<String> {
    let (Some(Value::Object(b)), Some(Value::Object(a))) = (before, after) else {
        return Vec::new();
    };
    a.iter()
        .filter(|(k, v)| !BOOKKEEPING.contains(&k.as_str()) && b.get(*k) != Some(*v))
        .map(|(k, _)| words(k.trim_end_matches("_user_id").trim_end_matches("_id")))
        .collect()
}

/// "a", "a and b", "a, b and c".
fn list(items: &[String]) -> String {
    match items {
        [] => String::new(),
        [one] => one.clone(),
        [init @ .., last] => format!("{} and {last}", init.join(", ")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(
        entity_type: &str,
        action: &str,
        before: Option<&str>,
        after: &str,
    ) -> audit_event::Model {
        audit_event::Model {
            id: 1,
            org_id: 1,
            seq: 1,
            actor_user_id: None,
            entity_type: entity_type.into(),
            entity_id: "9".into(),
            action: action.into(),
            before: before.map(str::to_string),
            after: Some(after.into()),
            reason: None,
            request_id: None,
            occurred_at: DateTime::from_timestamp(1_796_000_000, 0).unwrap_or_default(),
            prev_hash: String::new(),
            hash: String::new(),
            hash_format: crate::audit::FORMAT_KEYED,
            key_id: None,
        }
    }

    #[test]
    fn changes_read_as_words_not_state_names() {
        assert_eq!(
            describe(&event(
                "deviation",
                "report",
                None,
                r#"{"status":"open","title":"x"}"#
            )),
            "Reported"
        );
        assert_eq!(
            describe(&event(
                "deviation",
                "triage",
                Some(r#"{"status":"open"}"#),
                r#"{"status":"investigating"}"#
            )),
            "Triage: now investigating"
        );
        assert_eq!(
            describe(&event(
                "capa",
                "effectiveness_check",
                Some(r#"{"status":"effectiveness_check"}"#),
                r#"{"status":"awaiting_capa"}"#
            )),
            "Effectiveness check: now awaiting CAPA"
        );
        assert_eq!(
            describe(&event(
                "action_item",
                "transition",
                Some(r#"{"status":"open"}"#),
                r#"{"status":"done"}"#
            )),
            "Now done"
        );
        assert_eq!(
            describe(&event(
                "action_item",
                "update",
                Some(r#"{"due_date":"2026-12-01","owner_user_id":3,"version":1}"#),
                r#"{"due_date":"2026-12-08","owner_user_id":4,"version":2}"#
            )),
            "Updated: due date and owner"
        );
        assert_eq!(
            describe(&event(
                "gate_item",
                "update",
                Some(r#"{"result":"pending","title":"SOPs"}"#),
                r#"{"result":"pass","title":"SOPs"}"#
            )),
            "Updated gate check \u{201c}SOPs\u{201d}: now pass"
        );
    }

    #[test]
    fn lists_read_naturally() {
        let s = |v: &[&str]| list(&v.iter().map(|x| x.to_string()).collect::<Vec<_>>());
        assert_eq!(s(&["a"]), "a");
        assert_eq!(s(&["a", "b", "c"]), "a, b and c");
    }
}
