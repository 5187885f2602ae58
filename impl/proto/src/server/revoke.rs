//! Token revocation (RFC 7009) and introspection (RFC 7662) at the authorization server.
//!
//! Both work on grants: an access token's `jti` starts with its grant's handle, so revoking a
//! refresh token or an access token revokes the whole grant (the refresh token and every
//! access token issued under it), and an access token is active only while its grant is
//! remembered and not revoked.

use base64::Engine as _;

use super::{AuthorizationServer, TokenError, TokenRequest};
use crate::error::Rejection;
use crate::introspection::IntrospectionResponse;
use crate::jwt::{AccessClaims, Audience, KeySet, TOKEN_LEN_MAX, ValidationPolicy, validate};
use crate::time::UnixTime;
use crate::types::{ClientId, SecretDigest};
use crate::uri::ResourceUri;

/// The kind of token a request named.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum TokenKind {
    /// An access token (one of our JWTs).
    AccessToken,
    /// A refresh token (current or rotated out).
    RefreshToken,
}

/// What a revocation did. Whatever it is, the endpoint answers 200 with an empty body
/// (RFC 7009 §2.2); the variants are for logs and tests.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Revocation {
    /// The token's grant is now revoked: its refresh token and every access token issued
    /// under it. An access token revokes its whole grant too (RFC 7009 §2.1 lets the server
    /// do so; our access tokens are bound to their grant, not remembered one by one).
    Revoked {
        /// The grant.
        grant: u64,
        /// What was presented.
        kind: TokenKind,
    },
    /// The grant was already revoked.
    AlreadyRevoked,
    /// Not a token of this server, or expired: nothing to do (RFC 7009 §2.2).
    Unknown,
    /// A token issued to another client: nothing is revoked (RFC 7009 §2.1), and the answer
    /// is the same as for an unknown token, so that a client cannot learn whether a string is
    /// another client's live token ([PF-21](crate::requirements#PF-21)).
    OtherClient,
}

/// Who calls the introspection endpoint (RFC 7662 §2.1).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Caller {
    /// A registered client, authenticated as at the token endpoint: only its own tokens.
    Client(ClientId),
    /// A resource server with the credential of [`super::AsConfig::resource_credentials`]:
    /// only tokens whose audience is its resource.
    ResourceServer(ResourceUri),
}

/// Why a token is not active. The answer is `{"active": false}` in every case (RFC 7662
/// §2.2: nothing more about an inactive token).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Inactive {
    /// Not an access token of this server (bad signature, malformed, another issuer, a
    /// refresh token, or its grant forgotten).
    Unknown,
    /// Expired or not yet valid.
    Expired,
    /// Its grant was revoked (code replay, refresh-token reuse, revocation request).
    Revoked,
    /// The calling resource server is not the token's audience.
    OtherAudience,
    /// The calling client is not the one the token was issued to.
    OtherClient,
}

/// An introspection verdict.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Introspection {
    /// The token is active; this is the answer.
    Active(IntrospectionResponse),
    /// The token is not active, for this reason.
    Inactive(Inactive),
}

impl Introspection {
    /// The answer to send.
    pub fn response(&self) -> IntrospectionResponse {
        match self {
            Self::Active(r) => r.clone(),
            Self::Inactive(_) => IntrospectionResponse::inactive(),
        }
    }
}

/// The caller (authenticated first) and the `token` of a revocation or introspection
/// request. The hint is read only to refuse a repeated one, like every parameter.
fn authenticated_token<T>(
    request: &TokenRequest,
    authenticate: impl FnOnce(&super::ClientCredentials) -> Result<T, Rejection>,
) -> Result<(T, &str), TokenError> {
    let basic = request.credentials.basic.is_some();
    let err = |rejection| TokenError { rejection, basic };
    let caller = authenticate(&request.credentials).map_err(err)?;
    let token = request
        .params
        .one("token")
        .map_err(err)?
        .ok_or(err(Rejection::MissingParameter))?;
    request.params.one("token_type_hint").map_err(err)?;
    Ok((caller, token))
}

impl AuthorizationServer {
    /// The revocation endpoint (RFC 7009 §2.1): the client authenticates as at the token
    /// endpoint (a public client by its `client_id`); `token` is a refresh token or an access
    /// token of ours, whatever `token_type_hint` says (the hint is only a hint: every kind is
    /// searched, §2.1). A token of the client revokes its grant; anything else changes nothing.
    /// Only a failed client authentication or a malformed request is an error.
    // spec: RT-13, RT-14, RT-15, RT-16, RT-17
    pub fn revoke(
        &mut self,
        now: UnixTime,
        request: &TokenRequest,
    ) -> Result<Revocation, TokenError> {
        let (client_id, token) = authenticated_token(request, |c| self.authenticate(c))?;
        let (grant_id, kind) = match self.refresh_index.get(&SecretDigest::of(token)) {
            Some(&id) => (id, TokenKind::RefreshToken),
            None => {
                let Ok(claims) = self.own_access_token(now, token, None) else {
                    return Ok(Revocation::Unknown);
                };
                match self.grant_of_access_token(&claims.jti) {
                    Some((&id, _)) => (id, TokenKind::AccessToken),
                    None => return Ok(Revocation::Unknown),
                }
            }
        };
        let Some(grant) = self.grants.get(&grant_id) else {
            return Ok(Revocation::Unknown);
        };
        if grant.client_id != client_id {
            return Ok(Revocation::OtherClient);
        }
        if grant.revoked {
            return Ok(Revocation::AlreadyRevoked);
        }
        self.revoke_grant(grant_id);
        Ok(Revocation::Revoked {
            grant: grant_id,
            kind,
        })
    }

