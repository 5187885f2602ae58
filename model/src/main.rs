//! `mcp-auth-model check [--config small|standard|timed|cimd] [--threads N] [--timeout SECS]
//!  [--mutation NAME|all] [--mermaid]` and `mcp-auth-model explore [ADDR]`.
//!
//! `--mutation` needs a build with the cfg `mcp_auth_mutations`
//! ([`mcp_auth_model::MUTATIONS_BUILD_ENV`]); without it, it fails and names the command.

use std::process::ExitCode;
use std::time::Duration;

#[cfg(mcp_auth_mutations)]
use mcp_auth_model::mutation::{self, MutationCase, Teeth};
use mcp_auth_model::report::{self, Outcome, RunOptions};
use mcp_auth_model::{Config, properties};
use stateright::{Expectation, Model};

/// The checker allocates and frees millions of small values (every state is a clone of the
/// last, and most generated states are duplicates that are dropped at once): mimalloc does that
/// far faster than the system allocator. The states are the same either way.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

struct Args {
    command: String,
    config: Config,
    threads: usize,
    timeout: Option<Duration>,
    mutation: Option<String>,
    mermaid: bool,
    addr: String,
}

fn parse() -> Result<Args, String> {
    let mut it = std::env::args().skip(1);
    let command = it.next().unwrap_or_else(|| "check".into());
    let mut args = Args {
        command,
        config: Config::small(),
        threads: std::thread::available_parallelism().map_or(1, |n| n.get()),
        timeout: None,
        mutation: None,
        mermaid: false,
        addr: "127.0.0.1:3000".into(),
    };
    while let Some(a) = it.next() {
        match a.as_str() {
            "--config" => {
                let name = it.next().ok_or("--config needs a name")?;
                args.config = Config::named(&name).ok_or(format!(
                    "unknown config {name}; known: {}",
                    Config::NAMES.join(", ")
                ))?;
            }
            "--threads" => {
                args.threads = it
                    .next()
                    .and_then(|n| n.parse().ok())
                    .ok_or("--threads needs a number")?;
            }
            "--timeout" => {
                let secs: u64 = it
                    .next()
                    .and_then(|n| n.parse().ok())
                    .ok_or("--timeout needs seconds")?;
                args.timeout = Some(Duration::from_secs(secs));
            }
            "--mutation" => args.mutation = Some(it.next().ok_or("--mutation needs a name")?),
            "--mermaid" => args.mermaid = true,
            other if args.command == "explore" && !other.starts_with('-') => {
                args.addr = other.to_owned();
            }
            other => return Err(format!("unknown argument {other}")),
        }
    }
    Ok(args)
}

fn print_trace(trace: &[(mcp_auth_model::World, Option<mcp_auth_model::Action>)], mermaid: bool) {
    if mermaid {
        println!("```mermaid\n{}```", report::mermaid(trace));
    } else {
        print!("{}", report::format_trace(trace));
    }
}

fn check(args: &Args) -> bool {
    let options = RunOptions {
        threads: args.threads,
        stop_at: None,
        timeout: args.timeout,
    };
    let outcome = report::run(args.config.clone(), &options);
    print_outcome(&outcome, args.mermaid);
    outcome.all_hold()
}

fn print_outcome(o: &Outcome, mermaid: bool) {
    for r in &o.results {
        let verdict = match (&r.expectation, r.ok) {
            (Expectation::Sometimes, true) => "example found",
            (Expectation::Sometimes, false) => "NO EXAMPLE (vacuous?)",
            (_, true) => "holds",
            (_, false) => "COUNTEREXAMPLE",
        };
        println!("{verdict:>22}  {}", r.name);
        if !r.ok
            && let Some(t) = &r.trace
        {
            print_trace(t, mermaid);
        }
    }
    println!(
        "config {}: {} unique states ({} generated), max depth {}, {:.2?}, {:.0} states/s{}",
        o.config,
        o.unique_states,
        o.states,
        o.max_depth,
        o.elapsed,
        o.states_per_sec(),
        if o.complete {
            ""
        } else {
            " — INCOMPLETE (timeout): nothing is proved"
        }
    );
}

