//! The demo MCP server: an rmcp handler with three tools, served by rmcp's Streamable HTTP
//! service behind [`mcp_auth_layer::AuthLayer`], speaking exactly the revisions the layer's
//! [`RsConfig::revisions`](mcp_auth_proto::resource::RsConfig::revisions) names (default
//! 2025-06-18 only).
//!
//! One endpoint serves every configured revision: rmcp's default (session) mode gives an
//! `initialize` request a session, while a request that carries the 2026-07-28 per-request
//! `_meta` (`server/discover` included) is routed to its stateless path, answered as JSON.
//! rmcp checks that the `_meta` and the `Mcp-Method`/`Mcp-Name` headers agree with the body;
//! the layer (the core's guard) has already checked the token, the exact
//! `MCP-Protocol-Version`, `Mcp-Method` against the body, and dropped any session id of a
//! stateless request.
//!
//! State handles (2026-07-28 "State Handle Hijacking", SEC-18): this server mints none that a
//! client could present instead of its token. Its session ids are bound to their creator by
//! the guard and never authenticate anything; rmcp's `request-state` feature (server-minted
//! `requestState` for multi-round-trip tool calls) is not enabled, and no tool asks for input.
//!
//! Tools: `whoami` (the validated token's subject, client, scopes and audience), `echo`, and
//! `admin_info`, which needs the extra scope [`ADMIN_SCOPE`]. The layer already refuses a
//! `tools/call` of `admin_info` with HTTP 403 `insufficient_scope` (the spec's answer); the
//! tool checks again with the core's rule and, should it be reached without the scope (e.g.
//! behind a layer configured without tool scopes), returns a tool error that says
//! `insufficient_scope` and carries the challenge.

use std::borrow::Cow;
use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::sync::Arc;

use mcp_auth_proto::Revision;
use mcp_auth_proto::jwt::Access;
use mcp_auth_proto::types::ScopeSet;
use rmcp::handler::server::router::tool::ToolRouter;
use rmcp::handler::server::tool::Extension;
use rmcp::handler::server::wrapper::Parameters;
use rmcp::model::{
    CallToolResult, ContentBlock, Implementation, ProtocolVersion, ServerCapabilities, ServerConfig,
};
use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
use rmcp::transport::streamable_http_server::{StreamableHttpServerConfig, StreamableHttpService};
use rmcp::{ErrorData, ServerHandler, tool, tool_handler, tool_router};
use tokio::net::TcpListener;

use mcp_auth_layer::{AuthLayer, ScopeCheck};

/// The scope every tool call is meant for.
pub const TOOLS_SCOPE: &str = "mcp:tools";
/// The extra scope `admin_info` needs.
pub const ADMIN_SCOPE: &str = "mcp:admin";
/// The tool that needs [`ADMIN_SCOPE`].
pub const ADMIN_TOOL: &str = "admin_info";

/// Arguments of `echo`.
#[derive(Debug, serde::Deserialize, rmcp::schemars::JsonSchema)]
#[schemars(crate = "rmcp::schemars")]
pub struct EchoArgs {
    /// The text to send back.
    pub text: String,
}

/// The demo MCP server.
#[derive(Clone, Debug)]
pub struct DemoServer {
    tool_router: ToolRouter<Self>,
    /// The revisions it speaks, oldest first (never empty).
    versions: Vec<ProtocolVersion>,
}

impl Default for DemoServer {
    fn default() -> Self {
        Self::new()
    }
}

/// rmcp's name of a revision.
pub fn protocol_version(revision: Revision) -> ProtocolVersion {
    match revision {
        Revision::V2025_06_18 => ProtocolVersion::V_2025_06_18,
        Revision::V2025_11_25 => ProtocolVersion::V_2025_11_25,
        Revision::V2026_07_28 => ProtocolVersion::V_2026_07_28,
    }
}

fn access_of(parts: &http::request::Parts) -> Result<&Access, ErrorData> {
    parts
        .extensions
        .get::<Access>()
        .ok_or_else(|| ErrorData::internal_error("no validated token in the request", None))
}

#[tool_router]
impl DemoServer {
    /// A server with its tools, speaking 2025-06-18 only.
    pub fn new() -> Self {
        Self::with_revisions(&BTreeSet::from([Revision::default()]))
    }

    /// A server with its tools, speaking exactly `revisions` (2025-06-18 if empty).
    pub fn with_revisions(revisions: &BTreeSet<Revision>) -> Self {
        let mut versions: Vec<ProtocolVersion> =
            revisions.iter().copied().map(protocol_version).collect();
        if versions.is_empty() {
            versions.push(ProtocolVersion::V_2025_06_18);
        }
        Self {
            tool_router: Self::tool_router(),
            versions,
        }
    }

