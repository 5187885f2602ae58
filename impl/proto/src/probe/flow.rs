//! Checks that change state at the authorization server (`--unsafe`): the registration policy
//! and the authorization code flow with PKCE, `state` and `resource`, code and refresh-token
//! rules. Each flow check runs its own authorization (the driver plays the user), with the
//! client registered once for the run (or the one given with `--client-id`).

use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use super::checks_as::redirect_target;
use super::{Area, Check, Context, Exchange, Level, Needs, Next, Outcome, Send, answered};
use crate::http::{HttpRequest, Method};

/// The redirect URI the probe registers (loopback, any port, AZ-22); nothing listens there:
/// the probe reads the code from the redirect's `Location`.
pub const REDIRECT_URI: &str = "http://127.0.0.1/mcp-auth-probe/callback";

/// A resource no authorization server knows.
const FOREIGN_RESOURCE: &str = "https://evil.example/mcp";

fn flow(
    name: &'static str,
    ids: &'static [&'static str],
    level: Level,
    title: &'static str,
    step: fn(&Context, &[Exchange]) -> Next,
) -> Check {
    Check {
        name,
        area: Area::Flow,
        ids,
        level,
        title,
        needs: Needs::Unsafe,
        step,
    }
}

fn dcr(
    name: &'static str,
    ids: &'static [&'static str],
    title: &'static str,
    step: fn(&Context, &[Exchange]) -> Next,
) -> Check {
    Check {
        name,
        area: Area::Registration,
        ids,
        level: Level::Must,
        title,
        needs: Needs::Unsafe,
        step,
    }
}

pub(crate) fn checks() -> Vec<Check> {
    vec![
        dcr(
            "dcr-redirect-schemes",
            &["DCR-10", "SEC-12", "DCR-9"],
            "javascript:, data:, file: and non-loopback http redirect URIs are refused (400)",
            dcr_schemes,
        ),
        dcr(
            "dcr-fragment",
            &["AZ-5", "DCR-9"],
            "a redirect URI with a fragment is refused",
            dcr_fragment,
        ),
        dcr(
            "dcr-wildcard",
            &["DCR-11", "DCR-9"],
            "a wildcard host is refused",
            dcr_wildcard,
        ),
        dcr(
            "dcr-oversized",
            &["GEN-11"],
            "a 256 KiB registration gets a 4xx, never 5xx",
            dcr_oversized,
        ),
        Check {
            name: "dcr-application-type",
            area: Area::Registration,
            ids: &["DCR-14"],
            level: Level::Should,
            title: "application_type is honoured: native with an https host, web with loopback, refused (2026-07-28)",
            needs: Needs::Unsafe,
            step: dcr_application_type,
        },
        flow(
            "flow",
            &["PKCE-6", "TOK-11"],
            Level::Must,
            "code flow with S256, state and resource; the token works at the MCP server",
            base_flow,
        ),
        flow(
            "flow-state",
            &["AZ-10"],
            Level::Must,
            "the redirect returns state unchanged",
            flow_state,
        ),
        flow(
            "flow-iss",
            &["AZ-33"],
            Level::Must,
            "an iss in the redirect is the issuer, and the metadata advertises it",
            flow_iss,
        ),
        flow(
            "flow-no-store",
            &["TOK-12"],
            Level::Must,
            "the token response has Cache-Control: no-store",
            flow_no_store,
        ),
        flow(
            "flow-audience",
            &["JWT-4", "RES-13"],
            Level::Should,
            "the issued JWT's aud is the resource",
            flow_audience,
        ),
        flow(
            "pkce-wrong-verifier",
            &["PKCE-9"],
            Level::Must,
            "a wrong code_verifier gets invalid_grant",
            pkce_wrong_verifier,
        ),
        flow(
            "pkce-required",
            &["PKCE-7"],
            Level::Must,
            "an authorization request without code_challenge gets no code",
            pkce_required,
        ),
        flow(
            "code-single-use",
            &["TOK-6", "TOK-7"],
            Level::Must,
            "a code redeemed twice: the second gets invalid_grant",
            code_single_use,
        ),
        flow(
            "code-replay-revokes",
            &["TOK-8"],
            Level::Should,
            "after a code replay the first refresh token is refused",
            code_replay_revokes,
        ),
        flow(
            "code-bound-client",
            &["TOK-5", "AZ-15"],
            Level::Must,
            "another client cannot redeem the code",
            code_bound_client,
        ),
        flow(
            "code-bound-redirect",
            &["TOK-10"],
            Level::Must,
            "the code cannot be redeemed with another redirect_uri",
            code_bound_redirect,
        ),
        flow(
            "redirect-exact",
            &["AZ-3", "AZ-4"],
            Level::Must,
            "an unregistered redirect_uri is never redirected to",
            redirect_exact,
        ),
        flow(
            "resource-unknown",
            &["RES-12"],
            Level::Should,
            "authorizing for an unknown resource gets invalid_target, no code",
            resource_unknown,
        ),
        flow(
            "resource-binding",
            &["RES-14"],
            Level::Must,
            "a code for this resource cannot buy a token for another",
            resource_binding,
        ),
        flow(
            "consent-session-binding",
            &["AZ-29"],
            Level::Must,
            "a consent form posted from another browser session gets no code",
            consent_session_binding,
        ),
        flow(
            "refresh-rotation",
            &["RT-1"],
            Level::Must,
            "a refresh returns a new refresh token; the old one then fails",
            refresh_rotation,
        ),
        flow(
            "refresh-replay-revokes",
            &["RT-2"],
            Level::Should,
            "replaying a rotated refresh token revokes the family",
            refresh_replay_revokes,
        ),
    ]
}

