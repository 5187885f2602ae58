//! Durable state: what an authorization server must not forget when it restarts, how it
//! reports what it changed, and how it is rebuilt from a store. Sans-IO: the core never
//! touches a store; a driver drains the changes and commits them.
//!
//! **What is durable** (a [`Record`] each, keyed by [`RecordKey`]):
//! - registered clients ([`RegisteredClient`], including `completed`);
//! - grants ([`Grant`]): the refresh token family (the current token's digest and the
//!   rotated-out digests, so a rotated-out token presented after a restart still revokes the
//!   family), `revoked`, the handle that starts every access token's `jti` (so a revoked grant's
//!   access tokens stay refused at introspection), idle/absolute times;
//! - the grant sequence (the next grant id), so ids are not reused across restarts;
//! - the public key ring ([`KeyRing`]): the current signing key's public JWK and the retired
//!   ones still published. The private key is the driver's to keep (the core cannot export
//!   it): [`AuthorizationServer::restore`] takes the signer, and a signer other than the
//!   stored current key is a rotation (the stored key becomes retired);
//! - authorization codes ([`CodeState`]), issued and redeemed (a redeemed code is kept until
//!   it expires): a code issued before a restart, or by another instance on the same store,
//!   can be redeemed, exactly once, and a replay revokes what it produced;
//! - pending authorizations ([`Pending`]: a consent or login in progress) and browser sessions
//!   ([`BrowserSession`], by the digest of the cookie, with its user): a consent page shown
//!   before a restart, or by another instance, can be answered after it by the same browser.
//!
//! **What is memory only**, and what a restart does to it:
//! - login throttles and rate-limit windows: they start empty (and each instance counts its
//!   own);
//! - the client metadata document cache: documents are fetched again.
//!
//! **Change report**: a server built by [`AuthorizationServer::restore`] (or
//! [`AuthorizationServer::journaled`]) marks every durable record an operation changes; the
//! driver calls [`AuthorizationServer::take_changes`] after each operation and commits the
//! [`Change`]s in one transaction before it sends the answer. A server made by
//! [`AuthorizationServer::new`] keeps no journal (the model and the in-memory tests hold
//! such servers, and an ever-growing journal would make their states differ by history).
//!
//! **Several instances on one store**: before each operation the driver brings the server up
//! to date with what was committed since it last looked ([`AuthorizationServer::apply`],
//! [`StoredUpdate`]s in commit order), so a client registered, a code issued or a refresh
//! token rotated on one instance is known to the next request on any other.
//!
//! **Versions** (conditional commits): each stored record has a version (1, 2, ...; 0 means
//! absent). A [`Change`] names the version it replaces ([`Change::replaces`]); a store applies
//! it only if it still holds that version (compare-and-set) and refuses the whole transaction
//! otherwise: another instance changed the record in between. The driver then reloads the
//! durable state ([`AuthorizationServer::reload`]) and runs the same operation again, once
//! more at most a few times: the core's own rules answer it against the state that won. A
//! code redeemed on two instances at once is a replay on the second (`invalid_grant`, and
//! the first redemption's tokens revoked, RFC 9700 §4.2.4 [TOK-7](crate::requirements#TOK-7)); a refresh token used on two
//! instances at once is a rotated-out token on the second (`invalid_grant` and the family
//! revoked, [RT-2](crate::requirements#RT-2)); two grants made at once only take the next id.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use jsonwebtoken::jwk::Jwk;
use serde::{Deserialize, Serialize};

use super::{AsConfig, AuthorizationServer, BrowserSession, ClientMetadata, CodeBinding};
use super::{CodeState, ConsentPrompt, Grant, Pending, RegisteredClient, SessionKey};
use super::{ROTATED_MAX, Shared, TokenAuthMethod};
use crate::jwt::Signer;
use crate::pkce::{CodeChallenge, S256};
use crate::time::UnixTime;
use crate::types::{ClientId, ScopeSet, SecretDigest, Subject};
use crate::uri::{RedirectUri, ResourceUri};

