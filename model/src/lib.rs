//! # mcp-auth-model: MCP authorization, model-checked on the real core
//!
//! A [`stateright`] model whose state is made of the production values of `mcp-auth-proto`
//! (the authorization server, the MCP endpoint's guard, the client state machines), plus what
//! the attacker knows and a ghost audit log. Every transition is a call into the same functions
//! the hyper drivers call — [`handle`] for every request to an authorization server,
//! [`McpGuard::handle_request`] / [`McpGuard::handle_body`] (the tower layer's whole pipeline)
//! for every request to the honest MCP server, and the client's
//! `handle_unauthorized` / `handle_response` / `handle_redirect` / `authorization_for` — with
//! requests and responses as [`HttpRequest`] / [`HttpResponse`] values through the same HTTP
//! codecs. The model itself has no protocol logic: it routes requests by origin, plays the user
//! (who logs in when asked and approves every consent page it is shown, the worst case), and
//! plays the attacker.
//!
//! ## Browsers and users
//!
//! The honest AS has two accounts, `alice` and `mallory` (argon2id hashes with the cheapest
//! costs, passwords known to the model's user agents: AZ-30). Each browser (alice's, the
//! attacker's as `mallory`) keeps its session cookie in the [`World`]; a user agent step is
//! GET authorize with the cookie → the login form if the login page is shown → the consent
//! page → Approve, following the AS's pages as a browser does (AZ-29 binds the prompt to the
//! session and the user).
//!
//! Tokens are real Ed25519 JWTs (deterministic signatures), entropy is [`Sequential`] and part
//! of the state, time is simulated.
//!
//! [`replay`] gives the checker's paths as data (examples, counterexamples) and records the
//! core's answer at every step of a path; `impl/mcp-auth/tests/model_replay.rs` replays them
//! as real HTTP against the hyper drivers and compares.
//!
//! ## The attacker (RFC 9700 §3), bounded
//!
//! - **A3**: reads every authorization response that reaches an honest client's callback.
//! - registers its own clients at the honest AS (one with its own redirect URI, one with the
//!   victims' loopback redirect URI), and logs in there as `mallory`;
//! - **consent CSRF**: starts an authorization for its own client (its redirect URI, the
//!   honest MCP server) in its own browser (in the initial state), reads the consent form's
//!   `id` and `csrf`, and makes
//!   alice's browser post them to the honest AS with alice's session cookie (AZ-29). The model
//!   gives the attacker that POST without an `Origin` header and with the cookie, i.e. it does
//!   not rely on `SameSite=Lax` or the `Origin` check (SEC-15): the binding alone must hold;
//! - runs a **malicious MCP server** ([`EVIL_RS`], a resource the honest AS knows): it learns
//!   every token sent to it, and answers PRM in one of three ways ([`Prm`]): naming the honest
//!   AS, naming its own AS (mix-up), or spoofing the honest server's `resource`;
//! - runs a **malicious AS** ([`EVIL_ISSUER`], the reference AS run by the attacker): it learns
//!   every request it receives, and its authorization endpoint sends the user on to the honest AS
//!   with the victim's `state` and `code_challenge` (mix-up, RFC 9700 §4.4);
//! - lures the user to authorization URLs it built (with a victim's client id and its own
//!   redirect URI), injects codes into victims' callbacks (CSRF / session swap), redeems codes
//!   and refresh tokens (its own, leaked, replayed), presents tokens at the honest MCP server.
//!
//! - **Client ID Metadata Documents** (configuration `cimd`): the honest client's `client_id`
//!   is [`HONEST_DOC`], a public URL (its document lists the loopback redirect URI of session
//!   0); the honest AS fetches documents through [`AuthModel::serve_document`], the model's web,
//!   handing the answer to the core's `finish_fetch` as the hyper driver does. The attacker
//!   hosts [`ATTACKER_DOC`] (its redirect URI), [`ATTACKER_LOOPBACK_DOC`] (the honest loopback
//!   redirect URI) and [`IMPOSTOR_DOC`] (the honest client's `client_id` and name, its own
//!   redirect URI), and lures alice ([`DocLure`]) with each, and with [`HONEST_DOC`] and its
//!   own redirect URI. Who runs a client ID URL is whoever writes the document there.
//!
//! - **steals a refresh token** from a lured session's storage (configuration `thief`,
//!   RFC 9700 §4.14): the grant is the thief's until its reuse shows;
//! - **phishes**: lures alice into approving its own client for its own server (configuration
//!   `phish`; the worst-case user approves): a token of hers it holds by her choice, which must
//!   stay limited to that server;
//! - **downgrades PKCE**: lures alice to an authorization request for her session's client and
//!   redirect URI without `code_challenge`, and reads the code at her callback (A3);
//! - **forges**: its AS signs a token claiming the honest issuer (under the honest key's
//!   `kid`), for alice at the honest MCP server, and presents it there.
//!
//! **Knowledge-based requests.** The attacker builds every token request from what it knows
//! ([`Knowledge`]): a code it saw (where it arrived), a client id it knows (its own, the
//! honest sessions' — client ids are public, RFC 6749 §2.2 — and the client ID URLs), the
//! redirect URI where the code arrived or its own, a verifier it learned (else its own), and
//! either server as `resource`; refresh requests name either server or none. Nothing is read
//! from the AS's tables: the token endpoint's client, redirect, PKCE and resource bindings are
//! checked, not presumed (each has a switch and a mutation case). A request the AS refuses
//! changes nothing, so it is no transition: the attempts cost time, not states.
//!
//! ## Properties: what alice loses
//!
//! A ghost record of what alice meant ([`Intent`]: she opened session n's authorization URL,
//! for the server she pointed it at; the flow is known by its PKCE challenge) states the goals
//! ([`properties::GOALS`]): THEFT, SESSION, SERVED, REUSE and PROGRESS. Every mutation's
//! counterexample breaks one of them; the properties that restate a single check stay as
//! diagnostics ([`properties`]).
//!
//! ## Liveness
//!
//! stateright's `eventually` is unsound on graphs with joins (bfs.rs FIXME: a path reaching an
//! already-visited state is not checked further), and this model's interleavings join
//! everywhere. Liveness is therefore stated as an invariant that implies it: the model is
//! acyclic (every transition grows a monotone component: entropy, time, the audit log, the
//! attacker's knowledge, bounded counters, or a client's lifecycle), so every path ends in a
//! terminal state, and `PROGRESS` says every started session is finished or has its next step
//! enabled — hence in every terminal state every session is finished. A session may end
//! failed only if an attacker step (or a clock tick) acted on it (the audit's `touched`): a
//! session nobody attacked ends authorized.
//!
//! [`handle`]: mcp_auth_proto::server::http::handle
//! [`McpGuard::handle_request`]: mcp_auth_proto::endpoint::McpGuard::handle_request
//! [`McpGuard::handle_body`]: mcp_auth_proto::endpoint::McpGuard::handle_body
//! [`HttpRequest`]: mcp_auth_proto::http::HttpRequest
//! [`HttpResponse`]: mcp_auth_proto::http::HttpResponse
//! [`Sequential`]: mcp_auth_proto::Sequential

