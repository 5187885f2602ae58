//! The model on the small configuration (debug-friendly): every property holds with every
//! defense on, and the state count is pinned. That every defense has teeth is
//! `tests/mutations.rs` (cfg `mcp_auth_mutations`).

use mcp_auth_model::Config;
use mcp_auth_model::report::{self, RunOptions};

/// Unique states of the small configuration, all defenses on. A change means the model or the
/// core changed behaviour: look at why before updating it.
const SMALL_STATES: usize = 3_120;

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
