//! Checks of the MCP server as resource server that need no key: the challenge, the Protected
//! Resource Metadata, malformed credentials, sessions and Origin.

use super::{Area, Check, Context, Exchange, Level, Needs, Next, Outcome, Send, answered};
use crate::http::Method;
use crate::metadata::ProtectedResourceMetadata;
use crate::uri::{HttpPolicy, ResourceUri};

/// A foreign origin for the Origin checks.
pub(crate) const EVIL_ORIGIN: &str = "https://evil.example";

fn check(
    name: &'static str,
    ids: &'static [&'static str],
    level: Level,
    title: &'static str,
    step: fn(&Context, &[Exchange]) -> Next,
) -> Check {
    Check {
        name,
        area: Area::Resource,
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
            "challenge",
            &["PRM-8", "ERR-1", "ERR-4"],
            Level::Must,
            "no token: 401 with Bearer resource_metadata=…",
            challenge,
        ),
        check(
            "challenge-no-error",
            &["ERR-7"],
            Level::Should,
            "no token: the challenge carries no error code",
            challenge_no_error,
        ),
        check(
            "prm",
            &["PRM-1", "PRM-5"],
            Level::Must,
            "the challenge's resource_metadata serves 200 JSON RFC 9728 metadata",
            prm,
        ),
        check(
            "prm-servers",
            &["PRM-2"],
            Level::Must,
            "authorization_servers names an issuer",
            prm_servers,
        ),
        check(
            "prm-resource",
            &["PRM-3", "DISC-4"],
            Level::Must,
            "every PRM copy's resource is the MCP endpoint URL",
            prm_resource,
        ),
        check(
            "prm-location",
            &["PRM-4", "PRM-10"],
            Level::Must,
            "PRM at the well-known URL the revision names",
            prm_location,
        ),
        check(
            "prm-fields",
            &["PRM-6"],
            Level::Should,
            "PRM has scopes_supported and resource_name",
            prm_fields,
        ),
        check(
            "prm-offline-access",
            &["RS-19"],
            Level::Should,
            "no offline_access in scopes_supported or the challenge (2026-07-28)",
            prm_offline,
        ),
        check(
            "malformed-authorization",
            &["ERR-3"],
            Level::Must,
            "empty or garbled Bearer credentials: 400",
            malformed,
        ),
        check(
            "duplicate-authorization",
            &["ERR-8", "ERR-9"],
            Level::Should,
            "two Authorization headers: 400 invalid_request, never 2xx or 5xx",
            duplicated,
        ),
        check(
            "bogus-token",
            &["RS-3", "RS-4", "ERR-6"],
            Level::Must,
            "a random token: 401 with error=\"invalid_token\"",
            bogus,
        ),
        check(
            "oversized-token",
            &["SEC-16", "ERR-9"],
            Level::Must,
            "a 20 KiB token: a 4xx (401 or 431), never 2xx or 5xx",
            oversized,
        ),
        check(
            "other-scheme",
            &["ERR-4", "PRM-8"],
            Level::Must,
            "Basic credentials: 401 with a Bearer challenge",
            other_scheme,
        ),
        check(
            "session-without-token",
            &["SEC-3", "SEC-18"],
            Level::Must,
            "a session id without a token: 401",
            session_without_token,
        ),
        check(
            "origin",
            &["SEC-8"],
            Level::Must,
            "a foreign Origin is refused (403)",
            origin,
        ),
        check(
            "cors",
            &["SEC-8"],
            Level::Should,
            "a preflight from a foreign origin is not granted with credentials",
            cors,
        ),
    ]
}

fn unauthenticated(ctx: &Context) -> Result<&Exchange, Outcome> {
    ctx.unauthenticated
        .as_ref()
        .ok_or_else(|| Outcome::Skip("the MCP endpoint was not asked".into()))
}

fn done(result: Result<Outcome, Outcome>) -> Next {
    Next::Done(result.unwrap_or_else(|o| o))
}

