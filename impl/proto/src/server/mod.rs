//! The authorization server: dynamic client registration (RFC 7591), the authorization endpoint
//! with consent, the token endpoint (authorization code with PKCE, refresh with rotation), and
//! JWT access tokens (RFC 9068) audience-bound to a resource (RFC 8707).
//!
//! [`AuthorizationServer`] is a plain value. Each endpoint is one method taking `now` and an
//! [`Entropy`] source; [`http`] decodes HTTP requests into those calls and encodes the answers.

mod browser;
pub mod http;
mod pages;
mod register;
mod revoke;
pub mod users;
mod window;

use std::collections::BTreeMap;

use serde::Serialize;
use subtle::ConstantTimeEq;

pub use browser::{
    Answer, Browser, BrowserSession, LoginAttempt, LoginError, LoginForm, LoginPrompt, SessionKey,
};
pub use register::{ClientMetadata, RegisteredClient, RegistrationResponse, TokenAuthMethod};
pub use revoke::{Caller, Inactive, Introspection, Revocation, TokenKind};
pub use users::{Accounts, UserRecord, Users, UsersError};

use crate::entropy::{Entropy, mint};
use crate::error::Rejection;
use crate::form::Params;
use crate::jwt::{AccessClaims, Audience, Signer};
use crate::metadata::AuthorizationServerMetadata;
use crate::mutations::mutated;
use crate::pkce::{CodeChallenge, PkceVerified, S256};
use crate::time::UnixTime;
use crate::types::{ClientId, ScopeSet, SecretDigest, Subject};
use crate::uri::{HttpPolicy, Issuer, RedirectUri, ResourceUri};

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
            #[cfg(mcp_auth_mutations)]
            mutations: crate::mutations::Mutations::default(),
        }
    }

    /// The URL of an endpoint path.
    pub fn endpoint(&self, path: &str) -> String {
        format!("{}{}", self.issuer.as_str().trim_end_matches('/'), path)
    }

    fn scopes_supported(&self) -> ScopeSet {
        ScopeSet::from_tokens(
            self.resources
                .values()
                .flat_map(|s| s.iter().map(str::to_owned)),
        )
    }
}

/// What a code is bound to.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct CodeBinding {
    /// The client.
    pub client_id: ClientId,
    /// The redirect URI of the authorization request (as sent).
    pub redirect_uri: String,
    /// Whether the authorization request carried `redirect_uri` (then the token request must too).
    pub redirect_uri_sent: bool,
    /// The PKCE challenge.
    pub challenge: CodeChallenge,
    /// The resource the user consented to.
    pub resource: ResourceUri,
    /// Granted scopes.
    pub scopes: ScopeSet,
    /// The user.
    pub subject: Subject,
    /// Expiry.
    pub expires_at: UnixTime,
}

/// The life of a code.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum CodeState {
    /// Issued, not yet redeemed.
    Issued(CodeBinding),
    /// Redeemed into this grant; kept until expiry so that a replay is detected and the grant
    /// revoked.
    Redeemed {
        /// What the code was bound to (to check a replay's parameters before revoking).
        binding: CodeBinding,
        /// The grant it produced.
        grant: u64,
    },
}

/// A grant: what one redeemed code produced, and its refresh token family.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Grant {
    /// The client.
    pub client_id: ClientId,
    /// The user.
    pub subject: Subject,
    /// The resource (never widened).
    pub resource: ResourceUri,
    /// Scopes (never widened).
    pub scopes: ScopeSet,
    /// The digest of the current refresh token, if any.
    pub refresh_token: Option<SecretDigest>,
    /// Digests of the refresh tokens rotated out; presenting one again revokes the grant.
    pub rotated: Vec<SecretDigest>,
    /// Last use, for the idle limit.
    pub last_used: UnixTime,
    /// Creation, for the absolute limit.
    pub created: UnixTime,
    /// A random handle that starts the `jti` of every access token issued under this grant
    /// (`handle.random`), so that revocation reaches all of them
    /// ([`AuthorizationServer::is_revoked`]) without remembering each `jti`: a refresh loop
    /// cannot grow the grant.
    pub handle: String,
    /// Revoked (code replay or refresh replay).
    pub revoked: bool,
}

/// Most rotated refresh tokens remembered per grant (older ones are forgotten: presenting them
/// is then just `UnknownRefreshToken`).
pub const ROTATED_MAX: usize = 32;

/// A consent waiting for the user.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct ConsentPrompt {
    /// Identifies the pending authorization in the consent form.
    pub id: String,
    /// CSRF token the form must echo.
    pub csrf: String,
    /// The client.
    pub client_id: ClientId,
    /// Its registered name, if any.
    pub client_name: Option<String>,
    /// Where the code will go.
    pub redirect_uri: String,
    /// The host part of the redirect URI, shown prominently.
    pub redirect_host: String,
    /// Scopes requested.
    pub scopes: ScopeSet,
    /// The resource the token will be for.
    pub resource: ResourceUri,
    /// The display name of the logged-in user the page is for.
    pub user: Option<String>,
    /// Whether the page offers "not you? sign out" (accounts with login).
    pub can_logout: bool,
}

