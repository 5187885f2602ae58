//! Fuzz target bodies, shared by the libFuzzer targets of `fuzz/` and the stable regression test
//! `impl/proto/tests/fuzz_corpus.rs`.
//!
//! Each `pub fn <target>(data: &[u8])` is the whole body of one fuzz target: the libFuzzer
//! target in `fuzz/fuzz_targets/<target>.rs` is a one-liner that calls it, and
//! `cargo test` replays every checked-in corpus entry and crash reproducer
//! (`fuzz/corpus/<target>/`, `fuzz/regressions/<target>/`) through the very same function, so a
//! fixed crash stays fixed without a nightly toolchain. [`TARGETS`] maps target names to
//! functions.
//!
//! A target never returns an error: it panics when a property it checks is violated, and
//! libFuzzer records the input. Structure-aware targets read their input with
//! [`arbitrary::Unstructured`], so any byte string is a valid input (missing bytes read as
//! zeros).
//!
//! The targets use the fixed keys, issuer and resources of [`crate::harness`] and its
//! predictable [`mcp_auth_proto::Sequential`] entropy, and a fixed or input-derived `now`: no
//! target reads the clock (even [`token_differential`], although `jsonwebtoken::decode` cannot
//! be given a time: see `jsonwebtoken_verdict`), so a reproducer replays the same way on any
//! day.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::OnceLock;

use arbitrary::Unstructured;
use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use serde_json::Value;

use crate::harness::{self, Harness, ISSUER, OTHER_RESOURCE, REDIRECT_URI, RESOURCE, USER};
use mcp_auth_proto::challenge::{
    AuthorizationError, BearerChallenge, MAX_HEADER_LEN, parse_bearer_authorization,
    parse_www_authenticate,
};
use mcp_auth_proto::client::{Action, Client, ClientConfig, Tokens};
use mcp_auth_proto::entropy::Sequential;
use mcp_auth_proto::error::Rejection;
use mcp_auth_proto::form::{self, Params};
use mcp_auth_proto::http::{HttpRequest, HttpResponse, Method};
use mcp_auth_proto::jwt::{
    AccessClaims, Audience, Ed25519Signer, KeySet, TokenSigner, ValidationPolicy,
};
use mcp_auth_proto::metadata::{
    ASM_SUFFIX, AuthorizationServerMetadata, OIDC_SUFFIX, PRM_SUFFIX, ProtectedResourceMetadata,
};
use mcp_auth_proto::pkce::CodeVerifier;
use mcp_auth_proto::resource::ResourceServer;
use mcp_auth_proto::server::http::{UserAgentPolicy, handle};
use mcp_auth_proto::server::{
    Accounts, AsConfig, AuthorizationServer, AuthorizeOutcome, Browser, ClientCredentials,
    ClientMetadata, ConsentDecision, ConsentPrompt, Limits, RegistrationResponse, TokenAuthMethod,
    TokenRequest, TokenResponse,
};
use mcp_auth_proto::time::UnixTime;
use mcp_auth_proto::types::{ScopeSet, Subject};
use mcp_auth_proto::uri::{
    HttpPolicy, Issuer, RedirectUri, ResourceUri, UriError, is_loopback_host, parse_uri,
    well_known_append, well_known_insert, well_known_root,
};

/// A fuzz target body.
pub type Target = fn(&[u8]);

/// Every target, by the name of its directory under `fuzz/corpus/` and its file under
/// `fuzz/fuzz_targets/`.
pub const TARGETS: &[(&str, Target)] = &[
    ("token_validate", token_validate),
    ("token_claims", token_claims),
    ("token_differential", token_differential),
    ("bearer_header", bearer_header),
    ("www_authenticate", www_authenticate),
    ("metadata_json", metadata_json),
    ("request_decode", request_decode),
    ("uri", uri),
    ("as_ops", as_ops),
    ("client_responses", client_responses),
    ("mcp_guard", mcp_guard),
    ("client_document", client_document),
    ("stored_record", stored_record),
];

/// The target function called `name`, if there is one.
pub fn target(name: &str) -> Option<Target> {
    TARGETS.iter().find(|(n, _)| *n == name).map(|(_, f)| *f)
}

// ---------------------------------------------------------------------------------------------
// Input reading

/// A thin, total wrapper around [`Unstructured`]: every read succeeds (zeros once the input is
/// exhausted).
struct Gen<'a> {
    u: Unstructured<'a>,
}

impl<'a> Gen<'a> {
    fn new(data: &'a [u8]) -> Self {
        Self {
            u: Unstructured::new(data),
        }
    }

    fn is_empty(&self) -> bool {
        self.u.is_empty()
    }

    fn bool(&mut self) -> bool {
        self.u.arbitrary().unwrap_or(false)
    }

    /// A number in `0..n` (`0` when `n` is 0).
    fn below(&mut self, n: usize) -> usize {
        if n <= 1 {
            return 0;
        }
        self.u.int_in_range(0..=n - 1).unwrap_or(0)
    }

    /// True with probability about `1/n`.
    fn one_in(&mut self, n: usize) -> bool {
        self.below(n) == 0
    }

    fn pick<T: Clone>(&mut self, items: &[T]) -> T {
        let i = self.below(items.len());
        items[i].clone()
    }

    fn u64(&mut self) -> u64 {
        self.u.arbitrary().unwrap_or(0)
    }

    fn i64_in(&mut self, lo: i64, hi: i64) -> i64 {
        self.u.int_in_range(lo..=hi).unwrap_or(lo)
    }

    /// An arbitrary string of at most `max` bytes.
    fn string(&mut self, max: usize) -> String {
        let s: String = self.u.arbitrary().unwrap_or_default();
        truncate(s, max)
    }

    /// Arbitrary bytes, at most `max`.
    fn bytes(&mut self, max: usize) -> Vec<u8> {
        let len = self.below(max.saturating_add(1));
        self.u.bytes(len).map(<[u8]>::to_vec).unwrap_or_default()
    }
}

fn truncate(mut s: String, max: usize) -> String {
    if s.len() > max {
        let mut end = max;
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        s.truncate(end);
    }
    s
}

fn json_str(s: &str) -> String {
    serde_json::to_string(s).unwrap_or_else(|_| "\"\"".to_owned())
}

fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

fn canonical(s: &str, policy: HttpPolicy) -> Option<String> {
    ResourceUri::parse(s, policy)
        .ok()
        .map(|r| r.as_str().to_owned())
}

// ---------------------------------------------------------------------------------------------
// Fixtures (built once per process)

/// Leeway of the harness resource server.
const LEEWAY: u64 = 30;
/// The time at which the token targets validate (harness tokens are issued at 1000).
const NOW: u64 = 1_000;

struct Fixture {
    /// The harness after one full, successful flow.
    driven: Harness,
    /// The tokens of that flow.
    tokens: Tokens,
    /// The AS's signing key, to sign structure-aware tokens.
    signer: Ed25519Signer,
    /// The resource servers of [`RESOURCE`] and [`OTHER_RESOURCE`].
    rs: ResourceServer,
    other_rs: ResourceServer,
    /// The signer of the harness AS, shareable.
    as_signer: mcp_auth_proto::jwt::Signer,
    /// The challenge an unauthenticated MCP request gets.
    challenge: String,
}

fn fixture() -> &'static Fixture {
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        let mut driven = Harness::new();
        let challenge = driven
            .mcp_request(None)
            .err()
            .map(|c| c.www_authenticate)
            .unwrap_or_default();
        let tokens = driven
            .drive()
            .unwrap_or_else(|e| panic!("harness flow: {e:?}"));
        let as_signer = driven.authorization_server.signer().clone();
        let rs = harness::resource_server(&driven.authorization_server, RESOURCE);
        let other_rs = harness::resource_server(&driven.authorization_server, OTHER_RESOURCE);
        Fixture {
            driven,
            tokens,
            signer: Ed25519Signer::from_seed("k1", [7; 32]),
            rs,
            other_rs,
            as_signer,
            challenge,
        }
    })
}

fn policy() -> &'static ValidationPolicy {
    &fixture().rs.config().validation
}

fn keys() -> &'static KeySet {
    fixture().rs.keys()
}

// ---------------------------------------------------------------------------------------------
// token_validate

/// Arbitrary token strings against the RS validator with the harness keys, directly and through
/// the `Authorization` header. Properties: an accepted token satisfies the policy; the header
/// path refuses exactly what the validator refuses, with the same reason; every refusal is a
/// well-formed challenge.
pub fn token_validate(data: &[u8]) {
    let f = fixture();
    let now = UnixTime::from_secs(NOW);
    let token = String::from_utf8_lossy(data);
    let direct = mcp_auth_proto::jwt::validate(policy(), keys(), now, &token);
    if let Ok(access) = &direct {
        assert_eq!(access.audience, RESOURCE);
        assert_eq!(access.issuer, ISSUER);
        assert!(access.expires_at.as_secs().saturating_add(LEEWAY) > NOW);
        assert!(!access.subject.is_empty() && !access.jti.is_empty());
    }
    let mut header = b"Bearer ".to_vec();
    header.extend_from_slice(token.as_bytes());
    let via_header = f.rs.authenticate(now, [header.as_slice()]);
    // The header path validates what the header parser extracts (leading spaces are the
    // separator, not part of the token).
    match parse_bearer_authorization(&header) {
        Ok(extracted) => {
            let expected = base_scopes(
                &f.rs,
                if extracted == token {
                    direct.clone()
                } else {
                    mcp_auth_proto::jwt::validate(policy(), keys(), now, extracted)
                },
            );
            match (&expected, &via_header) {
                (Ok(a), Ok(b)) => assert_eq!(a, b),
                (Err(r), Err(c)) => {
                    assert_eq!(*r, c.rejection);
                    check_rs_challenge(c);
                }
                (a, b) => panic!("validator {a:?} vs header path {b:?}"),
            }
        }
        Err(_) => {
            assert!(direct.is_err(), "a valid token the header parser refuses");
            let c = via_header.clone().expect_err("malformed header accepted");
            assert_eq!(c.rejection, Rejection::MalformedAuthorization);
            check_rs_challenge(&c);
        }
    }
    // The cached path answers the same, on the miss and on the hit.
    let mut cached = f.rs.clone();
    for _ in 0..2 {
        let again = cached.authenticate_cached(now, [header.as_slice()]);
        assert_eq!(
            again.map_err(|c| c.rejection),
            via_header.clone().map_err(|c| c.rejection)
        );
    }
    // The raw bytes as the whole header value.
    match f.rs.authenticate(now, [data]) {
        Ok(access) => assert_eq!(access.audience, RESOURCE),
        Err(c) => check_rs_challenge(&c),
    }
}

/// What the resource server answers for a validator verdict: a valid token without the
/// configured base scopes is refused with `insufficient_scope` (PF-19).
fn base_scopes(
    rs: &mcp_auth_proto::resource::ResourceServer,
    verdict: Result<mcp_auth_proto::jwt::Access, Rejection>,
) -> Result<mcp_auth_proto::jwt::Access, Rejection> {
    verdict.and_then(|access| {
        if rs.config().base_scopes.is_subset(&access.scopes) {
            Ok(access)
        } else {
            Err(Rejection::InsufficientScope)
        }
    })
}

/// A resource-server refusal is 400, 401 or 403 with a Bearer challenge that names the PRM and
/// parses back.
fn check_rs_challenge(c: &mcp_auth_proto::resource::Challenge) {
    assert!([400, 401, 403].contains(&c.status), "{c:?}");
    assert_eq!(c.status, c.rejection.code().status());
    let parsed = parse_www_authenticate([c.www_authenticate.as_str()])
        .ok()
        .and_then(|ch| BearerChallenge::from_challenges(&ch).ok().flatten())
        .unwrap_or_else(|| panic!("unparsable challenge {:?}", c.www_authenticate));
    assert_eq!(
        parsed.resource_metadata.as_deref(),
        Some(fixture().rs.metadata_url())
    );
    assert_eq!(
        parsed.error.is_some(),
        c.rejection != Rejection::NoCredentials
    );
}

// ---------------------------------------------------------------------------------------------
// Structure-aware tokens

/// An arbitrary JSON value, as text (nested at most `depth` levels).
fn gen_json_value(g: &mut Gen<'_>, depth: usize) -> String {
    match g.below(if depth == 0 { 7 } else { 9 }) {
        0 => "null".to_owned(),
        1 => g.pick(&["true", "false"]).to_owned(),
        2 => g.u64().to_string(),
        3 => g
            .pick(&[
                "-1",
                "0",
                "1.5",
                "1e3",
                "-0",
                "18446744073709551616",
                "1e400",
            ])
            .to_owned(),
        4 => json_str(&g.string(24)),
        5 => json_str(g.pick(&[
            "EdDSA", "at+jwt", "k1", ISSUER, RESOURCE, "none", "HS256", "b64",
        ])),
        6 => format!(
            "\"{}\"",
            g.pick(&["\\u0000", "\\ud800", "a\\\"b", "\\u0061"])
        ),
        7 => {
            let n = g.below(3);
            let items: Vec<String> = (0..n).map(|_| gen_json_value(g, depth - 1)).collect();
            format!("[{}]", items.join(","))
        }
        _ => {
            let n = g.below(3);
            let items: Vec<String> = (0..n)
                .map(|_| {
                    let k = json_str(&g.string(8));
                    format!("{k}:{}", gen_json_value(g, depth - 1))
                })
                .collect();
            format!("{{{}}}", items.join(","))
        }
    }
}

/// A member name as JSON text, sometimes spelled with a `\u` escape.
fn gen_key(g: &mut Gen<'_>, name: &str) -> String {
    if g.one_in(16)
        && let Some(first) = name.chars().next()
    {
        return format!(
            "\"\\u{:04x}{}\"",
            u32::from(first),
            &name[first.len_utf8()..]
        );
    }
    json_str(name)
}

/// A JSON object from members (name, value text); sometimes an array or garbage instead.
fn gen_object(g: &mut Gen<'_>, members: Vec<(String, String)>) -> Vec<u8> {
    match g.below(24) {
        0 => return g.bytes(64),
        1 => {
            let values: Vec<&str> = members.iter().map(|(_, v)| v.as_str()).collect();
            return format!("[{}]", values.join(",")).into_bytes();
        }
        _ => {}
    }
    let ws = if g.one_in(8) { " \n\t" } else { "" };
    let body: Vec<String> = members
        .iter()
        .map(|(k, v)| format!("{ws}{}{ws}:{ws}{v}", gen_key(g, k)))
        .collect();
    format!("{ws}{{{}}}{ws}", body.join(",")).into_bytes()
}

/// A time claim relative to `now`, as JSON text.
fn gen_time(g: &mut Gen<'_>, now: u64) -> String {
    let leeway = LEEWAY as i64;
    let offset = match g.below(4) {
        0 => g.pick(&[
            -3601,
            -leeway - 1,
            -leeway,
            -leeway + 1,
            -1,
            0,
            1,
            leeway - 1,
            leeway,
            leeway + 1,
            3600,
        ]),
        1 => g.i64_in(-100, 100),
        2 => g.i64_in(-100_000, 100_000),
        _ => g.i64_in(-(now as i64) - 10, 1 << 40),
    };
    let t = (now as i64).saturating_add(offset);
    match g.below(16) {
        0 => format!("{t}.0"),
        1 => format!("\"{t}\""),
        2 => "null".to_owned(),
        3 => u64::MAX.to_string(),
        4 => format!("{t}.5"),
        5 => gen_json_value(g, 1),
        _ => t.to_string(),
    }
}