    /// Who the validated access token says the caller is.
    #[tool(
        description = "The subject, client_id, scopes and audience of the validated access token"
    )]
    async fn whoami(
        &self,
        Extension(parts): Extension<http::request::Parts>,
    ) -> Result<CallToolResult, ErrorData> {
        let access = access_of(&parts)?;
        let value = serde_json::json!({
            "subject": access.subject,
            "client_id": access.client_id,
            "scopes": access.scopes.iter().collect::<Vec<_>>(),
            "audience": access.audience,
            "issuer": access.issuer,
            "expires_at": access.expires_at.as_secs(),
        });
        Ok(CallToolResult::success(vec![ContentBlock::text(
            value.to_string(),
        )]))
    }

    /// Echo the text back.
    #[tool(description = "Echo the given text")]
    async fn echo(
        &self,
        Parameters(EchoArgs { text }): Parameters<EchoArgs>,
    ) -> Result<CallToolResult, ErrorData> {
        Ok(CallToolResult::success(vec![ContentBlock::text(text)]))
    }

    /// Needs the `mcp:admin` scope.
    #[tool(description = "Administrative information; needs the mcp:admin scope")]
    async fn admin_info(
        &self,
        Extension(parts): Extension<http::request::Parts>,
    ) -> Result<CallToolResult, ErrorData> {
        let access = access_of(&parts)?;
        let check = parts
            .extensions
            .get::<ScopeCheck>()
            .ok_or_else(|| ErrorData::internal_error("no scope check in the request", None))?;
        match check.require(access, &ScopeSet::from_tokens([ADMIN_SCOPE])) {
            Ok(()) => Ok(CallToolResult::success(vec![ContentBlock::text(
                "admin: all systems nominal",
            )])),
            Err(challenge) => Ok(CallToolResult::error(vec![ContentBlock::text(format!(
                "insufficient_scope: WWW-Authenticate: {}",
                challenge.www_authenticate
            ))])),
        }
    }
}

#[tool_handler(router = self.tool_router)]
impl ServerHandler for DemoServer {
    /// The protocol version `initialize` falls back to: the newest configured revision that
    /// has `initialize` (the newest configured one if none has: rmcp then refuses the
    /// handshake with `-32022`).
    fn get_info(&self) -> ServerConfig {
        let default = self
            .versions
            .iter()
            .rev()
            .find(|v| v.has_initialize())
            .or(self.versions.last())
            .cloned()
            .unwrap_or(ProtocolVersion::V_2025_06_18);
        ServerConfig::new(ServerCapabilities::builder().enable_tools().build())
            .with_protocol_version(default)
            .with_server_info(Implementation::new(
                "mcp-auth demo",
                env!("CARGO_PKG_VERSION"),
            ))
    }

    fn supported_protocol_versions(&self) -> Cow<'static, [ProtocolVersion]> {
        Cow::Owned(self.versions.clone())
    }
}

/// The scopes each tool needs beyond a valid token (for [`McpGuard::with_tool_scopes`](mcp_auth_layer::McpGuard::with_tool_scopes)).
pub fn tool_scopes() -> BTreeMap<String, ScopeSet> {
    BTreeMap::from([(ADMIN_TOOL.to_owned(), ScopeSet::from_tokens([ADMIN_SCOPE]))])
}

/// Serve the demo MCP server at every path of `listener`'s origin (the endpoint is the
/// resource's path, e.g. `/mcp`) behind `layer`, until `shutdown` completes.
pub async fn run(listener: TcpListener, layer: AuthLayer, shutdown: impl Future<Output = ()>) {
    run_tls(listener, None, layer, shutdown).await;
}

/// [`run`], over TLS when `tls` is given.
pub async fn run_tls(
    listener: TcpListener,
    tls: Option<tokio_rustls::TlsAcceptor>,
    layer: AuthLayer,
    shutdown: impl Future<Output = ()>,
) {
    let revisions = layer.with_guard(|g| g.resource_server().config().revisions.clone());
    // Session mode (the default) for the initialize-based revisions; rmcp routes a request
    // with 2026-07-28 `_meta` statelessly whatever this says, and answers those with JSON.
    let config = StreamableHttpServerConfig::default().with_json_response(true);
    let mcp = StreamableHttpService::new(
        move || Ok(DemoServer::with_revisions(&revisions)),
        Arc::new(LocalSessionManager::default()),
        config,
    );
    crate::net::serve_tls(listener, tls, crate::net::guarded(&layer, mcp), shutdown).await;
}
