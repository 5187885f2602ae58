//! The properties, named by invariant and requirement IDs (spec/README.md). Each reads the
//! ghost audit and the real states; none is evaluated by the protocol.
//!
//! Two kinds. The **goals** ([`GOALS`]) say what alice loses: the attacker gets something of
//! hers she did not give it ([`THEFT`]), a session of hers ends with someone else's
//! authorization ([`SESSION`]), the honest MCP server acts for her on a token she did not
//! mean for it or from someone she did not give it to ([`SERVED`]), a grant of hers keeps
//! yielding tokens after its theft showed ([`REUSE`]), or a session nobody attacked does not
//! end authorized ([`PROGRESS`]). They are stated on a ghost record of what she meant
//! ([`Intent`](crate::Intent): she opened session n's authorization URL, for the server she
//! pointed it at), never on the check that guards them; every mutation must break one. The
//! **diagnostics** (the rest of [`SAFETY`]) restate single checks (a code used twice, a
//! rotated-out refresh token accepted, PRM for another server accepted): they must hold with
//! every defense on and say which check failed, but a mutation breaking only one of them has
//! shown no harm.

use mcp_auth_proto::client::Action as ClientAction;
use mcp_auth_proto::uri::RedirectUri;
use stateright::Property;

use mcp_auth_proto::http::{HttpRequest, Method};
use mcp_auth_proto::pkce::CodeVerifier;
use mcp_auth_proto::server::{CodeBinding, CodeState};

use crate::world::{Claims, Event, Party, Via, World};
use crate::{
    ALICE, ATTACKER_DOC, ATTACKER_VERIFIER, AuthModel, Config, DocLure, EVIL_RS, HONEST_DOC,
    HONEST_ISSUER, HONEST_RS, IMPOSTOR_DOC, Target, claims_of,
};

/// AUTHZ: the AS issues alice's tokens only to the party that runs the client, and only for a
/// client she approved herself, on a consent page shown to her (a consent CSRF, AZ-29, gives
/// the attacker a token for alice she never approved).
pub const AUTHZ: &str =
    "AUTHZ (TOK-5, PKCE-9): alice's tokens go only to the client she authorized";
/// THEFT (goal): the attacker obtains nothing of alice's she did not give it.
pub const THEFT: &str = "THEFT (TOK-5, PKCE-9, AZ-3, AZ-20, AZ-29): the attacker gets no token and no code with its verifier from a flow alice started, and holds a token of hers only for its own server, for its own client she approved for that server, or from a grant it stole";
/// SERVED (goal): the honest MCP server acts for alice only as she meant.
pub const SERVED: &str = "SERVED (RS-2, RS-5, RS-8, RS-13): the honest MCP server acts for alice only on a token from its issuer, for itself, for a client she approved for it, presented by that client (or by the thief of a grant)";
/// REUSE (goal): a grant of alice's whose code or refresh token was used twice (the sign of a
/// theft) yields nothing more, to anyone.
pub const REUSE: &str = "REUSE (TOK-6, TOK-8, RT-1, RT-2): once a code or refresh token of a grant of alice's honest sessions is used twice, the grant yields no token to anyone";
/// SESSION: an honest session never ends up with someone else's authorization.
pub const SESSION: &str =
    "SESSION (AZ-12, SEC-13): an honest session holds only alice's token for its own client";
/// MIXUP: codes go only to the token endpoint of the AS that minted them.
pub const MIXUP: &str =
    "MIXUP (AZ-20): the client sends a code only to its minter's token endpoint";
/// REDIRECT: codes go only to registered redirect URIs.
pub const REDIRECT: &str =
    "REDIRECT (AZ-3, AZ-4): codes reach only a registered redirect URI of their client";
/// AUD: the honest RS accepts only its own, consented tokens from their owners.
pub const AUD: &str = "AUD (RS-2, RS-5, RS-8): the RS accepts only tokens for itself, from its issuer, presented by their client";
/// PASSTHROUGH: tokens reach a server only if minted for it.
pub const PASSTHROUGH: &str =
    "PASSTHROUGH (CLI-5, RS-6): an honest party presents a token only to its audience";
