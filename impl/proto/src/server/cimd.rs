//! Client ID Metadata Documents (MCP 2025-11-25, SEP-991) at the authorization server: a
//! client whose `client_id` is an https URL; the server fetches the JSON document at that URL
//! and takes the client's metadata (name, redirect URIs, grant types) from it alone.
//!
//! The core does no I/O. [`AuthorizationServer::client_document_needed`] says whether an
//! authorization request needs the document fetched (or fetched again), as a
//! [`DocumentFetch`] the driver performs; the driver hands the answer to
//! [`AuthorizationServer::client_document_arrived`], which validates and caches it, and then
//! the authorization request runs against the cache. Every decision is here: which URLs are
//! fetched at all (the SSRF policy on the URL, and [`AuthorizationServer::may_connect_to`] for
//! the resolved addresses), the size and time bounds, the validation, and how long a document
//! stays fresh (`Cache-Control: max-age`, bounded by [`CimdLimits`]); a stale document is
//! revalidated with `If-None-Match` when it came with an `ETag`.

use std::net::IpAddr;

use serde::Deserialize;

use super::{AuthorizationServer, ClientMetadata, Limits, RegisteredClient, TokenAuthMethod};
use crate::address::{HostClass, host_class, ip_class};
use crate::error::Rejection;
use crate::http::{HttpRequest, HttpResponse, Method};
use crate::mutations::mutated;
use crate::time::UnixTime;
use crate::types::ClientId;
use crate::uri::parse_uri;

/// Longest client ID URL.
pub const CLIENT_ID_URL_LEN_MAX: usize = 1024;

/// Bounds on the fetching and caching of client metadata documents.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct CimdLimits {
    /// Largest document, in bytes; default 5 KiB (SEP-991 suggests 5 KB).
    pub document_len_max: usize,
    /// How long one fetch may take, in seconds; default 5.
    pub fetch_timeout_secs: u64,
    /// Shortest freshness, in seconds, whatever the headers say (also when they forbid
    /// caching, and when they say nothing); default 60. At least 1 is used.
    pub fresh_min_secs: u64,
    /// Longest freshness, in seconds, whatever the headers say; default 24 h.
    pub fresh_max_secs: u64,
    /// Documents cached at most; default 1000.
    pub entries: usize,
}

impl Default for CimdLimits {
    fn default() -> Self {
        Self {
            document_len_max: 5 * 1024,
            fetch_timeout_secs: 5,
            fresh_min_secs: 60,
            fresh_max_secs: 24 * 3600,
            entries: 1000,
        }
    }
}

/// A client metadata document in the cache.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct CachedDocument {
    /// The client as the document describes it.
    pub client: RegisteredClient,
    /// When it was fetched or last revalidated.
    pub fetched_at: UnixTime,
    /// Fresh until then; after it, the next authorization request fetches it again.
    pub fresh_until: UnixTime,
    /// The `ETag` it came with, sent back in `If-None-Match` when it is stale.
    pub etag: Option<String>,
}

/// A fetch the driver must perform before the authorization request can be answered: send
/// [`DocumentFetch::request`] (no redirects followed, at most
/// [`DocumentFetch::len_max`] bytes of body read, within [`DocumentFetch::timeout_secs`],
/// only to addresses [`AuthorizationServer::may_connect_to`] accepts), then call
/// [`AuthorizationServer::client_document_arrived`] with the answer.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct DocumentFetch {
    /// The client ID URL.
    pub client_id: ClientId,
    /// The request to send: `GET` the URL, `Accept: application/json`, and `If-None-Match`
    /// when a stale cached document has an `ETag`.
    pub request: HttpRequest,
    /// Read at most this many body bytes; a longer body is [`FetchFailure::TooLarge`].
    pub len_max: usize,
    /// Give up after this many seconds.
    pub timeout_secs: u64,
}