/// The registration the probe makes for its flows (and the DCR checks vary).
pub(crate) fn registration_body(ctx: &Context, redirect_uris: &[&str]) -> Value {
    json!({
        "client_name": format!("mcp-auth probe {}", ctx.nonce),
        "redirect_uris": redirect_uris,
        "grant_types": ["authorization_code", "refresh_token"],
        "response_types": ["code"],
        "token_endpoint_auth_method": "none",
        "application_type": "native",
    })
}

fn registration_post(endpoint: &str, body: String) -> HttpRequest {
    HttpRequest::new(Method::Post, endpoint)
        .header("content-type", "application/json")
        .header("accept", "application/json")
        .body(body)
}

/// The request that registers the run's client.
pub(crate) fn registration_request(ctx: &Context, endpoint: &str) -> HttpRequest {
    registration_post(
        endpoint,
        registration_body(ctx, &[REDIRECT_URI]).to_string(),
    )
}

fn registration_endpoint(ctx: &Context) -> Option<&str> {
    ctx.asm.as_ref()?.registration_endpoint.as_deref()
}

/// Register each body in turn; each must be refused.
fn dcr_refused(ctx: &Context, done: &[Exchange], bodies: &[String]) -> Next {
    let Some(endpoint) = registration_endpoint(ctx) else {
        return Next::Done(Outcome::Skip("no registration_endpoint".into()));
    };
    if let Some(body) = bodies.get(done.len()) {
        return Next::Send(Send::Http(registration_post(endpoint, body.clone())));
    }
    for e in done {
        let status = e.status();
        let error = e.oauth_error();
        let refused = status == 400
            && matches!(
                error.as_deref(),
                Some("invalid_redirect_uri" | "invalid_client_metadata")
            );
        if !refused {
            let fix = if (200..300).contains(&status) {
                "accept only https or loopback http redirect URIs, absolute, one exact host, no fragment"
            } else {
                "refuse bad metadata with 400 {\"error\": \"invalid_redirect_uri\"}"
            };
            return Next::Done(Outcome::Violated(
                format!("expected 400 invalid_redirect_uri: {}", e.show()),
                fix,
            ));
        }
    }
    Next::Done(Outcome::Pass)
}

fn bodies(ctx: &Context, uris: &[&str]) -> Vec<String> {
    uris.iter()
        .map(|u| registration_body(ctx, &[u]).to_string())
        .collect()
}

fn dcr_schemes(ctx: &Context, done: &[Exchange]) -> Next {
    let b = bodies(
        ctx,
        &[
            "javascript:alert(1)//",
            "data:text/html,probe",
            "file:///etc/passwd",
            "http://evil.example/cb",
        ],
    );
    dcr_refused(ctx, done, &b)
}

fn dcr_fragment(ctx: &Context, done: &[Exchange]) -> Next {
    let b = bodies(ctx, &["https://client.example/cb#fragment"]);
    dcr_refused(ctx, done, &b)
}

fn dcr_wildcard(ctx: &Context, done: &[Exchange]) -> Next {
    let b = bodies(ctx, &["https://*.example.com/cb"]);
    dcr_refused(ctx, done, &b)
}

fn dcr_application_type(ctx: &Context, done: &[Exchange]) -> Next {
    if !ctx.revision.dcr_application_type() {
        return Next::Done(Outcome::Skip("a 2026-07-28 rule".into()));
    }
    let typed = |application_type: &str, uri: &str| {
        let mut body = registration_body(ctx, &[uri]);
        body["application_type"] = json!(application_type);
        body.to_string()
    };
    let b = [
        typed("native", "https://client.example/cb"),
        typed("web", REDIRECT_URI),
    ];
    dcr_refused(ctx, done, &b)
}

