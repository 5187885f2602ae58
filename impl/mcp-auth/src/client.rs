//! The client: drives the core's [`mcp_auth_proto::client::Client`] over hyper-util's client,
//! with a loopback redirect listener (RFC 8252) and a headless mode that plays the user
//! against our own AS's consent form; then speaks MCP (JSON-RPC over Streamable HTTP, written
//! by hand over hyper: `server/discover` or `initialize`, tools/list, tools/call) with the
//! bearer token, in the form of the revision the core negotiated ([`McpClient::open`]).

use std::fmt;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use http_body_util::BodyExt;
use mcp_auth_layer::fetch::from_parts;
pub use mcp_auth_layer::fetch::{Http, TransportError};
use mcp_auth_proto::Revision;
use mcp_auth_proto::client::{
    Action, Client, ClientConfig, ClientError, META_SERVER_INFO, McpFailure, McpOutcome,
    Negotiated, StatelessClient, Tokens, initialize_revision, initialized_revision, mcp_post,
    negotiate, sse_resume, sse_resume_request,
};
use mcp_auth_proto::http::{HttpRequest, HttpResponse, Method};
use mcp_auth_proto::types::ScopeSet;
use mcp_auth_proto::uri::HttpPolicy;
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio::sync::{mpsc, oneshot};

use crate::net::{CLIENT_BODY_LIMIT, OsEntropy, full, now, serve};
use crate::transcript::SharedTranscript;

/// How long one HTTP exchange may take.
const EXCHANGE_TIMEOUT: Duration = Duration::from_secs(15);
/// Default of [`Options::redirect_timeout`].
pub const REDIRECT_TIMEOUT: Duration = Duration::from_secs(300);
/// Default of [`Options::foreign_callbacks`].
pub const FOREIGN_CALLBACKS: u32 = 32;
/// How long the redirect listener holds one callback request while the flow judges it.
const CALLBACK_ANSWER_TIMEOUT: Duration = Duration::from_secs(10);
/// Callbacks queued between the redirect listener and the flow (the listener waits, it never
/// drops one).
const CALLBACK_QUEUE: usize = 16;

/// A failure of the client driver.
#[derive(Debug)]
pub enum Error {
    /// The transport failed (connect, timeout, body too large).
    Transport(String),
    /// The core client stopped with this error.
    Flow(ClientError),
    /// The server answered something the driver cannot use.
    Protocol(String),
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Transport(e) => write!(f, "transport: {e}"),
            Self::Flow(e) => write!(f, "authorization flow: {e}"),
            Self::Protocol(e) => write!(f, "protocol: {e}"),
        }
    }
}

impl std::error::Error for Error {}

impl From<TransportError> for Error {
    fn from(e: TransportError) -> Self {
        Self::Transport(e.0)
    }
}

/// JSON-RPC over Streamable HTTP on the shared [`Http`] client.
pub trait JsonRpc {
    /// Send a JSON-RPC POST and read until the JSON-RPC response with `id` arrives, whether
    /// the server answers `application/json` or an SSE stream (which may stay open).
    fn send_jsonrpc(
        &self,
        request: &HttpRequest,
        id: Option<u64>,
    ) -> impl std::future::Future<Output = Result<HttpResponse, Error>> + Send;
}

impl JsonRpc for Http {
    /// Send a JSON-RPC POST and read until the JSON-RPC response with `id` arrives, whether
    /// the server answers `application/json` or an SSE stream (which may stay open). An SSE
    /// stream that ends before the response is resumed with a GET and `Last-Event-ID` after
    /// the server's `retry`, as the core's [`sse_resume`] allows (bounded).
    // spec: TRN-10
    async fn send_jsonrpc(
        &self,
        request: &HttpRequest,
        id: Option<u64>,
    ) -> Result<HttpResponse, Error> {
        let call = async {
            let (parts, buffer, found) = self.read_stream(request, id).await?;
            if let Some(message) = found {
                return Ok(from_parts(&parts, message));
            }
            let mut stream = buffer.clone();
            let mut resumed = 0;
            while is_sse(&parts)
                && id.is_some()
                && let Some(resume) = sse_resume(&stream, resumed)
            {
                resumed += 1;
                tokio::time::sleep(Duration::from_millis(resume.retry_ms)).await;
                let get = sse_resume_request(request, &resume.last_event_id);
                let (get_parts, get_buffer, found) = self.read_stream(&get, id).await?;
                if let Some(message) = found {
                    return Ok(from_parts(&get_parts, message));
                }
                if get_parts.status != http::StatusCode::OK || !is_sse(&get_parts) {
                    break;
                }
                stream = get_buffer;
            }
            Ok(from_parts(&parts, buffer))
        };
        tokio::time::timeout(EXCHANGE_TIMEOUT, call)
            .await
            .map_err(|_| Error::Transport(format!("timeout: {}", shown(request))))?
    }
}

/// Is the answer an SSE stream?
fn is_sse(parts: &http::response::Parts) -> bool {
    parts
        .headers
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("text/event-stream"))
}

/// What [`ReadStream::read_stream`] read: the head, the bytes, and the JSON-RPC message
/// with the awaited id if an SSE stream carried it.
type Read = (http::response::Parts, Vec<u8>, Option<Vec<u8>>);

/// Reading one answer of the MCP endpoint.
trait ReadStream {
    /// Send `request` and read its answer until the end, or, for an SSE stream, until the
    /// message with `id` arrives (bounded by [`CLIENT_BODY_LIMIT`]).
    fn read_stream(
        &self,
        request: &HttpRequest,
        id: Option<u64>,
    ) -> impl std::future::Future<Output = Result<Read, Error>> + Send;
}

