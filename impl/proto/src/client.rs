//! The MCP client as a typed state machine, from "the MCP server answered 401" to "authorized"
//! (and refreshed). It never performs I/O: the caller takes the next [`Action`] out with
//! [`Client::poll_action`] and feeds answers in with [`Client::handle_response`] and
//! [`Client::handle_redirect`] (rustls / quinn style).
//!
//! Discovery order: the `resource_metadata` URL of the challenge, else the path-inserted
//! well-known PRM URL, else the root one; then RFC 8414 metadata at the path-inserted URL, then
//! OpenID discovery (path-inserted, then path-appended). Registration: pre-configured
//! credentials (for their issuer only), else a Client ID Metadata Document URL where the AS
//! supports it (2025-11-25 and later), else dynamic (RFC 7591; with `application_type` from
//! 2026-07-28). The authorization request carries PKCE S256, `state` and `resource` (and
//! `offline_access` in the scope from 2026-07-28 where the AS lists it); the callback must
//! return the same `state` and, when present or advertised, the issuer as `iss`.
//!
//! Once authorized, every answer of the MCP server goes to [`Client::handle_mcp_response`],
//! which says what it means ([`McpOutcome`]: use it, refresh, step up, rediscover, or stop),
//! and [`mcp_post`] builds the requests that carry JSON-RPC messages in the form of the
//! negotiated revision ([`negotiate`]: stateless 2026-07-28, else `initialize` and sessions).
//! Credentials are kept per issuer and resource ([`TokenStore`]).

use serde::{Deserialize, Serialize};

mod mcp;
mod store;

pub use mcp::{
    DISCOVER_ATTEMPTS, META_CLIENT_CAPABILITIES, META_CLIENT_INFO, META_PROTOCOL_VERSION,
    META_SERVER_INFO, McpFailure, McpOutcome, Negotiated, SSE_RESUMES_MAX, SSE_RETRY_DEFAULT_MS,
    SSE_RETRY_MAX_MS, SseResume, StatelessClient, UNSUPPORTED_PROTOCOL_VERSION,
    initialize_revision, initialized_revision, mcp_name, mcp_post, mcp_request, negotiate,
    protocol_version_header, request_meta, sse_resume, sse_resume_request,
};
pub use store::TokenStore;

use crate::challenge::{BearerChallenge, parse_www_authenticate};
use crate::entropy::{Entropy, mint};
use crate::form::{self, Params};
use crate::http::{HttpRequest, HttpResponse, Method};
use crate::metadata::{
    ASM_SUFFIX, AuthorizationServerMetadata, DOCUMENT_LEN_MAX, OIDC_SUFFIX, PRM_SUFFIX,
    ProtectedResourceMetadata,
};
use crate::mutations::mutated;
use crate::pkce::{CodeVerifier, S256};
use crate::server::{ClientMetadata, RegistrationResponse, TokenResponse};
use crate::time::UnixTime;
use crate::types::ScopeSet;
use crate::uri::{
    HttpPolicy, Issuer, RedirectUri, ResourceUri, well_known_append, well_known_insert,
    well_known_root,
};

/// A secret in `Debug` output: its first 4 characters and its length, never the whole value
/// (spec [CLI-6](crate::requirements#CLI-6): logs and panics must not carry tokens).
struct Redacted<'a>(&'a str);

impl std::fmt::Debug for Redacted<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let head: String = self.0.chars().take(4).collect();
        write!(f, "\"{head}…\"({} chars)", self.0.chars().count())
    }
}

/// Client configuration. `Debug` redacts the pre-registered client secret.
///
/// `#[non_exhaustive]`: build it with [`ClientConfig::new`] and the `with_*` methods (or
/// assign fields of a value), so that a new field is not a breaking change.
///
/// ```
/// use mcp_auth_proto::client::ClientConfig;
/// use mcp_auth_proto::types::ScopeSet;
///
/// let config = ClientConfig::new("https://mcp.example.com/mcp", "http://127.0.0.1:8400/callback")
///     .with_scope(Some(ScopeSet::from_tokens(["mcp:tools"])))
///     .with_client_name("my agent");
/// assert_eq!(config.client_name, "my agent");
/// ```
#[derive(Clone, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub struct ClientConfig {
    /// The MCP server URL, as the user gave it.
    pub server_url: String,
    /// Our redirect URI (a loopback URI with the listener's port, RFC 8252).
    pub redirect_uri: String,
    /// Name sent at registration.
    pub client_name: String,
    /// Scopes to request; when `None`, those of the challenge, else none.
    pub scope: Option<ScopeSet>,
    /// Pre-registered credentials (client id, optional secret) instead of DCR.
    pub preregistered: Option<(String, Option<String>)>,
    /// The issuer [`ClientConfig::preregistered`] credentials were issued by: they are sent
    /// to that authorization server only; a resource naming another one stops the flow
    /// ([`ClientError::CredentialsForAnotherIssuer`]) before any request to it. `None`: from
    /// 2026-07-28 ([`crate::Revision::credentials_bound_to_issuer`]) the first issuer they are
    /// used with in this client's life; before, any.
    // spec: CLI-9
    pub preregistered_issuer: Option<String>,
    /// The client's Client ID Metadata Document URL (an https URL with a path, whose document
    /// the client publishes): its `client_id` at an authorization server that advertises
    /// `client_id_metadata_document_supported`, from 2025-11-25
    /// ([`crate::Revision::client_id_metadata_documents`]), instead of registering. Checked
    /// by [`client_metadata_url_ok`]; the flow refuses a bad one before any request
    /// ([`ClientError::BadClientMetadataUrl`]).
    // spec: CIMD-1, CIMD-2
    pub client_metadata_url: Option<String>,
    /// Whether http URLs are acceptable for loopback hosts (spec [PF-8](crate::requirements#PF-8); off by default). URLs
    /// taken from challenges and metadata may be plain http only when the MCP server URL
    /// itself is loopback http (see [`Client::transport_policy`]).
    pub http_policy: HttpPolicy,
    /// SSRF switch, off by default: URLs from challenges and metadata may name
    /// private-network addresses (10.0.0.0/8, 172.16.0.0/12, 192.168.0.0/16, fc00::/7) even
    /// when the MCP server is not on one, e.g. an authorization server on a company network.
    /// Loopback targets still need a loopback MCP server, and link-local or reserved
    /// addresses are refused whatever this says (see [`crate::address`]).
    // spec: DISC-11
    pub allow_private_addresses: bool,
    /// Compatibility switch, off by default: accept Protected Resource Metadata whose
    /// `resource` is not the MCP server URL but a prefix of it on the same origin (the
    /// origin, or a parent path ending at a `/` boundary), as some servers publish. The
    /// client then asks the AS for a token for that published `resource`, exactly as
    /// published (RFC 8707 §2 lets a client name a less specific URI; RFC 9728 §3.3 is what
    /// the switch relaxes), and still sends the token to the configured server only.
    // spec: PF-22
    pub accept_prm_resource_prefix: bool,
    /// Compatibility switch, off by default: proceed when AS metadata omits
    /// `code_challenge_methods_supported` entirely (it must still not exclude S256).
    // spec: PF-12
    pub allow_missing_pkce_metadata: bool,
    /// How often one MCP request may send the user to authorize again: a 401 while the
    /// client holds tokens (after the refresh, if any, did not help), or a 403
    /// `insufficient_scope` (step-up). `0` hands those answers back (see
    /// [`Client::handle_mcp_response`]). A refresh needs no user and is always tried once.
    pub reauthorize: u32,
    /// The newest MCP revision this client speaks (see [`crate::revision`]); its rules
    /// decide registration (Client ID Metadata Document, `application_type`), credentials
    /// bound to their issuer, `offline_access` and the MCP requests' form. Default:
    /// 2025-06-18.
    pub revision: crate::Revision,
    /// Defenses turned off, for the model checker only (cfg `mcp_auth_mutations`).
    #[cfg(mcp_auth_mutations)]
    pub mutations: crate::mutations::Mutations,
}

