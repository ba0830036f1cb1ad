//! The one conformance suite every [`TokenStore`] runs, unchanged.
//!
//! Each check is an async function taking `&dyn TokenStore`; [`suite!`] turns them into
//! `#[tokio::test]`s for a store, given an async expression that opens a fresh, empty store and
//! returns `(guard, store)` (the guard keeps its temporary file or table alive).
//!
//! Times are plain epoch seconds near 1000 and the records' uuids are fresh v4s, so checks never
//! depend on the wall clock and can share one table.

use super::{AttemptId, Consumed, StoreError, TokenRecord, TokenStore};
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

fn used(at: i64, attempt: &AttemptId) -> Consumed {
    Consumed::Used { at, attempt: attempt.clone() }
}

/// An inserted record is consumed once; a second attempt learns when and by whom.
pub async fn an_inserted_token_is_consumed_exactly_once(store: &dyn TokenStore) {
    let (token, first, second) = (record(2_000), AttemptId::generate(), AttemptId::generate());
    store.insert(token).await.unwrap();
    assert_eq!(store.consume(token.uuid, &first, 1_000).await.unwrap(), Consumed::Consumed);
    assert_eq!(store.consume(token.uuid, &second, 1_001).await.unwrap(), used(1_000, &first));
}

/// The winning attempt, retried (its answer was lost), finds its own use and changes nothing.
pub async fn a_retry_of_the_winning_attempt_finds_its_own_use(store: &dyn TokenStore) {
    let (token, attempt) = (record(2_000), AttemptId::generate());
    store.insert(token).await.unwrap();
    assert_eq!(store.consume(token.uuid, &attempt, 1_000).await.unwrap(), Consumed::Consumed);
    assert_eq!(store.consume(token.uuid, &attempt, 1_005).await.unwrap(), used(1_000, &attempt));
    assert_eq!(store.consume(token.uuid, &attempt, 1_009).await.unwrap(), used(1_000, &attempt));
}

/// A uuid never inserted is not found (never "used").
pub async fn an_unknown_token_is_not_found(store: &dyn TokenStore) {
    let attempt = AttemptId::generate();
    assert_eq!(store.consume(Uuid::new_v4(), &attempt, 1_000).await.unwrap(), Consumed::NotFound);
}

/// An insert retried after a lost answer finds its own record and succeeds; an insert of a
/// different record under the same uuid is refused and changes nothing.
pub async fn inserts_are_idempotent_and_never_overwrite(store: &dyn TokenStore) {
    let first = record(2_000);
    store.insert(first).await.unwrap();
    store.insert(first).await.unwrap();
    let other = TokenRecord { expiry: 9_000, ..first };
    assert!(matches!(store.insert(other).await, Err(StoreError::Duplicate)));
    // Still the first record: expired at 2000, not 9000, and consumable once.
    let attempt = AttemptId::generate();
    assert_eq!(store.consume(first.uuid, &attempt, 2_000).await.unwrap(), Consumed::Expired);
    assert_eq!(store.consume(first.uuid, &attempt, 1_999).await.unwrap(), Consumed::Consumed);
}

/// A late or retried insert never brings a used token back.
pub async fn a_late_insert_never_revives_a_used_token(store: &dyn TokenStore) {
    let (token, attempt) = (record(2_000), AttemptId::generate());
    store.insert(token).await.unwrap();
    assert_eq!(store.consume(token.uuid, &attempt, 1_000).await.unwrap(), Consumed::Consumed);
    store.insert(token).await.unwrap();
    let other = AttemptId::generate();
    assert_eq!(store.consume(token.uuid, &other, 1_001).await.unwrap(), used(1_000, &attempt));
}

/// A record is usable while `now < expiry` and refused from the exact second of `expiry` on
/// (RFC 7519 section 4.1.4), even while it is still stored (TTL clean-up lags).
pub async fn expiry_is_enforced_to_the_second(store: &dyn TokenStore) {
    let (early, late, attempt) = (record(1_000), record(1_000), AttemptId::generate());
    store.insert(early).await.unwrap();
    store.insert(late).await.unwrap();
    assert_eq!(store.consume(early.uuid, &attempt, 999).await.unwrap(), Consumed::Consumed);
    assert_eq!(store.consume(late.uuid, &attempt, 1_000).await.unwrap(), Consumed::Expired);
    assert_eq!(store.consume(late.uuid, &attempt, 5_000).await.unwrap(), Consumed::Expired);
}

