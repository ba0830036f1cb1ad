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
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct IssueResponse {
    /// The token: a compact JWS (RFC 7515 section 7.1), HS256-signed, with claims `uuid`, `iat`
    /// and `exp`, and `purpose` and `sub` when it was issued with them.
    pub token: String,
    /// When the token expires: its `exp` claim as an RFC 3339 UTC timestamp, e.g.
    /// `2026-11-29T17:00:00Z`.
    pub expiration: String,
}

/// Body of `POST /tokens`.
/// Unknown fields are ignored, as the original service did.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ValidateRequest {
    /// The token to validate and consume.
    pub token: String,
    /// The purpose the caller accepts the token for. A token issued with a purpose is accepted
    /// only when this names the same one (and one issued without, only when this is absent);
    /// otherwise `wrong_purpose`, and the token is not consumed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub purpose: Option<String>,
    /// The subject the caller accepts the token for, compared as `purpose` is (`wrong_subject`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject: Option<String>,
}

impl ValidateRequest {
    /// A request for `token` with no purpose and no subject.
    pub fn new(token: impl Into<String>) -> Self {
        Self { token: token.into(), purpose: None, subject: None }
    }
}

/// Body of `POST /tokens/status` and `POST /tokens/revoke`. Unknown fields are ignored.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct TokenRequest {
    /// The token to look at or revoke.
    pub token: String,
}

/// Where a token stands, as `POST /tokens/status` and `POST /tokens/revoke` report it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum TokenState {
    /// Genuine, unexpired and not used: a validation now would succeed.
    Unused,
    /// Used (`usedAt` says when).
    Used,
    /// Its `exp` has passed.
    Expired,
    /// Revoked (`revokedAt` says when): by `POST /tokens/revoke` or by a superseding issue.
    Revoked,
    /// Not a token of this service (forged, malformed, or unknown): `reason` says which.
    Invalid,
}

/// Body of `200 OK` from `POST /tokens/status` and `POST /tokens/revoke`. Times are RFC 3339
/// UTC.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct StatusResponse {
    /// Where the token stands.
    pub state: TokenState,
    /// When it expires (its `exp`); absent for `invalid`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expiration: Option<String>,
    /// When it was used; with `used`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub used_at: Option<String>,
    /// When it was revoked; with `revoked`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revoked_at: Option<String>,
    /// The purpose it was issued for, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub purpose: Option<String>,
    /// Why it is `invalid`: `invalid_signature`, `malformed_token` or `unknown_token`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<Reason>,
}

impl StatusResponse {
    /// A state with no times.
    pub fn new(state: TokenState) -> Self {
        Self {
            state,
            expiration: None,
            used_at: None,
            revoked_at: None,
            purpose: None,
            reason: None,
        }
    }
}

/// Longest `purpose`, in characters (each of `[a-z0-9._-]`).
pub const MAX_PURPOSE_CHARS: usize = 64;
/// Longest `subject`, in bytes of UTF-8.
pub const MAX_SUBJECT_BYTES: usize = 256;

/// Checks a purpose: 1 to [`MAX_PURPOSE_CHARS`] characters of `[a-z0-9._-]`, e.g.
/// `password-reset`.
///
/// # Errors
/// A message saying what is allowed, for a `400 bad_request`.
pub fn check_purpose(purpose: &str) -> Result<(), String> {
    let allowed = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit() || "._-".contains(c);
    if purpose.is_empty() || purpose.len() > MAX_PURPOSE_CHARS || !purpose.chars().all(allowed) {
        return Err(format!(
            "purpose must be 1 to {MAX_PURPOSE_CHARS} characters of a-z, 0-9, '.', '_' and '-'"
        ));
    }
    Ok(())
}

/// Checks a subject: 1 to [`MAX_SUBJECT_BYTES`] bytes of UTF-8. It is an opaque id, readable by
/// whoever holds the token (claims are signed, not encrypted): use an account number, not an
/// e-mail address.
///
/// # Errors
/// A message saying what is allowed, for a `400 bad_request`.
pub fn check_subject(subject: &str) -> Result<(), String> {
    if subject.is_empty() || subject.len() > MAX_SUBJECT_BYTES {
        return Err(format!("subject must be 1 to {MAX_SUBJECT_BYTES} bytes of UTF-8"));
    }
    Ok(())
}

/// Body of every `POST /tokens` answer, and of every error answer of the API (`4xx`, `5xx`), so
/// a client reads one shape whatever happened.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct ValidateResponse {
    /// `true` only when this attempt consumed a valid token: its single use happened now, or
    /// (with `replayed`) earlier under the same `Idempotency-Key`.
    pub is_valid: bool,
    /// What happened, in words meant for people (not for parsing; use `reason`).
    pub message: String,
    /// Why the token or request was refused; absent when `is_valid` is true.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<Reason>,
    /// `true` when this answer repeats the success of an earlier request with the same
    /// `Idempotency-Key` (its answer was lost, so the client retried); absent otherwise.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub replayed: bool,
    /// When the token was used, RFC 3339 UTC: with `replayed`, and with `already_used`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub used_at: Option<String>,
    /// The request's id (its `X-Request-Id`), on error answers: quote it when reporting a
    /// problem, it finds the server's log lines of that request.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
}

