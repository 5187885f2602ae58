//! End to end in memory: client, authorization server and resource server exchange every
//! message of the flow through the HTTP codecs, on simulated time, including the attacks the
//! core must stop.

use mcp_auth_proto::Rejection;
use mcp_auth_proto::client::{ClientConfig, ClientError, Tokens};
use mcp_auth_proto::http::{HttpRequest, HttpResponse, Method};
use mcp_auth_proto::metadata::{AuthorizationServerMetadata, ProtectedResourceMetadata};
use mcp_auth_proto::pkce::CodeVerifier;
use mcp_auth_testkit::harness::{
    self, Harness, ISSUER, OTHER_RESOURCE, REDIRECT_URI, RESOURCE, authorize_url, form_post,
    query_map, redirect_query,
};
use serde_json::Value;

fn json(response: &HttpResponse) -> Value {
    serde_json::from_slice(&response.body).unwrap_or(Value::Null)
}

fn error_of(response: &HttpResponse) -> String {
    json(response)["error"].as_str().unwrap_or("").to_owned()
}

fn json_post(url: &str, body: &Value) -> HttpRequest {
    HttpRequest::new(Method::Post, url)
        .header("content-type", "application/json")
        .body(serde_json::to_vec(body).unwrap())
}

fn token_url() -> String {
    format!("{ISSUER}/token")
}

fn register(h: &mut Harness, redirect_uris: &[&str]) -> String {
    harness::register_client(h, redirect_uris)
}

fn verifier(n: u8) -> CodeVerifier {
    CodeVerifier::parse(&format!("{}", (b'a' + n) as char).repeat(43)).unwrap()
}

/// Register, authorize (auto-approved) and return (client_id, code).
fn obtain_code(h: &mut Harness, v: &CodeVerifier, resource: &str) -> (String, String) {
    let client_id = register(h, &[REDIRECT_URI]);
    let query = h
        .browse(&authorize_url(&client_id, v, resource, &[]))
        .expect("redirect to the client");
    let params = query_map(&query);
    (client_id, params["code"].clone())
}

fn redeem(
    h: &mut Harness,
    client_id: &str,
    code: &str,
    v: &CodeVerifier,
    resource: &str,
) -> HttpResponse {
    h.route(&form_post(
        &token_url(),
        &[
            ("grant_type", "authorization_code"),
            ("code", code),
            ("redirect_uri", REDIRECT_URI),
            ("code_verifier", v.as_str()),
            ("client_id", client_id),
            ("resource", resource),
        ],
    ))
}

fn refresh(
    h: &mut Harness,
    t: &Tokens,
    refresh_token: &str,
    extra: &[(&str, &str)],
) -> HttpResponse {
    let mut pairs = vec![
        ("grant_type", "refresh_token"),
        ("refresh_token", refresh_token),
        ("client_id", t.client_id.as_str()),
    ];
    pairs.extend_from_slice(extra);
    h.route(&form_post(&token_url(), &pairs))
}

// spec: DISC-1, DISC-3, DISC-7, DISC-9, RES-3
#[test]
fn full_flow_yields_a_token_the_resource_server_accepts() {
    let mut h = Harness::new();
    let tokens = h.drive().expect("authorized");
    assert_eq!(tokens.resource, RESOURCE);
    assert_eq!(tokens.issuer, ISSUER);
    let auth = h.client.authorization_for(RESOURCE).unwrap();
    let access = h
        .mcp_request(Some(&auth))
        .expect("the RS accepts the token");
    assert_eq!(access.subject, harness::USER);
    assert_eq!(access.client_id, tokens.client_id);
    assert_eq!(access.audience, RESOURCE);
    // The exchanges, in order: PRM, AS metadata, registration, authorize, token.
    let urls: Vec<String> = h
        .log
        .iter()
        .map(|(r, _)| r.url.split('?').next().unwrap().to_owned())
        .collect();
    assert_eq!(
        urls,
        [
            "https://mcp.example/.well-known/oauth-protected-resource/mcp",
            "https://as.example/.well-known/oauth-authorization-server",
            "https://as.example/register",
            "https://as.example/authorize",
            "https://as.example/token",
        ]
    );
    assert!(h.log.iter().all(|(_, r)| r.status < 500));
}

// spec: AZ-10, AZ-21, AZ-32, PF-11
#[test]
fn authorization_responses_carry_state_and_iss() {
    let mut h = Harness::new();
    let v = verifier(1);
    let client_id = register(&mut h, &[REDIRECT_URI]);
    let ok = query_map(
        &h.browse(&authorize_url(
            &client_id,
            &v,
            RESOURCE,
            &[("state", "a b&c=d/é")],
        ))
        .unwrap(),
    );
    assert_eq!(ok["state"], "a b&c=d/é");
    assert_eq!(ok["iss"], ISSUER);
    assert!(ok.contains_key("code"));
    let err = query_map(
        &h.browse_error(&authorize_url(
            &client_id,
            &v,
            RESOURCE,
            &[("response_type", "token")],
        ))
        .unwrap(),
    );
    assert_eq!(err["error"], "unsupported_response_type");
    assert_eq!(err["state"], "xyz");
    assert_eq!(err["iss"], ISSUER);
}

