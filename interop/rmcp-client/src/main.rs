//! The official Rust MCP SDK client (rmcp 3.11, feature `auth`) against
//! `mcp-auth serve --auto-approve --revision REVISION`.
//!
//! Usage: `rmcp-interop-client MCP_URL REVISION` (2025-06-18, 2025-11-25 or 2026-07-28).
//!
//! 1. Connects without a token under REVISION's lifecycle (`initialize` proposing REVISION, or
//!    the 2026-07-28 `server/discover`), and takes the `WWW-Authenticate` challenge of the 401.
//! 2. rmcp's `OAuthState` authorizes from that challenge: PRM, AS metadata, registration (CIMD
//!    if offered and configured, else DCR), PKCE, `resource`. The `AuthorizationManager` is
//!    made with `new_allowing_private_addresses`, as rmcp refuses loopback metadata otherwise.
//! 3. The headless user: GET the authorization URL without following redirects; `serve
//!    --auto-approve` answers 303 to our loopback redirect URI; GET that, and a one-shot
//!    listener here hands the callback URL (code, state, iss) to rmcp, which checks state and
//!    RFC 9207 `iss` and redeems the code.
//! 4. Connects again with `AuthClient` (the token on every request), asserts the negotiated
//!    protocol version is REVISION, lists the tools and calls `whoami`.
//!
//! Exits non-zero on any failure.

use std::process::ExitCode;

use rmcp::model::{
    CallToolRequestParams, ClientCapabilities, ClientConfig, Implementation, ProtocolVersion,
};
use rmcp::service::{ClientLifecycleMode, ClientServiceExt as _};
use rmcp::transport::StreamableHttpClientTransport;
use rmcp::transport::auth::{AuthClient, AuthorizationManager, AuthorizationRequest, OAuthState};
use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;
use tokio::io::{AsyncBufReadExt as _, AsyncWriteExt as _, BufReader};
use tokio::net::TcpListener;

type Error = Box<dyn std::error::Error + Send + Sync>;

fn revision(name: &str) -> Option<ProtocolVersion> {
    [
        ProtocolVersion::V_2025_06_18,
        ProtocolVersion::V_2025_11_25,
        ProtocolVersion::V_2026_07_28,
    ]
    .into_iter()
    .find(|v| v.as_str() == name)
}

fn client_info(version: &ProtocolVersion) -> ClientConfig {
    ClientConfig::new(
        ClientCapabilities::default(),
        Implementation::new("rmcp interop client", "0"),
    )
    .with_protocol_version(version.clone())
}

/// `initialize` proposing `version`, or `server/discover` for a revision without it.
fn lifecycle(version: &ProtocolVersion) -> ClientLifecycleMode {
    if version.has_initialize() {
        ClientLifecycleMode::Initialize
    } else {
        ClientLifecycleMode::Discover {
            preferred_versions: vec![version.clone()],
        }
    }
}

/// A one-shot loopback listener: the first `GET /callback?...` gives its full URL.
async fn callback_listener() -> Result<(String, tokio::task::JoinHandle<Option<String>>), Error> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let base = format!("http://{}", listener.local_addr()?);
    let redirect_uri = format!("{base}/callback");
    let task = tokio::spawn(async move {
        loop {
            let (stream, _) = listener.accept().await.ok()?;
            let mut stream = BufReader::new(stream);
            let mut line = String::new();
            stream.read_line(&mut line).await.ok()?;
            let target = line.split(' ').nth(1).unwrap_or("/").to_owned();
            loop {
                let mut header = String::new();
                if stream.read_line(&mut header).await.ok()? <= 2 {
                    break;
                }
            }
            let ok = line.starts_with("GET ") && target.starts_with("/callback?");
            let answer: &[u8] = if ok {
                b"HTTP/1.1 200 OK\r\ncontent-length: 4\r\nconnection: close\r\n\r\ndone"
            } else {
                b"HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
            };
            let _ = stream.get_mut().write_all(answer).await;
            if ok {
                return Some(format!("{base}{target}"));
            }
        }
    });
    Ok((redirect_uri, task))
}