/// ONCE: single-use codes.
pub const ONCE: &str = "ONCE (TOK-6, TOK-7): no code yields two token responses";
/// REFRESH: rotated refresh tokens are dead.
pub const REFRESH: &str = "REFRESH (RT-1): a rotated-out refresh token never yields a token again";
/// REVOKE: a replayed refresh token kills its family.
pub const REVOKE: &str =
    "REVOKE (RT-2): after a refresh token replay its grant yields no more tokens";
/// RESOURCE: audiences are consented.
pub const RESOURCE: &str =
    "RESOURCE (RES-14): a token's audience is a resource its user consented to for its client";
/// DISCOVERY: PRM names the server asked about, and the AS contacted is listed there.
pub const DISCOVERY: &str = "DISCOVERY (DISC-4, RES-3): the client acts only on PRM for the server it asked, and an AS it lists";
/// BOUND: a code yields tokens only to its client, with its redirect URI.
pub const BOUND: &str = "BOUND (TOK-5, TOK-10): a code yields tokens only to the client and redirect URI it was issued for";
/// REDEEM: the attacker never redeems a code of a flow it did not start (goal level: the
/// mix-up of RFC 9700 §4.4 ends with the attacker holding alice's code and her client's PKCE
/// verifier).
pub const REDEEM: &str =
    "REDEEM (AZ-20, PKCE-9): the attacker redeems only codes of its own flows, never alice's";
/// CIMD_THEFT: nothing of alice's for the honest document client reaches the attacker.
pub const CIMD_THEFT: &str = "CIMD_THEFT (CIMD-3, AZ-3, TOK-5): the attacker gets no usable code and no token of alice's for the honest client's URL";
/// CIMD_REDIRECT: document clients' tokens come from codes sent to a redirect URI their
/// document lists.
pub const CIMD_REDIRECT: &str = "CIMD_REDIRECT (CIMD-3): a token for a client ID URL comes only from a code for a redirect URI the document at that URL lists";
/// PROGRESS: liveness as an invariant (see the crate docs).
pub const PROGRESS: &str = "PROGRESS (L1): every started session is authorized or has its next step enabled; only a session an attacker step (or time) acted on may fail";

/// Non-vacuity: a stolen refresh token yields tokens to the attacker (before the theft shows).
pub const STOLEN_USED: &str =
    "theft exercised: the attacker refreshes a refresh token stolen from a session";
/// Non-vacuity: the reuse of a grant's code or refresh token is seen.
pub const REUSE_SEEN: &str =
    "reuse exercised: a code or refresh token of a session's grant comes back to the AS";
/// Non-vacuity: alice approves the attacker's client (the worst-case user), and the attacker
/// holds her token for its server.
pub const PHISHED: &str =
    "phishing exercised: the attacker holds alice's token for its client, which she approved";
/// Non-vacuity: time ends a flow.
pub const EXPIRED: &str = "time exercised: a session's flow fails after the clock moved";

/// Non-vacuity: the honest flow completes.
pub const HONEST_FLOW: &str = "honest flow: the honest RS serves alice's session its own token";
/// Non-vacuity: refresh works.
pub const HONEST_REFRESH: &str = "honest refresh: a session refreshes its token";
/// Non-vacuity: the malicious MCP server gets a token (A5 is exercised).
pub const EVIL_GETS_TOKEN: &str = "A5 exercised: the malicious MCP server receives alice's token";
/// Non-vacuity: the mix-up path is exercised.
pub const MIXUP_EXERCISED: &str =
    "mix-up exercised: the attacker's AS forwards alice to the honest AS";

/// Non-vacuity (CIMD): the honest client completes its flow with its document URL.
pub const CIMD_HONEST_FLOW: &str =
    "CIMD honest flow: the honest RS serves alice's session a token for the honest client's URL";