// spec: PKCE-9, AZ-12
#[test]
fn a_leaked_code_is_useless_without_the_verifier() {
    let mut h = Harness::new();
    let honest = verifier(1);
    let (client_id, code) = obtain_code(&mut h, &honest, RESOURCE);
    let attacker = redeem(&mut h, &client_id, &code, &verifier(2), RESOURCE);
    assert_eq!(
        (attacker.status, error_of(&attacker).as_str()),
        (400, "invalid_grant")
    );
    // A failed attempt does not burn the code: the honest client still redeems it.
    let ok = redeem(&mut h, &client_id, &code, &honest, RESOURCE);
    assert_eq!(ok.status, 200);
    let missing = redeem(&mut h, &client_id, &code, &honest, RESOURCE);
    assert_eq!(missing.status, 400);
}

// spec: PKCE-9
#[test]
fn token_request_without_verifier_is_refused() {
    let mut h = Harness::new();
    let (client_id, code) = obtain_code(&mut h, &verifier(1), RESOURCE);
    let r = h.route(&form_post(
        &token_url(),
        &[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("client_id", &client_id),
            ("redirect_uri", REDIRECT_URI),
        ],
    ));
    assert_eq!((r.status, error_of(&r).as_str()), (400, "invalid_request"));
}

// spec: TOK-6, TOK-7, TOK-8
#[test]
fn a_replayed_code_is_refused_and_revokes_what_it_produced() {
    let mut h = Harness::new();
    let v = verifier(1);
    let (client_id, code) = obtain_code(&mut h, &v, RESOURCE);
    let first = redeem(&mut h, &client_id, &code, &v, RESOURCE);
    assert_eq!(first.status, 200);
    let first = json(&first);
    let second = redeem(&mut h, &client_id, &code, &v, RESOURCE);
    assert_eq!(
        (second.status, error_of(&second).as_str()),
        (400, "invalid_grant")
    );
    // The refresh token of the first redemption is dead.
    let r = h.route(&form_post(
        &token_url(),
        &[
            ("grant_type", "refresh_token"),
            ("refresh_token", first["refresh_token"].as_str().unwrap()),
            ("client_id", &client_id),
        ],
    ));
    assert_eq!(error_of(&r), "invalid_grant");
    let token = first["access_token"].as_str().unwrap();
    let claims: Value =
        serde_json::from_slice(&base64_decode(token.split('.').nth(1).unwrap())).unwrap();
    assert!(
        h.authorization_server
            .is_revoked(claims["jti"].as_str().unwrap())
    );
}

// spec: TOK-9
#[test]
fn a_replay_with_a_wrong_verifier_revokes_nothing() {
    let mut h = Harness::new();
    let v = verifier(1);
    let (client_id, code) = obtain_code(&mut h, &v, RESOURCE);
    let first = json(&redeem(&mut h, &client_id, &code, &v, RESOURCE));
    let replay = redeem(&mut h, &client_id, &code, &verifier(3), RESOURCE);
    assert_eq!(error_of(&replay), "invalid_grant");
    let r = h.route(&form_post(
        &token_url(),
        &[
            ("grant_type", "refresh_token"),
            ("refresh_token", first["refresh_token"].as_str().unwrap()),
            ("client_id", &client_id),
        ],
    ));
    assert_eq!(r.status, 200, "the honest grant survives a bogus replay");
}

// spec: RS-2, RS-5, RS-6, RS-8, RES-13
#[test]
fn a_token_for_another_resource_is_rejected() {
    let mut h = Harness::new();
    let v = verifier(1);
    let (client_id, code) = obtain_code(&mut h, &v, OTHER_RESOURCE);
    let r = redeem(&mut h, &client_id, &code, &v, OTHER_RESOURCE);
    assert_eq!(r.status, 200);
    let token = json(&r)["access_token"].as_str().unwrap().to_owned();
    let challenge = h.mcp_request(Some(&format!("Bearer {token}"))).unwrap_err();
    assert_eq!(challenge.status, 401);
    assert_eq!(challenge.rejection, Rejection::WrongAudience);
    assert!(
        challenge
            .www_authenticate
            .contains("error=\"invalid_token\"")
    );
    // The other server accepts it: the token is fine, just not for us.
    let other = harness::resource_server(&h.authorization_server, OTHER_RESOURCE);
    assert!(
        other
            .authenticate(h.now, [format!("Bearer {token}").as_bytes()])
            .is_ok()
    );
}

