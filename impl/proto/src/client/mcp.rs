//! The client at the MCP endpoint: the requests that carry JSON-RPC messages
//! ([`mcp_request`]), and what each answer means for the authorization
//! ([`Client::handle_mcp_response`]). A driver sends the request, feeds the answer in and does
//! what the [`McpOutcome`] says; it decides nothing itself.

use super::{Client, ClientError, State, challenged_scope, parse_bearer};
use crate::ErrorCode;
use crate::Revision;
use crate::challenge::BearerChallenge;
use crate::http::{HttpRequest, Method};
use crate::metadata::DOCUMENT_LEN_MAX;
use crate::types::ScopeSet;
use serde_json::{Value, json};

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
/// every later request, notifications included. [`mcp_post`] applies the rules of a
/// [`Revision`].
// spec: TRN-1, TRN-2
pub fn protocol_version_header(method: &str) -> Option<&'static str> {
    (method != "initialize").then_some(crate::MCP_PROTOCOL_VERSION)
}

/// The HTTP request that carries one JSON-RPC message (`method`, serialized as `body`) to the
/// MCP endpoint `url` in the 2025-06-18 form: see [`mcp_post`], which this is with
/// [`Revision::V2025_06_18`].
// spec: TRN-1, TRN-5, CLI-1, CLI-3
pub fn mcp_request(
    url: &str,
    method: &str,
    body: Vec<u8>,
    session_id: Option<&str>,
    authorization: Option<&str>,
) -> HttpRequest {
    post(
        Revision::V2025_06_18,
        url,
        method,
        None,
        body,
        session_id,
        authorization,
    )
}

/// The `_meta` member the client puts in the `params` of every request of a stateless
/// revision ([`Revision::stateless`]): the revision (`io.modelcontextprotocol/protocolVersion`,
/// equal to the `MCP-Protocol-Version` header), the client's capabilities
/// (`io.modelcontextprotocol/clientCapabilities`) and who it is
/// (`io.modelcontextprotocol/clientInfo`, `{name, version}`).
// spec: TRN-6
pub fn request_meta(revision: Revision, capabilities: &Value, client_info: &Value) -> Value {
    json!({
        META_PROTOCOL_VERSION: revision.as_str(),
        META_CLIENT_CAPABILITIES: capabilities,
        META_CLIENT_INFO: client_info,
    })
}

/// `_meta` key of the protocol version of a stateless request.
pub const META_PROTOCOL_VERSION: &str = "io.modelcontextprotocol/protocolVersion";
/// `_meta` key of the client capabilities of a stateless request.
pub const META_CLIENT_CAPABILITIES: &str = "io.modelcontextprotocol/clientCapabilities";
/// `_meta` key of the client's name and version in a stateless request.
pub const META_CLIENT_INFO: &str = "io.modelcontextprotocol/clientInfo";
/// `_meta` key of the server's name and version in a stateless `server/discover` result.
pub const META_SERVER_INFO: &str = "io.modelcontextprotocol/serverInfo";

