//! Model paths as data, and what the core answered along them: the material for replaying the
//! model on the real servers (`impl/mcp-auth/tests/model_replay.rs`).
//!
//! - [`example`] and `counterexample` give a path as its list of [`Action`]s: the example of
//!   a `sometimes` property (the honest flow), or the counterexample a mutation yields (with
//!   the cfg `mcp_auth_mutations` only).
//! - [`observe`] runs a path in a model with every defense on and records, step by step, every
//!   answer of the core: each exchange with an authorization server or an MCP server, each
//!   callback handed to a client, and where each client stands afterwards.
//!
//! An [`Observation`] is protocol-level and location-free: parties by role ([`Role`],
//! [`Endpoint`]), requests by method and path, answers by status, `error` and
//! `error_description` (which name the core's `Rejection` one to one), and minted values
//! ([`Minted`]) kept apart, so that a replay against servers with other URLs, keys and entropy
//! can compare [`Observation::summary`] and map the model's values to its own by role.
//!
//! Recording uses a thread-local log that is off except inside [`observe`]: the checker never
//! pays more than one flag test per hook.

use std::cell::RefCell;
use std::fmt::Write as _;

use mcp_auth_proto::challenge::parse_www_authenticate;
use mcp_auth_proto::client::{Action as ClientAction, Client, ClientError};
use mcp_auth_proto::http::HttpResponse;
use stateright::Model;

#[cfg(mcp_auth_mutations)]
use crate::mutation::MutationCase;
use crate::report::{self, RunOptions};
use crate::url::{query_map, split_url};
use crate::{Action, Config, World, properties};

thread_local! {
    static LOG: RefCell<Option<Vec<Observation>>> = const { RefCell::new(None) };
}

/// Record an observation if [`observe`] is recording on this thread (`f` runs only then).
pub(crate) fn record(f: impl FnOnce() -> Observation) {
    let on = LOG.with(|log| log.borrow().is_some());
    if on {
        let observation = f();
        LOG.with(|log| {
            if let Some(v) = log.borrow_mut().as_mut() {
                v.push(observation);
            }
        });
    }
}

fn start_recording() {
    LOG.with(|log| *log.borrow_mut() = Some(Vec::new()));
}

fn take_recording() -> Vec<Observation> {
    LOG.with(|log| log.borrow_mut().take()).unwrap_or_default()
}

/// Who sent a request.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Role {
    /// Honest client session `n` (its client process).
    Session(u8),
    /// The attacker's own code (token requests, tokens presented, codes injected).
    Attacker,
    /// A browser logged in at the honest AS as this user (`alice` or `mallory`).
    Browser(String),
}

impl Role {
    pub(crate) fn of(party: crate::Party) -> Self {
        match party {
            crate::Party::Session(n) => Self::Session(n),
            crate::Party::Attacker => Self::Attacker,
        }
    }
}

/// Who answered.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Endpoint {
    /// The honest authorization server.
    HonestAs,
    /// The attacker's authorization server.
    EvilAs,
    /// The honest MCP server.
    HonestRs,
    /// The malicious MCP server.
    EvilRs,
    /// Session `n`'s client, handed a callback (answered by the client core, not over HTTP).
    Client(u8),
    /// Nobody known.
    Unknown,
}

/// Where an authorization response redirected to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum RedirectTo {
    /// Session `n`'s callback (its loopback redirect URI).
    Session(u8),
    /// The attacker's redirect URI.
    Attacker,
    /// Anywhere else.
    Other,
}

/// The protocol-relevant part of an answer.
#[derive(Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Answer {
    /// HTTP status (0 for a callback handed to a client core).
    pub status: u16,
    /// The OAuth `error` (JSON body, `WWW-Authenticate`, error page or redirect), or the
    /// client's error kind for a callback.
    pub error: Option<String>,
    /// The `error_description` (the core's `Rejection`, one to one).
    pub description: Option<String>,
    /// The redirect target of a 3xx.
    pub redirect: Option<RedirectTo>,
}

/// Values an answer minted (different on every run: compared by presence, mapped by role).
#[derive(Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Minted {
    /// A registered `client_id`.
    pub client_id: Option<String>,
    /// An authorization code (in a redirect's query).
    pub code: Option<String>,
    /// An access token.
    pub access_token: Option<String>,
    /// A refresh token.
    pub refresh_token: Option<String>,
}

