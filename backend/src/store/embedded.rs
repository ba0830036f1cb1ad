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
//! two consumes of one `uuid` can never both find the record unused.
//!
//! Faults: after a failed write or commit (`ENOSPC`, `EIO`) redb refuses every later
//! transaction until the database is reopened. The writer then answers that batch with
//! [`StoreError::Unavailable`] (or [`StoreError::OutcomeUnknown`] for a consume whose commit
//! failed: its fsync may have reached the disk), closes the database and reopens it on the next
//! request, or with a probe write every [`REOPEN_INTERVAL`] while nothing else writes.
//! [`TokenStore::ready`] is true only while the last commit, or the last probe write, succeeded. The queue holds at most
//! [`Options::queue_capacity`] operations and each waits at most [`Options::deadline`]: beyond
//! either, [`StoreError::Overloaded`], so overload never means unbounded memory or a hang.
//!
//! Tables: `records` maps a uuid (as `u128`) to `(expiry, state, at, attempt, purpose,
//! subject)`: expiry in epoch seconds, state 0 unused / 1 used / 2 revoked, `at` the epoch second
//! of the change (0 while unused), the attempt id that used it (empty otherwise), and the pair
//! it is bound to (empty strings for none). `records_by_expiry` holds `(expiry, uuid)` so that
//! [`EmbeddedStore::sweep_expired`] reads only expired records; `records_by_pair` holds
//! `(purpose, subject, uuid)` of the records bound to a pair, for `supersede`. Reads
//! (`status`) go through the writer too and, alone in a batch, commit nothing.

use super::{
    AttemptId, Cause, Consumed, MAX_OUTSTANDING_PER_PAIR, Pair, Revoked, State, StoreError, Stored,
    TokenRecord, TokenStore,
};
use async_trait::async_trait;
use redb::{Database, DatabaseError, ReadableTable, Table, TableDefinition, TableHandle};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, RecvTimeoutError, TrySendError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};
use tokio::sync::oneshot;
use uuid::Uuid;

/// `(expiry, state, at, attempt, purpose, subject)`; see the module documentation.
type Row = (i64, u8, i64, &'static str, &'static str, &'static str);
const RECORDS: TableDefinition<u128, Row> = TableDefinition::new("records");
const BY_EXPIRY: TableDefinition<(i64, u128), ()> = TableDefinition::new("records_by_expiry");
const BY_PAIR: TableDefinition<(&str, &str, u128), ()> = TableDefinition::new("records_by_pair");
/// A probe write lands here: one key, overwritten.
const PROBE: TableDefinition<u8, i64> = TableDefinition::new("probe");
/// The table of earlier versions (uuid to expiry, unused records only); migrated on open.
const LEGACY_TOKENS: TableDefinition<u128, i64> = TableDefinition::new("tokens");
const LEGACY_BY_EXPIRY: TableDefinition<(i64, u128), ()> = TableDefinition::new("tokens_by_expiry");

const UNUSED: u8 = 0;
const USED: u8 = 1;
const REVOKED: u8 = 2;

/// Most operations applied in one write transaction.
pub const MAX_BATCH: usize = 1024;
/// Most expired records removed by one sweep transaction; a sweep runs as many as it needs.
pub const MAX_SWEEP: usize = 10_000;
/// How long after its expiry a record is kept before the sweep may remove it, seconds. A
/// validation reads the clock before its consume is queued and the consume is dropped unapplied
/// once its [`Options::deadline`] (seconds) has passed, so a record is never removed while a
/// consume that may still succeed is on its way.
pub const SWEEP_GRACE_SECS: i64 = 60;
/// How often a closed database (after a fault) is reopened while nothing else asks for it.
pub const REOPEN_INTERVAL: Duration = Duration::from_millis(500);

/// Limits of the writer's queue.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Options {
    /// Most operations waiting for the writer; more are refused as overloaded at once.
    pub queue_capacity: usize,
    /// Longest an operation waits for its answer, queue time included. Past it the caller gets
    /// [`StoreError::Overloaded`] (or [`StoreError::OutcomeUnknown`] for a consume that may be
    /// in the commit under way), and the writer drops it unapplied if it has not started it.
    pub deadline: Duration,
}

