//! The AS's durable store on PostgreSQL (issue 13), for several instances on one database.
//!
//! Each test gets its own database (`mcp_auth_testkit::postgres::database_url`) on the server
//! of `MCP_AUTH_TEST_DATABASE_URL`, else on a throwaway cluster this process starts once (and
//! that stops when it exits); without PostgreSQL installed the tests fail with "PostgreSQL is
//! not installed: `cargo xtask test` installs it". The test that stops the database while
//! serving starts a cluster of its own.
//!
//! - the store's contract, as on SQLite (`tests/support/store_contract.rs`); the change
//!   sequence in commit order across connections committing concurrently, counted over many
//!   commits; migrations (idempotent, concurrent first starts); foreign and newer schemas
//!   refused; the store used from `spawn_blocking` and dropped on an async worker;
//! - the servers, as `tests/durable.rs` on SQLite: a restart keeps clients, keys and refresh
//!   families; a refresh race between two instances revokes the family; an unreachable
//!   database stops `serve` with exit status 1; a database stopped while serving answers 503
//!   with `Retry-After` and the server recovers when it returns (a restart while idle costs no
//!   request a 503); `keys rotate --database-url`.

#[path = "support/store_contract.rs"]
mod store_contract;

#[path = "support/durable_http.rs"]
mod durable_http;

use durable_http::*;

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Barrier};

use mcp_auth::demo::Stack;
use mcp_auth::store::{Store, StoreError, StoredUpdate};
use mcp_auth_testkit::postgres::{Cluster, database_url};
use serde_json::Value;
use store_contract::{key, put};

fn connect(url: &str) -> Store {
    Store::connect(url).expect("the store connects")
}

/// Run the synchronous client work of a test on a thread (never on an async worker).
fn blocking<T: Send>(f: impl FnOnce() -> T + Send) -> T {
    std::thread::scope(|s| {
        s.spawn(f)
            .join()
            .unwrap_or_else(|e| std::panic::resume_unwind(e))
    })
}

/// Run SQL on the database `url` as its owner (a test's own database).
fn sql(url: &str, statements: &str) -> Result<(), String> {
    let (url, statements) = (url.to_owned(), statements.to_owned());
    blocking(move || {
        postgres::Client::connect(&url, postgres::NoTls)
            .and_then(|mut c| c.batch_execute(&statements))
            .map_err(|e| e.to_string())
    })
}

#[test]
fn postgres_commits_are_compare_and_set() {
    let mut store = connect(&database_url("cas"));
    assert_eq!(store.schema_version(), Ok(1));
    store_contract::compare_and_set(&mut store);
}

#[test]
fn postgres_changes_since_reports_puts_and_removals_in_sequence_order() {
    let mut store = connect(&database_url("changes"));
    store_contract::changes_and_tombstones(&mut store);
}

#[test]
fn postgres_collected_tombstones_make_older_sequences_unknown() {
    let mut store = connect(&database_url("horizon"));
    store_contract::horizon(&mut store);
}

