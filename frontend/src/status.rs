//! Check status and Revoke: the two requests about a token that do not validate it.
//!
//! `POST /tokens/status` never changes anything, so checking leaves an unused token usable;
//! `POST /tokens/revoke` revokes an unused token and otherwise reports where it stands. Both
//! answer with a [`StatusResponse`], which this module puts into words ([`headline`],
//! [`times`]). [`Lookup`] is the state of the latest such request, shown only beside the token
//! it was about.

use crate::answer::ApiError;
use crate::request::RequestState;
use shared::{Reason, StatusResponse, TokenState};

/// Which button was pressed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Check status: `POST /tokens/status`.
    Check,
    /// Revoke: `POST /tokens/revoke`.
    Revoke,
}

impl Action {
    /// A name for tests and styles: `check` or `revoke`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Check => "check",
            Self::Revoke => "revoke",
        }
    }
}

/// The headline of a status answer, e.g. `Unused` or, after Revoke on a used token,
/// `Not revoked: already used`.
pub fn headline(action: Action, status: &StatusResponse) -> String {
    let invalid = match status.reason {
        Some(Reason::InvalidSignature) => Some("bad signature"),
        Some(Reason::MalformedToken) => Some("not a token"),
        Some(Reason::UnknownToken) => Some("unknown token"),
        _ => None,
    };
    match (action, status.state) {
        (Action::Check, TokenState::Unused) => "Unused".to_owned(),
        (Action::Check, TokenState::Used) => "Used".to_owned(),
        (Action::Check, TokenState::Expired) => "Expired".to_owned(),
        (_, TokenState::Revoked) => "Revoked".to_owned(),
        (Action::Check, TokenState::Invalid) => {
            invalid.map_or_else(|| "Invalid".to_owned(), |why| format!("Invalid: {why}"))
        }
        (Action::Revoke, TokenState::Unused) => "Not revoked: unused".to_owned(),
        (Action::Revoke, TokenState::Used) => "Not revoked: already used".to_owned(),
        (Action::Revoke, TokenState::Expired) => "Not revoked: expired".to_owned(),
        (Action::Revoke, TokenState::Invalid) => {
            format!("Not revoked: {}", invalid.unwrap_or("invalid"))
        }
    }
}

/// The state's wire name, e.g. `unused` (for tests and styles).
pub fn state_name(state: TokenState) -> &'static str {
    match state {
        TokenState::Unused => "unused",
        TokenState::Used => "used",
        TokenState::Expired => "expired",
        TokenState::Revoked => "revoked",
        TokenState::Invalid => "invalid",
    }
}

/// A sentence under the headline, saying what the state means for the token.
pub fn explanation(status: &StatusResponse) -> &'static str {
    match status.state {
        TokenState::Unused => {
            "Not validated yet: checking did not use it, and it can still be validated once."
        }
        TokenState::Used => "It was validated once and cannot be used again.",
        TokenState::Expired => "Its lifetime is over; it can no longer be validated.",
        TokenState::Revoked => "It can no longer be validated.",
        TokenState::Invalid => "This service did not issue it, or has no record of it.",
    }
}

/// The times in a status answer, as `(label, test id, RFC 3339 text)`, in the order they
/// happen: used or revoked, then the expiration.
pub fn times(status: &StatusResponse) -> Vec<(&'static str, &'static str, &str)> {
    [
        ("Used at", "status-used-at", &status.used_at),
        ("Revoked at", "status-revoked-at", &status.revoked_at),
        ("Expires", "status-expiration", &status.expiration),
    ]
    .into_iter()
    .filter_map(|(label, id, at)| at.as_deref().map(|at| (label, id, at)))
    .collect()
}

/// The latest Check status or Revoke: which token, which button, and the request's state.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Lookup {
    about: Option<(String, Action)>,
    state: RequestState<StatusResponse>,
}

impl Lookup {
    /// Starts `action` for `token` and returns `true`, unless a lookup is in flight: then
    /// nothing changes and it returns `false` (the caller must not send).
    pub fn start(&mut self, token: String, action: Action) -> bool {
        if !self.state.start() {
            return false;
        }
        self.about = Some((token, action));
        true
    }

    /// Records the answer of the lookup in flight; `false`, changing nothing, if none is.
    pub fn finish(&mut self, outcome: Result<StatusResponse, ApiError>) -> bool {
        self.state.finish(outcome)
    }

    /// Whether a lookup is in flight (the panel's buttons are disabled).
    pub fn is_in_flight(&self) -> bool {
        self.state.is_in_flight()
    }

    /// Which button is in flight, if one is.
    pub fn in_flight(&self) -> Option<Action> {
        self.about.as_ref().map(|(_, action)| *action).filter(|_| self.is_in_flight())
    }

    /// Forgets a finished lookup (a validation is about to make it stale). Returns `false`,
    /// changing nothing, while one is in flight.
    pub fn clear(&mut self) -> bool {
        if self.is_in_flight() {
            return false;
        }
        *self = Self::default();
        true
    }

