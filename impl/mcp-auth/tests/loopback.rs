//! Integration tests over real loopback HTTP: the AS, the MCP server behind the auth layer,
//! and the client, each on its own ephemeral 127.0.0.1 port. Every test names the
//! requirements of `spec/requirements.md` it verifies.

use mcp_auth::client::{self, Consent, Http, McpClient, Options, UserAgent, initialize_params};
use mcp_auth::demo::{DEMO_SUBJECT, Stack, StackOptions};
use mcp_auth::net::{OsEntropy, now};
use mcp_auth::transcript::Transcript;
use mcp_auth_proto::client::{Action, ClientError};
use mcp_auth_proto::http::{HttpRequest, HttpResponse, Method};
use mcp_auth_proto::uri::HttpPolicy;
use serde_json::{Value, json};

async fn stack(second_resource: bool) -> Stack {
    Stack::start(StackOptions::default().with_second_resource(second_resource))
        .await
        .expect("the stack starts")
}

async fn send(request: HttpRequest) -> HttpResponse {
    Http::new(HttpPolicy::AllowLoopbackHttp)
        .send(&request)
        .await
        .expect("the server answers")
}

fn www(response: &HttpResponse) -> &str {
    response.header_value("www-authenticate").unwrap_or("")
}

fn param(header: &str, name: &str) -> Option<String> {
    let needle = format!("{name}=\"");
    let start = header.find(&needle)? + needle.len();
    let end = header[start..].find('"')?;
    Some(header[start..start + end].to_owned())
}

fn json_error(response: &HttpResponse) -> Option<String> {
    let value: Value = serde_json::from_slice(&response.body).ok()?;
    value["error"].as_str().map(str::to_owned)
}

fn mcp_post(url: &str, authorization: Option<&str>) -> HttpRequest {
    let body =
        json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": initialize_params()});
    let mut request = HttpRequest::new(Method::Post, url)
        .header("content-type", "application/json")
        .header("accept", "application/json, text/event-stream")
        .body(serde_json::to_vec(&body).unwrap());
    if let Some(a) = authorization {
        request = request.header("authorization", a);
    }
    request
}

async fn authorized_client(stack: &Stack, url: &str, scope: Option<&str>) -> McpClient {
    let mut options = Options::headless(url);
    options.scope = scope.map(str::to_owned);
    let mut c = McpClient::new(options, stack.transcript()).await.unwrap();
    c.authorize()
        .await
        .unwrap()
        .expect("the server asked for a token");
    c
}

/// Run the demo (over https with `tls`) and require every check to pass.
async fn passing_demo(tls: bool) -> mcp_auth::transcript::Transcript {
    passing_demo_of(tls, mcp_auth_proto::Revision::default()).await
}

/// [`passing_demo`] for `revision`.
async fn passing_demo_of(
    tls: bool,
    revision: mcp_auth_proto::Revision,
) -> mcp_auth::transcript::Transcript {
    let transcript = mcp_auth::demo::run(tls, revision).await.unwrap();
    let t = transcript.lock().unwrap().clone();
    assert!(
        t.all_ok(),
        "{}\n{}",
        t.render_exchanges(),
        t.render_checks()
    );
    t
}

// spec: PRM-8, DCR-1
#[tokio::test]
async fn the_demo_flow_passes_every_check() {
    let t = passing_demo(false).await;
    assert!(t.checks.len() >= 12);
    assert_eq!(t.exchanges[0].status, 401);
    assert!(t.render_mermaid().starts_with("sequenceDiagram"));
}

