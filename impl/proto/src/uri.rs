//! URI identifiers for MCP authorization (MCP revision 2025-06-18).
//!
//! This module validates and, where the specifications call for it,
//! canonicalizes the URIs that MCP authorization deals in:
//!
//! * [`ResourceUri`]: the canonical resource identifier of an MCP server
//!   (MCP "Canonical Server URI", RFC 8707 §2), canonicalized once and then
//!   compared as a plain string.
//! * [`Issuer`]: an authorization server issuer identifier (RFC 8414 §2),
//!   kept exactly as given, because RFC 8414 §3.3 and RFC 9207 compare
//!   issuers as exact strings.
//! * [`RedirectUri`]: an OAuth 2.1 redirect URI (OAuth 2.1 §2.3,
//!   RFC 8252 §7.3), kept exactly as given and matched by simple string
//!   comparison, with the loopback port exception of RFC 8252 §7.3.
//! * [`well_known_insert`], [`well_known_append`] and [`well_known_root`]:
//!   the well-known metadata URLs of RFC 8414 §3.1, RFC 9728 §3.1 and
//!   `OpenID` Connect Discovery.
//!
//! Identifiers are kept as strings and never round-tripped through a URL
//! library (which would, for example, turn `https://h` into `https://h/`).
//! Parsing is done by a small, strict RFC 3986 parser ([`parse_uri`]) that
//! accepts only `scheme "://" authority path-abempty [ "?" query ]
//! [ "#" fragment ]`, without userinfo, and at most [`MAX_URI_LEN`] bytes.
//!
//! Everything here is pure: no I/O, no clock, no randomness, and no panics
//! on any input.

use core::fmt;

/// Maximum accepted length, in bytes, of any URI handled by this module.
/// Longer inputs are refused with [`UriError::TooLong`].
pub const MAX_URI_LEN: usize = 2048;

/// Longest resource or issuer identifier: its well-known metadata URLs (up to 64 bytes longer)
/// must still fit in [`MAX_URI_LEN`], or the peer could not fetch them.
pub const MAX_IDENTIFIER_LEN: usize = MAX_URI_LEN - 64;

/// Whether plain-http URLs are accepted for loopback hosts (`127.0.0.1`, `[::1]`, `localhost`).
///
/// Strict default: `HttpsOnly`. `AllowLoopbackHttp` is the named leniency for
/// demos/tests (spec [PF-8](crate::requirements#PF-8)). Non-loopback `http` is refused under both policies.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum HttpPolicy {
    /// Only `https` URIs are accepted (the default).
    #[default]
    HttpsOnly,
    /// `https` URIs, plus `http` URIs whose host is a loopback host
    /// (see [`is_loopback_host`]).
    AllowLoopbackHttp,
}

impl HttpPolicy {
    /// May a client send a request to `url` under this policy? `https` always (the driver
    /// then verifies the certificate and host name); `http` only to a loopback host under
    /// [`HttpPolicy::AllowLoopbackHttp`]; anything else (other schemes, unparsable URLs,
    /// fragments) never. Drivers ask this before every outbound request.
    // spec: GEN-6, GEN-8, PF-8
    #[must_use]
    pub fn permits(self, url: &str) -> bool {
        parse_uri(url).is_ok_and(|p| {
            p.fragment.is_none()
                && (p.scheme.eq_ignore_ascii_case("https")
                    || (self == Self::AllowLoopbackHttp
                        && p.scheme.eq_ignore_ascii_case("http")
                        && is_loopback_host(p.host)))
        })
    }
}

/// Why a URI was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum UriError {
    /// The input is longer than [`MAX_URI_LEN`] bytes.
    TooLong,
    /// The input is not valid RFC 3986 syntax: a character that may not
    /// appear in a URI (whitespace, control, non-ASCII, `\`, `"`, `<`, `>`,
    /// `{`, `}`, `|`, `^`, `` ` ``), an invalid percent-encoding (`%` not
    /// followed by two hex digits), or a character not allowed in the
    /// component where it appears (e.g. `[` in a path, `#` in a fragment).
    Syntax,
    /// A relative reference (no scheme), or an absolute URI without a `//`
    /// authority (e.g. `mailto:x`, `https:/path`).
    NotAbsolute,
    /// The host is empty or malformed (bad reg-name character, bad or zoned
    /// IP literal, trailing characters after `]`).
    Host,
    /// The port is empty, contains a non-digit, or is greater than 65535.
    Port,
    /// The URI has a fragment (`#...`, even an empty one), which this kind
    /// of identifier forbids.
    Fragment,
    /// The authority contains userinfo (`user@host`), which is refused as a
    /// security risk.
    Userinfo,
    /// The scheme is `http` but the policy (or the kind of identifier) does
    /// not allow it for this host: `https` is required.
    InsecureScheme,
    /// The scheme is neither `http` nor `https` (e.g. `javascript:`,
    /// `data:`, `file:`, custom schemes).
    ForbiddenScheme,
    /// The URI has a query component (`?...`), which this kind of
    /// identifier forbids.
    Query,
}

impl fmt::Display for UriError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let msg = match self {
            Self::TooLong => "URI is longer than 2048 bytes",
            Self::Syntax => "URI is not valid RFC 3986 syntax",
            Self::NotAbsolute => "URI is not absolute with a // authority",
            Self::Host => "URI host is empty or malformed",
            Self::Port => "URI port is invalid",
            Self::Fragment => "URI must not have a fragment",
            Self::Userinfo => "URI must not contain userinfo",
            Self::InsecureScheme => "URI must use https",
            Self::ForbiddenScheme => "URI scheme must be http or https",
            Self::Query => "URI must not have a query",
        };
        f.write_str(msg)
    }
}

impl core::error::Error for UriError {}

/// A parsed absolute URI with an authority, as borrowed parts of the input.
///
/// No normalization is applied: scheme and host keep the case they had in
/// the input (lowercasing is NOT yet applied).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct UriParts<'a> {
    /// The scheme, without the `:` (e.g. `https`, `HTTPS`).
    pub scheme: &'a str,
    /// The host: a reg-name, an IPv4 address, or an IP literal including its
    /// brackets (e.g. `[::1]`). Never empty.
    pub host: &'a str,
    /// The port, if the authority has one (`:8443`).
    pub port: Option<u16>,
    /// The path (path-abempty): empty or starting with `/`.
    pub path: &'a str,
    /// The query, without the `?`, if present (possibly empty).
    pub query: Option<&'a str>,
    /// The fragment, without the `#`, if present (possibly empty).
    pub fragment: Option<&'a str>,
}

impl UriParts<'_> {
    /// The origin, `scheme://host[:port]`, scheme and host lowercased (the form of a browser's
    /// `Origin` header and of a CSP source).
    #[must_use]
    pub fn origin(&self) -> String {
        format!(
            "{}://{}",
            self.scheme.to_ascii_lowercase(),
            self.authority()
        )
    }

    /// The authority, `host[:port]`, host lowercased (the form of a `Host` header).
    #[must_use]
    pub fn authority(&self) -> String {
        let port = self.port.map(|n| format!(":{n}")).unwrap_or_default();
        format!("{}{port}", self.host.to_ascii_lowercase())
    }
}

/// Parses `s` as `scheme "://" authority path-abempty [ "?" query ] [ "#" fragment ]`
/// (RFC 3986 §3), generic syntax only: any syntactically valid scheme is
/// accepted here.
///
/// Refused: inputs longer than [`MAX_URI_LEN`], relative references, URIs
/// without a `//` authority, an empty host, userinfo, whitespace, control
/// and non-ASCII characters, `\` and other characters RFC 3986 does not
/// allow, invalid percent-encoding, and invalid ports (empty, non-digit,
/// greater than 65535).
///
/// # Errors
///
/// [`UriError::TooLong`], [`UriError::Syntax`], [`UriError::NotAbsolute`],
/// [`UriError::Host`], [`UriError::Port`] or [`UriError::Userinfo`], as
/// described on each variant.
pub fn parse_uri(s: &str) -> Result<UriParts<'_>, UriError> {
    let p = split(s)?;
    Ok(UriParts {
        scheme: p.scheme,
        host: p.host,
        port: p.port,
        path: p.path,
        query: p.query,
        fragment: p.fragment,
    })
}

