//! What the use cases tell the outside world: one [`Event`] per token issued, superseded,
//! revoked, used, replayed or refused, given to an injected [`Observer`]. The audit log and the
//! metrics ([`crate::audit::Telemetry`]) are observers; the use cases know nothing of either.

use crate::store::{AttemptId, StoreError};
use crate::tokens::{Claims, ValidateError};
use shared::Reason;
use uuid::Uuid;

/// Something that happened to a token. Times are epoch seconds from the service's clock.
#[derive(Debug)]
pub enum Event<'a> {
    /// A token was issued: its record is stored and the token handed out.
    Issued {
        /// Its claims.
        claims: &'a Claims,
        /// When.
        at: i64,
    },
    /// An unused token was revoked because `by`, of the same purpose and subject, was issued
    /// with `supersede=true` (in the same atomic step as `by`'s insert). One event per token
    /// revoked, after `by`'s [`Event::Issued`].
    Superseded {
        /// The revoked token's `uuid`. Its purpose is `by`'s; its subject too.
        uuid: Uuid,
        /// The claims of the token that superseded it.
        by: &'a Claims,
        /// When.
        at: i64,
    },
    /// An unused token was revoked (`POST /tokens/revoke`) by this call.
    Revoked {
        /// Its claims.
        claims: &'a Claims,
        /// When.
        at: i64,
    },
    /// A token was accepted: used by `attempt` now (`replayed: None`), or the repeat of that
    /// attempt's success at `replayed` (its answer was lost).
    Used {
        /// Its claims.
        claims: &'a Claims,
        /// The validation attempt.
        attempt: &'a AttemptId,
        /// When it was used, if this repeats an earlier success.
        replayed: Option<i64>,
        /// When.
        at: i64,
    },
    /// A token was refused, or the store could not answer. `claims` is `None` when the token's
    /// signature or shape failed: nothing in it can be trusted, not even its `uuid`.
    Refused {
        /// Its verified claims, if it got that far.
        claims: Option<&'a Claims>,
        /// The validation attempt.
        attempt: &'a AttemptId,
        /// Why.
        error: &'a ValidateError,
        /// When.
        at: i64,
    },
}

/// Receives [`Event`]s. Called on the request's task after the store answered; must not block.
pub trait Observer: Send + Sync {
    /// Records `event`.
    fn observe(&self, event: &Event<'_>);
}

/// Ignores every event (the default of [`crate::tokens::TokenService`]).
#[derive(Debug, Default, Clone, Copy)]
pub struct NoObserver;

impl Observer for NoObserver {
    fn observe(&self, _event: &Event<'_>) {}
}

/// The [`Reason`] a client is given for `error`, as `POST /tokens` answers it.
pub fn reason(error: &ValidateError) -> Reason {
    match error {
        ValidateError::AlreadyUsed { .. } => Reason::AlreadyUsed,
        ValidateError::Expired => Reason::Expired,
        ValidateError::InvalidSignature => Reason::InvalidSignature,
        ValidateError::Malformed(_) => Reason::MalformedToken,
        ValidateError::UnknownToken => Reason::UnknownToken,
        ValidateError::Revoked { .. } => Reason::Revoked,
        ValidateError::WrongPurpose => Reason::WrongPurpose,
        ValidateError::WrongSubject => Reason::WrongSubject,
        ValidateError::Store(StoreError::TooManyOutstanding) => Reason::TooManyOutstanding,
        ValidateError::Store(StoreError::Unavailable(_)) => Reason::Unavailable,
        ValidateError::Store(StoreError::Overloaded) => Reason::Overloaded,
        ValidateError::Store(StoreError::OutcomeUnknown(_)) => Reason::OutcomeUnknown,
        ValidateError::Store(StoreError::Duplicate | StoreError::Internal(_)) => Reason::Internal,
    }
}
