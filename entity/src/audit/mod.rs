//! The audit chain's pure rules: canonical form, hashing and verification.
//!
//! A keyed row (format 2): `hash = HMAC-SHA256(chain key, prev_hash || "\n" ||
//! canonical_json(event))`, the event naming its format and key id. A row written before
//! the chain was keyed (format 1): `hash = SHA-256(prev_hash || "\n" ||
//! canonical_json(event))`. The canonical JSON has its object keys sorted and no
//! insignificant white space, so the same event hashes the same whichever database stored
//! it and in whatever key order. The chain head carries a seal (an HMAC of its position
//! and hash), so a chain rewritten by someone without the key, even as plain rows
//! throughout, no longer matches its head.
//!
//! The evidence lives here: the audit trail (`audit_trail`, its rows in `audit_event`,
//! the chain head in `audit_chain_head`) and e-signatures (`signature`).

pub mod audit_chain_head;
pub mod audit_event;
pub mod audit_trail;
pub mod chain_key;
pub mod checkpoint;
pub mod key_store;
pub mod signature;

use chrono::{DateTime, SecondsFormat, Utc};
use serde::Serialize;
use serde_json::Value;
use sha2::{Digest, Sha256};

pub use chain_key::{ChainKey, ChainKeys, FORMAT_KEYED, FORMAT_PLAIN, KeyRing};

/// A record as the audit trail and a signature keep it: its view, without the hints
/// about what can be done with it next (`allowed_events`, `blocked_events`), which depend
/// on who asks and when.
pub fn record_snapshot<T: Serialize>(view: &T) -> Result<Value, serde_json::Error> {
    let mut value = serde_json::to_value(view)?;
    if let Some(fields) = value.as_object_mut() {
        fields.remove("allowed_events");
        fields.remove("blocked_events");
    }
    Ok(value)
}

/// `prev_hash` of the first event of every chain.
pub const GENESIS_HASH: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// The hashed content of one audit event (everything but its own hash and row id).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CanonicalEvent<'a> {
    pub org_id: i64,
    pub seq: i64,
    pub actor_user_id: Option<i64>,
    pub entity_type: &'a str,
    pub entity_id: &'a str,
    pub action: &'a str,
    /// Canonical JSON text, hashed as the string it is stored as.
    pub before: Option<&'a str>,
    pub after: Option<&'a str>,
    pub reason: Option<&'a str>,
    pub request_id: Option<&'a str>,
    #[serde(serialize_with = "rfc3339_micros")]
    pub occurred_at: DateTime<Utc>,
    /// Only keyed rows name their format and key (plain rows hash as they always did).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hash_format: Option<i16>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key_id: Option<&'a str>,
}

fn rfc3339_micros<S: serde::Serializer>(t: &DateTime<Utc>, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&t.to_rfc3339_opts(SecondsFormat::Micros, true))
}

impl<'a> From<&'a crate::audit_event::Model> for CanonicalEvent<'a> {
    fn from(e: &'a crate::audit_event::Model) -> Self {
        CanonicalEvent {
            org_id: e.org_id,
            seq: e.seq,
            actor_user_id: e.actor_user_id,
            entity_type: &e.entity_type,
            entity_id: &e.entity_id,
            action: &e.action,
            before: e.before.as_deref(),
            after: e.after.as_deref(),
            reason: e.reason.as_deref(),
            request_id: e.request_id.as_deref(),
            occurred_at: e.occurred_at,
            hash_format: (e.hash_format != FORMAT_PLAIN).then_some(e.hash_format),
            key_id: e.key_id.as_deref(),
        }
    }
}

/// Serializes `value` with object keys sorted at every level.
pub fn canonical_json(value: &Value) -> String {
    let mut out = String::new();
    write_canonical(value, &mut out);
    out
}

fn write_canonical(value: &Value, out: &mut String) {
    match value {
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            out.push('{');
            for (i, key) in keys.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&Value::String(key.clone()).to_string());
                out.push(':');
                if let Some(v) = map.get(key) {
                    write_canonical(v, out);
                }
            }
            out.push('}');
        }
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_canonical(item, out);
            }
            out.push(']');
        }
        scalar => out.push_str(&scalar.to_string()),
    }
}

/// SHA-256 (hex) of any serializable record in canonical form; what a signature binds to.
pub fn content_hash<T: Serialize>(record: &T) -> String {
    let value = serde_json::to_value(record).unwrap_or(Value::Null);
    hex::encode(Sha256::digest(canonical_json(&value).as_bytes()))
}

