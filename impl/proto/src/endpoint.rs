//! [`McpGuard`]: the whole HTTP pipeline of a protected MCP endpoint, as one sans-IO value.
//!
//! Every request to the MCP server goes through the same decisions, in this order, and every
//! driver (the tower layer, the in-memory harness, the model checker, the fuzzer) makes them by
//! calling this type, never by repeating them:
//!
//! 1. Protected Resource Metadata and CORS preflights are answered without a token
//!    ([`guard::unauthenticated`]: [PRM-1](crate::requirements#PRM-1), [PRM-4](crate::requirements#PRM-4), [PRM-5](crate::requirements#PRM-5), [PRM-10](crate::requirements#PRM-10)).
//! 2. A foreign `Origin` gets 403 before anything else ([`guard::origin_allowed`]: [SEC-8](crate::requirements#SEC-8)).
//! 3. The bearer token is authenticated through the verified-token cache, refetching the
//!    issuer's keys once when a `kid` is unknown ([`Verdict::FetchKeys`]) and asking the
//!    authorization server when introspection is configured ([`Verdict::Introspect`]): RS-*,
//!    ERR-*, [RT-2](crate::requirements#RT-2).
//! 4. Only then is the body read, at most [`McpGuard::BODY_LIMIT`] bytes ([SEC-12](crate::requirements#SEC-12)).
//! 5. The `MCP-Protocol-Version` is checked, after authentication ([TRN-3](crate::requirements#TRN-3), [TRN-4](crate::requirements#TRN-4)): exactly the
//!    configured revisions ([`RsConfig::revisions`](crate::resource::RsConfig::revisions)). A request of a stateless revision
//!    (2026-07-28, [`Revision::stateless`](crate::Revision::stateless)) must name its method in `Mcp-Method` ([`guard::method_header`]) and
//!    has no session: it stands on its token alone ([TRN-9](crate::requirements#TRN-9), [SEC-18](crate::requirements#SEC-18)). A server that serves
//!    only stateless revisions refuses `initialize` (no session is ever opened for it).
//! 6. `tools/call` needs its tool's scopes (403 `insufficient_scope`: [ERR-2](crate::requirements#ERR-2)).
//! 7. A presented `Mcp-Session-Id` must belong to the caller (404 otherwise: [SEC-2](crate::requirements#SEC-2), [SEC-3](crate::requirements#SEC-3),
//!    [SEC-6](crate::requirements#SEC-6)); the MCP server receives its own id. Sessions exist only in the `initialize`-based
//!    revisions: a stateless request's session id is dropped, never forwarded, and never
//!    stands in for its token ([SEC-18](crate::requirements#SEC-18)).
//! 8. The request is forwarded with the validated [`Access`]; a session the MCP server creates
//!    is handed out bound to its creator ([`McpGuard::handle_response`]).
//!
//! A driver's loop, with `lock` the guard's mutex:
//!
//! ```text
//! loop {
//!     match lock().handle_request(now(), &head) {
//!         Respond(response) => return response,
//!         FetchKeys(_) => { single-flight: send key_request()s, handle_key_response() } // then loop
//!         Introspect(call) => verdict = lock().handle_introspection(now(), call, answer)
//!         ReadBody(admitted) => {
//!             body = read at most BODY_LIMIT bytes (else body_too_large / body_unreadable)
//!             match lock().handle_body(admitted, &body) {
//!                 Err(response) => return response,
//!                 Ok(forward) => { answer = inner(request, forward.access, forward.session);
//!                                  lock().handle_response(&forward, created session id) }
//!             }
//!         }
//!     }
//! }
//! ```

use crate::guard::{self, Sessions, ToolScopes, VersionHeader};
use crate::http::{HttpRequest, HttpResponse, Method};
use crate::jwt::{Access, KeySet};
use crate::metadata::{ASM_SUFFIX, AuthorizationServerMetadata, DOCUMENT_LEN_MAX, OIDC_SUFFIX};
use crate::resource::{Authenticated, Introspect, ResourceServer};
use crate::time::UnixTime;
use crate::uri::{HttpPolicy, well_known_append, well_known_insert};

/// Largest JWK Set document the guard reads (256 KiB: room for many RSA keys).
pub const JWKS_LEN_MAX: usize = 256 * 1024;

