//! The driver of `mcp-auth probe`: sends the requests of the core's probe
//! ([`mcp_auth_proto::probe::Probe`]), each bounded in time and size by [`Http::send`] and all
//! bounded in count by the core, plays the user on authorization requests, and prints the
//! report. Every check and every verdict is the core's.

use std::collections::BTreeMap;
use std::time::Duration;

use mcp_auth_proto::http::{HttpRequest, HttpResponse, Method};
use mcp_auth_proto::probe::{Probe, ProbeConfig, Report, Send};

use crate::client::{ConsentForm, Http};

/// How long one request may take, answer included (the transport's own bound is longer).
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// How long a whole run may take: after it, every request is answered "no answer" at once
/// (its check is SKIP) and the report is printed.
pub const RUN_TIMEOUT: Duration = Duration::from_secs(600);

/// The most requests one authorization (login, consent, redirects) may take.
pub const USER_AGENT_STEPS_MAX: usize = 8;

/// How the user is played on authorization requests.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Consent {
    /// Fetch the authorization URL, press Approve on a consent form of the AS (auto-approving
    /// servers such as `mcp-auth serve` without `--users` need nothing).
    Headless,
    /// As [`Consent::Headless`], filling a login form with these credentials first.
    Login {
        /// The user name.
        user: String,
        /// The password.
        password: String,
    },
    /// Print the URL (and open the system browser when `open`); the person pastes the URL of
    /// the page the browser was redirected to (which fails to load: nothing listens there).
    Manual {
        /// Open the system browser too.
        open: bool,
    },
}

/// Run the probe to its end.
pub async fn run(config: ProbeConfig, consent: &Consent, http: &Http) -> Report {
    let mut probe = Probe::new(config);
    let deadline = tokio::time::Instant::now() + RUN_TIMEOUT;
    while let Some(send) = probe.next_request() {
        if tokio::time::Instant::now() >= deadline {
            probe.answer(Err(format!(
                "the probe's time budget ({}s) is spent",
                RUN_TIMEOUT.as_secs()
            )));
            continue;
        }
        let answer = match &send {
            Send::Http(request) => exchange(http, request).await,
            Send::UserAgent(request) => play_user(http, request, consent).await,
        };
        probe.answer(answer);
    }
    probe.finish()
}

async fn exchange(http: &Http, request: &HttpRequest) -> Result<HttpResponse, String> {
    match tokio::time::timeout(REQUEST_TIMEOUT, http.send(request)).await {
        Ok(Ok(answer)) => Ok(answer),
        Ok(Err(e)) => Err(e.0),
        Err(_) => Err(format!("no answer within {}s", REQUEST_TIMEOUT.as_secs())),
    }
}

fn origin(url: &str) -> &str {
    let after = url.find("://").map_or(0, |i| i + 3);
    url[after..].find('/').map_or(url, |i| &url[..after + i])
}

/// A relative `Location` or form action, resolved against the page's URL.
fn resolve(page: &str, target: &str) -> String {
    if target.starts_with("http://") || target.starts_with("https://") {
        return target.to_owned();
    }
    let base = page.split(['?', '#']).next().unwrap_or(page);
    if target.starts_with('/') {
        return format!("{}{target}", origin(base));
    }
    let dir = base
        .rfind('/')
        .filter(|&i| i >= origin(base).len())
        .unwrap_or(base.len());
    format!("{}/{target}", &base[..dir])
}

