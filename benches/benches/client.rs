//! The client state machine, step by step: each input of a whole flow (the 401, the resource
//! and server metadata, the registration response, the redirect, the token response) fed to a
//! clone of the client as it was before that input, then `poll_action`. The clone is made
//! outside the timed region.
//!
//! `cargo bench -p mcp-auth-benches --bench client`

use std::hint::black_box;

use criterion::{BatchSize, Criterion, criterion_group, criterion_main};
use mcp_auth_benches::flow::client_steps;
use mcp_auth_proto::entropy::Sequential;

fn client(c: &mut Criterion) {
    let (steps, now) = client_steps();
    let mut g = c.benchmark_group("client");
    for (i, step) in steps.iter().enumerate() {
        g.bench_function(format!("{i}-{}", step.name), |b| {
            b.iter_batched(
                || (step.before.clone(), Sequential(1 << 40)),
                |(mut client, mut entropy)| {
                    black_box(step.run(&mut client, now, &mut entropy));
                    client
                },
                BatchSize::SmallInput,
            )
        });
    }
    g.finish();
}

criterion_group!(benches, client);
criterion_main!(benches);