impl ReadStream for Http {
    async fn read_stream(&self, request: &HttpRequest, id: Option<u64>) -> Result<Read, Error> {
        let response = self.request(request).await?;
        let (parts, mut body) = response.into_parts();
        let sse = is_sse(&parts);
        let mut buffer = Vec::new();
        while let Some(frame) = body.frame().await {
            let frame = frame.map_err(|e| Error::Transport(format!("reading: {e}")))?;
            if let Ok(data) = frame.into_data() {
                buffer.extend_from_slice(&data);
            }
            if buffer.len() > CLIENT_BODY_LIMIT {
                return Err(Error::Transport("response too large".into()));
            }
            if sse && let Some(message) = id.and_then(|id| sse_message(&buffer, id)) {
                return Ok((parts, buffer, Some(message)));
            }
        }
        // The last event may lack its blank line when the stream ends.
        buffer.extend_from_slice(b"\n\n");
        let found = sse
            .then(|| id.and_then(|id| sse_message(&buffer, id)))
            .flatten();
        buffer.truncate(buffer.len() - 2);
        Ok((parts, buffer, found))
    }
}

fn shown(request: &HttpRequest) -> String {
    crate::transcript::shorten_url(&request.url)
}

/// The JSON of the first complete SSE event whose data is the JSON-RPC message with `id`.
fn sse_message(buffer: &[u8], id: u64) -> Option<Vec<u8>> {
    let text = String::from_utf8_lossy(buffer).replace("\r\n", "\n");
    let mut events: Vec<&str> = text.split("\n\n").collect();
    events.pop(); // the last piece may be incomplete
    events.into_iter().find_map(|event| {
        let data: Vec<&str> = event
            .lines()
            .filter_map(|l| l.strip_prefix("data:"))
            .map(|d| d.strip_prefix(' ').unwrap_or(d))
            .collect();
        let data = data.join("\n");
        let value: Value = serde_json::from_str(&data).ok()?;
        (value.get("id").and_then(Value::as_u64) == Some(id)).then(|| data.into_bytes())
    })
}

/// What the headless user answers on the consent page.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Consent {
    /// Press Approve.
    Approve,
    /// Press Deny.
    Deny,
}

/// How the user agent part is played.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UserAgent {
    /// Fetch the authorization URL ourselves and answer our own AS's consent form.
    Headless(Consent),
    /// Open the system browser (or print the URL) and wait for the redirect.
    Browser,
    /// Print the authorization URL on stderr, start no browser, and wait for the redirect
    /// (a terminal without a browser, or a test playing the user).
    PrintUrl,
}

/// Options of a client run. `Debug` leaves out the pre-registered client secret.
///
/// `#[non_exhaustive]`: start from [`Options::headless`] and use the `with_*` methods (or
/// assign fields), so that a new option is not a breaking change.
#[derive(Clone)]
#[non_exhaustive]
pub struct Options {
    /// The MCP endpoint URL.
    pub mcp_url: String,
    /// How the user is played.
    pub user_agent: UserAgent,
    /// Scopes to request (else the challenge's, else PRM's).
    pub scope: Option<String>,
    /// Accept http URLs for loopback hosts, honoured only when [`Options::mcp_url`] is itself
    /// loopback http: an https server never moves the client to plain http (the core's
    /// [`Client::transport_policy`] decides).
    pub allow_loopback_http: bool,
    /// Let URLs from challenges and metadata name private-network addresses although the
    /// MCP server is not on one (the core's `ClientConfig::allow_private_addresses`; off).
    pub allow_private_addresses: bool,
    /// The client name sent at registration.
    pub client_name: String,
    /// Trust exactly these root certificates instead of the Mozilla roots (a private CA).
    pub roots: Option<rustls::RootCertStore>,
    /// How often one MCP request may send the user to authorize again when the server
    /// answers 401 (and a refresh did not help), or 403 `insufficient_scope` (step-up); 0
    /// hands those answers back (the core's `ClientConfig::reauthorize`).
    pub reauthorize: u32,
    /// Pre-registered client credentials (client id, optional secret) instead of DCR.
    pub preregistered: Option<(String, Option<String>)>,
    /// The issuer of [`Options::preregistered`]: the only authorization server they are sent
    /// to (the core's `ClientConfig::preregistered_issuer`).
    pub preregistered_issuer: Option<String>,
    /// Compatibility switch, off by default: accept a PRM `resource` that is a prefix of
    /// [`Options::mcp_url`] (the core's `ClientConfig::accept_prm_resource_prefix`).
    pub accept_prm_resource_prefix: bool,
    /// The client's Client ID Metadata Document URL, used as its `client_id` where the
    /// authorization server supports it (the core's `ClientConfig::client_metadata_url`).
    pub client_metadata_url: Option<String>,
    /// With [`UserAgent::Browser`]: the command that opens the authorization URL (run by
    /// `sh -c`, the URL appended as one quoted argument), else the system's opener.
    pub browser_command: Option<String>,
    /// How long one authorization waits for the redirect back to the listener (default
    /// [`REDIRECT_TIMEOUT`], 300 s).
    pub redirect_timeout: Duration,
    /// How many callbacks with a `state` that is not the pending one (another local process,
    /// a stale tab) the listener answers with an error page and ignores before the flow gives
    /// up (default [`FOREIGN_CALLBACKS`]). The authorization is never restarted for them.
    pub foreign_callbacks: u32,
    /// The newest MCP revision to speak (the core's `ClientConfig::revision`; default
    /// 2025-06-18).
    pub revision: mcp_auth_proto::Revision,
}

impl fmt::Debug for Options {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Options")
            .field("mcp_url", &self.mcp_url)
            .field("user_agent", &self.user_agent)
            .field("scope", &self.scope)
            .field("allow_loopback_http", &self.allow_loopback_http)
            .field("allow_private_addresses", &self.allow_private_addresses)
            .field("client_name", &self.client_name)
            .field("roots", &self.roots.as_ref().map(|r| r.len()))
            .field(
                "preregistered",
                &self
                    .preregistered
                    .as_ref()
                    .map(|(id, secret)| (id, secret.as_ref().map(|_| "<redacted client secret>"))),
            )
            .field("preregistered_issuer", &self.preregistered_issuer)
            .field("client_metadata_url", &self.client_metadata_url)
            .field(
                "accept_prm_resource_prefix",
                &self.accept_prm_resource_prefix,
            )
            .field("reauthorize", &self.reauthorize)
            .field("browser_command", &self.browser_command)
            .field("redirect_timeout", &self.redirect_timeout)
            .field("foreign_callbacks", &self.foreign_callbacks)
            .field("revision", &self.revision)
            .finish()
    }
}

