//! The model's size ([`Config`] and its presets), the servers it builds with its defense
//! switches, and the model's initial world.

use std::collections::BTreeMap;
use std::sync::Arc;

use mcp_auth_proto::client::ClientConfig;
use mcp_auth_proto::endpoint::McpGuard;
use mcp_auth_proto::guard::Sessions;
use mcp_auth_proto::http::{HttpRequest, Method};
use mcp_auth_proto::jwt::{Ed25519Signer, KeySet, Signer};
#[cfg(mcp_auth_mutations)]
use mcp_auth_proto::mutations::Mutations;
use mcp_auth_proto::resource::{ResourceServer, RsConfig};
use mcp_auth_proto::server::http::UserAgentPolicy;
use mcp_auth_proto::server::{AsConfig, AuthorizationServer};
use mcp_auth_proto::types::ScopeSet;
use mcp_auth_proto::uri::{HttpPolicy, Issuer, ResourceUri};
use mcp_auth_proto::{Revision, Sequential, UnixTime};

use crate::memo::{MemoSigner, Verifications};
use crate::network::{json_field, origin};
use crate::user_agent::honest_users;
use crate::{
    ALICE, ATTACKER_DOC, ATTACKER_LOOPBACK_DOC, ATTACKER_REDIRECT, AuthModel, EVIL_ISSUER, EVIL_RS,
    EVIL_SEED, HONEST_DOC, HONEST_ISSUER, HONEST_RS, HONEST_SEED, IMPOSTOR_DOC, Party, Prm, SCOPE,
    Target, World, redirect_uri,
};

/// The environment of a build that has mutations: the core's defense switches exist only with
/// the cfg `mcp_auth_mutations` (not a cargo feature, so that no dependency can compile them
/// into a server), built in a target directory of its own so that the ordinary one is not
/// rebuilt. For example `RUSTFLAGS="--cfg mcp_auth_mutations" CARGO_TARGET_DIR=target/mutations
/// cargo run --release -p mcp-auth-model -- check --mutation all`.
pub const MUTATIONS_BUILD_ENV: &str =
    "RUSTFLAGS=\"--cfg mcp_auth_mutations\" CARGO_TARGET_DIR=target/mutations";

/// The size of the model.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Config {
    /// Name (for reports).
    pub name: &'static str,
    /// Honest client sessions.
    pub sessions: u8,
    /// Sessions (the first ones) that may be pointed at the malicious MCP server; the others
    /// connect to the honest one.
    pub lured_sessions: u8,
    /// Clock ticks.
    pub ticks: u8,
    /// Refreshes per honest session.
    pub session_refreshes: u8,
    /// Refresh attempts by the attacker, in total.
    pub attacker_refreshes: u8,
    /// Successful redemptions of one code the attacker tries.
    pub attacker_redemptions: u8,
    /// Client ID Metadata Documents (MCP 2025-11-25 and later): the honest AS fetches
    /// documents, the honest client (speaking 2026-07-28) identifies itself with
    /// [`HONEST_DOC`](crate::HONEST_DOC), and the attacker hosts documents and lures with them.
    pub cimd: bool,
    /// The newest MCP revision the honest client speaks.
    pub revision: Revision,
    /// The attacker may steal a lured session's refresh token (once per session).
    pub steal: bool,
    /// The attacker may lure alice into approving its own client for its own server (once).
    pub phish: bool,
    /// Defenses turned off (all on by default). Only in a build with the cfg
    /// `mcp_auth_mutations` ([`MUTATIONS_BUILD_ENV`]).
    #[cfg(mcp_auth_mutations)]
    pub mutations: Mutations,
}

impl Config {
    /// One honest session: every attack of the catalogue is reachable.
    pub fn small() -> Self {
        Self {
            name: "small",
            sessions: 1,
            lured_sessions: 1,
            ticks: 0,
            session_refreshes: 1,
            attacker_refreshes: 3,
            attacker_redemptions: 2,
            cimd: false,
            revision: Revision::V2025_06_18,
            steal: false,
            phish: false,
            #[cfg(mcp_auth_mutations)]
            mutations: Mutations::default(),
        }
    }

    /// Two honest sessions (the second one connects to the honest server only, and is not a
    /// target of the attacker's lures: it checks that concurrent flows do not interfere).
    pub fn standard() -> Self {
        Self {
            name: "standard",
            sessions: 2,
            ..Self::small()
        }
    }

