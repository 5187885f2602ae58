//! HTTP authentication challenges and Bearer credentials, without I/O.
//!
//! * [`parse_www_authenticate`] parses the `WWW-Authenticate` field values of
//!   a response into [`Challenge`]s (RFC 9110 §11.6.1, §5.6), and
//!   [`BearerChallenge::from_challenges`] picks out the Bearer challenge that
//!   MCP uses (RFC 6750 §3, RFC 9728 §5.1).
//! * [`BearerChallenge::to_header_value`] renders the resource server's
//!   challenge; its output always parses back to the sanitized values.
//! * [`parse_bearer_authorization`] extracts the access token from an
//!   `Authorization` request header (RFC 6750 §2.1).
//!
//! Every function is total: any input yields a value or an error, never a
//! panic, and the work done is bounded by [`MAX_HEADER_LEN`],
//! [`MAX_CHALLENGES`] and [`MAX_PARAMS`].

use std::fmt;

/// The largest header value accepted, in bytes.
///
/// For `WWW-Authenticate` this bounds the combined field value: the sum of the
/// lengths of all field lines plus two bytes (`", "`) for each line after the
/// first. For `Authorization` it bounds the one field value.
pub const MAX_HEADER_LEN: usize = 8192;

/// The largest number of challenges accepted in one response.
pub const MAX_CHALLENGES: usize = 32;

/// The largest number of auth-params accepted in one challenge.
pub const MAX_PARAMS: usize = 64;

/// One challenge of a WWW-Authenticate header (RFC 9110 §11.6.1).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Challenge {
    /// The auth-scheme as sent (compare case-insensitively).
    pub scheme: String,
    /// A token68 credential, if the challenge used that form instead of params.
    pub token68: Option<String>,
    /// auth-params in order; names lowercased; quoted-string values unescaped.
    pub params: Vec<(String, String)>,
}

impl Challenge {
    /// Whether this challenge's auth-scheme is `scheme`, compared
    /// case-insensitively as RFC 9110 §11.1 requires.
    #[must_use]
    pub fn is_scheme(&self, scheme: &str) -> bool {
        self.scheme.eq_ignore_ascii_case(scheme)
    }

    /// The value of the first auth-param named `name` (compared
    /// case-insensitively), if any.
    #[must_use]
    pub fn param(&self, name: &str) -> Option<&str> {
        self.params
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// Why a header could not be parsed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ChallengeError {
    /// The combined field value is longer than [`MAX_HEADER_LEN`] bytes.
    TooLong,
    /// More than [`MAX_CHALLENGES`] challenges, or more than [`MAX_PARAMS`]
    /// auth-params in one challenge.
    TooMany,
    /// The value does not follow the grammar of RFC 9110 §11.6.1, or (for
    /// [`BearerChallenge::from_challenges`]) a Bearer challenge repeats a
    /// parameter that RFC 6750 §3 allows at most once.
    Syntax,
}

impl fmt::Display for ChallengeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::TooLong => "WWW-Authenticate value too long",
            Self::TooMany => "too many challenges or auth-params in WWW-Authenticate",
            Self::Syntax => "malformed WWW-Authenticate value",
        })
    }
}

impl std::error::Error for ChallengeError {}

/// Parse all WWW-Authenticate field values of a response (each value may hold several comma-separated challenges; challenges may be split over several header lines).
///
/// The field lines are combined as RFC 9110 §5.3 says, as if joined with
/// `", "`: a line may continue the auth-params of the previous line's last
/// challenge. A quoted-string cannot span lines. Whitespace between the
/// scheme and its token68 or first auth-param may be SP or HTAB. Empty list
/// elements are ignored; no values, or only empty ones, give an empty list.
///
/// # Errors
///
/// [`ChallengeError::TooLong`] when the combined value exceeds
/// [`MAX_HEADER_LEN`] bytes (checked as the lines are read, so an endless
/// iterator also ends with this), [`ChallengeError::TooMany`] beyond
/// [`MAX_CHALLENGES`] challenges or [`MAX_PARAMS`] auth-params in one
/// challenge, and [`ChallengeError::Syntax`] for anything outside the grammar
/// (including non-ASCII characters outside quoted-strings).
pub fn parse_www_authenticate<'a>(
    values: impl IntoIterator<Item = &'a str>,
) -> Result<Vec<Challenge>, ChallengeError> {
    let mut toks = Vec::new();
    let mut total: usize = 0;
    for (n, value) in values.into_iter().enumerate() {
        if n > 0 {
            total = total.saturating_add(2);
            toks.push(Tok::Comma);
        }
        total = total.saturating_add(value.len());
        if total > MAX_HEADER_LEN {
            return Err(ChallengeError::TooLong);
        }
        lex_line(value, &mut toks)?;
    }
    Parser {
        toks: &toks,
        pos: 0,
    }
    .challenges()
}

/// The parameters of a Bearer challenge that MCP uses (RFC 6750 §3, RFC 9728 §5.1).
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct BearerChallenge {
    /// `realm`: the protection space (RFC 9110 §11.5).
    pub realm: Option<String>,
    /// `resource_metadata`: URL of the protected resource metadata document
    /// (RFC 9728 §5.1).
    pub resource_metadata: Option<String>,
    /// `error`: the error code, e.g. `invalid_token` (RFC 6750 §3.1).
    pub error: Option<String>,
    /// `error_description`: human-readable text about the error.
    pub error_description: Option<String>,
    /// `scope`: space-delimited scopes needed to access the resource.
    pub scope: Option<String>,
}

