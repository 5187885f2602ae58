//! The client at the MCP endpoint: the requests that carry JSON-RPC messages
//! ([`mcp_request`]), and what each answer means for the authorization
//! ([`Client::handle_mcp_response`]). A driver sends the request, feeds the answer in and does
//! what the [`McpOutcome`] says; it decides nothing itself.

use super::{Client, ClientError, State, challenged_scope, parse_bearer};
use crate::ErrorCode;
use crate::challenge::BearerChallenge;
use crate::http::{HttpRequest, Method};
use crate::types::ScopeSet;

/// What an answer of the MCP server means, from [`Client::handle_mcp_response`]. After
/// [`McpOutcome::Refresh`], [`McpOutcome::Reauthorize`] and [`McpOutcome::Rediscover`] the
/// client has already started the flow: drive it ([`Client::poll_action`]) to
/// [`super::Action::Authorized`], then send the MCP request again.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum McpOutcome {
    /// A 2xx: the answer is the server's; use it.
    Done,
    /// A 401 while the client holds a refresh token it has not yet tried for this request:
    /// the refresh request is the next [`super::Action::Send`], before any rediscovery. If the
    /// authorization server refuses it, the client discovers again from the 401's challenge
    /// by itself, as after [`McpOutcome::Rediscover`] (when [`super::ClientConfig::reauthorize`]
    /// allows one more authorization; else the flow fails with the token endpoint's error).
    Refresh,
    /// A 403 `insufficient_scope` (step-up): the client authorizes again, from discovery with
    /// the challenge, for `scope`: the scopes it holds and those the challenge names.
    Reauthorize {
        /// The union of the held and the challenged scopes, as requested.
        scope: ScopeSet,
    },
    /// A 401 and no refresh to try (no refresh token, or the refreshed token was refused
    /// too): the client authorizes again, from discovery with the challenge.
    Rediscover,
    /// Stop: hand the answer back to the caller (or, for [`McpFailure::Flow`], the error).
    Fail(McpFailure),
}

/// Why [`Client::handle_mcp_response`] stopped.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum McpFailure {
    /// The status is nothing authorization can fix (400, 404, 5xx, ...).
    Status {
        /// The HTTP status.
        status: u16,
    },
    /// A 403 without `insufficient_scope`: no scope would change the answer.
    Forbidden,
    /// A 403 `insufficient_scope` that names no scope the tokens lack: the server refuses a
    /// scope they were granted (or names none), and authorizing again cannot help.
    ScopeAlreadyGranted {
        /// The scopes the challenge named.
        scope: ScopeSet,
    },
    /// A step-up for scopes this request already stepped up for, or fewer (the authorization
    /// server granted less than asked, or the server keeps refusing).
    StepUpRepeated {
        /// The scopes asked for again.
        scope: ScopeSet,
    },
    /// The request already sent the user to authorize [`super::ClientConfig::reauthorize`]
    /// times.
    ReauthorizeLimit,
    /// The flow cannot start: the challenge does not parse, or names a URL the client may not
    /// fetch (the client is failed with this error).
    Flow(ClientError),
}

/// What one MCP request has tried so far; reset when it ends ([`McpOutcome::Done`],
/// [`McpOutcome::Fail`], or a failed flow).
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub(super) struct Retries {
    /// The refresh token was tried.
    pub(super) refreshed: bool,
    /// How often the user was sent to authorize again.
    pub(super) reauthorized: u32,
    /// The scopes of this request's step-ups (at most [`super::ClientConfig::reauthorize`]).
    pub(super) step_ups: Vec<ScopeSet>,
}

/// The `MCP-Protocol-Version` header to send with a request carrying the JSON-RPC `method`:
/// none with `initialize` (the version is negotiated in its body), the version this client
/// speaks ([`crate::MCP_PROTOCOL_VERSION`], the one it proposes and our servers agree to) with
/// every later request, notifications included.
// spec: TRN-1, TRN-2
pub fn protocol_version_header(method: &str) -> Option<&'static str> {
    (method != "initialize").then_some(crate::MCP_PROTOCOL_VERSION)
}

/// The HTTP request that carries one JSON-RPC message (`method`, serialized as `body`) to the
/// MCP endpoint `url`: a JSON POST that accepts JSON or an SSE stream, with
/// [`protocol_version_header`], the session id once the server assigned one, and
/// `authorization` (the value of [`Client::authorization_for`]) in the header, never in the URL.
// spec: TRN-1, TRN-5, CLI-1, CLI-3
pub fn mcp_request(
    url: &str,
    method: &str,
    body: Vec<u8>,
    session_id: Option<&str>,
    authorization: Option<&str>,
) -> HttpRequest {
    let mut request = HttpRequest::new(Method::Post, url)
        .header("content-type", "application/json")
        .header("accept", "application/json, text/event-stream")
        .body(body);
    if let Some(version) = protocol_version_header(method) {
        request = request.header("mcp-protocol-version", version);
    }
    if let Some(session) = session_id {
        request = request.header("mcp-session-id", session);
    }
    if let Some(authorization) = authorization {
        request = request.header("authorization", authorization);
    }
    request
}

