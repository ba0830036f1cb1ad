//! A store that keeps nothing: FOR BENCHMARKS ONLY.
//!
//! [`NullStore`] breaks the [`TokenStore`] contract on purpose: `insert` stores nothing and
//! `consume` reports [`Consumed::Consumed`] for any uuid, so a token could be used any number
//! of times; `revoke` always revokes and `status` finds nothing. It exists to measure everything but storage (HTTP, JSON, signing, verifying) and
//! to give the durable store a baseline to be compared with in the same run. It is compiled only
//! with the `bench-null-store` cargo feature (off by default, on in `scripts/bench.sh`), where the
//! local server selects it with the hidden `--store null`; a release build refuses `null`, and the
//! Lambda never uses it.

use super::{AttemptId, Consumed, Inserted, Revoked, StoreError, Stored, TokenRecord, TokenStore};
use async_trait::async_trait;
use uuid::Uuid;

/// Benchmark-only store: insert always succeeds, consume always consumes. NOT single-use.
#[derive(Debug, Default, Clone, Copy)]
pub struct NullStore;

#[async_trait]
impl TokenStore for NullStore {
    async fn insert(
        &self,
        _record: &TokenRecord,
        _supersede: bool,
        _now: i64,
    ) -> Result<Inserted, StoreError> {
        Ok(Inserted::default())
    }

    async fn revoke(&self, _uuid: Uuid, _now: i64) -> Result<Revoked, StoreError> {
        Ok(Revoked::Revoked)
    }

    async fn status(&self, _uuid: Uuid) -> Result<Option<Stored>, StoreError> {
        Ok(None)
    }

    async fn consume(
        &self,
        _uuid: Uuid,
        _attempt: &AttemptId,
        _now: i64,
    ) -> Result<Consumed, StoreError> {
        Ok(Consumed::Consumed)
    }

    async fn ready(&self) -> Result<(), StoreError> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_null_store_accepts_every_insert_and_consumes_every_uuid_again_and_again() {
        let uuid = Uuid::new_v4();
        let store = NullStore;
        let record = TokenRecord { uuid, expiry: 10, pair: None };
        store.insert(&record, false, 0).await.unwrap();
        store.insert(&record, false, 0).await.unwrap();
        let attempt = AttemptId::generate();
        assert_eq!(store.consume(uuid, &attempt, 100).await.unwrap(), Consumed::Consumed);
        assert_eq!(store.consume(uuid, &attempt, 100).await.unwrap(), Consumed::Consumed);
    }
}
