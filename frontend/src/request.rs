//! The life of one button's request: idle, in flight, then done with an answer or an error.
//!
//! A button may start a request only when none is in flight ([`RequestState::start`]). The
//! component checks this synchronously in its click handler *and* disables the button, so a
//! double click cannot send a second `POST /tokens` (which would turn a "valid" result into
//! "already used").

use crate::answer::ApiError;

/// Where one button's request stands; `T` is the successful answer.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum RequestState<T> {
    /// Nothing sent yet.
    #[default]
    Idle,
    /// Sent; no answer yet. The button is disabled.
    InFlight,
    /// Answered (or failed); the button is enabled again.
    Done(Result<T, ApiError>),
}

impl<T> RequestState<T> {
    /// Moves to [`RequestState::InFlight`] and returns `true`, unless a request is already in
    /// flight: then nothing changes and it returns `false` (the caller must not send).
    pub fn start(&mut self) -> bool {
        if self.is_in_flight() {
            return false;
        }
        *self = Self::InFlight;
        true
    }

    /// Records the outcome of the request in flight. Returns `false`, changing nothing, when no
    /// request is in flight (an outcome nobody is waiting for).
    pub fn finish(&mut self, outcome: Result<T, ApiError>) -> bool {
        if !self.is_in_flight() {
            return false;
        }
        *self = Self::Done(outcome);
        true
    }

    /// Whether a request is in flight (the button must be disabled).
    pub fn is_in_flight(&self) -> bool {
        matches!(self, Self::InFlight)
    }

    /// The successful answer, if the last request had one.
    pub fn answer(&self) -> Option<&T> {
        match self {
            Self::Done(Ok(answer)) => Some(answer),
            _ => None,
        }
    }

    /// The error, if the last request failed.
    pub fn error(&self) -> Option<&ApiError> {
        match self {
            Self::Done(Err(e)) => Some(e),
            _ => None,
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a failed unwrap is a failed test
mod tests {
    use super::*;

    fn failure() -> ApiError {
        ApiError::Network { url: "u".into(), detail: "d".into() }
    }

    #[test]
    fn a_second_start_while_in_flight_is_refused() {
        let mut state = RequestState::<u8>::default();
        assert!(state.start());
        assert!(state.is_in_flight());
        assert!(!state.start());
        assert_eq!(state, RequestState::InFlight);
    }

    #[test]
    fn an_answer_ends_the_flight_and_allows_the_next_request() {
        let mut state = RequestState::Idle;
        assert!(state.start());
        assert!(state.finish(Ok(7)));
        assert_eq!(state.answer(), Some(&7));
        assert!(!state.is_in_flight());
        assert!(state.start());
        assert_eq!(state.answer(), None, "a new request hides the old answer");
    }

    #[test]
    fn an_error_is_kept_for_display() {
        let mut state = RequestState::<u8>::Idle;
        state.start();
        assert!(state.finish(Err(failure())));
        assert_eq!(state.error(), Some(&failure()));
        assert_eq!(state.answer(), None);
    }

    #[test]
    fn an_outcome_without_a_request_in_flight_is_ignored() {
        let mut state = RequestState::Idle;
        assert!(!state.finish(Ok(1)));
        assert_eq!(state, RequestState::Idle);
        state.start();
        state.finish(Ok(2));
        assert!(!state.finish(Ok(3)));
        assert_eq!(state.answer(), Some(&2));
    }
}