// spec: TRN-6, TRN-9, CIMD-1
#[tokio::test]
async fn the_demo_of_2026_07_28_uses_a_metadata_document_and_stateless_requests() {
    use mcp_auth_proto::Revision;
    let t = passing_demo_of(false, Revision::V2026_07_28).await;
    let names: Vec<&str> = t.checks.iter().map(|c| c.name.as_str()).collect();
    assert!(
        names
            .iter()
            .any(|n| n.contains("Client ID Metadata Document")),
        "{names:?}"
    );
    assert!(names.iter().any(|n| n.contains("stateless")), "{names:?}");
    assert!(t.exchanges.iter().all(|e| !e.url.ends_with("/register")));
    assert!(
        t.exchanges
            .iter()
            .all(|e| e.method != "POST" || !e.step.contains("initialize"))
    );
    // 2025-11-25: the document, but initialize and a session.
    let t = passing_demo_of(false, Revision::V2025_11_25).await;
    assert!(t.exchanges.iter().all(|e| !e.url.ends_with("/register")));
    assert!(t.exchanges.iter().any(|e| e.step.contains("initialize")));
}

// spec: GEN-7
#[tokio::test]
async fn the_demo_over_https_passes_every_check_and_every_url_is_https() {
    let t = passing_demo(true).await;
    // Every request to the AS and the MCP server went over https (the loopback redirect
    // listener of the client is the only http URL, as RFC 8252 allows).
    for e in &t.exchanges {
        let url = &e.url;
        assert!(
            url.starts_with("https://") || url.contains("/callback"),
            "{url} is not https"
        );
    }
}

// spec: ASM-1, DCR-9, TOK-14, AZ-4, AZ-26
#[tokio::test]
async fn authorization_server_error_answers() {
    let s = stack(false).await;
    let iss = s.issuer.clone();

    let metadata = send(HttpRequest::new(
        Method::Get,
        format!("{iss}/.well-known/oauth-authorization-server"),
    ))
    .await;
    assert_eq!(metadata.status, 200);
    let doc: Value = serde_json::from_slice(&metadata.body).unwrap();
    assert_eq!(doc["issuer"], iss.as_str());
    assert_eq!(doc["code_challenge_methods_supported"], json!(["S256"]));
    let preflight = send(HttpRequest::new(Method::Options, format!("{iss}/token"))).await;
    assert_eq!(preflight.status, 204);
    assert_eq!(
        preflight.header_value("access-control-allow-origin"),
        Some("*")
    );

    // Registration: wrong content type, then a body over the 64 KiB bound.
    let wrong_type = send(
        HttpRequest::new(Method::Post, format!("{iss}/register"))
            .header("content-type", "text/plain")
            .body("{}"),
    )
    .await;
    assert_eq!(wrong_type.status, 400);
    assert_eq!(
        json_error(&wrong_type).as_deref(),
        Some("invalid_client_metadata")
    );
    let huge = send(
        HttpRequest::new(Method::Post, format!("{iss}/register"))
            .header("content-type", "application/json")
            .body(vec![b' '; 70 * 1024]),
    )
    .await;
    assert_eq!(huge.status, 413);
    assert_eq!(json_error(&huge).as_deref(), Some("invalid_request"));
    let no_redirects = send(
        HttpRequest::new(Method::Post, format!("{iss}/register"))
            .header("content-type", "application/json")
            .body(r#"{"client_name":"x"}"#),
    )
    .await;
    assert_eq!(no_redirects.status, 400);
    assert_eq!(
        json_error(&no_redirects).as_deref(),
        Some("invalid_redirect_uri")
    );

    // Token endpoint.
    let no_type =
        send(HttpRequest::new(Method::Post, format!("{iss}/token")).body("grant_type=x")).await;
    assert_eq!(no_type.status, 400);
    assert_eq!(json_error(&no_type).as_deref(), Some("invalid_request"));
    let form = |body: &str| {
        HttpRequest::new(Method::Post, format!("{iss}/token"))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body.to_owned())
    };
    let unknown_client = send(form(
        "grant_type=authorization_code&code=x&client_id=nobody",
    ))
    .await;
    assert_eq!(
        json_error(&unknown_client).as_deref(),
        Some("invalid_client")
    );
    assert_eq!(unknown_client.status, 401);
    let get_token = send(HttpRequest::new(Method::Get, format!("{iss}/token"))).await;
    assert_eq!(get_token.status, 405);
    assert!(get_token.header_value("allow").is_some());
    assert_eq!(get_token.header_value("cache-control"), Some("no-store"));

    // Authorization endpoint: an unknown client gets an error page, never a redirect.
    let bad = send(HttpRequest::new(
        Method::Get,
        format!("{iss}/authorize?response_type=code&client_id=nobody&redirect_uri=http://127.0.0.1:1/cb&state=s"),
    ))
    .await;
    assert_eq!(bad.status, 400);
    assert!(bad.header_value("location").is_none());
    assert!(
        bad.header_value("content-security-policy")
            .unwrap()
            .contains("frame-ancestors 'none'")
    );
    assert_eq!(bad.header_value("x-frame-options"), Some("DENY"));
    s.stop().await;
}

