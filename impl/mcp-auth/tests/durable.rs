//! Durable authorization-server state (issue 13) over loopback HTTP: a stack on a data
//! directory is stopped and a new one started on the same directory (and addresses): the
//! client is still known, tokens issued before still validate (same signing key), the current
//! refresh token still works, a rotated-out one is still refused and revokes the family, and
//! that revocation survives the next restart (also after SIGKILL). A failed commit answers 503;
//! two servers on one database answer a refresh race as a replay; a foreign database or a
//! damaged record stops the start.

use std::path::{Path, PathBuf};

use mcp_auth::client::{McpClient, Options};
use mcp_auth::demo::{Stack, StackOptions};
use serde_json::Value;

#[path = "support/durable_http.rs"]
mod durable_http;

use durable_http::*;

/// `--data DIR` for [`serve_process`].
fn data_args(data: &Path) -> Vec<std::ffi::OsString> {
    vec!["--data".into(), data.as_os_str().to_owned()]
}

fn data_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("mcp-auth-durable-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

/// A stack on `data`, at the given addresses (`127.0.0.1:0` for new ones).
async fn stack(data: &Path, as_addr: &str, rs_addr: &str) -> Stack {
    Keeps::Data(data.to_owned()).stack(as_addr, rs_addr).await
}

// spec: RT-2, PF-23
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_on_the_same_data_directory_forgets_nothing_durable() {
    let data = data_dir("restart");
    restart_forgets_nothing(&Keeps::Data(data.clone())).await;
    let _ = std::fs::remove_dir_all(&data);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_data_directory_a_restart_forgets_the_client() {
    // The control: the same flow in memory loses the client at a restart.
    let s1 = Stack::start(StackOptions::default().with_auto_approve(true))
        .await
        .expect("start");
    let (issuer, mcp_url) = (s1.issuer.clone(), s1.mcp_url.clone());
    let mut c = McpClient::new(Options::headless(mcp_url.clone()), s1.transcript())
        .await
        .expect("client");
    let tokens = c.authorize().await.expect("authorized").expect("token");
    s1.stop().await;
    let s2 = Stack::start(
        StackOptions::default()
            .with_auto_approve(true)
            .with_as_addr(host_port(&issuer))
            .with_rs_addr(host_port(&mcp_url)),
    )
    .await
    .expect("start");
    let rt = tokens.refresh_token.clone().expect("rt");
    let (status, body) = refresh(&issuer, &tokens.client_id, &rt).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (401, Some("invalid_client"))
    );
    s2.stop().await;
}

// spec: PF-23
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_refuses_a_foreign_database_with_exit_1() {
    let data = data_dir("foreign");
    std::fs::create_dir_all(&data).expect("dir");
    std::fs::write(
        data.join(mcp_auth::store::DATABASE_FILE),
        b"SQLite format 3\0 but not really: a damaged or foreign file ............................",
    )
    .expect("write");
    let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_mcp-auth"))
        .args(["serve", "--data"])
        .arg(&data)
        .output()
        .await
        .expect("runs");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("cannot start") && stderr.contains("database"),
        "{stderr}"
    );
    let _ = std::fs::remove_dir_all(&data);
}

// spec: PF-23
/// A commit that fails (here: another writer holds the database's write lock past the busy
/// timeout) answers 503 with Retry-After, and the change is dropped (the core reloads from
/// the store): the client id of that answer was never issued.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_commit_answers_503_with_retry_after_and_changes_nothing() {
    let data = data_dir("busy");
    let s = stack(&data, "127.0.0.1:0", "127.0.0.1:0").await;
    let ok = register(&s.issuer).await;
    assert_eq!(ok.status, 201);
    let blocker = rusqlite::Connection::open(data.join(mcp_auth::store::DATABASE_FILE))
        .expect("second connection");
    blocker
        .execute_batch("BEGIN IMMEDIATE")
        .expect("hold the write lock");
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
    blocker.execute_batch("ROLLBACK").expect("release");
    assert_eq!(s.as_state.with_server(|s| s.clients().count()), 1);
    assert_eq!(register(&s.issuer).await.status, 201);
    assert_eq!(s.as_state.with_server(|s| s.clients().count()), 2);
    s.stop().await;
    let _ = std::fs::remove_dir_all(&data);
}

/// Two servers on one database: a refresh token rotated at one and presented at the other
/// (whose memory is behind) loses the compare-and-set there and is answered as a replay:
/// `invalid_grant`, and the family is revoked in the store, so the first server refuses the
/// newest token too.
// spec: RT-2, PF-23
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refresh_race_between_two_servers_on_one_database_revokes_the_family() {
    let data = data_dir("race");
    refresh_race_revokes_the_family(&Keeps::Data(data.clone())).await;
    let _ = std::fs::remove_dir_all(&data);
}

