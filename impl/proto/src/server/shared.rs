//! [`Shared`]: a table of the server behind an `Arc`, copied on its first write.

use std::ops::{Deref, DerefMut};
use std::sync::Arc;

/// A value behind an [`Arc`], written through [`Arc::make_mut`]: cloning a server shares its
/// tables, and a table is copied only when a clone writes to it (a server that is never cloned
/// writes in place). Equality, hashing and debug output are the value's (equality compares the
/// pointers first), so the server's are what they would be without the `Arc`.
#[derive(Clone, Default, Eq, Hash)]
pub(crate) struct Shared<T>(Arc<T>);

impl<T> Shared<T> {
    pub(crate) fn new(value: T) -> Self {
        Self(Arc::new(value))
    }
}

impl<T> Deref for Shared<T> {
    type Target = T;

    fn deref(&self) -> &T {
        &self.0
    }
}

impl<T: Clone> DerefMut for Shared<T> {
    fn deref_mut(&mut self) -> &mut T {
        Arc::make_mut(&mut self.0)
    }
}

impl<T: PartialEq> PartialEq for Shared<T> {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.0, &other.0) || *self.0 == *other.0
    }
}

impl<T: std::fmt::Debug> std::fmt::Debug for Shared<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
}
