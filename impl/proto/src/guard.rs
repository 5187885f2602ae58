//! The MCP endpoint's HTTP decisions, around [`ResourceServer::authenticate`]: which requests
//! are metadata, preflights or MCP calls; how a refusal is encoded; which scopes a `tools/call`
//! needs; and which identity owns an MCP session (a session id is never a credential).
//!
//! The tower layer of the `mcp-auth` crate moves bytes and calls these; it decides nothing.

use std::collections::BTreeMap;

use crate::error::Rejection;
use crate::http::{HttpResponse, Method};
use crate::jwt::Access;
use crate::resource::{Challenge, ResourceServer};
use crate::types::ScopeSet;

/// Response headers a browser-based client must be able to read (CORS).
pub const EXPOSE_HEADERS: &str = "WWW-Authenticate, Mcp-Session-Id";
/// Request headers a browser-based client may send (CORS preflight).
pub const ALLOW_HEADERS: &str =
    "authorization, content-type, accept, mcp-protocol-version, mcp-session-id, last-event-id";
/// Largest MCP request body buffered (1 MiB).
pub const BODY_LEN_MAX: usize = 1024 * 1024;

/// The CORS headers of every answer of the MCP endpoint and its metadata, the MCP server's own
/// answers included.
pub const CORS_HEADERS: &[(&str, &str)] = &[
    ("access-control-allow-origin", "*"),
    ("access-control-expose-headers", EXPOSE_HEADERS),
];

/// Add the [`CORS_HEADERS`] to a response.
pub fn with_cors(response: HttpResponse) -> HttpResponse {
    CORS_HEADERS
        .iter()
        .fold(response, |response, (name, value)| {
            response.header(name, *value)
        })
}

fn preflight(methods: &str) -> HttpResponse {
    with_cors(
        HttpResponse::new(204)
            .header("access-control-allow-methods", methods)
            .header("access-control-allow-headers", ALLOW_HEADERS)
            .header("access-control-max-age", "600"),
    )
}

/// Requests answered without authentication: Protected Resource Metadata (GET, preflight, 405
/// for anything else) and CORS preflights of the MCP endpoint. `None`: authenticate it.
// spec: PRM-1, PRM-4, PRM-5, PRM-10
pub fn unauthenticated(rs: &ResourceServer, method: Method, path: &str) -> Option<HttpResponse> {
    if rs.is_metadata_path(path) {
        return Some(match method {
            Method::Options => preflight("GET, OPTIONS"),
            Method::Get => with_cors(HttpResponse::json(200, &rs.metadata())),
            _ => with_cors(
                crate::http::oauth_error(Rejection::WrongMethod).header("allow", "GET, OPTIONS"),
            ),
        });
    }
    (method == Method::Options).then(|| preflight("GET, POST, DELETE, OPTIONS"))
}

/// Encode a refusal: its status and exact `WWW-Authenticate`, no body.
// spec: ERR-4, PRM-8
pub fn challenge_response(challenge: &Challenge) -> HttpResponse {
    let response = HttpResponse::new(challenge.status)
        .header("www-authenticate", challenge.www_authenticate.clone())
        .header("cache-control", "no-store");
    // A 503 (the authorization server could not confirm the token) says when to try again.
    let response = if challenge.status == 503 {
        response.header(
            "retry-after",
            crate::introspection::INTROSPECTION_RETRY_AFTER_SECS.to_string(),
        )
    } else {
        response
    };
    with_cors(response)
}

/// A request body that exceeds [`BODY_LEN_MAX`]: 400 `invalid_request`, as the catalogue says
/// for [`Rejection::TooLarge`] and RFC 6750 §3.1 for `invalid_request` (ERR-8).
// spec: ERR-8, SEC-12
pub fn body_too_large() -> HttpResponse {
    with_cors(crate::http::oauth_error(Rejection::TooLarge))
}

/// A request body that could not be read.
pub fn body_unreadable() -> HttpResponse {
    with_cors(crate::http::oauth_error(Rejection::BodyUnreadable))
}

/// Scopes each tool needs beyond access to the server.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct ToolScopes(pub BTreeMap<String, ScopeSet>);

impl ToolScopes {
    /// The scopes the `tools/call` messages of a JSON-RPC body (single or batch) need, if any.
    /// Fails closed: a body that is not JSON, or a `tools/call` without a string
    /// `params.name`, is [`Rejection::Malformed`], never "no scope needed".
    pub fn needed(&self, body: &[u8]) -> Result<Option<ScopeSet>, Rejection> {
        self.needed_by(&Messages::parse(body))
    }