// spec: RT-1, RT-2, RT-5, RT-10, RES-2
#[test]
fn refresh_rotates_and_a_replayed_refresh_token_revokes_the_family() {
    let mut h = Harness::new();
    let tokens = h.drive().unwrap();
    let old = tokens.refresh_token.clone().unwrap();
    h.advance(10);
    h.client.start_refresh();
    let refreshed = h.drive().unwrap();
    let new = refreshed.refresh_token.clone().unwrap();
    assert_ne!(old, new);
    assert_ne!(tokens.access_token, refreshed.access_token);
    let (request, _) = h.log.last().unwrap();
    let sent = query_map(std::str::from_utf8(&request.body).unwrap());
    assert_eq!(sent["resource"], RESOURCE);
    assert!(
        h.log
            .iter()
            .all(|(r, _)| !r.url.starts_with("https://mcp.example")
                || !String::from_utf8_lossy(&r.body).contains(&old))
    );
    // The rotated token comes back: refused, and the current one dies with it.
    let replay = refresh(&mut h, &tokens, &old, &[]);
    assert_eq!(error_of(&replay), "invalid_grant");
    let current = refresh(&mut h, &tokens, &new, &[]);
    assert_eq!(error_of(&current), "invalid_grant");
}

// spec: RES-14, RT-6, RT-8, RT-3
#[test]
fn refresh_never_widens_resource_or_scope_nor_changes_client() {
    let mut h = Harness::new();
    let tokens = h.drive().unwrap();
    let rt = tokens.refresh_token.clone().unwrap();
    let r = refresh(&mut h, &tokens, &rt, &[("resource", OTHER_RESOURCE)]);
    assert_eq!(error_of(&r), "invalid_target");
    let r = refresh(&mut h, &tokens, &rt, &[("scope", "mcp:tools mcp:admin")]);
    assert_eq!(error_of(&r), "invalid_scope");
    let other_client = register(&mut h, &[REDIRECT_URI]);
    let r = h.route(&form_post(
        &token_url(),
        &[
            ("grant_type", "refresh_token"),
            ("refresh_token", &rt),
            ("client_id", &other_client),
        ],
    ));
    assert_eq!(error_of(&r), "invalid_grant");
    let ok = refresh(
        &mut h,
        &tokens,
        &rt,
        &[("scope", "mcp:tools"), ("resource", RESOURCE)],
    );
    assert_eq!(ok.status, 200);
    assert_eq!(json(&ok)["scope"], "mcp:tools");
}

// spec: AZ-14, AZ-15
#[test]
fn codes_expire() {
    let mut h = Harness::new();
    let v = verifier(1);
    let (client_id, code) = obtain_code(&mut h, &v, RESOURCE);
    h.advance(61);
    let r = redeem(&mut h, &client_id, &code, &v, RESOURCE);
    assert_eq!(error_of(&r), "invalid_grant");
}

// spec: TOK-5, TOK-10, RES-14, AZ-16
#[test]
fn every_binding_of_the_code_must_match() {
    let mut h = Harness::new();
    let v = verifier(1);
    let (client_id, code) = obtain_code(&mut h, &v, RESOURCE);
    let other = register(&mut h, &[REDIRECT_URI]);
    assert_eq!(
        error_of(&redeem(&mut h, &other, &code, &v, RESOURCE)),
        "invalid_grant"
    );
    let wrong_redirect = h.route(&form_post(
        &token_url(),
        &[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", "http://127.0.0.1:7777/other"),
            ("code_verifier", v.as_str()),
            ("client_id", &client_id),
        ],
    ));
    assert_eq!(error_of(&wrong_redirect), "invalid_grant");
    assert_eq!(
        error_of(&redeem(&mut h, &client_id, &code, &v, OTHER_RESOURCE)),
        "invalid_target"
    );
    // Uppercase host is the same canonical resource (RES-6).
    assert_eq!(
        redeem(&mut h, &client_id, &code, &v, "https://MCP.example/mcp").status,
        200
    );
}

// spec: AZ-10, AZ-25
#[test]
fn deny_at_the_consent_page_redirects_access_denied() {
    let mut h = Harness::new();
    h.user.auto_approve = false;
    let v = verifier(1);
    let client_id = register(&mut h, &[REDIRECT_URI]);
    let page = h.route(&HttpRequest::new(
        Method::Get,
        authorize_url(&client_id, &v, RESOURCE, &[]),
    ));
    assert_eq!(page.status, 200);
    let html = String::from_utf8(page.body.clone()).unwrap();
    let field = |name: &str| {
        let marker = format!("name=\"{name}\" value=\"");
        let start = html.find(&marker).unwrap() + marker.len();
        html[start..start + html[start..].find('"').unwrap()].to_owned()
    };
    let (id, csrf) = (field("id"), field("csrf"));
    let forged = h.route(&form_post(
        &format!("{ISSUER}/consent"),
        &[("id", &id), ("csrf", "forged"), ("decision", "approve")],
    ));
    assert_eq!(forged.status, 400);
    assert!(forged.header_value("location").is_none());
    let denied = h.route(&form_post(
        &format!("{ISSUER}/consent"),
        &[("id", &id), ("csrf", &csrf), ("decision", "deny")],
    ));
    assert_eq!(denied.status, 303);
    let q = query_map(&redirect_query(&denied).unwrap());
    assert_eq!(
        (q["error"].as_str(), q["state"].as_str(), q["iss"].as_str()),
        ("access_denied", "xyz", ISSUER)
    );
    // The prompt is used up.
    let again = h.route(&form_post(
        &format!("{ISSUER}/consent"),
        &[("id", &id), ("csrf", &csrf), ("decision", "approve")],
    ));
    assert_eq!(again.status, 400);
}

