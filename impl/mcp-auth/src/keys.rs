//! Signing keys for the authorization server: PKCS#8 PEM files holding an Ed25519, P-256
//! (ES256) or RSA (RS256) private key. A missing file gets a fresh Ed25519 key.
//!
//! Ed25519 uses the core's [`Ed25519Signer`]; ES256 and RS256 are [`JwsSigner`], which
//! implements the core's [`TokenSigner`] with jsonwebtoken's `EncodingKey` and
//! `jsonwebtoken::crypto::sign` (ECDSA signing draws OS randomness inside aws-lc-rs).

use std::path::Path;

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use jsonwebtoken::EncodingKey;
use jsonwebtoken::jwk::{Jwk, ThumbprintHash};
use mcp_auth_proto::Entropy;
use mcp_auth_proto::jwt::{Alg, Ed25519Signer, SignError, Signer, TokenSigner, complete_jwk};

use crate::net::OsEntropy;

/// DER prefix of a PKCS#8 v1 Ed25519 private key (RFC 8410 §7); the 32-byte seed follows.
/// (The core has the same constant but does not export a way to write a key.)
const ED25519_PKCS8_V1_PREFIX: [u8; 16] = [
    0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22, 0x04, 0x20,
];

/// An ES256 or RS256 signer over jsonwebtoken.
pub struct JwsSigner {
    alg: Alg,
    kid: String,
    key: EncodingKey,
    jwk: Jwk,
}

impl JwsSigner {
    /// A signer from a PEM private key for `alg` (ES256: EC P-256; RS256: RSA). The key id is
    /// the key's RFC 7638 thumbprint.
    pub fn from_pem(alg: Alg, pem: &[u8]) -> Result<Self, SignError> {
        let err = |e: jsonwebtoken::errors::Error| SignError(e.to_string());
        let key = match alg {
            Alg::ES256 => EncodingKey::from_ec_pem(pem).map_err(err)?,
            Alg::RS256 => EncodingKey::from_rsa_pem(pem).map_err(err)?,
            Alg::EdDSA => EncodingKey::from_ed_pem(pem).map_err(err)?,
        };
        let mut jwk = Jwk::from_encoding_key(&key, alg.jsonwebtoken()).map_err(err)?;
        let kid = jwk.thumbprint(ThumbprintHash::SHA256).map_err(err)?;
        complete_jwk(&mut jwk, &kid, alg);
        // Prove the key signs (from_*_pem accepts some keys the signer then refuses).
        jsonwebtoken::crypto::sign(b"probe", &key, alg.jsonwebtoken()).map_err(err)?;
        Ok(Self { alg, kid, key, jwk })
    }
}

impl TokenSigner for JwsSigner {
    fn alg(&self) -> Alg {
        self.alg
    }

    fn kid(&self) -> &str {
        &self.kid
    }

    fn sign(&self, message: &[u8]) -> Result<Vec<u8>, SignError> {
        let signature = jsonwebtoken::crypto::sign(message, &self.key, self.alg.jsonwebtoken())
            .map_err(|e| SignError(e.to_string()))?;
        URL_SAFE_NO_PAD
            .decode(signature)
            .map_err(|e| SignError(e.to_string()))
    }

    fn public_jwk(&self) -> Jwk {
        self.jwk.clone()
    }
}

/// An Ed25519 signer whose key id is its thumbprint.
fn ed25519_from_der(der: &[u8]) -> Result<Signer, SignError> {
    let probe = Ed25519Signer::from_pkcs8_der("probe", der)?;
    let kid = probe
        .public_jwk()
        .thumbprint(ThumbprintHash::SHA256)
        .map_err(|e| SignError(e.to_string()))?;
    Ok(Signer::new(Ed25519Signer::from_pkcs8_der(kid, der)?))
}

/// A fresh Ed25519 key from OS randomness, as PKCS#8 v1 DER.
pub fn generate_ed25519_der() -> Vec<u8> {
    let mut seed = [0u8; 32];
    OsEntropy.fill(&mut seed);
    let mut der = ED25519_PKCS8_V1_PREFIX.to_vec();
    der.extend_from_slice(&seed);
    der
}

/// A fresh in-memory Ed25519 signer.
pub fn ephemeral() -> Signer {
    ed25519_from_der(&generate_ed25519_der()).expect("a generated Ed25519 key is valid")
}

/// PEM-encode a PKCS#8 private key.
pub fn to_pem(der: &[u8]) -> String {
    let b64 = STANDARD.encode(der);
    let mut out = String::from("-----BEGIN PRIVATE KEY-----\n");
    for line in b64.as_bytes().chunks(64) {
        out.push_str(&String::from_utf8_lossy(line));
        out.push('\n');
    }
    out.push_str("-----END PRIVATE KEY-----\n");
    out
}

fn pem_der(pem: &str) -> Option<Vec<u8>> {
    let body: String = pem
        .lines()
        .skip_while(|l| !l.starts_with("-----BEGIN PRIVATE KEY-----"))
        .skip(1)
        .take_while(|l| !l.starts_with("-----END"))
        .collect();
    STANDARD.decode(body.trim()).ok()
}

/// Load the signing key in `path` (Ed25519, P-256 or RSA, PKCS#8 PEM), or create an Ed25519
/// key there (mode 0600) if the file does not exist.
pub fn load_or_create(path: &Path) -> Result<Signer, String> {
    if !path.exists() {
        let der = generate_ed25519_der();
        write_private(path, to_pem(&der).as_bytes())
            .map_err(|e| format!("writing {}: {e}", path.display()))?;
        tracing::info!(path = %path.display(), "created a new Ed25519 signing key");
        return ed25519_from_der(&der).map_err(|e| e.to_string());
    }
    let pem =
        std::fs::read_to_string(path).map_err(|e| format!("reading {}: {e}", path.display()))?;
    from_pem(&pem).map_err(|e| format!("{}: {e}", path.display()))
}

/// A signer from a PKCS#8 PEM private key (Ed25519, P-256 or RSA).
pub fn from_pem(pem: &str) -> Result<Signer, String> {
    if let Some(signer) = pem_der(pem).and_then(|der| ed25519_from_der(&der).ok()) {
        return Ok(signer);
    }
    for alg in [Alg::ES256, Alg::RS256] {
        if let Ok(signer) = JwsSigner::from_pem(alg, pem.as_bytes()) {
            return Ok(Signer::new(signer));
        }
    }
    Err("not a PKCS#8 PEM Ed25519, P-256 or RSA private key".into())
}

/// A fresh Ed25519 signer and its private key as PKCS#8 PEM (to be kept by a store).
pub fn generate() -> (Signer, String) {
    let der = generate_ed25519_der();
    let signer = ed25519_from_der(&der).expect("a generated Ed25519 key is valid");
    (signer, to_pem(&der))
}

fn write_private(path: &Path, contents: &[u8]) -> std::io::Result<()> {
    use std::io::Write as _;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        options.mode(0o600);
    }
    options.open(path)?.write_all(contents)
}
