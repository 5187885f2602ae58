//! The authorization server and the client, from one recorded flow of the in-memory harness.
//!
//! [`AsFlow`] runs [`Harness::drive`] once (401, discovery, registration, authorization with
//! the user approving, token) and keeps the authorization server with its registered client
//! and the requests the client sent, so that each endpoint can be measured alone: a
//! registration is replayed as is, an authorization request mints a new code every time (same
//! PKCE challenge), and the token request is replayed with that code.
//!
//! [`client_steps`] records the client state machine before each of its inputs, with the input,
//! so that each step can be replayed from a clone.

use mcp_auth_proto::UnixTime;
use mcp_auth_proto::client::{Action, Client};
use mcp_auth_proto::entropy::Sequential;
use mcp_auth_proto::http::{HttpRequest, HttpResponse, Method};
use mcp_auth_proto::server::AuthorizationServer;
use mcp_auth_proto::server::http::{UserAgentPolicy, handle};
use mcp_auth_testkit::harness::{Harness, query_map, redirect_query, split_url};

/// An authorization server with one registered public client, and the client's requests.
pub struct AsFlow {
    /// The server right after the recorded flow (client registered, one grant).
    pub server: AuthorizationServer,
    /// The user at the consent page (approves automatically).
    pub user: UserAgentPolicy,
    /// The time of the flow.
    pub now: UnixTime,
    /// `POST /register` as the client sent it.
    pub register: HttpRequest,
    /// `GET /authorize?…` as the user agent sent it.
    pub authorize: HttpRequest,
    /// `POST /token` (authorization code) as the client sent it.
    pub exchange: HttpRequest,
    /// The code in [`AsFlow::exchange`].
    pub code: String,
    /// The client id.
    pub client_id: String,
    /// A refresh token of the recorded grant.
    pub refresh_token: String,
}

/// A request addressed by absolute URL, as the server's handler sees it (path and query).
fn local(request: &HttpRequest) -> HttpRequest {
    let (_, path, query) = split_url(&request.url).expect("absolute URL");
    HttpRequest {
        url: path,
        query,
        ..request.clone()
    }
}

impl AsFlow {
    /// Run the harness flow once and keep what the endpoints need.
    pub fn new() -> Self {
        let mut h = Harness::new();
        let tokens = h.drive().expect("the harness flow succeeds");
        let find = |suffix: &str| {
            h.log
                .iter()
                .map(|(request, _)| local(request))
                .find(|r| r.url.ends_with(suffix))
                .unwrap_or_else(|| panic!("no {suffix} request in the flow"))
        };
        let exchange = find("/token");
        let form = query_map(std::str::from_utf8(&exchange.body).expect("form body"));
        Self {
            register: find("/register"),
            authorize: find("/authorize"),
            code: form.get("code").cloned().expect("code"),
            client_id: tokens.client_id.clone(),
            refresh_token: tokens.refresh_token.clone().expect("refresh token"),
            exchange,
            server: h.authorization_server.clone(),
            user: h.user.clone(),
            now: h.now,
        }
    }

    /// Handle one request at the authorization server.
    pub fn handle(
        &self,
        server: &mut AuthorizationServer,
        entropy: &mut Sequential,
        request: &HttpRequest,
    ) -> HttpResponse {
        handle(server, self.now, entropy, &self.user, request)
    }

    /// Run the authorization endpoint (the user approves) and return the new code.
    pub fn new_code(&self, server: &mut AuthorizationServer, entropy: &mut Sequential) -> String {
        let response = self.handle(server, entropy, &self.authorize);
        let query = redirect_query(&response).expect("redirect to the client");
        query_map(&query).remove("code").expect("a code")
    }

    /// The token request for `code` (the recorded one with its code replaced).
    pub fn exchange_request(&self, code: &str) -> HttpRequest {
        let body = std::str::from_utf8(&self.exchange.body).expect("form body");
        let body = body.replace(&format!("code={}", self.code), &format!("code={code}"));
        HttpRequest {
            body: body.into_bytes(),
            ..self.exchange.clone()
        }
    }