// spec: AZ-26
#[test]
fn the_consent_page_resists_framing_and_escapes_the_client_name() {
    let mut h = Harness::new();
    h.user.auto_approve = false;
    let r = h.route(&json_post(
        &format!("{ISSUER}/register"),
        &serde_json::json!({"redirect_uris": [REDIRECT_URI], "token_endpoint_auth_method": "none", "client_name": "<script>x</script>"}),
    ));
    let client_id = json(&r)["client_id"].as_str().unwrap().to_owned();
    let page = h.route(&HttpRequest::new(
        Method::Get,
        authorize_url(&client_id, &verifier(1), RESOURCE, &[]),
    ));
    assert!(
        page.header_value("content-security-policy")
            .unwrap()
            .contains("frame-ancestors 'none'")
    );
    assert_eq!(page.header_value("x-frame-options"), Some("DENY"));
    let html = String::from_utf8(page.body).unwrap();
    assert!(!html.contains("<script>"));
    assert!(html.contains("&lt;script&gt;"));
    assert!(html.contains("127.0.0.1"), "the redirect host is shown");
    assert!(html.contains(RESOURCE));
}

// spec: AZ-3, AZ-4, AZ-6, AZ-22, PF-9
#[test]
fn unverified_client_or_redirect_uri_is_shown_never_redirected() {
    let mut h = Harness::new();
    let v = verifier(1);
    let client_id = register(&mut h, &[REDIRECT_URI, "https://app.example/cb"]);
    for extra in [
        vec![("client_id", "nope")],
        vec![("redirect_uri", "https://evil.example/cb")],
        vec![("redirect_uri", "https://app.example/cb/")],
        vec![("redirect_uri", "https://APP.example/cb")],
        vec![("redirect_uri", "")],
    ] {
        let r = h.route(&HttpRequest::new(
            Method::Get,
            authorize_url(&client_id, &v, RESOURCE, &extra),
        ));
        assert_eq!(r.status, 400, "{extra:?}");
        assert!(r.header_value("location").is_none(), "{extra:?}");
    }
    // Loopback: any port.
    let r = h.route(&HttpRequest::new(
        Method::Get,
        authorize_url(
            &client_id,
            &v,
            RESOURCE,
            &[("redirect_uri", "http://127.0.0.1:5555/callback")],
        ),
    ));
    assert_eq!(r.status, 303);
    assert!(
        r.header_value("location")
            .unwrap()
            .starts_with("http://127.0.0.1:5555/callback?code=")
    );
}

// spec: AZ-2, PKCE-6, PKCE-7, PKCE-8, RES-12
#[test]
fn request_errors_after_verification_carry_the_right_code() {
    let mut h = Harness::new();
    let v = verifier(1);
    let client_id = register(&mut h, &[REDIRECT_URI]);
    let cases: [(&[(&str, &str)], &str); 7] = [
        (&[("response_type", "token")], "unsupported_response_type"),
        (&[("response_type", "")], "unsupported_response_type"),
        (&[("code_challenge", "")], "invalid_request"),
        (&[("code_challenge_method", "plain")], "invalid_request"),
        (&[("code_challenge_method", "")], "invalid_request"),
        (
            &[("resource", "https://unknown.example/mcp")],
            "invalid_target",
        ),
        (&[("scope", "mcp:nope")], "invalid_scope"),
    ];
    for (extra, code) in cases {
        let q = query_map(
            &h.browse_error(&authorize_url(&client_id, &v, RESOURCE, extra))
                .expect("an error page with a link"),
        );
        assert_eq!(q.get("error").map(String::as_str), Some(code), "{extra:?}");
    }
    let q = query_map(
        &h.browse_error(&authorize_url(
            &client_id,
            &v,
            RESOURCE,
            &[("resource", "")],
        ))
        .unwrap(),
    );
    assert_eq!(q["error"], "invalid_target");
}

// spec: ASM-3, ASM-5, ASM-8, ASM-9, PRM-2
#[test]
fn issuer_is_identical_across_documents_and_tokens() {
    let mut h = Harness::new();
    let asm_response = h.route(&HttpRequest::new(
        Method::Get,
        "https://as.example/.well-known/oauth-authorization-server",
    ));
    assert_eq!(
        asm_response.header_value("content-type"),
        Some("application/json")
    );
    let asm: AuthorizationServerMetadata = serde_json::from_slice(&asm_response.body).unwrap();
    let oidc = h.route(&HttpRequest::new(
        Method::Get,
        "https://as.example/.well-known/openid-configuration",
    ));
    assert_eq!(oidc.body, asm_response.body);
    let prm: ProtectedResourceMetadata = serde_json::from_slice(
        &h.route(&HttpRequest::new(
            Method::Get,
            "https://mcp.example/.well-known/oauth-protected-resource/mcp",
        ))
        .body,
    )
    .unwrap();
    assert_eq!(prm.resource, RESOURCE);
    assert_eq!(prm.authorization_servers, std::slice::from_ref(&asm.issuer));
    assert_eq!(asm.code_challenge_methods_supported, ["S256"]);
    assert_eq!(asm.response_types_supported, ["code"]);
    assert!(
        asm.token_endpoint_auth_methods_supported
            .contains(&"none".to_owned())
    );
    assert!(asm.authorization_response_iss_parameter_supported);
    assert!(asm.jwks_uri.unwrap().starts_with("https://"));
    let tokens = h.drive().unwrap();
    let claims = tokens.access_token.split('.').nth(1).unwrap();
    let claims: Value = serde_json::from_slice(&base64_decode(claims)).unwrap();
    assert_eq!(claims["iss"], asm.issuer.as_str());
    assert!(!String::from_utf8_lossy(&asm_response.body).contains("[]"));
}

