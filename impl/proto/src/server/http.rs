//! The authorization server over HTTP, as pure functions: decode an [`HttpRequest`], make one
//! call into [`AuthorizationServer`], encode the [`HttpResponse`]. The hyper driver only moves
//! bytes and supplies the clock and entropy.

use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;

use super::pages;
pub use super::pages::escape;
use super::{
    Accounts, Answer, AuthorizationRedirect, AuthorizationServer, AuthorizeOutcome, Browser,
    ClientCredentials, ClientMetadata, ConsentDecision, ConsentPrompt, DocumentFetch, FetchFailure,
    LoginAttempt, LoginForm, LoginPrompt, RateRoute, TokenError, TokenRequest, Users, paths,
};
use crate::entropy::Entropy;
use crate::error::Rejection;
use crate::form::Params;
use crate::http::{HttpRequest, HttpResponse, Method, oauth_error};
use crate::metadata::{ASM_SUFFIX, OIDC_SUFFIX};
use crate::server::register::REGISTRATION_LEN_MAX;
use crate::time::UnixTime;
use crate::types::Subject;
use crate::uri::{well_known_append, well_known_insert};

/// How the authorization server meets the person in the browser: who can log in, and whether
/// consent is given automatically.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct UserAgentPolicy {
    /// The accounts: one implicit demo user (no login page), or users with passwords.
    pub accounts: Accounts,
    /// Approve every request as the logged-in user without showing the consent page. For
    /// tests and the demo only: it disables the consent step ([AZ-25](crate::requirements#AZ-25)).
    pub auto_approve: bool,
}

impl UserAgentPolicy {
    /// One implicit user, `subject`, and the consent page (no login page).
    pub fn single(subject: impl Into<String>) -> Self {
        Self {
            accounts: Accounts::Single(Subject(subject.into())),
            auto_approve: false,
        }
    }

    /// Accounts with passwords: a login page before the consent page.
    pub fn users(users: Users) -> Self {
        Self {
            accounts: Accounts::Users(users),
            auto_approve: false,
        }
    }

    /// The same policy, approving automatically (tests and the demo only).
    #[must_use]
    pub fn auto_approving(self) -> Self {
        Self {
            auto_approve: true,
            ..self
        }
    }
}

/// The paths (below the origin) at which the metadata documents are served: the RFC 8414
/// path-inserted URL, and the OpenID discovery URLs (inserted and appended), all with the same
/// content and `issuer`.
// spec: ASM-2
pub fn metadata_paths(server: &AuthorizationServer) -> Vec<String> {
    server.routes.0.metadata_paths.clone()
}

/// What [`prepare`] derives from the issuer on every request, computed once when the server is
/// made ([`AuthorizationServer::new`]; the issuer never changes after). Compared and hashed as
/// nothing: it is a function of the configuration, which the server's equality already covers.
#[derive(Clone)]
pub(crate) struct Routes(std::sync::Arc<RoutesOf>);

struct RoutesOf {
    /// [`metadata_paths`].
    metadata_paths: Vec<String>,
    /// The issuer's path without a trailing `/`: the prefix of every route.
    base: String,
    /// The issuer's origin and authority (`None`: the issuer does not parse as a URI).
    origin: Option<(String, String)>,
}

impl Routes {
    pub(crate) fn new(issuer: &crate::uri::Issuer) -> Self {
        let issuer = issuer.as_str();
        let parsed = crate::uri::parse_uri(issuer).ok();
        let origin_len = parsed.as_ref().map_or(0, |p| {
            p.scheme.len() + 3 + p.host.len() + p.port.map_or(0, |port| port.to_string().len() + 1)
        });
        let mut metadata_paths: Vec<String> = [
            well_known_insert(issuer, ASM_SUFFIX),
            well_known_insert(issuer, OIDC_SUFFIX),
            well_known_append(issuer, OIDC_SUFFIX),
        ]
        .into_iter()
        .flatten()
        .map(|u| u.get(origin_len..).unwrap_or("/").to_owned())
        .collect();
        metadata_paths.dedup();
        Self(std::sync::Arc::new(RoutesOf {
            metadata_paths,
            base: parsed
                .as_ref()
                .map(|p| p.path.trim_end_matches('/').to_owned())
                .unwrap_or_default(),
            origin: parsed.map(|p| (p.origin(), p.authority())),
        }))
    }
}

