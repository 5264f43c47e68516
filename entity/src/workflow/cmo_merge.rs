//! Answering a proposal to merge a duplicate CMO into the one that stays
//! ([`crate::cmo_merge`]): `accept` moves everything in the step's transaction, `decline`
//! and `withdraw` end the proposal. Audited in the trail of whoever took the step; an
//! accepted merge is also written into the absorbed organization's own trail, which stays
//! under its id.

use chrono::{DateTime, Utc};
use sea_orm::sea_query::Expr;
use sea_orm::{
    ColumnTrait, ConnectionTrait, DatabaseTransaction, DbErr, EntityTrait, QueryFilter, QuerySelect,
};

use super::{FollowUp, Workflow};
use crate::audit_trail::{self, Actor, Entry};
use crate::cmo_merge::{self, MergeError, MergeEvent, MergeStatus};
use crate::domain_event::{Audience, CmoMerged, Event};
use crate::enums::Role;
use crate::{organization, relationship};

/// One step on a merge proposal, by `by_user_id`.
#[derive(Debug, Clone)]
pub struct Step {
    pub event: MergeEvent,
    pub by_user_id: i64,
    /// The answer's note.
    pub note: Option<String>,
}

/// What `accept` needs to know under lock.
#[derive(Debug, Default)]
pub struct Guards {
    /// Sponsors working with both organizations that have not chosen which relationship
    /// holds.
    unchosen: Vec<String>,
    /// One of the two, merged elsewhere meanwhile.
    merged_already: Option<String>,
}

impl Workflow for Step {
    type Entity = cmo_merge::Entity;
    type Model = cmo_merge::Model;
    type Status = MergeStatus;
    type Event = MergeEvent;
    type Guards = Guards;
    type Refusal = MergeError;

    const RECORD: &'static str = "cmo_merge";

