//! The in-process stack (AS, MCP server, optionally a second MCP server) and the end-to-end
//! demonstration behind `mcp-auth demo`.

use std::sync::Arc;

use mcp_auth_proto::Revision;
use mcp_auth_proto::challenge::{BearerChallenge, parse_www_authenticate};
use mcp_auth_proto::http::HttpResponse;
use mcp_auth_proto::introspection::IntrospectionConfig;
use mcp_auth_proto::jwt::Signer;
use mcp_auth_proto::resource::{ResourceServer, RsConfig};
use mcp_auth_proto::server::Users;
use mcp_auth_proto::server::http::UserAgentPolicy;
use mcp_auth_proto::server::{AsConfig, paths};
use mcp_auth_proto::types::ScopeSet;
use mcp_auth_proto::uri::{HttpPolicy, Issuer, ResourceUri};
use serde_json::{Value, json};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::as_server::{self, AsState};
use crate::client::{self, McpClient, Options};
use crate::mcp::{self, ADMIN_SCOPE, ADMIN_TOOL, TOOLS_SCOPE};
use crate::transcript::{SharedTranscript, Transcript};
use mcp_auth_layer::{AuthLayer, McpGuard};
use mcp_auth_proto::guard::{Sessions, ToolScopes};

/// The demo user every approval is made as.
pub const DEMO_SUBJECT: &str = "demo-user";

/// How to start a [`Stack`].
///
/// `#[non_exhaustive]`: start from [`StackOptions::default`] and use the `with_*` methods (or
/// assign fields), so that a new option is not a breaking change.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct StackOptions {
    /// Address of the authorization server.
    pub as_addr: String,
    /// Address of the MCP server.
    pub rs_addr: String,
    /// Also start a second MCP server (another resource of the same AS).
    pub second_resource: bool,
    /// The signing key (else a fresh Ed25519 key).
    pub signer: Option<Signer>,
    /// Approve every authorization as the logged-in user without the consent page.
    pub auto_approve: bool,
    /// Accounts with passwords (a login page before consent); else the single demo user.
    pub users: Option<Users>,
    /// Serve https with this certificate, trusting `roots` (its CA) for the key fetch.
    pub tls: Option<crate::tls::ServerTls>,
    /// Access-token lifetime in seconds (else the core's default, 300 s).
    pub access_token_lifetime: Option<u64>,
    /// The MCP servers introspect (RFC 7662) every valid token at the AS, caching answers this
    /// many seconds; each gets a random credential configured on the AS. `None`: JWT only.
    pub introspection_cache_secs: Option<u64>,
    /// The MCP revisions the servers serve (default: 2025-06-18 only). The AS accepts Client
    /// ID Metadata Documents when one of them has them
    /// ([`Revision::client_id_metadata_documents`]).
    pub revisions: std::collections::BTreeSet<mcp_auth_proto::Revision>,
    /// Development switch: client ID URLs and their documents may be on loopback hosts, over
    /// http too ([`AsConfig::cimd_allow_loopback`]). Off by default.
    pub cimd_allow_loopback: bool,
    /// The authorization server's data directory: its durable state (clients, grants, codes,
    /// pending authorizations, sessions, signing keys) is loaded from and committed to the
    /// SQLite database there
    /// ([`crate::store`]). `None`: in memory only, forgotten when the stack stops.
    pub data: Option<std::path::PathBuf>,
    /// The authorization server's PostgreSQL database (`postgres://...`), shared by several
    /// instances; used when [`StackOptions::data`] is `None`.
    pub database_url: Option<String>,
    /// The issuer identifier (the authorization server's public origin, e.g. a load
    /// balancer's in front of several instances); `None`: the origin of `as_addr`.
    pub issuer: Option<String>,
    /// The MCP server's canonical URL (its public one, e.g. behind a load balancer); `None`:
    /// `/mcp` at the origin of `rs_addr`.
    pub mcp_url: Option<String>,
    /// Defenses turned off in the AS and the MCP servers: only in a build with the cfg
    /// `mcp_auth_mutations` (the probe's mutation self-tests, `tests/probe.rs`).
    #[cfg(mcp_auth_mutations)]
    pub mutations: mcp_auth_proto::mutations::Mutations,
}

