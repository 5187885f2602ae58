//! Realistic access tokens and the four ways of checking them.
//!
//! The token is what an MCP authorization server issues (RFC 9068): header
//! `{"alg":…,"typ":"at+jwt","kid":"key-2025-01"}` and the claims `iss, sub, aud, exp, iat, nbf,
//! scope, client_id, jti` with a CIMD client id, about 600 bytes for ES256. It is signed
//! directly (`header.payload` with the aws-lc-rs key pair), so no JWT library's encoder is
//! involved. The public key reaches every verifier as a JWK, as a JWKS delivers it.

use std::time::{SystemTime, UNIX_EPOCH};

use aws_lc_rs::signature::{
    ECDSA_P256_SHA256_FIXED, ED25519, ParsedPublicKey, RSA_PKCS1_2048_8192_SHA256,
    RsaPublicKeyComponents,
};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::jwk::{AlgorithmParameters, Jwk, JwkSet};
use jsonwebtoken::{DecodingKey, Validation};
use mcp_auth_proto::jwt::{Access, AccessClaims, Alg, KeySet, ValidationPolicy, validate};
use mcp_auth_proto::resource::{Challenge, ResourceServer, RsConfig};
use mcp_auth_proto::types::ScopeSet;
use mcp_auth_proto::uri::{HttpPolicy, Issuer, ResourceUri};
use mcp_auth_proto::{Rejection, UnixTime};

use crate::signers::KeyPairOf;

/// The issuer of the benchmark tokens.
pub const ISSUER: &str = "https://auth.example.com";
/// The resource server the tokens are for.
pub const AUDIENCE: &str = "https://mcp.example.com/mcp";
/// The key id.
pub const KID: &str = "key-2025-01";
/// A CIMD client id (a URL), as MCP clients use.
pub const CLIENT_ID: &str = "https://app.example.com/oauth/client-metadata.json";

/// The wall clock, in seconds (jsonwebtoken checks `exp` against it, so tokens are minted
/// relative to it).
pub fn wall_clock() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or_default()
}

/// The claims JSON, RFC 9068 members in the usual order, valid from `now` for two hours.
pub fn claims_json(now: u64, jti: &str) -> String {
    format!(
        concat!(
            r#"{{"iss":"{iss}","sub":"user-8f14e45f-ceea-467f","#,
            r#""aud":"{aud}","exp":{exp},"iat":{now},"nbf":{now},"#,
            r#""scope":"mcp:tools mcp:resources","client_id":"{client}","jti":"{jti}"}}"#
        ),
        iss = ISSUER,
        aud = AUDIENCE,
        exp = now + 7200,
        now = now,
        client = CLIENT_ID,
        jti = jti,
    )
}

/// `base64url(header) "." base64url(claims)` for `alg`.
pub fn signing_input(alg: Alg, claims: &str) -> String {
    let header = format!(
        r#"{{"alg":"{}","typ":"at+jwt","kid":"{KID}"}}"#,
        alg.as_str()
    );
    let mut input = URL_SAFE_NO_PAD.encode(header);
    input.push('.');
    URL_SAFE_NO_PAD.encode_string(claims, &mut input);
    input
}

/// The public key of a JWK parsed once for aws-lc-rs: the raw-verification baseline's key.
pub fn parsed_key(jwk: &Jwk) -> ParsedPublicKey {
    let b64 = |s: &str| URL_SAFE_NO_PAD.decode(s).expect("base64url key member");
    match &jwk.algorithm {
        AlgorithmParameters::OctetKeyPair(p) => {
            ParsedPublicKey::new(&ED25519, b64(&p.x)).expect("Ed25519 key")
        }
        AlgorithmParameters::EllipticCurve(p) => {
            let mut point = vec![4];
            point.extend(b64(&p.x));
            point.extend(b64(&p.y));
            ParsedPublicKey::new(&ECDSA_P256_SHA256_FIXED, point).expect("P-256 key")
        }
        AlgorithmParameters::RSA(p) => RsaPublicKeyComponents {
            n: b64(&p.n),
            e: b64(&p.e),
        }
        .to_parsed_public_key(&RSA_PKCS1_2048_8192_SHA256)
        .expect("RSA key"),
        _ => panic!("not a signature key"),
    }
}

/// One algorithm's key, token and verifiers.
pub struct Fixture {
    /// The algorithm.
    pub alg: Alg,
    /// The signing key (raw signing baseline).
    pub pair: KeyPairOf,
    /// The access token.
    pub token: String,
    /// `Bearer <token>`, the `Authorization` value.
    pub authorization: String,
    /// `header.payload`, the signed bytes.
    pub signing_input: Vec<u8>,
    /// The decoded signature.
    pub signature: Vec<u8>,
    /// (a) the pre-parsed public key.
    pub raw_key: ParsedPublicKey,
    /// (b) our key set and policy.
    pub keys: KeySet,
    /// (b) the validation policy.
    pub policy: ValidationPolicy,
    /// (b), (d) the time of validation.
    pub now: UnixTime,
    /// (c) jsonwebtoken's key (from the same JWK).
    pub jwt_key: DecodingKey,
    /// (c) jsonwebtoken's rules: alg, iss, aud, exp, nbf, 30 s leeway.
    pub jwt_validation: Validation,
    /// (d) a resource server holding the keys, its cache already filled with the token.
    pub rs: ResourceServer,
}

