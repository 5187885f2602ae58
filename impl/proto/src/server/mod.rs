//! The authorization server: dynamic client registration (RFC 7591), the authorization endpoint
//! with consent, the token endpoint (authorization code with PKCE, refresh with rotation), and
//! JWT access tokens (RFC 9068) audience-bound to a resource (RFC 8707).
//!
//! [`AuthorizationServer`] is a plain value. Each endpoint is one method taking `now` and an
//! [`Entropy`](crate::entropy::Entropy) source; [`http`] decodes HTTP requests into those calls
//! and encodes the answers.
//!
//! This module holds the server value: its state, constructor and accessors, metadata and
//! signing keys, request admission ([`AuthorizationServer::admit`]) and the pruning of its
//! bounded tables. The endpoints live in submodules, by what they do (their items are
//! re-exported here):
//!
//! - `config`: [`AsConfig`] with its [`Lifetimes`], [`Limits`] and [`RateLimits`], and the
//!   endpoint [`paths`];
//! - `cimd`: Client ID Metadata Documents ([`AuthorizationServer::client_document_needed`],
//!   [`AuthorizationServer::client_document_arrived`]) and their cache;
//! - `register`: dynamic client registration ([`AuthorizationServer::register`]);
//! - `authorize`: the authorization endpoint and consent ([`AuthorizationServer::authorize`],
//!   [`AuthorizationServer::consent`]), their outcomes, and what a code is bound to
//!   ([`CodeBinding`]);
//! - `token`: the token endpoint ([`AuthorizationServer::token`]): client authentication, code
//!   redemption (every binding checked, PKCE last), refresh with rotation, and the [`Grant`]s;
//! - `revoke`: token revocation (RFC 7009) and introspection (RFC 7662);
//! - `browser`: browser sessions and login; [`users`]: the accounts;
//! - `window`: fixed-window counters (login throttling, rate limits);
//! - `pages`: the HTML pages; [`http`]: every endpoint over HTTP.

mod authorize;
mod browser;
mod cimd;
mod config;
mod durable;
pub mod http;
mod pages;
mod register;
mod revoke;
mod shared;
mod token;
pub mod users;
mod window;

use std::collections::BTreeMap;

use shared::Shared;

pub use authorize::{
    AuthorizationRedirect, AuthorizeOutcome, CodeBinding, ConsentDecision, ConsentPrompt, Inform,
    Pending,
};
pub use browser::{
    Answer, Browser, BrowserSession, LoginAttempt, LoginError, LoginForm, LoginPrompt, SessionKey,
};
pub use cimd::{
    CLIENT_ID_URL_LEN_MAX, CachedDocument, CimdLimits, DocumentFetch, FetchFailure,
    check_client_id_url, freshness, may_connect, validate_document,
};
pub use config::{
    ACCESS_TOKEN_LIFETIME_DEFAULT, AsConfig, Lifetimes, Limits, RATE_WINDOW, RateLimits, RateRoute,
    paths,
};
pub use durable::{Change, KeyRing, Record, RecordKey, RestoreError, StoredRecord, StoredUpdate};
pub use register::{ClientMetadata, RegisteredClient, RegistrationResponse, TokenAuthMethod};
pub use revoke::{Caller, Inactive, Introspection, Revocation, TokenKind};
pub use token::{
    ClientCredentials, CodeState, Grant, ROTATED_MAX, TokenError, TokenRequest, TokenResponse,
};
pub use users::{Accounts, UserRecord, Users, UsersError};

use crate::error::Rejection;
use crate::jwt::Signer;
use crate::metadata::AuthorizationServerMetadata;
use crate::pkce::S256;
use crate::time::UnixTime;
use crate::types::{ClientId, SecretDigest};
use crate::uri::Issuer;

/// Earlier signing keys still published in the JWK Set after [`AuthorizationServer::rotate_key`].
pub const RETIRED_KEYS_MAX: usize = 2;