impl Client {
    /// Judge the MCP server's answer to a request sent with [`Client::authorization_for`]:
    /// its status and `WWW-Authenticate` values.
    ///
    /// - 2xx: [`McpOutcome::Done`].
    /// - 401: [`McpOutcome::Refresh`] if the client holds a refresh token not yet tried for
    ///   this request, else [`McpOutcome::Rediscover`].
    /// - 403 `insufficient_scope`: [`McpOutcome::Reauthorize`] for the union of the held and
    ///   the challenged scopes, unless that asks for nothing new or repeats this request's
    ///   step-up.
    /// - Anything else: [`McpOutcome::Fail`].
    ///
    /// Authorizing again while holding tokens (after a 401, or a step-up) happens at most
    /// [`super::ClientConfig::reauthorize`] times per request; the refresh at most once. A
    /// request ends with `Done` or `Fail`, so the retries of one request are bounded and the
    /// next request starts afresh. The first authorization (no tokens yet) is not counted.
    // spec: ERR-10, DISC-10
    pub fn handle_mcp_response<'a>(
        &mut self,
        status: u16,
        www_authenticate: impl IntoIterator<Item = &'a str>,
    ) -> McpOutcome {
        let outcome = match status {
            200..=299 => McpOutcome::Done,
            401 | 403 => match parse_bearer(www_authenticate) {
                None => {
                    self.fail(ClientError::BadChallenge);
                    McpOutcome::Fail(McpFailure::Flow(ClientError::BadChallenge))
                }
                Some(challenge) if status == 401 => self.on_mcp_unauthorized(&challenge),
                Some(challenge) => self.on_mcp_forbidden(&challenge),
            },
            _ => McpOutcome::Fail(McpFailure::Status { status }),
        };
        if matches!(outcome, McpOutcome::Done | McpOutcome::Fail(_)) {
            self.retries = Retries::default();
        }
        outcome
    }

    /// Whether the client holds tokens, so that a new authorization is one more.
    fn holds_tokens(&self) -> bool {
        matches!(self.state, State::Authorized { .. })
    }

    /// One more authorization for this request, if allowed: count it.
    fn count_reauthorization(&mut self) -> bool {
        if !self.holds_tokens() {
            return true;
        }
        if self.retries.reauthorized >= self.config.reauthorize {
            return false;
        }
        self.retries.reauthorized += 1;
        true
    }

    /// `outcome` once discovery has started, or the flow's error.
    fn started(&self, outcome: McpOutcome) -> McpOutcome {
        match &self.state {
            State::Failed(e) => McpOutcome::Fail(McpFailure::Flow(e.clone())),
            _ => outcome,
        }
    }

    /// A 401: refresh once, else authorize again from the challenge.
    // spec: ERR-10, RT-10
    fn on_mcp_unauthorized(&mut self, challenge: &BearerChallenge) -> McpOutcome {
        let refreshable = matches!(
            &self.state,
            State::Authorized { tokens } if tokens.refresh_token.is_some()
        );
        if refreshable && !self.retries.refreshed {
            self.retries.refreshed = true;
            self.refresh(Some(challenge.clone()));
            return McpOutcome::Refresh;
        }
        if !self.count_reauthorization() {
            return McpOutcome::Fail(McpFailure::ReauthorizeLimit);
        }
        self.rediscover(challenge);
        self.started(McpOutcome::Rediscover)
    }

    /// A 403: step up, from the challenge, for the held and the challenged scopes.
    fn on_mcp_forbidden(&mut self, challenge: &BearerChallenge) -> McpOutcome {
        if challenge.error.as_deref() != Some(ErrorCode::InsufficientScope.as_str()) {
            return McpOutcome::Fail(McpFailure::Forbidden);
        }
        let challenged = challenged_scope(challenge).unwrap_or_default();
        let held = match &self.state {
            State::Authorized { tokens } => tokens
                .scope
                .as_deref()
                .and_then(|s| ScopeSet::parse(s).ok())
                .unwrap_or_default(),
            _ => ScopeSet::default(),
        };
        if challenged.is_subset(&held) {
            return McpOutcome::Fail(McpFailure::ScopeAlreadyGranted { scope: challenged });
        }
        let scope = ScopeSet::from_tokens(held.iter().chain(challenged.iter()));
        if self.retries.step_ups.iter().any(|s| scope.is_subset(s)) {
            return McpOutcome::Fail(McpFailure::StepUpRepeated { scope });
        }
        if !self.count_reauthorization() {
            return McpOutcome::Fail(McpFailure::ReauthorizeLimit);
        }
        self.retries.step_ups.push(scope.clone());
        self.discover(challenge, Some(scope.clone()));
        self.started(McpOutcome::Reauthorize { scope })
    }
}
