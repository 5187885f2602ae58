//! Hardening tests over real loopback HTTP: session ids of the MCP server, the client's
//! redirect listener, secrets at rest and in logs, and JWKS refetch on key rotation. Every
//! test names the requirements of `spec/requirements.md` it verifies.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use mcp_auth::as_server::{self, AsState};
use mcp_auth::client::{Consent, Http, McpClient, Options};
use mcp_auth::demo::{DEMO_SUBJECT, Stack, StackOptions};
use mcp_auth::net::{OsEntropy, full, now};
use mcp_auth::transcript::Transcript;
use mcp_auth_layer::{AuthLayer, McpGuard};
use mcp_auth_proto::client::{Action, Tokens};
use mcp_auth_proto::guard::Sessions;
use mcp_auth_proto::http::{HttpRequest, HttpResponse, Method};
use mcp_auth_proto::jwt::{AccessClaims, Audience, Ed25519Signer, Signer};
use mcp_auth_proto::resource::{ResourceServer, RsConfig};
use mcp_auth_proto::server::AsConfig;
use mcp_auth_proto::server::http::UserAgentPolicy;
use mcp_auth_proto::types::ScopeSet;
use mcp_auth_proto::uri::{HttpPolicy, Issuer, ResourceUri};
use serde_json::{Value, json};

async fn send(request: HttpRequest) -> HttpResponse {
    Http::new(HttpPolicy::AllowLoopbackHttp)
        .send(&request)
        .await
        .expect("the server answers")
}

async fn stack() -> Stack {
    Stack::start(StackOptions::default())
        .await
        .expect("the stack starts")
}

async fn authorized(mcp_url: &str) -> (McpClient, Tokens) {
    let mut c = McpClient::new(Options::headless(mcp_url), Transcript::shared())
        .await
        .unwrap();
    let tokens = c
        .authorize()
        .await
        .unwrap()
        .expect("the server asked for a token");
    (c, tokens)
}

fn jwt_header(token: &str) -> Value {
    let head = token.split('.').next().unwrap_or("");
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(head).unwrap_or_default()).unwrap_or_default()
}

// ---------------------------------------------------------------------------------------------
// Session ids (rmcp's LocalSessionManager: `uuid::Uuid::new_v4()`, 122 bits from getrandom)
// ---------------------------------------------------------------------------------------------

// spec: SEC-4, SEC-11
#[tokio::test]
async fn session_ids_are_unpredictable_visible_ascii_and_never_repeat() {
    let s = stack().await;
    let mut ids = Vec::new();
    // Two clients (two identities), several sessions each.
    for _ in 0..2 {
        let (mut c, _) = authorized(&s.mcp_url).await;
        for _ in 0..10 {
            c.initialize().await.unwrap();
            ids.push(
                c.session_id
                    .clone()
                    .expect("initialize answers a session id"),
            );
        }
    }
    s.stop().await;
    for id in &ids {
        assert!(id.len() >= 16, "session id too short: {id:?}");
        assert!(
            id.bytes().all(|b| (0x21..=0x7e).contains(&b)),
            "session id outside visible ASCII: {id:?}"
        );
    }
    let unique: BTreeSet<&String> = ids.iter().collect();
    assert_eq!(unique.len(), ids.len(), "a session id repeated: {ids:?}");
    // Not a counter or a timestamp: any two ids agree in far fewer than half their
    // positions (random UUIDs agree in about 7 of 36, fixed hyphens and version included).
    for (i, a) in ids.iter().enumerate() {
        for b in &ids[i + 1..] {
            let same = a.bytes().zip(b.bytes()).filter(|(x, y)| x == y).count();
            assert!(
                same < a.len().min(b.len()) / 2,
                "{a} and {b} share {same} positions"
            );
        }
    }
    let alphabet: BTreeSet<char> = ids.iter().flat_map(|id| id.chars()).collect();
    assert!(alphabet.len() >= 12, "{alphabet:?}");
}

// ---------------------------------------------------------------------------------------------
// The client's loopback redirect listener
// ---------------------------------------------------------------------------------------------

