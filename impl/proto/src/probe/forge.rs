//! Tokens the MCP server must refuse: forged without keys (anyone can make them), and, with
//! the AS's signing key (`--as-key`, test deployments), validly signed tokens that break one
//! claim rule each. Every claim check first sends a token with valid claims as a control: if
//! the server refuses that one, the check cannot tell and is SKIP.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use super::checks_rs::EVIL_ORIGIN;
use super::{Area, Check, Context, Exchange, Level, Needs, Next, Outcome, Send, answered};
use crate::jwt::{Ed25519Signer, Signer};

fn forged(
    name: &'static str,
    ids: &'static [&'static str],
    title: &'static str,
    step: fn(&Context, &[Exchange]) -> Next,
) -> Check {
    Check {
        name,
        area: Area::ForgedTokens,
        ids,
        level: Level::Must,
        title,
        needs: Needs::Nothing,
        step,
    }
}

fn claim(
    name: &'static str,
    ids: &'static [&'static str],
    level: Level,
    title: &'static str,
    step: fn(&Context, &[Exchange]) -> Next,
) -> Check {
    Check {
        name,
        area: Area::Claims,
        ids,
        level,
        title,
        needs: Needs::AsKey,
        step,
    }
}

pub(crate) fn checks() -> Vec<Check> {
    vec![
        forged(
            "alg-none",
            &["JWT-9", "JWT-2", "RS-3"],
            "alg none (none, None, NONE, nOnE) is refused",
            alg_none,
        ),
        forged(
            "hs256-public-key",
            &["JWT-9", "RS-3"],
            "HS256 keyed with the AS's public key is refused",
            hs256_public_key,
        ),
        forged(
            "embedded-jwk",
            &["JWT-9", "JWT-13", "RS-3"],
            "a token carrying its own key (jwk header) is refused",
            embedded_jwk,
        ),
        forged(
            "jku-x5u",
            &["JWT-9", "JWT-13", "RS-3"],
            "a token naming its own key URL (jku, x5u) is refused",
            jku_x5u,
        ),
        forged(
            "unknown-kid",
            &["JWT-9", "RS-3"],
            "a token with an unknown kid is refused",
            unknown_kid,
        ),
        forged(
            "bad-signature",
            &["JWT-9", "RS-3"],
            "the AS's kid and alg with a signature of another key is refused",
            bad_signature,
        ),
        claim(
            "expired",
            &["JWT-10", "RS-3"],
            Level::Must,
            "exp in the past: 401",
            expired,
        ),
        claim(
            "not-yet-valid",
            &["JWT-11"],
            Level::Must,
            "nbf in the future: 401",
            not_yet_valid,
        ),
        claim(
            "wrong-issuer",
            &["JWT-7"],
            Level::Must,
            "another iss: 401",
            wrong_issuer,
        ),
        claim(
            "missing-aud",
            &["RS-8", "JWT-8"],
            Level::Must,
            "no aud: 401",
            missing_aud,
        ),
        claim(
            "wrong-aud",
            &["RS-2", "RS-6"],
            Level::Must,
            "aud of another server: 401",
            wrong_aud,
        ),
        claim(
            "sibling-aud",
            &["RS-2", "RS-5", "RS-8"],
            Level::Must,
            "aud of another resource on this host: 401",
            sibling_aud,
        ),
        claim(
            "missing-exp",
            &["RS-1", "JWT-10"],
            Level::Must,
            "no exp: 401",
            missing_exp,
        ),
        claim(
            "wrong-typ",
            &["JWT-6"],
            Level::Must,
            "typ JWT (not at+jwt): 401",
            wrong_typ,
        ),
        claim(
            "insufficient-scope",
            &["ERR-2"],
            Level::Must,
            "a token without the needed scope: 403",
            insufficient_scope,
        ),
        claim(
            "insufficient-scope-challenge",
            &["ERR-8", "ERR-11"],
            Level::Should,
            "the 403 says insufficient_scope and scope=",
            insufficient_scope_challenge,
        ),
        claim(
            "token-in-query",
            &["RS-11"],
            Level::Must,
            "a valid token in the query string is ignored: 401",
            token_in_query,
        ),
        claim(
            "session-needs-token",
            &["SEC-2", "SEC-3"],
            Level::Must,
            "a real session id without its token: 401",
            session_needs_token,
        ),
        claim(
            "origin-with-token",
            &["SEC-8"],
            Level::Must,
            "a valid token from a foreign Origin: 403",
            origin_with_token,
        ),
    ]
}

