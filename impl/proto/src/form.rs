//! `application/x-www-form-urlencoded` parameters (query strings and token request bodies),
//! with the OAuth rules: a repeated parameter is an error, an empty value counts as absent
//! (OAuth 2.1 §3.2), unknown parameters are ignored.

use crate::error::Rejection;

/// Most parameters in one request.
pub const PARAMS_MAX: usize = 64;
/// Longest encoded form accepted.
pub const FORM_LEN_MAX: usize = 16 * 1024;

/// Decoded parameters, in the order they came (a handful per request: a list is cheaper to
/// build and to search than a map).
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct Params(Vec<(String, String)>);

impl Params {
    /// Decode a form or query string.
    pub fn decode(input: &[u8]) -> Result<Self, Rejection> {
        if input.len() > FORM_LEN_MAX {
            return Err(Rejection::TooLarge);
        }
        let mut pairs = Vec::new();
        for (count, (name, value)) in form_urlencoded::parse(input).enumerate() {
            if count >= PARAMS_MAX {
                return Err(Rejection::TooLarge);
            }
            pairs.push((name.into_owned(), value.into_owned()));
        }
        Ok(Self(pairs))
    }

    /// The parameter's value: `None` if absent or empty; an error if repeated.
    // spec: TOK-2, TOK-3
    pub fn one(&self, name: &str) -> Result<Option<&str>, Rejection> {
        let mut values = self.0.iter().filter(|(n, _)| n == name).map(|(_, v)| v);
        match (values.next(), values.next()) {
            (None, _) => Ok(None),
            (Some(v), None) => Ok((!v.is_empty()).then_some(v.as_str())),
            (Some(_), Some(_)) => Err(Rejection::DuplicateParameter),
        }
    }

    /// Is the parameter present at all (even empty)?
    pub fn contains(&self, name: &str) -> bool {
        self.0.iter().any(|(n, _)| n == name)
    }
}

/// Encode pairs as a form / query string.
pub fn encode<'a>(pairs: impl IntoIterator<Item = (&'a str, &'a str)>) -> String {
    let mut s = form_urlencoded::Serializer::new(String::new());
    for (k, v) in pairs {
        s.append_pair(k, v);
    }
    s.finish()
}

/// The `Authorization` value of HTTP Basic client authentication: id and secret are
/// form-encoded before the Basic encoding (RFC 6749 §2.3.1).
pub fn basic_authorization(id: &str, secret: &str) -> String {
    use base64::Engine as _;
    let enc = |s: &str| encode([("", s)]).trim_start_matches('=').to_owned();
    let basic =
        base64::engine::general_purpose::STANDARD.encode(format!("{}:{}", enc(id), enc(secret)));
    format!("Basic {basic}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    // spec: TOK-2, TOK-3
    #[test]
    fn repeated_is_an_error_and_empty_is_absent() {
        let p = Params::decode(b"a=1&a=2&b=&c=x%20y&d=+").unwrap();
        assert_eq!(p.one("a"), Err(Rejection::DuplicateParameter));
        assert_eq!(p.one("b"), Ok(None));
        assert_eq!(p.one("c"), Ok(Some("x y")));
        assert_eq!(p.one("d"), Ok(Some(" ")));
        assert_eq!(p.one("zz"), Ok(None));
    }

    proptest! {
        #[test]
        fn decode_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
            let _ = Params::decode(&bytes);
        }

        #[test]
        fn encode_decode_round_trip(pairs in proptest::collection::btree_map("[a-z_]{1,8}", "\\PC{1,20}", 0..10)) {
            let encoded = encode(pairs.iter().map(|(k, v)| (k.as_str(), v.as_str())));
            let p = Params::decode(encoded.as_bytes()).unwrap();
            for (k, v) in &pairs {
                prop_assert_eq!(p.one(k).unwrap(), Some(v.as_str()));
            }
        }
    }
}
