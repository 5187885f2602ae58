//! Checks of the authorization server that change nothing there: its metadata, and its
//! answers to bad token and authorization requests.

use super::{Area, Check, Context, Exchange, Level, Needs, Next, Outcome, Send, answered};
use crate::http::{HttpRequest, Method};
use crate::metadata::AuthorizationServerMetadata;
use crate::uri::{is_loopback_host, parse_uri};

fn check(
    name: &'static str,
    ids: &'static [&'static str],
    level: Level,
    title: &'static str,
    step: fn(&Context, &[Exchange]) -> Next,
) -> Check {
    Check {
        name,
        area: Area::AuthorizationServer,
        ids,
        level,
        title,
        needs: Needs::Nothing,
        step,
    }
}

pub(crate) fn checks() -> Vec<Check> {
    vec![
        check(
            "as-metadata",
            &["ASM-1", "ASM-2", "ASM-5"],
            Level::Must,
            "RFC 8414 metadata at the issuer's well-known URL, 200 JSON",
            metadata,
        ),
        check(
            "as-issuer",
            &["ASM-3", "DISC-8"],
            Level::Must,
            "issuer equals the PRM's entry exactly",
            issuer,
        ),
        check(
            "as-endpoints",
            &["ASM-4"],
            Level::Must,
            "authorization_endpoint, token_endpoint, response_types_supported with code",
            endpoints,
        ),
        check(
            "as-https",
            &["GEN-6", "GEN-7", "ASM-9"],
            Level::Must,
            "issuer and endpoints are https (http only on loopback)",
            https,
        ),
        check(
            "as-pkce-s256",
            &["ASM-8", "PKCE-6"],
            Level::Must,
            "code_challenge_methods_supported lists S256",
            pkce_s256,
        ),
        check(
            "as-pkce-no-plain",
            &["PKCE-2", "PF-1"],
            Level::Should,
            "code_challenge_methods_supported does not list plain",
            pkce_no_plain,
        ),
        check(
            "as-scopes",
            &["ASM-6"],
            Level::Should,
            "scopes_supported is published",
            scopes,
        ),
        check(
            "as-registration",
            &["ASM-7", "DCR-1"],
            Level::Should,
            "registration_endpoint is published",
            registration,
        ),
        check(
            "token-error",
            &["TOK-14"],
            Level::Must,
            "a bogus code: 400 (401 for invalid_client) JSON with a standard error",
            token_error,
        ),
        check(
            "token-grant-type",
            &["TOK-14"],
            Level::Must,
            "an unknown grant_type: 400 JSON unsupported_grant_type (or invalid_client)",
            token_grant_type,
        ),
        check(
            "authorize-no-open-redirect",
            &["AZ-4", "AZ-7"],
            Level::Must,
            "an unknown client with a foreign redirect_uri is not redirected",
            authorize_unknown_client,
        ),
    ]
}

fn asm(ctx: &Context) -> Result<&AuthorizationServerMetadata, Outcome> {
    ctx.asm.as_ref().ok_or_else(|| {
        Outcome::Skip(match &ctx.asm_exchange {
            Some(e) => format!("no usable AS metadata: {}", answered(e)),
            None => "no AS metadata (no issuer in the PRM)".into(),
        })
    })
}

fn judge(result: Result<Outcome, Outcome>) -> Next {
    Next::Done(result.unwrap_or_else(|o| o))
}

fn metadata(ctx: &Context, _: &[Exchange]) -> Next {
    let Some(e) = &ctx.asm_exchange else {
        return Next::Done(Outcome::Skip("no issuer in the PRM".into()));
    };
    let json = e.response().is_some_and(|r| {
        r.header_value("content-type")
            .is_some_and(|c| c.to_ascii_lowercase().starts_with("application/json"))
    });
    Next::Done(if ctx.asm.is_some() && json {
        Outcome::Pass
    } else {
        Outcome::Violated(
            format!("expected 200 application/json metadata: {}", e.show()),
            "serve RFC 8414 metadata at /.well-known/oauth-authorization-server{issuer path}",
        )
    })
}

