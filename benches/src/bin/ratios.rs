//! `ratios`: the figures of the Performance table, measured in one process with the
//! candidates interleaved in short blocks (see [`mcp_auth_benches::interleave`]).
//!
//! ```text
//! cargo run --release -p mcp-auth-benches --bin ratios [-- --quick]
//! ```
//!
//! stdout has exactly one line per figure (`ratio validate/EdDSA 1.03`, …); stderr has the
//! details (ns/op medians, quartiles of the per-round ratios, request counts). `--quick` runs a
//! couple of seconds (for CI); the default takes about 16 seconds. Figures and method:
//! `benches/PERFORMANCE.md`.

use std::cell::RefCell;
use std::sync::Arc;
use std::time::{Duration, Instant};

use mcp_auth_benches::flow::AsFlow;
use mcp_auth_benches::interleave::{Candidate, cpu_clock, interleave, median, quantile, timed};
use mcp_auth_benches::load::{CLIENT_CORE, Servers, block, pin_to_core, request_bytes};
use mcp_auth_benches::tokens::Fixture;
use mcp_auth_proto::entropy::Sequential;
use mcp_auth_proto::jwt::Alg;

struct Config {
    rounds: usize,
    block: Duration,
    as_rounds: usize,
    as_block: Duration,
    http_rounds: usize,
    http_block: Duration,
    http_connections: usize,
}

const FULL: Config = Config {
    rounds: 300,
    block: Duration::from_millis(2),
    as_rounds: 100,
    as_block: Duration::from_millis(1),
    http_rounds: 15,
    http_block: Duration::from_millis(300),
    http_connections: 10,
};

const QUICK: Config = Config {
    rounds: 30,
    block: Duration::from_millis(2),
    as_rounds: 10,
    as_block: Duration::from_millis(1),
    http_rounds: 3,
    http_block: Duration::from_millis(100),
    http_connections: 10,
};

/// Most requests in one HTTP block (the time bound usually ends it first).
const HTTP_BLOCK_REQUESTS: u64 = 200_000;

fn summary(ratios: &[f64]) -> String {
    format!(
        "median {:.3} [p25 {:.3}, p75 {:.3}] over {} rounds",
        median(ratios),
        quantile(ratios, 0.25),
        quantile(ratios, 0.75),
        ratios.len()
    )
}

