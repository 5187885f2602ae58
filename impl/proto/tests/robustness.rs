//! Every entry point answers bad input with a typed rejection, never a panic, never a 5xx, and
//! nothing already stored is lost.

use mcp_auth_proto::client::{Action, Client, ClientConfig};
use mcp_auth_proto::form::Params;
use mcp_auth_proto::http::{HttpRequest, HttpResponse, Method};
use mcp_auth_proto::server::ClientMetadata;
use mcp_auth_proto::server::http::handle;
use mcp_auth_proto::{Sequential, UnixTime};
use mcp_auth_testkit::harness::{Harness, ISSUER, REDIRECT_URI, RESOURCE};
use proptest::prelude::*;

fn method() -> impl Strategy<Value = Method> {
    prop_oneof![
        Just(Method::Get),
        Just(Method::Post),
        Just(Method::Options),
        Just(Method::Delete),
        Just(Method::Other)
    ]
}

fn path() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("/authorize".to_owned()),
        Just("/token".to_owned()),
        Just("/register".to_owned()),
        Just("/consent".to_owned()),
        Just("/jwks".to_owned()),
        Just("/.well-known/oauth-authorization-server".to_owned()),
        "/[a-z./-]{0,20}",
    ]
}

fn content_type() -> impl Strategy<Value = Option<&'static str>> {
    prop_oneof![
        Just(None),
        Just(Some("application/json")),
        Just(Some("application/x-www-form-urlencoded")),
        Just(Some("text/plain"))
    ]
}

fn form_like() -> impl Strategy<Value = Vec<u8>> {
    let key = prop_oneof![
        Just("grant_type"),
        Just("code"),
        Just("client_id"),
        Just("redirect_uri"),
        Just("code_verifier"),
        Just("resource"),
        Just("scope"),
        Just("state"),
        Just("refresh_token"),
        Just("response_type"),
        Just("code_challenge"),
        Just("code_challenge_method"),
        Just("client_secret"),
        Just("id"),
        Just("csrf"),
        Just("decision"),
    ];
    let value = prop_oneof![
        Just("authorization_code".to_owned()),
        Just("refresh_token".to_owned()),
        Just("code".to_owned()),
        Just("S256".to_owned()),
        Just(RESOURCE.to_owned()),
        Just(REDIRECT_URI.to_owned()),
        Just("approve".to_owned()),
        "\\PC{0,50}",
    ];
    proptest::collection::vec((key, value), 0..10).prop_map(|pairs| {
        mcp_auth_proto::form::encode(pairs.iter().map(|(k, v)| (*k, v.as_str()))).into_bytes()
    })
}

fn body() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        proptest::collection::vec(any::<u8>(), 0..300),
        form_like(),
        "\\PC{0,200}".prop_map(String::into_bytes)
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    // spec: SEC-12, AZ-4
    #[test]
    fn the_authorization_server_never_panics_nor_answers_5xx_unexpectedly(
        requests in proptest::collection::vec((method(), path(), proptest::option::of(form_like()), content_type(), body(), proptest::option::of("\\PC{0,40}")), 1..6)
    ) {
        let mut h = Harness::new();
        // A real client exists, so requests can reach deep states.
        h.drive().unwrap();
        let clients_before = h.authorization_server.clients().count();
        let mut entropy = Sequential(99);
        for (method, path, query, content_type, body, authorization) in requests {
            let mut request = HttpRequest::new(method, path).body(body);
            request.query = query.map(|q| String::from_utf8_lossy(&q).into_owned());
            if let Some(ct) = content_type { request = request.header("content-type", ct); }
            if let Some(a) = authorization { request = request.header("authorization", a); }
            let response = handle(&mut h.authorization_server, h.now, &mut entropy, &h.user, &request);
            // 503 only when a bounded table is full, which these few requests cannot cause.
            prop_assert!(response.status < 500, "{request:?} -> {response:?}");
            if response.status >= 400 && response.header_value("content-type") == Some("application/json") {
                let v: serde_json::Value = serde_json::from_slice(&response.body).unwrap();
                prop_assert!(v["error"].is_string());
            }
        }
        // Nothing stored is lost: every client registered before is still there.
        prop_assert!(h.authorization_server.clients().count() >= clients_before);
    }

    // spec: DCR-9, SEC-12
    #[test]
    fn registration_of_arbitrary_json_is_typed(json in "\\PC{0,200}") {
        if let Ok(metadata) = serde_json::from_str::<ClientMetadata>(&json) {
            let _ = metadata.validate(&Default::default());
        }
    }

    // spec: ERR-3, ERR-9
    #[test]
    fn the_resource_server_always_answers_a_challenge(values in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..200), 0..3)) {
        let h = Harness::new();
        let refs: Vec<&[u8]> = values.iter().map(Vec::as_slice).collect();
        match h.guard.resource_server().authenticate(UnixTime::from_secs(1000), refs) {
            Ok(_) => prop_assert!(false, "random bytes are never a valid token"),
            Err(c) => {
                prop_assert!([400, 401].contains(&c.status));
                prop_assert!(c.www_authenticate.starts_with("Bearer resource_metadata=\""));
            }
        }
    }

    // spec: SEC-12, AZ-11
    #[test]
    fn the_client_survives_arbitrary_callbacks(query in "\\PC{0,200}") {
        let mut h = Harness::new();
        let challenge = h.mcp_request(None).unwrap_err();
        h.client.handle_unauthorized([challenge.www_authenticate.as_str()]);
        for _ in 0..4 {
            if let Action::Send(r) = h.client.poll_action() {
                let resp = h.route(&r);
                h.client.handle_response(h.now, &mut h.entropy, &resp);
            }
        }
        prop_assert!(matches!(h.client.poll_action(), Action::OpenBrowser(_)));
        // A callback without our state is discarded; the client keeps waiting.
        if h.client.handle_redirect(&query).is_err() && !query.contains("state=") {
            prop_assert!(matches!(h.client.poll_action(), Action::OpenBrowser(_)));
        }
    }

    // spec: SEC-12, DISC-2
    #[test]
    fn the_client_survives_arbitrary_responses(
        challenge in "\\PC{0,100}",
        responses in proptest::collection::vec((100u16..600, proptest::collection::vec(any::<u8>(), 0..200)), 0..8)
    ) {
        let mut c = Client::new(ClientConfig::new(RESOURCE, REDIRECT_URI));
        c.handle_unauthorized([challenge.as_str()]);
        let mut e = Sequential(1);
        for (status, body) in responses {
            let sent = match c.poll_action() { Action::Send(r) => r, _ => break };
            prop_assert!(!sent.url.is_empty());
            c.handle_response(UnixTime::from_secs(5), &mut e, &HttpResponse::new(status).with_body(body));
        }
    }

    #[test]
    fn params_decode_is_total(bytes in proptest::collection::vec(any::<u8>(), 0..400)) {
        if let Ok(p) = Params::decode(&bytes) {
            let _ = p.one("code");
        }
    }
}

// spec: SEC-12
#[test]
fn the_issuer_origin_is_required_for_routing() {
    let mut h = Harness::new();
    let r = h.route(&HttpRequest::new(Method::Get, format!("{ISSUER}/nope")));
    assert_eq!(r.status, 404);
}
