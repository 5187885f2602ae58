//! Replay of the model's paths on the real servers (issue 4, part 6).
//!
//! `mcp-auth-model` gives paths as data: the example of each `sometimes` property (the honest
//! flow, the honest refresh, the malicious MCP server getting a token, the mix-up forwarding)
//! and, for each mutation of the table, the counterexample the checker finds with that defense
//! off. Each path is replayed here, action by action, as real HTTP against the hyper drivers
//! on 127.0.0.1 ephemeral ports: the honest authorization server ([`as_server`]), the honest
//! MCP server (rmcp behind [`AuthLayer`], [`mcp::run`]), the attacker's authorization server
//! (the same driver, run by the attacker, recording the codes and verifiers it is sent) and the
//! attacker's MCP server (a small hyper service here: 401 with a Bearer challenge, Protected
//! Resource Metadata answered as the path says, and every token it is sent handed to the
//! attacker). Honest clients are the core's [`Client`] driven over the driver's [`Http`].
//!
//! The real servers run with every defense on. The same path is run in the model with every
//! defense on ([`replay::observe`]), which records the core's answer at every step; the replay
//! records the real answers in the same form, and the two must be equal at every step: the
//! parties, the request, the status, the OAuth `error` and `error_description` (which name the
//! core's `Rejection` one to one), the redirect target, which values were minted, and where
//! each honest client stands afterwards. Values differ byte-wise between the model and the
//! real run (keys, time, entropy, URLs), so they are mapped by role: the code the model's
//! attacker redeems is the code the real attacker captured at the same point of the path.
//!
//! Mutations: the core's defense switches exist only in a build with the cfg
//! `mcp_auth_mutations` (`RUSTFLAGS="--cfg mcp_auth_mutations"`), never through a cargo
//! feature, so this dev-dependency on `mcp-auth-model` cannot put them into any build of the
//! servers (`mcp-auth-model` turns on no feature of the core; a dev-dependency is not even part
//! of `cargo build -p mcp-auth`). In the ordinary test build the model and the servers have no
//! switches: the examples of the `sometimes` properties replay there. The counterexamples need
//! the mutated model, so the attack replays below are compiled only with the cfg; `cargo xtask
//! test` runs them after the ordinary tests as `RUSTFLAGS="--cfg mcp_auth_mutations"
//! CARGO_TARGET_DIR=<target>/mutations cargo test -p mcp-auth --test model_replay` (a target
//! directory of its own, so that the ordinary one is not rebuilt). In that build the servers
//! have the switches as plain fields that default to off and that the drivers never set: every
//! test there asserts that the real AS, RS and clients run with every defense on.
//!
//! The real honest authorization server has the model's accounts, `alice` and `mallory`
//! ([`mcp_auth_model::honest_users`]: the same cheap argon2id hashes), and a login page. Each
//! browser role keeps its own session cookie, and does what the model's user agent does: GET
//! authorize with its cookie, log in if the login page is shown, follow the redirect to the
//! consent page, approve. The consent CSRF of the model (mallory's consent form posted by
//! alice's browser with alice's cookie) is replayed the same way; the attacker's own AS keeps
//! a single implicit user, as in the model.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::sync::{Arc, Mutex};

use http_body_util::{BodyExt, Full};
use mcp_auth::as_server::{self, AsState};
use mcp_auth::client::{ConsentForm, Http, initialize_params};
use mcp_auth::mcp;
use mcp_auth::net::{self, OsEntropy, now};
use mcp_auth_layer::{AuthLayer, McpGuard};
#[cfg(mcp_auth_mutations)]
use mcp_auth_model::mutation::{self, MutationCase, Teeth};
use mcp_auth_model::properties as p;
use mcp_auth_model::replay::{
    self, Endpoint, Minted, ModelPath, Observation, Observed, RedirectTo, Role,
};
use mcp_auth_model::url::query_map;
use mcp_auth_model::{ALICE, ATTACKER_REDIRECT, ATTACKER_VERIFIER, Action, MALLORY, Prm};
use mcp_auth_model::{SCOPE, Target, Whose, redirect_uri};
use mcp_auth_proto::Rejection;
use mcp_auth_proto::client::{Action as ClientAction, Client, ClientConfig};
use mcp_auth_proto::guard::Sessions;
use mcp_auth_proto::http::{HttpRequest, HttpResponse, Method};
use mcp_auth_proto::jwt::{Ed25519Signer, Signer};
use mcp_auth_proto::metadata::ProtectedResourceMetadata;
#[cfg(mcp_auth_mutations)]
use mcp_auth_proto::mutations::Mutations;
use mcp_auth_proto::resource::{ResourceServer, RsConfig};
use mcp_auth_proto::server::AsConfig;
use mcp_auth_proto::server::http::{UserAgentPolicy, session_cookie_name};
use mcp_auth_proto::types::ScopeSet;
use mcp_auth_proto::uri::{HttpPolicy, Issuer, ResourceUri};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// Scopes every resource supports (as in the model).
fn scopes() -> ScopeSet {
    ScopeSet::from_tokens(["mcp:tools", "mcp:admin"])
}

const POLICY: HttpPolicy = HttpPolicy::AllowLoopbackHttp;

/// The defenses the real parties run with: every one, except (only in the build with the cfg
/// `mcp_auth_mutations`, for the attack replays on mutated servers) the switches in `off`,
/// turned off in every AS, RS and client as the model's mutated configuration does.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct Defenses {
    #[cfg(mcp_auth_mutations)]
    off: Mutations,
}

impl Defenses {
    /// Every defense on.
    fn all() -> Self {
        Self::default()
    }

    fn all_on(self) -> bool {
        self == Self::all()
    }
}

fn origin(url: &str) -> String {
    mcp_auth_model::url::split_url(url)
        .map(|(o, _, _)| o)
        .unwrap_or_default()
}

