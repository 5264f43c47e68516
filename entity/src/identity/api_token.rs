//! Bearer API tokens. Only a SHA-256 digest of the secret is stored: tokens are 256-bit
//! random values, so a fast hash is enough (argon2 is for low-entropy passwords).

use chrono::{DateTime, TimeDelta, Utc};
use sea_orm::QuerySelect;
use sea_orm::entity::prelude::*;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use utoipa::ToSchema;

/// How a credential came to be, which decides where it works and how long it lives.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, EnumIter, DeriveActiveEnum, Serialize, Deserialize, ToSchema,
)]
#[sea_orm(rs_type = "String", db_type = "String(StringLen::N(16))")]
#[serde(rename_all = "snake_case")]
pub enum TokenKind {
    /// Created by its owner (or, for a service account, by an admin) through the API.
    #[sea_orm(string_value = "personal")]
    Personal,
    /// Returned by `POST /api/v1/sign-in` for the password the person just gave: short-lived.
    #[sea_orm(string_value = "sign_in")]
    SignIn,
    /// A browser session (the cookie of the sign-in page); never accepted as a bearer.
    #[sea_orm(string_value = "browser")]
    Browser,
}

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
    pub kind: TokenKind,
    /// The bearer token this one was created with, when that proved no password (a
    /// personal token): the child never outlives it and is revoked with it.
    pub parent_token_id: Option<i64>,
    /// Only reads (GET, HEAD); every write answers 403.
    pub read_only: bool,
    /// Why it was revoked, when not by a person's explicit revoke (`parent_revoked`,
    /// `user_deactivated`, `password_reset`, `minted_for_someone_else`, …).
    pub revoked_reason: Option<String>,
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

/// A token from `POST /api/v1/sign-in` lives this long.
pub const SIGN_IN_LIFETIME: TimeDelta = TimeDelta::hours(12);
/// A browser session ends after this long without use…
pub const BROWSER_IDLE: TimeDelta = TimeDelta::minutes(30);
/// …and this long after sign-in, whatever its use.
pub const BROWSER_ABSOLUTE: TimeDelta = TimeDelta::hours(12);

/// The expiry of a token created with `parent`: what was asked, capped at the parent's
/// own expiry when the parent is a personal token (it proved no password, so its child
/// may not outlive it). A token created in a password-proven sign-in is the person's own.
pub fn child_expiry(
    parent: &Model,
    requested: Option<DateTime<Utc>>,
) -> (Option<i64>, Option<DateTime<Utc>>) {
    match parent.kind {
        TokenKind::Personal => {
            let expiry = match (requested, parent.expires_at) {
                (Some(r), Some(p)) => Some(r.min(p)),
                (r, p) => r.or(p),
            };
            (Some(parent.id), expiry)
        }
        TokenKind::SignIn | TokenKind::Browser => (None, requested),
    }
}

/// `revoked_reason` of a token revoked because the token it was created with was.
pub const PARENT_REVOKED: &str = "parent_revoked";

/// Revokes the tokens `ids` (recording `reason`) and everything created with them (their
/// children, the children's children …, recording `parent_revoked`) that is not revoked
/// yet. Returns the
/// tokens this call revoked, so each revocation is audited once.
pub async fn revoke_with_descendants<C: sea_orm::ConnectionTrait>(
    conn: &C,
    ids: Vec<i64>,
    reason: &str,
    now: DateTime<Utc>,
) -> Result<Vec<Model>, DbErr> {
    let mut revoked = Vec::new();
    let mut generation = ids;
    let mut reason = reason.to_string();
    // Bounded: every pass revokes at least one row or stops, and a token's parent is
    // older than the token, so there are no cycles.
    while !generation.is_empty() {
        let live = Entity::find()
            .filter(Column::Id.is_in(generation.clone()))
            .filter(Column::RevokedAt.is_null())
            .all(conn)
            .await?;
        if !live.is_empty() {
            Entity::update_many()
                .col_expr(Column::RevokedAt, sea_orm::sea_query::Expr::value(now))
                .col_expr(
                    Column::RevokedReason,
                    sea_orm::sea_query::Expr::value(reason.clone()),
                )
                .filter(Column::Id.is_in(live.iter().map(|t| t.id)))
                .filter(Column::RevokedAt.is_null())
                .exec(conn)
                .await?;
        }
        let children: Vec<i64> = Entity::find()
            .select_only()
            .column(Column::Id)
            .filter(Column::ParentTokenId.is_in(generation))
            .into_tuple()
            .all(conn)
            .await?;
        revoked.extend(live.into_iter().map(|t| Model {
            revoked_at: Some(now),
            revoked_reason: Some(reason.clone()),
            ..t
        }));
        generation = children;
        reason = PARENT_REVOKED.to_string();
    }
    Ok(revoked)
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
    // Revoked is revoked, whenever it was recorded (a migration stamps a fixed instant).
    if token.revoked_at.is_some() {
        return Err(TokenRejection::Revoked);
    }
    if token.expires_at.is_some_and(|expires| expires <= now) {
        return Err(TokenRejection::Expired);
    }
    if token.kind == TokenKind::Browser
        && token
            .last_used_at
            .unwrap_or(token.created_at)
            .checked_add_signed(BROWSER_IDLE)
            .is_some_and(|idle_end| idle_end <= now)
    {
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
            kind: TokenKind::Personal,
            parent_token_id: None,
            read_only: false,
            revoked_reason: None,
        }
    }

    #[test]
    fn a_child_of_a_personal_token_never_outlives_it() {
        let at = Utc.with_ymd_and_hms(2026, 6, 1, 0, 0, 0).unwrap();
        let parent = token(Some(at), None);
        assert_eq!(child_expiry(&parent, None), (Some(1), Some(at)));
        assert_eq!(
            child_expiry(&parent, Some(at + TimeDelta::days(1))),
            (Some(1), Some(at))
        );
        let sooner = at - TimeDelta::days(1);
        assert_eq!(child_expiry(&parent, Some(sooner)), (Some(1), Some(sooner)));
        let forever = token(None, None);
        assert_eq!(child_expiry(&forever, None), (Some(1), None));
    }

    #[test]
    fn a_token_created_after_a_password_sign_in_is_the_persons_own() {
        let at = Utc.with_ymd_and_hms(2026, 6, 1, 0, 0, 0).unwrap();
        let session = Model {
            kind: TokenKind::SignIn,
            ..token(Some(at), None)
        };
        assert_eq!(child_expiry(&session, None), (None, None));
    }

    #[test]
    fn a_browser_session_ends_when_idle() {
        let created = Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap();
        let session = Model {
            kind: TokenKind::Browser,
            ..token(Some(created + BROWSER_ABSOLUTE), None)
        };
        assert_eq!(
            check_usable(&session, created + TimeDelta::minutes(29)),
            Ok(())
        );
        assert_eq!(
            check_usable(&session, created + BROWSER_IDLE),
            Err(TokenRejection::Expired)
        );
        let used = Model {
            last_used_at: Some(created + TimeDelta::minutes(20)),
            ..session
        };
        assert_eq!(
            check_usable(&used, created + TimeDelta::minutes(40)),
            Ok(())
        );
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
