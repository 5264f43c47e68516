//! What one sponsor keeps about one CMO (SPEC §7, the partner network): whether they are
//! connected, the sponsor's qualification of the CMO and its own notes. The CMO's facts
//! (capabilities, sites, inspections, contacts) are the CMO's, on its profile, read by
//! every sponsor connected to it; everything here is one sponsor's and no other sponsor
//! ever reads it.
//!
//! Connection state machine: a sponsor `invite`s a CMO already on the installation
//! (`invited`), the CMO's admin `accept`s (`connected`) or `decline`s (`declined`), the
//! sponsor may `withdraw` an invitation not yet answered (`withdrawn`); a declined or
//! withdrawn invitation may be sent again. Registering a new CMO connects it at once.
//! Either side's admin may `end` a connection (`ended`), with a reason, once no work is
//! open between them (deviations, CAPA, change controls, escalations on the sponsor's
//! programs with the CMO, action items its people own there): the sponsor keeps its
//! programs and its side of the relationship, the CMO's people leave those programs and
//! no longer see them. The sponsor may invite it again.

use sea_orm::entity::prelude::*;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::cmo::QualificationStatus;

#[derive(
    Debug, Clone, Copy, PartialEq, Eq, EnumIter, DeriveActiveEnum, Serialize, Deserialize, ToSchema,
)]
#[sea_orm(rs_type = "String", db_type = "String(StringLen::N(16))")]
#[serde(rename_all = "snake_case")]
pub enum ConnectionStatus {
    #[sea_orm(string_value = "invited")]
    Invited,
    #[sea_orm(string_value = "connected")]
    Connected,
    #[sea_orm(string_value = "declined")]
    Declined,
    #[sea_orm(string_value = "withdrawn")]
    Withdrawn,
    /// Connected once; one side ended it.
    #[sea_orm(string_value = "ended")]
    Ended,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ConnectionEvent {
    /// The sponsor invites again after a decline, a withdrawal or an end.
    Invite,
    /// The CMO's admin accepts.
    Accept,
    /// The CMO's admin declines.
    Decline,
    /// The sponsor takes back an invitation not yet answered.
    Withdraw,
    /// Either side's admin ends a connection (a reason required; no work open).
    End,
}

pub const ALL_CONNECTION_EVENTS: [ConnectionEvent; 5] = [
    ConnectionEvent::Invite,
    ConnectionEvent::Accept,
    ConnectionEvent::Decline,
    ConnectionEvent::Withdraw,
    ConnectionEvent::End,
];

/// Which side of the relationship takes an event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Party {
    Sponsor,
    Cmo,
    /// Either side may take it.
    Either,
}

pub fn party_of(event: ConnectionEvent) -> Party {
    match event {
        ConnectionEvent::Invite | ConnectionEvent::Withdraw => Party::Sponsor,
        ConnectionEvent::Accept | ConnectionEvent::Decline => Party::Cmo,
        ConnectionEvent::End => Party::Either,
    }
}

/// How many pieces of open work an `end` refusal names (it counts the rest).
pub const OPEN_WORK_NAMED: usize = 10;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConnectionError {
    #[error("{event:?} is not possible from {from:?}")]
    NotAllowed {
        from: ConnectionStatus,
        event: ConnectionEvent,
    },
    #[error("{0}")]
    WrongParty(&'static str),
    /// Work is open between the two: it is finished, cancelled or handed over first.
    #[error(
        "work is still open between the two: {}{}; close, cancel or hand it over, then end \
         the connection",
        .named.join("; "),
        if *.total > .named.len() { format!(" and {} more", .total - .named.len()) } else { String::new() }
    )]
    OpenWork { named: Vec<String>, total: usize },
    /// Ending needs a reason both sides can read.
    #[error("ending a connection needs a reason (message)")]
    ReasonRequired,
}

pub fn transition(
    from: ConnectionStatus,
    event: ConnectionEvent,
) -> Result<ConnectionStatus, ConnectionError> {
    use ConnectionEvent as E;
    use ConnectionStatus as S;
    Ok(match (from, event) {
        (S::Declined | S::Withdrawn | S::Ended, E::Invite) => S::Invited,
        (S::Invited, E::Accept) => S::Connected,
        (S::Invited, E::Decline) => S::Declined,
        (S::Invited, E::Withdraw) => S::Withdrawn,
        (S::Connected, E::End) => S::Ended,
        _ => return Err(ConnectionError::NotAllowed { from, event }),
    })
}

