//! The core's codecs: form decoding (a token request body), `WWW-Authenticate` parsing (the
//! resource server's 403 `insufficient_scope` challenge, as the client reads it) and encoding,
//! `Authorization: Bearer` parsing, and the metadata documents to and from JSON.
//!
//! `cargo bench -p mcp-auth-benches --bench codecs`

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use mcp_auth_benches::flow::AsFlow;
use mcp_auth_benches::tokens::Fixture;
use mcp_auth_proto::Rejection;
use mcp_auth_proto::challenge::{
    BearerChallenge, parse_bearer_authorization, parse_www_authenticate,
};
use mcp_auth_proto::form::Params;
use mcp_auth_proto::jwt::Alg;
use mcp_auth_proto::metadata::{AuthorizationServerMetadata, ProtectedResourceMetadata};
use mcp_auth_proto::types::ScopeSet;

fn codecs(c: &mut Criterion) {
    let flow = AsFlow::new();
    let f = Fixture::new(Alg::ES256);
    let mut g = c.benchmark_group("codecs");

    let body = flow.exchange.body.clone();
    g.bench_function("form-decode/token-request", |b| {
        b.iter(|| Params::decode(black_box(&body)))
    });

    let needed = ScopeSet::from_tokens(["mcp:tools", "mcp:admin"]);
    let challenge = f.rs.challenge(Rejection::InsufficientScope, Some(&needed));
    g.bench_function("www-authenticate/encode", |b| {
        b.iter(|| {
            f.rs.challenge(Rejection::InsufficientScope, Some(black_box(&needed)))
        })
    });
    let value = challenge.www_authenticate.clone();
    g.bench_function("www-authenticate/parse", |b| {
        b.iter(|| {
            let challenges = parse_www_authenticate([black_box(value.as_str())]).expect("parses");
            BearerChallenge::from_challenges(&challenges).expect("bearer")
        })
    });

    let authorization = f.authorization.clone();
    g.bench_function("authorization/bearer", |b| {
        b.iter(|| parse_bearer_authorization(black_box(authorization.as_bytes())))
    });

    let asm = flow.server.metadata();
    let asm_json = serde_json::to_vec(&asm).expect("JSON");
    g.bench_function("metadata/as-encode", |b| {
        b.iter(|| serde_json::to_vec(black_box(&asm)))
    });
    g.bench_function("metadata/as-decode", |b| {
        b.iter(|| serde_json::from_slice::<AuthorizationServerMetadata>(black_box(&asm_json)))
    });
    let prm = f.rs.metadata();
    let prm_json = serde_json::to_vec(&prm).expect("JSON");
    g.bench_function("metadata/prm-encode", |b| {
        b.iter(|| serde_json::to_vec(black_box(&prm)))
    });
    g.bench_function("metadata/prm-decode", |b| {
        b.iter(|| serde_json::from_slice::<ProtectedResourceMetadata>(black_box(&prm_json)))
    });
    g.finish();
}

criterion_group!(benches, codecs);
criterion_main!(benches);
