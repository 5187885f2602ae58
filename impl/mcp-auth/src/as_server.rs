//! The authorization server over hyper 1: decode, one call into
//! [`mcp_auth_proto::server::http::handle`] under a lock held only across that synchronous
//! call, encode. Bodies are bounded ([`crate::net::AS_BODY_LIMIT`]).
//!
//! A client metadata document the core asks for ([`Prepared::Fetch`]) is fetched here, with
//! the lock released, by [`DocumentClient`]: https with rustls and Mozilla's roots (plain http
//! only to loopback, under the development switch), no redirects followed, the body read up to
//! the core's bound, the whole within the core's timeout; the answer goes back to the core
//! ([`finish_fetch`]). Every address the host resolves to must pass the core's
//! [`may_connect`] (no private, link-local or, without the switch, loopback addresses): once
//! before the request, to answer "refused" clearly, and again inside the connector's resolver,
//! so the connection only ever goes to an address that was checked (no DNS rebinding between
//! the check and the connection).
//!
//! With a durable store ([`AsState::with_store`]), every change the core reports
//! ([`AuthorizationServer::take_changes`]) is committed in one transaction, while the lock is
//! still held, **before** the answer is written: a client never holds a token, a code or a
//! client id the store does not have. The call into the core and its commit then run on a
//! blocking thread (the commit waits for the disk), never on an async worker. A commit that
//! fails answers 503 with `Retry-After` ([`Rejection::StoreUnavailable`]) and the core's
//! durable state is **reloaded** from the store (the in-memory change is dropped; memory-only
//! state such as rate windows and throttles is kept); while the store cannot be read, every
//! request gets that 503. A commit refused because another instance changed a record first
//! (compare-and-set) reloads the core and runs the request again ([`COMMIT_ATTEMPTS`]): the
//! core's own rules then answer it against the state that won (a refresh token or a code
//! used on two instances at once is a replay on the second: `invalid_grant`, and what it
//! produced is revoked).

use std::convert::Infallible;
use std::future::Future;
use std::sync::{Arc, Mutex};

use std::net::SocketAddr;
use std::pin::Pin;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::Client as HyperClient;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::connect::dns::Name;
use hyper_util::rt::TokioExecutor;
use mcp_auth_layer::fetch::from_parts;
use mcp_auth_proto::Rejection;
use mcp_auth_proto::http::HttpResponse;
use mcp_auth_proto::jwt::Signer;
use mcp_auth_proto::server::http::{
    Prepared, UserAgentPolicy, finish_fetch, finish_login, prepare,
};
use mcp_auth_proto::server::{
    AsConfig, AuthorizationServer, DocumentFetch, FetchFailure, may_connect,
};
use tokio::net::TcpListener;

use crate::net::{AS_BODY_LIMIT, Body, OsEntropy, now, read_request, to_hyper};
use crate::store::{Store, StoreError};

/// The durable store of a running server, the store's change sequence the core reflects, and
/// whether the core must be reloaded from it (a commit or a reload failed, so the core may
/// hold changes the store does not).
#[derive(Debug)]
struct Durable {
    store: Store,
    seq: u64,
    stale: bool,
}

/// The shared state of a running authorization server.
#[derive(Debug)]
pub struct AsState {
    server: Mutex<AuthorizationServer>,
    /// The durable store, if any; locked only while `server` is locked (never the other way).
    durable: Option<Mutex<Durable>>,
    policy: UserAgentPolicy,
    /// Fetches client metadata documents.
    fetcher: DocumentClient,
}

impl AsState {
    /// Wrap a configured core server and the user-agent policy (demo user, auto-approve).
    pub fn new(config: AsConfig, signer: Signer, policy: UserAgentPolicy) -> Arc<Self> {
        Self::with_document_roots(
            config,
            signer,
            policy,
            mcp_auth_layer::fetch::mozilla_roots(),
        )
    }

    /// [`AsState::new`], fetching client metadata documents over https with exactly these
    /// trusted roots (e.g. a private CA) instead of Mozilla's.
    pub fn with_document_roots(
        config: AsConfig,
        signer: Signer,
        policy: UserAgentPolicy,
        roots: rustls::RootCertStore,
    ) -> Arc<Self> {
        let fetcher = DocumentClient::with_roots(config.cimd_allow_loopback, roots);
        Arc::new(Self {
            server: Mutex::new(AuthorizationServer::new(config, signer)),
            durable: None,
            policy,
            fetcher,
        })
    }