    /// [`ToolScopes::needed`] for a body already parsed.
    pub fn needed_by(&self, messages: &Messages) -> Result<Option<ScopeSet>, Rejection> {
        let value = messages.0.as_ref().map_err(|()| Rejection::Malformed)?;
        let messages = match value {
            serde_json::Value::Array(items) => items.as_slice(),
            single => std::slice::from_ref(single),
        };
        let mut needed = Vec::new();
        for message in messages {
            if message.get("method").and_then(|v| v.as_str()) != Some("tools/call") {
                continue;
            }
            let name = message
                .pointer("/params/name")
                .and_then(|v| v.as_str())
                .ok_or(Rejection::Malformed)?;
            if let Some(scopes) = self.0.get(name) {
                needed.extend(scopes.iter().map(str::to_owned));
            }
        }
        Ok((!needed.is_empty()).then(|| ScopeSet::from_tokens(needed)))
    }

    /// Check a POST body against the token: `Err` is the 403 `insufficient_scope` challenge,
    /// or 400 `invalid_request` for a body it cannot read (RFC 6750 §3.1: "otherwise
    /// malformed").
    // spec: ERR-2, ERR-3, RS-1
    pub fn check(
        &self,
        rs: &ResourceServer,
        access: &Access,
        body: &[u8],
    ) -> Result<(), Challenge> {
        match self.needed(body) {
            Ok(Some(needed)) => rs.require_scopes(access, &needed),
            Ok(None) => Ok(()),
            Err(rejection) => Err(rs.challenge(rejection, None)),
        }
    }
}

/// The JSON-RPC message(s) of an MCP request body, parsed once for every check that reads
/// them (the protocol version's `initialize` exception, the tool scopes).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Messages(Result<serde_json::Value, ()>);

impl Messages {
    /// Parse a body (not JSON: every check that needs it fails closed).
    pub fn parse(body: &[u8]) -> Self {
        Self(serde_json::from_slice(body).map_err(drop))
    }

    /// Is this a single JSON-RPC `initialize` request?
    pub fn is_initialize(&self) -> bool {
        self.0
            .as_ref()
            .is_ok_and(|v| v.get("method").and_then(|m| m.as_str()) == Some("initialize"))
    }
}

/// Who created an MCP session.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Owner {
    /// `sub` of the token that created it.
    pub subject: String,
    /// `client_id` of that token.
    pub client_id: String,
}

impl From<&Access> for Owner {
    fn from(a: &Access) -> Self {
        Self {
            subject: a.subject.clone(),
            client_id: a.client_id.clone(),
        }
    }
}

/// MCP sessions bound to the identity that created them, with no table: the session id handed
/// to the client is the MCP server's own id, a `.`, and an HMAC-SHA256 (under a key only this
/// guard knows) of that id and the owner's `sub` and `client_id`. A binding can therefore
/// neither be evicted nor forged: a session keeps its owner for as long as it lives, however
/// many sessions follow, and nobody else can make an id that passes for theirs. A session id is
/// never a credential: every request is authenticated, and a session used by anyone but its
/// owner does not exist for them (404). The key is drawn once; a restart invalidates every
/// id, which a client handles like an expired session (404, then a new `initialize`).
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Sessions {
    key: [u8; 32],
}

impl std::fmt::Debug for Sessions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Sessions { key: <redacted> }")
    }
}

/// Longest `Mcp-Session-Id` a client may present (the MCP server's id plus 44 bytes).
pub const SESSION_ID_LEN_MAX: usize = 256;

impl Sessions {
    /// A guard with a fresh key from `entropy`.
    pub fn new(entropy: &mut impl crate::entropy::Entropy) -> Self {
        let mut key = [0u8; 32];
        entropy.fill(&mut key);
        Self { key }
    }

    /// HMAC-SHA256 (aws-lc-rs) over the length-prefixed subject, client id and inner id.
    fn tag(&self, inner: &str, access: &Access) -> [u8; 32] {
        use aws_lc_rs::hmac;
        let key = hmac::Key::new(hmac::HMAC_SHA256, &self.key);
        let mut context = hmac::Context::with_key(&key);
        for field in [access.subject.as_str(), access.client_id.as_str(), inner] {
            context.update(&(field.len() as u64).to_be_bytes());
            context.update(field.as_bytes());
        }
        let mut tag = [0u8; 32];
        tag.copy_from_slice(context.sign().as_ref());
        tag
    }

    /// The MCP server created session `inner` for `access`: the id to hand to the client
    /// instead (visible ASCII, SEC-11, when `inner` is).
    // spec: SEC-6, SEC-11
    pub fn created(&self, inner: &str, access: &Access) -> String {
        use base64::Engine as _;
        let tag = self.tag(inner, access);
        format!(
            "{inner}.{}",
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(tag)
        )
    }

