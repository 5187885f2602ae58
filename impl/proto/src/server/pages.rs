//! The pages a person sees at the authorization server: login, consent, and errors. Plain
//! HTML with one stylesheet, no script and no external resource; readable on a phone.
//!
//! Each page comes with its own Content Security Policy: nothing may load but the stylesheet
//! (allowed by its hash), the page cannot be framed, and forms may submit only to this
//! server and, on the consent page, be redirected to the verified redirect URI's origin
//! (browsers apply `form-action` to the redirect that follows a form POST).

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use sha2::{Digest as _, Sha256};

use super::{ConsentPrompt, Inform, LoginError, LoginPrompt};
use crate::error::Rejection;
use crate::http::HttpResponse;

const CSS: &str = "\
*{box-sizing:border-box}\
body{margin:0;font:16px/1.5 system-ui,-apple-system,'Segoe UI',Roboto,sans-serif;background:#f4f5f7;color:#1d2330}\
main{max-width:30rem;margin:0 auto;padding:1.5rem 1rem}\
header{font-weight:600;color:#4a5468;margin-bottom:1rem}\
section{background:#fff;border:1px solid #dde1e8;border-radius:12px;padding:1.25rem 1.25rem 1rem}\
h1{font-size:1.35rem;margin:0 0 .75rem}\
ul{padding-left:1.2rem}li{margin:.35rem 0}\
code{font-size:.85em;background:#eef0f4;padding:.05rem .3rem;border-radius:4px;word-break:break-all}\
.muted{color:#5b6476;font-size:.9rem}\
.target{background:#fff8e6;border:1px solid #f0d89a;border-radius:8px;padding:.6rem .75rem}\
.error{background:#fdecec;border:1px solid #f3b4b4;border-radius:8px;padding:.6rem .75rem}\
label{display:block;margin:.75rem 0 .25rem;font-weight:600}\
input[type=text],input[type=password]{width:100%;padding:.6rem;font-size:1rem;border:1px solid #b8bfcc;border-radius:8px}\
.actions{display:flex;gap:.75rem;margin-top:1rem}\
button{flex:1;padding:.7rem 1rem;font-size:1rem;border-radius:8px;border:1px solid #b8bfcc;background:#fff;cursor:pointer}\
button.primary{background:#1f5fd6;border-color:#1f5fd6;color:#fff;font-weight:600}\
button.link{flex:none;border:none;background:none;color:#1f5fd6;padding:0;font-size:.9rem;text-decoration:underline}\
form.inline{display:inline}\
a.button{display:block;text-align:center;margin-top:1rem;padding:.7rem;border-radius:8px;background:#1f5fd6;color:#fff;text-decoration:none}";

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

/// The `form-action` sources for a page whose forms may end in a redirect to
/// `redirect_uri`: this server and the redirect URI's origin. An IP-literal host cannot be
/// written as a CSP host source, so an `[::1]` loopback redirect allows its scheme.
// spec: AZ-26, PF-14
pub fn form_action_for(redirect_uri: &str) -> String {
    match crate::uri::parse_uri(redirect_uri) {
        Ok(p) if p.host.starts_with('[') => format!("'self' {}:", p.scheme.to_ascii_lowercase()),
        Ok(p) => format!("'self' {}", p.origin()),
        Err(_) => "'self'".to_owned(),
    }
}

/// The CSP hash of `CSS` (a constant: computed once, not for every page).
static STYLE_HASH: std::sync::LazyLock<String> =
    std::sync::LazyLock::new(|| STANDARD.encode(Sha256::digest(CSS.as_bytes())));

