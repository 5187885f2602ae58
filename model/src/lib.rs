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
//! Templates are filled from the attacker's knowledge. Token requests take the client id and
//! redirect URI from the code's binding: any other choice is refused by checks no mutation turns
//! off (TOK-5, TOK-10), so it could only add no-op transitions. A transition that changes
//! nothing is not a transition.
//!
//! ## Liveness
//!
//! stateright's `eventually` is unsound on graphs with joins (bfs.rs FIXME: a path reaching an
//! already-visited state is not checked further), and this model's interleavings join
//! everywhere. Liveness is therefore stated as an invariant that implies it: the model is
//! acyclic (every transition grows a monotone component: entropy, time, the audit log, the
//! attacker's knowledge, bounded counters, or a client's lifecycle), so every path ends in a
//! terminal state, and `PROGRESS` says every started session is finished or has its next step
//! enabled — hence in every terminal state every session is finished.

#[cfg(mcp_auth_mutations)]
pub mod mutation;
pub mod properties;
pub mod replay;
pub mod report;
pub mod url;
pub mod world;

use std::collections::BTreeMap;
use std::sync::Arc;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use mcp_auth_proto::client::{Action as ClientAction, Client, ClientConfig};
use mcp_auth_proto::endpoint::{McpGuard, Verdict};
use mcp_auth_proto::error::Rejection;
use mcp_auth_proto::guard::{self, Sessions};
use mcp_auth_proto::http::{HttpRequest, HttpResponse, Method};
use mcp_auth_proto::jwt::Access;
use mcp_auth_proto::jwt::{AccessClaims, Audience, Ed25519Signer, KeySet, Signer};
use mcp_auth_proto::metadata::ProtectedResourceMetadata;
#[cfg(mcp_auth_mutations)]
use mcp_auth_proto::mutations::Mutations;
use mcp_auth_proto::pkce::CodeVerifier;
use mcp_auth_proto::resource::{ResourceServer, RsConfig};
use mcp_auth_proto::server::http::{UserAgentPolicy, handle};
use mcp_auth_proto::server::users::hash_password;
use mcp_auth_proto::server::{AsConfig, AuthorizationServer, CodeState, UserRecord, Users};
use mcp_auth_proto::types::ScopeSet;
use mcp_auth_proto::uri::{HttpPolicy, Issuer, ResourceUri};
use mcp_auth_proto::{Sequential, UnixTime};
use stateright::{Model, Property};

pub use world::{Audit, Claims, Event, Knowledge, Party, Session, Target, Via, World};

use url::{query_map, split_url};

use replay::{Endpoint, Observation, RedirectTo, Role};

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
    /// The attacker redeems a code it knows, asking for `resource`.
    AttackerRedeem {
        /// The code.
        code: String,
        /// The `resource` it asks for.
        resource: Target,
    },
    /// The attacker presents a refresh token it knows.
    AttackerRefresh {
        /// The refresh token.
        token: String,
    },
    /// Consent CSRF (AZ-29): the attacker has started an authorization for its own client (its
    /// redirect URI, the honest MCP server) in its own browser, logged in as `mallory` (in the
    /// initial state: its preparation does not depend on alice, and its place in the
    /// interleaving would only multiply states), and makes alice's browser post that consent
    /// form's `id` and `csrf`, with alice's session cookie, as an approval.
    ConsentCsrf,
    /// The attacker delivers a code to a session's callback (without that session's `state`).
    Inject {
        /// The victim.
        session: u8,
        /// The code.
        code: String,
    },
}

/// The environment of a build that has mutations: the core's defense switches exist only with
/// the cfg `mcp_auth_mutations` (not a cargo feature, so that no dependency can compile them
/// into a server), built in a target directory of its own so that the ordinary one is not
/// rebuilt. For example `RUSTFLAGS="--cfg mcp_auth_mutations" CARGO_TARGET_DIR=target/mutations
/// cargo run --release -p mcp-auth-model -- check --mutation all`.
pub const MUTATIONS_BUILD_ENV: &str =
    "RUSTFLAGS=\"--cfg mcp_auth_mutations\" CARGO_TARGET_DIR=target/mutations";

/// The size of the model.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Config {
    /// Name (for reports).
    pub name: &'static str,
    /// Honest client sessions.
    pub sessions: u8,
    /// Sessions (the first ones) that may be pointed at the malicious MCP server; the others
    /// connect to the honest one.
    pub lured_sessions: u8,
    /// Clock ticks.
    pub ticks: u8,
    /// Refreshes per honest session.
    pub session_refreshes: u8,
    /// Refresh attempts by the attacker, in total.
    pub attacker_refreshes: u8,
    /// Successful redemptions of one code the attacker tries.
    pub attacker_redemptions: u8,
    /// Defenses turned off (all on by default). Only in a build with the cfg
    /// `mcp_auth_mutations` ([`MUTATIONS_BUILD_ENV`]).
    #[cfg(mcp_auth_mutations)]
    pub mutations: Mutations,
}

impl Config {
    /// One honest session: every attack of the catalogue is reachable.
    pub fn small() -> Self {
        Self {
            name: "small",
            sessions: 1,
            lured_sessions: 1,
            ticks: 0,
            session_refreshes: 1,
            attacker_refreshes: 3,
            attacker_redemptions: 2,
            #[cfg(mcp_auth_mutations)]
            mutations: Mutations::default(),
        }
    }

    /// Two honest sessions (the second one connects to the honest server only, and is not a
    /// target of the attacker's lures: it checks that concurrent flows do not interfere).
    pub fn standard() -> Self {
        Self {
            name: "standard",
            sessions: 2,
            ..Self::small()
        }
    }