impl std::fmt::Debug for ClientConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut d = f.debug_struct("ClientConfig");
        d.field("server_url", &self.server_url)
            .field("redirect_uri", &self.redirect_uri)
            .field("client_name", &self.client_name)
            .field("scope", &self.scope)
            .field(
                "preregistered",
                &self
                    .preregistered
                    .as_ref()
                    .map(|(id, secret)| (id, secret.as_deref().map(Redacted))),
            )
            .field("preregistered_issuer", &self.preregistered_issuer)
            .field("client_metadata_url", &self.client_metadata_url)
            .field("http_policy", &self.http_policy)
            .field("allow_private_addresses", &self.allow_private_addresses)
            .field(
                "allow_missing_pkce_metadata",
                &self.allow_missing_pkce_metadata,
            )
            .field(
                "accept_prm_resource_prefix",
                &self.accept_prm_resource_prefix,
            )
            .field("reauthorize", &self.reauthorize)
            .field("revision", &self.revision);
        #[cfg(mcp_auth_mutations)]
        d.field("mutations", &self.mutations);
        d.finish()
    }
}

/// Default of [`ClientConfig::reauthorize`]: twice per MCP request.
pub const REAUTHORIZE_DEFAULT: u32 = 2;

impl ClientConfig {
    /// A strict configuration.
    pub fn new(server_url: impl Into<String>, redirect_uri: impl Into<String>) -> Self {
        Self {
            server_url: server_url.into(),
            redirect_uri: redirect_uri.into(),
            client_name: "mcp-auth".into(),
            scope: None,
            preregistered: None,
            preregistered_issuer: None,
            client_metadata_url: None,
            http_policy: HttpPolicy::HttpsOnly,
            allow_private_addresses: false,
            allow_missing_pkce_metadata: false,
            accept_prm_resource_prefix: false,
            reauthorize: REAUTHORIZE_DEFAULT,
            revision: crate::Revision::default(),
            #[cfg(mcp_auth_mutations)]
            mutations: crate::mutations::Mutations::default(),
        }
    }

    /// Sets [`ClientConfig::client_name`], the name sent at registration.
    #[must_use]
    pub fn with_client_name(mut self, client_name: impl Into<String>) -> Self {
        self.client_name = client_name.into();
        self
    }

    /// Sets [`ClientConfig::scope`], the scopes to request (`None`: those of the challenge).
    #[must_use]
    pub fn with_scope(mut self, scope: Option<ScopeSet>) -> Self {
        self.scope = scope;
        self
    }

    /// Sets [`ClientConfig::preregistered`]: pre-registered credentials (client id, optional
    /// secret) instead of dynamic registration, or `None` to register.
    #[must_use]
    pub fn with_preregistered(mut self, preregistered: Option<(String, Option<String>)>) -> Self {
        self.preregistered = preregistered;
        self
    }

    /// Sets [`ClientConfig::preregistered_issuer`], the issuer of the pre-registered
    /// credentials (the only authorization server they are sent to).
    #[must_use]
    pub fn with_preregistered_issuer(mut self, issuer: Option<String>) -> Self {
        self.preregistered_issuer = issuer;
        self
    }

    /// Sets [`ClientConfig::client_metadata_url`], the client's Client ID Metadata Document
    /// URL (see [`client_metadata_url_ok`]).
    #[must_use]
    pub fn with_client_metadata_url(mut self, url: Option<String>) -> Self {
        self.client_metadata_url = url;
        self
    }

    /// Sets [`ClientConfig::http_policy`], whether http URLs are acceptable for loopback hosts.
    #[must_use]
    pub fn with_http_policy(mut self, http_policy: HttpPolicy) -> Self {
        self.http_policy = http_policy;
        self
    }

    /// Sets [`ClientConfig::allow_private_addresses`], the SSRF switch for private-network
    /// addresses (off by default).
    #[must_use]
    pub fn with_allow_private_addresses(mut self, allow: bool) -> Self {
        self.allow_private_addresses = allow;
        self
    }

    /// Sets [`ClientConfig::allow_missing_pkce_metadata`], the compatibility switch for AS
    /// metadata without `code_challenge_methods_supported` (off by default).
    #[must_use]
    pub fn with_allow_missing_pkce_metadata(mut self, allow: bool) -> Self {
        self.allow_missing_pkce_metadata = allow;
        self
    }

    /// Sets [`ClientConfig::accept_prm_resource_prefix`], the compatibility switch for a PRM
    /// `resource` that is a prefix of the server URL (off by default).
    #[must_use]
    pub fn with_accept_prm_resource_prefix(mut self, accept: bool) -> Self {
        self.accept_prm_resource_prefix = accept;
        self
    }

    /// Sets [`ClientConfig::reauthorize`], how often one MCP request may send the user to
    /// authorize again (default [`REAUTHORIZE_DEFAULT`]; `0` hands those answers back).
    #[must_use]
    pub fn with_reauthorize(mut self, reauthorize: u32) -> Self {
        self.reauthorize = reauthorize;
        self
    }

    /// Sets [`ClientConfig::revision`], the newest MCP revision this client speaks.
    #[must_use]
    pub fn with_revision(mut self, revision: crate::Revision) -> Self {
        self.revision = revision;
        self
    }
}

/// Why the client stopped. Each names the requirement the peer broke.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum ClientError {
    /// The MCP server URL is not a valid (https) URI.
    BadServerUrl,
    /// Our redirect URI is not absolute https or loopback http, or has a fragment.
    BadRedirectUri,
    /// The configured Client ID Metadata Document URL is not an https URL with a path
    /// ([`client_metadata_url_ok`]).
    BadClientMetadataUrl,
    /// The 401's `WWW-Authenticate` could not be parsed.
    BadChallenge,
    /// No usable Protected Resource Metadata at any candidate URL.
    NoResourceMetadata,
    /// The PRM document is not valid JSON metadata.
    BadResourceMetadata,
    /// PRM `resource` is not the server we asked about.
    ResourceMismatch {
        /// What the document said.
        got: String,
    },
    /// PRM lists no usable authorization server.
    NoAuthorizationServer,
    /// No usable authorization server metadata at any candidate URL.
    NoServerMetadata,
    /// The metadata `issuer` is not the issuer we looked up.
    IssuerMismatch {
        /// What the document said.
        got: String,
    },
    /// The metadata lacks endpoints, or an endpoint is not https.
    BadServerMetadata,
    /// The AS does not advertise PKCE S256.
    PkceUnsupported,
    /// The AS has no registration endpoint and no credentials are configured.
    NoRegistration,
    /// The resource names an authorization server other than the one the pre-registered
    /// credentials belong to: they are not sent to it.
    CredentialsForAnotherIssuer {
        /// The issuer of the credentials.
        credentials: String,
        /// The issuer the resource named.
        named: String,
    },
    /// Registration failed.
    RegistrationFailed {
        /// HTTP status.
        status: u16,
    },
    /// The AS refused the registration with an RFC 7591 §3.2.2 error, e.g.
    /// `invalid_redirect_uri` (it will not redirect to our loopback listener) or
    /// `invalid_client_metadata`: surfaced as the AS said it, not as a generic failure.
    RegistrationRefused {
        /// HTTP status (400).
        status: u16,
        /// The AS's `error` code.
        error: String,
        /// The AS's `error_description`, if any.
        description: Option<String>,
    },
    /// The callback's `state` is missing or not ours (discarded).
    StateMismatch,
    /// The callback's `iss` is not the issuer of this flow (mix-up), or missing though advertised.
    IssuerResponseMismatch,
    /// The AS redirected with an error.
    AuthorizationDenied {
        /// `error`.
        error: String,
    },
    /// The callback has neither `code` nor `error`.
    BadCallback,
    /// The token endpoint refused.
    TokenRejected {
        /// HTTP status.
        status: u16,
        /// `error`, if any.
        error: Option<String>,
    },
    /// The token response is not usable (not JSON, not Bearer, no token).
    BadTokenResponse,
    /// The call does not fit the current state (caller's bug).
    UnexpectedInput,
    /// A URL from a challenge or from metadata names a loopback, private-network,
    /// link-local or reserved host that the MCP server may not send us to (SSRF guard).
    ForbiddenAddress {
        /// The refused URL.
        url: String,
    },
}