/// The real AS, as the model configures its own (default scopes, resources, accounts), on
/// loopback.
fn as_state(
    issuer: &str,
    resources: &[&str],
    users: UserAgentPolicy,
    defenses: Defenses,
) -> Arc<AsState> {
    let _ = defenses;
    let mut config = AsConfig::new(
        Issuer::parse(issuer, POLICY).expect("issuer"),
        resources
            .iter()
            .map(|r| (ResourceUri::parse(r, POLICY).expect("resource"), scopes())),
    );
    config.http_policy = POLICY;
    config.default_scopes = ScopeSet::from_tokens([SCOPE]);
    #[cfg(mcp_auth_mutations)]
    {
        config.mutations = defenses.off;
    }
    AsState::new(config, mcp_auth::keys::ephemeral(), users)
}

/// The attacker's MCP server: its PRM face for the next connection, and what it was sent.
#[derive(Debug)]
struct EvilRs {
    core: ResourceServer,
    prm: Mutex<Prm>,
    honest_rs: String,
    evil_issuer: String,
    tokens: Mutex<Vec<String>>,
}

async fn evil_rs_answer(
    evil: Arc<EvilRs>,
    request: http::Request<hyper::body::Incoming>,
) -> Result<http::Response<net::Body>, Infallible> {
    let path = request.uri().path().to_owned();
    let bearer = request
        .headers()
        .get(http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::to_owned);
    let response = if request.method() == http::Method::GET
        && evil.core.metadata_paths().contains(&path)
    {
        let mut doc: ProtectedResourceMetadata = evil.core.metadata();
        match *evil.prm.lock().unwrap() {
            Prm::Genuine => {}
            Prm::EvilAs => doc.authorization_servers = vec![evil.evil_issuer.clone()],
            Prm::Spoofed => doc.resource = evil.honest_rs.clone(),
        }
        HttpResponse::json(200, &doc)
    } else if let Some(token) = bearer {
        // It takes whatever token it is sent.
        evil.tokens.lock().unwrap().push(token);
        HttpResponse::json(200, &serde_json::json!({}))
    } else {
        let challenge = evil.core.challenge(Rejection::NoCredentials, None);
        HttpResponse::new(challenge.status).header("www-authenticate", challenge.www_authenticate)
    };
    Ok(net::to_hyper(response))
}

/// The codes (with their PKCE verifiers and redirect URIs, if sent) that reached the
/// attacker's AS.
type Seen = Arc<Mutex<Vec<(String, Option<String>, Option<String>)>>>;

/// The attacker's AS: the reference driver, and a record of every code (and verifier) that
/// reaches its token endpoint.
async fn evil_as_answer(
    state: Arc<AsState>,
    seen: Seen,
    request: http::Request<hyper::body::Incoming>,
) -> Result<http::Response<net::Body>, Infallible> {
    let (parts, body) = request.into_parts();
    let body = body
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    let form = query_map(std::str::from_utf8(&body).unwrap_or(""));
    if let Some(code) = form.get("code") {
        seen.lock().unwrap().push((
            code.clone(),
            form.get("code_verifier").cloned(),
            form.get("redirect_uri").cloned(),
        ));
    }
    as_server::handle_request(state, http::Request::from_parts(parts, Full::new(body))).await
}

/// Every server of the replay.
struct Servers {
    honest_as: Arc<AsState>,
    issuer: String,
    evil_issuer: String,
    evil_as_seen: Seen,
    honest_rs: String,
    evil_rs_url: String,
    evil_rs: Arc<EvilRs>,
    shutdown: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
}

impl Servers {
    async fn start(defenses: Defenses) -> Self {
        let bind = || async { net::bind("127.0.0.1:0").await.expect("bind") };
        let (as_l, evil_as_l, rs_l, evil_rs_l) =
            (bind().await, bind().await, bind().await, bind().await);
        let o = |l: &TcpListener| net::origin_of(l).expect("origin");
        let (issuer, evil_issuer) = (o(&as_l), o(&evil_as_l));
        let honest_rs = format!("{}/mcp", o(&rs_l));
        let evil_rs_url = format!("{}/mcp", o(&evil_rs_l));
        let honest_as = as_state(
            &issuer,
            &[&honest_rs, &evil_rs_url],
            mcp_auth_model::honest_users(),
            defenses,
        );
        let evil_as = as_state(
            &evil_issuer,
            &[&evil_rs_url],
            UserAgentPolicy::single(ALICE),
            defenses,
        );
        #[cfg(mcp_auth_mutations)]
        for state in [&honest_as, &evil_as] {
            assert_eq!(
                state.with_server(|s| s.config().mutations),
                defenses.off,
                "the real authorization servers run with exactly the defenses asked for"
            );
        }
        let resource_server = |url: &str| {
            let config = RsConfig::new(
                ResourceUri::parse(url, POLICY).expect("resource"),
                Issuer::parse(&issuer, POLICY).expect("issuer"),
                scopes(),
            );
            #[cfg(mcp_auth_mutations)]
            let config = {
                let mut config = config;
                config.validation.mutations = defenses.off;
                config
            };
            ResourceServer::new(config)
        };
        let jwks_uri = honest_as
            .with_server(|s| s.metadata().jwks_uri)
            .expect("jwks_uri");
        let layer = AuthLayer::new(
            McpGuard::new(resource_server(&honest_rs), Sessions::new(&mut OsEntropy))
                .with_jwks_uri(jwks_uri),
        );
        let evil_rs = Arc::new(EvilRs {
            core: resource_server(&evil_rs_url),
            prm: Mutex::new(Prm::Genuine),
            honest_rs: honest_rs.clone(),
            evil_issuer: evil_issuer.clone(),
            tokens: Mutex::new(Vec::new()),
        });
        let evil_as_seen = Arc::new(Mutex::new(Vec::new()));
        let (shutdown, rx) = watch::channel(false);
        let stopped = |mut rx: watch::Receiver<bool>| async move {
            let _ = rx.wait_for(|stop| *stop).await;
        };
        let evil = Arc::clone(&evil_rs);
        let evil_rs_service = tower::service_fn(move |r| evil_rs_answer(Arc::clone(&evil), r));
        let (state, seen) = (Arc::clone(&evil_as), Arc::clone(&evil_as_seen));
        let evil_as_service =
            tower::service_fn(move |r| evil_as_answer(Arc::clone(&state), Arc::clone(&seen), r));
        let tasks = vec![
            tokio::spawn(as_server::run(
                as_l,
                Arc::clone(&honest_as),
                stopped(rx.clone()),
            )),
            tokio::spawn(mcp::run(rs_l, layer.clone(), stopped(rx.clone()))),
            tokio::spawn(net::serve(evil_as_l, evil_as_service, stopped(rx.clone()))),
            tokio::spawn(net::serve(evil_rs_l, evil_rs_service, stopped(rx.clone()))),
        ];
        layer
            .fetch_keys()
            .await
            .expect("the RS fetches the AS's keys");
        Self {
            honest_as,
            issuer,
            evil_issuer,
            evil_as_seen,
            honest_rs,
            evil_rs_url,
            evil_rs,
            shutdown,
            tasks,
        }
    }

