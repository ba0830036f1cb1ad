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
//! two consumes of one `uuid` can never both find the record unused. A batch that changed
//! nothing (reads, consumes of used tokens) is aborted instead: what it read was already durable.
//!
//! What a commit costs decides what a write costs, because under load a batch holds only a few
//! writes (each request holds one connection, and most connections are busy elsewhere): redb's
//! per-commit work (its system tree, the allocator, checksums, one `pwrite` per dirty page and
//! the fsync) is paid per batch, the B-tree work per write. So a token is ONE row in ONE table,
//! written once at issue and once when it is used or revoked; there is no expiry index (the
//! sweep scans the table in chunks), and the row is a compact byte string, read and written
//! without allocating. `records_by_pair` is touched only for tokens bound to a purpose and
//! subject.
//!
//! Faults: after a failed write or commit (`ENOSPC`, `EIO`) redb refuses every later
//! transaction until the database is reopened. The writer then answers that batch with
//! [`StoreError::Unavailable`] (or [`StoreError::OutcomeUnknown`] for a consume whose commit
//! failed: its fsync may have reached the disk), closes the database and reopens it on the next
//! request, or with a probe write every [`REOPEN_INTERVAL`] while nothing else writes.
//! [`TokenStore::ready`] is true only while the last commit, or the last probe write,
//! succeeded. The queue holds at most [`Options::queue_capacity`] operations and each waits at
//! most [`Options::deadline`]: beyond either, [`StoreError::Overloaded`], so overload never
//! means unbounded memory or a hang.
//!
//! Tables: `token_records` maps a uuid (as `u128`) to a [`Row`]: expiry in epoch seconds, state
//! (unused, used, revoked), the epoch second of the change (0 while unused), the attempt id
//! that used it (empty otherwise) and the pair it is bound to (empty strings for none).
//! `records_by_pair` holds `(purpose, subject, uuid)` of the records bound to a pair, for
//! `supersede`. Files of earlier versions (tables `records` + `records_by_expiry`, or `tokens`
//! + `tokens_by_expiry`) are migrated when opened.

use super::{
    AttemptId, Cause, Consumed, Inserted, MAX_OUTSTANDING_PER_PAIR, Pair, Revoked, State,
    StoreError, Stored, TokenRecord, TokenStore,
};
use async_trait::async_trait;
use redb::{Database, DatabaseError, ReadableTable, Table, TableDefinition, TableHandle};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{self, RecvTimeoutError, TryRecvError, TrySendError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};
use tokio::sync::oneshot;
use uuid::Uuid;

const RECORDS: TableDefinition<u128, &[u8]> = TableDefinition::new("token_records");
const BY_PAIR: TableDefinition<(&str, &str, u128), ()> = TableDefinition::new("records_by_pair");
/// A probe write lands here: one key, overwritten.
const PROBE: TableDefinition<u8, i64> = TableDefinition::new("probe");
/// The previous version's records: `(expiry, state, at, attempt, purpose, subject)` (same
/// meanings as [`Row`]), with an index by expiry; migrated on open.
const V2_RECORDS: TableDefinition<u128, (i64, u8, i64, &str, &str, &str)> =
    TableDefinition::new("records");
const V2_BY_EXPIRY: TableDefinition<(i64, u128), ()> = TableDefinition::new("records_by_expiry");
/// The first version's table (uuid to expiry, unused records only); migrated on open.
const LEGACY_TOKENS: TableDefinition<u128, i64> = TableDefinition::new("tokens");
const LEGACY_BY_EXPIRY: TableDefinition<(i64, u128), ()> = TableDefinition::new("tokens_by_expiry");

const UNUSED: u8 = 0;
const USED: u8 = 1;
const REVOKED: u8 = 2;

/// Most operations applied in one write transaction.
pub const MAX_BATCH: usize = 1024;
/// Most records one sweep transaction looks at; a sweep runs as many as it needs, so requests
/// interleave with it.
pub const MAX_SWEEP: usize = 4096;
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
    commits: Arc<Commits>,
}

