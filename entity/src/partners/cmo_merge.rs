//! Merging a CMO registered twice (SPEC §7, the partner network). Before a CMO could work
//! with several sponsors, each sponsor registered its own copy ("Lonza Visp", "Lonza Visp
//! (Acme)"). The copy's admin (or, while nobody of it has joined, the sponsor that
//! registered it) proposes merging it into the CMO that stays; that CMO's admin accepts or
//! declines; the proposer may withdraw an unanswered proposal.
//!
//! Accepting moves, in the same transaction: each sponsor's relationship (connection,
//! qualification and its signed history, notes), the programs, quality agreements, sites
//! and inspections, the event feed's rows, webhooks, and the people with their tokens. A
//! person with an account in both (same email) keeps the surviving one: the duplicate
//! account is deactivated and its open action items and program memberships are handed to
//! the surviving account. The absorbed organization stays as a row (its audit trail is
//! chained under its id, readable by the survivor) with `merged_into_org_id` set.
//! Evaluations are left as decided and signed: they name the organization as it was.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use sea_orm::entity::prelude::*;
use sea_orm::sea_query::{Expr, ExprTrait};
use sea_orm::{ActiveValue::Set, ConnectionTrait, DbErr, QueryFilter};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::{action_item, api_token, cmo, domain_event, invitation, merge_choice, organization};
use crate::{password_reset, program, relationship, team_member, user, webhook};

#[derive(
    Debug, Clone, Copy, PartialEq, Eq, EnumIter, DeriveActiveEnum, Serialize, Deserialize, ToSchema,
)]
#[sea_orm(rs_type = "String", db_type = "String(StringLen::N(16))")]
#[serde(rename_all = "snake_case")]
pub enum MergeStatus {
    #[sea_orm(string_value = "proposed")]
    Proposed,
    /// Accepted: everything moved to the surviving CMO.
    #[sea_orm(string_value = "merged")]
    Merged,
    #[sea_orm(string_value = "declined")]
    Declined,
    #[sea_orm(string_value = "withdrawn")]
    Withdrawn,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum MergeEvent {
    /// The surviving CMO's admin accepts: the merge happens.
    Accept,
    /// The surviving CMO's admin declines.
    Decline,
    /// The proposer's side takes back a proposal not yet answered.
    Withdraw,
}

pub const ALL_MERGE_EVENTS: [MergeEvent; 3] = [
    MergeEvent::Accept,
    MergeEvent::Decline,
    MergeEvent::Withdraw,
];

/// Which side takes an event: the organization that stays, or the one proposing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    Survivor,
    Proposer,
}

pub fn side_of(event: MergeEvent) -> Side {
    match event {
        MergeEvent::Accept | MergeEvent::Decline => Side::Survivor,
        MergeEvent::Withdraw => Side::Proposer,
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MergeError {
    #[error("{event:?} is not possible from {from:?}")]
    NotAllowed {
        from: MergeStatus,
        event: MergeEvent,
    },
    /// A sponsor invited by or connected to both has not chosen which of its two
    /// relationships (and qualifications) holds: the merge waits for it.
    #[error(
        "{} work(s) with both organizations and must first choose which of its two \
         qualifications holds (its admins were emailed the page; the API: PUT \
         /cmo-merges/{{id}}/sponsor-choice)",
        .0.join(", ")
    )]
    SharedSponsors(Vec<String>),
    /// One of the two was merged into another organization meanwhile.
    #[error("{0} was merged into another organization already")]
    AlreadyMerged(String),
}

pub fn transition(from: MergeStatus, event: MergeEvent) -> Result<MergeStatus, MergeError> {
    use MergeEvent as E;
    use MergeStatus as S;
    Ok(match (from, event) {
        (S::Proposed, E::Accept) => S::Merged,
        (S::Proposed, E::Decline) => S::Declined,
        (S::Proposed, E::Withdraw) => S::Withdrawn,
        _ => return Err(MergeError::NotAllowed { from, event }),
    })
}

