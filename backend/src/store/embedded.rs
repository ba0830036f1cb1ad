//! The embedded, durable store: one [redb](https://docs.rs/redb) file on local disk.
//!
//! Why redb: a well-kept, pure-Rust, single-file embedded database with ACID write transactions,
//! copy-on-write B-trees and an fsync on every durable commit, so a record acknowledged here
//! survives `kill -9` and power loss. It needs no C toolchain and no server.
//!
//! Group commit: all writes go through one writer thread. It takes every operation waiting in
//! its queue (up to [`MAX_BATCH`]), applies them in order in ONE write transaction, commits once
//! (one fsync) and only then answers each caller. Under load many requests share one fsync;
//! alone, a request waits for its own. Because one thread applies operations one after another,
//! two consumes of one `uuid` can never both find the record.
//!
//! Tables: `tokens` maps a uuid (as `u128`) to its expiry (epoch seconds); `tokens_by_expiry`
//! holds `(expiry, uuid)` so that [`EmbeddedStore::sweep_expired`] reads only expired records.

use super::{Cause, Consumed, StoreError, TokenRecord, TokenStore};
use async_trait::async_trait;
use redb::{Database, ReadableDatabase, ReadableTable, Table, TableDefinition};
use std::path::Path;
use std::sync::mpsc;
use std::thread::JoinHandle;
use tokio::sync::oneshot;
use uuid::Uuid;

const TOKENS: TableDefinition<u128, i64> = TableDefinition::new("tokens");
const BY_EXPIRY: TableDefinition<(i64, u128), ()> = TableDefinition::new("tokens_by_expiry");

/// Most operations applied in one write transaction.
pub const MAX_BATCH: usize = 1024;
/// Most expired records removed by one sweep (a sweep holds the writer while it runs).
pub const MAX_SWEEP: usize = 10_000;

/// A [`TokenStore`] in a redb file. Cloning is not offered: share it in an `Arc`. Dropping the
/// last handle finishes the queued operations, closes the file and joins the writer thread.
pub struct EmbeddedStore {
    ops: Option<mpsc::Sender<Op>>,
    writer: Option<JoinHandle<()>>,
}

enum Op {
    Insert(TokenRecord, oneshot::Sender<Result<(), StoreError>>),
    Consume(Uuid, i64, oneshot::Sender<Result<Consumed, StoreError>>),
    Sweep(i64, oneshot::Sender<Result<u64, StoreError>>),
}

impl EmbeddedStore {
    /// Opens (or creates) the database file at `path`.
    ///
    /// # Errors
    /// `Internal` if the file cannot be opened or created, is corrupt, or is already open in
    /// another process (redb locks it).
    pub fn open(path: impl AsRef<Path>) -> Result<Self, StoreError> {
        let db = Database::create(path.as_ref()).map_err(internal)?;
        let tx = db.begin_write().map_err(internal)?;
        tx.open_table(TOKENS).map_err(internal)?;
        tx.open_table(BY_EXPIRY).map_err(internal)?;
        tx.commit().map_err(internal)?;

        let (ops, queue) = mpsc::channel();
        let writer = std::thread::Builder::new()
            .name("embedded-store-writer".into())
            .spawn(move || run_writer(&db, &queue))
            .map_err(internal)?;
        Ok(Self { ops: Some(ops), writer: Some(writer) })
    }

    /// Removes up to [`MAX_SWEEP`] records whose `expiry <= now` (epoch seconds) and returns how
    /// many it removed. Only reclaims space: expired records are refused by `consume` anyway.
    ///
    /// # Errors
    /// `Internal` if the transaction fails; nothing is removed then.
    pub async fn sweep_expired(&self, now: i64) -> Result<u64, StoreError> {
        self.call(|reply| Op::Sweep(now, reply)).await
    }

    async fn call<T>(
        &self,
        op: impl FnOnce(oneshot::Sender<Result<T, StoreError>>) -> Op,
    ) -> Result<T, StoreError> {
        let (reply, answer) = oneshot::channel();
        let sent = self.ops.as_ref().map(|ops| ops.send(op(reply)));
        if !matches!(sent, Some(Ok(()))) {
            return Err(internal("the embedded store's writer has stopped"));
        }
        answer.await.map_err(|_| internal("the embedded store's writer stopped mid-operation"))?
    }
}

