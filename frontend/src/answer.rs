//! Turning an HTTP exchange into what the UI shows: a typed body, or an [`ApiError`] that says
//! what went wrong in words for people.
//!
//! `api.rs` does the fetching; the reading of status and body lives here, pure, so every branch
//! (non-JSON bodies from proxies, error shapes, unexpected JSON) is tested natively. Nothing is
//! swallowed: every failure becomes a visible message.

use serde::de::DeserializeOwned;
use shared::{Reason, ValidateResponse};
use std::fmt;

/// Longest part of an unexpected body quoted back to the user, in characters.
const QUOTE_CHARS: usize = 80;

/// Why a request produced no usable answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ApiError {
    /// The request never got an HTTP answer: offline, DNS, refused connection, or a CORS refusal
    /// (browsers report all of these alike).
    Network {
        /// The URL requested.
        url: String,
        /// The browser's own description, e.g. `TypeError: Failed to fetch`.
        detail: String,
    },
    /// No answer arrived in time; the request was aborted.
    TimedOut {
        /// The URL requested.
        url: String,
        /// The time allowed, in seconds.
        secs: u32,
    },
    /// The API answered `4xx` or `5xx` with its usual JSON error body.
    Refused {
        /// The HTTP status, e.g. `400`.
        status: u16,
        /// The server's message, shown as is.
        message: String,
        /// The server's machine-readable cause, when it sent one.
        reason: Option<Reason>,
    },
    /// The answer was not the JSON the API sends (e.g. an HTML error page from a proxy).
    Unreadable {
        /// The HTTP status.
        status: u16,
        /// What was wrong, with the start of the body.
        detail: String,
    },
}

impl fmt::Display for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Network { url, detail } => write!(
                f,
                "Network error: could not reach {url} ({detail}). Check the connection and the API address."
            ),
            Self::TimedOut { url, secs } => {
                write!(f, "Network error: {url} did not answer within {secs} seconds.")
            }
            Self::Refused { status, message, .. } => {
                write!(f, "The server refused the request (HTTP {status}): {message}")
            }
            Self::Unreadable { status, detail } => {
                write!(f, "Unexpected answer from the server (HTTP {status}): {detail}")
            }
        }
    }
}

/// Reads an HTTP answer: a `2xx` body as `T`; a `4xx`/`5xx` body as the API's error shape
/// ([`ValidateResponse`]), giving [`ApiError::Refused`]; anything else as
/// [`ApiError::Unreadable`].
///
/// # Errors
/// As above; every error carries the status.
pub fn read_answer<T: DeserializeOwned>(status: u16, body: &str) -> Result<T, ApiError> {
    if (200..300).contains(&status) {
        return serde_json::from_str(body).map_err(|e| unreadable(status, body, &e));
    }
    match serde_json::from_str::<ValidateResponse>(body) {
        Ok(error) => {
            Err(ApiError::Refused { status, message: error.message, reason: error.reason })
        }
        Err(e) => Err(unreadable(status, body, &e)),
    }
}

fn unreadable(status: u16, body: &str, e: &serde_json::Error) -> ApiError {
    let what = if e.is_syntax() || e.is_eof() {
        "the answer is not JSON"
    } else {
        "the answer is JSON of an unexpected shape"
    };
    let trimmed = body.trim();
    let detail = if trimmed.is_empty() {
        format!("{what} (empty body)")
    } else {
        let mut quote: String = trimmed.chars().take(QUOTE_CHARS).collect();
        if trimmed.chars().count() > QUOTE_CHARS {
            quote.push('…');
        }
        format!("{what}: {quote}")
    };
    ApiError::Unreadable { status, detail }
}

/// The headline of a validation result, e.g. `Valid` or `Invalid: already used`.
pub fn verdict(answer: &ValidateResponse) -> &'static str {
    if answer.is_valid {
        return "Valid";
    }
    match answer.reason {
        Some(Reason::AlreadyUsed) => "Invalid: already used",
        Some(Reason::Expired) => "Invalid: expired",
        Some(Reason::InvalidSignature) => "Invalid: bad signature",
        Some(Reason::MalformedToken) => "Invalid: not a token",
        _ => "Invalid",
    }
}