impl Default for Options {
    fn default() -> Self {
        Self { queue_capacity: 16 * MAX_BATCH, deadline: Duration::from_secs(5) }
    }
}

/// Opens the database: `Database::create(path)` for a file, or a test's faulty backend.
type Opener = Box<dyn Fn() -> Result<Database, DatabaseError> + Send>;

/// A [`TokenStore`] in a redb file. Share it in an `Arc`. Dropping the last handle finishes the
/// queued operations, closes the file and joins the writer thread.
pub struct EmbeddedStore {
    ops: Option<mpsc::SyncSender<Op>>,
    writer: Option<JoinHandle<()>>,
    ready: Arc<AtomicBool>,
    deadline: Duration,
}

struct Op {
    request: Request,
    deadline: Instant,
    reply: oneshot::Sender<Result<Outcome, StoreError>>,
}

enum Request {
    Insert(TokenRecord, bool, i64),
    Consume(Uuid, AttemptId, i64),
    Revoke(Uuid, i64),
    Status(Uuid),
    Sweep(i64),
}

/// What an operation came to, answered only after the batch's commit.
#[derive(Debug)]
enum Outcome {
    Inserted,
    Consumed(Consumed),
    Revoked(Revoked),
    Status(Option<Stored>),
    Swept(usize),
}

impl EmbeddedStore {
    /// Opens (or creates) the database file at `path`, with default [`Options`].
    ///
    /// # Errors
    /// `Internal` if the file cannot be opened or created, is corrupt, or is already open in
    /// another process (redb locks it).
    pub fn open(path: impl AsRef<Path>) -> Result<Self, StoreError> {
        let path = path.as_ref().to_owned();
        Self::open_with(move || Database::create(&path), Options::default())
    }

    /// Opens the database that `opener` opens (called again to reopen after a fault).
    ///
    /// # Errors
    /// As [`EmbeddedStore::open`].
    pub fn open_with(
        opener: impl Fn() -> Result<Database, DatabaseError> + Send + 'static,
        options: Options,
    ) -> Result<Self, StoreError> {
        let db = opener().map_err(internal)?;
        prepare(&db).map_err(internal)?;
        let ready = Arc::new(AtomicBool::new(true));
        let (ops, queue) = mpsc::sync_channel(options.queue_capacity);
        let writer = Writer { db: Some(db), opener: Box::new(opener), ready: ready.clone() };
        let writer = std::thread::Builder::new()
            .name("embedded-store-writer".into())
            .spawn(move || writer.run(&queue))
            .map_err(internal)?;
        Ok(Self { ops: Some(ops), writer: Some(writer), ready, deadline: options.deadline })
    }

    /// Removes every record whose `expiry <= now - SWEEP_GRACE_SECS` (`now` in epoch seconds),
    /// [`MAX_SWEEP`] per transaction so that requests interleave, and returns how many it
    /// removed. Only reclaims space: expired records are refused by `consume` anyway.
    ///
    /// # Errors
    /// A store error if a transaction fails; what earlier transactions removed stays removed.
    pub async fn sweep_expired(&self, now: i64) -> Result<usize, StoreError> {
        let mut removed = 0;
        loop {
            let cutoff = now - SWEEP_GRACE_SECS;
            match self.call(Request::Sweep(cutoff), Duration::from_secs(60)).await? {
                Outcome::Swept(n) if n < MAX_SWEEP => return Ok(removed + n),
                Outcome::Swept(n) => removed += n,
                other => return Err(mismatch(&other)),
            }
        }
    }