    /// One session and one clock tick (codes, consents and access tokens expire).
    pub fn timed() -> Self {
        Self {
            name: "timed",
            ticks: 1,
            ..Self::small()
        }
    }

    /// By name.
    pub fn named(name: &str) -> Option<Self> {
        match name {
            "small" => Some(Self::small()),
            "standard" => Some(Self::standard()),
            "timed" => Some(Self::timed()),
            _ => None,
        }
    }

    /// The same configuration with these defenses off.
    #[cfg(mcp_auth_mutations)]
    #[must_use]
    pub fn with_mutations(mut self, mutations: Mutations) -> Self {
        self.mutations = mutations;
        self
    }

    /// Build the model.
    pub fn into_model(self) -> AuthModel {
        AuthModel::new(self)
    }
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

fn origin(url: &str) -> String {
    split_url(url).map(|(o, _, _)| o).unwrap_or_default()
}

fn resource_uri(url: &str) -> ResourceUri {
    ResourceUri::parse(url, HttpPolicy::HttpsOnly).expect("valid resource")
}

fn scopes() -> ScopeSet {
    ScopeSet::from_tokens(["mcp:tools", "mcp:admin"])
}

impl Config {
    /// An authorization server of the model, with this configuration's defense switches.
    fn authorization_server(
        &self,
        issuer: &str,
        resources: &[&str],
        seed: u8,
    ) -> AuthorizationServer {
        let issuer = Issuer::parse(issuer, HttpPolicy::HttpsOnly).expect("valid issuer");
        let mut config = AsConfig::new(
            issuer,
            resources.iter().map(|r| (resource_uri(r), scopes())),
        );
        config.default_scopes = ScopeSet::from_tokens([SCOPE]);
        #[cfg(mcp_auth_mutations)]
        {
            config.mutations = self.mutations;
        }
        AuthorizationServer::new(
            config,
            Signer::new(Ed25519Signer::from_seed("k1", [seed; 32])),
        )
    }

    /// A resource server of the model trusting `trusted`, with this configuration's defense
    /// switches.
    fn resource_server(&self, resource: &str, trusted: &AuthorizationServer) -> ResourceServer {
        let config = RsConfig::new(resource_uri(resource), trusted.issuer().clone(), scopes());
        #[cfg(mcp_auth_mutations)]
        let config = {
            let mut config = config;
            config.validation.mutations = self.mutations;
            config
        };
        let mut rs = ResourceServer::new(config);
        rs.set_keys(UnixTime::default(), KeySet::from_jwks(&trusted.jwks()));
        rs
    }
}

/// The claims of a JWT (not verified: the audit reads what was issued).
pub fn claims_of(token: &str) -> Option<Claims> {
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

/// An account of the honest AS, hashed with the cheapest argon2id costs (m = 64 KiB, t = 1)
/// and a fixed salt: logins stay fast in the checker and in the replay.
pub fn user_record(username: &str, password: &str) -> UserRecord {
    let mut salt = [0_u8; 16];
    for (s, b) in salt.iter_mut().zip(username.bytes().cycle()) {
        *s = b;
    }
    UserRecord {
        username: username.to_owned(),
        display_name: username.to_owned(),
        password_hash: hash_password(password, &salt, 64, 1).expect("valid argon2 costs"),
    }
}

/// The honest AS's accounts: alice and mallory, with a login page (AZ-30).
pub fn honest_users() -> UserAgentPolicy {
    UserAgentPolicy::users(
        Users::new([
            user_record(ALICE, ALICE_PASSWORD),
            user_record(MALLORY, MALLORY_PASSWORD),
        ])
        .expect("valid accounts"),
    )
}

/// The password a browser's user types at the login page.
pub fn password_of(user: &str) -> &'static str {
    if user == MALLORY {
        MALLORY_PASSWORD
    } else {
        ALICE_PASSWORD
    }
}

/// What a consent page asks: (client id, resource, id, csrf).
pub fn consent_form(html: &str) -> Option<(String, String, String, String)> {
    let client = between(html, "<code data-client-id>", "</code>")?;
    let resource = between(html, "<code data-resource>", "</code>")?;
    let id = between(html, "name=\"id\" value=\"", "\"")?;
    let csrf = between(html, "name=\"csrf\" value=\"", "\"")?;
    Some((
        replay::unescape_html(client),
        replay::unescape_html(resource),
        replay::unescape_html(id),
        replay::unescape_html(csrf),
    ))
}

/// What a login page asks: (id, csrf) of its form, if the page is the login page.
pub fn login_form(html: &str) -> Option<(String, String)> {
    let form = &html[html.find("action=\"login\"")?..];
    let id = between(form, "name=\"id\" value=\"", "\"")?;
    let csrf = between(form, "name=\"csrf\" value=\"", "\"")?;
    Some((replay::unescape_html(id), replay::unescape_html(csrf)))
}

/// An MCP `tools/list` request to the honest MCP server's path, with this `Authorization`.
fn mcp_call(authorization: Option<&str>) -> HttpRequest {
    let path = split_url(HONEST_RS)
        .map(|(_, path, _)| path)
        .unwrap_or_default();
    let request = HttpRequest::new(Method::Post, path)
        .header("content-type", "application/json")
        .body(br#"{"jsonrpc":"2.0","id":1,"method":"tools/list"}"#.to_vec());
    match authorization {
        Some(value) => request.header("authorization", value),
        None => request,
    }
}

fn form_request(url: &str, pairs: &[(&str, &str)]) -> HttpRequest {
    HttpRequest::new(Method::Post, url)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(mcp_auth_proto::form::encode(pairs.iter().copied()))
}

fn between<'a>(text: &'a str, start: &str, end: &str) -> Option<&'a str> {
    let from = text.find(start)? + start.len();
    let len = text[from..].find(end)?;
    Some(&text[from..from + len])
}

