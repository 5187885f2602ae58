//! The verified-token cache (`src/cache.rs`) behind `ResourceServer::authenticate_cached`: it
//! answers exactly what `authenticate` answers, re-checks `exp`/`nbf` on every hit, keeps only
//! tokens that passed full validation, forgets everything when keys are installed, and stays
//! within its bound with a deterministic eviction order.

use jsonwebtoken::jwk::JwkSet;
use mcp_auth_proto::cache::{TOKEN_CACHE_ENTRIES, TOKEN_CACHE_TOKEN_LEN_MAX, TokenCache};
use mcp_auth_proto::jwt::{
    Access, AccessClaims, Audience, Ed25519Signer, KeySet, Signer, ValidationPolicy,
};
use mcp_auth_proto::resource::{ResourceServer, RsConfig};
use mcp_auth_proto::types::ScopeSet;
use mcp_auth_proto::uri::{HttpPolicy, Issuer, ResourceUri};
use mcp_auth_proto::{Rejection, UnixTime};

const ISSUER: &str = "https://as.example.com";
const RESOURCE: &str = "https://mcp.example.com/mcp";
const NOW: u64 = 1_700_000_000;

fn signer(seed: u8) -> Signer {
    Signer::new(Ed25519Signer::from_seed(format!("k{seed}"), [seed; 32]))
}

fn server(signer: &Signer) -> ResourceServer {
    let mut rs = ResourceServer::new(RsConfig::new(
        ResourceUri::parse(RESOURCE, HttpPolicy::HttpsOnly).unwrap(),
        Issuer::parse(ISSUER, HttpPolicy::HttpsOnly).unwrap(),
        ScopeSet::from_tokens(["mcp:tools"]),
    ));
    rs.set_keys(UnixTime::from_secs(NOW), keys(signer));
    rs
}

fn keys(signer: &Signer) -> KeySet {
    KeySet::from_jwks(&JwkSet {
        keys: vec![signer.public_jwk().clone()],
    })
}

fn claims(jti: &str) -> AccessClaims {
    AccessClaims {
        iss: ISSUER.into(),
        sub: "alice".into(),
        aud: Audience::One(RESOURCE.into()),
        exp: NOW + 3600,
        iat: NOW,
        nbf: Some(NOW),
        jti: jti.into(),
        client_id: "client-1".into(),
        scope: Some("mcp:tools".into()),
    }
}

fn bearer(token: &str) -> String {
    format!("Bearer {token}")
}

fn both(
    rs: &mut ResourceServer,
    now: u64,
    token: &str,
) -> (Result<Access, Rejection>, Result<Access, Rejection>) {
    let header = bearer(token);
    let now = UnixTime::from_secs(now);
    let plain = rs
        .authenticate(now, [header.as_bytes()])
        .map_err(|c| c.rejection);
    let cached = rs
        .authenticate_cached(now, [header.as_bytes()])
        .map_err(|c| c.rejection);
    (plain, cached)
}

#[test]
fn a_hit_answers_what_a_validation_answers() {
    let s = signer(1);
    let mut rs = server(&s);
    let token = s.sign_access_token(&claims("j1")).unwrap();
    let (plain, first) = both(&mut rs, NOW, &token);
    assert!(plain.is_ok());
    assert_eq!(plain, first);
    assert_eq!(rs.token_cache().len(), 1);
    let (plain, hit) = both(&mut rs, NOW + 10, &token);
    assert_eq!(plain, hit);
    assert_eq!(rs.token_cache().len(), 1);
}

#[test]
fn exp_and_nbf_are_checked_again_on_every_hit() {
    let s = signer(1);
    let mut rs = server(&s);
    let token = s.sign_access_token(&claims("j1")).unwrap();
    assert!(both(&mut rs, NOW, &token).1.is_ok());
    // Inside the leeway: still valid, from the cache.
    let leeway = rs.config().validation.leeway_secs;
    let (plain, hit) = both(&mut rs, NOW + 3600 + leeway - 1, &token);
    assert!(hit.is_ok());
    assert_eq!(plain, hit);
    // Clock gone backwards before nbf - leeway: not yet valid, like a validation says.
    let (plain, hit) = both(&mut rs, NOW - leeway - 1, &token);
    assert_eq!(hit, Err(Rejection::TokenNotYetValid));
    assert_eq!(plain, hit);
    // Expired: refused and dropped.
    let (plain, hit) = both(&mut rs, NOW + 3600 + leeway, &token);
    assert_eq!(hit, Err(Rejection::TokenExpired));
    assert_eq!(plain, hit);
    assert!(rs.token_cache().is_empty());
}

