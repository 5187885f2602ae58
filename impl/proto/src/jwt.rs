//! JWT access tokens (RFC 9068): minting on the authorization server, validation on the
//! resource server, and the JWK Set between them. Cryptography is aws-lc-rs (the backend
//! jsonwebtoken uses too): verification keys are parsed once, when the JWK Set is installed,
//! and the Ed25519 signing key once, when the signer is made. The parsing and every check
//! around the signature are here, so that the token is decoded once (header and claims
//! borrowed from one buffer) and each rule has its own [`Rejection`].

use std::borrow::Cow;
use std::fmt;
use std::sync::Arc;

use aws_lc_rs::signature::{
    ECDSA_P256_SHA256_FIXED, ED25519, Ed25519KeyPair, ParsedPublicKey, RSA_PKCS1_2048_8192_SHA256,
    RsaPublicKeyComponents,
};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::jwk::{
    AlgorithmParameters, EllipticCurve, Jwk, JwkSet, KeyAlgorithm, PublicKeyUse,
};
use jsonwebtoken::{Algorithm, EncodingKey};
use serde::de::IgnoredAny;
use serde::{Deserialize, Serialize};

use crate::error::Rejection;
use crate::time::UnixTime;
use crate::types::ScopeSet;

/// The JWS algorithms we sign and accept. The allow-list excludes `none` and every HMAC
/// algorithm by construction.
// spec: JWT-2, JWT-9, JWT-14
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Alg {
    /// Ed25519 (deterministic; our default).
    EdDSA,
    /// ECDSA P-256 with SHA-256.
    ES256,
    /// RSASSA-PKCS1-v1_5 with SHA-256 (mandatory to support, RFC 9068 §2.1).
    RS256,
}

impl Alg {
    /// Every algorithm, in preference order.
    pub const ALL: [Self; 3] = [Self::EdDSA, Self::ES256, Self::RS256];

    /// The JOSE name.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::EdDSA => "EdDSA",
            Self::ES256 => "ES256",
            Self::RS256 => "RS256",
        }
    }

    /// Parse a JOSE name; anything outside the allow-list is `None`.
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|a| a.as_str() == name)
    }

    /// jsonwebtoken's algorithm.
    pub const fn jsonwebtoken(self) -> Algorithm {
        match self {
            Self::EdDSA => Algorithm::EdDSA,
            Self::ES256 => Algorithm::ES256,
            Self::RS256 => Algorithm::RS256,
        }
    }
}

/// Why a signer could not sign.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SignError(pub String);

impl fmt::Display for SignError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "signing failed: {}", self.0)
    }
}

impl std::error::Error for SignError {}

/// Something that signs JWS inputs with one key.
///
/// The core ships [`Ed25519Signer`], which is deterministic. Signers that need OS randomness
/// (ECDSA) or load keys from files are injected by the driver.
pub trait TokenSigner: Send + Sync {
    /// The algorithm of this key.
    fn alg(&self) -> Alg;
    /// The key id published in the JWK Set and put in every token header.
    fn kid(&self) -> &str;
    /// Sign `message` (`base64url(header) "." base64url(claims)`); returns the raw signature.
    fn sign(&self, message: &[u8]) -> Result<Vec<u8>, SignError>;
    /// The public key as a JWK (with `kid`, `alg` and `use`).
    fn public_jwk(&self) -> Jwk;
}

/// A shareable handle on a [`TokenSigner`] that is a plain value (`Clone + Eq + Hash + Debug`,
/// compared by its public JWK), so the authorization server state stays model-checkable.
#[derive(Clone)]
pub struct Signer {
    inner: Arc<dyn TokenSigner>,
    jwk: Jwk,
}

impl Signer {
    /// Wrap a signer.
    pub fn new(signer: impl TokenSigner + 'static) -> Self {
        let jwk = signer.public_jwk();
        Self {
            inner: Arc::new(signer),
            jwk,
        }
    }

    /// The algorithm.
    pub fn alg(&self) -> Alg {
        self.inner.alg()
    }

    /// The key id.
    pub fn kid(&self) -> &str {
        self.inner.kid()
    }

    /// The public key.
    pub fn public_jwk(&self) -> &Jwk {
        &self.jwk
    }