/// Two connections commit concurrently while a third follows with `changes_since`: a reader
/// that has seen sequence S never misses a change because it became visible later with a
/// sequence at most S. Repeated over many commits; every change must be seen.
#[test]
fn postgres_change_sequence_follows_commit_order_across_concurrent_writers() {
    const ROUNDS: usize = 3;
    const WRITERS: usize = 2;
    const COMMITS: usize = 150;
    let mut missed_total = 0;
    let mut seen_total = 0;
    for round in 0..ROUNDS {
        let url = database_url("order");
        let start = Arc::new(Barrier::new(WRITERS + 1));
        let done = Arc::new(AtomicBool::new(false));
        let mut writers = Vec::new();
        for w in 0..WRITERS {
            let (url, start) = (url.clone(), Arc::clone(&start));
            writers.push(std::thread::spawn(move || {
                let mut store = connect(&url);
                start.wait();
                for i in 0..COMMITS {
                    // Two records per commit, so commits overlap more.
                    store
                        .commit(&[
                            put(&key(&format!("{round}-{w}-{i}-a")), 0, Some(1)),
                            put(&key(&format!("{round}-{w}-{i}-b")), 0, Some(1)),
                        ])
                        .expect("commit");
                }
            }));
        }
        let mut reader = connect(&url);
        start.wait();
        let (mut seen, mut mark, mut polls) = (BTreeSet::new(), 0, 0);
        let follow = |reader: &mut Store, seen: &mut BTreeSet<_>, mark: &mut u64| {
            let delta = reader
                .changes_since(*mark)
                .expect("changes")
                .expect("no tombstones were collected");
            for update in delta.updates {
                if let StoredUpdate::Put(r) = update {
                    seen.insert(r.key);
                }
            }
            *mark = delta.seq;
        };
        let watcher = {
            let done = Arc::clone(&done);
            std::thread::spawn(move || {
                for w in writers {
                    w.join().expect("writer");
                }
                done.store(true, Ordering::SeqCst);
            })
        };
        while !done.load(Ordering::SeqCst) {
            follow(&mut reader, &mut seen, &mut mark);
            polls += 1;
        }
        watcher.join().expect("writers");
        // What the reader saw while following, against everything the store holds.
        let all: BTreeSet<_> = reader
            .load()
            .expect("load")
            .records
            .into_iter()
            .map(|r| r.key)
            .collect();
        assert_eq!(all.len(), WRITERS * COMMITS * 2);
        follow(&mut reader, &mut seen, &mut mark);
        let missed = all.difference(&seen).count();
        eprintln!(
            "round {round}: {} changes, {polls} polls while writing, {missed} missed",
            all.len()
        );
        missed_total += missed;
        seen_total += all.len();
        assert_eq!(mark, u64::try_from(WRITERS * COMMITS * 2).unwrap_or(0));
    }
    assert_eq!(missed_total, 0, "of {seen_total} changes");
}

/// Several instances starting together on an empty database migrate it once; connecting
/// again applies nothing.
#[test]
fn postgres_concurrent_first_starts_migrate_once_and_migration_is_idempotent() {
    let url = database_url("migrate");
    let start = Arc::new(Barrier::new(4));
    let stores: Vec<_> = (0..4)
        .map(|_| {
            let (url, start) = (url.clone(), Arc::clone(&start));
            std::thread::spawn(move || {
                start.wait();
                Store::connect(&url)
            })
        })
        .collect();
    for s in stores {
        let mut store = s.join().expect("thread").expect("connects");
        assert_eq!(store.schema_version(), Ok(1));
    }
    let mut again = connect(&url);
    assert_eq!(again.schema_version(), Ok(1));
    again.commit(&[put(&key("x"), 0, Some(1))]).expect("commit");
    drop(again);
    assert_eq!(connect(&url).load().expect("load").records.len(), 1);
}

#[test]
fn postgres_foreign_and_newer_schemas_are_refused() {
    let other = database_url("foreign");
    sql(&other, "CREATE TABLE orders (id INT PRIMARY KEY)").expect("another app");
    let e = Store::connect(&other).expect_err("foreign");
    assert!(
        matches!(e, StoreError::Foreign(ref why) if why.contains("orders")),
        "{e}"
    );
    let clash = database_url("foreign_version");
    sql(&clash, "CREATE TABLE schema_version (version INT)").expect("another app");
    let e = Store::connect(&clash).expect_err("foreign");
    assert!(matches!(e, StoreError::Foreign(_)), "{e}");
    let newer = database_url("newer");
    drop(connect(&newer));
    sql(&newer, "UPDATE schema_version SET version = 99").expect("bump");
    let e = Store::connect(&newer).expect_err("newer");
    assert!(
        matches!(e, StoreError::Foreign(ref why) if why.contains("newer")),
        "{e}"
    );
    // A database of mcp-auth left as it was: still usable.
    let ours = database_url("ours");
    drop(connect(&ours));
    assert_eq!(connect(&ours).schema_version(), Ok(1));
}

