//! Property tests for the parsers and validators that had none: token time rules, JWK Sets,
//! the discovery documents, dynamic client registration and HTML escaping. (URIs, challenges,
//! forms, scopes and PKCE have theirs next to the code; token structure and audience in
//! `tests/resource.rs`.)

use mcp_auth_proto::UnixTime;
use mcp_auth_proto::jwt::{
    AccessClaims, Audience, Ed25519Signer, KEYS_MAX, KeySet, Signer, ValidationPolicy, validate,
};
use mcp_auth_proto::metadata::{AuthorizationServerMetadata, ProtectedResourceMetadata};
use mcp_auth_proto::server::http::escape;
use mcp_auth_proto::server::{ClientMetadata, Limits, TokenAuthMethod};
use mcp_auth_proto::uri::{RedirectUri, is_loopback_host, parse_uri};
use proptest::prelude::*;
use serde_json::Value;

const ISSUER: &str = "https://as.example";
const RESOURCE: &str = "https://mcp.example/mcp";

fn signer() -> Signer {
    Signer::new(Ed25519Signer::from_seed("k1", [3; 32]))
}

fn keys(signer: &Signer) -> KeySet {
    KeySet::from_jwks(&jsonwebtoken::jwk::JwkSet {
        keys: vec![signer.public_jwk().clone()],
    })
}

fn claims(exp: u64, nbf: Option<u64>) -> AccessClaims {
    AccessClaims {
        iss: ISSUER.into(),
        sub: "alice".into(),
        aud: Audience::One(RESOURCE.into()),
        exp,
        iat: 0,
        nbf,
        jti: "j1".into(),
        client_id: "c1".into(),
        scope: Some("mcp:tools".into()),
    }
}

fn redirect_uri() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("http://127.0.0.1:7777/callback".to_owned()),
        Just("http://localhost/cb".to_owned()),
        Just("https://app.example/cb?x=1".to_owned()),
        Just("http://app.example/cb".to_owned()),
        Just("https://app.example/cb#f".to_owned()),
        Just("javascript:alert(1)".to_owned()),
        Just("com.example.app:/cb".to_owned()),
        "\\PC{0,30}",
    ]
}

fn option_of<T: std::fmt::Debug + Clone + 'static>(
    s: impl Strategy<Value = T> + 'static,
) -> impl Strategy<Value = Option<T>> {
    proptest::option::of(s)
}

fn client_metadata() -> impl Strategy<Value = ClientMetadata> {
    let names = prop_oneof![
        Just("authorization_code".to_owned()),
        Just("refresh_token".to_owned()),
        Just("implicit".to_owned()),
        "[a-z_]{0,12}",
    ];
    let method = prop_oneof![
        Just("none".to_owned()),
        Just("client_secret_basic".to_owned()),
        Just("client_secret_post".to_owned()),
        Just("private_key_jwt".to_owned()),
        "\\PC{0,12}",
    ];
    let response = prop_oneof![Just("code".to_owned()), Just("token".to_owned())];
    let text = prop_oneof![
        Just("mcp-auth".to_owned()),
        "\\PC{0,20}",
        "[\\x00-\\x1f]{1,3}"
    ];
    (
        proptest::collection::vec(redirect_uri(), 0..10),
        option_of(method),
        option_of(proptest::collection::vec(names, 0..6)),
        option_of(proptest::collection::vec(response, 0..3)),
        option_of(text.clone()),
        option_of(prop_oneof![
            Just("https://app.example".to_owned()),
            "\\PC{0,20}"
        ]),
        option_of(prop_oneof![
            Just("mcp:tools".to_owned()),
            Just("a\"b".to_owned()),
            "\\PC{0,20}"
        ]),
        option_of(text),
    )
        .prop_map(
            |(redirect_uris, method, grants, responses, name, uri, scope, software)| {
                ClientMetadata {
                    redirect_uris,
                    token_endpoint_auth_method: method,
                    grant_types: grants,
                    response_types: responses,
                    client_name: name,
                    client_uri: uri,
                    scope,
                    software_id: software,
                    ..Default::default()
                }
            },
        )
}

fn strings(max: usize) -> impl Strategy<Value = Vec<String>> {
    proptest::collection::vec("\\PC{0,16}", 0..max)
}

