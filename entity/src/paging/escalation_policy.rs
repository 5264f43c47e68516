//! Escalation policies (SPEC §6): per program, ordered tiers, each with its recipients
//! (specific members, whole governance tiers, and/or the call tree: members whose
//! expertise tags match the deviation's category) and a wait before the next tier; the
//! last tier may repeat; an acknowledgement that is not followed by resolution within
//! the ack timeout re-opens the escalation.
//!
//! Policies are stored as a JSON document; a running escalation keeps its own copy
//! (snapshot), so editing the policy never changes one already under way. The rules here
//! are pure: which tier the n-th page goes to, who a tier resolves to.

use sea_orm::entity::prelude::*;
use sea_orm::{ConnectionTrait, QueryOrder};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::team_member::GovernanceTier;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "escalation_policies")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    #[sea_orm(unique)]
    pub program_id: i64,
    /// JSON array of [`Tier`].
    pub tiers: String,
    pub repeat_last: i32,
    pub ack_timeout_minutes: i32,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
    pub version: i32,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}

/// One step of the call tree.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"name": "Core team", "member_ids": [], "governance_tiers": ["core_team"],
    "match_expertise": true, "wait_minutes": 15}))]
pub struct Tier {
    /// Shown in emails ("tier 1: Core team").
    #[schema(min_length = 1, max_length = 100)]
    pub name: String,
    /// Specific team members (team-member ids of this program).
    #[serde(default)]
    pub member_ids: Vec<i64>,
    /// Everyone on these governance tiers.
    #[serde(default)]
    pub governance_tiers: Vec<GovernanceTier>,
    /// Members whose expertise tags include the deviation's category (the call tree).
    #[serde(default)]
    pub match_expertise: bool,
    /// Minutes to wait for an acknowledgement before the next tier is paged (1 to 10080).
    #[schema(minimum = 1, maximum = 10080)]
    pub wait_minutes: i32,
}

/// The policy as edited and as snapshotted into each escalation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[schema(example = json!({"tiers": [
    {"name": "Core team", "member_ids": [], "governance_tiers": ["core_team"], "match_expertise": true, "wait_minutes": 15},
    {"name": "Leadership", "member_ids": [], "governance_tiers": ["leadership"], "match_expertise": false, "wait_minutes": 30}],
    "repeat_last": 1, "ack_timeout_minutes": 60}))]
pub struct PolicyDoc {
    pub tiers: Vec<Tier>,
    /// How many more times the last tier is paged after its first page (0 to 10).
    pub repeat_last: i32,
    /// An acknowledged escalation not resolved within this many minutes re-opens and
    /// re-pages the tier that acknowledged it (1 to 10080; default 60).
    pub ack_timeout_minutes: i32,
}

/// SPEC §6 default: core team → leadership → steering committee, 15 then 30 minutes.
pub fn default_policy() -> PolicyDoc {
    PolicyDoc {
        tiers: vec![
            Tier {
                name: "Core team".into(),
                member_ids: vec![],
                governance_tiers: vec![GovernanceTier::CoreTeam],
                match_expertise: true,
                wait_minutes: 15,
            },
            Tier {
                name: "Leadership".into(),
                member_ids: vec![],
                governance_tiers: vec![GovernanceTier::Leadership],
                match_expertise: false,
                wait_minutes: 30,
            },
            Tier {
                name: "Steering committee".into(),
                member_ids: vec![],
                governance_tiers: vec![GovernanceTier::SteeringCommittee],
                match_expertise: false,
                wait_minutes: 30,
            },
        ],
        repeat_last: 1,
        ack_timeout_minutes: 60,
    }
}

pub const MAX_TIERS: usize = 10;
pub const MAX_WAIT_MINUTES: i32 = 7 * 24 * 60;