    async fn call(&self, request: Request, wait: Duration) -> Result<Outcome, StoreError> {
        let consume = matches!(request, Request::Consume(..) | Request::Revoke(..));
        let deadline = Instant::now() + wait;
        let (reply, answer) = oneshot::channel();
        let sent = match &self.ops {
            Some(ops) => ops.try_send(Op { request, deadline, reply }),
            None => return Err(internal("the embedded store is closed")),
        };
        match sent {
            Ok(()) => {}
            Err(TrySendError::Full(_)) => return Err(StoreError::Overloaded),
            Err(TrySendError::Disconnected(_)) => {
                return Err(internal("the embedded store's writer has stopped"));
            }
        }
        let stopped = |what: &str| {
            let cause = format!("the embedded store's writer {what}");
            if consume { StoreError::OutcomeUnknown(cause.into()) } else { internal(cause) }
        };
        match tokio::time::timeout_at(deadline.into(), answer).await {
            Ok(Ok(result)) => result,
            Ok(Err(_)) => Err(stopped("stopped mid-operation")),
            Err(_) if consume => Err(stopped("did not answer before the deadline")),
            Err(_) => Err(StoreError::Overloaded),
        }
    }
}

#[async_trait]
impl TokenStore for EmbeddedStore {
    async fn insert(
        &self,
        record: &TokenRecord,
        supersede: bool,
        now: i64,
    ) -> Result<(), StoreError> {
        match self.call(Request::Insert(record.clone(), supersede, now), self.deadline).await? {
            Outcome::Inserted => Ok(()),
            other => Err(mismatch(&other)),
        }
    }

    async fn revoke(&self, uuid: Uuid, now: i64) -> Result<Revoked, StoreError> {
        match self.call(Request::Revoke(uuid, now), self.deadline).await? {
            Outcome::Revoked(revoked) => Ok(revoked),
            other => Err(mismatch(&other)),
        }
    }

    async fn status(&self, uuid: Uuid) -> Result<Option<Stored>, StoreError> {
        match self.call(Request::Status(uuid), self.deadline).await? {
            Outcome::Status(stored) => Ok(stored),
            other => Err(mismatch(&other)),
        }
    }

    async fn consume(
        &self,
        uuid: Uuid,
        attempt: &AttemptId,
        now: i64,
    ) -> Result<Consumed, StoreError> {
        match self.call(Request::Consume(uuid, attempt.clone(), now), self.deadline).await? {
            Outcome::Consumed(consumed) => Ok(consumed),
            other => Err(mismatch(&other)),
        }
    }

    async fn ready(&self) -> Result<(), StoreError> {
        if self.writer.as_ref().is_none_or(JoinHandle::is_finished) {
            return Err(internal("the embedded store's writer has stopped"));
        }
        if self.ready.load(Ordering::SeqCst) {
            Ok(())
        } else {
            Err(StoreError::Unavailable("the last write failed; probing until one succeeds".into()))
        }
    }
}

impl Drop for EmbeddedStore {
    fn drop(&mut self) {
        drop(self.ops.take());
        if let Some(writer) = self.writer.take() {
            // A panicked writer has already failed its callers; there is nothing left to do.
            let _ = writer.join();
        }
    }
}

fn mismatch(outcome: &Outcome) -> StoreError {
    internal(format!("the embedded store answered with the wrong outcome: {outcome:?}"))
}

/// Creates the tables and migrates the records of earlier versions (all unused) into them.
fn prepare(db: &Database) -> Result<(), redb::Error> {
    let tx = db.begin_write()?;
    {
        let mut records = tx.open_table(RECORDS)?;
        let mut by_expiry = tx.open_table(BY_EXPIRY)?;
        tx.open_table(BY_PAIR)?;
        tx.open_table(PROBE)?;
        let legacy = tx.list_tables()?.any(|t| t.name() == LEGACY_TOKENS.name());
        if legacy {
            let old = tx.open_table(LEGACY_TOKENS)?;
            for entry in old.iter()? {
                let (id, expiry) = entry?;
                let (id, expiry) = (id.value(), expiry.value());
                records.insert(id, (expiry, UNUSED, 0, "", "", ""))?;
                by_expiry.insert((expiry, id), ())?;
            }
            drop(old);
            tx.delete_table(LEGACY_TOKENS)?;
            tx.delete_table(LEGACY_BY_EXPIRY)?;
        }
    }
    tx.commit()?;
    Ok(())
}

/// The writer thread's state: the database while it is usable, and how to reopen it.
struct Writer {
    db: Option<Database>,
    opener: Opener,
    ready: Arc<AtomicBool>,
}