/// Machine-readable cause of a refusal, serialized in `snake_case` (e.g. `"already_used"`).
///
/// The one list of reasons: the backend answers with them, the UI reads them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum Reason {
    /// The token is genuine and unexpired but another attempt used it already (`usedAt` says
    /// when).
    AlreadyUsed,
    /// The token's `exp` has passed.
    Expired,
    /// The signature does not match: the token was forged or altered.
    InvalidSignature,
    /// The token is not a well-formed HS256 JWT with the expected claims.
    MalformedToken,
    /// The token is genuine and unexpired, but the service has no record of it (its record was
    /// lost, or it was restored from a backup that predates it).
    UnknownToken,
    /// The token was revoked before it was used (by `POST /tokens/revoke`, or superseded by a
    /// newer token of the same purpose and subject).
    Revoked,
    /// The token was issued for another purpose than the request names; it was not consumed.
    WrongPurpose,
    /// The token was issued for another subject than the request names; it was not consumed.
    WrongSubject,
    /// The purpose and subject already have the most unused tokens allowed; issue with
    /// `supersede=true` instead (HTTP 409).
    TooManyOutstanding,
    /// The request itself was malformed: not JSON, no string `token`, bad query parameter, bad
    /// `Idempotency-Key`.
    BadRequest,
    /// No such endpoint (HTTP 404).
    NotFound,
    /// The endpoint exists, but not with this method (HTTP 405).
    MethodNotAllowed,
    /// The request body was larger than [`MAX_BODY_BYTES`].
    PayloadTooLarge,
    /// The token store could not be reached and nothing was changed; retrying later may succeed.
    Unavailable,
    /// The server has more work queued than it can finish in time; retry after `Retry-After`.
    Overloaded,
    /// The store could not confirm whether the token was used by this request. Retry with the
    /// same `Idempotency-Key` header: the retry gets the definite answer.
    OutcomeUnknown,
    /// An unexpected server failure; details are in the server's log, never in the response.
    Internal,
    /// The endpoint needs an issuer key (`Authorization: Bearer <key>`, RFC 6750 section 2.1)
    /// and the request had none or a wrong one (HTTP 401 with `WWW-Authenticate: Bearer`).
    Unauthorized,
    /// This client sent more requests than its per-minute limit allows; retry after
    /// `Retry-After` seconds (HTTP 429, RFC 6585 section 4).
    RateLimited,
}

impl Reason {
    /// Every reason, in declaration order (for documentation and exhaustive tests).
    pub const ALL: [Reason; 19] = [
        Reason::AlreadyUsed,
        Reason::Expired,
        Reason::InvalidSignature,
        Reason::MalformedToken,
        Reason::UnknownToken,
        Reason::Revoked,
        Reason::WrongPurpose,
        Reason::WrongSubject,
        Reason::TooManyOutstanding,
        Reason::BadRequest,
        Reason::NotFound,
        Reason::MethodNotAllowed,
        Reason::PayloadTooLarge,
        Reason::Unavailable,
        Reason::Overloaded,
        Reason::OutcomeUnknown,
        Reason::Internal,
        Reason::Unauthorized,
        Reason::RateLimited,
    ];

    /// The `snake_case` wire name, as in the JSON (`"already_used"`).
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::AlreadyUsed => "already_used",
            Reason::Expired => "expired",
            Reason::InvalidSignature => "invalid_signature",
            Reason::MalformedToken => "malformed_token",
            Reason::UnknownToken => "unknown_token",
            Reason::Revoked => "revoked",
            Reason::WrongPurpose => "wrong_purpose",
            Reason::WrongSubject => "wrong_subject",
            Reason::TooManyOutstanding => "too_many_outstanding",
            Reason::BadRequest => "bad_request",
            Reason::NotFound => "not_found",
            Reason::MethodNotAllowed => "method_not_allowed",
            Reason::PayloadTooLarge => "payload_too_large",
            Reason::Unavailable => "unavailable",
            Reason::Overloaded => "overloaded",
            Reason::OutcomeUnknown => "outcome_unknown",
            Reason::Internal => "internal",
            Reason::Unauthorized => "unauthorized",
            Reason::RateLimited => "rate_limited",
        }
    }
}

/// Name of the request header that carries a client's attempt id on `POST /tokens` (IETF
/// httpapi draft "The Idempotency-Key HTTP Header Field"). Retries of one validation send the
/// same value; a new validation sends a new one (a UUID v4 is the usual choice).
pub const IDEMPOTENCY_KEY_HEADER: &str = "Idempotency-Key";

/// Longest accepted `Idempotency-Key`, in bytes (quotes excluded).
pub const MAX_IDEMPOTENCY_KEY_BYTES: usize = 128;

/// A client's attempt id: 1 to [`MAX_IDEMPOTENCY_KEY_BYTES`] characters of `A-Z a-z 0-9 - _ . :`
/// (a UUID, a ULID or base64url all fit). The draft defines the header as a Structured Field
/// string (RFC 8941 section 3.3.3), so one pair of surrounding double quotes is accepted and
/// removed; the bare form that most clients send is accepted too.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct IdempotencyKey(String);