    /// Sign claims as an RFC 9068 access token: header `{"alg","typ":"at+jwt","kid"}`.
    // spec: JWT-1, JWT-2
    pub fn sign_access_token(&self, claims: &AccessClaims) -> Result<String, SignError> {
        #[derive(Serialize)]
        struct Header<'a> {
            alg: &'a str,
            typ: &'a str,
            kid: &'a str,
        }
        let header = Header {
            alg: self.alg().as_str(),
            typ: "at+jwt",
            kid: self.kid(),
        };
        let header = serde_json::to_vec(&header).map_err(|e| SignError(e.to_string()))?;
        let claims = serde_json::to_vec(claims).map_err(|e| SignError(e.to_string()))?;
        let mut token = URL_SAFE_NO_PAD.encode(header);
        token.push('.');
        URL_SAFE_NO_PAD.encode_string(claims, &mut token);
        let signature = self.inner.sign(token.as_bytes())?;
        token.push('.');
        URL_SAFE_NO_PAD.encode_string(signature, &mut token);
        Ok(token)
    }

    /// Sign any JSON header and claims with this key, as they are (no member is added or
    /// checked): the probe's test tokens ([`crate::probe`]), which break one claim rule each.
    pub fn sign_json(
        &self,
        header: &serde_json::Value,
        claims: &serde_json::Value,
    ) -> Result<String, SignError> {
        let mut token = URL_SAFE_NO_PAD.encode(header.to_string());
        token.push('.');
        URL_SAFE_NO_PAD.encode_string(claims.to_string(), &mut token);
        let signature = self.inner.sign(token.as_bytes())?;
        token.push('.');
        URL_SAFE_NO_PAD.encode_string(signature, &mut token);
        Ok(token)
    }
}

impl fmt::Debug for Signer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Signer")
            .field("alg", &self.alg())
            .field("kid", &self.kid())
            .finish()
    }
}

impl PartialEq for Signer {
    fn eq(&self, other: &Self) -> bool {
        self.jwk == other.jwk
    }
}

impl Eq for Signer {}

impl std::hash::Hash for Signer {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.jwk.hash(state);
    }
}

/// An Ed25519 signer from a 32-byte seed. Ed25519 signatures are deterministic, so the same
/// claims give the same token: the model checker relies on that.
pub struct Ed25519Signer {
    kid: String,
    key: EncodingKey,
    /// The key pair, parsed once (deriving the public key costs about as much as a signature).
    pair: Ed25519KeyPair,
}

/// DER prefix of a PKCS#8 v1 Ed25519 private key (RFC 8410 §7), followed by the 32-byte seed.
const ED25519_PKCS8_V1_PREFIX: [u8; 16] = [
    0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22, 0x04, 0x20,
];

impl Ed25519Signer {
    /// A signer for the key with this seed.
    pub fn from_seed(kid: impl Into<String>, seed: [u8; 32]) -> Self {
        let mut der = ED25519_PKCS8_V1_PREFIX.to_vec();
        der.extend_from_slice(&seed);
        Self {
            kid: kid.into(),
            key: EncodingKey::from_ed_der(&der),
            pair: Ed25519KeyPair::from_seed_unchecked(&seed)
                .expect("every 32-byte string is an Ed25519 seed"),
        }
    }

    /// A signer from a PKCS#8 v1 DER private key (the form OpenSSL writes).
    pub fn from_pkcs8_der(kid: impl Into<String>, der: &[u8]) -> Result<Self, SignError> {
        let key = EncodingKey::from_ed_der(der);
        Jwk::from_encoding_key(&key, Algorithm::EdDSA).map_err(|e| SignError(e.to_string()))?;
        // The same parse jsonwebtoken's signer made on every call, made once.
        let pair = Ed25519KeyPair::from_pkcs8(der).map_err(|e| SignError(e.to_string()))?;
        Ok(Self {
            kid: kid.into(),
            key,
            pair,
        })
    }
}

impl TokenSigner for Ed25519Signer {
    fn alg(&self) -> Alg {
        Alg::EdDSA
    }

    fn kid(&self) -> &str {
        &self.kid
    }

    fn sign(&self, message: &[u8]) -> Result<Vec<u8>, SignError> {
        Ok(self.pair.sign(message).as_ref().to_vec())
    }

    fn public_jwk(&self) -> Jwk {
        let mut jwk = Jwk::from_encoding_key(&self.key, Algorithm::EdDSA).unwrap_or_else(|_| Jwk {
            common: Default::default(),
            algorithm: AlgorithmParameters::Other(Default::default()),
        });
        complete_jwk(&mut jwk, &self.kid, Alg::EdDSA);
        jwk
    }
}

/// Set `kid`, `alg` and `use: sig` on a public JWK.
pub fn complete_jwk(jwk: &mut Jwk, kid: &str, alg: Alg) {
    jwk.common.key_id = Some(kid.to_owned());
    jwk.common.public_key_use = Some(PublicKeyUse::Signature);
    jwk.common.key_algorithm = Some(match alg {
        Alg::EdDSA => KeyAlgorithm::EdDSA,
        Alg::ES256 => KeyAlgorithm::ES256,
        Alg::RS256 => KeyAlgorithm::RS256,
    });
}

