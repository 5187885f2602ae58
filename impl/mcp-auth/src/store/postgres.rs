//! The PostgreSQL backend: one database shared by several AS instances.
//!
//! The schema is versioned ([`POSTGRES_MIGRATIONS`]; `schema_version` holds the application's
//! name and the number applied); the migrations run at connect, in one transaction under a
//! transaction-scoped advisory lock, so instances that start together migrate once. A database
//! whose current schema holds another application's tables, or a newer mcp-auth's schema, is
//! refused ([`StoreError::Foreign`]).
//!
//! **The change sequence follows the commit order**: a commit first raises the one-row counter
//! (`UPDATE change_sequence SET seq = seq + n RETURNING seq`), whose row lock it holds until
//! `COMMIT`, so writers are serialized from their sequence assignment to their commit and no
//! change with a lower sequence can become visible after a higher one (a PostgreSQL `SEQUENCE`
//! would not do: its values are handed out in one order and committed in another). Reads
//! (`load`, `changes_since`) run in one `REPEATABLE READ` snapshot.
//!
//! The synchronous `postgres` client runs its own small tokio runtime; a store therefore keeps
//! its connection on a **thread of its own** and sends it each call, so the store may be used
//! from a tokio `spawn_blocking` thread and dropped on an async worker without a "runtime
//! within a runtime" panic. Every call is bounded (connect timeout, `statement_timeout`,
//! `lock_timeout`, TCP user timeout: 5 s unless the URL says otherwise); a failed call drops the
//! connection and answers [`StoreError::Unavailable`]; the next call connects again. A call
//! that finds its connection closed (the server restarted meanwhile) runs once more on a new
//! connection when nothing could have committed: reads, and a commit that failed before its
//! `COMMIT` was sent.

use std::sync::mpsc;
use std::time::Duration;

use ::postgres::{Client, Config, IsolationLevel, NoTls, Statement};
use mcp_auth_proto::server::Change;

use super::sqlite::update_of;
use super::{
    Delta, Snapshot, StoreError, StoredUpdate, TOMBSTONE_GC_EVERY, TOMBSTONE_MAX_AGE, signed,
    unix_now, unsigned,
};

/// The application name in `schema_version`.
const APPLICATION: &str = "mcp-auth";

/// The advisory lock key held while migrating ("MCPA").
const MIGRATION_LOCK: i64 = 0x4D43_5041;

/// The bound on connecting and on each statement, unless the URL sets its own.
const TIMEOUT: Duration = Duration::from_secs(5);

/// The schema migrations of the PostgreSQL store, in order; `schema_version.version` is how
/// many were applied. (The same shape as the SQLite store's v2.)
pub const POSTGRES_MIGRATIONS: &[&str] = &[
    // v1: records with their change sequence and tombstones, the counter, the signing keys.
    "CREATE TABLE records (
         kind TEXT NOT NULL,
         id TEXT NOT NULL,
         version BIGINT NOT NULL CHECK (version >= 0),
         body TEXT,
         seq BIGINT NOT NULL,
         removed_at BIGINT,
         PRIMARY KEY (kind, id),
         CHECK ((body IS NULL) = (version = 0)),
         CHECK ((removed_at IS NULL) = (version > 0))
     );
     CREATE INDEX records_seq ON records (seq);
     CREATE INDEX records_tombstones ON records (removed_at) WHERE version = 0;
     CREATE TABLE change_sequence (
         one BOOLEAN PRIMARY KEY DEFAULT TRUE CHECK (one),
         seq BIGINT NOT NULL CHECK (seq >= 0),
         horizon BIGINT NOT NULL CHECK (horizon >= 0)
     );
     INSERT INTO change_sequence (seq, horizon) VALUES (0, 0);
     CREATE TABLE signing_keys (
         seq BIGSERIAL PRIMARY KEY,
         kid TEXT NOT NULL UNIQUE,
         pkcs8_pem TEXT NOT NULL
     );",
];

