//! Token revocation (RFC 7009) and introspection (RFC 7662) at the authorization server, and
//! the introspecting resource server, over the core's HTTP codecs on simulated time.

use mcp_auth_proto::client::Tokens;
use mcp_auth_proto::http::{HttpRequest, HttpResponse};
use mcp_auth_proto::introspection::IntrospectionConfig;
use mcp_auth_proto::resource::{Authenticated, ResourceServer};
use mcp_auth_proto::server::AuthorizationServer;
use mcp_auth_proto::types::SecretDigest;
use mcp_auth_proto::uri::{HttpPolicy, ResourceUri};
use mcp_auth_proto::{Rejection, form};
use mcp_auth_testkit::harness::{
    self, Harness, ISSUER, OTHER_RESOURCE, RESOURCE, form_post, register_client,
};
use serde_json::Value;

const RS_SECRET: &str = "rs-secret-for-the-honest-mcp-server";
const OTHER_SECRET: &str = "rs-secret-for-the-other-mcp-server";

/// A harness whose AS knows the introspection credentials of both resource servers.
fn harness() -> Harness {
    let mut h = Harness::new();
    let mut config = h.authorization_server.config().clone();
    for (resource, secret) in [(RESOURCE, RS_SECRET), (OTHER_RESOURCE, OTHER_SECRET)] {
        let resource = ResourceUri::parse(resource, HttpPolicy::HttpsOnly).expect("resource");
        config
            .resource_credentials
            .insert(resource, SecretDigest::of(secret));
    }
    let signer = h.authorization_server.signer().clone();
    h.authorization_server = AuthorizationServer::new(config, signer);
    h
}

fn post(h: &mut Harness, path: &str, pairs: &[(&str, &str)]) -> HttpResponse {
    h.route(&form_post(&format!("{ISSUER}{path}"), pairs))
}

fn json(response: &HttpResponse) -> Value {
    serde_json::from_slice(&response.body).unwrap_or_default()
}

fn revoke(h: &mut Harness, tokens: &Tokens, token: &str, hint: &str) -> HttpResponse {
    let pairs = [
        ("token", token),
        ("token_type_hint", hint),
        ("client_id", &tokens.client_id),
    ];
    post(h, "/revoke", &pairs)
}

/// Introspection by the resource server `resource` with `secret` (HTTP Basic).
fn introspect_as_rs(h: &mut Harness, resource: &str, secret: &str, token: &str) -> HttpResponse {
    let request = form_post(&format!("{ISSUER}/introspect"), &[("token", token)])
        .header("authorization", form::basic_authorization(resource, secret));
    h.route(&request)
}

fn refresh(h: &mut Harness, tokens: &Tokens, refresh_token: &str) -> HttpResponse {
    let pairs = [
        ("grant_type", "refresh_token"),
        ("refresh_token", refresh_token),
        ("client_id", &tokens.client_id),
    ];
    post(h, "/token", &pairs)
}

fn active(response: &HttpResponse) -> bool {
    assert_eq!(
        response.status,
        200,
        "{}",
        String::from_utf8_lossy(&response.body)
    );
    json(response)["active"] == true
}

// spec: RT-13, RT-14, RT-16
#[test]
fn revoking_the_refresh_token_revokes_the_grant_and_its_access_tokens() {
    let mut h = harness();
    let tokens = h.drive().expect("tokens");
    let rt = tokens.refresh_token.clone().expect("a refresh token");
    let at = tokens.access_token.clone();
    assert!(active(&introspect_as_rs(&mut h, RESOURCE, RS_SECRET, &at)));
    // The hint is wrong: the server searches the other kinds too (RT-16).
    let r = revoke(&mut h, &tokens, &rt, "access_token");
    assert_eq!((r.status, r.body.len()), (200, 0));
    assert_eq!(r.header_value("cache-control"), Some("no-store"));
    assert!(!active(&introspect_as_rs(&mut h, RESOURCE, RS_SECRET, &at)));
    let again = refresh(&mut h, &tokens, &rt);
    assert_eq!(json(&again)["error"], "invalid_grant");
}

// spec: RT-15
#[test]
fn revoking_an_access_token_revokes_its_whole_grant() {
    let mut h = harness();
    let tokens = h.drive().expect("tokens");
    let rt = tokens.refresh_token.clone().expect("a refresh token");
    let r = revoke(&mut h, &tokens, &tokens.access_token, "access_token");
    assert_eq!(r.status, 200);
    assert!(!active(&introspect_as_rs(
        &mut h,
        RESOURCE,
        RS_SECRET,
        &tokens.access_token
    )));
    assert_eq!(
        json(&refresh(&mut h, &tokens, &rt))["error"],
        "invalid_grant"
    );
}

