//! The authorization server's pages in a real browser: headless Chromium (Debian's `chromium`,
//! driven through `chromedriver` with fantoccini, `support::browser`) opens an authorization URL
//! and presses Approve or Deny, and the client's loopback listener must receive the answer.
//! Tests that post the consent form with an HTTP library cannot see what only a browser
//! enforces: CSP `form-action` (which Chromium applies to the redirect after the POST too),
//! `frame-ancestors` and `X-Frame-Options`.
//!
//! Needs Chromium and chromedriver: `cargo xtask install` (`cargo xtask test` installs them, then
//! runs every test). Without them these tests fail, they never skip.
//! `MCP_AUTH_SCREENSHOTS=1` writes the consent page to `docs/img/consent.png`; otherwise the
//! screenshot goes to a temp dir, so that a normal run rewrites no committed file.

mod support;

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use mcp_auth::client::Http;
use mcp_auth::demo::{Stack, StackOptions};
use mcp_auth::mcp::TOOLS_SCOPE;
use mcp_auth::net::OsEntropy;
use mcp_auth_proto::http::{HttpRequest, HttpResponse, Method};
use mcp_auth_proto::pkce::{CodeVerifier, S256};
use mcp_auth_proto::uri::HttpPolicy;
use serde_json::{Value, json};
use support::browser::{Browser, temp_dir};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpListener;
use tokio::sync::mpsc;

/// One Chromium at a time: the machines have two cores.
static ONE_BROWSER: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// The user the browser signs in as.
const USER: &str = "alice";
/// That user's password.
const PASSWORD: &str = "correct horse battery staple";
/// Another user (the other party of the consent CSRF test).
const OTHER: &str = "bob";
/// That user's password.
const OTHER_PASSWORD: &str = "bob's own password";

/// How long the listener waits for the browser to arrive at the redirect URI. A working
/// redirect takes milliseconds.
const CALLBACK_WAIT: Duration = Duration::from_secs(10);

// ---------------------------------------------------------------------------------------------
// The client side: a loopback redirect listener, registration, the authorization URL
// ---------------------------------------------------------------------------------------------

/// The test's client listener on `127.0.0.1:0`, its own origin: `GET /callback?…` answers 200
/// `done` and hands the query to the test; `GET /frame` serves [`Listener::frame_page`];
/// `GET /frameable` a page that may be framed (the framing test's positive control).
struct Listener {
    origin: String,
    callbacks: mpsc::UnboundedReceiver<String>,
    frame_page: Arc<Mutex<String>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Listener {
    fn drop(&mut self) {
        self.task.abort();
    }
}

const FRAMEABLE: &str = "<!doctype html><title>frameable</title>\
    <form><button name=\"decision\" value=\"approve\">Approve</button></form>";

async fn listener() -> Listener {
    let tcp = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let origin = format!("http://{}", tcp.local_addr().unwrap());
    let (tx, callbacks) = mpsc::unbounded_channel();
    let frame_page = Arc::new(Mutex::new(String::new()));
    let page = Arc::clone(&frame_page);
    let task = tokio::spawn(async move {
        while let Ok((mut stream, _)) = tcp.accept().await {
            let tx = tx.clone();
            let page = Arc::clone(&page);
            tokio::spawn(async move {
                let mut head = Vec::new();
                let mut buf = [0u8; 4096];
                while !head.windows(4).any(|w| w == b"\r\n\r\n") && head.len() < 64 * 1024 {
                    match tokio::time::timeout(Duration::from_secs(5), stream.read(&mut buf)).await
                    {
                        Ok(Ok(n)) if n > 0 => head.extend_from_slice(&buf[..n]),
                        _ => return,
                    }
                }
                let head = String::from_utf8_lossy(&head);
                let target = head.split(' ').nth(1).unwrap_or("");
                let (path, query) = target.split_once('?').unwrap_or((target, ""));
                let (status, kind, body) = match path {
                    "/callback" => {
                        let _ = tx.send(query.to_owned());
                        ("200 OK", "text/plain", "done".to_owned())
                    }
                    "/frame" => (
                        "200 OK",
                        "text/html",
                        page.lock().unwrap_or_else(|e| e.into_inner()).clone(),
                    ),
                    "/frameable" => ("200 OK", "text/html", FRAMEABLE.to_owned()),
                    _ => ("404 Not Found", "text/plain", "not found".to_owned()),
                };
                let answer = format!(
                    "HTTP/1.1 {status}\r\ncontent-type: {kind}; charset=utf-8\r\n\
                     content-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = stream.write_all(answer.as_bytes()).await;
                let _ = stream.shutdown().await;
            });
        }
    });
    Listener {
        origin,
        callbacks,
        frame_page,
        task,
    }
}

impl Listener {
    fn redirect_uri(&self) -> String {
        format!("{}/callback", self.origin)
    }

    /// The next authorization response's parameters, if one arrives within [`CALLBACK_WAIT`].
    async fn callback(&mut self) -> Option<Vec<(String, String)>> {
        let query = tokio::time::timeout(CALLBACK_WAIT, self.callbacks.recv())
            .await
            .ok()??;
        Some(
            form_urlencoded::parse(query.as_bytes())
                .into_owned()
                .collect(),
        )
    }
}

fn param<'a>(params: &'a [(String, String)], name: &str) -> Option<&'a str> {
    params
        .iter()
        .find(|(n, _)| n == name)
        .map(|(_, v)| v.as_str())
}

