//! `mcp-auth probe` against our own servers over loopback HTTP, for each MCP revision: every
//! check passes (or is SKIP with its reason), with the AS's key and `--unsafe`, and without
//! them. A probe that reported a failure here would be lying about a conforming server.

use mcp_auth::client::Http;
use mcp_auth::demo::{Stack, StackOptions};
use mcp_auth::probe::Consent;
use mcp_auth_proto::Revision;
use mcp_auth_proto::jwt::Signer;
use mcp_auth_proto::probe::{ProbeConfig, Report, Verdict, render_table};
use mcp_auth_proto::uri::HttpPolicy;

/// A stack serving `revision`, signing with a key the test knows.
async fn start(revision: Revision) -> (Stack, Signer) {
    let (signer, _pem) = mcp_auth::keys::generate();
    let options = StackOptions::default()
        .with_revisions([revision])
        .with_signer(Some(signer.clone()));
    (
        Stack::start(options).await.expect("the stack starts"),
        signer,
    )
}

async fn probe(
    stack: &Stack,
    revision: Revision,
    key: Option<&Signer>,
    allow_unsafe: bool,
) -> Report {
    let mut config = ProbeConfig::new(stack.mcp_url.clone(), revision, mcp_auth::net::now());
    config.as_key = key.cloned();
    config.allow_unsafe = allow_unsafe;
    config.nonce = format!("selftest-{}", revision.as_str());
    mcp_auth::probe::run(
        config,
        &Consent::Headless,
        &Http::new(HttpPolicy::AllowLoopbackHttp),
    )
    .await
}

fn not_passed(report: &Report) -> Vec<(&'static str, &'static str)> {
    report
        .findings
        .iter()
        .filter(|f| matches!(f.verdict, Verdict::Fail { .. } | Verdict::Warn { .. }))
        .map(|f| (f.name, f.verdict.as_str()))
        .collect()
}

async fn clean_run(revision: Revision) {
    let (stack, key) = start(revision).await;
    let report = probe(&stack, revision, Some(&key), true).await;
    let table = render_table(&report, false);
    assert!(!report.must_failed(), "{table}");
    assert_eq!(not_passed(&report), vec![], "{table}");
    // The checks that can run here do run: only the other revisions' rules are SKIP.
    let skipped: Vec<&str> = report
        .findings
        .iter()
        .filter(|f| matches!(f.verdict, Verdict::Skip { .. }))
        .map(|f| f.name)
        .collect();
    let expected: &[&str] = if revision.stateless() {
        &["session-needs-token"]
    } else {
        &["prm-offline-access", "dcr-application-type"]
    };
    assert_eq!(skipped, expected, "{table}");
    stack.stop().await;
}

// spec: PRM-8, PRM-3, JWT-9, RS-2, PKCE-9
#[tokio::test]
async fn our_servers_pass_every_check_2025_06_18() {
    clean_run(Revision::V2025_06_18).await;
}

// spec: PRM-8, PRM-3, JWT-9, RS-2, PKCE-9
#[tokio::test]
async fn our_servers_pass_every_check_2025_11_25() {
    clean_run(Revision::V2025_11_25).await;
}

// spec: PRM-8, PRM-3, JWT-9, RS-2, SEC-18
#[tokio::test]
async fn our_servers_pass_every_check_2026_07_28() {
    clean_run(Revision::V2026_07_28).await;
}

/// Without a key and without `--unsafe`, the probe changes nothing at the AS: the claim and
/// flow checks are SKIP, and the client table stays empty.
// spec: PRM-8, DCR-9, PF-25
#[tokio::test]
async fn without_unsafe_nothing_is_registered() {
    let (stack, _) = start(Revision::V2025_06_18).await;
    let report = probe(&stack, Revision::V2025_06_18, None, false).await;
    let table = render_table(&report, false);
    assert_eq!(not_passed(&report), vec![], "{table}");
    assert!(
        report
            .findings
            .iter()
            .filter(|f| f.name.starts_with("dcr-") || f.name.starts_with("refresh-"))
            .all(|f| matches!(f.verdict, Verdict::Skip { .. })),
        "{table}"
    );
    assert_eq!(
        stack.as_state.with_server(|s| s.clients().count()),
        0,
        "{table}"
    );
    stack.stop().await;
}