/// The head of an HTTP request, as the guard reads it. Drivers implement it for their request
/// type (`http::request::Parts` in the tower layer); the core implements it for
/// [`HttpRequest`], whose `url` is then the path.
pub trait RequestHead {
    /// The request method.
    fn method(&self) -> Method;
    /// The path of the request target (no query).
    fn path(&self) -> &str;
    /// Every value of the header `name` (lowercase), in order.
    fn header_values(&self, name: &'static str) -> impl Iterator<Item = &[u8]>;
}

impl RequestHead for HttpRequest {
    fn method(&self) -> Method {
        self.method
    }

    fn path(&self) -> &str {
        let url = self.url.as_str();
        url.find('?').map_or(url, |i| &url[..i])
    }

    fn header_values(&self, name: &'static str) -> impl Iterator<Item = &[u8]> {
        Self::header_values(self, name)
    }
}

/// What to do with a request, after its head.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Verdict {
    /// Answer with this; the MCP server never sees the request.
    Respond(HttpResponse),
    /// The caller is authenticated: read the body (at most [`McpGuard::BODY_LIMIT`] bytes) and
    /// hand it to [`McpGuard::handle_body`].
    ReadBody(Admitted),
    /// The token names a key the guard does not hold, and a refetch is due: fetch the keys
    /// ([`McpGuard::key_request`], [`McpGuard::handle_key_response`]), then call
    /// [`McpGuard::handle_request`] again. A fetch, successful or not, makes the next refetch
    /// wait [`RsConfig::jwks_refetch_interval_secs`](crate::resource::RsConfig), so the
    /// second call never asks again. A driver that cannot or will not fetch answers with the
    /// response carried here (the refusal for the unknown key).
    FetchKeys(HttpResponse),
    /// Send [`Introspect::request`] to the authorization server and hand its answer to
    /// [`McpGuard::handle_introspection`].
    Introspect(Introspect),
}

/// A request whose caller is authenticated, waiting for its body.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Admitted {
    access: Access,
    method: Method,
    version: VersionHeader,
    /// The first two `Mcp-Method` values (a third changes nothing: two are already refused).
    mcp_method: Vec<Vec<u8>>,
    /// The MCP server's own id of the presented session, or why it may not be used.
    session: Option<Result<String, ()>>,
}

impl Admitted {
    /// The validated token.
    pub fn access(&self) -> &Access {
        &self.access
    }
}

/// A request to hand to the MCP server.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Forward {
    /// The validated token, for the MCP server's tool handlers.
    pub access: Access,
    /// The MCP server's own id of the caller's session, to send as `Mcp-Session-Id` instead
    /// of the presented one. `None`: forward the request without any `Mcp-Session-Id` (it
    /// presented none, or it is of a stateless revision, which has no sessions): the driver
    /// removes a presented one.
    pub session: Option<String>,
}

/// What a key fetch step produced ([`McpGuard::handle_key_response`]).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum KeyFetch {
    /// The keys are installed (how many).
    Installed(usize),
    /// The authorization server's metadata named the JWK Set: send this request next.
    Next(HttpRequest),
    /// The fetch failed; the old keys stay, and the attempt counts toward the refetch limit.
    Failed(KeyFetchError),
}

/// Why a key fetch failed.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum KeyFetchError {
    /// No answer (network, TLS, timeout).
    Unreachable,
    /// An answer other than 200.
    Status(u16),
    /// A document too large, not JSON, or not the expected one.
    BadDocument,
    /// The metadata's `issuer` is not the trusted issuer (RFC 8414 §3.3).
    IssuerMismatch,
    /// The metadata has no `jwks_uri`, or one the transport policy refuses.
    NoKeys,
}

impl std::fmt::Display for KeyFetchError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Unreachable => f.write_str("the authorization server could not be reached"),
            Self::Status(status) => write!(f, "the authorization server answered {status}"),
            Self::BadDocument => f.write_str("the document is too large or not what it should be"),
            Self::IssuerMismatch => f.write_str("the metadata names another issuer"),
            Self::NoKeys => f.write_str("the metadata has no usable jwks_uri"),
        }
    }
}

impl std::error::Error for KeyFetchError {}

