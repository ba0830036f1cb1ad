//! Reading what the user typed into the two forms: the issue form (lifetime, purpose, subject,
//! supersede) and the validate form (token, purpose, subject).
//!
//! Purpose and subject are checked with the server's own rules ([`shared::check_purpose`],
//! [`shared::check_subject`]), so a value the server would refuse is never sent. Both are
//! trimmed, as a pasted value's stray spaces or newline would otherwise become part of the
//! binding, and blank means "none".

use crate::timing::parse_lifetime;
use shared::ValidateRequest;

/// What the issue form sends as `GET /tokens?...`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct IssueRequest {
    /// Lifetime in seconds; `None` for the server's default.
    pub ttl: Option<u64>,
    /// The purpose to bind.
    pub purpose: Option<String>,
    /// The subject to bind (the `sub` claim).
    pub subject: Option<String>,
    /// Revoke the pair's unused tokens; only ever `true` with both purpose and subject.
    pub supersede: bool,
}

impl IssueRequest {
    /// The query parameters, in a fixed order, leaving out what is not set (so a plain issue is
    /// `GET /tokens` and one with a lifetime `GET /tokens?ttl=S`, as before).
    pub fn query(&self) -> Vec<(&'static str, String)> {
        let mut query = Vec::new();
        if let Some(ttl) = self.ttl {
            query.push(("ttl", ttl.to_string()));
        }
        if let Some(purpose) = &self.purpose {
            query.push(("purpose", purpose.clone()));
        }
        if let Some(subject) = &self.subject {
            query.push(("subject", subject.clone()));
        }
        if self.supersede {
            query.push(("supersede", "true".to_owned()));
        }
        query
    }
}

/// Why a form was not sent, one sentence per field at fault.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct FormErrors {
    /// The issue form's lifetime.
    pub lifetime: Option<String>,
    /// The validate form's token.
    pub token: Option<String>,
    /// Either form's purpose.
    pub purpose: Option<String>,
    /// Either form's subject.
    pub subject: Option<String>,
}

/// Reads an optional purpose: blank is `None`.
///
/// # Errors
/// The rule of [`shared::check_purpose`], as a sentence.
pub fn read_purpose(input: &str) -> Result<Option<String>, String> {
    read_optional(input, shared::check_purpose)
}

/// Reads an optional subject: blank is `None`.
///
/// # Errors
/// The rule of [`shared::check_subject`], as a sentence.
pub fn read_subject(input: &str) -> Result<Option<String>, String> {
    read_optional(input, shared::check_subject)
}

fn read_optional(
    input: &str,
    check: fn(&str) -> Result<(), String>,
) -> Result<Option<String>, String> {
    let input = input.trim();
    if input.is_empty() {
        return Ok(None);
    }
    match check(input) {
        Ok(()) => Ok(Some(input.to_owned())),
        Err(rule) => Err(format!("{}, or blank for none.", sentence_case(&rule))),
    }
}

/// Whether the supersede box can be ticked: both purpose and subject are filled in (the server
/// refuses `supersede=true` without both).
pub fn can_supersede(purpose: &str, subject: &str) -> bool {
    !purpose.trim().is_empty() && !subject.trim().is_empty()
}

/// Reads the issue form. `supersede` counts only when [`can_supersede`].
///
/// # Errors
/// [`FormErrors`] naming every field at fault (lifetime, purpose, subject).
pub fn read_issue_form(
    lifetime: &str,
    purpose: &str,
    subject: &str,
    supersede: bool,
) -> Result<IssueRequest, FormErrors> {
    let (ttl, p, s) = (parse_lifetime(lifetime), read_purpose(purpose), read_subject(subject));
    match (ttl, p, s) {
        (Ok(ttl), Ok(purpose), Ok(subject)) => {
            let supersede = supersede && purpose.is_some() && subject.is_some();
            Ok(IssueRequest { ttl, purpose, subject, supersede })
        }
        (ttl, p, s) => Err(FormErrors {
            lifetime: ttl.err(),
            purpose: p.err(),
            subject: s.err(),
            ..FormErrors::default()
        }),
    }
}

/// Reads the validate form into the body of `POST /tokens`. Tokens contain no whitespace, and
/// pasted ones often end with a newline, so the token is trimmed too.
///
/// # Errors
/// [`FormErrors`] naming every field at fault (token, purpose, subject).
pub fn read_validate_form(
    token: &str,
    purpose: &str,
    subject: &str,
) -> Result<ValidateRequest, FormErrors> {
    let token = token.trim();
    let missing = token.is_empty().then(|| "Paste a token first.".to_owned());
    match (missing, read_purpose(purpose), read_subject(subject)) {
        (None, Ok(purpose), Ok(subject)) => {
            Ok(ValidateRequest { token: token.to_owned(), purpose, subject })
        }
        (token, p, s) => {
            Err(FormErrors { token, purpose: p.err(), subject: s.err(), ..FormErrors::default() })
        }
    }
}