/// Field errors of a policy (`tiers[1].wait_minutes`, …), empty when valid. Member ids
/// are checked against the team by the caller.
pub fn validate(doc: &PolicyDoc) -> Vec<(String, &'static str, String)> {
    let mut errors = Vec::new();
    if doc.tiers.is_empty() || doc.tiers.len() > MAX_TIERS {
        errors.push((
            "tiers".to_string(),
            "out_of_range",
            format!("1 to {MAX_TIERS} tiers"),
        ));
    }
    for (i, t) in doc.tiers.iter().enumerate() {
        let name = t.name.trim();
        if name.is_empty() || name.chars().count() > 100 || name.chars().any(char::is_control) {
            errors.push((
                format!("tiers[{i}].name"),
                "invalid",
                "1 to 100 printable characters".to_string(),
            ));
        }
        if !(1..=MAX_WAIT_MINUTES).contains(&t.wait_minutes) {
            errors.push((
                format!("tiers[{i}].wait_minutes"),
                "out_of_range",
                format!("must be 1 to {MAX_WAIT_MINUTES} minutes"),
            ));
        }
        if t.member_ids.len() > 100 {
            errors.push((
                format!("tiers[{i}].member_ids"),
                "out_of_range",
                "at most 100 members".to_string(),
            ));
        }
    }
    if !(0..=10).contains(&doc.repeat_last) {
        errors.push((
            "repeat_last".to_string(),
            "out_of_range",
            "must be 0 to 10".to_string(),
        ));
    }
    if !(1..=MAX_WAIT_MINUTES).contains(&doc.ack_timeout_minutes) {
        errors.push((
            "ack_timeout_minutes".to_string(),
            "out_of_range",
            format!("must be 1 to {MAX_WAIT_MINUTES} minutes"),
        ));
    }
    errors
}

impl Model {
    pub fn doc(&self) -> PolicyDoc {
        PolicyDoc {
            tiers: serde_json::from_str(&self.tiers).unwrap_or_else(|_| default_policy().tiers),
            repeat_last: self.repeat_last,
            ack_timeout_minutes: self.ack_timeout_minutes,
        }
    }
}

/// The program's policy, or the default when it has none stored.
pub async fn for_program<C: ConnectionTrait>(
    conn: &C,
    program_id: i64,
) -> Result<PolicyDoc, DbErr> {
    Ok(Entity::find()
        .filter(Column::ProgramId.eq(program_id))
        .one(conn)
        .await?
        .map(|m| m.doc())
        .unwrap_or_else(default_policy))
}

/// The tier the page at plan position `step` goes to: tiers in order, then the last
/// tier `repeat_last` more times; `None` once the plan is exhausted.
pub fn tier_for_step(doc: &PolicyDoc, step: i32) -> Option<usize> {
    let n = doc.tiers.len() as i32;
    if n == 0 || step < 0 {
        return None;
    }
    if step < n {
        return Some(step as usize);
    }
    (step < n + doc.repeat_last).then_some((n - 1) as usize)
}

/// The first plan position that pages `tier` (where a re-opened escalation resumes).
pub fn first_step_of(tier: usize) -> i32 {
    tier as i32
}

/// A person a tier resolves to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[schema(example = json!({"member_id": 4, "user_id": 9, "name": "Quinn QA", "email": "qa@acme.test", "program_role": "QA lead", "phone": "+41 61 555 01 42"}))]
pub struct Recipient {
    pub member_id: i64,
    pub user_id: i64,
    pub name: String,
    pub email: String,
    pub program_role: String,
    /// From the user's profile, when given.
    #[serde(default)]
    pub phone: Option<String>,
}

/// A team member as the call tree sees it.
#[derive(Debug, Clone)]
pub struct Candidate {
    pub member_id: i64,
    pub user_id: i64,
    pub name: String,
    /// Empty when the user has no usable email (or is deactivated).
    pub email: String,
    pub program_role: String,
    pub phone: Option<String>,
    pub governance_tier: GovernanceTier,
    pub expertise_tags: Vec<String>,
}

/// Who `tier` pages for an escalation of `category` (a deviation category, if any):
/// named members, members on the named governance tiers, and, with `match_expertise`,
/// members tagged with the category. Deduplicated, in team order; members without an
/// email are left out (the policy check warns about them).
pub fn resolve(tier: &Tier, category: Option<&str>, team: &[Candidate]) -> Vec<Recipient> {
    team.iter()
        .filter(|c| {
            tier.member_ids.contains(&c.member_id)
                || tier.governance_tiers.contains(&c.governance_tier)
                || (tier.match_expertise
                    && category.is_some_and(|cat| c.expertise_tags.iter().any(|t| t == cat)))
        })
        .filter(|c| !c.email.is_empty())
        .map(|c| Recipient {
            member_id: c.member_id,
            user_id: c.user_id,
            name: c.name.clone(),
            email: c.email.clone(),
            program_role: c.program_role.clone(),
            phone: c.phone.clone(),
        })
        .collect()
}

