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
mod tests {
    use super::*;

    #[test]
    fn a_snapshot_keeps_the_record_and_drops_the_hints_about_what_comes_next() {
        let view = serde_json::json!({"id": 4, "status": "open", "allowed_events": ["close"],
            "blocked_events": [{"event": "close", "reason": "r"}]});
        assert_eq!(
            record_snapshot(&view).unwrap_or_default(),
            serde_json::json!({"id": 4, "status": "open"})
        );
    }
    use crate::audit_event::Model;
    use chrono::TimeZone;
    use serde_json::json;

    fn test_key() -> ChainKey {
        ChainKey::from_hex(&"5a".repeat(32)).unwrap()
    }

    fn ring() -> KeyRing {
        KeyRing::new(vec![test_key()]).unwrap()
    }

    fn event(seq: i64, prev: &str) -> Model {
        Model {
            id: seq * 10,
            org_id: 7,
            seq,
            actor_user_id: Some(3),
            entity_type: "user".into(),
            entity_id: seq.to_string(),
            action: "create".into(),
            before: None,
            after: Some(canonical_json(
                &json!({"b": 2, "a": [1, {"z": true, "y": null}]}),
            )),
            reason: Some("onboarding".into()),
            request_id: Some("req-1".into()),
            occurred_at: Utc
                .with_ymd_and_hms(2026, 11, 23, 9, 0, seq as u32)
                .unwrap(),
            prev_hash: prev.to_string(),
            hash: String::new(),
            hash_format: FORMAT_PLAIN,
            key_id: None,
        }
    }

    /// Rows 1..=n: the first `plain` of them written before keying, the rest keyed.
    fn mixed_chain(n: i64, plain: i64) -> Vec<Model> {
        let key = test_key();
        let mut prev = GENESIS_HASH.to_string();
        (1..=n)
            .map(|seq| {
                let mut e = event(seq, &prev);
                if seq > plain {
                    e.hash_format = FORMAT_KEYED;
                    e.key_id = Some(key.id().to_string());
                }
                e.hash = rehash(&e);
                prev = e.hash.clone();
                e
            })
            .collect()
    }

    fn chain(n: i64) -> Vec<Model> {
        mixed_chain(n, 0)
    }

    /// What a writer with the key computes for `e`.
    fn rehash(e: &Model) -> String {
        if e.hash_format == FORMAT_KEYED {
            keyed_chain_hash(&test_key(), &e.prev_hash, &CanonicalEvent::from(e))
        } else {
            chain_hash(&e.prev_hash, &CanonicalEvent::from(e))
        }
    }

    fn sealed_head(seq: i64, hash: &str) -> crate::audit_chain_head::Model {
        let key = test_key();
        crate::audit_chain_head::Model {
            org_id: 7,
            last_seq: seq,
            last_hash: hash.to_string(),
            seal: Some(head_seal(&key, 7, seq, hash)),
            seal_key_id: Some(key.id().to_string()),
        }
    }

    fn verify_against(
        events: &[Model],
        head: Option<&crate::audit_chain_head::Model>,
        keys: &KeyRing,
    ) -> (Coverage, Result<(), BrokenLink>) {
        let mut v = ChainVerifier::new(keys);
        for e in events {
            if let Err(broken) = v.push(e) {
                return (v.coverage().clone(), Err(broken));
            }
        }
        v.finish(head.map(HeadView::from))
    }

    fn verify(events: &[Model], head: Option<(i64, &str)>) -> Result<u64, BrokenLink> {
        let head = head.map(|(seq, hash)| sealed_head(seq, hash));
        let (coverage, result) = verify_against(events, head.as_ref(), &ring());
        result.map(|()| coverage.checked)
    }

    #[test]
    fn canonical_json_sorts_keys_at_every_level() {
        let v = json!({"b": 1, "a": {"d": [3, {"y": 1, "x": 2}], "c": "s"}});
        assert_eq!(
            canonical_json(&v),
            r#"{"a":{"c":"s","d":[3,{"x":2,"y":1}]},"b":1}"#
        );
    }