impl Options {
    /// Options for `mcp_url` with headless approval, and loopback http allowed if `mcp_url`
    /// is itself loopback http.
    pub fn headless(mcp_url: impl Into<String>) -> Self {
        Self {
            mcp_url: mcp_url.into(),
            user_agent: UserAgent::Headless(Consent::Approve),
            scope: None,
            allow_loopback_http: true,
            allow_private_addresses: false,
            client_name: "mcp-auth demo client".into(),
            roots: None,
            reauthorize: 0,
            preregistered: None,
            preregistered_issuer: None,
            client_metadata_url: None,
            accept_prm_resource_prefix: false,
            browser_command: None,
            redirect_timeout: REDIRECT_TIMEOUT,
            foreign_callbacks: FOREIGN_CALLBACKS,
            revision: mcp_auth_proto::Revision::default(),
        }
    }

    /// Sets [`Options::revision`], the newest MCP revision to speak.
    #[must_use]
    pub fn with_revision(mut self, revision: mcp_auth_proto::Revision) -> Self {
        self.revision = revision;
        self
    }

    /// Sets [`Options::user_agent`], how the user is played.
    #[must_use]
    pub fn with_user_agent(mut self, user_agent: UserAgent) -> Self {
        self.user_agent = user_agent;
        self
    }

    /// Sets [`Options::scope`], the scopes to request (`None`: the challenge's, else PRM's).
    #[must_use]
    pub fn with_scope(mut self, scope: Option<String>) -> Self {
        self.scope = scope;
        self
    }

    /// Sets [`Options::allow_loopback_http`] (honoured only for a loopback http MCP URL).
    #[must_use]
    pub fn with_allow_loopback_http(mut self, allow: bool) -> Self {
        self.allow_loopback_http = allow;
        self
    }

    /// Sets [`Options::allow_private_addresses`], the SSRF switch for private-network addresses
    /// (off by default).
    #[must_use]
    pub fn with_allow_private_addresses(mut self, allow: bool) -> Self {
        self.allow_private_addresses = allow;
        self
    }

    /// Sets [`Options::client_name`], the name sent at registration.
    #[must_use]
    pub fn with_client_name(mut self, client_name: impl Into<String>) -> Self {
        self.client_name = client_name.into();
        self
    }

    /// Sets [`Options::roots`]: trust exactly these root certificates, or `None` for the Mozilla
    /// roots.
    #[must_use]
    pub fn with_roots(mut self, roots: Option<rustls::RootCertStore>) -> Self {
        self.roots = roots;
        self
    }

    /// Sets [`Options::reauthorize`], how often one MCP request may send the user to authorize
    /// again (0 hands those answers back).
    #[must_use]
    pub fn with_reauthorize(mut self, reauthorize: u32) -> Self {
        self.reauthorize = reauthorize;
        self
    }

    /// Sets [`Options::preregistered`]: pre-registered client credentials (client id, optional
    /// secret) instead of dynamic registration, or `None` to register.
    #[must_use]
    pub fn with_preregistered(mut self, preregistered: Option<(String, Option<String>)>) -> Self {
        self.preregistered = preregistered;
        self
    }

    /// Sets [`Options::browser_command`], the command that opens the authorization URL with
    /// [`UserAgent::Browser`] (`None`: the system's opener).
    #[must_use]
    pub fn with_browser_command(mut self, browser_command: Option<String>) -> Self {
        self.browser_command = browser_command;
        self
    }

    /// Sets [`Options::redirect_timeout`], how long one authorization waits for the redirect
    /// (default [`REDIRECT_TIMEOUT`]).
    #[must_use]
    pub fn with_redirect_timeout(mut self, redirect_timeout: Duration) -> Self {
        self.redirect_timeout = redirect_timeout;
        self
    }

    /// Sets [`Options::foreign_callbacks`], how many callbacks with a foreign `state` the
    /// listener ignores before the flow gives up (default [`FOREIGN_CALLBACKS`]).
    #[must_use]
    pub fn with_foreign_callbacks(mut self, foreign_callbacks: u32) -> Self {
        self.foreign_callbacks = foreign_callbacks;
        self
    }
}

/// A request that reached the redirect listener's `/callback`, waiting for the flow's verdict.
#[derive(Debug)]
struct Callback {
    query: String,
    verdict: oneshot::Sender<Verdict>,
}

/// What the flow made of a callback; the listener's answer follows from it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Verdict {
    /// The pending authorization's response: the flow goes on (or ends, e.g. access denied).
    Taken,
    /// Not the pending authorization's `state`: ignored, the flow keeps waiting.
    Foreign,
}

/// The redirect listener's answer: a plain-text page, never a redirect ([AZ-24](mcp_auth_proto::requirements#AZ-24)).
fn listener_page(status: u16, text: &'static str) -> http::Response<crate::net::Body> {
    http::Response::builder()
        .status(status)
        .header("content-type", "text/plain; charset=utf-8")
        .header("cache-control", "no-store")
        .body(full(text))
        .unwrap_or_else(|_| http::Response::new(full("")))
}

/// Where the redirect listener hands callbacks: the queue of the authorization step in
/// progress, if any (a fresh queue per step; closing it answers whatever is still queued).
type CallbackSlot = Arc<Mutex<Option<mpsc::Sender<Callback>>>>;