impl PartialEq for Routes {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}

impl Eq for Routes {}

impl std::hash::Hash for Routes {
    fn hash<H: std::hash::Hasher>(&self, _: &mut H) {}
}

impl fmt::Debug for Routes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Routes")
    }
}

/// CORS headers for endpoints browser-based clients call directly (no cookies are involved).
fn cors(response: HttpResponse) -> HttpResponse {
    response
        .header("access-control-allow-origin", "*")
        .header("access-control-allow-methods", "GET, POST, OPTIONS")
        .header(
            "access-control-allow-headers",
            "authorization, content-type, mcp-protocol-version",
        )
        .header("access-control-max-age", "600")
}

fn method_not_allowed(allow: &str) -> HttpResponse {
    oauth_error(Rejection::WrongMethod).header("allow", allow)
}

/// The name of the session cookie: `__Host-` prefixed when the issuer is https (the cookie
/// is then `Secure`, host-only and for the whole origin).
// spec: PF-15
pub fn session_cookie_name(server: &AuthorizationServer) -> &'static str {
    if is_https(server) {
        "__Host-mcp-auth-session"
    } else {
        "mcp-auth-session"
    }
}

fn is_https(server: &AuthorizationServer) -> bool {
    server
        .issuer()
        .as_str()
        .get(..8)
        .is_some_and(|s| s.eq_ignore_ascii_case("https://"))
}

/// The `Set-Cookie` value for a new session: `HttpOnly`, `SameSite=Lax`, `Path=/`, and
/// `Secure` over https; no expiry (the server enforces the idle and absolute lifetimes).
// spec: PF-15
pub fn set_session_cookie(server: &AuthorizationServer, value: &str) -> String {
    let secure = if is_https(server) { "; Secure" } else { "" };
    format!(
        "{}={value}; Path=/; HttpOnly; SameSite=Lax{secure}",
        session_cookie_name(server)
    )
}

/// The browser's session cookie and address, as the request tells them.
pub fn browser_of(server: &AuthorizationServer, request: &HttpRequest) -> Browser {
    let name = session_cookie_name(server);
    let session = request
        .header_values("cookie")
        .filter_map(|v| std::str::from_utf8(v).ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(n, _)| *n == name)
        .map(|(_, v)| v.to_owned())
        .filter(|v| !v.is_empty() && v.len() <= 128);
    Browser {
        session,
        peer: request.peer,
    }
}

/// DNS rebinding and cross-site forms: a `Host` that is not the issuer's is refused on every
/// route, and so is a form POST whose `Origin` is not the issuer's.
// spec: SEC-15
fn misdirected(
    server: &AuthorizationServer,
    request: &HttpRequest,
    form: bool,
) -> Option<Rejection> {
    let (origin, authority) = server.routes.0.origin.as_ref()?;
    // Every value must match: a second header must not smuggle a foreign value past the check.
    let all_are = |name: &str, expected: &str| {
        request
            .header_values(name)
            .all(|v| v.eq_ignore_ascii_case(expected.as_bytes()))
    };
    if !all_are("host", authority) {
        return Some(Rejection::WrongHost);
    }
    if form && !all_are("origin", origin) {
        return Some(Rejection::CrossOrigin);
    }
    None
}

/// What an answer of the authorization server is, in the server's own terms: the value its
/// page or redirect was rendered from, for a caller that acts on the answer (a test, the model
/// checker) without reading it back from the HTML or the headers. A driver that only sends the
/// response does not need it: [`handle`], [`prepare`], [`finish_login`] and [`finish_fetch`]
/// leave it out; their `_typed` twins return it beside the response ([`Reply`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Answered {
    /// A page or a redirect for the browser (authorization, consent, login, logout, and an
    /// error page for a refused request on any route): the response is this outcome rendered.
    Browser(Box<AuthorizeOutcome>),
    /// Any other answer (metadata, JWK Set, registration, token, revocation, introspection, a
    /// CORS preflight, a wrong method, not found): the response is all there is to it.
    Other,
}