    /// [`AsState::with_document_roots`], with the durable state loaded from `store` and every
    /// change committed there before its answer is sent.
    ///
    /// # Errors
    ///
    /// The store cannot be read, a stored record does not decode ([`StoreError::Corrupt`]), or
    /// the first commit (the key ring) fails.
    pub fn with_store(
        config: AsConfig,
        signer: Signer,
        policy: UserAgentPolicy,
        roots: rustls::RootCertStore,
        mut store: Store,
    ) -> Result<Arc<Self>, StoreError> {
        let fetcher = DocumentClient::with_roots(config.cimd_allow_loopback, roots);
        let snapshot = store.load()?;
        let mut server = AuthorizationServer::restore(config, signer, snapshot.records)
            .map_err(|e| StoreError::Corrupt(e.to_string()))?;
        store.commit(&server.take_changes())?;
        Ok(Arc::new(Self {
            server: Mutex::new(server),
            durable: Some(Mutex::new(Durable {
                store,
                seq: snapshot.seq,
                stale: false,
            })),
            policy,
            fetcher,
        }))
    }

    /// Before a request: bring the core up to date with what other instances committed
    /// since it last looked ([`AuthorizationServer::apply`]; a full reload when the store no
    /// longer lists that far back, or after a failed commit), or answer 503 while the store
    /// cannot be read.
    // spec: PF-23
    fn ready(&self, server: &mut AuthorizationServer) -> Result<(), HttpResponse> {
        let Some(durable) = &self.durable else {
            return Ok(());
        };
        let mut durable = durable
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if durable.stale {
            return reload(server, &mut durable);
        }
        let since = durable.seq;
        match durable.store.changes_since(since) {
            Ok(Some(delta)) => match server.apply(delta.updates) {
                Ok(()) => {
                    durable.seq = delta.seq;
                    Ok(())
                }
                Err(e) => {
                    tracing::warn!(error = %e, "durable store: a record does not decode");
                    reload(server, &mut durable)
                }
            },
            Ok(None) => reload(server, &mut durable),
            Err(e) => {
                tracing::warn!(error = %e, "durable store: cannot read the changes");
                durable.stale = true;
                Err(unavailable())
            }
        }
    }

    /// After a call into the core: commit what it changed, before the answer goes out.
    // spec: RT-2, TOK-7
    fn settle(&self, server: &mut AuthorizationServer) -> Settled {
        let Some(durable) = &self.durable else {
            return Settled::Committed;
        };
        let changes = server.take_changes();
        if changes.is_empty() {
            return Settled::Committed;
        }
        let mut durable = durable
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        match durable.store.commit(&changes) {
            Ok(()) => Settled::Committed,
            Err(StoreError::Conflict(lost)) => {
                tracing::info!(records = lost.len(), "lost a concurrent update; reloading");
                match reload(server, &mut durable) {
                    Ok(()) => Settled::Lost,
                    Err(response) => Settled::Failed(response),
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "durable store: commit failed; reloading");
                durable.stale = true;
                let _ = reload(server, &mut durable);
                Settled::Failed(unavailable())
            }
        }
    }

