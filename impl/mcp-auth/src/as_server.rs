//! The authorization server over hyper 1: decode, one call into
//! [`mcp_auth_proto::server::http::handle`] under a lock held only across that synchronous
//! call, encode. Bodies are bounded ([`crate::net::AS_BODY_LIMIT`]).
//!
//! A client metadata document the core asks for ([`Prepared::Fetch`]) is fetched here, with
//! the lock released: the host is resolved first and every address it resolves to must pass
//! [`AuthorizationServer::may_connect_to`] (no private, link-local or, without the development
//! switch, loopback addresses), then the document is fetched with the https client of the
//! layer (no redirects followed, the body read up to the core's bound, the whole within the
//! core's timeout), and the answer goes back to the core ([`finish_fetch`]).
//! The connection resolves the name again: a name whose answers change between the check and
//! the connection (DNS rebinding) is not caught.

use std::convert::Infallible;
use std::future::Future;
use std::sync::{Arc, Mutex};

use http_body_util::{BodyExt, Limited};
use mcp_auth_layer::fetch::{Http, from_parts};
use mcp_auth_proto::http::HttpResponse;
use mcp_auth_proto::jwt::Signer;
use mcp_auth_proto::server::http::{
    Prepared, UserAgentPolicy, finish_fetch, finish_login, prepare,
};
use mcp_auth_proto::server::{AsConfig, AuthorizationServer, DocumentFetch, FetchFailure};
use mcp_auth_proto::uri::HttpPolicy;
use tokio::net::TcpListener;

use crate::net::{AS_BODY_LIMIT, Body, OsEntropy, now, read_request, to_hyper};

/// The shared state of a running authorization server.
#[derive(Debug)]
pub struct AsState {
    server: Mutex<AuthorizationServer>,
    policy: UserAgentPolicy,
    /// Fetches client metadata documents (https; http to loopback only under the development
    /// switch `cimd_allow_loopback`).
    fetcher: Http,
}

impl AsState {
    /// Wrap a configured core server and the user-agent policy (demo user, auto-approve).
    pub fn new(config: AsConfig, signer: Signer, policy: UserAgentPolicy) -> Arc<Self> {
        let fetcher = Http::new(if config.cimd_allow_loopback {
            HttpPolicy::AllowLoopbackHttp
        } else {
            HttpPolicy::HttpsOnly
        });
        Arc::new(Self {
            server: Mutex::new(AuthorizationServer::new(config, signer)),
            policy,
            fetcher,
        })
    }

    /// Sign new tokens with `signer` from now on; the old key stays in the JWK Set
    /// ([`AuthorizationServer::rotate_key`]).
    pub fn rotate_key(&self, signer: Signer) {
        self.server
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .rotate_key(signer);
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
            let prepared = {
                let mut server = state.lock();
                prepare(&mut server, now(), &mut OsEntropy, &state.policy, &request)
            };
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
                    let mut server = state.lock();
                    finish_login(&mut server, now(), &mut OsEntropy, attempt, verified)
                }
                Prepared::Fetch(pending) => {
                    let answer = fetch_document(&state, &pending.fetch).await;
                    if let Err(e) = &answer {
                        tracing::info!(client_id = %pending.fetch.client_id.as_str(), error = ?e, "client metadata document not fetched");
                    }
                    let mut server = state.lock();
                    finish_fetch(
                        &mut server,
                        now(),
                        &mut OsEntropy,
                        &state.policy,
                        pending,
                        answer,
                    )
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
        let allowed = {
            let server = state.lock();
            !addresses.is_empty() && addresses.iter().all(|a| server.may_connect_to(a.ip()))
        };
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
