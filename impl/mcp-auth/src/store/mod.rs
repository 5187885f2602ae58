//! The authorization server's durable store, on one of two backends behind one facade
//! ([`Store`]):
//!
//! - **SQLite** ([`Store::open`]): one database file (`mcp-auth.sqlite3`) in a data directory,
//!   in WAL mode with `synchronous=FULL`, so a commit that returned is on disk;
//! - **PostgreSQL** ([`Store::connect`]): a database shared by several AS instances; a commit
//!   returns after PostgreSQL's `COMMIT` (`synchronous_commit=on`). No TLS to the database
//!   (`sslmode=disable`): keep it on loopback or a trusted network.
//!
//! The core decides what is durable and reports it as [`Change`]s
//! ([`AuthorizationServer::take_changes`](mcp_auth_proto::server::AuthorizationServer::take_changes));
//! the store keeps each record as (kind, id, version, body) without knowing the kinds
//! ([`RecordKey::kind`], [`RecordKey::id`], [`RecordKey::from_parts`]) and commits a request's
//! changes in one transaction, refusing the whole transaction if any change names a version the
//! store no longer holds (compare-and-set): [`StoreError::Conflict`] names those records. It
//! also keeps the signing keys' private halves (PKCS#8 PEM), which the core cannot export.
//!
//! **Change sequence** (several instances on one store): every committed put or removal gets a
//! value of a store-wide sequence, strictly increasing in commit order: once a reader has seen
//! sequence S, no change with a sequence at most S becomes visible later. [`Store::load`] returns
//! the live records and the highest sequence they reflect; [`Store::changes_since`] returns
//! what changed after a sequence, so an instance catches up with the others without a full
//! load. A removal leaves a **tombstone** (key and sequence, no body) so that it is reported
//! too ([`StoredUpdate::Removed`]); for compare-and-set a tombstone counts as absent
//! (`replaces == 0`). Tombstones older than [`TOMBSTONE_MAX_AGE`] are collected (checked every
//! [`TOMBSTONE_GC_EVERY`] commits of a store); the store remembers the highest collected
//! sequence (the horizon), and `changes_since` a sequence below it answers `None`: the caller
//! then loads everything.
//!
//! Both backends version their schema and refuse, at open, a database of another application
//! or of a newer mcp-auth ([`StoreError::Foreign`]) and a damaged one ([`StoreError::Corrupt`]).

mod postgres;
mod sqlite;

use std::path::{Path, PathBuf};
use std::time::Duration;

use mcp_auth_proto::server::{Change, RecordKey, StoredRecord};

pub use sqlite::{APPLICATION_ID, DATABASE_FILE, MIGRATIONS};

pub use self::postgres::POSTGRES_MIGRATIONS;

/// How old a tombstone must be before it may be collected.
pub const TOMBSTONE_MAX_AGE: Duration = Duration::from_secs(3600);

/// A store looks for old tombstones once every this many commits.
pub const TOMBSTONE_GC_EVERY: u32 = 256;

/// Why the store cannot open, load or commit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreError {
    /// The database is another application's, or was written by a newer mcp-auth.
    Foreign(String),
    /// The file is not a sound SQLite database, or a record does not decode.
    Corrupt(String),
    /// The store cannot be read or written (permissions, disk full, locked, gone, the
    /// database server unreachable).
    Unavailable(String),
    /// Another writer changed these records first: nothing was committed.
    Conflict(Vec<RecordKey>),
}

impl std::fmt::Display for StoreError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Foreign(why) => write!(f, "not an mcp-auth database: {why}"),
            Self::Corrupt(why) => write!(f, "the database is damaged: {why}"),
            Self::Unavailable(why) => write!(f, "the database cannot be used: {why}"),
            Self::Conflict(keys) => write!(f, "{} record(s) changed concurrently", keys.len()),
        }
    }
}

impl std::error::Error for StoreError {}

pub use mcp_auth_proto::server::StoredUpdate;

/// Every live record of a store and the change sequence they reflect ([`Store::load`]).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Snapshot {
    /// The live records (never tombstones).
    pub records: Vec<StoredRecord>,
    /// The highest change sequence these records reflect.
    pub seq: u64,
}

/// What changed after a sequence ([`Store::changes_since`]).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Delta {
    /// One update per record changed after the sequence asked about (its state now), in
    /// sequence order.
    pub updates: Vec<StoredUpdate>,
    /// The highest change sequence the store holds now (the next `changes_since` argument).
    pub seq: u64,
}

/// A PostgreSQL URL as [`Store::describe`] shows it: without its password.
pub fn describe_url(url: &str) -> String {
    postgres::redact(url)
}

/// The default data directory: `$XDG_DATA_HOME/mcp-auth`, else `~/.local/share/mcp-auth`.
pub fn default_data_dir() -> Option<PathBuf> {
    std::env::var_os("XDG_DATA_HOME")
        .filter(|d| !d.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".local/share")))
        .map(|base| base.join("mcp-auth"))
}

/// An open store (SQLite or PostgreSQL).
#[derive(Debug)]
pub struct Store {
    backend: Backend,
}

#[derive(Debug)]
enum Backend {
    Sqlite(sqlite::SqliteStore),
    Postgres(postgres::PgStore),
}

