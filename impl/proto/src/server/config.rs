//! The authorization server's configuration: lifetimes, bounds, rate limits, the resources it
//! issues tokens for, and the endpoint paths below the issuer.

use std::collections::BTreeMap;

use crate::types::{ScopeSet, SecretDigest};
use crate::uri::{HttpPolicy, Issuer, ResourceUri};

/// Lifetimes, in seconds.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Lifetimes {
    /// Authorization code: at most 600 s (OAuth 2.1 §4.1.2); default 60 s.
    pub code: u64,
    /// Access token; default 300 s ([`ACCESS_TOKEN_LIFETIME_DEFAULT`]). Short, because a
    /// resource server that only validates the JWT accepts a token of a revoked grant until
    /// its `exp` ([PF-7](crate::requirements#PF-7)); one that introspects (RFC 7662) stops sooner.
    pub access_token: u64,
    /// Refresh token inactivity limit; default 14 days.
    pub refresh_idle: u64,
    /// Refresh grant absolute limit; default 90 days.
    pub refresh_absolute: u64,
    /// A pending consent; default 600 s.
    pub consent: u64,
    /// A browser session without requests; default 30 min.
    pub session_idle: u64,
    /// A browser session at most; default 12 h.
    pub session_absolute: u64,
    /// The window in which failed logins count toward the limits; default 15 min.
    pub login_window: u64,
    /// A registered client that has redeemed no code for this long may be forgotten when the
    /// client table is full; default 1 h.
    pub unused_client: u64,
}

/// The default access-token lifetime in seconds: five minutes.
pub const ACCESS_TOKEN_LIFETIME_DEFAULT: u64 = 300;

impl Default for Lifetimes {
    fn default() -> Self {
        Self {
            code: 60,
            access_token: ACCESS_TOKEN_LIFETIME_DEFAULT,
            refresh_idle: 14 * 24 * 3600,
            refresh_absolute: 90 * 24 * 3600,
            consent: 600,
            session_idle: 30 * 60,
            session_absolute: 12 * 3600,
            login_window: 15 * 60,
            unused_client: 3600,
        }
    }
}

/// Bounds on every table and input (TigerBeetle: put a limit on everything).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Limits {
    /// Registered clients.
    pub clients: usize,
    /// Pending consents.
    pub pending: usize,
    /// Codes remembered (issued or redeemed).
    pub codes: usize,
    /// Refresh grants.
    pub grants: usize,
    /// Redirect URIs per client.
    pub redirect_uris: usize,
    /// Length of a `state` value.
    pub state_len: usize,
    /// Browser sessions.
    pub sessions: usize,
    /// Failed logins per username within [`Lifetimes::login_window`] before further
    /// attempts are refused.
    pub login_failures_per_user: u32,
    /// Failed logins per peer address within [`Lifetimes::login_window`].
    pub login_failures_per_address: u32,
    /// Usernames and addresses with failed logins remembered.
    pub throttle: usize,
    /// Pending authorizations per client.
    pub pending_per_client: usize,
    /// Pending authorizations per peer address.
    pub pending_per_address: usize,
    /// Grants per client.
    pub grants_per_client: usize,
    /// Requests per peer address and minute, per endpoint (`0`: no limit).
    pub rates: RateLimits,
    /// (endpoint, address) rate counters remembered.
    pub rate_entries: usize,
}

/// Requests per peer address and minute at each endpoint anyone can call ([SEC-17](crate::requirements#SEC-17)).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct RateLimits {
    /// `POST /register`; default 30.
    pub register: u32,
    /// `GET /authorize`; default 120.
    pub authorize: u32,
    /// `POST /token`; default 300.
    pub token: u32,
}

impl Default for RateLimits {
    fn default() -> Self {
        Self {
            register: 30,
            authorize: 120,
            token: 300,
        }
    }
}

/// An endpoint whose requests are counted per address.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum RateRoute {
    /// Registration.
    Register,
    /// The authorization endpoint.
    Authorize,
    /// The token endpoint.
    Token,
}

/// The window of [`RateLimits`], in seconds.
pub const RATE_WINDOW: u64 = 60;

impl Default for Limits {
    fn default() -> Self {
        Self {
            clients: 10_000,
            pending: 10_000,
            codes: 10_000,
            grants: 100_000,
            redirect_uris: 8,
            state_len: 1024,
            sessions: 10_000,
            login_failures_per_user: 5,
            login_failures_per_address: 20,
            throttle: 10_000,
            pending_per_client: 32,
            pending_per_address: 64,
            grants_per_client: 1_000,
            rates: RateLimits::default(),
            rate_entries: 10_000,
        }
    }
}