pub fn allowed_events(from: MergeStatus) -> Vec<MergeEvent> {
    ALL_MERGE_EVENTS
        .into_iter()
        .filter(|e| transition(from, *e).is_ok())
        .collect()
}

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "cmo_merges")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    /// The duplicate, merged away.
    pub absorbed_org_id: i64,
    /// The CMO that stays.
    pub survivor_org_id: i64,
    pub status: MergeStatus,
    pub reason: String,
    pub proposed_by_user_id: i64,
    /// The duplicate itself, or the sponsor that registered it (before anyone of it joined).
    pub proposed_by_org_id: i64,
    pub proposed_at: DateTimeUtc,
    pub responded_by_user_id: Option<i64>,
    pub responded_at: Option<DateTimeUtc>,
    /// The answer's note.
    pub response: Option<String>,
    /// JSON [`Moved`], once merged.
    pub moved: Option<String>,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
    pub version: i32,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}

impl Model {
    pub fn moved(&self) -> Option<Moved> {
        self.moved
            .as_deref()
            .and_then(|m| serde_json::from_str(m).ok())
    }
}

/// Merges `org_id` is party to: proposed by it or about it, or to be merged into it.
pub fn party_to(org_id: i64) -> sea_orm::Condition {
    sea_orm::Condition::any()
        .add(Column::AbsorbedOrgId.eq(org_id))
        .add(Column::SurvivorOrgId.eq(org_id))
        .add(Column::ProposedByOrgId.eq(org_id))
}

/// What a merge moved to the surviving CMO.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[schema(example = json!({"people": 3, "duplicate_accounts_deactivated": 1, "relationships": 1,
    "programs": 2, "quality_agreements": 1, "sites": 1, "inspections": 2, "webhooks": 0,
    "feed_events": 37, "invitations_revoked": 0}))]
pub struct Moved {
    /// Accounts moved with their tokens.
    pub people: u64,
    /// Accounts whose email the survivor already had: deactivated, their open action
    /// items and program memberships handed to the surviving account.
    pub duplicate_accounts_deactivated: u64,
    /// Sponsor relationships (each with its qualification history and notes).
    pub relationships: u64,
    pub programs: u64,
    pub quality_agreements: u64,
    pub sites: u64,
    pub inspections: u64,
    pub webhooks: u64,
    /// Rows of the event feed now read by the survivor.
    pub feed_events: u64,
    /// Invitations to the duplicate not yet accepted (invite the people again).
    pub invitations_revoked: u64,
}

/// The sponsors invited by or connected to both organizations, by id with their names: a
/// merge would give each two live relationships (two qualifications) with one CMO, so
/// each chooses which holds ([`crate::merge_choice`]). A declined or withdrawn
/// invitation, or an ended connection, on either side gives way (see [`absorb`]).
pub async fn shared_sponsors(
    conn: &impl ConnectionTrait,
    absorbed: i64,
    survivor: i64,
) -> Result<BTreeMap<i64, String>, DbErr> {
    let (absorbed_rows, survivor_rows) = (
        relationships_of(conn, absorbed).await?,
        relationships_of(conn, survivor).await?,
    );
    let shared: Vec<i64> = absorbed_rows
        .iter()
        .filter(|(s, r)| r.is_live() && survivor_rows.get(s).is_some_and(|o| o.is_live()))
        .map(|(s, _)| *s)
        .collect();
    if shared.is_empty() {
        return Ok(BTreeMap::new());
    }
    Ok(organization::Entity::find()
        .filter(organization::Column::Id.is_in(shared))
        .all(conn)
        .await?
        .into_iter()
        .map(|o| (o.id, o.name))
        .collect())
}

/// The two organizations of a merge as their relationships' end reasons name them.
#[derive(Debug, Clone)]
pub struct MergeNames {
    pub absorbed: String,
    pub survivor: String,
}

/// A CMO's relationships, by sponsor.
async fn relationships_of(
    conn: &impl ConnectionTrait,
    cmo: i64,
) -> Result<BTreeMap<i64, relationship::Model>, DbErr> {
    Ok(relationship::Entity::find()
        .filter(relationship::Column::CmoOrgId.eq(cmo))
        .all(conn)
        .await?
        .into_iter()
        .map(|r| (r.sponsor_org_id, r))
        .collect())
}