/// An authorization waiting for the user, bound to the browser session that started it and,
/// once known, the user ([AZ-29](crate::requirements#AZ-29)).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct Pending {
    prompt: ConsentPrompt,
    binding: CodeBinding,
    state: Option<String>,
    expires_at: UnixTime,
    session: SessionKey,
    subject: Option<Subject>,
    peer: Option<std::net::IpAddr>,
}

/// An error the user is told about, with a link back to the client they may follow: the
/// request came from a verified client and redirect URI, but no user has been involved yet,
/// so the server does not redirect on its own ([AZ-7](crate::requirements#AZ-7), [AZ-8](crate::requirements#AZ-8), [AZ-9](crate::requirements#AZ-9)).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Inform {
    /// The client's registered name, if any.
    pub client_name: Option<String>,
    /// The client id.
    pub client_id: ClientId,
    /// The host of the redirect URI.
    pub redirect_host: String,
    /// The error response the client would get.
    pub redirect: AuthorizationRedirect,
}

/// An authorization response: a redirect to the client's verified redirect URI.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct AuthorizationRedirect {
    /// The full URL to redirect to.
    pub location: String,
    /// The code (success) or the error (failure).
    pub result: Result<String, Rejection>,
    /// The `state` echoed.
    pub state: Option<String>,
}

/// What the user agent should be told after an authorization or consent request.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum AuthorizeOutcome {
    /// Ask the user to log in first.
    Login(LoginPrompt),
    /// Ask the user.
    Consent(ConsentPrompt),
    /// Show the error with a link back to the client (no automatic redirect).
    Inform(Inform),
    /// Send the browser to the page of this pending authorization (after a login or logout
    /// form: post, redirect, get).
    ShowPending(String),
    /// Redirect to the client (success or error): the client and redirect URI are verified.
    Redirect(AuthorizationRedirect),
    /// Show the error and never redirect: the client or redirect URI could not be verified
    /// (OAuth 2.1 §4.1.2.1), and redirecting would make the server an open redirector.
    Refuse(Rejection),
}

/// The user's answer on the consent page.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct ConsentDecision {
    /// The pending authorization.
    pub id: String,
    /// The CSRF token from the form.
    pub csrf: String,
    /// Approve or deny.
    pub approve: bool,
    /// The browser's session cookie.
    pub session: Option<String>,
}

/// A successful token response (OAuth 2.1 §3.2.3).
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, serde::Deserialize)]
pub struct TokenResponse {
    /// The JWT access token.
    pub access_token: String,
    /// Always `Bearer`.
    pub token_type: String,
    /// Lifetime in seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_in: Option<u64>,
    /// A refresh token (rotated on every refresh).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refresh_token: Option<String>,
    /// Granted scopes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scope: Option<String>,
}

/// Client credentials as presented at the token endpoint.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct ClientCredentials {
    /// `client_id` from the body.
    pub client_id: Option<String>,
    /// `client_secret` from the body.
    pub client_secret: Option<String>,
    /// `(id, secret)` from `Authorization: Basic`.
    pub basic: Option<(String, String)>,
}

/// A token request.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct TokenRequest {
    /// Who is asking.
    pub credentials: ClientCredentials,
    /// The decoded form.
    pub params: Params,
}

/// A token error, with how the client authenticated (for the 401 challenge).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct TokenError {
    /// Why.
    pub rejection: Rejection,
    /// The client used HTTP Basic (an `invalid_client` then answers 401 with a Basic challenge).
    pub basic: bool,
}

/// Earlier signing keys still published in the JWK Set after [`AuthorizationServer::rotate_key`].
pub const RETIRED_KEYS_MAX: usize = 2;

/// The authorization server.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct AuthorizationServer {
    config: AsConfig,
    signer: Signer,
    /// Public keys of earlier signers, newest first (at most [`RETIRED_KEYS_MAX`]).
    retired: Vec<jsonwebtoken::jwk::Jwk>,
    clients: BTreeMap<ClientId, RegisteredClient>,
    pending: BTreeMap<String, Pending>,
    /// Codes by the digest of their value.
    codes: BTreeMap<SecretDigest, CodeState>,
    grants: BTreeMap<u64, Grant>,
    /// Grants by the digest of a current or rotated refresh token.
    refresh_index: BTreeMap<SecretDigest, u64>,
    next_grant: u64,
    sessions: BTreeMap<SessionKey, BrowserSession>,
    throttle: window::Windows<browser::ThrottleKey>,
    rates: window::Windows<(RateRoute, std::net::IpAddr)>,
}

impl AuthorizationServer {
    /// A server with no clients.
    pub fn new(config: AsConfig, signer: Signer) -> Self {
        Self {
            config,
            signer,
            retired: Vec::new(),
            clients: BTreeMap::new(),
            pending: BTreeMap::new(),
            codes: BTreeMap::new(),
            grants: BTreeMap::new(),
            refresh_index: BTreeMap::new(),
            next_grant: 0,
            sessions: BTreeMap::new(),
            throttle: window::Windows::new(),
            rates: window::Windows::new(),
        }
    }

    /// The configuration.
    pub fn config(&self) -> &AsConfig {
        &self.config
    }

    /// The issuer.
    pub fn issuer(&self) -> &Issuer {
        &self.config.issuer
    }

    /// The token signer.
    pub fn signer(&self) -> &Signer {
        &self.signer
    }

    /// Registered clients.
    pub fn clients(&self) -> impl Iterator<Item = (&ClientId, &RegisteredClient)> {
        self.clients.iter()
    }

