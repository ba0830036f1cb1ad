//! The token service's wire format: the JSON bodies of `GET /tokens` and `POST /tokens`, shared
//! by the backend (which produces them) and the web UI (which reads them).
//!
//! Only serde types and pure checks live here, so the crate builds for `wasm32-unknown-unknown`
//! as well as natively. Field names follow the original service this one replaces (`isValid`,
//! `expiration`), so existing clients keep working.
//!
//! Types that carry a token print it redacted in `Debug`: a bearer token in a log line is a
//! token handed to whoever reads the logs.

use serde::{Deserialize, Serialize};
use std::fmt;

/// Largest request body the API accepts, in bytes. Larger bodies get `413 Payload Too Large`.
///
/// An issued token is about 150 bytes; 8 KiB leaves room for any honest client.
pub const MAX_BODY_BYTES: usize = 8 * 1024;

/// Body of `200 OK` from `GET /tokens`.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IssueResponse {
    /// The token: a compact JWS (RFC 7515 section 7.1), HS256-signed, with claims `uuid`, `iat`
    /// and `exp`.
    pub token: String,
    /// When the token expires: its `exp` claim as an RFC 3339 UTC timestamp, e.g.
    /// `2026-11-29T17:00:00Z`.
    pub expiration: String,
}

/// Body of `POST /tokens`.
/// Unknown fields are ignored, as the original service did.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ValidateRequest {
    /// The token to validate and consume.
    pub token: String,
}

/// Body of every `POST /tokens` answer, and of every error answer of the API (`4xx`, `5xx`), so
/// a client reads one shape whatever happened.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ValidateResponse {
    /// `true` only when this call consumed a valid token: its single use happened now.
    pub is_valid: bool,
    /// What happened, in words meant for people (not for parsing; use `reason`).
    pub message: String,
    /// Why the token or request was refused; absent when `is_valid` is true.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<Reason>,
}

/// Machine-readable cause of a refusal, serialized in `snake_case` (e.g. `"already_used"`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Reason {
    /// The token was genuine and unexpired but has been consumed already (or never stored).
    AlreadyUsed,
    /// The token's `exp` has passed.
    Expired,
    /// The signature does not match: the token was forged or altered.
    InvalidSignature,
    /// The token is not a well-formed HS256 JWT with the expected claims.
    MalformedToken,
    /// The request itself was malformed: not JSON, no string `token`, bad query parameter.
    BadRequest,
    /// The request body was larger than [`MAX_BODY_BYTES`].
    PayloadTooLarge,
    /// The token store could not be reached; retrying later may succeed.
    Unavailable,
    /// An unexpected server failure; details are in the server's log, never in the response.
    Internal,
}

impl ValidateResponse {
    /// The answer for a token that was valid and is now consumed.
    pub fn valid(message: impl Into<String>) -> Self {
        Self { is_valid: true, message: message.into(), reason: None }
    }

    /// The answer for a refused token or request.
    pub fn refused(reason: Reason, message: impl Into<String>) -> Self {
        Self { is_valid: false, message: message.into(), reason: Some(reason) }
    }
}

impl fmt::Debug for IssueResponse {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IssueResponse")
            .field("token", &Redacted)
            .field("expiration", &self.expiration)
            .finish()
    }
}

impl fmt::Debug for ValidateRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ValidateRequest").field("token", &Redacted).finish()
    }
}

/// Stands in for a secret in `Debug` output.
struct Redacted;

impl fmt::Debug for Redacted {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_valid_answer_has_the_original_services_field_names() {
        let body = serde_json::to_value(ValidateResponse::valid("Token is valid")).unwrap();
        assert_eq!(body, json!({"isValid": true, "message": "Token is valid"}));
    }

    #[test]
    fn a_refusal_names_its_reason_in_snake_case() {
        let body = ValidateResponse::refused(Reason::AlreadyUsed, "used");
        assert_eq!(
            serde_json::to_value(body).unwrap(),
            json!({"isValid": false, "message": "used", "reason": "already_used"})
        );
    }

    #[test]
    fn an_issue_response_reads_the_original_shape() {
        let parsed: IssueResponse =
            serde_json::from_str(r#"{"token":"a.b.c","expiration":"2026-11-29T17:00:00Z"}"#)
                .unwrap();
        assert_eq!(parsed.token, "a.b.c");
        assert_eq!(parsed.expiration, "2026-11-29T17:00:00Z");
    }

    #[test]
    fn debug_output_never_shows_a_token() {
        let issued = IssueResponse { token: "secret.jwt.value".into(), expiration: "x".into() };
        let request = ValidateRequest { token: "secret.jwt.value".into() };
        for printed in [format!("{issued:?}"), format!("{request:?}")] {
            assert!(!printed.contains("secret.jwt.value"), "{printed}");
            assert!(printed.contains("<redacted>"), "{printed}");
        }
    }

    #[test]
    fn a_validate_request_with_a_non_string_token_is_refused() {
        for body in [r#"{"token":42}"#, r#"{"token":null}"#, r#"{"token":["t"]}"#, r#"{}"#] {
            assert!(serde_json::from_str::<ValidateRequest>(body).is_err(), "{body}");
        }
    }
}
