//! The core's defense switches ([`Mutations`]), each on its own: the request its check
//! refuses with every defense on is accepted with that one switch off, and nothing else gives
//! way. Compiled only with the cfg `mcp_auth_mutations` (`cargo xtask test` runs it in that
//! build); the model's teeth (`model/tests/mutations.rs`) and the probe's
//! (`impl/mcp-auth/tests/probe.rs`) use the same switches.

#![cfg(mcp_auth_mutations)]

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use mcp_auth_proto::Rejection;
use mcp_auth_proto::client::Tokens;
use mcp_auth_proto::http::HttpResponse;
use mcp_auth_proto::jwt::{
    Access, AccessClaims, Audience, KeySet, ValidationPolicy, VerificationMemo, validate,
};
use mcp_auth_proto::mutations::Mutations;
use mcp_auth_proto::pkce::CodeVerifier;
use mcp_auth_proto::resource::ResourceServer;
use mcp_auth_proto::server::{AuthorizationServer, Record, RecordKey};
use mcp_auth_testkit::harness::{
    self, Harness, ISSUER, OTHER_RESOURCE, REDIRECT_URI, RESOURCE, authorize_url, form_post,
    query_map, register_client,
};
use serde_json::Value;

/// A harness whose authorization server has the defenses `mutations` off (and reports its
/// durable changes).
fn harness(mutations: Mutations) -> Harness {
    let mut h = Harness::new();
    let mut config = h.authorization_server.config().clone();
    config.mutations = mutations;
    let signer = h.authorization_server.signer().clone();
    h.authorization_server = AuthorizationServer::journaled(config, signer);
    h
}

/// Every defense on but those `off` turns off.
fn only(off: impl FnOnce(&mut Mutations)) -> Mutations {
    let mut m = Mutations::default();
    off(&mut m);
    m
}

/// Runs `scenario` with every defense on, then with `mutations` off: the two answers.
fn both<T>(mutations: Mutations, scenario: impl Fn(&mut Harness) -> T) -> (T, T) {
    (
        scenario(&mut harness(Mutations::default())),
        scenario(&mut harness(mutations)),
    )
}

fn json(response: &HttpResponse) -> Value {
    serde_json::from_slice(&response.body).unwrap_or(Value::Null)
}

fn error_of(response: &HttpResponse) -> String {
    json(response)["error"].as_str().unwrap_or("").to_owned()
}

/// The claims of a JWT, unverified.
fn claims(token: &str) -> Value {
    let payload = token.split('.').nth(1).unwrap_or_default();
    let bytes = URL_SAFE_NO_PAD.decode(payload).unwrap_or_default();
    serde_json::from_slice(&bytes).unwrap_or(Value::Null)
}

/// The claims of the access token of a token response.
fn access_claims(response: &HttpResponse) -> Value {
    claims(json(response)["access_token"].as_str().unwrap_or_default())
}

fn verifier(n: u8) -> CodeVerifier {
    CodeVerifier::parse(&format!("{}", (b'a' + n) as char).repeat(43)).expect("a verifier")
}

fn token_url() -> String {
    format!("{ISSUER}/token")
}

/// Register a client and authorize it (auto-approved) with PKCE of `v`: (client_id, code).
fn obtain_code(h: &mut Harness, v: &CodeVerifier) -> (String, String) {
    let client_id = register_client(h, &[REDIRECT_URI]);
    let query = h
        .browse(&authorize_url(&client_id, v, RESOURCE, &[]))
        .expect("a redirect to the client");
    (client_id, query_map(&query)["code"].clone())
}

/// A token request for `code`: grant type and code, then `pairs`.
fn redeem(h: &mut Harness, code: &str, pairs: &[(&str, &str)]) -> HttpResponse {
    let mut form = vec![("grant_type", "authorization_code"), ("code", code)];
    form.extend_from_slice(pairs);
    h.route(&form_post(&token_url(), &form))
}

