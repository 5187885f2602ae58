//! Code shared by the integration tests (test-only; never part of the product).

pub mod browser;
