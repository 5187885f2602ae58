//! The MCP endpoint's pipeline ([`McpGuard`]): what each step answers, and that the steps come
//! in the documented order (a request failing two checks gets the earlier one's answer).

use mcp_auth_proto::endpoint::{KeyFetch, KeyFetchError, McpGuard, Verdict};
use mcp_auth_proto::entropy::Sequential;
use mcp_auth_proto::guard::{Sessions, ToolScopes};
use mcp_auth_proto::http::{HttpRequest, HttpResponse, Method};
use mcp_auth_proto::resource::{ResourceServer, RsConfig};
use mcp_auth_proto::time::UnixTime;
use mcp_auth_proto::types::ScopeSet;
use mcp_auth_proto::uri::{HttpPolicy, Issuer, ResourceUri};
use mcp_auth_testkit::harness::{self, Harness, RESOURCE};

const LIST: &str = r#"{"jsonrpc":"2.0","id":1,"method":"tools/list"}"#;
const INIT: &str = r#"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{}}"#;
const ADMIN: &str = r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"admin"}}"#;

/// A guard over the harness's resource server, `admin` needing `mcp:admin`, and a token for it.
fn setup() -> (McpGuard, String, UnixTime) {
    let mut h = Harness::new();
    let tokens = h.drive().expect("authorized");
    let rs = harness::resource_server(&h.authorization_server, RESOURCE);
    let tool_scopes =
        ToolScopes([("admin".to_owned(), ScopeSet::from_tokens(["mcp:admin"]))].into());
    let guard = McpGuard::new(rs, Sessions::new(&mut Sequential(3))).with_tool_scopes(tool_scopes);
    (guard, tokens.access_token, h.now)
}

fn post(token: Option<&str>, body: &str) -> HttpRequest {
    let request = HttpRequest::new(Method::Post, "/mcp")
        .header("content-type", "application/json")
        .body(body.as_bytes().to_vec());
    match token {
        Some(t) => request.header("authorization", format!("Bearer {t}")),
        None => request,
    }
}

/// The whole pipeline for a request, the way the drivers run it (no keys to fetch here).
fn run(
    guard: &mut McpGuard,
    now: UnixTime,
    request: &HttpRequest,
) -> Result<Option<String>, HttpResponse> {
    match guard.handle_request(now, request) {
        Verdict::Respond(response) => Err(response),
        Verdict::ReadBody(admitted) => guard
            .handle_body(admitted, &request.body)
            .map(|f| f.session),
        other => panic!("unexpected {other:?}"),
    }
}

fn status(result: &Result<Option<String>, HttpResponse>) -> u16 {
    result.as_ref().map_or_else(|r| r.status, |_| 200)
}

// spec: PRM-1, PRM-10, RS-1, ERR-4
#[test]
fn metadata_is_public_the_rest_needs_a_token() {
    let (mut guard, token, now) = setup();
    let prm = HttpRequest::new(Method::Get, "/.well-known/oauth-protected-resource/mcp");
    let answer = run(&mut guard, now, &prm).unwrap_err();
    assert_eq!(answer.status, 200);
    assert!(String::from_utf8_lossy(&answer.body).contains(RESOURCE));
    let preflight = HttpRequest::new(Method::Options, "/mcp");
    assert_eq!(status(&run(&mut guard, now, &preflight)), 204);
    let answer = run(&mut guard, now, &post(None, LIST)).unwrap_err();
    assert_eq!(answer.status, 401);
    assert!(
        answer
            .header_value("www-authenticate")
            .unwrap()
            .contains("resource_metadata=")
    );
    assert_eq!(
        status(&run(&mut guard, now, &post(Some(&token), LIST))),
        200
    );
}