impl Answered {
    /// The outcome a page or redirect for the browser was rendered from; `None` for any other
    /// answer.
    pub fn outcome(&self) -> Option<&AuthorizeOutcome> {
        match self {
            Self::Browser(outcome) => Some(outcome),
            Self::Other => None,
        }
    }

    /// The login page's prompt (its form's `id` and `csrf` are those of
    /// [`LoginPrompt::prompt`]), if the answer is the login page.
    pub fn login(&self) -> Option<&LoginPrompt> {
        match self.outcome()? {
            AuthorizeOutcome::Login(prompt) => Some(prompt),
            _ => None,
        }
    }

    /// The consent page's prompt (its form's `id` and `csrf`, the client, resource and scopes
    /// it shows), if the answer is the consent page.
    pub fn consent(&self) -> Option<&ConsentPrompt> {
        match self.outcome()? {
            AuthorizeOutcome::Consent(prompt) => Some(prompt),
            _ => None,
        }
    }

    /// The redirect to the client (its `Location`, and the code or the error it carries), if
    /// the answer is one.
    pub fn redirect(&self) -> Option<&AuthorizationRedirect> {
        match self.outcome()? {
            AuthorizeOutcome::Redirect(redirect) => Some(redirect),
            _ => None,
        }
    }

    /// The id of the pending authorization whose page the browser is sent to (a 303 to
    /// `consent?id=…`, after a login or logout form), if the answer is that redirect.
    pub fn show_pending(&self) -> Option<&str> {
        match self.outcome()? {
            AuthorizeOutcome::ShowPending(id) => Some(id),
            _ => None,
        }
    }
}

/// An HTTP answer of the authorization server with what it is: from [`handle_typed`],
/// [`prepare_typed`], [`finish_login_typed`] and [`finish_fetch_typed`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Reply {
    /// The response, exactly as the untyped functions return it.
    pub response: HttpResponse,
    /// What the response is, from the values it was rendered from.
    pub answered: Answered,
}

/// A response that is no browser answer ([`Answered::Other`]).
fn other(response: HttpResponse) -> Reply {
    Reply {
        response,
        answered: Answered::Other,
    }
}

/// What [`prepare`] (the answer: an [`HttpResponse`]) or [`prepare_typed`] (the answer: a
/// [`Reply`]) leaves to do.
#[derive(Debug)]
pub enum Prepared<R = HttpResponse> {
    /// The answer.
    Done(R),
    /// A login form to verify: run [`LoginAttempt::verify`] (slow, outside any lock), then
    /// [`finish_login`] (or [`finish_login_typed`]).
    Login(LoginAttempt),
    /// An authorization request whose client's metadata document must be fetched first:
    /// perform [`ClientFetch::fetch`] (see [`DocumentFetch`]), then [`finish_fetch`] (or
    /// [`finish_fetch_typed`]).
    Fetch(ClientFetch),
}

/// An authorization request waiting for its client's metadata document.
#[derive(Clone, Debug)]
pub struct ClientFetch {
    /// What to fetch, and the bounds of the fetch.
    pub fetch: DocumentFetch,
    /// The authorization request, answered once the document is in.
    request: HttpRequest,
}

/// Handle one HTTP request addressed to the authorization server, verifying a login's
/// password inline. A server that shares the [`AuthorizationServer`] between requests should
/// call [`prepare`] and [`finish_login`] instead, so that no lock is held while argon2 runs.
pub fn handle(
    server: &mut AuthorizationServer,
    now: UnixTime,
    entropy: &mut impl Entropy,
    user: &UserAgentPolicy,
    request: &HttpRequest,
) -> HttpResponse {
    handle_typed(server, now, entropy, user, request).response
}

