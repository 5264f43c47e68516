//! The one key that signs links sent by email. Created on first use by whichever process
//! needs it first (insert-if-absent), so the api and every worker share it without
//! configuration.

use chrono::{DateTime, Utc};
use sea_orm::entity::prelude::*;
use sea_orm::sea_query::OnConflict;
use sea_orm::{ActiveValue::Set, ConnectionTrait};

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "link_secrets")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: i32,
    pub secret_hex: String,
    pub created_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}

/// The link-signing key, created at random if there is none yet.
pub async fn get_or_create<C: ConnectionTrait>(
    conn: &C,
    now: DateTime<Utc>,
) -> Result<Vec<u8>, DbErr> {
    if let Some(row) = Entity::find_by_id(1).one(conn).await? {
        return decode(&row.secret_hex);
    }
    let fresh: [u8; 32] = rand::random();
    // Two processes may race here: the loser's insert does nothing and both read the
    // winner's key below.
    Entity::insert(ActiveModel {
        id: Set(1),
        secret_hex: Set(hex::encode(fresh)),
        created_at: Set(now),
    })
    .on_conflict(OnConflict::column(Column::Id).do_nothing().to_owned())
    .exec_without_returning(conn)
    .await?;
    let row = Entity::find_by_id(1)
        .one(conn)
        .await?
        .ok_or_else(|| DbErr::RecordNotFound("link secret".to_string()))?;
    decode(&row.secret_hex)
}

fn decode(secret_hex: &str) -> Result<Vec<u8>, DbErr> {
    hex::decode(secret_hex).map_err(|e| DbErr::Custom(format!("corrupt link secret: {e}")))
}