fn base64_decode(s: &str) -> Vec<u8> {
    use base64::Engine as _;
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(s)
        .unwrap()
}

// spec: DCR-5, DCR-6, DCR-7, DCR-9, TOK-12
#[test]
fn registration_policy_and_answers() {
    let mut h = Harness::new();
    let url = format!("{ISSUER}/register");
    for (body, code) in [
        (
            serde_json::json!({"redirect_uris": ["http://evil.example/cb"]}),
            "invalid_redirect_uri",
        ),
        (
            serde_json::json!({"redirect_uris": []}),
            "invalid_redirect_uri",
        ),
        (serde_json::json!({}), "invalid_redirect_uri"),
        (
            serde_json::json!({"redirect_uris": ["javascript:alert(1)"]}),
            "invalid_redirect_uri",
        ),
        (
            serde_json::json!({"redirect_uris": ["https://a.example/cb#x"]}),
            "invalid_redirect_uri",
        ),
        (
            serde_json::json!({"redirect_uris": ["https://a.example/cb"], "token_endpoint_auth_method": "private_key_jwt"}),
            "invalid_client_metadata",
        ),
        (
            serde_json::json!({"redirect_uris": ["https://a.example/cb"], "grant_types": ["implicit"]}),
            "invalid_client_metadata",
        ),
        (
            serde_json::json!({"redirect_uris": "https://a.example/cb"}),
            "invalid_client_metadata",
        ),
    ] {
        let r = h.route(&json_post(&url, &body));
        assert_eq!((r.status, error_of(&r)), (400, code.to_owned()), "{body}");
    }
    let not_json = h.route(
        &HttpRequest::new(Method::Post, &url)
            .header("content-type", "text/plain")
            .body("{}"),
    );
    assert_eq!(not_json.status, 400);
    // Defaults are filled in and echoed; a confidential client gets a secret that never expires.
    let r = h.route(&json_post(
        &url,
        &serde_json::json!({"redirect_uris": ["https://a.example/cb"]}),
    ));
    assert_eq!(r.status, 201);
    assert_eq!(r.header_value("cache-control"), Some("no-store"));
    let body = json(&r);
    assert_eq!(
        body["grant_types"],
        serde_json::json!(["authorization_code"])
    );
    assert_eq!(body["response_types"], serde_json::json!(["code"]));
    assert_eq!(body["token_endpoint_auth_method"], "client_secret_basic");
    assert!(
        body["client_secret"]
            .as_str()
            .is_some_and(|s| s.len() >= 43)
    );
    assert_eq!(body["client_secret_expires_at"], 0);
    assert_eq!(
        body["redirect_uris"],
        serde_json::json!(["https://a.example/cb"])
    );
}

// spec: TOK-2, TOK-3, TOK-12, TOK-14
#[test]
fn token_endpoint_request_rules() {
    let mut h = Harness::new();
    let get = h.route(&HttpRequest::new(Method::Get, token_url()));
    assert_eq!(get.status, 405);
    let as_json = h.route(&json_post(
        &token_url(),
        &serde_json::json!({"grant_type": "authorization_code"}),
    ));
    assert_eq!(error_of(&as_json), "invalid_request");
    let v = verifier(1);
    let (client_id, code) = obtain_code(&mut h, &v, RESOURCE);
    let dup = h.route(&form_post(
        &token_url(),
        &[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("code", &code),
            ("client_id", &client_id),
        ],
    ));
    assert_eq!(error_of(&dup), "invalid_request");
    let bad_grant = h.route(&form_post(
        &token_url(),
        &[("grant_type", "password"), ("client_id", &client_id)],
    ));
    assert_eq!(error_of(&bad_grant), "unsupported_grant_type");
    // Unknown and empty parameters are ignored.
    let ok = h.route(&form_post(
        &token_url(),
        &[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", REDIRECT_URI),
            ("code_verifier", v.as_str()),
            ("client_id", &client_id),
            ("foo", "bar"),
            ("scope", ""),
        ],
    ));
    assert_eq!(ok.status, 200, "{}", String::from_utf8_lossy(&ok.body));
    assert_eq!(ok.header_value("cache-control"), Some("no-store"));
    assert_eq!(json(&ok)["token_type"], "Bearer");
}