/// [`handle`], with what was answered beside the response.
pub fn handle_typed(
    server: &mut AuthorizationServer,
    now: UnixTime,
    entropy: &mut impl Entropy,
    user: &UserAgentPolicy,
    request: &HttpRequest,
) -> Reply {
    match prepare_typed(server, now, entropy, user, request) {
        Prepared::Done(reply) => reply,
        Prepared::Login(attempt) => {
            let verified = attempt.verify();
            finish_login_typed(server, now, entropy, attempt, verified)
        }
        // This function does no I/O: a document that needs fetching is unavailable here.
        Prepared::Fetch(pending) => {
            let failure = FetchFailure::Transport("this driver does not fetch".into());
            finish_fetch_typed(server, now, entropy, user, pending, Err(failure))
        }
    }
}

/// Complete an authorization request that [`prepare`] left waiting for its client's metadata
/// document, with the driver's answer to the fetch. A document that cannot be fetched or is
/// invalid is an error page, never a redirect (the redirect URI is unverified).
// spec: CIMD-3, CIMD-4, CIMD-5
pub fn finish_fetch(
    server: &mut AuthorizationServer,
    now: UnixTime,
    entropy: &mut impl Entropy,
    user: &UserAgentPolicy,
    pending: ClientFetch,
    answer: Result<HttpResponse, FetchFailure>,
) -> HttpResponse {
    finish_fetch_typed(server, now, entropy, user, pending, answer).response
}

/// [`finish_fetch`], with what was answered beside the response.
pub fn finish_fetch_typed(
    server: &mut AuthorizationServer,
    now: UnixTime,
    entropy: &mut impl Entropy,
    user: &UserAgentPolicy,
    pending: ClientFetch,
    answer: Result<HttpResponse, FetchFailure>,
) -> Reply {
    if let Err(r) = server.client_document_arrived(now, &pending.fetch, answer) {
        return respond(server, AuthorizeOutcome::Refuse(r).into());
    }
    match authorize(server, now, entropy, user, &pending.request, false) {
        Prepared::Done(reply) => reply,
        // Not reached: the document is fresh now, and no fetch is asked for twice.
        Prepared::Login(_) | Prepared::Fetch(_) => respond(
            server,
            AuthorizeOutcome::Refuse(Rejection::ClientDocumentUnavailable).into(),
        ),
    }
}

/// Complete a login that [`prepare`] started, once the password has been verified.
pub fn finish_login(
    server: &mut AuthorizationServer,
    now: UnixTime,
    entropy: &mut impl Entropy,
    attempt: LoginAttempt,
    verified: bool,
) -> HttpResponse {
    finish_login_typed(server, now, entropy, attempt, verified).response
}

/// [`finish_login`], with what was answered beside the response.
pub fn finish_login_typed(
    server: &mut AuthorizationServer,
    now: UnixTime,
    entropy: &mut impl Entropy,
    attempt: LoginAttempt,
    verified: bool,
) -> Reply {
    let answer = server.finish_login(now, entropy, attempt, verified);
    respond(server, answer)
}

/// Handle one HTTP request, up to the password verification of a login form.
pub fn prepare(
    server: &mut AuthorizationServer,
    now: UnixTime,
    entropy: &mut impl Entropy,
    user: &UserAgentPolicy,
    request: &HttpRequest,
) -> Prepared {
    match prepare_typed(server, now, entropy, user, request) {
        Prepared::Done(reply) => Prepared::Done(reply.response),
        Prepared::Login(attempt) => Prepared::Login(attempt),
        Prepared::Fetch(pending) => Prepared::Fetch(pending),
    }
}