// spec: SEC-8, RS-1, TRN-4, ERR-2, SEC-6
#[test]
fn the_checks_come_in_order() {
    let (mut guard, token, now) = setup();
    // A foreign origin is refused before the (missing) token is looked at.
    let foreign = post(None, LIST).header("origin", "https://evil.example");
    assert_eq!(status(&run(&mut guard, now, &foreign)), 403);
    // Authentication before the protocol version: no token and a bad version is a 401.
    let bad_version =
        |t: Option<&str>, body: &str| post(t, body).header("mcp-protocol-version", "1999-01-01");
    assert_eq!(status(&run(&mut guard, now, &bad_version(None, LIST))), 401);
    assert_eq!(
        status(&run(&mut guard, now, &bad_version(Some(&token), LIST))),
        400
    );
    // `initialize` negotiates the version in its body.
    assert_eq!(
        status(&run(&mut guard, now, &bad_version(Some(&token), INIT))),
        200
    );
    // The version before the tool scopes, the tool scopes before the session.
    assert_eq!(
        status(&run(&mut guard, now, &bad_version(Some(&token), ADMIN))),
        400
    );
    let admin = run(&mut guard, now, &post(Some(&token), ADMIN)).unwrap_err();
    assert_eq!(admin.status, 403);
    assert!(
        admin
            .header_value("www-authenticate")
            .unwrap()
            .contains("scope=\"mcp:admin\"")
    );
    let unknown_session = post(Some(&token), ADMIN).header("mcp-session-id", "s1.AAAA");
    assert_eq!(status(&run(&mut guard, now, &unknown_session)), 403);
    let unknown_session = post(Some(&token), LIST).header("mcp-session-id", "s1.AAAA");
    assert_eq!(status(&run(&mut guard, now, &unknown_session)), 404);
    // A body that is not JSON cannot say which tool it calls: 400, never "no scope needed".
    assert_eq!(status(&run(&mut guard, now, &post(Some(&token), "{"))), 400);
}

// spec: SEC-2, SEC-3, SEC-6, SEC-11
#[test]
fn sessions_are_bound_to_their_creator() {
    let (mut guard, token, now) = setup();
    let request = post(Some(&token), INIT);
    let Verdict::ReadBody(admitted) = guard.handle_request(now, &request) else {
        panic!("admitted")
    };
    let forward = guard
        .handle_body(admitted, &request.body)
        .expect("forwarded");
    assert_eq!(forward.session, None);
    let bound = guard
        .handle_response(&forward, Some(b"inner-1"))
        .expect("bound")
        .expect("an id");
    assert!(bound.starts_with("inner-1."));
    // The creator's next request reaches the MCP server with the MCP server's own id.
    let again = post(Some(&token), LIST).header("mcp-session-id", bound.clone());
    assert_eq!(run(&mut guard, now, &again), Ok(Some("inner-1".to_owned())));
    // An id that is not visible ASCII is not handed out.
    assert_eq!(
        guard
            .handle_response(&forward, Some(b"bad id"))
            .unwrap_err()
            .status,
        500
    );
    assert_eq!(guard.handle_response(&forward, None), Ok(None));
}

// spec: RS-8, RS-9, JWT-9, JWT-13
#[test]
fn an_unknown_key_asks_for_one_fetch_then_refuses() {
    let (guard, token, now) = setup();
    // A guard for the same resource that holds no keys yet.
    let config = guard.resource_server().config().clone();
    let mut guard = McpGuard::new(
        ResourceServer::new(config),
        Sessions::new(&mut Sequential(4)),
    )
    .with_jwks_uri("https://as.example/jwks");
    let request = post(Some(&token), LIST);
    let Verdict::FetchKeys(refusal) = guard.handle_request(now, &request) else {
        panic!("fetch keys")
    };
    assert_eq!(refusal.status, 401);
    let key_request = guard.key_request();
    assert_eq!(key_request.url, "https://as.example/jwks");
    let failed = guard.handle_key_response(now, &key_request, None);
    assert_eq!(failed, KeyFetch::Failed(KeyFetchError::Unreachable));
    // The failed attempt counts: no second fetch within the interval.
    assert!(matches!(guard.handle_request(now, &request), Verdict::Respond(r) if r.status == 401));
}