fn challenge(ctx: &Context, _: &[Exchange]) -> Next {
    done(unauthenticated(ctx).map(|e| {
        if e.status() != 401 {
            return Outcome::Violated(
                format!("expected 401, got: {}", answered(e)),
                "answer every MCP request without a token with 401 and a Bearer challenge",
            );
        }
        match e.bearer() {
            Some(b) if b.resource_metadata.is_some() => Outcome::Pass,
            Some(_) => Outcome::Violated(
                format!("the Bearer challenge has no resource_metadata: {}", answered(e)),
                "add resource_metadata=\"<PRM URL>\" to the WWW-Authenticate challenge (RFC 9728 §5.1)",
            ),
            None => Outcome::Violated(
                format!("no parsable Bearer challenge: {}", answered(e)),
                "send WWW-Authenticate: Bearer resource_metadata=\"<PRM URL>\" with the 401",
            ),
        }
    }))
}

fn challenge_no_error(ctx: &Context, _: &[Exchange]) -> Next {
    done(unauthenticated(ctx).map(|e| match e.bearer() {
        None => Outcome::Skip("no Bearer challenge to look at".into()),
        Some(b) if b.error.is_some() => Outcome::Violated(
            format!("error present without any credentials: {}", answered(e)),
            "leave error out of the challenge when the request had no credentials (RFC 6750 §3.1)",
        ),
        Some(_) => Outcome::Pass,
    }))
}

fn prm_doc(e: &Exchange) -> Result<ProtectedResourceMetadata, String> {
    let r = e.response().ok_or_else(|| answered(e))?;
    if r.status != 200 {
        return Err(format!("expected 200: {}", answered(e)));
    }
    serde_json::from_slice(&r.body)
        .map_err(|err| format!("not RFC 9728 JSON ({err}): {}", e.show()))
}

fn prm(ctx: &Context, _: &[Exchange]) -> Next {
    let Some(e) = &ctx.prm_challenge else {
        return Next::Done(Outcome::Skip(
            "no resource_metadata URL in the challenge to fetch".into(),
        ));
    };
    done(match prm_doc(e) {
        Err(why) => Ok(Outcome::Violated(
            why,
            "serve the Protected Resource Metadata JSON at the URL the challenge names",
        )),
        Ok(_)
            if !e.response().is_some_and(|r| {
                r.header_value("content-type")
                    .is_some_and(|c| c.to_ascii_lowercase().starts_with("application/json"))
            }) =>
        {
            Ok(Outcome::Violated(
                format!("content type is not application/json: {}", e.show()),
                "serve the metadata with Content-Type: application/json",
            ))
        }
        Ok(_) => Ok(Outcome::Pass),
    })
}

fn prm_servers(ctx: &Context, _: &[Exchange]) -> Next {
    Next::Done(match &ctx.prm {
        None => Outcome::Skip("no PRM document".into()),
        Some(p) if p.authorization_servers.is_empty() => Outcome::Violated(
            "authorization_servers is missing or empty".into(),
            "list the issuer of your authorization server in authorization_servers",
        ),
        Some(_) => Outcome::Pass,
    })
}

/// The resource values the MCP URL may be published as: the URL itself and its canonical form.
fn resource_matches(ctx: &Context, resource: &str) -> bool {
    resource == ctx.mcp_url
        || ResourceUri::parse(&ctx.mcp_url, HttpPolicy::AllowLoopbackHttp)
            .is_ok_and(|r| r.as_str() == resource)
}

fn prm_copies(ctx: &Context) -> impl Iterator<Item = &Exchange> {
    [&ctx.prm_challenge, &ctx.prm_inserted, &ctx.prm_root]
        .into_iter()
        .filter_map(Option::as_ref)
}

fn prm_resource(ctx: &Context, _: &[Exchange]) -> Next {
    let mut seen = 0;
    for e in prm_copies(ctx) {
        let Ok(doc) = prm_doc(e) else { continue };
        seen += 1;
        if !resource_matches(ctx, &doc.resource) {
            return Next::Done(Outcome::Violated(
                format!(
                    "{} says resource {:?}, the MCP endpoint is {:?}",
                    e.request.url, doc.resource, ctx.mcp_url
                ),
                "set resource to the exact MCP endpoint URL (clients discard any other, RFC 9728 §3.3)",
            ));
        }
    }
    Next::Done(if seen == 0 {
        Outcome::Skip("no PRM document".into())
    } else {
        Outcome::Pass
    })
}

