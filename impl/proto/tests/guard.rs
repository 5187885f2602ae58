//! The MCP endpoint's HTTP decisions (`guard`): MCP sessions and their owners, the scopes a
//! `tools/call` needs, what needs no token, the protocol-version header, the `Origin` check, and
//! how refusals are encoded.

use std::collections::BTreeSet;

use mcp_auth_proto::Revision;
use mcp_auth_proto::guard::{
    Sessions, ToolScopes, body_too_large, origin_allowed, origin_refused, protocol_version,
    unauthenticated,
};
use mcp_auth_proto::http::Method;
use mcp_auth_proto::jwt::Access;
use mcp_auth_proto::time::UnixTime;
use mcp_auth_proto::types::ScopeSet;
use mcp_auth_testkit::harness::Harness;

fn access(sub: &str) -> Access {
    Access {
        subject: sub.into(),
        client_id: "c".into(),
        scopes: ScopeSet::from_tokens(["mcp:tools"]),
        audience: "https://mcp.example/mcp".into(),
        issuer: "https://as.example".into(),
        expires_at: UnixTime::from_secs(10),
        jti: "j".into(),
    }
}

fn sessions() -> Sessions {
    Sessions::new(&mut mcp_auth_proto::entropy::Sequential(9))
}

// spec: SEC-2, SEC-3, SEC-6, SEC-11
#[test]
fn a_session_belongs_to_its_creator() {
    let s = sessions();
    let id = s.created("s1", &access("alice"));
    assert!(id.starts_with("s1.") && id.bytes().all(|b| (0x21..=0x7e).contains(&b)));
    assert_eq!(s.check(&id, &access("alice")), Ok("s1".to_owned()));
    assert_eq!(s.check(&id, &access("mallory")).unwrap_err().status, 404);
    let other_client = Access {
        client_id: "c2".into(),
        ..access("alice")
    };
    assert!(s.check(&id, &other_client).is_err());
    // Ids it never handed out do not exist, whoever asks.
    for forged in ["s1", "s1.", "s1.AAAA", "unknown", "", &"x".repeat(300)] {
        assert!(s.check(forged, &access("alice")).is_err(), "{forged}");
    }
    // Another guard (another key, e.g. after a restart) knows none of them.
    assert!(
        Sessions::new(&mut mcp_auth_proto::entropy::Sequential(10))
            .check(&id, &access("alice"))
            .is_err()
    );
}

// spec: ERR-2
#[test]
fn tools_call_needs_the_tool_scopes() {
    let h = Harness::new();
    let scopes = ToolScopes([("admin".to_owned(), ScopeSet::from_tokens(["mcp:admin"]))].into());
    let call = br#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"admin"}}"#;
    let c = scopes
        .check(h.guard.resource_server(), &access("a"), call)
        .unwrap_err();
    assert_eq!(c.status, 403);
    assert!(c.www_authenticate.contains("scope=\"mcp:admin\""));
    let batch = br#"[{"jsonrpc":"2.0","id":1,"method":"tools/list"},{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"admin"}}]"#;
    assert!(
        scopes
            .check(h.guard.resource_server(), &access("a"), batch)
            .is_err()
    );
    let other = br#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo"}}"#;
    assert!(
        scopes
            .check(h.guard.resource_server(), &access("a"), other)
            .is_ok()
    );
}

// spec: PRM-1, PRM-5, PRM-10
#[test]
fn metadata_and_preflights_need_no_token() {
    let h = Harness::new();
    let rs = h.guard.resource_server();
    let prm =
        unauthenticated(rs, Method::Get, "/.well-known/oauth-protected-resource/mcp").unwrap();
    assert_eq!(
        (prm.status, prm.header_value("content-type")),
        (200, Some("application/json"))
    );
    let root = unauthenticated(rs, Method::Get, "/.well-known/oauth-protected-resource").unwrap();
    assert_eq!(root.body, prm.body);
    assert_eq!(
        unauthenticated(rs, Method::Post, "/.well-known/oauth-protected-resource")
            .unwrap()
            .status,
        405
    );
    let pre = unauthenticated(rs, Method::Options, "/mcp").unwrap();
    assert_eq!(pre.status, 204);
    assert!(
        pre.header_value("access-control-expose-headers")
            .unwrap()
            .contains("WWW-Authenticate")
    );
    assert!(unauthenticated(rs, Method::Post, "/mcp").is_none());
    assert!(unauthenticated(rs, Method::Get, "/mcp").is_none());
}

