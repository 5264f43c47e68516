//! The secret that keys the audit chain, and the public key that signs its checkpoints.
//!
//! The key never lives in the database: whoever can write the database can then still
//! edit a row and recompute plain hashes, but not the keyed ones. It is generated on first
//! start beside a SQLite file (`<file>.audit-key`) and is required configuration on
//! PostgreSQL, where every api and worker replica needs the same one.
//!
//! A key ring holds every key the installation has used, oldest first; the last one keys
//! new rows, the earlier ones verify the rows written before a rotation. Each keyed row
//! records its key's id, so a verifier knows which key to use and can say plainly when it
//! does not hold it.
//!
//! The checkpoint signing key (Ed25519) is derived from each chain key, so there is one
//! secret to keep; its public half is published and lets anyone check a checkpoint
//! without the secret.

use std::sync::Arc;

use hmac::{Hmac, KeyInit, Mac};
use sha2::{Digest, Sha256};

/// The hash format of rows written before the chain was keyed: plain SHA-256.
pub const FORMAT_PLAIN: i16 = 1;
/// The hash format of keyed rows: HMAC-SHA256 with the chain key named by `key_id`.
pub const FORMAT_KEYED: i16 = 2;

/// One chain key: 32 random bytes and the id derived from them.
#[derive(Clone)]
pub struct ChainKey {
    id: String,
    secret: [u8; 32],
}

impl std::fmt::Debug for ChainKey {
    // The secret is never printed, not even in a debug log.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChainKey").field("id", &self.id).finish()
    }
}

impl ChainKey {
    pub fn from_secret(secret: [u8; 32]) -> Self {
        let mut hasher = Sha256::new();
        hasher.update(b"cmo-orchestrator audit key id\n");
        hasher.update(secret);
        let id = hex::encode(&hasher.finalize()[..8]);
        Self { id, secret }
    }

    /// A fresh key from the operating system's random source.
    pub fn generate() -> Self {
        Self::from_secret(rand::random())
    }

    /// Parses 64 hex digits (either case, surrounding white space ignored).
    pub fn from_hex(text: &str) -> Result<Self, String> {
        let bytes = hex::decode(text.trim())
            .map_err(|_| "an audit chain key is 64 hex digits (32 bytes)".to_string())?;
        let secret: [u8; 32] = bytes
            .try_into()
            .map_err(|_| "an audit chain key is 64 hex digits (32 bytes)".to_string())?;
        Ok(Self::from_secret(secret))
    }

    pub fn to_hex(&self) -> String {
        hex::encode(self.secret)
    }

    /// The key's public name: the first 8 bytes of a hash of it, in hex.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// HMAC-SHA256 of `parts` (in order) under this key, in hex.
    pub fn mac(&self, parts: &[&[u8]]) -> String {
        let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(&self.secret) else {
            unreachable!("HMAC takes a key of any length")
        };
        for part in parts {
            mac.update(part);
        }
        hex::encode(mac.finalize().into_bytes())
    }

    /// The Ed25519 key pair that signs checkpoints, derived from this key (an HMAC of a
    /// fixed label is the seed), so rotating the chain key rotates it too.
    fn checkpoint_key_pair(&self) -> ring::signature::Ed25519KeyPair {
        let seed = hex::decode(self.mac(&[b"cmo-orchestrator checkpoint signing key"]))
            .unwrap_or_default();
        match ring::signature::Ed25519KeyPair::from_seed_unchecked(&seed) {
            Ok(pair) => pair,
            Err(_) => unreachable!("any 32-byte seed makes an Ed25519 key"),
        }
    }

    /// The public key that checks this key's checkpoint signatures (hex, 32 bytes).
    pub fn checkpoint_public_key(&self) -> String {
        use ring::signature::KeyPair;
        hex::encode(self.checkpoint_key_pair().public_key().as_ref())
    }

    /// An Ed25519 signature of `message` (hex, 64 bytes).
    pub fn sign_checkpoint(&self, message: &[u8]) -> String {
        hex::encode(self.checkpoint_key_pair().sign(message).as_ref())
    }
}

/// Whether `signature_hex` is an Ed25519 signature of `message` by `public_key_hex`.
/// Needs no secret: this is what a recipient of a checkpoint runs.
pub fn checkpoint_signature_valid(
    public_key_hex: &str,
    message: &[u8],
    signature_hex: &str,
) -> bool {
    let (Ok(public_key), Ok(signature)) = (hex::decode(public_key_hex), hex::decode(signature_hex))
    else {
        return false;
    };
    ring::signature::UnparsedPublicKey::new(&ring::signature::ED25519, public_key)
        .verify(message, &signature)
        .is_ok()
}

/// Every chain key of the installation, oldest first; the last keys new rows.
#[derive(Debug, Clone)]
pub struct KeyRing {
    keys: Vec<ChainKey>,
}