/// The probe's teeth: our stack with one defense turned off (the model's mutations that are
/// observable from outside). The probe must report exactly the checks of that defense (FAIL
/// for a MUST, WARN for a SHOULD) and nothing else. Compiled only with the cfg
/// `mcp_auth_mutations` (`cargo xtask test` runs them).
#[cfg(mcp_auth_mutations)]
mod mutations {
    use super::*;
    use mcp_auth_proto::mutations::Mutations;

    async fn graded(mutations: Mutations) -> (Vec<(&'static str, &'static str)>, String) {
        let (signer, _pem) = mcp_auth::keys::generate();
        let mut options = StackOptions::default().with_signer(Some(signer.clone()));
        options.mutations = mutations;
        let stack = Stack::start(options).await.expect("the stack starts");
        let report = probe(&stack, Revision::V2025_06_18, Some(&signer), true).await;
        stack.stop().await;
        let mut found = not_passed(&report);
        found.sort_unstable();
        (found, render_table(&report, false))
    }

    async fn caught(mutations: Mutations, expected: &[(&'static str, &'static str)]) {
        let (found, table) = graded(mutations).await;
        let mut expected = expected.to_vec();
        expected.sort_unstable();
        assert_eq!(found, expected, "{mutations:?}\n{table}");
    }

    // spec: PKCE-9
    #[tokio::test]
    async fn skip_pkce() {
        let m = Mutations {
            skip_pkce: true,
            ..Mutations::default()
        };
        caught(m, &[("pkce-wrong-verifier", "FAIL")]).await;
    }

    // spec: AZ-3
    #[tokio::test]
    async fn lax_redirect() {
        let m = Mutations {
            lax_redirect: true,
            ..Mutations::default()
        };
        caught(m, &[("redirect-exact", "FAIL")]).await;
    }

    // spec: TOK-6, TOK-7
    #[tokio::test]
    async fn reusable_codes() {
        let m = Mutations {
            reusable_codes: true,
            ..Mutations::default()
        };
        caught(m, &[("code-single-use", "FAIL")]).await;
    }

    // spec: RT-1
    #[tokio::test]
    async fn skip_refresh_rotation() {
        let m = Mutations {
            skip_refresh_rotation: true,
            ..Mutations::default()
        };
        caught(m, &[("refresh-rotation", "FAIL")]).await;
    }

    // spec: RT-2
    #[tokio::test]
    async fn skip_refresh_revocation() {
        let m = Mutations {
            skip_refresh_revocation: true,
            ..Mutations::default()
        };
        caught(m, &[("refresh-replay-revokes", "WARN")]).await;
    }

    // spec: RES-14
    #[tokio::test]
    async fn skip_resource_binding() {
        let m = Mutations {
            skip_resource_binding: true,
            ..Mutations::default()
        };
        caught(m, &[("resource-binding", "FAIL")]).await;
    }

    // spec: AZ-29
    #[tokio::test]
    async fn skip_session_binding() {
        let m = Mutations {
            skip_session_binding: true,
            ..Mutations::default()
        };
        caught(m, &[("consent-session-binding", "FAIL")]).await;
    }

    // spec: TOK-5
    #[tokio::test]
    async fn skip_client_binding() {
        let m = Mutations {
            skip_client_binding: true,
            ..Mutations::default()
        };
        caught(m, &[("code-bound-client", "FAIL")]).await;
    }

    // spec: TOK-10
    #[tokio::test]
    async fn skip_redirect_binding() {
        let m = Mutations {
            skip_redirect_binding: true,
            ..Mutations::default()
        };
        caught(m, &[("code-bound-redirect", "FAIL")]).await;
    }

    // spec: PKCE-7
    #[tokio::test]
    async fn optional_pkce() {
        let m = Mutations {
            optional_pkce: true,
            ..Mutations::default()
        };
        caught(m, &[("pkce-required", "FAIL")]).await;
    }

    // spec: JWT-7
    #[tokio::test]
    async fn skip_issuer_check() {
        let m = Mutations {
            skip_issuer_check: true,
            ..Mutations::default()
        };
        caught(m, &[("wrong-issuer", "FAIL")]).await;
    }

    // spec: JWT-9
    #[tokio::test]
    async fn skip_signature_check() {
        let m = Mutations {
            skip_signature_check: true,
            ..Mutations::default()
        };
        // alg none, HS256, embedded or remote keys and an unknown kid are refused before any
        // signature is looked at: defenses of their own.
        caught(m, &[("bad-signature", "FAIL")]).await;
    }