    /// Codes (by the digest of their value) and their state.
    pub fn codes(&self) -> impl Iterator<Item = (&SecretDigest, &CodeState)> {
        self.codes.iter()
    }

    /// The state of the code `code`, if it is remembered.
    pub fn code_state(&self, code: &str) -> Option<&CodeState> {
        self.codes.get(&SecretDigest::of(code))
    }

    /// Grants.
    pub fn grants(&self) -> impl Iterator<Item = (&u64, &Grant)> {
        self.grants.iter()
    }

    /// The grant an access token with this `jti` was issued under, while it is remembered
    /// (the `jti` starts with the grant's [`Grant::handle`]).
    pub fn grant_of_access_token(&self, jti: &str) -> Option<(&u64, &Grant)> {
        let (handle, _) = jti.split_once('.')?;
        self.grants.iter().find(|(_, g)| g.handle == handle)
    }

    /// Is the access token with this `jti` from a revoked grant?
    // spec: RT-2, TOK-8
    pub fn is_revoked(&self, jti: &str) -> bool {
        self.grant_of_access_token(jti)
            .is_some_and(|(_, g)| g.revoked)
    }

    /// RFC 8414 metadata.
    // spec: ASM-1, ASM-3, ASM-4, ASM-7, ASM-8, ASM-10, AZ-21, RT-13, RS-15
    pub fn metadata(&self) -> AuthorizationServerMetadata {
        let c = &self.config;
        let methods = || {
            TokenAuthMethod::ALL
                .iter()
                .map(|m| m.as_str().to_owned())
                .collect()
        };
        AuthorizationServerMetadata {
            issuer: c.issuer.as_str().to_owned(),
            authorization_endpoint: Some(c.endpoint(paths::AUTHORIZE)),
            token_endpoint: Some(c.endpoint(paths::TOKEN)),
            registration_endpoint: Some(c.endpoint(paths::REGISTER)),
            revocation_endpoint: Some(c.endpoint(paths::REVOKE)),
            revocation_endpoint_auth_methods_supported: methods(),
            introspection_endpoint: Some(c.endpoint(paths::INTROSPECT)),
            introspection_endpoint_auth_methods_supported: methods(),
            jwks_uri: Some(c.endpoint(paths::JWKS)),
            scopes_supported: c.scopes_supported().iter().map(str::to_owned).collect(),
            response_types_supported: vec!["code".into()],
            response_modes_supported: vec!["query".into()],
            grant_types_supported: vec!["authorization_code".into(), "refresh_token".into()],
            token_endpoint_auth_methods_supported: methods(),
            code_challenge_methods_supported: vec![S256.into()],
            authorization_response_iss_parameter_supported: true,
            service_documentation: None,
        }
    }

    /// The JWK Set: the signing key, then the retired keys (newest first), so that tokens
    /// signed before a [`AuthorizationServer::rotate_key`] stay verifiable.
    pub fn jwks(&self) -> jsonwebtoken::jwk::JwkSet {
        let mut keys = vec![self.signer.public_jwk().clone()];
        keys.extend(self.retired.iter().cloned());
        jsonwebtoken::jwk::JwkSet { keys }
    }

    /// Sign every new access token with `signer` from now on. The old key's public half stays
    /// in [`AuthorizationServer::jwks`] (at most [`RETIRED_KEYS_MAX`] retired keys, the
    /// oldest dropped first); a retired key with the new key's `kid` is dropped, so that a
    /// `kid` names one key. Rotating to the current key changes nothing.
    pub fn rotate_key(&mut self, signer: Signer) {
        if signer == self.signer {
            return;
        }
        let old = std::mem::replace(&mut self.signer, signer);
        self.retired.insert(0, old.public_jwk().clone());
        let kid = self.signer.kid().to_owned();
        self.retired
            .retain(|jwk| jwk.common.key_id.as_deref() != Some(kid.as_str()));
        self.retired.truncate(RETIRED_KEYS_MAX);
    }

    /// Dynamic client registration (RFC 7591).
    // spec: DCR-1, DCR-6, DCR-7, DCR-10
    pub fn register(
        &mut self,
        now: UnixTime,
        entropy: &mut impl Entropy,
        metadata: ClientMetadata,
    ) -> Result<RegistrationResponse, Rejection> {
        if self.clients.len() >= self.config.limits.clients {
            // Clients that never completed a flow are forgotten after a while (SEC-17).
            let unused = self.config.lifetimes.unused_client;
            self.clients
                .retain(|_, c| c.completed || now < c.issued_at.plus(unused));
        }
        if self.clients.len() >= self.config.limits.clients {
            return Err(Rejection::Full);
        }
        let client = metadata.validate(&self.config.limits)?;
        let client_id = ClientId(mint(entropy));
        let secret = (client.auth_method != TokenAuthMethod::None).then(|| mint(entropy));
        let response = client.response(&client_id, secret.as_deref(), now);
        let registered = RegisteredClient {
            secret: secret.as_deref().map(SecretDigest::of),
            issued_at: now,
            ..client
        };
        self.clients.insert(client_id, registered);
        Ok(response)
    }