/// Non-vacuity (CIMD): the honest AS fetches an attacker's document.
pub const CIMD_FETCHED: &str = "CIMD exercised: the honest AS fetches an attacker's document";
/// Non-vacuity (CIMD): the attacker's document client gets a code.
pub const CIMD_ATTACKER_CODE: &str =
    "CIMD exercised: the attacker's own document client gets a code at the honest AS";
/// Non-vacuity (CIMD): the lure with the honest client's URL and the attacker's redirect URI
/// reaches the honest AS (which refuses it).
pub const CIMD_LURE: &str = "CIMD exercised: the lure with the honest client's URL and the attacker's redirect URI reaches the honest AS";
/// Non-vacuity of the mutation `skip_document_client_id_check`: the impostor document is
/// accepted (only checked under that mutation).
pub const CIMD_IMPOSTOR: &str =
    "CIMD impostor: the honest AS accepts the impostor document and issues a code for it";

/// The goal-level safety properties: what alice loses (see the module docs).
pub const GOALS: [&str; 5] = [THEFT, SESSION, SERVED, REUSE, PROGRESS];

/// The safety properties (`always`), in report order: the goals, then the diagnostics.
pub const SAFETY: [&str; 19] = [
    THEFT,
    SESSION,
    SERVED,
    REUSE,
    PROGRESS,
    AUTHZ,
    MIXUP,
    REDIRECT,
    AUD,
    PASSTHROUGH,
    ONCE,
    REFRESH,
    REVOKE,
    RESOURCE,
    DISCOVERY,
    REDEEM,
    BOUND,
    CIMD_THEFT,
    CIMD_REDIRECT,
];

/// A goal-level property (see the module docs)?
pub fn is_goal(name: &str) -> bool {
    GOALS.contains(&name)
}

fn consented(w: &World, sub: &str, client: &str, aud: Option<&str>) -> bool {
    w.audit
        .consents
        .iter()
        .any(|(u, c, r)| u == sub && c == client && aud.is_none_or(|a| a == r))
}

fn owner(w: &World, client: &str) -> Option<Party> {
    w.audit.owners.get(client).copied()
}

/// The grant (client id, resource) was stolen from a session: until the theft shows (REUSE),
/// its tokens are the thief's.
fn stolen(w: &World, claims: &Claims) -> bool {
    w.audit
        .stolen
        .contains(&(claims.client_id.clone(), claims.aud.clone()))
}

/// The code belongs to a flow alice started (its PKCE challenge is one of her flows').
fn of_her_flow(w: &World, code: &str) -> bool {
    code_binding(w, code).is_some_and(|b| {
        w.audit
            .intents
            .iter()
            .any(|i| i.challenge == b.challenge.as_str())
    })
}

fn s256(verifier: &str) -> Option<String> {
    CodeVerifier::parse(verifier)
        .ok()
        .map(|v| v.challenge().as_str().to_owned())
}

// spec: TOK-5, PKCE-9, AZ-3, AZ-20, AZ-29
fn theft(_: &AuthModel, w: &World) -> bool {
    // No token from a code of a flow she started (whoever's client it names: a mix-up's
    // forwarded consent page is still her flow).
    let redeemed = w.audit.events.iter().all(|e| match e {
        Event::Issued {
            to: Party::Attacker,
            via: Via::Code(code),
            ..
        } => !of_her_flow(w, code),
        _ => true,
    });
    // No code of hers together with its verifier.
    let verifiers = w.attacker.verifiers.iter().all(|(code, verifier)| {
        !(of_her_flow(w, code)
            && code_binding(w, code)
                .is_some_and(|b| s256(verifier).as_deref() == Some(b.challenge.as_str())))
    });
    // Every token of hers it holds, she gave it: one for its own server, one for its own
    // client she approved for that audience, or one of a grant it stole.
    let held = w.attacker.access_tokens.iter().all(|token| {
        claims_of(token).is_none_or(|c| {
            c.iss != HONEST_ISSUER
                || c.sub != ALICE
                || c.aud == EVIL_RS
                || (owner(w, &c.client_id) == Some(Party::Attacker)
                    && consented(w, ALICE, &c.client_id, Some(&c.aud)))
                || stolen(w, &c)
        })
    });
    redeemed && verifiers && held
}

