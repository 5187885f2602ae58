//! # mcp-auth-testkit: test support for mcp-auth
//!
//! What the tests, the fuzzers, the benchmarks and the model share, kept out of the product:
//! `mcp-auth-proto` and the `mcp-auth` server never link this crate (CI checks it with
//! `cargo tree -p mcp-auth -e normal`), and `arbitrary` is a dependency of this crate only.
//!
//! - [`harness`]: an authorization server, a resource server and a client wired together in
//!   memory on simulated time, with fixed keys and predictable entropy, and the small helpers
//!   the tests use to read its answers (redirect queries, error-page links, forms).
//! - [`fuzzing`]: the bodies of the libFuzzer targets of `fuzz/`, which the stable test
//!   `impl/proto/tests/fuzz_corpus.rs` also replays over every checked-in input.
//!
//! - `postgres` (feature `postgres`): a PostgreSQL server for the store tests (`MCP_AUTH_TEST_DATABASE_URL`, else
//!   a throwaway cluster started once per test process) and a fresh database per test.
//!
//! Nothing here is secure: the keys come from fixed seeds and the entropy is a counter.

#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod fuzzing;
pub mod harness;
#[cfg(feature = "postgres")]
pub mod postgres;