/// The HTTP request that carries the JSON-RPC `message` (a request or a notification) to the
/// MCP endpoint `url` in the form of `revision`: a JSON POST that accepts JSON or an SSE
/// stream, with `authorization` (the value of [`Client::authorization_for`]) in the header,
/// never in the URL, and
///
/// - in a stateless revision ([`Revision::stateless`]): `MCP-Protocol-Version` on every POST,
///   `Mcp-Method` (the JSON-RPC method) on every POST, `Mcp-Name` for `tools/call` and
///   `prompts/get` (`params.name`) and `resources/read` (`params.uri`), no session id; and
///   in a request (not a notification) the `_meta` of [`request_meta`] merged into `params`
///   (keys the caller set in `params._meta` are kept);
/// - before: `MCP-Protocol-Version` on every POST but `initialize`, and the session id once
///   the server assigned one.
///
/// A header value that could not be sent (a name with CR, LF or other control characters)
/// is left out; the server then refuses the request rather than the client splitting a
/// header.
// spec: TRN-1, TRN-2, TRN-5, TRN-6, TRN-7, CLI-1, CLI-3
pub fn mcp_post(
    revision: Revision,
    url: &str,
    message: &Value,
    client: &StatelessClient,
    session_id: Option<&str>,
    authorization: Option<&str>,
) -> HttpRequest {
    let method = message.get("method").and_then(Value::as_str).unwrap_or("");
    let mut message = message.clone();
    let mut name = None;
    if revision.stateless() {
        name = mcp_name(method, message.get("params")).map(str::to_owned);
        if message.get("id").is_some() {
            let meta = request_meta(revision, &client.capabilities, &client.info);
            let params = message
                .as_object_mut()
                .map(|m| m.entry("params").or_insert_with(|| json!({})));
            if let Some(Value::Object(params)) = params {
                let entry = params.entry("_meta").or_insert_with(|| json!({}));
                if let (Value::Object(entry), Value::Object(meta)) = (entry, meta) {
                    for (k, v) in meta {
                        entry.entry(k).or_insert(v);
                    }
                }
            }
        }
    }
    let body = serde_json::to_vec(&message).unwrap_or_default();
    post(
        revision,
        url,
        method,
        name.as_deref(),
        body,
        session_id,
        authorization,
    )
}

/// What a client says about itself in a stateless request's `_meta` ([`request_meta`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StatelessClient {
    /// `io.modelcontextprotocol/clientCapabilities` (an object; `{}`: none).
    pub capabilities: Value,
    /// `io.modelcontextprotocol/clientInfo`: `{"name": .., "version": ..}`.
    pub info: Value,
}

impl StatelessClient {
    /// A client with no capabilities, named `name` at `version`.
    pub fn new(name: &str, version: &str) -> Self {
        Self {
            capabilities: json!({}),
            info: json!({"name": name, "version": version}),
        }
    }
}

/// The `Mcp-Name` of a stateless request: `params.name` of `tools/call` and `prompts/get`,
/// `params.uri` of `resources/read`; none for other methods.
// spec: TRN-7
pub fn mcp_name<'a>(method: &str, params: Option<&'a Value>) -> Option<&'a str> {
    let key = match method {
        "tools/call" | "prompts/get" => "name",
        "resources/read" => "uri",
        _ => return None,
    };
    params?.get(key)?.as_str()
}

/// Is `value` sendable as an HTTP header value (visible ASCII, spaces and tabs)?
fn header_value_ok(value: &str) -> bool {
    value
        .bytes()
        .all(|b| b == b'\t' || (0x20..0x7f).contains(&b))
}

fn post(
    revision: Revision,
    url: &str,
    method: &str,
    name: Option<&str>,
    body: Vec<u8>,
    session_id: Option<&str>,
    authorization: Option<&str>,
) -> HttpRequest {
    let mut request = HttpRequest::new(Method::Post, url)
        .header("content-type", "application/json")
        .header("accept", "application/json, text/event-stream")
        .body(body);
    if revision.stateless() {
        request = request.header("mcp-protocol-version", revision.as_str());
        if header_value_ok(method) {
            request = request.header("mcp-method", method);
        }
        if let Some(name) = name.filter(|n| header_value_ok(n)) {
            request = request.header("mcp-name", name);
        }
    } else {
        if method != "initialize" {
            request = request.header("mcp-protocol-version", revision.as_str());
        }
        if let Some(session) = session_id {
            request = request.header("mcp-session-id", session);
        }
    }
    if let Some(authorization) = authorization {
        request = request.header("authorization", authorization);
    }
    request
}

