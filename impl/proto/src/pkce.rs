//! PKCE (RFC 7636) as OAuth 2.1 and MCP profile it: S256 only.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::Serialize;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::entropy::{Entropy, mint};
use crate::error::Rejection;

/// The only `code_challenge_method` we accept or send.
// spec: PF-1
pub const S256: &str = "S256";

/// A `code_verifier`: 43 to 128 characters from `[A-Za-z0-9-._~]` (RFC 7636 §4.1).
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct CodeVerifier(String);

impl std::fmt::Debug for CodeVerifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CodeVerifier(..)")
    }
}

impl CodeVerifier {
    /// A fresh verifier: 32 random octets, base64url (43 characters), as RFC 7636 recommends.
    // spec: PKCE-3, PKCE-4
    pub fn generate(entropy: &mut impl Entropy) -> Self {
        Self(mint(entropy))
    }

    /// Check the RFC 7636 §4.1 syntax.
    pub fn parse(s: &str) -> Result<Self, Rejection> {
        let ok_len = (43..=128).contains(&s.len());
        let ok_chars = s
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~'));
        if ok_len && ok_chars {
            Ok(Self(s.to_owned()))
        } else {
            Err(Rejection::MalformedCodeVerifier)
        }
    }

    /// The verifier as sent in the token request.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Its S256 challenge.
    pub fn challenge(&self) -> CodeChallenge {
        CodeChallenge(URL_SAFE_NO_PAD.encode(Sha256::digest(self.0.as_bytes())))
    }
}

/// An S256 `code_challenge`: BASE64URL(SHA256(verifier)), 43 characters without padding.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct CodeChallenge(String);

/// Evidence that a `code_verifier` matched its challenge. Only [`CodeChallenge::verify`] makes
/// one, and the authorization server's token issuance takes one, so skipping PKCE is a compile
/// error rather than a review finding.
#[derive(Debug)]
pub struct PkceVerified(());

impl PkceVerified {
    /// Evidence without verification: only for the model's `skip_pkce` and `optional_pkce`
    /// mutations.
    #[cfg(mcp_auth_mutations)]
    pub(crate) fn skipped() -> Self {
        Self(())
    }
}

impl CodeChallenge {
    /// No challenge: what a code is bound to when the model's `optional_pkce` mutation let an
    /// authorization request without `code_challenge` through. Empty, so it differs from
    /// every challenge [`CodeChallenge::from_request`] accepts (43 characters), and no
    /// verifier matches it; only `optional_pkce` redeems such a code, without a verifier.
    #[cfg(mcp_auth_mutations)]
    pub(crate) fn absent() -> Self {
        Self(String::new())
    }

    /// Is this [`CodeChallenge::absent`]?
    #[cfg(mcp_auth_mutations)]
    pub(crate) fn is_absent(&self) -> bool {
        self.0.is_empty()
    }

    /// Validate an authorization request's challenge and method: the method must be `S256`
    /// (an absent method means `plain`, which we refuse) and the challenge 43 base64url chars.
    // spec: PKCE-7, PKCE-8
    pub fn from_request(challenge: Option<&str>, method: Option<&str>) -> Result<Self, Rejection> {
        let challenge = challenge.ok_or(Rejection::MissingCodeChallenge)?;
        if method != Some(S256) {
            return Err(Rejection::ChallengeMethodNotS256);
        }
        let well_formed = challenge.len() == 43
            && challenge
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
            && URL_SAFE_NO_PAD
                .decode(challenge)
                .is_ok_and(|d| d.len() == 32);
        if well_formed {
            Ok(Self(challenge.to_owned()))
        } else {
            Err(Rejection::MalformedCodeChallenge)
        }
    }

