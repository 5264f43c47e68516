//! Password hashing (argon2id) and API token secrets.

use argon2::Argon2;
use argon2::password_hash::phc::PasswordHash;
use argon2::password_hash::{PasswordHasher, PasswordVerifier};

use crate::error::{ApiError, ApiResult};

/// At most two argon2 runs at once (each takes ~19 MiB and a core for a moment); more
/// queue, so a
/// burst of password checks cannot exhaust memory or starve the other requests.
static ARGON2_SLOTS: tokio::sync::Semaphore = tokio::sync::Semaphore::const_new(2);

async fn argon2_slot() -> ApiResult<tokio::sync::SemaphorePermit<'static>> {
    ARGON2_SLOTS.acquire().await.map_err(ApiError::internal)
}

/// Hashes off the async executor: argon2 is deliberately slow.
pub async fn hash_password(password: String) -> ApiResult<String> {
    let _slot = argon2_slot().await?;
    tokio::task::spawn_blocking(move || {
        Argon2::default()
            .hash_password(password.as_bytes())
            .map(|hash| hash.to_string())
            .map_err(ApiError::internal)
    })
    .await
    .map_err(ApiError::internal)?
}

/// `true` when `password` matches the stored PHC string.
pub async fn verify_password(password: String, stored: String) -> ApiResult<bool> {
    let _slot = argon2_slot().await?;
    tokio::task::spawn_blocking(move || {
        let parsed = PasswordHash::new(&stored).map_err(ApiError::internal)?;
        Ok(Argon2::default()
            .verify_password(password.as_bytes(), &parsed)
            .is_ok())
    })
    .await
    .map_err(ApiError::internal)?
}

/// A new token secret: `cmo_` and 256 random bits in hex.
pub fn new_token_secret() -> String {
    let mut bytes = [0_u8; 32];
    rand::fill(&mut bytes);
    format!("{}{}", entity::api_token::TOKEN_PREFIX, hex::encode(bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_password_verifies_against_its_own_hash_only() {
        let hash = hash_password("correct horse battery".into()).await.unwrap();
        assert!(hash.starts_with("$argon2id$"));
        assert!(
            verify_password("correct horse battery".into(), hash.clone())
                .await
                .unwrap()
        );
        assert!(
            !verify_password("wrong horse battery".into(), hash)
                .await
                .unwrap()
        );
    }

    #[test]
    fn token_secrets_are_prefixed_and_unique() {
        let a = new_token_secret();
        let b = new_token_secret();
        assert!(a.starts_with("cmo_"));
        assert_eq!(a.len(), 4 + 64);
        assert_ne!(a, b);
    }
}
