//! Client ID Metadata Documents at the authorization server, over loopback HTTP: a client
//! whose `client_id` is the URL of its metadata document, served by a tiny document server in
//! this test (loopback, so the AS runs with its development switch `cimd_allow_loopback`).
//! Every test names the requirements of `spec/requirements.md` it verifies.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use mcp_auth::as_server::{self, AsState};
use mcp_auth::client::Http;
use mcp_auth::demo::{Stack, StackOptions};
use mcp_auth_proto::Revision;
use mcp_auth_proto::form::encode;
use mcp_auth_proto::http::{HttpRequest, HttpResponse, Method};
use mcp_auth_proto::pkce::CodeVerifier;
use mcp_auth_proto::server::AsConfig;
use mcp_auth_proto::server::http::UserAgentPolicy;
use mcp_auth_proto::types::ScopeSet;
use mcp_auth_proto::uri::{HttpPolicy, Issuer, ResourceUri};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

const REDIRECT: &str = "http://127.0.0.1:3999/callback";
const RESOURCE: &str = "http://127.0.0.1:4999/mcp";

/// What the document server answers, and what it saw.
#[derive(Default)]
struct Served {
    /// Status, extra header lines, body.
    answer: (u16, Vec<(String, String)>, Vec<u8>),
    /// Answer 304 to a request whose `If-None-Match` is this.
    etag: Option<String>,
    /// The `If-None-Match` of each request seen (`None`: absent).
    requests: Vec<Option<String>>,
}

type Docs = Arc<Mutex<Served>>;

/// A one-request-per-connection HTTP/1.1 server of one document, on loopback.
async fn document_server() -> (String, Docs) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let origin = format!("http://{}", listener.local_addr().unwrap());
    let docs: Docs = Arc::default();
    let served = Arc::clone(&docs);
    tokio::spawn(async move {
        while let Ok((mut tcp, _)) = listener.accept().await {
            let served = Arc::clone(&served);
            tokio::spawn(async move {
                let mut head = Vec::new();
                let mut buf = [0u8; 1024];
                while !head.windows(4).any(|w| w == b"\r\n\r\n") && head.len() < 16 * 1024 {
                    match tcp.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => head.extend_from_slice(&buf[..n]),
                    }
                }
                let head = String::from_utf8_lossy(&head).to_string();
                let inm = head.lines().find_map(|l| {
                    let (name, value) = l.split_once(':')?;
                    name.eq_ignore_ascii_case("if-none-match")
                        .then(|| value.trim().to_owned())
                });
                let (status, headers, body) = {
                    let mut s = served.lock().unwrap();
                    s.requests.push(inm.clone());
                    match (&s.etag, &inm) {
                        (Some(tag), Some(sent)) if tag == sent => {
                            (304, vec![("etag".into(), tag.clone())], Vec::new())
                        }
                        _ => s.answer.clone(),
                    }
                };
                let mut out = format!(
                    "HTTP/1.1 {status} X\r\nconnection: close\r\ncontent-length: {}\r\n",
                    body.len()
                );
                for (n, v) in headers {
                    out.push_str(&format!("{n}: {v}\r\n"));
                }
                out.push_str("\r\n");
                let _ = tcp.write_all(out.as_bytes()).await;
                let _ = tcp.write_all(&body).await;
                let _ = tcp.shutdown().await;
            });
        }
    });
    (origin, docs)
}

fn serve_json(docs: &Docs, doc: &Value, cache_control: Option<&str>) {
    let mut headers = vec![("content-type".to_owned(), "application/json".to_owned())];
    if let Some(cc) = cache_control {
        headers.push(("cache-control".into(), cc.into()));
    }
    if let Some(tag) = &docs.lock().unwrap().etag {
        headers.push(("etag".into(), tag.clone()));
    }
    docs.lock().unwrap().answer = (200, headers, serde_json::to_vec(doc).unwrap());
}

fn document(client_id: &str) -> Value {
    json!({
        "client_id": client_id,
        "client_name": "Document Client",
        "redirect_uris": [REDIRECT],
        "grant_types": ["authorization_code", "refresh_token"],
        "response_types": ["code"],
        "token_endpoint_auth_method": "none",
    })
}