/// One exchange (or callback) and its answer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Observation {
    /// The sender.
    pub from: Role,
    /// The answering party.
    pub to: Endpoint,
    /// `METHOD /path` (no query).
    pub request: String,
    /// The answer.
    pub answer: Answer,
    /// What it minted.
    pub minted: Minted,
}

impl Observation {
    /// Everything protocol-relevant, on one line: parties, request, status, error, description,
    /// redirect target, and which values were minted (not the values).
    pub fn summary(&self) -> String {
        let mut s = format!(
            "{:?} → {:?}: {} → {}",
            self.from, self.to, self.request, self.answer.status
        );
        if let Some(e) = &self.answer.error {
            let _ = write!(s, " {e}");
        }
        if let Some(d) = &self.answer.description {
            let _ = write!(s, " ({d})");
        }
        if let Some(r) = &self.answer.redirect {
            let _ = write!(s, " redirect to {r:?}");
        }
        let m = &self.minted;
        for (name, value) in [
            ("client_id", &m.client_id),
            ("code", &m.code),
            ("access_token", &m.access_token),
            ("refresh_token", &m.refresh_token),
        ] {
            if value.is_some() {
                let _ = write!(s, " +{name}");
            }
        }
        s
    }
}

fn quoted_after<'a>(text: &'a str, start: &str, end: &str) -> Option<&'a str> {
    let from = text.find(start)? + start.len();
    let len = text[from..].find(end)?;
    Some(&text[from..from + len])
}

pub(crate) fn unescape_html(s: &str) -> String {
    s.replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&#39;", "'")
        .replace("&amp;", "&")
}

/// The OAuth `error` and the description an HTML page of the AS shows: the error page (no
/// way back to the client) or the page that informs the user and links back to the client.
fn error_page(html: &str) -> Option<(String, String)> {
    if html.contains("<h1>Authorization error</h1>") {
        let description = quoted_after(html, "<p class=\"error\">", ".</p>")?;
        let code = quoted_after(html, "Error code <code>", "</code>")?;
        Some((code.to_owned(), unescape_html(description)))
    } else if html.contains("<h1>This request cannot be completed</h1>") {
        let description = quoted_after(html, "<p class=\"error\">", ". <span")?;
        let code = quoted_after(html, "<span class=\"muted\">(", ")</span>")?;
        Some((code.to_owned(), unescape_html(description)))
    } else {
        None
    }
}

/// The answer of an HTTP response: `error` and `error_description` from a JSON body, else from
/// the `WWW-Authenticate` Bearer challenge, else from the AS's HTML error pages, else from a
/// redirect's query; `redirect` classifies a 3xx `Location` (without its query).
pub fn answer_of(response: &HttpResponse, redirect: impl Fn(&str) -> RedirectTo) -> Answer {
    let mut answer = Answer {
        status: response.status,
        ..Answer::default()
    };
    let json: Option<serde_json::Value> = serde_json::from_slice(&response.body).ok();
    let field = |name: &str| {
        json.as_ref()
            .and_then(|v| v.get(name))
            .and_then(serde_json::Value::as_str)
            .map(str::to_owned)
    };
    let challenge = parse_www_authenticate(response.header_values("www-authenticate"))
        .ok()
        .and_then(|cs| cs.into_iter().find(|c| c.is_scheme("bearer")));
    let location = response.header_value("location");
    if let Some(error) = field("error") {
        answer.error = Some(error);
        answer.description = field("error_description");
    } else if let Some(c) = challenge.as_ref().filter(|c| c.param("error").is_some()) {
        answer.error = c.param("error").map(str::to_owned);
        answer.description = c.param("error_description").map(str::to_owned);
    } else if let Some((code, description)) = std::str::from_utf8(&response.body)
        .ok()
        .and_then(error_page)
    {
        answer.error = Some(code);
        answer.description = Some(description);
    } else if let Some(location) = location {
        let query = query_map(location.split_once('?').map_or("", |(_, q)| q));
        answer.error = query.get("error").cloned();
        answer.description = query.get("error_description").cloned();
    }
    if (300..400).contains(&response.status)
        && let Some(location) = location
    {
        answer.redirect = Some(redirect(location.split('?').next().unwrap_or("")));
    }
    answer
}

/// The answer a resource server gives to an MCP request: 200 when the core accepted the
/// token, else the challenge's status and its `WWW-Authenticate` `error`/`error_description`.
pub fn authentication_answer<T>(result: &Result<T, HttpResponse>) -> Answer {
    match result {
        Ok(_) => Answer {
            status: 200,
            ..Answer::default()
        },
        Err(response) => answer_of(response, |_| RedirectTo::Other),
    }
}

