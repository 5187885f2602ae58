//! The MCP server as OAuth resource server: Protected Resource Metadata (RFC 9728), bearer
//! token validation on every request, and the `WWW-Authenticate` challenges of RFC 6750 §3 and
//! RFC 9728 §5.1.

use crate::cache::TokenCache;
use crate::challenge::{AuthorizationError, BearerChallenge, parse_bearer_authorization};
use crate::error::Rejection;
use crate::http::{HttpRequest, HttpResponse, Method};
use crate::introspection::{
    INTROSPECTION_RESPONSE_LEN_MAX, IntrospectionCache, IntrospectionConfig, IntrospectionResponse,
};
use crate::jwt::{Access, KeySet, ValidationPolicy, validate, validate_with_times};
use crate::metadata::{PRM_SUFFIX, ProtectedResourceMetadata};
use crate::time::UnixTime;
use crate::types::{ScopeSet, SecretDigest};
use crate::uri::{Issuer, ResourceUri, well_known_insert, well_known_root};

/// The scope every MCP request's token must carry by default ([`RsConfig::base_scopes`]): the
/// scope this implementation's AS grants by default and its clients ask for.
pub const DEFAULT_BASE_SCOPE: &str = "mcp:tools";

/// The scope that asks the authorization server for a refresh token. A client may add it to
/// its own request; an MCP server never asks for it: it is left out of every challenge's
/// `scope` and of PRM `scopes_supported`, whatever the configuration says
/// ([RS-19](crate::requirements#RS-19)).
pub const OFFLINE_ACCESS: &str = "offline_access";

/// The resource server's configuration.
///
/// `#[non_exhaustive]`: build it with [`RsConfig::new`] and the `with_*` methods (or assign
/// fields of a value), so that a new field is not a breaking change.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub struct RsConfig {
    /// The canonical URI of the MCP endpoint: the PRM `resource` and the required `aud`.
    pub resource: ResourceUri,
    /// The one trusted authorization server.
    pub issuer: Issuer,
    /// Scopes this server understands (published in PRM).
    pub scopes_supported: ScopeSet,
    /// A human-readable name for PRM.
    pub resource_name: Option<String>,
    /// Token validation rules.
    pub validation: ValidationPolicy,
    /// Least time between two JWKS refetches triggered by an unknown `kid`.
    pub jwks_refetch_interval_secs: u64,
    /// Scopes every request's token must carry, whatever it asks (403 `insufficient_scope`
    /// naming them otherwise); tool scopes come on top. Default: [`DEFAULT_BASE_SCOPE`], so
    /// that a token issued with no scope at all (or only for something else) reaches nothing.
    /// A deployment whose scopes have other names sets its own; only an explicit empty set
    /// turns the check off (spec [PF-19](crate::requirements#PF-19)).
    pub base_scopes: ScopeSet,
    /// Ask the authorization server whether a valid JWT is still active (RFC 7662), with a
    /// short cache ([`ResourceServer::authenticate_active`]); `None` (the default): the JWT
    /// alone decides, and a revoked grant's token is accepted until its `exp` ([PF-21](crate::requirements#PF-21)).
    pub introspection: Option<IntrospectionConfig>,
    /// The MCP revisions this server serves (the `MCP-Protocol-Version` values it accepts;
    /// see [`crate::revision`]). Default: 2025-06-18 only.
    pub revisions: std::collections::BTreeSet<crate::Revision>,
}

impl RsConfig {
    /// Defaults for everything but the resource, the issuer and the scopes.
    pub fn new(resource: ResourceUri, issuer: Issuer, scopes_supported: ScopeSet) -> Self {
        let validation = ValidationPolicy::new(issuer.as_str(), resource.as_str());
        Self {
            resource,
            issuer,
            scopes_supported,
            resource_name: None,
            validation,
            jwks_refetch_interval_secs: 10,
            base_scopes: ScopeSet::from_tokens([DEFAULT_BASE_SCOPE]),
            introspection: None,
            revisions: std::collections::BTreeSet::from([crate::Revision::default()]),
        }
    }

    /// Sets [`RsConfig::resource_name`], the human-readable name published in PRM.
    #[must_use]
    pub fn with_resource_name(mut self, resource_name: Option<String>) -> Self {
        self.resource_name = resource_name;
        self
    }

