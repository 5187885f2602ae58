//! The probe: grade someone else's MCP server (as OAuth resource server) and its authorization
//! server from outside, by requirement ID (`mcp-auth probe`).
//!
//! Every check is a rule of this crate: its requirement IDs (`spec/requirements.md`), its
//! level, the requests it sends (built from what discovery found) and a pure judge of the
//! answers. [`Probe`] is a sans-IO state machine: the driver asks it for the next request
//! ([`Probe::next_request`]), sends it (bounded in time) and hands back the answer
//! ([`Probe::answer`]); at the end [`Probe::finish`] gives the [`Report`]. The probe never
//! reads a clock: `now` is in its [`ProbeConfig`].
//!
//! A check that cannot tell (an input missing, a state-changing check without
//! [`ProbeConfig::allow_unsafe`], an answer that proves nothing) is [`Verdict::Skip`] with
//! the reason: the probe reports only what it observed.

mod checks_as;
mod checks_rs;
mod flow;
mod forge;
mod report;

use std::collections::VecDeque;

use crate::challenge::{BearerChallenge, parse_www_authenticate};
use crate::http::{HttpRequest, HttpResponse, Method};
use crate::jwt::Signer;
use crate::metadata::{
    ASM_SUFFIX, AuthorizationServerMetadata, PRM_SUFFIX, ProtectedResourceMetadata,
};
use crate::revision::Revision;
use crate::time::UnixTime;
use crate::uri::{well_known_insert, well_known_root};

pub use report::{render_json, render_junit, render_table};

/// The most requests one probe run sends (every check included).
pub const REQUESTS_MAX: usize = 400;

/// The most bytes of an answer's body shown in evidence.
pub const EVIDENCE_BODY_MAX: usize = 300;

/// The level of a requirement (BCP 14 keyword, normalised as in the catalogue).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Level {
    /// MUST, MUST NOT, REQUIRED.
    Must,
    /// SHOULD, SHOULD NOT, RECOMMENDED.
    Should,
    /// MAY, OPTIONAL.
    May,
}

impl Level {
    /// `MUST`, `SHOULD` or `MAY`.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Must => "MUST",
            Self::Should => "SHOULD",
            Self::May => "MAY",
        }
    }
}

/// What part of the deployment a check grades (the groups of the table).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Area {
    /// The MCP endpoint's answers without a valid token, and its metadata.
    Resource,
    /// Tokens the MCP server must refuse that anyone can build (no keys).
    ForgedTokens,
    /// Claim rules, with tokens signed by the AS's key (`--as-key`).
    Claims,
    /// The authorization server's metadata and its answers to bad requests.
    AuthorizationServer,
    /// Dynamic client registration policy (`--unsafe`).
    Registration,
    /// The authorization code flow and refresh tokens (`--unsafe`).
    Flow,
}

impl Area {
    /// The group's heading.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Resource => "MCP server (resource server)",
            Self::ForgedTokens => "forged tokens (no keys)",
            Self::Claims => "token claims (--as-key)",
            Self::AuthorizationServer => "authorization server",
            Self::Registration => "client registration (--unsafe)",
            Self::Flow => "authorization code flow (--unsafe)",
        }
    }
}

/// The grade of one check.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Verdict {
    /// The requirement held.
    Pass,
    /// A MUST did not hold.
    Fail {
        /// What was observed (requests and answers, secrets shortened).
        evidence: String,
        /// What to change, in one line.
        fix: String,
    },
    /// A SHOULD or MAY did not hold.
    Warn {
        /// What was observed.
        evidence: String,
        /// What to change, in one line.
        fix: String,
    },
    /// Not checked, and why.
    Skip {
        /// Why the probe could not tell.
        reason: String,
    },
}

impl Verdict {
    /// `PASS`, `FAIL`, `WARN` or `SKIP`.
    pub const fn as_str(&self) -> &'static str {
        match self {
            Self::Pass => "PASS",
            Self::Fail { .. } => "FAIL",
            Self::Warn { .. } => "WARN",
            Self::Skip { .. } => "SKIP",
        }
    }
}