    /// The refresh request for `refresh_token`.
    pub fn refresh_request(&self, refresh_token: &str) -> HttpRequest {
        let body = mcp_auth_proto::form::encode([
            ("grant_type", "refresh_token"),
            ("refresh_token", refresh_token),
            ("client_id", self.client_id.as_str()),
        ]);
        HttpRequest::new(Method::Post, self.exchange.url.clone())
            .header("content-type", "application/x-www-form-urlencoded")
            .header("accept", "application/json")
            .body(body)
    }

    /// Exchange a fresh code, returning the refresh token of the new grant.
    pub fn new_refresh_token(
        &self,
        server: &mut AuthorizationServer,
        entropy: &mut Sequential,
    ) -> String {
        let code = self.new_code(server, entropy);
        let response = self.handle(server, entropy, &self.exchange_request(&code));
        assert_eq!(response.status, 200, "exchange");
        refresh_token_of(&response)
    }
}

impl Default for AsFlow {
    fn default() -> Self {
        Self::new()
    }
}

/// The `refresh_token` of a token response.
pub fn refresh_token_of(response: &HttpResponse) -> String {
    let value: serde_json::Value = serde_json::from_slice(&response.body).expect("JSON");
    value["refresh_token"]
        .as_str()
        .expect("refresh_token")
        .to_owned()
}

/// An input to the client state machine.
#[derive(Clone, Debug)]
pub enum ClientInput {
    /// The MCP server's 401 `WWW-Authenticate`.
    Unauthorized(String),
    /// The answer to the last request.
    Response(HttpResponse),
    /// The query of the redirect to the redirect URI.
    Redirect(String),
}

/// The client before one input, and the input.
#[derive(Clone, Debug)]
pub struct ClientStep {
    /// What the step does.
    pub name: String,
    /// The client before the input.
    pub before: Client,
    /// The input.
    pub input: ClientInput,
}

impl ClientStep {
    /// Feed the input to `client` (a clone of [`ClientStep::before`]) and ask for its next
    /// action.
    pub fn run(&self, client: &mut Client, now: UnixTime, entropy: &mut Sequential) -> Action {
        match &self.input {
            ClientInput::Unauthorized(v) => client.handle_unauthorized([v.as_str()]),
            ClientInput::Response(r) => client.handle_response(now, entropy, r),
            ClientInput::Redirect(q) => {
                let _ = client.handle_redirect(q);
            }
        }
        client.poll_action()
    }
}

/// Every step of the client from the first 401 to `Authorized`, recorded on the harness.
pub fn client_steps() -> (Vec<ClientStep>, UnixTime) {
    let mut h = Harness::new();
    let mut steps = Vec::new();
    let challenge = h.mcp_request(None).expect_err("no token means 401");
    steps.push(ClientStep {
        name: "401 → resource metadata request".into(),
        before: h.client.clone(),
        input: ClientInput::Unauthorized(challenge.www_authenticate.clone()),
    });
    h.client
        .handle_unauthorized([challenge.www_authenticate.as_str()]);
    for _ in 0..32 {
        match h.client.poll_action() {
            Action::Send(request) => {
                let response = h.route(&request);
                let (_, path, _) = split_url(&request.url).expect("URL");
                let what = if path.contains("oauth-protected-resource") {
                    "resource metadata"
                } else if path.contains("oauth-authorization-server")
                    || path.contains("openid-configuration")
                {
                    "server metadata"
                } else if path.ends_with("/register") {
                    "registration response"
                } else if path.ends_with("/token") {
                    "token response"
                } else {
                    "response"
                };
                steps.push(ClientStep {
                    name: what.into(),
                    before: h.client.clone(),
                    input: ClientInput::Response(response.clone()),
                });
                h.client.handle_response(h.now, &mut h.entropy, &response);
            }
            Action::OpenBrowser(url) => {
                let query = h.browse(&url).expect("redirect");
                steps.push(ClientStep {
                    name: "redirect → token request".into(),
                    before: h.client.clone(),
                    input: ClientInput::Redirect(query.clone()),
                });
                h.client.handle_redirect(&query).expect("our redirect");
            }
            Action::Authorized(_) => return (steps, h.now),
            other => panic!("the client flow failed: {other:?}"),
        }
    }
    panic!("the client flow did not finish")
}