    async fn stop(self) {
        let _ = self.shutdown.send(true);
        for task in self.tasks {
            let _ = tokio::time::timeout(std::time::Duration::from_secs(3), task).await;
        }
    }

    fn url(&self, target: Target) -> &str {
        match target {
            Target::Honest => &self.honest_rs,
            Target::Evil => &self.evil_rs_url,
        }
    }

    fn endpoint_of(&self, url: &str) -> Endpoint {
        let o = origin(url);
        if o == self.issuer {
            Endpoint::HonestAs
        } else if o == self.evil_issuer {
            Endpoint::EvilAs
        } else if o == origin(&self.honest_rs) {
            Endpoint::HonestRs
        } else if o == origin(&self.evil_rs_url) {
            Endpoint::EvilRs
        } else {
            Endpoint::Unknown
        }
    }
}

/// Model values → real values, by role (what was minted at the same point of the path).
#[derive(Debug, Default)]
struct RoleMap {
    values: BTreeMap<String, String>,
}

impl RoleMap {
    fn learn(&mut self, model: &Minted, real: &Minted) {
        for (m, r) in [
            (&model.client_id, &real.client_id),
            (&model.code, &real.code),
            (&model.access_token, &real.access_token),
            (&model.refresh_token, &real.refresh_token),
        ] {
            if let (Some(m), Some(r)) = (m, r) {
                self.values.insert(m.clone(), r.clone());
            }
        }
    }

    /// The real value, if one played the role (a code the model minted only with a defense
    /// off has none).
    fn get(&self, model: &str) -> Option<String> {
        self.values.get(model).cloned()
    }

    fn real(&self, model: &str) -> String {
        self.values
            .get(model)
            .unwrap_or_else(|| panic!("no real value plays the role of model value {model}"))
            .clone()
    }
}

/// The real honest session `n`.
struct RealSession {
    target: Target,
    client: Client,
}

/// The real world of a replay: the servers, the honest clients, and what the real attacker
/// knows (real values).
struct Real {
    s: Servers,
    /// Read by the clients' configuration in the build with the cfg only.
    #[cfg_attr(not(mcp_auth_mutations), allow(dead_code))]
    defenses: Defenses,
    http: Http,
    sessions: Vec<Option<RealSession>>,
    /// Session `n` → its client id at the honest AS.
    client_ids: BTreeMap<u8, String>,
    /// The attacker's clients at the honest AS (as in the model: [0] with the attacker's
    /// redirect URI, [1] with session 0's loopback redirect URI).
    attacker_clients: Vec<String>,
    /// Codes the attacker saw: where each arrived, and whether its own request had no PKCE
    /// challenge (a downgrade).
    codes: BTreeMap<String, (String, bool)>,
    verifiers: BTreeMap<String, String>,
    refresh_tokens: BTreeMap<String, String>,
    /// Each browser's session cookie at the honest AS (its value), by user.
    cookies: BTreeMap<String, String>,
    /// The consent form (`id`, `csrf`) mallory was shown for the attacker's own client.
    consent_form: Option<(String, String)>,
    log: Vec<Observation>,
}

fn mcp_request(url: &str, authorization: Option<&str>) -> HttpRequest {
    let body = serde_json::json!({
        "jsonrpc": "2.0", "id": 1, "method": "initialize", "params": initialize_params()
    });
    let mut request = HttpRequest::new(Method::Post, url)
        .header("content-type", "application/json")
        .header("accept", "application/json, text/event-stream")
        .body(serde_json::to_vec(&body).expect("json"));
    if let Some(a) = authorization {
        request = request.header("authorization", a);
    }
    request
}

fn form_request(url: &str, pairs: &[(&str, &str)]) -> HttpRequest {
    HttpRequest::new(Method::Post, url)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(mcp_auth_proto::form::encode(pairs.iter().copied()))
}

/// The form of a page the AS shows (200) whose `action` is `action` (`login`, `consent`), read
/// from the HTML as a browser reads it: the `id` and `csrf` it posts.
fn page_form(page: &HttpResponse, action: &str) -> Option<ConsentForm> {
    if page.status != 200 {
        return None;
    }
    let form = ConsentForm::parse(std::str::from_utf8(&page.body).ok()?)?;
    (form.action == action).then_some(form)
}