/// Why the driver got no answer to a [`DocumentFetch`].
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum FetchFailure {
    /// The body was longer than [`DocumentFetch::len_max`].
    TooLarge,
    /// The host resolved to an address [`AuthorizationServer::may_connect_to`] refuses.
    AddressRefused,
    /// No answer: DNS, connection, TLS, timeout (the text is for the log only).
    Transport(String),
}

/// The document as it arrives: the metadata of RFC 7591 §2 plus `client_id`, and the
/// members a document must not have.
#[derive(Deserialize)]
struct Document {
    client_id: String,
    #[serde(default)]
    client_secret: Option<serde_json::Value>,
    #[serde(default)]
    client_secret_expires_at: Option<serde_json::Value>,
    #[serde(flatten)]
    metadata: ClientMetadata,
}

/// Is `client_id` a client ID URL (rather than an id this server minted, which never has
/// `://`)?
pub fn looks_like_url(client_id: &str) -> bool {
    client_id.contains("://")
}

/// Check a client ID URL: https (or, with `allow_loopback`, http to a loopback host), a path
/// other than `/` without dot segments, no fragment, no credentials, at most
/// [`CLIENT_ID_URL_LEN_MAX`] bytes; and a host this server may fetch from: never a
/// private-network, link-local or otherwise blocked address, a loopback host only with
/// `allow_loopback`.
// spec: CIMD-3, CIMD-4
pub fn check_client_id_url(url: &str, allow_loopback: bool) -> Result<(), Rejection> {
    if url.len() > CLIENT_ID_URL_LEN_MAX {
        return Err(Rejection::ClientIdUrlInvalid);
    }
    let p = parse_uri(url).map_err(|_| Rejection::ClientIdUrlInvalid)?;
    if p.fragment.is_some() || p.path.is_empty() || p.path == "/" {
        return Err(Rejection::ClientIdUrlInvalid);
    }
    if p.path.split('/').any(|s| s == "." || s == "..") {
        return Err(Rejection::ClientIdUrlInvalid);
    }
    let class = host_class(p.host);
    let scheme_ok = match p.scheme {
        "https" => true,
        "http" => allow_loopback && class == HostClass::Loopback,
        _ => false,
    };
    if !scheme_ok {
        return Err(Rejection::ClientIdUrlInvalid);
    }
    match class {
        HostClass::Public => Ok(()),
        HostClass::Loopback if allow_loopback => Ok(()),
        _ => Err(Rejection::ClientIdUrlRefused),
    }
}

/// May a fetch of a client metadata document connect to `ip`? Public addresses yes; loopback
/// only with `allow_loopback` (the development switch); private-network, link-local and other
/// blocked addresses never. Drivers apply it to every address a host name resolves to.
// spec: CIMD-4
pub fn may_connect(ip: IpAddr, allow_loopback: bool) -> bool {
    match ip_class(ip) {
        HostClass::Public => true,
        HostClass::Loopback => allow_loopback,
        HostClass::Private | HostClass::Blocked => false,
    }
}

/// Parse and validate a client metadata document fetched from `url`: `client_id` equal to
/// `url` byte for byte, `client_name` and `redirect_uris` present, no client secret,
/// `token_endpoint_auth_method` `none` (the default here: a document cannot carry a secret,
/// and `private_key_jwt` is not supported), and the rules of registration for the rest
/// (redirect URIs, grant and response types, sizes).
// spec: CIMD-3
pub fn validate_document(
    url: &str,
    body: &[u8],
    len_max: usize,
    limits: &Limits,
) -> Result<RegisteredClient, Rejection> {
    validate_document_checked(url, body, len_max, limits, true)
}