impl BearerChallenge {
    /// The first challenge whose scheme is "Bearer" (case-insensitive). A Bearer challenge that repeats one of realm/scope/error/error_description/error_uri/resource_metadata is invalid (RFC 6750 §3: each at most once) -> Err(ChallengeError::Syntax). Unknown params are ignored. Returns Ok(None) when there is no Bearer challenge.
    ///
    /// Parameter names are compared case-insensitively. `error_uri` is
    /// checked for repetition but not kept. A Bearer challenge in token68 form
    /// (not valid RFC 6750, but seen in the wild) yields a value with every
    /// field `None`, as does a bare `Bearer`.
    ///
    /// # Errors
    ///
    /// [`ChallengeError::Syntax`] when the chosen Bearer challenge repeats a
    /// parameter that may appear at most once.
    pub fn from_challenges(challenges: &[Challenge]) -> Result<Option<Self>, ChallengeError> {
        let Some(ch) = challenges.iter().find(|c| c.is_scheme("Bearer")) else {
            return Ok(None);
        };
        let mut out = Self::default();
        let mut error_uri_seen = false;
        for (name, value) in &ch.params {
            let slot = if name.eq_ignore_ascii_case("realm") {
                &mut out.realm
            } else if name.eq_ignore_ascii_case("resource_metadata") {
                &mut out.resource_metadata
            } else if name.eq_ignore_ascii_case("error") {
                &mut out.error
            } else if name.eq_ignore_ascii_case("error_description") {
                &mut out.error_description
            } else if name.eq_ignore_ascii_case("scope") {
                &mut out.scope
            } else if name.eq_ignore_ascii_case("error_uri") {
                if error_uri_seen {
                    return Err(ChallengeError::Syntax);
                }
                error_uri_seen = true;
                continue;
            } else {
                continue;
            };
            if slot.is_some() {
                return Err(ChallengeError::Syntax);
            }
            *slot = Some(value.clone());
        }
        Ok(Some(out))
    }

    /// Render as one WWW-Authenticate field value, RS side, e.g.
    /// `Bearer resource_metadata="https://h/.well-known/oauth-protected-resource/mcp", error="invalid_token", error_description="The access token expired"`.
    /// Order: realm, resource_metadata, error, error_description, scope; absent ones are skipped; with nothing at all it renders just `Bearer`.
    /// Values are always quoted-strings. error and error_description are sanitized to RFC 6750's allowed set %x20-21 / %x23-5B / %x5D-7E (drop other chars: so no `"` or `\` ever appears, no control or non-ASCII chars); scope is sanitized to scope-token chars %x21 / %x23-5B / %x5D-7E separated by single spaces; realm and resource_metadata: drop `"`, `\`, controls and non-ASCII. The output must always parse back with parse_www_authenticate + from_challenges to the sanitized values (property test this).
    ///
    /// The sanitized values are those of [`BearerChallenge::sanitized`]. A
    /// field that is `Some` but sanitizes to nothing is still rendered, as
    /// `name=""`.
    #[must_use]
    pub fn to_header_value(&self) -> String {
        let clean = self.sanitized();
        let fields = [
            ("realm", &clean.realm),
            ("resource_metadata", &clean.resource_metadata),
            ("error", &clean.error),
            ("error_description", &clean.error_description),
            ("scope", &clean.scope),
        ];
        let mut out = String::from("Bearer");
        let mut first = true;
        for (name, value) in fields {
            let Some(value) = value else { continue };
            out.push_str(if first { " " } else { ", " });
            first = false;
            out.push_str(name);
            out.push_str("=\"");
            out.push_str(value);
            out.push('"');
        }
        out
    }

    /// The values that [`BearerChallenge::to_header_value`] renders.
    ///
    /// `realm`, `resource_metadata`, `error` and `error_description` keep only
    /// the characters %x20-21 / %x23-5B / %x5D-7E (printable ASCII without
    /// `"` and `\`). `scope` is split at ASCII whitespace, each piece keeps
    /// only the scope-token characters %x21 / %x23-5B / %x5D-7E, and the
    /// non-empty pieces are joined with single spaces. `None` stays `None`.
    #[must_use]
    pub fn sanitized(&self) -> Self {
        Self {
            realm: self.realm.as_deref().map(sanitize_text),
            resource_metadata: self.resource_metadata.as_deref().map(sanitize_text),
            error: self.error.as_deref().map(sanitize_text),
            error_description: self.error_description.as_deref().map(sanitize_text),
            scope: self.scope.as_deref().map(sanitize_scope),
        }
    }
}

/// Why an Authorization request header is not a usable Bearer credential (RFC 6750 §2.1).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum AuthorizationError {
    /// Another scheme (e.g. Basic): not a Bearer credential (the RS treats it like no credentials).
    OtherScheme,
    /// The header claims Bearer but is malformed (empty token, bad chars, extra spaces after the token, too long). The RS answers 400 invalid_request.
    Malformed,
}

impl fmt::Display for AuthorizationError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::OtherScheme => "Authorization header does not use the Bearer scheme",
            Self::Malformed => "malformed Bearer Authorization header",
        })
    }
}

impl std::error::Error for AuthorizationError {}

/// Parse one Authorization header value: scheme "Bearer" matched case-insensitively (`bearer`, `BEARER` ok), then one or more SP, then a b64token = 1*( ALPHA / DIGIT / "-" / "." / "_" / "~" / "+" / "/" ) *"=" and nothing after it. Max length 8192 bytes (Malformed beyond). Input is bytes because HTTP header values may be non-UTF-8 (non-ASCII -> Malformed, or OtherScheme if the scheme isn't bearer).
///
/// The scheme is the leading run of token characters: when it is not
/// `bearer` (including an empty value or one starting with whitespace) the
/// result is [`AuthorizationError::OtherScheme`], whatever the length. When it
/// is `bearer`, anything other than SPs and a b64token after it (e.g. HTAB,
/// `,`, a second word, trailing whitespace) is
/// [`AuthorizationError::Malformed`].
///
/// # Errors
///
/// As described above.
pub fn parse_bearer_authorization(value: &[u8]) -> Result<&str, AuthorizationError> {
    const SCHEME: &[u8] = b"bearer";
    let scheme_matches = value
        .get(..SCHEME.len())
        .is_some_and(|s| s.eq_ignore_ascii_case(SCHEME));
    let scheme_ends = !value.get(SCHEME.len()).is_some_and(|&b| is_tchar(b));
    if !(scheme_matches && scheme_ends) {
        return Err(AuthorizationError::OtherScheme);
    }
    if value.len() > MAX_HEADER_LEN {
        return Err(AuthorizationError::Malformed);
    }
    let rest = value
        .get(SCHEME.len()..)
        .ok_or(AuthorizationError::Malformed)?;
    let spaces = rest.iter().take_while(|&&b| b == b' ').count();
    if spaces == 0 {
        return Err(AuthorizationError::Malformed);
    }
    let token = rest.get(spaces..).ok_or(AuthorizationError::Malformed)?;
    if !is_token68(token) {
        return Err(AuthorizationError::Malformed);
    }
    std::str::from_utf8(token).map_err(|_| AuthorizationError::Malformed)
}

