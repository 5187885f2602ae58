//! The client driver's version negotiation and stateless 2026-07-28 requests over real
//! loopback HTTP: against a small in-test MCP server that checks requests as a stateless
//! 2026-07-28 server does (or refuses `server/discover` as a session server does), and against
//! our own stack (a 2025-06-18 server behind OAuth).

use std::sync::{Arc, Mutex};

use http_body_util::BodyExt;
use mcp_auth::client::{McpClient, Options};
use mcp_auth::demo::{Stack, StackOptions};
use mcp_auth::net::{Body, full, serve};
use mcp_auth::transcript::Transcript;
use mcp_auth_proto::Revision;
use serde_json::{Value, json};
use tokio::net::TcpListener;

/// A request the mock received: its MCP headers and JSON body.
#[derive(Clone, Debug)]
struct Seen {
    version: Option<String>,
    method_header: Option<String>,
    name_header: Option<String>,
    session: Option<String>,
    body: Value,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Mock {
    /// Speaks 2026-07-28 only, statelessly.
    Stateless,
    /// Knows no `server/discover` (-32601) and speaks 2025-11-25 with `initialize`.
    Session,
}

fn header(request: &http::Request<hyper::body::Incoming>, name: &str) -> Option<String> {
    request
        .headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
}

fn reply(status: u16, body: &Value) -> http::Response<Body> {
    http::Response::builder()
        .status(status)
        .header("content-type", "application/json")
        .body(full(serde_json::to_vec(body).unwrap()))
        .unwrap()
}

/// The mock's answer: a stateless server refuses what lacks the version header or the `_meta`
/// keys, or whose header and `_meta` versions differ (as the conformance suite's mock does).
fn answer(kind: Mock, seen: &Seen) -> http::Response<Body> {
    let id = seen.body.get("id").cloned().unwrap_or(Value::Null);
    let method = seen.body["method"].as_str().unwrap_or("");
    let error = |status, code: i64, message: &str| {
        reply(
            status,
            &json!({"jsonrpc": "2.0", "id": id, "error": {"code": code, "message": message}}),
        )
    };
    let result = |result: Value| reply(200, &json!({"jsonrpc": "2.0", "id": id, "result": result}));
    match kind {
        Mock::Stateless => {
            let meta = &seen.body["params"]["_meta"];
            let Some(version) = &seen.version else {
                return error(400, -32020, "Missing MCP-Protocol-Version header");
            };
            if method.starts_with("notifications/") {
                return http::Response::builder()
                    .status(202)
                    .body(full(""))
                    .unwrap();
            }
            if meta["io.modelcontextprotocol/clientCapabilities"].is_null()
                || meta["io.modelcontextprotocol/protocolVersion"] != json!(version)
            {
                return error(400, -32602, "missing or mismatched _meta");
            }
            if version != "2026-07-28" {
                return reply(
                    400,
                    &json!({"jsonrpc": "2.0", "id": id, "error": {"code": -32022,
                        "message": "Unsupported protocol version",
                        "data": {"supported": ["2026-07-28"], "requested": version}}}),
                );
            }
            match method {
                "server/discover" => result(json!({"supportedVersions": ["2026-07-28"],
                    "capabilities": {"tools": {}},
                    "_meta": {"io.modelcontextprotocol/serverInfo": {"name": "mock", "version": "1"}}})),
                "tools/list" => {
                    result(json!({"tools": [{"name": "add", "inputSchema": {"type": "object"}}]}))
                }
                "tools/call" => result(json!({"content": [{"type": "text", "text": "5"}]})),
                _ => error(404, -32601, "Method not found"),
            }
        }
        Mock::Session => match method {
            "initialize" => {
                let mut response = result(json!({"protocolVersion": "2025-11-25",
                    "capabilities": {"tools": {}}, "serverInfo": {"name": "session-mock", "version": "1"}}));
                response
                    .headers_mut()
                    .insert("mcp-session-id", http::HeaderValue::from_static("s-1"));
                response
            }
            "notifications/initialized" => http::Response::builder()
                .status(202)
                .body(full(""))
                .unwrap(),
            _ if seen.session.as_deref() != Some("s-1") => error(400, -32600, "no session"),
            "tools/list" => result(json!({"tools": []})),
            _ => error(200, -32601, "Method not found"),
        },
    }
}

/// Start the mock; its URL and what it received.
async fn mock(kind: Mock) -> (String, Arc<Mutex<Vec<Seen>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/mcp", listener.local_addr().unwrap());
    let log = Arc::new(Mutex::new(Vec::new()));
    let seen_log = Arc::clone(&log);
    let service = tower::service_fn(move |request: http::Request<hyper::body::Incoming>| {
        let log = Arc::clone(&seen_log);
        async move {
            let version = header(&request, "mcp-protocol-version");
            let method_header = header(&request, "mcp-method");
            let name_header = header(&request, "mcp-name");
            let session = header(&request, "mcp-session-id");
            let bytes = request
                .into_body()
                .collect()
                .await
                .map(|b| b.to_bytes())
                .unwrap_or_default();
            let seen = Seen {
                version,
                method_header,
                name_header,
                session,
                body: serde_json::from_slice(&bytes).unwrap_or(Value::Null),
            };
            log.lock().unwrap().push(seen.clone());
            Ok::<_, std::convert::Infallible>(answer(kind, &seen))
        }
    });
    tokio::spawn(serve(listener, service, std::future::pending()));
    (url, log)
}

async fn client(url: &str, revision: Revision) -> McpClient {
    McpClient::new(
        Options::headless(url).with_revision(revision),
        Transcript::shared(),
    )
    .await
    .unwrap()
}

// spec: TRN-6, TRN-7, TRN-8
#[tokio::test]
async fn a_stateless_server_gets_discover_then_stateless_requests_only() {
    let (url, log) = mock(Mock::Stateless).await;
    let mut c = client(&url, Revision::V2026_07_28).await;
    let info = c.open().await.expect("negotiated");
    assert_eq!(info["protocolVersion"], "2026-07-28");
    assert_eq!(info["serverInfo"]["name"], "mock");
    assert_eq!(c.revision(), Revision::V2026_07_28);
    c.list_tools().await.expect("tools/list");
    let call = c.call_tool("add", json!({"a": 2, "b": 3})).await.unwrap();
    assert_eq!(call.status, 200);
    let seen = log.lock().unwrap().clone();
    let methods: Vec<&str> = seen
        .iter()
        .map(|s| s.body["method"].as_str().unwrap())
        .collect();
    assert_eq!(methods, ["server/discover", "tools/list", "tools/call"]);
    for s in &seen {
        assert_eq!(s.version.as_deref(), Some("2026-07-28"));
        assert_eq!(s.method_header.as_deref(), s.body["method"].as_str());
        assert_eq!(s.session, None);
        let meta = &s.body["params"]["_meta"];
        assert_eq!(
            meta["io.modelcontextprotocol/clientInfo"]["name"],
            "mcp-auth"
        );
    }
    assert_eq!(seen[2].name_header.as_deref(), Some("add"));
    assert_eq!(seen[1].name_header, None);
}

// spec: TRN-8
#[tokio::test]
async fn a_session_server_gets_initialize_at_the_newest_older_revision() {
    let (url, log) = mock(Mock::Session).await;
    let mut c = client(&url, Revision::V2026_07_28).await;
    let info = c.open().await.expect("fell back");
    assert_eq!(info["protocolVersion"], "2025-11-25");
    assert_eq!(c.revision(), Revision::V2025_11_25);
    c.list_tools().await.expect("tools/list in the session");
    let seen = log.lock().unwrap().clone();
    let methods: Vec<&str> = seen
        .iter()
        .map(|s| s.body["method"].as_str().unwrap())
        .collect();
    assert_eq!(
        methods,
        [
            "server/discover",
            "initialize",
            "notifications/initialized",
            "tools/list"
        ]
    );
    assert_eq!(seen[1].body["params"]["protocolVersion"], "2025-11-25");
    assert_eq!(seen[1].version, None);
    assert_eq!(seen[3].version.as_deref(), Some("2025-11-25"));
    assert_eq!(seen[3].session.as_deref(), Some("s-1"));
    assert_eq!(seen[3].method_header, None);
}

// spec: TRN-8, DISC-1
#[tokio::test]
async fn our_2025_06_18_stack_is_reached_through_the_fallback_after_authorization() {
    let stack = Stack::start(StackOptions::default())
        .await
        .expect("the stack starts");
    let mut c = client(&stack.mcp_url, Revision::V2026_07_28).await;
    let info = c.open().await.expect("authorized and initialized");
    assert_eq!(info["protocolVersion"], "2025-06-18");
    assert_eq!(c.revision(), Revision::V2025_06_18);
    assert!(
        c.core.tokens().is_some(),
        "the 401 on server/discover started OAuth"
    );
    c.list_tools().await.expect("tools/list");
}
