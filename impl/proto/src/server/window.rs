//! Counters per key in fixed time windows, in a bounded table: the login limits (failures per
//! user and per address) and the request rate limits (requests per endpoint and address).

use std::collections::BTreeMap;

use crate::time::UnixTime;

/// A count per key, each in its own window that starts at the key's first count.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(super) struct Windows<K> {
    counts: BTreeMap<K, (u32, UnixTime)>,
}

impl<K: Ord + Clone> Windows<K> {
    pub(super) const fn new() -> Self {
        Self {
            counts: BTreeMap::new(),
        }
    }

    /// The count of `key` at `now` (0 once its window of `window` seconds has passed).
    pub(super) fn count(&self, now: UnixTime, window: u64, key: &K) -> u32 {
        self.counts
            .get(key)
            .filter(|(_, since)| now < since.plus(window))
            .map_or(0, |(count, _)| *count)
    }

    /// Add one to `key`'s count (in a new window if the old one has passed). When the table
    /// already holds `capacity` keys and `key` is new, the passed windows go, then the oldest.
    pub(super) fn add(&mut self, now: UnixTime, window: u64, capacity: usize, key: K) {
        if self.counts.len() >= capacity && !self.counts.contains_key(&key) {
            self.counts.retain(|_, (_, since)| now < since.plus(window));
            if self.counts.len() >= capacity
                && let Some(oldest) = self
                    .counts
                    .iter()
                    .min_by_key(|(_, (_, since))| *since)
                    .map(|(k, _)| k.clone())
            {
                self.counts.remove(&oldest);
            }
        }
        let entry = self.counts.entry(key).or_insert((0, now));
        if now >= entry.1.plus(window) {
            *entry = (0, now);
        }
        entry.0 = entry.0.saturating_add(1);
    }

    /// Forget `key`.
    pub(super) fn remove(&mut self, key: &K) {
        self.counts.remove(key);
    }
}