    /// Sign new tokens with the PKCS#8 PEM key `pkcs8_pem` from now on; the old key stays in
    /// the JWK Set ([`AuthorizationServer::rotate_key`]). With a store, the private key is
    /// stored first and the new key ring committed, so the rotation survives a restart.
    ///
    /// # Errors
    ///
    /// The PEM is not a key [`crate::keys::from_pem`] reads, or the store cannot keep the
    /// private key (then nothing changed); or the new ring's commit failed (then the new key
    /// signs, is kept, and is published by this instance; the stored ring follows at the next
    /// start).
    pub fn rotate_key(&self, pkcs8_pem: &str) -> Result<(), String> {
        let signer = crate::keys::from_pem(pkcs8_pem)?;
        let mut server = self.lock();
        if let Some(durable) = &self.durable {
            let mut durable = durable
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            durable
                .store
                .add_signing_key(signer.kid(), pkcs8_pem)
                .map_err(|e| e.to_string())?;
        }
        server.rotate_key(signer);
        match self.settle(&mut server) {
            Settled::Committed => Ok(()),
            Settled::Lost | Settled::Failed(_) => {
                Err("the rotated key ring was not stored; the old key still signs".into())
            }
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, AuthorizationServer> {
        self.server
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The user-agent policy (accounts, auto-approval).
    pub fn policy(&self) -> &UserAgentPolicy {
        &self.policy
    }

    /// Run `f` on the core server (for inspection in tests).
    pub fn with_server<T>(&self, f: impl FnOnce(&AuthorizationServer) -> T) -> T {
        f(&self
            .server
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner))
    }
}

/// How a call's changes went to the store.
enum Settled {
    /// Committed (or nothing to commit): send the call's answer.
    Committed,
    /// Another instance changed a record first; the core was reloaded from the store: run
    /// the call again.
    Lost,
    /// The store failed: send this answer (503) instead.
    Failed(HttpResponse),
}

/// How many times one request runs when its commit keeps losing compare-and-set races to
/// other instances; after that it gets 503 with `Retry-After`.
pub const COMMIT_ATTEMPTS: usize = 4;

/// The answer while the store cannot save or be read: 503 with `Retry-After`.
fn unavailable() -> HttpResponse {
    mcp_auth_proto::http::oauth_error(Rejection::StoreUnavailable)
}

/// Replace the core's durable state with the store's; clears `stale` on success.
fn reload(server: &mut AuthorizationServer, durable: &mut Durable) -> Result<(), HttpResponse> {
    let loaded = durable
        .store
        .load()
        .and_then(|snapshot| {
            server
                .reload(snapshot.records)
                .map_err(|e| StoreError::Corrupt(e.to_string()))?;
            Ok(snapshot.seq)
        })
        .and_then(|seq| {
            durable.store.commit(&server.take_changes())?;
            Ok(seq)
        });
    match loaded {
        Ok(seq) => {
            durable.seq = seq;
            durable.stale = false;
            Ok(())
        }
        Err(e) => {
            tracing::warn!(error = %e, "durable store: reload failed");
            durable.stale = true;
            Err(unavailable())
        }
    }
}

/// One call into the core under the lock, with the store kept in step: `ready` before,
/// `settle` after (a failed commit replaces the answer). A commit that lost a race to another
/// instance runs the call again on the reloaded state (at most [`COMMIT_ATTEMPTS`] times in
/// all), so the core's own rules answer it against the state that won: a refresh token or a
/// code used on two instances at once is a replay on the second.
fn with_core<T>(
    state: &AsState,
    mut call: impl FnMut(&mut AuthorizationServer) -> T,
    answer: impl FnOnce(HttpResponse) -> T,
) -> T {
    let mut server = state.lock();
    for _ in 0..COMMIT_ATTEMPTS {
        if let Err(response) = state.ready(&mut server) {
            return answer(response);
        }
        let result = call(&mut server);
        match state.settle(&mut server) {
            Settled::Committed => return result,
            Settled::Lost => {}
            Settled::Failed(response) => return answer(response),
        }
    }
    tracing::warn!("lost {COMMIT_ATTEMPTS} races in a row; answering 503");
    answer(unavailable())
}

/// [`with_core`] on a blocking thread when there is a store (a commit waits for the disk,
/// and for another writer's lock up to the busy timeout: never on an async worker); inline
/// otherwise.
async fn core_call<T: Send + 'static>(
    state: &Arc<AsState>,
    mut call: impl FnMut(&mut AuthorizationServer, &AsState) -> T + Send + 'static,
    answer: fn(HttpResponse) -> T,
) -> T {
    if state.durable.is_none() {
        return with_core(state, |server| call(server, state), answer);
    }
    let state = Arc::clone(state);
    tokio::task::spawn_blocking(move || with_core(&state, |server| call(server, &state), answer))
        .await
        .unwrap_or_else(|e| std::panic::resume_unwind(e.into_panic()))
}

/// Answer one HTTP request.
pub async fn handle_request<B>(
    state: Arc<AsState>,
    request: http::Request<B>,
) -> Result<http::Response<Body>, Infallible>
where
    B: hyper::body::Body,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let response = match read_request(request, AS_BODY_LIMIT).await {
        Err(response) => response,
        Ok(request) => {
            let prepared = core_call(
                &state,
                move |server, state| {
                    prepare(server, now(), &mut OsEntropy, &state.policy, &request)
                },
                Prepared::Done,
            )
            .await;
            match prepared {
                Prepared::Done(response) => response,
                // argon2 runs on a blocking thread, with the lock released.
                Prepared::Login(attempt) => {
                    let (attempt, verified) = tokio::task::spawn_blocking(move || {
                        let verified = attempt.verify();
                        (attempt, verified)
                    })
                    .await
                    .unwrap_or_else(|e| std::panic::resume_unwind(e.into_panic()));
                    core_call(
                        &state,
                        move |server, _| {
                            finish_login(server, now(), &mut OsEntropy, attempt.clone(), verified)
                        },
                        |response| response,
                    )
                    .await
                }
                Prepared::Fetch(pending) => {
                    let answer = fetch_document(&state, &pending.fetch).await;
                    if let Err(e) = &answer {
                        tracing::info!(client_id = %pending.fetch.client_id.as_str(), error = ?e, "client metadata document not fetched");
                    }
                    core_call(
                        &state,
                        move |server, state| {
                            finish_fetch(
                                server,
                                now(),
                                &mut OsEntropy,
                                &state.policy,
                                pending.clone(),
                                answer.clone(),
                            )
                        },
                        |response| response,
                    )
                    .await
                }
            }
        }
    };
    tracing::debug!(status = response.status, "authorization server answered");
    Ok(to_hyper(response))
}

