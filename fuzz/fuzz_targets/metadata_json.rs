#![no_main]
//! `cargo +nightly fuzz run metadata_json`: the body is `mcp_auth_testkit::fuzzing::metadata_json`.
libfuzzer_sys::fuzz_target!(|data: &[u8]| mcp_auth_testkit::fuzzing::metadata_json(data));
