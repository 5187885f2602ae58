//! A numbered, readable record of every HTTP exchange of a run: method, URL, status, the
//! headers that matter, decoded token claims, with secrets shortened. Rendered as text, as a
//! Mermaid sequence diagram, or as JSON.

use mcp_auth_proto::redact::{SECRET_FIELDS, shorten_pairs};
pub use mcp_auth_proto::redact::{shorten, shorten_url};
use std::fmt::Write as _;
use std::sync::{Arc, Mutex};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use mcp_auth_proto::http::{HttpRequest, HttpResponse};
use serde::Serialize;

/// Request headers worth showing.
const REQUEST_HEADERS: &[&str] = &[
    "authorization",
    "content-type",
    "mcp-session-id",
    "mcp-protocol-version",
    "mcp-method",
    "mcp-name",
];
/// Response headers worth showing.
const RESPONSE_HEADERS: &[&str] = &[
    "www-authenticate",
    "location",
    "content-type",
    "mcp-session-id",
];

/// One HTTP exchange.
#[derive(Clone, Debug, Serialize)]
pub struct Exchange {
    /// 1-based number.
    pub number: usize,
    /// What this exchange is for, in words.
    pub step: String,
    /// Who sent the request.
    pub from: String,
    /// Who answered.
    pub to: String,
    /// Method.
    pub method: String,
    /// URL, secrets shortened.
    pub url: String,
    /// Status of the answer.
    pub status: u16,
    /// Request headers that matter, secrets shortened.
    pub request_headers: Vec<(String, String)>,
    /// Response headers that matter, secrets shortened.
    pub response_headers: Vec<(String, String)>,
    /// Body summaries and decoded token claims.
    pub notes: Vec<String>,
}

/// A verdict on one step of a run: did the peer behave as the spec says?
#[derive(Clone, Debug, Serialize)]
pub struct Check {
    /// What was checked.
    pub name: String,
    /// Requirement IDs of `spec/requirements.md`.
    pub requirements: String,
    /// Whether it held.
    pub ok: bool,
    /// What was seen.
    pub detail: String,
}

/// The record of a run.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Transcript {
    /// The exchanges, in order.
    pub exchanges: Vec<Exchange>,
    /// The checks, in order.
    pub checks: Vec<Check>,
    /// `(origin, name)` of each known server, to name the parties.
    #[serde(skip)]
    participants: Vec<(String, String)>,
}

/// A transcript shared between the parts of a run.
pub type SharedTranscript = Arc<Mutex<Transcript>>;

impl Transcript {
    /// A new, empty shared transcript.
    pub fn shared() -> SharedTranscript {
        Arc::new(Mutex::new(Self::default()))
    }

    /// Name the server at `origin` (e.g. `http://127.0.0.1:4000` → "Authorization server").
    pub fn name_participant(&mut self, origin: &str, name: &str) {
        self.participants.push((origin.to_owned(), name.to_owned()));
    }

    fn participant(&self, url: &str) -> String {
        self.participants
            .iter()
            .find(|(origin, _)| {
                url.strip_prefix(origin.as_str())
                    .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
            })
            .map_or_else(|| origin_of(url).to_owned(), |(_, name)| name.clone())
    }

