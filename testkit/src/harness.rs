//! An authorization server, a resource server and a client wired together in memory, on
//! simulated time (quinn's `Pair`, str0m's `progress`). Every hop goes through the same HTTP
//! codecs the hyper drivers use, with no network. Used by the integration tests, the fuzzers
//! and the benchmarks.
//!
//! The entropy is [`Sequential`]: predictable and insecure, for tests only.

use std::collections::BTreeMap;

use mcp_auth_proto::client::{Action, Client, ClientConfig, ClientError, Tokens};
use mcp_auth_proto::endpoint::{McpGuard, Verdict};
use mcp_auth_proto::entropy::Sequential;
use mcp_auth_proto::guard::Sessions;
use mcp_auth_proto::http::{HttpRequest, HttpResponse, Method};
use mcp_auth_proto::jwt::{Access, Ed25519Signer, KeySet, Signer};
use mcp_auth_proto::resource::{Challenge, ResourceServer, RsConfig};
use mcp_auth_proto::server::http::{UserAgentPolicy, handle};
use mcp_auth_proto::server::{AsConfig, AuthorizationServer};
use mcp_auth_proto::time::UnixTime;
use mcp_auth_proto::types::ScopeSet;
use mcp_auth_proto::uri::{HttpPolicy, Issuer, ResourceUri, parse_uri};

/// The issuer of the harness's authorization server.
pub const ISSUER: &str = "https://as.example";
/// The honest MCP server.
pub const RESOURCE: &str = "https://mcp.example/mcp";
/// Another MCP server the same AS issues tokens for.
pub const OTHER_RESOURCE: &str = "https://other.example/mcp";
/// The client's loopback redirect URI.
pub const REDIRECT_URI: &str = "http://127.0.0.1:7777/callback";
/// The demo user.
pub const USER: &str = "alice";

/// Three parties and a clock.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Harness {
    /// The authorization server.
    pub authorization_server: AuthorizationServer,
    /// The honest MCP server at [`RESOURCE`]: the endpoint's whole pipeline, as the tower
    /// layer runs it ([`McpGuard::resource_server`] is the resource server).
    pub guard: McpGuard,
    /// The client, configured for [`RESOURCE`].
    pub client: Client,
    /// Simulated time.
    pub now: UnixTime,
    /// Entropy for all parties.
    pub entropy: Sequential,
    /// The user at the consent page.
    pub user: UserAgentPolicy,
    /// The browser's session cookie (`name=value`), as the AS last set it.
    pub cookie: Option<String>,
    /// Keep [`Harness::cookie`] and send it with every AS request that has none (one
    /// browser); off, tests play their browsers' cookies themselves.
    pub cookie_jar: bool,
    /// Every exchange, in order.
    pub log: Vec<(HttpRequest, HttpResponse)>,
}

fn scopes() -> ScopeSet {
    ScopeSet::from_tokens(["mcp:tools", "mcp:admin"])
}

/// The authorization server of the harness: both resources known, Ed25519 key from a fixed seed.
pub fn authorization_server() -> AuthorizationServer {
    let issuer = Issuer::parse(ISSUER, HttpPolicy::HttpsOnly).expect("valid issuer");
    let resources = [RESOURCE, OTHER_RESOURCE].map(|r| {
        (
            ResourceUri::parse(r, HttpPolicy::HttpsOnly).expect("valid resource"),
            scopes(),
        )
    });
    let mut config = AsConfig::new(issuer, resources);
    config.default_scopes = ScopeSet::from_tokens(["mcp:tools"]);
    AuthorizationServer::new(config, Signer::new(Ed25519Signer::from_seed("k1", [7; 32])))
}

/// A resource server for `resource`, trusting [`ISSUER`] with the AS's keys installed.
pub fn resource_server(
    authorization_server: &AuthorizationServer,
    resource: &str,
) -> ResourceServer {
    let resource = ResourceUri::parse(resource, HttpPolicy::HttpsOnly).expect("valid resource");
    let issuer = Issuer::parse(ISSUER, HttpPolicy::HttpsOnly).expect("valid issuer");
    let mut rs = ResourceServer::new(RsConfig::new(resource, issuer, scopes()));
    rs.set_keys(
        UnixTime::default(),
        KeySet::from_jwks(&authorization_server.jwks()),
    );
    rs
}

impl Default for Harness {
    fn default() -> Self {
        Self::new()
    }
}