/// The driver calls the store from `spawn_blocking` on a multi-thread runtime and may drop it
/// on an async worker: neither panics ("runtime within a runtime").
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_store_works_from_spawn_blocking_and_drops_on_an_async_worker() {
    let url = database_url("blocking");
    let mut store = tokio::task::spawn_blocking(move || {
        let mut store = Store::connect(&url).expect("connects");
        store.commit(&[put(&key("a"), 0, Some(1))]).expect("commit");
        store
    })
    .await
    .expect("no panic");
    // Also callable on the async worker itself (it blocks it, as SQLite does).
    assert_eq!(store.load().expect("load").records.len(), 1);
    let store = tokio::task::spawn_blocking(move || {
        assert_eq!(
            store.changes_since(0).expect("since").map(|d| d.seq),
            Some(1)
        );
        store
    })
    .await
    .expect("no panic");
    drop(store);
}

// --- the servers -------------------------------------------------------------------------

async fn stack(url: &str, as_addr: &str, rs_addr: &str) -> Stack {
    Keeps::Database(url.to_owned())
        .stack(as_addr, rs_addr)
        .await
}

// spec: RT-2, PF-23
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_a_restart_on_the_same_database_forgets_nothing_durable() {
    restart_forgets_nothing(&Keeps::Database(database_url("restart"))).await;
}

/// Two servers on one database: a refresh token rotated at one and presented at the other
/// (whose memory is behind) loses the compare-and-set there and is answered as a replay; the
/// family is revoked in the database, so the first server refuses the newest token too.
// spec: RT-2, PF-23
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_a_refresh_race_between_two_servers_on_one_database_revokes_the_family() {
    refresh_race_revokes_the_family(&Keeps::Database(database_url("race"))).await;
}

// spec: PF-23
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_with_an_unreachable_database_exits_1_with_a_clear_message() {
    // A loopback port nothing listens on.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("port");
    let url = format!("postgres://mcp:secret-password@127.0.0.1:{port}/auth");
    let output = tokio::time::timeout(
        std::time::Duration::from_secs(30),
        tokio::process::Command::new(env!("CARGO_BIN_EXE_mcp-auth"))
            .args(["serve", "--database-url", &url])
            .output(),
    )
    .await
    .expect("serve gives up in time")
    .expect("runs");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("cannot start")
            && stderr.contains("database cannot be used")
            && stderr.contains(&format!("postgres://mcp@127.0.0.1:{port}/auth")),
        "{stderr}"
    );
    assert!(!stderr.contains("secret-password"), "{stderr}");
    assert!(!String::from_utf8_lossy(&output.stdout).contains("Authorization server"));
    // The same from the environment (no password in the process list): the same answer.
    let from_env = tokio::time::timeout(
        std::time::Duration::from_secs(30),
        tokio::process::Command::new(env!("CARGO_BIN_EXE_mcp-auth"))
            .args(["serve"])
            .env("MCP_AUTH_DATABASE_URL", &url)
            .output(),
    )
    .await
    .expect("serve gives up in time")
    .expect("runs");
    let env_stderr = String::from_utf8_lossy(&from_env.stderr);
    assert_eq!(from_env.status.code(), Some(1), "{env_stderr}");
    assert!(
        env_stderr.contains("database cannot be used") && !env_stderr.contains("secret-password"),
        "{env_stderr}"
    );
    // --data and --database-url together: refused.
    let both = tokio::process::Command::new(env!("CARGO_BIN_EXE_mcp-auth"))
        .args(["serve", "--data", "/nonexistent", "--database-url", &url])
        .output()
        .await
        .expect("runs");
    assert!(!both.status.success());
}