/// A store on PostgreSQL: the handle of its connection thread.
pub(super) struct PgStore {
    jobs: mpsc::Sender<Job>,
    shown: String,
}

impl std::fmt::Debug for PgStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgStore")
            .field("url", &self.shown)
            .finish_non_exhaustive()
    }
}

/// A call for the connection thread.
type Job = Box<dyn FnOnce(&mut Session) + Send>;

/// The connection thread's state.
struct Session {
    config: Config,
    shown: String,
    live: Option<Live>,
    /// Commits since the last look for old tombstones.
    commits: u32,
}

/// An open connection and its prepared statements.
struct Live {
    client: Client,
    st: Statements,
}

/// The statements of the hot paths, prepared once per connection (one round trip each
/// saved per use).
struct Statements {
    bump: Statement,
    insert: Statement,
    update: Statement,
    remove: Statement,
    live_count: Statement,
    sequence: Statement,
    records: Statement,
    since: Statement,
}

impl Statements {
    fn prepare(client: &mut Client) -> Result<Self, ::postgres::Error> {
        Ok(Self {
            bump: client.prepare("UPDATE change_sequence SET seq = seq + $1 RETURNING seq")?,
            insert: client.prepare(
                "INSERT INTO records (kind, id, version, body, seq, removed_at)
                 VALUES ($1, $2, $3, $4, $5, NULL)
                 ON CONFLICT (kind, id) DO UPDATE
                 SET version = excluded.version, body = excluded.body,
                     seq = excluded.seq, removed_at = NULL
                 WHERE records.version = 0",
            )?,
            update: client.prepare(
                "UPDATE records SET version = $3, body = $4, seq = $5
                 WHERE kind = $1 AND id = $2 AND version = $6",
            )?,
            remove: client.prepare(
                "UPDATE records SET version = 0, body = NULL, seq = $3, removed_at = $4
                 WHERE kind = $1 AND id = $2 AND version = $5",
            )?,
            live_count: client.prepare(
                "SELECT count(*) FROM records WHERE kind = $1 AND id = $2 AND version > 0",
            )?,
            sequence: client.prepare("SELECT seq, horizon FROM change_sequence")?,
            records: client
                .prepare("SELECT kind, id, version, body FROM records WHERE version > 0")?,
            since: client.prepare(
                "SELECT kind, id, version, body FROM records WHERE seq > $1 ORDER BY seq",
            )?,
        })
    }
}

/// The URL (or `key=value` string) without its password.
pub(super) fn redact(url: &str) -> String {
    if let Some((scheme, rest)) = url.split_once("://") {
        let end = rest.find(['/', '?']).unwrap_or(rest.len());
        let (authority, tail) = rest.split_at(end);
        let authority = match authority.rsplit_once('@') {
            Some((user, host)) => {
                let user = user.split_once(':').map_or(user, |(u, _)| u);
                format!("{user}@{host}")
            }
            None => authority.to_owned(),
        };
        let tail = match tail.split_once('?') {
            Some((path, query)) => {
                let kept: Vec<&str> = query
                    .split('&')
                    .filter(|p| !p.starts_with("password="))
                    .collect();
                if kept.is_empty() {
                    path.to_owned()
                } else {
                    format!("{path}?{}", kept.join("&"))
                }
            }
            None => tail.to_owned(),
        };
        format!("{scheme}://{authority}{tail}")
    } else {
        url.split_whitespace()
            .filter(|p| !p.starts_with("password="))
            .collect::<Vec<_>>()
            .join(" ")
    }
}

/// A failed call: the connection is dropped (the next call connects again).
fn unavailable(_shown: &str, e: &::postgres::Error) -> StoreError {
    let why = e.as_db_error().map_or_else(
        || e.to_string(),
        |db| format!("{}: {}", db.code().code(), db.message()),
    );
    StoreError::Unavailable(why)
}