/// Where a batch failed: before its commit (nothing applied) or in it (maybe applied).
enum Failure {
    BeforeCommit(redb::Error),
    InCommit(redb::Error),
}

impl Writer {
    fn run(mut self, queue: &mpsc::Receiver<Op>) {
        loop {
            let first = if self.db.is_some() && self.ready.load(Ordering::SeqCst) {
                match queue.recv() {
                    Ok(op) => op,
                    Err(_) => return,
                }
            } else {
                match queue.recv_timeout(REOPEN_INTERVAL) {
                    Ok(op) => op,
                    Err(RecvTimeoutError::Timeout) => {
                        let _ = self.probe();
                        continue;
                    }
                    Err(RecvTimeoutError::Disconnected) => return,
                }
            };
            let now = Instant::now();
            let (batch, late): (Vec<Op>, Vec<Op>) = std::iter::once(first)
                .chain(queue.try_iter().take(MAX_BATCH - 1))
                .partition(|op| op.deadline > now);
            // Past their deadline their callers have been answered; never apply them late.
            late.into_iter().for_each(|op| drop(op.reply.send(Err(StoreError::Overloaded))));
            if !batch.is_empty() {
                self.apply_and_answer(batch);
            }
        }
    }

    fn apply_and_answer(&mut self, batch: Vec<Op>) {
        let db = match self.database() {
            Ok(db) => db,
            Err(cause) => {
                for op in batch {
                    drop(op.reply.send(Err(StoreError::Unavailable(cause.clone().into()))));
                }
                return;
            }
        };
        match apply(db, &batch) {
            Ok(outcomes) => {
                self.ready.store(true, Ordering::SeqCst);
                for (op, outcome) in batch.into_iter().zip(outcomes) {
                    drop(op.reply.send(outcome));
                }
            }
            Err(failure) => {
                let (cause, maybe_applied) = match failure {
                    Failure::BeforeCommit(e) => (e, false),
                    Failure::InCommit(e) => (e, true),
                };
                tracing::error!(error = %cause, ops = batch.len(), maybe_applied,
                    "embedded store write failed; reopening the database");
                self.close();
                let cause = cause.to_string();
                for op in batch {
                    let cause: Cause = cause.clone().into();
                    let error = match op.request {
                        Request::Consume(..) | Request::Revoke(..) if maybe_applied => {
                            StoreError::OutcomeUnknown(cause)
                        }
                        _ => StoreError::Unavailable(cause),
                    };
                    drop(op.reply.send(Err(error)));
                }
            }
        }
    }

    /// The open database, reopening it if a fault closed it.
    fn database(&mut self) -> Result<&Database, String> {
        if self.db.is_none() {
            let db = (self.opener)().map_err(|e| e.to_string())?;
            prepare(&db).map_err(|e| e.to_string())?;
            tracing::info!("embedded store reopened");
            self.db = Some(db);
        }
        self.db.as_ref().ok_or_else(|| "the database is closed".to_owned())
    }

    fn close(&mut self) {
        self.ready.store(false, Ordering::SeqCst);
        self.db = None;
    }

    /// A real write, to learn whether commits work again.
    fn probe(&mut self) -> Result<(), String> {
        let db = self.database()?;
        let probed = (|| {
            let tx = db.begin_write()?;
            tx.open_table(PROBE)?.insert(0, 0)?;
            tx.commit()?;
            Ok::<_, redb::Error>(())
        })();
        match probed {
            Ok(()) => {
                tracing::info!("embedded store writes again");
                self.ready.store(true, Ordering::SeqCst);
                Ok(())
            }
            Err(e) => {
                self.close();
                Err(e.to_string())
            }
        }
    }
}

type Answers = Vec<Result<Outcome, StoreError>>;