    /// One session and one clock tick (codes, consents and access tokens expire).
    pub fn timed() -> Self {
        Self {
            name: "timed",
            ticks: 1,
            ..Self::small()
        }
    }

    /// Client ID Metadata Documents: one honest session (to the honest MCP server) whose
    /// client id is [`HONEST_DOC`](crate::HONEST_DOC); the honest AS fetches documents through
    /// the model's network; the attacker hosts its own documents and lures alice with them and
    /// with the honest client's URL (no refreshes, no malicious MCP server: `small` covers
    /// those).
    pub fn cimd() -> Self {
        Self {
            name: "cimd",
            lured_sessions: 0,
            session_refreshes: 0,
            attacker_refreshes: 0,
            attacker_redemptions: 1,
            cimd: true,
            revision: Revision::V2026_07_28,
            ..Self::small()
        }
    }

    /// `small` with the honest client speaking 2026-07-28 (its credentials bound to their
    /// issuer, CLI-8/9; client ID metadata documents only where an AS offers them, which
    /// neither AS here does): the same attacks, the newest revision's client.
    pub fn small_2026() -> Self {
        Self {
            name: "small-2026",
            revision: Revision::V2026_07_28,
            ..Self::small()
        }
    }

    /// `small` with the attacker stealing a session's refresh token (storage or logs leak,
    /// RFC 9700 §4.14): a victim's grant in the attacker's hands, until the theft shows.
    pub fn thief() -> Self {
        Self {
            name: "thief",
            steal: true,
            attacker_refreshes: 2,
            attacker_redemptions: 1,
            ..Self::small()
        }
    }

    /// `small` with the attacker luring alice into approving its own client for its own
    /// server (the worst-case user approves): a grant of hers the attacker holds by her choice,
    /// which must stay limited to that server.
    pub fn phish() -> Self {
        Self {
            name: "phish",
            phish: true,
            attacker_refreshes: 1,
            attacker_redemptions: 1,
            ..Self::small()
        }
    }

    /// The configurations, by name.
    pub const NAMES: [&str; 7] = [
        "small",
        "standard",
        "timed",
        "cimd",
        "small-2026",
        "thief",
        "phish",
    ];

    /// By name.
    pub fn named(name: &str) -> Option<Self> {
        match name {
            "small" => Some(Self::small()),
            "standard" => Some(Self::standard()),
            "timed" => Some(Self::timed()),
            "cimd" => Some(Self::cimd()),
            "small-2026" => Some(Self::small_2026()),
            "thief" => Some(Self::thief()),
            "phish" => Some(Self::phish()),
            _ => None,
        }
    }

    /// The same configuration with these defenses off.
    #[cfg(mcp_auth_mutations)]
    #[must_use]
    pub fn with_mutations(mut self, mutations: Mutations) -> Self {
        self.mutations = mutations;
        self
    }

    /// Build the model.
    pub fn into_model(self) -> AuthModel {
        AuthModel::new(self)
    }
}

fn resource_uri(url: &str) -> ResourceUri {
    ResourceUri::parse(url, HttpPolicy::HttpsOnly).expect("valid resource")
}

fn scopes() -> ScopeSet {
    ScopeSet::from_tokens(["mcp:tools", "mcp:admin"])
}

impl Config {
    /// An authorization server of the model, with this configuration's defense switches.
    fn authorization_server(
        &self,
        issuer: &str,
        resources: &[&str],
        seed: u8,
    ) -> AuthorizationServer {
        let cimd = self.cimd && issuer == HONEST_ISSUER;
        let issuer = Issuer::parse(issuer, HttpPolicy::HttpsOnly).expect("valid issuer");
        let mut config = AsConfig::new(
            issuer,
            resources.iter().map(|r| (resource_uri(r), scopes())),
        );
        config.default_scopes = ScopeSet::from_tokens([SCOPE]);
        config.client_id_metadata_documents = cimd;
        #[cfg(mcp_auth_mutations)]
        {
            config.mutations = self.mutations;
        }
        AuthorizationServer::new(
            config,
            Signer::new(MemoSigner::new(Ed25519Signer::from_seed("k1", [seed; 32]))),
        )
    }

