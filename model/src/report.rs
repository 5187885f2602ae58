//! Running the checker, cutting counterexamples at their first violating state, and printing
//! them as numbered traces or Mermaid sequence diagrams.

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::time::{Duration, Instant};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use stateright::{Checker, Expectation, HasDiscoveries, Model, Property};

use crate::{Action, AuthModel, Config, Prm, Target, Whose, World, claims_of};

/// The result of one property.
#[derive(Clone, Debug)]
pub struct PropertyResult {
    /// Its name.
    pub name: &'static str,
    /// `always` or `sometimes`.
    pub expectation: Expectation,
    /// Holds (`always`: no counterexample; `sometimes`: an example exists).
    pub ok: bool,
    /// The counterexample or example, cut at the first state where it is decided.
    pub trace: Option<Vec<(World, Option<Action>)>>,
}

/// The result of a checker run.
#[derive(Clone, Debug)]
pub struct Outcome {
    /// Configuration name.
    pub config: &'static str,
    /// Unique states explored.
    pub unique_states: usize,
    /// States generated.
    pub states: usize,
    /// Deepest path.
    pub max_depth: usize,
    /// Wall time.
    pub elapsed: Duration,
    /// The whole state space was explored (no early stop, no timeout).
    pub complete: bool,
    /// Per property.
    pub results: Vec<PropertyResult>,
}

impl Outcome {
    /// Every property holds and the exploration was complete.
    pub fn all_hold(&self) -> bool {
        self.complete && self.results.iter().all(|r| r.ok)
    }

    /// The result of a property.
    pub fn result(&self, name: &str) -> Option<&PropertyResult> {
        self.results.iter().find(|r| r.name == name)
    }

    /// Throughput: unique states explored per second of wall time.
    pub fn states_per_sec(&self) -> f64 {
        let secs = self.elapsed.as_secs_f64();
        if secs > 0.0 {
            self.unique_states as f64 / secs
        } else {
            0.0
        }
    }
}

/// How to run the checker.
#[derive(Clone, Debug, Default)]
pub struct RunOptions {
    /// Worker threads (0: 1).
    pub threads: usize,
    /// Stop as soon as this property has a discovery (mutation checks); its trace is then a
    /// shortest counterexample (found again with the depth bounded, see [`run`]).
    pub stop_at: Option<&'static str>,
    /// Give up after this long (the outcome is then marked incomplete).
    pub timeout: Option<Duration>,
}

/// Cut a path at the first state where `decided` holds (stateright's BFS may report a longer
/// path than needed: a discovery is overwritten by later ones in the same block).
fn cut(
    model: &AuthModel,
    path: Vec<(World, Option<Action>)>,
    decided: impl Fn(&AuthModel, &World) -> bool,
) -> Vec<(World, Option<Action>)> {
    let mut out = Vec::new();
    for (state, action) in path {
        let stop = decided(model, &state);
        out.push((state, if stop { None } else { action }));
        if stop {
            break;
        }
    }
    out
}

/// Check a configuration with BFS.
pub fn run(cfg: Config, options: &RunOptions) -> Outcome {
    let model = cfg.clone().into_model();
    let properties = model.properties();
    let cfg_for_shortest = cfg.clone();
    let mut builder = cfg.into_model().checker().threads(options.threads.max(1));
    if let Some(p) = options.stop_at {
        builder = builder.finish_when(HasDiscoveries::AnyOf(BTreeSet::from([p])));
    }
    if let Some(t) = options.timeout {
        builder = builder.timeout(t);
    }
    let start = Instant::now();
    let checker = builder.spawn_bfs().join();
    let timed_out = options.timeout.is_some_and(|t| start.elapsed() >= t);
    let trace_of = |p: &Property<AuthModel>, path: stateright::Path<World, Action>| {
        let condition = p.condition;
        match p.expectation {
            Expectation::Always => cut(&model, path.into_vec(), |m, s| !condition(m, s)),
            _ => cut(&model, path.into_vec(), condition),
        }
    };
    // stateright's BFS keeps the *last* violation of an `always` property it meets before it
    // stops (it overwrites a discovery with each later one), not the first: the path can
    // have steps that play no part. When the run stops at one property, find a shortest
    // counterexample by bounding the depth, one step more each time, until one is found: in
    // the first bounded run that finds one, every violation is of the least depth.
    let shortest = options.stop_at.and_then(|name| {
        let property = properties.iter().find(|p| p.name == name)?;
        let found = trace_of(property, checker.discovery(name)?);
        for depth in 2..=found.len() + 1 {
            let bounded = cfg_for_shortest
                .clone()
                .into_model()
                .checker()
                .threads(1)
                .target_max_depth(depth)
                .finish_when(HasDiscoveries::AnyOf(BTreeSet::from([name])))
                .spawn_bfs()
                .join();
            if let Some(path) = bounded.discovery(name) {
                return Some((name, trace_of(property, path)));
            }
        }
        Some((name, found))
    });
    let elapsed = start.elapsed();
    let results = properties
        .iter()
        .map(|p| {
            let trace = match &shortest {
                Some((name, trace)) if *name == p.name => Some(trace.clone()),
                _ => checker.discovery(p.name).map(|path| trace_of(p, path)),
            };
            PropertyResult {
                name: p.name,
                expectation: p.expectation.clone(),
                ok: match p.expectation {
                    Expectation::Sometimes => trace.is_some(),
                    _ => trace.is_none(),
                },
                trace,
            }
        })
        .collect();
    Outcome {
        config: model.cfg.name,
        unique_states: checker.unique_state_count(),
        states: checker.state_count(),
        max_depth: checker.max_depth(),
        elapsed,
        complete: checker.is_done() && !timed_out && options.stop_at.is_none(),
        results,
    }
}

