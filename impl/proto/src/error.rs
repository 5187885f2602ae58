//! Rejections: one precise reason per rule, each naming its requirement, collapsed to the few
//! error codes and HTTP statuses that OAuth puts on the wire.
//!
//! Like rustls's `PeerMisbehaved -> AlertDescription`, the core keeps the precise reason
//! ([`Rejection`]) for logs, tests and the model checker, and maps it with an exhaustive `match`
//! to an [`ErrorCode`]; a new variant therefore forces a conscious mapping.

use std::fmt;

/// The `error` value of an OAuth error answer (RFC 6749 §4.1.2.1 and §5.2, RFC 6750 §3.1,
/// RFC 7591 §3.2.2, RFC 8707 §2).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[non_exhaustive]
pub enum ErrorCode {
    /// `invalid_request`: malformed, missing or repeated parameter.
    InvalidRequest,
    /// `invalid_client`: client authentication failed.
    InvalidClient,
    /// `invalid_grant`: the code or refresh token is invalid, expired, revoked or not this client's.
    InvalidGrant,
    /// `unauthorized_client`: the client may not use this grant or response type.
    UnauthorizedClient,
    /// `unsupported_grant_type`.
    UnsupportedGrantType,
    /// `unsupported_response_type`.
    UnsupportedResponseType,
    /// `invalid_scope`.
    InvalidScope,
    /// `invalid_target` (RFC 8707): the resource is unknown or not allowed.
    InvalidTarget,
    /// `access_denied`: the user said no.
    AccessDenied,
    /// `temporarily_unavailable`: a bounded table is full; try again later.
    TemporarilyUnavailable,
    /// `invalid_token` (RFC 6750): the access token is missing a property it must have.
    InvalidToken,
    /// `insufficient_scope` (RFC 6750): the token lacks a scope the request needs.
    InsufficientScope,
    /// `invalid_redirect_uri` (RFC 7591).
    InvalidRedirectUri,
    /// `invalid_client_metadata` (RFC 7591).
    InvalidClientMetadata,
    /// `server_error` (OAuth 2.1 §4.1.2.1): the server failed; the request was not at fault.
    ServerError,
}

