#![no_main]
//! `cargo +nightly fuzz run uri`: the body is `mcp_auth_testkit::fuzzing::uri`.
libfuzzer_sys::fuzz_target!(|data: &[u8]| mcp_auth_testkit::fuzzing::uri(data));