impl Session {
    /// The connection, made (again) if there is none or it was closed.
    fn live(&mut self) -> Result<&mut Live, StoreError> {
        if self.live.as_ref().is_some_and(|l| l.client.is_closed()) {
            self.live = None;
        }
        if self.live.is_none() {
            let mut client = self
                .config
                .connect(NoTls)
                .map_err(|e| unavailable(&self.shown, &e))?;
            let st = Statements::prepare(&mut client).map_err(|e| unavailable(&self.shown, &e))?;
            self.live = Some(Live { client, st });
        }
        self.live
            .as_mut()
            .ok_or_else(|| StoreError::Unavailable("not connected".to_owned()))
    }

    /// Run `f` on the connection; an `Unavailable` answer drops the connection. When that
    /// connection turns out to have been closed (the server restarted, an idle connection was
    /// cut) and `may_retry` says nothing that could have committed was sent, `f` runs once more
    /// on a new connection, so the first call after the database returns does not fail.
    fn run_retrying<T>(
        &mut self,
        mut f: impl FnMut(&mut Live, &str) -> Result<T, StoreError>,
        may_retry: impl Fn() -> bool,
    ) -> Result<T, StoreError> {
        let shown = self.shown.clone();
        let mut attempts = 0;
        loop {
            attempts += 1;
            let live = self.live()?;
            let result = f(live, &shown);
            if !matches!(result, Err(StoreError::Unavailable(_))) {
                return result;
            }
            let closed = live.client.is_closed();
            self.live = None;
            if !(closed && attempts == 1 && may_retry()) {
                return result;
            }
        }
    }

    /// [`Session::run_retrying`] for calls that are safe to repeat (reads).
    fn run<T>(
        &mut self,
        f: impl FnMut(&mut Live, &str) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        self.run_retrying(f, || true)
    }

    /// Check the database and apply pending migrations (at connect), in one transaction under
    /// the migration lock.
    fn migrate(&mut self) -> Result<(), StoreError> {
        let shown = self.shown.clone();
        let fail = |e: ::postgres::Error| unavailable(&shown, &e);
        let mut client = self.config.connect(NoTls).map_err(fail)?;
        let mut tx = client.transaction().map_err(fail)?;
        tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])
            .map_err(fail)?;
        let tables: Vec<String> = tx
            .query(
                "SELECT table_name::text FROM information_schema.tables
                 WHERE table_schema = current_schema() ORDER BY table_name",
                &[],
            )
            .map_err(fail)?
            .iter()
            .map(|r| r.get(0))
            .collect();
        let applied = if tables.iter().any(|t| t == "schema_version") {
            let rows = tx
                .query("SELECT application, version FROM schema_version", &[])
                .map_err(|e| {
                    StoreError::Foreign(format!(
                        "its schema_version table is not mcp-auth's ({})",
                        e.as_db_error()
                            .map_or_else(|| e.to_string(), |d| d.message().into())
                    ))
                })?;
            match rows.as_slice() {
                [row] => {
                    let (application, version): (String, i32) = (row.get(0), row.get(1));
                    if application != APPLICATION {
                        return Err(StoreError::Foreign(format!(
                            "the database belongs to another application ({application:?})"
                        )));
                    }
                    usize::try_from(version)
                        .map_err(|_| StoreError::Corrupt("negative schema version".into()))?
                }
                _ => {
                    return Err(StoreError::Corrupt(format!(
                        "schema_version has {} rows, not one",
                        rows.len()
                    )));
                }
            }
        } else if tables.is_empty() {
            tx.batch_execute(
                "CREATE TABLE schema_version (application TEXT NOT NULL, version INTEGER NOT NULL)",
            )
            .map_err(fail)?;
            tx.execute(
                "INSERT INTO schema_version (application, version) VALUES ($1, 0)",
                &[&APPLICATION],
            )
            .map_err(fail)?;
            0
        } else {
            return Err(StoreError::Foreign(format!(
                "the database holds {} table(s) of another application ({})",
                tables.len(),
                tables.join(", ")
            )));
        };
        if applied > POSTGRES_MIGRATIONS.len() {
            return Err(StoreError::Foreign(format!(
                "schema version {applied} is newer than this mcp-auth knows ({})",
                POSTGRES_MIGRATIONS.len()
            )));
        }
        for (i, migration) in POSTGRES_MIGRATIONS.iter().enumerate().skip(applied) {
            tx.batch_execute(migration).map_err(fail)?;
            let version = i32::try_from(i + 1).unwrap_or(i32::MAX);
            tx.execute("UPDATE schema_version SET version = $1", &[&version])
                .map_err(fail)?;
        }
        tx.commit().map_err(fail)?;
        Ok(())
    }
}

