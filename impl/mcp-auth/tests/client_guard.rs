//! The client driver against hostile neighbours, over loopback only: which transport policy a
//! CLI run gets (SSRF, DISC-11), a local process flooding the redirect listener (AZ-11), and
//! secrets in the driver's own error messages (CLI-6). Every wait is bounded.

use mcp_auth::client::{McpClient, Options};
use mcp_auth::transcript::Transcript;
use mcp_auth_proto::uri::HttpPolicy;

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