/// The plain (format 1) chain hash of `event` following `prev_hash`.
pub fn chain_hash(prev_hash: &str, event: &CanonicalEvent<'_>) -> String {
    let value = serde_json::to_value(event).unwrap_or(Value::Null);
    let mut hasher = Sha256::new();
    hasher.update(prev_hash.as_bytes());
    hasher.update(b"\n");
    hasher.update(canonical_json(&value).as_bytes());
    hex::encode(hasher.finalize())
}

/// The keyed (format 2) chain hash of `event` following `prev_hash`; `event` names
/// `key`'s id.
pub fn keyed_chain_hash(key: &ChainKey, prev_hash: &str, event: &CanonicalEvent<'_>) -> String {
    let value = serde_json::to_value(event).unwrap_or(Value::Null);
    key.mac(&[
        prev_hash.as_bytes(),
        b"\n",
        canonical_json(&value).as_bytes(),
    ])
}

/// The seal of a chain head: where the chain ends, under the key.
pub fn head_seal(key: &ChainKey, org_id: i64, last_seq: i64, last_hash: &str) -> String {
    key.mac(&[format!("audit chain head\n{org_id}\n{last_seq}\n{last_hash}").as_bytes()])
}

/// What is wrong at the first broken link of a chain.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum BrokenLinkKind {
    /// The stored hash is not the hash of the stored content: the row was edited.
    HashMismatch,
    /// `prev_hash` is not the previous event's hash: a row was replaced or reordered.
    PrevHashMismatch,
    /// A sequence number is missing: a row was deleted.
    SequenceGap,
    /// The chain ends before the recorded head: the newest rows were deleted.
    TruncatedTail,
    /// Events exist past the recorded head: rows were added behind the system's back.
    BeyondHead,
    /// Events exist but the chain head is gone.
    MissingHead,
    /// A row without a key follows a keyed row: written around the system.
    UnkeyedAfterKeyed,
    /// A row names a hash format this version does not know.
    UnknownHashFormat,
    /// The chain head carries no seal, or one that does not match where the chain ends:
    /// the chain was rewritten by someone without the key.
    HeadSealMismatch,
}

impl BrokenLinkKind {
    pub fn as_str(&self) -> &'static str {
        match self {
            BrokenLinkKind::HashMismatch => "hash_mismatch",
            BrokenLinkKind::PrevHashMismatch => "prev_hash_mismatch",
            BrokenLinkKind::SequenceGap => "sequence_gap",
            BrokenLinkKind::TruncatedTail => "truncated_tail",
            BrokenLinkKind::BeyondHead => "beyond_head",
            BrokenLinkKind::MissingHead => "missing_head",
            BrokenLinkKind::UnkeyedAfterKeyed => "unkeyed_after_keyed",
            BrokenLinkKind::UnknownHashFormat => "unknown_hash_format",
            BrokenLinkKind::HeadSealMismatch => "head_seal_mismatch",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BrokenLink {
    /// Sequence number where the chain breaks.
    pub seq: i64,
    /// Row id of the offending event, when the event exists.
    pub event_id: Option<i64>,
    pub kind: BrokenLinkKind,
}

/// The chain head as the verifier needs it.
#[derive(Debug, Clone, Copy)]
pub struct HeadView<'a> {
    pub org_id: i64,
    pub last_seq: i64,
    pub last_hash: &'a str,
    pub seal: Option<&'a str>,
    pub seal_key_id: Option<&'a str>,
}

impl<'a> From<&'a crate::audit_chain_head::Model> for HeadView<'a> {
    fn from(h: &'a crate::audit_chain_head::Model) -> Self {
        HeadView {
            org_id: h.org_id,
            last_seq: h.last_seq,
            last_hash: &h.last_hash,
            seal: h.seal.as_deref(),
            seal_key_id: h.seal_key_id.as_deref(),
        }
    }
}

/// What a verifier could and could not check.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Coverage {
    /// Rows whose hash was recomputed and matched (keyed and plain).
    pub checked: u64,
    /// Of those, rows keyed with a key this installation holds.
    pub keyed: u64,
    /// Of those, rows written before the chain was keyed: consistent, but someone able to
    /// write the database could have rewritten them (a kept checkpoint covers them).
    pub plain: u64,
    /// Rows (and the head, when its seal is) keyed with a key this installation does not
    /// hold: linked, but not recomputed.
    pub unchecked: u64,
    /// The ids of the keys not held.
    pub unknown_key_ids: std::collections::BTreeSet<String>,
}

