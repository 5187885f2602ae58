//! The URLs the model routes: an absolute URL split into origin, path and query, and a query or
//! form read into a map. Parsing is the core's ([`parse_uri`]).

use std::collections::BTreeMap;

use mcp_auth_proto::uri::parse_uri;

/// An absolute URL's origin (`scheme://host[:port]`, as [`UriParts::origin`] writes it), its
/// path (`/` when empty) and its query; `None` if it does not parse.
///
/// [`UriParts::origin`]: mcp_auth_proto::uri::UriParts::origin
pub fn split_url(url: &str) -> Option<(String, String, Option<String>)> {
    let parts = parse_uri(url).ok()?;
    let path = if parts.path.is_empty() {
        "/"
    } else {
        parts.path
    };
    Some((
        parts.origin(),
        path.to_owned(),
        parts.query.map(str::to_owned),
    ))
}

/// A query or form, decoded into a map (of a repeated name, the last value).
pub fn query_map(query: &str) -> BTreeMap<String, String> {
    form_urlencoded::parse(query.as_bytes())
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect()
}