    /// Sets [`RsConfig::validation`], the token validation rules. It replaces the whole
    /// policy, its issuer and audience included (which [`RsConfig::new`] takes from the issuer
    /// and the resource): start from [`ValidationPolicy::new`] with those two.
    #[must_use]
    pub fn with_validation(mut self, validation: ValidationPolicy) -> Self {
        self.validation = validation;
        self
    }

    /// Sets [`RsConfig::jwks_refetch_interval_secs`], the least time between two JWKS
    /// refetches triggered by an unknown `kid` (default 10 s).
    #[must_use]
    pub fn with_jwks_refetch_interval_secs(mut self, secs: u64) -> Self {
        self.jwks_refetch_interval_secs = secs;
        self
    }

    /// Sets [`RsConfig::base_scopes`], the scopes every request's token must carry (default
    /// [`DEFAULT_BASE_SCOPE`]; an empty set turns the check off).
    #[must_use]
    pub fn with_base_scopes(mut self, base_scopes: ScopeSet) -> Self {
        self.base_scopes = base_scopes;
        self
    }

    /// Sets [`RsConfig::revisions`], the MCP revisions this server serves.
    #[must_use]
    pub fn with_revisions(mut self, revisions: impl IntoIterator<Item = crate::Revision>) -> Self {
        self.revisions = revisions.into_iter().collect();
        self
    }

    /// Sets [`RsConfig::introspection`]: ask the authorization server whether a valid JWT is
    /// still active (RFC 7662), or `None` (the default) to let the JWT alone decide.
    #[must_use]
    pub fn with_introspection(mut self, introspection: Option<IntrospectionConfig>) -> Self {
        self.introspection = introspection;
        self
    }
}

/// A refusal: the status and the exact `WWW-Authenticate` value to answer with.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Challenge {
    /// 400, 401 or 403.
    pub status: u16,
    /// The `WWW-Authenticate` field value.
    pub www_authenticate: String,
    /// Why.
    pub rejection: Rejection,
}

/// What [`ResourceServer::authenticate_active`] decided.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Authenticated {
    /// The answer.
    Done(Result<Access, Challenge>),
    /// The JWT is valid and no fresh introspection answer is cached: send
    /// [`Introspect::request`] to the authorization server and hand its answer (or `None` if
    /// it could not be sent or read) to [`ResourceServer::introspected`].
    Introspect(Introspect),
}

/// An introspection to make for one request.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Introspect {
    /// The request to send (it carries the token and the resource server's credential).
    pub request: HttpRequest,
    token: SecretDigest,
    access: Access,
}

// The request carries the token and the credential: only the URL is shown.
impl std::fmt::Debug for Introspect {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Introspect")
            .field("url", &self.request.url)
            .finish_non_exhaustive()
    }
}

/// The resource server: configuration plus the trusted issuer's keys, and the cache of tokens
/// verified with them (used only by [`ResourceServer::authenticate_cached`]).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct ResourceServer {
    config: RsConfig,
    keys: KeySet,
    prm_url: String,
    keys_fetched_at: Option<UnixTime>,
    cache: TokenCache,
    /// Introspection answers by token digest (used only with [`RsConfig::introspection`]).
    introspection_cache: IntrospectionCache,
    /// [`ResourceServer::metadata_paths`], computed once (the guard asks on every request).
    prm_paths: Vec<String>,
}

impl ResourceServer {
    /// A server with no keys yet (every token fails with `UnknownKey` until
    /// [`ResourceServer::set_keys`]).
    pub fn new(config: RsConfig) -> Self {
        let prm_url = well_known_insert(config.resource.as_str(), PRM_SUFFIX)
            .unwrap_or_else(|_| format!("{}/.well-known/{PRM_SUFFIX}", config.resource.origin()));
        let introspection_cache = IntrospectionCache::with_capacity(
            config.introspection.as_ref().map_or(0, |i| i.cache_entries),
        );
        let mut server = Self {
            introspection_cache,
            config,
            keys: KeySet::empty(),
            prm_url,
            keys_fetched_at: None,
            cache: TokenCache::new(),
            prm_paths: Vec::new(),
        };
        server.prm_paths = server.compute_metadata_paths();
        server
    }