/// Answer one request to the redirect listener. A callback is handed to the waiting flow
/// (never dropped: a full queue makes the request wait, bounded) and answered after the
/// flow's verdict: 200 when it was the pending authorization's response, 400 when its
/// `state` is foreign or no authorization is waiting, 503 when the flow does not take it in
/// time.
// spec: AZ-11, AZ-24, PF-17
async fn on_listener_request(
    path: &str,
    query: String,
    slot: &CallbackSlot,
) -> http::Response<crate::net::Body> {
    const NOT_WAITING: &str = "No authorization is waiting for this response.";
    if path != "/callback" {
        return listener_page(404, "Not found");
    }
    let callbacks = slot.lock().unwrap_or_else(PoisonError::into_inner).clone();
    let Some(callbacks) = callbacks else {
        return listener_page(400, NOT_WAITING);
    };
    let (verdict, answer) = oneshot::channel();
    let queued = tokio::time::timeout(
        CALLBACK_ANSWER_TIMEOUT,
        callbacks.send(Callback { query, verdict }),
    )
    .await;
    drop(callbacks);
    match queued {
        Ok(Ok(())) => {}
        Ok(Err(_)) => return listener_page(400, NOT_WAITING),
        Err(_) => return listener_page(503, "Busy: try the authorization again."),
    }
    match tokio::time::timeout(CALLBACK_ANSWER_TIMEOUT, answer).await {
        Ok(Ok(Verdict::Taken)) => {
            listener_page(200, "Authorization finished. You can close this window.")
        }
        Ok(Ok(Verdict::Foreign)) => listener_page(
            400,
            "This response does not belong to the authorization in progress and was ignored.",
        ),
        Ok(Err(_)) => listener_page(400, NOT_WAITING),
        Err(_) => listener_page(503, "Busy: try the authorization again."),
    }
}

/// An authorization step's callback queue, open in the listener's slot while this lives.
struct CallbackQueue {
    slot: CallbackSlot,
    callbacks: mpsc::Receiver<Callback>,
}

impl CallbackQueue {
    fn open(slot: &CallbackSlot) -> Self {
        let (tx, callbacks) = mpsc::channel(CALLBACK_QUEUE);
        *slot.lock().unwrap_or_else(PoisonError::into_inner) = Some(tx);
        Self {
            slot: Arc::clone(slot),
            callbacks,
        }
    }
}

impl Drop for CallbackQueue {
    fn drop(&mut self) {
        // Closing the queue answers the requests still in it or on their way ("no
        // authorization is waiting"); none is left hanging.
        self.slot
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
    }
}

/// A client run: the core state machine, the HTTP client, the redirect listener and the
/// transcript.
#[derive(Debug)]
pub struct McpClient {
    /// The core client (clone it to keep a snapshot, e.g. to replay an old refresh token).
    pub core: Client,
    config: ClientConfig,
    http: Http,
    options: Options,
    transcript: SharedTranscript,
    callback_slot: CallbackSlot,
    listener_task: tokio::task::JoinHandle<()>,
    /// The redirect URI registered for this run.
    pub redirect_uri: String,
    /// The MCP session id, once initialized.
    pub session_id: Option<String>,
    /// A label for the next recorded JSON-RPC exchange (else the method name is used).
    pub next_label: Option<String>,
    /// The revision whose form the MCP requests take now: [`Options::revision`] until
    /// [`McpClient::open`] or [`McpClient::initialize`] agree on one with the server.
    wire: Revision,
    next_id: u64,
    on_flow_end: Option<FlowEnd>,
}

/// Called with the core client whenever one of its flows ends (see
/// [`McpClient::on_flow_end`]).
#[derive(Clone)]
struct FlowEnd(Arc<dyn Fn(&Client) + Send + Sync>);

impl fmt::Debug for FlowEnd {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("FlowEnd(..)")
    }
}

impl Drop for McpClient {
    fn drop(&mut self) {
        self.listener_task.abort();
    }
}

impl McpClient {
    /// Start the loopback redirect listener on 127.0.0.1 with an ephemeral port and build the
    /// core client for it.
    pub async fn new(options: Options, transcript: SharedTranscript) -> Result<Self, Error> {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .map_err(|e| Error::Transport(format!("redirect listener: {e}")))?;
        let port = listener
            .local_addr()
            .map_err(|e| Error::Transport(e.to_string()))?
            .port();
        let redirect_uri = format!("http://127.0.0.1:{port}/callback");
        let callback_slot = CallbackSlot::default();
        let slot = Arc::clone(&callback_slot);
        let service = tower::service_fn(move |request: http::Request<hyper::body::Incoming>| {
            let slot = Arc::clone(&slot);
            async move {
                let path = request.uri().path().to_owned();
                let query = request.uri().query().unwrap_or("").to_owned();
                Ok::<_, std::convert::Infallible>(on_listener_request(&path, query, &slot).await)
            }
        });
        let listener_task = tokio::spawn(serve(listener, service, std::future::pending()));
        let mut config = ClientConfig::new(options.mcp_url.clone(), redirect_uri.clone());
        config.client_name = options.client_name.clone();
        config.preregistered = options.preregistered.clone();
        config.preregistered_issuer = options.preregistered_issuer.clone();
        config.client_metadata_url = options.client_metadata_url.clone();
        config.accept_prm_resource_prefix = options.accept_prm_resource_prefix;
        if options.allow_loopback_http {
            config.http_policy = HttpPolicy::AllowLoopbackHttp;
        }
        config.allow_private_addresses = options.allow_private_addresses;
        config.reauthorize = options.reauthorize;
        config.revision = options.revision;
        if let Some(scope) = &options.scope {
            config.scope = Some(
                ScopeSet::parse(scope).map_err(|e| Error::Protocol(format!("bad scope: {e}")))?,
            );
        }
        let core = Client::new(config.clone());
        let options_revision = options.revision;
        // spec: DISC-11, PF-8
        let policy = core.transport_policy();
        let http = match &options.roots {
            Some(roots) => Http::with_roots(policy, roots.clone()),
            None => Http::new(policy),
        };
        Ok(Self {
            core,
            config,
            http,
            options,
            transcript,
            callback_slot,
            listener_task,
            redirect_uri,
            session_id: None,
            next_label: None,
            wire: options_revision,
            next_id: 0,
            on_flow_end: None,
        })
    }