    /// Count a request from `peer` to `route`: refused once the address has sent
    /// [`Limits::rates`] requests to that endpoint within [`RATE_WINDOW`] seconds (fixed
    /// windows). Requests whose address the driver does not know are not counted. The counter
    /// table is bounded: when full, expired windows go, then the oldest.
    // spec: SEC-17
    pub fn admit(
        &mut self,
        now: UnixTime,
        route: RateRoute,
        peer: Option<std::net::IpAddr>,
    ) -> Result<(), Rejection> {
        let Some(ip) = peer else { return Ok(()) };
        let rates = self.config.limits.rates;
        let limit = match route {
            RateRoute::Register => rates.register,
            RateRoute::Authorize => rates.authorize,
            RateRoute::Token => rates.token,
        };
        if limit == 0 {
            return Ok(());
        }
        let key = (route, ip);
        if self.rates.count(now, RATE_WINDOW, &key) >= limit {
            return Err(Rejection::RateLimited);
        }
        let capacity = self.config.limits.rate_entries;
        self.rates.add(now, RATE_WINDOW, capacity, key);
        Ok(())
    }

    /// The authorization endpoint. Until the client and redirect URI are verified, an error is
    /// shown, never redirected ([AZ-4](crate::requirements#AZ-4)). After that, an error is still shown rather than
    /// redirected, with a link to the client the user may follow: no user has seen the request
    /// yet, and a redirect now would make the server an open redirector ([AZ-7](crate::requirements#AZ-7), [AZ-8](crate::requirements#AZ-8), [AZ-9](crate::requirements#AZ-9)).
    /// A valid request becomes a pending authorization bound to the browser session (a new
    /// one if the browser has none); the answer is the login page, or the consent page for
    /// the logged-in user.
    // spec: AZ-2, AZ-3, AZ-4, AZ-6, AZ-7, AZ-10, PKCE-6, PKCE-7, PKCE-8, RES-12, AZ-29
    pub fn authorize(
        &mut self,
        now: UnixTime,
        entropy: &mut impl Entropy,
        params: &Params,
        accounts: &Accounts,
        browser: &Browser,
    ) -> Answer {
        let (client_id, client, redirect_uri, redirect_uri_sent) =
            match self.verify_client_and_redirect(params) {
                Ok(v) => v,
                Err(r) => return AuthorizeOutcome::Refuse(r).into(),
            };
        let state = match params.one("state") {
            Ok(s) if s.is_none_or(|s| s.len() <= self.config.limits.state_len) => {
                s.map(str::to_owned)
            }
            // An unusable state cannot be echoed; refuse rather than redirect without it.
            Ok(_) => return AuthorizeOutcome::Refuse(Rejection::TooLarge).into(),
            Err(r) => return AuthorizeOutcome::Refuse(r).into(),
        };
        let redirect_host = crate::uri::parse_uri(&redirect_uri)
            .map(|p| p.host.to_owned())
            .unwrap_or_default();
        let inform = |this: &Self, r: Rejection| -> Answer {
            AuthorizeOutcome::Inform(Inform {
                client_name: client.client_name.clone(),
                client_id: client_id.clone(),
                redirect_host: redirect_host.clone(),
                redirect: this.redirect(&redirect_uri, Err(r), state.clone()),
            })
            .into()
        };
        let binding = match self.bind(
            now,
            params,
            &client_id,
            &client,
            &redirect_uri,
            redirect_uri_sent,
        ) {
            Ok(b) => b,
            Err(r) => return inform(self, r),
        };
        self.make_room(now, self.pending.len(), self.config.limits.pending);
        if self.pending.len() >= self.config.limits.pending {
            return inform(self, Rejection::Full);
        }
        // One client or one address cannot take the whole table (SEC-17).
        let limits = &self.config.limits;
        let (mut per_client, mut per_address) = (0usize, 0usize);
        for p in self.pending.values().filter(|p| now < p.expires_at) {
            per_client += usize::from(p.prompt.client_id == client_id);
            per_address += usize::from(browser.peer.is_some() && p.peer == browser.peer);
        }
        if per_client >= limits.pending_per_client || per_address >= limits.pending_per_address {
            return inform(self, Rejection::Full);
        }
        let (set_session, session) = match self.session(now, browser.session.as_deref()) {
            Some(key) => (None, key),
            None => {
                let subject = match accounts {
                    Accounts::Single(subject) => Some(subject.clone()),
                    Accounts::Users(_) => None,
                };
                match self.begin_session(now, entropy, subject) {
                    Ok((cookie, key)) => (Some(cookie), key),
                    Err(r) => return inform(self, r),
                }
            }
        };
        let prompt = ConsentPrompt {
            id: mint(entropy),
            csrf: mint(entropy),
            client_id: client_id.clone(),
            client_name: client.client_name.clone(),
            redirect_host,
            redirect_uri: redirect_uri.clone(),
            scopes: binding.scopes.clone(),
            resource: binding.resource.clone(),
            user: None,
            can_logout: false,
        };
        let id = prompt.id.clone();
        let expires_at = now.plus(self.config.lifetimes.consent);
        let subject = self.session_subject(&session).cloned();
        self.pending.insert(
            id.clone(),
            Pending {
                prompt,
                binding,
                state,
                expires_at,
                session,
                subject,
                peer: browser.peer,
            },
        );
        Answer {
            outcome: self.prompt_for(&id, accounts),
            set_session,
        }
    }

