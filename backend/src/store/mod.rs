//! Where issued tokens wait for their single use.
//!
//! A token's record is its `uuid` claim, its expiry and its state: `unused`, `used` (with the
//! time and the attempt id that used it) or `revoked`. Records are never deleted to consume a
//! token; they change state, and only clean-up after expiry removes them (the embedded store's
//! sweeper, DynamoDB's TTL). So a late or retried insert can never bring a used token back: the
//! insert's condition finds the used record and refuses.
//!
//! The [`TokenStore`] contract is what makes a token single-use, so every implementation must
//! hold it under any concurrency:
//!
//! - `insert` stores a new `unused` record; one that finds a record with the same `uuid` and
//!   `expiry` (its own earlier attempt, whose answer was lost) succeeds without a change, and one
//!   that finds any other record fails with [`StoreError::Duplicate`];
//! - `consume` changes `unused` to `used` in ONE conditional write and reports
//!   [`Consumed::Consumed`] to exactly one caller, only while `now < expiry`; every other caller
//!   learns the record's state as it is ([`Consumed::Used`] with the winning attempt's id, so the
//!   service can recognise a retry of the winner). There is no separate read: a read-then-write
//!   lets two concurrent validations both succeed.
//!
//! - `revoke` changes `unused` to `revoked` in one conditional write; it races with `consume`
//!   and exactly one of them wins;
//! - a record bound to a [`Pair`] (a purpose and a subject) can be inserted with `supersede`:
//!   in the same atomic step every other unused record of that pair becomes `revoked`, so that
//!   afterwards no two tokens of the pair can both be consumed, also under concurrent issues;
//!   the insert reports which ones it revoked ([`Inserted::superseded`]), for the audit trail.
//!   A pair holds at most [`MAX_OUTSTANDING_PER_PAIR`] unused records;
//! - `status` only reads.
//!
//! Expiry is always decided here against the caller's clock; background clean-up only reclaims
//! space.
//!
//! [`conformance`] is the one test suite every implementation runs.

use async_trait::async_trait;
use std::error::Error as StdError;
use uuid::Uuid;

#[cfg(test)]
pub mod conformance;
pub mod dynamodb;
#[cfg(feature = "embedded-store")]
pub mod embedded;
#[cfg(all(test, feature = "embedded-store"))]
pub mod faulty;
#[cfg(feature = "bench-null-store")]
pub mod null;

/// A token's record as it is inserted: unused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenRecord {
    /// The token's `uuid` claim: its identity.
    pub uuid: Uuid,
    /// The token's `exp` claim, in epoch seconds. The token is usable while `now < expiry`
    /// (RFC 7519 section 4.1.4).
    pub expiry: i64,
    /// The purpose and subject the token is bound to, when it names both: the unit that
    /// `supersede` acts on.
    pub pair: Option<Pair>,
}

/// What an insert did, besides storing its record.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Inserted {
    /// The uuids of the unused records of the pair that this insert revoked by superseding
    /// them, in no particular order; empty without `supersede`. Each was unused and unexpired
    /// and is now revoked, by this insert and no other call. An insert retried after a lost
    /// answer that finds its own record reports none: what its first attempt revoked is not
    /// recorded anywhere.
    pub superseded: Vec<Uuid>,
}

/// A purpose and a subject, as bound into a token (`purpose` and `sub` claims).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Pair {
    /// 1 to 64 characters of `[a-z0-9._-]`.
    pub purpose: String,
    /// 1 to 256 bytes of UTF-8.
    pub subject: String,
}

/// Most unused tokens one purpose and subject may have outstanding at once (DynamoDB revokes
/// them in one transaction of at most 100 items). Issuing one more without `supersede` is
/// refused with [`StoreError::TooManyOutstanding`].
pub const MAX_OUTSTANDING_PER_PAIR: usize = 90;

/// A record's state, as [`TokenStore::status`] reads it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum State {
    /// Not used yet.
    Unused,
    /// Used at `at` (epoch seconds) by `attempt`.
    Used {
        /// When, epoch seconds.
        at: i64,
        /// The attempt that used it.
        attempt: AttemptId,
    },
    /// Revoked at `at` (epoch seconds), by `POST /tokens/revoke` or a superseding issue.
    Revoked {
        /// When, epoch seconds.
        at: i64,
    },
}

/// A stored record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stored {
    /// Expiry, epoch seconds.
    pub expiry: i64,
    /// Its state.
    pub state: State,
}

/// What `revoke` found or did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Revoked {
    /// The record was unused and unexpired; it is now revoked. Exactly one of the racing
    /// `revoke` and `consume` calls wins.
    Revoked,
    /// No record with this `uuid`.
    NotFound,
    /// `now >= expiry`; unchanged.
    Expired,
    /// Used before; unchanged.
    Used {
        /// When, epoch seconds.
        at: i64,
    },
    /// Revoked before, at `at` (epoch seconds); unchanged.
    AlreadyRevoked {
        /// When, epoch seconds.
        at: i64,
    },
}

/// The id of one validation attempt: the client's `Idempotency-Key`, or one generated per HTTP
/// request. At most [`shared::MAX_IDEMPOTENCY_KEY_BYTES`] bytes of `A-Za-z0-9-_.:`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct AttemptId(String);

