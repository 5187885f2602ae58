//! The MCP client state machine (`src/client.rs`), driven with hand-made answers of a mock
//! MCP server (resource server) and a mock authorization server, on fixed time and
//! [`Sequential`] entropy. Every test names the catalogue rows it verifies.

use std::collections::{BTreeMap, BTreeSet};

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use mcp_auth_proto::client::{
    Action, Client, ClientConfig, ClientError, McpFailure, McpOutcome, TokenStore, Tokens,
    mcp_request, protocol_version_header,
};
use mcp_auth_proto::form;
use mcp_auth_proto::http::{HttpRequest, HttpResponse, Method};
use mcp_auth_proto::types::ScopeSet;
use mcp_auth_proto::uri::{HttpPolicy, parse_uri};
use mcp_auth_proto::{Sequential, UnixTime};
use proptest::prelude::*;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

// ---- the cast ---------------------------------------------------------------------------------

/// The MCP server, as the user configured it.
const SERVER: &str = "https://h/mcp";
/// RFC 9728 path-inserted PRM URL of [`SERVER`].
const PRM_INSERTED: &str = "https://h/.well-known/oauth-protected-resource/mcp";
/// RFC 9728 root PRM URL of [`SERVER`]'s origin.
const PRM_ROOT: &str = "https://h/.well-known/oauth-protected-resource";
/// The authorization server named by the PRM (an issuer with a path).
const ISSUER: &str = "https://as/t1";
/// RFC 8414 path-inserted metadata URL of [`ISSUER`].
const ASM_URL: &str = "https://as/.well-known/oauth-authorization-server/t1";
/// OpenID Connect discovery, path-inserted.
const OIDC_INSERTED: &str = "https://as/.well-known/openid-configuration/t1";
/// OpenID Connect discovery, path-appended.
const OIDC_APPENDED: &str = "https://as/t1/.well-known/openid-configuration";
const AUTHORIZE: &str = "https://as/t1/authorize";
const TOKEN: &str = "https://as/t1/token";
const REGISTER: &str = "https://as/t1/register";
/// Our loopback redirect URI.
const REDIRECT: &str = "http://127.0.0.1:7777/callback";
const CLIENT_ID: &str = "cid-1";
const NOW: u64 = 1_700_000_000;

fn config() -> ClientConfig {
    ClientConfig::new(SERVER, REDIRECT)
}

fn challenge() -> String {
    format!(r#"Bearer resource_metadata="{PRM_INSERTED}""#)
}

fn prm_doc() -> Value {
    json!({
        "resource": SERVER,
        "authorization_servers": [ISSUER],
        "bearer_methods_supported": ["header"],
    })
}

fn asm_doc() -> Value {
    json!({
        "issuer": ISSUER,
        "authorization_endpoint": AUTHORIZE,
        "token_endpoint": TOKEN,
        "registration_endpoint": REGISTER,
        "response_types_supported": ["code"],
        "grant_types_supported": ["authorization_code", "refresh_token"],
        "token_endpoint_auth_methods_supported": ["none"],
        "code_challenge_methods_supported": ["S256"],
        "authorization_response_iss_parameter_supported": true,
    })
}

fn with(mut doc: Value, key: &str, value: Value) -> Value {
    doc[key] = value;
    doc
}

fn without(mut doc: Value, key: &str) -> Value {
    if let Some(map) = doc.as_object_mut() {
        map.remove(key);
    }
    doc
}

fn ok(doc: &Value) -> HttpResponse {
    HttpResponse::json(200, doc)
}

fn not_found() -> HttpResponse {
    HttpResponse::new(404)
}

fn registered() -> HttpResponse {
    HttpResponse::json(
        201,
        &json!({
            "client_id": CLIENT_ID,
            "client_id_issued_at": NOW,
            "redirect_uris": [REDIRECT],
            "token_endpoint_auth_method": "none",
            "grant_types": ["authorization_code", "refresh_token"],
            "response_types": ["code"],
        }),
    )
}

fn token_doc(access: &str, refresh: Option<&str>) -> Value {
    let mut doc = json!({
        "access_token": access,
        "token_type": "Bearer",
        "expires_in": 3600,
        "scope": "mcp:tools",
    });
    if let Some(r) = refresh {
        doc["refresh_token"] = json!(r);
    }
    doc
}

// ---- helpers ----------------------------------------------------------------------------------

/// Decode a form / query string, asserting that no parameter is repeated (TOK-3).
fn pairs(encoded: &str) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for (k, v) in form_urlencoded::parse(encoded.as_bytes()) {
        let prev = out.insert(k.to_string(), v.to_string());
        assert!(prev.is_none(), "parameter {k} repeated in {encoded}");
    }
    out
}

fn url_query(url: &str) -> BTreeMap<String, String> {
    let (_, query) = url.split_once('?').expect("URL has a query");
    pairs(query)
}

fn form_body(req: &HttpRequest) -> BTreeMap<String, String> {
    pairs(std::str::from_utf8(&req.body).expect("UTF-8 body"))
}

fn names(map: &BTreeMap<String, String>) -> Vec<&str> {
    map.keys().map(String::as_str).collect()
}

fn host(url: &str) -> String {
    parse_uri(url).expect("absolute URL").host.to_owned()
}

fn s256(verifier: &str) -> String {
    URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()))
}

fn send(action: Action) -> HttpRequest {
    match action {
        Action::Send(req) => req,
        other => panic!("expected Send, got {other:?}"),
    }
}

fn browser(action: Action) -> String {
    match action {
        Action::OpenBrowser(url) => url,
        other => panic!("expected OpenBrowser, got {other:?}"),
    }
}

fn failed(action: Action) -> ClientError {
    match action {
        Action::Failed(e) => e,
        other => panic!("expected Failed, got {other:?}"),
    }
}

fn authorized(action: Action) -> Tokens {
    match action {
        Action::Authorized(t) => t,
        other => panic!("expected Authorized, got {other:?}"),
    }
}

fn assert_get(req: &HttpRequest, url: &str) {
    assert_eq!(req.method, Method::Get, "{req:?}");
    assert_eq!(req.url, url);
    assert!(req.body.is_empty());
    assert_eq!(req.header_values("authorization").count(), 0);
}

/// A client, its inputs, and every request it asked us to send.
struct Run {
    client: Client,
    entropy: Sequential,
    now: UnixTime,
    sent: Vec<HttpRequest>,
}

impl Run {
    fn with(config: ClientConfig) -> Self {
        Self::from_client(Client::new(config))
    }

    fn from_client(client: Client) -> Self {
        Self {
            client,
            entropy: Sequential::default(),
            now: UnixTime::from_secs(NOW),
            sent: Vec::new(),
        }
    }

    fn new() -> Self {
        Self::with(config())
    }

    fn observe(&mut self) -> Action {
        let action = self.client.poll_action();
        if let Action::Send(req) = &action {
            self.sent.push(req.clone());
        }
        action
    }

    fn unauthorized(&mut self, www: &[&str]) -> Action {
        self.client.handle_unauthorized(www.iter().copied());
        self.observe()
    }

    fn respond(&mut self, response: HttpResponse) -> Action {
        self.client
            .handle_response(self.now, &mut self.entropy, &response);
        self.observe()
    }

    fn redirect(&mut self, query: &str) -> (Result<(), ClientError>, Action) {
        let result = self.client.handle_redirect(query);
        (result, self.observe())
    }

    fn refresh(&mut self) -> Action {
        self.client.start_refresh();
        self.observe()
    }

    /// 401 → PRM → AS metadata: the action that follows the metadata.
    fn discover_with(&mut self, prm: &Value, asm: &Value) -> Action {
        let req = send(self.unauthorized(&[&challenge()]));
        assert_get(&req, PRM_INSERTED);
        let req = send(self.respond(ok(prm)));
        assert_get(&req, ASM_URL);
        self.respond(ok(asm))
    }

    /// The whole flow up to the browser, with dynamic registration.
    fn until_browser_with(&mut self, prm: &Value, asm: &Value) -> String {
        let req = send(self.discover_with(prm, asm));
        assert_eq!(req.url, REGISTER);
        browser(self.respond(registered()))
    }

    fn until_browser(&mut self) -> String {
        self.until_browser_with(&prm_doc(), &asm_doc())
    }

    /// The whole flow to the token request: (authorization URL, token request).
    fn until_token_request(&mut self) -> (String, HttpRequest) {
        let url = self.until_browser();
        let (result, action) = self.redirect(&callback(&url));
        assert_eq!(result, Ok(()));
        (url, send(action))
    }

    /// The whole flow to tokens (access `at-1`, refresh `rt-1`).
    fn authorize(&mut self) -> Tokens {
        let (_, req) = self.until_token_request();
        assert_eq!(req.url, TOKEN);
        authorized(self.respond(ok(&token_doc("at-1", Some("rt-1")))))
    }
}

fn state_of(url: &str) -> String {
    url_query(url)["state"].clone()
}

/// A successful callback for the flow whose authorization URL is `url`.
fn callback(url: &str) -> String {
    form::encode([
        ("code", "code-1"),
        ("state", &state_of(url)),
        ("iss", ISSUER),
    ])
}

// ---- discovery of the protected resource metadata ---------------------------------------------

// spec: DISC-2, DISC-3
#[test]
fn challenge_resource_metadata_url_is_fetched_with_get() {
    let mut run = Run::new();
    let req = send(run.unauthorized(&[
        r#"Basic realm="x", Bearer error="invalid_token", resource_metadata="https://h/meta/prm", scope="mcp:tools""#,
    ]));
    assert_get(&req, "https://h/meta/prm");
    assert_eq!(req.header_str("accept"), Some("application/json"));
    // Acting on it: the document it names leads to the AS.
    let req = send(run.respond(ok(&prm_doc())));
    assert_get(&req, ASM_URL);
    assert_eq!(run.sent.len(), 2);
}