    /// Continue with stored tokens (used only for the resource they were obtained for).
    pub fn resume(&mut self, tokens: Tokens) {
        self.core = Client::resume(self.config.clone(), tokens);
    }

    /// Call `f` with the core client whenever one of its flows (an authorization, a refresh,
    /// including those an MCP request starts by itself) ends, successfully or not: e.g. to
    /// bring a [`mcp_auth_proto::client::TokenStore`] in line with it.
    pub fn on_flow_end(&mut self, f: impl Fn(&Client) + Send + Sync + 'static) {
        self.on_flow_end = Some(FlowEnd(Arc::new(f)));
    }

    /// The origin of the redirect listener (`http://127.0.0.1:PORT`).
    pub fn redirect_origin(&self) -> &str {
        self.redirect_uri.trim_end_matches("/callback")
    }

    /// The HTTP client.
    pub fn http(&self) -> &Http {
        &self.http
    }

    /// The transcript.
    pub fn transcript(&self) -> &SharedTranscript {
        &self.transcript
    }

    /// Send a request and record it.
    pub async fn exchange(
        &self,
        step: &str,
        from: &str,
        request: &HttpRequest,
    ) -> Result<HttpResponse, Error> {
        let response = self.http.send(request).await?;
        self.record(step, from, request, &response);
        Ok(response)
    }

    fn record(&self, step: &str, from: &str, request: &HttpRequest, response: &HttpResponse) {
        let n = self
            .transcript
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .record(step, from, request, response);
        // The URL with its secrets (code, state, ...) shortened: logs never hold them (CLI-6).
        let url = crate::transcript::shorten_url(&request.url);
        tracing::info!(n, step, method = request.method.as_str(), %url, status = response.status, "exchange");
    }

    /// Drive the core until it is authorized or fails: every `Send` goes over HTTP, the
    /// `OpenBrowser` step is played headless or through the system browser.
    pub async fn drive(&mut self) -> Result<Tokens, Error> {
        let result = self.drive_core().await;
        if let Some(FlowEnd(f)) = &self.on_flow_end {
            f(&self.core);
        }
        result
    }

    async fn drive_core(&mut self) -> Result<Tokens, Error> {
        loop {
            match self.core.poll_action() {
                Action::Send(request) => {
                    let step = describe(&request);
                    let response = self.exchange(&step, "Client", &request).await?;
                    self.core.handle_response(now(), &mut OsEntropy, &response);
                }
                Action::OpenBrowser(url) => self.user_agent(&url).await?,
                Action::Authorized(tokens) => return Ok(tokens),
                Action::Failed(error) => return Err(Error::Flow(error)),
                Action::Idle => {
                    return Err(Error::Protocol("the client has nothing to do".into()));
                }
            }
        }
    }

    /// Play the user once for the authorization URL `url`, and hand the callbacks that reach
    /// the listener to the core until it takes the one of this authorization.
    async fn user_agent(&mut self, url: &str) -> Result<(), Error> {
        // From here on the listener hands callbacks to this step (opened before any user
        // agent can reach it, closed when the step ends).
        let mut queue = CallbackQueue::open(&self.callback_slot);
        match self.options.user_agent {
            UserAgent::Headless(consent) => self.headless(url, consent, &mut queue).await,
            UserAgent::Browser => {
                open_browser(url, self.options.browser_command.as_deref());
                self.await_callback(&mut queue).await
            }
            UserAgent::PrintUrl => {
                eprintln!("Open this URL in a browser to authorize:\n  {url}");
                self.await_callback(&mut queue).await
            }
        }
    }

    /// Feed the callbacks of the redirect listener to the core until it takes one (the
    /// pending authorization's `state`; the flow then goes on or ends). A callback with a
    /// foreign `state` is answered with an error page and ignored, without restarting the
    /// authorization, at most [`Options::foreign_callbacks`] times, and the whole wait lasts
    /// at most [`Options::redirect_timeout`].
    // spec: AZ-11, PF-17
    async fn await_callback(&mut self, queue: &mut CallbackQueue) -> Result<(), Error> {
        let deadline = tokio::time::Instant::now() + self.options.redirect_timeout;
        let mut foreign = 0u32;
        loop {
            let callback = tokio::time::timeout_at(deadline, queue.callbacks.recv())
                .await
                .map_err(|_| Error::Transport("no redirect arrived in time".into()))?
                .ok_or_else(|| Error::Transport("redirect listener stopped".into()))?;
            let taken =
                self.core.handle_redirect(&callback.query) != Err(ClientError::StateMismatch);
            let verdict = if taken {
                Verdict::Taken
            } else {
                Verdict::Foreign
            };
            let _ = callback.verdict.send(verdict);
            if taken {
                return Ok(());
            }
            foreign = foreign.saturating_add(1);
            tracing::warn!(foreign, "ignored a callback with a foreign state");
            if foreign > self.options.foreign_callbacks {
                return Err(Error::Transport(format!(
                    "more than {} callbacks with a foreign state reached the redirect listener",
                    self.options.foreign_callbacks
                )));
            }
        }
    }

    /// GET the authorization URL, answer the consent form, follow the 303 to our listener
    /// while the flow waits for that callback.
    async fn headless(
        &mut self,
        url: &str,
        consent: Consent,
        queue: &mut CallbackQueue,
    ) -> Result<(), Error> {
        let location = self.consent_headless(url, consent).await?;
        let request = self.callback_request(&location)?;
        // Our own loopback listener is plain http (RFC 8252 §7.3) whatever the server's policy.
        let http = self.http.with_policy(HttpPolicy::AllowLoopbackHttp);
        // The listener answers only once the flow has judged the callback: both at once.
        let (response, ()) = tokio::try_join!(
            async { Ok::<_, Error>(http.send(&request).await?) },
            self.await_callback(queue)
        )?;
        self.record(
            "redirect to the client's loopback listener",
            "User agent",
            &request,
            &response,
        );
        Ok(())
    }