impl ClientError {
    /// The requirement this error enforces.
    pub const fn requirement(&self) -> &'static str {
        match self {
            Self::BadServerUrl => "RES-9",
            Self::BadRedirectUri => "DCR-10",
            Self::BadClientMetadataUrl => "CIMD-2",
            Self::BadChallenge => "DISC-2",
            Self::NoResourceMetadata => "DISC-1",
            Self::BadResourceMetadata => "DISC-5",
            Self::ResourceMismatch { .. } => "DISC-4",
            Self::NoAuthorizationServer => "PRM-2",
            Self::NoServerMetadata => "DISC-7",
            Self::IssuerMismatch { .. } => "DISC-8",
            Self::BadServerMetadata => "GEN-6",
            Self::PkceUnsupported => "PKCE-11",
            Self::NoRegistration => "DCR-2",
            Self::CredentialsForAnotherIssuer { .. } => "CLI-9",
            Self::RegistrationFailed { .. } => "DCR-4",
            Self::RegistrationRefused { .. } => "DCR-13",
            Self::StateMismatch => "AZ-11",
            Self::IssuerResponseMismatch => "AZ-20",
            Self::AuthorizationDenied { .. } => "AZ-10",
            Self::BadCallback => "AZ-18",
            Self::TokenRejected { .. } => "TOK-14",
            Self::BadTokenResponse => "TOK-13",
            Self::UnexpectedInput => "SEC-12",
            Self::ForbiddenAddress { .. } => "DISC-11",
        }
    }
}

impl std::fmt::Display for ClientError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{self:?} ({})", self.requirement())
    }
}

impl std::error::Error for ClientError {}

/// Tokens obtained for one resource from one authorization server. This is what a driver
/// persists (keyed by issuer) and what [`Client::resume`] takes back. `Debug` redacts the
/// access token, the refresh token and the client secret.
#[derive(Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Tokens {
    /// The issuer that minted them.
    pub issuer: String,
    /// The token endpoint of that issuer.
    pub token_endpoint: String,
    /// The resource they are for (canonical).
    pub resource: String,
    /// The `resource` the tokens were requested for, when it is not [`Tokens::resource`]:
    /// the prefix the PRM published under [`ClientConfig::accept_prm_resource_prefix`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource_indicator: Option<String>,
    /// Our client id at that issuer.
    pub client_id: String,
    /// Our client secret, if confidential.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_secret: Option<String>,
    /// The secret goes in the form body (`client_secret_post`) rather than HTTP Basic.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub client_secret_post: bool,
    /// The access token.
    pub access_token: String,
    /// The refresh token.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refresh_token: Option<String>,
    /// When the access token should be considered expired.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<u64>,
    /// Granted scopes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scope: Option<String>,
    /// The issuer's revocation endpoint (RFC 7009), if its metadata named one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revocation_endpoint: Option<String>,
}

/// How long before `expires_at` a token is treated as expired: `expires_in` is counted from
/// when the AS answered, and the RS's clock may run ahead (OAuth 2.1 §3.2.3: the client must
/// not assume the token lives that long).
pub const EXPIRY_MARGIN_SECS: u64 = 30;

// spec: CLI-6
impl std::fmt::Debug for Tokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tokens")
            .field("issuer", &self.issuer)
            .field("token_endpoint", &self.token_endpoint)
            .field("resource", &self.resource)
            .field("resource_indicator", &self.resource_indicator)
            .field("client_id", &self.client_id)
            .field(
                "client_secret",
                &self.client_secret.as_deref().map(Redacted),
            )
            .field("client_secret_post", &self.client_secret_post)
            .field("access_token", &Redacted(&self.access_token))
            .field(
                "refresh_token",
                &self.refresh_token.as_deref().map(Redacted),
            )
            .field("expires_at", &self.expires_at)
            .field("scope", &self.scope)
            .field("revocation_endpoint", &self.revocation_endpoint)
            .finish()
    }
}

impl Tokens {
    /// How the client authenticates at this AS's token and revocation endpoints.
    fn registration(&self) -> Registration {
        Registration {
            client_id: self.client_id.clone(),
            client_secret: self.client_secret.clone(),
            secret_post: self.client_secret_post,
        }
    }

    /// The revocation request (RFC 7009 §2.1) that ends this authorization: the refresh
    /// token (the AS revokes the grant, and the access tokens with it), else the access
    /// token, authenticated as at the token endpoint. `None` without a revocation endpoint.
    // spec: RT-13
    pub fn revocation_request(&self) -> Option<HttpRequest> {
        let endpoint = self.revocation_endpoint.as_deref()?;
        let (token, hint) = match &self.refresh_token {
            Some(rt) => (rt.as_str(), "refresh_token"),
            None => (self.access_token.as_str(), "access_token"),
        };
        Some(token_request(
            endpoint,
            &[("token", token), ("token_type_hint", hint)],
            &self.registration(),
        ))
    }

    /// Should the access token be refreshed before use at `now`?
    // spec: TOK-13
    pub fn is_expired(&self, now: UnixTime) -> bool {
        self.expires_at
            .is_some_and(|e| e <= now.plus(EXPIRY_MARGIN_SECS).as_secs())
    }
}

/// What the driver must do next.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Action {
    /// Send this request and feed the answer to [`Client::handle_response`].
    Send(HttpRequest),
    /// Open this authorization URL in the user's browser; feed the redirect's query to
    /// [`Client::handle_redirect`].
    OpenBrowser(String),
    /// Done: use these tokens.
    Authorized(Tokens),
    /// Terminal failure.
    Failed(ClientError),
    /// Nothing to do until [`Client::handle_unauthorized`] (initial state).
    Idle,
}

/// The discovered context of a flow.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct Discovered {
    resource: ResourceUri,
    /// The `resource` to send when it is not `resource` (PF-22).
    indicator: Option<String>,
    issuer: Issuer,
    metadata: AuthorizationServerMetadata,
    scope: Option<ScopeSet>,
}

impl Discovered {
    /// The `resource` parameter of this flow's authorization and token requests.
    fn resource_indicator(&self) -> &str {
        self.indicator.as_deref().unwrap_or(self.resource.as_str())
    }
}

