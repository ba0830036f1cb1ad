//! Issuer authentication: who may issue and revoke tokens (and read metrics).
//!
//! Off unless issuer keys are configured (`TOKEN_SERVICE_ISSUER_KEYS`, `--issuer-keys-file`, or
//! on Lambda the Secrets Manager secret named by `TOKEN_SERVICE_ISSUER_KEYS_SECRET_ARN`). With
//! keys, every route in [`PROTECTED`] needs `Authorization: Bearer <key>` (RFC 6750 section
//! 2.1) with one of them; anything else is `401` with `WWW-Authenticate: Bearer` (RFC 6750
//! section 3). Validation and health stay open: whoever holds a token may use it.
//!
//! Keys are compared in constant time ([`subtle`]), each against every configured key, so
//! neither the content nor the position of a match shows in the timing.

use crate::http::ApiError;
use axum::extract::{Request, State};
use axum::http::{Method, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use std::fmt;
use std::sync::Arc;
use subtle::ConstantTimeEq;

/// Shortest accepted issuer key, in bytes: as long as the signing key (256 bits), so guessing
/// is hopeless and no rate limit is needed to protect it.
pub const MIN_ISSUER_KEY_BYTES: usize = 32;

/// The routes that need an issuer key when keys are configured: `(method, path)`.
pub const PROTECTED: &[(Method, &str)] =
    &[(Method::GET, "/tokens"), (Method::POST, "/tokens/revoke"), (Method::GET, "/metrics")];

/// The configured issuer keys (at least one). `Debug` shows only how many there are.
#[derive(Clone, PartialEq, Eq)]
pub struct IssuerKeys(Vec<Vec<u8>>);

impl IssuerKeys {
    /// Parses keys separated by commas or newlines (a file has one key per line); surrounding
    /// whitespace, empty entries and lines that start with `#` (comments) are ignored, so no key
    /// may start with `#`.
    ///
    /// # Errors
    /// A message (never containing a key) if there is no key or one is shorter than
    /// [`MIN_ISSUER_KEY_BYTES`].
    pub fn parse(text: &str) -> Result<Self, String> {
        let keys: Vec<Vec<u8>> = text
            .lines()
            .filter(|line| !line.trim_start().starts_with('#'))
            .flat_map(|line| line.split(','))
            .map(str::trim)
            .filter(|k| !k.is_empty())
            .map(|k| k.as_bytes().to_vec())
            .collect();
        if keys.is_empty() {
            return Err("no issuer key given".into());
        }
        if let Some((i, key)) =
            keys.iter().enumerate().find(|(_, k)| k.len() < MIN_ISSUER_KEY_BYTES)
        {
            return Err(format!(
                "issuer key {} of {} is {} bytes; issuer keys must be at least \
                 {MIN_ISSUER_KEY_BYTES}",
                i + 1,
                keys.len(),
                key.len()
            ));
        }
        Ok(Self(keys))
    }

    /// Whether `presented` is one of the keys, compared in constant time against all of them.
    pub fn accepts(&self, presented: &[u8]) -> bool {
        let mut found = subtle::Choice::from(0);
        for key in &self.0 {
            found |= key.as_slice().ct_eq(presented);
        }
        found.into()
    }

    /// How many keys there are.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Never true: [`Self::parse`] refuses an empty list.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Debug for IssuerKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "IssuerKeys({} keys, <redacted>)", self.0.len())
    }
}

/// Whether `(method, path)` needs an issuer key.
pub fn is_protected(method: &Method, path: &str) -> bool {
    PROTECTED.iter().any(|(m, p)| m == method && *p == path)
}

/// The middleware: passes requests to unprotected routes, and to protected ones with a valid
/// `Authorization: Bearer` key; answers `401` otherwise.
pub async fn require_issuer_key(
    State(keys): State<Arc<IssuerKeys>>,
    request: Request,
    next: Next,
) -> Response {
    if !is_protected(request.method(), request.uri().path()) {
        return next.run(request).await;
    }
    let presented = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, key)| key.trim());
    match presented {
        Some(key) if keys.accepts(key.as_bytes()) => next.run(request).await,
        Some(_) => ApiError::Unauthorized { presented: true }.into_response(),
        None => ApiError::Unauthorized { presented: false }.into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: &str = "issuer-key-a-issuer-key-a-issuer-key-a";
    const B: &str = "issuer-key-b-issuer-key-b-issuer-key-b";

    #[test]
    fn issuer_keys_are_comma_or_line_separated_and_at_least_32_bytes() {
        let keys = IssuerKeys::parse(&format!(" {A} ,\n{B}\n\n")).unwrap();
        assert_eq!(keys.len(), 2);
        assert!(keys.accepts(A.as_bytes()));
        assert!(keys.accepts(B.as_bytes()));
        assert!(!keys.accepts(b""));
        assert!(!keys.accepts(&A.as_bytes()[..A.len() - 1]));
        assert!(!keys.accepts(format!("{A}x").as_bytes()));
        assert_eq!(IssuerKeys::parse(" , \n").unwrap_err(), "no issuer key given");
        let short = IssuerKeys::parse(&format!("{A},short-key")).unwrap_err();
        assert_eq!(short, "issuer key 2 of 2 is 9 bytes; issuer keys must be at least 32");
    }

    #[test]
    fn comment_lines_in_an_issuer_keys_file_are_not_keys() {
        let comment = "# issuer keys for the production deployment, one a line";
        let keys = IssuerKeys::parse(&format!("{comment}\n{A}\n  # {B}\n")).unwrap();
        assert_eq!(keys.len(), 1);
        assert!(keys.accepts(A.as_bytes()));
        assert!(!keys.accepts(comment.as_bytes()));
        assert!(!keys.accepts(format!("# {B}").as_bytes()) && !keys.accepts(B.as_bytes()));
        assert_eq!(IssuerKeys::parse(comment).unwrap_err(), "no issuer key given");
    }

    #[test]
    fn issuer_keys_never_print_themselves() {
        let keys = IssuerKeys::parse(A).unwrap();
        assert_eq!(format!("{keys:?}"), "IssuerKeys(1 keys, <redacted>)");
    }

    #[test]
    fn issuing_and_metrics_are_protected_and_validation_and_health_are_not() {
        assert!(is_protected(&Method::GET, "/tokens"));
        assert!(is_protected(&Method::GET, "/metrics"));
        assert!(is_protected(&Method::POST, "/tokens/revoke"));
        assert!(!is_protected(&Method::POST, "/tokens/status"));
        assert!(!is_protected(&Method::POST, "/tokens"));
        assert!(!is_protected(&Method::GET, "/health"));
        assert!(!is_protected(&Method::GET, "/health/ready"));
    }
}
