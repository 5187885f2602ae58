//! The model on the small configuration (debug-friendly): every property holds with every
//! defense on, the state count is pinned, and every defense has teeth.

use mcp_auth_model::Config;
use mcp_auth_model::mutation::{self, MutationCase};
use mcp_auth_model::properties as p;
use mcp_auth_model::report::{self, RunOptions};
use mcp_auth_proto::mutations::Mutations;

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

fn teeth(case: &MutationCase) {
    let options = RunOptions {
        threads: 1,
        stop_at: Some(case.property),
        timeout: None,
    };
    let o = report::run(Config::small().with_mutations(case.mutations), &options);
    let r = o.result(case.property).expect("property exists");
    assert!(
        !r.ok,
        "mutation {} found no counterexample to {}",
        case.name, case.property
    );
    let trace = r.trace.as_ref().expect("trace");
    assert!(trace.len() >= 2, "a counterexample has at least one step");
}

macro_rules! teeth_tests {
    ($($test:ident => $name:literal,)*) => {$(
        #[test]
        fn $test() {
            teeth(&mutation::case($name).expect("known mutation"));
        }
    )*};
}

teeth_tests! {
    pkce_has_teeth => "pkce",
    state_has_teeth_with_pkce_off => "state",
    iss_has_teeth => "iss",
    exact_redirect_has_teeth => "redirect",
    audience_check_has_teeth => "audience",
    single_use_codes_have_teeth => "single-use",
    refresh_rotation_has_teeth => "rotation",
    refresh_revocation_has_teeth => "revocation",
    resource_binding_has_teeth => "resource",
    prm_resource_check_has_teeth => "prm",
    token_target_check_has_teeth => "token-target",
    session_binding_has_teeth => "session",
}

/// `state` alone has no teeth: with PKCE enforced by the AS, an injected code (bound to the
/// attacker's challenge) fails at the token endpoint (RFC 9700 §4.7.1). Documented redundancy.
// spec: AZ-12
#[test]
fn state_alone_is_redundant_given_pkce() {
    let m = Mutations {
        skip_state_check: true,
        ..Mutations::default()
    };
    let o = report::run(Config::small().with_mutations(m), &full());
    assert!(o.complete);
    assert!(o.result(p::SESSION).is_some_and(|r| r.ok));
    assert!(o.result(p::AUTHZ).is_some_and(|r| r.ok));
}

/// Every mutation case names a property of the model.
#[test]
fn mutation_table_is_consistent() {
    for case in mutation::cases() {
        assert!(p::SAFETY.contains(&case.property), "{}", case.name);
    }
}
