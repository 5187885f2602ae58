//! The durable store's contract on SQLite (`tests/support/store_contract.rs`; the same checks
//! run on PostgreSQL in `tests/postgres.rs`).

#[path = "support/store_contract.rs"]
mod store_contract;

use mcp_auth::store::Store;

fn fresh(name: &str) -> (Store, std::path::PathBuf) {
    let dir = std::env::temp_dir().join(format!(
        "mcp-auth-store-contract-{name}-{}",
        std::process::id()
    ));
    let _ = std::fs::remove_dir_all(&dir);
    (Store::open(&dir).expect("open"), dir)
}

#[test]
fn sqlite_commits_are_compare_and_set() {
    let (mut store, dir) = fresh("cas");
    store_contract::compare_and_set(&mut store);
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn sqlite_changes_since_reports_puts_and_removals_in_sequence_order() {
    let (mut store, dir) = fresh("changes");
    store_contract::changes_and_tombstones(&mut store);
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn sqlite_collected_tombstones_make_older_sequences_unknown() {
    let (mut store, dir) = fresh("horizon");
    store_contract::horizon(&mut store);
    let _ = std::fs::remove_dir_all(dir);
}