    fn id(m: &cmo_merge::Model) -> i64 {
        m.id
    }
    fn status(m: &cmo_merge::Model) -> MergeStatus {
        m.status
    }
    fn event(&self) -> MergeEvent {
        self.event
    }
    fn allowed_events(m: &cmo_merge::Model) -> Vec<MergeEvent> {
        cmo_merge::allowed_events(m.status)
    }
    fn probe(event: MergeEvent, _: &cmo_merge::Model, _: Role) -> Self {
        Step {
            event,
            by_user_id: 0,
            note: None,
        }
    }
    fn reason(&self) -> Option<String> {
        self.note.clone()
    }
    fn audit_action(&self) -> std::borrow::Cow<'static, str> {
        std::borrow::Cow::Owned(format!("merge_{}", crate::enums::wire_name(&self.event)))
    }

    async fn guards<C: ConnectionTrait>(
        &self,
        conn: &C,
        m: &cmo_merge::Model,
    ) -> Result<Guards, DbErr> {
        if self.event != MergeEvent::Accept {
            return Ok(Guards::default());
        }
        // Both organizations locked: a second merge of either waits for this one.
        let orgs = organization::Entity::find()
            .filter(organization::Column::Id.is_in([m.absorbed_org_id, m.survivor_org_id]))
            .lock_exclusive()
            .all(conn)
            .await?;
        let choices = crate::merge_choice::of_merge(conn, m.id).await?;
        Ok(Guards {
            unchosen: cmo_merge::shared_sponsors(conn, m.absorbed_org_id, m.survivor_org_id)
                .await?
                .into_iter()
                .filter(|(id, _)| !choices.contains_key(id))
                .map(|(_, name)| name)
                .collect(),
            merged_already: orgs
                .into_iter()
                .find(|o| o.merged_into_org_id.is_some())
                .map(|o| o.name),
        })
    }

    fn decide(&self, m: &cmo_merge::Model, g: &Guards) -> Result<MergeStatus, MergeError> {
        let next = cmo_merge::transition(m.status, self.event)?;
        if let Some(name) = &g.merged_already {
            return Err(MergeError::AlreadyMerged(name.clone()));
        }
        if !g.unchosen.is_empty() {
            return Err(MergeError::SharedSponsors(g.unchosen.clone()));
        }
        Ok(next)
    }

    fn apply(&self, m: &mut cmo_merge::Model, next: MergeStatus, _: &Guards, now: DateTime<Utc>) {
        m.status = next;
        if cmo_merge::side_of(self.event) == cmo_merge::Side::Survivor {
            m.responded_by_user_id = Some(self.by_user_id);
            m.responded_at = Some(now);
            m.response = self.note.clone();
        }
    }

    /// `accept`: the move itself, its summary on the proposal, the absorbed
    /// organization's own audit entry, and `cmo.merged` to each sponsor concerned.
    async fn follow_ups(
        &self,
        conn: &DatabaseTransaction,
        actor: &Actor,
        _before: &cmo_merge::Model,
        after: &cmo_merge::Model,
    ) -> Result<Vec<FollowUp>, DbErr> {
        if after.status != MergeStatus::Merged {
            return Ok(Vec::new());
        }
        let (absorbed, survivor) = (after.absorbed_org_id, after.survivor_org_id);
        let names = |id: i64| async move {
            Ok::<_, DbErr>(
                organization::Entity::find_by_id(id)
                    .one(conn)
                    .await?
                    .map(|o| o.name)
                    .unwrap_or_default(),
            )
        };
        let (absorbed_name, survivor_name) = (names(absorbed).await?, names(survivor).await?);
        let choices = crate::merge_choice::of_merge(conn, after.id).await?;
        let merge_names = cmo_merge::MergeNames {
            absorbed: absorbed_name.clone(),
            survivor: survivor_name.clone(),
        };
        let moved =
            cmo_merge::absorb(conn, absorbed, survivor, &choices, &merge_names, actor.at).await?;
        let summary = serde_json::to_string(&moved).map_err(|e| DbErr::Custom(e.to_string()))?;
        cmo_merge::Entity::update_many()
            .col_expr(cmo_merge::Column::Moved, Expr::value(summary))
            .filter(cmo_merge::Column::Id.eq(after.id))
            .exec(conn)
            .await?;
        audit_trail::append(
            conn,
            &Actor {
                org_id: absorbed,
                ..actor.clone()
            },
            Entry::new("organization", absorbed, "merged_into")
                .after(serde_json::json!({
                    "merge_id": after.id,
                    "merged_into_org_id": survivor,
                    "merged_into": survivor_name,
                    "moved": moved,
                }))
                .reason(Some(after.reason.clone())),
        )
        .await?;
        // A sponsor that worked with both and chose: the relationship the merge ended, in
        // its own trail.
        for (sponsor, choice) in &choices {
            let ended = relationship::Entity::find()
                .filter(relationship::Column::SponsorOrgId.eq(*sponsor))
                .filter(relationship::Column::CmoOrgId.eq(absorbed))
                .filter(relationship::Column::Connection.eq(relationship::ConnectionStatus::Ended))
                .one(conn)
                .await?;
            if let Some(r) = ended {
                audit_trail::append(
                    conn,
                    &Actor {
                        org_id: *sponsor,
                        ..actor.clone()
                    },
                    Entry::new("cmo_relationship", r.id, "connection_end")
                        .after(serde_json::json!({
                            "connection": r.connection,
                            "end_reason": r.end_reason,
                            "merge_id": after.id,
                            "keep": choice.keep,
                        }))
                        .reason(Some(choice.reason.clone())),
                )
                .await?;
            }
        }
        // Every sponsor whose relationship or programs moved (one that kept its
        // relationship with the survivor among them) hears of the merge.
        let mut sponsors: Vec<i64> = relationship::Entity::find()
            .filter(relationship::Column::CmoOrgId.eq(survivor))
            .filter(relationship::Column::MergedFromOrgId.eq(absorbed))
            .all(conn)
            .await?
            .into_iter()
            .map(|r| r.sponsor_org_id)
            .collect();
        for sponsor in choices.keys() {
            if !sponsors.contains(sponsor) {
                sponsors.push(*sponsor);
            }
        }
        for (n, sponsor) in sponsors.into_iter().enumerate() {
            let event = Event::CmoMerged(CmoMerged {
                merge_id: after.id,
                absorbed_org_id: absorbed,
                absorbed_name: absorbed_name.clone(),
                survivor_org_id: survivor,
                survivor_name: survivor_name.clone(),
            });
            // One copy per sponsor; the surviving CMO reads the first.
            let audience = Audience {
                program_id: None,
                sponsor_org_id: sponsor,
                cmo_org_id: (n == 0).then_some(survivor),
            };
            crate::domain_event::emit_to(conn, audience, event, actor.at).await?;
        }
        Ok(Vec::new())
    }
}

impl super::Refusal for MergeError {
    fn conflict_code(&self) -> &'static str {
        match self {
            Self::NotAllowed { .. } => "illegal_transition",
            Self::SharedSponsors(_) => "merge_conflict",
            Self::AlreadyMerged(_) => "already_merged",
        }
    }
}