/// A short, stable name for a minted value: `#n` for a [`mcp_auth_proto::Sequential`] value,
/// `AT(sub→aud)` for an access token.
pub fn abbrev(value: &str) -> String {
    if let Some(c) = claims_of(value) {
        let host = c
            .aud
            .trim_start_matches("https://")
            .split('/')
            .next()
            .unwrap_or("")
            .to_owned();
        return format!("AT({}→{host})", c.sub);
    }
    match URL_SAFE_NO_PAD.decode(value) {
        Ok(bytes) if bytes.len() == 32 => {
            let mut n = [0u8; 8];
            n.copy_from_slice(&bytes[..8]);
            format!("#{}", u64::from_be_bytes(n))
        }
        _ => value.to_owned(),
    }
}

fn server_name(target: Target) -> &'static str {
    match target {
        Target::Honest => "honest",
        Target::Evil => "malicious",
    }
}

/// One line per action.
pub fn format_action(action: &Action) -> String {
    match action {
        Action::Connect {
            session,
            target,
            prm,
        } => match target {
            Target::Honest => format!(
                "session {session} connects to the honest MCP server (discovery, registration)"
            ),
            Target::Evil => format!(
                "session {session} connects to the malicious MCP server, whose PRM {}",
                match prm {
                    Prm::Genuine => "names the honest AS",
                    Prm::EvilAs => "names the attacker's AS",
                    Prm::Spoofed => "claims the honest server's resource",
                }
            ),
        },
        Action::Browse { session } => {
            format!(
                "alice opens session {session}'s authorization URL, logs in if asked, approves; redirect to the callback (leaked: A3)"
            )
        }
        Action::Redeem { session } => {
            format!("session {session} sends its token request (then calls its server)")
        }
        Action::Call { session, server } => format!(
            "session {session} calls the {} MCP server",
            if *server == Target::Honest {
                "honest"
            } else {
                "malicious"
            }
        ),
        Action::Refresh { session } => {
            format!("session {session} refreshes (then calls its server)")
        }
        Action::Tick => format!("time passes ({}s)", crate::TICK_SECS),
        Action::AttackerAuthorize { whose } => match whose {
            Whose::Own => {
                "mallory authorizes the attacker's client for the malicious server".into()
            }
            Whose::Victim(n) => format!(
                "mallory authorizes session {n}'s client id (code captured in its own browser)"
            ),
        },
        Action::Lure { session } => format!(
            "attacker lures alice to authorize session {session}'s client id with redirect_uri={}",
            crate::ATTACKER_REDIRECT
        ),
        Action::AttackerRedeem {
            code,
            client_id,
            redirect,
            resource,
        } => format!(
            "attacker redeems code {} as client {} with redirect_uri={redirect} for the {} server",
            abbrev(code),
            abbrev(client_id),
            server_name(*resource)
        ),
        Action::AttackerRefresh { token, resource } => format!(
            "attacker presents refresh token {}{}",
            abbrev(token),
            resource.map_or(String::new(), |r| format!(
                " for the {} server",
                server_name(r)
            ))
        ),
        Action::Steal { session } => {
            format!("the attacker steals session {session}'s refresh token (leaked storage)")
        }
        Action::Forge => "the attacker's AS signs a token claiming the honest issuer, for alice at the honest MCP server, and presents it there".into(),
        Action::Downgrade { session } => format!(
            "attacker lures alice to authorize session {session}'s client id and redirect URI without code_challenge (PKCE downgrade)"
        ),
        Action::Phish => "attacker lures alice to authorize its own client for the malicious MCP server; she approves".into(),
        Action::DocAuthorize => "mallory authorizes the attacker's document client (the honest AS fetches its document)".into(),
        Action::DocLure { lure } => {
            let (client_id, redirect) = lure.request();
            format!("the attacker lures alice to authorize client {client_id} with redirect URI {redirect}")
        }
        Action::ConsentCsrf => "consent CSRF: mallory opens the attacker's client's consent page; alice's browser posts its id and csrf (approve)".into(),
        Action::Inject { session, code } => {
            format!(
                "attacker injects code {} into session {session}'s callback",
                abbrev(code)
            )
        }
    }
}