/// The key of a durable record.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum RecordKey {
    /// A registered client.
    Client(ClientId),
    /// A grant, by its id.
    Grant(u64),
    /// The next grant id.
    GrantSequence,
    /// The public key ring.
    Keys,
    /// An authorization code, by the digest of its value: issued, or redeemed (kept until it
    /// expires, so that a replay on any instance is detected).
    Code(SecretDigest),
    /// An authorization waiting for the user (consent or login), by its id.
    Pending(String),
    /// A browser session, by the digest of its cookie.
    Session(SessionKey),
}

/// The longest pending authorization id a store may name (ids are minted: 43 characters).
const PENDING_ID_MAX: usize = 128;

impl RecordKey {
    /// The record's kind, as a store names it (`client`, `grant`, `sequence`, `keys`, `code`).
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Client(_) => "client",
            Self::Grant(_) => "grant",
            Self::GrantSequence => "sequence",
            Self::Keys => "keys",
            Self::Code(_) => "code",
            Self::Pending(_) => "pending",
            Self::Session(_) => "session",
        }
    }

    /// The record's id within its kind.
    pub fn id(&self) -> String {
        match self {
            Self::Client(id) => id.0.clone(),
            Self::Grant(id) => id.to_string(),
            Self::GrantSequence => "grant".into(),
            Self::Keys => "current".into(),
            Self::Code(digest) => digest.to_hex(),
            Self::Pending(id) => id.clone(),
            Self::Session(key) => key.to_hex(),
        }
    }

    /// The key a store names by [`RecordKey::kind`] and [`RecordKey::id`].
    pub fn from_parts(kind: &str, id: &str) -> Option<Self> {
        match (kind, id) {
            ("client", id) if !id.is_empty() => Some(Self::Client(ClientId(id.to_owned()))),
            ("grant", id) if id.bytes().all(|b| b.is_ascii_digit()) => {
                id.parse().ok().map(Self::Grant)
            }
            ("sequence", "grant") => Some(Self::GrantSequence),
            ("keys", "current") => Some(Self::Keys),
            ("code", hex) => SecretDigest::from_hex(hex).map(Self::Code),
            ("pending", id)
                if !id.is_empty()
                    && id.len() <= PENDING_ID_MAX
                    && id
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_') =>
            {
                Some(Self::Pending(id.to_owned()))
            }
            ("session", hex) => SessionKey::from_hex(hex).map(Self::Session),
            _ => None,
        }
    }
}

/// The public half of the signing keys.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct KeyRing {
    /// The current signing key's public JWK.
    pub current: Jwk,
    /// Retired keys still published, newest first.
    pub retired: Vec<Jwk>,
}

/// A durable record's value.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Record {
    /// A registered client.
    Client(RegisteredClient),
    /// A grant.
    Grant(Grant),
    /// The next grant id.
    GrantSequence(u64),
    /// The public key ring.
    Keys(KeyRing),
    /// An authorization code.
    Code(CodeState),
    /// An authorization waiting for the user.
    Pending(Box<Pending>),
    /// A browser session.
    Session(BrowserSession),
}

/// A change to one durable record, with the version it replaces (compare-and-set).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Change {
    /// Which record.
    pub key: RecordKey,
    /// The version the store must hold for this change to apply (0: the record must be
    /// absent).
    pub replaces: u64,
    /// The version after the change (0 when the record is removed).
    pub version: u64,
    /// The new value; `None` removes the record.
    pub record: Option<Record>,
}

impl Change {
    /// The record's new value encoded for a store ([`Record::encode`]), `None` for a removal.
    pub fn body(&self) -> Option<String> {
        self.record.as_ref().map(Record::encode)
    }
}

/// A record as a store keeps it: key, version and encoded value.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct StoredRecord {
    /// Which record.
    pub key: RecordKey,
    /// Its version (at least 1).
    pub version: u64,
    /// [`Record::encode`]'s output.
    pub body: String,
}

/// Why stored records cannot rebuild a server.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum RestoreError {
    /// A record's body does not decode (the kind, the id, and why).
    Body(String, String, String),
    /// A record has version 0.
    Version(String, String),
    /// A record's key appears twice.
    Duplicate(String, String),
}

impl std::fmt::Display for RestoreError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Body(kind, id, why) => write!(f, "stored {kind} {id:?} does not decode: {why}"),
            Self::Version(kind, id) => write!(f, "stored {kind} {id:?} has version 0"),
            Self::Duplicate(kind, id) => write!(f, "stored {kind} {id:?} appears twice"),
        }
    }
}

