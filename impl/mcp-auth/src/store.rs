//! The authorization server's durable store: one SQLite database (`mcp-auth.sqlite3`) in a
//! data directory, in WAL mode with `synchronous=FULL`, so a commit that returned is on disk.
//!
//! The core decides what is durable and reports it as [`Change`]s
//! ([`AuthorizationServer::take_changes`](mcp_auth_proto::server::AuthorizationServer::take_changes));
//! this store keeps each record as (kind, id, version, body) and commits a request's changes
//! in one transaction, refusing the whole transaction if any change names a version the store
//! no longer holds (compare-and-set): [`StoreError::Conflict`] names those records. It also
//! keeps the signing keys' private halves (PKCS#8 PEM), which the core cannot export.
//!
//! The schema is versioned: `schema_version` holds the number of [`MIGRATIONS`] applied, each
//! applied in its own transaction at [`Store::open`]. A database made by a newer mcp-auth
//! (more migrations than this one knows), a SQLite file of another application (its
//! `application_id` is not [`APPLICATION_ID`]) and a file that is not a sound SQLite database
//! are refused at open with a clear error.

use std::path::{Path, PathBuf};

use mcp_auth_proto::server::{Change, RecordKey, StoredRecord};
use rusqlite::{Connection, OptionalExtension as _, TransactionBehavior, params};

/// The database file's name inside the data directory.
pub const DATABASE_FILE: &str = "mcp-auth.sqlite3";

/// `PRAGMA application_id` of an mcp-auth database ("MCPA").
pub const APPLICATION_ID: i32 = 0x4D43_5041;

/// The schema migrations, in order; `schema_version` is how many were applied.
pub const MIGRATIONS: &[&str] = &[
    // v1: durable records of the core, and the private signing keys.
    "CREATE TABLE records (
         kind TEXT NOT NULL,
         id TEXT NOT NULL,
         version INTEGER NOT NULL CHECK (version > 0),
         body TEXT NOT NULL,
         PRIMARY KEY (kind, id)
     ) WITHOUT ROWID;
     CREATE TABLE signing_keys (
         seq INTEGER PRIMARY KEY AUTOINCREMENT,
         kid TEXT NOT NULL UNIQUE,
         pkcs8_pem TEXT NOT NULL
     );",
];

/// Why the store cannot open, load or commit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreError {
    /// The database is another application's, or was written by a newer mcp-auth.
    Foreign(String),
    /// The file is not a sound SQLite database, or a record does not decode.
    Corrupt(String),
    /// The store cannot be read or written (permissions, disk full, locked, gone).
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

fn classify(e: rusqlite::Error) -> StoreError {
    use rusqlite::ErrorCode as C;
    match e.sqlite_error_code() {
        Some(C::NotADatabase | C::DatabaseCorrupt) => StoreError::Corrupt(e.to_string()),
        _ => StoreError::Unavailable(e.to_string()),
    }
}

/// The default data directory: `$XDG_DATA_HOME/mcp-auth`, else `~/.local/share/mcp-auth`.
pub fn default_data_dir() -> Option<PathBuf> {
    std::env::var_os("XDG_DATA_HOME")
        .filter(|d| !d.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".local/share")))
        .map(|base| base.join("mcp-auth"))
}

/// An open store.
#[derive(Debug)]
pub struct Store {
    connection: Connection,
    path: PathBuf,
}

