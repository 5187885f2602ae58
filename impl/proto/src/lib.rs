//! # mcp-auth-proto: the sans-IO core of MCP authorization
//!
//! This crate holds **all** the protocol logic of MCP authorization (revision 2025-06-18 by
//! default; 2025-11-25 and 2026-07-28 as switches, see [`revision`]):
//! the OAuth 2.1 authorization server ([`server`]), the MCP server as resource server
//! ([`resource`]) and the MCP client ([`client`]).
//!
//! It does no I/O. It never reads a clock or the OS random source: every entry point takes
//! `now` ([`UnixTime`]) and an [`Entropy`] source as arguments, and every state is a plain value
//! (`Clone + Eq + Hash + Debug`, ordered maps), so that the same code runs in
//!
//! - the hyper servers and client of the `mcp-auth` crate, with the real clock and OS entropy;
//! - the stateright model of `mcp-auth-model`, which holds whole states and explores them;
//! - the in-memory harness, the fuzz targets and the criterion benchmarks (their support code
//!   lives in `mcp-auth-testkit`, which this crate and the servers never link).
//!
//! Every refusal is a [`Rejection`] that names its requirement in `spec/requirements.md` and
//! maps to an OAuth wire error code ([`ErrorCode`]).

#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod address;
pub mod cache;
pub mod challenge;
pub mod client;
pub mod endpoint;
pub mod entropy;
pub mod error;
pub mod form;
pub mod guard;
pub mod http;
pub mod introspection;
pub mod jwt;
pub mod metadata;
pub mod mutations;
pub mod pkce;
pub mod probe;
pub mod redact;
pub mod resource;
pub mod revision;

/// The requirement catalogue (`spec/requirements.md`), one anchor per requirement: a
/// citation `mcp-auth <version> <ID>` is this page's `#ID`, and doc comments link to rows as
/// `[AZ-3](crate::requirements#AZ-3)`.
#[doc = include_str!(concat!(env!("OUT_DIR"), "/requirements.md"))]
#[allow(rustdoc::bare_urls)] // the catalogue names example URLs as text
pub mod requirements {}
pub mod server;
pub mod time;
pub mod types;
pub mod uri;

pub use entropy::{Entropy, Sequential};
pub use error::{ErrorCode, Fault, Rejection};
pub use revision::Revision;
pub use time::UnixTime;

/// The MCP protocol revision of the lesson, the default of every configuration
/// ([`Revision::default`]).
pub const MCP_PROTOCOL_VERSION: &str = Revision::V2025_06_18.as_str();

#[cfg(test)]
mod state_is_a_value {
    fn assert_value<T: Clone + Eq + std::hash::Hash + std::fmt::Debug>() {}

    #[test]
    fn states_are_clone_eq_hash_debug() {
        assert_value::<crate::server::AuthorizationServer>();
        assert_value::<crate::resource::ResourceServer>();
        assert_value::<crate::client::Client>();
    }
}