fn issuer(ctx: &Context, _: &[Exchange]) -> Next {
    judge(asm(ctx).map(|m| {
        let expected = ctx.issuer().unwrap_or_default();
        if m.issuer == expected {
            Outcome::Pass
        } else {
            Outcome::Violated(
                format!("metadata issuer {:?}, PRM names {:?}", m.issuer, expected),
                "publish the same issuer string in the PRM, the metadata and the tokens' iss",
            )
        }
    }))
}

fn endpoints(ctx: &Context, _: &[Exchange]) -> Next {
    judge(asm(ctx).map(|m| {
        if m.authorization_endpoint.is_some()
            && m.token_endpoint.is_some()
            && m.response_types_supported.iter().any(|t| t == "code")
        {
            Outcome::Pass
        } else {
            Outcome::Violated(
                format!(
                    "authorization_endpoint {:?}, token_endpoint {:?}, response_types_supported {:?}",
                    m.authorization_endpoint, m.token_endpoint, m.response_types_supported
                ),
                "publish authorization_endpoint, token_endpoint and response_types_supported [\"code\"]",
            )
        }
    }))
}

/// https, or http on a loopback host.
fn secure(url: &str) -> bool {
    match parse_uri(url) {
        Ok(p) if p.scheme.eq_ignore_ascii_case("https") => true,
        Ok(p) if p.scheme.eq_ignore_ascii_case("http") => is_loopback_host(p.host),
        _ => false,
    }
}

fn https(ctx: &Context, _: &[Exchange]) -> Next {
    judge(asm(ctx).map(|m| {
        let urls = [
            Some(&m.issuer),
            m.authorization_endpoint.as_ref(),
            m.token_endpoint.as_ref(),
            m.registration_endpoint.as_ref(),
            m.jwks_uri.as_ref(),
            m.revocation_endpoint.as_ref(),
            m.introspection_endpoint.as_ref(),
        ];
        match urls.into_iter().flatten().find(|u| !secure(u)) {
            None => Outcome::Pass,
            Some(u) => Outcome::Violated(
                format!("not https: {u}"),
                "serve every OAuth endpoint over https",
            ),
        }
    }))
}

fn pkce_s256(ctx: &Context, _: &[Exchange]) -> Next {
    judge(asm(ctx).map(|m| {
        if m.code_challenge_methods_supported
            .iter()
            .any(|c| c == "S256")
        {
            Outcome::Pass
        } else {
            Outcome::Violated(
                format!(
                    "code_challenge_methods_supported {:?}",
                    m.code_challenge_methods_supported
                ),
                "support PKCE S256 and publish code_challenge_methods_supported [\"S256\"]",
            )
        }
    }))
}

fn pkce_no_plain(ctx: &Context, _: &[Exchange]) -> Next {
    judge(asm(ctx).map(|m| {
        if m.code_challenge_methods_supported
            .iter()
            .any(|c| c == "plain")
        {
            Outcome::Violated(
                "plain is listed".into(),
                "accept only S256 (plain lets a stolen authorization request be redeemed)",
            )
        } else {
            Outcome::Pass
        }
    }))
}

fn scopes(ctx: &Context, _: &[Exchange]) -> Next {
    judge(asm(ctx).map(|m| {
        if m.scopes_supported.is_empty() {
            Outcome::Violated("no scopes_supported".into(), "publish scopes_supported")
        } else {
            Outcome::Pass
        }
    }))
}

fn registration(ctx: &Context, _: &[Exchange]) -> Next {
    judge(asm(ctx).map(|m| {
        if m.registration_endpoint.is_none() {
            Outcome::Violated(
                "no registration_endpoint".into(),
                "offer RFC 7591 registration (2025-06-18 clients have no other way to get a client_id)",
            )
        } else {
            Outcome::Pass
        }
    }))
}

const STANDARD_ERRORS: &[&str] = &[
    "invalid_request",
    "invalid_client",
    "invalid_grant",
    "unauthorized_client",
    "unsupported_grant_type",
    "invalid_scope",
    "invalid_target",
];