// spec: TOK-4, GEN-4, TOK-14
#[test]
fn public_clients_use_pkce_and_confidential_clients_authenticate() {
    let mut h = Harness::new();
    let v = verifier(1);
    // A public client: no secret, PKCE alone redeems its code.
    let (client_id, code) = obtain_code(&mut h, &v, RESOURCE);
    assert_eq!(redeem(&mut h, &client_id, &code, &v, RESOURCE).status, 200);
    // A confidential client: the registered method and the right secret are required.
    let r = h.route(&json_post(&format!("{ISSUER}/register"), &serde_json::json!({"redirect_uris": [REDIRECT_URI], "token_endpoint_auth_method": "client_secret_basic"})));
    let conf = json(&r);
    let (cid, secret) = (
        conf["client_id"].as_str().unwrap().to_owned(),
        conf["client_secret"].as_str().unwrap().to_owned(),
    );
    let code =
        query_map(&h.browse(&authorize_url(&cid, &v, RESOURCE, &[])).unwrap())["code"].clone();
    let pairs = [
        ("grant_type", "authorization_code"),
        ("code", code.as_str()),
        ("redirect_uri", REDIRECT_URI),
        ("code_verifier", v.as_str()),
    ];
    let basic = |id: &str, secret: &str| {
        use base64::Engine as _;
        format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(format!("{id}:{secret}"))
        )
    };
    let wrong =
        h.route(&form_post(&token_url(), &pairs).header("authorization", basic(&cid, "wrong")));
    assert_eq!(
        (wrong.status, error_of(&wrong).as_str()),
        (401, "invalid_client")
    );
    assert!(
        wrong
            .header_value("www-authenticate")
            .unwrap()
            .starts_with("Basic")
    );
    let mut public_style = pairs.to_vec();
    public_style.push(("client_id", &cid));
    let no_auth = h.route(&form_post(&token_url(), &public_style));
    assert_eq!(error_of(&no_auth), "invalid_client");
    let right =
        h.route(&form_post(&token_url(), &pairs).header("authorization", basic(&cid, &secret)));
    assert_eq!(
        right.status,
        200,
        "{}",
        String::from_utf8_lossy(&right.body)
    );
}

// spec: CLI-5, RT-10
#[test]
fn the_client_sends_its_token_only_to_the_server_it_was_obtained_for() {
    let mut h = Harness::new();
    h.drive().unwrap();
    assert!(h.client.authorization_for(RESOURCE).is_some());
    assert!(
        h.client
            .authorization_for("https://MCP.example/mcp")
            .is_some()
    );
    assert!(h.client.authorization_for(OTHER_RESOURCE).is_none());
    assert!(
        h.client
            .authorization_for("https://mcp.example/other")
            .is_none()
    );
    assert!(
        h.client
            .authorization_for("https://evil.example/mcp")
            .is_none()
    );
}

// spec: DISC-4
#[test]
fn a_client_for_another_server_refuses_this_servers_metadata() {
    let mut h = Harness::new();
    h.client = mcp_auth_proto::client::Client::new(ClientConfig::new(
        "https://mcp.example/other",
        REDIRECT_URI,
    ));
    let challenge = h.mcp_request(None).unwrap_err();
    h.client
        .handle_unauthorized([challenge.www_authenticate.as_str()]);
    assert!(matches!(
        h.drive(),
        Err(ClientError::ResourceMismatch { .. })
    ));
    assert!(
        h.log.iter().all(|(r, _)| !r.url.starts_with(ISSUER)),
        "no AS contact after rejected metadata"
    );
}

// spec: SEC-12
#[test]
fn bounded_tables_answer_temporarily_unavailable() {
    let mut h = Harness::new();
    let mut config = h.authorization_server.config().clone();
    config.limits.clients = 1;
    h.authorization_server = mcp_auth_proto::server::AuthorizationServer::new(
        config,
        h.authorization_server.signer().clone(),
    );
    register(&mut h, &[REDIRECT_URI]);
    let r = h.route(&json_post(
        &format!("{ISSUER}/register"),
        &serde_json::json!({"redirect_uris": [REDIRECT_URI]}),
    ));
    assert_eq!(
        (r.status, error_of(&r).as_str()),
        (503, "temporarily_unavailable")
    );
    let big = h.route(&form_post(
        &token_url(),
        &[("grant_type", &"x".repeat(20_000))],
    ));
    assert_eq!(big.status, 400);
}

// spec: AZ-17
#[test]
fn the_code_challenge_never_leaves_the_server() {
    let mut h = Harness::new();
    h.drive().unwrap();
    let (authorize, _) = h
        .log
        .iter()
        .find(|(r, _)| r.url.contains("/authorize?"))
        .unwrap()
        .clone();
    let challenge = query_map(authorize.url.split_once('?').unwrap().1)["code_challenge"].clone();
    for (_, response) in &h.log {
        assert!(!String::from_utf8_lossy(&response.body).contains(&challenge));
        assert!(
            response
                .headers
                .iter()
                .all(|(_, v)| !v.contains(&challenge))
        );
    }
}