// spec: PRM-1, PRM-4, PRM-8, ERR-1, ERR-3
#[tokio::test]
async fn resource_server_error_answers() {
    let s = stack(false).await;
    let mcp = s.mcp_url.clone();
    let origin = mcp.trim_end_matches("/mcp").to_owned();
    let prm_url = format!("{origin}/.well-known/oauth-protected-resource/mcp");

    for path in [
        "/.well-known/oauth-protected-resource/mcp",
        "/.well-known/oauth-protected-resource",
    ] {
        let prm = send(HttpRequest::new(Method::Get, format!("{origin}{path}"))).await;
        assert_eq!(prm.status, 200, "{path}");
        let doc: Value = serde_json::from_slice(&prm.body).unwrap();
        assert_eq!(doc["resource"], mcp.as_str());
        assert_eq!(doc["authorization_servers"], json!([s.issuer]));
    }

    // No credentials: 401, resource_metadata, no error code, on every method.
    for method in [Method::Post, Method::Get, Method::Delete] {
        let r = send(
            HttpRequest::new(method, mcp.clone())
                .header("accept", "application/json, text/event-stream"),
        )
        .await;
        assert_eq!(r.status, 401, "{method:?}");
        assert_eq!(
            param(www(&r), "resource_metadata").as_deref(),
            Some(prm_url.as_str())
        );
        assert!(param(www(&r), "error").is_none());
        assert!(
            r.header_value("access-control-expose-headers")
                .unwrap()
                .contains("WWW-Authenticate")
        );
    }
    // A garbled token: 401 invalid_token.
    let bad = send(mcp_post(&mcp, Some("Bearer not.a.jwt"))).await;
    assert_eq!(bad.status, 401);
    assert_eq!(param(www(&bad), "error").as_deref(), Some("invalid_token"));
    assert_eq!(
        param(www(&bad), "resource_metadata").as_deref(),
        Some(prm_url.as_str())
    );
    // An empty Bearer: 400 invalid_request.
    let empty = send(mcp_post(&mcp, Some("Bearer"))).await;
    assert_eq!(empty.status, 400);
    assert_eq!(
        param(www(&empty), "error").as_deref(),
        Some("invalid_request")
    );
    // A token in the query string is not looked at.
    let query = send(mcp_post(&format!("{mcp}?access_token=abc"), None)).await;
    assert_eq!(query.status, 401);
    // CORS preflight needs no token.
    let preflight = send(HttpRequest::new(Method::Options, mcp.clone())).await;
    assert_eq!(preflight.status, 204);
    assert!(
        preflight
            .header_value("access-control-allow-headers")
            .unwrap()
            .contains("authorization")
    );
    s.stop().await;
}

