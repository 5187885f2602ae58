//! Paths shared by the model's test files (`replay.rs`, and `mutations.rs` with the cfg
//! `mcp_auth_mutations`).

use mcp_auth_model::replay::{self, ModelPath};
use mcp_auth_model::{Action, Config, Prm, Target, properties as p};

/// The honest flow, written out by hand: connect, browse, redeem.
pub fn honest_flow() -> ModelPath {
    ModelPath {
        property: p::HONEST_FLOW,
        mutation: None,
        actions: vec![
            Action::Connect {
                session: 0,
                target: Target::Honest,
                prm: Prm::Genuine,
            },
            Action::Browse { session: 0 },
            Action::Redeem { session: 0 },
        ],
    }
}

/// Consent CSRF (AZ-29) after alice's browsing in `cfg`: mallory's consent form (prepared in
/// the initial state), posted by alice's browser with alice's session cookie. Returns the
/// exchanges of that step; asserts it is enabled, and that it changes the state exactly when
/// it is `accepted` (refused, it is no transition; accepted, it mints a code).
pub fn consent_csrf(cfg: Config, accepted: bool) -> Vec<String> {
    let mut actions = honest_flow().actions;
    actions.truncate(2);
    actions.push(Action::ConsentCsrf);
    let observed = replay::observe(cfg, &actions);
    let last = observed.steps.last().expect("three steps");
    assert!(last.enabled && last.changed == accepted);
    last.observations.iter().map(|o| o.summary()).collect()
}