impl Harness {
    /// Fresh parties at time 1000, the user approving automatically.
    pub fn new() -> Self {
        let authorization_server = authorization_server();
        let resource_server = resource_server(&authorization_server, RESOURCE);
        Self {
            guard: McpGuard::new(resource_server, Sessions::new(&mut Sequential(99))),
            authorization_server,
            client: Client::new(
                ClientConfig::new(RESOURCE, REDIRECT_URI)
                    .with_scope(Some(ScopeSet::from_tokens(["mcp:tools"]))),
            ),
            now: UnixTime::from_secs(1_000),
            entropy: Sequential(1),
            user: UserAgentPolicy::single(USER).auto_approving(),
            cookie: None,
            cookie_jar: true,
            log: Vec::new(),
        }
    }

    /// Deliver a request addressed by absolute URL to the right party and log the exchange.
    pub fn route(&mut self, request: &HttpRequest) -> HttpResponse {
        let response = match split_url(&request.url) {
            Some((origin, path, query)) => {
                let local = HttpRequest {
                    url: path,
                    query,
                    ..request.clone()
                };
                if ISSUER.starts_with(&origin) && origin.len() == ISSUER.len() {
                    // One browser: the session cookie goes back with every request.
                    let local = match &self.cookie {
                        Some(c)
                            if self.cookie_jar
                                && local.header_values("cookie").next().is_none() =>
                        {
                            local.header("cookie", c.clone())
                        }
                        _ => local,
                    };
                    let response = handle(
                        &mut self.authorization_server,
                        self.now,
                        &mut self.entropy,
                        &self.user,
                        &local,
                    );
                    if let Some(set) = response.header_value("set-cookie")
                        && let Some(pair) = set.split(';').next()
                    {
                        self.cookie = Some(pair.to_owned());
                    }
                    response
                } else if self.guard.resource_server().config().resource.origin() == origin {
                    self.resource_server_http(&local)
                } else {
                    HttpResponse::new(404)
                }
            }
            None => HttpResponse::new(400),
        };
        self.log.push((request.clone(), response.clone()));
        response
    }

    /// The MCP server: every request through the guard's pipeline; a forwarded request at the
    /// resource's path is answered 200, at any other path 404 (no MCP server there).
    fn resource_server_http(&mut self, request: &HttpRequest) -> HttpResponse {
        match self.guard.handle_request(self.now, request) {
            Verdict::Respond(response) | Verdict::FetchKeys(response) => response,
            // The harness configures no introspection.
            Verdict::Introspect(_) => HttpResponse::new(503),
            Verdict::ReadBody(admitted) => match self.guard.handle_body(admitted, &request.body) {
                Err(response) => response,
                Ok(_) if self.guard.resource_server().config().resource.path() == request.url => {
                    HttpResponse::new(200)
                }
                Ok(_) => HttpResponse::new(404),
            },
        }
    }

    /// An MCP request to the honest resource server with this `Authorization` value.
    pub fn mcp_request(&mut self, authorization: Option<&str>) -> Result<Access, Challenge> {
        let values: Vec<&[u8]> = authorization.map(str::as_bytes).into_iter().collect();
        self.guard.resource_server().authenticate(self.now, values)
    }

    /// Run the client until it is authorized or fails (at most 32 steps): MCP request without a
    /// token, 401, discovery, registration, authorization (the user approves), token.
    pub fn drive(&mut self) -> Result<Tokens, ClientError> {
        if matches!(self.client.poll_action(), Action::Idle) {
            let challenge = self.mcp_request(None).expect_err("no token means 401");
            self.client
                .handle_unauthorized([challenge.www_authenticate.as_str()]);
        }
        for _ in 0..32 {
            match self.client.poll_action() {
                Action::Send(request) => {
                    let response = self.route(&request);
                    self.client
                        .handle_response(self.now, &mut self.entropy, &response);
                }
                Action::OpenBrowser(url) => {
                    let query = self.browse(&url).unwrap_or_default();
                    self.client.handle_redirect(&query)?;
                }
                Action::Authorized(tokens) => return Ok(tokens),
                Action::Failed(error) => return Err(error),
                Action::Idle => return Err(ClientError::UnexpectedInput),
            }
        }
        Err(ClientError::UnexpectedInput)
    }

    /// The user agent visits the authorization URL; returns the query of the redirect to the
    /// client's redirect URI, if the AS redirected there.
    pub fn browse(&mut self, url: &str) -> Option<String> {
        let response = self.route(&HttpRequest::new(Method::Get, url));
        redirect_query(&response)
    }

