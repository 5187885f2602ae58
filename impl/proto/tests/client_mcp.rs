//! The client's MCP requests per revision (`src/client/mcp.rs`): the headers and `_meta` of
//! [`mcp_post`], and the version negotiation of [`negotiate`]. Every test names the catalogue
//! rows it verifies.

use mcp_auth_proto::Revision;
use mcp_auth_proto::client::{
    Negotiated, StatelessClient, initialize_revision, initialized_revision, mcp_post, negotiate,
};
use mcp_auth_proto::http::{HttpRequest, Method};
use serde_json::{Value, json};

const URL: &str = "https://h/mcp";

fn client() -> StatelessClient {
    StatelessClient::new("mcp-auth", "9.9.9")
}

fn post(revision: Revision, message: Value, session: Option<&str>) -> HttpRequest {
    mcp_post(
        revision,
        URL,
        &message,
        &client(),
        session,
        Some("Bearer at"),
    )
}

fn body(request: &HttpRequest) -> Value {
    serde_json::from_slice(&request.body).expect("JSON body")
}

fn request(method: &str, params: Value) -> Value {
    json!({"jsonrpc": "2.0", "id": 7, "method": method, "params": params})
}

// spec: TRN-6, TRN-7, CLI-1
#[test]
fn every_stateless_post_carries_the_version_the_method_and_the_meta() {
    let r = Revision::V2026_07_28;
    for method in [
        "server/discover",
        "tools/list",
        "tools/call",
        "resources/read",
        "prompts/get",
        "ping",
    ] {
        let params = json!({"name": "echo", "uri": "file:///a b", "arguments": {"x": 1}});
        let req = post(r, request(method, params), Some("ignored-session"));
        assert_eq!(req.method, Method::Post);
        assert_eq!(req.url, URL);
        assert_eq!(req.header_str("mcp-protocol-version"), Some("2026-07-28"));
        assert_eq!(req.header_str("mcp-method"), Some(method));
        assert_eq!(req.header_str("authorization"), Some("Bearer at"));
        assert_eq!(req.header_str("content-type"), Some("application/json"));
        assert_eq!(
            req.header_str("accept"),
            Some("application/json, text/event-stream")
        );
        assert_eq!(req.header_values("mcp-session-id").count(), 0, "stateless");
        let expected_name = match method {
            "tools/call" | "prompts/get" => Some("echo"),
            "resources/read" => Some("file:///a b"),
            _ => None,
        };
        assert_eq!(req.header_str("mcp-name"), expected_name, "{method}");
        let meta = &body(&req)["params"]["_meta"];
        assert_eq!(
            meta["io.modelcontextprotocol/protocolVersion"],
            "2026-07-28"
        );
        assert_eq!(
            meta["io.modelcontextprotocol/clientCapabilities"],
            json!({})
        );
        assert_eq!(
            meta["io.modelcontextprotocol/clientInfo"],
            json!({"name": "mcp-auth", "version": "9.9.9"})
        );
        // The rest of the message is untouched.
        assert_eq!(body(&req)["params"]["arguments"], json!({"x": 1}));
        assert_eq!(body(&req)["id"], 7);
    }
    // No params at all: they are created for the _meta; the caller's _meta keys are kept.
    let req = post(
        r,
        json!({"jsonrpc": "2.0", "id": 1, "method": "tools/list"}),
        None,
    );
    assert!(body(&req)["params"]["_meta"].is_object());
    let req = post(
        r,
        request("tools/list", json!({"_meta": {"progressToken": 3}})),
        None,
    );
    let meta = &body(&req)["params"]["_meta"];
    assert_eq!(meta["progressToken"], 3);
    assert_eq!(
        meta["io.modelcontextprotocol/protocolVersion"],
        "2026-07-28"
    );
    // A notification: headers, but no _meta added.
    let note = post(
        r,
        json!({"jsonrpc": "2.0", "method": "notifications/cancelled", "params": {}}),
        None,
    );
    assert_eq!(
        note.header_str("mcp-method"),
        Some("notifications/cancelled")
    );
    assert_eq!(note.header_str("mcp-protocol-version"), Some("2026-07-28"));
    assert!(body(&note)["params"].get("_meta").is_none());
}