    /// The configuration.
    pub fn config(&self) -> &RsConfig {
        &self.config
    }

    /// The URL of the Protected Resource Metadata (path-inserted, RFC 9728 §3.1).
    // spec: PRM-4
    pub fn metadata_url(&self) -> &str {
        &self.prm_url
    }

    /// The paths at which PRM is served: the path-inserted one, and the root one for clients
    /// that probe it (2025-11-25), which describes the same resource. Paths only: a query of
    /// the resource identifier (kept in [`ResourceServer::metadata_url`]) is not part of them.
    // spec: PRM-4, PRM-10
    pub fn metadata_paths(&self) -> Vec<String> {
        self.prm_paths.clone()
    }

    /// Is `path` one of [`ResourceServer::metadata_paths`]? (No allocation: the paths are
    /// computed when the server is made.)
    pub fn is_metadata_path(&self, path: &str) -> bool {
        self.prm_paths.iter().any(|p| p == path)
    }

    fn compute_metadata_paths(&self) -> Vec<String> {
        let origin_len = self.config.resource.origin().len();
        let path_of = |url: &str| {
            let tail = url.get(origin_len..).unwrap_or("/");
            tail.split_once('?')
                .map_or(tail, |(path, _)| path)
                .to_owned()
        };
        let mut paths = vec![path_of(&self.prm_url)];
        if let Ok(root) = well_known_root(self.config.resource.as_str(), PRM_SUFFIX) {
            let root = path_of(&root);
            if !paths.contains(&root) {
                paths.push(root);
            }
        }
        paths
    }

    /// The Protected Resource Metadata document.
    // spec: PRM-1, PRM-2, PRM-3, PRM-5, PRM-6
    pub fn metadata(&self) -> ProtectedResourceMetadata {
        ProtectedResourceMetadata {
            resource: self.config.resource.as_str().to_owned(),
            authorization_servers: vec![self.config.issuer.as_str().to_owned()],
            // spec: RS-19
            scopes_supported: self
                .config
                .scopes_supported
                .iter()
                .filter(|s| *s != OFFLINE_ACCESS)
                .map(str::to_owned)
                .collect(),
            bearer_methods_supported: vec!["header".into()],
            resource_name: self.config.resource_name.clone(),
            resource_documentation: None,
        }
    }

    /// Install the issuer's keys (after a JWKS fetch at `now`). Empties the token cache: a
    /// token verified with a key that is gone must be verified again.
    pub fn set_keys(&mut self, now: UnixTime, keys: KeySet) {
        self.keys = keys;
        self.keys_fetched_at = Some(now);
        self.cache.clear();
    }

    /// Record a JWKS fetch at `now` that failed (network error, non-200, unparsable body).
    /// The keys and the verified-token cache stay as they are, but the attempt counts toward
    /// the refetch rate limit of [`ResourceServer::should_refetch_keys`] like a successful
    /// fetch: a flood of unknown `kid`s cannot make the driver hammer an AS that is down.
    pub fn keys_fetch_failed(&mut self, now: UnixTime) {
        self.keys_fetched_at = Some(now);
    }

    /// The verified-token cache.
    pub fn token_cache(&self) -> &TokenCache {
        &self.cache
    }

    /// The current keys.
    pub fn keys(&self) -> &KeySet {
        &self.keys
    }

    /// Should the driver refetch the JWKS after this refusal? Only for an unknown key, and at
    /// most once per `jwks_refetch_interval_secs` after the last attempt, successful
    /// ([`ResourceServer::set_keys`]) or not ([`ResourceServer::keys_fetch_failed`]), so that
    /// an attacker cannot make us hammer the AS.
    pub fn should_refetch_keys(&self, now: UnixTime, challenge: &Challenge) -> bool {
        challenge.rejection == Rejection::UnknownKey
            && self
                .keys_fetched_at
                .is_none_or(|t| now >= t.plus(self.config.jwks_refetch_interval_secs))
    }