/// Entries of a JSON object body.
fn json_field(body: &[u8], field: &str) -> Option<String> {
    let value: serde_json::Value = serde_json::from_slice(body).ok()?;
    value.get(field)?.as_str().map(str::to_owned)
}

impl AuthModel {
    /// The model for a configuration.
    pub fn new(cfg: Config) -> Self {
        let honest = cfg.authorization_server(HONEST_ISSUER, &[HONEST_RS, EVIL_RS], 7);
        Self {
            evil_rs: cfg.resource_server(EVIL_RS, &honest),
            honest_users: honest_users(),
            evil_users: UserAgentPolicy::single(ALICE),
            honest_as_origin: origin(HONEST_ISSUER),
            evil_as_origin: origin(EVIL_ISSUER),
            honest_rs_origin: origin(HONEST_RS),
            evil_rs_origin: origin(EVIL_RS),
            cfg,
        }
    }

    /// The initial world: the attacker has registered its two clients at the honest AS.
    pub fn initial(&self) -> World {
        let honest_as = self
            .cfg
            .authorization_server(HONEST_ISSUER, &[HONEST_RS, EVIL_RS], 7);
        let rs = self.cfg.resource_server(HONEST_RS, &honest_as);
        let mut w = World {
            now: UnixTime::from_secs(1_000),
            ticks: 0,
            entropy: (0..=u64::from(self.cfg.sessions))
                .map(|i| Sequential((i + 1) << 40))
                .collect(),
            evil_as: Arc::new(self.cfg.authorization_server(EVIL_ISSUER, &[EVIL_RS], 9)),
            honest_as: Arc::new(honest_as),
            rs: Arc::new(McpGuard::new(rs, Sessions::new(&mut Sequential(11)))),
            sessions: vec![None; usize::from(self.cfg.sessions)],
            cookies: BTreeMap::new(),
            attacker: Arc::default(),
            audit: Arc::default(),
        };
        for redirect in [ATTACKER_REDIRECT.to_owned(), redirect_uri(0)] {
            let body = serde_json::json!({
                "redirect_uris": [redirect],
                "token_endpoint_auth_method": "none",
                "grant_types": ["authorization_code", "refresh_token"],
                "response_types": ["code"],
                "client_name": "Totally Legit MCP Client",
            });
            let request = HttpRequest::new(Method::Post, format!("{HONEST_ISSUER}/register"))
                .header("content-type", "application/json")
                .body(serde_json::to_vec(&body).expect("json"));
            let response = self.route(&mut w, Party::Attacker, &request, Prm::Genuine);
            let id = json_field(&response.body, "client_id").expect("registered");
            w.knows().clients.push(id);
        }
        self.prepare_consent_csrf(&mut w);
        w
    }

    fn client_config(&self, n: u8, target: Target) -> ClientConfig {
        let config = ClientConfig::new(target.url(), redirect_uri(n))
            .with_scope(Some(ScopeSet::from_tokens([SCOPE])));
        #[cfg(mcp_auth_mutations)]
        let config = {
            let mut config = config;
            config.mutations = self.cfg.mutations;
            config
        };
        config
    }

    /// Which party a URL's origin belongs to.
    pub fn endpoint_of(&self, url: &str) -> Endpoint {
        let o = origin(url);
        if o == self.honest_as_origin {
            Endpoint::HonestAs
        } else if o == self.evil_as_origin {
            Endpoint::EvilAs
        } else if o == self.honest_rs_origin {
            Endpoint::HonestRs
        } else if o == self.evil_rs_origin {
            Endpoint::EvilRs
        } else {
            Endpoint::Unknown
        }
    }

    /// Where a redirect target (a URL without query) belongs.
    pub fn redirect_to(&self, target: &str) -> RedirectTo {
        if target == ATTACKER_REDIRECT {
            return RedirectTo::Attacker;
        }
        (0..self.cfg.sessions)
            .find(|&n| target == redirect_uri(n))
            .map_or(RedirectTo::Other, RedirectTo::Session)
    }

    fn observation(
        &self,
        from: Role,
        to: Endpoint,
        request: &HttpRequest,
        response: &HttpResponse,
    ) -> Observation {
        Observation {
            from,
            to,
            request: replay::request_line(request.method.as_str(), &request.url),
            answer: replay::answer_of(response, |t| self.redirect_to(t)),
            minted: replay::minted_of(response),
        }
    }

    /// Deliver an HTTP request addressed by absolute URL, sent by `from` (recorded for
    /// [`replay::observe`]).
    fn route(&self, w: &mut World, from: Party, request: &HttpRequest, prm: Prm) -> HttpResponse {
        let response = self.route_inner(w, from, request, prm);
        replay::record(|| {
            self.observation(
                Role::of(from),
                self.endpoint_of(&request.url),
                request,
                &response,
            )
        });
        response
    }

