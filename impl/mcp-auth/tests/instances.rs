//! Several authorization-server instances on one store behave as one AS (issue 13), on SQLite
//! (two servers on one data directory) and on PostgreSQL (two servers on one database; see
//! `tests/postgres.rs` for how the database is found or started).
//!
//! Both instances have the same issuer and the same MCP server URL, as behind a load balancer;
//! the test plays the load balancer by sending each request to the instance it chooses:
//! - a client registered on A is known to B; a consent page shown by A is answered on B by
//!   the same browser (its session cookie); the code is redeemed on A; the refresh token is
//!   rotated on B; the rotated-out token presented to A is a replay (the family revoked);
//! - a code redeemed on A and B at the same moment succeeds exactly once (the other answer is
//!   `invalid_grant`, and the winner's grant is then revoked: the loser saw a replay),
//!   repeated many times.

use std::path::PathBuf;

use mcp_auth::client::Http;
use mcp_auth::demo::{Stack, StackOptions};
use mcp_auth::net::OsEntropy;
use mcp_auth_proto::http::{HttpRequest, HttpResponse, Method};
use mcp_auth_proto::pkce::CodeVerifier;
use mcp_auth_proto::uri::HttpPolicy;
use serde_json::Value;

const REDIRECT_URI: &str = "http://127.0.0.1:7777/callback";

/// Where the two instances keep their state.
#[derive(Clone, Debug)]
enum Shared {
    Sqlite(PathBuf),
    Postgres(String),
}