/// Whether `host` is a loopback host: `localhost` (ASCII case-insensitive),
/// `[::1]`, or an IPv4 literal in 127.0.0.0/8 written in RFC 3986
/// dotted-decimal form (e.g. `127.0.0.1`, `127.1.2.3`).
///
/// Anything else (including `localhost.`, `127.1`, `127.000.0.1` and
/// percent-encoded spellings) is not treated as loopback; that is the safe
/// side, since loopback only ever relaxes rules.
#[must_use]
pub fn is_loopback_host(host: &str) -> bool {
    if host.eq_ignore_ascii_case("localhost") || host == "[::1]" {
        return true;
    }
    let mut octets = host.split('.');
    let first = octets.next();
    if first != Some("127") {
        return false;
    }
    let mut count = 1usize;
    for octet in octets {
        if !is_dec_octet(octet) {
            return false;
        }
        count = count.saturating_add(1);
    }
    count == 4
}

/// Canonical resource identifier of an MCP server (MCP 2025-06-18
/// "Canonical Server URI", RFC 8707 §2).
///
/// Canonical form: scheme and host lowercased; default port removed (443
/// for https, 80 for http); fragment rejected ([`UriError::Fragment`]);
/// path kept byte-for-byte (case-sensitive); a path of exactly `/` removed
/// (`https://h/` becomes `https://h`); other trailing slashes kept
/// (`https://h/mcp/` stays); query kept (allowed but discouraged). The
/// scheme must be https, or http with a loopback host under
/// [`HttpPolicy::AllowLoopbackHttp`], else [`UriError::InsecureScheme`]
/// (other schemes give [`UriError::ForbiddenScheme`]).
///
/// Both the client (for the `resource` parameter) and the authorization
/// server (for the audience it binds tokens to) use this canonical string,
/// and compare it as a plain string.
///
/// Serializes as a plain string. It deliberately does not implement
/// `Deserialize`: a value read from the wire must go through
/// [`ResourceUri::parse`] with the caller's [`HttpPolicy`].
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
#[serde(transparent)]
pub struct ResourceUri(String);

impl ResourceUri {
    /// Validates `s` and returns its canonical form (see the type's docs).
    ///
    /// # Errors
    ///
    /// Any [`parse_uri`] error; [`UriError::ForbiddenScheme`] for a scheme
    /// other than http/https; [`UriError::Fragment`] when a fragment is
    /// present; [`UriError::InsecureScheme`] for http not allowed by
    /// `policy` (non-loopback http is never allowed).
    pub fn parse(s: &str, policy: HttpPolicy) -> Result<Self, UriError> {
        if s.len() > MAX_IDENTIFIER_LEN {
            return Err(UriError::TooLong);
        }
        let p = split_http(s)?;
        if p.fragment.is_some() {
            return Err(UriError::Fragment);
        }
        let scheme = p.scheme.to_ascii_lowercase();
        check_transport(&scheme, p.host, policy == HttpPolicy::AllowLoopbackHttp)?;
        let host = p.host.to_ascii_lowercase();
        let mut out = String::with_capacity(s.len());
        out.push_str(&scheme);
        out.push_str("://");
        out.push_str(&host);
        if let Some(port) = p.port
            && Some(port) != default_port(&scheme)
        {
            out.push(':');
            out.push_str(&port.to_string());
        }
        if p.path != "/" {
            out.push_str(p.path);
        }
        if let Some(q) = p.query {
            out.push('?');
            out.push_str(q);
        }
        Ok(Self(out))
    }

    /// The canonical string.
    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The origin part, `scheme://host[:port]`, without path or query
    /// (e.g. `https://h:8443`).
    #[must_use]
    pub fn origin(&self) -> &str {
        let s = self.0.as_str();
        s.strip_suffix(self.tail()).unwrap_or(s)
    }

    /// The path: `""` or a string starting with `/` (e.g. `/mcp`). Never
    /// exactly `/`.
    #[must_use]
    pub fn path(&self) -> &str {
        let tail = self.tail();
        tail.split_once('?').map_or(tail, |(path, _)| path)
    }

    /// The query without its `?`, if the identifier has one.
    #[must_use]
    pub fn query(&self) -> Option<&str> {
        self.tail().split_once('?').map(|(_, q)| q)
    }

    /// Everything after the authority: path and `?query`.
    fn tail(&self) -> &str {
        let s = self.0.as_str();
        let Some((_, rest)) = s.split_once("://") else {
            return "";
        };
        match rest.find(['/', '?']) {
            Some(i) => rest.get(i..).unwrap_or(""),
            None => "",
        }
    }
}

impl fmt::Display for ResourceUri {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl AsRef<str> for ResourceUri {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

/// An issuer identifier (RFC 8414 §2): https (or loopback http under the
/// policy), no query, no fragment.
///
/// NOT canonicalized: kept exactly as given, because RFC 8414 §3.3 and
/// RFC 9207 compare issuers as exact strings; comparing is the caller's
/// exact string comparison (`==` on this type, or on [`Issuer::as_str`]).
///
/// Serializes as a plain string; does not implement `Deserialize` (values
/// from the wire must go through [`Issuer::parse`]).
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
#[serde(transparent)]
pub struct Issuer(String);

impl Issuer {
    /// Validates `s` as an issuer identifier under `policy`; keeps it
    /// exactly as given.
    ///
    /// # Errors
    ///
    /// Any [`parse_uri`] error; [`UriError::ForbiddenScheme`] for a scheme
    /// other than http/https; [`UriError::Fragment`] or [`UriError::Query`]
    /// when those components are present (even empty);
    /// [`UriError::InsecureScheme`] for http not allowed by `policy`.
    pub fn parse(s: &str, policy: HttpPolicy) -> Result<Self, UriError> {
        if s.len() > MAX_IDENTIFIER_LEN {
            return Err(UriError::TooLong);
        }
        let p = split_http(s)?;
        if p.fragment.is_some() {
            return Err(UriError::Fragment);
        }
        if p.query.is_some() {
            return Err(UriError::Query);
        }
        check_transport(
            &p.scheme.to_ascii_lowercase(),
            p.host,
            policy == HttpPolicy::AllowLoopbackHttp,
        )?;
        Ok(Self(s.to_owned()))
    }