fn dcr_oversized(ctx: &Context, done: &[Exchange]) -> Next {
    let Some(endpoint) = registration_endpoint(ctx) else {
        return Next::Done(Outcome::Skip("no registration_endpoint".into()));
    };
    if done.is_empty() {
        let mut body = registration_body(ctx, &[REDIRECT_URI]);
        body["client_name"] = json!("x".repeat(256 * 1024));
        return Next::Send(Send::Http(registration_post(endpoint, body.to_string())));
    }
    let e = &done[0];
    Next::Done(match e.status() {
        400..=499 => Outcome::Pass,
        200..=299 => Outcome::Skip(format!(
            "a 256 KiB registration was accepted: the AS's bound (if any) is above it; no \
             requirement names one, but it is a way to fill the client table: {}",
            answered(e)
        )),
        _ => Outcome::Violated(
            format!("expected a 4xx: {}", answered(e)),
            "bound the registration body and refuse larger ones with 413 or 400, never 5xx",
        ),
    })
}

/// A PKCE verifier for this check (`n`-th), from the run's nonce: 64 hex characters.
fn verifier(ctx: &Context, name: &str, n: u32) -> String {
    let digest = Sha256::digest(format!("{} {name} {n}", ctx.nonce));
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

fn state(ctx: &Context, name: &str) -> String {
    format!("probe-{}-{name}", &verifier(ctx, name, 99)[..16])
}

/// Parameters of an authorization request.
struct Authorize<'a> {
    client_id: &'a str,
    redirect_uri: &'a str,
    challenge: Option<String>,
    resource: &'a str,
}

fn authorize(ctx: &Context, name: &str, a: &Authorize<'_>) -> Option<Send> {
    let endpoint = ctx.asm.as_ref()?.authorization_endpoint.as_ref()?;
    let state = state(ctx, name);
    let scope = ctx.full_scope();
    let mut pairs = vec![
        ("response_type", "code"),
        ("client_id", a.client_id),
        ("redirect_uri", a.redirect_uri),
        ("state", state.as_str()),
        ("resource", a.resource),
    ];
    if let Some(c) = &a.challenge {
        pairs.push(("code_challenge", c));
        pairs.push(("code_challenge_method", "S256"));
    }
    if !scope.is_empty() {
        pairs.push(("scope", &scope));
    }
    let query = crate::form::encode(pairs);
    let sep = if endpoint.contains('?') { '&' } else { '?' };
    Some(Send::UserAgent(
        HttpRequest::new(Method::Get, format!("{endpoint}{sep}{query}"))
            .header("accept", "text/html"),
    ))
}

fn challenge_of(verifier: &str) -> String {
    crate::pkce::CodeVerifier::parse(verifier)
        .map(|v| v.challenge().as_str().to_owned())
        .unwrap_or_default()
}

/// The query parameters of the redirect to the client, if the answer is one.
fn callback(e: &Exchange) -> Option<Vec<(String, String)>> {
    let location = redirect_target(e)?;
    let query = location.split_once('?')?.1;
    let query = query.split('#').next().unwrap_or(query);
    Some(
        form_urlencoded::parse(query.as_bytes())
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect(),
    )
}

fn param<'a>(pairs: &'a [(String, String)], name: &str) -> Option<&'a str> {
    pairs
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

/// A token request.
fn token_request(ctx: &Context, form: &[(&str, &str)]) -> Option<Send> {
    let endpoint = ctx.asm.as_ref()?.token_endpoint.as_ref()?;
    let (_, secret) = ctx.flow_client.as_ref()?;
    let mut request = HttpRequest::new(Method::Post, endpoint)
        .header("content-type", "application/x-www-form-urlencoded")
        .header("accept", "application/json")
        .body(crate::form::encode(form.iter().copied()));
    if let (Some(secret), Some(id)) = (secret, form.iter().find(|(k, _)| *k == "client_id")) {
        request = request.header(
            "authorization",
            crate::form::basic_authorization(id.1, secret),
        );
    }
    Some(Send::Http(request))
}

fn code_request(
    ctx: &Context,
    code: &str,
    verifier: &str,
    overrides: &[(&str, &str)],
) -> Option<Send> {
    let (client_id, _) = ctx.flow_client.as_ref()?;
    let mut form = vec![
        ("grant_type", "authorization_code"),
        ("code", code),
        ("redirect_uri", REDIRECT_URI),
        ("code_verifier", verifier),
        ("client_id", client_id.as_str()),
        ("resource", ctx.resource()),
    ];
    for (k, v) in overrides {
        match form.iter_mut().find(|(name, _)| name == k) {
            Some(slot) => slot.1 = v,
            None => form.push((k, v)),
        }
    }
    token_request(ctx, &form)
}

fn refresh_request(ctx: &Context, refresh_token: &str) -> Option<Send> {
    let (client_id, _) = ctx.flow_client.as_ref()?;
    token_request(
        ctx,
        &[
            ("grant_type", "refresh_token"),
            ("refresh_token", refresh_token),
            ("client_id", client_id.as_str()),
            ("resource", ctx.resource()),
        ],
    )
}

fn send(s: Option<Send>) -> Next {
    s.map_or_else(
        || {
            Next::Done(Outcome::Skip(
                "the AS metadata lacks an endpoint the flow needs".into(),
            ))
        },
        Next::Send,
    )
}