/// One graded check.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Finding {
    /// The check's short name (stable, for `--only` and CI).
    pub name: &'static str,
    /// Its group.
    pub area: Area,
    /// The requirement IDs it grades.
    pub ids: &'static [&'static str],
    /// The level of those requirements.
    pub level: Level,
    /// What it checks, in a few words.
    pub title: &'static str,
    /// The grade.
    pub verdict: Verdict,
    /// The exchanges it made, shown (secrets shortened).
    pub exchanges: Vec<String>,
}

/// The outcome of a probe run.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct Report {
    /// The MCP endpoint probed.
    pub target: String,
    /// The revision the probe spoke.
    pub revision: String,
    /// Every finding, in the order checked.
    pub findings: Vec<Finding>,
    /// Requests sent.
    pub requests: usize,
}

impl Report {
    /// Did a MUST fail? (The command's exit status.)
    pub fn must_failed(&self) -> bool {
        self.findings
            .iter()
            .any(|f| matches!(f.verdict, Verdict::Fail { .. }))
    }

    /// The number of findings with this verdict (`"PASS"`, ...) and level.
    pub fn count(&self, verdict: &str, level: Level) -> usize {
        self.findings
            .iter()
            .filter(|f| f.verdict.as_str() == verdict && f.level == level)
            .count()
    }
}

/// What the probe is told.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct ProbeConfig {
    /// The MCP endpoint URL.
    pub mcp_url: String,
    /// The MCP revision to speak.
    pub revision: Revision,
    /// The current time (the probe mints tokens relative to it).
    pub now: UnixTime,
    /// The authorization server's signing key (test deployments): enables the claim checks.
    pub as_key: Option<Signer>,
    /// A client registered beforehand (`client_id`, optional secret) for the flow checks.
    pub client: Option<(String, Option<String>)>,
    /// Run the checks that change server state (registrations, flows).
    pub allow_unsafe: bool,
    /// Run only checks whose name or one of whose IDs starts with this prefix.
    pub only: Option<String>,
    /// A nonce for this run (random in the driver): names what the probe registers, and seeds
    /// its PKCE verifiers and `state` values.
    pub nonce: String,
}

impl ProbeConfig {
    /// A configuration with no key, no client, safe checks only.
    pub fn new(mcp_url: impl Into<String>, revision: Revision, now: UnixTime) -> Self {
        Self {
            mcp_url: mcp_url.into(),
            revision,
            now,
            as_key: None,
            client: None,
            allow_unsafe: false,
            only: None,
            nonce: "probe".into(),
        }
    }
}

/// A request the probe made and what came back (`Err`: the transport's failure).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Exchange {
    /// The request.
    pub request: HttpRequest,
    /// The answer, or why there was none.
    pub answer: Result<HttpResponse, String>,
}

impl Exchange {
    /// The answer, if any.
    pub fn response(&self) -> Option<&HttpResponse> {
        self.answer.as_ref().ok()
    }

    /// The status of the answer (0 when there was none).
    pub fn status(&self) -> u16 {
        self.response().map_or(0, |r| r.status)
    }

    /// The Bearer challenge of the answer, if it has a parsable one.
    pub fn bearer(&self) -> Option<BearerChallenge> {
        let r = self.response()?;
        let challenges = parse_www_authenticate(r.header_values("www-authenticate")).ok()?;
        BearerChallenge::from_challenges(&challenges).ok()?
    }

    /// The answer's JSON body, if it is JSON.
    pub fn json(&self) -> Option<serde_json::Value> {
        serde_json::from_slice(&self.response()?.body).ok()
    }

    /// The answer's JSON `error` member.
    pub fn oauth_error(&self) -> Option<String> {
        self.json()?.get("error")?.as_str().map(str::to_owned)
    }

    /// The exchange for a person: the request line and its notable headers and body, the
    /// status and notable headers and body of the answer, secrets shortened.
    pub fn show(&self) -> String {
        report::show_exchange(self)
    }
}

/// How the driver must send a request.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Send {
    /// An HTTP request; hand back its answer as it is (redirects not followed).
    Http(HttpRequest),
    /// An authorization request (a GET of the authorization URL): play the user (log in and
    /// approve as configured) and hand back the answer that redirects to the client (its
    /// `Location` carries the code or the error), not followed.
    UserAgent(HttpRequest),
}