/// [`prepare`], with what was answered beside the response when it is done.
pub fn prepare_typed(
    server: &mut AuthorizationServer,
    now: UnixTime,
    entropy: &mut impl Entropy,
    user: &UserAgentPolicy,
    request: &HttpRequest,
) -> Prepared<Reply> {
    let base = server.routes.0.base.as_str();
    let path = request.url.as_str();
    let route = path.strip_prefix(base).unwrap_or("");
    let is_form = matches!(route, paths::CONSENT | paths::LOGIN | paths::LOGOUT)
        && request.method == Method::Post;
    if let Some(r) = misdirected(server, request, is_form) {
        return Prepared::Done(respond(server, AuthorizeOutcome::Refuse(r).into()));
    }
    let is_metadata = server.routes.0.metadata_paths.iter().any(|p| p == path);
    let cors_route =
        is_metadata || [paths::JWKS, paths::REGISTER, paths::TOKEN, paths::REVOKE].contains(&route);
    if request.method == Method::Options && cors_route {
        return Prepared::Done(other(cors(HttpResponse::new(204))));
    }
    if is_metadata {
        return Prepared::Done(other(match request.method {
            Method::Get => cors(HttpResponse::json(200, &server.metadata())),
            _ => cors(method_not_allowed("GET, OPTIONS")),
        }));
    }
    let rate_route = match (route, request.method) {
        (paths::REGISTER, Method::Post) => Some(RateRoute::Register),
        (paths::AUTHORIZE, Method::Get) => Some(RateRoute::Authorize),
        (paths::TOKEN, Method::Post) => Some(RateRoute::Token),
        _ => None,
    };
    if let Some(rate_route) = rate_route
        && let Err(r) = server.admit(now, rate_route, request.peer)
    {
        return Prepared::Done(match rate_route {
            RateRoute::Authorize => respond(server, AuthorizeOutcome::Refuse(r).into()),
            RateRoute::Register | RateRoute::Token => other(cors(oauth_error(r))),
        });
    }
    let response = match (route, request.method) {
        (paths::JWKS, Method::Get) => cors(HttpResponse::json(200, &server.jwks())),
        (paths::REGISTER, Method::Post) => cors(register(server, now, entropy, request)),
        (paths::TOKEN, Method::Post) => cors(token(server, now, entropy, request)),
        (paths::REVOKE, Method::Post) => cors(revoke(server, now, request)),
        (paths::INTROSPECT, Method::Post) => introspect(server, now, request),
        (paths::AUTHORIZE, Method::Get) => {
            return authorize(server, now, entropy, user, request, true);
        }
        (paths::CONSENT, Method::Get) => {
            return Prepared::Done(show_pending(server, now, entropy, user, request));
        }
        (paths::CONSENT, Method::Post) => {
            return Prepared::Done(consent(server, now, entropy, request));
        }
        (paths::LOGIN, Method::Post) => return login(server, now, user, request),
        (paths::LOGOUT, Method::Post) => {
            return Prepared::Done(logout(server, now, entropy, user, request));
        }
        (paths::JWKS, _) => cors(method_not_allowed("GET, OPTIONS")),
        (paths::REGISTER | paths::TOKEN | paths::REVOKE, _) => {
            cors(method_not_allowed("POST, OPTIONS"))
        }
        (paths::INTROSPECT, _) => method_not_allowed("POST"),
        (paths::AUTHORIZE, _) => method_not_allowed("GET"),
        (paths::CONSENT, _) => method_not_allowed("GET, POST"),
        (paths::LOGIN | paths::LOGOUT, _) => method_not_allowed("POST"),
        // No OAuth matter, so no OAuth error code (GEN-11).
        _ => HttpResponse::new(404)
            .header("content-type", "text/plain")
            .with_body("not found"),
    };
    Prepared::Done(other(response))
}

// spec: DCR-4, DCR-6, DCR-9, TOK-12
fn register(
    server: &mut AuthorizationServer,
    now: UnixTime,
    entropy: &mut impl Entropy,
    request: &HttpRequest,
) -> HttpResponse {
    if !request.has_content_type("application/json") {
        return oauth_error(Rejection::ClientMetadataInvalid);
    }
    if request.body.len() > REGISTRATION_LEN_MAX {
        return oauth_error(Rejection::ClientMetadataInvalid);
    }
    let Ok(metadata) = serde_json::from_slice::<ClientMetadata>(&request.body) else {
        return oauth_error(Rejection::ClientMetadataInvalid);
    };
    match server.register(now, entropy, metadata) {
        Ok(response) => HttpResponse::json(201, &response).header("cache-control", "no-store"),
        Err(r) => oauth_error(r),
    }
}

