//! One MCP endpoint serving the configured MCP revisions over real loopback HTTP: a 2026-07-28
//! request is stateless (no `initialize`, no session) and stands on its token; an unconfigured
//! revision is refused naming the configured ones; with every revision configured, a
//! 2025-06-18 session and a 2026-07-28 stateless call share the endpoint.

use mcp_auth::client::{Http, McpClient, Options};
use mcp_auth::demo::{Stack, StackOptions};
use mcp_auth::transcript::Transcript;
use mcp_auth_proto::Revision;
use mcp_auth_proto::http::{HttpRequest, HttpResponse, Method};
use mcp_auth_proto::uri::HttpPolicy;
use serde_json::{Value, json};

async fn stack(revisions: &[Revision], second_resource: bool) -> Stack {
    let mut options = StackOptions::default().with_revisions(revisions.iter().copied());
    options.second_resource = second_resource;
    Stack::start(options).await.expect("the stack starts")
}

async fn send(request: HttpRequest) -> HttpResponse {
    Http::new(HttpPolicy::AllowLoopbackHttp)
        .send(&request)
        .await
        .expect("the server answers")
}

/// `Bearer …` for `url` (the headless client's flow against the stack's AS).
async fn bearer(url: &str) -> String {
    let mut c = McpClient::new(Options::headless(url.to_owned()), Transcript::shared())
        .await
        .unwrap();
    c.authorize().await.unwrap().expect("a token");
    c.core.authorization_for(url).expect("bearer")
}

/// The per-request `_meta` of 2026-07-28.
fn meta() -> Value {
    json!({
        "io.modelcontextprotocol/protocolVersion": "2026-07-28",
        "io.modelcontextprotocol/clientCapabilities": {},
        "io.modelcontextprotocol/clientInfo": {"name": "revisions-test", "version": "0"},
    })
}

/// A stateless 2026-07-28 request: `MCP-Protocol-Version`, `Mcp-Method` (and `Mcp-Name` for a
/// tool call) and `_meta`, no session.
fn stateless(url: &str, method: &str, mut params: Value, bearer: Option<&str>) -> HttpRequest {
    params["_meta"] = meta();
    let body = json!({"jsonrpc": "2.0", "id": 1, "method": method, "params": params});
    let mut request = HttpRequest::new(Method::Post, url)
        .header("content-type", "application/json")
        .header("accept", "application/json, text/event-stream")
        .header("mcp-protocol-version", "2026-07-28")
        .header("mcp-method", method)
        .body(serde_json::to_vec(&body).unwrap());
    if let Some(name) = params.get("name").and_then(Value::as_str) {
        request = request.header("mcp-name", name);
    }
    if let Some(b) = bearer {
        request = request.header("authorization", b);
    }
    request
}

fn whoami() -> Value {
    json!({"name": "whoami", "arguments": {}})
}

/// The JSON-RPC answer of a 200 (JSON, or the first `data:` of an event stream).
fn result(answer: &HttpResponse) -> Value {
    let body = String::from_utf8_lossy(&answer.body);
    assert_eq!(answer.status, 200, "{body}");
    let json = body
        .lines()
        .filter_map(|l| l.strip_prefix("data:"))
        .find(|d| !d.trim().is_empty())
        .unwrap_or(&body)
        .trim()
        .to_owned();
    let value: Value = serde_json::from_str(&json).unwrap_or_else(|e| panic!("{e}: {body}"));
    assert!(value.get("error").is_none(), "{value}");
    value["result"].clone()
}

fn header<'a>(answer: &'a HttpResponse, name: &str) -> Option<&'a str> {
    answer.header_value(name)
}