/// What the writer has made durable since the store was opened: for `GET /metrics` and
/// benchmarks (fsyncs per second, writes per fsync).
#[derive(Debug, Default)]
pub struct Commits {
    commits: AtomicU64,
    writes: AtomicU64,
}

impl Commits {
    /// Batches committed (each commit is one fsync). Batches that wrote nothing are aborted,
    /// not committed, and not counted; neither are the schema preparation and probe writes.
    pub fn commits(&self) -> u64 {
        self.commits.load(Ordering::Relaxed)
    }

    /// Operations that wrote, in the committed batches (an issue, a consume or a revoke that
    /// changed a record; a sweep step that removed any). Reads and refusals are not writes.
    pub fn writes(&self) -> u64 {
        self.writes.load(Ordering::Relaxed)
    }

    fn add(&self, writes: u64) {
        self.writes.fetch_add(writes, Ordering::Relaxed);
        self.commits.fetch_add(1, Ordering::Relaxed);
    }
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
    /// Remove records with `expiry <= cutoff` among at most [`MAX_SWEEP`] records from `from`.
    Sweep {
        cutoff: i64,
        from: u128,
    },
}

/// What an operation came to, answered only after the batch's commit.
#[derive(Debug)]
enum Outcome {
    Inserted(Inserted),
    Consumed(Consumed),
    Revoked(Revoked),
    Status(Option<Stored>),
    /// How many records a sweep step removed, and where the next step starts (`None`: done).
    Swept(usize, Option<u128>),
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
        let commits = Arc::new(Commits::default());
        let writer = Writer {
            db: Some(db),
            opener: Box::new(opener),
            ready: ready.clone(),
            commits: commits.clone(),
        };
        let writer = std::thread::Builder::new()
            .name("embedded-store-writer".into())
            .spawn(move || writer.run(&queue))
            .map_err(internal)?;
        Ok(Self {
            ops: Some(ops),
            writer: Some(writer),
            ready,
            deadline: options.deadline,
            commits,
        })
    }

    /// The commit counters, live: they keep counting after this call.
    pub fn commits(&self) -> Arc<Commits> {
        self.commits.clone()
    }

    /// Removes every record whose `expiry <= now - SWEEP_GRACE_SECS` (`now` in epoch seconds),
    /// looking at [`MAX_SWEEP`] records per transaction so that requests interleave, and returns
    /// how many it removed. Only reclaims space: expired records are refused by `consume`
    /// anyway.
    ///
    /// # Errors
    /// A store error if a transaction fails; what earlier transactions removed stays removed.
    pub async fn sweep_expired(&self, now: i64) -> Result<usize, StoreError> {
        let (cutoff, mut from, mut removed) = (now - SWEEP_GRACE_SECS, 0, 0);
        loop {
            match self.call(Request::Sweep { cutoff, from }, Duration::from_secs(60)).await? {
                Outcome::Swept(n, Some(next)) => (removed, from) = (removed + n, next),
                Outcome::Swept(n, None) => return Ok(removed + n),
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
    ) -> Result<Inserted, StoreError> {
        match self.call(Request::Insert(record.clone(), supersede, now), self.deadline).await? {
            Outcome::Inserted(inserted) => Ok(inserted),
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

/// Creates the tables and migrates the records of earlier versions into them.
fn prepare(db: &Database) -> Result<(), redb::Error> {
    let tx = db.begin_write()?;
    {
        let mut records = tx.open_table(RECORDS)?;
        tx.open_table(BY_PAIR)?;
        tx.open_table(PROBE)?;
        let names: Vec<String> = tx.list_tables()?.map(|t| t.name().to_owned()).collect();
        let exists = |name: &str| names.iter().any(|n| n == name);
        let mut buf = Vec::new();
        if exists(V2_RECORDS.name()) {
            let old = tx.open_table(V2_RECORDS)?;
            for entry in old.iter()? {
                let (id, row) = entry?;
                let (expiry, state, at, attempt, purpose, subject) = row.value();
                Row { expiry, state, at, attempt, purpose, subject }.encode(&mut buf);
                records.insert(id.value(), buf.as_slice())?;
            }
            drop(old);
            tx.delete_table(V2_RECORDS)?;
        }
        if exists(V2_BY_EXPIRY.name()) {
            tx.delete_table(V2_BY_EXPIRY)?;
        }
        if exists(LEGACY_TOKENS.name()) {
            let old = tx.open_table(LEGACY_TOKENS)?;
            for entry in old.iter()? {
                let (id, expiry) = entry?;
                Row::unused(expiry.value(), "", "").encode(&mut buf);
                records.insert(id.value(), buf.as_slice())?;
            }
            drop(old);
            tx.delete_table(LEGACY_TOKENS)?;
        }
        if exists(LEGACY_BY_EXPIRY.name()) {
            tx.delete_table(LEGACY_BY_EXPIRY)?;
        }
    }
    tx.commit()?;
    Ok(())
}

/// A record as stored: `state` (1 byte), `expiry` and `at` (8 bytes each, little-endian), the
/// lengths of `attempt` and `purpose` (1 byte each), then the bytes of `attempt`, `purpose` and
/// `subject` (the rest). An unused record without a pair is 19 bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Row<'a> {
    /// Epoch seconds.
    expiry: i64,
    /// [`UNUSED`], [`USED`] or [`REVOKED`].
    state: u8,
    /// Epoch second of the change; 0 while unused.
    at: i64,
    /// The attempt that used it; empty otherwise. At most 255 bytes (attempt ids: 128).
    attempt: &'a str,
    /// Empty for none. At most 255 bytes (purposes: 64).
    purpose: &'a str,
    /// Empty for none.
    subject: &'a str,
}

const HEADER: usize = 1 + 8 + 8 + 1 + 1;

impl<'a> Row<'a> {
    fn unused(expiry: i64, purpose: &'a str, subject: &'a str) -> Self {
        Self { expiry, state: UNUSED, at: 0, attempt: "", purpose, subject }
    }

    /// The same record, changed to `state` at `at` by `attempt`.
    fn changed(self, state: u8, at: i64, attempt: &'a str) -> Self {
        Self { state, at, attempt, ..self }
    }

    /// Encodes into `buf` (cleared first), so that one buffer serves every write.
    fn encode(&self, buf: &mut Vec<u8>) {
        // Attempt ids (128 bytes) and purposes (64) fit; a longer one would be cut, never
        // mis-framed, and the service checks both lengths before they get here.
        let attempt = &self.attempt.as_bytes()[..self.attempt.len().min(255)];
        let purpose = &self.purpose.as_bytes()[..self.purpose.len().min(255)];
        buf.clear();
        buf.push(self.state);
        buf.extend_from_slice(&self.expiry.to_le_bytes());
        buf.extend_from_slice(&self.at.to_le_bytes());
        buf.extend_from_slice(&[attempt.len() as u8, purpose.len() as u8]);
        buf.extend_from_slice(attempt);
        buf.extend_from_slice(purpose);
        buf.extend_from_slice(self.subject.as_bytes());
    }

    fn decode(bytes: &'a [u8]) -> Result<Self, redb::Error> {
        let corrupt = || redb::Error::Corrupted("a token record is malformed".into());
        let header = bytes.get(..HEADER).ok_or_else(corrupt)?;
        let i64_at = |at: usize| -> Result<i64, redb::Error> {
            let field = header.get(at..at + 8).ok_or_else(corrupt)?;
            Ok(i64::from_le_bytes(field.try_into().map_err(|_| corrupt())?))
        };
        let (attempt_len, purpose_len) = (usize::from(header[17]), usize::from(header[18]));
        let text = |from: usize, to: usize| -> Result<&'a str, redb::Error> {
            std::str::from_utf8(bytes.get(from..to).ok_or_else(corrupt)?).map_err(|_| corrupt())
        };
        let purpose_at = HEADER + attempt_len;
        let subject_at = purpose_at + purpose_len;
        Ok(Self {
            state: header[0],
            expiry: i64_at(1)?,
            at: i64_at(9)?,
            attempt: text(HEADER, purpose_at)?,
            purpose: text(purpose_at, subject_at)?,
            subject: text(subject_at, bytes.len())?,
        })
    }

    fn state(&self) -> State {
        match self.state {
            UNUSED => State::Unused,
            REVOKED => State::Revoked { at: self.at },
            _ => State::Used { at: self.at, attempt: AttemptId::stored(self.attempt) },
        }
    }
}

/// The writer thread's state: the database while it is usable, and how to reopen it.
struct Writer {
    db: Option<Database>,
    opener: Opener,
    ready: Arc<AtomicBool>,
    commits: Arc<Commits>,
}

/// Where a batch failed: before its commit (nothing applied) or in it (maybe applied).
enum Failure {
    BeforeCommit(redb::Error),
    InCommit(redb::Error),
}

impl Writer {
    fn run(mut self, queue: &mpsc::Receiver<Op>) {
        // Reused for every batch: no allocation per batch once they have grown.
        let mut batch: Vec<Op> = Vec::with_capacity(64);
        let mut answers: Answers = Vec::with_capacity(64);
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
            batch.push(first);
            while batch.len() < MAX_BATCH {
                match queue.try_recv() {
                    Ok(op) => batch.push(op),
                    Err(TryRecvError::Empty | TryRecvError::Disconnected) => break,
                }
            }
            let now = Instant::now();
            // Past their deadline their callers have been answered; never apply them late.
            for late in batch.extract_if(.., |op| op.deadline <= now) {
                drop(late.reply.send(Err(StoreError::Overloaded)));
            }
            if !batch.is_empty() {
                self.apply_and_answer(&mut batch, &mut answers);
            }
            batch.clear();
        }
    }

    fn apply_and_answer(&mut self, batch: &mut Vec<Op>, answers: &mut Answers) {
        let db = match self.database() {
            Ok(db) => db,
            Err(cause) => {
                for op in batch.drain(..) {
                    drop(op.reply.send(Err(StoreError::Unavailable(cause.clone().into()))));
                }
                return;
            }
        };
        answers.clear();
        match apply(db, batch, answers) {
            Ok(writes) => {
                if writes > 0 {
                    self.commits.add(writes);
                }
                self.ready.store(true, Ordering::SeqCst);
                for (op, outcome) in batch.drain(..).zip(answers.drain(..)) {
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
                for op in batch.drain(..) {
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

/// Applies `batch` in order in one durable transaction, all or nothing, pushing one answer per
/// operation to `answers`; returns how many operations wrote (0: nothing was committed).
fn apply(db: &Database, batch: &[Op], answers: &mut Answers) -> Result<u64, Failure> {
    let before = |e: redb::Error| Failure::BeforeCommit(e);
    let tx = db.begin_write().map_err(|e| before(e.into()))?;
    let mut writes = 0;
    {
        // Opened once per batch, not per operation: opening a table is a B-tree lookup.
        let mut tables = Tables {
            records: tx.open_table(RECORDS).map_err(|e| before(e.into()))?,
            by_pair: None,
            tx: &tx,
            buf: Vec::with_capacity(64),
            changed: false,
        };
        for op in batch {
            tables.changed = false;
            answers.push(tables.apply(&op.request).map_err(before)?);
            writes += u64::from(tables.changed);
        }
    }
    if writes > 0 {
        tx.commit().map_err(|e| Failure::InCommit(e.into()))?;
    } else {
        // Nothing to make durable, no fsync: every row read was committed (and synced) by an
        // earlier batch, since batches run one after another.
        tx.abort().map_err(|e| before(e.into()))?;
    }
    Ok(writes)
}

/// The tables, open in one write transaction.
struct Tables<'tx> {
    records: Table<'tx, u128, &'static [u8]>,
    /// Opened on first use: most batches hold no token bound to a pair.
    by_pair: Option<Table<'tx, (&'static str, &'static str, u128), ()>>,
    tx: &'tx redb::WriteTransaction,
    /// The encoded row being written.
    buf: Vec<u8>,
    /// Whether the current operation wrote anything (the batch is committed if any did).
    changed: bool,
}

impl<'tx> Tables<'tx> {
    /// Applies one operation; `Err` fails the whole batch, `Ok(Err)` only this operation.
    fn apply(&mut self, request: &Request) -> Result<Result<Outcome, StoreError>, redb::Error> {
        Ok(Ok(match request {
            Request::Insert(record, supersede, now) => {
                return self.insert(record, *supersede, *now);
            }
            Request::Consume(uuid, attempt, now) => {
                let id = uuid.as_u128();
                let Some(found) = self.records.get(id)? else {
                    return Ok(Ok(Outcome::Consumed(Consumed::NotFound)));
                };
                let row = Row::decode(found.value())?;
                Outcome::Consumed(match row.state {
                    _ if *now >= row.expiry => Consumed::Expired,
                    UNUSED => {
                        row.changed(USED, *now, attempt.as_str()).encode(&mut self.buf);
                        drop(found);
                        self.write(id)?;
                        Consumed::Consumed
                    }
                    REVOKED => Consumed::Revoked { at: row.at },
                    _ => Consumed::Used { at: row.at, attempt: AttemptId::stored(row.attempt) },
                })
            }
            Request::Revoke(uuid, now) => {
                let id = uuid.as_u128();
                let Some(found) = self.records.get(id)? else {
                    return Ok(Ok(Outcome::Revoked(Revoked::NotFound)));
                };
                let row = Row::decode(found.value())?;
                Outcome::Revoked(match row.state {
                    _ if *now >= row.expiry => Revoked::Expired,
                    UNUSED => {
                        row.changed(REVOKED, *now, "").encode(&mut self.buf);
                        drop(found);
                        self.write(id)?;
                        Revoked::Revoked
                    }
                    REVOKED => Revoked::AlreadyRevoked { at: row.at },
                    _ => Revoked::Used { at: row.at },
                })
            }
            Request::Status(uuid) => {
                let found = self.records.get(uuid.as_u128())?;
                let row = found.as_ref().map(|found| Row::decode(found.value())).transpose()?;
                Outcome::Status(row.map(|row| Stored { expiry: row.expiry, state: row.state() }))
            }
            Request::Sweep { cutoff, from } => {
                let (removed, next) = self.sweep(*cutoff, *from)?;
                Outcome::Swept(removed, next)
            }
        }))
    }

    /// Writes `self.buf` as the row of `id`.
    fn write(&mut self, id: u128) -> Result<(), redb::Error> {
        self.records.insert(id, self.buf.as_slice())?;
        self.changed = true;
        Ok(())
    }

    fn by_pair(
        &mut self,
    ) -> Result<&mut Table<'tx, (&'static str, &'static str, u128), ()>, redb::Error> {
        match &mut self.by_pair {
            Some(table) => Ok(table),
            slot @ None => Ok(slot.insert(self.tx.open_table(BY_PAIR)?)),
        }
    }

    fn insert(
        &mut self,
        record: &TokenRecord,
        supersede: bool,
        now: i64,
    ) -> Result<Result<Outcome, StoreError>, redb::Error> {
        let id = record.uuid.as_u128();
        let (purpose, subject) =
            record.pair.as_ref().map_or(("", ""), |p| (p.purpose.as_str(), p.subject.as_str()));
        Row::unused(record.expiry, purpose, subject).encode(&mut self.buf);
        let Some(pair) = &record.pair else {
            // One B-tree operation for the usual case: write, then look at what was there. A
            // record found (our own earlier insert, or a uuid collision) is put back as it was.
            let previous = self.records.insert(id, self.buf.as_slice())?;
            self.changed = true;
            let Some(previous) = previous.map(|guard| guard.value().to_vec()) else {
                return Ok(Ok(Outcome::Inserted(Inserted::default())));
            };
            self.records.insert(id, previous.as_slice())?;
            return Ok(same_insert(&previous, record.expiry));
        };
        if let Some(found) = self.records.get(id)? {
            return Ok(same_insert(found.value(), record.expiry));
        }
        let outstanding = self.outstanding(pair, now)?;
        let mut superseded = Vec::new();
        if supersede {
            for other in outstanding {
                self.revoke_unused(other, now)?;
                superseded.push(Uuid::from_u128(other));
            }
            // `revoke_unused` used the buffer.
            Row::unused(record.expiry, purpose, subject).encode(&mut self.buf);
        } else if outstanding.len() >= MAX_OUTSTANDING_PER_PAIR {
            return Ok(Err(StoreError::TooManyOutstanding));
        }
        self.by_pair()?.insert((pair.purpose.as_str(), pair.subject.as_str(), id), ())?;
        self.write(id)?;
        Ok(Ok(Outcome::Inserted(Inserted { superseded })))
    }

    /// Changes the unused record `id` (one of [`Self::outstanding`], read in this transaction)
    /// to revoked at `now`.
    fn revoke_unused(&mut self, id: u128, now: i64) -> Result<(), redb::Error> {
        let Some(found) = self.records.get(id)? else { return Ok(()) };
        Row::decode(found.value())?.changed(REVOKED, now, "").encode(&mut self.buf);
        drop(found);
        self.write(id)
    }

    /// The unused, unexpired records of `pair` at `now`; entries of the others are dropped.
    fn outstanding(&mut self, pair: &Pair, now: i64) -> Result<Vec<u128>, redb::Error> {
        let (purpose, subject) = (pair.purpose.as_str(), pair.subject.as_str());
        let ids = self
            .by_pair()?
            .range((purpose, subject, 0)..=(purpose, subject, u128::MAX))?
            .map(|entry| entry.map(|(key, _)| key.value().2))
            .collect::<Result<Vec<u128>, _>>()?;
        let mut outstanding = Vec::new();
        for id in ids {
            let usable = match self.records.get(id)? {
                Some(found) => {
                    let row = Row::decode(found.value())?;
                    row.state == UNUSED && now < row.expiry
                }
                None => false,
            };
            if usable {
                outstanding.push(id);
            } else {
                self.by_pair()?.remove((purpose, subject, id))?;
                self.changed = true;
            }
        }
        Ok(outstanding)
    }

    /// Removes the records with `expiry <= cutoff` among the first [`MAX_SWEEP`] from `from`;
    /// returns how many, and where the next step starts if any records are left to look at.
    fn sweep(&mut self, cutoff: i64, from: u128) -> Result<(usize, Option<u128>), redb::Error> {
        let mut expired: Vec<(u128, Option<(String, String)>)> = Vec::new();
        let (mut seen, mut last) = (0, from);
        for entry in self.records.range(from..)?.take(MAX_SWEEP) {
            let (id, row) = entry?;
            let (id, row) = (id.value(), Row::decode(row.value())?);
            (seen, last) = (seen + 1, id);
            if row.expiry <= cutoff {
                let pair = (!row.purpose.is_empty())
                    .then(|| (row.purpose.to_owned(), row.subject.to_owned()));
                expired.push((id, pair));
            }
        }
        for (id, pair) in &expired {
            if let Some((purpose, subject)) = pair {
                self.by_pair()?.remove((purpose.as_str(), subject.as_str(), *id))?;
            }
            self.records.remove(*id)?;
            self.changed = true;
        }
        let next = (seen == MAX_SWEEP).then(|| last.checked_add(1)).flatten();
        Ok((expired.len(), next))
    }
}

/// The answer to an insert that found `stored` under its uuid: our own earlier insert (same
/// expiry) is a success; anything else is another token.
fn same_insert(stored: &[u8], expiry: i64) -> Result<Outcome, StoreError> {
    match Row::decode(stored) {
        // What our first attempt superseded is not recorded: report none.
        Ok(row) if row.expiry == expiry => Ok(Outcome::Inserted(Inserted::default())),
        _ => Err(StoreError::Duplicate),
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
            let row = Row::decode(row.value()).map_err(internal)?;
            let used = (row.state == USED).then(|| (row.at, row.attempt.to_owned()));
            Ok(DumpedRecord { uuid: Uuid::from_u128(id.value()), expiry: row.expiry, used })
        })
        .collect()
}

#[cfg(test)]
mod tests;
