//! Plain-value HTTP messages: what the drivers decode from and encode to hyper.
//!
//! They are `Clone + Eq + Hash`, so the client state machine's outgoing requests and the
//! model checker's messages are ordinary values.

/// An HTTP method (only those the protocol uses, plus `Other`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Method {
    /// GET
    Get,
    /// POST
    Post,
    /// DELETE
    Delete,
    /// OPTIONS (CORS preflight)
    Options,
    /// Anything else.
    Other,
}

impl Method {
    /// Parse a method name.
    pub fn from_name(name: &str) -> Self {
        match name {
            "GET" => Self::Get,
            "POST" => Self::Post,
            "DELETE" => Self::Delete,
            "OPTIONS" => Self::Options,
            _ => Self::Other,
        }
    }

    /// The method name.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Get => "GET",
            Self::Post => "POST",
            Self::Delete => "DELETE",
            Self::Options => "OPTIONS",
            Self::Other => "OTHER",
        }
    }
}

/// A request, as a server receives it or a client sends it.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct HttpRequest {
    /// Method.
    pub method: Method,
    /// For a client: the absolute URL. For a server: the path (no query).
    pub url: String,
    /// The raw query string, without `?` (servers only).
    pub query: Option<String>,
    /// Header fields, names lowercase, in order.
    pub headers: Vec<(String, Vec<u8>)>,
    /// Body.
    pub body: Vec<u8>,
    /// The peer's address (servers only, when the driver knows it).
    pub peer: Option<std::net::IpAddr>,
}

impl HttpRequest {
    /// A request with no headers and no body.
    pub fn new(method: Method, url: impl Into<String>) -> Self {
        Self {
            method,
            url: url.into(),
            query: None,
            headers: Vec::new(),
            body: Vec::new(),
            peer: None,
        }
    }

    /// Add a header (name lowercased).
    #[must_use]
    pub fn header(mut self, name: &str, value: impl Into<Vec<u8>>) -> Self {
        self.headers.push((name.to_ascii_lowercase(), value.into()));
        self
    }

    /// Set the body.
    #[must_use]
    pub fn body(mut self, body: impl Into<Vec<u8>>) -> Self {
        self.body = body.into();
        self
    }

    /// All values of a header (name compared case-insensitively).
    pub fn header_values<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a [u8]> + 'a {
        self.headers
            .iter()
            .filter(move |(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_slice())
    }

    /// The single value of a header, if present exactly once and UTF-8.
    pub fn header_str<'a>(&'a self, name: &'a str) -> Option<&'a str> {
        let mut it = self.header_values(name);
        match (it.next(), it.next()) {
            (Some(v), None) => std::str::from_utf8(v).ok(),
            _ => None,
        }
    }

    /// Does the `content-type` header name this media type (parameters ignored)?
    pub fn has_content_type(&self, media_type: &str) -> bool {
        self.header_str("content-type").is_some_and(|ct| {
            ct.split(';')
                .next()
                .is_some_and(|m| m.trim().eq_ignore_ascii_case(media_type))
        })
    }
}

/// A response.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct HttpResponse {
    /// Status code.
    pub status: u16,
    /// Header fields, names lowercase, in order.
    pub headers: Vec<(String, String)>,
    /// Body.
    pub body: Vec<u8>,
}

impl HttpResponse {
    /// A response with a status and nothing else.
    pub fn new(status: u16) -> Self {
        Self {
            status,
            headers: Vec::new(),
            body: Vec::new(),
        }
    }

    /// A JSON response (`application/json`).
    pub fn json(status: u16, value: &impl serde::Serialize) -> Self {
        let body = serde_json::to_vec(value).unwrap_or_else(|_| b"{}".to_vec());
        Self::new(status)
            .header("content-type", "application/json")
            .with_body(body)
    }

    /// Add a header.
    #[must_use]
    pub fn header(mut self, name: &str, value: impl Into<String>) -> Self {
        self.headers.push((name.to_ascii_lowercase(), value.into()));
        self
    }

    /// Replace the status.
    #[must_use]
    pub fn with_status(mut self, status: u16) -> Self {
        self.status = status;
        self
    }

    /// Set the body.
    #[must_use]
    pub fn with_body(mut self, body: impl Into<Vec<u8>>) -> Self {
        self.body = body.into();
        self
    }

    /// The first value of a header (name compared case-insensitively).
    pub fn header_value(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// All values of a header.
    pub fn header_values<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.headers
            .iter()
            .filter(move |(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// `Retry-After` (seconds) of the 503 answered when the durable store could not save a change
/// ([`crate::Rejection::StoreUnavailable`]).
pub const STORE_RETRY_AFTER: u64 = 1;

/// The one encoder of OAuth error answers (OAuth 2.1 §3.2.4, RFC 7591 §3.2.2, RFC 6750 §3.1):
/// the rejection's status, JSON `{"error", "error_description"}`, `Cache-Control: no-store`.
// spec: TOK-14, ERR-8, GEN-11
pub fn oauth_error(rejection: crate::Rejection) -> HttpResponse {
    #[derive(serde::Serialize)]
    struct Body {
        error: &'static str,
        error_description: &'static str,
    }
    let code = rejection.code();
    let response = HttpResponse::json(
        rejection.status(),
        &Body {
            error: code.as_str(),
            error_description: rejection.description(),
        },
    )
    .header("cache-control", "no-store");
    match rejection {
        crate::Rejection::RateLimited => {
            response.header("retry-after", crate::server::RATE_WINDOW.to_string())
        }
        crate::Rejection::StoreUnavailable => {
            response.header("retry-after", STORE_RETRY_AFTER.to_string())
        }
        _ => response,
    }
}