#[async_trait]
impl TokenStore for EmbeddedStore {
    async fn insert(&self, record: TokenRecord) -> Result<(), StoreError> {
        self.call(|reply| Op::Insert(record, reply)).await
    }

    async fn consume(&self, uuid: Uuid, now: i64) -> Result<Consumed, StoreError> {
        self.call(|reply| Op::Consume(uuid, now, reply)).await
    }
}

impl Drop for EmbeddedStore {
    fn drop(&mut self) {
        drop(self.ops.take());
        if let Some(writer) = self.writer.take() {
            // A panicked writer has already answered nobody; there is nothing left to do.
            let _ = writer.join();
        }
    }
}

fn run_writer(db: &Database, queue: &mpsc::Receiver<Op>) {
    while let Ok(first) = queue.recv() {
        let mut batch = vec![first];
        batch.extend(queue.try_iter().take(MAX_BATCH - 1));
        match apply(db, &batch) {
            Ok(outcomes) => batch.into_iter().zip(outcomes).for_each(|(op, o)| o.answer(op)),
            Err(cause) => {
                tracing::error!(error = %cause, ops = batch.len(), "embedded store commit failed");
                let cause = cause.to_string();
                batch.into_iter().for_each(|op| Outcome::Failed(cause.clone()).answer(op));
            }
        }
    }
}

/// What one operation of a batch came to, answered only after the batch's commit.
enum Outcome {
    Inserted(Result<(), StoreError>),
    Consumed(Consumed),
    Swept(u64),
    Failed(String),
}

impl Outcome {
    fn answer(self, op: Op) {
        // A caller that stopped waiting (its request was cancelled) needs no answer.
        let fail = |cause: &String| internal(cause.clone());
        match (op, self) {
            (Op::Insert(_, r), Outcome::Inserted(v)) => drop(r.send(v)),
            (Op::Consume(_, _, r), Outcome::Consumed(v)) => drop(r.send(Ok(v))),
            (Op::Sweep(_, r), Outcome::Swept(v)) => drop(r.send(Ok(v))),
            (Op::Insert(_, r), Outcome::Failed(c)) => drop(r.send(Err(fail(&c)))),
            (Op::Consume(_, _, r), Outcome::Failed(c)) => drop(r.send(Err(fail(&c)))),
            (Op::Sweep(_, r), Outcome::Failed(c)) => drop(r.send(Err(fail(&c)))),
            (op, _) => drop(op),
        }
    }
}

/// Applies `batch` in order in one durable transaction; all or nothing.
fn apply(db: &Database, batch: &[Op]) -> Result<Vec<Outcome>, redb::Error> {
    let tx = db.begin_write()?;
    let outcomes = {
        // Opened once per batch, not per operation: opening a table is a B-tree lookup.
        let mut tables =
            Tables { tokens: tx.open_table(TOKENS)?, by_expiry: tx.open_table(BY_EXPIRY)? };
        batch.iter().map(|op| apply_one(&mut tables, op)).collect::<Result<_, _>>()?
    };
    tx.commit()?;
    Ok(outcomes)
}

/// The two tables, open in one write transaction.
struct Tables<'tx> {
    tokens: Table<'tx, u128, i64>,
    by_expiry: Table<'tx, (i64, u128), ()>,
}