    /// The challenge as sent.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Recompute S256 of `verifier` and compare in constant time (RFC 7636 §4.6).
    // spec: PKCE-9
    pub fn verify(&self, verifier: Option<&str>) -> Result<PkceVerified, Rejection> {
        let verifier = CodeVerifier::parse(verifier.ok_or(Rejection::MissingCodeVerifier)?)?;
        let expected = verifier.challenge();
        if bool::from(self.0.as_bytes().ct_eq(expected.0.as_bytes())) {
            Ok(PkceVerified(()))
        } else {
            Err(Rejection::PkceMismatch)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::entropy::Sequential;
    use proptest::prelude::*;

    // spec: PKCE-2
    #[test]
    fn rfc7636_appendix_b_vector() {
        let v = CodeVerifier::parse("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk").unwrap();
        assert_eq!(
            v.challenge().as_str(),
            "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
        );
    }

    // spec: PKCE-3, PKCE-4, PKCE-5
    #[test]
    fn generated_verifiers_are_fresh_and_valid() {
        let mut e = Sequential::default();
        let a = CodeVerifier::generate(&mut e);
        let b = CodeVerifier::generate(&mut e);
        assert_ne!(a, b);
        assert!(CodeVerifier::parse(a.as_str()).is_ok());
        assert_eq!(a.as_str().len(), 43);
    }

    // spec: PKCE-3
    #[test]
    fn verifier_syntax() {
        assert_eq!(
            CodeVerifier::parse(&"a".repeat(42)),
            Err(Rejection::MalformedCodeVerifier)
        );
        assert!(CodeVerifier::parse(&"a".repeat(43)).is_ok());
        assert!(CodeVerifier::parse(&"a".repeat(128)).is_ok());
        assert_eq!(
            CodeVerifier::parse(&"a".repeat(129)),
            Err(Rejection::MalformedCodeVerifier)
        );
        assert!(CodeVerifier::parse(&format!("{}+", "a".repeat(43))).is_err());
    }

    // spec: PKCE-7, PKCE-8, PKCE-6
    #[test]
    fn challenge_method_must_be_s256() {
        let c = CodeVerifier::generate(&mut Sequential::default()).challenge();
        assert_eq!(
            CodeChallenge::from_request(None, Some("S256")),
            Err(Rejection::MissingCodeChallenge)
        );
        assert_eq!(
            CodeChallenge::from_request(Some(c.as_str()), None),
            Err(Rejection::ChallengeMethodNotS256)
        );
        assert_eq!(
            CodeChallenge::from_request(Some(c.as_str()), Some("plain")),
            Err(Rejection::ChallengeMethodNotS256)
        );
        assert_eq!(
            CodeChallenge::from_request(Some("short"), Some("S256")),
            Err(Rejection::MalformedCodeChallenge)
        );
        assert_eq!(
            CodeChallenge::from_request(Some(c.as_str()), Some("S256")),
            Ok(c)
        );
    }

    // spec: PKCE-9
    #[test]
    fn verify_requires_the_matching_verifier() {
        let mut e = Sequential::default();
        let v = CodeVerifier::generate(&mut e);
        let other = CodeVerifier::generate(&mut e);
        let c = v.challenge();
        assert!(c.verify(Some(v.as_str())).is_ok());
        assert!(matches!(
            c.verify(Some(other.as_str())),
            Err(Rejection::PkceMismatch)
        ));
        assert!(matches!(
            c.verify(None),
            Err(Rejection::MissingCodeVerifier)
        ));
    }

    proptest! {
        // spec: PKCE-9, PKCE-3
        #[test]
        fn verify_never_panics_and_accepts_only_the_preimage(s in "\\PC{0,200}") {
            let c = CodeVerifier::parse(&"x".repeat(43)).unwrap().challenge();
            let r = c.verify(Some(&s));
            prop_assert_eq!(r.is_ok(), s == "x".repeat(43));
        }

        #[test]
        fn valid_verifiers_round_trip(s in "[A-Za-z0-9._~-]{43,128}") {
            let v = CodeVerifier::parse(&s).unwrap();
            prop_assert!(v.challenge().verify(Some(&s)).is_ok());
            prop_assert!(CodeChallenge::from_request(Some(v.challenge().as_str()), Some("S256")).is_ok());
        }
    }
}