#[derive(Clone, PartialEq, Eq, Hash)]
struct Registration {
    client_id: String,
    client_secret: Option<String>,
    /// The secret goes in the body (`client_secret_post`), not in HTTP Basic.
    secret_post: bool,
}

impl std::fmt::Debug for Registration {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Registration")
            .field("client_id", &self.client_id)
            .field(
                "client_secret",
                &self.client_secret.as_deref().map(Redacted),
            )
            .field("secret_post", &self.secret_post)
            .finish()
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
enum State {
    Idle,
    AwaitingResourceMetadata {
        candidates: Vec<String>,
        scope: Option<ScopeSet>,
    },
    AwaitingServerMetadata {
        resource: ResourceUri,
        indicator: Option<String>,
        issuer: Issuer,
        candidates: Vec<String>,
        scope: Option<ScopeSet>,
    },
    AwaitingRegistration {
        flow: Discovered,
    },
    AwaitingRedirect {
        flow: Discovered,
        reg: Registration,
        verifier: CodeVerifier,
        state: String,
        url: String,
    },
    AwaitingToken {
        flow: Discovered,
        reg: Registration,
        request: HttpRequest,
    },
    Authorized {
        tokens: Tokens,
    },
    AwaitingRefresh {
        tokens: Tokens,
        request: HttpRequest,
        /// The challenge of the 401 that started this refresh: if the AS refuses the refresh,
        /// the client discovers again from it (see [`Client::handle_mcp_response`]).
        fallback: Option<BearerChallenge>,
    },
    Failed(ClientError),
}

/// The client state machine.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Client {
    config: ClientConfig,
    resource: Result<ResourceUri, ClientError>,
    state: State,
    /// The request whose answer is awaited, if any.
    outgoing: Option<HttpRequest>,
    /// The issuer the resource named at the latest discovery, else that of the tokens the
    /// client resumed with.
    issuer: Option<String>,
    /// What the current MCP request has tried so far (bounds its retries).
    retries: mcp::Retries,
    /// The issuer the pre-registered credentials are bound to: the configured one, else
    /// (from 2026-07-28) the first one they were used with.
    preregistered_issuer: Option<String>,
}

impl Client {
    /// A client in the idle state.
    // spec: RES-3, RES-4, RES-9
    pub fn new(config: ClientConfig) -> Self {
        let resource = ResourceUri::parse(&config.server_url, config.http_policy)
            .map_err(|_| ClientError::BadServerUrl);
        Self {
            resource,
            state: State::Idle,
            outgoing: None,
            issuer: None,
            retries: mcp::Retries::default(),
            preregistered_issuer: config.preregistered_issuer.clone(),
            config,
        }
    }

    /// A client that already holds tokens (from storage). They are used only for the resource
    /// they were obtained for.
    pub fn resume(config: ClientConfig, tokens: Tokens) -> Self {
        let mut c = Self::new(config);
        if c.resource
            .as_ref()
            .is_ok_and(|r| r.as_str() == tokens.resource)
        {
            c.issuer = Some(tokens.issuer.clone());
            c.state = State::Authorized { tokens };
        }
        c
    }

    /// The tokens the client holds, if it is authorized (or refreshing them).
    pub fn tokens(&self) -> Option<&Tokens> {
        match &self.state {
            State::Authorized { tokens } | State::AwaitingRefresh { tokens, .. } => Some(tokens),
            _ => None,
        }
    }

    /// The authorization server of this client's resource: the issuer its Protected Resource
    /// Metadata named at the latest discovery, else the issuer of the tokens the client
    /// resumed with. A [`TokenStore`] keeps no other issuer's credentials for the resource.
    // spec: CLI-5
    pub fn authorization_server(&self) -> Option<&str> {
        self.issuer.as_deref()
    }

    /// The canonical resource URI of the configured server.
    pub fn resource(&self) -> Result<&ResourceUri, &ClientError> {
        self.resource.as_ref()
    }

    /// The transport policy for every URL of this flow: plain http (to a loopback host) only
    /// when the configuration allows it *and* the MCP server URL itself is loopback http, so
    /// that an https server can never move the client to plain http. Drivers use it for
    /// their HTTP client.
    // spec: GEN-6, PF-8, DISC-11
    pub fn transport_policy(&self) -> HttpPolicy {
        match &self.resource {
            Ok(r)
                if self.config.http_policy == HttpPolicy::AllowLoopbackHttp
                    && r.as_str().starts_with("http:") =>
            {
                HttpPolicy::AllowLoopbackHttp
            }
            _ => HttpPolicy::HttpsOnly,
        }
    }

    /// The SSRF guard: may we fetch `url`, taken from a challenge or metadata, for our
    /// server? See [`crate::address::may_follow`].
    // spec: DISC-11
    fn may_follow(&self, url: &str) -> bool {
        let Ok(resource) = &self.resource else {
            return false;
        };
        crate::uri::parse_uri(resource.as_str()).is_ok_and(|server| {
            crate::address::may_follow(server.host, url, self.config.allow_private_addresses)
        })
    }

    /// What to do next.
    pub fn poll_action(&self) -> Action {
        match &self.state {
            State::Idle => Action::Idle,
            State::Failed(e) => Action::Failed(e.clone()),
            State::Authorized { tokens } => Action::Authorized(tokens.clone()),
            State::AwaitingRedirect { url, .. } => Action::OpenBrowser(url.clone()),
            _ => self
                .outgoing
                .clone()
                .map_or(Action::Failed(ClientError::UnexpectedInput), Action::Send),
        }
    }

    /// The `Authorization` header value to send to `url`, if we hold a token for it: only a
    /// token obtained for exactly that server's canonical URI is ever sent, in the header.
    // spec: CLI-1, CLI-3, CLI-4, CLI-5, RT-10
    pub fn authorization_for(&self, url: &str) -> Option<String> {
        let State::Authorized { tokens } = &self.state else {
            return None;
        };
        let target = ResourceUri::parse(url, self.config.http_policy).ok()?;
        (mutated!(self.config, skip_token_target_check) || target.as_str() == tokens.resource)
            .then(|| format!("Bearer {}", tokens.access_token))
    }