    /// Record one exchange. `request.url` must be absolute.
    pub fn record(
        &mut self,
        step: &str,
        from: &str,
        request: &HttpRequest,
        response: &HttpResponse,
    ) -> usize {
        let number = self.exchanges.len() + 1;
        let mut notes = Vec::new();
        let request_headers = REQUEST_HEADERS
            .iter()
            .flat_map(|name| {
                request
                    .header_values(name)
                    .map(|v| (name.to_string(), String::from_utf8_lossy(v).into_owned()))
                    .collect::<Vec<_>>()
            })
            .map(|(name, value)| {
                if name == "authorization" {
                    if let Some(token) = value.strip_prefix("Bearer ")
                        && let Some(claims) = jwt_claims(token)
                    {
                        notes.push(format!(
                            "bearer token claims: {}",
                            summarize_claims(&claims)
                        ));
                    }
                    (name, shorten_authorization(&value))
                } else {
                    (name, value)
                }
            })
            .collect();
        if !request.body.is_empty() {
            notes.push(format!(
                "request body: {}",
                summarize_body(
                    &request.body,
                    request.has_content_type("application/x-www-form-urlencoded")
                )
            ));
        }
        let response_headers = RESPONSE_HEADERS
            .iter()
            .flat_map(|name| {
                response
                    .header_values(name)
                    .map(|v| (name.to_string(), v.to_owned()))
                    .collect::<Vec<_>>()
            })
            .map(|(name, value)| {
                if name == "location" {
                    (name, shorten_url(&value))
                } else if name == "mcp-session-id" {
                    (name, shorten(&value))
                } else {
                    (name, value)
                }
            })
            .collect();
        if !response.body.is_empty() {
            let is_html = response
                .header_value("content-type")
                .is_some_and(|c| c.starts_with("text/html"));
            if is_html {
                notes.push(format!(
                    "response: HTML page, {} bytes",
                    response.body.len()
                ));
            } else {
                notes.push(format!(
                    "response body: {}",
                    summarize_body(&response.body, false)
                ));
                if let Ok(value) = serde_json::from_slice::<serde_json::Value>(&response.body)
                    && let Some(claims) = value
                        .get("access_token")
                        .and_then(|t| t.as_str())
                        .and_then(jwt_claims)
                {
                    notes.push(format!("access token claims: {claims}"));
                }
            }
        }
        self.exchanges.push(Exchange {
            number,
            step: step.to_owned(),
            from: from.to_owned(),
            to: self.participant(&request.url),
            method: request.method.as_str().to_owned(),
            url: shorten_url(&request.url),
            status: response.status,
            request_headers,
            response_headers,
            notes,
        });
        number
    }

    /// Record a check.
    pub fn check(&mut self, name: &str, requirements: &str, ok: bool, detail: impl Into<String>) {
        self.checks.push(Check {
            name: name.to_owned(),
            requirements: requirements.to_owned(),
            ok,
            detail: detail.into(),
        });
    }

    /// Did every check hold (and was there at least one)?
    pub fn all_ok(&self) -> bool {
        !self.checks.is_empty() && self.checks.iter().all(|c| c.ok)
    }

    /// The exchanges as numbered text.
    pub fn render_exchanges(&self) -> String {
        let mut out = String::new();
        for e in &self.exchanges {
            let _ = writeln!(out, "[{}] {}", e.number, e.step);
            let _ = writeln!(out, "    {} -> {}: {} {}", e.from, e.to, e.method, e.url);
            for (n, v) in &e.request_headers {
                let _ = writeln!(out, "      > {n}: {v}");
            }
            let _ = writeln!(out, "    <- {}", e.status);
            for (n, v) in &e.response_headers {
                let _ = writeln!(out, "      < {n}: {v}");
            }
            for note in &e.notes {
                let _ = writeln!(out, "      * {note}");
            }
        }
        out
    }

    /// The checks as text.
    pub fn render_checks(&self) -> String {
        let mut out = String::new();
        for c in &self.checks {
            let _ = writeln!(
                out,
                "{} {} [{}] {}",
                if c.ok { "PASS" } else { "FAIL" },
                c.name,
                c.requirements,
                c.detail
            );
        }
        out
    }