impl Default for StackOptions {
    fn default() -> Self {
        Self {
            as_addr: "127.0.0.1:0".into(),
            rs_addr: "127.0.0.1:0".into(),
            second_resource: false,
            signer: None,
            auto_approve: false,
            users: None,
            tls: None,
            access_token_lifetime: None,
            introspection_cache_secs: None,
            revisions: std::collections::BTreeSet::from([mcp_auth_proto::Revision::default()]),
            cimd_allow_loopback: false,
            data: None,
            database_url: None,
            issuer: None,
            mcp_url: None,
            #[cfg(mcp_auth_mutations)]
            mutations: mcp_auth_proto::mutations::Mutations::default(),
        }
    }
}

impl StackOptions {
    /// Sets [`StackOptions::revisions`], the MCP revisions the servers serve.
    #[must_use]
    pub fn with_revisions(
        mut self,
        revisions: impl IntoIterator<Item = mcp_auth_proto::Revision>,
    ) -> Self {
        self.revisions = revisions.into_iter().collect();
        self
    }

    /// Sets [`StackOptions::cimd_allow_loopback`]: client metadata documents may be on
    /// loopback hosts (tests and development only).
    #[must_use]
    pub fn with_cimd_allow_loopback(mut self, allow: bool) -> Self {
        self.cimd_allow_loopback = allow;
        self
    }

    /// Sets [`StackOptions::as_addr`], the authorization server's address (default
    /// `127.0.0.1:0`).
    #[must_use]
    pub fn with_as_addr(mut self, as_addr: impl Into<String>) -> Self {
        self.as_addr = as_addr.into();
        self
    }

    /// Sets [`StackOptions::rs_addr`], the MCP server's address (default `127.0.0.1:0`).
    #[must_use]
    pub fn with_rs_addr(mut self, rs_addr: impl Into<String>) -> Self {
        self.rs_addr = rs_addr.into();
        self
    }

    /// Sets [`StackOptions::second_resource`]: also start a second MCP server.
    #[must_use]
    pub fn with_second_resource(mut self, second_resource: bool) -> Self {
        self.second_resource = second_resource;
        self
    }

    /// Sets [`StackOptions::data`], the authorization server's data directory (`None`: in
    /// memory only).
    #[must_use]
    pub fn with_data(mut self, data: Option<std::path::PathBuf>) -> Self {
        self.data = data;
        self
    }

    /// Sets [`StackOptions::issuer`], the authorization server's public origin (`None`: the
    /// origin of its address).
    #[must_use]
    pub fn with_issuer(mut self, issuer: Option<String>) -> Self {
        self.issuer = issuer;
        self
    }

    /// Sets [`StackOptions::mcp_url`], the MCP server's public canonical URL (`None`: `/mcp` at
    /// the origin of its address).
    #[must_use]
    pub fn with_mcp_url(mut self, mcp_url: Option<String>) -> Self {
        self.mcp_url = mcp_url;
        self
    }

    /// Sets [`StackOptions::database_url`], the authorization server's PostgreSQL database.
    #[must_use]
    pub fn with_database_url(mut self, url: Option<String>) -> Self {
        self.database_url = url;
        self
    }

    /// Sets [`StackOptions::signer`], the signing key (`None`: a fresh Ed25519 key).
    #[must_use]
    pub fn with_signer(mut self, signer: Option<Signer>) -> Self {
        self.signer = signer;
        self
    }

    /// Sets [`StackOptions::auto_approve`]: approve every authorization without the consent page.
    #[must_use]
    pub fn with_auto_approve(mut self, auto_approve: bool) -> Self {
        self.auto_approve = auto_approve;
        self
    }

    /// Sets [`StackOptions::users`], accounts with passwords (`None`: the single demo user).
    #[must_use]
    pub fn with_users(mut self, users: Option<Users>) -> Self {
        self.users = users;
        self
    }

    /// Sets [`StackOptions::tls`]: serve https with this certificate (`None`: http).
    #[must_use]
    pub fn with_tls(mut self, tls: Option<crate::tls::ServerTls>) -> Self {
        self.tls = tls;
        self
    }

    /// Sets [`StackOptions::access_token_lifetime`], in seconds (`None`: the core's default).
    #[must_use]
    pub fn with_access_token_lifetime(mut self, secs: Option<u64>) -> Self {
        self.access_token_lifetime = secs;
        self
    }

    /// Sets [`StackOptions::introspection_cache_secs`]: the MCP servers introspect every valid
    /// token, caching answers this many seconds (`None`: JWT only).
    #[must_use]
    pub fn with_introspection_cache_secs(mut self, secs: Option<u64>) -> Self {
        self.introspection_cache_secs = secs;
        self
    }
}