mod actions;
mod attacker;
mod config;
pub mod memo;
#[cfg(mcp_auth_mutations)]
pub mod mutation;
mod network;
pub mod properties;
pub mod replay;
pub mod report;
pub mod url;
mod user_agent;
pub mod world;

use std::collections::BTreeMap;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use mcp_auth_proto::client::Action as ClientAction;
use mcp_auth_proto::jwt::{AccessClaims, Audience};
use mcp_auth_proto::resource::ResourceServer;
use mcp_auth_proto::server::http::UserAgentPolicy;
use stateright::{Model, Property};

pub use config::{Config, MUTATIONS_BUILD_ENV};
pub use user_agent::{honest_users, password_of, user_record};
pub use world::{
    Audit, Claims, CodeSeen, Event, Intent, Knowledge, Party, Session, Target, Via, World,
};

/// The honest authorization server.
pub const HONEST_ISSUER: &str = "https://as.example";
/// The attacker's authorization server.
pub const EVIL_ISSUER: &str = "https://evil-as.example";
/// The honest MCP server.
pub const HONEST_RS: &str = "https://mcp.example/mcp";
/// The malicious MCP server (a resource registered at the honest AS).
pub const EVIL_RS: &str = "https://evil.example/mcp";
/// The attacker's redirect URI.
pub const ATTACKER_REDIRECT: &str = "https://attacker.example/cb";
/// The honest client's Client ID Metadata Document URL (its `client_id` in the CIMD
/// configuration): the document lists session 0's loopback redirect URI only.
pub const HONEST_DOC: &str = "https://client.example/mcp-client.json";
/// The attacker's document for its own client: its own redirect URI.
pub const ATTACKER_DOC: &str = "https://attacker.example/client.json";
/// The attacker's document naming the honest client's (loopback) redirect URI.
pub const ATTACKER_LOOPBACK_DOC: &str = "https://attacker.example/loopback.json";
/// The attacker's impostor document: at an attacker URL, it claims the honest client's
/// `client_id` and name, with the attacker's redirect URI.
pub const IMPOSTOR_DOC: &str = "https://attacker.example/impostor.json";
/// The victim user.
pub const ALICE: &str = "alice";
/// The attacker's own account at the honest AS.
pub const MALLORY: &str = "mallory";
/// Alice's password at the honest AS (known to her browser in the model).
pub const ALICE_PASSWORD: &str = "alice-password";
/// Mallory's password at the honest AS.
pub const MALLORY_PASSWORD: &str = "mallory-password";
/// The honest AS's session cookie (its issuer is https: `__Host-` prefixed, PF-14).
pub const SESSION_COOKIE: &str = "__Host-mcp-auth-session";
/// The PKCE verifier the attacker uses in its own flows.
pub const ATTACKER_VERIFIER: &str = "attacker-verifier-0123456789-0123456789-0123456789";
/// How far one tick moves the clock: past code, consent and access-token lifetimes.
pub const TICK_SECS: u64 = 3_601;
/// The seed of the attacker's AS's Ed25519 key (the honest AS's is 7); both keys have the
/// `kid` `k1`.
pub const EVIL_SEED: u8 = 9;
/// The seed of the honest AS's Ed25519 key.
pub const HONEST_SEED: u8 = 7;
/// The scope every party asks for.
pub const SCOPE: &str = "mcp:tools";

