//! SIGKILL during a concurrent registration and token load (issue 13): `serve --data DIR` (and
//! `serve --database-url URL`, on PostgreSQL) runs as a process; several workers register clients, complete authorizations and rotate refresh
//! tokens as fast as it answers; the process is killed (SIGKILL) in the middle of that load and
//! started again on the same directory and addresses. Nothing it acknowledged is lost:
//! - every client whose registration was answered is known after the restart;
//! - every family's last answered refresh token still works, unless a refresh of it was in
//!   flight at the kill (then it may have been rotated without an answer: the spec's answer to
//!   presenting it is a replay, and either outcome is accepted);
//! - every refresh token that was answered as rotated out is still refused (the rotation was
//!   kept).
//!
//! The load and the kill are bounded in time (the load runs [`LOAD`], each request has a
//! timeout).

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

#[path = "support/durable_http.rs"]
mod durable_http;

use durable_http::{host_port, serve_process};
use mcp_auth::client::Http;
use mcp_auth::net::OsEntropy;
use mcp_auth_proto::http::{HttpRequest, HttpResponse, Method};
use mcp_auth_proto::pkce::CodeVerifier;
use mcp_auth_proto::uri::HttpPolicy;
use serde_json::{Value, json};

const REDIRECT_URI: &str = "http://127.0.0.1:9/cb";
/// How long the load runs before the kill.
const LOAD: Duration = Duration::from_millis(1500);
/// Workers sending requests at the same time.
const WORKERS: usize = 4;