/// Decode `Authorization: Basic` (RFC 6749 §2.3.1: id and secret are form-encoded first).
fn basic_credentials(request: &HttpRequest) -> Result<Option<(String, String)>, Rejection> {
    let mut values = request.header_values("authorization");
    let value = match (values.next(), values.next()) {
        (None, _) => return Ok(None),
        (Some(v), None) => v,
        (Some(_), Some(_)) => return Err(Rejection::ClientAuthFailed),
    };
    let value = std::str::from_utf8(value).map_err(|_| Rejection::ClientAuthFailed)?;
    let (scheme, encoded) = value.split_once(' ').ok_or(Rejection::ClientAuthFailed)?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return Err(Rejection::ClientAuthFailed);
    }
    let decoded = STANDARD
        .decode(encoded.trim())
        .map_err(|_| Rejection::ClientAuthFailed)?;
    let decoded = String::from_utf8(decoded).map_err(|_| Rejection::ClientAuthFailed)?;
    let (id, secret) = decoded.split_once(':').ok_or(Rejection::ClientAuthFailed)?;
    let unescape = |s: &str| -> String {
        form_urlencoded::parse(format!("x={s}").as_bytes())
            .next()
            .map(|(_, v)| v.into_owned())
            .unwrap_or_default()
    };
    Ok(Some((unescape(id), unescape(secret))))
}

/// The form and client credentials of a token, revocation or introspection request, or the
/// error answer (a bad `Authorization: Basic` gets 401 with a Basic challenge).
fn credentials_request(request: &HttpRequest) -> Result<TokenRequest, HttpResponse> {
    if !request.has_content_type("application/x-www-form-urlencoded") {
        return Err(oauth_error(Rejection::WrongContentType));
    }
    let params = Params::decode(&request.body).map_err(oauth_error)?;
    let basic = basic_credentials(request)
        .map_err(|r| oauth_error(r).header("www-authenticate", "Basic realm=\"token\""))?;
    match (params.one("client_id"), params.one("client_secret")) {
        (Ok(client_id), Ok(client_secret)) => Ok(TokenRequest {
            credentials: ClientCredentials {
                client_id: client_id.map(str::to_owned),
                client_secret: client_secret.map(str::to_owned),
                basic,
            },
            params,
        }),
        (Err(r), _) | (_, Err(r)) => Err(oauth_error(r)),
    }
}

/// The answer to a refused token, revocation or introspection request: a failed HTTP Basic
/// authentication gets 401 with a Basic challenge (RFC 6749 §5.2).
fn token_error(e: TokenError) -> HttpResponse {
    if e.basic && e.rejection.code().status() == 401 {
        oauth_error(e.rejection).header("www-authenticate", "Basic realm=\"token\"")
    } else {
        oauth_error(e.rejection)
    }
}

// spec: TOK-1, TOK-2, TOK-3, TOK-11, TOK-12, TOK-14
fn token(
    server: &mut AuthorizationServer,
    now: UnixTime,
    entropy: &mut impl Entropy,
    request: &HttpRequest,
) -> HttpResponse {
    let request = match credentials_request(request) {
        Ok(r) => r,
        Err(response) => return response,
    };
    match server.token(now, entropy, &request) {
        Ok(response) => HttpResponse::json(200, &response)
            .header("cache-control", "no-store")
            .header("pragma", "no-cache"),
        Err(e) => token_error(e),
    }
}

/// `POST /revoke` (RFC 7009 §2.1): 200 with an empty body whether or not anything was
/// revoked (§2.2); an error only for client authentication or a malformed request (§2.2.1).
// spec: RT-13, RT-17
fn revoke(server: &mut AuthorizationServer, now: UnixTime, request: &HttpRequest) -> HttpResponse {
    let request = match credentials_request(request) {
        Ok(r) => r,
        Err(response) => return response,
    };
    match server.revoke(now, &request) {
        // What was done is not told (§2.2): a token of another client looks unknown.
        Ok(_) => HttpResponse::new(200).header("cache-control", "no-store"),
        Err(e) => token_error(e),
    }
}