/// A client error's kind, without the URLs some variants carry.
pub fn client_error_kind(error: &ClientError) -> String {
    match error {
        ClientError::ResourceMismatch { .. } => "ResourceMismatch".into(),
        ClientError::IssuerMismatch { .. } => "IssuerMismatch".into(),
        other => format!("{other:?}"),
    }
}

/// The answer of a client core to a callback: status 0, `error` its error kind.
pub fn callback_answer(result: &Result<(), ClientError>) -> Answer {
    Answer {
        status: 0,
        error: result.as_ref().err().map(client_error_kind),
        ..Answer::default()
    }
}

/// What an answer minted: `client_id`, `access_token`, `refresh_token` from a JSON body, `code`
/// from a redirect's query.
pub fn minted_of(response: &HttpResponse) -> Minted {
    let json: Option<serde_json::Value> = serde_json::from_slice(&response.body).ok();
    let field = |name: &str| {
        json.as_ref()
            .and_then(|v| v.get(name))
            .and_then(serde_json::Value::as_str)
            .map(str::to_owned)
    };
    let code = response.header_value("location").and_then(|l| {
        query_map(l.split_once('?').map_or("", |(_, q)| q))
            .get("code")
            .cloned()
    });
    Minted {
        client_id: field("client_id"),
        code,
        access_token: field("access_token"),
        refresh_token: field("refresh_token"),
    }
}

/// `METHOD /path` of a request URL (absolute or a bare path).
pub fn request_line(method: &str, url: &str) -> String {
    let path = split_url(url).map_or_else(
        || url.split('?').next().unwrap_or("").to_owned(),
        |(_, path, _)| path,
    );
    format!("{method} {path}")
}

/// Where a client stands: `browser`, `send METHOD /path to ENDPOINT`, `authorized`,
/// `failed: KIND` or `idle`. `classify` names the endpoint of a URL.
pub fn phase(client: &Client, classify: impl Fn(&str) -> Endpoint) -> String {
    match client.poll_action() {
        ClientAction::OpenBrowser(_) => "browser".into(),
        ClientAction::Send(request) => format!(
            "send {} to {:?}",
            request_line(request.method.as_str(), &request.url),
            classify(&request.url)
        ),
        ClientAction::Authorized(_) => "authorized".into(),
        ClientAction::Failed(e) => format!("failed: {}", client_error_kind(&e)),
        ClientAction::Idle => "idle".into(),
    }
}

/// A path of the model.
#[derive(Clone, Debug)]
pub struct ModelPath {
    /// The property it is an example or a counterexample of.
    pub property: &'static str,
    /// The mutation it was found with (`None`: every defense on; a mutation needs the cfg
    /// `mcp_auth_mutations`).
    pub mutation: Option<&'static str>,
    /// Its actions, in order, from the initial state.
    pub actions: Vec<Action>,
}

impl ModelPath {
    /// The configuration the path was found in.
    ///
    /// # Panics
    ///
    /// If the path was found with a mutation and this build has none (see
    /// [`crate::MUTATIONS_BUILD_ENV`]).
    pub fn config(&self) -> Config {
        let cfg = Config::small();
        #[cfg(mcp_auth_mutations)]
        let cfg = match self.mutation.and_then(crate::mutation::case) {
            Some(case) => case.configuration(&cfg),
            None => cfg,
        };
        #[cfg(not(mcp_auth_mutations))]
        if let Some(name) = self.mutation {
            panic!(
                "mutation {name}: this build has no mutations; build with {}",
                crate::MUTATIONS_BUILD_ENV
            );
        }
        cfg
    }

    /// Whether `actions` is a path of this path's model (every action enabled and a
    /// transition) that decides the property at its last state, and not before: an example
    /// reaches a state where it holds, a counterexample one where it fails.
    pub fn decides(&self, actions: &[Action]) -> bool {
        let model = self.config().into_model();
        let Some(property) = properties::all()
            .into_iter()
            .find(|p| p.name == self.property)
        else {
            return false;
        };
        let example = matches!(property.expectation, stateright::Expectation::Sometimes);
        let decided = |w: &World| (property.condition)(&model, w) == example;
        let mut w = model.initial();
        if decided(&w) {
            return false;
        }
        for (i, action) in actions.iter().enumerate() {
            let mut enabled = Vec::new();
            model.actions(&w, &mut enabled);
            if !enabled.contains(action) {
                return false;
            }
            let Some(next) = model.next_state(&w, action.clone()) else {
                return false;
            };
            w = next;
            if decided(&w) != (i + 1 == actions.len()) {
                return false;
            }
        }
        !actions.is_empty()
    }

