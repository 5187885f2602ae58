//! The authorization server over HTTP, as pure functions: decode an [`HttpRequest`], make one
//! call into [`AuthorizationServer`], encode the [`HttpResponse`]. The hyper driver only moves
//! bytes and supplies the clock and entropy.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;

use super::{
    AuthorizationServer, AuthorizeOutcome, ClientCredentials, ClientMetadata, ConsentDecision,
    ConsentPrompt, TokenRequest, paths,
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

/// How the authorization endpoint obtains the user's decision.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct UserAgentPolicy {
    /// The authenticated user (the demo user: this reference AS has no account database).
    pub subject: Subject,
    /// Approve every request as that user without showing the consent page. For tests only:
    /// it disables the consent step (AZ-25).
    pub auto_approve: bool,
}

/// The paths (below the origin) at which the metadata documents are served: the RFC 8414
/// path-inserted URL, and the OpenID discovery URLs (inserted and appended), all with the same
/// content and `issuer`.
// spec: ASM-2
pub fn metadata_paths(server: &AuthorizationServer) -> Vec<String> {
    let issuer = server.issuer().as_str();
    let origin_len = crate::uri::parse_uri(issuer)
        .map(|p| {
            p.scheme.len() + 3 + p.host.len() + p.port.map_or(0, |port| port.to_string().len() + 1)
        })
        .unwrap_or(0);
    let mut out: Vec<String> = [
        well_known_insert(issuer, ASM_SUFFIX),
        well_known_insert(issuer, OIDC_SUFFIX),
        well_known_append(issuer, OIDC_SUFFIX),
    ]
    .into_iter()
    .flatten()
    .map(|u| u.get(origin_len..).unwrap_or("/").to_owned())
    .collect();
    out.dedup();
    out
}

fn issuer_path(server: &AuthorizationServer) -> String {
    crate::uri::parse_uri(server.issuer().as_str())
        .map(|p| p.path.trim_end_matches('/').to_owned())
        .unwrap_or_default()
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
    oauth_error(Rejection::WrongMethod)
        .with_status(405)
        .header("allow", allow)
}