/// The user agent could not complete the authorization (a login it has no credentials for):
/// the check cannot tell.
fn unplayed(e: &Exchange) -> Option<Next> {
    e.answer.as_ref().err().map(|why| {
        Next::Done(Outcome::Skip(format!(
            "the probe could not play the user: {why}"
        )))
    })
}

fn no_client(ctx: &Context) -> Option<Outcome> {
    if ctx.flow_client.is_some() {
        return None;
    }
    Some(Outcome::Skip(match &ctx.registration {
        Some(e) => format!("the probe's client registration failed: {}", answered(e)),
        None => "no client: the AS has no registration_endpoint; pass --client-id".into(),
    }))
}

/// The client id the flow checks use, or why they are skipped ([`no_client`]).
fn flow_client_id(ctx: &Context) -> Result<&String, Outcome> {
    match &ctx.flow_client {
        Some((client_id, _)) => Ok(client_id),
        None => Err(no_client(ctx).unwrap_or_else(|| Outcome::Skip("no client".into()))),
    }
}

/// The first authorization of a check: step 0. Its code (or why there is none) at step 1.
fn first_authorization(ctx: &Context, name: &str, done: &[Exchange]) -> Result<String, Box<Next>> {
    let client_id = flow_client_id(ctx).map_err(|o| Box::new(Next::Done(o)))?;
    let Some(e) = done.first() else {
        return Err(Box::new(send(authorize(
            ctx,
            name,
            &Authorize {
                client_id,
                redirect_uri: REDIRECT_URI,
                challenge: Some(challenge_of(&verifier(ctx, name, 0))),
                resource: ctx.resource(),
            },
        ))));
    };
    match callback(e).as_deref().and_then(|q| param(q, "code")) {
        Some(code) => Ok(code.to_owned()),
        None => Err(Box::new(Next::Done(Outcome::Skip(format!(
            "the authorization did not give a code: {}",
            answered(e)
        ))))),
    }
}

/// Steps 0 and 1: the authorization and the code's redemption; the token response's JSON.
fn first_tokens(
    ctx: &Context,
    name: &str,
    done: &[Exchange],
) -> Result<(String, Value), Box<Next>> {
    let code = first_authorization(ctx, name, done)?;
    let Some(e) = done.get(1) else {
        return Err(Box::new(send(code_request(
            ctx,
            &code,
            &verifier(ctx, name, 0),
            &[],
        ))));
    };
    match e.json() {
        Some(json) if e.status() == 200 && json.get("access_token").is_some() => Ok((code, json)),
        _ => Err(Box::new(Next::Done(Outcome::Skip(format!(
            "the code was not redeemed: {}",
            answered(e)
        ))))),
    }
}

fn string(json: &Value, name: &str) -> Option<String> {
    json.get(name)?.as_str().map(str::to_owned)
}

fn base_flow(ctx: &Context, done: &[Exchange]) -> Next {
    if let Some(o) = no_client(ctx) {
        return Next::Done(o);
    }
    if let Some(next) = done.first().and_then(unplayed) {
        return next;
    }
    let code = match (done.first(), first_authorization(ctx, "flow", done)) {
        (_, Ok(code)) => code,
        (None, Err(next)) => return *next,
        (Some(e), Err(_)) => {
            return Next::Done(Outcome::Violated(
                format!("no code in the redirect: {}", answered(e)),
                "complete the authorization code flow with PKCE S256 and resource",
            ));
        }
    };
    let Some(e) = done.get(1) else {
        return send(code_request(ctx, &code, &verifier(ctx, "flow", 0), &[]));
    };
    let json = e.json().unwrap_or_default();
    let bearer = string(&json, "token_type").is_some_and(|t| t.eq_ignore_ascii_case("bearer"));
    let Some(access) = string(&json, "access_token").filter(|_| e.status() == 200 && bearer) else {
        return Next::Done(Outcome::Violated(
            format!(
                "expected 200 with access_token and token_type Bearer: {}",
                e.show()
            ),
            "redeem a valid code with its verifier: 200 {access_token, token_type: Bearer, expires_in}",
        ));
    };
    let Some(e) = done.get(2) else {
        return Next::Send(Send::Http(
            ctx.mcp_request(Some(&format!("Bearer {access}"))),
        ));
    };
    Next::Done(match e.status() {
        200..=299 => Outcome::Pass,
        401 | 403 => Outcome::Violated(
            format!(
                "the issued token is refused by the MCP server: {}",
                answered(e)
            ),
            "issue tokens the MCP server accepts (aud = its resource, its scopes)",
        ),
        _ => Outcome::Skip(format!(
            "the MCP server's answer does not say whether it took the token (another \
             revision?): {}",
            answered(e)
        )),
    })
}

