//! The authorization server, through its HTTP handler (`server::http::handle`, the code the
//! hyper driver runs per request): dynamic client registration, the authorization endpoint
//! (the user approves automatically, so a code is minted), the code-for-token exchange next to
//! raw signing with the same key, and refresh-token rotation.
//!
//! `cargo bench -p mcp-auth-benches --bench server`

use std::cell::RefCell;
use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group, criterion_main};
use mcp_auth_benches::flow::AsFlow;
use mcp_auth_proto::entropy::Sequential;

/// Start over from the recorded server after this many operations (the server's tables are
/// bounded; this keeps them far from their limits).
const RESET_EVERY: u64 = 100;

fn server(c: &mut Criterion) {
    let flow = AsFlow::new();
    let mut g = c.benchmark_group("as");
    let server = RefCell::new(flow.server.clone());
    let entropy = RefCell::new(Sequential(1 << 40));
    let count = RefCell::new(0u64);
    let reset = || {
        let mut n = count.borrow_mut();
        *n += 1;
        if *n >= RESET_EVERY {
            *server.borrow_mut() = flow.server.clone();
            *n = 0;
        }
    };

    g.bench_function("register", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                reset();
                let (mut s, mut e) = (server.borrow_mut(), entropy.borrow_mut());
                let start = Instant::now();
                let r = flow.handle(&mut s, &mut e, black_box(&flow.register));
                total += start.elapsed();
                assert_eq!(r.status, 201);
            }
            total
        })
    });

    g.bench_function("authorize", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                reset();
                let (mut s, mut e) = (server.borrow_mut(), entropy.borrow_mut());
                let start = Instant::now();
                let r = flow.handle(&mut s, &mut e, black_box(&flow.authorize));
                total += start.elapsed();
                assert_eq!(r.status, 303);
            }
            total
        })
    });

    g.bench_function("exchange", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                reset();
                let (mut s, mut e) = (server.borrow_mut(), entropy.borrow_mut());
                let request = flow.exchange_request(&flow.new_code(&mut s, &mut e));
                let start = Instant::now();
                let r = flow.handle(&mut s, &mut e, black_box(&request));
                total += start.elapsed();
                assert_eq!(r.status, 200);
            }
            total
        })
    });

    let key = aws_lc_rs::signature::Ed25519KeyPair::from_seed_unchecked(&[7; 32]).expect("seed");
    let message = {
        let (mut s, mut e) = (server.borrow_mut(), entropy.borrow_mut());
        let request = flow.exchange_request(&flow.new_code(&mut s, &mut e));
        let r = flow.handle(&mut s, &mut e, &request);
        let v: serde_json::Value = serde_json::from_slice(&r.body).expect("JSON");
        let token = v["access_token"].as_str().expect("token").to_owned();
        token.as_bytes()[..token.rfind('.').expect("JWS")].to_vec()
    };
    g.bench_function("raw-ed25519-sign", |b| {
        b.iter(|| key.sign(black_box(&message)))
    });

    g.bench_function("refresh", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                reset();
                let (mut s, mut e) = (server.borrow_mut(), entropy.borrow_mut());
                let refresh = flow.new_refresh_token(&mut s, &mut e);
                let request = flow.refresh_request(&refresh);
                let start = Instant::now();
                let r = flow.handle(&mut s, &mut e, black_box(&request));
                total += start.elapsed();
                assert_eq!(r.status, 200);
            }
            total
        })
    });
    g.finish();
}

criterion_group!(benches, server);
criterion_main!(benches);
