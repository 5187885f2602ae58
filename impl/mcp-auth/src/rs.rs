//! [`AuthLayer`]: a tower layer that makes any MCP endpoint an OAuth 2.1 resource server.
//!
//! In front of the inner service (here rmcp's `StreamableHttpService`, but any
//! `Service<http::Request<Full<Bytes>>>` answering [`crate::net::Body`] fits), it
//!
//! - serves Protected Resource Metadata at every path of
//!   [`ResourceServer::metadata_paths`] (path-inserted and root);
//! - answers CORS preflights, and exposes `WWW-Authenticate` and `Mcp-Session-Id` to scripts;
//! - refuses a foreign `Origin` with 403 before anything else ([`guard::origin_allowed`]:
//!   none, loopback, or [`AuthLayer::allow_origins`]);
//! - after authentication, answers an unsupported `MCP-Protocol-Version` with 400
//!   ([`guard::protocol_version`]);
//! - authenticates every other request (POST, GET and DELETE alike) with
//!   [`ResourceServer::authenticate`] and answers 401 / 403 / 400 with the exact
//!   `WWW-Authenticate` of the core's [`Challenge`];
//! - fetches the issuer's JWKS from its `jwks_uri`, caches it in the core, and refetches it
//!   when [`ResourceServer::should_refetch_keys`] says so (rate-limited by the core);
//! - with [`RsConfig::introspection`](mcp_auth_proto::resource::RsConfig::introspection),
//!   asks the AS whether a valid token is still active (RFC 7662) when the core says so
//!   ([`ResourceServer::authenticate_active`]), and hands the answer back; a revoked grant's
//!   token is refused once the core's cached answer (30 s by default) is stale, and an AS
//!   that cannot be asked gets the core's fail-closed 503;
//! - optionally requires scopes per tool on `tools/call` (403 `insufficient_scope` from
//!   [`ResourceServer::require_scopes`]);
//! - binds each MCP session to the identity (subject and client) that created it, by handing
//!   out the ids of the core's [`Sessions`] (the MCP server's id plus a MAC of the owner) and
//!   forwarding only the MCP server's own id;
//! - inserts the validated [`Access`] (and a [`ScopeCheck`]) into the request extensions,
//!   where rmcp hands them to tool handlers inside `http::request::Parts`.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use mcp_auth_proto::guard::{self, Sessions, ToolScopes};
use mcp_auth_proto::http::{HttpRequest, Method};
use mcp_auth_proto::jwt::{Access, KeySet};
use mcp_auth_proto::resource::{Authenticated, Challenge, ResourceServer};
use mcp_auth_proto::types::ScopeSet;
use mcp_auth_proto::uri::HttpPolicy;
use tower::{Layer, Service, ServiceExt};

use crate::client::Http;
use crate::net::{Body, now, to_hyper};

/// Largest MCP request body the layer buffers.
pub const RS_BODY_LIMIT: usize = guard::BODY_LEN_MAX;

type Guard<'a> = std::sync::MutexGuard<'a, ResourceServer>;

#[derive(Debug)]
struct Shared {
    rs: Mutex<ResourceServer>,
    jwks_uri: String,
    http: Http,
    refetch: tokio::sync::Mutex<()>,
    tool_scopes: ToolScopes,
    sessions: Sessions,
    allowed_origins: std::sync::RwLock<Vec<String>>,
}

impl Shared {
    fn rs(&self) -> Guard<'_> {
        self.rs
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// The layer. Cheap to clone; all clones share the key cache and session bindings.
#[derive(Clone, Debug)]
pub struct AuthLayer {
    shared: Arc<Shared>,
}

impl AuthLayer {
    /// A layer for this resource server, trusting the keys published at `jwks_uri`.
    pub fn new(rs: ResourceServer, jwks_uri: impl Into<String>) -> Self {
        Self::with_tool_scopes(rs, jwks_uri, BTreeMap::new())
    }

    /// Like [`AuthLayer::new`], and `tools/call` of each named tool needs the given scopes.
    pub fn with_tool_scopes(
        rs: ResourceServer,
        jwks_uri: impl Into<String>,
        tool_scopes: BTreeMap<String, ScopeSet>,
    ) -> Self {
        // The JWKS comes from the configured issuer: plain http only if that issuer is (it
        // was then accepted under the loopback leniency), else https with verification.
        let policy = if rs.config().issuer.as_str().starts_with("http:") {
            HttpPolicy::AllowLoopbackHttp
        } else {
            HttpPolicy::HttpsOnly
        };
        Self {
            shared: Arc::new(Shared {
                rs: Mutex::new(rs),
                jwks_uri: jwks_uri.into(),
                http: Http::new(policy),
                refetch: tokio::sync::Mutex::new(()),
                tool_scopes: ToolScopes(tool_scopes),
                sessions: Sessions::new(&mut crate::net::OsEntropy),
                allowed_origins: std::sync::RwLock::new(Vec::new()),
            }),
        }
    }