/// Where to resume an SSE response stream that ended before the awaited JSON-RPC response
/// (Streamable HTTP resumability, SEP-1699): the last event id the server sent, and how long
/// to wait before reconnecting.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct SseResume {
    /// The `id` of the last event that carried one (sent back as `Last-Event-ID`).
    pub last_event_id: String,
    /// The server's latest `retry` (milliseconds), capped at [`SSE_RETRY_MAX_MS`];
    /// [`SSE_RETRY_DEFAULT_MS`] when it sent none.
    pub retry_ms: u64,
}

/// The wait before resuming when the server named none.
pub const SSE_RETRY_DEFAULT_MS: u64 = 1_000;
/// The longest wait before resuming a stream, whatever `retry` says.
pub const SSE_RETRY_MAX_MS: u64 = 3_000;
/// How often one request's response stream is resumed at most.
pub const SSE_RESUMES_MAX: u32 = 3;
/// The longest event id taken (longer ones are not resumed from).
const SSE_EVENT_ID_MAX: usize = 256;

/// Whether a response stream that ended (`stream`, the SSE bytes received) without the
/// awaited response can be resumed, and how: only when the server gave its events ids (a
/// server that did not offers nothing to resume), after `resumed` earlier resumptions of the
/// same request fewer than [`SSE_RESUMES_MAX`].
// spec: TRN-10
pub fn sse_resume(stream: &[u8], resumed: u32) -> Option<SseResume> {
    if resumed >= SSE_RESUMES_MAX {
        return None;
    }
    let text = String::from_utf8_lossy(stream);
    let mut last_event_id = None;
    let mut retry_ms = None;
    for line in text.lines() {
        let (field, value) = line.split_once(':').unwrap_or((line, ""));
        let value = value.strip_prefix(' ').unwrap_or(value);
        match field {
            // An id with NUL is ignored (WHATWG HTML, SSE "id" field).
            "id" if !value.contains('\0') => last_event_id = Some(value.to_owned()),
            "retry" if !value.is_empty() && value.bytes().all(|b| b.is_ascii_digit()) => {
                retry_ms = Some(value.parse::<u64>().unwrap_or(u64::MAX));
            }
            _ => {}
        }
    }
    let last_event_id = last_event_id.filter(|id| {
        !id.is_empty()
            && id.len() <= SSE_EVENT_ID_MAX
            && id.bytes().all(|b| (0x20..0x7f).contains(&b))
    })?;
    Some(SseResume {
        last_event_id,
        retry_ms: retry_ms
            .unwrap_or(SSE_RETRY_DEFAULT_MS)
            .min(SSE_RETRY_MAX_MS),
    })
}

/// The GET that resumes the response stream of `post` (a request of [`mcp_post`]) after
/// `last_event_id`: the same URL, `Accept: text/event-stream`, `Last-Event-ID`, and the
/// `MCP-Protocol-Version`, `Mcp-Session-Id` and `Authorization` of the POST.
// spec: TRN-10, CLI-1
pub fn sse_resume_request(post: &HttpRequest, last_event_id: &str) -> HttpRequest {
    let mut request = HttpRequest::new(Method::Get, post.url.clone())
        .header("accept", "text/event-stream")
        .header("last-event-id", last_event_id);
    for name in ["mcp-protocol-version", "mcp-session-id", "authorization"] {
        if let Some(value) = post.header_str(name) {
            request = request.header(name, value);
        }
    }
    request
}

/// What to do after a `server/discover` answer, from [`negotiate`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Negotiated {
    /// The server speaks this stateless revision: use the stateless form for every request.
    Stateless(Revision),
    /// The server refused the version with `-32022` and listed this stateless one: send
    /// `server/discover` again with it (at most once, see [`negotiate`]).
    Retry(Revision),
    /// The server does not speak a stateless revision the client speaks: fall back to
    /// `initialize` (and sessions) with this revision.
    Initialize(Revision),
}

/// How many `server/discover` requests one negotiation sends at most (the first and one
/// retry after `-32022`).
pub const DISCOVER_ATTEMPTS: usize = 2;