    // spec: RS-2, RS-6
    #[tokio::test]
    async fn skip_audience_check() {
        let m = Mutations {
            skip_audience_check: true,
            ..Mutations::default()
        };
        // A token without aud is still refused: the claim is required when the token is
        // read, a defense of its own.
        caught(m, &[("sibling-aud", "FAIL"), ("wrong-aud", "FAIL")]).await;
    }
}

fn accounts() -> mcp_auth_proto::server::Users {
    let hash =
        mcp_auth_proto::server::users::hash_password("probe-password", b"probe-test-salt", 1024, 1)
            .expect("hash");
    mcp_auth_proto::server::Users::new([mcp_auth_proto::server::UserRecord {
        username: "alice".into(),
        display_name: "Alice".into(),
        password_hash: hash,
    }])
    .expect("valid accounts")
}

/// An AS with a login page: with `--user/--password` the probe logs in and every flow check
/// passes; without them it cannot play the user, and says so (SKIP), never FAIL.
// spec: PKCE-6, AZ-30, PF-26
#[tokio::test]
async fn the_login_form_is_filled_or_the_flow_is_skipped() {
    let (signer, _pem) = mcp_auth::keys::generate();
    let options = StackOptions::default()
        .with_signer(Some(signer.clone()))
        .with_users(Some(accounts()));
    let stack = Stack::start(options).await.unwrap();
    let http = Http::new(HttpPolicy::AllowLoopbackHttp);
    let config = |nonce: &str| {
        let mut c = ProbeConfig::new(
            stack.mcp_url.clone(),
            Revision::V2025_06_18,
            mcp_auth::net::now(),
        );
        c.allow_unsafe = true;
        c.only = Some("flow".into());
        c.nonce = nonce.into();
        c
    };
    let login = Consent::Login {
        user: "alice".into(),
        password: "probe-password".into(),
    };
    let report = mcp_auth::probe::run(config("login"), &login, &http).await;
    let table = render_table(&report, false);
    assert!(
        report.findings.iter().all(|f| f.verdict == Verdict::Pass),
        "{table}"
    );
    let report = mcp_auth::probe::run(config("nologin"), &Consent::Headless, &http).await;
    let table = render_table(&report, false);
    assert!(!report.findings.is_empty());
    for f in &report.findings {
        match &f.verdict {
            Verdict::Skip { reason } => assert!(reason.contains("--user"), "{table}"),
            _ => panic!("{} not skipped:\n{table}", f.name),
        }
    }
    stack.stop().await;
}

/// The command: exit status 0 against our MCP server, 1 when a MUST fails (a URL that is no
/// protected MCP endpoint), with a JSON report and a JUnit file that say the same.
// spec: PRM-8, PF-24
#[tokio::test]
async fn the_command_exits_non_zero_iff_a_must_failed() {
    let (stack, _) = start(Revision::V2025_06_18).await;
    let dir = std::env::temp_dir().join(format!("mcp-auth-probe-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let junit = dir.join("probe.xml");
    let run = |url: String, json: bool| {
        let junit = junit.clone();
        async move {
            let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_mcp-auth"));
            command.arg("probe").arg(url);
            if json {
                command.arg("--json");
            } else {
                command.arg("--junit").arg(&junit);
            }
            command.output().await.expect("the binary runs")
        }
    };
    let good = run(stack.mcp_url.clone(), false).await;
    let table = String::from_utf8_lossy(&good.stdout);
    assert_eq!(good.status.code(), Some(0), "{table}");
    let xml = std::fs::read_to_string(&junit).unwrap();
    assert!(xml.contains("failures=\"0\""), "{xml}");
    assert!(xml.contains("<testcase classname=\"PRM-8"), "{xml}");

    let bad = run(format!("{}/not-mcp", stack.issuer), true).await;
    let report: serde_json::Value = serde_json::from_slice(&bad.stdout).expect("JSON");
    assert_eq!(bad.status.code(), Some(1), "{report:#}");
    assert_eq!(report["must_failed"], true);
    let challenge = report["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["name"] == "challenge")
        .unwrap();
    assert_eq!(challenge["verdict"], "FAIL", "{challenge:#}");
    assert!(challenge["fix"].as_str().is_some_and(|f| !f.is_empty()));
    std::fs::remove_dir_all(&dir).ok();
    stack.stop().await;
}