impl IdempotencyKey {
    /// Parses a header value.
    ///
    /// # Errors
    /// A message saying what is wrong, for a `400 bad_request`.
    pub fn parse(value: &str) -> Result<Self, String> {
        let bare = value.strip_prefix('"').and_then(|v| v.strip_suffix('"')).unwrap_or(value);
        let allowed = |c: char| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | ':');
        if bare.is_empty() || bare.len() > MAX_IDEMPOTENCY_KEY_BYTES || !bare.chars().all(allowed) {
            return Err(format!(
                "the {IDEMPOTENCY_KEY_HEADER} header must be 1 to {MAX_IDEMPOTENCY_KEY_BYTES} \
                 characters of A-Z, a-z, 0-9, '-', '_', '.' and ':' (a UUID, for example)"
            ));
        }
        Ok(Self(bare.to_owned()))
    }

    /// The key, without quotes.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl ValidateResponse {
    /// The answer for a token that was valid and is now consumed.
    pub fn valid(message: impl Into<String>) -> Self {
        Self {
            is_valid: true,
            message: message.into(),
            reason: None,
            replayed: false,
            used_at: None,
            request_id: None,
        }
    }

    /// The answer for a refused token or request.
    pub fn refused(reason: Reason, message: impl Into<String>) -> Self {
        Self {
            is_valid: false,
            message: message.into(),
            reason: Some(reason),
            replayed: false,
            used_at: None,
            request_id: None,
        }
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
        f.debug_struct("ValidateRequest")
            .field("token", &Redacted)
            .field("purpose", &self.purpose)
            .field("subject", &self.subject)
            .finish()
    }
}

impl fmt::Debug for TokenRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenRequest").field("token", &Redacted).finish()
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
        let request = ValidateRequest::new("secret.jwt.value");
        for printed in [format!("{issued:?}"), format!("{request:?}")] {
            assert!(!printed.contains("secret.jwt.value"), "{printed}");
            assert!(printed.contains("<redacted>"), "{printed}");
        }
    }

    #[test]
    fn reason_names_match_their_serde_names() {
        for reason in Reason::ALL {
            assert_eq!(serde_json::to_value(reason).unwrap(), json!(reason.as_str()));
        }
    }

    #[test]
    fn a_replayed_answer_says_so_and_when_the_token_was_used() {
        let body = ValidateResponse {
            replayed: true,
            used_at: Some("2026-11-29T17:00:00Z".into()),
            ..ValidateResponse::valid("again")
        };
        assert_eq!(
            serde_json::to_value(body).unwrap(),
            json!({"isValid": true, "message": "again", "replayed": true,
                   "usedAt": "2026-11-29T17:00:00Z"})
        );
    }

    #[test]
    fn purposes_and_subjects_are_bounded() {
        for good in ["password-reset", "a", "x.y_z-9", &"p".repeat(MAX_PURPOSE_CHARS)] {
            assert!(check_purpose(good).is_ok(), "{good:?}");
        }
        for bad in ["", "Reset", "a b", "a/b", "é", &"p".repeat(MAX_PURPOSE_CHARS + 1)] {
            assert!(check_purpose(bad).is_err(), "{bad:?}");
        }
        assert!(check_subject("user-42").is_ok());
        assert!(check_subject(&"é".repeat(MAX_SUBJECT_BYTES / 2)).is_ok());
        assert!(check_subject("").is_err());
        assert!(check_subject(&"s".repeat(MAX_SUBJECT_BYTES + 1)).is_err());
    }

    #[test]
    fn a_status_names_only_what_applies() {
        let status = StatusResponse {
            expiration: Some("2026-11-29T17:00:00Z".into()),
            ..StatusResponse::new(TokenState::Unused)
        };
        assert_eq!(
            serde_json::to_value(status).unwrap(),
            json!({"state": "unused", "expiration": "2026-11-29T17:00:00Z"})
        );
    }

    #[test]
    fn idempotency_keys_are_bounded_in_length_and_characters() {
        let uuid = "8e03978e-40d5-43e8-bc93-6894a57f9324";
        assert_eq!(IdempotencyKey::parse(uuid).unwrap().as_str(), uuid);
        assert_eq!(IdempotencyKey::parse(&format!("\"{uuid}\"")).unwrap().as_str(), uuid);
        let longest = "k".repeat(MAX_IDEMPOTENCY_KEY_BYTES);
        assert_eq!(IdempotencyKey::parse(&longest).unwrap().as_str(), longest);
        for bad in ["", "\"\"", "a b", "a,b", "ä", "\"abc", "x\n", &format!("{longest}k")] {
            assert!(IdempotencyKey::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn a_validate_request_with_a_non_string_token_is_refused() {
        for body in [r#"{"token":42}"#, r#"{"token":null}"#, r#"{"token":["t"]}"#, r#"{}"#] {
            assert!(serde_json::from_str::<ValidateRequest>(body).is_err(), "{body}");
        }
    }
}