/// A refresh of `tokens` with `pairs` (`client_id` among them, or the tokens' own).
fn refresh(h: &mut Harness, tokens: &Tokens, pairs: &[(&str, &str)]) -> HttpResponse {
    let rt = tokens.refresh_token.clone().expect("a refresh token");
    let mut form = vec![
        ("grant_type", "refresh_token"),
        ("refresh_token", rt.as_str()),
    ];
    if !pairs.iter().any(|(k, _)| *k == "client_id") {
        form.push(("client_id", tokens.client_id.as_str()));
    }
    form.extend_from_slice(pairs);
    h.route(&form_post(&token_url(), &form))
}

// ---- authorization server ---------------------------------------------------------------------

// spec: TOK-5
#[test]
fn skip_client_binding_lets_another_client_redeem_a_code() {
    let m = only(|m| m.skip_client_binding = true);
    let (on, off) = both(m, |h| {
        let v = verifier(1);
        let (client_id, code) = obtain_code(h, &v);
        let other = register_client(h, &[REDIRECT_URI]);
        assert_ne!(other, client_id);
        let r = redeem(
            h,
            &code,
            &[
                ("redirect_uri", REDIRECT_URI),
                ("code_verifier", v.as_str()),
                ("client_id", &other),
            ],
        );
        (r, other)
    });
    assert_eq!(
        (on.0.status, error_of(&on.0).as_str()),
        (400, "invalid_grant")
    );
    assert_eq!(off.0.status, 200, "{:?}", json(&off.0));
    // The token is still the code's (user, resource); the grant is the presenting client's.
    let c = access_claims(&off.0);
    assert_eq!(
        (&c["sub"], &c["aud"], &c["client_id"]),
        (
            &Value::from(harness::USER),
            &Value::from(RESOURCE),
            &Value::from(off.1)
        )
    );
}

// spec: TOK-10
#[test]
fn skip_redirect_binding_redeems_with_another_or_no_redirect_uri() {
    let m = only(|m| m.skip_redirect_binding = true);
    for redirect in [Some("http://127.0.0.1:7777/other"), None] {
        let (on, off) = both(m, |h| {
            let v = verifier(1);
            let (client_id, code) = obtain_code(h, &v);
            let mut pairs = vec![("code_verifier", v.as_str()), ("client_id", &client_id)];
            pairs.extend(redirect.map(|r| ("redirect_uri", r)));
            redeem(h, &code, &pairs)
        });
        assert_eq!(
            (on.status, error_of(&on).as_str()),
            (400, "invalid_grant"),
            "{redirect:?}"
        );
        assert_eq!(off.status, 200, "{redirect:?}: {:?}", json(&off));
    }
}

// spec: PKCE-7, PKCE-10
#[test]
fn optional_pkce_issues_and_redeems_a_code_without_a_challenge() {
    let m = only(|m| m.optional_pkce = true);
    let no_challenge = [("code_challenge", ""), ("code_challenge_method", "")];
    // Every defense on: an error page (invalid_request), no code.
    let mut h = harness(Mutations::default());
    let client_id = register_client(&mut h, &[REDIRECT_URI]);
    let url = authorize_url(&client_id, &verifier(1), RESOURCE, &no_challenge);
    let q = query_map(
        &h.browse_error(&url)
            .expect("an error page with a link back"),
    );
    assert_eq!(q["error"], "invalid_request");
    assert!(!q.contains_key("code"));
    // `optional_pkce`: a code, redeemed with no code_verifier at all.
    let mut h = harness(m);
    let client_id = register_client(&mut h, &[REDIRECT_URI]);
    let url = authorize_url(&client_id, &verifier(1), RESOURCE, &no_challenge);
    let code = query_map(&h.browse(&url).expect("a redirect with a code"))["code"].clone();
    let changes = h.authorization_server.take_changes();
    let r = redeem(
        &mut h,
        &code,
        &[("redirect_uri", REDIRECT_URI), ("client_id", &client_id)],
    );
    assert_eq!(r.status, 200, "{:?}", json(&r));
    // Such a code is stored and read back only where the switch made it.
    let (key, body) = changes
        .iter()
        .find_map(|c| match (&c.key, c.body()) {
            (RecordKey::Code(_), Some(body)) => Some((c.key.clone(), body)),
            _ => None,
        })
        .expect("the code is stored");
    let with = h.authorization_server.config().clone();
    assert!(Record::decode(&key, &body, &with).is_ok());
    let mut without = with.clone();
    without.mutations = Mutations::default();
    assert!(Record::decode(&key, &body, &without).is_err());
    // A request that has a challenge is still checked, and so is its code's verifier.
    let (client_id, code) = obtain_code(&mut h, &verifier(1));
    let wrong = redeem(
        &mut h,
        &code,
        &[
            ("redirect_uri", REDIRECT_URI),
            ("client_id", &client_id),
            ("code_verifier", verifier(2).as_str()),
        ],
    );
    assert_eq!(error_of(&wrong), "invalid_grant");
    let missing = redeem(
        &mut h,
        &code,
        &[("redirect_uri", REDIRECT_URI), ("client_id", &client_id)],
    );
    assert_eq!(error_of(&missing), "invalid_request");
    let plain = authorize_url(
        &client_id,
        &verifier(1),
        RESOURCE,
        &[("code_challenge_method", "plain")],
    );
    assert_eq!(
        query_map(&h.browse_error(&plain).expect("an error page"))["error"],
        "invalid_request"
    );
}

