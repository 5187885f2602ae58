#![no_main]
//! `cargo +nightly fuzz run uri`: the body is `mcp_auth_proto::fuzzing::uri`.
libfuzzer_sys::fuzz_target!(|data: &[u8]| mcp_auth_proto::fuzzing::uri(data));
