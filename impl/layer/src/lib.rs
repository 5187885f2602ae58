//! # mcp-auth-layer: protect your MCP server with OAuth 2.1
//!
//! [`AuthLayer`] is a [tower](https://docs.rs/tower) layer that turns any MCP endpoint (rmcp's
//! Streamable HTTP service, an axum router, any tower service) into the OAuth 2.1 resource
//! server that MCP authorization (revisions 2025-06-18, 2025-11-25 and 2026-07-28, chosen with
//! [`Builder::revisions`]) asks for: it serves Protected Resource
//! Metadata (RFC 9728), answers every unauthenticated or badly authenticated request with the
//! exact `WWW-Authenticate` challenge, accepts only JWT access tokens issued for this server
//! (RFC 8707 audience, RFC 9068 validation), refuses tokens meant for anyone else, binds MCP
//! sessions to their creator, and hands the validated [`Access`] to your handlers.
//!
//! It decides nothing itself: every decision is made by the sans-IO core's [`McpGuard`]
//! ([`mcp_auth_proto::endpoint`]), the same value the project's stateright model and fuzzers
//! exercise. The layer reads the clock, draws the session key from the OS, buffers the body,
//! and fetches the issuer's metadata and keys (and introspection answers) over rustls.
//!
//! ## rmcp
//!
//! ```no_run
//! use std::sync::Arc;
//! use mcp_auth_layer::AuthLayer;
//! use rmcp::transport::streamable_http_server::{
//!     StreamableHttpServerConfig, StreamableHttpService, session::local::LocalSessionManager,
//! };
//! use tower::Layer;
//!
//! #[derive(Clone)]
//! struct Hello;
//! impl rmcp::ServerHandler for Hello {}
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let auth = AuthLayer::builder("https://mcp.example.com/mcp", "https://auth.example.com")
//!     .scopes_supported(["mcp:tools"])
//!     .build()?;
//! let mcp = StreamableHttpService::new(
//!     || Ok(Hello),
//!     Arc::new(LocalSessionManager::default()),
//!     StreamableHttpServerConfig::default(),
//! );
//! let service = auth.layer(mcp); // serve it with hyper (or nest it in axum, below)
//! # let _ = service; Ok(()) }
//! ```
//!
//! ## axum
//!
//! ```no_run
//! use axum::{Extension, Router, routing::post};
//! use mcp_auth_layer::{Access, AuthLayer};
//!
//! async fn mcp(Extension(access): Extension<Access>) -> String {
//!     format!("hello {} (client {})", access.subject, access.client_id)
//! }
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let auth = AuthLayer::builder("https://mcp.example.com/mcp", "https://auth.example.com")
//!     .tool_scopes("admin_info", ["mcp:admin"])
//!     .build()?;
//! let app = Router::new().route("/mcp", post(mcp)).layer(auth);
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:8080").await?;
//! axum::serve(listener, app).await?;
//! # Ok(()) }
//! ```
//!
//! ## MCP revisions
//!
//! [`Builder::revisions`] names the revisions the endpoint serves (default 2025-06-18). The
//! layer then accepts exactly those `MCP-Protocol-Version` values (400 with the JSON-RPC error
//! `-32022` and `data.supported` otherwise, after authentication). A 2026-07-28 request is
//! stateless: the layer requires its `Mcp-Method` header to equal the body's method, never
//! forwards an `Mcp-Session-Id` with it, and (when only stateless revisions are served) refuses
//! `initialize`. The token is checked on every request of every revision; a session id is
//! never a credential. What stays with the MCP server: negotiating the version (`initialize`,
//! `server/discover`), the per-request `_meta`, and `Mcp-Name` / `Mcp-Param-*` (rmcp 3.11
//! checks them). Give the MCP server the same list (rmcp:
//! `ServerHandler::supported_protocol_versions`); rmcp's default session mode serves
//! `initialize`-based sessions and stateless 2026-07-28 requests from one endpoint.
//!
//! The keys are found from the issuer's RFC 8414 metadata (OpenID Connect discovery as the
//! fallback) on the first token, or at start-up with [`AuthLayer::fetch_keys`], and refetched
//! when a token names an unknown key (rate-limited by the core).

#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod fetch;

