//! MCP transport rules of the resource server and the client over real loopback HTTP: the
//! `MCP-Protocol-Version` header (client sends it, server checks it after authentication) and
//! Origin validation on the MCP endpoint.

use mcp_auth::client::{Http, McpClient, Options, initialize_params};
use mcp_auth::demo::{Stack, StackOptions};
use mcp_auth::transcript::{Exchange, Transcript};
use mcp_auth_proto::http::{HttpRequest, HttpResponse, Method};
use mcp_auth_proto::uri::HttpPolicy;
use serde_json::json;

async fn stack() -> Stack {
    Stack::start(StackOptions::default())
        .await
        .expect("the stack starts")
}

async fn send(request: HttpRequest) -> HttpResponse {
    Http::new(HttpPolicy::AllowLoopbackHttp)
        .send(&request)
        .await
        .expect("the server answers")
}

async fn authorized(stack: &Stack) -> (McpClient, String) {
    let mut c = McpClient::new(
        Options::headless(stack.mcp_url.clone()),
        Transcript::shared(),
    )
    .await
    .unwrap();
    c.authorize().await.unwrap().expect("a token");
    let bearer = c.core.authorization_for(&stack.mcp_url).expect("bearer");
    (c, bearer)
}

/// An authorized client initializes, lists and calls a tool; its MCP exchanges and its bearer.
async fn a_session(stack: &Stack) -> (Vec<Exchange>, String) {
    let (mut c, bearer) = authorized(stack).await;
    c.initialize().await.unwrap();
    c.list_tools().await.unwrap();
    c.call_tool("whoami", json!({})).await.unwrap();
    let t = c.transcript().lock().unwrap().clone();
    let mcp = t
        .exchanges
        .into_iter()
        .filter(|e| e.step.starts_with("MCP"))
        .collect();
    (mcp, bearer)
}

fn post(url: &str, method: &str, bearer: Option<&str>) -> HttpRequest {
    let params = if method == "initialize" {
        initialize_params()
    } else {
        json!({})
    };
    let body = json!({"jsonrpc": "2.0", "id": 7, "method": method, "params": params});
    let mut request = HttpRequest::new(Method::Post, url)
        .header("content-type", "application/json")
        .header("accept", "application/json, text/event-stream")
        .body(serde_json::to_vec(&body).unwrap());
    if let Some(b) = bearer {
        request = request.header("authorization", b);
    }
    request
}

// spec: TRN-1, TRN-2, TRN-5
#[tokio::test]
async fn the_client_sends_the_protocol_version_on_every_request_after_initialize() {
    let s = stack().await;
    let (mcp, _) = a_session(&s).await;
    let first_init = mcp
        .iter()
        .rposition(|e| e.step.contains("initialize") && !e.step.contains("initialized"))
        .unwrap_or_else(|| {
            let steps: Vec<_> = mcp.iter().map(|e| e.step.as_str()).collect();
            panic!("no initialize in {steps:?}")
        });
    let after = &mcp[first_init + 1..];
    assert!(after.len() >= 3, "initialized, tools/list, tools/call");
    for e in after {
        let header = |name: &str| {
            e.request_headers
                .iter()
                .find(|(n, _)| n == name)
                .map(|(_, v)| v.as_str())
        };
        assert_eq!(
            header("mcp-protocol-version"),
            Some("2025-06-18"),
            "{}",
            e.step
        );
        assert!(header("mcp-session-id").is_some(), "{}", e.step);
        assert!(header("authorization").is_some(), "{}", e.step);
    }
}

// spec: CLI-2, CLI-1
#[tokio::test]
async fn every_request_after_the_first_challenge_carries_the_bearer_token() {
    let s = stack().await;
    let (mcp, bearer) = a_session(&s).await;
    // The first request is the unauthenticated probe that gets the 401 of discovery.
    let (probe, rest) = mcp.split_first().expect("MCP exchanges");
    assert_eq!(probe.status, 401);
    assert!(
        rest.len() >= 4,
        "initialize, initialized, tools/list, tools/call"
    );
    for e in rest {
        let authorization: Vec<&str> = e
            .request_headers
            .iter()
            .filter(|(n, _)| n == "authorization")
            .map(|(_, v)| v.as_str())
            .collect();
        // The transcript redacts the token after its first characters.
        assert_eq!(authorization.len(), 1, "{}", e.step);
        assert!(authorization[0].starts_with(&bearer[..12]), "{}", e.step);
        assert!(e.status < 400, "{}", e.step);
    }
    s.stop().await;
}

// spec: TRN-4
#[tokio::test]
async fn an_unsupported_protocol_version_gets_400_after_authentication() {
    let s = stack().await;
    let (_, bearer) = authorized(&s).await;
    let list = |bearer: Option<&str>, version: &str| {
        post(&s.mcp_url, "tools/list", bearer).header("mcp-protocol-version", version)
    };
    // Unauthenticated: 401 first, whatever the version.
    assert_eq!(send(list(None, "1999-01-01")).await.status, 401);
    // Authenticated: an unknown, a newer unsupported, and a malformed version get 400.
    for version in ["1999-01-01", "2025-11-25", "garbage"] {
        let answer = send(list(Some(&bearer), version)).await;
        assert_eq!(answer.status, 400, "{version}");
        let body: serde_json::Value = serde_json::from_slice(&answer.body).unwrap();
        assert_eq!(body["error"]["data"]["supported"], json!(["2025-06-18"]));
    }
    // initialize negotiates in its body, so a header there is not refused: a client that
    // proposes a newer revision, in header and body alike, is negotiated down.
    let mut params = initialize_params();
    params["protocolVersion"] = json!("2025-11-25");
    let body = json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": params});
    let init = post(&s.mcp_url, "initialize", Some(&bearer))
        .header("mcp-protocol-version", "2025-11-25")
        .body(serde_json::to_vec(&body).unwrap());
    let answer = send(init).await;
    assert_eq!(
        answer.status,
        200,
        "{}",
        String::from_utf8_lossy(&answer.body)
    );
    // The well-known endpoints ignore the header.
    let prm = HttpRequest::new(Method::Get, s.layer.metadata_url())
        .header("mcp-protocol-version", "1999-01-01");
    assert_eq!(send(prm).await.status, 200);
}

// spec: SEC-8
#[tokio::test]
async fn a_foreign_origin_gets_403_loopback_and_none_pass() {
    let s = stack().await;
    let (_, bearer) = authorized(&s).await;
    let init = |origin: Option<&str>, bearer: Option<&str>| {
        let r = post(&s.mcp_url, "initialize", bearer);
        match origin {
            Some(o) => r.header("origin", o),
            None => r,
        }
    };
    // Refused before authentication, with or without a token.
    assert_eq!(
        send(init(Some("http://evil.example"), None)).await.status,
        403
    );
    assert_eq!(
        send(init(Some("http://evil.example"), Some(&bearer)))
            .await
            .status,
        403
    );
    assert_eq!(send(init(Some("null"), Some(&bearer))).await.status, 403);
    assert_eq!(send(init(None, Some(&bearer))).await.status, 200);
    assert_eq!(
        send(init(Some("http://localhost:6274"), Some(&bearer)))
            .await
            .status,
        200
    );
    assert_eq!(
        send(init(Some("http://127.0.0.1:6274"), None)).await.status,
        401
    );
}
