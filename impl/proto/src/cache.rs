//! The resource server's verified-token cache (the Envoy `jwt_authn` technique).
//!
//! A signature check costs 15–50 µs; a client reuses one access token for many requests. So
//! [`ResourceServer::authenticate_cached`](crate::resource::ResourceServer::authenticate_cached)
//! remembers the tokens that passed **full** validation, keyed by the whole token string, and
//! answers a repeat from memory after re-checking `exp` and `nbf` against `now` with the same
//! leeway as [`validate`](crate::jwt::validate). Everything else a validation checks depends
//! only on the token, the keys and the policy: the token is the key, the policy never changes
//! for a server, and installing keys ([`ResourceServer::set_keys`]) empties the cache. A hit
//! therefore answers exactly what a validation would.
//!
//! Bounded: at most [`TOKEN_CACHE_ENTRIES`] tokens of at most [`TOKEN_CACHE_TOKEN_LEN_MAX`]
//! bytes. Eviction is deterministic: expired entries go first, then the one that expires
//! soonest (ties: the one inserted first). Ordered maps only, so the resource server stays a
//! plain `Clone + Eq + Hash` value.
//!
//! [`ResourceServer::set_keys`]: crate::resource::ResourceServer::set_keys

use std::collections::BTreeMap;
use std::sync::Arc;

use crate::error::Rejection;
use crate::jwt::{Access, LEEWAY_MAX_SECS, ValidationPolicy};
use crate::time::UnixTime;

/// Most tokens the cache holds.
pub const TOKEN_CACHE_ENTRIES: usize = 4096;
/// Longest token the cache holds (longer ones are validated every time, as in Envoy).
pub const TOKEN_CACHE_TOKEN_LEN_MAX: usize = 4096;

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct Entry {
    access: Access,
    nbf: Option<u64>,
    iat: u64,
    /// Insertion number: the second half of this entry's key in `by_expiry`.
    seq: u64,
}

/// A bounded map from verified tokens to their [`Access`].
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct TokenCache {
    entries: BTreeMap<Arc<str>, Entry>,
    /// `(exp, seq)` of every entry: the eviction order.
    by_expiry: BTreeMap<(u64, u64), Arc<str>>,
    next_seq: u64,
    capacity: usize,
}

impl TokenCache {
    /// An empty cache of [`TOKEN_CACHE_ENTRIES`] entries.
    pub fn new() -> Self {
        Self::with_capacity(TOKEN_CACHE_ENTRIES)
    }

    /// An empty cache of `capacity` entries (0 disables caching).
    pub fn with_capacity(capacity: usize) -> Self {
        Self {
            capacity,
            ..Self::default()
        }
    }

    /// Number of cached tokens.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Is the cache empty?
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Forget every token.
    pub fn clear(&mut self) {
        self.entries.clear();
        self.by_expiry.clear();
    }

    /// The cached verdict for `token` at `now`: `None` on a miss; on a hit, the [`Access`] if
    /// the token is still inside its `exp`/`nbf`/`iat` window, else the [`Rejection`] a validation
    /// would give (an expired entry is dropped).
    // spec: JWT-10, JWT-11
    pub fn get(
        &mut self,
        policy: &ValidationPolicy,
        now: UnixTime,
        token: &str,
    ) -> Option<Result<Access, Rejection>> {
        let entry = self.entries.get(token)?;
        let leeway = policy.leeway_secs.min(LEEWAY_MAX_SECS);
        let exp = entry.access.expires_at.as_secs();
        if now.as_secs() >= exp.saturating_add(leeway) {
            let seq = entry.seq;
            self.entries.remove(token);
            self.by_expiry.remove(&(exp, seq));
            return Some(Err(Rejection::TokenExpired));
        }
        if entry
            .nbf
            .is_some_and(|nbf| now.as_secs().saturating_add(leeway) < nbf)
        {
            return Some(Err(Rejection::TokenNotYetValid));
        }
        // spec: JWT-15
        if now.as_secs().saturating_add(leeway) < entry.iat {
            return Some(Err(Rejection::IssuedInFuture));
        }
        Some(Ok(entry.access.clone()))
    }

    /// Remember a token that has just passed full validation at `now`, with its `nbf` and
    /// `iat` claims (both re-checked on every hit, as a validation would).
    pub fn insert(
        &mut self,
        policy: &ValidationPolicy,
        now: UnixTime,
        token: &str,
        access: &Access,
        nbf: Option<u64>,
        iat: u64,
    ) {
        if self.capacity == 0
            || token.len() > TOKEN_CACHE_TOKEN_LEN_MAX
            || self.entries.contains_key(token)
        {
            return;
        }
        let leeway = policy.leeway_secs.min(LEEWAY_MAX_SECS);
        // Drop what has expired, then, if still full, what expires soonest.
        while let Some((&(exp, seq), _)) = self.by_expiry.first_key_value() {
            let expired = now.as_secs() >= exp.saturating_add(leeway);
            if !expired && self.entries.len() < self.capacity {
                break;
            }
            if let Some(old) = self.by_expiry.remove(&(exp, seq)) {
                self.entries.remove(&old);
            }
        }
        let token: Arc<str> = Arc::from(token);
        let seq = self.next_seq;
        self.next_seq = self.next_seq.wrapping_add(1);
        self.by_expiry
            .insert((access.expires_at.as_secs(), seq), Arc::clone(&token));
        self.entries.insert(
            token,
            Entry {
                access: access.clone(),
                nbf,
                iat,
                seq,
            },
        );
    }
}