/// [`validate_document`], with the `client_id` check a switch only for the model checker's
/// mutation `skip_document_client_id_check` (always on otherwise).
// spec: CIMD-3
fn validate_document_checked(
    url: &str,
    body: &[u8],
    len_max: usize,
    limits: &Limits,
    check_client_id: bool,
) -> Result<RegisteredClient, Rejection> {
    if body.len() > len_max {
        return Err(Rejection::ClientDocumentTooLarge);
    }
    let doc: Document =
        serde_json::from_slice(body).map_err(|_| Rejection::ClientDocumentInvalid)?;
    if doc.client_id != url && check_client_id {
        return Err(Rejection::ClientDocumentIdMismatch);
    }
    if doc.client_secret.is_some() || doc.client_secret_expires_at.is_some() {
        return Err(Rejection::ClientDocumentInvalid);
    }
    let mut metadata = doc.metadata;
    if metadata.client_name.as_deref().is_none_or(str::is_empty) {
        return Err(Rejection::ClientDocumentInvalid);
    }
    if metadata.redirect_uris.is_empty() {
        return Err(Rejection::ClientDocumentInvalid);
    }
    match metadata.token_endpoint_auth_method.as_deref() {
        None | Some("none") => metadata.token_endpoint_auth_method = Some("none".into()),
        Some(_) => return Err(Rejection::ClientDocumentAuthMethod),
    }
    let client = metadata.validate(limits)?;
    debug_assert_eq!(client.auth_method, TokenAuthMethod::None);
    Ok(client)
}

/// Seconds a document stays fresh by its `Cache-Control` header: `max-age`, or the minimum
/// when the header is absent or says `no-store`/`no-cache`; always within
/// [`CimdLimits::fresh_min_secs`] (at least 1) and [`CimdLimits::fresh_max_secs`].
// spec: CIMD-5
pub fn freshness(response: &HttpResponse, limits: &CimdLimits) -> u64 {
    let min = limits.fresh_min_secs.max(1);
    let max = limits.fresh_max_secs.max(min);
    let mut max_age: Option<u64> = None;
    let mut forbid = false;
    for value in response.header_values("cache-control") {
        for directive in value.split(',') {
            let directive = directive.trim();
            let (name, arg) = match directive.split_once('=') {
                Some((n, a)) => (n.trim(), Some(a.trim().trim_matches('"'))),
                None => (directive, None),
            };
            if name.eq_ignore_ascii_case("no-store") || name.eq_ignore_ascii_case("no-cache") {
                forbid = true;
            } else if name.eq_ignore_ascii_case("max-age") {
                // Digits only; a huge value saturates (then the maximum applies).
                max_age = arg
                    .filter(|a| !a.is_empty() && a.bytes().all(|b| b.is_ascii_digit()))
                    .map(|a| a.parse::<u64>().unwrap_or(u64::MAX));
            }
        }
    }
    if forbid {
        return min;
    }
    max_age.unwrap_or(min).clamp(min, max)
}

impl AuthorizationServer {
    /// Client metadata documents in the cache, by client ID URL.
    pub fn client_documents(&self) -> impl Iterator<Item = (&ClientId, &CachedDocument)> {
        self.documents.iter()
    }

    /// Does an authorization request for `client_id` need its metadata document fetched
    /// first? `Ok(None)`: no (not a client ID URL, the feature is off, or the cached document
    /// is fresh); `Ok(Some(fetch))`: fetch it (again); `Err`: the URL is refused (shown to the
    /// user, never redirected).
    // spec: CIMD-3, CIMD-4, CIMD-5
    pub fn client_document_needed(
        &self,
        now: UnixTime,
        client_id: &str,
    ) -> Result<Option<DocumentFetch>, Rejection> {
        if !self.config.client_id_metadata_documents || !looks_like_url(client_id) {
            return Ok(None);
        }
        check_client_id_url(client_id, self.config.cimd_allow_loopback)?;
        let id = ClientId(client_id.to_owned());
        let cached = self.documents.get(&id);
        if cached.is_some_and(|d| now < d.fresh_until) {
            return Ok(None);
        }
        let mut request =
            HttpRequest::new(Method::Get, client_id).header("accept", "application/json");
        if let Some(etag) = cached.and_then(|d| d.etag.as_deref()) {
            request = request.header("if-none-match", etag);
        }
        Ok(Some(DocumentFetch {
            client_id: id,
            request,
            len_max: self.config.cimd.document_len_max,
            timeout_secs: self.config.cimd.fetch_timeout_secs,
        }))
    }