    /// The exchanges as a Mermaid sequence diagram.
    pub fn render_mermaid(&self) -> String {
        let mut parties: Vec<&str> = Vec::new();
        for e in &self.exchanges {
            for p in [e.from.as_str(), e.to.as_str()] {
                if !parties.contains(&p) {
                    parties.push(p);
                }
            }
        }
        let id = |p: &str| format!("P{}", parties.iter().position(|q| *q == p).unwrap_or(0));
        let mut out = String::from("sequenceDiagram\n");
        for p in &parties {
            let _ = writeln!(
                out,
                "    participant {} as {}",
                id(p),
                p.replace([':', ';', '#'], " ")
            );
        }
        for e in &self.exchanges {
            let path = path_of(&e.url);
            let _ = writeln!(
                out,
                "    {}->>{}: {}. {} {}",
                id(&e.from),
                id(&e.to),
                e.number,
                e.method,
                mermaid_text(path)
            );
            let error = e
                .response_headers
                .iter()
                .find(|(n, _)| n == "www-authenticate")
                .and_then(|(_, v)| param_of(v, "error"))
                .map(|err| format!(" {err}"))
                .unwrap_or_default();
            let _ = writeln!(
                out,
                "    {}-->>{}: {}{} ({})",
                id(&e.to),
                id(&e.from),
                e.status,
                error,
                mermaid_text(&e.step)
            );
        }
        for c in &self.checks {
            let _ = writeln!(
                out,
                "    Note over {}: {} {}",
                id(parties.first().copied().unwrap_or("Client")),
                if c.ok { "PASS" } else { "FAIL" },
                mermaid_text(&c.name)
            );
        }
        out
    }
}

fn mermaid_text(s: &str) -> String {
    s.replace([';', '#', '\n'], " ")
}

fn origin_of(url: &str) -> &str {
    let after_scheme = url.find("://").map_or(0, |i| i + 3);
    url[after_scheme..]
        .find('/')
        .map_or(url, |i| &url[..after_scheme + i])
}

fn path_of(url: &str) -> &str {
    let origin = origin_of(url);
    let rest = &url[origin.len()..];
    let end = rest.find('?').unwrap_or(rest.len());
    if rest.is_empty() { "/" } else { &rest[..end] }
}

fn param_of(header: &str, name: &str) -> Option<String> {
    let needle = format!("{name}=\"");
    let start = header.find(&needle)? + needle.len();
    let end = header[start..].find('"')?;
    Some(header[start..start + end].to_owned())
}

fn shorten_authorization(value: &str) -> String {
    match value.split_once(' ') {
        Some((scheme, rest)) => format!("{scheme} {}", shorten(rest)),
        None => shorten(value),
    }
}

fn shorten_json(value: &mut serde_json::Value) {
    match value {
        serde_json::Value::Object(map) => {
            for (k, v) in map.iter_mut() {
                match v {
                    serde_json::Value::String(s) if SECRET_FIELDS.contains(&k.as_str()) => {
                        *s = shorten(s);
                    }
                    _ => shorten_json(v),
                }
            }
        }
        serde_json::Value::Array(items) => items.iter_mut().for_each(shorten_json),
        _ => {}
    }
}

fn summarize_body(body: &[u8], form: bool) -> String {
    const MAX: usize = 480;
    let text = if form {
        shorten_pairs(&String::from_utf8_lossy(body))
    } else if let Ok(mut value) = serde_json::from_slice::<serde_json::Value>(body) {
        shorten_json(&mut value);
        value.to_string()
    } else {
        String::from_utf8_lossy(body).into_owned()
    };
    if text.chars().count() > MAX {
        let head: String = text.chars().take(MAX).collect();
        format!("{head}… ({} bytes)", body.len())
    } else {
        text
    }
}

/// The claims of a JWT, decoded without verification (for display only), `jti` shortened.
pub fn jwt_claims(token: &str) -> Option<serde_json::Value> {
    let payload = token.split('.').nth(1)?;
    let bytes = URL_SAFE_NO_PAD.decode(payload).ok()?;
    let mut value: serde_json::Value = serde_json::from_slice(&bytes).ok()?;
    shorten_json(&mut value);
    Some(value)
}

fn summarize_claims(claims: &serde_json::Value) -> String {
    ["sub", "aud", "client_id", "scope"]
        .iter()
        .filter_map(|k| claims.get(*k).map(|v| format!("{k}={v}")))
        .collect::<Vec<_>>()
        .join(", ")
}