/// Header JSON text.
fn gen_header(g: &mut Gen<'_>) -> Vec<u8> {
    let mut m: Vec<(String, String)> = Vec::new();
    if !g.one_in(16) {
        let alg = match g.below(12) {
            0 => gen_json_value(g, 1),
            1 => json_str(g.pick(&["ES256", "RS256", "none", "HS256", "eddsa", "EdDSA "])),
            _ => json_str("EdDSA"),
        };
        m.push(("alg".into(), alg));
    }
    if !g.one_in(12) {
        let typ = match g.below(12) {
            0 => gen_json_value(g, 1),
            1 => json_str(g.pick(&[
                "AT+JWT",
                "Application/At+Jwt",
                "JWT",
                "application/jwt",
                "at+jwt;charset=utf-8",
                "",
            ])),
            2 => "null".to_owned(),
            3 | 4 => json_str("application/at+jwt"),
            _ => json_str("at+jwt"),
        };
        m.push(("typ".into(), typ));
    }
    if !g.one_in(4) {
        let kid = match g.below(10) {
            0 => gen_json_value(g, 1),
            1 => json_str(g.pick(&["k2", "", "K1"])),
            2 => "null".to_owned(),
            _ => json_str("k1"),
        };
        m.push(("kid".into(), kid));
    }
    for _ in 0..g.below(3) {
        let name = if g.one_in(4) {
            g.string(8)
        } else {
            g.pick(&[
                "crit", "jku", "jwk", "x5u", "x5c", "cty", "x5t", "x5t#S256", "enc", "zip", "url",
                "nonce", "b64", "alg", "typ", "kid", "foo",
            ])
            .to_owned()
        };
        let value = gen_json_value(g, 2);
        m.push((name, value));
    }
    rotate(g, &mut m);
    gen_object(g, m)
}

fn rotate<T>(g: &mut Gen<'_>, items: &mut [T]) {
    let n = g.below(items.len().max(1));
    items.rotate_left(n);
}

/// Claims JSON text, times relative to `now`.
fn gen_claims(g: &mut Gen<'_>, now: u64) -> Vec<u8> {
    let mut m: Vec<(String, String)> = Vec::new();
    let string_claim = |g: &mut Gen<'_>, good: &str, bad: &[&str]| -> String {
        match g.below(10) {
            0 => gen_json_value(g, 1),
            1 => json_str(g.pick(bad)),
            _ => json_str(good),
        }
    };
    if !g.one_in(16) {
        let v = string_claim(
            g,
            ISSUER,
            &[
                "https://as.example/",
                "https://AS.example",
                OTHER_RESOURCE,
                "",
            ],
        );
        m.push(("iss".into(), v));
    }
    if !g.one_in(16) {
        let aud = match g.below(10) {
            0 => gen_json_value(g, 2),
            1 => format!("[{}]", json_str(RESOURCE)),
            2 => format!("[{},{}]", json_str(OTHER_RESOURCE), json_str(RESOURCE)),
            3 => format!("[{}]", json_str(OTHER_RESOURCE)),
            4 => "[]".to_owned(),
            5 => json_str(g.pick(&[
                "https://mcp.example/mcp/",
                "https://MCP.example/mcp",
                OTHER_RESOURCE,
                "",
            ])),
            _ => json_str(RESOURCE),
        };
        m.push(("aud".into(), aud));
    }
    for name in ["sub", "jti", "client_id"] {
        if !g.one_in(16) {
            let v = string_claim(g, name, &["", "x"]);
            m.push((name.into(), v));
        }
    }
    if !g.one_in(16) {
        let v = gen_time(g, now);
        m.push(("exp".into(), v));
    }
    if !g.one_in(16) {
        let v = gen_time(g, now);
        m.push(("iat".into(), v));
    }
    if !g.one_in(3) {
        let v = gen_time(g, now);
        m.push(("nbf".into(), v));
    }
    if !g.one_in(3) {
        let v = match g.below(8) {
            0 => gen_json_value(g, 1),
            1 => json_str(g.pick(&["", "a\"b", "mcp:tools  mcp:admin", "\u{e9}"])),
            _ => json_str("mcp:tools"),
        };
        m.push(("scope".into(), v));
    }
    for _ in 0..g.below(3) {
        let name = if g.one_in(3) {
            g.string(8)
        } else {
            g.pick(&["iss", "aud", "exp", "nbf", "sub", "jti", "x", "cnf"])
                .to_owned()
        };
        let value = gen_json_value(g, 2);
        m.push((name, value));
    }
    rotate(g, &mut m);
    gen_object(g, m)
}

/// A compact JWS over arbitrary header and claims, signed with the real key (so the signature
/// verifies unless the input chooses to break it).
fn gen_token(g: &mut Gen<'_>, now: u64) -> String {
    let header = gen_header(g);
    let claims = gen_claims(g, now);
    let mut token = b64(&header);
    token.push('.');
    token.push_str(&b64(&claims));
    let signature = fixture().signer.sign(token.as_bytes()).unwrap_or_default();
    let mut signature = b64(&signature);
    match g.below(32) {
        0 => signature.clear(),
        1 => signature = signature.replacen('A', "B", 1),
        2 => signature.push('='),
        3 => signature.push_str(".x"),
        _ => {}
    }
    token.push('.');
    token.push_str(&signature);
    token
}

/// The members named `keep` of a JSON object, as values; other members are skipped without
/// being interpreted (as the validator's typed parse skips them). `None` when the text is not
/// an object, a kept member repeats, or a kept value is not representable as a JSON value.
fn members(bytes: &[u8], keep: &'static [&'static str]) -> Option<BTreeMap<String, Value>> {
    struct Members(&'static [&'static str]);
    impl<'de> serde::de::DeserializeSeed<'de> for Members {
        type Value = BTreeMap<String, Value>;
        fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
            d.deserialize_map(self)
        }
    }
    impl<'de> serde::de::Visitor<'de> for Members {
        type Value = BTreeMap<String, Value>;
        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("a JSON object")
        }
        fn visit_map<A: serde::de::MapAccess<'de>>(
            self,
            mut map: A,
        ) -> Result<Self::Value, A::Error> {
            let mut out = BTreeMap::new();
            while let Some(key) = map.next_key::<String>()? {
                if self.0.contains(&key.as_str()) {
                    let value: Value = map.next_value()?;
                    if out.insert(key, value).is_some() {
                        return Err(serde::de::Error::custom("duplicate member"));
                    }
                } else {
                    map.next_value::<serde::de::IgnoredAny>()?;
                }
            }
            Ok(out)
        }
    }
    use serde::de::DeserializeSeed as _;
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let out = Members(keep).deserialize(&mut de).ok()?;
    de.end().ok()?;
    Some(out)
}

const HEADER_MEMBERS: &[&str] = &["alg", "typ", "kid", "crit", "jku", "jwk", "x5u", "x5c"];
const CLAIM_MEMBERS: &[&str] = &[
    "iss",
    "sub",
    "aud",
    "exp",
    "iat",
    "nbf",
    "jti",
    "client_id",
    "scope",
];

/// The raw decoded header and claims of a compact token.
fn token_parts(token: &str) -> Option<(Vec<u8>, Vec<u8>)> {
    let mut parts = token.split('.');
    let header = URL_SAFE_NO_PAD.decode(parts.next()?).ok()?;
    let claims = URL_SAFE_NO_PAD.decode(parts.next()?).ok()?;
    Some((header, claims))
}

/// The validator-relevant members of a token's header and claims.
fn token_json(token: &str) -> Option<(Value, Value)> {
    let (header, claims) = token_parts(token)?;
    let h = members(&header, HEADER_MEMBERS)?;
    let c = members(&claims, CLAIM_MEMBERS)?;
    Some((
        Value::Object(h.into_iter().collect()),
        Value::Object(c.into_iter().collect()),
    ))
}

fn is_access_token_typ(v: Option<&Value>) -> bool {
    v.and_then(Value::as_str).is_some_and(|t| {
        t.eq_ignore_ascii_case("at+jwt") || t.eq_ignore_ascii_case("application/at+jwt")
    })
}

const FORBIDDEN_HEADERS: [&str; 5] = ["crit", "jku", "jwk", "x5u", "x5c"];

/// An independent statement of what an accepted token's JSON must look like.
fn check_accepted_json(
    header: &Value,
    claims: &Value,
    now: u64,
    access: &mcp_auth_proto::jwt::Access,
) {
    let h = header.as_object().expect("accepted header is an object");
    let c = claims.as_object().expect("accepted claims are an object");
    assert_eq!(h.get("alg").and_then(Value::as_str), Some("EdDSA"));
    assert!(is_access_token_typ(h.get("typ")), "typ {:?}", h.get("typ"));
    for name in FORBIDDEN_HEADERS {
        assert!(!h.contains_key(name), "accepted with header {name}");
    }
    assert!(matches!(
        h.get("kid"),
        None | Some(Value::Null) | Some(Value::String(_))
    ));
    if let Some(Value::String(kid)) = h.get("kid") {
        assert_eq!(kid, "k1");
    }
    assert_eq!(c.get("iss").and_then(Value::as_str), Some(ISSUER));
    let aud_ok = match c.get("aud") {
        Some(Value::String(a)) => a == RESOURCE,
        Some(Value::Array(v)) => v.iter().any(|a| a.as_str() == Some(RESOURCE)),
        _ => false,
    };
    assert!(aud_ok, "aud {:?}", c.get("aud"));
    let exp = c.get("exp").and_then(Value::as_u64).expect("integer exp");
    assert!(
        now < exp.saturating_add(LEEWAY),
        "expired: exp {exp} now {now}"
    );
    match c.get("nbf") {
        None | Some(Value::Null) => {}
        Some(v) => {
            let nbf = v.as_u64().expect("integer nbf");
            assert!(nbf <= now + LEEWAY, "not yet valid: nbf {nbf} now {now}");
        }
    }
    assert!(c.get("iat").and_then(Value::as_u64).is_some());
    for name in ["sub", "jti", "client_id"] {
        let v = c.get(name).and_then(Value::as_str).unwrap_or("");
        assert!(!v.is_empty(), "empty {name}");
    }
    assert_eq!(access.subject, c["sub"].as_str().unwrap_or(""));
    assert_eq!(access.jti, c["jti"].as_str().unwrap_or(""));
    assert_eq!(access.client_id, c["client_id"].as_str().unwrap_or(""));
    assert_eq!(access.expires_at.as_secs(), exp);
}

