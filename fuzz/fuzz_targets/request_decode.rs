#![no_main]
//! `cargo +nightly fuzz run request_decode`: the body is `mcp_auth_testkit::fuzzing::request_decode`.
libfuzzer_sys::fuzz_target!(|data: &[u8]| mcp_auth_testkit::fuzzing::request_decode(data));