/// Applies `batch` in order in one durable transaction; all or nothing.
fn apply(db: &Database, batch: &[Op]) -> Result<Answers, Failure> {
    let before = |e: redb::Error| Failure::BeforeCommit(e);
    let tx = db.begin_write().map_err(|e| before(e.into()))?;
    let outcomes = {
        // Opened once per batch, not per operation: opening a table is a B-tree lookup.
        let mut tables = Tables {
            records: tx.open_table(RECORDS).map_err(|e| before(e.into()))?,
            by_expiry: tx.open_table(BY_EXPIRY).map_err(|e| before(e.into()))?,
            by_pair: tx.open_table(BY_PAIR).map_err(|e| before(e.into()))?,
        };
        batch.iter().map(|op| tables.apply(&op.request)).collect::<Result<Answers, _>>()
    }
    .map_err(before)?;
    if batch.iter().all(|op| matches!(op.request, Request::Status(_))) {
        // Only reads: nothing to make durable, no fsync.
        tx.abort().map_err(|e| before(e.into()))?;
    } else {
        tx.commit().map_err(|e| Failure::InCommit(e.into()))?;
    }
    Ok(outcomes)
}

/// The tables, open in one write transaction.
struct Tables<'tx> {
    records: Table<'tx, u128, Row>,
    by_expiry: Table<'tx, (i64, u128), ()>,
    by_pair: Table<'tx, (&'static str, &'static str, u128), ()>,
}

/// A record as read from the `records` table.
struct Record {
    expiry: i64,
    state: State,
    pair: Option<Pair>,
}

impl Record {
    fn read(row: (i64, u8, i64, &str, &str, &str)) -> Self {
        let (expiry, state, at, attempt, purpose, subject) = row;
        let state = match state {
            UNUSED => State::Unused,
            REVOKED => State::Revoked { at },
            _ => State::Used { at, attempt: AttemptId::stored(attempt) },
        };
        let pair = (!purpose.is_empty())
            .then(|| Pair { purpose: purpose.to_owned(), subject: subject.to_owned() });
        Self { expiry, state, pair }
    }
}