/// Moves the absorbed organization's relationships to the survivor. Where a sponsor has
/// one with each, the live one (or, both live, the one the sponsor chose) ends up with
/// the survivor and the other stays with the absorbed organization, as history (ended,
/// when it was live).
async fn move_relationships(
    conn: &impl ConnectionTrait,
    absorbed: i64,
    survivor: i64,
    choices: &BTreeMap<i64, merge_choice::Model>,
    names: &MergeNames,
    now: DateTime<Utc>,
) -> Result<u64, DbErr> {
    let survivor_rows = relationships_of(conn, survivor).await?;
    let mut moved = 0;
    for (sponsor, row) in relationships_of(conn, absorbed).await? {
        let set_cmo = |id: i64, cmo: i64, merged_from: Option<i64>| {
            relationship::Entity::update_many()
                .col_expr(relationship::Column::CmoOrgId, Expr::value(cmo))
                .col_expr(
                    relationship::Column::MergedFromOrgId,
                    Expr::value(merged_from),
                )
                .col_expr(relationship::Column::UpdatedAt, Expr::value(now))
                .col_expr(
                    relationship::Column::Version,
                    Expr::col(relationship::Column::Version).add(1),
                )
                .filter(relationship::Column::Id.eq(id))
                .exec(conn)
        };
        let Some(theirs) = survivor_rows.get(&sponsor) else {
            set_cmo(row.id, survivor, Some(absorbed)).await?;
            moved += 1;
            continue;
        };
        // Both live: the sponsor's choice (the accepting step's guard waits for it).
        let choice = match (row.is_live() && theirs.is_live(), choices.get(&sponsor)) {
            (false, _) => None,
            (true, Some(c)) => Some(c),
            (true, None) => {
                return Err(DbErr::Custom(format!(
                    "sponsor {sponsor} has not chosen which relationship holds"
                )));
            }
        };
        // Otherwise the live one holds: the absorbed one declined, withdrawn or ended
        // stays behind.
        let absorbed_one_holds =
            choice.map_or(row.is_live(), |c| c.keep == merge_choice::Keep::Absorbed);
        if absorbed_one_holds {
            // The two change places, through an id no organization has (the pair is
            // unique at every statement).
            set_cmo(row.id, -absorbed, Some(absorbed)).await?;
            set_cmo(theirs.id, absorbed, None).await?;
            set_cmo(row.id, survivor, Some(absorbed)).await?;
            moved += 1;
        }
        if let Some(c) = choice {
            let ended = if absorbed_one_holds {
                theirs.id
            } else {
                row.id
            };
            relationship::Entity::update_many()
                .col_expr(
                    relationship::Column::Connection,
                    Expr::value(relationship::ConnectionStatus::Ended),
                )
                .col_expr(
                    relationship::Column::EndedByUserId,
                    Expr::value(c.decided_by_user_id),
                )
                .col_expr(relationship::Column::EndedAt, Expr::value(now))
                .col_expr(
                    relationship::Column::EndReason,
                    Expr::value(merge_choice::end_reason(
                        c.keep,
                        &names.survivor,
                        &names.absorbed,
                        &c.reason,
                    )),
                )
                .filter(relationship::Column::Id.eq(ended))
                .exec(conn)
                .await?;
        }
    }
    Ok(moved)
}

