//! Server CPU per durable write for the token store's access pattern, in three engines:
//! - `redb`: what the embedded store uses (a copy-on-write B-tree, one file);
//! - `fjall`: an LSM tree with a write-ahead journal;
//! - `fdatasync`: no database, one 4 KiB page written in place into a preallocated, already
//!   synced file, then `fdatasync`: the least a store can do per commit if it answers only
//!   after its commit is on disk (no file-size or extent change to journal).
//!
//! Each commit holds `BATCH` writes: half are issues (a new 19-byte row under a fresh UUID key),
//! half consumes of the tokens issued one commit earlier (a read, then a 60-byte row), as the
//! embedded store's writer batches them under load; every commit is synced before the next
//! starts (redb `Durability::Immediate`, fjall `PersistMode::SyncData`). The table starts with
//! `PRELOAD` rows. CPU is this process's user and system time (`getrusage`, every thread), so
//! the kernel's work for each `pwrite` and `fdatasync` counts, as it does in the server's. The
//! window holds the measured commits only: not the preload, not opening or closing.
//!
//! fjall's memtable is set to 1 MiB (its default is 64 MiB) so that a run this short pays for
//! some flushes and compactions, as a long-running store does; the flushes the preload queued
//! are finished before the window opens, and the program prints the flushes and compactions
//! inside it. Its figures are still probably below a long-lived tree's, which compacts more
//! levels.
//!
//! Usage: `store-bench [BATCH] [COMMITS]` (default 20 and 2000; BATCH is even, at least 2; the
//! service's measured batch at 64 connections is 16-33 writes per commit). Keys are random
//! (UUIDv4, as the service's), then time-ordered (UUIDv7) for comparison. Files go to a
//! temporary directory under the current directory, on the disk being measured (`/tmp` may be
//! tmpfs).

use std::path::Path;
use std::process::ExitCode;
use std::time::Instant;

/// Rows in the table before the measured commits.
const PRELOAD: usize = 100_000;
/// An unused token's row and a used one's (state, expiry, time of use, attempt id), as sized in
/// the embedded store.
const UNUSED: [u8; 19] = [0; 19];
const USED: [u8; 60] = [1; 60];
/// fjall's memtable, bytes.
const FJALL_MEMTABLE: u64 = 1 << 20;

#[derive(Clone, Copy)]
enum Engine {
    Fdatasync,
    Redb,
    Fjall,
}

/// User and system CPU of this process so far, microseconds.
fn cpu_us() -> (f64, f64) {
    // SAFETY: `rusage` is a plain C struct of integers, for which all zeroes is a valid value.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: `usage` is a valid, writable `rusage` for the duration of the call.
    let status = unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut usage) };
    assert_eq!(status, 0, "getrusage: {}", std::io::Error::last_os_error());
    let us = |t: libc::timeval| t.tv_sec as f64 * 1e6 + t.tv_usec as f64;
    (us(usage.ru_utime), us(usage.ru_stime))
}

/// One engine's measured commits: CPU and wall microseconds, and what else it did meanwhile.
struct Run {
    user: f64,
    sys: f64,
    wall: f64,
    note: String,
}

/// CPU and wall time from `start` on, microseconds.
struct Meter {
    started: Instant,
    cpu: (f64, f64),
}

impl Meter {
    fn start() -> Self {
        Self { started: Instant::now(), cpu: cpu_us() }
    }

    /// The run so far, with no note.
    fn read(&self) -> Run {
        let (user, sys) = cpu_us();
        Run {
            user: user - self.cpu.0,
            sys: sys - self.cpu.1,
            wall: self.started.elapsed().as_secs_f64() * 1e6,
            note: String::new(),
        }
    }
}

/// The keys: `PRELOAD` rows, then `half` new ones per commit (plus one commit's worth issued
/// before the first measured commit, for its consumes).
fn keys(half: usize, commits: usize, ordered: bool) -> Vec<u128> {
    let new = || if ordered { uuid::Uuid::now_v7() } else { uuid::Uuid::new_v4() };
    (0..PRELOAD + half * (commits + 1)).map(|_| new().as_u128()).collect()
}

/// For commit `n`: the keys it issues and the keys it consumes (issued by commit `n - 1`).
fn commit_keys(keys: &[u128], half: usize, n: usize) -> (&[u128], &[u128]) {
    let at = PRELOAD + half * n;
    (&keys[at + half..at + 2 * half], &keys[at..at + half])
}

/// The measured commits in redb.
fn run_redb(dir: &Path, keys: &[u128], half: usize, commits: usize) -> Run {
    use redb::{Database, Durability, ReadableTable, TableDefinition};
    let table: TableDefinition<u128, &[u8]> = TableDefinition::new("token_records");
    let db = Database::create(dir.join("tokens.redb")).expect("create");
    let tx = db.begin_write().expect("begin");
    {
        let mut rows = tx.open_table(table).expect("table");
        for key in &keys[..PRELOAD + half] {
            rows.insert(*key, UNUSED.as_slice()).expect("insert");
        }
    }
    tx.commit().expect("commit");
    let meter = Meter::start();
    for n in 0..commits {
        let (issued, consumed) = commit_keys(keys, half, n);
        let mut tx = db.begin_write().expect("begin");
        tx.set_durability(Durability::Immediate).expect("durability");
        {
            let mut rows = tx.open_table(table).expect("table");
            for (new, old) in issued.iter().zip(consumed) {
                rows.insert(*new, UNUSED.as_slice()).expect("insert");
                let state = rows.get(*old).expect("get").expect("issued").value()[0];
                assert_eq!(state, 0, "consumed twice");
                rows.insert(*old, USED.as_slice()).expect("insert");
            }
        }
        tx.commit().expect("commit");
    }
    meter.read()
}