    /// Fetch the JWKS trusting exactly these roots (a private CA) instead of the Mozilla
    /// roots. Call before cloning the layer (later clones keep the earlier client).
    #[must_use]
    pub fn trust_roots(mut self, roots: rustls::RootCertStore) -> Self {
        if let Some(shared) = Arc::get_mut(&mut self.shared) {
            shared.http = Http::with_roots(shared.http.policy(), roots);
        }
        self
    }

    /// Also accept browser requests from these origins (exactly, e.g. `https://app.example`);
    /// requests without `Origin` and from loopback origins are always accepted, any other
    /// origin gets 403 ([`guard::origin_allowed`]). Applies to every clone of the layer.
    pub fn allow_origins(self, origins: impl IntoIterator<Item = String>) -> Self {
        self.shared
            .allowed_origins
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .extend(origins);
        self
    }

    /// The URL of the Protected Resource Metadata.
    pub fn metadata_url(&self) -> String {
        self.shared.rs().metadata_url().to_owned()
    }

    /// Fetch the JWKS now (e.g. at start-up). On failure the old keys stay.
    pub async fn fetch_keys(&self) -> Result<usize, String> {
        fetch_keys(&self.shared).await
    }
}

async fn fetch_keys(shared: &Shared) -> Result<usize, String> {
    let request =
        HttpRequest::new(Method::Get, shared.jwks_uri.clone()).header("accept", "application/json");
    let result = match shared.http.send(&request).await {
        Ok(response) if response.status == 200 => {
            KeySet::from_json(&response.body).map_err(|e| format!("bad JWKS: {e}"))
        }
        Ok(response) => Err(format!("JWKS answered {}", response.status)),
        Err(e) => Err(e.to_string()),
    };
    let mut rs = shared.rs();
    match result {
        Ok(keys) => {
            let n = keys.len();
            rs.set_keys(now(), keys);
            tracing::info!(keys = n, uri = %shared.jwks_uri, "fetched JWKS");
            Ok(n)
        }
        Err(e) => {
            // The old keys and verified tokens stay; the attempt counts toward the core's
            // refetch rate limit.
            rs.keys_fetch_failed(now());
            tracing::warn!(error = %e, "JWKS fetch failed");
            Err(e)
        }
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

/// Handed to tool handlers (in the request extensions, next to [`Access`]): checks scopes
/// against the validated token with the core's rule and challenge.
#[derive(Clone, Debug)]
pub struct ScopeCheck {
    shared: Arc<Shared>,
}

impl ScopeCheck {
    /// `Ok` if `access` carries every scope of `needed`; else the 403 challenge.
    pub fn require(&self, access: &Access, needed: &ScopeSet) -> Result<(), Challenge> {
        self.shared.rs().require_scopes(access, needed)
    }
}

impl<S, B> Service<http::Request<B>> for AuthService<S>
where
    S: Service<http::Request<Full<Bytes>>, Response = http::Response<Body>, Error = Infallible>
        + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
    B: hyper::body::Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    type Response = http::Response<Body>;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Infallible>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        let clone = self.inner.clone();
        let inner = std::mem::replace(&mut self.inner, clone);
        let shared = Arc::clone(&self.shared);
        Box::pin(async move { Ok(guard(shared, inner, request).await) })
    }
}

/// Authenticate through the core's verified-token cache (a repeat of a valid token skips the
/// signature check; `exp`/`nbf` are checked every time, and fetched keys empty the cache),
/// then introspect if the core asks for it.
async fn authenticate(shared: &Shared, authorization: &[Vec<u8>]) -> Result<Access, Challenge> {
    match validate(shared, authorization).await {
        Authenticated::Done(verdict) => verdict,
        Authenticated::Introspect(call) => {
            let response = match shared.http.send(&call.request).await {
                Ok(r) => Some(r),
                Err(e) => {
                    tracing::warn!(error = %e, "introspection failed");
                    None
                }
            };
            shared.rs().introspected(now(), call, response.as_ref())
        }
    }
}

/// The core's verdict, refetching the JWKS once when it says so.
async fn validate(shared: &Shared, authorization: &[Vec<u8>]) -> Authenticated {
    let values = || authorization.iter().map(Vec::as_slice);
    let first = shared.rs().authenticate_active(now(), values());
    let Authenticated::Done(Err(challenge)) = &first else {
        return first;
    };
    if !shared.rs().should_refetch_keys(now(), challenge) {
        return first;
    }
    // One fetch at a time; whoever waited re-checks first (the keys may be fresh now).
    let _single = shared.refetch.lock().await;
    let again = shared.rs().authenticate_active(now(), values());
    match &again {
        Authenticated::Done(Err(challenge))
            if shared.rs().should_refetch_keys(now(), challenge) =>
        {
            let _ = fetch_keys(shared).await;
            shared.rs().authenticate_active(now(), values())
        }
        _ => again,
    }
}

async fn guard<S, B>(
    shared: Arc<Shared>,
    inner: S,
    request: http::Request<B>,
) -> http::Response<Body>
where
    S: Service<http::Request<Full<Bytes>>, Response = http::Response<Body>, Error = Infallible>,
    B: hyper::body::Body,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let method = Method::from_name(request.method().as_str());
    if let Some(answer) = guard::unauthenticated(&shared.rs(), method, request.uri().path()) {
        return to_hyper(answer);
    }
    let (mut parts, body) = request.into_parts();
    let values = |name: &str| -> Vec<Vec<u8>> {
        parts
            .headers
            .get_all(name)
            .iter()
            .map(|v| v.as_bytes().to_vec())
            .collect()
    };
    let origins = values("origin");
    let origin_ok = guard::origin_allowed(
        &origins.iter().map(Vec::as_slice).collect::<Vec<_>>(),
        &shared
            .allowed_origins
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner),
    );
    if !origin_ok {
        tracing::info!("refused a request from a foreign Origin");
        return to_hyper(guard::origin_refused());
    }
    let versions = values("mcp-protocol-version");
    let authorization: Vec<Vec<u8>> = parts
        .headers
        .get_all(http::header::AUTHORIZATION)
        .iter()
        .map(|v| v.as_bytes().to_vec())
        .collect();
    let access = match authenticate(&shared, &authorization).await {
        Ok(access) => access,
        Err(challenge) => {
            tracing::info!(status = challenge.status, rejection = ?challenge.rejection, "refused");
            return to_hyper(guard::challenge_response(&challenge));
        }
    };
    let body = match Limited::new(body, RS_BODY_LIMIT).collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(e) if e.is::<http_body_util::LengthLimitError>() => {
            return to_hyper(guard::body_too_large());
        }
        Err(_) => return to_hyper(guard::body_unreadable()),
    };
    // After authentication (spec A-13): a bad version gets 400 only once the caller is known.
    let versions: Vec<&[u8]> = versions.iter().map(Vec::as_slice).collect();
    if let Err(answer) = guard::protocol_version(&versions, &body) {
        return to_hyper(answer);
    }
    if method == Method::Post
        && let Err(challenge) = shared.tool_scopes.check(&shared.rs(), &access, &body)
    {
        return to_hyper(guard::challenge_response(&challenge));
    }
    let session = parts
        .headers
        .get("mcp-session-id")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    if let Some(session) = &session {
        match shared.sessions.check(session, &access) {
            Ok(inner) => match http::HeaderValue::from_str(&inner) {
                Ok(value) => {
                    parts.headers.insert("mcp-session-id", value);
                }
                Err(_) => return to_hyper(mcp_auth_proto::http::HttpResponse::new(404)),
            },
            Err(answer) => return to_hyper(answer),
        }
    }
    parts.extensions.insert(access.clone());
    parts.extensions.insert(ScopeCheck {
        shared: Arc::clone(&shared),
    });
    let mut response = match inner
        .oneshot(http::Request::from_parts(parts, Full::new(body)))
        .await
    {
        Ok(response) => response,
        Err(never) => match never {},
    };
    // The client gets the bound id (the MCP server's id and its owner's MAC), never the bare
    // one; an id that cannot be bound is not handed out.
    if let Some(created) = response.headers_mut().remove("mcp-session-id") {
        let bound = created
            .to_str()
            .ok()
            .map(|inner| shared.sessions.created(inner, &access))
            .and_then(|bound| http::HeaderValue::from_str(&bound).ok());
        match bound {
            Some(value) => {
                response.headers_mut().insert("mcp-session-id", value);
            }
            None => return to_hyper(mcp_auth_proto::http::HttpResponse::new(500)),
        }
    }
    with_cors(response)
}

/// The CORS headers of the core's [`guard::with_cors`], on a response of the inner service.
fn with_cors(mut response: http::Response<Body>) -> http::Response<Body> {
    for (name, value) in guard::with_cors(mcp_auth_proto::http::HttpResponse::new(200)).headers {
        if let (Ok(name), Ok(value)) = (
            http::HeaderName::from_bytes(name.as_bytes()),
            http::HeaderValue::from_str(&value),
        ) {
            response.headers_mut().insert(name, value);
        }
    }
    response
}