// spec: RT-4, AZ-27
#[test]
fn refresh_tokens_cannot_be_guessed_or_tampered_with() {
    let mut h = Harness::new();
    let tokens = h.drive().unwrap();
    let rt = tokens.refresh_token.clone().unwrap();
    assert!(rt.len() >= 43, "at least 256 bits");
    let mut tampered = rt.clone().into_bytes();
    tampered[0] = if tampered[0] == b'A' { b'B' } else { b'A' };
    let r = refresh(
        &mut h,
        &tokens,
        std::str::from_utf8(&tampered).unwrap(),
        &[],
    );
    assert_eq!(error_of(&r), "invalid_grant");
    assert_eq!(
        refresh(&mut h, &tokens, &rt, &[]).status,
        200,
        "a failed guess does not hurt the holder"
    );
}

// spec: JWT-5, JWT-4
#[test]
fn the_audience_is_always_the_consented_resource() {
    let mut h = Harness::new();
    let v = verifier(1);
    // Without a resource there is no authorization at all: no ambiguous audience is possible.
    let client_id = register(&mut h, &[REDIRECT_URI]);
    let q = query_map(
        &h.browse_error(&authorize_url(
            &client_id,
            &v,
            RESOURCE,
            &[("resource", "")],
        ))
        .unwrap(),
    );
    assert_eq!(q["error"], "invalid_target");
    // A token request that omits `resource` gets the consented one.
    let (client_id, code) = obtain_code(&mut h, &v, OTHER_RESOURCE);
    let r = h.route(&form_post(
        &token_url(),
        &[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", REDIRECT_URI),
            ("code_verifier", v.as_str()),
            ("client_id", &client_id),
        ],
    ));
    let token = json(&r)["access_token"].as_str().unwrap().to_owned();
    let claims: Value =
        serde_json::from_slice(&base64_decode(token.split('.').nth(1).unwrap())).unwrap();
    assert_eq!(claims["aud"], OTHER_RESOURCE);
}

// spec: GEN-7, GEN-6, ASM-9
#[test]
fn every_advertised_endpoint_is_https_for_an_https_issuer() {
    let mut h = Harness::new();
    let r = h.route(&HttpRequest::new(
        Method::Get,
        format!("{ISSUER}/.well-known/oauth-authorization-server"),
    ));
    let m: AuthorizationServerMetadata = serde_json::from_slice(&r.body).unwrap();
    for e in [
        m.authorization_endpoint,
        m.token_endpoint,
        m.registration_endpoint,
        m.jwks_uri,
    ] {
        assert!(e.unwrap().starts_with("https://as.example/"));
    }
    // And an http issuer is refused unless it is loopback under the named leniency.
    use mcp_auth_proto::uri::{HttpPolicy, Issuer};
    assert!(Issuer::parse("http://as.example", HttpPolicy::AllowLoopbackHttp).is_err());
    assert!(Issuer::parse("http://127.0.0.1:8080", HttpPolicy::HttpsOnly).is_err());
    assert!(Issuer::parse("http://127.0.0.1:8080", HttpPolicy::AllowLoopbackHttp).is_ok());
}

// spec: SEC-12
#[test]
fn a_full_table_frees_up_once_its_entries_expire() {
    let mut h = Harness::new();
    let mut config = h.authorization_server.config().clone();
    config.limits.pending = 2;
    h.authorization_server = mcp_auth_proto::server::AuthorizationServer::new(
        config,
        h.authorization_server.signer().clone(),
    );
    h.user.auto_approve = false;
    let client_id = register(&mut h, &[REDIRECT_URI]);
    let v = verifier(1);
    let url = authorize_url(&client_id, &v, RESOURCE, &[]);
    for _ in 0..2 {
        assert_eq!(h.route(&HttpRequest::new(Method::Get, &url)).status, 200);
    }
    let full = query_map(&h.browse_error(&url).expect("an error page with a link"));
    assert_eq!(full["error"], "temporarily_unavailable");
    h.advance(601);
    assert_eq!(h.route(&HttpRequest::new(Method::Get, &url)).status, 200);
}

// spec: TOK-11
#[test]
fn a_token_response_is_json_with_the_bearer_type_and_a_lifetime() {
    let mut h = Harness::new();
    let v = verifier(1);
    let (client_id, code) = obtain_code(&mut h, &v, RESOURCE);
    let r = redeem(&mut h, &client_id, &code, &v, RESOURCE);
    assert_eq!(r.status, 200);
    assert_eq!(r.header_value("content-type"), Some("application/json"));
    let body = json(&r);
    assert!(body["access_token"].as_str().is_some_and(|t| !t.is_empty()));
    assert_eq!(body["token_type"], "Bearer");
    assert!(body["expires_in"].as_u64().is_some_and(|s| s > 0));
}

