//! The MCP endpoint's HTTP decisions, around [`ResourceServer::authenticate`]: which requests
//! are metadata, preflights or MCP calls; how a refusal is encoded; which scopes a `tools/call`
//! needs; and which identity owns an MCP session (a session id is never a credential).
//!
//! The tower layer of the `mcp-auth` crate moves bytes and calls these; it decides nothing.

use std::collections::{BTreeMap, BTreeSet};

use crate::error::Rejection;
use crate::http::{HttpResponse, Method};
use crate::jwt::Access;
use crate::resource::{Challenge, ResourceServer};
use crate::revision::Revision;
use crate::types::ScopeSet;

/// Response headers a browser-based client must be able to read (CORS).
pub const EXPOSE_HEADERS: &str = "WWW-Authenticate, Mcp-Session-Id";
/// Request headers a browser-based client may send (CORS preflight): those of every revision,
/// `Mcp-Method` and `Mcp-Name` included (2026-07-28 clients send them on every POST, spec
/// [A-12](crate::requirements#A-12)).
// spec: A-12
pub const ALLOW_HEADERS: &str = "authorization, content-type, accept, mcp-protocol-version, \
     mcp-session-id, last-event-id, mcp-method, mcp-name";
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
/// for [`Rejection::TooLarge`] and RFC 6750 §3.1 for `invalid_request` ([ERR-8](crate::requirements#ERR-8)).
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
    pub fn needed(&self, messages: &Messages) -> Result<Option<ScopeSet>, Rejection> {
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
        self.check_messages(rs, access, &Messages::parse(body))
    }

    /// [`ToolScopes::check`] for a body already parsed.
    pub fn check_messages(
        &self,
        rs: &ResourceServer,
        access: &Access,
        messages: &Messages,
    ) -> Result<(), Challenge> {
        match self.needed(messages) {
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
        self.method() == Some("initialize")
    }

    /// The `method` of a single JSON-RPC request or notification (`None` for a batch, a
    /// response, or a body that is not JSON).
    pub fn method(&self) -> Option<&str> {
        self.0
            .as_ref()
            .ok()
            .and_then(|v| v.get("method"))
            .and_then(|m| m.as_str())
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
    /// instead (visible ASCII, [SEC-11](crate::requirements#SEC-11), when `inner` is).
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

/// Check the `MCP-Protocol-Version` header of an MCP request that passed authentication (spec
/// [A-13](crate::requirements#A-13): an unauthenticated request gets its 401 first, so the layer calls this only after
/// [`ResourceServer::authenticate`] succeeded). No header: accepted, the MCP server assumes an
/// older revision ([TRN-3](crate::requirements#TRN-3)). An `initialize` request: accepted, its body negotiates the version.
/// Otherwise exactly one header naming one of the `supported` revisions, compared exactly,
/// else 400 with a JSON-RPC error naming the supported versions.
// spec: TRN-3, TRN-4
pub fn protocol_version(
    values: &[&[u8]],
    body: &[u8],
    supported: &BTreeSet<Revision>,
) -> Result<(), HttpResponse> {
    match version_header(values.iter().copied(), supported) {
        VersionHeader::Accepted(_) => Ok(()),
        VersionHeader::UnlessInitialize if Messages::parse(body).is_initialize() => Ok(()),
        VersionHeader::UnlessInitialize => Err(version_refused(supported)),
    }
}

/// What the `MCP-Protocol-Version` header values alone decide ([`protocol_version`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum VersionHeader {
    /// Absent (`None`, [TRN-3](crate::requirements#TRN-3): an older revision, served only when
    /// an `initialize`-based revision is configured), or exactly one value naming a supported
    /// revision.
    Accepted(Option<Revision>),
    /// Anything else: accepted only for an `initialize` request, which negotiates the version.
    UnlessInitialize,
}

/// The header half of [`protocol_version`], for a pipeline that reads the body later. A
/// request without the header is an older revision's ([TRN-3](crate::requirements#TRN-3)):
/// accepted when some configured revision has `initialize` and sessions; a server that serves
/// only stateless revisions ([`Revision::stateless`], where every POST carries the header)
/// refuses it like an unsupported value ([TRN-9](crate::requirements#TRN-9)).
// spec: TRN-3, TRN-4, TRN-9
pub fn version_header<'a>(
    values: impl IntoIterator<Item = &'a [u8]>,
    supported: &BTreeSet<Revision>,
) -> VersionHeader {
    let mut values = values.into_iter();
    match (values.next(), values.next()) {
        (None, _) if supported.iter().any(|r| !r.stateless()) => VersionHeader::Accepted(None),
        (None, _) => VersionHeader::UnlessInitialize,
        (Some(one), None) => match Revision::from_header(one) {
            Some(r) if supported.contains(&r) => VersionHeader::Accepted(Some(r)),
            _ => VersionHeader::UnlessInitialize,
        },
        _ => VersionHeader::UnlessInitialize,
    }
}

/// The answer to an unsupported `MCP-Protocol-Version`: 400 with the JSON-RPC error `-32022`
/// (Unsupported protocol version, as 2026-07-28 names it) whose `data.supported` lists the
/// configured revisions. Clients of every revision read it as a refusal; a 2026-07-28 client
/// that probed with `server/discover` learns from `supported` whether to retry at a version
/// both speak or to fall back to `initialize`.
// spec: TRN-4, TRN-9
pub fn version_refused(supported: &BTreeSet<Revision>) -> HttpResponse {
    let supported: Vec<&str> = supported.iter().map(|r| r.as_str()).collect();
    with_cors(HttpResponse::json(
        400,
        &serde_json::json!({
            "jsonrpc": "2.0",
            "id": null,
            "error": {
                "code": -32022,
                "message": "Unsupported protocol version",
                "data": {"supported": supported}
            }
        }),
    ))
}

/// Check the `Mcp-Method` header of a request of a stateless revision ([`Revision::stateless`]:
/// every POST names its JSON-RPC method in exactly one `Mcp-Method` header): present, one
/// value, and equal to the body's `method`, so that whatever routes or authorizes on the
/// header sees what the MCP server will run. The guard's own decisions read the body; this
/// keeps the header from saying otherwise in front of any MCP server, not only one that checks
/// it (rmcp also does, with `Mcp-Name` and `Mcp-Param-*`, which are the MCP server's: their
/// values may be Base64-encoded and depend on the tool's schema). `Err`: 400 with the JSON-RPC
/// error `-32020` (header mismatch).
// spec: TRN-9
pub fn method_header(values: &[&[u8]], messages: &Messages) -> Result<(), HttpResponse> {
    let reason = match (values, messages.method()) {
        (_, None) => "a request of this revision is one JSON-RPC message with a method",
        ([], Some(_)) => "missing required Mcp-Method header",
        ([one], Some(method)) if *one == method.as_bytes() => return Ok(()),
        ([_], Some(_)) => "Mcp-Method header does not match the body's method",
        (_, Some(_)) => "more than one Mcp-Method header",
    };
    Err(header_mismatch(reason))
}

/// 400 with the JSON-RPC error `-32020` (a request header that disagrees with its body).
pub fn header_mismatch(reason: &str) -> HttpResponse {
    with_cors(HttpResponse::json(
        400,
        &serde_json::json!({
            "jsonrpc": "2.0",
            "id": null,
            "error": {"code": -32020, "message": reason}
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