fn flow_state(ctx: &Context, done: &[Exchange]) -> Next {
    if let Err(next) = first_authorization(ctx, "flow-state", done) {
        return *next;
    }
    let pairs = callback(&done[0]).unwrap_or_default();
    let expected = state(ctx, "flow-state");
    Next::Done(if param(&pairs, "state") == Some(expected.as_str()) {
        Outcome::Pass
    } else {
        Outcome::Violated(
            format!("state {:?}, sent {expected:?}", param(&pairs, "state")),
            "return the request's state unchanged in the redirect",
        )
    })
}

fn flow_iss(ctx: &Context, done: &[Exchange]) -> Next {
    if let Err(next) = first_authorization(ctx, "flow-iss", done) {
        return *next;
    }
    let pairs = callback(&done[0]).unwrap_or_default();
    let Some(iss) = param(&pairs, "iss") else {
        return Next::Done(Outcome::Skip("the redirect carries no iss".into()));
    };
    let issuer = ctx
        .asm
        .as_ref()
        .map(|m| m.issuer.as_str())
        .unwrap_or_default();
    let advertised = ctx
        .asm
        .as_ref()
        .is_some_and(|m| m.authorization_response_iss_parameter_supported);
    Next::Done(if iss != issuer {
        Outcome::Violated(
            format!("iss {iss:?}, the issuer is {issuer:?}"),
            "send the exact issuer identifier as iss (RFC 9207 §2)",
        )
    } else if !advertised {
        Outcome::Violated(
            "iss is sent but authorization_response_iss_parameter_supported is not true".into(),
            "set authorization_response_iss_parameter_supported: true in the AS metadata",
        )
    } else {
        Outcome::Pass
    })
}

fn flow_no_store(ctx: &Context, done: &[Exchange]) -> Next {
    if let Err(next) = first_tokens(ctx, "flow-no-store", done) {
        return *next;
    }
    let no_store = done[1]
        .response()
        .and_then(|r| r.header_value("cache-control"))
        .is_some_and(|c| c.to_ascii_lowercase().contains("no-store"));
    Next::Done(if no_store {
        Outcome::Pass
    } else {
        Outcome::Violated(
            format!("no Cache-Control: no-store: {}", answered(&done[1])),
            "send Cache-Control: no-store with every response that carries tokens",
        )
    })
}

fn flow_audience(ctx: &Context, done: &[Exchange]) -> Next {
    let (_, json) = match first_tokens(ctx, "flow-audience", done) {
        Ok(t) => t,
        Err(next) => return *next,
    };
    let access = string(&json, "access_token").unwrap_or_default();
    let claims = access
        .split('.')
        .nth(1)
        .and_then(|c| {
            use base64::Engine as _;
            base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(c)
                .ok()
        })
        .and_then(|c| serde_json::from_slice::<Value>(&c).ok());
    let Some(claims) = claims else {
        return Next::Done(Outcome::Skip("the access token is not a JWT".into()));
    };
    let resource = ctx.resource();
    let ok = match claims.get("aud") {
        Some(Value::String(a)) => a == resource,
        Some(Value::Array(a)) => a.iter().any(|v| v.as_str() == Some(resource)),
        _ => false,
    };
    Next::Done(if ok {
        Outcome::Pass
    } else {
        Outcome::Violated(
            format!("aud {:?}, resource {resource:?}", claims.get("aud")),
            "set the token's aud to the resource the client asked for",
        )
    })
}

/// `invalid_grant` passes whether with 400 or 401: the status is `token-error`'s matter
/// (TOK-14), not the rule this check grades.
fn expect_invalid_grant(e: &Exchange, fix: &'static str) -> Outcome {
    match (e.status(), e.oauth_error().as_deref()) {
        (400 | 401, Some("invalid_grant")) => Outcome::Pass,
        (200..=299, _) => Outcome::Violated(format!("accepted: {}", answered(e)), fix),
        _ => Outcome::Violated(
            format!("expected 400 invalid_grant: {}", e.show()),
            "answer with 400 {\"error\": \"invalid_grant\"}",
        ),
    }
}

fn pkce_wrong_verifier(ctx: &Context, done: &[Exchange]) -> Next {
    let code = match first_authorization(ctx, "pkce-wrong-verifier", done) {
        Ok(c) => c,
        Err(next) => return *next,
    };
    let Some(e) = done.get(1) else {
        let wrong = verifier(ctx, "pkce-wrong-verifier", 1);
        return send(code_request(ctx, &code, &wrong, &[]));
    };
    Next::Done(expect_invalid_grant(
        e,
        "check code_verifier against the stored S256 code_challenge",
    ))
}

