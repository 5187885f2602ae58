//! The client's transport over real loopback HTTPS: a server with a certificate from a test CA
//! made with rcgen, and clients that trust that CA, another CA, or the Mozilla roots.

use std::convert::Infallible;
use std::sync::Arc;

use mcp_auth::client::{Http, McpClient, Options};
use mcp_auth::net::full;
use mcp_auth::transcript::Transcript;
use mcp_auth_proto::http::{HttpRequest, Method};
use mcp_auth_proto::uri::HttpPolicy;
use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair, KeyUsagePurpose};
use tokio_rustls::rustls::{self, RootCertStore, pki_types};

struct Ca {
    issuer: CertifiedIssuer<'static, KeyPair>,
}

impl Ca {
    /// A CA named `name` (CAs need distinct names, or a verifier tries the wrong one's key).
    fn new(name: &str) -> Self {
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("params");
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, name);
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let issuer =
            CertifiedIssuer::self_signed(params, KeyPair::generate().expect("key")).expect("CA");
        Self { issuer }
    }

    fn roots(&self) -> RootCertStore {
        let mut roots = RootCertStore::empty();
        roots.add(self.issuer.der().clone()).expect("CA cert");
        roots
    }

    /// A leaf certificate for `names`, and its key.
    fn leaf(
        &self,
        names: &[&str],
    ) -> (
        pki_types::CertificateDer<'static>,
        pki_types::PrivateKeyDer<'static>,
    ) {
        let key = KeyPair::generate().expect("leaf key");
        let params =
            CertificateParams::new(names.iter().map(|n| (*n).to_owned()).collect::<Vec<_>>())
                .expect("leaf params");
        let cert = params.signed_by(&key, &self.issuer).expect("leaf");
        let key = pki_types::PrivateKeyDer::Pkcs8(pki_types::PrivatePkcs8KeyDer::from(
            key.serialize_der(),
        ));
        (cert.der().clone(), key)
    }
}

/// Serve `200 hello` over HTTPS on an ephemeral 127.0.0.1 port with a leaf of `ca` for
/// `names`. Returns the port.
async fn https_server(ca: &Ca, names: &[&str]) -> u16 {
    let (cert, key) = ca.leaf(names);
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_no_client_auth()
        .with_single_cert(vec![cert], key)
        .expect("server config");
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let port = listener.local_addr().expect("addr").port();
    tokio::spawn(async move {
        loop {
            let Ok((tcp, _)) = listener.accept().await else {
                continue;
            };
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let Ok(tls) = acceptor.accept(tcp).await else {
                    return;
                };
                let service = hyper::service::service_fn(|_req| async {
                    Ok::<_, Infallible>(http::Response::new(full("hello")))
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(hyper_util::rt::TokioIo::new(tls), service)
                    .await;
            });
        }
    });
    port
}

fn get(url: &str) -> HttpRequest {
    HttpRequest::new(Method::Get, url)
}

// spec: GEN-8
#[tokio::test]
async fn https_with_a_trusted_ca_succeeds_and_an_untrusted_one_fails() {
    let ca = Ca::new("test CA");
    let port = https_server(&ca, &["127.0.0.1", "localhost"]).await;
    let url = format!("https://127.0.0.1:{port}/.well-known/oauth-protected-resource");

    let trusted = Http::with_roots(HttpPolicy::HttpsOnly, ca.roots());
    let ok = trusted.send(&get(&url)).await.expect("trusted CA");
    assert_eq!((ok.status, ok.body.as_slice()), (200, &b"hello"[..]));

    let other = Http::with_roots(HttpPolicy::HttpsOnly, Ca::new("other CA").roots());
    let error = other.send(&get(&url)).await.expect_err("untrusted CA");
    assert!(
        format!("{error:?}").contains("UnknownIssuer"),
        "certificate refused: {error:?}"
    );

    // The default client trusts the Mozilla roots only, never a private CA.
    let default = Http::new(HttpPolicy::AllowLoopbackHttp);
    assert!(default.send(&get(&url)).await.is_err());
}

// spec: GEN-8
#[tokio::test]
async fn a_certificate_for_another_host_name_fails() {
    let ca = Ca::new("test CA");
    let port = https_server(&ca, &["mcp.example"]).await;
    let http = Http::with_roots(HttpPolicy::HttpsOnly, ca.roots());
    let error = http
        .send(&get(&format!("https://127.0.0.1:{port}/")))
        .await
        .expect_err("wrong name");
    assert!(
        format!("{error:?}").contains("not valid for name"),
        "host name checked: {error:?}"
    );
}

// spec: GEN-6, GEN-8, PF-8
#[tokio::test]
async fn plain_http_only_to_loopback_and_only_when_allowed() {
    // Nothing listens on port 9 (discard): the policy refuses before connecting.
    let strict = Http::new(HttpPolicy::HttpsOnly);
    let refused = strict.send(&get("http://127.0.0.1:9/")).await;
    assert!(format!("{refused:?}").contains("refused to send"));
    let lenient = Http::new(HttpPolicy::AllowLoopbackHttp);
    let remote = lenient.send(&get("http://mcp.example/mcp")).await;
    assert!(format!("{remote:?}").contains("refused to send"));
    let loopback = lenient.send(&get("http://127.0.0.1:9/")).await;
    assert!(
        !format!("{loopback:?}").contains("refused to send"),
        "allowed (and then fails to connect): {loopback:?}"
    );
}

// spec: GEN-8
#[tokio::test]
async fn the_client_flow_stops_at_an_untrusted_mcp_server() {
    let ca = Ca::new("test CA");
    let port = https_server(&ca, &["127.0.0.1"]).await;
    let mut options = Options::headless(format!("https://127.0.0.1:{port}/mcp"));
    options.allow_loopback_http = false;
    options.roots = Some(Ca::new("other CA").roots());
    let mut client = McpClient::new(options, Transcript::shared())
        .await
        .expect("client");
    let error = client.authorize().await.expect_err("untrusted");
    assert!(format!("{error:?}").contains("UnknownIssuer"), "{error:?}");
}
