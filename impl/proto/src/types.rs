//! Small identifier types shared by the three roles.

use std::collections::BTreeSet;
use std::fmt;

use serde::{Deserialize, Serialize};

use crate::error::Rejection;

/// Longest scope string we accept (bounded input).
pub const SCOPE_LEN_MAX: usize = 1024;
/// Most scope tokens in one scope string.
pub const SCOPES_MAX: usize = 32;

/// A set of scope tokens (OAuth 2.1 §1.4.1): `scope-token = 1*( %x21 / %x23-5B / %x5D-7E )`,
/// space-delimited on the wire, order-insensitive.
#[derive(Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ScopeSet(BTreeSet<String>);

impl ScopeSet {
    /// Parse a space-delimited scope string (an empty string is the empty set).
    pub fn parse(s: &str) -> Result<Self, Rejection> {
        if s.len() > SCOPE_LEN_MAX {
            return Err(Rejection::TooLarge);
        }
        let mut set = BTreeSet::new();
        for token in s.split(' ').filter(|t| !t.is_empty()) {
            if !token.bytes().all(is_scope_char) {
                return Err(Rejection::Malformed);
            }
            set.insert(token.to_owned());
        }
        if set.len() > SCOPES_MAX {
            return Err(Rejection::TooLarge);
        }
        Ok(Self(set))
    }

    /// A set from trusted, already valid tokens (configuration).
    pub fn from_tokens<I: IntoIterator<Item = S>, S: Into<String>>(tokens: I) -> Self {
        Self(tokens.into_iter().map(Into::into).collect())
    }

    /// Is every scope of `self` in `other`?
    pub fn is_subset(&self, other: &Self) -> bool {
        self.0.is_subset(&other.0)
    }

    /// Does the set contain `scope`?
    pub fn contains(&self, scope: &str) -> bool {
        self.0.contains(scope)
    }

    /// Is the set empty?
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The scopes of `self` missing from `granted`.
    pub fn missing_from(&self, granted: &Self) -> Self {
        Self(self.0.difference(&granted.0).cloned().collect())
    }

    /// The tokens, sorted.
    pub fn iter(&self) -> impl Iterator<Item = &str> {
        self.0.iter().map(String::as_str)
    }

    /// `None` when empty, else the wire string.
    pub fn to_option(&self) -> Option<String> {
        (!self.is_empty()).then(|| self.to_string())
    }
}

impl fmt::Display for ScopeSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut first = true;
        for s in &self.0 {
            if !first {
                f.write_str(" ")?;
            }
            f.write_str(s)?;
            first = false;
        }
        Ok(())
    }
}

/// `%x21 / %x23-5B / %x5D-7E`
pub(crate) fn is_scope_char(b: u8) -> bool {
    b == 0x21 || (0x23..=0x5b).contains(&b) || (0x5d..=0x7e).contains(&b)
}

/// A `client_id`, as issued by the authorization server.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct ClientId(pub String);

impl ClientId {
    /// The id as sent on the wire.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// The resource owner: who approved the request (the `sub` of the tokens).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Subject(pub String);

/// The SHA-256 digest of a secret the authorization server hands out (authorization code,
/// refresh token, client secret). The server keeps and looks up only this: a memory dump or a
/// `Debug` print of its state yields no usable credential, and table lookups compare digests,
/// never the secret's bytes (RFC 9700 §4.14.2 and §2.4: secrets stored so that their
/// disclosure does not compromise them).
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SecretDigest([u8; 32]);

impl SecretDigest {
    /// The digest of `secret`.
    pub fn of(secret: &str) -> Self {
        use sha2::Digest as _;
        Self(sha2::Sha256::digest(secret.as_bytes()).into())
    }

    /// A digest of these 32 bytes.
    pub(crate) fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }

    /// The 32 bytes.
    pub(crate) fn into_bytes(self) -> [u8; 32] {
        self.0
    }

    /// The digest in lowercase hex (64 characters), for a durable store.
    pub fn to_hex(&self) -> String {
        self.0.iter().map(|b| format!("{b:02x}")).collect()
    }

    /// A digest from [`SecretDigest::to_hex`]'s form; `None` unless 64 hex digits.
    pub fn from_hex(hex: &str) -> Option<Self> {
        if hex.len() != 64 || !hex.is_ascii() {
            return None;
        }
        let mut out = [0u8; 32];
        for (i, byte) in out.iter_mut().enumerate() {
            *byte = u8::from_str_radix(hex.get(2 * i..2 * i + 2)?, 16).ok()?;
        }
        Some(Self(out))
    }

    /// Is this the digest of `secret`? Compared in constant time.
    pub fn matches(&self, secret: &str) -> bool {
        use subtle::ConstantTimeEq as _;
        bool::from(self.0.ct_eq(&Self::of(secret).0))
    }
}

impl fmt::Debug for SecretDigest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("sha256:")?;
        for b in self.0.iter().take(4) {
            write!(f, "{b:02x}")?;
        }
        f.write_str("…")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn scope_sets() {
        let s = ScopeSet::parse("b a  a").unwrap();
        assert_eq!(s.to_string(), "a b");
        assert!(ScopeSet::parse("a\"b").is_err());
        assert!(ScopeSet::parse("a\\b").is_err());
        assert!(ScopeSet::parse("").unwrap().is_empty());
        assert!(ScopeSet::parse("a").unwrap().is_subset(&s));
        assert_eq!(
            ScopeSet::parse("a c").unwrap().missing_from(&s).to_string(),
            "c"
        );
    }

    #[test]
    fn a_secret_digest_matches_its_secret_only() {
        let d = SecretDigest::of("s3cret");
        assert!(d.matches("s3cret"));
        assert!(!d.matches("s3cret "));
        assert_eq!(d, SecretDigest::of("s3cret"));
        assert!(!format!("{d:?}").contains("s3cret"));
    }

    proptest! {
        #[test]
        fn scope_parse_never_panics_and_round_trips(s in "\\PC{0,100}") {
            if let Ok(set) = ScopeSet::parse(&s) {
                prop_assert_eq!(ScopeSet::parse(&set.to_string()).unwrap(), set);
            }
        }
    }
}
