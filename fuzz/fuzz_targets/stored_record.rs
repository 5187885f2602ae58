#![no_main]
//! `cargo +nightly fuzz run stored_record`: the body is `mcp_auth_testkit::fuzzing::stored_record`.
libfuzzer_sys::fuzz_target!(|data: &[u8]| mcp_auth_testkit::fuzzing::stored_record(data));