// spec: RT-3
#[test]
fn skip_refresh_client_binding_lets_another_client_refresh() {
    let m = only(|m| m.skip_refresh_client_binding = true);
    let (on, off) = both(m, |h| {
        let tokens = h.drive().expect("tokens");
        let other = register_client(h, &[REDIRECT_URI]);
        (refresh(h, &tokens, &[("client_id", &other)]), tokens)
    });
    assert_eq!(error_of(&on.0), "invalid_grant");
    assert_eq!(off.0.status, 200, "{:?}", json(&off.0));
    // The new tokens are still the grant's client's.
    assert_eq!(
        access_claims(&off.0)["client_id"],
        Value::from(off.1.client_id)
    );
}

// spec: RES-14
#[test]
fn skip_refresh_resource_binding_refreshes_into_another_resource() {
    let m = only(|m| m.skip_refresh_resource_binding = true);
    let (on, off) = both(m, |h| {
        let tokens = h.drive().expect("tokens");
        assert_eq!(claims(&tokens.access_token)["aud"], RESOURCE);
        refresh(h, &tokens, &[("resource", OTHER_RESOURCE)])
    });
    assert_eq!(error_of(&on), "invalid_target");
    assert_eq!(off.status, 200, "{:?}", json(&off));
    assert_eq!(access_claims(&off)["aud"], OTHER_RESOURCE);
}

// ---- resource server --------------------------------------------------------------------------

/// A [`VerificationMemo`] that verifies every time and counts the calls.
#[derive(Default)]
struct Counting(AtomicUsize);

impl VerificationMemo for Counting {
    fn verified(&self, _: &[u8], _: &[u8], _: &[u8], verify: &dyn Fn() -> bool) -> bool {
        self.0.fetch_add(1, Ordering::Relaxed);
        verify()
    }
}

/// A token the harness's AS issued, and the harness (its AS's keys, its clock).
fn issued() -> (Harness, Tokens) {
    let mut h = Harness::new();
    let tokens = h.drive().expect("tokens");
    (h, tokens)
}

/// The harness AS's token with its claims changed by `change` and signed again by the AS.
fn resigned(h: &Harness, tokens: &Tokens, change: impl FnOnce(&mut AccessClaims)) -> String {
    let mut c: AccessClaims =
        serde_json::from_value(claims(&tokens.access_token)).expect("access claims");
    change(&mut c);
    h.authorization_server
        .signer()
        .sign_access_token(&c)
        .expect("signed")
}

/// The harness AS's token with its payload replaced and its signature kept (no longer valid).
fn tampered(tokens: &Tokens, change: impl FnOnce(&mut AccessClaims)) -> String {
    let mut c: AccessClaims =
        serde_json::from_value(claims(&tokens.access_token)).expect("access claims");
    change(&mut c);
    let parts: Vec<&str> = tokens.access_token.split('.').collect();
    let payload = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&c).expect("json"));
    format!("{}.{payload}.{}", parts[0], parts[2])
}