impl Tables<'_> {
    /// Applies one operation; `Err` fails the whole batch, `Ok(Err)` only this operation.
    fn apply(&mut self, request: &Request) -> Result<Result<Outcome, StoreError>, redb::Error> {
        Ok(Ok(match request {
            Request::Insert(record, supersede, now) => {
                let id = record.uuid.as_u128();
                if let Some(found) = self.get(id)? {
                    // Our own earlier insert (same expiry) is a success; anything else is not.
                    return Ok(if found.expiry == record.expiry {
                        Ok(Outcome::Inserted)
                    } else {
                        Err(StoreError::Duplicate)
                    });
                }
                if let Some(pair) = &record.pair {
                    let outstanding = self.outstanding(pair, *now)?;
                    if *supersede {
                        for other in outstanding {
                            self.set(other, REVOKED, *now, "")?;
                        }
                    } else if outstanding.len() >= MAX_OUTSTANDING_PER_PAIR {
                        return Ok(Err(StoreError::TooManyOutstanding));
                    }
                    self.by_pair.insert((pair.purpose.as_str(), pair.subject.as_str(), id), ())?;
                }
                let (purpose, subject) = record
                    .pair
                    .as_ref()
                    .map_or(("", ""), |p| (p.purpose.as_str(), p.subject.as_str()));
                self.records.insert(id, (record.expiry, UNUSED, 0, "", purpose, subject))?;
                self.by_expiry.insert((record.expiry, id), ())?;
                Outcome::Inserted
            }
            Request::Consume(uuid, attempt, now) => {
                let id = uuid.as_u128();
                Outcome::Consumed(match self.get(id)? {
                    None => Consumed::NotFound,
                    Some(found) if *now >= found.expiry => Consumed::Expired,
                    Some(Record { state: State::Unused, .. }) => {
                        self.set(id, USED, *now, attempt.as_str())?;
                        Consumed::Consumed
                    }
                    Some(Record { state: State::Revoked { at }, .. }) => Consumed::Revoked { at },
                    Some(Record { state: State::Used { at, attempt }, .. }) => {
                        Consumed::Used { at, attempt }
                    }
                })
            }
            Request::Revoke(uuid, now) => {
                let id = uuid.as_u128();
                Outcome::Revoked(match self.get(id)? {
                    None => Revoked::NotFound,
                    Some(found) if *now >= found.expiry => Revoked::Expired,
                    Some(Record { state: State::Unused, .. }) => {
                        self.set(id, REVOKED, *now, "")?;
                        Revoked::Revoked
                    }
                    Some(Record { state: State::Revoked { at }, .. }) => {
                        Revoked::AlreadyRevoked { at }
                    }
                    Some(Record { state: State::Used { at, .. }, .. }) => Revoked::Used { at },
                })
            }
            Request::Status(uuid) => Outcome::Status(
                self.get(uuid.as_u128())?
                    .map(|record| Stored { expiry: record.expiry, state: record.state }),
            ),
            Request::Sweep(cutoff) => {
                let expired = self
                    .by_expiry
                    .range(..=(*cutoff, u128::MAX))?
                    .take(MAX_SWEEP)
                    .map(|entry| entry.map(|(key, _)| key.value()))
                    .collect::<Result<Vec<_>, _>>()?;
                for (expiry, id) in &expired {
                    if let Some(Record { pair: Some(pair), .. }) = self.get(*id)? {
                        self.by_pair.remove((pair.purpose.as_str(), pair.subject.as_str(), *id))?;
                    }
                    self.records.remove(*id)?;
                    self.by_expiry.remove((*expiry, *id))?;
                }
                Outcome::Swept(expired.len())
            }
        }))
    }

    fn get(&self, id: u128) -> Result<Option<Record>, redb::Error> {
        Ok(self.records.get(id)?.map(|row| Record::read(row.value())))
    }

    /// Rewrites the state of record `id` to `(state, at, attempt)`, keeping expiry and pair.
    fn set(&mut self, id: u128, state: u8, at: i64, attempt: &str) -> Result<(), redb::Error> {
        let kept = self.records.get(id)?.map(|row| {
            let (expiry, _, _, _, purpose, subject) = row.value();
            (expiry, purpose.to_owned(), subject.to_owned())
        });
        if let Some((expiry, purpose, subject)) = kept {
            self.records
                .insert(id, (expiry, state, at, attempt, purpose.as_str(), subject.as_str()))?;
        }
        Ok(())
    }

    /// The unused, unexpired records of `pair` at `now`; entries of the others are dropped.
    fn outstanding(&mut self, pair: &Pair, now: i64) -> Result<Vec<u128>, redb::Error> {
        let (purpose, subject) = (pair.purpose.as_str(), pair.subject.as_str());
        let ids = self
            .by_pair
            .range((purpose, subject, 0)..=(purpose, subject, u128::MAX))?
            .map(|entry| entry.map(|(key, _)| key.value().2))
            .collect::<Result<Vec<u128>, _>>()?;
        let mut outstanding = Vec::new();
        for id in ids {
            match self.get(id)? {
                Some(record) if record.state == State::Unused && now < record.expiry => {
                    outstanding.push(id);
                }
                _ => drop(self.by_pair.remove((purpose, subject, id))?),
            }
        }
        Ok(outstanding)
    }
}

fn internal(cause: impl Into<Cause>) -> StoreError {
    StoreError::Internal(cause.into())
}

/// One stored record, as [`dump`] reads it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DumpedRecord {
    /// The token's `uuid`.
    pub uuid: Uuid,
    /// Its expiry, epoch seconds.
    pub expiry: i64,
    /// `None` while unused; the time (epoch seconds) and attempt that used it.
    pub used: Option<(i64, String)>,
}

/// Reads every stored record; for tests and tools, not for the request path.
///
/// # Errors
/// `Internal` if the file cannot be read.
pub fn dump(path: impl AsRef<Path>) -> Result<Vec<DumpedRecord>, StoreError> {
    let db = Database::open(path.as_ref()).map_err(internal)?;
    let tx = redb::ReadableDatabase::begin_read(&db).map_err(internal)?;
    let table = tx.open_table(RECORDS).map_err(internal)?;
    table
        .iter()
        .map_err(internal)?
        .map(|entry| {
            let (id, row) = entry.map_err(internal)?;
            let (expiry, state, at, attempt, _, _) = row.value();
            let used = (state == USED).then(|| (at, attempt.to_owned()));
            Ok(DumpedRecord { uuid: Uuid::from_u128(id.value()), expiry, used })
        })
        .collect()
}

#[cfg(test)]
mod tests;