fn pkce_required(ctx: &Context, done: &[Exchange]) -> Next {
    let client_id = match flow_client_id(ctx) {
        Ok(id) => id,
        Err(o) => return Next::Done(o),
    };
    let Some(e) = done.first() else {
        return send(authorize(
            ctx,
            "pkce-required",
            &Authorize {
                client_id,
                redirect_uri: REDIRECT_URI,
                challenge: None,
                resource: ctx.resource(),
            },
        ));
    };
    if let Some(next) = unplayed(e) {
        return next;
    }
    let pairs = callback(e).unwrap_or_default();
    Next::Done(if param(&pairs, "code").is_some() {
        Outcome::Violated(
            format!("a code without code_challenge: {}", answered(e)),
            "refuse authorization requests without code_challenge (invalid_request)",
        )
    } else if e.status() >= 500 {
        Outcome::Violated(
            format!("server error: {}", answered(e)),
            "answer invalid_request",
        )
    } else {
        Outcome::Pass
    })
}

fn code_single_use(ctx: &Context, done: &[Exchange]) -> Next {
    let (code, _) = match first_tokens(ctx, "code-single-use", done) {
        Ok(t) => t,
        Err(next) => return *next,
    };
    let Some(e) = done.get(2) else {
        return send(code_request(
            ctx,
            &code,
            &verifier(ctx, "code-single-use", 0),
            &[],
        ));
    };
    Next::Done(expect_invalid_grant(
        e,
        "mark a code used at its first redemption and refuse it afterwards",
    ))
}

fn code_replay_revokes(ctx: &Context, done: &[Exchange]) -> Next {
    let name = "code-replay-revokes";
    let (code, json) = match first_tokens(ctx, name, done) {
        Ok(t) => t,
        Err(next) => return *next,
    };
    let Some(replay) = done.get(2) else {
        return send(code_request(ctx, &code, &verifier(ctx, name, 0), &[]));
    };
    if !(400..500).contains(&replay.status()) {
        return Next::Done(Outcome::Skip(format!(
            "the replay was not refused (see code-single-use): {}",
            answered(replay)
        )));
    }
    // The AS can recall what it keeps: the refresh token of the first redemption (a
    // self-contained access token is out of its reach without introspection).
    let Some(rt) = refresh_token(&json) else {
        return Next::Done(Outcome::Skip(
            "no refresh token issued: what the replay revokes is not observable".into(),
        ));
    };
    let Some(e) = done.get(3) else {
        return send(refresh_request(ctx, &rt));
    };
    Next::Done(expect_invalid_grant(
        e,
        "revoke the tokens issued from a code when it is replayed (OAuth 2.1 §4.1.3)",
    ))
}

fn code_bound_client(ctx: &Context, done: &[Exchange]) -> Next {
    let name = "code-bound-client";
    let code = match first_authorization(ctx, name, done) {
        Ok(c) => c,
        Err(next) => return *next,
    };
    let Some(endpoint) = registration_endpoint(ctx) else {
        return Next::Done(Outcome::Skip(
            "no registration_endpoint for a second client".into(),
        ));
    };
    let Some(registered) = done.get(1) else {
        return Next::Send(Send::Http(registration_request(ctx, endpoint)));
    };
    let Some(other) = registered.json().and_then(|j| string(&j, "client_id")) else {
        return Next::Done(Outcome::Skip(format!(
            "the second client was not registered: {}",
            answered(registered)
        )));
    };
    let Some(e) = done.get(2) else {
        return send(code_request(
            ctx,
            &code,
            &verifier(ctx, name, 0),
            &[("client_id", &other)],
        ));
    };
    Next::Done(match (e.status(), e.oauth_error().as_deref()) {
        (400 | 401, Some(_)) => Outcome::Pass,
        _ => expect_invalid_grant(e, "bind the code to the client it was issued to"),
    })
}

fn code_bound_redirect(ctx: &Context, done: &[Exchange]) -> Next {
    let name = "code-bound-redirect";
    let code = match first_authorization(ctx, name, done) {
        Ok(c) => c,
        Err(next) => return *next,
    };
    let Some(e) = done.get(1) else {
        return send(code_request(
            ctx,
            &code,
            &verifier(ctx, name, 0),
            &[("redirect_uri", "http://127.0.0.1/mcp-auth-probe/other")],
        ));
    };
    Next::Done(match (e.status(), e.oauth_error()) {
        (400 | 401, Some(_)) => Outcome::Pass,
        _ => expect_invalid_grant(
            e,
            "compare a redirect_uri sent to the token endpoint with the authorization request's",
        ),
    })
}

fn redirect_exact(ctx: &Context, done: &[Exchange]) -> Next {
    let client_id = match flow_client_id(ctx) {
        Ok(id) => id,
        Err(o) => return Next::Done(o),
    };
    let Some(e) = done.first() else {
        return send(authorize(
            ctx,
            "redirect-exact",
            &Authorize {
                client_id,
                redirect_uri: "https://evil.example/cb",
                challenge: Some(challenge_of(&verifier(ctx, "redirect-exact", 0))),
                resource: ctx.resource(),
            },
        ));
    };
    if let Some(next) = unplayed(e) {
        return next;
    }
    Next::Done(match redirect_target(e) {
        Some(l) if l.starts_with("https://evil.example") => Outcome::Violated(
            format!("redirected to an unregistered URI: {}", answered(e)),
            "compare redirect_uri exactly with the registered ones; on a mismatch show an error page",
        ),
        _ => Outcome::Pass,
    })
}