    fn route_inner(
        &self,
        w: &mut World,
        from: Party,
        request: &HttpRequest,
        prm: Prm,
    ) -> HttpResponse {
        let Some((origin, path, query)) = split_url(&request.url) else {
            return HttpResponse::new(400);
        };
        let local = HttpRequest {
            url: path.clone(),
            query,
            ..request.clone()
        };
        if origin == self.honest_as_origin {
            let now = w.now;
            let mut entropy = w.stream(from).clone();
            let response = handle(
                Arc::make_mut(&mut w.honest_as),
                now,
                &mut entropy,
                &self.honest_users,
                &local,
            );
            *w.stream(from) = entropy;
            Self::audit_as(w, from, &local, &response);
            response
        } else if origin == self.evil_as_origin {
            // The attacker's AS learns every code and verifier sent to it.
            let form = query_map(std::str::from_utf8(&local.body).unwrap_or(""));
            if let Some(code) = form.get("code") {
                w.knows().codes.insert(code.clone());
                if let Some(v) = form.get("code_verifier") {
                    w.knows().verifiers.insert(code.clone(), v.clone());
                }
            }
            let now = w.now;
            let mut entropy = w.stream(from).clone();
            let response = handle(
                Arc::make_mut(&mut w.evil_as),
                now,
                &mut entropy,
                &self.evil_users,
                &local,
            );
            *w.stream(from) = entropy;
            response
        } else if origin == self.honest_rs_origin {
            // Metadata (and every other request) through the MCP server's pipeline.
            match Self::honest_mcp(w, &local) {
                Ok(_) => HttpResponse::new(200),
                Err(response) => response,
            }
        } else if origin == self.evil_rs_origin {
            if local.method == Method::Get && self.evil_rs.metadata_paths().contains(&path) {
                let mut doc: ProtectedResourceMetadata = self.evil_rs.metadata();
                match prm {
                    Prm::Genuine => {}
                    Prm::EvilAs => doc.authorization_servers = vec![EVIL_ISSUER.into()],
                    Prm::Spoofed => doc.resource = HONEST_RS.into(),
                }
                return HttpResponse::json(200, &doc);
            }
            HttpResponse::new(404)
        } else {
            HttpResponse::new(404)
        }
    }

    /// Record what the honest AS did: registrations (owners) and token responses.
    fn audit_as(w: &mut World, from: Party, request: &HttpRequest, response: &HttpResponse) {
        match request.url.as_str() {
            "/register" if response.status == 201 => {
                if let Some(id) = json_field(&response.body, "client_id") {
                    w.audit_mut().owners.insert(id, from);
                }
            }
            "/token" => {
                let form = query_map(std::str::from_utf8(&request.body).unwrap_or(""));
                let via = match (
                    form.get("grant_type").map(String::as_str),
                    form.get("code"),
                    form.get("refresh_token"),
                ) {
                    (Some("authorization_code"), Some(code), _) => Via::Code(code.clone()),
                    (Some("refresh_token"), _, Some(rt)) => Via::Refresh(rt.clone()),
                    _ => return,
                };
                if let Via::Refresh(rt) = &via
                    && w.audit.refreshed.contains(rt)
                {
                    let family = w.audit.families.get(rt).cloned().unwrap_or_default();
                    w.audit_mut().record(Event::RefreshReplayed { family });
                }
                if response.status != 200 {
                    return;
                }
                let access = json_field(&response.body, "access_token").unwrap_or_default();
                let refresh = json_field(&response.body, "refresh_token");
                let Some(claims) = claims_of(&access) else {
                    return;
                };
                let family = match &via {
                    Via::Code(code) => code.clone(),
                    Via::Refresh(rt) => {
                        w.audit_mut().refreshed.insert(rt.clone());
                        w.audit.families.get(rt).cloned().unwrap_or_default()
                    }
                };
                let after_replay = w.audit.events.contains(&Event::RefreshReplayed {
                    family: family.clone(),
                });
                if let Some(new) = &refresh {
                    w.audit_mut().families.insert(new.clone(), family);
                }
                w.audit_mut().record(Event::Issued {
                    to: from,
                    via,
                    claims,
                    refresh,
                    after_replay,
                });
            }
            _ => {}
        }
    }

    /// A request of `user`'s browser to the honest AS: with the browser's session cookie, if
    /// it has one, keeping the one the AS sets (recorded as that browser's).
    fn browser_request(
        &self,
        w: &mut World,
        entropy: &mut Sequential,
        user: &str,
        request: HttpRequest,
    ) -> HttpResponse {
        let request = match w.cookies.get(user) {
            Some(value) => request.header("cookie", format!("{SESSION_COOKIE}={value}")),
            None => request,
        };
        let response = handle(
            Arc::make_mut(&mut w.honest_as),
            w.now,
            entropy,
            &self.honest_users,
            &request,
        );
        if let Some(value) = response
            .header_value("set-cookie")
            .and_then(|c| c.split(';').next())
            .and_then(|pair| pair.strip_prefix(SESSION_COOKIE))
            .and_then(|rest| rest.strip_prefix('='))
        {
            w.cookies.insert(user.to_owned(), value.to_owned());
        }
        replay::record(|| {
            self.observation(
                Role::Browser(user.to_owned()),
                Endpoint::HonestAs,
                &request,
                &response,
            )
        });
        response
    }

    /// `user`'s browser opens an authorization URL at the honest AS, and logs in as `user` if
    /// the login page is shown (then follows the AS's redirect back to the pending
    /// authorization's page). Returns the page it ends on (the consent page, unless refused).
    // spec: AZ-29, AZ-30
    fn open_authorization(
        &self,
        w: &mut World,
        entropy: &mut Sequential,
        user: &str,
        url: &str,
    ) -> Option<HttpResponse> {
        let (_, path, query) = split_url(url)?;
        let get = HttpRequest {
            query,
            ..HttpRequest::new(Method::Get, path)
        };
        let page = self.browser_request(w, entropy, user, get);
        let login = (page.status == 200)
            .then(|| std::str::from_utf8(&page.body).ok().and_then(login_form))
            .flatten();
        let Some((id, csrf)) = login else {
            return Some(page);
        };
        let post = form_request(
            "/login",
            &[
                ("id", &id),
                ("csrf", &csrf),
                ("username", user),
                ("password", password_of(user)),
            ],
        );
        let answer = self.browser_request(w, entropy, user, post);
        let location = answer.header_value("location")?;
        let (_, query) = location.split_once('?')?;
        let get = HttpRequest {
            query: Some(query.to_owned()),
            ..HttpRequest::new(Method::Get, "/consent")
        };
        Some(self.browser_request(w, entropy, user, get))
    }