/// The database stops while the AS serves: a request that must commit answers 503 with
/// `Retry-After` (nothing is half-done); when the database is back, the store connects again
/// and the AS answers normally, with what was committed before.
// spec: PF-23
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_stopped_while_serving_answers_503_and_the_server_recovers() {
    let cluster = Arc::new(blocking(Cluster::start));
    let url = {
        let cluster = Arc::clone(&cluster);
        blocking(move || cluster.database("outage"))
    };
    let s = stack(&url, "127.0.0.1:0", "127.0.0.1:0").await;
    assert_eq!(register(&s.issuer).await.status, 201);
    {
        let cluster = Arc::clone(&cluster);
        tokio::task::spawn_blocking(move || cluster.stop())
            .await
            .expect("stopped");
    }
    for _ in 0..2 {
        let refused = register(&s.issuer).await;
        assert_eq!(
            refused.status,
            503,
            "{}",
            String::from_utf8_lossy(&refused.body)
        );
        assert_eq!(refused.header_value("retry-after"), Some("1"));
        let body: Value = serde_json::from_slice(&refused.body).unwrap_or_default();
        assert_eq!(body["error"], "temporarily_unavailable");
    }
    {
        let cluster = Arc::clone(&cluster);
        tokio::task::spawn_blocking(move || cluster.resume())
            .await
            .expect("started");
    }
    let back = register(&s.issuer).await;
    assert_eq!(back.status, 201, "{}", String::from_utf8_lossy(&back.body));
    assert_eq!(s.as_state.with_server(|s| s.clients().count()), 2);
    s.stop().await;
    // Both registrations are in the database.
    let mut store = {
        let url = url.clone();
        blocking(move || connect(&url))
    };
    let clients = store
        .load()
        .expect("load")
        .records
        .iter()
        .filter(|r| r.key.kind() == "client")
        .count();
    assert_eq!(clients, 2);
    drop(store);
}

/// The database restarts while the AS is idle: its connection is dead, but the first request
/// afterwards is answered normally (the store sees the closed connection and runs the
/// transaction again on a new one, since nothing was committed), never a 503.
// spec: PF-23
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_restarted_while_idle_the_next_request_succeeds_at_once() {
    let cluster = Arc::new(blocking(Cluster::start));
    let url = {
        let cluster = Arc::clone(&cluster);
        blocking(move || cluster.database("restart_idle"))
    };
    let s = stack(&url, "127.0.0.1:0", "127.0.0.1:0").await;
    assert_eq!(register(&s.issuer).await.status, 201);
    for _ in 0..2 {
        {
            let cluster = Arc::clone(&cluster);
            tokio::task::spawn_blocking(move || {
                cluster.stop();
                cluster.resume();
            })
            .await
            .expect("restarted");
        }
        let next = register(&s.issuer).await;
        assert_eq!(next.status, 201, "{}", String::from_utf8_lossy(&next.body));
    }
    assert_eq!(s.as_state.with_server(|s| s.clients().count()), 3);
    s.stop().await;
}

/// `mcp-auth keys rotate --database-url URL`: the next start signs with the new key and still
/// publishes the old one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_rotate_on_the_database_takes_effect_at_the_next_start() {
    let url = database_url("rotate");
    let s1 = stack(&url, "127.0.0.1:0", "127.0.0.1:0").await;
    let old_kid = s1.as_state.with_server(|s| s.signer().kid().to_owned());
    s1.stop().await;
    let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_mcp-auth"))
        .args(["keys", "rotate", "--database-url", &url])
        .output()
        .await
        .expect("runs");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let new_kid = String::from_utf8_lossy(&output.stdout).trim().to_owned();
    assert_ne!(new_kid, old_kid);
    let s2 = stack(&url, "127.0.0.1:0", "127.0.0.1:0").await;
    let kids: Vec<String> = s2.as_state.with_server(|s| {
        s.jwks()
            .keys
            .iter()
            .filter_map(|k| k.common.key_id.clone())
            .collect()
    });
    assert_eq!(kids, [new_kid, old_kid]);
    s2.stop().await;
}
