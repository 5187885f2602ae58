//! Revocation reaching the MCP server over loopback HTTP: RFC 7009 at the AS, RFC 7662
//! introspection by the MCP server's auth layer, and `mcp-auth connect --logout`.

use std::time::Duration;

use mcp_auth::client::{Http, McpClient, Options, initialize_params};
use mcp_auth::demo::{Stack, StackOptions};
use mcp_auth_proto::http::{HttpRequest, HttpResponse, Method};
use mcp_auth_proto::uri::HttpPolicy;
use serde_json::{Value, json};

async fn stack(introspection_cache_secs: Option<u64>) -> Stack {
    Stack::start(
        StackOptions::default()
            .with_auto_approve(true)
            .with_introspection_cache_secs(introspection_cache_secs),
    )
    .await
    .expect("the stack starts")
}

async fn send(request: &HttpRequest) -> HttpResponse {
    Http::new(HttpPolicy::AllowLoopbackHttp)
        .send(request)
        .await
        .expect("the server answers")
}

async fn initialize(url: &str, token: &str) -> HttpResponse {
    let body =
        json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": initialize_params()});
    let request = HttpRequest::new(Method::Post, url)
        .header("content-type", "application/json")
        .header("accept", "application/json, text/event-stream")
        .header("authorization", format!("Bearer {token}"))
        .body(serde_json::to_vec(&body).unwrap_or_default());
    send(&request).await
}

// spec: RT-2, RT-13, RS-18
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revoked_grants_token_is_refused_by_an_introspecting_mcp_server_within_the_cache_time() {
    let cache = 1;
    let s = stack(Some(cache)).await;
    let mut c = McpClient::new(Options::headless(s.mcp_url.clone()), s.transcript())
        .await
        .expect("client");
    let tokens = c
        .authorize()
        .await
        .expect("authorized")
        .expect("the server asked for a token");
    assert_eq!(
        initialize(&s.mcp_url, &tokens.access_token).await.status,
        200
    );
    let revocation = tokens
        .revocation_request()
        .expect("the AS advertises /revoke");
    assert_eq!(send(&revocation).await.status, 200);
    tokio::time::sleep(Duration::from_millis(cache * 1000 + 100)).await;
    let refused = initialize(&s.mcp_url, &tokens.access_token).await;
    assert_eq!(refused.status, 401);
    let challenge = refused.header_value("www-authenticate").unwrap_or("");
    assert!(challenge.contains("error=\"invalid_token\""), "{challenge}");
    // The token itself is far from its exp: only introspection refuses it.
    let exp = tokens.expires_at.unwrap_or(0);
    assert!(exp > mcp_auth::net::now().as_secs() + 200);
    s.stop().await;
}

// spec: RT-13
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connect_logout_revokes_the_grant_and_empties_the_token_store() {
    let s = stack(Some(30)).await;
    let dir = std::env::temp_dir().join(format!("mcp-auth-logout-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let run = |args: Vec<String>| {
        tokio::process::Command::new(env!("CARGO_BIN_EXE_mcp-auth"))
            .args(args)
            .env("XDG_CONFIG_HOME", &dir)
            .env_remove("BROWSER")
            .kill_on_drop(true)
            .output()
    };
    let connect = run(vec![
        "connect".into(),
        s.mcp_url.clone(),
        "--headless".into(),
    ])
    .await
    .expect("connect runs");
    assert!(
        connect.status.success(),
        "{}",
        String::from_utf8_lossy(&connect.stderr)
    );
    let store = dir.join("mcp-auth").join("tokens.json");
    let stored: Value =
        serde_json::from_slice(&std::fs::read(&store).expect("stored")).expect("json");
    let tokens = stored[&s.issuer][&s.mcp_url].clone();
    let access_token = tokens["access_token"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    assert!(!access_token.is_empty(), "{stored}");
    assert!(
        s.as_state
            .with_server(|a| a.grants().all(|(_, g)| !g.revoked))
    );
    let logout = run(vec!["connect".into(), "--logout".into(), s.mcp_url.clone()])
        .await
        .expect("logout runs");
    assert!(
        logout.status.success(),
        "{}",
        String::from_utf8_lossy(&logout.stderr)
    );
    let after: Value =
        serde_json::from_slice(&std::fs::read(&store).expect("store")).expect("json");
    assert!(after.get(&s.issuer).is_none(), "{after}");
    assert!(
        s.as_state
            .with_server(|a| a.grants().count() == 1 && a.grants().all(|(_, g)| g.revoked)),
        "the grant is revoked"
    );
    let refresh = tokens["refresh_token"].as_str().unwrap_or_default();
    assert!(!refresh.is_empty());
    let _ = std::fs::remove_dir_all(&dir);
    s.stop().await;
}
