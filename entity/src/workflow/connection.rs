//! Connecting a sponsor with a CMO already on the installation (the partner network):
//! the sponsor invites, the CMO's admin accepts or declines, the sponsor may withdraw an
//! invitation not yet answered and invite again; either side ends a connection once no
//! work is open between them. Audited in the trail of whoever took the step.

use std::borrow::Cow;
use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use sea_orm::{
    ColumnTrait, ConnectionTrait, DatabaseTransaction, DbErr, EntityTrait, QueryFilter, QueryOrder,
    QuerySelect,
};

use super::{Actor, Emitted, FollowUp, Workflow};
use crate::audit_trail::{self, Entry};
use crate::domain_event::{CmoConnectionChanged, Event};
use crate::enums::Role;
use crate::relationship::{self, ConnectionError, ConnectionEvent, ConnectionStatus};
use crate::{action_item, capa, change_request, deviation, escalation, program, team_member, user};

/// One connection step, by `by_user_id`.
#[derive(Debug, Clone)]
pub struct Step {
    pub event: ConnectionEvent,
    pub by_user_id: i64,
    /// An invitation's message to the CMO.
    pub message: Option<String>,
}

impl Workflow for Step {
    type Entity = relationship::Entity;
    type Model = relationship::Model;
    type Status = ConnectionStatus;
    type Event = ConnectionEvent;
    /// With `end`: the work still open between the two (named, and how much in all).
    type Guards = Option<OpenWork>;
    type Refusal = ConnectionError;

    const RECORD: &'static str = "cmo_relationship";

    fn id(m: &relationship::Model) -> i64 {
        m.id
    }
    fn status(m: &relationship::Model) -> ConnectionStatus {
        m.connection
    }
    fn event(&self) -> ConnectionEvent {
        self.event
    }
    fn allowed_events(m: &relationship::Model) -> Vec<ConnectionEvent> {
        relationship::allowed_events(m.connection)
    }
    fn probe(event: ConnectionEvent, _: &relationship::Model, _: Role) -> Self {
        Step {
            event,
            by_user_id: 0,
            message: (event == ConnectionEvent::End).then(|| "probe".to_string()),
        }
    }
    fn reason(&self) -> Option<String> {
        self.message.clone()
    }
    fn audit_action(&self) -> Cow<'static, str> {
        Cow::Owned(format!(
            "connection_{}",
            crate::enums::wire_name(&self.event)
        ))
    }

    async fn guards<C: ConnectionTrait>(
        &self,
        conn: &C,
        m: &relationship::Model,
    ) -> Result<Option<OpenWork>, DbErr> {
        if self.event != ConnectionEvent::End {
            return Ok(None);
        }
        // The programs locked: a record written on one at the same time either commits
        // first (and is counted) or waits for the end, whose refusals then apply.
        let programs = program::Entity::find()
            .filter(program::Column::SponsorOrgId.eq(m.sponsor_org_id))
            .filter(program::Column::CmoOrgId.eq(m.cmo_org_id))
            .order_by_asc(program::Column::Id)
            .lock_exclusive()
            .all(conn)
            .await?;
        open_work_on(conn, &programs, m.cmo_org_id).await.map(Some)
    }

    /// `cmo.connection_changed`, to the two parties only.
    fn domain_event(
        &self,
        before: &relationship::Model,
        after: &relationship::Model,
    ) -> Option<Emitted> {
        Some(Emitted::Organizations {
            program_id: None,
            sponsor_org_id: after.sponsor_org_id,
            cmo_org_id: Some(after.cmo_org_id),
            event: Event::CmoConnectionChanged(CmoConnectionChanged {
                connection_id: after.id,
                sponsor_org_id: after.sponsor_org_id,
                cmo_org_id: after.cmo_org_id,
                event: self.event,
                from: Some(before.connection),
                to: after.connection,
            }),
        })
    }

    fn decide(
        &self,
        m: &relationship::Model,
        open: &Option<OpenWork>,
    ) -> Result<ConnectionStatus, ConnectionError> {
        let next = relationship::transition(m.connection, self.event)?;
        if self.event == ConnectionEvent::End {
            if self.message.as_deref().is_none_or(|r| r.trim().is_empty()) {
                return Err(ConnectionError::ReasonRequired);
            }
            if let Some(open) = open.as_ref().filter(|o| o.total > 0) {
                return Err(ConnectionError::OpenWork {
                    named: open.named.clone(),
                    total: open.total,
                });
            }
        }
        Ok(next)
    }

    fn apply(
        &self,
        m: &mut relationship::Model,
        next: ConnectionStatus,
        _: &Option<OpenWork>,
        now: DateTime<Utc>,
    ) {
        m.connection = next;
        match self.event {
            ConnectionEvent::Invite => {
                m.invited_by_user_id = Some(self.by_user_id);
                m.invited_at = Some(now);
                m.invitation_message = self.message.clone();
                m.responded_by_user_id = None;
                m.responded_at = None;
                m.ended_by_user_id = None;
                m.ended_at = None;
                m.end_reason = None;
            }
            ConnectionEvent::Withdraw => {}
            ConnectionEvent::Accept | ConnectionEvent::Decline => {
                m.responded_by_user_id = Some(self.by_user_id);
                m.responded_at = Some(now);
            }
            ConnectionEvent::End => {
                m.ended_by_user_id = Some(self.by_user_id);
                m.ended_at = Some(now);
                m.end_reason = self.message.clone();
            }
        }
    }

    /// `end`: the CMO's people leave the sponsor's programs with the CMO (their team
    /// places, each removal in the sponsor's audit trail), so no digest, reminder or page
    /// of those programs reaches them any more.
    async fn follow_ups(
        &self,
        conn: &DatabaseTransaction,
        actor: &Actor,
        _before: &relationship::Model,
        after: &relationship::Model,
    ) -> Result<Vec<FollowUp>, DbErr> {
        if self.event == ConnectionEvent::End {
            leave_programs(conn, actor, after).await?;
        }
        Ok(Vec::new())
    }
}