    /// The same path with every action removed that it can do without (greedily, one at a
    /// time, last first, until none can go, keeping [`ModelPath::decides`]): the checker's
    /// breadth-first paths carry steps of other parties that the example or attack does not
    /// need. Values the remaining actions name (codes, tokens) come from per-party entropy
    /// streams, so they stay the same as long as the steps minting them stay; a step whose
    /// value a later step names can go only after that later step (hence last first).
    #[must_use]
    pub fn minimal(&self) -> Self {
        let mut actions = self.actions.clone();
        loop {
            let before = actions.len();
            for i in (0..actions.len()).rev() {
                let mut shorter = actions.clone();
                shorter.remove(i);
                if self.decides(&shorter) {
                    actions = shorter;
                }
            }
            if actions.len() == before {
                break;
            }
        }
        Self {
            actions,
            ..self.clone()
        }
    }
}

fn actions_of(trace: &[(World, Option<Action>)]) -> Vec<Action> {
    trace.iter().filter_map(|(_, a)| a.clone()).collect()
}

fn first_discovery(cfg: Config, property: &'static str) -> Option<Vec<Action>> {
    let options = RunOptions {
        threads: 1,
        stop_at: Some(property),
        timeout: None,
    };
    let outcome = report::run(cfg, &options);
    let result = outcome.result(property)?;
    result.trace.as_deref().map(actions_of)
}

/// The example path of a `sometimes` property on the small configuration, every defense on
/// (cut at its first state where the property holds).
pub fn example(property: &'static str) -> Option<ModelPath> {
    first_discovery(Config::small(), property).map(|actions| ModelPath {
        property,
        mutation: None,
        actions,
    })
}

/// The counterexample a mutation yields on its configuration (cut at its first
/// violating state).
#[cfg(mcp_auth_mutations)]
pub fn counterexample(case: &MutationCase) -> Option<ModelPath> {
    let cfg = case.configuration(&Config::small());
    first_discovery(cfg, case.property).map(|actions| ModelPath {
        property: case.property,
        mutation: Some(case.name),
        actions,
    })
}

/// What the model did at one step of a path.
#[derive(Clone, Debug)]
pub struct StepRecord {
    /// The action.
    pub action: Action,
    /// The action is among the model's enabled actions in the state it was taken from.
    pub enabled: bool,
    /// The action changed the state (else it was refused without effect, and the path goes
    /// on from the same state, as the model does).
    pub changed: bool,
    /// The core's answers, in order.
    pub observations: Vec<Observation>,
    /// Each session's [`phase`] after the step (`None`: not started).
    pub sessions: Vec<Option<String>>,
    /// The `always` properties violated after the step (empty with every defense on).
    pub violated: Vec<&'static str>,
}

/// A path run in the model.
#[derive(Clone, Debug)]
pub struct Observed {
    /// The exchanges of the initial state (the attacker's two registrations).
    pub initial: Vec<Observation>,
    /// One record per action.
    pub steps: Vec<StepRecord>,
}

/// Run `actions` from the initial state of `cfg`'s model, recording the core's answers at every
/// step. A step that changes nothing leaves the state as it was (as in the model, where it is
/// no transition); the next step starts from there.
pub fn observe(cfg: Config, actions: &[Action]) -> Observed {
    let model = cfg.into_model();
    let always: Vec<_> = properties::all()
        .into_iter()
        .filter(|p| matches!(p.expectation, stateright::Expectation::Always))
        .collect();
    start_recording();
    let mut w = model.initial();
    let initial = take_recording();
    let mut steps = Vec::new();
    for action in actions {
        let mut enabled = Vec::new();
        model.actions(&w, &mut enabled);
        let enabled = enabled.contains(action);
        start_recording();
        let next = model.next_state(&w, action.clone());
        let observations = take_recording();
        let changed = next.is_some();
        if let Some(next) = next {
            w = next;
        }
        let sessions = w
            .sessions
            .iter()
            .map(|s| {
                s.as_ref()
                    .map(|s| phase(&s.client, |u| model.endpoint_of(u)))
            })
            .collect();
        let violated = always
            .iter()
            .filter(|p| !(p.condition)(&model, &w))
            .map(|p| p.name)
            .collect();
        steps.push(StepRecord {
            action: action.clone(),
            enabled,
            changed,
            observations,
            sessions,
            violated,
        });
    }
    Observed { initial, steps }
}
