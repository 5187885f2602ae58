//! The demo MCP server: an rmcp handler pinned to protocol 2025-06-18 with three tools, served
//! by rmcp's Streamable HTTP service behind [`mcp_auth_layer::AuthLayer`].
//!
//! Tools: `whoami` (the validated token's subject, client, scopes and audience), `echo`, and
//! `admin_info`, which needs the extra scope [`ADMIN_SCOPE`]. The layer already refuses a
//! `tools/call` of `admin_info` with HTTP 403 `insufficient_scope` (the spec's answer); the
//! tool checks again with the core's rule and, should it be reached without the scope (e.g.
//! behind a layer configured without tool scopes), returns a tool error that says
//! `insufficient_scope` and carries the challenge.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::future::Future;
use std::sync::Arc;

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
}

impl Default for DemoServer {
    fn default() -> Self {
        Self::new()
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
    /// A server with its tools.
    pub fn new() -> Self {
        Self {
            tool_router: Self::tool_router(),
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
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(ServerCapabilities::builder().enable_tools().build())
            .with_protocol_version(ProtocolVersion::V_2025_06_18)
            .with_server_info(Implementation::new(
                "mcp-auth demo",
                env!("CARGO_PKG_VERSION"),
            ))
    }

    fn supported_protocol_versions(&self) -> Cow<'static, [ProtocolVersion]> {
        Cow::Borrowed(&[ProtocolVersion::V_2025_06_18])
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
    let config = StreamableHttpServerConfig::default();
    let mcp = StreamableHttpService::new(
        || Ok(DemoServer::new()),
        Arc::new(LocalSessionManager::default()),
        config,
    );
    crate::net::serve_tls(listener, tls, crate::net::guarded(&layer, mcp), shutdown).await;
}
