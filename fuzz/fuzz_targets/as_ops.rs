#![no_main]
//! `cargo +nightly fuzz run as_ops`: the body is `mcp_auth_testkit::fuzzing::as_ops`.
libfuzzer_sys::fuzz_target!(|data: &[u8]| mcp_auth_testkit::fuzzing::as_ops(data));