/// The test's HTTP client: trusts the stack's throwaway CA when it speaks https.
static ROOTS: Mutex<Option<rustls::RootCertStore>> = Mutex::new(None);

async fn send(request: HttpRequest) -> HttpResponse {
    let roots = ROOTS.lock().unwrap_or_else(|e| e.into_inner()).clone();
    let http = match roots {
        Some(roots) => Http::with_roots(HttpPolicy::AllowLoopbackHttp, roots),
        None => Http::new(HttpPolicy::AllowLoopbackHttp),
    };
    http.send(&request).await.expect("the server answers")
}

fn json_body(response: &HttpResponse) -> Value {
    serde_json::from_slice(&response.body).unwrap_or_default()
}

/// An authorization request built by hand, as a client would, and what the client keeps.
struct AuthorizationRequest {
    url: String,
    state: String,
    verifier: CodeVerifier,
    client_id: String,
    redirect_uri: String,
    token_endpoint: String,
}

impl AuthorizationRequest {
    /// The token request a client sends with the code its callback received (its verifier,
    /// client id and redirect URI), for `resource`.
    async fn redeem(&self, code: &str, resource: &str) -> HttpResponse {
        let body = form_urlencoded::Serializer::new(String::new())
            .append_pair("grant_type", "authorization_code")
            .append_pair("code", code)
            .append_pair("redirect_uri", &self.redirect_uri)
            .append_pair("client_id", &self.client_id)
            .append_pair("code_verifier", self.verifier.as_str())
            .append_pair("resource", resource)
            .finish();
        send(
            HttpRequest::new(Method::Post, &self.token_endpoint)
                .header("content-type", "application/x-www-form-urlencoded")
                .body(body),
        )
        .await
    }
}

