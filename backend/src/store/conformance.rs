//! The one conformance suite every [`TokenStore`] runs, unchanged.
//!
//! Each check is an async function taking `&dyn TokenStore`; [`suite!`] turns them into
//! `#[tokio::test]`s for a store, given an async expression that opens a fresh, empty store and
//! returns `(guard, store)` (the guard keeps its temporary file or table alive).
//!
//! Times are plain epoch seconds near 1000 and the records' uuids are fresh v4s, so checks never
//! depend on the wall clock and can share one table.

use super::{
    AttemptId, Consumed, Inserted, MAX_OUTSTANDING_PER_PAIR, Pair, Revoked, State, StoreError,
    Stored, TokenRecord, TokenStore,
};
use futures::future::join_all;
use std::sync::Arc;
use uuid::Uuid;

/// Concurrent validators of one token in [`one_of_many_concurrent_consumes_wins`].
pub const CONTENDERS: usize = 64;
/// How often the race is run.
pub const ROUNDS: usize = 20;

fn record(expiry: i64) -> TokenRecord {
    TokenRecord { uuid: Uuid::new_v4(), expiry, pair: None }
}

fn used(at: i64, attempt: &AttemptId) -> Consumed {
    Consumed::Used { at, attempt: attempt.clone() }
}

/// An inserted record is consumed once; a second attempt learns when and by whom.
pub async fn an_inserted_token_is_consumed_exactly_once(store: &dyn TokenStore) {
    let (token, first, second) = (record(2_000), AttemptId::generate(), AttemptId::generate());
    store.insert(&token, false, 1_000).await.unwrap();
    assert_eq!(store.consume(token.uuid, &first, 1_000).await.unwrap(), Consumed::Consumed);
    assert_eq!(store.consume(token.uuid, &second, 1_001).await.unwrap(), used(1_000, &first));
}

/// The winning attempt, retried (its answer was lost), finds its own use and changes nothing.
pub async fn a_retry_of_the_winning_attempt_finds_its_own_use(store: &dyn TokenStore) {
    let (token, attempt) = (record(2_000), AttemptId::generate());
    store.insert(&token, false, 1_000).await.unwrap();
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
    store.insert(&first, false, 1_000).await.unwrap();
    store.insert(&first, false, 1_000).await.unwrap();
    let other = TokenRecord { expiry: 9_000, ..first.clone() };
    assert!(matches!(store.insert(&other, false, 1_000).await, Err(StoreError::Duplicate)));
    // Still the first record: expired at 2000, not 9000, and consumable once.
    let attempt = AttemptId::generate();
    assert_eq!(store.consume(first.uuid, &attempt, 2_000).await.unwrap(), Consumed::Expired);
    assert_eq!(store.consume(first.uuid, &attempt, 1_999).await.unwrap(), Consumed::Consumed);
}

/// A late or retried insert never brings a used token back.
pub async fn a_late_insert_never_revives_a_used_token(store: &dyn TokenStore) {
    let (token, attempt) = (record(2_000), AttemptId::generate());
    store.insert(&token, false, 1_000).await.unwrap();
    assert_eq!(store.consume(token.uuid, &attempt, 1_000).await.unwrap(), Consumed::Consumed);
    store.insert(&token, false, 1_000).await.unwrap();
    let other = AttemptId::generate();
    assert_eq!(store.consume(token.uuid, &other, 1_001).await.unwrap(), used(1_000, &attempt));
}

/// A record is usable while `now < expiry` and refused from the exact second of `expiry` on
/// (RFC 7519 section 4.1.4), even while it is still stored (TTL clean-up lags).
pub async fn expiry_is_enforced_to_the_second(store: &dyn TokenStore) {
    let (early, late, attempt) = (record(1_000), record(1_000), AttemptId::generate());
    store.insert(&early, false, 1_000).await.unwrap();
    store.insert(&late, false, 1_000).await.unwrap();
    assert_eq!(store.consume(early.uuid, &attempt, 999).await.unwrap(), Consumed::Consumed);
    assert_eq!(store.consume(late.uuid, &attempt, 1_000).await.unwrap(), Consumed::Expired);
    assert_eq!(store.consume(late.uuid, &attempt, 5_000).await.unwrap(), Consumed::Expired);
}