/// Running servers.
#[derive(Debug)]
pub struct Stack {
    /// The authorization server's state.
    pub as_state: Arc<AsState>,
    /// The issuer identifier (the AS's public origin: [`StackOptions::issuer`], else
    /// [`Stack::as_origin`]).
    pub issuer: String,
    /// The origin the authorization server listens on (differs from the issuer behind a load
    /// balancer).
    pub as_origin: String,
    /// The MCP endpoint (`…/mcp`).
    pub mcp_url: String,
    /// The second MCP endpoint, if started.
    pub other_mcp_url: Option<String>,
    /// The auth layer of the first MCP server.
    pub layer: AuthLayer,
    shutdown: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
}

fn scopes(tokens: &[&str]) -> ScopeSet {
    ScopeSet::from_tokens(tokens.iter().copied())
}

fn bad(e: impl std::fmt::Debug) -> std::io::Error {
    std::io::Error::other(format!("{e:?}"))
}

impl Stack {
    /// Bind and start the servers.
    pub async fn start(options: StackOptions) -> std::io::Result<Self> {
        let as_listener = crate::net::bind(&options.as_addr).await?;
        let rs_listener = crate::net::bind(&options.rs_addr).await?;
        let other_listener = if options.second_resource {
            Some(crate::net::bind("127.0.0.1:0").await?)
        } else {
            None
        };
        let scheme = |o: String| match &options.tls {
            Some(_) => o.replacen("http://", "https://", 1),
            None => o,
        };
        let as_origin = scheme(crate::net::origin_of(&as_listener)?);
        let issuer = options.issuer.clone().unwrap_or_else(|| as_origin.clone());
        let mcp_url = match &options.mcp_url {
            Some(url) => url.clone(),
            None => format!("{}/mcp", scheme(crate::net::origin_of(&rs_listener)?)),
        };
        let other_mcp_url = other_listener
            .as_ref()
            .map(|l| crate::net::origin_of(l).map(|o| format!("{}/mcp", scheme(o))))
            .transpose()?;
        let (tls, roots) = options.tls.clone().map(|t| (t.acceptor, t.roots)).unzip();
        let policy = HttpPolicy::AllowLoopbackHttp;
        let issuer_id = Issuer::parse(&issuer, policy).map_err(bad)?;
        let resource = ResourceUri::parse(&mcp_url, policy).map_err(bad)?;
        let mut resources = vec![(resource.clone(), scopes(&[TOOLS_SCOPE, ADMIN_SCOPE]))];
        let other_resource = other_mcp_url
            .as_deref()
            .map(|u| ResourceUri::parse(u, policy).map_err(bad))
            .transpose()?;
        if let Some(other) = &other_resource {
            resources.push((other.clone(), scopes(&[TOOLS_SCOPE])));
        }
        // One random introspection secret per resource server, its digest on the AS.
        let secrets: Vec<(ResourceUri, String)> = match options.introspection_cache_secs {
            None => Vec::new(),
            Some(_) => resources
                .iter()
                .map(|(r, _)| {
                    (
                        r.clone(),
                        mcp_auth_proto::entropy::mint(&mut crate::net::OsEntropy),
                    )
                })
                .collect(),
        };
        let mut config = AsConfig::new(issuer_id.clone(), resources);
        config.resource_credentials = secrets
            .iter()
            .map(|(r, s)| (r.clone(), mcp_auth_proto::types::SecretDigest::of(s)))
            .collect();
        if let Some(secs) = options.access_token_lifetime {
            config.lifetimes.access_token = secs;
        }
        config.http_policy = policy;
        // spec: CIMD-8
        config.client_id_metadata_documents = options
            .revisions
            .iter()
            .any(|r| r.client_id_metadata_documents());
        config.cimd_allow_loopback = options.cimd_allow_loopback;
        #[cfg(mcp_auth_mutations)]
        {
            config.mutations = options.mutations;
        }
        config.default_scopes = scopes(&[TOOLS_SCOPE]);
        config.name = "mcp-auth authorization server".into();
        config.scope_descriptions = [
            (TOOLS_SCOPE, "List and call the server's tools."),
            (ADMIN_SCOPE, "Call the administrative tools too."),
        ]
        .into_iter()
        .map(|(s, d)| (s.to_owned(), d.to_owned()))
        .collect();
        let jwks_uri = config.endpoint(paths::JWKS);
        let introspection_endpoint = config.endpoint(paths::INTROSPECT);
        let policy = UserAgentPolicy {
            auto_approve: options.auto_approve,
            ..match options.users {
                Some(users) => UserAgentPolicy::users(users),
                None => UserAgentPolicy::single(DEMO_SUBJECT),
            }
        };
        // The servers' outgoing https (client metadata documents here, the key fetch
        // below) trusts the stack's roots: Mozilla's, or the private CA of the TLS setup.
        let as_roots = roots
            .clone()
            .unwrap_or_else(mcp_auth_layer::fetch::mozilla_roots);
        let opened = match (&options.data, &options.database_url) {
            (Some(dir), _) => Some((crate::store::Store::open(dir), dir.display().to_string())),
            (None, Some(url)) => Some((
                crate::store::Store::connect(url),
                crate::store::describe_url(url),
            )),
            (None, None) => None,
        };
        let as_state = match opened {
            None => {
                let signer = options.signer.unwrap_or_else(crate::keys::ephemeral);
                AsState::with_document_roots(config, signer, policy, as_roots)
            }
            Some((store, place)) => {
                let store_error =
                    |e: crate::store::StoreError| std::io::Error::other(format!("{place}: {e}"));
                let mut store = store.map_err(store_error)?;
                // The signing key: the one given, else the store's newest, else a new one
                // kept in the store.
                let signer = match options.signer {
                    Some(signer) => signer,
                    None => match store.current_signing_key().map_err(store_error)? {
                        Some(pem) => crate::keys::from_pem(&pem).map_err(|e| {
                            std::io::Error::other(format!("{place}: stored signing key: {e}"))
                        })?,
                        None => {
                            let (signer, pem) = crate::keys::generate();
                            store
                                .add_signing_key(signer.kid(), &pem)
                                .map_err(store_error)?;
                            signer
                        }
                    },
                };
                AsState::with_store(config, signer, policy, as_roots, store).map_err(store_error)?
            }
        };
        let (shutdown, rx) = watch::channel(false);
        let stopped = |mut rx: watch::Receiver<bool>| async move {
            let _ = rx.wait_for(|stop| *stop).await;
        };
        let mut tasks = vec![tokio::spawn(as_server::run_tls(
            as_listener,
            tls.clone(),
            Arc::clone(&as_state),
            stopped(rx.clone()),
        ))];
        let make_layer = |resource: ResourceUri, supported: ScopeSet| {
            let mut rs_config = RsConfig::new(resource.clone(), issuer_id.clone(), supported);
            rs_config.resource_name = Some("mcp-auth demo MCP server".into());
            rs_config.revisions = options.revisions.clone();
            #[cfg(mcp_auth_mutations)]
            {
                rs_config.validation.mutations = options.mutations;
            }
            let secret = secrets.iter().find(|(r, _)| *r == resource);
            if let (Some(secs), Some((_, secret))) = (options.introspection_cache_secs, secret) {
                let mut introspection =
                    IntrospectionConfig::new(introspection_endpoint.clone(), secret.clone());
                introspection.cache_secs = secs;
                rs_config.introspection = Some(introspection);
            }
            let guard = McpGuard::new(
                ResourceServer::new(rs_config),
                Sessions::new(&mut crate::net::OsEntropy),
            )
            .with_tool_scopes(ToolScopes(mcp::tool_scopes()))
            .with_jwks_uri(jwks_uri.clone());
            let roots = roots
                .clone()
                .unwrap_or_else(mcp_auth_layer::fetch::mozilla_roots);
            AuthLayer::with_roots(guard, roots)
        };
        let layer = make_layer(resource, scopes(&[TOOLS_SCOPE, ADMIN_SCOPE]));
        tasks.push(tokio::spawn(mcp::run_tls(
            rs_listener,
            tls.clone(),
            layer.clone(),
            stopped(rx.clone()),
        )));
        if let (Some(listener), Some(other)) = (other_listener, other_resource) {
            let other_layer = make_layer(other, scopes(&[TOOLS_SCOPE]));
            tasks.push(tokio::spawn(mcp::run_tls(
                listener,
                tls.clone(),
                other_layer,
                stopped(rx.clone()),
            )));
        }
        // Warm the key cache; a failure here is retried on the first token.
        let _ = layer.fetch_keys().await;
        Ok(Self {
            as_state,
            issuer,
            as_origin,
            mcp_url,
            other_mcp_url,
            layer,
            shutdown,
            tasks,
        })
    }