/// SIGKILL right after the answers: nothing that was answered is lost (the commit came first).
// spec: RT-2, PF-23
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_killed_with_sigkill_restarts_with_everything_it_answered() {
    let data = data_dir("sigkill");
    let (mut child, issuer, mcp_url) =
        serve_process(&data_args(&data), "127.0.0.1:0", "127.0.0.1:0").await;
    let mut c = McpClient::new(
        Options::headless(mcp_url.clone()),
        mcp_auth::transcript::Transcript::shared(),
    )
    .await
    .expect("client");
    let tokens = c.authorize().await.expect("authorized").expect("token");
    let rt1 = tokens.refresh_token.clone().expect("rt");
    let rt2 = refresh_token_of(&refresh(&issuer, &tokens.client_id, &rt1).await);
    child.start_kill().expect("SIGKILL");
    child.wait().await.expect("killed");
    let (mut child, issuer2, _) =
        serve_process(&data_args(&data), &host_port(&issuer), &host_port(&mcp_url)).await;
    assert_eq!(issuer2, issuer);
    assert_eq!(initialize(&mcp_url, &tokens.access_token).await, 200);
    let replay = refresh(&issuer, &tokens.client_id, &rt1).await;
    assert_eq!(replay.1["error"], "invalid_grant", "the rotation was kept");
    let after = refresh(&issuer, &tokens.client_id, &rt2).await;
    assert_eq!(
        after.1["error"], "invalid_grant",
        "the replay revoked the family"
    );
    child.start_kill().expect("SIGKILL");
    let _ = child.wait().await;
    let _ = std::fs::remove_dir_all(&data);
}

/// A record that does not decode stops the start with a clear error (never a half-loaded
/// server).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_damaged_record_stops_the_start_with_a_clear_error() {
    let data = data_dir("damaged");
    stack(&data, "127.0.0.1:0", "127.0.0.1:0")
        .await
        .stop()
        .await;
    let db = rusqlite::Connection::open(data.join(mcp_auth::store::DATABASE_FILE)).expect("db");
    db.execute(
        "INSERT INTO records (kind, id, version, body, seq) VALUES ('grant', '7', 1, '{\"x\":1}', 99)",
        [],
    )
    .expect("insert");
    drop(db);
    let e = Stack::start(StackOptions::default().with_data(Some(data.clone())))
        .await
        .expect_err("a damaged record");
    let text = e.to_string();
    assert!(
        text.contains("damaged") && text.contains("grant \"7\""),
        "{text}"
    );
    let _ = std::fs::remove_dir_all(&data);
}

/// `mcp-auth keys rotate --data DIR`: the next start signs with the new key and still publishes
/// the old one, so a token signed before the rotation stays valid.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_rotate_takes_effect_at_the_next_start_and_keeps_the_old_key_published() {
    let data = data_dir("rotate");
    let s1 = stack(&data, "127.0.0.1:0", "127.0.0.1:0").await;
    let (issuer, mcp_url) = (s1.issuer.clone(), s1.mcp_url.clone());
    let mut c = McpClient::new(Options::headless(mcp_url.clone()), s1.transcript())
        .await
        .expect("client");
    let tokens = c.authorize().await.expect("authorized").expect("token");
    let old_kid = s1.as_state.with_server(|s| s.signer().kid().to_owned());
    s1.stop().await;
    let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_mcp-auth"))
        .args(["keys", "rotate", "--data"])
        .arg(&data)
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
    let s2 = stack(&data, &host_port(&issuer), &host_port(&mcp_url)).await;
    let kids: Vec<String> = s2.as_state.with_server(|s| {
        s.jwks()
            .keys
            .iter()
            .filter_map(|k| k.common.key_id.clone())
            .collect()
    });
    assert_eq!(kids, [new_kid, old_kid]);
    assert_eq!(initialize(&mcp_url, &tokens.access_token).await, 200);
    s2.stop().await;
    let _ = std::fs::remove_dir_all(&data);
}

/// `AsState::rotate_key` on a stack with a data directory keeps the private key in the store:
/// after a restart the rotated key still signs, and the previous one is still published.
// spec: PF-23
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_rotated_while_serving_still_signs_after_a_restart() {
    let data = data_dir("rotate-live");
    let s = stack(&data, "127.0.0.1:0", "127.0.0.1:0").await;
    let old = s.as_state.with_server(|a| a.signer().kid().to_owned());
    let (new, pem) = mcp_auth::keys::generate();
    s.as_state.rotate_key(&pem).expect("rotated");
    s.stop().await;
    let s = stack(&data, "127.0.0.1:0", "127.0.0.1:0").await;
    let (signing, published) = s.as_state.with_server(|a| {
        let kids: Vec<String> = a
            .jwks()
            .keys
            .iter()
            .filter_map(|k| k.common.key_id.clone())
            .collect();
        (a.signer().kid().to_owned(), kids)
    });
    assert_eq!(signing, new.kid());
    assert!(published.contains(&old), "{published:?}");
    s.stop().await;
    let _ = std::fs::remove_dir_all(&data);
}
