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
/// pass.
pub fn query_values<const N: usize>(query: &str, names: [&str; N]) -> [Option<String>; N] {
    let mut values = [const { None }; N];
    for (k, v) in form_urlencoded::parse(query.as_bytes()) {
        if let Some(i) = names.iter().position(|n| *n == k) {
            values[i] = Some(v.into_owned());
        }
    }
    values
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_value_is_query_map_s_entry() {
        for query in ["a=1&b=2&a=3", "a=%20x&c", "", "b=&a", "a+b=c%3D"] {
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