impl Real {
    async fn start(sessions: u8, defenses: Defenses) -> Self {
        let mut real = Self {
            s: Servers::start(defenses).await,
            defenses,
            http: Http::new(POLICY),
            sessions: (0..sessions).map(|_| None).collect(),
            client_ids: BTreeMap::new(),
            attacker_clients: Vec::new(),
            codes: BTreeMap::new(),
            verifiers: BTreeMap::new(),
            refresh_tokens: BTreeMap::new(),
            cookies: BTreeMap::new(),
            consent_form: None,
            log: Vec::new(),
        };
        // The model's initial state: the attacker registers its two clients.
        for redirect in [ATTACKER_REDIRECT.to_owned(), redirect_uri(0)] {
            let body = serde_json::json!({
                "redirect_uris": [redirect],
                "token_endpoint_auth_method": "none",
                "grant_types": ["authorization_code", "refresh_token"],
                "response_types": ["code"],
                "client_name": "Totally Legit MCP Client",
            });
            let request = HttpRequest::new(Method::Post, format!("{}/register", real.s.issuer))
                .header("content-type", "application/json")
                .body(serde_json::to_vec(&body).expect("json"));
            let response = real.send(Role::Attacker, &request).await;
            let id = replay::minted_of(&response).client_id.expect("registered");
            real.attacker_clients.push(id);
        }
        real.prepare_consent_csrf().await;
        real
    }

    fn redirect_to(&self, target: &str) -> RedirectTo {
        if target == ATTACKER_REDIRECT {
            return RedirectTo::Attacker;
        }
        (0..self.sessions.len() as u8)
            .find(|&n| target == redirect_uri(n))
            .map_or(RedirectTo::Other, RedirectTo::Session)
    }

    fn observe(&mut self, from: Role, request: &HttpRequest, response: &HttpResponse) {
        let observation = Observation {
            from,
            to: self.s.endpoint_of(&request.url),
            request: replay::request_line(request.method.as_str(), &request.url),
            answer: replay::answer_of(response, |t| self.redirect_to(t)),
            minted: replay::minted_of(response),
        };
        self.log.push(observation);
    }

    /// Send over real HTTP and record the answer; then learn what the attacker's AS saw.
    async fn send(&mut self, from: Role, request: &HttpRequest) -> HttpResponse {
        let response = self
            .http
            .send(request)
            .await
            .unwrap_or_else(|e| panic!("{} {}: {e}", request.method.as_str(), request.url));
        self.observe(from, request, &response);
        let seen: Vec<_> = self.s.evil_as_seen.lock().unwrap().drain(..).collect();
        for (code, verifier, redirect) in seen {
            self.codes
                .insert(code.clone(), (redirect.unwrap_or_default(), false));
            if let Some(v) = verifier {
                self.verifiers.insert(code, v);
            }
        }
        // Session n's client id at the honest AS (the model's audit of owners).
        let last = self.log.last().expect("just recorded");
        if let (Role::Session(n), Endpoint::HonestAs, Some(id)) =
            (&last.from, last.to, &last.minted.client_id)
            && request.url.ends_with("/register")
        {
            self.client_ids.insert(*n, id.clone());
        }
        response
    }

    fn session(&mut self, n: u8) -> Option<&mut RealSession> {
        self.sessions
            .get_mut(usize::from(n))
            .and_then(Option::as_mut)
    }

    fn phases(&self) -> Vec<Option<String>> {
        self.sessions
            .iter()
            .map(|s| {
                s.as_ref()
                    .map(|s| replay::phase(&s.client, |u| self.s.endpoint_of(u)))
            })
            .collect()
    }