/// The `aud` claim: a string or an array of strings (RFC 7519 §4.1.3).
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Audience {
    /// One audience.
    One(String),
    /// Several audiences.
    Many(Vec<String>),
}

impl Audience {
    /// Does the claim name `resource`, by exact string comparison?
    pub fn contains(&self, resource: &str) -> bool {
        match self {
            Self::One(a) => a == resource,
            Self::Many(v) => v.iter().any(|a| a == resource),
        }
    }
}

/// The claims of an access token (RFC 9068 §2.2).
// spec: JWT-3
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct AccessClaims {
    /// Issuer.
    pub iss: String,
    /// Subject: the user who consented.
    pub sub: String,
    /// Audience: the canonical resource URI.
    pub aud: Audience,
    /// Expiry, seconds since the epoch.
    pub exp: u64,
    /// Issued at.
    pub iat: u64,
    /// Not before. When present it must be a number: `null` is refused, not read as absent.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "present_value"
    )]
    pub nbf: Option<u64>,
    /// Unique token id.
    pub jti: String,
    /// The client the token was issued to.
    pub client_id: String,
    /// Granted scopes, space-separated. When present it must be a string (`null` is refused).
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "present_value"
    )]
    pub scope: Option<String>,
}

/// An optional claim that, when present, must have its type: `null` is refused rather than
/// read as "absent" (as jsonwebtoken does for `nbf`).
// spec: JWT-11
fn present_value<'de, D, T>(deserializer: D) -> Result<Option<T>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Deserialize<'de>,
{
    T::deserialize(deserializer).map(Some)
}

/// [`present_value`] for a borrowed string.
fn present_str<'de: 'a, 'a, D>(deserializer: D) -> Result<Option<Cow<'a, str>>, D::Error>
where
    D: serde::Deserializer<'de>,
{
    CowStr::deserialize(deserializer).map(|s| Some(s.0))
}

/// The most keys a JWK Set may hold.
pub const KEYS_MAX: usize = 16;
/// Default bound on the length of an access token.
pub const TOKEN_LEN_MAX: usize = 8 * 1024;
/// The largest clock-skew leeway the validator allows.
pub const LEEWAY_MAX_SECS: u64 = 60;

/// One verification key of the trusted issuer, parsed for aws-lc-rs when the JWK Set is
/// installed. `key` is `None` when the JWK's members decode but do not form a valid key of its
/// type (a point off the curve, say): the key is still selectable, and every signature then
/// fails, exactly as when the key was parsed at each verification.
#[derive(Clone)]
struct VerifyingKey {
    kid: Option<String>,
    alg: Alg,
    key: Option<Arc<PublicKey>>,
}

/// A parsed public key and the bytes it was parsed from (what a [`VerificationMemo`] is keyed
/// by).
struct PublicKey {
    parsed: ParsedPublicKey,
    /// The algorithm's name, then the key: the Ed25519 `x`, the uncompressed P-256 point, or
    /// the RSA modulus's length (4 bytes, big-endian), modulus and exponent.
    bytes: Box<[u8]>,
}

/// Parse a JWK's public key for `alg`: `Err` when a member is not base64url (the key is then
/// skipped, as jsonwebtoken's `DecodingKey::from_jwk` refused it), `Ok(None)` when the bytes do
/// not form a key aws-lc-rs accepts for `alg`.
fn parse_key(jwk: &Jwk, alg: Alg) -> Result<Option<PublicKey>, ()> {
    let b64 = |s: &str| URL_SAFE_NO_PAD.decode(s).map_err(|_| ());
    let mut bytes = alg.as_str().as_bytes().to_vec();
    let parsed = match (&jwk.algorithm, alg) {
        (AlgorithmParameters::OctetKeyPair(p), Alg::EdDSA) => {
            let x = b64(&p.x)?;
            bytes.extend_from_slice(&x);
            ParsedPublicKey::new(&ED25519, x).ok()
        }
        (AlgorithmParameters::EllipticCurve(p), Alg::ES256) => {
            let (x, y) = (b64(&p.x)?, b64(&p.y)?);
            let mut point = Vec::with_capacity(1 + x.len() + y.len());
            point.push(0x04);
            point.extend_from_slice(&x);
            point.extend_from_slice(&y);
            bytes.extend_from_slice(&point);
            ParsedPublicKey::new(&ECDSA_P256_SHA256_FIXED, point).ok()
        }
        (AlgorithmParameters::RSA(p), Alg::RS256) => {
            let (n, e) = (b64(&p.n)?, b64(&p.e)?);
            bytes.extend_from_slice(&u32::try_from(n.len()).map_err(|_| ())?.to_be_bytes());
            bytes.extend_from_slice(&n);
            bytes.extend_from_slice(&e);
            RsaPublicKeyComponents { n: &n, e: &e }
                .to_parsed_public_key(&RSA_PKCS1_2048_8192_SHA256)
                .ok()
        }
        _ => return Err(()),
    };
    Ok(parsed.map(|parsed| PublicKey {
        parsed,
        bytes: bytes.into(),
    }))
}