/// Work open between a sponsor and a CMO: what keeps a connection from ending.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OpenWork {
    /// The first [`relationship::OPEN_WORK_NAMED`], as people name them
    /// (`deviation DEV-2027-0041 Bioburden excursion (ACM-101 clinical supply)`).
    pub named: Vec<String>,
    pub total: usize,
}

/// Open deviations, CAPA, change controls and escalations on `programs` (the sponsor's
/// with the CMO, oldest first), and the open action items the CMO's people own there:
/// one query per kind, named per program in that order.
pub async fn open_work_on<C: ConnectionTrait>(
    conn: &C,
    programs: &[program::Model],
    cmo_org_id: i64,
) -> Result<OpenWork, DbErr> {
    let ids: Vec<i64> = programs.iter().map(|p| p.id).collect();
    let mut by_program: BTreeMap<i64, Vec<String>> = BTreeMap::new();
    if ids.is_empty() {
        return Ok(OpenWork::default());
    }
    for d in deviation::Entity::find()
        .filter(deviation::Column::ProgramId.is_in(ids.clone()))
        .filter(deviation::Column::Status.is_not_in([
            deviation::DeviationStatus::Closed,
            deviation::DeviationStatus::Cancelled,
        ]))
        .order_by_asc(deviation::Column::Id)
        .all(conn)
        .await?
    {
        let named = format!("deviation {} {}", d.reference(), d.title);
        by_program.entry(d.program_id).or_default().push(named);
    }
    for c in capa::Entity::find()
        .filter(capa::Column::ProgramId.is_in(ids.clone()))
        .filter(
            capa::Column::Status.is_not_in([capa::CapaStatus::Closed, capa::CapaStatus::Cancelled]),
        )
        .order_by_asc(capa::Column::Id)
        .all(conn)
        .await?
    {
        let named = format!("CAPA {} {}", c.reference(), c.title);
        by_program.entry(c.program_id).or_default().push(named);
    }
    for c in change_request::Entity::find()
        .filter(change_request::Column::ProgramId.is_in(ids.clone()))
        .filter(change_request::Column::Status.is_not_in([
            change_request::ChangeStatus::Closed,
            change_request::ChangeStatus::Rejected,
        ]))
        .order_by_asc(change_request::Column::Id)
        .all(conn)
        .await?
    {
        let named = format!("change control {} {}", c.reference(), c.title);
        by_program.entry(c.program_id).or_default().push(named);
    }
    // The sponsor's own to-dos on its program are not between the two.
    let cmo_people = sea_orm::sea_query::Query::select()
        .column(user::Column::Id)
        .from(user::Entity)
        .and_where(user::Column::OrgId.eq(cmo_org_id))
        .to_owned();
    for a in action_item::Entity::find()
        .filter(action_item::Column::ProgramId.is_in(ids.clone()))
        .filter(action_item::Column::OwnerUserId.in_subquery(cmo_people))
        .filter(action_item::Column::Status.is_in([
            action_item::ActionStatus::Open,
            action_item::ActionStatus::InProgress,
        ]))
        .order_by_asc(action_item::Column::Id)
        .all(conn)
        .await?
    {
        let named = format!("action item #{} {}", a.id, a.title);
        by_program.entry(a.program_id).or_default().push(named);
    }
    for e in escalation::Entity::find()
        .filter(escalation::Column::ProgramId.is_in(ids))
        .filter(escalation::Column::Status.ne(escalation::EscalationStatus::Resolved))
        .order_by_asc(escalation::Column::Id)
        .all(conn)
        .await?
    {
        let named = format!("escalation #{} {}", e.id, e.title);
        by_program.entry(e.program_id).or_default().push(named);
    }
    let mut open = OpenWork::default();
    for p in programs {
        let items = by_program.remove(&p.id).unwrap_or_default();
        open.total += items.len();
        let room = relationship::OPEN_WORK_NAMED.saturating_sub(open.named.len());
        open.named.extend(
            items
                .into_iter()
                .take(room)
                .map(|i| format!("{i} ({})", p.name)),
        );
    }
    Ok(open)
}