// spec: RS-2, RS-5, RS-8, RS-13
fn served(_: &AuthModel, w: &World) -> bool {
    w.audit.events.iter().all(|e| match e {
        Event::Served { by, claims } if claims.sub == ALICE => {
            claims.aud == HONEST_RS
                && claims.iss == HONEST_ISSUER
                && consented(w, ALICE, &claims.client_id, Some(HONEST_RS))
                && (owner(w, &claims.client_id) == Some(*by) || stolen(w, claims))
        }
        _ => true,
    })
}

// spec: TOK-6, TOK-8, RT-1, RT-2
fn reuse(_: &AuthModel, w: &World) -> bool {
    w.audit.events.iter().all(|e| match e {
        Event::Issued {
            after_replay: true,
            claims,
            ..
        } => {
            !(claims.sub == ALICE && matches!(owner(w, &claims.client_id), Some(Party::Session(_))))
        }
        _ => true,
    })
}

// spec: TOK-5, PKCE-9, AZ-29, AZ-30
fn authz(_: &AuthModel, w: &World) -> bool {
    w.audit.events.iter().all(|e| match e {
        Event::Issued { to, claims, .. } if claims.sub == ALICE => {
            (owner(w, &claims.client_id) == Some(*to)
                && consented(w, ALICE, &claims.client_id, None))
                || stolen(w, claims)
        }
        _ => true,
    })
}

// spec: AZ-11, AZ-12, SEC-13
fn session(_: &AuthModel, w: &World) -> bool {
    w.sessions.iter().flatten().all(|s| match s.action() {
        ClientAction::Authorized(t) if t.issuer == HONEST_ISSUER => claims_of(&t.access_token)
            .is_some_and(|c| {
                c.sub == ALICE && c.client_id == t.client_id && c.aud == s.target.url()
            }),
        _ => true,
    })
}

// spec: AZ-20
fn mixup(_: &AuthModel, w: &World) -> bool {
    w.audit.events.iter().all(|e| match e {
        Event::CodeSent {
            endpoint,
            minter_endpoint: Some(m),
            ..
        } => endpoint == m,
        _ => true,
    })
}

// spec: AZ-3, AZ-4, AZ-22
fn redirect(_: &AuthModel, w: &World) -> bool {
    let registered = crate::registered_redirects(w);
    w.audit.events.iter().all(|e| match e {
        Event::CodeRedirect { client_id, target } => {
            let Ok(target) = RedirectUri::parse(target) else {
                return false;
            };
            registered.get(client_id).is_some_and(|uris| {
                uris.iter()
                    .filter_map(|u| RedirectUri::parse(u).ok())
                    .any(|u| u.matches(&target))
            })
        }
        _ => true,
    })
}

// spec: RS-2, RS-5, RS-8, RS-13
fn aud(_: &AuthModel, w: &World) -> bool {
    w.audit.events.iter().all(|e| match e {
        Event::Served { by, claims } => {
            claims.aud == HONEST_RS
                && claims.iss == HONEST_ISSUER
                && consented(w, &claims.sub, &claims.client_id, Some(HONEST_RS))
                && (claims.sub != ALICE
                    || owner(w, &claims.client_id) == Some(*by)
                    || stolen(w, claims))
        }
        _ => true,
    })
}

// spec: CLI-5, RS-6
fn passthrough(_: &AuthModel, w: &World) -> bool {
    w.audit.events.iter().all(|e| match e {
        Event::Presented { server, claims, .. } => claims.aud == server.url(),
        _ => true,
    })
}