use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll};
use std::time::{SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use http_body_util::{BodyExt, Full, LengthLimitError, Limited};
use mcp_auth_proto::endpoint::{KeyFetch, KeyFetchError, RequestHead, Verdict};
use mcp_auth_proto::guard::{CORS_HEADERS, Sessions, ToolScopes};
use mcp_auth_proto::http::{HttpResponse, Method};
use mcp_auth_proto::uri::{HttpPolicy, UriError};
use tower::{Layer, Service, ServiceExt};

pub use fetch::{Http, TransportError};
pub use mcp_auth_proto::endpoint::McpGuard;
pub use mcp_auth_proto::introspection::IntrospectionConfig;
pub use mcp_auth_proto::jwt::Access;
pub use mcp_auth_proto::resource::{Challenge, ResourceServer, RsConfig};
pub use mcp_auth_proto::types::ScopeSet;
pub use mcp_auth_proto::uri::{Issuer, ResourceUri};
pub use mcp_auth_proto::{Entropy, Revision, UnixTime};

/// The wall clock, in whole seconds since the epoch (the core's `now`).
pub fn now() -> UnixTime {
    let since_epoch = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    UnixTime::from_secs(since_epoch.as_secs())
}

/// The operating system's random source (the core's [`Entropy`]).
#[derive(Clone, Copy, Debug, Default)]
pub struct OsEntropy;

impl Entropy for OsEntropy {
    fn fill(&mut self, dest: &mut [u8]) {
        getrandom::fill(dest).expect("the OS random source is available");
    }
}

/// Why [`Builder::build`] refused a configuration.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum BuildError {
    /// The resource is not an absolute `https` URI without fragment (or loopback `http` with
    /// [`Builder::allow_loopback_http`]).
    Resource(UriError),
    /// The issuer is not an `https` URL without query or fragment (or loopback `http` with
    /// [`Builder::allow_loopback_http`]).
    Issuer(UriError),
    /// [`Builder::revisions`] was given no revision: the server would serve nothing.
    NoRevision,
}

impl std::fmt::Display for BuildError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Resource(e) => write!(f, "resource: {e}"),
            Self::Issuer(e) => write!(f, "issuer: {e}"),
            Self::NoRevision => f.write_str("revisions: none given"),
        }
    }
}

impl std::error::Error for BuildError {}

/// Configures an [`AuthLayer`] ([`AuthLayer::builder`]).
#[derive(Debug)]
#[must_use]
pub struct Builder {
    resource: String,
    issuer: String,
    scopes_supported: Vec<String>,
    base_scopes: Option<Vec<String>>,
    resource_name: Option<String>,
    tool_scopes: BTreeMap<String, ScopeSet>,
    origins: Vec<String>,
    roots: Option<rustls::RootCertStore>,
    jwks_uri: Option<String>,
    introspection: Option<IntrospectionConfig>,
    revisions: Option<Vec<Revision>>,
    policy: HttpPolicy,
}

impl Builder {
    /// Scopes this server understands, published in its metadata (default: `mcp:tools`).
    pub fn scopes_supported<I: IntoIterator<Item = S>, S: Into<String>>(
        mut self,
        scopes: I,
    ) -> Self {
        self.scopes_supported = scopes.into_iter().map(Into::into).collect();
        self
    }

    /// Scopes every request's token must carry (default: `mcp:tools`; an empty list turns the
    /// check off, [PF-19](mcp_auth_proto::requirements#PF-19)).
    pub fn base_scopes<I: IntoIterator<Item = S>, S: Into<String>>(mut self, scopes: I) -> Self {
        self.base_scopes = Some(scopes.into_iter().map(Into::into).collect());
        self
    }

    /// The MCP revisions the endpoint serves (default: 2025-06-18 only): the
    /// `MCP-Protocol-Version` values the layer accepts, compared exactly (400 naming this list
    /// otherwise). For the stateless 2026-07-28 the layer also requires the `Mcp-Method`
    /// header to match the body and forwards no session; the token is checked on every
    /// request in every revision. Configure the MCP server behind it to the same list (with
    /// rmcp: `ServerHandler::supported_protocol_versions`).
    ///
    /// ```
    /// use mcp_auth_layer::{AuthLayer, Revision};
    ///
    /// let auth = AuthLayer::builder("https://mcp.example.com/mcp", "https://auth.example.com")
    ///     .revisions([Revision::V2025_06_18, Revision::V2025_11_25, Revision::V2026_07_28])
    ///     .build()
    ///     .unwrap();
    /// # let _ = auth;
    /// ```
    pub fn revisions(mut self, revisions: impl IntoIterator<Item = Revision>) -> Self {
        self.revisions = Some(revisions.into_iter().collect());
        self
    }

