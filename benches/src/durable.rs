//! The AS's durable stores measured through the driver (issue 13): one flow is a dynamic
//! client registration, an authorization (auto-approved) and the code-for-token exchange, each
//! a request handed to the AS driver of a [`Stack`] whose AS keeps its state in memory, in
//! SQLite (`--data`) or in PostgreSQL (`--database-url`). The registration and the exchange each
//! commit before they answer; the authorization commits nothing (codes are memory only).

use mcp_auth::demo::{Stack, StackOptions};
use mcp_auth_proto::form::encode;
use mcp_auth_proto::pkce::CodeVerifier;

/// Where the AS keeps its state.
#[derive(Clone, Debug)]
pub enum Backing {
    /// In memory (the baseline).
    Memory,
    /// A SQLite data directory.
    Sqlite(std::path::PathBuf),
    /// A PostgreSQL database URL.
    Postgres(String),
}

/// A running stack and a client for it.
pub struct Target {
    stack: Stack,
    host: String,
    resource: String,
}

/// Most flows in one block (the AS holds at most 10 000 clients and grants).
pub const BLOCK_FLOWS: u64 = 4_000;

const REDIRECT: &str = "http://127.0.0.1:9/cb";

impl Target {
    /// Start a stack (auto-approving) on `backing`.
    pub async fn start(backing: &Backing) -> Self {
        let options = StackOptions::default().with_auto_approve(true);
        let options = match backing {
            Backing::Memory => options,
            Backing::Sqlite(dir) => options.with_data(Some(dir.clone())),
            Backing::Postgres(url) => options.with_database_url(Some(url.clone())),
        };
        let stack = Stack::start(options).await.expect("the stack starts");
        let resource = stack.mcp_url.clone();
        let host = stack
            .issuer
            .split_once("://")
            .map_or("", |(_, rest)| rest)
            .split('/')
            .next()
            .unwrap_or_default()
            .to_owned();
        Self {
            stack,
            host,
            resource,
        }
    }

    /// Stop the stack.
    pub async fn stop(self) {
        self.stack.stop().await;
    }

    /// One request straight into the AS driver ([`mcp_auth::as_server::handle_request`]: the
    /// lock, the core, the commit on a blocking thread), without a socket and without a peer
    /// address, so the per-address rate limits do not apply: (status, `location`, body).
    async fn call(
        &self,
        method: http::Method,
        target: &str,
        form: Option<(&str, Vec<u8>)>,
    ) -> (u16, Option<String>, Vec<u8>) {
        use http_body_util::BodyExt as _;
        let mut request = http::Request::builder()
            .method(method)
            .uri(target)
            .header("host", self.host.as_str());
        let body = match form {
            Some((content_type, body)) => {
                request = request.header("content-type", content_type);
                body
            }
            None => Vec::new(),
        };
        let request = request
            .body(http_body_util::Full::new(bytes::Bytes::from(body)))
            .expect("a request");
        let response = mcp_auth::as_server::handle_request(
            std::sync::Arc::clone(&self.stack.as_state),
            request,
        )
        .await
        .unwrap_or_else(|e| match e {});
        let status = response.status().as_u16();
        let location = response
            .headers()
            .get("location")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let body = response
            .into_body()
            .collect()
            .await
            .map(|b| b.to_bytes().to_vec())
            .unwrap_or_default();
        (status, location, body)
    }

    /// One flow: register, authorize, exchange the code; panics on an unexpected answer.
    pub async fn flow(&self) {
        let body = serde_json::json!({"redirect_uris": [REDIRECT],
            "token_endpoint_auth_method": "none", "client_name": "bench"});
        let (status, _, registered) = self
            .call(
                http::Method::POST,
                "/register",
                Some((
                    "application/json",
                    serde_json::to_vec(&body).unwrap_or_default(),
                )),
            )
            .await;
        assert_eq!(
            status,
            201,
            "registration: {}",
            String::from_utf8_lossy(&registered)
        );
        let client: serde_json::Value =
            serde_json::from_slice(&registered).expect("registration JSON");
        let client_id = client["client_id"].as_str().expect("client_id");
        let verifier = CodeVerifier::generate(&mut mcp_auth::net::OsEntropy);
        let challenge = verifier.challenge();
        let query = encode([
            ("response_type", "code"),
            ("client_id", client_id),
            ("redirect_uri", REDIRECT),
            ("code_challenge", challenge.as_str()),
            ("code_challenge_method", "S256"),
            ("resource", self.resource.as_str()),
            ("state", "s"),
        ]);
        let (_, location, body) = self
            .call(http::Method::GET, &format!("/authorize?{query}"), None)
            .await;
        let location =
            location.unwrap_or_else(|| panic!("a redirect: {}", String::from_utf8_lossy(&body)));
        let code = location
            .split_once('?')
            .map(|(_, q)| q)
            .into_iter()
            .flat_map(|q| q.split('&'))
            .find_map(|p| p.strip_prefix("code="))
            .expect("a code")
            .to_owned();
        let form = encode([
            ("grant_type", "authorization_code"),
            ("code", code.as_str()),
            ("redirect_uri", REDIRECT),
            ("client_id", client_id),
            ("code_verifier", verifier.as_str()),
            ("resource", self.resource.as_str()),
        ]);
        let (status, _, body) = self
            .call(
                http::Method::POST,
                "/token",
                Some(("application/x-www-form-urlencoded", form.into_bytes())),
            )
            .await;
        assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    }

    /// Flows for about `block` (at most [`BLOCK_FLOWS`]): (flows, seconds).
    pub async fn block(&self, block: std::time::Duration) -> (u64, f64) {
        let start = std::time::Instant::now();
        let mut flows = 0;
        while start.elapsed() < block && flows < BLOCK_FLOWS {
            self.flow().await;
            flows += 1;
        }
        (flows, start.elapsed().as_secs_f64())
    }
}
