//! What every driver shares: the clock, OS entropy, body bounds, the conversion between the
//! core's plain HTTP values and hyper's, and the accept loop.

use std::convert::Infallible;
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use mcp_auth_proto::Rejection;
use mcp_auth_proto::http::{HttpRequest, HttpResponse, Method};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;

/// The response body type of every server here (the same as rmcp's, so layers compose).
pub type Body = BoxBody<Bytes, Infallible>;

/// Largest request body the authorization server reads (64 KiB).
pub const AS_BODY_LIMIT: usize = 64 * 1024;

/// Largest response body the client reads (1 MiB).
pub const CLIENT_BODY_LIMIT: usize = mcp_auth_layer::fetch::RESPONSE_LEN_MAX;

pub use mcp_auth_layer::{OsEntropy, now};

/// A whole body.
pub fn full(bytes: impl Into<Bytes>) -> Body {
    Full::new(bytes.into()).boxed()
}

/// Encode a core response for hyper: the layer's encoder ([`mcp_auth_layer::encode`]), boxed.
pub fn to_hyper(response: HttpResponse) -> http::Response<Body> {
    mcp_auth_layer::encode::<Body>(response).map(BodyExt::boxed)
}

/// The core's OAuth error answer ([`mcp_auth_proto::http::oauth_error`]) for a refusal that
/// happens before the core is reached (body too large or unreadable), with this status.
pub fn early_error(status: u16, rejection: Rejection) -> HttpResponse {
    mcp_auth_proto::http::oauth_error(rejection).with_status(status)
}

/// The address of the peer a request came from (a request extension set by [`serve`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PeerAddr(pub std::net::SocketAddr);

/// Read a request into the core's value, the body bounded by `limit`. A body over the limit
/// gives a 413 answer, an unreadable one a 400, both as OAuth JSON errors.
pub async fn read_request<B>(
    request: http::Request<B>,
    limit: usize,
) -> Result<HttpRequest, HttpResponse>
where
    B: hyper::body::Body,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let (parts, body) = request.into_parts();
    if parts
        .headers
        .get(http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok())
        .is_some_and(|n| n > limit)
    {
        return Err(early_error(413, Rejection::TooLarge));
    }
    let body = match Limited::new(body, limit).collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(error) if error.is::<http_body_util::LengthLimitError>() => {
            return Err(early_error(413, Rejection::TooLarge));
        }
        Err(_) => return Err(early_error(400, Rejection::BodyUnreadable)),
    };
    let mut headers: Vec<(String, Vec<u8>)> = parts
        .headers
        .iter()
        .map(|(n, v)| (n.as_str().to_owned(), v.as_bytes().to_vec()))
        .collect();
    // HTTP/2 carries the host in `:authority`, which hyper puts in the URI: the core sees a
    // `host` header either way.
    if !parts.headers.contains_key(http::header::HOST)
        && let Some(authority) = parts.uri.authority()
    {
        headers.push(("host".to_owned(), authority.as_str().as_bytes().to_vec()));
    }
    Ok(HttpRequest {
        method: Method::from_name(parts.method.as_str()),
        url: parts.uri.path().to_owned(),
        query: parts.uri.query().map(str::to_owned),
        headers,
        body: body.to_vec(),
        peer: parts.extensions.get::<PeerAddr>().map(|p| p.0.ip()),
    })
}

/// Bind a loopback listener (`127.0.0.1:0` picks a free port).
pub async fn bind(addr: &str) -> std::io::Result<TcpListener> {
    TcpListener::bind(addr).await
}

/// The `http://host:port` origin of a bound listener.
pub fn origin_of(listener: &TcpListener) -> std::io::Result<String> {
    Ok(format!("http://{}", listener.local_addr()?))
}

/// The HTTP limits of a server: every server here runs with them ([`serve`] uses the
/// defaults). Each refusal is an answer, never a hang.
// spec: SEC-12, PF-18
///
/// `#[non_exhaustive]`: start from [`ServeLimits::default`] and use the `with_*` methods (or
/// assign fields), so that a new limit is not a breaking change.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct ServeLimits {
    /// Largest request head (request line and header fields) in bytes; a larger one gets 431
    /// (HTTP/1.1; HTTP/2 advertises it as its header list size). Default 16 KiB; hyper's
    /// floor is 8 KiB.
    pub header_bytes: usize,
    /// How long a connection may take to deliver its first request head, and any later one
    /// on a kept-alive connection; the first gets 408 when late, a later one is closed.
    /// Default 10 s.
    pub header_timeout: Duration,
    /// Most connections served at once; one more gets 503 and is closed. Default 1024.
    pub max_connections: usize,
}