    async fn apply(&mut self, action: &Action, roles: &RoleMap) {
        match action {
            Action::Connect {
                session: n,
                target,
                prm,
            } => {
                *self.s.evil_rs.prm.lock().unwrap() = *prm;
                let config = ClientConfig::new(self.s.url(*target), redirect_uri(*n))
                    .with_scope(Some(ScopeSet::from_tokens([SCOPE])))
                    .with_http_policy(POLICY);
                #[cfg(mcp_auth_mutations)]
                let config = {
                    let mut config = config;
                    config.mutations = self.defenses.off;
                    config
                };
                self.sessions[usize::from(*n)] = Some(RealSession {
                    target: *target,
                    client: Client::new(config),
                });
                let first = mcp_request(self.s.url(*target), None);
                let response = self.send(Role::Session(*n), &first).await;
                let challenges: Vec<&str> = response.header_values("www-authenticate").collect();
                self.session(*n)
                    .expect("started")
                    .client
                    .handle_unauthorized(challenges);
                for _ in 0..16 {
                    let ClientAction::Send(request) =
                        self.session(*n).expect("started").client.poll_action()
                    else {
                        break;
                    };
                    let response = self.send(Role::Session(*n), &request).await;
                    self.session(*n).expect("started").client.handle_response(
                        now(),
                        &mut OsEntropy,
                        &response,
                    );
                }
            }
            Action::Browse { session: n } => {
                let Some(s) = self.session(*n) else { return };
                let ClientAction::OpenBrowser(url) = s.client.poll_action() else {
                    return;
                };
                let url = if url.starts_with(&self.s.evil_issuer) {
                    // The attacker's AS sends alice on to the honest AS, with its client
                    // registered with the victims' redirect URI, her state and challenge.
                    let q = query_map(url.split_once('?').map_or("", |(_, q)| q));
                    let get = |k: &str| q.get(k).cloned().unwrap_or_default();
                    let query = mcp_auth_proto::form::encode([
                        ("response_type", "code"),
                        ("client_id", self.attacker_clients[1].as_str()),
                        ("redirect_uri", get("redirect_uri").as_str()),
                        ("state", get("state").as_str()),
                        ("code_challenge", get("code_challenge").as_str()),
                        ("code_challenge_method", "S256"),
                        ("resource", self.s.honest_rs.as_str()),
                        ("scope", SCOPE),
                    ]);
                    format!("{}/authorize?{query}", self.s.issuer)
                } else {
                    url
                };
                if let Some(location) = self.user_agent(ALICE, &url).await {
                    self.land(&location, false);
                }
            }
            Action::Redeem { session: n } => {
                let Some(s) = self.session(*n) else { return };
                let ClientAction::Send(request) = s.client.poll_action() else {
                    return;
                };
                self.exchange(*n, &request).await;
            }
            Action::Call { session, server } => self.call(*session, *server).await,
            Action::Refresh { session: n } => {
                let Some(s) = self.session(*n) else { return };
                s.client.start_refresh();
                let ClientAction::Send(request) = s.client.poll_action() else {
                    return;
                };
                self.exchange(*n, &request).await;
            }
            Action::Tick => panic!("the real clock cannot be advanced: no ticks in replays"),
            Action::AttackerAuthorize { whose } => {
                let (client_id, redirect, resource) = match whose {
                    Whose::Own => (
                        self.attacker_clients[0].clone(),
                        ATTACKER_REDIRECT.to_owned(),
                        self.s.evil_rs_url.clone(),
                    ),
                    Whose::Victim(n) => {
                        let (Some(id), Some(s)) = (
                            self.client_ids.get(n),
                            self.sessions[usize::from(*n)].as_ref(),
                        ) else {
                            return;
                        };
                        (
                            id.clone(),
                            redirect_uri(*n),
                            self.s.url(s.target).to_owned(),
                        )
                    }
                };
                let url = self.attacker_authorize_url(&client_id, &redirect, &resource);
                if let Some(location) = self.user_agent(MALLORY, &url).await {
                    self.land(&location, true);
                }
            }
            Action::Lure { session: n } => {
                let (Some(id), Some(s)) = (
                    self.client_ids.get(n),
                    self.sessions[usize::from(*n)].as_ref(),
                ) else {
                    return;
                };
                let resource = self.s.url(s.target).to_owned();
                let url = self.attacker_authorize_url(&id.clone(), ATTACKER_REDIRECT, &resource);
                if let Some(location) = self.user_agent(ALICE, &url).await {
                    self.land(&location, false);
                }
            }
            Action::AttackerRedeem {
                code,
                client_id,
                redirect,
                resource,
            } => {
                // A code minted only with a defense off does not exist here, nor in the
                // defended model (which then does nothing).
                let Some(code) = roles.get(code) else { return };
                // As in the model: built from what the attacker knows (where the code
                // arrived, a client id it knows).
                let Some((_, without_pkce)) = self.codes.get(&code).cloned() else {
                    return;
                };
                let client_id = roles.real(client_id);
                let verifier = self
                    .verifiers
                    .get(&code)
                    .cloned()
                    .unwrap_or_else(|| ATTACKER_VERIFIER.to_owned());
                let resource = self.s.url(*resource).to_owned();
                let mut pairs = vec![
                    ("grant_type", "authorization_code"),
                    ("code", code.as_str()),
                    ("redirect_uri", redirect.as_str()),
                    ("client_id", client_id.as_str()),
                    ("resource", resource.as_str()),
                ];
                if !without_pkce {
                    pairs.push(("code_verifier", verifier.as_str()));
                }
                self.attacker_token_request(&pairs).await;
            }
            Action::AttackerRefresh { token, resource } => {
                let token = roles.real(token);
                let client_id = self.refresh_tokens.get(&token).cloned().unwrap_or_default();
                let resource = resource.map(|r| self.s.url(r).to_owned());
                let mut pairs = vec![
                    ("grant_type", "refresh_token"),
                    ("refresh_token", token.as_str()),
                    ("client_id", client_id.as_str()),
                ];
                if let Some(r) = &resource {
                    pairs.push(("resource", r.as_str()));
                }
                self.attacker_token_request(&pairs).await;
            }
            Action::Steal { session: n } => {
                let Some(s) = self.session(*n) else { return };
                let ClientAction::Authorized(tokens) = s.client.poll_action() else {
                    return;
                };
                if let Some(rt) = tokens.refresh_token.clone() {
                    self.refresh_tokens.insert(rt, tokens.client_id.clone());
                }
            }
            Action::Forge => {
                let Some(client_id) = self.client_ids.get(&0).cloned() else {
                    return;
                };
                let token = self.forged_token(&client_id);
                self.attacker_learns_token(&token).await;
            }
            Action::Downgrade { session: n } => {
                let (Some(id), Some(s)) = (
                    self.client_ids.get(n).cloned(),
                    self.sessions[usize::from(*n)].as_ref(),
                ) else {
                    return;
                };
                let resource = self.s.url(s.target).to_owned();
                let query = mcp_auth_model::AuthModel::authorize_query(
                    &id,
                    &redirect_uri(*n),
                    &resource,
                    None,
                    "attacker-state",
                );
                let url = format!("{}/authorize?{query}", self.s.issuer);
                if let Some(location) = self.user_agent(ALICE, &url).await {
                    self.land(&location, false);
                    let query = location.split_once('?').map_or("", |(_, q)| q);
                    if let Some(code) = query_map(query).get("code")
                        && let Some(seen) = self.codes.get_mut(code)
                    {
                        seen.1 = true;
                    }
                }
            }
            Action::Phish => {
                let url = self.attacker_authorize_url(
                    &self.attacker_clients[0].clone(),
                    ATTACKER_REDIRECT,
                    &self.s.evil_rs_url.clone(),
                );
                if let Some(location) = self.user_agent(ALICE, &url).await {
                    self.land(&location, true);
                }
            }
            Action::ConsentCsrf => self.consent_csrf().await,
            // The CIMD configuration's attacker: the harness's AS fetches no documents.
            Action::DocAuthorize | Action::DocLure { .. } => {
                panic!("CIMD paths are not replayed (the harness's AS has no document fetcher)")
            }
            Action::Inject { session: n, code } => {
                let code = roles.real(code);
                let query = mcp_auth_proto::form::encode([
                    ("code", code.as_str()),
                    ("iss", self.s.issuer.as_str()),
                ]);
                if let Some(s) = self.session(*n) {
                    let result = s.client.handle_redirect(&query);
                    self.log.push(Observation {
                        from: Role::Attacker,
                        to: Endpoint::Client(*n),
                        request: "GET /callback".into(),
                        answer: replay::callback_answer(&result),
                        minted: Minted::default(),
                    });
                }
            }
        }
    }

