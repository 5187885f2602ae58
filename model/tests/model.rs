//! The model on every configuration: every property holds with every defense on, and each
//! configuration's state count is pinned. That every defense has teeth is
//! `tests/mutations.rs` (cfg `mcp_auth_mutations`). `standard` and `timed` explore ~55,000
//! states each: the workspace's `Cargo.toml` optimizes the model, the checker and the core in
//! test builds so that they take seconds, not minutes.

use mcp_auth_model::Config;
use mcp_auth_model::properties as p;
use mcp_auth_model::report::{self, RunOptions};

/// Unique states of the small configuration, all defenses on. A change means the model or the
/// core changed behaviour: look at why before updating it.
const SMALL_STATES: usize = 3_980;

/// Unique states of the CIMD configuration, all defenses on (as [`SMALL_STATES`]).
const CIMD_STATES: usize = 2_764;

/// Unique states of the standard configuration (two honest sessions), all defenses on (as
/// [`SMALL_STATES`]).
const STANDARD_STATES: usize = 68_563;

/// Unique states of the timed configuration (one clock tick), all defenses on (as
/// [`SMALL_STATES`]).
const TIMED_STATES: usize = 72_700;

/// Unique states of the thief configuration (as [`SMALL_STATES`]).
const THIEF_STATES: usize = 2_216;

/// Unique states of the phish configuration (as [`SMALL_STATES`]).
const PHISH_STATES: usize = 2_530;

fn full() -> RunOptions {
    RunOptions {
        threads: 1,
        ..RunOptions::default()
    }
}

// Each property cites its own IDs (model/src/properties.rs); this test runs them all.
#[test]
fn every_property_holds_with_every_defense() {
    let o = report::run(Config::small(), &full());
    for r in &o.results {
        assert!(
            r.ok,
            "{} failed: {:?}",
            r.name,
            r.trace.as_ref().map(|t| report::format_trace(t))
        );
    }
    assert!(o.complete, "exploration incomplete");
    assert_eq!(o.unique_states, SMALL_STATES, "state count changed");
}

/// Client ID Metadata Documents (MCP 2025-11-25, 2026-07-28): the honest client identifies
/// itself with its document URL; the attacker hosts documents (its own redirect URI, the
/// honest client's loopback one, an impostor claiming the honest client's `client_id`) and
/// lures alice with them and with the honest client's URL and its own redirect URI. Every
/// property holds, and every non-vacuity example (the attacker's document fetched, its client
/// given a code, the lure reaching the AS, the honest flow by document: the client prefers its
/// document URL to registration where the AS advertises documents) is found.
// spec: CIMD-1, CIMD-3, CIMD-8, AZ-3, TOK-5
#[test]
fn every_property_holds_with_client_id_metadata_documents() {
    let o = report::run(Config::cimd(), &full());
    for r in &o.results {
        assert!(
            r.ok,
            "{} failed: {:?}",
            r.name,
            r.trace.as_ref().map(|t| report::format_trace(t))
        );
    }
    for example in [
        p::CIMD_HONEST_FLOW,
        p::CIMD_FETCHED,
        p::CIMD_ATTACKER_CODE,
        p::CIMD_LURE,
    ] {
        assert!(
            o.result(example).is_some_and(|r| r.ok),
            "{example} not checked"
        );
    }
    assert!(o.complete, "exploration incomplete");
    assert_eq!(o.unique_states, CIMD_STATES, "state count changed");
}

/// `small` with the honest client speaking 2026-07-28: every property holds, with as many
/// states as at 2025-06-18 (the revision changes no reachable answer of this attacker's).
// spec: CLI-8, AZ-20
#[test]
fn every_property_holds_with_a_2026_07_28_client() {
    let o = report::run(Config::small_2026(), &full());
    for r in &o.results {
        assert!(r.ok, "{} failed", r.name);
    }
    assert!(o.complete, "exploration incomplete");
    assert_eq!(o.unique_states, SMALL_STATES, "state count changed");
}

/// Every property holds on `config`, the exploration is complete, and it has `states` states.
fn holds_with(config: mcp_auth_model::Config, states: usize) {
    let name = config.name;
    let o = report::run(config, &full());
    for r in &o.results {
        assert!(
            r.ok,
            "{name}: {} failed: {:?}",
            r.name,
            r.trace.as_ref().map(|t| report::format_trace(t))
        );
    }
    assert!(o.complete, "{name}: exploration incomplete");
    assert_eq!(o.unique_states, states, "{name}: state count changed");
}

/// Two honest sessions (the second one to the honest server only): concurrent flows do not
/// interfere, every property holds, and the state count is pinned.
#[test]
fn every_property_holds_with_two_sessions() {
    holds_with(Config::standard(), STANDARD_STATES);
}

/// One clock tick (codes, consents and access tokens expire): every property holds, and the
/// state count is pinned.
#[test]
fn every_property_holds_with_a_clock_tick() {
    holds_with(Config::timed(), TIMED_STATES);
}

/// The attacker steals a session's refresh token: every goal holds (the theft is the
/// attacker's until its reuse shows, REUSE), the stolen token is used and its reuse seen.
// spec: RT-1, RT-2
#[test]
fn every_property_holds_with_a_refresh_token_thief() {
    holds_with(Config::thief(), THIEF_STATES);
}

/// The attacker lures alice into approving its own client for its own server: every goal
/// holds (that token stays limited to that server), and the phishing is exercised.
// spec: RES-14, TOK-5
#[test]
fn every_property_holds_with_a_phished_user() {
    holds_with(Config::phish(), PHISH_STATES);
}