/// Remove the tombstones removed at least `older_than` before `now` and raise the horizon to
/// the highest sequence removed, within `tx` (which holds the counter's row lock). Returns the
/// horizon.
fn collect(
    tx: &mut ::postgres::Transaction<'_>,
    now: i64,
    older_than: Duration,
) -> Result<u64, ::postgres::Error> {
    let cutoff = now.saturating_sub(i64::try_from(older_than.as_secs()).unwrap_or(i64::MAX));
    let highest: Option<i64> = tx
        .query_one(
            "SELECT max(seq) FROM records WHERE version = 0 AND removed_at <= $1",
            &[&cutoff],
        )?
        .get(0);
    if let Some(highest) = highest {
        tx.execute(
            "DELETE FROM records WHERE version = 0 AND removed_at <= $1",
            &[&cutoff],
        )?;
        tx.execute(
            "UPDATE change_sequence SET horizon = greatest(horizon, $1)",
            &[&highest],
        )?;
    }
    let horizon: i64 = tx
        .query_one("SELECT horizon FROM change_sequence", &[])?
        .get(0);
    Ok(u64::try_from(horizon).unwrap_or(0))
}

impl PgStore {
    pub(super) fn connect(url: &str) -> Result<Self, StoreError> {
        let shown = redact(url);
        let mut config: Config = url
            .parse()
            .map_err(|e| StoreError::Unavailable(format!("not a database URL: {e}")))?;
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(TIMEOUT);
        }
        if config.get_tcp_user_timeout().is_none() {
            config.tcp_user_timeout(TIMEOUT);
        }
        let ms = TIMEOUT.as_millis();
        // Ours first: options the URL gives come later and win.
        let options = format!(
            "-c statement_timeout={ms} -c lock_timeout={ms} -c synchronous_commit=on {}",
            config.get_options().unwrap_or_default()
        );
        config.options(options.trim_end());
        if config.get_application_name().is_none() {
            config.application_name("mcp-auth");
        }
        let mut session = Session {
            config,
            shown: shown.clone(),
            live: None,
            commits: 0,
        };
        let (jobs, queue) = mpsc::channel::<Job>();
        let (ready_tx, ready) = mpsc::sync_channel(1);
        std::thread::Builder::new()
            .name("mcp-auth-postgres".into())
            .spawn(move || {
                let started = session.migrate().and_then(|()| session.live().map(|_| ()));
                let ok = started.is_ok();
                let _ = ready_tx.send(started);
                if !ok {
                    return;
                }
                while let Ok(job) = queue.recv() {
                    job(&mut session);
                }
            })
            .map_err(|e| StoreError::Unavailable(format!("no thread: {e}")))?;
        ready
            .recv()
            .map_err(|_| StoreError::Unavailable("the connection thread stopped".to_owned()))??;
        Ok(Self { jobs, shown })
    }

    pub(super) fn describe(&self) -> &str {
        &self.shown
    }

    /// Run `job` on the connection thread and wait for its answer.
    fn call<T: Send + 'static>(
        &self,
        job: impl FnOnce(&mut Session) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        let gone = || StoreError::Unavailable("the connection thread stopped".to_owned());
        let (answer, answered) = mpsc::sync_channel(1);
        self.jobs
            .send(Box::new(move |session: &mut Session| {
                let _ = answer.send(job(session));
            }))
            .map_err(|_| gone())?;
        answered.recv().map_err(|_| gone())?
    }

    pub(super) fn schema_version(&mut self) -> Result<u32, StoreError> {
        self.call(|s| {
            s.run(|live, shown| {
                let v: i32 = live
                    .client
                    .query_one("SELECT version FROM schema_version", &[])
                    .map_err(|e| unavailable(shown, &e))?
                    .get(0);
                u32::try_from(v).map_err(|_| StoreError::Corrupt("negative schema version".into()))
            })
        })
    }

    pub(super) fn load(&mut self) -> Result<Snapshot, StoreError> {
        self.call(|s| {
            s.run(|live, shown| {
                let fail = |e: ::postgres::Error| unavailable(shown, &e);
                let mut tx = read_snapshot(&mut live.client).map_err(fail)?;
                let seq: i64 = tx.query_one(&live.st.sequence, &[]).map_err(fail)?.get(0);
                let rows = tx.query(&live.st.records, &[]).map_err(fail)?;
                tx.commit().map_err(fail)?;
                let mut records = Vec::with_capacity(rows.len());
                for r in rows {
                    if let StoredUpdate::Put(record) =
                        update_of(r.get(0), r.get(1), r.get(2), r.get(3))?
                    {
                        records.push(record);
                    }
                }
                Ok(Snapshot {
                    records,
                    seq: unsigned("the change sequence", seq)?,
                })
            })
        })
    }

    pub(super) fn changes_since(&mut self, since: u64) -> Result<Option<Delta>, StoreError> {
        self.call(move |s| {
            s.run(|live, shown| {
                let fail = |e: ::postgres::Error| unavailable(shown, &e);
                let mut tx = read_snapshot(&mut live.client).map_err(fail)?;
                let row = tx.query_one(&live.st.sequence, &[]).map_err(fail)?;
                let seq = unsigned("the change sequence", row.get(0))?;
                let horizon = unsigned("the horizon", row.get(1))?;
                if since < horizon || since > seq {
                    tx.commit().map_err(fail)?;
                    return Ok(None);
                }
                let rows = tx.query(&live.st.since, &[&signed(since)]).map_err(fail)?;
                tx.commit().map_err(fail)?;
                let updates = rows
                    .iter()
                    .map(|r| update_of(r.get(0), r.get(1), r.get(2), r.get(3)))
                    .collect::<Result<_, _>>()?;
                Ok(Some(Delta { updates, seq }))
            })
        })
    }

    pub(super) fn commit(&mut self, changes: &[Change]) -> Result<(), StoreError> {
        let changes = changes.to_vec();
        self.call(move |s| {
            s.commits += 1;
            let gc = s.commits >= TOMBSTONE_GC_EVERY;
            if gc {
                s.commits = 0;
            }
            // Repeated on a new connection only if `COMMIT` was never sent (a failure before
            // it rolled everything back).
            let sent = std::cell::Cell::new(false);
            s.run_retrying(
                |live, shown| commit(live, shown, &changes, gc, &sent),
                || !sent.get(),
            )
        })
    }

    pub(super) fn collect_tombstones(&mut self, older_than: Duration) -> Result<u64, StoreError> {
        self.call(move |s| {
            s.run(|live, shown| {
                let fail = |e: ::postgres::Error| unavailable(shown, &e);
                let mut tx = live.client.transaction().map_err(fail)?;
                tx.execute("SELECT seq FROM change_sequence FOR UPDATE", &[])
                    .map_err(fail)?;
                let horizon = collect(&mut tx, unix_now(), older_than).map_err(fail)?;
                tx.commit().map_err(fail)?;
                Ok(horizon)
            })
        })
    }

    pub(super) fn current_signing_key(&mut self) -> Result<Option<String>, StoreError> {
        self.call(|s| {
            s.run(|live, shown| {
                live.client
                    .query_opt(
                        "SELECT pkcs8_pem FROM signing_keys ORDER BY seq DESC LIMIT 1",
                        &[],
                    )
                    .map(|row| row.map(|r| r.get(0)))
                    .map_err(|e| unavailable(shown, &e))
            })
        })
    }

    pub(super) fn add_signing_key(&mut self, kid: &str, pkcs8_pem: &str) -> Result<(), StoreError> {
        let (kid, pem) = (kid.to_owned(), pkcs8_pem.to_owned());
        self.call(move |s| {
            s.run_retrying(
                |live, shown| {
                    live.client
                        .execute(
                            "INSERT INTO signing_keys (kid, pkcs8_pem) VALUES ($1, $2)",
                            &[&kid, &pem],
                        )
                        .map(|_| ())
                        .map_err(|e| unavailable(shown, &e))
                },
                // An insert on its own may have committed when its answer was lost.
                || false,
            )
        })
    }
}