/// The loopback redirect URI of honest session `n` (each session is its own client process).
pub fn redirect_uri(n: u8) -> String {
    format!("http://127.0.0.1:{}/callback", 7777 + u16::from(n))
}

/// What the malicious MCP server's Protected Resource Metadata says.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Prm {
    /// Its own resource, the honest AS (the honest client gets a token for it: A5).
    Genuine,
    /// Its own resource, the attacker's AS (mix-up).
    EvilAs,
    /// The honest server's `resource`, the honest AS (impersonation, RFC 9728 §7.3).
    Spoofed,
}

/// Whose client an attacker-initiated authorization uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Whose {
    /// The attacker's client with the attacker's redirect URI, for the malicious server.
    Own,
    /// Session `n`'s client id and redirect URI, for that session's server.
    Victim(u8),
}

/// A client ID URL and redirect URI the attacker lures alice's browser to authorize with
/// (CIMD configuration): all for the honest MCP server, with the attacker's PKCE challenge.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum DocLure {
    /// The honest client's document URL with the attacker's redirect URI.
    HonestClient,
    /// The attacker's own document (its redirect URI).
    Own,
    /// The attacker's document naming the honest client's loopback redirect URI, with that
    /// redirect URI (the code lands at the honest callback, and leaks: A3).
    Loopback,
    /// The impostor document's URL with the attacker's redirect URI.
    Impostor,
}

impl DocLure {
    /// Every lure.
    pub const ALL: [Self; 4] = [
        Self::HonestClient,
        Self::Own,
        Self::Loopback,
        Self::Impostor,
    ];