    /// The redirect an answer of the honest AS sends the browser to, recording a code in it.
    fn redirect_of(w: &mut World, response: &HttpResponse) -> Option<String> {
        let location = response.header_value("location")?.to_owned();
        let (target, query) = location.split_once('?').unwrap_or((&location, ""));
        if let Some(code) = query_map(query).get("code")
            && let Some(client_id) = Self::binding(w, code).map(|b| b.0)
        {
            w.audit_mut().record(Event::CodeRedirect {
                client_id,
                target: target.to_owned(),
            });
        }
        Some(location)
    }

    /// `user`'s browser opens an authorization URL at the honest AS (logging in if asked) and
    /// approves the consent page it is shown. Returns the redirect location, if any.
    fn user_agent(&self, w: &mut World, stream: Party, user: &str, url: &str) -> Option<String> {
        let mut entropy = w.stream(stream).clone();
        let location = self.user_agent_with(w, &mut entropy, user, url);
        *w.stream(stream) = entropy;
        location
    }

    fn user_agent_with(
        &self,
        w: &mut World,
        entropy: &mut Sequential,
        user: &str,
        url: &str,
    ) -> Option<String> {
        let page = self.open_authorization(w, entropy, user, url)?;
        let response = if page.status == 200 {
            let html = std::str::from_utf8(&page.body).ok()?;
            let (client, resource, id, csrf) = consent_form(html)?;
            w.audit_mut()
                .consents
                .insert((user.to_owned(), client, resource));
            let post = form_request(
                "/consent",
                &[("id", &id), ("csrf", &csrf), ("decision", "approve")],
            );
            self.browser_request(w, entropy, user, post)
        } else {
            page
        };
        Self::redirect_of(w, &response)
    }

    /// The attacker prepares a consent CSRF: mallory's browser opens an authorization of the
    /// attacker's own client (its redirect URI) for the honest MCP server, logs in, and stops
    /// at the consent page, whose form's `id` and `csrf` the attacker keeps.
    // spec: AZ-29
    fn prepare_consent_csrf(&self, w: &mut World) {
        let mut entropy = w.stream(Party::Attacker).clone();
        let url =
            Self::attacker_authorize_url(&w.attacker.clients[0], ATTACKER_REDIRECT, HONEST_RS);
        let form = self
            .open_authorization(w, &mut entropy, MALLORY, &url)
            .filter(|page| page.status == 200)
            .and_then(|page| consent_form(std::str::from_utf8(&page.body).ok()?));
        *w.stream(Party::Attacker) = entropy;
        w.knows().consent_form = form.map(|(_, _, id, csrf)| (id, csrf));
    }

    /// Consent CSRF: alice's browser posts the consent form mallory was shown (approve), with
    /// alice's session cookie. Where the redirect lands, the attacker reads the code (its own
    /// redirect URI).
    // spec: AZ-29
    fn consent_csrf(&self, w: &mut World) {
        let Some((id, csrf)) = w.attacker.consent_form.clone() else {
            return;
        };
        let mut entropy = w.stream(Party::Attacker).clone();
        let post = form_request(
            "/consent",
            &[("id", &id), ("csrf", &csrf), ("decision", "approve")],
        );
        let answer = self.browser_request(w, &mut entropy, ALICE, post);
        *w.stream(Party::Attacker) = entropy;
        if let Some(location) = Self::redirect_of(w, &answer) {
            Self::land(w, &location, Party::Attacker);
        }
    }

    /// (client id, redirect URI, resource) a code of the honest AS is bound to.
    fn binding(w: &World, code: &str) -> Option<(String, String, String)> {
        w.honest_as.code_state(code).map(|s| {
            let b = match s {
                CodeState::Issued(b) | CodeState::Redeemed { binding: b, .. } => b,
            };
            (
                b.client_id.0.clone(),
                b.redirect_uri.clone(),
                b.resource.as_str().to_owned(),
            )
        })
    }

    /// Where a redirect lands: an honest session's callback (read by the attacker too: A3),
    /// the attacker's redirect URI, or (for the attacker's own browser) the attacker.
    fn land(w: &mut World, location: &str, browser: Party) {
        let role = match browser {
            Party::Session(_) => Role::Browser(ALICE.to_owned()),
            Party::Attacker => Role::Attacker,
        };
        let (target, query) = location.split_once('?').unwrap_or((location, ""));
        if let Some(code) = query_map(query).get("code") {
            w.knows().codes.insert(code.clone());
        }
        if browser == Party::Attacker || target == ATTACKER_REDIRECT {
            return;
        }
        for n in 0..w.sessions.len() {
            if target == redirect_uri(n as u8)
                && let Some(session) = w.session_mut(n as u8)
            {
                let result = session.client.handle_redirect(query);
                replay::record(|| Observation {
                    from: role.clone(),
                    to: Endpoint::Client(n as u8),
                    request: "GET /callback".into(),
                    answer: replay::callback_answer(&result),
                    minted: replay::Minted::default(),
                });
            }
        }
    }