/// `base64url(header).base64url(claims).`
fn unsigned(header: &Value, claims: &Value) -> String {
    let mut t = URL_SAFE_NO_PAD.encode(header.to_string());
    t.push('.');
    URL_SAFE_NO_PAD.encode_string(claims.to_string(), &mut t);
    t.push('.');
    t
}

/// Valid claims for this resource, now.
pub(crate) fn claims(ctx: &Context, jti: &str) -> Value {
    let now = ctx.now.as_secs();
    json!({
        "iss": ctx.issuer().unwrap_or_default(),
        "sub": "mcp-auth-probe",
        "aud": ctx.resource(),
        "exp": now + 300,
        "iat": now,
        "jti": format!("probe-{}-{jti}", ctx.nonce),
        "client_id": "mcp-auth-probe",
        "scope": ctx.full_scope(),
    })
}

/// A key nobody trusts, derived from the run's nonce.
fn attacker(ctx: &Context, kid: &str) -> Signer {
    let seed: [u8; 32] = Sha256::digest(format!("mcp-auth-probe attacker {}", ctx.nonce)).into();
    Signer::new(Ed25519Signer::from_seed(kid, seed))
}

/// The first key of the AS's JWK Set.
fn as_jwk(ctx: &Context) -> Option<(Value, String)> {
    let e = ctx.jwks_exchange.as_ref()?;
    let r = e.response().filter(|r| r.status == 200)?;
    let raw = String::from_utf8_lossy(&r.body).into_owned();
    let set: Value = serde_json::from_str(&raw).ok()?;
    let key = set.get("keys")?.as_array()?.first()?.clone();
    Some((key, raw))
}

fn bearer(token: &str) -> String {
    format!("Bearer {token}")
}

/// Send each token in turn; every one must get 401.
fn all_refused(ctx: &Context, done: &[Exchange], tokens: &[String]) -> Next {
    if let Some(t) = tokens.get(done.len()) {
        return Next::Send(Send::Http(ctx.mcp_request(Some(&bearer(t)))));
    }
    for e in done {
        if e.status() != 401 {
            let fix = if (200..300).contains(&e.status()) {
                "verify signatures only with the AS's published keys and an allow-list of algorithms"
            } else {
                "answer an invalid token with 401 invalid_token"
            };
            return Next::Done(Outcome::Violated(
                format!("expected 401: {}", answered(e)),
                fix,
            ));
        }
    }
    Next::Done(Outcome::Pass)
}

fn alg_none(ctx: &Context, done: &[Exchange]) -> Next {
    let tokens: Vec<String> = ["none", "None", "NONE", "nOnE"]
        .iter()
        .map(|alg| unsigned(&json!({"alg": alg, "typ": "at+jwt"}), &claims(ctx, "none")))
        .collect();
    all_refused(ctx, done, &tokens)
}

fn hmac(key: &[u8], message: &str) -> String {
    let key = aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, key);
    URL_SAFE_NO_PAD.encode(aws_lc_rs::hmac::sign(&key, message.as_bytes()).as_ref())
}