impl Fixture {
    /// A fresh key for `alg` and a token signed with it; every path is checked once.
    pub fn new(alg: Alg) -> Self {
        let (pair, _) = KeyPairOf::generate(alg);
        let jwk = pair.public_jwk(KID);
        let now = wall_clock();
        let input = signing_input(
            alg,
            &claims_json(now, "8a1c2e4f-6b3d-4e5a-9c7f-0d2b4a6e8c1f"),
        );
        let signature = pair.sign(input.as_bytes());
        let token = format!("{input}.{}", URL_SAFE_NO_PAD.encode(&signature));
        let jwks = JwkSet {
            keys: vec![jwk.clone()],
        };
        let mut rs = ResourceServer::new(RsConfig::new(
            ResourceUri::parse(AUDIENCE, HttpPolicy::HttpsOnly).expect("resource"),
            Issuer::parse(ISSUER, HttpPolicy::HttpsOnly).expect("issuer"),
            ScopeSet::from_tokens(["mcp:tools", "mcp:resources"]),
        ));
        let keys = KeySet::from_jwks(&jwks);
        rs.set_keys(UnixTime::from_secs(now), keys.clone());
        let mut jwt_validation = Validation::new(alg.jsonwebtoken());
        jwt_validation.set_issuer(&[ISSUER]);
        jwt_validation.set_audience(&[AUDIENCE]);
        jwt_validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        jwt_validation.validate_nbf = true;
        jwt_validation.leeway = 30;
        let mut fixture = Self {
            alg,
            pair,
            authorization: format!("Bearer {token}"),
            signing_input: input.into_bytes(),
            signature,
            raw_key: parsed_key(&jwk),
            policy: rs.config().validation.clone(),
            keys,
            now: UnixTime::from_secs(now),
            jwt_key: DecodingKey::from_jwk(&jwk).expect("jsonwebtoken key"),
            jwt_validation,
            rs,
            token,
        };
        assert!(fixture.raw(), "raw verification");
        assert!(fixture.validate().is_ok(), "validate");
        assert!(fixture.jsonwebtoken().is_ok(), "jsonwebtoken");
        let first = fixture.cached().expect("first cached authentication");
        assert_eq!(fixture.rs.token_cache().len(), 1);
        assert_eq!(fixture.cached().expect("cache hit"), first);
        fixture
    }

    /// (a) raw aws-lc-rs verification of the signature with the pre-parsed key.
    pub fn raw(&self) -> bool {
        self.raw_key
            .verify_sig(&self.signing_input, &self.signature)
            .is_ok()
    }

    /// (b) our full validation, no cache.
    pub fn validate(&self) -> Result<Access, Rejection> {
        validate(&self.policy, &self.keys, self.now, &self.token)
    }

    /// (c) jsonwebtoken's `decode` with the same checks: its own (signature, alg, iss, aud,
    /// exp, nbf, required claims present) plus `typ`, the forbidden header members it parses,
    /// and non-empty `sub`/`jti`/`client_id` with a well-formed `scope`.
    pub fn jsonwebtoken(&self) -> Result<AccessClaims, String> {
        let data =
            jsonwebtoken::decode::<AccessClaims>(&self.token, &self.jwt_key, &self.jwt_validation)
                .map_err(|e| e.to_string())?;
        let h = &data.header;
        if !h
            .typ
            .as_deref()
            .is_some_and(|t| t.eq_ignore_ascii_case("at+jwt"))
        {
            return Err("typ".into());
        }
        if h.jku.is_some() || h.jwk.is_some() || h.x5u.is_some() || h.x5c.is_some() {
            return Err("forbidden header".into());
        }
        let c = &data.claims;
        if c.sub.is_empty() || c.jti.is_empty() || c.client_id.is_empty() {
            return Err("empty claim".into());
        }
        ScopeSet::parse(c.scope.as_deref().unwrap_or("")).map_err(|e| format!("{e:?}"))?;
        Ok(data.claims)
    }

    /// (d) the resource server's cached path: `Authorization` parsing, cache lookup, `exp`/`nbf`
    /// re-check, a copy of the [`Access`].
    pub fn cached(&mut self) -> Result<Access, Challenge> {
        self.rs
            .authenticate_cached(self.now, [self.authorization.as_bytes()])
    }
}