    /// The user agent's GET of the authorization server's redirect: only to our own redirect
    /// URI, else an authorization server could make the headless driver send a GET anywhere,
    /// loopback services included.
    // spec: DISC-11, CLI-7
    fn callback_request(&self, location: &str) -> Result<HttpRequest, Error> {
        let ours = location == self.redirect_uri
            || location
                .strip_prefix(self.redirect_uri.as_str())
                .is_some_and(|rest| rest.starts_with('?'));
        if !ours {
            return Err(Error::Protocol(format!(
                "the authorization server redirected to {}, not to our redirect URI",
                crate::transcript::shorten_url(location)
            )));
        }
        Ok(HttpRequest::new(Method::Get, location))
    }

    /// Play the user against our own AS: GET the authorization URL, answer its consent form,
    /// and return the `Location` of the redirect to the client (not followed).
    pub async fn consent_headless(&self, url: &str, consent: Consent) -> Result<String, Error> {
        let page = self
            .exchange(
                "authorization request (user agent): consent page",
                "User agent",
                &HttpRequest::new(Method::Get, url).header("accept", "text/html"),
            )
            .await?;
        // A browser follows any redirect: our AS answers 303 when it needs no consent page
        // (auto-approve), other servers (e.g. the conformance suite's mock AS) 302.
        let location = if is_redirect(page.status) {
            page.header_value("location").map(str::to_owned)
        } else if page.status == 200 {
            let html = String::from_utf8_lossy(&page.body);
            let form = ConsentForm::parse(&html).ok_or_else(|| {
                Error::Protocol("no consent form on the authorization page".into())
            })?;
            let decision = match consent {
                Consent::Approve => "approve",
                Consent::Deny => "deny",
            };
            let body = form_urlencoded::Serializer::new(String::new())
                .append_pair("id", &form.id)
                .append_pair("csrf", &form.csrf)
                .append_pair("decision", decision)
                .finish();
            let mut post = HttpRequest::new(Method::Post, resolve(url, &form.action))
                .header("content-type", "application/x-www-form-urlencoded")
                .body(body);
            // The consent belongs to the browser session the page was shown in: send its
            // cookie back, as a browser does.
            if let Some(cookie) = page
                .header_value("set-cookie")
                .and_then(|c| c.split(';').next())
            {
                post = post.header("cookie", cookie);
            }
            let answer = self
                .exchange(
                    &format!("consent: the user presses {decision}"),
                    "User agent",
                    &post,
                )
                .await?;
            is_redirect(answer.status)
                .then(|| answer.header_value("location").map(str::to_owned))
                .flatten()
        } else {
            None
        };
        let Some(location) = location else {
            return Err(Error::Protocol(format!(
                "the authorization server showed an error page ({})",
                page.status
            )));
        };
        Ok(location)
    }

    /// Send a JSON-RPC request (or notification when `method` starts with
    /// `notifications/`) to the MCP endpoint with the token the core holds for it, and do
    /// what the core makes of the answer ([`Client::handle_mcp_response`]): return it, or
    /// drive the refresh or the new authorization the core started and send again. The core
    /// bounds the retries; an answer it gives up on is returned as it is.
    pub async fn rpc(&mut self, method: &str, params: Value) -> Result<HttpResponse, Error> {
        loop {
            let authorization = self.core.authorization_for(&self.options.mcp_url);
            let response = self
                .rpc_with(method, params.clone(), authorization.as_deref())
                .await?;
            let outcome = self
                .core
                .handle_mcp_response(response.status, response.header_values("www-authenticate"));
            match outcome {
                McpOutcome::Done => return Ok(response),
                McpOutcome::Fail(McpFailure::Flow(error)) => return Err(Error::Flow(error)),
                McpOutcome::Fail(reason) => {
                    tracing::info!(status = response.status, ?reason, "answer handed back");
                    return Ok(response);
                }
                outcome => {
                    tracing::info!(status = response.status, ?outcome, "authorizing again");
                    self.drive().await?;
                }
            }
        }
    }

    /// Like [`McpClient::rpc`] with an explicit `Authorization` value (or none), sent once.
    pub async fn rpc_with(
        &mut self,
        method: &str,
        params: Value,
        authorization: Option<&str>,
    ) -> Result<HttpResponse, Error> {
        let notification = method.starts_with("notifications/");
        let id = (!notification).then(|| {
            self.next_id += 1;
            self.next_id
        });
        let mut message = json!({"jsonrpc": "2.0", "method": method, "params": params});
        if let Some(id) = id {
            message["id"] = json!(id);
        }
        let request = mcp_post(
            self.wire,
            &self.options.mcp_url,
            &message,
            &stateless_client(),
            self.session_id.as_deref(),
            authorization,
        );
        let response = self.http.send_jsonrpc(&request, id).await?;
        let step = match self.next_label.take() {
            Some(label) => label,
            None => match method {
                "tools/call" => format!(
                    "MCP tools/call {}",
                    message["params"]["name"].as_str().unwrap_or("?")
                ),
                _ => format!("MCP {method}"),
            },
        };
        self.record(&step, "Client", &request, &response);
        if method == "initialize" && response.status == 200 {
            self.session_id = response.header_value("mcp-session-id").map(str::to_owned);
        }
        Ok(response)
    }

    /// The revision whose form the MCP requests take now (see [`McpClient::open`]).
    pub fn revision(&self) -> Revision {
        self.wire
    }

    /// POST the first request without a token (`server/discover` in the stateless form when
    /// [`Options::revision`] is stateless, else `initialize`) and hand the answer to the
    /// core: on a 401 it starts discovery, and the flow is driven to tokens. Returns the
    /// tokens, or `None` when the server asked for none.
    pub async fn authorize(&mut self) -> Result<Option<Tokens>, Error> {
        let response = if self.wire.stateless() {
            self.rpc_with("server/discover", json!({}), None).await?
        } else {
            self.rpc_with("initialize", initialize_params_for(self.wire), None)
                .await?
        };
        match self
            .core
            .handle_mcp_response(response.status, response.header_values("www-authenticate"))
        {
            McpOutcome::Done => Ok(None),
            McpOutcome::Fail(McpFailure::Flow(error)) => Err(Error::Flow(error)),
            McpOutcome::Fail(reason) => {
                tracing::info!(status = response.status, ?reason, "no authorization asked");
                Ok(None)
            }
            _ => self.drive().await.map(Some),
        }
    }

