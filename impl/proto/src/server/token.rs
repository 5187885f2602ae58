//! The token endpoint: client authentication, redemption of a code (every binding checked,
//! PKCE last), refresh with rotation, and the grants that codes produce.

use std::collections::BTreeMap;

use serde::Serialize;

use super::{AsConfig, AuthorizationServer, CodeBinding, RecordKey, TokenAuthMethod};
use crate::entropy::{Entropy, mint};
use crate::error::Rejection;
use crate::form::Params;
use crate::jwt::{AccessClaims, Audience};
use crate::mutations::mutated;
use crate::pkce::PkceVerified;
use crate::time::UnixTime;
use crate::types::{ClientId, ScopeSet, SecretDigest, Subject};
use crate::uri::{HttpPolicy, ResourceUri};

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

impl AuthorizationServer {
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

    // ---- token endpoint helpers -----------------------------------------------------------

    /// Identify and authenticate the client (OAuth 2.1 §2.4): the registered method must be the
    /// one used; secrets are compared in constant time.
    // spec: TOK-4, GEN-4, CIMD-3
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
        // A client ID URL is a public client whether or not its document is still cached:
        // its codes and refresh tokens are bound to it, and PKCE guards the codes (CIMD-3).
        if !self.clients.contains_key(&client_id) && self.is_document_client(id) {
            return match (method, secret) {
                (TokenAuthMethod::None, None) => Ok(client_id),
                _ => Err(Rejection::ClientAuthFailed),
            };
        }
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
                let live = |grants: &BTreeMap<u64, std::sync::Arc<Grant>>| {
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
                if let Some(c) = self.clients.get_mut(client_id)
                    && !c.completed
                {
                    std::sync::Arc::make_mut(c).completed = true;
                    self.touch(RecordKey::Client(client_id.clone()));
                }
                let grant_id = self.next_grant;
                self.next_grant += 1;
                self.touch(RecordKey::GrantSequence);
                let with_refresh = self.config.refresh_tokens
                    && self
                        .client_record(client_id)
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
                self.grants.insert(grant_id, std::sync::Arc::new(grant));
                self.touch(RecordKey::Grant(grant_id));
                let scopes = binding.scopes.clone();
                if !mutated!(self.config, reusable_codes) {
                    self.codes.insert(
                        code,
                        CodeState::Redeemed {
                            binding,
                            grant: grant_id,
                        },
                    );
                    self.touch(RecordKey::Code(code));
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
        if &grant.client_id != client_id && !mutated!(self.config, skip_refresh_client_binding) {
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
            if asked != grant.resource && !mutated!(self.config, skip_refresh_resource_binding) {
                return Err(Rejection::ResourceChanged);
            }
            #[cfg(mcp_auth_mutations)]
            if self.config.mutations.skip_refresh_resource_binding
                && let Ok(known) = self.known_resource(resource)
                && let Some(grant) = self.grants.get_mut(&grant_id)
            {
                // The defense off: the grant, so the new token's audience, follows the request.
                std::sync::Arc::make_mut(grant).resource = known;
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
        let grant =
            std::sync::Arc::make_mut(self.grants.get_mut(&grant_id).ok_or(Rejection::Internal)?);
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
        self.touch(RecordKey::Grant(grant_id));
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
    pub(super) fn revoke_grant(&mut self, grant_id: u64) {
        if let Some(grant) = self.grants.get_mut(&grant_id)
            && !grant.revoked
        {
            let grant = std::sync::Arc::make_mut(grant);
            grant.revoked = true;
            if let Some(current) = grant.refresh_token.take() {
                grant.rotated.push(current);
            }
            self.touch(RecordKey::Grant(grant_id));
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
    if &binding.client_id != client_id && !mutated!(config, skip_client_binding) {
        return Err(Rejection::CodeClientMismatch);
    }
    match params.one("redirect_uri")? {
        _ if mutated!(config, skip_redirect_binding) => {}
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
    if config.mutations.skip_pkce
        || (config.mutations.optional_pkce && binding.challenge.is_absent())
    {
        return Ok(PkceVerified::skipped());
    }
    binding.challenge.verify(params.one("code_verifier")?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::entropy::Sequential;
    use crate::jwt::{Ed25519Signer, Signer};
    use crate::uri::Issuer;

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
