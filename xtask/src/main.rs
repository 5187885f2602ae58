//! Project tasks, run with `cargo xtask <task>` (an alias in `.cargo/config.toml`).
//!
//! - `cargo xtask install`: install what the tests need if it is missing: Debian's `chromium`
//!   and `chromium-driver` (the browser tests in `impl/mcp-auth/tests/browser.rs`) and
//!   `postgresql` (the store tests in `impl/mcp-auth/tests/postgres.rs` start a throwaway
//!   cluster with its `initdb` and `postgres`, unless `MCP_AUTH_TEST_DATABASE_URL` names a
//!   server; the Debian package's own cluster is not used).
//! - `cargo xtask test [ARGS...]`: `install`, then `cargo test --workspace ARGS...`, then the
//!   tests that need the model's mutations ([`MUTATION_TESTS`]) in a build with the cfg
//!   `mcp_auth_mutations` and a target directory of its own (`<target>/mutations`, so that the
//!   ordinary one is not rebuilt); exits with the first failing cargo's code. The mutation tests
//!   are compiled only with that cfg: this second run is what keeps them from being skipped.

use std::path::Path;
use std::process::{Command, ExitCode};

/// What the browser tests run, and the Debian packages that provide them.
const NEEDED: &[(&str, &str)] = &[
    ("/usr/bin/chromium", "chromium"),
    ("/usr/bin/chromedriver", "chromium-driver"),
];

const USAGE: &str = "usage: cargo xtask install | cargo xtask test [ARGS for cargo test...]";

/// The test targets with tests compiled only with the cfg `mcp_auth_mutations`, as `cargo test`
/// arguments: each core switch against its check (`impl/proto/tests/mutations.rs`), the
/// model's teeth, the replay of each mutation's counterexample on the real servers, and the
/// probe's teeth (it names each defense turned off, and nothing else).
const MUTATION_TESTS: &[&str] = &[
    "-p",
    "mcp-auth-proto",
    "-p",
    "mcp-auth-model",
    "--test",
    "mutations",
    "-p",
    "mcp-auth",
    "--test",
    "model_replay",
    "--test",
    "probe",
];

fn main() -> ExitCode {
    let mut args = std::env::args().skip(1);
    let task = args.next();
    let rest: Vec<String> = args.collect();
    let result = match task.as_deref() {
        Some("install") if rest.is_empty() => install(),
        Some("test") => install().and_then(|()| test(&rest)),
        Some("-h" | "--help") => {
            println!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        _ => Err(USAGE.to_owned()),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("xtask: {message}");
            ExitCode::FAILURE
        }
    }
}

/// Is PostgreSQL's server installed (Debian's `/usr/lib/postgresql/N/bin/initdb`)?
fn postgresql_installed() -> bool {
    std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .any(|version| version.path().join("bin/initdb").exists())
}

/// Install the missing Debian packages with apt-get (`--no-install-recommends`: without it apt
/// wants over a hundred more packages and upgrades systemd). `apt-get update` only if the first
/// attempt fails; sudo only when not root.
fn install() -> Result<(), String> {
    let mut missing: Vec<&str> = NEEDED
        .iter()
        .filter(|(path, _)| !Path::new(path).exists())
        .map(|(_, package)| *package)
        .collect();
    if !postgresql_installed() {
        missing.push("postgresql");
    }
    if missing.is_empty() {
        return Ok(());
    }
    eprintln!("xtask: installing {}", missing.join(" "));
    let mut install = vec!["install", "-y", "-q", "--no-install-recommends"];
    install.extend(&missing);
    if !apt_get(&install)? {
        eprintln!("xtask: apt-get install failed; running apt-get update and retrying");
        if !apt_get(&["update"])? || !apt_get(&install)? {
            return Err(format!("could not install {}", missing.join(" ")));
        }
    }
    match NEEDED.iter().find(|(path, _)| !Path::new(path).exists()) {
        Some((path, package)) => Err(format!("{package} is installed but {path} is missing")),
        None if !postgresql_installed() => {
            Err("postgresql is installed but /usr/lib/postgresql/*/bin/initdb is missing".into())
        }
        None => Ok(()),
    }
}

/// Run apt-get (through sudo unless root); `Ok(false)` if it ran and failed.
fn apt_get(args: &[&str]) -> Result<bool, String> {
    let mut command = if is_root() {
        Command::new("apt-get")
    } else {
        let mut sudo = Command::new("sudo");
        sudo.arg("apt-get");
        sudo
    };
    command.args(args).env("DEBIAN_FRONTEND", "noninteractive");
    let status = command
        .status()
        .map_err(|e| format!("cannot run apt-get: {e}"))?;
    Ok(status.success())
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|out| out.stdout.trim_ascii() == b"0")
}

/// `cargo test --workspace ARGS...`, then [`MUTATION_TESTS`] with the cfg
/// `mcp_auth_mutations` in `<target>/mutations`; exits with the code of the first that fails.
fn test(args: &[String]) -> Result<(), String> {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut workspace = Command::new(&cargo);
    workspace.args(["test", "--workspace"]).args(args);
    run(workspace)?;
    let rustflags = match std::env::var("RUSTFLAGS") {
        Ok(flags) if !flags.trim().is_empty() => format!("{flags} --cfg mcp_auth_mutations"),
        _ => "--cfg mcp_auth_mutations".to_owned(),
    };
    let target = mutations_target_dir();
    eprintln!(
        "xtask: the mutation tests: RUSTFLAGS=\"{rustflags}\" CARGO_TARGET_DIR={} cargo test {} {}",
        target.display(),
        MUTATION_TESTS.join(" "),
        args.join(" ")
    );
    let mut mutations = Command::new(&cargo);
    mutations
        .arg("test")
        .args(MUTATION_TESTS)
        .args(args)
        .env("RUSTFLAGS", rustflags)
        .env("CARGO_TARGET_DIR", target);
    run(mutations)
}

/// The mutation build's target directory: `mutations` under the ordinary one
/// (`CARGO_TARGET_DIR`, or `target` at the workspace root).
fn mutations_target_dir() -> std::path::PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR").map_or_else(
        || Path::new(env!("CARGO_MANIFEST_DIR")).join("../target"),
        std::path::PathBuf::from,
    );
    target.join("mutations")
}

/// Run a cargo command; exits with its code if it fails.
fn run(mut command: Command) -> Result<(), String> {
    let status = command
        .status()
        .map_err(|e| format!("cannot run cargo: {e}"))?;
    match status.code() {
        Some(0) => Ok(()),
        Some(code) => std::process::exit(code),
        None => Err(format!("cargo test ended by a signal: {status}")),
    }
}
