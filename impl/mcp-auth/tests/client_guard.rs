//! The client driver against hostile neighbours, over loopback only: which transport policy a
//! CLI run gets (SSRF, DISC-11), a local process flooding the redirect listener (AZ-11), and
//! secrets in the driver's own error messages (CLI-6). Every wait is bounded.

use std::time::Duration;

use mcp_auth::client::{Http, McpClient, Options};
use mcp_auth::transcript::Transcript;
use mcp_auth_proto::http::{HttpRequest, Method};
use mcp_auth_proto::uri::HttpPolicy;

/// Every test here finishes well within this, or fails.
const BOUND: Duration = Duration::from_secs(60);

/// The transport policy a headless CLI run for `mcp_url` gets.
async fn policy_for(mcp_url: &str) -> HttpPolicy {
    McpClient::new(Options::headless(mcp_url), Transcript::shared())
        .await
        .expect("client")
        .http()
        .policy()
}

// spec: DISC-11, PF-8, PF-13
#[tokio::test]
async fn plain_http_is_allowed_only_when_the_mcp_url_is_loopback_http() {
    for (url, policy) in [
        ("https://mcp.example.com/mcp", HttpPolicy::HttpsOnly),
        ("https://127.0.0.1:8443/mcp", HttpPolicy::HttpsOnly),
        ("http://127.0.0.1:9/mcp", HttpPolicy::AllowLoopbackHttp),
    ] {
        assert_eq!(policy_for(url).await, policy, "{url}");
    }
}

// spec: CLI-6
#[tokio::test]
async fn a_failed_request_is_reported_without_the_secrets_of_its_url() {
    // A port nobody listens on (bound, then released).
    let port = {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        l.local_addr().expect("addr").port()
    };
    let code = "code-0123456789abcdefghijklmnop";
    let state = "state-0123456789abcdefghijklmno";
    let url = format!("http://127.0.0.1:{port}/callback?code={code}&state={state}");
    for policy in [HttpPolicy::AllowLoopbackHttp, HttpPolicy::HttpsOnly] {
        let error = tokio::time::timeout(
            BOUND,
            Http::new(policy).send(&HttpRequest::new(Method::Get, url.clone())),
        )
        .await
        .expect("bounded")
        .expect_err("nothing listens");
        let text = format!("{error} {error:?}");
        assert!(text.contains("/callback"), "{text}");
        assert!(
            !text.contains(code) && !text.contains(state),
            "secret in the error: {text}"
        );
    }
}