#[test]
fn only_valid_tokens_are_cached() {
    let s = signer(1);
    let mut rs = server(&s);
    let mut wrong_audience = claims("j1");
    wrong_audience.aud = Audience::One("https://other.example.com/mcp".into());
    let forged = {
        let t = s.sign_access_token(&claims("j2")).unwrap();
        let (rest, _) = t.rsplit_once('.').unwrap();
        format!("{rest}.{}", "A".repeat(86))
    };
    let foreign = signer(2).sign_access_token(&claims("j3")).unwrap();
    for token in [
        s.sign_access_token(&wrong_audience).unwrap(),
        forged,
        foreign,
        "not.a.token".to_owned(),
    ] {
        for _ in 0..2 {
            let (plain, cached) = both(&mut rs, NOW, &token);
            assert!(cached.is_err());
            assert_eq!(plain, cached);
        }
    }
    assert!(rs.token_cache().is_empty());
}

#[test]
fn installing_keys_empties_the_cache() {
    let old = signer(1);
    let mut rs = server(&old);
    let token = old.sign_access_token(&claims("j1")).unwrap();
    assert!(both(&mut rs, NOW, &token).1.is_ok());
    assert_eq!(rs.token_cache().len(), 1);
    // Rotation: the old key is gone, so its token must fail even though it was cached.
    rs.set_keys(UnixTime::from_secs(NOW + 1), keys(&signer(2)));
    assert!(rs.token_cache().is_empty());
    let (plain, cached) = both(&mut rs, NOW + 1, &token);
    assert_eq!(cached, Err(Rejection::UnknownKey));
    assert_eq!(plain, cached);
}

#[test]
fn the_cache_is_bounded_and_evicts_the_soonest_expiring_first() {
    let policy = ValidationPolicy::new(ISSUER, RESOURCE);
    let now = UnixTime::from_secs(NOW);
    let access = |exp: u64| Access {
        subject: "alice".into(),
        client_id: "c".into(),
        scopes: ScopeSet::default(),
        audience: RESOURCE.into(),
        issuer: ISSUER.into(),
        expires_at: UnixTime::from_secs(exp),
        jti: "j".into(),
    };
    let mut cache = TokenCache::with_capacity(3);
    cache.insert(&policy, now, "t-late", &access(NOW + 300), None, NOW);
    cache.insert(&policy, now, "t-soon", &access(NOW + 100), None, NOW);
    cache.insert(&policy, now, "t-mid", &access(NOW + 200), None, NOW);
    cache.insert(&policy, now, "t-new", &access(NOW + 400), None, NOW);
    assert_eq!(cache.len(), 3);
    assert!(cache.get(&policy, now, "t-soon").is_none());
    assert!(cache.get(&policy, now, "t-late").is_some());
    // Expired entries go before live ones, whatever their order.
    let later = UnixTime::from_secs(NOW + 250 + LEEWAY);
    cache.insert(&policy, later, "t-next", &access(NOW + 900), None, NOW);
    assert_eq!(cache.len(), 3);
    assert!(cache.get(&policy, later, "t-mid").is_none());
    // Too long a token is not cached; neither is anything with capacity 0.
    let long = "x".repeat(TOKEN_CACHE_TOKEN_LEN_MAX + 1);
    cache.insert(&policy, now, &long, &access(NOW + 900), None, NOW);
    assert!(cache.get(&policy, now, &long).is_none());
    let mut off = TokenCache::with_capacity(0);
    off.insert(&policy, now, "t", &access(NOW + 900), None, NOW);
    assert!(off.is_empty());
    assert_eq!(TokenCache::new().len(), 0);
}

const LEEWAY: u64 = 30;

#[test]
fn a_full_cache_of_real_tokens_stays_at_its_bound() {
    let s = signer(1);
    let mut rs = server(&s);
    for i in 0..TOKEN_CACHE_ENTRIES + 10 {
        let token = s.sign_access_token(&claims(&format!("j{i}"))).unwrap();
        assert!(
            rs.authenticate_cached(UnixTime::from_secs(NOW), [bearer(&token).as_bytes()])
                .is_ok()
        );
    }
    assert_eq!(rs.token_cache().len(), TOKEN_CACHE_ENTRIES);
}

// spec: JWT-15
#[test]
fn a_hit_before_the_tokens_iat_is_refused_as_a_validation_would() {
    // Found by the fuzz smoke (token_claims): a token cached when valid was answered from the
    // cache at an earlier time, before its `iat`, where a validation refuses it.
    let signer = signer(1);
    let mut rs = server(&signer);
    let token = signer
        .sign_access_token(&AccessClaims {
            nbf: None,
            ..claims("j-iat")
        })
        .unwrap();
    assert!(both(&mut rs, NOW, &token).1.is_ok(), "cached at iat");
    let (plain, cached) = both(&mut rs, NOW - 3600, &token);
    assert_eq!(plain, Err(Rejection::IssuedInFuture));
    assert_eq!(cached, plain);
}