    /// Agree on a revision with the server, authorizing as needed (a 401 or 403 on the way
    /// starts the flow the core decides, and the request is sent again), and return what the
    /// server said about itself: `{"protocolVersion", "serverInfo", "capabilities"}`.
    ///
    /// With a stateless [`Options::revision`]: `server/discover` in the stateless form; the
    /// core's [`negotiate`] then says whether every later request is stateless, whether to
    /// discover once more with another revision (`-32022`), or to fall back to
    /// [`McpClient::initialize`] with the newest revision that has it. Otherwise
    /// [`McpClient::initialize`] directly.
    // spec: TRN-8
    pub async fn open(&mut self) -> Result<Value, Error> {
        let max = self.options.revision;
        if !max.stateless() {
            return self.initialize().await;
        }
        self.session_id = None;
        let mut attempts = 0;
        loop {
            attempts += 1;
            let response = self.rpc("server/discover", json!({})).await?;
            match negotiate(max, attempts, response.status, &response.body) {
                Negotiated::Stateless(revision) => {
                    self.wire = revision;
                    let result = jsonrpc_result(&response)?;
                    let info = result
                        .get("serverInfo")
                        .or_else(|| result.get("_meta").and_then(|m| m.get(META_SERVER_INFO)))
                        .cloned()
                        .unwrap_or(Value::Null);
                    return Ok(json!({
                        "protocolVersion": revision.as_str(),
                        "serverInfo": info,
                        "capabilities": result.get("capabilities").cloned().unwrap_or(Value::Null),
                    }));
                }
                // The core bounds the retries (`DISCOVER_ATTEMPTS`).
                Negotiated::Retry(revision) => {
                    tracing::info!(%revision, "server/discover refused the version: retrying");
                    self.wire = revision;
                }
                Negotiated::Initialize(revision) => {
                    tracing::info!(%revision, status = response.status, "no stateless revision: initialize");
                    self.wire = revision;
                    return self.initialize().await;
                }
            }
        }
    }

    /// `initialize` with the token, then `notifications/initialized`: proposes the newest
    /// revision with `initialize` not newer than the current one, and runs the session at the
    /// one the server answers (when it is known and not newer). Returns the `initialize`
    /// result.
    // spec: TRN-8
    pub async fn initialize(&mut self) -> Result<Value, Error> {
        self.session_id = None;
        let proposed = initialize_revision(self.wire);
        self.wire = proposed;
        let response = self
            .rpc("initialize", initialize_params_for(proposed))
            .await?;
        let result = jsonrpc_result(&response)?;
        self.wire = initialized_revision(proposed, result["protocolVersion"].as_str());
        let _ = self.rpc("notifications/initialized", json!({})).await?;
        Ok(result)
    }

    /// `tools/list`.
    pub async fn list_tools(&mut self) -> Result<Value, Error> {
        let response = self.rpc("tools/list", json!({})).await?;
        jsonrpc_result(&response)
    }

    /// `tools/call`; the whole HTTP answer (the caller may expect a 403).
    pub async fn call_tool(&mut self, name: &str, arguments: Value) -> Result<HttpResponse, Error> {
        self.rpc("tools/call", json!({"name": name, "arguments": arguments}))
            .await
    }

    /// Run the core's refresh: the new tokens.
    pub async fn refresh(&mut self) -> Result<Tokens, Error> {
        self.core.start_refresh();
        self.drive().await
    }
}

/// The `initialize` parameters we send (proposing 2025-06-18).
pub fn initialize_params() -> Value {
    initialize_params_for(Revision::V2025_06_18)
}

/// The `initialize` parameters we send, proposing `revision`.
pub fn initialize_params_for(revision: Revision) -> Value {
    json!({
        "protocolVersion": revision.as_str(),
        "capabilities": {},
        "clientInfo": {"name": CLIENT_NAME, "version": env!("CARGO_PKG_VERSION")}
    })
}

/// The client's name in `initialize` and in a stateless request's `_meta`.
const CLIENT_NAME: &str = "mcp-auth";

/// What the client says about itself in stateless requests: no capabilities, its name and
/// version.
fn stateless_client() -> StatelessClient {
    StatelessClient::new(CLIENT_NAME, env!("CARGO_PKG_VERSION"))
}

/// The `result` of a JSON-RPC answer, or an error naming the status / JSON-RPC error.
pub fn jsonrpc_result(response: &HttpResponse) -> Result<Value, Error> {
    if response.status != 200 {
        return Err(Error::Protocol(format!(
            "HTTP {} {}",
            response.status,
            response.header_value("www-authenticate").unwrap_or("")
        )));
    }
    let value: Value = serde_json::from_slice(&response.body)
        .map_err(|e| Error::Protocol(format!("not JSON-RPC: {e}")))?;
    match (value.get("result"), value.get("error")) {
        (Some(result), _) => Ok(result.clone()),
        (None, Some(error)) => Err(Error::Protocol(format!("JSON-RPC error: {error}"))),
        _ => Err(Error::Protocol("no result".into())),
    }
}

fn describe(request: &HttpRequest) -> String {
    let url = &request.url;
    if url.contains("/.well-known/oauth-protected-resource") {
        "discovery: Protected Resource Metadata (RFC 9728)".into()
    } else if url.contains("/.well-known/oauth-authorization-server") {
        "discovery: authorization server metadata (RFC 8414)".into()
    } else if url.contains("/.well-known/openid-configuration") {
        "discovery: OpenID configuration".into()
    } else if request.has_content_type("application/json") {
        "dynamic client registration (RFC 7591)".into()
    } else if request.body.windows(13).any(|w| w == b"refresh_token")
        && !request.body.windows(18).any(|w| w == b"authorization_code")
    {
        "token request: refresh_token grant".into()
    } else {
        "token request: authorization_code grant with PKCE verifier".into()
    }
}

