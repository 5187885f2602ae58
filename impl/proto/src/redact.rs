//! What of a URL, form or JSON document may be shown in logs, transcripts and error messages:
//! secrets and long random identifiers are shortened to their first characters and length
//! ([CLI-6](crate::requirements#CLI-6)), so that a log never carries a usable code, token or secret.

/// Parameters whose values are shown in full (they are URLs or short words, not secrets).
pub const PLAIN_PARAMS: &[&str] = &[
    "redirect_uri",
    "resource",
    "scope",
    "iss",
    "grant_type",
    "response_type",
    "code_challenge_method",
    "decision",
    "error",
    "error_description",
];

/// JSON fields whose values are secrets or long random identifiers.
pub const SECRET_FIELDS: &[&str] = &[
    "access_token",
    "refresh_token",
    "client_secret",
    "client_id",
    "id",
    "csrf",
    "jti",
];

/// Shorten a secret for display: its first 8 characters and its length (at most 16
/// characters are shown whole).
// spec: CLI-6
pub fn shorten(s: &str) -> String {
    if s.chars().count() <= 16 {
        s.to_owned()
    } else {
        let head: String = s.chars().take(8).collect();
        format!("{head}…({} chars)", s.chars().count())
    }
}

/// A form-encoded string with every value not in [`PLAIN_PARAMS`] shortened.
// spec: CLI-6
pub fn shorten_pairs(query: &str) -> String {
    form_urlencoded::parse(query.as_bytes())
        .map(|(k, v)| {
            if PLAIN_PARAMS.contains(&k.as_ref()) {
                format!("{k}={v}")
            } else {
                format!("{k}={}", shorten(&v))
            }
        })
        .collect::<Vec<_>>()
        .join("&")
}

/// A URL with every non-plain query value shortened.
// spec: CLI-6
pub fn shorten_url(url: &str) -> String {
    match url.split_once('?') {
        Some((base, query)) => format!("{base}?{}", shorten_pairs(query)),
        None => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // spec: CLI-6
    #[test]
    fn secrets_are_shortened_urls_are_not() {
        let url = "https://as.example/authorize?code=abcdefghijklmnopqrstuvwxyz&redirect_uri=http%3A%2F%2F127.0.0.1%2Fcb";
        let shown = shorten_url(url);
        assert!(shown.contains("code=abcdefgh…(26 chars)"), "{shown}");
        assert!(
            shown.contains("redirect_uri=http://127.0.0.1/cb"),
            "{shown}"
        );
        assert_eq!(shorten("short"), "short");
    }
}