    /// The user agent opens `url` and gets an error page with a link back to the client:
    /// the query of that link.
    pub fn browse_error(&mut self, url: &str) -> Option<String> {
        let response = self.route(&HttpRequest::new(Method::Get, url));
        error_link_query(&response)
    }

    /// Advance simulated time.
    pub fn advance(&mut self, secs: u64) {
        self.now = self.now.plus(secs);
    }
}

/// A form POST (`application/x-www-form-urlencoded`).
pub fn form_post(url: &str, pairs: &[(&str, &str)]) -> HttpRequest {
    HttpRequest::new(Method::Post, url)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(mcp_auth_proto::form::encode(pairs.iter().copied()))
}

/// Register a public client named "test" with the given redirect URIs at the harness AS;
/// returns its id.
pub fn register_client(h: &mut Harness, redirect_uris: &[&str]) -> String {
    let body = serde_json::json!({"redirect_uris": redirect_uris,
        "token_endpoint_auth_method": "none",
        "grant_types": ["authorization_code", "refresh_token"], "client_name": "test"});
    let r = h.route(
        &HttpRequest::new(Method::Post, format!("{ISSUER}/register"))
            .header("content-type", "application/json")
            .body(serde_json::to_vec(&body).unwrap_or_default()),
    );
    assert_eq!(r.status, 201, "{}", String::from_utf8_lossy(&r.body));
    serde_json::from_slice::<serde_json::Value>(&r.body).unwrap_or_default()["client_id"]
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

/// The authorization URL for a client, with PKCE of `verifier`, state "xyz", `resource`
/// and [`REDIRECT_URI`]; `extra` replaces or (with an empty value) removes parameters.
pub fn authorize_url(
    client_id: &str,
    verifier: &mcp_auth_proto::pkce::CodeVerifier,
    resource: &str,
    extra: &[(&str, &str)],
) -> String {
    let challenge = verifier.challenge();
    let mut pairs = vec![
        ("response_type", "code"),
        ("client_id", client_id),
        ("redirect_uri", REDIRECT_URI),
        ("state", "xyz"),
        ("code_challenge", challenge.as_str()),
        ("code_challenge_method", "S256"),
        ("resource", resource),
    ];
    for (k, v) in extra {
        pairs.retain(|(pk, _)| pk != k);
        if !v.is_empty() {
            pairs.push((k, v));
        }
    }
    format!("{ISSUER}/authorize?{}", mcp_auth_proto::form::encode(pairs))
}

/// The query of the link back to [`REDIRECT_URI`] on an error page that the server shows
/// instead of redirecting (a verified client sent a bad request; no user was involved yet).
/// `None` if the answer redirects or has no such link.
pub fn error_link_query(response: &HttpResponse) -> Option<String> {
    let href = error_link(response)?;
    let rest = href.strip_prefix(REDIRECT_URI)?;
    rest.strip_prefix('?').map(str::to_owned)
}

/// The link back to the client on an error page shown instead of a redirect (the whole URL).
pub fn error_link(response: &HttpResponse) -> Option<String> {
    if response.header_value("location").is_some() {
        return None;
    }
    let html = std::str::from_utf8(&response.body).ok()?;
    let (_, rest) = html.split_once("<a class=\"button\" href=\"")?;
    let (href, _) = rest.split_once('"')?;
    Some(href.replace("&amp;", "&"))
}

/// The query of a 303 redirect to [`REDIRECT_URI`].
pub fn redirect_query(response: &HttpResponse) -> Option<String> {
    let location = response.header_value("location")?;
    let rest = location.strip_prefix(REDIRECT_URI)?;
    rest.strip_prefix('?').map(str::to_owned)
}

/// Split an absolute URL into (origin, path, query).
pub fn split_url(url: &str) -> Option<(String, String, Option<String>)> {
    let parts = parse_uri(url).ok()?;
    let origin_len = url.len()
        - parts.path.len()
        - parts.query.map_or(0, |q| q.len() + 1)
        - parts.fragment.map_or(0, |f| f.len() + 1);
    let origin = url.get(..origin_len)?.to_owned();
    let path = if parts.path.is_empty() {
        "/".to_owned()
    } else {
        parts.path.to_owned()
    };
    Some((origin, path, parts.query.map(str::to_owned)))
}

/// Decode the query of an URL into a map (last value wins; for tests).
pub fn query_map(query: &str) -> BTreeMap<String, String> {
    form_urlencoded::parse(query.as_bytes())
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect()
}
