//! What the durable-store tests (`durable.rs`, `postgres.rs`, `sigkill.rs`) share: plain HTTP to
//! the servers over loopback, the refresh-token request, and `serve` started as a process.
//! Each test file includes it with `#[path]`; not every file uses every function.
#![allow(dead_code)]

use std::ffi::OsString;
use std::path::PathBuf;
use std::time::Duration;

use mcp_auth::client::{Http, McpClient, Options, initialize_params};
use mcp_auth::demo::{Stack, StackOptions};
use mcp_auth_proto::http::{HttpRequest, HttpResponse, Method};
use mcp_auth_proto::uri::HttpPolicy;
use serde_json::{Value, json};

/// `host:port` of a URL.
pub fn host_port(url: &str) -> String {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    rest.split('/').next().unwrap_or_default().to_owned()
}

/// Send over loopback http; the server must answer.
pub async fn send(request: &HttpRequest) -> HttpResponse {
    Http::new(HttpPolicy::AllowLoopbackHttp)
        .send(request)
        .await
        .expect("the server answers")
}

/// The status of an MCP `initialize` with `token` at `url`.
pub async fn initialize(url: &str, token: &str) -> u16 {
    let body =
        json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": initialize_params()});
    let request = mcp_auth_proto::client::mcp_request(
        url,
        "initialize",
        serde_json::to_vec(&body).unwrap_or_default(),
        None,
        Some(&format!("Bearer {token}")),
    );
    send(&request).await.status
}