    /// May `access` use the session id `presented`? `Ok`: the MCP server's own id, to forward
    /// instead. Anything else (another owner's session, an id this guard never handed out, an
    /// oversized one) is answered 404, as a session that does not exist.
    // spec: SEC-2, SEC-3, SEC-6
    pub fn check(&self, presented: &str, access: &Access) -> Result<String, HttpResponse> {
        use base64::Engine as _;
        use subtle::ConstantTimeEq as _;
        let not_found = session_not_found;
        if presented.len() > SESSION_ID_LEN_MAX {
            return Err(not_found());
        }
        let Some((inner, tag)) = presented.rsplit_once('.') else {
            return Err(not_found());
        };
        let Ok(tag) = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(tag) else {
            return Err(not_found());
        };
        let expected = self.tag(inner, access);
        if bool::from(expected.as_slice().ct_eq(tag.as_slice())) {
            Ok(inner.to_owned())
        } else {
            Err(not_found())
        }
    }
}

/// The `MCP-Protocol-Version` header values this endpoint accepts: the one revision it serves.
pub const SUPPORTED_PROTOCOL_VERSIONS: &[&str] = &[crate::MCP_PROTOCOL_VERSION];

/// Check the `MCP-Protocol-Version` header of an MCP request that passed authentication (spec
/// A-13: an unauthenticated request gets its 401 first, so the layer calls this only after
/// [`ResourceServer::authenticate`] succeeded). No header: accepted, the MCP server assumes an
/// older revision (TRN-3). An `initialize` request: accepted, its body negotiates the version.
/// Otherwise exactly one header whose value is in [`SUPPORTED_PROTOCOL_VERSIONS`], else 400
/// with a JSON-RPC error naming the supported versions.
// spec: TRN-3, TRN-4
pub fn protocol_version(values: &[&[u8]], body: &[u8]) -> Result<(), HttpResponse> {
    if values.is_empty() || Messages::parse(body).is_initialize() {
        return Ok(());
    }
    if let [value] = values
        && SUPPORTED_PROTOCOL_VERSIONS
            .iter()
            .any(|v| v.as_bytes() == *value)
    {
        return Ok(());
    }
    Err(version_refused())
}

/// The answer to an unsupported `MCP-Protocol-Version`: 400 with a JSON-RPC error naming the
/// supported versions.
// spec: TRN-4
pub fn version_refused() -> HttpResponse {
    with_cors(HttpResponse::json(
        400,
        &serde_json::json!({
            "jsonrpc": "2.0",
            "id": null,
            "error": {
                "code": -32600,
                "message": "unsupported MCP-Protocol-Version",
                "data": {"supported": SUPPORTED_PROTOCOL_VERSIONS}
            }
        }),
    ))
}

/// The answer to a session id the caller may not use (another owner's, or one never handed
/// out): 404, as a session that does not exist.
// spec: SEC-2, SEC-3, SEC-6
pub fn session_not_found() -> HttpResponse {
    with_cors(
        HttpResponse::new(404)
            .header("content-type", "text/plain")
            .with_body("session not found"),
    )
}

/// May a request with this `Origin` reach the MCP endpoint (a defence against DNS rebinding)?
/// Yes without an `Origin` (not a browser), for a loopback origin (`http` or `https`, any
/// port: a local tool such as the MCP Inspector), and for an origin in `allowed` (compared
/// exactly, e.g. `https://app.example`). Anything else, `null` and unparsable values
/// included, gets the 403 of [`origin_refused`].
// spec: SEC-8
pub fn origin_allowed(values: &[&[u8]], allowed: &[String]) -> bool {
    let [value] = values else {
        return values.is_empty();
    };
    let Ok(origin) = std::str::from_utf8(value) else {
        return false;
    };
    if allowed.iter().any(|a| a == origin) {
        return true;
    }
    crate::uri::parse_uri(origin).is_ok_and(|p| {
        (p.scheme.eq_ignore_ascii_case("http") || p.scheme.eq_ignore_ascii_case("https"))
            && p.path.is_empty()
            && p.query.is_none()
            && p.fragment.is_none()
            && crate::uri::is_loopback_host(p.host)
    })
}

