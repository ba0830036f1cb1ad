//! The one conformance suite every [`TokenStore`] runs, unchanged.
//!
//! Each check is an async function taking `&dyn TokenStore`; [`suite!`] turns them into
//! `#[tokio::test]`s for a store, given an async expression that opens a fresh, empty store and
//! returns `(guard, store)` (the guard keeps its temporary file or table alive).
//!
//! Times are plain epoch seconds near 1000 and the records' uuids are fresh v4s, so checks never
//! depend on the wall clock and can share one table.

use super::{Consumed, StoreError, TokenRecord, TokenStore};
use futures::future::join_all;
use std::sync::Arc;
use uuid::Uuid;

/// Concurrent validators of one token in [`one_of_many_concurrent_consumes_wins`].
pub const CONTENDERS: usize = 64;
/// How often the race is run.
pub const ROUNDS: usize = 20;

fn record(expiry: i64) -> TokenRecord {
    TokenRecord { uuid: Uuid::new_v4(), expiry }
}

/// An inserted record is consumed once; the second consume finds nothing.
pub async fn an_inserted_token_is_consumed_exactly_once(store: &dyn TokenStore) {
    let token = record(2_000);
    store.insert(token).await.unwrap();
    assert_eq!(store.consume(token.uuid, 1_000).await.unwrap(), Consumed::Consumed);
    assert_eq!(store.consume(token.uuid, 1_000).await.unwrap(), Consumed::NotFound);
}

/// A uuid never inserted is not found.
pub async fn an_unknown_token_is_not_found(store: &dyn TokenStore) {
    assert_eq!(store.consume(Uuid::new_v4(), 1_000).await.unwrap(), Consumed::NotFound);
}

/// A second insert of a uuid is refused and leaves the first record as it was.
pub async fn a_duplicate_insert_is_refused_and_changes_nothing(store: &dyn TokenStore) {
    let first = record(2_000);
    store.insert(first).await.unwrap();
    let again = TokenRecord { expiry: 9_000, ..first };
    assert!(matches!(store.insert(again).await, Err(StoreError::Duplicate)));
    // Still the first record: expired at 2000, not 9000.
    assert_eq!(store.consume(first.uuid, 2_000).await.unwrap(), Consumed::Expired);
    assert_eq!(store.consume(first.uuid, 1_999).await.unwrap(), Consumed::Consumed);
}

/// A record is usable while `now < expiry` and refused from the exact second of `expiry` on
/// (RFC 7519 section 4.1.4), even while it is still stored (TTL clean-up lags).
pub async fn expiry_is_enforced_to_the_second(store: &dyn TokenStore) {
    let (early, late) = (record(1_000), record(1_000));
    store.insert(early).await.unwrap();
    store.insert(late).await.unwrap();
    assert_eq!(store.consume(early.uuid, 999).await.unwrap(), Consumed::Consumed);
    assert_eq!(store.consume(late.uuid, 1_000).await.unwrap(), Consumed::Expired);
    assert_eq!(store.consume(late.uuid, 5_000).await.unwrap(), Consumed::Expired);
}

/// Refusing an expired record does not remove it or make it usable later: it stays expired.
pub async fn a_refused_expired_record_is_never_consumed(store: &dyn TokenStore) {
    let token = record(1_000);
    store.insert(token).await.unwrap();
    assert_eq!(store.consume(token.uuid, 1_001).await.unwrap(), Consumed::Expired);
    assert_eq!(store.consume(token.uuid, 1_002).await.unwrap(), Consumed::Expired);
}

/// [`CONTENDERS`] concurrent consumes of one record: exactly one wins, the rest find nothing;
/// run [`ROUNDS`] times.
pub async fn one_of_many_concurrent_consumes_wins(store: Arc<dyn TokenStore>) {
    for round in 0..ROUNDS {
        let token = record(2_000);
        store.insert(token).await.unwrap();
        let tasks = (0..CONTENDERS).map(|_| {
            let store = Arc::clone(&store);
            tokio::spawn(async move { store.consume(token.uuid, 1_000).await.unwrap() })
        });
        let outcomes: Vec<Consumed> =
            join_all(tasks).await.into_iter().map(|joined| joined.unwrap()).collect();
        let wins = outcomes.iter().filter(|o| **o == Consumed::Consumed).count();
        let misses = outcomes.iter().filter(|o| **o == Consumed::NotFound).count();
        assert_eq!((wins, misses), (1, CONTENDERS - 1), "round {round}");
    }
}

/// Concurrent inserts of one uuid: exactly one is stored.
pub async fn one_of_many_concurrent_inserts_wins(store: Arc<dyn TokenStore>) {
    let token = record(2_000);
    let tasks = (0..CONTENDERS).map(|_| {
        let store = Arc::clone(&store);
        tokio::spawn(async move { store.insert(token).await })
    });
    let results = join_all(tasks).await;
    let stored = results.iter().filter(|r| matches!(r, Ok(Ok(())))).count();
    let refused = results.iter().filter(|r| matches!(r, Ok(Err(StoreError::Duplicate)))).count();
    assert_eq!((stored, refused), (1, CONTENDERS - 1));
    assert_eq!(store.consume(token.uuid, 1_000).await.unwrap(), Consumed::Consumed);
}

/// Many tokens issued and consumed concurrently: each is consumed exactly once.
pub async fn interleaved_tokens_are_each_consumed_once(store: Arc<dyn TokenStore>) {
    let tokens: Vec<TokenRecord> = (0..200).map(|_| record(2_000)).collect();
    let tasks = tokens.iter().map(|token| {
        let (store, token) = (Arc::clone(&store), *token);
        tokio::spawn(async move {
            store.insert(token).await.unwrap();
            let first = store.consume(token.uuid, 1_000).await.unwrap();
            let second = store.consume(token.uuid, 1_000).await.unwrap();
            (first, second)
        })
    });
    for joined in join_all(tasks).await {
        assert_eq!(joined.unwrap(), (Consumed::Consumed, Consumed::NotFound));
    }
}

/// Expands to one `#[tokio::test]` per check above, for the store that `$open` opens.
macro_rules! suite {
    ($open:expr) => {
        mod conformance_suite {
            #[allow(unused_imports)]
            use super::*;
            use std::sync::Arc;
            use $crate::store::{TokenStore, conformance as c};

            $crate::store::conformance::suite!(@by_ref $open;
                an_inserted_token_is_consumed_exactly_once,
                an_unknown_token_is_not_found,
                a_duplicate_insert_is_refused_and_changes_nothing,
                expiry_is_enforced_to_the_second,
                a_refused_expired_record_is_never_consumed);
            $crate::store::conformance::suite!(@shared $open;
                one_of_many_concurrent_consumes_wins,
                one_of_many_concurrent_inserts_wins,
                interleaved_tokens_are_each_consumed_once);
        }
    };
    (@by_ref $open:expr; $($check:ident),+) => {$(
        #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
        async fn $check() {
            let (_guard, store) = $open.await;
            c::$check(&store).await;
        }
    )+};
    (@shared $open:expr; $($check:ident),+) => {$(
        #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
        async fn $check() {
            let (_guard, store) = $open.await;
            let store: Arc<dyn TokenStore> = Arc::new(store);
            c::$check(store).await;
        }
    )+};
}
pub(crate) use suite;