    /// A human-readable name, published in the metadata.
    pub fn resource_name(mut self, name: impl Into<String>) -> Self {
        self.resource_name = Some(name.into());
        self
    }

    /// `tools/call` of `tool` also needs these scopes (403 `insufficient_scope` otherwise).
    pub fn tool_scopes<I: IntoIterator<Item = S>, S: Into<String>>(
        mut self,
        tool: impl Into<String>,
        scopes: I,
    ) -> Self {
        let scopes = ScopeSet::from_tokens(scopes.into_iter().map(Into::into));
        self.tool_scopes.insert(tool.into(), scopes);
        self
    }

    /// Also accept browser requests from this exact origin (e.g. `https://app.example`);
    /// requests without `Origin` and from loopback origins are always accepted, others get 403.
    pub fn allow_origin(mut self, origin: impl Into<String>) -> Self {
        self.origins.push(origin.into());
        self
    }

    /// Trust exactly these roots (a private CA) for the layer's own requests, instead of
    /// Mozilla's.
    pub fn trust_roots(mut self, roots: rustls::RootCertStore) -> Self {
        self.roots = Some(roots);
        self
    }

    /// Fetch the keys from this JWK Set URL instead of the one the issuer's metadata names.
    pub fn jwks_uri(mut self, jwks_uri: impl Into<String>) -> Self {
        self.jwks_uri = Some(jwks_uri.into());
        self
    }

    /// Ask the authorization server whether a valid token is still active (RFC 7662).
    pub fn introspection(mut self, config: IntrospectionConfig) -> Self {
        self.introspection = Some(config);
        self
    }

    /// The named leniency for local development ([PF-8](mcp_auth_proto::requirements#PF-8)): accept `http` URLs for the resource
    /// and the issuer when their host is a loopback address. Off by default.
    pub fn allow_loopback_http(mut self) -> Self {
        self.policy = HttpPolicy::AllowLoopbackHttp;
        self
    }

    /// The layer, or why the configuration is refused.
    pub fn build(self) -> Result<AuthLayer, BuildError> {
        let resource =
            ResourceUri::parse(&self.resource, self.policy).map_err(BuildError::Resource)?;
        let issuer = Issuer::parse(&self.issuer, self.policy).map_err(BuildError::Issuer)?;
        let mut config = RsConfig::new(
            resource,
            issuer,
            ScopeSet::from_tokens(self.scopes_supported),
        );
        config.resource_name = self.resource_name;
        if let Some(revisions) = self.revisions {
            if revisions.is_empty() {
                return Err(BuildError::NoRevision);
            }
            config.revisions = revisions.into_iter().collect();
        }
        config.introspection = self.introspection;
        if let Some(base) = self.base_scopes {
            config.base_scopes = ScopeSet::from_tokens(base);
        }
        let mut guard = McpGuard::new(ResourceServer::new(config), Sessions::new(&mut OsEntropy))
            .with_tool_scopes(ToolScopes(self.tool_scopes))
            .with_allowed_origins(self.origins);
        if let Some(jwks_uri) = self.jwks_uri {
            guard = guard.with_jwks_uri(jwks_uri);
        }
        Ok(AuthLayer::with_roots(
            guard,
            self.roots.unwrap_or_else(fetch::mozilla_roots),
        ))
    }
}

#[derive(Debug)]
struct Shared {
    guard: Mutex<McpGuard>,
    http: Http,
    /// One key fetch at a time.
    refetch: tokio::sync::Mutex<()>,
}