    fn attacker_authorize_url(&self, client_id: &str, redirect: &str, resource: &str) -> String {
        let query =
            mcp_auth_model::AuthModel::attacker_authorize_query(client_id, redirect, resource);
        format!("{}/authorize?{query}", self.s.issuer)
    }

    /// A request of `user`'s browser to the honest AS, with its session cookie, keeping the
    /// one the AS sets.
    async fn browser_send(&mut self, user: &str, request: HttpRequest) -> HttpResponse {
        let name = self.s.honest_as.with_server(session_cookie_name);
        let request = match self.cookies.get(user) {
            Some(value) => request.header("cookie", format!("{name}={value}")),
            None => request,
        };
        let response = self.send(Role::Browser(user.to_owned()), &request).await;
        if let Some(value) = response
            .header_value("set-cookie")
            .and_then(|c| c.split(';').next())
            .and_then(|pair| pair.strip_prefix(name))
            .and_then(|rest| rest.strip_prefix('='))
        {
            self.cookies.insert(user.to_owned(), value.to_owned());
        }
        response
    }

    /// `user`'s browser opens an authorization URL, logs in as `user` if the login page is
    /// shown and follows the redirect to the pending authorization's page: the page it ends on.
    async fn open_authorization(&mut self, user: &str, url: &str) -> Option<HttpResponse> {
        assert_eq!(self.s.endpoint_of(url), Endpoint::HonestAs, "{url}");
        let get = HttpRequest::new(Method::Get, url).header("accept", "text/html");
        let page = self.browser_send(user, get).await;
        let Some(ConsentForm { id, csrf, .. }) = page_form(&page, "login") else {
            return Some(page);
        };
        let post = form_request(
            &format!("{}/login", self.s.issuer),
            &[
                ("id", &id),
                ("csrf", &csrf),
                ("username", user),
                ("password", mcp_auth_model::password_of(user)),
            ],
        );
        let answer = self.browser_send(user, post).await;
        let (_, query) = answer.header_value("location")?.split_once('?')?;
        let get = HttpRequest::new(Method::Get, format!("{}/consent?{query}", self.s.issuer))
            .header("accept", "text/html");
        Some(self.browser_send(user, get).await)
    }

    fn approval(&self, id: &str, csrf: &str) -> HttpRequest {
        form_request(
            &format!("{}/consent", self.s.issuer),
            &[("id", id), ("csrf", csrf), ("decision", "approve")],
        )
    }

    /// `user`'s browser opens an authorization URL (logging in if asked) and approves the
    /// consent page it is shown; the redirect's `Location`, not followed.
    async fn user_agent(&mut self, user: &str, url: &str) -> Option<String> {
        let page = self.open_authorization(user, url).await?;
        let response = if page.status == 200 {
            let form = page_form(&page, "consent")?;
            let post = self.approval(&form.id, &form.csrf);
            self.browser_send(user, post).await
        } else {
            page
        };
        response.header_value("location").map(str::to_owned)
    }

    /// As in the model's initial state: mallory's browser stops at the consent page of the
    /// attacker's own client for the honest MCP server, whose form the attacker keeps.
    async fn prepare_consent_csrf(&mut self) {
        let url = self.attacker_authorize_url(
            &self.attacker_clients[0].clone(),
            ATTACKER_REDIRECT,
            &self.s.honest_rs.clone(),
        );
        let page = self.open_authorization(MALLORY, &url).await;
        self.consent_form = page
            .and_then(|page| page_form(&page, "consent"))
            .map(|form| (form.id, form.csrf));
    }

    /// Consent CSRF, as in the model: alice's browser posts mallory's consent form (approve)
    /// with alice's cookie.
    async fn consent_csrf(&mut self) {
        let Some((id, csrf)) = self.consent_form.clone() else {
            return;
        };
        let post = self.approval(&id, &csrf);
        let answer = self.browser_send(ALICE, post).await;
        if let Some(location) = answer.header_value("location") {
            self.land(location, true);
        }
    }

    /// Where a redirect lands: the attacker reads its code (A3); a session's callback hands
    /// it to that session's client (unless the browser is the attacker's own).
    fn land(&mut self, location: &str, attackers_browser: bool) {
        let (target, query) = location.split_once('?').unwrap_or((location, ""));
        if let Some(code) = query_map(query).get("code") {
            self.codes.insert(code.clone(), (target.to_owned(), false));
        }
        if attackers_browser || target == ATTACKER_REDIRECT {
            return;
        }
        for n in 0..self.sessions.len() as u8 {
            if target == redirect_uri(n)
                && let Some(s) = self.session(n)
            {
                let result = s.client.handle_redirect(query);
                self.log.push(Observation {
                    from: Role::Browser(ALICE.to_owned()),
                    to: Endpoint::Client(n),
                    request: "GET /callback".into(),
                    answer: replay::callback_answer(&result),
                    minted: Minted::default(),
                });
            }
        }
    }

    /// Session `n`'s request to an AS; once authorized, it calls its server.
    async fn exchange(&mut self, n: u8, request: &HttpRequest) {
        let response = self.send(Role::Session(n), request).await;
        let s = self.session(n).expect("started");
        s.client.handle_response(now(), &mut OsEntropy, &response);
        if matches!(s.client.poll_action(), ClientAction::Authorized(_)) {
            let target = s.target;
            self.call(n, target).await;
        }
    }

    /// Session `n` calls `server` with whatever its client attaches (nothing, unless it was
    /// minted for that server).
    async fn call(&mut self, n: u8, server: Target) {
        let url = self.s.url(server).to_owned();
        let Some(s) = self.session(n) else { return };
        let Some(header) = s.client.authorization_for(&url) else {
            return;
        };
        self.send(Role::Session(n), &mcp_request(&url, Some(&header)))
            .await;
        let sent: Vec<String> = self.s.evil_rs.tokens.lock().unwrap().drain(..).collect();
        for token in sent {
            self.attacker_learns_token(&token).await;
        }
    }