// spec: TOK-6, TOK-7
fn once(_: &AuthModel, w: &World) -> bool {
    let mut seen = std::collections::BTreeSet::new();
    w.audit.events.iter().all(|e| match e {
        Event::Issued {
            via: Via::Code(c), ..
        } => seen.insert(c.clone()),
        _ => true,
    })
}

// spec: RT-1
fn refresh(_: &AuthModel, w: &World) -> bool {
    let mut seen = std::collections::BTreeSet::new();
    w.audit.events.iter().all(|e| match e {
        Event::Issued {
            via: Via::Refresh(r),
            ..
        } => seen.insert(r.clone()),
        _ => true,
    })
}

// spec: RT-2
fn revoke(_: &AuthModel, w: &World) -> bool {
    w.audit.events.iter().all(|e| match e {
        Event::Issued {
            via: Via::Refresh(_),
            after_replay,
            ..
        } => !after_replay,
        _ => true,
    })
}

// spec: RES-13, RES-14
fn resource(_: &AuthModel, w: &World) -> bool {
    w.audit.events.iter().all(|e| match e {
        Event::Issued { claims, .. } => {
            consented(w, &claims.sub, &claims.client_id, Some(&claims.aud))
        }
        _ => true,
    })
}

// spec: DISC-4, RES-3, RES-4
fn discovery(_: &AuthModel, w: &World) -> bool {
    w.audit.events.iter().all(|e| match e {
        Event::PrmAccepted {
            asked,
            resource,
            servers,
            next,
            ..
        } => resource == asked && servers.iter().any(|s| next.starts_with(s.as_str())),
        _ => true,
    })
}

/// The PKCE challenge of the attacker's own flows.
fn attacker_challenge() -> String {
    CodeVerifier::parse(ATTACKER_VERIFIER)
        .expect("valid verifier")
        .challenge()
        .as_str()
        .to_owned()
}

fn code_binding(w: &World, code: &str) -> Option<CodeBinding> {
    w.honest_as.code_state(code).map(|s| match s {
        CodeState::Issued(b) | CodeState::Redeemed { binding: b, .. } => b.clone(),
    })
}

// spec: AZ-20, PKCE-9
fn redeem(_: &AuthModel, w: &World) -> bool {
    let mine = attacker_challenge();
    w.audit.events.iter().all(|e| match e {
        Event::Issued {
            to: Party::Attacker,
            via: Via::Code(code),
            ..
        } => code_binding(w, code).is_none_or(|b| b.challenge.as_str() == mine),
        _ => true,
    })
}

// spec: TOK-5, TOK-10
fn bound(_: &AuthModel, w: &World) -> bool {
    !w.audit
        .events
        .iter()
        .any(|e| matches!(e, Event::Unbound { .. }))
}

/// The redirect URIs the document served at `url` lists (ground truth: what the web serves,
/// not what the AS cached).
fn document_redirects(url: &str) -> Vec<String> {
    let request = HttpRequest::new(Method::Get, url);
    AuthModel::serve_document(&request)
        .ok()
        .filter(|r| r.status == 200)
        .and_then(|r| serde_json::from_slice::<serde_json::Value>(&r.body).ok())
        .and_then(|v| {
            v.get("redirect_uris")?.as_array().map(|a| {
                a.iter()
                    .filter_map(|u| u.as_str().map(str::to_owned))
                    .collect()
            })
        })
        .unwrap_or_default()
}

// spec: CIMD-3, AZ-3, TOK-5
fn cimd_theft(_: &AuthModel, w: &World) -> bool {
    let honest = document_redirects(HONEST_DOC);
    let tokens = w.audit.events.iter().all(|e| match e {
        Event::Issued { to, claims, .. }
            if claims.sub == ALICE && claims.client_id == HONEST_DOC =>
        {
            *to == Party::Session(0)
        }
        _ => true,
    });
    // A3 gives the attacker the codes that reach the honest callback (PKCE protects them);
    // any other code of alice's for the honest client is a theft.
    let codes = w.attacker.codes.keys().all(|code| {
        code_binding(w, code).is_none_or(|b| {
            b.client_id.0 != HONEST_DOC || b.subject.0 != ALICE || honest.contains(&b.redirect_uri)
        })
    });
    tokens && codes
}