// ---------------------------------------------------------------------------
// Character classes

/// tchar (RFC 9110 §5.6.2).
fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric()
        || matches!(
            b,
            b'!' | b'#'
                | b'$'
                | b'%'
                | b'&'
                | b'\''
                | b'*'
                | b'+'
                | b'-'
                | b'.'
                | b'^'
                | b'_'
                | b'`'
                | b'|'
                | b'~'
        )
}

/// The characters of token68 / b64token before the trailing `=`s.
fn is_token68_char(b: u8) -> bool {
    TOKEN68_CHARS[usize::from(b)]
}

/// [`is_token68_char`] as a table: a bearer token is checked on every request, byte by byte.
const TOKEN68_CHARS: [bool; 256] = {
    let mut table = [false; 256];
    let mut b = 0;
    while b < 256 {
        let c = b as u8;
        table[b] =
            c.is_ascii_alphanumeric() || matches!(c, b'-' | b'.' | b'_' | b'~' | b'+' | b'/');
        b += 1;
    }
    table
};

/// A byte that may appear in a lexer word: a tchar, or `/` (token68 only).
fn is_word_byte(b: u8) -> bool {
    is_tchar(b) || b == b'/'
}

/// token = 1*tchar.
fn is_token(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(is_tchar)
}

/// token68 = 1*( ALPHA / DIGIT / "-" / "." / "_" / "~" / "+" / "/" ) *"=".
fn is_token68(s: &[u8]) -> bool {
    let body = s.iter().take_while(|&&b| is_token68_char(b)).count();
    body > 0
        && s.get(body..)
            .is_some_and(|pad| pad.iter().all(|&b| b == b'='))
}

/// %x20-21 / %x23-5B / %x5D-7E: printable ASCII and SP without `"` and `\`.
fn is_text_char(c: char) -> bool {
    matches!(c, '\x20'..='\x21' | '\x23'..='\x5B' | '\x5D'..='\x7E')
}

/// scope-token characters: %x21 / %x23-5B / %x5D-7E.
fn is_scope_char(c: char) -> bool {
    c != ' ' && is_text_char(c)
}

fn sanitize_text(s: &str) -> String {
    s.chars().filter(|&c| is_text_char(c)).collect()
}

fn sanitize_scope(s: &str) -> String {
    let mut out = String::new();
    for piece in s.split(|c: char| c.is_ascii_whitespace()) {
        let start = out.len();
        if start > 0 {
            out.push(' ');
        }
        let body = out.len();
        out.extend(piece.chars().filter(|&c| is_scope_char(c)));
        if out.len() == body {
            out.truncate(start);
        }
    }
    out
}

// ---------------------------------------------------------------------------
// Lexer

/// A lexical unit of a WWW-Authenticate value.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Tok<'a> {
    /// A maximal run of tchar and `/` (a token, or the body of a token68).
    Word(&'a str),
    /// A quoted-string, unescaped.
    Quoted(String),
    /// `=`.
    Eq,
    /// `,` (also stands between two field lines).
    Comma,
    /// A run of SP / HTAB.
    Ws,
}

fn lex_line<'a>(line: &'a str, out: &mut Vec<Tok<'a>>) -> Result<(), ChallengeError> {
    let bytes = line.as_bytes();
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        match b {
            b' ' | b'\t' => {
                while matches!(bytes.get(i), Some(b' ' | b'\t')) {
                    i += 1;
                }
                out.push(Tok::Ws);
            }
            b',' => {
                out.push(Tok::Comma);
                i += 1;
            }
            b'=' => {
                out.push(Tok::Eq);
                i += 1;
            }
            b'"' => {
                let (value, next) = lex_quoted(line, i + 1)?;
                out.push(Tok::Quoted(value));
                i = next;
            }
            _ if is_word_byte(b) => {
                let start = i;
                while bytes.get(i).is_some_and(|&c| is_word_byte(c)) {
                    i += 1;
                }
                out.push(Tok::Word(line.get(start..i).ok_or(ChallengeError::Syntax)?));
            }
            _ => return Err(ChallengeError::Syntax),
        }
    }
    Ok(())
}

/// Lex the rest of a quoted-string whose opening `"` ends just before
/// `start`; returns the unescaped value and the index after the closing `"`.
fn lex_quoted(line: &str, start: usize) -> Result<(String, usize), ChallengeError> {
    let rest = line.get(start..).ok_or(ChallengeError::Syntax)?;
    let mut value = String::new();
    let mut chars = rest.char_indices();
    while let Some((off, c)) = chars.next() {
        match c {
            '"' => return Ok((value, start + off + 1)),
            // quoted-pair = "\" ( HTAB / SP / VCHAR / obs-text )
            '\\' => match chars.next() {
                Some((_, e)) if is_qtext(e) || e == '"' || e == '\\' => value.push(e),
                _ => return Err(ChallengeError::Syntax),
            },
            c if is_qtext(c) => value.push(c),
            _ => return Err(ChallengeError::Syntax),
        }
    }
    Err(ChallengeError::Syntax)
}

/// qdtext = HTAB / SP / %x21 / %x23-5B / %x5D-7E / obs-text (as whole chars).
fn is_qtext(c: char) -> bool {
    c == '\t' || is_text_char(c) || !c.is_ascii()
}

// ---------------------------------------------------------------------------
// Parser

struct Parser<'t, 'a> {
    toks: &'t [Tok<'a>],
    pos: usize,
}