    /// May the driver connect to `ip` to fetch a client metadata document? Public addresses
    /// yes; loopback only under [`AsConfig::cimd_allow_loopback`](super::AsConfig::cimd_allow_loopback);
    /// private-network, link-local and other blocked addresses never.
    // spec: CIMD-4
    pub fn may_connect_to(&self, ip: IpAddr) -> bool {
        may_connect(ip, self.config.cimd_allow_loopback)
    }

    /// The answer to a [`DocumentFetch`]: a valid document (200, JSON) is cached for its
    /// freshness; a 304 to a revalidation keeps the cached document, fresh again; anything
    /// else (another status, a redirect, a failure, an invalid document) is the error shown to
    /// the user, and a cached document is dropped when the new answer is a refusal of it.
    // spec: CIMD-3, CIMD-4, CIMD-5
    pub fn client_document_arrived(
        &mut self,
        now: UnixTime,
        fetch: &DocumentFetch,
        answer: Result<HttpResponse, FetchFailure>,
    ) -> Result<(), Rejection> {
        let response = match answer {
            Ok(r) => r,
            Err(FetchFailure::TooLarge) => return Err(Rejection::ClientDocumentTooLarge),
            Err(FetchFailure::AddressRefused) => return Err(Rejection::ClientIdUrlRefused),
            Err(FetchFailure::Transport(_)) => return Err(Rejection::ClientDocumentUnavailable),
        };
        let limits = &self.config.cimd;
        let fresh_until = now.plus(freshness(&response, limits));
        let etag = response
            .header_value("etag")
            .filter(|e| e.len() <= 256 && !e.chars().any(char::is_control))
            .map(str::to_owned);
        match response.status {
            304 => {
                let revalidating = fetch.request.header_str("if-none-match").is_some();
                match self.documents.get_mut(&fetch.client_id) {
                    Some(doc) if revalidating => {
                        doc.fetched_at = now;
                        doc.fresh_until = fresh_until;
                        if etag.is_some() {
                            doc.etag = etag;
                        }
                        Ok(())
                    }
                    _ => Err(Rejection::ClientDocumentUnavailable),
                }
            }
            200 => {
                if !response
                    .header_value("content-type")
                    .and_then(|v| v.split(';').next())
                    .is_some_and(|m| m.trim().eq_ignore_ascii_case("application/json"))
                {
                    self.documents.remove(&fetch.client_id);
                    return Err(Rejection::ClientDocumentInvalid);
                }
                let client = match validate_document_checked(
                    fetch.client_id.as_str(),
                    &response.body,
                    limits.document_len_max,
                    &self.config.limits,
                    !mutated!(self.config, skip_document_client_id_check),
                ) {
                    Ok(c) => c,
                    Err(r) => {
                        self.documents.remove(&fetch.client_id);
                        return Err(r);
                    }
                };
                self.make_room_for_document(now, &fetch.client_id);
                self.documents.insert(
                    fetch.client_id.clone(),
                    CachedDocument {
                        client: RegisteredClient {
                            issued_at: now,
                            ..client
                        },
                        fetched_at: now,
                        fresh_until,
                        etag,
                    },
                );
                Ok(())
            }
            _ => Err(Rejection::ClientDocumentUnavailable),
        }
    }

    /// Keep the cache within [`CimdLimits::entries`]: stale documents go first, then the one
    /// that turns stale soonest.
    fn make_room_for_document(&mut self, now: UnixTime, incoming: &ClientId) {
        let cap = self.config.cimd.entries.max(1);
        if self.documents.contains_key(incoming) || self.documents.len() < cap {
            return;
        }
        self.documents.retain(|_, d| now < d.fresh_until);
        while self.documents.len() >= cap {
            let Some(oldest) = self
                .documents
                .iter()
                .min_by_key(|(_, d)| d.fresh_until)
                .map(|(k, _)| k.clone())
            else {
                break;
            };
            self.documents.remove(&oldest);
        }
    }