impl Shared {
    fn guard(&self) -> MutexGuard<'_, McpGuard> {
        self.guard.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Fetch the keys: the issuer's metadata if the JWK Set's URL is not known yet, then the
    /// JWK Set. At most three requests (RFC 8414, OpenID discovery, JWK Set).
    async fn fetch_keys(&self) -> Result<usize, KeyFetchError> {
        let mut request = self.guard().key_request();
        for _ in 0..3 {
            let response = match self.http.send(&request).await {
                Ok(response) => Some(response),
                Err(e) => {
                    tracing::warn!(error = %e, "key fetch failed");
                    None
                }
            };
            match self
                .guard()
                .handle_key_response(now(), &request, response.as_ref())
            {
                KeyFetch::Installed(n) => {
                    tracing::info!(keys = n, uri = %request.url, "fetched JWKS");
                    return Ok(n);
                }
                KeyFetch::Next(next) => request = next,
                KeyFetch::Failed(e) => {
                    tracing::warn!(error = %e, uri = %request.url, "key fetch failed");
                    return Err(e);
                }
            }
        }
        Err(KeyFetchError::BadDocument)
    }
}

/// The layer. Cheap to clone; all clones (and the services they make) share the guard: its
/// keys, verified-token cache and session key.
#[derive(Clone, Debug)]
pub struct AuthLayer {
    shared: Arc<Shared>,
}

impl AuthLayer {
    /// Configure a layer for the MCP endpoint `resource` (its canonical URI, e.g.
    /// `https://mcp.example.com/mcp`), trusting tokens of the authorization server `issuer`.
    pub fn builder(resource: impl Into<String>, issuer: impl Into<String>) -> Builder {
        Builder {
            resource: resource.into(),
            issuer: issuer.into(),
            scopes_supported: vec![mcp_auth_proto::resource::DEFAULT_BASE_SCOPE.to_owned()],
            base_scopes: None,
            resource_name: None,
            tool_scopes: BTreeMap::new(),
            origins: Vec::new(),
            roots: None,
            jwks_uri: None,
            introspection: None,
            revisions: None,
            policy: HttpPolicy::HttpsOnly,
        }
    }

    /// A layer around a guard configured by hand (every setting of [`RsConfig`]), trusting
    /// Mozilla's roots for its own requests.
    pub fn new(guard: McpGuard) -> Self {
        Self::with_roots(guard, fetch::mozilla_roots())
    }

    /// A layer around a guard configured by hand (every setting of [`RsConfig`]), trusting
    /// exactly `roots` for its own requests.
    pub fn with_roots(guard: McpGuard, roots: rustls::RootCertStore) -> Self {
        let http = Http::with_roots(guard.fetch_policy(), roots);
        Self {
            shared: Arc::new(Shared {
                guard: Mutex::new(guard),
                http,
                refetch: tokio::sync::Mutex::new(()),
            }),
        }
    }

    /// The URL of the Protected Resource Metadata.
    pub fn metadata_url(&self) -> String {
        self.shared
            .guard()
            .resource_server()
            .metadata_url()
            .to_owned()
    }

    /// Fetch the issuer's keys now (e.g. at start-up): how many. On failure the old keys stay.
    pub async fn fetch_keys(&self) -> Result<usize, KeyFetchError> {
        let _single = self.shared.refetch.lock().await;
        self.shared.fetch_keys().await
    }

    /// Run `f` on the guard (e.g. to install keys, or to read its state in a test).
    pub fn with_guard<T>(&self, f: impl FnOnce(&mut McpGuard) -> T) -> T {
        f(&mut self.shared.guard())
    }
}

impl<S> Layer<S> for AuthLayer {
    type Service = AuthService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        AuthService {
            inner,
            shared: Arc::clone(&self.shared),
        }
    }
}

/// The service [`AuthLayer`] wraps around an MCP endpoint.
#[derive(Clone, Debug)]
pub struct AuthService<S> {
    inner: S,
    shared: Arc<Shared>,
}

/// Handed to your handlers in the request extensions, next to the validated [`Access`]:
/// checks scopes with the core's rule and gives the 403 challenge.
#[derive(Clone, Debug)]
pub struct ScopeCheck {
    shared: Arc<Shared>,
}

impl ScopeCheck {
    /// `Ok` if `access` carries every scope of `needed`; else the 403 challenge.
    pub fn require(&self, access: &Access, needed: &ScopeSet) -> Result<(), Challenge> {
        self.shared
            .guard()
            .resource_server()
            .require_scopes(access, needed)
    }
}