/// The protected MCP endpoint: the resource server (keys, verified-token cache,
/// introspection), the session bindings, the tool scopes and the allowed origins. A plain value
/// (`Clone + Eq + Hash`), so the model checker holds it like the drivers do.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct McpGuard {
    rs: ResourceServer,
    sessions: Sessions,
    tool_scopes: ToolScopes,
    allowed_origins: Vec<String>,
    /// The JWK Set's URL: configured, or learned from the issuer's metadata.
    jwks_uri: Option<String>,
}

impl McpGuard {
    /// A guard for `rs`, with no tool scopes and only loopback origins; `sessions` holds the
    /// key that binds MCP sessions to their creators ([`Sessions::new`]).
    pub fn new(rs: ResourceServer, sessions: Sessions) -> Self {
        Self {
            rs,
            sessions,
            tool_scopes: ToolScopes::default(),
            allowed_origins: Vec::new(),
            jwks_uri: None,
        }
    }

    /// `tools/call` of each named tool also needs these scopes.
    #[must_use]
    pub fn with_tool_scopes(mut self, tool_scopes: ToolScopes) -> Self {
        self.tool_scopes = tool_scopes;
        self
    }

    /// Also accept browser requests from these exact origins (e.g. `https://app.example`);
    /// requests without `Origin` and from loopback origins are always accepted.
    #[must_use]
    pub fn with_allowed_origins(mut self, origins: impl IntoIterator<Item = String>) -> Self {
        self.allowed_origins.extend(origins);
        self
    }

    /// Fetch keys from this JWK Set URL instead of the one the issuer's metadata names.
    #[must_use]
    pub fn with_jwks_uri(mut self, jwks_uri: impl Into<String>) -> Self {
        self.jwks_uri = Some(jwks_uri.into());
        self
    }

    /// The resource server.
    pub fn resource_server(&self) -> &ResourceServer {
        &self.rs
    }

    /// The resource server, to change its keys or configuration directly.
    pub fn resource_server_mut(&mut self) -> &mut ResourceServer {
        &mut self.rs
    }

    /// The session bindings.
    pub fn sessions(&self) -> &Sessions {
        &self.sessions
    }

    /// The transport rule for the guard's own requests (keys, metadata, introspection): plain
    /// `http` only to loopback, and only when the trusted issuer is itself such a URL (it was
    /// then accepted under that leniency, [PF-8](crate::requirements#PF-8)); else `https` with verification.
    // spec: GEN-8, PF-8
    pub fn fetch_policy(&self) -> HttpPolicy {
        if self.rs.config().issuer.as_str().starts_with("http:") {
            HttpPolicy::AllowLoopbackHttp
        } else {
            HttpPolicy::HttpsOnly
        }
    }

    /// Largest body [`McpGuard::handle_body`] accepts (1 MiB).
    pub const BODY_LIMIT: usize = guard::BODY_LEN_MAX;

    /// Steps 1–3 of the pipeline (module docs) for a request's head.
    pub fn handle_request(&mut self, now: UnixTime, head: &impl RequestHead) -> Verdict {
        let method = head.method();
        if let Some(answer) = guard::unauthenticated(&self.rs, method, head.path()) {
            return Verdict::Respond(answer);
        }
        if !self.origin_allowed(head) {
            return Verdict::Respond(guard::origin_refused());
        }
        match self
            .rs
            .authenticate_active(now, head.header_values("authorization"))
        {
            Authenticated::Done(Ok(access)) => Verdict::ReadBody(self.admit(head, access)),
            Authenticated::Done(Err(challenge)) if self.rs.should_refetch_keys(now, &challenge) => {
                Verdict::FetchKeys(guard::challenge_response(&challenge))
            }
            Authenticated::Done(Err(challenge)) => {
                Verdict::Respond(guard::challenge_response(&challenge))
            }
            Authenticated::Introspect(call) => Verdict::Introspect(call),
        }
    }

    /// The authorization server's answer to a [`Verdict::Introspect`] (`None`: it could not
    /// be sent or read; the guard fails closed with 503). `head` is the same request's head.
    pub fn handle_introspection(
        &mut self,
        now: UnixTime,
        head: &impl RequestHead,
        call: Introspect,
        response: Option<&HttpResponse>,
    ) -> Verdict {
        match self.rs.introspected(now, call, response) {
            Ok(access) => Verdict::ReadBody(self.admit(head, access)),
            Err(challenge) => Verdict::Respond(guard::challenge_response(&challenge)),
        }
    }