/// What every audited change carries: the installation's key ring, shared.
pub type ChainKeys = Arc<KeyRing>;

impl KeyRing {
    pub fn new(keys: Vec<ChainKey>) -> Result<Self, String> {
        if keys.is_empty() {
            return Err("the audit key ring holds no key".to_string());
        }
        Ok(Self { keys })
    }

    /// A ring of one fresh key.
    pub fn generate() -> Self {
        Self {
            keys: vec![ChainKey::generate()],
        }
    }

    /// The key file's text: one key per line in hex, oldest first; blank lines and lines
    /// starting with `#` are comments.
    pub fn parse(text: &str) -> Result<Self, String> {
        let keys = text
            .lines()
            .map(str::trim)
            .filter(|line| !line.is_empty() && !line.starts_with('#'))
            .enumerate()
            .map(|(n, line)| ChainKey::from_hex(line).map_err(|e| format!("key {}: {e}", n + 1)))
            .collect::<Result<Vec<_>, _>>()?;
        Self::new(keys)
    }

    /// A list of keys in hex separated by commas, oldest first (`CMO_AUDIT_KEY`).
    pub fn parse_list(list: &str) -> Result<Self, String> {
        Self::parse(&list.replace(',', "\n"))
    }

    /// The key file's text for this ring.
    pub fn to_file_text(&self) -> String {
        let mut text = String::from(
            "# cmo-orchestrator audit chain keys, oldest first. The last key signs new rows;\n\
             # the earlier ones verify rows written before a rotation: never remove one.\n\
             # Keep this file secret, the same on every replica, and backed up apart from\n\
             # the database.\n",
        );
        for key in &self.keys {
            text.push_str(&key.to_hex());
            text.push('\n');
        }
        text
    }

    /// This ring with one new key, which keys every row from now on.
    pub fn rotated(&self) -> Self {
        let mut keys = self.keys.clone();
        keys.push(ChainKey::generate());
        Self { keys }
    }

    pub fn current(&self) -> &ChainKey {
        match self.keys.last() {
            Some(key) => key,
            None => unreachable!("a key ring is never empty"),
        }
    }

    pub fn get(&self, id: &str) -> Option<&ChainKey> {
        self.keys.iter().find(|k| k.id == id)
    }

    pub fn keys(&self) -> &[ChainKey] {
        &self.keys
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_file_round_trips_and_its_last_key_is_current() {
        let ring = KeyRing::generate().rotated();
        let again = KeyRing::parse(&ring.to_file_text()).unwrap();
        let ids = |r: &KeyRing| {
            r.keys()
                .iter()
                .map(|k| k.id().to_string())
                .collect::<Vec<_>>()
        };
        assert_eq!(ids(&ring), ids(&again));
        assert_eq!(again.current().id(), ring.keys()[1].id());
        assert!(again.get(ring.keys()[0].id()).is_some());
        assert_eq!(again.current().id().len(), 16);
    }

    #[test]
    fn bad_key_text_is_refused_with_the_line() {
        assert!(KeyRing::parse("# only a comment\n").is_err());
        let err = KeyRing::parse(&format!("{}\nabc\n", "00".repeat(32))).unwrap_err();
        assert!(err.starts_with("key 2:"), "{err}");
        assert!(KeyRing::parse_list(&format!("{},{}", "01".repeat(32), "02".repeat(32))).is_ok());
    }

    #[test]
    fn the_secret_is_never_printed() {
        let key = ChainKey::from_hex(&"ab".repeat(32)).unwrap();
        assert!(!format!("{key:?}").contains("abab"));
        assert!(!format!("{:?}", KeyRing::new(vec![key]).unwrap()).contains("abab"));
    }

    #[test]
    fn a_checkpoint_signature_checks_with_the_public_key_only() {
        let key = ChainKey::generate();
        let message = b"org 1 seq 42 hash abc";
        let signature = key.sign_checkpoint(message);
        let public = key.checkpoint_public_key();
        assert!(checkpoint_signature_valid(&public, message, &signature));
        assert!(!checkpoint_signature_valid(
            &public,
            b"org 1 seq 43 hash abc",
            &signature
        ));
        let other = ChainKey::generate().checkpoint_public_key();
        assert!(!checkpoint_signature_valid(&other, message, &signature));
        assert!(!checkpoint_signature_valid("zz", message, &signature));
    }

    #[test]
    fn different_keys_give_different_macs_and_ids() {
        let (a, b) = (ChainKey::generate(), ChainKey::generate());
        assert_ne!(a.id(), b.id());
        assert_ne!(a.mac(&[b"x"]), b.mac(&[b"x"]));
        assert_eq!(a.mac(&[b"x", b"y"]), a.mac(&[b"xy"]));
    }
}