impl Default for ServeLimits {
    fn default() -> Self {
        Self {
            header_bytes: 16 * 1024,
            header_timeout: Duration::from_secs(10),
            max_connections: 1024,
        }
    }
}

impl ServeLimits {
    /// Sets [`ServeLimits::header_bytes`], the largest request head in bytes (default 16 KiB).
    #[must_use]
    pub fn with_header_bytes(mut self, header_bytes: usize) -> Self {
        self.header_bytes = header_bytes;
        self
    }

    /// Sets [`ServeLimits::header_timeout`], how long a connection may take to deliver a
    /// request head (default 10 s).
    #[must_use]
    pub fn with_header_timeout(mut self, header_timeout: Duration) -> Self {
        self.header_timeout = header_timeout;
        self
    }

    /// Sets [`ServeLimits::max_connections`], the most connections served at once (default
    /// 1024).
    #[must_use]
    pub fn with_max_connections(mut self, max_connections: usize) -> Self {
        self.max_connections = max_connections;
        self
    }
}

/// How long a refusal (408, 503) may take to read the head it answers and to be written.
const REFUSAL_TIMEOUT: Duration = Duration::from_secs(1);

/// Answer `status` on a connection hyper does not (or no longer) serve: read what the client
/// sends for a short while (so that closing does not reset the answer away), write a minimal
/// `Connection: close` response, close.
async fn refuse(mut tcp: TcpStream, status: u16, reason: &str) {
    let _ = tokio::time::timeout(REFUSAL_TIMEOUT, async {
        let mut seen = Vec::new();
        let mut chunk = [0u8; 2048];
        while seen.len() < 16 * 1024 && !seen.windows(4).any(|w| w == b"\r\n\r\n") {
            match tcp.read(&mut chunk).await {
                Ok(0) | Err(_) => break,
                Ok(n) => seen.extend_from_slice(&chunk[..n]),
            }
        }
    })
    .await;
    let answer = format!(
        "HTTP/1.1 {status} {reason}\r\ncontent-type: text/plain\r\ncontent-length: {}\r\nconnection: close\r\nretry-after: 1\r\n\r\n{reason}",
        reason.len()
    );
    let _ = tokio::time::timeout(REFUSAL_TIMEOUT, async {
        let _ = tcp.write_all(answer.as_bytes()).await;
        let _ = tcp.shutdown().await;
    })
    .await;
}

/// What the servers here serve: a cloneable tower service from hyper requests to responses
/// with [`Body`], that never fails and can move between threads.
pub trait HttpService:
    tower::Service<
        http::Request<Incoming>,
        Response = http::Response<Body>,
        Error = Infallible,
        Future: Send + 'static,
    > + Clone
    + Send
    + 'static
{
}

impl<S> HttpService for S where
    S: tower::Service<
            http::Request<Incoming>,
            Response = http::Response<Body>,
            Error = Infallible,
            Future: Send + 'static,
        > + Clone
        + Send
        + 'static
{
}

/// An MCP endpoint behind the guard, answering with [`Body`] ([`guarded`]).
pub type Guarded<S> = tower::util::MapResponse<
    mcp_auth_layer::AuthService<S>,
    fn(http::Response<mcp_auth_layer::GuardBody<Body>>) -> http::Response<Body>,
>;

/// `inner` behind the MCP server's guard, answering with [`Body`] as [`serve`] wants.
pub fn guarded<S>(layer: &mcp_auth_layer::AuthLayer, inner: S) -> Guarded<S> {
    use tower::Layer as _;
    tower::util::MapResponse::new(layer.layer(inner), |response| response.map(BodyExt::boxed))
}

/// Accept connections on `listener` and serve each with a clone of `service` (HTTP/1.1 and
/// HTTP/2) under the default [`ServeLimits`], until `shutdown` completes; then let open
/// connections finish for up to two seconds (SSE streams would otherwise hold the process).
pub async fn serve<S: HttpService>(
    listener: TcpListener,
    service: S,
    shutdown: impl Future<Output = ()>,
) {
    serve_with(listener, service, shutdown, ServeLimits::default()).await;
}

/// [`serve`] under the given limits.
// spec: SEC-12, PF-18
pub async fn serve_with<S: HttpService>(
    listener: TcpListener,
    service: S,
    shutdown: impl Future<Output = ()>,
    limits: ServeLimits,
) {
    serve_tls_with(listener, None, service, shutdown, limits).await;
}

/// Longest a TLS handshake may take before the connection is dropped.
pub const TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// [`serve`], over TLS when `tls` is given (every connection first completes a handshake,
/// bounded by [`TLS_HANDSHAKE_TIMEOUT`]).
pub async fn serve_tls<S: HttpService>(
    listener: TcpListener,
    tls: Option<tokio_rustls::TlsAcceptor>,
    service: S,
    shutdown: impl Future<Output = ()>,
) {
    serve_tls_with(listener, tls, service, shutdown, ServeLimits::default()).await;
}