// spec: TRN-3, TRN-4, TRN-9
#[test]
fn the_protocol_version_header_is_checked_except_on_initialize() {
    let call = br#"{"jsonrpc":"2.0","id":1,"method":"tools/list"}"#;
    let init = br#"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{}}"#;
    let lesson = BTreeSet::from([Revision::V2025_06_18]);
    assert!(protocol_version(&[], call, &lesson).is_ok());
    assert!(protocol_version(&[b"2025-06-18"], call, &lesson).is_ok());
    for bad in [&b"1999-01-01"[..], b"2025-11-25", b"", b"2025-06-18 "] {
        let answer = protocol_version(&[bad], call, &lesson).unwrap_err();
        assert_eq!(answer.status, 400, "{bad:?}");
    }
    assert_eq!(
        protocol_version(&[b"2025-06-18", b"2025-06-18"], call, &lesson)
            .unwrap_err()
            .status,
        400
    );
    assert!(protocol_version(&[b"2026-07-28"], init, &lesson).is_ok());
    assert_eq!(
        protocol_version(&[b"x"], b"", &lesson).unwrap_err().status,
        400
    );
    // A server configured for every revision accepts each exactly, and names them all.
    let all = BTreeSet::from(Revision::ALL);
    for r in Revision::ALL {
        assert!(protocol_version(&[r.as_str().as_bytes()], call, &all).is_ok());
    }
    let answer = protocol_version(&[b"2026-07-28 "], call, &all).unwrap_err();
    let body: serde_json::Value = serde_json::from_slice(&answer.body).unwrap();
    assert_eq!(
        body["error"]["data"]["supported"],
        serde_json::json!(["2025-06-18", "2025-11-25", "2026-07-28"])
    );
    // The code 2026-07-28 gives an unsupported version, which its clients act on.
    assert_eq!(body["error"]["code"], -32022);
}

// spec: SEC-8
#[test]
fn origins_none_loopback_or_configured() {
    let allowed = vec!["https://app.example".to_owned()];
    assert!(origin_allowed(&[], &allowed));
    for ok in [
        &b"http://localhost:6274"[..],
        b"http://127.0.0.1",
        b"https://[::1]:8443",
        b"https://app.example",
    ] {
        assert!(origin_allowed(&[ok], &allowed), "{ok:?}");
    }
    for bad in [
        &b"http://evil.example"[..],
        b"null",
        b"https://app.example.evil",
        b"http://localhost.evil.example",
        b"http://127.0.0.1.evil.example",
        b"\xff",
    ] {
        assert!(!origin_allowed(&[bad], &allowed), "{bad:?}");
    }
    assert!(!origin_allowed(
        &[b"http://localhost", b"http://evil.example"],
        &[]
    ));
    assert_eq!(origin_refused().status, 403);
}

// spec: ERR-8, SEC-8, SEC-12
#[test]
fn refusals_carry_a_real_oauth_error_code_or_none() {
    let oauth = ["invalid_request", "invalid_token", "insufficient_scope"];
    let origin = origin_refused();
    assert_eq!(origin.status, 403);
    let body: serde_json::Value = serde_json::from_slice(&origin.body).unwrap_or_default();
    assert!(
        body["error"].as_str().is_none_or(|e| oauth.contains(&e)),
        "{body}"
    );
    // The catalogue: an oversized request is invalid_request, answered as such (ERR-8).
    let big = body_too_large();
    let body: serde_json::Value = serde_json::from_slice(&big.body).unwrap_or_default();
    let rejection = mcp_auth_proto::Rejection::TooLarge;
    assert_eq!(big.status, rejection.code().status());
    assert_eq!(body["error"], rejection.code().as_str());
}