// spec: RS-8, DISC-7
#[test]
fn keys_are_found_from_the_issuer_metadata() {
    let h = Harness::new();
    let resource = ResourceUri::parse(RESOURCE, HttpPolicy::HttpsOnly).unwrap();
    let issuer = Issuer::parse("https://as.example/tenant", HttpPolicy::HttpsOnly).unwrap();
    let rs = ResourceServer::new(RsConfig::new(
        resource,
        issuer,
        ScopeSet::from_tokens(["mcp:tools"]),
    ));
    let mut guard = McpGuard::new(rs, Sessions::new(&mut Sequential(5)));
    let now = UnixTime::from_secs(1_000);
    let first = guard.key_request();
    assert_eq!(
        first.url,
        "https://as.example/.well-known/oauth-authorization-server/tenant"
    );
    // RFC 8414 missing: OpenID Connect discovery next.
    let KeyFetch::Next(oidc) =
        guard.handle_key_response(now, &first, Some(&HttpResponse::new(404)))
    else {
        panic!("fallback")
    };
    assert_eq!(
        oidc.url,
        "https://as.example/tenant/.well-known/openid-configuration"
    );
    // Metadata of another issuer is refused.
    let other = HttpResponse::json(
        200,
        &serde_json::json!({"issuer": "https://evil.example", "jwks_uri": "https://evil.example/jwks"}),
    );
    assert_eq!(
        guard.handle_key_response(now, &oidc, Some(&other)),
        KeyFetch::Failed(KeyFetchError::IssuerMismatch)
    );
    let ours = HttpResponse::json(
        200,
        &serde_json::json!({"issuer": "https://as.example/tenant", "jwks_uri": "https://as.example/tenant/jwks"}),
    );
    let KeyFetch::Next(jwks) = guard.handle_key_response(now, &first, Some(&ours)) else {
        panic!("jwks next")
    };
    assert_eq!(jwks.url, "https://as.example/tenant/jwks");
    let keys = HttpResponse::json(200, &h.authorization_server.jwks());
    assert_eq!(
        guard.handle_key_response(now, &jwks, Some(&keys)),
        KeyFetch::Installed(1)
    );
    // The URL is remembered: the next fetch goes straight to the JWK Set.
    assert_eq!(guard.key_request().url, "https://as.example/tenant/jwks");
    // A jwks_uri the transport policy refuses is not followed.
    let mut guard = McpGuard::new(
        guard.resource_server().clone(),
        Sessions::new(&mut Sequential(6)),
    );
    let plain = HttpResponse::json(
        200,
        &serde_json::json!({"issuer": "https://as.example/tenant", "jwks_uri": "http://as.example/jwks"}),
    );
    assert_eq!(
        guard.handle_key_response(now, &first, Some(&plain)),
        KeyFetch::Failed(KeyFetchError::NoKeys)
    );
}

/// [`setup`] with the MCP server serving `revisions`.
fn setup_revisions(
    revisions: impl IntoIterator<Item = mcp_auth_proto::Revision>,
) -> (McpGuard, String, UnixTime) {
    let (guard, token, now) = setup();
    let rs = guard.resource_server();
    let mut stateless = ResourceServer::new(rs.config().clone().with_revisions(revisions));
    stateless.set_keys(now, rs.keys().clone());
    let guard = McpGuard::new(stateless, guard.sessions().clone()).with_tool_scopes(ToolScopes(
        [("admin".to_owned(), ScopeSet::from_tokens(["mcp:admin"]))].into(),
    ));
    (guard, token, now)
}

const DISCOVER: &str = r#"{"jsonrpc":"2.0","id":1,"method":"server/discover","params":{}}"#;