/// The body of an answer through the layer: the MCP server's own, or one of the guard's
/// (metadata, challenges, refusals).
#[derive(Debug)]
pub enum GuardBody<B> {
    /// The MCP server's answer.
    Inner(B),
    /// The guard's answer.
    Guard(Full<Bytes>),
}

impl<B> Body for GuardBody<B>
where
    B: Body<Data = Bytes> + Unpin,
{
    type Data = Bytes;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, B::Error>>> {
        match self.get_mut() {
            Self::Inner(body) => Pin::new(body).poll_frame(cx),
            Self::Guard(body) => Pin::new(body)
                .poll_frame(cx)
                .map(|frame| frame.map(|f| f.map_err(|never| match never {}))),
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            Self::Inner(body) => body.is_end_stream(),
            Self::Guard(body) => body.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            Self::Inner(body) => body.size_hint(),
            Self::Guard(body) => body.size_hint(),
        }
    }
}

/// Encode one of the guard's answers. Header values the core produced are always valid; one
/// that is not (a core bug) is dropped rather than turned into a 500.
pub fn encode<B>(response: HttpResponse) -> http::Response<GuardBody<B>> {
    let mut builder = http::Response::builder().status(response.status);
    for (name, value) in &response.headers {
        if let (Ok(n), Ok(v)) = (
            http::HeaderName::from_bytes(name.as_bytes()),
            http::HeaderValue::from_str(value),
        ) {
            builder = builder.header(n, v);
        }
    }
    builder
        .body(GuardBody::Guard(Full::new(Bytes::from(response.body))))
        .unwrap_or_else(|_| http::Response::new(GuardBody::Guard(Full::default())))
}

/// A request head as the core reads it.
struct Head<'a>(&'a http::request::Parts);

impl RequestHead for Head<'_> {
    fn method(&self) -> Method {
        Method::from_name(self.0.method.as_str())
    }

    fn path(&self) -> &str {
        self.0.uri.path()
    }

    fn header_values(&self, name: &'static str) -> impl Iterator<Item = &[u8]> {
        self.0
            .headers
            .get_all(name)
            .into_iter()
            .map(http::HeaderValue::as_bytes)
    }
}

type BoxError = Box<dyn std::error::Error + Send + Sync>;

impl<S, B, ResBody> Service<http::Request<B>> for AuthService<S>
where
    S: Service<http::Request<Full<Bytes>>, Response = http::Response<ResBody>>
        + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
    B: Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<BoxError>,
    ResBody: Send + 'static,
{
    type Response = http::Response<GuardBody<ResBody>>;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, S::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        // The clone that was driven to readiness serves this request.
        let clone = self.inner.clone();
        let inner = std::mem::replace(&mut self.inner, clone);
        let shared = Arc::clone(&self.shared);
        Box::pin(guarded(shared, inner, request))
    }
}

/// The core's verdict on a head whose token names an unknown key: one fetch at a time, and
/// whoever waited asks again first (the keys may be fresh now).
async fn after_refetch(shared: &Shared, head: &Head<'_>) -> Verdict {
    let _single = shared.refetch.lock().await;
    match shared.guard().handle_request(now(), head) {
        Verdict::FetchKeys(_) => {}
        other => return other,
    }
    let _ = shared.fetch_keys().await;
    shared.guard().handle_request(now(), head)
}