    /// The user's decision on a consent prompt. It counts only if it comes from the browser
    /// session the prompt was shown in, logged in as the user it was shown to ([AZ-29](crate::requirements#AZ-29): no
    /// consent CSRF). Approval mints a code for that user, bound to everything the request
    /// named; denial redirects with `access_denied`. Either way the prompt is used up.
    // spec: AZ-10, AZ-14, AZ-15, AZ-16, AZ-21, AZ-25, AZ-29, AZ-30
    pub fn consent(
        &mut self,
        now: UnixTime,
        entropy: &mut impl Entropy,
        decision: &ConsentDecision,
    ) -> AuthorizeOutcome {
        let Some(pending) = self.pending.get(&decision.id) else {
            return AuthorizeOutcome::Refuse(Rejection::UnknownConsent);
        };
        if !bool::from(
            pending
                .prompt
                .csrf
                .as_bytes()
                .ct_eq(decision.csrf.as_bytes()),
        ) {
            return AuthorizeOutcome::Refuse(Rejection::UnknownConsent);
        }
        let pending_session = pending.session;
        let pending_subject = pending.subject.clone();
        let session = self.session(now, decision.session.as_deref());
        let session_user = session.and_then(|k| self.session_subject(&k)).cloned();
        let subject = if mutated!(self.config, skip_session_binding) {
            // The defense off: whoever's browser posts the form decides, as that user.
            session_user
        } else {
            let bound = session.is_some_and(|k| k.ct_eq(&pending_session));
            pending_subject.filter(|s| bound && session_user.as_ref() == Some(s))
        };
        let Some(subject) = subject else {
            return AuthorizeOutcome::Refuse(Rejection::SessionMismatch);
        };
        let Some(Pending {
            binding,
            state,
            expires_at,
            ..
        }) = self.pending.remove(&decision.id)
        else {
            return AuthorizeOutcome::Refuse(Rejection::UnknownConsent);
        };
        if now >= expires_at {
            return AuthorizeOutcome::Refuse(Rejection::UnknownConsent);
        }
        let redirect_uri = binding.redirect_uri.clone();
        if !decision.approve {
            return AuthorizeOutcome::Redirect(self.redirect(
                &redirect_uri,
                Err(Rejection::UserDenied),
                state,
            ));
        }
        self.make_room(now, self.codes.len(), self.config.limits.codes);
        if self.codes.len() >= self.config.limits.codes {
            return AuthorizeOutcome::Redirect(self.redirect(
                &redirect_uri,
                Err(Rejection::Full),
                state,
            ));
        }
        let code = mint(entropy);
        let binding = CodeBinding {
            subject,
            expires_at: now.plus(self.config.lifetimes.code.min(600)),
            ..binding
        };
        self.codes
            .insert(SecretDigest::of(&code), CodeState::Issued(binding));
        AuthorizeOutcome::Redirect(self.redirect(&redirect_uri, Ok(code), state))
    }

    /// The token endpoint.
    // spec: TOK-4, TOK-5, TOK-6, TOK-7, TOK-8, TOK-9, TOK-10, TOK-11, PKCE-9, RES-14, RT-1, RT-2, RT-3, RT-5, RT-8
    pub fn token(
        &mut self,
        now: UnixTime,
        entropy: &mut impl Entropy,
        request: &TokenRequest,
    ) -> Result<TokenResponse, TokenError> {
        let basic = request.credentials.basic.is_some();
        let err = |rejection| TokenError { rejection, basic };
        let grant_type = request.params.one("grant_type").map_err(err)?;
        let client_id = self.authenticate(&request.credentials).map_err(err)?;
        match grant_type {
            Some("authorization_code") => self
                .redeem_code(now, entropy, &client_id, &request.params)
                .map_err(err),
            Some("refresh_token") => self
                .refresh(now, entropy, &client_id, &request.params)
                .map_err(err),
            Some(_) => Err(err(Rejection::UnsupportedGrant)),
            None => Err(err(Rejection::MissingParameter)),
        }
    }

    // ---- authorization endpoint helpers ---------------------------------------------------

    fn verify_client_and_redirect(
        &self,
        params: &Params,
    ) -> Result<(ClientId, RegisteredClient, String, bool), Rejection> {
        let client_id = ClientId(
            params
                .one("client_id")?
                .ok_or(Rejection::UnknownClient)?
                .to_owned(),
        );
        let client = self
            .clients
            .get(&client_id)
            .ok_or(Rejection::UnknownClient)?;
        let (redirect_uri, sent) = match params.one("redirect_uri")? {
            Some(r) => {
                let requested =
                    RedirectUri::parse(r).map_err(|_| Rejection::RedirectUriMismatch)?;
                if !mutated!(self.config, lax_redirect)
                    && !client
                        .redirect_uris
                        .iter()
                        .any(|reg| reg.matches(&requested))
                {
                    return Err(Rejection::RedirectUriMismatch);
                }
                (r.to_owned(), true)
            }
            None => match client.redirect_uris.as_slice() {
                [only] => (only.as_str().to_owned(), false),
                _ => return Err(Rejection::RedirectUriRequired),
            },
        };
        Ok((client_id, client.clone(), redirect_uri, sent))
    }