#[cfg(mcp_auth_mutations)]
fn check_mutation(args: &Args, case: &MutationCase) -> bool {
    let cfg = case.configuration(&args.config);
    let config = cfg.name;
    if case.expect == Teeth::Redundant {
        let options = RunOptions {
            threads: 1,
            stop_at: None,
            timeout: args.timeout,
        };
        let o = report::run(cfg, &options);
        let (failed, live) = case.redundancy(&o);
        let ok = o.complete && failed.is_empty() && live;
        println!(
            "{:<18} {} → redundant on {config}: {} ({} states, {:.2?})",
            case.name,
            case.defense,
            if ok {
                format!("every goal holds, and \"{}\" shows it live", case.property)
            } else {
                format!(
                    "NOT AS DOCUMENTED: failing goals {failed:?}, live {live}, complete {}",
                    o.complete
                )
            },
            o.unique_states,
            o.elapsed
        );
        println!("{:<18} note: {}", "", case.note);
        return ok;
    }
    let options = RunOptions {
        threads: 1,
        stop_at: Some(case.property),
        timeout: args.timeout,
    };
    let o = report::run(cfg, &options);
    let trace = o.result(case.property).and_then(|r| r.trace.clone());
    let steps = trace
        .as_ref()
        .map(|t| t.iter().filter(|(_, a)| a.is_some()).count());
    match steps {
        Some(n) => println!(
            "{:<18} {} → {} → counterexample of {n} steps on {config} ({} states, {:.2?})",
            case.name, case.defense, case.property, o.unique_states, o.elapsed
        ),
        None => println!(
            "{:<18} {} → {} → NO COUNTEREXAMPLE on {config} ({} states, {:.2?})",
            case.name, case.defense, case.property, o.unique_states, o.elapsed
        ),
    }
    if !case.note.is_empty() {
        println!("{:<18} note: {}", "", case.note);
    }
    if let Some(t) = &trace {
        print_trace(t, args.mermaid);
    }
    steps.is_some()
}

fn main() -> ExitCode {
    let args = match parse() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(2);
        }
    };
    let ok = match args.command.as_str() {
        "check" => match args.mutation.as_deref() {
            None => check(&args),
            #[cfg(not(mcp_auth_mutations))]
            Some(_) => {
                let rest: Vec<String> = std::env::args().skip(1).collect();
                eprintln!(
                    "--mutation: this build has no mutations (the core's defense switches exist \
                     only with the cfg `mcp_auth_mutations`); run\n  {} cargo run --release -p \
                     mcp-auth-model -- {}",
                    mcp_auth_model::MUTATIONS_BUILD_ENV,
                    rest.join(" ")
                );
                return ExitCode::from(2);
            }
            #[cfg(mcp_auth_mutations)]
            Some("all") => {
                let mut all = true;
                for case in mutation::cases() {
                    all &= check_mutation(&args, &case);
                }
                all
            }
            #[cfg(mcp_auth_mutations)]
            Some(name) => match mutation::case(name) {
                Some(case) => check_mutation(&args, &case),
                None => {
                    let names: Vec<_> = mutation::cases().iter().map(|c| c.name).collect();
                    eprintln!("unknown mutation {name}; known: {}", names.join(", "));
                    return ExitCode::from(2);
                }
            },
        },
        "explore" => {
            println!(
                "serving the stateright explorer for config {} on http://{}",
                args.config.name, args.addr
            );
            let _ = properties::SAFETY;
            args.config
                .clone()
                .into_model()
                .checker()
                .serve(args.addr.as_str());
            true
        }
        other => {
            eprintln!("unknown command {other}; use check or explore");
            return ExitCode::from(2);
        }
    };
    if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