// spec: ERR-3, RS-1, SEC-12
#[test]
fn a_body_the_scope_check_cannot_read_is_refused_not_waved_through() {
    let h = Harness::new();
    let scopes = ToolScopes([("admin".to_owned(), ScopeSet::from_tokens(["mcp:admin"]))].into());
    let a = access("a");
    for unreadable in [
        &b"not json"[..],
        b"",
        b"{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tools/call\",\"params\":{\"name\":\"admin\"}",
        b"\xff\xfe",
        br#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":7}}"#,
        br#"{"jsonrpc":"2.0","id":1,"method":"tools/call"}"#,
    ] {
        let refused = scopes
            .check(h.guard.resource_server(), &a, unreadable)
            .expect_err(&String::from_utf8_lossy(unreadable));
        assert_eq!(refused.status, 400, "{unreadable:?}");
        assert!(refused.www_authenticate.contains("invalid_request"));
    }
    let list = br#"{"jsonrpc":"2.0","id":1,"method":"tools/list"}"#;
    assert!(scopes.check(h.guard.resource_server(), &a, list).is_ok());
}

fn token(h: &Harness, edit: impl FnOnce(&mut mcp_auth_proto::jwt::AccessClaims)) -> String {
    let now = h.now.as_secs();
    let mut claims = mcp_auth_proto::jwt::AccessClaims {
        iss: mcp_auth_testkit::harness::ISSUER.into(),
        sub: "alice".into(),
        aud: mcp_auth_proto::jwt::Audience::One(mcp_auth_testkit::harness::RESOURCE.into()),
        exp: now + 600,
        iat: now,
        nbf: None,
        jti: "j1".into(),
        client_id: "c".into(),
        scope: Some("mcp:tools".into()),
    };
    edit(&mut claims);
    let signed = h
        .authorization_server
        .signer()
        .sign_access_token(&claims)
        .unwrap_or_default();
    format!("Bearer {signed}")
}

// spec: RS-1, ERR-2, PF-19
#[test]
fn a_token_without_the_base_scope_is_refused_on_every_request() {
    let mut h = Harness::new();
    assert!(h.mcp_request(Some(&token(&h, |_| {}))).is_ok());
    for scope in [None, Some("mcp:admin".to_owned())] {
        let bare = token(&h, |c| c.scope = scope.clone());
        let refused = h.mcp_request(Some(&bare)).expect_err("no base scope");
        assert_eq!(refused.status, 403, "{scope:?}");
        assert!(refused.www_authenticate.contains("insufficient_scope"));
        assert!(refused.www_authenticate.contains("scope=\"mcp:tools\""));
        let mut rs = h.guard.resource_server().clone();
        let cached = rs.authenticate_cached(h.now, [bare.as_bytes()]);
        assert_eq!(cached.map_err(|c| c.status), Err(403));
    }
}

// spec: JWT-15
#[test]
fn a_token_issued_in_the_future_beyond_the_leeway_is_refused() {
    let mut h = Harness::new();
    let leeway = h.guard.resource_server().config().validation.leeway_secs;
    let skewed = token(&h, |c| c.iat += leeway);
    assert!(h.mcp_request(Some(&skewed)).is_ok(), "within the leeway");
    let future = token(&h, |c| c.iat += leeway + 1);
    let refused = h.mcp_request(Some(&future)).expect_err("iat in the future");
    assert_eq!(refused.status, 401);
    assert!(refused.www_authenticate.contains("invalid_token"));
}

// spec: SEC-3, SEC-6
#[test]
fn a_session_keeps_its_owner_however_many_sessions_follow() {
    let s = sessions();
    let victim = s.created("victim", &access("alice"));
    let mut mallorys = Vec::new();
    for i in 0..10_001 {
        mallorys.push(s.created(&format!("s{i}"), &access("mallory")));
    }
    assert!(s.check(&victim, &access("mallory")).is_err());
    assert_eq!(s.check(&victim, &access("alice")), Ok("victim".to_owned()));
    // Mallory's own tags do not open the victim's session either.
    for theirs in &mallorys[..3] {
        let (_, tag) = theirs.rsplit_once('.').unwrap_or_default();
        let forged = format!("victim.{tag}");
        assert!(s.check(&forged, &access("mallory")).is_err());
    }
}