    /// The MCP server answered 401: start (or restart) discovery from its challenge.
    // spec: DISC-1, DISC-2, PRM-8, DISC-10, DCR-10, AZ-5, GEN-6, DISC-11
    pub fn handle_unauthorized<'a>(&mut self, www_authenticate: impl IntoIterator<Item = &'a str>) {
        if let Err(e) = self.preflight() {
            return self.fail(e);
        }
        let Some(challenge) = parse_bearer(www_authenticate) else {
            return self.fail(ClientError::BadChallenge);
        };
        self.rediscover(&challenge);
    }

    /// Start discovery from a 401's challenge, for the configured scope, else the
    /// challenge's.
    fn rediscover(&mut self, challenge: &BearerChallenge) {
        let scope = self
            .config
            .scope
            .clone()
            .or_else(|| challenged_scope(challenge));
        self.discover(challenge, scope);
    }

    /// What discovery needs before it starts: a valid resource, and a redirect URI the AS
    /// can accept (it is registered and sent to the AS: never one it must refuse).
    // spec: RES-9, DCR-10, CIMD-2
    fn preflight(&self) -> Result<ResourceUri, ClientError> {
        let resource = self.resource.clone()?;
        if RedirectUri::parse(&self.config.redirect_uri).is_err() {
            return Err(ClientError::BadRedirectUri);
        }
        if let Some(url) = &self.config.client_metadata_url
            && !client_metadata_url_allowed(url, self.transport_policy())
        {
            return Err(ClientError::BadClientMetadataUrl);
        }
        Ok(resource)
    }

    /// Start discovery from a parsed challenge, for `scope` (`None`: what PRM lists, else
    /// none). The tokens held until now are dropped.
    // spec: DISC-1, DISC-2, PRM-8, DISC-10, GEN-6, DISC-11
    fn discover(&mut self, challenge: &BearerChallenge, scope: Option<ScopeSet>) {
        let resource = match self.preflight() {
            Ok(r) => r,
            Err(e) => return self.fail(e),
        };
        let candidates = match challenge.resource_metadata.clone() {
            // A metadata URL is fetched only over https (or loopback http under the policy),
            // and never from a host the server may not send us to.
            Some(url) if !endpoint_ok(&url, self.transport_policy()) => {
                return self.fail(ClientError::BadChallenge);
            }
            Some(url) if !self.may_follow(&url) => {
                return self.fail(ClientError::ForbiddenAddress { url });
            }
            Some(url) => vec![url],
            None => {
                let mut c: Vec<String> = [
                    well_known_insert(resource.as_str(), PRM_SUFFIX),
                    well_known_root(resource.as_str(), PRM_SUFFIX),
                ]
                .into_iter()
                .flatten()
                .collect();
                c.dedup();
                c
            }
        };
        self.state = State::AwaitingResourceMetadata { candidates, scope };
        self.next_candidate();
    }

    /// Start a refresh (the access token expired or was refused).
    // spec: RES-2, RT-10, ERR-10
    pub fn start_refresh(&mut self) {
        self.refresh(None);
    }

    /// Start a refresh; `fallback` is the challenge to discover again from if the AS refuses.
    fn refresh(&mut self, fallback: Option<BearerChallenge>) {
        let State::Authorized { tokens } = &self.state else {
            return self.fail(ClientError::UnexpectedInput);
        };
        let Some(refresh) = tokens.refresh_token.clone() else {
            return self.fail(ClientError::UnexpectedInput);
        };
        let pairs = [
            ("grant_type", "refresh_token"),
            ("refresh_token", refresh.as_str()),
            (
                "resource",
                tokens
                    .resource_indicator
                    .as_deref()
                    .unwrap_or(&tokens.resource),
            ),
        ];
        let request = token_request(&tokens.token_endpoint, &pairs, &tokens.registration());
        self.outgoing = Some(request.clone());
        self.state = State::AwaitingRefresh {
            tokens: tokens.clone(),
            request,
            fallback,
        };
    }

    /// Feed the answer to the last [`Action::Send`].
    pub fn handle_response(
        &mut self,
        now: UnixTime,
        entropy: &mut impl Entropy,
        response: &HttpResponse,
    ) {
        if self.outgoing.take().is_none() {
            return self.fail(ClientError::UnexpectedInput);
        }
        let state = std::mem::replace(&mut self.state, State::Failed(ClientError::UnexpectedInput));
        match state {
            State::AwaitingResourceMetadata { candidates, scope } => {
                self.on_resource_metadata(response, candidates, scope)
            }
            State::AwaitingServerMetadata {
                resource,
                indicator,
                issuer,
                candidates,
                scope,
            } => {
                self.on_server_metadata(
                    entropy,
                    response,
                    (resource, indicator),
                    issuer,
                    candidates,
                    scope,
                );
            }
            State::AwaitingRegistration { flow } => self.on_registration(entropy, response, flow),
            State::AwaitingToken { flow, reg, .. } => self.on_token(now, response, &flow, &reg),
            State::AwaitingRefresh {
                tokens, fallback, ..
            } => self.on_refresh(now, response, tokens, fallback),
            other => {
                self.state = other;
                self.fail(ClientError::UnexpectedInput);
            }
        }
    }

    /// Feed the query string of the redirect to our redirect URI. A callback whose `state` is
    /// not ours is discarded (an error is returned and the flow keeps waiting); any other
    /// problem ends the flow.
    // spec: AZ-11, AZ-12, AZ-18, AZ-20, SEC-12, SEC-13
    pub fn handle_redirect(&mut self, query: &str) -> Result<(), ClientError> {
        let State::AwaitingRedirect { state, .. } = &self.state else {
            return Err(ClientError::UnexpectedInput);
        };
        let params = Params::decode(query.as_bytes()).map_err(|_| ClientError::StateMismatch)?;
        let given = params.one("state").ok().flatten();
        if !mutated!(self.config, skip_state_check)
            && !given.is_some_and(|g| {
                subtle::ConstantTimeEq::ct_eq(g.as_bytes(), state.as_bytes()).into()
            })
        {
            return Err(ClientError::StateMismatch);
        }
        let State::AwaitingRedirect {
            flow,
            reg,
            verifier,
            ..
        } = std::mem::replace(&mut self.state, State::Idle)
        else {
            return Err(ClientError::UnexpectedInput);
        };
        // RFC 9207: compare iss before looking at anything else in the response.
        let iss = params.one("iss").map_err(|_| ClientError::BadCallback);
        let advertised = flow.metadata.authorization_response_iss_parameter_supported;
        match iss {
            Ok(Some(iss)) if iss == flow.issuer.as_str() => {}
            Ok(None) if !advertised => {}
            _ if mutated!(self.config, skip_iss_check) => {}
            _ => {
                self.fail(ClientError::IssuerResponseMismatch);
                return Err(ClientError::IssuerResponseMismatch);
            }
        }
        if let Ok(Some(error)) = params.one("error") {
            let e = ClientError::AuthorizationDenied {
                error: error.to_owned(),
            };
            self.fail(e.clone());
            return Err(e);
        }
        let Ok(Some(code)) = params.one("code") else {
            self.fail(ClientError::BadCallback);
            return Err(ClientError::BadCallback);
        };
        let Some(token_endpoint) = flow.metadata.token_endpoint.clone() else {
            self.fail(ClientError::BadServerMetadata);
            return Err(ClientError::BadServerMetadata);
        };
        let pairs = [
            ("grant_type", "authorization_code"),
            ("code", code),
            ("redirect_uri", self.config.redirect_uri.as_str()),
            ("code_verifier", verifier.as_str()),
            ("resource", flow.resource_indicator()),
        ];
        // spec: TOK-1, PKCE-1, RES-2, AZ-20
        let request = token_request(&token_endpoint, &pairs, &reg);
        self.outgoing = Some(request.clone());
        self.state = State::AwaitingToken { flow, reg, request };
        Ok(())
    }

    // ---- transitions ------------------------------------------------------------------------

    fn fail(&mut self, error: ClientError) {
        self.outgoing = None;
        // The MCP request that led here is over.
        self.retries = mcp::Retries::default();
        self.state = State::Failed(error);
    }

    fn get(&mut self, url: String) {
        self.outgoing =
            Some(HttpRequest::new(Method::Get, url).header("accept", "application/json"));
    }

    /// Issue the GET for the first remaining candidate of a discovery state.
    // spec: DISC-3, DISC-9
    fn next_candidate(&mut self) {
        let url = match &mut self.state {
            State::AwaitingResourceMetadata { candidates, .. }
            | State::AwaitingServerMetadata { candidates, .. } => {
                if candidates.is_empty() {
                    None
                } else {
                    Some(candidates.remove(0))
                }
            }
            _ => None,
        };
        match (url, &self.state) {
            (Some(url), _) => self.get(url),
            (None, State::AwaitingResourceMetadata { .. }) => {
                self.fail(ClientError::NoResourceMetadata)
            }
            (None, _) => self.fail(ClientError::NoServerMetadata),
        }
    }

    // spec: DISC-4, DISC-5, DISC-6, PRM-2, RES-4, DISC-11
    fn on_resource_metadata(
        &mut self,
        response: &HttpResponse,
        candidates: Vec<String>,
        scope: Option<ScopeSet>,
    ) {
        if response.status != 200 {
            self.state = State::AwaitingResourceMetadata { candidates, scope };
            return self.next_candidate();
        }
        let Some(prm) = parse_json::<ProtectedResourceMetadata>(response) else {
            return self.fail(ClientError::BadResourceMetadata);
        };
        let Ok(resource) = self.resource.clone() else {
            return self.fail(ClientError::BadServerUrl);
        };
        // RFC 9728 §3.3: identical to the resource we asked about (our canonical form, or the
        // URL exactly as configured).
        let mut indicator = None;
        if !mutated!(self.config, skip_prm_resource_check)
            && prm.resource != resource.as_str()
            && prm.resource != self.config.server_url
        {
            // spec: PF-22
            if !(self.config.accept_prm_resource_prefix
                && resource_prefix(&prm.resource, &resource, self.config.http_policy))
            {
                return self.fail(ClientError::ResourceMismatch { got: prm.resource });
            }
            indicator = Some(prm.resource.clone());
        }
        let policy = self.transport_policy();
        let mut forbidden = None;
        let Some(issuer) = prm.authorization_servers.iter().find_map(|s| {
            let issuer = Issuer::parse(s, policy).ok()?;
            if self.may_follow(issuer.as_str()) {
                Some(issuer)
            } else {
                forbidden.get_or_insert_with(|| s.clone());
                None
            }
        }) else {
            return self.fail(forbidden.map_or(ClientError::NoAuthorizationServer, |url| {
                ClientError::ForbiddenAddress { url }
            }));
        };
        // From now on this is the resource's authorization server (a TokenStore drops the
        // credentials of any other for it).
        self.issuer = Some(issuer.as_str().to_owned());
        let scope = scope.or_else(|| {
            // 2025-11-25 scope selection: without a challenged scope, what PRM lists.
            (!prm.scopes_supported.is_empty())
                .then(|| ScopeSet::from_tokens(prm.scopes_supported.iter().cloned()))
        });
        let mut candidates: Vec<String> = [
            well_known_insert(issuer.as_str(), ASM_SUFFIX),
            well_known_insert(issuer.as_str(), OIDC_SUFFIX),
            well_known_append(issuer.as_str(), OIDC_SUFFIX),
        ]
        .into_iter()
        .flatten()
        .collect();
        candidates.dedup();
        self.state = State::AwaitingServerMetadata {
            resource,
            indicator,
            issuer,
            candidates,
            scope,
        };
        self.next_candidate();
    }

    // spec: DISC-7, DISC-8, PKCE-11, GEN-6, RES-8, DISC-11
    fn on_server_metadata(
        &mut self,
        entropy: &mut impl Entropy,
        response: &HttpResponse,
        (resource, indicator): (ResourceUri, Option<String>),
        issuer: Issuer,
        candidates: Vec<String>,
        scope: Option<ScopeSet>,
    ) {
        if response.status != 200 {
            self.state = State::AwaitingServerMetadata {
                resource,
                indicator,
                issuer,
                candidates,
                scope,
            };
            return self.next_candidate();
        }
        let Some(metadata) = parse_json::<AuthorizationServerMetadata>(response) else {
            return self.fail(ClientError::NoServerMetadata);
        };
        if metadata.issuer != issuer.as_str() {
            return self.fail(ClientError::IssuerMismatch {
                got: metadata.issuer,
            });
        }
        let policy = self.transport_policy();
        let endpoints_ok = [&metadata.authorization_endpoint, &metadata.token_endpoint]
            .iter()
            .all(|e| e.as_deref().is_some_and(|u| endpoint_ok(u, policy)))
            && metadata
                .registration_endpoint
                .as_deref()
                .is_none_or(|u| endpoint_ok(u, policy));
        if !endpoints_ok {
            return self.fail(ClientError::BadServerMetadata);
        }
        let endpoints = [
            &metadata.authorization_endpoint,
            &metadata.token_endpoint,
            &metadata.registration_endpoint,
        ];
        if let Some(url) = endpoints
            .into_iter()
            .flatten()
            .find(|u| !self.may_follow(u))
        {
            return self.fail(ClientError::ForbiddenAddress { url: url.clone() });
        }
        let methods = &metadata.code_challenge_methods_supported;
        let pkce_ok = methods.iter().any(|m| m == S256)
            || (methods.is_empty() && self.config.allow_missing_pkce_metadata);
        if !pkce_ok {
            return self.fail(ClientError::PkceUnsupported);
        }
        let scope = with_offline_access(scope, self.config.revision, &metadata);
        let flow = Discovered {
            resource,
            indicator,
            issuer,
            metadata,
            scope,
        };
        match self.config.preregistered.clone() {
            Some((client_id, client_secret)) => {
                // spec: CLI-9
                match &self.preregistered_issuer {
                    Some(bound) if bound != flow.issuer.as_str() => {
                        let error = ClientError::CredentialsForAnotherIssuer {
                            credentials: bound.clone(),
                            named: flow.issuer.as_str().to_owned(),
                        };
                        return self.fail(error);
                    }
                    Some(_) => {}
                    None if self.config.revision.credentials_bound_to_issuer() => {
                        self.preregistered_issuer = Some(flow.issuer.as_str().to_owned());
                    }
                    None => {}
                }
                // A pre-registered secret goes by HTTP Basic (the default method, RFC 7591
                // §2) unless the AS advertises only client_secret_post.
                let methods = &flow.metadata.token_endpoint_auth_methods_supported;
                let secret_post = methods.iter().any(|m| m == "client_secret_post")
                    && !methods.iter().any(|m| m == "client_secret_basic");
                let reg = Registration {
                    client_id,
                    client_secret,
                    secret_post,
                };
                self.authorize(entropy, flow, reg);
            }
            // spec: CIMD-1
            None => match self.config.client_metadata_url.clone() {
                Some(url)
                    if self.config.revision.client_id_metadata_documents()
                        && flow.metadata.client_id_metadata_document_supported =>
                {
                    // The URL is the client id; no registration request, no secret.
                    let reg = Registration {
                        client_id: url,
                        client_secret: None,
                        secret_post: false,
                    };
                    self.authorize(entropy, flow, reg);
                }
                _ => self.register(flow),
            },
        }
    }

    // spec: DCR-2, DCR-4, DCR-5, DCR-10, CLI-7, DCR-12
    fn register(&mut self, flow: Discovered) {
        let Some(endpoint) = flow.metadata.registration_endpoint.clone() else {
            return self.fail(ClientError::NoRegistration);
        };
        let metadata = ClientMetadata {
            redirect_uris: vec![self.config.redirect_uri.clone()],
            token_endpoint_auth_method: Some("none".into()),
            grant_types: Some(vec!["authorization_code".into(), "refresh_token".into()]),
            response_types: Some(vec!["code".into()]),
            client_name: Some(self.config.client_name.clone()),
            scope: flow.scope.as_ref().and_then(ScopeSet::to_option),
            application_type: self
                .config
                .revision
                .dcr_application_type()
                .then(|| application_type(&self.config.redirect_uri).to_owned()),
            ..Default::default()
        };
        let body = serde_json::to_vec(&metadata).unwrap_or_default();
        self.outgoing = Some(
            HttpRequest::new(Method::Post, endpoint)
                .header("content-type", "application/json")
                .header("accept", "application/json")
                .body(body),
        );
        self.state = State::AwaitingRegistration { flow };
    }

    fn on_registration(
        &mut self,
        entropy: &mut impl Entropy,
        response: &HttpResponse,
        flow: Discovered,
    ) {
        if response.status != 201 && response.status != 200 {
            return self.fail(registration_error(response));
        }
        let Some(reg) = parse_json::<RegistrationResponse>(response) else {
            return self.fail(ClientError::RegistrationFailed {
                status: response.status,
            });
        };
        // Authenticate as the AS registered us (RFC 7591 §3.2.1 echoes the method).
        let secret_post =
            reg.metadata.token_endpoint_auth_method.as_deref() == Some("client_secret_post");
        self.authorize(
            entropy,
            flow,
            Registration {
                client_id: reg.client_id.0,
                client_secret: reg.client_secret,
                secret_post,
            },
        );
    }

    /// Build the authorization URL: PKCE S256, a fresh state, the resource and the scope.
    // spec: AZ-1, AZ-5, AZ-6, AZ-13, PKCE-1, PKCE-2, PKCE-3, PKCE-5, RES-2, RES-8, AZ-23
    fn authorize(&mut self, entropy: &mut impl Entropy, flow: Discovered, reg: Registration) {
        let verifier = CodeVerifier::generate(entropy);
        let state = mint(entropy);
        let challenge = verifier.challenge();
        let scope = flow.scope.as_ref().and_then(ScopeSet::to_option);
        let mut pairs = vec![
            ("response_type", "code"),
            ("client_id", reg.client_id.as_str()),
            ("redirect_uri", self.config.redirect_uri.as_str()),
            ("state", state.as_str()),
            ("code_challenge", challenge.as_str()),
            ("code_challenge_method", S256),
            ("resource", flow.resource_indicator()),
        ];
        if let Some(s) = &scope {
            pairs.push(("scope", s));
        }
        let query = form::encode(pairs);
        let endpoint = flow
            .metadata
            .authorization_endpoint
            .clone()
            .unwrap_or_default();
        let url = match RedirectUri::parse(&endpoint) {
            Ok(u) => u.with_query(&query),
            Err(_) if endpoint.contains('?') => format!("{endpoint}&{query}"),
            Err(_) => format!("{endpoint}?{query}"),
        };
        self.outgoing = None;
        self.state = State::AwaitingRedirect {
            flow,
            reg,
            verifier,
            state,
            url,
        };
    }

    // spec: TOK-11, TOK-13
    fn on_token(
        &mut self,
        now: UnixTime,
        response: &HttpResponse,
        flow: &Discovered,
        reg: &Registration,
    ) {
        let Some(token) = self.token_response(response) else {
            return;
        };
        let tokens = Tokens {
            issuer: flow.issuer.as_str().to_owned(),
            token_endpoint: flow.metadata.token_endpoint.clone().unwrap_or_default(),
            resource: flow.resource.as_str().to_owned(),
            resource_indicator: flow.indicator.clone(),
            client_id: reg.client_id.clone(),
            client_secret: reg.client_secret.clone(),
            client_secret_post: reg.secret_post,
            expires_at: token.expires_in.map(|s| now.plus(s).as_secs()),
            access_token: token.access_token,
            refresh_token: token.refresh_token,
            // Omitted when identical to the scope requested (OAuth 2.1 §3.2.3): what a
            // step-up adds to.
            scope: token
                .scope
                .or_else(|| flow.scope.as_ref().and_then(ScopeSet::to_option)),
            // Taken only if it passes the checks of the other endpoints.
            revocation_endpoint: flow
                .metadata
                .revocation_endpoint
                .clone()
                .filter(|u| endpoint_ok(u, self.transport_policy()) && self.may_follow(u)),
        };
        self.state = State::Authorized { tokens };
    }

    /// A refresh answered. Refused, and started by a 401 of the MCP server: authorize again
    /// from that 401's challenge when one more authorization is allowed.
    // spec: RT-7, ERR-10
    fn on_refresh(
        &mut self,
        now: UnixTime,
        response: &HttpResponse,
        old: Tokens,
        fallback: Option<BearerChallenge>,
    ) {
        let retries = self.retries.clone();
        let Some(token) = self.token_response(response) else {
            if let Some(challenge) = fallback
                && retries.reauthorized < self.config.reauthorize
            {
                self.retries = mcp::Retries {
                    reauthorized: retries.reauthorized + 1,
                    ..retries
                };
                self.rediscover(&challenge);
            }
            return;
        };
        let tokens = Tokens {
            expires_at: token.expires_in.map(|s| now.plus(s).as_secs()),
            access_token: token.access_token,
            refresh_token: token.refresh_token.or(old.refresh_token.clone()),
            scope: token.scope.or(old.scope.clone()),
            ..old
        };
        self.state = State::Authorized { tokens };
    }

    // spec: TOK-13, CLI-1, SEC-12
    fn token_response(&mut self, response: &HttpResponse) -> Option<TokenResponse> {
        if response.status != 200 {
            #[derive(Deserialize)]
            struct ErrorBody {
                error: Option<String>,
            }
            let error = parse_json::<ErrorBody>(response).and_then(|b| b.error);
            self.fail(ClientError::TokenRejected {
                status: response.status,
                error,
            });
            return None;
        }
        match parse_json::<TokenResponse>(response) {
            Some(t)
                if t.token_type.eq_ignore_ascii_case("bearer") && is_b64token(&t.access_token) =>
            {
                Some(t)
            }
            _ => {
                self.fail(ClientError::BadTokenResponse);
                None
            }
        }
    }
}