/// Decode a stored (kind, id) pair.
fn key_of(kind: &str, id: &str) -> Result<RecordKey, StoreError> {
    RecordKey::from_parts(kind, id)
        .ok_or_else(|| StoreError::Corrupt(format!("unknown record {kind:?} {id:?}")))
}

/// A stored integer as a version or sequence.
fn unsigned(what: &str, value: i64) -> Result<u64, StoreError> {
    u64::try_from(value).map_err(|_| StoreError::Corrupt(format!("{what} is negative")))
}

/// A version or sequence as a stored integer.
fn signed(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

/// Seconds since the Unix epoch (when a tombstone was made).
fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

impl Store {
    /// Open (creating if needed: the directory mode 0700, the database file 0600) the data
    /// directory `dir` and its SQLite database; check that it is an mcp-auth database in sound
    /// condition; apply pending migrations.
    pub fn open(dir: &Path) -> Result<Self, StoreError> {
        sqlite::SqliteStore::open(dir).map(|s| Self {
            backend: Backend::Sqlite(s),
        })
    }

    /// Connect to the PostgreSQL database `url` (`postgres://user[:password]@host[:port]/db`,
    /// or libpq's `key=value` form), check that it is an mcp-auth database (or empty), apply
    /// pending migrations (under an advisory lock: instances starting together migrate once).
    /// The connection is bounded (connect timeout and statement timeout of 5 s unless the URL
    /// says otherwise); a lost connection answers [`StoreError::Unavailable`] and the store
    /// connects again on a later call.
    ///
    /// The store's calls run on a thread of its own, so a `Store` may be used from a blocking
    /// thread of a tokio runtime (`spawn_blocking`) and dropped anywhere.
    pub fn connect(url: &str) -> Result<Self, StoreError> {
        postgres::PgStore::connect(url).map(|s| Self {
            backend: Backend::Postgres(s),
        })
    }

    /// Where the store is: the database file, or the URL without its password.
    pub fn describe(&self) -> String {
        match &self.backend {
            Backend::Sqlite(s) => s.path().display().to_string(),
            Backend::Postgres(s) => s.describe().to_owned(),
        }
    }

    /// The SQLite database file (`None` on PostgreSQL).
    pub fn path(&self) -> Option<&Path> {
        match &self.backend {
            Backend::Sqlite(s) => Some(s.path()),
            Backend::Postgres(_) => None,
        }
    }

    /// The schema version (migrations applied).
    pub fn schema_version(&mut self) -> Result<u32, StoreError> {
        match &mut self.backend {
            Backend::Sqlite(s) => s.schema_version(),
            Backend::Postgres(s) => s.schema_version(),
        }
    }

    /// Every live record and the change sequence they reflect (one consistent snapshot), for
    /// [`AuthorizationServer::restore`](mcp_auth_proto::server::AuthorizationServer::restore).
    pub fn load(&mut self) -> Result<Snapshot, StoreError> {
        match &mut self.backend {
            Backend::Sqlite(s) => s.load(),
            Backend::Postgres(s) => s.load(),
        }
    }

    /// Every record changed after the sequence `seq` (its state now, once, in sequence order)
    /// and the store's new high mark. `None` when the store can no longer tell: removals after
    /// `seq` were already collected (`seq` is below the horizon), or `seq` is beyond what the
    /// store holds (another or a restored database); the caller then [`load`](Store::load)s.
    pub fn changes_since(&mut self, seq: u64) -> Result<Option<Delta>, StoreError> {
        match &mut self.backend {
            Backend::Sqlite(s) => s.changes_since(seq),
            Backend::Postgres(s) => s.changes_since(seq),
        }
    }

    /// Commit `changes` in one transaction: each applies only if the store holds the version
    /// it replaces (0: absent or removed). If any does not, nothing is committed and
    /// [`StoreError::Conflict`] names them. Each change gets the next values of the change
    /// sequence; a removal leaves a tombstone. Durable on return.
    pub fn commit(&mut self, changes: &[Change]) -> Result<(), StoreError> {
        if changes.is_empty() {
            return Ok(());
        }
        match &mut self.backend {
            Backend::Sqlite(s) => s.commit(changes),
            Backend::Postgres(s) => s.commit(changes),
        }
    }

    /// Collect the tombstones older than `older_than` now (commits also do it, every
    /// [`TOMBSTONE_GC_EVERY`] of them, with [`TOMBSTONE_MAX_AGE`]); returns the horizon: the
    /// highest sequence collected so far.
    pub fn collect_tombstones(&mut self, older_than: Duration) -> Result<u64, StoreError> {
        match &mut self.backend {
            Backend::Sqlite(s) => s.collect_tombstones(older_than),
            Backend::Postgres(s) => s.collect_tombstones(older_than),
        }
    }

    /// The newest signing key's private half (PKCS#8 PEM), if any.
    pub fn current_signing_key(&mut self) -> Result<Option<String>, StoreError> {
        match &mut self.backend {
            Backend::Sqlite(s) => s.current_signing_key(),
            Backend::Postgres(s) => s.current_signing_key(),
        }
    }

    /// Keep a new signing key (it becomes the newest).
    pub fn add_signing_key(&mut self, kid: &str, pkcs8_pem: &str) -> Result<(), StoreError> {
        match &mut self.backend {
            Backend::Sqlite(s) => s.add_signing_key(kid, pkcs8_pem),
            Backend::Postgres(s) => s.add_signing_key(kid, pkcs8_pem),
        }
    }
}
