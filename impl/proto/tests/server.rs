//! The authorization server's own state, through the in-memory harness: signing-key rotation,
//! a signer that fails, refresh grants that neither widen nor grow, and secrets kept only as
//! hashes.

use mcp_auth_proto::Rejection;
use mcp_auth_proto::form::Params;
use mcp_auth_proto::jwt::{Ed25519Signer, KeySet, Signer};
use mcp_auth_proto::server::{
    AuthorizationServer, ClientCredentials, ClientMetadata, RETIRED_KEYS_MAX, ROTATED_MAX,
    TokenRequest,
};
use mcp_auth_proto::types::ScopeSet;
use mcp_auth_testkit::harness::{self, Harness, RESOURCE};

fn kids(server: &AuthorizationServer) -> Vec<String> {
    server
        .jwks()
        .keys
        .iter()
        .filter_map(|k| k.common.key_id.clone())
        .collect()
}

fn ed25519(kid: &str, seed: u8) -> Signer {
    Signer::new(Ed25519Signer::from_seed(kid, [seed; 32]))
}

#[test]
fn a_rotated_key_signs_new_tokens_and_the_old_one_stays_published() {
    let mut h = Harness::new();
    let before = h.drive().expect("tokens with the first key");
    h.authorization_server.rotate_key(ed25519("k2", 2));
    assert_eq!(h.authorization_server.signer().kid(), "k2");
    assert_eq!(kids(&h.authorization_server), ["k2", "k1"]);
    // The harness RS still has only k1: the new token's kid is unknown to it until it
    // installs the new JWK Set, which verifies old and new tokens alike.
    h.client.start_refresh();
    let after = h.drive().expect("tokens with the second key");
    let header = |token: &str| -> serde_json::Value {
        use base64::Engine as _;
        let head = token.split('.').next().unwrap_or("");
        let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(head)
            .unwrap_or_default();
        serde_json::from_slice(&bytes).unwrap_or_default()
    };
    assert_eq!(header(&after.access_token)["kid"], "k2");
    let new_bearer = format!("Bearer {}", after.access_token);
    let old_bearer = format!("Bearer {}", before.access_token);
    let unknown = h.mcp_request(Some(&new_bearer)).expect_err("k2 unknown");
    assert_eq!(unknown.rejection, Rejection::UnknownKey);
    let mut rs = harness::resource_server(&h.authorization_server, RESOURCE);
    rs.set_keys(h.now, KeySet::from_jwks(&h.authorization_server.jwks()));
    assert!(rs.authenticate(h.now, [new_bearer.as_bytes()]).is_ok());
    assert!(rs.authenticate(h.now, [old_bearer.as_bytes()]).is_ok());
}

#[test]
fn retired_keys_are_bounded_and_a_kid_names_one_key() {
    let mut server = harness::authorization_server();
    let first = server.clone();
    server.rotate_key(server.signer().clone());
    assert_eq!(server, first, "rotating to the current key is a no-op");
    for (i, kid) in ["k2", "k3", "k4", "k5"].iter().enumerate() {
        server.rotate_key(ed25519(kid, 10 + i as u8));
    }
    assert_eq!(kids(&server).len(), 1 + RETIRED_KEYS_MAX);
    assert_eq!(kids(&server), ["k5", "k4", "k3"]);
    // A new key reusing a retired kid replaces it: never two keys under one kid.
    server.rotate_key(ed25519("k4", 99));
    assert_eq!(kids(&server), ["k4", "k5", "k3"]);
}

/// A signer whose key store is gone: every signature fails.
struct Broken;

impl mcp_auth_proto::jwt::TokenSigner for Broken {
    fn alg(&self) -> mcp_auth_proto::jwt::Alg {
        mcp_auth_proto::jwt::Alg::EdDSA
    }
    fn kid(&self) -> &str {
        "broken"
    }
    fn sign(&self, _message: &[u8]) -> Result<Vec<u8>, mcp_auth_proto::jwt::SignError> {
        Err(mcp_auth_proto::jwt::SignError(
            "key store unavailable".into(),
        ))
    }
    fn public_jwk(&self) -> jsonwebtoken::jwk::Jwk {
        Ed25519Signer::from_seed("broken", [3; 32]).public_jwk()
    }
}