    /// The client a request names: a registered one, or (with client metadata documents on)
    /// the cached document of a client ID URL, fresh or not.
    pub(super) fn client_record(&self, client_id: &ClientId) -> Option<&RegisteredClient> {
        self.clients.get(client_id).map(|c| &**c).or_else(|| {
            if self.config.client_id_metadata_documents {
                self.documents.get(client_id).map(|d| &d.client)
            } else {
                None
            }
        })
    }

    /// The client an authorization request names: a registered one, or the fresh cached
    /// document of a client ID URL.
    pub(super) fn client_for_authorization(
        &self,
        now: UnixTime,
        client_id: &ClientId,
    ) -> Option<&RegisteredClient> {
        self.clients.get(client_id).map(|c| &**c).or_else(|| {
            if self.config.client_id_metadata_documents {
                self.documents
                    .get(client_id)
                    .filter(|d| now < d.fresh_until)
                    .map(|d| &d.client)
            } else {
                None
            }
        })
    }

    /// Is `client_id` a client ID URL this server accepts (feature on, URL acceptable)? Such
    /// a client is public: it authenticates at the token endpoint with its `client_id` alone,
    /// and PKCE and the code's binding to it do the rest.
    pub(super) fn is_document_client(&self, client_id: &str) -> bool {
        self.config.client_id_metadata_documents
            && looks_like_url(client_id)
            && check_client_id_url(client_id, self.config.cimd_allow_loopback).is_ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const URL: &str = "https://app.example.com/oauth/client.json";

    fn doc(extra: &str) -> Vec<u8> {
        format!(
            r#"{{"client_id":"{URL}","client_name":"App","redirect_uris":["http://127.0.0.1/cb"]{extra}}}"#
        )
        .into_bytes()
    }

    // spec: CIMD-3, CIMD-4
    #[test]
    fn client_id_urls_are_https_with_a_path_and_a_public_host() {
        assert_eq!(check_client_id_url(URL, false), Ok(()));
        for bad in [
            "https://app.example.com",
            "https://app.example.com/",
            "http://app.example.com/c",
            "https://app.example.com/c#f",
            "https://u:p@app.example.com/c",
            "https://app.example.com/a/../c",
            "https://app.example.com/./c",
            "ftp://app.example.com/c",
            "HTTPS://app.example.com/c",
        ] {
            assert_eq!(
                check_client_id_url(bad, true),
                Err(Rejection::ClientIdUrlInvalid),
                "{bad}"
            );
        }
        let long = format!(
            "https://app.example.com/{}",
            "a".repeat(CLIENT_ID_URL_LEN_MAX)
        );
        assert_eq!(
            check_client_id_url(&long, false),
            Err(Rejection::ClientIdUrlInvalid)
        );
        for refused in [
            "https://127.0.0.1/c",
            "https://localhost/c",
            "https://10.0.0.1/c",
            "https://192.168.1.1/c",
            "https://169.254.169.254/c",
            "https://[fe80::1]/c",
            "https://metadata.google.internal/c",
        ] {
            assert_eq!(
                check_client_id_url(refused, false),
                Err(Rejection::ClientIdUrlRefused),
                "{refused}"
            );
        }
        // The development switch lets loopback through (http too), nothing else.
        assert_eq!(check_client_id_url("http://127.0.0.1:8/c", true), Ok(()));
        assert_eq!(check_client_id_url("https://localhost/c", true), Ok(()));
        assert_eq!(
            check_client_id_url("https://10.0.0.1/c", true),
            Err(Rejection::ClientIdUrlRefused)
        );
        assert_eq!(
            check_client_id_url("http://127.0.0.1:8/c", false),
            Err(Rejection::ClientIdUrlInvalid)
        );
    }

    // spec: CIMD-3
    #[test]
    fn documents_are_validated() {
        let limits = Limits::default();
        let client = validate_document(URL, &doc(""), 5120, &limits).expect("valid");
        assert_eq!(client.auth_method, TokenAuthMethod::None);
        assert_eq!(client.client_name.as_deref(), Some("App"));
        let other = br#"{"client_id":"https://evil.example/c","client_name":"A","redirect_uris":["https://a.example/cb"]}"#;
        assert_eq!(
            validate_document(URL, other, 5120, &limits),
            Err(Rejection::ClientDocumentIdMismatch)
        );
        assert_eq!(
            validate_document(URL, &doc(""), 10, &limits),
            Err(Rejection::ClientDocumentTooLarge)
        );
        for (extra, want) in [
            (
                r#","token_endpoint_auth_method":"private_key_jwt""#,
                Rejection::ClientDocumentAuthMethod,
            ),
            (
                r#","token_endpoint_auth_method":"client_secret_basic""#,
                Rejection::ClientDocumentAuthMethod,
            ),
            (r#","client_secret":"s""#, Rejection::ClientDocumentInvalid),
            (
                r#","grant_types":["client_credentials"]"#,
                Rejection::GrantTypeUnsupported,
            ),
            (
                r#","response_types":["token"]"#,
                Rejection::ResponseTypeUnsupported,
            ),
        ] {
            assert_eq!(
                validate_document(URL, &doc(extra), 5120, &limits),
                Err(want),
                "{extra}"
            );
        }
        let no_name =
            format!(r#"{{"client_id":"{URL}","redirect_uris":["https://a.example/cb"]}}"#);
        assert_eq!(
            validate_document(URL, no_name.as_bytes(), 5120, &limits),
            Err(Rejection::ClientDocumentInvalid)
        );
        let no_redirects = format!(r#"{{"client_id":"{URL}","client_name":"A"}}"#);
        assert_eq!(
            validate_document(URL, no_redirects.as_bytes(), 5120, &limits),
            Err(Rejection::ClientDocumentInvalid)
        );
        assert_eq!(
            validate_document(URL, b"[1]", 5120, &limits),
            Err(Rejection::ClientDocumentInvalid)
        );
    }

    // spec: CIMD-4
    #[test]
    fn only_public_addresses_are_connected_to_unless_loopback_is_allowed() {
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        for public in ["93.184.216.34", "2606:2800:220:1::1"] {
            assert!(may_connect(ip(public), false), "{public}");
        }
        for loopback in ["127.0.0.1", "::1", "::ffff:127.0.0.1"] {
            assert!(!may_connect(ip(loopback), false), "{loopback}");
            assert!(may_connect(ip(loopback), true), "{loopback}");
        }
        for never in [
            "10.1.2.3",
            "172.16.0.1",
            "192.168.0.1",
            "169.254.169.254",
            "fe80::1",
            "0.0.0.0",
            "::ffff:10.0.0.1",
            "fc00::1",
        ] {
            assert!(!may_connect(ip(never), true), "{never}");
        }
    }

    // spec: CIMD-5
    #[test]
    fn freshness_follows_cache_control_within_bounds() {
        let limits = CimdLimits {
            fresh_min_secs: 10,
            fresh_max_secs: 100,
            ..CimdLimits::default()
        };
        let with = |v: &str| HttpResponse::new(200).header("cache-control", v);
        assert_eq!(freshness(&HttpResponse::new(200), &limits), 10);
        assert_eq!(freshness(&with("max-age=50"), &limits), 50);
        assert_eq!(freshness(&with("public, max-age=5"), &limits), 10);
        assert_eq!(
            freshness(&with("max-age=99999999999999999999"), &limits),
            100
        );
        assert_eq!(freshness(&with("max-age=50, no-cache"), &limits), 10);
        assert_eq!(freshness(&with("no-store"), &limits), 10);
        assert_eq!(freshness(&with("max-age=-1"), &limits), 10);
    }
}
