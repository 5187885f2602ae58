#![no_main]
//! `cargo +nightly fuzz run client_document`: the body is `mcp_auth_testkit::fuzzing::client_document`.
libfuzzer_sys::fuzz_target!(|data: &[u8]| mcp_auth_testkit::fuzzing::client_document(data));