/// Moves everything of `absorbed` to `survivor` (see the module's comment) and marks the
/// absorbed organization merged. Runs inside the accepting step's transaction.
pub async fn absorb(
    conn: &impl ConnectionTrait,
    absorbed: i64,
    survivor: i64,
    choices: &BTreeMap<i64, merge_choice::Model>,
    names: &MergeNames,
    now: DateTime<Utc>,
) -> Result<Moved, DbErr> {
    let mut moved = Moved {
        relationships: move_relationships(conn, absorbed, survivor, choices, names, now).await?,
        programs: program::Entity::update_many()
            .col_expr(program::Column::CmoOrgId, Expr::value(survivor))
            .filter(program::Column::CmoOrgId.eq(absorbed))
            .exec(conn)
            .await?
            .rows_affected,
        quality_agreements: cmo::quality_agreement::Entity::update_many()
            .col_expr(
                cmo::quality_agreement::Column::CmoOrgId,
                Expr::value(survivor),
            )
            .filter(cmo::quality_agreement::Column::CmoOrgId.eq(absorbed))
            .exec(conn)
            .await?
            .rows_affected,
        sites: cmo::site::Entity::update_many()
            .col_expr(cmo::site::Column::CmoOrgId, Expr::value(survivor))
            .filter(cmo::site::Column::CmoOrgId.eq(absorbed))
            .exec(conn)
            .await?
            .rows_affected,
        inspections: cmo::inspection::Entity::update_many()
            .col_expr(cmo::inspection::Column::CmoOrgId, Expr::value(survivor))
            .filter(cmo::inspection::Column::CmoOrgId.eq(absorbed))
            .exec(conn)
            .await?
            .rows_affected,
        webhooks: webhook::Entity::update_many()
            .col_expr(webhook::Column::OrgId, Expr::value(survivor))
            .filter(webhook::Column::OrgId.eq(absorbed))
            .exec(conn)
            .await?
            .rows_affected,
        feed_events: domain_event::Entity::update_many()
            .col_expr(domain_event::Column::CmoOrgId, Expr::value(survivor))
            .filter(domain_event::Column::CmoOrgId.eq(absorbed))
            .exec(conn)
            .await?
            .rows_affected,
        invitations_revoked: invitation::Entity::update_many()
            .col_expr(invitation::Column::RevokedAt, Expr::value(now))
            .filter(invitation::Column::OrgId.eq(absorbed))
            .filter(invitation::Column::AcceptedAt.is_null())
            .filter(invitation::Column::RevokedAt.is_null())
            .exec(conn)
            .await?
            .rows_affected,
        ..Moved::default()
    };
    move_people(conn, absorbed, survivor, now, &mut moved).await?;
    organization::Entity::update_many()
        .col_expr(organization::Column::MergedIntoOrgId, Expr::value(survivor))
        .col_expr(organization::Column::UpdatedAt, Expr::value(now))
        .col_expr(
            organization::Column::Version,
            Expr::col(organization::Column::Version).add(1),
        )
        .filter(organization::Column::Id.eq(absorbed))
        .exec(conn)
        .await?;
    Ok(moved)
}

/// The absorbed organization's accounts: moved with their tokens and pending password
/// resets, or, when the survivor has an account with the same email, deactivated and
/// their work handed to that account.
async fn move_people(
    conn: &impl ConnectionTrait,
    absorbed: i64,
    survivor: i64,
    now: DateTime<Utc>,
    moved: &mut Moved,
) -> Result<(), DbErr> {
    let survivors_by_email: BTreeMap<String, i64> = user::Entity::find()
        .filter(user::Column::OrgId.eq(survivor))
        .all(conn)
        .await?
        .into_iter()
        .map(|u| (u.email.to_lowercase(), u.id))
        .collect();
    let people = user::Entity::find()
        .filter(user::Column::OrgId.eq(absorbed))
        .all(conn)
        .await?;
    for person in people {
        match survivors_by_email.get(&person.email.to_lowercase()) {
            None => {
                user::Entity::update_many()
                    .col_expr(user::Column::OrgId, Expr::value(survivor))
                    .filter(user::Column::Id.eq(person.id))
                    .exec(conn)
                    .await?;
                api_token::Entity::update_many()
                    .col_expr(api_token::Column::OrgId, Expr::value(survivor))
                    .filter(api_token::Column::UserId.eq(person.id))
                    .exec(conn)
                    .await?;
                password_reset::Entity::update_many()
                    .col_expr(password_reset::Column::OrgId, Expr::value(survivor))
                    .filter(password_reset::Column::UserId.eq(person.id))
                    .exec(conn)
                    .await?;
                moved.people += 1;
            }
            Some(&kept) => {
                hand_over(conn, person.id, kept).await?;
                user::Entity::update_many()
                    .col_expr(user::Column::Active, Expr::value(false))
                    .col_expr(user::Column::UpdatedAt, Expr::value(now))
                    .col_expr(
                        user::Column::Version,
                        Expr::col(user::Column::Version).add(1),
                    )
                    .filter(user::Column::Id.eq(person.id))
                    .exec(conn)
                    .await?;
                api_token::Entity::update_many()
                    .col_expr(api_token::Column::RevokedAt, Expr::value(now))
                    .col_expr(
                        api_token::Column::RevokedReason,
                        Expr::value("organization_merged"),
                    )
                    .filter(api_token::Column::UserId.eq(person.id))
                    .filter(api_token::Column::RevokedAt.is_null())
                    .exec(conn)
                    .await?;
                moved.duplicate_accounts_deactivated += 1;
            }
        }
    }
    Ok(())
}