fn main() {
    let quick = std::env::args().any(|a| a == "--quick");
    let cfg = if quick { QUICK } else { FULL };
    // Measurements and the load generator on core 1, the HTTP servers on core 0.
    let pinned = pin_to_core(CLIENT_CORE);
    eprintln!("pinned to core {CLIENT_CORE}: {pinned}");
    let started = Instant::now();
    let mut lines = Vec::new();

    // (a) raw, (b) validate, (c) jsonwebtoken, per algorithm.
    let mut jwt_lines = Vec::new();
    for alg in Alg::ALL {
        let f = Fixture::new(alg);
        let mut candidates: Vec<Candidate<'_>> = vec![
            Box::new(|n| timed(n, || f.raw())),
            Box::new(|n| timed(n, || f.validate())),
            Box::new(|n| timed(n, || f.jsonwebtoken())),
        ];
        let m = interleave(&mut candidates, cfg.rounds, cfg.block);
        let (validate, jwt) = (m.ratios(1, 0), m.ratios(2, 0));
        eprintln!(
            "{} ({} bytes): raw {:.0} ns, validate {:.0} ns, jsonwebtoken {:.0} ns (medians)",
            alg.as_str(),
            f.token.len(),
            median(&m.of(0)),
            median(&m.of(1)),
            median(&m.of(2)),
        );
        eprintln!("  validate/raw     {}", summary(&validate));
        eprintln!("  jsonwebtoken/raw {}", summary(&jwt));
        lines.push(format!(
            "ratio validate/{} {:.3}",
            alg.as_str(),
            median(&validate)
        ));
        jwt_lines.push(format!(
            "ratio jsonwebtoken/{} {:.3}",
            alg.as_str(),
            median(&jwt)
        ));
    }
    lines.append(&mut jwt_lines);
    for l in &lines {
        println!("{l}");
    }

    // (d) cache hit (ES256 token; the hit path does not depend on the algorithm).
    {
        let f = RefCell::new(Fixture::new(Alg::ES256));
        let mut candidates: Vec<Candidate<'_>> =
            vec![Box::new(|n| timed(n, || f.borrow_mut().cached()))];
        let m = interleave(&mut candidates, cfg.rounds / 3, cfg.block);
        let ns = m.of(0);
        eprintln!(
            "cache hit: median {:.0} ns [p25 {:.0}, p75 {:.0}]",
            median(&ns),
            quantile(&ns, 0.25),
            quantile(&ns, 0.75)
        );
        println!("ns cache-hit {:.0}", median(&ns));
    }

    // Code-for-token exchange through the AS's HTTP handler vs raw Ed25519 signing.
    {
        let flow = AsFlow::new();
        let server = RefCell::new(flow.server.clone());
        let entropy = RefCell::new(Sequential(1 << 40));
        let token = {
            let code = flow.new_code(&mut server.borrow_mut(), &mut entropy.borrow_mut());
            let r = flow.handle(
                &mut server.borrow_mut(),
                &mut entropy.borrow_mut(),
                &flow.exchange_request(&code),
            );
            assert_eq!(r.status, 200, "exchange");
            let v: serde_json::Value = serde_json::from_slice(&r.body).expect("JSON");
            v["access_token"].as_str().expect("access_token").to_owned()
        };
        let message = token.as_bytes()[..token.rfind('.').expect("JWS")].to_vec();
        // The harness AS signs with the Ed25519 key of seed [7; 32].
        let key =
            aws_lc_rs::signature::Ed25519KeyPair::from_seed_unchecked(&[7; 32]).expect("seed");
        let mut candidates: Vec<Candidate<'_>> = vec![
            Box::new(|n| timed(n, || key.sign(&message))),
            Box::new(|n| {
                let mut server = server.borrow_mut();
                let mut entropy = entropy.borrow_mut();
                // Every block starts from the recorded server: the AS prunes its tables on
                // every request by scanning them, so the exchange is measured with small
                // tables (at most one block's codes and grants).
                *server = flow.server.clone();
                let requests: Vec<_> = (0..n)
                    .map(|_| flow.exchange_request(&flow.new_code(&mut server, &mut entropy)))
                    .collect();
                let start = cpu_clock();
                let responses: Vec<_> = requests
                    .iter()
                    .map(|r| flow.handle(&mut server, &mut entropy, r))
                    .collect();
                let took = start.elapsed();
                assert!(responses.iter().all(|r| r.status == 200), "exchange");
                took
            }),
        ];
        let m = interleave(&mut candidates, cfg.as_rounds, cfg.as_block);
        // Exchanges per second ÷ signatures per second = sign time ÷ exchange time.
        let ratios = m.ratios(0, 1);
        eprintln!(
            "exchange {:.0} ns, raw Ed25519 sign {:.0} ns (medians); exchange-vs-sign {}",
            median(&m.of(1)),
            median(&m.of(0)),
            summary(&ratios)
        );
        println!("ratio exchange-vs-sign {:.3}", median(&ratios));
    }

    // Loopback HTTP: the endpoint behind the guard with a cached token vs the endpoint alone.
    {
        let f = Fixture::new(Alg::ES256);
        let servers = Servers::start(f.rs.clone());
        let request = Arc::new(request_bytes(&f.authorization));
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("tokio runtime");
        let run = |addr| {
            runtime.block_on(block(
                addr,
                Arc::clone(&request),
                cfg.http_connections,
                HTTP_BLOCK_REQUESTS,
                cfg.http_block,
            ))
        };
        // Warm-up (connections, the cache already holds the token).
        run(servers.plain);
        run(servers.guarded);
        let mut ratios = Vec::new();
        let (mut plain_rates, mut guarded_rates) = (Vec::new(), Vec::new());
        let mut errors = 0;
        for round in 0..cfg.http_rounds {
            let (plain, guarded) = if round % 2 == 0 {
                let p = run(servers.plain);
                (p, run(servers.guarded))
            } else {
                let g = run(servers.guarded);
                (run(servers.plain), g)
            };
            errors += plain.errors + guarded.errors;
            plain_rates.push(plain.rate());
            guarded_rates.push(guarded.rate());
            ratios.push(guarded.rate() / plain.rate());
        }
        drop(servers);
        eprintln!(
            "http ({} connections, {} ms blocks): plain {:.0} req/s, guarded+cached {:.0} req/s \
             (medians), {errors} errors; cached-vs-plain {}",
            cfg.http_connections,
            cfg.http_block.as_millis(),
            median(&plain_rates),
            median(&guarded_rates),
            summary(&ratios)
        );
        assert_eq!(errors, 0, "every request must be answered 200");
        println!("ratio http/cached-vs-plain {:.3}", median(&ratios));
    }

    durable_ratios(&cfg);

    eprintln!("ratios took {:.1} s", started.elapsed().as_secs_f64());
}

