//! Every defense has teeth: with it turned off, the model checker finds a counterexample to the
//! property it protects, and the consent-CSRF step of the replay is accepted.
//!
//! Only in a build with the cfg `mcp_auth_mutations` (the core's defense switches exist only
//! there): `cargo xtask test` runs it as
//! `RUSTFLAGS="--cfg mcp_auth_mutations" CARGO_TARGET_DIR=<target>/mutations cargo test -p
//! mcp-auth-model --test mutations` after the ordinary tests, so it is never skipped silently.
#![cfg(mcp_auth_mutations)]

mod common;

use common::consent_csrf;
use mcp_auth_model::mutation::{self, MutationCase, Teeth};
use mcp_auth_model::properties as p;
use mcp_auth_model::replay;
use mcp_auth_model::report::{self, RunOptions};
use mcp_auth_model::{Action, Config, DocLure};
use mcp_auth_proto::mutations::Mutations;

fn teeth(case: &MutationCase) {
    let options = RunOptions {
        threads: 1,
        stop_at: Some(case.property),
        timeout: None,
    };
    assert_eq!(case.expect, Teeth::Counterexample, "{}", case.name);
    let o = report::run(case.configuration(&Config::small()), &options);
    let r = o.result(case.property).expect("property exists");
    assert!(
        !r.ok,
        "mutation {} found no counterexample to {}",
        case.name, case.property
    );
    let trace = r.trace.as_ref().expect("trace");
    assert!(trace.len() >= 2, "a counterexample has at least one step");
    assert!(
        p::is_goal(case.property),
        "{}: teeth are goal-level",
        case.name
    );
}

/// A redundant defense: on the whole configuration with it off, every goal holds and the
/// mutation shows itself live.
fn redundant(name: &str) {
    let case = mutation::case(name).expect("known mutation");
    assert_eq!(case.expect, Teeth::Redundant);
    let o = report::run(
        case.configuration(&Config::small()),
        &RunOptions {
            threads: 1,
            ..RunOptions::default()
        },
    );
    assert!(o.complete);
    let (failed, live) = case.redundancy(&o);
    assert!(failed.is_empty(), "{name}: goals failed: {failed:?}");
    assert!(live, "{name}: the mutation is live ({})", case.property);
}

/// The client's PRM `resource` check (DISC-4) is covered by RES-3: the client asks for its own
/// server whatever PRM says, so a spoofed PRM breaks only the diagnostic DISCOVERY.
// spec: DISC-4, RES-3
#[test]
fn prm_resource_check_is_redundant_given_the_clients_own_resource() {
    redundant("prm");
}

/// Single-use codes alone (TOK-6): with PKCE enforced, no one but alice's client can present
/// her code, so every goal holds; the `single-use` case turns PKCE off too.
// spec: TOK-6, PKCE-9
#[test]
fn single_use_alone_is_redundant_given_pkce() {
    let m = Mutations {
        reusable_codes: true,
        ..Mutations::default()
    };
    let o = report::run(
        Config::small().with_mutations(m),
        &RunOptions {
            threads: 1,
            ..RunOptions::default()
        },
    );
    assert!(o.complete);
    for goal in p::GOALS {
        assert!(o.result(goal).is_some_and(|r| r.ok), "{goal} failed");
    }
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
    document_redirect_check_has_teeth => "document-redirect",
    exact_redirect_has_teeth => "redirect",
    audience_check_has_teeth => "audience",
    single_use_codes_have_teeth => "single-use",
    refresh_rotation_has_teeth => "rotation",
    refresh_revocation_has_teeth => "revocation",
    resource_binding_has_teeth => "resource",
    token_target_check_has_teeth => "token-target",
    session_binding_has_teeth => "session",
    required_pkce_has_teeth => "pkce-required",
    signature_check_has_teeth => "signature",
    refresh_resource_binding_has_teeth => "refresh-resource",
}

/// The token endpoint's client binding (TOK-5) is covered by PKCE for public clients: with it
/// off the attacker redeems its own codes as other clients, and gains nothing of alice's.
// spec: TOK-5, PKCE-9
#[test]
fn client_binding_is_redundant_given_pkce() {
    redundant("client-binding");
}