// spec: ERR-2, SEC-2, SEC-3, SEC-6, TRN-5
#[tokio::test]
async fn scopes_and_sessions_are_enforced_per_request() {
    let s = stack(false).await;
    let mut a = authorized_client(&s, &s.mcp_url, Some("mcp:tools")).await;
    a.initialize().await.unwrap();
    let denied = a.call_tool("admin_info", json!({})).await.unwrap();
    assert_eq!(denied.status, 403);
    assert_eq!(
        param(www(&denied), "error").as_deref(),
        Some("insufficient_scope")
    );
    assert_eq!(param(www(&denied), "scope").as_deref(), Some("mcp:admin"));

    let mut admin = authorized_client(&s, &s.mcp_url, Some("mcp:tools mcp:admin")).await;
    admin.initialize().await.unwrap();
    let allowed = admin.call_tool("admin_info", json!({})).await.unwrap();
    assert!(client::jsonrpc_result(&allowed).is_ok(), "{allowed:?}");

    // A's session without a token: 401 (the session id is no credential).
    let session = a.session_id.clone().expect("a session");
    let bare = send(
        HttpRequest::new(Method::Post, s.mcp_url.clone())
            .header("content-type", "application/json")
            .header("mcp-session-id", session.clone())
            .body(r#"{"jsonrpc":"2.0","id":9,"method":"tools/list"}"#),
    )
    .await;
    assert_eq!(bare.status, 401);
    // A's session with another client's valid token: not found.
    admin.session_id = Some(session);
    let hijack = admin.rpc("tools/list", json!({})).await.unwrap();
    assert_eq!(hijack.status, 404);
    s.stop().await;
}

// spec: AZ-10, AZ-21, AZ-25
#[tokio::test]
async fn deny_at_consent_ends_the_flow_with_access_denied() {
    let s = stack(false).await;
    let mut options = Options::headless(s.mcp_url.clone());
    options.user_agent = UserAgent::Headless(Consent::Deny);
    let mut c = McpClient::new(options, Transcript::shared()).await.unwrap();
    let result = c.authorize().await;
    match result {
        Err(client::Error::Flow(ClientError::AuthorizationDenied { error })) => {
            assert_eq!(error, "access_denied");
        }
        other => panic!("expected access_denied, got {other:?}"),
    }
    // The redirect carried state and iss (the core checked both before reading the error).
    let t = c.transcript().lock().unwrap().clone();
    let redirect = t
        .exchanges
        .iter()
        .find(|e| e.step.contains("redirect to the client"))
        .unwrap();
    assert!(redirect.url.contains("error=access_denied"));
    assert!(redirect.url.contains("state="));
    assert!(redirect.url.contains(&format!("iss={}", s.issuer)));
    s.stop().await;
}

// spec: RS-2, RS-6, RS-13, PF-10, CLI-5
#[tokio::test]
async fn a_token_for_another_resource_is_refused_on_every_method() {
    let s = stack(true).await;
    let other_url = s.other_mcp_url.clone().unwrap();
    let other = authorized_client(&s, &other_url, None).await;
    assert!(other.core.authorization_for(&s.mcp_url).is_none());
    let token = other.core.authorization_for(&other_url).unwrap();
    for method in [Method::Post, Method::Get, Method::Delete] {
        let mut request = mcp_post(&s.mcp_url, Some(&token));
        request.method = method;
        let r = send(request).await;
        assert_eq!(r.status, 401, "{method:?}");
        assert_eq!(param(www(&r), "error").as_deref(), Some("invalid_token"));
    }
    // The same token works where it belongs.
    let ok = send(mcp_post(&other_url, Some(&token))).await;
    assert_eq!(ok.status, 200);
    s.stop().await;
}

/// Drive the core by hand up to the token request, which is returned unsent.
async fn up_to_token_request(c: &mut McpClient) -> HttpRequest {
    let r = c
        .rpc_with("initialize", initialize_params(), None)
        .await
        .unwrap();
    assert_eq!(r.status, 401);
    c.core
        .handle_unauthorized(r.header_values("www-authenticate"));
    loop {
        match c.core.poll_action() {
            Action::Send(request) => {
                let response = c.http().send(&request).await.unwrap();
                c.core.handle_response(now(), &mut OsEntropy, &response);
            }
            Action::OpenBrowser(url) => {
                let location = c.consent_headless(&url, Consent::Approve).await.unwrap();
                let query = location.split_once('?').unwrap().1.to_owned();
                c.core.handle_redirect(&query).unwrap();
                match c.core.poll_action() {
                    Action::Send(token_request) => return token_request,
                    other => panic!("expected the token request, got {other:?}"),
                }
            }
            other => panic!("unexpected {other:?}"),
        }
    }
}

// spec: TOK-5, TOK-7, TOK-8
#[tokio::test]
async fn a_replayed_code_is_refused_and_revokes_the_grant() {
    let s = stack(false).await;
    let mut c = McpClient::new(Options::headless(s.mcp_url.clone()), Transcript::shared())
        .await
        .unwrap();
    let token_request = up_to_token_request(&mut c).await;
    let first = c.http().send(&token_request).await.unwrap();
    assert_eq!(first.status, 200);
    c.core.handle_response(now(), &mut OsEntropy, &first);
    let Action::Authorized(tokens) = c.core.poll_action() else {
        panic!("not authorized")
    };
    let replay = c.http().send(&token_request).await.unwrap();
    assert_eq!(replay.status, 400);
    assert_eq!(json_error(&replay).as_deref(), Some("invalid_grant"));
    // The grant of the first redemption is revoked: its refresh token no longer works.
    let refresh = c.refresh().await;
    assert!(
        matches!(&refresh, Err(client::Error::Flow(ClientError::TokenRejected { status: 400, error: Some(e) })) if e == "invalid_grant"),
        "{refresh:?} (tokens {:?})",
        tokens.refresh_token.is_some()
    );
    s.stop().await;
}

// spec: RT-1, RT-2, RT-5, RT-7, PF-4
#[tokio::test]
async fn refresh_rotates_and_a_replayed_refresh_token_revokes_the_grant() {
    let s = stack(false).await;
    let mut c = authorized_client(&s, &s.mcp_url, None).await;
    let before = c.core.clone();
    let Action::Authorized(old) = before.poll_action() else {
        panic!()
    };
    let new = c.refresh().await.unwrap();
    assert_ne!(new.refresh_token, old.refresh_token);
    assert_ne!(new.access_token, old.access_token);
    // The new access token works.
    c.initialize().await.unwrap();
    let who = client::jsonrpc_result(&c.call_tool("whoami", json!({})).await.unwrap()).unwrap();
    let text: Value = serde_json::from_str(who["content"][0]["text"].as_str().unwrap()).unwrap();
    assert_eq!(text["subject"], DEMO_SUBJECT);
    // The old refresh token, replayed: invalid_grant, and the whole grant goes.
    let rotated = std::mem::replace(&mut c.core, before);
    let replay = c.refresh().await;
    assert!(
        matches!(&replay, Err(client::Error::Flow(ClientError::TokenRejected { status: 400, error: Some(e) })) if e == "invalid_grant"),
        "{replay:?}"
    );
    c.core = rotated;
    let after = c.refresh().await;
    assert!(
        matches!(
            &after,
            Err(client::Error::Flow(ClientError::TokenRejected {
                status: 400,
                ..
            }))
        ),
        "{after:?}"
    );
    s.stop().await;
}

// spec: JWT-2, JWT-9, RS-1
#[tokio::test]
async fn es256_and_rs256_signing_keys_work_end_to_end() {
    let dir = std::env::temp_dir().join(format!("mcp-auth-keys-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let keys = [
        (
            "ec.pem",
            vec![
                "genpkey",
                "-algorithm",
                "EC",
                "-pkeyopt",
                "ec_paramgen_curve:P-256",
            ],
        ),
        (
            "rsa.pem",
            vec![
                "genpkey",
                "-algorithm",
                "RSA",
                "-pkeyopt",
                "rsa_keygen_bits:2048",
            ],
        ),
        ("ed.pem", vec!["genpkey", "-algorithm", "ed25519"]),
    ];
    for (file, args) in keys {
        let path = dir.join(file);
        let made = std::process::Command::new("openssl")
            .args(&args)
            .arg("-out")
            .arg(&path)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status();
        if !made.is_ok_and(|s| s.success()) {
            eprintln!("openssl unavailable: skipping {file}");
            continue;
        }
        let signer = mcp_auth::keys::load_or_create(&path).unwrap();
        let alg = signer.alg();
        let s = Stack::start(StackOptions::default().with_signer(Some(signer)))
            .await
            .unwrap();
        let mut c = authorized_client(&s, &s.mcp_url, None).await;
        c.initialize()
            .await
            .unwrap_or_else(|e| panic!("{alg:?}: {e}"));
        let header = c.core.authorization_for(&s.mcp_url).unwrap();
        let jwt_header = header
            .trim_start_matches("Bearer ")
            .split('.')
            .next()
            .unwrap()
            .to_owned();
        use base64::Engine as _;
        let decoded: Value = serde_json::from_slice(
            &base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(jwt_header)
                .unwrap(),
        )
        .unwrap();
        assert_eq!(decoded["alg"], alg.as_str());
        assert_eq!(decoded["typ"], "at+jwt");
        s.stop().await;
    }
    // A missing file gets a fresh Ed25519 key, which loads back with the same key id.
    let fresh = dir.join("new.pem");
    let _ = std::fs::remove_file(&fresh);
    let created = mcp_auth::keys::load_or_create(&fresh).unwrap();
    let loaded = mcp_auth::keys::load_or_create(&fresh).unwrap();
    assert_eq!(created.kid(), loaded.kid());
    let _ = std::fs::remove_dir_all(&dir);
}

// spec: PRM-8, DISC-1, CLI-1
#[test]
fn serve_prints_its_urls_and_connect_calls_a_tool() {
    use std::io::BufRead as _;
    let exe = env!("CARGO_BIN_EXE_mcp-auth");
    let home = std::env::temp_dir().join(format!("mcp-auth-home-{}", std::process::id()));
    // Without --data (or --memory), the state goes to the default data directory.
    let mut server = std::process::Command::new(exe)
        .args(["serve", "--auto-approve"])
        .env("XDG_DATA_HOME", home.join("data"))
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = std::io::BufReader::new(server.stdout.take().unwrap()).lines();
    let first = lines.next().unwrap().unwrap();
    let second = lines.next().unwrap().unwrap();
    let mcp_url = first
        .strip_prefix("MCP server: ")
        .expect("first line")
        .to_owned();
    assert!(
        second.starts_with("Authorization server: http://127.0.0.1:"),
        "{second}"
    );
    assert!(
        home.join("data/mcp-auth")
            .join(mcp_auth::store::DATABASE_FILE)
            .exists(),
        "serve keeps its state in $XDG_DATA_HOME/mcp-auth by default"
    );
    let run = |args: &[&str]| {
        std::process::Command::new(exe)
            .args(args)
            .env("XDG_CONFIG_HOME", &home)
            .output()
            .unwrap()
    };
    let out = run(&["connect", &mcp_url, "--headless", "--tool", "whoami"]);
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    // Second run: the stored token is used (no new registration needed).
    let again = run(&[
        "connect",
        &mcp_url,
        "--headless",
        "--tool",
        "echo",
        "--args",
        r#"{"text":"hi"}"#,
    ]);
    let _ = server.kill();
    let _ = server.wait();
    let stored = std::fs::read_to_string(home.join("mcp-auth/tokens.json")).unwrap_or_default();
    let _ = std::fs::remove_dir_all(&home);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains(DEMO_SUBJECT), "{stdout}");
    assert!(again.status.success());
    assert!(String::from_utf8_lossy(&again.stdout).contains("hi"));
    assert!(stored.contains(&mcp_url));
}