/// A memo of signature verifications that a caller may attach to a [`KeySet`]
/// ([`KeySet::with_verification_memo`]) so that a signature it has already checked is not
/// checked again. The servers never attach one: they verify every signature. The model
/// checker does, because it validates the same few tokens in millions of states.
///
/// An implementation must be a pure memo of `verify`: it returns exactly what `verify()`
/// returns for these bytes (calling it, or returning the answer an earlier call gave for the
/// same `key`, `signing_input` and `signature`). Signature verification is a function of those
/// three, so every validation then gives the answer it gives without a memo.
pub trait VerificationMemo: Send + Sync {
    /// Whether `signature` is a valid signature of `signing_input` under `key` (the algorithm's
    /// name followed by the public key's bytes), as `verify` answers.
    fn verified(
        &self,
        key: &[u8],
        signing_input: &[u8],
        signature: &[u8],
        verify: &dyn Fn() -> bool,
    ) -> bool;
}

/// The trusted issuer's verification keys, parsed once from its JWK Set. Compared and hashed by
/// the JWK Set it came from.
#[derive(Clone)]
pub struct KeySet {
    source: JwkSet,
    keys: Vec<VerifyingKey>,
    /// The headers an issuer's signer writes for these keys, already parsed (see
    /// [`KnownHeader`]).
    headers: Arc<[KnownHeader]>,
    /// A memo of verifications ([`KeySet::with_verification_memo`]); `None` in the servers.
    memo: Option<Arc<dyn VerificationMemo>>,
}

/// A JOSE header as a signer writes it for one of the keys (`{"alg","typ":"at+jwt","kid"}` in
/// the two usual member orders), base64url-encoded, with what [`parse_header`] reads from it.
/// [`validate`] recognizes these bytes and skips decoding and parsing them again: the fields
/// were obtained by the very same decoding and parsing, when the keys were installed, so every
/// header check gives the same answer. Any other header is decoded and parsed as usual.
struct KnownHeader {
    b64: String,
    alg: String,
    typ: Option<String>,
    kid: Option<String>,
    forbidden: bool,
}

impl KnownHeader {
    fn view(&self) -> HeaderView<'_> {
        HeaderView {
            alg: &self.alg,
            typ: self.typ.as_deref(),
            kid: self.kid.as_deref(),
            forbidden: self.forbidden,
        }
    }
}

/// The header fields the checks read.
struct HeaderView<'a> {
    alg: &'a str,
    typ: Option<&'a str>,
    kid: Option<&'a str>,
    /// `crit`, `jku`, `jwk`, `x5u` or `x5c` present.
    forbidden: bool,
}

impl<'a> JoseHeader<'a> {
    fn view(&'a self) -> HeaderView<'a> {
        HeaderView {
            alg: &self.alg,
            typ: self.typ.as_deref(),
            kid: self.kid.as_deref(),
            forbidden: self.crit || self.jku || self.jwk || self.x5u || self.x5c,
        }
    }
}

/// The [`KnownHeader`]s of a set of keys.
fn known_headers(keys: &[VerifyingKey]) -> Arc<[KnownHeader]> {
    #[derive(Serialize)]
    struct AlgFirst<'a> {
        alg: &'a str,
        typ: &'a str,
        kid: &'a str,
    }
    #[derive(Serialize)]
    struct TypFirst<'a> {
        typ: &'a str,
        alg: &'a str,
        kid: &'a str,
    }
    let mut known = Vec::new();
    for key in keys {
        let Some(kid) = key.kid.as_deref() else {
            continue;
        };
        let (alg, typ) = (key.alg.as_str(), "at+jwt");
        for json in [
            serde_json::to_vec(&AlgFirst { alg, typ, kid }),
            serde_json::to_vec(&TypFirst { typ, alg, kid }),
        ]
        .into_iter()
        .flatten()
        {
            let b64 = URL_SAFE_NO_PAD.encode(json);
            let mut buf = vec![0u8; decoded_len_max(b64.len())];
            if let Ok(h) = parse_header(&b64, &mut buf) {
                let view = h.view();
                known.push(KnownHeader {
                    alg: view.alg.to_owned(),
                    typ: view.typ.map(str::to_owned),
                    kid: view.kid.map(str::to_owned),
                    forbidden: view.forbidden,
                    b64,
                });
            }
        }
    }
    known.into()
}