    /// A transcript that names this stack's servers.
    pub fn transcript(&self) -> SharedTranscript {
        let shared = Transcript::shared();
        {
            let mut t = shared
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            t.name_participant(&self.issuer, "Authorization server");
            t.name_participant(origin(&self.mcp_url), "MCP server");
            if let Some(other) = &self.other_mcp_url {
                t.name_participant(origin(other), "Other MCP server");
            }
        }
        shared
    }

    /// Stop every server and wait (briefly) for them.
    pub async fn stop(self) {
        let _ = self.shutdown.send(true);
        for task in self.tasks {
            let _ = tokio::time::timeout(std::time::Duration::from_secs(3), task).await;
        }
    }
}

fn origin(url: &str) -> &str {
    url.strip_suffix("/mcp").unwrap_or(url)
}

fn tool_text(response: &mcp_auth_proto::http::HttpResponse) -> Option<Value> {
    let result = client::jsonrpc_result(response).ok()?;
    let text = result.pointer("/content/0/text")?.as_str()?;
    Some(serde_json::from_str(text).unwrap_or_else(|_| json!(text)))
}

/// The Bearer challenge of a response's `WWW-Authenticate` values, read with the core's parser
/// (`None` when there is none, or it does not parse).
fn bearer_challenge<'a>(values: impl IntoIterator<Item = &'a str>) -> Option<BearerChallenge> {
    parse_www_authenticate(values)
        .ok()
        .and_then(|c| BearerChallenge::from_challenges(&c).ok().flatten())
}

