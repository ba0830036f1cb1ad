//! One validation, from the click to the verdict, when answers can be lost.
//!
//! Validating consumes the token, so a lost answer must not cost the user their token: every
//! click sends a fresh attempt id in the `Idempotency-Key` header ([`uuid_v4`]), and every retry
//! of that click sends the same id, so the server either does the work once or replays the
//! answer it gave (`replayed: true`). A retry is therefore always safe; a new id is only ever
//! used for a new click on a new validation.
//!
//! [`Validation`] is the state machine the validate panel drives: it refuses a second start
//! while a request is in flight (a double click sends one `POST /tokens`), decides after each
//! failure whether to retry on its own ([`RetryPolicy`]), and, once the automatic retries are
//! spent with no definite answer, keeps the attempt's key so the button becomes "Retry" for the
//! same token. The panel only sends, waits and shows.
//!
//! An attempt is one request body: the token *and* the purpose and subject it is validated for.
//! The server checks those before it consumes anything, so a retry with another purpose would
//! not be "the same validation": changing any of the three starts a new attempt.

use crate::answer::ApiError;
use shared::{ValidateRequest, ValidateResponse};

/// When to try again after a failure that may be temporary ([`ApiError::is_transient`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Automatic retries after the first try of a click.
    pub retries: u32,
    /// Wait before the first retry when the server named none, in milliseconds; doubled for
    /// each further retry.
    pub first_backoff_ms: u32,
    /// Longest wait between two tries, in milliseconds, whatever `Retry-After` says.
    pub max_wait_ms: u32,
}

/// The UI's policy: 3 retries after 0.5, 1 and 2 s (or the server's `Retry-After`, at most 5 s),
/// so a click gives up within about 10 s of waiting plus the requests themselves.
pub const RETRY: RetryPolicy =
    RetryPolicy { retries: 3, first_backoff_ms: 500, max_wait_ms: 5_000 };

impl RetryPolicy {
    /// The wait before retry number `retry` (1 for the first retry), in milliseconds: the
    /// server's `Retry-After` when it sent one, else the backoff; never above `max_wait_ms`.
    pub fn wait_ms(&self, retry: u32, retry_after_secs: Option<u32>) -> u32 {
        let wait = match retry_after_secs {
            Some(secs) => secs.saturating_mul(1000),
            None => self.first_backoff_ms.saturating_mul(1 << retry.saturating_sub(1).min(16)),
        };
        wait.min(self.max_wait_ms)
    }
}

/// Formats 16 random bytes as a version 4 UUID (RFC 9562 section 5.4), lowercase with hyphens,
/// e.g. `8e03978e-40d5-43e8-bc93-6894a57f9324`: the version and variant bits are set, the other
/// 122 bits are `random`'s. The result is a valid [`shared::IdempotencyKey`].
pub fn uuid_v4(mut random: [u8; 16]) -> String {
    random[6] = (random[6] & 0x0f) | 0x40;
    random[8] = (random[8] & 0x3f) | 0x80;
    let mut text = String::with_capacity(36);
    for (i, byte) in random.iter().enumerate() {
        if matches!(i, 4 | 6 | 8 | 10) {
            text.push('-');
        }
        for nibble in [byte >> 4, byte & 0x0f] {
            text.push(char::from(b"0123456789abcdef"[usize::from(nibble)]));
        }
    }
    text
}

/// Where the latest click stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Phase {
    /// A request is on its way. The button is disabled.
    Sending,
    /// The last try failed in a way worth retrying; the next try is sent after `wait_ms`. The
    /// button stays disabled.
    Waiting {
        /// Why the last try failed.
        error: ApiError,
        /// The wait before the next try, in milliseconds.
        wait_ms: u32,
    },
    /// Finished: a definite answer, or an error.
    Done(Result<ValidateResponse, ApiError>),
}