impl KeySet {
    /// An empty set (no token verifies).
    pub fn empty() -> Self {
        Self {
            source: JwkSet { keys: Vec::new() },
            keys: Vec::new(),
            headers: Arc::new([]),
            memo: None,
        }
    }

    /// Parse a JWK Set. Keys that are not signature keys of an allowed algorithm are skipped
    /// (HMAC `oct` keys always are); a key's algorithm comes from its `alg` or, failing that,
    /// from its type and curve, and it is then used with that one algorithm only.
    // spec: JWT-9
    pub fn from_jwks(jwks: &JwkSet) -> Self {
        let keys: Vec<VerifyingKey> = jwks
            .keys
            .iter()
            .take(KEYS_MAX)
            .filter_map(|jwk| {
                if jwk
                    .common
                    .public_key_use
                    .as_ref()
                    .is_some_and(|u| *u != PublicKeyUse::Signature)
                {
                    return None;
                }
                let alg = key_alg(jwk)?;
                let key = parse_key(jwk, alg).ok()?.map(Arc::new);
                Some(VerifyingKey {
                    kid: jwk.common.key_id.clone(),
                    alg,
                    key,
                })
            })
            .collect();
        Self {
            source: jwks.clone(),
            headers: known_headers(&keys),
            keys,
            memo: None,
        }
    }

    /// The same keys, verifying signatures through `memo` (see [`VerificationMemo`]: the
    /// answers are the same; only repeated verifications are skipped). Equality, hashing and
    /// debug output do not see the memo.
    #[must_use]
    pub fn with_verification_memo(mut self, memo: Arc<dyn VerificationMemo>) -> Self {
        self.memo = Some(memo);
        self
    }

    /// Parse a JWK Set document.
    pub fn from_json(json: &[u8]) -> Result<Self, serde_json::Error> {
        Ok(Self::from_jwks(&serde_json::from_slice(json)?))
    }

    /// The JWK Set this was parsed from.
    pub fn jwks(&self) -> &JwkSet {
        &self.source
    }

    /// Number of usable keys.
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    /// No usable keys?
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// Is there a usable key with this id?
    pub fn has_kid(&self, kid: &str) -> bool {
        self.keys.iter().any(|k| k.kid.as_deref() == Some(kid))
    }

    /// The key for a token header. A `kid` may be shared by keys of different types (RFC 7517
    /// §4.5), so the key is the one with that `kid` *and* the header's algorithm; if the `kid`
    /// exists only for other algorithms, that is an algorithm/key mismatch.
    fn select(&self, kid: Option<&str>, alg: Alg) -> Result<&VerifyingKey, Rejection> {
        match kid {
            Some(kid) => {
                let mut with_kid = self
                    .keys
                    .iter()
                    .filter(|k| k.kid.as_deref() == Some(kid))
                    .peekable();
                if with_kid.peek().is_none() {
                    return Err(Rejection::UnknownKey);
                }
                with_kid
                    .find(|k| k.alg == alg)
                    .ok_or(Rejection::AlgorithmKeyMismatch)
            }
            // Without a kid, only an unambiguous single key of that algorithm will do.
            None => {
                let mut it = self.keys.iter().filter(|k| k.alg == alg);
                match (it.next(), it.next()) {
                    (Some(k), None) => Ok(k),
                    _ => Err(Rejection::UnknownKey),
                }
            }
        }
    }
}

impl fmt::Debug for KeySet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kids: Vec<_> = self
            .keys
            .iter()
            .map(|k| (k.kid.as_deref(), k.alg))
            .collect();
        f.debug_struct("KeySet").field("keys", &kids).finish()
    }
}

impl PartialEq for KeySet {
    fn eq(&self, other: &Self) -> bool {
        self.source == other.source
    }
}

impl Eq for KeySet {}

impl std::hash::Hash for KeySet {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.source.hash(state);
    }
}

fn key_alg(jwk: &Jwk) -> Option<Alg> {
    let from_type = match &jwk.algorithm {
        AlgorithmParameters::OctetKeyPair(p) if p.curve == EllipticCurve::Ed25519 => Alg::EdDSA,
        AlgorithmParameters::EllipticCurve(p) if p.curve == EllipticCurve::P256 => Alg::ES256,
        AlgorithmParameters::RSA(_) => Alg::RS256,
        _ => return None,
    };
    match jwk.common.key_algorithm {
        None => Some(from_type),
        Some(KeyAlgorithm::EdDSA) if from_type == Alg::EdDSA => Some(from_type),
        Some(KeyAlgorithm::ES256) if from_type == Alg::ES256 => Some(from_type),
        Some(KeyAlgorithm::RS256) if from_type == Alg::RS256 => Some(from_type),
        Some(_) => None,
    }
}