/// Whether the PRM `published` resource is a prefix of our canonical `resource` that
/// [`ClientConfig::accept_prm_resource_prefix`] accepts: a valid resource URI of the same
/// origin, without query, whose path is empty, `/`, or a parent of ours at a `/` boundary.
// spec: PF-22
fn resource_prefix(published: &str, resource: &ResourceUri, policy: HttpPolicy) -> bool {
    let Ok(published) = ResourceUri::parse(published, policy) else {
        return false;
    };
    let (Ok(p), Ok(r)) = (
        crate::uri::parse_uri(published.as_str()),
        crate::uri::parse_uri(resource.as_str()),
    ) else {
        return false;
    };
    let parent = p.path.trim_end_matches('/');
    p.origin() == r.origin()
        && p.query.is_none()
        && (parent.is_empty()
            || r.path == parent
            || r.path
                .strip_prefix(parent)
                .is_some_and(|rest| rest.starts_with('/')))
}

/// The scope `offline_access` asks the AS for a refresh token with (OpenID Connect Core
/// §11; SEP-2207).
pub const OFFLINE_ACCESS: &str = "offline_access";

/// The scope to request from an AS with `metadata`: from 2026-07-28
/// ([`crate::Revision::offline_access`]), `scope` and `offline_access` when the AS lists it in
/// `scopes_supported` and some scope is requested at all (a request without scope is left
/// to the AS's default, which `offline_access` alone would replace). The client never counts
/// on the refresh token: a token response without one is used as it is.
// spec: RT-18
fn with_offline_access(
    scope: Option<ScopeSet>,
    revision: crate::Revision,
    metadata: &AuthorizationServerMetadata,
) -> Option<ScopeSet> {
    match scope {
        Some(s)
            if revision.offline_access()
                && !s.is_empty()
                && !s.contains(OFFLINE_ACCESS)
                && metadata
                    .scopes_supported
                    .iter()
                    .any(|x| x == OFFLINE_ACCESS) =>
        {
            Some(ScopeSet::from_tokens(
                s.iter().chain([OFFLINE_ACCESS]).map(str::to_owned),
            ))
        }
        other => other,
    }
}

