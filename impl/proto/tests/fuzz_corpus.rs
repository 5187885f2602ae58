//! Regression on stable: every checked-in fuzz input (`fuzz/corpus/<target>/*` seeds and
//! `fuzz/regressions/<target>/*` crash reproducers that were fixed) is replayed through the very
//! function the libFuzzer target calls, `mcp_auth_testkit::fuzzing::<target>`. A fixed crash
//! therefore stays fixed without a nightly toolchain.
//!
//! `cargo test -p mcp-auth-proto --test fuzz_corpus -- --ignored write_seed_corpus` rewrites the
//! seeds that are made from real protocol values (tokens, documents, headers, queries).

use std::fs;
use std::path::{Path, PathBuf};

use mcp_auth_proto::http::{HttpRequest, Method};
use mcp_auth_testkit::fuzzing::{TARGETS, target};
use mcp_auth_testkit::harness::{self, Harness, ISSUER, REDIRECT_URI, RESOURCE};

fn fuzz_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz")
}

/// The files of `fuzz/<kind>/<target>/`, sorted (hidden files skipped).
fn inputs(kind: &str, target: &str) -> Vec<PathBuf> {
    let dir = fuzz_dir().join(kind).join(target);
    let Ok(entries) = fs::read_dir(&dir) else {
        return Vec::new();
    };
    let mut files: Vec<PathBuf> = entries
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.is_file())
        .filter(|p| {
            !p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with('.'))
        })
        .collect();
    files.sort();
    files
}

/// Every directory under `fuzz/<kind>/` names a target.
fn dirs_name_targets(kind: &str) {
    let Ok(entries) = fs::read_dir(fuzz_dir().join(kind)) else {
        return;
    };
    for entry in entries.filter_map(Result::ok) {
        let name = entry.file_name().to_string_lossy().into_owned();
        if entry.path().is_dir() {
            assert!(
                target(&name).is_some(),
                "fuzz/{kind}/{name} names no target"
            );
        }
    }
}

// spec: SEC-12
#[test]
fn every_corpus_and_regression_input_replays_cleanly() {
    dirs_name_targets("corpus");
    dirs_name_targets("regressions");
    let mut total = 0;
    for (name, run) in TARGETS {
        let corpus = inputs("corpus", name);
        assert!(!corpus.is_empty(), "fuzz/corpus/{name} has no seeds");
        for path in corpus.iter().chain(inputs("regressions", name).iter()) {
            let data = fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            let outcome = std::panic::catch_unwind(|| run(&data));
            assert!(outcome.is_ok(), "{name}: {} fails", path.display());
            total += 1;
        }
        // Degenerate inputs too.
        for data in [&b""[..], &[0u8; 64][..], &[0xffu8; 64][..]] {
            run(data);
        }
    }
    println!("fuzz corpus: {total} inputs replayed");
}

fn write(target: &str, name: &str, data: &[u8]) {
    let dir = fuzz_dir().join("corpus").join(target);
    fs::create_dir_all(&dir).unwrap();
    fs::write(dir.join(format!("seed-{name}")), data).unwrap();
}