/// What the resource server requires of every token.
///
/// `#[non_exhaustive]`: build it with [`ValidationPolicy::new`] and the `with_*` methods (or
/// assign fields of a value), so that a new field is not a breaking change.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub struct ValidationPolicy {
    /// The trusted issuer, compared byte for byte with `iss`.
    pub issuer: String,
    /// This resource server's canonical URI, which `aud` must contain.
    pub audience: String,
    /// Clock-skew leeway for `exp` and `nbf`, at most [`LEEWAY_MAX_SECS`].
    pub leeway_secs: u64,
    /// Longest token accepted.
    pub token_len_max: usize,
    /// Algorithms accepted (a subset of [`Alg::ALL`]).
    pub algorithms: Vec<Alg>,
    /// Defenses turned off, for the model checker only (cfg `mcp_auth_mutations`).
    #[cfg(mcp_auth_mutations)]
    pub mutations: crate::mutations::Mutations,
}

impl ValidationPolicy {
    /// Strict defaults: 30 s leeway, 8 KiB tokens, every algorithm of [`Alg::ALL`].
    pub fn new(issuer: impl Into<String>, audience: impl Into<String>) -> Self {
        Self {
            issuer: issuer.into(),
            audience: audience.into(),
            leeway_secs: 30,
            token_len_max: TOKEN_LEN_MAX,
            algorithms: Alg::ALL.to_vec(),
            #[cfg(mcp_auth_mutations)]
            mutations: crate::mutations::Mutations::default(),
        }
    }

    /// Sets [`ValidationPolicy::leeway_secs`], the clock-skew leeway for `exp` and `nbf`
    /// (default 30 s, at most [`LEEWAY_MAX_SECS`]).
    #[must_use]
    pub fn with_leeway_secs(mut self, leeway_secs: u64) -> Self {
        self.leeway_secs = leeway_secs;
        self
    }

    /// Sets [`ValidationPolicy::token_len_max`], the longest token accepted (default
    /// [`TOKEN_LEN_MAX`]).
    #[must_use]
    pub fn with_token_len_max(mut self, token_len_max: usize) -> Self {
        self.token_len_max = token_len_max;
        self
    }

    /// Sets [`ValidationPolicy::algorithms`], the algorithms accepted (a subset of
    /// [`Alg::ALL`], the default).
    #[must_use]
    pub fn with_algorithms(mut self, algorithms: impl IntoIterator<Item = Alg>) -> Self {
        self.algorithms = algorithms.into_iter().collect();
        self
    }
}

/// A validated access token.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Access {
    /// `sub`.
    pub subject: String,
    /// `client_id`.
    pub client_id: String,
    /// Granted scopes.
    pub scopes: ScopeSet,
    /// The audience this server matched (its own canonical URI).
    pub audience: String,
    /// `iss`.
    pub issuer: String,
    /// `exp`.
    pub expires_at: UnixTime,
    /// `jti`.
    pub jti: String,
}

/// The JOSE header members we read. The forbidden ones are recorded by presence, whatever
/// their value: `"jku": null` or `"crit": null` is not a valid value of the parameter, so it is
/// refused rather than read as "absent" (an `Option` would turn `null` into `None`).
/// Strings are borrowed from the decoded header unless they hold escapes.
#[derive(Deserialize)]
struct JoseHeader<'a> {
    #[serde(borrow)]
    alg: Cow<'a, str>,
    #[serde(default, borrow)]
    typ: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    kid: Option<Cow<'a, str>>,
    #[serde(default, deserialize_with = "present")]
    crit: bool,
    #[serde(default, deserialize_with = "present")]
    jku: bool,
    #[serde(default, deserialize_with = "present")]
    jwk: bool,
    #[serde(default, deserialize_with = "present")]
    x5u: bool,
    #[serde(default, deserialize_with = "present")]
    x5c: bool,
}

/// Decode and parse a base64url JOSE header into `buf` (at least
/// `decoded_len_max(b64.len())` bytes).
fn parse_header<'a>(b64: &str, buf: &'a mut [u8]) -> Result<JoseHeader<'a>, Rejection> {
    let len = URL_SAFE_NO_PAD
        .decode_slice(b64, &mut *buf)
        .map_err(|_| Rejection::TokenMalformed)?;
    if !is_json_object(&buf[..len]) {
        return Err(Rejection::TokenMalformed);
    }
    serde_json::from_slice(&buf[..len]).map_err(|_| Rejection::TokenMalformed)
}