impl Send {
    /// The request.
    pub fn request(&self) -> &HttpRequest {
        match self {
            Self::Http(r) | Self::UserAgent(r) => r,
        }
    }
}

/// What discovery found, shared by the checks.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct Context {
    /// The MCP endpoint URL as given.
    pub mcp_url: String,
    /// The revision spoken.
    pub revision: Revision,
    /// Now.
    pub now: UnixTime,
    /// The AS's signing key, if given.
    pub as_key: Option<Signer>,
    /// The pre-registered client, if given.
    pub client: Option<(String, Option<String>)>,
    /// State-changing checks are allowed.
    pub allow_unsafe: bool,
    /// The run's nonce.
    pub nonce: String,
    /// The MCP request without a token.
    pub unauthenticated: Option<Exchange>,
    /// The PRM fetched from the challenge's `resource_metadata`.
    pub prm_challenge: Option<Exchange>,
    /// The PRM at the path-inserted well-known URL (when it differs from the challenge's).
    pub prm_inserted: Option<Exchange>,
    /// The PRM at the root well-known URL (when it differs from both).
    pub prm_root: Option<Exchange>,
    /// The PRM document used (the first that parsed).
    pub prm: Option<ProtectedResourceMetadata>,
    /// The AS metadata request.
    pub asm_exchange: Option<Exchange>,
    /// The AS metadata document, if it parsed.
    pub asm: Option<AuthorizationServerMetadata>,
    /// The JWK Set request.
    pub jwks_exchange: Option<Exchange>,
    /// The client the flows use: the pre-registered one or the one registered (`--unsafe`).
    pub flow_client: Option<(String, Option<String>)>,
    /// The registration made for the flows.
    pub registration: Option<Exchange>,
}

impl Context {
    /// The issuer the PRM names first.
    pub fn issuer(&self) -> Option<&str> {
        self.prm
            .as_ref()?
            .authorization_servers
            .first()
            .map(String::as_str)
    }

    /// The resource the tokens are for: the PRM's `resource`, else the MCP URL.
    pub fn resource(&self) -> &str {
        self.prm
            .as_ref()
            .map_or(self.mcp_url.as_str(), |p| p.resource.as_str())
    }

    /// The path-inserted well-known PRM URL of the MCP endpoint.
    pub fn prm_inserted_url(&self) -> Option<String> {
        well_known_insert(&self.mcp_url, PRM_SUFFIX).ok()
    }

    /// The scope a valid token carries: the PRM's `scopes_supported`, else the challenge's.
    pub fn full_scope(&self) -> String {
        match &self.prm {
            Some(p) if !p.scopes_supported.is_empty() => p.scopes_supported.join(" "),
            _ => self
                .unauthenticated
                .as_ref()
                .and_then(Exchange::bearer)
                .and_then(|b| b.scope)
                .unwrap_or_default(),
        }
    }

    /// An MCP request with this `authorization` (a JSON-RPC `initialize`, or for 2026-07-28
    /// a stateless `server/discover`) and these extra headers.
    pub fn mcp_request(&self, authorization: Option<&str>) -> HttpRequest {
        mcp_post(&self.mcp_url, self.revision, authorization)
    }
}

/// An MCP POST as a client of `revision` opens with.
pub fn mcp_post(url: &str, revision: Revision, authorization: Option<&str>) -> HttpRequest {
    let version = revision.as_str();
    let body = if revision.stateless() {
        serde_json::json!({"jsonrpc": "2.0", "id": 1, "method": "server/discover", "params": {
            "_meta": {
                "io.modelcontextprotocol/protocolVersion": version,
                "io.modelcontextprotocol/clientCapabilities": {},
                "io.modelcontextprotocol/clientInfo": {"name": "mcp-auth-probe", "version": "0"},
            }
        }})
    } else {
        serde_json::json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
            "protocolVersion": version,
            "capabilities": {},
            "clientInfo": {"name": "mcp-auth-probe", "version": "0"},
        }})
    };
    let mut request = HttpRequest::new(Method::Post, url)
        .header("content-type", "application/json")
        .header("accept", "application/json, text/event-stream")
        .body(body.to_string());
    if revision.stateless() {
        request = request
            .header("mcp-protocol-version", version)
            .header("mcp-method", "server/discover");
    }
    if let Some(a) = authorization {
        request = request.header("authorization", a);
    }
    request
}