    fn origin_allowed(&self, head: &impl RequestHead) -> bool {
        let mut values = head.header_values("origin");
        match (values.next(), values.next()) {
            (None, _) => true,
            (Some(one), None) => guard::origin_allowed(&[one], &self.allowed_origins),
            (Some(_), Some(_)) => false,
        }
    }

    /// What the head says about the version and the session, kept for after the body.
    fn admit(&self, head: &impl RequestHead, access: Access) -> Admitted {
        let version = guard::version_header(
            head.header_values("mcp-protocol-version"),
            &self.rs.config().revisions,
        );
        let session = head.header_values("mcp-session-id").next().map(|value| {
            std::str::from_utf8(value)
                .map_err(drop)
                .and_then(|presented| self.sessions.check(presented, &access).map_err(drop))
        });
        Admitted {
            access,
            method: head.method(),
            version,
            mcp_method: head
                .header_values("mcp-method")
                .take(2)
                .map(<[u8]>::to_vec)
                .collect(),
            session,
        }
    }

    /// Steps 5–7 of the pipeline (module docs) for the body of an [`Admitted`] request:
    /// [`Forward`] it, or answer with the refusal.
    // spec: TRN-3, TRN-4, TRN-9, ERR-2, SEC-2, SEC-3, SEC-6, SEC-18
    pub fn handle_body(&self, admitted: Admitted, body: &[u8]) -> Result<Forward, HttpResponse> {
        // Parsed once, and only if a check reads it.
        let needs_messages =
            admitted.version == VersionHeader::UnlessInitialize || admitted.method == Method::Post;
        let messages = needs_messages.then(|| guard::Messages::parse(body));
        let messages = messages.as_ref();
        let revisions = &self.rs.config().revisions;
        let initialize = messages.is_some_and(guard::Messages::is_initialize);
        if admitted.version == VersionHeader::UnlessInitialize && !initialize {
            return Err(guard::version_refused(revisions));
        }
        // Sessions only for the initialize-based revisions: a server that serves none of them
        // refuses the handshake itself, before the MCP server could open a session for it.
        if initialize && revisions.iter().all(|r| r.stateless()) {
            return Err(guard::version_refused(revisions));
        }
        let stateless =
            matches!(admitted.version, VersionHeader::Accepted(Some(r)) if r.stateless());
        if stateless
            && admitted.method == Method::Post
            && let Some(messages) = messages
        {
            let values: Vec<&[u8]> = admitted.mcp_method.iter().map(Vec::as_slice).collect();
            guard::method_header(&values, messages)?;
        }
        if admitted.method == Method::Post
            && let Some(messages) = messages
            && let Err(challenge) =
                self.tool_scopes
                    .check_messages(&self.rs, &admitted.access, messages)
        {
            return Err(guard::challenge_response(&challenge));
        }
        // A stateless revision has no sessions: whatever id it presents is neither a
        // credential nor forwarded (the token alone decided).
        let session = match admitted.session {
            _ if stateless => None,
            None => None,
            Some(Ok(inner)) => Some(inner),
            Some(Err(())) => return Err(guard::session_not_found()),
        };
        Ok(Forward {
            access: admitted.access,
            session,
        })
    }

    /// A body longer than [`McpGuard::BODY_LIMIT`]: 400 `invalid_request` ([ERR-8](crate::requirements#ERR-8), [SEC-12](crate::requirements#SEC-12)).
    pub fn body_too_large(&self) -> HttpResponse {
        guard::body_too_large()
    }

    /// A body that could not be read (the connection failed mid-way): 400.
    pub fn body_unreadable(&self) -> HttpResponse {
        guard::body_unreadable()
    }

    /// Step 8: the MCP server answered a forwarded request. If it created a session
    /// (`created`: its `Mcp-Session-Id`), `Ok(Some(id))` is the id to hand to the client
    /// instead, bound to the caller; an id that cannot be bound (not visible ASCII) is not
    /// handed out: `Err` is the answer to send instead (500: the MCP server misbehaved).
    // spec: SEC-6, SEC-11
    pub fn handle_response(
        &self,
        forward: &Forward,
        created: Option<&[u8]>,
    ) -> Result<Option<String>, HttpResponse> {
        let Some(created) = created else {
            return Ok(None);
        };
        match std::str::from_utf8(created) {
            Ok(inner) if inner.bytes().all(|b| (0x21..=0x7e).contains(&b)) => {
                Ok(Some(self.sessions.created(inner, &forward.access)))
            }
            _ => Err(guard::with_cors(HttpResponse::new(500))),
        }
    }