impl Shared {
    fn sqlite(name: &str) -> Self {
        let dir =
            std::env::temp_dir().join(format!("mcp-auth-instances-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        Self::Sqlite(dir)
    }

    fn postgres(name: &str) -> Self {
        Self::Postgres(mcp_auth_testkit::postgres::database_url(name))
    }

    fn options(&self) -> StackOptions {
        match self {
            Self::Sqlite(dir) => StackOptions::default().with_data(Some(dir.clone())),
            Self::Postgres(url) => StackOptions::default().with_database_url(Some(url.clone())),
        }
    }
}

/// Two instances on `shared`: A, and B with A's issuer and MCP server URL.
async fn instances(shared: &Shared, auto_approve: bool) -> (Stack, Stack) {
    let a = Stack::start(shared.options().with_auto_approve(auto_approve))
        .await
        .expect("A starts");
    let b = Stack::start(
        shared
            .options()
            .with_auto_approve(auto_approve)
            .with_issuer(Some(a.issuer.clone()))
            .with_mcp_url(Some(a.mcp_url.clone())),
    )
    .await
    .expect("B starts");
    (a, b)
}

/// The instance's own origin (where the load balancer sends a request to it).
fn origin(stack: &Stack) -> String {
    stack.as_origin.clone()
}

/// The load balancer: sends a request to the instance its URL names, with the `Host` of the
/// public URL (the issuer's, which is instance A's origin here), as a reverse proxy that
/// keeps the `Host` header does.
#[derive(Clone, Debug)]
struct Balancer {
    host: String,
}

impl Balancer {
    fn of(a: &Stack) -> Self {
        let host = a.issuer.split_once("://").map_or("", |(_, h)| h).to_owned();
        Self { host }
    }

    async fn send(&self, request: &HttpRequest) -> HttpResponse {
        Http::new(HttpPolicy::AllowLoopbackHttp)
            .send(&request.clone().header("host", self.host.clone()))
            .await
            .expect("the server answers")
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

/// Register a public client with refresh tokens at `origin`; its client id.
async fn register(lb: &Balancer, origin: &str) -> String {
    let body = serde_json::json!({
        "redirect_uris": [REDIRECT_URI],
        "token_endpoint_auth_method": "none",
        "grant_types": ["authorization_code", "refresh_token"],
        "response_types": ["code"],
        "client_name": "instances test",
    });
    let r = lb
        .send(
            &HttpRequest::new(Method::Post, format!("{origin}/register"))
                .header("content-type", "application/json")
                .body(serde_json::to_vec(&body).unwrap_or_default()),
        )
        .await;
    assert_eq!(r.status, 201, "{}", String::from_utf8_lossy(&r.body));
    json(&r)["client_id"]
        .as_str()
        .expect("a client id")
        .to_owned()
}

/// The authorization request for `client_id` at `origin`.
fn authorize(
    origin: &str,
    resource: &str,
    client_id: &str,
    verifier: &CodeVerifier,
) -> HttpRequest {
    let query = mcp_auth_proto::form::encode([
        ("response_type", "code"),
        ("client_id", client_id),
        ("redirect_uri", REDIRECT_URI),
        ("code_challenge", verifier.challenge().as_str()),
        ("code_challenge_method", "S256"),
        ("state", "s1"),
        ("resource", resource),
        ("scope", "mcp:tools"),
    ]);
    HttpRequest::new(Method::Get, format!("{origin}/authorize?{query}"))
}

/// The code of a redirect to the client.
fn code_of(response: &HttpResponse) -> String {
    let location = response.header_value("location").unwrap_or_default();
    assert!(
        (300..400).contains(&response.status) && location.starts_with(REDIRECT_URI),
        "{} {location} {}",
        response.status,
        String::from_utf8_lossy(&response.body)
    );
    let query = location.split_once('?').map_or("", |(_, q)| q);
    mcp_auth_proto::form::Params::decode(query.as_bytes())
        .ok()
        .and_then(|p| p.one("code").ok().flatten().map(str::to_owned))
        .expect("a code")
}

fn redeem(
    origin: &str,
    resource: &str,
    client_id: &str,
    code: &str,
    verifier: &CodeVerifier,
) -> HttpRequest {
    form(
        format!("{origin}/token"),
        &[
            ("grant_type", "authorization_code"),
            ("code", code),
            ("client_id", client_id),
            ("redirect_uri", REDIRECT_URI),
            ("code_verifier", verifier.as_str()),
            ("resource", resource),
        ],
    )
}

fn refresh(origin: &str, client_id: &str, token: &str) -> HttpRequest {
    form(
        format!("{origin}/token"),
        &[
            ("grant_type", "refresh_token"),
            ("refresh_token", token),
            ("client_id", client_id),
        ],
    )
}

/// A form field of an HTML page.
fn field(html: &str, name: &str) -> String {
    let marker = format!("name=\"{name}\" value=\"");
    let start = html.find(&marker).expect("the field") + marker.len();
    html[start..start + html[start..].find('"').expect("its end")].to_owned()
}

async fn one_as_across_instances(shared: Shared) {
    let (a, b) = instances(&shared, false).await;
    let lb = Balancer::of(&a);
    let (oa, ob, resource) = (origin(&a), origin(&b), a.mcp_url.clone());
    // Registered on A, known to B.
    let client_id = register(&lb, &oa).await;
    // The consent page from A; the browser's form is answered on B.
    let verifier = CodeVerifier::generate(&mut OsEntropy);
    let page = lb
        .send(&authorize(&oa, &resource, &client_id, &verifier))
        .await;
    assert_eq!(page.status, 200, "{}", String::from_utf8_lossy(&page.body));
    let cookie = page
        .header_value("set-cookie")
        .and_then(|c| c.split(';').next())
        .expect("a session cookie")
        .to_owned();
    let html = String::from_utf8_lossy(&page.body).into_owned();
    let consent = form(
        format!("{ob}/consent"),
        &[
            ("id", &field(&html, "id")),
            ("csrf", &field(&html, "csrf")),
            ("decision", "approve"),
        ],
    );
    // Another browser (no cookie) is refused on B too.
    assert_eq!(lb.send(&consent).await.status, 400);
    let approved = lb.send(&consent.clone().header("cookie", cookie)).await;
    let code = code_of(&approved);
    // The code from B, redeemed on A.
    let tokens = lb
        .send(&redeem(&oa, &resource, &client_id, &code, &verifier))
        .await;
    assert_eq!(
        tokens.status,
        200,
        "{}",
        String::from_utf8_lossy(&tokens.body)
    );
    let tokens = json(&tokens);
    assert_eq!(tokens["token_type"], "Bearer");
    let rt1 = tokens["refresh_token"]
        .as_str()
        .expect("a refresh token")
        .to_owned();
    // Rotated on B; the rotated-out token on A is a replay: the family is revoked.
    let rotated = lb.send(&refresh(&ob, &client_id, &rt1)).await;
    assert_eq!(
        rotated.status,
        200,
        "{}",
        String::from_utf8_lossy(&rotated.body)
    );
    let rt2 = json(&rotated)["refresh_token"]
        .as_str()
        .expect("rotated")
        .to_owned();
    let replay = lb.send(&refresh(&oa, &client_id, &rt1)).await;
    assert_eq!(json(&replay)["error"], "invalid_grant");
    let after = lb.send(&refresh(&ob, &client_id, &rt2)).await;
    assert_eq!(
        json(&after)["error"],
        "invalid_grant",
        "the family is revoked on B too"
    );
    a.stop().await;
    b.stop().await;
}

/// How many races each store runs.
const RACES: usize = 40;

async fn codes_race(shared: Shared) {
    let (a, b) = instances(&shared, true).await;
    let lb = Balancer::of(&a);
    let (oa, ob, resource) = (origin(&a), origin(&b), a.mcp_url.clone());
    let client_id = register(&lb, &oa).await;
    let (mut won_a, mut won_b) = (0, 0);
    for round in 0..RACES {
        let verifier = CodeVerifier::generate(&mut OsEntropy);
        // Alternate where the code is issued.
        let issuer_side = if round % 2 == 0 { &oa } else { &ob };
        let code = code_of(
            &lb.send(&authorize(issuer_side, &resource, &client_id, &verifier))
                .await,
        );
        let at_a = redeem(&oa, &resource, &client_id, &code, &verifier);
        let at_b = redeem(&ob, &resource, &client_id, &code, &verifier);
        let (ra, rb) = tokio::join!(lb.send(&at_a), lb.send(&at_b));
        let outcome = |r: &HttpResponse| (r.status, json(r)["error"].as_str().map(str::to_owned));
        let winner = match (outcome(&ra), outcome(&rb)) {
            ((200, None), (400, Some(e))) if e == "invalid_grant" => {
                won_a += 1;
                ra
            }
            ((400, Some(e)), (200, None)) if e == "invalid_grant" => {
                won_b += 1;
                rb
            }
            other => panic!("round {round}: exactly one redemption must succeed: {other:?}"),
        };
        // The loser saw a replay of a redeemed code: the winner's grant is revoked (TOK-7).
        let rt = json(&winner)["refresh_token"]
            .as_str()
            .expect("a refresh token")
            .to_owned();
        let after = lb.send(&refresh(&oa, &client_id, &rt)).await;
        assert_eq!(json(&after)["error"], "invalid_grant", "round {round}");
    }
    eprintln!("{RACES} races on {shared:?}: A won {won_a}, B won {won_b}");
    assert_eq!(won_a + won_b, RACES);
    a.stop().await;
    b.stop().await;
}

// spec: PF-23, AZ-29, RT-2
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_two_instances_behave_as_one_as() {
    let shared = Shared::sqlite("one-as");
    one_as_across_instances(shared.clone()).await;
    if let Shared::Sqlite(dir) = shared {
        let _ = std::fs::remove_dir_all(dir);
    }
}

// spec: PF-23, AZ-29, RT-2
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_two_instances_behave_as_one_as() {
    one_as_across_instances(Shared::postgres("one_as")).await;
}

// spec: TOK-6, TOK-7, PF-23
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_a_code_redeemed_on_two_instances_at_once_succeeds_exactly_once() {
    let shared = Shared::sqlite("race");
    codes_race(shared.clone()).await;
    if let Shared::Sqlite(dir) = shared {
        let _ = std::fs::remove_dir_all(dir);
    }
}

// spec: TOK-6, TOK-7, PF-23
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_a_code_redeemed_on_two_instances_at_once_succeeds_exactly_once() {
    codes_race(Shared::postgres("code_race")).await;
}
