#![no_main]
//! `cargo +nightly fuzz run mcp_guard`: the body is `mcp_auth_testkit::fuzzing::mcp_guard`.
libfuzzer_sys::fuzz_target!(|data: &[u8]| mcp_auth_testkit::fuzzing::mcp_guard(data));