/// Version negotiation of a client whose newest revision is `max`, after `attempts`
/// `server/discover` requests (stateless form, the latest with the revision it named) were
/// answered, the latest with `status` and `body` (an authorization status was handled
/// before: [`Client::handle_mcp_response`]).
///
/// - A JSON-RPC result whose `supportedVersions` lists a stateless revision ≤ `max`: the
///   newest of them ([`Negotiated::Stateless`]).
/// - A `-32022` error (unsupported version) whose `data.supported` lists one, and fewer than
///   [`DISCOVER_ATTEMPTS`] attempts: [`Negotiated::Retry`] with the newest of them.
/// - Anything else (a result listing no such revision, `-32022` without one, `-32601` method
///   not found, another 4xx, a body that is not JSON-RPC): [`Negotiated::Initialize`] with
///   the newest revision ≤ `max` that has `initialize` ([`initialize_revision`]), and among
///   those one the server listed, if it listed any.
// spec: TRN-8
pub fn negotiate(max: Revision, attempts: usize, status: u16, body: &[u8]) -> Negotiated {
    let value: Option<Value> = (body.len() <= DOCUMENT_LEN_MAX)
        .then(|| serde_json::from_slice(body).ok())
        .flatten();
    let listed = |list: Option<&Value>| -> Vec<Revision> {
        list.and_then(Value::as_array)
            .into_iter()
            .flatten()
            .take(LISTED_MAX)
            .filter_map(Value::as_str)
            .filter_map(|v| Revision::from_header(v.as_bytes()))
            .filter(|r| *r <= max)
            .collect()
    };
    let newest_stateless = |list: &[Revision]| list.iter().copied().filter(|r| r.stateless()).max();
    let result = value.as_ref().and_then(|v| v.get("result"));
    let error = value.as_ref().and_then(|v| v.get("error"));
    let supported = if (200..300).contains(&status) && result.is_some() {
        let supported = listed(result.and_then(|r| r.get("supportedVersions")));
        if let Some(r) = newest_stateless(&supported) {
            return Negotiated::Stateless(r);
        }
        supported
    } else if error.and_then(|e| e.get("code")).and_then(Value::as_i64)
        == Some(UNSUPPORTED_PROTOCOL_VERSION)
    {
        let supported = listed(
            error
                .and_then(|e| e.get("data"))
                .and_then(|d| d.get("supported")),
        );
        if let Some(r) = newest_stateless(&supported)
            && attempts < DISCOVER_ATTEMPTS
        {
            return Negotiated::Retry(r);
        }
        supported
    } else {
        Vec::new()
    };
    let fallback = supported
        .iter()
        .copied()
        .filter(|r| !r.stateless())
        .max()
        .unwrap_or_else(|| initialize_revision(max));
    Negotiated::Initialize(fallback)
}

/// The JSON-RPC error code of an unsupported protocol version (2026-07-28).
pub const UNSUPPORTED_PROTOCOL_VERSION: i64 = -32022;
/// How many entries of a server's version list are looked at.
const LISTED_MAX: usize = 64;

/// The newest revision ≤ `max` that starts with `initialize` (not stateless).
// spec: TRN-8
pub fn initialize_revision(max: Revision) -> Revision {
    Revision::ALL
        .into_iter()
        .filter(|r| *r <= max && !r.stateless())
        .max()
        .unwrap_or_default()
}

/// The revision the session runs at after `initialize` proposed `proposed` and the server
/// answered `protocolVersion` `answered`: the server's when this crate implements it, it is
/// not newer than the proposal and has `initialize`; else the proposal (a server answering a
/// version the client does not know is left to fail on its first request).
// spec: TRN-8
pub fn initialized_revision(proposed: Revision, answered: Option<&str>) -> Revision {
    answered
        .and_then(|a| Revision::from_header(a.as_bytes()))
        .filter(|r| *r <= proposed && !r.stateless())
        .unwrap_or(proposed)
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
