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
        /// The server's `Retry-After` in seconds, when it sent one (with `503`) and the browser
        /// let the page read it (cross-origin, only if the API exposes the header).
        retry_after_secs: Option<u32>,
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

impl ApiError {
    /// Whether trying again soon may well get a definite answer, so the UI retries on its own:
    /// no answer at all (network failure, timeout), a `503` (`unavailable`, `overloaded` or
    /// `outcome_unknown`: the API's "try again"), or a gateway's `502`/`504` page (API Gateway
    /// gives up on a slow Lambda after 29 s, while the Lambda may still finish).
    pub fn is_transient(&self) -> bool {
        match self {
            Self::Network { .. } | Self::TimedOut { .. } => true,
            Self::Refused { status, reason, .. } => {
                *status == 503
                    || matches!(
                        reason,
                        Some(Reason::Unavailable | Reason::Overloaded | Reason::OutcomeUnknown)
                    )
            }
            Self::Unreadable { status, .. } => matches!(status, 502..=504),
        }
    }

    /// Whether the request may have taken effect although no usable answer says so: everything
    /// but a `4xx` refusal (which the API sends before touching the token). After such an error
    /// only a retry with the same `Idempotency-Key` can tell what happened.
    pub fn outcome_unknown(&self) -> bool {
        !matches!(self, Self::Refused { status: 400..=499, .. })
    }

    /// The server's `Retry-After`, in seconds, if it sent one.
    pub fn retry_after_secs(&self) -> Option<u32> {
        match self {
            Self::Refused { retry_after_secs, .. } => *retry_after_secs,
            _ => None,
        }
    }
}

/// Reads an HTTP answer: a `2xx` body as `T`; a `4xx`/`5xx` body as the API's error shape
/// ([`ValidateResponse`]), giving [`ApiError::Refused`] (with `retry_after`, the raw
/// `Retry-After` header, read by [`parse_retry_after`]); anything else as
/// [`ApiError::Unreadable`].
///
/// # Errors
/// As above; every error carries the status.
pub fn read_answer<T: DeserializeOwned>(
    status: u16,
    retry_after: Option<&str>,
    body: &str,
) -> Result<T, ApiError> {
    if (200..300).contains(&status) {
        return serde_json::from_str(body).map_err(|e| unreadable(status, body, &e));
    }
    match serde_json::from_str::<ValidateResponse>(body) {
        Ok(error) => Err(ApiError::Refused {
            status,
            message: error.message,
            reason: error.reason,
            retry_after_secs: retry_after.and_then(parse_retry_after),
        }),
        Err(e) => Err(unreadable(status, body, &e)),
    }
}

/// Reads a `Retry-After` value in its delay form, whole seconds (RFC 9110 section 10.2.3), e.g.
/// `"2"` gives `Some(2)`. The HTTP-date form and anything else give `None` (the caller's default
/// wait applies); so do values too large for a `u32`.
pub fn parse_retry_after(value: &str) -> Option<u32> {
    let value = value.trim();
    if value.is_empty() || !value.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    value.parse().ok()
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
///
/// Every reason has its own words (the match is exhaustive, so a new reason in `shared` must
/// be given some). Only the token reasons come with `200`; the others arrive as error answers
/// ([`ApiError::Refused`]) and are worded here for completeness.
pub fn verdict(answer: &ValidateResponse) -> &'static str {
    if answer.is_valid {
        return "Valid";
    }
    let Some(reason) = answer.reason else {
        return "Invalid";
    };
    match reason {
        Reason::AlreadyUsed => "Invalid: already used",
        Reason::Expired => "Invalid: expired",
        Reason::InvalidSignature => "Invalid: bad signature",
        Reason::MalformedToken => "Invalid: not a token",
        Reason::UnknownToken => "Invalid: unknown token",
        Reason::Revoked => "Invalid: revoked",
        Reason::WrongPurpose => "Not accepted: issued for another purpose",
        Reason::WrongSubject => "Not accepted: issued for another subject",
        Reason::TooManyOutstanding => "Not issued: too many unused tokens",
        Reason::BadRequest => "Not checked: bad request",
        Reason::NotFound => "Not checked: no such endpoint",
        Reason::MethodNotAllowed => "Not checked: method not allowed",
        Reason::PayloadTooLarge => "Not checked: token too large",
        Reason::Unavailable => "Not checked: service unavailable",
        Reason::Overloaded => "Not checked: service busy",
        Reason::OutcomeUnknown => "Outcome unknown",
        Reason::Internal => "Not checked: server error",
        Reason::Unauthorized => "Not checked: issuer key required",
        Reason::RateLimited => "Not checked: too many requests",
    }
}