/// Refusing an expired record does not change it or make it usable later: it stays expired.
pub async fn a_refused_expired_record_is_never_consumed(store: &dyn TokenStore) {
    let (token, attempt) = (record(1_000), AttemptId::generate());
    store.insert(&token, false, 1_000).await.unwrap();
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
        store.insert(&token, false, 1_000).await.unwrap();
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

/// Whether an insert's task stored its record and, having no pair, superseded nothing.
fn stored_alone(joined: &Result<Result<Inserted, StoreError>, tokio::task::JoinError>) -> bool {
    matches!(joined, Ok(Ok(inserted)) if inserted.superseded.is_empty())
}

/// Concurrent inserts of one record (an insert and its retries) all succeed and store it once;
/// concurrent inserts of different records under one uuid store exactly one.
pub async fn concurrent_inserts_store_one_record(store: Arc<dyn TokenStore>) {
    let token = record(2_000);
    let tasks = (0..CONTENDERS).map(|_| {
        let (store, token) = (Arc::clone(&store), token.clone());
        tokio::spawn(async move { store.insert(&token, false, 1_000).await })
    });
    assert!(join_all(tasks).await.iter().all(stored_alone));
    let attempt = AttemptId::generate();
    assert_eq!(store.consume(token.uuid, &attempt, 1_000).await.unwrap(), Consumed::Consumed);

    let uuid = Uuid::new_v4();
    let tasks = (0..CONTENDERS).map(|i| {
        let store = Arc::clone(&store);
        let token = TokenRecord { uuid, expiry: 2_000 + i as i64, pair: None };
        tokio::spawn(async move { store.insert(&token, false, 1_000).await })
    });
    let results = join_all(tasks).await;
    let stored = results.iter().filter(|r| stored_alone(r)).count();
    let refused = results.iter().filter(|r| matches!(r, Ok(Err(StoreError::Duplicate)))).count();
    assert_eq!((stored, refused), (1, CONTENDERS - 1));
}

/// Many tokens issued and consumed concurrently: each is consumed exactly once.
pub async fn interleaved_tokens_are_each_consumed_once(store: Arc<dyn TokenStore>) {
    let tokens: Vec<TokenRecord> = (0..200).map(|_| record(2_000)).collect();
    let tasks = tokens.iter().map(|token| {
        let (store, token) = (Arc::clone(&store), token.clone());
        tokio::spawn(async move {
            let (a, b) = (AttemptId::generate(), AttemptId::generate());
            store.insert(&token, false, 1_000).await.unwrap();
            let first = store.consume(token.uuid, &a, 1_000).await.unwrap();
            let second = store.consume(token.uuid, &b, 1_000).await.unwrap();
            (first, second == used(1_000, &a))
        })
    });
    for joined in join_all(tasks).await {
        assert_eq!(joined.unwrap(), (Consumed::Consumed, true));
    }
}

fn paired(expiry: i64, pair: &Pair) -> TokenRecord {
    TokenRecord { pair: Some(pair.clone()), ..record(expiry) }
}

fn fresh_pair() -> Pair {
    Pair { purpose: "password-reset".into(), subject: format!("user-{}", Uuid::new_v4()) }
}

async fn state(store: &dyn TokenStore, uuid: Uuid) -> State {
    store.status(uuid).await.unwrap().unwrap().state
}

/// Revoke changes an unused record and reports every other one unchanged; a revoked record is
/// never consumed.
pub async fn revoke_changes_only_unused_tokens(store: &dyn TokenStore) {
    let (unused, used, late) = (record(2_000), record(2_000), record(1_000));
    let attempt = AttemptId::generate();
    for token in [&unused, &used, &late] {
        store.insert(token, false, 900).await.unwrap();
    }
    assert_eq!(store.revoke(unused.uuid, 1_000).await.unwrap(), Revoked::Revoked);
    assert_eq!(
        store.revoke(unused.uuid, 1_001).await.unwrap(),
        Revoked::AlreadyRevoked { at: 1_000 }
    );
    assert_eq!(
        store.consume(unused.uuid, &attempt, 1_002).await.unwrap(),
        Consumed::Revoked { at: 1_000 }
    );
    assert_eq!(store.consume(used.uuid, &attempt, 1_000).await.unwrap(), Consumed::Consumed);
    assert_eq!(store.revoke(used.uuid, 1_001).await.unwrap(), Revoked::Used { at: 1_000 });
    assert_eq!(store.revoke(late.uuid, 1_000).await.unwrap(), Revoked::Expired);
    assert_eq!(store.revoke(Uuid::new_v4(), 1_000).await.unwrap(), Revoked::NotFound);
    assert_eq!(state(store, used.uuid).await, State::Used { at: 1_000, attempt });
    assert_eq!(state(store, late.uuid).await, State::Unused);
}

/// Status reads a record as it is and changes nothing.
pub async fn status_reads_and_changes_nothing(store: &dyn TokenStore) {
    let token = record(2_000);
    store.insert(&token, false, 1_000).await.unwrap();
    for _ in 0..3 {
        let stored = store.status(token.uuid).await.unwrap();
        assert_eq!(stored, Some(Stored { expiry: 2_000, state: State::Unused }));
    }
    let attempt = AttemptId::generate();
    assert_eq!(store.consume(token.uuid, &attempt, 1_000).await.unwrap(), Consumed::Consumed);
    assert_eq!(state(store, token.uuid).await, State::Used { at: 1_000, attempt });
    assert_eq!(store.status(Uuid::new_v4()).await.unwrap(), None);
}

/// Concurrent consumes and revokes of one record: exactly one of them wins, run [`ROUNDS`]
/// times.
pub async fn consume_and_revoke_race_and_exactly_one_wins(store: Arc<dyn TokenStore>) {
    for round in 0..ROUNDS {
        let token = record(2_000);
        store.insert(&token, false, 1_000).await.unwrap();
        let consumes = (0..CONTENDERS / 2).map(|_| {
            let store = Arc::clone(&store);
            tokio::spawn(async move {
                let attempt = AttemptId::generate();
                store.consume(token.uuid, &attempt, 1_000).await.unwrap() == Consumed::Consumed
            })
        });
        let revokes = (0..CONTENDERS / 2).map(|_| {
            let store = Arc::clone(&store);
            tokio::spawn(async move {
                store.revoke(token.uuid, 1_000).await.unwrap() == Revoked::Revoked
            })
        });
        let (consumed, revoked) = futures::join!(join_all(consumes), join_all(revokes));
        let consumed = consumed.into_iter().filter(|won| *won.as_ref().unwrap()).count();
        let revoked = revoked.into_iter().filter(|won| *won.as_ref().unwrap()).count();
        assert_eq!(consumed + revoked, 1, "round {round}: {consumed} consumed, {revoked} revoked");
    }
}

/// A superseding insert revokes every unused token of its pair, and only of its pair; used
/// tokens stay used.
pub async fn supersede_revokes_the_pairs_unused_tokens(store: &dyn TokenStore) {
    let (pair, other) = (fresh_pair(), fresh_pair());
    let (a, b, used, elsewhere) =
        (paired(2_000, &pair), paired(2_000, &pair), paired(2_000, &pair), paired(2_000, &other));
    let unbound = record(2_000);
    for token in [&a, &b, &used, &elsewhere, &unbound] {
        store.insert(token, false, 1_000).await.unwrap();
    }
    let attempt = AttemptId::generate();
    assert_eq!(store.consume(used.uuid, &attempt, 1_000).await.unwrap(), Consumed::Consumed);
    let newest = paired(2_000, &pair);
    let inserted = store.insert(&newest, true, 1_100).await.unwrap();
    assert_eq!(sorted(inserted.superseded), sorted(vec![a.uuid, b.uuid]));
    for token in [&a, &b] {
        assert_eq!(state(store, token.uuid).await, State::Revoked { at: 1_100 });
        let refused = store.consume(token.uuid, &attempt, 1_200).await.unwrap();
        assert_eq!(refused, Consumed::Revoked { at: 1_100 });
    }
    assert_eq!(state(store, used.uuid).await, State::Used { at: 1_000, attempt });
    for token in [&elsewhere, &unbound, &newest] {
        assert_eq!(state(store, token.uuid).await, State::Unused);
    }
}

fn sorted(mut uuids: Vec<Uuid>) -> Vec<Uuid> {
    uuids.sort();
    uuids
}

/// A superseding insert reports exactly the tokens it revoked: none in an empty pair, the
/// unused and unexpired ones otherwise (not the used or the expired one, nor itself). Retried
/// after a lost answer, it finds its own record, reports none and changes nothing.
pub async fn a_superseding_insert_reports_exactly_the_tokens_it_revoked(store: &dyn TokenStore) {
    let pair = fresh_pair();
    let first = paired(2_000, &pair);
    assert_eq!(store.insert(&first, true, 1_000).await.unwrap(), Inserted::default());
    let (a, b, used, expired) =
        (paired(2_000, &pair), paired(2_000, &pair), paired(2_000, &pair), paired(1_050, &pair));
    for token in [&a, &b, &used, &expired] {
        assert_eq!(store.insert(token, false, 1_000).await.unwrap(), Inserted::default());
    }
    let attempt = AttemptId::generate();
    assert_eq!(store.consume(used.uuid, &attempt, 1_000).await.unwrap(), Consumed::Consumed);

    let newest = paired(2_000, &pair);
    let inserted = store.insert(&newest, true, 1_100).await.unwrap();
    assert_eq!(sorted(inserted.superseded), sorted(vec![first.uuid, a.uuid, b.uuid]));
    assert_eq!(store.insert(&newest, true, 1_100).await.unwrap(), Inserted::default());
    for token in [&first, &a, &b] {
        assert_eq!(state(store, token.uuid).await, State::Revoked { at: 1_100 });
    }
    assert_eq!(state(store, used.uuid).await, State::Used { at: 1_000, attempt });
    assert_eq!(state(store, expired.uuid).await, State::Unused);
    assert_eq!(state(store, newest.uuid).await, State::Unused);

    let last = paired(2_000, &pair);
    let inserted = store.insert(&last, true, 1_200).await.unwrap();
    assert_eq!(inserted.superseded, vec![newest.uuid]);
}

/// Concurrent superseding inserts into one pair: afterwards exactly one of their tokens can be
/// consumed, and each of the others was reported superseded by exactly one of the inserts.
pub async fn concurrent_supersedes_leave_one_usable_token(store: Arc<dyn TokenStore>) {
    let pair = fresh_pair();
    let tokens: Vec<TokenRecord> = (0..8).map(|_| paired(2_000, &pair)).collect();
    let inserts = tokens.iter().map(|token| {
        let (store, token) = (Arc::clone(&store), token.clone());
        tokio::spawn(async move { store.insert(&token, true, 1_000).await })
    });
    let mut superseded = Vec::new();
    for inserted in join_all(inserts).await {
        superseded.extend(inserted.unwrap().unwrap().superseded);
    }
    let mut usable = Vec::new();
    for token in &tokens {
        let attempt = AttemptId::generate();
        if store.consume(token.uuid, &attempt, 1_001).await.unwrap() == Consumed::Consumed {
            usable.push(token.uuid);
        }
    }
    assert_eq!(usable.len(), 1);
    let others = tokens.iter().map(|t| t.uuid).filter(|uuid| *uuid != usable[0]).collect();
    assert_eq!(sorted(superseded), sorted(others));
}

/// A superseding insert races the consume of an older token of its pair, [`ROUNDS`] times: the
/// older one is either used before (and stays used) or revoked; the new one is always usable.
pub async fn supersede_races_the_consume_of_an_older_token(store: Arc<dyn TokenStore>) {
    let pair = fresh_pair();
    for round in 0..ROUNDS {
        let (old, new) = (paired(2_000, &pair), paired(2_000, &pair));
        store.insert(&old, false, 1_000).await.unwrap();
        let attempt = AttemptId::generate();
        let (consumed, inserted) = futures::join!(
            store.consume(old.uuid, &attempt, 1_000),
            store.insert(&new, true, 1_000)
        );
        let superseded = inserted.unwrap().superseded;
        match consumed.unwrap() {
            Consumed::Consumed => {
                assert_eq!(state(&*store, old.uuid).await, State::Used { at: 1_000, attempt });
                assert_eq!(superseded, Vec::<Uuid>::new(), "round {round}");
            }
            Consumed::Revoked { at: 1_000 } => {
                assert_eq!(state(&*store, old.uuid).await, State::Revoked { at: 1_000 });
                assert_eq!(superseded, vec![old.uuid], "round {round}");
            }
            other => panic!("round {round}: {other:?}"),
        }
        let attempt = AttemptId::generate();
        assert_eq!(store.consume(new.uuid, &attempt, 1_001).await.unwrap(), Consumed::Consumed);
    }
}

/// A pair holds at most [`MAX_OUTSTANDING_PER_PAIR`] unused tokens; superseding always works.
pub async fn a_full_pair_refuses_more_tokens_until_superseded(store: &dyn TokenStore) {
    let pair = fresh_pair();
    let tokens: Vec<TokenRecord> =
        (0..MAX_OUTSTANDING_PER_PAIR).map(|_| paired(2_000, &pair)).collect();
    for token in &tokens {
        store.insert(token, false, 1_000).await.unwrap();
    }
    let one_more = paired(2_000, &pair);
    let refused = store.insert(&one_more, false, 1_000).await;
    assert!(matches!(refused, Err(StoreError::TooManyOutstanding)), "{refused:?}");
    assert_eq!(store.status(one_more.uuid).await.unwrap(), None);
    let inserted = store.insert(&one_more, true, 1_000).await.unwrap();
    assert_eq!(sorted(inserted.superseded), sorted(tokens.iter().map(|t| t.uuid).collect()));
    assert_eq!(state(store, tokens[0].uuid).await, State::Revoked { at: 1_000 });
    assert_eq!(state(store, one_more.uuid).await, State::Unused);
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
                revoke_changes_only_unused_tokens,
                status_reads_and_changes_nothing,
                supersede_revokes_the_pairs_unused_tokens,
                a_superseding_insert_reports_exactly_the_tokens_it_revoked,
                a_full_pair_refuses_more_tokens_until_superseded,
                expiry_is_enforced_to_the_second,
                a_refused_expired_record_is_never_consumed,
                a_fresh_store_is_ready);
            $crate::store::conformance::suite!(@shared $open;
                one_of_many_concurrent_consumes_wins,
                concurrent_inserts_store_one_record,
                consume_and_revoke_race_and_exactly_one_wins,
                concurrent_supersedes_leave_one_usable_token,
                supersede_races_the_consume_of_an_older_token,
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