/// Register a public client over HTTP (RFC 7591) with the listener's redirect URI, and build
/// its authorization URL: code, PKCE S256, state, resource, scope.
async fn authorization_request(stack: &Stack, listener: &Listener) -> AuthorizationRequest {
    let iss = &stack.issuer;
    let metadata = json_body(
        &send(HttpRequest::new(
            Method::Get,
            format!("{iss}/.well-known/oauth-authorization-server"),
        ))
        .await,
    );
    let endpoint = |name: &str| {
        metadata[name]
            .as_str()
            .unwrap_or_else(|| panic!("AS metadata has {name}: {metadata}"))
            .to_owned()
    };
    let redirect_uri = listener.redirect_uri();
    let registration = send(
        HttpRequest::new(Method::Post, endpoint("registration_endpoint"))
            .header("content-type", "application/json")
            .body(
                json!({
                    "client_name": "browser test client",
                    "redirect_uris": [redirect_uri],
                    "token_endpoint_auth_method": "none",
                    "grant_types": ["authorization_code"],
                    "response_types": ["code"],
                })
                .to_string(),
            ),
    )
    .await;
    let registered = json_body(&registration);
    assert_eq!(registration.status, 201, "registration: {registered}");
    let client_id = registered["client_id"].as_str().unwrap().to_owned();

    let verifier = CodeVerifier::generate(&mut OsEntropy);
    let state = mcp_auth_proto::entropy::mint(&mut OsEntropy);
    let query = form_urlencoded::Serializer::new(String::new())
        .append_pair("response_type", "code")
        .append_pair("client_id", &client_id)
        .append_pair("redirect_uri", &redirect_uri)
        .append_pair("code_challenge", verifier.challenge().as_str())
        .append_pair("code_challenge_method", S256)
        .append_pair("state", &state)
        .append_pair("resource", &stack.mcp_url)
        .append_pair("scope", TOOLS_SCOPE)
        .finish();
    AuthorizationRequest {
        url: format!("{}?{query}", endpoint("authorization_endpoint")),
        state,
        verifier,
        client_id,
        redirect_uri,
        token_endpoint: endpoint("token_endpoint"),
    }
}

// ---------------------------------------------------------------------------------------------
// The user's side, in the browser
// ---------------------------------------------------------------------------------------------

/// The consent form's buttons.
const APPROVE: &str = "button[value=approve]";
const DENY: &str = "button[value=deny]";

/// If the page shows a login form (`input[name=username]`, `input[name=password]`, a submit
/// button), sign in (chromedriver's click waits for the navigation it starts; the caller then
/// waits for what it expects next); otherwise do nothing.
async fn fill_login_if_shown(b: &Browser, user: &str, password: &str) -> Result<(), String> {
    if b.find_all("input[name=username]").await?.is_empty() {
        return Ok(());
    }
    b.type_into("input[name=username]", user).await?;
    b.type_into("input[name=password]", password).await?;
    b.click("form [type=submit]").await
}

/// Where the consent page's screenshot goes: `docs/img/consent.png` with
/// `MCP_AUTH_SCREENSHOTS=1`, else a temp dir.
fn screenshot_path(name: &str) -> PathBuf {
    if std::env::var("MCP_AUTH_SCREENSHOTS").as_deref() == Ok("1") {
        PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("../../docs/img")
            .join(name)
    } else {
        temp_dir("mcp-auth-screenshots").join(name)
    }
}

/// Open the authorization URL, log in if asked, and press `button` on the consent page
/// (taking the screenshots of both pages first if `screenshot` is given).
async fn decide_in_browser(
    b: &Browser,
    url: &str,
    button: &str,
    screenshot: Option<&str>,
) -> Result<(), String> {
    b.goto(url).await?;
    if screenshot.is_some() {
        b.wait_for("input[name=password]").await?;
        b.screenshot(&screenshot_path("login.png")).await?;
    }
    fill_login_if_shown(b, USER, PASSWORD).await?;
    b.wait_for(button).await?;
    if let Some(name) = screenshot {
        b.screenshot(&screenshot_path(name)).await?;
    }
    b.click(button).await
}

/// Start a browser, or fail the test naming `cargo xtask install`.
async fn browser() -> Browser {
    Browser::start().await.unwrap_or_else(|e| panic!("{e}"))
}