/// Refusing an expired record does not change it or make it usable later: it stays expired.
pub async fn a_refused_expired_record_is_never_consumed(store: &dyn TokenStore) {
    let (token, attempt) = (record(1_000), AttemptId::generate());
    store.insert(token).await.unwrap();
    assert_eq!(store.consume(token.uuid, &attempt, 1_001).await.unwrap(), Consumed::Expired);
    assert_eq!(store.consume(token.uuid, &attempt, 1_002).await.unwrap(), Consumed::Expired);
}

/// [`CONTENDERS`] concurrent consumes of one record, half of them retries of one attempt id
/// (one client's `Idempotency-Key`) and half with ids of their own: exactly one consume wins,
/// and every other one finds the record used by the winner's attempt id; run [`ROUNDS`] times.
pub async fn one_of_many_concurrent_consumes_wins(store: Arc<dyn TokenStore>) {
    let shared_key = AttemptId::generate();
    for round in 0..ROUNDS {
        let token = record(2_000);
        store.insert(token).await.unwrap();
        let tasks = (0..CONTENDERS).map(|i| {
            let store = Arc::clone(&store);
            let attempt = if i % 2 == 0 { shared_key.clone() } else { AttemptId::generate() };
            tokio::spawn(async move {
                let outcome = store.consume(token.uuid, &attempt, 1_000).await.unwrap();
                (attempt, outcome)
            })
        });
        let outcomes: Vec<(AttemptId, Consumed)> =
            join_all(tasks).await.into_iter().map(|joined| joined.unwrap()).collect();
        let winners: Vec<&AttemptId> =
            outcomes.iter().filter(|(_, o)| *o == Consumed::Consumed).map(|(a, _)| a).collect();
        assert_eq!(winners.len(), 1, "round {round}");
        let winner = winners[0];
        let losers = outcomes.iter().filter(|(_, o)| *o == used(1_000, winner)).count();
        assert_eq!(losers, CONTENDERS - 1, "round {round}: {outcomes:?}");
    }
}

/// Concurrent inserts of one record (an insert and its retries) all succeed and store it once;
/// concurrent inserts of different records under one uuid store exactly one.
pub async fn concurrent_inserts_store_one_record(store: Arc<dyn TokenStore>) {
    let token = record(2_000);
    let tasks = (0..CONTENDERS).map(|_| {
        let store = Arc::clone(&store);
        tokio::spawn(async move { store.insert(token).await })
    });
    assert!(join_all(tasks).await.iter().all(|r| matches!(r, Ok(Ok(())))));
    let attempt = AttemptId::generate();
    assert_eq!(store.consume(token.uuid, &attempt, 1_000).await.unwrap(), Consumed::Consumed);

    let uuid = Uuid::new_v4();
    let tasks = (0..CONTENDERS).map(|i| {
        let store = Arc::clone(&store);
        tokio::spawn(
            async move { store.insert(TokenRecord { uuid, expiry: 2_000 + i as i64 }).await },
        )
    });
    let results = join_all(tasks).await;
    let stored = results.iter().filter(|r| matches!(r, Ok(Ok(())))).count();
    let refused = results.iter().filter(|r| matches!(r, Ok(Err(StoreError::Duplicate)))).count();
    assert_eq!((stored, refused), (1, CONTENDERS - 1));
}

/// Many tokens issued and consumed concurrently: each is consumed exactly once.
pub async fn interleaved_tokens_are_each_consumed_once(store: Arc<dyn TokenStore>) {
    let tokens: Vec<TokenRecord> = (0..200).map(|_| record(2_000)).collect();
    let tasks = tokens.iter().map(|token| {
        let (store, token) = (Arc::clone(&store), *token);
        tokio::spawn(async move {
            let (a, b) = (AttemptId::generate(), AttemptId::generate());
            store.insert(token).await.unwrap();
            let first = store.consume(token.uuid, &a, 1_000).await.unwrap();
            let second = store.consume(token.uuid, &b, 1_000).await.unwrap();
            (first, second == used(1_000, &a))
        })
    });
    for joined in join_all(tasks).await {
        assert_eq!(joined.unwrap(), (Consumed::Consumed, true));
    }
}

/// A store that has just opened is ready.
pub async fn a_fresh_store_is_ready(store: &dyn TokenStore) {
    store.ready().await.unwrap();
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
                a_retry_of_the_winning_attempt_finds_its_own_use,
                an_unknown_token_is_not_found,
                inserts_are_idempotent_and_never_overwrite,
                a_late_insert_never_revives_a_used_token,
                expiry_is_enforced_to_the_second,
                a_refused_expired_record_is_never_consumed,
                a_fresh_store_is_ready);
            $crate::store::conformance::suite!(@shared $open;
                one_of_many_concurrent_consumes_wins,
                concurrent_inserts_store_one_record,
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