/// Removes the CMO's people from the teams of the sponsor's programs with the CMO.
async fn leave_programs(
    conn: &DatabaseTransaction,
    actor: &Actor,
    r: &relationship::Model,
) -> Result<(), DbErr> {
    let programs: Vec<i64> = program::Entity::find()
        .select_only()
        .column(program::Column::Id)
        .filter(program::Column::SponsorOrgId.eq(r.sponsor_org_id))
        .filter(program::Column::CmoOrgId.eq(r.cmo_org_id))
        .into_tuple()
        .all(conn)
        .await?;
    if programs.is_empty() {
        return Ok(());
    }
    let cmo_people = sea_orm::sea_query::Query::select()
        .column(user::Column::Id)
        .from(user::Entity)
        .and_where(user::Column::OrgId.eq(r.cmo_org_id))
        .to_owned();
    let leaving = team_member::Entity::find()
        .filter(team_member::Column::ProgramId.is_in(programs))
        .filter(team_member::Column::UserId.in_subquery(cmo_people))
        .order_by_asc(team_member::Column::Id)
        .all(conn)
        .await?;
    let in_sponsor_trail = Actor {
        org_id: r.sponsor_org_id,
        ..actor.clone()
    };
    for m in leaving {
        team_member::Entity::delete_by_id(m.id).exec(conn).await?;
        audit_trail::append(
            conn,
            &in_sponsor_trail,
            Entry::new("team_member", m.id, "remove")
                .before(serde_json::json!({
                    "program_id": m.program_id,
                    "user_id": m.user_id,
                    "governance_tier": m.governance_tier,
                    "program_role": m.program_role,
                }))
                .reason(Some(format!(
                    "the connection with the CMO ended (connection {})",
                    r.id
                ))),
        )
        .await?;
    }
    Ok(())
}

impl super::Refusal for ConnectionError {
    fn kind(&self) -> super::RefusalKind {
        match self {
            Self::WrongParty(_) => super::RefusalKind::Forbidden,
            Self::NotAllowed { .. } | Self::OpenWork { .. } => super::RefusalKind::Illegal,
            Self::ReasonRequired => super::RefusalKind::MissingField("message"),
        }
    }
    fn conflict_code(&self) -> &'static str {
        match self {
            Self::OpenWork { .. } => "open_work",
            _ => "illegal_transition",
        }
    }
}
