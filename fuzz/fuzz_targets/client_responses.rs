#![no_main]
//! `cargo +nightly fuzz run client_responses`: the body is `mcp_auth_testkit::fuzzing::client_responses`.
libfuzzer_sys::fuzz_target!(|data: &[u8]| mcp_auth_testkit::fuzzing::client_responses(data));