/// A numbered trace.
pub fn format_trace(trace: &[(World, Option<Action>)]) -> String {
    let mut out = String::new();
    let mut i = 0;
    for (_, action) in trace {
        if let Some(a) = action {
            i += 1;
            let _ = writeln!(out, "  {i:>2}. {}", format_action(a));
        }
    }
    out
}

/// A Mermaid sequence diagram of a trace.
pub fn mermaid(trace: &[(World, Option<Action>)]) -> String {
    let mut out = String::from(
        "sequenceDiagram\n  participant U as alice (browser)\n  participant C as honest client\n  participant AS as honest AS\n  participant RS as honest MCP server\n  participant X as attacker (MCP server, AS, mallory)\n",
    );
    for action in trace.iter().filter_map(|(_, a)| a.as_ref()) {
        let line = match action {
            Action::Connect {
                session,
                target,
                prm,
            } => match target {
                Target::Honest => format!(
                    "  C->>RS: s{session}: MCP request → 401, PRM\n  C->>AS: s{session}: metadata, register"
                ),
                Target::Evil => format!(
                    "  C->>X: s{session}: MCP request → 401, PRM ({prm:?})\n  C->>AS: s{session}: metadata, register (if PRM names it)"
                ),
            },
            Action::Browse { session } => format!(
                "  U->>AS: s{session}: authorize, approve\n  AS-->>C: s{session}: callback (code, state, iss)\n  AS-->>X: code leaks (A3)"
            ),
            Action::Redeem { session } => format!("  C->>AS: s{session}: token request"),
            Action::Call { session, server } => match server {
                Target::Honest => format!("  C->>RS: s{session}: MCP call + token"),
                Target::Evil => format!("  C->>X: s{session}: MCP call + token"),
            },
            Action::Refresh { session } => format!("  C->>AS: s{session}: refresh"),
            Action::Tick => "  Note over AS,RS: time passes".into(),
            Action::AttackerAuthorize { .. } => format!("  X->>AS: {}", format_action(action)),
            Action::Lure { session } => format!(
                "  X->>U: link (s{session}'s client id, attacker redirect)\n  U->>AS: authorize, approve\n  AS-->>X: redirect with code"
            ),
            Action::AttackerRedeem { .. } | Action::AttackerRefresh { .. } => {
                format!("  X->>AS: {}", format_action(action))
            }
            Action::Steal { session } => {
                format!("  C-->>X: s{session}: refresh token leaks")
            }
            Action::Forge => format!("  X->>RS: {}", format_action(action)),
            Action::Downgrade { .. } | Action::Phish => format!(
                "  X->>U: link\n  U->>AS: {}",
                format_action(action)
            ),
            Action::DocAuthorize | Action::DocLure { .. } => {
                format!("  X->>AS: {}", format_action(action))
            }
            Action::ConsentCsrf => "  X->>AS: mallory: authorize (attacker's client), consent page\n  X->>U: page that posts mallory's consent form\n  U->>AS: consent (approve) with alice's cookie".into(),
            Action::Inject { session, code } => {
                format!("  X->>C: s{session}: callback with code {}", abbrev(code))
            }
        };
        out.push_str(&line);
        out.push('\n');
    }
    out
}