/// Whether `url` can be a Client ID Metadata Document URL (a `client_id`): https, a host, a
/// path other than `/`, no fragment, no user information, no dot segments, and at most
/// [`CLIENT_ID_LEN_MAX`] bytes.
// spec: CIMD-2
pub fn client_metadata_url_ok(url: &str) -> bool {
    url.len() <= CLIENT_ID_LEN_MAX
        && crate::uri::parse_uri(url).is_ok_and(|u| {
            u.scheme == "https"
                && !u.host.is_empty()
                && u.fragment.is_none()
                && !url["https://".len()..]
                    .split(['/', '?'])
                    .next()
                    .unwrap_or("")
                    .contains('@')
                && u.path.len() > 1
                && u.path.starts_with('/')
                && !u.path.split('/').any(|seg| seg == "." || seg == "..")
        })
}

/// [`client_metadata_url_ok`], or, under [`HttpPolicy::AllowLoopbackHttp`] (the development
/// switch of spec [PF-8](crate::requirements#PF-8), which the client applies only when the MCP
/// server itself is loopback http), the same URL with `http` on a loopback host: a document
/// served on the developer's machine to an AS whose own switch
/// (`AsConfig::cimd_allow_loopback`) lets it fetch from there.
// spec: CIMD-2, PF-8
pub fn client_metadata_url_allowed(url: &str, policy: HttpPolicy) -> bool {
    if client_metadata_url_ok(url) {
        return true;
    }
    policy == HttpPolicy::AllowLoopbackHttp
        && url.len() <= CLIENT_ID_LEN_MAX
        && url
            .get(..7)
            .is_some_and(|s| s.eq_ignore_ascii_case("http://"))
        && endpoint_ok(url, policy)
        && client_metadata_url_ok(&format!("https://{}", &url[7..]))
}