    /// The model's forged token on the real servers: the attacker's own Ed25519 key, under
    /// the honest AS's `kid`, claiming the honest issuer, alice, the honest MCP server and
    /// `client_id`.
    fn forged_token(&self, client_id: &str) -> String {
        let kid = self.s.honest_as.with_server(|s| {
            s.jwks()
                .keys
                .first()
                .and_then(|k| k.common.key_id.clone())
                .expect("the honest AS publishes a kid")
        });
        let at = now().as_secs();
        let header = serde_json::json!({"alg": "EdDSA", "typ": "at+jwt", "kid": kid});
        let claims = serde_json::json!({
            "iss": self.s.issuer,
            "sub": ALICE,
            "aud": self.s.honest_rs,
            "iat": at,
            "exp": at + 300,
            "jti": "forged",
            "client_id": client_id,
            "scope": SCOPE,
        });
        Signer::new(Ed25519Signer::from_seed(
            &kid,
            [mcp_auth_model::EVIL_SEED; 32],
        ))
        .sign_json(&header, &claims)
        .expect("Ed25519 signs")
    }

    /// The attacker presents a token it learned at the honest MCP server at once.
    async fn attacker_learns_token(&mut self, token: &str) {
        let request = mcp_request(&self.s.honest_rs, Some(&format!("Bearer {token}")));
        self.send(Role::Attacker, &request).await;
    }

    async fn attacker_token_request(&mut self, pairs: &[(&str, &str)]) {
        let request = form_request(&format!("{}/token", self.s.issuer), pairs);
        let client_id = pairs
            .iter()
            .find(|(k, _)| *k == "client_id")
            .map(|(_, v)| (*v).to_owned())
            .unwrap_or_default();
        let response = self.send(Role::Attacker, &request).await;
        if response.status != 200 {
            return;
        }
        let minted = replay::minted_of(&response);
        if let Some(at) = minted.access_token {
            self.attacker_learns_token(&at).await;
        }
        if let Some(rt) = minted.refresh_token {
            self.refresh_tokens.insert(rt, client_id);
        }
    }
}

fn summaries(observations: &[Observation]) -> Vec<String> {
    observations.iter().map(Observation::summary).collect()
}

/// Replay `path` on the real servers and compare every step with the model run with every
/// defense on. Returns the model's record (for further assertions) after printing the trace.
fn replay_path(path: &ModelPath) -> Observed {
    replay_path_with(path, Defenses::all())
}

/// Replay `path` on the real servers running with `defenses`, and compare every step with the
/// model run with the same defenses (the same switches off in the model's configuration).
fn replay_path_with(path: &ModelPath, defenses: Defenses) -> Observed {
    // The path's configuration (its attacker classes), with exactly these defenses off.
    #[allow(unused_mut)]
    let mut cfg = path.config();
    #[cfg(mcp_auth_mutations)]
    {
        cfg.mutations = defenses.off;
    }
    let observed = replay::observe(cfg.clone(), &path.actions);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let mut report = format!(
        "path for {} ({}), {} steps, replayed with {}:\n",
        path.property,
        path.mutation
            .map_or("example, no mutation".to_owned(), |m| format!(
                "counterexample with mutation {m}"
            )),
        path.actions.len(),
        if defenses.all_on() {
            "every defense on".to_owned()
        } else {
            format!("these defenses off in every real party: {defenses:?}")
        }
    );
    let mismatches = runtime.block_on(async {
        let mut real = Real::start(cfg.sessions, defenses).await;
        let mut roles = RoleMap::default();
        let mut mismatches = Vec::new();
        let initial = std::mem::take(&mut real.log);
        if summaries(&initial) != summaries(&observed.initial) {
            mismatches.push(format!(
                "initial state: model {:#?}\nreal {:#?}",
                summaries(&observed.initial),
                summaries(&initial)
            ));
        }
        for (m, r) in observed.initial.iter().zip(&initial) {
            roles.learn(&m.minted, &r.minted);
        }
        for (i, step) in observed.steps.iter().enumerate() {
            real.apply(&step.action, &roles).await;
            let log = std::mem::take(&mut real.log);
            let (model, got) = (summaries(&step.observations), summaries(&log));
            let _ = std::fmt::Write::write_fmt(
                &mut report,
                format_args!(
                    "  {:>2}. {}{}\n",
                    i + 1,
                    mcp_auth_model::report::format_action(&step.action),
                    if step.enabled {
                        ""
                    } else {
                        " [not enabled with every defense on]"
                    }
                ),
            );
            for line in &got {
                let _ = std::fmt::Write::write_fmt(&mut report, format_args!("        {line}\n"));
            }
            if model != got {
                mismatches.push(format!(
                    "step {}: {:?}\n  model: {model:#?}\n  real:  {got:#?}",
                    i + 1,
                    step.action
                ));
            }
            let phases = real.phases();
            if phases != step.sessions {
                mismatches.push(format!(
                    "step {}: sessions after it: model {:?}, real {:?}",
                    i + 1,
                    step.sessions,
                    phases
                ));
            }
            for (m, r) in step.observations.iter().zip(&log) {
                roles.learn(&m.minted, &r.minted);
            }
            if !mismatches.is_empty() {
                break;
            }
        }
        real.s.stop().await;
        mismatches
    });
    println!("{report}");
    assert!(
        mismatches.is_empty(),
        "the real servers diverged from the model:\n{}\n\n{report}",
        mismatches.join("\n")
    );
    if defenses.all_on() {
        for (i, step) in observed.steps.iter().enumerate() {
            assert!(
                step.violated.is_empty(),
                "with every defense on, step {} violates {:?}",
                i + 1,
                step.violated
            );
        }
    }
    observed
}