fn resource_unknown(ctx: &Context, done: &[Exchange]) -> Next {
    let client_id = match flow_client_id(ctx) {
        Ok(id) => id,
        Err(o) => return Next::Done(o),
    };
    let Some(e) = done.first() else {
        return send(authorize(
            ctx,
            "resource-unknown",
            &Authorize {
                client_id,
                redirect_uri: REDIRECT_URI,
                challenge: Some(challenge_of(&verifier(ctx, "resource-unknown", 0))),
                resource: FOREIGN_RESOURCE,
            },
        ));
    };
    if let Some(next) = unplayed(e) {
        return next;
    }
    let pairs = callback(e).unwrap_or_default();
    let body = e
        .response()
        .map(|r| String::from_utf8_lossy(&r.body).contains("invalid_target"))
        .unwrap_or(false);
    Next::Done(
        if param(&pairs, "code").is_none()
            && (param(&pairs, "error") == Some("invalid_target") || body)
        {
            Outcome::Pass
        } else {
            Outcome::Violated(
                format!("expected error=invalid_target: {}", answered(e)),
                "refuse a resource you do not serve with invalid_target (RFC 8707 §2)",
            )
        },
    )
}

fn resource_binding(ctx: &Context, done: &[Exchange]) -> Next {
    let name = "resource-binding";
    let code = match first_authorization(ctx, name, done) {
        Ok(c) => c,
        Err(next) => return *next,
    };
    let Some(e) = done.get(1) else {
        return send(code_request(
            ctx,
            &code,
            &verifier(ctx, name, 0),
            &[("resource", FOREIGN_RESOURCE)],
        ));
    };
    Next::Done(match e.status() {
        400 => Outcome::Pass,
        _ => Outcome::Violated(
            format!("expected 400 invalid_target: {}", answered(e)),
            "refuse a token request whose resource is not the one the code was issued for",
        ),
    })
}

fn refresh_token(json: &Value) -> Option<String> {
    string(json, "refresh_token")
}

fn refresh_rotation(ctx: &Context, done: &[Exchange]) -> Next {
    let (_, json) = match first_tokens(ctx, "refresh-rotation", done) {
        Ok(t) => t,
        Err(next) => return *next,
    };
    let Some(rt1) = refresh_token(&json) else {
        return Next::Done(Outcome::Skip("no refresh token issued".into()));
    };
    let Some(e) = done.get(2) else {
        return send(refresh_request(ctx, &rt1));
    };
    let rt2 = e.json().as_ref().and_then(refresh_token);
    if e.status() != 200 {
        return Next::Done(Outcome::Skip(format!(
            "the refresh failed: {}",
            answered(e)
        )));
    }
    if rt2.as_deref().is_none_or(|rt2| rt2 == rt1) {
        return Next::Done(Outcome::Violated(
            format!("no new refresh token: {}", e.show()),
            "rotate refresh tokens of public clients at every use",
        ));
    }
    let Some(e) = done.get(3) else {
        return send(refresh_request(ctx, &rt1));
    };
    Next::Done(expect_invalid_grant(
        e,
        "invalidate a refresh token once it has been rotated",
    ))
}

fn refresh_replay_revokes(ctx: &Context, done: &[Exchange]) -> Next {
    let (_, json) = match first_tokens(ctx, "refresh-replay-revokes", done) {
        Ok(t) => t,
        Err(next) => return *next,
    };
    let Some(rt1) = refresh_token(&json) else {
        return Next::Done(Outcome::Skip("no refresh token issued".into()));
    };
    let Some(e) = done.get(2) else {
        return send(refresh_request(ctx, &rt1));
    };
    let Some(rt2) = e
        .json()
        .as_ref()
        .and_then(refresh_token)
        .filter(|r| *r != rt1)
    else {
        return Next::Done(Outcome::Skip(format!(
            "the refresh gave no new refresh token: {}",
            answered(e)
        )));
    };
    let Some(replay) = done.get(3) else {
        return send(refresh_request(ctx, &rt1));
    };
    if !(400..500).contains(&replay.status()) {
        return Next::Done(Outcome::Skip(format!(
            "the replay was not refused (see refresh-rotation): {}",
            answered(replay)
        )));
    }
    let Some(e) = done.get(4) else {
        return send(refresh_request(ctx, &rt2));
    };
    Next::Done(expect_invalid_grant(
        e,
        "revoke the whole grant when a rotated refresh token comes back",
    ))
}