fn hs256_public_key(ctx: &Context, done: &[Exchange]) -> Next {
    let Some((jwk, raw)) = as_jwk(ctx) else {
        return Next::Done(Outcome::Skip("no JWK Set published (jwks_uri)".into()));
    };
    let kid = jwk.get("kid").and_then(Value::as_str).unwrap_or_default();
    let header = json!({"alg": "HS256", "typ": "at+jwt", "kid": kid});
    let message = unsigned(&header, &claims(ctx, "hs256"));
    let message = message.trim_end_matches('.');
    let mut keys: Vec<Vec<u8>> = vec![raw.into_bytes(), jwk.to_string().into_bytes()];
    for member in ["x", "n"] {
        if let Some(bytes) = jwk
            .get(member)
            .and_then(Value::as_str)
            .and_then(|s| URL_SAFE_NO_PAD.decode(s).ok())
        {
            keys.push(bytes);
        }
    }
    let tokens: Vec<String> = keys
        .iter()
        .map(|k| format!("{message}.{}", hmac(k, message)))
        .collect();
    all_refused(ctx, done, &tokens)
}

fn signed(signer: &Signer, header: Value, claims: &Value) -> String {
    signer.sign_json(&header, claims).unwrap_or_default()
}

fn embedded_jwk(ctx: &Context, done: &[Exchange]) -> Next {
    let key = attacker(ctx, "probe-embedded");
    let jwk = serde_json::to_value(key.public_jwk()).unwrap_or_default();
    let header = json!({"alg": "EdDSA", "typ": "at+jwt", "kid": "probe-embedded", "jwk": jwk});
    all_refused(ctx, done, &[signed(&key, header, &claims(ctx, "jwk"))])
}

fn jku_x5u(ctx: &Context, done: &[Exchange]) -> Next {
    let key = attacker(ctx, "probe-jku");
    let tokens = [
        json!({"alg": "EdDSA", "typ": "at+jwt", "kid": "probe-jku", "jku": format!("{EVIL_ORIGIN}/jwks.json")}),
        json!({"alg": "EdDSA", "typ": "at+jwt", "kid": "probe-jku", "x5u": format!("{EVIL_ORIGIN}/cert.pem")}),
    ]
    .into_iter()
    .map(|h| signed(&key, h, &claims(ctx, "jku")))
    .collect::<Vec<_>>();
    all_refused(ctx, done, &tokens)
}

fn unknown_kid(ctx: &Context, done: &[Exchange]) -> Next {
    let key = attacker(ctx, "probe-unknown-kid");
    let header = json!({"alg": "EdDSA", "typ": "at+jwt", "kid": "probe-unknown-kid"});
    all_refused(ctx, done, &[signed(&key, header, &claims(ctx, "kid"))])
}

fn bad_signature(ctx: &Context, done: &[Exchange]) -> Next {
    let Some((jwk, _)) = as_jwk(ctx) else {
        return Next::Done(Outcome::Skip("no JWK Set published (jwks_uri)".into()));
    };
    let kid = jwk.get("kid").and_then(Value::as_str).unwrap_or_default();
    let alg = jwk.get("alg").and_then(Value::as_str).unwrap_or("EdDSA");
    let header = json!({"alg": alg, "typ": "at+jwt", "kid": kid});
    // A signature of the right length for the algorithm, made by another key (or zeros).
    let message = unsigned(&header, &claims(ctx, "badsig"));
    let message = message.trim_end_matches('.');
    let signature = if alg == "EdDSA" {
        let key = attacker(ctx, kid);
        let token = signed(&key, header.clone(), &claims(ctx, "badsig"));
        token.rsplit('.').next().unwrap_or_default().to_owned()
    } else {
        let len = if alg == "ES256" { 64 } else { 256 };
        URL_SAFE_NO_PAD.encode(vec![0x5a; len])
    };
    all_refused(ctx, done, &[format!("{message}.{signature}")])
}