/// Fetch a client metadata document as the core asked: resolve the host and check every
/// address with the core, then one request (no redirects), the body read up to
/// [`DocumentFetch::len_max`], all within [`DocumentFetch::timeout_secs`].
// spec: CIMD-4
async fn fetch_document(
    state: &AsState,
    fetch: &DocumentFetch,
) -> Result<HttpResponse, FetchFailure> {
    let transport = |e: &dyn std::fmt::Display| FetchFailure::Transport(e.to_string());
    let call = async {
        let url = &fetch.request.url;
        let parts = mcp_auth_proto::uri::parse_uri(url).map_err(|e| transport(&e))?;
        let host = parts.host.trim_start_matches('[').trim_end_matches(']');
        let port = parts
            .port
            .unwrap_or(if parts.scheme == "http" { 80 } else { 443 });
        let addresses: Vec<_> = tokio::net::lookup_host((host, port))
            .await
            .map_err(|e| transport(&e))?
            .collect();
        let allowed = !addresses.is_empty()
            && addresses
                .iter()
                .all(|a| may_connect(a.ip(), state.fetcher.resolver.allow_loopback));
        if !allowed {
            return Err(FetchFailure::AddressRefused);
        }
        let response = state
            .fetcher
            .request(&fetch.request)
            .await
            .map_err(|e| transport(&e))?;
        let (parts, body) = response.into_parts();
        let body = match Limited::new(body, fetch.len_max).collect().await {
            Ok(b) => b.to_bytes(),
            Err(e) if e.is::<http_body_util::LengthLimitError>() => {
                return Err(FetchFailure::TooLarge);
            }
            Err(e) => return Err(transport(&e)),
        };
        Ok(from_parts(&parts, body.to_vec()))
    };
    let limit = std::time::Duration::from_secs(fetch.timeout_secs);
    tokio::time::timeout(limit, call)
        .await
        .unwrap_or_else(|_| Err(FetchFailure::Transport("timeout".into())))
}

/// Serve the authorization server on `listener` until `shutdown` completes.
pub async fn run(listener: TcpListener, state: Arc<AsState>, shutdown: impl Future<Output = ()>) {
    run_tls(listener, None, state, shutdown).await;
}

/// [`run`], over TLS when `tls` is given.
pub async fn run_tls(
    listener: TcpListener,
    tls: Option<tokio_rustls::TlsAcceptor>,
    state: Arc<AsState>,
    shutdown: impl Future<Output = ()>,
) {
    let service = tower::service_fn(move |request: http::Request<hyper::body::Incoming>| {
        handle_request(Arc::clone(&state), request)
    });
    crate::net::serve_tls(listener, tls, service, shutdown).await;
}

/// The resolver of [`DocumentClient`]: the system's, keeping only the addresses the core's
/// [`may_connect`] accepts; none left is an error, so nothing is connected to.
#[derive(Clone, Debug)]
struct PolicyResolver {
    allow_loopback: bool,
}

type Resolving =
    Pin<Box<dyn Future<Output = std::io::Result<std::vec::IntoIter<SocketAddr>>> + Send>>;

impl tower::Service<Name> for PolicyResolver {
    type Response = std::vec::IntoIter<SocketAddr>;
    type Error = std::io::Error;
    type Future = Resolving;

    fn poll_ready(
        &mut self,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), Self::Error>> {
        std::task::Poll::Ready(Ok(()))
    }

