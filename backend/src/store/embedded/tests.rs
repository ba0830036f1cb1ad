use super::*;
use crate::store::conformance;
use crate::store::faulty::{Faults, opener};
use std::sync::atomic::Ordering::SeqCst;

fn open() -> (tempfile::TempDir, EmbeddedStore) {
    let dir = tempfile::tempdir().unwrap();
    let store = EmbeddedStore::open(dir.path().join("tokens.redb")).unwrap();
    (dir, store)
}

/// A store on a faulty backend, with `options`.
fn open_faulty(options: Options) -> (tempfile::TempDir, Arc<Faults>, EmbeddedStore) {
    let dir = tempfile::tempdir().unwrap();
    let faults = Arc::new(Faults::default());
    let store =
        EmbeddedStore::open_with(opener(&dir.path().join("t.redb"), faults.clone()), options)
            .unwrap();
    (dir, faults, store)
}

fn record(expiry: i64) -> TokenRecord {
    TokenRecord { uuid: Uuid::new_v4(), expiry, pair: None }
}

/// Polls `ready()` until it succeeds, for at most 5 s; returns how long it took.
async fn wait_until_ready(store: &EmbeddedStore) -> Duration {
    let started = Instant::now();
    while store.ready().await.is_err() {
        assert!(started.elapsed() < Duration::from_secs(5), "not ready again after 5 s");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    started.elapsed()
}

conformance::suite!(async { open() });

#[tokio::test]
async fn records_and_their_states_survive_closing_and_reopening_the_file() {
    let (dir, store) = open();
    let path = dir.path().join("tokens.redb");
    let (kept, used, attempt) = (record(2_000), record(2_000), AttemptId::generate());
    store.insert(&kept, false, 1_000).await.unwrap();
    store.insert(&used, false, 1_000).await.unwrap();
    assert_eq!(store.consume(used.uuid, &attempt, 1_000).await.unwrap(), Consumed::Consumed);
    drop(store);

    let store = EmbeddedStore::open(&path).unwrap();
    let other = AttemptId::generate();
    assert_eq!(
        store.consume(used.uuid, &other, 1_000).await.unwrap(),
        Consumed::Used { at: 1_000, attempt }
    );
    assert_eq!(store.consume(kept.uuid, &other, 1_000).await.unwrap(), Consumed::Consumed);
}

#[tokio::test]
async fn sweeping_removes_records_only_a_grace_period_after_expiry() {
    let (dir, store) = open();
    for expiry in [100, 101, 102, 103] {
        store.insert(&record(expiry), false, 1_000).await.unwrap();
    }
    // At 101 + grace, records with expiry 100 and 101 go; 102 and 103 stay.
    assert_eq!(store.sweep_expired(101).await.unwrap(), 0);
    assert_eq!(store.sweep_expired(101 + SWEEP_GRACE_SECS).await.unwrap(), 2);
    assert_eq!(store.sweep_expired(101 + SWEEP_GRACE_SECS).await.unwrap(), 0);
    drop(store);
    let mut left: Vec<i64> =
        dump(dir.path().join("tokens.redb")).unwrap().iter().map(|r| r.expiry).collect();
    left.sort();
    assert_eq!(left, vec![102, 103]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_sweep_removes_more_than_one_transaction_holds() {
    let (_dir, store) = open();
    let store = Arc::new(store);
    let inserts = (0..MAX_SWEEP + 7).map(|_| {
        let store = store.clone();
        tokio::spawn(async move { store.insert(&record(100), false, 1_000).await.unwrap() })
    });
    futures::future::join_all(inserts).await;
    assert_eq!(store.sweep_expired(100 + SWEEP_GRACE_SECS).await.unwrap(), MAX_SWEEP + 7);
}

#[tokio::test]
async fn records_of_the_earlier_format_are_migrated_as_unused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("tokens.redb");
    let old = Uuid::new_v4();
    {
        let db = Database::create(&path).unwrap();
        let tx = db.begin_write().unwrap();
        tx.open_table(LEGACY_TOKENS).unwrap().insert(old.as_u128(), 2_000).unwrap();
        tx.open_table(LEGACY_BY_EXPIRY).unwrap().insert((2_000, old.as_u128()), ()).unwrap();
        tx.commit().unwrap();
    }
    let store = EmbeddedStore::open(&path).unwrap();
    let attempt = AttemptId::generate();
    assert_eq!(store.consume(old, &attempt, 1_000).await.unwrap(), Consumed::Consumed);
}

#[test]
fn a_second_process_cannot_open_a_file_in_use() {
    let (dir, _store) = open();
    assert!(matches!(
        EmbeddedStore::open(dir.path().join("tokens.redb")),
        Err(StoreError::Internal(_))
    ));
}

#[tokio::test]
async fn a_full_disk_answers_unavailable_and_the_store_recovers_by_itself() {
    let (_dir, faults, store) = open_faulty(Options::default());
    let before = record(2_000);
    store.insert(&before, false, 1_000).await.unwrap();

    Faults::set(&faults.full, true);
    // Enough records to need new pages: some insert must fail while the disk is full.
    let mut refused = 0;
    for _ in 0..200 {
        match store.insert(&record(2_000), false, 1_000).await {
            Ok(_) => {}
            Err(StoreError::Unavailable(_)) => refused += 1,
            Err(other) => panic!("a full disk must be unavailable, got {other:?}"),
        }
    }
    assert!(refused > 0, "no insert failed on a full disk");
    assert!(store.ready().await.is_err(), "ready while the disk is full");

    Faults::set(&faults.full, false);
    wait_until_ready(&store).await;
    let after = record(2_000);
    store.insert(&after, false, 1_000).await.unwrap();
    let attempt = AttemptId::generate();
    for token in [before, after] {
        assert_eq!(store.consume(token.uuid, &attempt, 1_000).await.unwrap(), Consumed::Consumed);
    }
}

#[tokio::test]
async fn a_consume_whose_fsync_fails_is_an_unknown_outcome_that_a_retry_resolves() {
    let (_dir, faults, store) = open_faulty(Options::default());
    let token = record(2_000);
    store.insert(&token, false, 1_000).await.unwrap();
    let attempt = AttemptId::generate();

    Faults::set(&faults.failing_sync, true);
    let failed = store.consume(token.uuid, &attempt, 1_000).await;
    assert!(matches!(failed, Err(StoreError::OutcomeUnknown(_))), "{failed:?}");
    assert!(store.ready().await.is_err());

    Faults::set(&faults.failing_sync, false);
    wait_until_ready(&store).await;
    // The retry with the same attempt id gets the definite answer: consumed now, or (if the
    // failed commit reached the disk after all) used by this very attempt.
    let retried = store.consume(token.uuid, &attempt, 1_001).await.unwrap();
    assert!(
        retried == Consumed::Consumed
            || matches!(&retried, Consumed::Used { attempt: a, .. } if *a == attempt),
        "{retried:?}"
    );
    let other = store.consume(token.uuid, &AttemptId::generate(), 1_002).await.unwrap();
    assert!(matches!(&other, Consumed::Used { attempt: a, .. } if *a == attempt), "{other:?}");
}

#[tokio::test]
async fn a_stuck_fsync_ends_in_an_unknown_outcome_at_the_deadline_not_a_hang() {
    let options = Options { deadline: Duration::from_millis(300), ..Options::default() };
    let (_dir, faults, store) = open_faulty(options);
    let token = record(2_000);
    store.insert(&token, false, 1_000).await.unwrap();
    let attempt = AttemptId::generate();

    faults.slow_sync_ms.store(1_500, SeqCst);
    let started = Instant::now();
    let stuck = store.consume(token.uuid, &attempt, 1_000).await;
    assert!(matches!(stuck, Err(StoreError::OutcomeUnknown(_))), "{stuck:?}");
    assert!(started.elapsed() < Duration::from_secs(1), "{:?}", started.elapsed());

    faults.slow_sync_ms.store(0, SeqCst);
    // The stuck commit finishes; a retry then learns that this attempt used the token. Retries
    // before then wait behind that commit past their own deadline: an unknown outcome, or
    // overloaded when the writer found them already late.
    let retried = loop {
        match store.consume(token.uuid, &attempt, 1_001).await {
            Err(StoreError::OutcomeUnknown(_) | StoreError::Overloaded)
                if started.elapsed() < Duration::from_secs(10) =>
            {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            other => break other.unwrap(),
        }
    };
    assert_eq!(retried, Consumed::Used { at: 1_000, attempt });
    assert!(started.elapsed() >= Duration::from_millis(1_500), "the stuck commit was waited for");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_queue_is_refused_at_once_as_overloaded() {
    let options = Options { queue_capacity: 2, deadline: Duration::from_secs(5) };
    let (_dir, faults, store) = open_faulty(options);
    let store = Arc::new(store);
    faults.slow_sync_ms.store(1_000, SeqCst);
    // One insert in the writer's (slow) commit, two waiting in the queue, the rest refused.
    let tasks: Vec<_> = (0..8)
        .map(|_| {
            let store = store.clone();
            tokio::spawn(async move {
                let started = Instant::now();
                (store.insert(&record(2_000), false, 1_000).await, started.elapsed())
            })
        })
        .collect();
    let results = futures::future::join_all(tasks).await;
    let overloaded: Vec<Duration> = results
        .iter()
        .filter_map(|r| match r.as_ref().unwrap() {
            (Err(StoreError::Overloaded), took) => Some(*took),
            _ => None,
        })
        .collect();
    let stored = results.iter().filter(|r| r.as_ref().unwrap().0.is_ok()).count();
    assert!(!overloaded.is_empty(), "{results:?}");
    assert_eq!(stored + overloaded.len(), 8, "{results:?}");
    // At once: well before the slow commit ahead of them would have let them in.
    assert!(overloaded.iter().all(|took| *took < Duration::from_millis(500)), "{overloaded:?}");
}

#[tokio::test]
async fn a_panic_in_the_writer_fails_the_waiting_request_at_once() {
    let (_dir, faults, store) = open_faulty(Options::default());
    let token = record(2_000);
    store.insert(&token, false, 1_000).await.unwrap();
    Faults::set(&faults.panic_on_sync, true);
    let started = Instant::now();
    let failed = store.consume(token.uuid, &AttemptId::generate(), 1_000).await;
    assert!(matches!(failed, Err(StoreError::OutcomeUnknown(_))), "{failed:?}");
    assert!(started.elapsed() < Duration::from_secs(1));
    // The writer is gone: not ready, and later calls fail at once instead of hanging.
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert!(store.ready().await.is_err());
    assert!(matches!(
        store.insert(&record(2_000), false, 1_000).await,
        Err(StoreError::Internal(_))
    ));
}

#[test]
fn a_row_round_trips_at_the_longest_attempt_purpose_and_subject() {
    let attempt = "a".repeat(shared::MAX_IDEMPOTENCY_KEY_BYTES);
    let purpose = "p".repeat(shared::MAX_PURPOSE_CHARS);
    // Multi-byte UTF-8 up to the byte limit.
    let subject = "é".repeat(shared::MAX_SUBJECT_BYTES / 2);
    let row = Row {
        expiry: -5,
        state: USED,
        at: i64::MAX,
        attempt: &attempt,
        purpose: &purpose,
        subject: &subject,
    };
    let mut buf = Vec::new();
    row.encode(&mut buf);
    assert_eq!(buf.len(), HEADER + attempt.len() + purpose.len() + subject.len());
    assert_eq!(Row::decode(&buf).unwrap(), row);
    Row::unused(7, "", "").encode(&mut buf);
    assert_eq!(buf.len(), 19);
    assert_eq!(Row::decode(&buf).unwrap(), Row::unused(7, "", ""));
}

#[test]
fn a_truncated_row_is_corruption_not_a_panic() {
    let mut buf = Vec::new();
    Row { expiry: 1, state: USED, at: 2, attempt: "abc", purpose: "p", subject: "s" }
        .encode(&mut buf);
    for len in 0..HEADER + 3 {
        assert!(matches!(Row::decode(&buf[..len]), Err(redb::Error::Corrupted(_))), "{len}");
    }
}

#[tokio::test]
async fn records_of_the_previous_format_are_migrated_with_their_states_and_pairs() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("tokens.redb");
    let (unused, used, revoked, bound) =
        (Uuid::new_v4(), Uuid::new_v4(), Uuid::new_v4(), Uuid::new_v4());
    {
        let db = Database::create(&path).unwrap();
        let tx = db.begin_write().unwrap();
        {
            let mut old = tx.open_table(V2_RECORDS).unwrap();
            old.insert(unused.as_u128(), (2_000, UNUSED, 0, "", "", "")).unwrap();
            old.insert(used.as_u128(), (2_000, USED, 1_100, "first-try", "", "")).unwrap();
            old.insert(revoked.as_u128(), (2_000, REVOKED, 1_200, "", "", "")).unwrap();
            old.insert(bound.as_u128(), (2_000, UNUSED, 0, "", "login", "alice")).unwrap();
            let mut by_expiry = tx.open_table(V2_BY_EXPIRY).unwrap();
            by_expiry.insert((2_000, unused.as_u128()), ()).unwrap();
            tx.open_table(BY_PAIR)
                .unwrap()
                .insert(("login", "alice", bound.as_u128()), ())
                .unwrap();
        }
        tx.commit().unwrap();
    }
    let store = EmbeddedStore::open(&path).unwrap();
    let attempt = AttemptId::generate();
    assert_eq!(store.consume(unused, &attempt, 1_000).await.unwrap(), Consumed::Consumed);
    assert_eq!(
        store.consume(used, &attempt, 1_000).await.unwrap(),
        Consumed::Used { at: 1_100, attempt: AttemptId::stored("first-try") }
    );
    assert_eq!(
        store.consume(revoked, &attempt, 1_000).await.unwrap(),
        Consumed::Revoked { at: 1_200 }
    );
    // The pair came along: a superseding issue revokes the migrated token.
    let pair = Pair { purpose: "login".into(), subject: "alice".into() };
    let newer = TokenRecord { uuid: Uuid::new_v4(), expiry: 2_000, pair: Some(pair) };
    assert_eq!(store.insert(&newer, true, 1_300).await.unwrap().superseded, vec![bound]);
    assert_eq!(
        store.consume(bound, &attempt, 1_301).await.unwrap(),
        Consumed::Revoked { at: 1_300 }
    );
    drop(store);
    // The old tables are gone.
    let db = Database::create(&path).unwrap();
    let tx = redb::ReadableDatabase::begin_read(&db).unwrap();
    let names: Vec<String> = tx.list_tables().unwrap().map(|t| t.name().to_owned()).collect();
    assert!(!names.iter().any(|n| n == "records" || n == "records_by_expiry"), "{names:?}");
}

#[tokio::test]
async fn a_batch_that_changes_nothing_is_answered_without_an_fsync() {
    let (_dir, faults, store) = open_faulty(Options::default());
    let token = record(2_000);
    store.insert(&token, false, 1_000).await.unwrap();
    let attempt = AttemptId::generate();
    assert_eq!(store.consume(token.uuid, &attempt, 1_000).await.unwrap(), Consumed::Consumed);

    // With every fsync failing, what only reads still answers: a replay, an unknown uuid, status.
    Faults::set(&faults.failing_sync, true);
    assert_eq!(
        store.consume(token.uuid, &attempt, 1_001).await.unwrap(),
        Consumed::Used { at: 1_000, attempt: attempt.clone() }
    );
    assert_eq!(store.consume(Uuid::new_v4(), &attempt, 1_001).await.unwrap(), Consumed::NotFound);
    assert!(matches!(store.status(token.uuid).await.unwrap(), Some(Stored { expiry: 2_000, .. })));
    assert!(store.ready().await.is_ok());
    // A write needs its fsync.
    assert!(matches!(
        store.insert(&record(2_000), false, 1_000).await,
        Err(StoreError::Unavailable(_))
    ));
}

#[tokio::test]
async fn a_sweep_removes_the_pair_entries_of_what_it_removes_and_keeps_the_rest() {
    let (dir, store) = open();
    let pair = |subject: &str| Some(Pair { purpose: "login".into(), subject: subject.into() });
    let old = TokenRecord { uuid: Uuid::new_v4(), expiry: 100, pair: pair("bob") };
    let live = TokenRecord { uuid: Uuid::new_v4(), expiry: 2_000, pair: pair("carol") };
    store.insert(&old, false, 50).await.unwrap();
    store.insert(&live, false, 50).await.unwrap();
    assert_eq!(store.sweep_expired(100 + SWEEP_GRACE_SECS).await.unwrap(), 1);
    assert_eq!(store.status(old.uuid).await.unwrap(), None);
    assert!(store.status(live.uuid).await.unwrap().is_some());
    drop(store);
    let db = Database::create(dir.path().join("tokens.redb")).unwrap();
    let tx = redb::ReadableDatabase::begin_read(&db).unwrap();
    let left: Vec<(String, String, u128)> = tx
        .open_table(BY_PAIR)
        .unwrap()
        .iter()
        .unwrap()
        .map(|entry| {
            let (key, _) = entry.unwrap();
            let (purpose, subject, id) = key.value();
            (purpose.to_owned(), subject.to_owned(), id)
        })
        .collect();
    assert_eq!(left, vec![("login".to_owned(), "carol".to_owned(), live.uuid.as_u128())]);
}

#[tokio::test]
async fn commits_and_their_writes_are_counted_and_batches_that_only_read_are_not() {
    let (_dir, store) = open();
    let commits = store.commits();
    let (a, b, attempt) = (record(2_000), record(2_000), AttemptId::generate());
    store.insert(&a, false, 1_000).await.unwrap();
    store.insert(&b, false, 1_000).await.unwrap();
    assert_eq!((commits.commits(), commits.writes()), (2, 2));

    // Reads and refusals change nothing: their batches are aborted, not committed.
    store.status(a.uuid).await.unwrap();
    assert_eq!(store.consume(Uuid::new_v4(), &attempt, 1_000).await.unwrap(), Consumed::NotFound);
    assert_eq!(store.consume(a.uuid, &attempt, 1_000).await.unwrap(), Consumed::Consumed);
    assert_eq!(
        store.consume(a.uuid, &attempt, 1_000).await.unwrap(),
        Consumed::Used { at: 1_000, attempt: attempt.clone() }
    );
    assert_eq!(store.revoke(b.uuid, 1_000).await.unwrap(), Revoked::Revoked);
    assert_eq!(store.revoke(b.uuid, 1_000).await.unwrap(), Revoked::AlreadyRevoked { at: 1_000 });
    assert_eq!((commits.commits(), commits.writes()), (4, 4));

    // Concurrent writes share commits: every write is counted, in at most one commit each.
    let store = Arc::new(store);
    let inserts: Vec<_> = (0..64)
        .map(|_| {
            let store = store.clone();
            tokio::spawn(async move { store.insert(&record(2_000), false, 1_000).await.unwrap() })
        })
        .collect();
    for insert in inserts {
        insert.await.unwrap();
    }
    assert_eq!(commits.writes(), 4 + 64);
    assert!((5..=4 + 64).contains(&commits.commits()), "{}", commits.commits());
}