/// One commit: take the counter (its row lock serializes writers until `COMMIT`), apply each
/// change if the store holds the version it replaces, and commit, or roll back and name the
/// stale records.
fn commit(
    live: &mut Live,
    shown: &str,
    changes: &[Change],
    gc: bool,
    sent: &std::cell::Cell<bool>,
) -> Result<(), StoreError> {
    let fail = |e: ::postgres::Error| unavailable(shown, &e);
    let st = &live.st;
    let mut tx = live.client.transaction().map_err(fail)?;
    let n = i64::try_from(changes.len()).unwrap_or(i64::MAX);
    let top: i64 = tx.query_one(&st.bump, &[&n]).map_err(fail)?.get(0);
    let now = unix_now();
    let mut stale = Vec::new();
    let mut seq = top - n;
    for change in changes {
        seq += 1;
        let (kind, id) = (change.key.kind(), change.key.id());
        let version = signed(change.version);
        let rows = match (change.body(), change.replaces) {
            (Some(body), 0) => tx.execute(&st.insert, &[&kind, &id, &version, &body, &seq]),
            (Some(body), replaces) => tx.execute(
                &st.update,
                &[&kind, &id, &version, &body, &seq, &signed(replaces)],
            ),
            (None, 0) => tx
                .query_one(&st.live_count, &[&kind, &id])
                .map(|r| u64::from(r.get::<_, i64>(0) == 0)),
            (None, replaces) => {
                tx.execute(&st.remove, &[&kind, &id, &seq, &now, &signed(replaces)])
            }
        }
        .map_err(fail)?;
        if rows != 1 {
            stale.push(change.key.clone());
        }
    }
    if !stale.is_empty() {
        tx.rollback().map_err(fail)?;
        return Err(StoreError::Conflict(stale));
    }
    if gc {
        collect(&mut tx, now, TOMBSTONE_MAX_AGE).map_err(fail)?;
    }
    sent.set(true);
    tx.commit().map_err(fail)
}

/// A read-only transaction seeing one snapshot of the database (`load`, `changes_since`).
fn read_snapshot(client: &mut Client) -> Result<::postgres::Transaction<'_>, ::postgres::Error> {
    client
        .build_transaction()
        .isolation_level(IsolationLevel::RepeatableRead)
        .read_only(true)
        .start()
}

#[cfg(test)]
mod tests {
    use super::redact;

    #[test]
    fn describe_never_shows_the_password() {
        assert_eq!(
            redact("postgres://mcp:s3cret@db.example:5432/auth?sslmode=disable&password=x"),
            "postgres://mcp@db.example:5432/auth?sslmode=disable"
        );
        assert_eq!(
            redact("postgresql://127.0.0.1/auth"),
            "postgresql://127.0.0.1/auth"
        );
        assert_eq!(
            redact("host=127.0.0.1 password=s3cret dbname=auth"),
            "host=127.0.0.1 dbname=auth"
        );
    }
}
