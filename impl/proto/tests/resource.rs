//! JWT access tokens (`src/jwt.rs`) and the resource server (`src/resource.rs`): minting,
//! the JWK Set, every validation rule, the Protected Resource Metadata and the
//! `WWW-Authenticate` challenges.
//!
//! Tokens with unusual headers are built by hand (base64url of JSON, signed with the same
//! Ed25519 key through the `TokenSigner` trait), so that a rule is shown to hold even when the
//! signature is valid.

use std::sync::Arc;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::jwk::{Jwk, JwkSet, KeyAlgorithm, PublicKeyUse};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use mcp_auth_proto::challenge::{BearerChallenge, parse_www_authenticate};
use mcp_auth_proto::jwt::{
    Access, AccessClaims, Alg, Audience, Ed25519Signer, KeySet, LEEWAY_MAX_SECS, SignError, Signer,
    TOKEN_LEN_MAX, TokenSigner, ValidationPolicy, VerificationMemo, complete_jwk, validate,
};
use mcp_auth_proto::resource::{Challenge, ResourceServer, RsConfig};
use mcp_auth_proto::types::ScopeSet;
use mcp_auth_proto::uri::{HttpPolicy, Issuer, ResourceUri};
use mcp_auth_proto::{ErrorCode, Rejection, UnixTime};
use proptest::prelude::*;
use serde_json::{Value, json};

// ---------------------------------------------------------------------------------------------
// Fixtures
// ---------------------------------------------------------------------------------------------

const ISSUER: &str = "https://as.example.com";
const RESOURCE: &str = "https://mcp.example.com/mcp";
const OTHER_RESOURCE: &str = "https://other.example.com/mcp";
const PRM_URL: &str = "https://mcp.example.com/.well-known/oauth-protected-resource/mcp";
const NOW: u64 = 1_700_000_000;
const KID: &str = "k1";
const SEED: [u8; 32] = [7; 32];

/// 2048-bit RSA key made once with `openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048`.
const RSA_PEM: &str = "-----BEGIN PRIVATE KEY-----
MIIEvAIBADANBgkqhkiG9w0BAQEFAASCBKYwggSiAgEAAoIBAQCM09fBBkcEc0Hn
SuH65O5QI04AWD2swzo7p648Lds3/QCsWDJCNIPZpr0t+8dhJRefiq6QtUqeNGrT
/6VP4ymY/1NYS4FY+mtsOu08SJCfvyjotjXAWWlYD9vsG7Hq45Q8L7jloge04G+M
fB6D5rjRS4rY2VKitS1LAd7BdHbzWTMX9c6PmXZbkPsFFQ22g2DPAO/kQRCxc92V
kGM+HG0+jJfcfFHA/5HAZG4grpvfXyRJ1pD22tmRESsVIQLUvwUEEeUfhdeSlyvv
26YDfZt4XKko8ZS6pQhk6TYQakZPE3tb5bT+OKFJ5WFHLPDDPN9SBmq8kysmOELf
tvmBehBJAgMBAAECggEAOFTY3d5L9AzClOlQQZLnfOjSX7LsYLnrBkfJm0rggKHU
bhwNZowpHZvj2ov3MfWrYGcR8tKB2YywGsMM9kqwrgGb7hqtz9DDvZRIpy+DolLN
42BXWeyqBc66MtTVM1b7SaPxOvG4UXLhS/muHybgUN/910X/FxSP3IwP9aRHnIk+
xov6QJTY6a6tKOZcsqeOVJvRwznfYz9aKtY/HsLCCO3GdXMOfsPlSNkMn0OrSo9V
cPPF8lMWZk52pXSHQtGey0dgiRqwMnQmBG6FPausvfthvTkalUWtWMOL6oSMcFux
mdATw8e4hkcZtpVcbZ9MUd31yqnZg248RejhbdJ2jQKBgQDB23jtL77QKJAiP4kw
urWb859ZoOtxMM0/XwfOKNq+VdCaOsYT9oKNr4IImt2gLFSKwL6Yg+QHBrashs/Q
4XJdOglGSgfj6FHaPk6tCPHqy9erUZ5+74aWMComwxqfEC/wVGGIWol7xwwIM4A1
/EKgRCvpnaIgypY3nOS17I3blwKBgQC5+JTlPG8bl/3ILzPwgSXaYNfuJDS3qTWH
1rEb8/Ku4gSBPOELLbr1FB0LARAIcOTswOQbgYOm55/KRJOwxTA47G99sfuZrPFw
getoPmqA1ihwFKSeTOEJBMKblNQSk/42eb7PWhZdJQbV1Tvo6L+7irYSsAeWSJzI
iFl48VpvHwKBgFDS7GwXh/rJrq5Yxx4l+in3POzlhsQ+kJRnTp3JssnAhaSH9KXG
FVB1aEWmK9joIqdnDRARjTTQu8DaxDJWjJQJ6mv/2aJP7jCL4cmK/THjoxuuf+J0
gyyDEE/w8Fx5J0OQKsnq1X9h0cZpkn7vmeewBI72Re5eCJtPMpwW8F4pAoGATvgM
me74qzn2TOwmXQkqProC1x/OtvKGRaFX4avMMJDPIuXsFegcTHd3AbY4zazKuPIL
qtZrRhNzGdvW7yg8mt9jVHeghBgZChJRGRnv9bd6wmUxpfq1UDQSQyiGiUEIoK8/
5CK3/mN7rI94eiVjTUrQl8zh2+IHmWu0upOaODcCgYBwknPHLN6ewaKYZyGJDKkR
rDMTT16SUpLepunL0iesa4LVz3e4z9PfVj5zlBV53llIgqBCqLDGqvh2P8Fvayyd
JsayIwvpOLP7hUjWCNFIpKuQjniZ25d6ub5D0BybN8qo40FSGHEzyxG45hG/vk/j
U30IfaKOWIyvtrrO3Ipuyg==
-----END PRIVATE KEY-----
";

/// P-256 key made once with `openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256`.
const EC_PEM: &str = "-----BEGIN PRIVATE KEY-----
MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQg84AGRqEDt4jVVOo2
CZbVcevXgGZD/iWSfNPBYmows2uhRANCAARAyk598euTyLRUOXqDLke2ATZ4T3EP
ZDhr5ALBBpRr6aiCeEDRPW2vIk/5AnTwPCfEKTND0ZAzw6Slviarwi9t
-----END PRIVATE KEY-----
";

fn now() -> UnixTime {
    UnixTime::from_secs(NOW)
}

fn ed25519() -> Ed25519Signer {
    Ed25519Signer::from_seed(KID, SEED)
}

fn signer() -> Signer {
    Signer::new(ed25519())
}

fn claims() -> AccessClaims {
    AccessClaims {
        iss: ISSUER.into(),
        sub: "alice".into(),
        aud: Audience::One(RESOURCE.into()),
        exp: NOW + 300,
        iat: NOW,
        nbf: None,
        jti: "jti-1".into(),
        client_id: "client-1".into(),
        scope: Some("mcp:tools".into()),
    }
}

/// The claims of [`claims`] as JSON, to edit for hand-built tokens.
fn claims_json() -> Value {
    serde_json::to_value(claims()).unwrap()
}

fn jwks(jwks: impl IntoIterator<Item = Jwk>) -> JwkSet {
    JwkSet {
        keys: jwks.into_iter().collect(),
    }
}

fn keys() -> KeySet {
    KeySet::from_jwks(&jwks([signer().public_jwk().clone()]))
}

fn policy() -> ValidationPolicy {
    ValidationPolicy::new(ISSUER, RESOURCE)
}

fn mint(claims: &AccessClaims) -> String {
    signer().sign_access_token(claims).unwrap()
}

fn check(token: &str) -> Result<Access, Rejection> {
    validate(&policy(), &keys(), now(), token)
}

fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

fn unb64(part: &str) -> Vec<u8> {
    URL_SAFE_NO_PAD.decode(part).unwrap()
}

/// `base64url(header) "." base64url(claims) "." base64url(sign(signing input))`.
fn hand_token(header: &Value, claims: &Value, sign: impl Fn(&[u8]) -> Vec<u8>) -> String {
    let input = format!(
        "{}.{}",
        b64(&serde_json::to_vec(header).unwrap()),
        b64(&serde_json::to_vec(claims).unwrap())
    );
    let signature = sign(input.as_bytes());
    format!("{input}.{}", b64(&signature))
}

/// A hand-built token signed with the trusted Ed25519 key.
fn ed_token(header: &Value, claims: &Value) -> String {
    hand_token(header, claims, |m| {
        TokenSigner::sign(&ed25519(), m).unwrap()
    })
}

fn ed_header() -> Value {
    json!({"alg": "EdDSA", "typ": "at+jwt", "kid": KID})
}

fn with(mut value: Value, key: &str, member: Value) -> Value {
    value[key] = member;
    value
}

fn without(mut value: Value, key: &str) -> Value {
    value.as_object_mut().unwrap().remove(key);
    value
}

/// Split a compact JWS and decode its header and claims as JSON.
fn decode(token: &str) -> (Value, Value, Vec<u8>) {
    let parts: Vec<&str> = token.split('.').collect();
    assert_eq!(parts.len(), 3, "{token}");
    (
        serde_json::from_slice(&unb64(parts[0])).unwrap(),
        serde_json::from_slice(&unb64(parts[1])).unwrap(),
        unb64(parts[2]),
    )
}

/// A [`TokenSigner`] over a PEM key of jsonwebtoken (RS256 / ES256), as a driver would inject.
struct PemSigner {
    alg: Alg,
    kid: String,
    key: EncodingKey,
}

impl PemSigner {
    fn rsa(kid: &str) -> Self {
        Self {
            alg: Alg::RS256,
            kid: kid.into(),
            key: EncodingKey::from_rsa_pem(RSA_PEM.as_bytes()).unwrap(),
        }
    }