/// The authorization server.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct AuthorizationServer {
    /// [`Shared`]: the configuration never changes after [`AuthorizationServer::new`], so
    /// clones share it (and its hash).
    config: Shared<AsConfig>,
    /// What the HTTP layer derives from the issuer, computed once (a function of `config`).
    routes: http::Routes,
    signer: Signer,
    /// Public keys of earlier signers, newest first (at most [`RETIRED_KEYS_MAX`]).
    retired: Vec<jsonwebtoken::jwk::Jwk>,
    /// Each table is [`Shared`]: a server is cloned for every model state, and a clone copies
    /// only the tables it writes. Behind an `Arc` too, a client is rarely changed after
    /// registration, so a copied table shares the records.
    clients: Shared<BTreeMap<ClientId, std::sync::Arc<RegisteredClient>>>,
    /// Client metadata documents, by client ID URL (bounded: [`CimdLimits::entries`]).
    documents: Shared<BTreeMap<ClientId, CachedDocument>>,
    pending: Shared<BTreeMap<String, Pending>>,
    /// Codes by the digest of their value.
    codes: Shared<BTreeMap<SecretDigest, CodeState>>,
    /// Behind an `Arc`, like the clients: a copied table shares the grants it does not change.
    grants: Shared<BTreeMap<u64, std::sync::Arc<Grant>>>,
    /// Grants by the digest of a current or rotated refresh token.
    refresh_index: Shared<BTreeMap<SecretDigest, u64>>,
    next_grant: u64,
    sessions: Shared<BTreeMap<SessionKey, BrowserSession>>,
    throttle: Shared<window::Windows<browser::ThrottleKey>>,
    rates: Shared<window::Windows<(RateRoute, std::net::IpAddr)>>,
    /// The durable records changed since the last [`AuthorizationServer::take_changes`], and
    /// their stored versions; `None` for a server that reports nothing
    /// ([`AuthorizationServer::new`]).
    journal: Option<durable::Journal>,
}

impl AuthorizationServer {
    /// A server with no clients.
    pub fn new(config: AsConfig, signer: Signer) -> Self {
        Self {
            routes: http::Routes::new(&config.issuer),
            config: Shared::new(config),
            signer,
            retired: Vec::new(),
            clients: Shared::default(),
            documents: Shared::default(),
            pending: Shared::default(),
            codes: Shared::default(),
            grants: Shared::default(),
            refresh_index: Shared::default(),
            next_grant: 0,
            sessions: Shared::default(),
            throttle: Shared::new(window::Windows::new()),
            rates: Shared::new(window::Windows::new()),
            journal: None,
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
        self.clients.iter().map(|(id, c)| (id, &**c))
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
        self.grants.iter().map(|(id, g)| (id, &**g))
    }

    /// The grant an access token with this `jti` was issued under, while it is remembered
    /// (the `jti` starts with the grant's [`Grant::handle`]).
    pub fn grant_of_access_token(&self, jti: &str) -> Option<(&u64, &Grant)> {
        let (handle, _) = jti.split_once('.')?;
        self.grants().find(|(_, g)| g.handle == handle)
    }

    /// Is the access token with this `jti` from a revoked grant?
    // spec: RT-2, TOK-8
    pub fn is_revoked(&self, jti: &str) -> bool {
        self.grant_of_access_token(jti)
            .is_some_and(|(_, g)| g.revoked)
    }

    /// RFC 8414 metadata.
    // spec: ASM-1, ASM-3, ASM-4, ASM-7, ASM-8, ASM-10, AZ-21, RT-13, RS-15, CIMD-8
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
            client_id_metadata_document_supported: c.client_id_metadata_documents,
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
        self.touch(RecordKey::Keys);
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

    /// Prune only when a table is full: expired entries are harmless (every lookup checks
    /// expiry), and a scan on every request made the endpoints O(table size).
    fn make_room(&mut self, now: UnixTime, len: usize, limit: usize) {
        if len >= limit {
            self.prune(now);
        }
    }

    /// Forget what has expired (pending consents, codes, idle grants), so bounded tables free up.
    fn prune(&mut self, now: UnixTime) {
        let mut expired_pending = Vec::new();
        self.pending.retain(|id, p| {
            let keep = now < p.expires_at;
            if !keep {
                expired_pending.push(id.clone());
            }
            keep
        });
        for id in expired_pending {
            self.touch(RecordKey::Pending(id));
        }
        let mut expired = Vec::new();
        self.codes.retain(|digest, c| match c {
            CodeState::Issued(b) | CodeState::Redeemed { binding: b, .. } => {
                let keep = now < b.expires_at;
                if !keep {
                    expired.push(*digest);
                }
                keep
            }
        });
        for digest in expired {
            self.touch(RecordKey::Code(digest));
        }
        let lifetimes = self.config.lifetimes.clone();
        let access = lifetimes.access_token;
        let mut forgotten = Vec::new();
        self.grants.retain(|id, g| {
            let refresh_alive = g.refresh_token.is_some()
                && now < g.last_used.plus(lifetimes.refresh_idle)
                && now < g.created.plus(lifetimes.refresh_absolute);
            let keep = refresh_alive || now < g.last_used.plus(access);
            if !keep {
                forgotten.push(*id);
            }
            keep
        });
        if !forgotten.is_empty() {
            let grants = &self.grants;
            self.refresh_index.retain(|_, id| grants.contains_key(id));
        }
        for id in forgotten {
            self.touch(RecordKey::Grant(id));
        }
    }
}