/// The harness's resource server for [`RESOURCE`] with the defenses `mutations` off.
fn resource_server(h: &Harness, mutations: Mutations) -> ResourceServer {
    let mut config = harness::resource_server(&h.authorization_server, RESOURCE)
        .config()
        .clone();
    config.validation.mutations = mutations;
    let mut rs = ResourceServer::new(config);
    rs.set_keys(h.now, KeySet::from_jwks(&h.authorization_server.jwks()));
    rs
}

fn policy(mutations: Mutations) -> ValidationPolicy {
    let mut p = ValidationPolicy::new(ISSUER, RESOURCE);
    p.mutations = mutations;
    p
}

/// `token` is refused (`rejection`) with every defense on and accepted with `mutations` off,
/// by [`validate`] and by the resource server through its verified-token cache (twice: a
/// miss, then a hit, which answers the same). The access the switch gives.
fn refused_then_accepted(
    h: &Harness,
    mutations: Mutations,
    token: &str,
    rejection: Rejection,
) -> Access {
    let keys = KeySet::from_jwks(&h.authorization_server.jwks());
    let strict_policy = policy(Mutations::default());
    assert_eq!(
        validate(&strict_policy, &keys, h.now, token),
        Err(rejection)
    );
    let access = validate(&policy(mutations), &keys, h.now, token).expect("accepted");
    let bearer = format!("Bearer {token}");
    let mut strict = resource_server(h, Mutations::default());
    let mut lax = resource_server(h, mutations);
    for _ in 0..2 {
        let refused = strict.authenticate_cached(h.now, [bearer.as_bytes()]);
        assert_eq!(refused.map_err(|c| c.rejection), Err(rejection));
        let cached = lax.authenticate_cached(h.now, [bearer.as_bytes()]);
        assert_eq!(cached.as_ref(), Ok(&access));
    }
    access
}

// spec: JWT-7
#[test]
fn skip_issuer_check_accepts_another_issuer() {
    let m = only(|m| m.skip_issuer_check = true);
    let (h, tokens) = issued();
    let evil = resigned(&h, &tokens, |c| c.iss = "https://evil.example".into());
    let access = refused_then_accepted(&h, m, &evil, Rejection::WrongIssuer);
    assert_eq!(access.issuer, "https://evil.example");
    // Only the issuer gives way: the audience is still checked.
    let elsewhere = resigned(&h, &tokens, |c| {
        c.iss = "https://evil.example".into();
        c.aud = Audience::One(OTHER_RESOURCE.into());
    });
    let keys = KeySet::from_jwks(&h.authorization_server.jwks());
    assert_eq!(
        validate(&policy(m), &keys, h.now, &elsewhere),
        Err(Rejection::WrongAudience)
    );
}

// spec: JWT-9
#[test]
fn skip_signature_check_accepts_a_forged_token_and_leaves_the_memo_alone() {
    let m = only(|m| m.skip_signature_check = true);
    let (h, tokens) = issued();
    let forged = tampered(&tokens, |c| c.sub = "mallory".into());
    let access = refused_then_accepted(&h, m, &forged, Rejection::BadSignature);
    assert_eq!(access.subject, "mallory");
    // With a verification memo: the switch does not ask it, so it never learns a forged
    // signature as valid, and a strict policy sharing it still refuses the token.
    let keys = KeySet::from_jwks(&h.authorization_server.jwks());
    let memo = Arc::new(Counting::default());
    let memoized = keys.clone().with_verification_memo(memo.clone());
    assert!(validate(&policy(m), &memoized, h.now, &forged).is_ok());
    assert_eq!(memo.0.load(Ordering::Relaxed), 0);
    assert_eq!(
        validate(&policy(Mutations::default()), &memoized, h.now, &forged),
        Err(Rejection::BadSignature)
    );
    assert_eq!(memo.0.load(Ordering::Relaxed), 1);
    // Every other check still applies: an expired forgery and one for another issuer fail.
    let expired = tampered(&tokens, |c| c.exp = 1);
    assert_eq!(
        validate(&policy(m), &keys, h.now, &expired),
        Err(Rejection::TokenExpired)
    );
    let other_issuer = tampered(&tokens, |c| c.iss = "https://evil.example".into());
    assert_eq!(
        validate(&policy(m), &keys, h.now, &other_issuer),
        Err(Rejection::WrongIssuer)
    );
}