async fn guarded<S, B, ResBody>(
    shared: Arc<Shared>,
    inner: S,
    request: http::Request<B>,
) -> Result<http::Response<GuardBody<ResBody>>, S::Error>
where
    S: Service<http::Request<Full<Bytes>>, Response = http::Response<ResBody>>,
    B: Body,
    B::Error: Into<BoxError>,
{
    let (mut parts, body) = request.into_parts();
    let head = Head(&parts);
    let mut verdict = shared.guard().handle_request(now(), &head);
    let mut fetched = false;
    let admitted = loop {
        verdict = match verdict {
            Verdict::Respond(response) => return Ok(encode(response)),
            Verdict::ReadBody(admitted) => break admitted,
            // The core asks at most once per refetch interval; a second ask in the same
            // request gets the refusal it carries.
            Verdict::FetchKeys(refusal) if fetched => return Ok(encode(refusal)),
            Verdict::FetchKeys(_) => {
                fetched = true;
                after_refetch(&shared, &head).await
            }
            Verdict::Introspect(call) => {
                let response = match shared.http.send(&call.request).await {
                    Ok(response) => Some(response),
                    Err(e) => {
                        tracing::warn!(error = %e, "introspection failed");
                        None
                    }
                };
                shared
                    .guard()
                    .handle_introspection(now(), &head, call, response.as_ref())
            }
        };
    };
    // A request without a body (GET, DELETE) has nothing to buffer.
    let body = if body.is_end_stream() {
        Bytes::new()
    } else {
        match Limited::new(body, McpGuard::BODY_LIMIT).collect().await {
            Ok(collected) => collected.to_bytes(),
            Err(e) if e.is::<LengthLimitError>() => {
                return Ok(encode(shared.guard().body_too_large()));
            }
            Err(_) => return Ok(encode(shared.guard().body_unreadable())),
        }
    };
    let forward = match shared.guard().handle_body(admitted, &body) {
        Ok(forward) => forward,
        Err(response) => return Ok(encode(response)),
    };
    // The MCP server's own id (a prefix of a valid header value the core authenticated), or
    // none at all: a presented id never reaches it unchecked.
    parts.headers.remove("mcp-session-id");
    if let Some(value) = forward
        .session
        .as_deref()
        .and_then(|s| http::HeaderValue::from_str(s).ok())
    {
        parts.headers.insert("mcp-session-id", value);
    }
    parts.extensions.insert(forward.access.clone());
    parts.extensions.insert(ScopeCheck {
        shared: Arc::clone(&shared),
    });
    let mut response = inner
        .oneshot(http::Request::from_parts(parts, Full::new(body)))
        .await?;
    let created = response.headers_mut().remove("mcp-session-id");
    // The bound id is visible ASCII (the core checked the MCP server's id).
    match shared
        .guard()
        .handle_response(&forward, created.as_ref().map(http::HeaderValue::as_bytes))
    {
        Ok(bound) => {
            if let Some(value) = bound.and_then(|b| http::HeaderValue::from_str(&b).ok()) {
                response.headers_mut().insert("mcp-session-id", value);
            }
        }
        Err(refusal) => return Ok(encode(refusal)),
    }
    let (mut parts, body) = response.into_parts();
    for (name, value) in CORS_HEADERS {
        parts
            .headers
            .insert(*name, http::HeaderValue::from_static(value));
    }
    Ok(http::Response::from_parts(parts, GuardBody::Inner(body)))
}

#[cfg(test)]
mod tests {
    use super::*;

    // spec: TRN-4, TRN-9
    #[test]
    fn the_builder_sets_the_served_revisions() {
        let build = |revisions: Option<Vec<Revision>>| {
            let builder = AuthLayer::builder("https://mcp.example/mcp", "https://as.example");
            match revisions {
                Some(r) => builder.revisions(r),
                None => builder,
            }
            .build()
        };
        let served =
            |layer: AuthLayer| layer.with_guard(|g| g.resource_server().config().revisions.clone());
        assert_eq!(served(build(None).unwrap()), [Revision::V2025_06_18].into());
        assert_eq!(
            served(build(Some(vec![Revision::V2026_07_28, Revision::V2025_11_25])).unwrap()),
            [Revision::V2025_11_25, Revision::V2026_07_28].into()
        );
        assert!(matches!(
            build(Some(Vec::new())),
            Err(BuildError::NoRevision)
        ));
    }

    // spec: PF-8
    #[test]
    fn the_builder_is_strict_by_default() {
        assert!(matches!(
            AuthLayer::builder("http://127.0.0.1:8080/mcp", "https://as.example").build(),
            Err(BuildError::Resource(_))
        ));
        assert!(matches!(
            AuthLayer::builder("https://mcp.example/mcp", "http://127.0.0.1:9000").build(),
            Err(BuildError::Issuer(_))
        ));
        let layer = AuthLayer::builder("http://127.0.0.1:8080/mcp", "http://127.0.0.1:9000")
            .allow_loopback_http()
            .build()
            .expect("loopback http under the named switch");
        assert_eq!(
            layer.metadata_url(),
            "http://127.0.0.1:8080/.well-known/oauth-protected-resource/mcp"
        );
    }
}