pub fn allowed_events(from: ConnectionStatus) -> Vec<ConnectionEvent> {
    ALL_CONNECTION_EVENTS
        .into_iter()
        .filter(|e| transition(from, *e).is_ok())
        .collect()
}

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "cmo_relationships")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    pub sponsor_org_id: i64,
    pub cmo_org_id: i64,
    pub connection: ConnectionStatus,
    pub qualification_status: QualificationStatus,
    pub qualification_reason: Option<String>,
    pub qualification_signature_id: Option<i64>,
    pub qualification_changed_at: Option<DateTimeUtc>,
    /// The sponsor's own notes about the CMO (never shown to the CMO or other sponsors).
    pub sponsor_notes: Option<String>,
    pub invited_by_user_id: Option<i64>,
    pub invited_at: Option<DateTimeUtc>,
    /// What the sponsor wrote to the CMO with its invitation.
    pub invitation_message: Option<String>,
    pub responded_by_user_id: Option<i64>,
    pub responded_at: Option<DateTimeUtc>,
    /// The duplicate CMO organization this relationship was with before a merge.
    pub merged_from_org_id: Option<i64>,
    /// Who ended the connection, when and why (set while it is `ended`).
    pub ended_by_user_id: Option<i64>,
    pub ended_at: Option<DateTimeUtc>,
    pub end_reason: Option<String>,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
    pub version: i32,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}

impl Model {
    pub fn is_connected(&self) -> bool {
        self.connection == ConnectionStatus::Connected
    }

    /// Invited or connected: a relationship that is on, or waiting to be.
    pub fn is_live(&self) -> bool {
        matches!(
            self.connection,
            ConnectionStatus::Invited | ConnectionStatus::Connected
        )
    }
}

/// Relationships `org_id` is party to: as the sponsor, all of its own; as the CMO, those
/// that reached it (an invitation, a connection; not one withdrawn before it answered).
pub fn party_to(org_id: i64) -> sea_orm::Condition {
    sea_orm::Condition::any()
        .add(Column::SponsorOrgId.eq(org_id))
        .add(
            sea_orm::Condition::all()
                .add(Column::CmoOrgId.eq(org_id))
                .add(Column::Connection.ne(ConnectionStatus::Withdrawn)),
        )
}

/// CMO organization ids `sponsor_org_id` is connected to, as a subquery.
pub fn connected_cmos_of(sponsor_org_id: i64) -> sea_orm::sea_query::SelectStatement {
    sea_orm::sea_query::Query::select()
        .column(Column::CmoOrgId)
        .from(Entity)
        .and_where(Column::SponsorOrgId.eq(sponsor_org_id))
        .and_where(Column::Connection.eq(ConnectionStatus::Connected))
        .to_owned()
}

/// Sponsor organization ids `cmo_org_id` is connected to, as a subquery.
pub fn connected_sponsors_of(cmo_org_id: i64) -> sea_orm::sea_query::SelectStatement {
    sea_orm::sea_query::Query::select()
        .column(Column::SponsorOrgId)
        .from(Entity)
        .and_where(Column::CmoOrgId.eq(cmo_org_id))
        .and_where(Column::Connection.eq(ConnectionStatus::Connected))
        .to_owned()
}

/// CMO organization ids whose profile `sponsor_org_id` reads, with its own side of the
/// relationship: those it is connected to, and those it was (an ended connection keeps
/// the sponsor's qualification, agreements and notes its own).
pub fn known_cmos_of(sponsor_org_id: i64) -> sea_orm::sea_query::SelectStatement {
    sea_orm::sea_query::Query::select()
        .column(Column::CmoOrgId)
        .from(Entity)
        .and_where(Column::SponsorOrgId.eq(sponsor_org_id))
        .and_where(Column::Connection.is_in([ConnectionStatus::Connected, ConnectionStatus::Ended]))
        .to_owned()
}

/// Organization ids whose relationship with `org_id` has reached both sides (invited,
/// connected, or ended: they worked together): the CMOs a sponsor invited or works
/// with, the sponsors that invited or work with a CMO.
pub fn counterparts_of(
    org_id: i64,
) -> (
    sea_orm::sea_query::SelectStatement,
    sea_orm::sea_query::SelectStatement,
) {
    let known = [
        ConnectionStatus::Invited,
        ConnectionStatus::Connected,
        ConnectionStatus::Ended,
    ];
    (
        sea_orm::sea_query::Query::select()
            .column(Column::CmoOrgId)
            .from(Entity)
            .and_where(Column::SponsorOrgId.eq(org_id))
            .and_where(Column::Connection.is_in(known))
            .to_owned(),
        sea_orm::sea_query::Query::select()
            .column(Column::SponsorOrgId)
            .from(Entity)
            .and_where(Column::CmoOrgId.eq(org_id))
            .and_where(Column::Connection.is_in(known))
            .to_owned(),
    )
}

