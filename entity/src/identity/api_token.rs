//! Bearer API tokens. Only a SHA-256 digest of the secret is stored: tokens are 256-bit
//! random values, so a fast hash is enough (argon2 is for low-entropy passwords).

use chrono::{DateTime, Utc};
use sea_orm::entity::prelude::*;
use sha2::{Digest, Sha256};

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "api_tokens")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    pub org_id: i64,
    pub user_id: i64,
    /// Who issued it: the owner, an admin, or `None` for the bootstrap command.
    pub issued_by_user_id: Option<i64>,
    pub name: String,
    /// The first characters of the secret, so a person can tell tokens apart.
    pub token_prefix: String,
    #[sea_orm(unique)]
    pub token_hash: String,
    pub created_at: DateTimeUtc,
    pub expires_at: Option<DateTimeUtc>,
    pub revoked_at: Option<DateTimeUtc>,
    pub last_used_at: Option<DateTimeUtc>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {
    #[sea_orm(
        belongs_to = "super::user::Entity",
        from = "Column::UserId",
        to = "super::user::Column::Id"
    )]
    User,
}

impl Related<super::user::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::User.def()
    }
}

impl ActiveModelBehavior for ActiveModel {}

/// Every secret starts with this, so leaked tokens are easy to scan for.
pub const TOKEN_PREFIX: &str = "cmo_";
/// Characters of the secret kept in clear for display.
pub const DISPLAY_PREFIX_LEN: usize = 12;

pub fn hash_secret(secret: &str) -> String {
    hex::encode(Sha256::digest(secret.as_bytes()))
}

pub fn display_prefix(secret: &str) -> String {
    secret.chars().take(DISPLAY_PREFIX_LEN).collect()
}

/// Why a presented token is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TokenRejection {
    #[error("the token has been revoked")]
    Revoked,
    #[error("the token has expired")]
    Expired,
}

/// Is this token usable at `now`? (A token that expires exactly now is already expired.)
pub fn check_usable(token: &Model, now: DateTime<Utc>) -> Result<(), TokenRejection> {
    if token.revoked_at.is_some_and(|revoked| revoked <= now) {
        return Err(TokenRejection::Revoked);
    }
    if token.expires_at.is_some_and(|expires| expires <= now) {
        return Err(TokenRejection::Expired);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{TimeDelta, TimeZone};

    fn token(expires_at: Option<DateTime<Utc>>, revoked_at: Option<DateTime<Utc>>) -> Model {
        let created = Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap();
        Model {
            id: 1,
            org_id: 1,
            user_id: 1,
            issued_by_user_id: None,
            name: "ci".into(),
            token_prefix: "cmo_abcdefgh".into(),
            token_hash: hash_secret("cmo_abcdefgh"),
            created_at: created,
            expires_at,
            revoked_at,
            last_used_at: None,
        }
    }

    #[test]
    fn hashing_is_stable_hex_sha256() {
        assert_eq!(
            hash_secret("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn a_token_without_expiry_or_revocation_is_usable() {
        let now = Utc.with_ymd_and_hms(2030, 1, 1, 0, 0, 0).unwrap();
        assert_eq!(check_usable(&token(None, None), now), Ok(()));
    }

    #[test]
    fn a_token_is_expired_from_its_expiry_instant_on() {
        let expiry = Utc.with_ymd_and_hms(2026, 6, 1, 0, 0, 0).unwrap();
        let t = token(Some(expiry), None);
        assert_eq!(check_usable(&t, expiry - TimeDelta::seconds(1)), Ok(()));
        assert_eq!(check_usable(&t, expiry), Err(TokenRejection::Expired));
    }

    #[test]
    fn revocation_wins_over_expiry() {
        let at = Utc.with_ymd_and_hms(2026, 6, 1, 0, 0, 0).unwrap();
        let t = token(Some(at), Some(at));
        assert_eq!(check_usable(&t, at), Err(TokenRejection::Revoked));
    }

    #[test]
    fn display_prefix_keeps_the_first_characters() {
        assert_eq!(display_prefix("cmo_0123456789abcdef"), "cmo_01234567");
    }
}
