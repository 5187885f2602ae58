//! `mcp-auth`: the demo, the servers and the client of the MCP authorization reference
//! implementation.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use mcp_auth::client::{self, Consent, McpClient, Options, UserAgent};
use mcp_auth::demo::{Stack, StackOptions};
use mcp_auth::transcript::Transcript;
use mcp_auth_proto::Revision;
use mcp_auth_proto::client::{Client, TokenStore};
use mcp_auth_proto::probe::ProbeConfig;

/// MCP authorization (revision 2025-06-18): authorization server, MCP resource server and
/// client over HTTP.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

/// `mcp-auth keys ...`.
#[derive(Debug, Subcommand)]
enum KeysAction {
    /// Add a new Ed25519 signing key to the data directory and print its key id. `serve --data
    /// DIR` (without --signing-key) signs with it from its next start; the previous key stays
    /// in the JWK Set (retired, until two later rotations), so tokens it signed stay valid
    /// until they expire.
    Rotate {
        /// The data directory (`default`: as for `serve --data default`).
        #[arg(long, value_name = "DIR", required_unless_present = "database_url")]
        data: Option<PathBuf>,
        /// The PostgreSQL database of `serve --database-url` instead of a data directory (or
        /// the environment variable `MCP_AUTH_DATABASE_URL`, which keeps a password out of the
        /// process list).
        #[arg(
            long,
            value_name = "URL",
            conflicts_with = "data",
            env = "MCP_AUTH_DATABASE_URL",
            hide_env_values = true
        )]
        database_url: Option<String>,
    },
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Start AS and MCP server in-process and run the whole flow headless, with a transcript.
    Demo {
        /// Print a Mermaid sequence diagram instead of the text transcript.
        #[arg(long)]
        mermaid: bool,
        /// Print the exchanges and checks as JSON.
        #[arg(long)]
        json: bool,
        /// Serve https with certificates from a throwaway local CA (the client trusts it).
        #[arg(long)]
        tls: bool,
        /// The MCP revision the flow follows.
        #[arg(long, value_name = "REVISION", default_value_t = Revision::default())]
        revision: Revision,
    },
    /// Run the authorization server and the MCP server until interrupted.
    Serve {
        /// Address of the authorization server.
        #[arg(long, default_value = "127.0.0.1:0")]
        as_addr: String,
        /// Address of the MCP server.
        #[arg(long, default_value = "127.0.0.1:0")]
        rs_addr: String,
        /// PKCS#8 PEM private key (Ed25519, P-256 or RSA); created (Ed25519) if missing.
        #[arg(long, value_name = "FILE")]
        signing_key: Option<PathBuf>,
        /// Approve every authorization as the logged-in user without the consent page (tests
        /// only).
        #[arg(long)]
        auto_approve: bool,
        /// A TOML file of user accounts (`[[users]]` with `username`, `name` and
        /// `password_hash`, an argon2id PHC string from `mcp-auth hash-password`): users log in
        /// before consent. Without it, one demo user and no login page.
        #[arg(long, value_name = "FILE")]
        users: Option<PathBuf>,
        /// Serve https with this PEM certificate chain (with --tls-key); every URL in the
        /// metadata is then https.
        #[arg(long, value_name = "FILE", requires = "tls_key")]
        tls_cert: Option<PathBuf>,
        /// The PEM private key of --tls-cert.
        #[arg(long, value_name = "FILE", requires = "tls_cert")]
        tls_key: Option<PathBuf>,
        /// Roots the servers trust for their outgoing https: the MCP server's fetch of the AS's
        /// keys and the AS's fetch of client metadata documents (PEM; e.g. the private CA of
        /// --tls-cert); default: Mozilla's roots.
        #[arg(long, value_name = "FILE")]
        ca_file: Option<PathBuf>,
        /// Access-token lifetime in seconds: without --introspect, a revoked grant's token is
        /// accepted by the MCP server until it expires.
        #[arg(long, value_name = "SECS", default_value_t = mcp_auth_proto::server::ACCESS_TOKEN_LIFETIME_DEFAULT)]
        access_token_lifetime: u64,
        /// The MCP server also asks the AS whether each token is still active (RFC 7662
        /// introspection), caching answers for --introspection-cache seconds: a revoked
        /// grant's token is refused within that time. If the AS cannot be asked, requests get
        /// 503.
        #[arg(long)]
        introspect: bool,
        /// How long the MCP server uses an introspection answer, in seconds.
        #[arg(long, value_name = "SECS", default_value_t = mcp_auth_proto::introspection::INTROSPECTION_CACHE_SECS_DEFAULT, requires = "introspect")]
        introspection_cache: u64,
        /// An MCP revision to serve (2025-06-18, 2025-11-25 or 2026-07-28); repeat it to
        /// serve clients of several. Default: 2025-06-18.
        #[arg(long = "revision", value_name = "REVISION", default_values_t = [Revision::default()])]
        revisions: Vec<Revision>,
        /// Development only: client ID URLs (Client ID Metadata Documents, revision
        /// 2025-11-25 and later) may name loopback hosts, over plain http too. Private-network
        /// and link-local addresses stay refused. Off by default.
        #[arg(long)]
        cimd_allow_loopback: bool,
        /// Keep the authorization server's state (clients, grants and refresh token families,
        /// codes, consents in progress, browser sessions, signing keys) in the SQLite database
        /// of this directory, created if missing, so a restart forgets nothing it answered.
        /// Default (and `--data default`): `$XDG_DATA_HOME/mcp-auth`, else
        /// `~/.local/share/mcp-auth`. Several `serve` processes may share one directory.
        #[arg(long, value_name = "DIR")]
        data: Option<PathBuf>,
        /// Keep the authorization server's state in memory only, forgotten at exit (tests and
        /// trials; several such servers are independent).
        #[arg(long, conflicts_with_all = ["data", "database_url"])]
        memory: bool,
        /// The authorization server's public origin, its issuer identifier (e.g. the load
        /// balancer's in front of several `serve` processes); default: the origin of
        /// --as-addr. Requests must then name its host in `Host`.
        #[arg(long, value_name = "URL")]
        issuer: Option<String>,
        /// The MCP server's public canonical URL, the audience of its tokens (e.g. behind a
        /// load balancer); default: `/mcp` at the origin of --rs-addr.
        #[arg(long, value_name = "URL")]
        mcp_url: Option<String>,
        /// Keep the authorization server's state in this PostgreSQL database instead
        /// (`postgres://user@host:port/db`; no TLS to the database, so loopback or a trusted
        /// network), which several `serve` processes with the same issuer may share. An
        /// unreachable database stops the start with exit status 1; one lost while serving
        /// answers 503 until it returns. Also read from the environment variable
        /// `MCP_AUTH_DATABASE_URL`, which keeps a password out of the process list.
        #[arg(
            long,
            value_name = "URL",
            conflicts_with = "data",
            env = "MCP_AUTH_DATABASE_URL",
            hide_env_values = true
        )]
        database_url: Option<String>,
    },
    /// Manage the signing keys kept in a data directory (`serve --data DIR`).
    Keys {
        /// What to do.
        #[command(subcommand)]
        action: KeysAction,
    },
    /// Read a password on standard input and print its argon2id hash (PHC format) for the
    /// users file of `serve --users`.
    HashPassword,
    /// Connect to an MCP server, authorizing as needed, and list its tools or call one.
    Connect {
        /// The MCP endpoint URL.
        mcp_url: String,
        /// A tool to call.
        #[arg(long)]
        tool: Option<String>,
        /// With no --tool: after listing, call the first listed tool with the --args (as the
        /// conformance suite's reference client does).
        #[arg(long, conflicts_with = "tool")]
        call_first_tool: bool,
        /// The tool's arguments, as a JSON object.
        #[arg(long, default_value = "{}")]
        args: String,
        /// Answer our own AS's consent page automatically (approve) instead of a browser.
        #[arg(long)]
        headless: bool,
        /// Scopes to request.
        #[arg(long)]
        scope: Option<String>,
        /// Neither read nor write the token store.
        #[arg(long)]
        no_store: bool,
        /// A pre-registered client id (no dynamic registration).
        #[arg(long)]
        client_id: Option<String>,
        /// The pre-registered client's secret (with --client-id).
        #[arg(long, requires = "client_id")]
        client_secret: Option<String>,
        /// The issuer of the pre-registered credentials (with --client-id): they are sent to
        /// that authorization server only, and a server naming another one is an error.
        #[arg(long, value_name = "ISSUER", requires = "client_id")]
        client_issuer: Option<String>,
        /// The client's Client ID Metadata Document URL (https, with a path): its client id
        /// at an authorization server that supports them (2025-11-25 and later), instead of
        /// dynamic registration.
        #[arg(long, value_name = "URL", value_parser = parse_client_metadata_url)]
        client_metadata_url: Option<String>,
        /// Compatibility switch (off by default): accept Protected Resource Metadata whose
        /// `resource` is the origin or a parent path of the MCP URL instead of the URL
        /// itself (RFC 9728 §3.3 requires it to be identical), and ask for tokens for that
        /// published resource.
        #[arg(long)]
        accept_prm_resource_prefix: bool,
        /// Trust exactly the certificate authorities in this PEM file (a private CA) instead
        /// of Mozilla's roots.
        #[arg(long, value_name = "FILE")]
        ca_file: Option<PathBuf>,
        /// The command that opens the authorization URL (the URL is appended as one
        /// argument); default: $BROWSER, else the system's opener.
        #[arg(long, value_name = "CMD", env = "BROWSER")]
        browser: Option<String>,
        /// The newest MCP revision to speak (2025-06-18, 2025-11-25 or 2026-07-28): with
        /// 2026-07-28, `server/discover` first, and `initialize` with the newest older
        /// revision when the server does not speak it.
        #[arg(long, value_name = "REVISION", default_value_t = Revision::LATEST)]
        revision: Revision,
        /// Log out: revoke the stored tokens for this MCP server at its AS (RFC 7009; the
        /// grant and its access tokens with them) and remove them from the token store.
        #[arg(long, conflicts_with_all = ["tool", "call_first_tool", "no_store"])]
        logout: bool,
    },
    /// Grade an MCP server (as OAuth resource server) and its authorization server from
    /// outside, by requirement ID; exit status 1 iff a MUST failed.
    Probe(ProbeArgs),
}