fn prm_location(ctx: &Context, _: &[Exchange]) -> Next {
    let Some(inserted) = ctx.prm_inserted_url() else {
        return Next::Done(Outcome::Skip("the MCP URL has no well-known form".into()));
    };
    let good = |e: &&Exchange| prm_doc(e).is_ok_and(|d| resource_matches(ctx, &d.resource));
    let at_inserted = prm_copies(ctx)
        .filter(|e| e.request.url == inserted)
        .find(good);
    let any = prm_copies(ctx).find(good);
    let newer = ctx.revision != crate::Revision::V2025_06_18;
    Next::Done(match (at_inserted, any) {
        (Some(_), _) => Outcome::Pass,
        (None, Some(_)) if newer => Outcome::Pass,
        _ => Outcome::Violated(
            format!("no metadata for this resource at {inserted}"),
            "serve the PRM at /.well-known/oauth-protected-resource followed by the MCP path (RFC 9728 §3.1)",
        ),
    })
}

fn prm_fields(ctx: &Context, _: &[Exchange]) -> Next {
    Next::Done(match &ctx.prm {
        None => Outcome::Skip("no PRM document".into()),
        Some(p) if p.scopes_supported.is_empty() || p.resource_name.is_none() => Outcome::Violated(
            format!(
                "scopes_supported {:?}, resource_name {:?}",
                p.scopes_supported, p.resource_name
            ),
            "publish scopes_supported and resource_name in the PRM",
        ),
        Some(_) => Outcome::Pass,
    })
}

fn prm_offline(ctx: &Context, _: &[Exchange]) -> Next {
    if !ctx.revision.stateless() {
        return Next::Done(Outcome::Skip("a 2026-07-28 rule".into()));
    }
    let in_prm = ctx
        .prm
        .as_ref()
        .is_some_and(|p| p.scopes_supported.iter().any(|s| s == "offline_access"));
    let in_challenge = ctx
        .unauthenticated
        .as_ref()
        .and_then(Exchange::bearer)
        .and_then(|b| b.scope)
        .is_some_and(|s| s.split(' ').any(|s| s == "offline_access"));
    Next::Done(if in_prm || in_challenge {
        Outcome::Violated(
            "offline_access is advertised by the MCP server".into(),
            "leave offline_access to the authorization server: drop it from scopes_supported and challenges",
        )
    } else {
        Outcome::Pass
    })
}