impl ErrorCode {
    /// The wire spelling.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::InvalidRequest => "invalid_request",
            Self::InvalidClient => "invalid_client",
            Self::InvalidGrant => "invalid_grant",
            Self::UnauthorizedClient => "unauthorized_client",
            Self::UnsupportedGrantType => "unsupported_grant_type",
            Self::UnsupportedResponseType => "unsupported_response_type",
            Self::InvalidScope => "invalid_scope",
            Self::InvalidTarget => "invalid_target",
            Self::AccessDenied => "access_denied",
            Self::TemporarilyUnavailable => "temporarily_unavailable",
            Self::InvalidToken => "invalid_token",
            Self::InsufficientScope => "insufficient_scope",
            Self::InvalidRedirectUri => "invalid_redirect_uri",
            Self::InvalidClientMetadata => "invalid_client_metadata",
            Self::ServerError => "server_error",
        }
    }

    /// The HTTP status of a direct (non-redirect) answer carrying this code.
    // spec: TOK-14, ERR-8
    pub const fn status(self) -> u16 {
        match self {
            Self::InvalidClient | Self::InvalidToken => 401,
            Self::InsufficientScope => 403,
            Self::TemporarilyUnavailable => 503,
            Self::ServerError => 500,
            Self::InvalidRequest
            | Self::InvalidGrant
            | Self::UnauthorizedClient
            | Self::UnsupportedGrantType
            | Self::UnsupportedResponseType
            | Self::InvalidScope
            | Self::InvalidTarget
            | Self::AccessDenied
            | Self::InvalidRedirectUri
            | Self::InvalidClientMetadata => 400,
        }
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

macro_rules! rejections {
    ($( $(#[$doc:meta])* $name:ident => $code:ident, $req:literal, $text:literal; )*) => {
        /// The precise reason the core refused something. Each variant names the requirement of
        /// `spec/requirements.md` it enforces ([`Rejection::requirement`]) and maps to one wire
        /// [`ErrorCode`] ([`Rejection::code`]).
        #[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
        #[non_exhaustive]
        pub enum Rejection {
            $( $(#[$doc])* $name, )*
        }

        impl Rejection {
            /// Every variant, for tables and tests.
            pub const ALL: &'static [Self] = &[$(Self::$name),*];

            /// The requirement ID (in `spec/requirements.md`) this rejection enforces.
            pub const fn requirement(self) -> &'static str {
                match self { $(Self::$name => $req,)* }
            }

            /// The wire error code.
            pub const fn code(self) -> ErrorCode {
                match self { $(Self::$name => ErrorCode::$code,)* }
            }

            /// A human-readable `error_description` (ASCII, no quotes or backslashes).
            pub const fn description(self) -> &'static str {
                match self { $(Self::$name => $text,)* }
            }
        }
    };
}

rejections! {
    // ---- any endpoint: request syntax --------------------------------------------------
    /// The request could not be decoded (bad form or JSON encoding, wrong types).
    Malformed => InvalidRequest, "SEC-12", "The request is malformed";
    /// A parameter was sent more than once.
    DuplicateParameter => InvalidRequest, "TOK-3", "A request parameter is repeated";
    /// A required parameter is missing.
    MissingParameter => InvalidRequest, "TOK-1", "A required parameter is missing";
    /// The body or a value is larger than the configured bound.
    TooLarge => InvalidRequest, "SEC-12", "The request is too large";
    /// The content type is not the one the endpoint takes.
    WrongContentType => InvalidRequest, "TOK-1", "Unsupported content type";
    /// The HTTP method is not the one the endpoint takes.
    WrongMethod => InvalidRequest, "TOK-1", "Method not allowed";
    /// The request body could not be read to its end (the connection failed mid-way).
    BodyUnreadable => InvalidRequest, "SEC-12", "The request body could not be read";
    /// Too many requests from one address to one endpoint within a minute.
    RateLimited => TemporarilyUnavailable, "SEC-17", "Too many requests from this address; try again later";
    /// The `Host` header names another server than the issuer (DNS rebinding).
    WrongHost => InvalidRequest, "SEC-15", "The Host header does not name this server";
    /// A form was posted from another origin than the authorization server's.
    CrossOrigin => InvalidRequest, "SEC-15", "The form was sent from another site";
    /// A bounded table (clients, pending consents, codes, grants) is full.
    Full => TemporarilyUnavailable, "SEC-12", "The server is at capacity; try again later";
    /// The server failed (a signature could not be made, an internal invariant broke): its own
    /// fault, never the peer's, and never reported as a full table.
    Internal => ServerError, "GEN-11", "Internal server error; the request was not at fault";
    /// The durable store could not save what the request changed (it failed, or another
    /// instance changed the same record first): nothing was done; the client may retry.
    StoreUnavailable => TemporarilyUnavailable, "GEN-11", "The server could not save the change; try again later";

    // ---- registration (RFC 7591) -------------------------------------------------------
    /// No redirect URI was registered for a redirect-based client.
    RedirectUrisMissing => InvalidRedirectUri, "DCR-5", "redirect_uris is required";
    /// A redirect URI is not https or loopback http, has a fragment or a forbidden scheme.
    RedirectUriInvalid => InvalidRedirectUri, "DCR-10", "A redirect URI is not https or loopback http, or has a fragment";
    /// The token endpoint auth method is not one we support.
    AuthMethodUnsupported => InvalidClientMetadata, "DCR-8", "Unsupported token_endpoint_auth_method";
    /// A requested grant type is not supported.
    GrantTypeUnsupported => InvalidClientMetadata, "DCR-8", "Unsupported grant type";
    /// A requested response type is not supported, or does not fit the grant types.
    ResponseTypeUnsupported => InvalidClientMetadata, "DCR-8", "Unsupported response type";
    /// `application_type` is neither `native` nor `web`.
    ApplicationTypeUnknown => InvalidClientMetadata, "DCR-14", "application_type must be native or web";
    /// A redirect URI does not fit the `application_type`: `native` takes loopback http
    /// redirect URIs only, `web` https ones on a host other than loopback.
    ApplicationTypeMismatch => InvalidRedirectUri, "DCR-14", "The redirect URIs do not fit application_type: native requires loopback http redirect URIs, web requires https redirect URIs on a non-loopback host";
    /// Some other client metadata value is invalid (too long, wrong type, bad URL).
    ClientMetadataInvalid => InvalidClientMetadata, "DCR-9", "Invalid client metadata";

    // ---- authorization endpoint: shown to the user, never redirected ---------------------
    /// `client_id` is missing or unknown.
    UnknownClient => InvalidRequest, "AZ-4", "Unknown client";
    /// `redirect_uri` does not match a registered one.
    RedirectUriMismatch => InvalidRequest, "AZ-3", "The redirect URI is not registered for this client";
    /// The `client_id` looks like a URL but is not a valid client ID URL (https, a path, no
    /// fragment, no credentials, bounded length).
    ClientIdUrlInvalid => InvalidRequest, "CIMD-3", "The client_id URL is not a valid client metadata document URL";
    /// The client ID URL names a host or address this server does not fetch from (loopback,
    /// private network, link-local).
    ClientIdUrlRefused => InvalidRequest, "CIMD-4", "The client_id URL names an address this server does not fetch from";
    /// The client metadata document could not be fetched (no answer, a status other than
    /// 200, a redirect).
    ClientDocumentUnavailable => InvalidRequest, "CIMD-3", "The client metadata document could not be fetched";
    /// The client metadata document is larger than the server accepts.
    ClientDocumentTooLarge => InvalidRequest, "CIMD-4", "The client metadata document is too large";
    /// The client metadata document's `client_id` is not its URL.
    ClientDocumentIdMismatch => InvalidRequest, "CIMD-3", "The client_id in the client metadata document differs from its URL";
    /// The client metadata document asks for client authentication this server does not do.
    ClientDocumentAuthMethod => InvalidRequest, "CIMD-3", "The client metadata document must use token_endpoint_auth_method none (private_key_jwt is not supported)";
    /// The client metadata document is not valid (not JSON, no `client_name` or
    /// `redirect_uris`, a client secret, wrong content type).
    ClientDocumentInvalid => InvalidRequest, "CIMD-3", "The client metadata document is invalid";
    /// Several redirect URIs are registered and the request names none.
    RedirectUriRequired => InvalidRequest, "AZ-6", "redirect_uri is required";
    /// The consent form names no pending authorization, or its CSRF token is wrong.
    UnknownConsent => InvalidRequest, "AZ-7", "Unknown or expired authorization request";
    /// A login, consent or logout form came from another browser session than the one the
    /// authorization was started in, or from another user (consent CSRF).
    SessionMismatch => InvalidRequest, "AZ-29", "This authorization was started in another browser session; start again from the application";

    // ---- authorization endpoint: redirected to the verified redirect URI ----------------
    /// `response_type` is missing or not `code`.
    ResponseTypeNotCode => UnsupportedResponseType, "AZ-2", "Only response_type=code is supported";
    /// No `code_challenge`.
    MissingCodeChallenge => InvalidRequest, "PKCE-7", "code_challenge is required";
    /// `code_challenge_method` is absent (meaning plain) or not `S256`.
    ChallengeMethodNotS256 => InvalidRequest, "PKCE-8", "code_challenge_method must be S256";
    /// The `code_challenge` is not 43 base64url characters.
    MalformedCodeChallenge => InvalidRequest, "PKCE-6", "code_challenge is malformed";
    /// No `resource` parameter (RFC 8707; MCP requires it).
    MissingResource => InvalidTarget, "RES-2", "resource is required";
    /// The resource is not one this server issues tokens for, or not a valid URI.
    UnknownResource => InvalidTarget, "RES-12", "The resource is not known to this server";
    /// A requested scope is unknown.
    UnknownScope => InvalidScope, "TOK-17", "A requested scope is not supported";
    /// The client did not register the grant or response type it uses.
    GrantNotAllowed => UnauthorizedClient, "DCR-8", "The client is not registered for this grant type";
    /// The user denied the request.
    UserDenied => AccessDenied, "AZ-25", "The user denied the request";

    // ---- token endpoint ------------------------------------------------------------------
    /// `grant_type` is not `authorization_code` or `refresh_token`.
    UnsupportedGrant => UnsupportedGrantType, "TOK-14", "Unsupported grant_type";
    /// Client authentication failed, is missing for a confidential client, or uses another
    /// method than the registered one.
    ClientAuthFailed => InvalidClient, "TOK-4", "Client authentication failed";
    /// The code is unknown (never issued, or forgotten after expiry).
    UnknownCode => InvalidGrant, "TOK-5", "The authorization code is invalid";
    /// The code was already redeemed: what it produced is now revoked.
    CodeReused => InvalidGrant, "TOK-7", "The authorization code was already used";
    /// The code expired.
    CodeExpired => InvalidGrant, "AZ-14", "The authorization code expired";
    /// The code was issued to another client.
    CodeClientMismatch => InvalidGrant, "TOK-5", "The authorization code was issued to another client";
    /// The token request's `redirect_uri` differs from the authorization request's.
    RedirectUriChanged => InvalidGrant, "TOK-10", "redirect_uri does not match the authorization request";
    /// The token request's `resource` differs from the one the user consented to.
    ResourceChanged => InvalidTarget, "RES-14", "resource does not match the authorization";
    /// No `code_verifier`.
    MissingCodeVerifier => InvalidRequest, "PKCE-9", "code_verifier is required";
    /// The `code_verifier` violates the RFC 7636 length or character rules.
    MalformedCodeVerifier => InvalidRequest, "PKCE-3", "code_verifier is malformed";
    /// S256(code_verifier) differs from the code's challenge.
    PkceMismatch => InvalidGrant, "PKCE-9", "PKCE verification failed";
    /// The refresh token is unknown.
    UnknownRefreshToken => InvalidGrant, "RT-4", "The refresh token is invalid";
    /// A rotated refresh token was presented again: the whole grant is now revoked.
    RefreshTokenReused => InvalidGrant, "RT-2", "The refresh token was already used";
    /// The refresh token belongs to another client.
    RefreshClientMismatch => InvalidGrant, "RT-3", "The refresh token was issued to another client";
    /// The refresh token expired (idle or absolute lifetime).
    RefreshExpired => InvalidGrant, "RT-9", "The refresh token expired";
    /// The grant behind the refresh token was revoked.
    GrantRevoked => InvalidGrant, "RT-5", "The grant was revoked";
    /// A refresh asked for scopes beyond the original grant.
    ScopeWidened => InvalidScope, "RT-6", "The requested scope exceeds the original grant";

    // ---- resource server (RFC 6750, RFC 9068) --------------------------------------------
    /// No credentials: answered with a bare challenge (no error code).
    NoCredentials => InvalidToken, "ERR-7", "No access token";
    /// The `Authorization` header is malformed, or credentials came by several methods.
    MalformedAuthorization => InvalidRequest, "ERR-3", "Malformed Authorization header";
    /// The token is larger than the configured bound.
    TokenTooLarge => InvalidToken, "SEC-12", "The access token is too large";
    /// The token is not a compact JWS with JSON header and claims.
    TokenMalformed => InvalidToken, "JWT-12", "The access token is malformed";
    /// The header names an algorithm outside the allow-list (none, HMAC, ...).
    AlgorithmNotAllowed => InvalidToken, "JWT-9", "The token algorithm is not allowed";
    /// The header carries `jku`, `jwk`, `x5u` or `x5c`, or an unknown `crit`.
    ForbiddenHeader => InvalidToken, "JWT-13", "The token header carries a forbidden parameter";
    /// No key with this `kid` in the issuer's key set.
    UnknownKey => InvalidToken, "JWT-9", "The token signing key is unknown";
    /// The header `alg` differs from the algorithm of the selected key.
    AlgorithmKeyMismatch => InvalidToken, "JWT-9", "The token algorithm does not match its key";
    /// The signature does not verify.
    BadSignature => InvalidToken, "JWT-9", "The token signature is invalid";
    /// `typ` is not `at+jwt` / `application/at+jwt`.
    WrongTokenType => InvalidToken, "JWT-6", "The token is not an access token";
    /// `iss` is not the trusted issuer.
    WrongIssuer => InvalidToken, "JWT-7", "The token issuer is not trusted";
    /// `aud` does not contain this server's canonical URI.
    WrongAudience => InvalidToken, "RS-2", "The token was not issued for this resource";
    /// The token expired.
    TokenExpired => InvalidToken, "JWT-10", "The access token expired";
    /// `nbf` is in the future.
    TokenNotYetValid => InvalidToken, "JWT-11", "The access token is not yet valid";
    /// `iat` is in the future beyond the clock-skew leeway.
    IssuedInFuture => InvalidToken, "JWT-15", "The access token was issued in the future";
    /// A required claim is missing or has the wrong type.
    MissingClaim => InvalidToken, "JWT-3", "The access token lacks a required claim";
    /// The token lacks a scope the request needs.
    InsufficientScope => InsufficientScope, "ERR-2", "The access token lacks a required scope";
    /// The authorization server says the token is not active (its grant was revoked, or it
    /// is unknown there), per an introspection answer (RFC 7662).
    TokenInactive => InvalidToken, "RT-2", "The access token is no longer active";
    /// The resource server introspects, and the authorization server could not be asked or
    /// gave no usable answer: refused (fail closed) with 503, not blamed on the token.
    IntrospectionUnavailable => TemporarilyUnavailable, "RT-2", "The authorization server cannot confirm the token; try again later";
}

impl Rejection {
    /// The HTTP status of a direct answer: the error code's, except 429 Too Many Requests
    /// for [`Rejection::RateLimited`] (RFC 6585 §4) and 405 for [`Rejection::WrongMethod`].
    pub const fn status(self) -> u16 {
        match self {
            Self::RateLimited => 429,
            Self::WrongMethod => 405,
            _ => self.code().status(),
        }
    }

    /// Whose fault the refusal is: the peer's (its request or token), or this server's (a
    /// full table, an internal failure, an authorization server it cannot reach). Drivers
    /// log the first at debug level and the second as warnings; the wire answer is the same.
    pub const fn fault(self) -> Fault {
        match self {
            Self::Full
            | Self::Internal
            | Self::IntrospectionUnavailable
            | Self::StoreUnavailable => Fault::Local,
            _ => Fault::Peer,
        }
    }
}

/// Who is at fault for an error, in the manner of rustls (`PeerMisbehaved` and
/// `PeerIncompatible` against `General`, and API misuse apart).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Fault {
    /// The peer: a malformed, unauthorized or replayed request, a bad token or document.
    Peer,
    /// This side: capacity, an internal failure, a dependency it cannot reach.
    Local,
    /// The driver: it called the core out of order or fed it input it was not waiting for
    /// (a bug in the caller, never the peer's doing).
    Misuse,
}

impl fmt::Display for Rejection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} ({}: {})",
            self.code(),
            self.requirement(),
            self.description()
        )
    }
}

impl std::error::Error for Rejection {}

impl From<Rejection> for ErrorCode {
    fn from(rejection: Rejection) -> Self {
        rejection.code()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // spec: ERR-5, TOK-14
    #[test]
    fn descriptions_fit_the_error_description_charset() {
        for r in Rejection::ALL {
            assert!(
                r.description()
                    .bytes()
                    .all(|b| (0x20..=0x7e).contains(&b) && b != b'"' && b != b'\\'),
                "{r:?}"
            );
        }
    }

    // spec: ERR-8
    #[test]
    fn statuses_follow_rfc6750() {
        assert_eq!(Rejection::MalformedAuthorization.code().status(), 400);
        assert_eq!(Rejection::WrongAudience.code().status(), 401);
        assert_eq!(Rejection::InsufficientScope.code().status(), 403);
        assert_eq!(Rejection::ClientAuthFailed.code().status(), 401);
        assert_eq!(Rejection::CodeReused.code().status(), 400);
    }
}