/// `mcp-auth probe`.
#[derive(Debug, clap::Args)]
struct ProbeArgs {
    /// The MCP endpoint URL.
    mcp_url: String,
    /// The MCP revision to speak and grade against.
    #[arg(long, value_name = "REVISION", default_value_t = Revision::default())]
    revision: Revision,
    /// The authorization server's signing key (PKCS#8 PEM; test deployments): enables the
    /// claim checks with validly signed tokens.
    #[arg(long, value_name = "PEM")]
    as_key: Option<PathBuf>,
    /// A client registered beforehand (its redirect URI must be
    /// http://127.0.0.1/mcp-auth-probe/callback); else `--unsafe` registers one.
    #[arg(long, value_name = "ID")]
    client_id: Option<String>,
    /// The secret of --client-id.
    #[arg(long, value_name = "S", requires = "client_id")]
    client_secret: Option<String>,
    /// Log in as this user on the AS's login form (with --password).
    #[arg(
        long,
        value_name = "NAME",
        requires = "password",
        conflicts_with = "consent"
    )]
    user: Option<String>,
    /// The password of --user.
    #[arg(long, value_name = "P", requires = "user")]
    password: Option<String>,
    /// How to answer authorization requests: headless (press Approve on the AS's form),
    /// browser or manual (open or print the URL; paste the redirect URL back).
    #[arg(long, value_name = "MODE", default_value = "headless", value_parser = ["headless", "browser", "manual"])]
    consent: String,
    /// Print the report as JSON.
    #[arg(long, conflicts_with = "junit")]
    json: bool,
    /// Write the report as JUnit XML to FILE (the table is printed too).
    #[arg(long, value_name = "FILE")]
    junit: Option<PathBuf>,
    /// Run only the checks whose name or one of whose requirement IDs starts with PREFIX.
    #[arg(long, value_name = "PREFIX")]
    only: Option<String>,
    /// Run the checks that change server state: they register clients and run
    /// authorization flows (with the user given or the AS's auto-approval).
    #[arg(long = "unsafe")]
    allow_unsafe: bool,
    /// Trust exactly the certificate authorities in this PEM file instead of Mozilla's roots.
    #[arg(long, value_name = "FILE")]
    ca_file: Option<PathBuf>,
    /// Show the exchanges of passing checks too.
    #[arg(long)]
    verbose: bool,
}