proptest! {
    // spec: JWT-10, JWT-11
    #[test]
    fn exp_and_nbf_follow_rfc7519_with_leeway(
        now in 0u64..1_000_000,
        exp_offset in -200i64..200,
        nbf_offset in proptest::option::of(-200i64..200),
        leeway in 0u64..120,
    ) {
        let signer = signer();
        let exp = now.saturating_add_signed(exp_offset);
        let nbf = nbf_offset.map(|o| now.saturating_add_signed(o));
        let token = signer.sign_access_token(&claims(exp, nbf)).unwrap();
        let mut policy = ValidationPolicy::new(ISSUER, RESOURCE);
        policy.leeway_secs = leeway;
        let effective = leeway.min(mcp_auth_proto::jwt::LEEWAY_MAX_SECS);
        let result = validate(&policy, &keys(&signer), UnixTime::from_secs(now), &token);
        // The token must not be accepted on or after exp (+ leeway), nor before nbf (- leeway).
        let live = now < exp + effective;
        let started = nbf.is_none_or(|nbf| nbf <= now + effective);
        prop_assert_eq!(result.is_ok(), live && started, "{:?}", result);
    }

    // spec: JWT-9, SEC-12
    #[test]
    fn jwk_sets_parse_to_bounded_usable_keys(
        keys in proptest::collection::vec(
            (
                prop_oneof![Just("OKP"), Just("EC"), Just("RSA"), Just("oct")],
                prop_oneof![Just("Ed25519"), Just("P\u{2d}256"), Just("X25519")],
                proptest::option::of(prop_oneof![Just("EdDSA"), Just("ES256"), Just("HS256"), Just("RS256")]),
                proptest::option::of(prop_oneof![Just("sig"), Just("enc")]),
                "[A-Za-z0-9_-]{0,44}",
            ),
            0..24,
        )
    ) {
        let keys: Vec<Value> = keys
            .into_iter()
            .enumerate()
            .map(|(i, (kty, crv, alg, use_, x))| {
                let mut k = serde_json::json!({"kty": kty, "crv": crv, "x": x, "y": x, "n": x, "e": "AQAB", "k": x, "kid": format!("k{i}")});
                if let Some(a) = alg { k["alg"] = a.into(); }
                if let Some(u) = use_ { k["use"] = u.into(); }
                k
            })
            .collect();
        let doc = serde_json::to_vec(&serde_json::json!({"keys": keys})).unwrap();
        if let Ok(set) = KeySet::from_json(&doc) {
            prop_assert!(set.len() <= KEYS_MAX);
        }
    }

    // spec: PRM-5, DISC-5
    #[test]
    fn protected_resource_metadata_round_trips_without_empty_members(
        resource in "\\PC{0,30}",
        servers in strings(3),
        scopes in strings(3),
        methods in strings(2),
        name in proptest::option::of("\\PC{0,20}"),
    ) {
        let prm = ProtectedResourceMetadata {
            resource,
            authorization_servers: servers,
            scopes_supported: scopes,
            bearer_methods_supported: methods,
            resource_name: name,
            resource_documentation: None,
        };
        let json: Value = serde_json::to_value(&prm).unwrap();
        for (k, v) in json.as_object().unwrap() {
            prop_assert!(!v.is_null(), "{} is null", k);
            prop_assert!(v.as_array().is_none_or(|a| !a.is_empty()), "{} is []", k);
        }
        let back: ProtectedResourceMetadata = serde_json::from_value(json).unwrap();
        prop_assert_eq!(back, prm);
    }

    // spec: ASM-5, DISC-5
    #[test]
    fn authorization_server_metadata_round_trips_without_empty_members(
        issuer in "\\PC{0,30}",
        endpoints in proptest::collection::vec(proptest::option::of("\\PC{0,20}"), 4),
        lists in proptest::collection::vec(strings(3), 5),
        iss_param in any::<bool>(),
    ) {
        let asm = AuthorizationServerMetadata {
            issuer,
            authorization_endpoint: endpoints[0].clone(),
            token_endpoint: endpoints[1].clone(),
            registration_endpoint: endpoints[2].clone(),
            jwks_uri: endpoints[3].clone(),
            scopes_supported: lists[0].clone(),
            response_types_supported: lists[1].clone(),
            grant_types_supported: lists[2].clone(),
            token_endpoint_auth_methods_supported: lists[3].clone(),
            code_challenge_methods_supported: lists[4].clone(),
            authorization_response_iss_parameter_supported: iss_param,
            ..Default::default()
        };
        let json: Value = serde_json::to_value(&asm).unwrap();
        for (k, v) in json.as_object().unwrap() {
            prop_assert!(!v.is_null() && v != &Value::Bool(false), "{} is empty", k);
            prop_assert!(v.as_array().is_none_or(|a| !a.is_empty()), "{} is []", k);
        }
        let back: AuthorizationServerMetadata = serde_json::from_value(json).unwrap();
        prop_assert_eq!(back, asm);
    }

    // spec: DCR-5, DCR-8, DCR-10, SEC-12
    #[test]
    fn registration_accepts_only_safe_metadata_and_echoes_what_it_registered(m in client_metadata()) {
        let limits = Limits::default();
        let Ok(client) = m.clone().validate(&limits) else { return Ok(()) };
        prop_assert!(!m.redirect_uris.is_empty() && m.redirect_uris.len() <= limits.redirect_uris);
        for r in &client.redirect_uris {
            let p = parse_uri(r.as_str()).unwrap();
            prop_assert!(p.fragment.is_none());
            prop_assert!(
                p.scheme.eq_ignore_ascii_case("https")
                    || (p.scheme.eq_ignore_ascii_case("http") && is_loopback_host(p.host)),
                "{}", r
            );
            prop_assert!(RedirectUri::parse(r.as_str()).is_ok());
        }
        prop_assert!(client.grant_types.iter().all(|g| g == "authorization_code" || g == "refresh_token"));
        prop_assert!(client.response_types.iter().all(|r| r == "code"));
        prop_assert_eq!(
            client.grant_types.iter().any(|g| g == "authorization_code"),
            client.response_types.iter().any(|r| r == "code")
        );
        prop_assert_eq!(
            client.auth_method.as_str(),
            m.token_endpoint_auth_method.as_deref().unwrap_or("client_secret_basic")
        );
        prop_assert!(TokenAuthMethod::ALL.contains(&client.auth_method));
        for v in [&m.client_name, &m.software_id].into_iter().flatten() {
            prop_assert!(!v.chars().any(char::is_control));
        }
        // What is echoed validates again, to the same client.
        let again = client.metadata.clone().validate(&limits).unwrap();
        prop_assert_eq!(again, client);
    }

    // spec: SEC-12
    #[test]
    fn html_escaping_leaves_no_markup(s in "\\PC{0,80}") {
        let e = escape(&s);
        prop_assert!(!e.contains(['<', '>', '"', '\'']));
        let unescaped = e
            .replace("&lt;", "<")
            .replace("&gt;", ">")
            .replace("&quot;", "\"")
            .replace("&#39;", "'")
            .replace("&amp;", "&");
        prop_assert_eq!(unescaped, s);
    }
}