    fn bind(
        &self,
        now: UnixTime,
        params: &Params,
        client_id: &ClientId,
        client: &RegisteredClient,
        redirect_uri: &str,
        redirect_uri_sent: bool,
    ) -> Result<CodeBinding, Rejection> {
        if params.one("response_type")? != Some("code") {
            return Err(Rejection::ResponseTypeNotCode);
        }
        if !client.grant_types.iter().any(|g| g == "authorization_code") {
            return Err(Rejection::GrantNotAllowed);
        }
        let challenge = CodeChallenge::from_request(
            params.one("code_challenge")?,
            params.one("code_challenge_method")?,
        )?;
        let resource =
            self.known_resource(params.one("resource")?.ok_or(Rejection::MissingResource)?)?;
        let scopes = match params.one("scope")? {
            Some(s) => ScopeSet::parse(s).map_err(|_| Rejection::UnknownScope)?,
            None => self.config.default_scopes.clone(),
        };
        let known = self
            .config
            .resources
            .get(&resource)
            .cloned()
            .unwrap_or_default();
        if !scopes.is_subset(&known) {
            return Err(Rejection::UnknownScope);
        }
        Ok(CodeBinding {
            client_id: client_id.clone(),
            redirect_uri: redirect_uri.to_owned(),
            redirect_uri_sent,
            challenge,
            resource,
            scopes,
            subject: Subject(String::new()),
            expires_at: now,
        })
    }

    /// A `resource` value this server issues tokens for, in canonical form.
    // spec: RES-6, RES-12
    fn known_resource(&self, resource: &str) -> Result<ResourceUri, Rejection> {
        let resource = ResourceUri::parse(resource, self.config.http_policy)
            .map_err(|_| Rejection::UnknownResource)?;
        if self.config.resources.contains_key(&resource) {
            Ok(resource)
        } else {
            Err(Rejection::UnknownResource)
        }
    }

    /// Build the redirect: `code` or `error`/`error_description`, then `state`, then `iss`.
    // spec: AZ-10, AZ-21, AZ-5
    fn redirect(
        &self,
        redirect_uri: &str,
        result: Result<String, Rejection>,
        state: Option<String>,
    ) -> AuthorizationRedirect {
        let mut pairs: Vec<(&str, &str)> = Vec::with_capacity(4);
        match &result {
            Ok(code) => pairs.push(("code", code)),
            Err(r) => {
                pairs.push(("error", r.code().as_str()));
                pairs.push(("error_description", r.description()));
            }
        }
        if let Some(s) = &state {
            pairs.push(("state", s));
        }
        pairs.push(("iss", self.config.issuer.as_str()));
        let encoded = crate::form::encode(pairs);
        let location = match RedirectUri::parse(redirect_uri) {
            Ok(r) => r.with_query(&encoded),
            Err(_) => format!("{redirect_uri}?{encoded}"),
        };
        AuthorizationRedirect {
            location,
            result,
            state,
        }
    }

    // ---- token endpoint helpers -----------------------------------------------------------

    /// Identify and authenticate the client (OAuth 2.1 §2.4): the registered method must be the
    /// one used; secrets are compared in constant time.
    // spec: TOK-4, GEN-4
    pub fn authenticate(&self, creds: &ClientCredentials) -> Result<ClientId, Rejection> {
        let (id, secret, method) = match (&creds.basic, &creds.client_secret) {
            (Some(_), Some(_)) => return Err(Rejection::ClientAuthFailed),
            (Some((id, secret)), None) => {
                if creds
                    .client_id
                    .as_ref()
                    .is_some_and(|body_id| body_id != id)
                {
                    return Err(Rejection::ClientAuthFailed);
                }
                (
                    id.as_str(),
                    Some(secret.as_str()),
                    TokenAuthMethod::ClientSecretBasic,
                )
            }
            (None, secret) => {
                let id = creds
                    .client_id
                    .as_deref()
                    .ok_or(Rejection::ClientAuthFailed)?;
                let method = if secret.is_some() {
                    TokenAuthMethod::ClientSecretPost
                } else {
                    TokenAuthMethod::None
                };
                (id, secret.as_deref(), method)
            }
        };
        let client_id = ClientId(id.to_owned());
        let client = self
            .clients
            .get(&client_id)
            .ok_or(Rejection::ClientAuthFailed)?;
        if client.auth_method != method {
            return Err(Rejection::ClientAuthFailed);
        }
        match (&client.secret, secret) {
            (None, None) => Ok(client_id),
            (Some(expected), Some(given)) if expected.matches(given) => Ok(client_id),
            _ => Err(Rejection::ClientAuthFailed),
        }
    }

