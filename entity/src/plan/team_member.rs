//! A person on a program's team.

use sea_orm::entity::prelude::*;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// Where a member sits in the program's governance (and so in the escalation call tree).
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, EnumIter, DeriveActiveEnum, Serialize, Deserialize, ToSchema,
)]
#[sea_orm(rs_type = "String", db_type = "String(StringLen::N(32))")]
#[serde(rename_all = "snake_case")]
pub enum GovernanceTier {
    #[sea_orm(string_value = "core_team")]
    CoreTeam,
    #[sea_orm(string_value = "leadership")]
    Leadership,
    #[sea_orm(string_value = "steering_committee")]
    SteeringCommittee,
}

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "team_members")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    pub program_id: i64,
    pub user_id: i64,
    pub governance_tier: GovernanceTier,
    /// e.g. "MSAT lead", "QA person in plant".
    pub program_role: String,
    /// JSON array of lower-case tags, e.g. `["quality","microbiology"]`.
    pub expertise_tags: String,
    pub wants_digest: bool,
    pub wants_reminders: bool,
    /// JSON array of the notification kinds the member switched off
    /// ([`crate::notification::NotificationKind`]); empty: all on.
    pub muted_notifications: String,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
    pub version: i32,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}

/// Tags are lower-case words of letters, digits and `_`; duplicates are dropped.
pub fn normalize_tags(tags: &[String]) -> Result<Vec<String>, String> {
    let mut out: Vec<String> = Vec::new();
    for tag in tags {
        let t = tag.trim().to_lowercase();
        if t.is_empty() || t.len() > 40 || !t.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
        {
            return Err(format!(
                "invalid expertise tag {tag:?}: use letters, digits and _ (at most 40)"
            ));
        }
        if !out.contains(&t) {
            out.push(t);
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags_are_normalized_and_deduplicated() {
        let tags = vec![
            "Quality".to_string(),
            "quality ".into(),
            "supply_chain".into(),
        ];
        assert_eq!(
            normalize_tags(&tags).unwrap(),
            vec!["quality", "supply_chain"]
        );
        assert!(normalize_tags(&["micro biology".to_string()]).is_err());
        assert!(normalize_tags(&[String::new()]).is_err());
    }
}
