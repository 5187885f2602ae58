//! The model's state: the real core values, the attacker's knowledge and the ghost audit log.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use mcp_auth_proto::client::{Action as ClientAction, Client};
use mcp_auth_proto::endpoint::McpGuard;
use mcp_auth_proto::server::AuthorizationServer;
use mcp_auth_proto::{Sequential, UnixTime};

/// The MCP server an honest session connects to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Target {
    /// The honest MCP server ([`crate::HONEST_RS`]).
    Honest,
    /// The malicious MCP server ([`crate::EVIL_RS`]), a resource registered at the honest AS.
    Evil,
}

impl Target {
    /// Its canonical URL.
    pub const fn url(self) -> &'static str {
        match self {
            Self::Honest => crate::HONEST_RS,
            Self::Evil => crate::EVIL_RS,
        }
    }

    /// The other one.
    pub const fn other(self) -> Self {
        match self {
            Self::Honest => Self::Evil,
            Self::Evil => Self::Honest,
        }
    }
}

/// A network party, as the ghost log sees it (ground truth, invisible to the protocol).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Party {
    /// Honest client session `n`.
    Session(u8),
    /// The attacker (its clients, its browser as `mallory`, the malicious MCP server and AS).
    Attacker,
}

/// One honest client session: a client process with its own loopback redirect URI.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Session {
    /// The MCP server the user pointed the client at.
    pub target: Target,
    /// The real client state machine.
    pub client: Client,
    /// The user has opened the authorization URL of the current flow.
    pub browsed: bool,
    /// Refreshes started.
    pub refreshes: u8,
    /// (server, token) pairs already sent: calling again with the same token changes nothing.
    pub called: std::collections::BTreeSet<(Target, String)>,
}

impl Session {
    /// The client's next action.
    pub fn action(&self) -> ClientAction {
        self.client.poll_action()
    }
}

/// What the attacker knows of an authorization code: where it saw it arrive, and whether the
/// request that produced it carried a PKCE challenge (its own flows and lures: it built them).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct CodeSeen {
    /// The redirect URI it was delivered to (empty when it arrived otherwise: a mix-up's
    /// token request names it instead).
    pub redirect: String,
    /// The attacker built the authorization request without `code_challenge` (a PKCE
    /// downgrade): it redeems the code without a verifier.
    pub without_pkce: bool,
}

/// What the attacker knows (Dolev-Yao, bounded): only what reached one of its endpoints, what
/// leaked from authorization responses (A3), what its own flows produced, and the public
/// values of the honest clients (client ids and redirect URIs are not secrets, RFC 6749
/// §2.2). Its requests are built from this alone.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct Knowledge {
    /// Authorization codes of the honest AS, with what it knows of each.
    pub codes: BTreeMap<String, CodeSeen>,
    /// Every client id it knows (its own, the honest sessions' once they registered, the
    /// client ID URLs): the candidates for a token request's `client_id`.
    pub client_ids: BTreeSet<String>,
    /// PKCE verifiers learned with a code (mix-up: the victim sent them to the attacker's AS).
    pub verifiers: BTreeMap<String, String>,
    /// Access tokens.
    pub access_tokens: BTreeSet<String>,
    /// Refresh tokens, with the client id they were issued with (in the token response it
    /// received, or, for a stolen one, the client it was stolen from).
    pub refresh_tokens: BTreeMap<String, String>,
    /// The attacker's clients at the honest AS: `[0]` with the attacker's redirect URI,
    /// `[1]` with the victims' loopback redirect URI (DCR lets anyone register it).
    pub clients: Vec<String>,
    /// The consent form (`id`, `csrf`) mallory's browser was shown for the attacker's own
    /// client, kept for a consent CSRF.
    pub consent_form: Option<(String, String)>,
    /// Templates already used (each attacker message is sent a bounded number of times).
    pub sent: BTreeMap<String, u8>,
    /// Refreshes attempted.
    pub refreshes: u8,
}