/// The `snake_case` wire name of a reason (as in the JSON), for `data-reason` attributes.
pub fn reason_code(reason: Option<Reason>) -> &'static str {
    match reason {
        None => "",
        Some(Reason::AlreadyUsed) => "already_used",
        Some(Reason::Expired) => "expired",
        Some(Reason::InvalidSignature) => "invalid_signature",
        Some(Reason::MalformedToken) => "malformed_token",
        Some(Reason::BadRequest) => "bad_request",
        Some(Reason::PayloadTooLarge) => "payload_too_large",
        Some(Reason::Unavailable) => "unavailable",
        Some(Reason::Internal) => "internal",
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a failed unwrap is a failed test
mod tests {
    use super::*;
    use shared::IssueResponse;

    #[test]
    fn a_2xx_json_body_is_the_answer() {
        let issued: IssueResponse =
            read_answer(200, r#"{"token":"a.b.c","expiration":"2026-11-29T17:00:00Z"}"#).unwrap();
        assert_eq!(issued.token, "a.b.c");
        let checked: ValidateResponse = read_answer(
            200,
            r#"{"isValid":false,"message":"Token has already been used","reason":"already_used"}"#,
        )
        .unwrap();
        assert_eq!(
            checked,
            ValidateResponse::refused(Reason::AlreadyUsed, "Token has already been used")
        );
    }

    #[test]
    fn an_error_status_shows_the_servers_message() {
        let err = read_answer::<IssueResponse>(
            400,
            r#"{"isValid":false,"message":"ttl must be a whole number of seconds from 1 to 604800","reason":"bad_request"}"#,
        )
        .unwrap_err();
        assert_eq!(
            err,
            ApiError::Refused {
                status: 400,
                message: "ttl must be a whole number of seconds from 1 to 604800".into(),
                reason: Some(Reason::BadRequest),
            }
        );
        assert_eq!(
            err.to_string(),
            "The server refused the request (HTTP 400): ttl must be a whole number of seconds from 1 to 604800"
        );
    }

    #[test]
    fn a_non_json_body_is_reported_with_its_start() {
        let err =
            read_answer::<IssueResponse>(502, "<html><body>Bad Gateway</body></html>").unwrap_err();
        assert_eq!(
            err.to_string(),
            "Unexpected answer from the server (HTTP 502): the answer is not JSON: <html><body>Bad Gateway</body></html>"
        );
        let err = read_answer::<IssueResponse>(200, "<!doctype html>").unwrap_err();
        assert!(matches!(err, ApiError::Unreadable { status: 200, .. }), "{err:?}");
    }

    #[test]
    fn an_empty_or_long_body_is_described_briefly() {
        let err = read_answer::<IssueResponse>(500, "  ").unwrap_err();
        assert_eq!(
            err,
            ApiError::Unreadable {
                status: 500,
                detail: "the answer is not JSON (empty body)".into()
            }
        );
        let long = "x".repeat(500);
        let ApiError::Unreadable { detail, .. } =
            read_answer::<IssueResponse>(200, &long).unwrap_err()
        else {
            panic!("expected Unreadable");
        };
        assert_eq!(detail, format!("the answer is not JSON: {}…", "x".repeat(80)));
    }

    #[test]
    fn json_of_the_wrong_shape_is_not_an_answer() {
        let err = read_answer::<IssueResponse>(200, r#"{"status":"ok"}"#).unwrap_err();
        assert_eq!(
            err,
            ApiError::Unreadable {
                status: 200,
                detail: r#"the answer is JSON of an unexpected shape: {"status":"ok"}"#.into()
            }
        );
    }

    #[test]
    fn network_failures_name_the_url() {
        let err = ApiError::Network {
            url: "http://127.0.0.1:9/tokens".into(),
            detail: "TypeError: Failed to fetch".into(),
        };
        assert!(
            err.to_string().starts_with("Network error: could not reach http://127.0.0.1:9/tokens")
        );
        let err = ApiError::TimedOut { url: "https://a.example/tokens".into(), secs: 15 };
        assert_eq!(
            err.to_string(),
            "Network error: https://a.example/tokens did not answer within 15 seconds."
        );
    }

    #[test]
    fn verdicts_name_the_reason() {
        assert_eq!(verdict(&ValidateResponse::valid("ok")), "Valid");
        assert_eq!(
            verdict(&ValidateResponse::refused(Reason::AlreadyUsed, "m")),
            "Invalid: already used"
        );
        assert_eq!(verdict(&ValidateResponse::refused(Reason::Expired, "m")), "Invalid: expired");
        assert_eq!(verdict(&ValidateResponse::refused(Reason::Internal, "m")), "Invalid");
    }

    #[test]
    fn reason_codes_match_the_wire_format() {
        for reason in [
            Reason::AlreadyUsed,
            Reason::Expired,
            Reason::InvalidSignature,
            Reason::MalformedToken,
            Reason::BadRequest,
            Reason::PayloadTooLarge,
            Reason::Unavailable,
            Reason::Internal,
        ] {
            let wire = serde_json::to_value(reason).unwrap();
            assert_eq!(wire.as_str(), Some(reason_code(Some(reason))));
        }
        assert_eq!(reason_code(None), "");
    }
}