/// A complete page with its security headers. `form_action` is the CSP `form-action` value.
// spec: AZ-26, PF-14
pub fn page(
    status: u16,
    server_name: &str,
    title: &str,
    body: &str,
    form_action: &str,
) -> HttpResponse {
    let style_hash = &*STYLE_HASH;
    let html = format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>{title} - {name}</title><style>{CSS}</style></head>\
         <body><main><header>{name}</header><section>{body}</section></main></body></html>",
        title = escape(title),
        name = escape(server_name),
    );
    HttpResponse::new(status)
        .header("content-type", "text/html; charset=utf-8")
        .header(
            "content-security-policy",
            format!(
                "default-src 'none'; style-src 'sha256-{style_hash}'; form-action {form_action}; \
                 frame-ancestors 'none'; base-uri 'none'"
            ),
        )
        .header("x-frame-options", "DENY")
        .header("x-content-type-options", "nosniff")
        .header("cache-control", "no-store")
        // Same-origin: form POSTs carry a real Origin (checked), and nothing of the
        // authorization request leaks to other sites in a Referer.
        .header("referrer-policy", "same-origin")
        .with_body(html)
}

fn client_label(name: Option<&str>) -> String {
    escape(name.unwrap_or("An unnamed application"))
}

fn hidden(id: &str, csrf: &str) -> String {
    format!(
        "<input type=\"hidden\" name=\"id\" value=\"{}\">\
         <input type=\"hidden\" name=\"csrf\" value=\"{}\">",
        escape(id),
        escape(csrf)
    )
}

/// The login page.
// spec: AZ-30
pub fn login(server_name: &str, p: &LoginPrompt) -> HttpResponse {
    let error = match p.error {
        None => String::new(),
        Some(LoginError::WrongCredentials) => {
            "<p class=\"error\" role=\"alert\">Wrong username or password.</p>".to_owned()
        }
        Some(LoginError::TooManyAttempts) => "<p class=\"error\" role=\"alert\">Too many failed \
             attempts. Wait a few minutes, then try again.</p>"
            .to_owned(),
    };
    let status = if p.error == Some(LoginError::TooManyAttempts) {
        429
    } else {
        200
    };
    let body = format!(
        "<h1>Sign in</h1>\
         <p>to continue to <strong>{client}</strong>, which asks to use <code>{resource}</code>.</p>\
         {error}\
         <form method=\"post\" action=\"login\">{hidden}\
         <label for=\"username\">Username</label>\
         <input type=\"text\" id=\"username\" name=\"username\" autocomplete=\"username\" \
         autocapitalize=\"none\" spellcheck=\"false\" required value=\"{username}\">\
         <label for=\"password\">Password</label>\
         <input type=\"password\" id=\"password\" name=\"password\" \
         autocomplete=\"current-password\" required>\
         <div class=\"actions\"><button type=\"submit\" class=\"primary\">Sign in</button></div>\
         </form>",
        client = client_label(p.prompt.client_name.as_deref()),
        resource = escape(p.prompt.resource.as_str()),
        hidden = hidden(&p.prompt.id, &p.prompt.csrf),
        username = escape(p.username.as_deref().unwrap_or("")),
    );
    page(status, server_name, "Sign in", &body, "'self'")
}

