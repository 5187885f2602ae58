#![no_main]
//! `cargo +nightly fuzz run token_validate`: the body is `mcp_auth_testkit::fuzzing::token_validate`.
libfuzzer_sys::fuzz_target!(|data: &[u8]| mcp_auth_testkit::fuzzing::token_validate(data));