/// Structure-aware token validation: arbitrary header and claims JSON, signed with the real
/// Ed25519 key, so inputs get past the signature and exercise the header and claim checks.
/// Property: accepted ⇒ the `iss`, `aud`, `typ`, `exp`, `nbf` (and header) rules hold, checked
/// independently on the JSON.
pub fn token_claims(data: &[u8]) {
    let mut g = Gen::new(data);
    let now = NOW + g.below(4000) as u64;
    let token = gen_token(&mut g, now);
    let result = mcp_auth_proto::jwt::validate(policy(), keys(), UnixTime::from_secs(now), &token);
    if let Ok(access) = &result {
        let (header, claims) =
            token_json(&token).unwrap_or_else(|| panic!("accepted non-JSON token {token}"));
        check_accepted_json(&header, &claims, now, access);
    }
    // The same token through the header path gives the same answer.
    let header = format!("Bearer {token}");
    let via_rs = fixture()
        .rs
        .authenticate(UnixTime::from_secs(now), [header.as_bytes()]);
    match (&base_scopes(&fixture().rs, result.clone()), via_rs) {
        (Ok(a), Ok(b)) => assert_eq!(*a, b),
        (Err(r), Err(c)) if parse_bearer_authorization(header.as_bytes()).is_ok() => {
            assert_eq!(*r, c.rejection);
        }
        (Err(_), Err(c)) => assert_eq!(c.rejection, Rejection::MalformedAuthorization),
        (a, b) => panic!("validator {a:?} vs resource server {b:?}"),
    }
    // The verified-token cache answers exactly what a validation would, also on a hit at a
    // later (or earlier) time: fill it at `now`, then ask again around the token's lifetime.
    let mut cached = fixture().rs.clone();
    for _ in 0..3 {
        let offset = g.pick(&[0i64, 1, -1, 29, 30, 31, 59, 60, 61, 3570, 3600, 3630, -3600]);
        let t = UnixTime::from_secs(now.saturating_add_signed(offset + g.i64_in(-2, 2)));
        let hit = cached
            .authenticate_cached(t, [header.as_bytes()])
            .map_err(|c| c.rejection);
        let fresh = fixture()
            .rs
            .authenticate(t, [header.as_bytes()])
            .map_err(|c| c.rejection);
        assert_eq!(
            hit,
            fresh,
            "cache and validation disagree at {}",
            t.as_secs()
        );
    }
    // Valid for the other resource only if its audience names it too.
    if fixture()
        .other_rs
        .authenticate(UnixTime::from_secs(now), [header.as_bytes()])
        .is_ok()
    {
        let (_, claims) = token_json(&token).expect("accepted token is JSON");
        let names_other = match &claims["aud"] {
            Value::String(a) => a == OTHER_RESOURCE,
            Value::Array(v) => v.iter().any(|a| a.as_str() == Some(OTHER_RESOURCE)),
            _ => false,
        };
        assert!(
            names_other,
            "accepted by a resource its audience does not name"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// token_differential

/// The time at which [`token_differential`] validates: fixed, as everywhere else in these
/// targets (a date of 2025, so that the generated times have the magnitude of real ones).
const DIFFERENTIAL_NOW: u64 = 1_750_000_000;

/// jsonwebtoken's verdict on a token, configured with our checks but the time comparisons, and
/// the claims it decoded.
///
/// `jsonwebtoken::decode` compares `exp` and `nbf` with its own wall clock and cannot be given a
/// time, so its comparisons are made neutral and [`time_verdict`] makes them at the target's
/// fixed `now`: `exp` is not compared (it is a required claim, so its presence and type are
/// still checked), and `nbf` is checked with a leeway of 2^62 s, which still refuses a
/// malformed `nbf` (`null`, a string, a negative number) but compares it only with a time
/// beyond any `now`, whatever the wall clock says: the verdict does not depend on the clock.
fn jsonwebtoken_verdict(
    token: &str,
    key: &jsonwebtoken::DecodingKey,
) -> Result<AccessClaims, String> {
    use jsonwebtoken::{Algorithm, Validation, decode};
    let mut validation = Validation::new(Algorithm::EdDSA);
    validation.set_issuer(&[ISSUER]);
    validation.set_audience(&[RESOURCE]);
    validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
    validation.validate_exp = false;
    validation.validate_nbf = true;
    validation.leeway = 1 << 62;
    decode::<AccessClaims>(token, key, &validation)
        .map(|data| data.claims)
        .map_err(|e| format!("{e:?}"))
}

/// RFC 7519 §4.1.4 and §4.1.5 with the leeway, at `now`, on the claims jsonwebtoken decoded: the
/// token must not be accepted on or after `exp + leeway`, nor before `nbf - leeway`.
/// (jsonwebtoken's own rule refuses only when `exp < now - leeway`, which accepts one second
/// more.)
fn time_verdict(claims: &AccessClaims, now: u64) -> Result<(), String> {
    if now >= claims.exp.saturating_add(LEEWAY) {
        return Err("expired".into());
    }
    if claims
        .nbf
        .is_some_and(|nbf| now.saturating_add(LEEWAY) < nbf)
    {
        return Err("not yet valid".into());
    }
    Ok(())
}

/// Our checks that jsonwebtoken does not make: size, `typ`, forbidden header parameters, the
/// `kid` of the key set, objects rather than arrays, non-empty `sub`/`jti`/`client_id`, a
/// valid `scope`, and `iat` no later than `now` plus the leeway (JWT-15).
fn extra_checks(token: &str, now: u64) -> Result<(), String> {
    if token.len() > mcp_auth_proto::jwt::TOKEN_LEN_MAX {
        return Err("too long".into());
    }
    let (header, claims) = token_json(token).ok_or("not JSON")?;
    let h = header.as_object().ok_or("header not an object")?;
    let c = claims.as_object().ok_or("claims not an object")?;
    if !is_access_token_typ(h.get("typ")) {
        return Err("typ".into());
    }
    if FORBIDDEN_HEADERS.iter().any(|n| h.contains_key(*n)) {
        return Err("forbidden header".into());
    }
    match h.get("kid") {
        None | Some(Value::Null) => {}
        Some(Value::String(k)) if k == "k1" => {}
        Some(_) => return Err("kid".into()),
    }
    for name in ["sub", "jti", "client_id"] {
        if c.get(name)
            .and_then(Value::as_str)
            .is_none_or(str::is_empty)
        {
            return Err(format!("empty {name}"));
        }
    }
    match c.get("scope") {
        None | Some(Value::Null) => {}
        Some(Value::String(s)) if ScopeSet::parse(s).is_ok() => {}
        Some(_) => return Err("scope".into()),
    }
    if c.get("iat")
        .and_then(Value::as_u64)
        .is_some_and(|iat| now.saturating_add(LEEWAY) < iat)
    {
        return Err("iat in the future".into());
    }
    Ok(())
}

/// Does jsonwebtoken refuse this token only because of header members we ignore (it types
/// some strictly and reads every other one as a `serde_json::Value`, which refuses numbers like
/// `1e400` and lone surrogates)? Checked by keeping only the members we read and asking its
/// header parser again.
fn jsonwebtoken_header_strictness(token: &str) -> bool {
    let Some((raw, _)) = token_parts(token) else {
        return false;
    };
    if serde_json::from_slice::<jsonwebtoken::Header>(&raw).is_ok() {
        return false;
    }
    let Some(kept) = members(&raw, HEADER_MEMBERS) else {
        return false;
    };
    serde_json::from_value::<jsonwebtoken::Header>(Value::Object(kept.into_iter().collect()))
        .is_ok()
}

/// Differential: our `jwt::validate` against jsonwebtoken's `decode` configured with the same
/// checks (alg EdDSA, `iss`, `aud`, required claims, the types of `exp` and `nbf`), the time
/// checks of RFC 7519 at the fixed `DIFFERENTIAL_NOW` with the same leeway, plus our extra
/// checks on top. Accept/reject must agree; otherwise the target panics with both results.
pub fn token_differential(data: &[u8]) {
    static KEY: OnceLock<jsonwebtoken::DecodingKey> = OnceLock::new();
    let key = KEY.get_or_init(|| {
        let jwk = fixture().as_signer.public_jwk();
        jsonwebtoken::DecodingKey::from_jwk(jwk).expect("decoding key")
    });
    let mut g = Gen::new(data);
    let now = DIFFERENTIAL_NOW;
    let token = gen_token(&mut g, now);
    let ours = mcp_auth_proto::jwt::validate(policy(), keys(), UnixTime::from_secs(now), &token);
    let theirs = jsonwebtoken_verdict(&token, key)
        .and_then(|claims| time_verdict(&claims, now))
        .and_then(|()| extra_checks(&token, now));
    if ours.is_ok() && theirs.is_err() && jsonwebtoken_header_strictness(&token) {
        return;
    }
    assert_eq!(
        ours.is_ok(),
        theirs.is_ok(),
        "disagreement on {token}\n  header {}\n  claims {}\n  ours: {ours:?}\n  jsonwebtoken+extra: {theirs:?}",
        token_part(&token, 0),
        token_part(&token, 1),
    );
}

fn token_part(token: &str, i: usize) -> String {
    token
        .split('.')
        .nth(i)
        .and_then(|p| URL_SAFE_NO_PAD.decode(p).ok())
        .map(|b| String::from_utf8_lossy(&b).into_owned())
        .unwrap_or_default()
}

// ---------------------------------------------------------------------------------------------
// bearer_header

/// An independent statement of RFC 6750 §2.1 for one `Authorization` value.
fn bearer_oracle(value: &[u8]) -> Result<&[u8], AuthorizationError> {
    let is_tchar = |b: u8| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b);
    let scheme_len = value.iter().take_while(|&&b| is_tchar(b)).count();
    if !value[..scheme_len].eq_ignore_ascii_case(b"bearer") {
        return Err(AuthorizationError::OtherScheme);
    }
    if value.len() > MAX_HEADER_LEN {
        return Err(AuthorizationError::Malformed);
    }
    let rest = &value[6..];
    let spaces = rest.iter().take_while(|&&b| b == b' ').count();
    let token = &rest[spaces..];
    let body = token
        .iter()
        .take_while(|&&b| b.is_ascii_alphanumeric() || b"-._~+/".contains(&b))
        .count();
    let pad_ok = token[body..].iter().all(|&b| b == b'=');
    if spaces == 0 || body == 0 || !pad_ok {
        return Err(AuthorizationError::Malformed);
    }
    Ok(token)
}

/// The bearer `Authorization` header parser against an independent oracle, and the resource
/// server's answer to it (one value, and the value repeated).
pub fn bearer_header(data: &[u8]) {
    let ours = parse_bearer_authorization(data);
    let oracle = bearer_oracle(data);
    assert_eq!(
        ours.map(str::as_bytes),
        oracle,
        "{:?}",
        String::from_utf8_lossy(data)
    );
    let rs = &fixture().rs;
    let now = UnixTime::from_secs(NOW);
    match rs.authenticate(now, [data]) {
        Ok(access) => assert!(ours.is_ok() && access.audience == RESOURCE),
        Err(c) => {
            check_rs_challenge(&c);
            match ours {
                Err(AuthorizationError::OtherScheme) => {
                    assert_eq!(c.rejection, Rejection::NoCredentials);
                    assert_eq!(c.status, 401);
                }
                Err(AuthorizationError::Malformed) => {
                    assert_eq!(c.rejection, Rejection::MalformedAuthorization);
                    assert_eq!(c.status, 400);
                }
                Ok(_) => assert!(
                    c.status == 401 || c.rejection == Rejection::InsufficientScope,
                    "{c:?}"
                ),
            }
        }
    }
    // Credentials sent twice are refused as malformed, whatever they are.
    let twice = rs.authenticate(now, [data, data]);
    assert_eq!(
        twice.map_err(|c| c.rejection),
        Err(Rejection::MalformedAuthorization)
    );
}

// ---------------------------------------------------------------------------------------------
// www_authenticate

/// `WWW-Authenticate` parsing (the input split into field lines at `\n`) and Bearer challenge
/// selection; property: `to_header_value` output re-parses to the sanitized value, both for
/// parsed challenges and for challenges built from arbitrary strings.
pub fn www_authenticate(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let lines: Vec<&str> = text.split('\n').collect();
    if let Ok(challenges) = parse_www_authenticate(lines.iter().copied()) {
        assert!(challenges.len() <= mcp_auth_proto::challenge::MAX_CHALLENGES);
        for c in &challenges {
            assert!(!c.scheme.is_empty());
            assert!(c.params.len() <= mcp_auth_proto::challenge::MAX_PARAMS);
            assert!(c.token68.is_none() || c.params.is_empty());
            for (name, _) in &c.params {
                assert_eq!(*name, name.to_ascii_lowercase());
                assert!(c.param(name).is_some());
            }
        }
        if let Ok(Some(bearer)) = BearerChallenge::from_challenges(&challenges) {
            round_trip(&bearer);
        }
        // A single-line rendering of the first Bearer challenge parses the same way.
        let _ = BearerChallenge::from_challenges(&challenges);
    }
    // Arbitrary field values.
    let mut g = Gen::new(data);
    let field = |g: &mut Gen<'_>| g.bool().then(|| g.string(64));
    let built = BearerChallenge {
        realm: field(&mut g),
        resource_metadata: field(&mut g),
        error: field(&mut g),
        error_description: field(&mut g),
        scope: field(&mut g),
    };
    round_trip(&built);
}

fn round_trip(b: &BearerChallenge) {
    let rendered = b.to_header_value();
    let back = parse_www_authenticate([rendered.as_str()])
        .unwrap_or_else(|e| panic!("{rendered:?} does not parse: {e:?}"));
    let back = BearerChallenge::from_challenges(&back)
        .unwrap_or_else(|e| panic!("{rendered:?}: {e:?}"))
        .unwrap_or_else(|| panic!("{rendered:?}: no Bearer challenge"));
    assert_eq!(back, b.sanitized(), "{rendered:?}");
    // Sanitizing is idempotent.
    assert_eq!(back.sanitized(), back);
}

// ---------------------------------------------------------------------------------------------
// metadata_json

/// PRM, AS metadata (RFC 8414 and OpenID discovery share one type), DCR request and response,
/// token response and JWK Set parsing of the same bytes, `ClientMetadata::validate`, and
/// registration through the AS. Properties: what parses re-serializes and parses to the same
/// value; a validated client has only acceptable redirect URIs, methods and types, and
/// validating what it echoes succeeds again.
pub fn metadata_json(data: &[u8]) {
    if let Ok(prm) = serde_json::from_slice::<ProtectedResourceMetadata>(data) {
        let again: ProtectedResourceMetadata =
            serde_json::from_slice(&serde_json::to_vec(&prm).unwrap_or_default())
                .expect("PRM round trip");
        assert_eq!(again, prm);
    }
    if let Ok(asm) = serde_json::from_slice::<AuthorizationServerMetadata>(data) {
        let again: AuthorizationServerMetadata =
            serde_json::from_slice(&serde_json::to_vec(&asm).unwrap_or_default())
                .expect("ASM round trip");
        assert_eq!(again, asm);
    }
    let _ = serde_json::from_slice::<RegistrationResponse>(data);
    let _ = serde_json::from_slice::<TokenResponse>(data);
    if let Ok(keys) = KeySet::from_json(data) {
        assert!(keys.len() <= mcp_auth_proto::jwt::KEYS_MAX);
    }
    let Ok(metadata) = serde_json::from_slice::<ClientMetadata>(data) else {
        return;
    };
    let limits = Limits::default();
    let Ok(client) = metadata.clone().validate(&limits) else {
        return;
    };
    assert!(!client.redirect_uris.is_empty());
    assert!(client.redirect_uris.len() <= limits.redirect_uris);
    for r in &client.redirect_uris {
        let p = parse_uri(r.as_str()).expect("registered redirect URI parses");
        assert!(p.fragment.is_none());
        assert!(
            p.scheme.eq_ignore_ascii_case("https")
                || (p.scheme.eq_ignore_ascii_case("http") && is_loopback_host(p.host)),
            "{r}"
        );
    }
    assert!(
        client
            .grant_types
            .iter()
            .all(|g| g == "authorization_code" || g == "refresh_token")
    );
    assert!(client.response_types.iter().all(|r| r == "code"));
    assert!(TokenAuthMethod::ALL.contains(&client.auth_method));
    // What the server echoes validates again to the same client.
    let echoed = client.metadata.clone();
    let again = echoed.validate(&limits).expect("echoed metadata validates");
    assert_eq!(again, client);
    // Registration through the AS agrees with validate.
    let mut server = fixture().driven.authorization_server.clone();
    let mut entropy = Sequential(7);
    let response = server
        .register(UnixTime::from_secs(NOW), &mut entropy, metadata)
        .expect("validated metadata registers");
    assert_eq!(
        response.client_secret.is_some(),
        client.auth_method != TokenAuthMethod::None
    );
    let wire = serde_json::to_vec(&response).unwrap_or_default();
    let parsed: RegistrationResponse =
        serde_json::from_slice(&wire).expect("registration response round trip");
    assert_eq!(parsed.client_id, response.client_id);
}

// ---------------------------------------------------------------------------------------------
// uri

/// `ResourceUri`, `Issuer` and `RedirectUri` parsing and the well-known builders, on the input
/// split at the first `\n` into two strings. Properties: canonicalizing twice changes nothing;
/// the strict policy accepts a subset of the lenient one, with the same result; issuers and
/// redirect URIs are kept verbatim; `RedirectUri::matches` is reflexive and symmetric and implies
/// the same canonical form modulo the loopback port; built URLs parse.
pub fn uri(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let (a, b) = text.split_once('\n').unwrap_or((&text, ""));
    for s in [a, b] {
        uri_one(s);
    }
    if let (Ok(ra), Ok(rb)) = (RedirectUri::parse(a), RedirectUri::parse(b)) {
        let m = ra.matches(&rb);
        assert_eq!(m, rb.matches(&ra), "matches is not symmetric: {a:?} {b:?}");
        if m {
            let ca = canonical(a, HttpPolicy::AllowLoopbackHttp).expect("redirect canonical");
            let cb = canonical(b, HttpPolicy::AllowLoopbackHttp).expect("redirect canonical");
            if ra.is_loopback() && rb.is_loopback() {
                assert_eq!(strip_port(&ca), strip_port(&cb), "{a:?} matches {b:?}");
            } else {
                assert_eq!(ca, cb, "{a:?} matches {b:?}");
                assert_eq!(a, b, "non-loopback redirect URIs match only exactly");
            }
        }
        // Appending keeps a redirect URI valid, up to the length bound.
        let with = ra.with_query(b);
        assert!(with.starts_with(a));
        match RedirectUri::parse(&with) {
            Ok(parsed) => assert_eq!(parsed.is_loopback(), ra.is_loopback()),
            Err(e) => assert!(
                e == UriError::TooLong && with.len() > mcp_auth_proto::uri::MAX_URI_LEN,
                "with_query({a:?}, {b:?}) = {with:?}: {e:?}"
            ),
        }
    }
}

fn strip_port(canonical: &str) -> String {
    let p = parse_uri(canonical).expect("canonical parses");
    let mut out = format!("{}://{}{}", p.scheme, p.host, p.path);
    if let Some(q) = p.query {
        out.push('?');
        out.push_str(q);
    }
    out
}

fn uri_one(s: &str) {
    let parts = parse_uri(s);
    if let Ok(p) = &parts {
        assert!(!p.host.is_empty());
        assert!(p.path.is_empty() || p.path.starts_with('/'));
        assert!(s.contains(p.host) && s.starts_with(p.scheme));
    }
    let strict = ResourceUri::parse(s, HttpPolicy::HttpsOnly);
    let lenient = ResourceUri::parse(s, HttpPolicy::AllowLoopbackHttp);
    if let Ok(r) = &strict {
        assert_eq!(
            lenient.as_ref(),
            Ok(r),
            "strict accepts what lenient refuses: {s:?}"
        );
    }
    for (r, policy) in [
        (&strict, HttpPolicy::HttpsOnly),
        (&lenient, HttpPolicy::AllowLoopbackHttp),
    ] {
        let Ok(r) = r else { continue };
        assert!(parts.is_ok());
        let again = ResourceUri::parse(r.as_str(), policy);
        assert_eq!(again.as_ref(), Ok(r), "canonicalizing twice changed {s:?}");
        assert!(!r.as_str().contains('#'));
        assert_ne!(r.path(), "/");
        let rebuilt = format!(
            "{}{}{}",
            r.origin(),
            r.path(),
            r.query().map(|q| format!("?{q}")).unwrap_or_default()
        );
        assert_eq!(rebuilt, r.as_str());
        // The PRM URL of a resource is a well-formed URL on the same origin.
        let prm = well_known_insert(r.as_str(), PRM_SUFFIX).expect("PRM URL of a resource");
        assert!(prm.starts_with(r.origin()));
        assert!(parse_uri(&prm).is_ok_and(|p| p.fragment.is_none()));
    }
    for policy in [HttpPolicy::HttpsOnly, HttpPolicy::AllowLoopbackHttp] {
        if let Ok(i) = Issuer::parse(s, policy) {
            assert_eq!(i.as_str(), s);
            for built in [
                well_known_insert(s, ASM_SUFFIX),
                well_known_insert(s, OIDC_SUFFIX),
                well_known_append(s, OIDC_SUFFIX),
                well_known_root(s, ASM_SUFFIX),
            ] {
                let built = built.expect("well-known URL of an issuer");
                let p = parse_uri(&built).expect("well-known URL parses");
                assert!(p.fragment.is_none() && p.query.is_none());
                assert!(p.path.contains("/.well-known/"));
            }
        }
    }
    if let Ok(r) = RedirectUri::parse(s) {
        assert_eq!(r.as_str(), s);
        assert!(r.matches(&r));
        // A redirect URI is also a resource identifier, if it leaves room for well-known URLs.
        if s.len() <= mcp_auth_proto::uri::MAX_IDENTIFIER_LEN {
            assert!(canonical(s, HttpPolicy::AllowLoopbackHttp).is_some());
        }
    }
    let _ = is_loopback_host(s);
}

// ---------------------------------------------------------------------------------------------
// request_decode

/// The state `request_decode` starts from: the harness after one flow, plus a pending consent
/// and an issued, unredeemed code, and the values that reach them.
struct RequestBase {
    harness: Harness,
    client_id: String,
    verifier: CodeVerifier,
    pending: ConsentPrompt,
    code: String,
    refresh_token: String,
    /// The browser session the pending consent belongs to.
    session: String,
}

fn fixed_verifier() -> CodeVerifier {
    CodeVerifier::parse(&"v".repeat(43)).expect("valid verifier")
}

fn request_base() -> &'static RequestBase {
    static BASE: OnceLock<RequestBase> = OnceLock::new();
    BASE.get_or_init(|| {
        let f = fixture();
        let mut harness = f.driven.clone();
        let client_id = f.tokens.client_id.clone();
        let verifier = fixed_verifier();
        let challenge = verifier.challenge();
        let query = form::encode([
            ("response_type", "code"),
            ("client_id", client_id.as_str()),
            ("redirect_uri", REDIRECT_URI),
            ("state", "s1"),
            ("code_challenge", challenge.as_str()),
            ("code_challenge_method", "S256"),
            ("resource", RESOURCE),
        ]);
        let params = Params::decode(query.as_bytes()).expect("query");
        let now = harness.now;
        let server = &mut harness.authorization_server;
        let accounts = Accounts::Single(Subject(USER.into()));
        let answer = server.authorize(
            now,
            &mut harness.entropy,
            &params,
            &accounts,
            &Browser::default(),
        );
        let session = answer.set_session.clone().expect("a new session");
        let browser = Browser {
            session: Some(session.clone()),
            peer: None,
        };
        let AuthorizeOutcome::Consent(first) = answer.outcome else {
            panic!("authorize must ask for consent")
        };
        let decision = ConsentDecision {
            id: first.id.clone(),
            csrf: first.csrf.clone(),
            approve: true,
            session: Some(session.clone()),
        };
        let AuthorizeOutcome::Redirect(redirect) =
            server.consent(now, &mut harness.entropy, &decision)
        else {
            panic!("consent must redirect")
        };
        let code = redirect.result.expect("code");
        let AuthorizeOutcome::Consent(pending) = server
            .authorize(now, &mut harness.entropy, &params, &accounts, &browser)
            .outcome
        else {
            panic!("authorize must ask for consent")
        };
        RequestBase {
            client_id,
            verifier,
            pending,
            code,
            refresh_token: f.tokens.refresh_token.clone().unwrap_or_default(),
            harness,
            session,
        }
    })
}

/// Values learned from the server's answers during one input (client ids, codes, consent ids,
/// refresh tokens), so that later requests of the same input reach deeper states.
#[derive(Default)]
struct Learned(BTreeMap<&'static str, String>);

impl Learned {
    fn get(&self, name: &'static str, default: &str) -> String {
        self.0
            .get(name)
            .cloned()
            .unwrap_or_else(|| default.to_owned())
    }

    fn learn(&mut self, response: &HttpResponse) {
        if let Some(location) = response.header_value("location")
            && let Some((_, query)) = location.split_once('?')
        {
            let q = harness::query_map(query);
            if let Some(code) = q.get("code") {
                self.0.insert("code", code.clone());
            }
        }
        if let Ok(Value::Object(m)) = serde_json::from_slice::<Value>(&response.body) {
            for name in ["client_id", "client_secret", "refresh_token"] {
                if let Some(Value::String(v)) = m.get(name) {
                    self.0.insert(name, v.clone());
                }
            }
        }
        if let Some(cookie) = response.header_value("set-cookie")
            && let Some(value) = cookie
                .split(';')
                .next()
                .and_then(|c| c.split_once('='))
                .map(|(_, v)| v)
        {
            self.0.insert("session", value.to_owned());
        }
        let body = String::from_utf8_lossy(&response.body);
        for name in ["id", "csrf"] {
            let marker = format!("name=\"{name}\" value=\"");
            if let Some(rest) = body.split_once(&marker).map(|(_, r)| r)
                && let Some((value, _)) = rest.split_once('"')
            {
                self.0.insert(name, value.to_owned());
            }
        }
    }
}

/// The good form for an endpoint, as (name, value) pairs.
fn good_pairs(route: usize, base: &RequestBase, learned: &Learned) -> Vec<(String, String)> {
    let client_id = learned.get("client_id", &base.client_id);
    let pairs: Vec<(&str, String)> = match route {
        0 => vec![
            ("response_type", "code".into()),
            ("client_id", client_id),
            ("redirect_uri", REDIRECT_URI.into()),
            ("state", "st".into()),
            ("code_challenge", base.verifier.challenge().as_str().into()),
            ("code_challenge_method", "S256".into()),
            ("resource", RESOURCE.into()),
            ("scope", "mcp:tools".into()),
        ],
        1 => vec![
            ("grant_type", "authorization_code".into()),
            ("code", learned.get("code", &base.code)),
            ("redirect_uri", REDIRECT_URI.into()),
            ("code_verifier", base.verifier.as_str().into()),
            ("client_id", client_id),
            ("resource", RESOURCE.into()),
        ],
        2 => vec![
            ("grant_type", "refresh_token".into()),
            (
                "refresh_token",
                learned.get("refresh_token", &base.refresh_token),
            ),
            ("client_id", client_id),
            ("resource", RESOURCE.into()),
            ("scope", "mcp:tools".into()),
        ],
        _ => vec![
            ("id", learned.get("id", &base.pending.id)),
            ("csrf", learned.get("csrf", &base.pending.csrf)),
            ("decision", "approve".into()),
        ],
    };
    pairs.into_iter().map(|(k, v)| (k.to_owned(), v)).collect()
}

const PARAM_NAMES: [&str; 17] = [
    "response_type",
    "client_id",
    "redirect_uri",
    "state",
    "code_challenge",
    "code_challenge_method",
    "resource",
    "scope",
    "grant_type",
    "code",
    "code_verifier",
    "refresh_token",
    "client_secret",
    "id",
    "csrf",
    "decision",
    "request_uri",
];

const PARAM_VALUES: [&str; 22] = [
    "",
    "code",
    "token",
    "S256",
    "plain",
    RESOURCE,
    OTHER_RESOURCE,
    "HTTPS://MCP.EXAMPLE/mcp",
    "https://mcp.example:443/mcp",
    "https://mcp.example/mcp#f",
    "https://unknown.example/mcp",
    REDIRECT_URI,
    "http://127.0.0.1:9999/callback",
    "https://evil.example/cb",
    "mcp:tools",
    "mcp:tools mcp:admin",
    "mcp:root",
    "authorization_code",
    "refresh_token",
    "client_credentials",
    "approve",
    "deny",
];

/// Mutate a good form: drop, repeat, replace or add parameters.
fn mutate_pairs(g: &mut Gen<'_>, pairs: &mut Vec<(String, String)>) {
    for _ in 0..g.below(4) {
        let n = pairs.len();
        match g.below(6) {
            0 if n > 0 => {
                let i = g.below(n);
                pairs.remove(i);
            }
            1 if n > 0 => {
                let i = g.below(n);
                let p = pairs[i].clone();
                pairs.push(p);
            }
            2 if n > 0 => {
                let i = g.below(n);
                pairs[i].1 = g.pick(&PARAM_VALUES).to_owned();
            }
            3 if n > 0 => {
                let i = g.below(n);
                pairs[i].1 = g.string(48);
            }
            4 => {
                let name = g.pick(&PARAM_NAMES).to_owned();
                let value = g.pick(&PARAM_VALUES).to_owned();
                pairs.push((name, value));
            }
            _ => {
                let name = g.string(12);
                let value = g.string(24);
                pairs.push((name, value));
            }
        }
    }
}

fn encode_pairs(g: &mut Gen<'_>, pairs: &[(String, String)]) -> String {
    if g.one_in(8) {
        // Raw, unencoded concatenation (lets `%`, `+`, `&`, `=` through as written).
        return pairs
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join("&");
    }
    form::encode(pairs.iter().map(|(k, v)| (k.as_str(), v.as_str())))
}

fn gen_registration_body(g: &mut Gen<'_>) -> Vec<u8> {
    if g.one_in(6) {
        return g.bytes(256);
    }
    let mut m = serde_json::Map::new();
    if !g.one_in(8) {
        let uris: Vec<Value> = (0..g.below(4).max(1))
            .map(|_| {
                Value::String(
                    g.pick(&[
                        REDIRECT_URI,
                        "http://localhost/cb",
                        "https://app.example/cb",
                        "http://app.example/cb",
                        "https://app.example/cb#f",
                        "javascript:alert(1)",
                        "com.example.app:/cb",
                        "http://[::1]:8080/cb?x=1",
                    ])
                    .to_owned(),
                )
            })
            .collect();
        m.insert("redirect_uris".into(), Value::Array(uris));
    }
    if g.bool() {
        let method = g.pick(&[
            "none",
            "client_secret_basic",
            "client_secret_post",
            "private_key_jwt",
        ]);
        m.insert("token_endpoint_auth_method".into(), method.into());
    }
    if g.bool() {
        let grants = g.pick(&[
            &["authorization_code", "refresh_token"][..],
            &["authorization_code"][..],
            &["refresh_token"][..],
            &["implicit"][..],
            &[][..],
        ]);
        m.insert("grant_types".into(), grants.into());
    }
    if g.one_in(4) {
        let types = g.pick(&[&["code"][..], &["token"][..], &[][..]]);
        m.insert("response_types".into(), types.into());
    }
    if g.bool() {
        let name = if g.bool() {
            "<script>alert(1)</script>\"'&".to_owned()
        } else {
            g.string(40)
        };
        m.insert("client_name".into(), name.into());
    }
    if g.one_in(4) {
        let scope = g.pick(&["mcp:tools", "a\"b", ""]);
        m.insert("scope".into(), scope.into());
    }
    if g.one_in(4) {
        let uri = g.pick(&["https://app.example", "not a uri", "javascript:x"]);
        m.insert(g.pick(&["client_uri", "logo_uri"]).into(), uri.into());
    }
    serde_json::to_vec(&Value::Object(m)).unwrap_or_default()
}

/// Arbitrary requests to the AS through `server::http::handle` (authorization query and token
/// form decoding, registration JSON, consent form, client authentication headers), on a harness
/// AS that already has a client, a pending consent, an issued code and a refresh token.
/// Properties: no 5xx; redirects go only to a registered redirect URI and carry `iss`; JSON
/// errors carry `error`; HTML never echoes markup; issued tokens are valid for the resource
/// they name.
pub fn request_decode(data: &[u8]) {
    let base = request_base();
    let mut h = base.harness.clone();
    if let Some(request) = raw_request(data) {
        let user = UserAgentPolicy::single(USER).auto_approving();
        let response = handle(
            &mut h.authorization_server,
            h.now,
            &mut h.entropy,
            &user,
            &request,
        );
        check_as_response(&h, &request, &response);
        return;
    }
    let mut g = Gen::new(data);
    let mut learned = Learned::default();
    let user = UserAgentPolicy {
        auto_approve: g.bool(),
        ..UserAgentPolicy::single(USER)
    };
    for _ in 0..4 {
        if g.is_empty() {
            break;
        }
        let route = g.below(7);
        let (path, method) = match route {
            0 => ("/authorize", Method::Get),
            1 | 2 => ("/token", Method::Post),
            3 => ("/consent", Method::Post),
            4 => ("/register", Method::Post),
            5 => (
                g.pick(&[
                    "/jwks",
                    "/.well-known/oauth-authorization-server",
                    "/.well-known/openid-configuration",
                    "/",
                    "/token/",
                    "/AUTHORIZE",
                ]),
                Method::Get,
            ),
            _ => ("", Method::Other),
        };
        let path = if path.is_empty() {
            g.string(32)
        } else {
            path.to_owned()
        };
        let method = if g.one_in(10) {
            g.pick(&[
                Method::Get,
                Method::Post,
                Method::Options,
                Method::Delete,
                Method::Other,
            ])
        } else {
            method
        };
        let mut request = HttpRequest::new(method, path);
        let form_text = |g: &mut Gen<'_>, learned: &Learned| {
            if g.one_in(10) {
                return g.string(200);
            }
            let mut pairs = good_pairs(route.min(3), base, learned);
            mutate_pairs(g, &mut pairs);
            encode_pairs(g, &pairs)
        };
        match route {
            0 => request.query = Some(form_text(&mut g, &learned)),
            4 => request.body = gen_registration_body(&mut g),
            _ if g.one_in(12) => request.body = g.bytes(300),
            _ => request.body = form_text(&mut g, &learned).into_bytes(),
        }
        if g.one_in(10) {
            request.query = Some(g.string(64));
        }
        let content_type = match (route, g.below(10)) {
            (_, 0) => None,
            (_, 1) => Some(g.string(40)),
            (_, 2) => Some("application/x-www-form-urlencoded; charset=UTF-8".to_owned()),
            (4, _) => Some("application/json".to_owned()),
            _ => Some("application/x-www-form-urlencoded".to_owned()),
        };
        if let Some(ct) = content_type {
            request = request.header("content-type", ct);
        }
        if !g.one_in(8) {
            let cookie = format!("mcp-auth-session={}", learned.get("session", &base.session));
            request = request.header("cookie", cookie);
        }
        match g.below(8) {
            0 => {
                let id = learned.get("client_id", &base.client_id);
                let secret = learned.get("client_secret", "secret");
                let creds = STANDARD.encode(format!("{id}:{secret}"));
                request = request.header("authorization", format!("Basic {creds}"));
            }
            1 => {
                let value = g.bytes(64);
                request = request.header("authorization", value);
            }
            2 => {
                request = request
                    .header("authorization", "Basic Og==")
                    .header("authorization", "Basic Og==");
            }
            _ => {}
        }
        let response = handle(
            &mut h.authorization_server,
            h.now,
            &mut h.entropy,
            &user,
            &request,
        );
        check_as_response(&h, &request, &response);
        learned.learn(&response);
        if g.one_in(4) {
            h.advance(g.pick(&[1, 59, 60, 601, 3600]));
        }
    }
}

/// A request written as text: `METHOD target`, header lines, an empty line, the body (so that
/// real requests are seeds). `None` unless the input starts with a method name and a space.
fn raw_request(data: &[u8]) -> Option<HttpRequest> {
    let (head, body) = match data.windows(2).position(|w| w == b"\n\n") {
        Some(i) => (&data[..i], &data[i + 2..]),
        None => (data, &b""[..]),
    };
    let head = std::str::from_utf8(head).ok()?;
    let mut lines = head.split('\n');
    let (method, target) = lines.next()?.split_once(' ')?;
    if !["GET", "POST", "OPTIONS", "DELETE", "PUT"].contains(&method) {
        return None;
    }
    let (path, query) = match target.split_once('?') {
        Some((p, q)) => (p, Some(q.to_owned())),
        None => (target, None),
    };
    let mut request = HttpRequest::new(Method::from_name(method), path).body(body);
    request.query = query;
    for line in lines {
        if let Some((name, value)) = line.split_once(':') {
            request = request.header(name.trim(), value.trim());
        }
    }
    Some(request)
}

fn check_as_response(h: &Harness, request: &HttpRequest, response: &HttpResponse) {
    let server = &h.authorization_server;
    assert!(
        [200, 201, 204, 303, 400, 401, 404, 405].contains(&response.status),
        "{request:?} -> {response:?}"
    );
    if response.status == 303 {
        let location = response
            .header_value("location")
            .expect("a redirect has a location");
        let registered = server.clients().any(|(_, c)| {
            c.redirect_uris.iter().any(|r| {
                location.len() > r.as_str().len()
                    && RedirectUri::parse(location).is_ok_and(|l| {
                        let base = l.as_str().split_once('?').map_or(l.as_str(), |(b, _)| b);
                        let rb = r.as_str().split_once('?').map_or(r.as_str(), |(b, _)| b);
                        RedirectUri::parse(base)
                            .ok()
                            .zip(RedirectUri::parse(rb).ok())
                            .is_some_and(|(lb, rb)| rb.matches(&lb))
                    })
            })
        });
        assert!(registered, "redirect to an unregistered URI: {location}");
        let query = location.split_once('?').map_or("", |(_, q)| q);
        let params = harness::query_map(query);
        assert_eq!(params.get("iss").map(String::as_str), Some(ISSUER));
        assert!(params.contains_key("code") || params.contains_key("error"));
    }
    let content_type = response.header_value("content-type").unwrap_or("");
    if content_type.starts_with("application/json") {
        let v: Value = serde_json::from_slice(&response.body).expect("JSON body");
        if response.status >= 400 {
            assert!(v["error"].is_string(), "{v}");
        }
        if response.status == 200
            && let Some(token) = v["access_token"].as_str()
        {
            let (_, claims) = token_json(token).expect("issued token decodes");
            let aud = claims["aud"].as_str().unwrap_or("");
            let rs = harness::resource_server(server, aud);
            let verdict = rs.authenticate(h.now, [format!("Bearer {token}").as_bytes()]);
            let scopes =
                ScopeSet::parse(claims["scope"].as_str().unwrap_or("")).unwrap_or_default();
            if rs.config().base_scopes.is_subset(&scopes) {
                verdict.expect("an issued token is valid for its audience");
            } else {
                assert_eq!(
                    verdict.map_err(|c| c.rejection).err(),
                    Some(Rejection::InsufficientScope)
                );
            }
        }
    }
    if content_type.starts_with("text/html") {
        let body = String::from_utf8_lossy(&response.body).to_ascii_lowercase();
        assert!(!body.contains("<script"), "unescaped markup: {body}");
    }
}

// ---------------------------------------------------------------------------------------------
// as_ops

/// A client the sequence registered.
struct OpsClient {
    id: String,
    secret: Option<String>,
    method: TokenAuthMethod,
    redirect_uris: Vec<String>,
}

/// A consent prompt the sequence obtained, and what its authorization request used.
struct OpsPrompt {
    prompt: ConsentPrompt,
    client: usize,
    verifier: usize,
    redirect_uri: String,
    redirect_sent: bool,
    created: UnixTime,
    used: bool,
}

/// A code the sequence obtained.
struct OpsCode {
    code: String,
    client: usize,
    verifier: usize,
    redirect_uri: String,
    redirect_sent: bool,
    resource: ResourceUri,
    scopes: ScopeSet,
    issued: UnixTime,
}

/// A refresh token the sequence obtained.
struct OpsRefresh {
    token: String,
    client: usize,
    resource: ResourceUri,
    scopes: ScopeSet,
}

const OPS_VERIFIERS: [&str; 3] = [
    "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
    "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb",
    "ccccccccccccccccccccccccccccccccccccccccccc-",
];

fn ops_verifier(i: usize) -> CodeVerifier {
    CodeVerifier::parse(OPS_VERIFIERS[i % OPS_VERIFIERS.len()]).expect("valid verifier")
}

struct Ops {
    server: AuthorizationServer,
    now: UnixTime,
    entropy: Sequential,
    clients: Vec<OpsClient>,
    prompts: Vec<OpsPrompt>,
    /// The one browser's session cookie.
    session: Option<String>,
    codes: Vec<OpsCode>,
    refresh: Vec<OpsRefresh>,
    /// Codes that were redeemed successfully.
    redeemed: BTreeSet<String>,
    /// Refresh tokens that were the current one of their grant (rotated ones are removed).
    current_refresh: BTreeSet<String>,
    /// Grants seen revoked.
    revoked: BTreeSet<u64>,
}

fn ops_server(g: &mut Gen<'_>) -> AuthorizationServer {
    let issuer = Issuer::parse(ISSUER, HttpPolicy::HttpsOnly).expect("issuer");
    let scopes = ScopeSet::from_tokens(["mcp:tools", "mcp:admin"]);
    let resources = [RESOURCE, OTHER_RESOURCE].map(|r| {
        (
            ResourceUri::parse(r, HttpPolicy::HttpsOnly).expect("resource"),
            scopes.clone(),
        )
    });
    let mut config = AsConfig::new(issuer, resources);
    config.default_scopes = ScopeSet::from_tokens(["mcp:tools"]);
    if g.one_in(3) {
        config.limits = Limits {
            clients: 3,
            pending: 3,
            codes: 3,
            grants: 3,
            redirect_uris: 2,
            state_len: 16,
            sessions: 2,
            ..Limits::default()
        };
    }
    if g.one_in(3) {
        config.lifetimes.refresh_idle = 200;
        config.lifetimes.refresh_absolute = 500;
        config.lifetimes.access_token = 100;
    }
    config.refresh_tokens = !g.one_in(8);
    AuthorizationServer::new(config, fixture().as_signer.clone())
}

impl Ops {
    fn register(&mut self, g: &mut Gen<'_>) {
        let method = g.pick(&TokenAuthMethod::ALL);
        let redirect_uris: Vec<String> = match g.below(4) {
            0 => vec![REDIRECT_URI.into(), "https://app.example/cb".into()],
            1 => vec!["http://127.0.0.1/callback".into()],
            2 => vec!["https://app.example/cb".into()],
            _ => vec![REDIRECT_URI.into()],
        };
        let grant_types = if g.one_in(4) {
            vec!["authorization_code".to_owned()]
        } else {
            vec!["authorization_code".to_owned(), "refresh_token".to_owned()]
        };
        let metadata = ClientMetadata {
            redirect_uris: redirect_uris.clone(),
            token_endpoint_auth_method: Some(method.as_str().into()),
            grant_types: Some(grant_types),
            client_name: Some("fuzz".into()),
            ..Default::default()
        };
        if let Ok(r) = self.server.register(self.now, &mut self.entropy, metadata) {
            assert_eq!(r.client_secret.is_some(), method != TokenAuthMethod::None);
            self.clients.push(OpsClient {
                id: r.client_id.0,
                secret: r.client_secret,
                method,
                redirect_uris,
            });
        }
    }

    fn authorize(&mut self, g: &mut Gen<'_>) {
        if self.clients.is_empty() {
            return;
        }
        let ci = g.below(self.clients.len());
        let verifier = g.below(OPS_VERIFIERS.len());
        let client = &self.clients[ci];
        let client_id = if g.one_in(16) {
            "unknown".to_owned()
        } else {
            client.id.clone()
        };
        let (redirect_uri, sent) = match g.below(6) {
            0 => (String::new(), false),
            1 => ("http://127.0.0.1:4242/callback".to_owned(), true),
            2 => ("https://evil.example/cb".to_owned(), true),
            _ => (g.pick(&client.redirect_uris), true),
        };
        let resource = g.pick(&[
            RESOURCE,
            RESOURCE,
            OTHER_RESOURCE,
            "HTTPS://MCP.EXAMPLE/mcp",
            "https://mcp.example:443/mcp",
            "https://mcp.example/mcp/",
            "https://unknown.example/mcp",
            "",
        ]);
        let scope = g.pick(&[
            "",
            "mcp:tools",
            "mcp:tools mcp:admin",
            "mcp:admin",
            "mcp:root",
        ]);
        let method = g.pick(&["S256", "S256", "S256", "plain", ""]);
        let challenge = ops_verifier(verifier).challenge();
        let mut pairs = vec![
            ("response_type", if g.one_in(16) { "token" } else { "code" }),
            ("client_id", client_id.as_str()),
            ("code_challenge", challenge.as_str()),
            ("code_challenge_method", method),
            ("resource", resource),
            ("scope", scope),
            ("state", "st"),
        ];
        if sent {
            pairs.push(("redirect_uri", redirect_uri.as_str()));
        }
        let params = Params::decode(form::encode(pairs).as_bytes()).expect("form");
        let accounts = Accounts::Single(Subject(USER.into()));
        let browser = Browser {
            session: self.session.clone(),
            peer: None,
        };
        let answer =
            self.server
                .authorize(self.now, &mut self.entropy, &params, &accounts, &browser);
        if let Some(cookie) = answer.set_session {
            self.session = Some(cookie);
        }
        match answer.outcome {
            AuthorizeOutcome::Consent(prompt) => {
                assert_eq!(client_id, client.id);
                let canonical_resource = canonical(resource, HttpPolicy::HttpsOnly)
                    .expect("consent only for a valid resource");
                assert_eq!(prompt.resource.as_str(), canonical_resource);
                assert!(
                    canonical_resource == RESOURCE || canonical_resource == OTHER_RESOURCE,
                    "consent for an unknown resource {canonical_resource}"
                );
                assert_eq!(method, "S256");
                let registered_match = client.redirect_uris.iter().any(|r| {
                    RedirectUri::parse(r)
                        .ok()
                        .zip(RedirectUri::parse(&prompt.redirect_uri).ok())
                        .is_some_and(|(r, p)| r.matches(&p))
                });
                assert!(registered_match, "consent for {}", prompt.redirect_uri);
                let redirect_uri = if sent {
                    redirect_uri
                } else {
                    prompt.redirect_uri.clone()
                };
                self.prompts.push(OpsPrompt {
                    prompt,
                    client: ci,
                    verifier,
                    redirect_uri,
                    redirect_sent: sent,
                    created: self.now,
                    used: false,
                });
            }
            AuthorizeOutcome::Inform(i) => {
                let r = i.redirect;
                assert!(r.result.is_err(), "authorize never redirects with a code");
                assert_eq!(client_id, client.id);
                assert!(
                    !r.location.starts_with("https://evil.example"),
                    "link to {}",
                    r.location
                );
            }
            AuthorizeOutcome::Redirect(r) => {
                panic!("authorize redirected without the user: {}", r.location)
            }
            AuthorizeOutcome::Login(_) => panic!("a login page without accounts"),
            AuthorizeOutcome::ShowPending(_) | AuthorizeOutcome::Refuse(_) => {}
        }
    }

    fn consent(&mut self, g: &mut Gen<'_>) {
        if self.prompts.is_empty() {
            return;
        }
        let pi = g.below(self.prompts.len());
        let approve = !g.one_in(4);
        let csrf_ok = !g.one_in(8);
        let session_ok = !g.one_in(8);
        let p = &self.prompts[pi];
        let decision = ConsentDecision {
            id: p.prompt.id.clone(),
            csrf: if csrf_ok {
                p.prompt.csrf.clone()
            } else {
                "forged".into()
            },
            approve,
            session: if session_ok {
                self.session.clone()
            } else {
                Some("another browser".into())
            },
        };
        let outcome = self.server.consent(self.now, &mut self.entropy, &decision);
        let p = &mut self.prompts[pi];
        match outcome {
            AuthorizeOutcome::Redirect(r) => {
                assert!(csrf_ok, "consent accepted a forged CSRF token");
                assert!(session_ok, "consent accepted from another browser session");
                assert!(!p.used, "a consent prompt was used twice");
                assert!(self.now < p.created.plus(600), "expired consent accepted");
                p.used = true;
                match r.result {
                    Ok(code) => {
                        assert!(approve, "a code without approval");
                        self.codes.push(OpsCode {
                            code,
                            client: p.client,
                            verifier: p.verifier,
                            redirect_uri: p.redirect_uri.clone(),
                            redirect_sent: p.redirect_sent,
                            resource: p.prompt.resource.clone(),
                            scopes: p.prompt.scopes.clone(),
                            issued: self.now,
                        });
                    }
                    Err(Rejection::UserDenied) => assert!(!approve),
                    Err(other) => assert_eq!(other, Rejection::Full),
                }
            }
            AuthorizeOutcome::Refuse(_) => {
                if csrf_ok && session_ok && !p.used {
                    // Refused only once expired (or pruned); it is gone for good.
                    assert!(
                        self.now >= p.created.plus(600),
                        "a live consent was refused"
                    );
                }
                if csrf_ok && session_ok {
                    p.used = true;
                }
            }
            other => panic!("consent answered {other:?}"),
        }
    }

    /// Credentials for client `ci`, right or deliberately wrong.
    fn credentials(&self, g: &mut Gen<'_>, ci: usize) -> (ClientCredentials, bool) {
        let c = &self.clients[ci];
        let mut creds = ClientCredentials::default();
        let right = !g.one_in(6);
        let secret = if right {
            c.secret.clone()
        } else {
            Some("wrong".into())
        };
        match (c.method, g.one_in(6)) {
            (TokenAuthMethod::ClientSecretBasic, false) => {
                creds.basic = Some((c.id.clone(), secret.unwrap_or_default()));
            }
            (TokenAuthMethod::ClientSecretPost, false) => {
                creds.client_id = Some(c.id.clone());
                creds.client_secret = secret;
            }
            (TokenAuthMethod::None, false) => {
                creds.client_id = Some(c.id.clone());
                if !right {
                    creds.client_secret = secret;
                }
            }
            // The wrong method for this client.
            (_, true) => {
                creds.client_id = Some(c.id.clone());
                return (creds, c.method == TokenAuthMethod::None);
            }
        }
        (creds, right)
    }

    fn redeem(&mut self, g: &mut Gen<'_>) {
        if self.codes.is_empty() || self.clients.is_empty() {
            return;
        }
        let k = g.below(self.codes.len());
        let code = &self.codes[k];
        let ci = if g.one_in(8) {
            g.below(self.clients.len())
        } else {
            code.client
        };
        let owner = ci == code.client;
        let (credentials, creds_ok) = self.credentials(g, ci);
        let verifier_ok = !g.one_in(6);
        let verifier = if verifier_ok {
            ops_verifier(code.verifier)
        } else {
            ops_verifier(code.verifier + 1)
        };
        let redirect = g.below(6);
        let redirect_ok = match redirect {
            0 => !code.redirect_sent,
            1 => false,
            _ => true,
        };
        let resource_choice = g.below(6);
        let other_resource = if code.resource.as_str() == RESOURCE {
            OTHER_RESOURCE
        } else {
            RESOURCE
        };
        let resource = match resource_choice {
            0 => "",
            1 => other_resource,
            2 => "HTTPS://MCP.EXAMPLE/mcp",
            _ => code.resource.as_str(),
        };
        let resource_ok = match resource_choice {
            0 => true,
            1 => false,
            2 => code.resource.as_str() == RESOURCE,
            _ => true,
        };
        let mut pairs = vec![
            ("grant_type", "authorization_code"),
            ("code", code.code.as_str()),
            ("code_verifier", verifier.as_str()),
            ("resource", resource),
        ];
        match redirect {
            0 => {}
            1 => pairs.push(("redirect_uri", "https://evil.example/cb")),
            _ => pairs.push(("redirect_uri", code.redirect_uri.as_str())),
        }
        if let Some(id) = &credentials.client_id {
            pairs.push(("client_id", id));
        }
        let request = TokenRequest {
            params: Params::decode(form::encode(pairs).as_bytes()).expect("form"),
            credentials: credentials.clone(),
        };
        let code_value = code.code.clone();
        let all_ok = owner && creds_ok && verifier_ok && redirect_ok && resource_ok;
        let live = self.now < code.issued.plus(60);
        match self.server.token(self.now, &mut self.entropy, &request) {
            Ok(response) => {
                assert!(
                    self.redeemed.insert(code_value.clone()),
                    "code {code_value} redeemed twice"
                );
                assert!(all_ok, "a code was redeemed with a wrong binding");
                assert!(live, "an expired code was redeemed");
                let code = &self.codes[k];
                let (resource, scopes) = (code.resource.clone(), code.scopes.clone());
                let client = code.client;
                self.check_issued(&response, client, &resource, &scopes);
                if let Some(rt) = &response.refresh_token {
                    self.current_refresh.insert(rt.clone());
                    self.refresh.push(OpsRefresh {
                        token: rt.clone(),
                        client,
                        resource,
                        scopes,
                    });
                }
            }
            Err(e) => {
                if e.rejection == Rejection::CodeReused && all_ok && live {
                    // A valid replay revokes what the first redemption produced.
                    let grant = match self.server.code_state(&code_value) {
                        Some(mcp_auth_proto::server::CodeState::Redeemed { grant, .. }) => {
                            Some(*grant)
                        }
                        _ => None,
                    };
                    if let Some(id) = grant
                        && let Some((_, g)) = self.server.grants().find(|(i, _)| **i == id)
                    {
                        assert!(g.revoked, "a replayed code left its grant alive");
                    }
                }
            }
        }
    }

    fn refresh(&mut self, g: &mut Gen<'_>) {
        if self.refresh.is_empty() || self.clients.is_empty() {
            return;
        }
        let k = g.below(self.refresh.len());
        let rt = &self.refresh[k];
        let ci = if g.one_in(8) {
            g.below(self.clients.len())
        } else {
            rt.client
        };
        let (credentials, creds_ok) = self.credentials(g, ci);
        let scope = g.pick(&[
            "",
            "mcp:tools",
            "mcp:admin",
            "mcp:tools mcp:admin",
            "mcp:root",
        ]);
        let resource = g.pick(&["", RESOURCE, OTHER_RESOURCE]);
        let token = rt.token.clone();
        let mut pairs = vec![
            ("grant_type", "refresh_token"),
            ("refresh_token", token.as_str()),
            ("scope", scope),
            ("resource", resource),
        ];
        if let Some(id) = &credentials.client_id {
            pairs.push(("client_id", id));
        }
        let request = TokenRequest {
            params: Params::decode(form::encode(pairs).as_bytes()).expect("form"),
            credentials,
        };
        let owner = ci == rt.client;
        let scope_ok = ScopeSet::parse(scope).is_ok_and(|s| s.is_subset(&rt.scopes));
        let resource_ok = resource.is_empty() || resource == rt.resource.as_str();
        let (rt_resource, rt_scopes) = (rt.resource.clone(), rt.scopes.clone());
        let before = self.grant_of_refresh(&token);
        let lifetimes = self.server.config().lifetimes.clone();
        let alive = before
            .and_then(|id| self.server.grants().find(|(i, _)| **i == id))
            .is_some_and(|(_, g)| {
                self.now < g.last_used.plus(lifetimes.refresh_idle)
                    && self.now < g.created.plus(lifetimes.refresh_absolute)
            });
        match self.server.token(self.now, &mut self.entropy, &request) {
            Ok(response) => {
                assert!(owner && creds_ok, "refresh by the wrong client");
                assert!(scope_ok && resource_ok, "refresh widened scope or resource");
                assert!(alive, "an expired refresh grant was used");
                assert!(
                    self.current_refresh.remove(&token),
                    "a rotated refresh token was accepted"
                );
                if let Some(id) = before {
                    assert!(!self.revoked.contains(&id), "refresh of a revoked grant");
                }
                let client = self.refresh[k].client;
                self.check_issued(&response, client, &rt_resource, &rt_scopes);
                let new = response.refresh_token.clone().expect("rotation");
                assert_ne!(new, token);
                self.current_refresh.insert(new.clone());
                self.refresh.push(OpsRefresh {
                    token: new,
                    client,
                    resource: rt_resource,
                    scopes: rt_scopes,
                });
            }
            Err(e) => {
                if e.rejection == Rejection::RefreshTokenReused {
                    self.current_refresh.remove(&token);
                }
            }
        }
    }

    /// The grant whose current or rotated refresh token is `token`.
    fn grant_of_refresh(&self, token: &str) -> Option<u64> {
        self.server
            .grants()
            .find(|(_, g)| {
                let token = mcp_auth_proto::types::SecretDigest::of(token);
                g.refresh_token == Some(token) || g.rotated.contains(&token)
            })
            .map(|(id, _)| *id)
    }

    /// An issued token: audience is the resource its grant named, client and scopes are the
    /// grant's, the grant is not revoked, and the resource servers agree.
    fn check_issued(
        &mut self,
        response: &TokenResponse,
        client: usize,
        resource: &ResourceUri,
        scopes: &ScopeSet,
    ) {
        let (_, claims) = token_json(&response.access_token).expect("issued token decodes");
        let claims: AccessClaims = serde_json::from_value(claims).expect("issued claims");
        assert_eq!(claims.aud, Audience::One(resource.as_str().to_owned()));
        assert_eq!(claims.client_id, self.clients[client].id);
        assert_eq!(claims.sub, USER);
        let granted = ScopeSet::parse(claims.scope.as_deref().unwrap_or("")).expect("scope");
        assert!(granted.is_subset(scopes));
        let (id, grant) = self
            .server
            .grant_of_access_token(&claims.jti)
            .expect("the token's grant exists");
        assert!(!grant.revoked, "token issued from a revoked grant");
        assert!(
            !self.revoked.contains(id),
            "token issued from a grant revoked before"
        );
        assert_eq!(&grant.resource, resource);
        let f = fixture();
        let header = format!("Bearer {}", response.access_token);
        let (right, wrong) = if resource.as_str() == RESOURCE {
            (&f.rs, &f.other_rs)
        } else {
            (&f.other_rs, &f.rs)
        };
        let verdict = right.authenticate(self.now, [header.as_bytes()]);
        if right.config().base_scopes.is_subset(&granted) {
            verdict.expect("valid for its resource");
        } else {
            // A token without the base scope reaches nothing (PF-19).
            assert_eq!(
                verdict.map_err(|c| c.rejection).err(),
                Some(Rejection::InsufficientScope)
            );
        }
        assert_eq!(
            wrong
                .authenticate(self.now, [header.as_bytes()])
                .map_err(|c| c.rejection),
            Err(Rejection::WrongAudience)
        );
    }

    /// After every step: revocation is permanent.
    fn check_invariants(&mut self) {
        for (id, grant) in self.server.grants() {
            if self.revoked.contains(id) {
                assert!(grant.revoked, "grant {id} was un-revoked");
            }
            if grant.revoked {
                self.revoked.insert(*id);
            }
        }
        let redeemed: BTreeSet<_> = self
            .redeemed
            .iter()
            .map(|c| mcp_auth_proto::types::SecretDigest::of(c))
            .collect();
        for (code, state) in self.server.codes() {
            if let mcp_auth_proto::server::CodeState::Redeemed { .. } = state {
                assert!(redeemed.contains(code), "{code:?} redeemed behind our back");
            }
        }
    }
}

/// The AS as a sequence of arbitrary operations (register, authorize, consent approve/deny,
/// token with code, refresh, replays, time passing), with invariants checked after every step:
/// no code is redeemed twice, every issued token's audience is a resource its grant named, no
/// token comes from a revoked grant, and every success had every binding right.
pub fn as_ops(data: &[u8]) {
    let mut g = Gen::new(data);
    let mut ops = Ops {
        server: ops_server(&mut g),
        now: UnixTime::from_secs(NOW),
        entropy: Sequential(1),
        clients: Vec::new(),
        prompts: Vec::new(),
        session: None,
        codes: Vec::new(),
        refresh: Vec::new(),
        redeemed: BTreeSet::new(),
        current_refresh: BTreeSet::new(),
        revoked: BTreeSet::new(),
    };
    for _ in 0..64 {
        if g.is_empty() {
            break;
        }
        match g.below(8) {
            0 => ops.register(&mut g),
            1 | 2 => ops.authorize(&mut g),
            3 => ops.consent(&mut g),
            4 | 5 => ops.redeem(&mut g),
            6 => ops.refresh(&mut g),
            _ => {
                let secs = g.pick(&[1, 30, 59, 60, 61, 100, 201, 599, 601, 3600, 86_400]);
                ops.now = ops.now.plus(secs);
            }
        }
        ops.check_invariants();
    }
}

// ---------------------------------------------------------------------------------------------
// client_responses

const EVIL_ISSUER: &str = "https://evil.example";

/// The client as a network attacker sees it: the simulation feeds it arbitrary answers and
/// callbacks, and tracks which secrets exist and where each may go.
struct ClientSim {
    client: Client,
    policy: HttpPolicy,
    allow_missing_pkce: bool,
    preregistered: bool,
    now: UnixTime,
    entropy: Sequential,
    /// Marks this input's secrets (a hash of the input, so a raw document cannot contain them).
    tag: String,
    counter: u32,
    /// Issuers named by any PRM document fed.
    prm_issuers: BTreeSet<String>,
    /// The AS metadata the current flow accepted (by our oracle).
    flow: Option<AuthorizationServerMetadata>,
    /// Secrets (codes, refresh tokens, client secrets) and the one URL each may be sent to.
    secrets: Vec<(String, Option<String>)>,
    /// Access tokens we minted: never sent in any request.
    access_tokens: Vec<String>,
    /// Every access token fed in a successful token response.
    any_access_tokens: BTreeSet<String>,
    /// PKCE challenges seen in authorization URLs, with the URL their verifier may go to.
    challenges: Vec<(String, Option<String>)>,
    /// The configured client secret, if any: only to the current flow's token endpoint.
    pre_secret: Option<String>,
}

impl ClientSim {
    fn secret(&mut self, kind: &str) -> String {
        self.counter += 1;
        format!("{kind}{}z{}", self.counter, self.tag)
    }

    fn flow_token_endpoint(&self) -> Option<String> {
        self.flow.as_ref().and_then(|m| m.token_endpoint.clone())
    }

    fn endpoint_ok(&self, url: &str) -> bool {
        parse_uri(url).is_ok_and(|p| {
            p.fragment.is_none()
                && (p.scheme.eq_ignore_ascii_case("https")
                    || (self.policy == HttpPolicy::AllowLoopbackHttp
                        && p.scheme.eq_ignore_ascii_case("http")
                        && is_loopback_host(p.host)))
        })
    }

    /// Would a client following the spec accept this AS metadata, fetched from `url`?
    fn asm_acceptable(&self, url: &str, m: &AuthorizationServerMetadata) -> bool {
        let issuer_ok = self.prm_issuers.iter().any(|i| {
            *i == m.issuer
                && [
                    well_known_insert(i, ASM_SUFFIX),
                    well_known_insert(i, OIDC_SUFFIX),
                    well_known_append(i, OIDC_SUFFIX),
                ]
                .iter()
                .any(|u| u.as_deref() == Ok(url))
        });
        let endpoints = [&m.authorization_endpoint, &m.token_endpoint]
            .iter()
            .all(|e| e.as_deref().is_some_and(|u| self.endpoint_ok(u)))
            && m.registration_endpoint
                .as_deref()
                .is_none_or(|u| self.endpoint_ok(u));
        let pkce = m
            .code_challenge_methods_supported
            .iter()
            .any(|x| x == "S256")
            || (m.code_challenge_methods_supported.is_empty() && self.allow_missing_pkce);
        issuer_ok && endpoints && pkce
    }

    /// Everything a request carries, as text (URL, headers with Basic decoded, body).
    fn carried(request: &HttpRequest) -> String {
        let mut out = request.url.clone();
        for (name, value) in &request.headers {
            out.push('\n');
            let value = String::from_utf8_lossy(value);
            out.push_str(&value);
            if name == "authorization"
                && let Some(enc) = value.strip_prefix("Basic ")
                && let Ok(dec) = STANDARD.decode(enc)
            {
                out.push('\n');
                out.push_str(&String::from_utf8_lossy(&dec));
            }
        }
        out.push('\n');
        out.push_str(&String::from_utf8_lossy(&request.body));
        out
    }

    fn check_request(&self, request: &HttpRequest) {
        let carried = Self::carried(request);
        for (secret, allowed) in &self.secrets {
            if carried.contains(secret.as_str()) {
                assert_eq!(
                    allowed.as_deref(),
                    Some(request.url.as_str()),
                    "secret {secret} sent to {}",
                    request.url
                );
                assert_eq!(request.method, Method::Post);
            }
        }
        if let Some(secret) = &self.pre_secret
            && carried.contains(secret.as_str())
        {
            assert_eq!(
                self.flow_token_endpoint().as_deref(),
                Some(request.url.as_str()),
                "client secret sent to {}",
                request.url
            );
        }
        for token in &self.access_tokens {
            assert!(
                !carried.contains(token.as_str()),
                "access token sent in a request to {}",
                request.url
            );
        }
        let mut values: Vec<String> = form_urlencoded::parse(&request.body)
            .map(|(_, v)| v.into_owned())
            .collect();
        if let Some((_, q)) = request.url.split_once('?') {
            values.extend(form_urlencoded::parse(q.as_bytes()).map(|(_, v)| v.into_owned()));
        }
        for v in values {
            let Ok(verifier) = CodeVerifier::parse(&v) else {
                continue;
            };
            let challenge = verifier.challenge();
            for (c, allowed) in &self.challenges {
                if c == challenge.as_str() {
                    assert_eq!(
                        allowed.as_deref(),
                        Some(request.url.as_str()),
                        "PKCE verifier sent to {}",
                        request.url
                    );
                }
            }
        }
    }

    /// Checks on the client's next action; returns it.
    fn observe(&mut self) -> Action {
        let action = self.client.poll_action();
        match &action {
            Action::Send(request) => self.check_request(request),
            Action::OpenBrowser(url) => {
                let flow = self
                    .flow
                    .as_ref()
                    .expect("the browser is opened only after accepted AS metadata");
                let endpoint = flow.authorization_endpoint.as_deref().unwrap_or("");
                assert!(url.starts_with(endpoint), "browser sent to {url}");
                let query = url.split_once('?').map_or("", |(_, q)| q);
                let q = harness::query_map(query);
                assert_eq!(
                    q.get("code_challenge_method").map(String::as_str),
                    Some("S256")
                );
                assert_eq!(
                    q.get("resource").map(String::as_str),
                    self.client.resource().ok().map(ResourceUri::as_str)
                );
                if let Some(c) = q.get("code_challenge")
                    && !self.challenges.iter().any(|(x, _)| x == c)
                {
                    let allowed = self.flow_token_endpoint();
                    self.challenges.push((c.clone(), allowed));
                }
            }
            Action::Authorized(tokens) => {
                assert_eq!(
                    Some(tokens.resource.as_str()),
                    self.client.resource().ok().map(ResourceUri::as_str)
                );
                let flow = self.flow.as_ref().expect("authorized only after a flow");
                assert_eq!(tokens.issuer, flow.issuer);
                assert_eq!(Some(&tokens.token_endpoint), flow.token_endpoint.as_ref());
            }
            Action::Failed(_) | Action::Idle => {}
        }
        self.check_authorization_for();
        action
    }

    /// The access token only via `authorization_for`, and only for the configured server.
    fn check_authorization_for(&self) {
        let configured = self.client.resource().ok().map(ResourceUri::as_str);
        for url in [
            RESOURCE,
            "https://MCP.EXAMPLE/mcp",
            "https://mcp.example:443/mcp",
            "https://mcp.example/mcp/",
            "https://mcp.example/",
            "https://mcp.example/mcp?x=1",
            "https://mcp.example/mcp#f",
            "http://mcp.example/mcp",
            OTHER_RESOURCE,
            EVIL_ISSUER,
        ] {
            let Some(value) = self.client.authorization_for(url) else {
                continue;
            };
            let token = value.strip_prefix("Bearer ").expect("Bearer scheme");
            assert!(self.any_access_tokens.contains(token), "unknown token sent");
            assert_eq!(
                canonical(url, self.policy).as_deref(),
                configured,
                "token offered for {url}"
            );
        }
    }

    fn unauthorized(&mut self, g: &mut Gen<'_>) {
        let f = fixture();
        let lines: Vec<String> = match g.below(4) {
            0 => vec![g.string(120)],
            1 => vec![f.challenge.clone()],
            2 => {
                let b = BearerChallenge {
                    resource_metadata: Some(
                        g.pick(&[
                            "https://mcp.example/.well-known/oauth-protected-resource/mcp",
                            "https://evil.example/.well-known/oauth-protected-resource",
                            "http://mcp.example/.well-known/oauth-protected-resource",
                            "not a url",
                        ])
                        .to_owned(),
                    ),
                    scope: g
                        .bool()
                        .then(|| g.pick(&["mcp:tools", "mcp:admin x"]).to_owned()),
                    error: g.bool().then(|| "invalid_token".to_owned()),
                    ..Default::default()
                };
                vec![b.to_header_value()]
            }
            _ => vec!["Basic realm=\"x\"".into(), f.challenge.clone()],
        };
        self.flow = None;
        self.client
            .handle_unauthorized(lines.iter().map(String::as_str));
    }

    fn gen_prm(&mut self, g: &mut Gen<'_>) -> Value {
        let resource = g.pick(&[
            RESOURCE,
            RESOURCE,
            "https://MCP.example/mcp",
            "https://mcp.example/mcp/",
            OTHER_RESOURCE,
        ]);
        let servers: Vec<String> = (0..g.below(3) + 1)
            .map(|_| {
                if g.one_in(8) {
                    g.string(24)
                } else {
                    g.pick(&[
                        ISSUER,
                        ISSUER,
                        EVIL_ISSUER,
                        "https://as.example/",
                        "http://as.example",
                        "http://127.0.0.1:9000",
                        "https://as.example/tenant",
                        "not a url",
                    ])
                    .to_owned()
                }
            })
            .collect();
        serde_json::json!({
            "resource": resource,
            "authorization_servers": servers,
            "scopes_supported": ["mcp:tools"],
        })
    }

    fn gen_asm(&mut self, g: &mut Gen<'_>) -> Value {
        let mut issuers: Vec<String> = self.prm_issuers.iter().cloned().collect();
        issuers.extend([ISSUER.to_owned(), EVIL_ISSUER.to_owned()]);
        let issuer = g.pick(&issuers);
        let endpoint = |g: &mut Gen<'_>, path: &str| -> Value {
            match g.below(10) {
                0 => Value::Null,
                1 => format!("{EVIL_ISSUER}{path}").into(),
                2 => format!("http://as.example{path}").into(),
                3 => g
                    .pick(&[
                        "javascript:alert(1)",
                        "https://as.example/x#f",
                        "http://127.0.0.1:9/t",
                        "https://as.example/a?x=1",
                    ])
                    .into(),
                _ => format!("{}{path}", issuer.trim_end_matches('/')).into(),
            }
        };
        let authorization = endpoint(g, "/authorize");
        let token = endpoint(g, "/token");
        let registration = endpoint(g, "/register");
        let methods = g.pick(&[
            &["S256"][..],
            &["S256"][..],
            &[][..],
            &["plain"][..],
            &["plain", "S256"][..],
        ]);
        let mut m = serde_json::json!({
            "issuer": issuer,
            "code_challenge_methods_supported": methods,
            "authorization_response_iss_parameter_supported": !g.one_in(4),
        });
        for (name, value) in [
            ("authorization_endpoint", authorization),
            ("token_endpoint", token),
            ("registration_endpoint", registration),
        ] {
            if !value.is_null() {
                m[name] = value;
            }
        }
        m
    }

    /// Answer the request the client is waiting on.
    fn respond(&mut self, g: &mut Gen<'_>, request: &HttpRequest) {
        let url = request.url.as_str();
        let mut kind = if url.contains("oauth-protected-resource") {
            0
        } else if url.contains(ASM_SUFFIX) || url.contains(OIDC_SUFFIX) {
            1
        } else if request.has_content_type("application/json") {
            2
        } else {
            3
        };
        if g.one_in(10) {
            kind = g.below(5);
        }
        let status = if g.one_in(6) {
            g.pick(&[400, 401, 404, 500, 302, 201, 204])
        } else if kind == 2 {
            201
        } else {
            200
        };
        let body: Vec<u8> = if g.one_in(10) {
            g.bytes(300)
        } else {
            let v = match kind {
                0 => self.gen_prm(g),
                1 => self.gen_asm(g),
                2 => {
                    let mut v = serde_json::json!({
                        "client_id": g.pick(&["cid", "", "other"]),
                        "redirect_uris": [REDIRECT_URI],
                    });
                    if g.bool() {
                        v["client_secret"] = self.secret("cs").into();
                    }
                    v
                }
                3 => {
                    let access = match g.below(8) {
                        0 => String::new(),
                        1 => g.string(16),
                        _ => {
                            let t = self.secret("at");
                            self.access_tokens.push(t.clone());
                            t
                        }
                    };
                    let mut v = serde_json::json!({
                        "access_token": access,
                        "token_type": g.pick(&["Bearer", "Bearer", "bearer", "DPoP", "mac"]),
                    });
                    if g.bool() {
                        v["refresh_token"] = self.secret("rt").into();
                    }
                    if g.bool() {
                        v["expires_in"] = g.pick(&[0, 3600, u64::MAX]).into();
                    }
                    v
                }
                _ => serde_json::json!({"error": g.pick(&["invalid_grant", "invalid_client"])}),
            };
            serde_json::to_vec(&v).unwrap_or_default()
        };
        // What the documents fed mean for the secrets' bookkeeping.
        if status == 200 {
            if let Ok(prm) = serde_json::from_slice::<ProtectedResourceMetadata>(&body) {
                self.prm_issuers.extend(prm.authorization_servers);
            }
            if let Ok(t) = serde_json::from_slice::<TokenResponse>(&body) {
                self.any_access_tokens.insert(t.access_token);
            }
        }
        let pending_flow = (request.method == Method::Get && status == 200)
            .then(|| serde_json::from_slice::<AuthorizationServerMetadata>(&body).ok())
            .flatten()
            .filter(|m| self.asm_acceptable(url, m));
        let was_asm_fetch = request.method == Method::Get
            && matches!(self.client.poll_action(), Action::Send(_))
            && (url.contains(ASM_SUFFIX) || url.contains(OIDC_SUFFIX));
        let response = HttpResponse::new(status)
            .header("content-type", "application/json")
            .with_body(body.clone());
        self.client
            .handle_response(self.now, &mut self.entropy, &response);
        if was_asm_fetch {
            let next = self.client.poll_action();
            let proceeded = matches!(next, Action::OpenBrowser(_))
                || matches!(&next, Action::Send(r) if r.method == Method::Post);
            if proceeded {
                assert!(
                    pending_flow.is_some(),
                    "the client accepted AS metadata from {url} that the spec refuses: {}",
                    String::from_utf8_lossy(&body)
                );
                self.flow = pending_flow;
            }
        }
        // Secrets minted in this answer may go only to the flow's token endpoint.
        let allowed = self.flow_token_endpoint();
        if let Ok(Value::Object(m)) = serde_json::from_slice::<Value>(&body) {
            for name in ["client_secret", "refresh_token"] {
                if let Some(Value::String(s)) = m.get(name)
                    && s.ends_with(&self.tag)
                {
                    self.secrets.push((s.clone(), allowed.clone()));
                }
            }
        }
    }

    fn callback(&mut self, g: &mut Gen<'_>) {
        let action = self.client.poll_action();
        let Action::OpenBrowser(url) = &action else {
            let query = g.string(64);
            assert!(self.client.handle_redirect(&query).is_err());
            assert_eq!(self.client.poll_action(), action);
            return;
        };
        let q = harness::query_map(url.split_once('?').map_or("", |(_, q)| q));
        let state = q.get("state").cloned().unwrap_or_default();
        let flow_issuer = self
            .flow
            .as_ref()
            .map(|f| f.issuer.clone())
            .unwrap_or_default();
        let advertised = self
            .flow
            .as_ref()
            .is_some_and(|f| f.authorization_response_iss_parameter_supported);
        let query = if g.one_in(10) {
            g.string(120)
        } else {
            let mut pairs: Vec<(String, String)> = Vec::new();
            match g.below(8) {
                0 => {}
                1 => pairs.push(("state".into(), "forged".into())),
                2 => {
                    pairs.push(("state".into(), state.clone()));
                    pairs.push(("state".into(), state.clone()));
                }
                _ => pairs.push(("state".into(), state.clone())),
            }
            match g.below(8) {
                0 => {}
                1 => pairs.push(("code".into(), String::new())),
                2 => pairs.push(("error".into(), "access_denied".into())),
                _ => {
                    let code = self.secret("code");
                    self.secrets
                        .push((code.clone(), self.flow_token_endpoint()));
                    pairs.push(("code".into(), code));
                }
            }
            match g.below(6) {
                0 => {}
                1 => pairs.push(("iss".into(), EVIL_ISSUER.into())),
                2 => pairs.push(("iss".into(), ISSUER.into())),
                3 => {
                    pairs.push(("iss".into(), flow_issuer.clone()));
                    pairs.push(("iss".into(), flow_issuer.clone()));
                }
                _ => pairs.push(("iss".into(), flow_issuer.clone())),
            }
            rotate(g, &mut pairs);
            form::encode(pairs.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        };
        let result = self.client.handle_redirect(&query);
        let params = Params::decode(query.as_bytes()).ok();
        let one = |name: &str| {
            params
                .as_ref()
                .and_then(|p| p.one(name).ok().flatten().map(str::to_owned))
        };
        let state_ok = one("state").as_deref() == Some(state.as_str());
        if !state_ok {
            assert!(result.is_err(), "callback with a foreign state accepted");
            assert_eq!(
                self.client.poll_action(),
                action,
                "foreign callback changed the flow"
            );
        }
        if result.is_ok() {
            let iss = one("iss");
            assert!(
                iss.as_deref() == Some(flow_issuer.as_str()) || (iss.is_none() && !advertised),
                "callback accepted with iss {iss:?}, flow issuer {flow_issuer}"
            );
            assert!(one("code").is_some());
        }
    }
}

/// The client state machine fed arbitrary server answers and callbacks. Properties: it never
/// panics; it sends a code, its PKCE verifier, a refresh token or a client secret only to the
/// token endpoint of AS metadata it was right to accept (issuer equal to the one looked up,
/// https endpoints, S256 advertised); it opens the browser only at that metadata's authorization
/// endpoint; it accepts a callback only with its `state` and the right `iss`; it never sends an
/// access token in a request, and `authorization_for` gives it only for the configured server.
pub fn client_responses(data: &[u8]) {
    use sha2::Digest as _;
    let mut g = Gen::new(data);
    let policy = if g.one_in(4) {
        HttpPolicy::AllowLoopbackHttp
    } else {
        HttpPolicy::HttpsOnly
    };
    let preregistered = g.one_in(4);
    let allow_missing_pkce = g.one_in(4);
    let tag: String = sha2::Sha256::digest(data)
        .iter()
        .take(4)
        .map(|b| format!("{b:02x}"))
        .collect();
    let mut sim = ClientSim {
        client: Client::new(
            ClientConfig::new(RESOURCE, REDIRECT_URI)
                .with_scope(g.bool().then(|| ScopeSet::from_tokens(["mcp:tools"])))
                .with_preregistered(None)
                .with_http_policy(policy)
                .with_allow_missing_pkce_metadata(allow_missing_pkce),
        ),
        policy,
        allow_missing_pkce,
        preregistered,
        now: UnixTime::from_secs(NOW),
        entropy: Sequential(1),
        counter: 0,
        prm_issuers: BTreeSet::new(),
        flow: None,
        secrets: Vec::new(),
        access_tokens: Vec::new(),
        any_access_tokens: BTreeSet::new(),
        challenges: Vec::new(),
        pre_secret: None,
        tag,
    };
    if sim.preregistered {
        let secret = g.bool().then(|| sim.secret("pre"));
        let config = ClientConfig::new(RESOURCE, REDIRECT_URI)
            .with_preregistered(Some(("pre-id".into(), secret.clone())))
            .with_http_policy(policy)
            .with_allow_missing_pkce_metadata(allow_missing_pkce)
            .with_scope(None);
        sim.client = Client::new(config);
        // A pre-registered secret may go to the token endpoint of whichever flow is current.
        sim.pre_secret = secret;
    }
    sim.unauthorized(&mut g);
    for _ in 0..24 {
        if g.is_empty() {
            break;
        }
        let action = sim.observe();
        match g.below(10) {
            0 => sim.unauthorized(&mut g),
            1 => sim.callback(&mut g),
            2 => sim.client.start_refresh(),
            3 => sim.now = sim.now.plus(g.pick(&[1, 3600, u64::MAX])),
            _ => match action {
                Action::Send(request) => sim.respond(&mut g, &request),
                Action::OpenBrowser(_) => sim.callback(&mut g),
                _ => sim.unauthorized(&mut g),
            },
        }
    }
    sim.observe();
}

// ---------------------------------------------------------------------------------------------
// mcp_guard

/// The MCP endpoint's pipeline ([`McpGuard`](mcp_auth_proto::endpoint::McpGuard)) over request heads and bodies built from choices
/// (method, path, `Origin`, `Authorization`, `MCP-Protocol-Version`, `Mcp-Session-Id`, body)
/// and raw bytes. Properties: no panic; no 5xx; a request is forwarded only with a valid token
/// for this resource, an accepted version (or `initialize`), the tool's scopes and its own
/// session; a foreign `Origin` is refused (403) before the token is looked at; every 401 and
/// 403 after authentication carries the challenge with `resource_metadata`; a forwarded
/// session id is the MCP server's own id.
pub fn mcp_guard(data: &[u8]) {
    use mcp_auth_proto::endpoint::{McpGuard, Verdict};
    use mcp_auth_proto::guard::{Sessions, ToolScopes};

    let f = fixture();
    let mut g = Gen::new(data);
    let now = UnixTime::from_secs(NOW);
    let tool_scopes =
        ToolScopes([("admin".to_owned(), ScopeSet::from_tokens(["mcp:admin"]))].into());
    let mut guard = McpGuard::new(f.rs.clone(), Sessions::new(&mut Sequential(5)))
        .with_tool_scopes(tool_scopes);
    let token = f.tokens.access_token.as_str();
    let valid_access =
        f.rs.authenticate(now, [format!("Bearer {token}").as_bytes()])
            .ok();
    let bound = valid_access
        .as_ref()
        .map(|a| guard.sessions().created("inner-7", a))
        .unwrap_or_default();

    let method = g.pick(&[
        Method::Post,
        Method::Get,
        Method::Delete,
        Method::Options,
        Method::Other,
    ]);
    let path = match g.below(4) {
        0 => "/mcp".to_owned(),
        1 => "/.well-known/oauth-protected-resource/mcp".to_owned(),
        2 => "/.well-known/oauth-protected-resource".to_owned(),
        _ => format!("/{}", g.string(40)),
    };
    let mut request = HttpRequest::new(method, path);
    match g.below(5) {
        0 => request = request.header("origin", "https://evil.example"),
        1 => request = request.header("origin", "http://127.0.0.1:6274"),
        2 => request = request.header("origin", g.bytes(40)),
        _ => {}
    }
    let authorization: Option<Vec<u8>> = match g.below(6) {
        0 | 1 => Some(format!("Bearer {token}").into_bytes()),
        2 => Some(format!("bearer  {token}").into_bytes()),
        3 => Some(g.bytes(200)),
        4 => Some(format!("Bearer {}", g.string(60)).into_bytes()),
        _ => None,
    };
    if let Some(value) = &authorization {
        request = request.header("authorization", value.clone());
        if g.one_in(8) {
            request = request.header("authorization", value.clone());
        }
    }
    match g.below(5) {
        0 => request = request.header("mcp-protocol-version", mcp_auth_proto::MCP_PROTOCOL_VERSION),
        1 => request = request.header("mcp-protocol-version", "1999-01-01"),
        2 => request = request.header("mcp-protocol-version", g.bytes(20)),
        _ => {}
    }
    let own_session = match g.below(4) {
        0 => {
            request = request.header("mcp-session-id", bound.clone());
            true
        }
        1 => {
            request = request.header("mcp-session-id", g.bytes(60));
            false
        }
        _ => false,
    };
    let body_choice = g.below(6);
    let body =
        match body_choice {
            0 => br#"{"jsonrpc":"2.0","id":1,"method":"tools/list"}"#.to_vec(),
            1 => br#"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{}}"#.to_vec(),
            2 => br#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"admin"}}"#
                .to_vec(),
            3 => br#"[{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo"}}]"#
                .to_vec(),
            _ => g.bytes(300),
        };
    let request = request.body(body);

    let check_answer = |response: &HttpResponse| {
        assert!(response.status < 500, "{} for {request:?}", response.status);
        if matches!(response.status, 401 | 403)
            && let Some(challenge) = response.header_value("www-authenticate")
        {
            assert!(challenge.contains("resource_metadata=\""), "{challenge}");
        }
    };
    match guard.handle_request(now, &request) {
        Verdict::Respond(response) | Verdict::FetchKeys(response) => {
            check_answer(&response);
            let is_metadata = f.rs.is_metadata_path(request.url.as_str());
            // A fixed foreign origin on an MCP request is refused before authentication.
            if !is_metadata
                && method != Method::Options
                && request.header_str("origin") == Some("https://evil.example")
            {
                assert_eq!(response.status, 403);
                assert!(response.header_value("www-authenticate").is_none());
            }
        }
        Verdict::Introspect(_) => panic!("introspection is not configured"),
        Verdict::ReadBody(admitted) => {
            assert_eq!(admitted.access().audience, RESOURCE);
            assert_ne!(request.header_str("origin"), Some("https://evil.example"));
            let mut values = request.header_values("authorization");
            let (first, second) = (values.next(), values.next());
            assert!(second.is_none(), "credentials twice were accepted");
            let first = first.expect("no credentials were accepted");
            assert!(parse_bearer_authorization(first).is_ok_and(|t| t == token));
            match guard.handle_body(admitted, &request.body) {
                Err(response) => check_answer(&response),
                Ok(forward) => {
                    assert_eq!(Some(&forward.access), valid_access.as_ref());
                    // The version: none, the supported one, or an initialize body.
                    let mut versions = request.header_values("mcp-protocol-version");
                    let version_ok = match (versions.next(), versions.next()) {
                        (None, _) => true,
                        (Some(v), None) => v == mcp_auth_proto::MCP_PROTOCOL_VERSION.as_bytes(),
                        _ => false,
                    };
                    let initialize = serde_json::from_slice::<Value>(&request.body)
                        .ok()
                        .is_some_and(|v| {
                            v.get("method").and_then(Value::as_str) == Some("initialize")
                        });
                    assert!(version_ok || initialize);
                    // The admin tool needs a scope the token lacks.
                    assert!(!(method == Method::Post && body_choice == 2));
                    match request.header_values("mcp-session-id").next() {
                        None => assert_eq!(forward.session, None),
                        Some(_) => {
                            assert!(own_session);
                            assert_eq!(forward.session.as_deref(), Some("inner-7"));
                        }
                    }
                }
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// client_document

/// Client ID Metadata Documents at the AS. The input is `URL \n CACHE-CONTROL \n BODY`.
/// Properties: a client ID URL the strict policy accepts, the loopback switch accepts too, and
/// it is https with a path and a public host; freshness stays within its bounds; a document
/// that validates is the URL's own (`client_id`), public (`none`), named, with redirect URIs;
/// and through the AS's HTTP layer (fetch asked, answered with the body), the authorization
/// request never gets a 5xx, and a redirect with a code happens only for a document that
/// validates, after which the document is cached and fresh.
// spec: CIMD-3, CIMD-4, CIMD-5
pub fn client_document(data: &[u8]) {
    use mcp_auth_proto::address::{HostClass, host_class};
    use mcp_auth_proto::server::http::{Prepared, finish_fetch, prepare};
    use mcp_auth_proto::server::{
        CLIENT_ID_URL_LEN_MAX, CimdLimits, check_client_id_url, freshness, validate_document,
    };

    let text = String::from_utf8_lossy(data);
    let (url, rest) = text.split_once('\n').unwrap_or((&text, ""));
    let (cache_control, body) = rest.split_once('\n').unwrap_or(("", rest));
    let strict = check_client_id_url(url, false);
    let lenient = check_client_id_url(url, true);
    if strict.is_ok() {
        assert!(lenient.is_ok(), "{url}");
        let p = parse_uri(url).expect("an accepted client ID URL parses");
        assert_eq!(p.scheme, "https");
        assert!(p.fragment.is_none() && p.path.len() > 1 && url.len() <= CLIENT_ID_URL_LEN_MAX);
        assert_eq!(host_class(p.host), HostClass::Public, "{url}");
    }
    let limits = CimdLimits::default();
    let answer = HttpResponse::new(200)
        .header("content-type", "application/json")
        .header("cache-control", cache_control)
        .with_body(body.as_bytes().to_vec());
    let fresh = freshness(&answer, &limits);
    assert!((limits.fresh_min_secs.max(1)..=limits.fresh_max_secs).contains(&fresh));
    let validated = validate_document(
        url,
        body.as_bytes(),
        limits.document_len_max,
        &Limits::default(),
    );
    if let Ok(client) = &validated {
        assert_eq!(client.auth_method, TokenAuthMethod::None);
        assert!(!client.redirect_uris.is_empty());
        assert!(client.client_name.as_deref().is_some_and(|n| !n.is_empty()));
        let doc: Value = serde_json::from_str(body).expect("a valid document is JSON");
        assert_eq!(doc["client_id"].as_str(), Some(url));
    }
    if lenient.is_err() {
        return;
    }
    // Through the HTTP layer of an AS with documents on and the loopback switch.
    let issuer = Issuer::parse(ISSUER, HttpPolicy::HttpsOnly).expect("valid issuer");
    let resource = ResourceUri::parse(RESOURCE, HttpPolicy::HttpsOnly).expect("valid resource");
    let mut config = AsConfig::new(issuer, [(resource, ScopeSet::from_tokens(["mcp:tools"]))]);
    config.client_id_metadata_documents = true;
    config.cimd_allow_loopback = true;
    let mut server = AuthorizationServer::new(
        config,
        fixture().driven.authorization_server.signer().clone(),
    );
    let redirect = serde_json::from_str::<Value>(body)
        .ok()
        .and_then(|d| d["redirect_uris"][0].as_str().map(str::to_owned))
        .unwrap_or_else(|| REDIRECT_URI.to_owned());
    let verifier = CodeVerifier::generate(&mut Sequential(3));
    let mut request = HttpRequest::new(Method::Get, "/authorize");
    request.query = Some(form::encode([
        ("response_type", "code"),
        ("client_id", url),
        ("redirect_uri", redirect.as_str()),
        ("code_challenge", verifier.challenge().as_str()),
        ("code_challenge_method", "S256"),
        ("resource", RESOURCE),
    ]));
    request
        .headers
        .push(("host".into(), b"as.example".to_vec()));
    let now = UnixTime::from_secs(NOW);
    let user = UserAgentPolicy::single(USER).auto_approving();
    let mut entropy = Sequential(11);
    let response = match prepare(&mut server, now, &mut entropy, &user, &request) {
        Prepared::Fetch(pending) => {
            assert_eq!(pending.fetch.request.url, url);
            finish_fetch(&mut server, now, &mut entropy, &user, pending, Ok(answer))
        }
        Prepared::Done(response) => {
            panic!(
                "no fetch asked for an accepted client ID URL: {}",
                response.status
            )
        }
        Prepared::Login(_) => panic!("a login for an authorization request"),
    };
    assert!(response.status < 500, "{}", response.status);
    if response.status == 303 {
        assert!(
            validated.is_ok(),
            "a code for a document that does not validate"
        );
        assert_eq!(server.codes().count(), 1);
        assert_eq!(server.client_document_needed(now, url), Ok(None));
    } else {
        assert_eq!(server.codes().count(), 0);
    }
}

// ---------------------------------------------------------------------------------------------
// stored_record

/// Durable records as a store hands them back (a store is input too: a damaged file, another
/// version's rows). The input is `KIND \n ID \n VERSION \n BODY`. Properties: naming a key
/// never panics and a key names itself back ([`mcp_auth_proto::server::RecordKey::from_parts`] of its `kind` and
/// `id`); decoding never panics, and a record that decodes encodes to a body that decodes to
/// the same record; restoring a server from it, or applying it to a running server, either
/// refuses with an error or gives a server that lists that very record among its durable
/// records, and whose answer to a token request with an unknown code is still `invalid_grant`
/// (never a 5xx).
// spec: PF-23
pub fn stored_record(data: &[u8]) {
    use mcp_auth_proto::server::{Record, RecordKey, StoredRecord, StoredUpdate};
    let text = String::from_utf8_lossy(data);
    let mut lines = text.splitn(4, '\n');
    let (kind, id) = (lines.next().unwrap_or(""), lines.next().unwrap_or(""));
    let version = lines
        .next()
        .and_then(|v| v.trim().parse::<u64>().ok())
        .unwrap_or(1);
    let body = lines.next().unwrap_or("");
    let Some(key) = RecordKey::from_parts(kind, id) else {
        return;
    };
    assert_eq!(
        RecordKey::from_parts(key.kind(), &key.id()),
        Some(key.clone())
    );
    let h = Harness::new();
    let config = h.authorization_server.config().clone();
    let signer = h.authorization_server.signer().clone();
    let decoded = Record::decode(&key, body, &config);
    if let Ok(record) = &decoded {
        let again =
            Record::decode(&key, &record.encode(), &config).expect("a re-encoded record decodes");
        assert_eq!(&again, record, "round trip");
    }
    let stored = StoredRecord {
        key: key.clone(),
        version,
        body: body.to_owned(),
    };
    let restored = AuthorizationServer::restore(config.clone(), signer.clone(), [stored.clone()]);
    assert_eq!(restored.is_ok(), decoded.is_ok() && version > 0);
    let mut running = AuthorizationServer::journaled(config, signer);
    let _ = running.take_changes();
    let applied = running.apply([StoredUpdate::Put(stored)]);
    assert_eq!(applied.is_ok(), decoded.is_ok() && version > 0);
    for mut server in restored
        .into_iter()
        .chain(applied.is_ok().then_some(running))
    {
        if !matches!(key, RecordKey::GrantSequence | RecordKey::Keys) {
            assert!(
                server.durable_records().iter().any(|(k, _)| k == &key),
                "{key:?} is held"
            );
        }
        let request = harness::form_post(
            &format!("{ISSUER}/token"),
            &[
                ("grant_type", "authorization_code"),
                ("code", "unknown"),
                ("client_id", "c"),
                ("code_verifier", &"v".repeat(43)),
                ("redirect_uri", REDIRECT_URI),
            ],
        );
        let answer = handle(
            &mut server,
            UnixTime::from_secs(1_700_000_000),
            &mut Sequential(7),
            &UserAgentPolicy::single(USER),
            &request,
        );
        assert!(answer.status < 500, "{}", answer.status);
    }
}