/// Registrations and code exchanges per second through the AS driver (loopback HTTP) with each
/// durable store, against the in-memory AS, interleaved in blocks: `ratio durable/sqlite-exchange`
/// and `ratio durable/postgres-exchange` (flows per second with the store ÷ without).
/// PostgreSQL: the server of `MCP_AUTH_TEST_DATABASE_URL`, else a throwaway cluster with fsync
/// on (Debian's `postgresql` must be installed: `cargo xtask install`).
fn durable_ratios(cfg: &Config) {
    use mcp_auth_benches::durable::{Backing, Target};
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime");
    let dir = std::env::temp_dir().join(format!("mcp-auth-ratios-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let (cluster, admin) = match std::env::var(mcp_auth_testkit::postgres::DATABASE_URL_VAR) {
        Ok(url) if !url.trim().is_empty() => (None, url),
        _ => {
            let cluster = mcp_auth_testkit::postgres::Cluster::start_with_fsync(true);
            let admin = cluster.admin_url();
            (Some(cluster), admin)
        }
    };
    let block = cfg.http_block;
    let mut rates: [Vec<f64>; 3] = Default::default();
    let (mut sqlite, mut postgres) = (Vec::new(), Vec::new());
    for round in 0..cfg.http_rounds {
        // Fresh stores every round: the AS holds at most 10 000 clients.
        let url = mcp_auth_testkit::postgres::create_database(&admin, "ratios");
        let backings = [
            Backing::Memory,
            Backing::Sqlite(dir.join(round.to_string())),
            Backing::Postgres(url),
        ];
        runtime.block_on(async {
            let mut targets = Vec::new();
            for b in &backings {
                let t = Target::start(b).await;
                t.block(block / 10).await; // warm-up
                targets.push(t);
            }
            let mut rate = [0.0; 3];
            for i in 0..3 {
                // Rotate the order every round.
                let i = (i + round) % 3;
                let (flows, secs) = targets[i].block(block).await;
                rate[i] = flows as f64 / secs;
                rates[i].push(rate[i]);
            }
            sqlite.push(rate[1] / rate[0]);
            postgres.push(rate[2] / rate[0]);
            for t in targets {
                t.stop().await;
            }
        });
    }
    drop(cluster);
    let _ = std::fs::remove_dir_all(&dir);
    eprintln!(
        "durable (flows/s = registration + authorization + exchange, one client, {} ms blocks): \
         memory {:.0}, sqlite {:.0}, postgres {:.0} (medians); sqlite/memory {}; postgres/memory {}",
        block.as_millis(),
        median(&rates[0]),
        median(&rates[1]),
        median(&rates[2]),
        summary(&sqlite),
        summary(&postgres)
    );
    println!("ratio durable/sqlite-exchange {:.3}", median(&sqlite));
    println!("ratio durable/postgres-exchange {:.3}", median(&postgres));
}
