//! The client driver against hostile neighbours, over loopback only: which transport policy a
//! CLI run gets (SSRF, DISC-11), a local process flooding the redirect listener (AZ-11), and
//! secrets in the driver's own error messages (CLI-6). Every wait is bounded.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use mcp_auth::client::{Http, McpClient, Options, UserAgent};
use mcp_auth::demo::{Stack, StackOptions};
use mcp_auth::transcript::Transcript;
use mcp_auth_proto::http::{HttpRequest, Method};
use mcp_auth_proto::uri::HttpPolicy;

/// Every test here finishes well within this, or fails.
const BOUND: Duration = Duration::from_secs(60);

async fn stack() -> Stack {
    Stack::start(StackOptions::default())
        .await
        .expect("the stack starts")
}

/// The transport policy a headless CLI run for `mcp_url` gets.
async fn policy_for(mcp_url: &str) -> HttpPolicy {
    McpClient::new(Options::headless(mcp_url), Transcript::shared())
        .await
        .expect("client")
        .http()
        .policy()
}

// spec: DISC-11, PF-8, PF-16
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

// spec: AZ-11, PF-17
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_local_flood_of_foreign_callbacks_neither_restarts_nor_derails_the_flow() {
    let s = stack().await;
    let transcript = Transcript::shared();
    let mut c = McpClient::new(Options::headless(&s.mcp_url), Arc::clone(&transcript))
        .await
        .expect("client");
    let listener = c.redirect_uri.clone();
    let done = Arc::new(AtomicBool::new(false));
    // A local process: foreign `state` values, one every 5 ms, at most 30, until the flow ends.
    let flood = tokio::spawn({
        let done = Arc::clone(&done);
        async move {
            let http = Http::new(HttpPolicy::AllowLoopbackHttp);
            let mut statuses = Vec::new();
            for i in 0..30 {
                if done.load(Ordering::SeqCst) {
                    break;
                }
                let url = format!("{listener}?code=evil-{i}&state=forged-{i}");
                let answer = http.send(&HttpRequest::new(Method::Get, url)).await;
                statuses.push(answer.map(|r| r.status).unwrap_or(0));
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            statuses
        }
    });
    let tokens = tokio::time::timeout(BOUND, c.authorize())
        .await
        .expect("bounded")
        .expect("the flow completes")
        .expect("a token");
    assert!(!tokens.access_token.is_empty());
    done.store(true, Ordering::SeqCst);
    let statuses = tokio::time::timeout(BOUND, flood)
        .await
        .expect("bounded")
        .expect("flood task");
    assert!(!statuses.is_empty());
    assert!(
        statuses.iter().all(|&s| s == 400),
        "a foreign callback is answered with an error page: {statuses:?}"
    );
    let consent_pages = transcript
        .lock()
        .unwrap()
        .exchanges
        .iter()
        .filter(|e| e.step.starts_with("authorization request"))
        .count();
    assert_eq!(consent_pages, 1, "the authorization was not restarted");
    s.stop().await;
}

// spec: AZ-11, PF-17
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn foreign_callbacks_are_bounded_in_count_and_the_wait_in_time() {
    let s = stack().await;
    // Count: the user never comes back; three foreign callbacks get error pages, the third
    // is one too many and the flow stops.
    let mut options = Options::headless(&s.mcp_url);
    options.user_agent = UserAgent::PrintUrl;
    options.foreign_callbacks = 2;
    let mut c = McpClient::new(options, Transcript::shared())
        .await
        .expect("client");
    let listener = c.redirect_uri.clone();
    let flow = tokio::spawn(async move { c.authorize().await.map(|_| ()) });
    let http = Http::new(HttpPolicy::AllowLoopbackHttp);
    let mut statuses = Vec::new();
    for i in 0..3 {
        // The first ones may come before the flow waits: answered 400 at once; retry.
        for _ in 0..200 {
            let url = format!("{listener}?code=c{i}&state=forged");
            let response =
                tokio::time::timeout(BOUND, http.send(&HttpRequest::new(Method::Get, url)))
                    .await
                    .expect("bounded")
                    .expect("answered");
            let body = String::from_utf8_lossy(&response.body).into_owned();
            if !body.contains("No authorization is waiting") {
                statuses.push(response.status);
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
    assert_eq!(statuses, [400, 400, 400]);
    let result = tokio::time::timeout(BOUND, flow)
        .await
        .expect("bounded")
        .expect("task");
    assert!(
        format!("{result:?}").contains("foreign state"),
        "{result:?}"
    );
    // Time: nobody comes back at all.
    let mut options = Options::headless(&s.mcp_url);
    options.user_agent = UserAgent::PrintUrl;
    options.redirect_timeout = Duration::from_millis(300);
    let mut c = McpClient::new(options, Transcript::shared())
        .await
        .expect("client");
    let started = Instant::now();
    let result = tokio::time::timeout(BOUND, c.authorize())
        .await
        .expect("bounded");
    assert!(format!("{result:?}").contains("no redirect"), "{result:?}");
    assert!(started.elapsed() < Duration::from_secs(20));
    s.stop().await;
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