    fn redeem_code(
        &mut self,
        now: UnixTime,
        entropy: &mut impl Entropy,
        client_id: &ClientId,
        params: &Params,
    ) -> Result<TokenResponse, Rejection> {
        let code = SecretDigest::of(params.one("code")?.ok_or(Rejection::MissingParameter)?);
        match self.codes.get(&code) {
            None => Err(Rejection::UnknownCode),
            Some(CodeState::Redeemed { binding, grant }) => {
                // A replay with valid parameters is a sign the code leaked: revoke what the
                // first redemption produced. A replay with invalid parameters changes nothing,
                // so it cannot be used to revoke someone else's grant (TOK-9).
                let grant = *grant;
                if check_binding(&self.config, binding, now, client_id, params).is_ok() {
                    self.revoke_grant(grant);
                }
                Err(Rejection::CodeReused)
            }
            Some(CodeState::Issued(binding)) => {
                #[allow(unused_mut)]
                let mut binding = binding.clone();
                let proof = check_binding(&self.config, &binding, now, client_id, params)?;
                #[cfg(mcp_auth_mutations)]
                if self.config.mutations.skip_resource_binding
                    && let Ok(Some(r)) = params.one("resource")
                    && let Ok(r) = self.known_resource(r)
                {
                    binding.resource = r;
                }
                self.make_room(now, self.grants.len(), self.config.limits.grants);
                if self.grants.len() >= self.config.limits.grants {
                    return Err(Rejection::Full);
                }
                // One client cannot take the whole grant table (SEC-17).
                let live = |grants: &BTreeMap<u64, Grant>| {
                    grants
                        .values()
                        .filter(|g| &g.client_id == client_id && !g.revoked)
                        .count()
                };
                let quota = self.config.limits.grants_per_client;
                if live(&self.grants) >= quota {
                    self.prune(now);
                    if live(&self.grants) >= quota {
                        return Err(Rejection::Full);
                    }
                }
                if let Some(c) = self.clients.get_mut(client_id) {
                    c.completed = true;
                }
                let grant_id = self.next_grant;
                self.next_grant += 1;
                let with_refresh = self.config.refresh_tokens
                    && self
                        .clients
                        .get(client_id)
                        .is_some_and(|c| c.grant_types.iter().any(|g| g == "refresh_token"));
                let grant = Grant {
                    client_id: client_id.clone(),
                    subject: binding.subject.clone(),
                    resource: binding.resource.clone(),
                    scopes: binding.scopes.clone(),
                    refresh_token: None,
                    rotated: Vec::new(),
                    last_used: now,
                    created: now,
                    handle: mint(entropy),
                    revoked: false,
                };
                self.grants.insert(grant_id, grant);
                let scopes = binding.scopes.clone();
                if !mutated!(self.config, reusable_codes) {
                    self.codes.insert(
                        code,
                        CodeState::Redeemed {
                            binding,
                            grant: grant_id,
                        },
                    );
                }
                self.issue(now, entropy, grant_id, &scopes, with_refresh, proof)
            }
        }
    }

    fn refresh(
        &mut self,
        now: UnixTime,
        entropy: &mut impl Entropy,
        client_id: &ClientId,
        params: &Params,
    ) -> Result<TokenResponse, Rejection> {
        let token = SecretDigest::of(
            params
                .one("refresh_token")?
                .ok_or(Rejection::MissingParameter)?,
        );
        let grant_id = *self
            .refresh_index
            .get(&token)
            .ok_or(Rejection::UnknownRefreshToken)?;
        let grant = self
            .grants
            .get(&grant_id)
            .ok_or(Rejection::UnknownRefreshToken)?;
        if &grant.client_id != client_id {
            return Err(Rejection::RefreshClientMismatch);
        }
        if grant.revoked {
            return Err(Rejection::GrantRevoked);
        }
        if !mutated!(self.config, skip_refresh_rotation) && grant.refresh_token != Some(token) {
            // A rotated token came back: the family is compromised (RFC 9700 §4.14.2).
            if !mutated!(self.config, skip_refresh_revocation) {
                self.revoke_grant(grant_id);
            }
            return Err(Rejection::RefreshTokenReused);
        }
        let lifetimes = &self.config.lifetimes;
        if now >= grant.last_used.plus(lifetimes.refresh_idle)
            || now >= grant.created.plus(lifetimes.refresh_absolute)
        {
            return Err(Rejection::RefreshExpired);
        }
        // The asked scope (never wider than the grant's) is the new token's scope; none asked
        // means the grant's. The grant keeps its scope for later refreshes (RT-8, RT-12).
        let scopes = match params.one("scope")? {
            Some(scope) => {
                let asked = ScopeSet::parse(scope).map_err(|_| Rejection::ScopeWidened)?;
                if !asked.is_subset(&grant.scopes) {
                    return Err(Rejection::ScopeWidened);
                }
                asked
            }
            None => grant.scopes.clone(),
        };
        if let Some(resource) = params.one("resource")? {
            let asked = ResourceUri::parse(resource, self.config.http_policy)
                .map_err(|_| Rejection::ResourceChanged)?;
            if asked != grant.resource {
                return Err(Rejection::ResourceChanged);
            }
        }
        self.issue(now, entropy, grant_id, &scopes, true, RefreshVerified(()))
    }