/// One validation of one token under one `Idempotency-Key`, possibly over several requests.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attempt {
    /// The body sent: the token (trimmed), and the purpose and subject it is validated for.
    pub request: ValidateRequest,
    /// The `Idempotency-Key` sent with every request of this attempt.
    pub key: String,
    /// Requests sent since the latest click, counting the one in flight (1 on the first try).
    pub tries: u32,
    /// Where it stands.
    pub phase: Phase,
}

/// What the caller does after recording a request's outcome.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Next {
    /// Wait `wait_ms` milliseconds, call [`Validation::resend`], and send the same request (same
    /// body, same key) again.
    Resend {
        /// The wait, in milliseconds.
        wait_ms: u32,
    },
    /// Nothing more to send.
    Stop,
}

/// The validate panel's state: the latest attempt, if any.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Validation {
    attempt: Option<Attempt>,
}

impl Validation {
    /// The latest attempt.
    pub fn attempt(&self) -> Option<&Attempt> {
        self.attempt.as_ref()
    }

    /// Whether a request is in flight or a retry is pending (the button must be disabled).
    pub fn is_busy(&self) -> bool {
        self.attempt.as_ref().is_some_and(|a| !matches!(a.phase, Phase::Done(_)))
    }

    /// Whether the button, for `request`, repeats the latest attempt with its key ("Retry"): the
    /// attempt ended with an error that leaves its outcome unknown, and the form still holds the
    /// same token, purpose and subject. Editing any of them (or issuing a new token) ends this.
    pub fn offers_retry(&self, request: &ValidateRequest) -> bool {
        self.attempt.as_ref().is_some_and(|a| {
            a.request == *request && matches!(&a.phase, Phase::Done(Err(e)) if e.outcome_unknown())
        })
    }

    /// Starts sending for a click on the button with `request` in the form; returns the body
    /// and key to send. The key is the unresolved attempt's when [`Validation::offers_retry`],
    /// else `fresh_key()`. Returns `None`, changing nothing, while [`Validation::is_busy`]: the
    /// caller must not send.
    pub fn start(
        &mut self,
        request: ValidateRequest,
        fresh_key: impl FnOnce() -> String,
    ) -> Option<(ValidateRequest, String)> {
        if self.is_busy() {
            return None;
        }
        let key = match &self.attempt {
            Some(a) if self.offers_retry(&request) => a.key.clone(),
            _ => fresh_key(),
        };
        self.attempt = Some(Attempt {
            request: request.clone(),
            key: key.clone(),
            tries: 1,
            phase: Phase::Sending,
        });
        Some((request, key))
    }

    /// Records the outcome of the request in flight and says what to do next: retry a
    /// [transient](ApiError::is_transient) failure while `policy` allows, else stop. Returns
    /// [`Next::Stop`], changing nothing, when no request is in flight.
    pub fn record(
        &mut self,
        outcome: Result<ValidateResponse, ApiError>,
        policy: &RetryPolicy,
    ) -> Next {
        let Some(attempt) = self.attempt.as_mut().filter(|a| a.phase == Phase::Sending) else {
            return Next::Stop;
        };
        match outcome {
            Err(error) if error.is_transient() && attempt.tries <= policy.retries => {
                let wait_ms = policy.wait_ms(attempt.tries, error.retry_after_secs());
                attempt.phase = Phase::Waiting { error, wait_ms };
                Next::Resend { wait_ms }
            }
            outcome => {
                attempt.phase = Phase::Done(outcome);
                Next::Stop
            }
        }
    }

    /// Ends a wait: the next try is on its way. Returns `false`, changing nothing, unless a retry
    /// was pending.
    pub fn resend(&mut self) -> bool {
        match self.attempt.as_mut() {
            Some(a) if matches!(a.phase, Phase::Waiting { .. }) => {
                a.tries += 1;
                a.phase = Phase::Sending;
                true
            }
            _ => false,
        }
    }

