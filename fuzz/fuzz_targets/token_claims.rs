#![no_main]
//! `cargo +nightly fuzz run token_claims`: the body is `mcp_auth_testkit::fuzzing::token_claims`.
libfuzzer_sys::fuzz_target!(|data: &[u8]| mcp_auth_testkit::fuzzing::token_claims(data));