/// A note under a refusal that left the token as it was: a wrong purpose or subject is found
/// before the server consumes anything. `None` for every other answer.
pub fn not_consumed_note(answer: &ValidateResponse) -> Option<&'static str> {
    match answer.reason? {
        Reason::WrongPurpose | Reason::WrongSubject => Some(
            "The token was not used: it can still be validated with the purpose and subject it \
             was issued for.",
        ),
        _ => None,
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
            read_answer(200, None, r#"{"token":"a.b.c","expiration":"2026-11-29T17:00:00Z"}"#)
                .unwrap();
        assert_eq!(issued.token, "a.b.c");
        let checked: ValidateResponse = read_answer(
            200,
            None,
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
        let err = read_answer::<IssueResponse>(400, None,
            r#"{"isValid":false,"message":"ttl must be a whole number of seconds from 1 to 604800","reason":"bad_request"}"#,
        )
        .unwrap_err();
        assert_eq!(
            err,
            ApiError::Refused {
                status: 400,
                message: "ttl must be a whole number of seconds from 1 to 604800".into(),
                reason: Some(Reason::BadRequest),
                retry_after_secs: None,
            }
        );
        assert_eq!(
            err.to_string(),
            "The server refused the request (HTTP 400): ttl must be a whole number of seconds from 1 to 604800"
        );
    }

    #[test]
    fn a_non_json_body_is_reported_with_its_start() {
        let err = read_answer::<IssueResponse>(502, None, "<html><body>Bad Gateway</body></html>")
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "Unexpected answer from the server (HTTP 502): the answer is not JSON: <html><body>Bad Gateway</body></html>"
        );
        let err = read_answer::<IssueResponse>(200, None, "<!doctype html>").unwrap_err();
        assert!(matches!(err, ApiError::Unreadable { status: 200, .. }), "{err:?}");
    }

    #[test]
    fn an_empty_or_long_body_is_described_briefly() {
        let err = read_answer::<IssueResponse>(500, None, "  ").unwrap_err();
        assert_eq!(
            err,
            ApiError::Unreadable {
                status: 500,
                detail: "the answer is not JSON (empty body)".into()
            }
        );
        let long = "x".repeat(500);
        let ApiError::Unreadable { detail, .. } =
            read_answer::<IssueResponse>(200, None, &long).unwrap_err()
        else {
            panic!("expected Unreadable");
        };
        assert_eq!(detail, format!("the answer is not JSON: {}…", "x".repeat(80)));
    }

    #[test]
    fn json_of_the_wrong_shape_is_not_an_answer() {
        let err = read_answer::<IssueResponse>(200, None, r#"{"status":"ok"}"#).unwrap_err();
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
        let replayed = ValidateResponse { replayed: true, ..ValidateResponse::valid("ok") };
        assert_eq!(verdict(&replayed), "Valid");
        for (reason, words) in [
            (Reason::AlreadyUsed, "Invalid: already used"),
            (Reason::Expired, "Invalid: expired"),
            (Reason::InvalidSignature, "Invalid: bad signature"),
            (Reason::MalformedToken, "Invalid: not a token"),
            (Reason::UnknownToken, "Invalid: unknown token"),
            (Reason::Revoked, "Invalid: revoked"),
            (Reason::OutcomeUnknown, "Outcome unknown"),
            (Reason::Internal, "Not checked: server error"),
        ] {
            assert_eq!(verdict(&ValidateResponse::refused(reason, "m")), words);
        }
        let no_reason =
            ValidateResponse { reason: None, ..ValidateResponse::refused(Reason::Expired, "m") };
        assert_eq!(verdict(&no_reason), "Invalid");
    }

    #[test]
    fn only_a_wrong_purpose_or_subject_says_the_token_is_still_usable() {
        for reason in Reason::ALL {
            let note = not_consumed_note(&ValidateResponse::refused(reason, "m"));
            let expected = matches!(reason, Reason::WrongPurpose | Reason::WrongSubject);
            assert_eq!(note.is_some(), expected, "{reason:?}");
        }
        assert_eq!(not_consumed_note(&ValidateResponse::valid("ok")), None);
        assert_eq!(
            not_consumed_note(&ValidateResponse::refused(Reason::WrongPurpose, "m")),
            Some(
                "The token was not used: it can still be validated with the purpose and subject \
                 it was issued for."
            )
        );
    }

    #[test]
    fn every_reason_has_its_own_verdict() {
        let mut seen = std::collections::HashSet::new();
        for reason in Reason::ALL {
            let words = verdict(&ValidateResponse::refused(reason, "m"));
            assert_ne!(words, "Valid");
            assert!(seen.insert(words), "{reason:?} shares {words:?}");
        }
    }

    #[test]
    fn an_error_answer_keeps_the_retry_after_seconds() {
        let err = read_answer::<ValidateResponse>(
            503,
            Some("2"),
            r#"{"isValid":false,"message":"try again","reason":"outcome_unknown"}"#,
        )
        .unwrap_err();
        assert_eq!(
            err,
            ApiError::Refused {
                status: 503,
                message: "try again".into(),
                reason: Some(Reason::OutcomeUnknown),
                retry_after_secs: Some(2),
            }
        );
        assert_eq!(err.retry_after_secs(), Some(2));
    }

    #[test]
    fn retry_after_is_read_in_its_seconds_form_only() {
        assert_eq!(parse_retry_after("1"), Some(1));
        assert_eq!(parse_retry_after(" 120 "), Some(120));
        assert_eq!(parse_retry_after("0"), Some(0));
        for other in ["", "-1", "1.5", "Fri, 31 Dec 1999 23:59:59 GMT", "99999999999", "+3"] {
            assert_eq!(parse_retry_after(other), None, "{other:?}");
        }
    }

    fn refused(status: u16, reason: Option<Reason>) -> ApiError {
        ApiError::Refused { status, message: "m".into(), reason, retry_after_secs: None }
    }

    #[test]
    fn no_answer_a_503_and_gateway_errors_are_worth_retrying() {
        let transient = [
            ApiError::Network { url: "u".into(), detail: "d".into() },
            ApiError::TimedOut { url: "u".into(), secs: 15 },
            refused(503, Some(Reason::OutcomeUnknown)),
            refused(503, Some(Reason::Unavailable)),
            refused(503, Some(Reason::Overloaded)),
            refused(503, None),
            ApiError::Unreadable { status: 502, detail: "d".into() },
            ApiError::Unreadable { status: 504, detail: "d".into() },
        ];
        for e in &transient {
            assert!(e.is_transient(), "{e:?}");
            assert!(e.outcome_unknown(), "{e:?}");
        }
        for e in [
            refused(400, Some(Reason::BadRequest)),
            refused(413, Some(Reason::PayloadTooLarge)),
            refused(500, Some(Reason::Internal)),
            ApiError::Unreadable { status: 200, detail: "d".into() },
            ApiError::Unreadable { status: 500, detail: "d".into() },
        ] {
            assert!(!e.is_transient(), "{e:?}");
        }
    }

    #[test]
    fn only_a_4xx_refusal_says_for_sure_that_nothing_happened() {
        assert!(!refused(400, Some(Reason::BadRequest)).outcome_unknown());
        assert!(!refused(413, Some(Reason::PayloadTooLarge)).outcome_unknown());
        assert!(!refused(404, Some(Reason::NotFound)).outcome_unknown());
        assert!(refused(500, Some(Reason::Internal)).outcome_unknown());
        assert!(ApiError::Unreadable { status: 200, detail: "d".into() }.outcome_unknown());
    }
}
