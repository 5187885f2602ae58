//! The SQLite backend: one database (`mcp-auth.sqlite3`) in a data directory, in WAL mode with
//! `synchronous=FULL`, so a commit that returned is on disk.
//!
//! The schema is versioned: `schema_version` holds the number of [`MIGRATIONS`] applied, each
//! applied in its own transaction at open (v1 databases migrate to v2 in place). A database
//! made by a newer mcp-auth (more migrations than this one knows), a SQLite file of another
//! application (its `application_id` is not [`APPLICATION_ID`]) and a file that is not a sound
//! SQLite database are refused at open with a clear error. One writer at a time (`BEGIN
//! IMMEDIATE`), so the change sequence follows the commit order.

use std::path::{Path, PathBuf};
use std::time::Duration;

use mcp_auth_proto::server::{Change, StoredRecord};
use rusqlite::{Connection, OptionalExtension as _, TransactionBehavior, params};

use super::{
    Delta, Snapshot, StoreError, StoredUpdate, TOMBSTONE_GC_EVERY, TOMBSTONE_MAX_AGE, key_of,
    signed, unix_now, unsigned,
};

/// The database file's name inside the data directory.
pub const DATABASE_FILE: &str = "mcp-auth.sqlite3";

/// `PRAGMA application_id` of an mcp-auth database ("MCPA").
pub const APPLICATION_ID: i32 = 0x4D43_5041;

/// The schema migrations of the SQLite store, in order; `schema_version` is how many were
/// applied.
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
    // v2: the change sequence (each record carries the sequence of its last change), and
    // tombstones (version 0, no body, the time of the removal) for removals; the existing
    // records get sequences 1..n.
    "CREATE TABLE records_v2 (
         kind TEXT NOT NULL,
         id TEXT NOT NULL,
         version INTEGER NOT NULL CHECK (version >= 0),
         body TEXT,
         seq INTEGER NOT NULL,
         removed_at INTEGER,
         PRIMARY KEY (kind, id),
         CHECK ((body IS NULL) = (version = 0)),
         CHECK ((removed_at IS NULL) = (version > 0))
     ) WITHOUT ROWID;
     INSERT INTO records_v2 (kind, id, version, body, seq, removed_at)
         SELECT kind, id, version, body, row_number() OVER (ORDER BY kind, id), NULL
         FROM records;
     DROP TABLE records;
     ALTER TABLE records_v2 RENAME TO records;
     CREATE INDEX records_seq ON records (seq);
     CREATE INDEX records_tombstones ON records (removed_at) WHERE version = 0;
     CREATE TABLE change_sequence (
         one INTEGER PRIMARY KEY CHECK (one = 1),
         seq INTEGER NOT NULL CHECK (seq >= 0),
         horizon INTEGER NOT NULL CHECK (horizon >= 0)
     );
     INSERT INTO change_sequence (one, seq, horizon) SELECT 1, count(*), 0 FROM records;",
];

fn classify(e: rusqlite::Error) -> StoreError {
    use rusqlite::ErrorCode as C;
    match e.sqlite_error_code() {
        Some(C::NotADatabase | C::DatabaseCorrupt) => StoreError::Corrupt(e.to_string()),
        _ => StoreError::Unavailable(e.to_string()),
    }
}

/// An open SQLite store.
#[derive(Debug)]
pub(super) struct SqliteStore {
    connection: Connection,
    path: PathBuf,
    /// Commits since the last look for old tombstones.
    commits: u32,
}

/// A row of `records` as read: kind, id, version, body (`None`: a tombstone), sequence.
type Row = (String, String, i64, Option<String>, i64);

fn row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Row> {
    Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))
}

/// A stored row as an update (a tombstone is a removal).
pub(super) fn update_of(
    kind: &str,
    id: &str,
    version: i64,
    body: Option<String>,
) -> Result<StoredUpdate, StoreError> {
    let key = key_of(kind, id)?;
    let version = unsigned(&format!("{kind} {id:?}: version"), version)?;
    match (body, version) {
        (None, 0) => Ok(StoredUpdate::Removed(key)),
        (Some(body), v) if v > 0 => Ok(StoredUpdate::Put(StoredRecord { key, version, body })),
        _ => Err(StoreError::Corrupt(format!(
            "{kind} {id:?}: version {version} does not match its body"
        ))),
    }
}