/// The checker's path, and its minimal form when shorter ([`ModelPath::minimal`]).
fn found_and_minimal(path: ModelPath) -> Vec<ModelPath> {
    assert!(
        path.decides(&path.actions),
        "the checker's path decides {}",
        path.property
    );
    let minimal = path.minimal();
    assert!(minimal.decides(&minimal.actions));
    if minimal.actions == path.actions {
        vec![path]
    } else {
        vec![path, minimal]
    }
}

/// Replay the example of a `sometimes` property (found with every defense on, so every step
/// of it is a transition of the defended model).
fn replay_example(property: &'static str) {
    let path = replay::example(property).expect("the model has an example");
    for path in found_and_minimal(path) {
        let observed = replay_path(&path);
        assert!(
            observed.steps.iter().all(|s| s.changed && s.enabled),
            "an example path is a path of the defended model"
        );
    }
}

/// Replay a mutation's counterexample with every defense on, and find where the defense
/// bites: the first step whose answers (or clients' phases) differ from the mutated model's;
/// the real servers answered it as the defended model did. Then replay it on real servers and
/// clients built with that defense off: every answer is the mutated model's, and the path ends
/// in the harm (the property's violation), so the attack is seen working over HTTP.
#[cfg(mcp_auth_mutations)]
fn replay_attack(name: &str) {
    let case: MutationCase = mutation::case(name).expect("known mutation");
    let path = replay::counterexample(&case).expect("the mutation has a counterexample");
    for path in found_and_minimal(path) {
        let defended = replay_path(&path);
        let mutated = replay::observe(path.config(), &path.actions);
        assert!(
            mutated
                .steps
                .last()
                .is_some_and(|s| s.violated.contains(&case.property)),
            "the counterexample violates {} in the mutated model",
            case.property
        );
        let bite = defended
            .steps
            .iter()
            .zip(&mutated.steps)
            .position(|(d, m)| {
                summaries(&d.observations) != summaries(&m.observations) || d.sessions != m.sessions
            })
            .unwrap_or_else(|| {
                panic!("{name}: the defense changes no answer along its counterexample")
            });
        let (d, m) = (&defended.steps[bite], &mutated.steps[bite]);
        println!(
            "{name}: the defense bites at step {} of {} ({}):\n  with it off: {:#?} {:?}\n  with it on (model = real servers): {:#?} {:?}\n",
            bite + 1,
            path.actions.len(),
            mcp_auth_model::report::format_action(&d.action),
            summaries(&m.observations),
            m.sessions,
            summaries(&d.observations),
            d.sessions
        );
        // The same path against servers and clients built with this defense off: the attack
        // works over HTTP, answer for answer as in the mutated model (`replay_path_with`
        // compares every step), up to the harm its property names.
        let harmed = replay_path_with(
            &path,
            Defenses {
                off: case.mutations,
            },
        );
        let last = harmed.steps.last().expect("a step");
        assert!(
            last.violated.contains(&case.property),
            "{name}: on the mutated real servers the path ends without violating {}",
            case.property
        );
        println!(
            "{name}: with the defense off in the real servers and clients, the attack succeeds over HTTP; its last step ({}) breaks {}:\n  {:#?}\n",
            mcp_auth_model::report::format_action(&last.action),
            case.property,
            summaries(&last.observations)
        );
    }
}

// spec: PRM-8, DISC-1, RS-2
#[test]
fn honest_flow_replays_on_the_real_servers() {
    replay_example(p::HONEST_FLOW);
}

// spec: RT-1, RT-7
#[test]
fn honest_refresh_replays_on_the_real_servers() {
    replay_example(p::HONEST_REFRESH);
}

// spec: RS-2, RS-6
#[test]
fn malicious_server_gets_its_own_token_on_the_real_servers() {
    replay_example(p::EVIL_GETS_TOKEN);
}

// spec: AZ-20
#[test]
fn mixup_forwarding_replays_on_the_real_servers() {
    replay_example(p::MIXUP_EXERCISED);
}

/// The attack replays: only with the cfg `mcp_auth_mutations` (see the header).
#[cfg(mcp_auth_mutations)]
macro_rules! attack_replays {
    ($($test:ident => $name:literal;)*) => {
        $(
            #[doc = concat!("The counterexample of mutation `", $name, "`, refused by the real servers as by the model.")]
            #[test]
            fn $test() {
                replay_attack($name);
            }
        )*
        /// Every mutation of the table has its replay.
        #[test]
        fn every_mutation_is_replayed() {
            let replayed = [$($name),*];
            // CIMD cases have no replay harness (the harness's AS fetches no documents);
            // a redundant defense has no counterexample.
            for case in mutation::cases()
                .into_iter()
                .filter(|c| c.config != "cimd" && c.expect == Teeth::Counterexample)
            {
                assert!(replayed.contains(&case.name), "mutation {} is not replayed", case.name);
            }
        }
    };
}

#[cfg(mcp_auth_mutations)]
attack_replays! {
    // spec: PKCE-9, TOK-5
    pkce_attack_is_refused => "pkce";
    // spec: AZ-11, AZ-12, PKCE-9
    state_attack_is_refused => "state";
    // spec: AZ-20
    iss_attack_is_refused => "iss";
    // spec: AZ-3, AZ-4
    redirect_attack_is_refused => "redirect";
    // spec: RS-2, RS-5
    audience_attack_is_refused => "audience";
    // spec: TOK-6, TOK-7
    code_replay_is_refused => "single-use";
    // spec: RT-1
    rotated_refresh_token_is_refused => "rotation";
    // spec: RT-2
    refresh_replay_revokes => "revocation";
    // spec: RES-14
    resource_swap_is_refused => "resource";
    // spec: AZ-29, AZ-30
    consent_csrf_is_refused => "session";
    // spec: CLI-5, RS-6
    token_passthrough_is_refused => "token-target";
    // spec: PKCE-7, PKCE-10
    pkce_downgrade_is_refused => "pkce-required";
    // spec: JWT-9, RS-2
    forged_token_is_refused => "signature";
    // spec: RES-14
    refresh_for_another_resource_is_refused => "refresh-resource";
}