// spec: AZ-24
#[tokio::test]
async fn the_redirect_listener_is_no_open_redirector() {
    let s = stack().await;
    let mut c = McpClient::new(Options::headless(&s.mcp_url), s.transcript())
        .await
        .unwrap();
    let origin = c.redirect_origin().to_owned();
    let evil = "https%3A%2F%2Fevil.example%2Fsteal";
    let probes: Vec<(Method, String, u16)> = vec![
        (Method::Get, format!("/?redirect_uri={evil}"), 404),
        (Method::Get, format!("/?next={evil}&url={evil}"), 404),
        (Method::Get, format!("/redirect?url={evil}"), 404),
        (Method::Get, format!("/login?return_to={evil}"), 404),
        (Method::Get, "//evil.example/".to_owned(), 404),
        (Method::Get, "/callback/evil".to_owned(), 404),
        (Method::Get, "/callbackx".to_owned(), 404),
        (Method::Get, "/CALLBACK".to_owned(), 404),
        (Method::Get, format!("/callback?next={evil}"), 400),
        (Method::Get, format!("/callback?redirect_uri={evil}"), 400),
        (
            Method::Get,
            format!("/callback?code=x&state=y&redirect_uri={evil}&return_to={evil}"),
            400,
        ),
        (Method::Post, format!("/callback?redirect_uri={evil}"), 400),
        (Method::Post, format!("/?redirect_uri={evil}"), 404),
    ];
    for (method, path, expected) in probes {
        let response = send(HttpRequest::new(method, format!("{origin}{path}"))).await;
        let label = format!("{} {path}", method.as_str());
        assert_eq!(response.status, expected, "{label}");
        assert!(!(300..400).contains(&response.status), "{label}");
        assert!(response.header_value("location").is_none(), "{label}");
        assert!(response.header_value("refresh").is_none(), "{label}");
        let body = String::from_utf8_lossy(&response.body).to_lowercase();
        assert!(
            !body.contains("evil") && !body.contains("http-equiv") && !body.contains("<script"),
            "{label}: {body}"
        );
    }
    // Stray callbacks (no authorization waiting) get an error page and do not derail a real
    // authorization.
    let tokens = c.authorize().await.unwrap().expect("a token");
    assert!(!tokens.access_token.is_empty());
    s.stop().await;
}

// ---------------------------------------------------------------------------------------------
// Secrets in logs and Debug output
// ---------------------------------------------------------------------------------------------

/// A `MakeWriter` that appends everything to one buffer.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for Captured {
    type Writer = Self;
    fn make_writer(&'a self) -> Self::Writer {
        self.clone()
    }
}

impl Captured {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

/// Every secret seen on the wire, by name.
#[derive(Default)]
struct Secrets(BTreeSet<(String, String)>);

impl Secrets {
    const FORM: &[&str] = &["code", "code_verifier", "refresh_token", "client_secret"];
    const JSON: &[&str] = &["access_token", "refresh_token", "client_secret"];

    fn add(&mut self, name: &str, value: &str) {
        // Short values (none of ours) would match by chance.
        if value.len() >= 16 {
            self.0.insert((name.to_owned(), value.to_owned()));
        }
    }

    fn form(&mut self, pairs: &[u8]) {
        for (k, v) in form_urlencoded::parse(pairs) {
            if Self::FORM.contains(&k.as_ref()) {
                self.add(&k, &v);
            }
        }
    }

    fn json(&mut self, body: &[u8]) {
        if let Ok(value) = serde_json::from_slice::<Value>(body) {
            for name in Self::JSON {
                if let Some(v) = value[name].as_str() {
                    self.add(name, v);
                }
            }
        }
    }

    fn exchange(&mut self, request: &HttpRequest, response: &HttpResponse) {
        if let Some((_, query)) = request.url.split_once('?') {
            self.form(query.as_bytes());
        }
        self.form(&request.body);
        if let Some(value) = request.header_values("authorization").next()
            && let Some(basic) = value.strip_prefix(b"Basic ")
            && let Ok(decoded) = STANDARD.decode(basic)
            && let Some((_, secret)) = String::from_utf8_lossy(&decoded).split_once(':')
        {
            self.add("client_secret", &percent_decode(secret));
        }
        self.json(&response.body);
    }