fn challenge_error(response: &mcp_auth_proto::http::HttpResponse) -> Option<String> {
    bearer_challenge(response.header_values("www-authenticate"))?.error
}

/// Run the whole demonstration against a fresh in-process stack; the transcript holds every
/// exchange and a check per step. It passed if [`Transcript::all_ok`]. With `tls`, every
/// server speaks https with a certificate from a throwaway local CA that the client trusts.
pub async fn run(tls: bool, revision: Revision) -> Result<SharedTranscript, client::Error> {
    let ca = tls
        .then(crate::tls::LocalCa::new)
        .transpose()
        .map_err(client::Error::Transport)?;
    let server_tls = ca.as_ref().map(crate::tls::LocalCa::server_tls);
    // From 2025-11-25 the client identifies itself with a Client ID Metadata Document, served
    // here on loopback; the AS may fetch from loopback only under its development switch.
    let document = if revision.client_id_metadata_documents() {
        Some(
            DocumentServer::start(server_tls.as_ref().map(|t| t.acceptor.clone()))
                .await
                .map_err(|e| client::Error::Transport(e.to_string()))?,
        )
    } else {
        None
    };
    // The AS keeps its state in a temporary data directory, removed at the end.
    let data = std::env::temp_dir().join(format!(
        "mcp-auth-demo-{}",
        mcp_auth_proto::entropy::mint(&mut crate::net::OsEntropy)
    ));
    let stack = Stack::start(StackOptions {
        second_resource: true,
        tls: server_tls,
        cimd_allow_loopback: document.is_some(),
        data: Some(data.clone()),
        ..StackOptions::default().with_revisions([revision])
    })
    .await
    .map_err(|e| {
        let _ = std::fs::remove_dir_all(&data);
        client::Error::Transport(e.to_string())
    })?;
    let transcript = stack.transcript();
    let roots = ca.map(|ca| ca.roots);
    let result = steps(&stack, &transcript, roots, revision, document.as_ref()).await;
    stack.stop().await;
    let _ = std::fs::remove_dir_all(&data);
    if let Some(document) = document {
        document.task.abort();
    }
    if let Err(e) = result {
        transcript
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .check("the demo ran to the end", "", false, e.to_string());
    }
    Ok(transcript)
}

/// The demo client's Client ID Metadata Document, served on a loopback listener.
struct DocumentServer {
    /// The document's URL: the client's `client_id`.
    url: String,
    /// How often the document was fetched.
    fetches: Arc<std::sync::atomic::AtomicUsize>,
    task: JoinHandle<()>,
}

