#![no_main]
//! `cargo +nightly fuzz run token_differential`: the body is `mcp_auth_testkit::fuzzing::token_differential`.
libfuzzer_sys::fuzz_target!(|data: &[u8]| mcp_auth_testkit::fuzzing::token_differential(data));