/// Send the control token (valid claims), then `token`; judge the second answer with `judge`
/// when the control was accepted.
fn controlled(
    ctx: &Context,
    done: &[Exchange],
    mutate: impl Fn(&mut Value, &mut Value),
    judge: impl Fn(&Exchange) -> Outcome,
) -> Next {
    let Some(key) = &ctx.as_key else {
        return Next::Done(Outcome::Skip("no --as-key".into()));
    };
    let header = json!({"alg": key.alg().as_str(), "typ": "at+jwt", "kid": key.kid()});
    match done.len() {
        0 => {
            let token = signed(key, header, &claims(ctx, "control"));
            Next::Send(Send::Http(ctx.mcp_request(Some(&bearer(&token)))))
        }
        1 => {
            if !(200..300).contains(&done[0].status()) {
                return Next::Done(Outcome::Skip(format!(
                    "a token with valid claims signed with --as-key was refused, so the server's \
                     answer to a broken one proves nothing: {}",
                    answered(&done[0])
                )));
            }
            let (mut header, mut claims) = (header, claims(ctx, "mutated"));
            mutate(&mut header, &mut claims);
            let token = signed(key, header, &claims);
            Next::Send(Send::Http(ctx.mcp_request(Some(&bearer(&token)))))
        }
        _ => Next::Done(judge(&done[1])),
    }
}

fn must_401(e: &Exchange) -> Outcome {
    match e.status() {
        401 => Outcome::Pass,
        s if (200..300).contains(&s) => Outcome::Violated(
            format!("accepted: {}", answered(e)),
            "validate this claim on every request (RFC 9068 §4)",
        ),
        _ => Outcome::Violated(
            format!("expected 401: {}", answered(e)),
            "answer an invalid token with 401 invalid_token",
        ),
    }
}

fn set(claims: &mut Value, name: &str, value: Value) {
    if let Some(map) = claims.as_object_mut() {
        map.insert(name.to_owned(), value);
    }
}

fn remove(claims: &mut Value, name: &str) {
    if let Some(map) = claims.as_object_mut() {
        map.remove(name);
    }
}

fn expired(ctx: &Context, done: &[Exchange]) -> Next {
    let now = ctx.now.as_secs();
    controlled(
        ctx,
        done,
        |_, c| {
            set(c, "exp", json!(now.saturating_sub(600)));
            set(c, "iat", json!(now.saturating_sub(1200)));
        },
        must_401,
    )
}

fn not_yet_valid(ctx: &Context, done: &[Exchange]) -> Next {
    let now = ctx.now.as_secs();
    controlled(ctx, done, |_, c| set(c, "nbf", json!(now + 600)), must_401)
}

fn wrong_issuer(ctx: &Context, done: &[Exchange]) -> Next {
    controlled(
        ctx,
        done,
        |_, c| set(c, "iss", json!(EVIL_ORIGIN)),
        must_401,
    )
}

fn missing_aud(ctx: &Context, done: &[Exchange]) -> Next {
    controlled(ctx, done, |_, c| remove(c, "aud"), must_401)
}

fn wrong_aud(ctx: &Context, done: &[Exchange]) -> Next {
    controlled(
        ctx,
        done,
        |_, c| set(c, "aud", json!(format!("{EVIL_ORIGIN}/mcp"))),
        must_401,
    )
}

fn sibling_aud(ctx: &Context, done: &[Exchange]) -> Next {
    let sibling = format!("{}-other", ctx.resource());
    controlled(
        ctx,
        done,
        |_, c| set(c, "aud", json!([sibling.clone()])),
        must_401,
    )
}

fn missing_exp(ctx: &Context, done: &[Exchange]) -> Next {
    controlled(ctx, done, |_, c| remove(c, "exp"), must_401)
}

fn wrong_typ(ctx: &Context, done: &[Exchange]) -> Next {
    controlled(ctx, done, |h, _| set(h, "typ", json!("JWT")), must_401)
}

fn no_scope(_: &mut Value, c: &mut Value) {
    set(c, "scope", json!("probe:none"));
}

fn insufficient_scope(ctx: &Context, done: &[Exchange]) -> Next {
    controlled(ctx, done, no_scope, |e| match e.status() {
        403 => Outcome::Pass,
        s if (200..300).contains(&s) => {
            Outcome::Skip("the server needs no scope for this request: nothing to check".into())
        }
        _ => Outcome::Violated(
            format!("expected 403: {}", answered(e)),
            "answer a valid token that lacks a needed scope with 403",
        ),
    })
}