    #[test]
    fn key_order_does_not_change_the_hash() {
        let a: Value = serde_json::from_str(r#"{"x":1,"y":2}"#).unwrap();
        let b: Value = serde_json::from_str(r#"{"y":2,"x":1}"#).unwrap();
        assert_eq!(content_hash(&a), content_hash(&b));
    }

    #[test]
    fn an_intact_chain_verifies() {
        let events = chain(5);
        let head = events.last().map(|e| (e.seq, e.hash.as_str()));
        assert_eq!(verify(&events, head), Ok(5));
    }

    #[test]
    fn an_empty_chain_verifies() {
        assert_eq!(verify(&[], None), Ok(0));
    }

    #[test]
    fn an_edited_row_is_a_hash_mismatch_at_that_row() {
        let mut events = chain(4);
        events[2].reason = Some("edited afterwards".into());
        let head = events.last().map(|e| (e.seq, e.hash.clone()));
        let err = verify(&events, head.as_ref().map(|(s, h)| (*s, h.as_str()))).unwrap_err();
        assert_eq!((err.seq, err.kind), (3, BrokenLinkKind::HashMismatch));
    }

    #[test]
    fn a_rehashed_row_breaks_the_next_link() {
        let mut events = chain(4);
        events[1].action = "delete".into();
        events[1].hash = rehash(&events[1]);
        let head = events.last().map(|e| (e.seq, e.hash.clone()));
        let err = verify(&events, head.as_ref().map(|(s, h)| (*s, h.as_str()))).unwrap_err();
        assert_eq!((err.seq, err.kind), (3, BrokenLinkKind::PrevHashMismatch));
    }

    #[test]
    fn a_deleted_row_is_a_sequence_gap() {
        let mut events = chain(4);
        events.remove(1);
        let err = verify(&events, Some((4, "x"))).unwrap_err();
        assert_eq!((err.seq, err.kind), (2, BrokenLinkKind::SequenceGap));
    }

    #[test]
    fn a_deleted_tail_is_detected_against_the_head() {
        let events = chain(4);
        let head_hash = events[3].hash.clone();
        let err = verify(&events[..3], Some((4, &head_hash))).unwrap_err();
        assert_eq!((err.seq, err.kind), (4, BrokenLinkKind::TruncatedTail));
    }

    #[test]
    fn rows_past_the_head_are_detected() {
        let events = chain(4);
        let head_hash = events[2].hash.clone();
        let err = verify(&events, Some((3, &head_hash))).unwrap_err();
        assert_eq!((err.seq, err.kind), (4, BrokenLinkKind::BeyondHead));
    }

    #[test]
    fn events_without_a_head_are_detected() {
        let events = chain(2);
        let err = verify(&events, None).unwrap_err();
        assert_eq!(err.kind, BrokenLinkKind::MissingHead);
    }

    #[test]
    fn timestamps_hash_with_microsecond_precision() {
        let t = Utc.with_ymd_and_hms(2026, 1, 2, 3, 4, 5).unwrap();
        let events = chain(1);
        let mut e = events[0].clone();
        e.occurred_at = t;
        let v = serde_json::to_value(CanonicalEvent::from(&e)).unwrap();
        assert_eq!(v["occurred_at"], "2026-01-02T03:04:05.000000Z");
    }

    #[test]
    fn rows_written_before_keying_verify_and_are_counted_apart() {
        let events = mixed_chain(5, 2);
        let head = sealed_head(5, &events[4].hash);
        let (coverage, result) = verify_against(&events, Some(&head), &ring());
        assert_eq!(result, Ok(()));
        assert_eq!(
            (coverage.checked, coverage.plain, coverage.keyed),
            (5, 2, 3)
        );
    }

    #[test]
    fn a_chain_rewritten_without_the_key_is_detected() {
        // Edit row 2 and recompute every hash after it with a key of one's own.
        let forger = ChainKey::generate();
        let mut events = chain(4);
        events[1].reason = Some("nothing to see".into());
        for i in 1..events.len() {
            events[i].prev_hash = events[i - 1].hash.clone();
            events[i].key_id = Some(forger.id().to_string());
            events[i].hash = keyed_chain_hash(
                &forger,
                &events[i].prev_hash,
                &CanonicalEvent::from(&events[i]),
            );
        }
        // Keeping the real key id does not help either: the MAC does not match.
        let mut same_id = events.clone();
        same_id[1].key_id = Some(test_key().id().to_string());
        let head = sealed_head(4, &events[3].hash);
        let (_, result) = verify_against(&same_id, Some(&head), &ring());
        assert_eq!(result.unwrap_err().kind, BrokenLinkKind::HashMismatch);
        // With the forger's key id, the rows cannot be checked, and the verifier says so.
        let (coverage, _) = verify_against(&events, Some(&head), &ring());
        assert_eq!(coverage.unchecked, 3);
        assert!(coverage.unknown_key_ids.contains(forger.id()));
    }

    #[test]
    fn a_chain_rewritten_as_plain_rows_no_longer_matches_its_sealed_head() {
        let mut events = chain(3);
        let honest_head = sealed_head(3, &events[2].hash);
        let mut prev = GENESIS_HASH.to_string();
        for e in &mut events {
            e.hash_format = FORMAT_PLAIN;
            e.key_id = None;
            e.prev_hash = prev.clone();
            e.hash = chain_hash(&prev, &CanonicalEvent::from(&*e));
            prev = e.hash.clone();
        }
        // The forger rewinds the head to the new last hash, but cannot seal it.
        let mut forged_head = honest_head.clone();
        forged_head.last_hash = prev.clone();
        let (_, result) = verify_against(&events, Some(&forged_head), &ring());
        assert_eq!(result.unwrap_err().kind, BrokenLinkKind::HeadSealMismatch);
        forged_head.seal = None;
        let (_, result) = verify_against(&events, Some(&forged_head), &ring());
        assert_eq!(result.unwrap_err().kind, BrokenLinkKind::HeadSealMismatch);
    }

    #[test]
    fn a_plain_row_after_a_keyed_one_is_refused() {
        let mut events = mixed_chain(3, 0);
        events[2].hash_format = FORMAT_PLAIN;
        events[2].key_id = None;
        events[2].hash = rehash(&events[2]);
        let err = verify(&events, Some((3, &events[2].hash.clone()))).unwrap_err();
        assert_eq!((err.seq, err.kind), (3, BrokenLinkKind::UnkeyedAfterKeyed));
    }

    #[test]
    fn a_rotated_ring_still_verifies_rows_of_the_older_key() {
        let events = chain(2);
        let rotated = ring().rotated();
        let head = sealed_head(2, &events[1].hash);
        let (coverage, result) = verify_against(&events, Some(&head), &rotated);
        assert_eq!((result, coverage.keyed), (Ok(()), 2));
        // A ring without the old key cannot check them, and says which key it lacks.
        let other = KeyRing::generate();
        let (coverage, result) = verify_against(&events, Some(&head), &other);
        assert_eq!((result, coverage.unchecked), (Ok(()), 3));
        assert_eq!(
            coverage.unknown_key_ids.into_iter().collect::<Vec<_>>(),
            [test_key().id().to_string()]
        );
    }
}
