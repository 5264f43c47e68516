//! The audit chain's pure rules: canonical form, hashing and verification.
//!
//! `hash = SHA-256(prev_hash || "\n" || canonical_json(event))`, where the canonical
//! JSON has its object keys sorted and no insignificant white space, so the same event
//! hashes the same whichever database stored it and in whatever key order.
//!
//! The evidence lives here: the audit trail (`audit_trail`, its rows in `audit_event`,
//! the chain head in `audit_chain_head`) and e-signatures (`signature`).

pub mod audit_chain_head;
pub mod audit_event;
pub mod audit_trail;
pub mod signature;

use chrono::{DateTime, SecondsFormat, Utc};
use serde::Serialize;
use serde_json::Value;
use sha2::{Digest, Sha256};

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

/// The chain hash of `event` following `prev_hash`.
pub fn chain_hash(prev_hash: &str, event: &CanonicalEvent<'_>) -> String {
    let value = serde_json::to_value(event).unwrap_or(Value::Null);
    let mut hasher = Sha256::new();
    hasher.update(prev_hash.as_bytes());
    hasher.update(b"\n");
    hasher.update(canonical_json(&value).as_bytes());
    hex::encode(hasher.finalize())
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
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BrokenLink {
    /// Sequence number where the chain breaks.
    pub seq: i64,
    /// Row id of the offending event, when the event exists.
    pub event_id: Option<i64>,
    pub kind: BrokenLinkKind,
}

/// Incremental verifier: feed events in `seq` order, then `finish` with the chain head.
/// Keeps only the previous hash, so a chain of any length verifies in constant memory.
#[derive(Debug, Clone)]
pub struct ChainVerifier {
    expected_seq: i64,
    prev_hash: String,
    checked: u64,
}

impl Default for ChainVerifier {
    fn default() -> Self {
        Self {
            expected_seq: 1,
            prev_hash: GENESIS_HASH.to_string(),
            checked: 0,
        }
    }
}

impl ChainVerifier {
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
        if chain_hash(&event.prev_hash, &CanonicalEvent::from(event)) != event.hash {
            return Err(broken(BrokenLinkKind::HashMismatch));
        }
        self.prev_hash.clone_from(&event.hash);
        self.expected_seq += 1;
        self.checked += 1;
        Ok(())
    }

    /// Checks that the chain reaches the recorded head (`None`: no event recorded yet).
    pub fn finish(self, head: Option<(i64, &str)>) -> Result<u64, BrokenLink> {
        let last_seq = self.expected_seq - 1;
        let Some((head_seq, head_hash)) = head else {
            if last_seq == 0 {
                return Ok(0);
            }
            return Err(BrokenLink {
                seq: 1,
                event_id: None,
                kind: BrokenLinkKind::MissingHead,
            });
        };
        if last_seq < head_seq {
            return Err(BrokenLink {
                seq: last_seq + 1,
                event_id: None,
                kind: BrokenLinkKind::TruncatedTail,
            });
        }
        if last_seq > head_seq {
            return Err(BrokenLink {
                seq: head_seq + 1,
                event_id: None,
                kind: BrokenLinkKind::BeyondHead,
            });
        }
        if self.prev_hash != head_hash {
            return Err(BrokenLink {
                seq: last_seq,
                event_id: None,
                kind: BrokenLinkKind::HashMismatch,
            });
        }
        Ok(self.checked)
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

    fn chain(n: i64) -> Vec<Model> {
        let mut prev = GENESIS_HASH.to_string();
        (1..=n)
            .map(|seq| {
                let mut e = Model {
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
                    prev_hash: prev.clone(),
                    hash: String::new(),
                };
                e.hash = chain_hash(&prev, &CanonicalEvent::from(&e));
                prev = e.hash.clone();
                e
            })
            .collect()
    }

    fn verify(events: &[Model], head: Option<(i64, &str)>) -> Result<u64, BrokenLink> {
        let mut v = ChainVerifier::default();
        for e in events {
            v.push(e)?;
        }
        v.finish(head)
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
        events[1].hash = chain_hash(&events[1].prev_hash, &CanonicalEvent::from(&events[1]));
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
}