impl AttemptId {
    /// The attempt id a client chose.
    pub fn from_key(key: shared::IdempotencyKey) -> Self {
        Self(key.as_str().to_owned())
    }

    /// A fresh, random attempt id (a UUID v4) for a request that named none.
    pub fn generate() -> Self {
        Self(Uuid::new_v4().to_string())
    }

    /// Reads an attempt id back from a store. Anything stored was an [`AttemptId`] before.
    pub(crate) fn stored(id: impl Into<String>) -> Self {
        Self(id.into())
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// What `consume` found or did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Consumed {
    /// The record was `unused` and unexpired; it is now `used` by this attempt. Exactly one
    /// caller sees this per record.
    Consumed,
    /// No record with this `uuid`.
    NotFound,
    /// The record exists but `now >= expiry`; it is left for clean-up.
    Expired,
    /// The record was used before, at `at` (epoch seconds) by `attempt`. When `attempt` is the
    /// caller's own, this is its own earlier success (a retry after a lost answer).
    Used {
        /// When it was used, epoch seconds.
        at: i64,
        /// The attempt that used it.
        attempt: AttemptId,
    },
    /// The record was revoked at `at` (epoch seconds) and can never be used.
    Revoked {
        /// When it was revoked, epoch seconds.
        at: i64,
    },
}

/// Boxed cause of a store failure, kept for the log, never sent to a client.
pub type Cause = Box<dyn StdError + Send + Sync>;

/// A store failure.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// `insert` found another record with this `uuid` (a UUID v4 collision).
    #[error("another token with this uuid is already stored")]
    Duplicate,
    /// The pair already has [`MAX_OUTSTANDING_PER_PAIR`] unused tokens; nothing was stored.
    #[error("this purpose and subject already have {MAX_OUTSTANDING_PER_PAIR} unused tokens")]
    TooManyOutstanding,
    /// The store is unreachable, throttled or refused the write, and nothing was changed; a
    /// retry later may succeed (HTTP 503 `unavailable`).
    #[error("token store unavailable")]
    Unavailable(#[source] Cause),
    /// Too much work is queued to finish in time; nothing was changed (HTTP 503 `overloaded`).
    #[error("token store overloaded")]
    Overloaded,
    /// The write may or may not have been applied (a timeout, or a connection lost after the
    /// request was sent). A retry with the same attempt id learns which (HTTP 503
    /// `outcome_unknown`).
    #[error("token store outcome unknown")]
    OutcomeUnknown(#[source] Cause),
    /// Any other failure: corrupt data, a missing table, a bug (HTTP 500).
    #[error("token store failure")]
    Internal(#[source] Cause),
}

/// Storage of issued tokens; see the module documentation for the contract.
#[async_trait]
pub trait TokenStore: Send + Sync {
    /// Stores `record` as unused; with `supersede` (only for a record with a pair), every
    /// other unused record of its pair becomes revoked at `now` (epoch seconds) in the same
    /// atomic step. When this returns `Ok`, the change is durable, and [`Inserted::superseded`]
    /// names the records it revoked. Retrying an insert whose answer was lost is safe: finding
    /// its own record (same `uuid` and `expiry`) is a success, which reports nothing superseded
    /// (the first attempt's revocations are durable but no longer known).
    ///
    /// # Errors
    /// [`StoreError::Duplicate`] if a different record with the same `uuid` exists,
    /// [`StoreError::TooManyOutstanding`] if the pair is full (nothing is changed); any other
    /// error if the write may not have happened.
    async fn insert(
        &self,
        record: &TokenRecord,
        supersede: bool,
        now: i64,
    ) -> Result<Inserted, StoreError>;

    /// Atomically changes the record of `uuid` from unused to used by `attempt`, if it is
    /// unused and `now < expiry` (`now` in epoch seconds); otherwise reports what it is. Of any
    /// number of concurrent calls for one `uuid`, at most one gets [`Consumed::Consumed`]. When
    /// this returns `Consumed`, the change is durable.
    ///
    /// # Errors
    /// [`StoreError::Unavailable`]/[`StoreError::Overloaded`] if nothing was changed,
    /// [`StoreError::OutcomeUnknown`] if the change may have been applied, `Internal` otherwise.
    /// The record is never half-changed.
    async fn consume(
        &self,
        uuid: Uuid,
        attempt: &AttemptId,
        now: i64,
    ) -> Result<Consumed, StoreError>;

    /// Atomically changes the record of `uuid` from unused to revoked at `now` (epoch
    /// seconds), if it is unused and `now < expiry`; otherwise reports what it is.
    ///
    /// # Errors
    /// As [`TokenStore::consume`].
    async fn revoke(&self, uuid: Uuid, now: i64) -> Result<Revoked, StoreError>;

    /// Reads the record of `uuid` (strongly consistent), changing nothing; `None` if there is
    /// none.
    ///
    /// # Errors
    /// `Unavailable`/`Internal` if the store could not answer.
    async fn status(&self, uuid: Uuid) -> Result<Option<Stored>, StoreError>;

    /// Whether the store can take writes now, for a readiness probe (`GET /health/ready`).
    ///
    /// # Errors
    /// Why it cannot.
    async fn ready(&self) -> Result<(), StoreError>;
}
