//! Token introspection (RFC 7662), the resource server's side: the answer's format, the
//! configuration, and the bounded cache of answers.
//!
//! A JWT stays valid until its `exp` whatever happens to its grant. A resource server that
//! must notice revocation sooner asks the authorization server, after the JWT has passed its
//! own validation, whether the token is still active
//! ([`ResourceServer::authenticate_active`](crate::resource::ResourceServer::authenticate_active)).
//! The answer is cached for [`IntrospectionConfig::cache_secs`] (default
//! [`INTROSPECTION_CACHE_SECS_DEFAULT`]), keyed by the SHA-256 of the token: a revoked grant's
//! token is refused at the latest that long after the revocation. The core decides when to ask
//! and what the answer means; the driver only sends the request it is given.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::time::UnixTime;
use crate::types::SecretDigest;

/// How long an introspection answer is used by default, in seconds.
pub const INTROSPECTION_CACHE_SECS_DEFAULT: u64 = 30;
/// Most answers the cache holds by default.
pub const INTROSPECTION_CACHE_ENTRIES: usize = 4096;
/// Largest introspection answer the resource server reads.
pub const INTROSPECTION_RESPONSE_LEN_MAX: usize = 16 * 1024;
/// `Retry-After` of the 503 a resource server answers when the authorization server cannot
/// tell whether a token is active.
pub const INTROSPECTION_RETRY_AFTER_SECS: u64 = 5;

/// An introspection answer (RFC 7662 §2.2). An inactive token is `{"active": false}` and
/// nothing else; an active one carries what the authorization server knows of it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct IntrospectionResponse {
    /// Is the token active (issued by this AS, not expired, its grant not revoked, and the
    /// caller allowed to know)?
    pub active: bool,
    /// Scopes, space-separated.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scope: Option<String>,
    /// The client the token was issued to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_id: Option<String>,
    /// The user.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sub: Option<String>,
    /// The audience (the resource's canonical URI).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aud: Option<String>,
    /// The issuer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iss: Option<String>,
    /// Expiry, seconds since the epoch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exp: Option<u64>,
    /// Issued at, seconds since the epoch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iat: Option<u64>,
    /// `Bearer` for access tokens.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_type: Option<String>,
}

impl IntrospectionResponse {
    /// `{"active": false}`.
    pub fn inactive() -> Self {
        Self::default()
    }
}

/// How a resource server introspects (RFC 7662) on top of validating the JWT.
///
/// `#[non_exhaustive]`: build it with [`IntrospectionConfig::new`] and the `with_*` methods
/// (or assign fields of a value), so that a new field is not a breaking change.
#[derive(Clone, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub struct IntrospectionConfig {
    /// The authorization server's `introspection_endpoint`.
    pub endpoint: String,
    /// The secret this resource server authenticates with (HTTP Basic, the resource URI as
    /// the user name), the one configured for it on the authorization server
    /// ([`AsConfig::resource_credentials`](crate::server::AsConfig::resource_credentials)).
    pub secret: String,
    /// How long an answer is used, in seconds (default [`INTROSPECTION_CACHE_SECS_DEFAULT`]):
    /// the longest a revoked grant's token is still accepted. 0 asks on every request.
    pub cache_secs: u64,
    /// Most answers cached (default [`INTROSPECTION_CACHE_ENTRIES`]).
    pub cache_entries: usize,
}

impl IntrospectionConfig {
    /// Introspect at `endpoint` with `secret`, the cache at its defaults.
    pub fn new(endpoint: impl Into<String>, secret: impl Into<String>) -> Self {
        Self {
            endpoint: endpoint.into(),
            secret: secret.into(),
            cache_secs: INTROSPECTION_CACHE_SECS_DEFAULT,
            cache_entries: INTROSPECTION_CACHE_ENTRIES,
        }
    }

    /// Sets [`IntrospectionConfig::cache_secs`], how long an answer is used (default
    /// [`INTROSPECTION_CACHE_SECS_DEFAULT`]; 0 asks on every request).
    #[must_use]
    pub fn with_cache_secs(mut self, cache_secs: u64) -> Self {
        self.cache_secs = cache_secs;
        self
    }

    /// Sets [`IntrospectionConfig::cache_entries`], the most answers cached (default
    /// [`INTROSPECTION_CACHE_ENTRIES`]).
    #[must_use]
    pub fn with_cache_entries(mut self, cache_entries: usize) -> Self {
        self.cache_entries = cache_entries;
        self
    }
}

// The secret never appears in logs.
impl std::fmt::Debug for IntrospectionConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IntrospectionConfig")
            .field("endpoint", &self.endpoint)
            .field("secret", &"<redacted>")
            .field("cache_secs", &self.cache_secs)
            .field("cache_entries", &self.cache_entries)
            .finish()
    }
}

/// A bounded map from token digests to the introspection verdict and when it stops being
/// used. Full: expired answers go first, then the one that expires soonest.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct IntrospectionCache {
    entries: BTreeMap<SecretDigest, (UnixTime, bool)>,
    capacity: usize,
}

impl IntrospectionCache {
    /// An empty cache of `capacity` answers (0: nothing is cached).
    pub fn with_capacity(capacity: usize) -> Self {
        Self {
            entries: BTreeMap::new(),
            capacity,
        }
    }

    /// Number of answers held.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Is the cache empty?
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The cached verdict (active or not) for the token with this digest, while it is fresh.
    pub fn get(&self, now: UnixTime, token: &SecretDigest) -> Option<bool> {
        self.entries
            .get(token)
            .filter(|(until, _)| now < *until)
            .map(|&(_, active)| active)
    }

    /// Remember a verdict until `until`.
    pub fn insert(&mut self, now: UnixTime, token: SecretDigest, active: bool, until: UnixTime) {
        if self.capacity == 0 || now >= until {
            return;
        }
        if self.entries.len() >= self.capacity && !self.entries.contains_key(&token) {
            self.entries.retain(|_, (u, _)| now < *u);
        }
        while self.entries.len() >= self.capacity && !self.entries.contains_key(&token) {
            let soonest = self
                .entries
                .iter()
                .min_by_key(|(_, (u, _))| *u)
                .map(|(k, _)| *k);
            match soonest {
                Some(k) => {
                    self.entries.remove(&k);
                }
                None => break,
            }
        }
        self.entries.insert(token, (until, active));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cache_is_bounded_and_answers_expire() {
        let now = UnixTime::from_secs(100);
        let mut cache = IntrospectionCache::with_capacity(2);
        let [a, b, c] = ["a", "b", "c"].map(SecretDigest::of);
        cache.insert(now, a, true, now.plus(30));
        cache.insert(now, b, false, now.plus(10));
        cache.insert(now, c, true, now.plus(20));
        assert_eq!(cache.len(), 2);
        assert_eq!(cache.get(now, &b), None, "the soonest to expire went first");
        assert_eq!(cache.get(now, &a), Some(true));
        assert_eq!(cache.get(now.plus(30), &a), None, "stale at `until`");
        let off = &mut IntrospectionCache::with_capacity(0);
        off.insert(now, a, true, now.plus(30));
        assert!(off.is_empty());
    }
}
