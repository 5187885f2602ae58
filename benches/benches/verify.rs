//! Token verification, per algorithm: (a) raw aws-lc-rs signature verification with a
//! pre-parsed key, (b) `jwt::validate` (full validation, no cache), (c) jsonwebtoken's
//! `decode` with the same checks, (d) the resource server's verified-token cache hit.
//!
//! `cargo bench -p mcp-auth-benches --bench verify`; ratios: the `ratios` binary.

use criterion::{Criterion, criterion_group, criterion_main};
use mcp_auth_benches::tokens::Fixture;
use mcp_auth_proto::jwt::Alg;
use std::hint::black_box;

fn verify(c: &mut Criterion) {
    for alg in Alg::ALL {
        let mut f = Fixture::new(alg);
        let mut g = c.benchmark_group(format!("verify/{}", alg.as_str()));
        g.bench_function("a-raw-aws-lc-rs", |b| b.iter(|| black_box(&f).raw()));
        g.bench_function("b-validate", |b| b.iter(|| black_box(&f).validate()));
        g.bench_function("c-jsonwebtoken", |b| {
            b.iter(|| black_box(&f).jsonwebtoken())
        });
        g.bench_function("d-cache-hit", |b| b.iter(|| black_box(&mut f).cached()));
        g.finish();
    }
}

criterion_group!(benches, verify);
criterion_main!(benches);