// spec: TRN-9, SEC-18, RS-1
#[tokio::test]
async fn a_stateless_2026_request_with_a_token_is_served_without_initialize_or_session() {
    let s = stack(&[Revision::V2026_07_28], false).await;
    let b = bearer(&s.mcp_url).await;
    let discover = send(stateless(
        &s.mcp_url,
        "server/discover",
        json!({}),
        Some(&b),
    ))
    .await;
    let found = result(&discover);
    assert_eq!(found["supportedVersions"], json!(["2026-07-28"]), "{found}");
    assert_eq!(header(&discover, "mcp-session-id"), None);
    let call = send(stateless(&s.mcp_url, "tools/call", whoami(), Some(&b))).await;
    let called = result(&call);
    let text = called["content"][0]["text"].as_str().expect("text");
    assert!(text.contains(r#""subject":"#), "{text}");
    assert_eq!(header(&call, "mcp-session-id"), None);
    s.stop().await;
}

// spec: TRN-9, SEC-18, PRM-8, ERR-4, RS-3
#[tokio::test]
async fn a_stateless_2026_request_without_a_valid_token_gets_the_challenge() {
    let s = stack(&[Revision::V2026_07_28], true).await;
    let other = s.other_mcp_url.clone().expect("second resource");
    let prm = "resource_metadata=";
    for method in ["server/discover", "tools/call"] {
        let params = if method == "tools/call" {
            whoami()
        } else {
            json!({})
        };
        let anonymous = send(stateless(&s.mcp_url, method, params.clone(), None)).await;
        assert_eq!(anonymous.status, 401, "{method}");
        let challenge = header(&anonymous, "www-authenticate").expect("challenge");
        assert!(challenge.starts_with("Bearer ") && challenge.contains(prm));
        assert!(!challenge.contains("error="), "{challenge}");
    }
    // A token for the other MCP server (another audience): 401 invalid_token.
    let foreign = bearer(&other).await;
    let answer = send(stateless(
        &s.mcp_url,
        "tools/call",
        whoami(),
        Some(&foreign),
    ))
    .await;
    assert_eq!(answer.status, 401);
    let challenge = header(&answer, "www-authenticate").expect("challenge");
    assert!(
        challenge.contains(r#"error="invalid_token""#),
        "{challenge}"
    );
    assert!(challenge.contains(prm));
    s.stop().await;
}

// spec: TRN-4, TRN-9
#[tokio::test]
async fn an_unconfigured_revision_gets_400_naming_the_configured_ones() {
    let s = stack(&[Revision::V2026_07_28], false).await;
    let b = bearer(&s.mcp_url).await;
    let list = |version: &str| {
        HttpRequest::new(Method::Post, s.mcp_url.as_str())
            .header("content-type", "application/json")
            .header("accept", "application/json, text/event-stream")
            .header("authorization", b.as_str())
            .header("mcp-protocol-version", version)
            .header("mcp-method", "tools/list")
            .body(br#"{"jsonrpc":"2.0","id":1,"method":"tools/list","params":{}}"#.to_vec())
    };
    for version in ["2025-06-18", "2025-11-25"] {
        let answer = send(list(version)).await;
        assert_eq!(answer.status, 400, "{version}");
        let body: Value = serde_json::from_slice(&answer.body).unwrap();
        assert_eq!(
            body["error"]["data"]["supported"],
            json!(["2026-07-28"]),
            "{body}"
        );
    }
    s.stop().await;
}

// spec: TRN-9, SEC-6, SEC-18, TRN-1
#[tokio::test]
async fn every_revision_configured_serves_a_session_and_a_stateless_call_side_by_side() {
    let s = stack(&Revision::ALL, false).await;
    let b = bearer(&s.mcp_url).await;
    // 2025-06-18: initialize, a session, a call in it.
    let post = |body: Value, extra: &[(&str, &str)]| {
        let mut request = HttpRequest::new(Method::Post, s.mcp_url.as_str())
            .header("content-type", "application/json")
            .header("accept", "application/json, text/event-stream")
            .header("authorization", b.as_str())
            .body(serde_json::to_vec(&body).unwrap());
        for (n, v) in extra {
            request = request.header(n, *v);
        }
        request
    };
    let init = send(post(
        json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
            "protocolVersion": "2025-06-18", "capabilities": {},
            "clientInfo": {"name": "revisions-test", "version": "0"}}}),
        &[],
    ))
    .await;
    assert_eq!(result(&init)["protocolVersion"], "2025-06-18");
    let session = header(&init, "mcp-session-id")
        .expect("a session")
        .to_owned();
    let v = [
        ("mcp-protocol-version", "2025-06-18"),
        ("mcp-session-id", session.as_str()),
    ];
    let initialized = send(post(
        json!({"jsonrpc": "2.0", "method": "notifications/initialized"}),
        &v,
    ))
    .await;
    assert_eq!(initialized.status, 202);
    let call = send(post(
        json!({"jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": whoami()}),
        &v,
    ))
    .await;
    assert!(result(&call)["content"][0]["text"].is_string());
    // 2026-07-28 on the same endpoint, at the same time: stateless.
    let discover = send(stateless(
        &s.mcp_url,
        "server/discover",
        json!({}),
        Some(&b),
    ))
    .await;
    assert_eq!(
        result(&discover)["supportedVersions"],
        json!(["2025-06-18", "2025-11-25", "2026-07-28"])
    );
    let call = send(stateless(&s.mcp_url, "tools/call", whoami(), Some(&b))).await;
    assert!(result(&call)["content"][0]["text"].is_string());
    assert_eq!(header(&call, "mcp-session-id"), None);
    // The session's id carried by a stateless call is not a credential: no token, 401.
    let mut anonymous = stateless(&s.mcp_url, "tools/call", whoami(), None);
    anonymous = anonymous.header("mcp-session-id", session.as_str());
    assert_eq!(send(anonymous).await.status, 401);
    // A 2025-11-25 initialize negotiates 2025-11-25.
    let init = send(post(
        json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
            "protocolVersion": "2025-11-25", "capabilities": {},
            "clientInfo": {"name": "revisions-test", "version": "0"}}}),
        &[],
    ))
    .await;
    assert_eq!(result(&init)["protocolVersion"], "2025-11-25");
    s.stop().await;
}