// spec: ASM-2, ASM-4, ASM-10
#[test]
fn the_authorization_server_metadata_is_at_the_well_known_url_and_names_the_endpoints() {
    let mut h = Harness::new();
    let r = h.route(&HttpRequest::new(
        Method::Get,
        format!("{ISSUER}/.well-known/oauth-authorization-server"),
    ));
    assert_eq!(r.status, 200);
    let doc = json(&r);
    assert_eq!(doc["issuer"], ISSUER);
    assert_eq!(doc["authorization_endpoint"], format!("{ISSUER}/authorize"));
    assert_eq!(doc["token_endpoint"], format!("{ISSUER}/token"));
    assert_eq!(doc["response_types_supported"], serde_json::json!(["code"]));
    let listed = |member: &str, value: &str| {
        doc[member]
            .as_array()
            .is_some_and(|a| a.iter().any(|v| v == value))
    };
    assert!(listed("grant_types_supported", "refresh_token"));
    assert!(listed("token_endpoint_auth_methods_supported", "none"));
    // Every authorization response carries iss, so the metadata says so.
    assert_eq!(doc["authorization_response_iss_parameter_supported"], true); // spec: AZ-33
}

// spec: AZ-28
#[test]
fn an_authorization_response_keeps_the_query_of_the_redirect_uri() {
    let mut h = Harness::new();
    let with_query = "https://client.example/cb?app=1";
    let client_id = register(&mut h, &[with_query]);
    let v = verifier(1);
    h.user.auto_approve = true;
    let mut location = |extra: &[(&str, &str)]| {
        let r = h.route(&HttpRequest::new(
            Method::Get,
            authorize_url(&client_id, &v, RESOURCE, extra),
        ));
        // A code comes by redirect; an error before any user decision by a link on a page.
        let location = match r.header_value("location") {
            Some(l) => l.to_owned(),
            None => harness::error_link(&r).expect("a link back to the client"),
        };
        let query = location
            .strip_prefix("https://client.example/cb?")
            .expect("the registered redirect URI");
        query_map(query)
    };
    let q = location(&[("redirect_uri", with_query)]);
    assert_eq!((q["app"].as_str(), q["state"].as_str()), ("1", "xyz"));
    assert!(q.contains_key("code"));
    let q = location(&[("redirect_uri", with_query), ("scope", "no-such-scope")]);
    assert_eq!(q["app"], "1");
    assert!(q.contains_key("error"));
}

// spec: PKCE-10, PKCE-7
#[test]
fn no_code_is_issued_without_a_challenge_so_no_token_request_can_redeem_one() {
    // A code record always holds its challenge (`CodeBinding::challenge` is not optional), and
    // the authorization endpoint refuses to mint a code without one.
    let mut h = Harness::new();
    let client_id = register(&mut h, &[REDIRECT_URI]);
    let v = verifier(1);
    let query = h
        .browse_error(&authorize_url(
            &client_id,
            &v,
            RESOURCE,
            &[("code_challenge", ""), ("code_challenge_method", "")],
        ))
        .expect("an error page with a link back");
    let q = query_map(&query);
    assert_eq!(q["error"], "invalid_request");
    assert!(!q.contains_key("code"));
}

// spec: AZ-19
#[test]
fn the_consent_form_post_is_answered_with_303_never_307() {
    let mut h = Harness::new();
    h.user.auto_approve = false;
    let client_id = register(&mut h, &[REDIRECT_URI]);
    let page = h.route(&HttpRequest::new(
        Method::Get,
        authorize_url(&client_id, &verifier(1), RESOURCE, &[]),
    ));
    let html = String::from_utf8(page.body.clone()).unwrap();
    let field = |name: &str| {
        let marker = format!("name=\"{name}\" value=\"");
        let start = html.find(&marker).unwrap() + marker.len();
        html[start..start + html[start..].find('"').unwrap()].to_owned()
    };
    let approved = h.route(&form_post(
        &format!("{ISSUER}/consent"),
        &[
            ("id", &field("id")),
            ("csrf", &field("csrf")),
            ("decision", "approve"),
        ],
    ));
    assert_eq!(approved.status, 303);
    assert!(approved.header_value("location").is_some());
}

// spec: RS-14
#[test]
fn the_authorization_server_accepts_only_codes_and_refresh_tokens_it_issued() {
    let v = verifier(1);
    let mut first = Harness::new();
    let tokens = first.drive().unwrap();
    let (client_id, code) = obtain_code(&mut first, &v, RESOURCE);
    // Another authorization server, with the same client registered, never issued these.
    let mut second = Harness::new();
    let again = register(&mut second, &[REDIRECT_URI]);
    let _ = register(&mut second, &[REDIRECT_URI]);
    let foreign_code = redeem(&mut second, &client_id, &code, &v, RESOURCE);
    assert_ne!(foreign_code.status, 200);
    assert!(["invalid_grant", "invalid_client"].contains(&error_of(&foreign_code).as_str()));
    let foreign_refresh = refresh(
        &mut second,
        &Tokens {
            client_id: again,
            ..tokens.clone()
        },
        tokens.refresh_token.as_deref().unwrap(),
        &[],
    );
    assert_eq!(error_of(&foreign_refresh), "invalid_grant");
}
