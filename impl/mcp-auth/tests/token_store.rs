//! The driver keeps the core's token store in line with the client, over real loopback HTTP:
//! credentials are keyed by issuer and resource, and those of an authorization server the
//! MCP server no longer names are dropped.

use std::sync::{Arc, Mutex};

use mcp_auth::client::{McpClient, Options};
use mcp_auth::demo::{Stack, StackOptions};
use mcp_auth_proto::client::{TokenStore, Tokens};

// spec: CLI-5
#[tokio::test]
async fn credentials_of_an_authorization_server_the_resource_no_longer_names_are_dropped() {
    let s = Stack::start(StackOptions::default())
        .await
        .expect("the stack starts");
    let mut options = Options::headless(s.mcp_url.clone());
    options.reauthorize = 2;
    let mut c = McpClient::new(options, s.transcript()).await.unwrap();
    let resource = c.core.resource().unwrap().as_str().to_owned();
    // Stored from an earlier run, when the server named another AS (its token endpoint here
    // is ours, which refuses the refresh).
    let mut store = TokenStore::default();
    store.insert(Tokens {
        issuer: "https://old-as.example".into(),
        token_endpoint: format!("{}/token", s.issuer),
        resource: resource.clone(),
        resource_indicator: None,
        client_id: "old-client".into(),
        client_secret: None,
        client_secret_post: false,
        access_token: "old-access".into(),
        refresh_token: Some("old-refresh".into()),
        expires_at: None,
        scope: None,
        revocation_endpoint: None,
    });
    let store = Arc::new(Mutex::new(store));
    let sink = Arc::clone(&store);
    c.on_flow_end(move |core| sink.lock().unwrap().sync(core));
    c.resume(store.lock().unwrap().get(&resource).cloned().unwrap());

    // Refused, refresh refused: the client discovers the server's AS and authorizes there.
    c.initialize().await.expect("initialize");
    let issuer = c.core.authorization_server().unwrap().to_owned();
    assert_ne!(issuer, "https://old-as.example");
    let store = store.lock().unwrap().clone();
    let keys: Vec<(&str, &str)> = store.iter().map(|(i, r, _)| (i, r)).collect();
    assert_eq!(keys, [(issuer.as_str(), resource.as_str())]);
    assert_eq!(store.get(&resource), c.core.tokens());
    s.stop().await;
}