    /// The finished lookup's button and outcome, if it was about `token`.
    pub fn shown_for(&self, token: &str) -> Option<(Action, Result<StatusResponse, ApiError>)> {
        let (_, action) = self.about.as_ref().filter(|(about, _)| about == token)?;
        match &self.state {
            RequestState::Done(outcome) => Some((*action, outcome.clone())),
            _ => None,
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a failed unwrap is a failed test
mod tests {
    use super::*;

    fn status(state: TokenState) -> StatusResponse {
        StatusResponse::new(state)
    }

    fn invalid(reason: Reason) -> StatusResponse {
        StatusResponse { reason: Some(reason), ..status(TokenState::Invalid) }
    }

    #[test]
    fn state_names_are_the_wire_names() {
        for state in [
            TokenState::Unused,
            TokenState::Used,
            TokenState::Expired,
            TokenState::Revoked,
            TokenState::Invalid,
        ] {
            assert_eq!(serde_json::to_value(state).unwrap(), state_name(state));
        }
    }

    #[test]
    fn check_status_names_the_state() {
        for (answer, words) in [
            (status(TokenState::Unused), "Unused"),
            (status(TokenState::Used), "Used"),
            (status(TokenState::Expired), "Expired"),
            (status(TokenState::Revoked), "Revoked"),
            (invalid(Reason::InvalidSignature), "Invalid: bad signature"),
            (invalid(Reason::MalformedToken), "Invalid: not a token"),
            (invalid(Reason::UnknownToken), "Invalid: unknown token"),
            (status(TokenState::Invalid), "Invalid"),
        ] {
            assert_eq!(headline(Action::Check, &answer), words);
        }
    }

    #[test]
    fn revoke_says_when_it_did_not_revoke() {
        for (answer, words) in [
            (status(TokenState::Revoked), "Revoked"),
            (status(TokenState::Used), "Not revoked: already used"),
            (status(TokenState::Expired), "Not revoked: expired"),
            (status(TokenState::Unused), "Not revoked: unused"),
            (invalid(Reason::InvalidSignature), "Not revoked: bad signature"),
            (invalid(Reason::UnknownToken), "Not revoked: unknown token"),
            (status(TokenState::Invalid), "Not revoked: invalid"),
        ] {
            assert_eq!(headline(Action::Revoke, &answer), words);
        }
    }

    #[test]
    fn an_unused_token_is_said_to_be_still_usable() {
        assert_eq!(
            explanation(&status(TokenState::Unused)),
            "Not validated yet: checking did not use it, and it can still be validated once."
        );
    }

    #[test]
    fn times_are_listed_when_present() {
        assert_eq!(times(&status(TokenState::Invalid)), vec![]);
        let revoked = StatusResponse {
            expiration: Some("2027-01-15T08:00:00Z".into()),
            revoked_at: Some("2027-01-15T07:00:00Z".into()),
            ..status(TokenState::Revoked)
        };
        assert_eq!(
            times(&revoked),
            vec![
                ("Revoked at", "status-revoked-at", "2027-01-15T07:00:00Z"),
                ("Expires", "status-expiration", "2027-01-15T08:00:00Z"),
            ]
        );
    }

    #[test]
    fn a_lookup_is_shown_only_beside_its_token() {
        let mut lookup = Lookup::default();
        assert!(lookup.start("t".into(), Action::Check));
        assert_eq!(lookup.in_flight(), Some(Action::Check));
        assert_eq!(lookup.shown_for("t"), None, "nothing to show while in flight");
        assert!(lookup.finish(Ok(status(TokenState::Unused))));
        assert_eq!(lookup.in_flight(), None);
        assert_eq!(lookup.shown_for("t"), Some((Action::Check, Ok(status(TokenState::Unused)))));
        assert_eq!(lookup.shown_for("other"), None);
    }

    #[test]
    fn a_second_lookup_while_one_is_in_flight_is_refused() {
        let mut lookup = Lookup::default();
        assert!(lookup.start("t".into(), Action::Check));
        assert!(!lookup.start("t".into(), Action::Revoke));
        assert!(!lookup.clear(), "an answer on its way is not forgotten");
        assert_eq!(lookup.in_flight(), Some(Action::Check));
        assert!(lookup.finish(Ok(status(TokenState::Unused))));
        assert!(!lookup.finish(Ok(status(TokenState::Used))), "nobody waits for a second answer");
        assert!(lookup.start("t".into(), Action::Revoke));
        assert_eq!(lookup.shown_for("t"), None, "a new lookup hides the old answer");
    }

    #[test]
    fn clearing_forgets_a_finished_lookup() {
        let mut lookup = Lookup::default();
        lookup.start("t".into(), Action::Revoke);
        let failure = ApiError::Network { url: "u".into(), detail: "d".into() };
        lookup.finish(Err(failure.clone()));
        assert_eq!(lookup.shown_for("t"), Some((Action::Revoke, Err(failure))));
        assert!(lookup.clear());
        assert_eq!(lookup, Lookup::default());
    }
}