// spec: RT-17
#[test]
fn unknown_and_foreign_tokens_get_200_and_change_nothing() {
    let mut h = harness();
    let tokens = h.drive().expect("tokens");
    let rt = tokens.refresh_token.clone().expect("a refresh token");
    let unknown = revoke(&mut h, &tokens, "no-such-token", "refresh_token");
    assert_eq!((unknown.status, unknown.body.len()), (200, 0));
    // Another client presents our refresh token: 200, and nothing is revoked.
    let other = register_client(&mut h, &[harness::REDIRECT_URI]);
    let foreign = post(
        &mut h,
        "/revoke",
        &[("token", rt.as_str()), ("client_id", other.as_str())],
    );
    assert_eq!((foreign.status, foreign.body.len()), (200, 0));
    assert_eq!(unknown.body, foreign.body, "the two answers are the same");
    assert!(active(&introspect_as_rs(
        &mut h,
        RESOURCE,
        RS_SECRET,
        &tokens.access_token
    )));
    // Client authentication still counts: an unknown client gets 401 invalid_client.
    let bad = post(
        &mut h,
        "/revoke",
        &[("token", rt.as_str()), ("client_id", "nobody")],
    );
    assert_eq!(bad.status, 401);
    assert_eq!(json(&bad)["error"], "invalid_client");
    let basic = h.route(
        &form_post(&format!("{ISSUER}/revoke"), &[("token", rt.as_str())])
            .header("authorization", form::basic_authorization(&other, "wrong")),
    );
    assert_eq!(basic.status, 401);
    assert!(basic.header_value("www-authenticate").is_some());
    // The refresh token was never revoked.
    assert_eq!(refresh(&mut h, &tokens, &rt).status, 200);
}

// spec: RS-15
#[test]
fn introspection_needs_an_authenticated_caller() {
    let mut h = harness();
    let tokens = h.drive().expect("tokens");
    let at = tokens.access_token.as_str();
    let anonymous = post(&mut h, "/introspect", &[("token", at)]);
    assert_eq!(anonymous.status, 401);
    assert_eq!(json(&anonymous)["error"], "invalid_client");
    let wrong = introspect_as_rs(&mut h, RESOURCE, "not-the-secret", at);
    assert_eq!(wrong.status, 401);
    assert!(wrong.header_value("www-authenticate").is_some());
    // Another resource server's secret, and an unconfigured resource server (no client
    // either).
    assert_eq!(
        introspect_as_rs(&mut h, OTHER_RESOURCE, RS_SECRET, at).status,
        401
    );
    assert_eq!(
        introspect_as_rs(&mut h, "https://third.example/mcp", RS_SECRET, at).status,
        401
    );
    // The client itself may introspect its own token.
    let own = post(
        &mut h,
        "/introspect",
        &[("token", at), ("client_id", tokens.client_id.as_str())],
    );
    assert!(active(&own));
    let metadata = h.authorization_server.metadata();
    assert_eq!(
        metadata.introspection_endpoint.as_deref(),
        Some("https://as.example/introspect")
    );
    assert_eq!(
        metadata.revocation_endpoint.as_deref(),
        Some("https://as.example/revoke")
    );
}