/// The longest Client ID Metadata Document URL the client accepts as its `client_id`.
pub const CLIENT_ID_LEN_MAX: usize = 2048;

/// The `application_type` of a client whose redirect URI is `redirect_uri` (OpenID Connect
/// Dynamic Client Registration §2, as MCP 2026-07-28 asks of DCR): `native` for a loopback
/// redirect URI (RFC 8252 §7.3, a listener on the user's machine), `web` otherwise.
// spec: DCR-12
pub fn application_type(redirect_uri: &str) -> &'static str {
    let native = crate::uri::parse_uri(redirect_uri).is_ok_and(|u| {
        u.scheme.eq_ignore_ascii_case("http") && crate::uri::is_loopback_host(u.host)
    });
    if native { "native" } else { "web" }
}

/// Why a registration answered `response` (not 200/201) failed: the AS's RFC 7591 §3.2.2
/// error when a 4xx carries one (e.g. `invalid_redirect_uri`), else the status alone.
// spec: DCR-4, DCR-13
fn registration_error(response: &HttpResponse) -> ClientError {
    #[derive(Deserialize)]
    struct ErrorBody {
        error: String,
        error_description: Option<String>,
    }
    match parse_json::<ErrorBody>(response) {
        Some(body)
            if (400..500).contains(&response.status)
                && !body.error.is_empty()
                && body.error.len() <= ERROR_LEN_MAX
                && body.error.bytes().all(|b| (0x20..0x7f).contains(&b)) =>
        {
            ClientError::RegistrationRefused {
                status: response.status,
                error: body.error,
                description: body.error_description.map(|d| {
                    d.chars()
                        .filter(|c| !c.is_control())
                        .take(ERROR_LEN_MAX)
                        .collect()
                }),
            }
        }
        _ => ClientError::RegistrationFailed {
            status: response.status,
        },
    }
}

/// The longest `error` / `error_description` of an AS kept in a [`ClientError`] (longer codes
/// are not RFC 6749 error codes; descriptions are cut).
const ERROR_LEN_MAX: usize = 256;

/// The Bearer challenge of a response's `WWW-Authenticate` values (an empty one if there is
/// no Bearer challenge); `None` if they do not parse.
// spec: DISC-2
fn parse_bearer<'a>(
    www_authenticate: impl IntoIterator<Item = &'a str>,
) -> Option<BearerChallenge> {
    parse_www_authenticate(www_authenticate)
        .and_then(|c| BearerChallenge::from_challenges(&c))
        .ok()
        .map(Option::unwrap_or_default)
}

/// The challenge's `scope`, if it is a valid scope string.
fn challenged_scope(challenge: &BearerChallenge) -> Option<ScopeSet> {
    challenge
        .scope
        .as_deref()
        .and_then(|s| ScopeSet::parse(s).ok())
}

/// RFC 6750 §2.1 `b64token = 1*( ALPHA / DIGIT / "-" / "." / "_" / "~" / "+" / "/" ) *"="`:
/// what can be sent as `Authorization: Bearer` (no space, no CR/LF to smuggle into the header).
fn is_b64token(token: &str) -> bool {
    let body = token.trim_end_matches('=');
    !body.is_empty()
        && body.bytes().all(|b| {
            b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~' | b'+' | b'/')
        })
}

fn endpoint_ok(url: &str, policy: HttpPolicy) -> bool {
    crate::uri::parse_uri(url).is_ok_and(|p| {
        p.fragment.is_none()
            && (p.scheme.eq_ignore_ascii_case("https")
                || (policy == HttpPolicy::AllowLoopbackHttp
                    && p.scheme.eq_ignore_ascii_case("http")
                    && crate::uri::is_loopback_host(p.host)))
    })
}

fn parse_json<T: serde::de::DeserializeOwned>(response: &HttpResponse) -> Option<T> {
    if response.body.len() > DOCUMENT_LEN_MAX {
        return None;
    }
    serde_json::from_slice(&response.body).ok()
}

/// A token request: form body; a confidential client authenticates as registered (HTTP
/// Basic, or `client_secret_post` in the body).
// spec: TOK-1, TOK-3, RT-11
fn token_request(endpoint: &str, pairs: &[(&str, &str)], reg: &Registration) -> HttpRequest {
    let mut pairs = pairs.to_vec();
    match (&reg.client_secret, reg.secret_post) {
        // Public client: identifies with client_id.
        (None, _) => pairs.push(("client_id", reg.client_id.as_str())),
        (Some(secret), true) => {
            pairs.push(("client_id", reg.client_id.as_str()));
            pairs.push(("client_secret", secret.as_str()));
        }
        (Some(_), false) => {}
    }
    let mut request = HttpRequest::new(Method::Post, endpoint)
        .header("content-type", "application/x-www-form-urlencoded")
        .header("accept", "application/json")
        .body(form::encode(pairs));
    if let (Some(secret), false) = (&reg.client_secret, reg.secret_post) {
        request = request.header(
            "authorization",
            form::basic_authorization(&reg.client_id, secret),
        );
    }
    request
}