/// The authorization server's configuration.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct AsConfig {
    /// The issuer identifier; every endpoint URL is this plus a path.
    pub issuer: Issuer,
    /// Resources this server issues tokens for (canonical URIs), each with the scopes it knows.
    pub resources: BTreeMap<ResourceUri, ScopeSet>,
    /// Scopes granted when the request names none.
    pub default_scopes: ScopeSet,
    /// Issue refresh tokens to clients registered for the `refresh_token` grant.
    pub refresh_tokens: bool,
    /// Lifetimes.
    pub lifetimes: Lifetimes,
    /// Bounds.
    pub limits: Limits,
    /// Whether http loopback URLs are acceptable as `resource` (spec [PF-8](crate::requirements#PF-8)).
    pub http_policy: HttpPolicy,
    /// The server's name on its pages.
    pub name: String,
    /// A one-line description of each scope, shown on the consent page.
    pub scope_descriptions: BTreeMap<String, String>,
    /// Resource servers that may call the introspection endpoint (RFC 7662 §2.1): for each
    /// resource, the digest of the secret its server presents with HTTP Basic, the resource
    /// URI as the user name. A resource server learns about the tokens of its own audience
    /// only. Empty by default (then only clients introspect, their own tokens).
    pub resource_credentials: BTreeMap<ResourceUri, SecretDigest>,
    /// Accept Client ID Metadata Documents (MCP 2025-11-25, SEP-991): an https `client_id`
    /// URL whose document the server fetches, and `client_id_metadata_document_supported` in
    /// the metadata. On when the server is configured for a revision that has them
    /// ([`Revision::client_id_metadata_documents`](crate::Revision::client_id_metadata_documents)); off by default.
    pub client_id_metadata_documents: bool,
    /// Development switch: client ID URLs and their documents may be on loopback hosts (and
    /// plain http there). Off by default; for tests over loopback only (spec
    /// [CIMD-4](crate::requirements#CIMD-4)). Private-network and link-local hosts stay refused.
    pub cimd_allow_loopback: bool,
    /// Bounds on fetching and caching client metadata documents.
    pub cimd: super::CimdLimits,
    /// Defenses turned off, for the model checker only (cfg `mcp_auth_mutations`).
    #[cfg(mcp_auth_mutations)]
    pub mutations: crate::mutations::Mutations,
}

/// Endpoint paths below the issuer.
pub mod paths {
    /// Authorization endpoint.
    pub const AUTHORIZE: &str = "/authorize";
    /// Consent form target.
    pub const CONSENT: &str = "/consent";
    /// Token endpoint.
    pub const TOKEN: &str = "/token";
    /// Registration endpoint.
    pub const REGISTER: &str = "/register";
    /// JWK Set.
    pub const JWKS: &str = "/jwks";
    /// Login form target.
    pub const LOGIN: &str = "/login";
    /// Logout form target ("not you?").
    pub const LOGOUT: &str = "/logout";
    /// Token revocation (RFC 7009).
    pub const REVOKE: &str = "/revoke";
    /// Token introspection (RFC 7662).
    pub const INTROSPECT: &str = "/introspect";
}

impl AsConfig {
    /// A configuration with defaults for everything but the issuer and its resources.
    pub fn new(
        issuer: Issuer,
        resources: impl IntoIterator<Item = (ResourceUri, ScopeSet)>,
    ) -> Self {
        Self {
            issuer,
            resources: resources.into_iter().collect(),
            default_scopes: ScopeSet::default(),
            refresh_tokens: true,
            lifetimes: Lifetimes::default(),
            limits: Limits::default(),
            http_policy: HttpPolicy::HttpsOnly,
            name: "mcp-auth".into(),
            scope_descriptions: BTreeMap::new(),
            resource_credentials: BTreeMap::new(),
            client_id_metadata_documents: false,
            cimd_allow_loopback: false,
            cimd: super::CimdLimits::default(),
            #[cfg(mcp_auth_mutations)]
            mutations: crate::mutations::Mutations::default(),
        }
    }

    /// The URL of an endpoint path.
    pub fn endpoint(&self, path: &str) -> String {
        format!("{}{}", self.issuer.as_str().trim_end_matches('/'), path)
    }

    pub(super) fn scopes_supported(&self) -> ScopeSet {
        ScopeSet::from_tokens(
            self.resources
                .values()
                .flat_map(|s| s.iter().map(str::to_owned)),
        )
    }
}