fn data_dir() -> PathBuf {
    let dir = std::env::temp_dir().join(format!("mcp-auth-sigkill-load-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

/// Where `serve` keeps its state: a data directory, or a PostgreSQL database.
#[derive(Clone, Debug)]
enum Keep {
    Data(PathBuf),
    Database(String),
}

impl Keep {
    /// The arguments of `serve` that name it.
    fn args(&self) -> Vec<std::ffi::OsString> {
        match self {
            Self::Data(dir) => vec!["--data".into(), dir.clone().into_os_string()],
            Self::Database(url) => vec!["--database-url".into(), url.into()],
        }
    }
}

/// `serve` on `keep` at the given addresses: the child, the issuer, the MCP URL.
async fn serve(
    keep: &Keep,
    as_addr: &str,
    rs_addr: &str,
) -> (tokio::process::Child, String, String) {
    serve_process(&keep.args(), as_addr, rs_addr).await
}

/// Send with a bounded wait; `None` when there is no answer (the process was killed).
async fn send(request: &HttpRequest) -> Option<HttpResponse> {
    let http = Http::new(HttpPolicy::AllowLoopbackHttp);
    tokio::time::timeout(Duration::from_secs(10), http.send(request))
        .await
        .ok()
        .and_then(Result::ok)
}

/// [`send`], waiting and sending again while the server answers 429 (its per-address rate
/// limits: a refusal, not an acknowledgement); `None` once the server is gone.
async fn send_through_limits(request: &HttpRequest) -> Option<HttpResponse> {
    loop {
        match send(request).await {
            Some(r) if r.status == 429 => tokio::time::sleep(Duration::from_millis(50)).await,
            other => return other,
        }
    }
}

fn json(response: &HttpResponse) -> Value {
    serde_json::from_slice(&response.body).unwrap_or_default()
}

fn form(url: String, pairs: &[(&str, &str)]) -> HttpRequest {
    HttpRequest::new(Method::Post, url)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(mcp_auth_proto::form::encode(pairs.iter().copied()))
}

fn register_request(issuer: &str) -> HttpRequest {
    let body = json!({"redirect_uris": [REDIRECT_URI], "token_endpoint_auth_method": "none",
        "grant_types": ["authorization_code", "refresh_token"], "client_name": "load"});
    HttpRequest::new(Method::Post, format!("{issuer}/register"))
        .header("content-type", "application/json")
        .body(serde_json::to_vec(&body).unwrap_or_default())
}

fn authorize_request(
    issuer: &str,
    resource: &str,
    client_id: &str,
    v: &CodeVerifier,
) -> HttpRequest {
    let query = mcp_auth_proto::form::encode([
        ("response_type", "code"),
        ("client_id", client_id),
        ("redirect_uri", REDIRECT_URI),
        ("code_challenge", v.challenge().as_str()),
        ("code_challenge_method", "S256"),
        ("state", "s"),
        ("resource", resource),
    ]);
    HttpRequest::new(Method::Get, format!("{issuer}/authorize?{query}"))
}

/// The code of a redirect to the client, if it is one.
fn code_of(response: &HttpResponse) -> Option<String> {
    let location = response.header_value("location")?;
    let query = location.strip_prefix(REDIRECT_URI)?.strip_prefix('?')?;
    let params = mcp_auth_proto::form::Params::decode(query.as_bytes()).ok()?;
    params.one("code").ok().flatten().map(str::to_owned)
}

fn refresh_request(issuer: &str, client_id: &str, token: &str) -> HttpRequest {
    form(
        format!("{issuer}/token"),
        &[
            ("grant_type", "refresh_token"),
            ("refresh_token", token),
            ("client_id", client_id),
        ],
    )
}

/// One refresh token family as the workers saw it.
#[derive(Clone, Debug, Default)]
struct Family {
    client_id: String,
    /// Every refresh token answered, in order (all but the last were rotated out).
    answered: Vec<String>,
    /// A refresh of the last one was sent and got no answer.
    in_flight: bool,
}

/// What the load acknowledged.
#[derive(Debug, Default)]
struct Acknowledged {
    clients: Vec<String>,
    families: Vec<Family>,
}

/// Register a client and redeem a code for it, when the registration limit allows; then
/// rotate that family's refresh token once; again until the server stops answering.
async fn worker(issuer: String, resource: String, seen: Arc<Mutex<Acknowledged>>) {
    let lock = || {
        seen.lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    };
    let mut family: Option<(usize, String, String)> = None;
    loop {
        let Some(r) = send(&register_request(&issuer)).await else {
            return;
        };
        if r.status != 429 {
            assert_eq!(r.status, 201, "{}", String::from_utf8_lossy(&r.body));
            let client_id = json(&r)["client_id"]
                .as_str()
                .expect("client id")
                .to_owned();
            lock().clients.push(client_id.clone());
            let verifier = CodeVerifier::generate(&mut OsEntropy);
            let authorize = authorize_request(&issuer, &resource, &client_id, &verifier);
            let Some(r) = send_through_limits(&authorize).await else {
                return;
            };
            let code = code_of(&r).expect("a redirect with a code");
            let exchange = form(
                format!("{issuer}/token"),
                &[
                    ("grant_type", "authorization_code"),
                    ("code", &code),
                    ("client_id", &client_id),
                    ("redirect_uri", REDIRECT_URI),
                    ("code_verifier", verifier.as_str()),
                    ("resource", &resource),
                ],
            );
            let Some(r) = send_through_limits(&exchange).await else {
                return;
            };
            assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
            let first = json(&r)["refresh_token"]
                .as_str()
                .expect("refresh token")
                .to_owned();
            let mut seen = lock();
            seen.families.push(Family {
                client_id: client_id.clone(),
                answered: vec![first.clone()],
                in_flight: false,
            });
            family = Some((seen.families.len() - 1, client_id, first));
        }
        let Some((index, client_id, current)) = &mut family else {
            tokio::time::sleep(Duration::from_millis(20)).await;
            continue;
        };
        lock().families[*index].in_flight = true;
        let Some(r) = send_through_limits(&refresh_request(&issuer, client_id, current)).await
        else {
            return;
        };
        assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
        *current = json(&r)["refresh_token"]
            .as_str()
            .expect("rotated")
            .to_owned();
        let mut seen = lock();
        seen.families[*index].answered.push(current.clone());
        seen.families[*index].in_flight = false;
    }
}

// spec: PF-23, RT-1, RT-2
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_under_registration_and_token_load_loses_nothing_acknowledged() {
    let data = data_dir();
    sigkill_under_load(Keep::Data(data.clone())).await;
    let _ = std::fs::remove_dir_all(&data);
}

// spec: PF-23, RT-1, RT-2
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_sigkill_under_registration_and_token_load_loses_nothing_acknowledged() {
    sigkill_under_load(Keep::Database(mcp_auth_testkit::postgres::database_url(
        "sigkill",
    )))
    .await;
}

async fn sigkill_under_load(keep: Keep) {
    let data = keep;
    let (mut child, issuer, mcp_url) = serve(&data, "127.0.0.1:0", "127.0.0.1:0").await;
    let seen = Arc::new(Mutex::new(Acknowledged::default()));
    let workers: Vec<_> = (0..WORKERS)
        .map(|_| tokio::spawn(worker(issuer.clone(), mcp_url.clone(), Arc::clone(&seen))))
        .collect();
    tokio::time::sleep(LOAD).await;
    child.start_kill().expect("SIGKILL");
    child.wait().await.expect("killed");
    for w in workers {
        w.await.expect("a worker ends when the server is gone");
    }
    let seen = std::mem::take(
        &mut *seen
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner),
    );
    assert!(
        seen.clients.len() >= WORKERS && seen.families.iter().any(|f| f.answered.len() > 1),
        "the load ran: {} clients, {} families",
        seen.clients.len(),
        seen.families.len()
    );
    let (mut child, issuer2, mcp2) = serve(&data, &host_port(&issuer), &host_port(&mcp_url)).await;
    assert_eq!(
        (issuer2.as_str(), mcp2.as_str()),
        (issuer.as_str(), mcp_url.as_str())
    );
    // Every answered registration is known.
    for client_id in &seen.clients {
        let verifier = CodeVerifier::generate(&mut OsEntropy);
        let r = send(&authorize_request(&issuer, &mcp_url, client_id, &verifier))
            .await
            .expect("an answer");
        assert!(
            code_of(&r).is_some(),
            "client {client_id} was lost: {}",
            r.status
        );
    }
    let (mut kept, mut uncertain) = (0, 0);
    for family in &seen.families {
        let last = family.answered.last().expect("a token");
        let r = send(&refresh_request(&issuer, &family.client_id, last))
            .await
            .expect("an answer");
        if family.in_flight {
            uncertain += 1;
            assert!(
                r.status == 200 || json(&r)["error"] == "invalid_grant",
                "{}",
                r.status
            );
        } else {
            kept += 1;
            assert_eq!(
                r.status, 200,
                "the last answered token of {family:?} was lost"
            );
        }
        // A token answered as rotated out is still refused.
        if let Some(rotated_out) = family.answered.iter().rev().nth(1) {
            let replay = send(&refresh_request(&issuer, &family.client_id, rotated_out))
                .await
                .expect("an answer");
            assert_eq!(
                json(&replay)["error"],
                "invalid_grant",
                "a rotation of {family:?} was lost"
            );
        }
    }
    eprintln!(
        "SIGKILL under load: {} registrations and {} families answered ({} rotations); \
         {kept} families checked current, {uncertain} with a refresh in flight at the kill",
        seen.clients.len(),
        seen.families.len(),
        seen.families
            .iter()
            .map(|f| f.answered.len() - 1)
            .sum::<usize>(),
    );
    child.start_kill().expect("SIGKILL");
    let _ = child.wait().await;
}