    /// A resource server of the model trusting `trusted`, with this configuration's defense
    /// switches.
    fn resource_server(&self, resource: &str, trusted: &AuthorizationServer) -> ResourceServer {
        let config = RsConfig::new(resource_uri(resource), trusted.issuer().clone(), scopes());
        #[cfg(mcp_auth_mutations)]
        let config = {
            let mut config = config;
            config.validation.mutations = self.mutations;
            config
        };
        let mut rs = ResourceServer::new(config);
        rs.set_keys(
            UnixTime::default(),
            KeySet::from_jwks(&trusted.jwks()).with_verification_memo(Verifications::shared()),
        );
        rs
    }
}

impl AuthModel {
    /// The model for a configuration.
    pub fn new(cfg: Config) -> Self {
        let honest = cfg.authorization_server(HONEST_ISSUER, &[HONEST_RS, EVIL_RS], HONEST_SEED);
        Self {
            evil_rs: cfg.resource_server(EVIL_RS, &honest),
            honest_users: honest_users(),
            evil_users: UserAgentPolicy::single(ALICE),
            honest_as_origin: origin(HONEST_ISSUER),
            evil_as_origin: origin(EVIL_ISSUER),
            honest_rs_origin: origin(HONEST_RS),
            evil_rs_origin: origin(EVIL_RS),
            cfg,
        }
    }

    /// The initial world: the attacker has registered its two clients at the honest AS.
    pub fn initial(&self) -> World {
        let honest_as = self
            .cfg
            .authorization_server(HONEST_ISSUER, &[HONEST_RS, EVIL_RS], 7);
        let rs = self.cfg.resource_server(HONEST_RS, &honest_as);
        let mut w = World {
            now: UnixTime::from_secs(1_000),
            ticks: 0,
            entropy: (0..=u64::from(self.cfg.sessions))
                .map(|i| Sequential((i + 1) << 40))
                .collect(),
            evil_as: Arc::new(
                self.cfg
                    .authorization_server(EVIL_ISSUER, &[EVIL_RS], EVIL_SEED),
            ),
            honest_as: Arc::new(honest_as),
            rs: Arc::new(McpGuard::new(rs, Sessions::new(&mut Sequential(11)))),
            sessions: vec![None; usize::from(self.cfg.sessions)],
            cookies: BTreeMap::new(),
            attacker: Arc::default(),
            audit: Arc::default(),
        };
        for redirect in [ATTACKER_REDIRECT.to_owned(), redirect_uri(0)] {
            let body = serde_json::json!({
                "redirect_uris": [redirect],
                "token_endpoint_auth_method": "none",
                "grant_types": ["authorization_code", "refresh_token"],
                "response_types": ["code"],
                "client_name": "Totally Legit MCP Client",
            });
            let request = HttpRequest::new(Method::Post, format!("{HONEST_ISSUER}/register"))
                .header("content-type", "application/json")
                .body(serde_json::to_vec(&body).expect("json"));
            let response = self.route(&mut w, Party::Attacker, &request, Prm::Genuine);
            let id = json_field(&response.body, "client_id").expect("registered");
            w.knows().client_ids.insert(id.clone());
            w.knows().clients.push(id);
        }
        if self.cfg.cimd {
            // Who runs each client ID URL: whoever writes the document at that URL.
            let owners = &mut w.audit_mut().owners;
            owners.insert(HONEST_DOC.to_owned(), Party::Session(0));
            for doc in [ATTACKER_DOC, ATTACKER_LOOPBACK_DOC, IMPOSTOR_DOC] {
                owners.insert(doc.to_owned(), Party::Attacker);
            }
            // Client ID URLs are public.
            let known = &mut w.knows().client_ids;
            for doc in [
                HONEST_DOC,
                ATTACKER_DOC,
                ATTACKER_LOOPBACK_DOC,
                IMPOSTOR_DOC,
            ] {
                known.insert(doc.to_owned());
            }
        }
        self.prepare_consent_csrf(&mut w);
        w
    }

    pub(crate) fn client_config(&self, n: u8, target: Target) -> ClientConfig {
        let config = ClientConfig::new(target.url(), redirect_uri(n))
            .with_scope(Some(ScopeSet::from_tokens([SCOPE])))
            .with_revision(self.cfg.revision);
        let config = if self.cfg.cimd {
            config.with_client_metadata_url(Some(HONEST_DOC.to_owned()))
        } else {
            config
        };
        #[cfg(mcp_auth_mutations)]
        let config = {
            let mut config = config;
            config.mutations = self.cfg.mutations;
            config
        };
        config
    }
}
