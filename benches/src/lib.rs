//! # mcp-auth-benches
//!
//! Fixtures shared by the criterion benches (`benches/`) and the `ratios` binary:
//!
//! - [`tokens`]: Ed25519, P-256 and RSA-2048 keys generated with aws-lc-rs, realistic RFC 9068
//!   access tokens (~600 bytes), and the four ways of checking one: raw aws-lc-rs signature
//!   verification with a pre-parsed key, our [`mcp_auth_proto::jwt::validate`], jsonwebtoken's
//!   `decode` with the same checks, and the resource server's verified-token cache.
//! - [`flow`]: an authorization server with a registered client and the recorded requests of a
//!   whole flow (registration, authorization, code exchange, refresh), and the client state
//!   machine's steps with their inputs.
//! - [`durable`]: whole flows (registration, authorization, code exchange) over loopback HTTP
//!   to a stack whose AS keeps its state in memory, in SQLite or in PostgreSQL.
//! - [`interleave`]: the interleaved A/B harness (short blocks of each candidate in turn, so
//!   that machine noise hits all of them alike).
//! - [`load`]: the loopback HTTP measurement (a hyper endpoint behind the real `AuthLayer`,
//!   or the same endpoint without it, and a bounded keep-alive load generator).
//! - [`signers`]: ES256 and RS256 signers with keys parsed once (for minting test tokens and
//!   raw-signing baselines).

pub mod durable;
pub mod flow;
pub mod interleave;
pub mod load;
pub mod signers;
pub mod tokens;