    /// The introspection endpoint (RFC 7662 §2.1): the caller is a client (authenticated as
    /// at the token endpoint) or a resource server with its configured credential (HTTP
    /// Basic, the resource URI as user name); anyone else gets `invalid_client`. An access
    /// token is active if it is ours, within `exp`/`nbf`, its grant remembered and not
    /// revoked, and the caller is its client or its audience. Refresh tokens and everything
    /// else are inactive.
    // spec: RS-15, RS-16, RS-17
    pub fn introspect(
        &self,
        now: UnixTime,
        request: &TokenRequest,
    ) -> Result<Introspection, TokenError> {
        let (caller, token) = authenticated_token(request, |c| self.authenticate_caller(c))?;
        let audience = match &caller {
            Caller::ResourceServer(resource) => Some(resource),
            Caller::Client(_) => None,
        };
        let claims = match self.own_access_token(now, token, audience) {
            Ok(claims) => claims,
            Err(why) => return Ok(Introspection::Inactive(why)),
        };
        if let Caller::Client(client) = &caller
            && client.0 != claims.client_id
        {
            return Ok(Introspection::Inactive(Inactive::OtherClient));
        }
        match self.grant_of_access_token(&claims.jti) {
            None => return Ok(Introspection::Inactive(Inactive::Unknown)),
            Some((_, grant)) if grant.revoked => {
                return Ok(Introspection::Inactive(Inactive::Revoked));
            }
            Some(_) => {}
        }
        let aud = match claims.aud {
            Audience::One(a) => a,
            Audience::Many(v) => v.join(" "),
        };
        Ok(Introspection::Active(IntrospectionResponse {
            active: true,
            scope: claims.scope,
            client_id: Some(claims.client_id),
            sub: Some(claims.sub),
            aud: Some(aud),
            iss: Some(claims.iss),
            exp: Some(claims.exp),
            iat: Some(claims.iat),
            token_type: Some("Bearer".into()),
        }))
    }

    /// A resource server by its configured credential (HTTP Basic only, compared in constant
    /// time), else a client as at the token endpoint.
    // spec: RS-15
    fn authenticate_caller(&self, creds: &super::ClientCredentials) -> Result<Caller, Rejection> {
        if let Some((id, secret)) = &creds.basic
            && let Some((resource, digest)) = self
                .config
                .resource_credentials
                .iter()
                .find(|(r, _)| r.as_str() == id)
        {
            if creds.client_id.as_ref().is_some_and(|c| c != id) || creds.client_secret.is_some() {
                return Err(Rejection::ClientAuthFailed);
            }
            return if digest.matches(secret) {
                Ok(Caller::ResourceServer(resource.clone()))
            } else {
                Err(Rejection::ClientAuthFailed)
            };
        }
        self.authenticate(creds).map(Caller::Client)
    }

    /// The claims of an access token this server signed (with its current or a retired key),
    /// for one of its resources (`audience`, when given), valid at `now` with no leeway.
    fn own_access_token(
        &self,
        now: UnixTime,
        token: &str,
        audience: Option<&ResourceUri>,
    ) -> Result<AccessClaims, Inactive> {
        if token.len() > TOKEN_LEN_MAX {
            return Err(Inactive::Unknown);
        }
        // The claims are read first only to pick the audience to validate against; they are
        // used after the signature has been verified.
        let payload = token.split('.').nth(1).ok_or(Inactive::Unknown)?;
        let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(payload)
            .map_err(|_| Inactive::Unknown)?;
        let claims: AccessClaims = serde_json::from_slice(&bytes).map_err(|_| Inactive::Unknown)?;
        let resource = match audience {
            Some(r) if claims.aud.contains(r.as_str()) => r.as_str().to_owned(),
            Some(_) => return Err(Inactive::OtherAudience),
            None => self
                .config
                .resources
                .keys()
                .find(|r| claims.aud.contains(r.as_str()))
                .ok_or(Inactive::Unknown)?
                .as_str()
                .to_owned(),
        };
        let mut policy = ValidationPolicy::new(self.config.issuer.as_str(), resource);
        policy.leeway_secs = 0;
        match validate(&policy, &KeySet::from_jwks(&self.jwks()), now, token) {
            Ok(_) => Ok(claims),
            Err(Rejection::TokenExpired | Rejection::TokenNotYetValid) => Err(Inactive::Expired),
            Err(_) => Err(Inactive::Unknown),
        }
    }
}