/// The consent page: who asks, for what, where the user will be sent; Approve or Deny.
// spec: AZ-9, AZ-25, AZ-26, CIMD-6, CIMD-7
pub fn consent(
    server_name: &str,
    p: &ConsentPrompt,
    describe: impl Fn(&str) -> Option<String>,
) -> HttpResponse {
    let client = client_label(p.client_name.as_deref());
    let scopes: String = if p.scopes.is_empty() {
        "<li>Its default access (no named scope)</li>".to_owned()
    } else {
        p.scopes
            .iter()
            .map(|s| match describe(s) {
                Some(d) => format!("<li><code>{}</code> {}</li>", escape(s), escape(&d)),
                None => format!("<li><code>{}</code></li>", escape(s)),
            })
            .collect()
    };
    let who = match (&p.user, p.can_logout) {
        (Some(user), true) => format!(
            "<div class=\"muted\">Signed in as <strong>{}</strong>. \
             <form class=\"inline\" method=\"post\" action=\"logout\">{}\
             <button type=\"submit\" class=\"link\">Not you?</button></form></div>",
            escape(user),
            hidden(&p.id, &p.csrf)
        ),
        (Some(user), false) => format!(
            "<p class=\"muted\">Signed in as <strong>{}</strong>.</p>",
            escape(user)
        ),
        (None, _) => String::new(),
    };
    // A client ID URL's document is vouched for by its host alone: name it, and warn when
    // the code can only go to this machine (any local program could claim the name).
    let vouched = match &p.client_document_host {
        Some(host) => {
            let warning = if p.localhost_redirects_only {
                "<p class=\"error\" data-localhost-warning>This application only sends you back to \
                 this computer (localhost). Any program on this computer could use this \
                 name: approve only if you just started the sign-in yourself.</p>"
            } else {
                ""
            };
            format!(
                "<p>The name and addresses of this application are published by \
                 <strong data-client-host>{}</strong>; only approve if you trust that site.</p>{warning}",
                escape(host)
            )
        }
        None => String::new(),
    };
    let body = format!(
        "<h1>Allow access?</h1>{who}\
         <p><strong data-client-name>{client}</strong> wants to access \
         <code data-resource>{resource}</code> on your behalf.</p>\
         {vouched}<p>It asks for:</p><ul>{scopes}</ul>\
         <p class=\"target\">If you approve, you will be sent to <strong>{host}</strong><br>\
         <code>{redirect}</code></p>\
         <form method=\"post\" action=\"consent\">{hidden}\
         <div class=\"actions\">\
         <button type=\"submit\" name=\"decision\" value=\"deny\">Deny</button>\
         <button type=\"submit\" name=\"decision\" value=\"approve\" class=\"primary\">Approve</button>\
         </div></form>\
         <p class=\"muted\">Application id <code data-client-id>{id}</code></p>",
        resource = escape(p.resource.as_str()),
        host = escape(&p.redirect_host),
        redirect = escape(&p.redirect_uri),
        hidden = hidden(&p.id, &p.csrf),
        id = escape(p.client_id.as_str()),
    );
    page(
        200,
        server_name,
        "Allow access?",
        &body,
        &form_action_for(&p.redirect_uri),
    )
}

/// An error the user may take back to the application by following a link.
// spec: AZ-7, AZ-8, AZ-9
pub fn inform(server_name: &str, i: &Inform) -> HttpResponse {
    let rejection = i.redirect.result.as_ref().err().copied();
    let what = rejection.map_or("The request cannot be completed.", Rejection::description);
    let code = rejection.map_or("error", |r| r.code().as_str());
    let body = format!(
        "<h1>This request cannot be completed</h1>\
         <p><strong>{client}</strong> sent a request this server cannot accept:</p>\
         <p class=\"error\">{what}. <span class=\"muted\">({code})</span></p>\
         <p>You can go back to the application at <strong>{host}</strong> and let it know; \
         it may try again.</p>\
         <a class=\"button\" href=\"{href}\" rel=\"noreferrer\">Return to {host}</a>\
         <p class=\"muted\">Application id <code>{id}</code></p>",
        client = client_label(i.client_name.as_deref()),
        what = escape(what),
        host = escape(&i.redirect_host),
        href = escape(&i.redirect.location),
        id = escape(i.client_id.as_str()),
    );
    let status = rejection.map_or(400, Rejection::status);
    page(status, server_name, "Request refused", &body, "'none'")
}

/// An error with nowhere to go back to: the client or its redirect URI is unknown, or a
/// form does not belong to this browser.
// spec: AZ-4
pub fn error(server_name: &str, r: Rejection) -> HttpResponse {
    let advice = match r {
        Rejection::UnknownConsent | Rejection::SessionMismatch => {
            "Go back to the application and start the sign-in again."
        }
        _ => {
            "The application that sent you here is misconfigured, or the link is not genuine. \
              You were not sent back to it."
        }
    };
    let body = format!(
        "<h1>Authorization error</h1><p class=\"error\">{}.</p><p>{advice}</p>\
         <p class=\"muted\">Error code <code>{}</code></p>",
        escape(r.description()),
        r.code().as_str()
    );
    page(
        r.status(),
        server_name,
        "Authorization error",
        &body,
        "'none'",
    )
}
