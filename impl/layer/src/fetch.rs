//! [`Http`]: the outbound HTTP client of the layer (the issuer's metadata and keys,
//! introspection) and of the `mcp-auth` client. It exchanges the core's values
//! ([`HttpRequest`], [`HttpResponse`]) and enforces the core's transport policy on every
//! request.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper_rustls::{HttpsConnector, HttpsConnectorBuilder};
use hyper_util::client::legacy::Client as HyperClient;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use mcp_auth_proto::http::{HttpRequest, HttpResponse};
use mcp_auth_proto::uri::HttpPolicy;

/// How long one HTTP exchange may take.
pub const EXCHANGE_TIMEOUT: Duration = Duration::from_secs(15);

/// Largest response body [`Http::send`] reads (1 MiB).
pub const RESPONSE_LEN_MAX: usize = 1024 * 1024;

/// A request that could not be made or whose answer could not be read: refused by the
/// transport policy, connection or TLS failure, timeout, body too large.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TransportError(pub String);

impl std::fmt::Display for TransportError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for TransportError {}

/// An HTTP/1.1 client that exchanges the core's values: https with certificate and host-name
/// verification (rustls on aws-lc-rs), and plain http only to loopback hosts when its
/// [`HttpPolicy`] is [`HttpPolicy::AllowLoopbackHttp`]. Every request's URL is checked with
/// [`HttpPolicy::permits`] before anything is sent.
// spec: GEN-6, GEN-8, PF-8
#[derive(Clone, Debug)]
pub struct Http {
    inner: HyperClient<HttpsConnector<HttpConnector>, Full<Bytes>>,
    policy: HttpPolicy,
}

impl Http {
    /// A client trusting the Mozilla root certificates (webpki-roots), with a connection pool.
    pub fn new(policy: HttpPolicy) -> Self {
        Self::with_roots(policy, mozilla_roots())
    }

    /// A client trusting exactly `roots` (e.g. a private CA, or a test CA).
    pub fn with_roots(policy: HttpPolicy, roots: rustls::RootCertStore) -> Self {
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let tls = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("aws-lc-rs supports the default protocol versions")
            .with_root_certificates(roots)
            .with_no_client_auth();
        // `https_or_http`: the scheme is the policy's business (checked per request), and an
        // https URL always goes through TLS with the verifier above.
        let connector = HttpsConnectorBuilder::new()
            .with_tls_config(tls)
            .https_or_http()
            .enable_http1()
            .build();
        Self {
            inner: HyperClient::builder(TokioExecutor::new()).build(connector),
            policy,
        }
    }

    /// The transport policy.
    pub fn policy(&self) -> HttpPolicy {
        self.policy
    }

    /// The same client (connection pool, trusted roots) under another policy.
    #[must_use]
    pub fn with_policy(&self, policy: HttpPolicy) -> Self {
        Self {
            inner: self.inner.clone(),
            policy,
        }
    }

    fn build(&self, request: &HttpRequest) -> Result<http::Request<Full<Bytes>>, TransportError> {
        if !self.policy.permits(&request.url) {
            return Err(TransportError(format!(
                "refused to send to {} (https only{})",
                shown(request),
                if self.policy == HttpPolicy::AllowLoopbackHttp {
                    ", or http to a loopback host"
                } else {
                    ""
                }
            )));
        }
        let mut builder = http::Request::builder()
            .method(request.method.as_str())
            .uri(&request.url);
        for (name, value) in &request.headers {
            builder = builder.header(name.as_str(), value.as_slice());
        }
        builder
            .body(Full::new(Bytes::from(request.body.clone())))
            .map_err(|e| TransportError(format!("bad request {}: {e}", shown(request))))
    }

    /// Send a request and return the answer's head and body stream, unread (the caller
    /// bounds what it reads). Not bounded in time: wrap it in a timeout.
    pub async fn request(
        &self,
        request: &HttpRequest,
    ) -> Result<http::Response<hyper::body::Incoming>, TransportError> {
        self.inner.request(self.build(request)?).await.map_err(|e| {
            TransportError(format!(
                "{} {}: {}",
                request.method.as_str(),
                shown(request),
                causes(&e)
            ))
        })
    }

    /// Send a request and read the whole answer (at most [`RESPONSE_LEN_MAX`] bytes, within
    /// [`EXCHANGE_TIMEOUT`]).
    pub async fn send(&self, request: &HttpRequest) -> Result<HttpResponse, TransportError> {
        let call = async {
            let (parts, body) = self.request(request).await?.into_parts();
            let body = Limited::new(body, RESPONSE_LEN_MAX)
                .collect()
                .await
                .map_err(|e| TransportError(format!("reading {}: {e}", shown(request))))?
                .to_bytes();
            Ok(from_parts(&parts, body.to_vec()))
        };
        tokio::time::timeout(EXCHANGE_TIMEOUT, call)
            .await
            .map_err(|_| TransportError(format!("timeout: {}", shown(request))))?
    }
}

/// The Mozilla root certificates (webpki-roots).
pub fn mozilla_roots() -> rustls::RootCertStore {
    let mut roots = rustls::RootCertStore::empty();
    roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    roots
}

/// The URL of a request as error messages show it: query values (`code`, `state`, ...)
/// shortened, as in the logs ([CLI-6](mcp_auth_proto::requirements#CLI-6)).
// spec: CLI-6
fn shown(request: &HttpRequest) -> String {
    mcp_auth_proto::redact::shorten_url(&request.url)
}

/// An error and its sources, e.g. "client error (Connect): invalid peer certificate: UnknownIssuer".
fn causes(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// The core's response value from a hyper response head and its body.
pub fn from_parts(parts: &http::response::Parts, body: Vec<u8>) -> HttpResponse {
    HttpResponse {
        status: parts.status.as_u16(),
        headers: parts
            .headers
            .iter()
            .map(|(n, v)| {
                (
                    n.as_str().to_owned(),
                    String::from_utf8_lossy(v.as_bytes()).into_owned(),
                )
            })
            .collect(),
        body,
    }
}
