//! A sponsor's choice in the merge of two CMOs it works with both (SPEC §10, the partner
//! network): it holds a relationship (connection, qualification and its signed history,
//! notes) with each, and once they are one organization only one can hold. Its admins or
//! quality users choose which, with a reason, while the merge is proposed; the merge
//! waits for every such sponsor's choice. Accepting keeps the chosen relationship with the
//! CMO that stays and ends the other, which stays, ended, with the duplicate's id as
//! history. No other party ever reads a sponsor's choice.

use std::collections::BTreeMap;

use sea_orm::entity::prelude::*;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// Which of the sponsor's two relationships holds after the merge.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, EnumIter, DeriveActiveEnum, Serialize, Deserialize, ToSchema,
)]
#[sea_orm(rs_type = "String", db_type = "String(StringLen::N(16))")]
#[serde(rename_all = "snake_case")]
pub enum Keep {
    /// The relationship with the CMO that stays.
    #[sea_orm(string_value = "survivor")]
    Survivor,
    /// The relationship with the duplicate (it moves to the CMO that stays).
    #[sea_orm(string_value = "absorbed")]
    Absorbed,
}

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "cmo_merge_choices")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    pub merge_id: i64,
    pub sponsor_org_id: i64,
    pub keep: Keep,
    pub reason: String,
    pub decided_by_user_id: i64,
    pub decided_at: DateTimeUtc,
    pub version: i32,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}

/// The choices made in merge `merge_id`, by sponsor.
pub async fn of_merge(
    conn: &impl ConnectionTrait,
    merge_id: i64,
) -> Result<BTreeMap<i64, Model>, DbErr> {
    Ok(Entity::find()
        .filter(Column::MergeId.eq(merge_id))
        .all(conn)
        .await?
        .into_iter()
        .map(|c| (c.sponsor_org_id, c))
        .collect())
}

/// The reason kept on the relationship a merge ends, for the sponsor that chose `keep`.
pub fn end_reason(keep: Keep, survivor_name: &str, absorbed_name: &str, why: &str) -> String {
    let (held, ended) = match keep {
        Keep::Survivor => (survivor_name, absorbed_name),
        Keep::Absorbed => (absorbed_name, survivor_name),
    };
    format!(
        "{absorbed_name} merged into {survivor_name}: the relationship with {held} holds and \
         the one with {ended} ended. Reason: {why}"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_end_reason_says_which_relationship_holds() {
        let r = end_reason(
            Keep::Absorbed,
            "Lonza Visp",
            "Lonza Visp (old)",
            "approved there",
        );
        assert_eq!(
            r,
            "Lonza Visp (old) merged into Lonza Visp: the relationship with Lonza Visp (old) \
             holds and the one with Lonza Visp ended. Reason: approved there"
        );
        assert!(end_reason(Keep::Survivor, "A", "B", "x").contains("with A holds"));
    }
}