/// What a check's step decides.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(crate) enum Next {
    /// Send this, then call the step again with the answer appended.
    Send(Send),
    /// The check is over.
    Done(Outcome),
}

/// A judge's result, before the level turns a violation into FAIL or WARN.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(crate) enum Outcome {
    /// The requirement held.
    Pass,
    /// It did not: what was seen, and the fix.
    Violated(String, &'static str),
    /// The probe cannot tell.
    Skip(String),
}

/// What a check needs besides discovery.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) enum Needs {
    /// Nothing.
    Nothing,
    /// The AS's signing key.
    AsKey,
    /// `--unsafe`: it changes server state.
    Unsafe,
}

/// A check: a rule of the probe.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Check {
    pub name: &'static str,
    pub area: Area,
    pub ids: &'static [&'static str],
    pub level: Level,
    pub title: &'static str,
    pub needs: Needs,
    /// The next request given the answers so far, or the outcome.
    pub step: fn(&Context, &[Exchange]) -> Next,
}

/// Every check, in the order run.
fn all_checks() -> Vec<Check> {
    let mut checks = checks_rs::checks();
    checks.extend(forge::checks());
    checks.extend(checks_as::checks());
    checks.extend(flow::checks());
    checks
}

/// The names and IDs of every check the probe knows (for documentation and tests).
pub fn catalogue() -> Vec<(&'static str, &'static [&'static str], Level)> {
    all_checks()
        .iter()
        .map(|c| (c.name, c.ids, c.level))
        .collect()
}

/// Discovery steps, in order: each may send one request and stores its answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
enum Stage {
    Unauthenticated,
    PrmChallenge,
    PrmInserted,
    PrmRoot,
    Asm,
    Jwks,
    Register,
    Checks,
}

/// The probe's state machine (sans-IO): a plain value (checks are named by their index in
/// the probe's list, not held as functions).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Probe {
    ctx: Context,
    only: Option<String>,
    stage: Stage,
    queue: VecDeque<usize>,
    current: Option<(usize, Vec<Exchange>)>,
    outstanding: Option<Send>,
    findings: Vec<Finding>,
    sent: usize,
}

impl Probe {
    /// A probe of `config.mcp_url`.
    pub fn new(config: ProbeConfig) -> Self {
        let ctx = Context {
            mcp_url: config.mcp_url,
            revision: config.revision,
            now: config.now,
            as_key: config.as_key,
            flow_client: config.client.clone(),
            client: config.client,
            allow_unsafe: config.allow_unsafe,
            nonce: config.nonce,
            ..Context::default()
        };
        Self {
            ctx,
            only: config.only,
            stage: Stage::Unauthenticated,
            queue: VecDeque::new(),
            current: None,
            outstanding: None,
            findings: Vec::new(),
            sent: 0,
        }
    }

    /// What discovery found so far.
    pub fn context(&self) -> &Context {
        &self.ctx
    }

    fn selected(&self, check: &Check) -> bool {
        match &self.only {
            None => true,
            Some(prefix) => {
                check.name.starts_with(prefix.as_str())
                    || check.ids.iter().any(|id| id.starts_with(prefix.as_str()))
            }
        }
    }

    /// The discovery request of the current stage, if it sends one.
    fn discovery_request(&self) -> Option<Send> {
        let ctx = &self.ctx;
        let get = |url: &str| {
            Send::Http(HttpRequest::new(Method::Get, url).header("accept", "application/json"))
        };
        match self.stage {
            Stage::Unauthenticated => Some(Send::Http(ctx.mcp_request(None))),
            Stage::PrmChallenge => {
                let url = ctx.unauthenticated.as_ref()?.bearer()?.resource_metadata?;
                Some(get(&url))
            }
            Stage::PrmInserted => {
                let url = ctx.prm_inserted_url()?;
                let same = ctx
                    .prm_challenge
                    .as_ref()
                    .is_some_and(|e| e.request.url == url);
                (!same).then(|| get(&url))
            }
            Stage::PrmRoot => {
                let url = well_known_root(&ctx.mcp_url, PRM_SUFFIX).ok()?;
                let seen = [&ctx.prm_challenge, &ctx.prm_inserted]
                    .iter()
                    .any(|e| e.as_ref().is_some_and(|e| e.request.url == url));
                (!seen).then(|| get(&url))
            }
            Stage::Asm => {
                let url = well_known_insert(ctx.issuer()?, ASM_SUFFIX).ok()?;
                Some(get(&url))
            }
            Stage::Jwks => Some(get(ctx.asm.as_ref()?.jwks_uri.as_ref()?)),
            Stage::Register => {
                if !ctx.allow_unsafe || ctx.flow_client.is_some() {
                    return None;
                }
                let endpoint = ctx.asm.as_ref()?.registration_endpoint.as_ref()?;
                Some(Send::Http(flow::registration_request(ctx, endpoint)))
            }
            Stage::Checks => None,
        }
    }