#[tokio::main]
async fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    match cli.command {
        Command::Demo {
            mermaid,
            json,
            tls,
            revision,
        } => interruptible(demo(mermaid, json, tls, revision)).await,
        // `serve` handles Ctrl-C itself: it stops both servers gracefully.
        Command::Serve {
            as_addr,
            rs_addr,
            signing_key,
            auto_approve,
            users,
            tls_cert,
            tls_key,
            ca_file,
            access_token_lifetime,
            introspect,
            introspection_cache,
            revisions,
            cimd_allow_loopback,
            data,
            memory,
            issuer,
            mcp_url,
            database_url,
        } => {
            let tls = match tls_cert.zip(tls_key) {
                None => None,
                Some((cert, key)) => {
                    let roots = match ca_file {
                        Some(f) => mcp_auth::tls::roots_from_pem_file(&f),
                        None => Ok(rustls::RootCertStore::from_iter(
                            webpki_roots::TLS_SERVER_ROOTS.iter().cloned(),
                        )),
                    };
                    match roots.and_then(|roots| {
                        mcp_auth::tls::from_pem_files(&cert, &key)
                            .map(|acceptor| mcp_auth::tls::ServerTls { acceptor, roots })
                    }) {
                        Ok(t) => Some(t),
                        Err(e) => {
                            eprintln!("tls: {e}");
                            return ExitCode::FAILURE;
                        }
                    }
                }
            };
            let tokens = (
                access_token_lifetime,
                introspect.then_some(introspection_cache),
            );
            // spec: PF-23
            let data = match (memory, data, &database_url) {
                (true, _, _) | (false, None, Some(_)) => None,
                (false, Some(dir), _) if dir.as_os_str() != "default" => Some(dir),
                (false, _, _) => match mcp_auth::store::default_data_dir() {
                    Some(dir) => Some(dir),
                    None => {
                        eprintln!(
                            "no data directory: neither XDG_DATA_HOME nor HOME is set; pass --data DIR (or --memory)"
                        );
                        return ExitCode::FAILURE;
                    }
                },
            };
            serve(
                as_addr,
                rs_addr,
                signing_key,
                (auto_approve, users, tls),
                tokens,
                (revisions, cimd_allow_loopback, data, database_url),
                (issuer, mcp_url),
            )
            .await
        }
        Command::HashPassword => hash_password(),
        Command::Probe(args) => interruptible(probe(args)).await,
        Command::Keys {
            action: KeysAction::Rotate { data, database_url },
        } => rotate_key(data.as_deref(), database_url.as_deref()),
        Command::Connect {
            mcp_url,
            tool,
            args,
            headless,
            scope,
            no_store,
            client_id,
            client_secret,
            client_issuer,
            client_metadata_url,
            accept_prm_resource_prefix,
            call_first_tool,
            browser,
            ca_file,
            revision,
            logout,
        } => {
            let roots = match ca_file
                .as_deref()
                .map(mcp_auth::tls::roots_from_pem_file)
                .transpose()
            {
                Ok(r) => r,
                Err(e) => {
                    eprintln!("--ca-file: {e}");
                    return ExitCode::FAILURE;
                }
            };
            if logout {
                return interruptible(self::logout(mcp_url, roots)).await;
            }
            let preregistered = client_id.map(|id| (id, client_secret, client_issuer));
            let run = connect(
                mcp_url,
                tool,
                call_first_tool,
                &args,
                (headless, scope, no_store, preregistered, browser, roots),
                ConnectRules {
                    revision,
                    client_metadata_url,
                    accept_prm_resource_prefix,
                },
            );
            interruptible(run).await
        }
    }
}