    /// The issuer exactly as given.
    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Issuer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl AsRef<str> for Issuer {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

/// A redirect URI (OAuth 2.1 §2.3, MCP "Communication Security",
/// RFC 8252 §7.3).
///
/// Valid when absolute, without fragment, and either https, or http with a
/// loopback host (127.x.x.x, `[::1]`, `localhost`): loopback http is always
/// allowed for redirect URIs regardless of [`HttpPolicy`] (the
/// specification's own exception). Other schemes (`javascript:`, `data:`,
/// `file:`, custom schemes) give [`UriError::ForbiddenScheme`]. A query is
/// allowed. Kept exactly as given (no canonicalization).
///
/// Serializes as a plain string; does not implement `Deserialize` (values
/// from the wire must go through [`RedirectUri::parse`]).
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
#[serde(transparent)]
pub struct RedirectUri(String);

impl RedirectUri {
    /// Validates `s` as a redirect URI; keeps it exactly as given. The host must name one
    /// host (RFC 9700 §2.1, §4.1.3: no patterns): a DNS host name (RFC 1123 labels of
    /// letters, digits and inner hyphens, no empty label, no trailing dot), a dotted-decimal
    /// IPv4 address, or an IP literal; `*`, percent-encoding and other sub-delimiters are
    /// refused, and so are numeric spellings a browser would read as another address
    /// (`0x7f.0.0.1`, `1.2.3`) ([`UriError::Host`]).
    ///
    /// # Errors
    ///
    /// Any [`parse_uri`] error; [`UriError::Host`] for a host that is not one host name or IP
    /// address; [`UriError::ForbiddenScheme`] for a scheme
    /// other than http/https; [`UriError::Fragment`] when a fragment is
    /// present; [`UriError::InsecureScheme`] for http with a non-loopback
    /// host.
    // spec: DCR-10, DCR-11
    pub fn parse(s: &str) -> Result<Self, UriError> {
        let p = split_http(s)?;
        if p.fragment.is_some() {
            return Err(UriError::Fragment);
        }
        if !is_host_name_or_ip(p.host) {
            return Err(UriError::Host);
        }
        check_transport(&p.scheme.to_ascii_lowercase(), p.host, true)?;
        Ok(Self(s.to_owned()))
    }

    /// The redirect URI exactly as given.
    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Whether this is an http URI (scheme compared case-insensitively)
    /// with a loopback host (see [`is_loopback_host`]).
    #[must_use]
    pub fn is_loopback(&self) -> bool {
        split(&self.0).is_ok_and(|p| is_http_loopback(&p))
    }

    /// Does a `redirect_uri` presented in a request match this registered one?
    ///
    /// Exact simple string comparison (RFC 3986 §6.2.1: no case folding, no
    /// percent-decoding, no trailing-slash games), EXCEPT: when both are
    /// http loopback URIs with the same host string, the port is ignored
    /// (RFC 8252 §7.3: the registered one may have no port or any port; the
    /// requested one may have any port). Scheme, host, path and query
    /// still compare exactly.
    #[must_use]
    pub fn matches(&self, requested: &Self) -> bool {
        if self.0 == requested.0 {
            return true;
        }
        let (Ok(reg), Ok(req)) = (split(&self.0), split(&requested.0)) else {
            return false;
        };
        is_http_loopback(&reg)
            && is_http_loopback(&req)
            && reg.scheme == req.scheme
            && reg.host == req.host
            && reg.path == req.path
            && reg.query == req.query
            && reg.fragment == req.fragment
    }

    /// Appends query parameters (already percent-encoded `k=v` pairs joined
    /// by `&`) and returns the resulting URI string. Used to build
    /// authorization responses.
    ///
    /// An existing query is preserved (the pairs are added after an `&`,
    /// or directly when the existing query is empty or already ends with
    /// `&`); there is never a fragment to move. An empty `encoded_pairs`
    /// returns the URI unchanged. Defensively, any byte of `encoded_pairs`
    /// that may not appear in a query (such as `#`, whitespace, non-ASCII,
    /// or a `%` not starting a valid percent-encoding) is percent-encoded,
    /// so the result is always a URI without fragment.
    #[must_use]
    pub fn with_query(&self, encoded_pairs: &str) -> String {
        let mut out = String::with_capacity(
            self.0
                .len()
                .saturating_add(encoded_pairs.len().saturating_mul(3))
                .saturating_add(1),
        );
        out.push_str(&self.0);
        if encoded_pairs.is_empty() {
            return out;
        }
        match self.0.split_once('?') {
            Some((_, q)) => {
                if !q.is_empty() && !q.ends_with('&') {
                    out.push('&');
                }
            }
            None => out.push('?'),
        }
        let bytes = encoded_pairs.as_bytes();
        for (i, &b) in bytes.iter().enumerate() {
            let keep = if b == b'%' {
                pct_ok(bytes, i)
            } else {
                is_query_char(b)
            };
            if keep {
                out.push(char::from(b));
            } else {
                out.push('%');
                out.push(hex_upper(b >> 4));
                out.push(hex_upper(b & 0x0f));
            }
        }
        out
    }
}

impl fmt::Display for RedirectUri {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl AsRef<str> for RedirectUri {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

/// RFC 8414 §3.1 / RFC 9728 §3.1 path insertion: the well-known string is
/// inserted between the authority and the path.
///
/// `well_known_insert("https://h/mcp", "oauth-protected-resource")` ==
/// `"https://h/.well-known/oauth-protected-resource/mcp"`; for `https://h`
/// or `https://h/` the result is `https://h/.well-known/oauth-protected-resource`;
/// a terminating `/` of the path is removed before insertion (`https://h/t1/`
/// gives `.../.well-known/x/t1`). A query of the identifier is kept after
/// the path (RFC 9728 §3.1). Scheme and authority are kept as given.
///
/// The identifier must parse with [`parse_uri`], use http or https
/// ([`UriError::ForbiddenScheme`] otherwise; no [`HttpPolicy`] is applied
/// here, the caller's typed identifier already did that) and have no
/// fragment. `suffix` must be a single non-empty path segment.
///
/// # Errors
///
/// Any [`parse_uri`] error of the identifier; [`UriError::ForbiddenScheme`]
/// for a scheme other than http/https; [`UriError::Fragment`] when the
/// identifier has a fragment; [`UriError::Syntax`] when `suffix` is empty or
/// not a valid path segment (e.g. contains `/`, `?`, `#`).
pub fn well_known_insert(identifier: &str, suffix: &str) -> Result<String, UriError> {
    let p = well_known_base(identifier, suffix)?;
    let path = p.path.strip_suffix('/').unwrap_or(p.path);
    let mut out = well_known_prefix(&p, suffix);
    out.push_str(path);
    push_query(&mut out, p.query);
    Ok(out)
}

/// `OpenID` Connect Discovery appending: the well-known string is appended
/// to the path: `https://h/t1` gives `https://h/t1/.well-known/openid-configuration`
/// (one terminating `/` of the path is stripped first, so `https://h/` gives
/// `https://h/.well-known/openid-configuration`). A query of the identifier
/// is kept after the new path.
///
/// # Errors
///
/// As [`well_known_insert`].
pub fn well_known_append(identifier: &str, suffix: &str) -> Result<String, UriError> {
    let p = well_known_base(identifier, suffix)?;
    let path = p.path.strip_suffix('/').unwrap_or(p.path);
    let mut out = String::with_capacity(identifier.len().saturating_add(suffix.len()));
    out.push_str(p.scheme);
    out.push_str("://");
    out.push_str(p.authority);
    out.push_str(path);
    out.push_str("/.well-known/");
    out.push_str(suffix);
    push_query(&mut out, p.query);
    Ok(out)
}

/// The root well-known URL for the identifier's origin:
/// `https://h:8443/mcp` gives `https://h:8443/.well-known/<suffix>`. Path
/// and query of the identifier are dropped.
///
/// # Errors
///
/// As [`well_known_insert`].
pub fn well_known_root(identifier: &str, suffix: &str) -> Result<String, UriError> {
    let p = well_known_base(identifier, suffix)?;
    Ok(well_known_prefix(&p, suffix))
}

// ---------------------------------------------------------------------------
// Private helpers.
// ---------------------------------------------------------------------------

/// Parsed URI with the raw authority kept (for the well-known builders).
struct Split<'a> {
    scheme: &'a str,
    authority: &'a str,
    host: &'a str,
    port: Option<u16>,
    path: &'a str,
    query: Option<&'a str>,
    fragment: Option<&'a str>,
}

/// The full parser behind [`parse_uri`].
fn split(s: &str) -> Result<Split<'_>, UriError> {
    if s.len() > MAX_URI_LEN {
        return Err(UriError::TooLong);
    }
    check_chars(s)?;
    let (scheme, rest) = leading_scheme(s).ok_or(UriError::NotAbsolute)?;
    let after = rest.strip_prefix("//").ok_or(UriError::NotAbsolute)?;
    let auth_end = after.find(['/', '?', '#']).unwrap_or(after.len());
    let (authority, tail) = after.split_at_checked(auth_end).ok_or(UriError::Syntax)?;
    let (before_fragment, fragment) = match tail.split_once('#') {
        Some((a, f)) => (a, Some(f)),
        None => (tail, None),
    };
    let (path, query) = match before_fragment.split_once('?') {
        Some((p, q)) => (p, Some(q)),
        None => (before_fragment, None),
    };
    if !path.bytes().all(|b| b == b'%' || is_path_char(b)) {
        return Err(UriError::Syntax);
    }
    if let Some(q) = query
        && !q.bytes().all(|b| b == b'%' || is_query_char(b))
    {
        return Err(UriError::Syntax);
    }
    if let Some(f) = fragment
        && !f.bytes().all(|b| b == b'%' || is_query_char(b))
    {
        return Err(UriError::Syntax);
    }
    if authority.contains('@') {
        return Err(UriError::Userinfo);
    }
    let (host, port) = host_port(authority)?;
    Ok(Split {
        scheme,
        authority,
        host,
        port,
        path,
        query,
        fragment,
    })
}

/// [`split`] for the typed parsers: a syntactically valid scheme other than
/// http/https is refused as [`UriError::ForbiddenScheme`] before the rest
/// of the URI is looked at (so `javascript:alert(1)` is "forbidden scheme",
/// not "no authority").
fn split_http(s: &str) -> Result<Split<'_>, UriError> {
    if s.len() > MAX_URI_LEN {
        return Err(UriError::TooLong);
    }
    if let Some((scheme, _)) = leading_scheme(s)
        && !is_http_scheme(scheme)
    {
        return Err(UriError::ForbiddenScheme);
    }
    split(s)
}

/// Splits `scheme ":" rest` when `s` starts with a valid RFC 3986 scheme.
fn leading_scheme(s: &str) -> Option<(&str, &str)> {
    let (scheme, rest) = s.split_once(':')?;
    let mut bytes = scheme.bytes();
    let first_ok = bytes.next().is_some_and(|b| b.is_ascii_alphabetic());
    let rest_ok = bytes.all(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'-' | b'.'));
    (first_ok && rest_ok).then_some((scheme, rest))
}

fn is_http_scheme(scheme: &str) -> bool {
    scheme.eq_ignore_ascii_case("http") || scheme.eq_ignore_ascii_case("https")
}

/// Transport security rule shared by the typed identifiers.
/// `scheme` must already be lowercase.
fn check_transport(scheme: &str, host: &str, allow_loopback_http: bool) -> Result<(), UriError> {
    match scheme {
        "https" => Ok(()),
        "http" if allow_loopback_http && is_loopback_host(host) => Ok(()),
        "http" => Err(UriError::InsecureScheme),
        _ => Err(UriError::ForbiddenScheme),
    }
}

fn is_http_loopback(p: &Split<'_>) -> bool {
    p.scheme.eq_ignore_ascii_case("http") && is_loopback_host(p.host)
}

/// Default port of a lowercase scheme.
fn default_port(scheme: &str) -> Option<u16> {
    match scheme {
        "https" => Some(443),
        "http" => Some(80),
        _ => None,
    }
}

/// Splits an authority (without userinfo) into host and port.
fn host_port(authority: &str) -> Result<(&str, Option<u16>), UriError> {
    let (host, port_str) = if let Some(inner_rest) = authority.strip_prefix('[') {
        let (inner, rest) = inner_rest.split_once(']').ok_or(UriError::Host)?;
        if !is_loose_ipv6(inner) {
            return Err(UriError::Host);
        }
        let host = authority.strip_suffix(rest).ok_or(UriError::Host)?;
        let port = if rest.is_empty() {
            None
        } else {
            Some(rest.strip_prefix(':').ok_or(UriError::Host)?)
        };
        (host, port)
    } else {
        let (host, port) = match authority.split_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (authority, None),
        };
        if host.is_empty()
            || !host
                .bytes()
                .all(|b| b == b'%' || is_unreserved(b) || is_sub_delim(b))
        {
            return Err(UriError::Host);
        }
        (host, port)
    };
    let port = match port_str {
        None => None,
        Some(p) => Some(parse_port(p)?),
    };
    Ok((host, port))
}

/// Does `host` (as split, so an IP literal keeps its brackets and was checked already) name
/// exactly one host: a DNS host name of RFC 1123 labels (1 to 63 letters, digits and hyphens,
/// no hyphen at either end, at most 253 bytes, no empty label), or a dotted-decimal IPv4
/// address? A host whose last label looks numeric (digits, or `0x`) must be such an address,
/// as WHATWG URL parsers (browsers) read it as an IPv4 number.
fn is_host_name_or_ip(host: &str) -> bool {
    if host.starts_with('[') {
        return true;
    }
    if host.is_empty() || host.len() > 253 {
        return false;
    }
    let last = host.rsplit('.').next().unwrap_or("");
    let numeric = last.bytes().all(|b| b.is_ascii_digit())
        || last.get(..2).is_some_and(|p| p.eq_ignore_ascii_case("0x"));
    if numeric {
        let mut count = 0usize;
        return host.split('.').all(|o| {
            count = count.saturating_add(1);
            is_dec_octet(o)
        }) && count == 4;
    }
    host.split('.').all(|label| {
        (1..=63).contains(&label.len())
            && label
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-')
            && !label.starts_with('-')
            && !label.ends_with('-')
    })
}

/// Loose IPv6 check for the inside of an IP literal: non-empty, only hex
/// digits, `:` and `.`, at least one `:`. Zones (`%25...`) and `IPvFuture`
/// (`v1.x`) are refused.
fn is_loose_ipv6(inner: &str) -> bool {
    inner.contains(':')
        && inner
            .bytes()
            .all(|b| b.is_ascii_hexdigit() || b == b':' || b == b'.')
}

/// Parses a port: one or more ASCII digits, value at most 65535.
fn parse_port(p: &str) -> Result<u16, UriError> {
    if p.is_empty() {
        return Err(UriError::Port);
    }
    let mut n: u32 = 0;
    for b in p.bytes() {
        if !b.is_ascii_digit() {
            return Err(UriError::Port);
        }
        n = n
            .checked_mul(10)
            .and_then(|v| v.checked_add(char::from(b).to_digit(10).unwrap_or(0)))
            .ok_or(UriError::Port)?;
        if n > u32::from(u16::MAX) {
            return Err(UriError::Port);
        }
    }
    u16::try_from(n).map_err(|_| UriError::Port)
}

/// RFC 3986 dec-octet: "0"-"9", "10"-"99", "100"-"255", no leading zeros.
fn is_dec_octet(s: &str) -> bool {
    let ok_len = !s.is_empty() && s.len() <= 3;
    let digits = s.bytes().all(|b| b.is_ascii_digit());
    let no_leading_zero = s == "0" || !s.starts_with('0');
    ok_len && digits && no_leading_zero && s.parse::<u16>().is_ok_and(|v| v <= 255)
}

/// Every byte is a character RFC 3986 allows somewhere, and every `%`
/// starts a valid percent-encoding.
fn check_chars(s: &str) -> Result<(), UriError> {
    let bytes = s.as_bytes();
    for (i, &b) in bytes.iter().enumerate() {
        let ok = if b == b'%' {
            pct_ok(bytes, i)
        } else {
            is_unreserved(b) || is_gen_delim(b) || is_sub_delim(b)
        };
        if !ok {
            return Err(UriError::Syntax);
        }
    }
    Ok(())
}

/// Whether the `%` at index `i` is followed by two hex digits.
fn pct_ok(bytes: &[u8], i: usize) -> bool {
    let hi = bytes.get(i.saturating_add(1));
    let lo = bytes.get(i.saturating_add(2));
    matches!((hi, lo), (Some(h), Some(l)) if h.is_ascii_hexdigit() && l.is_ascii_hexdigit())
}

fn is_unreserved(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~')
}

fn is_gen_delim(b: u8) -> bool {
    matches!(b, b':' | b'/' | b'?' | b'#' | b'[' | b']' | b'@')
}

fn is_sub_delim(b: u8) -> bool {
    matches!(
        b,
        b'!' | b'$' | b'&' | b'\'' | b'(' | b')' | b'*' | b'+' | b',' | b';' | b'='
    )
}

/// pchar without pct-encoded (checked separately).
fn is_pchar(b: u8) -> bool {
    is_unreserved(b) || is_sub_delim(b) || b == b':' || b == b'@'
}

fn is_path_char(b: u8) -> bool {
    is_pchar(b) || b == b'/'
}

/// Characters of a query or fragment, without pct-encoded.
fn is_query_char(b: u8) -> bool {
    is_pchar(b) || b == b'/' || b == b'?'
}

fn hex_upper(nibble: u8) -> char {
    char::from_digit(u32::from(nibble & 0x0f), 16).map_or('0', |c| c.to_ascii_uppercase())
}

/// Shared validation of the well-known builders.
fn well_known_base<'a>(identifier: &'a str, suffix: &str) -> Result<Split<'a>, UriError> {
    let p = split_http(identifier)?;
    if !is_http_scheme(p.scheme) {
        return Err(UriError::ForbiddenScheme);
    }
    if p.fragment.is_some() {
        return Err(UriError::Fragment);
    }
    let bytes = suffix.as_bytes();
    let suffix_ok = !bytes.is_empty()
        && bytes.len() <= MAX_URI_LEN
        && bytes.iter().enumerate().all(|(i, &b)| {
            if b == b'%' {
                pct_ok(bytes, i)
            } else {
                is_pchar(b)
            }
        });
    if !suffix_ok {
        return Err(UriError::Syntax);
    }
    Ok(p)
}

