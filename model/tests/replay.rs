//! Paths as data and the recording of the core's answers (`replay`), without the checker:
//! the honest flow written out by hand.

use mcp_auth_model::replay::{self, Endpoint, ModelPath, Role};
use mcp_auth_model::{Action, Config, Prm, Target, properties as p};

fn honest_flow() -> ModelPath {
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
    assert_eq!(
        observed.initial.len(),
        2,
        "the attacker's two registrations"
    );
    assert!(
        observed
            .initial
            .iter()
            .all(|o| o.from == Role::Attacker && o.answer.status == 201)
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
    let redeem = Action::AttackerRedeem {
        code,
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