impl DocumentServer {
    async fn start(tls: Option<tokio_rustls::TlsAcceptor>) -> std::io::Result<Self> {
        let listener = crate::net::bind("127.0.0.1:0").await?;
        let origin = crate::net::origin_of(&listener)?;
        let origin = match &tls {
            Some(_) => origin.replacen("http://", "https://", 1),
            None => origin,
        };
        let url = format!("{origin}/client-metadata.json");
        // Loopback redirect URIs match whatever the port (PF-9): the listener's port is only
        // known when the client starts.
        let document = json!({
            "client_id": url,
            "client_name": "mcp-auth demo client",
            "client_uri": origin,
            "redirect_uris": ["http://127.0.0.1/callback"],
            "grant_types": ["authorization_code", "refresh_token"],
            "response_types": ["code"],
            "token_endpoint_auth_method": "none",
        });
        let fetches = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let counter = Arc::clone(&fetches);
        let service = tower::service_fn(move |request: http::Request<hyper::body::Incoming>| {
            let answer = if request.uri().path() == "/client-metadata.json" {
                counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                HttpResponse::json(200, &document).header("cache-control", "max-age=300")
            } else {
                HttpResponse::new(404)
            };
            std::future::ready(Ok::<_, std::convert::Infallible>(crate::net::to_hyper(
                answer,
            )))
        });
        let task = tokio::spawn(crate::net::serve_tls(
            listener,
            tls,
            service,
            std::future::pending(),
        ));
        Ok(Self { url, fetches, task })
    }
}