/// Decoded claims of an access token, for the audit.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Claims {
    /// `iss`.
    pub iss: String,
    /// `sub`.
    pub sub: String,
    /// `aud` (one value: our AS mints one).
    pub aud: String,
    /// `client_id`.
    pub client_id: String,
}

/// How a token response was obtained.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Via {
    /// Redeeming this code.
    Code(String),
    /// Presenting this refresh token.
    Refresh(String),
}

/// An entry of the ghost audit log (read only by the properties).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Event {
    /// The honest AS answered a token request from `to` with a token.
    Issued {
        /// Who sent the request (and got the response).
        to: Party,
        /// The grant presented.
        via: Via,
        /// The access token's claims.
        claims: Claims,
        /// The new refresh token, if any.
        refresh: Option<String>,
        /// A code or refresh token of the grant had already been reused (TOK-8, RT-2) when this
        /// was issued, this request included (the log is a set, so order is kept in the events
        /// that need it).
        after_replay: bool,
    },
    /// A code or refresh token that had already yielded a token came back to the honest AS
    /// (reuse: RFC 9700 §4.14.2 treats it as a sign of theft).
    Reused {
        /// The code that started its grant (its refresh-token family).
        family: String,
    },
    /// The honest AS redirected the user agent with a code.
    CodeRedirect {
        /// The client the code is bound to.
        client_id: String,
        /// The redirect target (without the query).
        target: String,
    },
    /// The honest AS issued tokens for a code presented by another client than the one it
    /// was issued to, or with another redirect URI (possible only with TOK-5 or TOK-10 off).
    Unbound {
        /// The code.
        code: String,
    },
    /// An honest session sent a code to a token endpoint.
    CodeSent {
        /// The session.
        session: u8,
        /// The token endpoint it went to.
        endpoint: String,
        /// The token endpoint of the AS that minted the code.
        minter_endpoint: Option<String>,
    },
    /// An honest session accepted a PRM document and went on to this origin.
    PrmAccepted {
        /// The session.
        session: u8,
        /// The server it asked about.
        asked: String,
        /// The document's `resource`.
        resource: String,
        /// The document's `authorization_servers`.
        servers: Vec<String>,
        /// The URL it fetched next (AS metadata).
        next: String,
    },
    /// An honest session presented a token to an MCP server.
    Presented {
        /// The session.
        session: u8,
        /// The server.
        server: Target,
        /// The token's claims.
        claims: Claims,
    },
    /// The honest RS accepted a token.
    Served {
        /// Who presented it.
        by: Party,
        /// Its claims.
        claims: Claims,
    },
    /// The attacker lured alice's browser with a client ID URL (CIMD); `redirected`: the
    /// honest AS answered with a redirect.
    Lured {
        /// The lure.
        lure: crate::DocLure,
        /// The AS redirected (rather than showing an error page).
        redirected: bool,
    },
    /// The honest AS fetched a client metadata document.
    DocumentFetched {
        /// Its URL.
        url: String,
    },
    /// The attacker's AS forwarded a session's authorization request to the honest AS.
    Forwarded {
        /// The session.
        session: u8,
    },
}

/// What alice meant when she opened a session's authorization URL in her browser (ghost):
/// this session, for the server she pointed it at; the flow is known by its PKCE challenge.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Intent {
    /// The session.
    pub session: u8,
    /// The flow's `code_challenge` (as sent; forwarded unchanged in a mix-up).
    pub challenge: String,
    /// The MCP server alice pointed the session at.
    pub resource: String,
}

