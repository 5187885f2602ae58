//! TLS for the servers: certificates from PEM files (`serve --tls-cert/--tls-key`), or a
//! throwaway local certificate authority (`demo --tls`, tests) made with rcgen.

use std::path::Path;
use std::sync::Arc;

use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair, KeyUsagePurpose};
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use tokio_rustls::TlsAcceptor;

/// A server's TLS configuration (HTTP/1.1 and HTTP/2 by ALPN).
pub fn acceptor(
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
) -> Result<TlsAcceptor, String> {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .map_err(|e| e.to_string())?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(TlsAcceptor::from(Arc::new(config)))
}

/// Load a certificate chain and its private key from PEM files.
pub fn from_pem_files(cert: &Path, key: &Path) -> Result<TlsAcceptor, String> {
    let chain = CertificateDer::pem_file_iter(cert)
        .map_err(|e| format!("{}: {e}", cert.display()))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("{}: {e}", cert.display()))?;
    if chain.is_empty() {
        return Err(format!("{}: no certificate", cert.display()));
    }
    let key = PrivateKeyDer::from_pem_file(key).map_err(|e| format!("{}: {e}", key.display()))?;
    acceptor(chain, key)
}

/// Root certificates from a PEM file (a private CA for `connect --ca-file`).
pub fn roots_from_pem_file(path: &Path) -> Result<rustls::RootCertStore, String> {
    let mut roots = rustls::RootCertStore::empty();
    for cert in
        CertificateDer::pem_file_iter(path).map_err(|e| format!("{}: {e}", path.display()))?
    {
        let cert = cert.map_err(|e| format!("{}: {e}", path.display()))?;
        roots
            .add(cert)
            .map_err(|e| format!("{}: {e}", path.display()))?;
    }
    if roots.is_empty() {
        return Err(format!("{}: no certificate", path.display()));
    }
    Ok(roots)
}

/// What a server stack needs for https: its TLS acceptor, and the roots its own components
/// trust when they call each other (the resource server fetching the AS's keys).
#[derive(Clone)]
pub struct ServerTls {
    /// The server side.
    pub acceptor: TlsAcceptor,
    /// The roots the stack's own clients trust.
    pub roots: rustls::RootCertStore,
}

impl std::fmt::Debug for ServerTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerTls")
            .field("roots", &self.roots.len())
            .finish_non_exhaustive()
    }
}

/// A throwaway certificate authority and a server certificate it signed for `127.0.0.1`,
/// `::1` and `localhost`: for `demo --tls` and tests, never for a deployment.
pub struct LocalCa {
    /// The CA certificate (PEM), to trust in clients and browsers.
    pub ca_pem: String,
    /// The CA certificate as a root store.
    pub roots: rustls::RootCertStore,
    /// The server side.
    pub acceptor: TlsAcceptor,
}

impl std::fmt::Debug for LocalCa {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalCa").finish_non_exhaustive()
    }
}

impl LocalCa {
    /// The server side of this CA's certificate, trusting the CA.
    pub fn server_tls(&self) -> ServerTls {
        ServerTls {
            acceptor: self.acceptor.clone(),
            roots: self.roots.clone(),
        }
    }

    /// Make a new CA and server certificate (keys in memory only).
    pub fn new() -> Result<Self, String> {
        let err = |e: rcgen::Error| e.to_string();
        let mut ca = CertificateParams::new(Vec::<String>::new()).map_err(err)?;
        ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        ca.distinguished_name
            .push(rcgen::DnType::CommonName, "mcp-auth throwaway local CA");
        let ca =
            CertifiedIssuer::self_signed(ca, KeyPair::generate().map_err(err)?).map_err(err)?;
        let leaf_key = KeyPair::generate().map_err(err)?;
        let leaf = CertificateParams::new(vec![
            "127.0.0.1".to_owned(),
            "::1".to_owned(),
            "localhost".to_owned(),
        ])
        .map_err(err)?
        .signed_by(&leaf_key, &ca)
        .map_err(err)?;
        let mut roots = rustls::RootCertStore::empty();
        roots.add(ca.der().clone()).map_err(|e| e.to_string())?;
        let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(leaf_key.serialize_der()));
        let acceptor = acceptor(vec![leaf.der().clone(), ca.der().clone()], key)?;
        Ok(Self {
            ca_pem: ca.pem(),
            roots,
            acceptor,
        })
    }
}
