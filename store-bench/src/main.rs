//! Server CPU per durable write for the token store's access pattern, in three engines:
//! - `redb`: what the embedded store uses (a copy-on-write B-tree, one file);
//! - `fjall`: an LSM tree with a write-ahead journal;
//! - `fdatasync`: no database, one 4 KiB page written and synced per commit: the floor of any
//!   store that answers only after its commit is on disk.
//!
//! Each commit holds `BATCH` writes: half are issues (a new 19-byte row under a fresh UUID key),
//! half consumes of the tokens issued one commit earlier (a read, then a 60-byte row), as the
//! embedded store's writer batches them under load; every commit is synced before the next
//! starts (redb `Durability::Immediate`, fjall `PersistMode::SyncData`). The table starts with
//! `PRELOAD` rows. CPU is this process's user and system time (`getrusage`), so the kernel's
//! work for each `pwrite` and `fdatasync` counts, as it does in the server's.
//!
//! Usage: `store-bench [BATCH] [COMMITS]` (default 20 and 2000; the service's measured batch at
//! 64 connections is about 20 writes per commit). Keys are random (UUIDv4, as the service's) and
//! then time-ordered (UUIDv7) for comparison. Files go to a temporary directory under the
//! current directory, on the disk being measured (not `/tmp`, which may be tmpfs).

use std::time::Instant;

/// Rows in the table before the measured commits.
const PRELOAD: usize = 100_000;
/// An unused token's row and a used one's (state, expiry, time of use, attempt id), as sized in
/// the embedded store.
const UNUSED: [u8; 19] = [0; 19];
const USED: [u8; 60] = [1; 60];

/// User and system CPU of this process so far, microseconds.
fn cpu_us() -> (f64, f64) {
    // SAFETY: getrusage writes one plain struct; zeroed is a valid value for it.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut usage) };
    let us = |t: libc::timeval| t.tv_sec as f64 * 1e6 + t.tv_usec as f64;
    (us(usage.ru_utime), us(usage.ru_stime))
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

/// CPU and wall time from `start` on, microseconds.
struct Meter {
    started: Instant,
    cpu: (f64, f64),
}

impl Meter {
    fn start() -> Self {
        Self { started: Instant::now(), cpu: cpu_us() }
    }

    /// `(user, system, wall)` since the start.
    fn read(&self) -> (f64, f64, f64) {
        let (user, sys) = cpu_us();
        (user - self.cpu.0, sys - self.cpu.1, self.started.elapsed().as_secs_f64() * 1e6)
    }
}

fn redb(dir: &std::path::Path, keys: &[u128], half: usize, commits: usize) -> Meter {
    use redb::{Database, ReadableTable, TableDefinition};
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
        let tx = db.begin_write().expect("begin");
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
    meter
}

fn fjall(dir: &std::path::Path, keys: &[u128], half: usize, commits: usize) -> Meter {
    use fjall::{Database, KeyspaceCreateOptions, PersistMode};
    let db = Database::builder(dir.join("fjall")).open().expect("open");
    let rows = db.keyspace("token_records", KeyspaceCreateOptions::default).expect("keyspace");
    for key in &keys[..PRELOAD + half] {
        rows.insert(key.to_be_bytes(), UNUSED).expect("insert");
    }
    db.persist(PersistMode::SyncData).expect("persist");
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
    meter
}

fn fdatasync(dir: &std::path::Path, commits: usize) -> Meter {
    use std::os::unix::fs::FileExt;
    let file = std::fs::File::create(dir.join("pages")).expect("create");
    let page = [7u8; 4096];
    let meter = Meter::start();
    for n in 0..commits {
        file.write_all_at(&page, (n * page.len()) as u64).expect("write");
        file.sync_data().expect("fdatasync");
    }
    meter
}

fn main() {
    let mut args = std::env::args().skip(1).map(|a| a.parse::<usize>().expect("a number"));
    let batch = args.next().unwrap_or(20).max(2);
    let commits = args.next().unwrap_or(2000);
    let half = batch / 2;
    let writes = (half * 2 * commits) as f64;
    println!("{commits} commits of {} writes each, {PRELOAD} rows before", half * 2);
    println!(
        "{:<22} {:>10} {:>10} {:>10} {:>12}",
        "engine, keys", "user us", "system us", "CPU us", "wall us"
    );
    for (engine, ordered) in
        [("fdatasync", false), ("redb", false), ("fjall", false), ("redb", true), ("fjall", true)]
    {
        let keys = keys(half, commits, ordered);
        let dir = tempfile::tempdir_in(".").expect("a temporary directory here");
        let meter = match engine {
            "redb" => redb(dir.path(), &keys, half, commits),
            "fjall" => fjall(dir.path(), &keys, half, commits),
            _ => fdatasync(dir.path(), commits),
        };
        let (user, sys, wall) = meter.read();
        let label = match (engine, ordered) {
            ("fdatasync", _) => "fdatasync, no database".to_owned(),
            (_, false) => format!("{engine}, UUIDv4"),
            (_, true) => format!("{engine}, UUIDv7"),
        };
        let per_write = |us: f64| us / writes;
        println!(
            "{label:<22} {:>10.2} {:>10.2} {:>10.2} {:>12.2}",
            per_write(user),
            per_write(sys),
            per_write(user + sys),
            per_write(wall)
        );
    }
    println!("(per write; a validated token costs two: its issue and its consume)");
}