/// The ghost audit: ground truth the protocol never reads.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct Audit {
    /// Who runs each client id registered at the honest AS.
    pub owners: BTreeMap<String, Party>,
    /// What each user approved on a consent page: (user, client id, resource).
    pub consents: BTreeSet<(String, String, String)>,
    /// The refresh-token families: token → the code its grant came from.
    pub families: BTreeMap<String, String>,
    /// Refresh tokens that have already yielded a token.
    pub refreshed: BTreeSet<String>,
    /// Codes that have already yielded a token.
    pub redeemed: BTreeSet<String>,
    /// The flows alice started.
    pub intents: BTreeSet<Intent>,
    /// Grants whose refresh token the attacker stole from an honest session: (client id,
    /// resource). A stolen grant's tokens are the attacker's until the theft is detected.
    pub stolen: BTreeSet<(String, String)>,
    /// Sessions an attacker step (or time) acted on: an injected or lured callback, a code or
    /// refresh token of theirs presented by the attacker, a theft, the malicious server, a
    /// clock tick. Only these may fail (PROGRESS).
    pub touched: BTreeSet<u8>,
    /// Events. A set, not a list: independent steps of different parties then commute, and
    /// their interleavings meet in one state.
    pub events: BTreeSet<Event>,
}

impl Audit {
    /// Record an event (a repeated identical observation is not a new state).
    pub fn record(&mut self, event: Event) {
        self.events.insert(event);
    }
}

/// The whole system.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct World {
    /// Simulated time.
    pub now: UnixTime,
    /// Ticks taken.
    pub ticks: u8,
    /// Entropy, one predictable stream per requesting party (`[0]` the attacker, `[n + 1]`
    /// session `n`): values from different streams never collide, and independent steps of
    /// different parties commute, so their interleavings lead to the same state.
    pub entropy: Vec<Sequential>,
    /// The honest authorization server.
    pub honest_as: Arc<AuthorizationServer>,
    /// The attacker's authorization server (the reference implementation, run by the
    /// attacker: it learns every request it receives, and its authorization endpoint forwards
    /// the user to the honest AS).
    pub evil_as: Arc<AuthorizationServer>,
    /// The honest MCP server: the same pipeline as the tower layer in front of rmcp. Its
    /// verified-token cache is not kept between steps (each request runs on a copy, see
    /// [`crate::AuthModel`]'s `honest_mcp`): the cache answers as full validation would (the
    /// fuzz target `token_claims` and the cache tests check that), and keeping it would only
    /// multiply equal states.
    pub rs: Arc<McpGuard>,
    /// Honest sessions, `None` until started.
    pub sessions: Vec<Option<Arc<Session>>>,
    /// Each browser's session cookie at the honest AS (its value), by the user the browser
    /// belongs to (`alice`, `mallory`), as the AS last set it.
    pub cookies: BTreeMap<String, String>,
    /// The attacker.
    pub attacker: Arc<Knowledge>,
    /// The audit.
    pub audit: Arc<Audit>,
}

impl World {
    /// The entropy stream of a party.
    pub fn stream(&mut self, party: Party) -> &mut Sequential {
        let i = match party {
            Party::Attacker => 0,
            Party::Session(n) => usize::from(n) + 1,
        };
        &mut self.entropy[i]
    }

    /// Session `n`, if started.
    pub fn session(&self, n: u8) -> Option<&Session> {
        self.sessions.get(usize::from(n)).and_then(Option::as_deref)
    }

    /// Session `n`, if started, for a change (copy on write).
    pub fn session_mut(&mut self, n: u8) -> Option<&mut Session> {
        self.sessions
            .get_mut(usize::from(n))
            .and_then(Option::as_mut)
            .map(Arc::make_mut)
    }

    /// The attacker's knowledge, for a change.
    pub fn knows(&mut self) -> &mut Knowledge {
        Arc::make_mut(&mut self.attacker)
    }

    /// The audit, for a change.
    pub fn audit_mut(&mut self) -> &mut Audit {
        Arc::make_mut(&mut self.audit)
    }

    /// The client id of session `n` at the honest AS, if it registered there.
    pub fn client_id_of(&self, n: u8) -> Option<&str> {
        self.audit
            .owners
            .iter()
            .find(|(_, p)| **p == Party::Session(n))
            .map(|(c, _)| c.as_str())
    }
}