/// Seeds made of real protocol values. Structure-aware targets get their seeds from fuzzing
/// runs instead (their inputs are choices, not protocol text).
#[test]
#[ignore = "writes fuzz/corpus; run by hand"]
fn write_seed_corpus() {
    let mut h = Harness::new();
    let challenge = h.mcp_request(None).unwrap_err().www_authenticate;
    let tokens = h.drive().unwrap();
    let token = tokens.access_token.clone();

    write("token_validate", "harness-token", token.as_bytes());
    write(
        "token_validate",
        "bearer-header",
        format!("Bearer {token}").as_bytes(),
    );
    let mut parts = token.split('.');
    let (header, claims) = (parts.next().unwrap(), parts.next().unwrap());
    write(
        "token_validate",
        "alg-none",
        format!("{header}.{claims}.").as_bytes(),
    );
    write(
        "token_validate",
        "two-parts",
        format!("{header}.{claims}").as_bytes(),
    );

    write(
        "bearer_header",
        "harness",
        format!("Bearer {token}").as_bytes(),
    );
    write(
        "bearer_header",
        "lowercase-padded",
        b"bearer  abc.DEF-_~+/==",
    );
    write("bearer_header", "basic", b"Basic YWxpY2U6c2VjcmV0");
    write("bearer_header", "trailing-space", b"Bearer abc ");

    write("www_authenticate", "rs-challenge", challenge.as_bytes());
    let refused = h
        .mcp_request(Some("Bearer x.y.z"))
        .unwrap_err()
        .www_authenticate;
    write("www_authenticate", "rs-invalid-token", refused.as_bytes());
    write(
        "www_authenticate",
        "two-lines",
        b"Basic realm=\"simple\"\nBearer realm=\"a\\\"b\", scope=\"mcp:tools mcp:admin\", error=insufficient_scope",
    );
    write("www_authenticate", "token68", b"Negotiate abc==, Bearer");

    let get = |h: &mut Harness, url: &str| h.route(&HttpRequest::new(Method::Get, url)).body;
    let prm_url = h.guard.resource_server().metadata_url().to_owned();
    let prm = get(&mut h, &prm_url);
    write("metadata_json", "prm", &prm);
    let asm = get(
        &mut h,
        &format!("{ISSUER}/.well-known/oauth-authorization-server"),
    );
    write("metadata_json", "asm", &asm);
    let jwks = get(&mut h, &format!("{ISSUER}/jwks"));
    write("metadata_json", "jwks", &jwks);
    write(
        "metadata_json",
        "dcr",
        serde_json::json!({"redirect_uris": [REDIRECT_URI], "token_endpoint_auth_method": "none",
            "grant_types": ["authorization_code", "refresh_token"], "response_types": ["code"],
            "client_name": "mcp-auth", "scope": "mcp:tools"})
        .to_string()
        .as_bytes(),
    );
    write(
        "metadata_json",
        "token-response",
        serde_json::to_vec(
            &serde_json::json!({"access_token": token, "token_type": "Bearer",
            "expires_in": 3600, "refresh_token": tokens.refresh_token, "scope": "mcp:tools"}),
        )
        .unwrap()
        .as_slice(),
    );

    write(
        "uri",
        "resource-and-redirect",
        format!("{RESOURCE}\n{REDIRECT_URI}").as_bytes(),
    );
    write(
        "uri",
        "loopback-ports",
        b"http://127.0.0.1/callback\nhttp://127.0.0.1:49152/callback",
    );
    write(
        "uri",
        "mixed-case",
        b"HTTPS://MCP.Example.COM:443/MCP/?q=1\nhttps://as.example/t1/",
    );
    write(
        "uri",
        "ipv6",
        b"http://[::1]:8080/cb?x=%20\nhttps://[2001:db8::1]/",
    );

    // The AS requests of the flow, as text (`METHOD target`, headers, empty line, body).
    for (i, (request, _)) in h.log.iter().enumerate() {
        let Some((origin, path, query)) = harness::split_url(&request.url) else {
            continue;
        };
        if origin != ISSUER {
            continue;
        }
        let mut text = format!("{} {path}", request.method.as_str());
        if let Some(q) = query {
            text.push('?');
            text.push_str(&q);
        }
        for (name, value) in &request.headers {
            text.push_str(&format!("\n{name}: {}", String::from_utf8_lossy(value)));
        }
        let mut data = text.into_bytes();
        data.extend_from_slice(b"\n\n");
        data.extend_from_slice(&request.body);
        write("request_decode", &format!("flow-{i}"), &data);
    }

    // Structure-aware targets: a few pseudo-random choice streams of different lengths.
    let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
    for target in [
        "token_claims",
        "token_differential",
        "request_decode",
        "as_ops",
        "client_responses",
    ] {
        for (i, len) in [64usize, 256, 1024].into_iter().enumerate() {
            let data: Vec<u8> = (0..len)
                .map(|_| {
                    state ^= state << 13;
                    state ^= state >> 7;
                    state ^= state << 17;
                    (state >> 24) as u8
                })
                .collect();
            write(target, &format!("random-{i}"), &data);
        }
    }
}
