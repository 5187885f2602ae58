#![no_main]
//! `cargo +nightly fuzz run bearer_header`: the body is `mcp_auth_testkit::fuzzing::bearer_header`.
libfuzzer_sys::fuzz_target!(|data: &[u8]| mcp_auth_testkit::fuzzing::bearer_header(data));