    /// The next request of a key fetch: the JWK Set if its URL is known, else the issuer's
    /// RFC 8414 metadata (which names it).
    pub fn key_request(&self) -> HttpRequest {
        let url = match &self.jwks_uri {
            Some(jwks_uri) => jwks_uri.clone(),
            None => metadata_urls(self.rs.config().issuer.as_str())[0].clone(),
        };
        HttpRequest::new(Method::Get, url).header("accept", "application/json")
    }

    /// The answer to a key fetch request (`None`: none came). The JWK Set installs the keys
    /// (and empties the verified-token cache); the metadata leads to the JWK Set (or to the
    /// OpenID Connect discovery document if the RFC 8414 one is missing). Every failure
    /// counts toward the refetch limit, and the old keys stay.
    // spec: RS-8, RS-9, DISC-7, GEN-8
    pub fn handle_key_response(
        &mut self,
        now: UnixTime,
        request: &HttpRequest,
        response: Option<&HttpResponse>,
    ) -> KeyFetch {
        let outcome = self.key_step(now, request, response);
        if let KeyFetch::Failed(_) = outcome {
            self.rs.keys_fetch_failed(now);
        }
        outcome
    }

    fn key_step(
        &mut self,
        now: UnixTime,
        request: &HttpRequest,
        response: Option<&HttpResponse>,
    ) -> KeyFetch {
        let Some(response) = response else {
            return KeyFetch::Failed(KeyFetchError::Unreachable);
        };
        let issuer = self.rs.config().issuer.as_str().to_owned();
        let candidates = metadata_urls(&issuer);
        let is_metadata = self.jwks_uri.as_deref() != Some(request.url.as_str())
            && candidates.contains(&request.url);
        if !is_metadata {
            if response.status != 200 {
                return KeyFetch::Failed(KeyFetchError::Status(response.status));
            }
            if response.body.len() > JWKS_LEN_MAX {
                return KeyFetch::Failed(KeyFetchError::BadDocument);
            }
            return match KeySet::from_json(&response.body) {
                Ok(keys) => {
                    let n = keys.len();
                    self.rs.set_keys(now, keys);
                    KeyFetch::Installed(n)
                }
                Err(_) => KeyFetch::Failed(KeyFetchError::BadDocument),
            };
        }
        if response.status != 200 {
            // RFC 8414 first; OpenID Connect discovery as the fallback.
            return match candidates.iter().position(|c| *c == request.url) {
                Some(i) if i + 1 < candidates.len() => KeyFetch::Next(
                    HttpRequest::new(Method::Get, candidates[i + 1].clone())
                        .header("accept", "application/json"),
                ),
                _ => KeyFetch::Failed(KeyFetchError::Status(response.status)),
            };
        }
        if response.body.len() > DOCUMENT_LEN_MAX {
            return KeyFetch::Failed(KeyFetchError::BadDocument);
        }
        let Ok(metadata) = serde_json::from_slice::<AuthorizationServerMetadata>(&response.body)
        else {
            return KeyFetch::Failed(KeyFetchError::BadDocument);
        };
        if metadata.issuer != issuer {
            return KeyFetch::Failed(KeyFetchError::IssuerMismatch);
        }
        match metadata.jwks_uri {
            Some(jwks_uri) if self.fetch_policy().permits(&jwks_uri) => {
                self.jwks_uri = Some(jwks_uri.clone());
                KeyFetch::Next(
                    HttpRequest::new(Method::Get, jwks_uri).header("accept", "application/json"),
                )
            }
            _ => KeyFetch::Failed(KeyFetchError::NoKeys),
        }
    }
}

/// Where an issuer's metadata may be, in the order they are tried: RFC 8414 (path inserted),
/// then OpenID Connect discovery (path appended).
fn metadata_urls(issuer: &str) -> Vec<String> {
    [
        well_known_insert(issuer, ASM_SUFFIX),
        well_known_append(issuer, OIDC_SUFFIX),
    ]
    .into_iter()
    .flatten()
    .collect()
}
