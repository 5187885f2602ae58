//! The durable store's contract (issue 13), checked the same way on each backend: included by
//! `tests/store.rs` (SQLite) and `tests/postgres.rs` with `#[path]`, each giving a fresh empty
//! store.

use std::time::Duration;

use mcp_auth::store::{Store, StoreError, StoredUpdate};
use mcp_auth_proto::server::{Change, Record, RecordKey};
use mcp_auth_proto::types::ClientId;

/// A record key (the store does not look at the kinds; any body will do).
pub fn key(id: &str) -> RecordKey {
    RecordKey::Client(ClientId(id.to_owned()))
}

/// A change of `key` from `replaces` to `version` (`None`: removal).
pub fn put(key: &RecordKey, replaces: u64, value: Option<u64>) -> Change {
    Change {
        key: key.clone(),
        replaces,
        version: if value.is_some() { replaces + 1 } else { 0 },
        record: value.map(Record::GrantSequence),
    }
}

/// Compare-and-set: a stale version or a second insert refuses the whole commit.
pub fn compare_and_set(store: &mut Store) {
    let (a, b) = (key("a"), key("b"));
    store.commit(&[put(&a, 0, Some(1))]).expect("insert a");
    assert_eq!(
        store.commit(&[put(&b, 0, Some(1)), put(&a, 0, Some(2))]),
        Err(StoreError::Conflict(vec![a.clone()]))
    );
    assert_eq!(
        store.commit(&[put(&a, 7, Some(2))]),
        Err(StoreError::Conflict(vec![a.clone()]))
    );
    // Removing with replaces 0 what is live: refused too.
    assert_eq!(
        store.commit(&[put(&a, 0, None)]),
        Err(StoreError::Conflict(vec![a.clone()]))
    );
    let snapshot = store.load().expect("load");
    assert_eq!(snapshot.records.len(), 1, "b was not committed");
    assert_eq!(snapshot.seq, 1);
    store.commit(&[put(&a, 1, Some(2))]).expect("update");
    let snapshot = store.load().expect("load");
    assert_eq!(
        (
            snapshot.records[0].version,
            snapshot.records[0].body.as_str()
        ),
        (2, "{\"next\":2}")
    );
    assert_eq!(snapshot.seq, 2);
}

/// The sequence, `changes_since` and tombstones.
pub fn changes_and_tombstones(store: &mut Store) {
    let (a, b, c) = (key("a"), key("b"), key("c"));
    assert_eq!(store.load().expect("empty").seq, 0);
    store
        .commit(&[put(&a, 0, Some(1)), put(&b, 0, Some(1))])
        .expect("a, b");
    store.commit(&[put(&c, 0, Some(1))]).expect("c");
    let all = store.changes_since(0).expect("since 0").expect("known");
    assert_eq!(all.seq, 3);
    let keys: Vec<_> = all
        .updates
        .iter()
        .map(|u| match u {
            StoredUpdate::Put(r) => r.key.clone(),
            StoredUpdate::Removed(k) => k.clone(),
        })
        .collect();
    assert_eq!(keys, [a.clone(), b.clone(), c.clone()]);
    // A change of a and the removal of b: one update each, in sequence order.
    store.commit(&[put(&b, 1, None)]).expect("remove b");
    store.commit(&[put(&a, 1, Some(2))]).expect("a again");
    let delta = store.changes_since(3).expect("since 3").expect("known");
    assert_eq!(delta.seq, 5);
    assert_eq!(delta.updates.len(), 2);
    assert_eq!(delta.updates[0], StoredUpdate::Removed(b.clone()));
    assert!(matches!(&delta.updates[1], StoredUpdate::Put(r) if r.key == a && r.version == 2));
    assert_eq!(
        store.changes_since(5).expect("since 5"),
        Some(mcp_auth::store::Delta {
            updates: vec![],
            seq: 5
        })
    );
    // load never returns the tombstone; a tombstone counts as absent for compare-and-set.
    let snapshot = store.load().expect("load");
    assert_eq!(snapshot.seq, 5);
    assert!(snapshot.records.iter().all(|r| r.key != b));
    assert_eq!(snapshot.records.len(), 2);
    assert_eq!(
        store.commit(&[put(&b, 1, Some(3))]),
        Err(StoreError::Conflict(vec![b.clone()]))
    );
    store.commit(&[put(&b, 0, Some(3))]).expect("b again");
    assert_eq!(store.load().expect("load").records.len(), 3);
    // A sequence beyond the store's: the caller must load.
    assert_eq!(store.changes_since(99).expect("beyond"), None);
}

/// Collected tombstones raise the horizon; `changes_since` below it answers `None`.
pub fn horizon(store: &mut Store) {
    let (a, b) = (key("a"), key("b"));
    store
        .commit(&[put(&a, 0, Some(1)), put(&b, 0, Some(1))])
        .expect("a, b");
    store.commit(&[put(&a, 1, None)]).expect("remove a");
    // A young tombstone is kept.
    assert_eq!(store.collect_tombstones(Duration::from_secs(3600)), Ok(0));
    assert!(store.changes_since(1).expect("since 1").is_some());
    assert_eq!(store.collect_tombstones(Duration::ZERO), Ok(3));
    assert_eq!(store.changes_since(2).expect("below the horizon"), None);
    assert_eq!(store.changes_since(0).expect("below the horizon"), None);
    let at = store
        .changes_since(3)
        .expect("at the horizon")
        .expect("known");
    assert_eq!((at.updates.len(), at.seq), (0, 3));
    // Collecting again without tombstones keeps the horizon.
    assert_eq!(store.collect_tombstones(Duration::ZERO), Ok(3));
    assert_eq!(store.load().expect("load").records.len(), 1);
}