    /// Run a session's client through every `Send` (discovery, registration) until it needs the
    /// browser or is done.
    fn run_client(&self, w: &mut World, n: u8, prm: Prm) {
        for _ in 0..16 {
            let Some(session) = w.session(n) else { return };
            let asked = session.target.url();
            let ClientAction::Send(request) = session.action() else {
                return;
            };
            let response = self.route(w, Party::Session(n), &request, prm);
            let now = w.now;
            let mut entropy = w.stream(Party::Session(n)).clone();
            let Some(session) = w.session_mut(n) else {
                return;
            };
            session.client.handle_response(now, &mut entropy, &response);
            let next = session.action();
            *w.stream(Party::Session(n)) = entropy;
            if request
                .url
                .contains("/.well-known/oauth-protected-resource")
                && response.status == 200
                && let ClientAction::Send(next) = next
            {
                let doc: ProtectedResourceMetadata =
                    serde_json::from_slice(&response.body).unwrap_or_default();
                w.audit_mut().record(Event::PrmAccepted {
                    session: n,
                    asked: asked.to_owned(),
                    resource: doc.resource,
                    servers: doc.authorization_servers,
                    next: next.url,
                });
            }
        }
    }

    fn sent(w: &World, key: &str) -> u8 {
        w.attacker.sent.get(key).copied().unwrap_or(0)
    }

    fn bump(w: &mut World, key: String) {
        *w.knows().sent.entry(key).or_insert(0) += 1;
    }

    /// The attacker's token request at the honest AS; learns what comes back.
    /// A request to the honest MCP server, through [`McpGuard`]'s whole pipeline (origin,
    /// token, body, protocol version, tool scopes, session owner), as the tower layer runs it:
    /// the validated token, or the server's answer. Runs on a copy of the guard, so that its
    /// verified-token cache does not become part of the state (see [`World::rs`]).
    fn honest_mcp(w: &World, request: &HttpRequest) -> Result<Access, HttpResponse> {
        let mut guard = (*w.rs).clone();
        match guard.handle_request(w.now, request) {
            Verdict::Respond(response) | Verdict::FetchKeys(response) => Err(response),
            Verdict::ReadBody(admitted) => guard
                .handle_body(admitted, &request.body)
                .map(|forward| forward.access),
            // Not configured in the model.
            Verdict::Introspect(_) => Err(HttpResponse::new(503)),
        }
    }

    /// The attacker learns an access token and presents it at the honest MCP server at once
    /// (later it could only have expired).
    fn attacker_learns_token(w: &mut World, token: String) {
        let header = format!("Bearer {token}");
        let result = Self::honest_mcp(w, &mcp_call(Some(&header)));
        replay::record(|| Self::mcp_observation(Role::Attacker, Target::Honest, &result));
        if result.is_ok()
            && let Some(claims) = claims_of(&token)
        {
            w.audit_mut().record(Event::Served {
                by: Party::Attacker,
                claims,
            });
        }
        w.knows().access_tokens.insert(token);
    }

    /// An MCP request (with or without a token) and the server's answer.
    fn mcp_observation<T>(
        from: Role,
        server: Target,
        result: &Result<T, HttpResponse>,
    ) -> Observation {
        Observation {
            from,
            to: match server {
                Target::Honest => Endpoint::HonestRs,
                Target::Evil => Endpoint::EvilRs,
            },
            request: replay::request_line("POST", server.url()),
            answer: replay::authentication_answer(result),
            minted: replay::Minted::default(),
        }
    }

    /// Session `n` calls `server` with whatever its client attaches.
    fn call(w: &mut World, n: u8, server: Target) {
        let Some(s) = w.session(n) else { return };
        let Some(header) = s.client.authorization_for(server.url()) else {
            return;
        };
        let token = header
            .strip_prefix("Bearer ")
            .unwrap_or_default()
            .to_owned();
        if let Some(s) = w.session_mut(n) {
            s.called.insert((server, token.clone()));
        }
        if let Some(claims) = claims_of(&token) {
            w.audit_mut().record(Event::Presented {
                session: n,
                server,
                claims,
            });
        }
        match server {
            Target::Honest => {
                let result = Self::honest_mcp(w, &mcp_call(Some(&header)));
                replay::record(|| Self::mcp_observation(Role::Session(n), server, &result));
                if result.is_ok()
                    && let Some(claims) = claims_of(&token)
                {
                    w.audit_mut().record(Event::Served {
                        by: Party::Session(n),
                        claims,
                    });
                }
            }
            Target::Evil => {
                // The malicious server takes whatever it is sent.
                replay::record(|| {
                    Self::mcp_observation(Role::Session(n), server, &Ok::<(), _>(()))
                });
                Self::attacker_learns_token(w, token);
            }
        }
    }

    /// Deliver session `n`'s pending request to the AS; once authorized, it calls its server.
    fn exchange(&self, w: &mut World, n: u8, request: &HttpRequest) {
        let response = self.route(w, Party::Session(n), request, Prm::Genuine);
        let now = w.now;
        let mut entropy = w.stream(Party::Session(n)).clone();
        let mut target = None;
        if let Some(s) = w.session_mut(n) {
            s.client.handle_response(now, &mut entropy, &response);
            if matches!(s.action(), ClientAction::Authorized(_)) {
                target = Some(s.target);
            }
        }
        *w.stream(Party::Session(n)) = entropy;
        if let Some(target) = target {
            Self::call(w, n, target);
        }
    }

