//! The token service's web UI: issue a one-time token (optionally bound to a purpose and a
//! subject), see when it expires, copy it, read its claims, and validate (consume), check or
//! revoke a token, against the API of `backend/src/http.rs`.
//!
//! A Leptos 0.8 client-side app built by trunk (root `index.html` and `Trunk.toml`). The API base
//! URL is the page's origin unless `config.json` beside `index.html` names another at run time
//! ([`api_base`]).
//!
//! Layout:
//! - pure view logic, compiled and tested on every target: [`timing`] (countdown, RFC 3339,
//!   lifetime input), [`request`] (one button's request state machine), [`api_base`] (choosing
//!   and joining the base URL), [`answer`] (reading status and body into an answer or an error,
//!   verdicts), [`validation`] (one validation's `Idempotency-Key` and automatic retries),
//!   [`form`] (reading the forms: purpose, subject, supersede), [`status`] (Check status and
//!   Revoke answers in words), [`claims`] (a token's claims, decoded but not verified) and
//!   [`issuer_key`] (asking for an issuer key when the API wants one, kept in memory only);
//! - browser-only code, compiled for `wasm32` only because it needs `web-sys`, `gloo-net` and
//!   Leptos: `api` (every HTTP call), `browser` (clock, local time, random keys, clipboard) and
//!   `components`.

pub mod answer;
pub mod api_base;
pub mod claims;
pub mod form;
pub mod issuer_key;
pub mod request;
pub mod status;
pub mod timing;
pub mod validation;

#[cfg(target_arch = "wasm32")]
pub mod api;
#[cfg(target_arch = "wasm32")]
mod browser;
#[cfg(target_arch = "wasm32")]
pub mod components;

#[cfg(target_arch = "wasm32")]
pub use components::app::App;