/// The answer to a request whose `Origin` is not allowed: 403, before authentication. Not an
/// OAuth matter (no token was looked at), so no OAuth `error` code: a JSON-RPC error, as MCP
/// servers answer transport-level refusals.
// spec: SEC-8
pub fn origin_refused() -> HttpResponse {
    HttpResponse::json(
        403,
        &serde_json::json!({
            "jsonrpc": "2.0",
            "id": null,
            "error": {"code": -32000, "message": "Origin not allowed"}
        }),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::harness::Harness;
    use crate::time::UnixTime;

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
        Sessions::new(&mut crate::entropy::Sequential(9))
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
            Sessions::new(&mut crate::entropy::Sequential(10))
                .check(&id, &access("alice"))
                .is_err()
        );
    }

    // spec: ERR-2
    #[test]
    fn tools_call_needs_the_tool_scopes() {
        let h = Harness::new();
        let scopes =
            ToolScopes([("admin".to_owned(), ScopeSet::from_tokens(["mcp:admin"]))].into());
        let call = br#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"admin"}}"#;
        let c = scopes
            .check(&h.resource_server, &access("a"), call)
            .unwrap_err();
        assert_eq!(c.status, 403);
        assert!(c.www_authenticate.contains("scope=\"mcp:admin\""));
        let batch = br#"[{"jsonrpc":"2.0","id":1,"method":"tools/list"},{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"admin"}}]"#;
        assert!(
            scopes
                .check(&h.resource_server, &access("a"), batch)
                .is_err()
        );
        let other = br#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo"}}"#;
        assert!(
            scopes
                .check(&h.resource_server, &access("a"), other)
                .is_ok()
        );
    }

    // spec: PRM-1, PRM-5, PRM-10
    #[test]
    fn metadata_and_preflights_need_no_token() {
        let h = Harness::new();
        let rs = &h.resource_server;
        let prm =
            unauthenticated(rs, Method::Get, "/.well-known/oauth-protected-resource/mcp").unwrap();
        assert_eq!(
            (prm.status, prm.header_value("content-type")),
            (200, Some("application/json"))
        );
        let root =
            unauthenticated(rs, Method::Get, "/.well-known/oauth-protected-resource").unwrap();
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

    // spec: TRN-3, TRN-4
    #[test]
    fn the_protocol_version_header_is_checked_except_on_initialize() {
        let call = br#"{"jsonrpc":"2.0","id":1,"method":"tools/list"}"#;
        let init = br#"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{}}"#;
        assert!(protocol_version(&[], call).is_ok());
        assert!(protocol_version(&[b"2025-06-18"], call).is_ok());
        for bad in [&b"1999-01-01"[..], b"2025-11-25", b"", b"2025-06-18 "] {
            let answer = protocol_version(&[bad], call).unwrap_err();
            assert_eq!(answer.status, 400, "{bad:?}");
        }
        assert_eq!(
            protocol_version(&[b"2025-06-18", b"2025-06-18"], call)
                .unwrap_err()
                .status,
            400
        );
        assert!(protocol_version(&[b"2026-07-28"], init).is_ok());
        assert_eq!(protocol_version(&[b"x"], b"").unwrap_err().status, 400);
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
        let rejection = crate::Rejection::TooLarge;
        assert_eq!(big.status, rejection.code().status());
        assert_eq!(body["error"], rejection.code().as_str());
    }

    // spec: ERR-3, RS-1, SEC-12
    #[test]
    fn a_body_the_scope_check_cannot_read_is_refused_not_waved_through() {
        let h = Harness::new();
        let scopes =
            ToolScopes([("admin".to_owned(), ScopeSet::from_tokens(["mcp:admin"]))].into());
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
                .check(&h.resource_server, &a, unreadable)
                .expect_err(&String::from_utf8_lossy(unreadable));
            assert_eq!(refused.status, 400, "{unreadable:?}");
            assert!(refused.www_authenticate.contains("invalid_request"));
        }
        let list = br#"{"jsonrpc":"2.0","id":1,"method":"tools/list"}"#;
        assert!(scopes.check(&h.resource_server, &a, list).is_ok());
    }

    fn token(h: &Harness, edit: impl FnOnce(&mut crate::jwt::AccessClaims)) -> String {
        let now = h.now.as_secs();
        let mut claims = crate::jwt::AccessClaims {
            iss: crate::harness::ISSUER.into(),
            sub: "alice".into(),
            aud: crate::jwt::Audience::One(crate::harness::RESOURCE.into()),
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
            let mut rs = h.resource_server.clone();
            let cached = rs.authenticate_cached(h.now, [bare.as_bytes()]);
            assert_eq!(cached.map_err(|c| c.status), Err(403));
        }
    }

    // spec: JWT-15
    #[test]
    fn a_token_issued_in_the_future_beyond_the_leeway_is_refused() {
        let mut h = Harness::new();
        let leeway = h.resource_server.config().validation.leeway_secs;
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
}