/// The refresh-token grant at `issuer`'s token endpoint: the status and the JSON answer.
pub async fn refresh(issuer: &str, client_id: &str, refresh_token: &str) -> (u16, Value) {
    let request = HttpRequest::new(Method::Post, format!("{issuer}/token"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(mcp_auth_proto::form::encode([
            ("grant_type", "refresh_token"),
            ("refresh_token", refresh_token),
            ("client_id", client_id),
        ]));
    let response = send(&request).await;
    (
        response.status,
        serde_json::from_slice(&response.body).unwrap_or_default(),
    )
}

/// The new refresh token of a successful [`refresh`].
pub fn refresh_token_of(answer: &(u16, Value)) -> String {
    assert_eq!(answer.0, 200, "{}", answer.1);
    answer.1["refresh_token"]
        .as_str()
        .expect("a rotated refresh token")
        .to_owned()
}

/// Register a public client at `issuer`.
pub async fn register(issuer: &str) -> HttpResponse {
    let body = json!({"redirect_uris": ["http://127.0.0.1:9/cb"],
        "token_endpoint_auth_method": "none", "client_name": "durable"});
    let request = HttpRequest::new(Method::Post, format!("{issuer}/register"))
        .header("content-type", "application/json")
        .body(serde_json::to_vec(&body).unwrap_or_default());
    send(&request).await
}

/// `serve --auto-approve` at the given addresses with `store` (e.g. `--data DIR` or
/// `--database-url URL`), as a process killed when dropped: the child, the issuer, the MCP URL.
pub async fn serve_process(
    store: &[OsString],
    as_addr: &str,
    rs_addr: &str,
) -> (tokio::process::Child, String, String) {
    use tokio::io::AsyncBufReadExt as _;
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_mcp-auth"))
        .args([
            "serve",
            "--auto-approve",
            "--as-addr",
            as_addr,
            "--rs-addr",
            rs_addr,
        ])
        .args(store)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("serve runs");
    let mut lines = tokio::io::BufReader::new(child.stdout.take().expect("stdout")).lines();
    let (mut mcp, mut issuer) = (None, None);
    while mcp.is_none() || issuer.is_none() {
        let line = tokio::time::timeout(Duration::from_secs(30), lines.next_line())
            .await
            .expect("serve prints its URLs in time")
            .expect("stdout")
            .expect("serve prints its URLs");
        if let Some(u) = line.strip_prefix("MCP server: ") {
            mcp = Some(u.to_owned());
        } else if let Some(u) = line.strip_prefix("Authorization server: ") {
            issuer = Some(u.to_owned());
        }
    }
    (child, issuer.unwrap_or_default(), mcp.unwrap_or_default())
}

/// Where a stack keeps its AS's state.
#[derive(Clone, Debug)]
pub enum Keeps {
    /// A data directory (SQLite).
    Data(PathBuf),
    /// A PostgreSQL database.
    Database(String),
}

impl Keeps {
    /// An auto-approving stack on this store, at the given addresses (`127.0.0.1:0` for new
    /// ones).
    pub async fn stack(&self, as_addr: &str, rs_addr: &str) -> Stack {
        let options = StackOptions::default()
            .with_auto_approve(true)
            .with_as_addr(as_addr)
            .with_rs_addr(rs_addr);
        let options = match self {
            Self::Data(dir) => options.with_data(Some(dir.clone())),
            Self::Database(url) => options.with_database_url(Some(url.clone())),
        };
        Stack::start(options).await.expect("the stack starts")
    }
}

/// A stack is stopped and a new one started on the same store (and addresses): the client is
/// still known, the signing key is the same, tokens issued before still validate, the current
/// refresh token works, a rotated-out one is refused and revokes the family, and that
/// revocation survives the next restart.
pub async fn restart_forgets_nothing(keeps: &Keeps) {
    let s1 = keeps.stack("127.0.0.1:0", "127.0.0.1:0").await;
    let (issuer, mcp_url) = (s1.issuer.clone(), s1.mcp_url.clone());
    let mut c = McpClient::new(Options::headless(mcp_url.clone()), s1.transcript())
        .await
        .expect("client");
    let tokens = c
        .authorize()
        .await
        .expect("authorized")
        .expect("the server asked for a token");
    let client_id = tokens.client_id.clone();
    let rt1 = tokens.refresh_token.clone().expect("a refresh token");
    let second = refresh(&issuer, &client_id, &rt1).await;
    let rt2 = refresh_token_of(&second);
    let at2 = second.1["access_token"].as_str().expect("at").to_owned();
    let kid_before = s1.as_state.with_server(|s| s.signer().kid().to_owned());
    s1.stop().await;

    let s2 = keeps.stack(&host_port(&issuer), &host_port(&mcp_url)).await;
    assert_eq!(s2.issuer, issuer);
    // The client is known and the signing key is the same one.
    assert!(
        s2.as_state
            .with_server(|s| s.clients().any(|(id, _)| id.0 == client_id))
    );
    assert_eq!(
        s2.as_state.with_server(|s| s.signer().kid().to_owned()),
        kid_before
    );
    // Access tokens issued before the restart still validate at the new MCP server.
    assert_eq!(initialize(&mcp_url, &tokens.access_token).await, 200);
    assert_eq!(initialize(&mcp_url, &at2).await, 200);
    // The current refresh token works ...
    let rt3 = refresh_token_of(&refresh(&issuer, &client_id, &rt2).await);
    // ... a rotated-out one is refused and revokes the family, the newest token included.
    let replay = refresh(&issuer, &client_id, &rt1).await;
    assert_eq!(
        (replay.0, replay.1["error"].as_str()),
        (400, Some("invalid_grant"))
    );
    let after = refresh(&issuer, &client_id, &rt3).await;
    assert_eq!(after.1["error"], "invalid_grant");
    s2.stop().await;

    // The revocation was committed too.
    let s3 = keeps.stack(&host_port(&issuer), &host_port(&mcp_url)).await;
    let still = refresh(&issuer, &client_id, &rt3).await;
    assert_eq!(still.1["error"], "invalid_grant");
    assert!(
        s3.as_state
            .with_server(|s| s.grants().all(|(_, g)| g.revoked))
    );
    s3.stop().await;
}

/// Two servers on one store: a refresh token rotated at one and presented at the other (whose
/// memory is behind) is answered as a replay: `invalid_grant`, and the family is revoked in the
/// store, so the first server refuses the newest token too.
pub async fn refresh_race_revokes_the_family(keeps: &Keeps) {
    let a = keeps.stack("127.0.0.1:0", "127.0.0.1:0").await;
    let mut c = McpClient::new(Options::headless(a.mcp_url.clone()), a.transcript())
        .await
        .expect("client");
    let tokens = c.authorize().await.expect("authorized").expect("token");
    let client_id = tokens.client_id.clone();
    let rt1 = tokens.refresh_token.clone().expect("rt");
    // b loads the store now: it knows the client and the family at rt1.
    let b = keeps.stack("127.0.0.1:0", "127.0.0.1:0").await;
    let rt2 = refresh_token_of(&refresh(&a.issuer, &client_id, &rt1).await);
    let at_b = refresh(&b.issuer, &client_id, &rt1).await;
    assert_eq!(
        (at_b.0, at_b.1["error"].as_str()),
        (400, Some("invalid_grant"))
    );
    let at_a = refresh(&a.issuer, &client_id, &rt2).await;
    assert_eq!(
        (at_a.0, at_a.1["error"].as_str()),
        (400, Some("invalid_grant"))
    );
    a.stop().await;
    b.stop().await;
}