    fn call(&mut self, name: Name) -> Self::Future {
        let allow_loopback = self.allow_loopback;
        Box::pin(async move {
            let allowed: Vec<SocketAddr> = tokio::net::lookup_host((name.as_str(), 0))
                .await?
                .filter(|a| may_connect(a.ip(), allow_loopback))
                .collect();
            if allowed.is_empty() {
                return Err(std::io::Error::other(
                    "the host resolves to no address a client metadata document may be fetched from",
                ));
            }
            Ok(allowed.into_iter())
        })
    }
}

/// The https client that fetches client metadata documents: rustls on aws-lc-rs with Mozilla's
/// roots, HTTP/1.1, connections only to addresses the core's [`may_connect`] accepts (checked
/// in the resolver, so a name cannot resolve to another address between a check and the
/// connection), no redirects followed (hyper's client never follows them).
#[derive(Clone, Debug)]
pub struct DocumentClient {
    inner: HyperClient<HttpsConnector<HttpConnector<PolicyResolver>>, Full<Bytes>>,
    resolver: PolicyResolver,
}

impl DocumentClient {
    /// A client; `allow_loopback` is the development switch
    /// ([`AsConfig::cimd_allow_loopback`]).
    pub fn new(allow_loopback: bool) -> Self {
        Self::with_roots(allow_loopback, mcp_auth_layer::fetch::mozilla_roots())
    }

    /// [`DocumentClient::new`], trusting exactly `roots` for https.
    pub fn with_roots(allow_loopback: bool, roots: rustls::RootCertStore) -> Self {
        let resolver = PolicyResolver { allow_loopback };
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let tls = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("aws-lc-rs supports the default protocol versions")
            .with_root_certificates(roots)
            .with_no_client_auth();
        let mut http = HttpConnector::new_with_resolver(resolver.clone());
        // The URL's scheme was checked by the core (https, or http to loopback under the
        // switch); an https URL always goes through TLS with the verifier above.
        http.enforce_http(false);
        let connector = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(tls)
            .https_or_http()
            .enable_http1()
            .wrap_connector(http);
        Self {
            inner: HyperClient::builder(TokioExecutor::new()).build(connector),
            resolver,
        }
    }

    /// Send `request` (a `GET` from a [`DocumentFetch`]); the body is left unread.
    async fn request(
        &self,
        request: &mcp_auth_proto::http::HttpRequest,
    ) -> Result<http::Response<hyper::body::Incoming>, String> {
        let mut builder = http::Request::builder()
            .method(request.method.as_str())
            .uri(&request.url);
        for (name, value) in &request.headers {
            builder = builder.header(name.as_str(), value.as_slice());
        }
        let built = builder
            .body(Full::new(Bytes::new()))
            .map_err(|e| e.to_string())?;
        self.inner.request(built).await.map_err(|e| {
            let mut text = e.to_string();
            let mut source = std::error::Error::source(&e);
            while let Some(cause) = source {
                text.push_str(": ");
                text.push_str(&cause.to_string());
                source = cause.source();
            }
            text
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use mcp_auth_proto::http::{HttpRequest, Method};

    /// The resolver itself refuses what the core refuses, so the connection cannot go to an
    /// address that was not checked, whatever the pre-check saw.
    // spec: CIMD-4
    #[tokio::test]
    async fn the_connector_connects_only_to_checked_addresses() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        tokio::spawn(async move {
            while let Ok((mut tcp, _)) = listener.accept().await {
                use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
                let (mut head, mut buf) = (Vec::new(), [0u8; 512]);
                while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                    match tcp.read(&mut buf).await {
                        Ok(0) | Err(_) => break,
                        Ok(n) => head.extend_from_slice(&buf[..n]),
                    }
                }
                let _ = tcp
                    .write_all(b"HTTP/1.1 204 No Content\r\nconnection: close\r\n\r\n")
                    .await;
            }
        });
        let request = HttpRequest::new(Method::Get, format!("http://localhost:{port}/c"));
        let refused = DocumentClient::new(false).request(&request).await;
        assert!(
            refused
                .as_ref()
                .is_err_and(|e| e.contains("no address a client metadata document")),
            "{:?}",
            refused.map(|r| r.status())
        );
        let allowed = DocumentClient::new(true).request(&request).await;
        assert_eq!(allowed.map(|r| r.status().as_u16()), Ok(204));
    }
}
