//! [`Shared`]: a table of the server behind an `Arc`, copied on its first write, its hash
//! computed once.

use std::hash::{Hash, Hasher};
use std::ops::{Deref, DerefMut};
use std::sync::{Arc, OnceLock};

/// A value behind an [`Arc`], written through [`Arc::make_mut`]: cloning a server shares its
/// tables, and a table is copied only when a clone writes to it (a server that is never cloned
/// writes in place). Equality and debug output are the value's (equality compares the pointers
/// first). Hashing writes one `u64`, the value's hash, computed on the first hash and kept
/// until the next write: equal values hash equally, and hashing a server clone (the model
/// checker hashes every state) costs nothing for the tables it shares.
#[derive(Clone, Default)]
pub(crate) struct Shared<T>(Arc<Cached<T>>);

#[derive(Clone, Default)]
struct Cached<T> {
    value: T,
    hash: OnceLock<u64>,
}

impl<T> Shared<T> {
    pub(crate) fn new(value: T) -> Self {
        Self(Arc::new(Cached {
            value,
            hash: OnceLock::new(),
        }))
    }
}

impl<T> Deref for Shared<T> {
    type Target = T;

    fn deref(&self) -> &T {
        &self.0.value
    }
}

impl<T: Clone> DerefMut for Shared<T> {
    fn deref_mut(&mut self) -> &mut T {
        let cached = Arc::make_mut(&mut self.0);
        cached.hash = OnceLock::new();
        &mut cached.value
    }
}

impl<T: PartialEq> PartialEq for Shared<T> {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.0, &other.0) || self.0.value == other.0.value
    }
}

impl<T: Eq> Eq for Shared<T> {}

impl<T: Hash> Hash for Shared<T> {
    fn hash<H: Hasher>(&self, state: &mut H) {
        let hash = self.0.hash.get_or_init(|| {
            // Fixed keys: the same value hashes the same in every thread and run.
            let mut hasher = std::hash::DefaultHasher::new();
            self.0.value.hash(&mut hasher);
            hasher.finish()
        });
        state.write_u64(*hash);
    }
}

impl<T: std::fmt::Debug> std::fmt::Debug for Shared<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.value.fmt(f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hash_of(v: &Shared<Vec<i32>>) -> u64 {
        let mut h = std::hash::DefaultHasher::new();
        v.hash(&mut h);
        h.finish()
    }

    #[test]
    fn a_clone_shares_until_it_writes() {
        let mut a = Shared::new(vec![1, 2]);
        let mut b = a.clone();
        assert!(Arc::ptr_eq(&a.0, &b.0));
        b.push(3);
        assert!(!Arc::ptr_eq(&a.0, &b.0));
        assert_eq!(*a, [1, 2]);
        assert_eq!(*b, [1, 2, 3]);
        assert_ne!(a, b);
        let before = Arc::as_ptr(&a.0);
        a.push(3);
        assert_eq!(
            Arc::as_ptr(&a.0),
            before,
            "an unshared table is written in place"
        );
        assert_eq!(a, b);
        assert_eq!(format!("{a:?}"), "[1, 2, 3]");
    }

    #[test]
    fn the_hash_is_the_value_s_and_follows_writes() {
        let mut a = Shared::new(vec![1, 2]);
        let first = hash_of(&a);
        let b = Shared::new(vec![1, 2]);
        assert_eq!(hash_of(&b), first, "equal values, equal hashes");
        a.push(3);
        assert_ne!(hash_of(&a), first, "a write forgets the cached hash");
        let c = a.clone();
        a.pop();
        assert_eq!(hash_of(&a), first);
        assert_eq!(hash_of(&c), hash_of(&Shared::new(vec![1, 2, 3])));
    }
}