    /// (client id, redirect URI) of the lure.
    pub fn request(self) -> (&'static str, String) {
        match self {
            Self::HonestClient => (HONEST_DOC, ATTACKER_REDIRECT.to_owned()),
            Self::Own => (ATTACKER_DOC, ATTACKER_REDIRECT.to_owned()),
            Self::Loopback => (ATTACKER_LOOPBACK_DOC, redirect_uri(0)),
            Self::Impostor => (IMPOSTOR_DOC, ATTACKER_REDIRECT.to_owned()),
        }
    }
}

/// A transition.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Action {
    /// The user points session `session` at `target`: the client gets a 401 and runs discovery
    /// and registration until it needs the browser (PRM answered as `prm` by the malicious server).
    Connect {
        /// The session.
        session: u8,
        /// The server.
        target: Target,
        /// The malicious server's PRM (only `Genuine` for the honest server).
        prm: Prm,
    },
    /// Alice opens the session's authorization URL in her browser (with its session cookie),
    /// logs in if the login page is shown, and approves; the redirect reaches the callback
    /// (and the attacker, A3).
    Browse {
        /// The session.
        session: u8,
    },
    /// The session sends its pending token request.
    Redeem {
        /// The session.
        session: u8,
    },
    /// The session calls the other MCP server (with whatever token the client attaches: none
    /// unless a mutation lets it).
    Call {
        /// The session.
        session: u8,
        /// The server.
        server: Target,
    },
    /// The session refreshes its token.
    Refresh {
        /// The session.
        session: u8,
    },
    /// Time passes.
    Tick,
    /// The attacker, logged in as `mallory`, authorizes a client for itself.
    AttackerAuthorize {
        /// Which client.
        whose: Whose,
    },
    /// The attacker lures the user to an authorization URL with session `session`'s client id
    /// and the attacker's redirect URI.
    Lure {
        /// The victim session.
        session: u8,
    },
    /// The attacker redeems a code it knows at the honest AS, as `client_id` (a client id it
    /// knows), with `redirect_uri` (where the code arrived, or its own), asking for
    /// `resource`.
    AttackerRedeem {
        /// The code.
        code: String,
        /// The `client_id` it sends.
        client_id: String,
        /// The `redirect_uri` it sends.
        redirect: String,
        /// The `resource` it asks for.
        resource: Target,
    },
    /// The attacker presents a refresh token it knows, asking for `resource` (or none).
    AttackerRefresh {
        /// The refresh token.
        token: String,
        /// The `resource` it asks for.
        resource: Option<Target>,
    },
    /// The attacker steals session `session`'s current refresh token (its storage or logs
    /// leak: RFC 9700 §4.14), once per session.
    Steal {
        /// The victim.
        session: u8,
    },
    /// The attacker's AS mints a token that claims the honest issuer, for the honest MCP
    /// server and alice with session 0's client, signed with the attacker's key (`kid` as the
    /// honest key's), and presents it at the honest MCP server.
    Forge,
    /// PKCE downgrade: the attacker lures alice's browser to an authorization request for
    /// session `session`'s client and redirect URI without `code_challenge`; the code lands at
    /// the session's callback, where the attacker reads it (A3).
    Downgrade {
        /// The victim.
        session: u8,
    },
    /// The attacker lures alice to authorize its own client (its redirect URI) for its own MCP
    /// server; she approves (the worst-case user): that token is the attacker's by her choice,
    /// which no server can prevent — but only for that server.
    Phish,
    /// Consent CSRF (AZ-29): the attacker has started an authorization for its own client (its
    /// redirect URI, the honest MCP server) in its own browser, logged in as `mallory` (in the
    /// initial state: its preparation does not depend on alice, and its place in the
    /// interleaving would only multiply states), and makes alice's browser post that consent
    /// form's `id` and `csrf`, with alice's session cookie, as an approval.
    ConsentCsrf,
    /// CIMD: the attacker, logged in as `mallory`, authorizes its own document client (its
    /// redirect URI) for the honest MCP server: the honest AS fetches the attacker's document.
    DocAuthorize,
    /// CIMD: the attacker lures alice's browser to an authorization URL with a client ID URL
    /// and redirect URI of its choice.
    DocLure {
        /// Which.
        lure: DocLure,
    },
    /// The attacker delivers a code to a session's callback (without that session's `state`).
    Inject {
        /// The victim.
        session: u8,
        /// The code.
        code: String,
    },
}