    /// Authenticate a request from its `Authorization` header values (the query string is never
    /// looked at: tokens in URLs are ignored). One call per request, every method alike.
    // spec: RS-1, RS-3, RS-4, RS-7, RS-10, RS-11, RS-12, ERR-1, ERR-3, ERR-4, ERR-6, ERR-7, SEC-2, SEC-3
    pub fn authenticate<'a>(
        &self,
        now: UnixTime,
        authorization: impl IntoIterator<Item = &'a [u8]>,
    ) -> Result<Access, Challenge> {
        let token = self.bearer_token(authorization)?;
        let access = validate(&self.config.validation, &self.keys, now, token)
            .map_err(|r| self.challenge(r, None))?;
        self.require_base_scopes(access)
    }

    /// A valid token must still carry [`RsConfig::base_scopes`], on every request.
    // spec: RS-1, ERR-2, PF-19
    fn require_base_scopes(&self, access: Access) -> Result<Access, Challenge> {
        self.require_scopes(&access, &self.config.base_scopes)?;
        Ok(access)
    }

    /// [`ResourceServer::authenticate`] through the verified-token cache
    /// ([`crate::cache`]): a token that passed full validation before is answered from
    /// memory, its `exp` and `nbf` checked again; a new one is validated in full and, if
    /// valid, remembered. Same answers as [`ResourceServer::authenticate`].
    // spec: RS-1, RS-3, RS-4, RS-7, RS-10, RS-11, RS-12, ERR-1, ERR-3, ERR-4, ERR-6, ERR-7, SEC-2, SEC-3
    pub fn authenticate_cached<'a>(
        &mut self,
        now: UnixTime,
        authorization: impl IntoIterator<Item = &'a [u8]>,
    ) -> Result<Access, Challenge> {
        let token = self.bearer_token(authorization)?;
        self.validate_cached(now, token)
    }

    fn validate_cached(&mut self, now: UnixTime, token: &str) -> Result<Access, Challenge> {
        let policy = &self.config.validation;
        let verdict = match self.cache.get(policy, now, token) {
            Some(verdict) => verdict,
            None => {
                validate_with_times(policy, &self.keys, now, token).map(|(access, nbf, iat)| {
                    self.cache.insert(policy, now, token, &access, nbf, iat);
                    access
                })
            }
        };
        let access = verdict.map_err(|r| self.challenge(r, None))?;
        self.require_base_scopes(access)
    }

    /// [`ResourceServer::authenticate_cached`], then, with [`RsConfig::introspection`], is
    /// the token still active at the authorization server? A fresh cached answer decides
    /// (inactive: 401 `invalid_token`); otherwise the driver is asked to introspect
    /// ([`Authenticated::Introspect`]). Without introspection configured this is
    /// [`ResourceServer::authenticate_cached`].
    // spec: RT-2, RS-18
    pub fn authenticate_active<'a>(
        &mut self,
        now: UnixTime,
        authorization: impl IntoIterator<Item = &'a [u8]>,
    ) -> Authenticated {
        let token = match self.bearer_token(authorization) {
            Ok(t) => t,
            Err(challenge) => return Authenticated::Done(Err(challenge)),
        };
        let access = match self.validate_cached(now, token) {
            Ok(a) => a,
            Err(challenge) => return Authenticated::Done(Err(challenge)),
        };
        let Some(config) = &self.config.introspection else {
            return Authenticated::Done(Ok(access));
        };
        let digest = SecretDigest::of(token);
        match self.introspection_cache.get(now, &digest) {
            Some(true) => Authenticated::Done(Ok(access)),
            Some(false) => Authenticated::Done(Err(self.challenge(Rejection::TokenInactive, None))),
            None => {
                let request = HttpRequest::new(Method::Post, config.endpoint.clone())
                    .header("content-type", "application/x-www-form-urlencoded")
                    .header("accept", "application/json")
                    .header(
                        "authorization",
                        crate::form::basic_authorization(
                            self.config.resource.as_str(),
                            &config.secret,
                        ),
                    )
                    .body(crate::form::encode([
                        ("token", token),
                        ("token_type_hint", "access_token"),
                    ]));
                Authenticated::Introspect(Introspect {
                    request,
                    token: digest,
                    access,
                })
            }
        }
    }

    /// The authorization server's answer to an [`Introspect`] (`None`: it could not be sent
    /// or read). Active, and about the same client and user as the JWT: the request goes on.
    /// Inactive: 401 `invalid_token`. No usable answer (unreachable, not 200, too large, not
    /// JSON): fail closed with 503 `temporarily_unavailable`, not cached, so that the next
    /// request asks again; the token is not blamed (a 401 would send the client to authorize
    /// again at an authorization server that is down). Answers are cached for
    /// [`IntrospectionConfig::cache_secs`], never past the token's `exp` (the JWT is
    /// validated on every request before the cache is consulted).
    // spec: RT-2, RS-18
    pub fn introspected(
        &mut self,
        now: UnixTime,
        call: Introspect,
        response: Option<&HttpResponse>,
    ) -> Result<Access, Challenge> {
        let answer = response
            .filter(|r| r.status == 200 && r.body.len() <= INTROSPECTION_RESPONSE_LEN_MAX)
            .and_then(|r| serde_json::from_slice::<IntrospectionResponse>(&r.body).ok());
        let Some(answer) = answer else {
            return Err(self.challenge(Rejection::IntrospectionUnavailable, None));
        };
        let access = call.access;
        let same = |claim: &Option<String>, ours: &str| claim.as_deref().is_none_or(|c| c == ours);
        let active = answer.active
            && same(&answer.client_id, &access.client_id)
            && same(&answer.sub, &access.subject);
        let secs = self
            .config
            .introspection
            .as_ref()
            .map_or(0, |c| c.cache_secs);
        self.introspection_cache
            .insert(now, call.token, active, now.plus(secs));
        if active {
            Ok(access)
        } else {
            Err(self.challenge(Rejection::TokenInactive, None))
        }
    }

    /// The bearer token of a request's `Authorization` values, or the challenge for none, for
    /// several, or for a malformed one.
    fn bearer_token<'a>(
        &self,
        authorization: impl IntoIterator<Item = &'a [u8]>,
    ) -> Result<&'a str, Challenge> {
        let mut values = authorization.into_iter();
        let token = match (values.next(), values.next()) {
            (None, _) => return Err(self.challenge(Rejection::NoCredentials, None)),
            (Some(_), Some(_)) => {
                return Err(self.challenge(Rejection::MalformedAuthorization, None));
            }
            (Some(value), None) => match parse_bearer_authorization(value) {
                Ok(token) => token,
                Err(AuthorizationError::OtherScheme) => {
                    return Err(self.challenge(Rejection::NoCredentials, None));
                }
                Err(AuthorizationError::Malformed) => {
                    return Err(self.challenge(Rejection::MalformedAuthorization, None));
                }
            },
        };
        Ok(token)
    }

    /// Check that a validated token carries every scope in `needed`; else 403
    /// `insufficient_scope` naming the scopes needed.
    // spec: RS-1, ERR-2
    pub fn require_scopes(&self, access: &Access, needed: &ScopeSet) -> Result<(), Challenge> {
        if needed.is_subset(&access.scopes) {
            Ok(())
        } else {
            Err(self.challenge(Rejection::InsufficientScope, Some(needed)))
        }
    }

    /// The challenge for a refusal: `resource_metadata` always; `error` only when credentials
    /// were presented; `scope` for `insufficient_scope`.
    /// `offline_access` is never named ([RS-19](crate::requirements#RS-19)), even when the
    /// configuration made it a needed scope.
    // spec: PRM-8, ERR-4, ERR-5, ERR-6, ERR-7, ERR-8, ERR-11, RS-19
    pub fn challenge(&self, rejection: Rejection, scope: Option<&ScopeSet>) -> Challenge {
        let scope = scope.map(|s| ScopeSet::from_tokens(s.iter().filter(|t| *t != OFFLINE_ACCESS)));
        let scope = scope.as_ref();
        let code = rejection.code();
        let with_error = rejection != Rejection::NoCredentials;
        let header = BearerChallenge {
            realm: None,
            resource_metadata: Some(self.prm_url.clone()),
            error: with_error.then(|| code.as_str().to_owned()),
            error_description: with_error.then(|| rejection.description().to_owned()),
            scope: scope.and_then(ScopeSet::to_option),
        };
        Challenge {
            status: code.status(),
            www_authenticate: header.to_header_value(),
            rejection,
        }
    }
}