    /// A progress line while retrying, e.g. `Connection problem, retrying… (try 2 of 4)`, naming
    /// the try being sent or waited for; `None` on a first try and once done.
    pub fn progress(&self, policy: &RetryPolicy) -> Option<String> {
        let attempt = self.attempt.as_ref()?;
        let next = match attempt.phase {
            Phase::Waiting { .. } => attempt.tries + 1,
            Phase::Sending if attempt.tries > 1 => attempt.tries,
            _ => return None,
        };
        Some(format!("Connection problem, retrying… (try {next} of {})", policy.retries + 1))
    }

    /// The finished attempt's error, if it ended with one, in words for people. When the outcome
    /// is unknown the text says so and that Retry is safe.
    pub fn failure(&self) -> Option<String> {
        let attempt = self.attempt.as_ref()?;
        let Phase::Done(Err(error)) = &attempt.phase else {
            return None;
        };
        if !error.outcome_unknown() {
            return Some(error.to_string());
        }
        let what = if error.is_transient() {
            let tries = attempt.tries;
            let noun = if tries == 1 { "try" } else { "tries" };
            format!("No definite answer after {tries} {noun}. Last error: {error}")
        } else {
            error.to_string()
        };
        let stop = if what.ends_with(['.', '!', '?']) { "" } else { "." };
        Some(format!(
            "The outcome is unknown: the token may or may not have been used. {what}{stop} \
             Pressing Retry is safe: it repeats this same validation, so the token is used at \
             most once and a use that already happened is confirmed."
        ))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a failed unwrap is a failed test
mod tests {
    use super::*;
    use shared::{IdempotencyKey, Reason};

    fn network() -> ApiError {
        ApiError::Network { url: "u".into(), detail: "TypeError: Failed to fetch".into() }
    }

    fn refused(status: u16, reason: Reason, retry_after_secs: Option<u32>) -> ApiError {
        ApiError::Refused { status, message: "m".into(), reason: Some(reason), retry_after_secs }
    }

    fn req(token: &str) -> ValidateRequest {
        ValidateRequest::new(token)
    }

    fn key(n: u8) -> impl FnOnce() -> String {
        move || format!("key-{n}")
    }

    fn replayed() -> ValidateResponse {
        ValidateResponse {
            replayed: true,
            used_at: Some("2026-11-29T17:00:00Z".into()),
            ..ValidateResponse::valid("ok")
        }
    }

    #[test]
    fn a_uuid_v4_has_its_version_and_variant_bits() {
        assert_eq!(uuid_v4([0; 16]), "00000000-0000-4000-8000-000000000000");
        assert_eq!(uuid_v4([0xff; 16]), "ffffffff-ffff-4fff-bfff-ffffffffffff");
        let bytes = [
            0x8e, 0x03, 0x97, 0x8e, 0x40, 0xd5, 0x43, 0xe8, 0xbc, 0x93, 0x68, 0x94, 0xa5, 0x7f,
            0x93, 0x24,
        ];
        assert_eq!(uuid_v4(bytes), "8e03978e-40d5-43e8-bc93-6894a57f9324");
    }

    #[test]
    fn a_uuid_v4_is_an_idempotency_key() {
        let key = uuid_v4([0x5a; 16]);
        assert_eq!(IdempotencyKey::parse(&key).unwrap().as_str(), key);
    }

    #[test]
    fn the_wait_is_the_servers_retry_after_or_a_doubling_backoff_bounded() {
        assert_eq!(RETRY.wait_ms(1, None), 500);
        assert_eq!(RETRY.wait_ms(2, None), 1_000);
        assert_eq!(RETRY.wait_ms(3, None), 2_000);
        assert_eq!(RETRY.wait_ms(9, None), 5_000);
        assert_eq!(RETRY.wait_ms(100, None), 5_000);
        assert_eq!(RETRY.wait_ms(1, Some(1)), 1_000);
        assert_eq!(RETRY.wait_ms(3, Some(0)), 0);
        assert_eq!(RETRY.wait_ms(1, Some(3600)), 5_000);
        assert_eq!(RETRY.wait_ms(1, Some(u32::MAX)), 5_000);
    }

    #[test]
    fn each_click_gets_a_fresh_key() {
        let mut v = Validation::default();
        assert_eq!(v.start(req("t"), key(1)), Some((req("t"), "key-1".into())));
        assert_eq!(v.record(Ok(ValidateResponse::valid("ok")), &RETRY), Next::Stop);
        assert_eq!(v.start(req("t"), key(2)), Some((req("t"), "key-2".into())));
        let used = ValidateResponse::refused(Reason::AlreadyUsed, "used");
        assert_eq!(v.record(Ok(used.clone()), &RETRY), Next::Stop);
        assert_eq!(v.attempt().unwrap().phase, Phase::Done(Ok(used)));
        assert!(!v.offers_retry(&req("t")));
    }

    #[test]
    fn a_second_start_while_busy_is_refused() {
        let mut v = Validation::default();
        assert!(v.start(req("t"), key(1)).is_some());
        assert!(v.is_busy());
        assert_eq!(v.start(req("t"), key(2)), None);
        assert_eq!(v.record(Err(network()), &RETRY), Next::Resend { wait_ms: 500 });
        assert!(v.is_busy(), "busy while waiting to retry");
        assert_eq!(v.start(req("t"), key(3)), None);
        assert_eq!(v.attempt().unwrap().key, "key-1");
    }

    #[test]
    fn a_lost_answer_is_retried_with_the_same_key_until_it_is_definite() {
        let mut v = Validation::default();
        v.start(req("t"), key(1));
        assert_eq!(v.progress(&RETRY), None);
        assert_eq!(v.record(Err(network()), &RETRY), Next::Resend { wait_ms: 500 });
        assert_eq!(
            v.progress(&RETRY).as_deref(),
            Some("Connection problem, retrying… (try 2 of 4)")
        );
        assert!(v.resend());
        assert_eq!(
            v.progress(&RETRY).as_deref(),
            Some("Connection problem, retrying… (try 2 of 4)")
        );
        let unknown = refused(503, Reason::OutcomeUnknown, Some(1));
        assert_eq!(v.record(Err(unknown), &RETRY), Next::Resend { wait_ms: 1_000 });
        assert!(v.resend());
        assert_eq!(v.record(Ok(replayed()), &RETRY), Next::Stop);
        let attempt = v.attempt().unwrap();
        assert_eq!((attempt.key.as_str(), attempt.tries), ("key-1", 3));
        assert_eq!(attempt.phase, Phase::Done(Ok(replayed())));
        assert!(!v.is_busy());
        assert_eq!(v.progress(&RETRY), None);
        assert_eq!(v.failure(), None);
    }

    #[test]
    fn unavailable_and_overloaded_are_retried_too() {
        for reason in [Reason::Unavailable, Reason::Overloaded] {
            let mut v = Validation::default();
            v.start(req("t"), key(1));
            let next = v.record(Err(refused(503, reason, None)), &RETRY);
            assert_eq!(next, Next::Resend { wait_ms: 500 }, "{reason:?}");
        }
    }

    #[test]
    fn after_the_last_retry_the_outcome_is_unknown_and_retry_keeps_the_key() {
        let mut v = Validation::default();
        v.start(req("t"), key(1));
        for wait_ms in [500, 1_000, 2_000] {
            assert_eq!(v.record(Err(network()), &RETRY), Next::Resend { wait_ms });
            assert!(v.resend());
        }
        assert_eq!(v.record(Err(network()), &RETRY), Next::Stop);
        assert_eq!(v.attempt().unwrap().tries, 4);
        assert!(v.offers_retry(&req("t")));
        assert!(!v.offers_retry(&req("other")), "a different token is a new validation");
        assert_eq!(
            v.failure().unwrap(),
            "The outcome is unknown: the token may or may not have been used. No definite \
             answer after 4 tries. Last error: Network error: could not reach u (TypeError: \
             Failed to fetch). Check the connection and the API address. Pressing Retry is safe: \
             it repeats this same validation, so the token is used at most once and a use that \
             already happened is confirmed."
        );

        // Retry: the same key, and a fresh set of automatic retries.
        assert_eq!(v.start(req("t"), key(2)), Some((req("t"), "key-1".into())));
        assert_eq!(v.attempt().unwrap().tries, 1);
        assert_eq!(v.record(Err(network()), &RETRY), Next::Resend { wait_ms: 500 });
        v.resend();
        assert_eq!(v.record(Ok(replayed()), &RETRY), Next::Stop);
        assert!(!v.offers_retry(&req("t")));
    }

    #[test]
    fn a_changed_token_gets_a_fresh_key() {
        let mut v = Validation::default();
        v.start(req("t"), key(1));
        v.record(Err(refused(500, Reason::Internal, None)), &RETRY);
        assert!(v.offers_retry(&req("t")), "a 500 is not retried on its own, but Retry is offered");
        assert_eq!(v.start(req("u"), key(2)), Some((req("u"), "key-2".into())));
    }

    #[test]
    fn a_changed_purpose_or_subject_is_a_new_validation() {
        let bound = |purpose: &str, subject: Option<&str>| ValidateRequest {
            purpose: Some(purpose.into()),
            subject: subject.map(str::to_owned),
            ..req("t")
        };
        let mut v = Validation::default();
        v.start(bound("login", None), key(1));
        v.record(Err(refused(500, Reason::Internal, None)), &RETRY);
        assert!(v.offers_retry(&bound("login", None)));
        assert!(!v.offers_retry(&req("t")));
        assert!(!v.offers_retry(&bound("reset", None)));
        assert!(!v.offers_retry(&bound("login", Some("acct-1"))));
        let (sent, fresh) = v.start(bound("reset", None), key(2)).unwrap();
        assert_eq!((sent, fresh.as_str()), (bound("reset", None), "key-2"));
    }

    #[test]
    fn a_4xx_refusal_is_final_and_offers_no_retry() {
        let mut v = Validation::default();
        v.start(req("t"), key(1));
        let too_large = refused(413, Reason::PayloadTooLarge, None);
        assert_eq!(v.record(Err(too_large.clone()), &RETRY), Next::Stop);
        assert!(!v.offers_retry(&req("t")));
        assert_eq!(v.failure(), Some(too_large.to_string()));
        assert_eq!(v.start(req("t"), key(2)).unwrap().1, "key-2");
    }

    #[test]
    fn a_non_transient_unknown_outcome_says_so_without_a_try_count() {
        let mut v = Validation::default();
        v.start(req("t"), key(1));
        v.record(Err(refused(500, Reason::Internal, None)), &RETRY);
        assert_eq!(
            v.failure().unwrap(),
            "The outcome is unknown: the token may or may not have been used. The server refused \
             the request (HTTP 500): m. Pressing Retry is safe: it repeats this same validation, \
             so the token is used at most once and a use that already happened is confirmed."
        );
    }

    #[test]
    fn outcomes_nobody_waits_for_are_ignored() {
        let mut v = Validation::default();
        assert_eq!(v.record(Ok(ValidateResponse::valid("ok")), &RETRY), Next::Stop);
        assert_eq!(v, Validation::default());
        assert!(!v.resend());
        v.start(req("t"), key(1));
        v.record(Err(network()), &RETRY);
        assert_eq!(v.record(Ok(replayed()), &RETRY), Next::Stop, "waiting, not sending");
        assert!(matches!(v.attempt().unwrap().phase, Phase::Waiting { .. }));
    }

    #[test]
    fn no_retries_means_one_try() {
        let policy = RetryPolicy { retries: 0, ..RETRY };
        let mut v = Validation::default();
        v.start(req("t"), key(1));
        assert_eq!(v.record(Err(network()), &policy), Next::Stop);
        assert!(v.offers_retry(&req("t")));
        assert!(v.failure().unwrap().contains("No definite answer after 1 try. "));
    }
}
