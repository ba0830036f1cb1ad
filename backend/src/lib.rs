//! The one-time token service.
//!
//! - [`tokens`]: the use cases, issue and validate, written against a [`store::TokenStore`], a
//!   [`keys::SigningKey`] and a [`clock::Clock`]; they know nothing of HTTP or AWS.
//! - [`store`]: where issued tokens wait to be used: the store trait, its conformance suite and
//!   its implementations.
//! - [`http`]: the axum router that translates between the `shared` wire types and the use
//!   cases; the local server and the Lambda entry point both serve it.
//! - [`app`]: the one way both entry points build the service from [`app::Settings`].
//! - [`server`]: configuration and start-up of the local server binary `token-service`.
//! - [`lambda`]: configuration and start-up of the AWS Lambda binary `token-service-lambda`.
//! - [`contract`]: names shared with the CDK app (`contract.json`).
//! - Running it for real: [`ops`] stacks [`request`] (ids, client addresses, deadlines),
//!   [`limits`] (rate limits) and [`auth`] (issuer keys) around the router; [`observe`] is what
//!   the use cases report, [`audit`] and [`metrics`] record it; [`serve`] is the local server's
//!   connection loop (header timeout, connection cap).

pub mod app;
pub mod audit;
pub mod auth;
pub mod clock;
pub mod contract;
pub mod http;
pub mod keys;
pub mod lambda;
pub mod limits;
pub mod metrics;
pub mod observe;
pub mod ops;
pub mod request;
pub mod serve;
#[cfg(feature = "embedded-store")]
pub mod server;
pub mod store;
pub mod tokens;