// spec: DISC-2, DISC-3
#[test]
fn without_resource_metadata_the_path_inserted_then_the_root_url_is_probed() {
    for www in [&[][..], &["Bearer"][..], &[r#"Basic realm="mcp""#][..]] {
        let mut run = Run::new();
        let req = send(run.unauthorized(www));
        assert_get(&req, PRM_INSERTED);
        let req = send(run.respond(not_found()));
        assert_get(&req, PRM_ROOT);
        // The root copy describes the endpoint: the flow goes on to the AS.
        let req = send(run.respond(ok(&prm_doc())));
        assert_get(&req, ASM_URL);
    }

    // Both missing: the client stops, it never guesses.
    let mut run = Run::new();
    send(run.unauthorized(&["Bearer"]));
    send(run.respond(not_found()));
    assert_eq!(
        failed(run.respond(not_found())),
        ClientError::NoResourceMetadata
    );
    let urls: Vec<&str> = run.sent.iter().map(|r| r.url.as_str()).collect();
    assert_eq!(urls, [PRM_INSERTED, PRM_ROOT]);

    // An endpoint without a path has one candidate only.
    let mut run = Run::with(ClientConfig::new("https://h", REDIRECT));
    assert_get(&send(run.unauthorized(&["Bearer"])), PRM_ROOT);
    assert_eq!(
        failed(run.respond(HttpResponse::new(500))),
        ClientError::NoResourceMetadata
    );
    assert_eq!(run.sent.len(), 1);
}

// spec: DISC-2
#[test]
fn a_malformed_challenge_stops_the_client() {
    for www in [
        r#"Bearer resource_metadata="https://h/prm"#,
        r#"Bearer scope="a", scope="b""#,
        "Bearer ,,=",
    ] {
        let mut run = Run::new();
        assert_eq!(failed(run.unauthorized(&[www])), ClientError::BadChallenge);
        assert!(run.sent.is_empty());
    }
}

// spec: DISC-2, GEN-6
#[test]
fn an_insecure_resource_metadata_url_is_not_fetched() {
    for url in [
        "http://h/.well-known/oauth-protected-resource/mcp",
        "https://h/prm#frag",
        "javascript:alert(1)",
        "/relative/prm",
        "http://127.0.0.1/prm",
    ] {
        let mut run = Run::new();
        let www = format!(r#"Bearer resource_metadata="{url}""#);
        assert_eq!(
            failed(run.unauthorized(&[&www])),
            ClientError::BadChallenge,
            "{url}"
        );
        assert!(run.sent.is_empty(), "{url}");
    }
    // Loopback http is fine under the named leniency (PF-8).
    let mut config = ClientConfig::new("http://127.0.0.1:8080/mcp", REDIRECT);
    config.http_policy = HttpPolicy::AllowLoopbackHttp;
    let mut run = Run::with(config);
    let req = send(run.unauthorized(&[r#"Bearer resource_metadata="http://127.0.0.1:8080/prm""#]));
    assert_get(&req, "http://127.0.0.1:8080/prm");
}

// spec: DISC-4, DISC-1
#[test]
fn a_prm_for_another_resource_stops_the_client_before_any_as_request() {
    for got in [
        "https://h/",
        "https://h",
        "https://h/mcp/",
        "https://H/mcp",
        "https://h/MCP",
        "https://other/mcp",
        "",
    ] {
        let mut run = Run::new();
        send(run.unauthorized(&[&challenge()]));
        let prm = with(prm_doc(), "resource", json!(got));
        assert_eq!(
            failed(run.respond(ok(&prm))),
            ClientError::ResourceMismatch { got: got.into() }
        );
        // Whatever comes next, nothing is sent to the AS.
        run.respond(ok(&asm_doc()));
        run.respond(registered());
        assert!(!matches!(run.client.poll_action(), Action::Send(_)));
        assert!(run.sent.iter().all(|r| host(&r.url) == "h"), "{got}");
        assert_eq!(run.sent.len(), 1);
    }
}

// spec: DISC-4, RES-4, RES-6
#[test]
fn the_prm_resource_may_be_the_canonical_uri_or_the_configured_url() {
    let configured = "HTTPS://H:443/mcp";
    for resource in [SERVER, configured] {
        let mut run = Run::with(ClientConfig::new(configured, REDIRECT));
        assert_eq!(
            run.client.resource().map(|r| r.as_str()),
            Ok(SERVER),
            "canonical form"
        );
        let prm = with(prm_doc(), "resource", json!(resource));
        let url = run.until_browser_with(&prm, &asm_doc());
        // The resource parameter is our canonical URI either way.
        assert_eq!(url_query(&url)["resource"], SERVER);
    }
}

// spec: DISC-5
#[test]
fn unknown_metadata_members_are_ignored() {
    let prm = with(
        with(
            prm_doc(),
            "x-vendor",
            json!({"nested": [1, 2, {"a": null}]}),
        ),
        "resource_signing_alg_values_supported",
        json!(["ES256"]),
    );
    let asm = with(
        with(asm_doc(), "x-unknown", json!(["anything"])),
        "pushed_authorization_request_endpoint",
        json!("https://as/t1/par"),
    );
    let mut run = Run::new();
    let url = run.until_browser_with(&prm, &asm);
    assert!(url.starts_with(AUTHORIZE), "{url}");
}

// spec: PRM-2, DISC-1
#[test]
fn a_prm_without_a_usable_authorization_server_stops_the_client() {
    for prm in [
        with(prm_doc(), "authorization_servers", json!([])),
        without(prm_doc(), "authorization_servers"),
        with(
            prm_doc(),
            "authorization_servers",
            json!([
                "http://as/t1",
                "https://as/t1?x=1",
                "https://as/t1#f",
                "not a url"
            ]),
        ),
    ] {
        let mut run = Run::new();
        send(run.unauthorized(&[&challenge()]));
        assert_eq!(
            failed(run.respond(ok(&prm))),
            ClientError::NoAuthorizationServer,
            "{prm}"
        );
        assert_eq!(run.sent.len(), 1);
    }
}

// spec: DISC-5
#[test]
fn a_prm_that_is_not_metadata_stops_the_client() {
    for body in [&b"<html>"[..], b"{}", b"[]", br#"{"resource": 7}"#] {
        let mut run = Run::new();
        send(run.unauthorized(&[&challenge()]));
        assert_eq!(
            failed(run.respond(HttpResponse::new(200).with_body(body))),
            ClientError::BadResourceMetadata
        );
    }
}

// spec: DISC-6
#[test]
fn the_first_usable_authorization_server_is_chosen() {
    let prm = with(
        prm_doc(),
        "authorization_servers",
        json!(["http://insecure", ISSUER, "https://as2"]),
    );
    let mut run = Run::new();
    send(run.unauthorized(&[&challenge()]));
    assert_get(&send(run.respond(ok(&prm))), ASM_URL);
}

// ---- discovery of the authorization server metadata -------------------------------------------

// spec: DISC-7, DISC-9
#[test]
fn as_metadata_urls_are_probed_in_order_with_get() {
    let mut run = Run::new();
    send(run.unauthorized(&[&challenge()]));
    assert_get(&send(run.respond(ok(&prm_doc()))), ASM_URL);
    assert_get(&send(run.respond(not_found())), OIDC_INSERTED);
    assert_get(&send(run.respond(not_found())), OIDC_APPENDED);
    assert_eq!(
        failed(run.respond(not_found())),
        ClientError::NoServerMetadata
    );
    assert_eq!(run.sent.len(), 4);

    // The last candidate's document is accepted like the first one's.
    let mut run = Run::new();
    send(run.unauthorized(&[&challenge()]));
    send(run.respond(ok(&prm_doc())));
    send(run.respond(not_found()));
    send(run.respond(HttpResponse::new(403)));
    let req = send(run.respond(ok(&asm_doc())));
    assert_eq!((req.method, req.url.as_str()), (Method::Post, REGISTER));
}

// spec: DISC-7, DISC-9
#[test]
fn an_issuer_without_a_path_has_two_candidates() {
    let prm = with(prm_doc(), "authorization_servers", json!(["https://as"]));
    let mut run = Run::new();
    send(run.unauthorized(&[&challenge()]));
    assert_get(
        &send(run.respond(ok(&prm))),
        "https://as/.well-known/oauth-authorization-server",
    );
    assert_get(
        &send(run.respond(not_found())),
        "https://as/.well-known/openid-configuration",
    );
    assert_eq!(
        failed(run.respond(not_found())),
        ClientError::NoServerMetadata
    );
}

// spec: DISC-8
#[test]
fn as_metadata_of_another_issuer_stops_the_client() {
    for got in [
        "https://as/t1/",
        "https://evil/t1",
        "https://AS/t1",
        "https://as",
        "",
    ] {
        let mut run = Run::new();
        let asm = with(asm_doc(), "issuer", json!(got));
        assert_eq!(
            failed(run.discover_with(&prm_doc(), &asm)),
            ClientError::IssuerMismatch { got: got.into() }
        );
        assert_eq!(run.sent.len(), 2, "no registration after {got}");
        assert!(!matches!(run.client.poll_action(), Action::Send(_)));
    }
}

// spec: DISC-7
#[test]
fn as_metadata_that_is_not_json_stops_the_client() {
    let mut run = Run::new();
    send(run.unauthorized(&[&challenge()]));
    send(run.respond(ok(&prm_doc())));
    assert_eq!(
        failed(run.respond(HttpResponse::new(200).with_body("issuer=https://as/t1"))),
        ClientError::NoServerMetadata
    );
}

// spec: PKCE-11, PF-12
#[test]
fn pkce_support_must_be_advertised() {
    let missing = without(asm_doc(), "code_challenge_methods_supported");
    let plain = with(
        asm_doc(),
        "code_challenge_methods_supported",
        json!(["plain"]),
    );
    let lower = with(
        asm_doc(),
        "code_challenge_methods_supported",
        json!(["s256"]),
    );
    let both = with(
        asm_doc(),
        "code_challenge_methods_supported",
        json!(["plain", "S256"]),
    );

    // Strict by default.
    for asm in [&missing, &plain, &lower] {
        let mut run = Run::new();
        assert_eq!(
            failed(run.discover_with(&prm_doc(), asm)),
            ClientError::PkceUnsupported,
            "{asm}"
        );
        assert_eq!(run.sent.len(), 2);
    }
    let mut run = Run::new();
    assert_eq!(send(run.discover_with(&prm_doc(), &both)).url, REGISTER);

    // The compatibility switch tolerates a missing member, never one that excludes S256.
    let mut lenient = config();
    lenient.allow_missing_pkce_metadata = true;
    let mut run = Run::with(lenient.clone());
    let url = run.until_browser_with(&prm_doc(), &missing);
    assert_eq!(url_query(&url)["code_challenge_method"], "S256");
    for asm in [&plain, &lower] {
        let mut run = Run::with(lenient.clone());
        assert_eq!(
            failed(run.discover_with(&prm_doc(), asm)),
            ClientError::PkceUnsupported
        );
    }
}

// spec: GEN-6
#[test]
fn insecure_or_missing_endpoints_in_as_metadata_are_refused() {
    let cases = [
        with(
            asm_doc(),
            "authorization_endpoint",
            json!("http://as/t1/authorize"),
        ),
        with(asm_doc(), "token_endpoint", json!("http://as/t1/token")),
        with(
            asm_doc(),
            "registration_endpoint",
            json!("http://as/t1/register"),
        ),
        with(
            asm_doc(),
            "authorization_endpoint",
            json!("javascript:alert(1)"),
        ),
        with(
            asm_doc(),
            "authorization_endpoint",
            json!("https://as/t1/authorize#f"),
        ),
        with(asm_doc(), "token_endpoint", json!("/token")),
        with(asm_doc(), "token_endpoint", json!("http://127.0.0.1/token")),
        without(asm_doc(), "token_endpoint"),
        without(asm_doc(), "authorization_endpoint"),
    ];
    for asm in &cases {
        let mut run = Run::new();
        assert_eq!(
            failed(run.discover_with(&prm_doc(), asm)),
            ClientError::BadServerMetadata,
            "{asm}"
        );
        assert_eq!(run.sent.len(), 2);
    }

    // Under the loopback leniency, loopback http passes and other http still fails.
    let loopback = |token: &str| {
        json!({
            "issuer": "http://127.0.0.1:9000",
            "authorization_endpoint": "http://127.0.0.1:9000/authorize",
            "token_endpoint": token,
            "registration_endpoint": "http://[::1]:9000/register",
            "code_challenge_methods_supported": ["S256"],
        })
    };
    for (token, expect_ok) in [
        ("http://localhost:9000/token", true),
        ("http://as/token", false),
    ] {
        let mut config = ClientConfig::new("http://127.0.0.1:8080/mcp", REDIRECT);
        config.http_policy = HttpPolicy::AllowLoopbackHttp;
        let mut run = Run::with(config);
        let req = send(run.unauthorized(&["Bearer"]));
        assert_get(
            &req,
            "http://127.0.0.1:8080/.well-known/oauth-protected-resource/mcp",
        );
        let prm = json!({
            "resource": "http://127.0.0.1:8080/mcp",
            "authorization_servers": ["http://127.0.0.1:9000"],
        });
        assert_get(
            &send(run.respond(ok(&prm))),
            "http://127.0.0.1:9000/.well-known/oauth-authorization-server",
        );
        let action = run.respond(ok(&loopback(token)));
        if expect_ok {
            assert_eq!(send(action).url, "http://[::1]:9000/register");
        } else {
            assert_eq!(failed(action), ClientError::BadServerMetadata);
        }
    }
}

// spec: RES-9, GEN-6
#[test]
fn an_invalid_server_url_is_refused() {
    for url in [
        "http://h/mcp",
        "https://h/mcp#x",
        "h/mcp",
        "ftp://h/mcp",
        "",
    ] {
        let mut run = Run::with(ClientConfig::new(url, REDIRECT));
        assert_eq!(run.client.resource(), Err(&ClientError::BadServerUrl));
        assert_eq!(
            failed(run.unauthorized(&[&challenge()])),
            ClientError::BadServerUrl,
            "{url}"
        );
        assert!(run.sent.is_empty());
    }
}

// spec: DCR-10, AZ-5
#[test]
fn an_invalid_redirect_uri_is_never_used() {
    for redirect in [
        "http://example.com/callback",
        "https://app.example/cb#frag",
        "com.example.app:/cb",
        "/callback",
    ] {
        let mut run = Run::with(ClientConfig::new(SERVER, redirect));
        assert_eq!(
            failed(run.unauthorized(&[&challenge()])),
            ClientError::BadRedirectUri,
            "{redirect}"
        );
        assert!(run.sent.is_empty());
    }
    // https and loopback http are fine.
    for redirect in ["https://app.example/cb", "http://[::1]:1234/cb"] {
        let mut run = Run::with(ClientConfig::new(SERVER, redirect));
        assert_get(&send(run.unauthorized(&[&challenge()])), PRM_INSERTED);
    }
}

// ---- the SSRF guard: where URLs from challenges and metadata may point ------------------------

/// A client for the public https server [`SERVER`] with the loopback leniency on, as the CLI
/// used to configure it: the discovered URLs must still not reach loopback or private hosts.
fn lenient_public() -> Run {
    let mut config = config();
    config.http_policy = HttpPolicy::AllowLoopbackHttp;
    Run::with(config)
}

fn no_request_to(run: &Run, hosts: &[&str]) {
    for req in &run.sent {
        let h = host(&req.url);
        assert!(!hosts.contains(&h.as_str()), "request sent to {}", req.url);
    }
}

const INTERNAL: [&str; 6] = [
    "127.0.0.1",
    "localhost",
    "[::1]",
    "10.0.0.1",
    "169.254.169.254",
    "192.168.1.1",
];

// spec: DISC-11, PF-8, PF-16
#[test]
fn a_public_server_cannot_point_the_client_at_loopback_or_private_addresses() {
    // resource_metadata in the challenge.
    for url in [
        "http://127.0.0.1:6379/prm",
        "https://127.0.0.1/prm",
        "http://localhost:8080/prm",
        "https://10.0.0.1/prm",
        "https://169.254.169.254/latest/meta-data",
        "https://[::1]/prm",
    ] {
        let mut run = lenient_public();
        let www = format!(r#"Bearer resource_metadata="{url}""#);
        assert!(
            matches!(run.unauthorized(&[&www]), Action::Failed(_)),
            "{url}"
        );
        no_request_to(&run, &INTERNAL);
    }
    // The authorization server named by the PRM.
    for issuer in [
        "http://127.0.0.1:9000",
        "https://192.168.1.1",
        "https://169.254.169.254",
    ] {
        let mut run = lenient_public();
        send(run.unauthorized(&[&challenge()]));
        let prm = with(prm_doc(), "authorization_servers", json!([issuer]));
        assert!(
            matches!(run.respond(ok(&prm)), Action::Failed(_)),
            "{issuer}"
        );
        no_request_to(&run, &INTERNAL);
    }
    // Endpoints in the AS metadata.
    for (name, url) in [
        ("registration_endpoint", "http://127.0.0.1:5555/register"),
        ("registration_endpoint", "https://10.0.0.1/register"),
        ("token_endpoint", "http://localhost:5555/token"),
        (
            "authorization_endpoint",
            "https://169.254.169.254/authorize",
        ),
    ] {
        let mut run = lenient_public();
        let action = run.discover_with(&prm_doc(), &with(asm_doc(), name, json!(url)));
        assert!(
            matches!(action, Action::Failed(_)),
            "{name} {url}: {action:?}"
        );
        no_request_to(&run, &INTERNAL);
    }
}

// spec: DISC-11, PF-16
#[test]
fn private_addresses_need_the_named_switch_and_loopback_needs_a_loopback_server() {
    let prm = with(
        prm_doc(),
        "authorization_servers",
        json!(["https://10.1.2.3/t1"]),
    );
    // Off by default: refused, with the SSRF error.
    let mut run = Run::new();
    send(run.unauthorized(&[&challenge()]));
    assert_eq!(
        failed(run.respond(ok(&prm))),
        ClientError::ForbiddenAddress {
            url: "https://10.1.2.3/t1".into()
        }
    );
    assert_eq!(
        ClientError::ForbiddenAddress { url: String::new() }.requirement(),
        "DISC-11"
    );
    // On: the private AS is fetched; loopback and link-local stay refused.
    let mut config = config();
    config.allow_private_addresses = true;
    let mut run = Run::with(config.clone());
    send(run.unauthorized(&[&challenge()]));
    assert_get(
        &send(run.respond(ok(&prm))),
        "https://10.1.2.3/.well-known/oauth-authorization-server/t1",
    );
    for url in ["https://127.0.0.1/prm", "https://169.254.169.254/prm"] {
        let mut run = Run::with(config.clone());
        let www = format!(r#"Bearer resource_metadata="{url}""#);
        assert_eq!(
            failed(run.unauthorized(&[&www])),
            ClientError::ForbiddenAddress { url: url.into() }
        );
    }
    // An https server on loopback may name loopback hosts, but never plain http.
    let mut config = ClientConfig::new("https://127.0.0.1:8443/mcp", REDIRECT);
    config.http_policy = HttpPolicy::AllowLoopbackHttp;
    assert_eq!(
        Client::new(config.clone()).transport_policy(),
        HttpPolicy::HttpsOnly
    );
    let mut run = Run::with(config.clone());
    let www = r#"Bearer resource_metadata="http://127.0.0.1:8443/prm""#;
    assert_eq!(failed(run.unauthorized(&[www])), ClientError::BadChallenge);
    let mut run = Run::with(config);
    let www = r#"Bearer resource_metadata="https://localhost:9443/prm""#;
    assert_get(
        &send(run.unauthorized(&[www])),
        "https://localhost:9443/prm",
    );
    // A loopback http server keeps the leniency.
    let mut config = ClientConfig::new("http://127.0.0.1:8080/mcp", REDIRECT);
    config.http_policy = HttpPolicy::AllowLoopbackHttp;
    assert_eq!(
        Client::new(config).transport_policy(),
        HttpPolicy::AllowLoopbackHttp
    );
}

// ---- registration -----------------------------------------------------------------------------

// spec: DCR-4, DCR-5, DCR-10, CLI-7, DCR-2
#[test]
fn the_registration_request_is_a_json_post_for_a_public_client() {
    let mut run = Run::new();
    let req = send(run.discover_with(&prm_doc(), &asm_doc()));
    assert_eq!(req.method, Method::Post);
    assert_eq!(req.url, REGISTER);
    assert_eq!(req.header_str("content-type"), Some("application/json"));
    assert_eq!(req.header_values("authorization").count(), 0);
    let body: Value = serde_json::from_slice(&req.body).expect("JSON body");
    assert_eq!(body["redirect_uris"], json!([REDIRECT]));
    assert_eq!(body["token_endpoint_auth_method"], json!("none"));
    assert_eq!(
        body["grant_types"],
        json!(["authorization_code", "refresh_token"])
    );
    assert_eq!(body["response_types"], json!(["code"]));
    assert_eq!(body["client_name"], json!("mcp-auth"));
    assert!(body.get("scope").is_none(), "no scope was asked for");

    // The registered redirect URI is the one used, with the issued client id.
    let url = browser(run.respond(registered()));
    let query = url_query(&url);
    assert_eq!(query["client_id"], CLIENT_ID);
    assert_eq!(query["redirect_uri"], REDIRECT);
}

// spec: DCR-4
#[test]
fn a_failed_registration_stops_the_client() {
    let cases = [
        (HttpResponse::new(400), 400),
        (
            HttpResponse::json(500, &json!({"error": "server_error"})),
            500,
        ),
        (HttpResponse::new(500), 500),
        (HttpResponse::new(201).with_body("not json"), 201),
        (
            HttpResponse::json(201, &json!({"redirect_uris": [REDIRECT]})),
            201,
        ),
    ];
    for (response, status) in cases {
        let mut run = Run::new();
        send(run.discover_with(&prm_doc(), &asm_doc()));
        assert_eq!(
            failed(run.respond(response)),
            ClientError::RegistrationFailed { status }
        );
        assert_eq!(run.sent.len(), 3);
    }
}

// spec: DCR-13, DCR-4
#[test]
fn a_registration_refused_for_its_redirect_uri_carries_the_as_error() {
    let mut run = Run::new();
    send(run.discover_with(&prm_doc(), &asm_doc()));
    let refusal = HttpResponse::json(
        400,
        &json!({"error": "invalid_redirect_uri", "error_description": "loopback\nnot allowed"}),
    );
    let error = failed(run.respond(refusal));
    assert_eq!(
        error,
        ClientError::RegistrationRefused {
            status: 400,
            error: "invalid_redirect_uri".into(),
            description: Some("loopbacknot allowed".into()),
        }
    );
    assert_eq!(error.requirement(), "DCR-13");
    assert!(error.to_string().contains("invalid_redirect_uri"));
    // No error code, or one that is no RFC 6749 code: the status alone.
    for body in [json!({"error": ""}), json!({"error": "x".repeat(300)})] {
        let mut run = Run::new();
        send(run.discover_with(&prm_doc(), &asm_doc()));
        assert_eq!(
            failed(run.respond(HttpResponse::json(400, &body))),
            ClientError::RegistrationFailed { status: 400 }
        );
    }
}

// spec: DCR-12
#[test]
fn registration_names_the_application_type_from_2026_07_28() {
    use mcp_auth_proto::Revision;
    let body = |revision: Revision, redirect: &str| -> Value {
        let mut run = Run::with(ClientConfig::new(SERVER, redirect).with_revision(revision));
        let req = send(run.discover_with(&prm_doc(), &asm_doc()));
        assert_eq!(req.url, REGISTER);
        serde_json::from_slice(&req.body).expect("JSON body")
    };
    for revision in [Revision::V2025_06_18, Revision::V2025_11_25] {
        assert!(body(revision, REDIRECT).get("application_type").is_none());
    }
    let latest = Revision::V2026_07_28;
    assert_eq!(body(latest, REDIRECT)["application_type"], json!("native"));
    assert_eq!(
        body(latest, "http://[::1]:9/cb")["application_type"],
        json!("native")
    );
    assert_eq!(
        body(latest, "http://localhost:9/cb")["application_type"],
        json!("native")
    );
    assert_eq!(
        body(latest, "https://app.example/cb")["application_type"],
        json!("web")
    );
}

// spec: DCR-3
#[test]
fn preregistered_credentials_skip_registration() {
    let mut config = config();
    config.preregistered = Some(("pre-id".into(), None));
    let mut run = Run::with(config);
    let asm = without(asm_doc(), "registration_endpoint");
    let url = browser(run.discover_with(&prm_doc(), &asm));
    assert_eq!(url_query(&url)["client_id"], "pre-id");
    assert!(run.sent.iter().all(|r| r.method == Method::Get));
    assert_eq!(run.sent.len(), 2);

    let (result, action) = run.redirect(&callback(&url));
    assert_eq!(result, Ok(()));
    let req = send(action);
    assert_eq!(form_body(&req)["client_id"], "pre-id");
    assert_eq!(req.header_values("authorization").count(), 0);
}

// spec: DCR-2
#[test]
fn no_registration_endpoint_and_no_credentials_stops_the_client() {
    let mut run = Run::new();
    let asm = without(asm_doc(), "registration_endpoint");
    assert_eq!(
        failed(run.discover_with(&prm_doc(), &asm)),
        ClientError::NoRegistration
    );
}

// ---- the authorization request ----------------------------------------------------------------

// spec: AZ-1, RES-1, RES-3, RES-8, PF-13
#[test]
fn the_authorization_url_carries_pkce_state_and_resource() {
    let mut run = Run::new();
    // The metadata gives no sign of RFC 8707 support: resource is sent anyway (RES-8).
    let url = run.until_browser();
    let (base, _) = url.split_once('?').expect("query");
    assert_eq!(base, AUTHORIZE);
    let query = url_query(&url);
    assert_eq!(
        names(&query),
        [
            "client_id",
            "code_challenge",
            "code_challenge_method",
            "redirect_uri",
            "resource",
            "response_type",
            "state",
        ]
    );
    assert_eq!(query["response_type"], "code");
    assert_eq!(query["client_id"], CLIENT_ID);
    assert_eq!(query["redirect_uri"], REDIRECT);
    assert_eq!(query["code_challenge_method"], "S256");
    assert_eq!(query["resource"], SERVER);
}

// spec: AZ-13, PKCE-1, PKCE-2, PKCE-3, RES-2
#[test]
fn the_state_is_opaque_and_the_verifier_is_the_challenges_preimage() {
    let mut run = Run::new();
    let url = run.until_browser();
    let query = url_query(&url);
    assert_eq!(query["code_challenge_method"], "S256");
    // state: an opaque 256-bit handle, nothing readable in it.
    let state = &query["state"];
    assert_eq!(state.len(), 43);
    assert!(URL_SAFE_NO_PAD.decode(state).is_ok_and(|b| b.len() == 32));

    // The verifier sent later is the preimage of the challenge.
    let (result, action) = run.redirect(&callback(&url));
    assert_eq!(result, Ok(()));
    let token = form_body(&send(action));
    let verifier = &token["code_verifier"];
    assert!((43..=128).contains(&verifier.len()), "{verifier}");
    assert!(
        verifier
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-._~".contains(&b))
    );
    assert_eq!(s256(verifier), query["code_challenge"]);
    assert_ne!(verifier, state);
    assert_eq!(token["resource"], query["resource"]);
}

// spec: AZ-5
#[test]
fn an_authorization_endpoint_query_is_kept() {
    let asm = with(
        asm_doc(),
        "authorization_endpoint",
        json!("https://as/t1/authorize?tenant=t1&ui=dark"),
    );
    let mut run = Run::new();
    let url = run.until_browser_with(&prm_doc(), &asm);
    assert!(
        url.starts_with("https://as/t1/authorize?tenant=t1&ui=dark&response_type=code&"),
        "{url}"
    );
    let query = url_query(&url);
    assert_eq!(query["tenant"], "t1");
    assert_eq!(query["ui"], "dark");
    assert_eq!(query["resource"], SERVER);
}

// spec: PKCE-5, PKCE-3
#[test]
fn every_flow_gets_a_new_challenge_and_state() {
    let mut run = Run::new();
    let first = run.until_browser();
    let query = form::encode([
        ("error", "access_denied"),
        ("state", &state_of(&first)),
        ("iss", ISSUER),
    ]);
    let (result, action) = run.redirect(&query);
    let denied = ClientError::AuthorizationDenied {
        error: "access_denied".into(),
    };
    assert_eq!(result, Err(denied.clone()));
    assert_eq!(failed(action), denied);

    // The retry after the error.
    let second = run.until_browser();
    let (a, b) = (url_query(&first), url_query(&second));
    assert_ne!(a["code_challenge"], b["code_challenge"]);
    assert_ne!(a["state"], b["state"]);
    // The old flow's callback does not fit the new one.
    let (result, _) = run.redirect(&callback(&first));
    assert_eq!(result, Err(ClientError::StateMismatch));
}

// spec: DISC-2, DISC-12
#[test]
fn the_scope_comes_from_the_challenge_then_the_prm_then_nothing() {
    let prm = with(
        prm_doc(),
        "scopes_supported",
        json!(["mcp:tools", "mcp:admin"]),
    );
    // The challenged scope wins.
    let mut run = Run::new();
    send(run.unauthorized(&[&format!(
        r#"Bearer resource_metadata="{PRM_INSERTED}", scope="mcp:tools""#
    )]));
    send(run.respond(ok(&prm)));
    let reg = send(run.respond(ok(&asm_doc())));
    let body: Value = serde_json::from_slice(&reg.body).expect("JSON");
    assert_eq!(body["scope"], json!("mcp:tools"));
    let url = browser(run.respond(registered()));
    assert_eq!(url_query(&url)["scope"], "mcp:tools");

    // Without a challenged scope, what the PRM lists.
    let mut run = Run::new();
    let url = run.until_browser_with(&prm, &asm_doc());
    assert_eq!(url_query(&url)["scope"], "mcp:admin mcp:tools");

    // The configured scope wins over both.
    let mut config = config();
    config.scope = Some(ScopeSet::from_tokens(["mcp:read"]));
    let mut run = Run::with(config);
    send(run.unauthorized(&[&format!(
        r#"Bearer resource_metadata="{PRM_INSERTED}", scope="mcp:tools""#
    )]));
    send(run.respond(ok(&prm)));
    send(run.respond(ok(&asm_doc())));
    let url = browser(run.respond(registered()));
    assert_eq!(url_query(&url)["scope"], "mcp:read");
}

// ---- the callback -----------------------------------------------------------------------------

// spec: AZ-11, AZ-12, SEC-13, SEC-12
#[test]
fn a_callback_without_our_state_is_discarded() {
    let mut run = Run::new();
    let url = run.until_browser();
    let state = state_of(&url);
    let mut tampered = state.clone().into_bytes();
    if let Some(last) = tampered.last_mut() {
        *last = if *last == b'A' { b'B' } else { b'A' };
    }
    let tampered = String::from_utf8(tampered).expect("ASCII");
    let prefix = &state[..42];

    // Another client's flow, with its own state (a swapped callback).
    let mut other = Run::new();
    other.entropy = Sequential(1_000);
    let foreign = callback(&other.until_browser());

    let long = format!("code=c&state={state}&pad={}", "x".repeat(20_000));
    let queries = [
        form::encode([("code", "code-1"), ("iss", ISSUER)]),
        form::encode([("code", "code-1"), ("state", ""), ("iss", ISSUER)]),
        form::encode([("code", "code-1"), ("state", "WRONG"), ("iss", ISSUER)]),
        form::encode([("code", "code-1"), ("state", &tampered), ("iss", ISSUER)]),
        form::encode([("code", "code-1"), ("state", prefix), ("iss", ISSUER)]),
        form::encode([("code", "code-1"), ("state", &format!("{state}x"))]),
        form::encode([("code", "code-1"), ("state", &state), ("state", &state)]),
        form::encode([
            ("error", "access_denied"),
            ("state", "WRONG"),
            ("iss", ISSUER),
        ]),
        foreign,
        long,
        "%%%".to_owned(),
        String::new(),
    ];
    for query in &queries {
        let (result, action) = run.redirect(query);
        assert_eq!(result, Err(ClientError::StateMismatch), "{query}");
        // Discarded: the flow still waits for the browser, nothing is sent.
        assert_eq!(action, Action::OpenBrowser(url.clone()));
        assert!(run.sent.iter().all(|r| r.url != TOKEN));
    }

    // The genuine callback still works afterwards, once.
    let (result, action) = run.redirect(&callback(&url));
    assert_eq!(result, Ok(()));
    let token_request = send(action);
    assert_eq!(token_request.url, TOKEN);
    let (result, action) = run.redirect(&callback(&url));
    assert_eq!(result, Err(ClientError::UnexpectedInput));
    assert_eq!(
        send(action),
        token_request,
        "the pending request is unchanged"
    );
}

// spec: AZ-20, AZ-31
#[test]
fn a_callback_from_another_issuer_is_refused() {
    for iss in [
        Some("https://evil/t1"),
        Some("https://as/t1/"),
        Some("https://AS/t1"),
        None,
    ] {
        let mut run = Run::new();
        let url = run.until_browser();
        let state = state_of(&url);
        let mut params = vec![("code", "code-1"), ("state", state.as_str())];
        if let Some(iss) = iss {
            params.push(("iss", iss));
        }
        let (result, action) = run.redirect(&form::encode(params));
        assert_eq!(result, Err(ClientError::IssuerResponseMismatch), "{iss:?}");
        assert_eq!(failed(action), ClientError::IssuerResponseMismatch);
        assert!(run.sent.iter().all(|r| r.url != TOKEN), "no token request");
    }

    // A repeated iss is no better.
    let mut run = Run::new();
    let url = run.until_browser();
    let state = state_of(&url);
    let query = form::encode([
        ("code", "code-1"),
        ("state", &state),
        ("iss", ISSUER),
        ("iss", "https://evil/t1"),
    ]);
    assert_eq!(
        run.redirect(&query).0,
        Err(ClientError::IssuerResponseMismatch)
    );
}

// spec: AZ-20, AZ-31
#[test]
fn iss_may_be_absent_only_when_not_advertised() {
    let quiet = without(asm_doc(), "authorization_response_iss_parameter_supported");
    // Absent and not advertised: proceeds.
    let mut run = Run::new();
    let url = run.until_browser_with(&prm_doc(), &quiet);
    let query = form::encode([("code", "code-1"), ("state", &state_of(&url))]);
    let (result, action) = run.redirect(&query);
    assert_eq!(result, Ok(()));
    assert_eq!(send(action).url, TOKEN);

    // Present and correct though not advertised: proceeds.
    let mut run = Run::new();
    let url = run.until_browser_with(&prm_doc(), &quiet);
    assert_eq!(run.redirect(&callback(&url)).0, Ok(()));

    // Present and wrong though not advertised: refused.
    let mut run = Run::new();
    let url = run.until_browser_with(&prm_doc(), &quiet);
    let query = form::encode([
        ("code", "code-1"),
        ("state", &state_of(&url)),
        ("iss", "https://evil"),
    ]);
    assert_eq!(
        run.redirect(&query).0,
        Err(ClientError::IssuerResponseMismatch)
    );
}

// spec: AZ-20, AZ-31
#[test]
fn an_error_callback_with_a_wrong_issuer_is_not_reported_as_denied() {
    for iss in [Some("https://evil/t1"), None] {
        let mut run = Run::new();
        let url = run.until_browser();
        let state = state_of(&url);
        let mut params = vec![
            ("error", "access_denied"),
            ("error_description", "denied"),
            ("state", state.as_str()),
        ];
        if let Some(iss) = iss {
            params.push(("iss", iss));
        }
        let (result, action) = run.redirect(&form::encode(params));
        assert_eq!(result, Err(ClientError::IssuerResponseMismatch));
        assert_eq!(failed(action), ClientError::IssuerResponseMismatch);
    }

    // With the right issuer, the error is reported as such.
    let mut run = Run::new();
    let url = run.until_browser();
    let query = form::encode([
        ("error", "access_denied"),
        ("state", &state_of(&url)),
        ("iss", ISSUER),
    ]);
    let denied = ClientError::AuthorizationDenied {
        error: "access_denied".into(),
    };
    let (result, action) = run.redirect(&query);
    assert_eq!(result, Err(denied.clone()));
    assert_eq!(failed(action), denied);
    assert!(run.sent.iter().all(|r| r.url != TOKEN));
}

// spec: AZ-18
#[test]
fn unknown_callback_parameters_are_ignored() {
    let mut run = Run::new();
    let url = run.until_browser();
    let query = form::encode([
        ("session_state", "xyz"),
        ("code", "code-7"),
        ("scope", "mcp:tools"),
        ("state", &state_of(&url)),
        ("iss", ISSUER),
        ("x-vendor", ""),
    ]);
    let (result, action) = run.redirect(&query);
    assert_eq!(result, Ok(()));
    let body = form_body(&send(action));
    assert_eq!(body["code"], "code-7");
    assert!(!body.contains_key("session_state"));
}

// spec: AZ-18, SEC-12
#[test]
fn a_callback_without_a_code_ends_the_flow() {
    for extra in [vec![], vec![("code", "a"), ("code", "b")]] {
        let mut run = Run::new();
        let url = run.until_browser();
        let state = state_of(&url);
        let mut params = vec![("state", state.as_str()), ("iss", ISSUER)];
        params.extend(extra);
        let (result, action) = run.redirect(&form::encode(params));
        assert_eq!(result, Err(ClientError::BadCallback));
        assert_eq!(failed(action), ClientError::BadCallback);
        assert!(run.sent.iter().all(|r| r.url != TOKEN));
    }
}

// ---- the token request ------------------------------------------------------------------------

// spec: TOK-1, TOK-3, PKCE-1, RES-2, AZ-6
#[test]
fn the_token_request_is_a_form_post_to_the_issuers_token_endpoint() {
    // The token endpoint lives on another host than the authorization endpoint: the code goes
    // exactly where this issuer's metadata says.
    let asm = with(
        asm_doc(),
        "token_endpoint",
        json!("https://tokens.as/t1/token"),
    );
    let mut run = Run::new();
    let url = run.until_browser_with(&prm_doc(), &asm);
    let (result, action) = run.redirect(&callback(&url));
    assert_eq!(result, Ok(()));
    let req = send(action);
    assert_eq!(req.method, Method::Post);
    assert_eq!(req.url, "https://tokens.as/t1/token");
    assert_eq!(
        req.header_str("content-type"),
        Some("application/x-www-form-urlencoded")
    );
    assert_eq!(req.header_values("authorization").count(), 0);
    let body = form_body(&req);
    assert_eq!(
        names(&body),
        [
            "client_id",
            "code",
            "code_verifier",
            "grant_type",
            "redirect_uri",
            "resource"
        ]
    );
    assert_eq!(body["grant_type"], "authorization_code");
    assert_eq!(body["code"], "code-1");
    assert_eq!(body["redirect_uri"], REDIRECT);
    assert_eq!(body["client_id"], CLIENT_ID);
    assert_eq!(body["resource"], SERVER);
    assert_eq!(
        s256(&body["code_verifier"]),
        url_query(&url)["code_challenge"]
    );
}

// spec: TOK-13, TOK-1
#[test]
fn a_token_response_with_extra_members_and_lowercase_bearer_is_accepted() {
    let mut run = Run::new();
    run.until_token_request();
    let doc = json!({
        "access_token": "at-1",
        "token_type": "bearer",
        "expires_in": 60,
        "refresh_token": "rt-1",
        "scope": "mcp:tools",
        "id_token": "ignored",
        "x-vendor": {"a": [1, 2]},
    });
    let tokens = authorized(run.respond(ok(&doc)));
    assert_eq!(
        tokens,
        Tokens {
            issuer: ISSUER.into(),
            token_endpoint: TOKEN.into(),
            resource: SERVER.into(),
            resource_indicator: None,
            client_id: CLIENT_ID.into(),
            client_secret: None,
            client_secret_post: false,
            access_token: "at-1".into(),
            refresh_token: Some("rt-1".into()),
            expires_at: Some(NOW + 60),
            scope: Some("mcp:tools".into()),
            revocation_endpoint: None,
        }
    );
}

// spec: TOK-13, SEC-12
#[test]
fn an_unusable_token_response_is_refused() {
    let cases = [
        with(token_doc("at-1", None), "token_type", json!("mac")),
        with(token_doc("at-1", None), "token_type", json!("DPoP")),
        without(token_doc("at-1", None), "token_type"),
        without(token_doc("at-1", None), "access_token"),
        token_doc("", None),
        token_doc("at 1", None),
        token_doc("at-1\r\nX-Injected: 1", None),
        token_doc("at-1=x", None),
        json!("at-1"),
    ];
    for doc in &cases {
        let mut run = Run::new();
        run.until_token_request();
        assert_eq!(
            failed(run.respond(ok(doc))),
            ClientError::BadTokenResponse,
            "{doc}"
        );
        assert_eq!(run.client.authorization_for(SERVER), None);
    }
    let mut run = Run::new();
    run.until_token_request();
    assert_eq!(
        failed(run.respond(HttpResponse::new(200).with_body("access_token=at-1"))),
        ClientError::BadTokenResponse
    );

    // b64token allows these.
    let mut run = Run::new();
    run.until_token_request();
    let tokens = authorized(run.respond(ok(&token_doc("eyJ.a-b_c~d+e/f==", None))));
    assert_eq!(tokens.access_token, "eyJ.a-b_c~d+e/f==");
}

// spec: TOK-14
#[test]
fn a_token_error_is_reported_with_its_code() {
    let cases = [
        (
            HttpResponse::json(
                400,
                &json!({"error": "invalid_grant", "error_description": "x"}),
            ),
            ClientError::TokenRejected {
                status: 400,
                error: Some("invalid_grant".into()),
            },
        ),
        (
            HttpResponse::json(401, &json!({"error": "invalid_client"}))
                .header("www-authenticate", "Basic"),
            ClientError::TokenRejected {
                status: 401,
                error: Some("invalid_client".into()),
            },
        ),
        (
            HttpResponse::new(503).with_body("<html>busy</html>"),
            ClientError::TokenRejected {
                status: 503,
                error: None,
            },
        ),
    ];
    for (response, expected) in cases {
        let mut run = Run::new();
        run.until_token_request();
        assert_eq!(failed(run.respond(response)), expected);
    }
}

// ---- using and refreshing tokens --------------------------------------------------------------

// spec: CLI-1, CLI-3, CLI-4, CLI-5, RT-10
#[test]
fn the_token_is_offered_only_to_its_server_in_the_header() {
    let mut run = Run::new();
    assert_eq!(run.client.authorization_for(SERVER), None, "not yet");
    let tokens = run.authorize();
    assert_eq!(
        run.client.authorization_for(SERVER),
        Some("Bearer at-1".into())
    );
    assert_eq!(
        run.client.authorization_for("HTTPS://H:443/mcp"),
        Some("Bearer at-1".into())
    );
    for other in [
        "https://h/other",
        "https://h/mcp/tools",
        "https://h/mcp/",
        "https://h",
        "https://h/",
        "https://h:8443/mcp",
        "https://other/mcp",
        "https://as/t1",
        "http://h/mcp",
        "not a url",
    ] {
        assert_eq!(run.client.authorization_for(other), None, "{other}");
    }

    // Refresh tokens go only to the token endpoint, in the body; access tokens never in a URL.
    assert_eq!(send(run.refresh()).url, TOKEN);
    authorized(run.respond(ok(&token_doc("at-2", Some("rt-2")))));
    for req in &run.sent {
        let in_headers = |s: &str| {
            req.headers
                .iter()
                .any(|(_, v)| v.windows(s.len()).any(|w| w == s.as_bytes()))
        };
        for secret in ["at-1", "at-2", "rt-1", "rt-2"] {
            assert!(!req.url.contains(secret), "{secret} in {}", req.url);
            assert!(!in_headers(secret), "{secret} in headers of {}", req.url);
        }
        let body = String::from_utf8_lossy(&req.body);
        if body.contains("rt-") {
            assert_eq!((req.method, req.url.as_str()), (Method::Post, TOKEN));
            assert_eq!(form_body(req)["grant_type"], "refresh_token");
        }
        assert!(!body.contains("at-"));
    }
    assert_eq!(tokens.resource, SERVER);
}

// spec: RT-7, RES-2, RT-6, RT-10
#[test]
fn refresh_sends_the_resource_and_keeps_the_newest_refresh_token() {
    let mut run = Run::new();
    run.authorize();
    let req = send(run.refresh());
    assert_eq!(req.method, Method::Post);
    assert_eq!(req.url, TOKEN);
    assert_eq!(
        req.header_str("content-type"),
        Some("application/x-www-form-urlencoded")
    );
    let body = form_body(&req);
    assert_eq!(
        names(&body),
        ["client_id", "grant_type", "refresh_token", "resource"]
    );
    assert_eq!(body["grant_type"], "refresh_token");
    assert_eq!(body["refresh_token"], "rt-1");
    assert_eq!(body["resource"], SERVER);
    assert_eq!(body["client_id"], CLIENT_ID);
    // While the refresh is in flight no token is offered.
    assert_eq!(run.client.authorization_for(SERVER), None);

    // Rotation: the new refresh token replaces the old one.
    run.now = UnixTime::from_secs(NOW + 100);
    let tokens = authorized(run.respond(ok(&without(token_doc("at-2", Some("rt-2")), "scope"))));
    assert_eq!(tokens.access_token, "at-2");
    assert_eq!(tokens.refresh_token.as_deref(), Some("rt-2"));
    assert_eq!(tokens.expires_at, Some(NOW + 100 + 3600));
    assert_eq!(tokens.scope.as_deref(), Some("mcp:tools"), "scope kept");
    assert_eq!(tokens.issuer, ISSUER);
    assert_eq!(tokens.resource, SERVER);
    assert_eq!(
        run.client.authorization_for(SERVER),
        Some("Bearer at-2".into())
    );

    // The next refresh presents the new one; an answer without a refresh token keeps it.
    let body = form_body(&send(run.refresh()));
    assert_eq!(body["refresh_token"], "rt-2");
    let tokens = authorized(run.respond(ok(&without(token_doc("at-3", None), "expires_in"))));
    assert_eq!(tokens.access_token, "at-3");
    assert_eq!(tokens.refresh_token.as_deref(), Some("rt-2"));
    assert_eq!(tokens.expires_at, None);
    assert_eq!(form_body(&send(run.refresh()))["refresh_token"], "rt-2");
}

// spec: RT-11, TOK-1, DCR-7
#[test]
fn a_client_registered_for_client_secret_post_sends_the_secret_in_the_body() {
    let mut run = Run::new();
    let req = send(run.discover_with(&prm_doc(), &asm_doc()));
    assert_eq!(req.url, REGISTER);
    // The AS registered a confidential client with client_secret_post (RFC 7591 §3.2.1 echo).
    let response = HttpResponse::new(201)
        .header("content-type", "application/json")
        .with_body(
            serde_json::to_vec(&serde_json::json!({
                "client_id": "cid", "client_secret": "sec",
                "token_endpoint_auth_method": "client_secret_post",
                "redirect_uris": [REDIRECT],
            }))
            .unwrap(),
        );
    let url = browser(run.respond(response));
    let (result, action) = run.redirect(&callback(&url));
    assert_eq!(result, Ok(()));
    let req = send(action);
    assert_eq!(req.header_values("authorization").count(), 0);
    let body = form_body(&req);
    assert_eq!(
        (body["client_id"].as_str(), body["client_secret"].as_str()),
        ("cid", "sec")
    );
    let tokens = authorized(run.respond(ok(&token_doc("at-1", Some("rt-1")))));
    assert!(tokens.client_secret_post);
    let req = send(run.refresh());
    assert_eq!(req.header_values("authorization").count(), 0);
    assert_eq!(form_body(&req)["client_secret"], "sec");
}

// spec: RT-11, TOK-3, TOK-1
#[test]
fn a_confidential_client_authenticates_with_basic() {
    let mut config = config();
    config.preregistered = Some(("pre id".into(), Some("s3:cr+t".into())));
    let mut run = Run::with(config);
    let url = browser(run.discover_with(&prm_doc(), &asm_doc()));
    let (result, action) = run.redirect(&callback(&url));
    assert_eq!(result, Ok(()));
    let req = send(action);
    // RFC 6749 §2.3.1: id and secret form-encoded, then base64.
    let basic = format!("Basic {}", STANDARD.encode("pre+id:s3%3Acr%2Bt"));
    assert_eq!(req.header_str("authorization"), Some(basic.as_str()));
    let body = form_body(&req);
    assert!(!body.contains_key("client_id") && !body.contains_key("client_secret"));

    let tokens = authorized(run.respond(ok(&token_doc("at-1", Some("rt-1")))));
    assert_eq!(tokens.client_secret.as_deref(), Some("s3:cr+t"));
    let req = send(run.refresh());
    assert_eq!(req.header_str("authorization"), Some(basic.as_str()));
    assert_eq!(
        names(&form_body(&req)),
        ["grant_type", "refresh_token", "resource"]
    );
}

// spec: RT-10, ERR-10
#[test]
fn refresh_failures() {
    // Refused by the AS.
    let mut run = Run::new();
    run.authorize();
    send(run.refresh());
    assert_eq!(
        failed(run.respond(HttpResponse::json(400, &json!({"error": "invalid_grant"})))),
        ClientError::TokenRejected {
            status: 400,
            error: Some("invalid_grant".into())
        }
    );
    assert_eq!(run.client.authorization_for(SERVER), None);

    // Without a refresh token there is nothing to send.
    let mut run = Run::new();
    run.until_token_request();
    authorized(run.respond(ok(&token_doc("at-1", None))));
    assert_eq!(failed(run.refresh()), ClientError::UnexpectedInput);
    assert!(
        run.sent
            .iter()
            .all(|r| form_body_grant(r) != Some("refresh_token".into()))
    );

    // Nor before authorization.
    let mut run = Run::new();
    assert_eq!(failed(run.refresh()), ClientError::UnexpectedInput);
    assert!(run.sent.is_empty());
}

fn form_body_grant(req: &HttpRequest) -> Option<String> {
    (req.method == Method::Post && req.url == TOKEN)
        .then(|| form_body(req).get("grant_type").cloned())
        .flatten()
}

// spec: CLI-5, RES-5, RES-2
#[test]
fn resumed_tokens_serve_only_their_resource() {
    let tokens = Tokens {
        issuer: ISSUER.into(),
        token_endpoint: TOKEN.into(),
        resource: SERVER.into(),
        resource_indicator: None,
        client_id: CLIENT_ID.into(),
        client_secret: None,
        client_secret_post: false,
        access_token: "at-9".into(),
        refresh_token: Some("rt-9".into()),
        expires_at: Some(NOW),
        scope: None,
        revocation_endpoint: None,
    };
    let client = Client::resume(config(), tokens.clone());
    assert_eq!(client.poll_action(), Action::Authorized(tokens.clone()));
    assert_eq!(client.authorization_for(SERVER), Some("Bearer at-9".into()));
    let mut run = Run::from_client(client);
    let body = form_body(&send(run.refresh()));
    assert_eq!(body["refresh_token"], "rt-9");
    assert_eq!(body["resource"], SERVER);

    // Tokens for another path of the same host are not taken.
    let other = Tokens {
        resource: "https://h/other".into(),
        ..tokens
    };
    let client = Client::resume(config(), other);
    assert_eq!(client.poll_action(), Action::Idle);
    assert_eq!(client.authorization_for(SERVER), None);
    assert_eq!(client.authorization_for("https://h/other"), None);
}

// spec: DISC-10, DISC-2
#[test]
fn a_new_challenge_restarts_discovery() {
    let mut run = Run::new();
    run.authorize();
    let req =
        send(run.unauthorized(&[
            r#"Bearer error="invalid_token", resource_metadata="https://h/v2/prm""#,
        ]));
    assert_get(&req, "https://h/v2/prm");
    assert_eq!(run.client.authorization_for(SERVER), None);
    let prm = with(prm_doc(), "authorization_servers", json!(["https://as2"]));
    assert_get(
        &send(run.respond(ok(&prm))),
        "https://as2/.well-known/oauth-authorization-server",
    );
}

// spec: SEC-12
#[test]
fn calls_that_do_not_fit_the_state_are_refused() {
    // An answer nobody asked for.
    let mut run = Run::new();
    assert_eq!(
        failed(run.respond(ok(&prm_doc()))),
        ClientError::UnexpectedInput
    );
    assert!(run.sent.is_empty());

    // A callback before any flow: refused, the client stays idle.
    let mut run = Run::new();
    let (result, action) = run.redirect("code=c&state=s");
    assert_eq!(result, Err(ClientError::UnexpectedInput));
    assert_eq!(action, Action::Idle);

    // A callback while discovering: refused, discovery goes on.
    let mut run = Run::new();
    send(run.unauthorized(&[&challenge()]));
    let (result, action) = run.redirect("code=c&state=s");
    assert_eq!(result, Err(ClientError::UnexpectedInput));
    assert_get(&send(action), PRM_INSERTED);
}

// spec: DISC-1, RT-10
#[test]
fn the_whole_flow_talks_only_to_the_prm_and_the_named_as() {
    let mut run = Run::new();
    run.authorize();
    send(run.refresh());
    authorized(run.respond(ok(&token_doc("at-2", Some("rt-2")))));
    let log: Vec<(Method, &str)> = run
        .sent
        .iter()
        .map(|r| (r.method, r.url.as_str()))
        .collect();
    assert_eq!(
        log,
        [
            (Method::Get, PRM_INSERTED),
            (Method::Get, ASM_URL),
            (Method::Post, REGISTER),
            (Method::Post, TOKEN),
            (Method::Post, TOKEN),
        ]
    );
}

// ---- property: arbitrary answers --------------------------------------------------------------

/// Plausible and hostile documents the mock servers choose from.
const HOSTS: [&str; 6] = [
    "https://as/t1",
    "https://as2",
    "https://evil",
    "http://as/t1",
    "https://h",
    "https://as/t1/",
];
const ENDPOINTS: [&str; 9] = [
    "https://as/t1/authorize",
    "https://as/t1/token",
    "https://as/t1/register",
    "https://evil/token",
    "http://as/t1/token",
    "https://h/authorize",
    "javascript:alert(1)",
    "https://as/t1/x#frag",
    "https://as/t1/authorize?tenant=1",
];
const RESOURCES: [&str; 4] = [SERVER, "https://h/", "https://evil/mcp", "https://h/mcp/"];

#[derive(Clone, Debug)]
enum Answer {
    /// Any status, any bytes.
    Raw(u16, Vec<u8>),
    /// A well-typed document for whatever was asked, with fields picked from the pools.
    Doc {
        status: u16,
        picks: [usize; 8],
        flags: [bool; 4],
    },
}

#[derive(Clone, Debug)]
struct Callback {
    our_state: bool,
    iss: Option<usize>,
    code: bool,
    error: bool,
    extra: bool,
}

fn answer() -> impl Strategy<Value = Answer> {
    let status = prop_oneof![
        12 => Just(200u16),
        1 => Just(201u16),
        1 => Just(404u16),
        1 => Just(400u16),
        1 => Just(500u16),
    ];
    prop_oneof![
        1 => (any::<u16>(), proptest::collection::vec(any::<u8>(), 0..64))
            .prop_map(|(s, b)| Answer::Raw(s, b)),
        8 => (status, any::<[usize; 8]>(), proptest::array::uniform4(proptest::bool::weighted(0.9)))
            .prop_map(|(status, picks, flags)| Answer::Doc { status, picks, flags }),
    ]
}

fn callback_strategy() -> impl Strategy<Value = Callback> {
    (
        proptest::bool::weighted(0.8),
        prop_oneof![4 => Just(Some(0)), 1 => proptest::option::of(0..HOSTS.len())],
        proptest::bool::weighted(0.9),
        proptest::bool::weighted(0.1),
        any::<bool>(),
    )
        .prop_map(|(our_state, iss, code, error, extra)| Callback {
            our_state,
            iss,
            code,
            error,
            extra,
        })
}

fn pick<'a>(pool: &[&'a str], i: usize) -> &'a str {
    pool[i % pool.len()]
}

/// Turn an answer into a response for `req`, choosing the document type from the URL.
fn render(answer: &Answer, req: &HttpRequest) -> HttpResponse {
    let (status, p, f) = match answer {
        Answer::Raw(status, body) => return HttpResponse::new(*status).with_body(body.clone()),
        Answer::Doc {
            status,
            picks,
            flags,
        } => (*status, picks, flags),
    };
    let doc = if req.url.contains("oauth-protected-resource") || req.url.contains("/prm") {
        // Mostly the right resource and AS, sometimes not.
        let resource = if f[0] { SERVER } else { pick(&RESOURCES, p[0]) };
        let mut servers = vec![];
        if f[1] {
            servers.push(ISSUER);
        }
        servers.push(pick(&HOSTS, p[1]));
        json!({"resource": resource, "authorization_servers": servers})
    } else if req.url.contains("/.well-known/") {
        let issuer = if f[0] { ISSUER } else { pick(&HOSTS, p[0]) };
        let endpoint = |i: usize, good: &'static str| {
            if f[1] { good } else { pick(&ENDPOINTS, p[i]) }
        };
        let mut doc = json!({
            "issuer": issuer,
            "authorization_endpoint": endpoint(1, AUTHORIZE),
            "token_endpoint": endpoint(2, TOKEN),
            "code_challenge_methods_supported": if f[2] { json!(["S256"]) } else { json!(["plain"]) },
            "authorization_response_iss_parameter_supported": f[3],
        });
        if p[3] % 8 != 0 {
            doc["registration_endpoint"] = json!(endpoint(3, REGISTER));
        }
        doc
    } else if req.body.first() == Some(&b'{') {
        json!({"client_id": format!("cid-{}", p[0] % 3), "redirect_uris": [REDIRECT]})
    } else {
        let access = format!("at-{}", p[0] % 1000);
        let mut doc = json!({
            "access_token": access,
            "token_type": if f[0] { "Bearer" } else { pick(&["bearer", "mac", ""], p[1]) },
        });
        if f[1] {
            doc["refresh_token"] = json!(format!("rt-{}", p[2] % 1000));
        }
        if f[2] {
            doc["expires_in"] = json!(p[3] % 100_000);
        }
        if !f[3] {
            doc["error"] = json!("invalid_grant");
        }
        doc
    };
    HttpResponse::json(status, &doc)
}

/// What the client may legitimately contact, learned from what we fed it.
#[derive(Default)]
struct Allowed {
    urls: BTreeSet<String>,
    issuers: BTreeSet<String>,
    authorize: BTreeSet<String>,
    token_endpoints: BTreeSet<String>,
    refresh_tokens: BTreeSet<String>,
    access_tokens: BTreeSet<String>,
}

impl Allowed {
    fn learn(&mut self, req: &HttpRequest, response: &HttpResponse) {
        let Ok(doc) = serde_json::from_slice::<Value>(&response.body) else {
            return;
        };
        if response.status == 200 && doc["resource"] == json!(SERVER) {
            for s in doc["authorization_servers"]
                .as_array()
                .into_iter()
                .flatten()
            {
                let Some(issuer) = s.as_str() else { continue };
                self.issuers.insert(issuer.to_owned());
                let trimmed = issuer.trim_end_matches('/');
                if let Some((origin, path)) = trimmed
                    .strip_prefix("https://")
                    .and_then(|rest| rest.split_once('/').or(Some((rest, ""))))
                {
                    let path = if path.is_empty() {
                        String::new()
                    } else {
                        format!("/{path}")
                    };
                    for url in [
                        format!("https://{origin}/.well-known/oauth-authorization-server{path}"),
                        format!("https://{origin}/.well-known/openid-configuration{path}"),
                        format!("https://{origin}{path}/.well-known/openid-configuration"),
                    ] {
                        self.urls.insert(url);
                    }
                }
            }
        }
        if response.status == 200
            && req.url.contains("/.well-known/")
            && doc["issuer"]
                .as_str()
                .is_some_and(|i| self.issuers.contains(i))
        {
            let endpoint = |k: &str| doc[k].as_str().map(str::to_owned);
            self.authorize.extend(endpoint("authorization_endpoint"));
            if let Some(t) = endpoint("token_endpoint") {
                self.urls.insert(t.clone());
                self.token_endpoints.insert(t);
            }
            if let Some(r) = endpoint("registration_endpoint") {
                self.urls.insert(r);
            }
        }
        if let Some(rt) = doc["refresh_token"].as_str() {
            self.refresh_tokens.insert(rt.to_owned());
        }
        if let Some(at) = doc["access_token"].as_str() {
            self.access_tokens.insert(at.to_owned());
        }
    }

    fn check(&self, req: &HttpRequest) {
        let parts = parse_uri(&req.url).expect("an absolute URL");
        assert!(
            parts.scheme == "https" && parts.fragment.is_none(),
            "insecure request {}",
            req.url
        );
        // On the MCP host only PRM discovery; anything else only where the metadata points
        // (DISC-1: never a guessed endpoint).
        let prm = req.method == Method::Get
            && [PRM_INSERTED, PRM_ROOT, "https://h/prm"].contains(&req.url.as_str());
        assert!(
            prm || self.urls.contains(&req.url),
            "unexpected {}",
            req.url
        );
        let body = String::from_utf8_lossy(&req.body);
        for rt in &self.refresh_tokens {
            assert!(!req.url.contains(rt.as_str()));
            if body.contains(rt.as_str()) {
                assert!(
                    self.token_endpoints.contains(&req.url),
                    "{rt} to {}",
                    req.url
                );
            }
        }
        for at in &self.access_tokens {
            assert!(!req.url.contains(at.as_str()), "token in URL {}", req.url);
        }
    }

    fn check_browser(&self, url: &str) {
        assert!(
            self.authorize.iter().any(|a| url.starts_with(a.as_str())),
            "unexpected authorization URL {url}"
        );
        let query = url_query(url);
        assert_eq!(query["code_challenge_method"], "S256");
        assert_eq!(query["resource"], SERVER);
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1024))]

    // spec: SEC-12, DISC-1, GEN-6, RT-10, CLI-3
    #[test]
    fn arbitrary_answers_never_panic_nor_lead_elsewhere(
        header in proptest::option::of(prop_oneof![
            4 => Just(challenge()),
            2 => Just(r#"Bearer resource_metadata="https://h/prm", scope="mcp:tools""#.to_owned()),
            1 => Just(r#"Bearer resource_metadata="http://h/prm""#.to_owned()),
            1 => Just("Bearer".to_owned()),
            1 => "\\PC{0,40}",
        ]),
        answers in proptest::collection::vec(answer(), 1..14),
        callbacks in proptest::collection::vec(callback_strategy(), 4),
        refreshes in 0usize..3,
    ) {
        let mut run = Run::new();
        let mut allowed = Allowed::default();
        let www: Vec<&str> = header.iter().map(String::as_str).collect();
        run.client.handle_unauthorized(www.iter().copied());
        let mut answers = answers.into_iter();
        let mut callbacks = callbacks.into_iter();
        let mut refreshes = refreshes;
        for _ in 0..40 {
            match run.client.poll_action() {
                Action::Send(req) => {
                    allowed.check(&req);
                    let Some(answer) = answers.next() else { break };
                    let response = render(&answer, &req);
                    allowed.learn(&req, &response);
                    run.client.handle_response(run.now, &mut run.entropy, &response);
                }
                Action::OpenBrowser(url) => {
                    allowed.check_browser(&url);
                    let Some(cb) = callbacks.next() else { break };
                    let state = if cb.our_state { state_of(&url) } else { "forged".into() };
                    let mut params = vec![("state", state)];
                    if let Some(i) = cb.iss {
                        params.push(("iss", HOSTS[i].to_owned()));
                    }
                    if cb.code {
                        params.push(("code", "c".into()));
                    }
                    if cb.error {
                        params.push(("error", "access_denied".into()));
                    }
                    if cb.extra {
                        params.push(("x", "y".into()));
                    }
                    let query = form::encode(params.iter().map(|(k, v)| (*k, v.as_str())));
                    let before = run.client.clone();
                    let result = run.client.handle_redirect(&query);
                    if !cb.our_state {
                        // A forged state changes nothing.
                        prop_assert_eq!(result, Err(ClientError::StateMismatch));
                        prop_assert_eq!(&run.client, &before);
                    }
                }
                Action::Authorized(tokens) => {
                    prop_assert_eq!(&tokens.resource, SERVER);
                    prop_assert!(allowed.token_endpoints.contains(&tokens.token_endpoint));
                    prop_assert_eq!(
                        run.client.authorization_for(SERVER),
                        Some(format!("Bearer {}", tokens.access_token))
                    );
                    prop_assert_eq!(run.client.authorization_for("https://h/other"), None);
                    prop_assert_eq!(run.client.authorization_for("https://evil/mcp"), None);
                    if refreshes == 0 || tokens.refresh_token.is_none() {
                        break;
                    }
                    refreshes -= 1;
                    run.client.start_refresh();
                }
                Action::Failed(_) | Action::Idle => break,
            }
        }
    }
}

// spec: TOK-13
#[test]
fn tokens_expire_early_by_the_margin() {
    let t = Tokens {
        issuer: "https://as".into(),
        token_endpoint: "https://as/token".into(),
        resource: "https://h/mcp".into(),
        resource_indicator: None,
        client_id: "c".into(),
        client_secret: None,
        client_secret_post: false,
        access_token: "t".into(),
        refresh_token: None,
        expires_at: Some(1000),
        scope: None,
        revocation_endpoint: None,
    };
    assert!(!t.is_expired(UnixTime::from_secs(969)));
    assert!(t.is_expired(UnixTime::from_secs(970)));
    assert!(
        !Tokens {
            expires_at: None,
            ..t
        }
        .is_expired(UnixTime::from_secs(u64::MAX))
    );
}

// ---- answers of the MCP server ----------------------------------------------------------------

/// A 401 for a token the server refuses.
fn invalid_token() -> String {
    format!(r#"Bearer resource_metadata="{PRM_INSERTED}", error="invalid_token""#)
}

/// A 403 naming the scopes the request needs.
fn insufficient(scope: &str) -> String {
    format!(
        r#"Bearer resource_metadata="{PRM_INSERTED}", error="insufficient_scope", scope="{scope}""#
    )
}

fn scopes(s: &str) -> ScopeSet {
    ScopeSet::parse(s).expect("scopes")
}

impl Run {
    /// The MCP server's answer to a request.
    fn mcp(&mut self, status: u16, www: &[&str]) -> McpOutcome {
        self.client.handle_mcp_response(status, www.iter().copied())
    }

    /// Play honest servers until the client is authorized (or fails): PRM, AS metadata,
    /// registration, the user's approval, and tokens `at-N`/`rt-N` granting `granted` (`None`:
    /// no `scope` in the token response).
    fn complete(&mut self, n: u32, granted: Option<&str>) -> Action {
        for _ in 0..8 {
            let action = self.observe();
            match &action {
                Action::Send(req) if req.url == PRM_INSERTED => {
                    self.client
                        .handle_response(self.now, &mut self.entropy, &ok(&prm_doc()));
                }
                Action::Send(req) if req.url == ASM_URL => {
                    self.client
                        .handle_response(self.now, &mut self.entropy, &ok(&asm_doc()));
                }
                Action::Send(req) if req.url == REGISTER => {
                    self.client
                        .handle_response(self.now, &mut self.entropy, &registered());
                }
                Action::Send(req) if req.url == TOKEN => {
                    let mut doc = token_doc(&format!("at-{n}"), Some(&format!("rt-{n}")));
                    doc = match granted {
                        Some(scope) => with(doc, "scope", json!(scope)),
                        None => without(doc, "scope"),
                    };
                    self.client
                        .handle_response(self.now, &mut self.entropy, &ok(&doc));
                }
                Action::OpenBrowser(url) => {
                    let query = callback(url);
                    self.client.handle_redirect(&query).expect("our callback");
                }
                _ => return action,
            }
        }
        panic!("the flow did not settle")
    }

    /// The requests sent since the `from`-th.
    fn sent_since(&self, from: usize) -> Vec<(Method, &str)> {
        self.sent[from..]
            .iter()
            .map(|r| (r.method, r.url.as_str()))
            .collect()
    }
}

#[test]
fn a_2xx_is_used_and_statuses_authorization_cannot_fix_are_handed_back() {
    let mut run = Run::new();
    run.authorize();
    assert_eq!(run.mcp(200, &[]), McpOutcome::Done);
    assert_eq!(run.mcp(202, &[]), McpOutcome::Done);
    for status in [400, 404, 405, 500, 503] {
        assert_eq!(
            run.mcp(status, &[&invalid_token()]),
            McpOutcome::Fail(McpFailure::Status { status })
        );
    }
    // A 403 that is not about scope.
    assert_eq!(
        run.mcp(403, &[r#"Bearer error="invalid_token""#]),
        McpOutcome::Fail(McpFailure::Forbidden)
    );
    // None of these touched the tokens or sent anything.
    assert_eq!(
        run.client.authorization_for(SERVER),
        Some("Bearer at-1".into())
    );
    assert_eq!(
        run.observe(),
        Action::Authorized(run.client.tokens().unwrap().clone())
    );
}

// spec: ERR-10, RT-10
#[test]
fn a_refused_access_token_is_refreshed_before_any_rediscovery() {
    let mut run = Run::new();
    run.authorize();
    let before = run.sent.len();
    assert_eq!(run.mcp(401, &[&invalid_token()]), McpOutcome::Refresh);
    let req = send(run.observe());
    let body = form_body(&req);
    assert_eq!(body["grant_type"], "refresh_token");
    assert_eq!(body["refresh_token"], "rt-1");
    authorized(run.respond(ok(&token_doc("at-2", Some("rt-2")))));
    // Only the refresh went out: no discovery, no registration, no user.
    assert_eq!(run.sent_since(before), [(Method::Post, TOKEN)]); // spec: RT-10
    assert_eq!(
        run.client.authorization_for(SERVER),
        Some("Bearer at-2".into())
    );
    assert_eq!(run.mcp(200, &[]), McpOutcome::Done);
}

// spec: ERR-10, DISC-10
#[test]
fn a_refused_refresh_falls_back_to_discovery_from_the_401() {
    let mut run = Run::new();
    run.authorize();
    let before = run.sent.len();
    let www = r#"Bearer resource_metadata="https://h/v2/prm", error="invalid_token""#;
    assert_eq!(run.mcp(401, &[www]), McpOutcome::Refresh);
    send(run.observe());
    let refused = HttpResponse::json(400, &json!({"error": "invalid_grant"}));
    // The client goes on by itself: the PRM named by the 401's challenge.
    assert_get(&send(run.respond(refused.clone())), "https://h/v2/prm");
    assert_eq!(
        run.sent_since(before),
        [(Method::Post, TOKEN), (Method::Get, "https://h/v2/prm")]
    );

    // Without re-authorization allowed, the refresh's error ends the flow.
    let mut run = Run::with(config().with_reauthorize(0));
    run.authorize();
    assert_eq!(run.mcp(401, &[&invalid_token()]), McpOutcome::Refresh);
    send(run.observe());
    assert_eq!(
        failed(run.respond(refused)),
        ClientError::TokenRejected {
            status: 400,
            error: Some("invalid_grant".into())
        }
    );
}

// spec: ERR-10, DISC-10
#[test]
fn a_401_without_a_refresh_token_rediscovers() {
    let mut run = Run::new();
    run.until_token_request();
    authorized(run.respond(ok(&token_doc("at-1", None))));
    let before = run.sent.len();
    assert_eq!(run.mcp(401, &[&invalid_token()]), McpOutcome::Rediscover);
    assert_eq!(run.client.authorization_for(SERVER), None);
    authorized(run.complete(2, Some("mcp:tools")));
    assert_eq!(
        run.sent_since(before),
        [
            (Method::Get, PRM_INSERTED),
            (Method::Get, ASM_URL),
            (Method::Post, REGISTER),
            (Method::Post, TOKEN),
        ]
    );

    // An idle client (no token sent yet) starts its first authorization the same way.
    let mut run = Run::new();
    assert_eq!(run.mcp(401, &[&challenge()]), McpOutcome::Rediscover);
    assert_get(&send(run.observe()), PRM_INSERTED);
}

// spec: ERR-10
#[test]
fn the_retries_of_one_request_are_bounded_and_the_next_request_starts_afresh() {
    let mut run = Run::with(config().with_reauthorize(2));
    run.authorize();
    let www = invalid_token();
    // The server refuses every token: one refresh, then two new authorizations, then stop.
    assert_eq!(run.mcp(401, &[&www]), McpOutcome::Refresh);
    send(run.observe());
    authorized(run.respond(ok(&token_doc("at-2", Some("rt-2")))));
    assert_eq!(run.mcp(401, &[&www]), McpOutcome::Rediscover);
    authorized(run.complete(3, Some("mcp:tools")));
    assert_eq!(run.mcp(401, &[&www]), McpOutcome::Rediscover);
    authorized(run.complete(4, Some("mcp:tools")));
    let before = run.sent.len();
    assert_eq!(
        run.mcp(401, &[&www]),
        McpOutcome::Fail(McpFailure::ReauthorizeLimit)
    );
    assert_eq!(run.sent.len(), before);
    assert_eq!(
        run.client.authorization_for(SERVER),
        Some("Bearer at-4".into())
    );
    // The next request may refresh again.
    assert_eq!(run.mcp(401, &[&www]), McpOutcome::Refresh);
}

#[test]
fn step_up_asks_for_the_union_of_held_and_challenged_scopes() {
    // The configured scope does not cap a step-up.
    let mut run = Run::with(config().with_scope(Some(scopes("mcp:tools"))));
    run.authorize();
    assert_eq!(
        run.mcp(403, &[&insufficient("mcp:admin")]),
        McpOutcome::Reauthorize {
            scope: scopes("mcp:admin mcp:tools")
        }
    );
    // From the challenge's PRM, through a new registration, to the user.
    assert_get(&send(run.observe()), PRM_INSERTED);
    let reg = send(run.respond(ok(&prm_doc())));
    assert_get(&reg, ASM_URL);
    let reg = send(run.respond(ok(&asm_doc())));
    let metadata: Value = serde_json::from_slice(&reg.body).unwrap();
    assert_eq!(metadata["scope"], "mcp:admin mcp:tools");
    let url = browser(run.respond(registered()));
    assert_eq!(url_query(&url)["scope"], "mcp:admin mcp:tools");

    // Tokens without a `scope` member hold what was requested; the union builds on that.
    let mut run = Run::new();
    run.until_token_request();
    let doc = without(token_doc("at-1", Some("rt-1")), "scope");
    let tokens = authorized(run.respond(ok(&doc)));
    assert_eq!(tokens.scope, None);
    assert_eq!(
        run.mcp(403, &[&insufficient("mcp:admin")]),
        McpOutcome::Reauthorize {
            scope: scopes("mcp:admin")
        }
    );
    let tokens = authorized(run.complete(2, None));
    assert_eq!(tokens.scope.as_deref(), Some("mcp:admin"));
    assert_eq!(
        run.mcp(403, &[&insufficient("mcp:admin mcp:write")]),
        McpOutcome::Reauthorize {
            scope: scopes("mcp:admin mcp:write")
        }
    );
}

#[test]
fn step_up_never_repeats_nor_asks_for_nothing_new() {
    // A scope the tokens hold already: authorizing again cannot help.
    let mut run = Run::new();
    run.authorize();
    assert_eq!(
        run.mcp(403, &[&insufficient("mcp:tools")]),
        McpOutcome::Fail(McpFailure::ScopeAlreadyGranted {
            scope: scopes("mcp:tools")
        })
    );
    // No scope named at all.
    assert_eq!(
        run.mcp(403, &[r#"Bearer error="insufficient_scope""#]),
        McpOutcome::Fail(McpFailure::ScopeAlreadyGranted {
            scope: ScopeSet::default()
        })
    );
    assert_eq!(
        run.client.authorization_for(SERVER),
        Some("Bearer at-1".into())
    );

    // The AS grants less than the step-up asked: the same step-up is not tried twice.
    let mut run = Run::new();
    run.authorize();
    let www = insufficient("mcp:admin");
    let union = scopes("mcp:admin mcp:tools");
    assert_eq!(
        run.mcp(403, &[&www]),
        McpOutcome::Reauthorize {
            scope: union.clone()
        }
    );
    authorized(run.complete(2, Some("mcp:tools")));
    let before = run.sent.len();
    assert_eq!(
        run.mcp(403, &[&www]),
        McpOutcome::Fail(McpFailure::StepUpRepeated { scope: union })
    );
    assert_eq!(run.sent.len(), before);

    // Without re-authorization allowed the 403 is handed back, and the tokens stay.
    let mut run = Run::with(config().with_reauthorize(0));
    run.authorize();
    assert_eq!(
        run.mcp(403, &[&www]),
        McpOutcome::Fail(McpFailure::ReauthorizeLimit)
    );
    assert_eq!(
        run.client.authorization_for(SERVER),
        Some("Bearer at-1".into())
    );
}

// spec: DISC-2, DISC-11
#[test]
fn a_challenge_the_client_cannot_follow_ends_the_flow() {
    let mut run = Run::new();
    run.authorize();
    assert_eq!(
        run.mcp(401, &["Bearer realm=\"a\", realm=\"b\""]),
        McpOutcome::Fail(McpFailure::Flow(ClientError::BadChallenge))
    );
    assert_eq!(failed(run.observe()), ClientError::BadChallenge);

    // A step-up towards a PRM on a private address: refused before any request.
    let mut run = Run::new();
    run.authorize();
    let www = r#"Bearer resource_metadata="https://10.0.0.1/prm", error="insufficient_scope", scope="mcp:admin""#;
    let before = run.sent.len();
    assert_eq!(
        run.mcp(403, &[www]),
        McpOutcome::Fail(McpFailure::Flow(ClientError::ForbiddenAddress {
            url: "https://10.0.0.1/prm".into()
        }))
    );
    assert_eq!(run.sent.len(), before);
}

// spec: TRN-1, TRN-2, TRN-5, CLI-1, CLI-3
#[test]
fn mcp_requests_carry_the_protocol_version_after_initialize_and_the_token_in_the_header() {
    assert_eq!(protocol_version_header("initialize"), None);
    let first = mcp_request(SERVER, "initialize", b"{}".to_vec(), None, None);
    assert_eq!(first.method, Method::Post);
    assert_eq!(first.header_str("mcp-protocol-version"), None);
    assert_eq!(first.header_str("authorization"), None);
    for method in ["notifications/initialized", "tools/list", "tools/call"] {
        let req = mcp_request(
            SERVER,
            method,
            b"{}".to_vec(),
            Some("s-1"),
            Some("Bearer at-1"),
        );
        assert_eq!(req.header_str("mcp-protocol-version"), Some("2025-06-18"));
        assert_eq!(req.header_str("mcp-session-id"), Some("s-1"));
        assert_eq!(req.header_str("authorization"), Some("Bearer at-1"));
        assert_eq!(req.url, SERVER);
        assert!(req.has_content_type("application/json"));
    }
}

fn tokens_of(issuer: &str, resource: &str, access: &str) -> Tokens {
    Tokens {
        issuer: issuer.into(),
        token_endpoint: format!("{issuer}/token"),
        resource: resource.into(),
        resource_indicator: None,
        client_id: CLIENT_ID.into(),
        client_secret: None,
        client_secret_post: false,
        access_token: access.into(),
        refresh_token: Some(format!("r{access}")),
        expires_at: None,
        scope: None,
        revocation_endpoint: None,
    }
}

// spec: CLI-5
#[test]
fn stored_credentials_are_keyed_by_issuer_and_resource() {
    let mut store = TokenStore::default();
    store.insert(tokens_of(ISSUER, SERVER, "x1"));
    store.insert(tokens_of(ISSUER, "https://h/other", "x2"));
    assert_eq!(
        store.get(SERVER).map(|t| t.access_token.as_str()),
        Some("x1")
    );
    // The serialized form: issuer, then resource.
    let json = serde_json::to_value(&store).unwrap();
    assert_eq!(json[ISSUER][SERVER]["access_token"], "x1");

    // The server names another AS: its tokens replace the first AS's for that resource only.
    store.insert(tokens_of("https://as2", SERVER, "y1"));
    let keys: Vec<(&str, &str)> = store.iter().map(|(i, r, _)| (i, r)).collect();
    assert_eq!(
        keys,
        [
            ("https://as/t1", "https://h/other"),
            ("https://as2", SERVER)
        ]
    );
    assert_eq!(
        store.get(SERVER).map(|t| t.access_token.as_str()),
        Some("y1")
    );

    // A store that holds two issuers' credentials for one resource offers neither.
    let legacy: TokenStore = serde_json::from_value(json!({
        ISSUER: {SERVER: tokens_of(ISSUER, SERVER, "x1")},
        "https://as2": {SERVER: tokens_of("https://as2", SERVER, "y1")},
    }))
    .unwrap();
    assert_eq!(legacy.get(SERVER), None);
    let mut logout = legacy.clone();
    assert_eq!(logout.remove(SERVER).len(), 2);
    assert!(logout.is_empty());
}

// spec: CLI-5, RT-7
#[test]
fn the_store_follows_the_client_when_the_resource_names_another_authorization_server() {
    let mut store = TokenStore::default();
    store.insert(tokens_of("https://as2", SERVER, "old"));
    let mut run = Run::from_client(Client::resume(config(), store.get(SERVER).unwrap().clone()));
    assert_eq!(run.client.authorization_server(), Some("https://as2"));
    // Refused, the refresh refused too: discovery names ISSUER, and the flow fails after that.
    assert_eq!(run.mcp(401, &[&invalid_token()]), McpOutcome::Refresh);
    send(run.observe());
    let req = send(run.respond(HttpResponse::json(400, &json!({"error": "invalid_grant"}))));
    assert_get(&req, PRM_INSERTED);
    send(run.respond(ok(&prm_doc())));
    assert_eq!(run.client.authorization_server(), Some(ISSUER));
    failed(run.respond(ok(&json!("not metadata"))));
    store.sync(&run.client);
    // The credentials from the AS the resource no longer names are gone.
    assert_eq!(store.get(SERVER), None);
    assert!(store.is_empty());

    // A refresh's rotated refresh token replaces the old one (RT-7).
    let mut run = Run::new();
    run.authorize();
    store.sync(&run.client);
    assert_eq!(
        store.get(SERVER).and_then(|t| t.refresh_token.as_deref()),
        Some("rt-1")
    );
    send(run.refresh());
    authorized(run.respond(ok(&token_doc("at-2", Some("rt-2")))));
    store.sync(&run.client);
    let kept: Vec<_> = store
        .iter()
        .map(|(_, _, t)| t.refresh_token.clone())
        .collect();
    assert_eq!(kept, [Some("rt-2".to_owned())]);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// However the servers answer, one MCP request ends (Done or Fail) after at most one
    /// refresh and `reauthorize` new authorizations, and the client never sends the user
    /// to authorize for the same scope twice in one request.
    // spec: ERR-10
    #[test]
    fn one_request_is_retried_a_bounded_number_of_times(
        reauthorize in 0u32..4,
        answers in proptest::collection::vec(
            (prop_oneof![Just(200u16), Just(401), Just(403), Just(404)],
             proptest::sample::select(vec!["mcp:tools", "mcp:admin", "mcp:write", "mcp:tools mcp:admin", ""])),
            1..24,
        ),
        granted in proptest::collection::vec(
            proptest::option::of(proptest::sample::select(vec!["mcp:tools", "mcp:admin", "mcp:tools mcp:admin mcp:write"])),
            24,
        ),
        refresh_ok in proptest::collection::vec(any::<bool>(), 24),
    ) {
        let mut run = Run::with(config().with_reauthorize(reauthorize));
        run.authorize();
        let mut retries = 0u32;
        let mut authorizations = 0u32;
        let mut step_ups: Vec<ScopeSet> = Vec::new();
        for (i, (status, scope)) in answers.into_iter().enumerate() {
            let www = match status {
                401 => invalid_token(),
                _ => insufficient(scope),
            };
            let outcome = run.mcp(status, &[&www]);
            match outcome {
                McpOutcome::Done | McpOutcome::Fail(_) => {
                    retries = 0;
                    authorizations = 0;
                    step_ups.clear();
                    if matches!(run.observe(), Action::Failed(_)) {
                        break;
                    }
                    continue;
                }
                McpOutcome::Refresh => {
                    send(run.observe());
                    if refresh_ok[i] {
                        run.respond(ok(&token_doc(&format!("at-r{i}"), Some(&format!("rt-r{i}")))));
                    } else if let Action::Send(_) = run
                        .respond(HttpResponse::json(400, &json!({"error": "invalid_grant"})))
                    {
                        // Refused: the client discovers again by itself.
                        authorizations += 1;
                    }
                }
                McpOutcome::Reauthorize { scope } => {
                    prop_assert!(!step_ups.iter().any(|s| scope.is_subset(s)));
                    step_ups.push(scope);
                    authorizations += 1;
                }
                McpOutcome::Rediscover => authorizations += 1,
            }
            retries += 1;
            prop_assert!(retries <= reauthorize + 1);
            prop_assert!(authorizations <= reauthorize);
            if matches!(run.observe(), Action::Failed(_)) {
                break;
            }
            let action = run.complete(u32::try_from(i).unwrap() + 10, granted[i]);
            prop_assert!(matches!(action, Action::Authorized(_)));
        }
    }
}

// ---- credentials bound to their issuer ---------------------------------------------------------

const ISSUER2: &str = "https://as2";

fn asm2_doc() -> Value {
    json!({
        "issuer": ISSUER2,
        "authorization_endpoint": "https://as2/authorize",
        "token_endpoint": "https://as2/token",
        "registration_endpoint": "https://as2/register",
        "response_types_supported": ["code"],
        "code_challenge_methods_supported": ["S256"],
    })
}

/// After `run` is authorized: a 401 whose PRM names [`ISSUER2`]; the action after its
/// metadata.
fn migrate(run: &mut Run) -> Action {
    let req = send(run.unauthorized(&[&challenge()]));
    assert_get(&req, PRM_INSERTED);
    let req = send(run.respond(ok(&with(
        prm_doc(),
        "authorization_servers",
        json!([ISSUER2]),
    ))));
    assert_get(&req, "https://as2/.well-known/oauth-authorization-server");
    run.respond(ok(&asm2_doc()))
}

/// Whether any request sent to `host` carries `needle` (URL, header or body).
fn leaked(run: &Run, host_prefix: &str, needle: &str) -> bool {
    run.sent
        .iter()
        .filter(|r| r.url.starts_with(host_prefix))
        .any(|r| {
            r.url.contains(needle)
                || String::from_utf8_lossy(&r.body).contains(needle)
                || r.headers
                    .iter()
                    .any(|(_, v)| String::from_utf8_lossy(v).contains(needle))
        })
}

// spec: CLI-8, CLI-5
#[test]
fn a_resource_naming_a_new_authorization_server_means_a_new_registration() {
    let mut run = Run::with(config().with_revision(mcp_auth_proto::Revision::V2026_07_28));
    run.authorize();
    let req = send(migrate(&mut run));
    assert_eq!(req.method, Method::Post);
    assert_eq!(req.url, "https://as2/register");
    let registered2 = HttpResponse::json(
        201,
        &json!({"client_id": "as2-id", "redirect_uris": [REDIRECT], "token_endpoint_auth_method": "none"}),
    );
    let url = browser(run.respond(registered2));
    assert!(url.starts_with("https://as2/authorize?"));
    assert_eq!(url_query(&url)["client_id"], "as2-id");
    let (result, action) = run.redirect(&form::encode([
        ("code", "c2"),
        ("state", &state_of(&url)),
        ("iss", ISSUER2),
    ]));
    assert_eq!(result, Ok(()));
    let req = send(action);
    assert_eq!(req.url, "https://as2/token");
    let tokens = authorized(run.respond(ok(&token_doc("at-2", None))));
    assert_eq!(
        (tokens.issuer.as_str(), tokens.client_id.as_str()),
        (ISSUER2, "as2-id")
    );
    // Nothing of the first authorization server's went to the second.
    for secret in [CLIENT_ID, "at-1", "rt-1"] {
        assert!(!leaked(&run, "https://as2", secret), "{secret} sent to as2");
    }
    assert_eq!(run.client.authorization_server(), Some(ISSUER2));
}

/// A pre-registered client's flow at [`ISSUER`] to tokens.
fn preregistered_flow(run: &mut Run) -> Tokens {
    let asm = without(asm_doc(), "registration_endpoint");
    let url = browser(run.discover_with(&prm_doc(), &asm));
    assert_eq!(url_query(&url)["client_id"], "pre-id");
    let (result, action) = run.redirect(&callback(&url));
    assert_eq!(result, Ok(()));
    let req = send(action);
    assert_eq!(req.url, TOKEN);
    authorized(run.respond(ok(&token_doc("at-1", None))))
}

// spec: CLI-9
#[test]
fn preregistered_credentials_go_to_their_issuer_only() {
    let prereg = Some(("pre-id".to_owned(), Some("pre-secret".to_owned())));
    // The configured issuer is not the one the resource names: stop before any request to it
    // that could carry the credentials.
    let mut run = Run::with(
        config()
            .with_preregistered(prereg.clone())
            .with_preregistered_issuer(Some("https://elsewhere".into())),
    );
    let error = failed(run.discover_with(&prm_doc(), &asm_doc()));
    assert_eq!(
        error,
        ClientError::CredentialsForAnotherIssuer {
            credentials: "https://elsewhere".into(),
            named: ISSUER.into(),
        }
    );
    assert_eq!(error.requirement(), "CLI-9");
    assert!(run.sent.iter().all(|r| r.method == Method::Get));
    assert!(!leaked(&run, "https://", "pre-id"));
    // The configured issuer is the named one: used as before.
    let mut run = Run::with(
        config()
            .with_preregistered(prereg.clone())
            .with_preregistered_issuer(Some(ISSUER.into())),
    );
    assert_eq!(preregistered_flow(&mut run).client_id, "pre-id");

    // 2026-07-28 without a configured issuer: bound to the first one they were used with.
    let mut run = Run::with(
        config()
            .with_preregistered(prereg.clone())
            .with_revision(mcp_auth_proto::Revision::V2026_07_28),
    );
    preregistered_flow(&mut run);
    assert_eq!(
        failed(migrate(&mut run)),
        ClientError::CredentialsForAnotherIssuer {
            credentials: ISSUER.into(),
            named: ISSUER2.into(),
        }
    );
    assert!(!leaked(&run, "https://as2", "pre-"));
    // Before 2026-07-28 they follow the resource, as they always did.
    let mut run = Run::with(config().with_preregistered(prereg));
    preregistered_flow(&mut run);
    let url = browser(migrate(&mut run));
    assert!(url.starts_with("https://as2/authorize?"));
}

// ---- Client ID Metadata Documents --------------------------------------------------------------

const CIMD_URL: &str = "https://app.example/client.json";

// spec: CIMD-1
#[test]
fn the_client_id_metadata_document_url_replaces_registration_where_supported() {
    use mcp_auth_proto::Revision;
    let cimd_asm = with(
        asm_doc(),
        "client_id_metadata_document_supported",
        json!(true),
    );
    let cimd = |revision: Revision| {
        config()
            .with_revision(revision)
            .with_client_metadata_url(Some(CIMD_URL.into()))
    };
    // 2025-11-25 and later, supported: the URL is the client id, no registration request, and
    // the token request authenticates as a public client.
    for revision in [Revision::V2025_11_25, Revision::V2026_07_28] {
        let mut run = Run::with(cimd(revision));
        let url = browser(run.discover_with(&prm_doc(), &cimd_asm));
        assert_eq!(url_query(&url)["client_id"], CIMD_URL);
        assert!(run.sent.iter().all(|r| r.url != REGISTER));
        let (result, action) = run.redirect(&callback(&url));
        assert_eq!(result, Ok(()));
        let req = send(action);
        assert_eq!(form_body(&req)["client_id"], CIMD_URL);
        assert_eq!(req.header_values("authorization").count(), 0);
        let tokens = authorized(run.respond(ok(&token_doc("at-1", None))));
        assert_eq!(tokens.client_id, CIMD_URL);
        assert_eq!(tokens.client_secret, None);
    }
    // Not advertised, or 2025-06-18, or no URL configured: dynamic registration.
    for (config, asm) in [
        (cimd(Revision::V2026_07_28), asm_doc()),
        (cimd(Revision::V2025_06_18), cimd_asm.clone()),
        (
            config().with_revision(Revision::V2026_07_28),
            cimd_asm.clone(),
        ),
    ] {
        let mut run = Run::with(config);
        assert_eq!(send(run.discover_with(&prm_doc(), &asm)).url, REGISTER);
    }
    // Pre-registered credentials come first.
    let mut run =
        Run::with(cimd(Revision::V2026_07_28).with_preregistered(Some(("pre-id".into(), None))));
    let url = browser(run.discover_with(&prm_doc(), &cimd_asm));
    assert_eq!(url_query(&url)["client_id"], "pre-id");
    // Supported but neither a URL nor a registration endpoint: the flow fails.
    let mut run = Run::with(config().with_revision(Revision::V2026_07_28));
    assert_eq!(
        failed(run.discover_with(&prm_doc(), &without(cimd_asm, "registration_endpoint"))),
        ClientError::NoRegistration
    );
}

// spec: CIMD-2
#[test]
fn a_client_id_metadata_document_url_must_be_https_with_a_path() {
    use mcp_auth_proto::client::client_metadata_url_ok;
    assert!(client_metadata_url_ok(CIMD_URL));
    assert!(client_metadata_url_ok("https://app.example:8443/a/b?v=1"));
    for bad in [
        "http://app.example/client.json",
        "https://app.example",
        "https://app.example/",
        "https://app.example/c.json#frag",
        "https://user@app.example/c.json",
        "https://app.example/a/../c.json",
        "HTTPS://app.example/c.json",
        "app.example/c.json",
        "",
    ] {
        assert!(!client_metadata_url_ok(bad), "{bad}");
    }
    assert!(!client_metadata_url_ok(&format!(
        "https://app.example/{}",
        "a".repeat(3000)
    )));
    // A bad URL stops the flow before any request.
    let mut run = Run::with(config().with_client_metadata_url(Some("http://app.example/c".into())));
    assert_eq!(
        failed(run.unauthorized(&[&challenge()])),
        ClientError::BadClientMetadataUrl
    );
    assert!(run.sent.is_empty());
}

// ---- offline_access ----------------------------------------------------------------------------

// spec: RT-18
#[test]
fn offline_access_is_asked_for_from_2026_07_28_where_the_as_lists_it() {
    use mcp_auth_proto::Revision;
    let listed = with(
        asm_doc(),
        "scopes_supported",
        json!(["mcp:tools", "offline_access"]),
    );
    let requested = |revision: Revision, asm: &Value, scope: Option<&str>| {
        let mut run = Run::with(
            config()
                .with_revision(revision)
                .with_scope(scope.map(|s| ScopeSet::parse(s).unwrap())),
        );
        let url = run.until_browser_with(&prm_doc(), asm);
        url_query(&url).get("scope").cloned()
    };
    let latest = Revision::V2026_07_28;
    assert_eq!(
        requested(latest, &listed, Some("mcp:tools")).as_deref(),
        Some("mcp:tools offline_access")
    );
    // Already asked for: not twice.
    assert_eq!(
        requested(latest, &listed, Some("offline_access mcp:tools")).as_deref(),
        Some("mcp:tools offline_access")
    );
    // Not listed, an older revision, or no scope requested at all: unchanged.
    assert_eq!(
        requested(latest, &asm_doc(), Some("mcp:tools")).as_deref(),
        Some("mcp:tools")
    );
    assert_eq!(
        requested(Revision::V2025_11_25, &listed, Some("mcp:tools")).as_deref(),
        Some("mcp:tools")
    );
    assert_eq!(requested(latest, &listed, None), None);
}

// spec: RT-19, RT-18
#[test]
fn a_token_response_without_refresh_token_is_used_as_it_is() {
    let listed = with(
        asm_doc(),
        "scopes_supported",
        json!(["mcp:tools", "offline_access"]),
    );
    let mut run = Run::with(
        config()
            .with_revision(mcp_auth_proto::Revision::V2026_07_28)
            .with_scope(Some(ScopeSet::from_tokens(["mcp:tools"]))),
    );
    let url = run.until_browser_with(&prm_doc(), &listed);
    let (result, action) = run.redirect(&callback(&url));
    assert_eq!(result, Ok(()));
    send(action);
    let tokens = authorized(run.respond(ok(&token_doc("at-1", None))));
    assert_eq!(tokens.refresh_token, None);
    // A 401 then means a new authorization, not a refresh.
    let outcome = run.client.handle_mcp_response(401, [challenge().as_str()]);
    assert_eq!(outcome, McpOutcome::Rediscover);
    assert_get(&send(run.observe()), PRM_INSERTED);
}

// ---- compatibility: a PRM resource that is a prefix of the server URL ---------------------------

// spec: PF-22, DISC-4, RES-2
#[test]
fn a_prm_resource_prefix_is_accepted_only_under_its_switch_and_sent_as_published() {
    // Strict by default: RFC 9728 §3.3.
    let origin = with(prm_doc(), "resource", json!("https://h"));
    let mut run = Run::new();
    send(run.unauthorized(&[&challenge()]));
    assert_eq!(
        failed(run.respond(ok(&origin))),
        ClientError::ResourceMismatch {
            got: "https://h".into()
        }
    );
    // Under the switch: the origin, `/` or a parent path of the server URL is accepted and
    // is the resource of the authorization and token requests, exactly as published.
    for published in ["https://h", "https://h/", "https://h/mcp/"] {
        let mut run = Run::with(config().with_accept_prm_resource_prefix(true));
        let url =
            run.until_browser_with(&with(prm_doc(), "resource", json!(published)), &asm_doc());
        assert_eq!(url_query(&url)["resource"], published);
        let (result, action) = run.redirect(&callback(&url));
        assert_eq!(result, Ok(()));
        let req = send(action);
        assert_eq!(form_body(&req)["resource"], published);
        let tokens = authorized(run.respond(ok(&token_doc("at-1", Some("rt-1")))));
        assert_eq!(tokens.resource, SERVER);
        assert_eq!(tokens.resource_indicator.as_deref(), Some(published));
        // The token still goes to the configured server only.
        assert!(run.client.authorization_for(SERVER).is_some());
        assert!(run.client.authorization_for("https://h/other").is_none());
        // A refresh asks for the same resource.
        let req = send(run.refresh());
        assert_eq!(form_body(&req)["resource"], published);
    }
    // Never another origin, a sibling path, a longer path or a query.
    for published in [
        "https://evil",
        "https://h:8443",
        "http://h",
        "https://h/mc",
        "https://h/mcp/x",
        "https://h/?a=1",
        "https://h/other",
    ] {
        let mut run = Run::with(config().with_accept_prm_resource_prefix(true));
        send(run.unauthorized(&[&challenge()]));
        assert_eq!(
            failed(run.respond(ok(&with(prm_doc(), "resource", json!(published))))),
            ClientError::ResourceMismatch {
                got: published.into()
            },
            "{published}"
        );
    }
}

// spec: CIMD-2, PF-8
#[test]
fn a_loopback_http_client_metadata_url_needs_the_loopback_http_switch() {
    use mcp_auth_proto::client::client_metadata_url_allowed;
    let local = "http://127.0.0.1:8123/client-metadata.json";
    assert!(client_metadata_url_allowed(
        local,
        HttpPolicy::AllowLoopbackHttp
    ));
    assert!(!client_metadata_url_allowed(local, HttpPolicy::HttpsOnly));
    for bad in [
        "http://example.com/client.json",
        "http://127.0.0.1:8123/",
        "http://127.0.0.1:8123/c.json#f",
        "http://user@127.0.0.1/c.json",
        "ftp://127.0.0.1/c.json",
    ] {
        assert!(
            !client_metadata_url_allowed(bad, HttpPolicy::AllowLoopbackHttp),
            "{bad}"
        );
    }
    let https = "https://client.example/metadata.json";
    assert!(client_metadata_url_allowed(https, HttpPolicy::HttpsOnly));
}
