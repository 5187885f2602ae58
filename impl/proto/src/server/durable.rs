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
//!   stored current key is a rotation (the stored key becomes retired).
//!
//! **What is memory only**, and what a restart does to it:
//! - authorization codes: a code issued before a restart is unknown after it, and its
//!   redemption gets `invalid_grant` (the client starts a new authorization). Codes live
//!   seconds to minutes; keeping them in memory keeps their single use a local decision.
//! - pending authorizations (consent and login in progress): the consent or login form posted
//!   after a restart gets the "unknown or expired request" error page, never a 500;
//! - browser sessions: the user logs in again;
//! - login throttles and rate-limit windows: they start empty;
//! - the client metadata document cache: documents are fetched again.
//!
//! **Change report**: a server built by [`AuthorizationServer::restore`] (or
//! [`AuthorizationServer::journaled`]) marks every durable record an operation changes; the
//! driver calls [`AuthorizationServer::take_changes`] after each operation and commits the
//! [`Change`]s in one transaction before it sends the answer. A server made by
//! [`AuthorizationServer::new`] keeps no journal (the model and the in-memory tests hold
//! such servers, and an ever-growing journal would make their states differ by history).
//!
//! **Versions** (conditional commits): each stored record has a version (1, 2, ...; 0 means
//! absent). A [`Change`] names the version it replaces ([`Change::replaces`]); a store applies
//! it only if it still holds that version (compare-and-set) and refuses the whole transaction
//! otherwise. The driver then reloads the durable state
//! ([`AuthorizationServer::reload`]) and asks the core for the answer to the lost race
//! ([`AuthorizationServer::lost_race`]).

use std::collections::{BTreeMap, BTreeSet};

use jsonwebtoken::jwk::Jwk;
use serde::{Deserialize, Serialize};

use super::{AsConfig, AuthorizationServer, ClientMetadata, Grant, RegisteredClient};
use super::{ROTATED_MAX, TokenAuthMethod};
use crate::error::Rejection;
use crate::jwt::Signer;
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
}