// spec: GEN-11
#[test]
fn a_signing_failure_is_the_servers_fault_not_a_full_table() {
    let mut h = Harness::new();
    h.drive().expect("tokens");
    h.authorization_server.rotate_key(Signer::new(Broken));
    h.client.start_refresh();
    let _ = h.drive();
    let (_, response) = h.log.last().expect("the refresh was sent");
    let body: serde_json::Value = serde_json::from_slice(&response.body).unwrap_or_default();
    assert_eq!(response.status, 500, "{body}");
    assert_eq!(body["error"], "server_error");
    assert_ne!(
        body["error_description"],
        Rejection::Full.description(),
        "an internal failure has its own description"
    );
}

/// The claims of a JWT, decoded without verification (the tests' own tokens).
fn claims_of(token: &str) -> serde_json::Value {
    use base64::Engine as _;
    let payload = token.split('.').nth(1).unwrap_or("");
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload)
        .unwrap_or_default();
    serde_json::from_slice(&bytes).unwrap_or_default()
}

/// A refresh request of the harness's public client.
fn refresh_request(
    tokens: &mcp_auth_proto::client::Tokens,
    refresh_token: &str,
    extra: &[(&str, &str)],
) -> TokenRequest {
    let mut pairs = vec![
        ("grant_type", "refresh_token"),
        ("refresh_token", refresh_token),
    ];
    pairs.extend_from_slice(extra);
    TokenRequest {
        credentials: ClientCredentials {
            client_id: Some(tokens.client_id.clone()),
            ..ClientCredentials::default()
        },
        params: Params::decode(mcp_auth_proto::form::encode(pairs).as_bytes()).unwrap_or_default(),
    }
}

/// A harness whose client asks for both scopes the resource knows.
fn harness_with_both_scopes() -> Harness {
    let mut h = Harness::new();
    h.client = mcp_auth_proto::client::Client::new(
        mcp_auth_proto::client::ClientConfig::new(RESOURCE, harness::REDIRECT_URI)
            .with_scope(Some(ScopeSet::from_tokens(["mcp:tools", "mcp:admin"]))),
    );
    h
}

// spec: RT-6, RT-8, RT-12
#[test]
fn a_narrower_scope_on_refresh_is_exactly_the_new_tokens_scope() {
    let mut h = harness_with_both_scopes();
    let tokens = h.drive().expect("tokens");
    assert_eq!(
        claims_of(&tokens.access_token)["scope"],
        "mcp:admin mcp:tools"
    );
    let rt = tokens.refresh_token.clone().unwrap_or_default();
    let narrow = h
        .authorization_server
        .token(
            h.now,
            &mut h.entropy,
            &refresh_request(&tokens, &rt, &[("scope", "mcp:tools")]),
        )
        .expect("a narrower refresh");
    assert_eq!(claims_of(&narrow.access_token)["scope"], "mcp:tools");
    assert_eq!(narrow.scope.as_deref(), Some("mcp:tools"));
    // The grant keeps its scope: a later refresh without `scope` gets all of it (RT-8).
    let rt = narrow.refresh_token.unwrap_or_default();
    let full = h
        .authorization_server
        .token(h.now, &mut h.entropy, &refresh_request(&tokens, &rt, &[]))
        .expect("a refresh without scope");
    assert_eq!(
        claims_of(&full.access_token)["scope"],
        "mcp:admin mcp:tools"
    );
    assert_eq!(full.scope.as_deref(), Some("mcp:admin mcp:tools"));
}