    fn store_discovery(&mut self, exchange: Exchange) {
        let ctx = &mut self.ctx;
        let parse_prm = |e: &Exchange| {
            e.response()
                .filter(|r| r.status == 200)
                .and_then(|r| serde_json::from_slice::<ProtectedResourceMetadata>(&r.body).ok())
        };
        match self.stage {
            Stage::Unauthenticated => ctx.unauthenticated = Some(exchange),
            Stage::PrmChallenge | Stage::PrmInserted | Stage::PrmRoot => {
                if ctx.prm.is_none() {
                    ctx.prm = parse_prm(&exchange);
                }
                let slot = match self.stage {
                    Stage::PrmChallenge => &mut ctx.prm_challenge,
                    Stage::PrmInserted => &mut ctx.prm_inserted,
                    _ => &mut ctx.prm_root,
                };
                *slot = Some(exchange);
            }
            Stage::Asm => {
                ctx.asm = exchange
                    .response()
                    .filter(|r| r.status == 200)
                    .and_then(|r| serde_json::from_slice(&r.body).ok());
                ctx.asm_exchange = Some(exchange);
            }
            Stage::Jwks => ctx.jwks_exchange = Some(exchange),
            Stage::Register => {
                if exchange.status() == 201 || exchange.status() == 200 {
                    let json = exchange.json();
                    let field = |k: &str| {
                        json.as_ref()
                            .and_then(|j| j.get(k))
                            .and_then(|v| v.as_str())
                            .map(str::to_owned)
                    };
                    if let Some(id) = field("client_id") {
                        ctx.flow_client = Some((id, field("client_secret")));
                    }
                }
                ctx.registration = Some(exchange);
            }
            Stage::Checks => {}
        }
    }

    fn advance_stage(&mut self) {
        self.stage = match self.stage {
            Stage::Unauthenticated => Stage::PrmChallenge,
            Stage::PrmChallenge => Stage::PrmInserted,
            Stage::PrmInserted => Stage::PrmRoot,
            Stage::PrmRoot => Stage::Asm,
            Stage::Asm => Stage::Jwks,
            Stage::Jwks => Stage::Register,
            Stage::Register | Stage::Checks => {
                self.queue = all_checks()
                    .iter()
                    .enumerate()
                    .filter(|(_, c)| self.selected(c))
                    .map(|(i, _)| i)
                    .collect();
                Stage::Checks
            }
        };
    }

    fn finding(check: &Check, outcome: Outcome, exchanges: &[Exchange]) -> Finding {
        let shown: Vec<String> = exchanges.iter().map(Exchange::show).collect();
        // A server that limited the probe (429, 503) said nothing about the rule.
        let limited = exchanges
            .iter()
            .find(|e| matches!(e.status(), 429 | 503))
            .map(|e| e.status());
        // Nor did one that did not answer (a timeout, a reset connection).
        let unanswered = exchanges.iter().find_map(|e| e.answer.as_ref().err());
        let outcome = match (outcome, limited, unanswered) {
            (Outcome::Violated(..), Some(status), _) => Outcome::Skip(format!(
                "the server limited the probe's requests ({status}): run it again later"
            )),
            (Outcome::Violated(..), None, Some(why)) => {
                Outcome::Skip(format!("a request got no answer: {why}"))
            }
            (outcome, _, _) => outcome,
        };
        let verdict = match outcome {
            Outcome::Pass => Verdict::Pass,
            Outcome::Skip(reason) => Verdict::Skip { reason },
            Outcome::Violated(evidence, fix) => {
                let fix = fix.to_owned();
                if check.level == Level::Must {
                    Verdict::Fail { evidence, fix }
                } else {
                    Verdict::Warn { evidence, fix }
                }
            }
        };
        Finding {
            name: check.name,
            area: check.area,
            ids: check.ids,
            level: check.level,
            title: check.title,
            verdict,
            exchanges: shown,
        }
    }