// spec: TRN-7
#[test]
fn a_name_that_cannot_be_a_header_value_is_left_out() {
    let req = post(
        Revision::V2026_07_28,
        request("tools/call", json!({"name": "evil\r\nx-injected: 1"})),
        None,
    );
    assert_eq!(req.header_values("mcp-name").count(), 0);
    assert_eq!(req.header_values("x-injected").count(), 0);
}

// spec: TRN-1, TRN-2, TRN-5
#[test]
fn session_revisions_keep_initialize_and_the_session_form() {
    for r in [Revision::V2025_06_18, Revision::V2025_11_25] {
        let init = post(r, request("initialize", json!({})), None);
        assert_eq!(init.header_values("mcp-protocol-version").count(), 0);
        let later = post(
            r,
            request("tools/call", json!({"name": "echo"})),
            Some("s1"),
        );
        assert_eq!(later.header_str("mcp-protocol-version"), Some(r.as_str()));
        assert_eq!(later.header_str("mcp-session-id"), Some("s1"));
        assert_eq!(later.header_values("mcp-method").count(), 0);
        assert_eq!(later.header_values("mcp-name").count(), 0);
        assert!(body(&later)["params"].get("_meta").is_none());
    }
}

fn discover_result(versions: Value) -> Vec<u8> {
    serde_json::to_vec(&json!({"jsonrpc": "2.0", "id": 1, "result": {
        "supportedVersions": versions, "capabilities": {}}}))
    .unwrap()
}

fn jsonrpc_error(code: i64, data: Value) -> Vec<u8> {
    serde_json::to_vec(
        &json!({"jsonrpc": "2.0", "id": 1, "error": {"code": code, "message": "x", "data": data}}),
    )
    .unwrap()
}

// spec: TRN-8
#[test]
fn negotiation_picks_the_newest_common_revision_else_falls_back_to_initialize() {
    use Revision::*;
    let max = V2026_07_28;
    // The server speaks 2026-07-28 (and older ones).
    let ok = discover_result(json!(["2025-06-18", "2026-07-28", "2099-01-01"]));
    assert_eq!(
        negotiate(max, 1, 200, &ok),
        Negotiated::Stateless(V2026_07_28)
    );
    // It lists only session revisions: initialize with the newest of them.
    let old = discover_result(json!(["2025-06-18"]));
    assert_eq!(
        negotiate(max, 1, 200, &old),
        Negotiated::Initialize(V2025_06_18)
    );
    // -32022 naming a stateless revision: one retry, then initialize.
    let refused = jsonrpc_error(
        -32022,
        json!({"supported": ["2026-07-28"], "requested": "x"}),
    );
    assert_eq!(
        negotiate(max, 1, 400, &refused),
        Negotiated::Retry(V2026_07_28)
    );
    assert_eq!(
        negotiate(max, 2, 400, &refused),
        Negotiated::Initialize(V2025_11_25)
    );
    let refused_old = jsonrpc_error(-32022, json!({"supported": ["2025-06-18", "2024-11-05"]}));
    assert_eq!(
        negotiate(max, 1, 400, &refused_old),
        Negotiated::Initialize(V2025_06_18)
    );
    // Method not found, a plain 400 / 404 / 405, garbage: initialize.
    for (status, body) in [
        (200, jsonrpc_error(-32601, json!(null))),
        (404, jsonrpc_error(-32601, json!(null))),
        (400, b"Bad Request: no session".to_vec()),
        (405, Vec::new()),
        (200, b"{}".to_vec()),
    ] {
        assert_eq!(
            negotiate(max, 1, status, &body),
            Negotiated::Initialize(V2025_11_25),
            "{status}"
        );
    }
    // A server listing only revisions newer than the client's maximum.
    assert_eq!(
        negotiate(V2025_11_25, 1, 200, &ok),
        Negotiated::Initialize(V2025_06_18)
    );
    assert_eq!(initialize_revision(V2026_07_28), V2025_11_25);
    assert_eq!(initialize_revision(V2025_11_25), V2025_11_25);
    assert_eq!(initialize_revision(V2025_06_18), V2025_06_18);
}