fn apply_one(tables: &mut Tables<'_>, op: &Op) -> Result<Outcome, redb::Error> {
    let Tables { tokens, by_expiry } = tables;
    Ok(match *op {
        Op::Insert(record, _) => {
            let id = record.uuid.as_u128();
            if tokens.get(id)?.is_some() {
                Outcome::Inserted(Err(StoreError::Duplicate))
            } else {
                tokens.insert(id, record.expiry)?;
                by_expiry.insert((record.expiry, id), ())?;
                Outcome::Inserted(Ok(()))
            }
        }
        Op::Consume(uuid, now, _) => {
            let id = uuid.as_u128();
            let expiry = tokens.get(id)?.map(|e| e.value());
            match expiry {
                None => Outcome::Consumed(Consumed::NotFound),
                Some(expiry) if now >= expiry => Outcome::Consumed(Consumed::Expired),
                Some(expiry) => {
                    tokens.remove(id)?;
                    by_expiry.remove((expiry, id))?;
                    Outcome::Consumed(Consumed::Consumed)
                }
            }
        }
        Op::Sweep(now, _) => {
            let expired = by_expiry
                .range(..=(now, u128::MAX))?
                .take(MAX_SWEEP)
                .map(|entry| entry.map(|(key, _)| key.value()))
                .collect::<Result<Vec<_>, _>>()?;
            for (expiry, id) in &expired {
                tokens.remove(*id)?;
                by_expiry.remove((*expiry, *id))?;
            }
            Outcome::Swept(expired.len() as u64)
        }
    })
}

fn internal(cause: impl Into<Cause>) -> StoreError {
    StoreError::Internal(cause.into())
}

/// Reads every stored record; for tests and tools, not for the request path.
///
/// # Errors
/// `Internal` if the file cannot be read.
pub fn dump(path: impl AsRef<Path>) -> Result<Vec<TokenRecord>, StoreError> {
    let db = Database::open(path.as_ref()).map_err(internal)?;
    let tx = db.begin_read().map_err(internal)?;
    let table = tx.open_table(TOKENS).map_err(internal)?;
    table
        .iter()
        .map_err(internal)?
        .map(|entry| {
            let (id, expiry) = entry.map_err(internal)?;
            Ok(TokenRecord { uuid: Uuid::from_u128(id.value()), expiry: expiry.value() })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::conformance;

    fn open() -> (tempfile::TempDir, EmbeddedStore) {
        let dir = tempfile::tempdir().unwrap();
        let store = EmbeddedStore::open(dir.path().join("tokens.redb")).unwrap();
        (dir, store)
    }

    conformance::suite!(async { open() });

    #[tokio::test]
    async fn records_survive_closing_and_reopening_the_file() {
        let (dir, store) = open();
        let path = dir.path().join("tokens.redb");
        let (kept, used) = (Uuid::new_v4(), Uuid::new_v4());
        store.insert(TokenRecord { uuid: kept, expiry: 2_000 }).await.unwrap();
        store.insert(TokenRecord { uuid: used, expiry: 2_000 }).await.unwrap();
        assert_eq!(store.consume(used, 1_000).await.unwrap(), Consumed::Consumed);
        drop(store);

        let store = EmbeddedStore::open(&path).unwrap();
        assert_eq!(store.consume(used, 1_000).await.unwrap(), Consumed::NotFound);
        assert_eq!(store.consume(kept, 1_000).await.unwrap(), Consumed::Consumed);
    }

    #[tokio::test]
    async fn sweeping_removes_exactly_the_expired_records() {
        let (dir, store) = open();
        let ids: Vec<Uuid> = (0..4).map(|_| Uuid::new_v4()).collect();
        for (i, id) in ids.iter().enumerate() {
            store.insert(TokenRecord { uuid: *id, expiry: 100 + i as i64 }).await.unwrap();
        }
        // Records with expiry 100 and 101 are expired at 101; 102 and 103 are not.
        assert_eq!(store.sweep_expired(101).await.unwrap(), 2);
        assert_eq!(store.sweep_expired(101).await.unwrap(), 0);
        drop(store);
        let mut left: Vec<i64> =
            dump(dir.path().join("tokens.redb")).unwrap().iter().map(|r| r.expiry).collect();
        left.sort();
        assert_eq!(left, vec![102, 103]);
    }

    #[test]
    fn a_second_process_cannot_open_a_file_in_use() {
        let (dir, _store) = open();
        assert!(matches!(
            EmbeddedStore::open(dir.path().join("tokens.redb")),
            Err(StoreError::Internal(_))
        ));
    }
}
