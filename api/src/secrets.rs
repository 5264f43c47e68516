//! Password hashing (argon2id) and API token secrets.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use argon2::password_hash::phc::PasswordHash;
use argon2::password_hash::{PasswordHasher, PasswordVerifier};
use argon2::{Algorithm, Argon2, Params, Version};

use crate::error::{ApiError, ApiResult};

/// At most two argon2 runs at once in the process (each takes ~19 MiB and a core for a
/// moment); more queue, so a burst of password checks cannot exhaust memory or starve
/// the other requests.
static ARGON2_SLOTS: tokio::sync::Semaphore = tokio::sync::Semaphore::const_new(2);

/// Password hashing, bounded per organization: one argon2 run at a time per organization
/// and two in the process. A flood of guesses in one organization then holds at most one
/// of the two process slots, and another tenant's signature still gets the other.
#[derive(Clone)]
pub struct Passwords {
    params: Params,
    per_org: Arc<Mutex<HashMap<i64, Arc<tokio::sync::Semaphore>>>>,
}

/// The organization key for attempts that match no account (a decoy check keeps their
/// timing like a real one).
pub const NO_ORGANIZATION: i64 = 0;

impl Default for Passwords {
    /// argon2id with the crate's (OWASP) defaults: 19 MiB, 2 passes.
    fn default() -> Self {
        Self::with_params(Params::default())
    }
}

impl Passwords {
    /// Cheap parameters for the test suite only (8 KiB, 1 pass): stored hashes carry their
    /// parameters, so verification follows whatever a hash was made with.
    pub fn cheap_for_tests() -> Self {
        Self::with_params(Params::new(8, 1, 1, None).unwrap_or_default())
    }

    fn with_params(params: Params) -> Self {
        Self {
            params,
            per_org: Arc::default(),
        }
    }

    fn org_lane(&self, org_id: i64) -> Arc<tokio::sync::Semaphore> {
        let mut lanes = self.per_org.lock().unwrap_or_else(|p| p.into_inner());
        // Lanes nobody waits on are dropped, so the map stays as small as the load.
        if lanes.len() > 1024 {
            lanes.retain(|_, lane| Arc::strong_count(lane) > 1);
        }
        lanes
            .entry(org_id)
            .or_insert_with(|| Arc::new(tokio::sync::Semaphore::new(1)))
            .clone()
    }

    async fn run<T: Send + 'static>(
        &self,
        org_id: i64,
        work: impl FnOnce(Argon2<'static>) -> ApiResult<T> + Send + 'static,
    ) -> ApiResult<T> {
        let lane = self.org_lane(org_id);
        let _org = lane.acquire().await.map_err(ApiError::internal)?;
        let _process = ARGON2_SLOTS.acquire().await.map_err(ApiError::internal)?;
        let argon = Argon2::new(Algorithm::Argon2id, Version::V0x13, self.params.clone());
        tokio::task::spawn_blocking(move || work(argon))
            .await
            .map_err(ApiError::internal)?
    }

    /// Hashes off the async executor: argon2 is deliberately slow.
    pub async fn hash(&self, org_id: i64, password: String) -> ApiResult<String> {
        self.run(org_id, move |argon| {
            argon
                .hash_password(password.as_bytes())
                .map(|hash| hash.to_string())
                .map_err(ApiError::internal)
        })
        .await
    }

    /// `true` when `password` matches the stored PHC string (`None`: a decoy check of
    /// the same cost, answering `false`).
    pub async fn verify(
        &self,
        org_id: i64,
        password: String,
        stored: Option<String>,
    ) -> ApiResult<bool> {
        self.run(org_id, move |argon| match stored {
            Some(stored) => {
                let parsed = PasswordHash::new(&stored).map_err(ApiError::internal)?;
                Ok(argon.verify_password(password.as_bytes(), &parsed).is_ok())
            }
            None => {
                let _ = argon.hash_password(password.as_bytes());
                Ok(false)
            }
        })
        .await
    }
}

/// A secret for a one-time link (invitation, password reset): 256 random bits in hex.
pub fn new_link_secret() -> String {
    let mut bytes = [0_u8; 32];
    rand::fill(&mut bytes);
    hex::encode(bytes)
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
        for passwords in [Passwords::default(), Passwords::cheap_for_tests()] {
            let hash = passwords
                .hash(1, "correct horse battery".into())
                .await
                .unwrap();
            assert!(hash.starts_with("$argon2id$"));
            let check = async |p: &str, stored: Option<String>| {
                passwords.verify(1, p.into(), stored).await.unwrap()
            };
            assert!(check("correct horse battery", Some(hash.clone())).await);
            assert!(!check("wrong horse battery", Some(hash)).await);
            assert!(!check("correct horse battery", None).await);
        }
    }

    #[tokio::test]
    async fn one_organizations_flood_leaves_a_slot_for_another() {
        let passwords = Passwords::cheap_for_tests();
        let flood = passwords.org_lane(1);
        let _held = flood.acquire().await.unwrap();
        // Organization 1's lane is taken (its next attempt waits); organization 2 runs.
        let other = passwords.hash(2, "another tenant".into());
        tokio::time::timeout(std::time::Duration::from_secs(5), other)
            .await
            .expect("organization 2 is not held up by organization 1")
            .unwrap();
        assert!(flood.try_acquire().is_err());
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