    /// The next request to send, or `None` when the probe is over. Call [`Probe::answer`]
    /// with its answer before asking again.
    pub fn next_request(&mut self) -> Option<Send> {
        if let Some(send) = &self.outstanding {
            return Some(send.clone());
        }
        let checks = all_checks();
        loop {
            if self.stage != Stage::Checks {
                if self.sent < REQUESTS_MAX
                    && let Some(send) = self.discovery_request()
                {
                    self.sent += 1;
                    self.outstanding = Some(send.clone());
                    return Some(send);
                }
                self.advance_stage();
                continue;
            }
            let (index, exchanges) = match self.current.take() {
                Some(current) => current,
                None => {
                    let index = self.queue.pop_front()?;
                    let check = &checks[index];
                    let skip = match check.needs {
                        Needs::AsKey if self.ctx.as_key.is_none() => {
                            Some("needs the authorization server's signing key (--as-key PEM)")
                        }
                        Needs::Unsafe if !self.ctx.allow_unsafe => Some(
                            "changes server state (registers a client, runs a flow): run with --unsafe",
                        ),
                        _ => None,
                    };
                    if let Some(reason) = skip {
                        let outcome = Outcome::Skip(reason.into());
                        self.findings.push(Self::finding(check, outcome, &[]));
                        continue;
                    }
                    (index, Vec::new())
                }
            };
            let check = &checks[index];
            match (check.step)(&self.ctx, &exchanges) {
                Next::Send(send) if self.sent < REQUESTS_MAX => {
                    self.sent += 1;
                    self.outstanding = Some(send.clone());
                    self.current = Some((index, exchanges));
                    return Some(send);
                }
                Next::Send(_) => {
                    let outcome = Outcome::Skip(format!(
                        "the probe's request budget ({REQUESTS_MAX}) is spent"
                    ));
                    self.findings
                        .push(Self::finding(check, outcome, &exchanges));
                }
                Next::Done(outcome) => {
                    self.findings
                        .push(Self::finding(check, outcome, &exchanges));
                }
            }
        }
    }

    /// The answer to the request [`Probe::next_request`] gave (`Err`: the transport failed,
    /// with why).
    pub fn answer(&mut self, answer: Result<HttpResponse, String>) {
        let Some(send) = self.outstanding.take() else {
            return;
        };
        let exchange = Exchange {
            request: send.request().clone(),
            answer,
        };
        if self.stage == Stage::Checks {
            if let Some((_, exchanges)) = &mut self.current {
                exchanges.push(exchange);
            }
        } else {
            self.store_discovery(exchange);
            self.advance_stage();
        }
    }

    /// The report (call once [`Probe::next_request`] gave `None`).
    pub fn finish(self) -> Report {
        Report {
            revision: self.ctx.revision.as_str().to_owned(),
            target: self.ctx.mcp_url,
            findings: self.findings,
            requests: self.sent,
        }
    }
}

/// Helpers for judges.
pub(crate) fn answered(e: &Exchange) -> String {
    match &e.answer {
        Ok(r) => {
            let challenge = r
                .header_value("www-authenticate")
                .map(|c| format!(" WWW-Authenticate: {c}"))
                .unwrap_or_default();
            format!(
                "{} {}{challenge}",
                e.request.method.as_str(),
                short_status(r, &e.request.url)
            )
        }
        Err(why) => format!(
            "{} {}: no answer ({why})",
            e.request.method.as_str(),
            e.request.url
        ),
    }
}

fn short_status(r: &HttpResponse, url: &str) -> String {
    format!("{} → {}", crate::redact::shorten_url(url), r.status)
}

#[cfg(test)]
mod tests;