    fn ec(kid: &str) -> Self {
        Self {
            alg: Alg::ES256,
            kid: kid.into(),
            key: EncodingKey::from_ec_pem(EC_PEM.as_bytes()).unwrap(),
        }
    }
}

impl TokenSigner for PemSigner {
    fn alg(&self) -> Alg {
        self.alg
    }

    fn kid(&self) -> &str {
        &self.kid
    }

    fn sign(&self, message: &[u8]) -> Result<Vec<u8>, SignError> {
        let sig = jsonwebtoken::crypto::sign(message, &self.key, self.alg.jsonwebtoken())
            .map_err(|e| SignError(e.to_string()))?;
        URL_SAFE_NO_PAD
            .decode(sig)
            .map_err(|e| SignError(e.to_string()))
    }

    fn public_jwk(&self) -> Jwk {
        let mut jwk = Jwk::from_encoding_key(&self.key, self.alg.jsonwebtoken()).unwrap();
        complete_jwk(&mut jwk, &self.kid, self.alg);
        jwk
    }
}

fn at_jwt_header(alg: Algorithm, kid: &str) -> Header {
    let mut header = Header::new(alg);
    header.typ = Some("at+jwt".into());
    header.kid = Some(kid.into());
    header
}

fn resource_uri(s: &str) -> ResourceUri {
    ResourceUri::parse(s, HttpPolicy::HttpsOnly).unwrap()
}

fn config_for(resource: &str) -> RsConfig {
    RsConfig::new(
        resource_uri(resource),
        Issuer::parse(ISSUER, HttpPolicy::HttpsOnly).unwrap(),
        ScopeSet::from_tokens(["mcp:tools", "mcp:admin"]),
    )
}

fn rs() -> ResourceServer {
    let mut rs = ResourceServer::new(config_for(RESOURCE));
    rs.set_keys(now(), keys());
    rs
}

fn bearer(token: &str) -> String {
    format!("Bearer {token}")
}

fn auth(rs: &ResourceServer, values: &[&str]) -> Result<Access, Challenge> {
    rs.authenticate(now(), values.iter().map(|v| v.as_bytes()))
}

fn auth_err(rs: &ResourceServer, values: &[&str]) -> Challenge {
    match auth(rs, values) {
        Ok(access) => panic!("{values:?} was accepted: {access:?}"),
        Err(challenge) => challenge,
    }
}

fn invalid_token_header(description: &str) -> String {
    format!(
        "Bearer resource_metadata=\"{PRM_URL}\", error=\"invalid_token\", error_description=\"{description}\""
    )
}

/// The token bound of the table test: below the 8 KiB bound of the `Authorization` header, so
/// that an oversized token reaches the validator through `authenticate` too.
const TABLE_TOKEN_LEN_MAX: usize = 4096;