/// [`serve_with`], over TLS when `tls` is given. Over TLS, a connection over the cap is
/// closed (no plain-text 503 inside a TLS port), and a late request head is left to hyper's
/// header timeout (no plain-text 408).
pub async fn serve_tls_with<S: HttpService>(
    listener: TcpListener,
    tls: Option<tokio_rustls::TlsAcceptor>,
    service: S,
    shutdown: impl Future<Output = ()>,
    limits: ServeLimits,
) {
    let graceful = GracefulShutdown::new();
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        // hyper's own timer, a little later than ours: it closes a kept-alive connection whose
        // next head is late; ours answers 408 for the first head.
        .header_read_timeout(limits.header_timeout + REFUSAL_TIMEOUT)
        .max_buf_size(limits.header_bytes.max(8192));
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_header_list_size(u32::try_from(limits.header_bytes).unwrap_or(u32::MAX));
    let slots = Arc::new(Semaphore::new(limits.max_connections));
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let Ok((tcp, peer)) = accepted else { continue };
                let Ok(slot) = Arc::clone(&slots).try_acquire_owned() else {
                    if tls.is_none() {
                        tokio::spawn(refuse(tcp, 503, "Service Unavailable"));
                    }
                    continue;
                };
                // The first request head must arrive in time: the service being called is
                // the sign that it did. Every request learns its peer's address.
                let started = Arc::new(AtomicBool::new(false));
                let service = {
                    let started = Arc::clone(&started);
                    let inner = service.clone();
                    tower::service_fn(move |mut request: http::Request<Incoming>| {
                        started.store(true, Ordering::SeqCst);
                        request.extensions_mut().insert(PeerAddr(peer));
                        let mut inner = inner.clone();
                        async move { tower::Service::call(&mut inner, request).await }
                    })
                };
                if let Some(acceptor) = &tls {
                    let handshake = acceptor.accept(tcp);
                    let builder = builder.clone();
                    let watcher = graceful.watcher();
                    tokio::spawn(async move {
                        let _slot = slot;
                        let stream = match tokio::time::timeout(TLS_HANDSHAKE_TIMEOUT, handshake).await {
                            Ok(Ok(stream)) => stream,
                            Ok(Err(error)) => {
                                tracing::debug!(%error, "TLS handshake failed");
                                return;
                            }
                            Err(_) => return,
                        };
                        let connection = watcher.watch(
                            builder
                                .serve_connection(TokioIo::new(stream), TowerToHyperService::new(service))
                                .into_owned(),
                        );
                        if let Err(error) = connection.await {
                            tracing::debug!(%error, "connection ended with an error");
                        }
                    });
                    continue;
                }
                // A second handle on the socket, to answer 408 after hyper is dropped.
                let Some((tcp, spare)) = split_handle(tcp) else { continue };
                let connection = builder
                    .serve_connection(TokioIo::new(tcp), TowerToHyperService::new(service))
                    .into_owned();
                let connection = graceful.watch(connection);
                let header_timeout = limits.header_timeout;
                tokio::spawn(async move {
                    let _slot = slot;
                    let mut connection = Box::pin(connection);
                    let late = tokio::select! {
                        result = &mut connection => {
                            let Err(error) = result else { return };
                            tracing::debug!(%error, "connection ended with an error");
                            let timeout = error
                                .downcast_ref::<hyper::Error>()
                                .is_some_and(hyper::Error::is_timeout);
                            if timeout && !started.load(Ordering::SeqCst) {
                                refuse(spare, 408, "Request Timeout").await;
                            }
                            return;
                        }
                        () = tokio::time::sleep(header_timeout) => !started.load(Ordering::SeqCst),
                    };
                    if late {
                        drop(connection);
                        refuse(spare, 408, "Request Timeout").await;
                        return;
                    }
                    drop(spare);
                    if let Err(error) = connection.await {
                        tracing::debug!(%error, "connection ended with an error");
                    }
                });
            }
            () = &mut shutdown => break,
        }
    }
    tokio::select! {
        () = graceful.shutdown() => {}
        () = tokio::time::sleep(Duration::from_secs(2)) => {}
    }
}

/// The socket and a second handle on it (the same connection).
fn split_handle(tcp: TcpStream) -> Option<(TcpStream, TcpStream)> {
    let std = tcp.into_std().ok()?;
    let spare = std.try_clone().ok()?;
    Some((
        TcpStream::from_std(std).ok()?,
        TcpStream::from_std(spare).ok()?,
    ))
}
