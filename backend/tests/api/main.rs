//! HTTP tests: the real router on a real port, and the real `token-service` binary for
//! start-up, restart and `kill -9`. Every answer any of them receives is checked against the
//! OpenAPI document (`schema.rs`).

#![allow(clippy::unwrap_used, clippy::expect_used)] // a test fails loudly by design

mod helpers;
mod issue;
mod lifecycle;
mod openapi;
mod ops;
mod process;
mod schema;
mod validate;
