//! Headless Chromium for tests: Debian's `chromium` driven through `chromedriver` (WebDriver)
//! with fantoccini. [`Browser::start`] runs a private chromedriver on a free loopback port with a
//! fresh profile; dropping the [`Browser`] kills chromedriver and its Chromium (the whole process
//! group) and reaps it. Every step is bounded by [`STEP`].
//!
//! Chromium runs with the flags this closed network needs (no background networking, no
//! component updates, no sync, no QUIC) and `--no-sandbox` (CI runs as root).

use std::fmt::Display;
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use fantoccini::elements::Element;
use fantoccini::{Client, ClientBuilder, Locator};
use mcp_auth::client::Http;
use mcp_auth_proto::http::{HttpRequest, Method};
use mcp_auth_proto::uri::HttpPolicy;
use serde_json::{Value, json};

/// Debian's Chromium (package `chromium`).
pub const CHROMIUM: &str = "/usr/bin/chromium";
/// Debian's ChromeDriver (package `chromium-driver`).
pub const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
/// The longest any one browser step may take.
pub const STEP: Duration = Duration::from_secs(20);

/// Run `step`, bounded by [`STEP`]; the error names `what`.
pub async fn bounded<T, E: Display>(
    what: &str,
    step: impl Future<Output = Result<T, E>>,
) -> Result<T, String> {
    match tokio::time::timeout(STEP, step).await {
        Ok(Ok(value)) => Ok(value),
        Ok(Err(e)) => Err(format!("{what}: {e}")),
        Err(_) => Err(format!("{what}: no answer within {STEP:?}")),
    }
}

/// A chromedriver child in its own process group, its port, and the Chromium profile directory.
struct Driver {
    child: Child,
    port: u16,
    profile: PathBuf,
}

impl Drop for Driver {
    fn drop(&mut self) {
        // Ask chromedriver to quit its sessions (it ends and reaps Chromium) and exit; this also
        // runs when a test panics with the session open. Only if that fails, kill the whole
        // process group (Chromium is in it; its processes then go to init). Always reap.
        let _ = shutdown(self.port);
        let deadline = Instant::now() + Duration::from_secs(10);
        while matches!(self.child.try_wait(), Ok(None)) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = Command::new("kill")
                .args(["-KILL", "--", &format!("-{}", self.child.id())])
                .stderr(Stdio::null())
                .status();
            let _ = self.child.kill();
        }
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.profile);
    }
}

/// `GET /shutdown` to chromedriver, blocking (it runs in `Drop`), bounded by a few seconds.
fn shutdown(port: u16) -> std::io::Result<()> {
    use std::io::{Read as _, Write as _};
    let limit = Some(Duration::from_secs(5));
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
    let mut stream = std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(2))?;
    stream.set_write_timeout(limit)?;
    stream.set_read_timeout(limit)?;
    write!(
        stream,
        "GET /shutdown HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n"
    )?;
    let mut answer = Vec::new();
    stream.read_to_end(&mut answer).map(|_| ())
}

/// A headless Chromium session.
pub struct Browser {
    client: Client,
    webdriver: String,
    console: Mutex<Vec<String>>,
    // Last field: dropped after the client.
    _driver: Driver,
}

fn free_port() -> Result<u16, String> {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .map_err(|e| format!("no free loopback port: {e}"))
}

