//! The UI's components, one per file: the page ([`app::App`]), the issue panel, the copy button,
//! the validate panel, the claims view and the issuer-key form. They hold signals and markup only; the rules they apply live in the
//! pure modules of the crate, and every HTTP call goes through [`crate::api`].
//!
//! Elements that tests drive carry a stable `id` and `data-testid`.

pub mod app;
pub mod claims;
pub mod copy_button;
pub mod field;
pub mod issue;
pub mod issuer_key;
pub mod validate;