/// `POST /introspect` (RFC 7662 §2.1): a JSON answer, `{"active": false}` for anything not
/// active (§2.2); 401 for a caller that is not authenticated (§2.3).
// spec: RS-15, RS-16, RS-17
fn introspect(server: &AuthorizationServer, now: UnixTime, request: &HttpRequest) -> HttpResponse {
    let request = match credentials_request(request) {
        Ok(r) => r,
        Err(response) => return response,
    };
    match server.introspect(now, &request) {
        Ok(verdict) => HttpResponse::json(200, &verdict.response())
            .header("cache-control", "no-store")
            .header("pragma", "no-cache"),
        Err(e) => token_error(e),
    }
}

fn form_params(request: &HttpRequest) -> Result<Params, Rejection> {
    if !request.has_content_type("application/x-www-form-urlencoded") {
        return Err(Rejection::WrongContentType);
    }
    Params::decode(&request.body)
}

fn field(params: &Params, name: &str) -> String {
    params.one(name).ok().flatten().unwrap_or("").to_owned()
}

/// `GET authorize`. A client ID URL whose document is not cached and fresh makes this a
/// [`Prepared::Fetch`] when `may_fetch` (the first pass); after the fetch it runs again
/// without.
// spec: AZ-7, AZ-29, CIMD-3
fn authorize(
    server: &mut AuthorizationServer,
    now: UnixTime,
    entropy: &mut impl Entropy,
    user: &UserAgentPolicy,
    request: &HttpRequest,
    may_fetch: bool,
) -> Prepared<Reply> {
    let refuse = |server: &AuthorizationServer, r| {
        Prepared::Done(respond(server, AuthorizeOutcome::Refuse(r).into()))
    };
    let params = match Params::decode(request.query.as_deref().unwrap_or("").as_bytes()) {
        Ok(p) => p,
        Err(r) => return refuse(server, r),
    };
    if let Ok(Some(client_id)) = params.one("client_id") {
        match server.client_document_needed(now, client_id) {
            Ok(None) => {}
            Ok(Some(fetch)) if may_fetch => {
                return Prepared::Fetch(ClientFetch {
                    fetch,
                    request: request.clone(),
                });
            }
            Ok(Some(_)) => return refuse(server, Rejection::ClientDocumentUnavailable),
            Err(r) => return refuse(server, r),
        }
    }
    let browser = browser_of(server, request);
    let answer = server.authorize(now, entropy, &params, &user.accounts, &browser);
    let session = answer.set_session.clone().or(browser.session);
    let answer = auto_approve(server, now, entropy, user, answer, session);
    Prepared::Done(respond(server, answer))
}

/// With auto-approval on, a consent page becomes the user's approval at once.
fn auto_approve(
    server: &mut AuthorizationServer,
    now: UnixTime,
    entropy: &mut impl Entropy,
    user: &UserAgentPolicy,
    answer: Answer,
    session: Option<String>,
) -> Answer {
    match answer.outcome {
        AuthorizeOutcome::Consent(prompt) if user.auto_approve => {
            let decision = ConsentDecision {
                id: prompt.id,
                csrf: prompt.csrf,
                approve: true,
                session,
            };
            Answer {
                outcome: server.consent(now, entropy, &decision),
                set_session: answer.set_session,
            }
        }
        _ => answer,
    }
}

/// `GET consent?id=…`: the page of a pending authorization again (after login or logout),
/// for the browser session it belongs to.
fn show_pending(
    server: &mut AuthorizationServer,
    now: UnixTime,
    entropy: &mut impl Entropy,
    user: &UserAgentPolicy,
    request: &HttpRequest,
) -> Reply {
    let params = Params::decode(request.query.as_deref().unwrap_or("").as_bytes());
    let id = params.map(|p| field(&p, "id")).unwrap_or_default();
    let browser = browser_of(server, request);
    let answer = server
        .show_pending(now, &user.accounts, &browser, &id)
        .into();
    let answer = auto_approve(server, now, entropy, user, answer, browser.session);
    respond(server, answer)
}