/// Decoded tokens up to this size (all three parts) are decoded on the stack.
const STACK_BUFFER: usize = 1024;

/// `true` for a member that is there, with any value (`null` included).
fn present<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<bool, D::Error> {
    IgnoredAny::deserialize(deserializer).map(|_| true)
}

/// `typ` is a media type: `at+jwt` or `application/at+jwt`, case-insensitively (RFC 9068 §4).
// spec: JWT-6
fn is_access_token_type(typ: &str) -> bool {
    typ.eq_ignore_ascii_case("at+jwt") || typ.eq_ignore_ascii_case("application/at+jwt")
}

/// The claims as [`validate`] reads them: [`AccessClaims`] with borrowed strings (owned only
/// when they hold escapes). Same members, same types, same rules (unknown members ignored,
/// duplicates refused), so a payload deserializes as one exactly when it does as the other.
#[derive(Deserialize)]
struct ClaimsRef<'a> {
    #[serde(borrow)]
    iss: Cow<'a, str>,
    #[serde(borrow)]
    sub: Cow<'a, str>,
    #[serde(borrow)]
    aud: AudienceRef<'a>,
    exp: u64,
    iat: u64,
    #[serde(default, deserialize_with = "present_value")]
    nbf: Option<u64>,
    #[serde(borrow)]
    jti: Cow<'a, str>,
    #[serde(borrow)]
    client_id: Cow<'a, str>,
    #[serde(default, borrow, deserialize_with = "present_str")]
    scope: Option<Cow<'a, str>>,
}

/// [`Audience`] borrowed: a string or an array of strings, nothing else (what the untagged
/// [`Audience`] accepts, without buffering the value first).
enum AudienceRef<'a> {
    One(Cow<'a, str>),
    Many(Vec<Cow<'a, str>>),
}

impl AudienceRef<'_> {
    /// Does the claim name `resource`, by exact string comparison?
    fn contains(&self, resource: &str) -> bool {
        match self {
            Self::One(a) => a == resource,
            Self::Many(v) => v.iter().any(|a| a == resource),
        }
    }
}

/// A string borrowed from the input when it has no escapes.
#[derive(Deserialize)]
#[serde(transparent)]
struct CowStr<'a>(#[serde(borrow)] Cow<'a, str>);

impl<'de: 'a, 'a> Deserialize<'de> for AudienceRef<'a> {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl<'de> serde::de::Visitor<'de> for Visitor {
            type Value = AudienceRef<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string or an array of strings")
            }
            fn visit_borrowed_str<E: serde::de::Error>(
                self,
                v: &'de str,
            ) -> Result<Self::Value, E> {
                Ok(AudienceRef::One(Cow::Borrowed(v)))
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Self::Value, E> {
                Ok(AudienceRef::One(Cow::Owned(v.to_owned())))
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                mut seq: A,
            ) -> Result<Self::Value, A::Error> {
                let mut all = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(16));
                while let Some(CowStr(a)) = seq.next_element()? {
                    all.push(a);
                }
                Ok(AudienceRef::Many(all))
            }
        }
        deserializer.deserialize_any(Visitor)
    }
}

/// Header and claims are JSON objects (RFC 7515 §4, RFC 7519 §7.2). serde's derived structs
/// also read a JSON array positionally, so this is checked first.
// spec: JWT-12
fn is_json_object(json: &[u8]) -> bool {
    json.iter()
        .find(|b| !matches!(b, b' ' | b'\t' | b'\n' | b'\r'))
        .is_some_and(|&b| b == b'{')
}

/// How many bytes at most a base64url part of this length decodes to.
const fn decoded_len_max(encoded_len: usize) -> usize {
    encoded_len.div_ceil(4) * 3
}

/// Validate an access token: size, structure, header rules, key selection, signature, then
/// `iss`, `aud`, `exp`, `nbf`, `iat` and the presence of every RFC 9068 claim.
// spec: RS-1, RS-2, JWT-6, JWT-7, JWT-8, JWT-9, JWT-10, JWT-11, JWT-13, JWT-15
pub fn validate(
    policy: &ValidationPolicy,
    keys: &KeySet,
    now: UnixTime,
    token: &str,
) -> Result<Access, Rejection> {
    validate_with_times(policy, keys, now, token).map(|(access, _, _)| access)
}

