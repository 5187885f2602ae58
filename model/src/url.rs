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

/// One value of a query or form, as [`query_map`] would give it (of a repeated name, the
/// last), without building the map.
pub fn query_value(query: &str, name: &str) -> Option<String> {
    let [value] = query_values(query, [name]);
    value
}

/// Several values of a query or form (distinct names), as [`query_value`] gives each, in one
/// pass. Only the values asked for are decoded (the model's queries and forms carry long
/// percent-encoded values it mostly does not read); a name is decoded only if it is encoded.
pub fn query_values<const N: usize>(query: &str, names: [&str; N]) -> [Option<String>; N] {
    let mut values = [const { None }; N];
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
        let i = if name.contains(['%', '+']) {
            let name = decode(name);
            names.iter().position(|n| *n == name)
        } else {
            names.iter().position(|n| *n == name)
        };
        if let Some(i) = i {
            values[i] = Some(decode(value));
        }
    }
    values
}

/// A name or value of a form, decoded as [`form_urlencoded::parse`] does: `+` is a space,
/// `%` and two hex digits a byte (any other `%` stays), then UTF-8 with replacement.
fn decode(raw: &str) -> String {
    let raw = raw.as_bytes();
    let hex = |b: u8| char::from(b).to_digit(16);
    let mut out = Vec::with_capacity(raw.len());
    let mut i = 0;
    while i < raw.len() {
        let byte = match raw[i] {
            b'+' => b' ',
            b'%' => match (
                raw.get(i + 1).and_then(|&b| hex(b)),
                raw.get(i + 2).and_then(|&b| hex(b)),
            ) {
                (Some(hi), Some(lo)) => {
                    i += 2;
                    (hi * 16 + lo) as u8
                }
                _ => b'%',
            },
            b => b,
        };
        out.push(byte);
        i += 1;
    }
    String::from_utf8(out).unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_value_is_query_map_s_entry() {
        for query in [
            "a=1&b=2&a=3",
            "a=%20x&c",
            "",
            "b=&a",
            "a+b=c%3D",
            "&&a=1&&",
            "%61=x%2By&b=1=2",
            "a%2=%zz&a+b=+",
            "c=%E2%82%AC&c=%FF",
        ] {
            let map = query_map(query);
            for name in ["a", "b", "c", "a b", "d"] {
                assert_eq!(
                    query_value(query, name),
                    map.get(name).cloned(),
                    "{query} {name}"
                );
                // Distinct names (as every caller passes them).
                let other = if name == "b" { "c" } else { "b" };
                let [one, two] = query_values(query, [name, other]);
                assert_eq!(one, map.get(name).cloned(), "{query} {name}");
                assert_eq!(two, map.get(other).cloned(), "{query} {other}");
            }
        }
    }
}