    /// Mint an access token with `scopes` (a subset of the grant's, checked by the caller) and
    /// a rotated refresh token for a grant. A failure here is the server's own
    /// ([`Rejection::Internal`]): the grant was just checked or made.
    // spec: GEN-11, RT-12
    fn issue(
        &mut self,
        now: UnixTime,
        entropy: &mut impl Entropy,
        grant_id: u64,
        scopes: &ScopeSet,
        with_refresh: bool,
        _proof: impl Proof,
    ) -> Result<TokenResponse, Rejection> {
        let lifetime = self.config.lifetimes.access_token;
        let random = mint(entropy);
        let refresh = with_refresh.then(|| mint(entropy));
        // Every caller has just found or made this grant: its absence is our bug (GEN-11).
        let grant = self.grants.get_mut(&grant_id).ok_or(Rejection::Internal)?;
        let jti = format!("{}.{random}", grant.handle);
        let claims = AccessClaims {
            iss: self.config.issuer.as_str().to_owned(),
            sub: grant.subject.0.clone(),
            aud: Audience::One(grant.resource.as_str().to_owned()),
            exp: now.plus(lifetime).as_secs(),
            iat: now.as_secs(),
            nbf: Some(now.as_secs()),
            jti: jti.clone(),
            client_id: grant.client_id.0.clone(),
            scope: scopes.to_option(),
        };
        let access_token = self
            .signer
            .sign_access_token(&claims)
            .map_err(|_| Rejection::Internal)?;
        grant.last_used = now;
        if let Some(new) = refresh.as_deref().map(SecretDigest::of) {
            if let Some(old) = grant.refresh_token.replace(new) {
                grant.rotated.push(old);
                if grant.rotated.len() > ROTATED_MAX {
                    let forgotten = grant.rotated.remove(0);
                    self.refresh_index.remove(&forgotten);
                }
            }
            self.refresh_index.insert(new, grant_id);
        }
        Ok(TokenResponse {
            access_token,
            token_type: "Bearer".into(),
            expires_in: Some(lifetime),
            refresh_token: refresh,
            scope: scopes.to_option(),
        })
    }

    /// Revoke a grant: its refresh token, and every access token issued under it
    /// ([`AuthorizationServer::is_revoked`]).
    fn revoke_grant(&mut self, grant_id: u64) {
        if let Some(grant) = self.grants.get_mut(&grant_id) {
            grant.revoked = true;
            if let Some(current) = grant.refresh_token.take() {
                grant.rotated.push(current);
            }
        }
    }

    /// Prune only when a table is full: expired entries are harmless (every lookup checks
    /// expiry), and a scan on every request made the endpoints O(table size).
    fn make_room(&mut self, now: UnixTime, len: usize, limit: usize) {
        if len >= limit {
            self.prune(now);
        }
    }

    /// Forget what has expired (pending consents, codes, idle grants), so bounded tables free up.
    fn prune(&mut self, now: UnixTime) {
        self.pending.retain(|_, p| now < p.expires_at);
        self.codes.retain(|_, c| match c {
            CodeState::Issued(b) | CodeState::Redeemed { binding: b, .. } => now < b.expires_at,
        });
        let lifetimes = self.config.lifetimes.clone();
        let access = lifetimes.access_token;
        let before = self.grants.len();
        self.grants.retain(|_, g| {
            let refresh_alive = g.refresh_token.is_some()
                && now < g.last_used.plus(lifetimes.refresh_idle)
                && now < g.created.plus(lifetimes.refresh_absolute);
            refresh_alive || now < g.last_used.plus(access)
        });
        if self.grants.len() != before {
            let grants = &self.grants;
            self.refresh_index.retain(|_, id| grants.contains_key(id));
        }
    }
}

/// Evidence that a grant may be used: PKCE verified, or a current refresh token presented.
trait Proof {}
impl Proof for PkceVerified {}
struct RefreshVerified(());
impl Proof for RefreshVerified {}

/// Every binding of the code must match the redemption; PKCE last.
// spec: AZ-14, TOK-5, TOK-10, RES-14, PKCE-9, PKCE-10
fn check_binding(
    config: &AsConfig,
    binding: &CodeBinding,
    now: UnixTime,
    client_id: &ClientId,
    params: &Params,
) -> Result<PkceVerified, Rejection> {
    if now >= binding.expires_at {
        return Err(Rejection::CodeExpired);
    }
    if &binding.client_id != client_id {
        return Err(Rejection::CodeClientMismatch);
    }
    match params.one("redirect_uri")? {
        Some(r) if r != binding.redirect_uri => return Err(Rejection::RedirectUriChanged),
        None if binding.redirect_uri_sent => return Err(Rejection::RedirectUriChanged),
        _ => {}
    }
    if let Some(resource) = params.one("resource")?
        && !mutated!(config, skip_resource_binding)
    {
        // Compared in canonical form: case of scheme and host does not matter (RES-6).
        let same = ResourceUri::parse(resource, HttpPolicy::AllowLoopbackHttp)
            .is_ok_and(|r| r == binding.resource);
        if !same {
            return Err(Rejection::ResourceChanged);
        }
    }
    #[cfg(mcp_auth_mutations)]
    if config.mutations.skip_pkce {
        return Ok(PkceVerified::skipped());
    }
    binding.challenge.verify(params.one("code_verifier")?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::entropy::Sequential;
    use crate::jwt::Ed25519Signer;

    // spec: GEN-11
    #[test]
    fn a_broken_invariant_is_not_blamed_on_the_refresh_token() {
        // A server with no grant at all (the in-memory harness lives in mcp-auth-testkit,
        // which unit tests cannot use: its copy of these types would not be this one).
        let issuer = Issuer::parse("https://as.example", HttpPolicy::HttpsOnly).expect("issuer");
        let mut server = AuthorizationServer::new(
            AsConfig::new(issuer, []),
            Signer::new(Ed25519Signer::from_seed("k1", [7; 32])),
        );
        let refused = server
            .issue(
                UnixTime::from_secs(1_000),
                &mut Sequential(1),
                999,
                &ScopeSet::default(),
                true,
                RefreshVerified(()),
            )
            .expect_err("no grant 999");
        assert_eq!(refused.code().as_str(), "server_error");
        assert_eq!(refused.code().status(), 500);
    }
}
