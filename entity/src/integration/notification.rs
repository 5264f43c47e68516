//! The notifications people get besides pages, reminders and digests (SPEC §5), kind by
//! kind, each one switchable per team member (escalation pages are not a kind here:
//! they cannot be switched off). The worker turns domain events into them after
//! [`event_cursor`]; the due-soon reminder rides on the reminder schedule.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::team_member;

/// A kind of notification a member may switch off.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, ToSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum NotificationKind {
    /// A deviation was triaged in the member's expertise (its category is one of their
    /// expertise tags).
    Triage,
    /// A minor deviation was closed (to the core team and its reporter).
    MinorClosure,
    /// An action item, CAPA action or change task was assigned to the member.
    Assignment,
    /// One of the member's action items is due soon (default 2 days before).
    DueSoon,
    /// Production of the program was held or released (to the team).
    Production,
    /// A gate was decided (to the team).
    GateDecision,
}

impl NotificationKind {
    pub const ALL: [NotificationKind; 6] = [
        NotificationKind::Triage,
        NotificationKind::MinorClosure,
        NotificationKind::Assignment,
        NotificationKind::DueSoon,
        NotificationKind::Production,
        NotificationKind::GateDecision,
    ];

    /// Its wire name (`due_soon`).
    pub fn wire(self) -> String {
        crate::enums::wire_name(&self)
    }

    pub fn from_wire(s: &str) -> Option<NotificationKind> {
        NotificationKind::ALL.into_iter().find(|k| k.wire() == s)
    }

    /// What it is, for the sentence "You receive … as a member of the team".
    pub fn describe(self) -> &'static str {
        match self {
            NotificationKind::Triage => "notices of deviations triaged in your expertise",
            NotificationKind::MinorClosure => "notices of closed minor deviations",
            NotificationKind::Assignment => "notices of work assigned to you",
            NotificationKind::DueSoon => "reminders of action items due soon",
            NotificationKind::Production => "notices of production held or released",
            NotificationKind::GateDecision => "notices of gate decisions",
        }
    }
}

/// The kinds a member switched off.
pub fn muted(member: &team_member::Model) -> Vec<NotificationKind> {
    serde_json::from_str::<Vec<String>>(&member.muted_notifications)
        .unwrap_or_default()
        .iter()
        .filter_map(|k| NotificationKind::from_wire(k))
        .collect()
}

/// Whether a member receives `kind`.
pub fn wants(member: &team_member::Model, kind: NotificationKind) -> bool {
    !muted(member).contains(&kind)
}

/// The stored form of a set of muted kinds (sorted, no duplicates).
pub fn store_muted(mut kinds: Vec<NotificationKind>) -> String {
    kinds.sort();
    kinds.dedup();
    serde_json::to_string(&kinds).unwrap_or_else(|_| "[]".to_string())
}

/// How far a consumer (the notification job) has read the domain events.
pub mod event_cursor {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "event_cursors")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub consumer: String,
        pub last_cursor: i64,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_round_trip_and_junk_is_ignored() {
        for k in NotificationKind::ALL {
            assert_eq!(NotificationKind::from_wire(&k.wire()), Some(k));
        }
        let stored = store_muted(vec![
            NotificationKind::Production,
            NotificationKind::DueSoon,
            NotificationKind::Production,
        ]);
        assert_eq!(stored, r#"["due_soon","production"]"#);
        let at = chrono::DateTime::from_timestamp(1_796_000_000, 0).unwrap_or_default();
        let member = team_member::Model {
            id: 1,
            program_id: 1,
            user_id: 1,
            governance_tier: team_member::GovernanceTier::CoreTeam,
            program_role: "QA".into(),
            expertise_tags: "[]".into(),
            wants_digest: true,
            wants_reminders: true,
            muted_notifications: r#"["production","no_such_kind"]"#.into(),
            created_at: at,
            updated_at: at,
            version: 1,
        };
        assert!(!wants(&member, NotificationKind::Production));
        assert!(wants(&member, NotificationKind::Triage));
    }
}