impl RecordKey {
    /// The record's kind, as a store names it (`client`, `grant`, `sequence`, `keys`).
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Client(_) => "client",
            Self::Grant(_) => "grant",
            Self::GrantSequence => "sequence",
            Self::Keys => "keys",
        }
    }

    /// The record's id within its kind.
    pub fn id(&self) -> String {
        match self {
            Self::Client(id) => id.0.clone(),
            Self::Grant(id) => id.to_string(),
            Self::GrantSequence => "grant".into(),
            Self::Keys => "current".into(),
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
struct KeysWire {
    current: Jwk,
    retired: Vec<Jwk>,
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
                Ok(Self::Keys(KeyRing {
                    current: w.current,
                    retired: w.retired,
                }))
            }
        }
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
    /// token index from them), the grant sequence, the key ring. `signer` signs from now on;
    /// when it is not the stored current key, the stored one is retired as by
    /// [`AuthorizationServer::rotate_key`] and the new ring is the first change reported.
    /// Memory-only state (codes, pending authorizations, sessions, throttles, the document
    /// cache) starts empty. The server reports its changes from now on.
    pub fn restore(
        config: AsConfig,
        signer: Signer,
        records: impl IntoIterator<Item = StoredRecord>,
    ) -> Result<Self, RestoreError> {
        let mut server = Self::new(config, signer);
        server.journal = Some(Journal::default());
        server.reload(records)?;
        Ok(server)
    }

    /// Replace the durable state with stored records, keeping the memory-only state (codes,
    /// pending authorizations, sessions, throttles): what a driver does after a failed or
    /// refused commit, so the server again agrees with the store. Changes not yet taken are
    /// dropped. A code redeemed in memory whose grant was never stored stays redeemed:
    /// presenting it again is refused (fail closed).
    pub fn reload(
        &mut self,
        records: impl IntoIterator<Item = StoredRecord>,
    ) -> Result<(), RestoreError> {
        let mut versions = BTreeMap::new();
        let (mut clients, mut grants) = (BTreeMap::new(), BTreeMap::new());
        let (mut sequence, mut ring) = (None, None);
        for stored in records {
            let (kind, id) = (stored.key.kind().to_owned(), stored.key.id());
            if stored.version == 0 {
                return Err(RestoreError::Version(kind, id));
            }
            if versions
                .insert(stored.key.clone(), stored.version)
                .is_some()
            {
                return Err(RestoreError::Duplicate(kind, id));
            }
            let record = Record::decode(&stored.key, &stored.body, &self.config)
                .map_err(|why| RestoreError::Body(kind, id, why))?;
            match (stored.key, record) {
                (RecordKey::Client(id), Record::Client(c)) => {
                    clients.insert(id, std::sync::Arc::new(c));
                }
                (RecordKey::Grant(id), Record::Grant(g)) => {
                    grants.insert(id, std::sync::Arc::new(g));
                }
                (RecordKey::GrantSequence, Record::GrantSequence(n)) => sequence = Some(n),
                (RecordKey::Keys, Record::Keys(k)) => ring = Some(k),
                _ => unreachable!("Record::decode follows the key"),
            }
        }
        let highest = grants.keys().next_back().map_or(0, |id| id + 1);
        self.next_grant = sequence.unwrap_or(0).max(highest);
        self.refresh_index = grants
            .iter()
            .flat_map(|(id, g): (&u64, &std::sync::Arc<Grant>)| {
                g.refresh_token
                    .iter()
                    .chain(g.rotated.iter())
                    .map(move |d| (*d, *id))
            })
            .collect();
        self.clients = clients;
        self.grants = grants;
        let mut dirty = BTreeSet::new();
        match ring {
            Some(ring) if &ring.current == self.signer.public_jwk() => {
                self.retired = ring.retired;
            }
            Some(ring) => {
                // Another signer than the stored one: the stored key is retired.
                self.retired = ring.retired;
                let kid = self.signer.kid().to_owned();
                self.retired.insert(0, ring.current);
                self.retired
                    .retain(|jwk| jwk.common.key_id.as_deref() != Some(kid.as_str()));
                self.retired.truncate(super::RETIRED_KEYS_MAX);
                dirty.insert(RecordKey::Keys);
            }
            None => {
                self.retired.clear();
                dirty.insert(RecordKey::Keys);
            }
        }
        // Codes redeemed into grants the store does not have would revoke nothing: harmless.
        self.journal = Some(Journal { versions, dirty });
        Ok(())
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
        let keys = KeyRing {
            current: self.signer.public_jwk().clone(),
            retired: self.retired.clone(),
        };
        clients
            .chain(grants)
            .chain([
                (
                    RecordKey::GrantSequence,
                    Record::GrantSequence(self.next_grant),
                ),
                (RecordKey::Keys, Record::Keys(keys)),
            ])
            .collect()
    }

    /// The answer when the store refused a commit because another instance changed `lost`
    /// first (compare-and-set failed), after the driver has [`reload`]ed the store's state.
    ///
    /// Every grant in `lost` was used concurrently elsewhere: for a refresh, the token this
    /// instance accepted is no longer the family's current one in the store, which is exactly
    /// a replay of a rotated-out token: the grant is revoked (RFC 9700 §4.14.2) and the answer
    /// is `invalid_grant` ([`Rejection::RefreshTokenReused`]). The revocation is reported as a
    /// change (commit it like any other). A lost race on any other record (a client, the
    /// grant sequence, the keys) revokes nothing and answers
    /// [`Rejection::StoreUnavailable`] (503): the client may retry.
    ///
    /// [`reload`]: AuthorizationServer::reload
    // spec: RT-2
    pub fn lost_race(&mut self, lost: &[RecordKey]) -> Rejection {
        let mut answer = Rejection::StoreUnavailable;
        for key in lost {
            if let RecordKey::Grant(id) = key
                && self.grants.contains_key(id)
            {
                self.revoke_grant(*id);
                answer = Rejection::RefreshTokenReused;
            }
        }
        answer
    }
}