// spec: RS-16, RS-17
#[test]
fn anything_not_active_is_active_false_and_nothing_else() {
    let mut h = harness();
    let tokens = h.drive().expect("tokens");
    let at = tokens.access_token.clone();
    let answer = json(&introspect_as_rs(&mut h, RESOURCE, RS_SECRET, &at));
    assert_eq!(answer["active"], true);
    assert_eq!(answer["aud"], RESOURCE);
    assert_eq!(answer["iss"], ISSUER);
    assert_eq!(answer["client_id"], tokens.client_id.as_str());
    assert_eq!(answer["sub"], harness::USER);
    assert_eq!(answer["scope"], "mcp:tools");
    assert_eq!(answer["token_type"], "Bearer");
    assert!(answer["exp"].is_u64() && answer["iat"].is_u64());
    let inactive = |r: HttpResponse| {
        assert_eq!(r.status, 200);
        assert_eq!(r.body, br#"{"active":false}"#.to_vec());
    };
    inactive(introspect_as_rs(&mut h, RESOURCE, RS_SECRET, "garbage"));
    // A refresh token is not an access token.
    let rt = tokens.refresh_token.clone().unwrap_or_default();
    inactive(introspect_as_rs(&mut h, RESOURCE, RS_SECRET, &rt));
    // Another client may not learn about our token.
    let other = register_client(&mut h, &[harness::REDIRECT_URI]);
    inactive(post(
        &mut h,
        "/introspect",
        &[("token", at.as_str()), ("client_id", other.as_str())],
    ));
    // Another audience than the calling resource server.
    inactive(introspect_as_rs(&mut h, OTHER_RESOURCE, OTHER_SECRET, &at));
    // Expired (the access token lives 300 s by default).
    h.advance(301);
    inactive(introspect_as_rs(&mut h, RESOURCE, RS_SECRET, &at));
}

/// The honest resource server, introspecting with a 30 s cache.
fn introspecting_rs(h: &Harness) -> ResourceServer {
    let rs = harness::resource_server(&h.authorization_server, RESOURCE);
    let mut config = rs.config().clone();
    config.introspection = Some(IntrospectionConfig::new(
        format!("{ISSUER}/introspect"),
        RS_SECRET,
    ));
    let mut fresh = ResourceServer::new(config);
    fresh.set_keys(h.now, rs.keys().clone());
    fresh
}

/// One MCP request to an introspecting RS; the AS answers its introspection if `reachable`.
fn mcp(
    h: &mut Harness,
    rs: &mut ResourceServer,
    token: &str,
    reachable: bool,
) -> (Result<(), u16>, bool) {
    let bearer = format!("Bearer {token}");
    match rs.authenticate_active(h.now, [bearer.as_bytes()]) {
        Authenticated::Done(r) => (r.map(|_| ()).map_err(|c| c.status), false),
        Authenticated::Introspect(call) => {
            let request: HttpRequest = call.request.clone();
            let response = reachable.then(|| h.route(&request));
            let r = rs.introspected(h.now, call, response.as_ref());
            (r.map(|_| ()).map_err(|c| c.status), true)
        }
    }
}

// spec: RT-2, RS-18
#[test]
fn an_introspecting_rs_refuses_a_revoked_grants_token_within_the_cache_time() {
    let mut h = harness();
    let tokens = h.drive().expect("tokens");
    let at = tokens.access_token.clone();
    let mut rs = introspecting_rs(&h);
    assert_eq!(mcp(&mut h, &mut rs, &at, true), (Ok(()), true), "asked");
    assert_eq!(mcp(&mut h, &mut rs, &at, true), (Ok(()), false), "cached");
    // The grant is revoked (a revocation request here; a replayed code or refresh token
    // does the same, RT-2).
    let rt = tokens.refresh_token.clone().unwrap_or_default();
    assert_eq!(revoke(&mut h, &tokens, &rt, "refresh_token").status, 200);
    h.advance(29);
    assert_eq!(
        mcp(&mut h, &mut rs, &at, true),
        (Ok(()), false),
        "still cached"
    );
    h.advance(1);
    assert_eq!(mcp(&mut h, &mut rs, &at, true), (Err(401), true), "refused");
    assert_eq!(mcp(&mut h, &mut rs, &at, true), (Err(401), false));
    // Without introspection, the JWT alone still passes until its exp.
    let plain = harness::resource_server(&h.authorization_server, RESOURCE);
    assert!(
        plain
            .authenticate(h.now, [format!("Bearer {at}").as_bytes()])
            .is_ok()
    );
}

// spec: RS-18
#[test]
fn a_cached_answer_never_outlives_the_tokens_exp_and_an_unreachable_as_fails_closed() {
    let mut h = harness();
    let tokens = h.drive().expect("tokens");
    let at = tokens.access_token.clone();
    let mut rs = introspecting_rs(&h);
    // The AS cannot be asked: 503, not cached, and not blamed on the token.
    let bearer = format!("Bearer {at}");
    let Authenticated::Introspect(call) = rs.authenticate_active(h.now, [bearer.as_bytes()]) else {
        panic!("an introspection is needed");
    };
    let refused = rs.introspected(h.now, call, None).expect_err("fail closed");
    assert_eq!(refused.status, 503);
    assert_eq!(refused.rejection, Rejection::IntrospectionUnavailable);
    let response = mcp_auth_proto::guard::challenge_response(&refused);
    assert_eq!(response.header_value("retry-after"), Some("5"));
    assert_eq!(
        mcp(&mut h, &mut rs, &at, true),
        (Ok(()), true),
        "asked again"
    );
    // Just before exp plus the leeway the cached answer is used; after, the JWT is refused.
    h.advance(300 + 29);
    assert!(
        mcp(&mut h, &mut rs, &at, true).1,
        "the 30 s answer went stale"
    );
    h.advance(1);
    assert_eq!(mcp(&mut h, &mut rs, &at, true), (Err(401), false));
}
