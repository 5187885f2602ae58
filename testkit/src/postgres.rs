//! A PostgreSQL server for tests and benchmarks, and a fresh database on it per test.
//!
//! [`database_url`] gives the URL of a new, empty database (so tests run in parallel) on:
//! - the server of `MCP_AUTH_TEST_DATABASE_URL` (a `postgres://` URL of a role that may
//!   `CREATE DATABASE`), if that is set;
//! - else a throwaway cluster started once per test process ([`Cluster::start`]): `initdb` in a
//!   temporary directory (owned by the `postgres` user when running as root), the server on a
//!   free loopback port, stopped and removed when the process exits.
//!
//! Without PostgreSQL installed it panics with "PostgreSQL is not installed: `cargo xtask test`
//! installs it": the tests are never skipped silently.
//!
//! The synchronous `postgres` client used here runs on a thread of its own for each call, so
//! these functions may be called from async tests.

use std::io::{BufRead as _, BufReader, Write as _};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

/// The environment variable naming an existing server to use instead of a throwaway one.
pub const DATABASE_URL_VAR: &str = "MCP_AUTH_TEST_DATABASE_URL";

/// The message when PostgreSQL is missing.
pub const NOT_INSTALLED: &str = "PostgreSQL is not installed: `cargo xtask test` installs it";

/// Run `f` on a fresh thread (the synchronous client must not run on an async worker).
fn on_thread<T: Send>(f: impl FnOnce() -> T + Send) -> T {
    std::thread::scope(|s| {
        s.spawn(f)
            .join()
            .unwrap_or_else(|e| std::panic::resume_unwind(e))
    })
}

/// `url` with its database name replaced by `database`.
pub fn with_database(url: &str, database: &str) -> String {
    match url.split_once("://") {
        Some((scheme, rest)) => {
            let end = rest.find(['/', '?']).unwrap_or(rest.len());
            let (authority, tail) = rest.split_at(end);
            let query = tail.split_once('?').map(|(_, q)| q);
            match query {
                Some(q) => format!("{scheme}://{authority}/{database}?{q}"),
                None => format!("{scheme}://{authority}/{database}"),
            }
        }
        None => format!("{url} dbname={database}"),
    }
}

/// The PostgreSQL programs' directory: Debian's newest `/usr/lib/postgresql/N/bin`, else the
/// one of `initdb` on `PATH`.
fn bin_dir() -> Option<PathBuf> {
    let mut debian: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let version = e.file_name().to_str()?.parse().ok()?;
            let bin = e.path().join("bin");
            bin.join("initdb").exists().then_some((version, bin))
        })
        .collect();
    debian.sort();
    debian.pop().map(|(_, bin)| bin).or_else(|| {
        std::env::var_os("PATH").and_then(|path| {
            std::env::split_paths(&path)
                .find(|d| d.join("initdb").exists() && d.join("postgres").exists())
        })
    })
}

fn output_of(program: &str, args: &[&str]) -> Option<String> {
    Command::new(program)
        .args(args)
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
}

/// A free loopback port (bound and released; the server binds it right after).
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}

/// The watchdog: starts the server, stops (`stop`) and starts (`start`) it on request, and
/// stops it and removes its directory when its standard input closes (the test process
/// exited, however it exited).
const WATCHDOG: &str = r#"
dir=$1; port=$2; bin=$3; runas=$4; fsync=$5
up() {
  $runas "$bin" -D "$dir" -p "$port" -k "$dir" -h 127.0.0.1 -c max_connections=300 \
    -c fsync="$fsync" -c full_page_writes="$fsync" >>"$dir.log" 2>&1 &
  pid=$!
}
down() { kill -INT "$pid" 2>/dev/null; wait "$pid" 2>/dev/null; }
up
while read -r cmd; do
  case $cmd in
    stop) down; echo stopped ;;
    start) up; echo started ;;
  esac
done
down
rm -rf "$dir" "$dir.log"
"#;

/// A throwaway PostgreSQL cluster on a loopback port.
#[derive(Debug)]
pub struct Cluster {
    dir: PathBuf,
    port: u16,
    control: Mutex<(Option<ChildStdin>, BufReader<ChildStdout>)>,
    watchdog: Mutex<Child>,
}

impl Cluster {
    /// `initdb` a new cluster in a temporary directory and start its server (fsync off: a
    /// test server); panics with [`NOT_INSTALLED`] without PostgreSQL.
    pub fn start() -> Self {
        Self::start_with_fsync(false)
    }