/// A fresh, empty directory under the system temp dir.
pub fn temp_dir(prefix: &str) -> PathBuf {
    static COUNTER: AtomicUsize = AtomicUsize::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default()
        .subsec_nanos();
    let dir = std::env::temp_dir().join(format!(
        "{prefix}-{}-{}-{nanos}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    ));
    std::fs::create_dir_all(&dir).expect("the temp dir is writable");
    dir
}

impl Browser {
    /// Start chromedriver and open a headless Chromium session. Fails (never skips) when
    /// Chromium or chromedriver is missing, naming the command that installs them.
    pub async fn start() -> Result<Self, String> {
        Self::start_with(&[]).await
    }

    /// [`Browser::start`] with more Chromium arguments.
    pub async fn start_with(extra_args: &[&str]) -> Result<Self, String> {
        for (path, package) in [(CHROMIUM, "chromium"), (CHROMEDRIVER, "chromium-driver")] {
            if !Path::new(path).exists() {
                return Err(format!(
                    "{path} not found (Debian package {package}): run `cargo xtask install` \
                     (or `cargo xtask test`, which installs it before the tests)"
                ));
            }
        }
        let port = free_port()?;
        let profile = temp_dir("mcp-auth-chromium");
        let child = Command::new(CHROMEDRIVER)
            .arg(format!("--port={port}"))
            .arg("--allowed-ips=127.0.0.1")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .process_group(0)
            .spawn()
            .map_err(|e| format!("cannot start {CHROMEDRIVER}: {e}"))?;
        let mut driver = Driver {
            child,
            port,
            profile,
        };
        let webdriver = format!("http://127.0.0.1:{port}");
        wait_ready(&mut driver, &webdriver).await?;

        let mut args = vec![
            "--headless=new".to_owned(),
            "--no-sandbox".to_owned(),
            "--disable-gpu".to_owned(),
            "--disable-quic".to_owned(),
            "--no-first-run".to_owned(),
            "--disable-background-networking".to_owned(),
            "--disable-component-update".to_owned(),
            "--disable-sync".to_owned(),
            "--window-size=800,700".to_owned(),
            format!("--user-data-dir={}", driver.profile.display()),
        ];
        args.extend(extra_args.iter().map(|a| (*a).to_owned()));
        let mut capabilities = serde_json::Map::new();
        capabilities.insert(
            "goog:chromeOptions".into(),
            json!({ "binary": CHROMIUM, "args": args }),
        );
        // The console (CSP violations among it), read through chromedriver's log endpoint.
        capabilities.insert("goog:loggingPrefs".into(), json!({ "browser": "ALL" }));
        let millis = u64::try_from(STEP.as_millis()).unwrap_or(u64::MAX);
        capabilities.insert(
            "timeouts".into(),
            json!({ "pageLoad": millis, "script": millis, "implicit": 0 }),
        );
        let mut builder = ClientBuilder::rustls().map_err(|e| format!("rustls: {e}"))?;
        builder.capabilities(capabilities);
        let client = bounded("open a Chromium session", builder.connect(&webdriver)).await?;
        Ok(Self {
            client,
            webdriver,
            console: Mutex::new(Vec::new()),
            _driver: driver,
        })
    }

    /// Load `url` and wait for its load event.
    pub async fn goto(&self, url: &str) -> Result<(), String> {
        bounded(&format!("open {url}"), self.client.goto(url)).await
    }

    /// The first element matching `css` (no waiting).
    pub async fn find(&self, css: &str) -> Result<Element, String> {
        bounded(&format!("find {css}"), self.client.find(Locator::Css(css))).await
    }

    /// Every element matching `css` now (possibly none).
    pub async fn find_all(&self, css: &str) -> Result<Vec<Element>, String> {
        bounded(
            &format!("find all {css}"),
            self.client.find_all(Locator::Css(css)),
        )
        .await
    }

    /// Wait (at most [`STEP`]) until an element matches `css`.
    pub async fn wait_for(&self, css: &str) -> Result<Element, String> {
        let deadline = Instant::now() + STEP;
        loop {
            if let Some(element) = self.find_all(css).await?.into_iter().next() {
                return Ok(element);
            }
            if Instant::now() > deadline {
                return Err(format!("no element {css} within {STEP:?}"));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Click the first element matching `css`.
    pub async fn click(&self, css: &str) -> Result<(), String> {
        let element = self.find(css).await?;
        bounded(&format!("click {css}"), element.click()).await
    }

    /// Type `text` into the first element matching `css`.
    pub async fn type_into(&self, css: &str, text: &str) -> Result<(), String> {
        let element = self.find(css).await?;
        bounded(&format!("type into {css}"), element.send_keys(text)).await
    }

    /// The URL of the top-level page.
    pub async fn current_url(&self) -> Result<String, String> {
        bounded("read the current URL", self.client.current_url())
            .await
            .map(|u| u.to_string())
    }

    /// Run a synchronous script in the current frame and return its value.
    pub async fn execute(&self, script: &str) -> Result<Value, String> {
        bounded(
            &format!("run script {script}"),
            self.client.execute(script, Vec::new()),
        )
        .await
    }

    /// Switch to the `index`th frame of the current document.
    pub async fn enter_frame(&self, index: u16) -> Result<(), String> {
        bounded(
            &format!("enter frame {index}"),
            self.client.enter_frame(index),
        )
        .await
    }

    /// Switch back to the top-level document.
    pub async fn enter_top(&self) -> Result<(), String> {
        bounded(
            "switch to the top document",
            self.client.enter_parent_frame(),
        )
        .await
    }

    /// Save a PNG screenshot of the viewport to `path` (creating its directory).
    pub async fn screenshot(&self, path: &Path) -> Result<(), String> {
        let png = bounded("take a screenshot", self.client.screenshot()).await?;
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(|e| format!("create {}: {e}", dir.display()))?;
        }
        std::fs::write(path, png).map_err(|e| format!("write {}: {e}", path.display()))
    }

    /// Every browser console message so far (`LEVEL message`), CSP violations included. Read
    /// through chromedriver's log endpoint, which is not W3C WebDriver: an error is returned as
    /// one line rather than failing the caller.
    pub async fn console(&self) -> Vec<String> {
        let fresh = match self.fetch_console().await {
            Ok(lines) => lines,
            Err(e) => vec![format!("(console logs unavailable: {e})")],
        };
        let mut all = self.console.lock().unwrap_or_else(|e| e.into_inner());
        all.extend(fresh);
        all.clone()
    }

    async fn fetch_console(&self) -> Result<Vec<String>, String> {
        let session = bounded("read the session id", self.client.session_id())
            .await?
            .ok_or("no session")?;
        let request = HttpRequest::new(
            Method::Post,
            format!("{}/session/{session}/se/log", self.webdriver),
        )
        .header("content-type", "application/json")
        .body(r#"{"type":"browser"}"#);
        let response = bounded(
            "read the console",
            Http::new(HttpPolicy::AllowLoopbackHttp).send(&request),
        )
        .await?;
        let body: Value = serde_json::from_slice(&response.body).map_err(|e| e.to_string())?;
        let entries = body["value"]
            .as_array()
            .ok_or_else(|| format!("{} {}", response.status, body))?;
        Ok(entries
            .iter()
            .map(|e| {
                format!(
                    "{} {}",
                    e["level"].as_str().unwrap_or("?"),
                    e["message"].as_str().unwrap_or("?")
                )
            })
            .collect())
    }

    /// A failure report: `what`, then the page's URL, the console and a screenshot's path.
    pub async fn report(&self, what: &str) -> String {
        let url = self
            .current_url()
            .await
            .unwrap_or_else(|e| format!("(unknown: {e})"));
        let shot = temp_dir("mcp-auth-browser-failure").join("page.png");
        let shot = match self.screenshot(&shot).await {
            Ok(()) => shot.display().to_string(),
            Err(e) => format!("(none: {e})"),
        };
        let console = self.console().await;
        format!(
            "{what}\n  browser at: {url}\n  screenshot: {shot}\n  console ({} lines):\n    {}",
            console.len(),
            console.join("\n    ")
        )
    }

    /// End the session (Chromium exits), then chromedriver is killed and reaped.
    pub async fn close(self) {
        let _ = tokio::time::timeout(STEP, self.client.clone().close()).await;
    }
}

/// Wait until chromedriver answers `/status` with `ready: true`.
async fn wait_ready(driver: &mut Driver, webdriver: &str) -> Result<(), String> {
    let http = Http::new(HttpPolicy::AllowLoopbackHttp);
    let deadline = Instant::now() + STEP;
    let mut last = String::new();
    while Instant::now() < deadline {
        if let Ok(Some(status)) = driver.child.try_wait() {
            return Err(format!("{CHROMEDRIVER} exited at start: {status}"));
        }
        match http
            .send(&HttpRequest::new(
                Method::Get,
                format!("{webdriver}/status"),
            ))
            .await
        {
            Ok(r) if r.status == 200 => {
                let body: Value = serde_json::from_slice(&r.body).unwrap_or_default();
                if body["value"]["ready"] == json!(true) {
                    return Ok(());
                }
                last = String::from_utf8_lossy(&r.body).into_owned();
            }
            Ok(r) => last = format!("status {}", r.status),
            Err(e) => last = e.to_string(),
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Err(format!("{CHROMEDRIVER} not ready within {STEP:?}: {last}"))
}