impl Store {
    /// Open (creating if needed: the directory mode 0700, the database file 0600) the data
    /// directory `dir` and its database; check
    /// that it is an mcp-auth database in sound condition; apply pending migrations.
    pub fn open(dir: &Path) -> Result<Self, StoreError> {
        let unavailable =
            |e: std::io::Error| StoreError::Unavailable(format!("{}: {e}", dir.display()));
        if !dir.exists() {
            let mut builder = std::fs::DirBuilder::new();
            builder.recursive(true);
            #[cfg(unix)]
            {
                use std::os::unix::fs::DirBuilderExt as _;
                builder.mode(0o700);
            }
            builder.create(dir).map_err(unavailable)?;
        }
        let path = dir.join(DATABASE_FILE);
        if !path.exists() {
            // The database holds the private signing key and secret digests: owner only
            // (SQLite gives its -wal and -shm files the database file's permissions).
            let mut options = std::fs::OpenOptions::new();
            options.write(true).create_new(true);
            #[cfg(unix)]
            {
                use std::os::unix::fs::OpenOptionsExt as _;
                options.mode(0o600);
            }
            options.open(&path).map_err(unavailable)?;
        }
        let connection = Connection::open(&path).map_err(classify)?;
        let mut store = Self { connection, path };
        store.check_and_migrate()?;
        Ok(store)
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn check_and_migrate(&mut self) -> Result<(), StoreError> {
        let c = &self.connection;
        // The first read fails on a file that is not SQLite at all.
        let tables: i64 = c
            .query_row(
                "SELECT count(*) FROM sqlite_schema WHERE type = 'table'",
                [],
                |r| r.get(0),
            )
            .map_err(classify)?;
        let app: i32 = c
            .query_row("PRAGMA application_id", [], |r| r.get(0))
            .map_err(classify)?;
        match (app, tables) {
            (APPLICATION_ID, _) => {}
            (0, 0) => c
                .pragma_update(None, "application_id", APPLICATION_ID)
                .map_err(classify)?,
            (other, _) => {
                return Err(StoreError::Foreign(format!(
                    "{} belongs to another application (application_id {other:#x}, {tables} table(s))",
                    self.path.display()
                )));
            }
        }
        let check: String = c
            .query_row("PRAGMA quick_check", [], |r| r.get(0))
            .map_err(classify)?;
        if check != "ok" {
            return Err(StoreError::Corrupt(check));
        }
        let mode: String = c
            .query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))
            .map_err(classify)?;
        if !mode.eq_ignore_ascii_case("wal") {
            return Err(StoreError::Unavailable(format!(
                "journal_mode is {mode}, not wal"
            )));
        }
        c.pragma_update(None, "synchronous", "FULL")
            .map_err(classify)?;
        c.busy_timeout(std::time::Duration::from_secs(5))
            .map_err(classify)?;
        c.execute_batch("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")
            .map_err(classify)?;
        let version: Option<i64> = c
            .query_row("SELECT max(version) FROM schema_version", [], |r| r.get(0))
            .map_err(classify)?;
        let applied = usize::try_from(version.unwrap_or(0))
            .map_err(|_| StoreError::Corrupt("negative schema version".into()))?;
        if applied > MIGRATIONS.len() {
            return Err(StoreError::Foreign(format!(
                "schema version {applied} is newer than this mcp-auth knows ({})",
                MIGRATIONS.len()
            )));
        }
        for (i, migration) in MIGRATIONS.iter().enumerate().skip(applied) {
            let tx = self
                .connection
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .map_err(classify)?;
            tx.execute_batch(migration).map_err(classify)?;
            tx.execute("DELETE FROM schema_version", [])
                .map_err(classify)?;
            tx.execute(
                "INSERT INTO schema_version (version) VALUES (?1)",
                params![i64::try_from(i + 1).unwrap_or(i64::MAX)],
            )
            .map_err(classify)?;
            tx.commit().map_err(classify)?;
        }
        // Writable now (not read-only, not locked by another writer past the busy timeout),
        // so a store that cannot take commits stops the start rather than every request.
        self.connection
            .execute_batch("BEGIN IMMEDIATE; ROLLBACK")
            .map_err(classify)?;
        Ok(())
    }

    /// The schema version (migrations applied).
    pub fn schema_version(&self) -> Result<u32, StoreError> {
        self.connection
            .query_row("SELECT max(version) FROM schema_version", [], |r| r.get(0))
            .map_err(classify)
    }

    /// Every stored record, for
    /// [`AuthorizationServer::restore`](mcp_auth_proto::server::AuthorizationServer::restore).
    pub fn load(&self) -> Result<Vec<StoredRecord>, StoreError> {
        let mut statement = self
            .connection
            .prepare("SELECT kind, id, version, body FROM records")
            .map_err(classify)?;
        let rows = statement
            .query_map([], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, i64>(2)?,
                    r.get::<_, String>(3)?,
                ))
            })
            .map_err(classify)?;
        let mut records = Vec::new();
        for row in rows {
            let (kind, id, version, body) = row.map_err(classify)?;
            let key = RecordKey::from_parts(&kind, &id)
                .ok_or_else(|| StoreError::Corrupt(format!("unknown record {kind:?} {id:?}")))?;
            let version = u64::try_from(version)
                .map_err(|_| StoreError::Corrupt(format!("{kind} {id:?}: negative version")))?;
            records.push(StoredRecord { key, version, body });
        }
        Ok(records)
    }

    /// Commit `changes` in one transaction: each applies only if the store holds the version
    /// it replaces (0: absent). If any does not, nothing is committed and
    /// [`StoreError::Conflict`] names them. Durable on return (WAL, `synchronous=FULL`).
    pub fn commit(&mut self, changes: &[Change]) -> Result<(), StoreError> {
        if changes.is_empty() {
            return Ok(());
        }
        let tx = self
            .connection
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(classify)?;
        let mut stale = Vec::new();
        for change in changes {
            let (kind, id) = (change.key.kind(), change.key.id());
            let as_i64 = |v: u64| i64::try_from(v).unwrap_or(i64::MAX);
            let rows = match (change.body(), change.replaces) {
                (Some(body), 0) => tx.execute(
                    "INSERT INTO records (kind, id, version, body) VALUES (?1, ?2, ?3, ?4)
                     ON CONFLICT (kind, id) DO NOTHING",
                    params![kind, id, as_i64(change.version), body],
                ),
                (Some(body), replaces) => tx.execute(
                    "UPDATE records SET version = ?3, body = ?4
                     WHERE kind = ?1 AND id = ?2 AND version = ?5",
                    params![kind, id, as_i64(change.version), body, as_i64(replaces)],
                ),
                (None, replaces) => tx.execute(
                    "DELETE FROM records WHERE kind = ?1 AND id = ?2 AND version = ?3",
                    params![kind, id, as_i64(replaces)],
                ),
            }
            .map_err(classify)?;
            if rows != 1 {
                stale.push(change.key.clone());
            }
        }
        if !stale.is_empty() {
            // Dropping the transaction rolls it back.
            return Err(StoreError::Conflict(stale));
        }
        tx.commit().map_err(classify)
    }

    /// The newest signing key's private half (PKCS#8 PEM), if any.
    pub fn current_signing_key(&self) -> Result<Option<String>, StoreError> {
        self.connection
            .query_row(
                "SELECT pkcs8_pem FROM signing_keys ORDER BY seq DESC LIMIT 1",
                [],
                |r| r.get(0),
            )
            .optional()
            .map_err(classify)
    }

    /// Keep a new signing key (it becomes the newest).
    pub fn add_signing_key(&mut self, kid: &str, pkcs8_pem: &str) -> Result<(), StoreError> {
        self.connection
            .execute(
                "INSERT INTO signing_keys (kid, pkcs8_pem) VALUES (?1, ?2)",
                params![kid, pkcs8_pem],
            )
            .map(|_| ())
            .map_err(classify)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use mcp_auth_proto::server::Record;

    fn dir(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!(
            "mcp-auth-store-{name}-{}-{:?}",
            std::process::id(),
            std::thread::current().id()
        ));
        let _ = std::fs::remove_dir_all(&d);
        d
    }

    fn change(replaces: u64, version: u64, next: Option<u64>) -> Change {
        Change {
            key: RecordKey::GrantSequence,
            replaces,
            version,
            record: next.map(Record::GrantSequence),
        }
    }

    #[test]
    fn commits_are_compare_and_set_and_survive_reopening() {
        let d = dir("cas");
        let mut store = Store::open(&d).expect("open");
        assert_eq!(store.schema_version(), Ok(1));
        store.commit(&[change(0, 1, Some(5))]).expect("insert");
        // Inserting again, or replacing a version the store does not hold: refused, nothing
        // committed.
        assert_eq!(
            store.commit(&[change(0, 1, Some(6))]),
            Err(StoreError::Conflict(vec![RecordKey::GrantSequence]))
        );
        assert_eq!(
            store.commit(&[change(7, 8, Some(6))]),
            Err(StoreError::Conflict(vec![RecordKey::GrantSequence]))
        );
        store.commit(&[change(1, 2, Some(6))]).expect("update");
        drop(store);
        let store = Store::open(&d).expect("reopen");
        let loaded = store.load().expect("load");
        assert_eq!(loaded.len(), 1);
        assert_eq!(
            (loaded[0].version, loaded[0].body.as_str()),
            (2, "{\"next\":6}")
        );
        let mode: String = store
            .connection
            .query_row("PRAGMA journal_mode", [], |r| r.get(0))
            .expect("mode");
        assert_eq!(mode, "wal");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            let file = std::fs::metadata(store.path())
                .expect("file")
                .permissions()
                .mode();
            let wal = std::fs::metadata(d.join(format!("{DATABASE_FILE}-wal")))
                .expect("wal")
                .permissions()
                .mode();
            assert_eq!((file & 0o777, wal & 0o777), (0o600, 0o600));
        }
        let _ = std::fs::remove_dir_all(&d);
    }

    #[test]
    fn a_store_that_cannot_be_written_is_refused_at_open() {
        let d = dir("locked");
        drop(Store::open(&d).expect("create"));
        let other = Connection::open(d.join(DATABASE_FILE)).expect("other");
        other.execute_batch("BEGIN IMMEDIATE").expect("write lock");
        let e = Store::open(&d).expect_err("locked");
        assert!(
            matches!(e, StoreError::Unavailable(ref why) if why.contains("locked")),
            "{e}"
        );
        other.execute_batch("ROLLBACK").expect("release");
        drop(Store::open(&d).expect("writable again"));
        let _ = std::fs::remove_dir_all(&d);
    }

    #[test]
    fn foreign_corrupt_and_newer_databases_are_refused() {
        let d = dir("foreign");
        std::fs::create_dir_all(&d).expect("dir");
        let path = d.join(DATABASE_FILE);
        {
            let c = Connection::open(&path).expect("sqlite");
            c.execute_batch("CREATE TABLE t (x)").expect("table");
        }
        let e = Store::open(&d).expect_err("foreign");
        assert!(matches!(e, StoreError::Foreign(_)), "{e}");
        std::fs::write(&path, b"this is not a database, just some text that is long enough to look like a header ....................................").expect("write");
        let _ = std::fs::remove_file(d.join(format!("{DATABASE_FILE}-wal")));
        let _ = std::fs::remove_file(d.join(format!("{DATABASE_FILE}-shm")));
        let e = Store::open(&d).expect_err("corrupt");
        assert!(matches!(e, StoreError::Corrupt(_)), "{e}");
        std::fs::remove_file(&path).expect("rm");
        drop(Store::open(&d).expect("fresh"));
        {
            let c = Connection::open(&path).expect("sqlite");
            c.execute("UPDATE schema_version SET version = 99", [])
                .expect("bump");
        }
        let e = Store::open(&d).expect_err("newer");
        assert!(e.to_string().contains("newer"), "{e}");
        let _ = std::fs::remove_dir_all(&d);
    }
}