/// Handle one HTTP request addressed to the authorization server.
pub fn handle(
    server: &mut AuthorizationServer,
    now: UnixTime,
    entropy: &mut impl Entropy,
    user: &UserAgentPolicy,
    request: &HttpRequest,
) -> HttpResponse {
    let base = issuer_path(server);
    let path = request.url.as_str();
    let route = path.strip_prefix(base.as_str()).unwrap_or("");
    let is_metadata = metadata_paths(server).iter().any(|p| p == path);
    let cors_route = is_metadata || [paths::JWKS, paths::REGISTER, paths::TOKEN].contains(&route);
    if request.method == Method::Options && cors_route {
        return cors(HttpResponse::new(204));
    }
    if is_metadata {
        return match request.method {
            Method::Get => cors(HttpResponse::json(200, &server.metadata())),
            _ => cors(method_not_allowed("GET, OPTIONS")),
        };
    }
    match (route, request.method) {
        (paths::JWKS, Method::Get) => cors(HttpResponse::json(200, &server.jwks())),
        (paths::REGISTER, Method::Post) => cors(register(server, now, entropy, request)),
        (paths::TOKEN, Method::Post) => cors(token(server, now, entropy, request)),
        (paths::AUTHORIZE, Method::Get) => authorize(server, now, entropy, user, request),
        (paths::CONSENT, Method::Post) => consent(server, now, entropy, user, request),
        (paths::JWKS, _) => cors(method_not_allowed("GET, OPTIONS")),
        (paths::REGISTER | paths::TOKEN, _) => cors(method_not_allowed("POST, OPTIONS")),
        (paths::AUTHORIZE, _) => method_not_allowed("GET"),
        (paths::CONSENT, _) => method_not_allowed("POST"),
        _ => HttpResponse::json(404, &serde_json::json!({"error": "not_found"})),
    }
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

// spec: TOK-1, TOK-2, TOK-3, TOK-11, TOK-12, TOK-14
fn token(
    server: &mut AuthorizationServer,
    now: UnixTime,
    entropy: &mut impl Entropy,
    request: &HttpRequest,
) -> HttpResponse {
    if !request.has_content_type("application/x-www-form-urlencoded") {
        return oauth_error(Rejection::WrongContentType);
    }
    let params = match Params::decode(&request.body) {
        Ok(p) => p,
        Err(r) => return oauth_error(r),
    };
    let basic = match basic_credentials(request) {
        Ok(b) => b,
        Err(r) => return oauth_error(r).header("www-authenticate", "Basic realm=\"token\""),
    };
    let credentials = match (params.one("client_id"), params.one("client_secret")) {
        (Ok(client_id), Ok(client_secret)) => ClientCredentials {
            client_id: client_id.map(str::to_owned),
            client_secret: client_secret.map(str::to_owned),
            basic,
        },
        (Err(r), _) | (_, Err(r)) => return oauth_error(r),
    };
    match server.token(
        now,
        entropy,
        &TokenRequest {
            credentials,
            params,
        },
    ) {
        Ok(response) => HttpResponse::json(200, &response)
            .header("cache-control", "no-store")
            .header("pragma", "no-cache"),
        Err(e) if e.basic && e.rejection.code().status() == 401 => {
            oauth_error(e.rejection).header("www-authenticate", "Basic realm=\"token\"")
        }
        Err(e) => oauth_error(e.rejection),
    }
}

fn authorize(
    server: &mut AuthorizationServer,
    now: UnixTime,
    entropy: &mut impl Entropy,
    user: &UserAgentPolicy,
    request: &HttpRequest,
) -> HttpResponse {
    let params = match Params::decode(request.query.as_deref().unwrap_or("").as_bytes()) {
        Ok(p) => p,
        Err(r) => return outcome(AuthorizeOutcome::Refuse(r)),
    };
    match server.authorize(now, entropy, &params) {
        AuthorizeOutcome::Consent(prompt) if user.auto_approve => {
            let decision = ConsentDecision {
                id: prompt.id,
                csrf: prompt.csrf,
                approve: true,
                subject: user.subject.clone(),
            };
            outcome(server.consent(now, entropy, &decision))
        }
        other => outcome(other),
    }
}

// spec: AZ-19, AZ-26
fn consent(
    server: &mut AuthorizationServer,
    now: UnixTime,
    entropy: &mut impl Entropy,
    user: &UserAgentPolicy,
    request: &HttpRequest,
) -> HttpResponse {
    if !request.has_content_type("application/x-www-form-urlencoded") {
        return outcome(AuthorizeOutcome::Refuse(Rejection::WrongContentType));
    }
    let params = match Params::decode(&request.body) {
        Ok(p) => p,
        Err(r) => return outcome(AuthorizeOutcome::Refuse(r)),
    };
    let field = |name| params.one(name).ok().flatten().unwrap_or("").to_owned();
    let decision = ConsentDecision {
        id: field("id"),
        csrf: field("csrf"),
        approve: field("decision") == "approve",
        subject: user.subject.clone(),
    };
    outcome(server.consent(now, entropy, &decision))
}

/// Encode an authorization outcome: the consent page, a 303 redirect, or an error page.
// spec: AZ-4, AZ-19, AZ-26
pub fn outcome(outcome: AuthorizeOutcome) -> HttpResponse {
    match outcome {
        AuthorizeOutcome::Consent(prompt) => html(200, &consent_page(&prompt)),
        AuthorizeOutcome::Redirect(r) => HttpResponse::new(303)
            .header("location", r.location)
            .header("cache-control", "no-store"),
        AuthorizeOutcome::Refuse(r) => html(
            r.code().status(),
            &format!(
                "<h1>Authorization error</h1><p>{}: {}</p>",
                r.code().as_str(),
                escape(r.description())
            ),
        ),
    }
}

fn html(status: u16, body: &str) -> HttpResponse {
    let page = format!(
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>mcp-auth</title></head><body>{body}</body></html>"
    );
    HttpResponse::new(status)
        .header("content-type", "text/html; charset=utf-8")
        .header("content-security-policy", "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; frame-ancestors 'none'")
        .header("x-frame-options", "DENY")
        .header("cache-control", "no-store")
        .header("referrer-policy", "no-referrer")
        .with_body(page)
}

/// Escape text for HTML element content and attribute values.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            _ => out.push(c),
        }
    }
    out
}

/// The consent page: names the client and the redirect host, lists scopes and resource, and
/// posts Approve or Deny with the CSRF token. Plain HTML, no script.
// spec: AZ-9, AZ-25, AZ-26
pub fn consent_page(p: &ConsentPrompt) -> String {
    let name = p.client_name.as_deref().unwrap_or("An unnamed client");
    let scopes = if p.scopes.is_empty() {
        "<li>(no scopes)</li>".to_owned()
    } else {
        p.scopes
            .iter()
            .map(|s| format!("<li><code>{}</code></li>", escape(s)))
            .collect()
    };
    format!(
        "<h1>Authorize access</h1>\
         <p><strong>{name}</strong> (client id <code>{id}</code>) asks to access <code>{resource}</code> on your behalf.</p>\
         <p>If you approve, you will be sent to <strong>{host}</strong> (<code>{redirect}</code>).</p>\
         <p>Scopes:</p><ul>{scopes}</ul>\
         <form method=\"post\" action=\"{action}\">\
         <input type=\"hidden\" name=\"id\" value=\"{pid}\">\
         <input type=\"hidden\" name=\"csrf\" value=\"{csrf}\">\
         <button type=\"submit\" name=\"decision\" value=\"approve\">Approve</button> \
         <button type=\"submit\" name=\"decision\" value=\"deny\">Deny</button>\
         </form>",
        name = escape(name),
        id = escape(p.client_id.as_str()),
        resource = escape(p.resource.as_str()),
        host = escape(&p.redirect_host),
        redirect = escape(&p.redirect_uri),
        action = paths::CONSENT.trim_start_matches('/'),
        pid = escape(&p.id),
        csrf = escape(&p.csrf),
    )
}
