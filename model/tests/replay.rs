//! Paths as data and the recording of the core's answers (`replay`), without the checker:
//! the honest flow written out by hand.

mod common;

use common::{consent_csrf, honest_flow};
use mcp_auth_model::replay::{self, Endpoint};
use mcp_auth_model::{Action, Config, Target};

// spec: PRM-8, DCR-1, AZ-11, TOK-1, RS-1
#[test]
fn the_honest_flow_is_recorded_exchange_by_exchange() {
    let path = honest_flow();
    assert!(path.decides(&path.actions));
    assert!(
        !path.decides(&path.actions[..2]),
        "two steps are not enough"
    );
    assert_eq!(path.minimal().actions, path.actions);
    let observed = replay::observe(Config::small(), &path.actions);
    let initial: Vec<String> = observed.initial.iter().map(|o| o.summary()).collect();
    assert_eq!(
        initial,
        [
            "Attacker → HonestAs: POST /register → 201 +client_id",
            "Attacker → HonestAs: POST /register → 201 +client_id",
            "Browser(\"mallory\") → HonestAs: GET /authorize → 200",
            "Browser(\"mallory\") → HonestAs: POST /login → 303 redirect to Other",
            "Browser(\"mallory\") → HonestAs: GET /consent → 200",
        ],
        "the attacker's two registrations, and mallory's consent page kept for a consent CSRF"
    );
    let lines: Vec<Vec<String>> = observed
        .steps
        .iter()
        .map(|s| s.observations.iter().map(|o| o.summary()).collect())
        .collect();
    assert_eq!(
        lines,
        [
            vec![
                "Session(0) → HonestRs: POST /mcp → 401",
                "Session(0) → HonestRs: GET /.well-known/oauth-protected-resource/mcp → 200",
                "Session(0) → HonestAs: GET /.well-known/oauth-authorization-server → 200",
                "Session(0) → HonestAs: POST /register → 201 +client_id",
            ],
            vec![
                "Browser(\"alice\") → HonestAs: GET /authorize → 200",
                "Browser(\"alice\") → HonestAs: POST /login → 303 redirect to Other",
                "Browser(\"alice\") → HonestAs: GET /consent → 200",
                "Browser(\"alice\") → HonestAs: POST /consent → 303 redirect to Session(0) +code",
                "Browser(\"alice\") → Client(0): GET /callback → 0",
            ],
            vec![
                "Session(0) → HonestAs: POST /token → 200 +access_token +refresh_token",
                "Session(0) → HonestRs: POST /mcp → 200",
            ],
        ]
    );
    let phases: Vec<_> = observed.steps.iter().map(|s| s.sessions.clone()).collect();
    assert_eq!(
        phases,
        [
            vec![Some("browser".to_owned())],
            vec![Some(format!(
                "send POST /token to {:?}",
                Endpoint::HonestAs
            ))],
            vec![Some("authorized".to_owned())],
        ]
    );
    assert!(observed.steps.iter().all(|s| s.enabled && s.changed));
    assert!(observed.steps.iter().all(|s| s.violated.is_empty()));
}

/// A code redeemed twice: the second answer is the core's refusal, recorded as such, and the
/// refused step is no transition.
// spec: TOK-6, TOK-7
#[test]
fn a_refused_step_is_recorded_and_changes_nothing() {
    let mut actions = honest_flow().actions;
    actions.truncate(2);
    let browsed = replay::observe(Config::small(), &actions);
    let code = browsed.steps[1]
        .observations
        .iter()
        .find_map(|o| o.minted.code.clone())
        .expect("a code");
    let client_id = browsed.steps[0]
        .observations
        .iter()
        .find_map(|o| o.minted.client_id.clone())
        .expect("session 0 registered");
    let redeem = Action::AttackerRedeem {
        code,
        client_id,
        redirect: mcp_auth_model::redirect_uri(0),
        resource: Target::Honest,
    };
    actions.push(redeem);
    let observed = replay::observe(Config::small(), &actions);
    let last = observed.steps.last().expect("three steps");
    assert!(!last.changed, "a refused redemption changes nothing");
    assert_eq!(
        last.observations
            .iter()
            .map(|o| o.summary())
            .collect::<Vec<_>>(),
        ["Attacker → HonestAs: POST /token → 400 invalid_grant (PKCE verification failed)"]
    );
}

/// Consent CSRF (AZ-29): mallory's consent form (prepared in the initial state), posted by
/// alice's browser with alice's session cookie, is refused and changes nothing. (With the
/// binding off it mints a code for alice: `tests/mutations.rs`, cfg `mcp_auth_mutations`.)
// spec: AZ-29, AZ-30
#[test]
fn consent_csrf_is_refused() {
    let defended = consent_csrf(Config::small(), false);
    assert_eq!(
        defended,
        [
            "Browser(\"alice\") → HonestAs: POST /consent → 400 invalid_request (This authorization \
          was started in another browser session; start again from the application)"
        ]
    );
}