/// `purpose must be ...` becomes `Purpose must be ...`. ASCII only, as `shared`'s messages are:
/// `char::to_uppercase` would bring Unicode's case tables (kilobytes) into the wasm.
fn sentence_case(text: &str) -> String {
    let mut text = text.to_owned();
    if let Some(first) = text.get_mut(..1) {
        first.make_ascii_uppercase();
    }
    text
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a failed unwrap is a failed test
mod tests {
    use super::*;

    const PURPOSE_RULE: &str =
        "Purpose must be 1 to 64 characters of a-z, 0-9, '.', '_' and '-', or blank for none.";
    const SUBJECT_RULE: &str = "Subject must be 1 to 256 bytes of UTF-8, or blank for none.";

    #[test]
    fn blank_purpose_and_subject_mean_none_and_values_are_trimmed() {
        assert_eq!(read_purpose(""), Ok(None));
        assert_eq!(read_purpose("  \n"), Ok(None));
        assert_eq!(read_purpose(" password-reset\n"), Ok(Some("password-reset".into())));
        assert_eq!(read_subject("\t"), Ok(None));
        assert_eq!(read_subject(" acct 42 "), Ok(Some("acct 42".into())));
    }

    #[test]
    fn purposes_and_subjects_follow_the_servers_rules() {
        for bad in ["Reset", "a b", "é", &"p".repeat(65)] {
            assert_eq!(read_purpose(bad), Err(PURPOSE_RULE.to_owned()), "{bad:?}");
        }
        assert_eq!(read_purpose(&"p".repeat(64)), Ok(Some("p".repeat(64))));
        assert_eq!(read_subject(&"é".repeat(128)), Ok(Some("é".repeat(128))));
        assert_eq!(read_subject(&"s".repeat(257)), Err(SUBJECT_RULE.to_owned()));
    }

    #[test]
    fn supersede_needs_both_purpose_and_subject() {
        assert!(can_supersede("login", "acct-1"));
        assert!(!can_supersede("login", " "));
        assert!(!can_supersede("", "acct-1"));
        let only_purpose = read_issue_form("", "login", "", true).unwrap();
        assert!(!only_purpose.supersede, "a ticked box without a subject is not sent");
        let both = read_issue_form("", "login", "acct-1", true).unwrap();
        assert!(both.supersede);
        assert!(!read_issue_form("", "login", "acct-1", false).unwrap().supersede);
    }

    #[test]
    fn the_issue_query_names_only_what_is_set() {
        assert_eq!(read_issue_form("", "", "", true).unwrap().query(), vec![]);
        assert_eq!(
            read_issue_form(" 90 ", "", "", false).unwrap().query(),
            vec![("ttl", "90".to_owned())]
        );
        assert_eq!(
            read_issue_form("60", "login", "acct 1&2", true).unwrap().query(),
            vec![
                ("ttl", "60".to_owned()),
                ("purpose", "login".to_owned()),
                ("subject", "acct 1&2".to_owned()),
                ("supersede", "true".to_owned()),
            ]
        );
    }

    #[test]
    fn every_bad_issue_field_is_named_at_once() {
        assert_eq!(
            read_issue_form("ten", "Login", &"s".repeat(300), true),
            Err(FormErrors {
                lifetime: Some(
                    "Lifetime must be a whole number of seconds (1 or more), or blank for the \
                     default."
                        .into()
                ),
                token: None,
                purpose: Some(PURPOSE_RULE.into()),
                subject: Some(SUBJECT_RULE.into()),
            })
        );
        assert!(read_issue_form("", "ok", "", false).is_ok());
    }

    #[test]
    fn the_validate_form_becomes_the_request_body() {
        assert_eq!(read_validate_form(" a.b.c\n", "", "").unwrap(), ValidateRequest::new("a.b.c"));
        assert_eq!(
            read_validate_form("a.b.c", " login ", "acct-1").unwrap(),
            ValidateRequest {
                token: "a.b.c".into(),
                purpose: Some("login".into()),
                subject: Some("acct-1".into()),
            }
        );
        assert_eq!(
            read_validate_form("  ", "Login", ""),
            Err(FormErrors {
                token: Some("Paste a token first.".into()),
                purpose: Some(PURPOSE_RULE.into()),
                ..FormErrors::default()
            })
        );
    }
}