/// The measured commits in fjall.
fn run_fjall(dir: &Path, keys: &[u128], half: usize, commits: usize) -> Run {
    use fjall::{Database, KeyspaceCreateOptions, PersistMode};
    let db = Database::builder(dir.join("fjall")).open().expect("open");
    let options = || KeyspaceCreateOptions::default().max_memtable_size(FJALL_MEMTABLE);
    let rows = db.keyspace("token_records", options).expect("keyspace");
    for key in &keys[..PRELOAD + half] {
        rows.insert(key.to_be_bytes(), UNUSED).expect("insert");
    }
    db.persist(PersistMode::SyncData).expect("persist");
    // The preload's flushes (and any compaction they start) run in fjall's background threads,
    // whose CPU `getrusage` counts: finish them outside the window.
    while db.outstanding_flushes() > 0 || db.active_compactions() > 0 {
        std::thread::sleep(std::time::Duration::from_millis(1));
    }
    let (tables, compactions) = (rows.table_count(), db.compactions_completed());
    let meter = Meter::start();
    for n in 0..commits {
        let (issued, consumed) = commit_keys(keys, half, n);
        let mut batch = db.batch();
        for (new, old) in issued.iter().zip(consumed) {
            batch.insert(&rows, new.to_be_bytes(), UNUSED);
            let state = rows.get(old.to_be_bytes()).expect("get").expect("issued")[0];
            assert_eq!(state, 0, "consumed twice");
            batch.insert(&rows, old.to_be_bytes(), USED);
        }
        batch.commit().expect("commit");
        db.persist(PersistMode::SyncData).expect("persist");
    }
    let run = meter.read();
    let note = format!(
        "  (tables {tables} -> {}, compactions {})",
        rows.table_count(),
        db.compactions_completed() - compactions
    );
    Run { note, ..run }
}

/// The measured commits as bare page writes.
fn run_fdatasync(dir: &Path, commits: usize) -> Run {
    use std::os::unix::fs::FileExt;
    let file = std::fs::File::create(dir.join("pages")).expect("create");
    let page = [7u8; 4096];
    // Written and synced first, so the measured writes change no size and no extent.
    file.write_all_at(&vec![0; commits * page.len()], 0).expect("preallocate");
    file.sync_all().expect("fsync");
    let meter = Meter::start();
    for n in 0..commits {
        file.write_all_at(&page, (n * page.len()) as u64).expect("write");
        file.sync_data().expect("fdatasync");
    }
    meter.read()
}

fn main() -> ExitCode {
    let usage = "usage: store-bench [BATCH] [COMMITS]  (BATCH even, at least 2; COMMITS above 0)";
    let args: Result<Vec<usize>, _> = std::env::args().skip(1).map(|a| a.parse()).collect();
    let (batch, commits) = match args.as_deref() {
        Ok([]) => (20, 2000),
        Ok([batch]) => (*batch, 2000),
        Ok([batch, commits]) => (*batch, *commits),
        _ => {
            eprintln!("{usage}");
            return ExitCode::FAILURE;
        }
    };
    if batch < 2 || batch % 2 == 1 || commits == 0 {
        eprintln!("{usage}");
        return ExitCode::FAILURE;
    }
    let half = batch / 2;
    let writes = (batch * commits) as f64;
    println!("{commits} commits of {batch} writes each, {PRELOAD} rows before");
    println!(
        "{:<22} {:>10} {:>10} {:>10} {:>12}",
        "engine, keys", "user us", "system us", "CPU us", "wall us"
    );
    // (engine, time-ordered keys, label)
    let runs = [
        (Engine::Fdatasync, false, "fdatasync, no database"),
        (Engine::Redb, false, "redb, UUIDv4"),
        (Engine::Fjall, false, "fjall, UUIDv4"),
        (Engine::Redb, true, "redb, UUIDv7"),
        (Engine::Fjall, true, "fjall, UUIDv7"),
    ];
    for (engine, ordered, label) in runs {
        let dir = tempfile::tempdir_in(".").expect("a temporary directory here");
        let run = match engine {
            Engine::Redb => run_redb(dir.path(), &keys(half, commits, ordered), half, commits),
            Engine::Fjall => run_fjall(dir.path(), &keys(half, commits, ordered), half, commits),
            Engine::Fdatasync => run_fdatasync(dir.path(), commits),
        };
        let per_write = |us: f64| us / writes;
        println!(
            "{label:<22} {:>10.2} {:>10.2} {:>10.2} {:>12.2}{}",
            per_write(run.user),
            per_write(run.sys),
            per_write(run.user + run.sys),
            per_write(run.wall),
            run.note
        );
    }
    println!("(per write; a validated token costs two: its issue and its consume)");
    ExitCode::SUCCESS
}
