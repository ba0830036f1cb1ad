//! HTTP tests: the real router on a real port, and the real `token-service` binary for
//! start-up, restart and `kill -9`.

mod helpers;
mod issue;
mod process;
mod validate;