/// Play the user on the authorization URL: follow redirects on the AS's origin, log in and
/// approve; return the answer that redirects elsewhere (to the client), or the last page.
async fn play_user(
    http: &Http,
    request: &HttpRequest,
    consent: &Consent,
) -> Result<HttpResponse, String> {
    if let Consent::Manual { open } = consent {
        return manual(&request.url, *open).await;
    }
    let as_origin = origin(&request.url).to_owned();
    let mut cookies: BTreeMap<String, String> = BTreeMap::new();
    let mut next = request.clone();
    let mut logged_in = false;
    for _ in 0..USER_AGENT_STEPS_MAX {
        if !cookies.is_empty() {
            let jar: Vec<String> = cookies.iter().map(|(k, v)| format!("{k}={v}")).collect();
            next.headers.retain(|(n, _)| n != "cookie");
            next = next.header("cookie", jar.join("; "));
        }
        let page = exchange(http, &next).await?;
        for set in page.header_values("set-cookie") {
            if let Some((name, value)) = set.split(';').next().and_then(|c| c.split_once('=')) {
                cookies.insert(name.trim().to_owned(), value.trim().to_owned());
            }
        }
        if (300..400).contains(&page.status) {
            let Some(location) = page.header_value("location") else {
                return Ok(page);
            };
            let target = resolve(&next.url, location);
            if origin(&target) != as_origin {
                let mut page = page;
                page.headers.retain(|(n, _)| n != "location");
                return Ok(page.header("location", target));
            }
            next = HttpRequest::new(Method::Get, target).header("accept", "text/html");
            continue;
        }
        if page.status != 200 {
            return Ok(page);
        }
        let html = String::from_utf8_lossy(&page.body).into_owned();
        let Some(form) = ConsentForm::parse(&html) else {
            return Ok(page);
        };
        let mut body = form_urlencoded::Serializer::new(String::new());
        body.append_pair("id", &form.id)
            .append_pair("csrf", &form.csrf);
        if html.contains("name=\"decision\"") {
            body.append_pair("decision", "approve");
        } else if html.contains("name=\"password\"") {
            // The probe cannot go on: it says so rather than hand back a page the check
            // would judge (the check is SKIP with this reason).
            let Consent::Login { user, password } = consent else {
                return Err(
                    "the authorization server asks for a login: pass --user NAME \
                     --password P, or --consent manual"
                        .into(),
                );
            };
            if logged_in {
                return Err("the login failed: check --user and --password".into());
            }
            logged_in = true;
            body.append_pair("username", user)
                .append_pair("password", password);
        } else {
            return Ok(page);
        }
        next = HttpRequest::new(Method::Post, resolve(&next.url, &form.action))
            .header("content-type", "application/x-www-form-urlencoded")
            .header("origin", as_origin.as_str())
            .body(body.finish());
    }
    Err(format!(
        "the authorization took more than {USER_AGENT_STEPS_MAX} requests"
    ))
}

/// Print the URL, read the redirect URL the person pastes.
async fn manual(url: &str, open: bool) -> Result<HttpResponse, String> {
    eprintln!("Authorize in a browser (the redirect to 127.0.0.1 then fails to load):\n  {url}");
    if open {
        let _ = std::process::Command::new(if cfg!(target_os = "macos") {
            "open"
        } else {
            "xdg-open"
        })
        .arg(url)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn();
    }
    eprintln!("Paste the URL of the page the browser was sent to, then Enter:");
    let line = tokio::task::spawn_blocking(|| {
        let mut line = String::new();
        std::io::stdin().read_line(&mut line).map(|_| line)
    })
    .await
    .map_err(|e| e.to_string())?
    .map_err(|e| e.to_string())?;
    Ok(HttpResponse::new(303).header("location", line.trim()))
}

/// Print the report as asked; write JUnit XML to `junit` if given. Returns whether a MUST
/// failed (the exit status).
pub fn print(
    report: &Report,
    json: bool,
    junit: Option<&std::path::Path>,
    verbose: bool,
) -> Result<bool, String> {
    use mcp_auth_proto::probe::{render_json, render_junit, render_table};
    if json {
        println!("{}", render_json(report));
    } else {
        print!("{}", render_table(report, verbose));
    }
    if let Some(path) = junit {
        std::fs::write(path, render_junit(report))
            .map_err(|e| format!("writing {}: {e}", path.display()))?;
    }
    Ok(report.must_failed())
}
