//! Memos of the cryptography the model repeats in every state: Ed25519 signing of access
//! tokens at the model's authorization servers, and verification of their signatures at the
//! honest MCP server. Both are pure functions of their inputs (Ed25519 signatures are
//! deterministic), so a memo returns exactly what the computation returns: the states, their
//! fingerprints and every property's verdict are those of a model without memos. Only the
//! model attaches them; the servers sign and verify every time.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, LazyLock, Mutex, PoisonError};

use mcp_auth_proto::jwt::{Alg, Ed25519Signer, SignError, TokenSigner, VerificationMemo};

/// Entries a memo holds before it starts again empty (a bound on memory; the answers do not
/// depend on it).
const ENTRIES_MAX: usize = 1 << 20;

/// A verification memo: (public key, signing input, signature) → valid.
#[derive(Debug, Default)]
pub struct Verifications {
    seen: Mutex<BTreeMap<Box<[u8]>, bool>>,
}

impl Verifications {
    /// An empty memo, shared.
    pub fn shared() -> Arc<dyn VerificationMemo> {
        Arc::new(Self::default())
    }
}

/// The memo's key: each part with its length, so that different triples never give the same
/// bytes.
fn entry(parts: &[&[u8]]) -> Vec<u8> {
    let mut key = Vec::with_capacity(parts.iter().map(|p| p.len() + 8).sum());
    for part in parts {
        key.extend_from_slice(&(part.len() as u64).to_le_bytes());
        key.extend_from_slice(part);
    }
    key
}

impl VerificationMemo for Verifications {
    fn verified(
        &self,
        key: &[u8],
        signing_input: &[u8],
        signature: &[u8],
        verify: &dyn Fn() -> bool,
    ) -> bool {
        let entry = entry(&[key, signing_input, signature]);
        if let Some(&valid) = self
            .seen
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(entry.as_slice())
        {
            return valid;
        }
        // Verified outside the lock: two threads may both verify a new triple, with the
        // same answer.
        let valid = verify();
        let mut seen = self.seen.lock().unwrap_or_else(PoisonError::into_inner);
        if seen.len() >= ENTRIES_MAX {
            seen.clear();
        }
        seen.insert(entry.into(), valid);
        valid
    }
}

/// An [`Ed25519Signer`] that remembers the signature of every message it signed.
pub struct MemoSigner {
    inner: Ed25519Signer,
    signed: Mutex<BTreeMap<Box<[u8]>, Vec<u8>>>,
}

impl MemoSigner {
    /// Sign with `inner`, remembering.
    pub fn new(inner: Ed25519Signer) -> Self {
        Self {
            inner,
            signed: Mutex::default(),
        }
    }
}

impl TokenSigner for MemoSigner {
    fn alg(&self) -> Alg {
        self.inner.alg()
    }

    fn kid(&self) -> &str {
        self.inner.kid()
    }

    fn sign(&self, message: &[u8]) -> Result<Vec<u8>, SignError> {
        if let Some(signature) = self
            .signed
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(message)
        {
            return Ok(signature.clone());
        }
        let signature = self.inner.sign(message)?;
        let mut signed = self.signed.lock().unwrap_or_else(PoisonError::into_inner);
        if signed.len() >= ENTRIES_MAX {
            signed.clear();
        }
        signed.insert(message.into(), signature.clone());
        Ok(signature)
    }

    fn public_jwk(&self) -> jsonwebtoken::jwk::Jwk {
        self.inner.public_jwk()
    }
}

/// Tokens [`claims`] remembers before it starts again empty (a token and its claims take
/// about a kilobyte).
const CLAIMS_MAX: usize = 1 << 16;

/// The claims of every access token read so far (the audit, the properties and the reports
/// read the same tokens in many states): token → what `parse` gives.
static CLAIMS: LazyLock<Mutex<HashMap<String, Option<crate::Claims>>>> =
    LazyLock::new(Mutex::default);

/// `parse(token)`, remembered (a pure function of the token).
pub(crate) fn claims(
    token: &str,
    parse: fn(&str) -> Option<crate::Claims>,
) -> Option<crate::Claims> {
    if let Some(claims) = CLAIMS
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .get(token)
    {
        return claims.clone();
    }
    let claims = parse(token);
    let mut memo = CLAIMS.lock().unwrap_or_else(PoisonError::into_inner);
    if memo.len() >= CLAIMS_MAX {
        memo.clear();
    }
    memo.insert(token.to_owned(), claims.clone());
    claims
}

/// FNV-1a of the text written to it (formatting into it allocates nothing).
#[derive(Clone, Copy, Debug)]
pub struct Fnv1a(pub u64);

impl Default for Fnv1a {
    fn default() -> Self {
        Self(0xcbf2_9ce4_8422_2325)
    }
}

impl std::fmt::Write for Fnv1a {
    fn write_str(&mut self, s: &str) -> std::fmt::Result {
        self.0 = s.bytes().fold(self.0, |h, b| {
            (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
        });
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn memo_signer_signs_as_the_signer() {
        let plain = Ed25519Signer::from_seed("k1", [7; 32]);
        let memo = MemoSigner::new(Ed25519Signer::from_seed("k1", [7; 32]));
        for message in [b"a.b".as_slice(), b"c.d", b"a.b"] {
            assert_eq!(memo.sign(message).unwrap(), plain.sign(message).unwrap());
        }
        assert_eq!(memo.signed.lock().unwrap().len(), 2);
        assert_eq!(memo.public_jwk(), plain.public_jwk());
    }

    #[test]
    fn fnv1a_of_pieces_is_fnv1a_of_the_whole() {
        use std::fmt::Write as _;
        let mut pieces = Fnv1a::default();
        write!(pieces, "{:?}/{}", "ab", 3).unwrap();
        let whole = "\"ab\"/3".bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
            (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
        });
        assert_eq!(pieces.0, whole);
        assert_eq!(Fnv1a::default().0, 0xcbf2_9ce4_8422_2325);
    }

    #[test]
    fn memo_keys_do_not_collide() {
        assert_ne!(entry(&[b"ab", b"c"]), entry(&[b"a", b"bc"]));
    }
}
