//! The authorization server over hyper 1: decode, one call into
//! [`mcp_auth_proto::server::http::handle`] under a lock held only across that synchronous
//! call, encode. Bodies are bounded ([`crate::net::AS_BODY_LIMIT`]).

use std::convert::Infallible;
use std::future::Future;
use std::sync::{Arc, Mutex};

use mcp_auth_proto::jwt::Signer;
use mcp_auth_proto::server::http::{Prepared, UserAgentPolicy, finish_login, prepare};
use mcp_auth_proto::server::{AsConfig, AuthorizationServer};
use tokio::net::TcpListener;

use crate::net::{AS_BODY_LIMIT, Body, OsEntropy, now, read_request, to_hyper};

/// The shared state of a running authorization server.
#[derive(Debug)]
pub struct AsState {
    server: Mutex<AuthorizationServer>,
    policy: UserAgentPolicy,
}

impl AsState {
    /// Wrap a configured core server and the user-agent policy (demo user, auto-approve).
    pub fn new(config: AsConfig, signer: Signer, policy: UserAgentPolicy) -> Arc<Self> {
        Arc::new(Self {
            server: Mutex::new(AuthorizationServer::new(config, signer)),
            policy,
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
            }
        }
    };
    tracing::debug!(status = response.status, "authorization server answered");
    Ok(to_hyper(response))
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