// spec: TRN-8
#[test]
fn initialize_runs_at_the_servers_answer_when_it_is_not_newer() {
    use Revision::*;
    assert_eq!(
        initialized_revision(V2025_11_25, Some("2025-06-18")),
        V2025_06_18
    );
    assert_eq!(
        initialized_revision(V2025_06_18, Some("2025-11-25")),
        V2025_06_18
    );
    assert_eq!(
        initialized_revision(V2025_11_25, Some("2026-07-28")),
        V2025_11_25
    );
    assert_eq!(initialized_revision(V2025_11_25, None), V2025_11_25);
}

// spec: TRN-10
#[test]
fn an_sse_stream_that_ends_early_is_resumed_after_the_servers_retry_bounded() {
    use mcp_auth_proto::client::{
        SSE_RESUMES_MAX, SSE_RETRY_DEFAULT_MS, SSE_RETRY_MAX_MS, SseResume, sse_resume,
        sse_resume_request,
    };
    let stream = b"id: event-1\nretry: 500\ndata: \n\n";
    assert_eq!(
        sse_resume(stream, 0),
        Some(SseResume {
            last_event_id: "event-1".into(),
            retry_ms: 500
        })
    );
    // The last id and retry win; no retry means the default; a huge one is capped.
    assert_eq!(
        sse_resume(b"id: a\nretry: 10\n\nid:b\ndata: x\n\n", 0),
        Some(SseResume {
            last_event_id: "b".into(),
            retry_ms: 10
        })
    );
    assert_eq!(
        sse_resume(b"id: a\n\n", 0).unwrap().retry_ms,
        SSE_RETRY_DEFAULT_MS
    );
    assert_eq!(
        sse_resume(b"id: a\nretry: 99999999999999999999999\n\n", 0)
            .unwrap()
            .retry_ms,
        SSE_RETRY_MAX_MS
    );
    // No event id (nothing to resume from), an unusable one, or the bound reached: none.
    assert_eq!(sse_resume(b"retry: 5\ndata: {}\n\n", 0), None);
    assert_eq!(sse_resume(b"id: \n\n", 0), None);
    assert_eq!(sse_resume(b"id: a\x01b\n\n", 0), None);
    assert_eq!(
        sse_resume(&[b"id: ".as_slice(), &[b'x'; 300]].concat(), 0),
        None
    );
    assert!(sse_resume(stream, SSE_RESUMES_MAX - 1).is_some());
    assert_eq!(sse_resume(stream, SSE_RESUMES_MAX), None);

    // The GET carries what the POST's authorization and session carried, and the id.
    let post = mcp_post(
        Revision::V2025_11_25,
        URL,
        &request("tools/call", json!({"name": "x"})),
        &client(),
        Some("s1"),
        Some("Bearer at"),
    );
    let get = sse_resume_request(&post, "event-1");
    assert_eq!(get.method, Method::Get);
    assert_eq!(get.url, URL);
    assert!(get.body.is_empty());
    assert_eq!(get.header_str("accept"), Some("text/event-stream"));
    assert_eq!(get.header_str("last-event-id"), Some("event-1"));
    assert_eq!(get.header_str("authorization"), Some("Bearer at"));
    assert_eq!(get.header_str("mcp-session-id"), Some("s1"));
    assert_eq!(get.header_str("mcp-protocol-version"), Some("2025-11-25"));
}