/// An AS with client metadata documents on, auto-approving as the demo user, documents
/// fresh for at least `fresh_min` seconds.
async fn authorization_server(
    allow_loopback: bool,
    auto_approve: bool,
    fresh_min: u64,
) -> (String, Arc<AsState>) {
    let listener = mcp_auth::net::bind("127.0.0.1:0").await.unwrap();
    let issuer = mcp_auth::net::origin_of(&listener).unwrap();
    let policy = HttpPolicy::AllowLoopbackHttp;
    let resource = ResourceUri::parse(RESOURCE, policy).unwrap();
    let mut config = AsConfig::new(
        Issuer::parse(&issuer, policy).unwrap(),
        [(resource, ScopeSet::from_tokens(["mcp:tools"]))],
    );
    config.http_policy = policy;
    config.client_id_metadata_documents = true;
    config.cimd_allow_loopback = allow_loopback;
    config.cimd.fresh_min_secs = fresh_min;
    let user = UserAgentPolicy::single("demo-user");
    let user = if auto_approve {
        user.auto_approving()
    } else {
        user
    };
    let state = AsState::new(config, mcp_auth::keys::ephemeral(), user);
    tokio::spawn(as_server::run(
        listener,
        Arc::clone(&state),
        std::future::pending(),
    ));
    (issuer, state)
}

async fn send(request: HttpRequest) -> HttpResponse {
    Http::new(HttpPolicy::AllowLoopbackHttp)
        .send(&request)
        .await
        .expect("the server answers")
}

/// `GET /authorize` for `client_id` with `redirect_uri`; returns the answer and the verifier.
async fn authorize(issuer: &str, client_id: &str, redirect: &str) -> (HttpResponse, CodeVerifier) {
    let verifier = CodeVerifier::generate(&mut mcp_auth::net::OsEntropy);
    let query = encode([
        ("response_type", "code"),
        ("client_id", client_id),
        ("redirect_uri", redirect),
        ("code_challenge", verifier.challenge().as_str()),
        ("code_challenge_method", "S256"),
        ("resource", RESOURCE),
        ("state", "s1"),
    ]);
    let response = send(HttpRequest::new(
        Method::Get,
        format!("{issuer}/authorize?{query}"),
    ))
    .await;
    (response, verifier)
}

fn code_of(response: &HttpResponse) -> String {
    assert_eq!(
        response.status,
        303,
        "{}",
        String::from_utf8_lossy(&response.body)
    );
    let location = response.header_value("location").expect("a redirect");
    assert!(location.starts_with(REDIRECT), "{location}");
    let query = location.split_once('?').expect("a query").1;
    form_urlencoded::parse(query.as_bytes())
        .find(|(k, _)| k == "code")
        .map(|(_, v)| v.into_owned())
        .expect("a code")
}

async fn token(issuer: &str, pairs: &[(&str, &str)]) -> (u16, Value) {
    let response = send(
        HttpRequest::new(Method::Post, format!("{issuer}/token"))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(encode(pairs.iter().copied())),
    )
    .await;
    (
        response.status,
        serde_json::from_slice(&response.body).unwrap_or_default(),
    )
}

/// The answer is the error page (no redirect, no 500), naming `description`, and no code
/// was issued.
fn refused(response: &HttpResponse, state: &AsState, description: &str) {
    let page = String::from_utf8_lossy(&response.body);
    assert_eq!(response.status, 400, "{page}");
    assert!(response.header_value("location").is_none());
    assert!(page.contains(description), "{description} not in {page}");
    assert_eq!(state.with_server(|s| s.codes().count()), 0);
}

