#![no_main]
//! `cargo +nightly fuzz run www_authenticate`: the body is `mcp_auth_testkit::fuzzing::www_authenticate`.
libfuzzer_sys::fuzz_target!(|data: &[u8]| mcp_auth_testkit::fuzzing::www_authenticate(data));