async fn steps(
    stack: &Stack,
    transcript: &SharedTranscript,
    roots: Option<rustls::RootCertStore>,
    revision: Revision,
    document: Option<&DocumentServer>,
) -> Result<(), client::Error> {
    let check = |name: &str, reqs: &str, ok: bool, detail: String| {
        transcript
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .check(name, reqs, ok, detail);
    };
    let mut options = Options::headless(stack.mcp_url.clone()).with_revision(revision);
    options.roots.clone_from(&roots);
    options.client_metadata_url = document.map(|d| d.url.clone());
    // Ask for the base scope only, so that the admin tool shows the 403 insufficient_scope.
    options.scope = Some(TOOLS_SCOPE.into());
    let mut client = McpClient::new(options, Arc::clone(transcript)).await?;
    transcript
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .name_participant(client.redirect_origin(), "Client redirect listener");

    // 1. 401 → PRM → AS metadata → DCR (from 2025-11-25: the client's metadata document) →
    // authorize + consent → token.
    let tokens = client.authorize().await?;
    let first = transcript
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .exchanges
        .first()
        .cloned();
    let challenge_ok = first.as_ref().is_some_and(|e| {
        let values = e
            .response_headers
            .iter()
            .filter(|(n, _)| n == "www-authenticate")
            .map(|(_, v)| v.as_str());
        e.status == 401
            && bearer_challenge(values)
                .is_some_and(|c| c.resource_metadata.is_some() && c.error.is_none())
    });
    check(
        &format!(
            "the first MCP request ({}) without a token gets 401 with resource_metadata and no error code",
            if revision.stateless() {
                "server/discover"
            } else {
                "initialize"
            }
        ),
        "PRM-8, ERR-1, ERR-7",
        challenge_ok,
        first
            .map(|e| format!("{} {:?}", e.status, e.response_headers))
            .unwrap_or_default(),
    );
    let Some(tokens) = tokens else {
        check(
            "the flow produced tokens",
            "DISC-1",
            false,
            "the server asked for no token".into(),
        );
        return Ok(());
    };
    let claims = crate::transcript::jwt_claims(&tokens.access_token).unwrap_or_default();
    check(
        "authorization code flow with PKCE, state and resource yields an access token for this server",
        "PKCE-1, RES-2, RES-13, AZ-11",
        claims.get("aud").and_then(Value::as_str) == Some(stack.mcp_url.as_str())
            && tokens.refresh_token.is_some(),
        format!("aud={} scope={:?}", claims["aud"], tokens.scope),
    );

    let exchanges = || {
        transcript
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .exchanges
            .clone()
    };
    let header = |headers: &[(String, String)], name: &str| {
        headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.clone())
    };
    // The transcript shows URLs decoded; the wire form is percent-encoded.
    let expected_iss = [
        format!("iss={}", stack.issuer),
        mcp_auth_proto::form::encode([("iss", stack.issuer.as_str())]),
    ];
    let callback = exchanges()
        .into_iter()
        .find(|e| header(&e.response_headers, "location").is_some_and(|l| l.contains("code=")));
    check(
        "the authorization response names its issuer (iss), and the client compared it before redeeming the code",
        "AZ-10, AZ-31, PF-11",
        callback.as_ref().is_some_and(|e| {
            header(&e.response_headers, "location")
                .is_some_and(|l| expected_iss.iter().any(|x| l.ends_with(x.as_str())))
        }),
        callback
            .and_then(|e| header(&e.response_headers, "location"))
            .unwrap_or_default(),
    );
    if let Some(document) = document {
        let registered = exchanges().iter().any(|e| e.url.ends_with("/register"));
        check(
            "the client is its Client ID Metadata Document URL: no registration, the AS fetched and validated the document",
            "CIMD-1, CIMD-3",
            tokens.client_id == document.url
                && !registered
                && document.fetches.load(std::sync::atomic::Ordering::SeqCst) >= 1,
            format!(
                "client_id={} registration requests: {} document fetches: {}",
                tokens.client_id,
                usize::from(registered),
                document.fetches.load(std::sync::atomic::Ordering::SeqCst)
            ),
        );
    }

    // 2. MCP with the token: the revision is agreed (server/discover from 2026-07-28, else
    // initialize).
    let from = exchanges().len();
    let init = client.open().await?;
    check(
        &format!("with the token, client and server agree on {revision}"),
        if revision.stateless() {
            "RS-1, TRN-8"
        } else {
            "RS-1"
        },
        init.get("protocolVersion").and_then(Value::as_str) == Some(revision.as_str())
            && client.revision() == revision,
        format!("protocolVersion={}", init["protocolVersion"]),
    );
    let tools = client.list_tools().await?;
    let names: Vec<&str> = tools["tools"]
        .as_array()
        .map(|a| a.iter().filter_map(|t| t["name"].as_str()).collect())
        .unwrap_or_default();
    check(
        "tools/list lists whoami, echo and admin_info",
        "SEC-2",
        ["whoami", "echo", ADMIN_TOOL]
            .iter()
            .all(|n| names.contains(n)),
        format!("{names:?}"),
    );
    let whoami = client.call_tool("whoami", json!({})).await?;
    let who = tool_text(&whoami).unwrap_or_default();
    check(
        "whoami reports the validated token's subject, client and audience",
        "RS-1, RS-2",
        who["subject"] == DEMO_SUBJECT
            && who["client_id"] == tokens.client_id.as_str()
            && who["audience"] == stack.mcp_url.as_str(),
        who.to_string(),
    );
    let admin = client.call_tool(ADMIN_TOOL, json!({})).await?;
    check(
        "a tool that needs mcp:admin gets 403 insufficient_scope naming the scope",
        "ERR-2, RS-1",
        admin.status == 403
            && bearer_challenge(admin.header_values("www-authenticate")).is_some_and(|c| {
                c.error.as_deref() == Some("insufficient_scope")
                    && c.scope.as_deref() == Some(ADMIN_SCOPE)
            }),
        format!(
            "{} {}",
            admin.status,
            admin.header_value("www-authenticate").unwrap_or("")
        ),
    );

    if revision.stateless() {
        let posts: Vec<_> = exchanges()[from..]
            .iter()
            .filter(|e| e.method == "POST" && e.url == stack.mcp_url)
            .cloned()
            .collect();
        let stateless = |e: &crate::transcript::Exchange| {
            header(&e.request_headers, "mcp-protocol-version").as_deref() == Some(revision.as_str())
                && header(&e.request_headers, "mcp-method").is_some()
                && header(&e.request_headers, "mcp-session-id").is_none()
                && !e.step.contains("initialize")
        };
        check(
            "every MCP request is stateless: MCP-Protocol-Version and Mcp-Method on each, no initialize, no session",
            "TRN-6, TRN-7, TRN-9",
            !posts.is_empty() && posts.iter().all(stateless),
            format!(
                "{} requests: {:?}",
                posts.len(),
                posts.iter().map(|e| e.step.as_str()).collect::<Vec<_>>()
            ),
        );
    }

    // 3. A token for another resource is refused.
    if let Some(other_url) = &stack.other_mcp_url {
        let mut other = McpClient::new(
            Options {
                roots: roots.clone(),
                client_metadata_url: document.map(|d| d.url.clone()),
                ..Options::headless(other_url.clone()).with_revision(revision)
            },
            Arc::clone(transcript),
        )
        .await?;
        transcript
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .name_participant(other.redirect_origin(), "Client redirect listener");
        let other_tokens = other.authorize().await?;
        match other_tokens {
            Some(other_tokens) => {
                let bearer = format!("Bearer {}", other_tokens.access_token);
                client.next_label = Some(
                    "the other server's token presented to this server (must be refused)".into(),
                );
                let refused = if revision.stateless() {
                    client
                        .rpc_with("tools/list", json!({}), Some(&bearer))
                        .await?
                } else {
                    client
                        .rpc_with("initialize", client::initialize_params(), Some(&bearer))
                        .await?
                };
                check(
                    "a token minted for another resource is refused by this server",
                    "RS-2, RS-6, PF-10",
                    refused.status == 401
                        && challenge_error(&refused).as_deref() == Some("invalid_token"),
                    format!(
                        "{} {}",
                        refused.status,
                        refused.header_value("www-authenticate").unwrap_or("")
                    ),
                );
                check(
                    "the client never offers that token to this server",
                    "CLI-5, RES-4",
                    other.core.authorization_for(&stack.mcp_url).is_none(),
                    format!(
                        "authorization_for(first server) = {:?}, other resource {:?}",
                        other
                            .core
                            .authorization_for(&stack.mcp_url)
                            .map(|a| crate::transcript::shorten(&a)),
                        other.core.resource()
                    ),
                );
            }
            None => check(
                "token for the other resource",
                "RS-6",
                false,
                "no challenge".into(),
            ),
        }
    }

    // 4. The server refuses the access token the client holds (here: its signature broken, as
    // after a change of signing key): the core refreshes, then the request is sent again; no
    // new discovery, registration or consent.
    let held = client.core.tokens().cloned().ok_or_else(|| {
        client::Error::Protocol("the client holds no tokens after the flow".into())
    })?;
    client.resume(mcp_auth_proto::client::Tokens {
        access_token: format!("{}A", held.access_token),
        ..held.clone()
    });
    let from = transcript
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .exchanges
        .len();
    client.next_label = Some("MCP tools/list with an access token the server refuses".into());
    let listed = client.list_tools().await;
    let steps: Vec<(String, u16)> = transcript
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .exchanges[from..]
        .iter()
        .map(|e| (e.step.clone(), e.status))
        .collect();
    let renewed = client.core.tokens().cloned();
    check(
        "a refused access token (401) is refreshed and the request sent again, without new registration or consent",
        "ERR-10, RT-7",
        listed.is_ok()
            && steps.iter().map(|(_, status)| *status).collect::<Vec<_>>() == [401, 200, 200]
            && steps[1].0 == "token request: refresh_token grant"
            && renewed.as_ref().is_some_and(|t| {
                t.client_id == held.client_id && t.refresh_token != held.refresh_token
            }),
        format!("{steps:?}"),
    );

    // 5. Refresh with rotation; the old refresh token replayed is refused.
    let before = client.core.clone();
    let tokens = before.tokens().cloned().unwrap_or(tokens);
    let refreshed = client.refresh().await?;
    check(
        "refresh returns a new access token and a rotated refresh token",
        "RT-1, RT-7",
        refreshed.refresh_token.is_some()
            && refreshed.refresh_token != tokens.refresh_token
            && refreshed.access_token != tokens.access_token,
        format!(
            "old {} → new {}",
            crate::transcript::shorten(tokens.refresh_token.as_deref().unwrap_or("")),
            crate::transcript::shorten(refreshed.refresh_token.as_deref().unwrap_or(""))
        ),
    );
    let after = client.call_tool("whoami", json!({})).await?;
    check(
        "the refreshed access token works",
        "RT-1",
        after.status == 200 && tool_text(&after).is_some_and(|w| w["subject"] == DEMO_SUBJECT),
        format!("{}", after.status),
    );
    let rotated = std::mem::replace(&mut client.core, before);
    let replay = client.refresh().await;
    check(
        "the rotated-out refresh token replayed gets 400 invalid_grant",
        "RT-1, RT-2",
        matches!(
            &replay,
            Err(client::Error::Flow(mcp_auth_proto::client::ClientError::TokenRejected { status: 400, error: Some(e) })) if e == "invalid_grant"
        ),
        format!("{replay:?}"),
    );
    client.core = rotated;
    let revoked = client.refresh().await;
    check(
        "after the replay the whole grant is revoked: the newest refresh token fails too",
        "RT-2, RT-5",
        matches!(
            &revoked,
            Err(client::Error::Flow(
                mcp_auth_proto::client::ClientError::TokenRejected { status: 400, .. }
            ))
        ),
        format!("{revoked:?}"),
    );
    Ok(())
}