/// A duplicate account's open action items and program memberships go to the account
/// the person keeps (memberships it already has stay as they are).
async fn hand_over(conn: &impl ConnectionTrait, from: i64, to: i64) -> Result<(), DbErr> {
    action_item::Entity::update_many()
        .col_expr(action_item::Column::OwnerUserId, Expr::value(to))
        .filter(action_item::Column::OwnerUserId.eq(from))
        .filter(action_item::Column::Status.is_in([
            action_item::ActionStatus::Open,
            action_item::ActionStatus::InProgress,
        ]))
        .exec(conn)
        .await?;
    let already: Vec<i64> = team_member::Entity::find()
        .filter(team_member::Column::UserId.eq(to))
        .all(conn)
        .await?
        .into_iter()
        .map(|m| m.program_id)
        .collect();
    team_member::Entity::update_many()
        .col_expr(team_member::Column::UserId, Expr::value(to))
        .filter(team_member::Column::UserId.eq(from))
        .filter(team_member::Column::ProgramId.is_not_in(already))
        .exec(conn)
        .await?;
    Ok(())
}

/// A new proposal's row.
pub fn proposal(
    absorbed_org_id: i64,
    survivor_org_id: i64,
    reason: String,
    by: (i64, i64),
    now: DateTime<Utc>,
) -> ActiveModel {
    ActiveModel {
        id: sea_orm::ActiveValue::NotSet,
        absorbed_org_id: Set(absorbed_org_id),
        survivor_org_id: Set(survivor_org_id),
        status: Set(MergeStatus::Proposed),
        reason: Set(reason),
        proposed_by_user_id: Set(by.0),
        proposed_by_org_id: Set(by.1),
        proposed_at: Set(now),
        responded_by_user_id: Set(None),
        responded_at: Set(None),
        response: Set(None),
        moved: Set(None),
        created_at: Set(now),
        updated_at: Set(now),
        version: Set(1),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_proposal_is_answered_or_withdrawn() {
        use MergeEvent as E;
        use MergeStatus as S;
        for from in [S::Proposed, S::Merged, S::Declined, S::Withdrawn] {
            for event in ALL_MERGE_EVENTS {
                let expected = match (from, event) {
                    (S::Proposed, E::Accept) => Some(S::Merged),
                    (S::Proposed, E::Decline) => Some(S::Declined),
                    (S::Proposed, E::Withdraw) => Some(S::Withdrawn),
                    _ => None,
                };
                assert_eq!(transition(from, event).ok(), expected, "{from:?} {event:?}");
            }
        }
        assert_eq!(
            allowed_events(S::Proposed),
            [E::Accept, E::Decline, E::Withdraw]
        );
        assert!(allowed_events(S::Merged).is_empty(), "a merge is final");
    }

    #[test]
    fn the_survivor_answers_and_the_proposer_withdraws() {
        assert_eq!(side_of(MergeEvent::Accept), Side::Survivor);
        assert_eq!(side_of(MergeEvent::Decline), Side::Survivor);
        assert_eq!(side_of(MergeEvent::Withdraw), Side::Proposer);
    }

    #[test]
    fn a_refusal_names_the_sponsors_working_with_both() {
        let e = MergeError::SharedSponsors(vec!["Acme Pharma".into(), "Beta Bio".into()]);
        assert!(
            e.to_string()
                .starts_with("Acme Pharma, Beta Bio work(s) with both")
        );
    }
}