// spec: CIMD-3, CIMD-8
#[tokio::test]
async fn a_url_client_id_gets_a_token_and_refreshes() {
    let (docs_origin, docs) = document_server().await;
    let client_id = format!("{docs_origin}/client.json");
    serve_json(&docs, &document(&client_id), Some("max-age=300"));
    let (issuer, state) = authorization_server(true, true, 60).await;
    let (response, verifier) = authorize(&issuer, &client_id, REDIRECT).await;
    let code = code_of(&response);
    let (status, body) = token(
        &issuer,
        &[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", REDIRECT),
            ("client_id", &client_id),
            ("code_verifier", verifier.as_str()),
            ("resource", RESOURCE),
        ],
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert!(body["access_token"].is_string());
    let refresh = body["refresh_token"].as_str().expect("a refresh token");
    let (status, body) = token(
        &issuer,
        &[
            ("grant_type", "refresh_token"),
            ("refresh_token", refresh),
            ("client_id", &client_id),
        ],
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(docs.lock().unwrap().requests.len(), 1);
    assert!(state.with_server(|s| s.client_documents().count()) == 1);
}

// spec: CIMD-8
#[tokio::test]
async fn the_metadata_advertises_documents_from_revision_2025_11_25() {
    for (revisions, expected) in [
        (vec![Revision::V2025_06_18], false),
        (vec![Revision::V2025_06_18, Revision::V2025_11_25], true),
        (vec![Revision::V2026_07_28], true),
    ] {
        let stack = Stack::start(StackOptions::default().with_revisions(revisions.clone()))
            .await
            .unwrap();
        let response = send(HttpRequest::new(
            Method::Get,
            format!("{}/.well-known/oauth-authorization-server", stack.issuer),
        ))
        .await;
        let metadata: Value = serde_json::from_slice(&response.body).unwrap();
        // Absent means false.
        assert_eq!(
            metadata["client_id_metadata_document_supported"]
                .as_bool()
                .unwrap_or(false),
            expected,
            "{revisions:?}"
        );
        stack.stop().await;
    }
}

// spec: CIMD-6, CIMD-7
#[tokio::test]
async fn the_consent_page_names_the_document_host_and_warns_on_localhost() {
    let (docs_origin, docs) = document_server().await;
    let client_id = format!("{docs_origin}/client.json");
    serve_json(&docs, &document(&client_id), None);
    let (issuer, _state) = authorization_server(true, false, 60).await;
    let (response, _) = authorize(&issuer, &client_id, REDIRECT).await;
    let page = String::from_utf8_lossy(&response.body);
    assert_eq!(response.status, 200, "{page}");
    let host = docs_origin.trim_start_matches("http://");
    assert!(
        page.contains(&format!("<strong data-client-host>{host}</strong>")),
        "{page}"
    );
    assert!(page.contains("data-localhost-warning"), "{page}");
}

// spec: CIMD-3
#[tokio::test]
async fn a_document_whose_client_id_differs_is_refused() {
    let (docs_origin, docs) = document_server().await;
    let client_id = format!("{docs_origin}/client.json");
    serve_json(&docs, &document(&format!("{docs_origin}/other.json")), None);
    let (issuer, state) = authorization_server(true, true, 60).await;
    let (response, _) = authorize(&issuer, &client_id, REDIRECT).await;
    refused(&response, &state, "differs from its URL");
}

// spec: CIMD-3
#[tokio::test]
async fn a_redirect_uri_not_in_the_document_is_refused() {
    let (docs_origin, docs) = document_server().await;
    let client_id = format!("{docs_origin}/client.json");
    serve_json(&docs, &document(&client_id), None);
    let (issuer, state) = authorization_server(true, true, 60).await;
    let (response, _) = authorize(&issuer, &client_id, "http://127.0.0.1:3999/elsewhere").await;
    refused(&response, &state, "not registered for this client");
}

// spec: CIMD-3
#[tokio::test]
async fn a_document_asking_for_private_key_jwt_is_refused() {
    let (docs_origin, docs) = document_server().await;
    let client_id = format!("{docs_origin}/client.json");
    let mut doc = document(&client_id);
    doc["token_endpoint_auth_method"] = json!("private_key_jwt");
    serve_json(&docs, &doc, None);
    let (issuer, state) = authorization_server(true, true, 60).await;
    let (response, _) = authorize(&issuer, &client_id, REDIRECT).await;
    refused(&response, &state, "private_key_jwt is not supported");
}

// spec: CIMD-4
#[tokio::test]
async fn an_oversize_document_is_refused() {
    let (docs_origin, docs) = document_server().await;
    let client_id = format!("{docs_origin}/client.json");
    let mut doc = document(&client_id);
    doc["padding"] = json!("x".repeat(6 * 1024));
    serve_json(&docs, &doc, None);
    let (issuer, state) = authorization_server(true, true, 60).await;
    let (response, _) = authorize(&issuer, &client_id, REDIRECT).await;
    refused(&response, &state, "too large");
}

// spec: CIMD-3
#[tokio::test]
async fn a_missing_document_is_an_error_page() {
    let (docs_origin, docs) = document_server().await;
    let client_id = format!("{docs_origin}/client.json");
    docs.lock().unwrap().answer = (404, Vec::new(), b"no".to_vec());
    let (issuer, state) = authorization_server(true, true, 60).await;
    let (response, _) = authorize(&issuer, &client_id, REDIRECT).await;
    refused(&response, &state, "could not be fetched");
    // A redirect is not followed either.
    docs.lock().unwrap().answer = (
        302,
        vec![("location".into(), format!("{docs_origin}/moved.json"))],
        Vec::new(),
    );
    let (response, _) = authorize(&issuer, &client_id, REDIRECT).await;
    refused(&response, &state, "could not be fetched");
    assert_eq!(docs.lock().unwrap().requests.len(), 2);
}

// spec: CIMD-4
#[tokio::test]
async fn private_and_loopback_addresses_are_refused_without_the_switch() {
    let (docs_origin, docs) = document_server().await;
    let port = docs_origin.rsplit(':').next().unwrap();
    serve_json(&docs, &document("unused"), None);
    let (issuer, state) = authorization_server(false, true, 60).await;
    // A private-network address: refused on the URL, nothing sent anywhere.
    let (response, _) = authorize(&issuer, "https://10.0.0.1/client.json", REDIRECT).await;
    refused(&response, &state, "does not fetch from");
    // Loopback, where the document really is: refused without the development switch.
    let loopback = format!("https://127.0.0.1:{port}/client.json");
    let (response, _) = authorize(&issuer, &loopback, REDIRECT).await;
    refused(&response, &state, "does not fetch from");
    let (response, _) = authorize(&issuer, &format!("{docs_origin}/client.json"), REDIRECT).await;
    refused(
        &response,
        &state,
        "not a valid client metadata document URL",
    );
    assert!(docs.lock().unwrap().requests.is_empty());
}

// spec: CIMD-5
#[tokio::test]
async fn documents_are_cached_for_max_age_then_revalidated() {
    let (docs_origin, docs) = document_server().await;
    let client_id = format!("{docs_origin}/client.json");
    docs.lock().unwrap().etag = Some("\"v1\"".into());
    serve_json(&docs, &document(&client_id), Some("max-age=1"));
    let (issuer, state) = authorization_server(true, true, 1).await;
    code_of(&authorize(&issuer, &client_id, REDIRECT).await.0);
    code_of(&authorize(&issuer, &client_id, REDIRECT).await.0);
    assert_eq!(
        docs.lock().unwrap().requests,
        vec![None],
        "the second authorization within max-age does not fetch again"
    );
    tokio::time::sleep(Duration::from_millis(2100)).await;
    // The document served now would be refused: a 304 keeps the cached one.
    serve_json(
        &docs,
        &document("https://elsewhere.example/c"),
        Some("max-age=1"),
    );
    code_of(&authorize(&issuer, &client_id, REDIRECT).await.0);
    assert_eq!(
        docs.lock().unwrap().requests,
        vec![None, Some("\"v1\"".to_owned())],
        "a stale document is revalidated with If-None-Match"
    );
    assert_eq!(state.with_server(|s| s.client_documents().count()), 1);
}

// spec: DCR-14
#[tokio::test]
async fn registration_checks_application_type_against_the_redirect_uris() {
    let (issuer, _state) = authorization_server(false, true, 60).await;
    let register = |body: Value| {
        let issuer = issuer.clone();
        async move {
            let response = send(
                HttpRequest::new(Method::Post, format!("{issuer}/register"))
                    .header("content-type", "application/json")
                    .body(serde_json::to_vec(&body).unwrap()),
            )
            .await;
            let json: Value = serde_json::from_slice(&response.body).unwrap_or_default();
            (response.status, json)
        }
    };
    let client = |application_type: Option<&str>, redirect: &str| {
        let mut body = json!({
            "redirect_uris": [redirect],
            "token_endpoint_auth_method": "none",
            "client_name": "t",
        });
        if let Some(t) = application_type {
            body["application_type"] = json!(t);
        }
        body
    };
    let (status, body) = register(client(Some("native"), REDIRECT)).await;
    assert_eq!(
        (status, body["application_type"].as_str()),
        (201, Some("native"))
    );
    let (status, body) = register(client(Some("web"), "https://app.example.com/cb")).await;
    assert_eq!(
        (status, body["application_type"].as_str()),
        (201, Some("web"))
    );
    let (status, body) = register(client(Some("web"), REDIRECT)).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("invalid_redirect_uri"))
    );
    let (status, body) = register(client(Some("native"), "https://app.example.com/cb")).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("invalid_redirect_uri"))
    );
    let (status, body) = register(client(Some("browser"), REDIRECT)).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("invalid_client_metadata"))
    );
    // Absent (every 2025-06-18 client): loopback redirect URIs are registered as before.
    let (status, body) = register(client(None, REDIRECT)).await;
    assert_eq!((status, body.get("application_type")), (201, None));
}