/// `scheme://authority/.well-known/suffix`.
fn well_known_prefix(p: &Split<'_>, suffix: &str) -> String {
    let mut out = String::with_capacity(
        p.scheme
            .len()
            .saturating_add(p.authority.len())
            .saturating_add(suffix.len())
            .saturating_add(p.path.len())
            .saturating_add(32),
    );
    out.push_str(p.scheme);
    out.push_str("://");
    out.push_str(p.authority);
    out.push_str("/.well-known/");
    out.push_str(suffix);
    out
}

fn push_query(out: &mut String, query: Option<&str>) {
    if let Some(q) = query {
        out.push('?');
        out.push_str(q);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const ALLOW: HttpPolicy = HttpPolicy::AllowLoopbackHttp;
    const STRICT: HttpPolicy = HttpPolicy::HttpsOnly;

    fn res(s: &str, policy: HttpPolicy) -> Result<String, UriError> {
        ResourceUri::parse(s, policy).map(|r| r.as_str().to_owned())
    }

    fn redirect(s: &str) -> RedirectUri {
        match RedirectUri::parse(s) {
            Ok(r) => r,
            Err(e) => panic!("{s:?} should be a valid redirect URI: {e:?}"),
        }
    }

    // spec: RES-6
    #[test]
    fn uppercase_scheme_and_host_are_lowercased_path_is_not() {
        assert_eq!(
            res("HTTPS://MCP.Example.COM/MCP/Tools", STRICT),
            Ok("https://mcp.example.com/MCP/Tools".to_owned())
        );
        assert_eq!(
            res("HtTp://LocalHost:8080/Mcp", ALLOW),
            Ok("http://localhost:8080/Mcp".to_owned())
        );
        // Path case is significant: these are different resources.
        assert_ne!(res("https://h/mcp", STRICT), res("https://h/MCP", STRICT));
        // Query is kept byte-for-byte.
        assert_eq!(
            res("https://H/mcp?A=B", STRICT),
            Ok("https://h/mcp?A=B".to_owned())
        );
    }

    // spec: RES-6
    #[test]
    fn default_ports_are_removed_others_kept() {
        assert_eq!(res("https://h:443/mcp", STRICT), Ok("https://h/mcp".into()));
        assert_eq!(res("https://h:0443", STRICT), Ok("https://h".into()));
        assert_eq!(
            res("https://h:80/mcp", STRICT),
            Ok("https://h:80/mcp".into())
        );
        assert_eq!(
            res("https://h:8443/mcp", STRICT),
            Ok("https://h:8443/mcp".into())
        );
        assert_eq!(
            res("http://127.0.0.1:80/mcp", ALLOW),
            Ok("http://127.0.0.1/mcp".into())
        );
        assert_eq!(
            res("http://[::1]:443/mcp", ALLOW),
            Ok("http://[::1]:443/mcp".into())
        );
    }

    // spec: RES-7
    #[test]
    fn root_slash_removed_other_trailing_slashes_kept() {
        assert_eq!(res("https://h/", STRICT), Ok("https://h".into()));
        assert_eq!(res("https://h", STRICT), Ok("https://h".into()));
        assert_eq!(res("https://h:443/", STRICT), Ok("https://h".into()));
        assert_eq!(res("https://h/mcp/", STRICT), Ok("https://h/mcp/".into()));
        assert_eq!(res("https://h/mcp", STRICT), Ok("https://h/mcp".into()));
        assert_eq!(res("https://h//", STRICT), Ok("https://h//".into()));
        assert_ne!(res("https://h/mcp/", STRICT), res("https://h/mcp", STRICT));
    }

    // spec: RES-9
    #[test]
    fn relative_and_fragment_resources_are_rejected() {
        assert_eq!(res("mcp.example.com", STRICT), Err(UriError::NotAbsolute));
        assert_eq!(
            res("mcp.example.com/mcp", STRICT),
            Err(UriError::NotAbsolute)
        );
        assert_eq!(res("/mcp", STRICT), Err(UriError::NotAbsolute));
        assert_eq!(res("//h/mcp", STRICT), Err(UriError::NotAbsolute));
        assert_eq!(res("https:/h/mcp", STRICT), Err(UriError::NotAbsolute));
        assert_eq!(res("https:h", STRICT), Err(UriError::NotAbsolute));
        assert_eq!(res("https://h#x", STRICT), Err(UriError::Fragment));
        assert_eq!(res("https://h/mcp#", STRICT), Err(UriError::Fragment));
        assert_eq!(res("", STRICT), Err(UriError::NotAbsolute));
    }

    // spec: RES-4, RES-3
    #[test]
    fn canonical_form_is_shared_by_client_and_server() {
        // Every spelling a client might be configured with yields the one
        // string the authorization server binds as the audience.
        let spellings = [
            "https://mcp.example.com",
            "https://mcp.example.com/",
            "HTTPS://MCP.EXAMPLE.COM",
            "https://Mcp.Example.Com:443/",
            "https://mcp.example.com:443",
        ];
        for s in spellings {
            let r = ResourceUri::parse(s, STRICT);
            assert_eq!(
                r.as_ref().map(ResourceUri::as_str),
                Ok("https://mcp.example.com")
            );
        }
        let r = ResourceUri::parse("https://Mcp.Example.com:8443/server/mcp", STRICT);
        let Ok(r) = r else { panic!("{r:?}") };
        assert_eq!(r.as_str(), "https://mcp.example.com:8443/server/mcp");
        assert_eq!(r.origin(), "https://mcp.example.com:8443");
        assert_eq!(r.path(), "/server/mcp");
        assert_eq!(r.query(), None);
        // Re-parsing what the client sent gives the same identifier.
        assert_eq!(ResourceUri::parse(r.as_str(), STRICT), Ok(r.clone()));
        assert_eq!(
            serde_json::to_string(&r).ok().as_deref(),
            Some("\"https://mcp.example.com:8443/server/mcp\"")
        );
        let root = ResourceUri::parse("https://h/", STRICT);
        let Ok(root) = root else { panic!("{root:?}") };
        assert_eq!((root.origin(), root.path()), ("https://h", ""));
        let q = ResourceUri::parse("https://h/?a=b", STRICT);
        let Ok(q) = q else { panic!("{q:?}") };
        assert_eq!(q.as_str(), "https://h?a=b");
        assert_eq!(
            (q.origin(), q.path(), q.query()),
            ("https://h", "", Some("a=b"))
        );
    }

    // spec: AZ-3
    #[test]
    fn redirect_uri_match_is_exact_string_comparison() {
        let registered = redirect("https://c/cb");
        assert!(registered.matches(&redirect("https://c/cb")));
        assert!(!registered.matches(&redirect("https://c/cb/")));
        assert!(!registered.matches(&redirect("https://C/cb")));
        assert!(!registered.matches(&redirect("https://c/cb?x=1")));
        assert!(!registered.matches(&redirect("https://c/CB")));
        assert!(!registered.matches(&redirect("https://c:443/cb")));
        assert!(!registered.matches(&redirect("https://c:8443/cb")));
        assert!(!registered.matches(&redirect("HTTPS://c/cb")));
        assert!(!registered.matches(&redirect("https://c/%63b")));
        assert!(!redirect("https://c/cb?x=1").matches(&redirect("https://c/cb?x=2")));
        assert!(redirect("https://c/cb?x=1").matches(&redirect("https://c/cb?x=1")));
    }

    // spec: AZ-22, PF-9
    #[test]
    fn loopback_redirect_ignores_port() {
        let reg = redirect("http://127.0.0.1/cb");
        assert!(reg.is_loopback());
        assert!(reg.matches(&redirect("http://127.0.0.1:49152/cb")));
        assert!(reg.matches(&redirect("http://127.0.0.1/cb")));
        assert!(
            redirect("http://127.0.0.1:3000/cb").matches(&redirect("http://127.0.0.1:4000/cb"))
        );
        assert!(redirect("http://127.0.0.1:3000/cb").matches(&redirect("http://127.0.0.1/cb")));
        assert!(redirect("http://[::1]/cb").matches(&redirect("http://[::1]:61000/cb")));
        assert!(redirect("http://localhost/cb").matches(&redirect("http://localhost:5/cb")));
        assert!(
            redirect("http://127.0.0.1/cb?a=1").matches(&redirect("http://127.0.0.1:9/cb?a=1"))
        );
        // Host, path and query still compare exactly.
        assert!(!reg.matches(&redirect("http://localhost:5/cb")));
        assert!(!reg.matches(&redirect("http://127.0.0.1:5/other")));
        assert!(!reg.matches(&redirect("http://127.0.0.2:5/cb")));
        assert!(!reg.matches(&redirect("http://127.0.0.1:5/cb?a=1")));
        assert!(!redirect("http://[::1]/cb").matches(&redirect("http://127.0.0.1:5/cb")));
        // https loopback is not the RFC 8252 exception: exact match only.
        let https_lb = redirect("https://127.0.0.1/cb");
        assert!(!https_lb.is_loopback());
        assert!(!https_lb.matches(&redirect("https://127.0.0.1:8443/cb")));
        // Non-loopback http is not even a valid redirect URI.
        assert_eq!(
            RedirectUri::parse("http://example.com:5/cb"),
            Err(UriError::InsecureScheme)
        );
    }

    // spec: DCR-10
    #[test]
    fn redirect_uri_registration_requires_https_or_loopback() {
        assert_eq!(
            RedirectUri::parse("http://example.com/cb"),
            Err(UriError::InsecureScheme)
        );
        assert_eq!(
            RedirectUri::parse("http://10.0.0.1/cb"),
            Err(UriError::InsecureScheme)
        );
        assert_eq!(
            RedirectUri::parse("http://localhost.evil.com/cb"),
            Err(UriError::InsecureScheme)
        );
        assert!(RedirectUri::parse("http://127.0.0.1:0/cb").is_ok());
        assert!(RedirectUri::parse("http://127.255.255.254:65535/cb").is_ok());
        assert!(RedirectUri::parse("http://[::1]/cb").is_ok());
        assert!(RedirectUri::parse("http://LOCALHOST/cb").is_ok());
        assert!(RedirectUri::parse("https://app/cb").is_ok());
        assert!(RedirectUri::parse("https://app.example.com/cb?state=kept").is_ok());
        assert_eq!(
            RedirectUri::parse("https://app:65536/cb"),
            Err(UriError::Port)
        );
        assert_eq!(
            RedirectUri::parse("https://user@app/cb"),
            Err(UriError::Userinfo)
        );
        let r = redirect("https://app/cb");
        assert_eq!(r.as_str(), "https://app/cb");
        assert_eq!(
            serde_json::to_string(&r).ok().as_deref(),
            Some("\"https://app/cb\"")
        );
    }

    // spec: AZ-5
    #[test]
    fn redirect_fragment_rejected_and_with_query_keeps_query() {
        assert_eq!(
            RedirectUri::parse("https://c/cb#x"),
            Err(UriError::Fragment)
        );
        assert_eq!(RedirectUri::parse("https://c/cb#"), Err(UriError::Fragment));
        assert_eq!(
            redirect("https://c/cb").with_query("code=abc&state=xyz"),
            "https://c/cb?code=abc&state=xyz"
        );
        assert_eq!(
            redirect("https://c/cb?app=1").with_query("code=abc&state=xyz"),
            "https://c/cb?app=1&code=abc&state=xyz"
        );
        assert_eq!(
            redirect("https://c/cb?").with_query("code=a"),
            "https://c/cb?code=a"
        );
        assert_eq!(
            redirect("https://c/cb?a=1&").with_query("code=a"),
            "https://c/cb?a=1&code=a"
        );
        assert_eq!(
            redirect("https://c/cb?app=1").with_query(""),
            "https://c/cb?app=1"
        );
        // Unsafe bytes never create a fragment or invalid URI.
        let out = redirect("https://c/cb").with_query("state=a#b c%zz%41é");
        assert_eq!(out, "https://c/cb?state=a%23b%20c%25zz%41%C3%A9");
        assert!(RedirectUri::parse(&out).is_ok());
    }

    // spec: SEC-12
    #[test]
    fn dangerous_schemes_rejected() {
        for s in [
            "javascript:alert(1)",
            "JavaScript:alert(1)",
            "data:text/html,x",
            "file:///etc/passwd",
            "myapp://cb",
            "ftp://h/cb",
            "ws://127.0.0.1/cb",
        ] {
            assert_eq!(RedirectUri::parse(s), Err(UriError::ForbiddenScheme), "{s}");
            assert_eq!(
                ResourceUri::parse(s, ALLOW),
                Err(UriError::ForbiddenScheme),
                "{s}"
            );
            assert_eq!(
                Issuer::parse(s, ALLOW),
                Err(UriError::ForbiddenScheme),
                "{s}"
            );
        }
        // Generic syntax: no authority / empty host.
        assert_eq!(parse_uri("javascript:alert(1)"), Err(UriError::NotAbsolute));
        assert_eq!(parse_uri("file:///etc/passwd"), Err(UriError::Host));
    }

    // spec: SEC-12
    #[test]
    fn generic_syntax_rejections() {
        let cases: &[(&str, UriError)] = &[
            ("https://h /x", UriError::Syntax),
            (" https://h", UriError::Syntax),
            ("https://h\t", UriError::Syntax),
            ("https://h/\u{7f}", UriError::Syntax),
            ("https://h/é", UriError::Syntax),
            ("https://h\\@evil/", UriError::Syntax),
            ("https://h/a\\b", UriError::Syntax),
            ("https://h/%", UriError::Syntax),
            ("https://h/%4", UriError::Syntax),
            ("https://h/%zz", UriError::Syntax),
            ("https://h/<x>", UriError::Syntax),
            ("https://h/[x]", UriError::Syntax),
            ("https://h/x#a#b", UriError::Syntax),
            ("1https://h", UriError::NotAbsolute),
            ("https://", UriError::Host),
            ("https:///x", UriError::Host),
            ("https://:443/x", UriError::Host),
            ("https://h:/x", UriError::Port),
            ("https://h:x/", UriError::Port),
            ("https://h:65536", UriError::Port),
            ("https://h:99999999999999999999", UriError::Port),
            ("https://h:1:2", UriError::Port),
            ("https://user@h/", UriError::Userinfo),
            ("https://user:pw@h/", UriError::Userinfo),
            ("https://@h/", UriError::Userinfo),
            ("https://[::1%25eth0]/", UriError::Host),
            ("https://[v1.x]/", UriError::Host),
            ("https://[]/", UriError::Host),
            ("https://[::1/", UriError::Host),
            ("https://[::1]x/", UriError::Host),
            ("https://h]/", UriError::Host),
        ];
        for (s, e) in cases {
            assert_eq!(parse_uri(s), Err(*e), "{s:?}");
        }
        // An identifier leaves room for its well-known URLs (found by the `uri` fuzz target).
        let near = format!("https://h/{}", "a".repeat(MAX_IDENTIFIER_LEN));
        assert_eq!(
            ResourceUri::parse(&near, HttpPolicy::HttpsOnly),
            Err(UriError::TooLong)
        );
        assert_eq!(
            Issuer::parse(&near, HttpPolicy::HttpsOnly),
            Err(UriError::TooLong)
        );
        let fits = format!("https://h/{}", "a".repeat(MAX_IDENTIFIER_LEN - 10));
        let r = ResourceUri::parse(&fits, HttpPolicy::HttpsOnly).unwrap();
        let prm = well_known_insert(r.as_str(), "oauth-protected-resource").unwrap();
        assert!(parse_uri(&prm).is_ok());
        let long = format!("https://h/{}", "a".repeat(MAX_URI_LEN));
        assert_eq!(parse_uri(&long), Err(UriError::TooLong));
        assert_eq!(RedirectUri::parse(&long), Err(UriError::TooLong));
        let exact = format!("https://h/{}", "a".repeat(MAX_URI_LEN - 10));
        assert!(parse_uri(&exact).is_ok());
        assert_eq!(
            parse_uri("HTTPS://H.x:8443/a%2Fb;c=d?q=1/2?3#f/?"),
            Ok(UriParts {
                scheme: "HTTPS",
                host: "H.x",
                port: Some(8443),
                path: "/a%2Fb;c=d",
                query: Some("q=1/2?3"),
                fragment: Some("f/?"),
            })
        );
        assert_eq!(
            parse_uri("http://[::ffff:127.0.0.1]:0?#")
                .map(|p| (p.host, p.port, p.path, p.query, p.fragment)),
            Ok(("[::ffff:127.0.0.1]", Some(0), "", Some(""), Some("")))
        );
    }

    // spec: AZ-22, GEN-6
    #[test]
    fn loopback_hosts() {
        for h in [
            "127.0.0.1",
            "127.1.2.3",
            "127.255.255.255",
            "localhost",
            "LocalHost",
            "[::1]",
        ] {
            assert!(is_loopback_host(h), "{h}");
        }
        for h in [
            "128.0.0.1",
            "127.0.0",
            "127.0.0.1.1",
            "127.0.0.256",
            "127.00.0.1",
            "127.1",
            "localhost.",
            "localhost.example",
            "[::2]",
            "[0::1]",
            "",
            "127.0.0.1:80",
        ] {
            assert!(!is_loopback_host(h), "{h}");
        }
    }

    // spec: PRM-4
    #[test]
    fn protected_resource_metadata_url() {
        let prm = "oauth-protected-resource";
        assert_eq!(
            well_known_insert("https://h/mcp", prm),
            Ok("https://h/.well-known/oauth-protected-resource/mcp".into())
        );
        assert_eq!(
            well_known_insert("https://h", prm),
            Ok("https://h/.well-known/oauth-protected-resource".into())
        );
        assert_eq!(
            well_known_insert("https://h/", prm),
            Ok("https://h/.well-known/oauth-protected-resource".into())
        );
        assert_eq!(
            well_known_insert("https://h:8443/a/b/", prm),
            Ok("https://h:8443/.well-known/oauth-protected-resource/a/b".into())
        );
        assert_eq!(
            well_known_insert("https://h/mcp?t=1", prm),
            Ok("https://h/.well-known/oauth-protected-resource/mcp?t=1".into())
        );
        assert_eq!(
            well_known_root("https://h:8443/mcp?t=1", prm),
            Ok("https://h:8443/.well-known/oauth-protected-resource".into())
        );
        assert_eq!(
            well_known_insert("https://h/mcp#f", prm),
            Err(UriError::Fragment)
        );
        assert_eq!(well_known_insert("h/mcp", prm), Err(UriError::NotAbsolute));
        assert_eq!(
            well_known_insert("ftp://h/mcp", prm),
            Err(UriError::ForbiddenScheme)
        );
        assert_eq!(
            well_known_insert("https://h/mcp", ""),
            Err(UriError::Syntax)
        );
        assert_eq!(
            well_known_insert("https://h/mcp", "a/b"),
            Err(UriError::Syntax)
        );
        assert_eq!(
            well_known_insert("https://h/mcp", "a#b"),
            Err(UriError::Syntax)
        );
    }

    // spec: DISC-7
    #[test]
    fn authorization_server_metadata_urls() {
        let asm = "oauth-authorization-server";
        assert_eq!(
            well_known_insert("https://as/t1", asm),
            Ok("https://as/.well-known/oauth-authorization-server/t1".into())
        );
        assert_eq!(
            well_known_insert("https://as", asm),
            Ok("https://as/.well-known/oauth-authorization-server".into())
        );
        assert_eq!(
            well_known_insert("https://as/t1/", asm),
            Ok("https://as/.well-known/oauth-authorization-server/t1".into())
        );
        let oidc = "openid-configuration";
        assert_eq!(
            well_known_append("https://as/t1", oidc),
            Ok("https://as/t1/.well-known/openid-configuration".into())
        );
        assert_eq!(
            well_known_append("https://as/t1/", oidc),
            Ok("https://as/t1/.well-known/openid-configuration".into())
        );
        assert_eq!(
            well_known_append("https://as", oidc),
            Ok("https://as/.well-known/openid-configuration".into())
        );
        assert_eq!(
            well_known_append("https://as/", oidc),
            Ok("https://as/.well-known/openid-configuration".into())
        );
        assert_eq!(
            well_known_root("https://as:9000/t1", asm),
            Ok("https://as:9000/.well-known/oauth-authorization-server".into())
        );
        // Issuers are kept exactly as given and compared as exact strings.
        let a = Issuer::parse("https://as/t1", STRICT);
        let b = Issuer::parse("https://as/t1/", STRICT);
        let c = Issuer::parse("https://AS/t1", STRICT);
        assert!(a.is_ok() && b.is_ok() && c.is_ok());
        assert_ne!(a, b);
        assert_ne!(a, c);
        assert_eq!(c.as_ref().map(Issuer::as_str), Ok("https://AS/t1"));
        assert_eq!(
            Issuer::parse("https://as/t1?x=1", STRICT),
            Err(UriError::Query)
        );
        assert_eq!(
            Issuer::parse("https://as/t1?", STRICT),
            Err(UriError::Query)
        );
        assert_eq!(
            Issuer::parse("https://as/t1#x", STRICT),
            Err(UriError::Fragment)
        );
        assert_eq!(
            a.as_ref()
                .ok()
                .and_then(|a| serde_json::to_string(a).ok())
                .as_deref(),
            Some("\"https://as/t1\"")
        );
    }

    // spec: GEN-6, PF-8
    #[test]
    fn http_policy() {
        for policy in [STRICT, ALLOW] {
            assert_eq!(
                ResourceUri::parse("http://mcp.example.com/mcp", policy),
                Err(UriError::InsecureScheme)
            );
            assert_eq!(
                Issuer::parse("http://as.example.com", policy),
                Err(UriError::InsecureScheme)
            );
            assert_eq!(
                ResourceUri::parse("http://127.1/mcp", policy),
                Err(UriError::InsecureScheme)
            );
        }
        for s in [
            "http://127.0.0.1:8080/mcp",
            "http://[::1]/mcp",
            "http://localhost:3000",
        ] {
            assert_eq!(
                ResourceUri::parse(s, STRICT),
                Err(UriError::InsecureScheme),
                "{s}"
            );
            assert_eq!(
                Issuer::parse(s, STRICT),
                Err(UriError::InsecureScheme),
                "{s}"
            );
            assert!(ResourceUri::parse(s, ALLOW).is_ok(), "{s}");
            assert!(Issuer::parse(s, ALLOW).is_ok(), "{s}");
            // Redirect URIs: loopback http allowed regardless of policy.
            assert!(RedirectUri::parse(s).is_ok(), "{s}");
        }
        assert_eq!(HttpPolicy::default(), STRICT);
        assert!(ResourceUri::parse("https://mcp.example.com/mcp", STRICT).is_ok());
    }

    // spec: GEN-6, PF-8
    #[test]
    fn the_transport_policy_permits_https_and_only_loopback_http() {
        for url in ["https://as.example/token", "https://127.0.0.1:8443/mcp"] {
            assert!(STRICT.permits(url) && ALLOW.permits(url), "{url}");
        }
        for url in [
            "http://127.0.0.1:1/mcp",
            "http://localhost/x",
            "http://[::1]:9/",
        ] {
            assert!(!STRICT.permits(url) && ALLOW.permits(url), "{url}");
        }
        for url in [
            "http://as.example/token",
            "http://127.1/",
            "ftp://127.0.0.1/",
            "https://as.example/#f",
            "not a url",
        ] {
            assert!(!STRICT.permits(url) && !ALLOW.permits(url), "{url}");
        }
    }

    // ---------------------------------------------------------------- proptests

    /// Flips ASCII letters of `s` to uppercase according to the bits of `mask`.
    fn random_case(s: &str, mask: u64) -> String {
        s.chars()
            .enumerate()
            .map(|(i, c)| {
                if (mask >> (i % 64)) & 1 == 1 {
                    c.to_ascii_uppercase()
                } else {
                    c
                }
            })
            .collect()
    }

    /// A valid resource URI: (random-case input, same URI with lowercase
    /// scheme and host).
    fn resource_input() -> impl Strategy<Value = (String, String)> {
        let host = prop_oneof![
            "[a-z][a-z0-9-]{0,8}(\\.[a-z0-9]{1,6}){0,2}",
            Just("127.0.0.1".to_owned()),
            Just("localhost".to_owned()),
            Just("[::1]".to_owned()),
            Just("[2001:db8::a:b]".to_owned()),
            "[a-z]{1,5}%[0-9A-Fa-f]{2}",
        ];
        let seg = "[a-zA-Z0-9._~!$&'()*+,;=:@-]{0,6}(%[0-9A-Fa-f]{2})?";
        let path = (prop::collection::vec(seg, 0..4), any::<bool>()).prop_map(|(segs, slash)| {
            let mut p: String = segs.iter().map(|s| format!("/{s}")).collect();
            if slash {
                p.push('/');
            }
            p
        });
        let port = prop_oneof![
            Just(None),
            Just(Some("default".to_owned())),
            any::<u16>().prop_map(|p| Some(p.to_string())),
            (0u16..2000).prop_map(|p| Some(format!("{p:05}"))),
        ];
        let query = proptest::option::of("[a-zA-Z0-9=&/?:@]{0,8}(%[0-9A-F]{2})?");
        (
            any::<bool>(),
            host,
            port,
            path,
            query,
            any::<u64>(),
            any::<u64>(),
        )
            .prop_map(|(https, host, port, path, query, m1, m2)| {
                let scheme = if https || !is_loopback_host(&host) {
                    "https"
                } else {
                    "http"
                };
                let mut tail = String::new();
                if let Some(p) = port {
                    tail.push(':');
                    if p == "default" {
                        tail.push_str(if scheme == "https" { "443" } else { "80" });
                    } else {
                        tail.push_str(&p);
                    }
                }
                tail.push_str(&path);
                if let Some(q) = query {
                    tail.push('?');
                    tail.push_str(&q);
                }
                let lower = format!("{scheme}://{host}{tail}");
                let mixed = format!(
                    "{}://{}{}",
                    random_case(scheme, m1),
                    random_case(&host, m2),
                    tail
                );
                (mixed, lower)
            })
    }

    /// A small space of valid redirect URIs, so that matches actually occur.
    const RD_ORIGINS: [(&str, &str); 6] = [
        ("https", "app.example"),
        ("https", "App.example"),
        ("http", "127.0.0.1"),
        ("http", "[::1]"),
        ("http", "localhost"),
        ("HTTP", "127.0.0.1"),
    ];
    const RD_PORTS: [Option<&str>; 5] =
        [None, Some("80"), Some("443"), Some("3000"), Some("49152")];
    const RD_PATHS: [&str; 4] = ["/cb", "/cb/", "/CB", ""];
    const RD_QUERIES: [Option<&str>; 3] = [None, Some("x=1"), Some("")];

    fn build_redirect(idx: (usize, usize, usize, usize)) -> String {
        let (o, p, pa, q) = idx;
        let (scheme, host) = RD_ORIGINS[o % RD_ORIGINS.len()];
        let mut s = format!("{scheme}://{host}");
        if let Some(port) = RD_PORTS[p % RD_PORTS.len()] {
            s.push(':');
            s.push_str(port);
        }
        s.push_str(RD_PATHS[pa % RD_PATHS.len()]);
        if let Some(query) = RD_QUERIES[q % RD_QUERIES.len()] {
            s.push('?');
            s.push_str(query);
        }
        s
    }

    /// `s` with its port removed (test oracle, built from parse_uri).
    fn strip_port(s: &str) -> String {
        let p = parse_uri(s).unwrap_or_else(|e| panic!("{s:?}: {e:?}"));
        let mut out = format!("{}://{}{}", p.scheme, p.host, p.path);
        if let Some(q) = p.query {
            out.push('?');
            out.push_str(q);
        }
        out
    }

    proptest! {
        // spec: SEC-12, GEN-6
        #[test]
        fn prop_parsers_never_panic(s in any::<String>(), t in "[a-zA-Z0-9:/?#\\[\\]@%.~_!$&'()*+,;= \\\\-]{0,40}") {
            for input in [s.clone(), t.clone(), format!("https://{t}"), format!("http://{t}"), format!("http://127.0.0.1{t}")] {
                let _ = parse_uri(&input);
                let _ = is_loopback_host(&input);
                for policy in [STRICT, ALLOW] {
                    if let Ok(r) = ResourceUri::parse(&input, policy) {
                        let _ = (r.origin(), r.path(), r.query());
                    }
                    let _ = Issuer::parse(&input, policy);
                }
                if let Ok(r) = RedirectUri::parse(&input) {
                    let _ = r.is_loopback();
                    let _ = r.with_query(&s);
                    prop_assert!(r.matches(&r));
                    prop_assert!(RedirectUri::parse(&r.with_query(&t)).is_ok());
                }
                let _ = well_known_insert(&input, &t);
                let _ = well_known_append(&input, "openid-configuration");
                let _ = well_known_root(&input, &s);
            }
        }

        // spec: RES-6, RES-7, RES-4
        #[test]
        fn prop_canonicalization_is_idempotent((mixed, _lower) in resource_input()) {
            let first = ResourceUri::parse(&mixed, ALLOW);
            prop_assert!(first.is_ok(), "{mixed:?}: {first:?}");
            let first = first.unwrap_or_else(|_| unreachable!());
            let second = ResourceUri::parse(first.as_str(), ALLOW);
            prop_assert_eq!(second.as_ref(), Ok(&first));
            if first.as_str().starts_with("https:") {
                prop_assert_eq!(ResourceUri::parse(&mixed, STRICT), Ok(first));
            }
        }

        // spec: RES-6
        #[test]
        fn prop_scheme_and_host_case_insensitive((mixed, lower) in resource_input()) {
            let a = ResourceUri::parse(&mixed, ALLOW);
            let b = ResourceUri::parse(&lower, ALLOW);
            prop_assert!(a.is_ok(), "{mixed:?}: {a:?}");
            prop_assert_eq!(a, b);
        }

        // spec: AZ-3, AZ-22
        #[test]
        fn prop_redirect_matching(
            a in (0usize..6, 0usize..5, 0usize..4, 0usize..3),
            keep in (any::<bool>(), any::<bool>(), any::<bool>(), any::<bool>()),
            other in (0usize..6, 0usize..5, 0usize..4, 0usize..3),
        ) {
            let b = (
                if keep.0 { a.0 } else { other.0 },
                if keep.1 { a.1 } else { other.1 },
                if keep.2 { a.2 } else { other.2 },
                if keep.3 { a.3 } else { other.3 },
            );
            let (sa, sb) = (build_redirect(a), build_redirect(b));
            let ra = RedirectUri::parse(&sa);
            let rb = RedirectUri::parse(&sb);
            prop_assert!(ra.is_ok() && rb.is_ok(), "{sa:?} {sb:?}");
            let (ra, rb) = (ra.unwrap_or_else(|_| unreachable!()), rb.unwrap_or_else(|_| unreachable!()));
            prop_assert!(ra.matches(&ra));
            let m = ra.matches(&rb);
            prop_assert_eq!(m, rb.matches(&ra));
            if ra.is_loopback() && rb.is_loopback() {
                prop_assert_eq!(m, strip_port(&sa) == strip_port(&sb), "{} vs {}", sa, sb);
            } else {
                prop_assert_eq!(m, sa == sb, "{} vs {}", sa, sb);
            }
        }

        // spec: RES-7, RES-9
        #[test]
        fn prop_canonical_output_shape((mixed, _lower) in resource_input(), frag in proptest::option::of("[a-z]{0,4}")) {
            let r = ResourceUri::parse(&mixed, ALLOW);
            prop_assert!(r.is_ok(), "{mixed:?}: {r:?}");
            let r = r.unwrap_or_else(|_| unreachable!());
            let s = r.as_str();
            prop_assert!(!s.contains('#'));
            let p = parse_uri(s);
            prop_assert!(p.is_ok());
            let p = p.unwrap_or_else(|_| unreachable!());
            prop_assert_eq!(p.scheme, p.scheme.to_ascii_lowercase());
            prop_assert_eq!(p.host, p.host.to_ascii_lowercase());
            prop_assert_ne!(p.path, "/");
            prop_assert_ne!(s, format!("{}/", r.origin()));
            prop_assert_eq!(format!("{}{}{}", r.origin(), r.path(), r.query().map(|q| format!("?{q}")).unwrap_or_default()), s);
            if let Some(f) = frag {
                prop_assert_eq!(ResourceUri::parse(&format!("{mixed}#{f}"), ALLOW), Err(UriError::Fragment));
            }
        }
    }

    // spec: DCR-10, DCR-11
    #[test]
    fn a_redirect_host_is_one_host_name_or_ip_address() {
        let long_label = format!("https://{}.example/cb", "a".repeat(64));
        for bad in [
            "https://*.example.com/cb",
            "https://*/cb",
            "https://exa%2Ample.com/cb",
            "https://a!b.example/cb",
            "https://a,b.example/cb",
            "https://a$b.example/cb",
            "https://a_b.example/cb",
            "https://a~b.example/cb",
            "https://a..example/cb",
            "https://.example/cb",
            "https://example.com./cb",
            "https://-a.example/cb",
            "https://a-.example/cb",
            "https://0x7f.0.0.1/cb",
            "https://example.0x7f/cb",
            "https://1.2.3/cb",
            "https://256.1.1.1/cb",
            "https://example.123/cb",
            long_label.as_str(),
        ] {
            assert_eq!(RedirectUri::parse(bad), Err(UriError::Host), "{bad}");
            let registration = crate::server::ClientMetadata {
                redirect_uris: vec![bad.to_owned()],
                ..crate::server::ClientMetadata::default()
            };
            assert_eq!(
                registration
                    .validate(&crate::server::Limits::default())
                    .map(|_| ()),
                Err(crate::Rejection::RedirectUriInvalid),
                "{bad}"
            );
        }
        for good in [
            "https://app.example.com/cb",
            "https://APP.Example.COM/cb",
            "https://xn--bcher-kva.example/cb",
            "https://a-b.example/cb",
            "https://123.example/cb",
            "https://app/cb",
            "https://192.0.2.1/cb",
            "https://[2001:db8::1]/cb",
            "http://127.0.0.1:8080/cb",
            "http://localhost/cb",
            "http://[::1]:9/cb",
        ] {
            assert!(RedirectUri::parse(good).is_ok(), "{good}");
        }
    }
}