/// The model: configuration plus constant values derived from it.
#[derive(Clone, Debug)]
pub struct AuthModel {
    /// The configuration.
    pub cfg: Config,
    /// The malicious MCP server's genuine face (its 401 challenge and PRM).
    evil_rs: ResourceServer,
    /// The honest AS's accounts (login page first).
    honest_users: UserAgentPolicy,
    /// The attacker's AS: one implicit user, consent page only.
    evil_users: UserAgentPolicy,
    honest_as_origin: String,
    evil_as_origin: String,
    honest_rs_origin: String,
    evil_rs_origin: String,
}

/// The claims of a JWT (not verified: the audit reads what was issued).
pub fn claims_of(token: &str) -> Option<Claims> {
    memo::claims(token, parse_claims)
}

fn parse_claims(token: &str) -> Option<Claims> {
    let payload = token.split('.').nth(1)?;
    let claims: AccessClaims =
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).ok()?).ok()?;
    Some(Claims {
        iss: claims.iss,
        sub: claims.sub,
        aud: match claims.aud {
            Audience::One(a) => a,
            Audience::Many(v) => v.join(" "),
        },
        client_id: claims.client_id,
    })
}

impl Model for AuthModel {
    type State = World;
    type Action = Action;

    fn init_states(&self) -> Vec<World> {
        vec![self.initial()]
    }

    fn actions(&self, w: &World, actions: &mut Vec<Action>) {
        for (i, slot) in w.sessions.iter().enumerate() {
            let n = i as u8;
            let Some(s) = slot else {
                let targets: &[Target] = if n < self.cfg.lured_sessions {
                    &[Target::Honest, Target::Evil]
                } else {
                    &[Target::Honest]
                };
                for &target in targets {
                    let prms: &[Prm] = match target {
                        Target::Honest => &[Prm::Genuine],
                        Target::Evil => &[Prm::Genuine, Prm::EvilAs, Prm::Spoofed],
                    };
                    for &prm in prms {
                        actions.push(Action::Connect {
                            session: n,
                            target,
                            prm,
                        });
                    }
                }
                continue;
            };
            match s.action() {
                ClientAction::OpenBrowser(_) => {
                    if !s.browsed {
                        actions.push(Action::Browse { session: n });
                    }
                    for code in w.attacker.codes.keys() {
                        actions.push(Action::Inject {
                            session: n,
                            code: code.clone(),
                        });
                    }
                }
                ClientAction::Send(_) => actions.push(Action::Redeem { session: n }),
                ClientAction::Authorized(tokens) => {
                    // Its own server is called right after each token response; calling another
                    // one needs the client to attach the token (only under a mutation).
                    {
                        let server = s.target.other();
                        let sent = s.client.authorization_for(server.url()).is_some_and(|h| {
                            let token = h.strip_prefix("Bearer ").unwrap_or_default();
                            s.called.contains(&(server, token.to_owned()))
                        });
                        if !sent && s.client.authorization_for(server.url()).is_some() {
                            actions.push(Action::Call { session: n, server });
                        }
                    }
                    if s.refreshes < self.cfg.session_refreshes && tokens.refresh_token.is_some() {
                        actions.push(Action::Refresh { session: n });
                    }
                    if self.cfg.steal
                        && n < self.cfg.lured_sessions
                        && tokens.refresh_token.is_some()
                        && Self::sent(w, &format!("steal{n}")) == 0
                    {
                        actions.push(Action::Steal { session: n });
                    }
                }
                ClientAction::Failed(_) | ClientAction::Idle => {}
            }
            if n < self.cfg.lured_sessions && w.client_id_of(n).is_some() {
                let whose = Whose::Victim(n);
                if Self::sent(w, &format!("{whose:?}")) == 0 {
                    actions.push(Action::AttackerAuthorize { whose });
                }
                if Self::sent(w, &format!("lure{n}")) == 0 {
                    actions.push(Action::Lure { session: n });
                }
                if Self::sent(w, &format!("downgrade{n}")) == 0 {
                    actions.push(Action::Downgrade { session: n });
                }
            }
        }
        if w.ticks < self.cfg.ticks {
            actions.push(Action::Tick);
        }
        if Self::sent(w, &format!("{:?}", Whose::Own)) == 0 {
            actions.push(Action::AttackerAuthorize { whose: Whose::Own });
        }
        if self.cfg.phish && Self::sent(w, "phish") == 0 {
            actions.push(Action::Phish);
        }
        if w.client_id_of(0).is_some() && Self::sent(w, "forge") == 0 {
            actions.push(Action::Forge);
        }
        if self.cfg.cimd {
            if Self::sent(w, "doc-authorize") == 0 {
                actions.push(Action::DocAuthorize);
            }
            for lure in DocLure::ALL {
                if Self::sent(w, &format!("{lure:?}")) == 0 {
                    actions.push(Action::DocLure { lure });
                }
            }
        }
        // Consent CSRF needs a victim browser with a session (and the prepared form).
        if w.cookies.contains_key(ALICE)
            && w.attacker.consent_form.is_some()
            && Self::sent(w, "consent-csrf") == 0
        {
            actions.push(Action::ConsentCsrf);
        }
        // Token requests built from what the attacker knows: each code with every client id
        // it knows (the redirect URI is where the code arrived), for either server.
        for (code, seen) in &w.attacker.codes {
            let redirects: &[&str] = if seen.redirect == ATTACKER_REDIRECT {
                &[ATTACKER_REDIRECT]
            } else {
                &[seen.redirect.as_str(), ATTACKER_REDIRECT]
            };
            for client_id in &w.attacker.client_ids {
                for resource in [Target::Honest, Target::Evil] {
                    if Self::sent(w, &Self::redeem_label(code, client_id, resource))
                        >= self.cfg.attacker_redemptions
                    {
                        continue;
                    }
                    for redirect in redirects {
                        actions.push(Action::AttackerRedeem {
                            code: code.clone(),
                            client_id: client_id.clone(),
                            redirect: (*redirect).to_owned(),
                            resource,
                        });
                    }
                }
            }
        }
        if w.attacker.refreshes < self.cfg.attacker_refreshes {
            for token in w.attacker.refresh_tokens.keys() {
                for resource in [None, Some(Target::Honest), Some(Target::Evil)] {
                    actions.push(Action::AttackerRefresh {
                        token: token.clone(),
                        resource,
                    });
                }
            }
        }
    }

