//! The MCP protocol revisions whose authorization rules this crate implements, and the one
//! place that says what each revision changes.
//!
//! | rule | 2025-06-18 | 2025-11-25 | 2026-07-28 |
//! |---|---|---|---|
//! | MCP base protocol | `initialize`, sessions | `initialize`, sessions | stateless: no `initialize`, no session; version and capabilities in every request's `_meta`, `MCP-Protocol-Version`, `Mcp-Method` and `Mcp-Name` on every POST ([`Revision::stateless`]) |
//! | client registration | pre-registered, else DCR | pre-registered → Client ID Metadata Document → DCR ([`Revision::client_id_metadata_documents`]) | same; DCR deprecated (kept), with `application_type` ([`Revision::dcr_application_type`]) |
//! | client credentials | — | — | bound to the issuer that issued them; re-register when the resource names another AS ([`Revision::credentials_bound_to_issuer`]) |
//! | `offline_access` | — | — | the client may ask for it when the AS lists it ([`Revision::offline_access`]); an MCP server never challenges for it |
//!
//! Rules this crate applies in every revision, because a later revision only made explicit
//! what the RFCs already required or because it costs an older peer nothing: PRM discovery
//! without `WWW-Authenticate` (path-inserted, then root), OpenID discovery after RFC 8414,
//! refusing an AS without `code_challenge_methods_supported`, RFC 9207 `iss` compared
//! without normalization when present or advertised, the metadata `issuer` equal to the one
//! the well-known URL was built from, the scope selection strategy and step-up with the
//! union of scopes. The catalogue (`spec/requirements.md`) names, per row, the revisions it
//! belongs to.

use std::fmt;
use std::str::FromStr;

/// An MCP protocol revision (the value of `MCP-Protocol-Version`). Ordered by date.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub enum Revision {
    /// 2025-06-18, the revision the lesson names; the default.
    #[default]
    V2025_06_18,
    /// 2025-11-25.
    V2025_11_25,
    /// 2026-07-28, the current revision.
    V2026_07_28,
}

impl Revision {
    /// Every revision, oldest first.
    pub const ALL: [Self; 3] = [Self::V2025_06_18, Self::V2025_11_25, Self::V2026_07_28];
    /// The newest revision.
    pub const LATEST: Self = Self::V2026_07_28;

    /// The revision's date, as `MCP-Protocol-Version` carries it.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::V2025_06_18 => "2025-06-18",
            Self::V2025_11_25 => "2025-11-25",
            Self::V2026_07_28 => "2026-07-28",
        }
    }

    /// The revision named exactly by `value` (no normalization), if this crate implements it.
    pub fn from_header(value: &[u8]) -> Option<Self> {
        Self::ALL
            .into_iter()
            .find(|r| r.as_str().as_bytes() == value)
    }

    /// The MCP base protocol is stateless: no `initialize` handshake and no
    /// `Mcp-Session-Id`; every request carries `MCP-Protocol-Version`, `Mcp-Method` (and
    /// `Mcp-Name` for named methods) and its version and capabilities in `_meta`; the
    /// client learns the server's versions with `server/discover`. The token is checked on
    /// every request, as in every revision.
    pub const fn stateless(self) -> bool {
        matches!(self, Self::V2026_07_28)
    }

    /// Client ID Metadata Documents (SEP-991): an https `client_id` URL whose document the AS
    /// fetches; the client prefers it to DCR when the AS advertises
    /// `client_id_metadata_document_supported`.
    pub const fn client_id_metadata_documents(self) -> bool {
        !matches!(self, Self::V2025_06_18)
    }

    /// Dynamic Client Registration carries `application_type` (SEP-837): `native` for
    /// loopback redirect URIs, `web` otherwise.
    pub const fn dcr_application_type(self) -> bool {
        matches!(self, Self::V2026_07_28)
    }

    /// Client credentials are bound to the issuer that issued them (SEP-2352): kept per
    /// issuer, never presented to another AS; a resource that names a new AS means a new
    /// registration, and pre-registered credentials are only for their own issuer.
    pub const fn credentials_bound_to_issuer(self) -> bool {
        matches!(self, Self::V2026_07_28)
    }

    /// The client may add `offline_access` to its scope when the AS lists it in
    /// `scopes_supported`, to ask for a refresh token; MCP servers never challenge for it.
    pub const fn offline_access(self) -> bool {
        matches!(self, Self::V2026_07_28)
    }
}

impl fmt::Display for Revision {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A revision this crate does not implement.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UnknownRevision(pub String);

impl fmt::Display for UnknownRevision {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "unknown MCP revision {:?} (known: 2025-06-18, 2025-11-25, 2026-07-28)",
            self.0
        )
    }
}

impl std::error::Error for UnknownRevision {}

impl FromStr for Revision {
    type Err = UnknownRevision;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::from_header(s.as_bytes()).ok_or_else(|| UnknownRevision(s.to_owned()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_revision_is_named_by_its_exact_date() {
        for r in Revision::ALL {
            assert_eq!(r.as_str().parse::<Revision>(), Ok(r));
            assert_eq!(r.to_string(), r.as_str());
        }
        for bad in ["", "2025-06-18 ", "2025-6-18", "2026-07-28\0", "latest"] {
            assert!(bad.parse::<Revision>().is_err(), "{bad:?}");
        }
        assert!(Revision::ALL.windows(2).all(|w| w[0] < w[1]));
        assert_eq!(Revision::default(), Revision::V2025_06_18);
    }

    #[test]
    fn each_rule_starts_at_its_revision() {
        use Revision::*;
        type Rule = (fn(Revision) -> bool, Revision);
        let rules: [Rule; 5] = [
            (Revision::stateless, V2026_07_28),
            (Revision::client_id_metadata_documents, V2025_11_25),
            (Revision::dcr_application_type, V2026_07_28),
            (Revision::credentials_bound_to_issuer, V2026_07_28),
            (Revision::offline_access, V2026_07_28),
        ];
        for (rule, since) in rules {
            for r in Revision::ALL {
                assert_eq!(rule(r), r >= since, "{r}");
            }
        }
    }
}
