//! The chain's rules tested on rows in memory: canonical form, plain and keyed hashes,
//! every kind of broken link, rotation.

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
