//! The issuer key, for a service that asks for one.
//!
//! By default the API issues tokens to anyone; an operator can require an issuer key
//! (`Authorization: Bearer <key>`, RFC 6750), and the API then answers `GET /tokens` with `401`
//! and `reason: unauthorized`. Only then does the UI ask for the key. It keeps the key in
//! memory, in this struct inside a signal, and nowhere else (no storage, no cookie, no URL): a
//! reload forgets it, and a key the API refuses is forgotten at once.

use crate::answer::ApiError;
use shared::Reason;

/// Whether, and why, the UI asks for a key.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Asking {
    /// The API has not asked for a key (or accepted the one given).
    #[default]
    No,
    /// The API needs a key and none was given.
    Needed,
    /// The key given was refused (and has been forgotten).
    Refused,
    /// A key was just given; the next issue or revoke sends it.
    Given,
}

/// The key given by the user, if any, and whether to ask for one.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IssuerKey {
    key: Option<String>,
    asking: Asking,
}

impl IssuerKey {
    /// Whether `error` is the API asking for an issuer key (`401`, `unauthorized`).
    pub fn is_requested_by(error: &ApiError) -> bool {
        matches!(
            error,
            ApiError::Refused { status: 401, .. }
                | ApiError::Refused { reason: Some(Reason::Unauthorized), .. }
        )
    }

    /// Takes the key typed by the user (surrounding spaces removed).
    ///
    /// # Errors
    /// A message for the user when the text cannot be a key: empty, or not printable ASCII
    /// (an HTTP header could not carry it).
    pub fn provide(&mut self, text: &str) -> Result<(), &'static str> {
        let key = text.trim();
        if key.is_empty() {
            return Err("Enter the issuer key.");
        }
        if !key.chars().all(|c| c.is_ascii_graphic()) {
            return Err("An issuer key is printable ASCII without spaces.");
        }
        self.key = Some(key.to_owned());
        self.asking = Asking::Given;
        Ok(())
    }

    /// The `Authorization` header value to send, if a key was given.
    pub fn authorization(&self) -> Option<String> {
        self.key.as_ref().map(|key| format!("Bearer {key}"))
    }

    /// Takes note of the outcome of a request that may need the key (issue, revoke): a `401`
    /// asks for a key (and forgets a key that was sent); anything else means no key is wanted or
    /// the one given works.
    pub fn record(&mut self, error: Option<&ApiError>) {
        self.asking = match error {
            Some(e) if Self::is_requested_by(e) => {
                if self.key.take().is_some() {
                    Asking::Refused
                } else {
                    Asking::Needed
                }
            }
            _ => Asking::No,
        };
    }

    /// Whether to show the key message and form, and why (the form's field is shown for
    /// [`Asking::Needed`] and [`Asking::Refused`]).
    pub fn asking(&self) -> Asking {
        self.asking
    }

    /// What the key form says.
    pub fn prompt(&self) -> Option<&'static str> {
        match self.asking {
            Asking::No => None,
            Asking::Needed => Some("This service needs an issuer key to issue tokens."),
            Asking::Refused => Some("That issuer key was not accepted. Check it and try again."),
            Asking::Given => Some("Issuer key set for this page. Send the request again."),
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a failed unwrap is a failed test
mod tests {
    use super::*;

    fn unauthorized() -> ApiError {
        ApiError::Refused {
            status: 401,
            message: "this endpoint needs an issuer key".into(),
            reason: Some(Reason::Unauthorized),
            retry_after_secs: None,
        }
    }

    #[test]
    fn nothing_is_asked_until_the_api_answers_401() {
        let mut key = IssuerKey::default();
        assert_eq!((key.asking(), key.prompt(), key.authorization()), (Asking::No, None, None));
        let other = ApiError::Refused {
            status: 400,
            message: "ttl".into(),
            reason: Some(Reason::BadRequest),
            retry_after_secs: None,
        };
        key.record(Some(&other));
        assert_eq!(key.asking(), Asking::No);
        key.record(Some(&unauthorized()));
        assert_eq!(key.asking(), Asking::Needed);
        assert_eq!(key.prompt(), Some("This service needs an issuer key to issue tokens."));
    }

    #[test]
    fn a_given_key_is_sent_as_a_bearer_token_until_it_is_refused() {
        let mut key = IssuerKey::default();
        key.record(Some(&unauthorized()));
        key.provide("  k3y-0123456789abcdef0123456789abcdef \n").unwrap();
        assert_eq!(key.asking(), Asking::Given);
        assert_eq!(key.prompt(), Some("Issuer key set for this page. Send the request again."));
        assert_eq!(
            key.authorization().as_deref(),
            Some("Bearer k3y-0123456789abcdef0123456789abcdef")
        );
        key.record(None);
        assert_eq!((key.asking(), key.prompt()), (Asking::No, None));
        assert!(key.authorization().is_some(), "kept while it works");
        key.record(Some(&unauthorized()));
        assert_eq!(key.asking(), Asking::Refused);
        assert_eq!(key.authorization(), None, "a refused key is forgotten");
        assert_eq!(key.prompt(), Some("That issuer key was not accepted. Check it and try again."));
    }

    #[test]
    fn empty_or_unsendable_keys_are_refused_before_sending() {
        let mut key = IssuerKey::default();
        assert_eq!(key.provide("   "), Err("Enter the issuer key."));
        assert_eq!(
            key.provide("two words"),
            Err("An issuer key is printable ASCII without spaces.")
        );
        assert_eq!(
            key.provide("schlüssel"),
            Err("An issuer key is printable ASCII without spaces.")
        );
        assert_eq!(key.authorization(), None);
    }

    #[test]
    fn a_401_without_a_reason_still_asks() {
        let bare = ApiError::Refused {
            status: 401,
            message: "Unauthorized".into(),
            reason: None,
            retry_after_secs: None,
        };
        assert!(IssuerKey::is_requested_by(&bare));
        let network = ApiError::Network { url: "u".into(), detail: "d".into() };
        assert!(!IssuerKey::is_requested_by(&network));
    }
}