/// The accounts of the test stack: alice and bob, argon2id with small costs (a debug build
/// verifies them quickly).
fn users() -> mcp_auth_proto::server::Users {
    let record = |name: &str, display: &str, password: &str| mcp_auth_proto::server::UserRecord {
        username: name.into(),
        display_name: display.into(),
        password_hash: mcp_auth_proto::server::users::hash_password(
            password,
            b"browser-test-salt",
            1024,
            1,
        )
        .expect("hash"),
    };
    mcp_auth_proto::server::Users::new([
        record(USER, "Alice Liddell", PASSWORD),
        record(OTHER, "Bob", OTHER_PASSWORD),
    ])
    .expect("valid accounts")
}

/// A stack with accounts (login before consent), over http, or https with a throwaway CA
/// that the test's HTTP client trusts.
async fn stack_with(tls: Option<&mcp_auth::tls::LocalCa>) -> Stack {
    *ROOTS.lock().unwrap_or_else(|e| e.into_inner()) = tls.map(|ca| ca.roots.clone());
    Stack::start(
        StackOptions::default()
            .with_users(Some(users()))
            .with_tls(tls.map(mcp_auth::tls::LocalCa::server_tls)),
    )
    .await
    .expect("the stack starts")
}

async fn stack() -> Stack {
    stack_with(None).await
}

/// The authorization response a client received after the user's decision in the browser.
struct Decided {
    stack: Stack,
    request: AuthorizationRequest,
    params: Vec<(String, String)>,
}

/// A fresh stack, listener and registered client; the browser opens the authorization URL and
/// presses `button` on the consent page. Fails with the browser's URL, console and a
/// screenshot if a step fails or the listener receives nothing.
async fn decide(button: &str, screenshot: Option<&str>) -> Decided {
    decide_on(None, button, screenshot).await
}

/// [`decide`], over https with `ca`'s certificates when given (Chromium then runs with
/// `--ignore-certificate-errors`, for this throwaway CA only).
async fn decide_on(
    ca: Option<&mcp_auth::tls::LocalCa>,
    button: &str,
    screenshot: Option<&str>,
) -> Decided {
    let _one = ONE_BROWSER.lock().await;
    let stack = stack_with(ca).await;
    let mut listener = listener().await;
    let request = authorization_request(&stack, &listener).await;
    let b = match ca {
        Some(_) => Browser::start_with(&["--ignore-certificate-errors"])
            .await
            .unwrap_or_else(|e| panic!("{e}")),
        None => browser().await,
    };
    if let Err(e) = decide_in_browser(&b, &request.url, button, screenshot).await {
        panic!("{}", b.report(&e).await);
    }
    let Some(params) = listener.callback().await else {
        panic!(
            "{}",
            b.report(&format!(
                "after pressing {button} on the consent page, the client's redirect URI {} \
                 received nothing within {CALLBACK_WAIT:?}",
                request.redirect_uri
            ))
            .await
        )
    };
    b.close().await;
    Decided {
        stack,
        request,
        params,
    }
}

// ---------------------------------------------------------------------------------------------
// Tests
// ---------------------------------------------------------------------------------------------

// spec: AZ-10, AZ-21, AZ-25, AZ-30
#[tokio::test]
async fn login_and_approve_in_a_real_browser_delivers_the_code() {
    let Decided {
        stack: s,
        request,
        params,
    } = decide(APPROVE, Some("consent.png")).await;

    assert_eq!(param(&params, "state"), Some(request.state.as_str()));
    assert_eq!(param(&params, "iss"), Some(s.issuer.as_str()));
    assert_eq!(param(&params, "error"), None, "{params:?}");
    let code = param(&params, "code").expect("the response carries a code");

    // The flow completes: the code and the verifier give a token.
    let token = request.redeem(code, &s.mcp_url).await;
    let tokens = json_body(&token);
    assert_eq!(token.status, 200, "token: {tokens}");
    assert!(
        tokens["access_token"]
            .as_str()
            .is_some_and(|t| !t.is_empty())
    );
    s.stop().await;
}