    fn tokens(&mut self, tokens: &Tokens) {
        self.add("access_token", &tokens.access_token);
        if let Some(r) = &tokens.refresh_token {
            self.add("refresh_token", r);
        }
        if let Some(s) = &tokens.client_secret {
            self.add("client_secret", s);
        }
    }

    fn names(&self) -> BTreeSet<&str> {
        self.0.iter().map(|(n, _)| n.as_str()).collect()
    }

    /// The secrets that occur in `text`.
    fn found_in(&self, text: &str) -> Vec<String> {
        self.0
            .iter()
            .filter(|(_, v)| text.contains(v.as_str()))
            .map(|(n, v)| format!("{n}={v}"))
            .collect()
    }
}

fn percent_decode(s: &str) -> String {
    form_urlencoded::parse(format!("x={s}").as_bytes())
        .next()
        .map(|(_, v)| v.into_owned())
        .unwrap_or_default()
}

/// [`McpClient::drive`], step by step through the driver's own pieces, collecting secrets.
async fn drive_collecting(c: &mut McpClient, secrets: &mut Secrets) -> Tokens {
    for _ in 0..32 {
        match c.core.poll_action() {
            Action::Send(request) => {
                let response = c.exchange("step", "Client", &request).await.unwrap();
                secrets.exchange(&request, &response);
                c.core.handle_response(now(), &mut OsEntropy, &response);
            }
            Action::OpenBrowser(url) => {
                let location = c.consent_headless(&url, Consent::Approve).await.unwrap();
                let redirect = HttpRequest::new(Method::Get, location.clone());
                let answer = c
                    .exchange(
                        "redirect to the client's loopback listener",
                        "User agent",
                        &redirect,
                    )
                    .await
                    .unwrap();
                secrets.exchange(&redirect, &answer);
                let query = location.split_once('?').map_or("", |(_, q)| q);
                c.core.handle_redirect(query).unwrap();
            }
            Action::Authorized(tokens) => {
                secrets.tokens(&tokens);
                return tokens;
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    panic!("the flow did not finish");
}

// spec: CLI-6
#[tokio::test]
async fn no_secret_reaches_the_logs_or_debug_output_at_trace_level() {
    let captured = Captured::default();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_ansi(false)
        .with_writer(captured.clone())
        .finish();
    // Global (a thread-local default races with the callsite interest cache while other
    // tests run): the other tests of this binary log into the buffer too, which only adds.
    tracing::subscriber::set_global_default(subscriber).expect("the only global subscriber");
    let s = stack().await;
    let mut secrets = Secrets::default();

    // A confidential client (registered by hand, `client_secret_basic`), whose whole flow is
    // driven step by step so that every secret on the wire is known.
    let registration = send(
        HttpRequest::new(Method::Post, format!("{}/register", s.issuer))
            .header("content-type", "application/json")
            .body(
                json!({
                    "redirect_uris": ["http://127.0.0.1/callback"],
                    "token_endpoint_auth_method": "client_secret_basic",
                    "grant_types": ["authorization_code", "refresh_token"],
                    "response_types": ["code"],
                    "client_name": "confidential test client",
                })
                .to_string(),
            ),
    )
    .await;
    assert!(
        (200..300).contains(&registration.status),
        "{}",
        String::from_utf8_lossy(&registration.body)
    );
    secrets.json(&registration.body);
    let reg: Value = serde_json::from_slice(&registration.body).unwrap();
    let mut options = Options::headless(&s.mcp_url);
    options.preregistered = Some((
        reg["client_id"].as_str().unwrap().to_owned(),
        reg["client_secret"].as_str().map(str::to_owned),
    ));
    let mut c = McpClient::new(options, s.transcript()).await.unwrap();
    let first = c
        .rpc_with("initialize", mcp_auth::client::initialize_params(), None)
        .await
        .unwrap();
    assert_eq!(first.status, 401);
    c.core
        .handle_unauthorized(first.header_values("www-authenticate").collect::<Vec<_>>());
    let tokens = drive_collecting(&mut c, &mut secrets).await;
    c.initialize().await.unwrap();
    c.call_tool("whoami", json!({})).await.unwrap();
    c.core.start_refresh();
    let refreshed = drive_collecting(&mut c, &mut secrets).await;
    assert_ne!(refreshed.access_token, tokens.access_token);
    assert!(c.call_tool("whoami", json!({})).await.unwrap().status == 200);

    // A public client through the driver's own `authorize` and `refresh`.
    let (mut public, public_tokens) = authorized(&s.mcp_url).await;
    secrets.tokens(&public_tokens);
    public.initialize().await.unwrap();
    secrets.tokens(&public.refresh().await.unwrap());
    // The public client's codes are not collected: the AS keeps only their SHA-256 digests
    // (the confidential flow above puts a code on the wire for the check).
    let debug = format!("{c:?}\n{public:?}\n{tokens:?}\n{refreshed:?}");
    s.stop().await;

    let names = secrets.names();
    for name in [
        "access_token",
        "refresh_token",
        "code",
        "code_verifier",
        "client_secret",
    ] {
        assert!(names.contains(name), "no {name} was seen: {names:?}");
    }
    let logs = captured.text();
    assert!(logs.contains("exchange"), "nothing was captured:\n{logs}");
    let mcp_auth_lines: String = logs
        .lines()
        .filter(|l| l.contains(" mcp_auth"))
        .collect::<Vec<_>>()
        .join("\n");
    let leaked = secrets.found_in(&mcp_auth_lines);
    assert!(leaked.is_empty(), "the mcp_auth crates logged {leaked:?}");
    let leaked = secrets.found_in(&logs);
    assert!(leaked.is_empty(), "a dependency logged {leaked:?}");
    let leaked = secrets.found_in(&debug);
    assert!(leaked.is_empty(), "Debug output shows {leaked:?}");
}

/// Wait for `serve` to print its two URLs; returns the MCP URL and the open stdout (closing
/// it early would make the server's next `println!` fail).
fn serve_urls(
    server: &mut std::process::Child,
) -> (
    String,
    impl Iterator<Item = std::io::Result<String>> + use<>,
) {
    use std::io::BufRead as _;
    let mut lines = std::io::BufReader::new(server.stdout.take().unwrap()).lines();
    let first = lines.next().unwrap().unwrap();
    let second = lines.next().unwrap().unwrap();
    assert!(second.starts_with("Authorization server: "), "{second}");
    let mcp_url = first
        .strip_prefix("MCP server: ")
        .unwrap_or_else(|| panic!("{first}"))
        .to_owned();
    (mcp_url, lines)
}

#[cfg(unix)]
fn mode(path: &std::path::Path) -> u32 {
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

// spec: CLI-6
#[cfg(unix)]
#[test]
fn the_token_store_is_private_and_connect_and_serve_log_no_token() {
    use std::os::unix::fs::PermissionsExt as _;
    let exe = env!("CARGO_BIN_EXE_mcp-auth");
    let dir = std::env::temp_dir().join(format!("mcp-auth-hardening-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let trace = "trace";
    let server_log = dir.join("serve.log");
    let mut server = std::process::Command::new(exe)
        .args(["serve", "--auto-approve", "--memory"])
        .env("RUST_LOG", trace)
        .stdout(std::process::Stdio::piped())
        .stderr(std::fs::File::create(&server_log).unwrap())
        .spawn()
        .unwrap();
    let (mcp_url, _stdout) = serve_urls(&mut server);
    // `connect` under umask 0: whatever it creates gets only the permissions it asks for.
    let connect = |home: &std::path::Path| {
        std::process::Command::new("sh")
            .arg("-c")
            .arg("umask 0; exec \"$0\" \"$@\"")
            .args([exe, "connect", &mcp_url, "--headless", "--tool", "whoami"])
            .env("XDG_CONFIG_HOME", home)
            .env("RUST_LOG", trace)
            .env_remove("MCP_AUTH_TRANSCRIPT")
            .output()
            .unwrap()
    };
    // A fresh home: the store's directory and file are created by `connect`.
    let fresh = dir.join("fresh");
    let first = connect(&fresh);
    // A home with a stale, world-readable temporary file left by an earlier crash.
    let stale = dir.join("stale");
    std::fs::create_dir_all(stale.join("mcp-auth")).unwrap();
    let tmp = stale.join("mcp-auth/tokens.tmp");
    std::fs::write(&tmp, b"{}").unwrap();
    std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o666)).unwrap();
    let second = connect(&stale);
    let _ = server.kill();
    let _ = server.wait();
    for out in [&first, &second] {
        assert!(
            out.status.success(),
            "{}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(String::from_utf8_lossy(&out.stdout).contains(DEMO_SUBJECT));
    }
    let store_dir = fresh.join("mcp-auth");
    assert_eq!(
        mode(&store_dir) & 0o022,
        0,
        "the store directory is writable by others: {:o}",
        mode(&store_dir)
    );
    let mut secrets = Secrets::default();
    for home in [&fresh, &stale] {
        let store = home.join("mcp-auth/tokens.json");
        assert_eq!(mode(&store), 0o600, "{}", store.display());
        let stored: Value = serde_json::from_slice(&std::fs::read(&store).unwrap()).unwrap();
        for resources in stored.as_object().unwrap().values() {
            for tokens in resources.as_object().unwrap().values() {
                secrets.tokens(&serde_json::from_value(tokens.clone()).unwrap());
            }
        }
    }
    assert!(secrets.names().contains("access_token"));
    assert!(secrets.names().contains("refresh_token"));
    let logs = format!(
        "{}\n{}\n{}",
        std::fs::read_to_string(&server_log).unwrap(),
        String::from_utf8_lossy(&first.stderr),
        String::from_utf8_lossy(&second.stderr)
    );
    let _ = std::fs::remove_dir_all(&dir);
    assert!(logs.contains("TRACE") || logs.contains("DEBUG") || logs.contains("INFO"));
    let leaked = secrets.found_in(&logs);
    assert!(leaked.is_empty(), "logged: {leaked:?}");
}

// ---------------------------------------------------------------------------------------------
// JWKS refetch on key rotation, rate-limited
// ---------------------------------------------------------------------------------------------

/// Requests at the AS's JWKS endpoint, and a switch that makes it answer 503.
#[derive(Default)]
struct JwksProbe {
    fetches: AtomicUsize,
    down: AtomicBool,
}

/// An AS (counting JWKS requests) and an MCP server whose layer refetches keys at most once
/// per `interval` seconds.
struct Rotating {
    as_state: Arc<AsState>,
    issuer: String,
    mcp_url: String,
    layer: AuthLayer,
    probe: Arc<JwksProbe>,
}

async fn rotating_stack(interval: u64) -> Rotating {
    let as_listener = mcp_auth::net::bind("127.0.0.1:0").await.unwrap();
    let rs_listener = mcp_auth::net::bind("127.0.0.1:0").await.unwrap();
    let issuer = mcp_auth::net::origin_of(&as_listener).unwrap();
    let mcp_url = format!("{}/mcp", mcp_auth::net::origin_of(&rs_listener).unwrap());
    let policy = HttpPolicy::AllowLoopbackHttp;
    let issuer_id = Issuer::parse(&issuer, policy).unwrap();
    let resource = ResourceUri::parse(&mcp_url, policy).unwrap();
    let scopes = ScopeSet::from_tokens([mcp_auth::mcp::TOOLS_SCOPE]);
    let mut config = AsConfig::new(issuer_id.clone(), [(resource.clone(), scopes.clone())]);
    config.http_policy = policy;
    config.default_scopes = scopes.clone();
    let as_state = AsState::new(
        config,
        mcp_auth::keys::ephemeral(),
        UserAgentPolicy::single(DEMO_SUBJECT).auto_approving(),
    );
    let probe = Arc::new(JwksProbe::default());
    let service = {
        let state = Arc::clone(&as_state);
        let probe = Arc::clone(&probe);
        tower::service_fn(move |request: http::Request<hyper::body::Incoming>| {
            let state = Arc::clone(&state);
            let probe = Arc::clone(&probe);
            async move {
                if request.uri().path() == "/jwks" {
                    probe.fetches.fetch_add(1, Ordering::SeqCst);
                    if probe.down.load(Ordering::SeqCst) {
                        return Ok(http::Response::builder()
                            .status(503)
                            .body(full("down"))
                            .unwrap());
                    }
                }
                as_server::handle_request(state, request).await
            }
        })
    };
    tokio::spawn(mcp_auth::net::serve(
        as_listener,
        service,
        std::future::pending(),
    ));
    let mut rs_config = RsConfig::new(resource, issuer_id, scopes);
    rs_config.jwks_refetch_interval_secs = interval;
    let layer = AuthLayer::new(
        McpGuard::new(
            ResourceServer::new(rs_config),
            Sessions::new(&mut OsEntropy),
        )
        .with_jwks_uri(format!("{issuer}/jwks")),
    );
    tokio::spawn(mcp_auth::mcp::run(
        rs_listener,
        layer.clone(),
        std::future::pending(),
    ));
    Rotating {
        as_state,
        issuer,
        mcp_url,
        layer,
        probe,
    }
}

impl Rotating {
    fn fetches(&self) -> usize {
        self.probe.fetches.load(Ordering::SeqCst)
    }

    /// A token for this resource, signed by a key the AS never published.
    fn rogue_token(&self, i: usize) -> String {
        let signer = Signer::new(Ed25519Signer::from_seed(
            format!("rogue-{i}"),
            [(i % 251) as u8 + 1; 32],
        ));
        let t = now().as_secs();
        signer
            .sign_access_token(&AccessClaims {
                iss: self.issuer.clone(),
                sub: DEMO_SUBJECT.into(),
                aud: Audience::One(self.mcp_url.clone()),
                exp: t + 600,
                iat: t,
                nbf: Some(t),
                jti: format!("rogue-jti-{i}"),
                client_id: "rogue".into(),
                scope: Some(mcp_auth::mcp::TOOLS_SCOPE.into()),
            })
            .unwrap()
    }

    /// `n` concurrent MCP requests with unknown-kid tokens; every one must get 401. Returns
    /// the JWKS requests they caused and the seconds they took.
    async fn flood(&self, n: usize) -> (usize, u64) {
        let before = self.fetches();
        let started = Instant::now();
        let mut tasks = Vec::new();
        for i in 0..n {
            let request = mcp_post(&self.mcp_url, &self.rogue_token(i));
            tasks.push(tokio::spawn(send(request)));
        }
        for task in tasks {
            let response = task.await.unwrap();
            assert_eq!(response.status, 401);
            assert!(
                response
                    .header_value("www-authenticate")
                    .is_some_and(|h| h.contains("invalid_token"))
            );
        }
        let elapsed = started.elapsed().as_secs_f64().ceil() as u64;
        (self.fetches() - before, elapsed)
    }
}

fn mcp_post(url: &str, token: &str) -> HttpRequest {
    let body = json!({"jsonrpc": "2.0", "id": 1, "method": "initialize",
        "params": mcp_auth::client::initialize_params()});
    HttpRequest::new(Method::Post, url)
        .header("content-type", "application/json")
        .header("accept", "application/json, text/event-stream")
        .header("authorization", format!("Bearer {token}"))
        .body(body.to_string())
}

/// At most one fetch per `interval` seconds over a window of `elapsed` (rounded up) seconds.
fn allowed(elapsed: u64, interval: u64) -> usize {
    1 + (elapsed / interval) as usize
}

// spec: JWT-9, JWT-13
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_rotated_key_is_fetched_once_and_unknown_kids_cannot_force_refetches() {
    const INTERVAL: u64 = 2;
    let r = rotating_stack(INTERVAL).await;
    assert_eq!(r.layer.fetch_keys().await, Ok(1));
    assert_eq!(r.fetches(), 1);

    // A token with the first key is accepted without another fetch.
    let (mut old, old_tokens) = authorized(&r.mcp_url).await;
    old.initialize().await.unwrap();
    assert_eq!(r.fetches(), 1);

    // The AS rotates; once the interval has passed, the new kid makes the RS fetch once.
    let (new_key, pem) = mcp_auth::keys::generate();
    let new_kid = new_key.kid().to_owned();
    r.as_state.rotate_key(&pem).expect("rotated");
    tokio::time::sleep(Duration::from_millis(INTERVAL * 1000 + 100)).await;
    let (mut rotated, rotated_tokens) = authorized(&r.mcp_url).await;
    assert_eq!(jwt_header(&rotated_tokens.access_token)["kid"], new_kid);
    assert_ne!(
        jwt_header(&old_tokens.access_token)["kid"],
        jwt_header(&rotated_tokens.access_token)["kid"]
    );
    let fetched_by = Instant::now();
    rotated.initialize().await.unwrap();
    assert_eq!(r.fetches(), 2, "one refetch for the new kid");
    // The old key is still published: its tokens stay valid, without a fetch.
    old.initialize().await.unwrap();
    rotated.list_tools().await.unwrap();
    assert_eq!(r.fetches(), 2);

    // A flood of tokens with unknown kids right after a fetch: at most one fetch per interval.
    // (A fetch at second t allows the next at t + INTERVAL: over a window of W seconds after
    // a fetch, at most ceil(W) / INTERVAL more.)
    let (fetched, _) = r.flood(40).await;
    let window = fetched_by.elapsed().as_secs_f64().ceil() as u64;
    assert!(
        fetched <= (window / INTERVAL) as usize,
        "{fetched} JWKS fetches within {window} s of the last one"
    );

    // The JWKS endpoint fails: the failed attempt counts toward the limit too.
    r.probe.down.store(true, Ordering::SeqCst);
    tokio::time::sleep(Duration::from_millis(INTERVAL * 1000 + 100)).await;
    let (fetched, elapsed) = r.flood(40).await;
    assert!(fetched >= 1, "the interval had passed: one attempt is due");
    assert!(
        fetched <= allowed(elapsed, INTERVAL),
        "{fetched} JWKS fetches (failing) in {elapsed} s"
    );
    // The keys survived the failed fetch: valid tokens still pass, and cause no fetch.
    let before = r.fetches();
    old.list_tools().await.unwrap();
    rotated.list_tools().await.unwrap();
    assert_eq!(r.fetches(), before);
}

// spec: RS-7
#[tokio::test]
async fn no_handler_runs_and_nothing_is_returned_before_the_token_is_valid() {
    use tower::ServiceExt as _;

    let h = mcp_auth_testkit::harness::Harness::new();
    let rs = mcp_auth_testkit::harness::resource_server(
        &h.authorization_server,
        mcp_auth_testkit::harness::RESOURCE,
    );
    let layer = AuthLayer::new(
        McpGuard::new(rs, Sessions::new(&mut OsEntropy)).with_jwks_uri("https://as.example/jwks"),
    );
    let calls = Arc::new(AtomicUsize::new(0));
    let counted = Arc::clone(&calls);
    let handler = tower::service_fn(
        move |_: http::Request<http_body_util::Full<bytes::Bytes>>| {
            counted.fetch_add(1, Ordering::SeqCst);
            async { Ok::<_, std::convert::Infallible>(http::Response::new(full("SECRET"))) }
        },
    );
    let service = tower::Layer::layer(&layer, handler);
    for authorization in [
        None,
        Some("Bearer"),
        Some("Bearer not.a.jwt"),
        Some("Basic abc"),
    ] {
        let mut request = http::Request::post("/mcp")
            .header("content-type", "application/json")
            .header("accept", "application/json, text/event-stream");
        if let Some(value) = authorization {
            request = request.header("authorization", value);
        }
        let request = request
            .body(http_body_util::Full::new(bytes::Bytes::from_static(
                br#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"whoami"}}"#,
            )))
            .unwrap();
        let response = service.clone().oneshot(request).await.unwrap();
        assert!(
            [400, 401].contains(&response.status().as_u16()),
            "{authorization:?}"
        );
        let body = http_body_util::BodyExt::collect(response.into_body())
            .await
            .unwrap()
            .to_bytes();
        assert!(
            !body.windows(6).any(|w| w == b"SECRET"),
            "{authorization:?}"
        );
    }
    assert_eq!(calls.load(Ordering::SeqCst), 0, "the handler never ran");
}
