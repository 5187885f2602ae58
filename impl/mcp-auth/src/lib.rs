//! # mcp-auth: the hyper drivers of MCP authorization
//!
//! This crate moves bytes between the network and the sans-IO core [`mcp_auth_proto`]; it
//! makes no protocol decision of its own. It supplies the real clock ([`net::now`]) and the
//! operating system's randomness ([`net::OsEntropy`]).
//!
//! - [`as_server`]: the OAuth authorization server over hyper 1, one core call per request.
//! - the MCP server's guard is [`mcp_auth_layer::AuthLayer`] (the `mcp-auth-layer` crate, for
//!   anyone who protects their own MCP server), in front of rmcp's Streamable HTTP service.
//! - [`mcp`]: the demo MCP server (rmcp handler pinned to protocol 2025-06-18).
//! - [`client`]: the client, driving the core's state machine over hyper-util's client.
//! - [`transcript`]: the numbered, readable record of every HTTP exchange.
//! - [`keys`]: signing keys (Ed25519, P-256, RSA) from PKCS#8 PEM files.
//! - [`probe`]: the driver of `mcp-auth probe`, which grades other deployments by requirement.
//! - [`demo`]: the in-process end-to-end demonstration behind `mcp-auth demo`.

#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod as_server;
pub mod client;
pub mod demo;
pub mod keys;
pub mod mcp;
pub mod net;
pub mod probe;
pub mod store;
pub mod tls;
pub mod transcript;
pub mod users;