/// Send `requests` one by one, then judge them all.
fn each(
    ctx: &Context,
    done: &[Exchange],
    requests: impl Fn(&Context) -> Vec<crate::http::HttpRequest>,
    judge: impl Fn(&Exchange) -> Option<(String, &'static str)>,
) -> Next {
    let all = requests(ctx);
    if let Some(next) = all.get(done.len()) {
        return Next::Send(Send::Http(next.clone()));
    }
    for e in done {
        if let Some((why, fix)) = judge(e) {
            return Next::Done(Outcome::Violated(why, fix));
        }
    }
    Next::Done(Outcome::Pass)
}

fn malformed(ctx: &Context, done: &[Exchange]) -> Next {
    each(
        ctx,
        done,
        |ctx| {
            vec![
                ctx.mcp_request(Some("Bearer")),
                ctx.mcp_request(Some("Bearer a b c")),
            ]
        },
        |e| {
            (e.status() != 400).then(|| {
                (
                    format!("expected 400: {}", answered(e)),
                    "answer a malformed Authorization header with 400 invalid_request",
                )
            })
        },
    )
}

fn duplicated(ctx: &Context, done: &[Exchange]) -> Next {
    each(
        ctx,
        done,
        |ctx| {
            vec![
                ctx.mcp_request(Some("Bearer probe-token-one"))
                    .header("authorization", "Bearer probe-token-two"),
            ]
        },
        |e| {
            (e.status() != 400).then(|| {
                (
                    format!("expected 400: {}", answered(e)),
                    "answer a request with several credentials with 400 invalid_request",
                )
            })
        },
    )
}

fn refused_401(e: &Exchange) -> Option<(String, &'static str)> {
    match e.status() {
        401 => None,
        200..=299 => Some((
            format!("accepted: {}", answered(e)),
            "validate every token before serving the request",
        )),
        _ => Some((
            format!("expected 401: {}", answered(e)),
            "answer an invalid token with 401 and a Bearer challenge",
        )),
    }
}

fn bogus(ctx: &Context, done: &[Exchange]) -> Next {
    each(
        ctx,
        done,
        |ctx| vec![ctx.mcp_request(Some("Bearer probe-not-a-valid-token"))],
        |e| {
            refused_401(e).or_else(|| match e.bearer() {
                Some(b) if b.error.as_deref() == Some("invalid_token") => None,
                _ => Some((
                    format!(
                        "no error=\"invalid_token\" in the challenge: {}",
                        answered(e)
                    ),
                    "add error=\"invalid_token\" to the challenge of a refused token",
                )),
            })
        },
    )
}

fn oversized(ctx: &Context, done: &[Exchange]) -> Next {
    each(
        ctx,
        done,
        |ctx| {
            let token = "A".repeat(20 * 1024);
            vec![ctx.mcp_request(Some(&format!("Bearer {token}")))]
        },
        |e| {
            (!(400..500).contains(&e.status())).then(|| {
                (
                    format!("expected a 4xx: {}", answered(e)),
                    "bound the token length and answer longer ones with 401 (or 431 for the header)",
                )
            })
        },
    )
}

fn other_scheme(ctx: &Context, done: &[Exchange]) -> Next {
    each(
        ctx,
        done,
        |ctx| vec![ctx.mcp_request(Some("Basic cHJvYmU6cHJvYmU="))],
        |e| {
            refused_401(e).or_else(|| {
                e.bearer().is_none().then(|| {
                    (
                        format!("no Bearer challenge: {}", answered(e)),
                        "challenge with Bearer whatever scheme the request used",
                    )
                })
            })
        },
    )
}

fn session_without_token(ctx: &Context, done: &[Exchange]) -> Next {
    each(
        ctx,
        done,
        |ctx| {
            vec![
                ctx.mcp_request(None)
                    .header("mcp-session-id", "probe-session-0123456789abcdef"),
            ]
        },
        refused_401,
    )
}

fn origin(ctx: &Context, done: &[Exchange]) -> Next {
    if done.is_empty() {
        return Next::Send(Send::Http(
            ctx.mcp_request(None).header("origin", EVIL_ORIGIN),
        ));
    }
    let e = &done[0];
    Next::Done(match e.status() {
        403 => Outcome::Pass,
        401 if ctx.as_key.is_some() => {
            Outcome::Skip("401 before the Origin check: see origin-with-token".into())
        }
        401 => Outcome::Skip(
            "the server checks the token before the Origin: with --as-key, origin-with-token tells"
                .into(),
        ),
        _ => Outcome::Violated(
            format!("expected 403: {}", answered(e)),
            "refuse requests whose Origin is not yours with 403 (DNS rebinding)",
        ),
    })
}

fn cors(ctx: &Context, done: &[Exchange]) -> Next {
    if done.is_empty() {
        let mut request = crate::http::HttpRequest::new(Method::Options, &ctx.mcp_url)
            .header("origin", EVIL_ORIGIN)
            .header("access-control-request-method", "POST")
            .header(
                "access-control-request-headers",
                "authorization, content-type",
            );
        request.body.clear();
        return Next::Send(Send::Http(request));
    }
    let e = &done[0];
    let Some(r) = e.response() else {
        return Next::Done(Outcome::Skip(format!("no answer: {}", answered(e))));
    };
    let allowed = r
        .header_value("access-control-allow-origin")
        .is_some_and(|o| o == EVIL_ORIGIN);
    let credentials = r
        .header_value("access-control-allow-credentials")
        .is_some_and(|c| c.eq_ignore_ascii_case("true"));
    Next::Done(if allowed && credentials {
        Outcome::Violated(
            format!(
                "the foreign origin is allowed with credentials: {}",
                e.show()
            ),
            "allow only your own origins in CORS (or none)",
        )
    } else {
        Outcome::Pass
    })
}