    fn attacker_token_request(&self, w: &mut World, pairs: &[(&str, &str)]) -> bool {
        let request = form_request(&format!("{HONEST_ISSUER}/token"), pairs);
        let client_id = pairs
            .iter()
            .find(|(k, _)| *k == "client_id")
            .map(|(_, v)| (*v).to_owned())
            .unwrap_or_default();
        let response = self.route(w, Party::Attacker, &request, Prm::Genuine);
        if response.status != 200 {
            return false;
        }
        if let Some(at) = json_field(&response.body, "access_token") {
            Self::attacker_learns_token(w, at);
        }
        if let Some(rt) = json_field(&response.body, "refresh_token") {
            w.knows().refresh_tokens.insert(rt, client_id);
        }
        true
    }

    fn attacker_authorize_url(client_id: &str, redirect: &str, resource: &str) -> String {
        let query = Self::attacker_authorize_query(client_id, redirect, resource);
        format!("{HONEST_ISSUER}/authorize?{query}")
    }

    /// The query of the attacker's authorization request (its own PKCE verifier and state);
    /// the replay on the real servers sends the same one.
    pub fn attacker_authorize_query(client_id: &str, redirect: &str, resource: &str) -> String {
        let challenge = CodeVerifier::parse(ATTACKER_VERIFIER)
            .expect("valid verifier")
            .challenge();
        mcp_auth_proto::form::encode([
            ("response_type", "code"),
            ("client_id", client_id),
            ("redirect_uri", redirect),
            ("state", "attacker-state"),
            ("code_challenge", challenge.as_str()),
            ("code_challenge_method", "S256"),
            ("resource", resource),
            ("scope", SCOPE),
        ])
    }