/// `--client-metadata-url`: refused at once unless the core accepts it as a client id.
// spec: CIMD-2
fn parse_client_metadata_url(url: &str) -> Result<String, String> {
    if mcp_auth_proto::client::client_metadata_url_ok(url) {
        Ok(url.to_owned())
    } else {
        Err("a Client ID Metadata Document URL is an https URL with a path (not /), without fragment, user information or dot segments".into())
    }
}

/// Run `work`, or stop with 130 on Ctrl-C.
async fn interruptible(work: impl std::future::Future<Output = ExitCode>) -> ExitCode {
    tokio::select! {
        code = work => code,
        _ = tokio::signal::ctrl_c() => {
            eprintln!("interrupted");
            ExitCode::from(130)
        }
    }
}

async fn demo(mermaid: bool, json: bool, tls: bool, revision: Revision) -> ExitCode {
    let transcript = match mcp_auth::demo::run(tls, revision).await {
        Ok(t) => t,
        Err(e) => {
            eprintln!("demo failed to start: {e}");
            return ExitCode::FAILURE;
        }
    };
    let t = transcript
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .clone();
    if json {
        println!("{}", serde_json::to_string_pretty(&t).unwrap_or_default());
    } else if mermaid {
        print!("{}", t.render_mermaid());
    } else {
        println!("mcp-auth demo: MCP authorization {revision}, every HTTP exchange\n");
        print!("{}", t.render_exchanges());
        println!("\nChecks:");
        print!("{}", t.render_checks());
    }
    let ok = t.all_ok();
    if mermaid || json {
        eprint!("{}", t.render_checks());
    }
    let passed = t.checks.iter().filter(|c| c.ok).count();
    eprintln!(
        "demo: {} ({passed}/{} checks passed)",
        if ok { "PASS" } else { "FAIL" },
        t.checks.len()
    );
    if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

/// `mcp-auth hash-password`: one line of standard input (without its line end) to a PHC
/// string, with argon2's recommended costs (19 MiB, 2 passes) and a random 16-byte salt.
fn hash_password() -> ExitCode {
    let mut line = String::new();
    if std::io::stdin().read_line(&mut line).is_err() {
        eprintln!("could not read the password from standard input");
        return ExitCode::FAILURE;
    }
    let password = line.trim_end_matches(['\r', '\n']);
    if password.is_empty() {
        eprintln!("empty password");
        return ExitCode::FAILURE;
    }
    let mut salt = [0u8; 16];
    mcp_auth_proto::Entropy::fill(&mut mcp_auth::net::OsEntropy, &mut salt);
    match mcp_auth_proto::server::users::hash_password(password, &salt, 19 * 1024, 2) {
        Ok(phc) => {
            println!("{phc}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("{e}");
            ExitCode::FAILURE
        }
    }
}

/// `mcp-auth keys rotate --data DIR|--database-url URL`: a new signing key in the store.
fn rotate_key(data: Option<&std::path::Path>, database_url: Option<&str>) -> ExitCode {
    let (signer, pem) = mcp_auth::keys::generate();
    let (data, url) = match (data, database_url) {
        (_, Some(url)) => (None, url),
        (Some(data), None) => (Some(data), ""),
        (None, None) => {
            eprintln!("keys rotate: --data DIR or --database-url URL");
            return ExitCode::FAILURE;
        }
    };
    let Some(data) = data else {
        let shown = mcp_auth::store::describe_url(url);
        return match mcp_auth::store::Store::connect(url)
            .and_then(|mut s| s.add_signing_key(signer.kid(), &pem))
        {
            Ok(()) => {
                println!("{}", signer.kid());
                eprintln!("new signing key; `serve --database-url` uses it from its next start");
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("{shown}: {e}");
                ExitCode::FAILURE
            }
        };
    };
    let dir = if data.as_os_str() == "default" {
        match mcp_auth::store::default_data_dir() {
            Some(dir) => dir,
            None => {
                eprintln!("--data default: neither XDG_DATA_HOME nor HOME is set");
                return ExitCode::FAILURE;
            }
        }
    } else {
        data.to_owned()
    };
    match mcp_auth::store::Store::open(&dir).and_then(|mut s| s.add_signing_key(signer.kid(), &pem))
    {
        Ok(()) => {
            println!("{}", signer.kid());
            eprintln!(
                "new signing key; `serve --data {}` uses it from its next start",
                dir.display()
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("{}: {e}", dir.display());
            ExitCode::FAILURE
        }
    }
}

/// How `serve` meets users: auto-approval, the users file, TLS.
type ServeUsers = (bool, Option<PathBuf>, Option<mcp_auth::tls::ServerTls>);

/// The access-token lifetime, and the introspection cache time if the MCP server introspects.
type ServeTokens = (u64, Option<u64>);

/// The revisions, the CIMD loopback switch, and the store: a data directory or a database URL.
type ServeStore = (Vec<Revision>, bool, Option<PathBuf>, Option<String>);

/// The public issuer and MCP server URL, if not the listening addresses' origins.
type ServePublic = (Option<String>, Option<String>);

async fn serve(
    as_addr: String,
    rs_addr: String,
    signing_key: Option<PathBuf>,
    (auto_approve, users, tls): ServeUsers,
    (access_token_lifetime, introspection_cache_secs): ServeTokens,
    (revisions, cimd_allow_loopback, data, database_url): ServeStore,
    (issuer, mcp_url): ServePublic,
) -> ExitCode {
    let users = match users.as_deref().map(mcp_auth::users::load).transpose() {
        Ok(u) => u,
        Err(e) => {
            eprintln!("users: {e}");
            return ExitCode::FAILURE;
        }
    };
    let accounts = users.as_ref().map_or_else(
        || "one demo user (no login page: pass --users FILE for accounts)".to_owned(),
        |u| {
            format!(
                "{} user(s) from the users file, login before consent",
                u.iter().count()
            )
        },
    );
    let signer = match signing_key
        .as_deref()
        .map(mcp_auth::keys::load_or_create)
        .transpose()
    {
        Ok(s) => s,
        Err(e) => {
            eprintln!("signing key: {e}");
            return ExitCode::FAILURE;
        }
    };
    let options = StackOptions::default()
        .with_as_addr(as_addr)
        .with_rs_addr(rs_addr)
        .with_second_resource(false)
        .with_signer(signer)
        .with_auto_approve(auto_approve)
        .with_users(users)
        .with_tls(tls)
        .with_access_token_lifetime(Some(access_token_lifetime))
        .with_introspection_cache_secs(introspection_cache_secs)
        .with_revisions(revisions)
        .with_cimd_allow_loopback(cimd_allow_loopback)
        .with_data(data.clone())
        .with_database_url(database_url.clone())
        .with_issuer(issuer)
        .with_mcp_url(mcp_url);
    let stack = match Stack::start(options).await {
        Ok(s) => s,
        Err(e) => {
            eprintln!("cannot start: {e}");
            return ExitCode::FAILURE;
        }
    };
    println!("MCP server: {}", stack.mcp_url);
    println!("Authorization server: {}", stack.issuer);
    if let Some(dir) = &data {
        eprintln!(
            "data: {}",
            dir.join(mcp_auth::store::DATABASE_FILE).display()
        );
    } else if let Some(url) = &database_url {
        eprintln!("database: {}", mcp_auth::store::describe_url(url));
    } else {
        eprintln!("state: in memory only (--memory), forgotten at exit");
    }
    eprintln!("accounts: {accounts}");
    use std::io::Write as _;
    let _ = std::io::stdout().flush();
    let _ = tokio::signal::ctrl_c().await;
    eprintln!("shutting down");
    stack.stop().await;
    ExitCode::SUCCESS
}

/// The token store: `$XDG_CONFIG_HOME/mcp-auth/tokens.json` (or `~/.config/...`), the core's
/// [`TokenStore`]: a map from issuer to resource to tokens.
fn store_path() -> Option<PathBuf> {
    let base = std::env::var_os("XDG_CONFIG_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".config")))?;
    Some(base.join("mcp-auth").join("tokens.json"))
}

fn load_store() -> TokenStore {
    store_path()
        .and_then(|p| std::fs::read(p).ok())
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or_default()
}

/// Bring the stored credentials in line with the client at the end of one of its flows.
fn sync_store(client: &Client) {
    let mut store = load_store();
    let before = store.clone();
    store.sync(client);
    if store != before {
        write_store(&store);
    }
}

/// Replace the token store (private directory and file, written atomically).
fn write_store(store: &TokenStore) {
    let Some(path) = store_path() else { return };
    // spec: CLI-6
    let write = || -> std::io::Result<()> {
        if let Some(dir) = path.parent() {
            // Created private (0700, whatever the umask allows); an existing one is kept.
            let mut builder = std::fs::DirBuilder::new();
            builder.recursive(true);
            #[cfg(unix)]
            {
                use std::os::unix::fs::DirBuilderExt as _;
                builder.mode(0o700);
            }
            builder.create(dir)?;
        }
        let tmp = path.with_extension("tmp");
        // A leftover temporary file (an earlier crash) would keep its own, maybe wider, mode:
        // remove it and create a fresh one with 0600 (create_new also refuses a symlink).
        match std::fs::remove_file(&tmp) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e),
            _ => {}
        }
        {
            use std::io::Write as _;
            let mut options = std::fs::OpenOptions::new();
            options.write(true).create_new(true);
            #[cfg(unix)]
            {
                use std::os::unix::fs::OpenOptionsExt as _;
                options.mode(0o600);
            }
            options
                .open(&tmp)?
                .write_all(&serde_json::to_vec_pretty(store).unwrap_or_default())?;
        }
        std::fs::rename(tmp, &path)
    };
    if let Err(e) = write() {
        tracing::warn!(error = %e, "could not save tokens");
    }
}

/// `connect --logout`: revoke the stored tokens of the MCP server `mcp_url` at their AS's
/// revocation endpoint (RFC 7009: the refresh token, which revokes the grant and its access
/// tokens) and remove them from the store. The resource is found as `connect` finds it; the
/// tokens are removed even if the AS cannot be reached (then the exit code says so).
// spec: RT-13
async fn logout(mcp_url: String, roots: Option<rustls::RootCertStore>) -> ExitCode {
    let mut options = Options::headless(mcp_url);
    options.roots = roots;
    let c = match McpClient::new(options, Transcript::shared()).await {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    };
    let Ok(resource) = c.core.resource().map(|r| r.as_str().to_owned()) else {
        eprintln!("error: not an MCP server URL");
        return ExitCode::FAILURE;
    };
    let mut store = load_store();
    let removed = store.remove(&resource);
    if removed.is_empty() {
        println!("no stored tokens for {resource}");
        return ExitCode::SUCCESS;
    }
    write_store(&store);
    let mut ok = true;
    for tokens in removed {
        let Some(request) = tokens.revocation_request() else {
            eprintln!(
                "{}: no revocation endpoint known; tokens removed, not revoked",
                tokens.issuer
            );
            ok = false;
            continue;
        };
        match c.http().send(&request).await {
            Ok(r) if r.status == 200 => println!("logged out: revoked at {}", tokens.issuer),
            Ok(r) => {
                eprintln!("{}: revocation answered {}", tokens.issuer, r.status);
                ok = false;
            }
            Err(e) => {
                eprintln!("{}: revocation failed: {e}", tokens.issuer);
                ok = false;
            }
        }
    }
    if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

/// How `connect` authorizes: headless, scope, no token store, pre-registered credentials.
type ConnectAuth = (
    bool,
    Option<String>,
    bool,
    Option<(String, Option<String>, Option<String>)>,
    Option<String>,
    Option<rustls::RootCertStore>,
);

/// Which protocol rules `connect` follows: the newest revision, the Client ID Metadata
/// Document URL, the PRM compatibility switch.
struct ConnectRules {
    revision: Revision,
    client_metadata_url: Option<String>,
    accept_prm_resource_prefix: bool,
}

async fn connect(
    mcp_url: String,
    mut tool: Option<String>,
    call_first_tool: bool,
    args: &str,
    (headless, scope, no_store, preregistered, browser, roots): ConnectAuth,
    rules: ConnectRules,
) -> ExitCode {
    let arguments: serde_json::Value = match serde_json::from_str(args) {
        Ok(v) => v,
        Err(e) => {
            eprintln!("--args is not JSON: {e}");
            return ExitCode::FAILURE;
        }
    };
    let mut options = Options::headless(mcp_url);
    options.client_name = "mcp-auth connect".into();
    options.scope = scope;
    if let Some((id, secret, issuer)) = preregistered {
        options.preregistered = Some((id, secret));
        options.preregistered_issuer = issuer;
    }
    options.browser_command = browser;
    options.roots = roots;
    // Let the core authorize again on a 401 (once a refresh did not help) or a 403
    // insufficient_scope (step-up), twice at most per request.
    options.reauthorize = 2;
    options.revision = rules.revision;
    options.client_metadata_url = rules.client_metadata_url;
    options.accept_prm_resource_prefix = rules.accept_prm_resource_prefix;
    if !headless {
        options.user_agent = UserAgent::Browser;
    } else {
        options.user_agent = UserAgent::Headless(Consent::Approve);
    }
    let transcript = Transcript::shared();
    let result = async {
        let mut c = McpClient::new(options, transcript.clone()).await?;
        let stored = match (no_store, c.core.resource()) {
            (false, Ok(resource)) => load_store().get(resource.as_str()).cloned(),
            _ => None,
        };
        if !no_store {
            // Every flow (authorization, refresh, step-up) updates the store as it ends.
            c.on_flow_end(sync_store);
        }
        if let Some(tokens) = stored {
            let expired = tokens.is_expired(mcp_auth::net::now());
            c.resume(tokens);
            if expired {
                // A refused refresh leaves the core without tokens: the 401 that follows
                // starts a new authorization.
                let _ = c.refresh().await;
            }
        }
        // The newest revision both speak, up to --revision; a 401 (or 403) on the way
        // starts the authorization the core decides, and the request is sent again.
        let init = c.open().await?;
        println!(
            "connected: {} (protocol {})",
            init["serverInfo"]["name"].as_str().unwrap_or("?"),
            init["protocolVersion"].as_str().unwrap_or("?")
        );
        if tool.is_none() {
            let tools = c.list_tools().await?;
            for t in tools["tools"].as_array().into_iter().flatten() {
                println!(
                    "  {}: {}",
                    t["name"].as_str().unwrap_or("?"),
                    t["description"].as_str().unwrap_or("")
                );
            }
            if call_first_tool {
                tool = tools["tools"][0]["name"].as_str().map(str::to_owned);
            }
        }
        match tool {
            None => {}
            Some(name) => {
                let response = c.call_tool(&name, arguments).await?;
                let result = client::jsonrpc_result(&response)?;
                println!(
                    "{}",
                    serde_json::to_string_pretty(&result).unwrap_or_default()
                );
            }
        }
        Ok::<_, client::Error>(())
    }
    .await;
    if std::env::var_os("MCP_AUTH_TRANSCRIPT").is_some() {
        let t = transcript
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        eprint!("{}", t.render_exchanges());
    }
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

/// `mcp-auth probe`: exit 0 when no MUST failed, 1 when one did, 2 when the probe could not
/// run.
async fn probe(args: ProbeArgs) -> ExitCode {
    use mcp_auth::probe::Consent as ProbeConsent;
    use mcp_auth_proto::uri::HttpPolicy;
    let as_key = match args.as_key.as_deref().map(|p| {
        std::fs::read_to_string(p)
            .map_err(|e| format!("{}: {e}", p.display()))
            .and_then(|pem| mcp_auth::keys::from_pem(&pem))
    }) {
        None => None,
        Some(Ok(key)) => Some(key),
        Some(Err(e)) => {
            eprintln!("--as-key: {e}");
            return ExitCode::from(2);
        }
    };
    let roots = match args
        .ca_file
        .as_deref()
        .map(mcp_auth::tls::roots_from_pem_file)
        .transpose()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("--ca-file: {e}");
            return ExitCode::from(2);
        }
    };
    // Loopback http only for a loopback http target (test deployments).
    let policy = if mcp_auth_proto::uri::parse_uri(&args.mcp_url)
        .is_ok_and(|p| p.scheme == "http" && mcp_auth_proto::uri::is_loopback_host(p.host))
    {
        HttpPolicy::AllowLoopbackHttp
    } else {
        HttpPolicy::HttpsOnly
    };
    let http = match roots {
        Some(roots) => mcp_auth::client::Http::with_roots(policy, roots),
        None => mcp_auth::client::Http::new(policy),
    };
    let mut config = ProbeConfig::new(args.mcp_url, args.revision, mcp_auth::net::now());
    config.as_key = as_key;
    config.client = args.client_id.map(|id| (id, args.client_secret));
    config.allow_unsafe = args.allow_unsafe;
    config.only = args.only;
    config.nonce = mcp_auth_proto::entropy::mint(&mut mcp_auth::net::OsEntropy);
    let consent = match (args.user, args.password, args.consent.as_str()) {
        (Some(user), Some(password), _) => ProbeConsent::Login { user, password },
        (_, _, "browser") => ProbeConsent::Manual { open: true },
        (_, _, "manual") => ProbeConsent::Manual { open: false },
        _ => ProbeConsent::Headless,
    };
    let report = mcp_auth::probe::run(config, &consent, &http).await;
    match mcp_auth::probe::print(&report, args.json, args.junit.as_deref(), args.verbose) {
        Ok(false) => ExitCode::SUCCESS,
        Ok(true) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("{e}");
            ExitCode::from(2)
        }
    }
}