// spec: CIMD-3
fn cimd_redirect(_: &AuthModel, w: &World) -> bool {
    w.audit.events.iter().all(|e| match e {
        Event::Issued {
            via: Via::Code(code),
            claims,
            ..
        } if claims.client_id.contains("://") => code_binding(w, code)
            .is_none_or(|b| document_redirects(&claims.client_id).contains(&b.redirect_uri)),
        _ => true,
    })
}

fn progress(_: &AuthModel, w: &World) -> bool {
    w.sessions.iter().enumerate().all(|(n, s)| {
        let Some(s) = s else { return true };
        let touched = w.audit.touched.contains(&(n as u8));
        match s.action() {
            ClientAction::OpenBrowser(_) => !s.browsed || touched,
            ClientAction::Failed(_) => touched,
            ClientAction::Idle => false,
            ClientAction::Send(_) | ClientAction::Authorized(_) => true,
        }
    })
}

fn stolen_used(_: &AuthModel, w: &World) -> bool {
    w.audit.events.iter().any(|e| {
        matches!(e, Event::Issued { to: Party::Attacker, via: Via::Refresh(_), claims, .. }
            if claims.sub == ALICE && stolen(w, claims))
    })
}

fn reuse_seen(_: &AuthModel, w: &World) -> bool {
    w.audit.events.iter().any(|e| {
        matches!(e, Event::Reused { family } if crate::AuthModel::flow_session(w, family).is_some())
    })
}

fn phished(_: &AuthModel, w: &World) -> bool {
    w.attacker.access_tokens.iter().any(|t| {
        claims_of(t).is_some_and(|c| {
            c.sub == ALICE
                && owner(w, &c.client_id) == Some(Party::Attacker)
                && consented(w, ALICE, &c.client_id, Some(&c.aud))
        })
    })
}

fn expired(_: &AuthModel, w: &World) -> bool {
    w.ticks > 0
        && w.sessions
            .iter()
            .flatten()
            .any(|s| matches!(s.action(), ClientAction::Failed(_)))
}

fn honest_flow(_: &AuthModel, w: &World) -> bool {
    w.audit.events.iter().any(|e| {
        matches!(e, Event::Served { by: Party::Session(n), claims }
            if claims.sub == ALICE && w.client_id_of(*n) == Some(claims.client_id.as_str()))
    })
}

fn honest_refresh(_: &AuthModel, w: &World) -> bool {
    w.audit.events.iter().any(|e| {
        matches!(
            e,
            Event::Issued {
                to: Party::Session(_),
                via: Via::Refresh(_),
                ..
            }
        )
    })
}

fn evil_gets_token(_: &AuthModel, w: &World) -> bool {
    w.audit.events.iter().any(|e| {
        matches!(e, Event::Presented { server: Target::Evil, claims, .. } if claims.sub == ALICE)
    })
}

fn mixup_exercised(_: &AuthModel, w: &World) -> bool {
    w.audit
        .events
        .iter()
        .any(|e| matches!(e, Event::Forwarded { .. }))
}

fn cimd_honest_flow(_: &AuthModel, w: &World) -> bool {
    w.audit.events.iter().any(|e| {
        matches!(e, Event::Served { by: Party::Session(_), claims }
            if claims.sub == ALICE && claims.client_id == HONEST_DOC)
    })
}

fn cimd_fetched(_: &AuthModel, w: &World) -> bool {
    w.audit.events.iter().any(|e| {
        matches!(e, Event::DocumentFetched { url } if url.starts_with("https://attacker.example/"))
    })
}

fn cimd_attacker_code(_: &AuthModel, w: &World) -> bool {
    w.audit
        .events
        .iter()
        .any(|e| matches!(e, Event::CodeRedirect { client_id, .. } if client_id == ATTACKER_DOC))
}