    /// [`Cluster::start`], with `fsync` on (commits wait for the disk, as in production: for
    /// benchmarks) or off.
    pub fn start_with_fsync(fsync: bool) -> Self {
        let bin = bin_dir().unwrap_or_else(|| panic!("{NOT_INSTALLED}"));
        static COUNT: AtomicU32 = AtomicU32::new(0);
        let root = output_of("id", &["-u"]).as_deref() == Some("0");
        // As root the server runs as `postgres`, which must reach its directory: /tmp, not a
        // private TMPDIR.
        let base = if root && Path::new("/tmp").is_dir() {
            PathBuf::from("/tmp")
        } else {
            std::env::temp_dir()
        };
        let dir = base.join(format!(
            "mcp-auth-pg-{}-{}",
            std::process::id(),
            COUNT.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("the cluster's directory");
        let runas = if root {
            let uid = output_of("id", &["-u", "postgres"])
                .unwrap_or_else(|| panic!("{NOT_INSTALLED} (no postgres user)"));
            let gid = output_of("id", &["-g", "postgres"]).unwrap_or_else(|| uid.clone());
            let (u, g) = (uid.parse().expect("a uid"), gid.parse().expect("a gid"));
            std::os::unix::fs::chown(&dir, Some(u), Some(g)).expect("chown to postgres");
            format!("setpriv --reuid={uid} --regid={gid} --clear-groups")
        } else {
            String::new()
        };
        let mut initdb = Command::new(if root { "setpriv" } else { "sh" });
        if root {
            initdb.args(runas.split_whitespace().skip(1));
            initdb.arg(bin.join("initdb"));
        } else {
            initdb
                .arg("-c")
                .arg("exec \"$0\" \"$@\"")
                .arg(bin.join("initdb"));
        }
        let out = initdb
            .current_dir("/")
            .args(["-D"])
            .arg(&dir)
            .args([
                "-U",
                "postgres",
                "-A",
                "trust",
                "-E",
                "UTF8",
                "--no-locale",
                "--no-sync",
            ])
            .output()
            .expect("initdb runs");
        assert!(
            out.status.success(),
            "initdb failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let port = free_port();
        let mut watchdog = Command::new("sh")
            .current_dir("/")
            .arg("-c")
            .arg(WATCHDOG)
            .arg("sh")
            .arg(&dir)
            .arg(port.to_string())
            .arg(bin.join("postgres"))
            .arg(&runas)
            .arg(if fsync { "on" } else { "off" })
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("the server starts");
        let stdin = watchdog.stdin.take();
        let stdout = BufReader::new(watchdog.stdout.take().expect("stdout"));
        let cluster = Self {
            dir,
            port,
            control: Mutex::new((stdin, stdout)),
            watchdog: Mutex::new(watchdog),
        };
        cluster.wait_ready();
        cluster
    }

    /// The server's directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The server's port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The URL of the `postgres` database as the `postgres` superuser.
    pub fn admin_url(&self) -> String {
        format!(
            "postgres://postgres@127.0.0.1:{}/postgres?sslmode=disable",
            self.port
        )
    }

    fn wait_ready(&self) {
        let url = self.admin_url();
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let ok = on_thread(|| {
                postgres::Client::connect(&url, postgres::NoTls)
                    .and_then(|mut c| c.simple_query("SELECT 1").map(|_| ()))
            });
            match ok {
                Ok(()) => return,
                Err(e) if Instant::now() > deadline => {
                    let log =
                        std::fs::read_to_string(self.dir.with_extension("log")).unwrap_or_default();
                    panic!("PostgreSQL did not start: {e}\n{log}");
                }
                Err(_) => std::thread::sleep(Duration::from_millis(100)),
            }
        }
    }

    fn order(&self, command: &str, answer: &str) {
        let mut control = self.control.lock().unwrap_or_else(|e| e.into_inner());
        let (stdin, stdout) = &mut *control;
        let stdin = stdin.as_mut().expect("the watchdog runs");
        writeln!(stdin, "{command}").expect("the watchdog listens");
        stdin.flush().expect("flush");
        let mut line = String::new();
        stdout.read_line(&mut line).expect("the watchdog answers");
        assert_eq!(line.trim(), answer);
    }

    /// Stop the server (fast shutdown: clients are disconnected); returns once it stopped.
    pub fn stop(&self) {
        self.order("stop", "stopped");
    }

    /// Start the server again (same port and data); returns once it accepts connections.
    pub fn resume(&self) {
        self.order("start", "started");
        self.wait_ready();
    }

    /// A new empty database named after `name` (made unique); its URL.
    pub fn database(&self, name: &str) -> String {
        create_database(&self.admin_url(), name)
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        // Closing the watchdog's input stops the server and removes its directory.
        let mut control = self.control.lock().unwrap_or_else(|e| e.into_inner());
        control.0 = None;
        let _ = self
            .watchdog
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .wait();
    }
}

/// Create a database named after `name` (lower-case letters, digits and `_`, made unique) on
/// the server of `admin_url`; its URL.
pub fn create_database(admin_url: &str, name: &str) -> String {
    static COUNT: AtomicU32 = AtomicU32::new(0);
    let clean: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '_'
            }
        })
        .take(30)
        .collect();
    let database = format!(
        "mcp_auth_{clean}_{}_{}",
        std::process::id(),
        COUNT.fetch_add(1, Ordering::Relaxed)
    );
    on_thread(|| {
        let mut admin = postgres::Client::connect(admin_url, postgres::NoTls)
            .unwrap_or_else(|e| panic!("cannot reach the test database server: {e}"));
        admin
            .batch_execute(&format!("CREATE DATABASE \"{database}\""))
            .unwrap_or_else(|e| panic!("CREATE DATABASE {database}: {e}"));
    });
    with_database(admin_url, &database)
}

/// The admin URL of the tests' server: `MCP_AUTH_TEST_DATABASE_URL`, else a throwaway cluster
/// started at the first call of this process.
pub fn server_url() -> String {
    /// The server given by the environment, or the process's own cluster.
    enum Server {
        Given(String),
        Own(Box<Cluster>),
    }
    static SHARED: OnceLock<Server> = OnceLock::new();
    match SHARED.get_or_init(|| match std::env::var(DATABASE_URL_VAR) {
        Ok(url) if !url.trim().is_empty() => Server::Given(url),
        _ => Server::Own(Box::new(Cluster::start())),
    }) {
        Server::Given(url) => url.clone(),
        Server::Own(cluster) => cluster.admin_url(),
    }
}

/// The URL of a new, empty database named after `name` on the tests' server ([`server_url`]).
pub fn database_url(name: &str) -> String {
    create_database(&server_url(), name)
}