/// The program's team as the call tree sees it (active users with their email).
pub async fn team<C: ConnectionTrait>(conn: &C, program_id: i64) -> Result<Vec<Candidate>, DbErr> {
    let members = crate::team_member::Entity::find()
        .filter(crate::team_member::Column::ProgramId.eq(program_id))
        .order_by_asc(crate::team_member::Column::Id)
        .all(conn)
        .await?;
    let users: std::collections::BTreeMap<i64, crate::user::Model> = crate::user::Entity::find()
        .filter(crate::user::Column::Id.is_in(members.iter().map(|m| m.user_id)))
        .all(conn)
        .await?
        .into_iter()
        .map(|u| (u.id, u))
        .collect();
    Ok(members
        .into_iter()
        .filter_map(|m| {
            let u = users.get(&m.user_id)?;
            Some(Candidate {
                member_id: m.id,
                user_id: u.id,
                name: u.display_name.clone(),
                email: if u.active {
                    u.email.clone()
                } else {
                    String::new()
                },
                program_role: m.program_role.clone(),
                phone: u.phone.clone(),
                governance_tier: m.governance_tier,
                expertise_tags: serde_json::from_str(&m.expertise_tags).unwrap_or_default(),
            })
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn member(id: i64, tier: GovernanceTier, tags: &[&str], email: &str) -> Candidate {
        Candidate {
            member_id: id,
            user_id: id * 10,
            name: format!("m{id}"),
            email: email.to_string(),
            program_role: "role".into(),
            phone: None,
            governance_tier: tier,
            expertise_tags: tags.iter().map(|t| String::from(*t)).collect(),
        }
    }

    #[test]
    fn pages_walk_the_tiers_then_repeat_the_last() {
        let doc = default_policy();
        let plan: Vec<Option<usize>> = (0..6).map(|s| tier_for_step(&doc, s)).collect();
        assert_eq!(plan, [Some(0), Some(1), Some(2), Some(2), None, None]);
        let no_repeat = PolicyDoc {
            repeat_last: 0,
            ..default_policy()
        };
        assert_eq!(tier_for_step(&no_repeat, 3), None);
    }

    #[test]
    fn the_call_tree_adds_members_whose_expertise_matches() {
        let team = [
            member(1, GovernanceTier::CoreTeam, &[], "a@x.test"),
            member(2, GovernanceTier::Leadership, &["equipment"], "b@x.test"),
            member(3, GovernanceTier::Leadership, &["microbiology"], "c@x.test"),
            member(4, GovernanceTier::CoreTeam, &[], ""),
        ];
        let core = &default_policy().tiers[0];
        let ids = |r: Vec<Recipient>| r.into_iter().map(|r| r.member_id).collect::<Vec<_>>();
        assert_eq!(ids(resolve(core, Some("equipment"), &team)), [1, 2]);
        assert_eq!(
            ids(resolve(core, None, &team)),
            [1],
            "no category, no call tree; no email, no page"
        );
        let named = Tier {
            name: "QA".into(),
            member_ids: vec![3],
            governance_tiers: vec![],
            match_expertise: false,
            wait_minutes: 5,
        };
        assert_eq!(ids(resolve(&named, Some("equipment"), &team)), [3]);
    }

    #[test]
    fn invalid_policies_name_their_fields() {
        let mut doc = default_policy();
        doc.tiers[1].wait_minutes = 0;
        doc.repeat_last = 11;
        doc.tiers[0].name = " ".into();
        let fields: Vec<String> = validate(&doc).into_iter().map(|e| e.0).collect();
        assert_eq!(
            fields,
            ["tiers[0].name", "tiers[1].wait_minutes", "repeat_last"]
        );
        assert!(validate(&default_policy()).is_empty());
        let empty = PolicyDoc {
            tiers: vec![],
            ..default_policy()
        };
        assert_eq!(validate(&empty)[0].0, "tiers");
    }
}