fn cimd_lure(_: &AuthModel, w: &World) -> bool {
    w.audit.events.iter().any(|e| {
        matches!(
            e,
            Event::Lured {
                lure: DocLure::HonestClient,
                ..
            }
        )
    })
}

fn cimd_impostor(_: &AuthModel, w: &World) -> bool {
    w.audit
        .events
        .iter()
        .any(|e| matches!(e, Event::CodeRedirect { client_id, .. } if client_id == IMPOSTOR_DOC))
}

/// The properties checked on a configuration: every safety property, and the non-vacuity
/// examples its attacker and sessions can produce.
pub fn of(cfg: &Config) -> Vec<Property<AuthModel>> {
    let cimd_only = [
        CIMD_HONEST_FLOW,
        CIMD_FETCHED,
        CIMD_ATTACKER_CODE,
        CIMD_LURE,
    ];
    #[cfg(mcp_auth_mutations)]
    let impostor = cfg.mutations.skip_document_client_id_check;
    #[cfg(not(mcp_auth_mutations))]
    let impostor = false;
    all()
        .into_iter()
        .filter(|p| match p.name {
            EVIL_GETS_TOKEN | MIXUP_EXERCISED => cfg.lured_sessions > 0,
            HONEST_REFRESH => cfg.session_refreshes > 0,
            STOLEN_USED => cfg.steal && cfg.attacker_refreshes > 0,
            REUSE_SEEN => cfg.steal && cfg.attacker_refreshes > 0,
            PHISHED => cfg.phish,
            EXPIRED => cfg.ticks > 0,
            CIMD_IMPOSTOR => cfg.cimd && impostor,
            name if cimd_only.contains(&name) => cfg.cimd,
            _ => true,
        })
        .collect()
}

/// Every property of the model (of every configuration: [`of`] picks a configuration's).
pub fn all() -> Vec<Property<AuthModel>> {
    vec![
        Property::always(THEFT, theft),
        Property::always(SERVED, served),
        Property::always(REUSE, reuse),
        Property::always(AUTHZ, authz),
        Property::always(SESSION, session),
        Property::always(MIXUP, mixup),
        Property::always(REDIRECT, redirect),
        Property::always(AUD, aud),
        Property::always(PASSTHROUGH, passthrough),
        Property::always(ONCE, once),
        Property::always(REFRESH, refresh),
        Property::always(REVOKE, revoke),
        Property::always(RESOURCE, resource),
        Property::always(DISCOVERY, discovery),
        Property::always(REDEEM, redeem),
        Property::always(BOUND, bound),
        Property::always(CIMD_THEFT, cimd_theft),
        Property::always(CIMD_REDIRECT, cimd_redirect),
        Property::always(PROGRESS, progress),
        Property::sometimes(STOLEN_USED, stolen_used),
        Property::sometimes(REUSE_SEEN, reuse_seen),
        Property::sometimes(PHISHED, phished),
        Property::sometimes(EXPIRED, expired),
        Property::sometimes(HONEST_FLOW, honest_flow),
        Property::sometimes(HONEST_REFRESH, honest_refresh),
        Property::sometimes(EVIL_GETS_TOKEN, evil_gets_token),
        Property::sometimes(MIXUP_EXERCISED, mixup_exercised),
        Property::sometimes(CIMD_HONEST_FLOW, cimd_honest_flow),
        Property::sometimes(CIMD_FETCHED, cimd_fetched),
        Property::sometimes(CIMD_ATTACKER_CODE, cimd_attacker_code),
        Property::sometimes(CIMD_LURE, cimd_lure),
        Property::sometimes(CIMD_IMPOSTOR, cimd_impostor),
    ]
}

/// The condition of a property, by name (to cut traces at the first violating state).
pub fn condition(name: &str) -> Option<fn(&AuthModel, &World) -> bool> {
    all()
        .into_iter()
        .find(|p| p.name == name)
        .map(|p| p.condition)
}