// spec: RT-1, RT-2, SEC-12
#[test]
fn a_refresh_loop_does_not_grow_the_grant_and_revocation_still_reaches_every_token() {
    let mut h = Harness::new();
    let tokens = h.drive().expect("tokens");
    let first_jti = claims_of(&tokens.access_token)["jti"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let mut rt = tokens.refresh_token.clone().unwrap_or_default();
    let refresh = |h: &mut Harness, rt: &mut String| {
        let r = h
            .authorization_server
            .token(h.now, &mut h.entropy, &refresh_request(&tokens, rt, &[]))
            .expect("refresh");
        *rt = r.refresh_token.unwrap_or_default();
        r.access_token
    };
    // Past the rotated-token memory, so that only unbounded state can still grow.
    for _ in 0..ROTATED_MAX + 2 {
        refresh(&mut h, &mut rt);
    }
    let size = |h: &Harness| format!("{:?}", h.authorization_server).len();
    let before = size(&h);
    let mut last = String::new();
    let mut previous = String::new();
    for _ in 0..100 {
        previous = rt.clone();
        last = refresh(&mut h, &mut rt);
    }
    assert_eq!(size(&h), before, "the server state grew with refreshes");
    let last_jti = claims_of(&last)["jti"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    assert!(!h.authorization_server.is_revoked(&first_jti));
    // A replayed rotated-out refresh token revokes the grant: its first and its last
    // access token alike are revoked (RT-2).
    let replay = h.authorization_server.token(
        h.now,
        &mut h.entropy,
        &refresh_request(&tokens, &previous, &[]),
    );
    assert!(replay.is_err());
    let old =
        h.authorization_server
            .token(h.now, &mut h.entropy, &refresh_request(&tokens, &rt, &[]));
    assert!(old.is_err(), "the family is dead");
    assert!(h.authorization_server.is_revoked(&first_jti));
    assert!(h.authorization_server.is_revoked(&last_jti));
    assert!(!h.authorization_server.is_revoked("unknown"));
}

// spec: AZ-27, TOK-4, RT-4
#[test]
fn codes_refresh_tokens_and_client_secrets_are_kept_only_as_hashes() {
    let mut h = Harness::new();
    let tokens = h.drive().expect("tokens");
    let code = h
        .log
        .iter()
        .filter_map(|(_, response)| harness::redirect_query(response))
        .find_map(|q| harness::query_map(&q).get("code").cloned())
        .expect("the code went to the client");
    let first_rt = tokens.refresh_token.clone().unwrap_or_default();
    let refreshed = h
        .authorization_server
        .token(
            h.now,
            &mut h.entropy,
            &refresh_request(&tokens, &first_rt, &[]),
        )
        .expect("refresh");
    let current_rt = refreshed.refresh_token.unwrap_or_default();
    let registered = h
        .authorization_server
        .register(
            h.now,
            &mut h.entropy,
            ClientMetadata {
                redirect_uris: vec![harness::REDIRECT_URI.into()],
                token_endpoint_auth_method: Some("client_secret_post".into()),
                ..ClientMetadata::default()
            },
        )
        .expect("registered");
    let secret = registered.client_secret.clone().unwrap_or_default();
    let state = format!("{:?}", h.authorization_server);
    for (name, value) in [
        ("code", &code),
        ("rotated refresh token", &first_rt),
        ("current refresh token", &current_rt),
        ("client secret", &secret),
    ] {
        assert!(!value.is_empty(), "{name}");
        assert!(!state.contains(value.as_str()), "{name} kept in clear");
    }
    // Nothing the client sees changes: the secret still authenticates, the current refresh
    // token still refreshes, the code is still known (as redeemed).
    let auth = ClientCredentials {
        client_id: Some(registered.client_id.0.clone()),
        client_secret: Some(secret.clone()),
        basic: None,
    };
    assert_eq!(
        h.authorization_server.authenticate(&auth),
        Ok(registered.client_id.clone())
    );
    let wrong = ClientCredentials {
        client_secret: Some(format!("{secret}x")),
        ..auth
    };
    assert_eq!(
        h.authorization_server.authenticate(&wrong),
        Err(Rejection::ClientAuthFailed)
    );
    assert!(
        h.authorization_server
            .token(
                h.now,
                &mut h.entropy,
                &refresh_request(&tokens, &current_rt, &[])
            )
            .is_ok()
    );
}