// spec: AZ-10, AZ-21, AZ-25
#[tokio::test]
async fn deny_in_a_real_browser_returns_access_denied() {
    let Decided {
        stack: s,
        request,
        params,
    } = decide(DENY, None).await;

    assert_eq!(param(&params, "error"), Some("access_denied"), "{params:?}");
    assert_eq!(param(&params, "state"), Some(request.state.as_str()));
    assert_eq!(param(&params, "iss"), Some(s.issuer.as_str()));
    assert_eq!(param(&params, "code"), None);
    s.stop().await;
}

// spec: AZ-26
#[tokio::test]
async fn the_consent_page_cannot_be_framed() {
    let _one = ONE_BROWSER.lock().await;
    let s = stack().await;
    let l = listener().await;
    let request = authorization_request(&s, &l).await;
    // Frame 0: the authorization URL (another origin: the AS). Frame 1: a frameable page with
    // the same button, which shows that a button inside a rendered frame is found. Neither the
    // consent form nor (once there is one) the login form may render in frame 0.
    *l.frame_page.lock().unwrap() = format!(
        "<!doctype html><title>framing</title>\
         <iframe src=\"{}\" width=\"600\" height=\"400\"></iframe>\
         <iframe src=\"/frameable\" width=\"300\" height=\"100\"></iframe>",
        mcp_auth_proto::server::http::escape(&request.url)
    );
    let b = browser().await;
    let frame_page = format!("{}/frame", l.origin);
    let result = async {
        b.goto(&frame_page).await?;
        let mut found = Vec::new();
        for index in [0, 1] {
            b.enter_frame(index).await?;
            // The load event of the top page waited for both frames; be sure anyway.
            let deadline = std::time::Instant::now() + support::browser::STEP;
            while b.execute("return document.readyState").await? != json!("complete") {
                if std::time::Instant::now() > deadline {
                    return Err(format!("frame {index} never finished loading"));
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            let form = format!("{APPROVE}, input[name=password]");
            found.push(!b.find_all(&form).await?.is_empty());
            b.enter_top().await?;
        }
        Ok(found)
    }
    .await;
    let found = match result {
        Ok(found) => found,
        Err(e) => panic!("{}", b.report(&e).await),
    };
    if found != [false, true] {
        panic!(
            "{}",
            b.report(&format!(
                "consent or login form in [AS frame, control frame]: {found:?}, expected [false, true]"
            ))
            .await
        );
    }
    b.close().await;
    s.stop().await;
}

/// The subject of a code the stack issued.
fn code_subject(stack: &Stack, code: &str) -> Option<String> {
    stack.as_state.with_server(|s| {
        s.code_state(code).map(|state| match state {
            mcp_auth_proto::server::CodeState::Issued(b)
            | mcp_auth_proto::server::CodeState::Redeemed { binding: b, .. } => b.subject.0.clone(),
        })
    })
}

// spec: AZ-30, GEN-7
#[tokio::test]
async fn over_https_the_user_logs_in_and_the_code_is_theirs() {
    let ca = mcp_auth::tls::LocalCa::new().expect("a throwaway CA");
    let Decided {
        stack: s,
        request,
        params,
    } = decide_on(Some(&ca), APPROVE, None).await;
    assert!(s.issuer.starts_with("https://"), "{}", s.issuer);
    assert!(request.url.starts_with("https://"));
    assert_eq!(param(&params, "iss"), Some(s.issuer.as_str()));
    let code = param(&params, "code").expect("a code");
    assert_eq!(code_subject(&s, code).as_deref(), Some(USER));
    s.stop().await;
}

// spec: SEC-14
#[tokio::test]
async fn a_wrong_password_in_a_real_browser_gets_no_further() {
    let _one = ONE_BROWSER.lock().await;
    let s = stack().await;
    let mut l = listener().await;
    let request = authorization_request(&s, &l).await;
    let b = browser().await;
    let result = async {
        b.goto(&request.url).await?;
        fill_login_if_shown(&b, USER, "not the password").await?;
        let alert = b.wait_for("p.error").await?;
        let text = alert.text().await.map_err(|e| e.to_string())?;
        if !b.find_all(APPROVE).await?.is_empty() {
            return Err("the consent page after a wrong password".to_owned());
        }
        Ok::<_, String>(text)
    }
    .await;
    let text = match result {
        Ok(t) => t,
        Err(e) => panic!("{}", b.report(&e).await),
    };
    assert_eq!(text, "Wrong username or password.");
    assert!(
        tokio::time::timeout(Duration::from_millis(500), l.callbacks.recv())
            .await
            .is_err(),
        "nothing reaches the client"
    );
    b.close().await;
    s.stop().await;
}

// spec: AZ-29
#[tokio::test]
async fn a_consent_form_with_another_sessions_id_and_csrf_mints_nothing() {
    let _one = ONE_BROWSER.lock().await;
    let s = stack().await;
    let mut l = listener().await;
    let request = authorization_request(&s, &l).await;
    // The other party (bob, over plain HTTP with its own cookie) opens an authorization and
    // keeps its consent form's id and csrf.
    let login = send(HttpRequest::new(Method::Get, &request.url)).await;
    let cookie = login
        .header_value("set-cookie")
        .and_then(|c| c.split(';').next())
        .expect("a session")
        .to_owned();
    let form = mcp_auth::client::ConsentForm::parse(&String::from_utf8_lossy(&login.body))
        .expect("the login form");
    let body = form_urlencoded::Serializer::new(String::new())
        .append_pair("id", &form.id)
        .append_pair("csrf", &form.csrf)
        .append_pair("username", OTHER)
        .append_pair("password", OTHER_PASSWORD)
        .finish();
    let logged_in = send(
        HttpRequest::new(Method::Post, format!("{}/login", s.issuer))
            .header("content-type", "application/x-www-form-urlencoded")
            .header("cookie", cookie)
            .body(body),
    )
    .await;
    assert_eq!(logged_in.status, 303);
    let bobs = logged_in
        .header_value("set-cookie")
        .and_then(|c| c.split(';').next())
        .expect("bob's session")
        .to_owned();
    let consent = send(
        HttpRequest::new(
            Method::Get,
            format!(
                "{}/{}",
                s.issuer,
                logged_in.header_value("location").unwrap()
            ),
        )
        .header("cookie", bobs),
    )
    .await;
    let bobs_form = mcp_auth::client::ConsentForm::parse(&String::from_utf8_lossy(&consent.body))
        .expect("bob's consent form");
    // Alice, in the browser, logs in and is shown her own consent page; the form she submits
    // carries bob's id and csrf instead of hers (what a forged form would post).
    let b = browser().await;
    let result = async {
        b.goto(&request.url).await?;
        fill_login_if_shown(&b, USER, PASSWORD).await?;
        b.wait_for(APPROVE).await?;
        b.execute(&format!(
            "document.querySelector('form[action=consent] input[name=id]').value = {};\
             document.querySelector('form[action=consent] input[name=csrf]').value = {};",
            json!(bobs_form.id),
            json!(bobs_form.csrf)
        ))
        .await?;
        b.click(APPROVE).await?;
        let text = b
            .wait_for("p.error")
            .await?
            .text()
            .await
            .map_err(|e| e.to_string())?;
        Ok::<_, String>(text)
    }
    .await;
    let text = match result {
        Ok(t) => t,
        Err(e) => panic!("{}", b.report(&e).await),
    };
    assert!(text.contains("another browser session"), "{text}");
    assert!(
        tokio::time::timeout(Duration::from_millis(500), l.callbacks.recv())
            .await
            .is_err(),
        "nothing reaches the client"
    );
    assert_eq!(
        s.as_state.with_server(|a| a.codes().count()),
        0,
        "no code minted"
    );
    b.close().await;
    s.stop().await;
}

// spec: AZ-30
#[tokio::test]
async fn connect_with_a_browser_command_completes_through_the_real_pages() {
    let _one = ONE_BROWSER.lock().await;
    let s = stack().await;
    let dir = temp_dir("mcp-auth-connect");
    let url_file = dir.join("authorization-url");
    // `connect --browser CMD` runs `sh -c 'CMD "$1"' sh URL`: this command hands the URL to
    // the test, which plays the person in Chromium.
    let command = format!(
        "open_url() {{ printf %s \"$1\" > '{}'; }}; open_url",
        url_file.display()
    );
    let config = dir.join("config");
    let child = tokio::process::Command::new(env!("CARGO_BIN_EXE_mcp-auth"))
        .args([
            "connect",
            &s.mcp_url,
            "--tool",
            "whoami",
            "--no-store",
            "--browser",
            &command,
        ])
        .env("XDG_CONFIG_HOME", &config)
        .env_remove("BROWSER")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("mcp-auth connect starts");
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let url = loop {
        if let Ok(url) = std::fs::read_to_string(&url_file)
            && !url.is_empty()
        {
            break url;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "connect never opened the browser"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let b = browser().await;
    if let Err(e) = decide_in_browser(&b, &url, APPROVE, None).await {
        panic!("{}", b.report(&e).await);
    }
    let output = tokio::time::timeout(Duration::from_secs(30), child.wait_with_output())
        .await
        .expect("connect finishes")
        .expect("connect ran");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "connect failed:\n{stdout}\n{stderr}"
    );
    assert!(stdout.contains("connected:"), "{stdout}");
    assert!(
        stdout.contains(USER),
        "whoami names the user who logged in: {stdout}"
    );
    b.close().await;
    s.stop().await;
}

/// The durable store seen by a real browser: alice logs in and the consent page is shown; the
/// authorization server restarts on its data directory (same address) before she presses
/// Approve; her press still completes the authorization (her session and the pending consent
/// were committed), and the code is redeemed at the restarted server.
// spec: PF-23, AZ-29, AZ-30
#[tokio::test]
async fn a_consent_shown_before_a_restart_is_approved_after_it_in_a_real_browser() {
    let _one = ONE_BROWSER.lock().await;
    let data = temp_dir("durable-consent");
    let start = |as_addr: String, rs_addr: String| {
        Stack::start(
            StackOptions::default()
                .with_users(Some(users()))
                .with_data(Some(data.clone()))
                .with_as_addr(as_addr)
                .with_rs_addr(rs_addr),
        )
    };
    let first = start("127.0.0.1:0".into(), "127.0.0.1:0".into())
        .await
        .expect("the stack starts");
    let mut listener = listener().await;
    let request = authorization_request(&first, &listener).await;
    let b = browser().await;
    let shown = async {
        b.goto(&request.url).await?;
        fill_login_if_shown(&b, USER, PASSWORD).await?;
        b.wait_for(APPROVE).await.map(drop)
    };
    if let Err(e) = shown.await {
        panic!("{}", b.report(&e).await);
    }
    let addr = |url: &str| {
        let rest = url.split_once("://").map_or(url, |(_, r)| r);
        rest.split('/').next().unwrap_or_default().to_owned()
    };
    let (as_addr, rs_addr) = (addr(&first.issuer), addr(&first.mcp_url));
    first.stop().await;
    let second = start(as_addr, rs_addr).await.expect("the stack restarts");
    if let Err(e) = b.click(APPROVE).await {
        panic!("{}", b.report(&e).await);
    }
    let Some(params) = listener.callback().await else {
        panic!(
            "{}",
            b.report("after the restart, Approve sent nothing to the client")
                .await
        )
    };
    b.close().await;
    assert_eq!(param(&params, "state"), Some(request.state.as_str()));
    let code = param(&params, "code").expect("the response carries a code");
    let token = request.redeem(code, &second.mcp_url).await;
    assert_eq!(token.status, 200, "token: {}", json_body(&token));
    second.stop().await;
    let _ = std::fs::remove_dir_all(&data);
}