/// The fields of our AS's consent form.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConsentForm {
    /// The form's `action` (relative or absolute).
    pub action: String,
    /// The pending authorization id.
    pub id: String,
    /// The CSRF token.
    pub csrf: String,
}

impl ConsentForm {
    /// Find the form and its hidden `id` and `csrf` inputs in a page: the form with
    /// Approve/Deny buttons if there is one (a consent page may also carry a "not you?"
    /// logout form), else the first form (a login page).
    pub fn parse(html: &str) -> Option<Self> {
        let starts: Vec<usize> = html.match_indices("<form").map(|(i, _)| i).collect();
        let form_start = starts
            .iter()
            .copied()
            .find(|&i| {
                let rest = &html[i..];
                let end = rest.find("</form>").unwrap_or(rest.len());
                rest[..end].contains("name=\"decision\"")
            })
            .or_else(|| starts.first().copied())?;
        let form = &html[form_start..];
        let action = attribute(&form[..form.find('>')?], "action").unwrap_or_default();
        let input_value = |name: &str| {
            let needle = format!("name=\"{name}\"");
            form.split("<input").find_map(|input| {
                let tag = &input[..input.find('>')?];
                tag.contains(&needle)
                    .then(|| attribute(tag, "value"))
                    .flatten()
            })
        };
        Some(Self {
            action,
            id: input_value("id")?,
            csrf: input_value("csrf")?,
        })
    }
}

fn attribute(tag: &str, name: &str) -> Option<String> {
    let needle = format!(" {name}=\"");
    let start = tag.find(&needle)? + needle.len();
    let end = tag[start..].find('"')?;
    Some(unescape_html(&tag[start..start + end]))
}

fn unescape_html(s: &str) -> String {
    s.replace("&quot;", "\"")
        .replace("&#39;", "'")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&amp;", "&")
}

/// A redirect status a browser follows (302, 303, 307, ...).
fn is_redirect(status: u16) -> bool {
    matches!(status, 301 | 302 | 303 | 307 | 308)
}

/// Resolve a form action against the page URL.
fn resolve(page: &str, action: &str) -> String {
    if action.starts_with("http://") || action.starts_with("https://") {
        return action.to_owned();
    }
    let page = page.split(['?', '#']).next().unwrap_or(page);
    let after_scheme = page.find("://").map_or(0, |i| i + 3);
    let origin_end = page[after_scheme..]
        .find('/')
        .map_or(page.len(), |i| after_scheme + i);
    if action.starts_with('/') {
        format!("{}{action}", &page[..origin_end])
    } else {
        let dir_end = page
            .rfind('/')
            .filter(|&i| i >= origin_end)
            .map_or(page.len(), |i| i);
        format!("{}/{action}", &page[..dir_end])
    }
}

/// Open the browser: `command` if given (`sh -c '<command> "$1"' sh <url>`), else the system
/// browser if there seems to be one; print the URL either way.
fn open_browser(url: &str, command: Option<&str>) {
    eprintln!("Open this URL in a browser to authorize:\n  {url}");
    if let Some(command) = command {
        let spawned = std::process::Command::new("sh")
            .arg("-c")
            .arg(format!("{command} \"$1\""))
            .arg("sh")
            .arg(url)
            .stdout(std::process::Stdio::null())
            .spawn();
        if let Err(e) = spawned {
            eprintln!("could not run the browser command: {e}");
        }
        return;
    }
    let has_display = std::env::var_os("DISPLAY").is_some()
        || std::env::var_os("WAYLAND_DISPLAY").is_some()
        || cfg!(target_os = "macos")
        || cfg!(windows);
    if has_display {
        let opener = if cfg!(target_os = "macos") {
            "open"
        } else if cfg!(windows) {
            "explorer"
        } else {
            "xdg-open"
        };
        let _ = std::process::Command::new(opener)
            .arg(url)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn picks_the_consent_form_over_the_logout_form() {
        let html = "<form class=\"inline\" method=\"post\" action=\"logout\">\
            <input type=\"hidden\" name=\"id\" value=\"1\"><input type=\"hidden\" name=\"csrf\" value=\"c\">\
            <button type=\"submit\">Not you?</button></form>\
            <form method=\"post\" action=\"consent\"><input type=\"hidden\" name=\"id\" value=\"1\">\
            <input type=\"hidden\" name=\"csrf\" value=\"c\">\
            <button name=\"decision\" value=\"approve\">Approve</button></form>";
        let form = ConsentForm::parse(html).expect("form");
        assert_eq!(form.action, "consent");
    }

    #[test]
    fn parses_the_consent_form() {
        let html = "<p>x</p><form method=\"post\" action=\"consent\"><input type=\"hidden\" name=\"id\" value=\"abc\"><input type=\"hidden\" name=\"csrf\" value=\"d&amp;e\"><button></button></form>";
        let form = ConsentForm::parse(html).expect("form");
        assert_eq!(form.action, "consent");
        assert_eq!(form.id, "abc");
        assert_eq!(form.csrf, "d&e");
    }

    #[test]
    fn resolves_relative_actions() {
        assert_eq!(
            resolve("http://h:1/authorize?x=1", "consent"),
            "http://h:1/consent"
        );
        assert_eq!(
            resolve("http://h:1/as/authorize?x", "consent"),
            "http://h:1/as/consent"
        );
        assert_eq!(resolve("http://h:1/a/b", "/consent"), "http://h:1/consent");
    }

    #[test]
    fn finds_the_sse_message() {
        let sse =
            b"id: 1\nretry: 3000\ndata: \n\ndata: {\"jsonrpc\":\"2.0\",\"id\":3,\"result\":{}}\n\n";
        assert!(sse_message(sse, 3).is_some());
        assert!(sse_message(sse, 4).is_none());
    }
}