    fn next_state(&self, w: &World, action: Action) -> Option<World> {
        let mut next = w.clone();
        self.apply(&mut next, action);
        // Attempt counters alone do not make a transition: an attempt without effect is a no-op.
        let changed = next.honest_as != w.honest_as
            || next.evil_as != w.evil_as
            || next.sessions != w.sessions
            || next.cookies != w.cookies
            || next.audit != w.audit
            || next.now != w.now
            || next.entropy != w.entropy
            || next.attacker.codes != w.attacker.codes
            || next.attacker.verifiers != w.attacker.verifiers
            || next.attacker.access_tokens != w.attacker.access_tokens
            || next.attacker.refresh_tokens != w.attacker.refresh_tokens;
        changed.then_some(next)
    }

    fn properties(&self) -> Vec<Property<Self>> {
        properties::of(&self.cfg)
    }

    fn format_action(&self, action: &Action) -> String {
        report::format_action(action)
    }
}

/// Shared helper for properties: the redirect URIs registered for a client at the honest AS
/// (by registration, or by the client metadata document it has cached).
pub(crate) fn registered_redirects(w: &World) -> BTreeMap<String, Vec<String>> {
    w.honest_as
        .clients()
        .chain(
            w.honest_as
                .client_documents()
                .map(|(id, d)| (id, &d.client)),
        )
        .map(|(id, c)| {
            (
                id.0.clone(),
                c.redirect_uris
                    .iter()
                    .map(|r| r.as_str().to_owned())
                    .collect(),
            )
        })
        .collect()
}