impl<'a> Parser<'_, 'a> {
    fn peek(&self) -> Option<&Tok<'a>> {
        self.toks.get(self.pos)
    }

    fn skip_ws(&mut self) {
        while matches!(self.peek(), Some(Tok::Ws)) {
            self.pos += 1;
        }
    }

    fn skip_ws_commas(&mut self) {
        while matches!(self.peek(), Some(Tok::Ws | Tok::Comma)) {
            self.pos += 1;
        }
    }

    /// challenge *( OWS "," OWS [ challenge ] ), empty elements allowed.
    fn challenges(mut self) -> Result<Vec<Challenge>, ChallengeError> {
        let mut out = Vec::new();
        self.skip_ws_commas();
        while self.peek().is_some() {
            if out.len() >= MAX_CHALLENGES {
                return Err(ChallengeError::TooMany);
            }
            out.push(self.challenge()?);
            self.skip_ws();
            match self.peek() {
                None => break,
                Some(Tok::Comma) => self.skip_ws_commas(),
                Some(_) => return Err(ChallengeError::Syntax),
            }
        }
        Ok(out)
    }

    /// auth-scheme [ 1*SP ( token68 / #auth-param ) ]. Leaves the position
    /// before the comma (or end) that follows the challenge.
    fn challenge(&mut self) -> Result<Challenge, ChallengeError> {
        let scheme = match self.peek() {
            Some(Tok::Word(w)) if is_token(w) => *w,
            _ => return Err(ChallengeError::Syntax),
        };
        self.pos += 1;
        let mut ch = Challenge {
            scheme: scheme.to_owned(),
            token68: None,
            params: Vec::new(),
        };
        match self.peek() {
            None | Some(Tok::Comma) => return Ok(ch),
            Some(Tok::Ws) => self.pos += 1,
            Some(_) => return Err(ChallengeError::Syntax),
        }
        if matches!(self.peek(), None | Some(Tok::Comma)) {
            return Ok(ch);
        }
        if let Some((token68, end)) = self.token68() {
            ch.token68 = Some(token68);
            self.pos = end;
            return Ok(ch);
        }
        ch.params.push(self.param()?);
        loop {
            // A further element belongs to this challenge only if it is
            // `token BWS "="`; otherwise it starts the next challenge.
            let save = self.pos;
            self.skip_ws();
            if !matches!(self.peek(), Some(Tok::Comma)) {
                self.pos = save;
                break;
            }
            self.skip_ws_commas();
            if !self.at_param() {
                self.pos = save;
                break;
            }
            if ch.params.len() >= MAX_PARAMS {
                return Err(ChallengeError::TooMany);
            }
            ch.params.push(self.param()?);
        }
        Ok(ch)
    }

    /// A token68 at the position that is followed by OWS and a comma or the
    /// end: the token68 and the position after it.
    fn token68(&self) -> Option<(String, usize)> {
        let Some(Tok::Word(body)) = self.peek() else {
            return None;
        };
        if !body.bytes().all(is_token68_char) {
            return None;
        }
        let mut end = self.pos + 1;
        while matches!(self.toks.get(end), Some(Tok::Eq)) {
            end += 1;
        }
        let mut after = end;
        while matches!(self.toks.get(after), Some(Tok::Ws)) {
            after += 1;
        }
        if !matches!(self.toks.get(after), None | Some(Tok::Comma)) {
            return None;
        }
        let pad = end - (self.pos + 1);
        let mut token68 = String::with_capacity(body.len() + pad);
        token68.push_str(body);
        token68.extend(std::iter::repeat_n('=', pad));
        Some((token68, end))
    }

    /// Whether the position holds `token BWS "="`.
    fn at_param(&self) -> bool {
        if !matches!(self.peek(), Some(Tok::Word(_))) {
            return false;
        }
        let mut p = self.pos + 1;
        while matches!(self.toks.get(p), Some(Tok::Ws)) {
            p += 1;
        }
        matches!(self.toks.get(p), Some(Tok::Eq))
    }

    /// auth-param = token BWS "=" BWS ( token / quoted-string ).
    fn param(&mut self) -> Result<(String, String), ChallengeError> {
        let name = match self.peek() {
            Some(Tok::Word(w)) if is_token(w) => w.to_ascii_lowercase(),
            _ => return Err(ChallengeError::Syntax),
        };
        self.pos += 1;
        self.skip_ws();
        if !matches!(self.peek(), Some(Tok::Eq)) {
            return Err(ChallengeError::Syntax);
        }
        self.pos += 1;
        self.skip_ws();
        let value = match self.peek() {
            Some(Tok::Word(w)) if is_token(w) => (*w).to_owned(),
            Some(Tok::Quoted(q)) => q.clone(),
            _ => return Err(ChallengeError::Syntax),
        };
        self.pos += 1;
        Ok((name, value))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn parse(v: &str) -> Result<Vec<Challenge>, ChallengeError> {
        parse_www_authenticate([v])
    }

    fn ch(scheme: &str, token68: Option<&str>, params: &[(&str, &str)]) -> Challenge {
        Challenge {
            scheme: scheme.to_owned(),
            token68: token68.map(str::to_owned),
            params: params
                .iter()
                .map(|(n, v)| ((*n).to_owned(), (*v).to_owned()))
                .collect(),
        }
    }

    fn bearer_of(values: &[&str]) -> Result<Option<BearerChallenge>, ChallengeError> {
        BearerChallenge::from_challenges(&parse_www_authenticate(values.iter().copied())?)
    }

    // ----- parse_www_authenticate ------------------------------------------

    // spec: DISC-2
    #[test]
    fn basic_then_bearer_in_one_value() {
        let v = r#"Basic realm="x", Bearer resource_metadata="https://a/b", error="invalid_token""#;
        assert_eq!(
            parse(v),
            Ok(vec![
                ch("Basic", None, &[("realm", "x")]),
                ch(
                    "Bearer",
                    None,
                    &[
                        ("resource_metadata", "https://a/b"),
                        ("error", "invalid_token")
                    ]
                ),
            ])
        );
        assert_eq!(
            bearer_of(&[v]),
            Ok(Some(BearerChallenge {
                resource_metadata: Some("https://a/b".into()),
                error: Some("invalid_token".into()),
                ..Default::default()
            }))
        );
    }

    // spec: DISC-2
    #[test]
    fn quoted_pair_escapes_are_unescaped() {
        assert_eq!(
            parse(r#"Bearer realm="a\"b""#),
            Ok(vec![ch("Bearer", None, &[("realm", "a\"b")])])
        );
        assert_eq!(
            parse(r#"Bearer realm="a\\b\c""#),
            Ok(vec![ch("Bearer", None, &[("realm", "a\\bc")])])
        );
    }

    // spec: DISC-2
    #[test]
    fn rfc9110_example() {
        let v = r#"Newauth realm="apps", type=1, title="Login to \"apps\"", Basic realm="simple""#;
        assert_eq!(
            parse(v),
            Ok(vec![
                ch(
                    "Newauth",
                    None,
                    &[
                        ("realm", "apps"),
                        ("type", "1"),
                        ("title", "Login to \"apps\"")
                    ]
                ),
                ch("Basic", None, &[("realm", "simple")]),
            ])
        );
        assert_eq!(bearer_of(&[v]), Ok(None));
    }

    // spec: DISC-2
    #[test]
    fn token68_forms() {
        assert_eq!(
            parse("Bearer abc=="),
            Ok(vec![ch("Bearer", Some("abc=="), &[])])
        );
        assert_eq!(
            parse("Bearer abc="),
            Ok(vec![ch("Bearer", Some("abc="), &[])])
        );
        assert_eq!(
            parse("Bearer abc"),
            Ok(vec![ch("Bearer", Some("abc"), &[])])
        );
        assert_eq!(
            parse("Negotiate a+b/c-d._~9==, Bearer realm=\"x\""),
            Ok(vec![
                ch("Negotiate", Some("a+b/c-d._~9=="), &[]),
                ch("Bearer", None, &[("realm", "x")]),
            ])
        );
        assert_eq!(
            parse("Negotiate abc== , Basic"),
            Ok(vec![
                ch("Negotiate", Some("abc=="), &[]),
                ch("Basic", None, &[])
            ])
        );
        // A token68 Bearer challenge is tolerated, with no known params.
        assert_eq!(
            bearer_of(&["Bearer abc=="]),
            Ok(Some(BearerChallenge::default()))
        );
    }

    // spec: DISC-2
    #[test]
    fn bare_schemes() {
        assert_eq!(parse("Bearer"), Ok(vec![ch("Bearer", None, &[])]));
        assert_eq!(parse("Bearer "), Ok(vec![ch("Bearer", None, &[])]));
        assert_eq!(
            parse("Basic, Bearer"),
            Ok(vec![ch("Basic", None, &[]), ch("Bearer", None, &[])])
        );
        assert_eq!(bearer_of(&["Bearer"]), Ok(Some(BearerChallenge::default())));
    }

    // spec: DISC-2
    #[test]
    fn two_header_lines() {
        let lines = [
            r#"Basic realm="x""#,
            r#"Bearer resource_metadata="https://a/b", scope="read""#,
        ];
        assert_eq!(
            parse_www_authenticate(lines),
            Ok(vec![
                ch("Basic", None, &[("realm", "x")]),
                ch(
                    "Bearer",
                    None,
                    &[("resource_metadata", "https://a/b"), ("scope", "read")]
                ),
            ])
        );
        // Lines combine as with ", " (RFC 9110 §5.3): params may continue.
        assert_eq!(
            parse_www_authenticate([r#"Bearer realm="a""#, r#"error="b""#]),
            Ok(vec![ch("Bearer", None, &[("realm", "a"), ("error", "b")])])
        );
        // But a quoted-string does not span lines.
        assert_eq!(
            parse_www_authenticate([r#"Bearer realm="a"#, r#"b""#]),
            Err(ChallengeError::Syntax)
        );
        // Empty lines are harmless.
        assert_eq!(
            parse_www_authenticate(["", "Bearer", " ", ""]),
            Ok(vec![ch("Bearer", None, &[])])
        );
        assert_eq!(parse_www_authenticate([]), Ok(vec![]));
    }

    // spec: DISC-2
    #[test]
    fn scheme_case_insensitive_and_param_names_lowercased() {
        let got = parse(r#"bEaReR REALM="r", Error="e""#);
        assert_eq!(
            got,
            Ok(vec![ch("bEaReR", None, &[("realm", "r"), ("error", "e")])])
        );
        assert_eq!(
            bearer_of(&[r#"Basic realm="b", BEARER Resource_Metadata="u""#]),
            Ok(Some(BearerChallenge {
                resource_metadata: Some("u".into()),
                ..Default::default()
            }))
        );
    }

    // spec: DISC-2
    #[test]
    fn params_any_order_unknown_ignored_bws_and_empty_elements() {
        // "Bearer  ,," is a bare challenge, so `scope = ...` has no scheme.
        let v = "Bearer  ,, scope = \"a b\"";
        assert_eq!(parse(v), Err(ChallengeError::Syntax));
        let v = "Bearer scope = \"a b\" ,error=insufficient_scope,, foo=bar,\t\
                 resource_metadata=\"https://r/m\", realm=\"x\",error_description=\"d\" ,";
        let got = bearer_of(&[v]);
        assert_eq!(
            got,
            Ok(Some(BearerChallenge {
                realm: Some("x".into()),
                resource_metadata: Some("https://r/m".into()),
                error: Some("insufficient_scope".into()),
                error_description: Some("d".into()),
                scope: Some("a b".into()),
            }))
        );
        assert_eq!(
            parse(v).map(|c| c.first().map(|c| c.params.len())),
            Ok(Some(6))
        );
    }

    // spec: DISC-2
    #[test]
    fn first_bearer_challenge_wins() {
        let v = r#"Bearer realm="one", DPoP algs="ES256", Bearer realm="two", realm="dup""#;
        assert_eq!(
            bearer_of(&[v]),
            Ok(Some(BearerChallenge {
                realm: Some("one".into()),
                ..Default::default()
            }))
        );
    }

    // spec: DISC-2
    #[test]
    fn obs_text_kept_in_quoted_string() {
        assert_eq!(
            parse("Bearer realm=\"caf\u{e9} \u{1F600}\tx\""),
            Ok(vec![ch(
                "Bearer",
                None,
                &[("realm", "caf\u{e9} \u{1F600}\tx")]
            )])
        );
        assert_eq!(
            parse("Bearer realm=\"a\\\u{e9}\""),
            Ok(vec![ch("Bearer", None, &[("realm", "a\u{e9}")])])
        );
    }

    // spec: DISC-2
    #[test]
    fn syntax_errors() {
        for bad in [
            r#"Bearer realm="x"#,            // unterminated
            r#"Bearer realm="x\"#,           // unterminated after backslash
            "Bearer realm=x\u{e9}",          // non-ASCII outside quotes
            "B\u{e9}arer realm=\"x\"",       // non-ASCII scheme
            r#"realm="x""#,                  // no scheme
            r#"Bearer realm="a" error="b""#, // missing comma
            "Bearer realm=\"x\", error=",    // no value
            "Bearer realm = ",               // no value
            "Bearer realm=\"a\nb\"",         // control in quoted-string
            "Bearer realm=\"a\u{7f}\"",      // DEL in quoted-string
            "Bearer realm=\"a\\\n\"",        // quoted-pair of a control
            "Bearer abc==, realm=\"x\"",     // token68 challenge then params
            "Bearer abc==def",               // '=' inside token68
            "Bearer a/b=c",                  // '/' in a param name
            "Bearer realm=a/b",              // '/' in a token value
            "Bea/rer",                       // '/' in a scheme
            "Bearer realm=\"a\"b",           // junk after quoted-string
            "Bearer realm=a=b",              // junk after token
            "Bearer=x",                      // no scheme
            "Bearer;realm=x",                // bad separator
            "Bearer \"x\"",                  // quoted-string instead of param
            ", =",                           // nothing sensible
        ] {
            assert_eq!(parse(bad), Err(ChallengeError::Syntax), "{bad:?}");
        }
    }

    // spec: DISC-2
    #[test]
    fn length_limit() {
        let at_limit = format!("Bearer realm=\"{}\"", "a".repeat(MAX_HEADER_LEN - 15));
        assert_eq!(at_limit.len(), MAX_HEADER_LEN);
        assert!(parse(&at_limit).is_ok());
        let over = format!("Bearer realm=\"{}\"", "a".repeat(MAX_HEADER_LEN - 14));
        assert_eq!(parse(&over), Err(ChallengeError::TooLong));
        // The limit applies to the combined value, separators included.
        let half = "a".repeat(MAX_HEADER_LEN / 2 - 1);
        assert!(parse_www_authenticate([half.as_str(), half.as_str()]).is_ok());
        let half = "a".repeat(MAX_HEADER_LEN / 2);
        assert_eq!(
            parse_www_authenticate([half.as_str(), half.as_str()]),
            Err(ChallengeError::TooLong)
        );
        // An endless iterator ends with TooLong.
        assert_eq!(
            parse_www_authenticate(std::iter::repeat("")),
            Err(ChallengeError::TooLong)
        );
    }

    // spec: DISC-2
    #[test]
    fn count_limits() {
        let ok = vec!["A"; MAX_CHALLENGES].join(", ");
        assert_eq!(parse(&ok).map(|c| c.len()), Ok(MAX_CHALLENGES));
        let many = vec!["A"; MAX_CHALLENGES + 1].join(", ");
        assert_eq!(parse(&many), Err(ChallengeError::TooMany));

        let params = |n: usize| {
            let ps: Vec<String> = (0..n).map(|i| format!("p{i}=v")).collect();
            format!("Bearer {}", ps.join(", "))
        };
        assert_eq!(
            parse(&params(MAX_PARAMS)).map(|c| c.first().map(|c| c.params.len())),
            Ok(Some(MAX_PARAMS))
        );
        assert_eq!(parse(&params(MAX_PARAMS + 1)), Err(ChallengeError::TooMany));
    }

    // spec: DISC-2
    #[test]
    fn challenge_helpers() {
        let c = ch("bearer", None, &[("realm", "x"), ("realm", "y")]);
        assert!(c.is_scheme("Bearer"));
        assert!(!c.is_scheme("Basic"));
        assert_eq!(c.param("REALM"), Some("x"));
        assert_eq!(c.param("scope"), None);
    }

    // ----- BearerChallenge::from_challenges --------------------------------

    // spec: ERR-5
    #[test]
    fn repeated_bearer_params_are_rejected() {
        for name in [
            "realm",
            "scope",
            "error",
            "error_description",
            "error_uri",
            "resource_metadata",
        ] {
            let v = format!("Bearer {name}=\"a\", other=1, {name}=\"b\"");
            assert_eq!(bearer_of(&[&v]), Err(ChallengeError::Syntax), "{name}");
            let upper = format!("Bearer {name}=\"a\", {}=\"b\"", name.to_uppercase());
            assert_eq!(bearer_of(&[&upper]), Err(ChallengeError::Syntax), "{name}");
            let once = format!("Bearer {name}=\"a\"");
            assert!(matches!(bearer_of(&[&once]), Ok(Some(_))), "{name}");
        }
        // Unknown params may repeat.
        assert_eq!(
            bearer_of(&["Bearer foo=1, foo=2, error_uri=\"u\""]),
            Ok(Some(BearerChallenge::default()))
        );
        // A hand-built challenge with mixed-case names is checked too.
        let c = ch("Bearer", None, &[("Error", "a"), ("ERROR", "b")]);
        assert_eq!(
            BearerChallenge::from_challenges(&[c]),
            Err(ChallengeError::Syntax)
        );
        // Only the chosen (first) Bearer challenge is validated.
        assert!(matches!(
            bearer_of(&[
                r#"Bearer realm="a""#,
                r#"Basic, Bearer error="x", error="y""#
            ]),
            Ok(Some(_))
        ));
    }

    // ----- BearerChallenge::to_header_value --------------------------------

    // spec: ERR-7
    #[test]
    fn render_only_resource_metadata() {
        let b = BearerChallenge {
            resource_metadata: Some("https://h/.well-known/oauth-protected-resource/mcp".into()),
            ..Default::default()
        };
        assert_eq!(
            b.to_header_value(),
            r#"Bearer resource_metadata="https://h/.well-known/oauth-protected-resource/mcp""#
        );
    }

    // spec: PRM-8
    #[test]
    fn unauthorized_challenge_carries_resource_metadata() {
        let url = "https://h/.well-known/oauth-protected-resource/mcp";
        let b = BearerChallenge {
            resource_metadata: Some(url.into()),
            ..Default::default()
        };
        let back = bearer_of(&[&b.to_header_value()]);
        assert_eq!(
            back.map(|b| b.and_then(|b| b.resource_metadata)),
            Ok(Some(url.to_owned()))
        );
    }

    // spec: ERR-11
    #[test]
    fn render_resource_metadata_with_error_and_scope() {
        let b = BearerChallenge {
            realm: None,
            resource_metadata: Some("https://h/.well-known/oauth-protected-resource/mcp".into()),
            error: Some("insufficient_scope".into()),
            error_description: None,
            scope: Some("files:read files:write".into()),
        };
        assert_eq!(
            b.to_header_value(),
            "Bearer resource_metadata=\"https://h/.well-known/oauth-protected-resource/mcp\", \
             error=\"insufficient_scope\", scope=\"files:read files:write\""
        );
        let b = BearerChallenge {
            error: Some("invalid_token".into()),
            error_description: Some("The access token expired".into()),
            scope: None,
            ..b
        };
        assert_eq!(
            b.to_header_value(),
            "Bearer resource_metadata=\"https://h/.well-known/oauth-protected-resource/mcp\", \
             error=\"invalid_token\", error_description=\"The access token expired\""
        );
        assert_eq!(bearer_of(&[&b.to_header_value()]), Ok(Some(b)));
    }

    // spec: ERR-4
    #[test]
    fn render_is_bearer_with_params_in_fixed_order() {
        let b = BearerChallenge {
            scope: Some("s".into()),
            error_description: Some("d".into()),
            error: Some("e".into()),
            resource_metadata: Some("m".into()),
            realm: Some("r".into()),
        };
        let v = b.to_header_value();
        assert_eq!(
            v,
            r#"Bearer realm="r", resource_metadata="m", error="e", error_description="d", scope="s""#
        );
        let parsed = parse(&v);
        assert_eq!(parsed.as_ref().map(Vec::len), Ok(1));
        let first = parsed.ok().and_then(|c| c.into_iter().next());
        assert!(
            first
                .as_ref()
                .is_some_and(|c| c.scheme == "Bearer" && c.params.len() == 5)
        );
        assert_eq!(BearerChallenge::default().to_header_value(), "Bearer");
        let only_error = BearerChallenge {
            error: Some("invalid_request".into()),
            ..Default::default()
        };
        assert_eq!(
            only_error.to_header_value(),
            r#"Bearer error="invalid_request""#
        );
    }

    // spec: ERR-5
    #[test]
    fn hostile_values_are_sanitized() {
        let b = BearerChallenge {
            realm: Some("r\"e\\a\u{e9}l\u{0}m".into()),
            resource_metadata: Some("https://h/\"\r\nX: y".into()),
            error: Some("invalid_token\", error=\"x".into()),
            error_description: Some("bad \"quote\" \\ back caf\u{e9}\n\tend\u{7f}".into()),
            scope: Some("  read\t\"write\"\u{e9} \\ admin\u{a0}x  ".into()),
        };
        let clean = b.sanitized();
        assert_eq!(clean.realm.as_deref(), Some("realm"));
        assert_eq!(clean.resource_metadata.as_deref(), Some("https://h/X: y"));
        assert_eq!(clean.error.as_deref(), Some("invalid_token, error=x"));
        assert_eq!(
            clean.error_description.as_deref(),
            Some("bad quote  back cafend")
        );
        assert_eq!(clean.scope.as_deref(), Some("read write adminx"));
        let v = b.to_header_value();
        assert_eq!(
            v,
            "Bearer realm=\"realm\", resource_metadata=\"https://h/X: y\", \
             error=\"invalid_token, error=x\", error_description=\"bad quote  back cafend\", \
             scope=\"read write adminx\""
        );
        assert_eq!(bearer_of(&[&v]), Ok(Some(clean)));
        // A value that sanitizes to nothing is still present, as "".
        let empty = BearerChallenge {
            scope: Some(" \t\"\\ ".into()),
            ..Default::default()
        };
        assert_eq!(empty.to_header_value(), r#"Bearer scope="""#);
    }

    // ----- parse_bearer_authorization --------------------------------------

    // spec: RS-10
    #[test]
    fn bearer_scheme_case_insensitive() {
        for v in ["Bearer abc", "bearer abc", "BEARER abc", "bEaReR abc"] {
            assert_eq!(parse_bearer_authorization(v.as_bytes()), Ok("abc"), "{v}");
        }
        assert_eq!(
            parse_bearer_authorization(b"Bearer   a-._~+/Z9=="),
            Ok("a-._~+/Z9==")
        );
    }

    // spec: ERR-3
    #[test]
    fn malformed_bearer_authorization() {
        let long = format!("Bearer {}", "a".repeat(MAX_HEADER_LEN - 6));
        for v in [
            &b"Bearer"[..],
            b"bearer ",
            b"Bearer    ",
            b"Bearer abc def",
            b"Bearer abc ",
            b"Bearer  abc\t",
            b"Bearer a=b",
            b"Bearer =abc",
            b"Bearer abc=\"",
            b"Bearer ab\xffc",
            b"Bearer ab\xc3\xa9",
            b"Bearer\tabc",
            b"Bearer,abc",
            b"Bearer\xffabc",
            b"Bearer abc,def",
            b"Bearer \"abc\"",
            long.as_bytes(),
        ] {
            assert_eq!(
                parse_bearer_authorization(v),
                Err(AuthorizationError::Malformed),
                "{:?}",
                String::from_utf8_lossy(v)
            );
        }
        let at_limit = format!("Bearer {}", "a".repeat(MAX_HEADER_LEN - 7));
        assert_eq!(at_limit.len(), MAX_HEADER_LEN);
        assert!(parse_bearer_authorization(at_limit.as_bytes()).is_ok());
    }

    // spec: ERR-3
    #[test]
    fn other_schemes_are_not_bearer() {
        let long = format!("Basic {}", "a".repeat(2 * MAX_HEADER_LEN));
        for v in [
            &b""[..],
            b"Basic dXNlcjpwYXNz",
            b"Bearerx abc",
            b"Bear abc",
            b" Bearer abc",
            b"B\xc3\xa9arer abc",
            b"\xff\xfe",
            b"DPoP abc",
            long.as_bytes(),
        ] {
            assert_eq!(
                parse_bearer_authorization(v),
                Err(AuthorizationError::OtherScheme),
                "{:?}",
                String::from_utf8_lossy(v)
            );
        }
    }

    // ----- property tests --------------------------------------------------

    /// Printable ASCII, SP and HTAB, without `"` and `\` (written
    /// independently of the module's own predicates).
    fn only_allowed_text(s: &str) -> bool {
        s.bytes()
            .all(|b| (0x20..=0x7e).contains(&b) && b != b'"' && b != b'\\')
    }

    fn only_scope_tokens(s: &str) -> bool {
        only_allowed_text(s) && !s.starts_with(' ') && !s.ends_with(' ') && !s.contains("  ")
    }

    fn opt_text() -> impl Strategy<Value = Option<String>> {
        prop_oneof![
            Just(None),
            any::<String>().prop_map(Some),
            "[ -~\t\r\n\u{e9}\u{a0}]{0,40}".prop_map(Some),
        ]
    }

    fn bearer() -> impl Strategy<Value = BearerChallenge> {
        (opt_text(), opt_text(), opt_text(), opt_text(), opt_text()).prop_map(
            |(realm, resource_metadata, error, error_description, scope)| BearerChallenge {
                realm,
                resource_metadata,
                error,
                error_description,
                scope,
            },
        )
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        // spec: DISC-2
        #[test]
        fn parse_never_panics_on_strings(s in any::<String>(), t in "[ \t,=\"\\\\a-zA-Z0-9/+~.\u{e9}]{0,64}") {
            let _ = parse_www_authenticate([s.as_str()]);
            let _ = parse_www_authenticate([t.as_str()]);
            let _ = parse_www_authenticate([t.as_str(), s.as_str(), t.as_str()]);
            if let Ok(cs) = parse_www_authenticate([t.as_str()]) {
                prop_assert!(cs.len() <= MAX_CHALLENGES);
                let _ = BearerChallenge::from_challenges(&cs);
            }
        }

        // spec: DISC-2
        #[test]
        fn parse_never_panics_on_bytes(b in proptest::collection::vec(any::<u8>(), 0..256)) {
            let s = String::from_utf8_lossy(&b);
            if let Ok(cs) = parse_www_authenticate([s.as_ref()]) {
                let _ = BearerChallenge::from_challenges(&cs);
            }
        }

        // spec: ERR-5
        #[test]
        fn rendered_challenge_round_trips(b in bearer()) {
            let v = b.to_header_value();
            prop_assert!(v.is_ascii());
            prop_assert!(!v.bytes().any(|c| c.is_ascii_control()));
            let clean = b.sanitized();
            for f in [&clean.realm, &clean.resource_metadata, &clean.error, &clean.error_description] {
                prop_assert!(f.as_deref().is_none_or(only_allowed_text));
            }
            prop_assert!(clean.scope.as_deref().is_none_or(only_scope_tokens));
            // Sanitizing never invents or drops a field, and is idempotent.
            prop_assert_eq!(clean.realm.is_some(), b.realm.is_some());
            prop_assert_eq!(clean.scope.is_some(), b.scope.is_some());
            prop_assert_eq!(clean.sanitized(), clean.clone());
            let parsed = parse_www_authenticate([v.as_str()]);
            prop_assert!(parsed.is_ok(), "{:?} -> {:?}", v, parsed);
            prop_assert_eq!(BearerChallenge::from_challenges(&parsed.unwrap_or_default()), Ok(Some(clean)));
        }

        // spec: ERR-5
        #[test]
        fn rendered_challenge_has_each_param_at_most_once(b in bearer()) {
            let v = b.to_header_value();
            let parsed = parse_www_authenticate([v.as_str()]);
            prop_assert!(parsed.is_ok());
            let parsed = parsed.unwrap_or_default();
            prop_assert_eq!(parsed.len(), 1);
            let c = &parsed[0];
            prop_assert_eq!(c.scheme.as_str(), "Bearer");
            prop_assert_eq!(c.token68.as_ref(), None);
            let present = [&b.realm, &b.resource_metadata, &b.error, &b.error_description, &b.scope]
                .iter()
                .filter(|f| f.is_some())
                .count();
            prop_assert_eq!(c.params.len(), present);
            for name in ["realm", "resource_metadata", "error", "error_description", "scope"] {
                let n = c.params.iter().filter(|(p, _)| p == name).count();
                prop_assert!(n <= 1, "{} appears {} times in {:?}", name, n, v);
            }
        }

        // spec: ERR-3
        #[test]
        fn authorization_never_panics(b in proptest::collection::vec(any::<u8>(), 0..128)) {
            if let Ok(tok) = parse_bearer_authorization(&b) {
                prop_assert!(!tok.is_empty());
                prop_assert!(b.ends_with(tok.as_bytes()));
                prop_assert!(b.len() >= 7 + tok.len());
            }
            let mut with_scheme = b"Bearer ".to_vec();
            with_scheme.extend_from_slice(&b);
            let r = parse_bearer_authorization(&with_scheme);
            prop_assert_ne!(r, Err(AuthorizationError::OtherScheme));
        }

        // spec: RS-10
        #[test]
        fn authorization_accepts_valid_b64tokens(
            body in "[A-Za-z0-9._~+/-]{1,64}",
            pad in 0usize..4,
            upper in proptest::collection::vec(any::<bool>(), 6),
            spaces in 1usize..=3,
        ) {
            let scheme: String = "bearer"
                .chars()
                .zip(upper)
                .map(|(c, u)| if u { c.to_ascii_uppercase() } else { c })
                .collect();
            let token = format!("{body}{}", "=".repeat(pad));
            let value = format!("{scheme}{}{token}", " ".repeat(spaces));
            prop_assert_eq!(parse_bearer_authorization(value.as_bytes()), Ok(token.as_str()));
            // Anything after the token makes it malformed.
            let trailing = format!("{value} ");
            prop_assert_eq!(
                parse_bearer_authorization(trailing.as_bytes()),
                Err(AuthorizationError::Malformed)
            );
        }
    }
}
