//! The client driver when the MCP server refuses what it holds, over real loopback HTTP: a
//! refused access token is refreshed before anything else (no new discovery, registration or
//! user), and a step-up asks for the scopes held and those the 403 names.

use mcp_auth::client::{McpClient, Options, jsonrpc_result};
use mcp_auth::demo::{Stack, StackOptions};
use mcp_auth_proto::client::{Action, Tokens};
use serde_json::json;

async fn stack() -> Stack {
    Stack::start(StackOptions::default())
        .await
        .expect("the stack starts")
}

/// A headless client that may send the user to authorize again twice per request (as
/// `mcp-auth connect` does), authorized for `scope`.
async fn authorized_client(stack: &Stack, scope: Option<&str>) -> (McpClient, Tokens) {
    let mut options = Options::headless(stack.mcp_url.clone());
    options.scope = scope.map(str::to_owned);
    options.reauthorize = 2;
    let mut c = McpClient::new(options, stack.transcript()).await.unwrap();
    let tokens = c.authorize().await.unwrap().expect("tokens");
    (c, tokens)
}

/// The steps recorded since the `from`-th exchange.
fn steps_since(c: &McpClient, from: usize) -> Vec<String> {
    c.transcript().lock().unwrap().exchanges[from..]
        .iter()
        .map(|e| e.step.clone())
        .collect()
}

fn exchanges(c: &McpClient) -> usize {
    c.transcript().lock().unwrap().exchanges.len()
}

// spec: ERR-10
#[tokio::test]
async fn a_refused_access_token_is_refreshed_instead_of_registering_again() {
    let s = stack().await;
    let (mut c, tokens) = authorized_client(&s, None).await;
    // From now on the server refuses the access token the client holds (here one it never
    // issued); the refresh token is still good.
    c.resume(Tokens {
        access_token: "refused-by-the-server".into(),
        ..tokens.clone()
    });
    let from = exchanges(&c);
    let init = c.initialize().await.expect("initialize after the refresh");
    assert_eq!(init["protocolVersion"], "2025-06-18");
    let steps = steps_since(&c, from);
    assert_eq!(
        steps[..3],
        [
            "MCP initialize",
            "token request: refresh_token grant",
            "MCP initialize"
        ],
        "{steps:#?}"
    );
    // No discovery, no registration, no user: only the refresh went to the AS.
    assert!(
        !steps.iter().any(|s| s.contains("discovery")
            || s.contains("registration")
            || s.contains("consent")),
        "{steps:#?}"
    );
    let Action::Authorized(refreshed) = c.core.poll_action() else {
        panic!("not authorized: {:?}", c.core.poll_action())
    };
    assert_eq!(refreshed.client_id, tokens.client_id);
    assert_ne!(refreshed.refresh_token, tokens.refresh_token);
    assert_ne!(refreshed.access_token, tokens.access_token);
    s.stop().await;
}

#[tokio::test]
async fn a_step_up_asks_for_the_held_and_the_challenged_scopes() {
    let s = stack().await;
    let (mut c, _) = authorized_client(&s, Some("mcp:tools")).await;
    c.initialize().await.unwrap();
    let from = exchanges(&c);
    // 403 insufficient_scope for mcp:admin: the client authorizes again for both scopes.
    let _ = c.call_tool("admin_info", json!({})).await.unwrap();
    let t = c.transcript().lock().unwrap().clone();
    assert_eq!(t.exchanges[from].status, 403);
    let authorization = t.exchanges[from..]
        .iter()
        .find(|e| e.step.contains("authorization request"))
        .expect("a new authorization");
    let query = authorization.url.split_once('?').unwrap().1;
    let scope = form_urlencoded::parse(query.as_bytes())
        .find(|(k, _)| k == "scope")
        .map(|(_, v)| v.into_owned());
    assert_eq!(scope.as_deref(), Some("mcp:admin mcp:tools"));
    let Action::Authorized(tokens) = c.core.poll_action() else {
        panic!("not authorized: {:?}", c.core.poll_action())
    };
    assert_eq!(tokens.scope.as_deref(), Some("mcp:admin mcp:tools"));
    // The new registration owns no session yet (sessions are bound to `sub` and
    // `client_id`): a new one, and the tool answers.
    c.initialize().await.unwrap();
    let admin = c.call_tool("admin_info", json!({})).await.unwrap();
    assert!(jsonrpc_result(&admin).is_ok(), "{admin:?}");
    s.stop().await;
}