/// [`validate`], also returning the `nbf` and `iat` claims (the token cache re-checks them on
/// every hit).
pub(crate) fn validate_with_times(
    policy: &ValidationPolicy,
    keys: &KeySet,
    now: UnixTime,
    token: &str,
) -> Result<(Access, Option<u64>, u64), Rejection> {
    if token.len() > policy.token_len_max {
        return Err(Rejection::TokenTooLarge);
    }
    let mut parts = token.split('.');
    let (Some(header_b64), Some(claims_b64), Some(signature_b64), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(Rejection::TokenMalformed);
    };
    // One buffer for the three decoded parts; header and claims are borrowed from it.
    let (header_max, claims_max) = (
        decoded_len_max(header_b64.len()),
        decoded_len_max(claims_b64.len()),
    );
    let needed = header_max + claims_max + decoded_len_max(signature_b64.len());
    let (mut stack, mut heap) = ([0u8; STACK_BUFFER], Vec::new());
    let buffer: &mut [u8] = if needed <= STACK_BUFFER {
        &mut stack[..needed]
    } else {
        heap.resize(needed, 0);
        &mut heap
    };
    let (header_buf, rest) = buffer.split_at_mut(header_max);
    let (claims_buf, signature_buf) = rest.split_at_mut(claims_max);
    let parsed;
    let header = match keys.headers.iter().find(|h| h.b64 == header_b64) {
        Some(known) => known.view(),
        None => {
            parsed = parse_header(header_b64, header_buf)?;
            parsed.view()
        }
    };
    let alg = Alg::from_name(header.alg)
        .filter(|a| policy.algorithms.contains(a))
        .ok_or(Rejection::AlgorithmNotAllowed)?;
    if header.forbidden {
        return Err(Rejection::ForbiddenHeader);
    }
    if !header.typ.is_some_and(is_access_token_type) {
        return Err(Rejection::WrongTokenType);
    }
    let key = keys.select(header.kid, alg)?;
    let signing_input = &token[..header_b64.len() + 1 + claims_b64.len()];
    let signature_len = URL_SAFE_NO_PAD
        .decode_slice(signature_b64, signature_buf)
        .map_err(|_| Rejection::BadSignature)?;
    let Some(key) = &key.key else {
        return Err(Rejection::BadSignature);
    };
    let signature = &signature_buf[..signature_len];
    let verify = || {
        key.parsed
            .verify_sig(signing_input.as_bytes(), signature)
            .is_ok()
    };
    // With the defense off the memo is not asked either: it stays a pure memo of `verify`.
    let valid = crate::mutations::mutated!(policy, skip_signature_check)
        || match &keys.memo {
            None => verify(),
            Some(memo) => memo.verified(&key.bytes, signing_input.as_bytes(), signature, &verify),
        };
    if !valid {
        return Err(Rejection::BadSignature);
    }
    let claims_len = URL_SAFE_NO_PAD
        .decode_slice(claims_b64, claims_buf)
        .map_err(|_| Rejection::TokenMalformed)?;
    if !is_json_object(&claims_buf[..claims_len]) {
        return Err(Rejection::MissingClaim);
    }
    let claims: ClaimsRef<'_> =
        serde_json::from_slice(&claims_buf[..claims_len]).map_err(|_| Rejection::MissingClaim)?;
    if !crate::mutations::mutated!(policy, skip_issuer_check) && claims.iss != policy.issuer {
        return Err(Rejection::WrongIssuer);
    }
    if !crate::mutations::mutated!(policy, skip_audience_check)
        && !claims.aud.contains(&policy.audience)
    {
        return Err(Rejection::WrongAudience);
    }
    let leeway = policy.leeway_secs.min(LEEWAY_MAX_SECS);
    if now.as_secs() >= claims.exp.saturating_add(leeway) {
        return Err(Rejection::TokenExpired);
    }
    if claims
        .nbf
        .is_some_and(|nbf| now.as_secs().saturating_add(leeway) < nbf)
    {
        return Err(Rejection::TokenNotYetValid);
    }
    // spec: JWT-15
    if now.as_secs().saturating_add(leeway) < claims.iat {
        return Err(Rejection::IssuedInFuture);
    }
    if claims.sub.is_empty() || claims.jti.is_empty() || claims.client_id.is_empty() {
        return Err(Rejection::MissingClaim);
    }
    let scopes = ScopeSet::parse(claims.scope.as_deref().unwrap_or(""))
        .map_err(|_| Rejection::MissingClaim)?;
    let access = Access {
        subject: claims.sub.into_owned(),
        client_id: claims.client_id.into_owned(),
        scopes,
        audience: policy.audience.clone(),
        issuer: claims.iss.into_owned(),
        expires_at: UnixTime::from_secs(claims.exp),
        jti: claims.jti.into_owned(),
    };
    Ok((access, claims.nbf, claims.iat))
}