// spec: AZ-19, AZ-26, AZ-29
fn consent(
    server: &mut AuthorizationServer,
    now: UnixTime,
    entropy: &mut impl Entropy,
    request: &HttpRequest,
) -> Reply {
    let params = match form_params(request) {
        Ok(p) => p,
        Err(r) => return respond(server, AuthorizeOutcome::Refuse(r).into()),
    };
    let decision = ConsentDecision {
        id: field(&params, "id"),
        csrf: field(&params, "csrf"),
        approve: field(&params, "decision") == "approve",
        session: browser_of(server, request).session,
    };
    let outcome = server.consent(now, entropy, &decision);
    respond(server, outcome.into())
}

// spec: AZ-19, AZ-30
fn login(
    server: &mut AuthorizationServer,
    now: UnixTime,
    user: &UserAgentPolicy,
    request: &HttpRequest,
) -> Prepared<Reply> {
    let params = match form_params(request) {
        Ok(p) => p,
        Err(r) => return Prepared::Done(respond(server, AuthorizeOutcome::Refuse(r).into())),
    };
    let form = LoginForm {
        id: field(&params, "id"),
        csrf: field(&params, "csrf"),
        username: field(&params, "username"),
        password: field(&params, "password"),
    };
    let browser = browser_of(server, request);
    match server.begin_login(now, &user.accounts, &browser, &form) {
        Ok(attempt) => Prepared::Login(attempt),
        Err(outcome) => Prepared::Done(respond(server, (*outcome).into())),
    }
}

fn logout(
    server: &mut AuthorizationServer,
    now: UnixTime,
    entropy: &mut impl Entropy,
    user: &UserAgentPolicy,
    request: &HttpRequest,
) -> Reply {
    let params = match form_params(request) {
        Ok(p) => p,
        Err(r) => return respond(server, AuthorizeOutcome::Refuse(r).into()),
    };
    let browser = browser_of(server, request);
    let id = field(&params, "id");
    let answer = server.logout(
        now,
        entropy,
        &user.accounts,
        &browser,
        &id,
        &field(&params, "csrf"),
    );
    respond(server, answer)
}

/// Encode an answer: a page, a 303 redirect, with the new session's cookie if one began; the
/// outcome it was rendered from goes beside it ([`Answered::Browser`]).
/// After a login or logout form, the page of the pending authorization is shown by a 303 to
/// `GET consent?id=…`, so that reloading it never re-posts the form ([AZ-19](crate::requirements#AZ-19)).
// spec: AZ-4, AZ-19, AZ-26
fn respond(server: &AuthorizationServer, answer: Answer) -> Reply {
    let name = &server.config().name;
    let response = match &answer.outcome {
        AuthorizeOutcome::Login(prompt) => pages::login(name, prompt),
        AuthorizeOutcome::Consent(prompt) => {
            let descriptions = &server.config().scope_descriptions;
            pages::consent(name, prompt, |s| descriptions.get(s).cloned())
        }
        AuthorizeOutcome::Inform(inform) => pages::inform(name, inform),
        AuthorizeOutcome::Redirect(r) => HttpResponse::new(303)
            .header("location", r.location.as_str())
            .header("cache-control", "no-store"),
        AuthorizeOutcome::Refuse(r) => pages::error(name, *r),
        AuthorizeOutcome::ShowPending(id) => HttpResponse::new(303)
            .header(
                "location",
                format!("consent?{}", crate::form::encode([("id", id.as_str())])),
            )
            .header("cache-control", "no-store"),
    };
    let response = match answer.set_session {
        Some(cookie) => response.header("set-cookie", set_session_cookie(server, &cookie)),
        None => response,
    };
    Reply {
        response,
        answered: Answered::Browser(Box::new(answer.outcome)),
    }
}