/// A new relationship of `sponsor_org_id` with `cmo_org_id` in state `connection`, its
/// invitation sent by `invited_by_user_id` at `now` (the CMO not yet qualified).
pub fn new_row(
    sponsor_org_id: i64,
    cmo_org_id: i64,
    connection: ConnectionStatus,
    invited_by_user_id: Option<i64>,
    invitation_message: Option<String>,
    now: DateTimeUtc,
) -> ActiveModel {
    use sea_orm::ActiveValue::{NotSet, Set};
    ActiveModel {
        id: NotSet,
        sponsor_org_id: Set(sponsor_org_id),
        cmo_org_id: Set(cmo_org_id),
        connection: Set(connection),
        qualification_status: Set(QualificationStatus::Prospect),
        qualification_reason: Set(None),
        qualification_signature_id: Set(None),
        qualification_changed_at: Set(None),
        sponsor_notes: Set(None),
        invited_by_user_id: Set(invited_by_user_id),
        invited_at: Set(Some(now)),
        invitation_message: Set(invitation_message),
        responded_by_user_id: Set(None),
        responded_at: Set(None),
        merged_from_org_id: Set(None),
        ended_by_user_id: Set(None),
        ended_at: Set(None),
        end_reason: Set(None),
        created_at: Set(now),
        updated_at: Set(now),
        version: Set(1),
    }
}

/// The relationship of `sponsor_org_id` with `cmo_org_id`, if any.
pub async fn between(
    conn: &impl ConnectionTrait,
    sponsor_org_id: i64,
    cmo_org_id: i64,
) -> Result<Option<Model>, DbErr> {
    Entity::find()
        .filter(Column::SponsorOrgId.eq(sponsor_org_id))
        .filter(Column::CmoOrgId.eq(cmo_org_id))
        .one(conn)
        .await
}

#[cfg(test)]
mod tests {
    use super::*;
    use ConnectionEvent as E;
    use ConnectionStatus as S;

    #[test]
    fn every_status_and_event_has_its_outcome() {
        use sea_orm::Iterable;
        let expected = |from: S, event: E| -> Option<S> {
            Some(match (from, event) {
                (S::Declined, E::Invite) | (S::Withdrawn, E::Invite) => S::Invited,
                (S::Ended, E::Invite) => S::Invited,
                (S::Invited, E::Accept) => S::Connected,
                (S::Invited, E::Decline) => S::Declined,
                (S::Invited, E::Withdraw) => S::Withdrawn,
                (S::Connected, E::End) => S::Ended,
                _ => return None,
            })
        };
        let mut pairs = 0;
        for from in S::iter() {
            for event in ALL_CONNECTION_EVENTS {
                pairs += 1;
                match expected(from, event) {
                    Some(to) => assert_eq!(transition(from, event), Ok(to), "{from:?} {event:?}"),
                    None => assert_eq!(
                        transition(from, event),
                        Err(ConnectionError::NotAllowed { from, event }),
                        "{from:?} {event:?}"
                    ),
                }
                assert_eq!(
                    allowed_events(from).contains(&event),
                    expected(from, event).is_some()
                );
            }
        }
        assert_eq!(pairs, 25);
        // A connection only ends; an ended one is invited again, not reopened.
        assert_eq!(allowed_events(S::Connected), vec![E::End]);
        assert_eq!(allowed_events(S::Ended), vec![E::Invite]);
    }

    #[test]
    fn the_cmo_answers_and_the_sponsor_invites_and_withdraws() {
        assert_eq!(party_of(E::Accept), Party::Cmo);
        assert_eq!(party_of(E::Decline), Party::Cmo);
        assert_eq!(party_of(E::Invite), Party::Sponsor);
        assert_eq!(party_of(E::Withdraw), Party::Sponsor);
        assert_eq!(party_of(E::End), Party::Either);
    }

    #[test]
    fn an_open_work_refusal_names_ten_and_counts_the_rest() {
        let named: Vec<String> = (1..=OPEN_WORK_NAMED)
            .map(|i| format!("action item #{i}"))
            .collect();
        let refusal = ConnectionError::OpenWork { named, total: 13 }.to_string();
        assert!(
            refusal.starts_with("work is still open between the two: action item #1; "),
            "{refusal}"
        );
        assert!(
            refusal.contains("action item #10 and 3 more; close, cancel"),
            "{refusal}"
        );
        let one = ConnectionError::OpenWork {
            named: vec!["deviation DEV-1".into()],
            total: 1,
        };
        assert!(one.to_string().contains("DEV-1; close"), "{one}");
    }
}