/// Incremental verifier: feed events in `seq` order, then `finish` with the chain head.
/// Keeps only the previous hash, so a chain of any length verifies in constant memory.
#[derive(Debug, Clone)]
pub struct ChainVerifier<'k> {
    keys: &'k KeyRing,
    expected_seq: i64,
    prev_hash: String,
    coverage: Coverage,
}

impl<'k> ChainVerifier<'k> {
    pub fn new(keys: &'k KeyRing) -> Self {
        Self {
            keys,
            expected_seq: 1,
            prev_hash: GENESIS_HASH.to_string(),
            coverage: Coverage::default(),
        }
    }

    pub fn coverage(&self) -> &Coverage {
        &self.coverage
    }

    pub fn push(&mut self, event: &crate::audit_event::Model) -> Result<(), BrokenLink> {
        let broken = |kind| BrokenLink {
            seq: event.seq,
            event_id: Some(event.id),
            kind,
        };
        if event.seq != self.expected_seq {
            return Err(BrokenLink {
                seq: self.expected_seq,
                event_id: None,
                kind: BrokenLinkKind::SequenceGap,
            });
        }
        if event.prev_hash != self.prev_hash {
            return Err(broken(BrokenLinkKind::PrevHashMismatch));
        }
        let canonical = CanonicalEvent::from(event);
        match event.hash_format {
            FORMAT_PLAIN => {
                if self.coverage.keyed + self.coverage.unchecked > 0 {
                    return Err(broken(BrokenLinkKind::UnkeyedAfterKeyed));
                }
                if chain_hash(&event.prev_hash, &canonical) != event.hash {
                    return Err(broken(BrokenLinkKind::HashMismatch));
                }
                self.coverage.plain += 1;
                self.coverage.checked += 1;
            }
            FORMAT_KEYED => match event.key_id.as_deref().and_then(|id| self.keys.get(id)) {
                Some(key) => {
                    if keyed_chain_hash(key, &event.prev_hash, &canonical) != event.hash {
                        return Err(broken(BrokenLinkKind::HashMismatch));
                    }
                    self.coverage.keyed += 1;
                    self.coverage.checked += 1;
                }
                None => {
                    self.coverage.unchecked += 1;
                    self.coverage
                        .unknown_key_ids
                        .insert(event.key_id.clone().unwrap_or_else(|| "(none)".into()));
                }
            },
            _ => return Err(broken(BrokenLinkKind::UnknownHashFormat)),
        }
        self.prev_hash.clone_from(&event.hash);
        self.expected_seq += 1;
        Ok(())
    }

    /// Checks that the chain reaches the recorded head (`None`: no head row) and that the
    /// head's seal matches. The coverage is returned either way.
    pub fn finish(mut self, head: Option<HeadView<'_>>) -> (Coverage, Result<(), BrokenLink>) {
        let result = self.check_head(head);
        (self.coverage, result)
    }

    fn check_head(&mut self, head: Option<HeadView<'_>>) -> Result<(), BrokenLink> {
        let last_seq = self.expected_seq - 1;
        let Some(head) = head else {
            if last_seq == 0 {
                return Ok(());
            }
            return Err(BrokenLink {
                seq: 1,
                event_id: None,
                kind: BrokenLinkKind::MissingHead,
            });
        };
        let at = |seq, kind| BrokenLink {
            seq,
            event_id: None,
            kind,
        };
        if last_seq < head.last_seq {
            return Err(at(last_seq + 1, BrokenLinkKind::TruncatedTail));
        }
        if last_seq > head.last_seq {
            return Err(at(head.last_seq + 1, BrokenLinkKind::BeyondHead));
        }
        if self.prev_hash != head.last_hash {
            return Err(at(last_seq, BrokenLinkKind::HashMismatch));
        }
        let Some(seal) = head.seal else {
            return Err(at(last_seq, BrokenLinkKind::HeadSealMismatch));
        };
        match head.seal_key_id.and_then(|id| self.keys.get(id)) {
            Some(key) => {
                if head_seal(key, head.org_id, head.last_seq, head.last_hash) != seal {
                    return Err(at(last_seq, BrokenLinkKind::HeadSealMismatch));
                }
            }
            None => {
                self.coverage.unchecked += 1;
                self.coverage
                    .unknown_key_ids
                    .insert(head.seal_key_id.unwrap_or("(none)").to_string());
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests;