impl SqliteStore {
    pub(super) fn open(dir: &Path) -> Result<Self, StoreError> {
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
        let mut store = Self {
            connection,
            path,
            commits: 0,
        };
        store.check_and_migrate()?;
        Ok(store)
    }

    pub(super) fn path(&self) -> &Path {
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

    pub(super) fn schema_version(&mut self) -> Result<u32, StoreError> {
        self.connection
            .query_row("SELECT max(version) FROM schema_version", [], |r| r.get(0))
            .map_err(classify)
    }

    pub(super) fn load(&mut self) -> Result<Snapshot, StoreError> {
        // One read transaction: the records and the sequence are one snapshot.
        let tx = self.connection.transaction().map_err(classify)?;
        let seq: i64 = tx
            .query_row("SELECT seq FROM change_sequence", [], |r| r.get(0))
            .map_err(classify)?;
        let rows = {
            let mut statement = tx
                .prepare("SELECT kind, id, version, body, seq FROM records WHERE version > 0")
                .map_err(classify)?;
            statement
                .query_map([], row)
                .map_err(classify)?
                .collect::<Result<Vec<_>, _>>()
                .map_err(classify)?
        };
        tx.finish().map_err(classify)?;
        let mut records = Vec::with_capacity(rows.len());
        for (kind, id, version, body, _) in rows {
            match update_of(&kind, &id, version, body)? {
                StoredUpdate::Put(record) => records.push(record),
                StoredUpdate::Removed(_) => {}
            }
        }
        Ok(Snapshot {
            records,
            seq: unsigned("the change sequence", seq)?,
        })
    }

    pub(super) fn changes_since(&mut self, since: u64) -> Result<Option<Delta>, StoreError> {
        let tx = self.connection.transaction().map_err(classify)?;
        let (seq, horizon): (i64, i64) = tx
            .query_row("SELECT seq, horizon FROM change_sequence", [], |r| {
                Ok((r.get(0)?, r.get(1)?))
            })
            .map_err(classify)?;
        let (seq, horizon) = (
            unsigned("the change sequence", seq)?,
            unsigned("the horizon", horizon)?,
        );
        if since < horizon || since > seq {
            return Ok(None);
        }
        let rows = {
            let mut statement = tx
                .prepare(
                    "SELECT kind, id, version, body, seq FROM records WHERE seq > ?1 ORDER BY seq",
                )
                .map_err(classify)?;
            statement
                .query_map(params![signed(since)], row)
                .map_err(classify)?
                .collect::<Result<Vec<_>, _>>()
                .map_err(classify)?
        };
        tx.finish().map_err(classify)?;
        let updates = rows
            .into_iter()
            .map(|(kind, id, version, body, _)| update_of(&kind, &id, version, body))
            .collect::<Result<_, _>>()?;
        Ok(Some(Delta { updates, seq }))
    }

    pub(super) fn commit(&mut self, changes: &[Change]) -> Result<(), StoreError> {
        let tx = self
            .connection
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(classify)?;
        let base: i64 = tx
            .query_row("SELECT seq FROM change_sequence", [], |r| r.get(0))
            .map_err(classify)?;
        let now = unix_now();
        let mut stale = Vec::new();
        let mut seq = base;
        for change in changes {
            seq += 1;
            let (kind, id) = (change.key.kind(), change.key.id());
            let rows = match (change.body(), change.replaces) {
                // Absent or a tombstone: insert, or revive the tombstone.
                (Some(body), 0) => tx.execute(
                    "INSERT INTO records (kind, id, version, body, seq, removed_at)
                     VALUES (?1, ?2, ?3, ?4, ?5, NULL)
                     ON CONFLICT (kind, id) DO UPDATE
                     SET version = excluded.version, body = excluded.body,
                         seq = excluded.seq, removed_at = NULL
                     WHERE records.version = 0",
                    params![kind, id, signed(change.version), body, seq],
                ),
                (Some(body), replaces) => tx.execute(
                    "UPDATE records SET version = ?3, body = ?4, seq = ?5
                     WHERE kind = ?1 AND id = ?2 AND version = ?6",
                    params![
                        kind,
                        id,
                        signed(change.version),
                        body,
                        seq,
                        signed(replaces)
                    ],
                ),
                // Removing what is absent: nothing to write, but it must be absent.
                (None, 0) => tx
                    .query_row(
                        "SELECT count(*) FROM records WHERE kind = ?1 AND id = ?2 AND version > 0",
                        params![kind, id],
                        |r| r.get::<_, i64>(0),
                    )
                    .map(|live| usize::from(live == 0)),
                (None, replaces) => tx.execute(
                    "UPDATE records SET version = 0, body = NULL, seq = ?3, removed_at = ?4
                     WHERE kind = ?1 AND id = ?2 AND version = ?5",
                    params![kind, id, seq, now, signed(replaces)],
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
        tx.execute("UPDATE change_sequence SET seq = ?1", params![seq])
            .map_err(classify)?;
        self.commits += 1;
        if self.commits >= TOMBSTONE_GC_EVERY {
            self.commits = 0;
            collect(&tx, now, TOMBSTONE_MAX_AGE)?;
        }
        tx.commit().map_err(classify)
    }

    pub(super) fn collect_tombstones(&mut self, older_than: Duration) -> Result<u64, StoreError> {
        let tx = self
            .connection
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(classify)?;
        let horizon = collect(&tx, unix_now(), older_than)?;
        tx.commit().map_err(classify)?;
        Ok(horizon)
    }

    pub(super) fn current_signing_key(&mut self) -> Result<Option<String>, StoreError> {
        self.connection
            .query_row(
                "SELECT pkcs8_pem FROM signing_keys ORDER BY seq DESC LIMIT 1",
                [],
                |r| r.get(0),
            )
            .optional()
            .map_err(classify)
    }

    pub(super) fn add_signing_key(&mut self, kid: &str, pkcs8_pem: &str) -> Result<(), StoreError> {
        self.connection
            .execute(
                "INSERT INTO signing_keys (kid, pkcs8_pem) VALUES (?1, ?2)",
                params![kid, pkcs8_pem],
            )
            .map(|_| ())
            .map_err(classify)
    }
}

/// Remove the tombstones removed at least `older_than` before `now`; raise the horizon to the
/// highest sequence removed. Returns the horizon.
fn collect(
    tx: &rusqlite::Transaction<'_>,
    now: i64,
    older_than: Duration,
) -> Result<u64, StoreError> {
    let cutoff = now.saturating_sub(i64::try_from(older_than.as_secs()).unwrap_or(i64::MAX));
    let highest: Option<i64> = tx
        .query_row(
            "SELECT max(seq) FROM records WHERE version = 0 AND removed_at <= ?1",
            params![cutoff],
            |r| r.get(0),
        )
        .map_err(classify)?;
    if let Some(highest) = highest {
        tx.execute(
            "DELETE FROM records WHERE version = 0 AND removed_at <= ?1",
            params![cutoff],
        )
        .map_err(classify)?;
        tx.execute(
            "UPDATE change_sequence SET horizon = max(horizon, ?1)",
            params![highest],
        )
        .map_err(classify)?;
    }
    let horizon: i64 = tx
        .query_row("SELECT horizon FROM change_sequence", [], |r| r.get(0))
        .map_err(classify)?;
    unsigned("the horizon", horizon)
}

#[cfg(test)]
mod tests {
    use super::*;
    use mcp_auth_proto::server::{Record, RecordKey};

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
        let mut store = SqliteStore::open(&d).expect("open");
        assert_eq!(store.schema_version(), Ok(2));
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
        let mut store = SqliteStore::open(&d).expect("reopen");
        let loaded = store.load().expect("load").records;
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
        drop(SqliteStore::open(&d).expect("create"));
        let other = Connection::open(d.join(DATABASE_FILE)).expect("other");
        other.execute_batch("BEGIN IMMEDIATE").expect("write lock");
        let e = SqliteStore::open(&d).expect_err("locked");
        assert!(
            matches!(e, StoreError::Unavailable(ref why) if why.contains("locked")),
            "{e}"
        );
        other.execute_batch("ROLLBACK").expect("release");
        drop(SqliteStore::open(&d).expect("writable again"));
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
        let e = SqliteStore::open(&d).expect_err("foreign");
        assert!(matches!(e, StoreError::Foreign(_)), "{e}");
        std::fs::write(&path, b"this is not a database, just some text that is long enough to look like a header ....................................").expect("write");
        let _ = std::fs::remove_file(d.join(format!("{DATABASE_FILE}-wal")));
        let _ = std::fs::remove_file(d.join(format!("{DATABASE_FILE}-shm")));
        let e = SqliteStore::open(&d).expect_err("corrupt");
        assert!(matches!(e, StoreError::Corrupt(_)), "{e}");
        std::fs::remove_file(&path).expect("rm");
        drop(SqliteStore::open(&d).expect("fresh"));
        {
            let c = Connection::open(&path).expect("sqlite");
            c.execute("UPDATE schema_version SET version = 99", [])
                .expect("bump");
        }
        let e = SqliteStore::open(&d).expect_err("newer");
        assert!(e.to_string().contains("newer"), "{e}");
        let _ = std::fs::remove_dir_all(&d);
    }

    #[test]
    fn a_v1_database_migrates_in_place_to_v2() {
        let d = dir("v1");
        std::fs::create_dir_all(&d).expect("dir");
        {
            // A database as mcp-auth with one migration left it.
            let c = Connection::open(d.join(DATABASE_FILE)).expect("sqlite");
            c.pragma_update(None, "application_id", APPLICATION_ID)
                .expect("id");
            c.execute_batch(MIGRATIONS[0]).expect("v1");
            c.execute_batch(
                "CREATE TABLE schema_version (version INTEGER NOT NULL);
                 INSERT INTO schema_version (version) VALUES (1);
                 INSERT INTO records (kind, id, version, body) VALUES
                     ('sequence', 'grant', 3, '{\"next\":9}'),
                     ('keys', 'current', 1, '{}');",
            )
            .expect("v1 rows");
        }
        let mut store = SqliteStore::open(&d).expect("migrates");
        assert_eq!(store.schema_version(), Ok(2));
        let snapshot = store.load().expect("load");
        assert_eq!(snapshot.seq, 2);
        let mut versions: Vec<_> = snapshot
            .records
            .iter()
            .map(|r| (r.key.kind(), r.version))
            .collect();
        versions.sort_unstable();
        assert_eq!(versions, [("keys", 1), ("sequence", 3)]);
        // The next commit continues the sequence.
        store.commit(&[change(3, 4, Some(10))]).expect("update");
        let delta = store.changes_since(2).expect("since").expect("known");
        assert_eq!((delta.seq, delta.updates.len()), (3, 1));
        drop(store);
        // Opening again applies nothing more.
        let mut again = SqliteStore::open(&d).expect("reopen");
        assert_eq!(again.schema_version(), Ok(2));
        assert_eq!(again.load().expect("load").seq, 3);
        let _ = std::fs::remove_dir_all(&d);
    }

    #[test]
    fn every_so_many_commits_old_tombstones_are_collected_and_the_horizon_rises() {
        let d = dir("gc");
        let mut store = SqliteStore::open(&d).expect("open");
        store.commit(&[change(0, 1, Some(1))]).expect("insert");
        store.commit(&[change(1, 0, None)]).expect("remove");
        // The tombstone (sequence 2) is two hours old.
        store
            .connection
            .execute(
                "UPDATE records SET removed_at = removed_at - 7200 WHERE version = 0",
                [],
            )
            .expect("age");
        store.commits = TOMBSTONE_GC_EVERY - 2;
        store
            .commit(&[Change {
                key: RecordKey::Keys,
                replaces: 0,
                version: 1,
                record: Some(Record::GrantSequence(1)),
            }])
            .expect("a commit before the check");
        assert!(store.changes_since(1).expect("since").is_some());
        store
            .commit(&[Change {
                key: RecordKey::Keys,
                replaces: 1,
                version: 2,
                record: Some(Record::GrantSequence(2)),
            }])
            .expect("the commit that checks");
        assert_eq!(store.changes_since(1).expect("since"), None);
        assert!(store.changes_since(2).expect("since").is_some());
        let tombstones: i64 = store
            .connection
            .query_row("SELECT count(*) FROM records WHERE version = 0", [], |r| {
                r.get(0)
            })
            .expect("count");
        assert_eq!(tombstones, 0);
        let _ = std::fs::remove_dir_all(&d);
    }
}
