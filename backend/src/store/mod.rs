//! Where issued tokens wait for their single use.
//!
//! A token's record is its `uuid` claim and its expiry. The [`TokenStore`] contract is what makes
//! a token single-use, so every implementation must hold it under any concurrency:
//!
//! - `insert` fails with [`StoreError::Duplicate`] if the `uuid` is already stored;
//! - `consume` removes the record atomically and reports [`Consumed::Consumed`] to exactly one
//!   caller, and only while `now < expiry`. There is no separate read: a read-then-delete lets two
//!   concurrent validations both succeed.
//!
//! Expiry is always decided here against the caller's clock; background clean-up (the embedded
//! store's sweeper, DynamoDB's TTL) only reclaims space.
//!
//! [`conformance`] is the one test suite every implementation runs.

use async_trait::async_trait;
use std::error::Error as StdError;
use uuid::Uuid;

#[cfg(test)]
pub mod conformance;
pub mod dynamodb;
pub mod embedded;
pub mod null;

/// One issued, unused token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TokenRecord {
    /// The token's `uuid` claim: its identity.
    pub uuid: Uuid,
    /// The token's `exp` claim, in epoch seconds. The token is usable while `now < expiry`
    /// (RFC 7519 section 4.1.4).
    pub expiry: i64,
}

/// What `consume` found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Consumed {
    /// The record existed and was unexpired; it is now removed. Exactly one caller sees this.
    Consumed,
    /// No record: the token was consumed before (or never stored).
    NotFound,
    /// The record exists but `now >= expiry`; it is left for clean-up.
    Expired,
}

/// Boxed cause of a store failure, kept for the log, never sent to a client.
pub type Cause = Box<dyn StdError + Send + Sync>;

/// A store failure.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// `insert` found the `uuid` already stored (a UUID v4 collision or a replayed insert).
    #[error("a token with this uuid is already stored")]
    Duplicate,
    /// The store is unreachable, throttled or timed out; a retry later may succeed (HTTP 503).
    #[error("token store unavailable")]
    Unavailable(#[source] Cause),
    /// Any other failure: I/O error, corrupt data, a bug (HTTP 500).
    #[error("token store failure")]
    Internal(#[source] Cause),
}

/// Storage of issued tokens; see the module documentation for the contract.
#[async_trait]
pub trait TokenStore: Send + Sync {
    /// Stores `record`. When this returns `Ok`, the record is durable.
    ///
    /// # Errors
    /// [`StoreError::Duplicate`] if a record with the same `uuid` exists (nothing is changed);
    /// `Unavailable`/`Internal` if the write may not have happened.
    async fn insert(&self, record: TokenRecord) -> Result<(), StoreError>;

    /// Atomically removes the record of `uuid` if it exists and `now < expiry` (`now` in epoch
    /// seconds). Of any number of concurrent calls for one `uuid`, at most one gets
    /// [`Consumed::Consumed`]. When this returns `Consumed`, the removal is durable.
    ///
    /// # Errors
    /// `Unavailable`/`Internal` if the store could not answer; the record is then either intact
    /// or removed, never half-changed.
    async fn consume(&self, uuid: Uuid, now: i64) -> Result<Consumed, StoreError>;
}