fn token_post(ctx: &Context, body: String) -> Option<HttpRequest> {
    let endpoint = ctx.asm.as_ref()?.token_endpoint.as_ref()?;
    Some(
        HttpRequest::new(Method::Post, endpoint)
            .header("content-type", "application/x-www-form-urlencoded")
            .header("accept", "application/json")
            .body(body),
    )
}

fn token_answer(e: &Exchange, allowed: &[&str]) -> Outcome {
    let status = e.status();
    let error = e.oauth_error();
    let ok_status = status == 400 || (status == 401 && error.as_deref() == Some("invalid_client"));
    match error {
        Some(code) if ok_status && allowed.contains(&code.as_str()) => Outcome::Pass,
        _ => Outcome::Violated(
            format!("expected 400 JSON with one of {allowed:?}: {}", e.show()),
            "answer token errors with 400 (401 for invalid_client) and {\"error\": <RFC 6749 code>}",
        ),
    }
}

fn token_error(ctx: &Context, done: &[Exchange]) -> Next {
    if done.is_empty() {
        let body = crate::form::encode([
            ("grant_type", "authorization_code"),
            ("code", "probe-bogus-code"),
            ("redirect_uri", "http://127.0.0.1/probe/callback"),
            (
                "code_verifier",
                "probe-bogus-verifier-0123456789abcdefghijklmnopq",
            ),
            ("client_id", "mcp-auth-probe-unknown"),
        ]);
        return match token_post(ctx, body) {
            Some(r) => Next::Send(Send::Http(r)),
            None => Next::Done(Outcome::Skip("no token_endpoint".into())),
        };
    }
    Next::Done(token_answer(&done[0], STANDARD_ERRORS))
}

fn token_grant_type(ctx: &Context, done: &[Exchange]) -> Next {
    if done.is_empty() {
        let body = crate::form::encode([
            ("grant_type", "urn:example:probe-bogus"),
            ("client_id", "mcp-auth-probe-unknown"),
        ]);
        return match token_post(ctx, body) {
            Some(r) => Next::Send(Send::Http(r)),
            None => Next::Done(Outcome::Skip("no token_endpoint".into())),
        };
    }
    Next::Done(token_answer(
        &done[0],
        &[
            "unsupported_grant_type",
            "invalid_client",
            "unauthorized_client",
            "invalid_request",
        ],
    ))
}

/// The host of a `Location`, if the answer redirects.
pub(crate) fn redirect_target(e: &Exchange) -> Option<String> {
    let r = e.response()?;
    if !(300..400).contains(&r.status) {
        return None;
    }
    r.header_value("location").map(str::to_owned)
}

fn authorize_unknown_client(ctx: &Context, done: &[Exchange]) -> Next {
    if done.is_empty() {
        let Some(endpoint) = ctx
            .asm
            .as_ref()
            .and_then(|m| m.authorization_endpoint.clone())
        else {
            return Next::Done(Outcome::Skip("no authorization_endpoint".into()));
        };
        let query = crate::form::encode([
            ("response_type", "code"),
            ("client_id", "mcp-auth-probe-unknown"),
            ("redirect_uri", "https://evil.example/cb"),
            (
                "code_challenge",
                "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM",
            ),
            ("code_challenge_method", "S256"),
            ("state", "probe"),
            ("resource", ctx.resource()),
        ]);
        let sep = if endpoint.contains('?') { '&' } else { '?' };
        return Next::Send(Send::Http(
            HttpRequest::new(Method::Get, format!("{endpoint}{sep}{query}"))
                .header("accept", "text/html"),
        ));
    }
    let e = &done[0];
    Next::Done(match redirect_target(e) {
        Some(location) if location.starts_with("https://evil.example") => Outcome::Violated(
            format!("redirected to the unregistered URI: {}", answered(e)),
            "show an error page, never redirect, when client_id or redirect_uri is not registered",
        ),
        _ if e.status() >= 500 => Outcome::Violated(
            format!("server error: {}", answered(e)),
            "answer an unknown client with a 400 error page",
        ),
        _ => Outcome::Pass,
    })
}