/// The hidden inputs and `action` of the page's consent form (the form with a `decision`
/// button, else the first), as a browser would post them.
fn consent_form(html: &str) -> Option<(String, Vec<(String, String)>)> {
    let attribute = |tag: &str, name: &str| -> Option<String> {
        let needle = format!(" {name}=\"");
        let start = tag.find(&needle)? + needle.len();
        let end = tag[start..].find('"')?;
        Some(
            tag[start..start + end]
                .replace("&quot;", "\"")
                .replace("&#39;", "'")
                .replace("&lt;", "<")
                .replace("&gt;", ">")
                .replace("&amp;", "&"),
        )
    };
    let forms: Vec<&str> = html
        .split("<form")
        .skip(1)
        .map(|f| f.split("</form>").next().unwrap_or(f))
        .collect();
    let form = forms
        .iter()
        .find(|f| f.contains("name=\"decision\""))
        .or_else(|| forms.first())?;
    let action = attribute(&form[..form.find('>')?], "action").unwrap_or_default();
    let mut fields: Vec<(String, String)> = form
        .split("<input")
        .skip(1)
        .filter_map(|input| {
            let tag = &input[..input.find('>')?];
            tag.contains("type=\"hidden\"")
                .then(|| Some((attribute(tag, "name")?, attribute(tag, "value")?)))
                .flatten()
        })
        .collect();
    if form.contains("name=\"decision\"") {
        fields.push(("decision".into(), "approve".into()));
    }
    Some((action, fields))
}

/// `target` resolved against the URL of the page it appears on.
fn resolve(page: &str, target: &str) -> String {
    if target.starts_with("http://") || target.starts_with("https://") {
        return target.to_owned();
    }
    let base = page.split(['?', '#']).next().unwrap_or(page);
    let after = base.find("://").map_or(0, |i| i + 3);
    let origin_end = base[after..].find('/').map_or(base.len(), |i| after + i);
    if target.starts_with('/') {
        return format!("{}{target}", &base[..origin_end]);
    }
    let dir = base
        .rfind('/')
        .filter(|&i| i >= origin_end)
        .unwrap_or(base.len());
    format!("{}/{target}", &base[..dir])
}

/// The cookies an answer sets, as a `Cookie` header value.
fn cookies(e: &Exchange) -> Option<String> {
    let jar: Vec<&str> = e
        .response()?
        .header_values("set-cookie")
        .filter_map(|c| c.split(';').next())
        .collect();
    (!jar.is_empty()).then(|| jar.join("; "))
}

/// Consent CSRF: the consent form shown to browser session A, posted from session B (B's
/// cookie, A's hidden fields). The user of A never decided: no code may come of it.
fn consent_session_binding(ctx: &Context, done: &[Exchange]) -> Next {
    let client_id = match flow_client_id(ctx) {
        Ok(id) => id,
        Err(o) => return Next::Done(o),
    };
    let page = |name: &str| {
        authorize(
            ctx,
            name,
            &Authorize {
                client_id,
                redirect_uri: REDIRECT_URI,
                challenge: Some(challenge_of(&verifier(ctx, name, 0))),
                resource: ctx.resource(),
            },
        )
        .map(|send| Send::Http(send.request().clone()))
    };
    let Some(a) = done.first() else {
        return send(page("consent-a"));
    };
    let form = a
        .response()
        .filter(|r| r.status == 200)
        .and_then(|r| consent_form(&String::from_utf8_lossy(&r.body)));
    let Some((action, fields)) = form else {
        return Next::Done(Outcome::Skip(format!(
            "no consent form on the authorization page: {}",
            answered(a)
        )));
    };
    if !fields.iter().any(|(k, _)| k == "decision") {
        return Next::Done(Outcome::Skip(
            "the authorization page is not a consent form (a login page?)".into(),
        ));
    }
    let Some(b) = done.get(1) else {
        return send(page("consent-b"));
    };
    let Some(cookie) = cookies(b) else {
        return Next::Done(Outcome::Skip(
            "the AS sets no session cookie: browser sessions are not observable".into(),
        ));
    };
    let Some(e) = done.get(2) else {
        let url = resolve(&a.request.url, &action);
        let origin = crate::uri::parse_uri(&url)
            .map(|p| p.origin())
            .unwrap_or_default();
        let body = crate::form::encode(fields.iter().map(|(k, v)| (k.as_str(), v.as_str())));
        return Next::Send(Send::Http(
            HttpRequest::new(Method::Post, url)
                .header("content-type", "application/x-www-form-urlencoded")
                .header("origin", origin)
                .header("cookie", cookie)
                .body(body),
        ));
    };
    let pairs = callback(e).unwrap_or_default();
    Next::Done(if param(&pairs, "code").is_some() {
        Outcome::Violated(
            format!(
                "a code for a consent the session's user never saw: {}",
                answered(e)
            ),
            "count a consent only from the browser session and user the prompt was shown to",
        )
    } else {
        Outcome::Pass
    })
}