/// A catalogue of refused tokens: (what, token, rejection). Each is refused for exactly one
/// reason; everything else about it is valid.
fn bad_tokens() -> Vec<(&'static str, String, Rejection)> {
    let good = mint(&claims());
    let (_, _, sig) = decode(&good);
    let parts: Vec<&str> = good.split('.').collect();
    let mut tampered = claims();
    tampered.sub = "mallory".into();
    let tampered = format!(
        "{}.{}.{}",
        parts[0],
        b64(&serde_json::to_vec(&tampered).unwrap()),
        parts[2]
    );
    let x = match &signer().public_jwk().algorithm {
        jsonwebtoken::jwk::AlgorithmParameters::OctetKeyPair(p) => unb64(&p.x),
        other => panic!("{other:?}"),
    };
    let hs256 = jsonwebtoken::encode(
        &at_jwt_header(Algorithm::HS256, KID),
        &claims(),
        &EncodingKey::from_secret(&x),
    )
    .unwrap();
    let other_key = Signer::new(Ed25519Signer::from_seed(KID, [8; 32]))
        .sign_access_token(&claims())
        .unwrap();
    let mut expired = claims();
    expired.exp = NOW - 31;
    let mut early = claims();
    early.nbf = Some(NOW + 300);
    let mut other_iss = claims();
    other_iss.iss = "https://evil.example.com".into();
    let mut other_aud = claims();
    other_aud.aud = Audience::One(OTHER_RESOURCE.into());
    vec![
        (
            "too large",
            "a".repeat(TABLE_TOKEN_LEN_MAX + 1),
            Rejection::TokenTooLarge,
        ),
        ("two parts", "e30.e30".into(), Rejection::TokenMalformed),
        (
            "four parts",
            format!("{good}.{}", b64(&sig)),
            Rejection::TokenMalformed,
        ),
        (
            "alg none",
            format!(
                "{}.{}.",
                b64(br#"{"alg":"none","typ":"at+jwt","kid":"k1"}"#),
                parts[1]
            ),
            Rejection::AlgorithmNotAllowed,
        ),
        (
            "HS256 with the public key",
            hs256,
            Rejection::AlgorithmNotAllowed,
        ),
        (
            "jku",
            ed_token(
                &with(ed_header(), "jku", json!("https://evil.example.com/jwks")),
                &claims_json(),
            ),
            Rejection::ForbiddenHeader,
        ),
        (
            "unknown kid",
            ed_token(&with(ed_header(), "kid", json!("k2")), &claims_json()),
            Rejection::UnknownKey,
        ),
        (
            "ES256 header on the EdDSA key",
            ed_token(&with(ed_header(), "alg", json!("ES256")), &claims_json()),
            Rejection::AlgorithmKeyMismatch,
        ),
        ("tampered payload", tampered, Rejection::BadSignature),
        ("other key, same kid", other_key, Rejection::BadSignature),
        (
            "typ JWT",
            ed_token(&with(ed_header(), "typ", json!("JWT")), &claims_json()),
            Rejection::WrongTokenType,
        ),
        ("other issuer", mint(&other_iss), Rejection::WrongIssuer),
        ("other audience", mint(&other_aud), Rejection::WrongAudience),
        ("expired", mint(&expired), Rejection::TokenExpired),
        ("not yet valid", mint(&early), Rejection::TokenNotYetValid),
        (
            "no jti",
            ed_token(&ed_header(), &without(claims_json(), "jti")),
            Rejection::MissingClaim,
        ),
    ]
}

// ---------------------------------------------------------------------------------------------
// Minting (AS side)
// ---------------------------------------------------------------------------------------------

// spec: JWT-1, JWT-2
#[test]
fn minted_header_is_eddsa_at_jwt_with_kid() {
    let token = mint(&claims());
    let (header, _, signature) = decode(&token);
    assert_eq!(
        header,
        json!({"alg": "EdDSA", "typ": "at+jwt", "kid": "k1"})
    );
    assert_eq!(signature.len(), 64, "an Ed25519 signature");
    // The published key is the one that verifies it, and it is a signature key for EdDSA.
    let jwk = signer().public_jwk().clone();
    assert_eq!(jwk.common.key_id.as_deref(), Some(KID));
    assert_eq!(jwk.common.key_algorithm, Some(KeyAlgorithm::EdDSA));
    assert_eq!(jwk.common.public_key_use, Some(PublicKeyUse::Signature));
    assert!(check(&token).is_ok());
    // Deterministic: the same claims give the same token.
    assert_eq!(token, mint(&claims()));
}

// spec: JWT-2
#[test]
fn every_signer_algorithm_is_on_the_allow_list() {
    assert_eq!(Alg::ALL.map(Alg::as_str), ["EdDSA", "ES256", "RS256"]);
    for name in [
        "none", "None", "HS256", "HS384", "HS512", "PS256", "ES384", "eddsa", "",
    ] {
        assert_eq!(Alg::from_name(name), None, "{name}");
    }
    for alg in Alg::ALL {
        assert_eq!(Alg::from_name(alg.as_str()), Some(alg));
    }
    for signer in [
        signer(),
        Signer::new(PemSigner::rsa("r1")),
        Signer::new(PemSigner::ec("e1")),
    ] {
        let (header, _, signature) = decode(&signer.sign_access_token(&claims()).unwrap());
        assert_eq!(header["alg"], json!(signer.alg().as_str()));
        assert_ne!(header["alg"], json!("none"));
        assert!(!signature.is_empty());
    }
}

// spec: JWT-3
#[test]
fn minted_claims_carry_every_rfc9068_claim() {
    let token = mint(&claims());
    let (_, body, _) = decode(&token);
    assert_eq!(
        body,
        json!({
            "iss": ISSUER,
            "sub": "alice",
            "aud": RESOURCE,
            "exp": NOW + 300,
            "iat": NOW,
            "jti": "jti-1",
            "client_id": "client-1",
            "scope": "mcp:tools",
        })
    );
    for claim in ["iss", "sub", "aud", "exp", "iat", "jti", "client_id"] {
        assert!(body.get(claim).is_some(), "{claim} missing");
    }
    // nbf and scope are left out rather than null when absent.
    let mut bare = claims();
    bare.scope = None;
    let (_, body, _) = decode(&mint(&bare));
    assert!(body.get("scope").is_none());
    assert!(body.get("nbf").is_none());
    // An array audience is minted as an array.
    let mut many = claims();
    many.aud = Audience::Many(vec![RESOURCE.into(), OTHER_RESOURCE.into()]);
    let (_, body, _) = decode(&mint(&many));
    assert_eq!(body["aud"], json!([RESOURCE, OTHER_RESOURCE]));
}

// spec: RS-1, JWT-3
#[test]
fn a_valid_token_is_accepted_with_its_claims() {
    let access = check(&mint(&claims())).unwrap();
    assert_eq!(access.subject, "alice");
    assert_eq!(access.client_id, "client-1");
    assert_eq!(access.issuer, ISSUER);
    assert_eq!(access.audience, RESOURCE);
    assert_eq!(access.jti, "jti-1");
    assert_eq!(access.expires_at, UnixTime::from_secs(NOW + 300));
    assert_eq!(access.scopes, ScopeSet::from_tokens(["mcp:tools"]));
    let mut no_scope = claims();
    no_scope.scope = None;
    assert!(check(&mint(&no_scope)).unwrap().scopes.is_empty());
}

// spec: JWT-3, RS-1
#[test]
fn a_token_missing_a_required_claim_is_refused() {
    for claim in ["iss", "sub", "aud", "exp", "iat", "jti", "client_id"] {
        let token = ed_token(&ed_header(), &without(claims_json(), claim));
        assert_eq!(
            check(&token).unwrap_err(),
            Rejection::MissingClaim,
            "{claim}"
        );
    }
    for claim in ["sub", "jti", "client_id"] {
        let token = ed_token(&ed_header(), &with(claims_json(), claim, json!("")));
        assert_eq!(
            check(&token).unwrap_err(),
            Rejection::MissingClaim,
            "empty {claim}"
        );
    }
    // Wrong types are missing claims too.
    for (claim, value) in [
        ("exp", json!("1700000300")),
        ("exp", json!(-1)),
        ("exp", json!(1.5)),
        ("aud", json!(7)),
        ("aud", json!([RESOURCE, 7])),
        ("scope", json!(["mcp:tools"])),
        ("scope", json!("bad\"scope")),
    ] {
        let token = ed_token(&ed_header(), &with(claims_json(), claim, value.clone()));
        assert_eq!(
            check(&token).unwrap_err(),
            Rejection::MissingClaim,
            "{claim}={value}"
        );
    }
    // Claims that are not a JSON object, under a valid signature.
    let token = ed_token(&ed_header(), &json!([1, 2, 3]));
    assert_eq!(check(&token).unwrap_err(), Rejection::MissingClaim);
}

// ---------------------------------------------------------------------------------------------
// typ
// ---------------------------------------------------------------------------------------------

// spec: JWT-6
#[test]
fn only_access_token_types_are_accepted() {
    let body = claims_json();
    let token = ed_token(&without(ed_header(), "typ"), &body);
    assert_eq!(check(&token).unwrap_err(), Rejection::WrongTokenType);
    for typ in [
        json!("JWT"),
        json!("jwt"),
        json!("application/jwt"),
        json!("at+jwt+x"),
        json!("at+jwt "),
        json!(""),
        json!(null),
    ] {
        let token = ed_token(&with(ed_header(), "typ", typ.clone()), &body);
        assert_eq!(
            check(&token).unwrap_err(),
            Rejection::WrongTokenType,
            "{typ}"
        );
    }
    for typ in [
        "at+jwt",
        "AT+JWT",
        "At+Jwt",
        "application/at+jwt",
        "Application/AT+JWT",
    ] {
        let token = ed_token(&with(ed_header(), "typ", json!(typ)), &body);
        assert!(check(&token).is_ok(), "{typ}");
    }
}

// ---------------------------------------------------------------------------------------------
// iss and key
// ---------------------------------------------------------------------------------------------

// spec: JWT-7
#[test]
fn another_issuer_is_refused() {
    for iss in [
        "https://evil.example.com",
        "https://as.example.com/",
        "https://AS.example.com",
        "http://as.example.com",
        "",
    ] {
        let mut c = claims();
        c.iss = iss.into();
        assert_eq!(
            check(&mint(&c)).unwrap_err(),
            Rejection::WrongIssuer,
            "{iss}"
        );
    }
}

// spec: JWT-7, JWT-9
#[test]
fn a_key_outside_the_issuers_jwks_is_refused_even_with_the_same_kid() {
    let impostor = Signer::new(Ed25519Signer::from_seed(KID, [8; 32]));
    let token = impostor.sign_access_token(&claims()).unwrap();
    assert_eq!(check(&token).unwrap_err(), Rejection::BadSignature);
    // The impostor's own JWKS would have verified it: it is the key that matters.
    let their_keys = KeySet::from_jwks(&jwks([impostor.public_jwk().clone()]));
    assert!(validate(&policy(), &their_keys, now(), &token).is_ok());
}

// ---------------------------------------------------------------------------------------------
// aud
// ---------------------------------------------------------------------------------------------

// spec: JWT-8, RS-5
#[test]
fn audience_as_string_or_array_containing_us_is_accepted() {
    for aud in [
        Audience::One(RESOURCE.into()),
        Audience::Many(vec![RESOURCE.into()]),
        Audience::Many(vec![OTHER_RESOURCE.into(), RESOURCE.into()]),
        Audience::Many(vec![RESOURCE.into(), OTHER_RESOURCE.into()]),
    ] {
        let mut c = claims();
        c.aud = aud.clone();
        assert_eq!(check(&mint(&c)).unwrap().audience, RESOURCE, "{aud:?}");
    }
}

// spec: JWT-8, RS-2, RS-5, RS-6, RS-8
#[test]
fn audience_without_us_is_refused() {
    let near_misses = [
        OTHER_RESOURCE,
        "https://mcp.example.com",
        "https://mcp.example.com/",
        "https://mcp.example.com/mcp/",
        "https://mcp.example.com/MCP",
        "https://MCP.example.com/mcp",
        "https://mcp.example.com:443/mcp",
        "https://mcp.example.com/mcp?x=1",
        "https://mcp.example.com/mcp/sub",
        "https://mcp.example.com/mc",
        ISSUER,
        "",
    ];
    for aud in near_misses {
        let mut c = claims();
        c.aud = Audience::One(aud.into());
        assert_eq!(
            check(&mint(&c)).unwrap_err(),
            Rejection::WrongAudience,
            "{aud}"
        );
        c.aud = Audience::Many(vec![aud.into()]);
        assert_eq!(
            check(&mint(&c)).unwrap_err(),
            Rejection::WrongAudience,
            "[{aud}]"
        );
    }
    let mut c = claims();
    c.aud = Audience::Many(vec![]);
    assert_eq!(
        check(&mint(&c)).unwrap_err(),
        Rejection::WrongAudience,
        "[]"
    );
    c.aud = Audience::Many(near_misses.map(String::from).to_vec());
    assert_eq!(
        check(&mint(&c)).unwrap_err(),
        Rejection::WrongAudience,
        "array without us"
    );
    // No aud at all: the token cannot be shown to target us.
    let token = ed_token(&ed_header(), &without(claims_json(), "aud"));
    assert_eq!(check(&token).unwrap_err(), Rejection::MissingClaim);
    let token = ed_token(&ed_header(), &with(claims_json(), "aud", json!(null)));
    assert_eq!(check(&token).unwrap_err(), Rejection::MissingClaim);
}

// spec: RS-2, RS-6, RS-13
#[test]
fn a_token_for_another_resource_is_refused_on_every_request() {
    let mut c = claims();
    c.aud = Audience::One(OTHER_RESOURCE.into());
    let foreign = bearer(&mint(&c));
    let ours = bearer(&mint(&claims()));
    let rs = rs();
    // Interleave with accepted requests: nothing is remembered from one call to the next.
    for _ in 0..3 {
        let challenge = auth_err(&rs, &[&foreign]);
        assert_eq!(challenge.status, 401);
        assert_eq!(challenge.rejection, Rejection::WrongAudience);
        assert_eq!(
            challenge.www_authenticate,
            invalid_token_header("The token was not issued for this resource")
        );
        assert!(auth(&rs, &[&ours]).is_ok());
    }
    // The resource server the token was minted for accepts it: the refusal is about aud.
    let mut other = ResourceServer::new(config_for(OTHER_RESOURCE));
    other.set_keys(now(), keys());
    assert!(auth(&other, &[&foreign]).is_ok());
    assert_eq!(
        auth_err(&other, &[&ours]).rejection,
        Rejection::WrongAudience
    );
}

// ---------------------------------------------------------------------------------------------
// alg, kid and signature
// ---------------------------------------------------------------------------------------------

// spec: JWT-9
#[test]
fn alg_none_is_refused() {
    let body = b64(&serde_json::to_vec(&claims()).unwrap());
    for alg in ["none", "None", "NONE"] {
        let header = b64(format!(r#"{{"alg":"{alg}","typ":"at+jwt","kid":"k1"}}"#).as_bytes());
        for sig in ["", "AAAA"] {
            let token = format!("{header}.{body}.{sig}");
            assert_eq!(
                check(&token).unwrap_err(),
                Rejection::AlgorithmNotAllowed,
                "{token}"
            );
        }
    }
    let token = format!("{}.{body}.", b64(br#"{"typ":"at+jwt","kid":"k1"}"#));
    assert_eq!(
        check(&token).unwrap_err(),
        Rejection::TokenMalformed,
        "no alg"
    );
}

// spec: JWT-9
#[test]
fn hs256_signed_with_the_public_key_is_refused() {
    let jwk = signer().public_jwk().clone();
    let x = match &jwk.algorithm {
        jsonwebtoken::jwk::AlgorithmParameters::OctetKeyPair(p) => p.x.clone(),
        other => panic!("{other:?}"),
    };
    let secrets = [
        unb64(&x),
        x.into_bytes(),
        serde_json::to_vec(&jwk).unwrap(),
        serde_json::to_vec(&jwks([jwk.clone()])).unwrap(),
    ];
    for secret in &secrets {
        for alg in [Algorithm::HS256, Algorithm::HS384, Algorithm::HS512] {
            let token = jsonwebtoken::encode(
                &at_jwt_header(alg, KID),
                &claims(),
                &EncodingKey::from_secret(secret),
            )
            .unwrap();
            assert_eq!(
                check(&token).unwrap_err(),
                Rejection::AlgorithmNotAllowed,
                "{alg:?}"
            );
        }
    }
    // The same with RSA: HMAC keyed with the RSA public key's PEM or modulus.
    let rsa = PemSigner::rsa("r1");
    let keys = KeySet::from_jwks(&jwks([rsa.public_jwk()]));
    let n = match &rsa.public_jwk().algorithm {
        jsonwebtoken::jwk::AlgorithmParameters::RSA(p) => p.n.clone(),
        other => panic!("{other:?}"),
    };
    for secret in [unb64(&n), RSA_PEM.as_bytes().to_vec()] {
        let token = jsonwebtoken::encode(
            &at_jwt_header(Algorithm::HS256, "r1"),
            &claims(),
            &EncodingKey::from_secret(&secret),
        )
        .unwrap();
        assert_eq!(
            validate(&policy(), &keys, now(), &token).unwrap_err(),
            Rejection::AlgorithmNotAllowed
        );
    }
}

// spec: JWT-9
#[test]
fn hmac_keys_in_the_jwks_are_never_used() {
    let secret = b"0123456789abcdef0123456789abcdef";
    let mut oct =
        Jwk::from_encoding_key(&EncodingKey::from_secret(secret), Algorithm::HS256).unwrap();
    oct.common.key_id = Some("h1".into());
    let keys = KeySet::from_jwks(&jwks([oct.clone()]));
    assert!(keys.is_empty());
    assert!(!keys.has_kid("h1"));
    let token = jsonwebtoken::encode(
        &at_jwt_header(Algorithm::HS256, "h1"),
        &claims(),
        &EncodingKey::from_secret(secret),
    )
    .unwrap();
    assert_eq!(
        validate(&policy(), &keys, now(), &token).unwrap_err(),
        Rejection::AlgorithmNotAllowed
    );
    // An oct key that claims an asymmetric alg is skipped too.
    oct.common.key_algorithm = Some(KeyAlgorithm::EdDSA);
    assert!(KeySet::from_jwks(&jwks([oct])).is_empty());
}

// spec: JWT-9
#[test]
fn an_unknown_kid_is_refused_as_unknown_key() {
    for kid in [json!("k2"), json!("K1"), json!(""), json!("k1 ")] {
        let token = ed_token(&with(ed_header(), "kid", kid.clone()), &claims_json());
        assert_eq!(check(&token).unwrap_err(), Rejection::UnknownKey, "{kid}");
    }
    // No keys at all.
    let token = mint(&claims());
    assert_eq!(
        validate(&policy(), &KeySet::empty(), now(), &token).unwrap_err(),
        Rejection::UnknownKey
    );
}

// spec: JWT-9
#[test]
fn a_token_without_kid_needs_exactly_one_key_of_its_algorithm() {
    let token = ed_token(&without(ed_header(), "kid"), &claims_json());
    assert!(check(&token).is_ok());
    let two = KeySet::from_jwks(&jwks([
        signer().public_jwk().clone(),
        Signer::new(Ed25519Signer::from_seed("k2", [8; 32]))
            .public_jwk()
            .clone(),
    ]));
    assert_eq!(two.len(), 2);
    assert_eq!(
        validate(&policy(), &two, now(), &token).unwrap_err(),
        Rejection::UnknownKey
    );
    // One EdDSA key and one RSA key: the EdDSA one is unambiguous.
    let mixed = KeySet::from_jwks(&jwks([
        signer().public_jwk().clone(),
        PemSigner::rsa("r1").public_jwk(),
    ]));
    assert!(validate(&policy(), &mixed, now(), &token).is_ok());
}

// spec: JWT-9
#[test]
fn an_algorithm_that_does_not_fit_the_key_is_refused() {
    for alg in ["ES256", "RS256"] {
        let token = ed_token(&with(ed_header(), "alg", json!(alg)), &claims_json());
        assert_eq!(
            check(&token).unwrap_err(),
            Rejection::AlgorithmKeyMismatch,
            "{alg}"
        );
    }
    // An RSA key asked to verify an ES256 signature made with the EC key.
    let rsa = PemSigner::rsa("r1");
    let keys = KeySet::from_jwks(&jwks([rsa.public_jwk()]));
    let token = jsonwebtoken::encode(
        &at_jwt_header(Algorithm::ES256, "r1"),
        &claims(),
        &EncodingKey::from_ec_pem(EC_PEM.as_bytes()).unwrap(),
    )
    .unwrap();
    assert_eq!(
        validate(&policy(), &keys, now(), &token).unwrap_err(),
        Rejection::AlgorithmKeyMismatch
    );
}

// spec: JWT-9
#[test]
fn an_algorithm_outside_the_policy_is_refused() {
    let mut only_rsa = policy();
    only_rsa.algorithms = vec![Alg::RS256];
    assert_eq!(
        validate(&only_rsa, &keys(), now(), &mint(&claims())).unwrap_err(),
        Rejection::AlgorithmNotAllowed
    );
    for alg in ["EDDSA", "Ed25519", "PS256", "ES384", "RS512"] {
        let token = ed_token(&with(ed_header(), "alg", json!(alg)), &claims_json());
        assert_eq!(
            check(&token).unwrap_err(),
            Rejection::AlgorithmNotAllowed,
            "{alg}"
        );
    }
}

// spec: JWT-9
#[test]
fn a_tampered_token_is_refused() {
    let token = mint(&claims());
    let parts: Vec<&str> = token.split('.').collect();
    // Claims swapped for others (wider scope), signature kept.
    let mut wider = claims();
    wider.scope = Some("mcp:tools mcp:admin".into());
    let forged = format!(
        "{}.{}.{}",
        parts[0],
        b64(&serde_json::to_vec(&wider).unwrap()),
        parts[2]
    );
    assert_eq!(check(&forged).unwrap_err(), Rejection::BadSignature);
    // The signature of another token.
    let other = mint(&wider);
    let other_sig = other.rsplit('.').next().unwrap();
    let spliced = format!("{}.{}.{other_sig}", parts[0], parts[1]);
    assert_eq!(check(&spliced).unwrap_err(), Rejection::BadSignature);
    // A truncated, empty or zeroed signature.
    for sig in [&parts[2][..parts[2].len() - 4], "", &b64(&[0; 64])] {
        let token = format!("{}.{}.{sig}", parts[0], parts[1]);
        assert_eq!(check(&token).unwrap_err(), Rejection::BadSignature, "{sig}");
    }
    // A signature that is not base64url.
    let token = format!("{}.{}.{}==", parts[0], parts[1], parts[2]);
    assert_eq!(check(&token).unwrap_err(), Rejection::BadSignature);
}

/// Two keys sharing a `kid` with different key types are legitimate in a JWK Set (RFC 7517
/// §4.5); the key is the one with that kid that fits the header's algorithm.
// spec: JWT-9, JWT-14
#[test]
fn a_kid_shared_by_keys_of_different_types_selects_by_algorithm() {
    let ed = Ed25519Signer::from_seed("shared", SEED);
    let rsa = PemSigner::rsa("shared");
    let ec = PemSigner::ec("shared");
    let keys = KeySet::from_jwks(&jwks([ed.public_jwk(), rsa.public_jwk(), ec.public_jwk()]));
    assert_eq!(keys.len(), 3);
    for signer in [Signer::new(ed), Signer::new(rsa), Signer::new(ec)] {
        let token = signer.sign_access_token(&claims()).unwrap();
        assert!(
            validate(&policy(), &keys, now(), &token).is_ok(),
            "{:?}",
            signer.alg()
        );
    }
    // And with no key of the header's algorithm under that kid, the mismatch is reported.
    let only_ed = KeySet::from_jwks(&jwks([
        Ed25519Signer::from_seed("shared", SEED).public_jwk()
    ]));
    let token = Signer::new(PemSigner::rsa("shared"))
        .sign_access_token(&claims())
        .unwrap();
    assert_eq!(
        validate(&policy(), &only_ed, now(), &token).unwrap_err(),
        Rejection::AlgorithmKeyMismatch
    );
}

// ---------------------------------------------------------------------------------------------
// Header parameters
// ---------------------------------------------------------------------------------------------

// spec: JWT-13
#[test]
fn key_locating_and_critical_headers_are_forbidden_even_when_signed() {
    let cases = [
        ("jku", json!("https://evil.example.com/jwks.json")),
        ("jwk", serde_json::to_value(signer().public_jwk()).unwrap()),
        ("x5u", json!("https://evil.example.com/cert.pem")),
        (
            "x5c",
            json!(["MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEA"]),
        ),
        ("crit", json!(["exp"])),
        ("crit", json!(["b64"])),
        ("crit", json!([])),
        // Present but null is still present: these are not valid values of the parameters.
        ("jku", json!(null)),
        ("crit", json!(null)),
    ];
    for (name, value) in cases {
        let header = with(ed_header(), name, value.clone());
        let token = ed_token(&header, &claims_json());
        // The signature is valid: only the header parameter is wrong.
        let input = token.rsplit_once('.').unwrap().0;
        let (_, _, sig) = decode(&token);
        assert_eq!(
            sig,
            TokenSigner::sign(&ed25519(), input.as_bytes()).unwrap()
        );
        assert_eq!(
            check(&token).unwrap_err(),
            Rejection::ForbiddenHeader,
            "{name}={value}"
        );
    }
    // The same through jsonwebtoken's own header type.
    let key = EncodingKey::from_ec_pem(EC_PEM.as_bytes()).unwrap();
    let ec_keys = KeySet::from_jwks(&jwks([PemSigner::ec("e1").public_jwk()]));
    let mut header = at_jwt_header(Algorithm::ES256, "e1");
    header.jku = Some("https://evil.example.com/jwks.json".into());
    let token = jsonwebtoken::encode(&header, &claims(), &key).unwrap();
    assert_eq!(
        validate(&policy(), &ec_keys, now(), &token).unwrap_err(),
        Rejection::ForbiddenHeader
    );
    // Harmless extra parameters are ignored.
    let header = with(ed_header(), "x5t#S256", json!("abc"));
    assert!(check(&ed_token(&with(header, "cty", json!("x")), &claims_json())).is_ok());
}

// ---------------------------------------------------------------------------------------------
// Time
// ---------------------------------------------------------------------------------------------

fn at(exp: u64, nbf: Option<u64>) -> String {
    let mut c = claims();
    c.exp = exp;
    c.nbf = nbf;
    mint(&c)
}

// spec: JWT-10, RS-1, RS-3
#[test]
fn an_expired_token_is_refused_beyond_the_leeway() {
    let leeway = policy().leeway_secs;
    assert!(leeway <= LEEWAY_MAX_SECS);
    assert_eq!(leeway, 30);
    assert_eq!(
        check(&at(NOW - 31, None)).unwrap_err(),
        Rejection::TokenExpired
    );
    assert_eq!(
        check(&at(NOW - 30, None)).unwrap_err(),
        Rejection::TokenExpired
    );
    assert_eq!(check(&at(0, None)).unwrap_err(), Rejection::TokenExpired);
    // Within the leeway.
    assert!(check(&at(NOW - 29, None)).is_ok());
    assert!(check(&at(NOW - 1, None)).is_ok());
    assert!(check(&at(NOW, None)).is_ok());
    // Without leeway, a token is refused from exp on.
    let mut strict = policy();
    strict.leeway_secs = 0;
    let check_strict = |t: &str| validate(&strict, &keys(), now(), t);
    assert_eq!(
        check_strict(&at(NOW, None)).unwrap_err(),
        Rejection::TokenExpired
    );
    assert_eq!(
        check_strict(&at(NOW - 1, None)).unwrap_err(),
        Rejection::TokenExpired
    );
    assert!(check_strict(&at(NOW + 1, None)).is_ok());
    // The leeway is capped at LEEWAY_MAX_SECS whatever the policy says.
    let mut lax = policy();
    lax.leeway_secs = 3600;
    let check_lax = |t: &str| validate(&lax, &keys(), now(), t);
    assert_eq!(
        check_lax(&at(NOW - LEEWAY_MAX_SECS, None)).unwrap_err(),
        Rejection::TokenExpired
    );
    assert!(check_lax(&at(NOW - LEEWAY_MAX_SECS + 1, None)).is_ok());
    // The clock moves, the token does not: fine now, refused later.
    let token = at(NOW + 300, None);
    assert!(validate(&policy(), &keys(), now().plus(329), &token).is_ok());
    assert_eq!(
        validate(&policy(), &keys(), now().plus(330), &token).unwrap_err(),
        Rejection::TokenExpired
    );
    // The end of time does not wrap around.
    assert!(check(&at(u64::MAX, None)).is_ok());
}

// spec: JWT-11
#[test]
fn a_token_before_nbf_is_refused_beyond_the_leeway() {
    assert_eq!(
        check(&at(NOW + 600, Some(NOW + 300))).unwrap_err(),
        Rejection::TokenNotYetValid
    );
    assert_eq!(
        check(&at(NOW + 600, Some(NOW + 31))).unwrap_err(),
        Rejection::TokenNotYetValid
    );
    assert_eq!(
        check(&at(NOW + 600, Some(u64::MAX))).unwrap_err(),
        Rejection::TokenNotYetValid
    );
    assert!(check(&at(NOW + 600, Some(NOW + 30))).is_ok());
    assert!(check(&at(NOW + 600, Some(NOW))).is_ok());
    assert!(check(&at(NOW + 600, Some(0))).is_ok());
    let mut strict = policy();
    strict.leeway_secs = 0;
    assert_eq!(
        validate(&strict, &keys(), now(), &at(NOW + 600, Some(NOW + 1))).unwrap_err(),
        Rejection::TokenNotYetValid
    );
    assert!(validate(&strict, &keys(), now(), &at(NOW + 600, Some(NOW))).is_ok());
}

// ---------------------------------------------------------------------------------------------
// Other algorithms, size, syntax
// ---------------------------------------------------------------------------------------------

// spec: JWT-14
#[test]
fn rs256_and_es256_tokens_verify() {
    for (alg, pem) in [
        (Algorithm::RS256, PemSigner::rsa("r1")),
        (Algorithm::ES256, PemSigner::ec("e1")),
    ] {
        let kid = pem.kid.clone();
        let jwk = pem.public_jwk();
        assert_eq!(jwk.common.key_id.as_deref(), Some(kid.as_str()));
        assert_eq!(jwk.common.public_key_use, Some(PublicKeyUse::Signature));
        // Keys published with the Ed25519 key, as an AS in rotation would.
        let keys = KeySet::from_jwks(&jwks([signer().public_jwk().clone(), jwk]));
        assert!(keys.has_kid(&kid));
        // Signed by jsonwebtoken itself.
        let token = jsonwebtoken::encode(&at_jwt_header(alg, &kid), &claims(), &pem.key).unwrap();
        let access = validate(&policy(), &keys, now(), &token).unwrap();
        assert_eq!(access.subject, "alice");
        // Minted by our AS through an injected signer.
        let token = Signer::new(pem).sign_access_token(&claims()).unwrap();
        let (header, _, _) = decode(&token);
        assert_eq!(
            header,
            json!({"alg": format!("{alg:?}"), "typ": "at+jwt", "kid": kid})
        );
        assert!(validate(&policy(), &keys, now(), &token).is_ok());
        // And a flipped signature bit is caught for these algorithms too.
        let (input, sig) = token.rsplit_once('.').unwrap();
        let mut sig = unb64(sig);
        sig[10] ^= 1;
        let forged = format!("{input}.{}", b64(&sig));
        assert_eq!(
            validate(&policy(), &keys, now(), &forged).unwrap_err(),
            Rejection::BadSignature
        );
    }
}

// spec: JWT-9, JWT-14
#[test]
fn a_jwks_from_json_keeps_only_usable_signature_keys() {
    let ed = serde_json::to_value(signer().public_jwk()).unwrap();
    let rsa = serde_json::to_value(PemSigner::rsa("r1").public_jwk()).unwrap();
    let ec = serde_json::to_value(PemSigner::ec("e1").public_jwk()).unwrap();
    let doc = json!({"keys": [
        ed.clone(),
        with(with(ed.clone(), "kid", json!("enc")), "use", json!("enc")),
        with(with(ed.clone(), "kid", json!("lies")), "alg", json!("RS256")),
        with(with(rsa.clone(), "kid", json!("rs-as-ps")), "alg", json!("PS256")),
        without(with(rsa.clone(), "kid", json!("r-noalg")), "alg"),
        without(with(ec.clone(), "kid", json!("e-nouse")), "use"),
        {"kty": "oct", "kid": "h", "k": "c2VjcmV0", "alg": "HS256"},
        rsa,
        ec,
    ]});
    let keys = KeySet::from_json(doc.to_string().as_bytes()).unwrap();
    for kid in [KID, "r1", "e1", "r-noalg", "e-nouse"] {
        assert!(keys.has_kid(kid), "{kid} should be usable");
    }
    for kid in ["enc", "lies", "rs-as-ps", "h"] {
        assert!(!keys.has_kid(kid), "{kid} should be skipped");
    }
    assert_eq!(keys.len(), 5);
    assert!(KeySet::from_json(b"{\"keys\": 5}").is_err());
    assert!(KeySet::from_json(b"not json").is_err());
    // Equality follows the document.
    assert_eq!(keys, KeySet::from_json(doc.to_string().as_bytes()).unwrap());
    assert_ne!(keys, KeySet::empty());
    // A key usable without a kid: the alg comes from the key type.
    let token = hand_token(
        &json!({"alg": "RS256", "typ": "at+jwt", "kid": "r-noalg"}),
        &claims_json(),
        |m| PemSigner::rsa("x").sign(m).unwrap(),
    );
    assert!(validate(&policy(), &keys, now(), &token).is_ok());
}

// spec: SEC-12, JWT-12
#[test]
fn an_oversized_token_is_refused_before_parsing() {
    let token = mint(&claims());
    let mut tight = policy();
    tight.token_len_max = token.len();
    assert!(validate(&tight, &keys(), now(), &token).is_ok());
    tight.token_len_max = token.len() - 1;
    assert_eq!(
        validate(&tight, &keys(), now(), &token).unwrap_err(),
        Rejection::TokenTooLarge
    );
    // Default bound: a validly signed but huge token.
    let mut big = claims();
    big.jti = "j".repeat(TOKEN_LEN_MAX);
    assert_eq!(check(&mint(&big)).unwrap_err(), Rejection::TokenTooLarge);
    assert_eq!(
        check(&"x".repeat(TOKEN_LEN_MAX + 1)).unwrap_err(),
        Rejection::TokenTooLarge
    );
}

// spec: JWT-12, SEC-12
#[test]
fn malformed_strings_are_token_malformed() {
    let good = mint(&claims());
    let parts: Vec<&str> = good.split('.').collect();
    let signed = |header: &[u8]| {
        let input = format!("{}.{}", b64(header), parts[1]);
        let sig = TokenSigner::sign(&ed25519(), input.as_bytes()).unwrap();
        format!("{input}.{}", b64(&sig))
    };
    let cases = [
        String::new(),
        ".".into(),
        "..".into(),
        "...".into(),
        "abc".into(),
        "a.b".into(),
        "a.b.c.d".into(),
        format!("{}.{}", parts[0], parts[1]),
        format!("{good}."),
        format!(".{}.{}", parts[1], parts[2]),
        format!("{}=.{}.{}", parts[0], parts[1], parts[2]),
        format!("{}+.{}.{}", parts[0], parts[1], parts[2]),
        format!("é{}.{}.{}", parts[0], parts[1], parts[2]),
        format!("{}.{}.{}", b64(b"not json"), parts[1], parts[2]),
        format!("{}.{}.{}", b64(b"[]"), parts[1], parts[2]),
        format!("{}.{}.{}", b64(b"{}"), parts[1], parts[2]),
        format!("{}.{}.{}", b64(br#"{"alg":5}"#), parts[1], parts[2]),
        signed(br#"{"alg":"EdDSA","typ":"at+jwt","kid":"k1","kid":"k1"}"#),
        signed(br#"{"alg":"EdDSA","typ":"at+jwt","kid":7}"#),
        signed(br#"{"alg":"EdDSA","typ":["at+jwt"],"kid":"k1"}"#),
    ];
    for token in cases {
        assert_eq!(
            check(&token).unwrap_err(),
            Rejection::TokenMalformed,
            "{token:?}"
        );
    }
    // Claims that are not base64url, under a valid signature.
    let input = format!("{}.{}", parts[0], "%%%");
    let sig = TokenSigner::sign(&ed25519(), input.as_bytes()).unwrap();
    assert_eq!(
        check(&format!("{input}.{}", b64(&sig))).unwrap_err(),
        Rejection::TokenMalformed
    );
    // Duplicate claims are not resolved by guessing (parser differentials).
    let input = format!(
        "{}.{}",
        parts[0],
        b64(format!(
            r#"{{"iss":"{ISSUER}","sub":"a","aud":"{RESOURCE}","aud":"{OTHER_RESOURCE}","exp":{},"iat":{NOW},"jti":"j","client_id":"c"}}"#,
            NOW + 300
        )
        .as_bytes())
    );
    let sig = TokenSigner::sign(&ed25519(), input.as_bytes()).unwrap();
    assert_eq!(
        check(&format!("{input}.{}", b64(&sig))).unwrap_err(),
        Rejection::MissingClaim
    );
}

// spec: JWT-12, RS-3, RS-4, ERR-1, ERR-6
#[test]
fn every_token_failure_is_401_invalid_token() {
    let mut config = config_for(RESOURCE);
    config.validation.token_len_max = TABLE_TOKEN_LEN_MAX;
    let policy = config.validation.clone();
    let mut rs = ResourceServer::new(config);
    rs.set_keys(now(), keys());
    let cases = bad_tokens();
    let mut seen = std::collections::BTreeSet::new();
    for (what, token, expected) in cases {
        assert!(token.len() <= TABLE_TOKEN_LEN_MAX || expected == Rejection::TokenTooLarge);
        assert_eq!(
            validate(&policy, &keys(), now(), &token).unwrap_err(),
            expected,
            "{what}"
        );
        assert_eq!(expected.code(), ErrorCode::InvalidToken, "{what}");
        let challenge = auth_err(&rs, &[&bearer(&token)]);
        assert_eq!(challenge.rejection, expected, "{what}");
        assert_eq!(challenge.status, 401, "{what}");
        assert_eq!(
            challenge.www_authenticate,
            invalid_token_header(expected.description()),
            "{what}"
        );
        seen.insert(expected);
    }
    // Every rejection validate can produce is in the table, so every one is a 401.
    for r in [
        Rejection::TokenTooLarge,
        Rejection::TokenMalformed,
        Rejection::AlgorithmNotAllowed,
        Rejection::ForbiddenHeader,
        Rejection::UnknownKey,
        Rejection::AlgorithmKeyMismatch,
        Rejection::BadSignature,
        Rejection::WrongTokenType,
        Rejection::WrongIssuer,
        Rejection::WrongAudience,
        Rejection::TokenExpired,
        Rejection::TokenNotYetValid,
        Rejection::MissingClaim,
    ] {
        assert!(seen.contains(&r), "{r:?} not exercised");
        assert_eq!(r.code().status(), 401);
        assert_eq!(r.code().as_str(), "invalid_token");
    }
}

// ---------------------------------------------------------------------------------------------
// Resource server: Authorization header
// ---------------------------------------------------------------------------------------------

// spec: RS-10
#[test]
fn the_bearer_scheme_is_case_insensitive() {
    let token = mint(&claims());
    let rs = rs();
    for scheme in ["Bearer", "bearer", "BEARER", "bEaReR"] {
        let value = format!("{scheme} {token}");
        let access = auth(&rs, &[&value]).unwrap_or_else(|c| panic!("{scheme}: {c:?}"));
        assert_eq!(access.subject, "alice");
    }
    // Several spaces before the token are allowed (RFC 6750 §2.1: 1*SP).
    assert!(auth(&rs, &[&format!("Bearer   {token}")]).is_ok());
}

// spec: RS-11, ERR-7, PRM-8, ERR-1, ERR-4
#[test]
fn no_credentials_get_a_bare_challenge() {
    let rs = rs();
    let expected = format!("Bearer resource_metadata=\"{PRM_URL}\"");
    // authenticate() sees only Authorization header values: a token in the URL query
    // (`/mcp?access_token=...`) can only reach it as "no Authorization header".
    let challenge = rs
        .authenticate(now(), std::iter::empty::<&[u8]>())
        .unwrap_err();
    assert_eq!(challenge.status, 401);
    assert_eq!(challenge.rejection, Rejection::NoCredentials);
    assert_eq!(challenge.www_authenticate, expected);
    assert!(!challenge.www_authenticate.contains("error"));
    // Another scheme is not a Bearer credential: the same bare challenge.
    let token = mint(&claims());
    for value in [
        format!("Basic {token}"),
        format!("Token {token}"),
        format!("Bearer{token}"),
        format!("BearerX {token}"),
        format!("access_token={token}"),
        String::new(),
    ] {
        let challenge = auth_err(&rs, &[&value]);
        assert_eq!(challenge.status, 401, "{value:?}");
        assert_eq!(challenge.rejection, Rejection::NoCredentials, "{value:?}");
        assert_eq!(challenge.www_authenticate, expected, "{value:?}");
    }
}

// spec: ERR-3
#[test]
fn a_malformed_authorization_header_is_400_invalid_request() {
    let rs = rs();
    let token = mint(&claims());
    let expected = format!(
        "Bearer resource_metadata=\"{PRM_URL}\", error=\"invalid_request\", error_description=\"Malformed Authorization header\""
    );
    let cases: Vec<Vec<String>> = vec![
        vec!["Bearer".into()],
        vec!["Bearer ".into()],
        vec!["Bearer    ".into()],
        vec!["bearer\t".into()],
        vec![format!("Bearer {token} ")],
        vec![format!("Bearer {token} extra")],
        vec![format!("Bearer\t{token}")],
        vec![format!("Bearer {token},x")],
        vec![format!("Bearer \"{token}\"")],
        // Two Authorization headers, even both valid, even identical.
        vec![bearer(&token), bearer(&token)],
        vec![bearer(&token), "Basic abc".into()],
        vec!["Basic abc".into(), bearer(&token)],
        vec![bearer(&token), String::new()],
    ];
    for values in cases {
        let values: Vec<&str> = values.iter().map(String::as_str).collect();
        let challenge = auth_err(&rs, &values);
        assert_eq!(challenge.status, 400, "{values:?}");
        assert_eq!(
            challenge.rejection,
            Rejection::MalformedAuthorization,
            "{values:?}"
        );
        assert_eq!(challenge.www_authenticate, expected, "{values:?}");
    }
    // A header value beyond 8 KiB is refused as a malformed header, before any token parsing.
    let huge = bearer(&"a".repeat(TOKEN_LEN_MAX));
    let challenge = auth_err(&rs, &[&huge]);
    assert_eq!(challenge.status, 400);
    assert_eq!(challenge.www_authenticate, expected);
    // Non-UTF-8 bytes after the scheme.
    let challenge = rs
        .authenticate(now(), [&b"Bearer \xff\xfe"[..]])
        .unwrap_err();
    assert_eq!(challenge.status, 400);
    assert_eq!(challenge.rejection, Rejection::MalformedAuthorization);
}

// spec: ERR-1, RS-3, ERR-6, ERR-11, PRM-8
#[test]
fn an_invalid_token_gets_401_with_error_and_resource_metadata() {
    let rs = rs();
    let challenge = auth_err(&rs, &[&bearer(&at(NOW - 100, None))]);
    assert_eq!(challenge.status, 401);
    assert_eq!(challenge.rejection, Rejection::TokenExpired);
    assert_eq!(
        challenge.www_authenticate,
        format!(
            "Bearer resource_metadata=\"{PRM_URL}\", error=\"invalid_token\", error_description=\"The access token expired\""
        )
    );
    let challenge = auth_err(&rs, &["Bearer not-a-jwt"]);
    assert_eq!(challenge.status, 401);
    assert_eq!(challenge.rejection, Rejection::TokenMalformed);
    assert_eq!(
        challenge.www_authenticate,
        invalid_token_header("The access token is malformed")
    );
}

// spec: ERR-2, RS-1, ERR-11
#[test]
fn missing_scopes_get_403_insufficient_scope() {
    let rs = rs();
    let access = auth(&rs, &[&bearer(&mint(&claims()))]).unwrap();
    assert!(rs.require_scopes(&access, &ScopeSet::default()).is_ok());
    assert!(
        rs.require_scopes(&access, &ScopeSet::from_tokens(["mcp:tools"]))
            .is_ok()
    );
    let challenge = rs
        .require_scopes(&access, &ScopeSet::from_tokens(["mcp:admin"]))
        .unwrap_err();
    assert_eq!(challenge.status, 403);
    assert_eq!(challenge.rejection, Rejection::InsufficientScope);
    assert_eq!(
        challenge.www_authenticate,
        format!(
            "Bearer resource_metadata=\"{PRM_URL}\", error=\"insufficient_scope\", error_description=\"The access token lacks a required scope\", scope=\"mcp:admin\""
        )
    );
    // The scope parameter names every scope the operation needs.
    let challenge = rs
        .require_scopes(&access, &ScopeSet::from_tokens(["mcp:tools", "mcp:admin"]))
        .unwrap_err();
    assert_eq!(challenge.status, 403);
    assert!(
        challenge
            .www_authenticate
            .ends_with(", scope=\"mcp:admin mcp:tools\""),
        "{}",
        challenge.www_authenticate
    );
    // A token with both scopes passes.
    let mut both = claims();
    both.scope = Some("mcp:admin mcp:tools".into());
    let access = auth(&rs, &[&bearer(&mint(&both))]).unwrap();
    assert!(
        rs.require_scopes(&access, &ScopeSet::from_tokens(["mcp:tools", "mcp:admin"]))
            .is_ok()
    );
}

// spec: ERR-4, ERR-5, ERR-11, PRM-8
#[test]
fn every_challenge_is_bearer_with_params_that_parse() {
    let rs = rs();
    let scope = ScopeSet::from_tokens(["mcp:admin"]);
    for &rejection in Rejection::ALL {
        for scope in [None, Some(&scope)] {
            let challenge = rs.challenge(rejection, scope);
            let value = &challenge.www_authenticate;
            assert!(value.starts_with("Bearer "), "{value}");
            assert_eq!(challenge.status, rejection.code().status());
            assert_eq!(challenge.rejection, rejection);
            let parsed = parse_www_authenticate([value.as_str()]).unwrap();
            assert_eq!(parsed.len(), 1, "{value}");
            assert!(parsed[0].is_scheme("Bearer"));
            assert!(!parsed[0].params.is_empty(), "{value}");
            // No parameter is repeated.
            let bearer = BearerChallenge::from_challenges(&parsed).unwrap().unwrap();
            assert_eq!(bearer.resource_metadata.as_deref(), Some(PRM_URL));
            if rejection == Rejection::NoCredentials {
                assert_eq!(bearer.error, None);
                assert_eq!(bearer.error_description, None);
            } else {
                assert_eq!(bearer.error.as_deref(), Some(rejection.code().as_str()));
                assert_eq!(
                    bearer.error_description.as_deref(),
                    Some(rejection.description())
                );
            }
            assert_eq!(bearer.scope, scope.and_then(ScopeSet::to_option));
        }
    }
    // The statuses of the three RS error codes.
    assert_eq!(
        rs.challenge(Rejection::MalformedAuthorization, None).status,
        400
    );
    assert_eq!(rs.challenge(Rejection::BadSignature, None).status, 401);
    assert_eq!(rs.challenge(Rejection::NoCredentials, None).status, 401);
    assert_eq!(
        rs.challenge(Rejection::InsufficientScope, Some(&scope))
            .status,
        403
    );
}

// ---------------------------------------------------------------------------------------------
// Key refetch
// ---------------------------------------------------------------------------------------------

// spec: JWT-9
#[test]
fn keys_are_refetched_only_for_an_unknown_kid_and_rate_limited() {
    let rs = rs();
    let interval = rs.config().jwks_refetch_interval_secs;
    assert!(interval > 0);
    let unknown = rs.challenge(Rejection::UnknownKey, None);
    let later = now().plus(interval);
    assert!(!rs.should_refetch_keys(now(), &unknown), "just fetched");
    assert!(!rs.should_refetch_keys(later.minus(1), &unknown));
    assert!(rs.should_refetch_keys(later, &unknown));
    assert!(rs.should_refetch_keys(later.plus(1000), &unknown));
    // A clock that went backwards does not trigger a refetch.
    assert!(!rs.should_refetch_keys(now().minus(1000), &unknown));
    for &rejection in Rejection::ALL {
        if rejection == Rejection::UnknownKey {
            continue;
        }
        let challenge = rs.challenge(rejection, None);
        assert!(
            !rs.should_refetch_keys(later.plus(1000), &challenge),
            "{rejection:?}"
        );
    }
    // Never fetched: fetch now.
    let fresh = ResourceServer::new(config_for(RESOURCE));
    assert!(fresh.keys().is_empty());
    assert!(fresh.should_refetch_keys(now(), &unknown));
    assert!(!fresh.should_refetch_keys(now(), &fresh.challenge(Rejection::BadSignature, None)));
    // A token from a rotated-in key: unknown until the keys are replaced, then accepted.
    let rotated = Signer::new(Ed25519Signer::from_seed("k2", [9; 32]));
    let token = bearer(&rotated.sign_access_token(&claims()).unwrap());
    let mut rs = rs;
    let challenge = auth_err(&rs, &[&token]);
    assert_eq!(challenge.rejection, Rejection::UnknownKey);
    assert!(rs.should_refetch_keys(later, &challenge));
    rs.set_keys(
        later,
        KeySet::from_jwks(&jwks([
            signer().public_jwk().clone(),
            rotated.public_jwk().clone(),
        ])),
    );
    assert!(!rs.should_refetch_keys(later, &challenge));
    assert_eq!(rs.keys().len(), 2);
    assert!(rs.authenticate(later, [token.as_bytes()]).is_ok());
}

// spec: JWT-9
#[test]
fn a_failed_key_fetch_counts_toward_the_rate_limit_and_keeps_keys_and_cache() {
    let mut rs = rs();
    let interval = rs.config().jwks_refetch_interval_secs;
    let unknown = rs.challenge(Rejection::UnknownKey, None);
    let token = bearer(&signer().sign_access_token(&claims()).unwrap());
    assert!(rs.authenticate_cached(now(), [token.as_bytes()]).is_ok());
    assert_eq!(rs.token_cache().len(), 1);
    let later = now().plus(interval);
    assert!(rs.should_refetch_keys(later, &unknown));
    // The fetch at `later` failed: no other attempt before `later + interval`.
    rs.keys_fetch_failed(later);
    assert!(!rs.should_refetch_keys(later, &unknown));
    assert!(!rs.should_refetch_keys(later.plus(interval - 1), &unknown));
    assert!(rs.should_refetch_keys(later.plus(interval), &unknown));
    // The old keys still verify, and the verified-token cache was not emptied.
    assert_eq!(rs.keys().len(), 1);
    assert_eq!(rs.token_cache().len(), 1);
    assert!(rs.authenticate(later, [token.as_bytes()]).is_ok());
    // A server that never fetched successfully is rate-limited by its failures too.
    let mut fresh = ResourceServer::new(config_for(RESOURCE));
    assert!(fresh.should_refetch_keys(now(), &unknown));
    fresh.keys_fetch_failed(now());
    assert!(!fresh.should_refetch_keys(now(), &unknown));
    assert!(fresh.should_refetch_keys(now().plus(interval), &unknown));
}

// ---------------------------------------------------------------------------------------------
// Protected Resource Metadata
// ---------------------------------------------------------------------------------------------

// spec: PRM-1, PRM-2, PRM-3, PRM-5, PRM-6
#[test]
fn the_prm_document() {
    let mut config = config_for("HTTPS://MCP.Example.COM:443/mcp");
    config.resource_name = Some("Example MCP".into());
    let rs = ResourceServer::new(config);
    let doc = serde_json::to_value(rs.metadata()).unwrap();
    assert_eq!(
        doc,
        json!({
            "resource": RESOURCE,
            "authorization_servers": [ISSUER],
            "scopes_supported": ["mcp:admin", "mcp:tools"],
            "bearer_methods_supported": ["header"],
            "resource_name": "Example MCP",
        })
    );
    // resource is the audience the validator requires.
    assert_eq!(doc["resource"], json!(rs.config().validation.audience));
    assert_eq!(
        doc["authorization_servers"][0],
        json!(rs.config().validation.issuer)
    );
    // Round trip through the type clients read.
    let back: mcp_auth_proto::metadata::ProtectedResourceMetadata =
        serde_json::from_value(doc).unwrap();
    assert_eq!(back, rs.metadata());
}

// spec: PRM-5, PRM-7
#[test]
fn the_prm_document_leaves_out_empty_members() {
    let config = RsConfig::new(
        resource_uri(RESOURCE),
        Issuer::parse(ISSUER, HttpPolicy::HttpsOnly).unwrap(),
        ScopeSet::default(),
    );
    let doc = serde_json::to_string(&ResourceServer::new(config).metadata()).unwrap();
    assert_eq!(
        doc,
        format!(
            r#"{{"resource":"{RESOURCE}","authorization_servers":["{ISSUER}"],"bearer_methods_supported":["header"]}}"#
        )
    );
    assert!(!doc.contains("[]"));
    assert!(!doc.contains("null"));
    // No jwks_uri and no signing algorithms to get wrong.
    assert!(!doc.contains("jwks_uri"));
    assert!(!doc.contains("none"));
}

// spec: PRM-4
#[test]
fn the_prm_url_is_path_inserted() {
    for (resource, url) in [
        (RESOURCE, PRM_URL),
        (
            "https://h/mcp",
            "https://h/.well-known/oauth-protected-resource/mcp",
        ),
        (
            "https://h",
            "https://h/.well-known/oauth-protected-resource",
        ),
        (
            "https://h/",
            "https://h/.well-known/oauth-protected-resource",
        ),
        (
            "https://h/mcp/",
            "https://h/.well-known/oauth-protected-resource/mcp",
        ),
        (
            "https://h:8443/a/b",
            "https://h:8443/.well-known/oauth-protected-resource/a/b",
        ),
        (
            "https://H:443/Mcp",
            "https://h/.well-known/oauth-protected-resource/Mcp",
        ),
        (
            "https://h/mcp?tenant=1",
            "https://h/.well-known/oauth-protected-resource/mcp?tenant=1",
        ),
    ] {
        let rs = ResourceServer::new(config_for(resource));
        assert_eq!(rs.metadata_url(), url, "{resource}");
        // Every challenge points there.
        let challenge = rs.challenge(Rejection::NoCredentials, None);
        assert_eq!(
            challenge.www_authenticate,
            format!("Bearer resource_metadata=\"{url}\"")
        );
    }
}

// spec: PRM-4, PRM-10
#[test]
fn prm_is_served_at_the_inserted_and_the_root_path() {
    let rs = ResourceServer::new(config_for("https://h/mcp"));
    assert_eq!(
        rs.metadata_paths(),
        [
            "/.well-known/oauth-protected-resource/mcp",
            "/.well-known/oauth-protected-resource"
        ]
    );
    // Both describe the exact endpoint.
    assert_eq!(rs.metadata().resource, "https://h/mcp");
    // Without a path, the two coincide.
    let root = ResourceServer::new(config_for("https://h:8443"));
    assert_eq!(
        root.metadata_paths(),
        ["/.well-known/oauth-protected-resource"]
    );
    let deep = ResourceServer::new(config_for("https://h/a/b/"));
    assert_eq!(
        deep.metadata_paths(),
        [
            "/.well-known/oauth-protected-resource/a/b",
            "/.well-known/oauth-protected-resource"
        ]
    );
}

/// A resource with a query still has PRM at a *path*: the query is not part of what a router
/// matches on.
// spec: PRM-4
#[test]
fn prm_paths_are_paths_even_when_the_resource_has_a_query() {
    let rs = ResourceServer::new(config_for("https://h/mcp?tenant=1"));
    for path in rs.metadata_paths() {
        assert!(path.starts_with('/'), "{path}");
        assert!(!path.contains('?'), "{path}");
    }
    assert_eq!(
        rs.metadata_paths(),
        [
            "/.well-known/oauth-protected-resource/mcp",
            "/.well-known/oauth-protected-resource"
        ]
    );
}

// ---------------------------------------------------------------------------------------------
// Properties
// ---------------------------------------------------------------------------------------------

fn b64_part() -> impl Strategy<Value = String> {
    prop_oneof![
        prop::collection::vec(any::<u8>(), 0..96).prop_map(|b| b64(&b)),
        "[A-Za-z0-9_-]{0,64}",
        // Structured JSON, so that parsing gets past base64.
        (
            prop::sample::select(vec!["EdDSA", "ES256", "RS256", "none", "HS256"]),
            prop::option::of(prop::sample::select(vec![
                "at+jwt",
                "JWT",
                "application/at+jwt"
            ])),
            prop::option::of("[a-z0-9]{0,3}"),
        )
            .prop_map(|(alg, typ, kid)| {
                let mut h = json!({"alg": alg});
                if let Some(typ) = typ {
                    h["typ"] = json!(typ);
                }
                if let Some(kid) = kid {
                    h["kid"] = json!(kid);
                }
                b64(&serde_json::to_vec(&h).unwrap())
            }),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    // spec: JWT-12, SEC-12
    #[test]
    fn validate_never_panics_on_strings(s in any::<String>(), t in "[A-Za-z0-9_.=+/-]{0,400}") {
        for token in [&s, &t] {
            let r = check(token);
            prop_assert!(r.is_err());
            prop_assert_eq!(r.unwrap_err().code(), ErrorCode::InvalidToken);
        }
    }

    // spec: JWT-9, JWT-12
    #[test]
    fn validate_never_panics_on_three_base64url_parts(h in b64_part(), c in b64_part(), s in b64_part()) {
        let token = format!("{h}.{c}.{s}");
        let r = check(&token);
        prop_assert!(r.is_err(), "{} accepted", token);
        prop_assert_eq!(r.unwrap_err().code().status(), 401);
        // A real header and body with an arbitrary signature never verify.
        let good = mint(&claims());
        let input = good.rsplit_once('.').unwrap().0;
        let forged = format!("{input}.{s}");
        prop_assert!(check(&forged).is_err());
    }

    // spec: JWT-9, RS-1
    #[test]
    fn any_single_byte_flip_is_rejected(i in any::<prop::sample::Index>(), x in 1u8..128) {
        let token = mint(&claims());
        let mut bytes = token.into_bytes();
        let i = i.index(bytes.len());
        bytes[i] ^= x;
        // ASCII xor 1..128 stays ASCII.
        let forged = String::from_utf8(bytes).unwrap();
        prop_assert!(check(&forged).is_err(), "byte {} ^ {:#x} accepted", i, x);
    }

    // spec: JWT-8, RS-5
    #[test]
    fn audience_array_is_accepted_exactly_when_it_contains_us(
        others in prop::collection::vec("https://[a-z]{1,6}\\.example\\.com/[a-z]{0,4}", 0..4),
        pos in any::<prop::sample::Index>(),
        include in any::<bool>(),
    ) {
        let mut aud: Vec<String> = others.into_iter().filter(|a| a != RESOURCE).collect();
        if include {
            let at = pos.index(aud.len() + 1);
            aud.insert(at, RESOURCE.into());
        }
        let mut c = claims();
        c.aud = Audience::Many(aud);
        let r = check(&mint(&c));
        if include {
            prop_assert!(r.is_ok());
        } else {
            prop_assert_eq!(r.unwrap_err(), Rejection::WrongAudience);
        }
    }

    // spec: PRM-3, PRM-4
    #[test]
    fn prm_resource_and_url_follow_the_canonical_uri(
        host in "[a-z]{1,8}(\\.[a-z]{1,8}){0,2}",
        port in prop::option::of(1u16..),
        path in "(/[A-Za-z0-9._~-]{1,8}){0,3}/?",
    ) {
        let port = port.map(|p| format!(":{p}")).unwrap_or_default();
        let resource = format!("https://{host}{port}{path}");
        let rs = ResourceServer::new(config_for(&resource));
        let canonical = resource_uri(&resource);
        let doc = rs.metadata();
        prop_assert_eq!(&doc.resource, canonical.as_str());
        prop_assert_eq!(&doc.resource, &rs.config().validation.audience);
        prop_assert!(doc.resource.starts_with("https://"));
        prop_assert!(!doc.resource.contains('#'));
        let trimmed = canonical.path().strip_suffix('/').unwrap_or(canonical.path());
        prop_assert_eq!(
            rs.metadata_url(),
            format!("{}/.well-known/oauth-protected-resource{}", canonical.origin(), trimmed)
        );
        let paths = rs.metadata_paths();
        prop_assert_eq!(&paths[0], &rs.metadata_url()[canonical.origin().len()..]);
        prop_assert!(paths.contains(&"/.well-known/oauth-protected-resource".to_string()));
    }
}

// spec: RS-19
#[test]
fn offline_access_is_never_in_prm_or_a_challenge() {
    let mut config = config_for(RESOURCE);
    config.scopes_supported = ScopeSet::from_tokens(["mcp:tools", "offline_access"]);
    config.base_scopes = ScopeSet::from_tokens(["mcp:tools", "offline_access"]);
    let rs = ResourceServer::new(config);
    let doc = serde_json::to_value(rs.metadata()).unwrap();
    assert_eq!(doc["scopes_supported"], json!(["mcp:tools"]));
    let needed = ScopeSet::from_tokens(["mcp:admin", "offline_access"]);
    let challenge = rs.challenge(Rejection::InsufficientScope, Some(&needed));
    assert!(
        challenge.www_authenticate.contains(r#"scope="mcp:admin""#),
        "{}",
        challenge.www_authenticate
    );
    assert!(!challenge.www_authenticate.contains("offline_access"));
    // Only offline_access needed: the challenge names no scope at all.
    let only = ScopeSet::from_tokens(["offline_access"]);
    let challenge = rs.challenge(Rejection::InsufficientScope, Some(&only));
    assert!(!challenge.www_authenticate.contains("scope="));
}

/// (key, signing input, signature) → valid.
type Seen = std::collections::BTreeMap<(Vec<u8>, Vec<u8>, Vec<u8>), bool>;

/// A [`VerificationMemo`] that remembers every answer and counts the verifications it ran.
#[derive(Default)]
struct CountingMemo {
    seen: std::sync::Mutex<Seen>,
    ran: std::sync::atomic::AtomicUsize,
}

impl VerificationMemo for CountingMemo {
    fn verified(
        &self,
        key: &[u8],
        signing_input: &[u8],
        signature: &[u8],
        verify: &dyn Fn() -> bool,
    ) -> bool {
        let entry = (key.to_vec(), signing_input.to_vec(), signature.to_vec());
        let mut seen = self.seen.lock().unwrap();
        *seen.entry(entry).or_insert_with(|| {
            self.ran.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            verify()
        })
    }
}

/// A key set with a verification memo gives the answers of one without, verifying each
/// (key, signing input, signature) once; the memo is keyed by the key's algorithm and bytes.
#[test]
fn verification_memo_answers_as_verification_and_runs_it_once() {
    let memo = Arc::new(CountingMemo::default());
    let memo_keys = keys().with_verification_memo(memo.clone());
    assert_eq!(
        memo_keys,
        keys(),
        "the memo is not part of the key set's value"
    );
    let token = mint(&claims());
    // Change one character inside the signature (not the last, whose low bits are padding).
    let at = token.len() - 10;
    let changed = if &token[at..=at] == "A" { "B" } else { "A" };
    let forged = format!("{}{changed}{}", &token[..at], &token[at + 1..]);
    for _ in 0..3 {
        assert_eq!(
            validate(&policy(), &memo_keys, now(), &token),
            validate(&policy(), &keys(), now(), &token)
        );
        assert!(validate(&policy(), &memo_keys, now(), &token).is_ok());
        assert_eq!(
            validate(&policy(), &memo_keys, now(), &forged).unwrap_err(),
            Rejection::BadSignature
        );
    }
    assert_eq!(memo.ran.load(std::sync::atomic::Ordering::Relaxed), 2);
    let seen = memo.seen.lock().unwrap();
    let x = match &signer().public_jwk().algorithm {
        jsonwebtoken::jwk::AlgorithmParameters::OctetKeyPair(p) => unb64(&p.x),
        other => panic!("not an OKP key: {other:?}"),
    };
    let key = [b"EdDSA".as_slice(), &x].concat();
    assert!(seen.keys().all(|(k, _, _)| *k == key));
    assert_eq!(seen.values().filter(|valid| **valid).count(), 1);
}