// spec: TRN-9, TRN-4
#[test]
fn a_stateless_request_names_its_method_in_the_mcp_method_header() {
    use mcp_auth_proto::Revision;
    let (mut guard, token, now) = setup_revisions([Revision::V2026_07_28]);
    let v2026 = |request: HttpRequest| request.header("mcp-protocol-version", "2026-07-28");
    let ok = v2026(post(Some(&token), DISCOVER)).header("mcp-method", "server/discover");
    assert_eq!(status(&run(&mut guard, now, &ok)), 200);
    // Missing, different, repeated: 400 with the JSON-RPC header-mismatch error.
    for bad in [
        v2026(post(Some(&token), DISCOVER)),
        v2026(post(Some(&token), DISCOVER)).header("mcp-method", "tools/list"),
        v2026(post(Some(&token), DISCOVER))
            .header("mcp-method", "server/discover")
            .header("mcp-method", "server/discover"),
        v2026(post(Some(&token), "[]")).header("mcp-method", "server/discover"),
    ] {
        let answer = run(&mut guard, now, &bad).unwrap_err();
        assert_eq!(answer.status, 400);
        assert!(String::from_utf8_lossy(&answer.body).contains("-32020"));
    }
    // The token still comes first: no token, 401 whatever the headers.
    let anonymous = v2026(post(None, DISCOVER)).header("mcp-method", "server/discover");
    assert_eq!(status(&run(&mut guard, now, &anonymous)), 401);
    // An older revision's request, one without the header, or an `initialize` (no session
    // can be opened) is not served by a server that serves only the stateless revision: 400
    // naming it.
    for request in [
        post(Some(&token), LIST).header("mcp-protocol-version", "2025-06-18"),
        post(Some(&token), LIST),
        post(Some(&token), INIT),
        post(Some(&token), INIT).header("mcp-protocol-version", "2026-07-28"),
    ] {
        let answer = run(&mut guard, now, &request).unwrap_err();
        assert_eq!(answer.status, 400);
        assert!(String::from_utf8_lossy(&answer.body).contains(r#"["2026-07-28"]"#));
    }
}

// spec: SEC-18, SEC-6, TRN-9
#[test]
fn a_stateless_request_has_no_session_and_stands_on_its_token() {
    use mcp_auth_proto::Revision;
    let (mut guard, token, now) = setup_revisions(Revision::ALL);
    // A session made under 2025-06-18 is bound to its creator and forwarded.
    let init = post(Some(&token), INIT);
    let Verdict::ReadBody(admitted) = guard.handle_request(now, &init) else {
        panic!("admitted")
    };
    let forward = guard.handle_body(admitted, init.body.as_slice()).unwrap();
    let bound = guard
        .handle_response(&forward, Some(b"inner-1"))
        .unwrap()
        .expect("bound id");
    let legacy = post(Some(&token), LIST)
        .header("mcp-protocol-version", "2025-06-18")
        .header("mcp-session-id", bound.as_str());
    assert_eq!(
        run(&mut guard, now, &legacy).unwrap().as_deref(),
        Some("inner-1")
    );
    // A 2026-07-28 request presenting it (or any id) is served without it: no session.
    for presented in [bound.as_str(), "forged.id"] {
        let stateless = post(Some(&token), LIST)
            .header("mcp-protocol-version", "2026-07-28")
            .header("mcp-method", "tools/list")
            .header("mcp-session-id", presented);
        assert_eq!(run(&mut guard, now, &stateless).unwrap(), None);
    }
    // And the id is no credential: without the token, 401.
    let anonymous = post(None, LIST)
        .header("mcp-protocol-version", "2026-07-28")
        .header("mcp-method", "tools/list")
        .header("mcp-session-id", bound.as_str());
    assert_eq!(status(&run(&mut guard, now, &anonymous)), 401);
    // Tool scopes hold per request as before.
    let admin = post(Some(&token), ADMIN)
        .header("mcp-protocol-version", "2026-07-28")
        .header("mcp-method", "tools/call");
    assert_eq!(status(&run(&mut guard, now, &admin)), 403);
}

// spec: A-12
#[test]
fn browser_clients_of_every_revision_may_send_their_headers() {
    let (mut guard, _, now) = setup();
    let preflight = run(&mut guard, now, &HttpRequest::new(Method::Options, "/mcp")).unwrap_err();
    let allowed = preflight
        .header_value("access-control-allow-headers")
        .unwrap()
        .to_owned();
    for name in [
        "authorization",
        "mcp-protocol-version",
        "mcp-session-id",
        "mcp-method",
        "mcp-name",
    ] {
        assert!(
            allowed.split(", ").any(|h| h == name),
            "{name} in {allowed}"
        );
    }
}
