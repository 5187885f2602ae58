//! Signers for the benches: [`mcp_auth_proto::jwt::TokenSigner`] over aws-lc-rs key pairs
//! generated fresh and parsed once.

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{
    ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair, RSA_PKCS1_SHA256, RsaKeyPair,
};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::jwk::{
    AlgorithmParameters, CommonParameters, EllipticCurve, EllipticCurveKeyParameters,
    EllipticCurveKeyType, Jwk, OctetKeyPairParameters, OctetKeyPairType, RSAKeyParameters,
    RSAKeyType,
};
use mcp_auth_proto::jwt::{Alg, Ed25519Signer, SignError, Signer, TokenSigner, complete_jwk};

/// The key of a signer: what raw signing with a pre-parsed key uses.
pub enum KeyPairOf {
    /// Ed25519.
    Ed25519(aws_lc_rs::signature::Ed25519KeyPair),
    /// P-256.
    Ecdsa(EcdsaKeyPair),
    /// RSA.
    Rsa(RsaKeyPair),
}

impl KeyPairOf {
    /// A fresh key for `alg` (Ed25519 from a random seed).
    pub fn generate(alg: Alg) -> (Self, [u8; 32]) {
        let mut seed = [0u8; 32];
        aws_lc_rs::rand::fill(&mut seed).expect("OS randomness");
        let pair = match alg {
            Alg::EdDSA => Self::Ed25519(
                aws_lc_rs::signature::Ed25519KeyPair::from_seed_unchecked(&seed)
                    .expect("32-byte seed"),
            ),
            Alg::ES256 => Self::Ecdsa(
                EcdsaKeyPair::generate(&ECDSA_P256_SHA256_FIXED_SIGNING).expect("P-256 key"),
            ),
            Alg::RS256 => Self::Rsa(
                RsaKeyPair::generate(aws_lc_rs::rsa::KeySize::Rsa2048).expect("RSA-2048 key"),
            ),
        };
        (pair, seed)
    }

    /// Sign `message` (the raw-signing baseline).
    pub fn sign(&self, message: &[u8]) -> Vec<u8> {
        match self {
            Self::Ed25519(k) => k.sign(message).as_ref().to_vec(),
            Self::Ecdsa(k) => k
                .sign(&SystemRandom::new(), message)
                .expect("ECDSA signs")
                .as_ref()
                .to_vec(),
            Self::Rsa(k) => {
                let mut out = vec![0; k.public_modulus_len()];
                k.sign(&RSA_PKCS1_SHA256, &SystemRandom::new(), message, &mut out)
                    .expect("RSA signs");
                out
            }
        }
    }

    /// The public key as a JWK with `kid`, `alg` and `use`.
    pub fn public_jwk(&self, kid: &str) -> Jwk {
        let b64 = |b: &[u8]| URL_SAFE_NO_PAD.encode(b);
        let (algorithm, alg) = match self {
            Self::Ed25519(k) => (
                AlgorithmParameters::OctetKeyPair(OctetKeyPairParameters {
                    key_type: OctetKeyPairType::OctetKeyPair,
                    curve: EllipticCurve::Ed25519,
                    x: b64(k.public_key().as_ref()),
                }),
                Alg::EdDSA,
            ),
            Self::Ecdsa(k) => {
                let point = k.public_key().as_ref();
                (
                    AlgorithmParameters::EllipticCurve(EllipticCurveKeyParameters {
                        key_type: EllipticCurveKeyType::EC,
                        curve: EllipticCurve::P256,
                        x: b64(&point[1..33]),
                        y: b64(&point[33..65]),
                    }),
                    Alg::ES256,
                )
            }
            Self::Rsa(k) => {
                let (n, e) = rsa_components(k);
                (
                    AlgorithmParameters::RSA(RSAKeyParameters {
                        key_type: RSAKeyType::RSA,
                        n: b64(&n),
                        e: b64(&e),
                    }),
                    Alg::RS256,
                )
            }
        };
        let mut jwk = Jwk {
            common: CommonParameters::default(),
            algorithm,
        };
        complete_jwk(&mut jwk, kid, alg);
        jwk
    }
}

/// `(n, e)` of an RSA key, read from its PKCS#1 `RSAPublicKey` DER (SEQUENCE { n, e }).
fn rsa_components(key: &RsaKeyPair) -> (Vec<u8>, Vec<u8>) {
    let der = key.public_key().as_ref().to_vec();
    // (start of contents, length) of the TLV at `at`.
    let read = |at: usize| -> (usize, usize) {
        let mut len = usize::from(der[at + 1]);
        let mut start = at + 2;
        if len & 0x80 != 0 {
            let n = len & 0x7f;
            len = der[start..start + n]
                .iter()
                .fold(0, |a, &b| (a << 8) | usize::from(b));
            start += n;
        }
        (start, len)
    };
    let (seq_start, _) = read(0);
    let (n_start, n_len) = read(seq_start);
    let (e_start, e_len) = read(n_start + n_len);
    let strip = |b: &[u8]| {
        let zeros = b.iter().take_while(|&&x| x == 0).count();
        b[zeros..].to_vec()
    };
    (
        strip(&der[n_start..n_start + n_len]),
        strip(&der[e_start..e_start + e_len]),
    )
}

/// A [`TokenSigner`] over a pre-parsed aws-lc-rs key pair.
pub struct BenchSigner {
    alg: Alg,
    kid: String,
    pair: KeyPairOf,
    jwk: Jwk,
}

impl BenchSigner {
    /// Wrap a key pair.
    pub fn new(alg: Alg, kid: &str, pair: KeyPairOf) -> Self {
        let jwk = pair.public_jwk(kid);
        Self {
            alg,
            kid: kid.to_owned(),
            pair,
            jwk,
        }
    }
}

impl TokenSigner for BenchSigner {
    fn alg(&self) -> Alg {
        self.alg
    }

    fn kid(&self) -> &str {
        &self.kid
    }

    fn sign(&self, message: &[u8]) -> Result<Vec<u8>, SignError> {
        Ok(self.pair.sign(message))
    }

    fn public_jwk(&self) -> Jwk {
        self.jwk.clone()
    }
}

/// A fresh signer for `alg`: the core's [`Ed25519Signer`] for EdDSA, a [`BenchSigner`] else.
pub fn signer(alg: Alg, kid: &str) -> Signer {
    let (pair, seed) = KeyPairOf::generate(alg);
    match alg {
        Alg::EdDSA => Signer::new(Ed25519Signer::from_seed(kid, seed)),
        _ => Signer::new(BenchSigner::new(alg, kid, pair)),
    }
}
