//! The AS's durable stores measured through the driver (issue 13): one flow is a dynamic
//! client registration, an authorization (auto-approved) and the code-for-token exchange, as
//! HTTP requests over loopback to a [`Stack`] whose AS keeps its state in memory, in SQLite
//! (`--data`) or in PostgreSQL (`--database-url`). The registration and the exchange each
//! commit before they answer; the authorization commits nothing (codes are memory only).

use mcp_auth::client::Http;
use mcp_auth::demo::{Stack, StackOptions};
use mcp_auth_proto::form::encode;
use mcp_auth_proto::http::{HttpRequest, Method};
use mcp_auth_proto::pkce::CodeVerifier;
use mcp_auth_proto::uri::HttpPolicy;

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
    http: Http,
    resource: String,
}

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
        Self {
            stack,
            http: Http::new(HttpPolicy::AllowLoopbackHttp),
            resource,
        }
    }

    /// Stop the stack.
    pub async fn stop(self) {
        self.stack.stop().await;
    }

    /// One flow: register, authorize, exchange the code; panics on an unexpected answer.
    pub async fn flow(&self) {
        let issuer = &self.stack.issuer;
        let body = serde_json::json!({"redirect_uris": [REDIRECT],
            "token_endpoint_auth_method": "none", "client_name": "bench"});
        let registered = self
            .http
            .send(
                &HttpRequest::new(Method::Post, format!("{issuer}/register"))
                    .header("content-type", "application/json")
                    .body(serde_json::to_vec(&body).unwrap_or_default()),
            )
            .await
            .expect("register");
        assert_eq!(registered.status, 201, "registration");
        let client: serde_json::Value =
            serde_json::from_slice(&registered.body).expect("registration JSON");
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
        let authorized = self
            .http
            .send(&HttpRequest::new(
                Method::Get,
                format!("{issuer}/authorize?{query}"),
            ))
            .await
            .expect("authorize");
        let location = authorized
            .header_value("location")
            .expect("a redirect with the code");
        let code = location
            .split_once('?')
            .map(|(_, q)| q)
            .into_iter()
            .flat_map(|q| q.split('&'))
            .find_map(|p| p.strip_prefix("code="))
            .expect("a code")
            .to_owned();
        let exchanged = self
            .http
            .send(
                &HttpRequest::new(Method::Post, format!("{issuer}/token"))
                    .header("content-type", "application/x-www-form-urlencoded")
                    .body(encode([
                        ("grant_type", "authorization_code"),
                        ("code", code.as_str()),
                        ("redirect_uri", REDIRECT),
                        ("client_id", client_id),
                        ("code_verifier", verifier.as_str()),
                        ("resource", self.resource.as_str()),
                    ])),
            )
            .await
            .expect("token");
        assert_eq!(
            exchanged.status,
            200,
            "{}",
            String::from_utf8_lossy(&exchanged.body)
        );
    }

    /// Flows for about `block`: (flows, seconds).
    pub async fn block(&self, block: std::time::Duration) -> (u64, f64) {
        let start = std::time::Instant::now();
        let mut flows = 0;
        while start.elapsed() < block {
            self.flow().await;
            flows += 1;
        }
        (flows, start.elapsed().as_secs_f64())
    }
}