    /// The attacker's entropy for one of its actions: a stream of its own, seeded from the
    /// action and how often it was used, so that independent attacker actions commute (the
    /// attacker's stream is not part of the state between actions).
    fn attacker_seed(w: &World, action: &Action) -> Sequential {
        let uses = match action {
            Action::AttackerRedeem { code, resource } => {
                Self::sent(w, &format!("redeem {code} {resource:?}"))
            }
            Action::AttackerRefresh { .. } => w.attacker.refreshes,
            _ => 0,
        };
        let label = format!("{action:?}/{uses}");
        // FNV-1a, low 16 bits left for the counter.
        let hash = label.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
            (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
        });
        Sequential(hash & !0xFFFF)
    }

    fn apply(&self, w: &mut World, action: Action) {
        let attacker_action = !matches!(
            action,
            Action::Connect { .. }
                | Action::Browse { .. }
                | Action::Redeem { .. }
                | Action::Call { .. }
                | Action::Refresh { .. }
                | Action::Tick
        );
        let rest = w.entropy[0].clone();
        if attacker_action {
            w.entropy[0] = Self::attacker_seed(w, &action);
        }
        self.apply_action(w, action);
        w.entropy[0] = rest;
    }

    fn apply_action(&self, w: &mut World, action: Action) {
        match action {
            Action::Connect {
                session: n,
                target,
                prm,
            } => {
                let client = Client::new(self.client_config(n, target));
                w.sessions[usize::from(n)] = Some(Arc::new(Session {
                    target,
                    client,
                    browsed: false,
                    refreshes: 0,
                    called: std::collections::BTreeSet::new(),
                }));
                let refusal = match target {
                    Target::Honest => {
                        Self::honest_mcp(w, &mcp_call(None)).expect_err("no token, no access")
                    }
                    Target::Evil => guard::challenge_response(
                        &self.evil_rs.challenge(Rejection::NoCredentials, None),
                    ),
                };
                replay::record(|| {
                    Self::mcp_observation(Role::Session(n), target, &Err::<(), _>(refusal.clone()))
                });
                let www_authenticate = refusal.header_value("www-authenticate").unwrap_or_default();
                if let Some(s) = w.session_mut(n) {
                    s.client.handle_unauthorized([www_authenticate]);
                }
                self.run_client(w, n, prm);
            }
            Action::Browse { session: n } => {
                let Some(s) = w.session(n) else { return };
                let ClientAction::OpenBrowser(url) = s.action() else {
                    return;
                };
                if let Some(s) = w.session_mut(n) {
                    s.browsed = true;
                }
                let url = if url.starts_with(EVIL_ISSUER) {
                    // The attacker's AS sends the user on to the honest AS, with its own client
                    // (registered with the victims' redirect URI) and the victim's state and
                    // challenge.
                    let q = query_map(url.split_once('?').map_or("", |(_, q)| q));
                    let get = |k: &str| q.get(k).cloned().unwrap_or_default();
                    let query = mcp_auth_proto::form::encode([
                        ("response_type", "code"),
                        ("client_id", w.attacker.clients[1].as_str()),
                        ("redirect_uri", get("redirect_uri").as_str()),
                        ("state", get("state").as_str()),
                        ("code_challenge", get("code_challenge").as_str()),
                        ("code_challenge_method", "S256"),
                        ("resource", HONEST_RS),
                        ("scope", SCOPE),
                    ]);
                    w.audit_mut().record(Event::Forwarded { session: n });
                    format!("{HONEST_ISSUER}/authorize?{query}")
                } else {
                    url
                };
                if let Some(location) = self.user_agent(w, Party::Session(n), ALICE, &url) {
                    Self::land(w, &location, Party::Session(n));
                }
            }
            Action::Redeem { session: n } => {
                let Some(s) = w.session(n) else { return };
                let ClientAction::Send(request) = s.action() else {
                    return;
                };
                let form = query_map(std::str::from_utf8(&request.body).unwrap_or(""));
                if let Some(code) = form.get("code") {
                    let minter = if w.honest_as.code_state(code).is_some() {
                        Some(format!("{HONEST_ISSUER}/token"))
                    } else if w.evil_as.code_state(code).is_some() {
                        Some(format!("{EVIL_ISSUER}/token"))
                    } else {
                        None
                    };
                    w.audit_mut().record(Event::CodeSent {
                        session: n,
                        endpoint: request.url.clone(),
                        minter_endpoint: minter,
                    });
                }
                self.exchange(w, n, &request);
            }
            Action::Call { session: n, server } => Self::call(w, n, server),
            Action::Refresh { session: n } => {
                if let Some(s) = w.session_mut(n) {
                    s.refreshes += 1;
                    s.client.start_refresh();
                }
                let Some(s) = w.session(n) else { return };
                let ClientAction::Send(request) = s.action() else {
                    return;
                };
                self.exchange(w, n, &request);
            }
            Action::Tick => {
                w.ticks += 1;
                w.now = w.now.plus(TICK_SECS);
            }
            Action::AttackerAuthorize { whose } => {
                Self::bump(w, format!("{whose:?}"));
                let (client_id, redirect, resource) = match whose {
                    Whose::Own => (
                        w.attacker.clients[0].clone(),
                        ATTACKER_REDIRECT.to_owned(),
                        EVIL_RS,
                    ),
                    Whose::Victim(n) => {
                        let (Some(id), Some(s)) = (w.client_id_of(n), w.session(n)) else {
                            return;
                        };
                        (id.to_owned(), redirect_uri(n), s.target.url())
                    }
                };
                let url = Self::attacker_authorize_url(&client_id, &redirect, resource);
                if let Some(location) = self.user_agent(w, Party::Attacker, MALLORY, &url) {
                    Self::land(w, &location, Party::Attacker);
                }
            }
            Action::Lure { session: n } => {
                Self::bump(w, format!("lure{n}"));
                let (Some(id), Some(s)) = (w.client_id_of(n), w.session(n)) else {
                    return;
                };
                let url = Self::attacker_authorize_url(id, ATTACKER_REDIRECT, s.target.url());
                if let Some(location) = self.user_agent(w, Party::Attacker, ALICE, &url) {
                    Self::land(w, &location, Party::Session(n));
                }
            }
            Action::AttackerRedeem { code, resource } => {
                let Some((client_id, redirect, _)) = Self::binding(w, &code) else {
                    return;
                };
                let verifier = w
                    .attacker
                    .verifiers
                    .get(&code)
                    .cloned()
                    .unwrap_or_else(|| ATTACKER_VERIFIER.to_owned());
                let ok = self.attacker_token_request(
                    w,
                    &[
                        ("grant_type", "authorization_code"),
                        ("code", &code),
                        ("redirect_uri", &redirect),
                        ("code_verifier", &verifier),
                        ("client_id", &client_id),
                        ("resource", resource.url()),
                    ],
                );
                if ok {
                    Self::bump(w, format!("redeem {code} {resource:?}"));
                }
            }
            Action::AttackerRefresh { token } => {
                let client_id = w
                    .attacker
                    .refresh_tokens
                    .get(&token)
                    .cloned()
                    .unwrap_or_default();
                w.knows().refreshes += 1;
                self.attacker_token_request(
                    w,
                    &[
                        ("grant_type", "refresh_token"),
                        ("refresh_token", &token),
                        ("client_id", &client_id),
                    ],
                );
            }
            Action::ConsentCsrf => {
                Self::bump(w, "consent-csrf".into());
                self.consent_csrf(w);
            }
            Action::Inject { session: n, code } => {
                let query =
                    mcp_auth_proto::form::encode([("code", code.as_str()), ("iss", HONEST_ISSUER)]);
                if let Some(s) = w.session_mut(n) {
                    let result = s.client.handle_redirect(&query);
                    replay::record(|| Observation {
                        from: Role::Attacker,
                        to: Endpoint::Client(n),
                        request: "GET /callback".into(),
                        answer: replay::callback_answer(&result),
                        minted: replay::Minted::default(),
                    });
                }
            }
        }
    }
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
                    for code in &w.attacker.codes {
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
            }
        }
        if w.ticks < self.cfg.ticks {
            actions.push(Action::Tick);
        }
        if Self::sent(w, &format!("{:?}", Whose::Own)) == 0 {
            actions.push(Action::AttackerAuthorize { whose: Whose::Own });
        }
        // Consent CSRF needs a victim browser with a session (and the prepared form).
        if w.cookies.contains_key(ALICE)
            && w.attacker.consent_form.is_some()
            && Self::sent(w, "consent-csrf") == 0
        {
            actions.push(Action::ConsentCsrf);
        }
        for code in &w.attacker.codes {
            let Some((_, _, bound)) = Self::binding(w, code) else {
                continue;
            };
            for resource in [Target::Honest, Target::Evil] {
                let limit = if resource.url() == bound {
                    self.cfg.attacker_redemptions
                } else {
                    1
                };
                if Self::sent(w, &format!("redeem {code} {resource:?}")) < limit {
                    actions.push(Action::AttackerRedeem {
                        code: code.clone(),
                        resource,
                    });
                }
            }
        }
        if w.attacker.refreshes < self.cfg.attacker_refreshes {
            for token in w.attacker.refresh_tokens.keys() {
                actions.push(Action::AttackerRefresh {
                    token: token.clone(),
                });
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
        properties::all()
    }

    fn format_action(&self, action: &Action) -> String {
        report::format_action(action)
    }
}

/// Shared helper for properties: the redirect URIs registered for a client at the honest AS.
pub(crate) fn registered_redirects(w: &World) -> BTreeMap<String, Vec<String>> {
    w.honest_as
        .clients()
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