/// The token endpoint's redirect URI binding (TOK-10) is covered by PKCE and the exact match
/// at the authorization endpoint.
// spec: TOK-10, AZ-3
#[test]
fn redirect_binding_is_redundant_given_pkce() {
    redundant("redirect-binding");
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
    let options = RunOptions {
        threads: 1,
        ..RunOptions::default()
    };
    let o = report::run(Config::small().with_mutations(m), &options);
    assert!(o.complete);
    for goal in p::GOALS {
        assert!(o.result(goal).is_some_and(|r| r.ok), "{goal} failed");
    }
}

/// Every mutation case names a property of the model: a safety property it must break, or
/// (a redundant defense) the example that shows the mutation is live; and a configuration.
#[test]
fn mutation_table_is_consistent() {
    for case in mutation::cases() {
        match case.expect {
            Teeth::Counterexample => {
                assert!(p::is_goal(case.property), "{}", case.name);
            }
            Teeth::Redundant => {
                assert!(!p::is_goal(case.property), "{}", case.name);
                assert!(!case.note.is_empty(), "{}: the argument", case.name);
            }
        }
        assert!(Config::named(case.config).is_some(), "{}", case.name);
    }
}

/// The document `client_id` check (CIMD-3) is covered by the cache's keying: with it off, the
/// impostor document (at an attacker URL, claiming the honest client's `client_id`) is
/// accepted and gets a code, and still every safety property holds on the whole CIMD
/// configuration (the argument: the case's note). Fails if the core ever keys or names a
/// client by the document's `client_id`.
// spec: CIMD-3
#[test]
fn document_client_id_check_is_redundant_given_url_keyed_documents() {
    redundant("document-client-id");
}

/// Consent CSRF (AZ-29) with the binding off: mallory's consent form posted by alice's browser
/// mints a code for alice that lands at the attacker's redirect URI (defended: `tests/replay.rs`).
// spec: AZ-29, AZ-30
#[test]
fn consent_csrf_has_teeth() {
    let case = mutation::case("session").expect("known mutation");
    let mutated = consent_csrf(Config::small().with_mutations(case.mutations), true);
    assert_eq!(
        mutated,
        ["Browser(\"alice\") → HonestAs: POST /consent → 303 redirect to Attacker +code"]
    );
}

/// The shortest theft with the document redirect check off (CIMD-3): one lure, with the
/// honest client's document URL and the attacker's redirect URI, sends alice's code for the
/// honest client to the attacker; with the check on, the same lure steals nothing.
// spec: CIMD-3, AZ-3
#[test]
fn honest_client_lure_steals_a_code_only_without_the_document_redirect_check() {
    let case = mutation::case("document-redirect").expect("known mutation");
    let lure = [Action::DocLure {
        lure: DocLure::HonestClient,
    }];
    let mutated = replay::observe(case.configuration(&Config::small()), &lure);
    let step = mutated.steps.last().expect("one step");
    assert!(step.enabled && step.changed);
    assert!(
        step.violated.contains(&p::CIMD_THEFT),
        "{:?}",
        step.violated
    );
    let defended = replay::observe(Config::cimd(), &lure);
    let step = defended.steps.last().expect("one step");
    assert!(
        step.enabled && step.violated.is_empty(),
        "{:?}",
        step.violated
    );
}

/// The mix-up across revisions: with the client speaking 2026-07-28 (credentials bound to
/// their issuer, CLI-8/9), the `iss` check (AZ-20) is still what stops it: turned off, the
/// attacker gets alice's code with her client's verifier (THEFT), as at 2025-06-18. The
/// binding cannot help: the client registered at the attacker's AS and sends it the code
/// believing it is that flow's issuer.
// spec: AZ-20, CLI-8
#[test]
fn iss_has_teeth_in_2026_07_28() {
    let case = mutation::case("iss").expect("known mutation");
    let options = RunOptions {
        threads: 1,
        stop_at: Some(case.property),
        timeout: None,
    };
    let o = report::run(case.configuration(&Config::small_2026()), &options);
    assert_eq!(o.config, "small-2026");
    assert!(
        o.result(p::THEFT)
            .is_some_and(|r| !r.ok && r.trace.is_some())
    );
}