async fn run(url: &str, version: ProtocolVersion) -> Result<(), Error> {
    let info = client_info(&version);
    let config = || {
        let mut config = StreamableHttpClientTransportConfig::with_uri(url.to_owned());
        config.allow_stateless = !version.has_initialize();
        config
    };

    // 1. Unauthenticated: the 401's challenge.
    let probe = StreamableHttpClientTransport::with_client(reqwest::Client::new(), config());
    let challenge = match info
        .clone()
        .serve_with_lifecycle(probe, lifecycle(&version))
        .await
    {
        Ok(_) => return Err("the MCP server answered without a token".into()),
        Err(e) => e
            .auth_challenge()
            .ok_or_else(|| format!("no challenge in {e}"))?
            .to_owned(),
    };
    println!("rmcp: challenge {challenge}");

    // 2. Authorize from it.
    let (redirect_uri, callback) = callback_listener().await?;
    let manager = AuthorizationManager::new_allowing_private_addresses(url).await?;
    let mut state = OAuthState::Unauthorized(manager);
    state
        .start_authorization(
            AuthorizationRequest::new(redirect_uri.clone())
                .with_client_name("rmcp interop client")
                .with_challenge(challenge),
        )
        .await?;
    let authorization_url = state.get_authorization_url().await?;

    // 3. The headless user.
    let browser = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()?;
    let answer = browser.get(&authorization_url).send().await?;
    let location = answer
        .headers()
        .get("location")
        .and_then(|l| l.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    if !matches!(answer.status().as_u16(), 302 | 303) || !location.starts_with(&redirect_uri) {
        return Err(format!(
            "authorization endpoint answered {} {location}",
            answer.status()
        )
        .into());
    }
    browser.get(&location).send().await?;
    let callback_url = tokio::time::timeout(std::time::Duration::from_secs(10), callback)
        .await??
        .ok_or("no callback")?;
    // Checks state and `iss`, redeems the code, and moves to `Authorized`.
    state.handle_callback_url(&callback_url).await?;
    let manager = state.into_authorization_manager().ok_or("not authorized")?;

    // 4. With the token.
    let client = AuthClient::new(reqwest::Client::new(), manager);
    let transport = StreamableHttpClientTransport::with_client(client, config());
    let service = info
        .serve_with_lifecycle(transport, lifecycle(&version))
        .await?;
    let negotiated = service
        .peer_info()
        .map(|p| p.protocol_version.clone())
        .ok_or("no server info")?;
    let how = if version.has_initialize() {
        "initialize"
    } else {
        "server/discover"
    };
    println!("rmcp: negotiated {negotiated} ({how})");
    if negotiated != version {
        return Err(format!("negotiated {negotiated}, expected {version}").into());
    }
    let tools = service.list_all_tools().await?;
    let mut names: Vec<&str> = tools.iter().map(|t| t.name.as_ref()).collect();
    names.sort_unstable();
    println!("rmcp: tools {names:?}");
    let result = service
        .call_tool(CallToolRequestParams::new("whoami"))
        .await?;
    let text: String = result
        .content
        .iter()
        .filter_map(|c| c.as_text().map(|t| t.text.clone()))
        .collect();
    println!("rmcp: whoami -> {text}");
    let claims: serde_json::Value = serde_json::from_str(&text)?;
    if !names.contains(&"whoami") || !claims["subject"].is_string() {
        return Err("unexpected answer".into());
    }
    let _ = service.cancel().await;
    Ok(())
}

#[tokio::main]
async fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [url, name] = args.as_slice() else {
        eprintln!("usage: rmcp-interop-client MCP_URL REVISION");
        return ExitCode::from(2);
    };
    let Some(version) = revision(name) else {
        eprintln!("unknown revision {name}");
        return ExitCode::from(2);
    };
    match run(url, version).await {
        Ok(()) => {
            println!("rmcp: OK");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("rmcp: {e}");
            ExitCode::FAILURE
        }
    }
}