fn insufficient_scope_challenge(ctx: &Context, done: &[Exchange]) -> Next {
    controlled(ctx, done, no_scope, |e| {
        if e.status() != 403 {
            return Outcome::Skip(format!("no 403 to look at: {}", answered(e)));
        }
        match e.bearer() {
            Some(b) if b.error.as_deref() == Some("insufficient_scope") && b.scope.is_some() => {
                Outcome::Pass
            }
            _ => Outcome::Violated(
                format!(
                    "challenge without error=\"insufficient_scope\" and scope: {}",
                    answered(e)
                ),
                "send Bearer error=\"insufficient_scope\", scope=\"<needed>\", resource_metadata=…",
            ),
        }
    })
}

/// The control token (valid), then a request made with it by `build`; judge the answer.
fn with_valid(
    ctx: &Context,
    done: &[Exchange],
    build: impl Fn(&str, &[Exchange]) -> Option<crate::http::HttpRequest>,
    judge: impl Fn(&[Exchange]) -> Outcome,
) -> Next {
    let Some(key) = &ctx.as_key else {
        return Next::Done(Outcome::Skip("no --as-key".into()));
    };
    let header = json!({"alg": key.alg().as_str(), "typ": "at+jwt", "kid": key.kid()});
    let token = signed(key, header, &claims(ctx, "control"));
    if done.is_empty() {
        return Next::Send(Send::Http(ctx.mcp_request(Some(&bearer(&token)))));
    }
    if !(200..300).contains(&done[0].status()) {
        return Next::Done(Outcome::Skip(format!(
            "a token with valid claims signed with --as-key was refused: {}",
            answered(&done[0])
        )));
    }
    if done.len() == 1 {
        return match build(&token, done) {
            Some(r) => Next::Send(Send::Http(r)),
            None => Next::Done(Outcome::Skip("nothing to send".into())),
        };
    }
    Next::Done(judge(done))
}

fn token_in_query(ctx: &Context, done: &[Exchange]) -> Next {
    with_valid(
        ctx,
        done,
        |token, _| {
            let mut r = ctx.mcp_request(None);
            let sep = if r.url.contains('?') { '&' } else { '?' };
            r.url = format!("{}{sep}access_token={token}", r.url);
            Some(r)
        },
        |done| must_401(&done[1]),
    )
}

fn session_needs_token(ctx: &Context, done: &[Exchange]) -> Next {
    if ctx.revision.stateless() {
        return Next::Done(Outcome::Skip(
            "2026-07-28 has no sessions (session-without-token covers SEC-18)".into(),
        ));
    }
    with_valid(
        ctx,
        done,
        |_, done| {
            let session = done[0]
                .response()?
                .header_value("mcp-session-id")?
                .to_owned();
            let body = json!({"jsonrpc": "2.0", "id": 2, "method": "tools/list"});
            Some(
                crate::http::HttpRequest::new(crate::http::Method::Post, &ctx.mcp_url)
                    .header("content-type", "application/json")
                    .header("accept", "application/json, text/event-stream")
                    .header("mcp-protocol-version", ctx.revision.as_str())
                    .header("mcp-session-id", session)
                    .body(body.to_string()),
            )
        },
        |done| must_401(&done[1]),
    )
}

fn origin_with_token(ctx: &Context, done: &[Exchange]) -> Next {
    with_valid(
        ctx,
        done,
        |token, _| {
            Some(
                ctx.mcp_request(Some(&bearer(token)))
                    .header("origin", EVIL_ORIGIN),
            )
        },
        |done| {
            let e = &done[1];
            match e.status() {
                403 => Outcome::Pass,
                _ => Outcome::Violated(
                    format!("expected 403: {}", answered(e)),
                    "check the Origin header of every request and refuse foreign ones with 403",
                ),
            }
        },
    )
}
