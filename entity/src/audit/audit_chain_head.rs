//! The tip of each organization's audit chain. Appending locks this row, which
//! serializes appends per organization across every api and worker instance.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "audit_chain_heads")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub org_id: i64,
    pub last_seq: i64,
    pub last_hash: String,
    /// HMAC of (organization, last_seq, last_hash) under the chain key: a chain rewritten
    /// without the key no longer matches its head.
    pub seal: Option<String>,
    pub seal_key_id: Option<String>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