impl std::error::Error for RestoreError {}

/// Which records changed since the last [`AuthorizationServer::take_changes`], and the stored
/// version of each record.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub(super) struct Journal {
    versions: BTreeMap<RecordKey, u64>,
    dirty: BTreeSet<RecordKey>,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct ClientWire {
    redirect_uris: Vec<String>,
    auth_method: String,
    grant_types: Vec<String>,
    response_types: Vec<String>,
    client_name: Option<String>,
    metadata: ClientMetadata,
    secret: Option<String>,
    issued_at: u64,
    completed: bool,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct GrantWire {
    client_id: String,
    subject: String,
    resource: String,
    scopes: String,
    refresh_token: Option<String>,
    rotated: Vec<String>,
    last_used: u64,
    created: u64,
    handle: String,
    revoked: bool,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct CodeWire {
    /// The grant it was redeemed into; `None` while issued.
    redeemed_into: Option<u64>,
    binding: BindingWire,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct PendingWire {
    csrf: String,
    client_name: Option<String>,
    redirect_host: String,
    client_document_host: Option<String>,
    localhost_redirects_only: bool,
    user: Option<String>,
    can_logout: bool,
    binding: BindingWire,
    state: Option<String>,
    expires_at: u64,
    session: String,
    subject: Option<String>,
    peer: Option<std::net::IpAddr>,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct SessionWire {
    subject: Option<String>,
    created: u64,
    last_seen: u64,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct BindingWire {
    client_id: String,
    redirect_uri: String,
    redirect_uri_sent: bool,
    code_challenge: String,
    resource: String,
    scopes: String,
    subject: String,
    expires_at: u64,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct KeysWire {
    current: Jwk,
    retired: Vec<Jwk>,
}

impl BindingWire {
    fn of(b: &CodeBinding) -> Self {
        Self {
            client_id: b.client_id.0.clone(),
            redirect_uri: b.redirect_uri.clone(),
            redirect_uri_sent: b.redirect_uri_sent,
            code_challenge: b.challenge.as_str().into(),
            resource: b.resource.as_str().into(),
            scopes: b.scopes.to_string(),
            subject: b.subject.0.clone(),
            expires_at: b.expires_at.as_secs(),
        }
    }

    fn decode(self, config: &AsConfig) -> Result<CodeBinding, String> {
        let challenge = CodeChallenge::from_request(Some(&self.code_challenge), Some(S256));
        // Only the model's `optional_pkce` mutation stores a code without a challenge.
        #[cfg(mcp_auth_mutations)]
        let challenge = match challenge {
            Err(_) if self.code_challenge.is_empty() && config.mutations.optional_pkce => {
                Ok(CodeChallenge::absent())
            }
            other => other,
        };
        Ok(CodeBinding {
            client_id: ClientId(self.client_id),
            redirect_uri: self.redirect_uri,
            redirect_uri_sent: self.redirect_uri_sent,
            challenge: challenge.map_err(|e| format!("code_challenge: {e:?}"))?,
            resource: ResourceUri::parse(&self.resource, config.http_policy)
                .map_err(|e| format!("resource: {e:?}"))?,
            scopes: ScopeSet::parse(&self.scopes).map_err(|e| format!("scope: {e:?}"))?,
            subject: Subject(self.subject),
            expires_at: UnixTime::from_secs(self.expires_at),
        })
    }
}

impl Record {
    /// The record as JSON, for a store.
    pub fn encode(&self) -> String {
        let value = match self {
            Self::Client(c) => serde_json::to_value(ClientWire {
                redirect_uris: c.redirect_uris.iter().map(|r| r.as_str().into()).collect(),
                auth_method: c.auth_method.as_str().into(),
                grant_types: c.grant_types.clone(),
                response_types: c.response_types.clone(),
                client_name: c.client_name.clone(),
                metadata: c.metadata.clone(),
                secret: c.secret.as_ref().map(SecretDigest::to_hex),
                issued_at: c.issued_at.as_secs(),
                completed: c.completed,
            }),
            Self::Grant(g) => serde_json::to_value(GrantWire {
                client_id: g.client_id.0.clone(),
                subject: g.subject.0.clone(),
                resource: g.resource.as_str().into(),
                scopes: g.scopes.to_string(),
                refresh_token: g.refresh_token.as_ref().map(SecretDigest::to_hex),
                rotated: g.rotated.iter().map(SecretDigest::to_hex).collect(),
                last_used: g.last_used.as_secs(),
                created: g.created.as_secs(),
                handle: g.handle.clone(),
                revoked: g.revoked,
            }),
            Self::GrantSequence(next) => Ok(serde_json::json!({ "next": next })),
            Self::Keys(k) => serde_json::to_value(KeysWire {
                current: k.current.clone(),
                retired: k.retired.clone(),
            }),
            Self::Code(state) => {
                let (b, redeemed_into) = match state {
                    CodeState::Issued(b) => (b, None),
                    CodeState::Redeemed { binding, grant } => (binding, Some(*grant)),
                };
                serde_json::to_value(CodeWire {
                    redeemed_into,
                    binding: BindingWire::of(b),
                })
            }
            Self::Pending(p) => serde_json::to_value(PendingWire {
                csrf: p.prompt.csrf.clone(),
                client_name: p.prompt.client_name.clone(),
                redirect_host: p.prompt.redirect_host.clone(),
                client_document_host: p.prompt.client_document_host.clone(),
                localhost_redirects_only: p.prompt.localhost_redirects_only,
                user: p.prompt.user.clone(),
                can_logout: p.prompt.can_logout,
                binding: BindingWire::of(&p.binding),
                state: p.state.clone(),
                expires_at: p.expires_at.as_secs(),
                session: p.session.to_hex(),
                subject: p.subject.as_ref().map(|s| s.0.clone()),
                peer: p.peer,
            }),
            Self::Session(s) => serde_json::to_value(SessionWire {
                subject: s.subject.as_ref().map(|s| s.0.clone()),
                created: s.created.as_secs(),
                last_seen: s.last_seen.as_secs(),
            }),
        };
        value.map(|v| v.to_string()).unwrap_or_default()
    }

    /// Decode a stored body of the record `key`, validating every field as the endpoints do
    /// (a store is input too).
    pub fn decode(key: &RecordKey, body: &str, config: &AsConfig) -> Result<Self, String> {
        let digest = |h: &str| SecretDigest::from_hex(h).ok_or("a digest is not 64 hex digits");
        match key {
            RecordKey::Client(_) => {
                let w: ClientWire = serde_json::from_str(body).map_err(|e| e.to_string())?;
                let redirect_uris = w
                    .redirect_uris
                    .iter()
                    .map(|r| RedirectUri::parse(r).map_err(|e| format!("redirect URI: {e:?}")))
                    .collect::<Result<_, _>>()?;
                Ok(Self::Client(RegisteredClient {
                    redirect_uris,
                    auth_method: TokenAuthMethod::from_name(&w.auth_method)
                        .ok_or("unknown auth method")?,
                    grant_types: w.grant_types,
                    response_types: w.response_types,
                    client_name: w.client_name,
                    metadata: w.metadata,
                    secret: w.secret.as_deref().map(digest).transpose()?,
                    issued_at: UnixTime::from_secs(w.issued_at),
                    completed: w.completed,
                }))
            }
            RecordKey::Grant(_) => {
                let w: GrantWire = serde_json::from_str(body).map_err(|e| e.to_string())?;
                if w.rotated.len() > ROTATED_MAX + 1 {
                    return Err("too many rotated refresh tokens".into());
                }
                Ok(Self::Grant(Grant {
                    client_id: ClientId(w.client_id),
                    subject: Subject(w.subject),
                    resource: ResourceUri::parse(&w.resource, config.http_policy)
                        .map_err(|e| format!("resource: {e:?}"))?,
                    scopes: ScopeSet::parse(&w.scopes).map_err(|e| format!("scope: {e:?}"))?,
                    refresh_token: w.refresh_token.as_deref().map(digest).transpose()?,
                    rotated: w
                        .rotated
                        .iter()
                        .map(|h| digest(h))
                        .collect::<Result<_, _>>()?,
                    last_used: UnixTime::from_secs(w.last_used),
                    created: UnixTime::from_secs(w.created),
                    handle: w.handle,
                    revoked: w.revoked,
                }))
            }
            RecordKey::GrantSequence => {
                #[derive(Deserialize)]
                #[serde(deny_unknown_fields)]
                struct Next {
                    next: u64,
                }
                let n: Next = serde_json::from_str(body).map_err(|e| e.to_string())?;
                Ok(Self::GrantSequence(n.next))
            }
            RecordKey::Keys => {
                let w: KeysWire = serde_json::from_str(body).map_err(|e| e.to_string())?;
                if w.retired.len() > super::RETIRED_KEYS_MAX {
                    return Err("too many retired keys".into());
                }
                // Only keys a verifier can use, each with its id: the JWK Set publishes them.
                for jwk in std::iter::once(&w.current).chain(&w.retired) {
                    let set = jsonwebtoken::jwk::JwkSet {
                        keys: vec![jwk.clone()],
                    };
                    if jwk.common.key_id.is_none() || crate::jwt::KeySet::from_jwks(&set).len() != 1
                    {
                        return Err("a key of the ring is not a usable signature key".into());
                    }
                }
                Ok(Self::Keys(KeyRing {
                    current: w.current,
                    retired: w.retired,
                }))
            }
            RecordKey::Code(_) => {
                let w: CodeWire = serde_json::from_str(body).map_err(|e| e.to_string())?;
                let binding = w.binding.decode(config)?;
                Ok(Self::Code(match w.redeemed_into {
                    None => CodeState::Issued(binding),
                    Some(grant) => CodeState::Redeemed { binding, grant },
                }))
            }
            RecordKey::Pending(id) => {
                let w: PendingWire = serde_json::from_str(body).map_err(|e| e.to_string())?;
                let binding = w.binding.decode(config)?;
                // Derived as the authorization endpoint derives it: the page shows it.
                let redirect_host = crate::uri::parse_uri(&binding.redirect_uri)
                    .map_err(|e| format!("redirect_uri: {e:?}"))?
                    .host
                    .to_owned();
                if redirect_host != w.redirect_host {
                    return Err("redirect_host is not the redirect URI's host".into());
                }
                let prompt = ConsentPrompt {
                    id: id.clone(),
                    csrf: w.csrf,
                    client_id: binding.client_id.clone(),
                    client_name: w.client_name,
                    redirect_uri: binding.redirect_uri.clone(),
                    redirect_host,
                    client_document_host: w.client_document_host,
                    localhost_redirects_only: w.localhost_redirects_only,
                    scopes: binding.scopes.clone(),
                    resource: binding.resource.clone(),
                    user: w.user,
                    can_logout: w.can_logout,
                };
                Ok(Self::Pending(Box::new(Pending {
                    prompt,
                    binding,
                    state: w.state,
                    expires_at: UnixTime::from_secs(w.expires_at),
                    session: SessionKey::from_hex(&w.session)
                        .ok_or("a session key is not 64 hex digits")?,
                    subject: w.subject.map(Subject),
                    peer: w.peer,
                })))
            }
            RecordKey::Session(_) => {
                let w: SessionWire = serde_json::from_str(body).map_err(|e| e.to_string())?;
                Ok(Self::Session(BrowserSession {
                    subject: w.subject.map(Subject),
                    created: UnixTime::from_secs(w.created),
                    last_seen: UnixTime::from_secs(w.last_seen),
                }))
            }
        }
    }
}

/// A record as changed in a store since a point in its history: its new stored value, or its
/// removal ([`AuthorizationServer::apply`]).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum StoredUpdate {
    /// The record's value now (written or rewritten).
    Put(StoredRecord),
    /// The record was removed.
    Removed(RecordKey),
}

/// The durable tables, decoded from stored records.
#[derive(Default)]
struct Decoded {
    versions: BTreeMap<RecordKey, u64>,
    clients: BTreeMap<ClientId, Arc<RegisteredClient>>,
    grants: BTreeMap<u64, Arc<Grant>>,
    codes: BTreeMap<SecretDigest, CodeState>,
    pending: BTreeMap<String, Pending>,
    sessions: BTreeMap<SessionKey, BrowserSession>,
    sequence: Option<u64>,
    ring: Option<KeyRing>,
}

impl Decoded {
    fn from_records(
        records: impl IntoIterator<Item = StoredRecord>,
        config: &AsConfig,
    ) -> Result<Self, RestoreError> {
        let mut d = Self::default();
        for stored in records {
            let (kind, id) = (stored.key.kind().to_owned(), stored.key.id());
            if stored.version == 0 {
                return Err(RestoreError::Version(kind, id));
            }
            if d.versions
                .insert(stored.key.clone(), stored.version)
                .is_some()
            {
                return Err(RestoreError::Duplicate(kind, id));
            }
            let record = Record::decode(&stored.key, &stored.body, config)
                .map_err(|why| RestoreError::Body(kind, id, why))?;
            match (stored.key, record) {
                (RecordKey::Client(id), Record::Client(c)) => {
                    d.clients.insert(id, Arc::new(c));
                }
                (RecordKey::Grant(id), Record::Grant(g)) => {
                    d.grants.insert(id, Arc::new(g));
                }
                (RecordKey::Code(digest), Record::Code(c)) => {
                    d.codes.insert(digest, c);
                }
                (RecordKey::Pending(id), Record::Pending(p)) => {
                    d.pending.insert(id, *p);
                }
                (RecordKey::Session(key), Record::Session(s)) => {
                    d.sessions.insert(key, s);
                }
                (RecordKey::GrantSequence, Record::GrantSequence(n)) => d.sequence = Some(n),
                (RecordKey::Keys, Record::Keys(k)) => d.ring = Some(k),
                _ => unreachable!("Record::decode follows the key"),
            }
        }
        Ok(d)
    }
}

impl AuthorizationServer {
    /// A server with no clients that reports its changes ([`AuthorizationServer::take_changes`]):
    /// [`AuthorizationServer::restore`] from an empty store. The first changes include the key
    /// ring.
    pub fn journaled(config: AsConfig, signer: Signer) -> Self {
        Self::restore(config, signer, []).unwrap_or_else(|_| unreachable!("nothing to decode"))
    }

    /// Rebuild a server from stored records (any order): clients, grants (and the refresh
    /// token index from them), codes, pending authorizations, sessions, the grant sequence,
    /// the key ring. `signer` signs from now on; when it is not the stored current key, the
    /// stored one is retired as by [`AuthorizationServer::rotate_key`] and the new ring is the
    /// first change reported. Memory-only state (throttles, rate windows, the document cache)
    /// starts empty. The server reports its changes from now on.
    pub fn restore(
        config: AsConfig,
        signer: Signer,
        records: impl IntoIterator<Item = StoredRecord>,
    ) -> Result<Self, RestoreError> {
        let mut server = Self::new(config, signer);
        server.journal = Some(Journal::default());
        let decoded = Decoded::from_records(records, &server.config)?;
        server.replace_durable(decoded, true);
        Ok(server)
    }

    /// Replace the durable state with stored records (all of them, as a store loads them),
    /// keeping the memory-only state (throttles, rate windows, the document cache): what a
    /// driver does after a failed or refused commit, so the server again agrees with the
    /// store. Changes not yet taken are dropped. A key ring whose current key is another
    /// instance's is taken as it is (both keys stay published; this server keeps signing
    /// with its own).
    pub fn reload(
        &mut self,
        records: impl IntoIterator<Item = StoredRecord>,
    ) -> Result<(), RestoreError> {
        let decoded = Decoded::from_records(records, &self.config)?;
        self.replace_durable(decoded, false);
        Ok(())
    }

    fn replace_durable(&mut self, d: Decoded, at_start: bool) {
        let highest = d.grants.keys().next_back().map_or(0, |id| id + 1);
        self.next_grant = d.sequence.unwrap_or(0).max(highest);
        self.refresh_index = Shared::new(
            d.grants
                .iter()
                .flat_map(|(id, g): (&u64, &Arc<Grant>)| {
                    g.refresh_token
                        .iter()
                        .chain(g.rotated.iter())
                        .map(move |d| (*d, *id))
                })
                .collect(),
        );
        self.clients = Shared::new(d.clients);
        self.grants = Shared::new(d.grants);
        self.codes = Shared::new(d.codes);
        self.pending = Shared::new(d.pending);
        self.sessions = Shared::new(d.sessions);
        let mut dirty = BTreeSet::new();
        match d.ring {
            Some(ring) if &ring.current == self.signer.public_jwk() => {
                self.retired = ring.retired;
            }
            Some(ring) => {
                self.adopt_ring(ring);
                if at_start {
                    // Another signer than the stored one, at start: a rotation.
                    dirty.insert(RecordKey::Keys);
                }
            }
            None => {
                self.retired.clear();
                dirty.insert(RecordKey::Keys);
            }
        }
        self.journal = Some(Journal {
            versions: d.versions,
            dirty,
        });
    }

    /// Publish a stored ring whose current key is not this server's signer: the stored
    /// current key and its retired keys, this server's own key staying current.
    fn adopt_ring(&mut self, ring: KeyRing) {
        let kid = self.signer.kid().to_owned();
        self.retired = std::iter::once(ring.current)
            .chain(ring.retired)
            .filter(|jwk| jwk.common.key_id.as_deref() != Some(kid.as_str()))
            .take(super::RETIRED_KEYS_MAX)
            .collect();
    }

    /// Bring the durable state up to date with records another instance (or this one)
    /// committed since the last [`load`](AuthorizationServer::restore) or apply, as a store
    /// lists them in commit order. Applying a record this server already holds at that
    /// version changes nothing, so a driver may apply its own commits too. Memory-only
    /// state is kept; no change is reported. On an error nothing is applied (the driver
    /// reloads everything instead).
    pub fn apply(
        &mut self,
        updates: impl IntoIterator<Item = StoredUpdate>,
    ) -> Result<(), RestoreError> {
        let mut decoded = Vec::new();
        for update in updates {
            decoded.push(match update {
                StoredUpdate::Put(stored) => {
                    let (kind, id) = (stored.key.kind().to_owned(), stored.key.id());
                    if stored.version == 0 {
                        return Err(RestoreError::Version(kind, id));
                    }
                    let record = Record::decode(&stored.key, &stored.body, &self.config)
                        .map_err(|why| RestoreError::Body(kind, id, why))?;
                    (stored.key, stored.version, Some(record))
                }
                StoredUpdate::Removed(key) => (key, 0, None),
            });
        }
        let Some(journal) = &mut self.journal else {
            return Ok(());
        };
        let mut fresh = Vec::new();
        for (key, version, record) in decoded {
            let held = journal.versions.get(&key).copied().unwrap_or(0);
            if version == held && (version != 0 || record.is_none()) {
                continue; // already this server's state
            }
            if version == 0 {
                journal.versions.remove(&key);
            } else {
                journal.versions.insert(key.clone(), version);
            }
            fresh.push((key, record));
        }
        for (key, record) in fresh {
            self.set_record(key, record);
        }
        Ok(())
    }

    /// Set (or, with `None`, remove) one durable record, keeping the refresh index in step.
    fn set_record(&mut self, key: RecordKey, record: Option<Record>) {
        match (key, record) {
            (RecordKey::Client(id), Some(Record::Client(c))) => {
                self.clients.insert(id, Arc::new(c));
            }
            (RecordKey::Client(id), _) => {
                self.clients.remove(&id);
            }
            (RecordKey::Grant(id), record) => {
                if let Some(old) = self.grants.remove(&id) {
                    for digest in old.refresh_token.iter().chain(old.rotated.iter()) {
                        self.refresh_index.remove(digest);
                    }
                }
                if let Some(Record::Grant(g)) = record {
                    for digest in g.refresh_token.iter().chain(g.rotated.iter()) {
                        self.refresh_index.insert(*digest, id);
                    }
                    self.next_grant = self.next_grant.max(id + 1);
                    self.grants.insert(id, Arc::new(g));
                }
            }
            (RecordKey::Code(digest), Some(Record::Code(c))) => {
                self.codes.insert(digest, c);
            }
            (RecordKey::Code(digest), _) => {
                self.codes.remove(&digest);
            }
            (RecordKey::Pending(id), Some(Record::Pending(p))) => {
                self.pending.insert(id, *p);
            }
            (RecordKey::Pending(id), _) => {
                self.pending.remove(&id);
            }
            (RecordKey::Session(key), Some(Record::Session(s))) => {
                self.sessions.insert(key, s);
            }
            (RecordKey::Session(key), _) => {
                self.sessions.remove(&key);
            }
            (RecordKey::GrantSequence, Some(Record::GrantSequence(n))) => {
                self.next_grant = self.next_grant.max(n);
            }
            (RecordKey::Keys, Some(Record::Keys(ring))) => {
                if &ring.current == self.signer.public_jwk() {
                    self.retired = ring.retired;
                } else {
                    self.adopt_ring(ring);
                }
            }
            (RecordKey::GrantSequence | RecordKey::Keys, _) => {}
        }
    }

    /// Does this server report its changes?
    pub fn is_journaled(&self) -> bool {
        self.journal.is_some()
    }

    /// Note that the durable record `key` changed (nothing without a journal).
    pub(super) fn touch(&mut self, key: RecordKey) {
        if let Some(journal) = &mut self.journal {
            journal.dirty.insert(key);
        }
    }

    /// The changes since the last call, one per changed record (several changes to one
    /// record within an operation are one change), each naming the version it replaces. The
    /// server assumes they are committed: a driver whose commit fails calls
    /// [`AuthorizationServer::reload`]. Empty without a journal.
    pub fn take_changes(&mut self) -> Vec<Change> {
        let Some(journal) = &mut self.journal else {
            return Vec::new();
        };
        let dirty = std::mem::take(&mut journal.dirty);
        let mut changes = Vec::with_capacity(dirty.len());
        for key in dirty {
            let record = match &key {
                RecordKey::Client(id) => {
                    self.clients.get(id).map(|c| Record::Client((**c).clone()))
                }
                RecordKey::Grant(id) => self.grants.get(id).map(|g| Record::Grant((**g).clone())),
                RecordKey::Code(digest) => self.codes.get(digest).cloned().map(Record::Code),
                RecordKey::Pending(id) => self
                    .pending
                    .get(id)
                    .map(|p| Record::Pending(Box::new(p.clone()))),
                RecordKey::Session(key) => self.sessions.get(key).cloned().map(Record::Session),
                RecordKey::GrantSequence => Some(Record::GrantSequence(self.next_grant)),
                RecordKey::Keys => Some(Record::Keys(KeyRing {
                    current: self.signer.public_jwk().clone(),
                    retired: self.retired.clone(),
                })),
            };
            let replaces = journal.versions.get(&key).copied().unwrap_or(0);
            if record.is_none() && replaces == 0 {
                continue; // made and forgotten within one operation: never stored
            }
            let version = if record.is_some() { replaces + 1 } else { 0 };
            if version == 0 {
                journal.versions.remove(&key);
            } else {
                journal.versions.insert(key.clone(), version);
            }
            changes.push(Change {
                key,
                replaces,
                version,
                record,
            });
        }
        changes
    }

    /// The durable state as records (for a store's first write, and to compare servers).
    pub fn durable_records(&self) -> Vec<(RecordKey, Record)> {
        let clients = self
            .clients
            .iter()
            .map(|(id, c)| (RecordKey::Client(id.clone()), Record::Client((**c).clone())));
        let grants = self
            .grants
            .iter()
            .map(|(id, g)| (RecordKey::Grant(*id), Record::Grant((**g).clone())));
        let codes = self
            .codes
            .iter()
            .map(|(d, c)| (RecordKey::Code(*d), Record::Code(c.clone())));
        let pending = self.pending.iter().map(|(id, p)| {
            (
                RecordKey::Pending(id.clone()),
                Record::Pending(Box::new(p.clone())),
            )
        });
        let sessions = self
            .sessions
            .iter()
            .map(|(k, s)| (RecordKey::Session(*k), Record::Session(s.clone())));
        let keys = KeyRing {
            current: self.signer.public_jwk().clone(),
            retired: self.retired.clone(),
        };
        clients
            .chain(grants)
            .chain(codes)
            .chain(pending)
            .chain(sessions)
            .chain([
                (
                    RecordKey::GrantSequence,
                    Record::GrantSequence(self.next_grant),
                ),
                (RecordKey::Keys, Record::Keys(keys)),
            ])
            .collect()
    }
}
